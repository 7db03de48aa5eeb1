# %% [markdown]
# # The CAM family: where in the image is the class?
#
# Gradient maps answer "which pixels is the score sensitive to?" and come out speckled.
# Class activation maps answer a coarser question, "*where* is the evidence for this
# class?", by weighting the feature maps of a late convolutional layer. In this notebook you
# will:
#
# - write **CAM** (Zhou, Khosla, Lapedriza, Oliva & Torralba 2016) from the network's own
#   classifier weights;
# - write **Grad-CAM** (Selvaraju et al. 2017) from gradients, and see that for our network it
#   is CAM divided by 49;
# - compare Grad-CAM++, XGrad-CAM, Layer-CAM and Score-CAM, and layers from early to late;
# - check that the maps are class-discriminative on a picture with a cat *and* a dog, and
#   combine them with guided backpropagation (guided Grad-CAM).

# %%
import itertools

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle

from vizwidgets.attribution import attribute, grad_cam
from vizwidgets.checks import check_cam, check_grad_cam
from vizwidgets.data import make_scene
from vizwidgets.features import activations
from vizwidgets.metrics import pointing_game
from vizwidgets.models import load_model
from vizwidgets.viz import colorbar, normalize, overlay
from vizwidgets.widgets import Explorer

loaded = load_model()
x = loaded.preprocess("chelsea")
cat = loaded.classes.index("Egyptian cat")
picture = loaded.preprocess.inverse(x[0])

# %% [markdown]
# ## Feature maps and the classifier
#
# The network's last convolutional layer, `head`, outputs $K = 1280$ feature maps $A_k$ of
# $7 \times 7$. Then global average pooling and one linear layer make the logits:
#
# $$S_c = \sum_k W_{ck} \, \frac{1}{49} \sum_{ij} A_{kij} + b_c .$$
#
# Swap the two sums and the score is a sum over positions of
# $M_c(i, j) = \sum_k W_{ck} A_{kij}$: that is the **class activation map**. Where $M_c$ is
# large, the features that vote for class $c$ are active.

# %%
A = activations(loaded, x, "head")  # (1, 1280, 7, 7)
W = loaded.model.classifier.weight.detach()  # (1000, 1280)
print("feature maps:", tuple(A.shape), " classifier weights:", tuple(W.shape))

# %% [markdown]
# ### Exercise 1: CAM
#
# Write `class_activation_map(activation, weights, c)`: `activation` is `(N, K, h, w)`,
# `weights` the classifier's `(classes, K)`; return $\sum_k W_{ck} A_k$ for each image,
# shape `(N, h, w)`. Useful: `weights[c]` has shape `(K,)`; reshape it to `(1, K, 1, 1)`
# with `.view(1, -1, 1, 1)`, multiply and sum over `dim=1`. (No ReLU here: the package's
# `cam(..., relu=True)` adds it for display.)

# %%
def class_activation_map(activation, weights, c):
    """sum_k weights[c, k] * activation[:, k]: (N, K, h, w) -> (N, h, w)."""
    # BEGIN SOLUTION weight each feature map by the classifier's weight for class c, then sum over k
    return (weights[c].view(1, -1, 1, 1) * activation).sum(dim=1)
    # END SOLUTION


# %% tags=["check"]
check_cam(class_activation_map)

# %% [markdown]
# ## Grad-CAM
#
# CAM needs the "pooling then one linear layer" structure. Grad-CAM works for any layer of
# any network: it weights each feature map by the **average gradient** of the score with
# respect to it,
#
# $$\alpha_k = \frac{1}{hw} \sum_{ij} \frac{\partial S_c}{\partial A_{kij}}, \qquad
# \text{Grad-CAM}_c = \mathrm{ReLU}\Big(\sum_k \alpha_k A_k\Big).$$
#
# For our network the gradient is easy to get: run the rest of the network (pooling and
# classifier) on $A$ and differentiate.

