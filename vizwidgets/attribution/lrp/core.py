"""LRP as an attribution method: relevance carried by the backward pass.

Layer-wise relevance propagation (Bach, Binder, Montavon, Klauschen, Müller & Samek 2015, "On
Pixel-Wise Explanations for Non-Linear Classifier Decisions by Layer-Wise Relevance
Propagation", PLoS ONE 10(7): e0130140) starts from the target class's score at the output,
``R = onehot(c) * f_c(x)``, and hands it down layer by layer with a rule per layer
(:mod:`~vizwidgets.attribution.lrp.rules`, chosen by a
:mod:`~vizwidgets.attribution.lrp.composites` composite) to the pixels: ``(N, 3, H, W)``.

How it is computed. Inside :func:`relevance_propagation` the model is first canonized
(:mod:`~vizwidgets.attribution.lrp.canonizers`: BatchNorm folded, residual sums as modules),
then every layer is swapped for one that computes *the same forward* but whose *backward* maps
output relevance to input relevance:

- affine layers (``nn.Conv2d``, ``nn.Linear``): their rule, ``R_in = rule(a, z, R_out)``;
- ``nn.ReLU``/``nn.ReLU6``: relevance passes unchanged (``R`` at a rectifier's output is its
  relevance at the input; inactive units carry none, as ``R_j = a_j * ...`` is 0 for them);
- average pooling, residual sums: the z-rule, relevance in proportion to each input's share;
- max pooling, dropout (eval), flatten, identity, padding: their ordinary gradient, which
  moves relevance without changing it (max pooling: to the winning input).

Then one forward pass and one backward pass seeded with ``onehot(c) * f_c(x)`` give the input
relevance as the "gradient" of the input, for the whole batch at once; each image's relevance
depends only on that image. Any layer the model has that is none of the above (a
``nn.Hardswish``, a ``nn.LayerNorm``, a batch normalisation that could not be folded, a block
that adds tensors inside its ``forward``) raises ``ValueError`` naming it, before the forward.
Arithmetic written inside the ``forward`` of a custom container cannot be seen from the
modules: known torchvision blocks that do it are refused, and a model of one's own should
express such sums as modules (like :class:`~vizwidgets.models.efficientnet_lite.ResidualAdd`)
or come with a canonizer.

Relevance sum. ``R_in.sum()`` over an image equals the score ``f_c(x)`` when every layer
conserves relevance: LRP-0 on a ReLU network without biases does (and then LRP-0 equals
gradient x input). Biases keep their share, epsilon absorbs some, gamma and alpha-beta
redistribute with their own denominators, and z^B conserves exactly; so the ratio
``relevance_sum / score`` (:class:`LRPOutput`) measures how much of the score reached the
pixels. ``docs/lrp.md`` reports it for the default model.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vizwidgets.attribution.base import (
    Attribution,
    Option,
    Target,
    check_result,
    prepared,
    select_scores,
)
from vizwidgets.attribution.lrp.canonizers import (
    DEFAULT_CANONIZERS,
    Canonizer,
    canonized,
    replaced_modules,
)
from vizwidgets.attribution.lrp.composites import COMPOSITES, Composite, make_composite
from vizwidgets.attribution.lrp.layers import AFFINE_TYPES, AffineLayer, affine_layer
from vizwidgets.attribution.lrp.rules import Bound, Norm, Rule
from vizwidgets.models.efficientnet_lite import ResidualAdd, SamePad2d

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


class UnsupportedLayerError(ValueError):
    """The model has a layer LRP has no rule for (raised before any computation)."""


# --- autograd functions: same forward, relevance in the backward --------------------------


class _AffineRelevance(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, inputs: Tensor, layer: AffineLayer, rule: Rule) -> Tensor:
        outputs = layer.apply(inputs, layer.weight, layer.bias)
        ctx.save_for_backward(inputs, outputs)
        ctx.layer = layer
        ctx.rule = rule
        return outputs

    @staticmethod
    def backward(ctx: Any, relevance: Tensor) -> tuple[Tensor, None, None]:
        inputs, outputs = ctx.saved_tensors
        return ctx.rule.propagate(ctx.layer, inputs, outputs, relevance), None, None


class _PassRelevance(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, inputs: Tensor, function: Callable[[Tensor], Tensor]) -> Tensor:
        return function(inputs)

    @staticmethod
    def backward(ctx: Any, relevance: Tensor) -> tuple[Tensor, None]:
        return relevance, None


class _NormRelevance(torch.autograd.Function):
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


# --- the modules swapped in for the duration of a call -------------------------------------


# These modules hold no parameters or submodules, so their plain attributes go straight into
# ``__dict__``: a hundred or more are built per call, and ``nn.Module.__setattr__`` is slow.


class _AffineModule(nn.Module):
    def __init__(self, layer: AffineLayer, rule: Rule, original: str) -> None:
        super().__init__()
        vars(self).update(layer=layer, rule=rule, original=original)

    def forward(self, inputs: Tensor) -> Tensor:
        return _AffineRelevance.apply(inputs, self.layer, self.rule)

    def extra_repr(self) -> str:
        return f"{self.original}, rule={self.rule!r}"


class _PassModule(nn.Module):
    def __init__(self, function: Callable[[Tensor], Tensor], original: str) -> None:
        super().__init__()
        vars(self).update(function=function, original=original)

    def forward(self, inputs: Tensor) -> Tensor:
        return _PassRelevance.apply(inputs, self.function)

    def extra_repr(self) -> str:
        return f"{self.original}, rule=pass"


class _NormModule(nn.Module):
    def __init__(self, function: Callable[..., Tensor], rule: Norm, original: str) -> None:
        super().__init__()
        vars(self).update(function=function, rule=rule, original=original)

    def forward(self, *inputs: Tensor) -> Tensor:
        return _NormRelevance.apply(self.function, self.rule, *inputs)

    def extra_repr(self) -> str:
        return f"{self.original}, rule={self.rule!r}"


# --- which layer gets what ---------------------------------------------------------------

_ACTIVATIONS: dict[type[nn.Module], Callable[[Tensor], Tensor]] = {
    nn.ReLU: torch.relu,
    nn.ReLU6: F.relu6,
}

_AVERAGE_POOLS: tuple[type[nn.Module], ...] = (
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
)

#: Layers whose ordinary gradient already moves relevance correctly (selections, copies,
#: reshapes, and identities in eval mode).
_BY_GRADIENT: tuple[type[nn.Module], ...] = (
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
    nn.modules.dropout._DropoutNd,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
    nn.modules.padding._ConstantPadNd,
    nn.modules.padding._ReflectionPadNd,
    nn.modules.padding._ReplicationPadNd,
    SamePad2d,
)


def _hidden_arithmetic() -> tuple[type[nn.Module], ...]:
    """Containers known to add or multiply tensors inside ``forward`` (no module to hold a rule)."""
    found: list[type[nn.Module]] = []
    try:
        from torchvision.models import convnext, efficientnet, mobilenetv2, mobilenetv3, resnet
        from torchvision.ops import misc
    except ImportError:  # pragma: no cover - torchvision is a dependency
        return ()
    for module, names in (
        (resnet, ("BasicBlock", "Bottleneck")),
        (mobilenetv2, ("InvertedResidual",)),
        (mobilenetv3, ("InvertedResidual",)),
        (efficientnet, ("MBConv", "FusedMBConv")),
        (convnext, ("CNBlock",)),
        (misc, ("SqueezeExcitation",)),
    ):
        for name in names:
            cls = getattr(module, name, None)
            if isinstance(cls, type):
                found.append(cls)
    return tuple(found)


def _has_own_parameters(module: nn.Module) -> bool:
    return any(p is not None for p in module._parameters.values())


def _rectified_children(prefix: str, sequential: nn.Sequential) -> Iterator[str]:
    """Names of the affine children of ``sequential`` followed by a ReLU (identities aside)."""
    base = f"{prefix}." if prefix else ""
    pending: str | None = None
    for name, child in sequential._modules.items():
        if isinstance(child, AFFINE_TYPES):
            pending = base + name
        elif type(child) in _ACTIVATIONS and pending is not None:
            yield pending
            pending = None
        elif not isinstance(child, nn.Identity):
            pending = None


def _plan(model: nn.Module, composite: Composite) -> dict[str, nn.Module]:
    """The module to swap in for each layer of the (canonized) ``model``; raises if any layer
    has no rule. Nothing is computed and nothing is changed."""
    hidden = _hidden_arithmetic()
    affine: list[tuple[str, nn.Module]] = []
    others: dict[str, nn.Module] = {}
    problems: list[str] = []
    rectified: set[str] = set()  # affine layers a ReLU directly follows (identities aside)
    skip: tuple[str, ...] = ()
    for name, module in model.named_modules(remove_duplicate=False):
        if skip and name.startswith(skip):
            continue
        if isinstance(module, nn.Sequential):
            rectified.update(_rectified_children(name, module))
        kind = type(module).__name__
        if isinstance(module, AFFINE_TYPES):
            affine.append((name, module))
            skip += (f"{name}.",)
        elif type(module) in _ACTIVATIONS:
            others[name] = _PassModule(_ACTIVATIONS[type(module)], kind)
        elif isinstance(module, _AVERAGE_POOLS):
            others[name] = _NormModule(module.forward, composite.norm, kind)
        elif isinstance(module, ResidualAdd):
            others[name] = _NormModule(operator.add, composite.norm, kind)
        elif isinstance(module, _BY_GRADIENT):
            continue
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            problems.append(
                f"layer {name!r} ({kind}): a batch normalisation that does not directly follow a "
                "convolution or linear layer in an nn.Sequential cannot be folded"
            )
        elif isinstance(module, hidden):
            problems.append(
                f"layer {name!r} ({kind}): its forward adds or multiplies tensors outside any "
                "module, where no rule can be attached"
            )
        elif module._modules and not _has_own_parameters(module):
            continue  # a container: its children are checked
        else:
            what = "a layer with parameters" if _has_own_parameters(module) else "a non-linearity"
            problems.append(f"layer {name!r} ({kind}): {what} without an LRP rule")
    if problems:
        raise UnsupportedLayerError(
            "LRP cannot explain this model: " + "; ".join(problems) + ". Supported: Conv2d, Linear, "
            "ReLU, ReLU6, average and max pooling, BatchNorm after a convolution, dropout, flatten, "
            "padding and residual sums as modules"
        )
    plan: dict[str, nn.Module] = dict(others)
    modules = dict(affine)
    for name, rule in composite.rules(affine).items():
        module = modules[name]
        layer = affine_layer(module, name, rectified=name in rectified)
        plan[name] = _AffineModule(layer, rule, type(module).__name__)
    return plan


@contextmanager
def relevance_propagation(
    model: nn.Module,
    composite: Composite,
    canonizers: Sequence[Canonizer] | None = None,
) -> Iterator[nn.Module]:
    """A ``with`` block in which the gradient of ``model`` is LRP relevance.

    The model is canonized (default :data:`DEFAULT_CANONIZERS`), checked (``ValueError``
    naming every layer without a rule, before anything runs), and each layer swapped for one
    with the same forward and the rule's backward. Inside, for inputs ``x`` with
    ``requires_grad`` and scores ``y = model(x)``, ``torch.autograd.grad(y, x, R)`` is the
    input relevance for output relevance ``R``. On exit every original module is back, on
    success and on error. The model should be in eval mode (BatchNorm folds its running
    statistics); :class:`LRP` takes care of that.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(composite, Composite):
        raise TypeError(f"composite must be a Composite, got {type(composite).__name__}")
    if isinstance(model, (*AFFINE_TYPES, *_ACTIVATIONS)):
        raise ValueError(
            f"model is a single {type(model).__name__} layer; wrap it (nn.Sequential(model)) so "
            "its layer can be swapped, or use layer_relevance(...) for one layer"
        )
    with canonized(model, canonizers if canonizers is not None else DEFAULT_CANONIZERS):
        with replaced_modules(model, _plan(model, composite)):
            yield model


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
        z = _AffineRelevance.apply(a, layer, rule)
        if z.shape != relevance.shape:
            raise ValueError(
                f"relevance must have the layer's output shape {tuple(z.shape)}, "
                f"got {tuple(relevance.shape)}"
            )
        (result,) = torch.autograd.grad(z, a, relevance)
    return result


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


