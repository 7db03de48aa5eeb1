"""The peer libraries' versions of our attribution methods, run on the same model object.

Why: the attribution benchmark times each of our methods against what a user of captum,
pytorch-grad-cam, torch-cam or zennit would run instead, and ``tests/test_peers.py`` checks that
where a peer computes the same quantity it gets the same numbers. Both need the peers called
the way their documentation calls them, on *our* ``nn.Module`` (not a copy: the benchmark
alternates our method and the peer's on one object), returning something comparable with our
raw maps. That is this module:

``peer_runs(model, x, target, layer=None)`` returns ``{our method name: {peer label:
callable}}``; each callable takes no argument, runs the peer's whole computation on ``x`` for
class ``target`` and returns a float tensor, shaped like our result wherever the peer allows
(``(N, 3, H, W)`` for pixel methods, ``(N, 1, H, W)`` for maps). A peer that is not installed
is left out. What each peer returns, and how it is converted, is in the docstring of the
function that builds its callables (:func:`captum_runs`, :func:`grad_cam_runs`,
:func:`torch_cam_runs`, :func:`zennit_runs`).

Where a peer differs from us in definition (not only in numerics), its builder says so; in short:

- captum's guided backpropagation and deconvnet (and so its Guided Grad-CAM) override the
  backward pass of ``nn.ReLU`` modules only; EfficientNet-Lite0's rectifiers are ``nn.ReLU6``
  (a ``Hardtanh``), so there captum returns the plain gradient (times Grad-CAM);
- captum's Occlusion slides its last window past the edge when the stride does not divide
  ``side - window`` (ours moves it back inside); its Guided Grad-CAM upsamples with "nearest"
  unless told "bilinear" (done here);
- pytorch-grad-cam returns maps scaled to [0, 1] (min-max); its Grad-CAM++ adds 1e-6 to the
  alpha denominator; its Score-CAM weights are a softmax *over channels* of the masked images'
  target logits (ours: the class probability of each masked image), with masks upsampled with
  ``align_corners=True``;
- torch-cam's Score-CAM uses the same softmax over channels (of the logit gain), with masks
  normalised before upsampling; its Grad-CAM++ weights differ from the paper's (see
  :func:`torch_cam_runs`);
- zennit has the same LRP rules; :func:`zennit_composite` rebuilds each of our composites from
  them (the ``"zennit (vizwidgets <preset>)"`` label), and ``"zennit EpsilonGammaBox"`` is the
  stock composite (z^B first layer, gamma on every other convolution, epsilon 1e-6 on dense
  layers), the closest preset to our "gamma" one. zennit's own BatchNorm folding leaves each
  BatchNorm computing ``x / sqrt(1 + eps)`` (EfficientNet-Lite0: eps = 1e-3), which moves the
  map by about 1 %; the rebuilt composites fold exactly (:func:`_exact_merge_batchnorm`), the
  stock one as zennit does.

The callables leave the model as they found it (mode, ``requires_grad``, ``.grad``, hooks,
modules, parameters). All peers but pytorch-grad-cam restore what they change; pytorch-grad-cam
sets ``model.eval()`` on every call and fills ``.grad`` of anything that requires it, so its
callables run inside :func:`as_found`. zennit's BatchNorm canonizer changes parameter values *in
place* during a call (and puts them back after it), so do not run another method on the same
model from another thread at the same time. The peers run on the model's parameters as they
are: a model whose parameters are frozen (``vizwidgets.load_model()``'s) needs an input that
requires grad for the peers that read a layer's gradient through hooks, which is what their
callables pass (a detached copy of ``x``; ``x`` itself is never changed).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vizwidgets.attribution.baselines import make_baseline
from vizwidgets.models import ModelAdapter, adapt

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PeerRun",
    "Runs",
    "as_found",
    "captum_runs",
    "grad_cam_runs",
    "peer_runs",
    "random_vgg16",
    "torch_cam_runs",
    "zennit_composite",
    "zennit_runs",
]

#: A peer's whole computation on fixed inputs: no arguments, returns a float tensor.
PeerRun = Callable[[], Tensor]
#: ``{our method name: {peer label: callable}}``.
Runs = dict[str, dict[str, PeerRun]]

#: torchvision's ImageNet normalisation, in [0, 1] pixel units (for :func:`random_vgg16`).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# our defaults, repeated here so the peers run with the same settings
_IG_STEPS = 50
_IG_CHUNK = 5
_SMOOTHGRAD_SAMPLES = 25
_SMOOTHGRAD_NOISE = 0.15
_SMOOTHGRAD_CHUNK = 8
_OCCLUSION_WINDOW = 32
_OCCLUSION_CHUNK = 4
_LRP_EPSILON = 0.25
_LRP_GAMMA = 0.25

_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
)


def peer_runs(
    model: Any,
    x: Tensor,
    target: int,
    layer: str | None = None,
    *,
    methods: Collection[str] | None = None,
    lrp_composite: str = "default",
) -> Runs:
    """Every installed peer's callables for ``x`` and class ``target``, by our method name.

    ``model`` is anything :func:`vizwidgets.models.adapt` takes (a ``LoadedModel``, or an
    adapter with ``mean`` and ``std`` for a bare module such as :func:`random_vgg16`'s);
    ``layer`` is the CAM layer (default: the model's default layer); ``methods`` limits the
    result to those of our method names (default: all); ``lrp_composite`` is the preset of
    ours that :func:`zennit_composite` mirrors. Integrated Gradients and LRP need the model's
    normalisation (the black baseline, the z^B bounds) and are left out without it.
    """
    adapter = adapt(model)
    layer = layer if layer is not None else adapter.default_layer
    runs: Runs = {}
    for build in (captum_runs, grad_cam_runs, torch_cam_runs):
        for method, peers in build(adapter, x, target, layer, methods=methods).items():
            runs.setdefault(method, {}).update(peers)
    for method, peers in zennit_runs(adapter, x, target, methods=methods, composite=lrp_composite).items():
        runs.setdefault(method, {}).update(peers)
    return runs


# ----------------------------------------------------------------------------- model hygiene


@contextmanager
def as_found(model: nn.Module) -> Iterator[None]:
    """Put back, when the block ends, what a peer changes on ``model`` and leaves changed.

    Restored: every module's ``training`` flag, every parameter's ``requires_grad`` and
    ``.grad`` (the tensor object it had, or None), and the module and parameter slots of every
    module (a peer that swaps modules); hooks registered on a module during the block and still
    there are removed. Parameter *values* changed in place cannot be put back here.
    """
    modules = list(model.modules())
    training = [module.training for module in modules]
    parameters = list(model.parameters())
    requires_grad = [parameter.requires_grad for parameter in parameters]
    grads = [parameter.grad for parameter in parameters]
    slots = [(dict(module._modules), dict(module._parameters)) for module in modules]
    hooks = [{name: set(getattr(module, name, {})) for name in _HOOK_DICTS} for module in modules]
    try:
        yield
    finally:
        for module, flag, (children, params), before in zip(modules, training, slots, hooks):
            module.training = flag
            for slot, before_slot in ((module._modules, children), (module._parameters, params)):
                if not _same_objects(slot, before_slot):
                    slot.clear()
                    slot.update(before_slot)
            for name, keys in before.items():
                registered = getattr(module, name, None)
                if registered is not None:
                    for key in set(registered) - keys:
                        del registered[key]
        for parameter, flag, grad in zip(parameters, requires_grad, grads):
            parameter.requires_grad_(flag)
            parameter.grad = grad


def _same_objects(now: dict[str, Any], before: dict[str, Any]) -> bool:
    """Whether two name -> object dictionaries hold the very same objects (``==`` on tensors
    would compare values)."""
    return now.keys() == before.keys() and all(now[key] is before[key] for key in now)


def _wanted(methods: Collection[str] | None, name: str) -> bool:
    return methods is None or name in methods


def _upsampled(maps: Tensor, x: Tensor) -> Tensor:
    """``(N, 1, h, w)`` maps resized to ``x``'s ``(H, W)`` as ours are (bilinear, no corner
    alignment)."""
    if tuple(maps.shape[-2:]) == tuple(x.shape[-2:]):
        return maps
    return F.interpolate(maps, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)


def _leaf(x: Tensor) -> Tensor:
    """A detached copy of ``x``'s values that requires grad: what a peer may mark or fill."""
    return x.detach().clone().requires_grad_(True)


# ----------------------------------------------------------------------------- captum


def captum_runs(
    adapter: ModelAdapter, x: Tensor, target: int, layer: str | None, *, methods: Collection[str] | None = None
) -> Runs:
    """captum's attribution classes, called with our defaults; empty without captum.

    Each returns what captum's ``attribute`` returns, a tensor shaped like the inputs
    ``(N, 3, H, W)``, except where noted:

    - gradient: ``Saliency(...).attribute(x, target, abs=False)``, the signed gradient (captum's
      default ``abs=True`` returns its absolute value);
    - gradient_x_input: ``InputXGradient``;
    - smoothgrad: ``NoiseTunnel(Saliency)`` with ``nt_type="smoothgrad"``, 25 samples, 8 per
      batch, ``stdevs = 0.15 * (max(x) - min(x))`` (ours: per image; captum: one number per input
      tensor, the same for N = 1), ``abs=False``; captum draws its own noise, so the maps agree
      only in expectation;
    - guided_backprop, deconvnet: ``GuidedBackprop``, ``Deconvolution``. Both override only
      ``nn.ReLU`` modules (captum's ``_register_hooks``): on EfficientNet-Lite0, whose rectifiers
      are ``nn.ReLU6``, they return the plain gradient. Equal to ours on ReLU networks (VGG16);
    - grad_cam: ``LayerGradCam(...).attribute(x, target, relu_attributions=True)``, ``(N, 1, h,
      w)``, then ``LayerAttribution.interpolate(..., (H, W), "bilinear")`` (``F.interpolate``
      without corner alignment, as ours) to ``(N, 1, H, W)``;
    - guided_grad_cam: ``GuidedGradCam(...).attribute(x, target, interpolate_mode="bilinear")``
      (captum's default is "nearest"); its guided part is captum's ``GuidedBackprop`` above;
    - integrated_gradients: ``IntegratedGradients`` with ``n_steps=50``,
      ``method="gausslegendre"`` and our black baseline (``make_baseline(x, "black", mean,
      std)``), once with captum's default ``internal_batch_size=None`` (all 50 path points in
      one forward+backward pass: about 4 GB for one 224 x 224 image on EfficientNet-Lite0, some
      80 MB per path point) and once with ``internal_batch_size=5`` (our chunk size). Needs the
      model's normalisation;
    - occlusion: ``Occlusion`` with ``sliding_window_shapes=(C, 32, 32)``, ``strides=(C, 16,
      16)``, ``baselines=0`` (the preprocessed 0: our ``fill=None``) and
      ``perturbations_per_eval=4``; the window spans the channels, so captum's ``(N, C, H, W)``
      has C equal channels and channel 0 is returned, ``(N, 1, H, W)``. Captum's window
      positions are ``0, s, 2s, ...`` up to ``ceil((H - k) / s)`` steps, the last one cut at the
      edge when ``s`` does not divide ``H - k`` (224 and 32/16: it does, and the maps agree).
    """
    try:
        from captum.attr import (
            Deconvolution,
            GuidedBackprop,
            GuidedGradCam,
            InputXGradient,
            IntegratedGradients,
            LayerAttribution,
            LayerGradCam,
            NoiseTunnel,
            Occlusion,
            Saliency,
        )
    except ImportError:
        return {}
    module = adapter.module
    runs: Runs = {}

    def add(method: str, label: str, run: PeerRun) -> None:
        if _wanted(methods, method):
            runs.setdefault(method, {})[label] = run

    add("gradient", "captum Saliency", lambda: Saliency(module).attribute(x, target=target, abs=False))
    add("gradient_x_input", "captum InputXGradient", lambda: InputXGradient(module).attribute(x, target=target))

    def smoothgrad() -> Tensor:
        sigma = _SMOOTHGRAD_NOISE * float(x.max() - x.min())
        return NoiseTunnel(Saliency(module)).attribute(
            x, nt_type="smoothgrad", nt_samples=_SMOOTHGRAD_SAMPLES, nt_samples_batch_size=_SMOOTHGRAD_CHUNK,
            stdevs=sigma, target=target, abs=False,
        )

    add("smoothgrad", "captum NoiseTunnel(Saliency)", smoothgrad)
    add("guided_backprop", "captum GuidedBackprop", lambda: GuidedBackprop(module).attribute(x, target=target))
    add("deconvnet", "captum Deconvolution", lambda: Deconvolution(module).attribute(x, target=target))
    if layer is not None:
        layer_module = module.get_submodule(layer)

        def grad_cam() -> Tensor:
            maps = LayerGradCam(module, layer_module).attribute(x, target=target, relu_attributions=True)
            return LayerAttribution.interpolate(maps, tuple(x.shape[-2:]), interpolate_mode="bilinear")

        def guided_grad_cam() -> Tensor:
            return GuidedGradCam(module, layer_module).attribute(x, target=target, interpolate_mode="bilinear")

        add("grad_cam", "captum LayerGradCam", grad_cam)
        add("guided_grad_cam", "captum GuidedGradCam", guided_grad_cam)
    if adapter.mean is not None and adapter.std is not None:
        mean, std = adapter.mean, adapter.std

        def integrated(batch: int | None) -> PeerRun:
            def run() -> Tensor:
                baseline = make_baseline(x, "black", mean=mean, std=std)
                return IntegratedGradients(module).attribute(
                    x, baselines=baseline, target=target, n_steps=_IG_STEPS, method="gausslegendre",
                    internal_batch_size=batch,
                )

            return run

        add("integrated_gradients", "captum IntegratedGradients (internal_batch_size=None)", integrated(None))
        add("integrated_gradients", f"captum IntegratedGradients (internal_batch_size={_IG_CHUNK})",
            integrated(_IG_CHUNK))

    def occlusion() -> Tensor:
        channels = x.shape[1]
        window = min(_OCCLUSION_WINDOW, *x.shape[-2:])
        stride = max(1, window // 2)
        maps = Occlusion(module).attribute(
            x, sliding_window_shapes=(channels, window, window), strides=(channels, stride, stride), baselines=0.0,
            target=target, perturbations_per_eval=_OCCLUSION_CHUNK,
        )
        return maps[:, :1]

    add("occlusion", "captum Occlusion", occlusion)
    return runs


# ----------------------------------------------------------------------------- pytorch-grad-cam


def grad_cam_runs(
    adapter: ModelAdapter, x: Tensor, target: int, layer: str | None, *, methods: Collection[str] | None = None
) -> Runs:
    """pytorch-grad-cam's CAM classes on ``layer``; empty without pytorch-grad-cam or a layer.

    ``with Class(model=module, target_layers=[layer]) as cam: cam(input_tensor,
    targets=[ClassifierOutputTarget(target)] * N)`` returns a NumPy array ``(N, H, W)``: each map
    ``ReLU(sum_k w_k A_k)`` min-max normalised at the layer's resolution, resized to ``(H, W)``
    with ``cv2.resize`` (bilinear, half-pixel centres as ours) and min-max normalised again
    (``(M - min M) / (1e-7 + max(M - min M))`` both times): in all, the upsampled map scaled to
    [0, 1]. Returned here as a float tensor ``(N, 1, H, W)``. Where the weights agree (Grad-CAM,
    Layer-CAM, XGrad-CAM, whose ``1e-7`` in the share's denominator is negligible) that is our
    map scaled to [0, 1]. Grad-CAM++ adds ``1e-6`` to the alpha denominator
    ``2 G^2 + sum_ab A_kab G^3``, which is not negligible for gradients of order 1e-3 (the map
    moves by 5 % of its range at the head of EfficientNet-Lite0, 47 % at blocks.10).
    Score-CAM weights differ in definition: ``softmax_k(S_c(x * H_k))`` over the channels
    (ours: ``softmax_classes(S(x * H_k))_c`` per channel), with ``H_k`` upsampled by
    ``nn.UpsamplingBilinear2d`` (``align_corners=True``); it builds all masked images at once
    (``(N, K, 3, H, W)``: 770 MB for 1280 channels at 224 x 224), runs them 16 at a time and
    shows a tqdm progress bar.

    The gradient methods hook the layer's output gradient, which exists only when something
    before the layer requires grad: with frozen parameters, the input does (a detached copy of
    ``x``). pytorch-grad-cam calls ``model.eval()`` and ``loss.backward()``; :func:`as_found`
    puts the modes and ``.grad`` back.
    """
    if layer is None:
        return {}
    try:
        from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM, XGradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except ImportError:
        return {}
    module = adapter.module
    layer_module = module.get_submodule(layer)
    runs: Runs = {}

    def make(cls: type, gradients: bool) -> PeerRun:
        def run() -> Tensor:
            inputs = _leaf(x) if gradients else x
            targets = [ClassifierOutputTarget(target)] * x.shape[0]
            with as_found(module), cls(model=module, target_layers=[layer_module]) as cam:
                maps = cam(input_tensor=inputs, targets=targets)
            return torch.from_numpy(maps)[:, None].to(x.device)

        return run

    for method, cls, gradients in (
        ("grad_cam", GradCAM, True),
        ("grad_cam_pp", GradCAMPlusPlus, True),
        ("xgrad_cam", XGradCAM, True),
        ("layer_cam", LayerCAM, True),
        ("score_cam", ScoreCAM, False),
    ):
        if _wanted(methods, method):
            runs.setdefault(method, {})[f"pytorch-grad-cam {cls.__name__}"] = make(cls, gradients)
    return runs


# ----------------------------------------------------------------------------- torch-cam


def torch_cam_runs(
    adapter: ModelAdapter, x: Tensor, target: int, layer: str | None, *, methods: Collection[str] | None = None
) -> Runs:
    """torch-cam's CAM extractors on ``layer``; empty without torch-cam or a layer.

    ``with Extractor(module, layer) as extractor: scores = module(x); maps =
    extractor(class_idx=target, scores=scores, normalized=False)`` returns a list with one
    ``(N, h, w)`` map at the layer's resolution, ReLU applied (not for CAM); returned here
    upsampled like ours, ``(N, 1, H, W)``. Gradient extractors need the layer's output to
    require grad (with frozen parameters: the input, a detached copy of ``x``); Score-CAM runs
    the user's forward under ``torch.no_grad()``.

    - CAM (``fc_layer`` the last ``nn.Linear``; only for a layer whose last convolution has as
      many channels as that layer has inputs, the layer that feeds the pooling), Grad-CAM,
      XGrad-CAM (``1e-8`` added to the share's denominator) and Layer-CAM compute our
      quantities;
    - Grad-CAM++: ``alpha[mask].div_(...)`` divides a copy made by boolean indexing, so alpha
      stays ``G^2`` and the weights are ``sum_ij G^2 ReLU(G)``; not the paper's (ours);
    - Score-CAM: weights ``softmax_k(S_c(x * H_k) - S_c(x))`` over the channels, ``H_k`` the
      feature map min-max normalised at the layer's resolution, then upsampled (bilinear, no
      corner alignment), 32 masked images per pass. Ours: the class probability of each masked
      image, masks normalised after upsampling.
    """
    if layer is None:
        return {}
    try:
        from torchcam.methods import CAM, GradCAM, GradCAMpp, LayerCAM, ScoreCAM, XGradCAM
    except ImportError:
        return {}
    module = adapter.module
    runs: Runs = {}
    dense = [child for child in module.modules() if isinstance(child, nn.Linear)]
    convolutions = [child for child in module.get_submodule(layer).modules() if isinstance(child, nn.Conv2d)]
    # CAM needs the layer that feeds the pooling and the classifier (ours raises otherwise)
    feeds_classifier = bool(dense and convolutions) and convolutions[-1].out_channels == dense[-1].in_features

    def gradient_based(cls: type) -> PeerRun:
        def run() -> Tensor:
            with cls(module, layer) as extractor:
                scores = module(_leaf(x))
                maps = extractor(class_idx=target, scores=scores, normalized=False)
            return _upsampled(maps[0][:, None].detach(), x)

        return run

    def score_cam() -> Tensor:
        with ScoreCAM(module, layer) as extractor:
            with torch.no_grad():
                module(x)
            maps = extractor(class_idx=target, normalized=False)
        return _upsampled(maps[0][:, None], x)

    def cam() -> Tensor:
        with CAM(module, layer, fc_layer=dense[-1]) as extractor:
            with torch.no_grad():
                module(x)
            maps = extractor(class_idx=target, normalized=False)
        return _upsampled(maps[0][:, None], x)

    for method, run in (
        ("grad_cam", gradient_based(GradCAM)),
        ("grad_cam_pp", gradient_based(GradCAMpp)),
        ("xgrad_cam", gradient_based(XGradCAM)),
        ("layer_cam", gradient_based(LayerCAM)),
        ("score_cam", score_cam),
        ("cam", cam if feeds_classifier else None),
    ):
        if run is not None and _wanted(methods, method):
            runs.setdefault(method, {})["torch-cam " + _TORCH_CAM_NAMES[method]] = run
    return runs


_TORCH_CAM_NAMES = {
    "grad_cam": "GradCAM",
    "grad_cam_pp": "GradCAMpp",
    "xgrad_cam": "XGradCAM",
    "layer_cam": "LayerCAM",
    "score_cam": "ScoreCAM",
    "cam": "CAM",
}


# ----------------------------------------------------------------------------- zennit


class _StopForward(Exception):
    """Raised by a pre-hook to end a forward pass once the input it wanted is seen."""


def _first_layer_input(module: nn.Module, first: nn.Module, image: Tensor) -> Tensor:
    """What ``first`` receives when ``module`` is given ``image``; the rest of the pass is skipped."""
    seen: dict[str, Tensor] = {}

    def hook(_: nn.Module, args: tuple[Any, ...]) -> None:
        seen["input"] = args[0].detach()
        raise _StopForward

    handle = first.register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            module(image)
    except _StopForward:
        pass
    finally:
        handle.remove()
    if "input" not in seen:
        raise ValueError(f"the model's first layer ({type(first).__name__}) did not run")
    return seen["input"]


def _box_bounds(adapter: ModelAdapter, x: Tensor, first: nn.Module) -> tuple[Tensor, Tensor]:
    """The z^B bounds as the first layer sees them, ``(1, C, H', W')`` each.

    The pixel box ``[-mean/std, (1 - mean)/std]`` fed through what comes before the first
    layer: for EfficientNet-Lite0 the stem's "same" zero padding, which puts zeros in the bounds
    of the padded row and column, so that zennit's z^B rule treats them as fixed zeros, as our
    merged padding does. For a convolution that pads itself (VGG16) nothing changes.
    """
    assert adapter.bounds is not None
    low, high = adapter.bounds.low, adapter.bounds.high
    shape = (1, x.shape[1], *x.shape[-2:])
    low_image = torch.tensor(low, dtype=x.dtype, device=x.device).view(1, -1, 1, 1).expand(shape)
    high_image = torch.tensor(high, dtype=x.dtype, device=x.device).view(1, -1, 1, 1).expand(shape)
    return _first_layer_input(adapter.module, first, low_image), _first_layer_input(adapter.module, first, high_image)


def _sum_canonizer() -> Any:
    """A zennit ``AttributeCanonizer`` for :class:`vizwidgets.nn.Sum` (EfficientNet-Lite0's
    residual additions): during a call each ``Sum`` stacks its inputs on a new last axis and
    sums them with a ``zennit.layer.Sum`` child, which zennit's composites give the ``Norm``
    rule, as zennit's own ``ResNetCanonizer`` does for torchvision ResNets. Without it the
    addition would pass its full relevance to both inputs. ``remove()`` deletes both attributes.
    """
    from zennit.canonizers import AttributeCanonizer
    from zennit.layer import Sum as ZennitSum

    from vizwidgets.nn import Sum

    def forward(self: nn.Module, *inputs: Tensor) -> Tensor:
        return self.canonizer_sum(torch.stack(inputs, dim=-1))

    def attribute_map(name: str, module: nn.Module) -> dict[str, Any] | None:
        if isinstance(module, Sum):
            return {"forward": forward.__get__(module), "canonizer_sum": ZennitSum()}
        return None

    return AttributeCanonizer(attribute_map)


@functools.cache
def _exact_merge_batchnorm() -> type:
    """zennit's ``SequentialMergeBatchNorm`` that leaves each BatchNorm an exact identity.

    zennit folds ``gamma / sqrt(var + eps)`` into the convolution and then sets the BatchNorm's
    statistics to mean 0 and variance 1, which leaves it computing ``x / sqrt(1 + eps)``, not
    ``x``: 0.9995 per layer with EfficientNet-Lite0's ``eps = 1e-3`` (its target logit 10.5819
    becomes 10.5763 while canonized, and the LRP map moves by about 1 %). This subclass sets the
    variance to ``1 - eps`` instead, so the canonized model computes the model's function, as
    our folding does; ``remove()`` restores the statistics as before (they are among the stored
    parameters).
    """
    from zennit.canonizers import SequentialMergeBatchNorm

    class ExactMergeBatchNorm(SequentialMergeBatchNorm):
        @staticmethod
        def merge_batch_norm(modules: Any, batch_norm: Any) -> None:
            SequentialMergeBatchNorm.merge_batch_norm(modules, batch_norm)
            batch_norm.running_var.data = torch.full_like(batch_norm.running_var.data, 1.0 - batch_norm.eps)

    return ExactMergeBatchNorm


def _canonizers(module: nn.Module, *, exact_batchnorm: bool) -> list[Any]:
    """zennit canonizers for ``module``.

    BatchNorm folding: zennit's ``SequentialMergeBatchNorm`` (``VGGCanonizer`` for a torchvision
    VGG, the same class under another name), or with ``exact_batchnorm``
    :func:`_exact_merge_batchnorm`'s subclass. Residual additions: :func:`_sum_canonizer` when the
    model has :class:`vizwidgets.nn.Sum` modules, zennit's ResNet block canonizers for a
    torchvision ResNet.
    """
    from torchvision.models import VGG, ResNet
    from zennit.canonizers import SequentialMergeBatchNorm
    from zennit.torchvision import ResNetBasicBlockCanonizer, ResNetBottleneckCanonizer, VGGCanonizer

    from vizwidgets.nn import Sum

    modules = list(module.modules())
    if exact_batchnorm:
        merge = _exact_merge_batchnorm()()
    elif any(isinstance(child, VGG) for child in modules):
        merge = VGGCanonizer()
    else:
        merge = SequentialMergeBatchNorm()
    canonizers: list[Any] = [merge]
    if any(isinstance(child, Sum) for child in modules):
        canonizers.append(_sum_canonizer())
    if any(isinstance(child, ResNet) for child in modules):
        canonizers += [ResNetBottleneckCanonizer(), ResNetBasicBlockCanonizer()]
    return canonizers


def zennit_composite(
    adapter: ModelAdapter,
    x: Tensor,
    preset: str = "default",
    *,
    epsilon: float = _LRP_EPSILON,
    gamma: float = _LRP_GAMMA,
) -> Any:
    """Our LRP preset ``preset`` rebuilt from zennit's rules, as a zennit composite.

    Rules by position as in :mod:`vizwidgets.attribution.lrp.composites`: the convolutions in
    ``named_modules()`` order (the first one sees the pixels), the lower ``floor(C / 2)`` of them
    for "default", the ``nn.Linear`` layers dense. zennit equivalents: LRP-0 =
    ``Epsilon(epsilon=0)``; our relative epsilon = ``Epsilon(Stabilizer(epsilon,
    norm_scale=True))`` (``epsilon * rms(z)`` per image, the same formula); ``Gamma(gamma)``
    (zennit's generalised rule favours the sign of each output, as ours); z+ = ``ZPlus``;
    alpha-beta = ``AlphaBeta``; z^B = ``ZBox`` with the bounds the first layer sees
    (:func:`_box_bounds`). Average pooling and zennit's ``Sum`` get ``Norm``, activations
    ``Pass``. Stabilisers: zennit adds ``1e-6 sign(z)`` to the gamma, z+, alpha-beta and z^B
    denominators (ours add nothing and give 0 where a denominator is 0); ``Norm`` gets our
    ``1e-9``. Canonizers: :func:`_canonizers` with the exact BatchNorm folding of
    :func:`_exact_merge_batchnorm`, so the canonized model computes the model's function as ours
    does (zennit's own folding leaves ``x / sqrt(1 + eps)`` per BatchNorm). Relevance starts, as ours, from
    ``onehot(c) * f_c(x)`` (the ``attr_output`` in :func:`zennit_runs`).
    """
    from zennit.composites import NameLayerMapComposite, layer_map_base
    from zennit.core import Stabilizer
    from zennit.rules import AlphaBeta, Epsilon, Gamma, ZBox, ZPlus

    from vizwidgets.attribution.lrp.composites import COMPOSITES

    if preset not in COMPOSITES:
        raise ValueError(f"unknown composite {preset!r}; presets: {', '.join(COMPOSITES)}")
    module = adapter.module
    convolutions = [name for name, child in module.named_modules() if isinstance(child, nn.Conv2d)]
    dense = [name for name, child in module.named_modules() if isinstance(child, nn.Linear)]
    relative = Stabilizer(epsilon, norm_scale=True)

    def rules(name: str) -> tuple[Any, Any, Any]:
        """(lower convolution, upper convolution, dense) rule factories for the preset."""
        if name == "default":
            return (lambda: Gamma(gamma)), (lambda: Epsilon(relative)), (lambda: Epsilon(0.0))
        if name == "epsilon":
            return ((lambda: Epsilon(relative)),) * 3
        if name == "epsilon_plus":
            return ZPlus, ZPlus, (lambda: Epsilon(relative))
        if name == "gamma":
            return (lambda: Gamma(gamma)), (lambda: Gamma(gamma)), (lambda: Epsilon(0.0))
        if name == "lrp0":
            return ((lambda: Epsilon(0.0)),) * 3
        alpha, beta = (1.0, 0.0) if name == "alpha1beta0" else (2.0, 1.0)
        return ((lambda: AlphaBeta(alpha, beta)),) * 3

    lower_rule, upper_rule, dense_rule = rules(preset)
    lower_count = math.floor(len(convolutions) * 0.5) if preset == "default" else len(convolutions)
    name_map: list[tuple[tuple[str, ...], Any]] = []
    first = convolutions[0] if convolutions else None
    if preset != "lrp0" and first is not None:
        if adapter.bounds is None:
            raise ValueError("the z^B rule needs the model's normalisation: adapt(module, mean=..., std=...)")
        low, high = _box_bounds(adapter, x, module.get_submodule(first))
        name_map.append(((first,), ZBox(low, high)))
        convolutions = convolutions[1:]
        lower_count -= 1
    # zennit registers one hook instance per module (copies of these), so sharing one is fine
    for names, rule in (
        (tuple(convolutions[: max(lower_count, 0)]), lower_rule),
        (tuple(convolutions[max(lower_count, 0):]), upper_rule),
        (tuple(dense), dense_rule),
    ):
        if names:
            name_map.append((names, rule()))
    return NameLayerMapComposite(
        name_map=name_map,
        layer_map=layer_map_base(stabilizer=1e-9),
        canonizers=_canonizers(module, exact_batchnorm=True),
    )


def zennit_runs(
    adapter: ModelAdapter,
    x: Tensor,
    target: int,
    *,
    methods: Collection[str] | None = None,
    composite: str = "default",
) -> Runs:
    """zennit LRP, under our method name "lrp"; empty without zennit or the model's normalisation.

    ``with Gradient(model=module, composite=...) as attributor: output, relevance =
    attributor(x, attr_output)`` with ``attr_output = onehot(target) * output`` (our starting
    relevance, the target logit); returns zennit's relevance ``(N, 3, H, W)``.

    - ``"zennit (vizwidgets <composite>)"``: :func:`zennit_composite`, our preset rebuilt;
    - ``"zennit EpsilonGammaBox"``: the stock composite, ``EpsilonGammaBox(low, high,
      canonizers=...)`` with ``low``/``high`` ``(1, C, 1, 1)`` from the normalisation (how a zennit
      user calls it): z^B on the first convolution, ``Gamma(0.25)`` on every other one,
      ``Epsilon(1e-6)`` on dense layers. Closest to our "gamma" preset; on EfficientNet-Lite0 its
      box also covers the stem's padded row and column, which ours treats as fixed zeros.

    Both use :func:`_canonizers`: the rebuilt composite with exact BatchNorm folding, the stock
    one with zennit's ``SequentialMergeBatchNorm`` (``VGGCanonizer`` on VGG), as a zennit user
    would; that folding alone moves EfficientNet-Lite0's map by about 1 %. zennit needs the
    input to require grad and sets it on the tensor it is given, so it gets a detached copy of
    ``x``.
    """
    if not _wanted(methods, "lrp") or adapter.bounds is None:
        return {}
    try:
        from zennit.attribution import Gradient
        from zennit.composites import EpsilonGammaBox
    except ImportError:
        return {}
    module = adapter.module
    channels = x.shape[1]
    low = torch.tensor(adapter.bounds.low, dtype=x.dtype, device=x.device).view(1, channels, 1, 1)
    high = torch.tensor(adapter.bounds.high, dtype=x.dtype, device=x.device).view(1, channels, 1, 1)

    def start(output: Tensor) -> Tensor:
        onehot = torch.zeros_like(output)
        onehot[:, target] = 1.0
        return onehot * output

    def run(make: Callable[[], Any]) -> PeerRun:
        def go() -> Tensor:
            with Gradient(model=module, composite=make()) as attributor:
                _, relevance = attributor(_leaf(x), start)
            return relevance

        return go

    return {
        "lrp": {
            f"zennit (vizwidgets {composite})": run(lambda: zennit_composite(adapter, x, composite)),
            "zennit EpsilonGammaBox": run(
                lambda: EpsilonGammaBox(low=low, high=high, canonizers=_canonizers(module, exact_batchnorm=False))
            ),
        }
    }


# ----------------------------------------------------------------------------- VGG16


def random_vgg16(seed: int = 0) -> ModelAdapter:
    """torchvision's VGG16 with random weights (``vgg16(weights=None)``, no download), seeded,
    in eval mode with frozen parameters, adapted with torchvision's ImageNet normalisation
    (:data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`) so that the black baseline and the z^B bounds
    are known. 138 M parameters, 528 MB; any input side from 32 pixels works."""
    from torchvision.models import vgg16

    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        module = vgg16(weights=None)
    finally:
        torch.random.set_rng_state(state)
    module.eval().requires_grad_(False)
    return adapt(module, mean=IMAGENET_MEAN, std=IMAGENET_STD)
