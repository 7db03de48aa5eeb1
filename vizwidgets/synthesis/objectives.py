"""Objectives of activation maximisation: what an image should make the network do.

``a`` is a layer's output ``(N, C, h, w)`` for the image, ``S`` the logits ``(N, classes)``:

- :class:`Channel` ``(layer, c)``: ``mean_ij a[c, i, j]`` (Olah, Mordvintsev & Schubert 2017,
  "Feature Visualization", Distill);
- :class:`Neuron` ``(layer, c, (i, j))``: ``a[c, i, j]`` (default: the centre position; Erhan,
  Bengio, Courville & Vincent 2009, "Visualizing Higher-Layer Features of a Deep Network");
- :class:`ClassLogit` ``(c)``: ``S_c``, the logit, not the probability (Simonyan, Vedaldi &
  Zisserman 2014, "Deep Inside Convolutional Networks", ICLR workshop).

Each objective checks itself against the model before any work
(:meth:`Objective.check`) and gives one value per image (:meth:`Objective.value`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from vizwidgets.synthesis._common import PixelModel

__all__ = ["Objective", "Channel", "Neuron", "ClassLogit", "as_objective"]


class Objective:
    """What to maximise: :class:`Channel`, :class:`Neuron` or :class:`ClassLogit`.

    ``layer`` is the layer whose output the objective reads, or None for the logits.
    """

    @property
    def layer_name(self) -> str | None:
        return getattr(self, "layer", None)

    def check(self, model: PixelModel, output_shape: Sequence[int] | None, classes: int) -> None:
        """Raise ValueError if this objective does not fit the model."""

    def value(self, logits: Tensor, activation: Tensor | None) -> Tensor:
        """The objective per image, ``(N,)``."""
        raise NotImplementedError

    def describe(self, model: PixelModel) -> str:
        raise NotImplementedError


def _check_channel(layer: str, index: int, shape: Sequence[int] | None) -> None:
    if shape is None or len(shape) != 3:
        raise ValueError(
            f"layer {layer!r} does not output a (C, h, w) feature map (got {shape}); "
            "pick a convolutional layer (vizwidgets.list_layers(model))"
        )
    if not 0 <= index < shape[0]:
        raise ValueError(
            f"channel {index} is out of range: layer {layer!r} has {shape[0]} channels (0 to {shape[0] - 1})"
        )


def _check_index(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Channel(Objective):
    """The mean activation of channel ``index`` of ``layer`` over all positions."""

    layer: str
    index: int

    def __post_init__(self) -> None:
        _check_index(self.index, "channel index")

    def check(self, model: PixelModel, output_shape: Sequence[int] | None, classes: int) -> None:
        _check_channel(self.layer, self.index, output_shape)

    def value(self, logits: Tensor, activation: Tensor | None) -> Tensor:
        assert activation is not None
        return activation[:, self.index].mean(dim=(1, 2))

    def describe(self, model: PixelModel) -> str:
        return f"channel {self.index} of {self.layer}"


@dataclass(frozen=True)
class Neuron(Objective):
    """The activation of channel ``index`` of ``layer`` at one ``position = (row, column)``
    of its feature map; None: the centre."""

    layer: str
    index: int
    position: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        _check_index(self.index, "channel index")

    def _where(self, shape: Sequence[int]) -> tuple[int, int]:
        h, w = shape[-2], shape[-1]
        return self.position if self.position is not None else (h // 2, w // 2)

    def check(self, model: PixelModel, output_shape: Sequence[int] | None, classes: int) -> None:
        _check_channel(self.layer, self.index, output_shape)
        assert output_shape is not None
        row, column = self._where(output_shape)
        h, w = output_shape[1], output_shape[2]
        if not (0 <= row < h and 0 <= column < w):
            raise ValueError(f"position {(row, column)} is outside the {h}x{w} feature map of layer {self.layer!r}")

    def value(self, logits: Tensor, activation: Tensor | None) -> Tensor:
        assert activation is not None
        row, column = self._where(activation.shape)
        return activation[:, self.index, row, column]

    def describe(self, model: PixelModel) -> str:
        where = "the centre" if self.position is None else f"position {self.position}"
        return f"neuron {self.index} of {self.layer} at {where}"


@dataclass(frozen=True)
class ClassLogit(Objective):
    """The logit (score before softmax) of a class, given by index or name."""

    target: int | str

    def _index(self, model: PixelModel) -> int:
        return model.class_index(self.target)

    def check(self, model: PixelModel, output_shape: Sequence[int] | None, classes: int) -> None:
        index = self._index(model)
        if index >= classes:
            raise ValueError(f"class {index} is out of range: the model has {classes} classes (0 to {classes - 1})")
        object.__setattr__(self, "_resolved", index)

    def value(self, logits: Tensor, activation: Tensor | None) -> Tensor:
        return logits[:, self._resolved]  # type: ignore[attr-defined]

    def describe(self, model: PixelModel) -> str:
        index = self._index(model)
        name = model.classes[index] if model.classes is not None else str(index)
        return f"class {index} ({name})"


def as_objective(objective: Any) -> Objective:
    """``objective`` as an :class:`Objective`: a class index or name becomes a :class:`ClassLogit`."""
    if isinstance(objective, Objective):
        return objective
    if isinstance(objective, (int, str)) and not isinstance(objective, bool):
        return ClassLogit(objective)
    raise TypeError(
        "objective must be Channel(layer, c), Neuron(layer, c), ClassLogit(c), or a class index "
        f"or name, got {type(objective).__name__}"
    )
