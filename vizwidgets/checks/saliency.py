"""Graders for notebook 01 (saliency): the input gradient, the saliency map and SmoothGrad."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from vizwidgets.checks._harness import (
    _call,
    _close,
    _compare,
    _grader,
    _name,
    _require_callable,
    _require_tensor,
)
from vizwidgets.checks._nets import _reference_gradient, _small_net

__all__ = ["check_input_gradient", "check_saliency_map", "check_smoothgrad"]


def _gradient_cases() -> list[tuple[str, torch.nn.Module, Tensor, Tensor]]:
    """The test inputs of the input-gradient grader: (description, model, x, target)."""
    generator = torch.Generator().manual_seed(1)
    return [
        (
            "one 6x6 image, target class 2",
            _small_net(0),
            torch.randn(1, 3, 6, 6, generator=generator, dtype=torch.float64),
            torch.tensor([2]),
        ),
        (
            "a batch of 3 images with targets [4, 0, 4]",
            _small_net(1),
            torch.randn(3, 3, 5, 7, generator=generator, dtype=torch.float64),
            torch.tensor([4, 0, 4]),
        ),
    ]


@_grader
def check_input_gradient(
    input_gradient: Callable[[torch.nn.Module, Tensor, Tensor], Tensor],
) -> None:
    """Grade ``input_gradient(model, x, target) -> d logit[target] / d x``, ``(N, 3, H, W)``.

    Tried on two small fixed networks, one image and a batch with one target per image.
    """
    _require_callable(input_gradient, "input_gradient", "check_input_gradient(input_gradient)")
    cases = _gradient_cases()
    for case, model, x, target in cases:
        expected = _reference_gradient(model, x, target)
        result = _call(input_gradient, case, model, x, target, what="the images x")
        result = _require_tensor(result, "the gradient", input_gradient, case)
        name = _name(input_gradient)
        if tuple(result.shape) != tuple(x.shape):
            raise AssertionError(
                f"On {case}, {name} returned shape {tuple(result.shape)}; the gradient has the "
                f"shape of the images, {tuple(x.shape)}.\nHint: differentiate with respect to "
                "the copy of x you made require gradients, not with respect to the logits."
            )
        if _close(result, expected):
            continue
        hints = [
            (
                _reference_gradient(model, x, target, "probability"),
                "this is the gradient of the softmax probability; differentiate the logit itself",
            ),
            (
                _reference_gradient(model, x, target, "all"),
                "this is the gradient of the sum of all logits; pick each image's target "
                "logit with "
                "logits[torch.arange(N), target] first",
            ),
        ]
        hint = next(
            (h for ref, h in hints if _close(result, ref)),
            "compare your steps with the exercise text",
        )
        raise AssertionError(
            f"On {case}, {name} gave a wrong gradient.\n{_compare(result, expected)}\nHint: {hint}."
        )
    print(
        f"Correct! {_name(input_gradient)} gives d logit / d input on {len(cases)} test "
        "inputs, batch included."
    )


@_grader
def check_saliency_map(saliency_map: Callable[[Tensor], Tensor]) -> None:
    """Grade ``saliency_map(grad) -> max over colour channels of |grad|``, ``(N, H, W)``."""
    _require_callable(saliency_map, "saliency_map", "check_saliency_map(saliency_map)")
    generator = torch.Generator().manual_seed(2)
    cases = [
        (
            "a gradient of shape (1, 3, 2, 2)",
            torch.tensor(
                [
                    [
                        [[1.0, -4.0], [0.5, 0.0]],
                        [[-2.0, 1.0], [0.25, -3.0]],
                        [[0.0, 2.0], [-1.0, 1.0]],
                    ]
                ]
            ),
        ),
        (
            "a batch of gradients of shape (2, 3, 4, 5)",
            torch.randn(2, 3, 4, 5, generator=generator),
        ),
    ]
    name = _name(saliency_map)
    for case, grad in cases:
        expected = grad.double().abs().amax(dim=1)
        result = _require_tensor(
            _call(saliency_map, case, grad, what="the gradient"), "the map", saliency_map, case
        )
        if tuple(result.shape) != tuple(expected.shape):
            raise AssertionError(
                f"On {case}, {name} returned shape {tuple(result.shape)}, expected "
                f"{tuple(expected.shape)}.\nHint: reduce over the colour channels, dim=1."
            )
        if _close(result, expected):
            continue
        hints = [
            (
                grad.double().amax(dim=1),
                "take the absolute value before the maximum: a large negative gradient matters too",
            ),
            (
                grad.double().abs().sum(dim=1),
                "the saliency map takes the maximum over the channels, not the sum",
            ),
            (
                grad.double().abs().mean(dim=1),
                "the saliency map takes the maximum over the channels, not the mean",
            ),
        ]
        hint = next((h for ref, h in hints if _close(result, ref)), "max over dim=1 of grad.abs()")
        raise AssertionError(
            f"On {case}, {name} gave a wrong map.\n{_compare(result, expected)}\nHint: {hint}."
        )
    print(f"Correct! {name} gives the largest absolute gradient over the colour channels.")


def _reference_smoothgrad(
    model: torch.nn.Module,
    x: Tensor,
    target: Tensor,
    samples: int,
    noise: float,
    seed: int,
    *,
    scale_by_range: bool = True,
    fresh_noise: bool = True,
    mean: bool = True,
) -> Tensor:
    """SmoothGrad drawn exactly as the exercise says; the keyword flags give the usual
    mistakes (noise not scaled by the range, one draw reused, the sum for the mean)."""
    generator = torch.Generator().manual_seed(seed)
    sigma = noise * (x.max() - x.min()) if scale_by_range else noise
    total = torch.zeros_like(x)
    eps = torch.randn(x.shape, generator=generator) * sigma
    for s in range(samples):
        if fresh_noise and s > 0:
            eps = torch.randn(x.shape, generator=generator) * sigma
        total += _reference_gradient(model, x + eps, target)
    return total / samples if mean else total


@_grader
def check_smoothgrad(smooth_gradient: Callable[..., Tensor]) -> None:
    """Grade ``smooth_gradient(model, x, target, samples, noise, generator)``: the mean input
    gradient over ``samples`` copies ``x + eps``, ``eps = randn(x.shape, generator) * sigma``,
    ``sigma = noise * (x.max() - x.min())``, drawn in that order."""
    _require_callable(smooth_gradient, "smooth_gradient", "check_smoothgrad(smooth_gradient)")
    name = _name(smooth_gradient)
    draws = torch.Generator().manual_seed(3)
    cases = [
        (
            "one 6x6 image, 4 samples, noise 0.2",
            _small_net(0),
            torch.randn(1, 3, 6, 6, generator=draws, dtype=torch.float64),
            torch.tensor([1]),
            4,
            0.2,
        ),
        (
            "a batch of 2 images, 3 samples, noise 0.1",
            _small_net(1),
            torch.randn(2, 3, 5, 5, generator=draws, dtype=torch.float64),
            torch.tensor([3, 0]),
            3,
            0.1,
        ),
    ]
    for case, model, x, target, samples, noise in cases:
        expected = _reference_smoothgrad(model, x, target, samples, noise, seed=7)
        generator = torch.Generator().manual_seed(7)
        result = _call(
            smooth_gradient, case, model, x, target, samples, noise, generator, what="the images x"
        )
        result = _require_tensor(result, "the averaged gradient", smooth_gradient, case)
        if tuple(result.shape) != tuple(x.shape):
            raise AssertionError(
                f"On {case}, {name} returned shape {tuple(result.shape)}, "
                f"expected {tuple(x.shape)}."
            )
        if _close(result, expected):
            continue
        hints = [
            (
                _reference_smoothgrad(model, x, target, samples, noise, 7, mean=False),
                "divide the sum by the number of samples",
            ),
            (
                _reference_smoothgrad(model, x, target, samples, noise, 7, scale_by_range=False),
                "sigma is the noise level times the range of x: noise * (x.max() - x.min())",
            ),
            (
                _reference_smoothgrad(model, x, target, samples, noise, 7, fresh_noise=False),
                "draw new noise for every sample, inside the loop",
            ),
            (
                _reference_gradient(model, x, target),
                "this is the plain gradient: add the noise to x before each gradient",
            ),
        ]
        hint = next(
            (h for ref, h in hints if _close(result, ref)),
            "draw eps with torch.randn(x.shape, generator=generator) * sigma, once per "
            "sample, in order",
        )
        raise AssertionError(
            f"On {case}, {name} gave a wrong average.\n{_compare(result, expected)}\nHint: {hint}."
        )
    print(f"Correct! {name} averages the gradient over noisy copies, as SmoothGrad does.")
