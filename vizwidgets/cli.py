"""The batch command: ``python -m vizwidgets explain PATHS... --out DIR --method grad_cam lrp``.

Every image found under PATHS (files, folders, glob patterns; JPEG, PNG, BMP, GIF, TIFF and
WebP files by their suffix) is explained with every method, and it writes, into DIR:

- ``maps/<name>.<method>.png``: the map drawn over the image (what the model saw, 224x224;
  not with --no-pictures);
- ``maps/<name>.<method>.npy``: the raw map, float32, ``(C, H, W)``;
- ``records/*.jsonl``: one line per image and method as it finishes (prediction, target,
  metrics, options, time, and ``status`` "ok" or "error" with the message);
- ``summary.csv`` (and ``summary.parquet`` with pyarrow): the latest record of each image and
  method, written at the end; ``python -m vizwidgets summary DIR`` writes it at any time.

``<name>`` is the file's path below the folder holding all the images, suffix kept
(``cats/x.jpg``). Nothing inside DIR is explained, so DIR may lie inside a folder of PATHS.

Run it again and it goes on where it stopped: a result is reused when the image file, the
method, its options, the layer, the target, the metrics and the model are unchanged; change
one and only what it touches is computed again. A file that cannot be read gets an error
record (not retried unless --retry-errors) and the others go on.

Exit status: 0 when every image has its maps; 1 when some image has an error record or a path
matched nothing (the summary's "error" column says why); 2 for a mistake in the arguments,
found before any work; 130 when interrupted (rerun to go on).

More hands: --workers N runs N processes here (Dask); --scheduler ADDRESS an existing Dask
cluster (Slurm, PBS, SGE, Kubernetes); --shard K/N one of N array jobs. See docs/batch.md.
``python -m vizwidgets explain --list`` (or ``python -m vizwidgets methods``) lists the methods
and their options.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vizwidgets import workspace
from vizwidgets.data.loading import IMAGE_SUFFIXES
from vizwidgets.dataset import SUMMARY_FIELDS, find_images

__all__ = ["IMAGE_SUFFIXES", "SUMMARY_FIELDS", "find_images", "main", "methods_listing"]


def _description() -> str:
    """The module docstring after its title line, as plain text for ``explain --help``."""
    body = (__doc__ or "").split("\n", 2)[-1]
    return body.replace("``", "").strip()


def methods_listing() -> str:
    """One line per registered attribution method: its name, family and what it shows.

    Built from :data:`vizwidgets.attribution.METHODS` (imports PyTorch).
    """
    from vizwidgets.attribution import METHODS  # here, not above: --help must not wait for torch

    width = max(len(name) for name in METHODS) + 2
    lines = [f"{'method':<{width}}{'family':<14}what it shows"]
    for name, method in METHODS.items():
        summary = method.description.strip().splitlines()[0] if method.description.strip() else method.title
        lines.append(f"{name:<{width}}{method.family:<14}{summary}")
        shown = [o for o in method.options if o.kind != "tensor"]
        if shown:
            text = "; ".join(
                f"{o.name}={o.default!r}" + (f" ({'|'.join(map(str, o.choices))})" if o.choices else
                                             f" ({o.allowed()})" if o.kind in ("int", "float") else "")
                for o in shown
            )
            lines += textwrap.wrap(f"options: {text}", width=96, initial_indent=" " * width,
                                   subsequent_indent=" " * (width + 2))
    layered = ", ".join(name for name, method in METHODS.items() if method.needs_layer)
    lines += textwrap.wrap(f"--layer is for {layered}; the others work on the pixels.", width=96)
    return "\n".join(lines)


class _ListMethods(argparse.Action):
    """``--list``: print :func:`methods_listing` and exit 0, before other arguments are checked."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: Any = argparse.SUPPRESS, help: str | None = None) -> None:  # noqa: A002
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        print(methods_listing())
        parser.exit(0)


def _course_description() -> str:
    return (workspace.__doc__ or "").split("\n", 2)[-1].replace("``", "").strip()


def _course(args: argparse.Namespace) -> int:
    extra = list(args.jupyter_args)
    try:
        return workspace.start_course(
            args.folder if args.folder is not None else workspace.DEFAULT_FOLDER,
            app=args.app, extra=extra, source=args.source, start=not args.no_start,
        )
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _app_description() -> str:
    from vizwidgets import app

    return (app.__doc__ or "").split("\n", 2)[-1].split("From Python", 1)[0].replace("``", "").strip()


