"""Graders for notebook 04 (Integrated Gradients): the midpoint Riemann sum and the
completeness gap."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor

from vizwidgets.checks._harness import (
    _call,
    _close,
    _grader,
    _Help,
    _judge,
    _name,
    _require_callable,
    _require_tensor,
    _verdict,
    _Wrong,
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
    alphas: list[float] | None = None,
) -> Tensor:
    """Integrated Gradients by the Riemann sum at ``alpha_k = (k + offset) / steps``; offset
    0.5 is the midpoint rule, 0 and 1 the left and right sums (the usual mistakes), and
    ``alphas``, if given, replaces the points (``torch.linspace(0, 1, steps)``, another)."""
    points = alphas if alphas is not None else [(k + offset) / steps for k in range(steps)]
    total = torch.zeros_like(x)
    for alpha in points:
        total += _reference_gradient(model, baseline + alpha * (x - baseline), target)
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


def _riemann_mistakes(
    model: torch.nn.Module, x: Tensor, baseline: Tensor, target: Tensor, steps: int, expected: Tensor
) -> list[tuple[Tensor, _Help]]:
    """The results of the midpoint Riemann sum's usual mistakes, each with its help."""
    difference = x - baseline
    averaged = expected / difference.where(difference != 0, torch.ones_like(x))
    from_zero = torch.zeros_like(x)
    midpoints = _Help(
        "use the midpoints, alpha = (k + 0.5) / steps",
        "the midpoint rule evaluates the gradient in the middle of each of the `steps` equal "
        "pieces of [0, 1], never at 0 or 1",
    )
    return [
        (
            _reference_riemann_ig(model, x, baseline, target, steps, offset=0.0),
            _Help(f"{midpoints.hint}, not k / steps (the left sum)", midpoints.more),
        ),
        (
            _reference_riemann_ig(model, x, baseline, target, steps, offset=1.0),
            _Help(f"{midpoints.hint}, not (k + 1) / steps (the right sum)", midpoints.more),
        ),
        (
            _reference_riemann_ig(
                model, x, baseline, target, steps, alphas=torch.linspace(0, 1, steps).tolist()
            ),
            _Help(
                f"{midpoints.hint}: torch.linspace(0, 1, steps) puts points on both ends",
                f"{midpoints.more}; `(torch.arange(steps) + 0.5) / steps` gives them",
            ),
        ),
        (
            expected * steps,
            _Help(
                "average the gradients: divide their sum by steps",
                "IG = (x - baseline) * (the sum of the gradients) / steps",
            ),
        ),
        (
            averaged,
            _Help(
                "multiply the averaged gradient by (x - baseline)",
                "the average gradient along the path is only the slope; the attribution is "
                "slope times distance travelled, (x - baseline)",
            ),
        ),
        (
            averaged * x,
            _Help(
                "multiply by (x - baseline), not by x: the path starts at the baseline",
                "with a zero baseline the two agree; with any other they do not",
            ),
        ),
        (
            -expected,
            _Help(
                "right size, wrong sign: the path goes from the baseline to x, so multiply by "
                "(x - baseline), not (baseline - x)",
                "IG_i = (x_i - baseline_i) * mean gradient at baseline + alpha (x - baseline)",
            ),
        ),
        (
            difference * _riemann_gradients(model, x, from_zero, target, steps),
            _Help(
                "the path starts at the baseline: the points are baseline + alpha * (x - baseline), "
                "not alpha * x",
                "with a zero baseline the two agree; with any other they do not",
            ),
        ),
    ]


def _riemann_gradients(
    model: torch.nn.Module, x: Tensor, start: Tensor, target: Tensor, steps: int
) -> Tensor:
    """The mean gradient at the midpoints of the path from ``start`` to ``x``."""
    total = torch.zeros_like(x)
    for k in range(steps):
        total += _reference_gradient(model, start + (k + 0.5) / steps * (x - start), target)
    return total / steps


@_grader
def check_riemann_ig(riemann_ig: Callable[..., Tensor]) -> None:
    """Grade ``riemann_ig(model, x, baseline, target, steps)``: Integrated Gradients with the
    midpoint rule, ``alpha_k = (k + 0.5) / steps``."""
    _require_callable(riemann_ig, "riemann_ig", "check_riemann_ig(riemann_ig)")
    name = _name(riemann_ig)

    def judge(
        case: str, model: torch.nn.Module, x: Tensor, baseline: Tensor, target: Tensor, steps: int
    ) -> _Wrong | None:
        expected = _reference_riemann_ig(model, x, baseline, target, steps)
        result = _call(riemann_ig, case, model, x, baseline, target, steps, what="x or the baseline")
        result = _require_tensor(result, "the attributions", riemann_ig, case)
        if tuple(result.shape) != tuple(x.shape):
            raise _verdict(
                f"On {case}, {name} returned shape {tuple(result.shape)}; the attributions have "
                f"the shape of x, {tuple(x.shape)}",
                _Help(
                    "add the gradients of the steps into one total of x's shape; do not stack them",
                    "one attribution per input value: (x - baseline) * total / steps",
                ),
            )
        if _close(result, expected):
            return None
        return _Wrong(
            f"On {case}, {name} gave wrong attributions.",
            result,
            expected,
            lambda: _riemann_mistakes(model, x, baseline, target, steps, expected),
            _Help(
                "follow the formula step by step",
                "for k in range(steps): alpha = (k + 0.5) / steps, add the input gradient at "
                "baseline + alpha * (x - baseline); then (x - baseline) * total / steps",
            ),
        )

    _judge(functools.partial(judge, *case) for case in _ig_cases())
    print(f"Correct! {name} integrates the gradient along the path with the midpoint rule.")


