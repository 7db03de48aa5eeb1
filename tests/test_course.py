"""The course: generated learner notebooks, exercise conventions, graders, and notebook runs.

- (a) every committed ``course/NN_topic.ipynb`` is exactly what ``tools/build_course.py``
  generates from ``solutions/NN_topic.py``;
- (b) learner notebooks hold no solution code, and exercise and check cells are tagged
  ``raises-exception``; the build script enforces its conventions;
- (c) each ``vizwidgets.checks`` grader accepts a right answer and rejects wrong ones;
- (d) the solution notebooks run without error, and the learner notebooks fail only with the
  exercises' ``NotImplementedError``, in the tagged cells.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
import torch

from vizwidgets.checks import (
    check_cam,
    check_completeness_gap,
    check_curve_area,
    check_fgsm_step,
    check_grad_cam,
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
    check_top_k,
    check_total_variation,
)

from _tools import load_tool

ROOT = Path(__file__).resolve().parent.parent


build_course = load_tool("build_course")
SCRIPTS = build_course.solution_scripts()
SCRIPT_IDS = [script.stem for script in SCRIPTS]


def test_there_is_a_course() -> None:
    assert SCRIPTS, "no solutions/NN_topic.py scripts found"
    assert SCRIPTS[0].name == "00_welcome.py"


# --- (a) generated == committed ------------------------------------------------------------


@pytest.mark.parametrize("script", SCRIPTS, ids=SCRIPT_IDS)
def test_committed_learner_notebook_is_generated_from_its_solution(script: Path) -> None:
    target = build_course.learner_path(script)
    assert target.is_file(), f"{target} is missing: run python tools/build_course.py"
    expected = build_course.generated_content(build_course.build_notebook(script))
    found = build_course.generated_content(nbformat.read(target, as_version=4))
    assert found == expected, f"{target} is out of date with {script}: run python tools/build_course.py"


@pytest.mark.parametrize("script", SCRIPTS, ids=SCRIPT_IDS)
def test_generated_notebook_is_clean(script: Path) -> None:
    """What the build writes has no outputs, counts or ids, and is always the same bytes."""
    notebook = build_course.build_notebook(script)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
        assert "id" not in cell
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    assert "jupytext" not in notebook.metadata
    assert (notebook.nbformat, notebook.nbformat_minor) == (4, 4)
    assert build_course.notebook_text(notebook) == build_course.notebook_text(
        build_course.build_notebook(script)
    )


def test_check_option_passes_on_the_committed_course(capsys: pytest.CaptureFixture[str]) -> None:
    assert build_course.out_of_date() == []
    assert build_course.main(["--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_check_option_lists_stale_missing_and_orphan_notebooks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    solutions, course = tmp_path / "solutions", tmp_path / "course"
    solutions.mkdir()
    _write_script(solutions / "01_one.py", "# %%\nx = 1\n")
    _write_script(solutions / "02_two.py", "# %%\ny = 2\n")
    args = ["--solutions", str(solutions), "--course", str(course)]
    assert build_course.main(args) == 0
    assert build_course.main([*args, "--check"]) == 0

    (course / "01_one.ipynb").write_text("{}", encoding="utf-8")  # stale
    (course / "02_two.ipynb").unlink()  # missing
    (course / "03_orphan.ipynb").write_text("{}", encoding="utf-8")  # no script
    capsys.readouterr()
    assert build_course.main([*args, "--check"]) == 1
    err = capsys.readouterr().err
    assert "01_one.ipynb: differs" in err
    assert "02_two.ipynb: missing" in err
    assert "03_orphan.ipynb: no solutions/03_orphan.py" in err

    assert build_course.main(args) == 0  # rebuilding repairs the first two
    problems = build_course.out_of_date(solutions, course)
    assert len(problems) == 1 and "03_orphan.ipynb: no solutions/" in problems[0]


def test_build_writes_the_solution_notebooks_on_request(tmp_path: Path) -> None:
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    _write_script(solutions / "01_one.py", _EXERCISE_SCRIPT)
    full = tmp_path / "full"
    args = ["--solutions", str(solutions), "--course", str(tmp_path / "course")]
    assert build_course.main([*args, "--solutions-out", str(full)]) == 0
    notebook = nbformat.read(full / "01_one.ipynb", as_version=4)
    sources = "\n".join(cell.source for cell in notebook.cells)
    assert "return x * 2" in sources and "solution-only cell" in sources
    assert not any("raises-exception" in c.metadata.get("tags", []) for c in notebook.cells)


# --- (b) learner notebooks hide the solutions ----------------------------------------------


def _solution_regions(source: str) -> list[list[str]]:
    """The lines strictly between BEGIN and END SOLUTION markers, one list per region."""
    regions: list[list[str]] = []
    current: list[str] | None = None
    for line in source.splitlines():
        if line.strip().startswith(build_course.BEGIN):
            current = []
        elif line.strip().startswith(build_course.END):
            assert current is not None
            regions.append(current)
            current = None
        elif current is not None:
            current.append(line)
    return regions


def _paired_cells(script: Path) -> list[tuple[nbformat.NotebookNode, nbformat.NotebookNode]]:
    """(solution cell, learner cell) pairs: the learner keeps every cell but solution-only."""
    full = build_course.solution_notebook(script)
    learner = nbformat.read(build_course.learner_path(script), as_version=4)
    kept = [
        cell for cell in full.cells
        if build_course.SOLUTION_ONLY_TAG not in cell.metadata.get("tags", [])
    ]
    assert len(kept) == len(learner.cells)
    for solution_cell, learner_cell in zip(kept, learner.cells):
        assert solution_cell.cell_type == learner_cell.cell_type
    return list(zip(kept, learner.cells))


@pytest.mark.parametrize("script", SCRIPTS, ids=SCRIPT_IDS)
def test_learner_notebook_contains_no_solution_code(script: Path) -> None:
    learner = nbformat.read(build_course.learner_path(script), as_version=4)
    text = "\n".join(cell.source for cell in learner.cells)
    assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
    exercises = 0
    for solution_cell, learner_cell in _paired_cells(script):
        regions = _solution_regions(solution_cell.source)
        exercises += len(regions)
        learner_lines = {line.strip() for line in learner_cell.source.splitlines()}
        for region in regions:
            for line in region:
                if line.strip():
                    assert line.strip() not in learner_lines, (
                        f"solution line {line.strip()!r} survives in the learner notebook"
                    )
        if regions:
            assert learner_cell.source.count(build_course.PLACEHOLDER) == len(regions)
            assert learner_cell.source.count("raise NotImplementedError(\"Exercise: ") == len(
                regions
            )
    assert exercises, f"{script.name} has no exercise"


@pytest.mark.parametrize("script", SCRIPTS, ids=SCRIPT_IDS)
def test_exercise_and_check_cells_are_tagged_raises_exception(script: Path) -> None:
    checks = 0
    for solution_cell, learner_cell in _paired_cells(script):
        tags = learner_cell.metadata.get("tags", [])
        expected = bool(_solution_regions(solution_cell.source)) or "check" in tags
        assert ("raises-exception" in tags) == expected, learner_cell.source
        checks += "check" in tags
    assert checks, f"{script.name} has exercises but no check cell"


@pytest.mark.parametrize("script", SCRIPTS, ids=SCRIPT_IDS)
def test_solution_regions_hold_no_imports(script: Path) -> None:
    """Imports inside a solution would vanish from the learner version and break it."""
    for cell in build_course.solution_notebook(script).cells:
        for region in _solution_regions(cell.source):
            for line in region:
                assert not re.match(r"\s*(import|from)\s+\w", line), (
                    f"{script.name}: move {line.strip()!r} to the imports cell at the top"
                )


# --- the build conventions, on small scripts ------------------------------------------------

_EXERCISE_SCRIPT = '''# %% [markdown]
# # A title

# %%
import math

# %%
def double(x):
    """Twice x."""
    if x is not None:
        # BEGIN SOLUTION multiply by two
        y = x
        return x * 2
        # END SOLUTION
    # BEGIN SOLUTION
    return None
    # END SOLUTION


# %% tags=["check"]
assert double(2) == 4

# %% tags=["solution-only"]
print("solution-only cell")

# %%
print(math.pi)
'''


def _write_script(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_build_replaces_regions_keeping_their_indentation(tmp_path: Path) -> None:
    notebook = build_course.build_notebook(_write_script(tmp_path / "01_x.py", _EXERCISE_SCRIPT))
    sources = [cell.source for cell in notebook.cells]
    assert sources[2] == (
        'def double(x):\n'
        '    """Twice x."""\n'
        '    if x is not None:\n'
        '        # YOUR CODE HERE\n'
        '        raise NotImplementedError("Exercise: multiply by two")\n'
        '    # YOUR CODE HERE\n'
        '    raise NotImplementedError("Exercise: replace this line with your code")'
    )
    assert "solution-only cell" not in "\n".join(sources)
    assert sources[-1] == "print(math.pi)"
    tags = [cell.metadata.get("tags", []) for cell in notebook.cells]
    assert tags[2] == ["raises-exception"]
    assert tags[3] == ["check", "raises-exception"]
    assert tags[1] == tags[4] == []


def test_build_output_is_deterministic_and_clean(tmp_path: Path) -> None:
    script = _write_script(tmp_path / "01_x.py", _EXERCISE_SCRIPT)
    first = build_course.notebook_text(build_course.build_notebook(script))
    second = build_course.notebook_text(build_course.build_notebook(script))
    assert first == second
    assert '"id"' not in first and "jupytext" not in first and "lines_to_next_cell" not in first
    notebook = nbformat.reads(first, as_version=4)
    assert notebook.metadata.kernelspec == {
        "display_name": "Python 3", "language": "python", "name": "python3",
    }
    assert all(c.outputs == [] for c in notebook.cells if c.cell_type == "code")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("# %%\n# BEGIN SOLUTION\nx = 1\n", "never closed"),
        ("# %%\nx = 1\n# END SOLUTION\n", "without a # BEGIN SOLUTION"),
        ("# %%\n# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n", "cannot nest"),
        ("# %%\ndef f():\n    pass\n\n# %%\ncheck_softmax(f)\n", "not tagged 'check'"),
        ('# %% tags=["check"]\nx = 1\n', "no exercise"),
        ('# %% [markdown] tags=["check"]\n# text\n', "only code cells"),
    ],
)
def test_build_rejects_broken_conventions(tmp_path: Path, body: str, message: str) -> None:
    script = _write_script(tmp_path / "01_bad.py", body)
    with pytest.raises(build_course.CourseBuildError, match=re.escape(message)):
        build_course.build_notebook(script)
    assert build_course.main(["--course", str(tmp_path / "course"), str(script)]) == 2


# --- (c) graders ----------------------------------------------------------------------------


def softmax_right(logits: torch.Tensor) -> torch.Tensor:
    shifted = logits - logits.max(dim=-1, keepdim=True).values
    exponentials = shifted.exp()
    return exponentials / exponentials.sum(dim=-1, keepdim=True)


def top_k_right(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    probabilities = softmax_right(logits)
    order = probabilities.argsort(dim=-1, descending=True)[..., :k]
    return probabilities.gather(-1, order), order


def test_check_softmax_accepts_right_answers(capsys: pytest.CaptureFixture[str]) -> None:
    check_softmax(softmax_right)
    assert capsys.readouterr().out.startswith("Correct! softmax_right")
    check_softmax(lambda logits: torch.softmax(logits.double(), dim=1 if logits.dim() == 2 else 0))
    assert capsys.readouterr().out.startswith("Correct!")


def _softmax_naive(logits: torch.Tensor) -> torch.Tensor:
    return logits.exp() / logits.exp().sum(dim=-1, keepdim=True)


def _softmax_global_max(logits: torch.Tensor) -> torch.Tensor:
    shifted = (logits - logits.max()).exp()
    return shifted / shifted.sum(dim=-1, keepdim=True)


def _softmax_in_place(logits: torch.Tensor) -> torch.Tensor:
    logits -= logits.max(dim=-1, keepdim=True).values
    return logits.exp() / logits.exp().sum(dim=-1, keepdim=True)


WRONG_SOFTMAX: dict[str, tuple[Callable[[torch.Tensor], object], str]] = {
    "overflows without the max": (_softmax_naive, "subtract the maximum"),
    "global max over the batch": (_softmax_global_max, "each row's own maximum"),
    "wrong axis": (lambda z: torch.softmax(z, dim=0), "wrong dimension"),
    "not normalised": (lambda z: (z - z.max(dim=-1, keepdim=True).values).exp(), "sum to 1"),
    "sigmoid": (torch.sigmoid, "do not sum to 1"),
    "changes its input": (_softmax_in_place, "changed the logits"),
    "returns numpy": (lambda z: torch.softmax(z, -1).numpy(), "torch.Tensor"),
    "reduces the shape": (lambda z: torch.softmax(z, -1).sum(-1), "shape"),
    "crashes": (lambda z: z.no_such_method(), "raised AttributeError"),
}


@pytest.mark.parametrize("case", sorted(WRONG_SOFTMAX))
def test_check_softmax_rejects_wrong_answers(case: str) -> None:
    fn, hint = WRONG_SOFTMAX[case]
    with pytest.raises(AssertionError, match=re.escape(hint)):
        check_softmax(fn)


def _top_k_unsorted(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    values, indices = top_k_right(logits, k)
    order = indices.argsort(dim=-1)  # class order, not probability order
    return values.gather(-1, order), indices.gather(-1, order)


def _top_k_ascending(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    values, indices = top_k_right(logits, k)
    return values.flip(-1), indices.flip(-1)


def _top_k_naive(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    values, indices = _softmax_naive(logits).topk(k, dim=-1)
    return values, indices


WRONG_TOP_K: dict[str, tuple[Callable[[torch.Tensor, int], object], str]] = {
    "unsorted": (_top_k_unsorted, "not sorted"),
    "ascending": (_top_k_ascending, "smallest first"),
    "logits not probabilities": (lambda z, k: tuple(z.topk(k, dim=-1)), "logits, not probabilities"),
    "swapped": (lambda z, k: tuple(reversed(top_k_right(z, k))), "(probabilities, indices)"),
    "all classes": (lambda z, k: top_k_right(z, z.shape[-1]), "keep only the first k"),
    "smallest k": (lambda z, k: softmax_right(z).topk(k, largest=False), "different classes"),
    "float indices": (lambda z, k: (top_k_right(z, k)[0], top_k_right(z, k)[1].float()), "integers"),
    "one tensor": (lambda z, k: top_k_right(z, k)[0], "two things"),
    "unstable softmax": (_top_k_naive, "nan"),
    "wrong axis": (lambda z, k: torch.softmax(z, dim=0).topk(k, dim=-1), "wrong"),
}


@pytest.mark.parametrize("case", sorted(WRONG_TOP_K))
def test_check_top_k_rejects_wrong_answers(case: str) -> None:
    fn, hint = WRONG_TOP_K[case]
    with pytest.raises(AssertionError, match=re.escape(hint)):
        check_top_k(fn)


def test_check_top_k_accepts_right_answers(capsys: pytest.CaptureFixture[str]) -> None:
    check_top_k(top_k_right)
    assert capsys.readouterr().out.startswith("Correct! top_k_right")
    check_top_k(lambda logits, k: torch.softmax(logits, dim=-1).topk(k))
    assert capsys.readouterr().out.startswith("Correct!")


def test_graders_pass_an_unstarted_exercise_through() -> None:
    def unstarted(*args: object) -> None:
        raise NotImplementedError("Exercise: write it")

    for grader in (
        check_softmax, check_top_k, check_input_gradient, check_saliency_map, check_smoothgrad, check_rectifier_rules
    ):
        with pytest.raises(NotImplementedError, match="Exercise: write it"):
            grader(unstarted)


def test_graders_want_the_function_not_its_result() -> None:
    with pytest.raises(TypeError, match="without calling it"):
        check_softmax(softmax_right(torch.zeros(3)))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="check_top_k"):
        check_top_k(None)  # type: ignore[arg-type]


def test_grader_messages_name_the_input_and_chain_the_error() -> None:
    with pytest.raises(AssertionError) as info:
        check_softmax(lambda z: z.no_such_method())
    assert "the logits [1, 2, 3]" in str(info.value)
    assert isinstance(info.value.__cause__, AttributeError)


def test_graders_live_in_one_module_per_notebook_and_are_all_exported() -> None:
    import vizwidgets.checks as checks

    modules = sorted(Path(checks.__file__).parent.glob("[!_]*.py"))  # the installed package
    exported = set()
    for path in modules:
        module = importlib.import_module(f"vizwidgets.checks.{path.stem}")
        exported |= set(module.__all__)
        assert all(name.startswith("check_") for name in module.__all__), path
    assert exported == set(checks.__all__)
    assert all(getattr(checks, name).__module__.startswith("vizwidgets.checks.") for name in exported)


@pytest.mark.parametrize("grader", [check_softmax, check_cam, check_riemann_ig, check_curve_area])
def test_feedback_hides_the_frames_of_every_grader_module(grader: Callable[..., None]) -> None:
    """Graders in different modules, and the shared harness between them and the learner's
    code: the rendering a notebook shows keeps the learner's frame and names no grader file."""

    def crashes(*args: object) -> object:
        return args[0].no_such_method()  # type: ignore[attr-defined]

    with pytest.raises(AssertionError) as info:
        grader(crashes)
    raw = "".join(traceback.format_exception(info.value)).replace(os.sep, "/")
    module_file = f"vizwidgets/checks/{grader.__module__.rsplit('.', 1)[1]}.py"
    assert "vizwidgets/checks/_harness.py" in raw and module_file in raw
    shown = "\n".join(info.value._render_traceback_())  # type: ignore[attr-defined]
    assert "args[0].no_such_method()" in shown and "AttributeError" in shown
    assert "vizwidgets" not in shown and "checks/" not in shown.replace(os.sep, "/"), shown


