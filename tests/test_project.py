"""The project's own promises: set-up files agree with each other and with the README."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]

# PyPI name -> conda-forge name, where they differ
CONDA_NAMES = {"torch": "pytorch-cpu", "matplotlib": "matplotlib-base"}


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


def test_binder_environment_is_the_conda_environment() -> None:
    assert (ROOT / "binder" / "environment.yml").read_text() == (ROOT / "environment.yml").read_text()


def test_conda_environment_lists_every_pyproject_dependency() -> None:
    project = _pyproject()["project"]
    wanted = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        wanted += [r for r in extra if not r.startswith("vizwidgets")]
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {_name(d) for d in environment["dependencies"] if isinstance(d, str)}
    pip = {_name(d) for d in environment["dependencies"] if isinstance(d, dict) for d in d["pip"]}
    missing = [r for r in wanted if CONDA_NAMES.get(_name(r), _name(r)) not in conda | pip]
    assert not missing, f"environment.yml lacks {missing}"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    runs = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if "pytest" in line]
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
