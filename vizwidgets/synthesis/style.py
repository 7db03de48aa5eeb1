"""Neural style transfer (Gatys, Ecker & Bethge 2016, "Image Style Transfer Using
Convolutional Neural Networks", CVPR) and feature inversion (Mahendran & Vedaldi 2015,
"Understanding Deep Image Representations by Inverting Them", CVPR).

For a layer with ``C`` channels and ``M = H W`` positions let ``F`` be its output reshaped to
``(C, M)``. Then, with ``P`` the content image's features and ``A`` the style image's Gram
matrix:

- Gram matrix: ``G = F F^T / M`` (``C x C``; the correlations between channels, which keep the
  textures and colours and forget where things are). Gatys et al. leave out ``/ M``.
- content loss: ``L_content = mean((F - P)^2)`` over the ``C M`` values (Gatys: ``1/2 sum``;
  the mean makes the weight independent of the layer size).
- style loss of one layer: ``E = sum((G - A)^2) / (4 C^2)``, which is Gatys et al.'s
  ``1 / (4 C^2 M^2) sum((F F^T - A')^2)`` written with the ``/ M`` Gram; the style loss is
  ``sum_l w_l E_l``.
- total variation: ``TV(x)`` of :func:`vizwidgets._ops.total_variation` (``beta = 2``).
- total: ``content_weight * L_content + style_weight * L_style + tv_weight * TV``.

The image starts as the content photo (or noise) and is optimised in pixel space with Adam or
L-BFGS, clamped to [0, 1] after every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from vizwidgets._hooks import capture_outputs, get_module
from vizwidgets._ops import total_variation
from vizwidgets.attribution.base import prepared
from vizwidgets.synthesis._common import (
    MAX_LR,
    Callback,
    ImageResult,
    PixelModel,
    check_positive,
    check_seed,
    check_steps,
    finite_or_stop,
    generator,
    pixel_model,
    run_loop,
    to_pixels,
)

__all__ = [
    "StylePreset",
    "STYLE_PRESETS",
    "StyleResult",
    "gram_matrix",
    "content_loss",
    "style_loss",
    "style_transfer",
    "invert_features",
    "InversionResult",
    "MAX_LOSS_WEIGHT",
]

#: The largest weight of a loss term. The course's slider goes to 1e6; the three losses are of
#: order 1e-3 to 1e2, so 1e9 keeps every weighted loss far inside float32 (3.4e38), while
#: 1e300 overflowed and returned a NaN image. Only the ratios of the weights matter to Adam.
MAX_LOSS_WEIGHT: float = 1e9


@dataclass(frozen=True)
class StylePreset:
    """Which layers carry content and which carry style, with the style layers' weights."""

    content: tuple[str, ...]
    style: tuple[str, ...]
    style_weights: tuple[float, ...]
    why: str


#: Layer presets by model name. Each style layer is the first rectified output at one
#: resolution; the content layer sits at 1/8 of the input resolution, as conv4_2 does in VGG.
STYLE_PRESETS: dict[str, StylePreset] = {
    "efficientnet_lite0": StylePreset(
        content=("blocks.4.depthwise",),
        style=("stem", "blocks.1.depthwise", "blocks.3.depthwise", "blocks.5.depthwise", "blocks.11.depthwise"),
        style_weights=(1.0, 1.0, 1.0, 1.0, 1.0),
        why=(
            "style: the first ReLU6 output at each resolution (112, 56, 28, 14 and 7 pixels for "
            "a 224 input: the stem, then the strided depthwise convolution that opens each "
            "stage), like Gatys et al.'s conv1_1 ... conv5_1; content: blocks.4's depthwise "
            "output at 28 x 28 (1/8), where shapes are kept but exact pixel values are not"
        ),
    ),
    "vgg19": StylePreset(
        content=("features.22",),
        style=("features.1", "features.6", "features.11", "features.20", "features.29"),
        style_weights=(1.0, 1.0, 1.0, 1.0, 1.0),
        why="Gatys et al. 2016: relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 for style, relu4_2 for content",
    ),
    "vgg16": StylePreset(
        content=("features.20",),
        style=("features.1", "features.6", "features.11", "features.18", "features.25"),
        style_weights=(1.0, 1.0, 1.0, 1.0, 1.0),
        why="the VGG-16 layers that correspond to Gatys et al.'s choice for VGG-19 (relu1_1 ... relu5_1, relu4_2)",
    ),
}