def _input_gradient_right(model, x, target):
    inputs = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(inputs)[torch.arange(len(target)), target].sum(), inputs)
    return grad


def _smooth_right(model, x, target, samples, noise, generator):
    sigma = noise * (x.max() - x.min())
    total = torch.zeros_like(x)
    for _ in range(samples):
        total += _input_gradient_right(model, x + torch.randn(x.shape, generator=generator) * sigma, target)
    return total / samples


def test_saliency_graders_accept_right_answers(capsys: pytest.CaptureFixture[str]) -> None:
    check_input_gradient(_input_gradient_right)
    check_saliency_map(lambda grad: grad.abs().max(dim=1).values)
    check_smoothgrad(_smooth_right)
    assert capsys.readouterr().out.count("Correct!") == 3


def _all_logits(model, x, target):
    inputs = x.detach().clone().requires_grad_(True)
    return torch.autograd.grad(model(inputs).sum(), inputs)[0]


def _probability(model, x, target):
    inputs = x.detach().clone().requires_grad_(True)
    return torch.autograd.grad(model(inputs).softmax(1)[torch.arange(len(target)), target].sum(), inputs)[0]


def _in_place(model, x, target):
    x += 1.0
    return _input_gradient_right(model, x, target)


@pytest.mark.parametrize(
    ("grader", "fn", "words"),
    [
        (check_input_gradient, _all_logits, "sum of all logits"),
        (check_input_gradient, _probability, "softmax probability"),
        (check_input_gradient, _in_place, "changed the images x"),
        (check_input_gradient, lambda model, x, target: model(x), "shape"),
        (check_saliency_map, lambda grad: grad.amax(dim=1), "absolute value"),
        (check_saliency_map, lambda grad: grad.abs().sum(dim=1), "not the sum"),
        (check_saliency_map, lambda grad: grad.abs().amax(dim=0), "dim=1"),
        (check_smoothgrad, lambda *a: _smooth_right(*a) * a[3], "divide the sum"),
        (check_smoothgrad, lambda m, x, t, s, n, g: _input_gradient_right(m, x, t), "plain gradient"),
    ],
)
def test_saliency_graders_reject_wrong_answers(grader, fn, words) -> None:
    with pytest.raises(AssertionError, match=words):
        grader(fn)


