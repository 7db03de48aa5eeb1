# %% [markdown]
# # Integrated Gradients: attributions that add up
#
# A gradient describes the score at one point. Integrated Gradients (Sundararajan, Taly & Yan
# 2017, "Axiomatic Attribution for Deep Networks") follows the gradient along a whole path,
# from a **baseline** image that stands for "no information" to the image itself, and so
# explains the *difference* between the two scores. In this notebook you will:
#
# - write Integrated Gradients with a Riemann sum, and the **completeness gap** that measures
#   how well it is computed;
# - see why the choice of baseline matters (black, blurred, uniform noise);
# - see how many steps this network needs, and why.

# %%
import warnings

import matplotlib.pyplot as plt
import torch

from vizwidgets.attribution import IntegratedGradients, gradient
from vizwidgets.checks import check_completeness_gap, check_riemann_ig
from vizwidgets.models import load_model
from vizwidgets.viz import colorbar, normalize
from vizwidgets.widgets import Explorer

loaded = load_model()
x = loaded.preprocess("chelsea")
cat = loaded.classes.index("Egyptian cat")
picture = loaded.preprocess.inverse(x[0])

# %% [markdown]
# ## The idea
#
# Let $F$ be the score of the class, $x$ the image and $x'$ the baseline. On the straight
# path $\gamma(\alpha) = x' + \alpha (x - x')$, $\alpha \in [0, 1]$, the fundamental theorem
# of calculus gives
#
# $$F(x) - F(x') = \int_0^1 \frac{d F(\gamma(\alpha))}{d\alpha} d\alpha
# = \sum_i (x_i - x'_i) \int_0^1 \frac{\partial F}{\partial x_i}\big(\gamma(\alpha)\big) d\alpha .$$
#
# Integrated Gradients gives input $i$ the $i$-th term:
#
# $$\mathrm{IG}_i(x) = (x_i - x'_i) \int_0^1 \frac{\partial F}{\partial x_i}\big(x' + \alpha (x - x')\big) d\alpha .$$
#
# By construction the attributions sum to $F(x) - F(x')$: **completeness**. A pixel that
# differs from the baseline and changes the score gets a non-zero attribution
# (**sensitivity**), which plain gradients do not guarantee: a saturated unit has gradient 0
# even though it matters.
#
# ### Exercise 1: IG with a Riemann sum
#
# Write `riemann_ig(model, x, baseline, target, steps)` with the **midpoint rule**: for
# $k = 0, \dots, steps - 1$ take $\alpha_k = (k + 0.5) / steps$, compute the gradient of the
# target logit at $x' + \alpha_k (x - x')$, average the gradients and multiply by $x - x'$.
# `x` and `baseline` are `(N, 3, H, W)`, `target` a tensor of `N` classes; return
# `(N, 3, H, W)`. Use your `input_gradient` idea from notebook 01 (written again below).

# %%
def input_gradient(model, x, target):
    """d logit[target] / d x for a batch (from notebook 01)."""
    inputs = x.detach().clone().requires_grad_(True)
    scores = model(inputs)[torch.arange(len(target)), target]
    return torch.autograd.grad(scores.sum(), inputs)[0]


def riemann_ig(model, x, baseline, target, steps):
    """Integrated Gradients with the midpoint rule over `steps` points: (N, 3, H, W)."""
    # BEGIN SOLUTION average input_gradient at baseline + alpha (x - baseline), alpha = (k + 0.5) / steps
    total = torch.zeros_like(x)
    for k in range(steps):
        alpha = (k + 0.5) / steps
        total += input_gradient(model, baseline + alpha * (x - baseline), target)
    return (x - baseline) * total / steps
    # END SOLUTION


# %% tags=["check"]
check_riemann_ig(riemann_ig)

