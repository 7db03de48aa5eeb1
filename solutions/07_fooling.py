# %% [markdown]
# # Fooling a network
#
# A change of a few grey levels per pixel, invisible to us, can turn a cat into a goldfinch
# for the network, with 99 % confidence. And pure noise can be a goldfinch too. In this
# notebook you will:
#
# - write the **fast gradient sign method** (FGSM, Goodfellow, Shlens & Szegedy 2015);
# - write the loop that iterates it into a targeted attack within a budget, then use the
#   package's, which runs until the network is sure (Szegedy et al. 2014 showed such
#   perturbations exist; projected gradient steps as in Madry et al. 2018);
# - grow an image from noise that the network calls a goldfinch (Nguyen, Yosinski & Clune
#   2015);
# - look at the perturbation, and at what the explanation methods say about a fooled image.
#
# Everything here works in **pixel space**: images are tensors in $[0, 1]$, and a budget of
# $\varepsilon = 8/255$ means no pixel value changes by more than eight grey levels.

# %%
import matplotlib.pyplot as plt
import torch

from vizwidgets.attribution import grad_cam
from vizwidgets.checks import check_fgsm_step, check_targeted_attack
from vizwidgets.models import load_model
from vizwidgets.synthesis import fool, fooling_image, pixel_model, to_pixels
from vizwidgets.viz import colorbar, normalize, overlay
from vizwidgets.widgets import FoolingWidget

loaded = load_model()
pm = pixel_model(loaded)  # the network, taking pixels in [0, 1]
x = to_pixels(pm, "chelsea")  # (1, 3, 224, 224) in [0, 1]
goldfinch = loaded.classes.index("goldfinch")
with torch.no_grad():
    p = pm(x).softmax(dim=1)[0]
print(f"chelsea: {loaded.classes[int(p.argmax())]} {p.max():.1%}, goldfinch {p[goldfinch]:.2e}")

# %% [markdown]
# ## FGSM
#
# Let $L(x, y)$ be the cross-entropy of the network's output for image $x$ and class $y$. To
# move *towards* a target class $t$, lower $L(x, t)$; with one step of size $\varepsilon$ in
# every pixel value, the best first-order step is along the sign of the gradient:
#
# $$x' = \mathrm{clip}_{[0, 1]}\big(x - \varepsilon\, \mathrm{sign}(\nabla_x L(x, t))\big).$$
#
# (To move *away* from the true class $y$, take $+\varepsilon\,\mathrm{sign}(\nabla_x L(x, y))$.)
#
# ### Exercise: one targeted FGSM step
#
# Write `fgsm_step(model, x, target, epsilon)`: `model` takes pixels and returns logits; `x`
# is `(N, 3, H, W)` in $[0, 1]$; `target` holds `N` class indices. Compute the summed
# cross-entropy `torch.nn.functional.cross_entropy(model(xg), target, reduction="sum")` on a
# copy `xg` of `x` that requires gradients, take its gradient, and return the clipped step
# above. Do not change `x`. Return the step detached from the autograd graph: take it from `x`
# (or inside `with torch.no_grad():`).

# %%
def fgsm_step(model, x, target, epsilon):
    """One targeted FGSM step: clip(x - epsilon * sign(grad of the loss of target), 0, 1)."""
    # BEGIN SOLUTION differentiate the cross-entropy of the target, step against its sign, clamp
    xg = x.detach().clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(xg), target, reduction="sum")
    (grad,) = torch.autograd.grad(loss, xg)
    return (x - epsilon * grad.sign()).clamp(0.0, 1.0)
    # END SOLUTION


# %% tags=["check"]
check_fgsm_step(fgsm_step)

# %% [markdown]
# One step rarely makes the network *sure*. Repeating small steps, each time projecting back
# into the $\varepsilon$-box around the original, does (projected gradient descent, Madry et
# al. 2018):
#
# $$x^{(k+1)} = \mathrm{clip}_{[0, 1]}\Big(\mathrm{clip}_{[x - \varepsilon,\, x + \varepsilon]}
#   \big(x^{(k)} - \alpha\, \mathrm{sign}(\nabla_x L(x^{(k)}, t))\big)\Big), \qquad x^{(0)} = x.$$
#
# ### Exercise: the whole targeted attack
#
# Write `targeted_attack(model, x, target, epsilon, step, steps)`: `steps` times, take a
# targeted FGSM step of size `step` (your `fgsm_step`) **at the current image**, then project
# into the box around the **original** `x` (`torch.min(torch.max(x_adv, x - epsilon),
# x + epsilon)`), then clamp to $[0, 1]$. Return the attacked images, detached. Do not change
# `x`.

# %%
def targeted_attack(model, x, target, epsilon, step, steps):
    """`steps` projected targeted FGSM steps of size `step` within `epsilon` of x."""
    # BEGIN SOLUTION loop: fgsm_step at the current image, project around the original x, clamp
    x_adv = x.detach().clone()
    for _ in range(steps):
        x_adv = fgsm_step(model, x_adv, target, step)
        x_adv = torch.min(torch.max(x_adv, x - epsilon), x + epsilon).clamp(0.0, 1.0)
    return x_adv.detach()
    # END SOLUTION


# %% tags=["check"]
check_targeted_attack(targeted_attack)

