"""Attribution methods: hand-computed values, properties, hygiene and bad input."""

from __future__ import annotations

import copy
import gc
import inspect
import os

import pytest
import torch
from torch import nn

from vizwidgets.attribution import (
    CAM,
    METHODS,
    FastScoreCAM,
    GradCAM,
    ScoreCAM,
    SmoothGrad,
    attribute,
    cam,
    deconvnet,
    fast_score_cam,
    grad_cam,
    grad_cam_pp,
    gradient,
    gradient_x_input,
    guided_backprop,
    guided_grad_cam,
    layer_cam,
    score_cam,
    smoothgrad,
    xgrad_cam,
)

# --- a tiny network whose every number can be worked out by hand ---------------------------
#
#   x (1, 1, 2, 2) -> conv 1x1 with weights [1, -1] (no bias): A = (x, -x)
#   -> ReLU -> global average pool -> linear W = [[1, 2], [3, -1]] (no bias)
#
#   x = [[1, -2], [3, 0.5]]: ReLU(A) = ([[1, 0], [3, 0.5]], [[0, 2], [0, 0]]),
#   pooled (1.125, 0.5), logits (1*1.125 + 2*0.5, 3*1.125 - 0.5) = (2.125, 2.875).

X = torch.tensor([[[[1.0, -2.0], [3.0, 0.5]]]])
W = torch.tensor([[1.0, 2.0], [3.0, -1.0]])


class Tiny(nn.Module):
    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1, bias=False)
        self.act = nn.ReLU(inplace=inplace)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
            self.fc.weight.copy_(W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.act(self.conv(x))))


def grid(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows).view(1, 1, 2, 2)


def test_tiny_model_logits_are_as_derived() -> None:
    assert Tiny()(X).tolist() == [[2.125, 2.875]]


def test_gradient_by_hand() -> None:
    # dS_c/dx = W[c,0]/4 [x > 0] - W[c,1]/4 [x < 0]
    torch.testing.assert_close(gradient(Tiny(), X, 0), grid([[0.25, -0.5], [0.25, 0.25]]))
    torch.testing.assert_close(gradient(Tiny(), X, 1), grid([[0.75, 0.25], [0.75, 0.75]]))
    torch.testing.assert_close(gradient(Tiny(), X), gradient(Tiny(), X, 1))  # predicted: 1
    torch.testing.assert_close(gradient_x_input(Tiny(), X, 1), grid([[0.75, -0.5], [2.25, 0.375]]))


def test_guided_backprop_and_deconvnet_by_hand() -> None:
    # class 1: the ReLU of channel 1 receives -1/4 < 0: guided and deconvnet stop it;
    # deconvnet ignores the forward mask, so channel 0 passes 3/4 everywhere.
    torch.testing.assert_close(guided_backprop(Tiny(), X, 1), grid([[0.75, 0.0], [0.75, 0.75]]))
    torch.testing.assert_close(deconvnet(Tiny(), X, 1), grid([[0.75, 0.75], [0.75, 0.75]]))
    # class 0: both ReLUs receive positive gradient (1/4, 2/4); deconvnet: 1/4 - 2/4
    torch.testing.assert_close(guided_backprop(Tiny(), X, 0), grid([[0.25, -0.5], [0.25, 0.25]]))
    torch.testing.assert_close(deconvnet(Tiny(), X, 0), grid([[-0.25, -0.25], [-0.25, -0.25]]))


def test_guided_backprop_with_in_place_relu_and_flags_restored() -> None:
    model = Tiny(inplace=True)
    torch.testing.assert_close(guided_backprop(model, X, 1), guided_backprop(Tiny(), X, 1))
    assert type(model.act) is nn.ReLU and model.act.inplace


def test_cam_family_at_the_rectified_layer_by_hand() -> None:
    a0, a1 = grid([[1, 0], [3, 0.5]]), grid([[0, 2], [0, 0]])
    # CAM, class 1: ReLU(3 A0 - A1)
    expected_cam = torch.relu(3 * a0 - a1)
    torch.testing.assert_close(cam(Tiny(), X, 1, "act", upsample=False), expected_cam)
    # Grad-CAM: dS/dA_k = W[1,k]/4 everywhere, so alpha = (3/4, -1/4) and Grad-CAM = CAM / 4
    torch.testing.assert_close(grad_cam(Tiny(), X, 1, "act", upsample=False), expected_cam / 4)
    # Grad-CAM++: G constant per channel; alpha_k = G^2 / (2 G^2 + sum(A_k) G^3)
    g0 = 0.75
    alpha0 = g0**2 / (2 * g0**2 + 4.5 * g0**3)
    w0 = 4 * alpha0 * g0  # channel 1 has ReLU(G) = 0
    torch.testing.assert_close(grad_cam_pp(Tiny(), X, 1, "act", upsample=False), w0 * a0)


