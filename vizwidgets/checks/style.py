"""Graders for notebooks 06 (maximisation) and 08 (style transfer): total variation, gradient
ascent, the Gram matrix and the style loss."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from vizwidgets._ops import total_variation as _reference_total_variation
from vizwidgets.checks._harness import (
    _call,
    _close,
    _compare,
    _grade_tensor_function,
    _grader,
    _Help,
    _name,
    _require_callable,
    _require_images,
    _verdict,
)
from vizwidgets.checks._nets import _small_net

__all__ = ["check_total_variation", "check_gradient_ascent", "check_gram_matrix", "check_style_loss"]


def _batch_shape_hint(what: str) -> Callable[[tuple[Any, ...], tuple[int, ...]], _Help | None]:
    """Explains a result of shape ``()`` (summed over the batch) for graders of one number per
    image; ``what`` names the number."""

    def hint(args: tuple[Any, ...], shape: tuple[int, ...]) -> _Help | None:
        if shape == ():
            return _Help(
                f"one {what} per image: keep the batch dimension, shape (N,)",
                "reduce over every dimension but the first, e.g. `.sum(dim=(1, 2, 3))` or "
                "`.mean(dim=(1, 2))`, never over dim 0",
            )
        return None

    return hint


def _tv_mistakes(args: tuple[Any, ...]) -> list[tuple[Tensor, _Help]]:
    """The results of total variation's usual mistakes, each with its help."""
    (x,) = args
    x = x.double()
    right = x[:, :, :-1, 1:] - x[:, :, :-1, :-1]
    down = x[:, :, 1:, :-1] - x[:, :, :-1, :-1]
    full_right = x[:, :, :, 1:] - x[:, :, :, :-1]
    full_down = x[:, :, 1:, :] - x[:, :, :-1, :]
    grid = (
        "take both differences on the same (H-1) x (W-1) grid of top-left corners: "
        "`x[:, :, :-1, 1:] - x[:, :, :-1, :-1]` and `x[:, :, 1:, :-1] - x[:, :, :-1, :-1]`"
    )
    return [
        (
            (right**2 + down**2).sum(dim=(1, 2, 3)),
            _Help(
                "average over the positions, do not sum them",
                "sum the squared differences over the channels, then `.mean(dim=(1, 2))` over "
                "the (H-1) x (W-1) positions",
            ),
        ),
        (
            (right**2 + down**2).mean(dim=(1, 2, 3)),
            _Help(
                "sum over the channels, then average over positions",
                "`.sum(dim=1)` first (the channels), then `.mean(dim=(1, 2))`: the mean over "
                "all three dims also divides by the number of channels",
            ),
        ),
        (
            (right.abs() + down.abs()).sum(dim=1).mean(dim=(1, 2)),
            _Help(
                "square the differences",
                "this total variation is the squared one, `right**2 + down**2`, not the "
                "absolute one",
            ),
        ),
        (
            (right**2 + down**2).sum(dim=1).sqrt().mean(dim=(1, 2)),
            _Help(
                "no square root: add the squared differences as they are",
                "sum right**2 + down**2 over the channels, then average over the positions",
            ),
        ),
        (
            (full_right**2).sum(dim=1).mean(dim=(1, 2)) + (full_down**2).sum(dim=1).mean(dim=(1, 2)),
            _Help(
                "you averaged each difference over its own grid, H x (W-1) and (H-1) x W; "
                "take both on the same (H-1) x (W-1) grid",
                grid,
            ),
        ),
        (
            ((full_right**2).sum(dim=(1, 2, 3)) + (full_down**2).sum(dim=(1, 2, 3)))
            / ((x.shape[2] - 1) * (x.shape[3] - 1)),
            _Help(
                "you summed the differences over their own grids, H x (W-1) and (H-1) x W; "
                "take both on the (H-1) x (W-1) grid of the positions you divide by",
                grid,
            ),
        ),
    ]


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
    _grade_tensor_function(
        total_variation,
        "the image",
        cases,
        _tv_mistakes,
        _Help(
            "follow the formula: right and down differences on the (H-1) x (W-1) grid",
            "square both differences, add them, sum over the channels (dim=1), then average "
            "over the (H-1) x (W-1) positions: one number per image",
        ),
        _batch_shape_hint("total variation"),
    )
    print(f"Correct! {_name(total_variation)} computes the total variation of each image.")


