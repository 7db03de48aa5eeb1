"""The exercise graders against the classic wrong answers: each gets its own diagnosis.

For every grader of ``vizwidgets.checks``, the mistakes learners make most, each written the
way a learner writes it, and the words of the hint it must get (not only that it fails); the
right answers that must pass (SmoothGrad with its noise drawn in one call included); the
comparison that shows where a result first differs; more help on request (``hint=2``); and,
in a real kernel, a failure shown as the message alone.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
import torch
import torch.nn.functional as F

from vizwidgets.checks import (
    check_cam,
    check_completeness_gap,
    check_curve_area,
    check_fgsm_step,
    check_grad_cam,
    check_gradient_ascent,
    check_gram_matrix,
    check_guided_relu_function,
    check_input_gradient,
    check_lrp_epsilon,
    check_pointing_hit,
    check_rectifier_rules,
    check_riemann_ig,
    check_saliency_map,
    check_smoothgrad,
    check_softmax,
    check_style_loss,
    check_targeted_attack,
    check_top_k,
    check_total_variation,
)

ROOT = Path(__file__).resolve().parents[1]


def _fails_with(grader: Callable[..., None], fn: object, *words: str) -> str:
    """Run ``grader(fn)``: it must raise AssertionError whose message holds every one of
    ``words``; return the message."""
    with pytest.raises(AssertionError) as info:
        grader(fn)
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in:\n{message}"
    return message


def _hint(message: str) -> str:
    """The text of a message's ``Hint:`` line."""
    (line,) = [line for line in message.splitlines() if line.startswith("Hint: ")]
    return line


# --- 00 welcome -------------------------------------------------------------------------------


def _softmax(z: torch.Tensor) -> torch.Tensor:
    e = (z - z.max(dim=-1, keepdim=True).values).exp()
    return e / e.sum(dim=-1, keepdim=True)


