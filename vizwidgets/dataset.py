"""Explain a whole dataset: every image with every method, saved, resumable, on one machine or
on a Dask cluster.

:func:`explain_dataset` is the work; ``python -m vizwidgets explain`` is a thin shell over it.
It calls :func:`vizwidgets.explain.explain` on chunks of images, so the maps, predictions and
metrics are the ones every other front end shows.

What it writes into the output folder ``out``::

    out/maps/<name>.<method>.npy    the raw map, float32, (C, H, W)
    out/maps/<name>.<method>.png    the map drawn over the image the model saw
    out/records/<run>.jsonl         one JSON object per line, one line per image and method
    out/summary.csv                 the latest record of each image and method, as a table
    out/summary.parquet             the same, when pyarrow is installed

``<name>`` is the image's path below the folder that holds all the images, suffix included
(``cats/x.jpg``), so ``x.jpg`` and ``x.png``, or ``a/b.jpg`` and ``a__b.jpg``, never share an
output; an image keeps its name across runs.

How it stays correct and cheap at 10^6 images:

- Every output file is written to ``out/.tmp`` and renamed into place: it is whole or absent.
  Each process appends its records to its own JSON Lines file, one ``write`` per line; a line
  cut short by a kill is ignored when read. Writing a result costs the same at the millionth
  image as at the first; the summary is written once, at the end (or by
  ``python -m vizwidgets summary``).
- Resume: a record is reused when the image file (size and modification time), the method,
  its options, the layer, the target, the metrics, the picture's opacity and the model (its
  name and a digest of its weights) are all the same; anything else is computed again. Errors
  are recorded with their message and not retried unless ``retry_errors``.
- Work goes out in chunks of ``batch_size`` images; the list of files is the only thing held
  for the whole dataset, images stream from disk.
- ``workers=N`` starts a Dask ``LocalCluster`` of N processes on this machine (listening on
  127.0.0.1); ``scheduler=ADDRESS`` (or ``client=``) uses an existing cluster: dask-jobqueue on
  Slurm, PBS or SGE, dask-kubernetes, a hosted one. Workers must see ``out`` and the images at
  the same paths (a shared file system). Each worker loads the model once.
- ``shard=(K, N)`` takes the K-th of N disjoint parts of the files (by a hash of each path):
  N array jobs with the same arguments cover every image exactly once.

References: the methods' papers are cited in :mod:`vizwidgets.attribution`; Dask is Rocklin,
"Dask: parallel computation with blocked algorithms and task scheduling", SciPy 2015.
"""

from __future__ import annotations

import csv
import functools
import glob
import hashlib
import importlib
import importlib.util
import io
import json
import os
import socket
import sys
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from vizwidgets._files import scratch_prefix, write_atomic
from vizwidgets.data.loading import IMAGE_SUFFIXES, MAX_PIXELS

__all__ = [
    "SUMMARY_FIELDS",
    "DatasetReport",
    "explain_dataset",
    "find_images",
    "load_model_spec",
    "parse_option",
    "read_records",
    "write_summary",
]

MAPS, RECORDS, SCRATCH = "maps", "records", ".tmp"  # folders inside out

#: The columns of ``summary.csv``, in order.
SUMMARY_FIELDS = [
    "file", "name", "method", "status", "error", "predicted", "predicted_class", "probability",
    "target", "target_class", "deletion", "insertion", "average_drop", "seconds", "layer",
    "options", "model", "png", "npy",
]

_SCHEMA = 1  # bump when a record's meaning changes: older records are then recomputed


# ---------------------------------------------------------------------------------------------
# Finding images and naming their outputs
# ---------------------------------------------------------------------------------------------


