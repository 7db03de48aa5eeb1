"""Graders for notebook 01 (saliency): the input gradient, the saliency map and SmoothGrad."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor

from vizwidgets.checks._harness import (
    _call,
    _close,
    _grader,
    _Help,
    _judge,
    _matches,
    _name,
    _require_callable,
    _require_tensor,
    _verdict,
    _Wrong,
)
from vizwidgets.checks._nets import _reference_gradient, _small_net

__all__ = ["check_input_gradient", "check_saliency_map", "check_smoothgrad"]


def _gradient_cases() -> list[tuple[str, torch.nn.Module, Tensor, Tensor]]:
    """The test inputs of the input-gradient grader: (description, model, x, target)."""
    generator = torch.Generator().manual_seed(1)
    return [
        (
            "one 6x6 image, target class 2",
            _small_net(0),
            torch.randn(1, 3, 6, 6, generator=generator, dtype=torch.float64),
            torch.tensor([2]),
        ),
        (
            "a batch of 3 images with targets [4, 0, 4]",
            _small_net(1),
            torch.randn(3, 3, 5, 7, generator=generator, dtype=torch.float64),
            torch.tensor([4, 0, 4]),
        ),
    ]


def _score_gradient(model: torch.nn.Module, x: Tensor, score: Callable[[Tensor], Tensor]) -> Tensor:
    """d score(logits).sum() / d x: the gradient of a learner's usual wrong scores."""
    inputs = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(score(model(inputs)).sum(), inputs)
    return grad


def _gradient_mistakes(
    model: torch.nn.Module, x: Tensor, target: Tensor
) -> list[tuple[Tensor, _Help]]:
    """The results of the input gradient's usual mistakes, each with its help."""
    rows = torch.arange(len(target))
    right = _reference_gradient(model, x, target)
    return [
        (
            _reference_gradient(model, x, target, "probability"),
            _Help(
                "this is the gradient of the softmax probability; differentiate the logit itself",
                "the probability also rises when other classes fall; take the target logits "
                "straight from the model's output, `logits[torch.arange(N), target]`, no softmax",
            ),
        ),
        (
            _reference_gradient(model, x, target, "all"),
            _Help(
                "this is the gradient of the sum of all logits; pick each image's target logit "
                "first",
                "`logits[torch.arange(N), target]` is the vector of the N target logits; sum "
                "that, not the whole (N, classes) matrix",
            ),
        ),
        (
            _score_gradient(model, x, lambda logits: logits[:, target]),
            _Help(
                "`logits[:, target]` takes every image's logit of every target (an N x N "
                "matrix); each image needs its own target only",
                "index rows and columns together: `logits[torch.arange(N), target]` picks "
                "logits[n, target[n]] for each image n",
            ),
        ),
        (
            _score_gradient(
                model, x, lambda logits: -torch.nn.functional.cross_entropy(logits, target, reduction="none")
            ),
            _Help(
                "this is the gradient of log-softmax (minus the loss); saliency differentiates "
                "the logit, before any softmax",
                "drop the softmax, log-softmax or cross-entropy: differentiate "
                "`logits[torch.arange(N), target]` itself",
            ),
        ),
        (
            _score_gradient(
                model, x, lambda logits: torch.nn.functional.cross_entropy(logits, target, reduction="none")
            ),
            _Help(
                "this is the gradient of the cross-entropy loss; saliency differentiates the "
                "target logit, and the loss points the other way",
                "differentiate `logits[torch.arange(N), target]`, not a loss",
            ),
        ),
        (
            -right,
            _Help(
                "right size, wrong sign: this is the gradient of minus the logit",
                "differentiate the target logits themselves, not their negative (a loss "
                "would be minimised; here we only measure)",
            ),
        ),
        (
            right * x,
            _Help(
                "this is gradient x input; the exercise asks for the gradient alone",
                "return the result of torch.autograd.grad without multiplying it by x",
            ),
        ),
        (
            right * (rows == 0).double().view(-1, 1, 1, 1),
            _Help(
                "only the first image of the batch has a gradient; every image needs its own",
                "sum the N target logits, `logits[torch.arange(N), target].sum()`, then one "
                "torch.autograd.grad gives every image's gradient",
            ),
        ),
    ]