# %%
A_leaf = A.clone().requires_grad_(True)
scores = loaded.model.classifier(A_leaf.mean(dim=(2, 3)))
(G,) = torch.autograd.grad(scores[0, cat], A_leaf)
print("gradient shape:", tuple(G.shape))
print("is it W[c] / 49 everywhere?", torch.allclose(G[0], W[cat].view(-1, 1, 1).expand(-1, 7, 7) / 49))

# %% [markdown]
# ### Exercise 2: Grad-CAM
#
# Write `grad_cam_map(activation, gradient)`: both `(N, K, h, w)`; return
# $\mathrm{ReLU}(\sum_k \alpha_k A_k)$ with $\alpha_k$ the mean of the gradient over the
# positions, shape `(N, h, w)`. Useful: `gradient.mean(dim=(2, 3), keepdim=True)` and
# `torch.relu`.

# %%
def grad_cam_map(activation, gradient):
    """ReLU(sum_k alpha_k A_k), alpha_k the mean gradient of feature map k: -> (N, h, w)."""
    # BEGIN SOLUTION average the gradient over positions, weight the maps, sum over k, then ReLU
    alpha = gradient.mean(dim=(2, 3), keepdim=True)
    return torch.relu((alpha * activation).sum(dim=1))
    # END SOLUTION


# %% tags=["check"]
check_grad_cam(grad_cam_map)

# %% [markdown]
# Since $\partial S_c / \partial A_{kij} = W_{ck} / 49$, Grad-CAM at `head` is exactly
# $\mathrm{ReLU}(\text{CAM}) / 49$. The package's `grad_cam` must agree with your function,
# and once upsampled to 224 x 224 the map covers the cat's face.

# %% tags=["check"]
mine = grad_cam_map(A, G)
print("CAM / 49 vs yours:", (torch.relu(class_activation_map(A, W, cat)) / 49 - mine).abs().max().item())
print("vizwidgets vs yours:", (grad_cam(loaded, x, cat, upsample=False)[:, 0] - mine).abs().max().item())

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 4))
axes[0].imshow(picture)
axes[0].set_title("the image")
shown = axes[1].imshow(grad_cam(loaded, x, cat, upsample=False)[0, 0], cmap="jet")
colorbar(axes[1], mappable=shown, label="Grad-CAM value")
axes[1].set_title("Grad-CAM at head, 7 x 7")
axes[2].imshow(overlay(picture, normalize(grad_cam(loaded, x, cat), scaling="max")[0]))
colorbar(axes[2], "jet", label="Grad-CAM / its maximum")
axes[2].set_title("upsampled, over the image")
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# ## The family
#
# The variants keep the form $\mathrm{ReLU}\big(\sum_k w_k A_k\big)$ (Layer-CAM: one weight per
# position) and change only the weights. Write $G_{kij} = \partial S_c / \partial A_{kij}$ for
# the gradient of the class logit.
#
# - **Grad-CAM++** (Chattopadhay et al. 2018) weights the positive gradients of each position,
#   which helps when a class appears several times:
#
#   $$w_k = \sum_{ij} \alpha_{kij}\, \mathrm{ReLU}(G_{kij}), \qquad
#   \alpha_{kij} = \frac{G_{kij}^2}{2\, G_{kij}^2 + \sum_{ab} A_{kab}\, G_{kij}^3} .$$
#
#   (The paper's $\alpha$ uses second and third derivatives of $Y_c = \exp(S_c)$; with that
#   exponential they are powers of the first, which gives this closed form.)
# - **XGrad-CAM** (Fu et al. 2020) weights each gradient by the share of the feature map's
#   activation at that position:
#
#   $$w_k = \sum_{ij} \frac{A_{kij}}{\sum_{ab} A_{kab}}\, G_{kij} .$$
#
# - **Layer-CAM** (Jiang et al. 2021) keeps one weight per position, so it works on early
#   layers too:
#
#   $$M_{ij} = \mathrm{ReLU}\Big(\sum_k \mathrm{ReLU}(G_{kij})\, A_{kij}\Big) .$$
#
# - **Score-CAM** (Wang et al. 2020) uses no gradient. Each feature map, upsampled to the
#   image and scaled to $[0, 1]$, $H_k = \frac{A_k - \min A_k}{\max A_k - \min A_k}$, is used
#   as a mask; its weight is how much the class probability $f_c$ of the masked image exceeds
#   that of a baseline image $x_b$:
#
#   $$w_k = f_c(x \odot H_k) - f_c(x_b) .$$
#
#   The baseline term is the same for every $k$ and the package leaves it out. Over all 1280
#   maps that is 1280 forward passes (about 17 s here); `fast_score_cam` scores only the 32 most
#   active maps.
#
# Below, the six maps at `head`, and the five that apply there at `blocks.10` (CAM needs the
# layer just before the pooling). Each row's title gives the mean **correlation** between
# the row's maps, over all pairs.

