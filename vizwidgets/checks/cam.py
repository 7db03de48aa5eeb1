"""Graders for notebook 03 (the CAM family): CAM and Grad-CAM from activations."""

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

__all__ = ["check_cam", "check_grad_cam"]


def _cam_cases() -> list[tuple[str, Tensor, Tensor]]:
    """The test inputs of the CAM grader: (description, activation (N, K, h, w), weights (C, K))."""
    generator = torch.Generator().manual_seed(5)
    small = torch.tensor([[[[1.0, 0.0], [2.0, 1.0]], [[0.0, 3.0], [1.0, 0.0]]]])  # (1, 2, 2, 2)
    return [
        ("2 feature maps of 2x2", small, torch.tensor([[1.0, -1.0], [0.5, 2.0]])),
        (
            "a batch of 3 images with 6 feature maps of 4x5",
            torch.rand(3, 6, 4, 5, generator=generator),
            torch.randn(4, 6, generator=generator),
        ),
    ]


def _normalised(maps: Tensor) -> Tensor:
    """Each map divided by its own largest value (the usual display step, wrong in a method)."""
    peak = maps.flatten(1).amax(dim=1).view(-1, *([1] * (maps.dim() - 1)))
    return maps / peak.where(peak != 0, torch.ones_like(peak))


def _cam_mistakes(activation: Tensor, weights: Tensor, c: int, expected: Tensor) -> list[tuple[Tensor, _Help]]:
    """The results of CAM's usual mistakes, each with its help."""
    a, w = activation.double(), weights.double()
    mistakes = [
        (
            expected.clamp(min=0),
            _Help(
                "apply no ReLU here: CAM keeps negative values",
                "the exercise's CAM is the plain weighted sum; the notebook clips it for display "
                "later, and Grad-CAM is the one with a ReLU",
            ),
        ),
        (
            (w[c].view(1, -1, 1, 1) * a).mean(dim=1),
            _Help(
                "sum the weighted feature maps over k, do not average them",
                "`(weights[c].view(1, -1, 1, 1) * activation).sum(dim=1)`",
            ),
        ),
        (
            _normalised(expected),
            _Help(
                "return the raw weighted sum: no normalisation (the display does that)",
                "the method returns the map in the logit's units; dividing by its maximum hides "
                "how strong the evidence is",
            ),
        ),
        (
            a.sum(dim=1),
            _Help(
                "weight each feature map by the class's weight before you sum",
                "map_c = sum_k weights[c, k] * A_k: `weights[c]` holds one weight per map",
            ),
        ),
    ]
    if w.shape[0] == w.shape[1]:  # a square weight hides weights[:, c]
        mistakes.append(
            (
                (w[:, c].view(1, -1, 1, 1) * a).sum(dim=1),
                _Help(
                    "use the row of class c, weights[c], not the column weights[:, c]",
                    "the classifier's weight is (classes, K) as in nn.Linear: row c holds the "
                    "K weights of class c",
                ),
            )
        )
    return mistakes


@_grader
def check_cam(class_activation_map: Callable[[Tensor, Tensor, int], Tensor]) -> None:
    """Grade ``class_activation_map(activation, weights, c) = sum_k weights[c, k] A_k``,
    ``(N, K, h, w) -> (N, h, w)``, without a ReLU."""
    _require_callable(class_activation_map, "class_activation_map", "check_cam(class_activation_map)")
    name = _name(class_activation_map)

    def judge(case: str, activation: Tensor, weights: Tensor, c: int) -> _Wrong | None:
        where = f"{case}, class {c}"
        expected = (weights[c].double().view(1, -1, 1, 1) * activation.double()).sum(dim=1)
        result = _call(class_activation_map, where, activation, weights, c, what="the activation or weights")
        result = _require_tensor(result, "the map", class_activation_map, where)
        if tuple(result.shape) != tuple(expected.shape):
            raise _verdict(
                f"On {where}, {name} returned shape {tuple(result.shape)}; the map's shape is "
                f"{tuple(expected.shape)}",
                _Help(
                    "sum over the feature maps, dim=1",
                    "the activation is (N, K, h, w): one map per image, (N, h, w); reshape "
                    "the K weights to (1, K, 1, 1) so that they broadcast over the maps",
                ),
            )
        if _close(result, expected):
            return None
        return _Wrong(
            f"On {where}, {name} gave a wrong map.",
            result,
            expected,
            lambda: _cam_mistakes(activation, weights, c, expected),
            _Help(
                "use the weights of class c, weights[c], one per feature map",
                "`(weights[c].view(1, -1, 1, 1) * activation).sum(dim=1)`, or torch.einsum",
            ),
        )

    _judge(
        functools.partial(judge, case, activation, weights, c)
        for case, activation, weights in _cam_cases()
        for c in range(weights.shape[0])
    )
    print(f"Correct! {name} weights the feature maps by the classifier's weights for the class.")


