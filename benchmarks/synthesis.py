"""Time the optimisation loops of vizwidgets.synthesis, each against one forward+backward.

Usage: python benchmarks/synthesis.py [--repeats 3] [--threads 2] [--write docs/synthesis.md]

Default model (EfficientNet-Lite0) at 224x224, default options unless said:

- channel maximisation: ``maximize(model, Channel("blocks.10", 3), steps=256)`` (Fourier);
- class visualisation: ``maximize(model, "goldfinch", steps=128)``;
- style transfer: ``style_transfer(model, "chelsea", "starry_night", steps=200)`` with Adam,
  and with L-BFGS;
- targeted attack: ``fool(model, five images, "goldfinch")`` (confidence 0.9, 8/255), time per
  image, and the single-image case;
- feature inversion of blocks.3, 200 steps.

Each loop is timed whole (median of ``--repeats``); the ratio divides the time per step by
one bare forward+backward of a 224x224 image measured in the same run. With --write the
table replaces the text between ``<!-- benchmark:synthesis -->`` and
``<!-- /benchmark:synthesis -->``.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch

import vizwidgets as vw
from vizwidgets.synthesis import Channel, fool, invert_features, maximize, style_transfer

from _shared import median_time, write_between_markers

FIVE = ["chelsea", "coffee", "rocket", "orange", "baboon"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = vw.load_model()
    x = model.preprocess("chelsea")

    def forward_backward() -> None:
        inputs = x.clone().requires_grad_(True)
        model.model(inputs)[0, 285].backward()

    fb = median_time(forward_backward, 10)
    print(f"forward+backward {fb * 1000:.1f} ms (median of 10)")
    steps_of: dict[str, float] = {}

    def attack_steps(images: list[str]) -> float:
        result = fool(model, images, "goldfinch", progress=False)
        steps_of[f"fool{len(images)}"] = float(result.steps.float().mean())
        return float(result.steps.sum())

    cases = [
        ("channel maximisation, 256 steps",
         lambda: maximize(model, Channel("blocks.10", 3), steps=256, progress=False), 256, 1),
        ("class visualisation, 128 steps",
         lambda: maximize(model, "goldfinch", steps=128, progress=False), 128, 1),
        ("style transfer, Adam, 200 steps",
         lambda: style_transfer(model, "chelsea", "starry_night", steps=200, progress=False), 200, 1),
        ("style transfer, L-BFGS, 100 steps",
         lambda: style_transfer(model, "chelsea", "starry_night", steps=100, optimizer="lbfgs", progress=False),
         100, 1),
        ("feature inversion (blocks.3), 200 steps",
         lambda: invert_features(model, "chelsea", "blocks.3", steps=200, progress=False), 200, 1),
        ("targeted attack, 5 images in one batch", lambda: attack_steps(FIVE), None, 5),
        ("targeted attack, 1 image (chelsea)", lambda: attack_steps(["chelsea"]), None, 1),
    ]
    rows = []
    for label, run, steps, images in cases:
        seconds = median_time(run, args.repeats, warmup=False)
        if steps is None:  # attacks: gradient steps actually taken (images stop when fooled)
            steps = steps_of[f"fool{images}"]
            per_step = seconds / (steps * images) if steps else float("nan")
            note = f"{steps:.1f} steps per image on average"
        else:
            per_step = seconds / steps
            note = f"{steps} steps"
        rows.append((label, seconds / images, per_step / fb, note))
        print(
            f"{label:<42} {seconds:7.2f} s  {seconds / images:6.2f} s/image  {per_step / fb:5.2f}x per step  ({note})"
        )

    table = [
        f"Measured by `python benchmarks/synthesis.py --threads {args.threads}` on {platform.machine()} "
        f"with {args.threads} threads, torch {torch.__version__}: default model, 224x224, median of "
        f"{args.repeats} runs. One forward+backward took {fb * 1000:.0f} ms in the same run; the ratio "
        "is the time per step (per image and step for attacks) over that.",
        "",
        "| loop | time per image | per step vs forward+backward | notes |",
        "| --- | ---: | ---: | --- |",
        *(f"| {label} | {s:.1f} s | {ratio:.2f}x | {note} |" for label, s, ratio, note in rows),
    ]
    if args.write is not None:
        write_between_markers(args.write, "benchmark:synthesis", "\n".join(table))


if __name__ == "__main__":
    main()
