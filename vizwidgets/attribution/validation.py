"""Checking what a method is given and what it returns: inputs, targets, results.

Validation happens before any work, with one message per mistake that names the argument and
what to pass (``TypeError`` for a wrong type, ``ValueError`` for a bad value):

- ``inputs`` (:func:`check_inputs`): a floating tensor ``(N, C, H, W)`` with the model's
  dtype, device and channel count, each side at least the model's downsampling factor
  (:mod:`~vizwidgets.attribution.limits`; 32 pixels for EfficientNet-Lite0), finite values;
  inputs far outside the preprocessing's range get a warning (:func:`warn_if_out_of_range`);
- ``target`` (:func:`normalize_target`): None, an index, a name, one per image (a list, a 1-D
  integer tensor or NumPy array of length N), each in range; :func:`select_scores` picks the
  target logits from the model's output.

After the work, :func:`check_result` warns (:class:`AttributionWarning`) when a map is all
zero or not finite.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vizwidgets.attribution.limits import model_profile

__all__ = [
    "AttributionWarning",
    "Target",
    "check_inputs",
    "check_result",
    "warn_if_out_of_range",
    "normalize_target",
    "select_scores",
]

#: A class for every image (None: the predicted one), one int/name for all, or one per image.
Target = int | str | Sequence[int | str] | Tensor | None

#: No model has more classes than this (a bound that keeps indices within int64).
_TARGET_LIMIT = 2**31 - 1

#: Without a known preprocessing, inputs beyond this magnitude get a warning.
_LOOSE_INPUT_LIMIT = 1e4


class AttributionWarning(RuntimeWarning):
    """A result that is computed but says nothing: an all-zero or non-finite map, or inputs far
    outside the range the model was trained on."""


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
            hint = (
                "a grey image: repeat it with inputs.expand(-1, 3, -1, -1), "
                "or load it with model.preprocess(...), which converts to RGB"
            )
        elif profile.in_channels == 3 and channels == 4:
            hint = (
                "drop the alpha channel with inputs[:, :3], "
                "or load the image with model.preprocess(...), which converts to RGB"
            )
        else:
            hint = f"give (N, {profile.in_channels}, H, W)"
        raise ValueError(
            f"inputs have {channels} channel{'s' if channels != 1 else ''} (shape {tuple(inputs.shape)}) "
            f"but the model's first convolution takes {profile.in_channels}; {hint}"
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
        raise ValueError(
            f"target class {int(target.max())} is out of range: "
            f"the model has {logits.shape[1]} classes (0 to {logits.shape[1] - 1})"
        )
    return logits.gather(1, target[:, None])[:, 0], target
