"""Explain images: the one chain from an image to its explanation, shared by every front end.

    image -> load_image -> the model's preprocessing -> predict (top-k) -> choose the target
    -> each method -> each metric -> a frozen :class:`Explanation` that draws and saves itself

:func:`explain` is that chain. The command line (``python -m vizwidgets explain``),
:func:`vizwidgets.compare.compare`, the Explorer and :func:`vizwidgets.widgets.explain_picture`
all call it; none of them re-implements a step. Methods, their options, the layer, the target
and the metrics are checked here once, before any work, each with one message.

```python
import vizwidgets as vw
from vizwidgets.explain import explain

model = vw.load_model()
(cat,) = explain(model, ["chelsea"], ["grad_cam", ("integrated_gradients", {"steps": 32})],
                 metrics=["deletion"])
cat.top[0]                     # Prediction(index=285, label='Egyptian cat', probability=0.79...)
cat.results["grad_cam"].map    # (1, 1, 224, 224) raw map; .seconds, .metrics, .notes
cat.picture("grad_cam")        # (224, 224, 3) uint8: the map over the image
cat.save("out", "chelsea")     # out/chelsea.grad_cam.png, .npy, ..., out/chelsea.json
```

Images go through the model in chunks of ``chunk_size``, and each method runs once per chunk.
The prediction is not a pass of its own: the first method runs the plain model on the chunk
anyway (to choose the class, or for its gradient), and :func:`explain` reads the logits of
that pass (LRP, whose canonizers change the model for its pass, is the exception: then one
forward pass without gradients predicts). The other methods get the chosen classes as
explicit targets. A method's ``seconds`` is its time on the chunk divided by its images.
"""

from __future__ import annotations

import functools
import json
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from vizwidgets._files import write_atomic
from vizwidgets._hooks import channels_last_inputs, forward_hooks
from vizwidgets.attribution import METHODS
from vizwidgets.attribution.base import normalize_target
from vizwidgets.metrics import confidence_drop, deletion, insertion
from vizwidgets.models import Prediction
from vizwidgets.models.adapter import ModelAdapter, adapt
from vizwidgets.viz import Display, render

__all__ = ["METRICS", "MethodResult", "Explanation", "explain", "method_requests"]

#: The metrics :func:`explain` can compute for each map (see :mod:`vizwidgets.metrics`):
#: deletion and insertion areas (Petsiuk et al. 2018) and the average drop in confidence
#: (Chattopadhay et al. 2018).
METRICS = ("deletion", "insertion", "average_drop")

MethodSpec = str | tuple[str, Mapping[str, Any]]


