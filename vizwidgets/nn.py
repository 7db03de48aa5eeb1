"""Neutral building blocks: small modules that models are made of and LRP recognises.

A network that writes ``out = branch + x`` inside a block's ``forward`` hides the addition
from everything that works on modules: a forward hook cannot see it, and layer-wise relevance
propagation (:mod:`vizwidgets.attribution.lrp`) has no module to give a rule to. Written as a
module, the step is visible. This is zennit's idea (``zennit.layer.Sum``, with model-specific
rewrites kept at the edge in ``zennit.torchvision``): the core knows a few neutral modules, and
any model built from them is explained without model-specific code.

- :class:`Sum`: adds its inputs, ``Sum()(a, b, ...) = a + b + ...``; a residual connection is
  ``Sum()(branch(x), x)``. LRP shares its relevance with the z-rule
  (:class:`~vizwidgets.attribution.lrp.rules.Norm`): each input in proportion to what it added
  (He, Zhang, Ren & Sun 2016, "Deep Residual Learning for Image Recognition", CVPR, for the
  residual sum).
- :class:`SamePad2d`: TensorFlow's ``"same"`` zero padding before a convolution, which puts the
  odd extra row and column at the bottom and right. LRP merges it into the convolution after it
  (:class:`~vizwidgets.attribution.lrp.canonizers.PaddingMerging`), so that the z^B rule knows
  padded cells are not pixels.

``ResidualAdd`` is another name for :class:`Sum` (the name EfficientNet-Lite0 used first).
Neither module has parameters or buffers, so swapping one for the other never changes a
``state_dict``.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Sum", "ResidualAdd", "SamePad2d"]


class Sum(nn.Module):
    """The sum of its inputs: ``forward(a, b, ...) = a + b + ...``, shapes broadcast as ``+`` does.

    Use it for every addition of tensors that a method should see, above all residual
    connections: ``self.add = Sum()`` in ``__init__``, ``out = self.add(branch, shortcut)`` in
    ``forward``. Takes at least one tensor; the inputs are not changed (no in-place addition).
    """

    def forward(self, *inputs: Tensor) -> Tensor:
        """``inputs[0] + inputs[1] + ...``; ``ValueError`` when called without inputs."""
        if not inputs:
            raise ValueError("Sum needs at least one tensor to add, got none")
        total = inputs[0]
        for other in inputs[1:]:
            total = total + other
        return total


#: The residual sum ``block(x) + x``: the same module as :class:`Sum`.
ResidualAdd = Sum


class SamePad2d(nn.Module):
    """Zero padding that makes a following convolution behave like TensorFlow's ``"same"``.

    For input length ``L``, kernel ``k`` and stride ``s`` the output length is ``ceil(L / s)``,
    which needs ``max((ceil(L / s) - 1) * s + k - L, 0)`` zeros in all; TensorFlow puts the
    smaller half first (top/left) and the rest last (bottom/right). The amount depends on the
    input size, so it is computed at each call. Input and output are ``(N, C, H, W)``.

    Parameters
    ----------
    kernel_size:
        The following convolution's kernel side, at least 1.
    stride:
        The following convolution's stride, at least 1.
    """

    def __init__(self, kernel_size: int, stride: int) -> None:
        super().__init__()
        for name, value in (("kernel_size", kernel_size), ("stride", stride)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"SamePad2d {name} must be an int, got {type(value).__name__}")
            if value < 1:
                raise ValueError(f"SamePad2d {name} must be at least 1, got {value}")
        self.kernel_size = kernel_size
        self.stride = stride

    def amount(self, length: int) -> tuple[int, int]:
        """``(before, after)``: zeros added before and after a side of ``length`` values."""
        out = math.ceil(length / self.stride)
        total = max((out - 1) * self.stride + self.kernel_size - length, 0)
        return total // 2, total - total // 2

    # the name EfficientNet-Lite0's first version used
    _amount = amount

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``(N, C, H, W)`` padded with zeros to ``(N, C, H + top + bottom, W + left + right)``."""
        top, bottom = self.amount(x.shape[-2])
        left, right = self.amount(x.shape[-1])
        if top == bottom == left == right == 0:
            return x
        return F.pad(x, (left, right, top, bottom))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"
