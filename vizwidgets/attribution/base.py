"""What every attribution method shares: checking inputs, targets and options; model hygiene.

A method is a small subclass of :class:`Attribution` that declares its registry entry
(name, family, paper, options) as class attributes and implements ``_attribute(x, target,
**options)``, the maths only. The public :meth:`Attribution.attribute` validates and
normalises everything first, then runs ``_attribute`` inside :func:`prepared`, which leaves
the model exactly as it found it (mode, ``requires_grad`` flags, modules, hooks), whether the
method returns or raises.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vizwidgets._hooks import eval_mode, frozen_parameters, get_module

__all__ = [
    "Attribution",
    "Option",
    "Target",
    "prepared",
    "unwrap_model",
    "check_inputs",
    "normalize_target",
    "select_scores",
    "upsample",
    "chunks",
]

#: A class for every image (None: the predicted one), one int/name for all, or one per image.
Target = int | str | Sequence[int | str] | Tensor | None


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

    def check(self, value: Any, method: str) -> Any:
        """Return ``value`` checked (and converted to the option's kind), or raise."""
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
            if value not in self.choices and not isinstance(value, Tensor):
                raise ValueError(f"{where} must be one of {list(self.choices)}, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{where} must be a number, got {type(value).__name__}")
        if self.kind == "int":
            if int(value) != value:
                raise ValueError(f"{where} must be a whole number, got {value!r}")
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"{where} must be finite, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"{where} must be at least {self.minimum}, got {value!r}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"{where} must be at most {self.maximum}, got {value!r}")
        return value


def check_inputs(inputs: Any) -> Tensor:
    """Check a preprocessed batch: a float tensor ``(N, C, H, W)`` with finite values."""
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
    if inputs.shape[0] == 0:
        raise ValueError("inputs is an empty batch (N = 0)")
    if not torch.isfinite(inputs).all():
        raise ValueError("inputs contain NaN or infinite values; check the preprocessing")
    return inputs.detach()


def normalize_target(target: Target, batch: int, classes: Sequence[str] | None = None) -> Tensor | None:
    """Turn ``target`` into ``None`` (use the predicted class) or a ``(N,)`` long tensor.

    Names need ``classes`` (a :class:`~vizwidgets.models.ClassNames`). The upper bound of an
    index is checked against the model's output in :func:`select_scores`.
    """
    if target is None:
        return None
    if isinstance(target, Tensor):
        if target.dim() == 0:
            target = target.reshape(1).expand(batch)
        if target.dim() != 1 or target.is_floating_point():
            raise ValueError(f"target tensor must hold N class indices, got {target.dtype} {tuple(target.shape)}")
        values: list[Any] = target.tolist()
    elif isinstance(target, (str, int)) or hasattr(target, "__index__"):
        values = [target] * batch
    elif isinstance(target, Sequence):
        values = list(target)
    else:
        raise TypeError(f"target must be None, a class index, a class name or one per image, got {type(target).__name__}")
    if len(values) != batch:
        raise ValueError(f"{len(values)} targets given for {batch} images; give one per image, or a single one")
    indices: list[int] = []
    for value in values:
        if isinstance(value, bool):
            raise TypeError("target must be a class index or name, got a bool")
        if isinstance(value, str):
            if classes is None and not value.strip().isdigit():
                raise ValueError(
                    f"target {value!r} is a class name, but this model has no class names; "
                    "give the class index, or use a model from vizwidgets.load_model"
                )
            index = classes.resolve(value) if classes is not None and hasattr(classes, "resolve") else int(value)
        elif hasattr(value, "__index__"):
            index = value.__index__()
        else:
            raise TypeError(f"target must be a class index or name, got {type(value).__name__}")
        if index < 0 or (classes is not None and index >= len(classes)):
            count = len(classes) if classes is not None else "the model's"
            raise ValueError(f"target class {index} is out of range: use 0 to {count if isinstance(count, str) else count - 1}")
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
        """
        x, target_indices, checked = self.validate(inputs, target, options)
        with prepared(self.model):
            return self._attribute(x, target_indices, **checked)

    def validate(
        self, inputs: Tensor, target: Target, options: dict[str, Any]
    ) -> tuple[Tensor, Tensor | None, dict[str, Any]]:
        """Check inputs, target and options before any work: ``(x, targets, options)``."""
        x = check_inputs(inputs)
        parameter = next(self.model.parameters(), None)
        if parameter is not None and parameter.device != x.device:
            raise ValueError(
                f"inputs are on {x.device} but the model is on {parameter.device}; move one of them "
                f"(inputs.to('{parameter.device}'))"
            )
        return x, normalize_target(target, x.shape[0], self.classes), self.check_options(options)

    def _attribute(self, x: Tensor, target: Tensor | None, **options: Any) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        layer = f", layer={self.layer!r}" if self.layer else ""
        return f"{type(self).__name__}({type(self.model).__name__}{layer})"
