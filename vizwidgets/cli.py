"""The batch command: ``python -m vizwidgets explain PATHS... --method grad_cam --out DIR``.

For every image found under PATHS (files, folders, glob patterns; JPEG, PNG, BMP, GIF, TIFF
and WebP files by their suffix) it writes, into DIR:

- ``<name>.<method>.png``: the explanation drawn over the image (what the model saw, 224x224);
- ``<name>.<method>.npy``: the raw map, float32, ``(C, H, W)``;
- ``<name>.json``: the image's record (prediction, target, per method its files, time,
  metrics and any warning);
- ``summary.csv`` and ``summary.json``: one row per file and method: predicted class and
  probability, target, the metrics asked for, the output files, and ``status`` ("ok" or
  "error" with the message).

Nothing inside DIR is explained, so DIR may lie inside a folder of PATHS
(``explain . --out results``): a second run finds the same images, not the first run's
pictures. A second run into the same DIR skips the files already done (their rows are kept).
A file that cannot be read is reported (its name and what to do) and skipped; the others go
on; the exit status is 1 if any file failed, 2 for bad arguments, else 0.

``python -m vizwidgets explain --list`` (or ``python -m vizwidgets methods``) lists the
methods ``--method`` takes.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vizwidgets import workspace
from vizwidgets.data.loading import IMAGE_SUFFIXES

__all__ = ["IMAGE_SUFFIXES", "SUMMARY_FIELDS", "find_images", "main", "methods_listing"]

SUMMARY_FIELDS = [
    "file", "method", "status", "error", "predicted", "predicted_class", "probability",
    "target", "target_class", "deletion", "insertion", "average_drop", "png", "npy",
]


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
    course.epilog = "Arguments after -- go to Jupyter, e.g. python -m vizwidgets course -- --no-browser --port 8899"
    explain.add_argument(
        "paths", nargs="+", metavar="PATHS", help="image files, folders or glob patterns ('photos/**/*.jpg')"
    )
    explain.add_argument(
        "--method", default="grad_cam", help="attribution method (default grad_cam; --list shows them)"
    )
    explain.add_argument("--list", action=_ListMethods, help="list the attribution methods and exit")
    explain.add_argument(
        "--out", required=True, type=Path, metavar="DIR",
        help="output folder (created if missing); images inside it are never explained, so it may lie inside PATHS",
    )
    explain.add_argument("--model", default="efficientnet_lite0", help="model name (default efficientnet_lite0)")
    explain.add_argument("--layer", default=None, help="layer for CAM methods (default: the model's)")
    explain.add_argument("--target", default=None, help="class index or name (default: each image's prediction)")
    explain.add_argument(
        "--metrics", nargs="*", default=[], choices=["deletion", "insertion", "average_drop"],
        help="metrics to compute for each map",
    )
    explain.add_argument("--alpha", type=float, default=0.5, help="heatmap opacity in the PNG (0 to 1)")
    explain.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def find_images(
    paths: Sequence[str], exclude: Path | None = None
) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files under ``paths`` (sorted, without repeats) and ``(path, problem)`` for
    paths that matched nothing.

    Files in folders and glob matches are taken by suffix (:data:`IMAGE_SUFFIXES`); a link
    among them is kept even when it leads nowhere, so that loading it reports why. Nothing
    inside the folder ``exclude`` (the output folder) is returned, even when named.
    """
    outside = _outside(exclude)
    found: dict[Path, None] = {}
    missing: list[tuple[str, str]] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if any(ch in raw for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
            files = [p for p in matches if _is_image_file(p)]
            kept = [p for p in files if outside(p)]
            if not kept:
                missing.append((raw, "the pattern matched no image files" + _excluded_note(files)))
            found.update(dict.fromkeys(kept))
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if _is_image_file(p))
            kept = [p for p in files if outside(p)]
            if not kept:
                missing.append(
                    (raw, "the folder holds no image files (" + ", ".join(IMAGE_SUFFIXES) + ")" + _excluded_note(files))
                )
            found.update(dict.fromkeys(kept))
        elif path.is_file() or path.is_symlink():
            if outside(path):
                found[path] = None
            else:
                missing.append((raw, "the file is inside the output folder --out; results are not explained"))
        else:
            missing.append((raw, "no such file or folder"))
    return list(found), missing


def _is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and (path.is_file() or path.is_symlink())


def _outside(folder: Path | None) -> Callable[[Path], bool]:
    """A test: does a path lie outside ``folder`` (links in its parents followed)?"""
    if folder is None:
        return lambda path: True
    root = folder.expanduser().resolve()

    def outside(path: Path) -> bool:
        # the parent is resolved, not the file: a link inside the folder is inside it
        where = path.expanduser().absolute().parent.resolve() / path.name
        return not where.is_relative_to(root)

    return outside


def _excluded_note(files: Sequence[Path]) -> str:
    return " outside the output folder --out" if files else ""


