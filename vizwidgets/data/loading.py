"""Loading images: :func:`load_image` turns almost anything into a new RGB PIL image.

This module finds the image (a bundled name, a path, bytes, a file object, an image, an array
or a tensor), recognises the file's format from its header, decodes it with a size guard, and
words every error about paths, formats and corrupt files. Converting what was decoded (any PIL
mode, array dtype or tensor) to RGB is :mod:`vizwidgets.data._convert`'s part.

It imports neither PyTorch nor a model: a tensor is recognised by its type's module name and
turned into a NumPy array with ``.detach().cpu().numpy()``.
"""

from __future__ import annotations

import errno
import io
import os
import re
import warnings
from pathlib import Path
from typing import IO, TYPE_CHECKING, Union, cast

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vizwidgets.data._convert import _from_array, _is_torch_tensor, _tensor_to_numpy, _to_rgb
from vizwidgets.data.catalogue import _bundled_names, _lookup_sample

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    import torch

__all__ = [
    "IMAGE_FORMATS",
    "IMAGE_SUFFIXES",
    "MAX_PIXELS",
    "ImageSource",
    "ImageTooLargeError",
    "load_image",
]

IMAGE_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "BMP", "GIF", "TIFF", "WEBP")
"""The file formats :func:`load_image` reads, as PIL names them (``Image.open(...).format``).

JPEG, PNG, BMP, GIF, TIFF and WebP: what cameras, phones, browsers and screenshots produce.
A file's format is read from its header, never from its name, and only these formats' readers
are given the file: anything else PIL knows (DDS, EPS, PSD, ICO, ...) is refused before it is
decoded (EPS, for one, would run Ghostscript), with a message that says how to convert it.
JPEG files with extra pictures that PIL calls "MPO" (some cameras write them) are JPEG here.
"""

IMAGE_SUFFIXES: tuple[str, ...] = (
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"
)
"""File name suffixes of :data:`IMAGE_FORMATS` (lower case); what the batch command looks for."""

# What PIL may call a file of IMAGE_FORMATS once opened: a JPEG with an MP extension is "MPO".
_READABLE_FORMATS = frozenset(IMAGE_FORMATS) | {"MPO"}
_FORMATS_IN_WORDS = "JPEG, PNG, BMP, GIF, TIFF and WebP"

MAX_PIXELS: int = 50_000_000
"""The largest image, in pixels (width times height), that :func:`load_image` decodes.

This is a guard against decompression bombs: small files that claim a huge size and would
fill the memory when decoded. The size is read from the file's header and checked *before*
any pixel is decoded. 50 million pixels is about a 8000 x 6000 photo, far more than a network
that looks at 224 x 224 needs. Pass ``max_pixels=`` to :func:`load_image` to change it for one
call. It applies to encoded images (names, paths, bytes, files); arrays, tensors and PIL
images are already decoded and are not checked.
"""


ImageSource = Union[
    str,
    "os.PathLike[str]",
    bytes,
    bytearray,
    memoryview,
    IO[bytes],
    Image.Image,
    np.ndarray,
    "torch.Tensor",
]
"""Anything :func:`load_image` accepts (see there)."""

_ACCEPTED_TYPES = (
    "a bundled image name (str, see sample_images()), a path (str or os.PathLike), "
    "bytes/bytearray/memoryview of an encoded image file, a binary file object, "
    "a PIL.Image.Image, a numpy array or a torch tensor"
)


class ImageTooLargeError(ValueError):
    """An image has more pixels than the limit allowed (see :data:`MAX_PIXELS`).

    Raised from the image's header, before its pixels are decoded. It is a ``ValueError``, so
    ``except ValueError`` catches it too.
    """


