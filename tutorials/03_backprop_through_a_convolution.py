# %% [markdown]
# # Lesson 3: backpropagation through a convolution
#
# **This lesson teaches** how to derive $\partial L/\partial x$, $\partial L/\partial W$ and
# $\partial L/\partial b$ of a convolution from its index formula; why the input gradient is a
# *full* convolution with the **flipped** kernel (and what stride does to it); and how to check
# all three numerically. It ends with the graded exercise: the backward pass with loops.
# **Time: about 45 minutes.**
#
# Figures go to `$SCRATCHNET_FIGURES` (or a fresh temporary folder), never into the repository.

# %%
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy.signal import convolve2d, correlate2d

from scratchnet.datasets import load_mnist_sample
from scratchnet.gradcheck import check_layer
from scratchnet.layers import Conv2D

QUICK = os.environ.get("SCRATCHNET_QUICK") == "1"   # the tests' short run (nothing to shorten here)
FIGURES = Path(os.environ.get("SCRATCHNET_FIGURES") or tempfile.mkdtemp(prefix="scratchnet-lesson03-"))
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
# ## 1. Derivation, one channel, stride 1
#
# Forward (lesson 1): $y[i, j] = b + \sum_{u, v} x[i + u,\, j + v]\, w[u, v]$. The layer receives
# $\delta y = \partial L / \partial y$. Every parameter gets the sum of its effects over all the
# outputs it touched (the chain rule, summed over paths):
#
# $$ \frac{\partial L}{\partial b} = \sum_{i,j} \delta y[i, j] \qquad
#    \frac{\partial L}{\partial w[u, v]} = \sum_{i,j} \delta y[i, j]\; x[i + u,\, j + v] $$
#
# so $\delta w = x \star \delta y$: the **input correlated with the output gradient** (a "valid"
# correlation; $\delta y$ plays the kernel). For the input, cell $x[p, q]$ sits in the window of
# every output $(i, j)$ with $p = i + u$, $q = j + v$:
#
# $$ \frac{\partial L}{\partial x[p, q]} = \sum_{u, v} \delta y[p - u,\, q - v]\; w[u, v]
#    \qquad (\delta y \text{ is zero outside its range}) $$
#
# That is a true convolution of $\delta y$ with $w$ ("full": every overlap counts, the result
# is as large as $x$). Written as a correlation, the one operation the forward pass uses, it is
# the correlation of the zero-padded $\delta y$ with the kernel **flipped** in both axes,
# $\tilde w[u, v] = w[k_h - 1 - u,\, k_w - 1 - v]$:
#
# $$ \delta x = \operatorname{pad}_{k-1}(\delta y) \star \tilde w. $$
#
# Two views of the same sum: *gather* (each input cell collects from the outputs it fed, with
# the flipped kernel) and *scatter* (each output cell stamps $\delta y[i,j]\, w$ back onto its window,
# unflipped). Loops scatter; libraries gather.

# %%
def conv_backward_loops(x, w, dy):
    """Scatter form: every output (i, j) sends dy[i, j] * w back to its window."""
    kh, kw = w.shape
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    for i in range(dy.shape[0]):
        for j in range(dy.shape[1]):
            dx[i:i + kh, j:j + kw] += dy[i, j] * w             # += : windows overlap
            dw += dy[i, j] * x[i:i + kh, j:j + kw]
    return dx, dw, dy.sum()


(x_train, _), _ = load_mnist_sample(dtype="float64")
x = x_train[1, :, :, 0]                                            # a real digit, (28, 28)
w = np.array([[1.0, 2.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -3.0]])  # asymmetric: a flip shows
rng = np.random.default_rng(0)
dy = rng.normal(size=(26, 26))                                     # dL/dy for the 26x26 output

dx, dw, db = conv_backward_loops(x, w, dy)
print("dW = x correlated with dy:", np.allclose(dw, correlate2d(x, dy, mode="valid")))
print("dx = full convolution with the flipped kernel:",
      np.allclose(dx, correlate2d(np.pad(dy, 2), w[::-1, ::-1], mode="valid")) and
      np.allclose(dx, convolve2d(dy, w, mode="full")))
print("dx with the unflipped kernel would be wrong:",
      not np.allclose(dx, correlate2d(np.pad(dy, 2), w, mode="valid")))

# %% [markdown]
# ## 2. The flip, seen
#
# Send back a $\delta y$ that is zero except for three ones. In the scatter view each one
# stamps a copy of $w$ onto $\delta x$: upright, not flipped. The gather view computes the same
# picture by sliding the *flipped* kernel over $\delta y$: a cell of $\delta x$ below and to the
# right of an impulse reads the kernel from its bottom-right corner backwards.

# %%
impulses = np.zeros((12, 12))
impulses[[1, 5, 8], [2, 7, 3]] = 1.0
stamped, _, _ = conv_backward_loops(np.zeros((14, 14)), w, impulses)
gathered = correlate2d(np.pad(impulses, 2), w[::-1, ::-1], mode="valid")
assert np.array_equal(stamped, gathered)

