"""The one place that knows what a model is: :func:`adapt` and :class:`ModelAdapter`.

Every method of vizwidgets takes "a model": a :class:`~vizwidgets.models.LoadedModel` from
:func:`~vizwidgets.models.load_model`, or a bare ``torch.nn.Module`` (optionally with the
per-channel ``mean`` and ``std`` it was trained with). :func:`adapt` turns either into a
frozen :class:`ModelAdapter` that answers the questions the methods ask: the module to run,
its class names, its normalisation and the range of inputs a pixel can give, the layer CAM
methods use by default, how to turn images into inputs, and where the weights live. No other
module tells a ``LoadedModel`` from an ``nn.Module`` or reads a preprocessing's mean and std.

>>> import torch
>>> from vizwidgets.models import adapt
>>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten())
>>> a = adapt(net, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
>>> a.bounds.box
(-2.0, 2.0)
>>> a.default_layer
'0'
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from vizwidgets.models.core import LoadedModel
from vizwidgets.models.preprocess import Preprocess, prepare_inputs

__all__ = ["ModelAdapter", "PixelBounds", "adapt", "guess_default_layer"]


class PixelBounds(NamedTuple):
    """The model inputs a pixel in [0, 1] can become under ``(p - mean) / std``.

    ``low[c] = (0 - mean[c]) / std[c]`` and ``high[c] = (1 - mean[c]) / std[c]`` per channel;
    :attr:`box` is ``(min(low), max(high))``, the range over all channels. For
    EfficientNet-Lite0 (mean 127/255, std 128/255): ``-127/128`` to ``1`` in every channel.
    """

    low: tuple[float, ...]
    high: tuple[float, ...]

    @property
    def box(self) -> tuple[float, float]:
        """``(lowest, highest)`` input of any channel."""
        return min(self.low), max(self.high)


def guess_default_layer(module: nn.Module) -> str | None:
    """The layer CAM methods use for a bare module: its last convolutional stage, or None.

    The rule: take the last direct child of ``module`` (in definition order) that contains an
    ``nn.Conv2d``. If that child is an ``nn.Sequential`` of blocks, that is, its own last child
    containing a convolution is a container rather than a bare ``nn.Conv2d``, take that block
    instead. The chosen module's output is the last feature map before pooling on the usual
    designs: ``layer4.1`` for a torchvision ResNet (the same tensor as ``layer4``), ``features.18``
    for MobileNetV2, ``features.8`` for EfficientNet-B0, ``head`` for EfficientNet-Lite0,
    ``features`` for VGG. A module without children that is itself an ``nn.Conv2d`` has no name
    to give, and a module without convolutions has no default: both return None.
    """
    name = _last_conv_child(module)
    if name is None:
        return None
    child = module.get_submodule(name)
    if isinstance(child, nn.Sequential):
        inner = _last_conv_child(child)
        if inner is not None and not isinstance(child.get_submodule(inner), nn.Conv2d):
            return f"{name}.{inner}"
    return name


def _last_conv_child(module: nn.Module) -> str | None:
    found = None
    for name, child in module.named_children():
        if any(isinstance(sub, nn.Conv2d) for sub in child.modules()):
            found = name
    return found


def _channels(values: Any, what: str) -> tuple[float, ...]:
    """``values`` as a tuple of finite floats (one per channel); TypeError/ValueError naming it."""
    if isinstance(values, Tensor):
        values = values.detach().flatten().tolist()
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(
            f"{what} must be a sequence of numbers, one per channel (for example (0.485, 0.456, "
            f"0.406)), got {type(values).__name__}"
        )
    if not values:
        raise ValueError(f"{what} must have one number per channel, got an empty sequence")
    result = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{what} must hold numbers, got {type(value).__name__} {value!r}")
        if not math.isfinite(float(value)):
            raise ValueError(f"{what} must hold finite numbers, got {value!r}")
        result.append(float(value))
    return tuple(result)


def _normalisation(
    mean: Any, std: Any
) -> tuple[tuple[float, ...], tuple[float, ...]] | tuple[None, None]:
    """Checked ``(mean, std)``, both given or neither; std positive, lengths equal."""
    if mean is None and std is None:
        return None, None
    if mean is None or std is None:
        missing, given = ("mean", "std") if mean is None else ("std", "mean")
        raise ValueError(
            f"{given} was given without {missing}: pass both mean=(...) and std=(...) in [0, 1] pixel "
            "units, or neither"
        )
    mean_t, std_t = _channels(mean, "mean"), _channels(std, "std")
    if len(mean_t) != len(std_t):
        raise ValueError(
            f"mean and std must have the same number of channels, got {len(mean_t)} and {len(std_t)}"
        )
    if any(not s > 0 for s in std_t):
        raise ValueError(f"std must be positive in every channel, got {std_t}")
    return mean_t, std_t


@dataclass(frozen=True)
class ModelAdapter:
    """A model as every method of vizwidgets sees it; build it with :func:`adapt`.

    Attributes
    ----------
    module:
        The ``nn.Module`` that maps a preprocessed ``(N, C, H, W)`` batch to ``(N, classes)``
        scores. Methods run it; they never change it for good.
    classes:
        Class names (a :class:`~vizwidgets.models.ClassNames`, with lookup by name), or None.
    name:
        The model's name (``"efficientnet_lite0"``), or the class name of a bare module.
    mean, std:
        Per-channel normalisation in [0, 1] pixel units (``input = (pixel - mean) / std``), or
        None when unknown (a bare module given without them).
    preprocess:
        The :class:`~vizwidgets.models.Preprocess` that turns images into inputs, or None.
    default_layer:
        The layer CAM methods use unless told otherwise: the ``LoadedModel``'s, or for a bare
        module :func:`guess_default_layer`'s guess (None: no convolution).
    layer_names:
        The curated layers a learner picks from (``LoadedModel.layer_names`` or the module's
        ``learner_layers``), or None.
    channels_last:
        Whether the attribution methods feed the module channels-last inputs (the
        ``LoadedModel``'s flag; False for a bare module). A speed setting only: see
        :attr:`~vizwidgets.models.LoadedModel.channels_last`.
    """

    module: nn.Module
    classes: Any = None
    name: str = ""
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    preprocess: Preprocess | None = field(default=None, repr=False)
    default_layer: str | None = None
    layer_names: tuple[str, ...] | None = field(default=None, repr=False)
    channels_last: bool = False

    @property
    def bounds(self) -> PixelBounds | None:
        """Lowest and highest input of a pixel in [0, 1], per channel and overall; None without
        mean and std."""
        if self.mean is None or self.std is None:
            return None
        return PixelBounds(
            tuple(-m / s for m, s in zip(self.mean, self.std)),
            tuple((1.0 - m) / s for m, s in zip(self.mean, self.std)),
        )

    @property
    def device(self) -> torch.device:
        """Where the module's parameters (else buffers) live; cpu for a module with neither."""
        for tensor in itertools.chain(self.module.parameters(), self.module.buffers()):  # the first, lazily
            return tensor.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the module's first floating parameter (else buffer); float32 if none."""
        for tensor in itertools.chain(self.module.parameters(), self.module.buffers()):
            if tensor.is_floating_point():
                return tensor.dtype
        return torch.float32

    @property
    def input_size(self) -> tuple[int, int] | None:
        """``(height, width)`` the preprocessing resizes to, or None without one."""
        return None if self.preprocess is None else tuple(self.preprocess.size)  # type: ignore[return-value]

    def inputs(self, images: Any) -> Tensor:
        """Images as a preprocessed batch on the model's device.

        With a preprocessing: one image or a list (anything
        :func:`~vizwidgets.data.load_image` takes), or an ``(N, 3, H, W)`` preprocessed tensor.
        Without one, only a tensor, returned as it is (``TypeError`` otherwise, naming
        ``images``).
        """
        if self.preprocess is not None:
            return prepare_inputs(self.preprocess, images, self.device)
        if not isinstance(images, Tensor):
            raise TypeError(
                f"images must be a preprocessed torch.Tensor (N, C, H, W) for a bare nn.Module, got "
                f"{type(images).__name__}; a module has no preprocessing: load the model with "
                "vizwidgets.load_model, or preprocess the images yourself"
            )
        return images

    def with_module(self, module: nn.Module) -> ModelAdapter:
        """The same description around another module (a copy with changed weights, say)."""
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        return dataclasses.replace(self, module=module)


def adapt(model: Any, *, mean: Any = None, std: Any = None) -> ModelAdapter:
    """What every method needs to know about ``model``, as a frozen :class:`ModelAdapter`.

    Parameters
    ----------
    model:
        A :class:`~vizwidgets.models.LoadedModel` (its module, class names, preprocessing and
        default layer are used), a bare ``torch.nn.Module`` (no class names, no preprocessing,
        the default layer guessed by :func:`guess_default_layer`), or a ``ModelAdapter``
        (returned as it is unless ``mean``/``std`` are given).
    mean, std:
        Per-channel normalisation in [0, 1] pixel units, both or neither (ImageNet models:
        ``mean=(0.485, 0.456, 0.406)``, ``std=(0.229, 0.224, 0.225)``). Given for a
        ``LoadedModel`` or an adapter they replace its own (and its preprocessing's).

    Raises
    ------
    TypeError
        ``model`` is none of the above, or ``mean``/``std`` are not sequences of numbers.
    ValueError
        Only one of ``mean`` and ``std``, lengths that differ, a std that is not positive, a
        value that is not finite.
    """
    checked_mean, checked_std = _normalisation(mean, std)  # both None or both checked
    if isinstance(model, ModelAdapter):
        if checked_mean is None or checked_std is None:
            return model
        return _with_normalisation(model, checked_mean, checked_std)
    if isinstance(model, LoadedModel):
        if not isinstance(model.model, nn.Module):
            raise TypeError(
                f"model.model must be a torch.nn.Module, got {type(model.model).__name__}"
            )
        preprocess = model.preprocess
        adapter = ModelAdapter(
            module=model.model,
            classes=model.classes,
            name=model.name,
            mean=tuple(float(m) for m in preprocess.mean),
            std=tuple(float(s) for s in preprocess.std),
            preprocess=preprocess,
            default_layer=model.default_layer,
            layer_names=model.layer_names or _learner_layers(model.model),
            channels_last=bool(model.channels_last),
        )
        if checked_mean is None or checked_std is None:
            return adapter
        return _with_normalisation(adapter, checked_mean, checked_std)
    if isinstance(model, nn.Module):
        return ModelAdapter(
            module=model,
            name=type(model).__name__,
            mean=checked_mean,
            std=checked_std,
            default_layer=guess_default_layer(model),
            layer_names=_learner_layers(model),
        )
    raise TypeError(
        "model must be a LoadedModel (vizwidgets.load_model()), a torch.nn.Module or a "
        f"ModelAdapter, got {type(model).__name__}"
    )


def _learner_layers(module: nn.Module) -> tuple[str, ...] | None:
    names = getattr(module, "learner_layers", None)
    return tuple(names) if names else None


def _with_normalisation(
    adapter: ModelAdapter, mean: tuple[float, ...], std: tuple[float, ...]
) -> ModelAdapter:
    preprocess = adapter.preprocess
    if preprocess is not None:
        if len(mean) != len(preprocess.mean):
            raise ValueError(
                f"mean and std must have {len(preprocess.mean)} values (one per channel of the "
                f"preprocessing), got {len(mean)}"
            )
        preprocess = dataclasses.replace(preprocess, mean=mean, std=std)  # type: ignore[arg-type]
    return dataclasses.replace(adapter, mean=mean, std=std, preprocess=preprocess)
