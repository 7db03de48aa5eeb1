"""Generate the learner notebooks ``course/NN_topic.ipynb`` from ``solutions/NN_topic.py``.

The percent scripts in ``solutions/`` are the only source of the course: complete, runnable
notebooks written in jupytext's percent format (``# %%`` starts a code cell,
``# %% [markdown]`` a markdown cell). This script turns each one into the learner version.

Conventions
-----------
Exercise regions
    Inside a code cell, the lines from ``# BEGIN SOLUTION`` to ``# END SOLUTION`` (markers
    included) are replaced by two lines, at the indentation of the ``BEGIN`` marker::

        # YOUR CODE HERE
        raise NotImplementedError("Exercise: <hint>")

    The hint is whatever follows the marker (``# BEGIN SOLUTION write softmax``); without
    one it is "replace this line with your code". A cell may hold several regions; regions
    cannot nest. The cell gets the tag ``raises-exception``, so that nbval accepts the
    placeholder's exception. Put the solution inside a function body, so that the learner's
    cell defines a function and raises only once it is called.
Cells tagged ``check``
    A cell that runs the learner's exercise code (a grader ``check_...(...)``, or code that
    uses the learner's function) is tagged ``check`` in the percent script
    (``# %% tags=["check"]``). In the learner version it also gets ``raises-exception``: it
    raises ``NotImplementedError`` until the exercise is done. A code cell that calls a
    ``check_...`` function without the tag is an error, and so is a ``check`` cell before
    the first exercise.
Cells tagged ``solution-only``
    Left out of the learner version (e.g. a cell that shows what the solution does).
Everything else
    Copied unchanged. Imports belong in ordinary cells near the top, never only in solution
    regions, so that the learner version runs.

Output
------
The notebooks have no outputs or execution counts, no cell ids (``nbformat_minor`` 4) and
only the cell metadata written in the script (``tags``); the notebook metadata is the
``python3`` kernelspec. They are written with ``nbformat.write``, so the same script always
gives the same bytes and diffs stay quiet.

Usage
-----
::

    python tools/build_course.py                 # (re)write every course/NN_topic.ipynb
    python tools/build_course.py solutions/00_welcome.py   # only these
    python tools/build_course.py --check         # exit 1 listing notebooks out of date
    python tools/build_course.py --solutions-out build/solutions   # also the full versions

``--solutions-out DIR`` writes the complete notebooks (same cleaning, no exercise
rewriting) to ``DIR``, e.g. to run them with ``pytest --nbval-lax``.

Tests import :func:`build_notebook` (one learner notebook) and :func:`out_of_date`.

Running a notebook and saving it (as JupyterLab does) adds outputs, execution counts, cell ids
and metadata; none of that is the generator's, so :func:`out_of_date` and ``--check`` compare
only what it controls (:func:`generated_content`: each cell's type, source and tags, and the
kernel), and a course that learners have run stays up to date. Learners should still work in
copies (``python -m vizwidgets course`` makes them), so the originals stay clean.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import jupytext
import nbformat
from nbformat import NotebookNode

__all__ = [
    "BEGIN",
    "END",
    "CHECK_TAG",
    "SOLUTION_ONLY_TAG",
    "RAISES_TAG",
    "CourseBuildError",
    "build_notebook",
    "solution_notebook",
    "learner_path",
    "solution_scripts",
    "notebook_text",
    "generated_content",
    "out_of_date",
    "main",
]

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS_DIR = ROOT / "solutions"
COURSE_DIR = ROOT / "course"

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
CHECK_TAG = "check"
SOLUTION_ONLY_TAG = "solution-only"
RAISES_TAG = "raises-exception"
PLACEHOLDER = "# YOUR CODE HERE"
DEFAULT_HINT = "replace this line with your code"

SCRIPT_NAME = re.compile(r"^\d{2}_[A-Za-z0-9_]+\.py$")
NOTEBOOK_NAME = re.compile(r"^\d{2}_[A-Za-z0-9_]+\.ipynb$")
GRADER_CALL = re.compile(r"\bcheck_\w+\s*\(")

KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
# Cell metadata jupytext adds for its own round trip; not part of the course.
_JUPYTEXT_CELL_KEYS = {"lines_to_next_cell", "lines_to_end_of_cell_marker", "cell_marker"}


class CourseBuildError(ValueError):
    """A solution script breaks the conventions; the message names the file and cell."""


# ---------------------------------------------------------------------------------------------
# One notebook
# ---------------------------------------------------------------------------------------------


def _read_script(path: Path) -> NotebookNode:
    """Read a percent script and normalise what does not come from its text."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no solution script at {_shown(path)}")
    notebook = jupytext.read(path, fmt="py:percent")
    notebook.nbformat, notebook.nbformat_minor = 4, 4
    notebook.metadata = NotebookNode(
        kernelspec=NotebookNode(KERNELSPEC), language_info=NotebookNode(name="python")
    )
    for index, cell in enumerate(notebook.cells):
        cell.pop("id", None)
        metadata = {k: v for k, v in cell.metadata.items() if k not in _JUPYTEXT_CELL_KEYS}
        if "incorrectly_encoded_metadata" in metadata:
            raise CourseBuildError(
                f"{_shown(path)}, cell {index + 1}: jupytext could not read the cell's metadata "
                f"{metadata['incorrectly_encoded_metadata']!r}; write tags as "
                '# %% tags=["check"]'
            )
        cell.metadata = NotebookNode(metadata)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return notebook


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it, for messages."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _tags(cell: NotebookNode) -> list[str]:
    tags = cell.metadata.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise CourseBuildError(f"cell tags must be a list of strings, got {tags!r}")
    return tags


