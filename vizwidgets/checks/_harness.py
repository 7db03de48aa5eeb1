"""What every grader shares: calling the learner's code safely, comparing, and feedback.

Three parts:

- comparing: :func:`_call` runs the learner's function on copies of its inputs and turns a crash
  or an in-place change into a message naming the test input (and, for the crashes learners
  meet most, what usually causes them); :func:`_require_tensor`, :func:`_close`,
  :func:`_compare` and :func:`_show` judge and describe the result, :func:`_compare` from the
  first value that differs; :func:`_grade_tensor_function` is the whole loop for graders whose
  wrong answers each have a known look-alike;
- verdicts: a diagnosis is a :class:`_Help`, a hint and more help; :func:`_verdict` builds the
  ``AssertionError`` from it. Every failure shows the hint; the more help is shown when the
  learner asks for it, by calling the grader again with ``hint=2``;
- feedback: :func:`_grader` marks a ``check_...`` function: it takes the ``hint`` keyword, and
  whatever it raises shows the learner the message alone, plus their own frames where their
  code raised, never a frame of this package (those hold the reference answers) nor of the
  libraries their code called into (torch's internals say nothing to a learner).
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import linecache
import os
import sysconfig
import traceback
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, NamedTuple, TypeVar

import torch
from torch import Tensor

__all__: list[str] = []  # private to the checks package

_CHECKS_DIR = os.path.normcase(os.path.dirname(os.path.abspath(__file__)))
_PACKAGE_DIR = os.path.dirname(_CHECKS_DIR)
_Grader = TypeVar("_Grader", bound=Callable[..., Any])

# rtol and atol of every comparison (in float64)
_RTOL = 1e-4
_ATOL = 1e-6


# ---------------------------------------------------------------------------------------------
# Verdicts: a hint, and more help on request
# ---------------------------------------------------------------------------------------------


class _Help(NamedTuple):
    """One diagnosis: ``hint``, what is probably wrong (shown with every failure), and
    ``more``, how to put it right (shown when the grader is called with ``hint=2``).

    Neither ends with a full stop; neither gives the whole answer.
    """

    hint: str
    more: str


# The hint level of the grader running now (1 or 2) and the call that asks for more help.
_LEVEL: contextvars.ContextVar[int] = contextvars.ContextVar("hint_level", default=1)
_MORE_CALL: contextvars.ContextVar[str] = contextvars.ContextVar(
    "more_help_call", default="the same check with hint=2"
)


def _help_lines(help: _Help | str) -> list[str]:
    """The ``Hint:`` line of a verdict and, when there is more help, the line that gives it
    (``hint=2``) or says how to ask for it."""
    if isinstance(help, str):
        return [f"Hint: {help}."]
    lines = [f"Hint: {help.hint}."]
    if _LEVEL.get() >= 2:
        lines.append(f"More help: {help.more}.")
    else:
        lines.append(f"For more help, run {_MORE_CALL.get()}")
    return lines


def _verdict(headline: str, help: _Help | str, comparison: str = "") -> AssertionError:
    """The AssertionError a grader raises: ``headline`` (which test input, what is wrong),
    ``comparison`` (from :func:`_compare`, if any), then the hint lines of ``help``."""
    lines = [headline, *([comparison] if comparison else []), *_help_lines(help)]
    return AssertionError("\n".join(lines))


# ---------------------------------------------------------------------------------------------
# Feedback: what a notebook shows when a grader raises
# ---------------------------------------------------------------------------------------------


def _library_dirs() -> tuple[str, ...]:
    """Folders whose frames are never the learner's: installed packages, the standard library
    and this package."""
    folders = {_PACKAGE_DIR}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            folders.add(os.path.normcase(os.path.abspath(path)))
    return tuple(sorted(folders))


_LIBRARY_DIRS = _library_dirs()


def _is_grader_frame(filename: str) -> bool:
    """A frame of any module of the checks package (they hold the reference answers)."""
    folder = os.path.dirname(os.path.normcase(os.path.abspath(filename)))
    return folder == _CHECKS_DIR or folder.startswith(_CHECKS_DIR + os.sep)


def _is_learner_frame(filename: str) -> bool:
    """A frame of the learner's code: a notebook cell or a file of their own, not this
    package, an installed library (torch), the standard library or IPython's machinery."""
    if filename.startswith("<frozen"):
        return False
    path = os.path.normcase(os.path.abspath(filename))
    parts = path.split(os.sep)
    if "site-packages" in parts or "dist-packages" in parts:
        return False
    if "IPython" in parts or "ipykernel" in parts:
        return False
    return not any(path == d or path.startswith(d + os.sep) for d in _LIBRARY_DIRS)