def _rules_right(grad, x, rule):
    masked = grad * (x > 0)
    return {"gradient": masked, "deconvnet": grad.clamp(min=0), "guided": masked.clamp(min=0)}[rule]


class _GuidedRight(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad.clamp(min=0) * (x > 0)


class _PlainBackward(_GuidedRight):
    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x > 0)


def test_guided_graders_accept_right_and_reject_wrong_answers(capsys: pytest.CaptureFixture[str]) -> None:
    check_rectifier_rules(_rules_right)
    check_guided_relu_function(_GuidedRight)
    assert capsys.readouterr().out.count("Correct!") == 2
    with pytest.raises(AssertionError, match="what the 'gradient' rule sends back"):
        check_rectifier_rules(lambda g, x, rule: g * (x > 0))
    with pytest.raises(AssertionError, match="(?s)backward pass of _PlainBackward is wrong.*'gradient' rule"):
        check_guided_relu_function(_PlainBackward)
    with pytest.raises(TypeError, match="subclass of torch.autograd.Function"):
        check_guided_relu_function(_GuidedRight.apply)  # type: ignore[arg-type]


def test_cam_graders_accept_right_and_reject_wrong_answers(capsys: pytest.CaptureFixture[str]) -> None:
    check_cam(lambda a, w, c: torch.einsum("k,nkhw->nhw", w[c], a))
    check_grad_cam(lambda a, g: torch.relu((g.mean(dim=(2, 3))[:, :, None, None] * a).sum(dim=1)))
    assert capsys.readouterr().out.count("Correct!") == 2
    with pytest.raises(AssertionError, match="no ReLU here"):
        check_cam(lambda a, w, c: torch.relu(torch.einsum("k,nkhw->nhw", w[c], a)))
    with pytest.raises(AssertionError, match="apply the ReLU at the end"):
        check_grad_cam(lambda a, g: (g.mean(dim=(2, 3))[:, :, None, None] * a).sum(dim=1))
    with pytest.raises(AssertionError, match="not the sum"):
        check_grad_cam(lambda a, g: torch.relu((g.sum(dim=(2, 3))[:, :, None, None] * a).sum(dim=1)))


