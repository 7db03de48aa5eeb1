"""The course's figures show what their text says.

Each test computes a figure's data the way its notebook does (same calls, same
normalisation) and asserts the claim the notebook's prose makes about it, in numbers: a
panel that should show structure is not blank, a progression that should improve does, maps
said to agree do agree. The notebooks themselves run in ``tests/test_course.py``.
"""

from __future__ import annotations

import itertools

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from vizwidgets.attribution import attribute, gradient_x_input, smoothgrad  # noqa: E402
from vizwidgets.models import load_model  # noqa: E402
from vizwidgets.viz import colorbar, normalize  # noqa: E402


@pytest.fixture(scope="module")
def loaded():
    return load_model()


@pytest.fixture(scope="module")
def cat_input(loaded):
    return loaded.preprocess("chelsea"), loaded.classes.index("Egyptian cat")


def _agreement(first: torch.Tensor, second: torch.Tensor) -> float:
    return torch.corrcoef(torch.stack([first.flatten(), second.flatten()]))[0, 1].item()


# --- 01 saliency ------------------------------------------------------------------------------


def test_01_signed_gradient_x_input_panel_is_not_blank(loaded, cat_input) -> None:
    """Divided by its maximum the signed map is white; by the 99th percentile it is not."""
    x, cat = cat_input
    contributions = gradient_x_input(loaded, x, cat)
    by_max = normalize(contributions, sign="all", scaling="max")[0]
    signed = normalize(contributions, sign="all", scaling="percentile")[0]  # as notebook 01
    assert (by_max.abs() > 0.2).float().mean() < 0.02  # the old panel: nearly all white
    assert (signed.abs() > 0.2).float().mean() > 0.15
    assert (signed.abs() > 0.5).float().mean() > 0.03
    # both halves, for and against, have something to show
    assert (signed > 0.2).float().mean() > 0.05 and (signed < -0.2).float().mean() > 0.05
    assert signed.abs().max() == 1.0  # clipped at the 99th percentile


def test_01_smoothgrad_runs_agree_more_with_more_samples(loaded, cat_input) -> None:
    """Two SmoothGrad runs with different noise agree better at 32 samples than at 1."""
    x, cat = cat_input

    def run(samples: int, seed: int) -> torch.Tensor:
        result = smoothgrad(loaded, x, cat, samples=samples, noise=0.2, seed=seed)
        return normalize(result, scaling="percentile", reduce="abs_sum")[0]

    one = _agreement(run(1, 0), run(1, 1))
    many = _agreement(run(32, 0), run(32, 1))
    assert one < 0.3
    assert many > one + 0.15, (one, many)


# --- the colour bar helper ----------------------------------------------------------------------


def test_colorbar_for_an_overlay_and_for_an_image() -> None:
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2)
    bar = colorbar(left, "RdBu_r", vmin=-1, vmax=1, label="signed share")
    assert bar.vmin == -1 and bar.vmax == 1 and bar.ax.get_ylabel() == "signed share"
    shown = right.imshow(torch.rand(4, 4).numpy() * 3, cmap="gray", vmin=0, vmax=3)
    assert colorbar(right, mappable=shown).vmax == 3
    with pytest.raises(ValueError, match="vmin"):
        colorbar(left, vmin=1, vmax=1)
    plt.close(fig)


# --- 04 integrated gradients -------------------------------------------------------------------


def test_04_integrand_spikes_near_the_black_baseline_and_quadrature_converges_slowly(loaded, cat_input) -> None:
    """The path integrand g(alpha) as notebook 04 computes it: a spike in the first tenth of
    the path, and a trapezoid sum over 64 steps still more than 5 % off F(x) - F(x')."""
    from vizwidgets.attribution import IntegratedGradients, gradient

    x, cat = cat_input
    base = IntegratedGradients(loaded).make_baseline(x, "black")
    alphas = torch.linspace(0, 1, 65)
    rates = torch.cat([
        (gradient(loaded, base + chunk.view(-1, 1, 1, 1) * (x - base), cat) * (x - base)).sum(dim=(1, 2, 3))
        for chunk in alphas.split(8)
    ])
    with torch.no_grad():
        change = (loaded.model(x) - loaded.model(base))[0, cat].item()
    assert alphas[int(rates.argmax())] < 0.1
    assert rates.max() > 10 * rates[alphas > 0.3].abs().max()
    gaps = {
        steps: torch.trapezoid(rates[:: 64 // steps], alphas[:: 64 // steps]).item() - change
        for steps in (4, 8, 16, 32, 64)
    }
    assert abs(gaps[64]) > 0.05 * abs(change), gaps


# --- 03 the CAM family ----------------------------------------------------------------------------


def _pairwise(maps: dict[str, torch.Tensor]) -> list[float]:
    return [_agreement(a, b) for a, b in itertools.combinations(maps.values(), 2)]


def test_03_cam_variants_agree_at_head_and_disagree_at_blocks_10(loaded, cat_input) -> None:
    """As notebook 03 says: one picture at the last layer, different pictures at blocks.10."""
    x, cat = cat_input
    methods = ["grad_cam", "grad_cam_pp", "xgrad_cam", "layer_cam", "fast_score_cam"]
    at_head = {m: attribute(loaded, x, cat, m, "head", upsample=False)[0, 0] for m in ["cam", *methods]}
    at_middle = {m: attribute(loaded, x, cat, m, "blocks.10", upsample=False)[0, 0] for m in methods}
    assert min(_pairwise(at_head)) > 0.95
    # the closed forms: at head the gradient is W_ck / 49 everywhere
    assert _agreement(at_head["cam"], at_head["grad_cam"]) > 0.999
    assert _agreement(at_head["grad_cam"], at_head["xgrad_cam"]) > 0.999
    middle = _pairwise(at_middle)
    assert sum(middle) / len(middle) < 0.5


def test_03_guided_grad_cam_keeps_the_edges_of_the_asked_class(loaded) -> None:
    """Guided backprop's picture covers both animals; guided Grad-CAM's mostly the asked one."""
    from vizwidgets.data import make_scene

    scene = make_scene(["chelsea", "chicky_512"])
    xs = loaded.inputs(scene.image)
    def share_inside(method: str, box) -> float:
        energy = attribute(loaded, xs, box.target, method)[0].abs().sum(dim=0)
        return (energy[box.top:box.bottom, box.left:box.right].sum() / energy.sum()).item()

    for box in scene.boxes_at(224, 224):
        guided, combined = share_inside("guided_backprop", box), share_inside("guided_grad_cam", box)
        assert combined > 0.8, (loaded.classes[box.target], combined)
        assert combined > guided + 0.2, (loaded.classes[box.target], guided, combined)


# --- 06 maximisation ------------------------------------------------------------------------------


def test_06_head_channel_stops_at_relu6s_ceiling_and_its_input_does_not(loaded) -> None:
    """Notebook 06 maximises head.bn because head's ReLU6 caps a channel's mean at 6."""
    from vizwidgets.synthesis import Channel, maximize

    capped = maximize(loaded, Channel("head", 7), steps=64, size=160, progress=False)
    free = maximize(loaded, Channel("head.bn", 7), steps=64, size=160, progress=False)
    assert capped.final_value == pytest.approx(6.0, abs=0.01)
    assert min(capped.trace[-20:]) > 5.8  # at the cap (each step's value is on a transformed image)
    assert free.final_value > 12.0
