"""The Explorer as a web page of its own: ``python -m vizwidgets app`` serves it with Voila.

The page shows the Explorer and nothing else: no code, no notebook. Pick a bundled image or
upload your own, then a method, a layer and a class, and see what the model looks at.

How it works: a one-cell notebook that calls ``vizwidgets.app.page()`` is written into a fresh temporary
folder, and Voila (``pip install "vizwidgets[app]"``) serves it with its sources stripped. The
folder, Voila and its kernels are removed when the command stops (Ctrl-C).

The server listens on 127.0.0.1 (this machine only) unless --host says otherwise; any other
address lets anyone who can reach it use the app and this machine's CPU. Uploads are limited to
8 MB and 40 megapixels. --port 0 picks a free port.

Exit status: 2 for a mistake found before anything starts (an unknown model, a port in use,
an address that cannot be used, Voila not installed); 130 when stopped with Ctrl-C; otherwise
Voila's own status.

From Python, :func:`serve` is the same server as a context manager::

    with serve(port=0) as url:   # started, and answering at url
        ...
    # stopped: Voila, its kernels and the temporary folder are gone
"""

from __future__ import annotations

import contextlib
import errno
import html
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "MAX_PIXELS",
    "MAX_UPLOAD_BYTES",
    "TITLE",
    "AppError",
    "AppPage",
    "AppServer",
    "ServerError",
    "check_model",
    "check_port",
    "is_loopback",
    "page",
    "run",
    "serve",
    "voila_command",
    "write_notebook",
]

TITLE = "vizwidgets Explorer"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8866
MAX_UPLOAD_BYTES = 8_000_000  # what one upload may weigh
MAX_PIXELS = 40_000_000  # and how many pixels its image may have (a decompression bomb has many)
READY_TIMEOUT = 120.0  # seconds Voila may take to answer
STOP_TIMEOUT = 20.0  # seconds Voila may take to stop (and stop its kernels) before it is killed
LOOPBACK = ("127.0.0.1", "localhost", "::1")

_NOTEBOOK = "explorer.ipynb"


class AppError(Exception):
    """A problem found before the server starts (the command exits with status 2)."""


class ServerError(RuntimeError):
    """Voila stopped before it answered, or did not answer in time; ``log`` is what it said."""

    def __init__(self, message: str, returncode: int | None, log: str) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.log = log


# ----------------------------------------------------------------------------- the page


def check_model(model: str | None) -> str:
    """The registry name :func:`vizwidgets.load_model` knows ``model`` by (``None``: the default).

    Raises :class:`AppError` naming the known models when it knows none such. Imports PyTorch.
    """
    from vizwidgets.models import available_models
    from vizwidgets.models.core import DEFAULT_MODEL

    if model is None:
        return DEFAULT_MODEL
    if not isinstance(model, str):
        raise TypeError(f"model must be a model name (str) or None, got {type(model).__name__}")
    name = model.strip().lower()
    if name not in available_models():
        raise AppError(f"unknown model {model!r}; known models: {', '.join(available_models())}")
    return name


def _amount(count: int, unit: str) -> str:
    """``8_000_000, "B"`` -> ``"8 MB"``; ``40_000_000, " pixels"`` -> ``"40 million pixels"``."""
    if unit == "B":
        return f"{count / 1e6:g} MB" if count >= 1_000_000 else f"{count / 1e3:g} kB"
    return f"{count / 1e6:g} million{unit}" if count >= 1_000_000 else f"{count:,}{unit}"


class AppPage:
    """What the app's page shows: a header naming the model, a line on what to do, the Explorer.

    ``widget`` is the whole page (an ``ipywidgets.VBox``); ``header`` the HTML header;
    ``explorer`` the :class:`~vizwidgets.widgets.Explorer` (``None`` when the model could not
    be loaded: the page then says why). Shown as the last expression of a cell; ``summary`` is
    its text form.
    """

    def __init__(self, widget: Any, header: Any, explorer: Any, model: Any, summary: str) -> None:
        self.widget = widget
        self.header = header
        self.explorer = explorer
        self.model = model
        self.summary = summary

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """The page's widget, with a line of text where widgets cannot be shown (instead of a
        truncated ``VBox(children=...)``)."""
        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        bundle["text/plain"] = self.summary
        return bundle


