"""explain_dataset() and the explain command against the loop a user would write by hand.

Usage: python benchmarks/batch.py [--images 200] [--repeats 3] [--threads 2] [--no-workers]
                                  [--records 1000 100000] [--profile 50]

It makes ``--images`` distinct JPEG files in a temporary folder (crops, flips and resizes of
the 12 bundled images) and times, end to end, each from a fresh output folder:

- (a) by hand: ``load_model()``, then for each file ``load_image`` -> ``model.preprocess`` ->
  ``METHODS["grad_cam"](model).attribute(x)`` -> ``np.save`` of the map;
- (b) ``explain_dataset(folder, out, "grad_cam", pictures=False)`` in this process: the same
  maps as (a) writes, plus the records and the summary (model loading and the weights digest
  included); and ``explain_dataset(folder, out, "grad_cam")`` with the PNG pictures too; both
  timed in alternation with (a); and once ``python -m vizwidgets explain ... --no-progress`` as a
  subprocess, to show what starting Python, importing torch and loading the model add;
- (c) ``explain_dataset(..., workers=2)``: the LocalCluster's start and stop included.

It prints images per second (medians of ``--repeats``) and the ratios (b)/(a) and (c)/(a) in
throughput, with the median of the paired (b)/(a) ratios beside the ratio of medians.

Then the bookkeeping: a records file already holding 1,000 and 100,000 realistic records
(written through ``vizwidgets.dataset._RecordLog``), the median time to append one more (over
1,000 appends) and the ratio between the two sizes (appending is O(1): the design expects at
most 1.2x), and ``write_summary`` and the resume scan (reading the latest record of each image
and method) per record at both sizes.

``--profile N`` instead runs cProfile over ``explain_dataset`` on N images and prints the top
entries by cumulative time. cProfile sees only the calling thread: work that explain_dataset
hands to its I/O threads (decoding, saving) shows up as waits there. Timings are not asserted:
on a shared machine quote them as indicative.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

import vizwidgets as vw
from vizwidgets.attribution import METHODS
from vizwidgets.data import load_image
from vizwidgets.dataset import _index, _RecordLog, explain_dataset, write_summary

BUNDLED = Path(vw.__file__).parent / "data" / "images"
START_ENVIRONMENT = dict(os.environ)  # for the subprocess: Dask's LocalCluster changes os.environ


def make_images(folder: Path, count: int) -> list[Path]:
    """``count`` distinct JPEG files made from the bundled images: the i-th takes bundled image
    ``i % 12``, a crop that shrinks with ``i // 12``, a mirror on every other round and one of
    four sizes, so that no two files hold the same pixels."""
    sources = sorted(BUNDLED.glob("*.jpg"))
    pictures = [Image.open(p).convert("RGB") for p in sources]
    sizes = [(256, 256), (320, 240), (240, 320), (400, 300)]
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(count):
        base = pictures[i % len(pictures)]
        round_ = i // len(pictures)
        width, height = base.size
        keep = 1.0 - 0.03 * (round_ % 10)  # 100% down to 73% of each side
        left = int((width - width * keep) * ((round_ * 7) % 5) / 4)
        top = int((height - height * keep) * ((round_ * 3) % 5) / 4)
        picture = base.crop((left, top, left + int(width * keep), top + int(height * keep)))
        if round_ % 2:
            picture = ImageOps.mirror(picture)
        picture = picture.resize(sizes[round_ % len(sizes)], Image.Resampling.BILINEAR)
        path = folder / f"{sources[i % len(sources)].stem}-{i:04d}.jpg"
        picture.save(path, format="JPEG", quality=90)
        files.append(path)
    return files


def by_hand(files: list[Path], out: Path) -> None:
    """What a user writes without the command: one model, one method object, a loop."""
    model = vw.load_model()
    method = METHODS["grad_cam"](model)
    out.mkdir(parents=True)
    for path in files:
        x = model.preprocess(load_image(path)).to(model.device)
        saliency = method.attribute(x)
        np.save(out / f"{path.name}.grad_cam.npy", saliency[0].detach().cpu().numpy().astype(np.float32))


def quiet(_: str) -> None:
    """Swallow explain_dataset's messages (the count line) so the table stays readable."""


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def check_report(report: object, expected: int) -> None:
    explained = getattr(report, "explained", None)
    if explained != expected:
        raise SystemExit(f"explain_dataset explained {explained} images, expected {expected}: {report!r}")


