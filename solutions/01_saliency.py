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
from vizwidgets.viz import normalize, overlay
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
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
axes[0].imshow(picture)
axes[0].set_title("the image")
axes[1].imshow(raw.abs().amax(dim=1)[0], cmap="gray")
axes[1].set_title("saliency: max |gradient|")
axes[2].imshow(normalize(raw, sign="absolute", scaling="percentile", reduce="max_abs")[0], cmap="gray")
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
# `input_gradient`. So that the check can reproduce your random draws, draw the noise for
# sample $s = 1, \dots, n$ **in this order and this way**:
#
# ```python
# sigma = noise * (x.max() - x.min())
# eps = torch.randn(x.shape, generator=generator) * sigma
# ```
#
# and return the mean of the `samples` gradients, shape `(N, 3, H, W)`.

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
# fastest on a 2-core CPU) and has the same options. More samples, smoother maps:

# %%
fig, axes = plt.subplots(1, 4, figsize=(14, 4))
axes[0].imshow(picture)
axes[0].set_title("the image")
for ax, samples in zip(axes[1:], (1, 8, 32)):
    smooth = smoothgrad(loaded, x, target, samples=samples, noise=0.15)
    ax.imshow(normalize(smooth, scaling="percentile", reduce="max_abs")[0], cmap="gray")
    ax.set_title(f"SmoothGrad, {samples} sample{'s' if samples > 1 else ''}")
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Gradient x input
#
# The gradient says how sensitive the score is to each value, not how much each value
# *contributed*. A pixel the score is sensitive to but whose value is 0 contributes nothing.
# Multiplying by the input, $x \odot \nabla_x S_c(x)$ (Shrikumar et al. 2016), gives a
# first-order estimate of each value's contribution: for a linear model $S = w \cdot x$ it is
# exactly $w_i x_i$, and the values sum to the score. Its sign matters: positive values
# speak for the class, negative against.

# %%
contributions = gradient_x_input(loaded, x, target)
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
axes[0].imshow(overlay(picture, normalize(contributions, sign="positive")[0]))
axes[0].set_title("gradient x input: for the cat")
axes[1].imshow(overlay(picture, normalize(contributions, sign="negative")[0]))
axes[1].set_title("against the cat")
axes[2].imshow(normalize(contributions, sign="all")[0], cmap="RdBu_r", vmin=-1, vmax=1)
axes[2].set_title("signed (red: for, blue: against)")
for ax in axes:
    ax.axis("off")
plt.show()

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
