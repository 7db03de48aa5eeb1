"""LRP as an attribution method: relevance carried by the backward pass.

Layer-wise relevance propagation (Bach, Binder, Montavon, Klauschen, Müller & Samek 2015, "On
Pixel-Wise Explanations for Non-Linear Classifier Decisions by Layer-Wise Relevance
Propagation", PLoS ONE 10(7): e0130140) starts from the target class's score at the output,
``R = onehot(c) * f_c(x)``, and hands it down layer by layer with a rule per layer
(:mod:`~vizwidgets.attribution.lrp.rules`, chosen by a
:mod:`~vizwidgets.attribution.lrp.composites` composite) to the pixels: ``(N, 3, H, W)``.

How it is computed. Inside :func:`~vizwidgets.attribution.lrp.plan.relevance_propagation`
the model is canonized (:mod:`~vizwidgets.attribution.lrp.canonizers`: BatchNorm folded,
padding merged, residual sums as modules) and every layer swapped, following the layer plan
(:mod:`~vizwidgets.attribution.lrp.plan`), for one that computes *the same forward* but whose
*backward* maps output relevance to input relevance
(:mod:`~vizwidgets.attribution.lrp.functions`). Then one forward pass and one backward pass
seeded with ``onehot(c) * f_c(x)`` give the input relevance as the "gradient" of the input,
for the whole batch at once; each image's relevance depends only on that image. A layer
without a rule raises :class:`UnsupportedLayerError` naming it, before the forward. Models
built from torch layers and the neutral modules of :mod:`vizwidgets.nn` (``Sum`` for residual
additions, ``SamePad2d``) need no model-specific code.

This module is the method: :class:`LRP`, :func:`lrp`, :class:`LRPOutput`; it re-exports
:func:`relevance_propagation`, :func:`layer_relevance` and :class:`UnsupportedLayerError`.

Relevance sum. ``R_in.sum()`` over an image equals the score ``f_c(x)`` when every layer
conserves relevance: LRP-0 on a ReLU network without biases does (and then LRP-0 equals
gradient x input). Biases keep their share, epsilon absorbs some, gamma and alpha-beta
redistribute with their own denominators, and z^B conserves exactly; so the ratio
``relevance_sum / score`` (:class:`LRPOutput`) measures how much of the score reached the
pixels. ``docs/lrp.md`` reports it for the default model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from vizwidgets.attribution.base import (
    Attribution,
    Option,
    Target,
    check_result,
    prepared,
    select_scores,
)
from vizwidgets.attribution.lrp.canonizers import DEFAULT_CANONIZERS, Canonizer
from vizwidgets.attribution.lrp.composites import COMPOSITES, Composite, make_composite
from vizwidgets.attribution.lrp.functions import layer_relevance
from vizwidgets.attribution.lrp.plan import UnsupportedLayerError, relevance_propagation
from vizwidgets.attribution.lrp.rules import Bound

__all__ = [
    "EPSILON_MAX",
    "GAMMA_MAX",
    "LRP",
    "LRPOutput",
    "lrp",
    "relevance_propagation",
    "layer_relevance",
    "UnsupportedLayerError",
]


#: The largest epsilon (relative to a layer's root mean square output) the registry allows:
#: each epsilon layer divides the relevance by about ``1 + epsilon``, so on the default model
#: epsilon = 10 already leaves 1e-12 of it at the pixels, 1e3 leaves 1e-31 and 1e6 underflows
#: to an all-zero map.
EPSILON_MAX: float = 1e3

#: The largest gamma the registry allows: by gamma = 1e3 the rule equals the z+ rule (gamma to
#: infinity) to within 0.1 %; 1e300 overflows float32.
GAMMA_MAX: float = 1e3


# --- the attribution method --------------------------------------------------------------


class LRPOutput(NamedTuple):
    """What an LRP pass produced.

    ``relevance``: ``(N, C, H, W)`` input relevance. ``scores``: ``(N,)`` the target logits
    the pass started from (the output relevance). ``targets``: ``(N,)`` the classes.
    """

    relevance: Tensor
    scores: Tensor
    targets: Tensor

    @property
    def relevance_sum(self) -> Tensor:
        """``(N,)`` the relevance that reached the input, summed per image.

        Equal to ``scores`` when every layer conserves relevance (LRP-0, bias-free ReLU
        network); the ratio ``relevance_sum / scores`` is what the rules kept.
        """
        return self.relevance.flatten(1).sum(dim=1)


class LRP(Attribution):
    """Layer-wise relevance propagation (Bach et al. 2015; rules: Montavon et al. 2019).

    ``LRP(model).attribute(inputs, target, composite="default", epsilon=0.25, gamma=0.25)``
    returns the relevance ``(N, 3, H, W)`` of each input value for the target class, starting
    from ``R = onehot(c) * f_c(x)`` at the output. ``composite`` is a preset of
    :data:`~vizwidgets.attribution.lrp.composites.COMPOSITES` or a
    :class:`~vizwidgets.attribution.lrp.composites.Composite`; "default" is z^B on the first
    layer, gamma on the lower half of the convolutions, epsilon above and LRP-0 on dense
    layers. The z^B bounds come from the model's normalisation
    (:attr:`~vizwidgets.models.ModelAdapter.bounds`: ``low = -mean / std``,
    ``high = (1 - mean) / std``; ``-127/128`` and ``1`` for EfficientNet-Lite0); for a bare
    ``nn.Module`` pass ``low=`` and ``high=``, or ``adapt(module, mean=..., std=...)`` (with a
    ``Composite`` object, its own rules and bounds are used and these options ignored).

    :meth:`explain` also returns the scores the relevance started from:
    ``LRPOutput.relevance_sum / scores`` is the share of the score that reached the pixels
    (1 for LRP-0 on a bias-free ReLU network; on EfficientNet-Lite0, whose folded BatchNorm
    biases and epsilon layers absorb most of it, about 0.003 with the default composite: see
    ``docs/lrp.md``). Positive relevance speaks for the class, negative against it.

    Canonizers (default :data:`~vizwidgets.attribution.lrp.canonizers.DEFAULT_CANONIZERS`)
    can be replaced with ``LRP(model, canonizers=[...])``. Cost: one forward and one backward
    pass plus one extra convolution per gamma layer (two where the inputs have both signs) and
    per z^B layer; measured at 1.45 to 1.55 times a plain forward+backward on the default model
    (``docs/lrp.md``, "Speed").
    The model is left exactly as it was.
    """

    name = "lrp"
    title = "Layer-wise relevance propagation (LRP)"
    family = "relevance"
    description = (
        "Share the class score out layer by layer, with a rule per layer, down to the pixels."
    )
    reference = (
        "Bach, Binder, Montavon, Klauschen, Müller & Samek 2015, On Pixel-Wise Explanations for "
        "Non-Linear Classifier Decisions by Layer-Wise Relevance Propagation, PLoS ONE; rules: "
        "Montavon, Binder, Lapuschkin, Samek & Müller 2019, Layer-Wise Relevance Propagation: "
        "An Overview, Explainable AI, LNCS 11700"
    )
    output = "pixels"
    zero_hint = (
        "each epsilon layer divides the relevance by about 1 + epsilon, so a large epsilon leaves "
        "nothing for the pixels: try the default epsilon=0.25"
    )
    options = (
        Option(
            "composite", "default", "choice", "which rule each layer gets", choices=tuple(COMPOSITES)
        ),
        Option(
            "epsilon", 0.25, "float",
            "epsilon rule: stabiliser, as a fraction of the root mean square of the layer's outputs",
            0.0, EPSILON_MAX,
        ),
        Option("gamma", 0.25, "float", "gamma rule: extra weight on positive contributions", 0.0, GAMMA_MAX),
        Option(
            "low", None, "tensor",
            "z^B rule: lowest input value, one or one per channel (default: from the model's "
            "preprocessing)",
            nullable=True,
        ),
        Option(
            "high", None, "tensor",
            "z^B rule: highest input value, one or one per channel (default: from the model's "
            "preprocessing)",
            nullable=True,
        ),
    )

    def __init__(
        self, model: Any, layer: str | None = None, *, canonizers: Sequence[Canonizer] | None = None
    ) -> None:
        super().__init__(model, layer)
        bounds = self.adapter.bounds
        #: ``(low, high)`` per channel for the z^B rule, from the model's normalisation (None:
        #: unknown; pass ``low=`` and ``high=``).
        self.bounds: tuple[tuple[float, ...], tuple[float, ...]] | None = (
            (bounds.low, bounds.high) if bounds is not None else None
        )
        if canonizers is not None:
            canonizers = tuple(canonizers)
            for canonizer in canonizers:
                if not isinstance(canonizer, Canonizer):
                    raise TypeError(
                        f"canonizers must be Canonizer instances, got {type(canonizer).__name__}"
                    )
        self.canonizers: tuple[Canonizer, ...] = (
            canonizers if canonizers is not None else DEFAULT_CANONIZERS
        )

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """As :meth:`Attribution.check_options`, also accepting a ``Composite`` as composite."""
        custom = options.get("composite")
        if isinstance(custom, Composite):
            checked = super().check_options({k: v for k, v in options.items() if k != "composite"})
            checked["composite"] = custom
            return checked
        return super().check_options(options)

    def composite(
        self,
        composite: str | Composite,
        epsilon: float = 0.25,
        gamma: float = 0.25,
        low: Bound | None = None,
        high: Bound | None = None,
    ) -> Composite:
        """The :class:`Composite` for these options (preset names are built here)."""
        if isinstance(composite, Composite):
            return composite
        if (low is None) != (high is None):
            raise ValueError("give both low and high for the z^B rule, or neither")
        if low is None and self.bounds is not None:
            low, high = self.bounds
        return make_composite(composite, epsilon=epsilon, gamma=gamma, low=low, high=high)

    def explain(self, inputs: Tensor, target: Target = None, **options: Any) -> LRPOutput:
        """Like :meth:`attribute`, returning the relevance with the scores it started from."""
        x, target_indices, checked = self.validate(inputs, target, options)
        with prepared(self.model):
            output = self._explain(x, target_indices, **checked)
        check_result(output.relevance, self.name, self.zero_hint, stacklevel=self._stacklevel())
        return output

    def _explain(
        self, x: Tensor, target: Tensor | None, *, composite: str | Composite, epsilon: float,
        gamma: float, low: Bound | None, high: Bound | None,
    ) -> LRPOutput:
        rules = self.composite(composite, epsilon, gamma, low, high)
        with relevance_propagation(self.model, rules, self.canonizers):
            x = x.detach().requires_grad_(True)
            scores, used = select_scores(self.model(x), target)
            (relevance,) = torch.autograd.grad(scores, x, scores.detach())
        return LRPOutput(relevance, scores.detach(), used)

    def _attribute(self, x: Tensor, target: Tensor | None, **options: Any) -> Tensor:
        return self._explain(x, target, **options).relevance


def lrp(
    model: Any,
    inputs: Tensor,
    target: Target = None,
    *,
    composite: str | Composite = "default",
    epsilon: float = 0.25,
    gamma: float = 0.25,
    low: Bound | None = None,
    high: Bound | None = None,
) -> Tensor:
    """Layer-wise relevance propagation (Bach et al. 2015); see :class:`LRP`.

    Returns the input relevance ``(N, 3, H, W)`` for ``target`` (None: predicted class).
    """
    return LRP(model).attribute(
        inputs, target, composite=composite, epsilon=epsilon, gamma=gamma, low=low, high=high
    )
