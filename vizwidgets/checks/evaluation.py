"""Graders for notebook 09 (evaluation): the area under a deletion curve and a
pointing-game hit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from vizwidgets.checks._harness import (
    _call,
    _grade_tensor_function,
    _grader,
    _name,
    _require_callable,
)
from vizwidgets.data import Box

__all__ = ["check_curve_area", "check_pointing_hit"]


@_grader
def check_curve_area(curve_area: Callable[[Tensor, Tensor], Tensor]) -> None:
    """Grade ``curve_area(fractions, scores)``: the trapezoid area under each row, ``(N,)``."""
    _require_callable(curve_area, "curve_area", "check_curve_area(curve_area)")
    generator = torch.Generator().manual_seed(14)
    f1 = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])
    s1 = torch.tensor([[10.0, 6.0, 3.0, 1.0, 0.0]])
    f2 = torch.tensor([0.0, 0.1, 0.5, 1.0])
    s2 = torch.rand(3, 4, generator=generator)
    expected2 = ((s2[:, 1:] + s2[:, :-1]) / 2 * (f2[1:] - f2[:-1])).sum(dim=1).double()
    cases = [
        (
            "scores [10, 6, 3, 1, 0] at fractions [0, 0.25, 0.5, 0.75, 1] (area 3.75)",
            (f1, s1),
            torch.tensor([3.75], dtype=torch.float64),
        ),
        ("3 curves at uneven fractions [0, 0.1, 0.5, 1]", (f2, s2), expected2),
    ]

    def hints(args: tuple[Any, ...]) -> list[tuple[Tensor, str]]:
        f, s = args
        return [
            (s.mean(dim=1), "weight each pair of neighbours by the width between their fractions"),
            (
                (s[:, :-1] * (f[1:] - f[:-1])).sum(dim=1),
                "average each pair of neighbouring scores (the trapezoid), not only the left one",
            ),
        ]

    _grade_tensor_function(
        curve_area,
        "the fractions or scores",
        cases,
        hints,
        "sum of (p_k + p_k+1) / 2 * (f_k+1 - f_k)",
    )
    print(f"Correct! {_name(curve_area)} computes the trapezoid area under each curve.")


@_grader
def check_pointing_hit(pointing_hit: Callable[[Tensor, Any, float], bool]) -> None:
    """Grade ``pointing_hit(heatmap, box, tolerance)``: the maximum within ``tolerance``
    pixels (Euclidean) of the box, right and bottom exclusive."""
    _require_callable(pointing_hit, "pointing_hit", "check_pointing_hit(pointing_hit)")
    name = _name(pointing_hit)
    heat = torch.zeros(20, 20)
    heat[5, 5] = 1.0
    corner = torch.zeros(20, 20)
    corner[10, 12] = 1.0  # 3 columns and 4 rows from the box below: distance 5
    cases = [
        (
            "a peak at (5, 5) inside box columns 2-7, rows 2-7, tolerance 0",
            heat,
            Box("a", 2, 2, 8, 8),
            0.0,
            True,
        ),
        (
            "a peak at (5, 5), box columns 12-17, tolerance 7 (distance 7)",
            heat,
            Box("b", 12, 5, 18, 9),
            7.0,
            True,
        ),
        (
            "a peak at (5, 5), box columns 12-17, tolerance 6 (distance 7)",
            heat,
            Box("b", 12, 5, 18, 9),
            6.0,
            False,
        ),
        (
            "a peak at (5, 5), box columns 6-9 (right is exclusive: 6 is in, 5 is not), "
            "tolerance 0",
            heat,
            Box("c", 6, 0, 10, 10),
            0.0,
            False,
        ),
        (
            "a peak at row 10, column 12, box columns 0-8, rows 0-5, tolerance 5 (distance 5)",
            corner,
            Box("d", 0, 0, 10, 7),
            5.0,
            True,
        ),
        ("the same with tolerance 4.9", corner, Box("d", 0, 0, 10, 7), 4.9, False),
    ]
    for case, heatmap, box, tolerance, expected in cases:
        result = _call(pointing_hit, case, heatmap, box, tolerance, what="the heatmap")
        if bool(result) != expected:
            raise AssertionError(
                f"On {case}, {name} returned {result!r}; expected {expected}.\nHint: row, col = "
                "divmod(int(heatmap.argmax()), W); "
                "dx = max(box.left - col, 0, col - (box.right - 1)); "
                "dy likewise with top and bottom; hit if sqrt(dx^2 + dy^2) <= tolerance."
            )
    print(f"Correct! {name} plays the pointing game, tolerance and box edges included.")
