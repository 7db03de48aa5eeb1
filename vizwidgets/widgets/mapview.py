"""A map you can point at: an anywidget that draws an attribution map over its image.

Hovering shows the pixel's coordinates, the raw attribution value there and the class the map
explains. Dragging a box shows the share of the map's energy inside it and whether the map's
maximum falls in it: the energy-based pointing game (Wang et al. 2020, "Score-CAM:
Score-Weighted Visual Explanations for Convolutional Neural Networks", CVPR Workshops) and the
pointing game (Zhang et al. 2018, "Top-down Neural Attention by Excitation Backprop", IJCV),
live. The picture shows as an overlay, as the heatmap alone, or side by side.

The work is split so that the browser only blends and points: Python normalises the map as
:class:`~vizwidgets.viz.Display` says (:func:`vizwidgets.viz.normalize`, the same as
:func:`vizwidgets.viz.render`) and sends it with the picture and the colour map's lookup table;
opacity, colours and the mode then change in the browser without a kernel call. The
JavaScript (``mapview.js``) ships inside the package: no build step, no download.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import torch
import traitlets as T

from vizwidgets.viz import Display, normalize, reduce_channels, render

__all__ = ["MODES", "BoxStats", "MapView", "box_stats", "colour_table", "map_mass"]

#: How the view draws the map: over the picture, alone, or beside the picture.
MODES = ("overlay", "heatmap", "side by side")

_HINT = "point at the picture for the map's value; drag a box to measure it"


@functools.lru_cache(maxsize=32)
def colour_table(cmap: str) -> bytes:
    """The 256 RGB entries (uint8) of matplotlib's colour map ``cmap``: what
    :func:`vizwidgets.viz.colorize` looks up, rounded to bytes."""
    import matplotlib

    colours = matplotlib.colormaps[cmap]
    if colours.N != 256:
        colours = colours.resampled(256)
    table = colours(np.arange(256))[:, :3]  # integers index the table itself
    return bytes(np.round(table * 255).astype(np.uint8).tobytes())


def _resized(m: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(H, W)`` -> ``(height, width)``, bilinear as :func:`vizwidgets.viz.overlay`."""
    if tuple(m.shape) == (height, width):
        return m
    return torch.nn.functional.interpolate(m[None, None], size=(height, width), mode="bilinear",
                                           align_corners=False)[0, 0]


def map_mass(attribution: Any, sign: str, height: int, width: int) -> np.ndarray:
    """The map's energy per picture pixel, ``(height, width)`` float32, non-negative.

    The map reduced over colour channels (signed sum, as everywhere in :mod:`vizwidgets.viz`),
    its sign chosen as the view shows it (``"positive"``: ``max(m, 0)``; ``"negative"``:
    ``max(-m, 0)``; ``"absolute"`` and ``"all"``: ``|m|``), resized bilinearly to the picture,
    unclipped: the share in a box does not depend on the display's scaling.
    """
    m = reduce_channels(attribution, "sum")[0, 0].float().cpu()
    if sign == "positive":
        m = m.clamp(min=0)
    elif sign == "negative":
        m = (-m).clamp(min=0)
    else:
        m = m.abs()
    return _resized(m, height, width).clamp(min=0).numpy().astype(np.float32)


@dataclass(frozen=True)
class BoxStats:
    """What a box says about a map: ``share`` of the energy inside (0 to 1), ``hit`` whether
    the first maximum (row-major order) is inside, and that maximum's ``peak`` ``(x, y)``."""

    share: float
    hit: bool
    peak: tuple[int, int]


def box_stats(mass: np.ndarray, box: tuple[int, int, int, int] | list[int]) -> BoxStats:
    """The energy share and pointing hit of ``box = (left, top, right, bottom)`` (pixels,
    right and bottom excluded) on ``mass`` (:func:`map_mass`). A map without energy scores 0
    and no hit. The browser computes the same in ``mapview.js``."""
    if len(box) != 4:
        raise ValueError(f"box must be (left, top, right, bottom), got {box!r}")
    left, top, right, bottom = (int(v) for v in box)
    values = np.asarray(mass, dtype=np.float64)
    total = float(values.sum())
    inside = float(values[max(top, 0) : max(bottom, 0), max(left, 0) : max(right, 0)].sum())
    row, column = divmod(int(np.argmax(values)), values.shape[1])
    hit = total > 0 and left <= column < right and top <= row < bottom
    return BoxStats(inside / total if total > 0 else 0.0, bool(hit), (column, row))


