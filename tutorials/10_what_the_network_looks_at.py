# %% [markdown]
# # Lesson 10: what the network looks at
#
# **This lesson teaches** four ways to turn a trained CNN's gradients into pictures: Grad-CAM
# (which region made the class score high), saliency maps (which pixels the score is sensitive
# to), feature inversion (what a layer remembers of an image) and Deep Dream (what a layer
# likes to see), and a fifth that makes one: style transfer. Each is backpropagation as in
# lessons 2-4, only the gradient is taken with respect to the *input* or to a feature map instead
# of the weights. **Time: about 50 minutes.**
#
# `SCRATCHNET_QUICK=1` trains on fewer digits and runs fewer optimisation steps (what the tests
# run). Figures go to `$SCRATCHNET_FIGURES` (or a fresh temporary folder), never into the repository.

# %%
import os
import sys
import tempfile
from pathlib import Path

import scratchnet as sn
from scratchnet import interpret, metrics
from scratchnet.datasets import load_mnist_sample, make_patterns
from scratchnet.layers import Activation, Conv2D, Dense, Flatten, MaxPool2D
from scratchnet.style_transfer import plot_style_transfer

QUICK = os.environ.get("SCRATCHNET_QUICK") == "1"   # the tests' short run: fewer digits and steps
FIGURES = Path(os.environ.get("SCRATCHNET_FIGURES") or tempfile.mkdtemp(prefix="scratchnet-lesson10-"))
FIGURES.mkdir(parents=True, exist_ok=True)
if not os.environ.get("SCRATCHNET_FIGURES"):
    print(f"figures go to {FIGURES}, a new temporary folder: delete it when you are done")


def save(figure, name):
    """Write the figure to FIGURES (never into the repository); a notebook also shows it."""
    path = FIGURES / name
    figure.savefig(path, dpi=100)
    print(f"figure: {path}")
    if "ipykernel" in sys.modules:
        from IPython.display import Image, display
        display(Image(filename=str(path)))


# %% [markdown]
# ## 1. A model to look into
#
# A small CNN trained on the digits, validated on the last 10% of its training data; the test
# digits are only predicted once, to report accuracy and to pick the images we explain.

# %%
(x_train, y_train), (x_test, y_test) = load_mnist_sample()
if QUICK:
    x_train, y_train = x_train[:1000], y_train[:1000]
model = sn.Sequential([
    Conv2D(8, 3, padding="same"), Activation("relu"), MaxPool2D(2),      # 14x14x8
    Conv2D(16, 3, padding="same"), Activation("relu"), MaxPool2D(2),     # 7x7x16
    Flatten(), Dense(10),
], input_shape=(28, 28, 1), seed=0)
model.compile(optimizer=sn.Adam(lr=2e-3), loss="cross_entropy")
history = model.fit(x_train, y_train, epochs=1 if QUICK else 3, batch_size=32, validation_split=0.1,
                    verbose=0)
print(f"validation accuracy {history['val_accuracy'][-1]:.3f}")
predicted = model.predict_classes(x_test)
print(f"test accuracy: {metrics.accuracy(y_test, predicted):.4f}")
examples = x_test[:6]

# %% [markdown]
# ## 2. Grad-CAM
#
# Take a convolution layer's output $A$ (shape $h \times w \times K$) and the class score $y^c$
# (the logit, before the softmax). Backpropagate $y^c$ to $A$ and weight each channel by how much
# the score depends on it on average:
#
# $$ \alpha_k = \frac{1}{hw} \sum_{i,j} \frac{\partial y^c}{\partial A_{ijk}}, \qquad
#    \text{Grad-CAM}^c = \operatorname{ReLU}\Big(\sum_k \alpha_k A_{\cdot\cdot k}\Big), $$
#
# upsampled to the image (Selvaraju et al. 2017). The ReLU keeps the evidence *for* the class.
# Behind a Flatten + Dense head the gradient differs from cell to cell, and averaging it can
# cancel out; the element-wise variant $\operatorname{ReLU}(\sum_k \partial y^c/\partial A_k \odot A_k)$
# (HiResCAM) keeps it per cell. Both are drawn below for the layer before the last pooling.

# %%
cam_layer = 4   # the second ReLU: 14x14 maps
maps, figure = interpret.plot_grad_cam(model, examples, layer=cam_layer, labels=y_test[:6])
save(figure, "10_grad_cam.png")
maps_cell, figure = interpret.plot_grad_cam(model, examples, layer=cam_layer, labels=y_test[:6],
                                            weighting="elementwise")
save(figure, "10_grad_cam_elementwise.png")
ink = examples[..., 0] > 0.5
print(f"Grad-CAM (element-wise): mean map value on the strokes {maps_cell[ink].mean():.2f}, "
      f"on the background {maps_cell[~ink].mean():.2f}")

