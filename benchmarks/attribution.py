"""Time every attribution method against the bare passes it cannot avoid and against the peer
libraries on the same model object, in one run.

Usage: python benchmarks/attribution.py [--repeats 5] [--threads 2] [--skip score_cam ...]
       [--no-peers] [--no-vgg] [--write docs/attribution.md]

Default model (EfficientNet-Lite0), one 224x224 image (chelsea), class 285, default options.
Every ratio is the median of paired ratios: the method and what it is compared with run one
after the other, ``--repeats`` times, so a machine that speeds up or slows down during the run
does not skew it. Score-CAM over all 1280 channels runs once (``score_cam`` in ``--skip`` leaves
it out). Four tables:

1. **Ours against the bare passes.** The bare passes run on the contiguous input, as a user's
   own loop would (EfficientNet-Lite0's methods run channels-last; the channels-last passes are
   printed too). They are: for the CAMs that need one backward to the layer (CAM needs none),
   one forward pass without gradients, because the backward from the logit to the last layer is
   tiny; for the other single-pass methods one forward+backward to the input; for SmoothGrad
   and Integrated Gradients ``samples`` or ``steps`` forward+backward passes in the method's
   chunk size; for Score-CAM and occlusion their forward passes, batched as the method does.
2. **Ours against the peers** (``benchmarks/_peers.py``: captum, pytorch-grad-cam, torch-cam,
   zennit, those installed; ``pip install -e ".[bench]"``): our time over theirs, same model
   object, same input, same options. Below 1 is faster.
3. **Integrated Gradients' error for its time**: the completeness error ``|sum IG - (F(x) -
   F(x'))| / |F(x) - F(x')|`` of ours (50 Gauss-Legendre steps, passes of 5) and of captum's
   default call (50 Gauss-Legendre steps, all in one pass) and its call in passes of 5.
4. **LRP on VGG16** (torchvision's, random weights, no download) against one forward+backward
   on it and against zennit.

With --write, the tables replace the text between ``<!-- benchmark:attribution -->`` and
``<!-- /benchmark:attribution -->`` (table 1) and ``<!-- benchmark:peers -->`` and
``<!-- /benchmark:peers -->`` (tables 2 to 4) in that file.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import vizwidgets as vw
from vizwidgets.attribution import METHODS, attribute
from vizwidgets.attribution.baselines import make_baseline
from vizwidgets.attribution.occlusion import window_starts
from vizwidgets.models import adapt

from _shared import median_time, paired_times, write_between_markers

IMAGE, TARGET = "chelsea", 285
#: CAMs whose only backward runs from the logit to the layer: their floor is one forward.
ONE_FORWARD = ("cam", "grad_cam", "grad_cam_pp", "xgrad_cam", "layer_cam")


def bare_passes(model: torch.nn.Module, x: Tensor, target: int) -> tuple[Callable[[int], None], Callable[[int], None]]:
    """``(forward, forward_backward)``: a user's own passes on ``batch`` copies of ``x``."""

    def forward(batch: int = 1) -> None:
        with torch.no_grad():
            model(x.expand(batch, -1, -1, -1))

    def forward_backward(batch: int = 1) -> None:
        inputs = x.expand(batch, -1, -1, -1).clone().requires_grad_(True)
        torch.autograd.grad(model(inputs)[:, target].sum(), inputs)

    return forward, forward_backward


def in_chunks(run: Callable[[int], None], count: int, chunk: int) -> Callable[[], None]:
    """``count`` bare passes, ``chunk`` images at a time, as the method batches them."""
    full, rest = divmod(count, chunk)

    def go() -> None:
        for _ in range(full):
            run(chunk)
        if rest:
            run(rest)

    return go


