"""Servers the tests start (Voila, JupyterLab): on 127.0.0.1 only, and always stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running(
    command: Sequence[str], ready_url: str, log: Path, *, cwd: Path | None = None,
    env: dict[str, str] | None = None, timeout: float = 120,
) -> Iterator[subprocess.Popen]:
    """Start ``command`` in its own process group, wait until ``ready_url`` answers, yield the
    process; on the way out stop the whole group (SIGTERM, then SIGKILL after 30 s)."""
    with log.open("w") as stream:
        server = subprocess.Popen(
            list(command), cwd=cwd, env=env, stdout=stream, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    with urllib.request.urlopen(ready_url, timeout=5):
                        break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{command[2:4]} did not start:\n{log.read_text()[-3000:]}") from None
                    time.sleep(0.5)
            yield server
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