OPTIMIZERS = ("adam", "lbfgs")


def gram_matrix(features: Tensor) -> Tensor:
    """``G = F F^T / (H W)`` per image: ``(N, C, H, W)`` -> ``(N, C, C)``."""
    if not isinstance(features, Tensor) or features.dim() != 4:
        shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
        raise ValueError(f"gram_matrix expects features (N, C, H, W), got {shape}")
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (h * w)


def content_loss(features: Tensor, target: Tensor) -> Tensor:
    """``mean((F - P)^2)`` per image, ``(N,)``."""
    if features.shape[1:] != target.shape[1:]:
        raise ValueError(f"content features {tuple(features.shape)} and target {tuple(target.shape)} differ in shape")
    return (features - target).pow(2).flatten(1).mean(dim=1)


def style_loss(features: Tensor, target_gram: Tensor) -> Tensor:
    """``sum((G - A)^2) / (4 C^2)`` per image, ``(N,)``, ``G`` the Gram matrix of ``features``."""
    gram = gram_matrix(features)
    c = gram.shape[-1]
    if target_gram.shape[-2:] != (c, c):
        raise ValueError(f"target Gram matrix {tuple(target_gram.shape)} does not match {c} channels")
    return (gram - target_gram).pow(2).sum(dim=(1, 2)) / (4 * c * c)


@dataclass
class StyleResult(ImageResult):
    """The result of :func:`style_transfer`.

    Attributes
    ----------
    image:
        ``(1, 3, H, W)`` pixels in [0, 1].
    losses:
        Per step, ``{"total", "content", "style", "tv"}`` (weighted as in the total).
    start_loss, final_loss:
        The total loss of the starting image and of the result.
    preset:
        The layers used.
    steps, interrupted:
        Steps done; whether ``KeyboardInterrupt`` stopped the loop.
    """

    image: Tensor
    losses: list[dict[str, float]] = field(repr=False)
    start_loss: float
    final_loss: float
    preset: StylePreset
    steps: int
    interrupted: bool = False


def _preset(pm: PixelModel, preset: StylePreset | str | None) -> StylePreset:
    if isinstance(preset, StylePreset):
        chosen = preset
    else:
        key = pm.name if preset is None else preset
        if key not in STYLE_PRESETS:
            raise ValueError(
                f"no style-transfer layer preset for {key!r}; presets exist for {sorted(STYLE_PRESETS)}. "
                "Pass preset=StylePreset(content=(...), style=(...), style_weights=(...), why='...')"
            )
        chosen = STYLE_PRESETS[key]
    if len(chosen.style_weights) != len(chosen.style):
        raise ValueError(f"{len(chosen.style)} style layers but {len(chosen.style_weights)} style weights")
    for name in (*chosen.content, *chosen.style):
        get_module(pm.module, name)
    return chosen


def _features(pm: PixelModel, image: Tensor, names: Sequence[str]) -> dict[str, Tensor]:
    with capture_outputs(pm.module, list(names)) as outputs:
        pm(image)
    return {name: outputs[name] for name in names}


def _image_pair(pm: PixelModel, content: Any, style: Any) -> tuple[Tensor, Tensor]:
    x = to_pixels(pm, content, "content")
    if x.shape[0] != 1:
        raise ValueError(f"content must be one image, got a batch of {x.shape[0]}")
    if isinstance(style, Tensor):
        s = to_pixels(pm, style, "style")
        if s.shape[-2:] != x.shape[-2:]:
            raise ValueError(
                f"the style image is {tuple(s.shape[-2:])} pixels but the content image "
                f"{tuple(x.shape[-2:])}; resize it (torch.nn.functional.interpolate) or pass the "
                "style image by name, path or PIL image, which is resized for you"
            )
    else:
        s = to_pixels(pm, style, "style")
    if s.shape[0] != 1:
        raise ValueError(f"style must be one image, got a batch of {s.shape[0]}")
    return x, s