def _top_k(z: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    return _softmax(z).topk(k, dim=-1)


WELCOME = {
    "softmax overflows": (check_softmax, lambda z: z.exp() / z.exp().sum(-1, keepdim=True), "subtract the maximum"),
    "softmax, one max for the batch": (
        check_softmax,
        lambda z: (z - z.max()).exp() / (z - z.max()).exp().sum(-1, keepdim=True),
        "each row's own maximum",
    ),
    "softmax, wrong axis": (check_softmax, lambda z: torch.softmax(z, dim=0), "use dim=-1"),
    "softmax, not divided": (check_softmax, lambda z: (z - z.max(-1, keepdim=True).values).exp(), "by their sum"),
    "softmax, divided by the max": (
        check_softmax,
        lambda z: (z - z.max(-1, keepdim=True).values).exp() / 1.0,
        "by their sum",
    ),
    "log-softmax": (check_softmax, lambda z: torch.log_softmax(z, dim=-1), "log-probabilities"),
    "sigmoid": (check_softmax, torch.sigmoid, "sigmoid of each logit"),
    "logits normalised without exp": (check_softmax, lambda z: z / z.sum(-1, keepdim=True), "exponentiate the logits"),
    "softmax loses the shape": (check_softmax, lambda z: _softmax(z).sum(-1), "keepdim=True"),
    "top-k ascending": (check_top_k, lambda z, k: tuple(t.flip(-1) for t in _top_k(z, k)), "descending"),
    "top-k of the logits": (check_top_k, lambda z, k: tuple(z.topk(k, dim=-1)), "apply softmax to the logits"),
    "top-k all classes": (check_top_k, lambda z, k: _top_k(z, z.shape[-1]), "keep only the first k"),
    "top-k swapped": (check_top_k, lambda z, k: tuple(reversed(_top_k(z, k))), "swap the two"),
    "top-k float indices": (check_top_k, lambda z, k: (_top_k(z, k)[0], _top_k(z, k)[1].float()), ".long()"),
    "top-k softmax over the k": (
        check_top_k,
        lambda z, k: (torch.softmax(z.topk(k, dim=-1).values, -1), z.topk(k, dim=-1).indices),
        "over all classes",
    ),
}


@pytest.mark.parametrize("case", sorted(WELCOME))
def test_welcome_mistakes_get_their_own_hint(case: str) -> None:
    grader, fn, words = WELCOME[case]
    assert words in _hint(_fails_with(grader, fn))


# --- 01 saliency ------------------------------------------------------------------------------


def _input_gradient(model, x, target):
    inputs = x.detach().clone().requires_grad_(True)
    return torch.autograd.grad(model(inputs)[torch.arange(len(target)), target].sum(), inputs)[0]


def _gradient_of(score: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    def input_gradient(model, x, target):
        inputs = x.detach().clone().requires_grad_(True)
        return torch.autograd.grad(score(model(inputs), target).sum(), inputs)[0]

    return input_gradient


def _no_copy(model, x, target):
    return torch.autograd.grad(model(x)[torch.arange(len(target)), target].sum(), x)[0]


def _not_summed(model, x, target):
    inputs = x.detach().clone().requires_grad_(True)
    return torch.autograd.grad(model(inputs)[torch.arange(len(target)), target], inputs)[0]


INPUT_GRADIENT = {
    "probability": (_gradient_of(lambda z, t: z.softmax(1)[torch.arange(len(t)), t]), "softmax probability"),
    "all logits": (_gradient_of(lambda z, t: z), "sum of all logits"),
    "logits[:, target]": (_gradient_of(lambda z, t: z[:, t]), "every image's logit of every target"),
    "log-softmax": (_gradient_of(lambda z, t: z.log_softmax(1)[torch.arange(len(t)), t]), "log-softmax"),
    "the loss": (_gradient_of(lambda z, t: F.cross_entropy(z, t, reduction="none")), "cross-entropy loss"),
    "minus the logit": (_gradient_of(lambda z, t: -z[torch.arange(len(t)), t]), "wrong sign"),
    "gradient x input": (lambda m, x, t: _input_gradient(m, x, t) * x, "gradient x input"),
    "only the first image": (_gradient_of(lambda z, t: z[0, t[0]]), "only the first image"),
    "x not copied": (_no_copy, "does not require gradients"),
    "x made float32": (
        lambda m, x, t: _input_gradient(m, x.float(), t),
        "different dtypes",
    ),
    "not summed": (_not_summed, "one number"),
    "one image squeezed": (lambda m, x, t: _input_gradient(m, x, t)[0], "keep the batch dimension"),
    "returns the logits": (lambda m, x, t: m(x), "not with respect to the logits"),
}


@pytest.mark.parametrize("case", sorted(INPUT_GRADIENT))
def test_input_gradient_mistakes_get_their_own_hint(case: str) -> None:
    fn, words = INPUT_GRADIENT[case]
    assert words in _hint(_fails_with(check_input_gradient, fn))


SALIENCY_MAP = {
    "signed max": (lambda g: g.amax(dim=1), "before the maximum"),
    "abs after max": (lambda g: g.amax(dim=1).abs(), "after the maximum"),
    "sum": (lambda g: g.abs().sum(dim=1), "not the sum"),
    "mean": (lambda g: g.abs().mean(dim=1), "not the mean"),
    "L2 norm": (lambda g: g.norm(dim=1), "L2 norm"),
    "squared": (lambda g: (g**2).amax(dim=1), "squared"),
    "keepdim": (lambda g: g.abs().amax(dim=1, keepdim=True), "without keepdim=True"),
    "wrong dim": (lambda g: g.abs().amax(dim=0), "dim=1"),
    "max returns a pair": (lambda g: g.abs().max(dim=1), ".values"),
}


@pytest.mark.parametrize("case", sorted(SALIENCY_MAP))
def test_saliency_map_mistakes_get_their_own_hint(case: str) -> None:
    fn, words = SALIENCY_MAP[case]
    assert words in _hint(_fails_with(check_saliency_map, fn))


def _smooth(
    *, draw: str = "each", sigma: str = "range", fresh: bool = True, mean: bool = True, zero: bool = True
) -> Callable[..., torch.Tensor]:
    """A SmoothGrad as a learner writes it, right by default; the keywords make it wrong."""

    def smooth_gradient(model, x, target, samples, noise, generator):
        scale = noise * (x.max() - x.min()) if sigma == "range" else noise
        if draw == "once":
            all_eps = torch.randn((samples, *x.shape), generator=generator) * scale
        eps = torch.randn(x.shape, generator=generator) * scale if draw == "each" else None
        leaf = x.detach().clone().requires_grad_(True)
        total = torch.zeros_like(x)
        for s in range(samples):
            if draw == "once":
                eps = all_eps[s]
            elif draw == "randn_like":
                eps = torch.randn_like(x) * scale
            elif fresh and s > 0:
                eps = torch.randn(x.shape, generator=generator) * scale
            if zero:
                total += _input_gradient(model, x + eps, target)
            else:  # one leaf for every sample, its .grad never zeroed
                model(leaf + eps)[torch.arange(len(target)), target].sum().backward()
                total += leaf.grad
        return total / samples if mean else total

    return smooth_gradient


SMOOTHGRAD = {
    ".grad not zeroed": (_smooth(zero=False), "`.grad` accumulates"),
    ".grad not zeroed, one-call draws": (_smooth(zero=False, draw="once"), "`.grad` accumulates"),
    "no mean": (_smooth(mean=False), "divide the sum"),
    "no mean, one-call draws": (_smooth(mean=False, draw="once"), "divide the sum"),
    "sigma not scaled by the range": (_smooth(sigma="noise"), "times the range of x"),
    "one draw reused": (_smooth(fresh=False), "you reuse one draw"),
    "plain gradient": (lambda m, x, t, s, n, g: _input_gradient(m, x, t), "plain gradient"),
    "noise without the generator": (_smooth(draw="randn_like"), "not drawn from the generator"),
}


@pytest.mark.parametrize("case", sorted(SMOOTHGRAD))
def test_smoothgrad_mistakes_get_their_own_hint(case: str) -> None:
    fn, words = SMOOTHGRAD[case]
    message = _fails_with(check_smoothgrad, fn)
    assert words in _hint(message)
    if case.startswith(".grad"):
        assert "noise" not in _hint(message)  # not told to change its noise draws


def test_smoothgrad_accepts_the_noise_drawn_one_sample_at_a_time_or_all_at_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    check_smoothgrad(_smooth())
    check_smoothgrad(_smooth(draw="once"))

    def batched(model, x, target, samples, noise, generator):  # one call, one forward pass
        eps = torch.randn((samples, *x.shape), generator=generator) * (noise * (x.max() - x.min()))
        noisy = (x[None] + eps).reshape(-1, *x.shape[1:])
        grads = _input_gradient(model, noisy, target.repeat(samples))
        return grads.reshape(samples, *x.shape).mean(dim=0)

    check_smoothgrad(batched)
    assert capsys.readouterr().out.count("Correct!") == 3


# --- 02 guided backpropagation ----------------------------------------------------------------


def _rules(gradient: Callable, deconvnet: Callable, guided: Callable) -> Callable:
    return lambda g, x, rule: {"gradient": gradient, "deconvnet": deconvnet, "guided": guided}[rule](g, x)


_GRADIENT = lambda g, x: g * (x > 0)  # noqa: E731
_DECONVNET = lambda g, x: g.clamp(min=0)  # noqa: E731
_GUIDED = lambda g, x: g.clamp(min=0) * (x > 0)  # noqa: E731

RECTIFIERS = {
    "gradient rule for all three": (lambda g, x, rule: g * (x > 0), "what the 'gradient' rule sends back"),
    "mask x >= 0": (_rules(lambda g, x: g * (x >= 0), _DECONVNET, _GUIDED), "not x >= 0"),
    "times x instead of the mask": (_rules(lambda g, x: g * x.clamp(min=0), _DECONVNET, _GUIDED), "not by x"),
    "inverted mask": (_rules(lambda g, x: g * (x <= 0), _DECONVNET, _GUIDED), "inverted"),
    "abs instead of clamp": (_rules(_GRADIENT, lambda g, x: g.abs(), _GUIDED), "not positive"),
    "deconvnet masked": (_rules(_GRADIENT, _GUIDED, _GUIDED), "what the 'guided' rule sends back"),
}


@pytest.mark.parametrize("case", sorted(RECTIFIERS))
def test_rectifier_mistakes_get_their_own_hint(case: str) -> None:
    fn, words = RECTIFIERS[case]
    assert words in _hint(_fails_with(check_rectifier_rules, fn))


def _guided_function(forward: Callable, backward: Callable) -> type:
    class GuidedReLU(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return forward(x)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return backward(grad, x)

    return GuidedReLU


GUIDED_FUNCTIONS = {
    "plain backward": (_guided_function(torch.relu, _GRADIENT), "'gradient' rule"),
    "deconvnet backward": (_guided_function(torch.relu, _DECONVNET), "'deconvnet' rule"),
    "forward is the identity": (_guided_function(lambda x: x.clone(), _GUIDED), "x.clamp(min=0)"),
    "mask x >= 0": (_guided_function(torch.relu, lambda g, x: g.clamp(min=0) * (x >= 0)), "not x >= 0"),
}


@pytest.mark.parametrize("case", sorted(GUIDED_FUNCTIONS))
def test_guided_relu_function_mistakes_get_their_own_hint(case: str) -> None:
    fn, words = GUIDED_FUNCTIONS[case]
    assert words in _hint(_fails_with(check_guided_relu_function, fn))


# --- 03 CAM -----------------------------------------------------------------------------------


def _cam(a, w, c):
    return (w[c].view(1, -1, 1, 1) * a).sum(dim=1)


def _alpha(g):
    return g.mean(dim=(2, 3), keepdim=True)


CAMS = {
    "ReLU": (check_cam, lambda a, w, c: torch.relu(_cam(a, w, c)), "no ReLU here"),
    "mean over maps": (check_cam, lambda a, w, c: (w[c].view(1, -1, 1, 1) * a).mean(dim=1), "do not average"),
    "normalised": (check_cam, lambda a, w, c: _cam(a, w, c) / _cam(a, w, c).amax(), "no normalisation"),
    "unweighted": (check_cam, lambda a, w, c: a.sum(dim=1), "by the class's weight"),
    "column of the weights": (check_cam, lambda a, w, c: (w[:, c].view(1, -1, 1, 1) * a).sum(dim=1), "weights[:, c]"),
    "wrong reduction dim": (check_cam, lambda a, w, c: (w[c].view(1, -1, 1, 1) * a).sum(dim=0), "dim=1"),
    "Grad-CAM without ReLU": (check_grad_cam, lambda a, g: (_alpha(g) * a).sum(dim=1), "ReLU at the end"),
    "Grad-CAM sum of gradients": (
        check_grad_cam,
        lambda a, g: torch.relu((g.sum(dim=(2, 3), keepdim=True) * a).sum(dim=1)),
        "not the sum",
    ),
    "Grad-CAM no pooling": (check_grad_cam, lambda a, g: torch.relu((g * a).sum(dim=1)), "average the gradient"),
    "Grad-CAM ReLU per map": (check_grad_cam, lambda a, g: torch.relu(_alpha(g) * a).sum(dim=1), "once"),
    "Grad-CAM mean over maps": (check_grad_cam, lambda a, g: torch.relu((_alpha(g) * a).mean(dim=1)), "do not average"),
    "Grad-CAM abs of alpha": (check_grad_cam, lambda a, g: torch.relu((_alpha(g).abs() * a).sum(1)), "alpha's sign"),
    "Grad-CAM swapped": (check_grad_cam, lambda a, g: torch.relu((_alpha(a) * g).sum(dim=1)), "swapped"),
}


@pytest.mark.parametrize("case", sorted(CAMS))
def test_cam_mistakes_get_their_own_hint(case: str) -> None:
    grader, fn, words = CAMS[case]
    assert words in _hint(_fails_with(grader, fn))


# --- 04 Integrated Gradients ------------------------------------------------------------------


def _riemann(*, alphas: Callable[[int], list[float]] | None = None, times: str = "difference", start: str = "baseline"):
    def riemann_ig(model, x, baseline, target, steps):
        points = alphas(steps) if alphas else [(k + 0.5) / steps for k in range(steps)]
        origin = baseline if start == "baseline" else torch.zeros_like(x)
        total = sum(_input_gradient(model, origin + a * (x - origin), target) for a in points)
        factor = {"difference": x - baseline, "x": x, "nothing": 1.0, "minus": baseline - x}[times]
        return factor * total / steps

    return riemann_ig


RIEMANN = {
    "left sum": (_riemann(alphas=lambda n: [k / n for k in range(n)]), "not k / steps"),
    "right sum": (_riemann(alphas=lambda n: [(k + 1) / n for k in range(n)]), "not (k + 1) / steps"),
    "linspace": (_riemann(alphas=lambda n: torch.linspace(0, 1, n).tolist()), "linspace"),
    "no average": (lambda m, x, b, t, n: _riemann()(m, x, b, t, n) * n, "divide their sum by steps"),
    "no (x - baseline)": (_riemann(times="nothing"), "multiply the averaged gradient by (x - baseline)"),
    "times x": (_riemann(times="x"), "not by x"),
    "baseline - x": (_riemann(times="minus"), "wrong sign"),
    "path from zero": (_riemann(start="zero"), "not alpha * x"),
}


@pytest.mark.parametrize("case", sorted(RIEMANN))
def test_riemann_ig_mistakes_get_their_own_hint(case: str) -> None:
    fn, words = RIEMANN[case]
    assert words in _hint(_fails_with(check_riemann_ig, fn))


def _gap(*, score: Callable | None = None, baseline_too: bool = True, then: Callable | None = None):
    def completeness_gap(model, x, baseline, target, attributions):
        rows = torch.arange(len(target))
        pick = score or (lambda logits, target: logits[rows, target])
        with torch.no_grad():
            difference = pick(model(x), target) - (pick(model(baseline), target) if baseline_too else 0)
        gap = attributions.sum(dim=(1, 2, 3)) - difference
        return then(gap, attributions, difference) if then else gap

    return completeness_gap


def _probability(logits, target):
    return logits.softmax(dim=1)[torch.arange(len(target)), target]


COMPLETENESS = {
    "abs": (_gap(then=lambda gap, a, d: gap.abs()), "no abs()"),
    "F(baseline) - F(x)": (_gap(then=lambda gap, a, d: a.sum(dim=(1, 2, 3)) + d), "not F(baseline) - F(x)"),
    "the other way round": (_gap(then=lambda gap, a, d: -gap), "not the other way round"),
    "no F(baseline)": (_gap(baseline_too=False), "subtract F(baseline) too"),
    "probabilities": (_gap(score=_probability), "not its softmax probability"),
    "predicted class": (_gap(score=lambda logits, target: logits.amax(dim=1)), "not the predicted"),
    "a ratio": (_gap(then=lambda gap, a, d: gap / d), "not a ratio"),
    "logits[:, target]": (_gap(score=lambda logits, target: logits[:, target]), "N x N"),
    "summed over the batch": (_gap(then=lambda gap, a, d: gap.sum()), "not over the batch"),
}


@pytest.mark.parametrize("case", sorted(COMPLETENESS))
def test_completeness_gap_mistakes_get_their_own_hint(case: str) -> None:
    fn, words = COMPLETENESS[case]
    message = _fails_with(check_completeness_gap, fn)
    assert words in _hint(message)
    if case == "abs":  # it used to be told to use each image's target logit
        assert "target logit" not in message


# --- 05 LRP -----------------------------------------------------------------------------------


def _lrp(*, sign: Callable | None = None, times_a: bool = True, bias: bool = True, back_t: bool = False):
    def lrp_epsilon_dense(a, weight, b, relevance, epsilon):
        z = a @ weight.T + (b if bias else 0)
        stabiliser = sign(z) if sign else torch.where(z >= 0, 1.0, -1.0)
        s = relevance / (z + epsilon * stabiliser)
        back = s @ (weight.T if back_t else weight)
        return a * back if times_a else back

    return lrp_epsilon_dense


LRP = {
    "torch.sign": (_lrp(sign=torch.sign), "torch.sign(0) is 0"),
    "z > 0": (_lrp(sign=lambda z: torch.where(z > 0, 1.0, -1.0)), "use `z >= 0`"),
    "not times a": (_lrp(times_a=False), "multiply by the activations"),
    "plus epsilon": (_lrp(sign=lambda z: torch.ones_like(z)), "not + epsilon"),
    "epsilon ignored": (_lrp(sign=lambda z: torch.zeros_like(z)), "epsilon is not used"),
    "no bias": (_lrp(bias=False), "z includes the bias"),
    "back with weight.T": (_lrp(back_t=True), "`s @ weight`"),
    "relevance unused": (
        lambda a, w, b, r, eps: _lrp()(a, w, b, torch.ones_like(r), eps),
        "never use the relevance",
    ),
    "outputs' relevance returned": (lambda a, w, b, r, eps: r * 1.0, "send it back to the inputs"),
}


@pytest.mark.parametrize("case", sorted(LRP))
def test_lrp_epsilon_mistakes_get_their_own_hint(case: str) -> None:
    fn, words = LRP[case]
    assert words in _hint(_fails_with(check_lrp_epsilon, fn))


def test_lrp_epsilon_with_torch_sign_fails_on_the_output_whose_z_is_zero() -> None:
    """It used to pass: no test input had z exactly 0."""
    message = _fails_with(check_lrp_epsilon, _lrp(sign=torch.sign), "exactly 0", "got inf")
    assert "+1 where z is exactly 0" in message


# --- 06 and 08: total variation, Gram matrix, style loss --------------------------------------


def _tv_parts(x):
    return x[:, :, :-1, 1:] - x[:, :, :-1, :-1], x[:, :, 1:, :-1] - x[:, :, :-1, :-1]


def _tv(x):
    right, down = _tv_parts(x)
    return (right**2 + down**2).sum(dim=1).mean(dim=(1, 2))


def _gram(f):
    n, c, h, w = f.shape
    flat = f.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (h * w)


def _style(f, target):
    return ((_gram(f) - target) ** 2).sum(dim=(1, 2)) / (4 * f.shape[1] ** 2)


STYLE = {
    "TV summed over positions": (
        check_total_variation,
        lambda x: (sum(d**2 for d in _tv_parts(x))).sum(dim=(1, 2, 3)),
        "do not sum them",
    ),
    "TV averaged over channels": (
        check_total_variation,
        lambda x: (sum(d**2 for d in _tv_parts(x))).mean(dim=(1, 2, 3)),
        "sum over the channels",
    ),
    "TV absolute": (
        check_total_variation,
        lambda x: (sum(d.abs() for d in _tv_parts(x))).sum(dim=1).mean(dim=(1, 2)),
        "square the differences",
    ),
    "TV square root": (
        check_total_variation,
        lambda x: (sum(d**2 for d in _tv_parts(x))).sum(dim=1).sqrt().mean(dim=(1, 2)),
        "no square root",
    ),
    "TV on its own grids": (
        check_total_variation,
        lambda x: ((x[..., 1:] - x[..., :-1]) ** 2).sum(1).mean((1, 2))
        + ((x[..., 1:, :] - x[..., :-1, :]) ** 2).sum(1).mean((1, 2)),
        "its own grid",
    ),
    "TV of the batch": (check_total_variation, lambda x: _tv(x).sum(), "keep the batch dimension"),
    "Gram not divided": (check_gram_matrix, lambda f: _gram(f) * f.shape[2] * f.shape[3], "number of positions"),
    "Gram divided by C H W": (check_gram_matrix, lambda f: _gram(f) / f.shape[1], "not by C * H * W"),
    "Gram reshaped (N, HW, C)": (
        check_gram_matrix,
        lambda f: (lambda m: m.transpose(1, 2) @ m / (f.shape[2] * f.shape[3]))(f.reshape(f.shape[0], -1, f.shape[1])),
        "mixes the channels up",
    ),
    "Gram F^T F": (
        check_gram_matrix,
        lambda f: (lambda m: m.transpose(1, 2) @ m)(f.reshape(*f.shape[:2], -1)),
        "F^T F",
    ),
    "style loss not divided": (check_style_loss, lambda f, a: _style(f, a) * 4 * f.shape[1] ** 2, "divide by 4 C^2"),
    "style loss mean": (check_style_loss, lambda f, a: ((_gram(f) - a) ** 2).mean(dim=(1, 2)), "the mean divides"),
    "style loss abs": (
        check_style_loss,
        lambda f, a: (_gram(f) - a).abs().sum(dim=(1, 2)) / (4 * f.shape[1] ** 2),
        "not their absolute values",
    ),
    "style loss sqrt": (
        check_style_loss,
        lambda f, a: ((_gram(f) - a) ** 2).sum(dim=(1, 2)).sqrt() / (4 * f.shape[1] ** 2),
        "no square root",
    ),
    "style loss raw Gram": (
        check_style_loss,
        lambda f, a: _style(f * (f.shape[2] * f.shape[3]) ** 0.5, a),
        "divided by H * W",
    ),
    "style loss of the batch": (check_style_loss, lambda f, a: _style(f, a).sum(), "keep the batch dimension"),
}


@pytest.mark.parametrize("case", sorted(STYLE))
def test_tv_gram_and_style_mistakes_get_their_own_hint(case: str) -> None:
    grader, fn, words = STYLE[case]
    assert words in _hint(_fails_with(grader, fn))



def _ascent(*, direction: float = 1.0, scale: str = "image", clamp: bool = True, fresh: bool = True,
            steps: int | None = None, detach: bool = True):
    """Normalised gradient ascent, right or with one classic mistake."""

    def gradient_ascent(objective, x, n_steps, lr):
        current, first = x.clone(), None
        for _ in range(n_steps if steps is None else steps):
            xg = (current if fresh else x).detach().clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(objective(xg).sum(), xg)
            first = grad if first is None else first
            g = grad if fresh else first
            if scale == "image":
                g = g / (g.abs().mean(dim=(1, 2, 3), keepdim=True) + 1e-8)
            elif scale == "batch":
                g = g / (g.abs().mean() + 1e-8)
            current = current + direction * lr * g
            current = current.clamp(0, 1) if clamp else current
        return current if detach else current.requires_grad_(True) * 1

    return gradient_ascent


ASCENTS = {
    "descent": (_ascent(direction=-1.0), "this is gradient descent"),
    "raw gradient": (_ascent(scale="none"), "the raw gradient was used"),
    "one scale for the batch": (_ascent(scale="batch"), "one number for the whole batch"),
    "no clamp": (_ascent(clamp=False), "clamp to [0, 1] after every step"),
    "stale gradient": (_ascent(fresh=False), "the gradient is taken once"),
    "one step": (_ascent(steps=1), "only one step was taken"),
}


def test_gradient_ascent_grader_accepts_a_right_loop(capsys: pytest.CaptureFixture[str]) -> None:
    check_gradient_ascent(_ascent())

    def under_no_grad(objective, x, steps, lr):
        x_cur = x.clone()
        for _ in range(steps):
            xg = x_cur.requires_grad_(True)
            objective(xg).sum().backward()
            with torch.no_grad():
                g = xg.grad
                x_cur = (xg + lr * g / (g.abs().mean(dim=(1, 2, 3), keepdim=True) + 1e-8)).clamp(0, 1)
        return x_cur

    check_gradient_ascent(under_no_grad)
    assert capsys.readouterr().out.count("Correct!") == 2


@pytest.mark.parametrize("case", sorted(ASCENTS))
def test_gradient_ascent_mistakes_get_their_own_hint(case: str) -> None:
    fn, words = ASCENTS[case]
    assert words in _hint(_fails_with(check_gradient_ascent, fn))


def test_gradient_ascent_still_attached_is_rejected() -> None:
    _fails_with(check_gradient_ascent, _ascent(detach=False), "still attached to the autograd graph")

# --- 07 fooling -------------------------------------------------------------------------------


def _fgsm(*, score: str = "loss", direction: float = -1.0, clamp: bool = True, step: str = "sign", detach: bool = True):
    def fgsm_step(model, x, target, epsilon):
        xg = x.detach().clone().requires_grad_(True)
        logits = model(xg)
        rows = torch.arange(len(target))
        value = {
            "loss": lambda: F.cross_entropy(logits, target, reduction="sum"),
            "logit": lambda: logits[rows, target].sum(),
            "predicted": lambda: F.cross_entropy(logits, logits.argmax(1).detach(), reduction="sum"),
        }[score]()
        if detach:
            (grad,) = torch.autograd.grad(value, xg)
            start = x
        else:  # the learner's x itself requires gradients: the step stays in the graph
            value.backward()
            grad, start = xg.grad, xg
        change = {"sign": grad.sign(), "raw": grad, "normalised": grad / grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1)}
        out = start + direction * epsilon * change[step]
        return out.clamp(0, 1) if clamp else out

    return fgsm_step


FGSM = {
    "climbs the loss": (_fgsm(direction=1.0), "you climbed the loss"),
    "climbs the logit": (_fgsm(score="logit", direction=1.0), "you climbed the target's logit"),
    "descends the logit": (_fgsm(score="logit"), "stepped down the target's logit"),
    "untargeted": (_fgsm(score="predicted", direction=1.0), "untargeted"),
    "no clamp": (_fgsm(clamp=False), "clamp the result"),
    "raw gradient": (_fgsm(step="raw"), "not the gradient itself"),
    "normalised gradient": (_fgsm(step="normalised"), "divided by its norm"),
    "attached to the graph": (_fgsm(detach=False), "torch.no_grad()"),
}


@pytest.mark.parametrize("case", sorted(FGSM))
def test_fgsm_mistakes_get_their_own_hint(case: str) -> None:
    fn, words = FGSM[case]
    assert words in _hint(_fails_with(check_fgsm_step, fn))


def test_fgsm_step_still_attached_to_the_graph_is_rejected() -> None:
    """It used to pass: the values are right, but the step keeps the autograd graph."""
    message = _fails_with(check_fgsm_step, _fgsm(detach=False), "still attached to the autograd graph", "grad_fn=")

    def leaf_returned(model, x, target, epsilon):
        xg = x.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(xg), target, reduction="sum"), xg)
        with torch.no_grad():
            xg -= epsilon * grad.sign()
            xg.clamp_(0, 1)
        return xg

    assert "requires_grad=True" in _fails_with(check_fgsm_step, leaf_returned)
    assert "detach" in _hint(message)


