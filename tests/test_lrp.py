"""LRP: every rule re-derived slowly from its equation, conservation, canonizers, real models.

The references below never call the package's maths: a convolution is turned into its dense
matrix with explicit loops over output positions, kernel taps and channels, and each rule is
then evaluated from its equation on the explicit contributions ``a_j w_jk`` (an ``(N, K, J)``
tensor), in float64.
"""

from __future__ import annotations

import copy
import operator
from dataclasses import replace

import pytest
import torch
from torch import Tensor, nn

from vizwidgets.attribution.base import prepared
from vizwidgets.attribution.gradient import input_gradient
from vizwidgets.attribution.lrp import (
    LRP,
    LRP0,
    AffineModule,
    AlphaBeta,
    BatchNormFolding,
    Composite,
    Epsilon,
    Gamma,
    Norm,
    PaddingMerging,
    ResidualBlock,
    ResNetCanonizer,
    Rule,
    ZBox,
    affine_layer,
    canonized,
    fold_batchnorm,
    fold_batchnorms,
    layer_relevance,
    lrp,
    make_composite,
    relevance_propagation,
)
from vizwidgets.attribution.lrp.functions import AffineRelevanceModule
from vizwidgets.models.efficientnet_lite import ResidualAdd, SamePad2d

IMAGENET_LOW = tuple(-m / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))
IMAGENET_HIGH = tuple((1 - m) / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))


# --- slow references -----------------------------------------------------------------------


def conv_matrix(conv: nn.Conv2d, in_shape: tuple[int, int, int]) -> tuple[Tensor, Tensor, tuple[int, ...]]:
    """The dense matrix ``M`` (K*Ho*Wo, C*H*W) and bias of a convolution, by explicit loops."""
    channels, height, width = in_shape
    weight = conv.weight.detach()
    out_channels, per_group, kh, kw = weight.shape
    (sy, sx), (py, px), (dy, dx) = conv.stride, conv.padding, conv.dilation
    ho = (height + 2 * py - dy * (kh - 1) - 1) // sy + 1
    wo = (width + 2 * px - dx * (kw - 1) - 1) // sx + 1
    outs_per_group = out_channels // conv.groups
    matrix = torch.zeros(out_channels * ho * wo, channels * height * width, dtype=weight.dtype)
    for k in range(out_channels):
        group = k // outs_per_group
        for oy in range(ho):
            for ox in range(wo):
                row = (k * ho + oy) * wo + ox
                for ci in range(per_group):
                    c = group * per_group + ci
                    for ky in range(kh):
                        for kx in range(kw):
                            iy, ix = oy * sy - py + ky * dy, ox * sx - px + kx * dx
                            if 0 <= iy < height and 0 <= ix < width:  # outside: zero padding
                                matrix[row, (c * height + iy) * width + ix] += weight[k, ci, ky, kx]
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros(out_channels, dtype=weight.dtype)
    return matrix, bias.repeat_interleave(ho * wo), (out_channels, ho, wo)


def pos(t: Tensor) -> Tensor:
    return t.clamp(min=0)


def neg(t: Tensor) -> Tensor:
    return t.clamp(max=0)


def sign(t: Tensor) -> Tensor:
    return torch.where(t >= 0, 1.0, -1.0).to(t.dtype)


def reference(rule: Rule, a: Tensor, w: Tensor, b: Tensor, relevance: Tensor) -> Tensor:
    """``R_j = sum_k c_jk / d_k R_k`` from each rule's equation; a (N, J), w (K, J), b (K,)."""
    c = a[:, None, :] * w[None, :, :]  # contributions a_j w_jk: (N, K, J)
    z = c.sum(-1) + b  # (N, K)
    r = relevance[:, :, None]
    if isinstance(rule, LRP0):
        return (c / z[..., None] * r).sum(1)
    if isinstance(rule, Epsilon):
        eps = rule.epsilon * z.pow(2).mean(1, keepdim=True).sqrt() if rule.relative else rule.epsilon
        return (c / (z + eps * sign(z))[..., None] * r).sum(1)
    if isinstance(rule, Gamma):
        g = rule.gamma
        active = (z > 0)[..., None]
        # z_k > 0: a_j w_jk + g (a_j w_jk)+ ; z_k <= 0: a_j w_jk + g (a_j w_jk)-
        cg = torch.where(active, c + g * pos(c), c + g * neg(c))
        bg = torch.where(z > 0, b + g * pos(b), b + g * neg(b))
        return (cg / (cg.sum(-1) + bg)[..., None] * r).sum(1)
    if isinstance(rule, AlphaBeta):
        # a zero denominator (no contribution of that sign at all) gives 0 / 0: that term is 0
        up = torch.nan_to_num(pos(c) / (pos(c).sum(-1) + pos(b))[..., None])
        down = torch.nan_to_num(neg(c) / (neg(c).sum(-1) + neg(b))[..., None])
        return ((rule.alpha * up - rule.beta * down) * r).sum(1)
    if isinstance(rule, ZBox):
        raise TypeError("use reference_zbox")
    raise TypeError(rule)


