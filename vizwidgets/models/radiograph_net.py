"""A small CNN for the synthetic radiographs, trained on a CPU in seconds: "your own model".

:func:`train_radiograph_net` trains :class:`RadiographNet` on a
:class:`~vizwidgets.data.Radiographs` set from a seed and returns a
:class:`~vizwidgets.models.LoadedModel`, so every method, ``explain()``, ``compare()`` and the
Explorer take it exactly as they take the ImageNet model. This is also the course's example of
wrapping a model of one's own: a module, the preprocessing it was trained with, its class names
and the layer CAM methods should use.

>>> from vizwidgets.data import make_radiographs
>>> from vizwidgets.models.radiograph_net import train_radiograph_net, accuracy
>>> train = make_radiographs(64, seed=0)
>>> loaded = train_radiograph_net(train, epochs=1, seed=0, progress=False)
>>> loaded.classes[1], loaded.default_layer, loaded.input_size
('nodule', 'features', (64, 64))
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vizwidgets._files import write_atomic
from vizwidgets.models.classes import ClassNames
from vizwidgets.models.core import LoadedModel
from vizwidgets.models.preprocess import Preprocess

__all__ = [
    "RADIOGRAPH_PREPROCESS",
    "RadiographNet",
    "accuracy",
    "radiograph_inputs",
    "radiograph_model",
    "train_radiograph_net",
    "cache_folder",
]

#: Radiographs are 64x64 grey images in [0, 1]; the net sees ``(p - 0.5) / 0.25``.
RADIOGRAPH_PREPROCESS = Preprocess(size=(64, 64), mean=(0.5,) * 3, std=(0.25,) * 3, resample="bilinear")


class RadiographNet(nn.Module):
    """Three 3x3 convolutions with ReLU (two 2x2 max-pools between), global average pooling and
    a linear layer: ``(N, 3, 64, 64) -> (N, 2)`` logits, about 15 k parameters.

    ``features`` ends at 16x16 (a quarter of the input's side), the layer CAM methods use. It
    holds only layers every method of the package knows (LRP included): ``Conv2d``, ``ReLU``,
    ``MaxPool2d``, ``AdaptiveAvgPool2d``, ``Flatten``, ``Linear``.
    """

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
        )
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(2 * width, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))


def radiograph_inputs(data: Any) -> Tensor:
    """The model inputs of a :class:`~vizwidgets.data.Radiographs` set (or an ``(N, 3, H, W)``
    array in [0, 1]): ``(images - 0.5) / 0.25`` as a float32 tensor."""
    images = getattr(data, "images", data)
    pixels = torch.as_tensor(np.asarray(images), dtype=torch.float32)
    if pixels.dim() != 4 or pixels.shape[1] != 3:
        raise ValueError(f"expected radiographs of shape (N, 3, H, W), got {tuple(pixels.shape)}")
    mean, std = RADIOGRAPH_PREPROCESS.mean[0], RADIOGRAPH_PREPROCESS.std[0]
    return (pixels - mean) / std


def radiograph_model(net: nn.Module, name: str = "radiograph_net") -> LoadedModel:
    """Wrap a trained :class:`RadiographNet` (or any module of the same input and classes) as a
    :class:`~vizwidgets.models.LoadedModel`: eval mode, parameters frozen, the radiographs'
    preprocessing, classes ``("no nodule", "nodule")``, CAM layer ``features``."""
    net.eval()
    for parameter in net.parameters():
        parameter.requires_grad_(False)
    return LoadedModel(
        name=name,
        model=net,
        preprocess=RADIOGRAPH_PREPROCESS,
        classes=ClassNames(("no nodule", "nodule")),
        default_layer="features",
    )


@torch.no_grad()
def accuracy(model: Any, data: Any, batch_size: int = 256) -> float:
    """The share of ``data`` (a :class:`~vizwidgets.data.Radiographs` set) that ``model`` (a
    ``LoadedModel`` or a module) classifies right, in [0, 1]."""
    module = getattr(model, "model", model)
    x = radiograph_inputs(data)
    labels = torch.as_tensor(np.asarray(data.labels))
    was_training = module.training
    module.eval()
    try:
        right = 0
        for start in range(0, len(x), batch_size):
            logits = module(x[start : start + batch_size])
            right += int((logits.argmax(dim=1) == labels[start : start + batch_size]).sum())
    finally:
        module.train(was_training)
    return right / len(x)


def cache_folder() -> Path:
    """Where :func:`train_radiograph_net` keeps trained weights: ``$VIZWIDGETS_CACHE`` if set,
    else ``vizwidgets`` in ``$XDG_CACHE_HOME`` (default ``~/.cache``)."""
    if os.environ.get("VIZWIDGETS_CACHE"):
        return Path(os.environ["VIZWIDGETS_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vizwidgets"


def _cache_file(x: Tensor, labels: Tensor, settings: dict[str, Any]) -> Path:
    """The cache file for one training: named by a hash of everything its weights depend on
    (the inputs and labels, the settings, this module's code, PyTorch's version, the thread
    count and the CPU's instruction set, which change the order floats are summed in)."""
    digest = hashlib.sha256()
    for part in (x, labels):
        digest.update(str((part.dtype, tuple(part.shape))).encode())
        digest.update(np.ascontiguousarray(part.numpy()).tobytes())
    digest.update(Path(__file__).read_bytes())
    machine = (torch.__version__, torch.get_num_threads(), platform.machine(), torch.backends.cpu.get_cpu_capability())
    digest.update(repr((sorted(settings.items()), machine)).encode())  # repr: numpy ints too
    return cache_folder() / "radiograph_net" / f"{digest.hexdigest()[:32]}.pt"


def train_radiograph_net(
    data: Any,
    *,
    epochs: int = 4,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
    seed: int = 0,
    width: int = 16,
    progress: bool = True,
    cache: bool = True,
) -> LoadedModel:
    """Train a :class:`RadiographNet` on ``data`` from ``seed`` and return it wrapped.

    Adam (Kingma & Ba 2015) on the cross-entropy loss, mini-batches in an order drawn from
    ``seed``; the same data and seed give the same weights on the same machine. On 2 CPU cores,
    4 epochs of 1,200 images take 6 to 10 s. ``progress`` prints one line per epoch with the
    mean loss and the training accuracy.

    ``cache`` (default True): the weights are saved in :func:`cache_folder`, and a later call
    with the same data, settings and seed on the same machine, PyTorch and thread count loads
    them instead of training again: the same weights, and the same state of PyTorch's random
    numbers afterwards. ``cache=False`` always trains and saves nothing.
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    x = radiograph_inputs(data)
    labels = torch.as_tensor(np.asarray(data.labels), dtype=torch.long)
    settings = {
        "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed, "width": width
    }
    saved = _cache_file(x, labels, settings) if cache else None
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = RadiographNet(width)  # drawn from the seed in both cases, so what follows sees the same RNG
    if saved is not None and saved.is_file():
        try:
            net.load_state_dict(torch.load(saved, map_location="cpu", weights_only=True))
        except Exception:  # unreadable or from another version: train again, and replace it
            torch.manual_seed(seed)
            net = RadiographNet(width)
        else:
            if progress:
                print(f"loaded the weights this training gave before, from {saved} (cache=False trains again)",
                      file=sys.stdout, flush=True)
            return radiograph_model(net)
    optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    net.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        total, right = 0.0, 0
        for start in range(0, len(x), batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad()
            logits = net(x[batch])
            loss = loss_fn(logits, labels[batch])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
            right += int((logits.argmax(dim=1) == labels[batch]).sum())
        if progress:
            print(
                f"epoch {epoch + 1}/{epochs}: loss {total / len(x):.3f}, "
                f"training accuracy {right / len(x):.1%}",
                file=sys.stdout,
                flush=True,
            )
    if saved is not None:
        try:
            write_atomic(saved, lambda stream: torch.save(net.state_dict(), stream))
        except OSError:  # a read-only or full disk: the model is trained all the same
            pass
    return radiograph_model(net)