@_grader
def check_input_gradient(
    input_gradient: Callable[[torch.nn.Module, Tensor, Tensor], Tensor],
) -> None:
    """Grade ``input_gradient(model, x, target) -> d logit[target] / d x``, ``(N, 3, H, W)``.

    Tried on two small fixed networks, one image and a batch with one target per image.
    """
    _require_callable(input_gradient, "input_gradient", "check_input_gradient(input_gradient)")
    cases = _gradient_cases()
    name = _name(input_gradient)

    def judge(case: str, model: torch.nn.Module, x: Tensor, target: Tensor) -> _Wrong | None:
        expected = _reference_gradient(model, x, target)
        result = _call(input_gradient, case, model, x, target, what="the images x")
        result = _require_tensor(result, "the gradient", input_gradient, case)
        shape = tuple(result.shape)
        if shape != tuple(x.shape):
            if shape == tuple(x.shape[1:]) or shape == (x.shape[0],):
                help = _Help(
                    "keep the batch dimension: one gradient per image, of the image's shape",
                    "differentiate with respect to the whole batch copy of x, and do not "
                    "index, squeeze or sum over dim 0 afterwards",
                )
            else:
                help = _Help(
                    "differentiate with respect to the copy of x you made require gradients, "
                    "not with respect to the logits",
                    "`torch.autograd.grad(total, inputs)` returns a tuple with one gradient of "
                    "the shape of `inputs`; take its first element",
                )
            raise _verdict(
                f"On {case}, {name} returned shape {shape}; the gradient has the shape of the "
                f"images, {tuple(x.shape)}",
                help,
            )
        if _close(result, expected):
            return None
        return _Wrong(
            f"On {case}, {name} gave a wrong gradient.",
            result,
            expected,
            lambda: _gradient_mistakes(model, x, target),
            _Help(
                "compare your steps with the exercise text",
                "copy x with `x.detach().clone().requires_grad_(True)`, run the model on the "
                "copy, pick `logits[torch.arange(N), target]`, sum, then "
                "`torch.autograd.grad(total, copy)[0]`",
            ),
        )

    _judge(functools.partial(judge, *case) for case in cases)
    print(
        f"Correct! {_name(input_gradient)} gives d logit / d input on {len(cases)} test "
        "inputs, batch included."
    )


def _saliency_mistakes(grad: Tensor) -> list[tuple[Tensor, _Help]]:
    """The results of the saliency map's usual mistakes, each with its help."""
    g = grad.double()
    return [
        (
            g.amax(dim=1),
            _Help(
                "take the absolute value before the maximum: a large negative gradient matters too",
                "a gradient of -4 says the score is as sensitive to that pixel as one of +4; "
                "`.abs()` first, then the maximum over dim=1",
            ),
        ),
        (
            g.amax(dim=1).abs(),
            _Help(
                "you took the absolute value after the maximum, so a large negative gradient "
                "loses to a small positive one",
                "swap the two steps: `.abs()` first, then the maximum over the channels",
            ),
        ),
        (
            g.abs().sum(dim=1),
            _Help(
                "the saliency map takes the maximum over the channels, not the sum",
                "reduce dim=1 of |grad| with `.amax(dim=1)` (or `.max(dim=1).values`)",
            ),
        ),
        (
            g.abs().mean(dim=1),
            _Help(
                "the saliency map takes the maximum over the channels, not the mean",
                "reduce dim=1 of |grad| with `.amax(dim=1)` (or `.max(dim=1).values`)",
            ),
        ),
        (
            g.norm(dim=1),
            _Help(
                "this is the length (L2 norm) of the gradient over the channels, not its "
                "largest absolute value",
                "no squares or square roots: the maximum over dim=1 of `grad.abs()`",
            ),
        ),
        (
            (g**2).amax(dim=1),
            _Help(
                "you squared the gradient; the map holds its absolute value",
                "`grad.abs()` keeps the units of the gradient; then the maximum over dim=1",
            ),
        ),
    ]


@_grader
def check_saliency_map(saliency_map: Callable[[Tensor], Tensor]) -> None:
    """Grade ``saliency_map(grad) -> max over colour channels of |grad|``, ``(N, H, W)``."""
    _require_callable(saliency_map, "saliency_map", "check_saliency_map(saliency_map)")
    generator = torch.Generator().manual_seed(2)
    cases = [
        (
            "a gradient of shape (1, 3, 2, 2)",
            torch.tensor(
                [
                    [
                        [[1.0, -4.0], [0.5, -0.5]],
                        [[-2.0, 1.0], [0.25, -3.0]],
                        [[0.0, 2.0], [-1.0, -1.0]],
                    ]
                ]
            ),
        ),
        (
            "a batch of gradients of shape (2, 3, 4, 5)",
            torch.randn(2, 3, 4, 5, generator=generator),
        ),
    ]
    name = _name(saliency_map)

    def judge(case: str, grad: Tensor) -> _Wrong | None:
        expected = grad.double().abs().amax(dim=1)
        result = _require_tensor(
            _call(saliency_map, case, grad, what="the gradient"), "the map", saliency_map, case
        )
        shape = tuple(result.shape)
        if shape != tuple(expected.shape):
            if shape == (grad.shape[0], 1, *grad.shape[2:]):
                help = _Help(
                    "drop the channel dimension: the map is (N, H, W), without keepdim=True",
                    "reduce dim=1 without `keepdim=True`, or `.squeeze(1)` afterwards",
                )
            else:
                help = _Help(
                    "reduce over the colour channels, dim=1",
                    "the gradient is (N, 3, H, W): dim 0 is the batch, dim 1 the colours; "
                    "the map keeps N, H and W",
                )
            raise _verdict(
                f"On {case}, {name} returned shape {shape}; the map's shape is "
                f"{tuple(expected.shape)}",
                help,
            )
        if _close(result, expected):
            return None
        return _Wrong(
            f"On {case}, {name} gave a wrong map.",
            result,
            expected,
            lambda: _saliency_mistakes(grad),
            _Help(
                "max over dim=1 of grad.abs()",
                "for each image and pixel, the largest of the three |gradient| values",
            ),
        )

    _judge(functools.partial(judge, *case) for case in cases)
    print(f"Correct! {name} gives the largest absolute gradient over the colour channels.")


