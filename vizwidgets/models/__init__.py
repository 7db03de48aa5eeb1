"""Pretrained ImageNet classifiers with their preprocessing, class names and layers.

>>> from vizwidgets.models import load_model, list_layers
>>> m = load_model()                      # EfficientNet-Lite0, offline
>>> m.predict("chelsea")[0].label
'Egyptian cat'
>>> m.classes.index("tabby")
281
"""

from vizwidgets.models.adapter import ModelAdapter, PixelBounds, adapt, guess_default_layer
from vizwidgets.models.classes import ClassNames, imagenet_class_names
from vizwidgets.models.core import (
    MODELS,
    LayerInfo,
    LoadedModel,
    ModelSpec,
    Prediction,
    WeightsNotFoundError,
    available_models,
    list_layers,
    load_model,
    torch_cache_dir,
)
from vizwidgets.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess

__all__ = [
    "MODELS",
    "ClassNames",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LayerInfo",
    "LoadedModel",
    "ModelAdapter",
    "ModelSpec",
    "PixelBounds",
    "Prediction",
    "Preprocess",
    "WeightsNotFoundError",
    "adapt",
    "available_models",
    "guess_default_layer",
    "imagenet_class_names",
    "list_layers",
    "load_model",
    "torch_cache_dir",
]
