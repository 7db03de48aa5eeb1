"""Looking inside a network: layer activations, the strongest channels, first-layer filters,
and grids to show many feature maps at once.

Hooks exist only while a function runs (:mod:`vizwidgets._hooks`); the model is left as it
was. ``model`` is anything :func:`vizwidgets.models.adapt` takes. Inputs are anything
:meth:`vizwidgets.models.ModelAdapter.inputs` takes: for a model with a preprocessing,
bundled names, paths, PIL images, arrays, or a preprocessed ``(N, 3, H, W)`` tensor; for a
bare module, the tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from vizwidgets._hooks import capture_outputs, get_module
from vizwidgets.attribution.base import check_inputs, prepared
from vizwidgets.models.adapter import adapt

__all__ = ["TopChannels", "activations", "top_channels", "first_layer_filters", "feature_grid"]


def _module_and_inputs(model: Any, images: Any) -> tuple[nn.Module, Tensor]:
    """The module of ``model`` and ``images`` as its checked, preprocessed batch."""
    adapter = adapt(model)
    return adapter.module, check_inputs(adapter.inputs(images), adapter.module)


def activations(model: Any, images: Any, layers: str | Sequence[str]) -> Any:
    """The output of one layer (a tensor) or of several (a dict name -> tensor) for ``images``.

    One forward pass without gradients, in eval mode; the tensors are detached, ``(N, C, h, w)``
    for convolutional layers. Unknown layer names raise ValueError listing close names.
    """
    module, x = _module_and_inputs(model, images)
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise ValueError("no layers given: pass a layer name or a list of them (vizwidgets.list_layers(model))")
    for name in names:
        get_module(module, name)
    with prepared(module), torch.no_grad(), capture_outputs(module, names) as outputs:
        module(x)
    found = {name: outputs[name] for name in names}
    return found[names[0]] if isinstance(layers, str) else found


class TopChannels(NamedTuple):
    """The ``k`` channels with the largest mean activation, per image, strongest first."""

    indices: Tensor  # (N, k) long
    values: Tensor  # (N, k) mean activations


def top_channels(model: Any, images: Any, layer: str, k: int = 8) -> TopChannels:
    """The ``k`` channels of ``layer`` with the largest mean activation over positions."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    output = activations(model, images, layer)
    if not isinstance(output, Tensor) or output.dim() != 4:
        raise ValueError(f"layer {layer!r} does not output (N, C, h, w) feature maps; pick a convolutional layer")
    channels = output.shape[1]
    if k > channels:
        raise ValueError(f"k={k} but layer {layer!r} has only {channels} channels")
    values, indices = output.mean(dim=(2, 3)).topk(k, dim=1)
    return TopChannels(indices, values)


def first_layer_filters(model: Any) -> Tensor:
    """The filters of the first convolution that sees RGB, ``(K, 3, kh, kw)``, mapped to
    [0, 1] for display: ``0.5 + w / (2 max|w|)`` per filter, so 0 is grey and the sign shows
    as light or dark."""
    for sub in adapt(model).module.modules():
        if isinstance(sub, nn.Conv2d) and sub.in_channels == 3:
            weight = sub.weight.detach().float()
            scale = weight.abs().amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-12)
            return (0.5 + weight / (2 * scale)).cpu()
    raise ValueError("the model has no convolution with 3 input channels, so no RGB filters to show")


def feature_grid(
    maps: Tensor,
    columns: int | None = None,
    *,
    normalize: str = "each",
    padding: int = 1,
    pad_value: float = 1.0,
) -> np.ndarray:
    """Tile feature maps into one image for ``plt.imshow``.

    Parameters
    ----------
    maps:
        ``(K, h, w)`` (K grey maps; a batch ``(1, K, h, w)`` is accepted) or ``(K, 3, h, w)``
        colour images such as :func:`first_layer_filters`.
    columns:
        Tiles per row; default ``ceil(sqrt(K))``.
    normalize:
        ``"each"``: every tile min-max scaled to [0, 1] on its own; ``"all"``: one scale for all
        tiles, so they can be compared; ``"none"``: values used as they are (clipped to [0, 1]).
        A constant tile becomes 0.
    padding, pad_value:
        Pixels between tiles and their value.

    Returns
    -------
    ``(H, W)`` for grey maps or ``(H, W, 3)`` for colour, float32 in [0, 1].
    """
    if not isinstance(maps, Tensor):
        raise TypeError(f"maps must be a torch.Tensor, got {type(maps).__name__}")
    x = maps.detach().float().cpu()
    if x.dim() == 4 and x.shape[0] == 1 and x.shape[1] != 3:
        x = x[0]
    if x.dim() == 3:
        x = x[:, None]
    if x.dim() != 4 or x.shape[1] not in (1, 3) or x.shape[0] == 0:
        raise ValueError(f"maps must be (K, h, w), (1, K, h, w) or (K, 3, h, w), got shape {tuple(maps.shape)}")
    if normalize not in ("each", "all", "none"):
        raise ValueError(f"normalize must be 'each', 'all' or 'none', got {normalize!r}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be a whole number of pixels >= 0, got {padding!r}")
    k, c, h, w = x.shape
    if normalize == "none":
        x = x.clamp(0.0, 1.0)
    else:
        dims = (1, 2, 3) if normalize == "each" else (0, 1, 2, 3)
        low = x.amin(dim=dims, keepdim=True)
        span = x.amax(dim=dims, keepdim=True) - low
        x = torch.where(span > 0, (x - low) / span.clamp(min=1e-12), torch.zeros_like(x))
    if columns is None:
        columns = int(np.ceil(np.sqrt(k)))
    if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
        raise ValueError(f"columns must be a positive int, got {columns!r}")
    rows = -(-k // columns)
    grid = torch.full((c, rows * (h + padding) + padding, columns * (w + padding) + padding), float(pad_value))
    for i in range(k):
        r, col = divmod(i, columns)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top : top + h, left : left + w] = x[i]
    out = grid.permute(1, 2, 0).numpy()
    return out[..., 0] if c == 1 else out
