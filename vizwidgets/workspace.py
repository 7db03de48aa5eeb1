"""The learner's own copy of the course, and the Jupyter settings the course wants.

``python -m vizwidgets course [FOLDER]`` is the course's front door:

1. it copies the learner notebooks ``course/NN_topic.ipynb`` into ``FOLDER`` (default
   ``my-course``), never overwriting a notebook already there, so the learner works (and saves
   outputs and answers) in copies, and the originals, which the tests compare with their
   sources, stay clean; a notebook added to the course later is copied on the next start;
2. it installs the course's default Jupyter settings into this environment (one file,
   ``share/jupyter/lab/settings/overrides.d/vizwidgets.json``): widget state is saved with the
   notebook, so a notebook reopened later shows its widgets as they were instead of "Error
   displaying widget: model not found";
3. it starts JupyterLab (``--app notebook``: Notebook 7) on ``FOLDER``, with ``--allow-root``
   when it runs as root (in a container), where Jupyter would otherwise refuse to start.

Files are written whole or not at all (a temporary name, then a rename).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vizwidgets._files import write_atomic

__all__ = [
    "DEFAULT_FOLDER",
    "JUPYTER_SETTINGS",
    "CopyReport",
    "course_folder",
    "course_notebooks",
    "make_working_copies",
    "install_jupyter_settings",
    "jupyter_command",
    "start_course",
]

DEFAULT_FOLDER = Path("my-course")
# One file of ours inside JupyterLab's per-package overrides folder ({sys.prefix}/share/jupyter/
# lab/settings/overrides.d): it changes defaults only, a user's own settings still win, and no
# other package's file is touched. The same file ships as data-files of a non-editable install.
JUPYTER_SETTINGS = Path(__file__).parent / "jupyter" / "vizwidgets.json"
_SETTINGS_NAME = "vizwidgets.json"


@dataclass
class CopyReport:
    """What :func:`make_working_copies` did: notebooks copied, and the learner's copies kept."""

    folder: Path
    copied: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def course_folder() -> Path:
    """The repository's ``course/`` folder, next to the package in a clone.

    Raises ``FileNotFoundError`` saying where the notebooks come from when the package was
    installed without its repository.
    """
    folder = Path(__file__).resolve().parent.parent / "course"
    if not any(folder.glob("[0-9][0-9]_*.ipynb")):
        raise FileNotFoundError(
            f"the course notebooks are not in {folder}: they come with a clone of the repository "
            "(git clone ..., then pip install -e '.[course]' inside it); or pass --source FOLDER"
        )
    return folder


def course_notebooks(source: Path | None = None) -> list[Path]:
    """The learner notebooks ``NN_topic.ipynb`` in ``source`` (default: :func:`course_folder`)."""
    folder = Path(source) if source is not None else course_folder()
    notebooks = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no course notebooks (NN_topic.ipynb) in {folder}")
    return notebooks


def make_working_copies(folder: str | Path = DEFAULT_FOLDER, source: Path | None = None) -> CopyReport:
    """Copy the course notebooks into ``folder``; a notebook already there is kept as it is.

    ``folder`` must not be the course folder itself (the copies exist to keep it clean).
    """
    folder = Path(folder).expanduser()
    notebooks = course_notebooks(source)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file; pass a folder for your copies of the course")
    if folder.resolve() == notebooks[0].parent.resolve():
        raise ValueError(
            f"{folder} is the course folder itself; choose another folder for your copies "
            f"(default {DEFAULT_FOLDER})"
        )
    report = CopyReport(folder)
    for notebook in notebooks:
        target = folder / notebook.name
        if target.exists():
            report.kept.append(notebook.name)
            continue
        write_atomic(target, notebook.read_bytes())
        report.copied.append(notebook.name)
    return report


def install_jupyter_settings(prefix: str | Path = sys.prefix) -> Path:
    """Install the course's default Jupyter settings (:data:`JUPYTER_SETTINGS`) for the
    environment at ``prefix``; returns the file. Rewrites it only when it differs."""
    target = Path(prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.d" / _SETTINGS_NAME
    wanted = JUPYTER_SETTINGS.read_bytes()
    json.loads(wanted)  # a broken file must never reach JupyterLab
    if not target.is_file() or target.read_bytes() != wanted:
        write_atomic(target, wanted)
    return target


def _is_root() -> bool:
    geteuid = getattr(os, "geteuid", None)
    return geteuid is not None and geteuid() == 0


def jupyter_command(folder: str | Path, app: str = "lab", extra: Sequence[str] = ()) -> list[str]:
    """The command that starts Jupyter on ``folder``: ``app`` is ``"lab"`` (JupyterLab 4) or
    ``"notebook"`` (Notebook 7); ``--allow-root`` is added when running as root."""
    if app not in ("lab", "notebook"):
        raise ValueError(f"app must be 'lab' (JupyterLab) or 'notebook' (Notebook 7), got {app!r}")
    module = "jupyterlab" if app == "lab" else "notebook"
    command = [sys.executable, "-m", module, f"--ServerApp.root_dir={Path(folder).resolve()}"]
    if _is_root() and "--allow-root" not in extra:
        command.append("--allow-root")
    return [*command, *extra]


def start_course(
    folder: str | Path = DEFAULT_FOLDER,
    *,
    app: str = "lab",
    extra: Sequence[str] = (),
    source: Path | None = None,
    start: bool = True,
) -> int:
    """Make the working copies, install the settings and (``start``) run Jupyter until it
    stops; returns its exit status (0 when ``start`` is False). On POSIX the process becomes
    Jupyter (``os.execv``) and does not return."""
    command = jupyter_command(folder, app, extra)  # checks app before anything is written
    if shutil.which(command[0]) is None and not Path(command[0]).exists():  # pragma: no cover
        raise FileNotFoundError(f"no Python at {command[0]}")
    report = make_working_copies(folder, source)
    print(f"Your copies of the course are in {report.folder}/ (the originals stay as they are).")
    if report.copied:
        print(f"  copied: {', '.join(report.copied)}")
    if report.kept:
        print(f"  kept your own: {', '.join(report.kept)}")
    settings = install_jupyter_settings()
    print(f"Jupyter saves widget state with the notebooks here (settings: {settings}).")
    if not start:
        return 0
    if "--allow-root" in command and "--allow-root" not in extra:
        print("Running as root: starting Jupyter with --allow-root.")
    sys.stdout.flush()
    if os.name == "posix":
        # Become Jupyter: Ctrl-C, its shutdown question and signals reach it as if started
        # by hand, and no parent is left to stop.
        os.execv(command[0], command)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # elsewhere: Jupyter alone answers Ctrl-C
    return subprocess.call(command)
