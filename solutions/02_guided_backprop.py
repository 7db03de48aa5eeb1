# %% [markdown]
# # Guided backpropagation and the deconvnet: sharper maps, and a warning
#
# The gradient maps of notebook 01 are noisy. Two older ideas change only how the
# backward pass goes through the rectifiers (ReLU, and ReLU6 in our network), and give
# strikingly sharp pictures. In this notebook you will:
#
# - write the three backward rules for a rectifier: the gradient's, the **deconvnet**'s
#   (Zeiler & Fergus 2014) and **guided backpropagation**'s (Springenberg, Dosovitskiy, Brox
#   & Riedmiller 2015);
# - build a rectifier with a modified backward pass as a `torch.autograd.Function`;
# - compare the maps on the cat;
# - run two checks that show what the sharp maps are *not*: they hardly depend on the class,
#   and hardly on the network's top layers (Adebayo et al. 2018, "Sanity Checks for Saliency
#   Maps"; Nie, Zhang & Patel 2018).

# %%
import warnings

import matplotlib.pyplot as plt
import torch
from torch import nn

from vizwidgets.attribution import deconvnet, gradient, guided_backprop
from vizwidgets.checks import check_guided_relu_function, check_rectifier_rules
from vizwidgets.metrics import randomization_check, spearman
from vizwidgets.models import load_model
from vizwidgets.viz import colorbar, normalize

loaded = load_model()
x = loaded.preprocess("chelsea")
cat = loaded.classes.index("Egyptian cat")
picture = loaded.preprocess.inverse(x[0])

# %% [markdown]
# ## Three ways back through a rectifier
#
# A rectifier computes $y = \max(x, 0)$ (ReLU6 also caps at 6: $y = \min(\max(x, 0), 6)$).
# In the backward pass it receives $g = \partial S / \partial y$ and must send something back
# to $x$. Three rules:
#
# | rule | sends back | in words |
# | --- | --- | --- |
# | gradient | $g \cdot [x > 0]$ | the chain rule: only where the unit was active |
# | deconvnet | $\max(g, 0)$ | rectify the signal going back, ignore the forward pass |
# | guided backpropagation | $\max(g, 0) \cdot [x > 0]$ | both: active units, positive signal only |
#
# (For ReLU6 "active" means $0 < x < 6$.) Everything else in the network backpropagates as
# usual. Guided backpropagation keeps only paths along which *increasing* every unit would
# increase the score, so negative evidence never reaches the pixels.
#
# ### Exercise 1: the three rules
#
# Write `rectifier_backward(grad, x, rule)` for a plain ReLU (no cap): `grad` and `x` have the
# same shape; `rule` is `"gradient"`, `"deconvnet"` or `"guided"`; return what goes back to
# `x`. Useful: `grad.clamp(min=0)` and `(x > 0)`, which you can multiply by a float tensor.

# %%
def rectifier_backward(grad, x, rule):
    """What a ReLU sends back to its input under each rule."""
    # BEGIN SOLUTION use (x > 0) as the mask and grad.clamp(min=0) as the rectified signal
    if rule == "gradient":
        return grad * (x > 0)
    if rule == "deconvnet":
        return grad.clamp(min=0)
    if rule == "guided":
        return grad.clamp(min=0) * (x > 0)
    raise ValueError(f"unknown rule {rule!r}")
    # END SOLUTION


# %% tags=["check"]
check_rectifier_rules(rectifier_backward)

# %% [markdown]
# ### Exercise 2: a rectifier with a guided backward pass
#
# PyTorch lets us choose a function's backward pass with `torch.autograd.Function`: a
# `forward(ctx, x)` that computes the output and saves what the backward needs
# (`ctx.save_for_backward(x)`), and a `backward(ctx, grad)` that returns what goes back to
# `x` (read the saved tensor with `(x,) = ctx.saved_tensors`).
#
# Complete `GuidedReLU`: the forward is an ordinary ReLU (`x.clamp(min=0)`), the backward the
# guided rule. Use it as `GuidedReLU.apply(x)`.

# %%
class GuidedReLU(torch.autograd.Function):
    """max(x, 0) forward; guided backpropagation's rule backward."""

    @staticmethod
    def forward(ctx, x):
        # BEGIN SOLUTION save x for the backward pass, return the ReLU of x
        ctx.save_for_backward(x)
        return x.clamp(min=0)
        # END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        # BEGIN SOLUTION read x back and apply the guided rule
        (x,) = ctx.saved_tensors
        return grad.clamp(min=0) * (x > 0)
        # END SOLUTION


# %% tags=["check"]
check_guided_relu_function(GuidedReLU)

# %% [markdown]
# `vizwidgets` does the same for every `nn.ReLU` and `nn.ReLU6` of a model: for the duration
# of one call it swaps each rectifier module for one that uses such a function, and puts the
# originals back afterwards (in-place flags included), even if the call fails.

# %%
maps = {
    "gradient": gradient(loaded, x, cat),
    "deconvnet": deconvnet(loaded, x, cat),
    "guided backpropagation": guided_backprop(loaded, x, cat),
}
fig, axes = plt.subplots(1, 4, figsize=(16, 4))
axes[0].imshow(picture)
axes[0].set_title("the image")
for ax, (name, result) in zip(axes[1:], maps.items()):
    shown = ax.imshow(
        normalize(result, sign="absolute", scaling="percentile", reduce="max_abs")[0], cmap="gray", vmin=0, vmax=1
    )
    ax.set_title(name)
