"""LRP rules: how one layer hands the relevance of its outputs down to its inputs.

Layer-wise relevance propagation (Bach et al. 2015) explains a score by sharing it out layer by
layer, from the output to the pixels. For an affine layer ``z_k = sum_j a_j w_jk + b_k`` with
inputs ``a_j`` and output relevance ``R_k``, every rule here has the form (Montavon, Binder,
Lapuschkin, Samek & Müller 2019, "Layer-Wise Relevance Propagation: An Overview", in Explainable
AI, LNCS 11700, Sec. 10.2)::

    R_j = sum_k  c_jk / (z'_k + stabiliser) * R_k,        z'_k = sum_j c_jk (+ bias term)

where ``c_jk`` is the share of input ``j`` in output ``k`` under the rule (``a_j w_jk`` for
LRP-0). In matrix form, for a batch: ``s = R_out / z'`` (elementwise), then
``R_in = a * (W'^T s)``; a convolution's ``W^T`` is its transposed convolution. That is what
:meth:`Rule.propagate` computes, on a whole batch at once, for dense and convolutional layers
alike (see :class:`~vizwidgets.attribution.lrp.layers.AffineLayer`).

The rules (``W+ = max(W, 0)``, ``W- = min(W, 0)``, likewise ``a+``, ``a-``, ``b+``, ``b-``):

============  ==========================================================================
LRP-0         ``c_jk = a_j w_jk``; the bias keeps its share. Bach et al. 2015.
LRP-epsilon   as LRP-0, denominator ``z_k + eps sign(z_k)``: weak, contradictory outputs
              absorb relevance; ``eps`` absolute or relative to the layer's output scale.
              Bach et al. 2015; Montavon et al. 2019, Sec. 10.2.1.
LRP-gamma     ``c_jk = a_j w_jk + gamma (a_j w_jk)+``: positive contributions favoured.
              Montavon et al. 2019, Sec. 10.2.1 (for ``a >= 0``, ``a_j (w_jk + gamma w_jk+)``);
              for outputs ``z_k <= 0`` (no ReLU after) negative ones, ``gamma (a_j w_jk)-``.
alpha-beta    ``alpha (a_j w_jk)+ / z+_k - beta (a_j w_jk)- / z-_k``, ``alpha - beta = 1``.
              Bach et al. 2015; alpha=1, beta=0 is the z+ rule of deep Taylor decomposition.
z^B           ``c_ij = x_i w_ij - l_i w_ij+ - h_i w_ij-`` for pixels bounded by ``l <= x <= h``
              (no bias). Montavon, Lapuschkin, Binder, Samek & Müller 2017, "Explaining
              nonlinear classification decisions with deep Taylor decomposition", Pattern
              Recognition 65; Montavon et al. 2019, Sec. 10.3.2.
============  ==========================================================================

Parameter-free linear operations (average pooling, the sum of a residual block) use the
z-rule :class:`Norm`: each input gets relevance in proportion to what it added to the output.

Stabilisers are sign-preserving, ``z + eps sign(z)`` with ``sign(+0) = +1``, so for
``eps > 0`` the denominator keeps the sign of ``z`` and is never zero. Where a denominator is
exactly zero (no stabiliser, no contribution at all) the relevance passed down is zero.

All rules work on whole batches; each image's result depends on that image only.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vizwidgets.attribution.lrp.layers import AffineLayer
from vizwidgets.nn import Sum

__all__ = [
    "Rule",
    "LRP0",
    "Epsilon",
    "Gamma",
    "AlphaBeta",
    "ZBox",
    "Norm",
    "stabilize",
    "divide",
]


def stabilize(z: Tensor, epsilon: float | Tensor) -> Tensor:
    """``z + epsilon * sign(z)``, with the sign of ``+0`` positive (unchanged for ``epsilon = 0``).

    ``epsilon`` is a number or a tensor that broadcasts against ``z`` (one per image, say).
    The result keeps the sign of ``z`` and, for ``epsilon > 0``, is never zero.
    """
    if not isinstance(epsilon, Tensor):
        if epsilon == 0:
            return z
        epsilon = torch.tensor(float(epsilon), dtype=z.dtype, device=z.device)
    return torch.copysign(epsilon, z).add_(z)


def divide(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator``, and 0 where that is not finite (a zero denominator)."""
    return (numerator / denominator).nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)


