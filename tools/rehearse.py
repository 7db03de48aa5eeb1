"""Rehearse a workshop on a real JupyterHub, on this machine, and size the server for it.

Starts JupyterHub on 127.0.0.1 (configurable-http-proxy from ``tools/hub``, DummyAuthenticator
with a password, SimpleLocalProcessSpawner), logs in N learners through the hub's login form,
starts their single-user servers, copies the notebook into each learner's home, and has every
learner run its code cells in order, all at once, through their own server's kernel websocket.
For each learner it records the peak memory and the CPU seconds of the server's process tree
(kernel included), the time to the first picture, the total time and the errors; it prints a
sizing table, and can write it as JSON and into a markdown file. Then it stops everything.

Everything lives in one temporary folder (the hub's database, cookie secret, proxy token, logs,
the learners' homes) and listens on 127.0.0.1 only. Cells tagged ``raises-exception`` may raise
(the learner notebooks leave their exercises as ``NotImplementedError``); any other error fails.

Prerequisites (once)::

    .venv/bin/pip install jupyterhub
    npm ci --prefix tools/hub          # configurable-http-proxy, from tools/hub/package-lock.json

Example::

    .venv/bin/python tools/rehearse.py --learners 3 --notebook course/01_saliency.ipynb \\
        --json build/rehearsal.json --write course/INSTRUCTORS.md

Exit status: 0 when every learner's notebook ran without unexpected errors; 1 when a learner
failed or the hub did not start; 2 for bad arguments or missing prerequisites; 124 when the run
went past ``--timeout`` (everything is stopped first).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import html
import json
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Sequence
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PROXY = REPO / "tools" / "hub" / "node_modules" / ".bin" / "configurable-http-proxy"
MARK_START = "<!-- rehearsal -->"
MARK_END = "<!-- /rehearsal -->"
PICTURE_TYPES = ("image/png", "application/vnd.jupyter.widget-view+json")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
#: seconds kept back from --timeout for stopping servers, hub and proxy
STOP_RESERVE = 30.0
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TIMEOUT = 0, 1, 2, 124
MIB = 1024 * 1024

__all__ = ["main", "Rehearsal", "LearnerResult", "TreeSampler", "summarise", "write_markdown"]


class RehearsalError(RuntimeError):
    """Something the rehearsal cannot go on without (the hub did not start, a login failed)."""


# --------------------------------------------------------------------------- measuring processes


class TreeSampler(threading.Thread):
    """Samples a set of processes every ``interval`` seconds, in a thread of its own.

    ``processes`` returns the processes to sample now (for a learner: the single-user server and
    all its descendants, the kernel included). Records the peak of their summed resident memory
    (RSS: pages shared with other processes count in full, as they do in a container of its own),
    every ``pss_every`` samples the peak of their summed proportional memory (PSS: shared pages
    divided among the processes that share them, as on one machine where all kernels load the
    same libraries), and, per process, the last CPU time seen (user + system): processes that
    exit during the run keep the CPU time of their last sample, so :meth:`finish` gives the CPU
    seconds of the whole tree, exited children included (up to one interval of their last work).
    """

    def __init__(self, processes: Callable[[], list[Any]], interval: float = 0.2, pss_every: int = 5) -> None:
        super().__init__(daemon=True)
        self._processes = processes
        self.interval = interval
        self.pss_every = pss_every
        self.peak_rss = 0
        self.pss = 0
        self.samples = 0
        self.cpu: dict[tuple[int, float], float] = {}
        self._stop_event = threading.Event()
        self._lock = threading.Lock()

    @property
    def pids(self) -> list[tuple[int, float]]:
        """Every process seen, as ``(pid, create_time)``."""
        with self._lock:
            return list(self.cpu)

    def sample(self, final: bool = False) -> None:
        """One sample: summed RSS and PSS (peaks kept) and each process's CPU time."""
        import psutil

        rss = pss = 0
        with_pss = self.samples % self.pss_every == 0 or final
        try:
            processes = self._processes()
        except psutil.Error:
            return
        with self._lock:
            for process in processes:
                try:
                    with process.oneshot():
                        memory = process.memory_info().rss
                        times = process.cpu_times()
                        key = (process.pid, process.create_time())
                    if with_pss:
                        pss += process.memory_full_info().pss
                except (psutil.Error, AttributeError):  # exited since the listing; no PSS off Linux
                    continue
                rss += memory
                self.cpu[key] = times.user + times.system
            self.peak_rss = max(self.peak_rss, rss)
            self.pss = max(self.pss, pss)
            self.samples += 1

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def finish(self) -> float:
        """Stop sampling after a last sample; the CPU seconds of every process seen."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=5)
        self.sample(final=True)
        with self._lock:
            return sum(self.cpu.values())


def process_tree(pid: int) -> list[Any]:
    """The process ``pid`` and all its descendants (psutil processes); empty once it is gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def processes_mentioning(text: str, exclude: Iterable[int] = ()) -> list[Any]:
    """Live processes whose command line or environment contains ``text`` (readable ones only)."""
    import psutil

    skip = set(exclude)
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if process.pid in skip:
            continue
        try:
            if text in " ".join(process.info["cmdline"] or ()):
                found.append(process)
                continue
            if any(text in value for value in process.environ().values()):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _own_lineage() -> set[int]:
    """This process and its ancestors (their command lines may name the work folder)."""
    import psutil

    pids = {os.getpid()}
    with contextlib.suppress(psutil.Error):
        pids.update(parent.pid for parent in psutil.Process().parents())
    return pids


