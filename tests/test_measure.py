"""The Measure panel, headless: its numbers are the metrics' own for the map on screen and its
class, measured once per map and steps (then shown with no model call), with a progress bar
that moves to the end, a plot of both curves, and errors that leave the last result in place."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from vizwidgets.attribution.base import upsample
from vizwidgets.data import load_image
from vizwidgets.metrics import confidence_drop, deletion, insertion
from vizwidgets.viz import reduce_channels
from vizwidgets.widgets.compute import Session
from vizwidgets.widgets.measure import (
    DELETION_COLOUR,
    INSERTION_COLOUR,
    Faithfulness,
    MeasurePanel,
    measure,
    plot_curves,
    results_of,
)
from vizwidgets.widgets.state import Request

matplotlib.use("Agg")

STEPS = 10  # the slider's least value: 2 x 11 forward images per measurement
CAT = Request("chelsea", "grad_cam")


@contextmanager
def forward_calls(module: nn.Module) -> Iterator[list[int]]:
    """Counts the model's forward passes inside the block (the hook is removed on exit)."""
    calls: list[int] = []
    handle = module.register_forward_hook(lambda *_: calls.append(1))
    try:
        yield calls
    finally:
        handle.remove()


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def pixels_near(picture: np.ndarray, colour: str, tolerance: int = 30) -> int:
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(picture.astype(int) - rgb).max(axis=-1) <= tolerance).sum())


@pytest.fixture(scope="module")
def session(lite) -> Session:
    session = Session(lite)
    session.add_image("chelsea", "chelsea")
    return session


@pytest.fixture(scope="module")
def measured(session) -> tuple[Faithfulness, list[tuple[int, int]]]:
    calls: list[tuple[int, int]] = []
    result = measure(session, CAT, steps=STEPS, progress=lambda done, total: calls.append((done, total)))
    return result, calls


def test_the_numbers_are_the_metrics_own_for_the_map_and_its_class(session, measured) -> None:
    result, _ = measured
    explanation = session.explained(CAT)
    x, maps = session.input("chelsea"), explanation.results["grad_cam"].map
    assert explanation.target == result.target == 285 and result.target_class == "Egyptian cat"
    target = torch.tensor([explanation.target])
    deleted = deletion(session.adapter, x, maps, target, steps=STEPS)  # progress None: the default
    inserted = insertion(session.adapter, x, maps, target, steps=STEPS)
    # bit-identical: the progress callback changes nothing in the numbers
    assert torch.equal(result.deletion.scores, deleted.scores) and torch.equal(result.insertion.scores, inserted.scores)
    assert result.deletion_auc == float(deleted.auc[0]) and result.insertion_auc == float(inserted.auc[0])
    assert result.average_drop == confidence_drop(session.adapter, x, maps, target).average_drop
    assert result.steps == STEPS and result.deletion.scores.shape == (1, STEPS + 1) and result.seconds > 0
    # the cat's Grad-CAM: the probability falls faster as its top pixels go than as the rest go
    assert result.deletion_auc < result.insertion_auc


def test_one_progress_callback_covers_both_curves_and_ends_at_the_total(measured) -> None:
    _, calls = measured
    total = 2 * (STEPS + 1)
    assert {t for _, t in calls} == {total}
    done = [d for d, _ in calls]
    assert done == sorted(done) and len(set(done)) == len(done) and done[0] > 0 and done[-1] == total
    assert STEPS + 1 in done  # the deletion curve's last chunk, then the insertion curve's


def test_measuring_the_same_map_again_calls_no_model(session, measured) -> None:
    result, _ = measured
    panel = MeasurePanel(session)
    panel.steps.value = STEPS
    with forward_calls(session.adapter.module) as calls:
        assert measure(session, CAT, steps=STEPS) is result
        panel.show(CAT)  # the explorer drew the cat's map: the numbers show at once
        assert panel.result is result
        assert f"deletion AUC {result.deletion_auc:.3f} (lower is better)" in panel.numbers.value
        assert f"insertion AUC {result.insertion_auc:.3f} (higher is better)" in panel.numbers.value
        assert f"average drop {result.average_drop:.1f} %" in panel.numbers.value
        assert panel.plot.value == plot_curves(result)
        assert panel.progress.value == panel.progress.max == 2 * (STEPS + 1)
        assert panel.run() is result  # the button, again: no computation either
    assert calls == []
    assert panel.error.value == "" and not panel.button.disabled


def test_show_never_computes_and_clears_the_plot_for_an_unmeasured_map(session, measured) -> None:
    panel = MeasurePanel(session)
    panel.steps.value = STEPS
    panel.show(CAT)
    assert panel.plot.value != b""
    with forward_calls(session.adapter.module) as calls:
        panel.show(Request("chelsea", "gradient"))
        assert panel.plot.value == b"" and panel.result is None
        assert "press Measure" in panel.numbers.value and panel.progress.value == 0
        panel.steps.value = STEPS + 5  # the cat with other steps: not measured yet, so cleared too
        panel.show(CAT)
        assert panel.plot.value == b"" and "press Measure" in panel.numbers.value
        panel.steps.value = STEPS  # back: the slider shows the known result again
        assert panel.result is measured[0] and panel.plot.value != b""
    assert calls == []