def _gram_mistakes(args: tuple[Any, ...]) -> list[tuple[Tensor, _Help]]:
    """The results of the Gram matrix's usual mistakes, each with its help."""
    (f,) = args
    n, c, h, w = f.shape
    flat = f.double().reshape(n, c, h * w)
    scrambled = f.double().reshape(n, h * w, c).transpose(1, 2)
    outer = _Help(
        "this is F^T F, (H*W) x (H*W); the Gram matrix is F F^T, C x C",
        "with F of shape (N, C, H*W): `F @ F.transpose(1, 2)`, channels times channels",
    )
    return [
        *([(flat.transpose(1, 2) @ flat / (h * w), outer), (flat.transpose(1, 2) @ flat, outer)] if h * w == c else []),
        (
            flat @ flat.transpose(1, 2),
            _Help(
                "divide by the number of positions, H * W",
                "without it the Gram matrix grows with the image size; `/ (h * w)`",
            ),
        ),
        (
            flat @ flat.transpose(1, 2) / (c * h * w),
            _Help(
                "divide by H * W only, not by C * H * W",
                "each entry is a mean over the H * W positions of a product of two channels",
            ),
        ),
        (
            scrambled @ scrambled.transpose(1, 2) / (h * w),
            _Help(
                "`reshape(N, H*W, C)` mixes the channels up: the memory order is (N, C, H, W)",
                "reshape to (N, C, H*W), which keeps each channel's values together, then "
                "transpose with `.transpose(1, 2)` where you need (N, H*W, C)",
            ),
        ),
    ]


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

    def shape_hint(args: tuple[Any, ...], shape: tuple[int, ...]) -> _Help | None:
        n, c, h, w = args[0].shape
        if shape == (n, h * w, h * w):
            return _Help(
                "this is F^T F, (H*W) x (H*W); the Gram matrix is F F^T, C x C",
                "with F of shape (N, C, H*W): `F @ F.transpose(1, 2)`, channels times channels",
            )
        if shape == (c, c) or shape == (n * c, n * c):
            return _Help(
                "one Gram matrix per image: keep the batch dimension, (N, C, C)",
                "reshape to (N, C, H*W) and multiply batch by batch with `@` (or torch.bmm)",
            )
        return None

    _grade_tensor_function(
        gram_matrix,
        "the features",
        cases,
        _gram_mistakes,
        _Help(
            "reshape to (N, C, H*W) and multiply by its transpose",
            "`F = features.reshape(n, c, h * w)`; `F @ F.transpose(1, 2) / (h * w)`",
        ),
        shape_hint,
    )
    print(f"Correct! {_name(gram_matrix)} computes F F^T / (H W) for each image.")


def _style_mistakes(args: tuple[Any, ...]) -> list[tuple[Tensor, _Help]]:
    """The results of the style loss's usual mistakes, each with its help."""
    features, gram_target = args
    n, c, h, w = features.shape
    flat = features.double().reshape(n, c, h * w)
    target = gram_target.double()
    gram = flat @ flat.transpose(1, 2) / (h * w)
    difference = (gram - target) ** 2
    raw = flat @ flat.transpose(1, 2)
    return [
        (
            difference.sum(dim=(1, 2)),
            _Help(
                "divide by 4 C^2",
                "Gatys et al.'s style loss is sum((G - A)^2) / (4 C^2), C the number of channels",
            ),
        ),
        (
            difference.mean(dim=(1, 2)),
            _Help(
                "sum the squared differences and divide by 4 C^2 (the mean divides by C^2 only)",
                "`.sum(dim=(1, 2)) / (4 * c**2)`",
            ),
        ),
        (
            (gram - target).abs().sum(dim=(1, 2)) / (4 * c**2),
            _Help(
                "square the differences (G - A)^2, not their absolute values",
                "sum((G - A)**2) over the two Gram dimensions, then / (4 C^2)",
            ),
        ),
        (
            difference.sum(dim=(1, 2)).sqrt() / (4 * c**2),
            _Help(
                "no square root: the loss is the squared distance, not the distance",
                "sum((G - A)**2) / (4 C^2), without .sqrt() or torch.norm",
            ),
        ),
        (
            ((raw - target) ** 2).sum(dim=(1, 2)) / (4 * c**2),
            _Help(
                "use the Gram matrix divided by H * W, as in check_gram_matrix, before comparing",
                "G = F F^T / (H W): the target A was computed the same way",
            ),
        ),
    ]


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
    expected_batch = ((flat @ flat.transpose(1, 2) / 16 - target.double()) ** 2).sum(dim=(1, 2)) / 36
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
    _grade_tensor_function(
        style_loss,
        "the features or the target",
        cases,
        _style_mistakes,
        _Help(
            "compare the Gram matrix of the features with the target",
            "G = gram_matrix(features); return ((G - target) ** 2).sum(dim=(1, 2)) / (4 C^2)",
        ),
        _batch_shape_hint("loss"),
    )
    print(f"Correct! {_name(style_loss)} is Gatys et al.'s style loss.")


def _ascent_objective(seed: int) -> Callable[[Tensor], Tensor]:
    """A fixed smooth objective of images ``(N, 3, H, W)`` -> ``(N,)``: one logit of a small
    fixed network, so that its gradient changes from step to step."""
    net = _small_net(seed)
    return lambda images: net(images)[:, 1]