def style_transfer(
    model: Any,
    content: Any,
    style: Any,
    *,
    steps: int = 200,
    optimizer: str = "adam",
    lr: float | None = None,
    content_weight: float = 1.0,
    style_weight: float = 1e3,
    tv_weight: float = 1.0,
    preset: StylePreset | str | None = None,
    init: str = "content",
    seed: int | None = 0,
    progress: bool = True,
    callback: Callback | None = None,
) -> StyleResult:
    """Paint ``content`` in the style of ``style`` (Gatys et al. 2016; see the module docstring).

    Parameters
    ----------
    model:
        A :class:`~vizwidgets.models.LoadedModel`; the layer preset is chosen by its name
        (:data:`STYLE_PRESETS`) unless ``preset`` is given.
    content, style:
        One image each: a name, path, PIL image or a ``(1, 3, H, W)`` pixel tensor in [0, 1].
        Images are resized to the model's input size; a style *tensor* must already have the
        content's size.
    steps:
        Optimiser steps (for L-BFGS: iterations, one function evaluation each, plus those of
        its first step).
    optimizer:
        ``"adam"`` (default) or ``"lbfgs"``.
    lr:
        Learning rate; default 0.02 for Adam (pixel units) and 1 for L-BFGS.
    content_weight, style_weight, tv_weight:
        The weights of the three losses, each from 0 to :data:`MAX_LOSS_WEIGHT` (1e9). Should
        the loss or the image still become non-finite, the loop stops with a
        ``RuntimeWarning`` and returns the last finite image.
    preset:
        A :class:`StylePreset` or the name of one; default: the model's.
    init:
        ``"content"`` (start from the photo) or ``"noise"`` (uniform noise, seeded).
    """
    pm = pixel_model(model)
    steps = check_steps(steps)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {optimizer!r}")
    lr = check_positive(lr if lr is not None else (0.02 if optimizer == "adam" else 1.0), "lr", maximum=MAX_LR)
    weights = {
        "content": check_positive(content_weight, "content_weight", zero=True, maximum=MAX_LOSS_WEIGHT),
        "style": check_positive(style_weight, "style_weight", zero=True, maximum=MAX_LOSS_WEIGHT),
        "tv": check_positive(tv_weight, "tv_weight", zero=True, maximum=MAX_LOSS_WEIGHT),
    }
    seed = check_seed(seed)
    if init not in ("content", "noise"):
        raise ValueError(f"init must be 'content' or 'noise', got {init!r}")
    chosen = _preset(pm, preset)
    x, s = _image_pair(pm, content, style)
    layers = list(dict.fromkeys((*chosen.content, *chosen.style)))

    with prepared(pm.module):
        with torch.no_grad():
            content_targets = {k: v.detach() for k, v in _features(pm, x, chosen.content).items()}
            style_targets = {k: gram_matrix(v).detach() for k, v in _features(pm, s, chosen.style).items()}
        start = x.clone() if init == "content" else torch.rand(x.shape, generator=generator(seed)).to(x.device)
        image = start.requires_grad_(True)

        def losses(img: Tensor) -> dict[str, Tensor]:
            feats = _features(pm, img, layers)
            parts = {
                "content": sum(content_loss(feats[n], content_targets[n])[0] for n in chosen.content),
                "style": sum(
                    w * style_loss(feats[n], style_targets[n])[0] for n, w in zip(chosen.style, chosen.style_weights)
                ),
                "tv": total_variation(img)[0],
            }
            weighted = {k: weights[k] * v for k, v in parts.items()}
            weighted["total"] = sum(weighted.values())
            return weighted  # type: ignore[return-value]

        with torch.no_grad():
            start_loss = float(losses(image)["total"])
        trace: list[dict[str, float]] = []
        if optimizer == "adam":
            opt: torch.optim.Optimizer = torch.optim.Adam([image], lr=lr)
        else:
            opt = torch.optim.LBFGS([image], lr=lr, max_iter=1, history_size=20)

        def step(i: int) -> dict[str, float] | None:
            record: dict[str, float] = {}
            previous = image.detach().clone()

            def closure() -> Tensor:
                opt.zero_grad(set_to_none=True)
                parts = losses(image)
                parts["total"].backward()
                record.update({k: float(v.detach()) for k, v in parts.items()})
                return parts["total"]

            # torch annotates the closure as returning a float; LBFGS takes the loss tensor it documents
            opt.step(closure)  # type: ignore[arg-type]
            with torch.no_grad():
                image.clamp_(0.0, 1.0)
            if not finite_or_stop(record, image.detach(), previous, "style transfer", i):
                return None
            trace.append(record)
            return {"loss": record["total"]}

        done, interrupted = run_loop(
            pm.module, steps, step, desc="style transfer", progress=progress, callback=callback,
            current=lambda: image.detach(),
        )
        with torch.no_grad():
            final_loss = float(losses(image)["total"])
    return StyleResult(image.detach(), trace, start_loss, final_loss, chosen, done, interrupted)


