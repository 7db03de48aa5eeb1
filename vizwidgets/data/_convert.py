"""From decoded pixels to one RGB image: PIL modes, arrays and tensors to uint8 RGB.

The second half of :func:`~vizwidgets.data.load_image`: :mod:`~vizwidgets.data.loading` finds
and decodes the image (and words the errors about files and formats); this module converts
what was decoded, whatever its mode or dtype, to a new ``PIL.Image.Image`` in mode ``"RGB"``.
Transparency is composited over white, 16-bit values are scaled to 8 bits with rounding, and
values that do not fit their dtype's convention are refused with a message that says the fix.

No PyTorch import: a tensor is recognised by its type's module name.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

__all__: list[str] = []  # private to vizwidgets.data


def _is_torch_tensor(obj: object) -> bool:
    """Whether ``obj`` is a PyTorch tensor, told without importing torch."""
    module = type(obj).__module__ or ""
    return module.split(".")[0] == "torch" and callable(getattr(obj, "detach", None))


def _tensor_to_numpy(tensor: Any) -> np.ndarray:
    """A tensor's values as a NumPy array on the CPU (bfloat16 becomes float32)."""
    tensor = tensor.detach()
    if str(tensor.dtype) == "torch.bfloat16":  # NumPy has no bfloat16
        tensor = tensor.float()
    array: np.ndarray = tensor.cpu().numpy()
    return array


# Modes with an alpha channel ("a": premultiplied alpha); other modes may carry a transparent
# colour or palette entry in image.info["transparency"].
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB, compositing transparency over white."""
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image  # callers make sure the caller's image is never returned
    if mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image).astype(np.float64)
        gray = np.rint(np.clip(values, 0, 65535) / 257.0).astype(np.uint8)
        return Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0)
        gray = np.rint(np.clip(values, 0, 255)).astype(np.uint8)
        return Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode in _ALPHA_MODES or "transparency" in image.info:
        if mode == "La":  # PIL converts premultiplied La only to LA
            image = image.convert("LA")
        rgba = np.asarray(image.convert("RGBA"))
        return Image.fromarray(_over_white(rgba[:, :, :3], rgba[:, :, 3]))
    try:  # 1, L, P, RGBX, CMYK, YCbCr, LAB, HSV, ...
        return image.convert("RGB")
    except (ValueError, OSError) as error:
        raise ValueError(
            f"images of PIL mode {mode!r} cannot be converted to RGB ({error}); convert it "
            "to 'RGB' or save it as PNG first"
        ) from None


def _over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite uint8 colours with uint8 alpha over white: c * a + 255 * (1 - a), rounded."""
    a = alpha.astype(np.float64)[:, :, None] / 255.0
    out = rgb.astype(np.float64) * a + 255.0 * (1.0 - a)
    return np.rint(out).astype(np.uint8)


def _from_array(array: np.ndarray) -> Image.Image:
    """An RGB image from an array of shape (H, W), (H, W, C) or (C, H, W), C in 1, 3, 4."""
    shape = tuple(array.shape)
    if array.size == 0:
        raise ValueError(f"source is an empty array (shape {shape}); it holds no pixels")
    if array.ndim == 2:
        hwc = array[:, :, None]
    elif array.ndim == 3:
        if shape[-1] in (1, 3, 4):
            hwc = array
        elif shape[0] in (1, 3, 4):
            hwc = np.moveaxis(array, 0, -1)
        else:
            raise ValueError(
                f"cannot read an image array of shape {shape}: expected (H, W), (H, W, C) or "
                "(C, H, W) with C = 1 (gray), 3 (RGB) or 4 (RGBA)"
            )
    else:
        hint = "; it looks like a batch: pass one image, such as x[0]" if array.ndim == 4 else ""
        raise ValueError(
            f"cannot read an image array of shape {shape} ({array.ndim} dimensions): expected "
            f"(H, W), (H, W, C) or (C, H, W) with C = 1, 3 or 4{hint}"
        )
    channels = _to_uint8(hwc)
    count = channels.shape[2]
    if count == 1:
        rgb = np.repeat(channels, 3, axis=2)
    elif count == 3:
        rgb = channels
    else:
        rgb = _over_white(channels[:, :, :3], channels[:, :, 3])
    # A fresh contiguous copy, so the image never shares memory with the caller's array.
    return Image.fromarray(np.array(rgb, dtype=np.uint8, order="C", copy=True))


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale an array's values to uint8 by its dtype's convention (see load_image)."""
    dtype = array.dtype
    if dtype == np.uint8:
        return array
    if dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if dtype == np.uint16:
        return np.rint(array / 257.0).astype(np.uint8)
    if np.issubdtype(dtype, np.integer):
        smallest, largest = int(array.min()), int(array.max())
        if smallest < 0 or largest > 255:
            raise ValueError(
                f"integer image values must lie in 0..255, but these ({dtype}) run from "
                f"{smallest} to {largest}; for 16-bit images use dtype uint16 (0..65535), or "
                "scale the values to 0..255"
            )
        return array.astype(np.uint8)
    if np.issubdtype(dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError(
                "float image values must lie in [0, 1], but the array holds NaN or infinity"
            )
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            fix = (
                "these look like 0..255 values: divide by 255 (x / 255), or pass a uint8 array"
                if low >= 0.0 and high <= 255.0
                else "undo the model's normalisation first (x * std + mean), or rescale to "
                "[0, 1]; values from 0 to 255: divide by 255"
            )
            raise ValueError(
                f"float image values must lie in [0, 1], but these run from {low:g} to "
                f"{high:g}; {fix}"
            )
        return np.rint(array.astype(np.float64) * 255.0).astype(np.uint8)
    raise TypeError(
        f"image arrays must have dtype uint8, uint16, another integer type, bool or float; "
        f"got {dtype}"
    )