def _add_tag(cell: NotebookNode, tag: str) -> None:
    tags = _tags(cell)
    if tag not in tags:
        cell.metadata["tags"] = [*tags, tag]


def _strip_exercises(source: str, where: str) -> tuple[str, int]:
    """Replace each BEGIN/END SOLUTION region by the placeholder; return (source, regions)."""
    lines = source.split("\n")
    out: list[str] = []
    regions = 0
    inside_from: int | None = None
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            if inside_from is not None:
                raise CourseBuildError(
                    f"{where}, line {number}: {BEGIN} inside the region opened on line "
                    f"{inside_from}; close it with {END} first (regions cannot nest)"
                )
            inside_from = number
            indent = line[: len(line) - len(line.lstrip())]
            hint = stripped[len(BEGIN):].strip().lstrip(":").strip() or DEFAULT_HINT
            message = f"Exercise: {hint}".replace("\\", "\\\\").replace('"', '\\"')
            out.append(f"{indent}{PLACEHOLDER}")
            out.append(f'{indent}raise NotImplementedError("{message}")')
            regions += 1
        elif stripped.startswith(END):
            if inside_from is None:
                raise CourseBuildError(f"{where}, line {number}: {END} without a {BEGIN} before it")
            inside_from = None
        elif inside_from is None:
            out.append(line)
    if inside_from is not None:
        raise CourseBuildError(f"{where}, line {inside_from}: {BEGIN} is never closed by {END}")
    return "\n".join(out), regions


def _learner_cells(notebook: NotebookNode, path: Path) -> list[NotebookNode]:
    cells: list[NotebookNode] = []
    exercises_seen = 0
    for index, cell in enumerate(notebook.cells):
        where = f"{_shown(path)}, cell {index + 1}"
        tags = _tags(cell)
        if SOLUTION_ONLY_TAG in tags:
            continue
        if cell.cell_type != "code":
            if CHECK_TAG in tags:
                raise CourseBuildError(f"{where}: only code cells can be tagged {CHECK_TAG!r}")
            cells.append(cell)
            continue
        source, regions = _strip_exercises(cell.source, where)
        if regions:
            exercises_seen += regions
            cell.source = source
            _add_tag(cell, RAISES_TAG)
        if CHECK_TAG in tags:
            if not exercises_seen:
                raise CourseBuildError(
                    f"{where}: tagged {CHECK_TAG!r} but no exercise ({BEGIN}) comes before it"
                )
            _add_tag(cell, RAISES_TAG)
        elif GRADER_CALL.search(source) and not regions:
            raise CourseBuildError(
                f"{where}: calls a check_... grader but is not tagged {CHECK_TAG!r}; start the "
                f'cell with # %% tags=["{CHECK_TAG}"] so the learner version may raise'
            )
        cells.append(cell)
    return cells


def build_notebook(path: str | Path) -> NotebookNode:
    """The learner notebook for the solution script at ``path`` (see the module docstring).

    Raises ``FileNotFoundError`` if there is no such file and :class:`CourseBuildError` if
    the script breaks the conventions.
    """
    path = Path(path)
    notebook = _read_script(path)
    notebook.cells = _learner_cells(notebook, path)
    nbformat.validate(notebook)
    return notebook


def solution_notebook(path: str | Path) -> NotebookNode:
    """The complete notebook for the solution script at ``path``: every cell, solutions in.

    Cleaned like :func:`build_notebook` (no outputs, ids or jupytext metadata), and checked
    against the same conventions.
    """
    path = Path(path)
    build_notebook(path)  # raises on broken conventions
    notebook = _read_script(path)
    nbformat.validate(notebook)
    return notebook


