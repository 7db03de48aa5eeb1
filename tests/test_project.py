"""The project's own promises: set-up files agree with each other and with the README."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# PyPI name -> conda-forge name, where they differ
CONDA_NAMES = {"torch": "pytorch-cpu", "matplotlib": "matplotlib-base"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


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


def test_readme_course_command_opens_the_course_folder() -> None:
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"pip install -e \"\.\[course\]\" && \.venv/bin/jupyter lab course/", readme)
