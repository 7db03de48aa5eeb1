"""Canonizers: temporary rewrites of a model into an equivalent one the LRP rules fit.

LRP rules are stated for layers ``z = W a + b`` followed by rectifiers. Real networks hide
other steps in between: a batch normalisation after each convolution, a zero-padding module
before it, a residual ``out += identity`` inside a block's ``forward``. A canonizer rewrites
such a model, *for the duration of a* ``with`` *block*, into one that computes the same
function with only parts the rules understand (Motzkus, Weber & Lapuschkin 2022, "Measurably
Stronger Explanation Reliability via Model Canonization", ICIP; BatchNorm folding as in Hui &
Binder 2019, "BatchNorm Decomposition for Deep Neural Network Interpretation", IWANN):

- :class:`ResNetCanonizer`: torchvision ResNet blocks become :class:`ResidualBlock` modules
  with the addition as a module, and the stem's ``conv1``/``bn1`` a ``Sequential`` pair;
- :class:`BatchNormFolding`: in every ``nn.Sequential``, a convolution (or linear layer)
  followed by batch normalisation becomes one :class:`AffineModule` with ``W' = W * s``,
  ``b' = (b - mean) * s + beta``, ``s = gamma / sqrt(var + eps)`` (running statistics: the
  model's eval-mode function), and the batch normalisation an ``nn.Identity``;
- :class:`PaddingMerging`: a zero-padding module followed by a convolution becomes one
  :class:`AffineModule` (so the z^B rule knows its padded inputs are not pixels).

No canonizer changes a parameter, a buffer or a module object of the model: each one only
*puts new modules in place of old ones* (:func:`replaced_modules`), and the old ones are put
back when the block ends, whether it returned or raised. Folded weights are computed afresh
on entering and dropped on leaving, so they can never go stale.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from vizwidgets._hooks import swap_modules
from vizwidgets.attribution.lrp.layers import (
    AFFINE_TYPES,
    AffineModule,
    ConvLayer,
    ResidualBlock,
    affine_layer,
    is_dense,
)
from vizwidgets.nn import SamePad2d

__all__ = [
    "Canonizer",
    "BatchNormFolding",
    "PaddingMerging",
    "ResNetCanonizer",
    "DEFAULT_CANONIZERS",
    "canonized",
    "replaced_modules",
    "fold_batchnorm",
    "fold_batchnorms",
]


#: LRP's name for :func:`vizwidgets._hooks.swap_modules`, the one place modules are swapped.
replaced_modules = swap_modules


class Canonizer(ABC):
    """A rewrite of a model into an equivalent one, as a set of module replacements."""

    @abstractmethod
    def replacements(self, model: nn.Module) -> dict[str, nn.Module]:
        """Submodule name -> the module to put in its place. Must not change ``model``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@contextmanager
def canonized(model: nn.Module, canonizers: Sequence[Canonizer] | None = None) -> Iterator[nn.Module]:
    """Apply ``canonizers`` in turn (each sees the result of the previous) for a ``with`` block.

    Default: :data:`DEFAULT_CANONIZERS`. Yields ``model`` itself, rewritten; on exit every
    original module is back in its place.
    """
    if canonizers is None:
        canonizers = DEFAULT_CANONIZERS
    with ExitStack() as stack:
        for canonizer in canonizers:
            if not isinstance(canonizer, Canonizer):
                raise TypeError(
                    f"canonizers must be Canonizer instances, got {type(canonizer).__name__}"
                )
            stack.enter_context(replaced_modules(model, canonizer.replacements(model)))
        yield model


def _sequential_pairs(model: nn.Module) -> Iterator[tuple[str, nn.Module, str, nn.Module]]:
    """``(name_a, a, name_b, b)`` for consecutive children ``a, b`` of every ``nn.Sequential``."""
    for prefix, module in model.named_modules():
        if isinstance(module, nn.Sequential):
            items = [(name, child) for name, child in module._modules.items() if child is not None]
            base = f"{prefix}." if prefix else ""
            for (name_a, a), (name_b, b) in zip(items, items[1:]):
                yield base + name_a, a, base + name_b, b


