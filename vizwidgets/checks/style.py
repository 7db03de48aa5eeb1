"""Graders for notebooks 06 (maximisation) and 08 (style transfer): total variation, the
Gram matrix and the style loss."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from vizwidgets._ops import total_variation as _reference_total_variation
from vizwidgets.checks._harness import (
    _grade_tensor_function,
    _grader,
    _name,
    _require_callable,
)

__all__ = ["check_total_variation", "check_gram_matrix", "check_style_loss"]


@_grader
def check_total_variation(total_variation: Callable[[Tensor], Tensor]) -> None:
    """Grade ``total_variation(x)``: mean over the ``(H-1)(W-1)`` positions of the squared
    right and lower differences, summed over channels, ``(N,)``."""
    _require_callable(total_variation, "total_variation", "check_total_variation(total_variation)")
    generator = torch.Generator().manual_seed(10)
    by_hand = torch.tensor([[[[0.0, 1.0, 3.0], [1.0, 1.0, 0.0], [2.0, 0.0, 0.0]]]])
    cases = [
        (
            "the 3x3 image [[0, 1, 3], [1, 1, 0], [2, 0, 0]] (TV 9/4)",
            (by_hand,),
            torch.tensor([2.25], dtype=torch.float64),
        ),
        (
            "a constant image (TV 0)",
            (torch.full((1, 3, 4, 4), 0.7),),
            torch.zeros(1, dtype=torch.float64),
        ),
        (
            "a batch (2, 3, 5, 6)",
            (torch.rand(2, 3, 5, 6, generator=generator),),
            _reference_total_variation(
                torch.rand(2, 3, 5, 6, generator=torch.Generator().manual_seed(10))
            ).double(),
        ),
    ]

    def hints(args: tuple[Any, ...]) -> list[tuple[Tensor, str]]:
        (x,) = args
        right = x[:, :, :-1, 1:] - x[:, :, :-1, :-1]
        down = x[:, :, 1:, :-1] - x[:, :, :-1, :-1]
        return [
            (
                (right**2 + down**2).sum(dim=(1, 2, 3)),
                "average over the positions, do not sum them",
            ),
            (
                (right**2 + down**2).mean(dim=(1, 2, 3)),
                "sum over the channels, then average over positions",
            ),
            ((right.abs() + down.abs()).sum(dim=1).mean(dim=(1, 2)), "square the differences"),
        ]

    _grade_tensor_function(
        total_variation,
        "the image",
        cases,
        hints,
        "follow the formula: right and down differences on the (H-1) x (W-1) grid",
    )
    print(f"Correct! {_name(total_variation)} computes the total variation of each image.")


@_grader
def check_gram_matrix(gram_matrix: Callable[[Tensor], Tensor]) -> None:
    """Grade ``gram_matrix(features) = F F^T / (H W)``, ``(N, C, C)``."""
    _require_callable(gram_matrix, "gram_matrix", "check_gram_matrix(gram_matrix)")
    generator = torch.Generator().manual_seed(11)
    small = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)
    batch = torch.randn(3, 4, 5, 6, generator=generator)
    flat = batch.double().reshape(3, 4, 30)
    cases = [
        (
            "features [[1, 2], [3, 4]] (2 channels, 2 positions)",
            (small,),
            torch.tensor([[[5.0, 11.0], [11.0, 25.0]]], dtype=torch.float64) / 2,
        ),
        ("a batch (3, 4, 5, 6)", (batch,), flat @ flat.transpose(1, 2) / 30),
    ]

    def hints(args: tuple[Any, ...]) -> list[tuple[Tensor, str]]:
        (f,) = args
        n, c, h, w = f.shape
        flat = f.double().reshape(n, c, h * w)
        return [
            (flat @ flat.transpose(1, 2), "divide by the number of positions, H * W"),
            (flat @ flat.transpose(1, 2) / (c * h * w), "divide by H * W only, not by C * H * W"),
        ]

    _grade_tensor_function(
        gram_matrix,
        "the features",
        cases,
        hints,
        "reshape to (N, C, H*W) and multiply by its transpose",
    )
    print(f"Correct! {_name(gram_matrix)} computes F F^T / (H W) for each image.")


@_grader
def check_style_loss(style_loss: Callable[[Tensor, Tensor], Tensor]) -> None:
    """Grade ``style_loss(features, target_gram) = sum((G - A)^2) / (4 C^2)``, ``(N,)``."""
    _require_callable(style_loss, "style_loss", "check_style_loss(style_loss)")
    generator = torch.Generator().manual_seed(12)
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)
    a = torch.tensor([[[2.0, 5.0], [5.0, 12.0]]])
    batch = torch.randn(2, 3, 4, 4, generator=generator)
    flat = batch.double().reshape(2, 3, 16)
    target = torch.randn(2, 3, 3, generator=generator)
    expected_batch = ((flat @ flat.transpose(1, 2) / 16 - target.double()) ** 2).sum(
        dim=(1, 2)
    ) / 36
    cases = [
        (
            "features [[1, 2], [3, 4]] and A = [[2, 5], [5, 12]] (loss 1/16)",
            (f, a),
            torch.tensor([1 / 16], dtype=torch.float64),
        ),
        (
            "a batch (2, 3, 4, 4) and its own Gram matrix (loss 0)",
            (batch, (flat @ flat.transpose(1, 2) / 16).float()),
            torch.zeros(2, dtype=torch.float64),
        ),
        ("a batch (2, 3, 4, 4) and a random target", (batch, target), expected_batch),
    ]

    def hints(args: tuple[Any, ...]) -> list[tuple[Tensor, str]]:
        features, gram_target = args
        n, c, h, w = features.shape
        flat = features.double().reshape(n, c, h * w)
        difference = (flat @ flat.transpose(1, 2) / (h * w) - gram_target.double()) ** 2
        return [
            (difference.sum(dim=(1, 2)), "divide by 4 C^2"),
            (
                difference.mean(dim=(1, 2)),
                "sum the squared differences and divide by 4 C^2 (the mean divides by C^2 only)",
            ),
        ]

    _grade_tensor_function(
        style_loss,
        "the features or the target",
        cases,
        hints,
        "compare the Gram matrix of the features with the target",
    )
    print(f"Correct! {_name(style_loss)} is Gatys et al.'s style loss.")