def reference_zbox(low: Tensor, high: Tensor, x: Tensor, w: Tensor, relevance: Tensor) -> Tensor:
    """z^B: ``c_ij = x_i w_ij - l_i w_ij+ - h_i w_ij-``, no bias; low/high shaped like x."""
    c = x[:, None, :] * w - low[:, None, :] * pos(w) - high[:, None, :] * neg(w)
    return (c / c.sum(-1, keepdim=True) * relevance[:, :, None]).sum(1)


RULES: list[Rule] = [
    LRP0(),
    Epsilon(0.3),
    Epsilon(0.25, relative=True),
    Gamma(0.25),
    Gamma(1.0),
    AlphaBeta(1.0, 0.0),
    AlphaBeta(2.0, 1.0),
]


def _dense() -> nn.Linear:
    torch.manual_seed(0)
    layer = nn.Linear(6, 4).double()
    return layer


def _conv(groups: int = 1) -> nn.Conv2d:
    torch.manual_seed(1)
    return nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=groups).double()


@pytest.mark.parametrize("rule", RULES, ids=repr)
@pytest.mark.parametrize("signs", ["nonnegative", "mixed"])
def test_each_rule_on_a_dense_layer_matches_its_equation(rule: Rule, signs: str) -> None:
    layer = _dense()
    torch.manual_seed(2)
    a = torch.rand(3, 6, dtype=torch.float64) if signs == "nonnegative" else torch.randn(3, 6, dtype=torch.float64)
    relevance = torch.randn(3, 4, dtype=torch.float64)  # both signs, on active and inactive outputs
    expected = reference(rule, a, layer.weight.detach(), layer.bias.detach(), relevance)
    torch.testing.assert_close(layer_relevance(layer, rule, a, relevance), expected, rtol=1e-5, atol=1e-10)


@pytest.mark.parametrize("rule", RULES, ids=repr)
@pytest.mark.parametrize("groups, size", [(1, 5), (2, 5), (4, 6)])  # 6: the stride leaves a row over
@pytest.mark.parametrize("signs", ["nonnegative", "mixed"])
def test_each_rule_on_a_conv_layer_matches_its_equation(rule: Rule, groups: int, size: int, signs: str) -> None:
    conv = _conv(groups) if groups < 4 else nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=4).double()
    torch.manual_seed(3)
    shape = (2, 4, size, size)
    a = torch.rand(shape, dtype=torch.float64) if signs == "nonnegative" else torch.randn(shape, dtype=torch.float64)
    matrix, bias, out_shape = conv_matrix(conv, shape[1:])
    relevance = torch.randn(2, *out_shape, dtype=torch.float64)
    expected = reference(rule, a.flatten(1), matrix, bias, relevance.flatten(1)).view(shape)
    torch.testing.assert_close(layer_relevance(conv, rule, a, relevance), expected, rtol=1e-5, atol=1e-10)