def _ratio(relevance: Tensor, z: Tensor, epsilon: float) -> Tensor:
    """``s = R / (z + eps sign z)``: the relevance per unit of output, shaped like ``z``."""
    if epsilon > 0:
        return relevance / stabilize(z, epsilon)  # never zero
    return divide(relevance, z)


def _nonnegative(a: Tensor) -> bool:
    """Whether every input is ``>= 0`` (after a ReLU): the rules then need fewer products."""
    return bool(a.amin() >= 0)  # amin: min() copies a channels-last tensor first (15x slower)


def _split_apply(
    layer: AffineLayer, a: Tensor, nonnegative: bool, w_pos: Tensor, w_neg: Tensor | None, bias: Tensor | None
) -> Tensor:
    """``w_pos a+ + w_neg a- + bias`` (one product if ``a >= 0``, and then ``w_neg`` may be None)."""
    if nonnegative:
        return layer.apply(a, w_pos, bias)
    assert w_neg is not None
    return layer.apply(a.clamp(min=0), w_pos, bias) + layer.apply(a.clamp(max=0), w_neg)


def _split_transpose(
    layer: AffineLayer, a: Tensor, nonnegative: bool, w_pos: Tensor, w_neg: Tensor | None, s: Tensor
) -> Tensor:
    """``a+ * (w_pos^T s) + a- * (w_neg^T s)``: the numerators of :func:`_split_apply`."""
    if nonnegative:
        return layer.transpose(s, w_pos, a).mul_(a)
    assert w_neg is not None
    positive = layer.transpose(s, w_pos, a).mul_(a.clamp(min=0))
    return positive.add_(layer.transpose(s, w_neg, a).mul_(a.clamp(max=0)))


class Rule(ABC):
    """How an affine layer ``z = W a + b`` passes relevance from its outputs to its inputs.

    Subclasses implement :meth:`propagate`; they are small frozen dataclasses whose fields are
    the rule's parameters.
    """

    @abstractmethod
    def propagate(self, layer: AffineLayer, inputs: Tensor, outputs: Tensor, relevance: Tensor) -> Tensor:
        """Input relevance ``(N, *in)`` from output relevance ``relevance`` ``(N, *out)``.

        ``inputs`` is the layer's input ``a`` ``(N, *in)`` and ``outputs`` its output
        ``z = W a + b`` ``(N, *out)`` from the forward pass.
        """


@dataclass(frozen=True)
class LRP0(Rule):
    """LRP-0 (Bach et al. 2015): ``R_j = sum_k a_j w_jk / z_k * R_k``.

    Matrix form: ``R_in = a * W^T (R_out / z)``. The bias takes its share ``b_k / z_k R_k``
    with it; for a bias-free ReLU network LRP-0 equals gradient x input.
    """

    def propagate(self, layer: AffineLayer, inputs: Tensor, outputs: Tensor, relevance: Tensor) -> Tensor:
        s = divide(relevance, outputs)
        return layer.transpose(s, layer.weight, inputs).mul_(inputs)