def test_cam_family_before_the_relu_by_hand() -> None:
    # layer "conv": A = (x, -x); dS_1/dA_0 = 3/4 [x > 0], dS_1/dA_1 = -1/4 [x < 0]
    x = X[0, 0]
    g0 = 0.75 * (x > 0).float()
    g1 = -0.25 * (x < 0).float()
    gc_expected = torch.relu(g0.mean() * x + g1.mean() * -x)  # relu(0.625 x)
    torch.testing.assert_close(grad_cam(Tiny(), X, 1, "conv", upsample=False)[0, 0], gc_expected)
    # XGrad-CAM: alpha_k = sum(A_k / sum(A_k) * G_k)
    alpha0 = (x / x.sum() * g0).sum()
    alpha1 = (-x / (-x).sum() * g1).sum()
    xg_expected = torch.relu(alpha0 * x + alpha1 * -x)  # relu(1.15 x)
    torch.testing.assert_close(xgrad_cam(Tiny(), X, 1, "conv", upsample=False)[0, 0], xg_expected)
    assert xg_expected[1, 0].item() == pytest.approx(3.45)
    # Layer-CAM: ReLU(sum_k ReLU(G_k) A_k)
    lc_expected = torch.relu(torch.relu(g0) * x + torch.relu(g1) * -x)
    torch.testing.assert_close(layer_cam(Tiny(), X, 1, "conv", upsample=False)[0, 0], lc_expected)


def test_score_cam_by_its_definition() -> None:
    model = Tiny()
    activation = torch.relu(torch.cat([X, -X], dim=1))[0]  # (2, 2, 2)
    weights = []
    for a in activation:
        mask = (a - a.min()) / (a.max() - a.min())
        weights.append(model(X * mask).softmax(dim=1)[0, 1])
    expected = torch.relu(sum(w * a for w, a in zip(weights, activation)))
    torch.testing.assert_close(score_cam(model, X, 1, "act", upsample=False)[0, 0], expected)
    # top-1 channel by mean activation: channel 0 (mean 1.125 > 0.5)
    torch.testing.assert_close(
        fast_score_cam(model, X, 1, "act", upsample=False, top_k=1)[0, 0],
        torch.relu(weights[0] * activation[0]),
    )


def test_guided_grad_cam_is_the_product() -> None:
    model = Tiny()
    expected = guided_backprop(model, X, 1) * grad_cam(model, X, 1, "conv")
    torch.testing.assert_close(guided_grad_cam(model, X, 1, "conv"), expected)


# --- properties on the default model ---------------------------------------------------


@pytest.fixture(scope="module")
def two_images(lite):
    return lite.preprocess(["chelsea", "chicky_512"])


