"""Peak memory of every method at its largest allowed option values, each in a fresh process.

Usage: python benchmarks/option_memory.py [--threads 2] [--limit-mb 4096] [--only NAME ...]
       [--write docs/attribution.md]

Default model (EfficientNet-Lite0), one 224x224 image (chelsea). Each case runs in its own
subprocess (``--case NAME``), which reports its peak resident memory (``ru_maxrss`` of itself:
model, inputs and the call together) and its time; the parent prints one table. The cases take
the registry's maxima: ``samples``, ``steps``, ``top_k`` and ``chunk_size`` at their upper
bounds, Score-CAM over all 1280 channels of the head with ``chunk_size=4096``, LRP with
epsilon and gamma at their maxima, and the synthesis loops at the largest size (1024 pixels)
and weights for two steps. A method's chunks are capped by the memory budget
(``VIZWIDGETS_MEMORY_BUDGET_MB``, 2048 by default; see ``vizwidgets.attribution.limits``), so
every case should stay well within ``--limit-mb``. The column "rows/pass" is the chunk the cap
allowed (items per forward pass, each of N = 1 rows here).

With --write, the table replaces the text between ``<!-- benchmark:option_memory -->`` and
``<!-- /benchmark:option_memory -->`` in that file.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _shared import write_between_markers

#: name -> (what it calls, options in words)
CASES: dict[str, str] = {
    "gradient": "no options (the floor: model, image and one forward+backward)",
    "smoothgrad": "samples=500, chunk_size=500",
    "integrated_gradients": "steps=1024, chunk_size=1024",
    "score_cam": "all 1280 channels, chunk_size=4096",
    "fast_score_cam": "top_k=4096 (all 1280), chunk_size=4096",
    "occlusion": "window=16, stride=16 (196 windows), chunk_size=4096",
    "lrp": "epsilon=1000, gamma=1000",
    "maximize": "size=1024, steps=2",
    "fooling_image": "size=1024, max_steps=2",
    "style_transfer": "style_weight=1e9, content_weight=1e9, tv_weight=1e9, steps=2",
}


def _run_case(name: str, threads: int) -> dict[str, Any]:
    """Run one case in this process and return its peak memory and time."""
    import torch

    torch.set_num_threads(threads)
    import vizwidgets as vw
    from vizwidgets.attribution import attribute
    from vizwidgets.attribution.limits import rows_per_pass
    from vizwidgets.synthesis import fooling_image, maximize, style_transfer

    loaded = vw.load_model()
    x = loaded.preprocess("chelsea")
    target = 285
    rows: int | None = None
    backward = name in ("smoothgrad", "integrated_gradients")
    requested = {"smoothgrad": 500, "integrated_gradients": 1024}.get(name, 4096)
    if name in ("smoothgrad", "integrated_gradients", "score_cam", "fast_score_cam", "occlusion"):
        rows = rows_per_pass(loaded.model, 224, 224, requested, backward=backward)
    calls: dict[str, Callable[[], object]] = {
        "gradient": lambda: attribute(loaded, x, target, "gradient"),
        "smoothgrad": lambda: attribute(loaded, x, target, "smoothgrad", samples=500, chunk_size=500),
        "integrated_gradients": lambda: attribute(
            loaded, x, target, "integrated_gradients", steps=1024, chunk_size=1024
        ),
        "score_cam": lambda: attribute(loaded, x, target, "score_cam", chunk_size=4096),
        "fast_score_cam": lambda: attribute(loaded, x, target, "fast_score_cam", top_k=4096, chunk_size=4096),
        "occlusion": lambda: attribute(loaded, x, target, "occlusion", window=16, stride=16, chunk_size=4096),
        "lrp": lambda: attribute(loaded, x, target, "lrp", epsilon=1000.0, gamma=1000.0),
        "maximize": lambda: maximize(loaded, target, size=1024, steps=2, progress=False),
        "fooling_image": lambda: fooling_image(loaded, target, size=1024, max_steps=2, progress=False),
        "style_transfer": lambda: style_transfer(
            loaded, "chelsea", "starry_night", style_weight=1e9, content_weight=1e9, tv_weight=1e9,
            steps=2, progress=False,
        ),
    }
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    calls[name]()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    return {"name": name, "peak_mb": peak, "before_mb": before, "seconds": seconds, "rows": rows}


def _table(results: list[dict[str, Any]], limit_mb: float) -> str:
    lines = [
        "| method | options | rows/pass | peak MB | before the call MB | seconds | within "
        f"{limit_mb / 1024:g} GB |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['name']} | {CASES[r['name']]} | | failed: {r['error']} | | | no |")
            continue
        rows = "" if r["rows"] is None else str(r["rows"])
        within = "yes" if r["peak_mb"] <= limit_mb else "no"
        lines.append(
            f"| {r['name']} | {CASES[r['name']]} | {rows} | {r['peak_mb']:.0f} | {r['before_mb']:.0f} "
            f"| {r['seconds']:.1f} | {within} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit-mb", type=float, default=4096.0, help="the peak each case must stay within")
    parser.add_argument("--only", nargs="*", default=None, help="case names to run (default: all)")
    parser.add_argument("--write", type=Path, default=None)
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)  # the child's entry
    args = parser.parse_args()
    if args.case is not None:
        print(json.dumps(_run_case(args.case, args.threads)))
        return

    names = args.only or list(CASES)
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        raise SystemExit(f"unknown cases {unknown}; known: {', '.join(CASES)}")
    results: list[dict[str, Any]] = []
    for name in names:
        child = subprocess.run(
            [sys.executable, __file__, "--case", name, "--threads", str(args.threads)],
            capture_output=True,
            text=True,
        )
        if child.returncode != 0:
            tail = (child.stderr.strip().splitlines() or [f"exit {child.returncode}"])[-1]
            results.append({"name": name, "error": tail.replace("|", "/")})
        else:
            results.append(json.loads(child.stdout.strip().splitlines()[-1]))
        print(f"{name}: {results[-1]}", file=sys.stderr, flush=True)
    # the largest child, as the kernel counted it: a check on the self-reported peaks
    children_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    table = _table(results, args.limit_mb)
    print(table)
    print(
        f"\n{platform.processor() or platform.machine()}, {args.threads} threads; largest child process "
        f"(RUSAGE_CHILDREN): {children_peak:.0f} MB"
    )
    if args.write is not None:
        write_between_markers(args.write, "benchmark:option_memory", table)


if __name__ == "__main__":
    main()
