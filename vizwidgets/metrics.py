"""Measuring explanations: faithfulness, localisation and sanity.

- :func:`deletion` and :func:`insertion` (Petsiuk, Das & Saenko 2018, "RISE: Randomized Input
  Sampling for Explanation of Black-box Models", BMVC): remove (or reveal) pixels in the
  order the map ranks them and follow the class score. A faithful map makes the score fall
  fast when its top pixels are deleted (low deletion area) and rise fast when they are
  inserted (high insertion area).
- :func:`confidence_drop` (Chattopadhyay, Sarkar, Howlader & Balasubramanian 2018,
  "Grad-CAM++", WACV): the image multiplied by its map; the average drop of the class
  probability (lower is better) and how often it increases (higher is better).
- :func:`pointing_game` (Zhang, Bargal, Lin, Brandt, Shen & Sclaroff 2018, "Top-down Neural
  Attention by Excitation Backprop", IJCV; ECCV 2016): is the map's maximum on the object
  (within a tolerance of 15 pixels)? :func:`energy_in_box`, its energy-based variant (Wang
  et al. 2020, "Score-CAM"): the share of the map's positive mass inside the box.
  :func:`localisation` runs both on a :func:`~vizwidgets.data.make_scene` scene.
- :func:`relevance_mass` (Arras, Osman & Samek 2022, "CLEVR-XAI: A benchmark dataset for the
  ground truth evaluation of neural network explanations", Information Fusion 81,
  https://doi.org/10.1016/j.inffus.2021.11.008): the share of a map's positive relevance that
  falls inside a ground-truth mask. :func:`relevance_mass_table` scores several methods on
  several regions at once (the lesion and the shortcut's marker in notebook 10).
- :func:`randomization_check` (Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim 2018,
  "Sanity Checks for Saliency Maps", NeurIPS): randomise the model's layers from the top down,
  cumulatively, on a copy, and measure how much the map still resembles the original
  (Spearman rank correlation). A map that barely changes does not explain the model.

Maps are ``(N, 1, H, W)`` or ``(N, 3, H, W)`` at the input's size (pixel maps are reduced by
summing over colour channels, see :func:`vizwidgets.viz.reduce_channels`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from vizwidgets.attribution import attribute
from vizwidgets.attribution.base import check_inputs, chunks, normalize_target, prepared, select_scores
from vizwidgets.attribution.baselines import make_baseline
from vizwidgets.attribution.registry import METHODS
from vizwidgets.models.adapter import ModelAdapter, adapt
from vizwidgets.viz import normalize, reduce_channels

__all__ = [
    "Curve",
    "deletion",
    "insertion",
    "ConfidenceDrop",
    "confidence_drop",
    "pointing_game",
    "energy_in_box",
    "localisation",
    "relevance_mass",
    "MassTable",
    "relevance_mass_table",
    "SanityCheck",
    "randomization_check",
    "spearman",
    "SCORES",
]

SCORES = ("probability", "logit")

#: Rows (perturbed images) per forward pass: forwards of 4 images were the fastest per image
#: on 2 CPU threads (see ScoreCAM's chunk measurements).
_DEFAULT_CHUNK = 4




def _maps_for(maps: Any, x: Tensor) -> Tensor:
    """``(N, H, W)`` maps matching ``x``'s batch and size, on its device."""
    m = reduce_channels(maps, "sum")[:, 0].to(x.device)
    if m.shape[0] != x.shape[0]:
        raise ValueError(f"{m.shape[0]} maps given for {x.shape[0]} images; give one map per image")
    if tuple(m.shape[-2:]) != tuple(x.shape[-2:]):
        raise ValueError(
            f"maps are {tuple(m.shape[-2:])} but the images {tuple(x.shape[-2:])}; compute them at "
            "the input size (CAM methods: upsample=True)"
        )
    if not torch.isfinite(m).all():
        raise ValueError("maps contain NaN or infinite values")
    return m