# %% [markdown]
# ### Exercise 2: the completeness gap
#
# With a finite number of steps the sum is only approximately $F(x) - F(x')$. Write
# `completeness_gap(model, x, baseline, target, attributions)` returning, per image,
# $\sum_i \mathrm{IG}_i - (F(x) - F(x'))$, shape `(N,)`. Compute the logits without
# gradients (`with torch.no_grad():`).

# %%
def completeness_gap(model, x, baseline, target, attributions):
    """sum(attributions) - (F(x) - F(baseline)) for each image: (N,)."""
    # BEGIN SOLUTION sum the attributions per image; subtract the difference of the target logits
    with torch.no_grad():
        rows = torch.arange(len(target))
        difference = model(x)[rows, target] - model(baseline)[rows, target]
    return attributions.sum(dim=(1, 2, 3)) - difference
    # END SOLUTION


# %% tags=["check"]
check_completeness_gap(completeness_gap)

# %% [markdown]
# ## Baselines
#
# "No information" is a choice. A black image is the classic one, but then black pixels of
# the image can never get attribution (their $x_i - x'_i$ is 0). A blurred copy keeps the
# colours and removes the edges; uniform noise averages over nothing in particular. The
# package computes them all (`baseline="black" | "blurred" | "uniform" | "zero"` or a tensor)
# and returns the gap on request. We use 16 steps here, enough to see where each map puts the
# attribution (the gaps in the titles show that they are not enough for the totals; the next
# section comes back to that). Each map is $\sum_{RGB} |\mathrm{IG}|$ divided by its 99th
# percentile.

# %%
method = IntegratedGradients(loaded)
fig, axes = plt.subplots(2, 3, figsize=(12, 7.5))
for column, baseline in enumerate(["black", "blurred", "uniform"]):
    attributions, delta = method.attribute_with_delta(x, cat, steps=16, baseline=baseline)
    base = method.make_baseline(x, baseline)
    axes[0, column].imshow(loaded.preprocess.inverse(base[0]))
    axes[0, column].set_title(f"baseline: {baseline}")
    shown = axes[1, column].imshow(
        normalize(attributions, sign="absolute", scaling="percentile", reduce="abs_sum")[0],
        cmap="inferno", vmin=0, vmax=1,
    )
    colorbar(axes[1, column], mappable=shown, label="sum |IG| / 99th percentile")
    with torch.no_grad():
        change = (loaded.model(x) - loaded.model(base))[0, cat].item()
    axes[1, column].set_title(f"F(x) - F(x') = {change:.2f}, gap {delta.item():+.2f}", fontsize=10)
for ax in axes.flat:
    ax.axis("off")
plt.show()

# %% [markdown]
# Each map explains a different question: "why a cat rather than a black image?" is not "why
# a cat rather than a blurry cat?". With the blurred baseline only what blurring removed can
# get attribution: edges and fine texture such as the eyes and the whiskers.

# %% [markdown]
# ## How many steps?
#
# The gap shrinks as the steps grow, but slowly on this network. To see why, look at the
# integrand itself. Along the path, the score changes at the rate
#
# $$g(\alpha) = \frac{d F(\gamma(\alpha))}{d\alpha} = \nabla F\big(\gamma(\alpha)\big) \cdot (x - x'),$$
#
# and $F(x) - F(x') = \int_0^1 g(\alpha)\, d\alpha$; the sum of the IG attributions is a
# quadrature of exactly this integral. Below we compute $g$ at 65 evenly spaced points (65
# gradients, in batches of 8) and integrate it with the trapezoid rule on every 16th, 8th, ...
# point: 4, 8, 16, 32 and 64 steps from the same gradients.

# %%
base = method.make_baseline(x, "black")
alphas = torch.linspace(0, 1, 65)
rates = []
for chunk in alphas.split(8):
    points = base + chunk.view(-1, 1, 1, 1) * (x - base)
    rates.append((gradient(loaded, points, cat) * (x - base)).sum(dim=(1, 2, 3)))
rates = torch.cat(rates)
with torch.no_grad():
    change = (loaded.model(x) - loaded.model(base))[0, cat].item()
