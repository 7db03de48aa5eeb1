"""The Explorer as a web app, ``python -m vizwidgets app`` (:mod:`vizwidgets.app`): its help,
the mistakes it reports before starting anything, the page it builds, and Voila really serving
that page without its code, then leaving no process and no folder behind.

Servers listen on 127.0.0.1 only, and every test stops what it started. The browser test of
the page is in ``tests/test_browser.py``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from vizwidgets import app
from vizwidgets.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]
SOURCE = "from vizwidgets.app import"  # the notebook's code, which the page must not show


@pytest.fixture()
def nothing_starts(monkeypatch):
    """Fail the test if the server would be started (a folder made, Voila run) or a browser opened."""
    def refuse(*args, **kwargs):
        raise AssertionError("started something")

    monkeypatch.setattr(app.AppServer, "start", refuse)
    monkeypatch.setattr(app, "voila_command", refuse)
    monkeypatch.setattr("webbrowser.open", refuse)


@pytest.fixture()
def own_tmp(tmp_path, monkeypatch):
    """Temporary folders of the app go into an empty folder of this test's own."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


# ----------------------------------------------------------------------------- the command


def test_help_names_the_flags_and_exit_statuses() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vizwidgets", "app", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    for flag in ("--port", "--host", "--model", "--no-browser", "127.0.0.1", "Voila", "Exit status", "8 MB"):
        assert flag in done.stdout, flag
    assert "``" not in done.stdout and ":func:" not in done.stdout


