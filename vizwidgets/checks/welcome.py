"""Graders for notebook 00 (welcome): a numerically stable softmax and top-k."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from vizwidgets.checks._harness import (
    _call,
    _Case,
    _close,
    _compare,
    _diagnose,
    _grader,
    _Help,
    _name,
    _require_callable,
    _require_tensor,
    _show,
    _verdict,
)

__all__ = ["check_softmax", "check_top_k"]


def _softmax_cases() -> list[_Case]:
    """The test inputs of the softmax grader, from small logits to rows around +-500."""
    generator = torch.Generator().manual_seed(0)
    batch = torch.randn(4, 10, generator=generator) * 3
    offsets = torch.tensor([[500.0], [-500.0]])
    wide = torch.randn(2, 1000, generator=generator) * 4 + offsets
    return [
        _Case("the logits [1, 2, 3]", torch.tensor([1.0, 2.0, 3.0])),
        _Case("the logits [-2, 0, 0, 3.5]", torch.tensor([-2.0, 0.0, 0.0, 3.5])),
        _Case(
            "the large logits [1000, 1001, 1002]",
            torch.tensor([1000.0, 1001.0, 1002.0]),
        ),
        _Case(
            "the very negative logits [-1000, -1001, -1002]",
            torch.tensor([-1000.0, -1001.0, -1002.0]),
        ),
        _Case("a batch of logits of shape (4, 10): 4 images, 10 classes", batch),
        _Case(
            "a batch of shape (2, 1000) whose rows lie around +500 and -500",
            wide,
        ),
    ]


@_grader
def check_softmax(softmax: Callable[[Tensor], Tensor]) -> None:
    """Grade a learner's ``softmax(logits) -> probabilities``.

    The function must take a float tensor of logits, either one image ``(C,)`` or a batch
    ``(N, C)``, and return a tensor of the same shape where each row (the last dimension) is
    ``exp(z_i) / sum_j exp(z_j)``. It must be numerically stable, that is, compute
    ``exp(z - max(z))`` with each row's own maximum, so that logits of 1000 or -1000 give
    probabilities rather than ``nan``.

    Parameters
    ----------
    softmax:
        The learner's function (not its result).

    Raises
    ------
    TypeError
        ``softmax`` is not callable.
    AssertionError
        The function gives a wrong answer on one of the test inputs; the message says which,
        what was expected, what it gave, and a hint.
    NotImplementedError
        The exercise placeholder has not been replaced yet.
    """
    _require_callable(softmax, "softmax", "check_softmax(softmax)")
    cases = _softmax_cases()
    for case in cases:
        expected = torch.softmax(case.logits.double(), dim=-1)
        result = _call(softmax, case.description, case.logits)
        result = _require_tensor(result, "the probabilities", softmax, case.description)
        _diagnose_softmax(softmax, case, result, expected)
    print(
        f"Correct! {_name(softmax)} gives the right probabilities on {len(cases)} test inputs, "
        "including a batch and logits of +-1000 (numerically stable)."
    )


def _softmax_look_alikes(logits: Tensor) -> list[tuple[Tensor, _Help]]:
    """The results of softmax's usual mistakes that still give finite numbers, with help."""
    z = logits.double()
    shifted = z - z.max(dim=-1, keepdim=True).values
    return [
        (
            torch.log_softmax(z, dim=-1),
            _Help(
                "these are log-probabilities (log-softmax): exponentiate before you divide",
                "softmax(z) = exp(z - max z) / sum(exp(z - max z)); no log anywhere",
            ),
        ),
        (
            torch.sigmoid(z),
            _Help(
                "this is the sigmoid of each logit, which treats each class on its own",
                "softmax couples the classes: exponentiate every logit, then divide by the "
                "row's sum, so that the probabilities sum to 1",
            ),
        ),
        (
            shifted.exp(),
            _Help(
                "divide the exponentials by their sum over the classes (dim=-1)",
                "`e = (z - z.max(dim=-1, keepdim=True).values).exp()`, then "
                "`e / e.sum(dim=-1, keepdim=True)`",
            ),
        ),
        (
            shifted.exp() / shifted.exp().amax(dim=-1, keepdim=True),
            _Help(
                "divide by the sum of the exponentials, not by their maximum",
                "`e / e.sum(dim=-1, keepdim=True)`, so that each row sums to 1",
            ),
        ),
        (
            z / z.sum(dim=-1, keepdim=True),
            _Help(
                "exponentiate the logits before you normalise them",
                "logits can be negative; exp makes them positive, then divide by the sum",
            ),
        ),
    ]


