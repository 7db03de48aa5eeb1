"""What every optimisation loop of ``vizwidgets.synthesis`` shares.

- :class:`PixelModel`: the classifier seen from pixel space. Images are ``(N, 3, H, W)``
  tensors with values in [0, 1]; the model's normalisation ``(p - mean) / std`` happens inside,
  so optimisers work on pixels and clamping to [0, 1] keeps every image a valid image.
- :func:`to_pixels`: anything :func:`vizwidgets.data.load_image` accepts, or a pixel tensor,
  as a batch at the model's input size.
- :func:`run_loop`: ``steps`` calls of a step function with a progress bar, an optional
  callback, and a clean stop on ``KeyboardInterrupt`` (the Stop button of Jupyter): the loop
  returns what it has so far and the model is left as it was.
- Limits, checked before any work with a message that names the argument and the bound:
  image sides from the model's downsampling factor (32 pixels for EfficientNet-Lite0, see
  :mod:`vizwidgets.attribution.limits`) to :data:`MAX_SIDE` (1024: one forward+backward pass
  of the default model at 1024 x 1024 takes about 1.7 GB), at most :data:`MAX_STEPS` steps,
  learning rates up to :data:`MAX_LR`, seeds from 0 to ``2**63 - 1``.
- :func:`finite_or_stop`: a loop whose loss or image stops being finite (an overflow) stops
  with a warning and keeps the last finite image instead of returning NaN.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from tqdm.auto import tqdm

from vizwidgets.attribution.base import INT_LIMIT, prepared
from vizwidgets.attribution.limits import model_profile
from vizwidgets.data import load_image
from vizwidgets.models.adapter import adapt

#: ``callback(step, numbers, image)``: after each step, the numbers shown on the progress bar and
#: the current image ``(N, 3, H, W)`` in [0, 1] (detached); return False to stop.
Callback = Callable[[int, dict[str, float], Any], Any]

__all__ = [
    "Callback",
    "PixelModel",
    "pixel_model",
    "to_pixels",
    "run_loop",
    "check_steps",
    "image_size",
    "ImageResult",
    "check_positive",
    "check_seed",
    "generator",
    "min_side",
    "finite_or_stop",
    "MAX_SIDE",
    "MAX_STEPS",
    "MAX_LR",
]

#: The largest image side (pixels) a synthesis loop makes or takes. One forward+backward pass
#: of EfficientNet-Lite0 costs about 1.7 KB per pixel (86 MB at 224 x 224), so 1024 x 1024
#: takes about 1.8 GB; 20000 x 20000 would take 700 GB.
MAX_SIDE: int = 1024

#: The most steps a loop may be asked for (each step is at least one forward+backward pass).
MAX_STEPS: int = 100_000

#: The largest learning rate accepted (pixels live in [0, 1]; Adam's steps are about ``lr``).
MAX_LR: float = 1e3


@dataclass
class PixelModel:
    """A classifier that takes pixels in [0, 1]: ``logits = module((pixels - mean) / std)``.

    Attributes
    ----------
    module:
        The ``nn.Module``; its parameters, mode and hooks are never changed for good.
    mean, std:
        ``(1, 3, 1, 1)`` tensors on the module's device, in [0, 1] pixel units.
    classes:
        Class names (a :class:`~vizwidgets.models.ClassNames`) or None.
    size:
        ``(height, width)`` of the model's input.
    name:
        The model's name, used to pick layer presets (style transfer).
    """

    module: nn.Module
    mean: Tensor
    std: Tensor
    classes: Any
    size: tuple[int, int]
    name: str

    @property
    def device(self) -> torch.device:
        parameter = next(self.module.parameters(), None)
        return parameter.device if parameter is not None else torch.device("cpu")

    def normalize(self, pixels: Tensor) -> Tensor:
        """``(pixels - mean) / std``: what the module takes."""
        return (pixels - self.mean) / self.std

    def __call__(self, pixels: Tensor) -> Tensor:
        return self.module(self.normalize(pixels))

    def class_index(self, target: int | str) -> int:
        """A class index from an index or a name (names need class names), range-checked."""
        if isinstance(target, bool) or not isinstance(target, (int, str)):
            raise TypeError(f"a class must be an index (int) or a name (str), got {type(target).__name__}")
        count = len(self.classes) if self.classes is not None else None
        if isinstance(target, str):
            if self.classes is None:
                raise ValueError(f"class {target!r} is a name, but this model has no class names; give the index")
            return int(self.classes.resolve(target))
        if target < 0 or (count is not None and target >= count):
            upper = f"0 to {count - 1}" if count is not None else "a non-negative index"
            raise ValueError(f"class {target} is out of range: use {upper}")
        return target


def pixel_model(model: Any, mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> PixelModel:
    """Wrap a model so that it takes pixels in [0, 1]: ``module((pixels - mean) / std)``.

    ``model``: a :class:`PixelModel` (returned as it is), or anything
    :func:`~vizwidgets.models.adapt` takes: a :class:`~vizwidgets.models.LoadedModel`, a
    :class:`~vizwidgets.models.ModelAdapter`, or a bare ``nn.Module``, which needs its
    ``mean`` and ``std`` (given here they replace the model's own). Images are made at the
    preprocessing's size, 224 x 224 without one.
    """
    if isinstance(model, PixelModel):
        return model
    adapter = adapt(model, mean=mean, std=std)
    if adapter.mean is None or adapter.std is None:
        raise ValueError(
            "a bare nn.Module needs the normalisation it was trained with: pass mean=(...) "
            "and std=(...) in [0, 1] pixel units (ImageNet models: mean=(0.485, 0.456, 0.406), "
            "std=(0.229, 0.224, 0.225)), or use a model from vizwidgets.load_model"
        )
    if len(adapter.mean) != 3:
        raise ValueError(f"mean and std must have 3 values (R, G, B), got {len(adapter.mean)}")
    device = adapter.device
    mean_t = torch.tensor(adapter.mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(adapter.std, device=device).view(1, 3, 1, 1)
    size = adapter.input_size or (224, 224)
    return PixelModel(
        adapter.module, mean_t, std_t, adapter.classes, (int(size[0]), int(size[1])), adapter.name.lower()
    )


def to_pixels(model: PixelModel, images: Any, what: str = "images") -> Tensor:
    """A ``(N, 3, H, W)`` float batch in [0, 1] on the model's device.

    ``images``: one image or a list of them, each anything
    :func:`vizwidgets.data.load_image` accepts (a bundled name, a path, a PIL image, an
    array), resized to the model's input size without cropping; or a pixel tensor
    ``(3, H, W)`` / ``(N, 3, H, W)`` with values in [0, 1], used as it is.
    """
    if isinstance(images, Tensor):
        x = images[None] if images.dim() == 3 else images
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(
                f"{what}: a tensor must be (3, H, W) or (N, 3, H, W) pixels, got shape {tuple(images.shape)}"
            )
        if not x.is_floating_point():
            raise ValueError(f"{what}: a tensor must hold float pixels in [0, 1], got {x.dtype}; divide bytes by 255")
        if x.device.type == "meta":
            raise ValueError(f"{what}: the tensor is on the meta device (shapes, no values); pass real pixels")
        if x.shape[0] == 0:
            raise ValueError(f"{what}: the tensor is an empty batch")
        smallest = min_side(model)
        if min(x.shape[-2:]) < smallest or max(x.shape[-2:]) > MAX_SIDE:
            raise ValueError(
                f"{what}: the tensor is {x.shape[-2]} x {x.shape[-1]} pixels; each side must be from "
                f"{smallest} (the model downsamples by {smallest}) to {MAX_SIDE}. Pass the image by "
                "name, path or PIL image to have it resized to the model's input size"
            )
        if not torch.isfinite(x).all():
            raise ValueError(f"{what}: the tensor contains NaN or infinite values")
        if x.numel() and (x.min() < 0 or x.max() > 1):
            raise ValueError(
                f"{what}: pixel values must lie in [0, 1], got {float(x.min()):.3g} to {float(x.max()):.3g}; "
                "a preprocessed tensor goes back to pixels with model.preprocess.inverse(x), or pass the "
                "image itself (a name, path or PIL image)"
            )
        return x.detach().to(model.device, torch.float32)
    batch = images if isinstance(images, (list, tuple)) else [images]
    if not batch:
        raise ValueError(f"{what}: no images given")
    height, width = model.size
    arrays = []
    for image in batch:
        picture = load_image(image)
        if picture.size != (width, height):
            picture = picture.resize((width, height), Image.Resampling.BICUBIC)
        arrays.append(torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0))
    return torch.stack(arrays).permute(0, 3, 1, 2).contiguous().to(model.device)


def min_side(model: PixelModel) -> int:
    """The smallest image side ``model`` can use: its downsampling factor (at least 1)."""
    return max(1, model_profile(model.module).stride)


def image_size(size: Any, default: tuple[int, int], *, minimum: int = 1, name: str = "size") -> tuple[int, int]:
    """``(height, width)`` from None (``default``), an int (a square) or a pair, each side from
    ``minimum`` to :data:`MAX_SIDE` pixels."""
    if size is None:
        return default
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        pair: tuple[int, int] = (int(size), int(size))
    elif (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in size)
    ):
        pair = (int(size[0]), int(size[1]))
    else:
        raise TypeError(f"{name} must be an int or (height, width) of ints, got {size!r}"[:200])
    if min(pair) < minimum or max(pair) > MAX_SIDE:
        raise ValueError(
            f"{name} must be from {minimum} to {MAX_SIDE} pixels a side, got {size!r}: the model "
            f"downsamples by {minimum}, so smaller images leave it nothing to see, and memory grows "
            f"with the pixel count (one step at {MAX_SIDE} x {MAX_SIDE} takes about 1.8 GB with the "
            "default model)"
        )
    return pair


class ImageResult:
    """A result holding ``image``, ``(1, 3, H, W)`` pixels in [0, 1]."""

    image: Tensor

    def to_numpy(self) -> np.ndarray:
        """``(H, W, 3)`` float32 in [0, 1], for ``plt.imshow``."""
        return self.image[0].permute(1, 2, 0).detach().cpu().numpy()


def check_steps(steps: Any, name: str = "steps", minimum: int = 1) -> int:
    """A whole number of steps from ``minimum`` to :data:`MAX_STEPS`, or an error saying so."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral):
        raise TypeError(f"{name} must be a whole number (int), got {type(steps).__name__} {steps!r}"[:200])
    count = int(steps)
    if count < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {steps}")
    if count > MAX_STEPS:
        raise ValueError(f"{name} must be at most {MAX_STEPS}, got {steps}")
    return count


def check_positive(value: Any, name: str, *, zero: bool = False, maximum: float | None = None) -> float:
    """A finite float > 0 (or >= 0 with ``zero=True``), at most ``maximum`` if given, or an
    error naming ``name`` and the allowed range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    allowed = f"{'zero or more' if zero else 'positive'}" + (f" and at most {maximum:g}" if maximum is not None else "")
    if not math.isfinite(value) or not (value >= 0 if zero else value > 0):
        raise ValueError(f"{name} must be {allowed} and finite, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be {allowed}, got {value:g}")
    return value


def check_seed(seed: Any) -> int | None:
    """None, or a whole number from 0 to ``2**63 - 1`` (what torch's generators take)."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be None or a whole number (int), got {type(seed).__name__} {seed!r}"[:200])
    if not 0 <= int(seed) <= INT_LIMIT:
        raise ValueError(f"seed must be from 0 to 2**63 - 1, got {int(seed)}")
    return int(seed)


def generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (None: a fresh random seed); see :func:`check_seed`."""
    seed = check_seed(seed)
    gen = torch.Generator(device="cpu")
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed)
    return gen


def finite_or_stop(values: dict[str, float], image: Tensor, previous: Tensor, desc: str, step: int) -> bool:
    """True if ``values`` and ``image`` are finite; otherwise put ``previous`` back into
    ``image`` (in place), warn (``RuntimeWarning``) and return False, so the loop can stop.

    An overflow (a huge weight or learning rate) would otherwise turn the image into NaN and
    every later step with it.
    """
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if not bad and bool(torch.isfinite(image).all()):
        return True
    with torch.no_grad():
        image.copy_(previous)
    what = f"the {', '.join(bad)} became non-finite" if bad else "the image became non-finite"
    warnings.warn(
        f"{desc}: {what} at step {step + 1} (an overflow: lower the loss weights or the learning "
        "rate); stopped there and returned the last finite image",
        RuntimeWarning,
        stacklevel=4,
    )
    return False


@contextmanager
def _quiet_progress(total: int, desc: str, enabled: bool) -> Iterator[Any]:
    bar = tqdm(total=total, desc=desc, disable=not enabled, leave=False)
    try:
        yield bar
    finally:
        bar.close()


def run_loop(
    module: nn.Module,
    steps: int,
    step: Callable[[int], dict[str, float] | None],
    *,
    desc: str,
    progress: bool = True,
    callback: Callback | None = None,
    current: Callable[[], Tensor] | None = None,
) -> tuple[int, bool]:
    """Call ``step(i)`` for ``i = 0 .. steps - 1``; return ``(steps done, interrupted)``.

    ``step`` returns the numbers to show (``{"loss": ...}``) or None to stop early (a goal
    reached). The model is in eval mode with frozen parameters throughout and is restored
    afterwards. ``callback(i, numbers, image)`` runs after each step with ``current()``, the
    image so far (a widget draws it); returning ``False`` from it stops the loop. ``KeyboardInterrupt`` (Jupyter's Stop
    button) ends the loop with a warning and the result so far instead of losing it.
    """
    done = 0
    interrupted = False
    with prepared(module), _quiet_progress(steps, desc, progress) as bar:
        try:
            for i in range(steps):
                numbers = step(i)
                done = i + 1
                bar.update(1)
                if numbers is None:
                    break
                if numbers:
                    bar.set_postfix({k: f"{v:.3g}" for k, v in numbers.items()}, refresh=False)
                if callback is not None and callback(i, numbers, current() if current else None) is False:
                    break
        except KeyboardInterrupt:
            interrupted = True
            warnings.warn(
                f"{desc}: interrupted after {done} of {steps} steps; returning the result so far",
                RuntimeWarning,
                stacklevel=3,
            )
    return done, interrupted
