"""Graders for notebook 10 (is the model cheating?): a training epoch and relevance mass."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from vizwidgets.checks._harness import (
    _call,
    _close,
    _compare,
    _grader,
    _Help,
    _name,
    _require_callable,
    _require_tensor,
    _verdict,
)

__all__ = ["check_relevance_mass", "check_train_one_epoch"]


# ---------------------------------------------------------------------------------------------
# Exercise 1: one epoch of training
# ---------------------------------------------------------------------------------------------


def _tiny_net(seed: int) -> nn.Module:
    """A fixed little classifier with a batch norm (so train and eval mode differ), in eval
    mode, as the learner's function receives it."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.BatchNorm2d(3),
        nn.ReLU(),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(3, 3),
    ).double()
    return net.eval()


def _batches(seed: int) -> list[tuple[Tensor, Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(4, 1, 5, 5, generator=generator, dtype=torch.float64),
            torch.randint(0, 3, (4,), generator=generator),
        )
        for _ in range(3)
    ]


def _reference_epoch(
    net: nn.Module,
    batches: list[tuple[Tensor, Tensor]],
    *,
    train_mode: bool = True,
    zero_grad: str = "before",
    softmax_first: bool = False,
    step_first: bool = False,
) -> tuple[nn.Module, list[float]]:
    """The epoch as the exercise says, on a copy of ``net``; the keywords give the classic
    mistakes (eval mode kept, ``zero_grad`` never or after ``backward``, softmax before the
    cross-entropy, ``step`` before ``backward``). Returns the trained copy and each batch's loss."""
    net = copy.deepcopy(net)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    net.train(train_mode)
    losses = []
    for x, y in batches:
        if zero_grad == "before":
            optimizer.zero_grad()
        logits = net(x)
        if softmax_first:
            logits = logits.softmax(dim=1)
        loss = nn.functional.cross_entropy(logits, y)
        if step_first:
            optimizer.step()
        loss.backward()
        if zero_grad == "after_backward":
            optimizer.zero_grad()
        if not step_first:
            optimizer.step()
        losses.append(float(loss.detach()))
    return net, losses


def _weights(net: nn.Module) -> Tensor:
    """The learnable parameters of ``net`` as one flat float64 vector (no buffers)."""
    return torch.cat([p.detach().double().reshape(-1) for p in net.parameters()])


def _parameters(net: nn.Module) -> Tensor:
    """Every parameter and buffer of ``net`` as one flat float64 vector."""
    tensors = [*net.parameters(), *(b for b in net.buffers() if b.is_floating_point())]
    return torch.cat([t.detach().double().reshape(-1) for t in tensors])


_EPOCH_MISTAKES: list[tuple[dict[str, Any], _Help]] = [
    (
        {"zero_grad": "never"},
        _Help(
            "the gradients add up from one batch to the next: call optimizer.zero_grad() at "
            "the start of every batch, before loss.backward()",
            "loss.backward() adds to each parameter's .grad; without zero_grad the second "
            "step uses the sum of two batches' gradients, the third of three",
        ),
    ),
    (
        {"softmax_first": True},
        _Help(
            "the logits go through softmax before the loss: F.cross_entropy (and "
            "nn.CrossEntropyLoss) applies log-softmax itself, so give it the raw logits",
            "cross_entropy(softmax(z), y) squashes the scores twice: its gradients shrink and "
            "training crawls; write loss = F.cross_entropy(model(x), y)",
        ),
    ),
    (
        {"train_mode": False},
        _Help(
            "the model stayed in eval mode, so batch norm used its running statistics: call "
            "model.train() before the loop",
            "models come back from evaluation in eval mode; model.train() makes batch norm "
            "use each batch's statistics and update its running averages (and turns dropout "
            "on)",
        ),
    ),
]

_UNCHANGED = _Help(
    "the weights did not change at all: every optimizer.step() found no gradient. Per batch the "
    "order is zero_grad, forward, loss, backward, step: is zero_grad between backward and step, "
    "or step before backward, or missing",
    "zero_grad() clears .grad (to None); step() then has nothing to follow. Put "
    "optimizer.zero_grad() first in the loop body and optimizer.step() last, after "
    "loss.backward()",
)
_EPOCH_DEFAULT = _Help(
    "for every batch: optimizer.zero_grad(), logits = model(x), "
    "loss = F.cross_entropy(logits, y), loss.backward(), optimizer.step()",
    "call model.train() once before the loop, use each (x, y) of `batches` in order, and the "
    "optimizer you were given (not a new one)",
)