# %% [markdown]
# ## 3. Saliency
#
# The gradient of the class score with respect to the pixels, $|\partial y^c / \partial x|$
# (Simonyan et al. 2014): a first-order Taylor expansion says which pixels would change the score
# most. It is noisy; SmoothGrad averages it over copies of the image with a little noise added,
# $\frac{1}{n}\sum_i \partial y^c(x + \epsilon_i)/\partial x$ (Smilkov et al. 2017).

# %%
results, figure = interpret.plot_saliency(model, examples, labels=y_test[:6], samples=3 if QUICK else 25)
save(figure, "10_saliency.png")
print("saliency maps:", {method: value.shape for method, value in results.items()})

# %% [markdown]
# ## 4. Feature inversion
#
# What does a layer keep of an image? Start from grey noise and optimise the *pixels* (Adam on
# $x$, the network's weights fixed) until the layer's features match the image's:
#
# $$ \min_x \frac{\lVert \phi(x) - \phi(x_0) \rVert^2}{\lVert \phi(x_0) \rVert^2}
#    + \lambda\, \mathrm{TV}(x), $$
#
# with a total-variation term $\mathrm{TV}$ that prefers smooth images (Mahendran & Vedaldi 2015).
# Early layers give back the digit almost exactly; deeper, pooled layers keep *what* and lose
# some of *where*.

# %%
steps = 15 if QUICK else 300
reconstruction, losses, figure = interpret.plot_feature_inversion(model, examples[0], layer=cam_layer,
                                                                  steps=steps)
save(figure, "10_feature_inversion.png")
print(f"feature inversion: loss {losses[0]:.3f} -> {losses[-1]:.3f} in {steps} steps")
assert losses[-1] < losses[0]

# %% [markdown]
# ## 5. Deep Dream
#
# Now the opposite question: change the image so the layer responds *more*. Gradient ascent on
#
# $$ J(x) = \tfrac12\, \operatorname{mean}\big(A(x)^2\big), \qquad x \leftarrow x + \eta\,
#    \frac{\nabla_x J}{\operatorname{mean}|\nabla_x J|}, $$
#
# draws whatever patterns the layer's filters detect into the digit (strokes, edges, endings).

# %%
dreamed, objectives, figure = interpret.plot_deep_dream(model, examples[1], layer=cam_layer,
                                                        steps=5 if QUICK else 40)
save(figure, "10_deep_dream.png")
print(f"deep dream: objective {objectives[0]:.3f} -> {objectives[-1]:.3f}")

# %% [markdown]
# ## 6. Style transfer
#
# Feature inversion matched a layer's features cell by cell. Match only *which channels fire
# together*, wherever in the image, and you keep a texture but lose its layout. With a layer's
# features as a matrix $F$ ($hw$ cells by $C$ channels), the Gram matrix $G = F^\top F / (hwC)$
# holds those co-activations (Gatys et al. 2016). Start from a digit and descend on
#
# $$ \frac{\lVert F_c(x) - F_c(\text{digit}) \rVert^2}{\text{size}}
#    + \beta \sum_{l} \lVert G_l(x) - G_l(\text{stripes}) \rVert^2 $$
#
# (content at the last ReLU, style at both ReLUs): the digit keeps its shape and takes on the
# stripes. The gradient of each term reaches the pixels through the same backward passes as above.
# The style weight $\beta$ sets the balance: at 3 the digit stays readable, at 30 the stripes
# cover it (try it).

# %%
patterns, pattern_classes = make_patterns(20, image_size=28, seed=0)
stripes = patterns[list(pattern_classes).index(1)]   # class 1: vertical stripes
styled, style_losses, figure = plot_style_transfer(model, examples[0], stripes, style_weight=3.0,
                                                   steps=10 if QUICK else 100)
save(figure, "10_style_transfer.png")
print(f"style transfer: loss {style_losses[0]:.3f} -> {style_losses[-1]:.3f}")
assert style_losses[-1] < style_losses[0]

# %% [markdown]
# ## Exercise (graded): the ReLU's backward, the gate every saliency map passes through
#
# Every map above is a gradient that flowed back through the ReLUs: $\partial y/\partial z =
# [z > 0]$, so a unit that was off passes nothing back (which is why saliency is patchy, and
# what "guided backprop" changes). Write it and grade it:
#
# ```
# scratchnet exercise start relu
# scratchnet exercise check relu.py
# ```
#
# Then: compute Grad-CAM for a *wrong* class (`class_index=`) on a digit and explain the map;
# and invert the features of the first ReLU (`layer=1`) instead: what is kept? Below, the grader
# runs on scratchnet's own ReLU in the exercise's place.

# %%
from scratchnet.exercises import check  # noqa: E402

scratch = tempfile.TemporaryDirectory(prefix="scratchnet-exercise-")  # deleted when Python exits
workdir = Path(scratch.name)
reference = workdir / "scratchnet_own.py"
reference.write_text("# scratchnet exercise: relu\nfrom scratchnet.layers import Activation\n\n\n"
                     "def ReLU():\n    return Activation('relu')\n")
report = check(reference)
print(report)
assert report.passed
