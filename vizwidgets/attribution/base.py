"""What every attribution method shares: checking inputs, targets and options; model hygiene.

A method is a small subclass of :class:`Attribution` that declares its registry entry
(name, family, paper, options) as class attributes and implements ``_attribute(x, target,
**options)``, the maths only. The public :meth:`Attribution.attribute` validates and
normalises everything first, then runs ``_attribute`` inside :func:`prepared`, which leaves
the model exactly as it found it (mode, ``requires_grad`` flags, modules, hooks), whether the
method returns or raises.

Validation happens before any work, with one message per mistake that names the argument and
what to pass (``TypeError`` for a wrong type, ``ValueError`` for a bad value):

- ``inputs`` (:func:`check_inputs`): a floating tensor ``(N, C, H, W)`` with the model's
  dtype, device and channel count, each side at least the model's downsampling factor
  (:mod:`~vizwidgets.attribution.limits`; 32 pixels for EfficientNet-Lite0), finite values;
- ``target`` (:func:`normalize_target`): None, an index, a name, one per image (a list, a 1-D
  integer tensor or NumPy array of length N), each in range;
- options (:meth:`Option.check`): the registry's kind and range; integers must be whole
  numbers (no floats, no bools), floats finite, and both within the entry's range.

After the work, :func:`check_result` warns (:class:`AttributionWarning`) when a map is all
zero or not finite, and inputs far outside the preprocessing's range are warned about before
it: both used to pass without a word.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vizwidgets._hooks import eval_mode, frozen_parameters, get_module
from vizwidgets.attribution.limits import model_profile

__all__ = [
    "Attribution",
    "AttributionWarning",
    "Option",
    "Target",
    "INT_LIMIT",
    "prepared",
    "unwrap_model",
    "check_inputs",
    "check_result",
    "warn_if_out_of_range",
    "normalize_target",
    "select_scores",
    "upsample",
    "chunks",
]

#: A class for every image (None: the predicted one), one int/name for all, or one per image.
Target = int | str | Sequence[int | str] | Tensor | None

#: The largest value of an integer option whose registry entry gives no maximum (and of a
#: seed): torch's generators take 64-bit seeds.
INT_LIMIT: int = 2**63 - 1

#: No model has more classes than this (a bound that keeps indices within int64).
_TARGET_LIMIT = 2**31 - 1

#: Without a known preprocessing, inputs beyond this magnitude get a warning.
_LOOSE_INPUT_LIMIT = 1e4


class AttributionWarning(RuntimeWarning):
    """A result that is computed but says nothing: an all-zero or non-finite map, or inputs far
    outside the range the model was trained on."""


def _number(value: float) -> str:
    if value == INT_LIMIT:
        return "2**63 - 1"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}"


@dataclass(frozen=True)
class Option:
    """One option of a method, as the widgets and the course tables show it.

    ``kind`` is "int", "float", "bool", "choice" or "tensor"; numbers have an inclusive range
    ``[minimum, maximum]`` (None: unbounded); choices list their allowed values;
    ``interactive`` narrows a number's range for the widgets' sliders.
    """

    name: str
    default: Any
    kind: str
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] = field(default=())
    nullable: bool = False  # whether None is allowed
    #: ``(low, high)`` for a slider in the widgets: the range worth exploring interactively
    #: (None: derived from the default and the bounds)
    interactive: tuple[float, float] | None = None

    def allowed(self) -> str:
        """The allowed range in words: ``"from 1 to 500"``, ``"at least 0"``, ``"any"``."""
        low = self.minimum
        high = self.maximum if self.maximum is not None else (INT_LIMIT if self.kind == "int" else None)
        if low is not None and high is not None:
            return f"from {_number(low)} to {_number(high)}"
        if low is not None:
            return f"of at least {_number(low)}"
        if high is not None:
            return f"of at most {_number(high)}"
        return "of any size"

    def check(self, value: Any, method: str) -> Any:
        """Return ``value`` checked (and converted to the option's kind), or raise.

        ``TypeError`` for a wrong type (a bool or string for a number), ``ValueError`` for a
        bad value: outside the range, non-finite, a float for an integer option (``inf``,
        ``nan``, ``2.5``, even ``2.0``), a value that is not one of the choices. The message
        names the method, the option and its allowed range.
        """
        where = f"{method}: option {self.name!r}"
        if value is None:
            if self.nullable or self.default is None:
                return None
            raise ValueError(f"{where} must be given (None is not allowed)")
        if self.kind == "tensor":
            return value
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise TypeError(f"{where} must be True or False, got {value!r}")
            return value
        if self.kind == "choice":
            if isinstance(value, Tensor):
                return value
            if not any(type(value) is type(choice) and value == choice for choice in self.choices):
                shown = value if isinstance(value, (str, int, float)) else type(value).__name__
                raise ValueError(f"{where} must be one of {list(self.choices)}, got {shown!r}")
            return value
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(
                    f"{where} must be a whole number {self.allowed()}, got {type(value).__name__} {value!r}"
                )
            if not isinstance(value, numbers.Integral):  # a float: inf, nan, 2.5, even 2.0
                hint = f"; write {int(value)}" if math.isfinite(value) and float(value).is_integer() else ""
                raise ValueError(f"{where} must be a whole number (int) {self.allowed()}, got {value!r}{hint}")
            value = int(value)
            high = self.maximum if self.maximum is not None else INT_LIMIT
        else:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"{where} must be a number {self.allowed()}, got {type(value).__name__}")
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"{where} must be a finite number {self.allowed()}, got {value!r}")
            high = self.maximum
        shown = repr(value) if isinstance(value, int) else _number(value)
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"{where} must be at least {_number(self.minimum)} ({self.allowed()}), got {shown}")
        if high is not None and value > high:
            raise ValueError(f"{where} must be at most {_number(high)} ({self.allowed()}), got {shown}")
        return value


def check_inputs(inputs: Any, model: nn.Module | None = None) -> Tensor:
    """Check a preprocessed batch: a float tensor ``(N, C, H, W)`` with finite values.

    With ``model``, also that the batch is on the model's device, in its dtype, with the
    channel count of its first convolution, and that each side is at least the model's
    downsampling factor (:func:`~vizwidgets.attribution.limits.model_profile`). Returns the
    batch detached; raises ``TypeError``/``ValueError`` naming ``inputs`` and the fix.
    """
    if not isinstance(inputs, Tensor):
        raise TypeError(
            f"inputs must be a preprocessed torch.Tensor (N, 3, H, W), got {type(inputs).__name__}; "
            "turn images into one with model.preprocess(...)"
        )
    if inputs.dim() != 4:
        hint = " (add the batch dimension with x[None])" if inputs.dim() == 3 else ""
        raise ValueError(f"inputs must be 4-D (N, C, H, W), got shape {tuple(inputs.shape)}{hint}")
    if not inputs.is_floating_point():
        raise ValueError(
            f"inputs must be a float tensor, got {inputs.dtype}; preprocess images with "
            "model.preprocess(...) rather than passing raw pixels"
        )
    if inputs.device.type == "meta":
        raise ValueError(
            "inputs are on the meta device, which holds shapes but no values; create them on the "
            "model's device (model.preprocess(...) does)"
        )
    if inputs.shape[0] == 0:
        raise ValueError("inputs is an empty batch (N = 0)")
    if model is not None:
        _check_against_model(inputs, model)
    if not torch.isfinite(inputs).all():
        raise ValueError("inputs contain NaN or infinite values; check the preprocessing")
    return inputs.detach()


def _check_against_model(inputs: Tensor, model: nn.Module) -> None:
    """Device, dtype, channels and size of ``inputs`` against what ``model`` takes."""
    parameter = next(model.parameters(), None)
    if parameter is not None:
        if parameter.device.type == "meta":
            raise ValueError(
                "the model is on the meta device (architecture only, no weights); load its "
                "weights, for instance with vizwidgets.load_model()"
            )
        if parameter.device != inputs.device:
            raise ValueError(
                f"inputs are on {inputs.device} but the model is on {parameter.device}; move one of "
                f"them (inputs.to('{parameter.device}'))"
            )
        if parameter.is_floating_point() and parameter.dtype != inputs.dtype:
            fix = "inputs.float()" if parameter.dtype == torch.float32 else f"inputs.to({parameter.dtype})"
            raise ValueError(
                f"inputs are {inputs.dtype} but the model's weights are {parameter.dtype}; convert "
                f"them with {fix}"
            )
    profile = model_profile(model)
    channels = int(inputs.shape[1])
    if profile.in_channels is not None and channels != profile.in_channels:
        if profile.in_channels == 3 and channels == 1:
            hint = "a grey image: repeat it with inputs.expand(-1, 3, -1, -1), or load it with model.preprocess(...), which converts to RGB"
        elif profile.in_channels == 3 and channels == 4:
            hint = "drop the alpha channel with inputs[:, :3], or load the image with model.preprocess(...), which converts to RGB"
        else:
            hint = f"give (N, {profile.in_channels}, H, W)"
        raise ValueError(
            f"inputs have {channels} channel{'s' if channels != 1 else ''} (shape {tuple(inputs.shape)}) but the model's first "
            f"convolution takes {profile.in_channels}; {hint}"
        )
    height, width = int(inputs.shape[2]), int(inputs.shape[3])
    if min(height, width) < profile.stride:
        raise ValueError(
            f"inputs are {height} x {width} pixels, too small for this model: it downsamples by "
            f"{profile.stride}, so each side needs at least {profile.stride} pixels (smaller inputs "
            "give all-zero or meaningless maps); resize the image, for instance with "
            "model.preprocess(...)"
        )


def warn_if_out_of_range(
    x: Tensor, box: tuple[float, float] | None, method: str, *, stacklevel: int = 3
) -> None:
    """Warn when ``x`` lies far outside what the preprocessing produces.

    ``box``: ``(lowest, highest)`` preprocessed value of a pixel in [0, 1] (from the model's
    mean and std); a value beyond the box by more than four times its width warns (noise and
    perturbations stay well inside that). Without a box, values
    beyond +-1e4 do. Such inputs saturate or overflow the network, and the maps they give are
    zero or meaningless (measured: inputs scaled by 1e15 give an all-zero gradient).
    """
    low_x, high_x = float(x.min()), float(x.max())
    if box is not None:
        low, high = box
        span = high - low
        outside = low_x < low - 4 * span or high_x > high + 4 * span
        expected = f"{low:.3g} to {high:.3g}"
    else:
        outside = max(abs(low_x), abs(high_x)) > _LOOSE_INPUT_LIMIT
        expected = "a few units around 0"
    if outside:
        warnings.warn(
            f"{method}: inputs range from {low_x:.3g} to {high_x:.3g}, far outside what the model's "
            f"preprocessing produces ({expected}); the network saturates and the map says little. "
            "Pass images through model.preprocess(...)",
            AttributionWarning,
            stacklevel=stacklevel,
        )


def check_result(result: Tensor, method: str, hint: str = "", *, stacklevel: int = 3) -> Tensor:
    """Warn (:class:`AttributionWarning`) for each image whose map is not finite or all zero.

    ``hint`` says what to try for this method. Returns ``result`` unchanged.
    """
    if result.dim() == 0 or result.shape[0] == 0:
        return result
    flat = result.detach().flatten(1)
    bad = (~torch.isfinite(flat).all(dim=1)).nonzero().flatten().tolist()
    if bad:
        warnings.warn(
            f"{method}: the map of image(s) {bad} contains NaN or infinite values: the computation "
            "overflowed. Check that the inputs come from model.preprocess(...)"
            + (f"; {hint}" if hint else ""),
            AttributionWarning,
            stacklevel=stacklevel,
        )
    zero = (flat == 0).all(dim=1).nonzero().flatten().tolist()
    if zero:
        warnings.warn(
            f"{method}: the map of image(s) {zero} is all zero, so it shows nothing. Check that the "
            "inputs come from model.preprocess(...) (values far from the preprocessing's range "
            "saturate the network)" + (f"; {hint}" if hint else ""),
            AttributionWarning,
            stacklevel=stacklevel,
        )
    return result


def normalize_target(target: Target, batch: int, classes: Sequence[str] | None = None) -> Tensor | None:
    """Turn ``target`` into ``None`` (use the predicted class) or a ``(N,)`` long tensor.

    Accepted: None; one class for every image (an int, a NumPy integer, a 0-d integer tensor, a
    name); one per image (a list or tuple, a 1-D integer tensor or NumPy integer array of length
    N). Names need ``classes`` (a :class:`~vizwidgets.models.ClassNames`). Floats, bools and
    other types raise ``TypeError``, a wrong length or an index out of range ``ValueError``.
    Without ``classes`` the upper bound of an index is checked against the model's output in
    :func:`select_scores`.
    """
    if target is None:
        return None
    if isinstance(target, Tensor):
        if target.device.type == "meta":
            raise ValueError("target is a tensor on the meta device (no values); give class indices")
        if target.dim() == 0:
            target = target.reshape(1).expand(batch)
        if target.dim() != 1 or target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise ValueError(
                f"target tensor must hold N integer class indices (1-D), got {target.dtype} {tuple(target.shape)}"
            )
        values: list[Any] = target.tolist()
    elif isinstance(target, np.ndarray):
        if target.dtype.kind not in "iu" or target.ndim > 1:
            raise TypeError(
                f"target as a NumPy array must hold integer class indices, one per image (1-D), got "
                f"{target.dtype} of shape {target.shape}; for example target=[285, 154]"
            )
        values = [int(v) for v in target.reshape(-1)] if target.ndim == 1 else [int(target)] * batch
    elif isinstance(target, (str, numbers.Integral)) and not isinstance(target, bool):
        values = [target] * batch
    elif isinstance(target, (list, tuple)):
        values = list(target)
    else:
        raise TypeError(
            "target must be None, a class index (int), a class name (str) or one per image (a list, "
            f"a 1-D integer tensor), got {type(target).__name__} {target!r}"[:300]
        )
    if len(values) != batch:
        raise ValueError(f"{len(values)} targets given for {batch} images; give one per image, or a single one")
    indices: list[int] = []
    for value in values:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError("target must be a class index or name, got a bool")
        if isinstance(value, str):
            if classes is None and not value.strip().isdigit():
                raise ValueError(
                    f"target {value!r} is a class name, but this model has no class names; "
                    "give the class index, or use a model from vizwidgets.load_model"
                )
            index = classes.resolve(value) if classes is not None and hasattr(classes, "resolve") else int(value)
        elif isinstance(value, numbers.Integral):
            index = int(value)
        else:
            raise TypeError(
                f"target must be a class index (int) or name (str), got {type(value).__name__} {value!r}"[:300]
            )
        if index < 0 or (classes is not None and index >= len(classes)) or index > _TARGET_LIMIT:
            upper = f"0 to {len(classes) - 1}" if classes is not None else "an index the model has"
            raise ValueError(f"target class {index} is out of range: use {upper}")
        indices.append(index)
    return torch.tensor(indices, dtype=torch.long)


def select_scores(logits: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor]:
    """The score ``logits[n, target[n]]`` of each image, and the targets used (argmax if None)."""
    if logits.dim() != 2:
        raise ValueError(f"the model must return (N, classes) scores, got shape {tuple(logits.shape)}")
    if target is None:
        target = logits.detach().argmax(dim=1)
    target = target.to(logits.device)
    if int(target.max()) >= logits.shape[1]:
        raise ValueError(f"target class {int(target.max())} is out of range: the model has {logits.shape[1]} classes (0 to {logits.shape[1] - 1})")
    return logits.gather(1, target[:, None])[:, 0], target


def upsample(maps: Tensor, size: Sequence[int]) -> Tensor:
    """Bilinear resize of ``(N, 1, h, w)`` maps to ``size`` (no corner alignment)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps, size=tuple(size), mode="bilinear", align_corners=False)


