"""Graders for notebook 07 (fooling): one targeted FGSM step, and the whole targeted attack."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor

from vizwidgets.checks._harness import (
    _call,
    _close,
    _compare,
    _grader,
    _Help,
    _judge,
    _name,
    _require_callable,
    _require_images,
    _require_tensor,
    _verdict,
    _Wrong,
)
from vizwidgets.checks._nets import _small_net

__all__ = ["check_fgsm_step", "check_targeted_attack"]


def _input_gradient(model: torch.nn.Module, x: Tensor, score: Callable[[Tensor], Tensor]) -> Tensor:
    """d score(model(x)) / d x on a copy of ``x``."""
    xg = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(score(model(xg)), xg)
    return grad


def _reference_fgsm(
    model: torch.nn.Module,
    x: Tensor,
    target: Tensor,
    epsilon: float,
    sign: float = -1.0,
    clamp: bool = True,
) -> Tensor:
    """One FGSM step on the summed cross-entropy; ``sign=+1`` or ``clamp=False`` give the
    usual mistakes."""
    grad = _input_gradient(
        model, x, lambda logits: torch.nn.functional.cross_entropy(logits, target, reduction="sum")
    )
    out = x + sign * epsilon * grad.sign()
    return out.clamp(0.0, 1.0) if clamp else out


def _fgsm_mistakes(
    model: torch.nn.Module, x: Tensor, target: Tensor, epsilon: float
) -> list[tuple[Tensor, _Help]]:
    """The results of FGSM's usual mistakes, each with its help."""
    rows = torch.arange(len(target))
    loss = _input_gradient(
        model, x, lambda logits: torch.nn.functional.cross_entropy(logits, target, reduction="sum")
    )
    logit = _input_gradient(model, x, lambda logits: logits[rows, target].sum())
    with torch.no_grad():
        predicted = model(x).argmax(dim=1)
    away = _input_gradient(
        model, x, lambda logits: torch.nn.functional.cross_entropy(logits, predicted, reduction="sum")
    )
    norms = loss.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1, 1)
    return [
        (
            _reference_fgsm(model, x, target, epsilon, sign=1.0),
            _Help(
                "step *against* the gradient of the target's loss: x - epsilon * sign(grad); "
                "you climbed the loss, away from the target",
                "lowering the loss of the target class makes the network more sure of it; "
                "the gradient points uphill, so subtract its sign",
            ),
        ),
        (
            (x + epsilon * logit.sign()).clamp(0, 1),
            _Help(
                "you climbed the target's logit; the exercise steps down the target's "
                "cross-entropy loss, which also pushes the other classes' logits down",
                "differentiate `torch.nn.functional.cross_entropy(model(xg), target, "
                "reduction=\"sum\")` and step against its sign: x - epsilon * sign(grad)",
            ),
        ),
        (
            (x - epsilon * logit.sign()).clamp(0, 1),
            _Help(
                "you stepped down the target's logit, away from the target; the exercise steps "
                "down the target's cross-entropy loss",
                "differentiate the loss `cross_entropy(model(xg), target, reduction=\"sum\")`, "
                "not the logit, and subtract epsilon * its sign",
            ),
        ),
        (
            (x + epsilon * away.sign()).clamp(0, 1),
            _Help(
                "this step moves away from the predicted class (untargeted FGSM); the exercise "
                "moves towards the class `target`",
                "use the loss of `target`, not of the model's prediction, and step against it: "
                "x - epsilon * sign(grad)",
            ),
        ),
        (
            _reference_fgsm(model, x, target, epsilon, clamp=False),
            _Help(
                "clamp the result to [0, 1]: it must stay an image",
                "`.clamp(0.0, 1.0)` after the step; pixel values outside [0, 1] do not exist",
            ),
        ),
        (
            (x - epsilon * loss).clamp(0, 1),
            _Help(
                "use grad.sign(), not the gradient itself, times epsilon",
                "FGSM moves every pixel value by exactly epsilon, up or down: "
                "x - epsilon * grad.sign()",
            ),
        ),
        (
            (x - epsilon * loss / norms).clamp(0, 1),
            _Help(
                "FGSM takes the sign of the gradient, not the gradient divided by its norm",
                "x - epsilon * grad.sign(): every pixel value moves by exactly epsilon",
            ),
        ),
    ]


