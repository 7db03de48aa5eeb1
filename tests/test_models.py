"""vizwidgets.models: the offline EfficientNet-Lite0, torchvision models, classes, layers."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from vizwidgets.models import (
    MODELS,
    ClassNames,
    LoadedModel,
    Preprocess,
    WeightsNotFoundError,
    available_models,
    list_layers,
    load_model,
    torch_cache_dir,
)
from vizwidgets.models.efficientnet_lite import (
    WEIGHTS_FILE,
    EfficientNetLite0,
    SamePad2d,
    checkpoint_key_map,
    load_checkpoint,
    weights_path,
)

# ../shared/images/PROVENANCE.md: top-1 of the default model, 224x224 bicubic resize, no crop.
EXPECTED_TOP1 = {
    "chelsea": (285, "Egyptian cat", 0.77),
    "coffee": (967, "espresso", 0.90),
    "chicky_512": (154, "Pekinese", 0.77),
    "squirrel_cls": (335, "fox squirrel", 0.70),
    "butterfly": (323, "monarch", 0.68),
    "baboon": (372, "baboon", 0.74),
    "orange": (950, "orange", 0.81),
    "apple": (948, "Granny Smith", 0.73),
    "grace_hopper": (652, "military uniform", 0.46),
}


# --- the pretrained model gives the published answers ------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED_TOP1))
def test_default_model_top1_matches_provenance_table(lite: LoadedModel, name: str) -> None:
    index, label, probability = EXPECTED_TOP1[name]
    top = lite.predict(name, k=5)
    assert (top[0].index, top[0].label) == (index, label)
    assert abs(top[0].probability - probability) <= 0.05
    assert [p.probability for p in top] == sorted((p.probability for p in top), reverse=True)


def test_bundled_catalogue_agrees_with_the_table() -> None:
    from vizwidgets.data import sample_images

    listed = {s.name: s.expected_class for s in sample_images() if s.name in EXPECTED_TOP1}
    assert listed == {name: value[0] for name, value in EXPECTED_TOP1.items()}


def test_batched_logits_equal_per_image_logits(lite: LoadedModel) -> None:
    names = ["chelsea", "coffee", "baboon"]
    with torch.no_grad():
        batched = lite(names)
        single = torch.cat([lite(name) for name in names])
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=1e-4)


# --- the architecture is the one the checkpoint was trained as ---------------------------


def test_checkpoint_maps_one_to_one_onto_the_model() -> None:
    model = EfficientNetLite0()
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    mapping = checkpoint_key_map(model)
    assert len(state) == 296
    assert sorted(mapping) == sorted(model.state_dict())
    assert sorted(mapping.values()) == sorted(state)
    assert mapping["blocks.3.depthwise.conv.weight"] == "_blocks.3._depthwise_conv.weight"
    assert mapping["stem.conv.weight"] == "_conv_stem.weight"
    assert mapping["classifier.weight"] == "_fc.weight"
    assert sum(p.numel() for p in model.parameters()) == 4_652_008


def test_weights_are_loaded_with_weights_only(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict] = []
    real_load = torch.load

    def recording_load(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    load_model()
    assert calls and all(call.get("weights_only") is True for call in calls)


def test_a_wrong_checkpoint_is_refused_and_changes_nothing() -> None:
    model = EfficientNetLite0()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = dict(torch.load(weights_path(), map_location="cpu", weights_only=True))
    del state["_blocks.7._bn1.running_var"]
    state["_extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"_blocks\.7\._bn1\.running_var.*_extra\.weight"):
        load_checkpoint(model, state)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


def test_activations_are_relu6_modules_never_in_place(lite: LoadedModel) -> None:
    activations = [m for m in lite.model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
    # stem + head + 16 depthwise + 15 expand convolutions each end in a ReLU6
    assert len(activations) == 2 + 16 + 15
    assert all(type(m) is nn.ReLU6 and not m.inplace for m in activations)
    names = dict(lite.model.named_modules())
    for name in ["stem", "head", "classifier", "blocks.0", "blocks.15", "blocks.3.depthwise.act"]:
        assert name in names


@pytest.mark.parametrize(
    ("length", "kernel", "stride", "expected"),
    [
        # out = ceil(L / s); total = (out - 1) * s + k - L; TensorFlow puts the extra one last
        (224, 3, 2, (0, 1)),  # out 112: 111 * 2 + 3 - 224 = 1
        (56, 5, 2, (1, 2)),  # out 28: 27 * 2 + 5 - 56 = 3
        (5, 3, 2, (1, 1)),  # out 3: 2 * 2 + 3 - 5 = 2
        (7, 1, 2, (0, 0)),  # out 4: 3 * 2 + 1 - 7 = 0
        (13, 5, 1, (2, 2)),  # stride 1: k - 1 = 4, split evenly
    ],
)
def test_same_padding_matches_tensorflow(length, kernel, stride, expected) -> None:
    pad = SamePad2d(kernel, stride)
    assert pad._amount(length) == expected
    x = torch.ones(1, 1, length, length)
    out = nn.functional.conv2d(pad(x), torch.ones(1, 1, kernel, kernel), stride=stride)
    assert out.shape[-1] == math.ceil(length / stride)
    # the first output sees `before` padded rows: its window covers (k - before)^2 ones
    before = expected[0]
    assert out[0, 0, 0, 0].item() == (kernel - before) ** 2


# --- preprocessing -----------------------------------------------------------------------


def test_lite_preprocessing_is_x_minus_127_over_128(lite: LoadedModel) -> None:
    pixels = np.zeros((224, 224, 3), dtype=np.uint8)
    pixels[0, 0] = (0, 127, 255)
    x = lite.preprocess(pixels)
    assert x.shape == (1, 3, 224, 224) and x.dtype == torch.float32
    assert x[0, :, 0, 0].tolist() == pytest.approx([-127 / 128, 0.0, 1.0], abs=1e-6)
    back = lite.preprocess.inverse(x[0])
    assert back.shape == (224, 224, 3)
    assert back[0, 0].tolist() == pytest.approx([0.0, 127 / 255, 1.0], abs=1e-6)


def test_preprocess_resizes_without_cropping() -> None:
    # a 40x20 image whose left half is black and right half white stays split down the middle
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, 20:] = 255
    out = Preprocess(size=(8, 8), mean=(0, 0, 0), std=(1, 1, 1), resample="nearest")(pixels)
    assert out.shape == (1, 3, 8, 8)
    assert torch.all(out[..., :4] == 0) and torch.all(out[..., 4:] == 1)


def test_preprocess_batches_and_checks_input(lite: LoadedModel) -> None:
    assert lite.preprocess(["chelsea", "coffee"]).shape == (2, 3, 224, 224)
    with pytest.raises(ValueError, match="no images"):
        lite.preprocess([])
    with pytest.raises(ValueError, match="resample"):
        Preprocess(resample="cubic")
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        lite.inputs(torch.zeros(3, 224, 224))
    with pytest.raises(TypeError):
        lite.preprocess.inverse(np.zeros((3, 4, 4)))


# --- class names -------------------------------------------------------------------------


def test_class_lookup_by_index_name_and_fragment(lite: LoadedModel) -> None:
    classes = lite.classes
    assert len(classes) == 1000
    assert classes[281] == "tabby" and classes[285] == "Egyptian cat"
    assert classes.index("tabby") == 281
    assert classes.index("EGYPTIAN cat") == 285
    assert classes.index("egyptian") == 285  # a unique fragment
    assert classes.index("tiger") == 292  # a whole name beats "tiger cat", "tiger shark"
    assert classes.index("crane") == 517 and classes.index("crane bird") == 134
    assert classes.resolve(" 281 ") == 281 and classes.resolve(281) == 281
    assert (281, "tabby") in classes.search("tab")


def test_class_lookup_errors_name_the_problem(lite: LoadedModel) -> None:
    classes = lite.classes
    with pytest.raises(ValueError, match=r"out of range.*0 to 999"):
        classes.resolve(1000)
    with pytest.raises(ValueError, match="out of range"):
        classes.resolve(-1)
    with pytest.raises(IndexError, match="out of range"):
        classes[1000]
    with pytest.raises(ValueError, match=r"'cat' matches 8 classes: .*285 'Egyptian cat'"):
        classes.index("cat")
    with pytest.raises(ValueError, match=r"no class .*'tabbby'.*Close names: .*'tabby'"):
        classes.index("tabbby")
    with pytest.raises(TypeError):
        classes.resolve(2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ClassNames([])


# --- loading models by name --------------------------------------------------------------


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'resnet19'.*efficientnet_lite0.*resnet18"):
        load_model("resnet19")
    with pytest.raises(TypeError):
        load_model(18)  # type: ignore[arg-type]


def test_required_torchvision_models_are_offered() -> None:
    for name in ["resnet18", "resnet50", "vgg16", "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny"]:
        assert name in available_models()
    assert available_models()[0] == "efficientnet_lite0"


def test_missing_torchvision_weights_offline_give_one_clear_error(torch_home) -> None:
    for download in (True, False):  # True tries the (blocked) network first
        with pytest.raises(WeightsNotFoundError) as caught:
            load_model("resnet18", download=download)
        message = str(caught.value)
        assert "resnet18-f37072fd.pth" in message
        assert str(torch_home / "hub" / "checkpoints") in message
        assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert not any((torch_home / "hub" / "checkpoints").glob("*"))  # no partial file left


def test_cached_torchvision_weights_load_offline(torch_home) -> None:
    import torchvision

    reference = torchvision.models.resnet18(weights=None)
    torch_cache_dir().mkdir(parents=True)
    torch.save(reference.state_dict(), torch_cache_dir() / "resnet18-f37072fd.pth")
    loaded = load_model("resnet18")
    for key, value in reference.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value)
    assert not loaded.model.training
    assert not any(p.requires_grad for p in loaded.model.parameters())
    assert loaded.classes[281] == "tabby"
    assert loaded.default_layer in [layer.name for layer in loaded.layers()]


def test_corrupt_cached_weights_say_so(torch_home) -> None:
    torch_cache_dir().mkdir(parents=True)
    (torch_cache_dir() / "resnet18-f37072fd.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsNotFoundError, match="corrupt.*delete it"):
        load_model("resnet18")


@pytest.mark.parametrize("name", [n for n, s in MODELS.items() if s.source == "torchvision"])
def test_each_torchvision_default_layer_is_listed(name: str) -> None:
    import torchvision

    model = torchvision.models.get_model(name, weights=None).eval()
    names = [layer.name for layer in list_layers(model)]
    assert MODELS[name].default_layer in names


# --- list_layers -------------------------------------------------------------------------


def test_list_layers_of_the_default_model(lite: LoadedModel) -> None:
    layers = list_layers(lite)
    assert [layer.name for layer in layers] == ["stem", *(f"blocks.{i}" for i in range(16)), "head"]
    shapes = {layer.name: layer.shape for layer in layers}
    assert shapes["stem"] == (32, 112, 112)
    assert shapes["blocks.2"] == (24, 56, 56)
    assert shapes["blocks.4"] == (40, 28, 28)
    assert shapes["blocks.10"] == (112, 14, 14)
    assert shapes["blocks.15"] == (320, 7, 7)
    assert shapes["head"] == (1280, 7, 7)
    assert lite.default_layer == "head"
    # other sizes: "same" padding gives ceil(L / 32) at the head
    assert {layer.name: layer.shape for layer in list_layers(lite, (100, 230))}["head"] == (1280, 4, 8)
    assert len(list_layers(lite, all=True)) > len(layers)


def test_list_layers_of_a_torchvision_resnet() -> None:
    import torchvision

    layers = {layer.name: layer for layer in list_layers(torchvision.models.resnet18(weights=None))}
    assert layers["layer4"].shape == (512, 7, 7)
    assert layers["layer1.0"].type == "BasicBlock"
    assert "bn1" not in layers and "avgpool" not in layers  # normalisation, 1x1 map


def test_list_layers_leaves_the_model_as_it_was() -> None:
    model = EfficientNetLite0().train()
    model.blocks[3].eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    list_layers(model)
    assert model.training and not model.blocks[3].training and model.blocks[4].training
    for key, value in model.state_dict().items():  # BatchNorm statistics untouched
        assert torch.equal(value, before[key])
    assert all(not m._forward_hooks for m in model.modules())


class _FailsAfterFirstLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.act(self.conv(x))
        raise RuntimeError("broken on purpose")


def test_list_layers_removes_hooks_when_the_forward_fails() -> None:
    model = _FailsAfterFirstLayer().train()
    with pytest.raises(RuntimeError, match="broken on purpose"):
        list_layers(model)
    assert all(not m._forward_hooks for m in model.modules())
    assert model.training


def test_list_layers_rejects_bad_arguments(lite: LoadedModel) -> None:
    with pytest.raises(TypeError):
        list_layers("efficientnet_lite0")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="input_size"):
        list_layers(lite, (0, 224))


# --- the package stays light -------------------------------------------------------------


def test_import_vizwidgets_loads_neither_torch_nor_a_model() -> None:
    code = (
        "import sys, vizwidgets; "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "assert callable(vizwidgets.load_image) and 'torch' not in sys.modules; "
        "print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_predict_on_an_image_object_equals_predict_on_its_name(lite: LoadedModel) -> None:
    from vizwidgets.data import load_image

    image = load_image("coffee")
    assert isinstance(image, Image.Image)
    assert lite.predict(image) == lite.predict("coffee")
    assert WEIGHTS_FILE in str(weights_path())
