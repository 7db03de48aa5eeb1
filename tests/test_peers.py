"""Our raw maps against captum's, torch-cam's, pytorch-grad-cam's and zennit's on the same model.

Why: where a peer library computes the same quantity as one of our methods, the two must agree
to float precision; where it computes something else, the difference is the one
``benchmarks/_peers.py`` documents, and these tests pin it. The peers are run through the
callables of ``benchmarks/_peers.py`` (what the attribution benchmark times) or, where a test
needs other settings than our defaults, called directly. Each test is skipped when its peer is
not installed.

Errors are ``max |theirs - ours| / max |ours|`` unless said otherwise. The tolerances sit ten
times or more above what was measured on the default model with the chelsea image (figures in
the comments, on 2 threads) and far below what a difference in definition gives, so that they
fail on a change of definition, not on float noise. The default model runs at 224 x 224 where
that is cheap (one or two passes); Integrated Gradients, occlusion, Score-CAM, LRP and the
VGG16 tests (random weights, no download) run at 64 x 64. Every peer call must leave the model
as it found it: the benchmark alternates our methods and the peers' on one model object.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vizwidgets.attribution import METHODS, attribute
from vizwidgets.attribution.cam import layer_activation
from vizwidgets.models import ModelAdapter, adapt

PEERS_FILE = Path(__file__).resolve().parent.parent / "benchmarks" / "_peers.py"

#: The default model's target for the chelsea image (tabby cat).
TARGET = 285
#: A layer whose gradient varies over the positions (the head's is constant: it feeds the
#: global average pool, which makes XGrad-CAM equal Grad-CAM there).
MIDDLE = "blocks.10"


def load_peers() -> ModuleType:
    """``benchmarks/_peers.py`` as a module, loaded once per session (the benchmarks are
    scripts, not a package)."""
    name = "benchmarks_peers"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, PEERS_FILE)
    assert spec is not None and spec.loader is not None, f"no {PEERS_FILE}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def error(theirs: Tensor, ours: Tensor) -> float:
    """``max |theirs - ours| / max |ours|``, after checking the shapes agree."""
    assert theirs.shape == ours.shape, f"shapes differ: {tuple(theirs.shape)} against ours {tuple(ours.shape)}"
    return float((theirs.detach() - ours).abs().max() / ours.abs().max())


def min_max(maps: Tensor) -> Tensor:
    """Each ``(1, H, W)`` map scaled to [0, 1]."""
    low = maps.amin(dim=(2, 3), keepdim=True)
    return (maps - low) / (maps - low).amax(dim=(2, 3), keepdim=True)


def fingerprint(module: nn.Module) -> list[tuple[Any, ...]]:
    """Everything a peer could leave changed on ``module``, cheaply comparable: per submodule its
    identity, mode, instance attributes, hooks, parameter and buffer objects, storages,
    ``requires_grad`` and ``.grad``."""
    rows = []
    for name, child in module.named_modules(remove_duplicate=False):
        hooks = tuple(
            len(getattr(child, slot, {}))
            for slot in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
        )
        parameters = tuple(
            (key, id(p), p.data_ptr(), p.requires_grad, None if p.grad is None else id(p.grad))
            for key, p in child._parameters.items()
            if p is not None
        )
        buffers = tuple((key, b.data_ptr()) for key, b in child._buffers.items() if b is not None)
        rows.append((name, id(child), child.training, tuple(sorted(vars(child))), hooks, parameters, buffers))
    return rows


@contextmanager
def unchanged(module: nn.Module, *, values: bool = True) -> Iterator[None]:
    """Fail if the block leaves ``module`` changed: :func:`fingerprint`, and with ``values`` every
    parameter's and buffer's values."""
    before = fingerprint(module)
    state = [tensor.clone() for tensor in module.state_dict().values()] if values else []
    yield
    assert fingerprint(module) == before, "the peer left the model changed (mode, hooks, modules or parameters)"
    if values:
        after = list(module.state_dict().values())
        assert len(after) == len(state) and all(torch.equal(a, b) for a, b in zip(after, state)), (
            "the peer left parameter or buffer values changed"
        )


def call(run: Callable[[], Tensor], module: nn.Module, *, values: bool = True) -> Tensor:
    """``run()``, checked to leave ``module`` as it found it; the peers' warnings (captum warns
    that it sets hooks on ReLUs) are silenced."""
    with unchanged(module, values=values), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run().detach()


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def peers() -> ModuleType:
    return load_peers()


@pytest.fixture(scope="module")
def x(lite: Any) -> Tensor:
    """The chelsea image for the default model, (1, 3, 224, 224)."""
    return lite.preprocess("chelsea")


@pytest.fixture(scope="module")
def small(x: Tensor) -> Tensor:
    """The same image at 64 x 64, for methods that cost a pass per window or path point."""
    return F.interpolate(x, size=(64, 64), mode="bilinear", antialias=True)


@pytest.fixture(scope="module")
def tiny(x: Tensor) -> Tensor:
    """The same image at 32 x 32, the smallest input the default model takes."""
    return F.interpolate(x, size=(32, 32), mode="bilinear", antialias=True)


@pytest.fixture(scope="module")
def vgg(peers: ModuleType) -> ModelAdapter:
    """torchvision's VGG16 with random weights (seeded), adapted with ImageNet's normalisation."""
    pytest.importorskip("torchvision")
    return peers.random_vgg16()


@pytest.fixture(scope="module")
def vgg_target(vgg: ModelAdapter, small: Tensor) -> int:
    """The random VGG16's predicted class for the small image (class 285 gets an all-zero
    Grad-CAM from it)."""
    with torch.no_grad():
        return int(vgg.module(small).argmax())


def runs(peers: ModuleType, model: Any, x: Tensor, target: int, method: str, layer: str | None = None,
         **options: Any) -> dict[str, Callable[[], Tensor]]:
    """The peers' callables for one of our methods."""
    return peers.peer_runs(model, x, target, layer, methods=[method], **options).get(method, {})


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("method, label", [
    ("gradient", "captum Saliency"),
    ("gradient_x_input", "captum InputXGradient"),
])
def test_gradients_equal_captum(lite: Any, x: Tensor, peers: ModuleType, method: str, label: str) -> None:
    pytest.importorskip("captum")
    ours = attribute(lite, x, TARGET, method)
    theirs = call(runs(peers, lite, x, TARGET, method)[label], lite.model)
    assert error(theirs, ours) < 1e-5  # measured 0


