# %% [markdown]
# # Saliency: which pixels does the score depend on?
#
# The network said "Egyptian cat". Which pixels made it say so? The simplest answer asks
# the network itself: if we nudged one pixel, how much would the cat score move? That is a
# derivative, and backpropagation computes all of them at once.
#
# In this notebook you will:
#
# - compute the gradient of a class score with respect to the input image, yourself;
# - turn it into a **saliency map** (Simonyan, Vedaldi & Zisserman 2014);
# - see why raw gradients look noisy, and average the noise away with **SmoothGrad**
#   (Smilkov, Thorat, Kim, Viégas & Wattenberg 2017);
# - compare with **gradient x input** (Shrikumar et al. 2016) and explore all three in a
#   widget.
#
# Exercises work as in the welcome notebook: replace `raise NotImplementedError(...)` in the
# cell marked `# YOUR CODE HERE`, then run the check below it.

# %%
import matplotlib.pyplot as plt
import torch

from vizwidgets.attribution import gradient, gradient_x_input, smoothgrad
from vizwidgets.checks import check_input_gradient, check_saliency_map, check_smoothgrad
from vizwidgets.models import load_model
from vizwidgets.viz import colorbar, normalize, overlay
from vizwidgets.widgets import Explorer

loaded = load_model()
x = loaded.preprocess("chelsea")  # (1, 3, 224, 224)
target = loaded.classes.index("Egyptian cat")
print("class", target, loaded.classes[target], "- predicted:", loaded.predict("chelsea", k=1)[0].label)

# %% [markdown]
# ## The idea
#
# Write $S_c(x)$ for the score (logit) of class $c$ for the image $x$. Near $x$, a smooth
# function is almost linear:
#
# $$S_c(x + \delta) \approx S_c(x) + \nabla_x S_c(x) \cdot \delta .$$
#
# So the gradient $\nabla_x S_c(x)$, one number per pixel and colour channel, says how much
# the score would change if that value changed a little. Simonyan et al. (2014) call its
# magnitude, maximised over the three colour channels, the image-specific **saliency map**:
#
# $$M_{ij} = \max_{k \in \{R, G, B\}} \left| \frac{\partial S_c}{\partial x_{kij}} \right| .$$
#
# Two details matter. We differentiate the **logit**, not the probability: the probability
# also rises when other classes fall, which mixes in evidence *against* other classes. And we
# differentiate with respect to the **input**, not the weights: the network stays as it is.

# %% [markdown]
# ### Exercise 1: the input gradient
#
# Write `input_gradient(model, x, target)`:
#
# - `model` is a `torch.nn.Module` that maps a batch `(N, 3, H, W)` to logits `(N, classes)`;
# - `x` is a float tensor `(N, 3, H, W)`; `target` a tensor of `N` class indices;
# - return $\partial S_{target_n} / \partial x_n$ for each image, shape `(N, 3, H, W)`.
#
# Steps: make a copy of `x` that requires gradients (`x.detach().clone().requires_grad_(True)`),
# run the model, pick each image's target logit (`logits[torch.arange(N), target]`), sum them
# (each image's score depends only on its own pixels, so one backward pass gives every
# image's gradient), then `torch.autograd.grad(total, copy)`. Do not change `x` itself.

# %%
def input_gradient(model, x, target):
    """d logit[target] / d x for each image of the batch, shape (N, 3, H, W)."""
    # BEGIN SOLUTION differentiate the sum of the target logits with respect to a copy of x
    inputs = x.detach().clone().requires_grad_(True)
    logits = model(inputs)
    scores = logits[torch.arange(len(target)), target]
    (grad,) = torch.autograd.grad(scores.sum(), inputs)
    return grad
    # END SOLUTION


# %% tags=["check"]
check_input_gradient(input_gradient)

# %% [markdown]
# ### Exercise 2: the saliency map
#
# Write `saliency_map(grad)`: from a gradient `(N, 3, H, W)`, the map `(N, H, W)` of the
# largest absolute value over the colour channels, as in the formula above. Useful:
# `.abs()` and `.amax(dim=1)`.

