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
    _grader,
    _name,
    _require_callable,
    _require_tensor,
    _show,
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


def _diagnose_softmax(
    fn: Callable[..., Any], case: _Case, result: Tensor, expected: Tensor
) -> None:
    """Raise AssertionError with the most likely reason if ``result`` is wrong."""
    name = _name(fn)
    if tuple(result.shape) != tuple(expected.shape):
        raise AssertionError(
            f"{name} returned shape {tuple(result.shape)} on {case.description}, but the "
            f"probabilities should have the same shape as the logits, {tuple(expected.shape)}.\n"
            "Hint: reduce over the last dimension with keepdim=True, e.g. "
            "`logits.max(dim=-1, keepdim=True).values` and `.sum(dim=-1, keepdim=True)`, so "
            "the result broadcasts back over each row."
        )
    if not torch.isfinite(result).all():
        if "+500" in case.description:
            hint = (
                "Hint: subtract each row's own maximum (`dim=-1, keepdim=True`), not the "
                "maximum of the whole batch: the second row lies 1000 below the first, and "
                "exp(-1000) is 0 in float32, so its sum is 0 and 0/0 is nan."
            )
        else:
            hint = (
                "Hint: exp(1000) is too large for float32 and becomes inf, and inf/inf is "
                "nan (exp(-1000) becomes 0, and 0/0 is nan). Softmax does not change when "
                "you subtract the same number from every logit, so subtract the maximum "
                "first: softmax(z) = exp(z - max z) / sum(exp(z - max z))."
            )
        raise AssertionError(
            f"{name} returned nan or inf on {case.description}.\n"
            f"{_compare(result, expected)}\n{hint}"
        )
    if _close(result, expected):
        return
    sums = result.detach().double().sum(dim=-1)
    if result.dim() == 2 and torch.allclose(
        result.detach().double().sum(dim=0),
        torch.ones(result.shape[1], dtype=torch.float64),
        atol=1e-4,
    ):
        raise AssertionError(
            f"{name} normalised along the wrong dimension on {case.description}: its columns "
            "sum to 1, but each row (one image's scores over all classes) should.\n"
            "Hint: the classes are the last dimension; use dim=-1 (or dim=1), not dim=0."
        )
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        raise AssertionError(
            f"{name}'s probabilities do not sum to 1 on {case.description}: the sums are "
            f"{_show(sums.float())}.\n{_compare(result, expected)}\n"
            "Hint: divide the exponentials by their sum over the classes (dim=-1)."
        )
    raise AssertionError(
        f"{name} gave wrong probabilities on {case.description}.\n"
        f"{_compare(result, expected)}\n"
        "Hint: softmax(z)_i = exp(z_i - max z) / sum_j exp(z_j - max z), along the last "
        "dimension."
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
        raise AssertionError(
            f"{name} should return two things, (probabilities, indices), but on {case} it "
            f"returned a {got}.\nHint: end with `return probabilities, indices`."
        )
    values = _require_tensor(result[0], "the probabilities (first)", fn, case)
    indices = _require_tensor(result[1], "the indices (second)", fn, case)
    if not values.is_floating_point() and indices.is_floating_point():
        raise AssertionError(
            f"{name} returned (indices, probabilities) on {case}; the order should be "
            "(probabilities, indices), as torch.topk returns (values, indices)."
        )
    if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
        raise AssertionError(
            f"{name} returned indices of dtype {indices.dtype} on {case}; class indices must "
            "be integers so that they can index the class names.\n"
            "Hint: torch.topk and torch.argsort return integer (torch.long) indices; or use "
            "`.long()`."
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
            hint = (
                "Hint: it looks like all classes came back; keep only the first k, e.g. "
                "`[..., :k]`, or use torch.topk(..., k)."
                if got.shape[-1:] == case.logits.shape[-1:] and k < case.logits.shape[-1]
                else "Hint: select along the last dimension (dim=-1) and keep k entries per row."
            )
            raise AssertionError(
                f"{name} returned {what} of shape {tuple(got.shape)} on {case.description}; "
                f"expected shape {shape}.\n{hint}"
            )
    indices = got_indices.detach().long().cpu()
    values = got_values.detach().double().cpu()
    if not torch.isfinite(values).all():
        raise AssertionError(
            f"{name} returned nan or inf probabilities on {case.description}: "
            f"{_show(got_values)}.\nHint: use a numerically stable softmax (subtract the "
            "maximum logit before exp), such as the one you wrote above."
        )
    if not torch.equal(indices, expected_indices):
        same_set = torch.equal(indices.sort(dim=-1).values, expected_indices.sort(dim=-1).values)
        if same_set and torch.equal(indices, expected_indices.flip(-1)):
            reason = (
                "the right classes, but smallest first.\n"
                "Hint: sort in descending order, largest probability first "
                "(torch.topk does; torch.argsort needs descending=True)."
            )
        elif same_set:
            reason = (
                "the right classes, but not sorted by probability.\n"
                "Hint: sort them, largest first: torch.topk returns them sorted, or use "
                "torch.argsort(..., descending=True)."
            )
        else:
            reason = (
                "different classes.\n"
                "Hint: pick the k largest along the last dimension (dim=-1), e.g. "
                "torch.topk(probabilities, k) or torch.argsort(probabilities, "
                "descending=True)[..., :k]."
            )
        raise AssertionError(
            f"{name} returned wrong indices on {case.description}: "
            f"expected {_show(expected_indices)},\ngot {_show(indices)}: {reason}"
        )
    if _close(values, expected_values):
        return
    logits_at = case.logits.double().gather(-1, expected_indices)
    if torch.allclose(values, logits_at, rtol=1e-4, atol=1e-6):
        reason = (
            "these are the logits, not probabilities.\n"
            "Hint: apply softmax to the logits first, then pick the top k."
        )
    else:
        reason = (
            "the classes are right but the probabilities are not.\n"
            "Hint: the probabilities are softmax(logits) over all classes (dim=-1), taken at "
            "the top-k classes."
        )
    raise AssertionError(
        f"{name} returned wrong probabilities on {case.description}: "
        f"expected {_show(expected_values.float())},\ngot {_show(got_values)}: {reason}"
    )