def kill_leftovers(recorded: Iterable[tuple[int, float]], workdir: Path) -> list[dict[str, Any]]:
    """SIGKILL every recorded process still alive (same pid and start time), then every process
    that names ``workdir`` in its command line or environment; what had to be killed."""
    import psutil

    killed: list[dict[str, Any]] = []
    candidates: dict[int, Any] = {}
    for pid, created in recorded:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            if abs(process.create_time() - created) < 0.01:
                candidates[pid] = process
    for process in processes_mentioning(str(workdir), exclude=_own_lineage()):
        candidates.setdefault(process.pid, process)
    for process in candidates.values():
        with contextlib.suppress(psutil.Error):
            killed.append({"pid": process.pid, "cmdline": " ".join(process.cmdline())[:200]})
            process.kill()
    if candidates:
        psutil.wait_procs(list(candidates.values()), timeout=5)
    return killed


# --------------------------------------------------------------------------- the hub


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _memory_gib() -> float:
    import psutil

    return psutil.virtual_memory().total / 1024**3


@dataclasses.dataclass
class HubSettings:
    """Where the hub lives and how it starts single-user servers."""

    workdir: Path
    proxy: Path
    threads: int
    password: str = dataclasses.field(default_factory=lambda: secrets.token_urlsafe(16))
    service_token: str = dataclasses.field(default_factory=lambda: secrets.token_hex(32))
    proxy_token: str = dataclasses.field(default_factory=lambda: secrets.token_hex(32))
    port: int = dataclasses.field(default_factory=free_port)
    hub_port: int = dataclasses.field(default_factory=free_port)
    proxy_api_port: int = dataclasses.field(default_factory=free_port)

    @property
    def url(self) -> str:
        """The hub's public address (the proxy)."""
        return f"http://127.0.0.1:{self.port}"

    def home(self, name: str) -> Path:
        """A learner's home folder."""
        return self.workdir / "home" / name

    def config(self) -> str:
        """The text of ``jupyterhub_config.py``."""
        environment = {name: str(self.threads) for name in THREAD_VARIABLES}
        args = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
        values = {
            "JupyterHub.ip": "127.0.0.1",
            "JupyterHub.port": self.port,
            "JupyterHub.hub_ip": "127.0.0.1",
            "JupyterHub.hub_port": self.hub_port,
            "JupyterHub.db_url": f"sqlite:///{self.workdir / 'jupyterhub.sqlite'}",
            "JupyterHub.cookie_secret_file": str(self.workdir / "jupyterhub_cookie_secret"),
            "JupyterHub.pid_file": str(self.workdir / "jupyterhub.pid"),
            "JupyterHub.authenticator_class": "dummy",
            "JupyterHub.spawner_class": "simple",
            "JupyterHub.cleanup_servers": True,
            "JupyterHub.cleanup_proxy": True,
            "JupyterHub.services": [{"name": "rehearsal", "api_token": self.service_token}],
            "JupyterHub.load_roles": [{
                "name": "rehearsal",
                "description": "tools/rehearse.py: stop servers, read their pids",
                "scopes": ["admin:users", "admin:servers", "admin:server_state"],
                "services": ["rehearsal"],
            }],
            "ConfigurableHTTPProxy.command": [str(self.proxy)],
            "ConfigurableHTTPProxy.api_url": f"http://127.0.0.1:{self.proxy_api_port}",
            "ConfigurableHTTPProxy.auth_token": self.proxy_token,
            "ConfigurableHTTPProxy.pid_file": str(self.workdir / "proxy.pid"),
            "ConfigurableHTTPProxy.should_start": True,
            "DummyAuthenticator.password": self.password,
            "Authenticator.allow_all": True,
            "SimpleLocalProcessSpawner.home_dir_template": str(self.workdir / "home" / "{username}"),
            "Spawner.cmd": [sys.executable, "-m", "jupyterhub.singleuser"],
            "Spawner.args": args,
            "Spawner.ip": "127.0.0.1",
            "Spawner.environment": environment,
            "Spawner.start_timeout": 300,
            "Spawner.http_timeout": 300,
            "Spawner.default_url": "/lab",
        }
        lines = ["# written by tools/rehearse.py; everything on 127.0.0.1", "c = get_config()  # noqa"]
        lines += [f"c.{key} = {value!r}" for key, value in values.items()]
        return "\n".join(lines) + "\n"