def _learner_frames(tb: TracebackType | None) -> list[str]:
    """Two lines per frame of ``tb`` that is the learner's: where, and the line itself."""
    lines = []
    for frame in traceback.extract_tb(tb):
        if not _is_learner_frame(frame.filename):
            continue
        lines.append(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}')
        source = (frame.line or linecache.getline(frame.filename, frame.lineno or 0)).strip()
        if source:
            lines.append(f"    {source}")
    return lines


def _feedback_lines(error: BaseException) -> list[str]:
    """What a notebook shows for ``error`` raised by a grader: no grader frame, no answer.

    - a grader's verdict (``AssertionError`` without a cause): the message alone;
    - the learner's code raised (a chained cause): the learner's frames of that error, then
      the message (which names the error and gives the hint);
    - an unstarted exercise (``NotImplementedError``) or any other error: the learner's
      frames, if any, then the error.
    """
    cause = error.__cause__
    if cause is not None:
        lines = _learner_frames(cause.__traceback__)
    elif isinstance(error, AssertionError):
        lines = []
    else:
        lines = _learner_frames(error.__traceback__)
    return [*lines, *f"{type(error).__name__}: {error}".splitlines()]


def _attach_feedback(error: BaseException) -> None:
    """Give ``error`` the rendering IPython uses instead of a traceback (``_render_traceback_``)."""
    if getattr(error, "_render_traceback_", None) is not None:
        return
    try:
        error._render_traceback_ = functools.partial(_feedback_lines, error)  # type: ignore[attr-defined]
    except AttributeError:  # an exception type without an instance __dict__: leave it as it is
        pass


def _more_help_call(check: str, args: tuple[Any, ...]) -> str:
    """The call that asks for more help, e.g. ``check_softmax(softmax, hint=2)``."""
    name = getattr(args[0], "__name__", "") if args else ""
    if not name.isidentifier():
        name = "your_function"
    return f"{check}({name}, hint=2)"


def _grader(check: _Grader) -> _Grader:
    """Mark ``check`` as a grader.

    It takes one more keyword, ``hint`` (1 or 2): with ``hint=2`` a failure gives more help
    than its first hint. Whatever it raises is shown to the learner without its frames.
    """

    @functools.wraps(check)
    def graded(*args: Any, hint: int = 1, **kwargs: Any) -> Any:
        try:
            if isinstance(hint, bool) or not isinstance(hint, int):
                raise TypeError(f"hint must be 1 or 2, an int; got {type(hint).__name__}")
            if hint not in (1, 2):
                raise ValueError(f"hint must be 1 (a hint) or 2 (more help); got {hint}")
            level = _LEVEL.set(hint)
            call = _MORE_CALL.set(_more_help_call(check.__name__, args))
            try:
                return check(*args, **kwargs)
            finally:
                _MORE_CALL.reset(call)
                _LEVEL.reset(level)
        except Exception as error:
            _attach_feedback(error)
            raise

    signature = inspect.signature(check)
    parameters = [
        *signature.parameters.values(),
        inspect.Parameter("hint", inspect.Parameter.KEYWORD_ONLY, default=1, annotation="int"),
    ]
    graded.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return graded  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# Calling the learner's code
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


