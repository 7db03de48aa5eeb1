"""Exercise graders for the course notebooks.

Each ``check_...`` function takes what the learner wrote (usually a function), computes the
right answer itself on a few test inputs, and compares:

- right: it prints one line that starts with ``"Correct!"`` and returns ``None``;
- wrong: it raises ``AssertionError`` with a message for the learner that says which test
  input failed, what was expected, what their code gave, and a hint.

An exercise that has not been started still raises the ``NotImplementedError`` of its
placeholder, unchanged. Any other exception from the learner's code becomes an
``AssertionError`` that names the test input it happened on (the original is chained).

Graders never change their argument, and they check that the learner's function did not
change its inputs either.

In a notebook, a grader's failure shows the learner only what helps: the message and hint,
and, where the learner's own code raised, the frames of that code. The grader's own frames
(which hold the reference answers) are never printed: every exception leaving a ``check_...``
function carries an IPython ``_render_traceback_`` that leaves them out.

>>> import torch
>>> from vizwidgets.checks import check_softmax
>>> check_softmax(lambda logits: torch.softmax(logits, dim=-1))  # doctest: +ELLIPSIS
Correct! ...
"""

from __future__ import annotations

import functools
import os
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any, NamedTuple, TypeVar

import torch
from torch import Tensor

__all__ = ["check_softmax", "check_top_k", "check_input_gradient", "check_saliency_map", "check_smoothgrad", "check_rectifier_rules", "check_guided_relu_function", "check_cam", "check_grad_cam", "check_riemann_ig", "check_completeness_gap", "check_fgsm_step", "check_total_variation", "check_gram_matrix", "check_style_loss", "check_lrp_epsilon", "check_curve_area", "check_pointing_hit"]


# ---------------------------------------------------------------------------------------------
# Helpers shared by the graders
# ---------------------------------------------------------------------------------------------

_GRADER_FILE = os.path.normcase(os.path.abspath(__file__))
_Grader = TypeVar("_Grader", bound=Callable[..., Any])


def _is_shell_frame(filename: str) -> bool:
    """A frame of IPython's own machinery (``run_code``), which says nothing to a learner."""
    parts = os.path.normcase(os.path.abspath(filename)).split(os.sep)
    return "IPython" in parts or "ipykernel" in parts


def _learner_frames(tb: TracebackType | None) -> list[str]:
    """The formatted frames of ``tb`` that are not the grader's own (those hold the answers)."""
    frames = [
        frame for frame in traceback.extract_tb(tb)
        if os.path.normcase(os.path.abspath(frame.filename)) != _GRADER_FILE
        and not _is_shell_frame(frame.filename)
    ]
    return [line.rstrip("\n") for line in traceback.format_list(frames)]


def _feedback_lines(error: BaseException) -> list[str]:
    """What a notebook shows for ``error`` raised by a grader: no grader frame, no answer.

    - a grader's verdict (``AssertionError`` without a cause): the message alone;
    - the learner's code raised (a chained cause): the learner's frames, then the message;
    - an unstarted exercise (``NotImplementedError``) or any other error: the learner's
      frames, if any, then the error.
    """
    lines: list[str] = []
    cause = error.__cause__
    if cause is not None:
        frames = _learner_frames(cause.__traceback__)
        if frames:
            lines += ["Your code raised this error:", *frames,
                      f"{type(cause).__name__}: {cause}", ""]
    elif not isinstance(error, AssertionError):
        lines += _learner_frames(error.__traceback__)
    lines.append(f"{type(error).__name__}: {error}")
    return lines


def _attach_feedback(error: BaseException) -> None:
    """Give ``error`` the rendering IPython uses instead of a traceback (``_render_traceback_``)."""
    if getattr(error, "_render_traceback_", None) is not None:
        return
    try:
        error._render_traceback_ = functools.partial(_feedback_lines, error)  # type: ignore[attr-defined]
    except AttributeError:  # an exception type without an instance __dict__: leave it as it is
        pass


def _grader(check: _Grader) -> _Grader:
    """Mark ``check`` as a grader: whatever it raises is shown to the learner without its frames."""

    @functools.wraps(check)
    def graded(*args: Any, **kwargs: Any) -> Any:
        try:
            return check(*args, **kwargs)
        except Exception as error:
            _attach_feedback(error)
            raise

    return graded  # type: ignore[return-value]



class _Case(NamedTuple):
    """One test input: what a learner reads about it, and the logits."""

    description: str
    logits: Tensor


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def _require_callable(fn: object, argument: str, example: str) -> None:
    if not callable(fn):
        raise TypeError(
            f"{argument} must be the function you wrote, not its result: pass it without "
            f"calling it, e.g. {example}; got {type(fn).__name__}"
        )


def _show(tensor: Tensor, limit: int = 6) -> str:
    """A short, readable view of a tensor for a message: a few values and the shape."""
    flat = tensor.detach().reshape(-1)
    if flat.is_floating_point():
        values = [f"{v:.4g}" for v in flat[:limit].tolist()]
    else:
        values = [str(v) for v in flat[:limit].tolist()]
    more = ", ..." if flat.numel() > limit else ""
    return f"[{', '.join(values)}{more}] (shape {tuple(tensor.shape)}, {tensor.dtype})"


def _first_bad_row(result: Tensor, expected: Tensor) -> int | None:
    """For a batch ``(N, C)``: the first row that is not finite or not close, else None."""
    if result.dim() != 2 or result.shape != expected.shape:
        return None
    got = result.detach().double().cpu()
    for row in range(got.shape[0]):
        if not torch.isfinite(got[row]).all() or not _close(got[row], expected[row]):
            return row
    return None


def _compare(result: Tensor, expected: Tensor) -> str:
    """'Expected ..., got ...' lines; for a batch, of the first row that is wrong."""
    row = _first_bad_row(result, expected)
    if row is None:
        return f"Expected {_show(expected.float())},\ngot      {_show(result)}."
    return (
        f"In row {row} of the batch, expected {_show(expected[row].float())},\n"
        f"got {_show(result[row])}."
    )