def _riemann_right(model, x, baseline, target, steps, offset=0.5):
    alphas = [(k + offset) / steps for k in range(steps)]
    grads = sum(_input_gradient_right(model, baseline + a * (x - baseline), target) for a in alphas)
    return (x - baseline) * grads / steps


def test_ig_graders_accept_right_and_reject_wrong_answers(capsys: pytest.CaptureFixture[str]) -> None:
    check_riemann_ig(_riemann_right)

    def gap(model, x, baseline, target, attributions):
        with torch.no_grad():
            rows = torch.arange(len(target))
            return attributions.sum(dim=(1, 2, 3)) - (model(x)[rows, target] - model(baseline)[rows, target])

    check_completeness_gap(gap)
    assert capsys.readouterr().out.count("Correct!") == 2
    with pytest.raises(AssertionError, match="not k / steps"):
        check_riemann_ig(lambda m, x, b, t, s: _riemann_right(m, x, b, t, s, offset=0.0))
    with pytest.raises(AssertionError, match="not F\\(baseline\\) - F\\(x\\)"):
        check_completeness_gap(lambda m, x, b, t, a: gap(m, b, x, t, a))  # F(b) - F(x): the wrong sign


def _fgsm_right(model, x, target, epsilon, sign=-1.0):
    xg = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(model(xg), target, reduction="sum"), xg)
    return (x + sign * epsilon * grad.sign()).clamp(0, 1)


