"""explain() against bare attribute() calls: the chain must cost (almost) nothing on top.

Usage: python benchmarks/explain.py [--repeats 5] [--threads 2] [--images 16] [--method grad_cam]

For the same 16 images (the 12 bundled ones, then again from the top), in alternation:

- bare: for each image, ``model.inputs(image)`` then ``attribute(model, x, None, method)``:
  loading, preprocessing and one attribution whose pass also predicts (target None);
- explain: ``explain(model, images, method)``: the same, plus the top-5 prediction, the
  frozen results and the pixels for display, in its default chunks (one image on a CPU);
- for information, explain in chunks of 8, which costs more per image on a CPU.

It prints the median time per image of each and the median of the paired ratios
(explain / bare); the issue's promise is a ratio of at most 1.1.
"""

from __future__ import annotations

import argparse
import platform

import torch

import vizwidgets as vw
from vizwidgets.attribution import attribute
from vizwidgets.explain import explain

from _shared import paired_times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--method", default="grad_cam")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = vw.load_model()
    bundled = [s.name for s in vw.sample_images()]
    images = [bundled[i % len(bundled)] for i in range(args.images)]

    def bare() -> None:
        for image in images:
            attribute(model, model.inputs(image), None, args.method)

    def chained() -> None:
        explain(model, images, args.method)

    seconds, ratio = paired_times(chained, bare, args.repeats)
    _, ratio8 = paired_times(lambda: explain(model, images, args.method, chunk_size=8), bare, args.repeats)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads; "
          f"{args.method} on {args.images} images, {args.repeats} paired repeats")
    print(f"explain(): {seconds / args.images * 1000:.1f} ms per image (median)")
    print(f"explain() / {args.images} bare attribute() calls, median of paired ratios: {ratio:.3f}x "
          f"({'within' if ratio <= 1.1 else 'over'} the 1.1x promise)")
    print(f"explain(chunk_size=8) / bare, median of paired ratios: {ratio8:.3f}x")


if __name__ == "__main__":
    main()