def test_unknown_model_exits_2_listing_the_models_before_starting_anything(
    nothing_starts, capsys: pytest.CaptureFixture[str]
) -> None:
    from vizwidgets.models import available_models

    assert cli_main(["app", "--model", "nope", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "'nope'" in err
    assert all(name in err for name in available_models())


def test_taken_port_exits_2_naming_the_port(nothing_starts, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli_main(["app", "--port", str(port), "--no-browser"]) == 2
    err = capsys.readouterr().err
    assert f"port {port}" in err and "--port 0" in err


def test_missing_voila_exits_2_saying_what_to_install(
    nothing_starts, monkeypatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = app.importlib.util.find_spec
    monkeypatch.setattr(app.importlib.util, "find_spec", lambda name: None if name == "voila" else real(name))
    assert cli_main(["app", "--port", "0"]) == 2
    assert 'pip install "vizwidgets[app]"' in capsys.readouterr().err


def test_bad_port_or_host_exits_2(nothing_starts, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["app", "--port", "70000"]) == 2
    assert "70000" in capsys.readouterr().err
    assert cli_main(["app", "--port", "0", "--host", "no-such-host.invalid"]) == 2
    assert "no-such-host.invalid" in capsys.readouterr().err


@pytest.mark.parametrize("host, warned", [("127.0.0.1", False), ("localhost", False), ("0.0.0.0", True)])
def test_the_command_warns_off_loopback_prints_the_url_and_opens_the_browser(
    host: str, warned: bool, monkeypatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command's flow without Voila: start, URL, browser, wait, stop."""
    calls: list[str] = []
    monkeypatch.setattr(app.AppServer, "start", lambda self: calls.append("start") or self.url)
    monkeypatch.setattr(app.AppServer, "wait", lambda self: calls.append("wait") or 0)
    monkeypatch.setattr(app.AppServer, "stop", lambda self: calls.append("stop"))
    monkeypatch.setattr("webbrowser.open", lambda url: calls.append(f"open {url}"))
    assert cli_main(["app", "--port", "0", "--host", host]) == 0
    out, err = capsys.readouterr()
    url = out.split("is at ", 1)[1].split()[0]
    assert url.startswith(f"http://{host}:") and url.endswith("/") and int(url.rsplit(":", 1)[1][:-1]) > 0
    assert calls == ["start", f"open {url}", "wait", "stop"]
    assert ("anyone who can reach" in err) == warned
    assert len([line for line in err.splitlines() if line.startswith("warning:")]) == int(warned)
    calls.clear()
    assert cli_main(["app", "--port", "0", "--host", host, "--no-browser"]) == 0
    assert calls == ["start", "wait", "stop"]


def test_voila_failing_to_start_gives_its_status_and_log_and_leaves_nothing(
    own_tmp: Path, monkeypatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        app, "voila_command", lambda notebook, host, port: [sys.executable, "-c", "print('it broke'); exit(3)"]
    )
    assert cli_main(["app", "--port", "0", "--no-browser"]) == 3
    assert "it broke" in capsys.readouterr().err
    assert list(own_tmp.iterdir()) == []


def test_voila_command_shows_no_code_and_keeps_to_its_port(tmp_path: Path) -> None:
    command = app.voila_command(tmp_path / "explorer.ipynb", "127.0.0.1", 8899)
    assert command[:3] == [sys.executable, "-m", "voila"]
    for option in ("--no-browser", "--port=8899", "--Voila.ip=127.0.0.1", "--Voila.port_retries=0",
                   "--VoilaConfiguration.strip_sources=True", "--VoilaConfiguration.show_tracebacks=False"):
        assert option in command, option


def test_loopback_and_free_port() -> None:
    assert all(app.is_loopback(host) for host in ("127.0.0.1", "localhost", "::1", "[::1]"))
    assert not any(app.is_loopback(host) for host in ("0.0.0.0", "::", "192.168.1.5", "example.org"))
    assert 0 < app.check_port("127.0.0.1", 0) < 65536


# ----------------------------------------------------------------------------- the page


def test_notebook_calls_page_with_the_model(tmp_path: Path) -> None:
    notebook = json.loads(app.write_notebook(tmp_path, "resnet18").read_text())
    (cell,) = notebook["cells"]
    assert cell["source"].startswith(SOURCE) and "page(model='resnet18')" in cell["source"]
    assert notebook["metadata"]["title"] == app.TITLE


@pytest.mark.slow
def test_page_shows_the_model_the_limits_and_the_explorer() -> None:
    import ipywidgets as W

    shown = app.page()  # what the notebook's cell does: the default model
    assert isinstance(shown.widget, W.VBox)
    header, how, explorer = shown.widget.children
    assert header is shown.header and explorer is shown.explorer.widget
    assert app.TITLE in header.value and "efficientnet_lite0" in header.value and "1000 classes" in header.value
    assert "8 MB" in how.value and "40 million pixels" in how.value
    assert shown.explorer.max_upload_bytes == app.MAX_UPLOAD_BYTES == 8_000_000
    assert shown.explorer.max_pixels == app.MAX_PIXELS == 40_000_000
    assert shown.model.name == "efficientnet_lite0"
    # the page never reads the server's files: no path box, and a path typed anyway is ignored
    assert shown.explorer.path.layout.display == "none"
    options = list(shown.explorer.image_select.options)
    shown.explorer.path.value = "/etc/hostname"
    assert list(shown.explorer.image_select.options) == options
    bundle = shown._repr_mimebundle_()  # what a notebook shows: the widget, and a line of text
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == shown.widget.model_id
    assert bundle["text/plain"].startswith(app.TITLE) and "efficientnet_lite0" in bundle["text/plain"]


def test_page_without_the_weights_says_so_instead_of_failing(torch_home, monkeypatch) -> None:
    from vizwidgets.models import core

    def offline(url: str, path: Path) -> None:
        raise OSError("no network here")

    monkeypatch.setattr(core, "_download", offline)
    shown = app.page("resnet18")
    assert shown.explorer is None
    assert "resnet18" in shown.header.value
    assert "cannot be shown" in shown.widget.children[1].value and "no network here" in shown.widget.children[1].value


def test_page_rejects_unknown_models() -> None:
    with pytest.raises(app.AppError, match="known models: efficientnet_lite0"):
        app.page("nope")


# ----------------------------------------------------------------------------- Voila for real


class _Stop(Exception):
    pass


def _alive(pid: int) -> bool:
    psutil = pytest.importorskip("psutil")
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
def test_serve_serves_the_page_without_its_code_and_stops_everything(own_tmp: Path) -> None:
    pytest.importorskip("voila")
    psutil = pytest.importorskip("psutil")
    me = psutil.Process()
    with pytest.raises(_Stop):  # the block ends with an error: serve() cleans up all the same
        with app.serve(port=0, host="127.0.0.1") as url:
            assert url.startswith("http://127.0.0.1:") and url.endswith("/")
            with urllib.request.urlopen(url, timeout=180) as response:
                assert response.status == 200
                page = response.read().decode()
            started = me.children(recursive=True)
            voila = [p for p in started if "voila" in p.cmdline()[:3]]
            assert len(voila) == 1, [p.cmdline() for p in started]
            assert any("ipykernel" in " ".join(p.cmdline()) for p in started)  # the page's kernel
            folder = Path(voila[0].cmdline()[3]).parent.parent
            assert folder.parent == own_tmp and folder.is_dir()
            raise _Stop
    assert SOURCE not in page and "page(model=" not in page  # the code is not on the page
    assert "<title>vizwidgets Explorer</title>" in page
    assert "application/vnd.jupyter.widget-view+json" in page  # the cell displayed its widget
    assert "efficientnet_lite0" in page  # (in the widget's text form, which names the model)
    assert "There was an error" not in page
    deadline = time.monotonic() + 10
    while any(_alive(p.pid) for p in started) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p.pid for p in started if _alive(p.pid)]
    assert not folder.exists() and list(own_tmp.iterdir()) == []
