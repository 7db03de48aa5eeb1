"""Grader for notebook 07 (fooling): one targeted FGSM step."""

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
from vizwidgets.checks._nets import _small_net

__all__ = ["check_fgsm_step"]


def _reference_fgsm(
    model: torch.nn.Module,
    x: Tensor,
    target: Tensor,
    epsilon: float,
    sign: float = -1.0,
    clamp: bool = True,
) -> Tensor:
    """One FGSM step on the summed cross-entropy; ``sign=+1`` or ``clamp=False`` give the
    usual mistakes."""
    xg = x.detach().clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(xg), target, reduction="sum")
    (grad,) = torch.autograd.grad(loss, xg)
    out = x + sign * epsilon * grad.sign()
    return out.clamp(0.0, 1.0) if clamp else out


@_grader
def check_fgsm_step(fgsm_step: Callable[..., Tensor]) -> None:
    """Grade ``fgsm_step(model, x, target, epsilon)``:
    ``clip(x - epsilon sign(grad CE(target)), 0, 1)``."""
    _require_callable(fgsm_step, "fgsm_step", "check_fgsm_step(fgsm_step)")
    name = _name(fgsm_step)
    generator = torch.Generator().manual_seed(9)
    cases = [
        (
            "one 6x6 image, epsilon 0.1, target 2",
            _small_net(0),
            torch.rand(1, 3, 6, 6, generator=generator, dtype=torch.float64),
            torch.tensor([2]),
            0.1,
        ),
        (
            "2 images near 0 and 1, epsilon 0.3, targets [4, 1]",
            _small_net(1),
            torch.rand(2, 3, 5, 5, generator=generator, dtype=torch.float64).round(),
            torch.tensor([4, 1]),
            0.3,
        ),
    ]
    for case, model, x, target, epsilon in cases:
        expected = _reference_fgsm(model, x, target, epsilon)
        result = _call(fgsm_step, case, model, x, target, epsilon, what="the images x")
        result = _require_tensor(result, "the stepped images", fgsm_step, case)
        if tuple(result.shape) != tuple(x.shape):
            raise AssertionError(
                f"On {case}, {name} returned shape {tuple(result.shape)}, "
                f"expected {tuple(x.shape)}."
            )
        if _close(result, expected):
            continue
        hints = [
            (
                _reference_fgsm(model, x, target, epsilon, sign=1.0),
                "step *against* the gradient of the target's loss: x - epsilon * sign(grad)",
            ),
            (
                _reference_fgsm(model, x, target, epsilon, clamp=False),
                "clamp the result to [0, 1]: it must stay an image",
            ),
        ]
        hint = next(
            (h for ref, h in hints if _close(result, ref)),
            "use grad.sign(), not the gradient itself, times epsilon",
        )
        raise AssertionError(
            f"On {case}, {name} gave a wrong step.\n{_compare(result, expected)}\nHint: {hint}."
        )
    print(f"Correct! {name} takes one targeted FGSM step and stays in [0, 1].")
