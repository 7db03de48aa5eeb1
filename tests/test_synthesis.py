"""vizwidgets.synthesis: maximisation, fooling, style transfer, inversion; and the shared ops.

The loss functions are checked against values computed by hand; the loops against what they
promise to do to the model's output (an objective raised, a model fooled, a loss lowered).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from vizwidgets._ops import total_variation
from vizwidgets.synthesis import (
    STYLE_PRESETS,
    Channel,
    ClassLogit,
    Neuron,
    content_loss,
    fgsm,
    fool,
    fooling_image,
    gram_matrix,
    invert_features,
    maximize,
    pgd,
    pixel_model,
    style_loss,
    style_transfer,
    to_pixels,
)
from vizwidgets.synthesis.style import _features

EPS = 8 / 255
FLOAT_SLACK = 1e-6  # float32 rounding of (x + eps) - x


def hooks_of(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def assert_untouched(lite, before: dict) -> None:
    assert hooks_of(lite.model) == 0
    assert not lite.model.training
    assert not any(p.requires_grad for p in lite.model.parameters())
    assert all(torch.equal(before[k], v) for k, v in lite.model.state_dict().items())


# ----------------------------------------------------------------------------- losses by hand


def test_total_variation_by_hand() -> None:
    x = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    # one position with both neighbours: right 1 - 0, down 2 - 0 -> 1 + 4
    assert float(total_variation(x)[0]) == pytest.approx(5.0, rel=1e-6)
    assert float(total_variation(x, beta=1.0)[0]) == pytest.approx(math.sqrt(5.0), rel=1e-6)
    y = torch.tensor([[[[0.0, 1.0, 3.0], [1.0, 1.0, 0.0], [2.0, 0.0, 0.0]]]])
    # positions (0,0): 1 + 1; (0,1): 4 + 0; (1,0): 0 + 1; (1,1): 1 + 1 -> mean 9 / 4
    assert float(total_variation(y)[0]) == pytest.approx(9 / 4, rel=1e-6)
    # two channels add; a constant image has none
    assert float(total_variation(torch.cat([y, y], dim=1))[0]) == pytest.approx(9 / 2, rel=1e-6)
    assert float(total_variation(torch.full((2, 3, 8, 8), 0.3)).abs().max()) == 0.0


def test_gram_matrix_by_hand() -> None:
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)  # C = 2 channels, M = 2 positions
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 2
    torch.testing.assert_close(gram_matrix(f), expected, rtol=1e-6, atol=0)
    batch = torch.randn(3, 4, 5, 6)
    for i in range(3):
        flat = batch[i].reshape(4, 30)
        torch.testing.assert_close(gram_matrix(batch)[i], flat @ flat.T / 30, rtol=1e-6, atol=1e-6)


def test_content_and_style_losses_by_hand() -> None:
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)
    p = torch.tensor([[1.0, 0.0], [3.0, 1.0]]).view(1, 2, 1, 2)
    # differences 0, 2, 0, 3 -> mean of squares 13 / 4
    assert float(content_loss(f, p)[0]) == pytest.approx(13 / 4, rel=1e-6)
    a = torch.tensor([[[2.0, 5.0], [5.0, 12.0]]])
    # G = [[2.5, 5.5], [5.5, 12.5]]; G - A = [[0.5, 0.5], [0.5, 0.5]]; sum of squares 1; / (4 * 2^2)
    assert float(style_loss(f, a)[0]) == pytest.approx(1 / 16, rel=1e-6)
    # Gatys et al.'s form with the raw Gram matrix F F^T agrees: 1 / (4 C^2 M^2) sum (FF^T - M A)^2
    raw = f.view(2, 2) @ f.view(2, 2).T
    gatys = ((raw - 2 * a[0]) ** 2).sum() / (4 * 2**2 * 2**2)
    assert float(style_loss(f, a)[0]) == pytest.approx(float(gatys), rel=1e-6)


def test_style_loss_is_zero_for_the_style_image_itself(lite) -> None:
    pm = pixel_model(lite)
    s = to_pixels(pm, "starry_night")
    preset = STYLE_PRESETS["efficientnet_lite0"]
    with torch.no_grad():
        feats = _features(pm, s, preset.style)
    for name in preset.style:
        assert float(style_loss(feats[name], gram_matrix(feats[name]))[0]) == 0.0


# ----------------------------------------------------------------------------- style transfer


def test_style_transfer_lowers_the_loss_tenfold(lite) -> None:
    before = copy.deepcopy(lite.model.state_dict())
    result = style_transfer(lite, "chelsea", "starry_night", steps=80, progress=False)
    assert result.image.shape == (1, 3, 224, 224)
    assert float(result.image.min()) >= 0 and float(result.image.max()) <= 1
    # measured: 5781 -> about 40 at 80 steps, 7.2 at 200
    assert result.final_loss * 10 <= result.start_loss
    assert result.losses[0]["content"] == 0.0  # it starts from the photo
    assert result.steps == 80 and len(result.losses) == 80
    assert_untouched(lite, before)


def test_style_transfer_with_lbfgs_also_descends(lite) -> None:
    result = style_transfer(lite, "chelsea", "starry_night", steps=25, optimizer="lbfgs", progress=False)
    assert result.final_loss * 10 <= result.start_loss


def test_style_transfer_rejects_bad_input(lite) -> None:
    small = torch.rand(1, 3, 100, 100)
    with pytest.raises(ValueError, match="style image is \\(100, 100\\) pixels.*resize"):
        style_transfer(lite, "chelsea", small, steps=1, progress=False)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        style_transfer(lite, "chelsea", "starry_night", optimizer="sgd", progress=False)
    with pytest.raises(ValueError, match="steps must be at least 1"):
        style_transfer(lite, "chelsea", "starry_night", steps=0, progress=False)
    with pytest.raises(ValueError, match="no style-transfer layer preset for 'resnet50'"):
        style_transfer(lite, "chelsea", "starry_night", preset="resnet50", progress=False)
    with pytest.raises(ValueError, match="pixel values must lie in \\[0, 1\\].*inverse"):
        style_transfer(lite, lite.preprocess("chelsea"), "starry_night", progress=False)


def test_style_presets_name_rectified_layers() -> None:
    import torchvision

    import vizwidgets as vw

    lite = vw.load_model()
    for name in (*STYLE_PRESETS["efficientnet_lite0"].content, *STYLE_PRESETS["efficientnet_lite0"].style):
        module = lite.model.get_submodule(name)
        assert isinstance(getattr(module, "act", None), nn.ReLU6), name
    with torch.device("meta"):  # architecture only: no weights, no memory
        nets = {"vgg16": torchvision.models.vgg16(), "vgg19": torchvision.models.vgg19()}
    for key, net in nets.items():
        preset = STYLE_PRESETS[key]
        for name in (*preset.content, *preset.style):
            assert isinstance(net.get_submodule(name), nn.ReLU), (key, name)
        # relu1_1 follows the first convolution; the content layer is one conv after relu4_1
        assert preset.style[0] == "features.1"
        assert int(preset.content[0].split(".")[1]) == int(preset.style[3].split(".")[1]) + 2


def test_feature_inversion_brings_the_features_close(lite) -> None:
    result = invert_features(lite, "chelsea", "blocks.3", steps=40, progress=False)
    # measured: relative distance 2.2 from noise, 0.11 after 100 steps
    assert result.final_distance * 5 <= result.start_distance
    with pytest.raises(ValueError, match="blocks.99"):
        invert_features(lite, "chelsea", "blocks.99", progress=False)


# ----------------------------------------------------------------------------- maximisation


def test_channel_maximisation_raises_the_objective_fivefold(lite) -> None:
    before = copy.deepcopy(lite.model.state_dict())
    result = maximize(lite, Channel("head", 7), steps=48, progress=False)
    assert result.start_value > 0  # the noise start excites the channel a little
    assert result.final_value >= 5 * result.start_value
    assert len(result.trace) == 48 and result.steps == 48
    assert float(result.image.min()) >= 0 and float(result.image.max()) <= 1
    assert_untouched(lite, before)


def test_neuron_maximisation_with_pixels_raises_the_objective(lite) -> None:
    result = maximize(lite, Neuron("blocks.10", 3), steps=32, parametrization="pixels", blur_every=4, progress=False)
    assert result.final_value > result.start_value + 1.0
    assert result.objective == "neuron 3 of blocks.10 at the centre"


def test_class_visualisation_ends_in_the_top5(lite) -> None:
    goldfinch = lite.classes.resolve("goldfinch")
    result = maximize(lite, "goldfinch", steps=64, progress=False)
    pm = pixel_model(lite)
    with torch.no_grad():
        top5 = pm(result.image).topk(5, dim=1).indices[0].tolist()
    assert goldfinch in top5
    assert result.final_value > result.start_value
    assert result.objective == f"class {goldfinch} (goldfinch)"


def test_maximisation_is_reproducible_from_its_seed(lite) -> None:
    a = maximize(lite, Channel("blocks.5", 2), steps=3, seed=1, progress=False)
    b = maximize(lite, Channel("blocks.5", 2), steps=3, seed=1, progress=False)
    c = maximize(lite, Channel("blocks.5", 2), steps=3, seed=2, progress=False)
    assert torch.equal(a.image, b.image) and a.trace == b.trace
    assert not torch.equal(a.image, c.image)


def test_an_interrupt_returns_the_result_so_far_and_leaves_the_model(lite) -> None:
    before = copy.deepcopy(lite.model.state_dict())
    lite.model.train()  # a model in training mode comes back in training mode

    seen = []

    def stop(step: int, numbers: dict, image: torch.Tensor) -> None:
        seen.append(image.shape)
        if step == 2:
            raise KeyboardInterrupt

    try:
        with pytest.warns(RuntimeWarning, match="interrupted after 3 of 50 steps"):
            result = maximize(lite, Channel("head", 7), steps=50, callback=stop, progress=False)
        assert lite.model.training
    finally:
        lite.model.eval()
    assert result.interrupted and result.steps == 3 and len(result.trace) == 3
    assert seen == [(1, 3, 224, 224)] * 3  # the callback sees the image so far
    assert result.image.shape == (1, 3, 224, 224)
    assert_untouched(lite, before)


def test_maximisation_rejects_bad_input(lite) -> None:
    cases = [
        (Channel("blocks.99", 0), {}, "blocks.99"),
        (Channel("head", 1280), {}, "channel 1280 is out of range: layer 'head' has 1280 channels"),
        (Neuron("head", 0, (9, 0)), {}, "position \\(9, 0\\) is outside the 7x7 feature map of layer 'head'"),
        (ClassLogit(1000), {}, "class 1000 is out of range"),
        ("no such class at all", {}, "no such class"),
        (Channel("head", 0), {"steps": 0}, "steps must be at least 1"),
        (Channel("head", 0), {"parametrization": "wavelet"}, "parametrization must be one of"),
        (Channel("head", 0), {"blur_every": 4}, "blur_every only applies to parametrization='pixels'"),
        (Channel("head", 0), {"lr": -1.0}, "lr must be positive"),
    ]
    for objective, options, words in cases:
        with pytest.raises(ValueError, match=words):
            maximize(lite, objective, progress=False, **options)
    with pytest.raises(TypeError, match="objective must be"):
        maximize(lite, 3.5, progress=False)
    assert hooks_of(lite.model) == 0


# ----------------------------------------------------------------------------- fooling

FIVE = ["chelsea", "coffee", "rocket", "orange", "baboon"]


def test_targeted_attack_fools_five_images_within_budget(lite) -> None:
    before = copy.deepcopy(lite.model.state_dict())
    goldfinch = lite.classes.resolve("goldfinch")
    result = fool(lite, FIVE, "goldfinch", confidence=0.9, max_steps=100, epsilon=EPS, progress=False)
    assert (result.original_class != goldfinch).all()
    assert result.success.all(), result.confidence
    assert (result.predicted == goldfinch).all()
    assert all(c[-1] >= 0.9 for c in result.confidence)
    assert int(result.steps.max()) <= 100
    assert float(result.linf.max()) <= EPS + FLOAT_SLACK
    # the model really says so on the returned images
    pm = pixel_model(lite)
    with torch.no_grad():
        p = pm(result.images).softmax(dim=1)[:, goldfinch]
    assert (p >= 0.9).all()
    assert_untouched(lite, before)


def test_fgsm_spends_exactly_its_budget(lite) -> None:
    pm = pixel_model(lite)
    x = to_pixels(pm, ["chelsea", "rocket"])
    result = fgsm(lite, x, epsilon=EPS)
    delta = result.perturbation
    assert float(delta.abs().max()) <= EPS + FLOAT_SLACK
    # every pixel value moves by exactly epsilon unless the [0, 1] range cuts the move short
    inside = (x > EPS) & (x < 1 - EPS)
    assert torch.allclose(delta.abs()[inside], torch.full_like(delta[inside], EPS), atol=FLOAT_SLACK)
    # untargeted: the original class loses probability on both images
    assert all(c[1] < c[0] for c in result.confidence)


def test_pgd_stays_in_budget_and_fools(lite) -> None:
    result = pgd(lite, ["chelsea", "rocket"], epsilon=EPS, steps=5, progress=False)
    assert float(result.linf.max()) <= EPS + FLOAT_SLACK
    assert float(result.images.min()) >= 0 and float(result.images.max()) <= 1
    assert result.success.all() and (result.predicted != result.original_class).all()
    targeted = pgd(lite, "chelsea", "goldfinch", epsilon=2 / 255, step_size=0.5 / 255, steps=5, progress=False)
    assert float(targeted.linf.max()) <= 2 / 255 + FLOAT_SLACK
    assert targeted.confidence[0][-1] > targeted.confidence[0][0]


def test_fooling_image_from_noise(lite) -> None:
    result = fooling_image(lite, "goldfinch", confidence=0.99, max_steps=100, progress=False)
    assert result.success.all() and result.confidence[0][-1] >= 0.99
    assert result.confidence[0][0] < 0.01  # noise is not a goldfinch to begin with


def test_attacks_reject_bad_input(lite) -> None:
    with pytest.raises(ValueError, match="epsilon is in pixel units"):
        fgsm(lite, "chelsea", epsilon=8)
    with pytest.raises(ValueError, match="confidence must be a probability"):
        fool(lite, "chelsea", "goldfinch", confidence=1.5, progress=False)
    with pytest.raises(ValueError, match="class 1000 is out of range"):
        fool(lite, "chelsea", 1000, progress=False)
    with pytest.raises(ValueError, match="2 targets given for 1 images"):
        pgd(lite, "chelsea", [1, 2], progress=False)
    with pytest.raises(ValueError, match="needs a target"):
        fool(lite, "chelsea", None, progress=False)
    with pytest.raises(ValueError, match="max_steps must be at least 1"):
        fool(lite, "chelsea", 1, max_steps=0, progress=False)
    with pytest.raises(ValueError, match="pixel values must lie in \\[0, 1\\]"):
        fgsm(lite, lite.preprocess("chelsea"))
    assert hooks_of(lite.model) == 0


def test_a_bare_module_needs_its_normalisation() -> None:
    with pytest.raises(ValueError, match="pass mean=.*and std="):
        pixel_model(nn.Sequential(nn.Conv2d(3, 2, 1)))
    # with them it works: pixels in, logits out
    pm = pixel_model(nn.Sequential(nn.Conv2d(3, 2, 1), nn.Flatten()), mean=(0.5,) * 3, std=(0.25,) * 3)
    assert pm(torch.full((1, 3, 1, 1), 0.5)).shape == (1, 2)