def test_cam_equals_grad_cam_up_to_a_positive_scale(lite, two_images) -> None:
    small = grad_cam(lite, two_images, upsample=False)
    full = cam(lite, two_images, upsample=False)
    assert small.shape == (2, 1, 7, 7) and small.max() > 0
    # GAP over 7x7: dS/dA_k = W[c, k] / 49, so CAM = 49 Grad-CAM exactly
    torch.testing.assert_close(full, 49 * small, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layer", ["head", "blocks.10"])
def test_guided_grad_cam_from_one_forward_is_the_product_of_its_parts(lite, two_images, layer) -> None:
    # at "head" no rectifier runs after the layer and guided Grad-CAM takes one guided backward
    # pass; at "blocks.10" rectifiers follow, and it differentiates its forward pass twice
    # (ordinary rule to the layer, guided rule to the input). Either way the result must be the
    # two methods' product, computed separately
    targets = [285, 154]
    expected = guided_backprop(lite, two_images, targets) * grad_cam(lite, two_images, targets, layer)
    got = guided_grad_cam(lite, two_images, targets, layer)
    scale = expected.abs().amax()
    assert scale > 0
    torch.testing.assert_close(got / scale, expected / scale, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("method", [m for m in METHODS if m != "score_cam"])
def test_batched_equals_per_image(lite, two_images, method) -> None:
    options = {"top_k": 8} if method == "fast_score_cam" else {}
    options |= {"smoothgrad": {"samples": 4}, "integrated_gradients": {"steps": 8},
                "occlusion": {"window": 56, "stride": 56}}.get(method, {})
    batched = attribute(lite, two_images, ["Egyptian cat", 154], method, **options)
    single = torch.cat(
        [
            attribute(lite, two_images[i : i + 1], t, method, **options)
            for i, t in enumerate([285, "Pekinese"])
        ]
    )
    expected_channels = 1 if METHODS[method].output == "map" else 3
    assert batched.shape == (2, expected_channels, 224, 224)
    assert torch.isfinite(batched).all() and batched.abs().sum() > 0
    # float32 batched convolutions round differently: compare relative to the map's scale
    scale = single.abs().amax(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(batched / scale, single / scale, atol=1e-5, rtol=1e-4)


def test_chunked_equals_unchunked(lite, two_images) -> None:
    one = smoothgrad(lite, two_images, samples=6, chunk_size=1)
    all_at_once = smoothgrad(lite, two_images, samples=6, chunk_size=6)
    torch.testing.assert_close(one, all_at_once, atol=1e-5, rtol=1e-4)
    x = two_images[:1]
    a = fast_score_cam(lite, x, top_k=12, chunk_size=5)
    b = fast_score_cam(lite, x, top_k=12, chunk_size=12)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_smoothgrad_without_noise_is_the_gradient(lite, two_images) -> None:
    torch.testing.assert_close(
        smoothgrad(lite, two_images, samples=3, noise=0.0), gradient(lite, two_images), atol=1e-6, rtol=1e-5
    )
    a = smoothgrad(lite, two_images[:1], samples=3, seed=1)
    b = smoothgrad(lite, two_images[:1], samples=3, seed=2)
    assert not torch.allclose(a, b)


def test_score_cam_top_k_all_channels_equals_score_cam() -> None:
    model = Tiny()
    torch.testing.assert_close(
        FastScoreCAM(model, "act").attribute(X, 1, top_k=2), ScoreCAM(model, "act").attribute(X, 1)
    )


def test_cam_maps_have_the_layer_resolution_without_upsampling(lite, two_images) -> None:
    assert grad_cam(lite, two_images, layer="blocks.10", upsample=False).shape == (2, 1, 14, 14)
    assert grad_cam(lite, two_images, layer="blocks.10").shape == (2, 1, 224, 224)


# --- hygiene: nothing is left behind ------------------------------------------------------


def _flags(model: nn.Module) -> list[tuple[str, str, bool, dict]]:
    return [
        (name, type(m).__name__, m.training, {k: v for k, v in vars(m).items() if not k.startswith("_")})
        for name, m in model.named_modules()
    ]


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _SmallNet(nn.Module):
    """Small, fast, and with what makes hooks hard: in-place ReLUs, BatchNorm, a residual."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True))
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU6(inplace=True))
        self.head = nn.Sequential(nn.Conv2d(8, 16, 1), nn.ReLU())
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        h = self.head(self.block(h) + h)
        return self.fc(h.mean(dim=(2, 3)))


def _check_untouched(model: nn.Module, reference: nn.Module, flags_before, requires_grad_before) -> None:
    assert all(
        not m._forward_hooks and not m._backward_hooks and not m._forward_pre_hooks
        for m in model.modules()
    )
    assert _flags(model) == flags_before
    assert [p.requires_grad for p in model.parameters()] == requires_grad_before
    for (name, value), (_, expected) in zip(model.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(value, expected), name


_HYGIENE_METHODS = ["gradient", "guided_backprop", "deconvnet", "grad_cam", "layer_cam", "guided_grad_cam",
                    "smoothgrad", "fast_score_cam", "lrp"]


def _one_call(model: nn.Module, x: torch.Tensor, i: int, layer: str) -> bool:
    """Run method number i; every 7th call fails mid-way. Returns whether it failed."""
    method = _HYGIENE_METHODS[i % len(_HYGIENE_METHODS)]
    options = {"smoothgrad": {"samples": 2}, "fast_score_cam": {"top_k": 2}, "lrp": {"composite": "lrp0"}}.get(
        method, {}
    )
    layer_or_none = layer if METHODS[method].needs_layer else None
    if i % 7 == 0:
        # a raw module has no class list: the bad target is found after the forward pass,
        # while the hooks and swapped modules are in place
        with pytest.raises(ValueError, match="out of range"):
            attribute(model, x, 5000, method, layer_or_none, **options)
        return True
    attribute(model, x, None, method, layer_or_none, **options)
    return False


def test_a_thousand_calls_leave_no_hooks_no_growth_and_an_equal_model() -> None:
    model = _SmallNet().train()
    model.fc.weight.requires_grad_(False)
    reference = copy.deepcopy(model)
    flags_before = _flags(model)
    requires_grad_before = [p.requires_grad for p in model.parameters()]
    x = torch.randn(2, 3, 8, 8)
    for i in range(50):  # warm up the allocator and caches before measuring
        _one_call(model, x, i, "block")
    gc.collect()
    start = _rss_mb()
    failures = sum(_one_call(model, x, i, "block") for i in range(1000))
    gc.collect()
    growth = _rss_mb() - start
    assert failures == 143
    assert growth < 50, f"resident memory grew by {growth:.1f} MB"
    _check_untouched(model, reference, flags_before, requires_grad_before)


def test_calls_on_the_default_model_leave_it_equal(lite) -> None:
    model = lite.model
    reference = copy.deepcopy(model)
    flags_before = _flags(model)
    requires_grad_before = [p.requires_grad for p in model.parameters()]
    x = torch.randn(1, 3, 32, 32)
    assert sum(_one_call(model, x, i, "blocks.12") for i in range(len(_HYGIENE_METHODS) * 2)) == 3
    _check_untouched(model, reference, flags_before, requires_grad_before)


def test_mode_and_requires_grad_are_restored() -> None:
    model = Tiny().train()
    model.fc.weight.requires_grad_(True)
    model.conv.weight.requires_grad_(False)
    grad_cam(model, X, 1, "act")
    guided_backprop(model, X, 1)
    assert model.training and model.fc.weight.requires_grad and not model.conv.weight.requires_grad


# --- bad input ---------------------------------------------------------------------------


def test_bad_input_names_the_problem(lite, two_images) -> None:
    with pytest.raises(ValueError, match=r"unknown method 'gradcam'.*grad_cam"):
        attribute(lite, two_images, method="gradcam")
    with pytest.raises(ValueError, match=r"layer 'blocks.99' is not in this model.*blocks\.9"):
        grad_cam(lite, two_images, layer="blocks.99")
    with pytest.raises(ValueError, match=r"target class 1000 is out of range"):
        gradient(lite, two_images, 1000)
    with pytest.raises(ValueError, match="3 targets given for 2 images"):
        gradient(lite, two_images, [1, 2, 3])
    with pytest.raises(ValueError, match=r"4-D .*x\[None\]"):
        gradient(lite, two_images[0])
    with pytest.raises(ValueError, match="float"):
        gradient(lite, two_images.to(torch.uint8))
    bad = two_images.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        gradient(lite, bad)
    with pytest.raises(ValueError, match="no option 'steps'"):
        attribute(lite, two_images, method="grad_cam", steps=3)
    with pytest.raises(ValueError, match="at least 1"):
        smoothgrad(lite, two_images, samples=0)
    with pytest.raises(ValueError, match="takes no layer"):
        attribute(lite, two_images, method="gradient", layer="head")
    with pytest.raises(ValueError, match=r"no class .*'zebraa'|no class"):
        gradient(lite, two_images, "zebraa")
    with pytest.raises(ValueError, match="runs more than once"):
        grad_cam(_SharedReLU(), torch.ones(1, 1, 2, 2), 0, "act")
    with pytest.raises(ValueError, match="CAM needs the layer that feeds"):
        cam(lite, two_images, layer="blocks.15")
    with pytest.raises(TypeError, match="inputs must be a preprocessed torch.Tensor"):
        gradient(lite, "chelsea")  # type: ignore[arg-type]


class _SharedReLU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.act(self.conv(x))).mean(dim=(2, 3)))


def test_registry_describes_every_method() -> None:
    for name, method in METHODS.items():
        assert method.name == name and method.title and method.description
        assert method.reference and any(str(year) in method.reference for year in range(2009, 2024))
        assert method.output in ("pixels", "map")
        for option in method.options:
            assert option.check(option.default, name) == option.default
    assert {"gradient", "smoothgrad", "guided_backprop", "deconvnet", "cam", "grad_cam", "grad_cam_pp",
            "xgrad_cam", "layer_cam", "score_cam", "fast_score_cam", "guided_grad_cam"} <= set(METHODS)
    assert GradCAM.needs_layer and CAM.needs_layer and not SmoothGrad.needs_layer


def test_no_option_shadows_a_parameter_of_attribute() -> None:
    # attribute(model, x, target, method, layer, **options): an option with one of these names
    # could never be passed through attribute() (it once happened to IG's quadrature rule)
    reserved = set(inspect.signature(attribute).parameters) - {"options"}
    for name, method in METHODS.items():
        assert not reserved & {o.name for o in method.options}, name


def test_docs_method_table_matches_the_registry() -> None:
    import re
    from pathlib import Path

    from vizwidgets.attribution.registry import methods_table

    page = (Path(__file__).resolve().parents[1] / "docs" / "attribution.md").read_text()
    found = re.search(r"<!-- methods:table -->\n(.*?)\n<!-- /methods:table -->", page, re.S)
    assert found and found.group(1) == methods_table(), (
        "docs/attribution.md is out of date: regenerate its table from methods_table()"
    )