class Hub:
    """A JupyterHub process in its own process group; its proxy is its child (own session)."""

    def __init__(self, settings: HubSettings) -> None:
        self.settings = settings
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = settings.workdir / "jupyterhub.log"
        self.proxy: Any = None  # psutil.Process of configurable-http-proxy, once found
        self.sampler: TreeSampler | None = None

    def start(self) -> None:
        """Write the configuration and start ``jupyterhub`` (does not wait)."""
        workdir = self.settings.workdir
        (workdir / "home").mkdir(parents=True, exist_ok=True)
        config = workdir / "jupyterhub_config.py"
        config.write_text(self.settings.config())
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("JUPYTERHUB_", "CONFIGPROXY_", "JPY_")) and key != "MPLBACKEND"}
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
        env["VIZWIDGETS_REHEARSAL"] = str(workdir)  # the proxy inherits it: leftovers can be found
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(config)],
                cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the hub's log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    async def wait_ready(self, client: Any, deadline: float) -> str:
        """Wait until the hub answers through the proxy; its version."""
        from tornado.httpclient import HTTPClientError

        url = f"{self.settings.url}/hub/api/"
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RehearsalError(f"jupyterhub exited with status {self.process.returncode}:\n{self.log_tail()}")
            try:
                response = await client.fetch(url, request_timeout=5, raise_error=False)
                if response.code == 200:
                    self._find_proxy()
                    self.sampler = TreeSampler(self._hub_and_proxy)
                    self.sampler.start()
                    return str(json.loads(response.body)["version"])
            except (OSError, HTTPClientError):
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise RehearsalError(f"jupyterhub did not answer at {url}:\n{self.log_tail()}")
            await asyncio.sleep(0.3)

    def _find_proxy(self) -> None:
        """The proxy the hub started: its child (in a session of its own)."""
        import psutil

        if self.proxy is not None or self.process is None:
            return
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.process.pid).children():
                if "configurable-http-proxy" in " ".join(child.cmdline()):
                    self.proxy = child

    def _hub_and_proxy(self) -> list[Any]:
        import psutil

        processes = []
        if self.process is not None:
            with contextlib.suppress(psutil.Error):
                processes.append(psutil.Process(self.process.pid))
        if self.proxy is not None and self.proxy.is_running():
            processes.append(self.proxy)
        return processes

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the hub's process group (the hub stops the servers and the proxy it
        started), then SIGKILL after ``timeout``; then the same for the proxy if it is left."""
        import psutil

        if self.sampler is not None:
            self.sampler.finish()
        self._find_proxy()
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=10)
        if self.proxy is not None:  # psutil checks that it is still the same process
            try:
                self.proxy.terminate()
                self.proxy.wait(timeout=5)
            except psutil.TimeoutExpired:
                with contextlib.suppress(psutil.Error):
                    self.proxy.kill()
            except psutil.Error:
                pass  # already gone: the hub stopped it


# --------------------------------------------------------------------------- one learner


@dataclasses.dataclass
class LearnerResult:
    """What one learner's rehearsal measured. Times are seconds; memory is MiB."""

    name: str
    login: str = ""
    server_start_seconds: float | None = None
    kernel_start_seconds: float | None = None
    first_picture_seconds: float | None = None
    run_seconds: float | None = None
    total_seconds: float | None = None
    peak_memory_mib: float = 0.0
    proportional_memory_mib: float = 0.0
    cpu_seconds: float = 0.0
    cells: int = 0
    cells_run: int = 0
    expected_errors: int = 0
    errors: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    finished: bool = False
    server_pid: int | None = None

    @property
    def ok(self) -> bool:
        """Finished every cell with no unexpected error."""
        return self.finished and not self.errors

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with ``ok``."""
        return {**dataclasses.asdict(self), "ok": self.ok}


def _cookies(response: Any, jar: dict[str, str]) -> None:
    for header in response.headers.get_list("Set-Cookie"):
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        for key, morsel in cookie.items():
            jar[key] = morsel.value


def _cookie_header(jar: dict[str, str]) -> str:
    return "; ".join(f"{key}={value}" for key, value in jar.items())


def _decode_message(data: str | bytes) -> dict[str, Any]:
    """A kernel message from the server's legacy websocket protocol (JSON text, or binary with
    buffers: the number of parts, their offsets, the JSON message first)."""
    if isinstance(data, str):
        return json.loads(data)
    count = struct.unpack("!I", data[:4])[0]
    offsets = struct.unpack(f"!{count}I", data[4:4 + 4 * count])
    end = offsets[1] if count > 1 else len(data)
    return json.loads(data[offsets[0]:end].decode("utf8"))


def _has_picture(message: dict[str, Any]) -> bool:
    if message.get("msg_type") not in ("display_data", "execute_result", "update_display_data"):
        return False
    data = message.get("content", {}).get("data", {})
    return any(kind in data for kind in PICTURE_TYPES)


class Learner:
    """One learner: log in, start the server, run the notebook's code cells over the websocket."""

    def __init__(self, name: str, rehearsal: Rehearsal) -> None:
        self.name = name
        self.rehearsal = rehearsal
        self.settings = rehearsal.settings
        self.result = LearnerResult(name)
        self.token = ""
        self.sampler: TreeSampler | None = None
        self.started = False
        self.measured = False

    def say(self, text: str) -> None:
        """A progress line."""
        self.rehearsal.say(f"{self.name}: {text}")

    async def fetch(self, path: str, method: str = "GET", body: Any = None, *, token: str | None = None,
                    expect: Sequence[int] = (200,), timeout: float = 120) -> Any:
        """A request to the hub's public address with a token; the decoded JSON answer."""
        from tornado.httpclient import HTTPRequest

        headers = {"Authorization": f"token {token or self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        elif method in ("POST", "PUT", "PATCH"):
            data = ""
        request = HTTPRequest(self.settings.url + path, method=method, headers=headers, body=data,
                              request_timeout=timeout, follow_redirects=False)
        response = await self.rehearsal.client.fetch(request, raise_error=False)
        if response.code not in expect:
            text = (response.body or b"").decode("utf8", "replace")[:500]
            raise RehearsalError(f"{method} {path} answered {response.code}: {text}")
        return json.loads(response.body) if response.body else None

    async def log_in(self) -> None:
        """The hub's real login form (xsrf included), then an API token of the learner's own."""
        from tornado.httpclient import HTTPRequest

        client = self.rehearsal.client
        jar: dict[str, str] = {}
        page = await client.fetch(f"{self.settings.url}/hub/login", raise_error=False)
        if page.code != 200:
            raise RehearsalError(f"GET /hub/login answered {page.code}")
        _cookies(page, jar)
        found = re.search(rb'name="_xsrf"\s+value="([^"]+)"', page.body)
        xsrf = html.unescape(found.group(1).decode()) if found else jar.get("_xsrf", "")
        form = urllib.parse.urlencode({"username": self.name, "password": self.settings.password, "_xsrf": xsrf})
        response = await client.fetch(HTTPRequest(
            f"{self.settings.url}/hub/login?next=", method="POST", body=form, follow_redirects=False,
            headers={"Cookie": _cookie_header(jar), "Content-Type": "application/x-www-form-urlencoded"},
        ), raise_error=False)
        _cookies(response, jar)
        if response.code != 302 or "jupyterhub-session-id" not in jar:
            raise RehearsalError(f"login as {self.name} failed: {response.code}")
        # the xsrf token is tied to the logged-in user: fetch a page for a fresh one
        fresh = await client.fetch(HTTPRequest(f"{self.settings.url}/hub/token", headers={
            "Cookie": _cookie_header(jar)}, follow_redirects=False), raise_error=False)
        _cookies(fresh, jar)
        token = await client.fetch(HTTPRequest(
            f"{self.settings.url}/hub/api/users/{self.name}/tokens", method="POST",
            body=json.dumps({"note": "tools/rehearse.py", "expires_in": 86400}),
            headers={"Cookie": _cookie_header(jar), "X-XSRFToken": jar.get("_xsrf", ""),
                     "Content-Type": "application/json"},
        ), raise_error=False)
        if token.code != 201:
            raise RehearsalError(f"{self.name} could not make an API token: {token.code} "
                                 f"{(token.body or b'').decode('utf8', 'replace')[:300]}")
        self.token = json.loads(token.body)["token"]
        self.result.login = "form"

    async def start_server(self, notebook: Path, deadline: float) -> None:
        """Copy the notebook into the home, start the server through the hub, find its pid."""
        home = self.settings.home(self.name)
        home.mkdir(parents=True, exist_ok=True)
        shutil.copy2(notebook, home / notebook.name)
        began = time.monotonic()
        self.started = True
        await self.fetch(f"/hub/api/users/{self.name}/server", "POST", expect=(201, 202))
        while True:
            model = await self.fetch(f"/hub/api/users/{self.name}")
            server = model.get("servers", {}).get("")
            if server and server.get("ready"):
                break
            if not server:
                raise RehearsalError(f"{self.name}'s server did not start; see {self.rehearsal.hub.log_path}")
            if time.monotonic() > deadline:
                raise RehearsalError(f"{self.name}'s server was not ready before the deadline")
            await asyncio.sleep(0.3)
        self.result.server_start_seconds = time.monotonic() - began
        state = await self.fetch(f"/hub/api/users/{self.name}", token=self.settings.service_token)
        pid = int(state["servers"][""]["state"]["pid"])
        self.result.server_pid = pid
        self.sampler = TreeSampler(lambda: process_tree(pid))
        self.sampler.start()
        self.say(f"server ready in {self.result.server_start_seconds:.1f} s (pid {pid})")

    async def run_notebook(self, notebook: Path) -> None:
        """Create a kernel in the learner's server and run the code cells in order."""
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        base = f"/user/{self.name}"
        model = await self.fetch(f"{base}/api/contents/{urllib.parse.quote(notebook.name)}?content=1")
        cells = [(index, cell) for index, cell in enumerate(model["content"]["cells"])
                 if cell["cell_type"] == "code" and "".join(cell["source"]).strip()]
        self.result.cells = len(cells)
        kernel_name = model["content"].get("metadata", {}).get("kernelspec", {}).get("name", "python3")
        began = time.monotonic()
        kernel = await self.fetch(f"{base}/api/kernels", "POST", {"name": kernel_name, "path": notebook.name},
                                  expect=(201,))
        self.kernel_id = kernel["id"]
        session = uuid.uuid4().hex
        url = self.settings.url.replace("http", "ws", 1) + f"{base}/api/kernels/{kernel['id']}/channels"
        socket_ = await websocket_connect(HTTPRequest(
            f"{url}?session_id={session}", headers={"Authorization": f"token {self.token}"}, request_timeout=120,
        ), max_message_size=256 * MIB)
        try:
            await self._request(socket_, session, "kernel_info_request", {})
            self.result.kernel_start_seconds = time.monotonic() - began
            self.say(f"kernel ready in {self.result.kernel_start_seconds:.1f} s; running {len(cells)} code cells")
            first = time.monotonic()
            for index, cell in cells:
                tags = cell.get("metadata", {}).get("tags", [])
                reply, error = await self._execute(socket_, session, "".join(cell["source"]), first)
                self.result.cells_run += 1
                if reply.get("status") == "error" or error:
                    ename = reply.get("ename") or (error or {}).get("ename", "?")
                    if "raises-exception" in tags:
                        self.result.expected_errors += 1
                    else:
                        evalue = str(reply.get("evalue") or (error or {}).get("evalue", ""))[:200]
                        self.result.errors.append({"cell": index, "ename": ename, "evalue": evalue})
                        self.say(f"cell {index}: {ename}: {evalue}")
            self.result.run_seconds = time.monotonic() - first
            self.result.finished = True
        finally:
            socket_.close()

    async def _request(self, socket_: Any, session: str, msg_type: str, content: dict[str, Any],
                       on_iopub: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Send a shell request; the reply's content, once the kernel is idle again after it."""
        msg_id = uuid.uuid4().hex
        socket_.write_message(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": msg_type, "username": self.name, "session": session,
                       "date": datetime.datetime.now(datetime.timezone.utc).isoformat(), "version": "5.3"},
            "parent_header": {}, "metadata": {}, "content": content, "channel": "shell", "buffers": [],
        }))
        reply: dict[str, Any] | None = None
        idle = False
        while reply is None or not idle:
            data = await socket_.read_message()
            if data is None:
                raise RehearsalError("the kernel's websocket closed (did the kernel die?)")
            message = _decode_message(data)
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                if on_iopub is not None and message.get("channel") == "iopub":
                    on_iopub(message)
                continue
            channel = message.get("channel")
            if channel == "shell" and message.get("msg_type", "").endswith("_reply"):
                reply = message.get("content", {})
            elif channel == "iopub":
                if message.get("msg_type") == "status" and message["content"].get("execution_state") == "idle":
                    idle = True
                elif on_iopub is not None:
                    on_iopub(message)
        return reply

    async def _execute(self, socket_: Any, session: str, code: str,
                       first: float) -> tuple[dict[str, Any], dict[str, Any] | None]:
        error: dict[str, Any] | None = None

        def watch(message: dict[str, Any]) -> None:
            nonlocal error
            if message.get("msg_type") == "error" and error is None:
                error = message.get("content", {})
            if self.result.first_picture_seconds is None and _has_picture(message):
                self.result.first_picture_seconds = time.monotonic() - first
                self.say(f"first picture after {self.result.first_picture_seconds:.1f} s")

        reply = await self._request(socket_, session, "execute_request", {
            "code": code, "silent": False, "store_history": True, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": False,
        }, on_iopub=watch)
        return reply, error

    async def shut_down_kernel(self) -> None:
        """Delete the kernel (the server stops it)."""
        kernel_id = getattr(self, "kernel_id", None)
        if kernel_id:
            with contextlib.suppress(Exception):
                await self.fetch(f"/user/{self.name}/api/kernels/{kernel_id}", "DELETE", expect=(204,), timeout=30)

    def measure(self) -> None:
        """Final CPU and peak memory of the server's tree (once)."""
        if self.sampler is not None and not self.measured:
            self.measured = True
            self.result.cpu_seconds = round(self.sampler.finish(), 2)
            self.result.peak_memory_mib = round(self.sampler.peak_rss / MIB, 1)
            self.result.proportional_memory_mib = round(self.sampler.pss / MIB, 1)

    async def run(self, notebook: Path, deadline: float) -> LearnerResult:
        """The whole rehearsal for this learner; errors are recorded, not raised (timeouts are)."""
        began = time.monotonic()
        try:
            await self.log_in()
            self.say("logged in through /hub/login")
            await self.start_server(notebook, deadline)
            await self.run_notebook(notebook)
            self.measure()
            await self.shut_down_kernel()
            self.result.total_seconds = time.monotonic() - began
            problems = f"{len(self.result.errors)} unexpected errors" if self.result.errors else "no unexpected errors"
            self.say(f"finished {self.result.cells_run} cells in {self.result.run_seconds:.1f} s, {problems}, "
                     f"peak {self.result.peak_memory_mib:.0f} MiB, {self.result.cpu_seconds:.1f} CPU s")
        except Exception as error:  # one learner's failure is recorded; the others go on
            self.result.errors.append({"cell": None, "ename": type(error).__name__, "evalue": str(error)[:500]})
            self.say(f"failed: {error}")
        finally:
            self.measure()
        return self.result