# Errors learners' code raises most, by a piece of their message: what usually causes each.
_KNOWN_ERRORS: tuple[tuple[str, _Help], ...] = (
    (
        "does not require grad",
        _Help(
            "the tensor you differentiate with respect to does not require gradients",
            "differentiate with respect to a copy made for it, "
            "`inputs = x.detach().clone().requires_grad_(True)`, and run the model on that copy",
        ),
    ),
    (
        "only for scalar outputs",
        _Help(
            "a gradient starts from one number, and yours starts from a tensor of several",
            "sum the scores you differentiate first (`scores.sum()`): each image's score "
            "depends only on its own pixels, so one backward pass gives every image's gradient",
        ),
    ),
    (
        "backward through the graph a second time",
        _Help(
            "a backward pass frees the graph it went through, so it cannot run twice",
            "run the forward pass again for each backward pass (one model call per sample "
            "or step), on a fresh copy of the input",
        ),
    ),
    (
        "leaf Variable that requires grad",
        _Help(
            "an in-place change of a tensor that requires gradients",
            "compute on a new tensor (`y = x + ...`), or change values inside "
            "`with torch.no_grad():`",
        ),
    ),
    (
        "can't call numpy() on tensor that requires grad",
        _Help(
            "a tensor still attached to the autograd graph cannot become a NumPy array",
            "stay with torch operations, or call `.detach()` first",
        ),
    ),
    (
        "Boolean value of Tensor with more than one",
        _Help(
            "`if` or `and` on a tensor of several values",
            "reduce it to one value first, e.g. `(...).all()` or `.item()`, or use torch.where",
        ),
    ),
    (
        "must match the size of tensor",
        _Help(
            "two tensors whose shapes do not broadcast",
            "print the shapes of the tensors on that line; keep the reduced dimension with "
            "`keepdim=True` or add one with `[:, None]` so that they line up",
        ),
    ),
    (
        "should be the same",
        _Help(
            "tensors of different dtypes (or devices) meet, such as float32 input and float64 weights",
            "keep the dtype of the tensors you were given: no `.float()` or `.double()` (the "
            "check's networks work in float64); `x.detach().clone()` keeps it",
        ),
    ),
    (
        "expected scalar type",
        _Help(
            "tensors of different dtypes meet, such as float32 and float64",
            "keep the dtype of the tensors you were given: no `.float()` or `.double()`; "
            "`torch.zeros_like(x)` makes a tensor of x's dtype",
        ),
    ),
    (
        "mat1 and mat2 shapes cannot be multiplied",
        _Help(
            "a matrix product of shapes that do not fit",
            "in `A @ B` the last dimension of A must equal the first of B; print both shapes "
            "and transpose one (`.T`) if needed",
        ),
    ),
)

_UNKNOWN_ERROR = _Help(
    "the line just above this message is where your code raised the error",
    "run your function by hand on a small input in a new cell and print the shapes of the "
    "tensors on that line",
)


def _crash_help(error: BaseException) -> _Help:
    """What usually causes ``error``, from its message; a general hint otherwise."""
    text = str(error)
    return next((help for piece, help in _KNOWN_ERRORS if piece in text), _UNKNOWN_ERROR)


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
        raise _verdict(
            f"{_name(fn)} raised {type(error).__name__} on {case}: {error}", _crash_help(error)
        ) from error
    for original, copy in zip(args, copies):
        if isinstance(original, Tensor) and not torch.equal(original, copy):
            raise _verdict(
                f"{_name(fn)} changed {what} it was given (on {case}), for example with "
                "an in-place operation such as `x -= ...`, `x += ...` or `x.exp_()`",
                _Help(
                    "compute on a new tensor instead: `shifted = x - ...`",
                    "every operation whose name ends with `_` (`clamp_`, `exp_`), and "
                    "`x[...] = ...`, `x += ...`, change x itself; the caller's tensor must "
                    "stay as it was",
                ),
            )
    return result


def _require_tensor(value: object, what: str, fn: Callable[..., Any], case: str) -> Tensor:
    """``value`` if it is a tensor, else an AssertionError saying that ``what`` should be one."""
    if isinstance(value, Tensor):
        return value
    kind = type(value).__name__
    if type(value).__module__.startswith("torch.return_types"):
        help = _Help(
            f"{kind}(dim=...) returns a pair (values, indices): take its .values",
            f"`x.{kind}(dim=1).values`, or `x.a{kind}(dim=1)`, which returns the values only",
        )
    else:
        help = _Help(
            "stay with torch operations (torch.exp, .sum, .max, .topk); if you have a "
            "list or array, torch.as_tensor(...) turns it into a tensor",
            "check what your last line returns: `print(type(result))` before the return",
        )
    raise _verdict(
        f"{_name(fn)} should return {what} as a torch.Tensor, but on {case} it returned {kind}",
        help,
    )