# %%
methods = ["cam", "grad_cam", "grad_cam_pp", "xgrad_cam", "layer_cam", "fast_score_cam"]
fig, axes = plt.subplots(2, len(methods), figsize=(3 * len(methods), 6.6))
for row, layer in enumerate(["head", "blocks.10"]):
    raw = {}
    for method in methods:
        if method == "cam" and layer != "head":
            continue
        raw[method] = attribute(loaded, x, cat, method, layer, upsample=False)[0, 0]
    pairs = [torch.corrcoef(torch.stack([raw[a].flatten(), raw[b].flatten()]))[0, 1]
             for a, b in itertools.combinations(raw, 2)]
    mean = torch.stack(pairs).mean()
    for ax in axes[row]:
        ax.axis("off")
    for ax, (method, result) in zip(axes[row][len(methods) - len(raw):], raw.items()):
        ax.imshow(overlay(picture, normalize(result, sign="positive", scaling="max")[0]))
        ax.set_title(f"{method} at {layer}", fontsize=10)
    axes[row][0].set_title(f"{layer}: correlation {mean:.2f}\n{axes[row][0].get_title()}", fontsize=10)
    print(f"{layer}: mean correlation of the maps {mean:.2f}, lowest {min(pairs):.2f}")
colorbar(axes[:, -1], "jet", label="map / its maximum")
plt.show()

# %% [markdown]
# At `head` the six maps are the same picture (every pair correlates above 0.97), and the
# reason is the network's ending: global average pooling, then one linear layer. There the
# gradient does not depend on the position, $G_{kij} = W_{ck} / 49$, so:
#
# - Grad-CAM's weights are $W_{ck}/49$: CAM divided by 49;
# - XGrad-CAM's are $\sum_{ij} \frac{A_{kij}}{\sum_{ab} A_{kab}} \frac{W_{ck}}{49} = W_{ck}/49$
#   too (the shares sum to 1): the same map again;
# - Layer-CAM's $\mathrm{ReLU}(G_{kij}) A_{kij}$ is CAM with the negative weights set to 0, and
#   Grad-CAM++'s $\alpha_{kij} = 1 / (2 + \sum_{ab} A_{kab}\, G_k)$ is one number per channel:
#   both keep the channels that vote for the cat, reweighted a little;
# - Score-CAM's weights come from forward passes, but the channels whose masks raise the
#   cat's probability are mostly those with large $W_{ck}$.
#
# So at the last layer, with one class and 7 x 7 maps, the variants are (nearly) one method.
# They differ where the gradient varies over positions: at `blocks.10` the five maps disagree
# (mean correlation near 0.1), and none of them covers the cat's face as the `head` maps do.
# A mid-level layer's channels are generic parts, and which weighting "explains the cat" there
# is exactly what the variants argue about.

# %% [markdown]
# ## Which layer?
#
# Later layers have coarser maps (7 x 7 at `head`) but more class-specific features; earlier
# layers have finer maps (14 x 14 at `blocks.10`, 28 x 28 at `blocks.4`) whose features are
# more generic. Layer-CAM was designed for the early ones.

# %%
layers = ["blocks.4", "blocks.10", "head"]
fig, axes = plt.subplots(2, len(layers), figsize=(10, 7))
for column, layer in enumerate(layers):
    for row, method in enumerate(["grad_cam", "layer_cam"]):
        result = attribute(loaded, x, cat, method, layer)
        axes[row, column].imshow(overlay(picture, normalize(result, sign="positive", scaling="max")[0]))
        axes[row, column].set_title(f"{method} at {layer}", fontsize=10)
        axes[row, column].axis("off")
