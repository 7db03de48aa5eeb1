"""LRP's functions: the same forward as a layer, relevance in the backward.

Layer-wise relevance propagation (Bach, Binder, Montavon, Klauschen, Müller & Samek 2015, "On
Pixel-Wise Explanations for Non-Linear Classifier Decisions by Layer-Wise Relevance
Propagation", PLoS ONE 10(7): e0130140) is computed here as a backward pass: each layer is
swapped (:mod:`~vizwidgets.attribution.lrp.plan`) for a module that computes the layer's own
forward through an autograd function whose backward is the layer's rule:

- :class:`AffineRelevance` (``nn.Conv2d``, ``nn.Linear``, folded layers): the rule's
  ``R_in = rule(a, z, R_out)`` (:mod:`~vizwidgets.attribution.lrp.rules`);
- :class:`PassRelevance` (``nn.ReLU``, ``nn.ReLU6``): relevance passes unchanged;
- :class:`NormRelevance` (average pooling, :class:`vizwidgets.nn.Sum`): the z-rule, each input
  in proportion to what it added.

:func:`layer_relevance` runs one rule on one layer through the same function; the course uses
it to check hand-written rules. Shapes: relevance is always shaped like the tensor it belongs to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from vizwidgets.attribution.lrp.layers import AffineLayer, affine_layer
from vizwidgets.attribution.lrp.rules import Norm, Rule

__all__ = [
    "AffineRelevance",
    "PassRelevance",
    "NormRelevance",
    "AffineRelevanceModule",
    "PassRelevanceModule",
    "NormRelevanceModule",
    "layer_relevance",
]


class AffineRelevance(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, inputs: Tensor, layer: AffineLayer, rule: Rule) -> Tensor:
        if not layer.rectified_inputs and isinstance(inputs.grad_fn, PassRelevance._backward_cls):
            # the inputs are a rectifier's output, unchanged since (an in-place change would
            # have replaced their grad_fn): >= 0, which the plan cannot see across modules
            layer = replace(layer, rectified_inputs=True)
        outputs = layer.apply(inputs, layer.weight, layer.bias)
        ctx.save_for_backward(inputs, outputs)
        ctx.layer = layer
        ctx.rule = rule
        return outputs

    @staticmethod
    def backward(ctx: Any, relevance: Tensor) -> tuple[Tensor, None, None]:
        inputs, outputs = ctx.saved_tensors
        return ctx.rule.propagate(ctx.layer, inputs, outputs, relevance), None, None


class PassRelevance(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, inputs: Tensor, function: Callable[[Tensor], Tensor]) -> Tensor:
        return function(inputs)

    @staticmethod
    def backward(ctx: Any, relevance: Tensor) -> tuple[Tensor, None]:
        return relevance, None


class NormRelevance(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, function: Callable[..., Tensor], rule: Norm, *inputs: Tensor) -> Tensor:
        outputs = function(*inputs)
        ctx.save_for_backward(*inputs, outputs)
        ctx.function = function
        ctx.rule = rule
        return outputs

    @staticmethod
    def backward(ctx: Any, relevance: Tensor) -> tuple[Tensor | None, ...]:
        *inputs, outputs = ctx.saved_tensors
        return (None, None, *ctx.rule.propagate(ctx.function, inputs, outputs, relevance))


# --- the modules swapped in for the duration of a call ------------------------------------


# These modules hold no parameters or submodules, so their plain attributes go straight into
# ``__dict__``: a hundred or more are built per call, and ``nn.Module.__setattr__`` is slow.


class AffineRelevanceModule(nn.Module):
    def __init__(self, layer: AffineLayer, rule: Rule, original: str) -> None:
        super().__init__()
        vars(self).update(layer=layer, rule=rule, original=original)

    def forward(self, inputs: Tensor) -> Tensor:
        return AffineRelevance.apply(inputs, self.layer, self.rule)

    def extra_repr(self) -> str:
        return f"{self.original}, rule={self.rule!r}"


class PassRelevanceModule(nn.Module):
    def __init__(self, function: Callable[[Tensor], Tensor], original: str) -> None:
        super().__init__()
        vars(self).update(function=function, original=original)

    def forward(self, inputs: Tensor) -> Tensor:
        return PassRelevance.apply(inputs, self.function)

    def extra_repr(self) -> str:
        return f"{self.original}, rule=pass"


class NormRelevanceModule(nn.Module):
    def __init__(self, function: Callable[..., Tensor], rule: Norm, original: str) -> None:
        super().__init__()
        vars(self).update(function=function, rule=rule, original=original)

    def forward(self, *inputs: Tensor) -> Tensor:
        return NormRelevance.apply(self.function, self.rule, *inputs)

    def extra_repr(self) -> str:
        return f"{self.original}, rule={self.rule!r}"


def layer_relevance(module: nn.Module, rule: Rule, inputs: Tensor, relevance: Tensor) -> Tensor:
    """One rule on one layer: input relevance ``(N, *in)`` from output relevance ``(N, *out)``.

    ``module`` is an ``nn.Linear``, ``nn.Conv2d`` or
    :class:`~vizwidgets.attribution.lrp.layers.AffineModule`; ``inputs`` its input ``a``;
    ``relevance`` shaped like ``module(inputs)``. Runs through the same autograd function as
    a full LRP pass; the course uses it to check hand-written rules.
    """
    if not isinstance(rule, Rule):
        raise TypeError(f"rule must be an LRP Rule, got {type(rule).__name__}")
    if not isinstance(inputs, Tensor) or not isinstance(relevance, Tensor):
        raise TypeError("inputs and relevance must be tensors")
    layer = affine_layer(module, "module")
    with torch.enable_grad():
        a = inputs.detach().requires_grad_(True)
        z = AffineRelevance.apply(a, layer, rule)
        if z.shape != relevance.shape:
            raise ValueError(
                f"relevance must have the layer's output shape {tuple(z.shape)}, "
                f"got {tuple(relevance.shape)}"
            )
        (result,) = torch.autograd.grad(z, a, relevance)
    return result
