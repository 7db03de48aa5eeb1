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
# - write the **total variation** regulariser, and the gradient-ascent loop itself;
# - grow a class visualisation with and without the tricks;
# - visualise channels from early to late layers, and browse feature maps.

# %%
import matplotlib.pyplot as plt
import torch

from vizwidgets.checks import check_gradient_ascent, check_total_variation
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
# ## The climb itself
#
# Under every visualisation is a loop of gradient **ascent** on the image. Gradients of a deep
# network vary in scale by orders of magnitude from image to image and from step to step, so
# each step divides the gradient by its mean absolute value (per image): the step size is then
# set by the learning rate alone,
#
# $$x \leftarrow \mathrm{clip}_{[0, 1]}\Big(x + \eta\, \frac{g}{\overline{|g|} + 10^{-8}}\Big),
#   \qquad g = \nabla_x\, \text{objective}(x).$$
#
# ### Exercise: gradient ascent, the whole loop
#
# Write `gradient_ascent(objective, x, steps, lr)`: `objective` maps images `(N, 3, H, W)` to
# `(N,)` scores; `x` holds the starting images in $[0, 1]$. `steps` times: take the gradient
# `g` of `objective(...).sum()` at the **current** images (on a copy that requires
# gradients), divide it by `g.abs().mean(dim=(1, 2, 3), keepdim=True) + 1e-8`, add `lr` times
# that, clamp to $[0, 1]$. Return the images, detached. Do not change `x`.

# %%
def gradient_ascent(objective, x, steps, lr):
    """`steps` normalised gradient-ascent steps on the images, clamped to [0, 1]."""
    # BEGIN SOLUTION per step: gradient at the current images, divide by its mean |g| per image, add lr times it, clamp
    current = x.detach().clone()
    for _ in range(steps):
        xg = current.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(objective(xg).sum(), xg)
        current = (current + lr * g / (g.abs().mean(dim=(1, 2, 3), keepdim=True) + 1e-8)).clamp(0, 1)
    return current.detach()
    # END SOLUTION


# %% tags=["check"]
check_gradient_ascent(gradient_ascent)

# %% [markdown]
# **Predict, then run.** Your loop, 16 steps on a grey 96 x 96 image, climbing the "goldfinch"
# logit with nothing else: will the logit rise? Will the picture show a bird?
#
# <details><summary>Answer</summary>
#
# The logit rises fast, from about 0 to about 20: twice what the network gives Chelsea's photo
# for "Egyptian cat" (10.6, notebook 00). The picture shows no bird, only colourful
# high-frequency noise. The network can be excited by patterns that mean nothing to us: the
# tricks below make the climb find patterns we can read.
# </details>

# %% tags=["check"]
goldfinch_class = loaded.classes.index("goldfinch")
start = torch.full((1, 3, 96, 96), 0.5) + 0.01 * torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
climbed = gradient_ascent(lambda images: pm(images)[:, goldfinch_class], start, 16, 0.02)
with torch.no_grad():
    before_logit, after_logit = pm(start)[0, goldfinch_class].item(), pm(climbed)[0, goldfinch_class].item()
fig, axes = plt.subplots(1, 2, figsize=(6, 3.2))
titles = [f"start: logit {before_logit:.1f}", f"16 steps: logit {after_logit:.1f}"]
for ax, image, title in zip(axes, [start, climbed], titles):
    ax.imshow(image[0].permute(1, 2, 0))
    ax.set_title(title, fontsize=10)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## A class visualisation, with and without the tricks
#
# Below, "goldfinch" three ways on a 160 x 160 image (smaller is faster; the network takes
# any size): plain pixels with no transformations and no regulariser, 64 steps; pixels with
# jitter, zoom, rotation and total variation, 64 steps; and the **Fourier parametrisation**
# (the image is made from frequency coefficients scaled like those of natural images, with
# decorrelated colours, as in Olah et al. 2017) with stronger transformations (shifts of up
# to 16 pixels, zooms from 0.8 to 1.2, rotations up to 10 degrees) for 128 steps.