def test_gamma_matches_the_paper_equation_for_rectified_inputs() -> None:
    """Montavon et al. 2019, LRP-gamma: R_j = sum_k a_j (w + g w+) / sum_j a_j (w + g w+) R_k."""
    layer = _dense()
    w, b, g = layer.weight.detach(), layer.bias.detach(), 0.25
    a = torch.rand(3, 6, dtype=torch.float64)
    z = a @ w.T + b
    relevance = torch.rand(3, 4, dtype=torch.float64) * (z > 0)  # a ReLU follows: only active outputs
    expected = torch.zeros_like(a)
    for n in range(3):
        for k in range(4):
            if relevance[n, k] == 0:
                continue
            rho = [w[k, i] + g * max(w[k, i], 0) for i in range(6)]  # w + gamma w+
            denominator = sum(a[n, i] * rho[i] for i in range(6)) + b[k] + g * max(b[k], 0)
            for j in range(6):
                expected[n, j] += a[n, j] * rho[j] / denominator * relevance[n, k]
    torch.testing.assert_close(layer_relevance(layer, Gamma(g), a, relevance), expected, rtol=1e-5, atol=1e-10)
    # the shortcut taken when a ReLU follows the layer gives the same numbers
    shortcut = Gamma(g).propagate(affine_layer(layer, rectified=True), a, z, relevance)
    torch.testing.assert_close(shortcut, expected, rtol=1e-5, atol=1e-10)
    # also for inputs of both signs (an expansion after a residual sum), against the equation
    mixed = torch.randn(3, 6, dtype=torch.float64)
    z = mixed @ w.T + b
    relevance = torch.rand(3, 4, dtype=torch.float64) * (z > 0)
    shortcut = Gamma(g).propagate(affine_layer(layer, rectified=True), mixed, z, relevance)
    torch.testing.assert_close(shortcut, reference(Gamma(g), mixed, w, b, relevance), rtol=1e-5, atol=1e-10)


@pytest.mark.parametrize("kind", ["dense", "conv", "grouped"])
def test_zbox_matches_its_equation_with_explicit_bounds(kind: str) -> None:
    torch.manual_seed(4)
    low_c = torch.tensor([-1.0, -0.5, -2.0, 0.0], dtype=torch.float64)
    high_c = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64)
    if kind == "dense":
        layer: nn.Module = nn.Linear(4, 3).double()
        x = low_c + torch.rand(2, 4, dtype=torch.float64) * (high_c - low_c)
        relevance = torch.randn(2, 3, dtype=torch.float64)
        low, high = low_c.expand_as(x), high_c.expand_as(x)
        expected = reference_zbox(low, high, x, layer.weight.detach(), relevance)
    else:
        layer = _conv(groups=2 if kind == "grouped" else 1)
        shape = (2, 4, 5, 5)
        x = low_c.view(1, 4, 1, 1) + torch.rand(shape, dtype=torch.float64) * (high_c - low_c).view(1, 4, 1, 1)
        matrix, _, out_shape = conv_matrix(layer, shape[1:])
        relevance = torch.randn(2, *out_shape, dtype=torch.float64)
        low = low_c.view(1, 4, 1, 1).expand(shape).flatten(1)
        high = high_c.view(1, 4, 1, 1).expand(shape).flatten(1)
        expected = reference_zbox(low, high, x.flatten(1), matrix, relevance.flatten(1)).view(shape)
    rule = ZBox(low_c.tolist(), high_c.tolist())
    actual = layer_relevance(layer, rule, x, relevance)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-10)
    # z^B has no bias term: relevance is conserved exactly
    torch.testing.assert_close(actual.flatten(1).sum(1), relevance.flatten(1).sum(1), rtol=1e-9, atol=1e-12)


def test_zbox_treats_merged_padding_as_fixed_zeros() -> None:
    """EfficientNet-style ``SamePad2d -> conv``: merged, the padded cells get no bounds."""
    torch.manual_seed(5)
    model = nn.Sequential(
        SamePad2d(3, 2), nn.Conv2d(3, 4, 3, stride=2, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3, bias=False)
    ).double()
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64) * 2 - 1
    composite = Composite(conv=LRP0(), dense=LRP0(), first=ZBox(-1.0, 1.0))
    out = LRP(model).explain(x, 1, composite=composite)
    torch.testing.assert_close(out.relevance_sum, out.scores, rtol=1e-9, atol=1e-12)
    # without the merge the padding keeps relevance that never reaches a pixel
    unmerged = LRP(model, canonizers=[]).explain(x, 1, composite=composite)
    assert not torch.allclose(unmerged.relevance_sum, unmerged.scores, rtol=1e-3)


def test_norm_rule_splits_a_residual_sum_by_contribution() -> None:
    branch = torch.tensor([[3.0, -1.0, 0.5, 2.0]])
    shortcut = torch.tensor([[1.0, 3.0, 0.5, -1.0]])
    relevance = torch.tensor([[2.0, 4.0, -1.0, 3.0]])
    r_branch, r_short = Norm(stabilizer=0.0).propagate(operator.add, (branch, shortcut), branch + shortcut, relevance)
    total = branch + shortcut
    torch.testing.assert_close(r_branch, branch / total * relevance)
    torch.testing.assert_close(r_short, shortcut / total * relevance)
    torch.testing.assert_close(r_branch / r_short, branch / shortcut)  # in proportion to the inputs
    torch.testing.assert_close(r_branch + r_short, relevance)  # conserved
    stable = Norm(stabilizer=0.5).propagate(operator.add, (branch, shortcut), total, relevance)
    torch.testing.assert_close(stable[0], branch / (total + 0.5 * sign(total)) * relevance)


