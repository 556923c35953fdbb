# %% [markdown]
# # Lesson 5: your first CNN, LeNet-5 on real digits
#
# **This lesson teaches** how the pieces of lessons 1-4 stack into a network that reads
# handwriting: building LeNet-5 with `Sequential` (shapes inferred), counting its parameters,
# the softmax cross-entropy loss and its gradient, checking the whole model's backward pass,
# training with a held-out validation split, and reading the results: learning curves, test
# accuracy, the confusion matrix, the learned filters and the feature maps of one digit.
# **Time: about 45 minutes** (training takes about 30 seconds on a laptop CPU).
#
# `SCRATCHNET_QUICK=1` trains on 2,000 digits for one epoch (what the tests run). Figures go to
# `$SCRATCHNET_FIGURES` (or a fresh temporary folder), never into the repository.

# %%
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

import scratchnet as sn
from scratchnet import metrics, viz
from scratchnet.datasets import load_mnist_sample
from scratchnet.gradcheck import check_model
from scratchnet.layers import Activation, Conv2D, Dense, Flatten, MaxPool2D

QUICK = os.environ.get("SCRATCHNET_QUICK") == "1"   # the tests' short run: 2,000 digits, one epoch
FIGURES = Path(os.environ.get("SCRATCHNET_FIGURES") or tempfile.mkdtemp(prefix="scratchnet-lesson05-"))
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
# ## 1. The data, and three splits
#
# The bundled sample is real MNIST: 8,000 digits to train on and 2,000 to test. We hold out the
# **last 10% of the training digits** for validation (`validation_split=0.1`): that is what we
# look at while training and choosing settings. The test digits are touched once, at the very
# end: a number we tuned on would no longer be an honest estimate of new data.

# %%
(x_train, y_train), (x_test, y_test) = load_mnist_sample()
if QUICK:
    x_train, y_train, x_test, y_test = x_train[:2000], y_train[:2000], x_test[:500], y_test[:500]
print(f"train {x_train.shape} (the last 10% validate), test {x_test.shape}; pixels in [0, 1]")
print("digits per class in training:", np.bincount(y_train, minlength=10))

# %% [markdown]
# ## 2. LeNet-5 with Sequential
#
# Two convolution + ReLU + max-pool stages, then three Dense layers. `Sequential` builds every
# layer from the input shape, so nobody computes $16 \cdot 5 \cdot 5 = 400$ by hand. A
# convolution with $F$ filters of size $k \times k$ over $C$ channels has
#
# $$ (k \cdot k \cdot C + 1) \cdot F \text{ parameters: } (5 \cdot 5 \cdot 1 + 1) \cdot 6 = 156, \quad
#    (5 \cdot 5 \cdot 6 + 1) \cdot 16 = 2{,}416, $$
#
# independent of the image size (the same weights slide everywhere), while the first Dense
# layer has $(400 + 1) \cdot 120 = 48{,}120$: most of the parameters sit in the head.

# %%
model = sn.Sequential([
    Conv2D(6, 5, padding="same"), Activation("relu"), MaxPool2D(2),    # 28x28x6 -> 14x14x6
    Conv2D(16, 5), Activation("relu"), MaxPool2D(2),                   # 10x10x16 -> 5x5x16
    Flatten(),                                                         # 400
    Dense(120, activation="relu"), Dense(84, activation="relu"),
    Dense(10),                                                         # logits
], input_shape=(28, 28, 1), seed=0)
model.compile(optimizer=sn.Adam(lr=2e-3), loss="cross_entropy")
model.summary()