# %%
def saliency_map(grad):
    """max over colour channels of |grad|: (N, 3, H, W) -> (N, H, W)."""
    # BEGIN SOLUTION take the absolute value, then the maximum over dim 1
    return grad.abs().amax(dim=1)
    # END SOLUTION


# %% tags=["check"]
check_saliency_map(saliency_map)

# %% [markdown]
# Now on the cat. The package's `gradient(...)` computes the same input gradient (it also
# puts the model in eval mode and freezes its weights for the call, so that nothing about the
# network changes); your function must agree with it.

# %% tags=["check"]
mine = saliency_map(input_gradient(loaded.model, x, torch.tensor([target])))
theirs = gradient(loaded, x, target).abs().amax(dim=1)
print("largest difference from vizwidgets:", (mine - theirs).abs().max().item())

# %%
raw = gradient(loaded, x, target)
picture = loaded.preprocess.inverse(x[0])
fig, axes = plt.subplots(1, 3, figsize=(14, 4))
axes[0].imshow(picture)
axes[0].set_title("the image")
shown = axes[1].imshow(raw.abs().amax(dim=1)[0], cmap="gray")
colorbar(axes[1], mappable=shown, label="max |gradient| (logit per unit of input)")
axes[1].set_title("saliency: max |gradient|")
shown = axes[2].imshow(
    normalize(raw, sign="absolute", scaling="percentile", reduce="max_abs")[0], cmap="gray", vmin=0, vmax=1
)
colorbar(axes[2], mappable=shown, label="share of the 99th percentile")
axes[2].set_title("the same, clipped at the 99th percentile")
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# The raw map is speckled: a few pixels dominate and the rest look like noise. Clipping at
# the 99th percentile (what `vizwidgets.viz.normalize(..., scaling="percentile")` does)
# makes the structure visible: the cat's eyes, nose and the edges of its face.
#
# Why so noisy? The network is piecewise linear (ReLU6 units switch on and off), so its
# gradient jumps from one pixel neighbourhood to the next. The gradient describes the score
# in an infinitely small neighbourhood of $x$; a slightly different image has a quite
# different gradient.

# %% [markdown]
# ## SmoothGrad
#
# Smilkov et al. (2017) average the gradient over noisy copies of the image:
#
# $$\hat M_c(x) = \frac{1}{n} \sum_{s=1}^{n} \nabla_x S_c\left(x + \varepsilon_s\right),
# \qquad \varepsilon_s \sim \mathcal N(0, \sigma^2),$$
#
# with $\sigma$ a fraction (the *noise level*, 10 to 20 %) of the input's range,
# $\sigma = \text{noise} \cdot (x_{max} - x_{min})$. The noise that makes single gradients
# jump averages out; what stays is what the score depends on around $x$, not at $x$ alone.
#
# ### Exercise 3: SmoothGrad
#
# Write `smooth_gradient(model, x, target, samples, noise, generator)` using your
# `input_gradient`. So that the check can reproduce your random draws, draw the noise from
# `generator`, either one sample at a time, in order:
#
# ```python
# sigma = noise * (x.max() - x.min())
# eps = torch.randn(x.shape, generator=generator) * sigma
# ```
#
# or all samples in one call, `eps = torch.randn((samples, *x.shape), generator=generator) *
# sigma`, using `eps[s]` for sample $s$. Compute each sample's gradient afresh, as your
# `input_gradient` does: a `.grad` that is never zeroed adds the gradients up. Return the mean
# of the `samples` gradients, shape `(N, 3, H, W)`.

# %%
def smooth_gradient(model, x, target, samples, noise, generator):
    """The mean input gradient over `samples` noisy copies of x (Smilkov et al. 2017)."""
    # BEGIN SOLUTION loop over samples: draw eps, add it to x, sum input_gradient, divide
    sigma = noise * (x.max() - x.min())
    total = torch.zeros_like(x)
    for _ in range(samples):
        eps = torch.randn(x.shape, generator=generator) * sigma
        total += input_gradient(model, x + eps, target)
    return total / samples
    # END SOLUTION


