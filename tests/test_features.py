"""vizwidgets.features: activations, top channels, first-layer filters, feature grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vizwidgets.features import activations, feature_grid, first_layer_filters, top_channels


def hooks_of(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_activations_are_the_layer_outputs(lite) -> None:
    x = lite.preprocess(["chelsea", "coffee"])
    with torch.no_grad():
        stem = lite.model.stem(x)
        first_block = lite.model.blocks[0](stem)
    got = activations(lite, x, ["stem", "blocks.0"])
    torch.testing.assert_close(got["stem"], stem)
    torch.testing.assert_close(got["blocks.0"], first_block)
    # one layer by name gives the tensor itself; images by name work too
    torch.testing.assert_close(activations(lite, "chelsea", "stem"), stem[:1])
    assert hooks_of(lite.model) == 0 and not got["stem"].requires_grad


def test_activations_name_unknown_layers(lite) -> None:
    with pytest.raises(ValueError, match="blocks.99.*list_layers"):
        activations(lite, "chelsea", "blocks.99")
    with pytest.raises(ValueError, match="no layers"):
        activations(lite, "chelsea", [])
    assert hooks_of(lite.model) == 0


def test_top_channels_are_the_largest_means(lite) -> None:
    top = top_channels(lite, ["chelsea", "coffee"], "head", k=5)
    means = activations(lite, ["chelsea", "coffee"], "head").mean(dim=(2, 3))
    assert top.indices.shape == (2, 5)
    for i in range(2):
        order = means[i].argsort(descending=True)[:5]
        assert top.indices[i].tolist() == order.tolist()
        torch.testing.assert_close(top.values[i], means[i, order])
    assert (top.values[:, :-1] >= top.values[:, 1:]).all()
    with pytest.raises(ValueError, match="only 1280 channels"):
        top_channels(lite, "chelsea", "head", k=2000)
    with pytest.raises(ValueError, match="k must be a positive int"):
        top_channels(lite, "chelsea", "head", k=0)


def test_first_layer_filters_map_the_stem_weights_to_grey_centred_colours(lite) -> None:
    filters = first_layer_filters(lite)
    weight = lite.model.stem.conv.weight.detach()
    assert filters.shape == (32, 3, 3, 3)
    assert float(filters.min()) >= 0 and float(filters.max()) <= 1
    scale = weight.abs().amax(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close((filters - 0.5) * 2 * scale, weight)
    # each filter reaches 0 or 1 at its strongest weight
    extremes = (filters - 0.5).abs().amax(dim=(1, 2, 3))
    torch.testing.assert_close(extremes, torch.full((32,), 0.5))
    with pytest.raises(ValueError, match="no convolution with 3 input channels"):
        first_layer_filters(torch.nn.Linear(3, 3))


def test_feature_grid_by_hand() -> None:
    maps = torch.tensor([[[0.0, 2.0], [4.0, 8.0]], [[1.0, 1.0], [1.0, 3.0]], [[5.0, 5.0], [5.0, 5.0]]])
    grid = feature_grid(maps, columns=2, padding=1, pad_value=0.5)
    # 2 rows x 2 columns of 2x2 tiles with 1-pixel borders: 7 x 7
    assert grid.shape == (7, 7) and grid.dtype == np.float32
    np.testing.assert_allclose(grid[1:3, 1:3], [[0.0, 0.25], [0.5, 1.0]])  # min-max of tile 0
    np.testing.assert_allclose(grid[1:3, 4:6], [[0.0, 0.0], [0.0, 1.0]])  # tile 1
    np.testing.assert_allclose(grid[4:6, 1:3], 0.0)  # a constant tile becomes 0
    np.testing.assert_allclose(grid[4:6, 4:6], 0.5)  # the empty fourth cell is padding
    assert (grid[0] == 0.5).all() and (grid[:, 3] == 0.5).all()
    shared = feature_grid(maps, columns=3, normalize="all", padding=0)
    assert shared.shape == (2, 6)
    np.testing.assert_allclose(shared[:, :2], maps[0].numpy() / 8.0)
    np.testing.assert_allclose(shared[:, 4:], 5.0 / 8.0)


def test_feature_grid_of_colour_filters_and_bad_input(lite) -> None:
    grid = feature_grid(first_layer_filters(lite), normalize="none")
    assert grid.shape == (6 * 4 + 1, 6 * 4 + 1, 3)  # 32 filters: 6 columns, 6 rows of 3x3 + borders
    with pytest.raises(ValueError, match="normalize must be"):
        feature_grid(torch.zeros(2, 3, 3), normalize="max")
    with pytest.raises(ValueError, match="maps must be"):
        feature_grid(torch.zeros(2, 2, 3, 3))
    with pytest.raises(TypeError, match="torch.Tensor"):
        feature_grid(np.zeros((2, 3, 3)))
