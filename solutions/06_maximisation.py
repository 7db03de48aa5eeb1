# %% [markdown]
# # Feature and class maximisation: what does a unit want to see?
#
# So far we explained the network's answer for a given image. Now we turn the question
# around: which image would make a unit, or a class, respond the most? Start from noise and
# climb the gradient of the response with respect to the image (Erhan, Bengio, Courville &
# Vincent 2009; Simonyan, Vedaldi & Zisserman 2014 for classes). Done naively, the climb finds
# high-frequency patterns that excite the network but mean nothing to us; Olah, Mordvintsev &
# Schubert (2017, "Feature Visualization") describe what it takes to get pictures:
# regularisers, random transformations and a better parametrisation. In this notebook you
# will:
#
# - write the **total variation** regulariser;
# - grow a class visualisation with and without the tricks;
# - visualise channels from early to late layers, and browse feature maps.

# %%
import matplotlib.pyplot as plt
import torch

from vizwidgets.checks import check_total_variation
from vizwidgets.models import load_model
from vizwidgets.synthesis import Channel, maximize, pixel_model
from vizwidgets.widgets import ActivationBrowser

loaded = load_model()
pm = pixel_model(loaded)

# %% [markdown]
# ## The objective
#
# For an image $x$ (pixels in $[0, 1]$) the visualisation maximises
#
# $$\text{objective}(T(x)) - \lambda_{2} \,\overline{(x - 0.5)^2} - \lambda_{TV}\, \mathrm{TV}(x),$$
#
# where the objective is a class logit, a channel's mean activation, or one neuron; $T$ is a
# random shift, zoom and rotation drawn anew at every step (so that the image must work from
# anywhere, not only pixel-exactly); the L2 term keeps values moderate; and the **total
# variation** penalises differences between neighbouring pixels (Mahendran & Vedaldi 2015):
#
# $$\mathrm{TV}(x) = \frac{1}{(H - 1)(W - 1)} \sum_{i < H-1,\ j < W-1}\ \sum_{c}
# \Big((x_{c,i,j+1} - x_{c,i,j})^2 + (x_{c,i+1,j} - x_{c,i,j})^2\Big).$$
#
# ### Exercise: total variation
#
# Write `total_variation(x)` for `x` of shape `(N, C, H, W)`, returning `(N,)` as in the
# formula: the differences to the right neighbour and to the lower neighbour, both taken on
# the `(H - 1) x (W - 1)` positions that have both (`x[:, :, :-1, 1:] - x[:, :, :-1, :-1]`
# and `x[:, :, 1:, :-1] - x[:, :, :-1, :-1]`), squared, summed over channels, averaged over
# positions.

# %%
def total_variation(x):
    """Mean squared difference to the right and lower neighbours, summed over channels: (N,)."""
    # BEGIN SOLUTION right and down differences on the common (H-1) x (W-1) grid; square; sum channels; mean
    right = x[:, :, :-1, 1:] - x[:, :, :-1, :-1]
    down = x[:, :, 1:, :-1] - x[:, :, :-1, :-1]
    return (right**2 + down**2).sum(dim=1).mean(dim=(1, 2))
    # END SOLUTION


# %% tags=["check"]
check_total_variation(total_variation)

# %% [markdown]
# ## A class visualisation, with and without the tricks
#
# Below, "goldfinch" three ways, 64 steps each on a 160 x 160 image (smaller is faster; the
# network takes any size): plain pixels with no transformations and no
# regulariser; pixels with jitter, zoom, rotation and total variation; and the **Fourier
# parametrisation** (the image is made from frequency coefficients scaled like those of
# natural images, with decorrelated colours), the default. All three reach a high logit;
# only the last ones look like anything.

# %%
settings = {
    "pixels, nothing else": dict(parametrization="pixels", jitter=0, scale=(1.0, 1.0), rotate=0.0),
    "pixels + transformations + TV": dict(parametrization="pixels", tv=0.5, blur_every=8),
    "Fourier + transformations": dict(),
}
fig, axes = plt.subplots(1, 3, figsize=(13, 4.6))
for ax, (title, options) in zip(axes, settings.items()):
    result = maximize(loaded, "goldfinch", steps=64, size=160, progress=False, **options)
    with torch.no_grad():
        p = pm(result.image).softmax(dim=1)[0, loaded.classes.index("goldfinch")].item()
    ax.imshow(result.to_numpy())
    ax.set_title(f"{title}\nlogit {result.final_value:.0f}, p = {p:.2f}", fontsize=10)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Channels, from early to late
#
# Each channel of a layer is a feature detector. Early channels respond to colours and
# edges, middle ones to textures and parts, late ones to object-like patterns.

# %%
layers = [("blocks.2", 5), ("blocks.10", 3), ("head", 7)]
fig, axes = plt.subplots(1, len(layers), figsize=(4 * len(layers), 4.3))
for ax, (layer, channel) in zip(axes, layers):
    result = maximize(loaded, Channel(layer, channel), steps=64, size=160, progress=False)
    ax.imshow(result.to_numpy())
    ax.set_title(f"{layer}, channel {channel}\n{result.start_value:.2f} -> {result.final_value:.2f}", fontsize=10)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Browse
#
# The browser shows a layer's feature maps for an image, channel by channel, and the most
# active channels; its button grows the image that excites the chosen channel.

# %%
browser = ActivationBrowser(loaded, ["chelsea", "coffee", "butterfly"])
browser.widget

# %% [markdown]
# ## Recap
#
# - Maximisation climbs the gradient of a unit's response with respect to the **image**.
# - Without help it finds adversarial high-frequency patterns; **transformations**,
#   **regularisers** (total variation, L2) and the **Fourier parametrisation** make
#   pictures.
# - Early channels see colours and edges, late ones object parts: the hierarchy the network
#   learned.