def _check_progress(progress: Any) -> Callable[[int, int], None] | None:
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable (done, total) or None, got {type(progress).__name__}")
    return progress


def _check_steps(steps: Any, pixels: int) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise TypeError(f"steps must be an int, got {type(steps).__name__}")
    if not 1 <= steps <= pixels:
        raise ValueError(f"steps must be from 1 to the number of pixels ({pixels}), got {steps}")
    return steps


@dataclass
class Curve:
    """A deletion or insertion curve.

    Attributes
    ----------
    kind:
        ``"deletion"`` or ``"insertion"``.
    fractions:
        ``(steps + 1,)``: the share of pixels deleted (or inserted) at each point, 0 to 1.
    scores:
        ``(N, steps + 1)``: the target's score (probability or logit) at each point.
    auc:
        ``(N,)``: the area under the curve (trapezoid rule over ``fractions``).
    targets:
        ``(N,)`` the classes scored.
    """

    kind: str
    fractions: Tensor
    scores: Tensor
    auc: Tensor
    targets: Tensor


def _curve(
    kind: str, model: Any, inputs: Tensor, maps: Any, target: Any, *, steps: int, fill: str | Tensor,
    score: str, chunk_size: int, seed: int | None, progress: Callable[[int, int], None] | None = None,
) -> Curve:
    adapter = adapt(model)
    module = adapter.module
    x = check_inputs(inputs)
    m = _maps_for(maps, x)
    n, _, h, w = x.shape
    steps = _check_steps(steps, h * w)
    if score not in SCORES:
        raise ValueError(f"score must be one of {list(SCORES)}, got {score!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    progress = _check_progress(progress)
    other = make_baseline(x, fill, mean=adapter.mean, std=adapter.std, seed=seed)
    targets = normalize_target(target, n, adapter.classes)
    # rank[i, p] = position of pixel p in image i's order, highest map value first (stable)
    order = m.flatten(1).argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(h * w, device=x.device).expand(n, -1))
    rank = rank.view(n, 1, h, w)
    counts = torch.round(torch.arange(steps + 1, dtype=torch.float64) * (h * w) / steps).long()
    first, second = (other, x) if kind == "deletion" else (x, other)  # where rank < count: first
    rows = [(i, k) for i in range(n) for k in range(steps + 1)]
    scores = torch.empty(n, steps + 1, dtype=torch.float32, device=x.device)
    with prepared(module), torch.no_grad():
        if targets is None:
            targets = module(x).argmax(dim=1)
        targets = targets.to(x.device)
        for part in chunks(len(rows), chunk_size):
            batch = []
            for i, k in rows[part]:
                chosen = rank[i] < int(counts[k])
                batch.append(torch.where(chosen, first[i], second[i]))
            logits = module(torch.stack(batch))
            which = torch.tensor([i for i, _ in rows[part]], device=x.device)
            values = logits.softmax(dim=1) if score == "probability" else logits
            picked, _ = select_scores(values, targets[which])
            for (i, k), v in zip(rows[part], picked):
                scores[i, k] = v
            if progress is not None:
                progress(part.stop, len(rows))
    fractions = counts.double() / (h * w)
    widths = (fractions[1:] - fractions[:-1]).to(scores)
    auc = ((scores[:, 1:] + scores[:, :-1]) / 2 * widths).sum(dim=1)
    return Curve(kind, fractions.float(), scores, auc, targets.cpu())