def _grad_cam_mistakes(a: Tensor, g: Tensor, weighted: Tensor) -> list[tuple[Tensor, _Help]]:
    """The results of Grad-CAM's usual mistakes, each with its help."""
    alpha = g.mean(dim=(2, 3), keepdim=True)
    return [
        (
            weighted,
            _Help(
                "apply the ReLU at the end: Grad-CAM keeps only positive evidence",
                "`torch.relu(...)` or `.clamp(min=0)` on the weighted sum",
            ),
        ),
        (
            (g.sum(dim=(2, 3), keepdim=True) * a).sum(dim=1).clamp(min=0),
            _Help(
                "alpha is the mean of the gradient over positions, not the sum",
                "`gradient.mean(dim=(2, 3), keepdim=True)`: the sum grows with the map's size",
            ),
        ),
        (
            (g * a).sum(dim=1).clamp(min=0),
            _Help(
                "average the gradient over the positions first (dim=(2, 3)), then weight the maps",
                "each map gets one weight alpha_k, the mean of its gradient; an elementwise "
                "gradient x activation is another method",
            ),
        ),
        (
            (alpha * a).clamp(min=0).sum(dim=1),
            _Help(
                "apply the ReLU once, to the sum of the weighted maps, not to each map",
                "relu(sum_k alpha_k A_k): a negatively weighted map must be able to cancel a "
                "positive one",
            ),
        ),
        (
            (alpha * a).mean(dim=1).clamp(min=0),
            _Help(
                "sum the weighted maps over k, do not average them",
                "`(alpha * activation).sum(dim=1)`, then the ReLU",
            ),
        ),
        (
            _normalised(weighted.clamp(min=0)),
            _Help(
                "return the map itself: no normalisation (the display does that)",
                "dividing by the maximum hides how strong the evidence is",
            ),
        ),
        (
            (alpha.abs() * a).sum(dim=1).clamp(min=0),
            _Help(
                "keep alpha's sign: a map whose gradient is negative on average counts against the class",
                "alpha = gradient.mean(dim=(2, 3), keepdim=True), no abs()",
            ),
        ),
        (
            (a.mean(dim=(2, 3), keepdim=True) * g).sum(dim=1).clamp(min=0),
            _Help(
                "activation and gradient are swapped: average the gradient, weight the activation",
                "grad_cam_map(activation, gradient): alpha comes from the second argument",
            ),
        ),
    ]


@_grader
def check_grad_cam(grad_cam_map: Callable[[Tensor, Tensor], Tensor]) -> None:
    """Grade ``grad_cam_map(activation, gradient) = ReLU(sum_k mean_ij(G_k) A_k)``,
    ``(N, h, w)``."""
    _require_callable(grad_cam_map, "grad_cam_map", "check_grad_cam(grad_cam_map)")
    name = _name(grad_cam_map)
    generator = torch.Generator().manual_seed(6)
    cases = [
        (
            "2 feature maps of 2x2",
            torch.tensor([[[[1.0, 0.0], [2.0, 1.0]], [[0.0, 3.0], [1.0, 0.0]]]]),
            torch.tensor([[[[1.0, 1.0], [1.0, -1.0]], [[-2.0, 0.0], [0.0, -2.0]]]]),
        ),
        (
            "a batch of 3 images with 6 feature maps of 4x5",
            torch.rand(3, 6, 4, 5, generator=generator),
            torch.randn(3, 6, 4, 5, generator=generator),
        ),
    ]

    def judge(case: str, activation: Tensor, gradient: Tensor) -> _Wrong | None:
        a, g = activation.double(), gradient.double()
        weighted = (g.mean(dim=(2, 3), keepdim=True) * a).sum(dim=1)
        expected = weighted.clamp(min=0)
        result = _call(grad_cam_map, case, activation, gradient, what="the activation or gradient")
        result = _require_tensor(result, "the map", grad_cam_map, case)
        if tuple(result.shape) != tuple(expected.shape):
            raise _verdict(
                f"On {case}, {name} returned shape {tuple(result.shape)}; the map's shape is "
                f"{tuple(expected.shape)}",
                _Help(
                    "sum over the feature maps, dim=1",
                    "alpha is (N, K, 1, 1) with keepdim=True; alpha * activation is (N, K, h, w); "
                    "summing dim=1 gives (N, h, w)",
                ),
            )
        if _close(result, expected):
            return None
        return _Wrong(
            f"On {case}, {name} gave a wrong map.",
            result,
            expected,
            lambda: _grad_cam_mistakes(a, g, weighted),
            _Help(
                "alpha = gradient.mean(dim=(2, 3), keepdim=True); relu((alpha * activation).sum(dim=1))",
                "three steps: one weight per map (the mean gradient), the weighted sum of the "
                "maps, a ReLU",
            ),
        )

    _judge(functools.partial(judge, *case) for case in cases)
    print(f"Correct! {name} computes ReLU(sum_k alpha_k A_k) with alpha_k the mean gradient.")