@dataclass(frozen=True)
class MethodResult:
    """One method's explanation of one image.

    ``map`` is the raw attribution, ``(1, C, H, W)`` on the CPU (C = 3 for pixel methods,
    1 for the CAM family); ``seconds`` the method's time per image; ``metrics`` the values
    asked for; ``notes`` the warnings the method gave for this image (an all-zero map, say).
    """

    method: str
    options: Mapping[str, Any]
    layer: str | None
    map: Tensor = field(repr=False)
    seconds: float
    metrics: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Explanation:
    """Everything :func:`explain` found for one image; draws and saves itself.

    ``label`` names the image (a bundled name, a path, or "image N"); ``pixels`` is
    ``(H, W, 3)`` in [0, 1]: what the model saw, back in pixel space; ``inputs`` the
    preprocessed ``(1, 3, H, W)`` tensor; ``top`` the ``top_k`` most probable classes
    (:class:`~vizwidgets.models.Prediction`); ``target`` and ``target_class`` the class
    explained; ``results`` one :class:`MethodResult` per method, by method name.
    """

    label: str
    pixels: np.ndarray = field(repr=False)
    inputs: Tensor = field(repr=False)
    top: tuple[Any, ...]
    target: int
    target_class: str
    results: Mapping[str, MethodResult]

    @property
    def methods(self) -> list[str]:
        return list(self.results)

    def _result(self, method: str | None) -> MethodResult:
        if method is None:
            return next(iter(self.results.values()))
        if method not in self.results:
            raise ValueError(f"this explanation has no method {method!r}; it has {self.methods}")
        return self.results[method]

    def picture(self, method: str | None = None, display: Display | None = None) -> np.ndarray:
        """``(H, W, 3)`` uint8: ``method``'s map (default: the first) over the image."""
        return render(self.pixels, self._result(method).map, display)

    def record(self) -> dict[str, Any]:
        """The manifest record: prediction, target, and per method its files' names, time,
        metrics and notes (plain JSON types)."""
        best = self.top[0]
        return {
            "image": self.label,
            "predicted": int(best.index),
            "predicted_class": best.label,
            "probability": round(float(best.probability), 6),
            "target": self.target,
            "target_class": self.target_class,
            "methods": {
                name: {
                    "options": {k: _plain(v) for k, v in result.options.items()},
                    "layer": result.layer,
                    "seconds": round(result.seconds, 6),
                    "metrics": {k: round(float(v), 6) for k, v in result.metrics.items()},
                    "notes": list(result.notes),
                }
                for name, result in self.results.items()
            },
        }

    def save(self, folder: str | Path, stem: str, *, display: Display | None = None) -> dict[str, Any]:
        """Write, per method, ``<stem>.<method>.png`` (the picture) and ``<stem>.<method>.npy``
        (the raw map, float32, ``(C, H, W)``), then ``<stem>.json`` (the manifest record, with
        the files' names). Each file is written to a temporary name in ``folder`` and renamed,
        so a reader never sees half a file. Returns the record."""

        folder = Path(folder)
        if not stem or "/" in stem or "\\" in stem or stem in (".", ".."):
            raise ValueError(f"stem must be a plain file name without folders, got {stem!r}")
        folder.mkdir(parents=True, exist_ok=True)
        record = self.record()
        for name, result in self.results.items():
            png, npy = f"{stem}.{name}.png", f"{stem}.{name}.npy"
            picture = self.picture(name, display)
            write_atomic(folder / png, functools.partial(Image.fromarray(picture).save, format="PNG"))
            write_atomic(folder / npy, _npy_writer(result.map[0].detach().cpu().numpy().astype(np.float32)))
            record["methods"][name].update(png=png, npy=npy)
        text = json.dumps(record, indent=1).encode()
        write_atomic(folder / f"{stem}.json", text)
        return record


def _npy_writer(array: np.ndarray) -> Callable[[BinaryIO], None]:
    """A writer of ``array`` in NumPy's ``.npy`` format, for :func:`write_atomic`."""
    return lambda stream: np.save(stream, array)