class _TinyResidual(nn.Module):
    """``fc(pool(add(branch(x), x)))`` with 1x1 convolutions: everything by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.branch = nn.Conv2d(2, 2, 1, bias=False)
        self.add = ResidualAdd()
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(2, 3, bias=False)
        with torch.no_grad():
            self.branch.weight.copy_(torch.tensor([[0.5, -1.0], [2.0, 1.0]]).view(2, 2, 1, 1))
            self.fc.weight.copy_(torch.tensor([[1.0, 2.0], [-1.0, 0.5], [0.0, 1.0]]))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.add(self.branch(x), x)))


def test_residual_split_on_a_tiny_block_by_hand() -> None:
    model = _TinyResidual()
    x = torch.tensor([[[[1.0]], [[2.0]]]])  # (1, 2, 1, 1)
    out = LRP(model).explain(x, 0, composite="lrp0")
    branch = (model.branch.weight.view(2, 2) @ x.view(2)).detach()  # (0.5 - 2, 2 + 2) = (-1.5, 4)
    total = branch + x.view(2)  # (-0.5, 6)
    f = model.fc.weight[0].detach()
    r_sum = total * f  # relevance at the sum's output: z_k F_0k
    r_branch, r_short = branch / total * r_sum, x.view(2) / total * r_sum
    torch.testing.assert_close(r_branch / r_short, branch / x.view(2))
    # the branch conv shares r_branch by LRP-0, the shortcut passes r_short on
    w = model.branch.weight.view(2, 2).detach()
    expected = (x.view(2)[None, :] * w / branch[:, None] * r_branch[:, None]).sum(0) + r_short
    torch.testing.assert_close(out.relevance.view(2), expected)
    torch.testing.assert_close(out.relevance_sum, out.scores)  # no bias: conserved


# --- conservation --------------------------------------------------------------------------


def _bias_free_dense() -> nn.Module:
    torch.manual_seed(6)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(12, 16, bias=False), nn.ReLU(), nn.Linear(16, 10, bias=False), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(10, 5, bias=False),
    )


def _bias_free_conv() -> nn.Module:
    torch.manual_seed(7)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, bias=False), nn.ReLU6(), nn.AvgPool2d(2), nn.Conv2d(8, 8, 1, bias=False), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5, bias=False),
    )


@pytest.mark.parametrize("build, shape", [(_bias_free_dense, (4, 3, 2, 2)), (_bias_free_conv, (4, 3, 12, 12))])
def test_lrp0_on_a_bias_free_relu_network_conserves_and_is_gradient_x_input(build, shape) -> None:
    model = build()
    torch.manual_seed(8)
    x = torch.randn(shape)
    out = LRP(model).explain(x, [0, 1, 2, 3], composite="lrp0")
    relative_error = ((out.relevance_sum - out.scores).abs() / out.scores.abs()).max()
    assert relative_error < 1e-4
    with prepared(model):
        grad, _ = input_gradient(model, x, torch.tensor([0, 1, 2, 3]))
    torch.testing.assert_close(out.relevance, grad * x, rtol=1e-4, atol=1e-6)


# --- canonizers ----------------------------------------------------------------------------


def _randomise_batchnorm(model: nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.3)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.2)


def _conv_bn_model() -> nn.Module:
    torch.manual_seed(9)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, groups=4, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 4),
    )
    _randomise_batchnorm(model, 0)
    return model.eval()


def _snapshot(model: nn.Module) -> list[tuple]:
    """Names, module objects, types, public flags, hooks and parameter flags of every module."""
    return [
        (
            name, id(m), type(m), m.training, {k: v for k, v in vars(m).items() if not k.startswith("_")},
            len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks),
            [(p.requires_grad, id(p)) for p in m.parameters(recurse=False)],
        )
        for name, m in model.named_modules(remove_duplicate=False)
    ]


def _assert_unchanged(model: nn.Module, reference: nn.Module, snapshot: list[tuple]) -> None:
    assert _snapshot(model) == snapshot
    assert [type(m) for m in model.modules()] == [type(m) for m in reference.modules()]
    state, expected = model.state_dict(), reference.state_dict()
    assert list(state) == list(expected)
    for key in state:
        assert torch.equal(state[key], expected[key]), key


def test_batchnorm_folding_keeps_outputs_and_is_undone_exactly() -> None:
    model = _conv_bn_model()
    reference, snapshot = copy.deepcopy(model), _snapshot(model)
    x = torch.randn(3, 3, 9, 9)
    with torch.no_grad():
        before = model(x)
        with canonized(model, [BatchNormFolding()]):
            assert isinstance(model[0], AffineModule) and isinstance(model[1], nn.Identity)
            assert isinstance(model[3], AffineModule) and isinstance(model[8], AffineModule)
            assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
            folded = model(x)
    torch.testing.assert_close(folded, before, atol=1e-5, rtol=1e-5)
    _assert_unchanged(model, reference, snapshot)
    # the folding itself, one layer at a time
    conv, norm = reference[0], reference[1]
    torch.testing.assert_close(fold_batchnorm(conv, norm)(x), norm(conv(x)), atol=1e-5, rtol=1e-5)


def test_folding_many_pairs_at_once_gives_each_pairs_formula() -> None:
    """``W' = W s`` (bit for bit), ``b' = (b - mean) s + beta``, ``s = gamma / sqrt(var + eps)``,
    one pair at a time in plain arithmetic, against the batched folding of pairs of every kind."""
    torch.manual_seed(4)
    pairs = [
        (nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)),
        (nn.Conv2d(8, 8, 3, groups=8, bias=False), nn.BatchNorm2d(8, eps=1e-3)),
        (nn.Conv2d(8, 4, 1), nn.BatchNorm2d(4, affine=False)),  # no gamma, no beta
        (nn.Linear(6, 5, bias=False), nn.BatchNorm1d(5, affine=False)),
        (nn.Linear(6, 5), nn.BatchNorm1d(5)),
    ]
    with torch.no_grad():
        for _, norm in pairs:
            n = norm.num_features
            norm.running_mean.copy_(torch.randn(n))
            norm.running_var.copy_(torch.rand(n) + 0.1)
            if norm.weight is not None:
                norm.weight.copy_(torch.randn(n))  # negative scales too
                norm.bias.copy_(torch.randn(n))
            norm.eval()
    folded = fold_batchnorms(pairs)
    assert len(folded) == len(pairs) and fold_batchnorms([]) == []
    for (layer, norm), module in zip(pairs, folded):
        with torch.no_grad():
            scale = torch.rsqrt(norm.running_var + norm.eps)
            if norm.weight is not None:
                scale = scale * norm.weight
            shift = -norm.running_mean * scale if norm.bias is None else norm.bias - norm.running_mean * scale
            if layer.bias is not None:
                shift = shift + layer.bias * scale
            weight = layer.weight * scale.view(-1, *([1] * (layer.weight.dim() - 1)))
        assert torch.equal(module.layer.weight, weight)
        torch.testing.assert_close(module.layer.bias, shift, rtol=0, atol=1e-6)
        x = torch.randn(2, *((layer.in_features,) if isinstance(layer, nn.Linear) else (layer.in_channels, 7, 7)))
        with torch.no_grad():
            torch.testing.assert_close(module(x), norm(layer(x)), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="does not fit"):
        fold_batchnorms([(nn.Conv2d(3, 8, 1), nn.BatchNorm2d(8)), (nn.Conv2d(3, 8, 1), nn.BatchNorm2d(7))])


def test_layers_after_a_rectifier_are_marked_and_their_inputs_are_nonnegative() -> None:
    """The plan marks the affine layers whose inputs come straight from a ReLU (through
    identities, zero padding, max pooling or dropout), so rules skip checking their sign; in a
    real pass every marked layer's inputs are >= 0, and the map is what the check gives."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3), nn.ReLU(), nn.ZeroPad2d(1), nn.Conv2d(6, 6, 3),  # marked
        nn.ReLU6(), nn.MaxPool2d(2), nn.Dropout(), nn.Conv2d(6, 6, 1),  # marked
        nn.ReLU(), nn.ConstantPad2d(1, -1.0), nn.Conv2d(6, 6, 3),  # a -1 padding: not marked
        nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(6, 6, 1),  # not a sign-keeping layer: not marked
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.ReLU(), nn.Linear(6, 3),  # marked
    ).eval()
    x = torch.randn(2, 3, 20, 20)
    rules = make_composite("gamma", gamma=0.25, low=-3.0, high=3.0)
    seen: dict[str, bool] = {}
    with relevance_propagation(model, rules):
        marks = {
            name: module.layer.rectified_inputs
            for name, module in model.named_children() if isinstance(module, AffineRelevanceModule)
        }

        def record(name):
            return lambda module, args: seen.__setitem__(name, bool(args[0].amin() >= 0)) or None

        handles = [model[int(name)].register_forward_pre_hook(record(name)) for name in marks]
        inputs = x.clone().requires_grad_(True)
        scores = model(inputs)[:, 1]
        (fast,) = torch.autograd.grad(scores, inputs, scores.detach())
        for handle in handles:
            handle.remove()
    assert marks == {"0": False, "3": True, "7": True, "10": False, "13": False, "17": True}
    assert all(seen[name] for name, marked in marks.items() if marked)
    # the same map when every layer checks its inputs' sign instead
    with relevance_propagation(model, rules):
        for module in model.children():
            if isinstance(module, AffineRelevanceModule):
                vars(module)["layer"] = replace(module.layer, rectified_inputs=False)
        inputs = x.clone().requires_grad_(True)
        scores = model(inputs)[:, 1]
        (checked,) = torch.autograd.grad(scores, inputs, scores.detach())
    assert torch.equal(fast, checked)