class MapView(anywidget.AnyWidget):
    """The map view. Call :meth:`show` with a picture and a raw map; set :attr:`mode`,
    :attr:`opacity` or :meth:`set_display` to change how it is drawn.

    ``box`` is the box the user dragged, ``[left, top, right, bottom]`` in picture pixels
    (``[]`` for none); :meth:`box_stats` gives its numbers, as the browser shows them.
    """

    _esm = Path(__file__).with_name("mapview.js")
    picture = T.Bytes(b"").tag(sync=True)  # (H, W, 3) uint8
    heat = T.Bytes(b"").tag(sync=True)  # (H, W) float32, normalised for display
    values = T.Bytes(b"").tag(sync=True)  # (h, w) float32, the raw map reduced over channels
    mass = T.Bytes(b"").tag(sync=True)  # (H, W) float32, map_mass
    lut = T.Bytes(b"").tag(sync=True)  # 256 x 3 uint8
    width = T.Int(0).tag(sync=True)
    height = T.Int(0).tag(sync=True)
    map_width = T.Int(0).tag(sync=True)
    map_height = T.Int(0).tag(sync=True)
    signed = T.Bool(False).tag(sync=True)
    opacity = T.Float(0.5).tag(sync=True)
    mode = T.Unicode("overlay").tag(sync=True)
    label = T.Unicode("").tag(sync=True)
    hint = T.Unicode(_HINT).tag(sync=True)
    scale = T.Float(1.5).tag(sync=True)  # screen pixels per picture pixel
    box = T.List(T.Int(), default_value=[]).tag(sync=True)
    version = T.Int(0).tag(sync=True)  # counts the maps shown; the page marks the one it drew

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pixels: np.ndarray | None = None
        self._map: torch.Tensor | None = None
        self._display = Display()
        self._mass = np.zeros((0, 0), dtype=np.float32)

    @T.validate("mode")
    def _valid_mode(self, proposal: dict) -> str:
        if proposal["value"] not in MODES:
            raise T.TraitError(f"mode must be one of {list(MODES)}, got {proposal['value']!r}")
        return str(proposal["value"])

    @T.validate("box")
    def _valid_box(self, proposal: dict) -> list[int]:
        box = list(proposal["value"])
        if box and (len(box) != 4 or box[0] >= box[2] or box[1] >= box[3]):
            raise T.TraitError(f"box must be [] or [left, top, right, bottom] (left < right, top < bottom); got {box}")
        return box

    def show(self, pixels: np.ndarray, attribution: Any, display: Display | None = None, label: str = "") -> None:
        """Draw ``attribution`` (``(1, C, h, w)``, raw) over ``pixels`` (``(H, W, 3)`` in [0, 1])
        as ``display`` says; ``label`` names the class explained (shown on hover)."""
        picture = np.asarray(pixels, dtype=np.float32)
        if picture.ndim != 3 or picture.shape[-1] != 3:
            raise ValueError(f"pixels must be (H, W, 3) in [0, 1], got shape {picture.shape}")
        attribution = attribution.detach().float().cpu() if isinstance(attribution, torch.Tensor) \
            else torch.as_tensor(np.asarray(attribution, dtype=np.float32))
        raw = reduce_channels(attribution, "sum")[0, 0]
        self._pixels, self._map = picture, attribution
        display = display or self._display
        height, width = picture.shape[:2]
        with self.hold_sync():
            self.picture = np.round(np.clip(picture, 0, 1) * 255).astype(np.uint8).tobytes()
            self.width, self.height = width, height
            self.values = raw.numpy().astype(np.float32).tobytes()
            self.map_height, self.map_width = raw.shape
            self.label = label
            self._restyle(display, force=True)
            self.version += 1

    def set_display(self, display: Display) -> None:
        """Draw the same map another way: opacity and colours change only in the browser; a new
        sign or scaling sends the map normalised again (no model call either way)."""
        with self.hold_sync():
            self._restyle(display)
            self.version += 1

    def _restyle(self, display: Display, force: bool = False) -> None:
        old, self._display = self._display, display
        self.opacity = float(display.opacity)
        self.lut = colour_table(display.cmap)
        self.signed = display.sign == "all"
        if self._map is None or self._pixels is None:
            return
        if force or (old.sign, old.scaling) != (display.sign, display.scaling):
            height, width = self._pixels.shape[:2]
            heat = normalize(self._map, sign=display.sign, scaling=display.scaling)[0]
            self.heat = _resized(heat, height, width).numpy().astype(np.float32).tobytes()
            self._mass = map_mass(self._map, display.sign, height, width)
            self.mass = self._mass.tobytes()

    def box_stats(self) -> BoxStats | None:
        """The numbers of the box on screen (None without a box or a map)."""
        if not self.box or self._map is None:
            return None
        return box_stats(self._mass, self.box)

    def rendered(self) -> np.ndarray:
        """``(H, W, 3)`` uint8: the overlay as :func:`vizwidgets.viz.render` draws it (what the
        browser shows in "overlay" mode, to within rounding)."""
        if self._map is None or self._pixels is None:
            raise ValueError("nothing is shown yet: call show() first")
        return render(self._pixels, self._map, self._display)