def test_fgsm_climbing_the_logit_shows_where_the_step_differs() -> None:
    """Its step agrees with the right one in most values: the message must show one where
    they differ, not the first few (which are the same)."""
    message = _fails_with(check_fgsm_step, _fgsm(score="logit", direction=1.0))
    first = re.search(r"First difference at index \[(.*?)\]: Expected (\S+), got (\S+) \(", message)
    assert first is not None, message
    assert first.group(2) != first.group(3)



def _attack(*, project: str = "original", clamp: bool = True, fresh: bool = True, direction: float = -1.0,
            steps: int | None = None, detach: bool = True):
    """A targeted attack, right or with one classic mistake."""

    def targeted_attack(model, x, target, epsilon, step, n_steps):
        adv, first = x.clone(), None
        for _ in range(n_steps if steps is None else steps):
            xg = (x if not fresh else adv).detach().clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(F.cross_entropy(model(xg), target, reduction="sum"), xg)
            first = grad if first is None else first
            new = adv + direction * step * (grad if fresh else first).sign()
            centre = x if project == "original" else adv
            if project != "none":
                new = torch.min(torch.max(new, centre - epsilon), centre + epsilon)
            adv = new.clamp(0, 1) if clamp else new
        return adv if detach else adv.requires_grad_(True) * 1

    return targeted_attack