def _diagnose_softmax(
    fn: Callable[..., Any], case: _Case, result: Tensor, expected: Tensor
) -> None:
    """Raise AssertionError with the most likely reason if ``result`` is wrong."""
    name = _name(fn)
    if tuple(result.shape) != tuple(expected.shape):
        raise _verdict(
            f"{name} returned shape {tuple(result.shape)} on {case.description}, but the "
            f"probabilities should have the same shape as the logits, {tuple(expected.shape)}.",
            _Help(
                "reduce over the last dimension with keepdim=True, e.g. "
                "`logits.max(dim=-1, keepdim=True).values` and `.sum(dim=-1, keepdim=True)`, so "
                "the result broadcasts back over each row",
                "softmax keeps the shape: every logit becomes a probability; only the maximum "
                "and the sum are per row, and keepdim=True keeps them as columns",
            ),
        )
    if not torch.isfinite(result).all():
        if "+500" in case.description:
            help = _Help(
                "subtract each row's own maximum (`dim=-1, keepdim=True`), not the "
                "maximum of the whole batch: the second row lies 1000 below the first, and "
                "exp(-1000) is 0 in float32, so its sum is 0 and 0/0 is nan",
                "`logits.max(dim=-1, keepdim=True).values` is one maximum per row, a column "
                "that broadcasts back over the row",
            )
        else:
            help = _Help(
                "exp(1000) is too large for float32 and becomes inf, and inf/inf is "
                "nan (exp(-1000) becomes 0, and 0/0 is nan). Softmax does not change when "
                "you subtract the same number from every logit, so subtract the maximum "
                "first: softmax(z) = exp(z - max z) / sum(exp(z - max z))",
                "after subtracting the maximum every logit is <= 0, so exp gives at most 1, "
                "and the largest gives exactly 1, so the sum is at least 1",
            )
        raise _verdict(
            f"{name} returned nan or inf on {case.description}.", help, _compare(result, expected)
        )
    if _close(result, expected):
        return
    sums = result.detach().double().sum(dim=-1)
    if result.dim() == 2 and torch.allclose(
        result.detach().double().sum(dim=0),
        torch.ones(result.shape[1], dtype=torch.float64),
        atol=1e-4,
    ):
        raise _verdict(
            f"{name} normalised along the wrong dimension on {case.description}: its columns "
            "sum to 1, but each row (one image's scores over all classes) should.",
            _Help(
                "the classes are the last dimension; use dim=-1 (or dim=1), not dim=0",
                "a batch of logits is (N, C): dim 0 runs over the images, dim -1 over the "
                "classes; both the maximum and the sum go over the classes",
            ),
        )
    help = _diagnose(
        result,
        _softmax_look_alikes(case.logits),
        _Help(
            "softmax(z)_i = exp(z_i - max z) / sum_j exp(z_j - max z), along the last dimension",
            "three steps on each row: subtract its maximum, exponentiate, divide by the sum",
        ),
    )
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        raise _verdict(
            f"{name}'s probabilities do not sum to 1 on {case.description}: the sums are "
            f"{_show(sums.float())}.",
            help,
            _compare(result, expected),
        )
    raise _verdict(
        f"{name} gave wrong probabilities on {case.description}.", help, _compare(result, expected)
    )


def _distinct_logits(shape: tuple[int, ...], scale: float, seed: int) -> Tensor:
    """Logits with no ties (so the top-k order is unique), shuffled along the last dim."""
    generator = torch.Generator().manual_seed(seed)
    classes = shape[-1]
    rows = int(torch.tensor(shape[:-1]).prod()) if len(shape) > 1 else 1
    steps = torch.linspace(-1.0, 1.0, classes) * scale
    order = torch.stack([torch.randperm(classes, generator=generator) for _ in range(rows)])
    return steps[order].reshape(shape)


