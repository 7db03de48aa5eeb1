"""Helpers the benchmark scripts share: timing medians and writing a table into the docs."""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path


def median_time(run: Callable[[], object], repeats: int, warmup: bool = True) -> float:
    """Median wall time of ``repeats`` calls of ``run`` (after one warm-up call)."""
    if warmup:
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def write_between_markers(path: Path, marker: str, text: str) -> None:
    """Replace what stands between ``<!-- marker -->`` and ``<!-- /marker -->`` in ``path``."""
    page = path.read_text()
    pattern = re.compile(rf"(<!-- {re.escape(marker)} -->\n).*?(<!-- /{re.escape(marker)} -->)", re.DOTALL)
    if not pattern.search(page):
        raise SystemExit(f"{path} has no <!-- {marker} --> markers")
    path.write_text(pattern.sub(lambda m: m.group(1) + text + "\n" + m.group(2), page))
    print(f"wrote the table into {path}")