def find_images(
    paths: Sequence[str | os.PathLike[str]], exclude: Path | None = None
) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files under ``paths`` (sorted, without repeats) and ``(path, problem)`` for
    paths that matched nothing.

    Files in folders and glob matches are taken by suffix (:data:`IMAGE_SUFFIXES`); a link
    among them is kept even when it leads nowhere, so that loading it reports why. Nothing
    inside the folder ``exclude`` (the output folder) is returned, even when named. Two
    spellings of one file (``x.jpg`` and ``d/../x.jpg``) count once.
    """
    outside = _outside(exclude)
    found: dict[Path, Path] = {}  # identity -> the path as found
    missing: list[tuple[str, str]] = []
    for given in paths:
        raw = os.fspath(given)
        path = Path(raw).expanduser()
        if any(ch in raw for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
            files = [p for p in matches if _is_image_file(p)]
            kept = [p for p in files if outside(p)]
            if not kept:
                missing.append((raw, "the pattern matched no image files" + _excluded_note(files)))
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if _is_image_file(p))
            kept = [p for p in files if outside(p)]
            if not kept:
                missing.append(
                    (raw, "the folder holds no image files (" + ", ".join(IMAGE_SUFFIXES) + ")" + _excluded_note(files))
                )
        elif path.is_file() or path.is_symlink():
            kept = [path] if outside(path) else []
            if not kept:
                missing.append((raw, "the file is inside the output folder --out; results are not explained"))
        else:
            missing.append((raw, "no such file or folder"))
            kept = []
        for p in kept:
            found.setdefault(_identity(p), p)
    return list(found.values()), missing


def _identity(path: Path) -> Path:
    """The absolute path with its folders resolved but not the file itself: a link keeps its
    own name (and a looping link still has one)."""
    return Path(os.path.abspath(path.expanduser())).parent.resolve() / path.name


def _is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and (path.is_file() or path.is_symlink())


def _outside(folder: Path | None) -> Callable[[Path], bool]:
    """A test: does a path lie outside ``folder`` (links in its parents followed)?"""
    if folder is None:
        return lambda path: True
    root = folder.expanduser().resolve()
    return lambda path: not _identity(path).is_relative_to(root)


def _excluded_note(files: Sequence[Path]) -> str:
    return " outside the output folder --out" if files else ""


def _output_names(identities: Sequence[Path], known: Mapping[str, str]) -> list[str]:
    """A distinct output name per file: the name an earlier run gave it (``known``: file ->
    name), else its path below the common folder of all the files, suffix kept, as POSIX text.

    A new name that an earlier run gave another file gets ``~2``, ``~3``, ... before its suffix.
    """
    if not identities:
        return []
    root = Path(os.path.commonpath([str(p.parent) for p in identities]))
    taken = {name: file for file, name in known.items()}
    names = []
    for path in identities:
        file = str(path)
        name = known.get(file)
        if name is None:
            name = path.relative_to(root).as_posix()
            stem, suffix = os.path.splitext(name)
            count = 1
            while taken.get(name, file) != file:
                count += 1
                name = f"{stem}~{count}{suffix}"
            taken[name] = file
        names.append(name)
    return names


def _shard_of(identity: Path, parts: int) -> int:
    """Which of ``parts`` shards (0-based) a file falls in: a hash of its path, so every process
    of an array job agrees without talking to the others."""
    return zlib.crc32(str(identity).encode("utf-8", "surrogateescape")) % parts


# ---------------------------------------------------------------------------------------------
# Options and models given as text
# ---------------------------------------------------------------------------------------------


def parse_option(text: str) -> tuple[str, str, Any]:
    """``"integrated_gradients.steps=32"`` -> ``("integrated_gradients", "steps", 32)``.

    The value is read as JSON where it can be (numbers, ``true``/``false``, ``null``), else
    kept as text (``baseline=black``). Only the form is checked here; the method, the option's
    name and its range are checked with the model, by :func:`explain_dataset`.
    """
    head, sep, value_text = text.partition("=")
    method, dot, name = head.strip().rpartition(".")
    if not sep or not dot or not method or not name:
        raise ValueError(
            f"--option {text!r}: write METHOD.NAME=VALUE, e.g. integrated_gradients.steps=32"
        )
    value_text = value_text.strip()
    lowered = value_text.lower()
    if lowered in ("true", "false", "none", "null"):
        return method, name, {"true": True, "false": False}.get(lowered)
    try:
        value = json.loads(value_text)
    except json.JSONDecodeError:
        return method, name, value_text
    return method, name, value if isinstance(value, (int, float, str)) else value_text


def load_model_spec(spec: Any, device: str = "cpu") -> Any:
    """The model a dataset run means by ``spec``, on ``device``, as a ``LoadedModel``.

    ``spec`` is a name of :func:`vizwidgets.available_models`, ``"module:function"`` or
    ``"path/to/file.py:function"`` (the function takes no arguments and returns a
    ``LoadedModel`` or a ``torch.nn.Module``), or a model object. A bare module gets ImageNet
    preprocessing at 224 x 224, its class names from its output size (ImageNet's when 1000),
    and the default layer :func:`~vizwidgets.models.guess_default_layer` finds.
    """
    import torch

    from vizwidgets.models import (
        LoadedModel,
        Preprocess,
        available_models,
        guess_default_layer,
        imagenet_class_names,
        load_model,
    )
    from vizwidgets.models.classes import ClassNames

    if isinstance(spec, str):
        if spec.strip().lower() in available_models():
            return load_model(spec, device=device, download=False)
        if ":" not in spec:
            raise ValueError(
                f"unknown model {spec!r}; give one of {', '.join(available_models())}, or "
                "module:function (or path/to/file.py:function) for a function that returns your model"
            )
        where, _, function = spec.rpartition(":")
        try:
            if where.endswith(".py") or os.sep in where or "/" in where:
                module_spec = importlib.util.spec_from_file_location(Path(where).stem, where)
                if module_spec is None or module_spec.loader is None or not Path(where).is_file():
                    raise ImportError(f"no Python file {where}")
                module = importlib.util.module_from_spec(module_spec)
                module_spec.loader.exec_module(module)
            else:
                module = importlib.import_module(where)
        except ImportError as error:
            raise ValueError(
                f"--model {spec!r}: cannot import {where!r} ({error}); check the name and sys.path"
            ) from error
        factory = getattr(module, function, None)
        if not callable(factory):
            raise ValueError(f"--model {spec!r}: {where!r} has no function {function!r}")
        made = factory()
        name = spec
    else:
        made, name = spec, getattr(spec, "name", type(spec).__name__)
    if isinstance(made, LoadedModel):
        return made.to(device)
    if isinstance(made, torch.nn.Module):
        made.eval().requires_grad_(False).to(device)
        with torch.no_grad():
            outputs = made(torch.zeros(1, 3, 224, 224, device=device)).shape[-1]
        classes = imagenet_class_names() if outputs == 1000 else ClassNames([f"class {i}" for i in range(outputs)])
        layer = guess_default_layer(made)
        if layer is None:
            raise ValueError(f"--model {name!r}: cannot find a convolutional layer for the CAM methods")
        return LoadedModel(name=str(name), model=made, preprocess=Preprocess(), classes=classes, default_layer=layer)
    raise ValueError(
        f"--model {name!r} gave a {type(made).__name__}; the function must return a "
        "vizwidgets LoadedModel or a torch.nn.Module"
    )


def _weights_digest(model: Any) -> str:
    """A digest of a model's parameters and buffers: a changed weight is a changed model."""
    digest = hashlib.sha256()
    for key, tensor in model.model.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _layer_names(model: Any) -> list[str]:
    """The layers worth naming in a message: the curated list of
    :func:`~vizwidgets.models.list_layers` (a pass of zeros without gradients)."""
    from vizwidgets.models import list_layers

    try:
        return [layer.name for layer in list_layers(model)]
    except Exception:  # noqa: BLE001 - only for a message: fall back to the module names
        return [name for name, _ in model.model.named_children()]


def _plain(value: Any) -> Any:
    """An option value as JSON (tensors by a digest of their values)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if hasattr(value, "detach"):
        array = value.detach().cpu().contiguous().numpy()
        return f"tensor{tuple(array.shape)}:{hashlib.sha256(array.tobytes()).hexdigest()[:12]}"
    return repr(value)


# ---------------------------------------------------------------------------------------------
# Records: one JSON object per line, one file per process
# ---------------------------------------------------------------------------------------------


class _RecordLog:
    """Appends records to ``folder/<name>.jsonl``: one ``os.write`` per line, on a file opened
    in append mode, so a line is whole or (when killed mid-line) cut short and ignored."""

    def __init__(self, folder: Path, name: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{name}.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def append(self, record: Mapping[str, Any]) -> None:
        data = (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        while data:
            written = os.write(self._fd, data)
            data = data[written:]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read_records(out: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Every complete record in ``out/records/*.jsonl``, file by file, line by line.

    A line without its newline (a process killed while writing it) or that is not a JSON
    object is skipped.
    """
    for record, _, _ in _scan(Path(out)):
        yield record


def _record_files(out: Path) -> list[Path]:
    folder = out / RECORDS
    return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []


def _scan(out: Path) -> Iterator[tuple[dict[str, Any], int, int]]:
    """``(record, file number, byte offset)`` of every complete record."""
    for number, path in enumerate(_record_files(out)):
        with path.open("rb") as stream:
            offset = 0
            for line in stream:
                start, offset = offset, offset + len(line)
                if not line.endswith(b"\n"):
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and "file" in record and "method" in record:
                    yield record, number, start


@dataclass(frozen=True)
class _Seen:
    """What resuming needs of a file's latest record for a method (a few fields, not the whole
    record: at 10^6 images the index stays a few hundred bytes per result)."""

    finished: float
    where: tuple[int, int]  # records file number, byte offset
    settings: str
    size: int | None
    mtime_ns: int | None
    ok: bool
    name: str
    png: str
    npy: str
    error: str


def _index(out: Path) -> dict[tuple[str, str], _Seen]:
    """The latest record of each (file, method) (by finishing time; a tie goes to the later line)."""
    latest: dict[tuple[str, str], _Seen] = {}
    for record, number, offset in _scan(out):
        key = (str(record["file"]), str(record["method"]))
        finished = float(record.get("finished", 0))
        old = latest.get(key)
        if old is None or finished >= old.finished:
            ok = record.get("status") == "ok"
            latest[key] = _Seen(
                finished, (number, offset), str(record.get("settings", "")), record.get("size"),
                record.get("mtime_ns"), ok, str(record.get("name", "")), str(record.get("png", "")),
                str(record.get("npy", "")), "" if ok else str(record.get("error", "")),
            )
    return latest


def _row(record: Mapping[str, Any]) -> dict[str, Any]:
    metrics = record.get("metrics") or {}
    row = {name: record.get(name, "") for name in SUMMARY_FIELDS}
    row.update({name: metrics.get(name, "") for name in ("deletion", "insertion", "average_drop")})
    row["options"] = json.dumps(record.get("options", {}), sort_keys=True) if record.get("status") == "ok" else ""
    return {k: ("" if v is None else v) for k, v in row.items()}


_NUMBERS = {"predicted": "int64", "target": "int64", "probability": "float64", "deletion": "float64",
            "insertion": "float64", "average_drop": "float64", "seconds": "float64"}


def write_summary(out: str | os.PathLike[str]) -> Path:
    """Write ``out/summary.csv`` (and ``summary.parquet`` when pyarrow is installed) from the
    records: the latest record of each image and method, one row each, sorted by file and
    method. Rows are read back one at a time, so memory holds only the index. Each file is
    written whole or not at all. Returns the CSV's path."""
    out = Path(out)
    index = _index(out)
    paths = _record_files(out)

    def write_csv(stream: Any) -> None:
        text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
        writer = csv.DictWriter(text, fieldnames=SUMMARY_FIELDS, lineterminator="\n")
        writer.writeheader()
        handles: dict[int, Any] = {}
        try:
            for key in sorted(index):
                number, offset = index[key].where
                if number not in handles:
                    handles[number] = paths[number].open("rb")
                handles[number].seek(offset)
                writer.writerow(_row(json.loads(handles[number].readline())))
        finally:
            for handle in handles.values():
                handle.close()
        text.flush()
        text.detach()

    target = out / "summary.csv"
    write_atomic(target, write_csv)
    try:
        import pyarrow as pa
        import pyarrow.csv as pa_csv
        import pyarrow.parquet as pq
    except ImportError:
        return target
    types = {name: pa.type_for_alias(_NUMBERS.get(name, "string")) for name in SUMMARY_FIELDS}
    table = pa_csv.read_csv(
        target, convert_options=pa_csv.ConvertOptions(column_types=types, strings_can_be_null=False)
    )
    write_atomic(out / "summary.parquet", lambda stream: pq.write_table(table, stream))
    return target


# ---------------------------------------------------------------------------------------------
# The work: a chunk of images, all its methods; runs in this process or on a Dask worker
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _File:
    path: str  # absolute, folders resolved (the identity)
    name: str  # output name, relative to out/maps
    size: int | None
    mtime_ns: int | None


@dataclass(frozen=True)
class _Job:
    files: tuple[_File, ...]
    methods: tuple[str, ...]


@dataclass(frozen=True)
class _Settings:
    """Everything a worker needs besides the model and the files (plain, picklable values)."""

    model: str  # how the model is named in records
    device: str
    out: str
    methods: Mapping[str, dict[str, Any]]  # method -> checked options
    digests: Mapping[str, str]  # method -> settings digest
    layers: Mapping[str, str | None]  # method -> the layer it uses
    target: int | None
    layer: str | None
    metrics: tuple[str, ...]
    metric_steps: int
    alpha: float
    pictures: bool
    batch_size: int
    max_pixels: int
    threads: int | None = None
    sys_path: tuple[str, ...] = ()


_MODELS: dict[tuple[str, str], Any] = {}  # one model per process and (spec, device)


def _model_for(spec: Any, settings: _Settings) -> Any:
    import torch

    device = _default_device() if settings.device == "auto" else settings.device
    if not isinstance(spec, str):  # this process's model, or one a cluster sent: moved once at most
        here = getattr(spec, "device", None)
        if hasattr(spec, "to") and here is not None and torch.device(device) != here:
            spec.to(device)
        return spec
    key = (spec, device)
    if key not in _MODELS:
        for entry in settings.sys_path:
            if entry not in sys.path:
                sys.path.append(entry)
        _MODELS[key] = load_model_spec(spec, device)
    return _MODELS[key]


_MODEL_LOCK = threading.Lock()


def _run_job(job: _Job, settings: _Settings, model_spec: Any) -> list[dict[str, Any]]:
    """Explain ``job``'s images with its methods, write their files, return their records.

    A Dask worker with several threads runs several jobs at once; they share the process's
    model, whose hooks are per call, so the model is used by one job at a time (decoding and
    saving still overlap)."""
    from vizwidgets.attribution.base import prepared

    failed, images = _load(job, settings)
    with _MODEL_LOCK:
        model = _model_for(model_spec, settings)
        with prepared(model.model):  # a no-op when the whole run is prepared already
            outcomes = _explain_images(model, images, job.methods, settings)
    return _write(failed, outcomes, settings)


def _load(job: _Job, settings: _Settings) -> tuple[list[dict[str, Any]], list[tuple[_File, Any]]]:
    """``job``'s images, decoded, and an error record per method for each that cannot be."""
    from vizwidgets.data import load_image

    failed: list[dict[str, Any]] = []
    images: list[tuple[_File, Any]] = []
    for file in job.files:
        try:
            images.append((file, load_image(Path(file.path), max_pixels=settings.max_pixels)))
        except Exception as error:  # noqa: BLE001 - every failure becomes the file's record
            failed += [_error_record(file, method, settings, error) for method in job.methods]
    return failed, images


# what explaining gives per image and method: its explanation to save, or its error record
_Outcome = tuple[_File, str, Any] | dict[str, Any]


def _explain_images(
    model: Any, images: list[tuple[_File, Any]], methods: tuple[str, ...], settings: _Settings
) -> list[_Outcome]:
    """``images`` x ``methods`` explained: all at once, else one image at a time, else one
    method at a time, so that one failure costs only its own record."""
    import torch

    from vizwidgets.explain import explain

    if not images:
        return []
    if settings.threads and torch.get_num_threads() != settings.threads:
        torch.set_num_threads(settings.threads)
    try:
        explanations = explain(
            model, [picture for _, picture in images], [(m, settings.methods[m]) for m in methods],
            target=settings.target, layer=settings.layer, metrics=settings.metrics,
            labels=[file.path for file, _ in images], chunk_size=settings.batch_size,
            metric_steps=settings.metric_steps,
        )
    except Exception as error:  # noqa: BLE001 - narrowed down below
        if len(images) > 1:
            return [r for one in images for r in _explain_images(model, [one], methods, settings)]
        if len(methods) > 1:
            return [r for m in methods for r in _explain_images(model, images, (m,), settings)]
        return [_error_record(images[0][0], methods[0], settings, error)]
    return [(file, method, explanation) for (file, _), explanation in zip(images, explanations) for method in methods]


def _write(
    failed: list[dict[str, Any]], outcomes: list[_Outcome], settings: _Settings
) -> list[dict[str, Any]]:
    """Save each explanation's files; the records of all, error records included."""
    records = list(failed)
    for outcome in outcomes:
        if isinstance(outcome, dict):
            records.append(outcome)
            continue
        file, method, explanation = outcome
        try:
            records.append(_save(file, explanation, method, settings))
        except Exception as error:  # noqa: BLE001 - a full disk, a folder in the way
            records.append(_error_record(file, method, settings, error))
    return records


def _save(file: _File, explanation: Any, method: str, settings: _Settings) -> dict[str, Any]:
    import numpy as np
    from PIL import Image

    from vizwidgets.explain import _npy_writer
    from vizwidgets.viz import Display

    out = Path(settings.out)
    result = explanation.results[method]
    png, npy = f"{MAPS}/{file.name}.{method}.png", f"{MAPS}/{file.name}.{method}.npy"
    array = result.map[0].detach().cpu().numpy().astype(np.float32)
    scratch = out / SCRATCH
    write_atomic(out / npy, _npy_writer(array), scratch=scratch)
    if settings.pictures:
        display = Display(opacity=settings.alpha, sign="absolute", scaling="percentile")
        picture = Image.fromarray(explanation.picture(method, display))
        write_atomic(out / png, functools.partial(picture.save, format="PNG", compress_level=1), scratch=scratch)
    else:
        png = ""
    best = explanation.top[0]
    return {
        **_record_head(file, method, settings), "status": "ok", "error": "",
        "predicted": int(best.index), "predicted_class": best.label,
        "probability": round(float(best.probability), 6),
        "target": explanation.target, "target_class": explanation.target_class,
        "metrics": {k: round(float(v), 6) for k, v in result.metrics.items()},
        "notes": list(result.notes), "seconds": round(result.seconds, 6),
        "png": png, "npy": npy, "finished": time.time(),
    }


def _record_head(file: _File, method: str, settings: _Settings) -> dict[str, Any]:
    return {
        "file": file.path, "name": file.name, "size": file.size, "mtime_ns": file.mtime_ns,
        "method": method, "settings": settings.digests[method], "model": settings.model,
        "layer": settings.layers[method], "options": {k: _plain(v) for k, v in settings.methods[method].items()},
    }


def _error_record(file: _File, method: str, settings: _Settings, error: BaseException) -> dict[str, Any]:
    text = str(error)
    message = text if file.path in text or Path(file.path).name in text else f"{file.path}: {text}"
    return {
        **_record_head(file, method, settings), "status": "error",
        "error": f"{type(error).__name__}: {message}", "finished": time.time(),
    }


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetReport:
    """What :func:`explain_dataset` did.

    ``images`` files were taken (after ``shard``); of their image-method pairs, ``explained``
    were computed now, ``reused`` kept from earlier runs and ``failed`` have an error record
    (new or earlier; ``errors`` lists ``(file, method, message)``). ``missing`` lists the paths
    that matched nothing, with why. ``exit_status`` is what the command returns: 0 when all is
    well, 1 when something failed or was missing.
    """

    out: Path
    summary: Path
    images: int
    explained: int
    reused: int
    failed: int
    errors: tuple[tuple[str, str, str], ...] = field(repr=False)
    missing: tuple[tuple[str, str], ...] = field(repr=False)

    @property
    def exit_status(self) -> int:
        return 1 if self.failed or self.missing else 0


def _parse_shard(shard: Any) -> tuple[int, int] | None:
    if shard is None:
        return None
    if isinstance(shard, str):
        head, sep, tail = shard.partition("/")
        if not sep or not head.strip().isdigit() or not tail.strip().isdigit():
            raise ValueError(f"shard must be K/N with whole numbers, e.g. 2/3; got {shard!r}")
        shard = (int(head), int(tail))
    if (
        not isinstance(shard, tuple) or len(shard) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in shard)
    ):
        raise TypeError(f"shard must be 'K/N' or a pair (K, N) of whole numbers, got {shard!r}")
    k, n = shard
    if not 1 <= k <= n:
        raise ValueError(f"shard K/N needs 1 <= K <= N, got {k}/{n}")
    return k, n


