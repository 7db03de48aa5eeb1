"""How long the default model takes to become usable, measured in fresh processes.

Usage: python benchmarks/load_model.py [--runs 5] [--threads 2]

Each run starts a new Python process and times, in order: ``import vizwidgets`` (which must not
import torch), ``import torch, torchvision``, ``load_model()`` and one forward pass of a 224x224
image. Prints the median of each over the runs, and ``load_model()`` as a ratio of one forward.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import vizwidgets
t1 = time.perf_counter()
assert "torch" not in sys.modules
import torch, torchvision
torch.set_num_threads({threads})
t2 = time.perf_counter()
model = vizwidgets.load_model()
t3 = time.perf_counter()
x = torch.zeros(1, 3, 224, 224)
with torch.no_grad():
    model.model(x)  # warm-up
    t4 = time.perf_counter()
    model.model(x)
    t5 = time.perf_counter()
print(json.dumps({{"import vizwidgets": t1 - t0, "import torch+torchvision": t2 - t1,
                  "load_model()": t3 - t2, "forward (batch 1)": t5 - t4}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    results: list[dict[str, float]] = []
    for _ in range(args.runs):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD.format(threads=args.threads)],
            check=True,
            capture_output=True,
            text=True,
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))

    print(f"median of {args.runs} fresh processes, {args.threads} threads")
    medians = {key: statistics.median(r[key] for r in results) for key in results[0]}
    for key, value in medians.items():
        print(f"  {key:<26} {value * 1000:8.1f} ms")
    ratio = medians["load_model()"] / medians["forward (batch 1)"]
    print(f"  load_model() / forward     {ratio:8.1f}x")


if __name__ == "__main__":
    main()
