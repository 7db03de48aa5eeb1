"""What every grader shares: calling the learner's code safely, comparing, and feedback.

Two halves:

- comparing: :func:`_call` runs the learner's function on copies of its inputs and turns a crash
  or an in-place change into a message naming the test input; :func:`_require_tensor`,
  :func:`_close`, :func:`_compare` and :func:`_show` judge and describe the result;
  :func:`_grade_tensor_function` is the whole loop for graders whose wrong answers each have a
  known look-alike;
- feedback: :func:`_grader` marks a ``check_...`` function so that whatever it raises shows the
  learner the message, the hint and their own frames, never a frame of this package (those
  hold the reference answers). A frame is the package's own when its file lies in the
  ``vizwidgets/checks/`` directory, so every grader module is hidden, this one included.
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

__all__: list[str] = []  # private to the checks package

_CHECKS_DIR = os.path.normcase(os.path.dirname(os.path.abspath(__file__)))
_Grader = TypeVar("_Grader", bound=Callable[..., Any])


# ---------------------------------------------------------------------------------------------
# Feedback: what a notebook shows when a grader raises
# ---------------------------------------------------------------------------------------------


def _is_grader_frame(filename: str) -> bool:
    """A frame of any module of the checks package (they hold the reference answers)."""
    folder = os.path.dirname(os.path.normcase(os.path.abspath(filename)))
    return folder == _CHECKS_DIR or folder.startswith(_CHECKS_DIR + os.sep)


def _is_shell_frame(filename: str) -> bool:
    """A frame of IPython's own machinery (``run_code``), which says nothing to a learner."""
    parts = os.path.normcase(os.path.abspath(filename)).split(os.sep)
    return "IPython" in parts or "ipykernel" in parts


def _learner_frames(tb: TracebackType | None) -> list[str]:
    """The formatted frames of ``tb`` that are neither the graders' nor IPython's own."""
    frames = [
        frame
        for frame in traceback.extract_tb(tb)
        if not _is_grader_frame(frame.filename) and not _is_shell_frame(frame.filename)
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
            lines += [
                "Your code raised this error:",
                *frames,
                f"{type(cause).__name__}: {cause}",
                "",
            ]
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


# ---------------------------------------------------------------------------------------------
# Calling the learner's code and judging the result
# ---------------------------------------------------------------------------------------------


class _Case(NamedTuple):
    """One test input: what a learner reads about it, and the logits."""

    description: str
    logits: Tensor


def _name(fn: Callable[..., Any]) -> str:
    """The name a message uses for the learner's function (a lambda's is ``<lambda>``)."""
    return getattr(fn, "__name__", None) or type(fn).__name__


def _require_callable(fn: object, argument: str, example: str) -> None:
    """Raise TypeError, naming ``argument`` and showing ``example``, unless ``fn`` is callable."""
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
    """Call the learner's ``fn`` on copies of ``args``; turn its bugs into clear messages.

    ``case`` describes the test input for the learner; ``what`` names the inputs in the message
    that says they were changed in place.
    """
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
    """``value`` if it is a tensor, else an AssertionError saying that ``what`` should be one."""
    if not isinstance(value, Tensor):
        raise AssertionError(
            f"{_name(fn)} should return {what} as a torch.Tensor, but on {case} it returned "
            f"{type(value).__name__}.\n"
            "Hint: stay with torch operations (torch.exp, .sum, .max, .topk); if you have a "
            "list or array, torch.as_tensor(...) turns it into a tensor."
        )
    return value


def _close(result: Tensor, expected: Tensor) -> bool:
    """Equal up to the graders' tolerance (rtol 1e-4, atol 1e-6), compared in float64."""
    return bool(
        torch.allclose(
            result.detach().double().cpu(),
            expected.detach().double().cpu(),
            rtol=1e-4,
            atol=1e-6,
        )
    )


def _grade_tensor_function(
    fn: Callable[..., Tensor],
    argument: str,
    cases: list[tuple[str, tuple[Any, ...], Tensor]],
    hints: Callable[[tuple[Any, ...]], list[tuple[Tensor, str]]],
    default_hint: str,
) -> None:
    """Run ``fn`` on each case ``(description, args, expected)``; raise on the first wrong one.

    ``hints(args)`` gives the results of known mistakes with their hint: the first one the
    learner's result matches is the hint shown, else ``default_hint``. ``argument`` names the
    inputs for the message about in-place changes.
    """
    name = _name(fn)
    for case, args, expected in cases:
        result = _require_tensor(_call(fn, case, *args, what=argument), "the result", fn, case)
        if tuple(result.shape) != tuple(expected.shape):
            raise AssertionError(
                f"On {case}, {name} returned shape {tuple(result.shape)}, "
                f"expected {tuple(expected.shape)}."
            )
        if _close(result, expected):
            continue
        hint = next(
            (
                h
                for ref, h in hints(args)
                if tuple(ref.shape) == tuple(result.shape) and _close(result, ref)
            ),
            default_hint,
        )
        raise AssertionError(
            f"On {case}, {name} is wrong.\n{_compare(result, expected)}\nHint: {hint}."
        )