class _TwoUnits(nn.Module):
    """A rectifier in one child and the next convolution in another, ordered only by
    ``forward`` (as in EfficientNet-Lite0's blocks): the plan cannot see that they touch."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU6())
        self.second = nn.Sequential(nn.Conv2d(6, 6, 3))
        self.third = nn.Sequential(nn.Conv2d(6, 4, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.third(self.second(self.first(x)) - 1.0).mean(dim=(2, 3))


def test_inputs_straight_from_a_rectifier_skip_the_sign_check_and_keep_the_map(monkeypatch) -> None:
    """Across modules the pass itself sees that a layer's inputs are a rectifier's output: only
    the other layers check their inputs' sign, and the map equals the one where all check."""
    from vizwidgets.attribution.lrp import functions
    from vizwidgets.attribution.lrp import rules as rules_module

    torch.manual_seed(1)
    model = _TwoUnits().eval()
    x = torch.randn(2, 3, 12, 12)
    composite = Composite(conv=Gamma(0.25), dense=Gamma(0.25))
    checked: list[bool] = []
    real_check = rules_module._nonnegative

    def counting(a: Tensor) -> bool:
        checked.append(bool(a.amin() >= 0))
        return real_check(a)

    monkeypatch.setattr(rules_module, "_nonnegative", counting)
    fast = lrp(model, x, 1, composite=composite)
    # the first layer (pixels) and the third (after "- 1.0", either sign) check; the second not
    assert checked == [False, False], checked
    checked.clear()
    monkeypatch.setattr(functions, "replace", lambda layer, **changes: layer)  # no marking
    slow = lrp(model, x, 1, composite=composite)
    assert len(checked) == 3 and checked.count(True) == 1  # the second layer's inputs are >= 0
    assert torch.equal(fast, slow)