def load_image(source: ImageSource, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Load an image from almost anything, as a new RGB ``PIL.Image.Image``.

    Parameters
    ----------
    source : str, os.PathLike, bytes, bytearray, memoryview, file object, PIL.Image.Image,
             numpy.ndarray or torch.Tensor
        Where the image comes from:

        - a bundled image's name, with or without an extension (``"chelsea"``,
          ``"chelsea.png"``); see :func:`sample_images`. A str that names an existing file
          loads that file instead;
        - a path to an image file (str or ``os.PathLike``) in one of :data:`IMAGE_FORMATS`
          (JPEG, PNG, BMP, GIF, TIFF, WebP), recognised from the file's header;
        - the bytes of an encoded image file, or a binary file object (``open(p, "rb")``,
          ``io.BytesIO``); the file object is read but not closed;
        - a ``PIL.Image.Image`` (it is copied, never changed);
        - an array or tensor of shape ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)`` with ``C`` in
          1, 3 or 4 (``(C, H, W)`` is used only when the last dimension is not 1, 3 or 4).
          dtype ``uint8`` (0 to 255), other integer dtypes with values from 0 to 255,
          ``uint16`` (0 to 65535, scaled to 0 to 255), ``bool`` (black and white) or floating
          point with values in [0, 1]. Four channels are RGBA. A tensor is moved to the CPU
          and detached; it is not changed.
    max_pixels : int, optional
        The largest encoded image (width times height) to decode, checked from the file's
        header before decoding; default :data:`MAX_PIXELS`. PIL's own limit,
        ``PIL.Image.MAX_IMAGE_PIXELS``, still stops images over twice its value.

    Returns
    -------
    PIL.Image.Image
        A new, fully loaded image in mode ``"RGB"``, its EXIF orientation applied. Image modes
        are converted: grayscale and 1-bit are repeated over three channels, palettes are
        expanded, CMYK and YCbCr are converted, transparency (alpha channel, transparent
        palette entry or colour) is composited over white, 16-bit integer images (``"I;16"``,
        ``"I;16B"``, ``"I"``, taken as 0 to 65535) are scaled to 8 bits with rounding, and
        float ``"F"`` images are read in PIL's convention (0 to 255, outside values clipped).

    Raises
    ------
    TypeError
        If ``source`` is none of the accepted types, or a file object is in text mode.
    FileNotFoundError
        If a path does not exist, or is a symbolic link to nothing (the message lists the
        bundled names).
    IsADirectoryError
        If a path is a folder.
    PermissionError
        If a file cannot be read for lack of permission.
    OSError
        If a path cannot be followed (a loop of symbolic links, ``errno.ELOOP``) or read.
    ValueError
        If the data is not an image in one of :data:`IMAGE_FORMATS` (the message names the
        format found in the header, such as DDS or EPS, and how to convert it), the file is
        truncated or corrupt, or an array has an unusable shape, dtype range or is empty.
    ImageTooLargeError
        If the image has more than ``max_pixels`` pixels (a ``ValueError``).

    Examples
    --------
    >>> load_image("chelsea").size
    (451, 300)
    >>> import numpy as np
    >>> load_image(np.zeros((2, 3), dtype=np.uint8)).getpixel((0, 0))
    (0, 0, 0)
    """
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int):
        raise TypeError(f"max_pixels must be an int, got {type(max_pixels).__name__}")
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be at least 1, got {max_pixels}")

    if isinstance(source, Image.Image):
        return _from_pil(source)
    if isinstance(source, str):
        return _from_str(source, max_pixels)
    if isinstance(source, os.PathLike):
        return _from_path(Path(os.fspath(source)), max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return _decode(io.BytesIO(data), f"the data given ({len(data)} bytes)", max_pixels)
    if isinstance(source, np.ndarray):
        return _from_array(source)
    if _is_torch_tensor(source):
        return _from_array(_tensor_to_numpy(source))
    if isinstance(source, io.TextIOBase):
        raise TypeError(
            "source is a file opened in text mode; open image files in binary mode: "
            "open(path, 'rb')"
        )
    if callable(getattr(source, "read", None)):
        name = getattr(source, "name", None)
        what = f"the file {name!r}" if isinstance(name, str) else "the file object given"
        # a file object: tensors were handled above, by a check that type checkers cannot follow
        return _decode(cast("IO[bytes]", source), what, max_pixels)
    raise TypeError(f"source must be {_ACCEPTED_TYPES}; got {type(source).__name__}")


def _from_str(text: str, max_pixels: int) -> Image.Image:
    """A str is an existing file first, then a bundled name, else a missing path."""
    path = Path(text).expanduser()
    if path.is_file():
        return _from_path(path, max_pixels)
    sample = _lookup_sample(text)
    if sample is not None:
        return _from_path(sample.path, max_pixels)
    return _from_path(path, max_pixels)


def _from_path(path: Path, max_pixels: int) -> Image.Image:
    try:
        is_dir = path.is_dir()
        size = path.stat().st_size  # follows links: a loop, a dangling link or a missing file raise here
    except OSError as error:
        raise _path_error(path, error) from None
    if is_dir:
        raise IsADirectoryError(
            f"{str(path)!r} is a folder, not an image file; pass the path of one image in it"
        )
    if size == 0:
        raise ValueError(
            f"the file {str(path)!r} is empty (0 bytes): a copy or download that did not finish? "
            "copy or export the image again"
        )
    try:
        file = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as error:
        raise _path_error(path, error) from None
    with file:
        return _decode(file, f"the file {str(path)!r}", max_pixels)


def _path_error(path: Path, error: OSError) -> OSError:
    """Our one- or two-line message for a path that cannot be opened, by the error's errno."""
    name = str(path)
    if error.errno in (errno.ENOENT, errno.ENOTDIR):
        if path.is_symlink():
            return FileNotFoundError(
                f"{name!r} is a symbolic link to {os.readlink(path)!r}, which does not exist; "
                "fix or remove the link, or pass the image's own path"
            )
        where = "" if path.is_absolute() else f" (relative to {os.getcwd()!r})"
        return FileNotFoundError(
            f"no such image file: {name!r}{where}; check the path, or pass one of the "
            f"bundled image names: {_bundled_names()}"
        )
    if error.errno == errno.ELOOP:
        loop = OSError(
            f"cannot read {name!r}: it is a loop of symbolic links (each points, in the end, "
            "back to itself); fix the links, or pass the image's own path"
        )
        loop.errno = errno.ELOOP
        return loop
    if error.errno in (errno.EACCES, errno.EPERM):
        return PermissionError(
            f"cannot read {name!r}: permission denied; check its permissions (ls -l), or copy "
            "the image to a file you can read"
        )
    reason = error.strerror or type(error).__name__
    failure = OSError(f"cannot read {name!r}: {reason}; check the path and the file")
    failure.errno = error.errno
    return failure