def test_fgsm_grader_accepts_right_and_rejects_wrong_answers(capsys: pytest.CaptureFixture[str]) -> None:
    check_fgsm_step(_fgsm_right)
    assert capsys.readouterr().out.startswith("Correct!")
    with pytest.raises(AssertionError, match="against"):
        check_fgsm_step(lambda m, x, t, e: _fgsm_right(m, x, t, e, sign=1.0))


def test_tv_gram_and_style_graders(capsys: pytest.CaptureFixture[str]) -> None:
    from vizwidgets._ops import total_variation
    from vizwidgets.synthesis import gram_matrix, style_loss

    check_total_variation(total_variation)
    check_gram_matrix(gram_matrix)
    check_style_loss(style_loss)
    assert capsys.readouterr().out.count("Correct!") == 3
    with pytest.raises(AssertionError, match="do not sum them"):
        check_total_variation(lambda x: total_variation(x) * (x.shape[2] - 1) * (x.shape[3] - 1))
    with pytest.raises(AssertionError, match="divide by the number of positions"):
        check_gram_matrix(lambda f: gram_matrix(f) * f.shape[2] * f.shape[3])
    with pytest.raises(AssertionError, match="divide by 4 C\\^2"):
        check_style_loss(lambda f, a: style_loss(f, a) * 4 * f.shape[1] ** 2)


