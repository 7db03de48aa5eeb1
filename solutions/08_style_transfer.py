# %% [markdown]
# # Style transfer: content and style in a network's features
#
# Gatys, Ecker & Bethge (2016) noticed that a network's features separate *what* is in an
# image from *how* it is painted. The feature maps themselves keep the layout (content); the
# correlations between feature maps, summed over all positions, keep textures and colours but
# forget where they are (style). Optimise an image to have the content features of a photo
# and the style correlations of a painting, and you get the photo painted in that style. In
# this notebook you will:
#
# - write the **Gram matrix** and the **style loss**;
# - paint the cat in the style of *The Starry Night*;
# - see what each loss contributes.

# %%
import matplotlib.pyplot as plt
import torch

from vizwidgets.checks import check_gram_matrix, check_style_loss
from vizwidgets.features import activations
from vizwidgets.models import load_model
from vizwidgets.synthesis import STYLE_PRESETS, pixel_model, style_transfer, to_pixels
from vizwidgets.synthesis import gram_matrix as package_gram_matrix
from vizwidgets.widgets import StyleTransferWidget

loaded = load_model()
preset = STYLE_PRESETS["efficientnet_lite0"]
print("content layers:", preset.content)
print("style layers:  ", preset.style)
print(preset.why)

# %% [markdown]
# ## The Gram matrix
#
# Take a layer's output for one image, $C$ feature maps of $H \times W$, and flatten each map:
# $F$ of shape $(C, M)$ with $M = HW$. The Gram matrix
#
# $$G = \frac{1}{M} F F^\top, \qquad G_{kl} = \frac{1}{M} \sum_{p} F_{kp} F_{lp},$$
#
# is $C \times C$: how much features $k$ and $l$ fire *together*, averaged over positions.
# Where they fire is summed away.
#
# ### Exercise 1: the Gram matrix
#
# Write `gram_matrix(features)` for a batch `(N, C, H, W)`, returning `(N, C, C)`. Useful:
# `features.reshape(N, C, H * W)`, `.transpose(1, 2)` and the batched product `@`.

# %%
def gram_matrix(features):
    """F F^T / (H W) for each image: (N, C, H, W) -> (N, C, C)."""
    # BEGIN SOLUTION flatten the positions, multiply by the transpose, divide by H * W
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (h * w)
    # END SOLUTION


# %% tags=["check"]
check_gram_matrix(gram_matrix)

# %% [markdown]
# ### Exercise 2: the style loss of one layer
#
# With $A$ the Gram matrix of the style image at that layer, Gatys et al.'s style loss is
#
# $$E = \frac{1}{4 C^2} \sum_{k, l} \big(G_{kl} - A_{kl}\big)^2$$
#
# (their formula has $\frac{1}{4 C^2 M^2}$ and the Gram matrix without $\frac{1}{M}$: the same
# number). Write `style_loss(features, target_gram)` returning `(N,)`, using your
# `gram_matrix`.

# %%
def style_loss(features, target_gram):
    """sum((G - A)^2) / (4 C^2) for each image: (N,)."""
    # BEGIN SOLUTION Gram matrix of the features, squared difference to the target, sum, divide by 4 C^2
    gram = gram_matrix(features)
    c = gram.shape[-1]
    return ((gram - target_gram) ** 2).sum(dim=(1, 2)) / (4 * c * c)
    # END SOLUTION


# %% tags=["check"]
check_style_loss(style_loss)

# %% [markdown]
# ## Painting the cat
#
# `style_transfer` starts from the photo and minimises
# $\text{content weight} \cdot L_{content} + \text{style weight} \cdot \sum_l E_l +
# \text{TV weight} \cdot \mathrm{TV}$ with Adam in pixel space. 80 steps take about 6
# seconds on 2 CPU cores; the package's default, 200, gives a more finished painting.