def test_integrated_gradients_equals_captum(lite: Any, small: Tensor, peers: ModuleType) -> None:
    """Our defaults (50 Gauss-Legendre steps, black baseline, passes of 5 path points) against
    captum with the same, in passes of 5 (``internal_batch_size=5``) and in one pass of 50.

    The path crosses ReLU6 kinks, where a rounding difference at one path point (ours runs on
    channels-last inputs; thread counts and batch sizes change the order of the sums) moves a
    few values, so the largest difference is well above float precision while the mean and the
    sum stay close. Measured on 64 x 64: 1 thread, passes of 5: 5.8e-7; 1 thread, one pass of
    50: 1.1e-3 (mean 4.4e-4, sum 1.3e-4), no more than ours moves between passes of 5 and one
    pass of 50 (1.2e-3); 2 threads: 6.1e-4 for both (mean 1.5e-4, sum 1e-7)."""
    pytest.importorskip("captum")
    ours = attribute(lite, small, TARGET, "integrated_gradients")
    found = runs(peers, lite, small, TARGET, "integrated_gradients")
    assert len(found) == 2
    for label, run in found.items():
        theirs = call(run, lite.model)
        assert error(theirs, ours) < 1e-2, label  # measured 1.1e-3 at most
        mean = float((theirs - ours).abs().mean() / ours.abs().mean())
        assert mean < 5e-3, label  # measured 4.4e-4 at most
        assert abs(float(theirs.sum() - ours.sum())) < 1e-3 * abs(float(ours.sum())), label  # measured 1.3e-4


def test_occlusion_equals_captum(lite: Any, small: Tensor, peers: ModuleType) -> None:
    """Our default window (32, stride 16) on 64 x 64: 3 x 3 positions, where captum's and ours
    coincide (the stride divides 64 - 32)."""
    pytest.importorskip("captum")
    ours = attribute(lite, small, TARGET, "occlusion")
    theirs = call(runs(peers, lite, small, TARGET, "occlusion")["captum Occlusion"], lite.model)
    assert error(theirs, ours) < 1e-4  # measured 2.9e-6 (224 x 224, 169 windows: 3.4e-6)