# %% tags=["check"]
check_smoothgrad(smooth_gradient)

# %% [markdown]
# The package's `smoothgrad` batches the noisy copies (8 per forward pass by default, the
# fastest on a 2-core CPU) and has the same options. To compare the maps we sum $|\hat M|$
# over the colour channels and divide by its 99th percentile, clipping the few pixels above
# it, so that each map uses the whole colour scale. How do we know that the average has less
# noise? Run SmoothGrad twice with different random draws (`seed`) and correlate the two maps:
# pure noise would give 0, a map that no longer depends on the draws 1. The number in each
# title is that **agreement between two runs**.

# %%
def agreement(first, second):
    """Pearson correlation between two (H, W) maps."""
    return torch.corrcoef(torch.stack([first.flatten(), second.flatten()]))[0, 1].item()


fig, axes = plt.subplots(1, 4, figsize=(16, 4))
axes[0].imshow(picture)
axes[0].set_title("the image")
for ax, samples in zip(axes[1:], (1, 8, 32)):
    runs = [
        normalize(
            smoothgrad(loaded, x, target, samples=samples, noise=0.2, seed=seed), scaling="percentile", reduce="abs_sum"
        )[0]
        for seed in (0, 1)
    ]
    shown = ax.imshow(runs[0], cmap="inferno", vmin=0, vmax=1)
    plural = "s" if samples > 1 else ""
    ax.set_title(f"SmoothGrad, {samples} sample{plural}\nagreement of two runs {agreement(*runs):.2f}")
colorbar(axes[-1], mappable=shown, label="sum |gradient| / 99th percentile")
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# One noisy sample is speckle with a hint of the head; two runs of it barely agree (about
# 0.15). With 8 samples the face comes out of the background, and with 32 the eyes and the
# outline of the face are clearer and two runs agree more than twice as well (about 0.4).
# The noise of an average falls like $1/\sqrt{n}$, so each further gain costs four
# times the samples. We used a noise level of 0.2, at the top of the paper's range: with much
# less, the noisy copies stay in nearly the same linear region and their gradients hardly
# differ; with much more, the copies stop looking like the cat.

# %% [markdown]
# ## Gradient x input
#
# The gradient says how sensitive the score is to each value, not how much each value
# *contributed*. A pixel the score is sensitive to but whose value is 0 contributes nothing.
# Multiplying by the input, $x \odot \nabla_x S_c(x)$ (Shrikumar et al. 2016), gives a
# first-order estimate of each value's contribution: for a linear model $S = w \cdot x$ it is
# exactly $w_i x_i$, and the values sum to the score. Its sign matters: positive values
# speak for the class, negative against.

# %% [markdown]
# Gradient x input has a few very large values (on the eyes and the nose) and many small ones.
# Scaled by its maximum, almost every pixel would be near 0, and each panel would look like the
# plain photo or a white square. So we sum over the colour channels, divide by the 99th
# percentile of $|x \odot \nabla_x S_c|$ and clip to $[-1, 1]$: 0 stays 0, and the colour bar
# says how far from 0 a colour is. Red is for the cat, blue against; the first two panels draw
# each half over a grey copy of the photo.

# %%
contributions = gradient_x_input(loaded, x, target)
signed = normalize(contributions, sign="all", scaling="percentile")[0]  # (224, 224) in [-1, 1]
fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
dimmed = 0.25 + 0.5 * picture.mean(axis=-1, keepdims=True).repeat(3, axis=-1)  # a grey photo
axes[0].imshow(overlay(dimmed, signed.clamp(min=0), alpha=1.0, cmap="Reds"))
axes[0].set_title("gradient x input: for the cat")
colorbar(axes[0], "Reds", label="share of the 99th percentile")
axes[1].imshow(overlay(dimmed, (-signed).clamp(min=0), alpha=1.0, cmap="Blues"))
axes[1].set_title("against the cat")
colorbar(axes[1], "Blues", label="share of the 99th percentile")
shown = axes[2].imshow(signed, cmap="RdBu_r", vmin=-1, vmax=1)
axes[2].set_title("signed (red: for, blue: against)")
colorbar(axes[2], mappable=shown, label="signed share of the 99th percentile")
for ax in axes:
    ax.axis("off")
