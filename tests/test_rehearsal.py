"""The workshop rehearsal (``tools/rehearse.py``) on a real JupyterHub: three learners log in
through the hub's form and run ``course/00_welcome.ipynb`` at once in their own single-user
servers; every learner finishes without unexpected errors, its figures are there, the run stays
within its bound, and no hub, proxy, server or kernel is left running afterwards.

Needs ``jupyterhub`` (pip) and configurable-http-proxy (``npm ci --prefix tools/hub``). Without
them the test is skipped, unless ``VIZWIDGETS_REQUIRE_HUB=1`` (set by ``.ci/run``) makes it fail.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

try:
    import psutil
except ImportError:  # reported by _missing()
    psutil = None

REPO = Path(__file__).resolve().parent.parent
TOOL = REPO / "tools" / "rehearse.py"
PROXY = REPO / "tools" / "hub" / "node_modules" / ".bin" / "configurable-http-proxy"
REQUIRED = os.environ.get("VIZWIDGETS_REQUIRE_HUB") == "1"
LEARNERS = 3
#: the rehearsal's own bound, and the test's (about 30 s on a 2-core machine)
TIMEOUT = 300


def _missing() -> str | None:
    if psutil is None:
        return "psutil is not installed (pip install -e '.[hub]')"
    if importlib.util.find_spec("jupyterhub") is None:
        return "jupyterhub is not installed (pip install -e '.[hub]')"
    if not os.access(PROXY, os.X_OK):
        return f"configurable-http-proxy is not installed at {PROXY} (npm ci --prefix tools/hub)"
    return None


def _mentioning(text: str) -> list[str]:
    """Live processes whose command line or environment contains ``text``."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        try:
            if text in " ".join(process.info["cmdline"] or ()) or any(text in v for v in process.environ().values()):
                found.append(f"{process.pid}: {' '.join(process.info['cmdline'] or ())[:200]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


@pytest.mark.slow
def test_three_learners_run_a_notebook_on_a_real_hub_and_nothing_is_left(tmp_path: Path) -> None:
    problem = _missing()
    if problem is not None:
        if REQUIRED:
            pytest.fail(f"the hub rehearsal is required here (VIZWIDGETS_REQUIRE_HUB=1) but {problem}")
        pytest.skip(problem)
    workdir = tmp_path / "hub"
    report_path = tmp_path / "rehearsal.json"
    markdown = tmp_path / "GUIDE.md"
    markdown.write_text("# Guide\n\nbefore\n<!-- rehearsal -->\nold figures\n<!-- /rehearsal -->\nafter\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("JUPYTERHUB_")}
    began = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, str(TOOL), "--learners", str(LEARNERS), "--notebook", "course/00_welcome.ipynb",
             "--timeout", str(TIMEOUT), "--workdir", str(workdir), "--json", str(report_path),
             "--write", str(markdown)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT + 60,
        )
        elapsed = time.monotonic() - began
        log = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-6000:]}"
        assert done.returncode == 0, log
        assert elapsed < TIMEOUT, log
        report = json.loads(report_path.read_text())
        assert report["ok"] and report["workdir"] == str(workdir.resolve())
        assert report["elapsed_seconds"] <= TIMEOUT
        learners = report["learners"]
        assert [learner["name"] for learner in learners] == [f"learner-{i}" for i in range(1, LEARNERS + 1)]
        for learner in learners:
            assert learner["login"] == "form", learner
            assert learner["errors"] == [] and learner["ok"], learner
            assert learner["cells_run"] == learner["cells"] > 0, learner
            assert learner["expected_errors"] > 0, learner  # the exercises' NotImplementedError, allowed
            assert learner["peak_memory_mib"] > 50, learner  # a kernel that imported PyTorch
            assert learner["cpu_seconds"] > 0, learner
            assert learner["first_picture_seconds"] is not None and learner["first_picture_seconds"] > 0, learner
            assert learner["run_seconds"] >= learner["first_picture_seconds"], learner
        summary = report["summary"]
        assert summary["max_peak_memory_mib"] == max(learner["peak_memory_mib"] for learner in learners)
        assert summary["learners_per_gb"] == pytest.approx(1024 / summary["max_peak_memory_mib"], rel=0.01)
        assert summary["learners_per_core"] == pytest.approx(
            summary["burst_seconds"] / summary["mean_cpu_seconds"], rel=0.01)
        assert report["stragglers"] == [], "the rehearsal had to kill processes it had started"
        assert len(report["processes"]) >= LEARNERS * 2 + 1  # the hub, and each learner's server and kernel
        text = markdown.read_text()
        assert text.startswith("# Guide\n\nbefore\n<!-- rehearsal -->\n")
        assert text.endswith("<!-- /rehearsal -->\nafter\n")
        assert "old figures" not in text and "--learners 3 --notebook course/00_welcome.ipynb" in text
        assert "| learner-3 |" in text
        for name in ("jupyterhub.sqlite", "jupyterhub_cookie_secret"):
            assert (workdir / name).exists(), name
        assert (workdir / "home" / "learner-1" / "00_welcome.ipynb").exists()
    finally:
        left = _mentioning(str(workdir))
        recorded = json.loads(report_path.read_text())["processes"] if report_path.exists() else []
        alive = [entry for entry in recorded if _same_process_alive(entry["pid"], entry["create_time"])]
        for pid in {int(entry.split(":")[0]) for entry in left} | {entry["pid"] for entry in alive}:
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
    assert not left, f"processes left running: {left}"
    assert not alive, f"recorded processes left running: {alive}"


def _same_process_alive(pid: int, create_time: float) -> bool:
    """Whether the process ``pid`` that started at ``create_time`` still runs (not a reused pid)."""
    try:
        process = psutil.Process(pid)
        return abs(process.create_time() - create_time) < 0.01 and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