@dataclass(frozen=True)
class Epsilon(Rule):
    """LRP-epsilon: ``R_j = sum_k a_j w_jk / (z_k + eps_k sign(z_k)) * R_k``.

    Bach et al. 2015; Montavon et al. 2019, Sec. 10.2.1. The stabiliser soaks up the relevance
    of weak or contradictory outputs, so explanations are sparser and less noisy; relevance
    is no longer conserved. With ``relative=False`` ``eps_k = epsilon`` in the units of the
    layer's outputs; with ``relative=True`` (what the composites use) ``eps_k = epsilon *
    rms(z)``, the root mean square of the layer's outputs for the same image: the
    "``epsilon = 0.25 std``" of the LRP tutorial that accompanies Montavon et al. 2019 (for
    VGG-16, computed there as ``0.25 * (z**2).mean()**0.5``), which makes ``epsilon`` mean the
    same on every layer and every network.
    """

    epsilon: float = 0.25
    relative: bool = False

    def __post_init__(self) -> None:
        _check_number("epsilon", self.epsilon, minimum=0.0)
        if not isinstance(self.relative, bool):
            raise TypeError(f"relative must be True or False, got {type(self.relative).__name__}")

    def propagate(self, layer: AffineLayer, inputs: Tensor, outputs: Tensor, relevance: Tensor) -> Tensor:
        if self.relative:
            # the norm over all but the batch dimension, without flatten's copy of a
            # channels-last tensor
            dims = tuple(range(1, outputs.dim()))
            rms = torch.linalg.vector_norm(outputs, dim=dims) / math.sqrt(math.prod(outputs.shape[1:]))
            epsilon = (self.epsilon * rms).view(-1, *([1] * (outputs.dim() - 1)))
            denominator = stabilize(outputs, epsilon)
            # nonzero everywhere unless an image's outputs are all zero
            nonzero = self.epsilon > 0 and bool((rms > 0).all())
            s = relevance / denominator if nonzero else divide(relevance, denominator)
        else:
            s = _ratio(relevance, outputs, self.epsilon)
        return layer.transpose(s, layer.weight, inputs).mul_(inputs)


@dataclass(frozen=True)
class Gamma(Rule):
    """LRP-gamma: contributions that agree with the output's sign favoured by ``gamma``.

    Montavon et al. 2019, Sec. 10.2.1, for inputs ``a >= 0`` (after a ReLU) and an active
    output ``z_k > 0``::

        R_j = sum_k a_j (w_jk + gamma w_jk+) / sum_j' a_j' (w_j'k + gamma w_j'k+) * R_k

    with the bias as an input ``a_0 = 1`` (``b_k + gamma b_k+``). In contribution form,
    ``c_jk = a_j w_jk + gamma (a_j w_jk)+``, which also covers inputs of either sign (after a
    residual sum): ``a+ (w + gamma w+)`` and ``a- (w + gamma w-)``. Outputs with ``z_k <= 0``
    carry relevance only where no ReLU follows (a linear bottleneck, a logit); there the same
    idea favours the *negative* contributions, ``c_jk = a_j w_jk + gamma (a_j w_jk)-``, so the
    denominator keeps the sign of ``z_k`` and stays at least ``|z_k|`` away from zero
    (``W+`` there could cancel ``z_k`` and make relevance explode).

    Matrix form with ``z+ = sum_j (a_j w_jk)+ + b+``, ``m = [z > 0]``:
    ``z' = z + gamma (m z+ + (1 - m)(z - z+))``, ``s = R / z'``, and for ``a >= 0``
    ``R_in = a * ((W + gamma W+)^T (m s) + (W + gamma W-)^T ((1 - m) s))``. The denominator
    is zero only where every contribution is, and then the relevance is zero;
    ``stabilizer > 0`` adds ``stabilizer * sign(z')`` besides.
    """

    gamma: float = 0.25
    stabilizer: float = 0.0

    def __post_init__(self) -> None:
        _check_number("gamma", self.gamma, minimum=0.0)
        _check_number("stabilizer", self.stabilizer, minimum=0.0)

    def propagate(self, layer: AffineLayer, inputs: Tensor, outputs: Tensor, relevance: Tensor) -> Tensor:
        w, b, g = layer.weight, layer.bias, self.gamma
        w_pos = w.clamp(min=0)
        nonnegative = layer.rectified_inputs or _nonnegative(inputs)
        w_up = torch.add(w, w_pos, alpha=g)  # W + gamma W+: for contributions (a w) > 0 being favoured
        # W - W+ = W- and W + gamma W-, needed only where an input or an output is negative
        w_neg = None if nonnegative and layer.rectified else w - w_pos
        w_down = None if w_neg is None else torch.add(w, w_neg, alpha=g)
        b_pos = None if b is None else b.clamp(min=0)
        z_pos = _split_apply(layer, inputs, nonnegative, w_pos, w_neg, b_pos)  # sum of (a w)+ and b+
        if layer.rectified:
            # a ReLU follows: relevance sits on active outputs only, where z' = z + gamma z+
            s = _ratio(relevance, torch.add(outputs, z_pos, alpha=g), self.stabilizer)
            return _split_transpose(layer, inputs, nonnegative, w_up, w_down, s)
        assert w_down is not None  # computed for every layer without a ReLU after it
        # m as 1.0 and 0.0: products with it select exactly, at half the time of torch.where
        active = (outputs > 0).to(outputs.dtype)
        z = (z_pos * active).add_((outputs - z_pos).mul_(1 - active)).mul_(g).add_(outputs)
        s = _ratio(relevance, z, self.stabilizer)
        s_pos = s * active
        s_neg = s.sub_(s_pos)
        # active outputs: a+ (W + g W+) + a- (W + g W-); inactive: a+ (W + g W-) + a- (W + g W+)
        if nonnegative:
            both = layer.transpose(s_pos, w_up, inputs).add_(layer.transpose(s_neg, w_down, inputs))
            return both.mul_(inputs)
        positive = layer.transpose(s_pos, w_up, inputs).add_(layer.transpose(s_neg, w_down, inputs))
        negative = layer.transpose(s_pos, w_down, inputs).add_(layer.transpose(s_neg, w_up, inputs))
        return positive.mul_(inputs.clamp(min=0)).add_(negative.mul_(inputs.clamp(max=0)))


