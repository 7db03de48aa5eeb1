"""The explorer's computations, with caches; the chain itself is :func:`vizwidgets.explain.explain`.

- :meth:`Session.explained`: ``explain()`` of a :class:`~vizwidgets.widgets.state.Request`,
  computed once per (model, image content, method, layer, class, options) and then served from
  a cache; images are cached by their pixels, never by their name, so a new upload under an
  old name, or a path whose file changed, shows the new picture;
- :func:`render` (from :mod:`vizwidgets.viz`): image + map + :class:`~vizwidgets.viz.Display`
  -> RGB picture, no model call;
- :func:`explain_picture`: ``explain()`` then ``picture()``, the plain function behind the
  explorer that a notebook can call with explicit arguments and no UI;
- :func:`png`: an RGB array as PNG bytes for an ``ipywidgets.Image``.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from vizwidgets.data import load_image
from vizwidgets.data.loading import MAX_PIXELS
from vizwidgets.explain import Explanation, explain
from vizwidgets.models.adapter import adapt
from vizwidgets.viz import Display, render
from vizwidgets.widgets.state import Request

__all__ = ["LRUCache", "Session", "content_digest", "render", "png", "explain_picture", "predictions_of"]


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


def content_digest(image: Image.Image) -> str:
    """A fingerprint of an image's pixels (mode, size and bytes): equal pixels, equal digest."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def _file_stamp(source: Any) -> tuple[int, int] | None:
    """``(mtime_ns, size)`` when ``source`` names a file on disk, else None."""
    if isinstance(source, (str, os.PathLike)):
        try:
            status = os.stat(source)
        except (OSError, ValueError):
            return None
        return (status.st_mtime_ns, status.st_size)
    return None


class Session:
    """A model, its images by key, and caches of inputs, predictions and maps.

    The caches are keyed by the image's content (:func:`content_digest`), not by its key: a
    key is only a label in a list. A source that is a file path is checked again when used,
    and re-read if the file changed since it was added.
    """

    def __init__(self, model: Any, cache_size: int = 64) -> None:
        self.model = model
        self.adapter = adapt(model)  # what the model is: module, preprocessing, classes
        if self.adapter.preprocess is None:
            raise ValueError(
                "the widgets load images, so the model needs a preprocessing: pass a LoadedModel "
                "(vizwidgets.load_model(), or LoadedModel(...) around your own network)"
            )
        self.preprocess = self.adapter.preprocess
        self.sources: dict[str, Any] = {}
        self.images: dict[str, tuple[Image.Image, str, tuple[int, int] | None]] = {}
        self.inputs = LRUCache(cache_size)
        self.probabilities = LRUCache(cache_size)
        self.maps = LRUCache(cache_size)

    def add_image(self, key: str, source: Any, *, max_pixels: int = MAX_PIXELS) -> str:
        """Register an image (anything ``load_image`` takes, at most ``max_pixels`` when encoded)
        under ``key``, replacing what the key held before; a bad file raises a readable error and
        changes nothing."""

        stamp = _file_stamp(source)
        image = load_image(source, max_pixels=max_pixels)  # raises before anything changes
        self.sources[key] = source
        self.images[key] = (image, content_digest(image), stamp)
        return key

    def digest(self, key: str) -> str:
        """The content digest of the image under ``key`` now (a changed file is re-read)."""
        if key not in self.sources:
            raise ValueError(f"no image called {key!r}; choose one of {sorted(self.sources)}")
        _, digest, stamp = self.images[key]
        if stamp is not None and _file_stamp(self.sources[key]) != stamp:
            self.add_image(key, self.sources[key])
            digest = self.images[key][1]
        return digest

    def input(self, key: str) -> Tensor:
        digest = self.digest(key)
        image = self.images[key][0]
        return self.inputs.get((self.adapter.name, digest), lambda: self.adapter.inputs(image))

    def picture(self, key: str) -> np.ndarray:
        return self.preprocess.inverse(self.input(key)[0])

    def predictions(self, key: str) -> Tensor:
        def make() -> Tensor:
            with torch.no_grad():
                return self.adapter.module(self.input(key)).softmax(dim=1)[0]

        return self.probabilities.get((self.adapter.name, self.digest(key)), make)

    def explanation(self, request: Request) -> Tensor:
        """The raw map for ``request`` (computed once, then from the cache)."""
        return self.explained(request).results[request.method].map

    def notes(self, request: Request) -> tuple[str, ...]:
        """The warnings computing ``request``'s map gave (an all-zero map, say, and why): kept
        with the map, so a view shows them also when the map comes from the cache."""
        return self.explained(request).results[request.method].notes

    def explained(self, request: Request) -> Explanation:
        """:func:`vizwidgets.explain.explain` of ``request`` (computed once, then from the cache)."""
        key = (self.adapter.name, self.digest(request.image), request.method, request.layer,
               request.target, request.options)

        def make() -> Explanation:
            (result,) = explain(self.adapter, self.input(request.image), [(request.method, dict(request.options))],
                                target=request.target, layer=request.layer, labels=[request.image])
            return result

        return self.maps.get(key, make)


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
    index or a name; ``options``: the method's options; ``display``: how to draw it. The
    same as ``explain(model, [image], [(method, options)], ...)[0].picture(method, display)``.
    """
    (result,) = explain(model, [image], [(method, options)], target=target, layer=layer)
    return result.picture(method, display)


def predictions_of(probabilities: Tensor, classes: Any, k: int = 5) -> list[tuple[int, str, float]]:
    """The top ``k`` ``(index, name, probability)``."""
    values, indices = probabilities.topk(min(k, probabilities.shape[-1]))
    return [(int(i), classes[int(i)], float(p)) for p, i in zip(values, indices)]
