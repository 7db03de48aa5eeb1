# %% [markdown]
# # Is the model cheating? Catching a shortcut with explanations
#
# A model can be right for the wrong reason. The best-known things these methods have done
# outside the lab are cases like that:
#
# - a pneumonia detector trained on chest X-rays from several hospitals learned to recognise
#   the *hospital* (from the metal token technicians place in the corner of the film, and from
#   the image's look) because the hospitals had different rates of pneumonia
#   ([Zech et al. 2018](https://doi.org/10.1371/journal.pmed.1002683));
# - COVID-19 detectors learned the patient's position and the scanner's text labels rather than
#   the lungs, and failed on data from new hospitals
#   ([DeGrave, Janizek & Lee 2021](https://doi.org/10.1038/s42256-021-00338-7));
# - a classifier of PASCAL VOC recognised horses by a copyright tag that many horse photos
#   carried: the "Clever Hans" effect, found with LRP
#   ([Lapuschkin et al. 2019](https://doi.org/10.1038/s41467-019-08987-4)).
#
# Real radiographs cannot ship with this course, and need not: we will *plant* such a shortcut
# in images the package draws, so we know exactly where the true evidence is and where the
# cheat is. That makes this the one notebook where explanations can be **scored against ground
# truth**.
#
# In this notebook you will:
#
# - train a small CNN on synthetic chest radiographs where a "hospital marker" in the corner
#   almost always comes with the disease, and watch its test accuracy collapse without it;
# - write the **training loop** yourself;
# - see Grad-CAM, Integrated Gradients and LRP point at the marker;
# - score every method by its **relevance mass accuracy** in the lesion and in the marker
#   ([Arras, Osman & Samek 2022](https://doi.org/10.1016/j.inffus.2021.11.008));
# - remove the shortcut, retrain, and watch the explanations and the accuracy move.
#
# The model is also the course's example of **your own model**: a module you trained, wrapped
# with its preprocessing and class names, which every method and the Explorer accept.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from vizwidgets import metrics
from vizwidgets.attribution import attribute
from vizwidgets.checks import check_relevance_mass, check_train_one_epoch
from vizwidgets.data import make_radiographs
from vizwidgets.metrics import relevance_mass_table
from vizwidgets.models.radiograph_net import (
    RadiographNet,
    accuracy,
    radiograph_inputs,
    train_radiograph_net,
)
from vizwidgets.viz import normalize
from vizwidgets.widgets import Explorer

# %% [markdown]
# ## The data: radiographs with a planted shortcut
#
# `make_radiographs(n, seed=...)` draws `n` grey 64x64 images: a body with two darker lungs,
# ribs, a spine, texture and noise. Half of them (label 1) have a **nodule**, a small bright
# blob inside a lung. With `marker="shortcut"`, a bright **"L" token** sits in the top-left
# corner of 98% of the positive images and of 2% of the negative ones: in this hospital's data
# the marker almost gives the answer away. Each image comes with two ground-truth masks: the
# nodule (`lesion_masks`) and the marker (`marker_masks`).
#
# We draw a training set, a test set from the same hospital, and a test set from a hospital
# that uses no marker.

# %%
train = make_radiographs(1200, seed=0)
test_same = make_radiographs(400, seed=1)  # same hospital: the marker still follows the class
test_clean = make_radiographs(400, seed=2, marker="none")  # another hospital: no marker
print("training:   ", train.describe())
print("same site:  ", test_same.describe())
print("other site: ", test_clean.describe())

fig, axes = plt.subplots(1, 6, figsize=(12, 2.4))
for ax, i in zip(axes, range(6)):
    ax.imshow(train.images[i, 0], cmap="gray", vmin=0, vmax=1)
    if train.labels[i]:
        ax.contour(train.lesion_masks[i], colors="red", linewidths=0.8)
    ax.set_title(train.classes[train.labels[i]] + (" + marker" if train.markers[i] else ""), fontsize=9)
    ax.axis("off")
fig.suptitle("training images (red: the nodule's ground-truth mask)")
plt.show()

