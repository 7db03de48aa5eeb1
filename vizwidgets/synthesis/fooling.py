"""Fooling a classifier: adversarial perturbations and images grown from noise.

All attacks work in pixel space: images are ``(N, 3, H, W)`` with values in [0, 1], the
perturbation ``delta = adversarial - original`` is bounded in the L-infinity norm by
``epsilon`` (in pixel units: ``8 / 255`` is eight grey levels), and every result is clamped
to [0, 1], so it is an image one could save and reload.

- :func:`fgsm`, the fast gradient sign method (Goodfellow, Shlens & Szegedy 2015, "Explaining
  and Harnessing Adversarial Examples", ICLR): one step
  ``x' = clip(x + epsilon * sign(grad_x L))``, with ``L`` the cross-entropy of the true
  class (untargeted: go away from it) or ``-L`` of the target class (targeted: go towards it).
- :func:`pgd`, projected gradient descent (Madry, Makelov, Schmidt, Tsipras & Vladu 2018,
  "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR): from a random start
  in the epsilon-ball, ``steps`` sign steps of ``step_size``, each followed by projection
  back onto the ball and [0, 1].
- :func:`fool`, a targeted attack that runs until the model gives the target class at least
  ``confidence`` (Szegedy, Zaremba, Sutskever, Bruna, Erhan, Goodfellow & Fergus 2014,
  "Intriguing properties of neural networks", ICLR, showed such imperceptible perturbations
  exist; their box-constrained L-BFGS search is replaced here by the projected sign steps of
  PGD, which need no line search). Each image stops as soon as it is fooled.
- :func:`fooling_image`, an image the model classifies as the target with high confidence
  although a person sees noise (Nguyen, Yosinski & Clune 2015, "Deep Neural Networks are Easily
  Fooled", CVPR, who evolved such images and also grew them by gradient ascent): gradient
  ascent on the target's log-probability from uniform noise, with no budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vizwidgets.attribution.base import prepared
from vizwidgets.synthesis._common import (
    MAX_LR,
    Callback,
    PixelModel,
    check_positive,
    check_seed,
    check_steps,
    generator,
    image_size,
    min_side,
    pixel_model,
    run_loop,
    to_pixels,
)

__all__ = ["AttackResult", "fgsm", "pgd", "fool", "fooling_image"]


@dataclass
class AttackResult:
    """What an attack did, image by image.

    Attributes
    ----------
    images:
        ``(N, 3, H, W)`` adversarial pixels in [0, 1].
    originals:
        ``(N, 3, H, W)`` the pixels it started from.
    perturbation:
        ``images - originals``; its L-infinity norm is within the budget.
    original_class, predicted, target:
        ``(N,)``: the model's class for the original, for the result, and the class aimed at
        (for an untargeted attack: the original class, to be left).
    targeted:
        Whether the attack aimed at ``target`` (True) or away from it (False).
    steps:
        ``(N,)`` steps each image took (an image stops once fooled).
    confidence:
        Per image, the probability of ``target`` before the first step and after each step.
    success:
        ``(N,)`` whether the image ends as the target class (targeted, with ``confidence``
        reached where one was asked for) or not as its original class (untargeted).
    interrupted:
        Whether the loop was stopped by ``KeyboardInterrupt``.
    """

    images: Tensor
    originals: Tensor
    original_class: Tensor
    predicted: Tensor
    target: Tensor
    targeted: bool
    steps: Tensor
    confidence: list[list[float]] = field(repr=False)
    success: Tensor
    interrupted: bool = False

    @property
    def perturbation(self) -> Tensor:
        return self.images - self.originals

    @property
    def linf(self) -> Tensor:
        """``(N,)``: the largest change of any pixel value."""
        return self.perturbation.abs().amax(dim=(1, 2, 3))

    def to_numpy(self) -> np.ndarray:
        """``(N, H, W, 3)`` float32 in [0, 1], for ``plt.imshow``."""
        return self.images.permute(0, 2, 3, 1).detach().cpu().numpy()


def _targets(model: PixelModel, target: Any, n: int, classes: int) -> Tensor:
    values = list(target) if isinstance(target, (list, tuple)) else [target] * n
    if len(values) != n:
        raise ValueError(f"{len(values)} targets given for {n} images; give one per image, or a single one")
    indices = [model.class_index(v) for v in values]
    for index in indices:
        if index >= classes:
            raise ValueError(f"class {index} is out of range: the model has {classes} classes (0 to {classes - 1})")
    return torch.tensor(indices, dtype=torch.long, device=model.device)


def _budget(epsilon: Any) -> float:
    epsilon = check_positive(epsilon, "epsilon")
    if epsilon > 1:
        raise ValueError(
            f"epsilon is in pixel units ([0, 1]); {epsilon} would allow any image. "
            "For 8 grey levels write 8/255"
        )
    return epsilon


def _project(adversarial: Tensor, originals: Tensor, epsilon: float | None) -> Tensor:
    if epsilon is not None:
        adversarial = torch.maximum(torch.minimum(adversarial, originals + epsilon), originals - epsilon)
    return adversarial.clamp(0.0, 1.0)


def _loss_gradient(model: PixelModel, x: Tensor, classes: Tensor) -> tuple[Tensor, Tensor]:
    """``(grad_x sum_n CE(model(x_n), classes_n), probabilities)``."""
    x = x.detach().requires_grad_(True)
    logits = model(x)
    loss = F.cross_entropy(logits, classes, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad, logits.detach().softmax(dim=1)


def _start(model: Any, images: Any, target: Any) -> tuple[PixelModel, Tensor, Tensor, Tensor | None]:
    pm = pixel_model(model)
    x = to_pixels(pm, images)
    with prepared(pm.module), torch.no_grad():
        logits = pm(x)
    original = logits.argmax(dim=1)
    goal = None if target is None else _targets(pm, target, x.shape[0], logits.shape[1])
    return pm, x, original, goal


def _result(
    pm: PixelModel, x: Tensor, adversarial: Tensor, original: Tensor, goal: Tensor, targeted: bool,
    steps: Tensor, confidence: list[list[float]], threshold: float | None, interrupted: bool,
) -> AttackResult:
    with prepared(pm.module), torch.no_grad():
        probabilities = pm(adversarial).softmax(dim=1)
    predicted = probabilities.argmax(dim=1)
    if targeted:
        success = predicted == goal
        if threshold is not None:
            success &= probabilities.gather(1, goal[:, None])[:, 0] >= threshold
    else:
        success = predicted != goal
    return AttackResult(
        adversarial.detach(), x, original, predicted, goal, targeted, steps, confidence, success, interrupted
    )


def fgsm(model: Any, images: Any, target: Any = None, *, epsilon: float = 8 / 255) -> AttackResult:
    """The fast gradient sign method (Goodfellow et al. 2015): one step of size ``epsilon``.

    ``target`` None: untargeted, away from each image's predicted class; a class (index or
    name, or one per image): towards it. ``images``: names, paths, PIL images or a pixel
    tensor in [0, 1] (see :func:`~vizwidgets.synthesis.to_pixels`). The perturbation is
    ``epsilon * sign(gradient)`` before clamping to [0, 1], so its L-infinity norm is at most
    ``epsilon`` (exactly ``epsilon`` wherever clamping does not cut it).
    """
    epsilon = _budget(epsilon)
    pm, x, original, goal = _start(model, images, target)
    targeted = goal is not None
    classes = goal if goal is not None else original
    with prepared(pm.module):
        grad, probabilities = _loss_gradient(pm, x, classes)
    direction = -grad.sign() if targeted else grad.sign()
    adversarial = _project(x + epsilon * direction, x, epsilon)
    before = probabilities.gather(1, classes[:, None])[:, 0].tolist()
    with torch.no_grad(), prepared(pm.module):
        after = pm(adversarial).softmax(dim=1).gather(1, classes[:, None])[:, 0].tolist()
    confidence = [[b, a] for b, a in zip(before, after)]
    steps = torch.ones(x.shape[0], dtype=torch.long)
    return _result(pm, x, adversarial, original, classes, targeted, steps, confidence, None, False)


def _iterate(
    pm: PixelModel, x: Tensor, original: Tensor, goal: Tensor | None, *, epsilon: float | None,
    step_size: float, steps: int, start: Tensor, stop_at: float | None, desc: str, progress: bool,
    callback: Callback | None,
) -> AttackResult:
    """Projected sign steps from ``start``; images whose target probability reaches
    ``stop_at`` stop moving."""
    targeted = goal is not None
    classes = goal if goal is not None else original
    adversarial = _project(start, x, epsilon)
    with prepared(pm.module), torch.no_grad():
        first = pm(adversarial).softmax(dim=1).gather(1, classes[:, None])[:, 0]
    confidence = [[float(p)] for p in first]
    taken = torch.zeros(x.shape[0], dtype=torch.long)
    active = torch.ones(x.shape[0], dtype=torch.bool)
    if stop_at is not None:
        active &= (first < stop_at).cpu()

    def step(i: int) -> dict[str, float] | None:
        nonlocal adversarial
        if not active.any():
            return None
        rows = active.nonzero()[:, 0].to(x.device)
        grad, _ = _loss_gradient(pm, adversarial[rows], classes[rows])
        direction = -grad.sign() if targeted else grad.sign()
        moved = _project(adversarial[rows] + step_size * direction, x[rows], epsilon)
        adversarial = adversarial.index_copy(0, rows, moved.detach())
        with torch.no_grad():
            now = pm(moved).softmax(dim=1).gather(1, classes[rows][:, None])[:, 0]
        for row, p in zip(rows.tolist(), now.tolist()):
            confidence[row].append(p)
            taken[row] += 1
            if stop_at is not None and p >= stop_at:
                active[row] = False
        return {"target p" if targeted else "original p": float(now.mean()), "left": float(active.sum())}

    _, interrupted = run_loop(
        pm.module, steps, step, desc=desc, progress=progress, callback=callback, current=lambda: adversarial
    )
    return _result(pm, x, adversarial, original, classes, targeted, taken, confidence, stop_at, interrupted)


def pgd(
    model: Any, images: Any, target: Any = None, *, epsilon: float = 8 / 255, step_size: float = 2 / 255,
    steps: int = 10, random_start: bool = True, seed: int | None = 0, progress: bool = True,
    callback: Callback | None = None,
) -> AttackResult:
    """Projected gradient descent (Madry et al. 2018) within an L-infinity ball of ``epsilon``.

    ``steps`` sign steps of ``step_size`` from a uniform random start in the ball (seeded),
    each projected back onto the ball and [0, 1]; ``target`` as in :func:`fgsm`. Every image
    takes all the steps.
    """
    epsilon = _budget(epsilon)
    step_size = check_positive(step_size, "step_size", maximum=1.0)
    steps = check_steps(steps)
    seed = check_seed(seed)
    pm, x, original, goal = _start(model, images, target)
    start = x
    if random_start:
        noise = torch.rand(x.shape, generator=generator(seed)).to(x.device)
        start = x + epsilon * (2.0 * noise - 1.0)
    return _iterate(
        pm, x, original, goal, epsilon=epsilon, step_size=step_size, steps=steps, start=start,
        stop_at=None, desc="PGD", progress=progress, callback=callback,
    )


def fool(
    model: Any, images: Any, target: Any, *, confidence: float = 0.9, max_steps: int = 100,
    epsilon: float | None = 8 / 255, step_size: float = 1 / 255, progress: bool = True,
    callback: Callback | None = None,
) -> AttackResult:
    """A targeted attack that stops each image once the model gives ``target`` at least
    ``confidence`` (Szegedy et al. 2014; projected sign steps as in :func:`pgd`).

    Parameters
    ----------
    images:
        One image or a list (names, paths, PIL images) or a pixel tensor ``(N, 3, H, W)``.
    target:
        The class to turn them into: an index or name, or one per image.
    confidence:
        Stop when the target's probability reaches this, in (0, 1).
    max_steps:
        At most this many steps per image.
    epsilon:
        L-infinity budget in pixel units (None: unbounded).
    step_size:
        Change of each pixel value per step (1/255: one grey level).
    """
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be a probability between 0 and 1 (exclusive), got {confidence!r}")
    max_steps = check_steps(max_steps, "max_steps")
    epsilon = None if epsilon is None else _budget(epsilon)
    step_size = check_positive(step_size, "step_size", maximum=1.0)
    if target is None:
        raise ValueError("fool needs a target class (index or name); for an untargeted attack use pgd or fgsm")
    pm, x, original, goal = _start(model, images, target)
    return _iterate(
        pm, x, original, goal, epsilon=epsilon, step_size=step_size, steps=max_steps, start=x,
        stop_at=float(confidence), desc="fool", progress=progress, callback=callback,
    )


def fooling_image(
    model: Any, target: Any, *, confidence: float = 0.99, max_steps: int = 200, lr: float = 0.05,
    size: int | Sequence[int] | None = None, seed: int | None = 0, progress: bool = True,
    callback: Callback | None = None,
) -> AttackResult:
    """An "unrecognisable" image the model gives ``target`` with at least ``confidence``
    (Nguyen et al. 2015): Adam on the target's log-probability, starting from uniform noise
    (seeded), clamped to [0, 1] each step, no budget. ``originals`` is the starting noise.
    """
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be a probability between 0 and 1 (exclusive), got {confidence!r}")
    max_steps = check_steps(max_steps, "max_steps")
    lr = check_positive(lr, "lr", maximum=MAX_LR)
    seed = check_seed(seed)
    pm = pixel_model(model)
    hw = image_size(size, pm.size, minimum=min_side(pm))
    noise = torch.rand((1, 3, *hw), generator=generator(seed)).to(pm.device)
    pm_, x, original, goal = _start(pm, noise, target)
    assert goal is not None
    image = noise.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([image], lr=lr)
    with torch.no_grad(), prepared(pm.module):
        trace = [float(pm(noise).softmax(dim=1)[0, goal[0]])]

    def step(i: int) -> dict[str, float] | None:
        if trace[-1] >= confidence:
            return None
        optimizer.zero_grad(set_to_none=True)
        log_p = pm(image).log_softmax(dim=1)[0, goal[0]]
        (-log_p).backward()
        optimizer.step()
        with torch.no_grad():
            image.clamp_(0.0, 1.0)
            trace.append(float(pm(image).softmax(dim=1)[0, goal[0]]))
        return {"target p": trace[-1]}

    done, interrupted = run_loop(
        pm.module, max_steps, step, desc="fooling image", progress=progress, callback=callback,
        current=lambda: image.detach(),
    )
    steps = torch.tensor([len(trace) - 1], dtype=torch.long)
    return _result(pm, x, image.detach(), original, goal, True, steps, [trace], float(confidence), interrupted)