def fold_batchnorm(layer: nn.Module, norm: _BatchNorm) -> AffineModule:
    """A new layer computing ``norm(layer(x))`` as one affine map (``norm`` as in eval mode).

    ``layer`` is an ``nn.Conv2d``, ``nn.Linear`` or :class:`AffineModule`. With
    ``s = gamma / sqrt(running_var + eps)`` per output channel: ``W' = W * s`` (along the
    output dimension), ``b' = (b - running_mean) * s + beta``. Neither ``layer`` nor ``norm``
    is changed; the new weights are plain tensors, computed now and dropped with the module.
    """
    (folded,) = fold_batchnorms([(layer, norm)])
    return folded


def fold_batchnorms(pairs: Sequence[tuple[nn.Module, _BatchNorm]]) -> list[AffineModule]:
    """:func:`fold_batchnorm` for each ``(layer, norm)`` pair, the same numbers bit for bit.

    Each step runs once over all pairs (``torch._foreach_*``, what PyTorch's optimizers use)
    instead of once per pair: a model has dozens of small normalisations (49 in
    EfficientNet-Lite0), and their folding, redone on every LRP call, took twice as long one
    pair at a time.
    """
    bases, means, variances = [], [], []
    for layer, norm in pairs:
        if norm.running_mean is None or norm.running_var is None:
            raise ValueError(
                f"{type(norm).__name__} without running statistics (track_running_stats=False) "
                "cannot be folded into the layer before it"
            )
        base = affine_layer(layer, "layer")
        if norm.num_features != base.weight.shape[0]:
            raise ValueError(
                f"{type(norm).__name__}({norm.num_features}) does not fit a layer with "
                f"{base.weight.shape[0]} outputs"
            )
        bases.append(base)
        means.append(norm.running_mean)
        variances.append(norm.running_var)
    if not pairs:
        return []
    norms = [norm for _, norm in pairs]
    gammas = [(i, n.weight) for i, n in enumerate(norms) if n.weight is not None]
    betas = [(i, n.bias) for i, n in enumerate(norms) if n.bias is not None]
    biases = [(i, b.bias) for i, b in enumerate(bases) if b.bias is not None]
    with torch.no_grad():
        # s = gamma / sqrt(var + eps)
        scales = torch._foreach_add(variances, [float(n.eps) for n in norms])
        torch._foreach_rsqrt_(scales)
        if gammas:
            torch._foreach_mul_([scales[i] for i, _ in gammas], [gamma for _, gamma in gammas])
        # b' = (b - mean) s + beta = beta - mean s + b s
        shifts = list(scales)  # each replaced below
        if betas:
            found = torch._foreach_addcmul(
                [beta for _, beta in betas], [means[i] for i, _ in betas], [scales[i] for i, _ in betas],
                value=-1,
            )
            for (i, _), shift in zip(betas, found):
                shifts[i] = shift
        plain = [i for i, n in enumerate(norms) if n.bias is None]
        if plain:
            found = torch._foreach_mul(torch._foreach_neg([means[i] for i in plain]), [scales[i] for i in plain])
            for i, shift in zip(plain, found):
                shifts[i] = shift
        weights = torch._foreach_mul(
            [base.weight for base in bases],
            [s.view(-1, *([1] * (base.weight.dim() - 1))) for s, base in zip(scales, bases)],
        )
        if biases:
            torch._foreach_addcmul_(
                [shifts[i] for i, _ in biases], [bias for _, bias in biases], [scales[i] for i, _ in biases]
            )
    return [
        AffineModule(replace(base, weight=weight, bias=bias))
        for base, weight, bias in zip(bases, weights, shifts)
    ]


class BatchNormFolding(Canonizer):
    """Fold each batch normalisation that directly follows a convolution or linear layer.

    Pairs are found where the order is certain: consecutive children of an ``nn.Sequential``
    (``Conv2d -> BatchNorm2d``, ``Linear -> BatchNorm1d``). The folded layer replaces the
    convolution and an ``nn.Identity`` the normalisation. Normalisations elsewhere are left
    alone (LRP then reports them as layers without a rule).
    """

    def replacements(self, model: nn.Module) -> dict[str, nn.Module]:
        pairs: dict[tuple[str, str], tuple[nn.Module, _BatchNorm]] = {}
        taken: set[str] = set()
        for name_a, a, name_b, b in _sequential_pairs(model):
            if name_a in taken or name_b in taken:
                continue
            if not isinstance(a, AFFINE_TYPES) or not isinstance(b, (nn.BatchNorm1d, nn.BatchNorm2d)):
                continue
            fits = isinstance(b, nn.BatchNorm1d) if is_dense(a) else isinstance(b, nn.BatchNorm2d)
            if fits and b.running_mean is not None:
                pairs[name_a, name_b] = (a, b)
                taken.update((name_a, name_b))
        found: dict[str, nn.Module] = {}
        identity = nn.Identity()  # stateless: one instance in place of every normalisation
        for (name_a, name_b), folded in zip(pairs, fold_batchnorms(list(pairs.values()))):
            found[name_a] = folded
            found[name_b] = identity
        return found