# --------------------------------------------------------------------------- the rehearsal


class Rehearsal:
    """The hub, the learners, and what they measured."""

    def __init__(self, settings: HubSettings, notebook: Path, learners: int, timeout: float) -> None:
        self.settings = settings
        self.notebook = notebook
        self.hub = Hub(settings)
        self.learners = [Learner(f"learner-{i + 1}", self) for i in range(learners)]
        self.began = time.monotonic()
        self.end = self.began + timeout  # everything, stopping included, is over by then
        self.interrupted = False
        self.hub_version = ""
        self.client: Any = None  # tornado's AsyncHTTPClient, made in run()

    async def run_bounded(self, deadline: float) -> None:
        """:meth:`run` until ``deadline`` (then ``TimeoutError``); SIGINT and SIGTERM cancel it
        (``CancelledError``, :attr:`interrupted` set); either way the servers are stopped."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def interrupt() -> None:
            self.interrupted = True
            task.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, interrupt)
        try:
            await asyncio.wait_for(self.run(deadline), timeout=max(1.0, deadline - time.monotonic()))
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    def time_left(self, most: float, keep: float = 0.0) -> float:
        """Seconds for a stopping step: at most ``most``, leaving ``keep`` for later steps."""
        return max(1.0, min(most, self.end - time.monotonic() - keep))

    def say(self, text: str) -> None:
        """A progress line on stderr, with the seconds since the start."""
        print(f"[{time.monotonic() - self.began:6.1f} s] {text}", file=sys.stderr, flush=True)

    async def run(self, deadline: float) -> None:
        """Start the hub, run every learner at once, stop the learners' servers."""
        from tornado.httpclient import AsyncHTTPClient

        self.client = AsyncHTTPClient(force_instance=True, max_clients=4 * len(self.learners) + 4)
        self.say(f"starting JupyterHub on {self.settings.url} (work folder {self.settings.workdir})")
        self.hub.start()
        try:
            self.hub_version = await self.hub.wait_ready(self.client, deadline)
            self.say(f"JupyterHub {self.hub_version} is up; {len(self.learners)} learners log in")
            await asyncio.gather(*(learner.run(self.notebook, deadline) for learner in self.learners))
        except asyncio.CancelledError:
            self.say("interrupted: stopping everything" if self.interrupted
                     else "out of time (--timeout): stopping everything")
            raise
        finally:
            await self._stop_servers()

    async def _stop_servers(self) -> None:
        """Stop the learners' servers through the API (bounded); the hub stops any left."""
        async def stop(learner: Learner) -> None:
            with contextlib.suppress(Exception):
                await learner.fetch(f"/hub/api/users/{learner.name}/server", "DELETE",
                                    token=self.settings.service_token, expect=(202, 204, 400, 404), timeout=20)
                for _ in range(60):
                    model = await learner.fetch(f"/hub/api/users/{learner.name}", token=self.settings.service_token)
                    if not model.get("servers"):
                        return
                    await asyncio.sleep(0.25)

        started = [learner for learner in self.learners if learner.started]
        if started and self.hub.process is not None and self.hub.process.poll() is None:
            self.say("stopping the learners' servers")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(stop(learner) for learner in started)),
                                       timeout=self.time_left(20, keep=10))

    def recorded_pids(self) -> list[tuple[int, float]]:
        """Every process the rehearsal saw: hub, proxy, servers, kernels."""
        pids: list[tuple[int, float]] = []
        for learner in self.learners:
            if learner.sampler is not None:
                pids += learner.sampler.pids
        if self.hub.sampler is not None:
            pids += self.hub.sampler.pids
        return pids