ATTACKS = {
    "no projection": (_attack(project="none"), "project back into the box around the original"),
    "box around the current image": (_attack(project="current"), "moves with the attack"),
    "no clamp": (_attack(clamp=False), "clamp to [0, 1] after the projection"),
    "stale gradient": (_attack(fresh=False), "the gradient is taken once"),
    "climbs the loss": (_attack(direction=1.0), "climbs the target's loss"),
    "one step": (_attack(steps=1), "only one step was taken"),
}


def test_targeted_attack_grader_accepts_a_right_loop(capsys: pytest.CaptureFixture[str]) -> None:
    check_targeted_attack(_attack())
    assert "Correct!" in capsys.readouterr().out


@pytest.mark.parametrize("case", sorted(ATTACKS))
def test_targeted_attack_mistakes_get_their_own_hint(case: str) -> None:
    fn, words = ATTACKS[case]
    assert words in _hint(_fails_with(check_targeted_attack, fn))


def test_targeted_attack_still_attached_is_rejected() -> None:
    _fails_with(check_targeted_attack, _attack(detach=False), "still attached to the autograd graph")

# --- 09 evaluation ----------------------------------------------------------------------------


CURVES = {
    "mean of the scores": (lambda f, s: s.mean(dim=1), "by the width"),
    "left sum": (lambda f, s: (s[:, :-1] * (f[1:] - f[:-1])).sum(dim=1), "not only the left one"),
    "right sum": (lambda f, s: (s[:, 1:] * (f[1:] - f[:-1])).sum(dim=1), "not only the right one"),
    "no halving": (lambda f, s: ((s[:, 1:] + s[:, :-1]) * (f[1:] - f[:-1])).sum(dim=1), "halve"),
    "even spacing": (lambda f, s: torch.trapezoid(s, dx=1 / (s.shape[1] - 1), dim=1), "not evenly spaced"),
    "no fractions": (lambda f, s: torch.trapezoid(s, dim=1), "pass the fractions"),
    "swapped": (lambda f, s: ((f[1:] + f[:-1]) / 2 * (s[:, 1:] - s[:, :-1])).sum(dim=1), "swapped"),
    "one area for the batch": (lambda f, s: torch.trapezoid(s, f, dim=1).sum(), "along each row"),
}