def test_lrp_grader_accepts_the_packages_rule_and_rejects_wrong_ones(capsys: pytest.CaptureFixture[str]) -> None:
    def right(a, w, b, r, eps):
        z = a @ w.T + b
        return a * ((r / (z + eps * torch.where(z >= 0, 1.0, -1.0))) @ w)

    check_lrp_epsilon(right)
    assert capsys.readouterr().out.startswith("Correct!")
    with pytest.raises(AssertionError, match="multiply by the activations"):
        check_lrp_epsilon(lambda a, w, b, r, eps: right(a, w, b, r, eps) / a)
    with pytest.raises(AssertionError, match="z includes the bias"):
        check_lrp_epsilon(lambda a, w, b, r, eps: right(a, w, torch.zeros_like(b), r, eps))


def test_evaluation_graders(capsys: pytest.CaptureFixture[str]) -> None:
    from vizwidgets.metrics import pointing_game

    check_curve_area(lambda f, s: torch.trapezoid(s, f, dim=1))
    check_pointing_hit(lambda heat, box, tol: bool(pointing_game(heat[None, None], [box], tolerance=tol)[0]))
    assert capsys.readouterr().out.count("Correct!") == 2
    with pytest.raises(AssertionError, match="not only the left one"):
        check_curve_area(lambda f, s: (s[:, :-1] * (f[1:] - f[:-1])).sum(dim=1))
    with pytest.raises(AssertionError, match="expected False"):
        check_pointing_hit(lambda heat, box, tol: True)


# --- (d) the notebooks run ------------------------------------------------------------------

_BLOCK_NETWORK = '''import ipaddress as _ip, socket as _socket
_connect = _socket.socket.connect
def _local_only(self, address):
    if isinstance(address, tuple) and not (
        address[0] == "localhost" or _ip.ip_address(str(address[0]).split("%")[0]).is_loopback
    ):
        raise OSError(f"notebooks must not use the network (tried {address})")
    return _connect(self, address)
_socket.socket.connect = _local_only'''


def _execute(notebook: nbformat.NotebookNode, cwd: Path) -> nbformat.NotebookNode:
    """Run ``notebook`` in a kernel of this Python, offline, with the Agg backend.

    Cells tagged ``raises-exception`` may fail; any other error fails the run. The first cell
    blocks the network inside the kernel.
    """
    nbclient = pytest.importorskip("nbclient")
    ipykernel_spec = pytest.importorskip("ipykernel.kernelspec")
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    class ThisPython(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
            return KernelSpec(
                resource_dir=ipykernel_spec.RESOURCES, **ipykernel_spec.get_kernel_dict()
            )

    notebook = nbformat.from_dict(notebook)
    notebook.cells.insert(0, nbformat.v4.new_code_cell(_BLOCK_NETWORK))
    env = dict(os.environ)
    env["MPLBACKEND"] = "Agg"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    manager = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=ThisPython())
    client = nbclient.NotebookClient(
        notebook, km=manager, timeout=300, startup_timeout=120, allow_errors=False
    )
    try:
        # The client shuts down only kernels it created itself; this one is ours to stop.
        client.execute(cwd=str(cwd), env=env, cleanup_kc=True)
    finally:
        if manager.has_kernel:
            from jupyter_core.utils import run_sync

            run_sync(manager.shutdown_kernel)(now=True)
    return notebook


