# %% [markdown]
# # Welcome: a pretrained network and its images
#
# This course is about looking inside a convolutional network: which pixels made it say
# "cat", what its layers respond to, how to fool it. Before we explain a network, we need
# one, and some images to show it.
#
# In this notebook you will:
#
# - load a pretrained ImageNet classifier that ships with the course (no download);
# - look at the bundled sample images;
# - see how an image becomes the tensor the network reads, and back;
# - read the network's predictions, and write **softmax** and **top-k** yourself;
# - find classes by name, and list the layers that later notebooks look into;
# - build a picture with two objects in it: the question the rest of the course answers.
#
# **Exercises.** A cell with `# YOUR CODE HERE` is yours to complete: replace the
# `raise NotImplementedError(...)` line with your code. The cell after it calls a `check_...`
# function that tests your code and says "Correct!" or explains what went wrong. Until you
# have written your code, these cells stop with `NotImplementedError`; that is expected. If
# the hint is not enough, run the check again with `hint=2`, e.g.
# `check_softmax(softmax, hint=2)`, for more help.

# %% [markdown]
# All imports come first. `vizwidgets` is the package behind the course.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle
from PIL import Image

from vizwidgets.checks import check_softmax, check_top_k
from vizwidgets.data import load_image, make_scene, sample_images
from vizwidgets.models import load_model

# %% [markdown]
# ## The network
#
# `load_model()` returns the course's default network, EfficientNet-Lite0, trained on
# ImageNet: 1000 classes, from "tench" to "toilet tissue". Its weights come with the course's
# Python packages, so nothing is downloaded.

# %%
loaded = load_model()
print(loaded.describe())

# %% [markdown]
# `loaded` bundles what every later method needs: the PyTorch module (`loaded.model`), its
# preprocessing (`loaded.preprocess`), the class names (`loaded.classes`) and the layer that
# CAM methods use by default (`loaded.default_layer`).

# %%
print(type(loaded.model).__name__, "in training mode?", loaded.model.training)
print(loaded.classes)

# %% [markdown]
# ## The images
#
# The course ships a dozen small photos. Each comes with the class the default network
# gives it (none for two that it is unsure about).

# %%
samples = sample_images()
for sample in samples:
    print(f"{sample.name:14} {sample.description:36} -> {sample.expected_label or '(none)'}")

# %% [markdown]
# The same images in a grid, titled with the network's expected answer.

# %%
fig, axes = plt.subplots(3, 4, figsize=(12, 9))
for ax, sample in zip(axes.flat, samples):
    ax.imshow(load_image(sample.name))
    ax.set_title(f"{sample.name}\n{sample.expected_label or '(no confident class)'}", fontsize=10)
    ax.axis("off")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## From picture to tensor
#
# The network does not see a photo: it sees a tensor of shape `(N, 3, 224, 224)`, a batch of
# `N` images with 3 colour channels of 224 x 224 pixels. `loaded.preprocess` makes it.

# %%
x = loaded.preprocess("chelsea")
print("shape:", tuple(x.shape), " dtype:", x.dtype)
print(f"values from {x.min().item():.4f} to {x.max().item():.4f}")

# %% [markdown]
# Two steps happen. First the whole photo is resized to 224 x 224 (squeezed, not cropped, so
# every pixel of the input maps to a known place in the photo). Then each channel value
# $x \in \{0, \dots, 255\}$ is centred and scaled the way EfficientNet-Lite was trained:
#
# $$x' = \frac{x - 127}{128}, \qquad x' \in \left[-\tfrac{127}{128},\ 1\right].$$
#
# Let us redo both steps by hand and compare.

# %%
photo = load_image("chelsea")
pixels = np.asarray(photo.resize((224, 224), Image.Resampling.BICUBIC), dtype=np.float32)
by_hand = torch.from_numpy((pixels - 127) / 128).permute(2, 0, 1)  # HWC -> CHW
print("photo size (width, height):", photo.size)
print("largest difference from preprocess:", (by_hand - x[0]).abs().max().item())

# %% [markdown]
# `preprocess.inverse` goes back: it undoes the normalisation and returns an `(H, W, 3)`
# array in [0, 1] for `plt.imshow`. This is exactly what the network sees; note the squeeze.

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
left.imshow(photo)
left.set_title(f"the photo, {photo.size[0]} x {photo.size[1]}")
right.imshow(loaded.preprocess.inverse(x[0]))
right.set_title("what the network sees, 224 x 224")
for ax in (left, right):
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Predictions
#
# `loaded.predict(image, k)` preprocesses an image, runs the network and returns the `k` most
# probable classes.

# %%
for prediction in loaded.predict("chelsea", k=5):
    print(f"{prediction.probability:6.1%}  {prediction.index:4}  {prediction.label}")