def throughput(args: argparse.Namespace, folder: Path, files: list[Path], scratch: Path) -> None:
    count = len(files)
    counter = iter(range(10**6))

    def fresh() -> Path:
        return scratch / f"out{next(counter)}"

    def command_in_process() -> None:
        check_report(explain_dataset(folder, fresh(), "grad_cam", progress=False, echo=quiet), count)

    def maps_only() -> None:  # the same files as (a) writes: the maps, plus the records
        check_report(explain_dataset(folder, fresh(), "grad_cam", pictures=False, progress=False, echo=quiet), count)

    def command_workers() -> None:
        check_report(explain_dataset(folder, fresh(), "grad_cam", workers=2, progress=False, echo=quiet), count)

    # warm-up on 12 images: imports, the weights file in the page cache, the first-call costs
    warm = scratch / "warm"
    warm.mkdir()
    for path in files[:12]:
        shutil.copy(path, warm / path.name)
    by_hand(files[:12], fresh())
    explain_dataset(warm, fresh(), "grad_cam", progress=False, echo=quiet)

    hand_times, maps_times, command_times, paired, paired_maps = [], [], [], [], []
    for _ in range(args.repeats):
        hand = timed(lambda: by_hand(files, fresh()))
        maps = timed(maps_only)
        command = timed(command_in_process)
        hand_times.append(hand)
        maps_times.append(maps)
        command_times.append(command)
        paired.append(hand / command)  # throughput of (b) over (a)
        paired_maps.append(hand / maps)

    def cli() -> None:
        subprocess.run(
            [sys.executable, "-m", "vizwidgets", "explain", str(folder), "--out", str(fresh()),
             "--method", "grad_cam", "--no-progress", "--threads", str(args.threads)],
            check=True, capture_output=True, env=START_ENVIRONMENT,
        )

    cli_time = timed(cli)  # before (c): a LocalCluster leaves OMP_NUM_THREADS=1 and more in os.environ
    worker_times = [timed(command_workers) for _ in range(args.repeats)] if not args.no_workers else []

    def each(times: list[float]) -> str:
        return "median of " + " ".join(f"{t:.1f}" for t in times)

    hand = statistics.median(hand_times)
    rows = [
        ("(a) by hand: load_model + load/preprocess/attribute/np.save", hand, each(hand_times)),
        ("(b) explain_dataset(pictures=False): maps + records", statistics.median(maps_times), each(maps_times)),
        ("(b) explain_dataset(): maps + PNG pictures + records", statistics.median(command_times),
         each(command_times)),
        ("(b) python -m vizwidgets explain (subprocess)", cli_time, "1 run"),
    ]
    if worker_times:
        rows.append(("(c) explain_dataset(workers=2)", statistics.median(worker_times), each(worker_times)))
    print(f"\nThroughput: grad_cam on {count} images, end to end (model loading included)")
    print(f"{'':58}{'seconds':>9}{'images/s':>10}{'vs (a)':>8}  runs (seconds)")
    for label, seconds, runs in rows:
        print(f"{label:<58}{seconds:9.2f}{count / seconds:10.2f}{hand / seconds:7.2f}x  {runs}")
    print(f"(b) maps only / (a), the same files written, in images per second: "
          f"{hand / statistics.median(maps_times):.2f}x (median of the {args.repeats} paired ratios: "
          f"{statistics.median(paired_maps):.2f}x)")
    print(f"(b) with pictures / (a) in images per second: {hand / statistics.median(command_times):.2f}x "
          f"(median of the {args.repeats} paired ratios: {statistics.median(paired):.2f}x)")
    if worker_times:
        print(f"(c)/(a) in images per second: {hand / statistics.median(worker_times):.2f}x")
    print("subprocess minus in-process (b), what a fresh process adds (starting Python, importing torch, "
          f"cold caches): {cli_time - statistics.median(command_times):+.2f} s")


