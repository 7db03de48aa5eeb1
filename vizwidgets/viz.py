"""Turning raw attribution tensors into pictures: channel reduction, normalisation, overlays.

Methods return raw values (:mod:`vizwidgets.attribution`); everything about display lives
here, so that two methods shown side by side are normalised the same way.

- :func:`reduce_channels`: ``(N, 3, H, W)`` pixel attributions -> ``(N, 1, H, W)``.
- :func:`normalize`: a map -> values in [0, 1] (or [-1, 1] for ``sign="all"``), by its
  maximum, by min-max, or by a percentile (outliers clipped).
- :func:`overlay`: a heatmap blended over the image, ``(H, W, 3)`` in [0, 1].
- :func:`show_grid`: a matplotlib figure of rows x columns of images and overlays.
- :func:`colorbar`: a colour bar for a map drawn with :func:`overlay` (whose pixels carry no
  colour scale of their own) or for any ``imshow``.
- :class:`Display` and :func:`render`: how a map is drawn (opacity, colours, sign, scaling)
  and the drawing itself, ``(H, W, 3)`` uint8: what the Explorer, ``explain()`` results and
  the command line all show.

Nothing here imports ipywidgets; matplotlib is imported only by :func:`show_grid`,
:func:`colorbar` and :func:`colorize`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "REDUCTIONS", "SIGNS", "SCALINGS", "Display", "reduce_channels", "normalize", "colorize", "overlay", "render",
    "show_grid", "colorbar",
]

REDUCTIONS = ("sum", "abs_sum", "max_abs", "l2")
SIGNS = ("absolute", "positive", "negative", "all")
SCALINGS = ("max", "minmax", "percentile")


def _as_batch(maps: Any) -> Tensor:
    if isinstance(maps, np.ndarray):
        maps = torch.from_numpy(maps)
    if not isinstance(maps, Tensor):
        raise TypeError(f"maps must be a torch.Tensor or numpy array, got {type(maps).__name__}")
    x = maps.detach().float()
    if x.dim() == 2:
        x = x[None, None]
    elif x.dim() == 3:
        x = x[None] if x.shape[0] in (1, 3) else x[:, None]
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"maps must be (H, W), (C, H, W) or (N, C, H, W) with C 1 or 3, got shape {tuple(maps.shape)}")
    return x


def reduce_channels(maps: Any, how: str = "sum") -> Tensor:
    """``(N, 3, H, W)`` -> ``(N, 1, H, W)``; one-channel maps pass through.

    ``"sum"``: the signed sum over colour channels (keeps the sign, as gradient x input and
    LRP mean it); ``"abs_sum"``: sum of absolute values; ``"max_abs"``: the largest absolute
    value (Simonyan et al. 2014's saliency map); ``"l2"``: the Euclidean norm.
    """
    if how not in REDUCTIONS:
        raise ValueError(f"how must be one of {list(REDUCTIONS)}, got {how!r}")
    x = _as_batch(maps)
    if x.shape[1] == 1:
        return x
    if how == "sum":
        return x.sum(dim=1, keepdim=True)
    if how == "abs_sum":
        return x.abs().sum(dim=1, keepdim=True)
    if how == "max_abs":
        return x.abs().amax(dim=1, keepdim=True)
    return x.pow(2).sum(dim=1, keepdim=True).sqrt()


def normalize(
    maps: Any,
    *,
    sign: str = "absolute",
    scaling: str = "max",
    percentile: float = 99.0,
    reduce: str = "sum",
) -> Tensor:
    """Scale each map of a batch for display: ``(N, H, W)`` float.

    Parameters
    ----------
    maps:
        ``(N, 1, H, W)`` or ``(N, 3, H, W)`` (reduced with ``reduce`` first), or one map.
    sign:
        Which values to show: ``"absolute"`` (``|m|``), ``"positive"`` (``max(m, 0)``),
        ``"negative"`` (``max(-m, 0)``): results in [0, 1]; ``"all"``: signed, in [-1, 1],
        scaled by the largest absolute value so that 0 stays 0.
    scaling:
        ``"max"``: divide by the maximum; ``"minmax"``: ``(m - min) / (max - min)``;
        ``"percentile"``: divide by the ``percentile``-th percentile and clip to 1, so a few
        extreme pixels do not wash out the rest (the usual choice for gradients). With
        ``sign="all"`` the scaling applies to ``|m|`` and 0 stays 0, so "minmax" is "max".
    A map with nothing to show (all zero) stays zero.
    """
    if sign not in SIGNS:
        raise ValueError(f"sign must be one of {list(SIGNS)}, got {sign!r}")
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {list(SCALINGS)}, got {scaling!r}")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile!r}")
    m = reduce_channels(maps, reduce)[:, 0]
    if sign == "absolute":
        m = m.abs()
    elif sign == "positive":
        m = m.clamp(min=0)
    elif sign == "negative":
        m = (-m).clamp(min=0)
    flat = m.flatten(1)
    if sign == "all":
        top = flat.abs().quantile(percentile / 100, dim=1) if scaling == "percentile" else flat.abs().amax(dim=1)
        top = top.view(-1, 1, 1)
        return torch.where(top > 0, (m / top.clamp(min=1e-30)).clamp(-1, 1), torch.zeros_like(m))
    if scaling == "minmax":
        low = flat.amin(dim=1).view(-1, 1, 1)
        span = flat.amax(dim=1).view(-1, 1, 1) - low
        return torch.where(span > 0, (m - low) / span.clamp(min=1e-30), torch.zeros_like(m))
    top = flat.quantile(percentile / 100, dim=1) if scaling == "percentile" else flat.amax(dim=1)
    top = top.view(-1, 1, 1)
    return torch.where(top > 0, (m / top.clamp(min=1e-30)).clamp(0, 1), torch.zeros_like(m))


def colorize(heatmap: Any, cmap: str = "jet", *, signed: bool = False) -> np.ndarray:
    """``(H, W)`` values in [0, 1] (or [-1, 1] with ``signed``) -> ``(H, W, 3)`` RGB in [0, 1]."""
    import matplotlib

    values = heatmap.detach().cpu().numpy() if isinstance(heatmap, Tensor) else np.asarray(heatmap)
    if values.ndim != 2:
        raise ValueError(f"heatmap must be (H, W), got shape {values.shape}")
    if signed:
        values = (values + 1.0) / 2.0
    return matplotlib.colormaps[cmap](np.clip(values, 0.0, 1.0))[..., :3].astype(np.float32)


def overlay(image: Any, heatmap: Any, *, alpha: float = 0.5, cmap: str = "jet", signed: bool = False) -> np.ndarray:
    """Blend a coloured heatmap over an image: ``(1 - alpha w) image + alpha w colour``.

    ``image``: ``(H, W, 3)`` in [0, 1] (``model.preprocess.inverse(x)[0]``); ``heatmap``:
    ``(H, W)`` in [0, 1] (one map of :func:`normalize`), resized bilinearly if its size
    differs. The weight ``w`` is the heatmap value itself (``|value|`` when signed), so cold
    regions keep the photo visible. Returns ``(H, W, 3)`` float32 in [0, 1].
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    picture = image.detach().cpu().numpy() if isinstance(image, Tensor) else np.asarray(image, dtype=np.float32)
    if picture.ndim != 3 or picture.shape[-1] != 3:
        raise ValueError(f"image must be (H, W, 3) in [0, 1], got shape {picture.shape}")
    if isinstance(heatmap, Tensor):
        heat = heatmap.detach().float().cpu()
    else:
        heat = torch.as_tensor(np.asarray(heatmap, dtype=np.float32))
    if heat.dim() != 2:
        raise ValueError(f"heatmap must be (H, W), got shape {tuple(heat.shape)}")
    if tuple(heat.shape) != picture.shape[:2]:
        heat = torch.nn.functional.interpolate(
            heat[None, None], size=picture.shape[:2], mode="bilinear", align_corners=False
        )[0, 0]
    colour = colorize(heat, cmap, signed=signed)
    weight = alpha * np.abs(heat.numpy())[..., None]
    return np.clip((1 - weight) * picture + weight * colour, 0.0, 1.0).astype(np.float32)


def show_grid(
    cells: Sequence[Sequence[np.ndarray]],
    *,
    row_titles: Sequence[str] | None = None,
    column_titles: Sequence[str] | None = None,
    cell_size: float = 2.2,
) -> Any:
    """A matplotlib figure of ``rows x columns`` pictures (each ``(H, W, 3)`` or ``(H, W)``
    in [0, 1]), titled by row and by column, axes hidden. Returns the figure."""
    import matplotlib.pyplot as plt

    rows = len(cells)
    columns = max((len(r) for r in cells), default=0)
    if rows == 0 or columns == 0:
        raise ValueError("show_grid needs at least one picture")
    fig, axes = plt.subplots(rows, columns, figsize=(cell_size * columns, cell_size * rows), squeeze=False)
    for r in range(rows):
        for c in range(columns):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(cells[r]):
                picture = cells[r][c]
                ax.imshow(picture, cmap="gray" if np.ndim(picture) == 2 else None, vmin=0, vmax=1)
            else:
                ax.axis("off")
            if r == 0 and column_titles is not None and c < len(column_titles):
                ax.set_title(column_titles[c], fontsize=9)
            if c == 0 and row_titles is not None and r < len(row_titles):
                ax.set_ylabel(row_titles[r], fontsize=9)
    fig.tight_layout()
    return fig


def colorbar(
    ax: Any,
    cmap: str = "jet",
    *,
    vmin: float = 0.0,
    vmax: float = 1.0,
    label: str | None = None,
    mappable: Any = None,
) -> Any:
    """Add a colour bar beside the matplotlib axes ``ax``; returns it.

    With ``mappable`` (what ``ax.imshow`` returned) the bar shows that image's scale. Without
    it the bar shows ``cmap`` from ``vmin`` to ``vmax``: the scale of a heatmap drawn with
    :func:`overlay` (``vmin=-1`` for a signed one), since an overlay's pixels are already
    colours. ``label`` is written along the bar.
    """
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    if mappable is None:
        if not vmin < vmax:
            raise ValueError(f"vmin must be below vmax, got {vmin!r} and {vmax!r}")
        mappable = ScalarMappable(norm=Normalize(vmin=vmin, vmax=vmax), cmap=cmap)
    bar = plt.colorbar(mappable, ax=ax, fraction=0.046, pad=0.03)
    if label:
        bar.set_label(label, fontsize=8)
    bar.ax.tick_params(labelsize=8)
    return bar


@dataclass(frozen=True)
class Display:
    """How a map is drawn; changing it needs no model call.

    ``opacity`` of the heatmap over the image (0 to 1), matplotlib colormap name ``cmap``,
    ``sign`` and ``scaling`` as in :func:`normalize`.
    """

    opacity: float = 0.5
    cmap: str = "jet"
    sign: str = "absolute"
    scaling: str = "percentile"


def render(picture: np.ndarray, attribution: Any, display: Display | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8: one image's map (``(C, H, W)`` or ``(1, C, H, W)``), normalised as
    ``display`` says and drawn over ``picture`` (``(H, W, 3)`` in [0, 1]); no model call."""
    display = display or Display()
    heat = normalize(attribution, sign=display.sign, scaling=display.scaling)[0]
    drawn = overlay(picture, heat, alpha=display.opacity, cmap=display.cmap, signed=display.sign == "all")
    return (drawn * 255).round().astype(np.uint8)