def ours_against_bare(loaded: Any, x: Tensor, args: argparse.Namespace) -> list[str]:
    model = loaded.model
    forward, forward_backward = bare_passes(model, x, TARGET)
    fb = median_time(forward_backward, args.repeats)
    fw = median_time(forward, args.repeats)
    cl = x.contiguous(memory_format=torch.channels_last)
    cl_forward, cl_forward_backward = bare_passes(model, cl, TARGET)
    cl_fb = median_time(cl_forward_backward, args.repeats)
    cl_fw = median_time(cl_forward, args.repeats)
    print(f"bare passes (batch 1, median of {args.repeats}): forward+backward {fb * 1000:.1f} ms, "
          f"forward {fw * 1000:.1f} ms; on channels-last inputs {cl_fb * 1000:.1f} ms and {cl_fw * 1000:.1f} ms")
    channels = {info.name: info.shape[0] for info in vw.list_layers(loaded)}[loaded.default_layer]

    rows = []
    for name, method in METHODS.items():
        if name in args.skip:
            continue
        defaults = {o.name: o.default for o in method.options}
        repeats = 1 if name == "score_cam" else args.repeats
        if name in ("smoothgrad", "integrated_gradients"):
            count = defaults.get("samples", defaults.get("steps"))
            chunk = defaults["chunk_size"]
            work = in_chunks(forward_backward, count, chunk)
            what = f"{count} forward+backward (chunks of {chunk})"
        elif name in ("score_cam", "fast_score_cam", "occlusion"):
            if name == "occlusion":
                stride = defaults["stride"] or defaults["window"] // 2
                count = len(window_starts(x.shape[-1], defaults["window"], stride)) ** 2
            else:
                count = channels if name == "score_cam" else min(defaults["top_k"], channels)
            chunk = defaults["chunk_size"]
            masked = in_chunks(forward, count, chunk)

            def work(masked: Callable[[], None] = masked) -> None:
                forward(1)  # the clean image's pass
                masked()

            what = f"{count + 1} forwards (chunks of {chunk})"
        elif name in ONE_FORWARD:
            work, what = forward, "1 forward"
        else:
            work, what = forward_backward, "1 forward+backward"
        seconds, ratio = paired_times(lambda name=name: attribute(loaded, x, TARGET, name), work, repeats)
        rows.append((name, seconds, ratio, what))
        print(f"{name:<22} {seconds * 1000:9.1f} ms   {ratio:5.2f}x {what}", flush=True)

    return [
        f"Measured by `python benchmarks/attribution.py --threads {args.threads}` on {platform.machine()} "
        f"with {args.threads} threads, torch {torch.__version__}: default model, one 224x224 image, "
        f"default options, median of {args.repeats} runs (Score-CAM: 1). Each run times the method "
        "and then the bare passes it needs, one after the other; the ratio is the median of "
        f"those paired ratios. One forward+backward took {fb * 1000:.0f} ms and one forward "
        f"{fw * 1000:.0f} ms at the start of the run (on channels-last inputs, which the "
        f"methods use on this model: {cl_fb * 1000:.0f} ms and {cl_fw * 1000:.0f} ms).",
        "",
        "| method | time per image | ratio | to what it needs |",
        "| --- | ---: | ---: | --- |",
        *(f"| `{n}` | {s * 1000:.0f} ms | {r:.2f}x | {w} |" for n, s, r, w in rows),
    ]


def ours_against_peers(loaded: Any, x: Tensor, args: argparse.Namespace, peers: Any) -> list[str]:
    runs = peers.peer_runs(loaded, x, TARGET)
    rows = []
    for name in METHODS:
        if name in args.skip or name not in runs:
            continue
        repeats = 1 if name == "score_cam" else args.repeats
        for label, run in runs[name].items():
            with peers.as_found(loaded.model):
                seconds, ratio = paired_times(lambda name=name: attribute(loaded, x, TARGET, name), run, repeats)
                theirs = seconds / ratio
            rows.append((name, label, seconds, theirs, ratio))
            print(f"{name:<22} {label:<58} ours {seconds * 1000:8.1f} ms  theirs ~{theirs * 1000:8.1f} ms  "
                  f"{ratio:5.2f}x", flush=True)
    return [
        "| method | peer | ours | theirs | ours / theirs |",
        "| --- | --- | ---: | ---: | ---: |",
        *(f"| `{n}` | {label} | {s * 1000:.0f} ms | {t * 1000:.0f} ms | {r:.2f}x |" for n, label, s, t, r in rows),
    ]


def completeness_error(loaded: Any, x: Tensor, attributions: Tensor) -> float:
    adapter = adapt(loaded)
    baseline = make_baseline(x, "black", mean=adapter.mean, std=adapter.std)
    with torch.no_grad():
        logits = loaded.model(torch.cat([x, baseline]))
    change = float(logits[0, TARGET] - logits[1, TARGET])
    return abs(float(attributions.sum()) - change) / abs(change)


