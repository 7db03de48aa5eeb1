"""A reference table: every attribution method on scenes of bundled images.

Usage: python benchmarks/localisation.py [--threads 2] [--skip score_cam] [--write docs/metrics.md]

Two 2x2 scenes are built with ``make_scene`` (cells of 224 pixels, so the 448x448 scene
shrinks to the model's 224x224 without distortion):

- chelsea (Egyptian cat) | chicky_512 (Pekinese) / orange | apple (Granny Smith)
- coffee (espresso) | butterfly (monarch) / baboon | squirrel_cls (fox squirrel)

For each of the 8 parts and each method (default options, default model) the map is
computed for that part's class on the whole scene and scored by:

- the pointing game (tolerance 15 pixels of the 224x224 input) against the part's box;
- the share of the map's positive energy inside the box;
- the deletion area (fill: mean colour) and insertion area (from a blurred scene), 50 steps,
  on the probability of the part's class.

Everything is deterministic (seeded options, no training), so the table is reproducible.
With --write the table replaces the text between ``<!-- reference:localisation -->`` and
``<!-- /reference:localisation -->``.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

import vizwidgets as vw
from vizwidgets.attribution import METHODS, attribute
from vizwidgets.metrics import deletion, energy_in_box, insertion, pointing_game

from _shared import write_between_markers

SCENES = (
    ("chelsea", "chicky_512", "orange", "apple"),
    ("coffee", "butterfly", "baboon", "squirrel_cls"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip", nargs="*", default=[], help="method names to leave out")
    parser.add_argument("--write", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = vw.load_model()
    height, width = model.input_size
    parts = []
    for names in SCENES:
        scene = vw.make_scene(list(names), columns=2)
        x = model.inputs(scene.image)
        parts.extend((x, box) for box in scene.boxes_at(width, height))
    with torch.no_grad():
        predictions = [int(model.model(x).argmax()) for x, _ in parts[::4]]
    print("scene predictions:", [model.classes[p] for p in predictions])
    rows = []
    for name in METHODS:
        if name in args.skip:
            continue
        hits, energies, deletions, insertions = [], [], [], []
        for x, box in parts:
            result = attribute(model, x, box.target, name)
            hits.append(bool(pointing_game(result, [box])[0]))
            energies.append(float(energy_in_box(result, [box])[0]))
            deletions.append(float(deletion(model, x, result, box.target).auc[0]))
            insertions.append(float(insertion(model, x, result, box.target).auc[0]))
        row = (
            name, sum(hits) / len(hits), statistics.mean(energies),
            statistics.mean(deletions), statistics.mean(insertions),
        )
        rows.append(row)
        print(
            f"{name:<22} pointing {row[1]:.2f}  energy {row[2]:.2f}  deletion {row[3]:.3f}  insertion {row[4]:.3f}",
            flush=True,
        )
    table = [
        f"Made by `python benchmarks/localisation.py`: default model, {len(parts)} parts of "
        f"{len(SCENES)} 2x2 scenes of bundled images, each map for its part's class, default options.",
        "",
        "| method | pointing game | energy in box "
        "| deletion area (lower is better) | insertion area (higher is better) |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(f"| `{n}` | {p:.2f} | {e:.2f} | {d:.3f} | {i:.3f} |" for n, p, e, d, i in rows),
    ]
    if args.write is not None:
        write_between_markers(args.write, "reference:localisation", "\n".join(table))


if __name__ == "__main__":
    main()
