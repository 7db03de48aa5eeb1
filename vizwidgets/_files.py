"""Files written whole or not at all: a temporary name in the same folder, then a rename."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["write_atomic", "scratch_prefix"]


def _file_mode() -> int:
    """The mode ``open()`` would give a new file: 0o666 less the process's umask (mkstemp's
    own 0o600 would make results unreadable to the rest of a team)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


_MODE = _file_mode()


def scratch_prefix() -> str:
    """``"<host>.<pid>."``: how temporary files in a scratch folder start, so that a later run can
    tell the leftovers of a process that was killed (same host, process gone) from the files of
    one still writing."""
    return f"{socket.gethostname()}.{os.getpid()}."


def write_atomic(
    target: Path, write: bytes | Callable[[BinaryIO], object], *, scratch: Path | None = None
) -> None:
    """Write ``write`` (bytes, or a function given the open stream) to a temporary file next to
    ``target`` (or in the folder ``scratch``, on the same file system), then rename it to
    ``target``; on any failure the temporary file is removed and ``target`` is unchanged."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if scratch is None:
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    else:
        handle, temporary = tempfile.mkstemp(prefix=scratch_prefix(), suffix=".part", dir=scratch)
    try:
        with os.fdopen(handle, "wb") as stream:
            if hasattr(os, "fchmod"):
                os.fchmod(stream.fileno(), _MODE)
            if isinstance(write, bytes):
                stream.write(write)
            else:
                write(stream)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