def chunks(total: int, size: int) -> Iterator[slice]:
    """Slices ``[0:size], [size:2*size], ...`` covering ``range(total)``."""
    for start in range(0, total, size):
        yield slice(start, min(start + size, total))


def unwrap_model(model: Any) -> tuple[nn.Module, Any]:
    """``(module, class names or None)`` of a LoadedModel or a bare ``nn.Module``; TypeError
    for anything else."""
    from vizwidgets.models import LoadedModel

    if isinstance(model, LoadedModel):
        return model.model, model.classes
    if isinstance(model, nn.Module):
        return model, None
    raise TypeError(f"model must be a LoadedModel or torch.nn.Module, got {type(model).__name__}")


def _input_box(preprocess: Any) -> tuple[float, float] | None:
    """``(min_c -mean_c / std_c, max_c (1 - mean_c) / std_c)``, or None without mean and std."""
    mean, std = getattr(preprocess, "mean", None), getattr(preprocess, "std", None)
    if mean is None or std is None:
        return None
    try:
        pairs = [(float(m), float(s)) for m, s in zip(mean, std)]
    except (TypeError, ValueError):
        return None
    if not pairs or any(not s > 0 for _, s in pairs):
        return None
    return min(-m / s for m, s in pairs), max((1.0 - m) / s for m, s in pairs)


