"""Sample images, a forgiving image loader, and scenes with ground-truth boxes.

Everything the course feeds to a model starts here::

    image = load_image("chelsea")            # a bundled sample, by name
    image = load_image("my_photo.jpg")       # a file, bytes, a PIL image, an array, a tensor
    scene = make_scene(["chelsea", "coffee"])
    scene.image, scene.boxes                 # one RGB image, and where each part lies in it

:func:`load_image` always returns a new, fully loaded ``PIL.Image.Image`` in mode ``"RGB"``
with its EXIF orientation applied. It reads JPEG, PNG, BMP, GIF, TIFF and WebP files
(:data:`IMAGE_FORMATS`, recognised from the header, never decoded by another reader), converts
every image mode PIL reads (transparency is composited over white, 16-bit images are scaled to
8 bits) and refuses everything else with an error that names the file, the problem and the fix.

This module imports neither PyTorch nor a model: a tensor is recognised by its type's module
name and turned into a NumPy array with ``.detach().cpu().numpy()``.

The bundled images are downscaled copies (at most 512 pixels on the long side) made by
``tools/bundle_images.py``; their sources and licences are in ``images/CREDITS.md`` next to
this file.

The package is split by what each part does: :mod:`~vizwidgets.data.catalogue` (the bundled
images), :mod:`~vizwidgets.data.loading` (:func:`load_image`) and
:mod:`~vizwidgets.data.scenes` (:func:`make_scene`); every public name is importable from
``vizwidgets.data``. Scenes were called composites until LRP's rule composites took the word:
``make_composite`` and ``Composite`` still work, with a ``DeprecationWarning``.
"""

from __future__ import annotations

import warnings
from typing import Any

from vizwidgets.data.catalogue import SampleImage, sample_image_path, sample_images
from vizwidgets.data.loading import (
    IMAGE_FORMATS,
    IMAGE_SUFFIXES,
    MAX_PIXELS,
    ImageSource,
    ImageTooLargeError,
    load_image,
)
from vizwidgets.data.radiographs import MARKER_POLICIES, Radiographs, make_radiographs
from vizwidgets.data.scenes import _COMPOSITE_RENAMED, Box, Scene, make_scene
from vizwidgets.data.scenes import make_composite as make_composite  # deprecated

__all__ = [
    "IMAGE_FORMATS",
    "IMAGE_SUFFIXES",
    "MAX_PIXELS",
    "MARKER_POLICIES",
    "Radiographs",
    "make_radiographs",
    "Box",
    "ImageSource",
    "ImageTooLargeError",
    "SampleImage",
    "Scene",
    "load_image",
    "make_scene",
    "sample_image_path",
    "sample_images",
]


def __getattr__(name: str) -> Any:
    """Deprecated names kept working: ``Composite`` is :class:`Scene` (with a warning)."""
    if name == "Composite":
        warnings.warn(_COMPOSITE_RENAMED, DeprecationWarning, stacklevel=2)
        return Scene
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