@_grader
def check_fgsm_step(fgsm_step: Callable[..., Tensor]) -> None:
    """Grade ``fgsm_step(model, x, target, epsilon)``:
    ``clip(x - epsilon sign(grad CE(target)), 0, 1)``, detached from the autograd graph."""
    _require_callable(fgsm_step, "fgsm_step", "check_fgsm_step(fgsm_step)")
    name = _name(fgsm_step)
    generator = torch.Generator().manual_seed(9)
    cases = [
        (
            "one 6x6 image, epsilon 0.1, target 2",
            _small_net(0),
            torch.rand(1, 3, 6, 6, generator=generator, dtype=torch.float64),
            torch.tensor([2]),
            0.1,
        ),
        (
            "2 images near 0 and 1, epsilon 0.3, targets [4, 1]",
            _small_net(1),
            torch.rand(2, 3, 5, 5, generator=generator, dtype=torch.float64).round(),
            torch.tensor([4, 1]),
            0.3,
        ),
    ]

    def judge(case: str, model: torch.nn.Module, x: Tensor, target: Tensor, epsilon: float) -> _Wrong | None:
        expected = _reference_fgsm(model, x, target, epsilon)
        result = _call(fgsm_step, case, model, x, target, epsilon, what="the images x")
        result = _require_tensor(result, "the stepped images", fgsm_step, case)
        if tuple(result.shape) != tuple(x.shape):
            raise _verdict(
                f"On {case}, {name} returned shape {tuple(result.shape)}; the stepped images "
                f"have the shape of x, {tuple(x.shape)}",
                _Help(
                    "return the whole stepped batch, of x's shape",
                    "x - epsilon * grad.sign() has x's shape; do not index, sum or squeeze it",
                ),
            )
        if result.requires_grad:
            attached = f"grad_fn={type(result.grad_fn).__name__}" if result.grad_fn else "requires_grad=True"
            raise _verdict(
                f"On {case}, {name} returned images still attached to the autograd graph "
                f"({attached})",
                _Help(
                    "detach the step: take it inside `with torch.no_grad():`, or return "
                    "`(...).detach()`",
                    "the stepped image is a new starting point, not part of the loss: attached, "
                    "it keeps every earlier step's graph in memory, and the next step's "
                    "gradient would flow back through them; compute it from x (which does not "
                    "require gradients) and grad.sign()",
                ),
            )
        if _close(result, expected):
            return None
        return _Wrong(
            f"On {case}, {name} gave a wrong step.",
            result,
            expected,
            lambda: _fgsm_mistakes(model, x, target, epsilon),
            _Help(
                "compute the summed cross-entropy of the target on a copy of x that requires "
                "gradients, then x - epsilon * grad.sign(), clamped to [0, 1]",
                "`xg = x.detach().clone().requires_grad_(True)`; `loss = cross_entropy(model(xg), "
                "target, reduction=\"sum\")`; `grad = torch.autograd.grad(loss, xg)[0]`",
            ),
        )

    _judge(functools.partial(judge, *case) for case in cases)
    print(f"Correct! {name} takes one targeted FGSM step and stays in [0, 1].")


def _reference_attack(
    model: torch.nn.Module,
    x: Tensor,
    target: Tensor,
    epsilon: float,
    step: float,
    steps: int,
    *,
    project: str = "original",
    clamp: bool = True,
    fresh_gradient: bool = True,
    sign: float = -1.0,
) -> Tensor:
    """The targeted attack as the exercise says: ``steps`` FGSM steps of size ``step``, each
    followed by the projection into the ``epsilon``-box around the ORIGINAL ``x`` and into
    [0, 1]. The keywords give the classic mistakes: no projection, the box around the current
    image (the same as none while ``step <= epsilon``), no clamp, the gradient of the first
    image reused, steps up the loss."""
    current = x.detach().clone()
    first = None
    for _ in range(steps):
        xg = current.detach().clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(xg), target, reduction="sum")
        (grad,) = torch.autograd.grad(loss, xg)
        if first is None:
            first = grad
        direction = (grad if fresh_gradient else first).sign()
        stepped = current + sign * step * direction
        if project == "original":
            stepped = torch.min(torch.max(stepped, x - epsilon), x + epsilon)
        elif project == "current":
            stepped = torch.min(torch.max(stepped, current - epsilon), current + epsilon)
        current = stepped.clamp(0.0, 1.0) if clamp else stepped
    return current.detach()


