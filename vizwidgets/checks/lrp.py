"""Grader for notebook 05 (LRP): the epsilon rule for a dense layer, against a slow
re-derivation from the contributions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from vizwidgets.checks._harness import (
    _grade_tensor_function,
    _grader,
    _Help,
    _name,
    _require_callable,
)

__all__ = ["check_lrp_epsilon"]


def _plus_one_at_zero(z: Tensor) -> Tensor:
    """sign(z) with sign(0) = +1, as the exercise asks."""
    return torch.where(z >= 0, 1.0, -1.0).to(z.dtype)


def _reference_lrp_epsilon(
    a: Tensor, weight: Tensor, bias: Tensor, relevance: Tensor, epsilon: float
) -> Tensor:
    """Slowly, from the contributions: R_j = sum_k a_j w_kj / (z_k + eps sign z_k) R_k."""
    a, weight, bias, relevance = (t.double() for t in (a, weight, bias, relevance))
    contributions = a[:, None, :] * weight[None, :, :]  # (N, K, J)
    z = contributions.sum(dim=2) + bias
    stabilised = z + epsilon * _plus_one_at_zero(z)
    return (contributions / stabilised[:, :, None] * relevance[:, :, None]).sum(dim=1)


def _rule(
    a: Tensor,
    w: Tensor,
    r: Tensor,
    z: Tensor,
    stabiliser: Callable[[Tensor], Tensor],
    back: Tensor | None = None,
) -> Tensor:
    """a * ((r / (z + stabiliser(z))) @ back), ``back`` the weights by default: the matrix form
    of the rule, with the parts learners get wrong as arguments."""
    return a * ((r / (z + stabiliser(z))) @ (w if back is None else back))


def _lrp_mistakes(args: tuple[Any, ...]) -> list[tuple[Tensor, _Help]]:
    """The results of LRP-epsilon's usual mistakes on ``args``, each with its help."""
    a, w, b, r, eps = (t.double() if isinstance(t, Tensor) else t for t in args)
    z = a @ w.T + b
    right = lambda z: eps * _plus_one_at_zero(z)  # noqa: E731
    sign_at_zero = _Help(
        "the stabiliser's sign must be +1 where z is exactly 0",
        "`torch.where(z >= 0, 1.0, -1.0)` is +1 at 0 and keeps every denominator away from 0 "
        "when epsilon > 0",
    )
    mistakes = [
        (
            _rule(a, w, r, z, lambda z: eps * torch.sign(z)),
            _Help(
                f"{sign_at_zero.hint}: torch.sign(0) is 0, so an output with z = 0 divides by 0 "
                "and its relevance becomes inf or nan",
                sign_at_zero.more,
            ),
        ),
        (
            _rule(a, w, r, z, lambda z: eps * torch.where(z > 0, 1.0, -1.0).double()),
            _Help(
                f"{sign_at_zero.hint}: `z > 0` gives -1 there; use `z >= 0`",
                sign_at_zero.more,
            ),
        ),
        (
            (r / (z + right(z))) @ w,
            _Help(
                "multiply by the activations a at the end: R_in = a * (W^T s)",
                "input j receives its share a_j w_kj of each z_k: the product with a is what "
                "makes the shares proportional to the contributions",
            ),
        ),
        (
            _rule(a, w, r, z, lambda z: eps),
            _Help(
                "stabilise with epsilon * sign(z), not + epsilon",
                "a negative z_k needs -epsilon to move away from 0; + epsilon would move it "
                "towards 0 and blow its share up",
            ),
        ),
        (
            _rule(a, w, r, z, lambda z: 0.0 * z),
            _Help(
                "epsilon is not used: this is LRP-0 whatever epsilon is",
                "divide by z + epsilon * sign(z), not by z alone",
            ),
        ),
        (
            _rule(a, w, r, a @ w.T, right),
            _Help(
                "z includes the bias: z = a W^T + b",
                "z is the layer's output before the activation, `a @ weight.T + bias`, as "
                "nn.Linear computes it",
            ),
        ),
        (
            _rule(a, w, torch.ones_like(r), z, right),
            _Help(
                "you never use the relevance R: s = R / (z + epsilon * sign(z))",
                "each output passes on its own relevance R_k, shared out in proportion to the "
                "contributions a_j w_kj / z_k",
            ),
        ),
    ]
    if w.shape[0] == w.shape[1]:  # a square weight hides a transposed one
        mistakes += [
            (
                _rule(a, w, r, z, right, back=w.T),
                _Help(
                    "send s back with the weight as it is, `s @ weight`: (N, K) @ (K, J)",
                    "weight is (K, J) as in nn.Linear; weight.T maps the J inputs to the K "
                    "outputs, the way forward, not back",
                ),
            ),
            (
                _rule(a, w, r, a @ w + b, right, back=w.T),
                _Help(
                    "weight is (K, J), as in nn.Linear: z = a @ weight.T + bias, and back with "
                    "s @ weight",
                    "row k of weight holds the weights into output k; z_k = sum_j a_j w_kj",
                ),
            ),
        ]
    return mistakes


