# %% [markdown]
# # Evaluating explanations: faithful, localised, sane?
#
# Every notebook so far produced pictures. Which ones can we trust? This notebook turns three
# questions into numbers:
#
# - **faithfulness**: if we delete the pixels a map ranks highest, does the score fall fast?
#   (deletion and insertion curves, Petsiuk, Das & Saenko 2018);
# - **localisation**: does the map point at the object? (the pointing game, Zhang et al. 2016,
#   on pictures whose object boxes we know);
# - **sanity**: does the map change when the network does? (Adebayo et al. 2018, met in
#   notebook 02).
#
# You will meet one more method, **occlusion**, which every other method can be checked
# against, write the area under a curve and the pointing game's hit test, then compare
# methods with `vizwidgets.compare`.

# %%
import matplotlib.pyplot as plt
import torch

from vizwidgets.attribution import attribute
from vizwidgets.checks import check_curve_area, check_pointing_hit
from vizwidgets.compare import compare
from vizwidgets.data import make_scene
from vizwidgets.metrics import deletion, insertion, localisation
from vizwidgets.models import load_model
from vizwidgets.viz import colorbar, normalize, overlay

loaded = load_model()
x = loaded.preprocess("chelsea")
cat = loaded.classes.index("Egyptian cat")

# %% [markdown]
# ## Occlusion: an explanation by experiment
#
# Zeiler & Fergus (2014) asked the most direct question there is: hide part of the image, does
# the score fall? Slide a $k \times k$ square of a neutral colour $v$ over the image (here
# $k = 32$ pixels, moved by a stride of $s = 16$, filled with the image's mean colour). For
# each position $w$ of the square, record the drop of the class logit,
#
# $$D_w = S_c(x) - S_c\big(x^{(w)}\big),$$
#
# where $x^{(w)}$ is the image with the square $w$ filled with $v$. A pixel $p$ gets the mean
# drop of the squares that cover it:
#
# $$M(p) = \frac{1}{|W(p)|} \sum_{w \in W(p)} D_w, \qquad W(p) = \{w : p \in w\}.$$
#
# Positive values: hiding the pixel lowers the score, so it supported the class; negative
# values: hiding it *raises* the score. The map needs no gradient and no access to the
# network's inside, only forward passes, which makes it a reference for the other methods.
# It is also the slowest method here: one forward pass per position, $(224 - 32)/16 + 1 = 13$
# positions per side, $13^2 = 169$ passes, about 3 s on 2 cores, where a gradient takes one
# forward and one backward pass. The square's size sets the map's resolution, and what the
# network makes of a flat square (which it never saw in training) is part of the answer.

# %%
maps = {method: attribute(loaded, x, cat, method) for method in ["gradient", "grad_cam", "occlusion"]}
maps["integrated_gradients"] = attribute(loaded, x, cat, "integrated_gradients", steps=16)
picture = loaded.preprocess.inverse(x[0])
drop = maps["occlusion"][0, 0]
fig, axes = plt.subplots(1, 3, figsize=(14, 4))
axes[0].imshow(picture)
axes[0].set_title("the image")
shown = axes[1].imshow(drop, cmap="RdBu_r", vmin=-drop.abs().max(), vmax=drop.abs().max())
colorbar(axes[1], mappable=shown, label="mean drop of the cat's logit")
axes[1].set_title("occlusion: 32 x 32 squares, stride 16")
axes[2].imshow(overlay(picture, normalize(maps["occlusion"], sign="positive", scaling="max")[0]))
colorbar(axes[2], "jet", label="drop / largest drop")
axes[2].set_title("its positive part over the image")
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# Read the colour bar first: no square costs the cat more than about half a unit of its logit,
# which is 10.6, and many squares *raise* it (blue, over the forehead and the eye on the
# right). Hiding one 32-pixel part at a time hardly matters, because the network finds the cat
# in many parts at once: occlusion measures the effect of removing one part, and redundant
# evidence escapes it. The largest drops, on the left cheek and the chin, are where the head's
# outline meets the background. The map is coarse (a 32-pixel square cannot say which pixel of
# an eye matters), but it is a measured effect on the score, not a derivative or a
# propagation rule; the next section's curves remove many pixels at once instead.