colorbar(axes[-1], mappable=shown, label="max |value| / 99th percentile")
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# Guided backpropagation picks out the eyes, the nose and the outline of the face more
# cleanly than the gradient, with less speckle in the background. The deconvnet's map is
# dominated by a regular grid: it ignores which units were active, so what remains is mostly
# the footprint of the stride-2 convolutions (the "checkerboard" pattern of transposed
# convolutions). On VGG, with no strides inside its blocks, both look famously crisper.
# Sharper is not the same as faithful, though. Two experiments.

# %% [markdown]
# ## Does the map depend on the class?
#
# A map that explains "Egyptian cat" should differ from one that explains "plastic bag".
# Compute each method for both classes and compare the two maps by Spearman's rank
# correlation (1: the same order of pixels; 0: unrelated).

# %%
bag = loaded.classes.index("plastic bag")
for name, method in [("gradient", gradient), ("guided backpropagation", guided_backprop)]:
    for_cat = method(loaded, x, cat).abs().amax(dim=1)
    for_bag = method(loaded, x, bag).abs().amax(dim=1)
    print(f"{name:24} cat vs plastic bag: rank correlation {spearman(for_cat, for_bag):.2f}")

# %% [markdown]
# ## Does the map depend on the network?
#
# Adebayo et al. (2018) randomise a trained network's weights, layer by layer from the top,
# and watch the map. A map that explains the network must change when the network does.
# `randomization_check` does this on a copy of the model (the original is never touched).

# %%
top_layers = ["classifier", "head", "blocks.15", "blocks.14", "blocks.13"]
fig, ax = plt.subplots(figsize=(7, 3.5))
for name in ("gradient", "guided_backprop"):
    check = randomization_check(loaded, x, name, cat, layers=top_layers)
    ax.plot(range(1, len(top_layers) + 1), check.correlations[:, 0], marker="o", label=name)
ax.set_xticks(range(1, len(top_layers) + 1), ["+ " + layer for layer in top_layers], rotation=20)
ax.set_ylabel("rank correlation with the original map")
ax.set_ylim(-0.2, 1.05)
ax.legend()
ax.set_title("randomising the network from the top")
plt.show()

# %% [markdown]
# The gradient's map changes as soon as the classifier is random; guided backpropagation's
# barely moves, even with the top five layers random. Its picture comes mostly from the image
# and the lower layers, which is why it looks like an edge detector: sharp, but a poor answer
# to "why did *this network* say *cat*?". Keep this in mind whenever a method's maps look
# beautiful: notebook 09 turns such checks into numbers.

# %% [markdown]
# ## Self-check: predict, then run
#
# A tiny network: two inputs pass unchanged into a ReLU, and the score is
# $S = 3 h_1 - 4 h_2$. At $x = (-1, 2)$ the ReLU receives $(-1, 2)$ and, going back, the
# signal $g = (3, -4)$. What does each rule send back to $x$: the gradient, the deconvnet,
# guided backpropagation?
#
# <details><summary>Answer</summary>
#
# - gradient: $g \cdot [x > 0] = (0, -4)$: the first unit was off;
# - deconvnet: $\max(g, 0) = (3, 0)$: it ignores that the first unit was off, and drops the
#   negative signal;
# - guided backpropagation: both masks, $(0, 0)$: the only active unit speaks *against* the
#   score, so nothing is left. Guided maps never show negative evidence.
#
# </details>

# %%
tiny = nn.Sequential(nn.Flatten(), nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 1, bias=False))
with torch.no_grad():
    tiny[1].weight.copy_(torch.eye(2))
    tiny[3].weight.copy_(torch.tensor([[3.0, -4.0]]))
point = torch.tensor([-1.0, 2.0]).view(1, 2, 1, 1)
with warnings.catch_warnings():  # the package warns when a map is all zero
    warnings.simplefilter("ignore")
    for name, method in [("gradient", gradient), ("deconvnet", deconvnet), ("guided", guided_backprop)]:
        print(f"{name:10}", method(tiny, point, 0).flatten().tolist())

# %% [markdown]
# ## Recap
#
# - The gradient, the deconvnet and guided backpropagation differ **only** in how rectifiers
#   pass signals back: masked, rectified, or both.
# - A custom `torch.autograd.Function` sets a backward rule; swapping modules for the length
#   of one call applies it to a whole network and leaves the network as it was.
# - Guided backpropagation's maps are sharp but nearly **class-insensitive** and nearly
#   **independent of the top layers**: it fails the sanity check that the gradient passes.
# - Next, notebook 03: the CAM family, coarse but class-discriminative; guided Grad-CAM
#   multiplies the two.

# %% [markdown]
# ## References
#
# - Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional Networks" (the
#   deconvnet): <https://arxiv.org/abs/1311.2901>
# - Springenberg, Dosovitskiy, Brox & Riedmiller 2015, "Striving for Simplicity: The All
#   Convolutional Net" (guided backpropagation): <https://arxiv.org/abs/1412.6806>
# - Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim 2018, "Sanity Checks for Saliency Maps":
#   <https://arxiv.org/abs/1810.03292>
# - Nie, Zhang & Patel 2018, "A Theoretical Explanation for Perplexing Behaviors of
#   Backpropagation-based Visualizations": <https://arxiv.org/abs/1805.07039>
