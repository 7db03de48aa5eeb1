"""Occlusion: slide a square over the image and watch the class score drop.

Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional Networks", ECCV (section 4.2,
occlusion sensitivity with a grey square).

For an image ``x`` and target score ``S = S_c``, a window ``w`` (a ``k x k`` square at top-left
``(i, j)``, all channels) is replaced by the fill value ``v`` to give ``x^(w)``; its effect is
the score drop ``D_w = S(x) - S(x^(w))``. The attribution of pixel ``p`` is the mean drop of the
windows that cover it:

``M(p) = (1 / |W(p)|) * sum_{w in W(p)} [S(x) - S(x^(w))]``,  ``W(p) = {w : p in w}``.

Window tops are ``0, s, 2s, ...`` with stride ``s``, plus ``H - k`` when those miss the bottom
edge (the same for lefts and ``W``), so every pixel is covered (``s <= k`` is required). Positive
values: hiding the pixel lowers the score, the pixel supports the class.

Cost: one forward pass per window and image (no backward), ``chunk_size`` occluded images per
pass, under ``no_grad``. Shapes: ``inputs`` ``(N, C, H, W)``, result ``(N, 1, H, W)``: the
window covers every channel, so there is one value per pixel.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from vizwidgets.attribution.base import Attribution, Option, Target, chunks, select_scores
from vizwidgets.attribution.limits import rows_per_pass

__all__ = ["Occlusion", "occlusion", "window_starts"]


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Start offsets of the windows along one side: ``0, s, 2s, ...`` and ``size - window``.

    >>> window_starts(224, 32, 16)[-3:]
    [160, 176, 192]
    >>> window_starts(5, 2, 2)
    [0, 2, 3]
    """
    if not 1 <= window <= size:
        raise ValueError(f"window must be from 1 to the image side {size}, got {window}")
    if not 1 <= stride <= window:
        raise ValueError(f"stride must be from 1 to the window size {window}, got {stride}")
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


def _coverage(size: int, window: int, stride: int, like: Tensor) -> Tensor:
    """``(R, size)`` 0/1 matrix: row ``r`` marks the pixels of the ``r``-th window position."""
    starts = torch.tensor(window_starts(size, window, stride), device=like.device)
    pixels = torch.arange(size, device=like.device)
    inside = (pixels[None, :] >= starts[:, None]) & (pixels[None, :] < starts[:, None] + window)
    return inside.to(like.dtype)


