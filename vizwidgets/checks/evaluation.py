"""Graders for notebook 09 (evaluation): the area under a deletion curve and a
pointing-game hit."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from vizwidgets.checks._harness import (
    _call,
    _grade_tensor_function,
    _grader,
    _Help,
    _name,
    _require_callable,
    _verdict,
)
from vizwidgets.data import Box

__all__ = ["check_curve_area", "check_pointing_hit"]


def _area_mistakes(args: tuple[Any, ...]) -> list[tuple[Tensor, _Help]]:
    """The results of the trapezoid area's usual mistakes, each with its help."""
    f, s = (t.double() for t in args)
    widths = f[1:] - f[:-1]
    pairs = (s[:, 1:] + s[:, :-1]) / 2
    even = 1.0 / (s.shape[1] - 1)
    trapezoid = (
        "for each pair of neighbouring points, (p_k + p_k+1) / 2 * (f_k+1 - f_k), summed "
        "along each row"
    )
    return [
        (
            s.mean(dim=1),
            _Help("weight each pair of neighbours by the width between their fractions", trapezoid),
        ),
        (
            (s[:, :-1] * widths).sum(dim=1),
            _Help(
                "average each pair of neighbouring scores (the trapezoid), not only the left one",
                trapezoid,
            ),
        ),
        (
            (s[:, 1:] * widths).sum(dim=1),
            _Help(
                "average each pair of neighbouring scores (the trapezoid), not only the right one",
                trapezoid,
            ),
        ),
        (
            (2 * pairs * widths).sum(dim=1),
            _Help("halve the sum of each pair of neighbours: a trapezoid's height is their mean", trapezoid),
        ),
        (
            (pairs * even).sum(dim=1),
            _Help(
                "the fractions are not evenly spaced: use the widths f_k+1 - f_k, not 1 / (K - 1)",
                "`torch.trapezoid(scores, fractions, dim=1)`, or the widths `fractions[1:] - "
                "fractions[:-1]` in your sum",
            ),
        ),
        (
            pairs.sum(dim=1),
            _Help(
                "pass the fractions: without them the width of every step is 1",
                "`torch.trapezoid(scores, fractions, dim=1)` (y first, then x), or multiply "
                "each pair's mean by its width",
            ),
        ),
        (
            ((f[1:] + f[:-1]) / 2 * (s[:, 1:] - s[:, :-1])).sum(dim=1),
            _Help(
                "fractions and scores are swapped: this is the area under the fractions as a "
                "function of the scores",
                "torch.trapezoid takes y first, then x: `torch.trapezoid(scores, fractions, dim=1)`",
            ),
        ),
    ]


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

    def shape_hint(args: tuple[Any, ...], shape: tuple[int, ...]) -> _Help | None:
        rows = args[1].shape[0]
        if shape == ():
            return _Help(
                "one area per curve: integrate along each row (dim=1), not over the whole batch",
                "`torch.trapezoid(scores, fractions, dim=1)` gives (N,)",
            )
        if shape == (rows, 1):
            return _Help("drop the kept dimension: one area per curve, shape (N,)", "sum without keepdim=True")
        return None

    _grade_tensor_function(
        curve_area,
        "the fractions or scores",
        cases,
        _area_mistakes,
        _Help(
            "sum of (p_k + p_k+1) / 2 * (f_k+1 - f_k)",
            "with `widths = fractions[1:] - fractions[:-1]` and `means = (scores[:, 1:] + "
            "scores[:, :-1]) / 2`: `(means * widths).sum(dim=1)`",
        ),
        shape_hint,
    )
    print(f"Correct! {_name(curve_area)} computes the trapezoid area under each curve.")


def _hit(
    heatmap: Tensor,
    box: Box,
    tolerance: float,
    *,
    inclusive: bool = False,
    metric: str = "euclidean",
    swap: bool = False,
    width_from_height: bool = False,
    strict: bool = False,
    use_tolerance: bool = True,
) -> bool:
    """The pointing game for one heatmap, right and in its usual mistakes (the keywords)."""
    height, width = heatmap.shape
    row, col = divmod(int(heatmap.argmax()), height if width_from_height else width)
    if swap:
        row, col = col, row
    last_col = box.right if inclusive else box.right - 1
    last_row = box.bottom if inclusive else box.bottom - 1
    dx = max(box.left - col, 0, col - last_col)
    dy = max(box.top - row, 0, row - last_row)
    if not use_tolerance:
        return dx == 0 and dy == 0
    distance = {
        "euclidean": math.hypot(dx, dy),
        "manhattan": float(dx + dy),
        "chebyshev": float(max(dx, dy)),
    }[metric]
    return distance < tolerance if strict else distance <= tolerance


_HIT_MISTAKES: list[tuple[dict[str, Any], _Help]] = [
    (
        {"inclusive": True},
        _Help(
            "box.right and box.bottom are exclusive, like a slice: the last column inside is "
            "box.right - 1",
            "dx = max(box.left - col, 0, col - (box.right - 1)), and dy likewise with "
            "box.top and box.bottom - 1",
        ),
    ),
    (
        {"metric": "manhattan"},
        _Help(
            "the tolerance is a Euclidean distance, sqrt(dx^2 + dy^2), not |dx| + |dy|",
            "a peak 3 columns and 4 rows from the box is 5 pixels away: math.hypot(dx, dy)",
        ),
    ),
    (
        {"metric": "chebyshev"},
        _Help(
            "the tolerance is a Euclidean distance, sqrt(dx^2 + dy^2), not max(|dx|, |dy|)",
            "a peak 3 columns and 4 rows from the box is 5 pixels away: math.hypot(dx, dy)",
        ),
    ),
    (
        {"swap": True},
        _Help(
            "rows and columns are swapped: divmod(index, W) gives (row, column), and columns "
            "go with box.left and box.right",
            "`row, col = divmod(int(heatmap.argmax()), W)`; compare col with left/right and row "
            "with top/bottom",
        ),
    ),
    (
        {"width_from_height": True},
        _Help(
            "divide the flat index by the width W (the number of columns), not the height",
            "`H, W = heatmap.shape`; `row, col = divmod(int(heatmap.argmax()), W)`",
        ),
    ),
    (
        {"strict": True},
        _Help(
            "a peak exactly at the tolerance is a hit: distance <= tolerance, not <",
            "with tolerance 0 only a peak inside the box hits, and its distance is 0",
        ),
    ),
    (
        {"use_tolerance": False},
        _Help(
            "a peak outside the box still hits when it lies within `tolerance` pixels of it",
            "compute how far the peak lies outside the box in columns (dx) and rows (dy), then "
            "compare sqrt(dx^2 + dy^2) with the tolerance",
        ),
    ),
]

