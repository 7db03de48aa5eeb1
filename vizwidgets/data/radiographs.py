"""Synthetic chest radiographs with a planted shortcut, and the ground truth of both.

The case this builds is the one that made explanations famous outside the lab: a classifier
that reads the hospital's token in the corner of an X-ray instead of the lungs (Zech et al.
2018, "Variable generalization performance of a deep learning model to detect pneumonia in
chest radiographs", PLOS Medicine, https://doi.org/10.1371/journal.pmed.1002683). Real
radiographs cannot ship with the package, and need not: here every image is drawn from a seed.

- The field: a body (a bright ellipse) holding two darker lungs, a spine, ribs, smooth
  texture and pixel noise, with every shape jittered per image.
- The class: whether a **nodule** (a small bright Gaussian blob inside a lung) is present
  (label 1) or not (label 0), half and half.
- The shortcut: a **marker**, a bright lead token shaped like an "L", in the top-left corner.
  With ``marker="shortcut"`` it appears on a positive image with probability ``agreement`` and
  on a negative one with probability ``1 - agreement``, so that in training it almost gives the
  answer away; ``"none"`` never draws it, ``"random"`` draws it on half the images whatever
  their class (which removes the shortcut), ``"always"`` on every image.
- The ground truth: a mask of the nodule (its disk, empty on negative images) and a mask of the
  marker (its bounding box, empty where no marker was drawn).

Everything is NumPy, from ``numpy.random.default_rng(seed)``: the same arguments give the same
bytes on every machine. Images are ``(N, 3, H, W)`` float32 in [0, 1], grey (the three channels
are equal) so that any RGB model and the Explorer take them as they are.

>>> from vizwidgets.data import make_radiographs
>>> train = make_radiographs(8, seed=0)
>>> train.images.shape, train.labels.tolist()[:4], train.lesion_masks.shape
((8, 3, 64, 64), [1, 0, 1, 0], (8, 64, 64))
>>> bool((train.markers == train.labels.astype(bool)).mean() > 0.5)
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MARKER_POLICIES", "Radiographs", "make_radiographs"]

#: Where the marker is drawn: on the class (``"shortcut"``), never, on half the images
#: whatever their class, or on every image.
MARKER_POLICIES = ("shortcut", "none", "random", "always")

_MARKER_SIZE = 8  # the token's side in pixels at 64x64; it scales with the image


@dataclass(frozen=True)
class Radiographs:
    """A set of synthetic radiographs with labels and ground-truth masks.

    Attributes
    ----------
    images:
        ``(N, 3, H, W)`` float32 in [0, 1]; the three channels are equal.
    labels:
        ``(N,)`` int64: 1 where a nodule is present, else 0.
    lesion_masks:
        ``(N, H, W)`` bool: the nodule's disk (all False on negative images).
    marker_masks:
        ``(N, H, W)`` bool: the marker's bounding box (all False where none was drawn).
    markers:
        ``(N,)`` bool: whether the image carries the marker.
    classes:
        The class names, index by label: ``("no nodule", "nodule")``.
    """

    images: np.ndarray
    labels: np.ndarray
    lesion_masks: np.ndarray
    marker_masks: np.ndarray
    markers: np.ndarray
    classes: tuple[str, str] = ("no nodule", "nodule")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int | slice | np.ndarray) -> Radiographs:
        """The images at ``index`` as a new :class:`Radiographs` (always a set, never one image)."""
        if isinstance(index, (int, np.integer)):
            index = slice(int(index), int(index) + 1) if index != -1 else slice(-1, None)
        return Radiographs(
            self.images[index],
            self.labels[index],
            self.lesion_masks[index],
            self.marker_masks[index],
            self.markers[index],
            self.classes,
        )

    def describe(self) -> str:
        """One line for people: how many images, how many positive, how the marker falls."""
        n = len(self)
        positive = int(self.labels.sum())
        with_marker = self.markers.astype(bool)
        on_positive = int((with_marker & (self.labels == 1)).sum())
        on_negative = int((with_marker & (self.labels == 0)).sum())
        return (
            f"{n} radiographs {self.images.shape[-2]}x{self.images.shape[-1]}: "
            f"{positive} with a nodule, {n - positive} without; marker on {on_positive} of "
            f"{positive} positive and {on_negative} of {n - positive} negative images"
        )


def _check_args(n: object, seed: object, size: object, marker: object, agreement: object) -> None:
    for name, value, low in (("n", n, 1), ("size", size, 32)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < low:
            raise ValueError(f"{name} must be at least {low}, got {value}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if marker not in MARKER_POLICIES:
        raise ValueError(f"marker must be one of {MARKER_POLICIES}, got {marker!r}")
    if isinstance(agreement, bool) or not isinstance(agreement, (int, float)):
        raise TypeError(f"agreement must be a number, got {type(agreement).__name__}")
    if not 0.5 <= agreement <= 1.0:
        raise ValueError(
            f"agreement must be from 0.5 (the marker says nothing) to 1 (it always says the "
            f"class), got {agreement}"
        )


def make_radiographs(
    n: int,
    *,
    seed: int,
    size: int = 64,
    marker: str = "shortcut",
    agreement: float = 0.98,
    nodule_contrast: float = 0.3,
) -> Radiographs:
    """``n`` synthetic chest radiographs from ``seed``: see the module docstring.

    Parameters
    ----------
    n:
        How many images; labels alternate 1, 0, 1, 0, ... so the classes are balanced.
    seed:
        Everything random is drawn from ``numpy.random.default_rng(seed)``.
    size:
        Side of the square images in pixels (at least 32).
    marker:
        One of :data:`MARKER_POLICIES`.
    agreement:
        With ``marker="shortcut"``: the probability that the marker's presence equals the class
        (0.5: it says nothing; 1: it always gives the answer).
    nodule_contrast:
        The nodule's peak brightness above the lung (the lung is about 0.3, the marker 0.95).
    """
    _check_args(n, seed, size, marker, agreement)
    if not isinstance(nodule_contrast, (int, float)) or not 0 < nodule_contrast <= 1:
        raise ValueError(f"nodule_contrast must be in (0, 1], got {nodule_contrast!r}")
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 2 == 0).astype(np.int64)
    if marker == "shortcut":
        says_class = rng.random(n) < agreement
        markers = np.where(says_class, labels == 1, labels == 0)
    elif marker == "random":
        markers = rng.random(n) < 0.5
    else:
        markers = np.full(n, marker == "always")
    images = np.empty((n, 3, size, size), dtype=np.float32)
    lesions = np.zeros((n, size, size), dtype=bool)
    marks = np.zeros((n, size, size), dtype=bool)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    for i in range(n):
        field, lungs = _chest(rng, yy, xx)
        if labels[i]:
            field, lesions[i] = _nodule(rng, field, lungs, yy, xx, size, nodule_contrast)
        field = field + rng.normal(0.0, 0.025, field.shape)
        if markers[i]:
            field, marks[i] = _marker(rng, field, size)
        images[i] = np.clip(field, 0.0, 1.0).astype(np.float32)[None]
    return Radiographs(images, labels, lesions, marks, markers.astype(bool))


def _ellipse(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    """A soft ellipse: 1 inside, 0 outside, with an edge about 2% of the image wide."""
    distance = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    return np.clip((1.0 - distance) / 0.08 + 0.5, 0.0, 1.0)


def _chest(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A radiograph without nodule or marker, and the lungs' mask (where a nodule may go)."""
    jitter = rng.normal(0.0, 0.02, 6)
    body = _ellipse(yy, xx, 0.58 + jitter[0], 0.5, 0.5, 0.44 + jitter[1])
    field = 0.07 + 0.5 * body
    lungs = np.zeros_like(field)
    for cx, j in ((0.31, jitter[2]), (0.69, jitter[3])):
        lung = _ellipse(yy, xx, 0.52 + jitter[4], cx + j, 0.29 + jitter[5], 0.13)
        lungs = np.maximum(lungs, lung)
    field = field - 0.26 * lungs
    # ribs: bright arcs across the lungs, curving down towards the sides
    phase = rng.uniform(0, 2 * np.pi)
    ribs = np.cos(2 * np.pi * (7.0 * yy - 2.5 * (xx - 0.5) ** 2) + phase)
    field = field + 0.06 * np.clip(ribs, 0.0, None) * lungs
    # spine and mediastinum: a bright vertical band
    field = field + 0.12 * np.exp(-(((xx - 0.5 - jitter[2] / 2) / 0.06) ** 2)) * body
    # smooth tissue texture: a few random low-frequency waves
    for _ in range(5):
        fy, fx = rng.uniform(1.0, 4.0, 2)
        field = field + 0.02 * np.cos(2 * np.pi * (fy * yy + fx * xx) + rng.uniform(0, 2 * np.pi))
    return field, lungs > 0.99