# --------------------------------------------------------------------------- report


def summarise(results: Sequence[LearnerResult], burst_seconds: float) -> dict[str, Any]:
    """Max peak memory, mean CPU seconds, and the sizing figures derived from them.

    - learners per core = burst_seconds / mean CPU seconds: if every learner ran the whole
      notebook at the same moment, one core would finish that many of them within
      ``burst_seconds``;
    - learners per GB = 1024 MiB / max peak MiB: how many of the largest learner fit in 1 GiB;
    - learners per GB, shared = 1024 MiB / max proportional MiB: the same where all kernels run on
      one machine from one environment and share the pages of their libraries (PyTorch's).
    """
    memories = [r.peak_memory_mib for r in results if r.peak_memory_mib > 0]
    cpus = [r.cpu_seconds for r in results if r.cpu_seconds > 0]
    pictures = [r.first_picture_seconds for r in results if r.first_picture_seconds is not None]
    peak = max(memories) if memories else 0.0
    shared = max((r.proportional_memory_mib for r in results), default=0.0)
    mean_cpu = sum(cpus) / len(cpus) if cpus else 0.0
    return {
        "max_peak_memory_mib": round(peak, 1),
        "mean_cpu_seconds": round(mean_cpu, 2),
        "max_first_picture_seconds": round(max(pictures), 2) if pictures else None,
        "burst_seconds": burst_seconds,
        "learners_per_core": round(burst_seconds / mean_cpu, 2) if mean_cpu else None,
        "learners_per_gb": round(1024 / peak, 2) if peak else None,
        "max_proportional_memory_mib": round(shared, 1),  # peak PSS, sampled every second
        "learners_per_gb_shared": round(1024 / shared, 2) if shared else None,
        "formulas": {
            "learners_per_core": "burst_seconds / mean_cpu_seconds",
            "learners_per_gb": "1024 / max_peak_memory_mib",
            "learners_per_gb_shared": "1024 / max_proportional_memory_mib",
        },
    }


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(report: dict[str, Any]) -> str:
    """The sizing table and summary, as markdown."""
    rows = ["| learner | server start s | first picture s | notebook s | peak memory MiB | CPU s | "
            "unexpected errors |", "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for learner in report["learners"]:
        errors = ", ".join(f"cell {e['cell']}: {e['ename']}" for e in learner["errors"])
        errors = errors or ("0" if learner["finished"] else f"did not finish ({learner['cells_run']} cells run)")
        rows.append(f"| {learner['name']} | {_fmt(learner['server_start_seconds'])} | "
                    f"{_fmt(learner['first_picture_seconds'])} | {_fmt(learner['run_seconds'])} | "
                    f"{learner['peak_memory_mib']:.0f} | {learner['cpu_seconds']:.1f} | {errors} |")
    s = report["summary"]
    machine = report["machine"]
    lines = rows + [
        "",
        *([f"- **the rehearsal did not finish ({'interrupted' if report['interrupted'] else '--timeout'}): "
           "the figures below are partial**"] if report["timed_out"] or report["interrupted"] else []),
        f"- max peak memory per learner: **{s['max_peak_memory_mib']:.0f} MiB** (resident memory summed over "
        "the learner's single-user server and its kernel, sampled every 0.2 s)",
        f"- mean CPU per learner: **{s['mean_cpu_seconds']:.1f} s** (user + system of that process tree, "
        "server start, kernel start and every code cell)",
        f"- learners per core = {s['burst_seconds']:.0f} s / mean CPU s = **{_fmt(s['learners_per_core'])}** "
        f"(if everyone ran the whole notebook at once, each would wait about {s['burst_seconds']:.0f} s)",
        f"- learners per GB = 1024 MiB / max peak MiB = **{_fmt(s['learners_per_gb'], 2)}** (each server in a "
        "container of its own, as on Kubernetes)",
        f"- on one machine, where the kernels share their libraries' pages: peak proportional memory (PSS, "
        f"sampled every second) {s['max_proportional_memory_mib']:.0f} MiB, so 1024 / that = "
        f"**{_fmt(s['learners_per_gb_shared'], 2)}** learners per GB",
        f"- the hub and its proxy: {report['hub']['peak_memory_mib']:.0f} MiB together (once, not per learner)",
        f"- measured on {machine['cores']} CPU cores and {machine['memory_gib']:.1f} GiB of memory; "
        f"{report['threads']} thread(s) per kernel ({', '.join(THREAD_VARIABLES[:2])}); "
        f"{len(report['learners'])} learners at once; JupyterHub {report['jupyterhub']}, "
        f"configurable-http-proxy {report['proxy_version']}, Python {machine['python']}",
    ]
    return "\n".join(lines)


def write_markdown(path: Path, report: dict[str, Any]) -> None:
    """Put the table between ``<!-- rehearsal -->`` and ``<!-- /rehearsal -->`` in ``path``
    (appended at the end when the markers are not there), with the command that made it."""
    text = path.read_text() if path.exists() else ""
    block = (f"{MARK_START}\n"
             f"Measured on {report['date']} with\n`{report['command']}`\n"
             f"(exit status {report['exit_status']}, {report['elapsed_seconds']:.0f} s in all):\n\n"
             f"{table(report)}\n{MARK_END}")
    starts, ends = text.count(MARK_START), text.count(MARK_END)
    if starts == ends == 0:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    elif starts == ends == 1 and text.index(MARK_START) < text.index(MARK_END):
        before, rest = text.split(MARK_START, 1)
        after = rest.split(MARK_END, 1)[1]
        text = before + block + after
    else:
        raise ValueError(f"{path}: expected one {MARK_START} ... {MARK_END} pair, found {starts} and {ends}")
    path.write_text(text)


# --------------------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python tools/rehearse.py",
        description="Rehearse a workshop: N learners run a notebook at once on a real JupyterHub on "
                    "127.0.0.1; prints peak memory, CPU seconds and time to the first picture per learner, "
                    "and how many learners a core and a GB can take.",
        epilog="Needs: pip install jupyterhub; npm ci --prefix tools/hub (configurable-http-proxy). "
               "Exit status: 0 all learners ran the notebook without unexpected errors, 1 a learner failed "
               "or the hub did not start, 2 bad arguments or missing prerequisites, 124 timeout.",
    )
    parser.add_argument("--learners", type=int, default=3, help="learners running the notebook at once (default 3)")
    parser.add_argument("--notebook", type=Path, default=REPO / "course" / "01_saliency.ipynb",
                        help="the notebook each learner runs (default course/01_saliency.ipynb)")
    parser.add_argument("--timeout", type=float, default=900,
                        help="seconds for the whole run, stopping included (default 900); past it everything "
                             "is stopped and the exit status is 124")
    parser.add_argument("--threads", type=int, default=None,
                        help="OMP_NUM_THREADS and MKL_NUM_THREADS (also OpenBLAS, numexpr) for each server; "
                             "default max(1, cores // learners)")
    parser.add_argument("--burst-seconds", type=float, default=60.0,
                        help="for 'learners per core': how long learners may wait if all run the whole "
                             "notebook at once (default 60)")
    parser.add_argument("--json", type=Path, help="write the figures as JSON to this file")
    parser.add_argument("--write", type=Path, metavar="MARKDOWN",
                        help=f"write the table between {MARK_START} and {MARK_END} in this markdown file")
    parser.add_argument("--workdir", type=Path,
                        help="an empty or new folder for the hub's state and the learners' homes (kept); "
                             "default: a temporary folder, removed afterwards unless the run failed or --keep")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, homes)")
    parser.add_argument("--proxy", type=Path, default=PROXY,
                        help="the configurable-http-proxy executable (default tools/hub/node_modules/.bin/...)")
    args = parser.parse_args(argv)
    if args.learners < 1:
        parser.error("--learners must be at least 1")
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.burst_seconds <= 0:
        parser.error("--burst-seconds must be positive")
    if not args.notebook.is_file() or args.notebook.suffix != ".ipynb":
        parser.error(f"--notebook {args.notebook}: no such .ipynb file")
    if args.workdir is not None and args.workdir.exists() and any(args.workdir.iterdir()):
        parser.error(f"--workdir {args.workdir} is not empty")
    return args