# %% [markdown]
# ## Deletion and insertion
#
# Rank the pixels by the map. **Deletion**: replace the top $k/n$ of them with a neutral
# colour, for $k = 0, \dots, n$, and record the class probability; a faithful map makes it
# fall fast. **Insertion**: start from a blurred image and put the top pixels back; a faithful
# map makes it rise fast. The curves are summarised by their **area**, over the fraction of
# pixels $f \in [0, 1]$, with the trapezoid rule:
#
# $$\mathrm{AUC} = \sum_{k=0}^{n-1} \frac{p_k + p_{k+1}}{2} \, (f_{k+1} - f_k).$$
#
# ### Exercise 1: the area under a curve
#
# Write `curve_area(fractions, scores)`: `fractions` is `(n + 1,)`, increasing from 0 to 1;
# `scores` is `(N, n + 1)`, one curve per image; return the `(N,)` areas with the formula
# above (no `torch.trapz`).

# %%
def curve_area(fractions, scores):
    """Trapezoid area under each row of scores over fractions: (N,)."""
    # BEGIN SOLUTION average neighbouring scores, multiply by the widths, sum
    widths = fractions[1:] - fractions[:-1]
    return ((scores[:, 1:] + scores[:, :-1]) / 2 * widths).sum(dim=1)
    # END SOLUTION


# %% tags=["check"]
check_curve_area(curve_area)

# %% [markdown]
# The package's curves carry the same area as `.auc`. The four maps on the cat (computed
# above; Integrated Gradients with 16 steps, enough to rank pixels):

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
for method, result in maps.items():
    d = deletion(loaded, x, result, cat, steps=20)
    i = insertion(loaded, x, result, cat, steps=20)
    left.plot(d.fractions, d.scores[0], label=f"{method} ({d.auc[0]:.2f})")
    right.plot(i.fractions, i.scores[0], label=f"{method} ({i.auc[0]:.2f})")
left.set_title("deletion: lower area is better")
right.set_title("insertion: higher area is better")
for ax in (left, right):
    ax.set_xlabel("fraction of pixels")
    ax.set_ylabel("probability of Egyptian cat")
    ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# Read with care. Deleting *scattered* pixels (what pixel-level maps like the gradient do)
# ruins textures the network relies on, so such maps look good on deletion for a reason
# that has little to do with the cat; blob-like maps (Grad-CAM, occlusion) leave the rest of
# the cat intact. Compare maps of like structure, and look at both curves.
#
# ## The pointing game
#
# On a picture made of a cat and a dog, the map for "Egyptian cat" should peak on the cat.
# The pointing game counts a **hit** when the map's maximum lies in the object's box, or
# within a tolerance (15 pixels in the paper) of it.
#
# ### Exercise 2: a hit or a miss
#
# Write `pointing_hit(heatmap, box, tolerance)`: `heatmap` is `(H, W)`; `box` has `left`,
# `top`, `right`, `bottom` (right and bottom exclusive: columns `left .. right - 1`); return
# `True` when the position of the maximum (`divmod(int(heatmap.argmax()), W)` gives row and
# column) is within `tolerance` pixels of the box: the horizontal distance
# `max(box.left - col, 0, col - (box.right - 1))`, the vertical one likewise, and their
# Euclidean length at most `tolerance`.

# %%
def pointing_hit(heatmap, box, tolerance):
    """Is the heatmap's maximum within `tolerance` pixels of the box?"""
    # BEGIN SOLUTION find the peak's row and column, its distance to the box, compare
    row, col = divmod(int(heatmap.argmax()), heatmap.shape[1])
    dx = max(box.left - col, 0, col - (box.right - 1))
    dy = max(box.top - row, 0, row - (box.bottom - 1))
    return (dx * dx + dy * dy) ** 0.5 <= tolerance
    # END SOLUTION


# %% tags=["check"]
check_pointing_hit(pointing_hit)

# %% [markdown]
# The package's `localisation` runs the pointing game (and the share of the map's energy
# inside the box) for each part of a scene:

# %%
scene = make_scene(["chelsea", "chicky_512"])
options = {"integrated_gradients": {"steps": 16}}
for method in ["gradient", "guided_backprop", "grad_cam", "integrated_gradients"]:
    rows = localisation(loaded, scene, method, **options.get(method, {}))
    cells = [f"{r['label']}: {'hit ' if r['hit'] else 'miss'} energy {r['energy']:.2f}" for r in rows]
    print(f"{method:22}", "  ".join(cells))

# %% [markdown]
# ## Comparing methods side by side
#
# `compare` runs methods on images, times them, measures them, and draws one grid with the
# same normalisation for all. (SmoothGrad with 8 samples and curves of 10 steps keep this
# cell to a few seconds; the defaults, 25 samples and 50 steps, give steadier numbers.)

# %%
result = compare(loaded, ["chelsea", "coffee"], ["gradient", ("smoothgrad", {"samples": 8}), "grad_cam", "lrp"],
                 metrics=("deletion", "insertion"), metric_steps=10)
print(result.table())
result.figure()
plt.show()

# %% [markdown]
# The repository's `docs/metrics.md` has a reference table for every method on eight objects
# in two scenes (`python benchmarks/localisation.py`). There, SmoothGrad (8 of 8) and the CAM
# family (6 or 7 of 8) point at the right object most often, and the deconvnet (1 of 8) and
# guided backpropagation (3 of 8) least; the CAM family also puts the most energy in the box.

# %% [markdown]
# ## Self-check: predict, then run
#
# 1. Occlusion with a white square (`fill=1.0`) instead of the mean colour: will the map of the
#    cat be the same?
# 2. A map that ranks the pixels at random: will its deletion area be below (better) or above
#    (worse) those of the four maps above?
#
# <details><summary>Answers</summary>
#
# 1. No. The map measures what the network does with *this* square: a white patch is a new
#    object in the image, not an absence. The drops change, and so does the ranking (the
#    correlation printed is well below 1); occlusion answers "what if this part looked like
#    $v$?", and $v$ is part of the question.
# 2. Below all four (about 0.12): by this measure a random map is the "best"! Deleting
#    scattered pixels, whichever they are, ruins the fine textures the network relies on,
#    and the probability collapses after a few percent. This is the caution above made
#    concrete: compare a map with a random ranking of the same structure before reading
#    its deletion area as faithfulness.
#
# </details>

# %%
white = attribute(loaded, x, cat, "occlusion", window=32, stride=32, fill=1.0)
grey = attribute(loaded, x, cat, "occlusion", window=32, stride=32)
print("1. correlation of white-square and mean-colour occlusion (stride 32):",
      round(float(torch.corrcoef(torch.stack([white.flatten(), grey.flatten()]))[0, 1]), 2))
chance = deletion(loaded, x, torch.rand(1, 1, 224, 224, generator=torch.Generator().manual_seed(0)), cat, steps=20)
print(f"2. deletion area of a random map: {chance.auc[0]:.2f}")

# %% [markdown]
# ## Recap
#
# - **Deletion / insertion**: faithfulness to the model, summarised by curve areas; beware of
#   comparing scattered with smooth maps.
# - **Pointing game** and **energy in the box**: localisation, on scenes with known boxes.
# - **Sanity checks**: a map that does not change with the model explains the image, not the
#   model (notebook 02).
# - No single number settles it: look at several, and at the maps.

# %% [markdown]
# ## References
#
# - Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional Networks" (occlusion):
#   <https://arxiv.org/abs/1311.2901>
# - Petsiuk, Das & Saenko 2018, "RISE: Randomized Input Sampling for Explanation of Black-box
#   Models" (deletion and insertion): <https://arxiv.org/abs/1806.07421>
# - Zhang, Bargal, Lin, Brandt, Shen & Sclaroff 2016, "Top-down Neural Attention by Excitation
#   Backprop" (the pointing game): <https://arxiv.org/abs/1608.00507>
# - Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim 2018, "Sanity Checks for Saliency Maps":
#   <https://arxiv.org/abs/1810.03292>