@pytest.mark.parametrize("case", sorted(CURVES))
def test_curve_area_mistakes_get_their_own_hint(case: str) -> None:
    fn, words = CURVES[case]
    assert words in _hint(_fails_with(check_curve_area, fn))


def _pointing(*, inclusive=False, metric="euclidean", swap=False, by_height=False, strict=False, tolerance=True):
    def pointing_hit(heatmap, box, tol):
        height, width = heatmap.shape
        row, col = divmod(int(heatmap.argmax()), height if by_height else width)
        if swap:
            row, col = col, row
        right, bottom = (box.right, box.bottom) if inclusive else (box.right - 1, box.bottom - 1)
        dx = max(box.left - col, 0, col - right)
        dy = max(box.top - row, 0, row - bottom)
        if not tolerance:
            return dx == 0 and dy == 0
        distance = {"euclidean": (dx**2 + dy**2) ** 0.5, "manhattan": dx + dy, "chebyshev": max(dx, dy)}[metric]
        return distance < tol if strict else distance <= tol

    return pointing_hit


POINTING = {
    "right edge inclusive": (_pointing(inclusive=True), "exclusive"),
    "Manhattan": (_pointing(metric="manhattan"), "not |dx| + |dy|"),
    "Chebyshev": (_pointing(metric="chebyshev"), "not max(|dx|, |dy|)"),
    "rows and columns swapped": (_pointing(swap=True), "swapped"),
    "divmod by the height": (_pointing(by_height=True), "not the height"),
    "strict": (_pointing(strict=True), "not <"),
    "tolerance ignored": (_pointing(tolerance=False), "within `tolerance` pixels"),
    "always True": (lambda h, b, t: True, "on every case"),
    "a tensor of answers": (lambda h, b, t: h > 0.5, "compare one distance"),
}


