"""Graders for notebook 04 (Integrated Gradients): the midpoint Riemann sum and the
completeness gap."""

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
from vizwidgets.checks._nets import _reference_gradient, _smooth_net

__all__ = ["check_riemann_ig", "check_completeness_gap"]


def _reference_riemann_ig(
    model: torch.nn.Module,
    x: Tensor,
    baseline: Tensor,
    target: Tensor,
    steps: int,
    offset: float = 0.5,
) -> Tensor:
    """Integrated Gradients by the Riemann sum at ``alpha_k = (k + offset) / steps``; offset
    0.5 is the midpoint rule, 0 and 1 the left and right sums (the usual mistakes)."""
    total = torch.zeros_like(x)
    for k in range(steps):
        total += _reference_gradient(
            model, baseline + (k + offset) / steps * (x - baseline), target
        )
    return (x - baseline) * total / steps


def _ig_cases() -> list[tuple[str, torch.nn.Module, Tensor, Tensor, Tensor, int]]:
    """The test inputs of the IG graders: (description, model, x, baseline, target, steps)."""
    generator = torch.Generator().manual_seed(8)
    x1 = torch.randn(1, 3, 5, 5, generator=generator, dtype=torch.float64)
    x2 = torch.randn(2, 3, 4, 6, generator=generator, dtype=torch.float64)
    return [
        (
            "one 5x5 image, zero baseline, 4 steps",
            _smooth_net(0),
            x1,
            torch.zeros_like(x1),
            torch.tensor([1]),
            4,
        ),
        (
            "a batch of 2 images, a random baseline, 6 steps",
            _smooth_net(1),
            x2,
            torch.randn(2, 3, 4, 6, generator=generator, dtype=torch.float64),
            torch.tensor([2, 0]),
            6,
        ),
    ]


@_grader
def check_riemann_ig(riemann_ig: Callable[..., Tensor]) -> None:
    """Grade ``riemann_ig(model, x, baseline, target, steps)``: Integrated Gradients with the
    midpoint rule, ``alpha_k = (k + 0.5) / steps``."""
    _require_callable(riemann_ig, "riemann_ig", "check_riemann_ig(riemann_ig)")
    name = _name(riemann_ig)
    for case, model, x, baseline, target, steps in _ig_cases():
        expected = _reference_riemann_ig(model, x, baseline, target, steps)
        result = _call(
            riemann_ig, case, model, x, baseline, target, steps, what="x or the baseline"
        )
        result = _require_tensor(result, "the attributions", riemann_ig, case)
        if tuple(result.shape) != tuple(x.shape):
            raise AssertionError(
                f"On {case}, {name} returned shape {tuple(result.shape)}, "
                f"expected {tuple(x.shape)}."
            )
        if _close(result, expected):
            continue
        hints = [
            (
                _reference_riemann_ig(model, x, baseline, target, steps, offset=0.0),
                "use the midpoints, alpha = (k + 0.5) / steps, not k / steps",
            ),
            (
                _reference_riemann_ig(model, x, baseline, target, steps, offset=1.0),
                "use the midpoints, alpha = (k + 0.5) / steps, not (k + 1) / steps",
            ),
            (expected * steps, "average the gradients: divide their sum by steps"),
            (
                expected / (x - baseline).where((x - baseline) != 0, torch.ones_like(x)),
                "multiply the averaged gradient by (x - baseline)",
            ),
        ]
        hint = next(
            (h for ref, h in hints if _close(result, ref)), "follow the formula step by step"
        )
        raise AssertionError(
            f"On {case}, {name} gave wrong attributions.\n"
            f"{_compare(result, expected)}\nHint: {hint}."
        )
    print(f"Correct! {name} integrates the gradient along the path with the midpoint rule.")


@_grader
def check_completeness_gap(completeness_gap: Callable[..., Tensor]) -> None:
    """Grade ``completeness_gap(model, x, baseline, target, attributions)``:
    ``sum(attributions) - (F(x) - F(baseline))`` per image, ``(N,)``."""
    _require_callable(
        completeness_gap, "completeness_gap", "check_completeness_gap(completeness_gap)"
    )
    name = _name(completeness_gap)
    for case, model, x, baseline, target, steps in _ig_cases():
        attributions = _reference_riemann_ig(model, x, baseline, target, steps)
        with torch.no_grad():
            rows = torch.arange(len(target))
            difference = model(x)[rows, target] - model(baseline)[rows, target]
        expected = attributions.sum(dim=(1, 2, 3)) - difference
        result = _call(
            completeness_gap, case, model, x, baseline, target, attributions, what="its inputs"
        )
        result = _require_tensor(result, "the gaps", completeness_gap, case)
        if tuple(result.shape) != tuple(expected.shape):
            raise AssertionError(
                f"On {case}, {name} returned shape {tuple(result.shape)}, expected one gap per "
                f"image, {tuple(expected.shape)}.\nHint: sum over dims (1, 2, 3) only."
            )
        if _close(result, expected):
            continue
        hint = (
            "subtract F(x) - F(baseline), not F(baseline) - F(x)"
            if _close(result, attributions.sum(dim=(1, 2, 3)) + difference)
            else "use each image's target logit, model(x)[torch.arange(N), target]"
        )
        raise AssertionError(
            f"On {case}, {name} gave wrong gaps.\n{_compare(result, expected)}\nHint: {hint}."
        )
    print(f"Correct! {name} measures how far the attributions are from completeness.")