@dataclass(frozen=True)
class AlphaBeta(Rule):
    """The alpha-beta rule (Bach et al. 2015)::

        R_j = sum_k ( alpha (a_j w_jk)+ / z+_k  -  beta (a_j w_jk)- / z-_k ) R_k

    with ``z+_k = sum_j (a_j w_jk)+ + b_k+`` and ``z-_k = sum_j (a_j w_jk)- + b_k-``, and
    ``alpha - beta = 1``. ``(a w)+ = a+ w+ + a- w-`` and ``(a w)- = a+ w- + a- w+``. Common
    choices: ``AlphaBeta(1, 0)`` (the z+ rule: positive evidence only) and ``AlphaBeta(2, 1)``.
    A zero denominator (no contribution of that sign) gives zero relevance; ``stabilizer > 0``
    adds ``stabilizer * sign(z)`` besides.
    """

    alpha: float = 1.0
    beta: float = 0.0
    stabilizer: float = 0.0

    def __post_init__(self) -> None:
        _check_number("alpha", self.alpha, minimum=1.0)
        _check_number("beta", self.beta, minimum=0.0)
        _check_number("stabilizer", self.stabilizer, minimum=0.0)
        if not math.isclose(self.alpha - self.beta, 1.0, rel_tol=0.0, abs_tol=1e-9):
            raise ValueError(
                f"alpha and beta must satisfy alpha - beta = 1, got alpha={self.alpha}, beta={self.beta}"
            )

    def propagate(self, layer: AffineLayer, inputs: Tensor, outputs: Tensor, relevance: Tensor) -> Tensor:
        w, b = layer.weight, layer.bias
        w_pos, w_neg = w.clamp(min=0), w.clamp(max=0)
        nonnegative = layer.rectified_inputs or _nonnegative(inputs)
        # positive contributions (a w)+ = a+ w+ + a- w-; the denominator z+ >= 0
        b_pos, b_neg = (None, None) if b is None else (b.clamp(min=0), b.clamp(max=0))
        z_pos = _split_apply(layer, inputs, nonnegative, w_pos, w_neg, b_pos)
        s_pos = _ratio(relevance, z_pos, self.stabilizer)
        result = _split_transpose(layer, inputs, nonnegative, w_pos, w_neg, s_pos)
        if self.alpha != 1:
            result.mul_(self.alpha)
        if self.beta != 0:
            # negative contributions (a w)- = a+ w- + a- w+; the denominator z- <= 0
            z_neg = _split_apply(layer, inputs, nonnegative, w_neg, w_pos, b_neg)
            s_neg = _ratio(relevance, z_neg, self.stabilizer)
            negative = _split_transpose(layer, inputs, nonnegative, w_neg, w_pos, s_neg)
            result.sub_(negative.mul_(self.beta))
        return result


