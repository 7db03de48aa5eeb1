"""The bundled sample images: their catalogue, names and paths.

The images are downscaled copies (at most 512 pixels on the long side) made by
``tools/bundle_images.py``; their sources and licences are in ``images/CREDITS.md`` next to
this file. Each entry records what the default model (EfficientNet-Lite0) should answer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SampleImage", "sample_image_path", "sample_images"]

_IMAGES_DIR = Path(__file__).resolve().parent / "images"

# Suffixes under which a bundled name is recognised: "chelsea", "chelsea.png", "chelsea.jpg".
_NAME_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class SampleImage:
    """One bundled sample image and what the default model should say about it.

    Attributes
    ----------
    name : str
        Short name to pass to :func:`load_image`, e.g. ``"chelsea"``.
    filename : str
        File name inside ``vizwidgets/data/images/``, e.g. ``"chelsea.jpg"``.
    description : str
        What the image shows.
    source : str
        The original file and the package it comes from.
    licence : str
        The licence as the source states it.
    expected_class : int or None
        Top-1 ImageNet class index of the default model (EfficientNet-Lite0, whole image
        resized to 224 x 224), or ``None`` where the model has no confident answer.
    expected_label : str or None
        The ImageNet label of ``expected_class``.
    """

    name: str
    filename: str
    description: str
    source: str
    licence: str
    expected_class: int | None
    expected_label: str | None

    @property
    def path(self) -> Path:
        """Path of the bundled file."""
        return _IMAGES_DIR / self.filename


_SKIMAGE = "scikit-image 0.26 skimage/data"
_OPENCV = "Debian package opencv-doc 4.6.0 examples/data"
_OPENCV_LICENCE = "OpenCV sample data (Apache-2.0 / BSD per the package's copyright file)"

# One image per entry: (name, filename, description, source, licence, class, label).
# fmt: off
_CATALOGUE: tuple[SampleImage, ...] = (
    SampleImage("apple", "apple.jpg", "a green apple",
                f"apple.jpg, {_OPENCV}", _OPENCV_LICENCE, 948, "Granny Smith"),
    SampleImage("astronaut", "astronaut.jpg", "astronaut Eileen Collins",
                f"astronaut.png, {_SKIMAGE}", "NASA, public domain", None, None),
    SampleImage("baboon", "baboon.jpg", "mandrill face",
                f"baboon.jpg, {_OPENCV}", _OPENCV_LICENCE, 372, "baboon"),
    SampleImage("butterfly", "butterfly.jpg", "butterfly on a leaf",
                f"butterfly.jpg, {_OPENCV}", _OPENCV_LICENCE, 323, "monarch"),
    SampleImage("chelsea", "chelsea.jpg", "Chelsea the cat",
                f"chelsea.png, {_SKIMAGE}", "CC0, photographer Stefan van der Walt",
                285, "Egyptian cat"),
    SampleImage("chicky_512", "chicky_512.jpg", "a Pekinese dog",
                f"chicky_512.png, {_OPENCV}", _OPENCV_LICENCE, 154, "Pekinese"),
    SampleImage("coffee", "coffee.jpg", "espresso cup",
                f"coffee.png, {_SKIMAGE}", "CC0, photographer Rachel Michetti", 967, "espresso"),
    SampleImage("grace_hopper", "grace_hopper.jpg", "Grace Hopper in uniform",
                "grace_hopper.jpg, matplotlib 3.11 mpl-data/sample_data",
                "US Navy photograph, public domain", 652, "military uniform"),
    SampleImage("orange", "orange.jpg", "an orange",
                f"orange.jpg, {_OPENCV}", _OPENCV_LICENCE, 950, "orange"),
    SampleImage("rocket", "rocket.jpg", "Falcon 9 launch (DSCOVR)",
                f"rocket.jpg, {_SKIMAGE}", "SpaceX, released into the public domain",
                540, "drilling platform"),
    SampleImage("squirrel_cls", "squirrel_cls.jpg", "fox squirrel",
                f"squirrel_cls.jpg, {_OPENCV}", _OPENCV_LICENCE, 335, "fox squirrel"),
    SampleImage("starry_night", "starry_night.jpg", "Van Gogh, The Starry Night (1889)",
                f"starry_night.jpg, {_OPENCV}", "the painting is in the public domain",
                None, None),
)
# fmt: on
_BY_NAME: dict[str, SampleImage] = {sample.name: sample for sample in _CATALOGUE}


def sample_images() -> list[SampleImage]:
    """List the bundled sample images, sorted by name.

    Returns
    -------
    list of SampleImage
        One entry per bundled image, with its description, source, licence and the default
        model's expected top-1 class.

    Examples
    --------
    >>> [s.name for s in sample_images()][:3]
    ['apple', 'astronaut', 'baboon']
    """
    return sorted(_CATALOGUE, key=lambda sample: sample.name)


def _bundled_names() -> str:
    return ", ".join(sample.name for sample in sample_images())


def _lookup_sample(name: str) -> SampleImage | None:
    """The bundled image called ``name`` (with or without a .jpg/.jpeg/.png suffix), or None."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    stem, suffix = os.path.splitext(name)
    if suffix.lower() in _NAME_SUFFIXES:
        return _BY_NAME.get(stem)
    return None


def sample_image_path(name: str) -> Path:
    """Path of a bundled sample image.

    Parameters
    ----------
    name : str
        The image's name, with or without an extension: ``"chelsea"``, ``"chelsea.png"`` and
        ``"chelsea.jpg"`` all name the same bundled file.

    Returns
    -------
    pathlib.Path
        The bundled JPEG file.

    Raises
    ------
    TypeError
        If ``name`` is not a str.
    ValueError
        If no bundled image has that name; the message lists the names.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str such as 'chelsea', got {type(name).__name__}")
    sample = _lookup_sample(name)
    if sample is None:
        raise ValueError(
            f"there is no bundled image called {name!r}; the bundled images are: {_bundled_names()}"
        )
    return sample.path
