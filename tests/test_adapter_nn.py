"""The model adapter (``vizwidgets.models.adapt``) and the neutral modules (``vizwidgets.nn``).

LRP knows no model by name: a small residual network built only from torch layers and the
modules of :mod:`vizwidgets.nn` is explained, conserves relevance as documented, and is left
unchanged.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from vizwidgets.attribution import LRP, GradCAM, IntegratedGradients, lrp
from vizwidgets.attribution.gradient import input_gradient
from vizwidgets.models import (
    LoadedModel,
    ModelAdapter,
    PixelBounds,
    Preprocess,
    adapt,
    efficientnet_lite,
    guess_default_layer,
)
from vizwidgets.nn import ResidualAdd, SamePad2d, Sum

ROOT = Path(__file__).resolve().parents[1]


# --- a small residual network from neutral parts -------------------------------------------


class Block(nn.Module):
    """``relu(Sum(bn(conv(relu(bn(conv(x))))), x))``: a residual block with the sum as a module."""

    def __init__(self, channels: int, *, norm: bool = True) -> None:
        super().__init__()
        make_norm = (lambda: nn.BatchNorm2d(channels)) if norm else nn.Identity
        self.branch = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            make_norm(),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            make_norm(),
        )
        self.add = Sum()
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.add(self.branch(x), x))


class SmallResNet(nn.Module):
    """``SamePad2d -> conv (stride 2) -> [bn] -> ReLU -> Block -> Block -> pool -> linear``."""

    def __init__(self, *, norm: bool = True, pool: str = "avg") -> None:
        super().__init__()
        self.stem = nn.Sequential(
            SamePad2d(3, 2),
            nn.Conv2d(3, 8, 3, stride=2, bias=False),
            nn.BatchNorm2d(8) if norm else nn.Identity(),
            nn.ReLU(),
        )
        self.blocks = nn.Sequential(Block(8, norm=norm), Block(8, norm=norm))
        pooling = nn.AdaptiveAvgPool2d(1) if pool == "avg" else nn.AdaptiveMaxPool2d(1)
        self.pool = nn.Sequential(pooling, nn.Flatten())
        self.classifier = nn.Linear(8, 5, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.blocks(self.stem(x))))


def _network(*, norm: bool = True, pool: str = "avg", seed: int = 0) -> SmallResNet:
    torch.manual_seed(seed)
    net = SmallResNet(norm=norm, pool=pool)
    if norm:
        # BatchNorm in eval mode with a pure scale (running mean 0, shift 0): folded, it adds no
        # bias, so every rule but epsilon conserves relevance exactly
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_var.uniform_(0.5, 2.0)
                module.weight.data.uniform_(0.5, 1.5)
    return net.eval()


def _snapshot(model: nn.Module) -> dict[str, object]:
    """Everything LRP could change: modules (identity and type), tensors, flags, hooks."""
    return {
        "modules": [(name, id(m), type(m)) for name, m in model.named_modules()],
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "hooks": sum(
            len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules()
        ),
    }


def _assert_unchanged(model: nn.Module, before: dict[str, object]) -> None:
    after = _snapshot(model)
    assert after["modules"] == before["modules"]
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    assert after["hooks"] == before["hooks"] == 0
    for key, value in before["state"].items():  # type: ignore[union-attr]
        assert torch.equal(after["state"][key], value), key  # type: ignore[index]


def _inputs(seed: int = 1) -> Tensor:
    return torch.randn(2, 3, 17, 19, generator=torch.Generator().manual_seed(seed))


# --- the neutral modules -------------------------------------------------------------------


def test_sum_adds_any_number_of_inputs_without_changing_them() -> None:
    a, b, c = torch.ones(2, 3), torch.full((2, 3), 2.0), torch.full((2, 3), 4.0)
    assert torch.equal(Sum()(a, b, c), torch.full((2, 3), 7.0))
    assert torch.equal(Sum()(a), a)
    assert torch.equal(a, torch.ones(2, 3))
    with pytest.raises(ValueError, match="at least one tensor"):
        Sum()()
    assert ResidualAdd is Sum


def test_same_pad_matches_tensorflow_same_output_size() -> None:
    for length in range(5, 20):
        for kernel, stride in ((3, 2), (5, 2), (3, 1), (1, 2)):
            x = torch.zeros(1, 1, length, length + 1)
            padded = SamePad2d(kernel, stride)(x)
            out = torch.nn.functional.conv2d(padded, torch.zeros(1, 1, kernel, kernel), stride=stride)
            assert out.shape[-2:] == (-(-length // stride), -(-(length + 1) // stride))
    top, bottom = SamePad2d(3, 2).amount(224)
    assert (top, bottom) == (0, 1)  # TensorFlow: the extra zero goes last
    with pytest.raises(ValueError, match="stride must be at least 1"):
        SamePad2d(3, 0)
    with pytest.raises(TypeError, match="kernel_size must be an int"):
        SamePad2d(3.0, 2)  # type: ignore[arg-type]


def test_efficientnet_lite_uses_the_neutral_modules_and_keeps_its_names() -> None:
    assert efficientnet_lite.SamePad2d is SamePad2d and efficientnet_lite.ResidualAdd is Sum
    model = efficientnet_lite.EfficientNetLite0()
    adds = [m for m in model.modules() if isinstance(m, Sum)]
    pads = [m for m in model.modules() if isinstance(m, SamePad2d)]
    assert len(adds) == 9 and len(pads) == 5  # blocks that keep their shape; stem + 4 stride-2 blocks
    # the checkpoint map covers every state_dict key (weights load; test_models checks top-1)
    assert set(efficientnet_lite.checkpoint_key_map(model)) == set(model.state_dict())


def test_no_file_under_attribution_imports_the_efficientnet_file() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "vizwidgets" / "attribution").rglob("*.py")
        if "efficientnet_lite" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []


# --- LRP on a network of neutral modules ---------------------------------------------------


def test_lrp0_on_a_bias_free_residual_relu_network_is_gradient_times_input() -> None:
    net = _network(norm=False, pool="avg")
    x = _inputs()
    before = _snapshot(net)
    output = LRP(net).explain(x, 3, composite="lrp0")
    _assert_unchanged(net, before)
    # conservation: LRP-0 on a bias-free ReLU network passes the whole logit down
    torch.testing.assert_close(output.relevance_sum, output.scores, rtol=1e-4, atol=1e-5)
    # and equals gradient x input (Montavon et al. 2019, Sec. 10.2.1), also through Sum,
    # SamePad2d and pooling
    with torch.enable_grad():
        grad, _ = input_gradient(net, x, torch.tensor([3, 3]))
    torch.testing.assert_close(output.relevance, grad * x, rtol=1e-4, atol=1e-6)


def test_lrp0_with_max_pooling_and_batchnorm_folded_still_conserves() -> None:
    net = _network(norm=True, pool="max")
    x = _inputs(2)
    output = LRP(net).explain(x, None, composite="lrp0")
    torch.testing.assert_close(output.relevance_sum, output.scores, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("composite", ["default", "epsilon"])
def test_default_and_epsilon_composites_conserve_up_to_epsilon(composite: str) -> None:
    """Documented in docs/lrp.md: on a network whose folded layers have no bias, z^B, gamma and
    LRP-0 conserve exactly; epsilon absorbs ``R * eps / (|z| + eps)`` per unit, so with a tiny
    epsilon the relevance sums to the target logit within 1e-3 (relative), and with the
    default epsilon 0.25 a share in (0, 1] of it reaches the pixels."""
    net = _network(norm=True, pool="avg")
    adapter = adapt(net, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    pixels = torch.rand(2, 3, 17, 19, generator=torch.Generator().manual_seed(3))
    x = (pixels - torch.tensor(adapter.mean).view(1, 3, 1, 1)) / torch.tensor(adapter.std).view(1, 3, 1, 1)
    before = _snapshot(net)
    tiny = LRP(adapter).explain(x, 1, composite=composite, epsilon=1e-7)
    torch.testing.assert_close(tiny.relevance_sum, tiny.scores, rtol=1e-3, atol=1e-4)
    usual = LRP(adapter).explain(x, 1, composite=composite)
    share = usual.relevance_sum / usual.scores
    assert bool(((share > 0) & (share <= 1 + 1e-4)).all()), share
    assert torch.isfinite(usual.relevance).all() and usual.relevance.shape == x.shape
    _assert_unchanged(net, before)


def test_lrp_takes_the_z_box_bounds_from_the_adapter() -> None:
    net = _network(norm=True)
    x = _inputs() * 0.1
    with pytest.raises(ValueError, match="pass low= and high="):
        lrp(net, x, 0)  # a bare module: the bounds are unknown
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    by_adapter = lrp(adapt(net, mean=mean, std=std), x, 0)
    by_option = lrp(net, x, 0, low=(-2.0,) * 3, high=(2.0,) * 3)
    torch.testing.assert_close(by_adapter, by_option)


# --- the adapter ---------------------------------------------------------------------------


def test_adapt_a_loaded_model_gives_its_parts(lite: LoadedModel) -> None:
    a = adapt(lite)
    assert isinstance(a, ModelAdapter) and adapt(a) is a
    assert a.module is lite.model and a.classes is lite.classes and a.name == "efficientnet_lite0"
    assert a.preprocess is lite.preprocess and a.default_layer == "head" and a.input_size == (224, 224)
    assert a.mean == tuple(lite.preprocess.mean) and a.std == tuple(lite.preprocess.std)
    assert a.layer_names is not None and a.layer_names[0] == "stem" and a.layer_names[-1] == "head"
    assert isinstance(a.bounds, PixelBounds)
    low, high = a.bounds.box
    assert low == pytest.approx(-127 / 128) and high == pytest.approx(1.0)
    assert a.device == torch.device("cpu") and a.dtype == torch.float32
    x = a.inputs("chelsea")
    assert x.shape == (1, 3, 224, 224)
    torch.testing.assert_close(x, lite.inputs("chelsea"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.name = "other"  # type: ignore[misc]


def test_adapt_a_bare_module_guesses_the_layer_and_takes_mean_and_std() -> None:
    net = _network()
    a = adapt(net)
    assert a.module is net and a.classes is None and a.preprocess is None and a.name == "SmallResNet"
    assert a.mean is None and a.bounds is None and a.input_size is None
    assert a.default_layer == "blocks.1" == guess_default_layer(net)
    b = adapt(net, mean=[0.5, 0.25, 0.0], std=(0.5, 0.25, 1.0))
    assert b.bounds == PixelBounds((-1.0, -1.0, 0.0), (1.0, 3.0, 1.0))
    assert b.bounds.box == (-1.0, 3.0)
    with pytest.raises(TypeError, match="images must be a preprocessed torch.Tensor"):
        a.inputs("chelsea")
    # GradCAM on a bare module uses the guessed layer
    assert GradCAM(net).layer == "blocks.1"
    assert guess_default_layer(nn.Sequential(nn.Linear(3, 3))) is None


def test_adapt_rejects_what_it_cannot_use_naming_the_argument(lite: LoadedModel) -> None:
    net = nn.Sequential(nn.Conv2d(3, 2, 1))
    with pytest.raises(TypeError, match="model must be a LoadedModel.*got str"):
        adapt("efficientnet_lite0")
    with pytest.raises(ValueError, match="mean was given without std"):
        adapt(net, mean=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="std must be positive"):
        adapt(net, mean=(0.5, 0.5, 0.5), std=(0.5, 0.0, 0.5))
    with pytest.raises(ValueError, match="same number of channels"):
        adapt(net, mean=(0.5, 0.5), std=(0.5, 0.5, 0.5))
    with pytest.raises(TypeError, match="mean must be a sequence"):
        adapt(net, mean=0.5, std=(0.5,))
    with pytest.raises(TypeError, match="std must hold numbers"):
        adapt(net, mean=(0.5,), std=("a",))
    with pytest.raises(ValueError, match="mean must hold finite"):
        adapt(net, mean=(float("nan"),), std=(1.0,))
    # given for a loaded model they replace its own, in the preprocessing too
    other = adapt(lite, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert other.preprocess is not None and other.preprocess.mean == (0.5, 0.5, 0.5)
    assert other.module is lite.model and adapt(lite).mean != other.mean


def test_methods_accept_an_adapter_like_the_loaded_model(lite: LoadedModel) -> None:
    x = lite.preprocess("chelsea")
    a = IntegratedGradients(lite)
    b = IntegratedGradients(adapt(lite))
    assert a.pixel_mean == b.pixel_mean and a.input_box == b.input_box
    torch.testing.assert_close(a.attribute(x, 285, steps=4), b.attribute(x, 285, steps=4))
    tiny = LoadedModel("tiny", _network(), Preprocess(size=(32, 32)), lite.classes, "blocks.0")
    assert adapt(tiny).default_layer == "blocks.0"


def test_only_the_models_package_tells_a_loaded_model_from_a_module() -> None:
    """Outside vizwidgets/models, the files of the methods never test for LoadedModel or read
    a preprocessing's mean and std: they ask the adapter."""
    patterns = re.compile(r"isinstance\([^)]*LoadedModel|getattr\([^)]*\"(preprocess|mean|std)\"|unwrap_model")
    files = [
        *(ROOT / "vizwidgets" / "attribution").rglob("*.py"),
        *(ROOT / "vizwidgets" / "synthesis").rglob("*.py"),
        ROOT / "vizwidgets" / "features.py",
        ROOT / "vizwidgets" / "metrics.py",
    ]
    offenders = [str(p.relative_to(ROOT)) for p in files if patterns.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_importing_vizwidgets_nn_is_cheap_and_the_package_stays_light() -> None:
    code = "import sys, vizwidgets; assert 'torch' not in sys.modules; import vizwidgets.nn"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_method_packages_have_no_file_over_450_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for folder in ("attribution", "synthesis", "models")
        for path in (ROOT / "vizwidgets" / folder).rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > 450
    }
    assert long == {}