def integrated_gradients(loaded: Any, x: Tensor, args: argparse.Namespace, peers: Any) -> list[str]:
    found = peers.peer_runs(loaded, x, TARGET, methods=["integrated_gradients"]).get("integrated_gradients", {})
    if not found:
        return ["(captum is not installed)"]

    def ours() -> Tensor:
        return attribute(loaded, x, TARGET, "integrated_gradients")

    rows = [("ours: 50 Gauss-Legendre steps, passes of 5", completeness_error(loaded, x, ours()), 1.0, None)]
    for label, run in found.items():
        with peers.as_found(loaded.model):
            error = completeness_error(loaded, x, run())
            seconds, ratio = paired_times(ours, run, args.repeats)
        rows.append((label, error, ratio, seconds / ratio))
        print(f"{label:<58} error {100 * error:.2f} %   ours/theirs {ratio:.2f}x", flush=True)
    return [
        "| run | completeness error | ours / its time |",
        "| --- | ---: | ---: |",
        *(f"| {label} | {100 * e:.2f} % | {'' if t is None else f'{r:.2f}x ({t:.2f} s)'} |" for label, e, r, t in rows),
    ]


def lrp_on_vgg16(args: argparse.Namespace, peers: Any) -> list[str]:
    vgg = peers.random_vgg16()
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    x = (x - torch.tensor(peers.IMAGENET_MEAN)[:, None, None]) / torch.tensor(peers.IMAGENET_STD)[:, None, None]
    _, forward_backward = bare_passes(vgg.module, x, TARGET)

    def ours() -> Tensor:
        return attribute(vgg, x, TARGET, "lrp")

    rows = []
    seconds, ratio = paired_times(ours, forward_backward, args.repeats)
    rows.append(("1 forward+backward", seconds, ratio))
    print(f"lrp on VGG16 {seconds * 1000:.0f} ms, {ratio:.2f}x one forward+backward", flush=True)
    for label, run in peers.peer_runs(vgg, x, TARGET, methods=["lrp"]).get("lrp", {}).items():
        with peers.as_found(vgg.module):
            seconds, ratio = paired_times(ours, run, args.repeats)
        rows.append((label, seconds, ratio))
        print(f"lrp on VGG16 against {label}: {ratio:.2f}x", flush=True)
    return [
        "| LRP (`composite='default'`) on VGG16 against | ours | ratio |",
        "| --- | ---: | ---: |",
        *(f"| {label} | {s * 1000:.0f} ms | {r:.2f}x |" for label, s, r in rows),
    ]


def load_peers() -> Any:
    import _peers

    return _peers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", type=Path, default=None)
    parser.add_argument("--skip", nargs="*", default=[], help="method names to leave out")
    parser.add_argument("--no-peers", action="store_true", help="only table 1")
    parser.add_argument("--no-vgg", action="store_true", help="leave out LRP on VGG16")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    loaded = vw.load_model()
    x = loaded.preprocess(IMAGE)
    table = ours_against_bare(loaded, x, args)
    if args.write is not None:
        write_between_markers(args.write, "benchmark:attribution", "\n".join(table))
    if args.no_peers:
        return

    peers = load_peers()
    # the peers' own notices (captum: "Setting backward hooks on ReLU activations", ...)
    warnings.filterwarnings("ignore", category=UserWarning)
    versions = []
    for package in ("captum", "grad-cam", "torchcam", "zennit"):
        try:
            versions.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{package} not installed")
    text = [
        f"Measured by `python benchmarks/attribution.py --threads {args.threads}` in the same run as the table "
        f"above ({', '.join(versions)}): our time and the peer's on the same model object and input, "
        f"median of {args.repeats} paired runs (Score-CAM: 1); the ratio is the median of the paired ratios "
        "and \"theirs\" is our median time over it.",
        "",
        *ours_against_peers(loaded, x, args, peers),
        "",
        "Integrated Gradients: the completeness error on this image and class (black baseline), and our "
        "time over each captum call's.",
        "",
        *integrated_gradients(loaded, x, args, peers),
    ]
    if not args.no_vgg:
        text += [
            "",
            "LRP on torchvision's VGG16 (random weights, one 224x224 input of uniform noise, normalised):",
            "",
            *lrp_on_vgg16(args, peers),
        ]
    print("\n".join(text))
    print(f"({time.perf_counter() - started:.0f} s in all)")
    if args.write is not None:
        write_between_markers(args.write, "benchmark:peers", "\n".join(text))


if __name__ == "__main__":
    main()