def _output_names(files: Sequence[Path]) -> dict[Path, str]:
    """A distinct, readable output name per file: its path below the common folder, with
    separators turned into ``__`` and the suffix dropped."""
    # the folder is resolved, not the file: a link keeps its own name (and a loop resolves)
    resolved = [f.expanduser().absolute().parent.resolve() / f.name for f in files]
    if not resolved:
        return {}
    parents = [str(p.parent) for p in resolved]
    root = Path(os.path.commonpath(parents))
    names = {}
    for original, path in zip(files, resolved):
        relative = path.relative_to(root).with_suffix("")
        names[original] = "__".join(relative.parts)
    return names


def _load_summary(out: Path) -> dict[tuple[str, str], dict[str, Any]]:
    path = out / "summary.json"
    if not path.is_file():
        return {}
    try:
        rows = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return {(row["file"], row["method"]): row for row in rows if isinstance(row, dict) and "file" in row}


def _write_summary(out: Path, rows: list[dict[str, Any]]) -> None:
    (out / "summary.json").write_text(json.dumps(rows, indent=1))
    with (out / "summary.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in SUMMARY_FIELDS})


def _summary_row(path: Path, method: str, record: dict[str, Any]) -> dict[str, Any]:
    """One row of the summary from an :meth:`Explanation.save` record."""
    result = record["methods"][method]
    return {
        "file": str(path), "method": method, "status": "ok", "error": "",
        "predicted": record["predicted"], "predicted_class": record["predicted_class"],
        "probability": record["probability"], "target": record["target"], "target_class": record["target_class"],
        **{name: round(value, 4 if name == "average_drop" else 6) for name, value in result["metrics"].items()},
        "png": result["png"], "npy": result["npy"],
    }


def explain(args: argparse.Namespace) -> int:
    """``python -m vizwidgets explain``: :func:`vizwidgets.explain.explain` on each file, saved."""
    # here, not above: `python -m vizwidgets --help` and the course command must not wait for torch
    from tqdm.auto import tqdm

    import vizwidgets as vw
    from vizwidgets.attribution import METHODS
    from vizwidgets.explain import explain as explain_images
    from vizwidgets.viz import Display

    if args.method not in METHODS:
        print(
            f"error: unknown method {args.method!r}; choose from {', '.join(sorted(METHODS))} "
            "(python -m vizwidgets explain --list describes them)",
            file=sys.stderr,
        )
        return 2
    if not 0 <= args.alpha <= 1:
        print(f"error: --alpha must be between 0 and 1, got {args.alpha}", file=sys.stderr)
        return 2
    if args.layer is not None and not METHODS[args.method].needs_layer:
        print(f"error: --layer is for CAM methods; {args.method} has no layer", file=sys.stderr)
        return 2
    files, missing = find_images(args.paths, exclude=args.out)
    for raw, problem in missing:
        print(f"error: {raw}: {problem}", file=sys.stderr)
    model = vw.load_model(args.model)
    target: Any = args.target
    if target is not None:
        target = int(target) if target.strip().isdigit() else target
        try:
            target = model.classes.resolve(target) if isinstance(target, str) else target
        except ValueError as error:
            print(f"error: --target: {error}", file=sys.stderr)
            return 2
    display = Display(opacity=args.alpha, sign="absolute", scaling="percentile")
    args.out.mkdir(parents=True, exist_ok=True)
    previous = _load_summary(args.out)
    names = _output_names(files)
    rows: dict[tuple[str, str], dict[str, Any]] = dict(previous)
    failed = len(missing)
    done = skipped = 0
    for path in tqdm(files, desc=f"{args.method}", disable=args.no_progress, unit="image"):
        key = (str(path), args.method)
        png = args.out / f"{names[path]}.{args.method}.png"
        npy = args.out / f"{names[path]}.{args.method}.npy"
        old = previous.get(key)
        if old is not None and old.get("status") == "ok" and png.is_file() and npy.is_file():
            skipped += 1
            continue
        try:
            (explanation,) = explain_images(
                model, [str(path)], [args.method], target=target, layer=args.layer, metrics=args.metrics,
            )
            record = explanation.save(args.out, names[path], display=display)
            row = _summary_row(path, args.method, record)
            done += 1
        except (OSError, ValueError, TypeError) as error:
            failed += 1
            row = {
                "file": str(path), "method": args.method, "status": "error", "error": f"{type(error).__name__}: {error}"
            }
            # our loader's messages name the file and the fix; others get the file named here
            message = str(error) if str(path) in str(error) else f"{path}: {error}"
            tqdm.write(f"error: {message}", file=sys.stderr)
        rows[key] = row
        _write_summary(args.out, list(rows.values()))  # after every file: an interrupted run keeps its work
    _write_summary(args.out, list(rows.values()))
    print(f"{done} explained, {skipped} already done, {failed} failed; summary in {args.out / 'summary.csv'}")
    return 1 if failed else 0


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
    if args.command == "methods":
        print(methods_listing())
        return 0
    if args.command == "course":
        return _course(args)
    return 2  # pragma: no cover - argparse requires a command
