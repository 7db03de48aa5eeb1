"""Attribution methods: which pixels or regions made the network choose a class.

``attribute(model, x, target, method="grad_cam", layer=None, **options)`` runs any method
named in :data:`METHODS`; each method also has a plain function (``grad_cam(model, x)``) and
a class (``GradCAM(model, layer).attribute(x, target)``). Results are raw float tensors:
``(N, 3, H, W)`` for pixel methods, ``(N, 1, H, W)`` for the CAM family. Normalising them for
display is :mod:`vizwidgets.viz`'s job.
"""

from vizwidgets.attribution.base import Attribution, AttributionWarning, Option
from vizwidgets.attribution.cam import (
    CAM,
    FastScoreCAM,
    GradCAM,
    GradCAMpp,
    GuidedGradCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
    cam,
    fast_score_cam,
    grad_cam,
    grad_cam_pp,
    guided_grad_cam,
    layer_cam,
    score_cam,
    xgrad_cam,
)
from vizwidgets.attribution.gradient import (
    Gradient,
    GradientXInput,
    SmoothGrad,
    gradient,
    gradient_x_input,
    smoothgrad,
)
from vizwidgets.attribution.guided import Deconvnet, GuidedBackprop, deconvnet, guided_backprop
from vizwidgets.attribution.integrated import IntegratedGradients, completeness_delta, integrated_gradients
from vizwidgets.attribution.lrp import LRP, lrp
from vizwidgets.attribution.occlusion import Occlusion, occlusion
from vizwidgets.attribution.registry import FAMILIES, METHODS, attribute, register

__all__ = [
    "FAMILIES",
    "METHODS",
    "Attribution",
    "AttributionWarning",
    "Option",
    "attribute",
    "register",
    "Gradient",
    "GradientXInput",
    "SmoothGrad",
    "GuidedBackprop",
    "Deconvnet",
    "CAM",
    "GradCAM",
    "GradCAMpp",
    "XGradCAM",
    "LayerCAM",
    "ScoreCAM",
    "FastScoreCAM",
    "GuidedGradCAM",
    "gradient",
    "gradient_x_input",
    "smoothgrad",
    "guided_backprop",
    "deconvnet",
    "cam",
    "grad_cam",
    "grad_cam_pp",
    "xgrad_cam",
    "layer_cam",
    "score_cam",
    "fast_score_cam",
    "guided_grad_cam",
    "LRP",
    "lrp",
    "IntegratedGradients",
    "integrated_gradients",
    "completeness_delta",
    "Occlusion",
    "occlusion",
]
