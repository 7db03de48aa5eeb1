"""``METHODS``: every attribution method, described for the widgets, the course and the CLI.

Each entry is the method's class; its class attributes are the description: ``name``,
``title``, ``family``, ``description``, ``reference`` (the paper), ``needs_layer``, ``output``
("pixels" or "map") and ``options`` (each with default, kind and range).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from vizwidgets.attribution.base import Attribution, Target
from vizwidgets.attribution.cam import (
    CAM,
    FastScoreCAM,
    GradCAM,
    GradCAMpp,
    GuidedGradCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
)
from vizwidgets.attribution.gradient import Gradient, GradientXInput, SmoothGrad
from vizwidgets.attribution.guided import Deconvnet, GuidedBackprop
from vizwidgets.attribution.integrated import IntegratedGradients
from vizwidgets.attribution.lrp import LRP
from vizwidgets.attribution.occlusion import Occlusion

__all__ = ["METHODS", "FAMILIES", "attribute", "register", "methods_table"]

#: Family name -> what the family has in common, in the order the course teaches them.
FAMILIES: dict[str, str] = {
    "gradient": "Gradients of the class score with respect to the pixels",
    "guided": "Gradients with modified ReLU backward passes",
    "cam": "Class activation maps: weighted feature maps of one layer",
    "path": "Path integrals of the gradient",
    "relevance": "Layer-wise relevance propagation",
    "perturbation": "Change the input and watch the score",
}

METHODS: dict[str, type[Attribution]] = {}


def register(method: type[Attribution]) -> type[Attribution]:
    """Add a method class to :data:`METHODS` (usable as a class decorator)."""
    if not method.name or method.family not in FAMILIES:
        raise ValueError(f"{method.__name__} needs a name and one of the families {list(FAMILIES)}")
    METHODS[method.name] = method
    return method


for _method in (
    Gradient,
    GradientXInput,
    SmoothGrad,
    GuidedBackprop,
    Deconvnet,
    CAM,
    GradCAM,
    GradCAMpp,
    XGradCAM,
    LayerCAM,
    ScoreCAM,
    FastScoreCAM,
    GuidedGradCAM,
    IntegratedGradients,
    LRP,
    Occlusion,
):
    register(_method)


def attribute(
    model: Any,
    x: Tensor,
    target: Target = None,
    method: str = "grad_cam",
    layer: str | None = None,
    **options: Any,
) -> Tensor:
    """Run the attribution ``method`` (a key of :data:`METHODS`) on a preprocessed batch.

    ``x``: ``(N, 3, H, W)`` on the model's device. ``target``: None (predicted class), one
    class (index or name) or one per image. ``layer``: for the CAM family (default: the
    model's default layer). ``options``: the method's options (``METHODS[method].options``).
    """
    if not isinstance(method, str):
        raise TypeError(f"method must be a str, got {type(method).__name__}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known methods: {', '.join(METHODS)}")
    return METHODS[method](model, layer).attribute(x, target, **options)


def methods_table() -> str:
    """A Markdown table of every method, grouped by family, built from :data:`METHODS`."""
    lines = [
        "| method | name | family | layer | output | options | paper |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for family in FAMILIES:
        for method in (m for m in METHODS.values() if m.family == family):
            options = ", ".join(f"`{o.name}={o.default!r}`" for o in method.options) or "none"
            lines.append(
                f"| {method.title} | `{method.name}` | {family} | {'yes' if method.needs_layer else 'no'} "
                f"| {'(N, 1, H, W)' if method.output == 'map' else '(N, 3, H, W)'} | {options} | {method.reference} |"
            )
    return "\n".join(lines)