def sample_record(i: int) -> dict[str, object]:
    """A record shaped like those explain_dataset writes (one image, grad_cam, status ok)."""
    name = f"class{i % 1000:04d}/image{i:08d}.jpg"
    return {
        "file": f"/data/imagenet/val/{name}", "name": name, "size": 100_000 + i % 50_000,
        "mtime_ns": 1_700_000_000_000_000_000 + i, "method": "grad_cam", "settings": "4060ffae25f0f744",
        "model": "efficientnet_lite0", "layer": "head", "options": {"upsample": True}, "status": "ok",
        "error": "", "predicted": i % 1000, "predicted_class": "Granny Smith", "probability": 0.724621,
        "target": i % 1000, "target_class": "Granny Smith", "metrics": {}, "notes": [], "seconds": 0.0412,
        "png": f"maps/{name}.grad_cam.png", "npy": f"maps/{name}.grad_cam.npy", "finished": 1.7e9 + i,
    }


def bookkeeping(args: argparse.Namespace, scratch: Path) -> None:
    appends = 1000
    results = {}
    for existing in args.records:
        out = scratch / f"records{existing}"
        log = _RecordLog(out / "records", "existing")
        for i in range(existing):
            log.append(sample_record(i))
        log.close()
        log = _RecordLog(out / "records", "existing")  # the same file, reopened for appending
        records = [sample_record(existing + i) for i in range(appends)]
        per_append = []
        for record in records:
            start = time.perf_counter()
            log.append(record)
            per_append.append(time.perf_counter() - start)
        log.close()
        total = existing + appends
        write_summary(out)  # warm-up: imports pyarrow
        summary = [timed(functools.partial(write_summary, out)) for _ in range(args.repeats)]
        # what a run reads at its start to decide what is done: the latest record of each image and method
        scan = [timed(functools.partial(_index, out)) for _ in range(args.repeats)]
        results[existing] = (statistics.median(per_append), statistics.median(summary) / total,
                             statistics.median(scan) / total, total)
        shutil.rmtree(out)
    print(f"\nRecording results: a records file already holding N records, {appends} more appended one by one")
    print(f"{'records already there (N)':<28}{'append, per record':>20}{'write_summary, per record':>28}"
          f"{'resume scan, per record':>26}")
    for existing, (append, summary, scan, _) in results.items():
        print(f"{existing:<28,}{append * 1e6:17.1f} us{summary * 1e6:25.1f} us{scan * 1e6:23.1f} us")
    sizes = list(results)
    if len(sizes) >= 2:
        small, large = results[sizes[0]], results[sizes[-1]]
        ratio = large[0] / small[0]
        print(f"append at {sizes[-1]:,} / append at {sizes[0]:,}: {ratio:.2f}x "
              f"({'within' if ratio <= 1.2 else 'over'} the 1.2x the design expects)")
        print(f"write_summary per record at {sizes[-1]:,} / at {sizes[0]:,}: {large[1] / small[1]:.2f}x; "
              f"resume scan per record: {large[2] / small[2]:.2f}x")


def profile(count: int, files_folder: Path, scratch: Path) -> None:
    folder = scratch / "profiled"
    folder.mkdir()
    for path in sorted(files_folder.glob("*.jpg"))[:count]:
        shutil.copy(path, folder / path.name)
    explain_dataset(folder, scratch / "profile-warm", "grad_cam", progress=False, echo=quiet)  # imports
    profiler = cProfile.Profile()
    profiler.enable()
    explain_dataset(folder, scratch / "profile-out", "grad_cam", progress=False, echo=quiet)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(40)
    print(f"\ncProfile of explain_dataset on {count} images (second run), top entries by cumulative time")
    print(text.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="PyTorch threads in this process and the command")
    parser.add_argument("--no-workers", action="store_true", help="skip (c), the 2-worker Dask run")
    parser.add_argument("--records", type=int, nargs="+", default=[1000, 100_000],
                        help="sizes of the records file to append to")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="only profile explain_dataset on N images and print the top entries")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{args.threads} threads; workers=2 gives each worker {max(1, (os.cpu_count() or 1) // 2)}; "
          f"load average {os.getloadavg()[0]:.2f} at the start")
    print("(a load average well above 0 means another program shares the cores: PyTorch threads then wait on each "
          "other and every figure drops, often by much more than the share taken; quote the ratios)")
    with tempfile.TemporaryDirectory(prefix="vw-batch-bench-") as temp:
        scratch = Path(temp)
        folder = scratch / "images"
        files = make_images(folder, args.images)
        if args.profile:
            profile(args.profile, folder, scratch)
            return
        throughput(args, folder, files, scratch)
        bookkeeping(args, scratch)


if __name__ == "__main__":
    main()
