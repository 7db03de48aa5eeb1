"""What a model can take: the smallest useful input, its channels, and the memory per row.

Every method checks its inputs against the model before any work (see
:func:`vizwidgets.attribution.base.check_inputs`) and sizes its chunks so that one call stays
within a memory budget. Both need a few facts about the model, measured once per model by one
forward pass of a ``probe_side x probe_side`` image through a copy of the model on the meta
device (shapes only: no data is copied or computed, and the model itself, its hooks and its
statistics never see the probe):

- ``in_channels``: what the first ``nn.Conv2d`` takes (3 for RGB models);
- ``stride``: how much the model downsamples, ``probe_side / (smallest side of any
  convolution's or pooling layer's output)``, layers on pooled 1 x 1 inputs (squeeze and
  excitation) aside: 32 for EfficientNet-Lite0 and ResNets. An input
  side below it leaves the deepest feature maps without one pixel computed from the image, and
  the results are zero or meaningless (measured on EfficientNet-Lite0: 1 x 1 and 8 x 8 inputs
  give all-zero gradient, Grad-CAM and LRP maps, 16 x 16 nearly so; 32 x 32 works), so such
  inputs are refused;
- ``activation_bytes``: the bytes of every leaf module's output for one row of
  ``probe_side x probe_side``, from which the cost of one row of any size is scaled.

Memory. A forward+backward pass keeps about every activation for the backward pass: measured
on EfficientNet-Lite0 at 224 x 224 (2 threads, peak resident memory), 86 MB per row, against
84 MB of leaf outputs; a forward pass under ``no_grad`` only keeps a few at a time, 18-20 MB
per row in batches of 16 to 64. :func:`row_bytes` estimates ``BACKWARD_FACTOR`` (1.5) and
``FORWARD_FACTOR`` (0.4) times the leaf outputs, and :func:`rows_per_pass` caps a requested
chunk so that ``rows x row_bytes`` stays within :func:`memory_budget`: 2 GiB by default, or
``VIZWIDGETS_MEMORY_BUDGET_MB`` megabytes from the environment. A method's ``chunk_size`` is
therefore an upper bound; chunking changes how the work is split, never the result.
"""

from __future__ import annotations

import copy
import math
import os
import weakref
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vizwidgets._hooks import forward_hooks, submodules

__all__ = [
    "ModelProfile",
    "model_profile",
    "memory_budget",
    "row_bytes",
    "rows_per_pass",
    "DEFAULT_MEMORY_BUDGET_MB",
    "MEMORY_BUDGET_ENV",
    "BACKWARD_FACTOR",
    "FORWARD_FACTOR",
    "PROBE_SIDE",
]

#: Memory one call may use for its chunks, in MiB, unless the environment says otherwise.
DEFAULT_MEMORY_BUDGET_MB: int = 2048

#: The environment variable that overrides :data:`DEFAULT_MEMORY_BUDGET_MB` (whole MiB).
MEMORY_BUDGET_ENV: str = "VIZWIDGETS_MEMORY_BUDGET_MB"

#: Bytes one forward+backward row keeps, as a multiple of its leaf modules' outputs.
BACKWARD_FACTOR: float = 1.5

#: Bytes one forward row (no gradient) needs, as a multiple of its leaf modules' outputs.
FORWARD_FACTOR: float = 0.4

#: Side of the probe image (pixels); strides up to this size are measured.
PROBE_SIDE: int = 224

# The layers whose output resolution tells how far the model has downsampled. Adaptive
# pooling is left out: it shrinks to a fixed size whatever the input.
_RESOLUTION_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Conv2d,
    nn.MaxPool2d,
    nn.AvgPool2d,
)


@dataclass(frozen=True)
class ModelProfile:
    """Facts about a model that input checks and chunking need (see the module docstring).

    ``in_channels``: channels of the first convolution (None: no ``nn.Conv2d``).
    ``stride``: the smallest input side the model can use, in pixels (1 when unknown).
    ``activation_bytes``: bytes of all leaf outputs for one row at ``probe_side`` squared
    (None when the probe could not run, for instance on a model that only takes one size).
    """

    in_channels: int | None
    stride: int
    activation_bytes: int | None
    probe_side: int

    def bytes_per_pixel(self) -> float | None:
        """Leaf-output bytes per input pixel of one row, or None if unknown."""
        if self.activation_bytes is None:
            return None
        return self.activation_bytes / float(self.probe_side * self.probe_side)


_PROFILES: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[Any, ...], ModelProfile]] = (
    weakref.WeakKeyDictionary()
)


def _first_conv(model: nn.Module) -> nn.Conv2d | None:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module
    return None


def _signature(model: nn.Module) -> tuple[Any, ...]:
    """What invalidates a cached profile: the parameters' device and dtype, the module count."""
    parameter = next(model.parameters(), None)
    where = (parameter.device, parameter.dtype) if parameter is not None else (None, None)
    return (*where, len(submodules(model)))