# %%
pm = pixel_model(loaded)
result = style_transfer(loaded, "chelsea", "starry_night", steps=80, progress=False)
fig, axes = plt.subplots(1, 4, figsize=(16, 4))
axes[0].imshow(to_pixels(pm, "chelsea")[0].permute(1, 2, 0))
axes[0].set_title("content")
axes[1].imshow(to_pixels(pm, "starry_night")[0].permute(1, 2, 0))
axes[1].set_title("style")
axes[2].imshow(result.to_numpy())
axes[2].set_title(f"result: loss {result.start_loss:.0f} -> {result.final_loss:.1f}")
for key in ("content", "style", "tv"):
    axes[3].semilogy([step[key] + 1e-6 for step in result.losses], label=key)
axes[3].set_xlabel("step")
axes[3].legend()
for ax in axes[:3]:
    ax.axis("off")
plt.show()

# %% [markdown]
# The style loss falls by orders of magnitude while the content loss, zero at the start,
# rises a little: the optimiser trades a bit of the photo's exact features for the
# painting's textures. Change the balance and the picture changes. (Adam rescales its steps,
# so multiplying the whole loss by a constant changes nothing: what matters is the *ratio*
# of the weights, and once the style term dominates, raising it further changes little.)

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
for ax, weight in zip(axes, (0.01, 0.3, 1e3)):
    painted = style_transfer(loaded, "chelsea", "starry_night", steps=30, style_weight=weight, progress=False)
    ax.imshow(painted.to_numpy())
    ax.set_title(f"style weight {weight:g}")
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Explore
#
# The widget runs style transfer with the controls' values and shows the image every few
# steps. Try other content and style images from the bundle.

# %%
widget = StyleTransferWidget(loaded)
widget.widget

# %% [markdown]
# ## Self-check: predict, then run
#
# Take the cat's feature maps at `blocks.2` and shuffle their positions, the same shuffle for
# every channel, so the picture is scrambled but each position keeps all its channels. How
# much do (1) the Gram matrix and (2) the content loss (the mean squared difference of the
# features) change?
#
# <details><summary>Answers</summary>
#
# 1. Not at all (up to rounding): $G_{kl} = \frac{1}{M}\sum_p F_{kp} F_{lp}$ sums over the
#    positions $p$, and a sum does not care about their order. That is why the Gram matrix
#    carries style, which features occur together, and not content, where they are.
# 2. A lot: the content loss compares the features position by position, so a scrambled
#    picture is far from the original: more than one and a half times the features' own
#    mean square.
#
# </details>

# %%
features = activations(loaded, loaded.preprocess("chelsea"), "blocks.2")  # (1, C, H, W)
n, c, h, w = features.shape
shuffle = torch.randperm(h * w, generator=torch.Generator().manual_seed(0))
scrambled = features.reshape(n, c, h * w)[:, :, shuffle].reshape(n, c, h, w)
gram, gram_scrambled = package_gram_matrix(features), package_gram_matrix(scrambled)
relative = ((gram - gram_scrambled).abs().max() / gram.abs().max()).item()
print("1. largest change of the Gram matrix, relative:", relative)
content_loss, mean_square = ((features - scrambled) ** 2).mean(), (features**2).mean()
print(f"2. content loss {content_loss:.3f}; the features' own mean square {mean_square:.3f}")

# %% [markdown]
# ## Recap
#
# - A layer's **feature maps** carry content (what is where); their **Gram matrix** carries
#   style (which features occur together, wherever).
# - Style transfer optimises the image's pixels to match both, at layers chosen from fine to
#   coarse.
# - The style weight sets the trade-off between the photo and the painting.

# %% [markdown]
# ## References
#
# - Gatys, Ecker & Bethge 2016, "Image Style Transfer Using Convolutional Neural Networks",
#   CVPR: <https://doi.org/10.1109/CVPR.2016.265> (first as "A Neural Algorithm of Artistic
#   Style", <https://arxiv.org/abs/1508.06576>)