def _plain(value: Any) -> Any:
    """A JSON-friendly form of an option value (tensors by their shape)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, Tensor):
        return f"tensor{tuple(value.shape)}"
    return repr(value)


def method_requests(
    methods: MethodSpec | Sequence[MethodSpec], options: Mapping[str, Mapping[str, Any]] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """``[(name, options)]`` from ``methods`` (a name, or a list of names and ``(name, options)``
    pairs) and ``options`` (method name -> its options); checks names, not option values."""

    one_pair = (
        isinstance(methods, tuple) and len(methods) == 2
        and isinstance(methods[0], str) and isinstance(methods[1], Mapping)
    )
    if isinstance(methods, str) or one_pair:
        methods = [methods]  # type: ignore[list-item]
    if not isinstance(methods, Sequence) or not methods:
        raise ValueError(
            "methods must name at least one method, e.g. ['grad_cam'] (python -m vizwidgets methods lists them)"
        )
    options = dict(options or {})
    chosen: list[tuple[str, dict[str, Any]]] = []
    for entry in methods:
        if isinstance(entry, str):
            name, given = entry, {}
        elif (
            isinstance(entry, tuple) and len(entry) == 2
            and isinstance(entry[0], str) and isinstance(entry[1], Mapping)
        ):
            name, given = entry[0], dict(entry[1])
        else:
            raise TypeError(f"each method must be a name or a (name, options) pair, got {entry!r}")
        if name not in METHODS:
            raise ValueError(
                f"unknown method {name!r}; choose from {', '.join(METHODS)} "
                "(python -m vizwidgets methods describes them)"
            )
        if name in (n for n, _ in chosen):
            raise ValueError(f"method {name!r} is listed twice; list each method once")
        chosen.append((name, {**dict(options.pop(name, {})), **given}))
    if options:
        raise ValueError(f"options for methods not asked for: {sorted(options)}; add them to methods or drop them")
    return chosen


def _metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    if isinstance(metrics, str):
        metrics = [metrics]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}; choose from {', '.join(METRICS)}")
    return tuple(dict.fromkeys(metrics))


def _labels(images: Sequence[Any], labels: Sequence[str] | None) -> list[str]:
    if labels is None:
        labels = [img if isinstance(img, str) else f"image {i + 1}" for i, img in enumerate(images)]
    labels = [str(label) for label in labels]
    if len(labels) != len(images):
        raise ValueError(f"labels must give one name per image: {len(labels)} labels for {len(images)} images")
    return labels


# ---------------------------------------------------------------------------------------------
# The chain
# ---------------------------------------------------------------------------------------------


def explain(
    model: Any,
    images: Any,
    methods: MethodSpec | Sequence[MethodSpec] = "grad_cam",
    *,
    target: Any = None,
    layer: str | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    metrics: Sequence[str] = (),
    labels: Sequence[str] | None = None,
    top_k: int = 5,
    chunk_size: int | None = None,
    metric_steps: int = 50,
) -> list[Explanation]:
    """Explain each image with each method; one frozen :class:`Explanation` per image.

    Parameters
    ----------
    model:
        A :class:`~vizwidgets.models.LoadedModel` (its preprocessing, classes and default layer
        are used), or anything :func:`~vizwidgets.models.adapt` takes: a bare ``nn.Module``
        (then ``images`` is a preprocessed tensor), say.
    images:
        A list of anything :func:`~vizwidgets.data.load_image` takes (names, paths, bytes, PIL
        images, arrays), one such image, or a preprocessed ``(N, 3, H, W)`` tensor.
    methods:
        A method name, or a list of names and ``(name, options)`` pairs
        (:data:`vizwidgets.attribution.METHODS`); each method at most once.
    target:
        None (each image's predicted class), one class (index or name) for all, or one per image.
    layer:
        The layer of the CAM family (default: the model's); methods without a layer ignore it.
    options:
        Method name -> its options, e.g. ``{"integrated_gradients": {"steps": 32}}``.
    metrics:
        Any of :data:`METRICS`, computed per map with ``metric_steps`` steps.
    labels:
        Names for the images (default: bundled names and paths as given, else "image N").
    top_k:
        How many classes each result's ``top`` holds.
    chunk_size:
        Images per pass through the model. None (default): one on a CPU, where bigger batches
        cost more per image (measured by ``benchmarks/explain.py`` on 2 threads: Grad-CAM in
        batches of 8 takes 1.3x the time per image of single images), eight on an accelerator.
    """

    requests = method_requests(methods, options)
    wanted_metrics = _metrics(metrics)
    model = adapt(model)  # a LoadedModel, or a bare nn.Module with its mean and std
    classes = model.classes
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise ValueError(f"top_k must be a whole number of at least 1, got {top_k!r}")
    if chunk_size is None:
        chunk_size = 1 if model.device.type == "cpu" else 8
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a whole number of at least 1, got {chunk_size!r}")
    # the methods, built once: the layer is checked here, the options before any pass
    built = []
    for name, given in requests:
        method = METHODS[name](model, layer if METHODS[name].needs_layer else None)
        built.append((name, method, method.check_options(given), given))

    if isinstance(images, Tensor):
        x_all = model.inputs(images)
        count = x_all.shape[0]
        names = _labels(list(range(count)), labels) if labels is not None else [f"image {i + 1}" for i in range(count)]
        sources: list[Any] = [x_all[i : i + 1] for i in range(count)]
    else:
        one_image = isinstance(images, (str, bytes, os.PathLike)) or not isinstance(images, Sequence)
        sources = [images] if one_image else list(images)
        if not sources:
            raise ValueError("images is empty: give at least one image")
        names = _labels(sources, labels)
    targets = normalize_target(target, len(sources), classes)

    explanations: list[Explanation] = []
    for start in range(0, len(sources), chunk_size):
        chunk = sources[start : start + chunk_size]
        x = torch.cat([model.inputs(s) for s in chunk]) if isinstance(images, Tensor) else model.inputs(chunk)
        chosen = None if targets is None else targets[start : start + len(chunk)].to(x.device)
        logits: Tensor | None = None
        per_method: dict[str, tuple[Tensor, float, dict[str, Tensor], list[tuple[str, bool]]]] = {}
        for name, method, checked, _given in built:
            began = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught, _plain_logits(model.module, x, method) as seen:
                warnings.simplefilter("always")
                maps = method.attribute(x, chosen, **checked).detach()
            seconds = (time.perf_counter() - began) / len(chunk)
            if logits is None:
                logits = seen.get("logits")
                if logits is None:  # the method never ran the plain model on x: predict apart,
                    # in the memory layout its own passes use, as a method's plain pass would
                    with torch.no_grad(), channels_last_inputs(model.module, method.fast_layout):
                        logits = model.module(x)
            if chosen is None:  # the first method chose the same class from the same logits
                chosen = logits.argmax(dim=1)
            scores = _measure(model, x, maps, chosen, wanted_metrics, metric_steps)
            notes = [(str(w.message), "all zero" in str(w.message) or "not finite" in str(w.message)) for w in caught]
            per_method[name] = (maps, seconds, scores, notes)
        assert logits is not None and chosen is not None
        values, indices = logits.softmax(dim=1).topk(min(top_k, logits.shape[1]), dim=1)
        for i in range(len(chunk)):
            results = {}
            for name, method, _checked, given in built:
                maps, seconds, scores, notes = per_method[name]
                one = maps[i : i + 1].cpu()
                empty = not torch.isfinite(one).all() or not bool(one.abs().sum())
                results[name] = MethodResult(
                    method=name, options=MappingProxyType(dict(given)), layer=getattr(method, "layer", None),
                    map=one, seconds=seconds,
                    metrics=MappingProxyType({k: float(v[i]) for k, v in scores.items()}),
                    notes=tuple(text for text, about_the_map in notes if empty or not about_the_map),
                )
            top = tuple(Prediction(int(j), _class_name(classes, int(j)), float(p))
                        for p, j in zip(values[i].tolist(), indices[i].tolist()))
            index = int(chosen[i])
            explanations.append(Explanation(
                label=names[start + i], pixels=_pixels(model, x[i]), inputs=x[i : i + 1].detach(),
                top=top, target=index, target_class=_class_name(classes, index), results=MappingProxyType(results),
            ))
    return explanations


@contextmanager
def _plain_logits(module: torch.nn.Module, x: Tensor, method: Any) -> Iterator[dict[str, Tensor]]:
    """Catch the logits of the first forward pass of the plain model on exactly ``x`` that
    ``method`` runs, so that predicting needs no pass of its own.

    Every method but LRP runs the model unchanged on ``x`` first (to choose the class, or for
    the gradient); a test checks that those logits equal a separate forward pass bit for bit.
    LRP's canonizers rewrite the model for its pass (batch norm merged into the convolution),
    which changes the last bits, so for LRP nothing is caught and :func:`explain` predicts apart.
    """
    seen: dict[str, Tensor] = {}
    if getattr(method, "family", "") == "relevance":
        yield seen
        return

    def catch(_: torch.nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if "logits" in seen or not inputs or not isinstance(inputs[0], Tensor) or not isinstance(output, Tensor):
            return
        if inputs[0].shape == x.shape and torch.equal(inputs[0].detach(), x):
            seen["logits"] = output.detach()

    with forward_hooks(module, {"": catch}):
        yield seen


def _class_name(classes: Any, index: int) -> str:
    return str(classes[index]) if classes is not None else f"class {index}"


def _pixels(model: ModelAdapter, x: Tensor) -> np.ndarray:
    """``(H, W, 3)`` in [0, 1] for display: the preprocessing undone when the model has one, the
    normalisation undone when only mean and std are known, else the input stretched to [0, 1]."""
    if model.preprocess is not None:
        return model.preprocess.inverse(x)
    image = x.detach().float().cpu()
    if model.mean is not None and model.std is not None:
        mean = torch.tensor(model.mean)[:, None, None]
        std = torch.tensor(model.std)[:, None, None]
        image = image * std + mean
    else:
        image = (image - image.min()) / (image.max() - image.min()).clamp(min=1e-12)
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    return image[:3].clamp(0, 1).permute(1, 2, 0).numpy()


def _measure(
    model: Any, x: Tensor, maps: Tensor, targets: Tensor, metrics: tuple[str, ...], steps: int
) -> dict[str, Tensor]:
    """Each metric asked for, one value per image of the chunk."""
    if not metrics:
        return {}

    scores: dict[str, Tensor] = {}
    if "deletion" in metrics:
        scores["deletion"] = deletion(model, x, maps, targets, steps=steps).auc.detach().cpu()
    if "insertion" in metrics:
        scores["insertion"] = insertion(model, x, maps, targets, steps=steps).auc.detach().cpu()
    if "average_drop" in metrics:
        scores["average_drop"] = 100 * confidence_drop(model, x, maps, targets).drop.detach().cpu()  # percent
    return scores
