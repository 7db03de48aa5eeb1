"""The explorer's computations: pure functions of their arguments, with caches.

- :func:`explanation`: the raw map for a :class:`~vizwidgets.widgets.state.Request`, computed
  once per (model, image, method, layer, class, options) and then served from a cache;
- :func:`render`: image + map + :class:`~vizwidgets.widgets.state.Display` -> RGB picture,
  no model call;
- :func:`explain_picture`: both, the plain function behind the explorer that a notebook can
  call with explicit arguments and no UI;
- :func:`png`: an RGB array as PNG bytes for an ``ipywidgets.Image``.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from vizwidgets.viz import normalize, overlay
from vizwidgets.widgets.state import Display, Request

__all__ = ["LRUCache", "Session", "render", "png", "explain_picture", "predictions_of"]


class LRUCache:
    """A small least-recently-used cache: ``get(key, make)`` computes ``make()`` on a miss."""

    def __init__(self, size: int = 64) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        self.size = size
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        if key in self._items:
            self.hits += 1
            self._items.move_to_end(key)
            return self._items[key]
        self.misses += 1
        value = make()
        self._items[key] = value
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)


class Session:
    """A model, its images by key, and caches of inputs, predictions and maps."""

    def __init__(self, model: Any, cache_size: int = 64) -> None:
        self.model = model
        self.sources: dict[str, Any] = {}
        self.inputs = LRUCache(cache_size)
        self.probabilities = LRUCache(cache_size)
        self.maps = LRUCache(cache_size)

    def add_image(self, key: str, source: Any) -> str:
        """Register an image (anything ``load_image`` takes) under ``key``; checks it loads."""
        from vizwidgets.data import load_image

        load_image(source)  # raises a readable error for a bad file, before anything changes
        self.sources[key] = source
        return key

    def input(self, key: str) -> Tensor:
        if key not in self.sources:
            raise ValueError(f"no image called {key!r}; choose one of {sorted(self.sources)}")
        return self.inputs.get((self.model.name, key), lambda: self.model.inputs(self.sources[key]))

    def picture(self, key: str) -> np.ndarray:
        return self.model.preprocess.inverse(self.input(key)[0])

    def predictions(self, key: str) -> Tensor:
        def make() -> Tensor:
            with torch.no_grad():
                return self.model.model(self.input(key)).softmax(dim=1)[0]

        return self.probabilities.get((self.model.name, key), make)

    def explanation(self, request: Request) -> Tensor:
        from vizwidgets.attribution import attribute

        key = (self.model.name, request)

        def make() -> Tensor:
            target = request.target if request.target is not None else int(self.predictions(request.image).argmax())
            options = dict(request.options)
            return attribute(self.model, self.input(request.image), target, request.method, request.layer, **options).detach()

        return self.maps.get(key, make)


def render(picture: np.ndarray, attribution: Tensor, display: Display) -> np.ndarray:
    """``(H, W, 3)`` uint8: the normalised map drawn over the picture (no model call)."""
    heat = normalize(attribution, sign=display.sign, scaling=display.scaling)[0]
    drawn = overlay(picture, heat, alpha=display.opacity, cmap=display.cmap, signed=display.sign == "all")
    return (drawn * 255).round().astype(np.uint8)


def png(array: np.ndarray) -> bytes:
    """PNG bytes of an ``(H, W, 3)`` uint8 array."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def explain_picture(
    model: Any,
    image: Any,
    method: str = "grad_cam",
    *,
    layer: str | None = None,
    target: int | str | None = None,
    display: Display | None = None,
    **options: Any,
) -> np.ndarray:
    """The explorer's picture for explicit arguments, without any UI: ``(H, W, 3)`` uint8.

    ``image``: anything ``load_image`` takes; ``target``: None (the predicted class), an
    index or a name; ``options``: the method's options; ``display``: how to draw it.
    """
    from vizwidgets.attribution import attribute

    x = model.inputs(image)
    if target is None:
        with torch.no_grad():
            target = int(model.model(x).argmax())
    result = attribute(model, x, target, method, layer, **options)
    return render(model.preprocess.inverse(x[0]), result, display or Display())


def predictions_of(probabilities: Tensor, classes: Any, k: int = 5) -> list[tuple[int, str, float]]:
    """The top ``k`` ``(index, name, probability)``."""
    values, indices = probabilities.topk(k)
    return [(int(i), classes[int(i)], float(p)) for p, i in zip(values, indices)]