def test_run_moves_the_bar_with_the_button_disabled_then_shows_plot_and_numbers(session) -> None:
    request = Request("chelsea", "grad_cam", target=281)  # the tabby class, not the predicted one
    panel = MeasurePanel(session)
    panel.steps.value = STEPS
    panel.show(request)
    seen: list[tuple[int, int, bool]] = []
    panel.progress.observe(lambda change: seen.append((change["new"], panel.progress.max, panel.button.disabled)),
                           names="value")
    result = panel.run()
    assert result is not None and result.target == 281 and result.target_class == "tabby"
    values = [v for v, _, _ in seen]
    assert values == sorted(values) and values[-1] == 2 * (STEPS + 1) and len(values) >= 4
    assert all(disabled for _, _, disabled in seen)  # no second click while it computes
    assert not panel.button.disabled and panel.error.value == ""
    assert panel.plot.value == plot_curves(result) and f"{result.insertion_auc:.3f}" in panel.numbers.value
    assert len(results_of(session)) == 2  # the cat for its class and for the tabby class


def test_the_plot_draws_both_curves_in_their_colours(measured) -> None:
    import matplotlib.pyplot as plt

    figures = plt.get_fignums()
    picture = decoded(plot_curves(measured[0]))
    assert plt.get_fignums() == figures  # no pyplot figure left open
    assert picture.shape == (220, 360, 3)
    assert pixels_near(picture, DELETION_COLOUR) > 100 and pixels_near(picture, INSERTION_COLOUR) > 100
    assert (picture < 250).any(axis=-1).mean() > 0.02  # not a blank picture


def test_an_error_shows_a_message_and_keeps_the_previous_result(session, measured, tmp_path) -> None:
    result, _ = measured
    copy = tmp_path / "copy.png"
    load_image("chelsea").save(copy)  # the same pixels, so the same measurement: keyed by content
    session.add_image("copy", str(copy))
    panel = MeasurePanel(session)
    panel.steps.value = STEPS
    request = Request("copy", "grad_cam")
    panel.show(request)
    assert panel.result is result
    plot, numbers = panel.plot.value, panel.numbers.value
    copy.write_bytes(b"not an image any more")  # the file changes under the explorer
    with forward_calls(session.adapter.module) as calls:
        assert panel.run() is None
    assert calls == []
    assert "ValueError" in panel.error.value and "Traceback" not in panel.error.value
    assert panel.plot.value == plot and panel.numbers.value == numbers and panel.result is result
    assert not panel.button.disabled and panel.progress.value == panel.progress.max

    panel.show(Request("no-such-image", "grad_cam"))  # an image the session does not know
    assert "press Measure" in panel.numbers.value and panel.error.value == ""
    assert panel.run() is None
    assert "no image called" in panel.error.value and not panel.button.disabled


def test_a_map_smaller_than_the_image_is_measured_as_drawn(session) -> None:
    request = Request("chelsea", "grad_cam").with_options(upsample=False)
    raw = session.explained(request).results["grad_cam"].map
    x = session.input("chelsea")
    assert raw.shape[-1] < x.shape[-1]
    result = measure(session, request, steps=2)
    drawn = upsample(reduce_channels(raw, "sum"), x.shape[-2:])
    expected = deletion(session.adapter, x, drawn, [result.target], steps=2)
    assert torch.equal(result.deletion.scores, expected.scores)


def test_measure_rejects_bad_arguments(session) -> None:
    with pytest.raises(TypeError, match="steps"):
        measure(session, CAT, steps="10")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="steps"):
        measure(session, CAT, steps=0)
    with pytest.raises(TypeError, match="request"):
        measure(session, "chelsea")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="progress"):
        measure(session, CAT, steps=3, progress=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="session"):
        MeasurePanel("session")  # type: ignore[arg-type]


class Weighted(nn.Module):
    """Two logits: the weighted sum of the pixels, and zero."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.linspace(-1, 1, 3 * 6 * 6).view(1, 3, 6, 6), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x * self.weight).flatten(1).sum(dim=1)
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def test_the_curves_progress_per_chunk_and_change_no_number() -> None:
    model = Weighted()
    x = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    maps = model.weight.expand(2, -1, -1, -1) * x
    for curve in (deletion, insertion):
        calls: list[tuple[int, int]] = []
        plain = curve(model, x, maps, 0, steps=4)
        reported = curve(model, x, maps, 0, steps=4, progress=lambda d, t, c=calls: c.append((d, t)))
        assert calls == [(4, 10), (8, 10), (10, 10)]  # 2 images x 5 points, 4 per forward pass
        assert torch.equal(plain.scores, reported.scores) and torch.equal(plain.auc, reported.auc)
        with pytest.raises(TypeError, match="progress"):
            curve(model, x, maps, 0, steps=4, progress="yes")