def _kernel_children() -> list[int]:
    """Process ids of the Jupyter kernels this test process started that are still alive."""
    alive = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
            )
            cmdline = (status.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(os.getpid()) and b"ipykernel" in cmdline:
            if fields.get("State", "").startswith("Z"):
                continue  # exited, waiting to be reaped: no memory held
            alive.append(int(status.parent.name))
    return alive


@pytest.fixture()
def no_kernel_left():
    """Fail the test if a kernel it started is still running when it ends."""
    if not Path("/proc/self/status").exists():
        pytest.skip("counting kernels needs /proc")
    before = set(_kernel_children())
    yield
    left = set(_kernel_children()) - before
    assert not left, f"the test left {len(left)} Jupyter kernel(s) running: {sorted(left)}"


# The solution notebooks as their test executed them: the outputs a learner who finished the
# exercises has in their notebooks, saved into the copies the learner run below starts from.
_SOLUTION_RUNS: dict[str, nbformat.NotebookNode] = {}


def _errors(cell: nbformat.NotebookNode) -> list[str]:
    return [o.ename for o in cell.get("outputs", []) if o.output_type == "error"]


# Each notebook runs once per form: the solution form here, the learner form under nbval in
# the learner run (``learner_run``), which both the per-notebook learner test and the "course
# tests pass" test read. All three share one xdist group, so that they run in one process in
# this order and the learner run finds the solution runs' outputs.
_ONE_RUN = pytest.mark.xdist_group("course_runs")


@pytest.mark.slow
@_ONE_RUN
@pytest.mark.usefixtures("no_kernel_left")
@pytest.mark.parametrize("script", SCRIPTS, ids=SCRIPT_IDS)
def test_solution_notebook_runs_without_error(script: Path) -> None:
    notebook = build_course.solution_notebook(script)
    assert not any("raises-exception" in c.metadata.get("tags", []) for c in notebook.cells)
    executed = _execute(notebook, cwd=ROOT / "course")
    _SOLUTION_RUNS[script.stem] = executed
    outputs = "".join(
        o.get("text", "") for c in executed.cells for o in c.get("outputs", [])
    )
    grader_cells = sum("check_" in c.source for c in executed.cells if "check" in c.metadata.get("tags", []))
    assert outputs.count("Correct!") == grader_cells


@pytest.mark.slow
@_ONE_RUN
@pytest.mark.usefixtures("no_kernel_left")
@pytest.mark.parametrize("script", SCRIPTS, ids=SCRIPT_IDS)
def test_learner_notebook_fails_only_where_exercises_are_unfinished(script: Path, learner_run: LearnerRun) -> None:
    learner = nbformat.read(build_course.learner_path(script), as_version=4)
    code = [cell for cell in learner.cells if cell.cell_type == "code"]
    ran = learner_run.cells.get(script.stem, [])
    # nbval ran every code cell of the learner notebook, in order, in one kernel
    assert [cell["source"] for cell in ran] == [cell.source for cell in code], learner_run.tail
    for cell in ran:
        errors, tags = cell["errors"], cell["tags"]
        if "raises-exception" in tags:
            # an exercise cell defines a function and raises only when it is called
            assert errors in ([], ["NotImplementedError"]), (cell["source"], errors)
            if "check" in tags:
                assert errors == ["NotImplementedError"], cell["source"]
        else:
            assert errors == [], (cell["source"], errors)


# --- (e) what a learner sees when a check fails ---------------------------------------------

_FEEDBACK_CELLS = [
    ("import torch\nfrom vizwidgets.checks import check_saliency_map, check_softmax", []),
    # a wrong answer: the sum over the channels instead of the maximum
    ("def saliency_map(grad):\n    return grad.abs().sum(dim=1)\n\ncheck_saliency_map(saliency_map)",
     ["raises-exception"]),
    # an exercise not started yet
    ('def softmax(logits):\n    raise NotImplementedError("Exercise: exponentiate, then divide")\n\n'
     "check_softmax(softmax)", ["raises-exception"]),
    # the learner's own code fails
    ("def softmax(logits):\n    return logits.no_such_method()\n\ncheck_softmax(softmax)",
     ["raises-exception"]),
]


@pytest.mark.usefixtures("no_kernel_left")
def test_failed_checks_show_the_hint_without_the_graders_code(tmp_path: Path) -> None:
    """In a real kernel, as JupyterLab shows it: the hint and the learner's own frames only.

    The grader's frames would print its source, and with it the reference answers (such as
    ``expected = grad.double().abs().amax(dim=1)``).
    """
    notebook = nbformat.v4.new_notebook()
    for source, tags in _FEEDBACK_CELLS:
        notebook.cells.append(nbformat.v4.new_code_cell(source, metadata={"tags": tags}))
    executed = _execute(notebook, cwd=tmp_path)
    shown = []
    for cell in executed.cells[2:]:
        (error,) = [o for o in cell.outputs if o.output_type == "error"]
        text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error.traceback))
        # no frame of any grader module (vizwidgets/checks/*.py): they hold the answers
        assert "checks.py" not in text and "vizwidgets/" not in text, text
        assert "checks/" not in text and "_harness" not in text, text
        assert "expected" not in text.replace("Expected", "").replace("expected (", ""), text
        assert len(text.splitlines()) <= 12, text
        shown.append((error.ename, text))
    (wrong_name, wrong), (todo_name, todo), (bug_name, bug) = shown
    assert wrong_name == "AssertionError"
    assert "not the sum" in wrong and "Hint:" in wrong
    assert "amax" not in wrong and "abs()" not in wrong  # nothing of the answer
    assert todo_name == "NotImplementedError"  # the placeholder's error, unchanged
    assert "Exercise: exponentiate" in todo
    assert bug_name == "AssertionError"
    assert "logits.no_such_method()" in bug and "AttributeError" in bug  # the learner's line


# --- (f) a learner runs every notebook in JupyterLab, then the tests --------------------------


