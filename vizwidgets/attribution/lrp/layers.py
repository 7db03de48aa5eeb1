"""The layers LRP rules act on, as the rules see them, and the modules canonizers build.

A rule (:mod:`~vizwidgets.attribution.lrp.rules`) only ever needs three things from an affine
layer ``z = W a + b``: its parameters, a way to apply the layer with *other* weights (``W+``,
``W + gamma W+``, ...) and the transpose of that map, ``W^T s``. :class:`AffineLayer` gives
exactly that for dense layers (:class:`DenseLayer`) and 2-D convolutions (:class:`ConvLayer`),
so each rule is written once for both.

Two small modules are built by the canonizers (:mod:`~vizwidgets.attribution.lrp.canonizers`)
and live only while a model is canonized:

- :class:`AffineModule`: an affine layer given by its :class:`AffineLayer` description: a
  convolution with a batch normalisation folded in, or a zero padding merged into the
  convolution after it (so that the z^B rule of the first layer knows which of its inputs
  are padding: they have no bounds);
- :class:`ResidualBlock`: ``act(add(branch(x), shortcut(x)))`` with the addition as a module
  (:class:`vizwidgets.nn.Sum`), so the sum gets its own rule.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import Field, dataclass, replace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from vizwidgets.nn import SamePad2d, Sum

__all__ = [
    "AffineLayer",
    "DenseLayer",
    "ConvLayer",
    "AffineModule",
    "ResidualBlock",
    "affine_layer",
    "is_dense",
    "AFFINE_TYPES",
]


class AffineLayer(ABC):
    """An affine layer ``z = W a + b`` as the LRP rules use it.

    Attributes ``weight`` and ``bias`` (None: no bias) are the layer's parameters, detached.
    :meth:`apply` computes ``W' a + b'`` for any ``W'`` shaped like ``weight``;
    :meth:`transpose` computes ``W'^T s``, the map from the output space back to the input
    space (for a convolution: the transposed convolution). Both work on whole batches.
    ``rectified`` says that a ReLU follows the layer directly, so its relevance is zero
    wherever ``z <= 0`` (every rule gives zero relevance to a zero activation); rules may use
    it to skip work, never to change the result. ``rectified_inputs`` says that a ReLU (or
    ReLU6) comes directly before the layer, so every input is ``>= 0``: rules then skip
    checking the inputs' sign. ``stackable``: inputs concatenated along
    ``weight``'s dim 1 (and weights along dim 1) give the sum of the separate products, so
    several products can be computed in one call.
    """

    weight: Tensor
    bias: Tensor | None
    rectified: bool
    rectified_inputs: bool
    # every concrete layer is a dataclass, so dataclasses.replace works on any AffineLayer
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    @abstractmethod
    def apply(self, inputs: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        """``weight`` applied to ``inputs`` ``(N, *in)``, plus ``bias``: ``(N, *out)``."""

    @abstractmethod
    def transpose(self, grad: Tensor, weight: Tensor, inputs: Tensor) -> Tensor:
        """``weight^T grad`` for ``grad`` ``(N, *out)``: shaped like ``inputs`` ``(N, *in)``."""

    @property
    @abstractmethod
    def stackable(self) -> bool:
        """Whether inputs (dim :attr:`input_dim`) and weights (dim 1) can be concatenated."""

    @property
    @abstractmethod
    def input_dim(self) -> int:
        """The dimension of ``inputs`` that holds the input features or channels."""


@dataclass(eq=False)
class DenseLayer(AffineLayer):
    """``z = a W^T + b`` for ``nn.Linear``: ``weight`` ``(out, in)``, inputs ``(N, ..., in)``."""

    weight: Tensor
    bias: Tensor | None
    rectified: bool = False
    rectified_inputs: bool = False

    def apply(self, inputs: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        return F.linear(inputs, weight, bias)

    def transpose(self, grad: Tensor, weight: Tensor, inputs: Tensor) -> Tensor:
        return grad @ weight

    @property
    def stackable(self) -> bool:
        return True

    @property
    def input_dim(self) -> int:
        return -1


@dataclass(eq=False)
class ConvLayer(AffineLayer):
    """A 2-D convolution, optionally after a zero-padding module ``pad``.

    ``weight`` ``(C_out, C_in / groups, kh, kw)``; inputs ``(N, C_in, H, W)``. The transpose
    is the gradient of the convolution with respect to its input (a transposed convolution),
    then, if there is a ``pad``, the crop that undoes it.
    """

    weight: Tensor
    bias: Tensor | None
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    pad: nn.Module | None = None
    rectified: bool = False
    rectified_inputs: bool = False

    def apply(self, inputs: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        if self.pad is not None:
            inputs = self.pad(inputs)
        return F.conv2d(inputs, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def _transpose(self, grad: Tensor, weight: Tensor, shape: torch.Size) -> Tensor:
        # the input gradient of the convolution, by the backward kernel itself, which reads only
        # the input's shape and memory format. On CPU it is 1.3 to 3 times faster in the
        # channels-last format than in the contiguous one for 1x1 convolutions, and up to 12
        # times for depthwise ones (0.3 ms against 3.7 ms at 96x113x113, stride 2), the
        # slowest either way: those always take that format.
        if self.groups > 1 or grad.is_contiguous(memory_format=torch.channels_last):
            grad = grad.contiguous(memory_format=torch.channels_last)
            layout = torch.empty(shape, dtype=grad.dtype, device=grad.device, memory_format=torch.channels_last)
        else:
            layout = grad.new_empty(1).expand(shape)
        return torch.ops.aten.convolution_backward(
            grad, layout, weight, None, self.stride, self.padding, self.dilation,
            False, (0, 0), self.groups, (True, False, False),
        )[0]

    def transpose(self, grad: Tensor, weight: Tensor, inputs: Tensor) -> Tensor:
        if self.pad is None:
            return self._transpose(grad, weight, inputs.shape)
        offsets = _zero_pad_offsets(self.pad, inputs.shape)
        if offsets is not None:
            # the gradient of a zero padding is the crop of the padded gradient
            (top, bottom), (left, right) = offsets
            padded = (*inputs.shape[:-2], inputs.shape[-2] + top + bottom, inputs.shape[-1] + left + right)
            full = self._transpose(grad, weight, torch.Size(padded))
            crop = full[..., top:top + inputs.shape[-2], left:left + inputs.shape[-1]]
            # one copy into a dense tensor in full's layout: the ops that follow are slow on views
            layout = torch.contiguous_format if full.is_contiguous() else torch.channels_last
            return crop.contiguous(memory_format=layout)
        with torch.enable_grad():
            probe = torch.zeros_like(inputs, requires_grad=True)
            padded = self.pad(probe)
            full = self._transpose(grad, weight, padded.shape)
            (cropped,) = torch.autograd.grad(padded, probe, full)
        return cropped

    @property
    def stackable(self) -> bool:
        return self.groups == 1

    @property
    def input_dim(self) -> int:
        return 1


def _zero_pad_offsets(pad: nn.Module, shape: torch.Size) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """``((top, bottom), (left, right))`` zeros that ``pad`` adds to inputs of ``shape``, or
    None when it is not a known zero padding that only adds (then autograd crops)."""
    if isinstance(pad, SamePad2d):
        return pad.amount(shape[-2]), pad.amount(shape[-1])
    if isinstance(pad, (nn.ZeroPad2d, nn.ConstantPad2d)) and pad.value == 0:
        left, right, top, bottom = pad.padding
        if min(left, right, top, bottom) >= 0:
            return (top, bottom), (left, right)
    return None


class AffineModule(nn.Module):
    """An affine layer described by an :class:`AffineLayer`: ``forward(a) = W a + b``.

    What canonizers put in place of a convolution with its batch normalisation folded in
    (``W' = W * s``, ``b' = ...``), or of a zero padding and the convolution after it. Its
    tensors are not registered as parameters: the module lives only during one call.
    """

    layer: AffineLayer  # set in __init__ as a plain attribute, not through nn.Module.__setattr__

    def __init__(self, layer: AffineLayer) -> None:
        super().__init__()
        if not isinstance(layer, AffineLayer):
            raise TypeError(f"layer must be an AffineLayer, got {type(layer).__name__}")
        vars(self)["layer"] = layer  # a plain attribute (nn.Module.__setattr__ is slow)

    def forward(self, inputs: Tensor) -> Tensor:
        return self.layer.apply(inputs, self.layer.weight, self.layer.bias)

    def extra_repr(self) -> str:
        kind = "dense" if isinstance(self.layer, DenseLayer) else "conv"
        padded = ", padded" if isinstance(self.layer, ConvLayer) and self.layer.pad is not None else ""
        return f"{kind}, weight={tuple(self.layer.weight.shape)}{padded}"


class ResidualBlock(nn.Module):
    """``act(add(branch(x), shortcut(x)))``: a residual block with the sum as a module.

    Built by :class:`~vizwidgets.attribution.lrp.canonizers.ResNetCanonizer` in place of a
    torchvision ``BasicBlock`` or ``Bottleneck``, from that block's own layers, so that the
    addition (inside ``forward`` in torchvision, ``out += identity``) can be given a rule.
    """

    def __init__(self, branch: nn.Module, shortcut: nn.Module, act: nn.Module | None = None) -> None:
        super().__init__()
        self.branch = branch
        self.shortcut = shortcut
        self.add = Sum()
        self.act = act if act is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.add(self.branch(x), self.shortcut(x)))


#: Module types that are affine layers with a rule (after canonization).
AFFINE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv2d, AffineModule)


def is_dense(module: nn.Module) -> bool:
    """Whether an affine module is a dense (fully connected) layer rather than a convolution."""
    if isinstance(module, AffineModule):
        return isinstance(module.layer, DenseLayer)
    return isinstance(module, nn.Linear)


def _conv_padding(conv: nn.Conv2d, name: str) -> tuple[int, int]:
    if conv.padding_mode != "zeros":
        raise ValueError(
            f"LRP supports zero-padded convolutions only; layer {name!r} (Conv2d) has "
            f"padding_mode={conv.padding_mode!r}"
        )
    padding = conv.padding
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0)
        # "same" (stride 1): dilation * (k - 1) zeros per dimension, split over both sides
        totals = [d * (k - 1) for d, k in zip(_pair(conv.dilation), _pair(conv.kernel_size))]
        if any(t % 2 for t in totals):
            raise ValueError(
                f"LRP cannot handle layer {name!r} (Conv2d): padding='same' with an even kernel "
                "pads asymmetrically; give the convolution explicit padding"
            )
        return (totals[0] // 2, totals[1] // 2)
    return _pair(padding)


def affine_layer(
    module: nn.Module, name: str = "layer", rectified: bool = False, rectified_inputs: bool = False
) -> AffineLayer:
    """The :class:`AffineLayer` view of an ``nn.Linear``, ``nn.Conv2d`` or :class:`AffineModule`.

    ``name`` is only used in error messages; ``rectified``: a ReLU directly follows the
    layer; ``rectified_inputs``: a ReLU directly precedes it. Raises ``TypeError`` for any other module.
    """
    if isinstance(module, AffineModule):
        return replace(module.layer, rectified=rectified, rectified_inputs=rectified_inputs)
    if isinstance(module, nn.Linear):
        bias = None if module.bias is None else module.bias.detach()
        return DenseLayer(module.weight.detach(), bias, rectified, rectified_inputs)
    if isinstance(module, nn.Conv2d):
        return ConvLayer(
            module.weight.detach(),
            None if module.bias is None else module.bias.detach(),
            _pair(module.stride),
            _conv_padding(module, name),
            _pair(module.dilation),
            module.groups,
            None,
            rectified,
            rectified_inputs,
        )
    raise TypeError(
        f"{name} must be an nn.Linear, nn.Conv2d or AffineModule to have an LRP rule, got "
        f"{type(module).__name__}"
    )