@_grader
def check_targeted_attack(targeted_attack: Callable[..., Tensor]) -> None:
    """Grade ``targeted_attack(model, x, target, epsilon, step, steps)``: ``steps`` targeted FGSM
    steps of size ``step``, each projected into ``[x - epsilon, x + epsilon]`` around the
    original ``x`` and into [0, 1]; returns the attacked images, detached."""
    _require_callable(targeted_attack, "targeted_attack", "check_targeted_attack(targeted_attack)")
    name = _name(targeted_attack)
    generator = torch.Generator().manual_seed(11)
    cases = [
        (
            "one 6x6 image, epsilon 0.05, 6 steps of 0.02, target 3",
            _small_net(0),
            torch.rand(1, 3, 6, 6, generator=generator, dtype=torch.float64),
            torch.tensor([3]),
            0.05,
            0.02,
            6,
        ),
        (
            "2 images with pixels near 0 and 1, epsilon 0.1, 4 steps of 0.04, targets [0, 2]",
            _small_net(1),
            torch.rand(2, 3, 5, 5, generator=generator, dtype=torch.float64).round(),
            torch.tensor([0, 2]),
            0.1,
            0.04,
            4,
        ),
    ]
    for case, model, x, target, epsilon, step, steps in cases:
        args = (model, x, target, epsilon, step, steps)
        expected = _reference_attack(*args)
        result = _call(targeted_attack, case, *args, what="the images x")
        result = _require_images(result, x, "the attacked images", targeted_attack, case, "x_adv")
        if _close(result, expected):
            continue
        hints = [
            (
                _reference_attack(*args, project="none"),
                _Help(
                    "the change grew past epsilon: after each step, project back into the box "
                    "around the original image (a box around the previous step's image moves "
                    "with the attack and never stops it)",
                    "keep the original x in its own variable; torch.min(torch.max(x_adv, "
                    "x - epsilon), x + epsilon) keeps every pixel within epsilon of it",
                ),
            ),
            (
                _reference_attack(*args, clamp=False),
                _Help(
                    "clamp to [0, 1] after the projection: it must stay an image",
                    "the box around x can reach below 0 or above 1; `.clamp(0, 1)` last",
                ),
            ),
            (
                _reference_attack(*args, fresh_gradient=False),
                _Help(
                    "the gradient is taken once, at the original image: take it again at the "
                    "current image in every step",
                    "call fgsm_step on x_adv, the image of the previous step, inside the loop",
                ),
            ),
            (
                _reference_attack(*args, sign=1.0),
                _Help(
                    "the attack climbs the target's loss, moving away from the target: step "
                    "against the gradient, x_adv - step * sign(grad)",
                    "your fgsm_step from the exercise above already steps the right way; use it",
                ),
            ),
            (
                _reference_attack(model, x, target, epsilon, step, 1),
                _Help("only one step was taken: loop `steps` times", "for _ in range(steps): ..."),
            ),
        ]
        help = next(
            (h for ref, h in hints if _close(result, ref)),
            _Help(
                "per step: a targeted FGSM step of size `step` at the current image, then the "
                "projection around the original x, then clamp to [0, 1]",
                "per step: x_adv = fgsm_step(model, x_adv, target, step); then x_adv = torch.min(torch.max("
                "x_adv, x - epsilon), x + epsilon); then x_adv = x_adv.clamp(0, 1)",
            ),
        )
        raise _verdict(f"On {case}, {name} gave wrong images.", help, _compare(result, expected))
    print(
        f"Correct! {name} iterates targeted steps and keeps every pixel within epsilon of the "
        "original and in [0, 1]."
    )