_HIT_BY_CASE = _Help(
    "row, col = divmod(int(heatmap.argmax()), W); dx = max(box.left - col, 0, col - "
    "(box.right - 1)); dy likewise with top and bottom; hit if sqrt(dx^2 + dy^2) <= tolerance",
    "try your function by hand on the case above and print row, col, dx, dy and the distance",
)


def _hit_cases() -> list[tuple[str, Tensor, Box, float, bool]]:
    """The pointing-game cases: (description, heatmap, box, tolerance, hit)."""
    heat = torch.zeros(20, 20)
    heat[5, 5] = 1.0
    corner = torch.zeros(20, 20)
    corner[10, 12] = 1.0  # 3 columns and 4 rows from the box below: distance 5
    wide = torch.zeros(20, 30)
    wide[2, 14] = 1.0
    return [
        ("a peak at (5, 5) inside box columns 2-7, rows 2-7, tolerance 0", heat, Box("a", 2, 2, 8, 8), 0.0, True),
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
            "a peak at (5, 5), box columns 12-17, tolerance 8 (distance 7)",
            heat,
            Box("b", 12, 5, 18, 9),
            8.0,
            True,
        ),
        (
            "a peak at (5, 5), box columns 1-4 (right = 5 is exclusive: column 5 is outside), "
            "tolerance 0",
            heat,
            Box("c", 1, 0, 5, 10),
            0.0,
            False,
        ),
        (
            "a peak at row 10, column 12, box columns 0-9, rows 0-6, tolerance 5 (distance 5)",
            corner,
            Box("d", 0, 0, 10, 7),
            5.0,
            True,
        ),
        ("the same with tolerance 4.9", corner, Box("d", 0, 0, 10, 7), 4.9, False),
        (
            "a 20 x 30 heatmap (H x W) with its peak at row 2, column 14, inside box columns "
            "10-19, rows 0-2, tolerance 0",
            wide,
            Box("e", 10, 0, 20, 3),
            0.0,
            True,
        ),
    ]


def _as_bool(value: object, fn: Callable[..., Any], case: str) -> bool:
    """The learner's answer as a bool, or an AssertionError if it is not one answer."""
    if isinstance(value, Tensor) and value.numel() != 1:
        raise _verdict(
            f"On {case}, {_name(fn)} returned a tensor of shape {tuple(value.shape)}; the answer "
            "is one bool: hit or not",
            _Help(
                "compare one distance with the tolerance and return that, e.g. "
                "`bool(distance <= tolerance)`",
                "reduce the heatmap to the position of its maximum first: "
                "`divmod(int(heatmap.argmax()), W)`",
            ),
        )
    if not isinstance(value, (bool, int, Tensor)) and type(value).__name__ != "bool_":
        raise _verdict(
            f"On {case}, {_name(fn)} returned {type(value).__name__}; the answer is one bool",
            _Help("return True or False", "end with `return distance <= tolerance`"),
        )
    return bool(value)


@_grader
def check_pointing_hit(pointing_hit: Callable[[Tensor, Any, float], bool]) -> None:
    """Grade ``pointing_hit(heatmap, box, tolerance)``: the maximum within ``tolerance``
    pixels (Euclidean) of the box, right and bottom exclusive."""
    _require_callable(pointing_hit, "pointing_hit", "check_pointing_hit(pointing_hit)")
    name = _name(pointing_hit)
    cases = _hit_cases()
    answers = [
        _as_bool(_call(pointing_hit, case, heatmap, box, tolerance, what="the heatmap"), pointing_hit, case)
        for case, heatmap, box, tolerance, _ in cases
    ]
    right = [hit for *_, hit in cases]
    if answers == right:
        print(f"Correct! {name} plays the pointing game, tolerance and box edges included.")
        return
    wrong = next(i for i, (got, want) in enumerate(zip(answers, right)) if got != want)
    case, heatmap, box, tolerance, hit = cases[wrong]
    if all(answers) or not any(answers):
        help = _Help(
            f"{name} answered {answers[0]} on every case; the answer depends on where the "
            "heatmap's maximum lies and on the tolerance",
            _HIT_BY_CASE.hint,
        )
    else:
        help = next(
            (
                h
                for flags, h in _HIT_MISTAKES
                if [_hit(m, b, t, **flags) for _, m, b, t, _ in cases] == answers
            ),
            _HIT_BY_CASE,
        )
    shown = ", ".join("T" if a else "F" for a in answers)
    truth = ", ".join("T" if a else "F" for a in right)
    raise _verdict(
        f"On {case}, {name} returned {answers[wrong]}; expected {hit}.",
        help,
        f"First difference at case {wrong + 1} of {len(cases)}; the answers on all cases:\n"
        f"Expected [{truth}],\ngot      [{shown}].",
    )