def test_the_model_is_restored_when_the_attribution_raises_midway(monkeypatch) -> None:
    model = _conv_bn_model().train()  # LRP runs it in eval mode and must give back train mode
    model[0].weight.requires_grad_(True)
    reference, snapshot = copy.deepcopy(model), _snapshot(model)
    x = torch.randn(2, 3, 9, 9)
    # a bad target is found after the forward pass, inside every context manager
    with pytest.raises(ValueError, match="out of range"):
        lrp(model, x, 50, composite="epsilon", low=-3.0, high=3.0)
    _assert_unchanged(model, reference, snapshot)

    # an error injected in the middle of the backward pass
    def broken(self, layer, inputs, outputs, relevance):
        raise RuntimeError("injected")

    monkeypatch.setattr(Epsilon, "propagate", broken)
    with pytest.raises(RuntimeError, match="injected"):
        lrp(model, x, 1, composite="epsilon", low=-3.0, high=3.0)
    monkeypatch.undo()
    _assert_unchanged(model, reference, snapshot)
    # and it still works afterwards, leaving the model as it was
    assert torch.isfinite(lrp(model, x, 1, composite="epsilon", low=-3.0, high=3.0)).all()
    _assert_unchanged(model, reference, snapshot)


def test_padding_merging_and_canonizers_compose() -> None:
    torch.manual_seed(10)
    model = nn.Sequential(
        SamePad2d(3, 2), nn.Conv2d(3, 4, 3, stride=2, bias=False), nn.BatchNorm2d(4), nn.ReLU6()
    ).eval()
    _randomise_batchnorm(model, 1)
    x = torch.randn(2, 3, 7, 7)
    with torch.no_grad():
        before = model(x)
        with canonized(model, [BatchNormFolding(), PaddingMerging()]):
            assert [type(m) for m in model] == [nn.Identity, AffineModule, nn.Identity, nn.ReLU6]
            merged = model(x)
    torch.testing.assert_close(merged, before, atol=1e-5, rtol=1e-5)
    assert isinstance(model[0], SamePad2d) and isinstance(model[2], nn.BatchNorm2d)


