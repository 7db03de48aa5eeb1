"""LRP's layer plan: which function each layer of a (canonized) model is swapped for.

:func:`relevance_propagation` canonizes the model (:mod:`~vizwidgets.attribution.lrp.canonizers`:
BatchNorm folded, padding merged, residual sums as modules), then swaps every layer for one
that computes *the same forward* but whose *backward* maps output relevance to input relevance
(:mod:`~vizwidgets.attribution.lrp.functions`):

- affine layers (``nn.Conv2d``, ``nn.Linear``): their rule, chosen by the composite
  (:mod:`~vizwidgets.attribution.lrp.composites`);
- ``nn.ReLU``/``nn.ReLU6``: relevance passes unchanged (``R`` at a rectifier's output is its
  relevance at the input; inactive units carry none, as ``R_j = a_j * ...`` is 0 for them);
- average pooling and sums (:class:`vizwidgets.nn.Sum`): the z-rule, relevance in proportion
  to each input's share;
- max pooling, dropout (eval), flatten, identity, padding (:class:`vizwidgets.nn.SamePad2d`
  among them): their ordinary gradient, which moves relevance without changing it (max
  pooling: to the winning input).

Any layer that is none of the above (a ``nn.Hardswish``, a ``nn.LayerNorm``, a batch
normalisation that could not be folded, a block known to add tensors inside its ``forward``)
raises :class:`UnsupportedLayerError` naming it, before the forward. Arithmetic written inside
the ``forward`` of a custom container cannot be seen from the modules: known torchvision blocks
that do it are refused, and a model of one's own should express such sums with
:class:`vizwidgets.nn.Sum` or come with a canonizer. The plan knows no model by name: only
torch layers and the neutral modules of :mod:`vizwidgets.nn`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vizwidgets.attribution.lrp.canonizers import (
    DEFAULT_CANONIZERS,
    Canonizer,
    canonized,
    replaced_modules,
)
from vizwidgets.attribution.lrp.composites import Composite
from vizwidgets.attribution.lrp.functions import (
    AffineRelevanceModule,
    NormRelevanceModule,
    PassRelevanceModule,
)
from vizwidgets.attribution.lrp.layers import AFFINE_TYPES, affine_layer
from vizwidgets.nn import SamePad2d, Sum

__all__ = ["UnsupportedLayerError", "relevance_propagation", "plan_layers"]


class UnsupportedLayerError(ValueError):
    """The model has a layer LRP has no rule for (raised before any computation)."""


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
        # torchvision takes about 2 s to import: only when a model is planned
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


#: Layers between a rectifier and an affine layer that keep its inputs ``>= 0`` (zero padding,
#: maxima, identities and eval-mode dropout).
_KEEP_SIGN: tuple[type[nn.Module], ...] = (
    nn.Identity,
    nn.ZeroPad2d,
    SamePad2d,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.modules.dropout._DropoutNd,
)


def _rectifier_neighbours(prefix: str, sequential: nn.Sequential) -> tuple[set[str], set[str]]:
    """Names of the affine children of ``sequential`` that a ReLU directly follows, and of
    those a ReLU directly precedes (identities aside; before a layer also zero paddings,
    max pooling and dropout, which keep inputs ``>= 0``)."""
    base = f"{prefix}." if prefix else ""
    followed: set[str] = set()
    preceded: set[str] = set()
    pending: str | None = None  # the last affine child, until a ReLU or another layer
    rectified = False  # whether what reaches the next child is a ReLU's output
    for name, child in sequential._modules.items():
        if isinstance(child, AFFINE_TYPES):
            pending = base + name
            if rectified:
                preceded.add(pending)
            rectified = False
        elif type(child) in _ACTIVATIONS:
            if pending is not None:
                followed.add(pending)
            pending, rectified = None, True
        elif not isinstance(child, nn.Identity):
            pending = None
            rectified = rectified and (
                isinstance(child, _KEEP_SIGN)
                or (isinstance(child, nn.ConstantPad2d) and child.value == 0)
            )
    return followed, preceded


def plan_layers(model: nn.Module, composite: Composite) -> dict[str, nn.Module]:
    """The module to swap in for each layer of the (canonized) ``model``; raises if any layer
    has no rule. Nothing is computed and nothing is changed."""
    hidden = _hidden_arithmetic()
    affine: list[tuple[str, nn.Module]] = []
    others: dict[str, nn.Module] = {}
    problems: list[str] = []
    rectified: set[str] = set()  # affine layers a ReLU directly follows (identities aside)
    rectified_inputs: set[str] = set()  # and those a ReLU directly precedes
    skip: tuple[str, ...] = ()
    for name, module in model.named_modules(remove_duplicate=False):
        if skip and name.startswith(skip):
            continue
        if isinstance(module, nn.Sequential):
            followed, preceded = _rectifier_neighbours(name, module)
            rectified |= followed
            rectified_inputs |= preceded
        kind = type(module).__name__
        if isinstance(module, AFFINE_TYPES):
            affine.append((name, module))
            skip += (f"{name}.",)
        elif type(module) in _ACTIVATIONS:
            others[name] = PassRelevanceModule(_ACTIVATIONS[type(module)], kind)
        elif isinstance(module, _AVERAGE_POOLS) or isinstance(module, Sum):
            others[name] = NormRelevanceModule(module.forward, composite.norm, kind)
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
        layer = affine_layer(
            module, name, rectified=name in rectified, rectified_inputs=name in rectified_inputs
        )
        plan[name] = AffineRelevanceModule(layer, rule, type(module).__name__)
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
        with replaced_modules(model, plan_layers(model, composite)):
            yield model