def deletion(
    model: Any, inputs: Tensor, maps: Any, target: Any = None, *, steps: int = 50, fill: str | Tensor = "zero",
    score: str = "probability", chunk_size: int = _DEFAULT_CHUNK, seed: int | None = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Curve:
    """The deletion curve (Petsiuk et al. 2018): delete pixels, most important first.

    At point ``k = 0 .. steps`` the top ``round(k H W / steps)`` pixels by map value (all
    channels of a pixel together) are replaced by ``fill`` and the target's ``score`` is
    measured. ``fill``: ``"zero"`` (default: the preprocessing's mean colour), ``"black"``,
    ``"blurred"``, ``"uniform"`` or a tensor, as the baselines of Integrated Gradients
    (:func:`~vizwidgets.attribution.integrated.make_baseline`). ``target`` None: each
    image's predicted class. All ``N (steps + 1)`` perturbed images run ``chunk_size`` per
    forward pass, without gradients; ``progress``, if given, is called after each pass with
    ``(rows done, rows total)``, ``N (steps + 1)`` rows in all. Lower area = more faithful.
    """
    return _curve(
        "deletion", model, inputs, maps, target, steps=steps, fill=fill, score=score, chunk_size=chunk_size, seed=seed,
        progress=progress,
    )


def insertion(
    model: Any, inputs: Tensor, maps: Any, target: Any = None, *, steps: int = 50, start: str | Tensor = "blurred",
    score: str = "probability", chunk_size: int = _DEFAULT_CHUNK, seed: int | None = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Curve:
    """The insertion curve (Petsiuk et al. 2018): start from ``start`` (default a blurred
    copy, as in the paper) and put back the original pixels, most important first. Higher
    area = more faithful. Options (``progress`` too) as :func:`deletion`."""
    return _curve(
        "insertion", model, inputs, maps, target, steps=steps, fill=start, score=score, chunk_size=chunk_size,
        seed=seed, progress=progress,
    )


@dataclass
class ConfidenceDrop:
    """:func:`confidence_drop` per image and averaged (in percent, as the paper reports)."""

    original: Tensor  # (N,) probability of the target for the image
    masked: Tensor  # (N,) for the image multiplied by its map
    drop: Tensor  # (N,) max(0, original - masked) / original
    increased: Tensor  # (N,) bool, masked > original
    average_drop: float  # percent
    increase_in_confidence: float  # percent


def confidence_drop(
    model: Any, inputs: Tensor, maps: Any, target: Any = None, *, fill: str | Tensor = "black"
) -> ConfidenceDrop:
    """Average drop and increase in confidence (Chattopadhyay et al. 2018).

    The map is scaled to [0, 1] (positive part over its maximum) and the image multiplied by
    it in pixel space: ``fill + M (x - fill)``, with ``fill`` "black" (the paper's ``I * M``,
    needs the model's mean and std) or another baseline. Average drop ``= 100 mean(max(0, Y - O) / Y)``,
    increase in confidence ``= 100 mean(O > Y)``, ``Y`` and ``O`` the target's probability
    for the image and for the masked image.
    """
    adapter = adapt(model)
    module = adapter.module
    x = check_inputs(inputs)
    m = normalize(_maps_for(maps, x)[:, None], sign="positive", scaling="max")[:, None]
    base = make_baseline(x, fill, mean=adapter.mean, std=adapter.std)
    targets = normalize_target(target, x.shape[0], adapter.classes)
    with prepared(module), torch.no_grad():
        logits = module(torch.cat([x, base + m * (x - base)]))
        n = x.shape[0]
        if targets is None:
            targets = logits[:n].argmax(dim=1)
        p, _ = select_scores(logits.softmax(dim=1), targets.to(x.device).repeat(2))
    original, masked = p[:n], p[n:]
    drop = (original - masked).clamp(min=0) / original
    increased = masked > original
    return ConfidenceDrop(
        original, masked, drop, increased, 100 * float(drop.mean()), 100 * float(increased.float().mean())
    )


def _box_lists(boxes: Sequence[Any], n: int) -> list[list[Any]]:
    if len(boxes) != n:
        raise ValueError(f"{len(boxes)} boxes given for {n} maps; give one box (or a list of boxes) per map")
    out = []
    for entry in boxes:
        group = list(entry) if isinstance(entry, (list, tuple)) and entry and not isinstance(entry[0], int) else [entry]
        for box in group:
            for side in ("left", "top", "right", "bottom"):
                if not hasattr(box, side):
                    raise TypeError(
                        f"a box must be a vizwidgets.data.Box (left, top, right, bottom), got {type(box).__name__}"
                    )
        out.append(group)
    return out


def pointing_game(maps: Any, boxes: Sequence[Any], *, tolerance: float = 15.0) -> Tensor:
    """Hits of the pointing game (Zhang et al. 2016), ``(N,)`` bool.

    A hit when the map's maximum (the first, in row-major order, if several pixels tie) lies
    inside the image's box, or within ``tolerance`` pixels of it (Euclidean distance to the
    nearest box pixel; the paper uses 15). ``boxes``: one :class:`~vizwidgets.data.Box`
    per map, or a list of boxes (a hit on any counts), in the map's pixel coordinates
    (:meth:`~vizwidgets.data.Scene.boxes_at`).
    """
    m = reduce_channels(maps, "sum")[:, 0]
    n, h, w = m.shape
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 pixels, got {tolerance!r}")
    groups = _box_lists(boxes, n)
    peaks = m.flatten(1).argmax(dim=1)
    hits = []
    for i in range(n):
        row, col = divmod(int(peaks[i]), w)
        hit = False
        for box in groups[i]:
            dx = max(box.left - col, 0, col - (box.right - 1))
            dy = max(box.top - row, 0, row - (box.bottom - 1))
            hit |= (dx * dx + dy * dy) ** 0.5 <= tolerance
        hits.append(hit)
    return torch.tensor(hits)


def energy_in_box(maps: Any, boxes: Sequence[Any]) -> Tensor:
    """The share of each map's positive mass inside its box(es), ``(N,)`` in [0, 1]
    (the energy-based pointing game of Wang et al. 2020). An all-non-positive map scores 0."""
    m = reduce_channels(maps, "sum")[:, 0].clamp(min=0)
    n, h, w = m.shape
    groups = _box_lists(boxes, n)
    out = torch.zeros(n)
    for i in range(n):
        inside = torch.zeros(h, w, dtype=torch.bool)
        for box in groups[i]:
            inside[max(box.top, 0) : max(box.bottom, 0), max(box.left, 0) : max(box.right, 0)] = True
        total = float(m[i].sum())
        out[i] = float(m[i][inside.to(m.device)].sum()) / total if total > 0 else 0.0
    return out


def localisation(
    model: Any, scene: Any, method: str = "grad_cam", *, tolerance: float = 15.0, **options: Any
) -> list[dict[str, Any]]:
    """The pointing game and box energy of ``method`` on a scene, one row per part.

    ``scene``: a :func:`~vizwidgets.data.make_scene` scene. It is preprocessed like any image
    (resized to the model's input, no crop), the boxes are scaled with it, and each part's map
    is computed for that part's class
    (``box.target``; parts without one are skipped). Rows: ``label``, ``target``, ``hit``,
    ``energy``.
    """
    adapter = adapt(model)
    if adapter.input_size is None:
        raise ValueError(
            "model has no preprocessing, so the scene cannot be turned into its input; use a model "
            "from vizwidgets.load_model"
        )
    height, width = adapter.input_size
    x = adapter.inputs(scene.image)
    rows = []
    for box in scene.boxes_at(width, height):
        if box.target is None:
            continue
        m = attribute(adapter, x, box.target, method, **options)
        rows.append(
            {
                "label": box.label,
                "target": box.target,
                "hit": bool(pointing_game(m, [box], tolerance=tolerance)[0]),
                "energy": float(energy_in_box(m, [box])[0]),
            }
        )
    return rows


def _average_ranks(values: Tensor) -> Tensor:
    """Ranks 1..n with ties given their average rank (as Spearman's coefficient needs)."""
    order = values.argsort(stable=True)
    sorted_values = values[order]
    _, inverse, counts = torch.unique_consecutive(sorted_values, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    average = ends - (counts.double() - 1) / 2  # mean of ranks start..end (1-based)
    ranks = torch.empty_like(values, dtype=torch.float64)
    ranks[order] = average[inverse]
    return ranks


def spearman(a: Tensor, b: Tensor) -> float:
    """Spearman's rank correlation of two tensors of the same size (ties: average ranks).

    0 if either is constant (no ranking to compare).
    """
    if a.numel() != b.numel():
        raise ValueError(f"spearman needs tensors of the same size, got {a.numel()} and {b.numel()}")
    ra = _average_ranks(a.detach().flatten().double().cpu())
    rb = _average_ranks(b.detach().flatten().double().cpu())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = float(ra.norm() * rb.norm())
    return float((ra * rb).sum()) / denominator if denominator > 0 else 0.0


@dataclass
class SanityCheck:
    """:func:`randomization_check`: ``correlations[j, i]`` is the rank correlation between
    image ``i``'s original map and its map once ``layers[0 .. j]`` are randomised."""

    method: str
    layers: list[str]
    correlations: Tensor  # (len(layers), N)
    absolute: bool


def _cascade(module: nn.Module, loaded_layers: Sequence[str] | None) -> list[str]:
    dense = [name for name, sub in module.named_modules() if isinstance(sub, nn.Linear)]
    if loaded_layers is None:
        loaded_layers = [name for name, sub in module.named_modules() if isinstance(sub, nn.Conv2d)]
    return [*reversed(dense), *reversed(list(loaded_layers))]


def randomization_check(
    model: Any, inputs: Tensor, method: str, target: Any = None, *, layers: Sequence[str] | None = None,
    absolute: bool = True, seed: int = 0, **options: Any,
) -> SanityCheck:
    """Cascading model-parameter randomisation (Adebayo et al. 2018), on a copy of the model.

    ``layers`` (default: the dense layers, then the model's curated layers, from the output
    down: for EfficientNet-Lite0 ``classifier, head, blocks.15, ..., blocks.0, stem``) are
    randomised one after the other, cumulatively: every parameter tensor of the layer is
    redrawn from a normal distribution with that tensor's own mean and standard deviation
    (so activations keep their scale). After each, ``method`` is run again for the same
    target (the class predicted by the intact model if None) and compared with the original
    map by Spearman's rank correlation per image, on absolute values if ``absolute`` (as the
    paper's main figures). The model itself is never changed.
    """
    adapter: ModelAdapter = adapt(model)
    module = adapter.module
    x = check_inputs(inputs)
    target_indices = normalize_target(target, x.shape[0], adapter.classes)
    if target_indices is None:
        with prepared(module), torch.no_grad():
            target_indices = module(x).argmax(dim=1).cpu()
    targets = target_indices.tolist()
    order = list(layers) if layers is not None else _cascade(module, adapter.layer_names)
    clone = copy.deepcopy(module)
    names = dict(clone.named_modules())
    for name in order:
        if name not in names:
            raise ValueError(f"layer {name!r} is not in this model (vizwidgets.list_layers(model) lists them)")
    twin = adapter.with_module(clone)

    def reduced(result: Tensor) -> Tensor:
        r = reduce_channels(result, "sum")[:, 0]
        return r.abs() if absolute else r

    original = reduced(attribute(adapter, x, targets, method, **options))
    gen = torch.Generator(device="cpu").manual_seed(seed)
    rows = []
    for name in order:
        with torch.no_grad():
            for parameter in names[name].parameters():
                spread = float(parameter.std()) if parameter.numel() > 1 else 0.0
                drawn = torch.randn(parameter.shape, generator=gen) * spread + float(parameter.mean())
                parameter.copy_(drawn.to(parameter))
        randomised = reduced(attribute(twin, x, targets, method, **options))
        rows.append([spearman(original[i], randomised[i]) for i in range(x.shape[0])])
    return SanityCheck(method, order, torch.tensor(rows), absolute)


def relevance_mass(maps: Any, masks: Any) -> Tensor:
    """Relevance mass accuracy (Arras et al. 2022): ``R_inside / R_total`` per image, ``(N,)``.

    ``maps``: ``(N, 1, H, W)`` or ``(N, 3, H, W)`` (summed over colour channels, keeping the
    sign); only the positive relevance counts, ``R = max(map, 0)``, so evidence *against* the
    class neither adds to nor takes from a region. ``masks``: ``(N, H, W)`` or ``(N, 1, H, W)``
    booleans (anything nonzero is inside), at the maps' size. An image whose map has no positive
    relevance scores 0. The score is 1 when all the positive relevance lies in the mask; a map
    spread evenly scores the mask's share of the image.
    """
    relevance = reduce_channels(maps, "sum")[:, 0].clamp(min=0)
    inside = torch.as_tensor(masks, device=relevance.device)
    if inside.dim() == 4 and inside.shape[1] == 1:
        inside = inside[:, 0]
    if tuple(inside.shape) != tuple(relevance.shape):
        raise ValueError(
            f"masks must be (N, H, W) at the maps' size {tuple(relevance.shape)}, got "
            f"{tuple(inside.shape)}; make the masks at the model's input size"
        )
    inside = inside != 0
    total = relevance.flatten(1).sum(dim=1)
    within = (relevance * inside).flatten(1).sum(dim=1)
    return torch.where(total > 0, within / total.clamp(min=torch.finfo(total.dtype).tiny), 0.0)


@dataclass(frozen=True)
class MassTable:
    """:func:`relevance_mass_table`: ``scores[method][region]`` is the mean relevance mass of
    ``method`` in ``region`` over the images; ``images`` how many were scored."""

    scores: dict[str, dict[str, float]]
    regions: tuple[str, ...]
    images: int

    def best(self, region: str) -> str:
        """The method that puts the most mass in ``region``."""
        return max(self.scores, key=lambda method: self.scores[method][region])

    def to_markdown(self, digits: int = 2) -> str:
        """The table in Markdown: one row per method, one column per region, then the rest."""
        header = ["method", *(f"mass in {r}" for r in self.regions), "elsewhere"]
        lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        for method, row in self.scores.items():
            values = [row[r] for r in self.regions]
            cells = [f"{v:.{digits}f}" for v in (*values, max(0.0, 1.0 - sum(values)))]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_markdown()


def relevance_mass_table(
    model: Any,
    inputs: Tensor,
    regions: dict[str, Any],
    methods: Sequence[str] = ("grad_cam", "integrated_gradients", "lrp", "occlusion"),
    target: Any = None,
    *,
    options: dict[str, dict[str, Any]] | None = None,
) -> MassTable:
    """Score each of ``methods`` by its :func:`relevance_mass` in each ground-truth region.

    ``inputs``: a preprocessed batch ``(N, 3, H, W)``; ``regions``: a name for each set of masks
    ``(N, H, W)`` at the input's size (for the radiographs: ``{"lesion": data.lesion_masks,
    "marker": data.marker_masks}``, on images that hold both); ``target``: the class explained
    (None: each image's predicted class); ``options``: per-method options, e.g.
    ``{"integrated_gradients": {"steps": 32}}``. Returns the mean score per method and region.

    Regions may overlap; where they do not, one minus their sum is the mass elsewhere.
    """
    if not regions:
        raise ValueError('regions must name at least one set of masks, e.g. {"lesion": masks}')
    x = check_inputs(inputs)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; known methods: {', '.join(METHODS)}")
    options = options or {}
    scores: dict[str, dict[str, float]] = {}
    for method in methods:
        maps = attribute(model, x, target, method, **options.get(method, {}))
        scores[method] = {
            name: float(relevance_mass(maps, masks).mean()) for name, masks in regions.items()
        }
    return MassTable(scores, tuple(regions), int(x.shape[0]))