# --- real architectures ----------------------------------------------------------------------


def test_default_model_relevance_and_report(lite) -> None:
    model = lite.model
    reference, snapshot = copy.deepcopy(model), _snapshot(model)
    x = lite.preprocess("chelsea")
    out = LRP(lite).explain(x)
    assert out.relevance.shape == (1, 3, 224, 224)
    assert torch.isfinite(out.relevance).all() and out.relevance.abs().sum() > 0
    assert out.targets.tolist() == [285]  # Egyptian cat
    # the report for docs/lrp.md: how much of the logit reaches the pixels (all presets: the
    # command in docs/lrp.md)
    for name, result in (("default", out), ("lrp0", LRP(lite).explain(x, composite="lrp0"))):
        assert torch.isfinite(result.relevance).all()
        print(
            f"chelsea {name}: logit {result.scores.item():.4f} relevance sum "
            f"{result.relevance_sum.item():.6f} ratio {(result.relevance_sum / result.scores).item():.5f}"
        )
    _assert_unchanged(model, reference, snapshot)


def test_default_model_batched_equals_per_image(lite) -> None:
    x = lite.preprocess(["chelsea", "chicky_512"])
    batched = lrp(lite, x, [285, 154])
    single = torch.cat([lrp(lite, x[:1], 285), lrp(lite, x[1:], 154)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-4)
    scale = single.abs().amax(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(batched / scale, single / scale, atol=1e-5, rtol=1e-4)


def test_vgg16_architecture() -> None:
    from torchvision.models import vgg16

    torch.manual_seed(11)
    model = vgg16(weights=None).eval()
    reference, snapshot = copy.deepcopy(model), _snapshot(model)
    x = torch.rand(2, 3, 64, 64) * (torch.tensor(IMAGENET_HIGH) - torch.tensor(IMAGENET_LOW)).view(1, 3, 1, 1)
    x = x + torch.tensor(IMAGENET_LOW).view(1, 3, 1, 1)
    relevance = lrp(model, x, [3, 7], low=IMAGENET_LOW, high=IMAGENET_HIGH)
    assert relevance.shape == (2, 3, 64, 64)
    assert torch.isfinite(relevance).all() and relevance.abs().sum() > 0
    _assert_unchanged(model, reference, snapshot)  # in-place ReLUs included


def test_resnet50_architecture() -> None:
    from torchvision.models import resnet50

    torch.manual_seed(12)
    model = resnet50(weights=None).eval()
    _randomise_batchnorm(model, 2)
    reference, snapshot = copy.deepcopy(model), _snapshot(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        with canonized(model):
            assert isinstance(model.layer1[0], ResidualBlock) and isinstance(model.layer4[2], ResidualBlock)
            assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
            after = model(x)
    torch.testing.assert_close(after, before, atol=1e-4 * before.abs().max().item(), rtol=1e-4)
    _assert_unchanged(model, reference, snapshot)
    out = LRP(model).explain(x, [1, 2], low=IMAGENET_LOW, high=IMAGENET_HIGH)
    assert out.relevance.shape == (2, 3, 64, 64)
    assert torch.isfinite(out.relevance).all() and out.relevance.abs().sum() > 0
    _assert_unchanged(model, reference, snapshot)


def test_resnet_canonizer_builds_the_block_forward() -> None:
    from torchvision.models.resnet import BasicBlock

    torch.manual_seed(13)
    block = BasicBlock(4, 4).eval()
    _randomise_batchnorm(block, 3)
    model = nn.Sequential(block)
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        before = model(x)
        with canonized(model, [ResNetCanonizer()]):
            assert isinstance(model[0], ResidualBlock) and isinstance(model[0].add, ResidualAdd)
            after = model(x)
    torch.testing.assert_close(after, before)
    assert model[0] is block


# --- what LRP refuses ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "layer, kind",
    [(nn.Hardswish(), "Hardswish"), (nn.SiLU(), "SiLU"), (nn.LayerNorm([4, 6, 6]), "LayerNorm")],
)
def test_an_unsupported_layer_is_named_before_anything_runs(layer: nn.Module, kind: str) -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), layer, nn.Flatten(), nn.Linear(144, 2))
    calls: list[int] = []
    model.register_forward_pre_hook(lambda module, args: calls.append(1))
    with pytest.raises(ValueError, match=rf"layer '1' \({kind}\)"):
        lrp(model, torch.randn(1, 3, 8, 8), 0, composite="lrp0")
    assert calls == []  # refused before the forward pass


