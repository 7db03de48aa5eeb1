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
from vizwidgets.viz import normalize

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
fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 4.2))
for ax, name in zip(axes, names):
    relevance = lrp(loaded, x, cat, composite=name)
    ax.imshow(normalize(relevance, sign="all", scaling="percentile")[0], cmap="bwr", vmin=-1, vmax=1)
    ax.set_title(f"{name}\nsum {relevance.sum().item():.3g}", fontsize=10)
    ax.axis("off")
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
#
# ## Recap
#
# - LRP shares each neuron's relevance among its inputs in proportion to their
#   contributions; **rules** differ in how ($0$, $\epsilon$, $\gamma$, $\alpha\beta$, $z^B$).
# - Without biases LRP-0 **conserves** relevance and equals gradient x input on ReLU
#   networks.
# - **Composites** assign rules by layer; the result is a signed map, for and against the
#   class.