def _app(args: argparse.Namespace) -> int:
    from vizwidgets.app import run

    return run(port=args.port, host=args.host, model=args.model, open_browser=not args.no_browser)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vizwidgets", description="vizwidgets from the command line")
    commands = parser.add_subparsers(dest="command", required=True)
    explain = commands.add_parser(
        "explain",
        help="explain the model's decision on many images",
        description=_description(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands.add_parser("methods", help="list the attribution methods (as explain --list)")
    course = commands.add_parser(
        "course",
        help="copy the course notebooks into your own folder and open them in JupyterLab",
        description=_course_description(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    course.add_argument(
        "folder", nargs="?", type=Path, default=None, metavar="FOLDER",
        help="where your copies go (default: my-course); notebooks already there are kept",
    )
    course.add_argument(
        "--app", choices=["lab", "notebook"], default="lab",
        help="lab: JupyterLab 4 (default); notebook: Notebook 7",
    )
    course.add_argument("--source", type=Path, default=None, help=argparse.SUPPRESS)
    course.add_argument(
        "--no-start", action="store_true", help="make the copies and the settings, start nothing"
    )
    app = commands.add_parser(
        "app",
        help="serve the Explorer as a web page of its own (Voila), no notebook or code shown",
        description=_app_description(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    app.add_argument("--port", type=int, default=8866, help="port to listen on (default 8866; 0: a free one)")
    app.add_argument(
        "--host", default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every address)",
    )
    app.add_argument(
        "--model", default=None, help="a model name (default efficientnet_lite0; an unknown name lists the others)"
    )
    app.add_argument("--no-browser", action="store_true", help="do not open the page in a web browser")
    course.epilog = "Arguments after -- go to Jupyter, e.g. python -m vizwidgets course -- --no-browser --port 8899"
    explain.add_argument(
        "paths", nargs="+", metavar="PATHS", help="image files, folders or glob patterns ('photos/**/*.jpg')"
    )
    explain.add_argument(
        "--method", nargs="+", default=["grad_cam"], metavar="METHOD",
        help="one or more attribution methods (default grad_cam; --list shows them)",
    )
    explain.add_argument(
        "--option", action="append", default=[], metavar="METHOD.NAME=VALUE",
        help="a method's option, e.g. integrated_gradients.steps=32 (repeat for more; --list shows them)",
    )
    explain.add_argument("--list", action=_ListMethods, help="list the attribution methods and their options, and exit")
    explain.add_argument(
        "--out", required=True, type=Path, metavar="DIR",
        help="output folder (created if missing); images inside it are never explained, so it may lie inside PATHS",
    )
    explain.add_argument(
        "--model", default="efficientnet_lite0",
        help="a model name (default efficientnet_lite0), or module:function / file.py:function returning your model",
    )
    explain.add_argument("--layer", default=None, help="layer for CAM methods (default: the model's)")
    explain.add_argument("--target", default=None, help="class index or name (default: each image's prediction)")
    explain.add_argument(
        "--metrics", nargs="*", default=[], choices=["deletion", "insertion", "average_drop"],
        help="metrics to compute for each map",
    )
    explain.add_argument(
        "--batch-size", type=int, default=None, metavar="N",
        help="images per pass through the model (default: 1 on a CPU, 8 on a GPU)",
    )
    explain.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when present, else cpu)")
    where = explain.add_mutually_exclusive_group()
    where.add_argument(
        "--workers", type=int, default=None, metavar="N", help="run N worker processes on this machine (Dask)"
    )
    where.add_argument(
        "--scheduler", default=None, metavar="ADDRESS", help="run on an existing Dask cluster (tcp://host:8786)"
    )
    explain.add_argument(
        "--shard", default=None, metavar="K/N", help="take only the K-th of N disjoint parts of the images (array jobs)"
    )
    explain.add_argument(
        "--threads", type=int, default=None, metavar="N", help="PyTorch threads per process (default: PyTorch's choice)"
    )
    explain.add_argument(
        "--retry-errors", action="store_true", help="compute again the images whose earlier records are errors"
    )
    explain.add_argument("--alpha", type=float, default=0.5, help="heatmap opacity in the PNG (0 to 1)")
    explain.add_argument(
        "--no-pictures", action="store_true", help="write only the .npy maps, not the PNG pictures (faster, smaller)"
    )
    explain.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    summary = commands.add_parser(
        "summary", help="write DIR/summary.csv from the records of explain runs (at any time, even during one)"
    )
    summary.add_argument("out", type=Path, metavar="DIR", help="the output folder of explain")
    return parser


def explain(args: argparse.Namespace) -> int:
    """``python -m vizwidgets explain``: :func:`vizwidgets.dataset.explain_dataset`, reported."""
    from vizwidgets.dataset import explain_dataset, parse_option

    try:
        options: dict[str, dict[str, Any]] = {}
        for text in args.option:
            method, name, value = parse_option(text)
            options.setdefault(method, {})[name] = value
        target: Any = args.target
        if target is not None and target.strip().lstrip("-").isdigit():
            target = int(target)
        report = explain_dataset(
            args.paths, args.out, args.method, model=args.model, options=options, target=target, layer=args.layer,
            metrics=args.metrics, batch_size=args.batch_size, device=args.device, workers=args.workers,
            scheduler=args.scheduler, shard=args.shard, threads=args.threads, retry_errors=args.retry_errors,
            alpha=args.alpha, pictures=not args.no_pictures, progress=not args.no_progress,
        )
    except (ValueError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"interrupted: every result finished so far is kept in {args.out}; run the same command again to go "
            f"on, or python -m vizwidgets summary {args.out} for the summary of what is done",
            file=sys.stderr,
        )
        return 130
    print(
        f"{report.explained} explained, {report.reused} already done, {report.failed} failed "
        f"({report.images} images); summary in {report.summary}"
    )
    return report.exit_status


def _summary(args: argparse.Namespace) -> int:
    from vizwidgets.dataset import RECORDS, write_summary

    if not (args.out / RECORDS).is_dir():
        print(f"error: {args.out} holds no records of python -m vizwidgets explain", file=sys.stderr)
        return 2
    print(f"summary in {write_summary(args.out)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    passed_on: list[str] = []
    if argv[:1] == ["course"] and "--" in argv:  # what follows -- is Jupyter's
        split = argv.index("--")
        argv, passed_on = argv[:split], argv[split + 1:]
    args = _parser().parse_args(argv)
    args.jupyter_args = passed_on
    if args.command == "explain":
        return explain(args)
    if args.command == "summary":
        return _summary(args)
    if args.command == "methods":
        print(methods_listing())
        return 0
    if args.command == "course":
        return _course(args)
    if args.command == "app":
        return _app(args)
    return 2  # pragma: no cover - argparse requires a command
