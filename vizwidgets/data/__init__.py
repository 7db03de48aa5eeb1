"""Sample images, a forgiving image loader, and composite scenes with ground-truth boxes.

Everything the course feeds to a model starts here::

    image = load_image("chelsea")            # a bundled sample, by name
    image = load_image("my_photo.jpg")       # a file, bytes, a PIL image, an array, a tensor
    scene = make_composite(["chelsea", "coffee"])
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
:mod:`~vizwidgets.data.scenes` (:func:`make_composite`); every public name is importable from
``vizwidgets.data``.
"""

from __future__ import annotations

from vizwidgets.data.catalogue import SampleImage, sample_image_path, sample_images
from vizwidgets.data.loading import (
    IMAGE_FORMATS,
    IMAGE_SUFFIXES,
    MAX_PIXELS,
    ImageSource,
    ImageTooLargeError,
    load_image,
)
from vizwidgets.data.scenes import Box, Composite, make_composite

__all__ = [
    "IMAGE_FORMATS",
    "IMAGE_SUFFIXES",
    "MAX_PIXELS",
    "Box",
    "Composite",
    "ImageSource",
    "ImageTooLargeError",
    "SampleImage",
    "load_image",
    "make_composite",
    "sample_image_path",
    "sample_images",
]