# %% [markdown]
# ## 3. The loss and its gradient
#
# The last layer outputs 10 *logits* $z$. Softmax turns them into probabilities and the
# cross-entropy is the negative log-probability of the true class $t_n$, averaged over the batch:
#
# $$ p_{nk} = \frac{e^{z_{nk}}}{\sum_j e^{z_{nj}}}, \qquad
#    L = -\frac{1}{N} \sum_n \log p_{n, t_n}, \qquad
#    \frac{\partial L}{\partial z_{nk}} = \frac{1}{N}\left(p_{nk} - [k = t_n]\right). $$
#
# The gradient is short because the softmax's Jacobian and the log cancel; that is why the loss
# takes logits and applies the softmax itself (computed as $z - \max z - \log\sum e^{z - \max z}$,
# so large logits never overflow). Before training anything, check the whole chain's backward
# numerically: on random inputs in float64 (MNIST's many exact zeros would sit on ReLU's kink).

# %%
probe = np.random.default_rng(0).normal(size=(2, 28, 28, 1))
report = check_model(model, probe, y_train[:2], max_elements=10)
print(report)
assert report.passed

# %% [markdown]
# ## 4. Training
#
# Adam, batches of 32, the last 10% validating after every epoch.

# %%
history = model.fit(x_train, y_train, epochs=1 if QUICK else 4, batch_size=32, validation_split=0.1,
                    verbose=0 if QUICK else 1)
for epoch, (loss, val) in enumerate(zip(history["loss"], history["val_accuracy"]), start=1):
    print(f"epoch {epoch}: training loss {loss:.3f}, validation accuracy {val:.3f}")
save(viz.plot_history(history, title="LeNet-5 on MNIST digits"), "05_curves.png")

# %% [markdown]
# ## 5. The test set, once
#
# Now, and only now, the test digits. The confusion matrix counts (true class, predicted class)
# pairs: the diagonal is right, everything else shows *which* digits get mixed up (4 and 9,
# 3 and 5, 7 and 1 are the classic pairs).

# %%
predicted = model.predict_classes(x_test)
accuracy = metrics.accuracy(y_test, predicted)
print(f"test accuracy: {accuracy:.4f}")
assert accuracy > (0.5 if QUICK else 0.95)   # chance is 0.1
cm = metrics.confusion_matrix(y_test, predicted, n_classes=10)
print("per-class accuracy:", np.round(metrics.per_class_accuracy(cm), 3))
save(viz.plot_confusion_matrix(cm, title="test confusion matrix"), "05_confusion.png")
wrong = np.flatnonzero(predicted != y_test)[:16]
if len(wrong):
    save(viz.plot_images(x_test[wrong], y_test[wrong], predicted[wrong], n=len(wrong)), "05_mistakes.png")

# %% [markdown]
# ## 6. What did it learn?
#
# The first layer's six 5 x 5 filters (compare them with the hand-made kernels of lesson 1: after
# a few epochs they are noisy, and only some are clear bright-dark bands, edge detectors of a kind),
# and the six feature maps one digit produces after the first ReLU: each filter lights up where
# its pattern occurs.

# %%
save(viz.plot_filters(model), "05_filters.png")
save(viz.plot_feature_maps(model, x_test[0], layer=1, label=int(y_test[0])), "05_feature_maps.png")

# %% [markdown]
# ## Exercise (graded): softmax cross-entropy
#
# The loss that trained this network, from logits, stable for logits of size 1000:
#
# ```
# scratchnet exercise start softmax_cross_entropy
# scratchnet exercise check softmax_cross_entropy.py
# ```
#
# Derive $\partial L / \partial z$ yourself first (section 3 gives the answer, so cover it).
# Then try: how does test accuracy change with `Adam(lr=2e-2)`? Without the max-pools? With
# `validation_split=0`, what could you no longer do honestly? Below, the grader runs on
# scratchnet's own `CrossEntropy` loss in the exercise's place.

# %%
from scratchnet.exercises import check  # noqa: E402

scratch = tempfile.TemporaryDirectory(prefix="scratchnet-exercise-")  # deleted when Python exits
workdir = Path(scratch.name)
reference = workdir / "scratchnet_own.py"
reference.write_text("# scratchnet exercise: softmax_cross_entropy\n"
                     "from scratchnet.losses import CrossEntropy as SoftmaxCrossEntropy\n")
report = check(reference)
print(report)
assert report.passed
