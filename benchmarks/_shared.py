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


def paired_times(method: Callable[[], object], reference: Callable[[], object], repeats: int) -> tuple[float, float]:
    """``(median method time, median of method/reference ratios)``, timed in alternation.

    On a shared or throttled machine speed drifts over minutes; timing the method and its
    reference one after the other, ``repeats`` times, and taking the median of the paired
    ratios keeps the ratio honest when the absolute times move.
    """
    method()  # warm-up
    reference()
    times, ratios = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        reference()
        ref = time.perf_counter() - start
        start = time.perf_counter()
        method()
        spent = time.perf_counter() - start
        times.append(spent)
        ratios.append(spent / ref)
    return statistics.median(times), statistics.median(ratios)
