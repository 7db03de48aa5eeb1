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
# You will write the area under a curve and the pointing game's hit test, then compare
# methods with `vizwidgets.compare`.

# %%
import matplotlib.pyplot as plt

from vizwidgets.attribution import attribute
from vizwidgets.checks import check_curve_area, check_pointing_hit
from vizwidgets.compare import compare
from vizwidgets.data import make_scene
from vizwidgets.metrics import deletion, insertion, localisation
from vizwidgets.models import load_model

loaded = load_model()
x = loaded.preprocess("chelsea")
cat = loaded.classes.index("Egyptian cat")

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
# The package's curves carry the same area as `.auc`. Four methods on the cat:

# %%
methods = ["gradient", "integrated_gradients", "grad_cam", "occlusion"]
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
for method in methods:
    result = attribute(loaded, x, cat, method)
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
for method in ["gradient", "guided_backprop", "grad_cam", "integrated_gradients"]:
    rows = localisation(loaded, scene, method)
    print(f"{method:22}", "  ".join(f"{r['label']}: {'hit ' if r['hit'] else 'miss'} energy {r['energy']:.2f}" for r in rows))

# %% [markdown]
# ## Comparing methods side by side
#
# `compare` runs methods on images, times them, measures them, and draws one grid with the
# same normalisation for all.

# %%
result = compare(loaded, ["chelsea", "coffee"], ["gradient", "smoothgrad", "grad_cam", "lrp"],
                 metrics=("deletion", "insertion"), metric_steps=20)
print(result.table())
result.figure()
plt.show()

# %% [markdown]
# The repository's `docs/metrics.md` has a reference table for every method on eight objects
# in two scenes (`python benchmarks/localisation.py`). There, SmoothGrad (8 of 8) and the CAM
# family (6 or 7 of 8) point at the right object most often, and the deconvnet (1 of 8) and
# guided backpropagation (3 of 8) least; the CAM family also puts the most energy in the box.
#
# ## Recap
#
# - **Deletion / insertion**: faithfulness to the model, summarised by curve areas; beware of
#   comparing scattered with smooth maps.
# - **Pointing game** and **energy in the box**: localisation, on scenes with known boxes.
# - **Sanity checks**: a map that does not change with the model explains the image, not the
#   model (notebook 02).
# - No single number settles it: look at several, and at the maps.
