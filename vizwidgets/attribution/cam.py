"""The class activation map (CAM) family: maps built from one layer's feature maps.

Notation, for one image: ``A`` is the chosen layer's output ``(K, h, w)`` (K feature maps),
``S_c`` the score (logit) of class ``c``, and ``G = d S_c / d A`` the gradient of that score
with respect to the layer, same shape as ``A``. Each method weighs the maps and sums them:

===============  ==========================================================================
CAM              ``sum_k W[c, k] A_k``, ``W`` the weights of the linear classifier after
                 global average pooling (Zhou et al. 2016)
Grad-CAM         ``ReLU(sum_k a_k A_k)``, ``a_k = mean_ij G_kij`` (Selvaraju et al. 2017)
Grad-CAM++       ``ReLU(sum_k w_k A_k)``, ``w_k = sum_ij alpha_kij ReLU(G_kij)``,
                 ``alpha_kij = G^2 / (2 G^2 + sum_ab A_kab G^3)`` (Chattopadhyay et al. 2018)
XGrad-CAM        ``ReLU(sum_k a_k A_k)``, ``a_k = sum_ij (A_kij / sum_ab A_kab) G_kij``
                 (Fu et al. 2020)
Layer-CAM        ``ReLU(sum_k ReLU(G_kij) A_kij)`` (Jiang et al. 2021)
Score-CAM        ``ReLU(sum_k s_k A_k)``, ``s_k`` the class probability of the input masked by
                 the upsampled, min-max normalised ``A_k`` (Wang et al. 2020)
===============  ==========================================================================

The map is ``(N, 1, h, w)``; with ``upsample=True`` (the default) it is resized bilinearly to
the input's ``(H, W)``. The gradient methods cut the autograd graph at the layer: the forward
pass below it records nothing, and the backward pass runs only from the score to the layer,
about one forward pass in cost.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vizwidgets._hooks import forward_hooks
from vizwidgets.attribution.base import Attribution, Option, Target, chunks, select_scores, upsample
from vizwidgets.attribution.guided import RectifierRule, rectifier_override
from vizwidgets.attribution.limits import rows_per_pass

__all__ = [
    "CAM", "GradCAM", "GradCAMpp", "XGradCAM", "LayerCAM", "ScoreCAM", "FastScoreCAM",
    "GuidedGradCAM", "cam", "grad_cam", "grad_cam_pp", "xgrad_cam", "layer_cam", "score_cam",
    "fast_score_cam", "guided_grad_cam", "layer_activation",
]

#: Masked images per forward pass of Score-CAM: the fastest on 2 CPU threads (see ScoreCAM).
_SCORE_CHUNK = 4

_UPSAMPLE = Option("upsample", True, "bool", "resize the map to the input size (bilinear)")
_SCORE_CHUNK_OPTION = Option(
    "chunk_size", _SCORE_CHUNK, "int", "masked images per forward pass, at most (capped by the memory budget)", 1, 4096
)


@contextmanager
def layer_activation(
    model: nn.Module, layer: str, *, cut: bool, attached: bool = False
) -> Iterator[dict[str, Tensor]]:
    """Record ``layer``'s output during the block's forward pass in ``store["A"]``.

    With ``cut=True`` the rest of the network receives a copy of the output that starts a new
    autograd graph at ``store["A"]``, so ``torch.autograd.grad(score, store["A"])`` gives
    ``d score / d A`` without any graph below the layer. With ``cut=False`` the output is
    stored detached, or, with ``attached=True``, as it is: a node inside the whole graph.
    """
    store: dict[str, Tensor] = {}

    def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        if not isinstance(output, Tensor) or output.dim() != 4:
            raise ValueError(
                f"layer {layer!r} ({type(module).__name__}) does not output a (N, C, h, w) feature "
                "map; pick a convolutional layer or block (vizwidgets.list_layers(model))"
            )
        if "A" in store:
            raise ValueError(
                f"layer {layer!r} runs more than once in one forward pass (a shared module); "
                "pick a layer that runs once, such as the block that contains it"
            )
        if not cut:
            store["A"] = output if attached else output.detach()
            return None
        store["A"] = output.detach().requires_grad_(True)
        return store["A"].clone()  # a non-leaf, so later in-place operations are allowed

    with forward_hooks(model, {layer: hook}):
        yield store


class _LayerMethod(Attribution):
    """A CAM-family method: needs a layer, returns ``(N, 1, H, W)`` maps."""

    family = "cam"
    needs_layer = True
    output = "map"
    options: ClassVar[tuple[Option, ...]] = (_UPSAMPLE,)
    zero_hint = (
        "the CAM family keeps only positive evidence (a ReLU on the weighted sum), and this layer "
        "holds none for the target class: try the predicted class (target=None), another layer, "
        "or cam(..., relu=False)"
    )

    def _activation_and_gradient(self, x: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor]:
        assert self.layer is not None
        with layer_activation(self.model, self.layer, cut=True) as store:
            scores, _ = select_scores(self.model(x), target)
        activation = store["A"]
        (gradient,) = torch.autograd.grad(scores.sum(), activation)
        return activation.detach(), gradient

    def _attribute(self, x: Tensor, target: Tensor | None, *, upsample: bool = True, **options: Any) -> Tensor:
        maps = self._map(x, target, **options)
        return _resize(maps, x, upsample)

    def _map(self, x: Tensor, target: Tensor | None, **options: Any) -> Tensor:
        activation, gradient = self._activation_and_gradient(x, target)
        return self._combine(activation, gradient)

    def _combine(self, activation: Tensor, gradient: Tensor) -> Tensor:
        raise NotImplementedError


def _resize(maps: Tensor, x: Tensor, enabled: bool) -> Tensor:
    return upsample(maps, x.shape[-2:]) if enabled else maps


def _min_max(masks: Tensor) -> Tensor:
    """Scale each ``(1, H, W)`` mask of ``(c, 1, H, W)`` to [0, 1]; a constant mask becomes 0."""
    low = masks.amin(dim=(2, 3), keepdim=True)
    high = masks.amax(dim=(2, 3), keepdim=True)
    span = torch.where(high > low, high - low, torch.ones_like(high))
    return torch.where(high > low, (masks - low) / span, torch.zeros_like(masks))


def _weighted_sum(weights: Tensor, activation: Tensor) -> Tensor:
    """``ReLU(sum_k weights[n, k] * A[n, k])`` as ``(N, 1, h, w)``."""
    return F.relu((weights[:, :, None, None] * activation).sum(dim=1, keepdim=True))


class CAM(_LayerMethod):
    """Class activation mapping (Zhou, Khosla, Lapedriza, Oliva & Torralba 2016).

    For a network that ends ``layer -> global average pool -> linear``, the class score is
    ``S_c = sum_k W[c, k] mean_ij A_kij + b_c``, so ``M_c = sum_k W[c, k] A_k`` shows where each
    part of the score comes from. ``W`` is the model's last ``nn.Linear``; the layer must be the
    one that feeds the pooling (the default layer of the bundled models is). With ``relu=True``
    (default, as for the rest of the family) negative evidence is cut, and then
    ``CAM = h * w * Grad-CAM`` exactly. One forward pass, no backward.
    """

    name = "cam"
    title = "CAM"
    description = "Feature maps weighted by the classifier's weights for the class."
    reference = (
        "Zhou, Khosla, Lapedriza, Oliva & Torralba 2016, Learning Deep Features for "
        "Discriminative Localization, CVPR"
    )
    options = (_UPSAMPLE, Option("relu", True, "bool", "keep only positive evidence"))

    def _map(self, x: Tensor, target: Tensor | None, *, relu: bool = True, **options: Any) -> Tensor:
        assert self.layer is not None
        linear = [m for m in self.model.modules() if isinstance(m, nn.Linear)]
        if not linear:
            raise ValueError("CAM needs a model that ends in a linear classifier; use grad_cam instead")
        classifier = linear[-1]
        with torch.no_grad(), layer_activation(self.model, self.layer, cut=False) as store:
            _, used = select_scores(self.model(x), target)
        activation = store["A"]
        if activation.shape[1] != classifier.in_features:
            raise ValueError(
                f"CAM needs the layer that feeds global average pooling and the classifier: layer "
                f"{self.layer!r} has {activation.shape[1]} channels but the classifier takes "
                f"{classifier.in_features}. Use the model's default layer, or grad_cam"
            )
        weights = classifier.weight.detach()[used]  # (N, K)
        maps = (weights[:, :, None, None] * activation).sum(dim=1, keepdim=True)
        return F.relu(maps) if relu else maps


class GradCAM(_LayerMethod):
    """Grad-CAM (Selvaraju, Cogswell, Das, Vedantam, Parikh & Batra 2017).

    ``alpha_k = (1 / hw) sum_ij dS_c / dA_kij`` and ``M = ReLU(sum_k alpha_k A_k)``.
    """

    name = "grad_cam"
    title = "Grad-CAM"
    description = "Feature maps weighted by their average gradient: where the class evidence is."
    reference = (
        "Selvaraju, Cogswell, Das, Vedantam, Parikh & Batra 2017, Grad-CAM: Visual Explanations "
        "from Deep Networks via Gradient-based Localization, ICCV"
    )

    def _combine(self, activation: Tensor, gradient: Tensor) -> Tensor:
        return _weighted_sum(gradient.mean(dim=(2, 3)), activation)


class GradCAMpp(_LayerMethod):
    """Grad-CAM++ (Chattopadhyay, Sarkar, Howlader & Balasubramanian 2018).

    Uses the paper's closed form, which assumes the class score passes through an exponential,
    ``Y_c = exp(S_c)``: then the second and third derivatives are powers of the first,
    ``G^2`` and ``G^3`` with ``G = dS_c/dA``, and

    ``alpha_kij = G_kij^2 / (2 G_kij^2 + sum_ab A_kab G_kij^3)`` (0 where the denominator is 0),
    ``w_k = sum_ij alpha_kij ReLU(G_kij)``, ``M = ReLU(sum_k w_k A_k)``.

    The common factor ``exp(S_c)`` of ``dY_c/dA`` is left out: it scales the map, nothing else.
    """

    name = "grad_cam_pp"
    title = "Grad-CAM++"
    description = "Grad-CAM with per-location weights, better for several instances of a class."
    reference = (
        "Chattopadhyay, Sarkar, Howlader & Balasubramanian 2018, Grad-CAM++: Generalized "
        "Gradient-Based Visual Explanations for Deep Convolutional Networks, WACV"
    )

    def _combine(self, activation: Tensor, gradient: Tensor) -> Tensor:
        g2 = gradient.pow(2)
        g3 = gradient.pow(3)
        denominator = 2 * g2 + activation.sum(dim=(2, 3), keepdim=True) * g3
        safe = torch.where(denominator != 0, denominator, torch.ones_like(denominator))
        alpha = torch.where(denominator != 0, g2 / safe, torch.zeros_like(g2))
        weights = (alpha * F.relu(gradient)).sum(dim=(2, 3))
        return _weighted_sum(weights, activation)


class XGradCAM(_LayerMethod):
    """XGrad-CAM (Fu, Hu, Dong, Xu & Wang 2020).

    ``alpha_k = sum_ij (A_kij / sum_ab A_kab) dS_c/dA_kij``, ``M = ReLU(sum_k alpha_k A_k)``:
    the weights the paper derives from its sensitivity and conservation axioms. Channels whose
    activations sum to 0 get weight 0.
    """

    name = "xgrad_cam"
    title = "XGrad-CAM"
    description = "Grad-CAM with activation-weighted gradients, derived from two axioms."
    reference = (
        "Fu, Hu, Dong, Xu & Wang 2020, Axiom-based Grad-CAM: Towards Accurate Visualization "
        "and Explanation of CNNs, BMVC"
    )

    def _combine(self, activation: Tensor, gradient: Tensor) -> Tensor:
        total = activation.sum(dim=(2, 3), keepdim=True)
        safe = torch.where(total != 0, total, torch.ones_like(total))
        share = torch.where(total != 0, activation / safe, torch.zeros_like(activation))
        return _weighted_sum((share * gradient).sum(dim=(2, 3)), activation)


class LayerCAM(_LayerMethod):
    """Layer-CAM (Jiang, Zhang, Hou, Cheng & Wei 2021).

    ``M_ij = ReLU(sum_k ReLU(dS_c/dA_kij) A_kij)``: each location weighted by its own positive
    gradient, which keeps detail when used on earlier, finer layers.
    """

    name = "layer_cam"
    title = "Layer-CAM"
    description = "Each location weighted by its own positive gradient: works on early layers."
    reference = (
        "Jiang, Zhang, Hou, Cheng & Wei 2021, LayerCAM: Exploring Hierarchical Class "
        "Activation Maps for Localization, IEEE TIP 30"
    )

    def _combine(self, activation: Tensor, gradient: Tensor) -> Tensor:
        return F.relu((F.relu(gradient) * activation).sum(dim=1, keepdim=True))


class ScoreCAM(_LayerMethod):
    """Score-CAM (Wang, Wang, Du, Yang, Zhang, Ding, Mardziel & Hu 2020). No gradients.

    Each feature map ``A_k`` is upsampled to the input size and min-max normalised to a mask
    ``H_k`` in [0, 1]; the weight ``s_k`` is the softmax probability of class ``c`` for the
    masked input ``x * H_k`` (``x`` the preprocessed image, so masked-out pixels become the
    preprocessing's mean colour). ``M = ReLU(sum_k s_k A_k)``. It costs one forward pass per
    channel: 1280 for the default model's head. Masked inputs run ``chunk_size`` at a time
    under ``no_grad``: on 2 CPU threads (default model, head layer, one image, 128 channels,
    median of 3) a forward pass cost 20.4 ms per masked image in chunks of 1, 14.3 ms in
    chunks of 2, 13.4 ms in chunks of 4, 20.1 ms in chunks of 8, 23.9 ms in chunks of 16 and
    67 ms in chunks of 64, hence the default 4. On a GPU a larger chunk is faster.
    ``chunk_size`` is an upper bound: a pass never takes more masked images than fit the
    memory budget (:func:`~vizwidgets.attribution.limits.rows_per_pass`), and the result does
    not depend on it. (The paper's baseline term ``f(x_b)`` is the same for every channel and
    is left out.)
    """

    name = "score_cam"
    title = "Score-CAM"
    description = "Each feature map weighted by the class score of the image it masks. Slow."
    reference = (
        "Wang, Wang, Du, Yang, Zhang, Ding, Mardziel & Hu 2020, Score-CAM: Score-Weighted "
        "Visual Explanations for Convolutional Neural Networks, CVPR workshops"
    )
    options: ClassVar[tuple[Option, ...]] = (_UPSAMPLE, _SCORE_CHUNK_OPTION)

    def _channels(self, activation: Tensor) -> Tensor:
        """Indices ``(N, k)`` of the channels to score: all of them."""
        n, k = activation.shape[:2]
        return torch.arange(k, device=activation.device).expand(n, k)

    def _map(self, x: Tensor, target: Tensor | None, *, chunk_size: int = _SCORE_CHUNK, **options: Any) -> Tensor:
        assert self.layer is not None
        with torch.no_grad():
            with layer_activation(self.model, self.layer, cut=False) as store:
                _, used = select_scores(self.model(x), target)
            activation = store["A"]
            channels = self._channels(activation)
            chunk_size = rows_per_pass(self.model, x.shape[-2], x.shape[-1], chunk_size, backward=False)
            maps = []
            for i in range(x.shape[0]):
                chosen = activation[i, channels[i]]  # (k, h, w)
                weights = torch.empty(len(chosen), device=x.device, dtype=x.dtype)
                for part in chunks(len(chosen), chunk_size):
                    # masks for this chunk only: all 1280 at 224 x 224 would take 257 MB
                    masks = _min_max(upsample(chosen[part, None], x.shape[-2:]))  # (c, 1, H, W)
                    probabilities = self.model(x[i : i + 1] * masks).softmax(dim=1)
                    weights[part] = probabilities[:, used[i]]
                maps.append(F.relu((weights[:, None, None] * chosen).sum(dim=0, keepdim=True)))
            return torch.stack(maps)


class FastScoreCAM(ScoreCAM):
    """Score-CAM on the ``top_k`` channels with the highest mean activation for each image.

    Channels that barely fire add little to ``sum_k s_k A_k``; scoring only the strongest ones
    cuts the cost from one forward pass per channel to ``top_k``.
    """

    name = "fast_score_cam"
    title = "Score-CAM (top-k channels)"
    description = "Score-CAM on the k most active channels only: much faster."
    options = (
        _UPSAMPLE,
        Option("top_k", 32, "int", "channels scored (those with the highest mean activation)", 1, 4096,
               interactive=(4, 256)),
        _SCORE_CHUNK_OPTION,
    )

    def _map(self, x: Tensor, target: Tensor | None, *, top_k: int = 32, chunk_size: int = _SCORE_CHUNK,
             **options: Any) -> Tensor:
        self._top_k = top_k
        return super()._map(x, target, chunk_size=chunk_size)

    def _channels(self, activation: Tensor) -> Tensor:
        k = min(self._top_k, activation.shape[1])
        return activation.mean(dim=(2, 3)).topk(k, dim=1).indices


class GuidedGradCAM(_LayerMethod):
    """Guided Grad-CAM (Selvaraju et al. 2017): guided backpropagation times the upsampled
    Grad-CAM map, ``(N, 3, H, W)``: fine detail, restricted to where the class evidence is."""

    name = "guided_grad_cam"
    title = "Guided Grad-CAM"
    family = "guided"
    output = "pixels"
    description = "Guided backpropagation masked by Grad-CAM: sharp and class-discriminative."
    reference = GradCAM.reference
    options = ()

    def _attribute(self, x: Tensor, target: Tensor | None, **options: Any) -> Tensor:
        # Grad-CAM wants the ordinary gradient at the layer, the fine map the guided one. With
        # no rectifier after the layer (as at the default layers) the two agree there, and one
        # guided backward gives both; else the forward is differentiated twice, the rectifiers
        # reading their rule when the backward pass runs.
        assert self.layer is not None
        rule, at_layer = RectifierRule("guided"), []
        x = x.detach().requires_grad_(True)
        with rectifier_override(self.model, rule), layer_activation(
            self.model, self.layer, cut=False, attached=True
        ) as store, forward_hooks(self.model, {self.layer: lambda *_: at_layer.append(rule.calls)}):
            scores, _ = select_scores(self.model(x), target)
        activation, score = store["A"], scores.sum()
        if at_layer == [rule.calls]:  # no rectifier ran after the layer
            gradient, fine = torch.autograd.grad(score, (activation, x))
        else:
            rule.rule = "gradient"
            (gradient,) = torch.autograd.grad(score, activation, retain_graph=True)
            rule.rule = "guided"
            (fine,) = torch.autograd.grad(score, x)
        coarse = upsample(_weighted_sum(gradient.mean(dim=(2, 3)), activation.detach()), x.shape[-2:])
        return fine * coarse


def cam(
    model: Any, inputs: Tensor, target: Target = None, layer: str | None = None, *,
    upsample: bool = True, relu: bool = True,
) -> Tensor:
    """CAM (Zhou et al. 2016); see :class:`CAM`."""
    return CAM(model, layer).attribute(inputs, target, upsample=upsample, relu=relu)


def grad_cam(
    model: Any, inputs: Tensor, target: Target = None, layer: str | None = None, *, upsample: bool = True
) -> Tensor:
    """Grad-CAM (Selvaraju et al. 2017); see :class:`GradCAM`."""
    return GradCAM(model, layer).attribute(inputs, target, upsample=upsample)


def grad_cam_pp(
    model: Any, inputs: Tensor, target: Target = None, layer: str | None = None, *, upsample: bool = True
) -> Tensor:
    """Grad-CAM++ (Chattopadhyay et al. 2018); see :class:`GradCAMpp`."""
    return GradCAMpp(model, layer).attribute(inputs, target, upsample=upsample)


def xgrad_cam(
    model: Any, inputs: Tensor, target: Target = None, layer: str | None = None, *, upsample: bool = True
) -> Tensor:
    """XGrad-CAM (Fu et al. 2020); see :class:`XGradCAM`."""
    return XGradCAM(model, layer).attribute(inputs, target, upsample=upsample)


def layer_cam(
    model: Any, inputs: Tensor, target: Target = None, layer: str | None = None, *, upsample: bool = True
) -> Tensor:
    """Layer-CAM (Jiang et al. 2021); see :class:`LayerCAM`."""
    return LayerCAM(model, layer).attribute(inputs, target, upsample=upsample)


def score_cam(
    model: Any, inputs: Tensor, target: Target = None, layer: str | None = None, *,
    upsample: bool = True, chunk_size: int = _SCORE_CHUNK,
) -> Tensor:
    """Score-CAM (Wang et al. 2020) over every channel; see :class:`ScoreCAM`."""
    return ScoreCAM(model, layer).attribute(inputs, target, upsample=upsample, chunk_size=chunk_size)


def fast_score_cam(
    model: Any, inputs: Tensor, target: Target = None, layer: str | None = None, *,
    upsample: bool = True, top_k: int = 32, chunk_size: int = _SCORE_CHUNK,
) -> Tensor:
    """Score-CAM over the ``top_k`` most active channels; see :class:`FastScoreCAM`."""
    return FastScoreCAM(model, layer).attribute(inputs, target, upsample=upsample, top_k=top_k, chunk_size=chunk_size)


def guided_grad_cam(model: Any, inputs: Tensor, target: Target = None, layer: str | None = None) -> Tensor:
    """Guided Grad-CAM (Selvaraju et al. 2017); see :class:`GuidedGradCAM`."""
    return GuidedGradCAM(model, layer).attribute(inputs, target)