@dataclass
class InversionResult(ImageResult):
    """The result of :func:`invert_features`: ``image`` ``(1, 3, H, W)``, the per-step
    ``losses``, the relative feature distance of the start and the end, steps done."""

    image: Tensor
    losses: list[float] = field(repr=False)
    start_distance: float
    final_distance: float
    layer: str
    steps: int
    interrupted: bool = False


def invert_features(
    model: Any,
    image: Any,
    layer: str,
    *,
    steps: int = 200,
    lr: float = 0.05,
    tv_weight: float = 0.5,
    seed: int | None = 0,
    progress: bool = True,
    callback: Callback | None = None,
) -> InversionResult:
    """Feature inversion (Mahendran & Vedaldi 2015): the image whose ``layer`` output is
    closest to ``image``'s, starting from noise.

    Minimises ``||phi(y) - phi(x)||^2 / ||phi(x)||^2 + tv_weight * TV(y)`` over pixels ``y``
    with Adam, clamped to [0, 1]. Deeper layers keep less of the picture: what comes back
    shows what the layer has kept.
    """
    pm = pixel_model(model)
    steps = check_steps(steps)
    lr = check_positive(lr, "lr", maximum=MAX_LR)
    tv_weight = check_positive(tv_weight, "tv_weight", zero=True, maximum=MAX_LOSS_WEIGHT)
    seed = check_seed(seed)
    get_module(pm.module, layer)
    x = to_pixels(pm, image)
    if x.shape[0] != 1:
        raise ValueError(f"image must be one image, got a batch of {x.shape[0]}")
    with prepared(pm.module):
        with torch.no_grad():
            target = _features(pm, x, [layer])[layer].detach()
        if not isinstance(target, Tensor):
            raise ValueError(f"layer {layer!r} does not output a tensor")
        norm = target.pow(2).sum().clamp(min=1e-12)
        y = torch.rand(x.shape, generator=generator(seed)).to(x.device).requires_grad_(True)
        opt = torch.optim.Adam([y], lr=lr)
        trace: list[float] = []

        def distance(img: Tensor) -> Tensor:
            return (_features(pm, img, [layer])[layer] - target).pow(2).sum() / norm

        with torch.no_grad():
            start = float(distance(y))

        def step(i: int) -> dict[str, float] | None:
            previous = y.detach().clone()
            opt.zero_grad(set_to_none=True)
            d = distance(y)
            loss = d + tv_weight * total_variation(y)[0]
            loss.backward()
            opt.step()
            with torch.no_grad():
                y.clamp_(0.0, 1.0)
            if not finite_or_stop({"loss": float(loss.detach())}, y.detach(), previous, f"invert {layer}", i):
                return None
            trace.append(float(d.detach()))
            return {"distance": trace[-1]}

        done, interrupted = run_loop(
            pm.module, steps, step, desc=f"invert {layer}", progress=progress, callback=callback,
            current=lambda: y.detach(),
        )
        with torch.no_grad():
            final = float(distance(y))
    return InversionResult(y.detach(), trace, start, final, layer, done, interrupted)