plt.show()
print(f"pixels for the cat: {(signed > 0).float().mean():.0%}, against: {(signed < 0).float().mean():.0%}; "
      f"sum of all values {contributions.sum().item():.2f}")

# %% [markdown]
# The evidence for and against sits in the same places, the eyes, the nose and the edges of
# the face, often in neighbouring pixels: gradient x input is as speckled as the gradient it
# comes from. Its values still add up to something meaningful only for a linear model; for the
# network, notebook 04 gives a method whose values provably add up to a change of the score.

# %% [markdown]
# ## Explore
#
# The explorer below computes these maps for any bundled image (or your own: upload one, or
# type a path). Try:
#
# - the gradient on `coffee`, then on `rocket`: does it find the object?
# - SmoothGrad with 1, 8 and 64 samples, and noise from 0 to 0.5;
# - another class in the class list: does the map change as much as you expect?
# - the display controls: the same numbers look very different with "max" and "percentile".

# %%
explorer = Explorer(loaded, method="gradient")
explorer.widget

# %% [markdown]
# ## Self-check: predict, then run
#
# Write down your prediction before you run each cell.
#
# 1. SmoothGrad with `noise=0`: how far is it from the plain gradient, with 4 samples?
# 2. A linear "network" $S(x) = w \cdot x + b$: what do its gradient x input values sum to?
#
# <details><summary>Answers</summary>
#
# 1. Nowhere: with no noise every copy is the image itself, so the mean of the 4 gradients is
#    the gradient (the difference printed is 0, or rounding error).
# 2. To $w \cdot x = S(x) - b$: the gradient is $w$, so the values are $w_i x_i$. The bias is
#    part of the score that no input gets: completeness holds only up to it.
#
# </details>

# %%
no_noise = smoothgrad(loaded, x, target, samples=4, noise=0.0)
print("1. largest |SmoothGrad(noise 0) - gradient|:", (no_noise - raw).abs().max().item())
linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 1))
small = torch.rand(1, 3, 2, 2)
with torch.no_grad():
    score, bias = linear(small)[0, 0].item(), linear[1].bias.item()
print(f"2. sum of gradient x input {gradient_x_input(linear, small, 0).sum().item():.4f}, "
      f"S(x) {score:.4f}, S(x) - b {score - bias:.4f}")

# %% [markdown]
# ## Recap
#
# - The **gradient** of a class logit with respect to the input says how sensitive the score
#   is to each pixel; its largest absolute value over colour channels is Simonyan et al.'s
#   **saliency map**. One forward and one backward pass.
# - Gradients of piecewise-linear networks are **noisy**; **SmoothGrad** averages them over
#   noisy copies of the image ($n$ passes).
# - **Gradient x input** estimates each value's contribution, with a sign.
# - None of these says whether the map is *right*: notebook 09 measures that, and notebook
#   02 shows a method whose sharp maps turn out to ignore the model.

# %% [markdown]
# ## References
#
# - Simonyan, Vedaldi & Zisserman 2014, "Deep Inside Convolutional Networks: Visualising Image
#   Classification Models and Saliency Maps": <https://arxiv.org/abs/1312.6034>
# - Smilkov, Thorat, Kim, Viégas & Wattenberg 2017, "SmoothGrad: removing noise by adding
#   noise": <https://arxiv.org/abs/1706.03825>
# - Shrikumar, Greenside, Shcherbina & Kundaje 2016, "Not Just a Black Box: Learning Important
#   Features Through Propagating Activation Differences": <https://arxiv.org/abs/1605.01713>
