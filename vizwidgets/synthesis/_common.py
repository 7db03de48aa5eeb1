"""What every optimisation loop of ``vizwidgets.synthesis`` shares.

- :class:`PixelModel`: the classifier seen from pixel space. Images are ``(N, 3, H, W)``
  tensors with values in [0, 1]; the model's normalisation ``(p - mean) / std`` happens inside,
  so optimisers work on pixels and clamping to [0, 1] keeps every image a valid image.
- :func:`to_pixels`: anything :func:`vizwidgets.data.load_image` accepts, or a pixel tensor,
  as a batch at the model's input size.
- :func:`run_loop`: ``steps`` calls of a step function with a progress bar, an optional
  callback, and a clean stop on ``KeyboardInterrupt`` (the Stop button of Jupyter): the loop
  returns what it has so far and the model is left as it was.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from vizwidgets.attribution.base import prepared

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
    "generator",
]


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
    """Wrap a :class:`~vizwidgets.models.LoadedModel` (or an ``nn.Module`` with its ``mean``
    and ``std``) so that it takes pixels in [0, 1]."""
    from vizwidgets.models import LoadedModel

    if isinstance(model, PixelModel):
        return model
    if isinstance(model, LoadedModel):
        module, classes, size, name = model.model, model.classes, tuple(model.preprocess.size), model.name
        mean = model.preprocess.mean if mean is None else mean
        std = model.preprocess.std if std is None else std
    elif isinstance(model, nn.Module):
        if mean is None or std is None:
            raise ValueError(
                "a bare nn.Module needs the normalisation it was trained with: pass mean=(...) "
                "and std=(...) in [0, 1] pixel units (ImageNet models: mean=(0.485, 0.456, 0.406), "
                "std=(0.229, 0.224, 0.225)), or use a model from vizwidgets.load_model"
            )
        module, classes, size, name = model, None, (224, 224), type(model).__name__.lower()
    else:
        raise TypeError(f"model must be a LoadedModel or torch.nn.Module, got {type(model).__name__}")
    parameter = next(module.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"mean and std must have 3 values (R, G, B), got {len(mean)} and {len(std)}")
    mean_t = torch.tensor([float(m) for m in mean], device=device).view(1, 3, 1, 1)
    std_t = torch.tensor([float(s) for s in std], device=device).view(1, 3, 1, 1)
    if not (std_t > 0).all():
        raise ValueError(f"std must be positive, got {tuple(std)}")
    return PixelModel(module, mean_t, std_t, classes, (int(size[0]), int(size[1])), name)


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
            raise ValueError(f"{what}: a tensor must be (3, H, W) or (N, 3, H, W) pixels, got shape {tuple(images.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"{what}: a tensor must hold float pixels in [0, 1], got {x.dtype}; divide bytes by 255")
        if not torch.isfinite(x).all():
            raise ValueError(f"{what}: the tensor contains NaN or infinite values")
        if x.numel() and (x.min() < 0 or x.max() > 1):
            raise ValueError(
                f"{what}: pixel values must lie in [0, 1], got {float(x.min()):.3g} to {float(x.max()):.3g}; "
                "a preprocessed tensor goes back to pixels with model.preprocess.inverse(x), or pass the "
                "image itself (a name, path or PIL image)"
            )
        return x.detach().to(model.device, torch.float32)
    from vizwidgets.data import load_image

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


def image_size(size: Any, default: tuple[int, int]) -> tuple[int, int]:
    """``(height, width)`` from None (``default``), an int (a square) or a pair."""
    if size is None:
        return default
    if isinstance(size, int) and not isinstance(size, bool):
        pair: tuple[int, int] = (size, size)
    elif isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(v, int) for v in size):
        pair = (int(size[0]), int(size[1]))
    else:
        raise ValueError(f"size must be an int or (height, width), got {size!r}")
    if min(pair) < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return pair


class ImageResult:
    """A result holding ``image``, ``(1, 3, H, W)`` pixels in [0, 1]."""

    image: Tensor

    def to_numpy(self) -> np.ndarray:
        """``(H, W, 3)`` float32 in [0, 1], for ``plt.imshow``."""
        return self.image[0].permute(1, 2, 0).detach().cpu().numpy()


def check_steps(steps: Any, name: str = "steps", minimum: int = 1) -> int:
    """A whole number of steps of at least ``minimum``, or a ValueError saying so."""
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise TypeError(f"{name} must be an int, got {type(steps).__name__}")
    if steps < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {steps}")
    return steps


def check_positive(value: Any, name: str, *, zero: bool = False) -> float:
    """A finite float > 0 (or >= 0 with ``zero=True``), or a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not (value >= 0 if zero else value > 0) or value == float("inf"):
        raise ValueError(f"{name} must be {'zero or more' if zero else 'positive'} and finite, got {value!r}")
    return value


def generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (None: a fresh random seed)."""
    gen = torch.Generator(device="cpu")
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen


@contextmanager
def _quiet_progress(total: int, desc: str, enabled: bool) -> Iterator[Any]:
    from tqdm.auto import tqdm

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
