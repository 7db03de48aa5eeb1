"""Graders for notebook 02 (guided backpropagation): the three rectifier rules, and a
``torch.autograd.Function`` for guided ReLU."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor

from vizwidgets.checks._harness import (
    _call,
    _close,
    _compare,
    _grader,
    _Help,
    _judge,
    _name,
    _require_callable,
    _require_tensor,
    _verdict,
    _Wrong,
)

__all__ = ["check_rectifier_rules", "check_guided_relu_function"]


_RULES = {
    "gradient": lambda g, x: g * (x > 0),
    "deconvnet": lambda g, x: g.clamp(min=0),
    "guided": lambda g, x: g.clamp(min=0) * (x > 0),
}


def _rule_cases() -> list[tuple[str, Tensor, Tensor]]:
    """The test inputs of the rectifier graders: (description, grad, x), same shapes; the
    first has x exactly 0 at one place (where the ReLU's mask is 0)."""
    generator = torch.Generator().manual_seed(4)
    return [
        (
            "grad [1, -2, 3, -4, 5] at x [2, 1, -1, -3, 0]",
            torch.tensor([1.0, -2.0, 3.0, -4.0, 5.0]),
            torch.tensor([2.0, 1.0, -1.0, -3.0, 0.0]),
        ),
        (
            "a (2, 3, 4, 4) tensor",
            torch.randn(2, 3, 4, 4, generator=generator),
            torch.randn(2, 3, 4, 4, generator=generator),
        ),
    ]


_RULE_HELP = {
    "gradient": _Help(
        "multiply grad by the mask (x > 0)",
        "the ReLU's own backward passes the signal where its input was positive and 0 "
        "elsewhere: `grad * (x > 0)`",
    ),
    "deconvnet": _Help(
        "only rectify the signal: grad.clamp(min=0), whatever x is",
        "deconvnet ignores the forward pass: it applies a ReLU to the signal going back",
    ),
    "guided": _Help(
        "rectify the signal and apply the mask: grad.clamp(min=0) * (x > 0)",
        "guided backpropagation combines the two others: it passes a signal only where it is "
        "positive and the input was positive",
    ),
}


def _rule_mistakes(rule: str, grad: Tensor, x: Tensor) -> list[tuple[Tensor, _Help]]:
    """The results of a rectifier rule's usual mistakes, each with its help."""
    g, x = grad.double(), x.double()
    mask = (x > 0).double()
    rectified = g.clamp(min=0) if rule != "gradient" else g
    masked = rule != "deconvnet"
    mistakes = [
        (
            _RULES[other](grad, x).double(),
            _Help(f"this is what the {other!r} rule sends back", _RULE_HELP[rule].hint),
        )
        for other in _RULES
        if other != rule
    ]
    if masked:
        mistakes += [
            (
                rectified * (x >= 0).double(),
                _Help(
                    "the mask is x > 0, not x >= 0: where x is exactly 0 the ReLU passed nothing",
                    "use `(x > 0)`: ReLU's slope at 0 is taken as 0",
                ),
            ),
            (
                rectified * x.clamp(min=0),
                _Help(
                    "multiply by the mask (x > 0), which is 0 or 1, not by x or relu(x)",
                    "`(x > 0)` is a bool tensor; multiplying by it keeps or zeroes each value",
                ),
            ),
            (
                rectified * (1 - mask),
                _Help(
                    "the mask is inverted: keep the positions where x > 0, not x <= 0",
                    "the ReLU let through the positions where its input x was positive; only "
                    "there does a signal go back",
                ),
            ),
        ]
    if rule != "gradient":
        mistakes.append(
            (
                g.abs() * (mask if masked else 1.0),
                _Help(
                    "rectify with clamp(min=0): negative signals become 0, not positive",
                    "`grad.clamp(min=0)` (or torch.relu(grad)); `.abs()` flips them instead",
                ),
            )
        )
    return mistakes


@_grader
def check_rectifier_rules(rectifier_backward: Callable[[Tensor, Tensor, str], Tensor]) -> None:
    """Grade ``rectifier_backward(grad, x, rule)`` for the rules "gradient" (``g [x > 0]``),
    "deconvnet" (``max(g, 0)``) and "guided" (``max(g, 0) [x > 0]``)."""
    _require_callable(rectifier_backward, "rectifier_backward", "check_rectifier_rules(rectifier_backward)")
    name = _name(rectifier_backward)

    def judge(rule: str, case: str, grad: Tensor, x: Tensor) -> _Wrong | None:
        where = f"rule {rule!r} with {case}"
        expected = _RULES[rule](grad, x).double()
        result = _require_tensor(
            _call(rectifier_backward, where, grad, x, rule, what="grad or x"),
            "the signal",
            rectifier_backward,
            where,
        )
        if tuple(result.shape) != tuple(expected.shape):
            raise _verdict(
                f"For {where}, {name} returned shape {tuple(result.shape)}; the signal "
                f"keeps the shape of grad, {tuple(expected.shape)}.",
                _Help(
                    "work elementwise: no sum, mean or indexing",
                    "each rule changes each value of grad on its own, using x at the same place",
                ),
            )
        if _close(result, expected):
            return None
        return _Wrong(
            f"For {where}, {name} is wrong.",
            result,
            expected,
            lambda: _rule_mistakes(rule, grad, x),
            _RULE_HELP[rule],
        )

    _judge(functools.partial(judge, rule, *case) for rule in _RULES for case in _rule_cases())
    print(f"Correct! {name} implements the gradient, deconvnet and guided rules.")


@_grader
def check_guided_relu_function(function: type) -> None:
    """Grade a ``torch.autograd.Function`` whose forward is ReLU and whose backward is guided
    backpropagation's rule ``max(g, 0) [x > 0]``."""
    if not (isinstance(function, type) and issubclass(function, torch.autograd.Function)):
        raise TypeError(
            "pass the class itself, a subclass of torch.autograd.Function, e.g. "
            f"check_guided_relu_function(GuidedReLU); got {type(function).__name__}"
        )
    name = function.__name__

    def judge(case: str, grad: Tensor, x: Tensor) -> _Wrong | None:
        inputs = x.clone().requires_grad_(True)
        try:
            out = function.apply(inputs)
            (back,) = torch.autograd.grad(out, inputs, grad)
        except NotImplementedError:
            raise
        except Exception as error:
            raise _verdict(
                f"{name} raised {type(error).__name__} on {case}: {error}",
                _Help(
                    "forward(ctx, x) returns the ReLU and saves x with ctx.save_for_backward(x); "
                    "backward(ctx, grad) returns one tensor, the signal for x",
                    "both are @staticmethod; in backward, `(x,) = ctx.saved_tensors`",
                ),
            ) from error
        if not torch.equal(inputs.detach(), x):
            raise _verdict(
                f"{name} changed its input in place on {case}",
                _Help(
                    "use x.clamp(min=0), not x.clamp_(...)",
                    "an in-place forward changes the tensor the backward needs to see",
                ),
            )
        if not _close(out, x.clamp(min=0).double()):
            raise _verdict(
                f"The forward pass of {name} is not ReLU on {case}.",
                _Help(
                    "return x.clamp(min=0) and save x with ctx.save_for_backward(x)",
                    "the forward pass is a plain ReLU; only the backward pass changes",
                ),
                _compare(out, x.clamp(min=0).double()),
            )
        expected = _RULES["guided"](grad, x).double()
        if _close(back, expected):
            return None
        return _Wrong(
            f"The backward pass of {name} is wrong on {case}.",
            back,
            expected,
            lambda: _rule_mistakes("guided", grad, x),
            _Help(
                "return grad.clamp(min=0) * (x > 0) with x from ctx.saved_tensors",
                "in backward, `(x,) = ctx.saved_tensors` gives the input saved in forward; the "
                "signal goes back only where it is positive and x was positive",
            ),
        )

    _judge(functools.partial(judge, *case) for case in _rule_cases())
    print(f"Correct! {name} is a ReLU going forward and guided backpropagation going back.")