# %% [markdown]
# **Predict, then run.** Your attack, on Chelsea, towards "goldfinch", 12 steps of one grey
# level within a budget of 8: will the network call it a goldfinch?
#
# <details><summary>Answer</summary>
#
# Yes, and it is sure of it: after 12 steps nearly all the probability is on "goldfinch"
# (the package's `fool` below needs only 6 steps for 99%). The largest change is 8 grey
# levels, the budget, so the photo looks the same.
# </details>

# %% tags=["check"]
mine = targeted_attack(pm, x, torch.tensor([goldfinch]), 8 / 255, 1 / 255, 12)
with torch.no_grad():
    p_mine = pm(mine).softmax(dim=1)[0]
print(f"after 12 steps: {loaded.classes[int(p_mine.argmax())]}, goldfinch {p_mine[goldfinch]:.1%}, "
      f"largest change {(mine - x).abs().max().item() * 255:.1f} grey levels")

# %% [markdown]
# `vizwidgets.synthesis.fool` runs the same loop, with steps of one grey level, until the
# target's probability reaches the confidence asked for.

# %%
attack = fool(loaded, "chelsea", "goldfinch", confidence=0.99, epsilon=8 / 255, progress=False)
print(f"steps: {attack.steps.item()}, goldfinch probability {attack.confidence[0][-1]:.3f}, "
      f"largest change {attack.linf.item() * 255:.1f} grey levels")

fig, axes = plt.subplots(1, 4, figsize=(15, 4))
axes[0].imshow(attack.originals[0].permute(1, 2, 0))
axes[0].set_title("original: Egyptian cat")
axes[1].imshow(attack.images[0].permute(1, 2, 0))
axes[1].set_title(f"{loaded.classes[attack.predicted.item()]} ({attack.confidence[0][-1]:.0%})")
axes[2].imshow((attack.perturbation[0].permute(1, 2, 0) * 255 / 16 + 0.5).clamp(0, 1))
axes[2].set_title("the change, x16 (grey: none)")
axes[3].plot(attack.confidence[0], marker="o")
axes[3].set_xlabel("step")
axes[3].set_ylabel("goldfinch probability")
for ax in axes[:3]:
    ax.axis("off")
plt.show()

# %% [markdown]
# ## What do the explanations say?
#
# Grad-CAM for "goldfinch" on the fooled image points at the cat's face: the change is spread
# over every pixel, and the features that now vote for the bird are those of the cat's eyes
# and nose. An explanation method explains the network, not the world: it cannot tell us the
# image was tampered with.

# %%
fooled_input = pm.normalize(attack.images)
fig, axes = plt.subplots(1, 2, figsize=(9, 4))
for ax, (title, image, target) in zip(axes, [("original, Egyptian cat", pm.normalize(attack.originals), 285),
                                              ("fooled, goldfinch", fooled_input, goldfinch)]):
    result = grad_cam(loaded, image, target)
    ax.imshow(overlay(loaded.preprocess.inverse(image[0]), normalize(result, scaling="max")[0]))
    ax.set_title(f"Grad-CAM: {title}")
    ax.axis("off")
colorbar(axes[-1], "jet", label="Grad-CAM / its maximum")
plt.show()

# %% [markdown]
# ## A goldfinch made of noise
#
# Nguyen et al. (2015) showed that networks give high confidence to images that are nothing
# like the class. Start from uniform noise and climb the log-probability of "goldfinch",
# with no budget at all:

# %%
noise = fooling_image(loaded, "goldfinch", confidence=0.99, progress=False)
fig, axes = plt.subplots(1, 2, figsize=(8, 4))
axes[0].imshow(noise.originals[0].permute(1, 2, 0))
axes[0].set_title(f"noise: goldfinch {noise.confidence[0][0]:.1e}")
axes[1].imshow(noise.images[0].permute(1, 2, 0))
axes[1].set_title(f"after {noise.steps.item()} steps: goldfinch {noise.confidence[0][-1]:.0%}")
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Explore
#
# The widget runs the targeted attack with the controls' values and shows the image as it
# changes. Try a smaller budget (2 or 4 grey levels), other targets, other images.

# %%
widget = FoolingWidget(loaded)
widget.widget

# %% [markdown]
# ## Recap
#
# - **FGSM**: one step of $\varepsilon$ along the sign of the loss gradient; **iterated and
#   projected** (PGD-style), it reaches any confidence within a budget of a few grey levels.
# - The perturbation is spread over the whole image and invisible; explanations of the
#   fooled image follow the network, not what we see.
# - Networks give high confidence to **noise** that resembles nothing.

# %% [markdown]
# ## References
#
# - Goodfellow, Shlens & Szegedy 2015, "Explaining and Harnessing Adversarial Examples"
#   (FGSM): <https://arxiv.org/abs/1412.6572>
# - Szegedy, Zaremba, Sutskever, Bruna, Erhan, Goodfellow & Fergus 2014, "Intriguing
#   properties of neural networks": <https://arxiv.org/abs/1312.6199>
# - Madry, Makelov, Schmidt, Tsipras & Vladu 2018, "Towards Deep Learning Models Resistant to
#   Adversarial Attacks": <https://arxiv.org/abs/1706.06083>
# - Nguyen, Yosinski & Clune 2015, "Deep Neural Networks are Easily Fooled: High Confidence
#   Predictions for Unrecognizable Images": <https://arxiv.org/abs/1412.1897>