def _call(fn: Callable[..., Any], case: str, *args: Any, what: str = "the logits") -> Any:
    """Call the learner's ``fn`` on copies of ``args``; turn its bugs into clear messages."""
    copies = [a.clone() if isinstance(a, Tensor) else a for a in args]
    try:
        result = fn(*copies)
    except NotImplementedError:
        raise  # the exercise placeholder: its own message says what to do
    except Exception as error:
        raise AssertionError(
            f"{_name(fn)} raised {type(error).__name__} on {case}: {error}\n"
            "Hint: the lines above this message are your code; the last one raised the error."
        ) from error
    for original, copy in zip(args, copies):
        if isinstance(original, Tensor) and not torch.equal(original, copy):
            raise AssertionError(
                f"{_name(fn)} changed {what} it was given (on {case}), for example with "
                "an in-place operation such as `x -= ...`, `x += ...` or `x.exp_()`.\n"
                "Hint: compute on a new tensor instead: `shifted = x - ...`."
            )
    return result


def _require_tensor(value: object, what: str, fn: Callable[..., Any], case: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise AssertionError(
            f"{_name(fn)} should return {what} as a torch.Tensor, but on {case} it returned "
            f"{type(value).__name__}.\n"
            "Hint: stay with torch operations (torch.exp, .sum, .max, .topk); if you have a "
            "list or array, torch.as_tensor(...) turns it into a tensor."
        )
    return value


def _close(result: Tensor, expected: Tensor) -> bool:
    return bool(torch.allclose(result.detach().double().cpu(), expected.detach().double().cpu(), rtol=1e-4, atol=1e-6))


# ---------------------------------------------------------------------------------------------
# softmax
# ---------------------------------------------------------------------------------------------


def _softmax_cases() -> list[_Case]:
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
        result.detach().double().sum(dim=0), torch.ones(result.shape[1], dtype=torch.float64),
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


# ---------------------------------------------------------------------------------------------
# top-k
# ---------------------------------------------------------------------------------------------


def _distinct_logits(shape: tuple[int, ...], scale: float, seed: int) -> Tensor:
    """Logits with no ties (so the top-k order is unique), shuffled along the last dim."""
    generator = torch.Generator().manual_seed(seed)
    classes = shape[-1]
    rows = int(torch.tensor(shape[:-1]).prod()) if len(shape) > 1 else 1
    steps = torch.linspace(-1.0, 1.0, classes) * scale
    order = torch.stack([torch.randperm(classes, generator=generator) for _ in range(rows)])
    return steps[order].reshape(shape)


def _top_k_cases() -> list[tuple[_Case, int]]:
    return [
        (_Case("the logits [0.5, 2.0, -1.0, 3.0, 1.0] with k=3",
               torch.tensor([0.5, 2.0, -1.0, 3.0, 1.0])), 3),
        (_Case("the logits [0.5, 2.0, -1.0, 3.0, 1.0] with k=1",
               torch.tensor([0.5, 2.0, -1.0, 3.0, 1.0])), 1),
        (_Case("1000 logits (one image, like the model's output) with k=5",
               _distinct_logits((1000,), 8.0, seed=1)), 5),
        (_Case("the large logits [1000, 1003, 1001, 1002] with k=4 (all classes)",
               torch.tensor([1000.0, 1003.0, 1001.0, 1002.0])), 4),
        (_Case("a batch of logits of shape (3, 20) with k=5",
               _distinct_logits((3, 20), 5.0, seed=2)), 5),
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
        _diagnose_top_k(
            top_k, case, k, expected_values, expected_indices, got_values, got_indices
        )
    print(
        f"Correct! {_name(top_k)} returns the k most probable classes, largest first, on "
        f"{len(cases)} test inputs (k from 1 to all classes, one image and a batch)."
    )


def _unpack_top_k(fn: Callable[..., Any], case: str, result: object) -> tuple[Tensor, Tensor]:
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


# ---------------------------------------------------------------------------------------------
# saliency (notebook 01)
# ---------------------------------------------------------------------------------------------


def _small_net(seed: int) -> torch.nn.Module:
    """A tiny fixed convolutional classifier: (N, 3, H, W) -> (N, 5) logits."""
    generator = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 6, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(6, 5),
    )
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return net.double().eval()


def _reference_gradient(model: torch.nn.Module, x: Tensor, target: Tensor, score: str = "logit") -> Tensor:
    inputs = x.detach().clone().requires_grad_(True)
    logits = model(inputs)
    values = logits.softmax(dim=1) if score == "probability" else logits
    if score == "all":
        total = logits.sum()
    else:
        total = values[torch.arange(len(target)), target].sum()
    (grad,) = torch.autograd.grad(total, inputs)
    return grad


def _gradient_cases() -> list[tuple[str, torch.nn.Module, Tensor, Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [
        ("one 6x6 image, target class 2", _small_net(0), torch.randn(1, 3, 6, 6, generator=generator, dtype=torch.float64), torch.tensor([2])),
        ("a batch of 3 images with targets [4, 0, 4]", _small_net(1),
         torch.randn(3, 3, 5, 7, generator=generator, dtype=torch.float64), torch.tensor([4, 0, 4])),
    ]


@_grader
def check_input_gradient(input_gradient: Callable[[torch.nn.Module, Tensor, Tensor], Tensor]) -> None:
    """Grade ``input_gradient(model, x, target) -> d logit[target] / d x``, ``(N, 3, H, W)``.

    Tried on two small fixed networks, one image and a batch with one target per image.
    """
    _require_callable(input_gradient, "input_gradient", "check_input_gradient(input_gradient)")
    cases = _gradient_cases()
    for case, model, x, target in cases:
        expected = _reference_gradient(model, x, target)
        result = _call(input_gradient, case, model, x, target, what="the images x")
        result = _require_tensor(result, "the gradient", input_gradient, case)
        name = _name(input_gradient)
        if tuple(result.shape) != tuple(x.shape):
            raise AssertionError(
                f"On {case}, {name} returned shape {tuple(result.shape)}; the gradient has the "
                f"shape of the images, {tuple(x.shape)}.\nHint: differentiate with respect to "
                "the copy of x you made require gradients, not with respect to the logits."
            )
        if _close(result, expected):
            continue
        hints = [
            (_reference_gradient(model, x, target, "probability"),
             "this is the gradient of the softmax probability; differentiate the logit itself"),
            (_reference_gradient(model, x, target, "all"),
             "this is the gradient of the sum of all logits; pick each image's target logit with "
             "logits[torch.arange(N), target] first"),
        ]
        hint = next((h for ref, h in hints if _close(result, ref)), "compare your steps with the exercise text")
        raise AssertionError(f"On {case}, {name} gave a wrong gradient.\n{_compare(result, expected)}\nHint: {hint}.")
    print(f"Correct! {_name(input_gradient)} gives d logit / d input on {len(cases)} test inputs, batch included.")


@_grader
def check_saliency_map(saliency_map: Callable[[Tensor], Tensor]) -> None:
    """Grade ``saliency_map(grad) -> max over colour channels of |grad|``, ``(N, H, W)``."""
    _require_callable(saliency_map, "saliency_map", "check_saliency_map(saliency_map)")
    generator = torch.Generator().manual_seed(2)
    cases = [
        ("a gradient of shape (1, 3, 2, 2)", torch.tensor([[[[1.0, -4.0], [0.5, 0.0]], [[-2.0, 1.0], [0.25, -3.0]],
                                                              [[0.0, 2.0], [-1.0, 1.0]]]])),
        ("a batch of gradients of shape (2, 3, 4, 5)", torch.randn(2, 3, 4, 5, generator=generator)),
    ]
    name = _name(saliency_map)
    for case, grad in cases:
        expected = grad.double().abs().amax(dim=1)
        result = _require_tensor(_call(saliency_map, case, grad, what="the gradient"), "the map", saliency_map, case)
        if tuple(result.shape) != tuple(expected.shape):
            raise AssertionError(
                f"On {case}, {name} returned shape {tuple(result.shape)}, expected "
                f"{tuple(expected.shape)}.\nHint: reduce over the colour channels, dim=1."
            )
        if _close(result, expected):
            continue
        hints = [
            (grad.double().amax(dim=1), "take the absolute value before the maximum: a large negative gradient matters too"),
            (grad.double().abs().sum(dim=1), "the saliency map takes the maximum over the channels, not the sum"),
            (grad.double().abs().mean(dim=1), "the saliency map takes the maximum over the channels, not the mean"),
        ]
        hint = next((h for ref, h in hints if _close(result, ref)), "max over dim=1 of grad.abs()")
        raise AssertionError(f"On {case}, {name} gave a wrong map.\n{_compare(result, expected)}\nHint: {hint}.")
    print(f"Correct! {name} gives the largest absolute gradient over the colour channels.")


def _reference_smoothgrad(model: torch.nn.Module, x: Tensor, target: Tensor, samples: int, noise: float,
                          seed: int, *, scale_by_range: bool = True, fresh_noise: bool = True, mean: bool = True) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    sigma = noise * (x.max() - x.min()) if scale_by_range else noise
    total = torch.zeros_like(x)
    eps = torch.randn(x.shape, generator=generator) * sigma
    for s in range(samples):
        if fresh_noise and s > 0:
            eps = torch.randn(x.shape, generator=generator) * sigma
        total += _reference_gradient(model, x + eps, target)
    return total / samples if mean else total


@_grader
def check_smoothgrad(smooth_gradient: Callable[..., Tensor]) -> None:
    """Grade ``smooth_gradient(model, x, target, samples, noise, generator)``: the mean input
    gradient over ``samples`` copies ``x + eps``, ``eps = randn(x.shape, generator) * sigma``,
    ``sigma = noise * (x.max() - x.min())``, drawn in that order."""
    _require_callable(smooth_gradient, "smooth_gradient", "check_smoothgrad(smooth_gradient)")
    name = _name(smooth_gradient)
    draws = torch.Generator().manual_seed(3)
    cases = [
        ("one 6x6 image, 4 samples, noise 0.2", _small_net(0), torch.randn(1, 3, 6, 6, generator=draws, dtype=torch.float64),
         torch.tensor([1]), 4, 0.2),
        ("a batch of 2 images, 3 samples, noise 0.1", _small_net(1), torch.randn(2, 3, 5, 5, generator=draws, dtype=torch.float64),
         torch.tensor([3, 0]), 3, 0.1),
    ]
    for case, model, x, target, samples, noise in cases:
        expected = _reference_smoothgrad(model, x, target, samples, noise, seed=7)
        generator = torch.Generator().manual_seed(7)
        result = _call(smooth_gradient, case, model, x, target, samples, noise, generator, what="the images x")
        result = _require_tensor(result, "the averaged gradient", smooth_gradient, case)
        if tuple(result.shape) != tuple(x.shape):
            raise AssertionError(f"On {case}, {name} returned shape {tuple(result.shape)}, expected {tuple(x.shape)}.")
        if _close(result, expected):
            continue
        hints = [
            (_reference_smoothgrad(model, x, target, samples, noise, 7, mean=False), "divide the sum by the number of samples"),
            (_reference_smoothgrad(model, x, target, samples, noise, 7, scale_by_range=False),
             "sigma is the noise level times the range of x: noise * (x.max() - x.min())"),
            (_reference_smoothgrad(model, x, target, samples, noise, 7, fresh_noise=False),
             "draw new noise for every sample, inside the loop"),
            (_reference_gradient(model, x, target), "this is the plain gradient: add the noise to x before each gradient"),
        ]
        hint = next((h for ref, h in hints if _close(result, ref)),
                    "draw eps with torch.randn(x.shape, generator=generator) * sigma, once per sample, in order")
        raise AssertionError(f"On {case}, {name} gave a wrong average.\n{_compare(result, expected)}\nHint: {hint}.")
    print(f"Correct! {name} averages the gradient over noisy copies, as SmoothGrad does.")


# ---------------------------------------------------------------------------------------------
# guided backpropagation (notebook 02)
# ---------------------------------------------------------------------------------------------

_RULES = {
    "gradient": lambda g, x: g * (x > 0),
    "deconvnet": lambda g, x: g.clamp(min=0),
    "guided": lambda g, x: g.clamp(min=0) * (x > 0),
}


def _rule_cases() -> list[tuple[str, Tensor, Tensor]]:
    generator = torch.Generator().manual_seed(4)
    return [
        ("grad [1, -2, 3, -4] at x [2, 1, -1, -3]", torch.tensor([1.0, -2.0, 3.0, -4.0]), torch.tensor([2.0, 1.0, -1.0, -3.0])),
        ("a (2, 3, 4, 4) tensor", torch.randn(2, 3, 4, 4, generator=generator), torch.randn(2, 3, 4, 4, generator=generator)),
    ]


@_grader
def check_rectifier_rules(rectifier_backward: Callable[[Tensor, Tensor, str], Tensor]) -> None:
    """Grade ``rectifier_backward(grad, x, rule)`` for the rules "gradient" (``g [x > 0]``),
    "deconvnet" (``max(g, 0)``) and "guided" (``max(g, 0) [x > 0]``)."""
    _require_callable(rectifier_backward, "rectifier_backward", "check_rectifier_rules(rectifier_backward)")
    name = _name(rectifier_backward)
    for rule, reference in _RULES.items():
        for case, grad, x in _rule_cases():
            where = f"rule {rule!r} with {case}"
            expected = reference(grad, x).double()
            result = _require_tensor(_call(rectifier_backward, where, grad, x, rule, what="grad or x"), "the signal", rectifier_backward, where)
            if tuple(result.shape) == tuple(expected.shape) and _close(result, expected):
                continue
            others = [other for other, ref in _RULES.items() if other != rule and _close(result, ref(grad, x).double())]
            hint = (f"this is what the {others[0]!r} rule sends back" if others
                    else {"gradient": "multiply grad by the mask (x > 0)",
                          "deconvnet": "only rectify the signal: grad.clamp(min=0), whatever x is",
                          "guided": "rectify the signal and apply the mask: grad.clamp(min=0) * (x > 0)"}[rule])
            raise AssertionError(f"For {where}, {name} is wrong.\n{_compare(result, expected)}\nHint: {hint}.")
    print(f"Correct! {name} implements the gradient, deconvnet and guided rules.")


@_grader
def check_guided_relu_function(function: type) -> None:
    """Grade a ``torch.autograd.Function`` whose forward is ReLU and whose backward is guided
    backpropagation's rule ``max(g, 0) [x > 0]``."""
    if not (isinstance(function, type) and issubclass(function, torch.autograd.Function)):
        raise TypeError(
            "pass the class itself, a subclass of torch.autograd.Function, e.g. "
            f"check_guided_relu_function(GuidedReLU); got {type(function).__name__}"
        )
    name = function.__name__
    for case, grad, x in _rule_cases():
        inputs = x.clone().requires_grad_(True)
        try:
            out = function.apply(inputs)
            (back,) = torch.autograd.grad(out, inputs, grad)
        except NotImplementedError:
            raise
        except Exception as error:
            raise AssertionError(f"{name} raised {type(error).__name__} on {case}: {error}") from error
        if not torch.equal(inputs.detach(), x):
            raise AssertionError(f"{name} changed its input in place on {case}; use x.clamp(min=0), not x.clamp_(...).")
        if not _close(out, x.clamp(min=0).double()):
            raise AssertionError(f"The forward pass of {name} is not ReLU on {case}.\n{_compare(out, x.clamp(min=0).double())}\n"
                                 "Hint: return x.clamp(min=0) and save x with ctx.save_for_backward(x).")
        expected = _RULES["guided"](grad, x).double()
        if not _close(back, expected):
            others = [other for other, ref in _RULES.items() if other != "guided" and _close(back, ref(grad, x).double())]
            hint = f"this is the {others[0]!r} rule" if others else "return grad.clamp(min=0) * (x > 0) with x from ctx.saved_tensors"
            raise AssertionError(f"The backward pass of {name} is wrong on {case}.\n{_compare(back, expected)}\nHint: {hint}.")
    print(f"Correct! {name} is a ReLU going forward and guided backpropagation going back.")


# ---------------------------------------------------------------------------------------------
# the CAM family (notebook 03)
# ---------------------------------------------------------------------------------------------


def _cam_cases() -> list[tuple[str, Tensor, Tensor]]:
    generator = torch.Generator().manual_seed(5)
    small = torch.tensor([[[[1.0, 0.0], [2.0, 1.0]], [[0.0, 3.0], [1.0, 0.0]]]])  # (1, 2, 2, 2)
    return [
        ("2 feature maps of 2x2", small, torch.tensor([[1.0, -1.0], [0.5, 2.0]])),
        ("a batch of 3 images with 6 feature maps of 4x5", torch.rand(3, 6, 4, 5, generator=generator),
         torch.randn(4, 6, generator=generator)),
    ]


@_grader
def check_cam(class_activation_map: Callable[[Tensor, Tensor, int], Tensor]) -> None:
    """Grade ``class_activation_map(activation, weights, c) = sum_k weights[c, k] A_k``,
    ``(N, K, h, w) -> (N, h, w)``, without a ReLU."""
    _require_callable(class_activation_map, "class_activation_map", "check_cam(class_activation_map)")
    name = _name(class_activation_map)
    for case, activation, weights in _cam_cases():
        for c in range(weights.shape[0]):
            where = f"{case}, class {c}"
            expected = (weights[c].double().view(1, -1, 1, 1) * activation.double()).sum(dim=1)
            result = _call(class_activation_map, where, activation, weights, c, what="the activation or weights")
            result = _require_tensor(result, "the map", class_activation_map, where)
            if tuple(result.shape) != tuple(expected.shape):
                raise AssertionError(f"On {where}, {name} returned shape {tuple(result.shape)}, expected "
                                     f"{tuple(expected.shape)}.\nHint: sum over the feature maps, dim=1.")
            if _close(result, expected):
                continue
            hint = ("apply no ReLU here: CAM keeps negative values" if _close(result, expected.clamp(min=0))
                    else "use the weights of class c, weights[c], one per feature map")
            raise AssertionError(f"On {where}, {name} gave a wrong map.\n{_compare(result, expected)}\nHint: {hint}.")
    print(f"Correct! {name} weights the feature maps by the classifier's weights for the class.")


@_grader
def check_grad_cam(grad_cam_map: Callable[[Tensor, Tensor], Tensor]) -> None:
    """Grade ``grad_cam_map(activation, gradient) = ReLU(sum_k mean_ij(G_k) A_k)``, ``(N, h, w)``."""
    _require_callable(grad_cam_map, "grad_cam_map", "check_grad_cam(grad_cam_map)")
    name = _name(grad_cam_map)
    generator = torch.Generator().manual_seed(6)
    cases = [
        ("2 feature maps of 2x2", torch.tensor([[[[1.0, 0.0], [2.0, 1.0]], [[0.0, 3.0], [1.0, 0.0]]]]),
         torch.tensor([[[[1.0, 1.0], [1.0, -1.0]], [[-2.0, 0.0], [0.0, -2.0]]]])),
        ("a batch of 3 images with 6 feature maps of 4x5", torch.rand(3, 6, 4, 5, generator=generator),
         torch.randn(3, 6, 4, 5, generator=generator)),
    ]
    for case, activation, gradient in cases:
        a, g = activation.double(), gradient.double()
        weighted = (g.mean(dim=(2, 3), keepdim=True) * a).sum(dim=1)
        expected = weighted.clamp(min=0)
        result = _call(grad_cam_map, case, activation, gradient, what="the activation or gradient")
        result = _require_tensor(result, "the map", grad_cam_map, case)
        if tuple(result.shape) != tuple(expected.shape):
            raise AssertionError(f"On {case}, {name} returned shape {tuple(result.shape)}, expected "
                                 f"{tuple(expected.shape)}.\nHint: sum over the feature maps, dim=1.")
        if _close(result, expected):
            continue
        hints = [
            (weighted, "apply the ReLU at the end: Grad-CAM keeps only positive evidence"),
            ((g.sum(dim=(2, 3), keepdim=True) * a).sum(dim=1).clamp(min=0), "alpha is the mean of the gradient over positions, not the sum"),
            ((g * a).sum(dim=1).clamp(min=0), "average the gradient over the positions first (dim=(2, 3)), then weight the maps"),
        ]
        hint = next((h for ref, h in hints if _close(result, ref)), "alpha = gradient.mean(dim=(2, 3), keepdim=True); relu((alpha * activation).sum(dim=1))")
        raise AssertionError(f"On {case}, {name} gave a wrong map.\n{_compare(result, expected)}\nHint: {hint}.")
    print(f"Correct! {name} computes ReLU(sum_k alpha_k A_k) with alpha_k the mean gradient.")


# ---------------------------------------------------------------------------------------------
# Integrated Gradients (notebook 04)
# ---------------------------------------------------------------------------------------------


def _smooth_net(seed: int) -> torch.nn.Module:
    """A tiny smooth classifier (Softplus), so that quadrature errors are small and known."""
    generator = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Softplus(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(4, 3),
    )
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    return net.double().eval()


def _reference_riemann_ig(model: torch.nn.Module, x: Tensor, baseline: Tensor, target: Tensor, steps: int,
                          offset: float = 0.5) -> Tensor:
    total = torch.zeros_like(x)
    for k in range(steps):
        total += _reference_gradient(model, baseline + (k + offset) / steps * (x - baseline), target)
    return (x - baseline) * total / steps


def _ig_cases() -> list[tuple[str, torch.nn.Module, Tensor, Tensor, Tensor, int]]:
    generator = torch.Generator().manual_seed(8)
    x1 = torch.randn(1, 3, 5, 5, generator=generator, dtype=torch.float64)
    x2 = torch.randn(2, 3, 4, 6, generator=generator, dtype=torch.float64)
    return [
        ("one 5x5 image, zero baseline, 4 steps", _smooth_net(0), x1, torch.zeros_like(x1), torch.tensor([1]), 4),
        ("a batch of 2 images, a random baseline, 6 steps", _smooth_net(1), x2,
         torch.randn(2, 3, 4, 6, generator=generator, dtype=torch.float64), torch.tensor([2, 0]), 6),
    ]


@_grader
def check_riemann_ig(riemann_ig: Callable[..., Tensor]) -> None:
    """Grade ``riemann_ig(model, x, baseline, target, steps)``: Integrated Gradients with the
    midpoint rule, ``alpha_k = (k + 0.5) / steps``."""
    _require_callable(riemann_ig, "riemann_ig", "check_riemann_ig(riemann_ig)")
    name = _name(riemann_ig)
    for case, model, x, baseline, target, steps in _ig_cases():
        expected = _reference_riemann_ig(model, x, baseline, target, steps)
        result = _call(riemann_ig, case, model, x, baseline, target, steps, what="x or the baseline")
        result = _require_tensor(result, "the attributions", riemann_ig, case)
        if tuple(result.shape) != tuple(x.shape):
            raise AssertionError(f"On {case}, {name} returned shape {tuple(result.shape)}, expected {tuple(x.shape)}.")
        if _close(result, expected):
            continue
        hints = [
            (_reference_riemann_ig(model, x, baseline, target, steps, offset=0.0), "use the midpoints, alpha = (k + 0.5) / steps, not k / steps"),
            (_reference_riemann_ig(model, x, baseline, target, steps, offset=1.0), "use the midpoints, alpha = (k + 0.5) / steps, not (k + 1) / steps"),
            (expected * steps, "average the gradients: divide their sum by steps"),
            (expected / (x - baseline).where((x - baseline) != 0, torch.ones_like(x)), "multiply the averaged gradient by (x - baseline)"),
        ]
        hint = next((h for ref, h in hints if _close(result, ref)), "follow the formula step by step")
        raise AssertionError(f"On {case}, {name} gave wrong attributions.\n{_compare(result, expected)}\nHint: {hint}.")
    print(f"Correct! {name} integrates the gradient along the path with the midpoint rule.")


@_grader
def check_completeness_gap(completeness_gap: Callable[..., Tensor]) -> None:
    """Grade ``completeness_gap(model, x, baseline, target, attributions)``:
    ``sum(attributions) - (F(x) - F(baseline))`` per image, ``(N,)``."""
    _require_callable(completeness_gap, "completeness_gap", "check_completeness_gap(completeness_gap)")
    name = _name(completeness_gap)
    for case, model, x, baseline, target, steps in _ig_cases():
        attributions = _reference_riemann_ig(model, x, baseline, target, steps)
        with torch.no_grad():
            rows = torch.arange(len(target))
            difference = model(x)[rows, target] - model(baseline)[rows, target]
        expected = attributions.sum(dim=(1, 2, 3)) - difference
        result = _call(completeness_gap, case, model, x, baseline, target, attributions, what="its inputs")
        result = _require_tensor(result, "the gaps", completeness_gap, case)
        if tuple(result.shape) != tuple(expected.shape):
            raise AssertionError(f"On {case}, {name} returned shape {tuple(result.shape)}, expected one gap per "
                                 f"image, {tuple(expected.shape)}.\nHint: sum over dims (1, 2, 3) only.")
        if _close(result, expected):
            continue
        hint = ("subtract F(x) - F(baseline), not F(baseline) - F(x)"
                if _close(result, attributions.sum(dim=(1, 2, 3)) + difference) else
                "use each image's target logit, model(x)[torch.arange(N), target]")
        raise AssertionError(f"On {case}, {name} gave wrong gaps.\n{_compare(result, expected)}\nHint: {hint}.")
    print(f"Correct! {name} measures how far the attributions are from completeness.")


# ---------------------------------------------------------------------------------------------
# fooling (notebook 07)
# ---------------------------------------------------------------------------------------------


def _reference_fgsm(model: torch.nn.Module, x: Tensor, target: Tensor, epsilon: float, sign: float = -1.0,
                    clamp: bool = True) -> Tensor:
    xg = x.detach().clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(xg), target, reduction="sum")
    (grad,) = torch.autograd.grad(loss, xg)
    out = x + sign * epsilon * grad.sign()
    return out.clamp(0.0, 1.0) if clamp else out


@_grader
def check_fgsm_step(fgsm_step: Callable[..., Tensor]) -> None:
    """Grade ``fgsm_step(model, x, target, epsilon) = clip(x - epsilon sign(grad CE(target)), 0, 1)``."""
    _require_callable(fgsm_step, "fgsm_step", "check_fgsm_step(fgsm_step)")
    name = _name(fgsm_step)
    generator = torch.Generator().manual_seed(9)
    cases = [
        ("one 6x6 image, epsilon 0.1, target 2", _small_net(0), torch.rand(1, 3, 6, 6, generator=generator, dtype=torch.float64),
         torch.tensor([2]), 0.1),
        ("2 images near 0 and 1, epsilon 0.3, targets [4, 1]", _small_net(1),
         torch.rand(2, 3, 5, 5, generator=generator, dtype=torch.float64).round(), torch.tensor([4, 1]), 0.3),
    ]
    for case, model, x, target, epsilon in cases:
        expected = _reference_fgsm(model, x, target, epsilon)
        result = _call(fgsm_step, case, model, x, target, epsilon, what="the images x")
        result = _require_tensor(result, "the stepped images", fgsm_step, case)
        if tuple(result.shape) != tuple(x.shape):
            raise AssertionError(f"On {case}, {name} returned shape {tuple(result.shape)}, expected {tuple(x.shape)}.")
        if _close(result, expected):
            continue
        hints = [
            (_reference_fgsm(model, x, target, epsilon, sign=1.0), "step *against* the gradient of the target's loss: x - epsilon * sign(grad)"),
            (_reference_fgsm(model, x, target, epsilon, clamp=False), "clamp the result to [0, 1]: it must stay an image"),
        ]
        hint = next((h for ref, h in hints if _close(result, ref)), "use grad.sign(), not the gradient itself, times epsilon")
        raise AssertionError(f"On {case}, {name} gave a wrong step.\n{_compare(result, expected)}\nHint: {hint}.")
    print(f"Correct! {name} takes one targeted FGSM step and stays in [0, 1].")


# ---------------------------------------------------------------------------------------------
# maximisation and style transfer (notebooks 06 and 08)
# ---------------------------------------------------------------------------------------------


def _grade_tensor_function(fn: Callable[..., Tensor], argument: str, cases: list[tuple[str, tuple[Any, ...], Tensor]],
                           hints: Callable[[tuple[Any, ...]], list[tuple[Tensor, str]]], default_hint: str) -> None:
    name = _name(fn)
    for case, args, expected in cases:
        result = _require_tensor(_call(fn, case, *args, what=argument), "the result", fn, case)
        if tuple(result.shape) != tuple(expected.shape):
            raise AssertionError(f"On {case}, {name} returned shape {tuple(result.shape)}, expected {tuple(expected.shape)}.")
        if _close(result, expected):
            continue
        hint = next((h for ref, h in hints(args) if tuple(ref.shape) == tuple(result.shape) and _close(result, ref)), default_hint)
        raise AssertionError(f"On {case}, {name} is wrong.\n{_compare(result, expected)}\nHint: {hint}.")


@_grader
def check_total_variation(total_variation: Callable[[Tensor], Tensor]) -> None:
    """Grade ``total_variation(x)``: mean over the ``(H-1)(W-1)`` positions of the squared
    right and lower differences, summed over channels, ``(N,)``."""
    from vizwidgets._ops import total_variation as reference

    _require_callable(total_variation, "total_variation", "check_total_variation(total_variation)")
    generator = torch.Generator().manual_seed(10)
    by_hand = torch.tensor([[[[0.0, 1.0, 3.0], [1.0, 1.0, 0.0], [2.0, 0.0, 0.0]]]])
    cases = [
        ("the 3x3 image [[0, 1, 3], [1, 1, 0], [2, 0, 0]] (TV 9/4)", (by_hand,), torch.tensor([2.25], dtype=torch.float64)),
        ("a constant image (TV 0)", (torch.full((1, 3, 4, 4), 0.7),), torch.zeros(1, dtype=torch.float64)),
        ("a batch (2, 3, 5, 6)", (torch.rand(2, 3, 5, 6, generator=generator),), reference(torch.rand(2, 3, 5, 6, generator=torch.Generator().manual_seed(10))).double()),
    ]

    def hints(args: tuple[Any, ...]) -> list[tuple[Tensor, str]]:
        (x,) = args
        right = x[:, :, :-1, 1:] - x[:, :, :-1, :-1]
        down = x[:, :, 1:, :-1] - x[:, :, :-1, :-1]
        return [
            ((right**2 + down**2).sum(dim=(1, 2, 3)), "average over the positions, do not sum them"),
            ((right**2 + down**2).mean(dim=(1, 2, 3)), "sum over the channels, then average over positions"),
            ((right.abs() + down.abs()).sum(dim=1).mean(dim=(1, 2)), "square the differences"),
        ]

    _grade_tensor_function(total_variation, "the image", cases, hints, "follow the formula: right and down differences on the (H-1) x (W-1) grid")
    print(f"Correct! {_name(total_variation)} computes the total variation of each image.")


@_grader
def check_gram_matrix(gram_matrix: Callable[[Tensor], Tensor]) -> None:
    """Grade ``gram_matrix(features) = F F^T / (H W)``, ``(N, C, C)``."""
    _require_callable(gram_matrix, "gram_matrix", "check_gram_matrix(gram_matrix)")
    generator = torch.Generator().manual_seed(11)
    small = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)
    batch = torch.randn(3, 4, 5, 6, generator=generator)
    flat = batch.double().reshape(3, 4, 30)
    cases = [
        ("features [[1, 2], [3, 4]] (2 channels, 2 positions)", (small,), torch.tensor([[[5.0, 11.0], [11.0, 25.0]]], dtype=torch.float64) / 2),
        ("a batch (3, 4, 5, 6)", (batch,), flat @ flat.transpose(1, 2) / 30),
    ]

    def hints(args: tuple[Any, ...]) -> list[tuple[Tensor, str]]:
        (f,) = args
        n, c, h, w = f.shape
        flat = f.double().reshape(n, c, h * w)
        return [
            (flat @ flat.transpose(1, 2), "divide by the number of positions, H * W"),
            (flat @ flat.transpose(1, 2) / (c * h * w), "divide by H * W only, not by C * H * W"),
        ]

    _grade_tensor_function(gram_matrix, "the features", cases, hints, "reshape to (N, C, H*W) and multiply by its transpose")
    print(f"Correct! {_name(gram_matrix)} computes F F^T / (H W) for each image.")


@_grader
def check_style_loss(style_loss: Callable[[Tensor, Tensor], Tensor]) -> None:
    """Grade ``style_loss(features, target_gram) = sum((G - A)^2) / (4 C^2)``, ``(N,)``."""
    _require_callable(style_loss, "style_loss", "check_style_loss(style_loss)")
    generator = torch.Generator().manual_seed(12)
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)
    a = torch.tensor([[[2.0, 5.0], [5.0, 12.0]]])
    batch = torch.randn(2, 3, 4, 4, generator=generator)
    flat = batch.double().reshape(2, 3, 16)
    target = torch.randn(2, 3, 3, generator=generator)
    expected_batch = ((flat @ flat.transpose(1, 2) / 16 - target.double()) ** 2).sum(dim=(1, 2)) / 36
    cases = [
        ("features [[1, 2], [3, 4]] and A = [[2, 5], [5, 12]] (loss 1/16)", (f, a), torch.tensor([1 / 16], dtype=torch.float64)),
        ("a batch (2, 3, 4, 4) and its own Gram matrix (loss 0)", (batch, (flat @ flat.transpose(1, 2) / 16).float()), torch.zeros(2, dtype=torch.float64)),
        ("a batch (2, 3, 4, 4) and a random target", (batch, target), expected_batch),
    ]

    def hints(args: tuple[Any, ...]) -> list[tuple[Tensor, str]]:
        features, gram_target = args
        n, c, h, w = features.shape
        flat = features.double().reshape(n, c, h * w)
        difference = (flat @ flat.transpose(1, 2) / (h * w) - gram_target.double()) ** 2
        return [
            (difference.sum(dim=(1, 2)), "divide by 4 C^2"),
            (difference.mean(dim=(1, 2)), "sum the squared differences and divide by 4 C^2 (the mean divides by C^2 only)"),
        ]

    _grade_tensor_function(style_loss, "the features or the target", cases, hints, "compare the Gram matrix of the features with the target")
    print(f"Correct! {_name(style_loss)} is Gatys et al.'s style loss.")