def _occlusion(
    model: nn.Module,
    x: Tensor,
    target: Tensor | None,
    fill: Tensor,
    window: int,
    stride: int,
    chunk_size: int,
) -> Tensor:
    """The maths only: ``M(p)``, the mean score drop over the windows covering ``p``.

    ``x``: ``(N, C, H, W)``; ``fill``: ``(1, C, 1, 1)`` in preprocessed space; returns
    ``(N, 1, H, W)``. All ``N * R_y * R_x`` occluded images are run ``chunk_size`` at a time.
    """
    n, _, h, w = x.shape
    rows = _coverage(h, window, stride, x)  # (R_y, H)
    cols = _coverage(w, window, stride, x)  # (R_x, W)
    per_image = rows.shape[0] * cols.shape[0]
    with torch.no_grad():
        clean, target = select_scores(model(x), target)
        drops = torch.empty(n * per_image, device=x.device, dtype=x.dtype)
        for part in chunks(n * per_image, chunk_size):
            index = torch.arange(part.start, part.stop, device=x.device)
            image, position = index // per_image, index % per_image
            inside = rows[position // cols.shape[0], :, None] * cols[position % cols.shape[0], None, :]
            occluded = torch.where(inside[:, None].bool(), fill, x[image])  # (B, C, H, W)
            scores, _ = select_scores(model(occluded), target[image])
            drops[part] = clean[image] - scores
        # sum over windows as a separable product: sum_yx D[y, x] rows[y, p_y] cols[x, p_x]
        summed = torch.einsum("nyx,yh,xw->nhw", drops.view(n, rows.shape[0], cols.shape[0]), rows, cols)
        count = rows.sum(dim=0)[:, None] * cols.sum(dim=0)[None, :]  # |W(p)|, (H, W)
    return (summed / count)[:, None]


class Occlusion(Attribution):
    """Occlusion sensitivity (Zeiler & Fergus 2014).

    ``M(p) = (1 / |W(p)|) sum_{w in W(p)} [S_c(x) - S_c(x^(w))]``: the mean drop of the target
    logit over the ``window x window`` squares that cover pixel ``p`` when each, in turn, is
    set to ``fill``. Returns ``(N, 1, H, W)`` (one value per pixel: the square covers all
    channels). The target (None: the predicted class) is fixed on the clean image.

    Options
    -------
    window:
        Side of the square in pixels (default 32); at most the image's shorter side.
    stride:
        Step between squares, at most ``window`` so that every pixel is covered; None (default):
        half the window, so each pixel is covered by up to 4 squares. With the defaults a
        224 x 224 image takes 13 x 13 = 169 forward passes.
    fill:
        Pixel value in [0, 1] the square is set to in every channel (0 black, 1 white), turned
        into model input with the preprocessing's mean and std (so it needs a
        :class:`~vizwidgets.models.LoadedModel`, or ``adapt(module, mean=..., std=...)``).
        None (default): the preprocessed value 0, the preprocessing's mean colour: the paper's
        grey square, and the neutral value of any model whose preprocessing subtracts a mean.
    chunk_size:
        Occluded images per forward pass (default 4). On 2 CPU threads (default model,
        224 x 224, 169 windows) chunks of 2 to 4 took about 2.3 s, single images 4.0 s and
        chunks of 16 5.3 s or more: big batches lose on CPU. On a GPU a larger chunk is faster.
        An upper bound: a pass never takes more images than fit the memory budget
        (:func:`~vizwidgets.attribution.limits.rows_per_pass`).
    """

    name = "occlusion"
    title = "Occlusion"
    family = "perturbation"
    output = "map"
    description = "Slide a grey square over the image: where hiding it drops the class score."
    reference = (
        "Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks, ECCV"
    )
    options = (
        Option("window", 32, "int", "side of the occluding square, in pixels", 1, 4096, interactive=(16, 112)),
        Option(
            "stride", None, "int", "step between squares, in pixels, at most the window; None: half the window",
            1, 4096, nullable=True,
        ),
        Option(
            "fill", None, "float",
            "pixel value of the square, 0 (black) to 1 (white); None: the mean colour",
            0.0, 1.0, nullable=True,
        ),
        Option(
            "chunk_size", 4, "int", "occluded images per forward pass, at most (capped by the memory budget)", 1, 4096
        ),
    )

    def __init__(self, model: Any, layer: str | None = None) -> None:
        super().__init__(model, layer)
        #: The preprocessing's mean and std in [0, 1] pixel units (None: unknown).
        self.pixel_mean: tuple[float, ...] | None = self.adapter.mean
        self.pixel_std: tuple[float, ...] | None = self.adapter.std

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Check each option, that ``stride <= window``, and that a fill value can be mapped."""
        checked = super().check_options(options)
        if checked["stride"] is None:
            checked["stride"] = max(1, checked["window"] // 2)
        if checked["stride"] > checked["window"]:
            raise ValueError(
                f"{self.name}: option 'stride' ({checked['stride']}) must be at most 'window' "
                f"({checked['window']}), or some pixels would never be occluded"
            )
        if checked["fill"] is not None and self.pixel_mean is None:
            raise ValueError(
                f"{self.name}: option 'fill'={checked['fill']!r} is a pixel value, and turning it into "
                "model input needs the preprocessing's mean and std; use a model from "
                "vizwidgets.load_model (or vizwidgets.models.adapt(module, mean=..., std=...)), "
                "or fill=None (the preprocessed 0, the mean colour)"
            )
        return checked

    def fill_value(self, channels: int, fill: float | None) -> Tensor:
        """The fill as model input, ``(1, channels, 1, 1)``: ``(fill - mean) / std``, or 0."""
        if fill is None:
            return torch.zeros(1, channels, 1, 1)
        assert self.pixel_mean is not None and self.pixel_std is not None
        if len(self.pixel_mean) != channels:
            raise ValueError(
                f"the preprocessing has {len(self.pixel_mean)} channels but the inputs have {channels}"
            )
        mean = torch.tensor(self.pixel_mean).view(1, channels, 1, 1)
        std = torch.tensor(self.pixel_std).view(1, channels, 1, 1)
        return (fill - mean) / std

    def _attribute(
        self, x: Tensor, target: Tensor | None, *, window: int, stride: int | None, fill: float | None,
        chunk_size: int,
    ) -> Tensor:
        h, w = x.shape[-2:]
        if window > min(h, w):
            raise ValueError(
                f"{self.name}: option 'window' ({window}) must be at most the image's shorter side "
                f"({min(h, w)} for inputs of {h} x {w})"
            )
        stride = max(1, window // 2) if stride is None else stride
        value = self.fill_value(x.shape[1], fill).to(x.device, x.dtype)
        chunk_size = rows_per_pass(self.model, h, w, chunk_size, backward=False)
        return _occlusion(self.model, x, target, value, window, stride, chunk_size)


def occlusion(
    model: Any,
    inputs: Tensor,
    target: Target = None,
    *,
    window: int = 32,
    stride: int | None = None,
    fill: float | None = None,
    chunk_size: int = 4,
) -> Tensor:
    """Occlusion sensitivity (Zeiler & Fergus 2014); see :class:`Occlusion`."""
    return Occlusion(model).attribute(
        inputs, target, window=window, stride=stride, fill=fill, chunk_size=chunk_size
    )