def _readable_formats() -> list[str]:
    """The formats of :data:`_READABLE_FORMATS` that this PIL has a reader for."""
    Image.init()
    return [name for name in Image.ID if name in _READABLE_FORMATS]


def _format_from_header(file: IO[bytes]) -> str | None:
    """The PIL format whose header check accepts the file's first bytes, or None.

    Only the plugins' ``accept`` functions run (a look at 16 bytes, as ``Image.open`` does
    first); no plugin is asked to open the file.
    """
    try:
        file.seek(0)
        prefix = file.read(16)
    except (OSError, ValueError):
        return None
    Image.init()
    for name in Image.ID:
        accept = Image.OPEN[name][1]
        try:
            if accept is not None and accept(prefix):
                return name
        except Exception:  # noqa: BLE001 - a plugin's header check must not decide our error
            continue
    return None


def _convert_hint(format_name: str | None = None) -> str:
    """How to get a readable file: the last words of every format error."""
    source = f"image.{format_name.lower()}" if format_name else "input"
    return (
        "convert it to PNG or JPEG first, e.g. with an image editor or with ImageMagick: "
        f"magick {source} image.png"
    )


def _unsupported_error(what: str, found: str | None) -> ValueError:
    if found is None:
        return ValueError(
            f"{what} could not be read as an image: it is none of the formats vizwidgets "
            f"reads ({_FORMATS_IN_WORDS}); check the file, or {_convert_hint()}"
        )
    return ValueError(
        f"{what} is an image in {found} format (read from its header), which vizwidgets "
        f"does not read; it reads {_FORMATS_IN_WORDS}: {_convert_hint(found)}"
    )


def _pixels_from_bomb_message(message: str) -> int | None:
    """The pixel count in PIL's DecompressionBombError/Warning message, if it can be found."""
    found = re.search(r"\((\d+) pixels\)", message)
    return int(found.group(1)) if found else None


def _format_pixels(pixels: int | None) -> str:
    return f"{pixels:,} pixels" if pixels is not None else "too many pixels"