# ---------------------------------------------------------------------------------------------
# Comparing and describing results
# ---------------------------------------------------------------------------------------------


def _close(result: Tensor, expected: Tensor) -> bool:
    """Equal up to the graders' tolerance (rtol 1e-4, atol 1e-6), compared in float64."""
    return bool(
        torch.allclose(
            result.detach().double().cpu(),
            expected.detach().double().cpu(),
            rtol=_RTOL,
            atol=_ATOL,
        )
    )


def _matches(result: Tensor, reference: Tensor) -> bool:
    """``result`` has the shape of ``reference`` and is close to it, where a nan matches a
    nan and an infinity the same infinity (the look-alike of a mistake may hold them)."""
    if tuple(result.shape) != tuple(reference.shape):
        return False
    return bool(
        torch.allclose(
            result.detach().double().cpu(),
            reference.detach().double().cpu(),
            rtol=_RTOL,
            atol=_ATOL,
            equal_nan=True,
        )
    )


def _value(v: float | int | bool) -> str:
    """One value as a message shows it."""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _show(tensor: Tensor, limit: int = 6, start: int = 0) -> str:
    """A short, readable view of a tensor for a message: ``limit`` values from the flat
    position ``start``, the shape and the dtype."""
    flat = tensor.detach().reshape(-1).cpu()
    values = [_value(v) for v in flat[start : start + limit].tolist()]
    before = "..., " if start > 0 else ""
    after = ", ..." if flat.numel() > start + limit else ""
    return f"[{before}{', '.join(values)}{after}] (shape {tuple(tensor.shape)}, {tensor.dtype})"


def _differences(result: Tensor, expected: Tensor) -> Tensor:
    """Where ``result`` and ``expected`` (same shape) differ beyond the tolerance, or where
    one of them is not finite and the other not the same: a bool tensor of their shape."""
    got = result.detach().double().cpu()
    want = expected.detach().double().cpu()
    return ~torch.isclose(got, want, rtol=_RTOL, atol=_ATOL)


def _first_difference(result: Tensor, expected: Tensor) -> tuple[int, tuple[int, ...], int] | None:
    """``(flat position, index, count)`` of the first value that differs and of how many
    differ, for tensors of one shape; None when none does (or the shapes differ)."""
    if tuple(result.shape) != tuple(expected.shape):
        return None
    differ = _differences(result, expected)
    count = int(differ.sum())
    if count == 0:
        return None
    flat = int(differ.reshape(-1).nonzero()[0, 0])
    index: list[int] = []
    rest = flat
    for size in reversed(tuple(result.shape)):  # torch.unravel_index, without its slow import
        rest, position = divmod(rest, size)
        index.insert(0, position)
    return flat, tuple(index), count


def _compare(result: Tensor, expected: Tensor) -> str:
    """Where ``result`` first differs from ``expected``: its index, both values there and how
    many values differ; then both tensors from a little before that position."""
    first = _first_difference(result, expected)
    if first is None:
        return f"Expected {_show(expected)},\ngot      {_show(result)}."
    flat, index, count = first
    where = f" at index {list(index) if len(index) != 1 else index[0]}" if index else ""
    want = expected.detach().reshape(-1)[flat].item()
    got = result.detach().reshape(-1)[flat].item()
    start = max(0, flat - 2)
    return (
        f"First difference{where}: Expected {_value(want)}, got {_value(got)} "
        f"({count} of {result.numel()} values differ).\n"
        f"Expected {_show(expected, start=start)},\n"
        f"got      {_show(result, start=start)}."
    )


class _Wrong(NamedTuple):
    """A wrong result on one test input, waiting for its diagnosis: the message's first line,
    the learner's result, the right one, the results of the known mistakes on this input
    (computed only when needed) and the help when none of them matches."""

    headline: str
    result: Tensor
    expected: Tensor
    mistakes: Callable[[], list[tuple[Tensor, _Help]]]
    default: _Help


