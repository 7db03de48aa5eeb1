"""Notebook 10's shortcut case, end to end, and the method-scoring table of ``docs/metrics.md``.

Trains :class:`~vizwidgets.models.radiograph_net.RadiographNet` twice with the notebook's seeds
and sizes: on radiographs whose marker follows the class (``marker="shortcut"``) and on the same
radiographs with the marker on half the images whatever their class (``marker="random"``, the
fix). For each model it prints the accuracies (training, a test set from the same "hospital",
a test set without any marker) and :func:`vizwidgets.metrics.relevance_mass_table`: the mean
relevance mass of each method in the nodule and in the marker, for the class "nodule", on 16
positive test images that carry the marker. It runs PyTorch on one thread: training sums its
floats in an order that depends on the thread count, and four epochs carry that difference
into the weights (Grad-CAM's share on the marker before the fix is 0.32 on one thread and 0.22
on two, on the same machine), so the documented numbers name their thread count. About 65 s.

Usage::

    python tools/shortcut_table.py           # prints Markdown for docs/metrics.md

``tests/test_shortcuts.py`` imports :func:`run` and checks the numbers of ``docs/metrics.md``
against a fresh run.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch

from vizwidgets.data import make_radiographs
from vizwidgets.metrics import MassTable, relevance_mass_table
from vizwidgets.models.radiograph_net import accuracy, radiograph_inputs, train_radiograph_net

__all__ = ["METHODS", "OPTIONS", "Outcome", "run", "markdown"]

#: The methods scored, and their options at 64x64 (notebook 10 uses the same).
METHODS = ("grad_cam", "integrated_gradients", "lrp", "occlusion")
OPTIONS = {"occlusion": {"window": 8, "stride": 4}}

@dataclass(frozen=True)
class Outcome:
    """One trained model of the case: its accuracies and its scoring table."""

    name: str
    accuracies: dict[str, float]
    table: MassTable

def run(
    seed: int = 0, *, images: int = 1200, epochs: int = 4, progress: bool = False, threads: int = 1
) -> list[Outcome]:
    """Train the shortcut model and the fixed one from ``seed`` on ``threads`` PyTorch threads
    (set for the call, then restored); score both (see the module)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _study(seed, images, epochs, progress)
    finally:
        torch.set_num_threads(before)


def _study(seed: int, images: int, epochs: int, progress: bool) -> list[Outcome]:
    test_same = make_radiographs(400, seed=seed + 1)
    test_clean = make_radiographs(400, seed=seed + 2, marker="none")
    scored = make_radiographs(32, seed=seed + 3, marker="always")[::2]  # 16 positives with marker
    x = radiograph_inputs(scored)
    regions = {"lesion": scored.lesion_masks, "marker": scored.marker_masks}
    outcomes = []
    for name, marker in (("before the fix (marker follows the class)", "shortcut"),
                         ("after the fix (marker at random)", "random")):
        train = make_radiographs(images, seed=seed, marker=marker)
        model = train_radiograph_net(train, epochs=epochs, seed=seed, progress=progress)
        accuracies = {
            "training": accuracy(model, train),
            "test, same hospital": accuracy(model, test_same),
            "test, no marker": accuracy(model, test_clean),
        }
        table = relevance_mass_table(model, x, regions, METHODS, target=1, options=OPTIONS)
        outcomes.append(Outcome(name, accuracies, table))
    return outcomes

def markdown(outcomes: list[Outcome]) -> str:
    """The accuracies and the tables, in Markdown."""
    names = list(outcomes[0].accuracies)
    lines = ["| model | " + " | ".join(names) + " |", "|" + " --- |" * (len(names) + 1)]
    for outcome in outcomes:
        lines.append(
            f"| {outcome.name} | " + " | ".join(f"{outcome.accuracies[n]:.1%}" for n in names) + " |"
        )
    for outcome in outcomes:
        lines += ["", f"Relevance mass, {outcome.name}:", "", outcome.table.to_markdown()]
    return "\n".join(lines)

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="the notebook's seed (default 0)")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="PyTorch threads (default 1, as docs/metrics.md and the tests; the numbers depend on it)",
    )
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    print(markdown(run(args.seed, progress=True, threads=args.threads)))
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
