# %% [markdown]
# # Lesson 1: convolution by hand
#
# **This lesson teaches** what a convolution layer computes: a small filter slid over an image,
# one dot product per position. We do it with plain loops on a real handwritten digit, look at
# what edge and blur filters pull out of it, and derive the output-size formula with padding,
# stride and dilation. **Time: about 30 minutes** (running it takes a few seconds).
#
# Run it as a script (`python tutorials/01_convolution_by_hand.py`) or open it as a notebook
# (see `tutorials/README.md`). Figures go to `$SCRATCHNET_FIGURES` (or a fresh temporary folder).

# %%
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy.signal import correlate2d

from scratchnet.datasets import load_mnist_sample
from scratchnet.layers import Conv2D

QUICK = os.environ.get("SCRATCHNET_QUICK") == "1"   # the tests' short run (nothing to shorten here)
FIGURES = Path(os.environ.get("SCRATCHNET_FIGURES") or tempfile.mkdtemp(prefix="scratchnet-lesson01-"))
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
# ## 1. The definition
#
# A grey image $x$ of size $H \times W$ and a kernel $w$ of size $k_h \times k_w$. The output
# pixel $(i, j)$ is the dot product of the kernel with the patch of the image under it:
#
# $$ y[i, j] = b + \sum_{u=0}^{k_h-1} \sum_{v=0}^{k_w-1} x[\,s\,i + d\,u,\; s\,j + d\,v\,]\; w[u, v] $$
#
# with stride $s$ (how far the window moves between outputs) and dilation $d$ (how far apart
# the kernel's taps are). Deep learning calls this *convolution*; mathematicians call it
# *cross-correlation*, because the kernel is not flipped (lesson 3 shows where the flip does
# appear: in the backward pass). With several input channels $c$ and filters $f$ the sum also
# runs over $c$, and each filter gives one output channel:
#
# $$ y[n, i, j, f] = b[f] + \sum_{u, v, c} x[n,\, s i + d u,\, s j + d v,\, c]\; W[u, v, c, f] $$
#
# Here it is, one loop per output pixel, for one channel:

# %%
def conv2d_loops(x, w, b=0.0, stride=1, padding=0, dilation=1):
    """y[i, j] = b + sum_{u,v} xp[s*i + d*u, s*j + d*v] * w[u, v];  x (H, W), w (kh, kw)."""
    xp = np.pad(x, padding)                                   # p zeros on every side
    kh, kw = w.shape
    span_h, span_w = dilation * (kh - 1) + 1, dilation * (kw - 1) + 1   # cells one window covers
    out_h = (xp.shape[0] - span_h) // stride + 1
    out_w = (xp.shape[1] - span_w) // stride + 1
    y = np.empty((out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            top, left = stride * i, stride * j
            patch = xp[top:top + span_h:dilation, left:left + span_w:dilation]   # (kh, kw)
            y[i, j] = b + np.sum(patch * w)
    return y


# %% [markdown]
# ## 2. On a real digit
#
# The bundled sample holds real MNIST digits (28 x 28, pixels in [0, 1]). Four classic
# kernels: two Sobel edge detectors (a derivative across one axis, smoothed along the other),
# a 3 x 3 box blur (the mean of the patch) and a sharpening filter (the image plus its
# Laplacian, $5x - $ the four neighbours).

# %%
(x_train, y_train), _ = load_mnist_sample(dtype="float64")
digit = x_train[0, :, :, 0]
print(f"a {digit.shape} image of the digit {y_train[0]}, pixels in [{digit.min():.0f}, {digit.max():.0f}]")

kernels = {
    "Sobel x (vertical edges)": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=float),
    "Sobel y (horizontal edges)": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=float),
    "box blur 3x3": np.full((3, 3), 1 / 9),
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=float),
}
outputs = {name: conv2d_loops(digit, kernel) for name, kernel in kernels.items()}

# The same numbers from scipy (an independent implementation of the same sum):
same = all(np.allclose(outputs[name], correlate2d(digit, kernel, mode="valid"), atol=1e-12)
           for name, kernel in kernels.items())
print("matches scipy.signal.correlate2d:", same)
assert same

# %%
figure = Figure(figsize=(11, 2.6), layout="constrained")
panels = figure.subplots(1, 5)
panels[0].imshow(digit, cmap="gray")
panels[0].set_title(f"input: digit {y_train[0]}", fontsize=9)
for axes, (name, output) in zip(panels[1:], outputs.items()):
    limit = np.abs(output).max()
    shown = axes.imshow(output, cmap="RdBu_r" if output.min() < 0 else "gray",
                        vmin=-limit if output.min() < 0 else 0, vmax=limit)
    axes.set_title(f"{name}\n{output.shape[0]}x{output.shape[1]}", fontsize=9)
    figure.colorbar(shown, ax=axes, shrink=0.7)
for axes in panels:
    axes.set_axis_off()
save(figure, "01_kernels_on_a_digit.png")