def test_hidden_additions_and_unfoldable_batchnorm_are_refused() -> None:
    from torchvision.models import mobilenet_v2

    with pytest.raises(ValueError, match=r"\(InvertedResidual\): its forward adds"):
        lrp(mobilenet_v2(weights=None).eval(), torch.randn(1, 3, 32, 32), 0, composite="lrp0")
    model = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 2, 1), nn.Flatten(), nn.Linear(8, 2)).eval()
    with pytest.raises(ValueError, match=r"layer '0' \(BatchNorm2d\)"):
        lrp(model, torch.randn(1, 3, 2, 2), 0, composite="lrp0")


def test_options_are_checked() -> None:
    model = _bias_free_conv()
    x = torch.randn(1, 3, 12, 12)
    with pytest.raises(ValueError, match="low= and high="):
        lrp(model, x, 0)  # the default composite needs the z^B bounds of a bare module
    with pytest.raises(ValueError, match="both low and high"):
        lrp(model, x, 0, low=-1.0)
    with pytest.raises(ValueError, match="composite"):
        lrp(model, x, 0, composite="zplus")
    with pytest.raises(ValueError, match="epsilon"):
        lrp(model, x, 0, composite="lrp0", epsilon=-1.0)
    with pytest.raises(ValueError, match="alpha - beta = 1"):
        AlphaBeta(2.0, 0.5)
    with pytest.raises(ValueError, match="low must be at most high"):
        ZBox(1.0, -1.0)
    with pytest.raises(ValueError, match="bounds per side"):
        lrp(model, x, 0, low=(-1.0, -1.0), high=(1.0, 1.0))  # 2 bounds for 3 channels
    with pytest.raises(TypeError, match="Rule"):
        Composite(conv="epsilon", dense=LRP0())  # type: ignore[arg-type]
    custom = Composite(conv=Gamma(0.5), dense=Epsilon(0.1), first=ZBox(-4.0, 4.0))
    assert torch.isfinite(lrp(model, x, 0, composite=custom)).all()
    assert make_composite("default", low=0.0, high=1.0).rules  # presets build


def test_composite_assigns_rules_by_type_and_position(lite) -> None:
    composite = LRP(lite).composite("default", 0.25, 0.25, None, None)
    model = lite.model
    with prepared(model), relevance_propagation(model, composite):
        rules = {
            name: module.rule for name, module in model.named_modules() if isinstance(module, AffineRelevanceModule)
        }
    assert isinstance(rules["stem.conv"], ZBox)
    assert rules["stem.conv"].low == (-127 / 128,) * 3 and rules["stem.conv"].high == (1.0,) * 3
    lower = [n for n in rules if n.startswith("blocks.") and int(n.split(".")[1]) <= 7]
    upper = [n for n in rules if n.startswith("blocks.") and int(n.split(".")[1]) >= 8]
    assert len(lower) == 23 and all(isinstance(rules[n], Gamma) for n in lower)
    assert all(isinstance(rules[n], Epsilon) and rules[n].relative for n in [*upper, "head.conv"])
    assert isinstance(rules["classifier"], LRP0)
    # after the block: the model's own modules again, nothing swapped in left behind
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 49
    assert not any(type(m).__module__.startswith("vizwidgets.attribution.lrp") for m in model.modules())