@pytest.mark.parametrize("case", sorted(POINTING))
def test_pointing_hit_mistakes_get_their_own_hint(case: str) -> None:
    fn, words = POINTING[case]
    assert words in _hint(_fails_with(check_pointing_hit, fn))


def test_the_pointing_grader_accepts_a_right_answer(capsys: pytest.CaptureFixture[str]) -> None:
    check_pointing_hit(_pointing())
    assert capsys.readouterr().out.startswith("Correct!")


# --- what every message shows -----------------------------------------------------------------


def test_the_comparison_shows_the_first_value_that_differs_with_both_values() -> None:
    def off_by_one_somewhere(x):
        out = _tv(x)
        if out.shape[0] == 2:
            out = out.clone()
            out[1] += 1.0
        return out

    message = _fails_with(check_total_variation, off_by_one_somewhere, "On a batch (2, 3, 5, 6)")
    assert "First difference at index 1: Expected " in message
    assert "(1 of 2 values differ)" in message

    def one_pixel_wrong(grad):
        out = grad.abs().amax(dim=1).clone()
        if out.shape[0] == 2:
            out[1, 2, 3] = -7.0
        return out

    message = _fails_with(check_saliency_map, one_pixel_wrong)
    line = next(line for line in message.splitlines() if line.startswith("First difference"))
    assert line.startswith("First difference at index [1, 2, 3]: Expected ")
    assert ", got -7 (1 of 40 values differ)." in line


