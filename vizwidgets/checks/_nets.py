"""Small fixed networks the graders try learners' code on, and the reference input gradient.

The networks are tiny, deterministic (seeded weights) and in float64, so a grader's reference
answer is exact to its tolerance and runs in milliseconds.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__: list[str] = []  # private to the checks package


def _small_net(seed: int) -> torch.nn.Module:
    """A tiny fixed convolutional classifier: (N, 3, H, W) -> (N, 5) logits."""
    generator = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 6, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(6, 5),
    )
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return net.double().eval()


def _smooth_net(seed: int) -> torch.nn.Module:
    """A tiny smooth classifier (Softplus), so that quadrature errors are small and known."""
    generator = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.Softplus(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 3),
    )
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    return net.double().eval()


def _reference_gradient(
    model: torch.nn.Module, x: Tensor, target: Tensor, score: str = "logit"
) -> Tensor:
    """d score / d x, ``(N, 3, H, W)``: of each image's target logit (``score="logit"``), its
    softmax probability (``"probability"``) or of the sum of all logits (``"all"``); the last
    two are the learners' usual mistakes."""
    inputs = x.detach().clone().requires_grad_(True)
    logits = model(inputs)
    values = logits.softmax(dim=1) if score == "probability" else logits
    if score == "all":
        total = logits.sum()
    else:
        total = values[torch.arange(len(target)), target].sum()
    (grad,) = torch.autograd.grad(total, inputs)
    return grad
