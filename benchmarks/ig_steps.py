"""Integrated Gradients: completeness error against time, by step count and quadrature rule.

Usage: python benchmarks/ig_steps.py [--images apple astronaut ...] [--steps 16 32 50 64 128]
       [--rules gausslegendre riemann_middle] [--threads 2] [--write docs/attribution.md]

For each bundled image (default: six of them), the default model's predicted class and the
default (black) baseline, the script runs ``IntegratedGradients`` at each step count with each
quadrature rule and records the completeness error ``|sum IG - (F(x) - F(x'))| / |F(x) - F(x')|``
(Sundararajan, Taly & Yan 2017; the paper asks for under 5 %) and the time per image. It
prints the mean and median error over the images and the median time, one row per setting,
so the default can be picked by the curve: the fewest steps whose error is as low as a longer
run's. Every setting runs in the method's default chunk size, on the same images, in one run.

With --write, the table replaces the text between ``<!-- benchmark:ig-steps -->`` and
``<!-- /benchmark:ig-steps -->`` in that file.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

import vizwidgets as vw
from vizwidgets.attribution.integrated import IntegratedGradients

from _shared import write_between_markers

IMAGES = ("apple", "astronaut", "baboon", "chelsea", "coffee", "rocket")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="+", default=list(IMAGES))
    parser.add_argument("--steps", nargs="+", type=int, default=[16, 32, 50, 64, 128])
    parser.add_argument("--rules", nargs="+", default=["gausslegendre", "riemann_middle"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    loaded = vw.load_model()
    method = IntegratedGradients(loaded)
    errors: dict[tuple[str, int], list[float]] = {}
    seconds: dict[tuple[str, int], list[float]] = {}
    for name in args.images:
        x = loaded.preprocess(name)
        method.attribute(x, None, steps=4)  # warm-up
        with torch.no_grad():
            logits = loaded.model(torch.cat([x, method.make_baseline(x, "black")]))
        target = int(logits[0].argmax())  # the class attribute_with_delta picks for None
        change = float(logits[0, target] - logits[1, target])
        for rule in args.rules:
            for steps in args.steps:
                start = time.perf_counter()
                _, delta = method.attribute_with_delta(x, None, steps=steps, quadrature=rule)
                spent = time.perf_counter() - start
                errors.setdefault((rule, steps), []).append(abs(float(delta[0])) / abs(change))
                seconds.setdefault((rule, steps), []).append(spent)
        print(f"{name}: " + ", ".join(
            f"{rule} {steps}: {100 * errors[(rule, steps)][-1]:.1f} %" for rule in args.rules for steps in args.steps
        ), flush=True)

    lines = [
        f"Measured by `python benchmarks/ig_steps.py --threads {args.threads}` on {platform.machine()} with "
        f"{args.threads} threads, torch {torch.__version__}: default model, black baseline, predicted class, "
        f"images {', '.join(args.images)}; completeness error `|delta| / |F(x) - F(x')|` and time per image "
        "(median; the time includes the delta's own forward pass).",
        "",
        "| quadrature | steps | mean error | median error | worst | time per image |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for rule in args.rules:
        for steps in args.steps:
            found = errors[(rule, steps)]
            lines.append(
                f"| {rule} | {steps} | {100 * statistics.mean(found):.1f} % | {100 * statistics.median(found):.1f} % "
                f"| {100 * max(found):.1f} % | {statistics.median(seconds[(rule, steps)]):.2f} s |"
            )
    text = "\n".join(lines)
    print(text)
    if args.write is not None:
        write_between_markers(args.write, "benchmark:ig-steps", text)


if __name__ == "__main__":
    main()