def _nodule(
    rng: np.random.Generator,
    field: np.ndarray,
    lungs: np.ndarray,
    yy: np.ndarray,
    xx: np.ndarray,
    size: int,
    contrast: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Add a nodule inside a lung; return the new field and the nodule's disk."""
    sigma = rng.uniform(1.4, 2.2) / 64.0  # in image units, so it scales with the size
    inner = lungs.copy()
    margin = int(np.ceil(3 * sigma * size))
    # keep the whole blob inside the lung: erode the mask by the margin
    for axis in (0, 1):
        for shift in range(1, margin + 1):
            inner &= np.roll(lungs, shift, axis) & np.roll(lungs, -shift, axis)
    rows, cols = np.nonzero(inner if inner.any() else lungs)
    pick = rng.integers(rows.size)
    cy, cx = (rows[pick] + 0.5) / size, (cols[pick] + 0.5) / size
    r2 = (yy + 0.5 / size - cy) ** 2 + (xx + 0.5 / size - cx) ** 2
    field = field + contrast * rng.uniform(0.85, 1.15) * np.exp(-r2 / (2 * sigma**2))
    return field, r2 <= (2.5 * sigma) ** 2


def _marker(rng: np.random.Generator, field: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw the lead token, an "L", near the top-left corner; return the field and its box."""
    side = max(4, round(_MARKER_SIZE * size / 64))
    stroke = max(1, side // 4)
    top, left = (int(v) for v in rng.integers(2, 2 + max(2, size // 16), 2))
    field = field.copy()
    field[top : top + side, left : left + stroke] = 0.95  # the upright
    field[top + side - stroke : top + side, left : left + side] = 0.95  # the foot
    box = np.zeros(field.shape, dtype=bool)
    box[top : top + side, left : left + side] = True
    return field, box
