"""Turning images into a model's input, and its input back into an image for display."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from vizwidgets.data import load_image

__all__ = ["Preprocess", "IMAGENET_MEAN", "IMAGENET_STD", "prepare_inputs"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class Preprocess:
    """Resize to ``size`` (no crop), scale pixels to [0, 1], then ``(p - mean) / std``.

    The whole image is kept, squeezed to ``size`` if its aspect ratio differs, so a pixel of the
    input maps to a known pixel of the photo: overlays and ground-truth boxes line up. Calling
    it on one image gives a ``(1, 3, H, W)`` float32 tensor; on a list, ``(N, 3, H, W)``.
    :meth:`inverse` undoes the normalisation for display.

    Attributes
    ----------
    size:
        ``(height, width)`` of the model input.
    mean, std:
        Per-channel values in [0, 1] pixel units. EfficientNet-Lite0 uses 127/255 and 128/255,
        which is ``(x - 127) / 128`` for ``x`` in 0..255.
    resample:
        PIL filter for the resize: "bicubic" (PIL's default), "bilinear", "lanczos", "nearest".
    """

    size: tuple[int, int] = (224, 224)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    resample: str = "bicubic"

    def __post_init__(self) -> None:
        if self.resample not in _RESAMPLE:
            raise ValueError(f"resample must be one of {sorted(_RESAMPLE)}, got {self.resample!r}")
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"size must be (height, width) with positive sides, got {self.size}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std}")

    def __call__(self, images: Any) -> Tensor:
        """Preprocess one image, or a list or tuple of images, into a float32 batch.

        Each image may be anything :func:`vizwidgets.data.load_image` accepts: a bundled
        name, a path, bytes, a PIL image or an array.
        """
        batch = images if isinstance(images, (list, tuple)) else [images]
        if not batch:
            raise ValueError("no images given: pass an image or a non-empty list of images")
        loaded = [load_image(image) for image in batch]  # all checked before any work
        arrays = [self._to_array(image) for image in loaded]
        pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return ((pixels / 255.0 - mean) / std).contiguous()

    def _to_array(self, image: Image.Image) -> np.ndarray:
        height, width = self.size
        if image.size != (width, height):
            image = image.resize((width, height), _RESAMPLE[self.resample])
        return np.asarray(image, dtype=np.float32)

    def inverse(self, x: Tensor) -> np.ndarray:
        """Undo the normalisation: ``(3, H, W)`` or ``(N, 3, H, W)`` -> ``(H, W, 3)`` or
        ``(N, H, W, 3)`` float32 in [0, 1], clipped, ready for ``plt.imshow``."""
        if not isinstance(x, Tensor):
            raise TypeError(f"inverse expects a torch.Tensor, got {type(x).__name__}")
        if x.dim() not in (3, 4) or x.shape[-3] != 3:
            raise ValueError(
                f"inverse expects a (3, H, W) or (N, 3, H, W) tensor, got shape {tuple(x.shape)}"
            )
        mean = torch.tensor(self.mean, device=x.device).view(3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(3, 1, 1)
        pixels = (x.detach().float() * std + mean).clamp(0.0, 1.0)
        return pixels.movedim(-3, -1).cpu().numpy()

    def describe(self) -> str:
        """One line for people: what this preprocessing does."""
        h, w = self.size
        return (
            f"resize to {h}x{w} ({self.resample}, no crop), pixels/255, "
            f"minus mean {tuple(round(m, 4) for m in self.mean)}, "
            f"divided by std {tuple(round(s, 4) for s in self.std)}"
        )



def prepare_inputs(preprocess: Preprocess, images: Any, device: torch.device | str) -> Tensor:
    """``images`` as a preprocessed ``(N, 3, H, W)`` batch on ``device``.

    A tensor must already be a preprocessed batch (``ValueError`` otherwise) and is only moved;
    anything else (one image or a list: names, paths, PIL images, arrays) goes through
    ``preprocess``.
    """
    if isinstance(images, Tensor):
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                "a tensor given as input must be a preprocessed batch (N, 3, H, W), got shape "
                f"{tuple(images.shape)}; pass raw images (names, paths, PIL, arrays) to "
                "preprocess them"
            )
        return images.to(device)
    return preprocess(images).to(device)