Bound = float | Sequence[float] | Tensor


_INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def _as_bound(value: Bound, name: str) -> tuple[float, ...]:
    if isinstance(value, Tensor):
        if value.device.type == "meta" or not (value.is_floating_point() or value.dtype in _INT_DTYPES):
            raise ValueError(
                f"{name} must be a tensor of real numbers with values, got {value.dtype} on {value.device}"
            )
        if value.dim() > 1:
            raise ValueError(
                f"{name} must be a number or one number per input channel, got shape {tuple(value.shape)}"
            )
        value = value.detach().cpu().reshape(-1).tolist()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        values: tuple[float, ...] = (float(value),)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        values = tuple(value)
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"{name} must hold numbers, got {type(v).__name__}")
        values = tuple(float(v) for v in values)
    else:
        raise TypeError(
            f"{name} must be a number, a sequence of numbers or a tensor, got {type(value).__name__}"
        )
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name} must be finite numbers, got {values}")
    return values


@dataclass(frozen=True)
class ZBox(Rule):
    """The z^B rule for inputs known to lie in a box ``low <= x <= high`` (pixels)::

        R_i = sum_j (x_i w_ij - l_i w_ij+ - h_i w_ij-)
                    / sum_i' (x_i' w_i'j - l_i' w_i'j+ - h_i' w_i'j-) * R_j

    Montavon et al. 2017 (deep Taylor decomposition, Pattern Recognition 65); Montavon et al.
    2019, Sec. 10.3.2. Meant for the first layer. ``low``/``high`` are one number, or one per
    input channel (for images normalised by ``(p - mean) / std`` with ``p`` in [0, 1]:
    ``low = -mean / std``, ``high = (1 - mean) / std``). Zero padding inside the layer
    (``padding=`` or a merged padding module) gets no bounds: padded values are fixed at 0.
    The denominator is ``>= 0`` inside the box and zero only where every contribution is
    (zero relevance then); there is no bias term, so relevance is conserved.
    In matrix form it is LRP-0 on the stacked input ``[x, l, h]`` with weights
    ``[W, -W+, -W-]``, which is how it is computed (one product) for dense and ungrouped
    convolutional layers.
    """

    low: tuple[float, ...]
    high: tuple[float, ...]
    stabilizer: float = 0.0

    def __init__(self, low: Bound, high: Bound, stabilizer: float = 0.0) -> None:
        lows, highs = _as_bound(low, "low"), _as_bound(high, "high")
        if len(lows) != len(highs) and 1 not in (len(lows), len(highs)):
            raise ValueError(f"low and high must have the same length, got {len(lows)} and {len(highs)}")
        if len(lows) == 1 and len(highs) > 1:
            lows = lows * len(highs)
        if len(highs) == 1 and len(lows) > 1:
            highs = highs * len(lows)
        if any(lo > hi for lo, hi in zip(lows, highs)):
            raise ValueError(f"low must be at most high in every channel, got low={lows}, high={highs}")
        _check_number("stabilizer", stabilizer, minimum=0.0)
        object.__setattr__(self, "low", lows)
        object.__setattr__(self, "high", highs)
        object.__setattr__(self, "stabilizer", float(stabilizer))

    def bounds(self, inputs: Tensor, dim: int = 1) -> tuple[Tensor, Tensor]:
        """``(l, h)`` broadcast to ``inputs``' shape, with the channels (features) on ``dim``."""
        channels = inputs.shape[dim]
        if len(self.low) not in (1, channels):
            raise ValueError(
                f"the z^B rule has {len(self.low)} bounds per side (low={self.low}) but its layer "
                f"gets {channels} input channels; it belongs on the first layer, whose input is the "
                "image: give one bound per image channel"
            )
        shape = [1] * inputs.dim()
        shape[dim] = -1
        low = torch.tensor(self.low, dtype=inputs.dtype, device=inputs.device).view(shape)
        high = torch.tensor(self.high, dtype=inputs.dtype, device=inputs.device).view(shape)
        return low.expand_as(inputs), high.expand_as(inputs)

    def propagate(self, layer: AffineLayer, inputs: Tensor, outputs: Tensor, relevance: Tensor) -> Tensor:
        w = layer.weight
        w_pos, w_neg = w.clamp(min=0), w.clamp(max=0)
        low, high = self.bounds(inputs, layer.input_dim)
        # z_k = sum_i (x_i - l_i) w_ik+ + (x_i - h_i) w_ik- >= 0 inside the box
        if layer.stackable:
            # one product: z^B is LRP-0 on the stacked input [x, l, h], weights [W, -W+, -W-]
            dim = layer.input_dim
            stacked = torch.cat([inputs, low, high], dim=dim)
            weights = torch.cat([w, -w_pos, -w_neg], dim=1)
            s = _ratio(relevance, layer.apply(stacked, weights), self.stabilizer)
            parts = layer.transpose(s, weights, stacked).mul_(stacked).chunk(3, dim=dim)
            return parts[0].add_(parts[1]).add_(parts[2])
        z = layer.apply(inputs, w) - layer.apply(low, w_pos) - layer.apply(high, w_neg)
        s = _ratio(relevance, z, self.stabilizer)
        result = layer.transpose(s, w, inputs).mul_(inputs)
        result.sub_(layer.transpose(s, w_pos, inputs).mul_(low))
        return result.sub_(layer.transpose(s, w_neg, inputs).mul_(high))