print(f"F(x) - F(x') = {change:.2f}")
for steps in (4, 8, 16, 32, 64):
    every = 64 // steps
    total = torch.trapezoid(rates[::every], alphas[::every]).item()
    gap = total - change
    print(f"{steps:3} steps: sum of attributions {total:6.2f}, gap {gap:+.2f} ({abs(gap) / abs(change):.0%})")
fig, ax = plt.subplots(figsize=(8, 3.5))
ax.plot(alphas, rates, marker=".")
ax.set_xlabel("alpha: from the black baseline (0) to the image (1)")
ax.set_ylabel("g(alpha) = dF / d alpha")
ax.set_title("the integrand of Integrated Gradients on chelsea")
plt.show()

# %% [markdown]
# Almost all of the change happens in the first few percent of the path, just above the black
# image, where $g$ spikes to hundreds and falls back within a few grid points; the rest of the
# path contributes little. A quadrature rule sees the spike only at the points where it
# evaluates $g$, so the sum of the attributions depends on where those points fall: the gap
# does not even shrink steadily with the steps. EfficientNet-Lite0 is built from ReLU6 units:
# along the path, every unit that switches on, off or into saturation changes the gradient
# abruptly, so the integrand is rough and no quadrature rule converges fast. The original
# paper advises adding steps until the gap is within 5 % of $F(x) - F(x')$.
# `docs/attribution.md` in the repository has the full measurement with the package's
# default rule (Gauss-Legendre): on chelsea with the black baseline the gap is 9 % of
# $F(x) - F(x')$ at 64 steps and 0.4 % at 512. Its error-against-time table
# (`benchmarks/ig_steps.py`, six images) shows the trade: 50 steps, the default, leave about
# 10 % on average; 128 steps about 3 % for two and a half times the wait.
#
# ## Explore
#
# In the explorer, pick Integrated Gradients: change the baseline and the steps, and compare
# with the gradient and SmoothGrad (the "compare" list).

# %%
explorer = Explorer(loaded, method="integrated_gradients")
explorer.widget

# %% [markdown]
# ## Self-check: predict, then run
#
# 1. Integrated Gradients with the image itself as the baseline ($x' = x$): what is the map?
# 2. With the black baseline, what attribution does a pixel get whose value is exactly 0 (black)
#    in every channel, however much the score depends on it?
#
# <details><summary>Answers</summary>
#
# 1. Zero everywhere: every term has the factor $x_i - x'_i = 0$, and so does $F(x) - F(x')$.
#    The map answers "why this score rather than the baseline's?", and there is no difference
#    to explain.
# 2. Zero, for the same reason: $x_i - x'_i = 0$. A black baseline can never credit dark
#    pixels, such as the pupils of the cat's eyes; that is one reason to try others.
#
# </details>

# %%
with warnings.catch_warnings():  # the package warns that this map is all zero
    warnings.simplefilter("ignore")
    same = method.attribute(x, cat, steps=4, baseline=x)
print("1. largest |IG| with the image as its own baseline:", same.abs().max().item())
dark = x.clone()
black = method.make_baseline(x, "black")
dark[:, :, 100:120, 100:120] = black[:, :, 100:120, 100:120]  # a black square on the cat
inside = method.attribute(dark, cat, steps=4)[:, :, 100:120, 100:120]
print("2. largest |IG| inside a black square:", inside.abs().max().item())

# %% [markdown]
# ## Recap
#
# - Integrated Gradients averages the gradient along the path from a baseline and multiplies
#   by the difference to it; the attributions sum to $F(x) - F(x')$ (completeness).
# - The **baseline** is part of the question the map answers.
# - The **completeness gap** tells you whether you used enough steps; on piecewise-linear
#   networks you need more than the smooth-function intuition suggests.

# %% [markdown]
# ## References
#
# - Sundararajan, Taly & Yan 2017, "Axiomatic Attribution for Deep Networks":
#   <https://arxiv.org/abs/1703.01365>