# ----------------------------------------------------------------------------- guided


def test_captum_guided_methods_leave_relu6_alone(lite: Any, x: Tensor, peers: ModuleType) -> None:
    """captum overrides ``nn.ReLU`` modules only: on EfficientNet-Lite0 (``nn.ReLU6``) its guided
    backpropagation and deconvnet are the plain gradient, and its Guided Grad-CAM is the gradient
    times Grad-CAM; ours guide the ReLU6s and differ from the gradient entirely."""
    pytest.importorskip("captum")
    gradient = attribute(lite, x, TARGET, "gradient")
    cam = attribute(lite, x, TARGET, "grad_cam")
    for method, label, expected in (
        ("guided_backprop", "captum GuidedBackprop", gradient),
        ("deconvnet", "captum Deconvolution", gradient),
        ("guided_grad_cam", "captum GuidedGradCam", gradient * cam),
    ):
        theirs = call(runs(peers, lite, x, TARGET, method)[label], lite.model)
        assert error(theirs, expected) < 1e-5, label  # measured 0
        assert error(theirs, attribute(lite, x, TARGET, method)) > 0.5, label  # measured 1.0


@pytest.mark.parametrize("method, label", [
    ("guided_backprop", "captum GuidedBackprop"),
    ("deconvnet", "captum Deconvolution"),
    ("guided_grad_cam", "captum GuidedGradCam"),
])
def test_guided_methods_equal_captum_on_relu_networks(
    vgg: ModelAdapter, small: Tensor, vgg_target: int, peers: ModuleType, method: str, label: str
) -> None:
    pytest.importorskip("captum")
    ours = attribute(vgg, small, vgg_target, method)
    theirs = call(runs(peers, vgg, small, vgg_target, method)[label], vgg.module, values=False)
    assert error(theirs, ours) < 1e-5  # measured 0 (all three)


# ----------------------------------------------------------------------------- CAM family


@pytest.mark.parametrize("layer", ["head", MIDDLE])
def test_grad_cam_equals_captum_and_torch_cam(lite: Any, x: Tensor, peers: ModuleType, layer: str) -> None:
    """captum's LayerGradCam with ``relu_attributions=True``, upsampled bilinearly, and
    torch-cam's GradCAM upsampled the same way, are our Grad-CAM."""
    ours = attribute(lite, x, TARGET, "grad_cam", layer=layer)
    found = runs(peers, lite, x, TARGET, "grad_cam", layer)
    labels = [label for label in ("captum LayerGradCam", "torch-cam GradCAM") if label in found]
    if not labels:
        pytest.skip("neither captum nor torch-cam is installed")
    for label in labels:
        assert error(call(found[label], lite.model), ours) < 1e-5, label  # measured 2e-7


@pytest.mark.parametrize("method, layer", [("xgrad_cam", MIDDLE), ("layer_cam", MIDDLE), ("cam", "head")])
def test_cam_family_equals_torch_cam(lite: Any, x: Tensor, peers: ModuleType, method: str, layer: str) -> None:
    pytest.importorskip("torchcam")
    ours = attribute(lite, x, TARGET, method, layer=layer)
    (theirs,) = [call(run, lite.model) for label, run in runs(peers, lite, x, TARGET, method, layer).items()
                 if label.startswith("torch-cam")]
    assert error(theirs, ours) < 1e-5  # measured 2e-7


@pytest.mark.parametrize("method", ["grad_cam", "xgrad_cam", "layer_cam"])
def test_pytorch_grad_cam_is_our_map_scaled_to_0_1(lite: Any, x: Tensor, peers: ModuleType, method: str) -> None:
    """pytorch-grad-cam returns each map min-max scaled to [0, 1]: ours, scaled so."""
    pytest.importorskip("pytorch_grad_cam")
    ours = attribute(lite, x, TARGET, method, layer=MIDDLE)
    (theirs,) = [call(run, lite.model) for label, run in runs(peers, lite, x, TARGET, method, MIDDLE).items()
                 if label.startswith("pytorch-grad-cam")]
    assert float((theirs - min_max(ours)).abs().max()) < 1e-5  # measured 7e-7 (absolute, on [0, 1])


