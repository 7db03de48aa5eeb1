"""vizwidgets.metrics, compare and viz: known answers and real effects (the batch command: test_cli.py)."""

from __future__ import annotations

import copy
import math

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn

from vizwidgets.attribution import attribute
from vizwidgets.compare import compare
from vizwidgets.data import Box, make_scene
from vizwidgets.metrics import (
    confidence_drop,
    deletion,
    energy_in_box,
    insertion,
    localisation,
    pointing_game,
    randomization_check,
    spearman,
)
from vizwidgets.viz import normalize, overlay, reduce_channels, show_grid

matplotlib.use("Agg")


class SumModel(nn.Module):
    """logits = (sum of w * x, 0): deleting a pixel removes exactly its w * x."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x * self.weight).flatten(1).sum(dim=1)
        return torch.stack([s, torch.zeros_like(s)], dim=1)


X = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)


# ----------------------------------------------------------------------------- deletion / insertion


def test_deletion_and_insertion_curves_by_hand() -> None:
    model = SumModel(torch.ones(1, 1, 2, 2))
    # the map ranks pixel 4 first, then 3, 2, 1; fill 0 removes each pixel's value
    d = deletion(model, X, X, 0, steps=4, fill="zero", score="logit")
    assert d.scores[0].tolist() == [10.0, 6.0, 3.0, 1.0, 0.0]
    assert d.fractions.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert float(d.auc[0]) == pytest.approx(0.25 * (8 + 4.5 + 2 + 0.5))
    i = insertion(model, X, X, 0, steps=4, start="zero", score="logit")
    assert i.scores[0].tolist() == [0.0, 4.0, 7.0, 9.0, 10.0]
    assert float(i.auc[0]) == pytest.approx(0.25 * (2 + 5.5 + 8 + 9.5))
    # two steps delete two pixels at a time; probabilities are the sigmoid of the logit here
    p = deletion(model, X, X, 0, steps=2, fill="zero")
    expected = [1 / (1 + math.exp(-s)) for s in (10.0, 3.0, 0.0)]
    assert p.scores[0].tolist() == pytest.approx(expected, rel=1e-6)
    # the reversed map deletes the smallest first: a larger area
    assert float(deletion(model, X, -X, 0, steps=4, fill="zero", score="logit").auc[0]) > float(d.auc[0])


def test_curves_are_batched_and_chunked_consistently() -> None:
    model = SumModel(torch.randn(1, 3, 6, 6, generator=torch.Generator().manual_seed(0)))
    x = torch.randn(3, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    maps = torch.randn(3, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    together = deletion(model, x, maps, 0, steps=9, chunk_size=7, score="logit")
    for i in range(3):
        alone = deletion(model, x[i : i + 1], maps[i : i + 1], 0, steps=9, chunk_size=1, score="logit")
        torch.testing.assert_close(together.scores[i], alone.scores[0], rtol=1e-5, atol=1e-5)


def test_a_faithful_map_beats_random_maps_on_the_default_model(lite) -> None:
    x = lite.preprocess("chelsea")
    generator = torch.Generator().manual_seed(0)
    # The first-order "perfect" map for deletion with fill 0: deleting pixel p changes the
    # score by about sum_c dS/dx_pc * (0 - x_pc), so ranking by gradient x input deletes the
    # most score first. Measured: 0.05 against 0.11-0.13 for random pixel orders.
    perfect = attribute(lite, x, 285, "gradient_x_input")
    scattered = [torch.rand(1, 1, 224, 224, generator=generator) for _ in range(3)]
    d_perfect = float(deletion(lite, x, perfect, 285, steps=20, fill="zero").auc[0])
    assert all(d_perfect < float(deletion(lite, x, r, 285, steps=20, fill="zero").auc[0]) for r in scattered)
    # Grad-CAM against random maps of the same smoothness (7x7, upsampled): insertion area
    # measured 0.69 against 0.49-0.54 (blobs of random pixels are out of distribution, so
    # compare like with like)
    smooth = [
        torch.nn.functional.interpolate(torch.rand(1, 1, 7, 7, generator=generator), size=(224, 224), mode="bilinear")
        for _ in range(3)
    ]
    cam = attribute(lite, x, 285, "grad_cam")
    i_cam = float(insertion(lite, x, cam, 285, steps=20).auc[0])
    assert all(i_cam > float(insertion(lite, x, r, 285, steps=20).auc[0]) + 0.05 for r in smooth)


def test_curves_reject_bad_input(lite) -> None:
    x = lite.preprocess("chelsea")
    with pytest.raises(ValueError, match="maps are \\(7, 7\\) but the images \\(224, 224\\).*upsample=True"):
        deletion(lite, x, torch.rand(1, 1, 7, 7))
    with pytest.raises(ValueError, match="2 maps given for 1 images"):
        deletion(lite, x, torch.rand(2, 1, 224, 224))
    with pytest.raises(ValueError, match="steps must be from 1"):
        insertion(lite, x, torch.rand(1, 1, 224, 224), steps=0)
    with pytest.raises(ValueError, match="score must be one of"):
        deletion(lite, x, torch.rand(1, 1, 224, 224), score="softmax")


def test_confidence_drop_by_hand() -> None:
    model = SumModel(torch.full((1, 1, 2, 2), 0.1))
    result = confidence_drop(model, X, X, 0, fill="zero")
    # M = x / 4, masked = x^2 / 4 sums to 7.5 (logit 0.75); the image sums to 10 (logit 1)
    y, o = 1 / (1 + math.exp(-1.0)), 1 / (1 + math.exp(-0.75))
    assert float(result.drop[0]) == pytest.approx((y - o) / y, rel=1e-5)
    assert result.average_drop == pytest.approx(100 * (y - o) / y, rel=1e-5)
    assert result.increase_in_confidence == 0.0
    upside_down = SumModel(torch.full((1, 1, 2, 2), -0.1))  # masking now raises class 0's score
    flipped = confidence_drop(upside_down, X, X, 0, fill="zero")
    assert float(flipped.drop[0]) == 0.0 and flipped.increase_in_confidence == 100.0


# ----------------------------------------------------------------------------- localisation


def test_pointing_game_hits_and_misses() -> None:
    heat = torch.zeros(1, 1, 20, 20)
    heat[0, 0, 5, 5] = 1.0
    inside = Box("a", 2, 2, 8, 8)
    seven_away = Box("b", 12, 5, 18, 9)  # nearest column 12: 7 pixels from column 5
    assert pointing_game(heat, [inside], tolerance=0).tolist() == [True]
    assert pointing_game(heat, [seven_away], tolerance=7).tolist() == [True]
    assert pointing_game(heat, [seven_away], tolerance=6.9).tolist() == [False]
    assert pointing_game(heat, [[seven_away, inside]], tolerance=0).tolist() == [True]  # any box
    both = torch.cat([heat, heat.flip(-1)])  # second peak at column 14: inside box b
    assert pointing_game(both, [seven_away, seven_away], tolerance=0).tolist() == [False, True]
    with pytest.raises(ValueError, match="1 boxes given for 2 maps"):
        pointing_game(both, [inside])


def test_energy_in_box_by_hand() -> None:
    heat = torch.zeros(1, 1, 4, 4)
    heat[0, 0, 0, 0] = 3.0
    heat[0, 0, 3, 3] = 1.0
    heat[0, 0, 1, 1] = -5.0  # negative values do not count
    assert float(energy_in_box(heat, [Box("corner", 0, 0, 2, 2)])[0]) == pytest.approx(0.75)
    assert float(energy_in_box(torch.zeros(1, 1, 4, 4), [Box("x", 0, 0, 2, 2)])[0]) == 0.0


def test_localisation_on_a_cat_and_dog_scene(lite) -> None:
    scene = make_scene(["chelsea", "chicky_512"])
    rows = localisation(lite, scene, "grad_cam")
    assert [r["label"] for r in rows] == ["chelsea", "chicky_512"]
    assert [r["target"] for r in rows] == [285, 154]
    assert all(r["hit"] for r in rows)  # Grad-CAM points at the cat for "cat", the dog for "dog"
    assert all(r["energy"] > 0.5 for r in rows)


# ----------------------------------------------------------------------------- sanity check


def test_spearman_by_hand() -> None:
    assert spearman(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 3.0, 2.0])) == pytest.approx(0.5)
    # ties share their average rank: (1.5, 1.5, 3) against (1, 2, 3)
    assert spearman(torch.tensor([1.0, 1.0, 2.0]), torch.tensor([1.0, 2.0, 3.0])) == pytest.approx(1.5 / math.sqrt(3))
    assert spearman(torch.tensor([5.0, 5.0]), torch.tensor([1.0, 2.0])) == 0.0


def test_randomisation_check_reproduces_the_published_finding(lite) -> None:
    before = copy.deepcopy(lite.model.state_dict())
    x = lite.preprocess(["chelsea", "coffee"])
    top = ["classifier", "head", "blocks.15"]
    gradient = randomization_check(lite, x, "gradient", layers=top)
    cam = randomization_check(lite, x, "grad_cam", layers=top)
    guided = randomization_check(lite, x, "guided_backprop", layers=top)
    assert gradient.layers == top and gradient.correlations.shape == (3, 2)
    # measured: gradient about 0.2-0.4, Grad-CAM about -0.2-0.3, guided backprop 0.98-1.0
    assert (gradient.correlations[-1] < 0.5).all()
    assert (cam.correlations[-1] < 0.5).all()
    assert (guided.correlations > 0.9).all()  # guided backprop barely notices (Adebayo et al.)
    assert all(torch.equal(before[k], v) for k, v in lite.model.state_dict().items())
    with pytest.raises(ValueError, match="layer 'blocks.99' is not in this model"):
        randomization_check(lite, x, "gradient", layers=["blocks.99"])


# ----------------------------------------------------------------------------- viz and compare


def test_normalize_and_reduce_by_hand() -> None:
    m = torch.tensor([[[[-2.0, 1.0], [0.0, 4.0]]]])
    assert normalize(m)[0].tolist() == [[0.5, 0.25], [0.0, 1.0]]
    assert normalize(m, sign="positive")[0].tolist() == [[0.0, 0.25], [0.0, 1.0]]
    assert normalize(m, sign="negative")[0].tolist() == [[1.0, 0.0], [0.0, 0.0]]
    assert normalize(m, sign="all")[0].tolist() == [[-0.5, 0.25], [0.0, 1.0]]
    # signed maps keep 0 at 0: "minmax" scales them like "max"
    assert normalize(m, sign="all", scaling="minmax")[0].tolist() == [[-0.5, 0.25], [0.0, 1.0]]
    lifted = torch.tensor([[[[1.0, 2.0], [3.0, 5.0]]]])
    assert normalize(lifted, scaling="minmax")[0].tolist() == [[0.0, 0.25], [0.5, 1.0]]
    # percentile scaling clips the few largest values to 1
    ramp = torch.arange(101.0).view(1, 1, 1, 101)
    assert normalize(ramp, scaling="percentile", percentile=50)[0, 0, [0, 25, 50, 100]].tolist() == [0.0, 0.5, 1.0, 1.0]
    assert normalize(torch.zeros(1, 1, 2, 2))[0].tolist() == [[0.0, 0.0], [0.0, 0.0]]
    rgb = torch.tensor([1.0, -2.0, 2.0]).view(1, 3, 1, 1)
    assert reduce_channels(rgb, "sum").item() == 1.0
    assert reduce_channels(rgb, "abs_sum").item() == 5.0
    assert reduce_channels(rgb, "max_abs").item() == 2.0
    assert reduce_channels(rgb, "l2").item() == 3.0
    with pytest.raises(ValueError, match="sign must be one of"):
        normalize(m, sign="both")


def test_overlay_keeps_cold_pixels_and_colours_hot_ones() -> None:
    picture = np.full((4, 4, 3), 0.5, dtype=np.float32)
    heat = torch.zeros(4, 4)
    heat[0, 0] = 1.0
    out = overlay(picture, heat, alpha=1.0, cmap="gray")
    assert out.shape == (4, 4, 3)
    np.testing.assert_allclose(out[1:, 1:], 0.5)  # weight 0: the photo
    np.testing.assert_allclose(out[0, 0], 1.0)  # weight 1, colour white


def test_compare_runs_every_method_on_every_image(lite, tmp_path) -> None:
    result = compare(
        lite, ["chelsea", "coffee"], ["gradient", "grad_cam"], metrics=("deletion", "average_drop"), metric_steps=10
    )
    assert [(r["image"], r["method"]) for r in result.rows] == [
        ("chelsea", "gradient"), ("coffee", "gradient"), ("chelsea", "grad_cam"), ("coffee", "grad_cam")
    ]
    assert [r["class"] for r in result.rows[:2]] == ["Egyptian cat", "espresso"]
    assert all(0 <= r["deletion"] <= 1 and r["seconds"] > 0 for r in result.rows)
    assert result.maps[("coffee", "grad_cam")].shape == (1, 1, 224, 224)
    table = result.table().splitlines()
    assert len(table) == 6 and table[0].startswith("| image | method | target | class | seconds | deletion")
    figure = result.figure()
    assert len(figure.axes) == 3 * 2  # the images, then one row per method
    assert result.to_csv(tmp_path / "r.csv").read_text().count("\n") == 5
    with pytest.raises(ValueError, match="unknown method 'gradcam'"):
        compare(lite, ["chelsea"], ["gradcam"])
    with pytest.raises(ValueError, match="unknown metric"):
        compare(lite, ["chelsea"], ["gradient"], metrics=("auc",))


def test_show_grid_titles() -> None:
    figure = show_grid([[np.zeros((2, 2, 3))] * 2], row_titles=["r"], column_titles=["a", "b"])
    assert [ax.get_title() for ax in figure.axes] == ["a", "b"]