def missing_prerequisites(proxy: Path) -> list[str]:
    """What is not installed, each with the command that installs it."""
    problems = []
    for module in ("jupyterhub", "jupyter_server", "ipykernel", "psutil", "tornado"):
        try:
            __import__(module)
        except ImportError:
            problems.append(f"the Python package {module} is missing: {sys.executable} -m pip install jupyterhub")
    if not os.access(proxy, os.X_OK):
        problems.append(f"configurable-http-proxy is missing at {proxy}: run `npm ci --prefix tools/hub` "
                        "in the repository (node 20 or newer)")
    return problems


def _proxy_version(proxy: Path) -> str:
    try:
        result = subprocess.run([str(proxy), "--version"], capture_output=True, text=True, timeout=30)
        lines = result.stdout.strip().splitlines()
        return lines[0] if result.returncode == 0 and lines else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def _display_path(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(REPO))
    return str(path)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the rehearsal; the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    problems = missing_prerequisites(args.proxy)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    import psutil

    began = time.monotonic()
    deadline = began + args.timeout - min(STOP_RESERVE, args.timeout / 3)
    threads = args.threads or max(1, _cores() // args.learners)
    keep = args.keep or args.workdir is not None
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="vizwidgets-rehearsal-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    settings = HubSettings(workdir=workdir, proxy=args.proxy.resolve(), threads=threads)
    rehearsal = Rehearsal(settings, args.notebook.resolve(), args.learners, args.timeout)
    rehearsal.say(f"{args.learners} learners, {threads} thread(s) each, notebook {_display_path(args.notebook)}, "
                  f"timeout {args.timeout:.0f} s")
    status = EXIT_OK
    try:
        asyncio.run(rehearsal.run_bounded(deadline))
    except asyncio.TimeoutError:
        status = EXIT_TIMEOUT
    except RehearsalError as error:
        status = EXIT_FAILED
        rehearsal.say(f"error: {error}")
    except (asyncio.CancelledError, KeyboardInterrupt):
        status = EXIT_FAILED
    finally:
        for learner in rehearsal.learners:
            learner.measure()
        rehearsal.say("stopping the hub and its proxy")
        rehearsal.hub.stop(timeout=rehearsal.time_left(15, keep=3))
        stragglers = kill_leftovers(rehearsal.recorded_pids(), workdir)
    for straggler in stragglers:
        rehearsal.say(f"warning: process {straggler['pid']} was still running and was killed: {straggler['cmdline']}")
    results = [learner.result for learner in rehearsal.learners]
    if status == EXIT_OK and not all(result.ok for result in results):
        status = EXIT_FAILED

    report: dict[str, Any] = {
        "command": shlex.join(["python", "tools/rehearse.py", *argv]),
        "date": datetime.date.today().isoformat(),
        "notebook": _display_path(args.notebook),
        "exit_status": status,
        "ok": status == EXIT_OK,
        "timed_out": status == EXIT_TIMEOUT,
        "interrupted": rehearsal.interrupted,
        "elapsed_seconds": round(time.monotonic() - began, 1),
        "timeout_seconds": args.timeout,
        "threads": threads,
        "jupyterhub": rehearsal.hub_version or "?",
        "proxy_version": _proxy_version(settings.proxy),
        "machine": {"cores": _cores(), "memory_gib": round(_memory_gib(), 1), "python": platform.python_version(),
                    "psutil": psutil.__version__},
        "hub": {"peak_memory_mib": round((rehearsal.hub.sampler.peak_rss if rehearsal.hub.sampler else 0) / MIB, 1)},
        "learners": [result.as_dict() for result in results],
        "summary": summarise(results, args.burst_seconds),
        "workdir": str(workdir),
        "processes": [{"pid": pid, "create_time": created} for pid, created in rehearsal.recorded_pids()],
        "stragglers": stragglers,
    }
    print(table(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.write is not None and status == EXIT_OK:
        write_markdown(args.write, report)
        rehearsal.say(f"wrote the figures into {args.write}")
    elif args.write is not None:
        rehearsal.say(f"not writing {args.write}: the rehearsal failed")
    if status != EXIT_OK and not rehearsal.interrupted:
        rehearsal.say(f"the hub's log is kept: {rehearsal.hub.log_path}")
    elif not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
