"""Scenes: several images in one, with the ground-truth box of each part.

The boxes are what localisation checks such as the pointing game compare an explanation with::

    scene = make_scene(["chelsea", "chicky_512"])   # a cat | a dog
    scene.image, scene.boxes                        # one RGB image, one Box per part

These were called composites (``make_composite``, ``Composite``) until LRP's rule composites
(:mod:`vizwidgets.attribution.lrp`, which rule goes where) made the name mean two things in the
course. The old names still work, with a :class:`DeprecationWarning` naming the new one.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vizwidgets.data._convert import _is_torch_tensor
from vizwidgets.data.catalogue import SampleImage, _lookup_sample
from vizwidgets.data.loading import ImageSource, load_image

__all__ = ["Box", "Scene", "make_scene"]  # and the deprecated make_composite, Composite


@dataclass(frozen=True)
class Box:
    """A rectangle in pixel coordinates; ``right`` and ``bottom`` are exclusive.

    Attributes
    ----------
    label : str
        What the box holds, e.g. ``"chelsea"``.
    left, top, right, bottom : int
        Columns ``left`` to ``right - 1`` and rows ``top`` to ``bottom - 1``, as in
        ``array[top:bottom, left:right]``.
    target : int or None
        The ImageNet class expected inside the box (for bundled images), else ``None``.
    """

    label: str
    left: int
    top: int
    right: int
    bottom: int
    target: int | None = None

    def __post_init__(self) -> None:
        for field in ("left", "top", "right", "bottom"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"Box.{field} must be an int, got {type(value).__name__}")
            object.__setattr__(self, field, int(value))
        if self.right < self.left or self.bottom < self.top:
            raise ValueError(
                f"Box needs left <= right and top <= bottom, got left={self.left}, "
                f"right={self.right}, top={self.top}, bottom={self.bottom}"
            )

    @property
    def width(self) -> int:
        """Width in pixels, ``right - left``."""
        return self.right - self.left

    @property
    def height(self) -> int:
        """Height in pixels, ``bottom - top``."""
        return self.bottom - self.top

    def scaled(self, sx: float, sy: float) -> Box:
        """The same box in an image resized by ``sx`` horizontally and ``sy`` vertically.

        Each edge is multiplied by its factor and rounded to the nearest pixel edge (halves
        round up); a box that had pixels keeps at least one in each direction.

        Parameters
        ----------
        sx, sy : float
            Scale factors, new size over old size; must be positive.

        Returns
        -------
        Box
            A new box with the same label and target.
        """
        if not (sx > 0 and sy > 0 and math.isfinite(sx) and math.isfinite(sy)):
            raise ValueError(f"scale factors must be positive and finite, got sx={sx}, sy={sy}")

        def edge(value: int, factor: float) -> int:
            return math.floor(value * factor + 0.5)

        left, top = edge(self.left, sx), edge(self.top, sy)
        right, bottom = edge(self.right, sx), edge(self.bottom, sy)
        if self.right > self.left:
            right = max(right, left + 1)
        if self.bottom > self.top:
            bottom = max(bottom, top + 1)
        return Box(self.label, left, top, right, bottom, self.target)

    def mask(self, height: int, width: int) -> np.ndarray:
        """A boolean mask of shape ``(height, width)``, True inside the box.

        Parameters
        ----------
        height, width : int
            Size of the image the mask is for (note the order: rows first, as for arrays).
            Parts of the box outside it are cut off.

        Returns
        -------
        numpy.ndarray
            Array of dtype bool and shape ``(height, width)``.
        """
        mask = np.zeros((height, width), dtype=bool)
        mask[max(0, self.top) : max(0, self.bottom), max(0, self.left) : max(0, self.right)] = True
        return mask


@dataclass(frozen=True)
class Scene:
    """A scene made of several images, with the box each one occupies.

    Attributes
    ----------
    image : PIL.Image.Image
        The scene, in mode ``"RGB"``.
    boxes : tuple of Box
        One box per part, in the order the parts were given: the pixels that came from that
        part (its padding excluded).
    """

    image: Image.Image
    boxes: tuple[Box, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        """The label of each box."""
        return tuple(box.label for box in self.boxes)

    def boxes_at(self, width: int, height: int) -> tuple[Box, ...]:
        """The boxes for a copy of the image resized to ``width`` x ``height``.

        Use it to find the parts in the model's input, e.g. ``boxes_at(224, 224)`` after the
        whole scene is resized to 224 x 224.

        Parameters
        ----------
        width, height : int
            Size of the resized image (PIL order: width first).

        Returns
        -------
        tuple of Box
            The boxes scaled by ``width / image.width`` and ``height / image.height``.
        """
        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        sx = width / self.image.width
        sy = height / self.image.height
        return tuple(box.scaled(sx, sy) for box in self.boxes)


def _bundled_sample(part: object) -> SampleImage | None:
    """The bundled image a part names, or None (paths, arrays, ... and existing files)."""
    if isinstance(part, str) and not Path(part).expanduser().is_file():
        return _lookup_sample(part)
    return None


def make_scene(
    parts: Iterable[ImageSource],
    *,
    cell_size: int = 224,
    columns: int | None = None,
    labels: Sequence[str] | None = None,
    background: tuple[int, int, int] = (255, 255, 255),
) -> Scene:
    """Build one scene from several images, and record where each one lies.

    Each part is loaded with :func:`load_image`, scaled to fit a square cell of
    ``cell_size`` pixels (aspect ratio kept, Lanczos resampling, centred, padded with
    ``background``), and the cells are laid out in a grid, row by row. The boxes are ground
    truth for localisation checks such as the pointing game: does the explanation for
    "Egyptian cat" fall on the cat?

    Parameters
    ----------
    parts : iterable of image sources
        Anything :func:`load_image` accepts, e.g. ``["chelsea", "coffee"]``.
    cell_size : int, optional
        Side of each square cell in pixels, at least 8; default 224.
    columns : int or None, optional
        Cells per row; default all parts in one row. At most ``len(parts)`` columns are used.
    labels : sequence of str or None, optional
        One label per part. Default: a bundled image's name, else ``"part0"``,
        ``"part1"``, ...
    background : tuple of three ints, optional
        RGB colour of the padding, each 0 to 255; default white.

    Returns
    -------
    Scene
        The scene (``rows * cell_size`` high, ``columns * cell_size`` wide) and one
        :class:`Box` per part. A box's ``target`` is the expected ImageNet class of a bundled
        image (see :func:`sample_images`), else ``None``.

    Raises
    ------
    TypeError
        If ``parts`` is a single image rather than a collection, or an argument has the
        wrong type.
    ValueError
        If ``parts`` is empty, ``cell_size`` < 8, ``columns`` < 1, the number of labels
        differs from the number of parts, or ``background`` is not an RGB triple; and
        whatever :func:`load_image` raises for a part.

    Examples
    --------
    >>> scene = make_scene(["chelsea", "coffee"], cell_size=64)
    >>> scene.image.size
    (128, 64)
    >>> scene.boxes[0]
    Box(label='chelsea', left=0, top=10, right=64, bottom=53, target=285)
    """
    if isinstance(
        parts, (str, bytes, bytearray, memoryview, os.PathLike, Image.Image, np.ndarray)
    ) or _is_torch_tensor(parts):
        raise TypeError(
            "parts must be a list of images, e.g. ['chelsea', 'coffee']; got a single "
            f"{type(parts).__name__}: wrap it in a list"
        )
    if not isinstance(parts, Iterable):
        raise TypeError(f"parts must be a list of images, got {type(parts).__name__}")
    items = list(parts)
    if not items:
        raise ValueError("parts is empty; give at least one image, e.g. ['chelsea']")
    count = len(items)

    if isinstance(cell_size, bool) or not isinstance(cell_size, int):
        raise TypeError(f"cell_size must be an int, got {type(cell_size).__name__}")
    if cell_size < 8:
        raise ValueError(f"cell_size must be at least 8 pixels, got {cell_size}")

    if columns is None:
        columns = count
    elif isinstance(columns, bool) or not isinstance(columns, int):
        raise TypeError(f"columns must be an int or None, got {type(columns).__name__}")
    elif columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")
    columns = min(columns, count)
    rows = math.ceil(count / columns)

    if labels is None:
        names = []
        for index, part in enumerate(items):
            sample = _bundled_sample(part)
            names.append(sample.name if sample is not None else f"part{index}")
    else:
        if isinstance(labels, str) or not isinstance(labels, Sequence):
            raise TypeError(
                f"labels must be a list of str, one per part, got {type(labels).__name__}"
            )
        if len(labels) != count:
            raise ValueError(
                f"labels has {len(labels)} entries but there are {count} parts; give one "
                "label per part"
            )
        for label in labels:
            if not isinstance(label, str):
                raise TypeError(f"each label must be a str, got {type(label).__name__}")
        names = list(labels)

    if (
        not isinstance(background, Sequence)
        or len(background) != 3
        or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v <= 255
            for v in background
        )
    ):
        raise ValueError(
            f"background must be an RGB triple of ints from 0 to 255, got {background!r}"
        )
    fill = (int(background[0]), int(background[1]), int(background[2]))

    scene = Image.new("RGB", (columns * cell_size, rows * cell_size), fill)
    boxes: list[Box] = []
    for index, (part, label) in enumerate(zip(items, names, strict=True)):
        image = load_image(part)
        width, height = image.size
        scale = cell_size / max(width, height)
        fitted_size = (
            min(cell_size, max(1, round(width * scale))),
            min(cell_size, max(1, round(height * scale))),
        )
        if fitted_size != image.size:
            image = image.resize(fitted_size, Image.Resampling.LANCZOS)
        row, column = divmod(index, columns)
        left = column * cell_size + (cell_size - fitted_size[0]) // 2
        top = row * cell_size + (cell_size - fitted_size[1]) // 2
        scene.paste(image, (left, top))
        sample = _bundled_sample(part)
        target = sample.expected_class if sample is not None else None
        boxes.append(Box(label, left, top, left + fitted_size[0], top + fitted_size[1], target))
    return Scene(image=scene, boxes=tuple(boxes))


_COMPOSITE_RENAMED = (
    "vizwidgets.data.Composite is now vizwidgets.data.Scene ('composite' means LRP's rule "
    "composites); use Scene"
)


def make_composite(
    parts: Iterable[ImageSource],
    *,
    cell_size: int = 224,
    columns: int | None = None,
    labels: Sequence[str] | None = None,
    background: tuple[int, int, int] = (255, 255, 255),
) -> Scene:
    """Deprecated name of :func:`make_scene`; same arguments, same result.

    .. deprecated::
        Use :func:`make_scene`. "Composite" now means only LRP's rule composites.

    Warns
    -----
    DeprecationWarning
        Always, naming :func:`make_scene`.
    """
    warnings.warn(
        "make_composite() is now make_scene() (a scene of images with their boxes; "
        "'composite' means LRP's rule composites): call vizwidgets.data.make_scene(...) "
        "with the same arguments",
        DeprecationWarning,
        stacklevel=2,
    )
    return make_scene(
        parts, cell_size=cell_size, columns=columns, labels=labels, background=background
    )


def __getattr__(name: str) -> Any:
    """The deprecated class name ``Composite``: :class:`Scene`, with a DeprecationWarning."""
    if name == "Composite":
        warnings.warn(_COMPOSITE_RENAMED, DeprecationWarning, stacklevel=2)
        return Scene
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
