"""Graders for notebook 02 (guided backpropagation): the three rectifier rules, and a
``torch.autograd.Function`` for guided ReLU."""

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

__all__ = ["check_rectifier_rules", "check_guided_relu_function"]


_RULES = {
    "gradient": lambda g, x: g * (x > 0),
    "deconvnet": lambda g, x: g.clamp(min=0),
    "guided": lambda g, x: g.clamp(min=0) * (x > 0),
}


def _rule_cases() -> list[tuple[str, Tensor, Tensor]]:
    """The test inputs of the rectifier graders: (description, grad, x), same shapes."""
    generator = torch.Generator().manual_seed(4)
    return [
        (
            "grad [1, -2, 3, -4] at x [2, 1, -1, -3]",
            torch.tensor([1.0, -2.0, 3.0, -4.0]),
            torch.tensor([2.0, 1.0, -1.0, -3.0]),
        ),
        (
            "a (2, 3, 4, 4) tensor",
            torch.randn(2, 3, 4, 4, generator=generator),
            torch.randn(2, 3, 4, 4, generator=generator),
        ),
    ]


@_grader
def check_rectifier_rules(rectifier_backward: Callable[[Tensor, Tensor, str], Tensor]) -> None:
    """Grade ``rectifier_backward(grad, x, rule)`` for the rules "gradient" (``g [x > 0]``),
    "deconvnet" (``max(g, 0)``) and "guided" (``max(g, 0) [x > 0]``)."""
    _require_callable(
        rectifier_backward, "rectifier_backward", "check_rectifier_rules(rectifier_backward)"
    )
    name = _name(rectifier_backward)
    for rule, reference in _RULES.items():
        for case, grad, x in _rule_cases():
            where = f"rule {rule!r} with {case}"
            expected = reference(grad, x).double()
            result = _require_tensor(
                _call(rectifier_backward, where, grad, x, rule, what="grad or x"),
                "the signal",
                rectifier_backward,
                where,
            )
            if tuple(result.shape) == tuple(expected.shape) and _close(result, expected):
                continue
            others = [
                other
                for other, ref in _RULES.items()
                if other != rule and _close(result, ref(grad, x).double())
            ]
            hint = (
                f"this is what the {others[0]!r} rule sends back"
                if others
                else {
                    "gradient": "multiply grad by the mask (x > 0)",
                    "deconvnet": "only rectify the signal: grad.clamp(min=0), whatever x is",
                    "guided": "rectify the signal and apply the mask: grad.clamp(min=0) * (x > 0)",
                }[rule]
            )
            raise AssertionError(
                f"For {where}, {name} is wrong.\n{_compare(result, expected)}\nHint: {hint}."
            )
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
    for case, grad, x in _rule_cases():
        inputs = x.clone().requires_grad_(True)
        try:
            out = function.apply(inputs)
            (back,) = torch.autograd.grad(out, inputs, grad)
        except NotImplementedError:
            raise
        except Exception as error:
            raise AssertionError(
                f"{name} raised {type(error).__name__} on {case}: {error}"
            ) from error
        if not torch.equal(inputs.detach(), x):
            raise AssertionError(
                f"{name} changed its input in place on {case}; use x.clamp(min=0), "
                "not x.clamp_(...)."
            )
        if not _close(out, x.clamp(min=0).double()):
            raise AssertionError(
                f"The forward pass of {name} is not ReLU on {case}.\n"
                f"{_compare(out, x.clamp(min=0).double())}\n"
                "Hint: return x.clamp(min=0) and save x with ctx.save_for_backward(x)."
            )
        expected = _RULES["guided"](grad, x).double()
        if not _close(back, expected):
            others = [
                other
                for other, ref in _RULES.items()
                if other != "guided" and _close(back, ref(grad, x).double())
            ]
            hint = (
                f"this is the {others[0]!r} rule"
                if others
                else "return grad.clamp(min=0) * (x > 0) with x from ctx.saved_tensors"
            )
            raise AssertionError(
                f"The backward pass of {name} is wrong on {case}.\n"
                f"{_compare(back, expected)}\nHint: {hint}."
            )
    print(f"Correct! {name} is a ReLU going forward and guided backpropagation going back.")