def _judge(cases: Iterable[Callable[[], _Wrong | None]]) -> None:
    """Judge the learner on every case (each a call that returns None when right, a
    :class:`_Wrong` when wrong, and raises when the learner's code crashes or returns the wrong
    kind of thing); raise the verdict on the first wrong case.

    The diagnosis is the first known mistake that matches the learner's result on the first
    wrong case and on every later wrong case too: one test input alone can leave two mistakes
    indistinguishable (a gap that is negative looks the same under ``abs()`` and with its sign
    flipped), the next tells them apart. After a first wrong case, a later one that raises ends
    the search quietly, so the verdict stays the one on the first.
    """
    wrong: list[_Wrong] = []
    for judge in cases:
        try:
            outcome = judge()
        except AssertionError:
            if wrong:
                break
            raise
        if outcome is not None:
            wrong.append(outcome)
    if not wrong:
        return
    first = wrong[0]
    matching = [[help for ref, help in w.mistakes() if _matches(w.result, ref)] for w in wrong]
    help = next(
        (h for h in matching[0] if all(h in later for later in matching[1:])),
        matching[0][0] if matching[0] else first.default,
    )
    raise _verdict(first.headline, help, _compare(first.result, first.expected))


def _grade_tensor_function(
    fn: Callable[..., Tensor],
    argument: str,
    cases: list[tuple[str, tuple[Any, ...], Tensor]],
    hints: Callable[[tuple[Any, ...]], list[tuple[Tensor, _Help]]],
    default_hint: _Help,
    shape_hint: Callable[[tuple[Any, ...], tuple[int, ...]], _Help | None] | None = None,
) -> None:
    """Run ``fn`` on each case ``(description, args, expected)``; raise on the first wrong one.

    ``hints(args)`` gives the results of known mistakes with their help: the first one that
    matches the learner's results (see :func:`_judge`) is the help shown, else
    ``default_hint``. ``shape_hint(args, shape)``, if given, explains a result of the wrong
    shape. ``argument`` names the inputs for the message about in-place changes.
    """
    name = _name(fn)

    def judge(case: str, args: tuple[Any, ...], expected: Tensor) -> _Wrong | None:
        result = _require_tensor(_call(fn, case, *args, what=argument), "the result", fn, case)
        if tuple(result.shape) != tuple(expected.shape):
            shape = tuple(result.shape)
            help = shape_hint(args, shape) if shape_hint is not None else None
            raise _verdict(
                f"On {case}, {name} returned shape {shape}; the right shape is "
                f"{tuple(expected.shape)}",
                help or default_hint,
            )
        if _close(result, expected):
            return None
        return _Wrong(f"On {case}, {name} is wrong.", result, expected, lambda: hints(args), default_hint)

    _judge(functools.partial(judge, *case) for case in cases)


def _diagnose(result: Tensor, mistakes: list[tuple[Tensor, _Help]], default: _Help) -> _Help:
    """The help of the first known mistake whose result ``result`` matches, else ``default``."""
    return next((h for ref, h in mistakes if _matches(result, ref)), default)


def _require_images(
    value: object, x: Tensor, what: str, fn: Callable[..., Any], case: str, variable: str
) -> Tensor:
    """``value`` as images of ``x``'s shape, detached from the autograd graph, or the verdict
    that says which it is not. ``what`` names the images ("the attacked images") and
    ``variable`` the learner's variable in the hint (``x_adv``), for the loops that update an
    image step after step."""
    result = _require_tensor(value, what, fn, case)
    name = _name(fn)
    if tuple(result.shape) != tuple(x.shape):
        raise _verdict(
            f"On {case}, {name} returned shape {tuple(result.shape)}; {what} have the shape of "
            f"x, {tuple(x.shape)}.",
            _Help(f"return the whole batch of {what.removeprefix('the ')}", "do not index, sum or squeeze it"),
        )
    if result.requires_grad:
        raise _verdict(
            f"On {case}, {name} returned images still attached to the autograd graph.",
            _Help(
                f"return {what} detached: `{variable}.detach()`, or update them inside "
                "`with torch.no_grad():`",
                "each step's image is a new starting point, not part of a computation to "
                "differentiate; attached, every step's graph stays in memory and the next "
                "gradient flows back through all of them",
            ),
        )
    return result