@_grader
def check_lrp_epsilon(lrp_epsilon_dense: Callable[..., Tensor]) -> None:
    """Grade ``lrp_epsilon_dense(a, weight, bias, relevance, epsilon)`` against a slow
    re-derivation from the contributions ``a_j w_kj``, with the stabiliser's sign +1 at
    ``z = 0`` (one test input has an output with z exactly 0)."""
    _require_callable(lrp_epsilon_dense, "lrp_epsilon_dense", "check_lrp_epsilon(lrp_epsilon_dense)")
    generator = torch.Generator().manual_seed(13)
    a = torch.tensor([[1.0, 2.0]])
    w = torch.tensor([[1.0, -1.0], [2.0, 0.5]])
    b = torch.zeros(2)
    r = torch.tensor([[1.0, 3.0]])
    batch_a = torch.rand(3, 5, generator=generator)
    batch_w = torch.randn(4, 5, generator=generator)
    batch_b = torch.randn(4, generator=generator) * 0.1
    batch_r = torch.randn(3, 4, generator=generator)
    cases = []
    for eps in (0.0, 0.5):
        cases.append(
            (
                f"a = [1, 2], W = [[1, -1], [2, 0.5]], R = [1, 3], epsilon {eps}",
                (a, w, b, r, eps),
                _reference_lrp_epsilon(a, w, b, r, eps),
            )
        )
        cases.append(
            (
                f"a batch of 3, 5 inputs, 4 outputs, biases, epsilon {eps}",
                (batch_a, batch_w, batch_b, batch_r, eps),
                _reference_lrp_epsilon(batch_a, batch_w, batch_b, batch_r, eps),
            )
        )
    zero_w = torch.tensor([[2.0, -1.0], [1.0, 1.0]])
    cases.append(
        (
            "a = [1, 2], W = [[2, -1], [1, 1]], no bias, R = [1, 3], epsilon 0.5, where the first "
            "output's z is exactly 0",
            (a, zero_w, b, r, 0.5),
            _reference_lrp_epsilon(a, zero_w, b, r, 0.5),
        )
    )

    def shape_hint(args: tuple[Any, ...], shape: tuple[int, ...]) -> _Help | None:
        relevance = args[3]
        if shape == tuple(relevance.shape):
            return _Help(
                "this has the shape of the outputs' relevance (N, K); send it back to the "
                "inputs, (N, J)",
                "R_in = a * (s @ weight): (N, K) @ (K, J) gives one relevance per input",
            )
        return None

    _grade_tensor_function(
        lrp_epsilon_dense,
        "a, the weights or the relevance",
        cases,
        _lrp_mistakes,
        _Help(
            "R_in = a * ((R / (z + eps sign z)) @ W)",
            "four steps: z = a @ weight.T + bias; the stabiliser eps * torch.where(z >= 0, 1.0, "
            "-1.0); s = relevance / (z + stabiliser); return a * (s @ weight)",
        ),
        shape_hint,
    )
    print(
        f"Correct! {_name(lrp_epsilon_dense)} implements LRP-epsilon (and LRP-0 with "
        "epsilon 0) for a dense layer."
    )