# ---------------------------------------------------------------------------------------------
# LRP (notebook 05)
# ---------------------------------------------------------------------------------------------


def _reference_lrp_epsilon(a: Tensor, weight: Tensor, bias: Tensor, relevance: Tensor, epsilon: float) -> Tensor:
    """Slowly, from the contributions: R_j = sum_k a_j w_kj / (z_k + eps sign z_k) R_k."""
    a, weight, bias, relevance = (t.double() for t in (a, weight, bias, relevance))
    contributions = a[:, None, :] * weight[None, :, :]  # (N, K, J)
    z = contributions.sum(dim=2) + bias
    stabilised = z + epsilon * torch.where(z >= 0, 1.0, -1.0).double()
    return (contributions / stabilised[:, :, None] * relevance[:, :, None]).sum(dim=1)


@_grader
def check_lrp_epsilon(lrp_epsilon_dense: Callable[..., Tensor]) -> None:
    """Grade ``lrp_epsilon_dense(a, weight, bias, relevance, epsilon)`` against a slow
    re-derivation from the contributions ``a_j w_kj``."""
    _require_callable(lrp_epsilon_dense, "lrp_epsilon_dense", "check_lrp_epsilon(lrp_epsilon_dense)")
    generator = torch.Generator().manual_seed(13)
    a = torch.tensor([[1.0, 2.0]])
    w = torch.tensor([[1.0, -1.0], [2.0, 0.5]])
    b = torch.zeros(2)
    r = torch.tensor([[1.0, 3.0]])
    batch_a = torch.rand(3, 5, generator=generator)
    batch_w = torch.randn(4, 5, generator=generator)
    batch_b = torch.randn(4, generator=generator) * 0.1
    batch_r = torch.randn(3, 4, generator=generator)
    cases = []
    for eps in (0.0, 0.5):
        cases.append((f"a = [1, 2], W = [[1, -1], [2, 0.5]], R = [1, 3], epsilon {eps}", (a, w, b, r, eps), _reference_lrp_epsilon(a, w, b, r, eps)))
        cases.append((f"a batch of 3, 5 inputs, 4 outputs, biases, epsilon {eps}", (batch_a, batch_w, batch_b, batch_r, eps),
                      _reference_lrp_epsilon(batch_a, batch_w, batch_b, batch_r, eps)))

    def hints(args: tuple[Any, ...]) -> list[tuple[Tensor, str]]:
        a, w, b, r, eps = args
        z = a.double() @ w.double().T + b.double()
        s = r.double() / (z + eps * torch.where(z >= 0, 1.0, -1.0).double())
        return [
            (s @ w.double(), "multiply by the activations a at the end: R_in = a * (W^T s)"),
            (a.double() * ((r.double() / (z + eps)) @ w.double()), "stabilise with epsilon * sign(z), not + epsilon"),
            (a.double() * ((r.double() / (a.double() @ w.double().T + eps * torch.where(a.double() @ w.double().T >= 0, 1.0, -1.0).double())) @ w.double()),
             "z includes the bias: z = a W^T + b"),
        ]

    _grade_tensor_function(lrp_epsilon_dense, "a, the weights or the relevance", cases, hints, "R_in = a * ((R / (z + eps sign z)) @ W)")
    print(f"Correct! {_name(lrp_epsilon_dense)} implements LRP-epsilon (and LRP-0 with epsilon 0) for a dense layer.")


