"""What every attribution method shares: the :class:`Attribution` base class and model hygiene.

A method is a small subclass of :class:`Attribution` that declares its registry entry
(name, family, paper, options) as class attributes and implements ``_attribute(x, target,
**options)``, the maths only. The public :meth:`Attribution.attribute` validates and
normalises everything first, then runs ``_attribute`` inside :func:`prepared`, which leaves
the model exactly as it found it (mode, ``requires_grad`` flags, modules, hooks), whether the
method returns or raises.

The model is described by :func:`~vizwidgets.models.adapt` (module, class names,
normalisation, default layer), the one place that knows what a model is. Validation happens
before any work, with one message per mistake that names the argument and what to pass
(``TypeError`` for a wrong type, ``ValueError`` for a bad value); the checks live in
:mod:`~vizwidgets.attribution.validation` and :mod:`~vizwidgets.attribution.options` and are
importable from here as before:

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

import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vizwidgets._hooks import channels_last_inputs, eval_mode, frozen_parameters, get_module, submodules
from vizwidgets.attribution.options import INT_LIMIT, Option
from vizwidgets.attribution.validation import (
    AttributionWarning,
    Target,
    check_inputs,
    check_result,
    normalize_target,
    select_scores,
    warn_if_out_of_range,
)
from vizwidgets.models.adapter import ModelAdapter, adapt

__all__ = [
    "Attribution",
    "AttributionWarning",
    "Option",
    "Target",
    "INT_LIMIT",
    "prepared",
    "check_inputs",
    "check_result",
    "warn_if_out_of_range",
    "normalize_target",
    "select_scores",
    "upsample",
    "chunks",
]


def upsample(maps: Tensor, size: Sequence[int]) -> Tensor:
    """Bilinear resize of ``(N, 1, h, w)`` maps to ``size`` (no corner alignment)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps, size=tuple(size), mode="bilinear", align_corners=False)


def chunks(total: int, size: int) -> Iterator[slice]:
    """Slices ``[0:size], [size:2*size], ...`` covering ``range(total)``."""
    for start in range(0, total, size):
        yield slice(start, min(start + size, total))


_PREPARED: set[int] = set()  # ids of the modules inside a prepared() block now


@contextmanager
def prepared(model: nn.Module) -> Iterator[None]:
    """Eval mode, frozen parameters, gradients enabled; everything restored on exit.

    Inside another ``prepared`` block of the same model only gradients are switched on: the
    outer block already froze it, and walking every module and parameter twice per call costs
    about 4 ms on EfficientNet-Lite0. A run over many images (:mod:`vizwidgets.dataset`)
    prepares its model once.
    """
    if id(model) in _PREPARED:
        with torch.enable_grad():
            yield
        return
    with ExitStack() as stack:
        modules = submodules(model)  # one walk for both
        stack.enter_context(eval_mode(model, modules))
        stack.enter_context(frozen_parameters(model, modules))
        stack.enter_context(torch.enable_grad())
        _PREPARED.add(id(model))
        stack.callback(_PREPARED.discard, id(model))
        yield


class Attribution:
    """Base class of every method: ``Method(model, layer=None).attribute(inputs, target)``.

    Parameters
    ----------
    model:
        Anything :func:`~vizwidgets.models.adapt` takes: a
        :class:`~vizwidgets.models.LoadedModel` (its class names, normalisation and default
        layer are used), any ``nn.Module`` mapping ``(N, 3, H, W)`` images to
        ``(N, classes)`` scores, or a :class:`~vizwidgets.models.ModelAdapter` (for a bare
        module with its ``mean`` and ``std``: ``adapt(module, mean=..., std=...)``).
    layer:
        For methods that need one (the CAM family): the layer's name, as in
        ``model.named_modules()``. Default: the adapter's ``default_layer`` (a loaded model's
        own, or for a bare module its last convolutional stage, see
        :func:`~vizwidgets.models.guess_default_layer`).

    Attributes
    ----------
    adapter:
        The :class:`~vizwidgets.models.ModelAdapter` describing the model.
    model:
        The ``nn.Module`` (``adapter.module``).
    classes:
        Class names or None (``adapter.classes``).
    input_box:
        ``(lowest, highest)`` model input of a pixel in [0, 1] (``adapter.bounds.box``), or
        None without a normalisation: inputs far outside get a warning.
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
    #: Whether the method's passes may run on channels-last inputs when the model asks for it
    #: (:attr:`~vizwidgets.models.ModelAdapter.channels_last`): a method measured slower
    #: that way says False.
    supports_channels_last: ClassVar[bool] = True

    @property
    def fast_layout(self) -> bool:
        """Whether this method's passes feed the model channels-last inputs."""
        return self.adapter.channels_last and self.supports_channels_last

    def __init__(self, model: Any, layer: str | None = None) -> None:
        self.adapter: ModelAdapter = adapt(model)
        self.model: nn.Module = self.adapter.module
        self.classes: Sequence[str] | None = self.adapter.classes
        self.layer: str | None = None
        if self.needs_layer:
            layer = layer if layer is not None else self.adapter.default_layer
            if layer is None:
                raise ValueError(
                    f"{self.name} needs a layer: pass layer='...' (vizwidgets.list_layers(model) "
                    "lists them)"
                )
            get_module(self.model, layer)
            self.layer = layer
        elif layer is not None:
            raise ValueError(f"{self.name} works on the input pixels and takes no layer; drop layer={layer!r}")
        bounds = self.adapter.bounds
        self.input_box: tuple[float, float] | None = bounds.box if bounds is not None else None

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
        with prepared(self.model), channels_last_inputs(self.model, self.fast_layout):
            result = self._attribute(x, target_indices, **checked)
        result = result.contiguous()  # gradients come back in the layout the passes used
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
        frame = sys._getframe(1)  # the method that asks
        level = 1
        while frame is not None and frame.f_globals.get("__name__", "").startswith("vizwidgets."):
            frame = frame.f_back  # type: ignore[assignment]
            level += 1
        return level + 1  # the warning is raised by a helper the asking method calls

    def _attribute(self, x: Tensor, target: Tensor | None, *args: Any, **options: Any) -> Tensor:
        """The method's maths on a checked batch ``x`` ``(N, C, H, W)`` and ``target`` ``(N,)``
        class indices (None: each image's predicted class), with every option of :attr:`options`
        checked and passed by keyword. ``*args, **options`` (``...`` to type checkers) let each
        method name its own options, without defaults; :meth:`attribute` passes no ``*args``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        layer = f", layer={self.layer!r}" if self.layer else ""
        return f"{type(self).__name__}({type(self.model).__name__}{layer})"