def model_profile(model: nn.Module) -> ModelProfile:
    """The :class:`ModelProfile` of ``model``, measured on first use and cached (weakly).

    The probe runs a meta-device copy of ``model`` (:func:`_shadow`) once on a
    ``(1, in_channels, 224, 224)`` input in eval mode without gradients. A model on the meta
    device, one that cannot be copied, or one that fails on the probe (a model that only takes
    one input size, say) gets a profile with ``stride=1`` and no memory estimate: its own call
    then reports what is wrong, and its chunks are not capped.
    """
    signature = _signature(model)
    cached = _PROFILES.get(model)
    if cached is not None and cached[0] == signature:
        return cached[1]
    conv = _first_conv(model)
    in_channels = int(conv.in_channels) if conv is not None else None
    profile = ModelProfile(in_channels, 1, None, PROBE_SIDE)
    parameter = next(model.parameters(), None)
    probe_ok = in_channels is not None and (parameter is None or parameter.device.type != "meta")
    if probe_ok:
        assert in_channels is not None
        profile = _probe(model, in_channels, parameter)
    _PROFILES[model] = (signature, profile)
    return profile


def _shadow(model: nn.Module) -> nn.Module:
    """A copy of ``model`` on the meta device (shapes only, no data), in eval mode, without the
    hooks the original carries: the probe runs on it, so the model itself never sees the probe
    (its own hooks do not fire, its statistics cannot move) and no memory or time is spent."""
    memo: dict[int, Any] = {}
    for parameter in model.parameters():
        memo[id(parameter)] = nn.Parameter(
            torch.empty(parameter.shape, dtype=parameter.dtype, device="meta"), requires_grad=False
        )
    for buffer in model.buffers():
        memo[id(buffer)] = torch.empty(buffer.shape, dtype=buffer.dtype, device="meta")
    shadow = copy.deepcopy(model, memo)
    for module in shadow.modules():
        for hooks in (
            module._forward_hooks,
            module._forward_pre_hooks,
            module._backward_hooks,
            module._backward_pre_hooks,
        ):
            hooks.clear()
    return shadow.eval()


def _probe(model: nn.Module, in_channels: int, parameter: torch.Tensor | None) -> ModelProfile:
    side = PROBE_SIDE
    dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32
    sides: list[int] = []
    total = [0]

    def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if isinstance(output, torch.Tensor):
            total[0] += output.numel() * output.element_size()
            source = args[0] if args and isinstance(args[0], torch.Tensor) else None
            # a layer on pooled (N, C, 1, 1) vectors (squeeze-and-excitation) says nothing
            pooled = source is not None and source.dim() == 4 and source.shape[-2:] == (1, 1)
            if isinstance(module, _RESOLUTION_LAYERS) and output.dim() == 4 and not pooled:
                sides.append(min(int(output.shape[-2]), int(output.shape[-1])))

    try:
        shadow = _shadow(model)
        leaves = {name: hook for name, module in shadow.named_modules() if name and not module._modules}
        with torch.no_grad(), forward_hooks(shadow, leaves):
            shadow(torch.empty((1, in_channels, side, side), device="meta", dtype=dtype))
    except Exception:  # noqa: BLE001 - a probe only: the real call reports the model's own error
        return ModelProfile(in_channels, 1, None, side)
    smallest = min(sides) if sides else side
    stride = max(1, round(side / max(1, smallest))) if sides else 1
    return ModelProfile(in_channels, int(stride), int(total[0]), side)


def memory_budget() -> int:
    """Bytes one call may spend on its chunks: ``VIZWIDGETS_MEMORY_BUDGET_MB`` MiB if set,
    else :data:`DEFAULT_MEMORY_BUDGET_MB`. Read at every call, so it can be changed at run time."""
    text = os.environ.get(MEMORY_BUDGET_ENV)
    if text is None or not text.strip():
        return DEFAULT_MEMORY_BUDGET_MB * 2**20
    try:
        megabytes = float(text)
    except ValueError:
        raise ValueError(
            f"{MEMORY_BUDGET_ENV}={text!r} is not a number of megabytes; set it to, say, 2048, or unset it"
        ) from None
    if not math.isfinite(megabytes) or megabytes <= 0:
        raise ValueError(f"{MEMORY_BUDGET_ENV}={text!r} must be a positive number of megabytes")
    return int(megabytes * 2**20)


def row_bytes(model: nn.Module, height: int, width: int, *, backward: bool) -> int | None:
    """Estimated bytes of one row of ``height x width`` through ``model``: forward+backward
    (``backward=True``) or forward only. None when the model could not be profiled."""
    per_pixel = model_profile(model).bytes_per_pixel()
    if per_pixel is None:
        return None
    factor = BACKWARD_FACTOR if backward else FORWARD_FACTOR
    return max(1, int(math.ceil(per_pixel * height * width * factor)))


def rows_per_pass(
    model: nn.Module, height: int, width: int, requested: int, *, rows_per_item: int = 1, backward: bool
) -> int:
    """How many items (path points, noisy copies, masked images) to put in one pass.

    At most ``requested``, and at most as many as fit the memory budget when each item is
    ``rows_per_item`` rows (a batch of N images: N rows per path point); never fewer than 1.
    """
    cost = row_bytes(model, height, width, backward=backward)
    if cost is None:
        return max(1, requested)
    fitting = memory_budget() // (cost * max(1, rows_per_item))
    return int(max(1, min(requested, fitting)))
