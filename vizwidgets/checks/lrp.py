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
    _name,
    _require_callable,
)

__all__ = ["check_lrp_epsilon"]


def _reference_lrp_epsilon(
    a: Tensor, weight: Tensor, bias: Tensor, relevance: Tensor, epsilon: float
) -> Tensor:
    """Slowly, from the contributions: R_j = sum_k a_j w_kj / (z_k + eps sign z_k) R_k."""
    a, weight, bias, relevance = (t.double() for t in (a, weight, bias, relevance))
    contributions = a[:, None, :] * weight[None, :, :]  # (N, K, J)
    z = contributions.sum(dim=2) + bias
    stabilised = z + epsilon * torch.where(z >= 0, 1.0, -1.0).double()
    return (contributions / stabilised[:, :, None] * relevance[:, :, None]).sum(dim=1)


@_grader
def check_lrp_epsilon(lrp_epsilon_dense: Callable[..., Tensor]) -> None:
    """Grade ``lrp_epsilon_dense(a, weight, bias, relevance, epsilon)`` against a slow
    re-derivation from the contributions ``a_j w_kj``."""
    _require_callable(
        lrp_epsilon_dense, "lrp_epsilon_dense", "check_lrp_epsilon(lrp_epsilon_dense)"
    )
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

    def hints(args: tuple[Any, ...]) -> list[tuple[Tensor, str]]:
        a, w, b, r, eps = args
        z = a.double() @ w.double().T + b.double()
        s = r.double() / (z + eps * torch.where(z >= 0, 1.0, -1.0).double())
        return [
            (s @ w.double(), "multiply by the activations a at the end: R_in = a * (W^T s)"),
            (
                a.double() * ((r.double() / (z + eps)) @ w.double()),
                "stabilise with epsilon * sign(z), not + epsilon",
            ),
            (
                a.double()
                * (
                    (
                        r.double()
                        / (
                            a.double() @ w.double().T
                            + eps * torch.where(a.double() @ w.double().T >= 0, 1.0, -1.0).double()
                        )
                    )
                    @ w.double()
                ),
                "z includes the bias: z = a W^T + b",
            ),
        ]

    _grade_tensor_function(
        lrp_epsilon_dense,
        "a, the weights or the relevance",
        cases,
        hints,
        "R_in = a * ((R / (z + eps sign z)) @ W)",
    )
    print(
        f"Correct! {_name(lrp_epsilon_dense)} implements LRP-epsilon (and LRP-0 with "
        "epsilon 0) for a dense layer."
    )