# %% [markdown]
# Read the figure: the Sobel-x map is red (positive) where the stroke begins as you go right
# (dark to bright) and blue where it ends; Sobel-y does the same going down. The blur is the
# digit with soft edges, sharpening exaggerates every edge. A convolution layer *learns* its
# kernels instead: lesson 5 shows the six 5 x 5 filters a LeNet learns in a few epochs, noisier
# than these; a few of them are bright-dark bands, edge detectors of a kind. Note the outputs
# are 26 x 26, not 28 x 28: a 3 x 3 window fits in 26 positions per row.

# %% [markdown]
# ## 3. The output size
#
# One window covers $k_{\text{eff}} = d\,(k - 1) + 1$ cells. After padding with $p$ zeros on
# each side the row has $n + 2p$ cells, and the window's first cell can sit at
# $0, s, 2s, \dots$ as long as the window still fits:
#
# $$ n_{\text{out}} = \left\lfloor \frac{n + 2p - d\,(k - 1) - 1}{s} \right\rfloor + 1 $$
#
# Special cases worth remembering: $p = (k-1)/2$, $s = 1$, $d = 1$ keeps the size ("same"
# padding); $s = 2$ halves it (rounding down, so the last column is dropped when the window
# does not fit: a *ragged* edge); dilation widens the view without more weights.
# Let us check the formula against our loops and against scratchnet's `Conv2D`.

# %%
def output_size(n, k, padding=0, stride=1, dilation=1):
    return (n + 2 * padding - dilation * (k - 1) - 1) // stride + 1


print(f"{'k':>2} {'p':>2} {'s':>2} {'d':>2}   formula   loops   Conv2D")
agree = True
for k, p, s, d in [(3, 0, 1, 1), (3, 1, 1, 1), (5, 2, 1, 1), (3, 0, 2, 1), (3, 1, 2, 1), (2, 0, 2, 1),
                   (3, 0, 1, 2), (3, 2, 1, 2), (5, 0, 3, 1), (4, 1, 3, 2)]:
    formula = output_size(28, k, p, s, d)
    loops = conv2d_loops(digit, np.ones((k, k)), stride=s, padding=p, dilation=d).shape[0]
    layer = Conv2D(1, k, stride=s, padding=p, dilation=d)
    library = layer.output_shape((28, 28, 1))[0]
    agree &= formula == loops == library
    print(f"{k:>2} {p:>2} {s:>2} {d:>2}   {formula:>7}   {loops:>5}   {library:>6}")
print("output size formula agrees with Conv2D:", agree)
assert agree

# %% [markdown]
# ## 4. Our loops against scratchnet's Conv2D
#
# `Conv2D` works on batches with channels last, $(N, H, W, C)$, and its weights are
# $(k_h, k_w, C, F)$. Give it our Sobel kernel as its one filter and the same stride, padding
# and dilation, and it must produce the same numbers (float64: to ~1e-15).

# %%
layer = Conv2D(1, 3, stride=2, padding=1, dilation=2)
layer.build((28, 28, 1), rng=np.random.default_rng(0), dtype="float64")
layer.params["W"][:, :, 0, 0] = kernels["Sobel x (vertical edges)"]
layer.params["b"][:] = 0.5
library = layer.forward(digit[None, :, :, None])[0, :, :, 0]
ours = conv2d_loops(digit, kernels["Sobel x (vertical edges)"], b=0.5, stride=2, padding=1, dilation=2)
print("loops vs Conv2D (stride 2, padding 1, dilation 2): max difference",
      f"{np.abs(library - ours).max():.1e}")
assert np.allclose(library, ours, atol=1e-12)

# %% [markdown]
# ## Exercise (graded): the forward pass of Conv2D with loops
#
# Extend `conv2d_loops` to the real thing: batches, input channels, several filters, a bias
# per filter, stride and padding. In a terminal:
#
# ```
# scratchnet exercise start conv_forward_loops      # writes conv_forward_loops.py
# # fill in the part marked "---- your code" (the math and shapes are in its docstring)
# scratchnet exercise check conv_forward_loops.py   # one verdict per case, with a diagnosis
# ```
#
# The grader checks your forward against scratchnet's own layer on five cases (stride 2 with a
# ragged edge, non-square kernels, padding, a batch of one) and the given backward against
# numerical gradients of your forward. Below, the grader runs twice so you see both ends: on the
# untouched starter (it fails: nothing is written yet), and on scratchnet's own `Conv2D`
# dropped into the exercise's place (it passes: that is what your file should print).

# %%
from scratchnet.exercises import check, start  # noqa: E402

scratch = tempfile.TemporaryDirectory(prefix="scratchnet-exercise-")  # deleted when Python exits
workdir = Path(scratch.name)
starter = start("conv_forward_loops", workdir / "conv_forward_loops.py")
print(str(check(starter)).splitlines()[-1], "  <- the untouched starter")

reference = workdir / "scratchnet_own.py"
reference.write_text("# scratchnet exercise: conv_forward_loops\nfrom scratchnet.layers import Conv2D\n")
report = check(reference)
print(report)
assert report.passed