def test_grad_cam_pp_peers_differ_in_definition(lite: Any, x: Tensor, peers: ModuleType) -> None:
    """Our Grad-CAM++ is the paper's closed form. pytorch-grad-cam adds 1e-6 to the alpha
    denominator (of the order of 2 G^2 here); torch-cam's weights end up ``sum_ij G^2 ReLU(G)``
    (its division of alpha is applied to a copy). Each is re-derived here from the layer's
    activation and gradient, and both are far from ours."""
    layer = MIDDLE
    ours = attribute(lite, x, TARGET, "grad_cam_pp", layer=layer)
    with torch.enable_grad(), layer_activation(lite.model, layer, cut=True) as store:
        score = lite.model(x)[:, TARGET].sum()
    a = store["A"]
    (g,) = torch.autograd.grad(score, a)
    a = a.detach()

    def weighted(weights: Tensor) -> Tensor:
        maps = F.relu((weights[:, :, None, None] * a).sum(dim=1, keepdim=True))
        return F.interpolate(maps, size=x.shape[-2:], mode="bilinear", align_corners=False)

    found = runs(peers, lite, x, TARGET, "grad_cam_pp", layer)
    checked = 0
    if "pytorch-grad-cam GradCAMPlusPlus" in found:
        alpha = g**2 / (2 * g**2 + a.sum(dim=(2, 3), keepdim=True) * g**3 + 1e-6)
        expected = min_max(weighted((torch.where(g != 0, alpha, 0.0) * F.relu(g)).sum(dim=(2, 3))))
        theirs = call(found["pytorch-grad-cam GradCAMPlusPlus"], lite.model)
        assert float((theirs - expected).abs().max()) < 1e-4  # measured 1.6e-6
        assert float((theirs - min_max(ours)).abs().max()) > 0.1  # measured 0.47
        checked += 1
    if "torch-cam GradCAMpp" in found:
        expected = weighted((g**2 * F.relu(g)).sum(dim=(2, 3)))
        theirs = call(found["torch-cam GradCAMpp"], lite.model)
        assert error(theirs, expected) < 1e-5  # measured 0
        assert error(theirs, ours) > 0.5  # measured 1.0
        checked += 1
    if not checked:
        pytest.skip("neither pytorch-grad-cam nor torch-cam is installed")


def test_score_cam_peers_weigh_channels_by_a_softmax_over_channels(
    lite: Any, small: Tensor, peers: ModuleType
) -> None:
    """Both peers weigh channel k by ``softmax_k`` of the target logit of the masked image (ours:
    the class probability, softmax over the classes). torch-cam normalises each feature map
    before upsampling it (no corner alignment) and subtracts the clean logit (which the softmax
    ignores); pytorch-grad-cam upsamples with aligned corners, then normalises, and scales the
    map to [0, 1]. Re-derived on a 16-channel layer."""
    layer = "blocks.0"
    model = lite.model
    found = runs(peers, lite, small, TARGET, "score_cam", layer)
    if not found:
        pytest.skip("neither pytorch-grad-cam nor torch-cam is installed")
    with torch.no_grad(), layer_activation(model, layer, cut=False) as store:
        model(small)
    a = store["A"][0]  # (K, h, w)
    size = small.shape[-2:]

    def normalised(maps: Tensor) -> Tensor:
        low = maps.amin(dim=(-2, -1), keepdim=True)
        return (maps - low) / ((maps - low).amax(dim=(-2, -1), keepdim=True) + 1e-8)

    def weighted_map(masks: Tensor) -> Tensor:
        with torch.no_grad():
            weights = torch.softmax(model(small * masks)[:, TARGET], dim=0)
        maps = F.relu((weights[:, None, None] * a).sum(dim=0))[None, None]
        return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)

    if "torch-cam ScoreCAM" in found:
        masks = F.interpolate(normalised(a[:, None]), size=size, mode="bilinear", align_corners=False)
        theirs = call(found["torch-cam ScoreCAM"], model)
        assert error(theirs, weighted_map(masks)) < 1e-5  # measured 0
    if "pytorch-grad-cam ScoreCAM" in found:
        masks = normalised(F.interpolate(a[:, None], size=size, mode="bilinear", align_corners=True))
        theirs = call(found["pytorch-grad-cam ScoreCAM"], model)
        assert float((theirs - min_max(weighted_map(masks))).abs().max()) < 1e-4  # measured 2.3e-6


