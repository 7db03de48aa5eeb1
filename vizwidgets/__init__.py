"""vizwidgets: see what convolutional networks see.

The package behind the course in ``course/``: an offline pretrained ImageNet model
(:func:`vizwidgets.load_model`) and bundled sample images (:func:`vizwidgets.load_image`);
attribution methods in :mod:`vizwidgets.attribution`; activations in
:mod:`vizwidgets.features`; maximisation, fooling and style transfer in
:mod:`vizwidgets.synthesis`; metrics and comparisons in :mod:`vizwidgets.metrics` and
:mod:`vizwidgets.compare`; display in :mod:`vizwidgets.viz`; one image's whole chain in
:mod:`vizwidgets.explain`; whole datasets in :mod:`vizwidgets.dataset`, whose command is
``python -m vizwidgets explain`` (:mod:`vizwidgets.cli`).

Importing the package is light: it imports neither PyTorch nor a model. The names below
are loaded from their modules the first time they are used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "load_model": "vizwidgets.models",
    "available_models": "vizwidgets.models",
    "list_layers": "vizwidgets.models",
    "LoadedModel": "vizwidgets.models",
    "ClassNames": "vizwidgets.models",
    "load_image": "vizwidgets.data",
    "sample_images": "vizwidgets.data",
    "make_scene": "vizwidgets.data",
    "Scene": "vizwidgets.data",
    "make_composite": "vizwidgets.data",  # deprecated alias of make_scene (it warns)
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from vizwidgets.data import Scene, load_image, make_composite, make_scene, sample_images
    from vizwidgets.models import ClassNames, LoadedModel, available_models, list_layers, load_model


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vizwidgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