def _decode(file: IO[bytes], what: str, max_pixels: int) -> Image.Image:
    """Open, check the size from the header, decode, orient and convert one encoded image."""
    pil_limit = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        # PIL warns above its own limit. When ours is lower, any such image is too large for
        # us too, so the warning becomes our error; when the caller raised ours above PIL's,
        # the caller's limit decides and PIL's warning is noise.
        if pil_limit is None or max_pixels <= pil_limit:
            warnings.simplefilter("error", Image.DecompressionBombWarning)
        else:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        if not _seekable(file):  # read once, so that the header can be looked at again
            file = io.BytesIO(file.read())
        try:
            # Only the readers of our formats see the file: others never parse or decode it.
            image = Image.open(file, formats=_readable_formats())
        except UnidentifiedImageError:
            raise _unsupported_error(what, _format_from_header(file)) from None
        except NotImplementedError as error:
            raise _variant_error(what, error) from None
        except Image.DecompressionBombWarning as warning:
            # only turned into an error when max_pixels <= PIL's limit: the image is over both
            pixels = _pixels_from_bomb_message(str(warning))
            raise ImageTooLargeError(
                f"{what} is an image of {_format_pixels(pixels)}, over the limit of "
                f"{max_pixels:,} pixels (a guard against decompression bombs); downscale it "
                "first, or, if you trust the file, pass max_pixels="
                f"{pixels if pixels is not None else 'a larger value'}"
                f"{' or more' if pixels is not None else ''}"
            ) from None
        except Image.DecompressionBombError as error:
            raise ImageTooLargeError(
                f"{what} is an image of {_format_pixels(_pixels_from_bomb_message(str(error)))}"
                f", over PIL's own limit of twice PIL.Image.MAX_IMAGE_PIXELS = {pil_limit} "
                f"(this call's limit is {max_pixels:,} pixels); downscale it first, or, if "
                "you trust the file, raise PIL.Image.MAX_IMAGE_PIXELS and pass a larger "
                "max_pixels="
            ) from None
        except (OSError, SyntaxError, EOFError) as error:
            raise _corrupt_error(what, error) from None

        # Leaving the block closes the file only where PIL opened it itself; a file object
        # the caller passed stays open.
        with image:
            if image.format not in _READABLE_FORMATS:  # a reader that answered for another
                raise _unsupported_error(what, image.format or None)
            width, height = image.size
            if width * height > max_pixels:
                raise ImageTooLargeError(
                    f"{what} is an image of {width} x {height} = {width * height:,} pixels, "
                    f"over the limit of {max_pixels:,} pixels (a guard against "
                    "decompression bombs); downscale it first, or, if you trust the file, "
                    f"pass max_pixels={width * height} or more"
                )
            if width == 0 or height == 0:
                raise ValueError(f"{what} is an empty image ({width} x {height} pixels)")
            try:
                image.load()
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
                raise ImageTooLargeError(
                    f"{what} holds a frame of "
                    f"{_format_pixels(_pixels_from_bomb_message(str(error)))}, over "
                    f"PIL's limit of PIL.Image.MAX_IMAGE_PIXELS = {pil_limit}; downscale it "
                    "first"
                ) from None
            except (OSError, SyntaxError, EOFError, ValueError) as error:
                raise _corrupt_error(what, error) from None
            except NotImplementedError as error:
                raise _variant_error(what, error, image.format) from None
            # exif_transpose returns a new image, independent of the file.
            return _to_rgb(ImageOps.exif_transpose(image))


def _seekable(file: IO[bytes]) -> bool:
    try:
        return bool(file.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _variant_error(what: str, error: BaseException, format_name: str | None = None) -> ValueError:
    """A file of one of our formats that uses a feature PIL does not implement."""
    return ValueError(
        f"{what} uses a variant of its format that cannot be read here ({error}); "
        f"{_convert_hint(format_name)}"
    )


def _corrupt_error(what: str, error: BaseException) -> ValueError:
    return ValueError(
        f"{what} is truncated or corrupt ({type(error).__name__}: {error}); re-download or "
        "re-export the image"
    )


def _from_pil(image: Image.Image) -> Image.Image:
    width, height = image.size
    if width == 0 or height == 0:
        raise ValueError(f"source is an empty image ({width} x {height} pixels)")
    try:
        # exif_transpose returns a new image (a copy when there is nothing to turn), so the
        # caller's image is never changed; it loads the pixels of a lazily opened image.
        oriented = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, EOFError) as error:
        raise _corrupt_error("the PIL image given", error) from None
    converted = _to_rgb(oriented)
    return converted if converted is not image else image.copy()
