"""Integrated Gradients: the gradient integrated along a straight path from a baseline.

Sundararajan, Taly & Yan 2017, "Axiomatic Attribution for Deep Networks", ICML.

For an image ``x``, a baseline ``x'`` (an input that stands for "no information") and the
score ``F = S_c`` of the target class, the attribution of input value ``i`` is

``IG_i(x) = (x_i - x'_i) * integral_0^1 dF/dx_i (x' + a (x - x')) da``

and the values satisfy *completeness*: ``sum_i IG_i(x) = F(x) - F(x')``. The integral is
approximated by a quadrature rule with nodes ``a_k`` and weights ``w_k`` (``k = 1..steps``):

``IG_i(x) ~ (x_i - x'_i) * sum_k w_k dF/dx_i (x' + a_k (x - x'))``

so the work is ``steps`` gradients, each one forward and one backward pass. The gap

``delta = sum_i IG_i(x) - (F(x) - F(x'))``

measures the quadrature error; :func:`completeness_delta` and
:meth:`IntegratedGradients.attribute_with_delta` compute it.

How many steps: the paper suggests 20 to 300, enough to bring the delta within 5 % of
``F(x) - F(x')``. On the default model the path from the black baseline is steep near its
start (for the chelsea image the cat logit climbs from 0.1 to 8.3 while ``a`` goes from 0.015
to 0.045, and then moves by 2 more in all), so 64 Gauss-Legendre steps leave a delta of 9 %,
128 steps 6.3 %, 256 steps 1.7 % and 512 steps 0.36 %; a blurred baseline left 1.4 % at 64
steps. docs/attribution.md ("Integrated Gradients: how many steps") has the measurements.

Batching slices the path, not the images: ``chunk_size`` path points of every image of the
batch go through the network together, ``N * chunk_size`` rows per pass, or fewer when that
would exceed the memory budget (:func:`~vizwidgets.attribution.limits.rows_per_pass`); the
result does not depend on the chunking.

Shapes: ``inputs`` and the result are ``(N, 3, H, W)`` (preprocessed space), the delta ``(N,)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from vizwidgets.attribution.base import (
    Attribution,
    Option,
    Target,
    check_inputs,
    chunks,
    normalize_target,
    prepared,
    select_scores,
)
from vizwidgets.attribution.baselines import BASELINES, BLUR_SIGMA_FRACTION, make_baseline
from vizwidgets.attribution.gradient import input_gradient
from vizwidgets.attribution.limits import rows_per_pass
from vizwidgets.attribution.quadrature import QUADRATURES, quadrature_rule
from vizwidgets.models.adapter import adapt

__all__ = [
    "IntegratedGradients",
    "integrated_gradients",
    "completeness_delta",
    "make_baseline",
    "quadrature_rule",
    "BASELINES",
    "QUADRATURES",
    "BLUR_SIGMA_FRACTION",
]

#: Path points per forward+backward pass: the fastest on 2 CPU threads (see the class docstring).
_DEFAULT_CHUNK = 5


def _integrated_gradients(
    model: nn.Module,
    x: Tensor,
    baseline: Tensor,
    target: Tensor,
    nodes: Tensor,
    weights: Tensor,
    chunk_size: int,
) -> Tensor:
    """The maths only: ``(x - x') * sum_k w_k dF/dx (x' + a_k (x - x'))``, ``(N, C, H, W)``.

    ``x``, ``baseline``: ``(N, C, H, W)``; ``target``: ``(N,)``; ``nodes``, ``weights``:
    ``(steps,)``. Each pass takes ``chunk_size`` consecutive nodes for all N images.
    """
    difference = x - baseline
    nodes = nodes.to(x.device, x.dtype)
    weights = weights.to(x.device, x.dtype)
    total = torch.zeros_like(x)
    for part in chunks(len(nodes), chunk_size):
        a = nodes[part].view(-1, 1, 1, 1, 1)  # (S, 1, 1, 1, 1)
        points = (baseline[None] + a * difference[None]).flatten(0, 1)  # (S * N, C, H, W)
        steps_here = part.stop - part.start
        grad, _ = input_gradient(model, points, target.repeat(steps_here))
        total += (weights[part].view(-1, 1, 1, 1, 1) * grad.view(steps_here, *x.shape)).sum(dim=0)
    return difference * total


def _completeness_delta(
    model: nn.Module, x: Tensor, attributions: Tensor, baseline: Tensor, target: Tensor | None
) -> Tensor:
    """``sum(attributions) - (F(x) - F(x'))`` per image, ``(N,)``; the model is prepared."""
    with torch.no_grad():
        if target is None:
            target = model(x).argmax(dim=1)
        scores, _ = select_scores(model(torch.cat([x, baseline])), target.repeat(2))
    n = x.shape[0]
    return attributions.detach().sum(dim=(1, 2, 3)) - (scores[:n] - scores[n:])


def completeness_delta(
    model: Any,
    inputs: Tensor,
    attributions: Tensor,
    baseline: str | Tensor,
    target: Target = None,
    *,
    seed: int | None = 0,
) -> Tensor:
    """How far attributions are from completeness: ``sum_i A_i - (F(x) - F(x'))``, ``(N,)``.

    ``F`` is the score (logit) of the target class; ``target`` None means each image's
    predicted class on ``inputs``, as :class:`IntegratedGradients` uses. ``baseline`` is the
    baseline the attributions were computed with: a tensor or a name (see
    :func:`make_baseline`; "black" and "uniform" need the model's mean and std, "uniform" the same
    ``seed``). For Integrated Gradients the delta is the quadrature error and shrinks as
    ``steps`` grows. The model is left as it was.
    """
    adapter = adapt(model)
    module = adapter.module
    x = check_inputs(inputs, module)
    if not isinstance(attributions, Tensor):
        raise TypeError(f"attributions must be a torch.Tensor, got {type(attributions).__name__}")
    if attributions.shape != x.shape:
        raise ValueError(
            f"attributions have shape {tuple(attributions.shape)} but inputs {tuple(x.shape)}; "
            "pass the attributions of these inputs"
        )
    base = make_baseline(x, baseline, mean=adapter.mean, std=adapter.std, seed=seed)
    target_indices = normalize_target(target, x.shape[0], adapter.classes)
    with prepared(module):
        return _completeness_delta(module, x, attributions.to(x.dtype), base, target_indices)


class IntegratedGradients(Attribution):
    """Integrated Gradients (Sundararajan, Taly & Yan 2017).

    ``IG_i(x) = (x_i - x'_i) * integral_0^1 dF/dx_i (x' + a (x - x')) da``, approximated with
    ``steps`` points of the quadrature rule ``quadrature`` (see :func:`quadrature_rule`); ``F`` is
    the target logit, the target (None: the predicted class) fixed on the clean image ``x``.
    Returns ``(N, 3, H, W)``, summing per image to about ``F(x) - F(x')``; the gap is the
    completeness delta (:meth:`attribute_with_delta`, :func:`completeness_delta`).

    Options
    -------
    steps:
        Path points (gradients computed), 1 to 1024. Default 50.
    baseline:
        ``"black"`` (default), ``"blurred"``, ``"uniform"``, ``"zero"`` or a tensor; see
        :func:`make_baseline`. "black" and "uniform" need the preprocessing's mean and std,
        which a :class:`~vizwidgets.models.LoadedModel` carries (for a bare module:
        ``adapt(module, mean=..., std=...)``). For a plain ``nn.Module`` without them they
        raise ``ValueError`` rather than guess: "black" is a different input under every
        normalisation, and a silently wrong baseline gives a silently different explanation.
        Use "zero", "blurred" or a tensor there.
    quadrature:
        The quadrature rule, default ``"gausslegendre"``. Gauss-Legendre is exact for
        polynomials of degree ``2 * steps - 1`` and converges exponentially on smooth networks
        (Softplus and tanh: a delta below 1e-4 of ``F(x) - F(x')`` at 16 steps, see the tests),
        where the midpoint and trapezoid rules gain only a factor 4 per doubling of steps.
        Networks built from (clipped) ReLUs, such as the default model, are piecewise linear
        and their gradient along the path is rough, so no rule converges fast there. Measured
        with the black baseline on four sample images (chelsea, coffee, astronaut, rocket), the
        mean ``|delta|`` was 4.8 % of ``F(x) - F(x')`` for Gauss-Legendre and 3.6 % for the
        midpoint rule at 64 steps, 3.7 % and 5.2 % at 128 steps; the trapezoid and right
        Riemann rules did worse (chelsea at 64 steps: 15 % and 29 %, against 9 %).
        Gauss-Legendre is never far behind and much better on smooth models, hence the
        default. Whatever the rule, check the delta and add steps when it is large.
    chunk_size:
        Path points per forward+backward pass, default 5: each pass has ``N * chunk_size``
        rows. On 2 CPU threads (default model, 224 x 224, one image, 50 steps; median of 5
        runs) IG took 2.98 s in chunks of 1, 2.10 s in chunks of 5, 2.11 s in chunks of 10,
        3.00 s in chunks of 25 and 3.77 s in one chunk of 50, against 2.59 s for 50 bare
        forward+backward passes of one image. Chunks of 5 tie with 10 and need half the
        memory. On a GPU a larger chunk is faster. An upper bound: a pass never takes more
        rows than fit the memory budget (2 GiB by default, about 16 rows of 224 x 224 for
        the default model; see :mod:`~vizwidgets.attribution.limits`).
    seed:
        Seed of the "uniform" baseline (None: a new draw each call).
    """

    name = "integrated_gradients"
    title = "Integrated Gradients"
    family = "path"
    output = "pixels"
    description = "The gradient summed along a path from a baseline image: sums to the score change."
    reference = (
        "Sundararajan, Taly & Yan 2017, Axiomatic Attribution for Deep Networks, ICML"
    )
    options = (
        Option("steps", 50, "int", "points on the path from the baseline to the image", 1, 1024, interactive=(4, 256)),
        Option(
            "baseline", "black", "choice",
            "the input that stands for 'no information' (or a preprocessed tensor)",
            choices=BASELINES,
        ),
        Option("quadrature", "gausslegendre", "choice", "quadrature rule for the path integral", choices=QUADRATURES),
        Option(
            "chunk_size", _DEFAULT_CHUNK, "int",
            "path points per forward+backward pass (N x chunk_size rows), at most: capped by the "
            "memory budget", 1, 1024,
        ),
        Option("seed", 0, "int", "seed of the uniform baseline (None: a new draw each call)", 0, None, nullable=True),
    )

    def __init__(self, model: Any, layer: str | None = None) -> None:
        super().__init__(model, layer)
        #: The preprocessing's mean and std in [0, 1] pixel units (None: unknown).
        self.pixel_mean: tuple[float, ...] | None = self.adapter.mean
        self.pixel_std: tuple[float, ...] | None = self.adapter.std

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Check each option (see the class docstring) and the combination of steps and quadrature."""
        checked = super().check_options(options)
        if checked["quadrature"] == "riemann_trapezoid" and checked["steps"] < 2:
            raise ValueError(
                f"{self.name}: option 'steps' must be at least 2 for quadrature 'riemann_trapezoid', "
                f"got {checked['steps']}"
            )
        return checked

    def make_baseline(self, inputs: Tensor, baseline: str | Tensor = "black", *, seed: int | None = 0) -> Tensor:
        """The baseline this method uses for ``inputs``, ``(N, 3, H, W)``; see :func:`make_baseline`."""
        return make_baseline(inputs, baseline, mean=self.pixel_mean, std=self.pixel_std, seed=seed)

    def _attribute(
        self, x: Tensor, target: Tensor | None, *, steps: int, baseline: str | Tensor, quadrature: str,
        chunk_size: int, seed: int | None,
    ) -> Tensor:
        base = self.make_baseline(x, baseline, seed=seed)
        if target is None:
            with torch.no_grad():
                target = self.model(x).argmax(dim=1)
        nodes, weights = quadrature_rule(quadrature, steps)
        height, width = x.shape[-2:]
        chunk_size = rows_per_pass(self.model, height, width, chunk_size, rows_per_item=x.shape[0], backward=True)
        return _integrated_gradients(self.model, x, base, target, nodes, weights, chunk_size)

    def attribute_with_delta(
        self, inputs: Tensor, target: Target = None, **options: Any
    ) -> tuple[Tensor, Tensor]:
        """``(attributions (N, 3, H, W), delta (N,))``: :meth:`attribute` and its completeness
        delta ``sum_i IG_i - (F(x) - F(x'))``, with the same baseline and target.

        Costs one forward pass of ``2 N`` rows more than :meth:`attribute`.
        """
        checked = self.check_options(options)
        if checked["seed"] is None and isinstance(checked["baseline"], str) and checked["baseline"] == "uniform":
            # draw the seed here so the delta sees the very baseline the attributions used
            options = {**options, "seed": int(torch.randint(0, 2**31 - 1, ()).item())}
            checked["seed"] = options["seed"]
        attributions = self.attribute(inputs, target, **options)
        x = check_inputs(inputs, self.model)
        base = self.make_baseline(x, checked["baseline"], seed=checked["seed"])
        target_indices = normalize_target(target, x.shape[0], self.classes)
        with prepared(self.model):
            delta = _completeness_delta(self.model, x, attributions, base, target_indices)
        return attributions, delta


def integrated_gradients(
    model: Any,
    inputs: Tensor,
    target: Target = None,
    *,
    steps: int = 50,
    baseline: str | Tensor = "black",
    quadrature: str = "gausslegendre",
    chunk_size: int = _DEFAULT_CHUNK,
    seed: int | None = 0,
) -> Tensor:
    """Integrated Gradients (Sundararajan et al. 2017); see :class:`IntegratedGradients`."""
    return IntegratedGradients(model).attribute(
        inputs, target, steps=steps, baseline=baseline, quadrature=quadrature, chunk_size=chunk_size,
        seed=seed,
    )