@pytest.mark.parametrize(
    ("grader", "fn"),
    [
        (check_smoothgrad, _smooth(zero=False)),
        (check_completeness_gap, _gap(then=lambda gap, a, d: gap.abs())),
        (check_lrp_epsilon, _lrp(sign=torch.sign)),
        (check_saliency_map, lambda g: g.abs().sum(dim=1)),
    ],
)
def test_more_help_on_request(grader: Callable[..., None], fn: Callable[..., Any]) -> None:
    """A failure names the call that gives more help; that call gives it, after the same hint."""
    first = _fails_with(grader, fn)
    ask = first.splitlines()[-1]
    assert ask == f"For more help, run {grader.__name__}(your_function, hint=2)" or ask.endswith(", hint=2)")
    with pytest.raises(AssertionError) as info:
        grader(fn, hint=2)
    second = str(info.value)
    assert _hint(second) == _hint(first)
    more = second.splitlines()[-1]
    assert more.startswith("More help: ") and len(more) > 30
    assert "hint=2" not in second


def test_more_help_names_the_learners_function() -> None:
    def saliency_map(grad):
        return grad.abs().sum(dim=1)

    message = _fails_with(check_saliency_map, saliency_map)
    assert message.endswith("For more help, run check_saliency_map(saliency_map, hint=2)")


