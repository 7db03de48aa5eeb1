# %% [markdown]
# # Layer-wise relevance propagation: sharing out the score
#
# LRP (Bach, Binder, Montavon, Klauschen, Müller & Samek 2015) explains a score by passing it
# backwards, layer by layer, as *relevance*: each neuron hands its relevance down to the
# inputs that contributed to it, in proportion to their contributions, until the pixels hold
# it all. Rules say how a layer shares relevance (Montavon, Binder, Lapuschkin, Samek & Müller
# 2019, "Layer-Wise Relevance Propagation: An Overview"). In this notebook you will:
#
# - write the **LRP-epsilon** rule for a dense layer;
# - check **conservation** on a small network, and that LRP-0 equals gradient x input there;
# - compare the rule *composites* on the cat.

# %%
import matplotlib.pyplot as plt
import torch
from torch import nn

from vizwidgets.attribution import LRP, gradient_x_input, lrp
from vizwidgets.attribution.lrp import COMPOSITES
from vizwidgets.checks import check_lrp_epsilon
from vizwidgets.models import load_model
from vizwidgets.viz import colorbar, normalize

loaded = load_model()
x = loaded.preprocess("chelsea")
cat = loaded.classes.index("Egyptian cat")

# %% [markdown]
# ## One layer
#
# Take a dense layer $z_k = \sum_j a_j w_{kj} + b_k$ and relevance $R_k$ on its outputs.
# Input $j$ contributed $a_j w_{kj}$ to $z_k$; LRP gives it that share of $R_k$:
#
# $$R_j = \sum_k \frac{a_j w_{kj}}{z_k + \epsilon\, \mathrm{sign}(z_k)} R_k .$$
#
# With $\epsilon = 0$ this is **LRP-0**; a small $\epsilon > 0$ (**LRP-epsilon**) absorbs
# part of the relevance of outputs with weak, contradictory inputs ($z_k$ near 0), which
# makes explanations less noisy. In matrix form, with $s = R / (z + \epsilon\,\mathrm{sign}(z))$:
#
# $$R_{in} = a \odot (W^\top s).$$
#
# ### Exercise: LRP-epsilon for a dense layer
#
# Write `lrp_epsilon_dense(a, weight, bias, relevance, epsilon)`: `a` is `(N, J)`, `weight`
# `(K, J)` as in `nn.Linear`, `bias` `(K,)`, `relevance` `(N, K)`; return `(N, J)`. For
# $\mathrm{sign}(z)$ do not use `torch.sign`, which gives 0 at $z = 0$: treat
# $\mathrm{sign}(0)$ as $+1$, so that you never divide by 0 when $\epsilon > 0$, with
# `torch.where(z >= 0, 1.0, -1.0)`. (The check includes an output whose $z$ is exactly 0.)

# %%
def lrp_epsilon_dense(a, weight, bias, relevance, epsilon):
    """R_in = a * (W^T (R / (z + eps sign z))) for a dense layer: (N, J)."""
    # BEGIN SOLUTION forward z, stabilise, divide, send back with the transposed weights, times a
    z = a @ weight.T + bias
    s = relevance / (z + epsilon * torch.where(z >= 0, 1.0, -1.0))
    return a * (s @ weight)
    # END SOLUTION


# %% tags=["check"]
check_lrp_epsilon(lrp_epsilon_dense)

# %% [markdown]
# ## Conservation
#
# With LRP-0 and no biases, every layer passes on exactly the relevance it received:
# $\sum_j R_j = \sum_k z_k / z_k \cdot R_k = \sum_k R_k$. Through a whole ReLU network
# the input relevance then sums to the logit. And for such a network LRP-0 equals
# gradient x input (the ReLU network is linear around $x$). The package checks both here on a
# small bias-free network.

# %%
torch.manual_seed(0)
net = nn.Sequential(nn.Flatten(), nn.Linear(12, 8, bias=False), nn.ReLU(), nn.Linear(8, 3, bias=False))
inputs = torch.rand(2, 3, 2, 2)
out = LRP(net).explain(inputs, [0, 2], composite="lrp0")
print("logits:          ", out.scores)
print("relevance sums:  ", out.relevance.sum(dim=(1, 2, 3)))
print("max |LRP-0 - gradient x input|:", (out.relevance - gradient_x_input(net, inputs, [0, 2])).abs().max().item())

