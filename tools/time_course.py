"""Time every course notebook as a learner would run it, and fail when one is too slow.

Each notebook runs in a fresh Jupyter kernel of this Python (``nbclient``, the Agg backend,
working directory ``course/``), timed from the kernel's start to the end of its last cell
(what a learner waits for; stopping the kernel afterwards is not counted), in two versions:

``solution``
    the complete notebook generated from ``solutions/NN_topic.py`` (written to a folder, as
    ``python tools/build_course.py --solutions-out DIR`` writes it), every exercise solved;
``learner``
    the committed ``course/NN_topic.ipynb``, exercises unsolved: cells tagged
    ``raises-exception`` may fail (nbclient goes on past them), any other error is reported.

It prints one row per notebook and version with the seconds it took, and with ``--cells N``
the N slowest cells of each run. It exits 1 when a run takes longer than ``--limit`` seconds
(90 by default) or fails with an error outside a ``raises-exception`` cell.

Usage
-----
::

    python tools/time_course.py                      # every notebook, both versions
    python tools/time_course.py 04 06                # only the notebooks whose name has 04 or 06
    python tools/time_course.py --only solution --cells 5
    python tools/time_course.py --limit 60 --solutions-out build/solutions

Times depend on the machine and on what else runs on it: the course's figures come from a
2-core CPU with nothing else running. Run twice when a number looks off.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import nbformat

ROOT = Path(__file__).resolve().parent.parent
COURSE_DIR = ROOT / "course"
SOLUTIONS_DIR = ROOT / "solutions"
DEFAULT_LIMIT = 90.0
VERSIONS = ("solution", "learner")

__all__ = ["Run", "time_notebook", "main"]


@dataclass
class Run:
    """One notebook run: its name, version, seconds from kernel start to the end, cells."""

    name: str
    version: str
    seconds: float
    error: str | None = None
    cells: list[tuple[float, int, str]] = field(default_factory=list)  # (seconds, index, first line)


def _build_course() -> ModuleType:
    path = ROOT / "tools" / "build_course.py"
    spec = importlib.util.spec_from_file_location("build_course", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("build_course", module)
    spec.loader.exec_module(module)
    return module


def _timestamp(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _cell_seconds(cell: nbformat.NotebookNode) -> float | None:
    """The seconds a cell ran, from the timestamps nbclient records in its metadata."""
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not start or not end:
        return None
    return (_timestamp(end) - _timestamp(start)).total_seconds()


def _last_reply(notebook: nbformat.NotebookNode) -> dt.datetime | None:
    """When the kernel answered the last executed cell (nbclient's recorded timestamps)."""
    replies = [
        _timestamp(cell.metadata["execution"]["shell.execute_reply"])
        for cell in notebook.cells
        if cell.cell_type == "code" and cell.get("metadata", {}).get("execution", {}).get("shell.execute_reply")
    ]
    return max(replies, default=None)


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip():
            return line.strip()[:60]
    return ""


def time_notebook(path: Path, version: str, timeout: float = 600.0) -> Run:
    """Execute the notebook at ``path`` in a fresh kernel of this Python; time it."""
    import nbclient
    from ipykernel import kernelspec as ipykernel_spec
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync

    class ThisPython(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
            return KernelSpec(
                resource_dir=ipykernel_spec.RESOURCES, **ipykernel_spec.get_kernel_dict()
            )

    notebook = nbformat.read(path, as_version=4)
    env = dict(os.environ)
    env["MPLBACKEND"] = "Agg"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    manager = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=ThisPython())
    client = nbclient.NotebookClient(
        notebook, km=manager, timeout=timeout, startup_timeout=120, allow_errors=False,
        record_timing=True,
    )
    error = None
    started = dt.datetime.now(dt.timezone.utc)
    start = time.perf_counter()
    try:
        client.execute(cwd=str(COURSE_DIR), env=env, cleanup_kc=True)
    except Exception as exc:  # a failed cell or a timeout: report it, time what ran
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
    finally:
        ended = time.perf_counter()  # the kernel's shutdown is not the learner's wait
        if manager.has_kernel:
            run_sync(manager.shutdown_kernel)(now=True)
    last = _last_reply(notebook)
    seconds = (last - started).total_seconds() if last is not None else ended - start
    cells = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            took = _cell_seconds(cell)
            if took is not None:
                cells.append((took, index, _first_line(cell.source)))
    cells.sort(reverse=True)
    return Run(path.stem, version, seconds, error, cells)


def _selected(scripts: list[Path], names: Sequence[str]) -> list[Path]:
    if not names:
        return scripts
    return [s for s in scripts if any(name in s.stem for name in names)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run the course notebooks and print the seconds each takes.",
    )
    parser.add_argument("names", nargs="*", help="only notebooks whose name contains one of these")
    parser.add_argument(
        "--limit", type=float, default=DEFAULT_LIMIT,
        help=f"exit 1 when a notebook takes longer (seconds, default {DEFAULT_LIMIT:g})",
    )
    parser.add_argument(
        "--only", choices=VERSIONS, help="run only the solution or only the learner notebooks"
    )
    parser.add_argument("--cells", type=int, default=0, metavar="N", help="show the N slowest cells")
    parser.add_argument(
        "--solutions-out", type=Path, default=None, metavar="DIR",
        help="where to write the solution notebooks (default: a temporary folder)",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="per-cell timeout, seconds")
    args = parser.parse_args(argv)

    build_course = _build_course()
    scripts = _selected(build_course.solution_scripts(SOLUTIONS_DIR), args.names)
    if not scripts:
        print(f"no notebook matches {args.names}", file=sys.stderr)
        return 2
    versions = [args.only] if args.only else list(VERSIONS)

    with tempfile.TemporaryDirectory(prefix="time-course-") as tmp:
        solutions_out = args.solutions_out or Path(tmp)
        solutions_out.mkdir(parents=True, exist_ok=True)
        jobs: list[tuple[Path, str]] = []
        for script in scripts:
            if "solution" in versions:
                target = solutions_out / f"{script.stem}.ipynb"
                nbformat.write(build_course.solution_notebook(script), target)
                jobs.append((target, "solution"))
            if "learner" in versions:
                jobs.append((build_course.learner_path(script, COURSE_DIR), "learner"))

        runs: list[Run] = []
        print(f"{'notebook':<28} {'version':<9} {'seconds':>8}  status", flush=True)
        for path, version in jobs:
            run = time_notebook(path, version, timeout=args.timeout)
            runs.append(run)
            status = "ok" if run.error is None else run.error
            if run.error is None and run.seconds > args.limit:
                status = f"over the limit of {args.limit:g} s"
            print(f"{run.name:<28} {version:<9} {run.seconds:8.1f}  {status}", flush=True)
            for took, index, line in run.cells[: args.cells]:
                print(f"    cell {index:>3} {took:7.1f} s  {line}", flush=True)

    slow = [r for r in runs if r.seconds > args.limit]
    failed = [r for r in runs if r.error is not None]
    print(
        f"{len(runs)} runs, {sum(r.seconds for r in runs):.0f} s in all; "
        f"slowest {max(runs, key=lambda r: r.seconds).name} "
        f"({max(r.seconds for r in runs):.1f} s); limit {args.limit:g} s"
    )
    if slow or failed:
        for run in slow:
            print(f"TOO SLOW: {run.name} ({run.version}) {run.seconds:.1f} s", file=sys.stderr)
        for run in failed:
            print(f"FAILED: {run.name} ({run.version}) {run.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
