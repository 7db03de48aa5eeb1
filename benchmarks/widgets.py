"""Latency of the Explorer: from a control change to the new map (with --browser: on screen).

Usage: python benchmarks/widgets.py [--repeats 20] [--threads 2] [--write docs/widgets.md] [--browser]

With ``--browser``: Voila serves the Explorer on 127.0.0.1 and Debian's chromium (Playwright)
changes the controls; the page itself times each change, from the select's ``change`` event to
the map view drawing the new picture, kernel and websocket included: the method switched to
Grad-CAM with its map computed afresh (the map cache holds one entry), and the colour map
changed (drawn in the browser, no model call).

Headless (no browser): setting a control's value runs its callback, which ends by setting
the map view's traits, so the time around the assignment is the latency the kernel adds
(sending the map and the browser's drawing come on top: see --browser). Default model, 224x224, chelsea.

- re-render from the cache: opacity, colormap, normalisation and sign (no model call);
- switching between single-pass methods (gradient, gradient x input, guided backprop,
  deconvnet, CAM, Grad-CAM, Grad-CAM++, XGrad-CAM, Layer-CAM, LRP), each computed afresh
  (the cache emptied before every switch);
- the same switches served from the cache.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from vizwidgets.widgets import Explorer

from _shared import write_between_markers

SINGLE_PASS = ["gradient", "gradient_x_input", "guided_backprop", "deconvnet", "cam", "grad_cam", "grad_cam_pp",
               "xgrad_cam", "layer_cam", "lrp"]


def timed(assign) -> float:
    start = time.perf_counter()
    assign()
    return time.perf_counter() - start


# In the page: the time of the last control change (a select's "change", a button's "click"),
# and the map view's stamp of the moment it drew.
_LISTEN = """() => { window.__changed = 0;
    document.addEventListener('change', () => { window.__changed = performance.now(); }, true);
    document.addEventListener('click', () => { window.__changed = performance.now(); }, true); }"""
_DRAWN = """version => { const c = document.querySelector('canvas.vizwidgets-map');
    return c && Number(c.dataset.version || 0) > version; }"""
_LATENCY = """() => { const c = document.querySelector('canvas.vizwidgets-map');
    return [Number(c.dataset.drawnAt) - window.__changed, Number(c.dataset.version)]; }"""
_NOTEBOOK = """from vizwidgets.widgets import Explorer
explorer = Explorer(images=["chelsea"])
explorer.session.maps.size = 1  # every method change computes its map afresh
explorer"""


def browser(repeats: int) -> list[tuple[str, list[float], str]]:
    """Voila serves the Explorer on 127.0.0.1; chromium changes controls and the page times each
    change to the map view's drawing (the kernel, the websocket and the drawing all count)."""
    import shutil

    from playwright.sync_api import sync_playwright

    from vizwidgets.app import serve
    from vizwidgets.attribution import METHODS

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("--browser needs chromium (apt-get install chromium)")
    # Voila, its kernel and its folder are stopped and removed when the block ends
    with serve(port=0, source=_NOTEBOOK) as url:
        with sync_playwright() as playwright:
            chrome = playwright.chromium.launch(executable_path=chromium, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
            try:
                page = chrome.new_page(viewport={"width": 1200, "height": 1000})
                page.goto(url, timeout=120_000)
                page.wait_for_function(_DRAWN, arg=0, timeout=180_000)
                page.evaluate(_LISTEN)
                methods = page.locator("select").nth(1)
                colours = page.locator("select").nth(4)
                # a Dropdown's options are its labels, spaces shown as no-break spaces
                gradient, grad_cam = (f"{METHODS[m].family}: {METHODS[m].title}".replace(" ", "\xa0")
                                      for m in ("gradient", "grad_cam"))

                def timed_change(change: Any) -> float:
                    version = int(page.locator("canvas.vizwidgets-map").first.get_attribute("data-version") or 0)
                    change()
                    page.wait_for_function(_DRAWN, arg=version, timeout=60_000)
                    latency, _ = page.evaluate(_LATENCY)
                    return float(latency) / 1000

                for _ in range(2):  # warm up both paths
                    timed_change(lambda: methods.select_option(label=gradient))
                    timed_change(lambda: methods.select_option(label=grad_cam))
                    timed_change(lambda: colours.select_option(label="inferno"))
                    timed_change(lambda: colours.select_option(label="jet"))
                method_times, display_times = [], []
                for i in range(repeats):
                    timed_change(lambda: methods.select_option(label=gradient))
                    method_times.append(timed_change(lambda: methods.select_option(label=grad_cam)))
                    colour = "inferno" if i % 2 == 0 else "jet"
                    display_times.append(timed_change(lambda c=colour: colours.select_option(label=c)))
            finally:
                chrome.close()
    return [
        ("in chromium: method changed to grad_cam, computed afresh", method_times, "< 400 ms"),
        ("in chromium: colour map changed (no model call)", display_times, "< 100 ms"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", type=Path, default=None)
    parser.add_argument("--browser", action="store_true",
                        help="time in chromium, through Voila: from the change in the page to the map drawn")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.browser:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # for the kernel Voila starts
        rows = browser(args.repeats)
        for label, times, target in rows:
            print(f"{label:<58} median {statistics.median(times) * 1000:6.1f} ms  max {max(times) * 1000:6.1f} ms  "
                  f"(n={len(times)}) {target}")
        if args.write is not None:
            table = [
                f"Measured by `python benchmarks/widgets.py --browser --threads {args.threads} --repeats "
                f"{args.repeats}` on {platform.machine()} with {args.threads} threads, torch {torch.__version__}: "
                "Voila serving the Explorer to Debian's chromium on 127.0.0.1; time in the page from the "
                "control's change event to the map view drawing the new picture.",
                "",
                "| change | median | slowest | target |",
                "| --- | ---: | ---: | --- |",
                *(f"| {label.removeprefix('in chromium: ')} | {statistics.median(t) * 1000:.0f} ms | "
                  f"{max(t) * 1000:.0f} ms | {target} |" for label, t, target in rows),
            ]
            write_between_markers(args.write, "benchmark:widgets-browser", "\n".join(table))
        return
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
        "setting a control to the map view holding the new map (the browser draws it; see --browser).",
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