def _top_k_cases() -> list[tuple[_Case, int]]:
    """The test inputs of the top-k grader, each with its ``k``."""
    return [
        (
            _Case(
                "the logits [0.5, 2.0, -1.0, 3.0, 1.0] with k=3",
                torch.tensor([0.5, 2.0, -1.0, 3.0, 1.0]),
            ),
            3,
        ),
        (
            _Case(
                "the logits [0.5, 2.0, -1.0, 3.0, 1.0] with k=1",
                torch.tensor([0.5, 2.0, -1.0, 3.0, 1.0]),
            ),
            1,
        ),
        (
            _Case(
                "1000 logits (one image, like the model's output) with k=5",
                _distinct_logits((1000,), 8.0, seed=1),
            ),
            5,
        ),
        (
            _Case(
                "the large logits [1000, 1003, 1001, 1002] with k=4 (all classes)",
                torch.tensor([1000.0, 1003.0, 1001.0, 1002.0]),
            ),
            4,
        ),
        (
            _Case(
                "a batch of logits of shape (3, 20) with k=5",
                _distinct_logits((3, 20), 5.0, seed=2),
            ),
            5,
        ),
    ]


@_grader
def check_top_k(top_k: Callable[[Tensor, int], tuple[Tensor, Tensor]]) -> None:
    """Grade a learner's ``top_k(logits, k) -> (probabilities, indices)``.

    The function must take logits of one image ``(C,)`` (or a batch ``(N, C)``) and an int
    ``k``, and return two tensors of shape ``(k,)`` (or ``(N, k)``): the ``k`` largest softmax
    probabilities, largest first, and the class indices (an integer dtype) they belong to.

    Parameters
    ----------
    top_k:
        The learner's function (not its result).

    Raises
    ------
    TypeError
        ``top_k`` is not callable.
    AssertionError
        The function gives a wrong answer on one of the test inputs; the message says which,
        what was expected, what it gave, and a hint.
    NotImplementedError
        The exercise placeholder has not been replaced yet.
    """
    _require_callable(top_k, "top_k", "check_top_k(top_k)")
    cases = _top_k_cases()
    for case, k in cases:
        probabilities = torch.softmax(case.logits.double(), dim=-1)
        expected_values, expected_indices = probabilities.topk(k, dim=-1)
        result = _call(top_k, case.description, case.logits, k)
        got_values, got_indices = _unpack_top_k(top_k, case.description, result)
        _diagnose_top_k(top_k, case, k, expected_values, expected_indices, got_values, got_indices)
    print(
        f"Correct! {_name(top_k)} returns the k most probable classes, largest first, on "
        f"{len(cases)} test inputs (k from 1 to all classes, one image and a batch)."
    )


def _unpack_top_k(fn: Callable[..., Any], case: str, result: object) -> tuple[Tensor, Tensor]:
    """The learner's ``(probabilities, indices)``, checked for count, type, order and dtype."""
    name = _name(fn)
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        got = (
            f"{type(result).__name__} of length {len(result)}"
            if isinstance(result, (tuple, list))
            else type(result).__name__
        )
        raise _verdict(
            f"{name} should return two things, (probabilities, indices), but on {case} it "
            f"returned a {got}.",
            _Help(
                "end with `return probabilities, indices`",
                "torch.topk returns both at once: `values, indices = probabilities.topk(k, "
                "dim=-1)`",
            ),
        )
    values = _require_tensor(result[0], "the probabilities (first)", fn, case)
    indices = _require_tensor(result[1], "the indices (second)", fn, case)
    if not values.is_floating_point() and indices.is_floating_point():
        raise _verdict(
            f"{name} returned (indices, probabilities) on {case}; the order should be "
            "(probabilities, indices), as torch.topk returns (values, indices).",
            _Help(
                "swap the two in your return statement",
                "`return probabilities, indices`: the probabilities first",
            ),
        )
    if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
        raise _verdict(
            f"{name} returned indices of dtype {indices.dtype} on {case}; class indices must "
            "be integers so that they can index the class names.",
            _Help(
                "torch.topk and torch.argsort return integer (torch.long) indices; or use `.long()`",
                "indices that went through a float operation (a multiplication, torch.tensor "
                "of a float list) lose their integer dtype",
            ),
        )
    return values, indices