def _saved_by_jupyterlab(executed: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``executed`` (without the network-blocking first cell) as JupyterLab 4 saves it: outputs
    and counts kept, nbformat 4.5 with cell ids, language info and the widget state."""
    notebook = nbformat.from_dict(executed)
    notebook.cells = notebook.cells[1:]
    notebook.nbformat_minor = 5
    for number, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{number:03d}"
    notebook.metadata["kernelspec"] = {
        "display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"
    }
    notebook.metadata["language_info"] = {"name": "python", "version": sys.version.split()[0]}
    notebook.metadata["widgets"] = {
        "application/vnd.jupyter.widget-state+json": {
            "state": {}, "version_major": 2, "version_minor": 0
        }
    }
    nbformat.validate(notebook)
    return notebook


# Records, in the copy's pytest run, what each notebook cell nbval ran produced: its source,
# tags and error names (nbval keeps a cell's outputs in ``item.test_outputs``).
_RECORDER = '''import json, os
from pathlib import Path
import pytest
_CELLS = []
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    yield
    if call.when == "call" and hasattr(item, "test_outputs") and hasattr(item, "cell"):
        _CELLS.append({
            "notebook": Path(str(item.fspath)).stem, "source": item.cell.source,
            "tags": list(item.cell.metadata.get("tags", [])),
            "errors": [o["ename"] for o in (item.test_outputs or []) if "ename" in o],
        })
def pytest_sessionfinish(session):
    Path(os.environ["VIZWIDGETS_CELL_RECORD"]).write_text(json.dumps(_CELLS))
'''


class LearnerRun:
    """The course tests run by a learner in a copy of the project (see ``learner_run``)."""

    def __init__(self, returncode: int, output: str, report: Path, cells: list[dict]) -> None:
        self.returncode = returncode
        self.tail = output[-4000:]
        self.report = report
        self.cells: dict[str, list[dict]] = {}
        for cell in cells:
            self.cells.setdefault(cell["notebook"], []).append(cell)


def _with_outputs_of(learner: nbformat.NotebookNode, solved: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The learner notebook holding the outputs of the executed solution notebook ``solved``
    (whose first cell is the network block), cell by cell: what a learner who finished the
    exercises sees, with their own sources."""
    notebook = nbformat.from_dict(learner)
    notebook.cells.insert(0, nbformat.from_dict(solved.cells[0]))
    assert len(notebook.cells) == len(solved.cells), "learner and solution notebooks differ in cells"
    for cell, done in zip(notebook.cells, solved.cells):
        if cell.cell_type == "code":
            cell.outputs = done.outputs
            cell.execution_count = done.execution_count
    return notebook


@pytest.fixture(scope="session")
def learner_run(tmp_path_factory: pytest.TempPathFactory) -> LearnerRun:
    """A learner's course folder, run by the course's own tests (nbval included).

    Every learner notebook is saved as JupyterLab 4 saves it, holding the outputs a learner
    has after the course (those of this run's solution notebooks: executed here when they did
    not run), in a copy of the project, so the real ``course/`` is never touched. Then
    ``pytest tests/test_course.py course/`` runs there: nbval executes each learner notebook
    cell by cell, which is the learner form's one run; a small plugin records each cell's
    errors for ``test_learner_notebook_fails_only_where_exercises_are_unfinished``. The
    kernels are offline, as in ``_execute`` (an IPython startup file blocks the network).
    """
    import shutil
    import subprocess

    tmp_path = tmp_path_factory.mktemp("learner")
    copy = tmp_path / "project"
    for part in ("tools", "solutions", "course"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "tests").mkdir()
    for name in ("conftest.py", "test_course.py", "_tools.py"):
        shutil.copy2(ROOT / "tests" / name, copy / "tests" / name)
    shutil.copy2(ROOT / "pyproject.toml", copy / "pyproject.toml")
    (copy / "conftest.py").write_text(_RECORDER)
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-offline.py").write_text(_BLOCK_NETWORK + "\n")

    saved_outputs = 0
    for script in SCRIPTS:
        target = copy / "course" / f"{script.stem}.ipynb"
        solved = _SOLUTION_RUNS.get(script.stem)
        if solved is None:  # the solution test did not run in this process
            solved = _execute(build_course.solution_notebook(script), cwd=ROOT / "course")
        notebook = _saved_by_jupyterlab(_with_outputs_of(nbformat.read(target, as_version=4), solved))
        saved_outputs += sum(len(c.get("outputs", [])) for c in notebook.cells)
        nbformat.write(notebook, target)
    assert saved_outputs > 50  # the copies really hold a learner's run

    record = tmp_path / "cells.json"
    report = tmp_path / "report.xml"
    env = dict(os.environ, MPLBACKEND="Agg", IPYTHONDIR=str(tmp_path / "ipython"), VIZWIDGETS_CELL_RECORD=str(record))
    env.pop("PYTEST_XDIST_WORKER", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", "-m", "not slow",
         f"--junit-xml={report}", "tests/test_course.py", "course/"],
        cwd=copy, env=env, capture_output=True, text=True, timeout=1800,
    )
    cells = json.loads(record.read_text()) if record.exists() else []
    return LearnerRun(result.returncode, result.stdout + result.stderr, report, cells)


@pytest.mark.slow
@_ONE_RUN
def test_course_tests_pass_after_a_learner_ran_every_notebook(learner_run: LearnerRun) -> None:
    """The course's tests (nbval included) pass in a course folder a learner has used: every
    notebook executed and saved with its outputs, cell ids and widget state."""
    assert learner_run.returncode == 0, learner_run.tail

    import xml.etree.ElementTree as ET

    cases = ET.parse(learner_run.report).getroot().iter("testcase")
    ran: dict[str, int] = {}
    for case in cases:
        assert case.find("skipped") is None or "course" not in case.get("classname", "")
        where = case.get("classname", "") + "::" + case.get("name", "")
        match = re.search(r"(\d\d_\w+)\.ipynb", where)
        if match:
            ran[match.group(1)] = ran.get(match.group(1), 0) + 1
    # nbval ran every saved notebook, cell by cell
    assert sorted(ran) == SCRIPT_IDS, ran
    assert all(count >= 5 for count in ran.values()), ran
