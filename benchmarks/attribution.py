"""Time every attribution method against the bare passes it cannot avoid, in one run.

Usage: python benchmarks/attribution.py [--repeats 5] [--threads 2] [--write docs/attribution.md]

Default model (EfficientNet-Lite0), one 224x224 image (chelsea), default options. For each
method the script prints the median time per image and its ratio to the work it needs. The
method and its bare passes are timed one after the other, ``--repeats`` times, and the ratio
is the median of those paired ratios, so a machine that speeds up or slows down during the
run does not skew it. The bare passes are:

- single-pass methods (gradients, guided, CAM family, LRP): one forward+backward to the input;
- SmoothGrad and Integrated Gradients: ``samples`` or ``steps`` forward+backward passes, run
  in the method's default chunk size (the fastest batch for the hardware);
- Score-CAM and occlusion: their forward passes, batched as the method batches them.

With --write, the table replaces the text between the markers
``<!-- benchmark:attribution -->`` and ``<!-- /benchmark:attribution -->`` in that file.
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Callable
from pathlib import Path

import torch

import vizwidgets as vw
from vizwidgets.attribution import METHODS, attribute
from vizwidgets.attribution.occlusion import window_starts

from _shared import median_time, paired_times, write_between_markers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", type=Path, default=None)
    parser.add_argument("--skip", nargs="*", default=[], help="method names to leave out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    loaded = vw.load_model()
    model = loaded.model
    x = loaded.preprocess("chelsea")
    target = 285

    def forward_backward(batch: int = 1) -> None:
        inputs = x.expand(batch, -1, -1, -1).clone().requires_grad_(True)
        torch.autograd.grad(model(inputs)[:, target].sum(), inputs)

    def forward(batch: int = 1) -> None:
        with torch.no_grad():
            model(x.expand(batch, -1, -1, -1))

    fb = median_time(forward_backward, args.repeats)
    fw = median_time(forward, args.repeats)
    print(f"forward+backward {fb * 1000:.1f} ms, forward {fw * 1000:.1f} ms (batch 1, median of {args.repeats})")

    channels = {info.name: info.shape[0] for info in vw.list_layers(loaded)}[loaded.default_layer]

    def passes(run: Callable[[int], None], count: int, chunk: int) -> Callable[[], None]:
        """``count`` bare passes, ``chunk`` images at a time, as the method batches them."""
        full, rest = divmod(count, chunk)

        def go() -> None:
            for _ in range(full):
                run(chunk)
            if rest:
                run(rest)

        return go

    rows = []
    for name, method in METHODS.items():
        if name in args.skip:
            continue
        defaults = {o.name: o.default for o in method.options}
        repeats = 1 if name == "score_cam" else args.repeats
        if name in ("smoothgrad", "integrated_gradients"):
            count = defaults.get("samples", defaults.get("steps"))
            chunk = defaults["chunk_size"]
            work = passes(forward_backward, count, chunk)
            what = f"{count} forward+backward (chunks of {chunk})"
        elif name in ("score_cam", "fast_score_cam", "occlusion"):
            if name == "occlusion":
                stride = defaults["stride"] or defaults["window"] // 2
                count = len(window_starts(224, defaults["window"], stride)) ** 2
            else:
                count = channels if name == "score_cam" else min(defaults["top_k"], channels)
            chunk = defaults["chunk_size"]
            masked = passes(forward, count, chunk)

            def work(masked: Callable[[], None] = masked) -> None:
                forward(1)  # the clean image's pass
                masked()

            what = f"{count + 1} forwards (chunks of {chunk})"
        else:
            work, what = forward_backward, "1 forward+backward"
        seconds, ratio = paired_times(lambda name=name: attribute(loaded, x, target, name), work, repeats)
        rows.append((name, seconds, ratio, what))
        print(f"{name:<22} {seconds * 1000:9.1f} ms   {ratio:5.2f}x {what}")

    table = [
        f"Measured by `python benchmarks/attribution.py --threads {args.threads}` on {platform.machine()} "
        f"with {args.threads} threads, torch {torch.__version__}: default model, one 224x224 image, "
        f"default options, median of {args.repeats} runs (Score-CAM: 1). Each run times the method "
        "and then the bare passes it needs, one after the other; the ratio is the median of "
        f"those paired ratios. One forward+backward took {fb * 1000:.0f} ms and one forward "
        f"{fw * 1000:.0f} ms at the start of the run.",
        "",
        "| method | time per image | ratio | to what it needs |",
        "| --- | ---: | ---: | --- |",
        *(f"| `{n}` | {s * 1000:.0f} ms | {r:.2f}x | {w} |" for n, s, r, w in rows),
    ]
    text = "\n".join(table)
    if args.write is not None:
        write_between_markers(args.write, "benchmark:attribution", text)


if __name__ == "__main__":
    main()
