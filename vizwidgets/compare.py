"""Comparing methods on the same images: one table of times and metrics, one figure grid.

```python
from vizwidgets.compare import compare
result = compare(model, ["chelsea", "coffee"], ["gradient", "grad_cam", ("integrated_gradients", {"steps": 32})])
print(result.table())            # markdown: image, method, class, seconds, deletion, insertion
result.figure()                  # rows: methods; columns: images; one normalisation for all
```
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from vizwidgets.explain import METRICS as _METRICS
from vizwidgets.explain import explain
from vizwidgets.viz import normalize, overlay, show_grid

__all__ = ["Comparison", "compare", "METRICS"]

METRICS = _METRICS  # the metrics explain() computes


@dataclass
class Comparison:
    """What :func:`compare` measured.

    Attributes
    ----------
    rows:
        One dict per (image, method): ``image``, ``method``, ``target`` (class index),
        ``class`` (its name), ``seconds``, and one value per metric: ``deletion`` and
        ``insertion`` (areas under the curves), ``average_drop`` (percent).
    maps:
        ``(image label, method) -> (1, C, H, W)`` raw attribution.
    pictures:
        ``image label -> (H, W, 3)`` the preprocessed image back in [0, 1], for display.
    """

    rows: list[dict[str, Any]]
    maps: dict[tuple[str, str], Tensor] = field(repr=False)
    pictures: dict[str, np.ndarray] = field(repr=False)

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(r["method"] for r in self.rows))

    @property
    def images(self) -> list[str]:
        return list(dict.fromkeys(r["image"] for r in self.rows))

    def table(self, digits: int = 3) -> str:
        """The rows as a markdown table."""
        if not self.rows:
            return ""
        keys = list(self.rows[0])
        lines = ["| " + " | ".join(keys) + " |", "| " + " | ".join("---" for _ in keys) + " |"]
        for row in self.rows:
            cells = [f"{v:.{digits}g}" if isinstance(v, float) else str(v) for v in row.values()]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def to_csv(self, path: str | Path) -> Path:
        """Write the rows to a CSV file; returns its path."""
        path = Path(path)
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(self.rows[0]))
            writer.writeheader()
            writer.writerows(self.rows)
        return path

    def figure(
        self, *, sign: str = "absolute", scaling: str = "percentile", alpha: float = 0.6, cmap: str = "jet"
    ) -> Any:
        """Rows: the images, then one row per method; columns: the images. Every map is
        normalised the same way (``sign``, ``scaling``: see :func:`vizwidgets.viz.normalize`)
        and drawn over its image."""
        columns = self.images
        cells = [[self.pictures[label] for label in columns]]
        for method in self.methods:
            row = []
            for label in columns:
                heat = normalize(self.maps[(label, method)], sign=sign, scaling=scaling)[0]
                row.append(overlay(self.pictures[label], heat, alpha=alpha, cmap=cmap, signed=sign == "all"))
            cells.append(row)
        titles = []
        for label in columns:
            first = next(r for r in self.rows if r["image"] == label)
            titles.append(f"{label}\n{first['class']}")
        return show_grid(cells, row_titles=["image", *self.methods], column_titles=titles)


def compare(
    model: Any,
    images: Sequence[Any],
    methods: Sequence[Any] = ("gradient", "guided_backprop", "grad_cam", "integrated_gradients", "lrp"),
    target: Any = None,
    *,
    metrics: Sequence[str] = ("deletion", "insertion"),
    metric_steps: int = 50,
    labels: Sequence[str] | None = None,
    chunk_size: int | None = None,
) -> Comparison:
    """Run every method on every image, time it and measure it: :func:`vizwidgets.explain.explain`
    laid out as a table and a figure.

    Parameters
    ----------
    model:
        A :class:`~vizwidgets.models.LoadedModel`.
    images:
        Names, paths, PIL images or arrays (one list).
    methods:
        Method names, or ``(name, options)`` pairs, from :data:`vizwidgets.attribution.METHODS`.
    target:
        None (each image's predicted class), one class for all, or one per image.
    metrics:
        Any of ``"deletion"``, ``"insertion"`` (areas, :mod:`vizwidgets.metrics`) and
        ``"average_drop"``; ``()`` for none.
    metric_steps:
        Steps of the deletion and insertion curves.
    labels:
        Names for the images (default: the bundled names, else "image 1", ...).
    chunk_size:
        Images per pass through the model (``seconds`` is per image); None: as
        :func:`~vizwidgets.explain.explain` chooses.
    """

    images = list(images)
    if not images:
        raise ValueError("no images given")
    if labels is not None and len(set(map(str, labels))) != len(labels):
        raise ValueError("labels must give one distinct name per image")
    explanations = explain(
        model, images, list(methods), target=target, metrics=metrics, labels=labels,
        metric_steps=metric_steps, chunk_size=chunk_size,
    )
    if len({e.label for e in explanations}) != len(explanations):
        raise ValueError("labels must give one distinct name per image (two images have the same name)")
    rows: list[dict[str, Any]] = []
    maps: dict[tuple[str, str], Tensor] = {}
    for name in explanations[0].methods:
        for explanation in explanations:
            result = explanation.results[name]
            maps[(explanation.label, name)] = result.map
            rows.append({
                "image": explanation.label, "method": name, "target": explanation.target,
                "class": explanation.target_class, "seconds": result.seconds, **result.metrics,
            })
    pictures = {e.label: e.pixels for e in explanations}
    return Comparison(rows, maps, pictures)