colorbar(axes[:, -1], "jet", label="map / its maximum")
plt.show()

# %% [markdown]
# ## A cat and a dog
#
# A map that explains a class should move when the class does. `make_scene` builds one
# picture from two bundled images and remembers where each one is, so we can check with the
# **pointing game** (Zhang et al. 2016): is the map's maximum on the right animal?

# %%
scene = make_scene(["chelsea", "chicky_512"])
xs = loaded.inputs(scene.image)
boxes = scene.boxes_at(224, 224)
fig, axes = plt.subplots(1, 2, figsize=(11, 5))
for ax, box in zip(axes, boxes):
    result = grad_cam(loaded, xs, box.target)
    hit = bool(pointing_game(result, [box])[0])
    ax.imshow(overlay(loaded.preprocess.inverse(xs[0]), normalize(result, scaling="max")[0]))
    ax.add_patch(Rectangle((box.left, box.top), box.width, box.height, fill=False, color="white", linewidth=2))
    ax.set_title(f"Grad-CAM for {loaded.classes[box.target]}: {'hit' if hit else 'miss'}")
    ax.axis("off")
colorbar(axes[-1], "jet", label="Grad-CAM / its maximum")
plt.show()

# %% [markdown]
# ## Guided Grad-CAM
#
# Grad-CAM is class-discriminative but coarse; guided backpropagation is sharp but, as
# notebook 02 showed, hardly class-discriminative. Selvaraju et al. multiply them, pixel by
# pixel and channel by channel: the guided gradient, kept only where the class evidence is.
# Our implementation differentiates one forward pass twice (to the layer with the ordinary
# gradient, to the input with the guided rule).
#
# Like the paper, we show these gradients **as images**: each colour channel's value, divided
# by the 99th percentile of $|\text{value}|$ and clipped, moves that channel from mid-grey
# (0) towards bright (positive) or dark (negative). Grey means nothing; coloured edges are
# where the map has something to say. (A grey-scale magnitude of the same numbers looks like
# a speckled blob: the edges are in the *signs* and colours.)

# %%
def as_image(result):
    """(1, 3, H, W) signed map -> (H, W, 3) in [0, 1]: 0 is mid-grey, the 99th percentile of |value| is 0 or 1."""
    top = result.abs().flatten().quantile(0.99).clamp(min=1e-12)
    return (0.5 + 0.5 * (result[0] / top).clamp(-1, 1)).permute(1, 2, 0).numpy()


fig, axes = plt.subplots(2, 3, figsize=(12, 8.4))
for row, box in zip(axes, boxes):
    name = loaded.classes[box.target]
    row[0].imshow(as_image(attribute(loaded, xs, box.target, "guided_backprop")))
    row[0].set_title(f"guided backprop, {name}", fontsize=10)
    heat = normalize(grad_cam(loaded, xs, box.target), scaling="max")[0]
    row[1].imshow(overlay(loaded.preprocess.inverse(xs[0]), heat))
    row[1].set_title(f"Grad-CAM, {name}", fontsize=10)
    row[2].imshow(as_image(attribute(loaded, xs, box.target, "guided_grad_cam")))
    row[2].set_title(f"guided Grad-CAM, {name}", fontsize=10)
    for ax in row:
        ax.axis("off")
colorbar(axes[:, 1], "jet", label="Grad-CAM / its maximum")
plt.show()

# %% [markdown]
# Guided backpropagation draws the edges of both animals whichever class we ask for. Guided
# Grad-CAM keeps the edges inside the class's Grad-CAM blob: the cat's eye and nose for
# "Egyptian cat", the dog's face for "Pekinese", and grey (nothing) over the other animal. It is sharper than
# Grad-CAM, but its detail is guided backpropagation's, with the same caveat: the detail says
# where the image has edges, not what the network used (notebook 02's randomisation test).

