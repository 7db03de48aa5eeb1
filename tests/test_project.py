"""The project's own promises: set-up files agree with each other and with the README."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml

from _tools import load_tool

ROOT = Path(__file__).resolve().parents[1]



def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.mark.parametrize(
    "command",
    [("ruff", "check", "vizwidgets", "tests", "tools", "benchmarks"), ("mypy",)],
    ids=["ruff", "mypy"],
)
def test_ruff_and_mypy_pass(command: tuple[str, ...]) -> None:
    """The lint rules and type checks configured in pyproject.toml hold, run as CI runs them."""
    module = command[0]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (it is in the 'test' extra: pip install -e .[test])")
    done = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (
        f"python -m {' '.join(command)} exited with {done.returncode}:\n{done.stdout}{done.stderr}"
    )


def test_the_lock_binder_environment_and_pyproject_agree() -> None:
    assert load_tool("lock").disagreements(ROOT) == []


@pytest.mark.parametrize(("path", "old", "new", "words"), [
    ("binder/requirements.txt", "\ntorch==2.14.1\n", "\ntorch==2.14.0\n",
     "binder/requirements.txt has torch 2.14.0, requirements.lock 2.14.1"),
    ("requirements.lock", "\nnumpy==", "\nnumpy==1.",
     "binder/requirements.txt has numpy"),
    ("pyproject.toml", '"ipywidgets>=8,<9"', '"ipywidgets>=9"', "outside pyproject.toml's ipywidgets>=9"),
    ("environment.yml", "  - anywidget>=0.9\n", "  - anywidget>=1.5\n", "environment.yml asks anywidget>=1.5"),
    ("binder/runtime.txt", "python-3.11", "python-3.12", "binder/runtime.txt says 'python-3.12'"),
    ("binder/requirements.txt", "--extra-index-url https://download.pytorch.org/whl/cpu\n", "",
     "does not take PyTorch from"),
])
def test_the_agreement_check_fails_when_one_file_changes(tmp_path: Path, path: str, old: str, new: str,
                                                         words: str) -> None:
    """A version changed in one file (a copy of the project's files) is named by the check."""
    for name in ("requirements.lock", "binder/requirements.txt", "binder/runtime.txt", "environment.yml",
                 "pyproject.toml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text((ROOT / name).read_text())
    text = (tmp_path / path).read_text()
    assert old in text
    (tmp_path / path).write_text(text.replace(old, new, 1))
    problems = load_tool("lock").disagreements(tmp_path)
    assert any(words in p for p in problems), problems


def test_binder_start_sets_threads_from_the_cpu_quota_and_hands_over(tmp_path: Path) -> None:
    start = ROOT / "binder" / "start"
    assert os.access(start, os.X_OK) and os.access(ROOT / "binder" / "postBuild", os.X_OK)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    env["VIZWIDGETS_CGROUP_ROOT"] = str(tmp_path)
    show = [str(start), "sh", "-c", 'echo "$OMP_NUM_THREADS $MKL_NUM_THREADS $OPENBLAS_NUM_THREADS $PPID"']
    for quota, threads in [("250000 100000", "2"), ("50000 100000", "1"), ("400000 100000", "4")]:
        (tmp_path / "cpu.max").write_text(quota + "\n")
        done = subprocess.run(show, env=env, capture_output=True, text=True, check=True)
        *counts, parent = done.stdout.split()
        assert counts == [threads] * 3, (quota, done.stdout)
        assert int(parent) == os.getpid()  # exec: the command replaced the script, it is our child
    (tmp_path / "cpu.max").write_text("max 100000\n")  # no quota: the cores this process may use
    done = subprocess.run(show, env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split()[0] == str(len(os.sched_getaffinity(0)))
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")  # cgroup v1
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    done = subprocess.run(show, env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split()[0] == "3"
    done = subprocess.run(show, env=dict(env, OMP_NUM_THREADS="5"), capture_output=True, text=True, check=True)
    assert done.stdout.split()[:2] == ["5", "3"]  # a value the host set is kept
    assert subprocess.run([str(start), "sh", "-c", "exit 7"], env=env).returncode == 7


def test_binder_postbuild_stops_at_the_first_error(tmp_path: Path) -> None:
    """Its commands run for real in CI (.ci/run, in an environment made from the lock); here a
    failing first command must stop it before the next one runs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "ran"
    for name, status in (("pip", 3), ("python", 0)):
        fake = bin_dir / name
        fake.write_text(f"#!/bin/sh\necho {name} \"$@\" >> {log}\nexit {status}\n")
        fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    done = subprocess.run([str(ROOT / "binder" / "postBuild")], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 3
    assert log.read_text().splitlines() == ["pip install --no-deps ."]


#: extras a learner's or a room's environment never needs: ``bench`` holds the peer libraries
#: that only the attribution benchmark and its tests run (pulling OpenCV and scikit-learn in)
DEVELOPER_ONLY = ("bench",)


def test_conda_environment_lists_every_pyproject_dependency() -> None:
    conda_names = {pypi: conda for conda, pypi in load_tool("lock").FROM_CONDA.items()}  # where they differ
    project = _pyproject()["project"]
    wanted = [*project["dependencies"]]
    for name, extra in project["optional-dependencies"].items():
        if name in DEVELOPER_ONLY:
            continue
        wanted += [r for r in extra if not r.startswith("vizwidgets")]
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {_name(d) for d in environment["dependencies"] if isinstance(d, str)}
    pip = {_name(d) for d in environment["dependencies"] if isinstance(d, dict) for d in d["pip"]}
    missing = [r for r in wanted if conda_names.get(_name(r), _name(r)) not in conda | pip]
    assert not missing, f"environment.yml lacks {missing}"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    runs = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
            if line.startswith("python3 -m venv .venv ")]
    assert len(runs) == 1
    assert runs[0] in readme


def test_readme_course_command_opens_the_learners_copies() -> None:
    readme = (ROOT / "README.md").read_text()
    assert 'pip install -e ".[course]" && .venv/bin/python -m vizwidgets course\n' in readme
    assert "jupyter lab course/" not in readme  # learners never work in the originals
    course = _pyproject()["project"]["optional-dependencies"]["course"]
    assert {"jupyterlab", "notebook"} <= {_name(r) for r in course}  # JupyterLab 4 and Notebook 7


_LINK = re.compile(r"\[[^\]]*\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_relative_links_in_the_docs_stay_inside_the_repository() -> None:
    """A link to ``../shared/...`` works in one checkout and is broken in every clone."""
    pages = [ROOT / "README.md", *sorted((ROOT / "course").glob("*.md")), *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in _LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue  # a URL
            resolved = (page.parent / target).resolve()
            if not resolved.is_relative_to(ROOT) or not resolved.exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken


def test_readme_top1_table_is_what_the_model_says(lite) -> None:
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| (\w+) \| (.+?) \((\d+)\) \| (0\.\d\d) \|$", readme, flags=re.M)
    assert len(rows) >= 9
    for name, label, index, probability in rows:
        top = lite.predict(name, k=1)[0]
        assert (top.label, top.index) == (label, int(index)), name
        assert f"{top.probability:.2f}" == probability, (name, top.probability)
    example = re.search(r"model\.predict\(\"chelsea\"\)\[0\].*probability=(0\.\d+)", readme)
    assert example and abs(lite.predict("chelsea")[0].probability - float(example.group(1))) < 1e-3


def test_the_readme_screenshot_of_the_app_is_the_browser_tests() -> None:
    """The README shows docs/images/app.png, and that file carries the mark the browser test
    writes into its screenshot (``VIZWIDGETS_UPDATE_DOCS=1``), naming the test that took it."""
    from PIL import Image

    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import test_browser
    finally:
        sys.path.remove(str(ROOT / "tests"))
    assert "](docs/images/app.png)" in (ROOT / "README.md").read_text()
    with Image.open(ROOT / "docs" / "images" / "app.png") as shot:
        assert shot.text.get("Source") == test_browser.SCREENSHOT_SOURCE  # type: ignore[attr-defined]
        assert shot.width >= 1000 and shot.height >= 900
    name = test_browser.SCREENSHOT_SOURCE.split("::")[1]
    assert callable(getattr(test_browser, name)), f"{name} is no longer a test in tests/test_browser.py"