# ----------------------------------------------------------------------------- LRP


@pytest.mark.parametrize("preset", ["default", "epsilon_plus"])
def test_lrp_equals_zennit_with_the_same_rules(lite: Any, small: Tensor, peers: ModuleType, preset: str) -> None:
    """zennit with our rules, exact BatchNorm folding and zero bounds on the stem's padding:
    "default" covers z^B, gamma, relative epsilon and LRP-0, "epsilon_plus" z+ and epsilon on
    the classifier; the residual sums and the pooling get the z-rule in both."""
    pytest.importorskip("zennit")
    ours = attribute(lite, small, TARGET, "lrp", composite=preset)
    found = runs(peers, lite, small, TARGET, "lrp", lrp_composite=preset)
    theirs = call(found[f"zennit (vizwidgets {preset})"], lite.model)
    assert error(theirs, ours) < 1e-4  # measured 5.3e-6 and 4.4e-6 (224 x 224: 2.9e-6, 5.4e-6)


def test_stock_zennit_batchnorm_folding_moves_the_map(lite: Any, small: Tensor, peers: ModuleType) -> None:
    """zennit's own EpsilonGammaBox (our "gamma" preset's rules) with its own BatchNorm folding,
    which leaves ``x / sqrt(1 + eps)`` per BatchNorm, and a box over the stem's padding: the same
    picture, about 1 % off (rebuilt with exact folding, "gamma" agrees to 4e-6)."""
    pytest.importorskip("zennit")
    ours = attribute(lite, small, TARGET, "lrp", composite="gamma")
    theirs = call(runs(peers, lite, small, TARGET, "lrp")["zennit EpsilonGammaBox"], lite.model)
    assert 1e-3 < error(theirs, ours) < 3e-2  # measured 8.9e-3 (224 x 224: 8.6e-3)
    assert float(torch.corrcoef(torch.stack([theirs.flatten(), ours.flatten()]))[0, 1]) > 0.9999


@pytest.mark.parametrize("preset, label", [
    ("default", "zennit (vizwidgets default)"),
    ("epsilon_plus", "zennit (vizwidgets epsilon_plus)"),
    ("gamma", "zennit EpsilonGammaBox"),
])
def test_lrp_equals_zennit_on_vgg16(
    vgg: ModelAdapter, small: Tensor, vgg_target: int, peers: ModuleType, preset: str, label: str
) -> None:
    """VGG16 (no BatchNorm, no residuals, each convolution pads itself): the rebuilt composites and
    zennit's stock EpsilonGammaBox (our "gamma") agree up to zennit's 1e-6 stabilisers."""
    pytest.importorskip("zennit")
    ours = attribute(vgg, small, vgg_target, "lrp", composite=preset)
    theirs = call(runs(peers, vgg, small, vgg_target, "lrp", lrp_composite=preset)[label], vgg.module,
                  values=False)
    assert error(theirs, ours) < 1e-3  # measured 1.1e-5, 1.2e-5, 1.3e-4


# ----------------------------------------------------------------------------- every peer


def test_every_peer_returns_our_shape_and_leaves_the_model_as_found(
    lite: Any, tiny: Tensor, peers: ModuleType
) -> None:
    """Each callable once, on 32 x 32 and a 16-channel layer (Score-CAM: 16 passes): the shape of
    our result, finite values, and the model as it was."""
    found = peers.peer_runs(lite, tiny, TARGET, "blocks.0")
    if not found:
        pytest.skip("no peer library is installed")
    n, _, h, w = tiny.shape
    for method, labelled in found.items():
        shape = (n, 3, h, w) if METHODS[method].output == "pixels" else (n, 1, h, w)
        for label, run in labelled.items():
            result = call(run, lite.model)
            assert tuple(result.shape) == shape, label
            assert result.dtype == tiny.dtype and bool(torch.isfinite(result).all()), label


def test_peer_runs_leaves_out_what_needs_a_normalisation(peers: ModuleType, small: Tensor) -> None:
    """A bare module has no black baseline and no z^B bounds: no Integrated Gradients, no LRP."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    found = peers.peer_runs(adapt(model), small, 1)
    assert "integrated_gradients" not in found and "lrp" not in found