# %% [markdown]
# ## Explore
#
# In the explorer, try the CAM methods on other images and layers; pick the second or third
# class in the class list; and use "compare" to put Grad-CAM next to guided backpropagation.

# %%
explorer = Explorer(loaded, method="grad_cam")
explorer.widget

# %% [markdown]
# ## Self-check: predict, then run
#
# 1. CAM for the cat, and CAM for "plastic bag", on the photo of the cat alone: their
#    classifier weights differ, but the feature maps $A$ are the same. Will the two maps be
#    similar?
# 2. At `head`, how many of the 49 positions does Grad-CAM's final ReLU set to 0 for the cat?
#
# <details><summary>Answers</summary>
#
# 1. Very similar (a correlation of about 0.9). On a photo of one cat, the strongly active
#    feature maps are all on the cat, and any class's weights mostly rescale them: the map
#    says where the network's features fire, whatever the class. Class-discriminative maps
#    need a picture where the classes are in different places, as in the cat-and-dog picture
#    above.
# 2. None. The features at `head` come out of a ReLU6, so $A \geq 0$, and the cat's weights on
#    the active channels are mostly positive: $\sum_k W_{ck} A_{kij} > 0$ everywhere. The
#    ReLU matters for other classes and other layers, where negative evidence appears.
#
# </details>

# %%
bag = loaded.classes.index("plastic bag")
for_cat, for_bag = (attribute(loaded, x, c, "cam", upsample=False, relu=False)[0, 0] for c in (cat, bag))
print("1. correlation of CAM(cat) and CAM(plastic bag):",
      round(torch.corrcoef(torch.stack([for_cat.flatten(), for_bag.flatten()]))[0, 1].item(), 2))
signed = for_cat / 49  # Grad-CAM at head before its ReLU
print("2. positions the ReLU sets to 0:", int((signed < 0).sum()), "of 49; the maximum stays at",
      divmod(int(signed.argmax()), 7))

# %% [markdown]
# ## Recap
#
# - **CAM**: the classifier's weights for class $c$ applied to the last feature maps; it
#   needs global average pooling followed by one linear layer.
# - **Grad-CAM**: the same with the average gradient as weights, for any layer; at the last
#   layer of such a network it is CAM divided by $hw$.
# - The variants differ in the weights; Score-CAM needs one forward pass per map.
# - The maps are coarse but **class-discriminative**: on the cat-and-dog picture they point
#   at the right animal; guided Grad-CAM adds the edges of the class's own object.

# %% [markdown]
# ## References
#
# - Zhou, Khosla, Lapedriza, Oliva & Torralba 2016, "Learning Deep Features for
#   Discriminative Localization" (CAM): <https://arxiv.org/abs/1512.04150>
# - Selvaraju, Cogswell, Das, Vedantam, Parikh & Batra 2017, "Grad-CAM: Visual Explanations
#   from Deep Networks via Gradient-based Localization": <https://arxiv.org/abs/1610.02391>
# - Chattopadhay, Sarkar, Howlader & Balasubramanian 2018, "Grad-CAM++: Generalized
#   Gradient-based Visual Explanations for Deep Convolutional Networks":
#   <https://arxiv.org/abs/1710.11063>
# - Fu, Hu, Dong, Xu & Wang 2020, "Axiom-based Grad-CAM: Towards Accurate Visualization and
#   Explanation of CNNs" (XGrad-CAM): <https://arxiv.org/abs/2008.02312>
# - Jiang, Zhang, Hou, Cheng & Wei 2021, "LayerCAM: Exploring Hierarchical Class Activation
#   Maps for Localization": <https://doi.org/10.1109/TIP.2021.3089943>
# - Wang, Wang, Du, Yang, Zhang, Ding, Mardziel & Hu 2020, "Score-CAM: Score-Weighted Visual
#   Explanations for Convolutional Neural Networks": <https://arxiv.org/abs/1910.01279>
# - Zhang, Bargal, Lin, Brandt, Shen & Sclaroff 2016, "Top-down Neural Attention by Excitation
#   Backprop" (the pointing game): <https://arxiv.org/abs/1608.00507>