@_grader
def check_train_one_epoch(train_one_epoch: Callable[..., Any]) -> None:
    """Grade ``train_one_epoch(model, batches, optimizer) -> float``: for each ``(x, y)`` in
    ``batches``: zero the gradients, forward, cross-entropy of the logits, backward, step; with
    the model in training mode; return the mean of the batches' losses as a Python float.

    Tried on a small fixed network with batch norm and SGD (lr 0.5), three batches of four.
    """
    _require_callable(train_one_epoch, "train_one_epoch", "check_train_one_epoch(train_one_epoch)")
    name = _name(train_one_epoch)
    case = "a small network with batch norm, SGD (lr 0.5) and 3 batches of 4 images"
    for seed in (0, 1):
        net = _tiny_net(seed)
        batches = _batches(seed)
        expected_net, losses = _reference_epoch(net, batches)
        expected_loss = sum(losses) / len(losses)
        learner_net = copy.deepcopy(net)
        optimizer = torch.optim.SGD(learner_net.parameters(), lr=0.5)
        result = _call(train_one_epoch, case, learner_net, batches, optimizer, what="the batches")
        got = _parameters(learner_net)
        want = _parameters(expected_net)
        if not _close(got, want):
            help = next(
                (
                    h
                    for mistake, h in _EPOCH_MISTAKES
                    if _close(got, _parameters(_reference_epoch(net, batches, **mistake)[0]))
                ),
                None,
            )
            if help is None and _close(_weights(learner_net), _weights(net)):
                help = _UNCHANGED
            raise _verdict(
                f"On {case}, {name} left the model with the wrong weights and batch-norm "
                "statistics (all of them, flattened, compared in order).",
                help or _EPOCH_DEFAULT,
                _compare(got, want),
            )
        if isinstance(result, Tensor):
            attached = "attached to the graph" if result.requires_grad else "not a float"
            raise _verdict(
                f"On {case}, {name} returned a tensor ({attached}); return the mean loss as a "
                "Python float.",
                _Help(
                    "collect loss.item() for each batch, then average",
                    "a loss tensor kept in a list keeps its batch's whole graph alive; "
                    "loss.item() is a plain float, detached, so each graph is freed",
                ),
            )
        if not isinstance(result, (int, float)):
            raise _verdict(
                f"On {case}, {name} returned {type(result).__name__}; return the mean loss as a "
                "float.",
                _Help(
                    "collect loss.item() for each batch, then return sum / count",
                    "return sum(losses) / len(losses) at the end, after the loop",
                ),
            )
        if abs(float(result) - expected_loss) > 1e-6 * max(1.0, abs(expected_loss)):
            reported = losses[-1], sum(losses)  # the last batch's loss, and the sum
            more = "append loss.item() to a list in every batch; return sum(losses) / len(losses)"
            help = (
                _Help("this is the loss of the last batch only; return the mean over all batches", more)
                if abs(float(result) - reported[0]) < 1e-9
                else _Help("this is the sum of the batch losses; divide by the number of batches", more)
                if abs(float(result) - reported[1]) < 1e-9
                else _Help("return the mean of loss.item() over the batches", more)
            )
            raise _verdict(
                f"On {case}, {name} trained the model right but returned {float(result):.6g}, "
                f"while the mean loss is {expected_loss:.6g}.",
                help,
            )
    print(
        f"Correct! {name} zeroes, computes the loss of the raw logits, steps once per batch in "
        "training mode, and reports the mean loss."
    )


# ---------------------------------------------------------------------------------------------
# Exercise 2: relevance mass accuracy
# ---------------------------------------------------------------------------------------------


def _mass_cases() -> list[tuple[str, Tensor, Tensor]]:
    """(description, relevance (N, H, W), mask (N, H, W) bool)."""
    generator = torch.Generator().manual_seed(5)
    small = torch.tensor([[[3.0, -1.0, 0.0], [1.0, -2.0, 2.0]]], dtype=torch.float64)
    small_mask = torch.tensor([[[True, True, False], [False, False, False]]])
    batch = torch.randn(3, 6, 5, generator=generator, dtype=torch.float64)
    batch[1] *= 8.0  # images of different scales: a pooled ratio differs from per-image ones
    batch_mask = torch.zeros(3, 6, 5, dtype=torch.bool)
    batch_mask[0, :2, :2] = True
    batch_mask[1, 3:, 1:4] = True
    batch_mask[2, 1:5, 4] = True
    negative = -torch.rand(2, 4, 4, generator=generator, dtype=torch.float64)
    negative[1, 0, 0] = 2.0  # the second image has one positive value, outside its mask
    negative_mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    negative_mask[:, 1:3, 1:3] = True
    return [
        ("one 2x3 map with a 2-pixel mask", small, small_mask),
        ("a batch of 3 maps of different scales", batch, batch_mask),
        (
            "a batch of 2 maps, the first without any positive relevance",
            negative,
            negative_mask,
        ),
    ]