def _diagnose_top_k(
    fn: Callable[..., Any],
    case: _Case,
    k: int,
    expected_values: Tensor,
    expected_indices: Tensor,
    got_values: Tensor,
    got_indices: Tensor,
) -> None:
    """Raise AssertionError with the most likely reason if the top-k result is wrong."""
    name = _name(fn)
    shape = tuple(expected_indices.shape)
    for what, got in (("probabilities", got_values), ("indices", got_indices)):
        if tuple(got.shape) != shape:
            if got.shape[-1:] == case.logits.shape[-1:] and k < case.logits.shape[-1]:
                help = _Help(
                    "it looks like all classes came back; keep only the first k, e.g. "
                    "`[..., :k]`, or use torch.topk(..., k)",
                    "after sorting, the k most probable classes are the first k along the "
                    "last dimension",
                )
            else:
                help = _Help(
                    "select along the last dimension (dim=-1) and keep k entries per row",
                    "`probabilities.topk(k, dim=-1)` works for one image (C,) and a batch (N, C)",
                )
            raise _verdict(
                f"{name} returned {what} of shape {tuple(got.shape)} on {case.description}; "
                f"the right shape is {shape}.",
                help,
            )
    indices = got_indices.detach().long().cpu()
    values = got_values.detach().double().cpu()
    if not torch.isfinite(values).all():
        raise _verdict(
            f"{name} returned nan or inf probabilities on {case.description}: {_show(got_values)}.",
            _Help(
                "use a numerically stable softmax (subtract the maximum logit before exp), "
                "such as the one you wrote above",
                "call your softmax from the exercise above instead of writing exp(z) / sum "
                "again",
            ),
        )
    if not torch.equal(indices, expected_indices):
        same_set = torch.equal(indices.sort(dim=-1).values, expected_indices.sort(dim=-1).values)
        if same_set and torch.equal(indices, expected_indices.flip(-1)):
            reason = "the right classes, but smallest first"
            help = _Help(
                "sort in descending order, largest probability first (torch.topk does; "
                "torch.argsort needs descending=True)",
                "torch.sort and torch.argsort sort ascending unless told otherwise",
            )
        elif same_set:
            reason = "the right classes, but not sorted by probability"
            help = _Help(
                "sort them, largest first: torch.topk returns them sorted, or use "
                "torch.argsort(..., descending=True)",
                "the indices must follow the probabilities, not the class numbers",
            )
        else:
            reason = "different classes"
            help = _Help(
                "pick the k largest along the last dimension (dim=-1), e.g. "
                "torch.topk(probabilities, k) or torch.argsort(probabilities, "
                "descending=True)[..., :k]",
                "compute the softmax over the classes (dim=-1) first, then take the k largest "
                "of each row",
            )
        raise _verdict(
            f"{name} returned wrong indices on {case.description}: {reason}.",
            help,
            _compare(indices, expected_indices),
        )
    if _close(values, expected_values):
        return
    logits_at = case.logits.double().gather(-1, expected_indices)
    if torch.allclose(values, logits_at, rtol=1e-4, atol=1e-6):
        reason = "these are the logits, not probabilities"
        help = _Help(
            "apply softmax to the logits first, then pick the top k",
            "`softmax(logits).topk(k, dim=-1)`, with the softmax over all classes",
        )
    else:
        reason = "the classes are right but the probabilities are not"
        help = _Help(
            "the probabilities are softmax(logits) over all classes (dim=-1), taken at the "
            "top-k classes",
            "a softmax over the k chosen logits only makes them sum to 1; compute it over all "
            "classes first, then select",
        )
    raise _verdict(
        f"{name} returned wrong probabilities on {case.description}: {reason}.",
        help,
        _compare(values, expected_values),
    )