# %% [markdown]
# The same for a few images, as bar charts. The network is often confident, but not always:
# look at the astronaut, which is not one of the 1000 classes.

# %%
names = ["chelsea", "coffee", "squirrel_cls", "astronaut"]
fig, axes = plt.subplots(len(names), 2, figsize=(9, 2.4 * len(names)),
                         gridspec_kw={"width_ratios": [1, 2]})
for (image_ax, bar_ax), name in zip(axes, names):
    top5 = loaded.predict(name, k=5)
    image_ax.imshow(load_image(name))
    image_ax.axis("off")
    bar_ax.barh([p.label for p in top5][::-1], [p.probability for p in top5][::-1])
    bar_ax.set_xlim(0, 1)
    bar_ax.set_title(name, fontsize=10)
axes[-1, 1].set_xlabel("probability")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Logits and probabilities
#
# Calling `loaded(x)` runs the network on a preprocessed batch. It returns **logits**: one
# unbounded score per class, shape `(N, 1000)`. They are not probabilities yet.

# %%
logits = loaded(x)
print("logits shape:", tuple(logits.shape))
print("the first five logits:", logits[0, :5])
print(f"largest logit {logits.max().item():.2f} for class {logits.argmax().item()}")

# %% [markdown]
# ### Exercise 1: softmax
#
# Softmax turns the logits $z_1, \dots, z_C$ of one image into probabilities:
#
# $$p_i = \frac{e^{z_i}}{\sum_{j=1}^{C} e^{z_j}}.$$
#
# Written literally, it breaks for large logits: $e^{1000}$ is `inf` in float32, and
# `inf / inf` is `nan`. But subtracting the same number $m$ from every logit does not change
# $p$ (the factor $e^{-m}$ cancels), so compute it with $m = \max_j z_j$: then the largest
# exponent is $e^0 = 1$ and nothing overflows.
#
# Write `softmax(logits)` for a tensor of shape `(C,)` or a batch `(N, C)`, along the last
# dimension (`dim=-1`), without `torch.softmax`. Useful: `logits.max(dim=-1, keepdim=True)`,
# `torch.exp`, `.sum(dim=-1, keepdim=True)`.

# %%
def softmax(logits):
    """Probabilities from logits of shape (C,) or (N, C), along the last dimension."""
    # BEGIN SOLUTION write softmax (subtract each row's maximum before exp)
    shifted = logits - logits.max(dim=-1, keepdim=True).values
    exponentials = torch.exp(shifted)
    return exponentials / exponentials.sum(dim=-1, keepdim=True)
    # END SOLUTION


# %% [markdown]
# Run the check. It tries your function on several inputs, including logits of 1000 and a
# batch, and tells you what is wrong if something is.

# %% tags=["check"]
check_softmax(softmax)

# %% [markdown]
# ### Exercise 2: top-k
#
# Write `top_k(logits, k)` that returns `(probabilities, indices)`: the `k` largest softmax
# probabilities, largest first, and the class indices they belong to. For logits of shape
# `(C,)` both have shape `(k,)`; for a batch `(N, C)`, shape `(N, k)`. Use your `softmax`,
# then `torch.topk` or `torch.argsort(..., descending=True)`.

# %%
def top_k(logits, k):
    """The k most probable classes: (probabilities, indices), largest first."""
    # BEGIN SOLUTION write top_k with your softmax and torch.topk
    probabilities = softmax(logits)
    values, indices = torch.topk(probabilities, k, dim=-1)
    return values, indices
    # END SOLUTION


# %% tags=["check"]
check_top_k(top_k)

# %% [markdown]
# Now use your own functions on the network: the top 5 for the espresso photo. They should
# agree with `loaded.predict("coffee")`.

# %% tags=["check"]
coffee_logits = loaded(loaded.preprocess("coffee"))[0]
probabilities, indices = top_k(coffee_logits, 5)
for probability, index in zip(probabilities.tolist(), indices.tolist()):
    print(f"{probability:6.1%}  {index:4}  {loaded.classes[index]}")

# %% [markdown]
# ## Finding classes by name
#
# Many methods explain one class, given by its index. `loaded.classes` turns indices into
# names and names (or parts of names) into indices.

# %%
classes = loaded.classes
print(len(classes), "classes; class 285 is", repr(classes[285]))
print("'tabby' is class", classes.index("tabby"))
print("'pekin' is class", classes.index("pekin"))

# %% [markdown]
# `search` lists every class whose name contains a fragment, ignoring case.

# %%
for index, name in classes.search("cat"):
    print(index, name)

# %% [markdown]
# A fragment that matches several classes is refused, with a message that lists them.