def page(model: Any = None) -> AppPage:
    """Build the app's page for ``model``: a registry name, a loaded model, or ``None`` (default).

    The Explorer gets the app's upload limits (:data:`MAX_UPLOAD_BYTES`, :data:`MAX_PIXELS`). A
    model whose weights cannot be found gives a page that says so instead of the Explorer.
    """
    import ipywidgets as W

    from vizwidgets.models import MODELS, WeightsNotFoundError, load_model

    loaded: Any = None
    problem = ""
    if model is None or isinstance(model, str):
        name = check_model(model)
        try:
            loaded = load_model(name)
        except WeightsNotFoundError as error:
            problem = str(error)
    else:
        loaded, name = model, str(getattr(model, "name", type(model).__name__))
    spec = MODELS.get(name)
    about = f", {spec.description}" if spec is not None else ""
    classes = f"; {len(loaded.classes)} classes" if loaded is not None else ""
    header = W.HTML(
        f"<h2 style='margin: 0.2em 0'>{html.escape(TITLE)}</h2>"
        f"<div>Model: <b>{html.escape(name)}</b>{html.escape(about)}{classes}.</div>"
    )
    summary = f"{TITLE}, model {name}{about}{classes}"
    if problem:
        text = W.HTML(f"<p><b>This model cannot be shown here:</b> {html.escape(problem)}</p>")
        return AppPage(W.VBox([header, text]), header, None, loaded, f"{summary}. {problem}")
    how = W.HTML(
        "<p>Pick a sample image or upload your own (JPEG or PNG, up to "
        f"{_amount(MAX_UPLOAD_BYTES, 'B')} and {_amount(MAX_PIXELS, ' pixels')}), then choose a method, "
        "a layer and a class: the picture shows where the model looked.</p>"
    )
    from vizwidgets.widgets import Explorer  # here: building it imports PyTorch and the widgets

    # no path box: whoever reaches the page must not read the server's files
    explorer = Explorer(model=loaded, max_upload_bytes=MAX_UPLOAD_BYTES, max_pixels=MAX_PIXELS, allow_paths=False)
    return AppPage(W.VBox([header, how, explorer.widget]), header, explorer, loaded, summary)