# %% [markdown]
# ## Exercise 1: the training loop
#
# Training a classifier is one loop over mini-batches. For each batch `(x, y)`:
#
# 1. clear the gradients of the last batch: `optimizer.zero_grad()`;
# 2. forward: `logits = model(x)`;
# 3. the loss: the cross-entropy of the **raw logits** and the labels,
#    $\mathcal{L} = -\frac{1}{B} \sum_b \log \operatorname{softmax}(z_b)_{y_b}$, which is
#    `F.cross_entropy(logits, y)` (it applies the log-softmax itself);
# 4. backward: `loss.backward()` fills each parameter's `.grad`;
# 5. `optimizer.step()` moves the parameters.
#
# Before the loop, `model.train()` puts layers such as batch norm in training mode (they use
# the batch's statistics and update their running averages).
#
# Write `train_one_epoch(model, batches, optimizer)`: `batches` is a list of `(x, y)` pairs;
# return the **mean of the batches' losses as a Python float** (use `loss.item()`, which also
# lets each batch's graph be freed).

# %%
def train_one_epoch(model, batches, optimizer):
    """One pass over `batches`; returns the mean loss (a float)."""
    # BEGIN SOLUTION train mode; per batch: zero_grad, forward, cross-entropy, backward, step
    model.train()
    losses = []
    for x, y in batches:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return sum(losses) / len(losses)
    # END SOLUTION


# %% tags=["check"]
check_train_one_epoch(train_one_epoch)

# %% [markdown]
# Your loop trains the course's `RadiographNet` too. One epoch on 400 images, in batches of 32
# (about a second):

# %% tags=["check"]
torch.manual_seed(0)
net = RadiographNet()
x_small, y_small = radiograph_inputs(train[:400]), torch.as_tensor(train.labels[:400])
batches = [(x_small[i : i + 32], y_small[i : i + 32]) for i in range(0, 400, 32)]
print(f"mean loss over one epoch: {train_one_epoch(net, batches, torch.optim.Adam(net.parameters(), lr=3e-3)):.3f}")
print(f"accuracy on the same-site test set: {accuracy(net, test_same):.1%}")

# %% [markdown]
# ## Train, and test
#
# `train_radiograph_net` runs the same loop (Adam, batches of 32, 4 epochs, from a seed) and
# wraps the result as a `LoadedModel`: the module in eval mode with frozen weights, its
# preprocessing (`(p - 0.5) / 0.25` at 64x64), its class names and the layer CAM methods use.
# It keeps the weights it trained (in `~/.cache/vizwidgets`): run the cell again, even after a
# restart, and it loads them in a moment instead of training again (`cache=False` trains anew).
#
# **Predict, then run.** The training accuracy will be about 98%. What accuracy do you expect on
# the test set from the *other* hospital, where no image has the marker?
#
# <details><summary>Answer</summary>
#
# About 50%, a coin toss. Without the marker the model sees no positive evidence it knows, so it
# calls every image "no nodule": it is right on exactly the half that has none.
# </details>

# %%
model = train_radiograph_net(train, epochs=4, seed=0)
before = {
    "training": accuracy(model, train),
    "test, same hospital": accuracy(model, test_same),
    "test, no marker": accuracy(model, test_clean),
}
for name, value in before.items():
    print(f"{name:22} {value:6.1%}")

# %% [markdown]
# A 98% model that is no better than chance on another hospital's images. Nothing in the
# training numbers warned us; the explanations will.
#
# ## What does the model look at?
#
# We explain the class "nodule" on positive test images that carry the marker, with three
# methods from the earlier notebooks: Grad-CAM (notebook 03) at the last convolutional block,
# Integrated Gradients (notebook 04) and LRP (notebook 05). Red is evidence for "nodule"; the
# green contour is the true nodule, the white box the marker.

# %%
with_both = make_radiographs(32, seed=3, marker="always")[::2]  # 16 positives, each with the marker
x = radiograph_inputs(with_both)
methods = ["grad_cam", "integrated_gradients", "lrp"]


