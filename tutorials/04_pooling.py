# %% [markdown]
# # Lesson 4: pooling
#
# **This lesson teaches** max pooling's backward pass (the gradient is *routed* to the cell that
# won each window), what happens when windows overlap (contributions add up) and when a window
# has ties (the derivative does not exist, and a numerical check says so), and the backward of
# average and global average pooling. It shows the most common student bug, `=` where `+=` is
# needed, failing with the diagnosis, and ends with the graded max-pool exercise.
# **Time: about 40 minutes.**
#
# Figures go to `$SCRATCHNET_FIGURES` (or a fresh temporary folder), never into the repository.

# %%
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from scratchnet.datasets import load_mnist_sample
from scratchnet.gradcheck import check_layer
from scratchnet.layers import AvgPool2D, GlobalAvgPool2D, MaxPool2D

QUICK = os.environ.get("SCRATCHNET_QUICK") == "1"   # the tests' short run (nothing to shorten here)
FIGURES = Path(os.environ.get("SCRATCHNET_FIGURES") or tempfile.mkdtemp(prefix="scratchnet-lesson04-"))
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


def show(name, array):
    print(f"{name}:\n{np.array2string(array, precision=2, suppress_small=True)}")


# %% [markdown]
# ## 1. Max pooling and its argmax routing
#
# With pool size $k$ and stride $s$ (per channel, per sample):
#
# $$ y[i, j] = \max_{0 \le u, v < k} x[s i + u,\; s j + v] $$
#
# Away from ties the max is locally just *one* of its inputs, $y[i,j] = x[a^*, b^*]$ (the
# argmax), so its derivative is 1 for that cell and 0 for the others of the window:
#
# $$ \frac{\partial L}{\partial x[a, b]} =
#    \sum_{(i, j):\ \operatorname{argmax}(i, j) = (a, b)} \delta y[i, j]. $$
#
# The forward pass must *remember* which cell won (scratchnet stores the offset $u k + v$ of each
# winner); the backward sends every $\delta y$ there and nowhere else.

# %%
x = np.array([[1, 3, 2, 0],
              [4, 0, 1, 5],
              [0, 2, 6, 1],
              [1, 1, 0, 2]], dtype=float)[None, :, :, None]    # (1, 4, 4, 1)
pool = MaxPool2D(2)
pool.build((4, 4, 1), dtype="float64")
show("x", x[0, :, :, 0])
show("y = maxpool 2x2", pool.forward(x)[0, :, :, 0])
dy = np.array([[10.0, 20.0], [30.0, 40.0]])[None, :, :, None]
show("dx for dy = [[10, 20], [30, 40]]: each dy lands on its window's winner",
     pool.backward(dy)[0, :, :, 0])

# %% [markdown]
# ## 2. Overlapping windows: add, do not assign
#
# With stride $s < k$ a cell can lie in several windows and **win several of them**. The sum in
# the formula above then has several terms: the contributions must be *added*
# (`dx[...] += dy[...]`). Below, 3 x 3 windows with stride 1 on a 4 x 4 input with one large
# cell: it wins all four windows and receives the sum of all four gradients.

# %%
x = np.zeros((1, 4, 4, 1))
x[0, 1, 2, 0] = 9.0                             # inside every 3x3 window of the 4x4 input
overlapping = MaxPool2D(3, stride=1)
overlapping.build((4, 4, 1), dtype="float64")
overlapping.forward(x)
dx = overlapping.backward(dy)
show("dx (3x3 windows, stride 1): the winner collects 10 + 20 + 30 + 40", dx[0, :, :, 0])
assert dx[0, 1, 2, 0] == 100.0

# %% [markdown]
# ## 3. Ties: where the derivative does not exist
#
# If two cells of a window hold the same maximum, $\max$ has a kink there: raising either cell
# raises the output, lowering one changes nothing. The one-sided derivatives differ (1 and 0),
# so a central difference gives their mean, $0.5$, which matches no rule. Frameworks pick one
# winner; scratchnet (like PyTorch) picks the **first** in row-major order and gives it the
# whole gradient. `check_layer` detects such kinks and re-checks them with a smaller step, and
# lists them as *inconclusive* instead of failing when they stay ambiguous.

# %%
tie = np.array([[2.0, 2.0], [0.0, 1.0]])[None, :, :, None]
pool = MaxPool2D(2)
pool.build((2, 2, 1), dtype="float64")
pool.forward(tie)
show("dx for a tie (dy = 1): the first maximum gets it", pool.backward(np.ones((1, 1, 1, 1)))[0, :, :, 0])
eps = 1e-6
plus, minus = tie.copy(), tie.copy()
plus[0, 0, 0, 0] += eps
minus[0, 0, 0, 0] -= eps
central = (pool.forward(plus) - pool.forward(minus)).item() / (2 * eps)
print(f"central difference at the tied cell: {central:.3f} (one-sided: 1 and 0)")
print(check_layer(MaxPool2D(2), np.random.default_rng(0).integers(0, 3, size=(2, 4, 4, 1)).astype(float)))