# %% [markdown]
# ## The other rules
#
# Same layer, same notation: input $j$ contributes $a_j w_{kj}$ to output $k$, and the sums
# over $j$ include the bias as an input $a_0 = 1$, $w_{k0} = b_k$ (Montavon et al. 2019 write
# this $\sum_{0,j}$). Write $w^+ = \max(w, 0)$, $w^- = \min(w, 0)$, and likewise
# $(\cdot)^+$, $(\cdot)^-$ for contributions.
#
# **LRP-gamma** adds $\gamma$ times the positive weights, so that positive contributions
# count more than negative ones ($\gamma = 0$ is LRP-0; as $\gamma \to \infty$ only positive
# contributions are left):
#
# $$R_j = \sum_k \frac{a_j \big(w_{kj} + \gamma\, w_{kj}^+\big)}
# {\sum_{0,j'} a_{j'} \big(w_{kj'} + \gamma\, w_{kj'}^+\big)}\, R_k .$$
#
# **LRP-alpha-beta** (Bach et al. 2015) shares the positive and the negative contributions
# separately, and weights them $\alpha$ and $\beta$ with $\alpha - \beta = 1$, so that
# relevance is still conserved:
#
# $$R_j = \sum_k \left( \alpha\, \frac{(a_j w_{kj})^+}{\sum_{0,j'} (a_{j'} w_{kj'})^+}
# - \beta\, \frac{(a_j w_{kj})^-}{\sum_{0,j'} (a_{j'} w_{kj'})^-} \right) R_k .$$
#
# With $\alpha = 1, \beta = 0$ (**alpha1-beta0**) only positive contributions receive
# relevance: on ReLU activations ($a \geq 0$) it is LRP-gamma with $\gamma \to \infty$.
#
# **$z^B$** is for the first layer, whose inputs are pixels, not ReLU outputs: they can be
# negative, and lie in a box $l_j \leq x_j \leq h_j$ (the lowest and highest value each
# preprocessed pixel can take). The rule (Montavon et al. 2017, deep Taylor decomposition)
# shares relevance by the contribution measured from the corner of the box that makes the
# output smallest:
#
# $$R_j = \sum_k \frac{x_j w_{kj} - l_j w_{kj}^+ - h_j w_{kj}^-}
# {\sum_{j'} \big(x_{j'} w_{kj'} - l_{j'} w_{kj'}^+ - h_{j'} w_{kj'}^-\big)}\, R_k .$$
#
# ## Composites on the cat
#
# On a real network no single rule works everywhere. The default **composite** uses $z^B$ on
# the first layer (pixels live in a box), LRP-gamma on the lower convolutions (favouring
# positive contributions, which spreads relevance over whole features), LRP-epsilon above,
# and LRP-0 on the classifier; BatchNorm is folded into the convolutions for the pass. The
# presets:

# %%
for name, description in COMPOSITES.items():
    print(f"{name:12} {description}")

# %%
names = ["default", "epsilon", "gamma", "alpha1beta0"]
fig, axes = plt.subplots(1, len(names), figsize=(4.3 * len(names), 4.2))
for ax, name in zip(axes, names):
    relevance = lrp(loaded, x, cat, composite=name)
    shown = ax.imshow(normalize(relevance, sign="all", scaling="percentile")[0], cmap="bwr", vmin=-1, vmax=1)
    ax.set_title(f"{name}\nsum {relevance.sum().item():.3g}", fontsize=10)
    ax.axis("off")
colorbar(axes[-1], mappable=shown, label="relevance / 99th percentile of |relevance|")
plt.show()

# %% [markdown]
# Red is relevance for the cat, blue against. Epsilon on every layer is noisy: the many weak,
# contradictory contributions of the lower layers come through. Gamma there (the default
# composite) or the positive-only alpha1-beta0 rule gives clean maps of the eyes, the nose and
# the whiskers. Note the sums: on this network the input
# relevance is far smaller than the logit (10.6): the folded BatchNorm biases and the
# epsilon stabilisers absorb most of it. LRP's maps say *where* the evidence is; on networks
# with biases their total is not the score. (`docs/lrp.md` in the repository traces where
# the relevance goes.)

# %% [markdown]
# ## Self-check: predict, then run
#
# On the small bias-free ReLU network above, what does the input relevance sum to with
# (1) the **gamma** composite and (2) the **epsilon** composite? (Both use $z^B$ on the first
# layer; the network's inputs are in $[0, 1]$, so that is the box.)
#
# <details><summary>Answers</summary>
#
# 1. Still the logits: in every rule above (without biases) the denominator is the sum of
#    the numerators over $j$, so each layer passes on exactly what it received. $\gamma$ and
#    $z^B$ change how the relevance is shared, not how much of it there is.
# 2. Less than the logits (in absolute value): the stabiliser $\epsilon\,\mathrm{sign}(z_k)$
#    in the denominator keeps a part of every $R_k$ from going down. That absorbed relevance
#    is the price of less noisy maps.
#
# </details>

# %%
for name in ("gamma", "epsilon"):
    check = LRP(net).explain(inputs, [0, 2], composite=name, low=0.0, high=1.0)
    print(f"{name:12} logits {check.scores.tolist()}, relevance sums {check.relevance.sum(dim=(1, 2, 3)).tolist()}")

# %% [markdown]
# ## Recap
#
# - LRP shares each neuron's relevance among its inputs in proportion to their
#   contributions; **rules** differ in how ($0$, $\epsilon$, $\gamma$, $\alpha\beta$, $z^B$).
# - Without biases LRP-0 **conserves** relevance and equals gradient x input on ReLU
#   networks.
# - **Composites** assign rules by layer; the result is a signed map, for and against the
#   class.

# %% [markdown]
# ## References
#
# - Bach, Binder, Montavon, Klauschen, Müller & Samek 2015, "On Pixel-Wise Explanations for
#   Non-Linear Classifier Decisions by Layer-Wise Relevance Propagation":
#   <https://doi.org/10.1371/journal.pone.0130140>
# - Montavon, Binder, Lapuschkin, Samek & Müller 2019, "Layer-Wise Relevance Propagation: An
#   Overview", in *Explainable AI* (LNCS 11700): <https://doi.org/10.1007/978-3-030-28954-6_10>
# - Montavon, Lapuschkin, Binder, Samek & Müller 2017, "Explaining nonlinear classification
#   decisions with deep Taylor decomposition" ($z^B$): <https://doi.org/10.1016/j.patcog.2016.11.008>