def _reference_ascent(
    objective: Callable[[Tensor], Tensor],
    x: Tensor,
    steps: int,
    lr: float,
    *,
    direction: float = 1.0,
    normalise: str = "image",
    clamp: bool = True,
    fresh: bool = True,
) -> Tensor:
    """Normalised gradient ascent as the exercise says; the keywords give the classic mistakes
    (descent, the raw gradient or one scale for the batch, no clamp, a stale gradient)."""
    current = x.detach().clone()
    first = None
    for _ in range(steps):
        xg = (current if fresh else x).detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(xg).sum(), xg)
        first = grad if first is None else first
        grad = grad if fresh else first
        if normalise == "image":
            grad = grad / (grad.abs().mean(dim=(1, 2, 3), keepdim=True) + 1e-8)
        elif normalise == "batch":
            grad = grad / (grad.abs().mean() + 1e-8)
        current = current + direction * lr * grad
        if clamp:
            current = current.clamp(0.0, 1.0)
    return current.detach()


@_grader
def check_gradient_ascent(gradient_ascent: Callable[..., Tensor]) -> None:
    """Grade ``gradient_ascent(objective, x, steps, lr)``: ``steps`` times, the gradient ``g``
    of ``objective(x).sum()`` at the current images, ``x + lr * g / (mean |g| per image +
    1e-8)``, clamped to [0, 1]; returns the images, detached."""
    _require_callable(gradient_ascent, "gradient_ascent", "check_gradient_ascent(gradient_ascent)")
    name = _name(gradient_ascent)
    generator = torch.Generator().manual_seed(13)
    cases = [
        (
            "one 6x6 image, 5 steps of lr 0.05",
            _ascent_objective(0),
            torch.rand(1, 3, 6, 6, generator=generator, dtype=torch.float64) * 0.5 + 0.25,
            5,
            0.05,
        ),
        (
            "2 images of different contrast, pixels near 0 and 1, 3 steps of lr 0.1",
            _ascent_objective(1),
            torch.cat(
                [
                    torch.rand(1, 3, 5, 5, generator=generator, dtype=torch.float64).round(),
                    torch.rand(1, 3, 5, 5, generator=generator, dtype=torch.float64) * 0.1 + 0.45,
                ]
            ),
            3,
            0.1,
        ),
    ]
    more = (
        "per step: xg = x_cur.detach().requires_grad_(True); g = torch.autograd.grad("
        "objective(xg).sum(), xg)[0]; x_cur = (x_cur + lr * g / (g.abs().mean(dim=(1, 2, 3), "
        "keepdim=True) + 1e-8)).clamp(0, 1)"
    )
    for case, objective, x, steps, lr in cases:
        expected = _reference_ascent(objective, x, steps, lr)
        result = _call(gradient_ascent, case, objective, x, steps, lr, what="the images x")
        result = _require_images(result, x, "the images", gradient_ascent, case, "x_cur")
        if _close(result, expected):
            continue
        mistakes = [
            (
                _reference_ascent(objective, x, steps, lr, direction=-1.0),
                _Help(
                    "the objective went down: this is gradient descent. Maximisation adds the "
                    "gradient, x + lr * g",
                    "the gradient points where the objective grows fastest; follow it",
                ),
            ),
            (
                _reference_ascent(objective, x, steps, lr, normalise="none"),
                _Help(
                    "the raw gradient was used: divide it by its mean absolute value per image "
                    "(plus 1e-8), so every step has the same size whatever the gradient's scale",
                    "g / (g.abs().mean(dim=(1, 2, 3), keepdim=True) + 1e-8)",
                ),
            ),
            (
                _reference_ascent(objective, x, steps, lr, normalise="batch"),
                _Help(
                    "the gradient was scaled by one number for the whole batch: each image gets "
                    "its own mean absolute value",
                    "g.abs().mean(dim=(1, 2, 3), keepdim=True) has shape (N, 1, 1, 1)",
                ),
            ),
            (
                _reference_ascent(objective, x, steps, lr, clamp=False),
                _Help(
                    "clamp to [0, 1] after every step: it must stay an image",
                    "x_cur = (x_cur + ...).clamp(0, 1)",
                ),
            ),
            (
                _reference_ascent(objective, x, steps, lr, fresh=False),
                _Help(
                    "the gradient is taken once, at the starting image: take it again at the "
                    "current image in every step",
                    "compute objective(xg) inside the loop, on a copy of the current image",
                ),
            ),
            (
                _reference_ascent(objective, x, 1, lr),
                _Help("only one step was taken: loop `steps` times", "for _ in range(steps): ..."),
            ),
        ]
        help = next(
            (h for ref, h in mistakes if _close(result, ref)),
            _Help(
                "per step: the gradient of objective(x).sum() at the current images, divided by "
                "its mean absolute value per image plus 1e-8, times lr, added; then clamp",
                more,
            ),
        )
        raise _verdict(f"On {case}, {name} gave wrong images.", help, _compare(result, expected))
    print(f"Correct! {name} climbs the objective with normalised gradient steps and stays in [0, 1].")
