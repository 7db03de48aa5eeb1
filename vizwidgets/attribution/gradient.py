"""Gradient methods: the gradient, gradient x input and SmoothGrad.

All three need the gradient of one class score with respect to the input pixels,
``d S_c / d x``, which costs one forward and one backward pass per image (the weights are
frozen during the call, so the backward computes nothing else).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from vizwidgets.attribution.base import Attribution, Option, Target, chunks, select_scores
from vizwidgets.attribution.limits import rows_per_pass

__all__ = [
    "Gradient",
    "GradientXInput",
    "SmoothGrad",
    "gradient",
    "gradient_x_input",
    "smoothgrad",
    "input_gradient",
]


def input_gradient(model: nn.Module, x: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor]:
    """``(d S_target / d x, targets used)`` for a batch; one forward and one backward pass.

    Each image's score only depends on its own pixels, so the gradient of the summed scores
    gives every image's gradient at once.
    """
    x = x.detach().requires_grad_(True)
    scores, used = select_scores(model(x), target)
    (grad,) = torch.autograd.grad(scores.sum(), x)
    return grad, used


class Gradient(Attribution):
    """Vanilla gradient, ``d S_c / d x`` (Simonyan, Vedaldi & Zisserman 2014).

    Returns the signed gradient ``(N, 3, H, W)``; the paper's saliency map is its absolute
    value, maximised over colour channels (``vizwidgets.viz`` does that for display).
    """

    name = "gradient"
    title = "Gradient (saliency)"
    family = "gradient"
    description = "How much a small change of each pixel changes the class score."
    reference = (
        "Simonyan, Vedaldi & Zisserman 2014, Deep Inside Convolutional Networks: Visualising "
        "Image Classification Models and Saliency Maps, ICLR workshop"
    )

    def _attribute(self, x: Tensor, target: Tensor | None, **options: Any) -> Tensor:
        return input_gradient(self.model, x, target)[0]


class GradientXInput(Attribution):
    """Gradient times input, ``x * d S_c / d x`` (Shrikumar et al. 2016).

    For a network that is linear in ``x`` (no biases, ReLUs fixed) the values sum to the score.
    """

    name = "gradient_x_input"
    title = "Gradient x input"
    family = "gradient"
    description = "The gradient weighted by the pixel value: a first-order contribution."
    reference = (
        "Shrikumar, Greenside, Shcherbina & Kundaje 2016, Not Just a Black Box: Learning "
        "Important Features Through Propagating Activation Differences, arXiv:1605.01713"
    )

    def _attribute(self, x: Tensor, target: Tensor | None, **options: Any) -> Tensor:
        return input_gradient(self.model, x, target)[0] * x


class SmoothGrad(Attribution):
    """SmoothGrad: the gradient averaged over noisy copies of the image (Smilkov et al. 2017).

    ``(1/n) sum_i d S_c / d x |_(x + e_i)`` with ``e_i ~ N(0, sigma^2)`` and
    ``sigma = noise * (max(x) - min(x))`` per image. The target is fixed on the clean image.
    The noise is drawn once from ``seed`` and shared by every image of the batch, so a batch
    gives each image the same result as a call with that image alone.

    ``chunk_size`` noisy copies of every image go through one forward+backward pass
    (``N * chunk_size`` rows), fewer when that would exceed the memory budget
    (:func:`~vizwidgets.attribution.limits.rows_per_pass`): ``chunk_size`` is an upper bound,
    and the result does not depend on it.
    """

    name = "smoothgrad"
    title = "SmoothGrad"
    family = "gradient"
    description = "The gradient averaged over noisy copies of the image: less speckle."
    reference = (
        "Smilkov, Thorat, Kim, Viegas & Wattenberg 2017, SmoothGrad: removing noise by adding "
        "noise, arXiv:1706.03825"
    )
    options = (
        Option("samples", 25, "int", "noisy copies averaged", 1, 500, interactive=(1, 64)),
        Option("noise", 0.15, "float", "noise level as a fraction of the image's value range", 0.0, 1.0),
        Option(
            "chunk_size", 8, "int",
            "noisy copies per forward+backward pass, at most (capped by the memory budget)", 1, 500,
        ),
        Option("seed", 0, "int", "seed of the noise (None: a new draw each call)", 0, None, nullable=True),
    )

    def _attribute(
        self, x: Tensor, target: Tensor | None, *, samples: int, noise: float, chunk_size: int,
        seed: int | None,
    ) -> Tensor:
        n = x.shape[0]
        if target is None:
            with torch.no_grad():
                target = self.model(x).argmax(dim=1)
        generator = torch.Generator(device="cpu")
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
        unit_noise = torch.randn((samples, 1, *x.shape[1:]), generator=generator).to(x.device, x.dtype)
        sigma = noise * (x.amax(dim=(1, 2, 3)) - x.amin(dim=(1, 2, 3)))  # (N,)
        total = torch.zeros_like(x)
        height, width = x.shape[-2:]
        chunk_size = rows_per_pass(self.model, height, width, chunk_size, rows_per_item=n, backward=True)
        for part in chunks(samples, chunk_size):
            noisy = x[None] + unit_noise[part] * sigma.view(1, n, 1, 1, 1)  # (S, N, C, H, W)
            grad, _ = input_gradient(self.model, noisy.flatten(0, 1), target.repeat(part.stop - part.start))
            total += grad.view(-1, *x.shape).sum(dim=0)
        return total / samples


def gradient(model: Any, inputs: Tensor, target: Target = None) -> Tensor:
    """Vanilla gradient (Simonyan et al. 2014); see :class:`Gradient`."""
    return Gradient(model).attribute(inputs, target)


def gradient_x_input(model: Any, inputs: Tensor, target: Target = None) -> Tensor:
    """Gradient x input (Shrikumar et al. 2016); see :class:`GradientXInput`."""
    return GradientXInput(model).attribute(inputs, target)


def smoothgrad(
    model: Any, inputs: Tensor, target: Target = None, *, samples: int = 25, noise: float = 0.15,
    chunk_size: int = 8, seed: int | None = 0,
) -> Tensor:
    """SmoothGrad (Smilkov et al. 2017); see :class:`SmoothGrad`."""
    return SmoothGrad(model).attribute(
        inputs, target, samples=samples, noise=noise, chunk_size=chunk_size, seed=seed
    )