# How a SmoothGrad may draw its noise and be right: one draw of x's shape per sample (the
# exercise's order), or all samples in one call, ``randn((samples, *x.shape))``; each in the
# default float32 or in x's dtype.
_DRAW_ORDERS = (("each", None), ("once", None), ("each", "x"), ("once", "x"))


def _standard_draws(x: Tensor, samples: int, seed: int, order: str, dtype: str | None) -> list[Tensor]:
    """The ``samples`` standard normal draws a SmoothGrad makes from a generator seeded with
    ``seed``, drawn in ``order`` ("each": one call per sample; "once": one call for all)."""
    generator = torch.Generator().manual_seed(seed)
    kind = x.dtype if dtype == "x" else None
    if order == "each":
        return [torch.randn(x.shape, generator=generator, dtype=kind) for _ in range(samples)]
    return list(torch.randn((samples, *x.shape), generator=generator, dtype=kind))


def _reference_smoothgrad(
    model: torch.nn.Module,
    x: Tensor,
    target: Tensor,
    draws: list[Tensor],
    noise: float,
    *,
    sigma: str = "range",
    fresh_noise: bool = True,
    mean: bool = True,
    accumulate: bool = False,
) -> Tensor:
    """SmoothGrad from the standard draws ``draws``; the keywords give the usual mistakes:
    ``sigma`` "noise" (not scaled by the range) or "image" (each image's own range), one draw
    reused, the sum for the mean, and gradients accumulating in ``.grad`` across samples."""
    if sigma == "range":
        scale: Tensor | float = noise * (x.max() - x.min())
    elif sigma == "image":
        scale = noise * (x.amax(dim=(1, 2, 3), keepdim=True) - x.amin(dim=(1, 2, 3), keepdim=True))
    else:
        scale = noise
    eps = [draws[s if fresh_noise else 0] * scale for s in range(len(draws))]
    total = torch.zeros_like(x)
    running = torch.zeros_like(x)  # what .grad holds when it is never zeroed
    for grad in _gradients_at(model, x, target, eps):
        running = running + grad
        total += running if accumulate else grad
    return total / len(draws) if mean else total


def _gradients_at(model: torch.nn.Module, x: Tensor, target: Tensor, eps: list[Tensor]) -> list[Tensor]:
    """The input gradients at ``x + e`` for each ``e`` of ``eps``, in one batched pass (the
    graders' networks treat each image on its own)."""
    noisy = torch.cat([x + e for e in eps])
    grads = _reference_gradient(model, noisy, target.repeat(len(eps)))
    return list(grads.split(len(x)))


def _smoothgrad_mistakes(
    model: torch.nn.Module, x: Tensor, target: Tensor, samples: int, noise: float, seed: int
) -> list[tuple[Tensor, _Help]]:
    """The results of SmoothGrad's usual mistakes, each in every accepted draw order, with
    their help."""
    mistakes: list[tuple[dict[str, object], _Help]] = [
        (
            {"accumulate": True},
            _Help(
                "the gradients add up across samples: `.grad` accumulates over backward() "
                "calls, so each sample also counts every sample before it",
                "give each sample a fresh tensor, `noisy = (x + eps).detach()."
                "requires_grad_(True)`, and take its gradient with torch.autograd.grad (which "
                "returns it instead of adding it to `.grad`), as your input_gradient does; or "
                "set `.grad = None` before each backward()",
            ),
        ),
        (
            {"mean": False},
            _Help(
                "divide the sum by the number of samples",
                "SmoothGrad is the mean gradient: `total / samples` at the end",
            ),
        ),
        (
            {"sigma": "noise"},
            _Help(
                "sigma is the noise level times the range of x, not the noise level itself",
                "`sigma = noise * (x.max() - x.min())`, then `eps = torch.randn(x.shape, "
                "generator=generator) * sigma`",
            ),
        ),
        (
            {"sigma": "image"},
            _Help(
                "sigma uses the range of the whole batch x, not of each image",
                "`sigma = noise * (x.max() - x.min())`, one number for the batch",
            ),
        ),
        (
            {"fresh_noise": False},
            _Help(
                "draw new noise for every sample, inside the loop: you reuse one draw",
                "move the `eps = torch.randn(...)` line into the loop, so that each sample "
                "gets its own noise",
            ),
        ),
    ]
    results = [
        (
            _reference_gradient(model, x, target),
            _Help(
                "this is the plain gradient: add the noise to x before each gradient",
                "for each sample, compute input_gradient(model, x + eps, target), not of x",
            ),
        )
    ]
    for order, dtype in _DRAW_ORDERS:
        draws = _standard_draws(x, samples, seed, order, dtype)
        for flags, help in mistakes:
            results.append(
                (_reference_smoothgrad(model, x, target, draws, noise, **flags), help)  # type: ignore[arg-type]
            )
    return results