@dataclass(frozen=True)
class Norm:
    """The z-rule for a parameter-free linear operation ``z = f(a_1, ..., a_m)``::

        R_{a_i} = a_i * (d f / d a_i)^T (R_z / (z + stabilizer sign z))

    Used for average pooling (each input's share of the mean) and residual sums
    ``z = branch + shortcut`` (``R_branch = branch / z * R``, ``R_shortcut = shortcut / z * R``).
    Relevance is conserved (up to the tiny default stabiliser) wherever ``z != 0``.
    """

    stabilizer: float = 1e-9

    def __post_init__(self) -> None:
        _check_number("stabilizer", self.stabilizer, minimum=0.0)

    def propagate(
        self, function: Callable[..., Tensor], inputs: Sequence[Tensor], outputs: Tensor, relevance: Tensor
    ) -> tuple[Tensor, ...]:
        """Relevance of each input (shaped like it) from ``relevance`` shaped like ``outputs``."""
        s = _ratio(relevance, outputs, self.stabilizer)
        # the two cases every residual network has, without a nested autograd pass (which costs
        # more than the arithmetic): a residual sum, d(sum)/d a_i = 1, and the global average
        # pool, d(mean)/d a = 1 / (H W)
        owner = getattr(function, "__self__", None)
        if isinstance(owner, Sum) and all(x.shape == s.shape for x in inputs):
            return tuple(x * s for x in inputs)
        if isinstance(owner, nn.AdaptiveAvgPool2d) and len(inputs) == 1 and s.dim() == inputs[0].dim() == 4 \
                and s.shape[-2:] == (1, 1):
            (x,) = inputs
            return (x * (s / (x.shape[-2] * x.shape[-1])),)
        with torch.enable_grad():
            leaves = tuple(x.detach().requires_grad_(True) for x in inputs)
            grads = torch.autograd.grad(function(*leaves), leaves, s)
        return tuple(x * g for x, g in zip(inputs, grads))


def _check_number(name: str, value: float, minimum: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum}, got {value!r}")

