"""Composites: which LRP rule each layer of a network gets.

No single rule suits every layer (Montavon et al. 2019, Sec. 10.3; Kohlbrenner, Bauer,
Nakajima, Binder, Samek & Lapuschkin 2020, "Towards Best Practice in Explaining Neural
Network Decisions with LRP", IJCNN). Near the output, neurons are few and abstract, and LRP-0
is faithful to the function; in the middle, many weak and contradictory contributions make
LRP-0 noisy, and LRP-epsilon keeps only the salient ones; near the input, LRP-gamma spreads
relevance over whole features rather than single pixels; the pixels themselves live in a box
``[low, high]``, which the z^B rule uses.

A :class:`Composite` assigns rules by *type* and *position* in a canonized model (see
:mod:`~vizwidgets.attribution.lrp.canonizers`): affine layers are listed in the order of
``model.named_modules()`` (definition order, which is the order the data flows through for
EfficientNet-Lite0, VGG and ResNet); the first one sees the pixels; the convolutions are
split into a lower part (the first ``floor(C * lower_fraction)`` of the ``C`` convolutions) and
an upper part. On EfficientNet-Lite0 (49 convolutions) the default split puts the stem and
blocks 0 to 7 in the lower part (24 convolutions), blocks 8 to 15 and the head above.

Named presets (:data:`COMPOSITES`, built by :func:`make_composite`):

==============  ==========  ==================  ==================  ==========
preset          first       lower convolutions  upper convolutions  dense
==============  ==========  ==================  ==================  ==========
default         z^B         gamma               epsilon             LRP-0
epsilon         z^B         epsilon             epsilon             epsilon
epsilon_plus    z^B         alpha1-beta0 (z+)   alpha1-beta0 (z+)   epsilon
gamma           z^B         gamma               gamma               LRP-0
alpha1beta0     z^B         alpha1-beta0        alpha1-beta0        alpha1-beta0
alpha2beta1     z^B         alpha2-beta1        alpha2-beta1        alpha2-beta1
lrp0            LRP-0       LRP-0               LRP-0               LRP-0
==============  ==========  ==================  ==================  ==========

"epsilon_plus" is named as in the literature and in zennit's ``EpsilonPlus`` (z+ on
convolutions, epsilon on dense layers), here with z^B on the first layer. Average pooling and
residual sums always use the z-rule :class:`~vizwidgets.attribution.lrp.rules.Norm`;
rectifiers pass relevance on unchanged; max pooling passes it to the maximum (its gradient).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import nn

from vizwidgets.attribution.lrp.layers import is_dense
from vizwidgets.attribution.lrp.rules import LRP0, AlphaBeta, Bound, Epsilon, Gamma, Norm, Rule, ZBox

__all__ = ["Composite", "COMPOSITES", "make_composite"]


@dataclass(frozen=True)
class Composite:
    """Rules by layer type and position.

    Attributes
    ----------
    conv:
        Rule of the convolutions (of the upper part, if ``lower_conv`` is given).
    dense:
        Rule of the ``nn.Linear`` layers.
    lower_conv:
        Rule of the lower ``lower_fraction`` of the convolutions (None: ``conv`` everywhere).
    lower_fraction:
        Share of the convolutions, counted from the input, that get ``lower_conv``.
    first:
        Rule of the first affine layer, the one that sees the pixels (None: by its type and
        position like the others). Usually :class:`~vizwidgets.attribution.lrp.rules.ZBox`.
    norm:
        The z-rule for average pooling and residual sums.
    name:
        For ``repr`` and error messages.
    """

    conv: Rule
    dense: Rule
    lower_conv: Rule | None = None
    lower_fraction: float = 0.5
    first: Rule | None = None
    norm: Norm = field(default_factory=Norm)
    name: str = "custom"

    def __post_init__(self) -> None:
        for attribute in ("conv", "dense", "lower_conv", "first"):
            value = getattr(self, attribute)
            if value is not None and not isinstance(value, Rule):
                raise TypeError(f"Composite {attribute} must be a Rule, got {type(value).__name__}")
        if not isinstance(self.norm, Norm):
            raise TypeError(f"Composite norm must be a Norm rule, got {type(self.norm).__name__}")
        if not (isinstance(self.lower_fraction, (int, float)) and 0.0 <= self.lower_fraction <= 1.0):
            raise ValueError(f"lower_fraction must be a number from 0 to 1, got {self.lower_fraction!r}")

    def rules(self, layers: Sequence[tuple[str, nn.Module]]) -> dict[str, Rule]:
        """Name -> rule for the affine layers ``layers`` (name, module), given input to output.

        ``nn.Linear`` layers (and :class:`~vizwidgets.attribution.lrp.layers.AffineModule`
        views of them) are dense; every other affine layer is a convolution.
        """
        convolutions = [name for name, module in layers if not is_dense(module)]
        lower_count = 0 if self.lower_conv is None else math.floor(len(convolutions) * self.lower_fraction)
        lower = set(convolutions[:lower_count])
        assigned: dict[str, Rule] = {}
        for index, (name, module) in enumerate(layers):
            if index == 0 and self.first is not None:
                assigned[name] = self.first
            elif is_dense(module):
                assigned[name] = self.dense
            elif name in lower and self.lower_conv is not None:
                assigned[name] = self.lower_conv
            else:
                assigned[name] = self.conv
        return assigned


#: Preset name -> what it does; :func:`make_composite` builds them.
COMPOSITES: dict[str, str] = {
    "default": "z^B first layer, gamma on the lower half of the convolutions, epsilon above, "
    "LRP-0 dense",
    "epsilon": "z^B first layer, epsilon everywhere else",
    "epsilon_plus": "z^B first layer, z+ (alpha1-beta0) convolutions, epsilon dense",
    "gamma": "z^B first layer, gamma on every convolution, LRP-0 dense",
    "alpha1beta0": "z^B first layer, alpha1-beta0 everywhere else",
    "alpha2beta1": "z^B first layer, alpha2-beta1 everywhere else",
    "lrp0": "LRP-0 everywhere: gradient x input for ReLU networks without biases",
}


def make_composite(
    name: str = "default",
    *,
    epsilon: float = 0.25,
    gamma: float = 0.25,
    low: Bound | None = None,
    high: Bound | None = None,
) -> Composite:
    """Build the preset ``name`` (a key of :data:`COMPOSITES`).

    ``epsilon`` and ``gamma`` are the parameters of the epsilon and gamma rules where the
    preset uses them; epsilon is relative, ``epsilon * rms(z)`` per layer and image (see
    :class:`~vizwidgets.attribution.lrp.rules.Epsilon`). ``low``/``high`` bound the input
    values for the z^B rule: one number or one per channel; every preset but "lrp0" needs
    them.
    """
    if not isinstance(name, str):
        raise TypeError(
            f"composite must be a preset name (str) or a Composite, got {type(name).__name__}"
        )
    if name not in COMPOSITES:
        raise ValueError(f"unknown composite {name!r}; presets: {', '.join(COMPOSITES)}")
    if name == "lrp0":
        return Composite(conv=LRP0(), dense=LRP0(), name=name)
    if low is None or high is None:
        raise ValueError(
            f"composite {name!r} uses the z^B rule on the first layer, which needs the range of "
            "the input values: pass low= and high= (one number, or one per channel; for inputs "
            "(p - mean) / std with pixels p in [0, 1]: low = -mean / std, high = (1 - mean) / std), "
            "or give a model whose normalisation is known (vizwidgets.load_model, or "
            "vizwidgets.models.adapt(module, mean=..., std=...)), or use composite='lrp0'"
        )
    box = ZBox(low, high)
    eps = Epsilon(epsilon, relative=True)
    if name == "default":
        return Composite(
            conv=eps, dense=LRP0(), lower_conv=Gamma(gamma), lower_fraction=0.5, first=box, name=name
        )
    if name == "epsilon":
        return Composite(conv=eps, dense=eps, first=box, name=name)
    if name == "epsilon_plus":
        return Composite(conv=AlphaBeta(1.0, 0.0), dense=eps, first=box, name=name)
    if name == "gamma":
        return Composite(conv=Gamma(gamma), dense=LRP0(), first=box, name=name)
    alpha, beta = (1.0, 0.0) if name == "alpha1beta0" else (2.0, 1.0)
    return Composite(
        conv=AlphaBeta(alpha, beta), dense=AlphaBeta(alpha, beta), first=box, name=name
    )