@contextmanager
def prepared(model: nn.Module) -> Iterator[None]:
    """Eval mode, frozen parameters, gradients enabled; everything restored on exit."""
    with ExitStack() as stack:
        stack.enter_context(eval_mode(model))
        stack.enter_context(frozen_parameters(model))
        stack.enter_context(torch.enable_grad())
        yield


class Attribution:
    """Base class of every method: ``Method(model, layer=None).attribute(inputs, target)``.

    Parameters
    ----------
    model:
        A :class:`~vizwidgets.models.LoadedModel` (its class names and default layer are used)
        or any ``nn.Module`` mapping ``(N, 3, H, W)`` images to ``(N, classes)`` scores.
    layer:
        For methods that need one (the CAM family): the layer's name, as in
        ``model.named_modules()``. Default: the loaded model's ``default_layer``.
    """

    # registry entry, declared by each method
    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    family: ClassVar[str] = ""
    description: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    needs_layer: ClassVar[bool] = False
    #: "pixels": (N, 3, H, W) signed values; "map": (N, 1, H, W) from a layer
    output: ClassVar[str] = "pixels"
    options: ClassVar[tuple[Option, ...]] = ()
    #: What to try when the map comes out all zero (shown in the warning).
    zero_hint: ClassVar[str] = ""

    def __init__(self, model: Any, layer: str | None = None) -> None:
        self.model: nn.Module
        self.classes: Sequence[str] | None
        self.model, self.classes = unwrap_model(model)
        default_layer: str | None = getattr(model, "default_layer", None) if self.model is not model else None
        self.layer: str | None = None
        if self.needs_layer:
            layer = layer if layer is not None else default_layer
            if layer is None:
                raise ValueError(
                    f"{self.name} needs a layer: pass layer='...' (vizwidgets.list_layers(model) "
                    "lists them)"
                )
            get_module(self.model, layer)
            self.layer = layer
        elif layer is not None:
            raise ValueError(f"{self.name} works on the input pixels and takes no layer; drop layer={layer!r}")
        #: ``(lowest, highest)`` model input of a pixel in [0, 1], from a LoadedModel's
        #: preprocessing (None for a bare module): inputs far outside get a warning.
        self.input_box: tuple[float, float] | None = _input_box(getattr(model, "preprocess", None))

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Fill in defaults and check each option; unknown names raise ``ValueError``."""
        known = {option.name: option for option in self.options}
        unknown = sorted(set(options) - set(known))
        if unknown:
            listed = ", ".join(known) or "none"
            raise ValueError(f"{self.name} has no option {', '.join(map(repr, unknown))}; its options: {listed}")
        return {
            name: option.check(options[name], self.name) if name in options else option.default
            for name, option in known.items()
        }

    def attribute(self, inputs: Tensor, target: Target = None, **options: Any) -> Tensor:
        """Attributions for each image of ``inputs`` towards its ``target`` class.

        ``inputs`` is a preprocessed ``(N, 3, H, W)`` batch on the model's device; ``target`` is
        None (each image's predicted class), one class (index or name) or one per image.
        Returns a float tensor on the inputs' device: ``(N, 3, H, W)`` for pixel methods,
        ``(N, 1, H, W)`` for the CAM family (``(N, 1, h, w)`` with ``upsample=False``).
        Everything is checked first (see the module docstring); a map that is all zero or not
        finite comes with an :class:`AttributionWarning`.
        """
        x, target_indices, checked = self.validate(inputs, target, options)
        with prepared(self.model):
            result = self._attribute(x, target_indices, **checked)
        return check_result(result, self.name, self.zero_hint, stacklevel=self._stacklevel())

    def validate(
        self, inputs: Tensor, target: Target, options: dict[str, Any]
    ) -> tuple[Tensor, Tensor | None, dict[str, Any]]:
        """Check inputs, target and options before any work: ``(x, targets, options)``.

        Warns (:class:`AttributionWarning`) when the inputs lie far outside the range of the
        model's preprocessing.
        """
        x = check_inputs(inputs, self.model)
        targets = normalize_target(target, x.shape[0], self.classes)
        checked = self.check_options(options)
        warn_if_out_of_range(x, self.input_box, self.name, stacklevel=self._stacklevel())
        return x, targets, checked

    @staticmethod
    def _stacklevel() -> int:
        """How far up the stack the user's call is: past vizwidgets' own frames."""
        import sys

        frame = sys._getframe(1)  # the method that asks
        level = 1
        while frame is not None and frame.f_globals.get("__name__", "").startswith("vizwidgets."):
            frame = frame.f_back  # type: ignore[assignment]
            level += 1
        return level + 1  # the warning is raised by a helper the asking method calls

    def _attribute(self, x: Tensor, target: Tensor | None, **options: Any) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        layer = f", layer={self.layer!r}" if self.layer else ""
        return f"{type(self).__name__}({type(self.model).__name__}{layer})"