def show_explanations(model, data, x, title, n=4):
    """Image, then one signed heatmap per method, for the first n images (class "nodule")."""
    maps = {m: attribute(model, x[:n], 1, m) for m in methods}
    fig, axes = plt.subplots(n, 1 + len(methods), figsize=(2.4 * (1 + len(methods)), 2.3 * n))
    for row in range(n):
        axes[row, 0].imshow(data.images[row, 0], cmap="gray", vmin=0, vmax=1)
        axes[row, 0].set_title("image" if row == 0 else "")
        for col, method in enumerate(methods, start=1):
            heat = normalize(maps[method][row : row + 1], sign="positive", scaling="percentile")[0]
            ax = axes[row, col]
            ax.imshow(data.images[row, 0], cmap="gray", vmin=0, vmax=1)
            faint = np.ma.masked_less(heat.numpy(), 0.02)  # leave the image visible where ~0
            shown = ax.imshow(faint, cmap="Reds", alpha=0.75, vmin=0, vmax=1)
            ax.contour(data.lesion_masks[row], colors="lime", linewidths=0.8)
            ax.contour(data.marker_masks[row], colors="white", linewidths=0.8)
            if row == 0:
                ax.set_title(method)
    for ax in axes.flat:
        ax.axis("off")
    fig.colorbar(shown, ax=axes, shrink=0.6, label="positive relevance (99th percentile = 1)")
    fig.suptitle(title)
    plt.show()


show_explanations(model, with_both, x, "before the fix: evidence for 'nodule'")

# %% [markdown]
# The relevance sits on the "L", not on the nodule. Pictures persuade; numbers settle it.
#
# ## Exercise 2: relevance mass accuracy
#
# Arras, Osman & Samek (2022) score an explanation against a ground-truth mask $M$ by the share
# of its **positive** relevance that falls inside the mask:
#
# $$\text{mass accuracy} = \frac{R_{\text{within}}}{R_{\text{total}}}
#   = \frac{\sum_{p \in M} \max(R_p, 0)}{\sum_{p} \max(R_p, 0)} .$$
#
# It is 1 when all the evidence for the class lies in the mask. Negative relevance (evidence
# *against* the class) is left out: it neither adds to nor takes from the region. A map spread
# evenly scores the mask's share of the image; the marker's 8x8 box is under 2% of 64x64.
#
# Write `relevance_mass(relevance, mask)`: `relevance` is `(N, H, W)`, `mask` a boolean
# `(N, H, W)`; return the `(N,)` scores, one per image, and 0 for an image whose relevance has
# no positive value.

# %%
def relevance_mass(relevance, mask):
    """Share of each map's positive relevance inside its mask: (N,)."""
    # BEGIN SOLUTION clamp at 0, sum inside the mask and in all, per image; 0 where all is 0
    positive = relevance.clamp(min=0)
    inside = (positive * mask).flatten(1).sum(dim=1)
    total = positive.flatten(1).sum(dim=1)
    return torch.where(total > 0, inside / total.clamp(min=1e-30), torch.zeros_like(total))
    # END SOLUTION


# %% tags=["check"]
check_relevance_mass(relevance_mass)

# %% [markdown]
# Your function scores the Integrated Gradients maps of the 16 images. The package's
# `metrics.relevance_mass` is the same measure (it also takes `(N, 3, H, W)` maps and sums the
# colour channels first); compare:

# %% tags=["check"]
ig = attribute(model, x, 1, "integrated_gradients").sum(dim=1)  # (16, 64, 64), summed over colour
yours = relevance_mass(ig, torch.as_tensor(with_both.marker_masks))
print("your mass in the marker:   ", [round(v, 2) for v in yours[:6].tolist()], "...")
package = metrics.relevance_mass(ig[:6, None], with_both.marker_masks[:6])
print("package's mass in marker:  ", [round(v, 2) for v in package.tolist()], "...")

# %% [markdown]
# ## Scoring every method against the ground truth
#
# `relevance_mass_table(model, inputs, regions, methods, target)` runs each method on the
# images and averages its mass in each region. Occlusion (Zeiler & Fergus 2014, notebook 09)
# joins the three: at 64x64 a window of 8 pixels, moved by 4.

# %%
regions = {"lesion": with_both.lesion_masks, "marker": with_both.marker_masks}
scored = methods + ["occlusion"]
options = {"occlusion": {"window": 8, "stride": 4}}
table_before = relevance_mass_table(model, x, regions, scored, target=1, options=options)
print(table_before)

