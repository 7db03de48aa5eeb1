"""Baselines for path methods: the input that stands for "no information".

Integrated Gradients (Sundararajan, Taly & Yan 2017, "Axiomatic Attribution for Deep
Networks", ICML) explains ``F(x) - F(x')`` for a baseline ``x'``; which baseline is right
depends on what "absent" means for the data (Sturmfels, Lundberg & Lee 2020, "Visualizing the
Impact of Feature Attribution Baselines", Distill). :func:`make_baseline` builds the named
ones in preprocessed space, ``(N, C, H, W)`` like the inputs: black, blurred, uniform noise,
the preprocessed zero, or a tensor of one's own.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from vizwidgets._ops import gaussian_blur
from vizwidgets.attribution.validation import check_inputs

__all__ = ["BASELINES", "BLUR_SIGMA_FRACTION", "make_baseline"]

#: The named baselines: see :func:`make_baseline`.
BASELINES: tuple[str, ...] = ("black", "blurred", "uniform", "zero")

#: The "blurred" baseline's Gaussian ``sigma`` as a fraction of the image's shorter side
#: (22.4 pixels at 224 x 224): edges and textures vanish, the colour layout stays.
BLUR_SIGMA_FRACTION: float = 0.1


def make_baseline(
    inputs: Tensor,
    baseline: str | Tensor = "black",
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    seed: int | None = 0,
    sigma: float | None = None,
) -> Tensor:
    """The baseline ``x'`` for each image, ``(N, C, H, W)`` in preprocessed space.

    Parameters
    ----------
    inputs:
        The preprocessed batch ``(N, C, H, W)``.
    baseline:
        - ``"black"``: pixel value 0 in every channel, i.e. ``(0 - mean) / std``; needs
          ``mean`` and ``std``.
        - ``"blurred"``: the image blurred by a Gaussian of standard deviation ``sigma``
          pixels (default ``BLUR_SIGMA_FRACTION`` of the shorter side), reflected at the
          borders: no edges, the same colours.
        - ``"uniform"``: each value drawn uniformly from the valid pixel range [0, 1], then
          normalised with ``mean`` and ``std``; drawn once from ``seed`` and shared by every
          image of the batch (so a batch gives each image the result it gets alone).
        - ``"zero"``: the preprocessed value 0, which is the preprocessing's mean colour
          (mid-grey for the default model).
        - a tensor ``(C, H, W)``, ``(1, C, H, W)`` or ``(N, C, H, W)`` in preprocessed space.
    mean, std:
        The preprocessing's per-channel mean and std in [0, 1] pixel units
        (``adapt(model).mean``); needed by "black" and "uniform".
    seed:
        Seed of the "uniform" draw; None: a new draw each call.
    sigma:
        Blur of "blurred", in pixels.
    """
    x = check_inputs(inputs)
    n, c, h, w = x.shape
    if isinstance(baseline, Tensor):
        return _check_baseline_tensor(baseline, x)
    if not isinstance(baseline, str):
        raise TypeError(
            f"baseline must be one of {list(BASELINES)} or a tensor, got {type(baseline).__name__}"
        )
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {list(BASELINES)} or a tensor, got {baseline!r}")
    if baseline == "zero":
        return torch.zeros_like(x)
    if baseline == "blurred":
        sigma = BLUR_SIGMA_FRACTION * min(h, w) if sigma is None else sigma
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0:
            raise ValueError(f"sigma must be a positive number of pixels, got {sigma!r}")
        return gaussian_blur(x, float(sigma))
    if mean is None or std is None:
        raise ValueError(
            f"baseline={baseline!r} needs the preprocessing's mean and std to know which input "
            "is that image; use a model from vizwidgets.load_model (or give yours with "
            "vizwidgets.models.adapt(module, mean=..., std=...)), give the baseline as a "
            "preprocessed tensor, or use baseline='zero' or 'blurred'"
        )
    if len(mean) != c or len(std) != c:
        raise ValueError(f"mean and std must have {c} values (one per channel), got {len(mean)} and {len(std)}")
    mean_t = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, c, 1, 1)
    std_t = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, c, 1, 1)
    if baseline == "black":
        pixels = torch.zeros((1, c, h, w), dtype=x.dtype, device=x.device)
    else:  # uniform
        generator = torch.Generator(device="cpu")
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
        pixels = torch.rand((1, c, h, w), generator=generator, dtype=torch.float32)
        pixels = pixels.to(x.device, x.dtype)
    return ((pixels - mean_t) / std_t).expand(n, c, h, w).contiguous()


def _check_baseline_tensor(baseline: Tensor, x: Tensor) -> Tensor:
    n, c, h, w = x.shape
    allowed = ((c, h, w), (1, c, h, w), (n, c, h, w))
    if tuple(baseline.shape) not in allowed:
        raise ValueError(
            f"baseline tensor has shape {tuple(baseline.shape)}; for inputs of shape "
            f"{tuple(x.shape)} it must be {(c, h, w)}, {(1, c, h, w)} or {(n, c, h, w)}"
        )
    if not baseline.is_floating_point():
        raise ValueError(f"baseline tensor must be a float tensor (preprocessed space), got {baseline.dtype}")
    if baseline.device.type == "meta":
        raise ValueError("baseline tensor is on the meta device (no values); create it on the inputs' device")
    if not torch.isfinite(baseline).all():
        raise ValueError("baseline tensor contains NaN or infinite values")
    baseline = baseline.detach().to(x.device, x.dtype)
    return baseline.reshape(-1, c, h, w).expand(n, c, h, w).contiguous()