# ---------------------------------------------------------------------------------------------
# evaluation (notebook 09)
# ---------------------------------------------------------------------------------------------


@_grader
def check_curve_area(curve_area: Callable[[Tensor, Tensor], Tensor]) -> None:
    """Grade ``curve_area(fractions, scores)``: the trapezoid area under each row, ``(N,)``."""
    _require_callable(curve_area, "curve_area", "check_curve_area(curve_area)")
    generator = torch.Generator().manual_seed(14)
    f1 = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])
    s1 = torch.tensor([[10.0, 6.0, 3.0, 1.0, 0.0]])
    f2 = torch.tensor([0.0, 0.1, 0.5, 1.0])
    s2 = torch.rand(3, 4, generator=generator)
    expected2 = ((s2[:, 1:] + s2[:, :-1]) / 2 * (f2[1:] - f2[:-1])).sum(dim=1).double()
    cases = [
        ("scores [10, 6, 3, 1, 0] at fractions [0, 0.25, 0.5, 0.75, 1] (area 3.75)", (f1, s1), torch.tensor([3.75], dtype=torch.float64)),
        ("3 curves at uneven fractions [0, 0.1, 0.5, 1]", (f2, s2), expected2),
    ]

    def hints(args: tuple[Any, ...]) -> list[tuple[Tensor, str]]:
        f, s = args
        return [
            (s.mean(dim=1), "weight each pair of neighbours by the width between their fractions"),
            ((s[:, :-1] * (f[1:] - f[:-1])).sum(dim=1), "average each pair of neighbouring scores (the trapezoid), not only the left one"),
        ]

    _grade_tensor_function(curve_area, "the fractions or scores", cases, hints, "sum of (p_k + p_k+1) / 2 * (f_k+1 - f_k)")
    print(f"Correct! {_name(curve_area)} computes the trapezoid area under each curve.")


