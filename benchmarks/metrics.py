"""Cost of the deletion metric against the forward passes it needs, and its chunk size.

Usage: python benchmarks/metrics.py [--repeats 5] [--threads 2] [--write docs/metrics.md]

Deletion with ``steps`` points scores ``steps + 1`` perturbed images, so it cannot cost less
than ``steps + 1`` forward passes of one image. The script times ``deletion(...)`` on chelsea
(default model, 224x224, a Grad-CAM map) for several chunk sizes, each paired with the same
number of bare forward passes batched the same way, and prints the median ratio. With
--write, the table replaces the text between ``<!-- benchmark:metrics -->`` and
``<!-- /benchmark:metrics -->``.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch

import vizwidgets as vw
from vizwidgets.attribution import attribute
from vizwidgets.metrics import deletion

from _shared import median_time, paired_times, write_between_markers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--write", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = vw.load_model()
    x = model.preprocess("chelsea")
    cam = attribute(model, x, 285, "grad_cam")
    passes = args.steps + 1

    def forwards(chunk: int) -> None:
        with torch.no_grad():
            full, rest = divmod(passes, chunk)
            for _ in range(full):
                model.model(x.expand(chunk, -1, -1, -1))
            if rest:
                model.model(x.expand(rest, -1, -1, -1))

    one = median_time(lambda: forwards(1), args.repeats)
    print(f"{passes} forwards one at a time: {one * 1000:.0f} ms (median of {args.repeats})")
    rows = []
    for chunk in (1, 2, 4, 8, 16):
        seconds, ratio = paired_times(
            lambda chunk=chunk: deletion(model, x, cam, 285, steps=args.steps, chunk_size=chunk),
            lambda chunk=chunk: forwards(chunk),
            args.repeats,
        )
        rows.append((chunk, seconds, ratio, seconds / one))
        print(f"chunk {chunk:>2}: {seconds * 1000:6.0f} ms  {ratio:.2f}x {passes} forwards in chunks of {chunk}  "
              f"{seconds / one:.2f}x {passes} single forwards")
    table = [
        f"Measured by `python benchmarks/metrics.py --threads {args.threads}` on {platform.machine()} with "
        f"{args.threads} threads, torch {torch.__version__}: deletion with {args.steps} steps on one 224x224 "
        f"image, median of {args.repeats} runs, each paired with {passes} bare forward passes batched the same "
        f"way. {passes} forwards of one image each took {one * 1000:.0f} ms.",
        "",
        "| chunk size | deletion | vs the same forwards | vs single forwards |",
        "| ---: | ---: | ---: | ---: |",
        *(f"| {c} | {s * 1000:.0f} ms | {r:.2f}x | {q:.2f}x |" for c, s, r, q in rows),
    ]
    if args.write is not None:
        write_between_markers(args.write, "benchmark:metrics", "\n".join(table))


if __name__ == "__main__":
    main()