def write_notebook(folder: Path, model: str | None, source: str | None = None) -> Path:
    """Write the app's one-cell notebook into ``folder``; returns its path. The cell calls
    :func:`page`, or is ``source`` when given (a benchmark's variant of the page, say)."""
    if source is None:
        source = f"from vizwidgets.app import page\n\npage(model={model!r})"
    notebook = {
        "cells": [{"cell_type": "code", "execution_count": None, "id": "page", "metadata": {},
                   "outputs": [], "source": source}],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "title": TITLE,  # the browser tab's title
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = Path(folder) / _NOTEBOOK
    path.write_text(json.dumps(notebook, indent=1) + "\n", encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- the server


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (127.0.0.1, localhost, ::1)."""
    return host.strip().lower().strip("[]") in LOOPBACK


def _url(host: str, port: int) -> str:
    host = host.strip("[]")
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _probe_host(host: str) -> str:
    """Where to ask whether the server answers: a wildcard address is asked on loopback."""
    host = host.strip("[]")
    return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)


def check_port(host: str, port: int) -> int:
    """Check that ``port`` on ``host`` is free by binding it for a moment; ``port`` 0: a free one.

    Returns the port. Raises :class:`AppError` naming the port (or the address) otherwise.
    """
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"port must be an int, got {type(port).__name__}")
    if not 0 <= port <= 65535:
        raise AppError(f"port must be between 0 and 65535, got {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as error:
        raise AppError(f"cannot listen on {host!r}: {error.strerror}") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Voila's server does
        try:
            probe.bind(address)
        except OSError as error:
            if port and error.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", errno.EADDRINUSE)):
                raise AppError(
                    f"port {port} on {host} is already in use; choose another with --port, "
                    "or --port 0 for a free one"
                ) from None
            raise AppError(f"cannot listen on {host} port {port}: {error.strerror or error}") from None
        return int(probe.getsockname()[1])


def voila_command(notebook: Path, host: str, port: int) -> list[str]:
    """The Voila command that serves ``notebook`` on ``host``:``port`` and shows no code."""
    return [
        sys.executable, "-m", "voila", str(notebook),
        "--no-browser",
        f"--port={port}",
        "--Voila.port_retries=0",  # that port or none: Voila would otherwise try the next ones
        f"--Voila.ip={host.strip('[]')}",
        "--VoilaConfiguration.strip_sources=True",  # the page shows outputs only, never the code
        "--VoilaConfiguration.show_tracebacks=False",  # an error says that it happened, not where
    ]


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids of every process this user can see (``/proc``; ``{}`` elsewhere)."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1:
            tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> list[int]:
    """The pids of the processes started by ``pid``, their children and so on (Voila's kernels)."""
    try:
        import psutil
    except ImportError:
        tree = _children()
        found, todo = [], [pid]
        while todo:
            for child in tree.get(todo.pop(), []):
                found.append(child)
                todo.append(child)
        return found
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        if (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z":
            return False
    return True


class AppServer:
    """Voila serving the app's page: :meth:`start` it, :meth:`wait` for it, :meth:`stop` it.

    Checks come first (:meth:`check`: the model, Voila, the address and port), so a mistake is
    reported before anything starts. Also a context manager (started on entry, stopped on exit);
    :func:`serve` is the short form.
    """

    def __init__(
        self, *, port: int = DEFAULT_PORT, host: str = DEFAULT_HOST, model: str | None = None,
        ready_timeout: float = READY_TIMEOUT, source: str | None = None,
    ) -> None:
        self.host = host
        self.source = source  # the notebook cell's code; None: the app's page
        self.port = port
        self.model = model
        self.ready_timeout = ready_timeout
        self.folder: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def check(self) -> None:
        """Check the model, that Voila is installed, and the address and port (port 0: pick one)."""
        self.model = check_model(self.model)
        if importlib.util.find_spec("voila") is None:
            raise AppError('the app needs Voila, which is not installed: pip install "vizwidgets[app]"')
        self.port = check_port(self.host, self.port)
        self.url = _url(self.host, self.port)

    def start(self) -> str:
        """Check, start Voila and wait until it answers; returns the page's URL."""
        if self.process is not None:
            raise RuntimeError("this server is already started")
        self.check()
        self.folder = Path(tempfile.mkdtemp(prefix="vizwidgets-app-"))
        served = self.folder / "page"  # Voila serves this folder: the notebook only, not the log
        served.mkdir()
        notebook = write_notebook(served, self.model, self.source)
        with self._log_path().open("wb") as log:
            self.process = subprocess.Popen(
                voila_command(notebook, self.host, self.port), cwd=served, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self._wait_until_ready()
        return self.url

    def _log_path(self) -> Path:
        assert self.folder is not None
        return self.folder / "voila.log"

    def log(self) -> str:
        """What Voila has written so far (its last 3000 characters)."""
        with contextlib.suppress(OSError, AssertionError):
            return self._log_path().read_text(errors="replace")[-3000:]
        return ""

    def _wait_until_ready(self) -> None:
        assert self.process is not None
        probe = _url(_probe_host(self.host), self.port)
        deadline = time.monotonic() + self.ready_timeout
        while True:
            # HEAD: any answer means the server is up; unlike GET /, it starts no kernel
            request = urllib.request.Request(probe, method="HEAD")
            try:
                with urllib.request.urlopen(request, timeout=5):
                    return
            except urllib.error.HTTPError:
                return
            except OSError:
                pass
            code = self.process.poll()
            if code is not None:
                raise ServerError(f"Voila stopped with status {code} before it answered", code, self.log())
            if time.monotonic() > deadline:
                raise ServerError(f"Voila did not answer at {probe} within {self.ready_timeout:g} s", None,
                                  self.log())
            time.sleep(0.25)

    def wait(self) -> int:
        """Wait until Voila stops by itself; returns its exit status."""
        if self.process is None:
            raise RuntimeError("this server is not started")
        return self.process.wait()

    def stop(self) -> None:
        """Stop Voila (SIGTERM to its process group; SIGKILL after :data:`STOP_TIMEOUT` s), then any
        kernel it left behind, and remove the temporary folder. Safe to call more than once."""
        process, self.process = self.process, None
        try:
            if process is not None:
                kernels = _descendants(process.pid)  # their own sessions: not in Voila's group
                if process.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGTERM)  # Voila shuts its kernels down
                    try:
                        process.wait(timeout=STOP_TIMEOUT)
                    except subprocess.TimeoutExpired:
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(process.pid, signal.SIGKILL)
                        process.wait()
                _stop_all(kernels)
        finally:
            if self.folder is not None:
                shutil.rmtree(self.folder, ignore_errors=True)
                self.folder = None

    def __enter__(self) -> AppServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stop_all(pids: Sequence[int], timeout: float = 5.0) -> None:
    """SIGTERM each process still alive (its whole group when it leads one), SIGKILL after ``timeout``."""
    def signal_all(sig: int) -> None:
        for pid in pids:
            if _alive(pid):
                with contextlib.suppress(OSError):
                    if os.getpgid(pid) == pid:
                        os.killpg(pid, sig)
                    else:
                        os.kill(pid, sig)

    signal_all(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    signal_all(signal.SIGKILL)


@contextlib.contextmanager
def serve(
    *, port: int = DEFAULT_PORT, host: str = DEFAULT_HOST, model: str | None = None,
    ready_timeout: float = READY_TIMEOUT, source: str | None = None,
) -> Iterator[str]:
    """Serve the app while the block runs; yields its URL once Voila answers.

    ``port`` 0 picks a free port. On the way out (also on an error or Ctrl-C) Voila and its
    kernels are stopped and the temporary folder is removed. Raises :class:`AppError` for a
    mistake found before starting (unknown model, port in use, Voila missing) and
    :class:`ServerError` when Voila does not come up. ``source``: the notebook cell's code instead
    of the app's page (``benchmarks/widgets.py --browser`` serves a variant this way).
    """
    with AppServer(port=port, host=host, model=model, ready_timeout=ready_timeout, source=source) as server:
        yield server.url


class _Signalled(BaseException):
    """SIGTERM or SIGHUP arrived: stop as for Ctrl-C (the status is 128 + the signal's number)."""

    def __init__(self, number: int) -> None:
        super().__init__(number)
        self.number = number


def _raise_signalled(number: int, frame: object) -> None:
    raise _Signalled(number)


@contextlib.contextmanager
def _signals(handler: Any, numbers: Sequence[int]) -> Iterator[None]:
    """Install ``handler`` for the signals ``numbers`` while the block runs (main thread only)."""
    previous: dict[int, Any] = {}
    try:
        for number in numbers:
            previous[number] = signal.signal(number, handler)
    except ValueError:  # not the main thread: leave the signals alone
        pass
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


def run(
    *, port: int = DEFAULT_PORT, host: str = DEFAULT_HOST, model: str | None = None, open_browser: bool = True,
) -> int:
    """``python -m vizwidgets app``: serve until Voila stops or Ctrl-C; returns the exit status.

    2: a mistake found before anything starts (message on stderr); 130: Ctrl-C (SIGTERM and
    SIGHUP stop it the same way, with 143 and 129); otherwise Voila's own status.
    """
    server = AppServer(port=port, host=host, model=model)
    try:
        server.check()
    except (AppError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not is_loopback(host):
        print(f"warning: listening on {host}: anyone who can reach this address can use the app and this "
              "machine's CPU", file=sys.stderr)
    if port == 0:
        print(f"port 0: using the free port {server.port}")
    print(f"Starting Voila with the Explorer ({server.model}) ...", flush=True)
    stopping = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    try:
        with _signals(_raise_signalled, stopping):
            try:
                url = server.start()
            except AppError as error:  # the port was taken between the check and the start
                print(f"error: {error}", file=sys.stderr)
                return 2
            except ServerError as error:
                print(f"error: {error}\n{error.log}", file=sys.stderr)
                return error.returncode or 1
            print(f"The Explorer is at {url}  (Ctrl-C stops it)", flush=True)
            if open_browser:
                import webbrowser

                with contextlib.suppress(Exception):
                    webbrowser.open(url)
            code = server.wait()
            if code:
                print(f"Voila stopped with status {code}:\n{server.log()}", file=sys.stderr)
            return code
    except KeyboardInterrupt:
        print("\nstopping ...", file=sys.stderr, flush=True)
        return 130
    except _Signalled as signalled:
        return 128 + signalled.number
    finally:
        # a second Ctrl-C (or SIGTERM) must not leave Voila or the folder behind
        with _signals(signal.SIG_IGN, [signal.SIGINT, *stopping]):
            server.stop()
