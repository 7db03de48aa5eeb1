"""Files written whole or not at all: a temporary name in the same folder, then a rename."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["write_atomic"]


def write_atomic(target: Path, write: bytes | Callable[[BinaryIO], object]) -> None:
    """Write ``write`` (bytes, or a function given the open stream) to a temporary file next to
    ``target``, then rename it to ``target``; on any failure the temporary file is removed and
    ``target`` is unchanged."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            if isinstance(write, bytes):
                stream.write(write)
            else:
                write(stream)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