# %% [markdown]
# ## 4. Average and global average pooling
#
# Average pooling is linear, so no routing: every cell of a window receives an equal share
#
# $$ y[i,j] = \frac{1}{k^2} \sum_{u,v} x[s i + u,\, s j + v] \quad\Rightarrow\quad
#    \frac{\partial L}{\partial x[a,b]} = \sum_{(i,j) \ni (a,b)} \frac{\delta y[i,j]}{k^2}. $$
#
# Global average pooling averages each channel over the whole map, $y[c] = \frac{1}{HW}\sum_{a,b} x[a,b,c]$,
# and hands every cell $\delta y[c] / (HW)$. It replaces Flatten + Dense in modern networks
# (lesson 8): no weights, any input size.

# %%
rng = np.random.default_rng(0)
images = rng.normal(size=(2, 6, 6, 3))
gap = GlobalAvgPool2D()
gap.build((6, 6, 3), dtype="float64")
print("global average = mean:", np.allclose(gap.forward(images), images.mean(axis=(1, 2))))
dx = gap.backward(np.ones((2, 3)))
print(f"its backward hands every cell 1 / (H W) = {1 / 36:.4f}:", np.allclose(dx, 1 / 36))
avg = AvgPool2D(2)
avg.build((6, 6, 3), dtype="float64")
avg.forward(images)
print("average pool 2x2: every cell gets dy / 4:", np.allclose(avg.backward(np.ones((2, 3, 3, 3))), 0.25))

# %% [markdown]
# ## 5. On a digit
#
# Max pooling keeps the strongest response in each window (the stroke survives at half the
# resolution), average pooling blurs it. The right panel is the backward pass of a 3 x 3,
# stride 2 max-pool with $\delta y = 1$ everywhere: the number of windows each pixel won. Pixels
# on the strokes win, the black background (all ties at 0: the first cell of each window wins)
# forms a grid, and cells that won two or four overlapping windows stand out.

# %%
(x_train, _), _ = load_mnist_sample(dtype="float64")
digit = x_train[2:3]
layers = {"max pool 2x2": MaxPool2D(2), "average pool 2x2": AvgPool2D(2),
          "max pool 3x3, stride 2": MaxPool2D(3, 2)}
results = {}
for name, layer in layers.items():
    layer.build((28, 28, 1), dtype="float64")
    results[name] = layer.forward(digit)
wins = layers["max pool 3x3, stride 2"].backward(np.ones_like(results["max pool 3x3, stride 2"]))

figure = Figure(figsize=(11, 2.8), layout="constrained")
panels = figure.subplots(1, 4)
pictures = [(digit[0, :, :, 0], "input 28x28"),
            (results["max pool 2x2"][0, :, :, 0], "max pool 2x2 -> 14x14"),
            (results["average pool 2x2"][0, :, :, 0], "average pool 2x2 -> 14x14")]
for axes, (picture, title) in zip(panels, pictures):
    axes.imshow(picture, cmap="gray")
    axes.set_title(title, fontsize=9)
    axes.set_axis_off()
shown = panels[3].imshow(wins[0, :, :, 0], cmap="magma")
panels[3].set_title("windows won (3x3, stride 2)", fontsize=9)
panels[3].set_axis_off()
figure.colorbar(shown, ax=panels[3], shrink=0.8)
save(figure, "04_pooling_on_a_digit.png")


# %% [markdown]
# ## 6. The bug: `=` where `+=` is needed
#
# Here is a max-pool backward with loops that reads scratchnet's stored argmax, and has the
# classic mistake: it *assigns* the gradient. With non-overlapping windows that is harmless
# (every cell receives at most one gradient), so a test with `MaxPool2D(2)` passes. With
# overlapping windows a cell that won two windows keeps only the last one. The report says so:
# "only elements under overlapping windows are wrong".

# %%
class MyMaxPool2D(MaxPool2D):
    def backward(self, dy):
        argmax, x_shape = self.cache["argmax"], self.cache["x_shape"]   # argmax: offset u*k + v
        (_, kw), (sh, sw) = self.pool_size, self.stride
        dx = np.zeros(x_shape)
        for n, i, j, c in np.ndindex(dy.shape):
            u, v = divmod(int(argmax[n, i, j, c]), kw)
            dx[n, sh * i + u, sw * j + v, c] = dy[n, i, j, c]      # BUG: = (needs +=)
        return dx


print("non-overlapping windows:", "PASSED" if check_layer(MyMaxPool2D(2), (4, 4, 2)).passed else "FAILED")
report = check_layer(MyMaxPool2D(3, stride=2), (7, 7, 2))
print(report)
assert not report.passed

# %% [markdown]
# ## Exercise (graded): max pooling, forward and backward
#
# ```
# scratchnet exercise start max_pool      # writes max_pool.py
# scratchnet exercise check max_pool.py   # six cases: overlapping windows, ragged edges, ties, ...
# ```
#
# Write the forward (remember the winner of every window) and the backward (route `dy` to it,
# **adding** where windows overlap; on a tie, one winner: the first). Then make the mistake of
# section 6 on purpose and read what the grader says. `scratchnet exercise start avg_pool` is
# the same for average pooling. Below, the grader runs on scratchnet's own `MaxPool2D` in the
# exercise's place.

# %%
from scratchnet.exercises import check  # noqa: E402

scratch = tempfile.TemporaryDirectory(prefix="scratchnet-exercise-")  # deleted when Python exits
workdir = Path(scratch.name)
reference = workdir / "scratchnet_own.py"
reference.write_text("# scratchnet exercise: max_pool\nfrom scratchnet.layers import MaxPool2D\n")
report = check(reference)
print(report)
assert report.passed