def _whole(value: Any, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be a whole number of at least {minimum}, got {value!r}")
    return value


def _check_out(out: Path) -> None:
    """Make ``out`` and prove it can be written, before any work."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder; choose a folder (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / SCRATCH).mkdir(exist_ok=True)
        probe = out / SCRATCH / f"{scratch_prefix()}probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        reason = error.strerror or str(error)
        raise ValueError(f"--out {out}: cannot write there ({reason}); choose a folder you can write to") from error


def _clear_scratch(out: Path) -> None:
    """Remove temporary files that killed processes left in ``out/.tmp``: this host's whose
    process is gone, and anyone's older than a day (another host may still be writing newer ones)."""
    host = socket.gethostname()
    now = time.time()
    for path in (out / SCRATCH).glob("*.part"):
        parts = path.name[: -len(".part")].rsplit(".", 2)  # host (may hold dots), pid, random
        try:
            if len(parts) == 3 and parts[0] == host and parts[1].isdigit():
                if int(parts[1]) == os.getpid() or not _alive(int(parts[1])):
                    path.unlink(missing_ok=True)
            elif now - path.stat().st_mtime > 86400:
                path.unlink(missing_ok=True)
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _digest(settings: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def explain_dataset(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    methods: Any = "grad_cam",
    *,
    model: Any = "efficientnet_lite0",
    options: Mapping[str, Mapping[str, Any]] | None = None,
    target: int | str | None = None,
    layer: str | None = None,
    metrics: Sequence[str] = (),
    batch_size: int | None = None,
    device: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    client: Any = None,
    shard: str | tuple[int, int] | None = None,
    threads: int | None = None,
    retry_errors: bool = False,
    alpha: float = 0.5,
    pictures: bool = True,
    metric_steps: int = 50,
    max_pixels: int = MAX_PIXELS,
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
) -> DatasetReport:
    """Explain every image under ``paths`` with every method; write maps, pictures, records and
    a summary into ``out`` (see the module docstring); return a :class:`DatasetReport`.

    Parameters
    ----------
    paths:
        Image files, folders (searched recursively) and glob patterns (``"photos/**/*.jpg"``).
        Nothing inside ``out`` is ever taken.
    out:
        The output folder (created if missing).
    methods, options, target, layer, metrics, metric_steps:
        As for :func:`vizwidgets.explain.explain`: method names or ``(name, options)`` pairs;
        method name -> options; one class (index or name) for all images, or None for each
        image's prediction; the CAM layer; metrics of :data:`vizwidgets.explain.METRICS`.
    model:
        A model name, ``"module:function"`` or ``"file.py:function"`` (see
        :func:`load_model_spec`), or a model object.
    batch_size:
        Images per pass through the model (default: 1 on a CPU, 8 on a GPU).
    device:
        Where the model runs (default: CUDA when present, else the CPU).
    workers, scheduler, client:
        At most one: a Dask ``LocalCluster`` of ``workers`` processes on this machine, the
        address of a Dask scheduler, or a ``distributed.Client``. None of them: this process.
    shard:
        ``"K/N"`` or ``(K, N)``: take only the K-th of N disjoint parts of the files.
    threads:
        PyTorch threads per process (default: PyTorch's own choice in this process; the cores
        divided among the processes with ``workers``; the workers' own setting on a cluster).
        Maps are bit for bit the same between runs with the same threads per process; with
        other counts, PyTorch's CPU kernels split their sums differently and the last bits move.
    retry_errors:
        Compute again the images whose earlier records are errors.
    alpha:
        Opacity of the map in the PNG pictures, 0 to 1.
    pictures:
        Write the PNG pictures (False: only the ``.npy`` maps; a later run with pictures draws
        the missing ones).
    max_pixels:
        The largest image (width x height) to decode; larger ones get an error record.
    progress:
        Show one progress bar over the images to explain.
    echo:
        Where messages go (missing paths, each error as it happens); default: standard error.

    Everything is checked before any image is explained: a mistake raises ``ValueError`` or
    ``TypeError`` with a message naming it and the valid choices, and nothing is written.
    """
    from tqdm.auto import tqdm

    from vizwidgets.attribution import METHODS
    from vizwidgets.attribution.base import normalize_target
    from vizwidgets.explain import _metrics, method_requests
    from vizwidgets.models.adapter import adapt

    say = echo if echo is not None else functools.partial(tqdm.write, file=sys.stderr)
    # --- everything checked before any work ---
    requests = method_requests(methods, options)
    wanted_metrics = _metrics(metrics)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be a number from 0 to 1, got {alpha!r}")
    metric_steps = _whole(metric_steps, "metric_steps")
    max_pixels = _whole(max_pixels, "max_pixels")
    shard_of = _parse_shard(shard)
    if sum(x is not None for x in (workers, scheduler, client)) > 1:
        raise ValueError("give at most one of workers, scheduler and client")
    if workers is not None:
        _whole(workers, "workers")
    if threads is not None:
        _whole(threads, "threads")
    import torch

    here = workers is None and scheduler is None and client is None
    # in this process the device is checked here; on a cluster each worker has its own (a login
    # node without a GPU may drive GPU workers), and without --device each worker picks its own
    device_name = device or (_default_device() if here else "auto")
    if device_name != "auto":
        try:
            torch_device = torch.device(device_name)
        except RuntimeError as error:
            raise ValueError(
                f"device {device_name!r} is not a device PyTorch knows ({error}); try cpu or cuda"
            ) from error
        if (here or workers is not None) and torch_device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device_name!r}: no CUDA GPU is available here; use --device cpu")
    if batch_size is None:
        batch_size = 8 if device_name.startswith("cuda") else 1
    batch_size = _whole(batch_size, "batch_size")
    out = Path(out).expanduser()
    if isinstance(model, str) and ":" in model:  # file.py:function: the same file from any folder
        where, _, function = model.rpartition(":")
        if where.endswith(".py"):
            model = f"{Path(where).expanduser().absolute()}:{function}"
    # the model, loaded here to check the layer, target and options against it (the workers
    # of a cluster load their own copy, once each)
    loaded = load_model_spec(model, device_name if here else "cpu")
    adapter = adapt(loaded)
    checked: dict[str, dict[str, Any]] = {}
    layers: dict[str, str | None] = {}
    for name, given in requests:
        try:
            built = METHODS[name](adapter, layer if METHODS[name].needs_layer else None)
        except ValueError as error:
            if layer is None:
                raise
            text = str(error).replace(" vizwidgets.list_layers(model) lists the layers to choose from.", "")
            raise ValueError(f"{text} Layers to choose from: {', '.join(_layer_names(loaded))}") from None
        checked[name] = built.check_options(given)
        layers[name] = getattr(built, "layer", None)
    if layer is not None and not any(METHODS[name].needs_layer for name, _ in requests):
        layered = ", ".join(n for n, m in METHODS.items() if m.needs_layer)
        raise ValueError(f"layer is for the methods that use one ({layered}); none of {list(checked)} does")
    if target is not None:
        target_index = int(normalize_target(target, 1, adapter.classes)[0])  # type: ignore[index]
    else:
        target_index = None
    if isinstance(model, str):  # a registry name however it is spelled; a function by its path
        model_name = loaded.name if model.strip().lower() == str(loaded.name).lower() else model
    else:
        model_name = str(getattr(loaded, "name", type(model).__name__))
    weights = _weights_digest(loaded)
    digests = {
        name: _digest({
            "schema": _SCHEMA, "model": model_name, "weights": weights, "method": name,
            "options": {k: _plain(v) for k, v in checked[name].items()}, "layer": layers[name],
            "target": target_index, "metrics": sorted(wanted_metrics), "metric_steps": metric_steps,
            "alpha": float(alpha), "preprocess": repr(getattr(loaded, "preprocess", None)),
        })
        for name in checked
    }
    if threads is None and workers is not None:
        threads = max(1, _cores() // workers)
    settings = _Settings(
        model=model_name, device=device_name, out=str(out.resolve()), methods=checked, digests=digests,
        layers=layers, target=target_index, layer=layer, metrics=wanted_metrics, metric_steps=metric_steps,
        alpha=float(alpha), pictures=bool(pictures), batch_size=batch_size, max_pixels=max_pixels, threads=threads,
        sys_path=(os.getcwd(), *[p for p in sys.path if p]),
    )
    with ExitStack() as stack:  # the cluster first: an unreachable scheduler leaves no trace in out
        dask_client = None if here else stack.enter_context(_dask(workers, scheduler, client))
        _check_out(out)
        model_arg = model if isinstance(model, str) else loaded  # what a cluster's workers load
        return _explain_dataset(paths, out, settings, loaded, model_arg, dask_client, shard_of, retry_errors,
                                progress, say)


def _explain_dataset(
    paths: Any, out: Path, settings: _Settings, loaded: Any, model_arg: Any, client: Any,
    shard_of: tuple[int, int] | None, retry_errors: bool, progress: bool, say: Callable[[str], None],
) -> DatasetReport:
    """:func:`explain_dataset` once everything is checked (and the cluster, if any, is up)."""
    import torch
    from tqdm.auto import tqdm

    checked, digests = settings.methods, settings.digests

    path_list = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    found, missing = find_images(path_list, exclude=out)
    if not found:
        problems = "; ".join(f"{raw}: {problem}" for raw, problem in missing) or "no paths given"
        raise ValueError(f"no images to explain ({problems})")

    # --- what is done already, what is left ---
    _clear_scratch(out)
    identities = [_identity(p) for p in found]
    latest = _index(out)
    known_names = {file: seen.name for (file, _), seen in latest.items() if seen.name}
    names = _output_names(identities, known_names)  # from all the images: every shard agrees
    if shard_of is not None:
        k, n = shard_of
        kept = [i for i, p in enumerate(identities) if _shard_of(p, n) == k - 1]
        identities, names = [identities[i] for i in kept], [names[i] for i in kept]
    files: list[_File] = []
    pending: list[tuple[str, ...]] = []
    reused = failed = 0
    errors: list[tuple[str, str, str]] = []
    for identity, name in zip(identities, names):
        size: int | None = None
        mtime: int | None = None
        try:
            stat = os.stat(identity)
            size, mtime = stat.st_size, stat.st_mtime_ns
        except OSError:
            pass  # a dangling or looping link: loading it records why
        file = _File(str(identity), name, size, mtime)
        left = []
        for method in checked:
            old = latest.get((file.path, method))
            if old is not None and _reusable(old, file, digests[method], out, retry_errors, settings.pictures):
                reused += 1
                if not old.ok:
                    failed += 1
                    errors.append((file.path, method, old.error))
            else:
                left.append(method)
        files.append(file)
        pending.append(tuple(left))
    to_do = sum(1 for left in pending if left)
    for raw, problem in missing:
        say(f"error: {raw}: {problem}")
    say(
        f"{len(files)} images x {len(checked)} methods ({', '.join(checked)}): "
        f"{reused} results already in {out}, {to_do} images to explain"
    )
    if failed:
        say(f"{failed} of those are errors kept from earlier runs (their messages are in the summary's error column; "
            "--retry-errors tries them again)")

    # --- the work ---
    jobs = _jobs(files, pending, settings.batch_size)
    run_name = f"{time.strftime('%Y%m%dT%H%M%S')}-{socket.gethostname()}-{os.getpid()}"
    if shard_of is not None:
        run_name += f"-shard{shard_of[0]}of{shard_of[1]}"
    log: _RecordLog | None = None
    explained = 0
    threads_before = torch.get_num_threads()
    bar = tqdm(total=to_do, unit="image", desc="explaining", disable=not progress or not to_do, file=sys.stderr)
    try:
        if to_do:
            results = (
                _run_here(jobs, settings, loaded) if client is None else _run_on_dask(jobs, settings, model_arg, client)
            )
            said = ("", "")
            for job, records in results:
                if log is None:
                    log = _RecordLog(out / RECORDS, run_name)
                for record in records:
                    log.append(record)
                    if record["status"] == "ok":
                        explained += 1
                    else:
                        failed += 1
                        errors.append((record["file"], record["method"], record["error"]))
                        if said != (record["file"], record["error"]):  # a file no method can read: once
                            said = (record["file"], record["error"])
                            say(f"error: {record['error']}")
                bar.update(len(job.files))
    finally:
        torch.set_num_threads(threads_before)  # a notebook's setting is its own
        bar.close()
        if log is not None:
            log.close()
    summary = write_summary(out)
    return DatasetReport(
        out=out, summary=summary, images=len(files), explained=explained, reused=reused, failed=failed,
        errors=tuple(errors), missing=tuple(missing),
    )


def _reusable(old: _Seen, file: _File, digest: str, out: Path, retry_errors: bool, pictures: bool) -> bool:
    if old.settings != digest or old.size != file.size or old.mtime_ns != file.mtime_ns:
        return False
    if not old.ok:
        return not retry_errors
    if pictures and not (old.png and (out / old.png).is_file()):
        return False
    return bool(old.npy) and (out / old.npy).is_file()


def _jobs(files: Sequence[_File], pending: Sequence[tuple[str, ...]], batch_size: int) -> Iterator[_Job]:
    """Chunks of ``batch_size`` images that need the same methods, in file order."""
    open_chunks: dict[tuple[str, ...], list[_File]] = {}
    for file, methods in zip(files, pending):
        if not methods:
            continue
        chunk = open_chunks.setdefault(methods, [])
        chunk.append(file)
        if len(chunk) == batch_size:
            yield _Job(tuple(chunk), methods)
            del open_chunks[methods]
    for methods, chunk in open_chunks.items():
        yield _Job(tuple(chunk), methods)


def _run_here(
    jobs: Iterable[_Job], settings: _Settings, model: Any
) -> Iterator[tuple[_Job, list[dict[str, Any]]]]:
    """The jobs in this process. With a GPU, or a core that PyTorch's threads leave free, as a
    pipeline: while the model explains one job, a thread decodes the next job's images and
    another saves the previous job's files (decoding and PNG encoding let go of the GIL). When
    PyTorch already uses every core, one after the other: measured by ``benchmarks/batch.py`` on
    2 cores and 2 threads, the extra threads made the run 1.4x slower."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from vizwidgets.attribution.base import prepared

    threads = settings.threads or torch.get_num_threads()
    if not settings.device.startswith("cuda") and _cores() <= threads:
        with prepared(model.model):  # eval mode and frozen weights once for the run, not per image
            for each in jobs:
                yield each, _run_job(each, settings, model)
        return
    queue = iter(jobs)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="vizwidgets-io") as pool:
        job = next(queue, None)
        loading = pool.submit(_load, job, settings) if job is not None else None
        writing = None
        while job is not None and loading is not None:
            failed, images = loading.result()
            following = next(queue, None)
            loading = pool.submit(_load, following, settings) if following is not None else None
            with prepared(model.model):
                outcomes = _explain_images(model, images, job.methods, settings)
            if writing is not None:
                yield writing[0], writing[1].result()
            writing = (job, pool.submit(_write, failed, outcomes, settings))
            job = following
        if writing is not None:
            yield writing[0], writing[1].result()


def _cores() -> int:
    """The cores this process may use (a Slurm allocation, a container's CPU set, taskset)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _probe_scheduler(address: str) -> None:
    """Raise ``OSError`` at once when nothing listens at a TCP ``address`` (Dask's client would
    retry a refused connection until its 20 s timeout); other schemes are left to the client."""
    from distributed.comm.addressing import parse_address, parse_host_port

    scheme, location = parse_address(address)
    if scheme != "tcp":
        return
    host, port = parse_host_port(location)
    with socket.create_connection((host, port), timeout=20):
        pass


@contextmanager
def _dask(workers: int | None, scheduler: str | None, client: Any) -> Iterator[Any]:
    """A ``distributed.Client``: to a new ``LocalCluster`` of ``workers`` processes on loopback
    (stopped at the end, and the environment it set for its workers taken back), to the
    scheduler at ``scheduler``, or ``client`` itself. Fails before any work when unreachable."""
    if client is not None:
        yield client
        return
    try:
        import distributed
    except ImportError as error:
        raise ValueError(
            "--workers and --scheduler need Dask's distributed package: pip install 'vizwidgets[dask]'"
        ) from error
    if scheduler is not None:
        try:
            _probe_scheduler(scheduler)
            connected = distributed.Client(scheduler, timeout="20s")
        except (OSError, ValueError, TypeError) as error:
            raise ValueError(
                f"cannot reach the Dask scheduler at {scheduler!r} ({error}); check the address"
            ) from error
        with connected:
            yield connected
        return
    environment = dict(os.environ)  # LocalCluster sets OMP_NUM_THREADS=1 and more for its workers
    try:
        with warnings.catch_warnings():  # "port 8787 is in use, using another": loopback, any port will do
            warnings.filterwarnings("ignore", message=".*already in use", category=UserWarning)
            cluster = distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=None, silence_logs=40, scheduler_port=0,
            )
        with cluster, distributed.Client(cluster) as local:
            yield local
    finally:
        os.environ.clear()
        os.environ.update(environment)


def _run_on_dask(
    jobs: Iterable[_Job], settings: _Settings, model: Any, client: Any
) -> Iterator[tuple[_Job, list[dict[str, Any]]]]:
    """The jobs on a Dask cluster, a few per worker thread in flight at a time (so memory stays
    flat however many there are), yielded as they finish."""
    import distributed

    if not isinstance(model, str):
        model = client.scatter(model, broadcast=True, hash=False)

    def window() -> int:  # two chunks per worker thread in flight, plus one
        return 2 * (sum(client.nthreads().values()) or 1) + 1

    queue = iter(jobs)
    running: dict[Any, _Job] = {}
    done = distributed.as_completed()

    def submit(job: _Job) -> None:
        future = client.submit(_run_job, job, settings, model, pure=False)
        running[future] = job
        done.add(future)

    for job in islice(queue, window()):
        submit(job)
    finished = 0
    try:
        for future in done:
            job = running.pop(future)
            finished += 1
            try:
                records = future.result()
            except Exception as error:  # noqa: BLE001 - a worker died or the task failed
                records = [_error_record(f, m, settings, error) for f in job.files for m in job.methods]
            future.release()
            yield job, records
            # workers that joined since (a cluster that scales up) get work too
            wanted = 1 + (max(0, window() - len(running) - 1) if finished % 20 == 0 else 0)
            for following in islice(queue, wanted):
                submit(following)
    finally:
        for future in running:  # interrupted: what is still queued is not needed
            future.cancel()
