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
import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle

from vizwidgets.attribution import attribute, grad_cam
from vizwidgets.checks import check_cam, check_grad_cam
from vizwidgets.data import make_scene
from vizwidgets.features import activations
from vizwidgets.metrics import pointing_game
from vizwidgets.models import load_model
from vizwidgets.viz import normalize, overlay
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
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
axes[0].imshow(picture)
axes[0].set_title("the image")
axes[1].imshow(grad_cam(loaded, x, cat, upsample=False)[0, 0], cmap="jet")
axes[1].set_title("Grad-CAM at head, 7 x 7")
axes[2].imshow(overlay(picture, normalize(grad_cam(loaded, x, cat), scaling="max")[0]))
axes[2].set_title("upsampled, over the image")
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# ## The family
#
# The variants change only the weights of the feature maps:
#
# - **Grad-CAM++** (Chattopadhyay et al. 2018) weights positive gradients per position, which
#   helps when a class appears several times;
# - **XGrad-CAM** (Fu et al. 2020) weights each gradient by the share of the activation there;
# - **Layer-CAM** (Jiang et al. 2021) keeps one weight per position, $\mathrm{ReLU}(G) A$,
#   and so works on early layers too;
# - **Score-CAM** (Wang et al. 2020) uses no gradient at all: each map, used as a mask on the
#   image, is weighted by the class probability of the masked image. Over all 1280 maps that
#   is 1280 forward passes (about 17 s here); `fast_score_cam` scores only the 32 most active.

# %%
methods = ["cam", "grad_cam", "grad_cam_pp", "xgrad_cam", "layer_cam", "fast_score_cam"]
fig, axes = plt.subplots(1, len(methods), figsize=(3 * len(methods), 3.4))
for ax, method in zip(axes, methods):
    result = attribute(loaded, x, cat, method)
    ax.imshow(overlay(picture, normalize(result, sign="positive", scaling="max")[0]))
    ax.set_title(method, fontsize=10)
    ax.axis("off")
plt.show()

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
fig, axes = plt.subplots(1, 2, figsize=(10, 5))
for ax, box in zip(axes, boxes):
    result = grad_cam(loaded, xs, box.target)
    hit = bool(pointing_game(result, [box])[0])
    ax.imshow(overlay(loaded.preprocess.inverse(xs[0]), normalize(result, scaling="max")[0]))
    ax.add_patch(Rectangle((box.left, box.top), box.width, box.height, fill=False, color="white", linewidth=2))
    ax.set_title(f"Grad-CAM for {loaded.classes[box.target]}: {'hit' if hit else 'miss'}")
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Guided Grad-CAM
#
# Grad-CAM is class-discriminative but coarse; guided backpropagation is sharp but, as
# notebook 02 showed, hardly class-discriminative. Selvaraju et al. multiply them: the sharp
# detail, only where the class evidence is. Our implementation differentiates one forward
# pass twice (to the layer with the ordinary gradient, to the input with the guided rule).

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 5))
for ax, box in zip(axes, boxes):
    result = attribute(loaded, xs, box.target, "guided_grad_cam")
    ax.imshow(normalize(result, sign="positive", scaling="percentile", reduce="max_abs")[0], cmap="gray")
    ax.set_title(f"guided Grad-CAM for {loaded.classes[box.target]}")
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Explore
#
# In the explorer, try the CAM methods on other images and layers; pick the second or third
# class in the class list; and use "compare" to put Grad-CAM next to guided backpropagation.

# %%
explorer = Explorer(loaded, method="grad_cam")
explorer.widget

# %% [markdown]
# ## Recap
#
# - **CAM**: the classifier's weights for class $c$ applied to the last feature maps; it
#   needs global average pooling followed by one linear layer.
# - **Grad-CAM**: the same with the average gradient as weights, for any layer; at the last
#   layer of such a network it is CAM divided by $hw$.
# - The variants differ in the weights; Score-CAM needs one forward pass per map.
# - The maps are coarse but **class-discriminative**: on the cat-and-dog picture they point
#   at the right animal; guided Grad-CAM adds detail.
