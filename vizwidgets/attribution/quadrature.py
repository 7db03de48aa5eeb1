"""Quadrature rules for path integrals ``int_0^1 g(a) da ~ sum_k w_k g(a_k)``.

Integrated Gradients (Sundararajan, Taly & Yan 2017, "Axiomatic Attribution for Deep
Networks", ICML) integrates the gradient along a path; :func:`quadrature_rule` gives the nodes
and weights, as captum's ``_utils/approximation_methods.py`` does: Gauss-Legendre (exact for
polynomials of degree ``2 * steps - 1``) and the left, right, middle and trapezoid Riemann sums.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

__all__ = ["QUADRATURES", "quadrature_rule"]

#: The quadrature rules: see :func:`quadrature_rule`.
QUADRATURES: tuple[str, ...] = (
    "gausslegendre",
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
)


def quadrature_rule(method: str, steps: int) -> tuple[Tensor, Tensor]:
    """Nodes ``a_k`` in [0, 1] and weights ``w_k`` (summing to 1) of a rule for ``int_0^1 g``.

    ``integral_0^1 g(a) da ~ sum_k w_k g(a_k)``, ``k = 1..steps``; both are float64 ``(steps,)``.

    - ``"gausslegendre"``: the Gauss-Legendre nodes mapped from [-1, 1] to [0, 1]; exact for
      polynomials of degree up to ``2 * steps - 1``.
    - ``"riemann_left"``, ``"riemann_right"``: ``a_k = (k - 1) / steps`` or ``k / steps``,
      ``w_k = 1 / steps``; error of order ``1 / steps``.
    - ``"riemann_middle"``: ``a_k = (k - 1/2) / steps``, ``w_k = 1 / steps``.
    - ``"riemann_trapezoid"``: ``a_k = (k - 1) / (steps - 1)``, ``w_k = 1 / (steps - 1)`` with
      half weights at both ends; needs ``steps >= 2``.
    """
    if not isinstance(method, str):
        raise TypeError(f"method must be a str, got {type(method).__name__}")
    if method not in QUADRATURES:
        raise ValueError(f"method must be one of {list(QUADRATURES)}, got {method!r}")
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise TypeError(f"steps must be an int, got {type(steps).__name__}")
    if steps < 1 or (method == "riemann_trapezoid" and steps < 2):
        least = 2 if method == "riemann_trapezoid" else 1
        raise ValueError(f"steps must be at least {least} for method {method!r}, got {steps}")
    nodes, weights = _rule(method, steps)
    return nodes.clone(), weights.clone()


@lru_cache(maxsize=32)
def _rule(method: str, steps: int) -> tuple[Tensor, Tensor]:
    k = torch.arange(steps, dtype=torch.float64)
    uniform = torch.full((steps,), 1.0 / steps, dtype=torch.float64)
    if method == "gausslegendre":
        t, w = np.polynomial.legendre.leggauss(steps)
        return torch.from_numpy((t + 1.0) / 2.0), torch.from_numpy(w / 2.0)
    if method == "riemann_left":
        return k / steps, uniform
    if method == "riemann_right":
        return (k + 1.0) / steps, uniform
    if method == "riemann_middle":
        return (k + 0.5) / steps, uniform
    # riemann_trapezoid
    weights = torch.full((steps,), 1.0 / (steps - 1), dtype=torch.float64)
    weights[0] = weights[-1] = 0.5 / (steps - 1)
    return k / (steps - 1), weights
