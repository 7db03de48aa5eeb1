"""Graders for notebook 03 (the CAM family): CAM and Grad-CAM from activations."""

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


@_grader
def check_cam(class_activation_map: Callable[[Tensor, Tensor, int], Tensor]) -> None:
    """Grade ``class_activation_map(activation, weights, c) = sum_k weights[c, k] A_k``,
    ``(N, K, h, w) -> (N, h, w)``, without a ReLU."""
    _require_callable(
        class_activation_map, "class_activation_map", "check_cam(class_activation_map)"
    )
    name = _name(class_activation_map)
    for case, activation, weights in _cam_cases():
        for c in range(weights.shape[0]):
            where = f"{case}, class {c}"
            expected = (weights[c].double().view(1, -1, 1, 1) * activation.double()).sum(dim=1)
            result = _call(
                class_activation_map,
                where,
                activation,
                weights,
                c,
                what="the activation or weights",
            )
            result = _require_tensor(result, "the map", class_activation_map, where)
            if tuple(result.shape) != tuple(expected.shape):
                raise AssertionError(
                    f"On {where}, {name} returned shape {tuple(result.shape)}, expected "
                    f"{tuple(expected.shape)}.\nHint: sum over the feature maps, dim=1."
                )
            if _close(result, expected):
                continue
            hint = (
                "apply no ReLU here: CAM keeps negative values"
                if _close(result, expected.clamp(min=0))
                else "use the weights of class c, weights[c], one per feature map"
            )
            raise AssertionError(
                f"On {where}, {name} gave a wrong map.\n{_compare(result, expected)}\nHint: {hint}."
            )
    print(f"Correct! {name} weights the feature maps by the classifier's weights for the class.")


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
    for case, activation, gradient in cases:
        a, g = activation.double(), gradient.double()
        weighted = (g.mean(dim=(2, 3), keepdim=True) * a).sum(dim=1)
        expected = weighted.clamp(min=0)
        result = _call(grad_cam_map, case, activation, gradient, what="the activation or gradient")
        result = _require_tensor(result, "the map", grad_cam_map, case)
        if tuple(result.shape) != tuple(expected.shape):
            raise AssertionError(
                f"On {case}, {name} returned shape {tuple(result.shape)}, expected "
                f"{tuple(expected.shape)}.\nHint: sum over the feature maps, dim=1."
            )
        if _close(result, expected):
            continue
        hints = [
            (weighted, "apply the ReLU at the end: Grad-CAM keeps only positive evidence"),
            (
                (g.sum(dim=(2, 3), keepdim=True) * a).sum(dim=1).clamp(min=0),
                "alpha is the mean of the gradient over positions, not the sum",
            ),
            (
                (g * a).sum(dim=1).clamp(min=0),
                "average the gradient over the positions first (dim=(2, 3)), then weight the maps",
            ),
        ]
        hint = next(
            (h for ref, h in hints if _close(result, ref)),
            "alpha = gradient.mean(dim=(2, 3), keepdim=True); "
            "relu((alpha * activation).sum(dim=1))",
        )
        raise AssertionError(
            f"On {case}, {name} gave a wrong map.\n{_compare(result, expected)}\nHint: {hint}."
        )
    print(f"Correct! {name} computes ReLU(sum_k alpha_k A_k) with alpha_k the mean gradient.")
