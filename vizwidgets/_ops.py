"""Small image operations shared by the methods: Gaussian blur and total variation.

Both take ``(N, C, H, W)`` float tensors and work on any device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["gaussian_blur", "total_variation"]


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of each channel of ``(N, C, H, W)``, reflected at the borders.

    The kernel reaches ``3 sigma`` (cut to ``size - 1`` on small images) and is normalised to
    sum to 1, so blurring commutes with a per-channel affine map such as ``(p - mean) / std``.
    """
    channels = x.shape[1]
    out = x
    for axis, size in ((2, x.shape[2]), (3, x.shape[3])):
        radius = min(int(math.ceil(3.0 * sigma)), size - 1)
        if radius == 0:
            continue
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
        kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
        kernel = (kernel / kernel.sum()).to(x.device, x.dtype)
        if axis == 2:
            weight = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
            padded = F.pad(out, (0, 0, radius, radius), mode="reflect")
        else:
            weight = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
            padded = F.pad(out, (radius, radius, 0, 0), mode="reflect")
        out = F.conv2d(padded, weight, groups=channels)
    return out


def total_variation(x: Tensor, beta: float = 2.0) -> Tensor:
    """Total variation of each image of ``(N, C, H, W)``, ``(N,)``.

    ``TV(x) = mean_ij ( (x[i, j+1] - x[i, j])^2 + (x[i+1, j] - x[i, j])^2 )^(beta / 2)``,
    summed over channels, the mean taken over the ``(H - 1) (W - 1)`` positions that have
    both a right and a lower neighbour (Mahendran & Vedaldi 2015, "Understanding Deep Image
    Representations by Inverting Them", CVPR, eq. 5, as a mean rather than a sum so that the
    value does not grow with the image size). ``beta = 2`` penalises all edges smoothly;
    ``beta = 1`` is the classical (isotropic) total variation. A constant image has TV 0.
    """
    if x.dim() != 4:
        raise ValueError(f"total_variation expects (N, C, H, W), got shape {tuple(x.shape)}")
    if not beta > 0:
        raise ValueError(f"beta must be positive, got {beta!r}")
    right = x[:, :, :-1, 1:] - x[:, :, :-1, :-1]
    down = x[:, :, 1:, :-1] - x[:, :, :-1, :-1]
    squared = right.pow(2) + down.pow(2)
    # d/dx of sqrt at 0 is infinite: beta < 2 gets a tiny floor so gradients stay finite
    per_pixel = squared if beta == 2.0 else (squared + 1e-12).pow(beta / 2.0)
    return per_pixel.sum(dim=1).mean(dim=(1, 2))