# %%
try:
    classes.index("cat")
except ValueError as error:
    print(error)

# %% [markdown]
# ## Inside the network: its layers
#
# Later notebooks look at what happens *inside* the network: gradients at the input,
# activations and Grad-CAM at a layer, features that a channel responds to. These are the
# layers they pick from, from input to output, with the shape of their output for one image
# (channels, height, width).

# %%
for layer in loaded.layers():
    channels, height, width = layer.shape
    print(f"{layer.name:10} {layer.type:7} {channels:5} channels at {height:3} x {width:3}")
print("default layer for CAM methods:", loaded.default_layer)

# %% [markdown]
# Going deeper, the maps get smaller (112 x 112 down to 7 x 7) and the channels more
# numerous (32 up to 1280). Early layers keep detail and respond to edges and colours; the
# last one, `head`, has coarse 7 x 7 maps of high-level features. That is why CAM methods
# explain a class with the `head` layer, and why their heat maps are blurry.

# %% [markdown]
# ## Two objects in one picture
#
# `make_scene` puts images side by side in one *scene* and remembers where each one went:
# ground-truth boxes, which later notebooks use to check whether an explanation points at the
# right object.

# %%
scene = make_scene(["chelsea", "chicky_512"])
print("scene size:", scene.image.size)
for box in scene.boxes:
    print(box)

# %% [markdown]
# Draw the boxes on the scene, labelled with each part's expected class.

# %%
fig, ax = plt.subplots(figsize=(9, 4.5))
ax.imshow(scene.image)
for box, colour in zip(scene.boxes, ["tab:orange", "tab:cyan"]):
    ax.add_patch(Rectangle((box.left, box.top), box.width, box.height,
                           fill=False, edgecolor=colour, linewidth=3))
    ax.text(box.left + 6, box.top + 18, f"{box.label}: {classes[box.target]}",
            color="white", backgroundcolor=colour, fontsize=10)
ax.axis("off")
plt.show()

# %% [markdown]
# What does the network make of it? It sees both animals, squeezed into one 224 x 224 input.
#
# **Predict, then run.** Alone, Chelsea is an "Egyptian cat" at 80%. What will that
# probability be in the scene?
#
# <details><summary>Answer</summary>
#
# Far lower: under 10%. The softmax shares one unit of probability among all the classes the
# picture supports, so cat classes and dog classes split it; and each animal is now squeezed to
# half the width, so it looks less like its training pictures.
# </details>

# %%
for prediction in loaded.predict(scene.image, k=5):
    print(f"{prediction.probability:6.1%}  {prediction.label}")
scene_probabilities = loaded(loaded.preprocess(scene.image)).softmax(dim=-1)[0]
for box in scene.boxes:
    print(f"{classes[box.target]!r} (the {box.label} box): "
          f"{scene_probabilities[box.target].item():.1%}")

# %% [markdown]
# So the network says "cat" and "dog" about the same picture. *Which pixels* made it say
# "Egyptian cat"? Does the answer fall inside the cat's box? That is the question the next
# notebooks answer.

# %% [markdown]
# ## Recap
#
# - `load_model()` gives a pretrained network with its preprocessing, class names and
#   layers; nothing is downloaded.
# - The network reads a `(N, 3, 224, 224)` tensor: the photo resized to 224 x 224 and
#   normalised as $(x - 127) / 128$; `preprocess.inverse` turns it back into a picture.
# - It outputs logits; softmax, computed stably by subtracting the maximum, turns them into
#   probabilities, and top-k picks the most probable classes.
# - Classes can be found by index, name or fragment; `loaded.layers()` lists the layers and
#   their output shapes, from 112 x 112 down to 7 x 7.
# - A scene (`make_scene`) has two objects and their boxes: ground truth for explanations.

# %% [markdown]
# ## What comes next
#
# 1. **Saliency**: the gradient of a class score with respect to the input pixels.
# 2. **Guided backprop and deconvnet**: changing how ReLUs pass gradients back.
# 3. **The CAM family**: CAM, Grad-CAM, Grad-CAM++, Score-CAM, Layer-CAM and XGrad-CAM heat
#    maps from a layer's activations.
# 4. **Integrated Gradients**: attributions that add up to the change in the score.
# 5. **LRP**: layer-wise relevance propagation, rule by rule.
# 6. **Feature and class maximisation**: images that excite a channel or a class.
# 7. **Fooling images**: tiny changes that flip the prediction.
# 8. **Style transfer**: the network's features as a description of texture.
# 9. **Evaluating explanations**: deletion and insertion, the pointing game, sanity checks.
# 10. **Is the model cheating?**: explanations catch a shortcut a model learned, scored
#     against ground truth.
