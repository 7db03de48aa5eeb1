"""Guided backpropagation and the deconvnet: the gradient with modified ReLU backward passes.

Both change only what a rectifier (``nn.ReLU`` or ``nn.ReLU6``) sends backwards; everything
else is the ordinary gradient. For a rectifier ``y = clamp(x, 0, u)`` (``u`` = inf for ReLU,
6 for ReLU6) with incoming gradient ``g``:

- gradient:              ``g * [0 < x < u]``
- deconvnet:             ``max(g, 0)``               (Zeiler & Fergus 2014)
- guided backpropagation: ``max(g, 0) * [0 < x < u]`` (Springenberg et al. 2015)

During a call every rectifier module is swapped for one that computes the same forward with
the chosen backward (not in place), and the originals, in-place flags included, are put back
afterwards.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import Tensor, nn

from vizwidgets._hooks import swap_modules
from vizwidgets.attribution.base import Attribution, Target
from vizwidgets.attribution.gradient import input_gradient

__all__ = [
    "GuidedBackprop",
    "Deconvnet",
    "guided_backprop",
    "deconvnet",
    "rectifier_override",
    "RectifierRule",
]


class RectifierRule:
    """Which backward rule the swapped rectifiers apply: ``"gradient"``, ``"guided"`` or
    ``"deconvnet"``. The rule is read when the backward pass runs, so one forward pass can be
    differentiated twice under two rules (guided Grad-CAM does). ``calls`` counts the swapped
    rectifiers' forward calls, so a caller can tell whether any ran after a given layer."""

    RULES = ("gradient", "guided", "deconvnet")

    def __init__(self, rule: str) -> None:
        self.rule = rule
        self.calls = 0

    @property
    def rule(self) -> str:
        return self._rule

    @rule.setter
    def rule(self, rule: str) -> None:
        if rule not in self.RULES:
            raise ValueError(f"rule must be one of {list(self.RULES)}, got {rule!r}")
        self._rule = rule


class _ModifiedRectifier(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, upper: float, rule: RectifierRule) -> Tensor:
        ctx.save_for_backward(x)
        ctx.upper = upper
        ctx.rule = rule
        return x.clamp(min=0.0, max=upper) if math.isfinite(upper) else x.clamp(min=0.0)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (x,) = ctx.saved_tensors
        rule = ctx.rule.rule
        if rule == "deconvnet":
            return grad.clamp(min=0.0), None, None
        # grad * [0 < x < upper] in one fused kernel: the rectifiers' own backward functions
        if math.isfinite(ctx.upper):
            out = torch.ops.aten.hardtanh_backward(grad, x, 0.0, ctx.upper)
        else:
            out = torch.ops.aten.threshold_backward(grad, x, 0.0)
        if rule == "guided":
            out.clamp_(min=0.0)  # max(g, 0) * mask == max(g * mask, 0); in place: no new tensor
        return out, None, None


class _RectifierWithModifiedBackward(nn.Module):
    def __init__(self, upper: float, rule: RectifierRule) -> None:
        super().__init__()
        self.upper = upper
        self.rule = rule

    def forward(self, x: Tensor) -> Tensor:
        self.rule.calls += 1
        return _ModifiedRectifier.apply(x, self.upper, self.rule)

    def extra_repr(self) -> str:
        return f"upper={self.upper}, rule={self.rule.rule}"


def rectifier_override(model: nn.Module, rule: RectifierRule) -> AbstractContextManager[None]:
    """A context manager in which every ReLU/ReLU6 of ``model`` has the backward ``rule``.

    The forward pass is unchanged (never in place); ``rule.rule`` may change between two
    backward passes through the same graph.
    """
    replacements: dict[str, nn.Module] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        if isinstance(module, nn.ReLU6):
            replacements[name] = _RectifierWithModifiedBackward(6.0, rule)
        elif isinstance(module, nn.ReLU):
            replacements[name] = _RectifierWithModifiedBackward(math.inf, rule)
    return swap_modules(model, replacements)


class GuidedBackprop(Attribution):
    """Guided backpropagation (Springenberg, Dosovitskiy, Brox & Riedmiller 2015).

    The input gradient with each rectifier passing back only positive gradient, and only where
    its input was active. Returns ``(N, 3, H, W)``.
    """

    name = "guided_backprop"
    title = "Guided backpropagation"
    family = "guided"
    description = "The gradient, keeping only positive signals through active ReLUs: sharp edges."
    reference = (
        "Springenberg, Dosovitskiy, Brox & Riedmiller 2015, Striving for Simplicity: The All "
        "Convolutional Net, ICLR workshop"
    )
    rule = "guided"

    def _attribute(self, x: Tensor, target: Tensor | None, **options: Any) -> Tensor:
        with rectifier_override(self.model, RectifierRule(self.rule)):
            return input_gradient(self.model, x, target)[0]


class Deconvnet(GuidedBackprop):
    """The deconvnet's backward pass (Zeiler & Fergus 2014).

    Each rectifier passes back the positive part of the gradient, whatever its forward input
    was. Returns ``(N, 3, H, W)``.
    """

    name = "deconvnet"
    title = "Deconvnet"
    family = "guided"
    description = "Rectify the backward signal instead of masking it by the forward pass."
    reference = (
        "Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks, ECCV"
    )
    rule = "deconvnet"


def guided_backprop(model: Any, inputs: Tensor, target: Target = None) -> Tensor:
    """Guided backpropagation (Springenberg et al. 2015); see :class:`GuidedBackprop`."""
    return GuidedBackprop(model).attribute(inputs, target)


def deconvnet(model: Any, inputs: Tensor, target: Target = None) -> Tensor:
    """Deconvnet (Zeiler & Fergus 2014); see :class:`Deconvnet`."""
    return Deconvnet(model).attribute(inputs, target)
