"""Activation maximisation: the image a channel, a neuron or a class "wants to see".

Start from random noise and climb the gradient of an objective with respect to the image
(Erhan, Bengio, Courville & Vincent 2009, "Visualizing Higher-Layer Features of a Deep
Network", Univ. Montreal TR 1341), for a class score with an L2 penalty (Simonyan, Vedaldi &
Zisserman 2014, "Deep Inside Convolutional Networks", ICLR workshop: class model
visualisation), and with the parametrisation and transformation robustness of Olah, Mordvintsev
& Schubert 2017, "Feature Visualization", Distill.

Objectives (``a`` is the layer's output ``(N, C, h, w)`` for the image, ``S`` the logits):

- :class:`Channel` ``(layer, c)``: ``mean_ij a[c, i, j]``;
- :class:`Neuron` ``(layer, c, (i, j))``: ``a[c, i, j]`` (default: the centre position);
- :class:`ClassLogit` ``(c)``: ``S_c`` (the logit, not the probability: the softmax can be
  raised by lowering the other classes, which makes worse pictures; Simonyan et al. 2014).

Each step maximises ``objective(T(image)) - l2 * mean((image - 0.5)^2) - tv * TV(image)``
with Adam, ``T`` a random transformation (jitter, scale, rotation) drawn anew each step, which
keeps the optimiser from exploiting single pixels. Two parametrisations:

- ``"pixels"``: the image itself, clamped to [0, 1] after every step; ``blur_every`` blurs it
  every few steps (Yosinski et al. 2015's periodic blur);
- ``"fourier"``: the image is ``sigmoid(C @ irfft2(w * f^-decay))`` with learnable Fourier
  coefficients ``w``, frequencies scaled by ``1 / f`` so that all of them move at the speed
  natural images have, and colours decorrelated by ``C``, the square root of the colour
  covariance of the bundled photos (Olah et al. 2017, "preconditioning"). It gives smoother,
  more natural images for the same steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vizwidgets._hooks import capture_outputs, get_module
from vizwidgets._ops import gaussian_blur, total_variation
from vizwidgets.attribution.base import prepared
from vizwidgets.data import load_image, sample_images
from vizwidgets.synthesis._common import (
    MAX_LR,
    MAX_SIDE,
    Callback,
    ImageResult,
    PixelModel,
    check_positive,
    check_seed,
    check_steps,
    finite_or_stop,
    generator,
    image_size,
    min_side,
    pixel_model,
    run_loop,
)
from vizwidgets.synthesis.objectives import Channel, ClassLogit, Neuron, Objective, as_objective

__all__ = [
    "Channel",
    "Neuron",
    "ClassLogit",
    "Objective",
    "Visualization",
    "maximize",
    "PARAMETRIZATIONS",
    "MAX_PENALTY",
    "color_correlation",
    "random_transform",
]

PARAMETRIZATIONS = ("fourier", "pixels")

#: The largest weight of the l2 and total-variation penalties (objectives are logits or
#: activations of order 1 to 100; a weight of 1e6 already flattens any image to grey).
MAX_PENALTY: float = 1e6


# ----------------------------------------------------------------------------- parametrisations


@lru_cache(maxsize=1)
def color_correlation() -> Tensor:
    """``C`` (3x3, float32): the square root of the RGB covariance of the bundled photos,
    scaled so that its largest column has norm 1. ``C @ z`` turns decorrelated unit-variance
    colours ``z`` into the correlated RGB of natural images (Olah et al. 2017)."""
    pixels = [
        np.asarray(load_image(s.name), dtype=np.float64).reshape(-1, 3) / 255.0
        for s in sample_images()
        if s.name != "starry_night"  # a painting: not a photo
    ]
    covariance = np.cov(np.concatenate(pixels).T)
    values, vectors = np.linalg.eigh(covariance)
    root = vectors @ np.diag(np.sqrt(np.clip(values, 0.0, None)))
    root /= np.linalg.norm(root, axis=0).max()
    return torch.tensor(root, dtype=torch.float32)


class _Pixels(nn.Module):
    def __init__(self, start: Tensor) -> None:
        super().__init__()
        self.pixels = nn.Parameter(start.clone())

    def forward(self) -> Tensor:
        return self.pixels

    @torch.no_grad()
    def after_step(self, blur_sigma: float | None) -> None:
        if blur_sigma:
            self.pixels.copy_(gaussian_blur(self.pixels, blur_sigma))
        self.pixels.clamp_(0.0, 1.0)


class _Fourier(nn.Module):
    amplitude: Tensor  # buffers, registered in __init__
    colors: Tensor

    def __init__(
        self, size: tuple[int, int], gen: torch.Generator, device: torch.device, decay: float = 1.0, scale: float = 0.3
    ) -> None:
        super().__init__()
        h, w = size
        fy = torch.fft.fftfreq(h)[:, None]
        fx = torch.fft.rfftfreq(w)[None, :]
        frequency = torch.sqrt(fx**2 + fy**2).clamp(min=1.0 / max(h, w))
        # all frequencies learn at the pace natural images have (amplitude ~ 1/f)
        self.register_buffer("amplitude", (frequency ** -decay).to(device))
        coefficients = torch.randn((1, 3, h, w // 2 + 1, 2), generator=gen) * scale
        self.coefficients = nn.Parameter(coefficients.to(device))
        self.register_buffer("colors", color_correlation().to(device))
        self.size = size

    def forward(self) -> Tensor:
        spectrum = torch.view_as_complex(self.coefficients) * self.amplitude
        decorrelated = torch.fft.irfft2(spectrum, s=self.size, norm="ortho")  # (1, 3, h, w)
        colored = torch.einsum("ij,njhw->nihw", self.colors, decorrelated * 0.25)
        return torch.sigmoid(colored)

    def after_step(self, blur_sigma: float | None) -> None:
        pass


# ----------------------------------------------------------------------------- robustness


def random_transform(
    image: Tensor, gen: torch.Generator, *, jitter: int = 8, scale: Sequence[float] = (0.95, 1.05), rotate: float = 5.0
) -> Tensor:
    """A random shift of up to ``jitter`` pixels, zoom in ``scale`` and rotation of up to
    ``rotate`` degrees of ``(N, 3, H, W)``, the same size out, edges reflected."""
    n, _, h, w = image.shape
    out = image
    if jitter:
        padded = F.pad(out, (jitter, jitter, jitter, jitter), mode="reflect")
        dy, dx = (int(v) for v in torch.randint(0, 2 * jitter + 1, (2,), generator=gen))
        out = padded[:, :, dy : dy + h, dx : dx + w]
    low, high = float(scale[0]), float(scale[1])
    if rotate or low != 1.0 or high != 1.0:
        zoom = low + (high - low) * float(torch.rand((), generator=gen))
        angle = math.radians(rotate) * (2.0 * float(torch.rand((), generator=gen)) - 1.0)
        cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
        theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=out.dtype, device=out.device)
        grid = F.affine_grid(theta.expand(n, 2, 3), list(out.shape), align_corners=False)
        out = F.grid_sample(out, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out


# ----------------------------------------------------------------------------- the loop


@dataclass
class Visualization(ImageResult):
    """The result of :func:`maximize`.

    Attributes
    ----------
    image:
        ``(1, 3, H, W)`` pixels in [0, 1].
    trace:
        The objective at each step (on that step's transformed image).
    start_value, final_value:
        The objective on the untransformed starting noise and final image.
    objective:
        What was maximised, in words.
    steps:
        Steps done (fewer than asked if interrupted).
    interrupted:
        Whether the loop was stopped by ``KeyboardInterrupt``.
    """

    image: Tensor
    trace: list[float] = field(repr=False)
    start_value: float
    final_value: float
    objective: str
    steps: int
    interrupted: bool = False


def _evaluate(model: PixelModel, objective: Objective, image: Tensor) -> Tensor:
    if objective.layer_name is None:
        return objective.value(model(image), None)
    with capture_outputs(model.module, [objective.layer_name]) as outputs:
        logits = model(image)
    return objective.value(logits, outputs[objective.layer_name])


def maximize(
    model: Any,
    objective: Objective | int | str,
    *,
    steps: int = 256,
    lr: float = 0.05,
    parametrization: str = "fourier",
    size: int | tuple[int, int] | None = None,
    l2: float = 0.0,
    tv: float = 0.0,
    jitter: int = 8,
    scale: tuple[float, float] = (0.95, 1.05),
    rotate: float = 5.0,
    blur_every: int = 0,
    blur_sigma: float = 0.5,
    seed: int | None = 0,
    progress: bool = True,
    callback: Callback | None = None,
) -> Visualization:
    """Grow the image that maximises ``objective`` (see the module docstring).

    Parameters
    ----------
    model:
        A :class:`~vizwidgets.models.LoadedModel` (or a :class:`PixelModel`).
    objective:
        ``Channel(layer, c)``, ``Neuron(layer, c, position)``, ``ClassLogit(c)``, or a class
        index or name (short for ``ClassLogit``).
    steps, lr:
        Adam steps and learning rate (on pixels, or on Fourier coefficients).
    parametrization:
        ``"fourier"`` (default) or ``"pixels"``.
    size:
        Image size (int or ``(height, width)``); default the model's input size. Each side
        from the model's downsampling factor (32 for the default model) to
        :data:`~vizwidgets.synthesis._common.MAX_SIDE` (1024) pixels.
    l2, tv:
        Weights of the penalties ``mean((image - 0.5)^2)`` and ``TV(image)``
        (:func:`vizwidgets._ops.total_variation`, ``beta = 2``).
    jitter, scale, rotate:
        Random transformation each step: shift in pixels, zoom range, rotation in degrees.
        ``jitter=0, scale=(1, 1), rotate=0`` turns it off.
    blur_every, blur_sigma:
        With ``"pixels"``, blur the image by ``blur_sigma`` pixels every ``blur_every``
        steps (0: never).
    seed:
        Seeds the starting noise and the transformations: the same seed gives the same image.
    progress:
        Show a progress bar.
    callback:
        ``callback(step, {"objective": value}, image)`` after each step; returning False stops.

    Returns
    -------
    :class:`Visualization`.
    """
    pm = pixel_model(model)
    goal = as_objective(objective)
    steps = check_steps(steps)
    lr = check_positive(lr, "lr", maximum=MAX_LR)
    l2 = check_positive(l2, "l2", zero=True, maximum=MAX_PENALTY)
    tv = check_positive(tv, "tv", zero=True, maximum=MAX_PENALTY)
    seed = check_seed(seed)
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"parametrization must be one of {list(PARAMETRIZATIONS)}, got {parametrization!r}")
    if isinstance(jitter, bool) or not isinstance(jitter, int) or jitter < 0:
        raise ValueError(f"jitter must be a whole number of pixels >= 0, got {jitter!r}")
    if len(scale) != 2 or not 0 < float(scale[0]) <= float(scale[1]):
        raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale!r}")
    rotate = check_positive(rotate, "rotate", zero=True, maximum=360.0)
    if isinstance(blur_every, bool) or not isinstance(blur_every, int) or blur_every < 0:
        raise ValueError(f"blur_every must be a whole number of steps >= 0, got {blur_every!r}")
    if blur_every and parametrization != "pixels":
        raise ValueError(
            "blur_every only applies to parametrization='pixels'; the Fourier parametrisation "
            "already damps high frequencies (set blur_every=0, or use parametrization='pixels')"
        )
    blur = check_positive(blur_sigma, "blur_sigma", maximum=float(MAX_SIDE)) if blur_every else None
    hw = image_size(size, pm.size, minimum=min_side(pm))
    if min(hw) < 2 * jitter + 8:
        raise ValueError(f"size {hw} is too small for jitter={jitter}: use at least {2 * jitter + 8} pixels a side")

    with prepared(pm.module):
        # check the objective against the real layer shape before any optimisation
        probe = torch.full((1, 3, *hw), 0.5, device=pm.device)
        with torch.no_grad():
            shape = None
            if goal.layer_name is not None:
                get_module(pm.module, goal.layer_name)
                with capture_outputs(pm.module, [goal.layer_name]) as outputs:
                    logits = pm(probe)
                layer_out = outputs[goal.layer_name]
                shape = tuple(layer_out.shape[1:]) if isinstance(layer_out, Tensor) else None
            else:
                logits = pm(probe)
        goal.check(pm, shape, logits.shape[1])

        gen = generator(seed)
        if parametrization == "pixels":
            start = (0.5 + 0.1 * torch.randn((1, 3, *hw), generator=gen)).clamp(0, 1).to(pm.device)
            image_fn: _Pixels | _Fourier = _Pixels(start)
        else:
            image_fn = _Fourier(hw, gen, pm.device)
        optimizer = torch.optim.Adam(image_fn.parameters(), lr=lr)
        trace: list[float] = []
        with torch.no_grad():
            start_value = float(_evaluate(pm, goal, image_fn())[0])

        def step(i: int) -> dict[str, float] | None:
            before = [p.detach().clone() for p in image_fn.parameters()]
            optimizer.zero_grad(set_to_none=True)
            image = image_fn()
            seen = random_transform(image, gen, jitter=jitter, scale=scale, rotate=rotate)
            value = _evaluate(pm, goal, seen)[0]
            loss = -value
            if l2:
                loss = loss + l2 * (image - 0.5).pow(2).mean()
            if tv:
                loss = loss + tv * total_variation(image)[0]
            loss.backward()
            optimizer.step()
            image_fn.after_step(blur if blur_every and (i + 1) % blur_every == 0 else None)
            numbers = {"objective": float(value.detach()), "loss": float(loss.detach())}
            for parameter, previous in zip(image_fn.parameters(), before):
                if not finite_or_stop(numbers, parameter.detach(), previous, "maximise", i):
                    for other, kept in zip(image_fn.parameters(), before):
                        with torch.no_grad():
                            other.copy_(kept)
                    return None
            trace.append(numbers["objective"])
            return {"objective": trace[-1]}

        done, interrupted = run_loop(
            pm.module, steps, step, desc=f"maximise {goal.describe(pm)}", progress=progress, callback=callback,
            current=lambda: image_fn().detach(),
        )
        with torch.no_grad():
            final = image_fn().detach()
            final_value = float(_evaluate(pm, goal, final)[0])
        return Visualization(final, trace, start_value, final_value, goal.describe(pm), done, interrupted)