figure = Figure(figsize=(11, 2.9), layout="constrained")
panels = figure.subplots(1, 4)
pictures = [(w, "kernel w"), (w[::-1, ::-1], "flipped kernel (gather view)"),
            (impulses, "dy: three impulses"), (stamped, "dx: a copy of w per impulse")]
for axes, (picture, title) in zip(panels, pictures):
    shown = axes.imshow(picture, cmap="RdBu_r", vmin=-3, vmax=3)
    axes.set_title(title, fontsize=9)
    axes.set_xticks([])
    axes.set_yticks([])
figure.colorbar(shown, ax=list(panels), shrink=0.8)
save(figure, "03_flipped_kernel.png")

# %% [markdown]
# ## 3. Channels, filters, batches, stride
#
# With $N$ samples, $C$ input channels and $F$ filters, stride $s$ and the padded input $x_p$:
#
# $$ \delta b[f] = \sum_{n, i, j} \delta y[n, i, j, f] \qquad
#    \delta W[u, v, c, f] = \sum_{n, i, j} x_p[n,\, s i + u,\, s j + v,\, c]\; \delta y[n, i, j, f] $$
#
# $$ \delta x_p[n, a, b, c] = \sum_{f} \sum_{\substack{i, u:\; s i + u = a \\ j, v:\; s j + v = b}}
#    W[u, v, c, f]\; \delta y[n, i, j, f], \qquad \delta x = \delta x_p \text{ with the padding cropped.} $$
#
# With stride $s$ the gather view needs $\delta y$ **dilated**: put $s - 1$ zeros between its
# cells, then do the full convolution with the flipped kernel. Below: our single-channel
# formulas against scratchnet's `Conv2D` (one channel, one filter), then stride 2 through the
# dilated $\delta y$.

# %%
layer = Conv2D(1, 3)
layer.build((28, 28, 1), rng=np.random.default_rng(0), dtype="float64")
layer.params["W"][:, :, 0, 0] = w
layer.forward(x[None, :, :, None])
dx_library = layer.backward(dy[None, :, :, None])[0, :, :, 0]
print("dW by hand matches Conv2D:", np.allclose(layer.grads["W"][:, :, 0, 0], dw))
print("db by hand matches Conv2D:", np.allclose(layer.grads["b"][0], db))
print("dx by hand matches Conv2D:", np.allclose(dx_library, dx))
assert np.allclose(layer.grads["W"][:, :, 0, 0], dw) and np.allclose(dx_library, dx)

strided = Conv2D(1, 3, stride=2)
strided.build((28, 28, 1), rng=np.random.default_rng(0), dtype="float64")
strided.params["W"][:, :, 0, 0] = w
out = strided.forward(x[None, :, :, None])                  # (1, 13, 13, 1)
dy2 = rng.normal(size=out.shape[1:3])
dx2 = strided.backward(dy2[None, :, :, None])[0, :, :, 0]
dilated = np.zeros((2 * dy2.shape[0] - 1, 2 * dy2.shape[1] - 1))
dilated[::2, ::2] = dy2                                      # s - 1 = 1 zero between cells
gather = correlate2d(np.pad(dilated, 2), w[::-1, ::-1], mode="valid")   # (27, 27)
expected = np.zeros_like(x)
expected[:27, :27] = gather                                  # the last row/column fed no window
print("stride 2: dx = full convolution of the dilated dy:", np.allclose(dx2, expected))
assert np.allclose(dx2, expected)

# %% [markdown]
# ## 4. And numerically
#
# `check_layer` compares all three gradients with central differences in float64 (lesson 2).
# `configs="battery"` rebuilds the layer over the awkward cases (stride > 1 with ragged edges,
# non-square kernels, padding, a batch of one, float32) and gives one verdict per case.

# %%
print(check_layer(Conv2D(2, 3, stride=2, padding=1), (7, 6, 3)))
battery = check_layer(Conv2D(2, 3), (6, 6, 2), configs="battery")
print(battery)
assert battery.passed

# %% [markdown]
# ## Exercise (graded): Conv2D backward with loops
#
# ```
# scratchnet exercise start conv_backward_loops      # the forward is given; write backward
# scratchnet exercise check conv_backward_loops.py
# ```
#
# Use the scatter form of section 1 with the stride and the channels of section 3: loop over
# $(n, i, j, f)$, add $\delta y \cdot W$ into the window of $\delta x_p$ and
# $\delta y \cdot x_p$-window into $\delta W$, then crop the padding. Typical failures the grader
# diagnoses: "only the cases with stride > 1 fail" (a window start without the stride), "only
# border elements are wrong" (the crop), "kernel flip" (you flipped where no flip belongs).
# Below, the grader runs on scratchnet's own `Conv2D` in the exercise's place.

# %%
from scratchnet.exercises import check  # noqa: E402

scratch = tempfile.TemporaryDirectory(prefix="scratchnet-exercise-")  # deleted when Python exits
workdir = Path(scratch.name)
reference = workdir / "scratchnet_own.py"
reference.write_text("# scratchnet exercise: conv_backward_loops\nfrom scratchnet.layers import Conv2D\n")
report = check(reference)
print(report)
assert report.passed
