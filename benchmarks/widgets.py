"""Latency of the Explorer: from a control change to the image widget's new value.

Usage: python benchmarks/widgets.py [--repeats 20] [--threads 2] [--write docs/widgets.md]

Headless (no browser): setting a control's value runs its callback, which ends by setting
the image widget's value, so the time around the assignment is the latency the kernel adds
(the browser's decode of a ~80 kB PNG comes on top). Default model, 224x224, chelsea.

- re-render from the cache: opacity, colormap, normalisation and sign (no model call);
- switching between single-pass methods (gradient, gradient x input, guided backprop,
  deconvnet, CAM, Grad-CAM, Grad-CAM++, XGrad-CAM, Layer-CAM, LRP), each computed afresh
  (the cache emptied before every switch);
- the same switches served from the cache.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from vizwidgets.widgets import Explorer

from _shared import write_between_markers

SINGLE_PASS = ["gradient", "gradient_x_input", "guided_backprop", "deconvnet", "cam", "grad_cam", "grad_cam_pp",
               "xgrad_cam", "layer_cam", "lrp"]


def timed(assign) -> float:
    start = time.perf_counter()
    assign()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    explorer = Explorer(images=["chelsea"])
    for method in SINGLE_PASS:  # warm up every code path once
        explorer.method.value = method
    explorer.method.value = "grad_cam"

    display = []
    controls = [(explorer.opacity, [0.3, 0.7]), (explorer.cmap, ["inferno", "jet"]),
                (explorer.scaling, ["max", "percentile"]), (explorer.sign, ["positive", "absolute"])]
    for i in range(args.repeats):
        control, values = controls[i % len(controls)]
        for value in values:
            display.append(timed(lambda c=control, v=value: setattr(c, "value", v)))
    fresh, cached = [], []
    for i in range(args.repeats):
        method = SINGLE_PASS[i % len(SINGLE_PASS)]
        explorer.method.value = "grad_cam" if method != "grad_cam" else "cam"
        explorer.session.maps._items.clear()
        fresh.append(timed(lambda m=method: setattr(explorer.method, "value", m)))
        explorer.method.value = "grad_cam" if method != "grad_cam" else "cam"
        cached.append(timed(lambda m=method: setattr(explorer.method, "value", m)))
    assert explorer.error.value == "", explorer.error.value
    rows = [
        ("re-render from the cache (opacity, colours, scaling, sign)", display, "< 100 ms"),
        ("switch to a single-pass method, computed afresh", fresh, "< 400 ms"),
        ("switch to a single-pass method, from the cache", cached, ""),
    ]
    for label, times, target in rows:
        print(
            f"{label:<58} median {statistics.median(times) * 1000:6.1f} ms  max {max(times) * 1000:6.1f} ms  "
            f"(n={len(times)}) {target}"
        )
    table = [
        f"Measured by `python benchmarks/widgets.py --threads {args.threads}` on {platform.machine()} with "
        f"{args.threads} threads, torch {torch.__version__}: the Explorer, headless, default model, 224x224; time from "
        "setting a control to the image widget holding the new picture.",
        "",
        "| change | median | slowest | target |",
        "| --- | ---: | ---: | --- |",
        *(
            f"| {label} | {statistics.median(t) * 1000:.0f} ms | {max(t) * 1000:.0f} ms | {target} |"
            for label, t, target in rows
        ),
    ]
    if args.write is not None:
        write_between_markers(args.write, "benchmark:widgets", "\n".join(table))


if __name__ == "__main__":
    main()