def _bounds_from_preprocess(preprocess: Any) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    mean, std = getattr(preprocess, "mean", None), getattr(preprocess, "std", None)
    if mean is None or std is None:
        return None
    low = tuple(-m / s for m, s in zip(mean, std))
    high = tuple((1.0 - m) / s for m, s in zip(mean, std))
    return low, high


class LRP(Attribution):
    """Layer-wise relevance propagation (Bach et al. 2015; rules: Montavon et al. 2019).

    ``LRP(model).attribute(inputs, target, composite="default", epsilon=0.25, gamma=0.25)``
    returns the relevance ``(N, 3, H, W)`` of each input value for the target class, starting
    from ``R = onehot(c) * f_c(x)`` at the output. ``composite`` is a preset of
    :data:`~vizwidgets.attribution.lrp.composites.COMPOSITES` or a
    :class:`~vizwidgets.attribution.lrp.composites.Composite`; "default" is z^B on the first
    layer, gamma on the lower half of the convolutions, epsilon above and LRP-0 on dense
    layers. The z^B bounds come from a :class:`~vizwidgets.models.LoadedModel`'s
    preprocessing (``low = -mean / std``, ``high = (1 - mean) / std``: ``-127/128`` and ``1``
    for EfficientNet-Lite0); for a bare ``nn.Module`` pass ``low=`` and ``high=`` (with a
    ``Composite`` object, its own rules and bounds are used and these options ignored).

    :meth:`explain` also returns the scores the relevance started from:
    ``LRPOutput.relevance_sum / scores`` is the share of the score that reached the pixels
    (1 for LRP-0 on a bias-free ReLU network; on EfficientNet-Lite0, whose folded BatchNorm
    biases and epsilon layers absorb most of it, about 0.003 with the default composite: see
    ``docs/lrp.md``). Positive relevance speaks for the class, negative against it.

    Canonizers (default :data:`~vizwidgets.attribution.lrp.canonizers.DEFAULT_CANONIZERS`)
    can be replaced with ``LRP(model, canonizers=[...])``. Cost: one forward and one backward
    pass plus one extra convolution per gamma layer (two where the inputs have both signs) and
    per z^B layer; measured at 1.5 to 1.8 times a plain forward+backward on the default model.
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
        self.bounds = _bounds_from_preprocess(getattr(model, "preprocess", None))
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