def test_the_hint_level_is_checked_and_shown_in_the_signature(capsys: pytest.CaptureFixture[str]) -> None:
    import inspect

    with pytest.raises(ValueError, match="hint must be 1"):
        check_saliency_map(lambda g: g.abs().amax(dim=1), hint=3)
    with pytest.raises(TypeError, match="hint must be 1 or 2, an int"):
        check_saliency_map(lambda g: g.abs().amax(dim=1), hint="more")  # type: ignore[arg-type]
    check_saliency_map(lambda g: g.abs().amax(dim=1), hint=2)  # a right answer: no help needed
    assert capsys.readouterr().out.startswith("Correct!")
    assert "hint: 'int' = 1" in str(inspect.signature(check_saliency_map))


def test_a_crash_inside_torch_shows_only_the_learners_frames_and_a_hint_for_it() -> None:
    def smooth_gradient(model, x, target, samples, noise, generator):
        inputs = x.detach().clone().requires_grad_(True)
        score = model(inputs)[torch.arange(len(target)), target].sum()
        for _ in range(samples):
            score.backward()  # the second time through a freed graph
        return inputs.grad / samples

    with pytest.raises(AssertionError) as info:
        check_smoothgrad(smooth_gradient)
    shown = info.value._render_traceback_()  # type: ignore[attr-defined]
    text = "\n".join(shown)
    assert "score.backward()" in text and "torch/" not in text.replace(os.sep, "/"), text
    assert shown[0].startswith('  File "') and shown[0].endswith("in smooth_gradient")
    assert len(shown) == 2 + len(str(info.value).splitlines())  # one frame, then the message
    assert "run the forward pass again" not in text  # the more help waits for hint=2
    assert "frees the graph" in _hint(str(info.value))


# --- in a real kernel: the message alone ------------------------------------------------------

_NOTEBOOK_CELLS = [
    "import torch\nfrom vizwidgets.checks import check_input_gradient, check_saliency_map, check_softmax",
    # a wrong answer: the grader's verdict
    "def saliency_map(grad):\n    return grad.abs().sum(dim=1)\n\ncheck_saliency_map(saliency_map)",
    # the same, asking for more help
    "check_saliency_map(saliency_map, hint=2)",
    # the learner's own code fails inside torch
    "def softmax(logits):\n    return torch.softmax(logits, dim=5)\n\ncheck_softmax(softmax)",
    # ... deep inside torch's modules (a float32 input meets float64 weights): 8 frames of torch
    "def input_gradient(model, x, target):\n"
    "    inputs = x.float().requires_grad_(True)\n"
    "    scores = model(inputs)[torch.arange(len(target)), target]\n"
    "    return torch.autograd.grad(scores.sum(), inputs)[0]\n\n"
    "check_input_gradient(input_gradient)",
]


def _execute(notebook: nbformat.NotebookNode, cwd: Path) -> nbformat.NotebookNode:
    """Run ``notebook`` in a kernel of this Python (errors kept in the outputs)."""
    nbclient = pytest.importorskip("nbclient")
    ipykernel_spec = pytest.importorskip("ipykernel.kernelspec")
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync

    class ThisPython(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
            return KernelSpec(resource_dir=ipykernel_spec.RESOURCES, **ipykernel_spec.get_kernel_dict())

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    manager = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=ThisPython())
    client = nbclient.NotebookClient(notebook, km=manager, timeout=120, startup_timeout=120, allow_errors=True)
    try:
        client.execute(cwd=str(cwd), env=env, cleanup_kc=True)
    finally:
        if manager.has_kernel:
            run_sync(manager.shutdown_kernel)(now=True)
    return notebook


def test_in_a_notebook_a_failed_check_shows_the_message_alone(tmp_path: Path) -> None:
    """Executed by a real kernel, as JupyterLab shows it: a verdict is its message and nothing
    else, line for line; a crash adds only the learner's own frame."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in _NOTEBOOK_CELLS]
    _execute(notebook, tmp_path)
    assert not [o for o in notebook.cells[0].outputs if o.output_type == "error"]
    errors = []
    for cell in notebook.cells[1:]:
        (error,) = [o for o in cell.outputs if o.output_type == "error"]
        text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error.traceback))
        errors.append((error, text.splitlines()))
    (verdict, verdict_lines), (more, more_lines), (crash, crash_lines), (deep, deep_lines) = errors
    # the verdict: "AssertionError: <message>", exactly the message's lines
    assert verdict.ename == "AssertionError"
    assert verdict_lines == f"AssertionError: {verdict.evalue}".splitlines()
    assert len(verdict_lines) == 6, verdict_lines  # headline, difference, 2 values, hint, more help
    assert verdict_lines[-1] == "For more help, run check_saliency_map(saliency_map, hint=2)"
    assert more_lines == f"AssertionError: {more.evalue}".splitlines()
    assert more_lines[-1].startswith("More help: ")
    # the crash: the learner's one frame (two lines), then the message
    assert crash.ename == "AssertionError"
    assert crash_lines[0].startswith('  File "') and crash_lines[0].endswith("in softmax"), crash_lines
    assert crash_lines[1].strip() == "return torch.softmax(logits, dim=5)"
    assert crash_lines[2:] == f"AssertionError: {crash.evalue}".splitlines()
    # deep inside torch: still only the learner's frame, and a hint for that error
    assert deep_lines[0].endswith("in input_gradient"), deep_lines
    assert deep_lines[1].strip() == "scores = model(inputs)[torch.arange(len(target)), target]"
    assert deep_lines[2:] == f"AssertionError: {deep.evalue}".splitlines()
    assert len(deep_lines) == 5 and "different dtypes" in deep_lines[3], deep_lines
    for _, lines in errors:
        assert not any("vizwidgets" in line or "site-packages" in line for line in lines), lines