# %%
settings = {
    "pixels, nothing else": dict(parametrization="pixels", jitter=0, scale=(1.0, 1.0), rotate=0.0, steps=64),
    "pixels + transformations + TV": dict(parametrization="pixels", tv=0.5, blur_every=8, steps=64),
    "Fourier + strong transformations": dict(steps=128, lr=0.1, jitter=16, scale=(0.8, 1.2), rotate=10.0),
}
fig, axes = plt.subplots(1, 3, figsize=(13, 4.6))
for ax, (title, options) in zip(axes, settings.items()):
    result = maximize(loaded, "goldfinch", size=160, progress=False, **options)
    with torch.no_grad():
        p = pm(result.image).softmax(dim=1)[0, loaded.classes.index("goldfinch")].item()
    ax.imshow(result.to_numpy())
    ax.set_title(f"{title}\nlogit {result.final_value:.0f}, p = {p:.2f}", fontsize=10)
    ax.axis("off")
plt.show()

# %% [markdown]
# All three are goldfinches for the network (probability 0.9 or more), and none is a bird you
# would recognise. Plain pixels give high-frequency texture: the easiest way to raise a logit is a
# pattern no camera would record, the adversarial side of maximisation (notebook 07). The
# transformations and total variation make the texture coarser. The Fourier picture is the
# best we can grow in a few seconds: it has a goldfinch's *parts* (bright yellow patches, black
# and white bars like its wings, a red patch like its face), scattered over the image instead
# of assembled into one bird. Published feature visualisations that show whole objects use
# thousands of steps, larger images and networks whose features are known to visualise well
# (GoogLeNet in Olah et al. 2017); on EfficientNet-Lite0, with 2 cores and a few seconds per
# picture, parts are what we get. Try more steps in the browser below if you have a minute.

# %% [markdown]
# ## Channels, from early to late
#
# Each channel of a layer is a feature detector. Early channels respond to colours and
# edges, middle ones to textures and parts, late ones to object-like patterns.
#
# One catch at the last layer: `head` ends with a ReLU6, $\min(\max(z, 0), 6)$, so its
# channels' values cannot exceed 6. Maximise a `head` channel and its mean climbs from 0 to
# exactly 6.00 within some 40 steps: every position sits at the cap, where the ReLU6's
# gradient is 0, and the image stops changing, however much further the channel's input could
# go. So for `head` we maximise the value *before* the ReLU6, the output of its batch
# normalisation, `head.bn`, which has no ceiling. (The `blocks.N` outputs end with a 1x1
# projection and no rectifier, so they have no ceiling either.)

# %%
layers = [("blocks.2", 5), ("blocks.10", 3), ("head.bn", 7)]
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
# ## Self-check: predict, then run
#
# Maximise the `head` channel 7 itself, after its ReLU6, for 64 steps. What will its value be
# at the end, and what will the last 20 steps have changed?
#
# <details><summary>Answer</summary>
#
# 6.00, the ReLU6's ceiling, reached well before the end; the last steps change almost
# nothing, because at the cap the gradient is 0 (the printed trace is flat at 6). A
# visualisation of a capped unit shows the first image that saturates it, not the image it
# responds to most.
#
# </details>

# %%
capped = maximize(loaded, Channel("head", 7), steps=64, size=160, progress=False)
every_eighth = [round(value, 2) for value in capped.trace[::8]]
print("head channel 7 every 8 steps:", every_eighth, "final", round(capped.final_value, 2))

# %% [markdown]
# ## Recap
#
# - Maximisation climbs the gradient of a unit's response with respect to the **image**.
# - Without help it finds adversarial high-frequency patterns; **transformations**,
#   **regularisers** (total variation, L2) and the **Fourier parametrisation** make
#   pictures.
# - Early channels see colours and edges, late ones object parts: the hierarchy the network
#   learned.

# %% [markdown]
# ## References
#
# - Erhan, Bengio, Courville & Vincent 2009, "Visualizing Higher-Layer Features of a Deep
#   Network", Université de Montréal technical report 1341 (no DOI or arXiv version)
# - Simonyan, Vedaldi & Zisserman 2014, "Deep Inside Convolutional Networks: Visualising Image
#   Classification Models and Saliency Maps": <https://arxiv.org/abs/1312.6034>
# - Olah, Mordvintsev & Schubert 2017, "Feature Visualization", Distill:
#   <https://doi.org/10.23915/distill.00007>
# - Mahendran & Vedaldi 2015, "Understanding Deep Image Representations by Inverting Them":
#   <https://arxiv.org/abs/1412.0035>
