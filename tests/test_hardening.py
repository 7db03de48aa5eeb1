"""Hostile input: every method refuses bad inputs, targets and options with our own message and
leaves the model as it was; chunks stay within the memory budget; results that say nothing
come with a warning; synthesis sizes and weights are capped.

The bad cases are the ones an attack on the project found surfacing from inside PyTorch or
NumPy ("Given groups=1, weight of size [32, 3, 3, 3], expected input ... to have 3 channels",
"expected scalar type Double but found Float", a meta tensor, ``samples=float('inf')``, a NumPy
array as target, ``seed=2**70``, ``gamma=1e300``), or passing without a word (1 x 1 and 8 x 8
images, inputs scaled by 1e30, ``style_weight=1e300``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import vizwidgets.attribution as attribution_module
from vizwidgets.attribution import METHODS, attribute
from vizwidgets.attribution.base import AttributionWarning, Option
from vizwidgets.attribution.limits import _PROFILES, MEMORY_BUDGET_ENV, model_profile, row_bytes, rows_per_pass
from vizwidgets.synthesis import fooling_image, maximize, pixel_model, style_transfer, to_pixels
from vizwidgets.synthesis import style as style_module

#: Text that only PyTorch's or NumPy's own errors contain.
INTERNAL_PHRASES = (
    "Given groups",
    "expected scalar type",
    "expected input",
    "mat1 and mat2",
    "meta tensors",
    "Expected all tensors",
    "cannot convert float",
    "only integer scalar arrays",
    "truth value of an array",
    "Overflow when unpacking",
)


# --- the model's state, before and after ---------------------------------------------------


def _hooks(model: nn.Module) -> list[str]:
    """Names of modules that still hold a hook of any kind."""
    return [
        name
        for name, m in model.named_modules()
        if m._forward_hooks or m._backward_hooks or m._forward_pre_hooks or m._backward_pre_hooks
    ]


def _snapshot(model: nn.Module) -> dict[str, Any]:
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "training": [(name, m.training) for name, m in model.named_modules()],
        "requires_grad": [(name, p.requires_grad) for name, p in model.named_parameters()],
        "grad": [(name, None if p.grad is None else p.grad.detach().clone()) for name, p in model.named_parameters()],
        "modules": [(name, type(m)) for name, m in model.named_modules()],
    }


def _assert_unchanged(model: nn.Module, before: dict[str, Any]) -> None:
    assert _hooks(model) == [], f"hooks left on {_hooks(model)[:5]}"
    after = _snapshot(model)
    assert after["modules"] == before["modules"]
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    assert after["state"].keys() == before["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(after["state"][key], value), key
    for (name, grad), (_, expected) in zip(after["grad"], before["grad"]):
        assert (grad is None) == (expected is None), name
        assert grad is None or torch.equal(grad, expected), name


@pytest.fixture(params=["eval", "train"])
def guarded(lite, request) -> Iterator[nn.Module]:
    """The default model in eval or training mode, one parameter with ``requires_grad`` and a
    ``.grad``; after the test it must be exactly as before, and it is then put back as loaded."""
    model = lite.model
    loaded_state = _snapshot(model)
    probe = next(model.parameters())
    try:
        model.train(request.param == "train")
        probe.requires_grad_(True)
        probe.grad = torch.full_like(probe, 0.5)
        _PROFILES.clear()  # the first call probes the model again, here, in this mode
        before = _snapshot(model)
        yield model
        _assert_unchanged(model, before)
    finally:
        probe.grad = None
        for (name, flag) in loaded_state["requires_grad"]:
            model.get_parameter(name).requires_grad_(flag)
        for name, training in loaded_state["training"]:
            model.get_submodule(name).training = training


@pytest.fixture(scope="module")
def small(lite) -> torch.Tensor:
    """Two preprocessed images at 32 x 32, the smallest size the default model takes."""
    return F.interpolate(lite.preprocess(["chelsea", "chicky_512"]), size=(32, 32), mode="bilinear", antialias=True)


# --- the bad cases -------------------------------------------------------------------------


def _bad_inputs(x: torch.Tensor) -> dict[str, torch.Tensor]:
    return {
        "one channel": x[:, :1],
        "four channels": torch.cat([x, x[:, :1]], dim=1),
        "float64": x.double(),
        "float16": x.half(),
        "meta device": torch.empty(x.shape, device="meta"),
        "1 x 1": x[:, :, :1, :1],
        "8 x 8": x[:, :, :8, :8],
    }


BAD_TARGETS: dict[str, Any] = {
    "NumPy 2-D array": np.array([[285], [154]]),
    "NumPy float array": np.array([285.0, 154.0]),
    "NumPy array of the wrong length": np.array([285, 154, 1]),
    "float": 285.0,
    "bool": True,
    "out of range": 1000,
    "huge": 2**70,
}


def _bad_options(method: type) -> dict[str, dict[str, Any]]:
    cases: dict[str, dict[str, Any]] = {}
    for option in method.options:
        if option.kind == "int":
            cases[f"{option.name}=inf"] = {option.name: float("inf")}
            cases[f"{option.name}=nan"] = {option.name: float("nan")}
            cases[f"{option.name}=2.5"] = {option.name: 2.5}
            cases[f"{option.name}=True"] = {option.name: True}
            cases[f"{option.name}=2**70"] = {option.name: 2**70}
        elif option.kind == "float":
            cases[f"{option.name}=1e300"] = {option.name: 1e300}
            cases[f"{option.name}=nan"] = {option.name: float("nan")}
    return cases


def _entries(name: str) -> dict[str, Callable[..., Any]]:
    """The three ways in: attribute(), the class, the function shortcut."""
    method = METHODS[name]
    function = getattr(attribution_module, name)
    return {
        "attribute": lambda model, x, target, **o: attribute(model, x, target, name, **o),
        "class": lambda model, x, target, **o: method(model).attribute(x, target, **o),
        "function": lambda model, x, target, **o: function(model, x, target, **o),
    }


def _problems(call: Callable[[], Any], argument: str) -> str | None:
    """None if ``call`` raises our TypeError/ValueError naming ``argument``; else what is wrong."""
    try:
        call()
    except (TypeError, ValueError) as error:
        message = str(error)
        frame = error.__traceback__
        while frame is not None and frame.tb_next is not None:
            frame = frame.tb_next
        where = frame.tb_frame.f_code.co_filename if frame is not None else ""
        if "vizwidgets" not in where.replace("\\", "/"):
            return f"{type(error).__name__} raised in {where}: {message}"
        leaked = [p for p in INTERNAL_PHRASES if p.lower() in message.lower()]
        if leaked:
            return f"internal text {leaked}: {message}"
        if argument not in message:
            return f"message does not name {argument!r}: {message}"
        return None
    except Exception as error:  # noqa: BLE001 - what is being tested
        return f"{type(error).__name__} (not TypeError/ValueError): {error}"
    return "no error"


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_refuses_bad_input_with_our_message_and_leaves_the_model(guarded, lite, small, name) -> None:
    failures: list[str] = []
    for entry, run in _entries(name).items():
        for case, bad in _bad_inputs(small).items():
            problem = _problems(partial(run, lite, bad, 285), "inputs")
            if problem:
                failures.append(f"{entry}, inputs {case}: {problem}")
        for case, target in BAD_TARGETS.items():
            problem = _problems(partial(run, lite, small, target), "target")
            if problem:
                failures.append(f"{entry}, target {case}: {problem}")
        for case, options in _bad_options(METHODS[name]).items():
            problem = _problems(partial(run, lite, small, 285, **options), next(iter(options)))
            if problem:
                failures.append(f"{entry}, option {case}: {problem}")
    assert not failures, "\n".join(failures)


def test_the_attacks_named_cases_get_messages_that_say_what_to_pass(lite, small) -> None:
    with pytest.raises(ValueError, match=r"1 channel .* first convolution takes 3.*expand"):
        attribute(lite, small[:, :1], 285, "grad_cam")
    with pytest.raises(ValueError, match=r"4 channels .*inputs\[:, :3\]"):
        attribute(lite, torch.cat([small, small[:, :1]], dim=1), 285, "gradient")
    with pytest.raises(ValueError, match=r"inputs are torch.float64 .* inputs.float\(\)"):
        attribute(lite, small.double(), 285, "lrp")
    with pytest.raises(ValueError, match="inputs are on the meta device"):
        attribute(lite, torch.empty(1, 3, 224, 224, device="meta"), 285, "score_cam")
    with pytest.raises(ValueError, match=r"8 x 8 pixels, too small .* downsamples by 32, .* at least 32 pixels"):
        attribute(lite, small[:, :, :8, :8], 285, "gradient")
    with pytest.raises(ValueError, match=r"option 'samples' must be a whole number \(int\) from 1 to 500, got inf"):
        attribute(lite, small, 285, "smoothgrad", samples=float("inf"))
    with pytest.raises(ValueError, match=r"option 'seed' must be at most 2\*\*63 - 1"):
        attribute(lite, small, 285, "smoothgrad", seed=2**70)
    with pytest.raises(ValueError, match=r"option 'gamma' must be at most 1000 \(from 0 to 1000\), got 1e\+300"):
        attribute(lite, small, 285, "lrp", gamma=1e300)
    with pytest.raises(ValueError, match=r"option 'epsilon' must be at most 1000"):
        attribute(lite, small, 285, "lrp", epsilon=1e9)
    with pytest.raises(TypeError, match="target as a NumPy array must hold integer class indices"):
        attribute(lite, small, np.array([285.0, 1.0]), "gradient")
    with pytest.raises(ValueError, match="target class 1000 is out of range: use 0 to 999"):
        attribute(lite, small, 1000, "grad_cam")


def test_natural_targets_and_the_smallest_size_are_accepted(lite, small) -> None:
    expected = attribute(lite, small, [285, 154], "gradient")
    torch.testing.assert_close(attribute(lite, small, np.array([285, 154]), "gradient"), expected)
    torch.testing.assert_close(attribute(lite, small, torch.tensor([285, 154]), "gradient"), expected)
    single = attribute(lite, small[:1], np.int64(285), "gradient")
    torch.testing.assert_close(single, expected[:1], atol=1e-6, rtol=1e-4)
    assert model_profile(lite.model).stride == 32  # 224 / 7: EfficientNet-Lite0 downsamples by 32
    with pytest.raises(ValueError, match="31 x 32 pixels"):
        attribute(lite, small[:, :, :31], 285, "gradient")


def test_integer_and_float_options_are_checked_by_one_helper() -> None:
    count = Option("samples", 25, "int", "", 1, 500)
    assert count.check(np.int64(7), "m") == 7 and type(count.check(np.int64(7), "m")) is int
    for bad, error in (
        (2.0, ValueError), (True, TypeError), (float("nan"), ValueError), (501, ValueError), ("3", TypeError)
    ):
        with pytest.raises(error, match="option 'samples'"):
            count.check(bad, "m")
    seed = Option("seed", 0, "int", "", 0, None, nullable=True)
    assert seed.check(2**63 - 1, "m") == 2**63 - 1
    with pytest.raises(ValueError, match=r"at most 2\*\*63 - 1"):
        seed.check(2**63, "m")
    level = Option("noise", 0.15, "float", "", 0.0, 1.0)
    for bad in (float("inf"), float("nan"), 1e300, -1.0):
        with pytest.raises(ValueError, match=r"option 'noise' must be .*0 to 1"):
            level.check(bad, "m")
    choice = Option("baseline", "black", "choice", "", choices=("black", "zero"))
    with pytest.raises(ValueError, match="option 'baseline' must be one of"):
        choice.check(np.array([1.0, 2.0]), "m")


# --- warnings: results that say nothing ----------------------------------------------------


def test_inputs_scaled_by_1e30_warn_and_an_all_zero_map_is_named(lite, small) -> None:
    with pytest.warns(AttributionWarning) as record:
        result = attribute(lite, small * 1e30, 285, "gradient")
    messages = [str(w.message) for w in record]
    assert (result == 0).all()  # what the warning is about
    assert any("far outside what the model's preprocessing produces" in m for m in messages), messages
    assert any("map of image(s) [0, 1] is all zero" in m for m in messages), messages
    assert record[0].filename == __file__  # it points at the caller, not into vizwidgets


def test_a_non_finite_map_warns() -> None:
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.fill_(1e30)
        model[4].weight.fill_(1e30)
    with pytest.warns(AttributionWarning, match=r"contains NaN or infinite values"):
        attribute(model, torch.ones(1, 3, 4, 4), 0, "gradient")


def test_an_ordinary_call_does_not_warn(lite, small) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", AttributionWarning)
        attribute(lite, small, 285, "gradient")
        attribute(lite, small, 285, "lrp")


# --- memory: chunks within a budget, results independent of the chunking --------------------


def test_the_row_estimate_matches_the_measured_cost(lite) -> None:
    # measured on this model at 224 x 224: 86 MB per forward+backward row, 18-20 MB per
    # forward row in batches (peak resident memory); the estimate may err on the safe side
    backward = row_bytes(lite.model, 224, 224, backward=True)
    forward = row_bytes(lite.model, 224, 224, backward=False)
    assert backward is not None and forward is not None
    assert 80 * 2**20 <= backward <= 200 * 2**20
    assert 18 * 2**20 <= forward <= 60 * 2**20
    # the attack's calls: 500 noisy copies, 1024 path points, 4096 masked images per pass
    assert rows_per_pass(lite.model, 224, 224, 500, backward=True) <= 2**31 // (80 * 2**20)
    assert rows_per_pass(lite.model, 224, 224, 1024, backward=True) <= 25
    assert rows_per_pass(lite.model, 224, 224, 4096, backward=False) <= 2**31 // (18 * 2**20)
    assert rows_per_pass(lite.model, 224, 224, 4, backward=True) == 4  # a small chunk is kept


class _BatchSizes:
    """Records the batch size of every forward pass of a model (a test-only pre-hook)."""

    def __init__(self, model: nn.Module) -> None:
        self.sizes: list[int] = []
        self.handle = model.register_forward_pre_hook(lambda m, args: self.sizes.append(int(args[0].shape[0])))

    def __enter__(self) -> _BatchSizes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()


@pytest.mark.parametrize(
    ("method", "options", "rows_per_item", "backward"),
    [
        ("smoothgrad", {"samples": 12, "chunk_size": 12}, 2, True),
        ("integrated_gradients", {"steps": 12, "chunk_size": 12}, 2, True),
        ("fast_score_cam", {"top_k": 12, "chunk_size": 12}, 1, False),
        ("occlusion", {"window": 16, "stride": 8, "chunk_size": 4096}, 1, False),
    ],
)
def test_a_small_budget_caps_the_chunks_and_changes_no_result(
    lite, small, monkeypatch, method, options, rows_per_item, backward
) -> None:
    unlimited = attribute(lite, small, [285, 154], method, **options)
    cost = row_bytes(lite.model, 32, 32, backward=backward)
    assert cost is not None
    monkeypatch.setenv(MEMORY_BUDGET_ENV, str(3 * cost * rows_per_item / 2**20))  # room for 3 items
    with _BatchSizes(lite.model) as batches:
        capped = attribute(lite, small, [285, 154], method, **options)
    # every pass but the one that fixes the predicted class or the clean score has <= 3 items
    assert max(batches.sizes) <= max(3 * rows_per_item, small.shape[0]), batches.sizes
    assert len(batches.sizes) >= 4
    scale = unlimited.abs().amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-12)
    torch.testing.assert_close(capped / scale, unlimited / scale, atol=1e-5, rtol=1e-4)


def test_a_bad_budget_variable_is_named(lite, small, monkeypatch) -> None:
    monkeypatch.setenv(MEMORY_BUDGET_ENV, "lots")
    with pytest.raises(ValueError, match=MEMORY_BUDGET_ENV):
        attribute(lite, small, 285, "smoothgrad", samples=2)


# --- synthesis: sizes, steps, seeds and weights ----------------------------------------------


def test_synthesis_sizes_are_capped_with_the_maximum_in_the_message(guarded, lite) -> None:
    with pytest.raises(ValueError, match=r"size must be from 32 to 1024 pixels a side, got 20000"):
        maximize(lite, 1, size=20000, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"size must be from 32 to 1024 .* got 8"):
        maximize(lite, 1, size=8, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"size must be from 32 to 1024"):
        fooling_image(lite, 1, size=(224, 5000), progress=False)
    with pytest.raises(ValueError, match=r"steps must be at most 100000"):
        maximize(lite, 1, steps=10**9, progress=False)
    with pytest.raises(TypeError, match=r"steps must be a whole number"):
        maximize(lite, 1, steps=float("inf"), progress=False)
    with pytest.raises(ValueError, match=r"seed must be from 0 to 2\*\*63 - 1"):
        maximize(lite, 1, seed=2**70, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"lr must be positive and at most 1000"):
        maximize(lite, 1, lr=1e300, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"the tensor is on the meta device"):
        style_transfer(lite, torch.empty(1, 3, 224, 224, device="meta"), "starry_night", steps=1, progress=False)
    with pytest.raises(ValueError, match=r"the tensor is 8 x 8 pixels; each side must be from 32"):
        style_transfer(lite, torch.rand(1, 3, 8, 8), "starry_night", steps=1, progress=False)


def test_style_weight_is_capped_and_an_overflow_keeps_the_last_finite_image(lite, monkeypatch) -> None:
    with pytest.raises(ValueError, match=r"style_weight must be zero or more and at most 1e\+09"):
        style_transfer(lite, "chelsea", "starry_night", style_weight=1e300, progress=False)
    # lift the cap to see the second line of defence: the loss overflows at the first step
    monkeypatch.setattr(style_module, "MAX_LOSS_WEIGHT", math.inf)
    with pytest.warns(RuntimeWarning, match=r"style transfer: the style, total became non-finite at step 1"):
        result = style_transfer(lite, "chelsea", "starry_night", style_weight=1e300, steps=3, progress=False)
    assert result.losses == []
    # the image is the last finite one: the photo it started from, not NaN
    torch.testing.assert_close(result.image, to_pixels(pixel_model(lite), "chelsea"))