def _is_zero_padding(module: nn.Module) -> bool:
    if isinstance(module, (SamePad2d, nn.ZeroPad2d)):
        return True
    return isinstance(module, nn.ConstantPad2d) and module.value == 0


class PaddingMerging(Canonizer):
    """Merge a zero-padding module and the convolution after it into one :class:`AffineModule`.

    Only changes what the rules see: padded positions become part of the convolution, where
    the z^B rule of the first layer treats them as fixed zeros rather than as pixels with
    bounds. Zero padding is ``nn.ZeroPad2d``, ``nn.ConstantPad2d`` with value 0, or the neutral
    :class:`vizwidgets.nn.SamePad2d` (EfficientNet-Lite0's stride-2 units pad with it first).
    """

    def replacements(self, model: nn.Module) -> dict[str, nn.Module]:
        found: dict[str, nn.Module] = {}
        for name_a, a, name_b, b in _sequential_pairs(model):
            if name_a in found or name_b in found:
                continue
            if not _is_zero_padding(a) or not isinstance(b, AFFINE_TYPES) or is_dense(b):
                continue
            if isinstance(b, nn.Conv2d) and b.padding_mode != "zeros":
                continue
            layer = affine_layer(b, name_b)
            if isinstance(layer, ConvLayer) and layer.pad is None:
                found[name_a] = nn.Identity()
                found[name_b] = AffineModule(replace(layer, pad=a))
        return found


class ResNetCanonizer(Canonizer):
    """Make torchvision ResNets' hidden steps visible as modules.

    - each ``BasicBlock``/``Bottleneck`` becomes a :class:`ResidualBlock` built from the
      block's own layers: ``branch = Sequential(conv1, bn1, ReLU, conv2, bn2[, ReLU, conv3,
      bn3])``, ``shortcut = downsample`` (or identity), then the sum and a final ReLU. This
      is what ``forward`` computes, with ``out += identity`` as a module and fresh,
      not-in-place ReLUs;
    - the stem's ``conv1`` and ``bn1``, called one after the other by ``ResNet.forward``,
      become ``Sequential(conv1, bn1)`` and ``Identity`` (so :class:`BatchNormFolding` sees
      the pair).

    Does nothing for models without torchvision ResNet parts (or without torchvision).
    """

    def replacements(self, model: nn.Module) -> dict[str, nn.Module]:
        try:
            # torchvision takes about 2 s to import: only when a model is canonized
            from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
        except ImportError:  # pragma: no cover - torchvision is a dependency
            return {}
        found: dict[str, nn.Module] = {}
        for name, module in model.named_modules():
            base = f"{name}." if name else ""
            if isinstance(module, ResNet):
                found[base + "conv1"] = nn.Sequential(OrderedDict(conv=module.conv1, bn=module.bn1))
                found[base + "bn1"] = nn.Identity()
            elif isinstance(module, (BasicBlock, Bottleneck)) and name:
                layers: OrderedDict[str, nn.Module] = OrderedDict(
                    conv1=module.conv1, bn1=module.bn1, relu1=nn.ReLU(),
                    conv2=module.conv2, bn2=module.bn2,
                )
                if isinstance(module, Bottleneck):
                    layers.update(relu2=nn.ReLU(), conv3=module.conv3, bn3=module.bn3)
                shortcut = module.downsample if module.downsample is not None else nn.Identity()
                found[name] = ResidualBlock(nn.Sequential(layers), shortcut, nn.ReLU())
        return found


#: The canonizers LRP applies by default, in this order. Each does nothing where it does not
#: apply, so the same list serves EfficientNet-Lite0, VGG and ResNet.
DEFAULT_CANONIZERS: tuple[Canonizer, ...] = (ResNetCanonizer(), BatchNormFolding(), PaddingMerging())