def _gap_mistakes(
    model: torch.nn.Module, x: Tensor, baseline: Tensor, target: Tensor, attributions: Tensor
) -> list[tuple[Tensor, _Help]]:
    """The results of the completeness gap's usual mistakes, each with its help."""
    rows = torch.arange(len(target))
    with torch.no_grad():
        at_x, at_baseline = model(x), model(baseline)
    total = attributions.sum(dim=(1, 2, 3))
    difference = at_x[rows, target] - at_baseline[rows, target]
    gap = total - difference
    probabilities = at_x.softmax(dim=1)[rows, target] - at_baseline.softmax(dim=1)[rows, target]
    top = at_x.argmax(dim=1)
    predicted = _Help(
        "use each image's target logit, not the predicted (largest) one",
        "`model(x)[torch.arange(N), target]`: the class the attributions explain",
    )
    return [
        (
            gap.abs(),
            _Help(
                "no abs(): the gap keeps its sign, which says whether the attributions "
                "overshoot (> 0) or fall short (< 0) of F(x) - F(baseline)",
                "return `attributions.sum(dim=(1, 2, 3)) - (F(x) - F(baseline))` as it is; "
                "take the absolute value later, where you compare sizes",
            ),
        ),
        (
            total + difference,
            _Help(
                "subtract F(x) - F(baseline), not F(baseline) - F(x)",
                "the attributions should add up to F(x) - F(baseline); the gap is their sum "
                "minus that",
            ),
        ),
        (
            -gap,
            _Help(
                "right size, wrong sign: the gap is sum(attributions) - (F(x) - F(baseline)), "
                "not the other way round",
                "start from the attributions' sum and subtract the difference of the logits",
            ),
        ),
        (
            total - at_x[rows, target],
            _Help(
                "subtract F(baseline) too: completeness compares with F(x) - F(baseline)",
                "the model's logit at the baseline is not 0, even for a black image",
            ),
        ),
        (
            total - probabilities,
            _Help(
                "F is the target logit, not its softmax probability",
                "IG attributed the logit (the input gradient of the logit), so compare with "
                "logits: `model(x)[torch.arange(N), target]`, no softmax",
            ),
        ),
        (
            total - (at_x[rows, top] - at_baseline[rows, top]),
            predicted,
        ),
        (
            total - (at_x.amax(dim=1) - at_baseline.amax(dim=1)),
            predicted,
        ),
        (
            gap / difference,
            _Help(
                "the gap is a difference, not a ratio: do not divide by F(x) - F(baseline)",
                "return sum(attributions) - (F(x) - F(baseline)) per image",
            ),
        ),
    ]


@_grader
def check_completeness_gap(completeness_gap: Callable[..., Tensor]) -> None:
    """Grade ``completeness_gap(model, x, baseline, target, attributions)``:
    ``sum(attributions) - (F(x) - F(baseline))`` per image, ``(N,)``."""
    _require_callable(completeness_gap, "completeness_gap", "check_completeness_gap(completeness_gap)")
    name = _name(completeness_gap)

    def judge(
        case: str, model: torch.nn.Module, x: Tensor, baseline: Tensor, target: Tensor, steps: int
    ) -> _Wrong | None:
        attributions = _reference_riemann_ig(model, x, baseline, target, steps)
        with torch.no_grad():
            rows = torch.arange(len(target))
            difference = model(x)[rows, target] - model(baseline)[rows, target]
        expected = attributions.sum(dim=(1, 2, 3)) - difference
        result = _call(completeness_gap, case, model, x, baseline, target, attributions, what="its inputs")
        result = _require_tensor(result, "the gaps", completeness_gap, case)
        shape = tuple(result.shape)
        if shape != tuple(expected.shape):
            if shape == (len(target), len(target)):
                help = _Help(
                    "`logits[:, target]` takes every target for every image, an N x N matrix",
                    "index rows and columns together: `logits[torch.arange(N), target]` picks "
                    "logits[n, target[n]] for each image n",
                )
            elif shape == ():
                help = _Help(
                    "one gap per image: sum over dims (1, 2, 3) only, not over the batch",
                    "`attributions.sum(dim=(1, 2, 3))` is (N,), like the target logits",
                )
            else:
                help = _Help(
                    "sum over dims (1, 2, 3) only",
                    "the attributions are (N, 3, H, W); one number per image is (N,)",
                )
            raise _verdict(
                f"On {case}, {name} returned shape {shape}; the right shape is one gap per image, "
                f"{tuple(expected.shape)}",
                help,
            )
        if _close(result, expected):
            return None
        return _Wrong(
            f"On {case}, {name} gave wrong gaps.",
            result,
            expected,
            lambda: _gap_mistakes(model, x, baseline, target, attributions),
            _Help(
                "use each image's target logit, model(x)[torch.arange(N), target]",
                "compute, without gradients, F(x) and F(baseline) as each image's target logit; "
                "return the sum of each image's attributions minus F(x) - F(baseline)",
            ),
        )

    _judge(functools.partial(judge, *case) for case in _ig_cases())
    print(f"Correct! {name} measures how far the attributions are from completeness.")
