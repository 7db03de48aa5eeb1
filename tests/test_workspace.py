"""The course's front door: ``python -m vizwidgets course`` makes the learner's own copies,
installs the course's Jupyter settings and starts JupyterLab or Notebook 7, also as root."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import urllib.request
from pathlib import Path

import pytest

from vizwidgets import workspace

from _servers import free_port, running

ROOT = Path(__file__).resolve().parent.parent


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.ipynb"))}


def test_working_copies_are_made_once_and_a_learners_work_is_kept(tmp_path: Path) -> None:
    originals = _digests(ROOT / "course")
    mine = tmp_path / "my-course"
    report = workspace.make_working_copies(mine)
    assert report.copied == sorted(originals) and report.kept == []
    assert _digests(mine) == originals
    worked = mine / "01_saliency.ipynb"
    worked.write_text('{"my": "answers"}', encoding="utf-8")
    (mine / "03_cam.ipynb").unlink()  # lost, or added to the course later
    again = workspace.make_working_copies(mine)
    assert again.copied == ["03_cam.ipynb"]
    assert "01_saliency.ipynb" in again.kept
    assert worked.read_text(encoding="utf-8") == '{"my": "answers"}'  # never overwritten
    assert _digests(ROOT / "course") == originals  # the originals stay as they were
    assert not list(mine.glob(".*part"))  # no temporary file left


def test_working_copies_refuse_the_course_folder_and_a_file(tmp_path: Path) -> None:
    before = _digests(ROOT / "course")
    with pytest.raises(ValueError, match="course folder itself"):
        workspace.make_working_copies(ROOT / "course")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    with pytest.raises(NotADirectoryError, match="is a file"):
        workspace.make_working_copies(a_file)
    assert a_file.read_text() == "mine" and _digests(ROOT / "course") == before
    with pytest.raises(FileNotFoundError, match="no course notebooks"):
        workspace.make_working_copies(tmp_path / "x", source=tmp_path)


def test_jupyter_is_started_with_allow_root_only_as_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0, raising=False)
    lab = workspace.jupyter_command(tmp_path)
    assert lab[1:3] == ["-m", "jupyterlab"] and "--allow-root" in lab
    assert f"--ServerApp.root_dir={tmp_path.resolve()}" in lab
    assert workspace.jupyter_command(tmp_path, "notebook")[1:3] == ["-m", "notebook"]
    monkeypatch.setattr(os, "geteuid", lambda: 1000, raising=False)
    assert "--allow-root" not in workspace.jupyter_command(tmp_path, extra=["--no-browser"])
    with pytest.raises(ValueError, match="'lab'.*'notebook'"):
        workspace.jupyter_command(tmp_path, "voila")


def test_the_settings_file_turns_on_saved_widget_state(tmp_path: Path) -> None:
    settings_utils = pytest.importorskip("jupyterlab_server.settings_utils")
    app_settings = tmp_path / "share" / "jupyter" / "lab" / "settings"
    (app_settings / "overrides.d").mkdir(parents=True)
    theirs = app_settings / "overrides.d" / "another.json"
    theirs.write_text('{"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"}}')
    installed = workspace.install_jupyter_settings(tmp_path)
    assert installed == app_settings / "overrides.d" / "vizwidgets.json"
    overrides, error = settings_utils._get_overrides(str(app_settings))  # how JupyterLab reads them
    assert error == ""
    assert overrides["@jupyter-widgets/jupyterlab-manager:plugin"] == {"saveState": True}
    assert overrides["@jupyterlab/apputils-extension:themes"]["theme"] == "JupyterLab Dark"  # kept
    # the key is one the installed widget manager really has
    schema = Path(sys.prefix, "share", "jupyter", "labextensions", "@jupyter-widgets", "jupyterlab-manager",
                  "schemas", "@jupyter-widgets", "jupyterlab-manager", "plugin.json")
    if schema.is_file():
        assert "saveState" in json.loads(schema.read_text())["properties"]


def test_course_command_without_start_makes_copies_and_says_where(tmp_path: Path, capsys) -> None:
    from vizwidgets.cli import main

    assert main(["course", str(tmp_path / "mine"), "--no-start"]) == 0
    out = capsys.readouterr().out
    assert "Your copies of the course are in" in out and "copied: 00_welcome.ipynb" in out
    assert main(["course", str(tmp_path / "mine"), "--no-start"]) == 0
    assert "kept your own: 00_welcome.ipynb" in capsys.readouterr().out
    assert main(["course", str(ROOT / "course"), "--no-start"]) == 2
    assert "course folder itself" in capsys.readouterr().err


@pytest.mark.slow
def test_course_command_serves_jupyterlab_and_notebook_7_with_saved_widget_state(tmp_path: Path) -> None:
    """The real command, as the README gives it (as root here: --allow-root is needed)."""
    port, token = free_port(), "course-test-token"
    settings = Path(sys.prefix, "share", "jupyter", "lab", "settings", "overrides.d", "vizwidgets.json")
    existed = settings.exists()
    command = [sys.executable, "-m", "vizwidgets", "course", str(tmp_path / "my-course"), "--",
               "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={token}"]
    base = f"http://127.0.0.1:{port}"

    def get(path: str) -> tuple[int, bytes]:
        with urllib.request.urlopen(f"{base}{path}{'&' if '?' in path else '?'}token={token}", timeout=30) as r:
            return r.status, r.read()

    try:
        with running(command, f"{base}/api/status?token={token}", tmp_path / "jupyter.log"):
            assert get("/lab")[0] == 200
            assert get("/tree")[0] == 200  # Notebook 7, from the course extra
            status, body = get("/api/contents")
            names = {item["name"] for item in json.loads(body)["content"]}
            assert "01_saliency.ipynb" in names  # it serves the learner's copies
            status, body = get("/lab/api/settings/@jupyter-widgets/jupyterlab-manager:plugin")
            plugin = json.loads(body)  # overrides change the schema's defaults; no user setting
            assert plugin["schema"]["properties"]["saveState"]["default"] is True
            assert plugin["settings"].get("saveState", True) is True
    finally:
        if not existed:
            settings.unlink(missing_ok=True)
    assert (tmp_path / "my-course" / "00_welcome.ipynb").is_file()