@_grader
def check_pointing_hit(pointing_hit: Callable[[Tensor, Any, float], bool]) -> None:
    """Grade ``pointing_hit(heatmap, box, tolerance)``: the maximum within ``tolerance``
    pixels (Euclidean) of the box, right and bottom exclusive."""
    from vizwidgets.data import Box

    _require_callable(pointing_hit, "pointing_hit", "check_pointing_hit(pointing_hit)")
    name = _name(pointing_hit)
    heat = torch.zeros(20, 20)
    heat[5, 5] = 1.0
    corner = torch.zeros(20, 20)
    corner[10, 12] = 1.0  # 3 columns and 4 rows from the box below: distance 5
    cases = [
        ("a peak at (5, 5) inside box columns 2-7, rows 2-7, tolerance 0", heat, Box("a", 2, 2, 8, 8), 0.0, True),
        ("a peak at (5, 5), box columns 12-17, tolerance 7 (distance 7)", heat, Box("b", 12, 5, 18, 9), 7.0, True),
        ("a peak at (5, 5), box columns 12-17, tolerance 6 (distance 7)", heat, Box("b", 12, 5, 18, 9), 6.0, False),
        ("a peak at (5, 5), box columns 6-9 (right is exclusive: 6 is in, 5 is not), tolerance 0", heat, Box("c", 6, 0, 10, 10), 0.0, False),
        ("a peak at row 10, column 12, box columns 0-8, rows 0-5, tolerance 5 (distance 5)", corner, Box("d", 0, 0, 10, 7), 5.0, True),
        ("the same with tolerance 4.9", corner, Box("d", 0, 0, 10, 7), 4.9, False),
    ]
    for case, heatmap, box, tolerance, expected in cases:
        result = _call(pointing_hit, case, heatmap, box, tolerance, what="the heatmap")
        if bool(result) != expected:
            raise AssertionError(
                f"On {case}, {name} returned {result!r}; expected {expected}.\nHint: row, col = "
                "divmod(int(heatmap.argmax()), W); dx = max(box.left - col, 0, col - (box.right - 1)); "
                "dy likewise with top and bottom; hit if sqrt(dx^2 + dy^2) <= tolerance."
            )
    print(f"Correct! {name} plays the pointing game, tolerance and box edges included.")