def _mass(relevance: Tensor, mask: Tensor, variant: str = "right") -> Tensor:
    r = relevance.double()
    m = mask.double()
    if variant == "abs":
        r = r.abs()
    elif variant != "signed":
        r = r.clamp(min=0)
    if variant == "outside":
        m = 1 - m
    if variant == "pooled":
        share = (r * m).sum() / r.sum()
        return share.expand(r.shape[0]).clone()
    within = (r * m).flatten(1).sum(1)
    total = r.flatten(1).sum(1)
    if variant == "density":
        return (within / m.flatten(1).sum(1)) / (total / m[0].numel())
    if variant == "unguarded":
        return within / total
    return torch.where(total > 0, within / torch.where(total > 0, total, 1.0), 0.0)


@_grader
def check_relevance_mass(relevance_mass: Callable[[Tensor, Tensor], Tensor]) -> None:
    """Grade ``relevance_mass(relevance, mask) -> (N,)``: per image, the positive relevance
    inside the mask divided by all the positive relevance, and 0 for an image without any."""
    _require_callable(relevance_mass, "relevance_mass", "check_relevance_mass(relevance_mass)")
    name = _name(relevance_mass)
    more = (
        "r = relevance.clamp(min=0); inside = (r * mask).flatten(1).sum(dim=1); "
        "total = r.flatten(1).sum(dim=1); then inside / total where total > 0, else 0"
    )
    hints = [
        (
            "signed",
            _Help(
                "negative relevance was counted: keep only the positive part, "
                "relevance.clamp(min=0), before summing",
                "with negative values the 'share' can exceed 1 or fall below 0; Arras et al. "
                "count only evidence for the class",
            ),
        ),
        (
            "abs",
            _Help(
                "abs() turns evidence against the class into evidence for it: keep only the "
                "positive part, relevance.clamp(min=0), not the absolute value",
                more,
            ),
        ),
        (
            "pooled",
            _Help(
                "this is one ratio for the whole batch: sum over each image's pixels only "
                "(.flatten(1).sum(dim=1)), so each image gets its own score",
                "a plain .sum() adds all the images together; an image with large values then "
                "decides everyone's score",
            ),
        ),
        (
            "outside",
            _Help(
                "this is the share outside the mask: multiply by the mask (True inside), not by "
                "its complement",
                more,
            ),
        ),
        (
            "density",
            _Help(
                "the mass is not divided by the mask's area: it is (relevance inside) / (all the "
                "relevance), a share between 0 and 1",
                more,
            ),
        ),
    ]
    for case, relevance, mask in _mass_cases():
        expected = _mass(relevance, mask)
        result = _require_tensor(
            _call(relevance_mass, case, relevance, mask, what="the relevance or the mask"),
            "the scores",
            relevance_mass,
            case,
        )
        if tuple(result.shape) != tuple(expected.shape):
            raise AssertionError(
                f"On {case}, {name} returned shape {tuple(result.shape)}, expected "
                f"{tuple(expected.shape)}: one score per image.\nHint: sum over the pixels of "
                "each image, e.g. (r * mask).flatten(1).sum(dim=1)."
            )
        if _close(result, expected):
            continue
        if not torch.isfinite(result.detach()).all() and torch.isfinite(expected).all():
            help = _Help(
                "an image without positive relevance divides 0 by 0: give it the score 0, "
                "e.g. torch.where(total > 0, inside / total, 0.0)",
                "torch.where evaluates both branches; divide by total.clamp(min=1e-30) inside it "
                "so that no nan is made at all",
            )
        else:
            help = next(
                (h for variant, h in hints if _close(result, _mass(relevance, mask, variant))),
                _Help(
                    "sum max(relevance, 0) inside the mask and divide by its sum over the "
                    "whole image",
                    more,
                ),
            )
        raise _verdict(f"On {case}, {name} gave wrong scores.", help, _compare(result, expected))
    print(
        f"Correct! {name} gives each image the share of its positive relevance inside the "
        "mask (Arras et al. 2022), and 0 when it has none."
    )