_NOT_REPRODUCIBLE = _Help(
    "your noise is not drawn from the generator the check passes in, so it cannot be "
    "reproduced: two runs gave different results",
    "pass it to every draw: `torch.randn(x.shape, generator=generator)` (torch.randn_like "
    "takes no generator)",
)


def _run_smoothgrad(
    smooth_gradient: Callable[..., Tensor],
    case: str,
    model: torch.nn.Module,
    x: Tensor,
    target: Tensor,
    samples: int,
    noise: float,
    seed: int,
) -> Tensor:
    """The learner's SmoothGrad on one case, with a generator seeded with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    result = _call(smooth_gradient, case, model, x, target, samples, noise, generator, what="the images x")
    return _require_tensor(result, "the averaged gradient", smooth_gradient, case)


@_grader
def check_smoothgrad(smooth_gradient: Callable[..., Tensor]) -> None:
    """Grade ``smooth_gradient(model, x, target, samples, noise, generator)``: the mean input
    gradient over ``samples`` copies ``x + eps``, ``eps = randn(x.shape, generator) * sigma``,
    ``sigma = noise * (x.max() - x.min())``.

    The noise may be drawn one sample at a time, as the exercise says, or for all samples in
    one call, ``torch.randn((samples, *x.shape), generator=generator) * sigma``.
    """
    _require_callable(smooth_gradient, "smooth_gradient", "check_smoothgrad(smooth_gradient)")
    name = _name(smooth_gradient)
    draws = torch.Generator().manual_seed(3)
    seed = 7
    cases = [
        (
            "one 6x6 image, 4 samples, noise 0.2",
            _small_net(0),
            torch.randn(1, 3, 6, 6, generator=draws, dtype=torch.float64),
            torch.tensor([1]),
            4,
            0.2,
        ),
        (
            "a batch of 2 images, 3 samples, noise 0.1",
            _small_net(1),
            torch.randn(2, 3, 5, 5, generator=draws, dtype=torch.float64),
            torch.tensor([3, 0]),
            3,
            0.1,
        ),
    ]

    def judge(
        case: str, model: torch.nn.Module, x: Tensor, target: Tensor, samples: int, noise: float
    ) -> _Wrong | None:
        arguments = (case, model, x, target, samples, noise, seed)
        result = _run_smoothgrad(smooth_gradient, *arguments)
        if tuple(result.shape) != tuple(x.shape):
            raise _verdict(
                f"On {case}, {name} returned shape {tuple(result.shape)}; the right shape is "
                f"{tuple(x.shape)}, the shape of x",
                _Help(
                    "return the mean of the gradients, one per image, of the shape of x",
                    "add the `samples` gradients (each of x's shape) into one total and divide "
                    "it by `samples`; do not stack them",
                ),
            )
        expected = [
            _reference_smoothgrad(model, x, target, _standard_draws(x, samples, seed, order, dtype), noise)
            for order, dtype in _DRAW_ORDERS
        ]
        if any(_close(result, right) for right in expected):
            return None

        def mistakes() -> list[tuple[Tensor, _Help]]:
            known = _smoothgrad_mistakes(model, x, target, samples, noise, seed)
            if not _matches(_run_smoothgrad(smooth_gradient, *arguments), result):
                known.append((result, _NOT_REPRODUCIBLE))  # last: only if nothing else matches
            return known

        return _Wrong(
            f"On {case}, {name} gave a wrong average.",
            result,
            expected[0],
            mistakes,
            _Help(
                "draw eps with torch.randn(x.shape, generator=generator) * sigma, once per "
                "sample, in order",
                "draw nothing else from the generator; for each of the `samples` samples: draw "
                "eps, add the input gradient at x + eps to a total; return total / samples",
            ),
        )

    _judge(functools.partial(judge, *case) for case in cases)
    print(f"Correct! {name} averages the gradient over noisy copies, as SmoothGrad does.")