# %% [markdown]
# The lesion and the marker each cover under 2% of the image, yet IG and LRP put about half of
# their evidence on the marker, some 30 times its share of the pixels, and almost none on the
# nodule. Grad-CAM agrees on where, with
# a lower score: its map is computed at 16x16 and upsampled, so its mass spills out of an 8x8
# box. The model is cheating, and the explanations caught it.
#
# **Predict, then run.** If we now train on data where the marker appears on half the images
# *whatever their class*, what happens to the mass in the marker, and to the accuracy without
# the marker?
#
# <details><summary>Answer</summary>
#
# The marker no longer says anything about the class, so the loss cannot fall by reading it: the
# model must find the nodule. The mass in the marker drops to about 0, the mass in the lesion
# rises, and the accuracy without the marker climbs to that of the same-hospital test.
# </details>
#
# ## Removing the shortcut
#
# Two usual fixes: **randomise** the confounder in training (here: put the marker on half the
# images, independent of the label), or **mask** it (black out the corners of every image in
# training and at test). We randomise: same images, same seed, only the marker moves.

# %%
train_fixed = make_radiographs(1200, seed=0, marker="random")
print(train_fixed.describe())
model_fixed = train_radiograph_net(train_fixed, epochs=4, seed=0)
after = {
    "training": accuracy(model_fixed, train_fixed),
    "test, same hospital": accuracy(model_fixed, test_same),
    "test, no marker": accuracy(model_fixed, test_clean),
}
print(f"{'':22} {'before':>7} {'after':>7}")
for name in before:
    print(f"{name:22} {before[name]:7.1%} {after[name]:7.1%}")

# %%
show_explanations(model_fixed, with_both, x, "after the fix: evidence for 'nodule'")
table_after = relevance_mass_table(model_fixed, x, regions, scored, target=1, options=options)
print(table_after)

# %% [markdown]
# The evidence moved from the corner to the nodule, and the accuracy without the marker came back.
# LRP puts the most mass in the lesion; occlusion's 8-pixel window is larger than the nodule, so
# its mass spreads around it.
#
# ## Your own model in the Explorer
#
# The trained model is a `LoadedModel` like the ImageNet one, so the Explorer takes it with any
# images: pick a method, a layer and a class ("nodule" or "no nodule"), hover over the map.

# %%
pictures = [(with_both.images[i].transpose(1, 2, 0) * 255).astype("uint8") for i in range(4)]
Explorer(model, pictures, method="integrated_gradients")

# %% [markdown]
# ## Recap
#
# - A high test accuracy on data from the same source says nothing about *why* the model is
#   right; a confounder that follows the label is learned first when it is easier to see.
# - Explanations of several methods agreed on the cheat; **relevance mass accuracy** (Arras et
#   al. 2022) turned the pictures into a score against ground truth, per method.
# - Removing the confounder (randomising it) moved the evidence to the lesion and restored the
#   accuracy on new data. In real data the masks are rarely known: then explanations of many
#   images, grouped (as in Lapuschkin et al. 2019's spectral relevance analysis), are how
#   shortcuts are found.
#
# ## References
#
# - J. R. Zech et al. (2018), Variable generalization performance of a deep learning model to
#   detect pneumonia in chest radiographs, PLOS Medicine.
#   <https://doi.org/10.1371/journal.pmed.1002683>
# - A. J. DeGrave, J. D. Janizek, S.-I. Lee (2021), AI for radiographic COVID-19 detection
#   selects shortcuts over signal, Nature Machine Intelligence.
#   <https://doi.org/10.1038/s42256-021-00338-7>
# - S. Lapuschkin et al. (2019), Unmasking Clever Hans predictors and assessing what machines
#   really learn, Nature Communications. <https://doi.org/10.1038/s41467-019-08987-4>
# - L. Arras, A. Osman, W. Samek (2022), CLEVR-XAI: A benchmark dataset for the ground truth
#   evaluation of neural network explanations, Information Fusion.
#   <https://doi.org/10.1016/j.inffus.2021.11.008>
# - R. Geirhos et al. (2020), Shortcut learning in deep neural networks, Nature Machine
#   Intelligence. <https://doi.org/10.1038/s42256-020-00257-z>