def generated_content(notebook: NotebookNode) -> list[tuple[str, str, tuple[str, ...]]]:
    """What the generator controls in ``notebook``: the kernel, then each cell's type, source
    and tags.

    Outputs, execution counts, cell ids, ``nbformat_minor`` and any other metadata that Jupyter
    adds when someone runs and saves the notebook are left out.
    """
    kernel = str(notebook.metadata.get("kernelspec", {}).get("name", ""))
    return [("kernel", kernel, ())] + [
        (cell.cell_type, cell.source, tuple(_tags(cell))) for cell in notebook.cells
    ]


def notebook_text(notebook: NotebookNode) -> str:
    """The exact text ``nbformat.write`` puts in a file for ``notebook``."""
    text = nbformat.writes(copy.deepcopy(notebook))
    return text if text.endswith("\n") else text + "\n"


# ---------------------------------------------------------------------------------------------
# The whole course
# ---------------------------------------------------------------------------------------------


def solution_scripts(solutions_dir: str | Path = SOLUTIONS_DIR) -> list[Path]:
    """The ``NN_topic.py`` scripts in ``solutions_dir``, in course order."""
    return sorted(p for p in Path(solutions_dir).glob("*.py") if SCRIPT_NAME.match(p.name))


def learner_path(script: str | Path, course_dir: str | Path = COURSE_DIR) -> Path:
    """Where the learner notebook for ``script`` goes: ``course/NN_topic.ipynb``."""
    return Path(course_dir) / (Path(script).stem + ".ipynb")


def out_of_date(
    solutions_dir: str | Path = SOLUTIONS_DIR, course_dir: str | Path = COURSE_DIR
) -> list[str]:
    """Problems that make ``course_dir`` differ from what the scripts generate, one a line.

    Empty when every ``course/NN_topic.ipynb`` holds what its script gives (compared by
    :func:`generated_content`, so a notebook that was run and saved still counts) and no
    notebook is left without a script.
    """
    problems: list[str] = []
    scripts = solution_scripts(solutions_dir)
    for script in scripts:
        target = learner_path(script, course_dir)
        expected = generated_content(build_notebook(script))
        if not target.is_file():
            problems.append(f"{_shown(target)}: missing (generate it from {_shown(script)})")
            continue
        try:
            found = generated_content(nbformat.read(target, as_version=4))
        except Exception:  # not JSON, not a notebook: it differs, whatever it holds
            found = None
        if found != expected:
            problems.append(f"{_shown(target)}: differs from what {_shown(script)} generates")
    wanted = {learner_path(s, course_dir).name for s in scripts}
    for notebook in sorted(Path(course_dir).glob("*.ipynb")):
        if NOTEBOOK_NAME.match(notebook.name) and notebook.name not in wanted:
            problems.append(
                f"{_shown(notebook)}: no solutions/{notebook.stem}.py generates it (delete it, or "
                "restore its script)"
            )
    return problems


def _write(notebook: NotebookNode, target: Path) -> bool:
    """Write ``notebook`` to ``target`` unless it already holds exactly that; True if written."""
    text = notebook_text(notebook)
    if target.is_file() and target.read_text(encoding="utf-8") == text:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(copy.deepcopy(notebook), target)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        description="Generate the learner notebooks course/NN_topic.ipynb from the percent "
        "scripts solutions/NN_topic.py.",
    )
    parser.add_argument(
        "scripts", nargs="*", type=Path,
        help="solution scripts to build (default: every solutions/NN_topic.py)",
    )
    parser.add_argument(
        "--check", action="store_true",
        help="write nothing; exit 1 listing the notebooks that are out of date",
    )
    parser.add_argument("--solutions", type=Path, default=SOLUTIONS_DIR, help="scripts folder")
    parser.add_argument("--course", type=Path, default=COURSE_DIR, help="notebooks folder")
    parser.add_argument(
        "--solutions-out", type=Path, default=None, metavar="DIR",
        help="also write the complete (solution) notebooks to DIR",
    )
    args = parser.parse_args(argv)

    try:
        if args.check:
            problems = out_of_date(args.solutions, args.course)
            if problems:
                print("Learner notebooks out of date:", file=sys.stderr)
                for problem in problems:
                    print(f"  {problem}", file=sys.stderr)
                print("Run: python tools/build_course.py", file=sys.stderr)
                return 1
            count = len(solution_scripts(args.solutions))
            print(f"Learner notebooks up to date ({count} in {_shown(args.course)}).")
            return 0

        scripts = args.scripts or solution_scripts(args.solutions)
        if not scripts:
            print(f"No NN_topic.py scripts in {args.solutions}", file=sys.stderr)
            return 1
        for script in scripts:
            target = learner_path(script, args.course)
            written = _write(build_notebook(script), target)
            print(f"{'wrote' if written else 'unchanged'} {_shown(target)}")
            if args.solutions_out is not None:
                full = learner_path(script, args.solutions_out)
                written = _write(solution_notebook(script), full)
                print(f"{'wrote' if written else 'unchanged'} {_shown(full)}")
    except (CourseBuildError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
