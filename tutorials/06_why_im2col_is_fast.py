# %% [markdown]
# # Lesson 6: why im2col is fast
#
# **This lesson teaches** why the same convolution can take a second or a millisecond: one layer
# computed three ways (a Python loop per index, `scipy.signal` per channel pair, and im2col: a
# patch matrix and one large matrix product), checked to give the same numbers, timed side by
# side, and taken apart to see where the time goes. It ends with the graded exercise: the
# backward pass as matrix products (col2im). **Time: about 40 minutes.**
#
# The times printed depend on your machine and its load; read the ratios, not the digits.
# `SCRATCHNET_QUICK=1` uses a smaller layer (what the tests run). Figures go to
# `$SCRATCHNET_FIGURES` (or a fresh temporary folder), never into the repository.

# %%
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from scratchnet.gradcheck_diagnose import window_coverage
from scratchnet.kernels.im2col import im2col
from scratchnet.layers import Conv2D

QUICK = os.environ.get("SCRATCHNET_QUICK") == "1"   # the tests' short run: a smaller layer
FIGURES = Path(os.environ.get("SCRATCHNET_FIGURES") or tempfile.mkdtemp(prefix="scratchnet-lesson06-"))
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


def best_time(function, repeat=3):
    """The fastest of `repeat` runs, in seconds (the least disturbed by other programs)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


# %% [markdown]
# ## 1. One layer, three backends
#
# $$ y[n, o_h, o_w, f] = b[f] + \sum_{i, j, c} x_p[n,\, s o_h + i,\, s o_w + j,\, c]\; W[i, j, c, f] $$
#
# costs $N \cdot O_H O_W \cdot F \cdot k_h k_w C$ multiply-adds whichever way it is computed. The
# three backends of `Conv2D` differ only in *how*:
#
# * `"loops"`: the definition, a Python loop over $(n, o_h, o_w, f)$ with a small dot product
#   inside. Every iteration pays the interpreter: $\sim 1\,\mu s$ of overhead for a few dozen
#   multiply-adds.
# * `"scipy"`: one `scipy.signal.correlate2d` per (input channel, filter) pair: $C \cdot F$
#   calls, each a compiled loop over the whole image.
# * `"im2col"`: copy every receptive field into one row of a matrix, then **one** matrix product
#   (next section), run by BLAS at close to the processor's peak.

# %%
if QUICK:
    n, size, channels, filters = 2, 12, 4, 8
else:
    n, size, channels, filters = 8, 28, 8, 16
rng = np.random.default_rng(0)
x = rng.normal(size=(n, size, size, channels))
layer = Conv2D(filters, 3, padding="same", backend="loops")
layer.build(x.shape[1:], rng=rng, dtype="float64")
dy = rng.normal(size=(n, *layer.output_shape(x.shape[1:])))
macs = n * size * size * filters * 9 * channels
print(f"x {x.shape}, W {layer.params['W'].shape}: {macs:,} multiply-adds per forward pass")

results, times = {}, {}
for backend in ("loops", "scipy", "im2col"):
    layer.backend = backend                      # same weights, another way to compute
    y = layer.forward(x)
    dx = layer.backward(dy)
    results[backend] = (y, dx, layer.grads["W"].copy())
    repeat = 1 if backend == "loops" else 5
    times[backend] = (best_time(lambda: layer.forward(x), repeat),
                      best_time(lambda: (layer.forward(x), layer.backward(dy)), repeat))

for backend in ("scipy", "im2col"):
    same = all(np.allclose(a, b, rtol=0, atol=1e-10) for a, b in zip(results[backend], results["loops"]))
    print(f"{backend} gives the same y, dx and dW as loops (float64, 1e-10): {same}")
    assert same
print("\nseconds per forward + backward (and forward alone), and the speed-up over loops:")
for backend, (forward, both) in times.items():
    speedup = times["loops"][1] / both
    print(f"  {backend:<7} {both * 1e3:10.3f} ms  ({forward * 1e3:.3f} ms)   {speedup:8.1f}x")

# %% [markdown]
# ## 2. im2col: a convolution as one matrix product
#
# Write every window as a row: $P = N O_H O_W$ rows (one per output position) and
# $K = k_h k_w C$ columns (one per weight of a filter):
#
# $$ \text{cols}[(n, o_h, o_w),\, (i, j, c)] = x_p[n,\, s o_h + i,\, s o_w + j,\, c], \qquad
#    y_{2d} = \text{cols}\; W_{2d} + b, \quad W_{2d} = W\text{.reshape}(K, F). $$
#
# The backward is two more products and a scatter:
#
# $$ \delta W_{2d} = \text{cols}^\top \delta y_{2d} \quad (K \times F), \qquad
#    \delta b = \textstyle\sum_{\text{rows}} \delta y_{2d}, \qquad
#    \delta\text{cols} = \delta y_{2d}\, W_{2d}^\top \quad (P \times K), $$
#
# and **col2im** adds every row of $\delta\text{cols}$ back onto the window it was copied from: the
# adjoint of the copy. A cell inside $m$ windows was copied $m$ times and receives $m$
# contributions. We can see the copies: im2col of an image whose pixels hold their own index.

# %%
tiny = np.arange(5 * 5, dtype=float).reshape(1, 5, 5, 1)       # pixel value = its index
cols = im2col(tiny, (3, 3), stride=(1, 1))
print(f"a 5x5 image, 3x3 windows: cols is {cols.shape} (9 positions x 9 weights)")
print(cols[:3].astype(int), "...")
copies = np.bincount(cols.astype(int).ravel(), minlength=25).reshape(5, 5)
coverage = window_coverage(Conv2D(1, 3), (5, 5))
print("copies per cell = windows covering it:", np.array_equal(copies, coverage))
print(copies)
print(f"the full layer: cols {n * size * size} x {9 * channels} holds {9 * channels * n * size * size:,} "
      f"numbers, {9}x the {x.size:,} of the input")

# %% [markdown]
# ## 3. Where the time goes
#
# In the im2col forward there are two steps: building `cols` (a memory copy, 9x the input) and
# the product (all the arithmetic). A matrix product of $(P \times K)(K \times F)$ does
# $2PKF$ floating-point operations on $PK + KF$ numbers: each number loaded is used about
# $2F$ times, so BLAS can keep it in cache and registers and run near the peak. The loops do the
# same arithmetic one small dot product per interpreter iteration.

# %%
x_padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
W2d = layer.params["W"].reshape(-1, filters)
cols = im2col(x_padded, (3, 3))
t_copy = best_time(lambda: im2col(x_padded, (3, 3)), 5)
t_product = best_time(lambda: cols @ W2d, 5)
dy2d = dy.reshape(-1, filters)
t_dW = best_time(lambda: cols.T @ dy2d, 5)
t_dcols = best_time(lambda: dy2d @ W2d.T, 5)
flops = 2 * macs
parts = {"im2col copy": t_copy, "cols @ W": t_product, "cols.T @ dy (dW)": t_dW, "dy @ W.T (dcols)": t_dcols}
print("im2col, step by step:")
for name, seconds in parts.items():
    print(f"  {name:<18} {seconds * 1e3:8.3f} ms")
print(f"the forward product runs at {flops / t_product / 1e9:.2f} GFLOP/s; "
      f"the loops at {flops / times['loops'][0] / 1e9:.4f} GFLOP/s")

figure = Figure(figsize=(11, 3.8), layout="constrained")
left, right = figure.subplots(1, 2)
names = list(times)
left.barh(names, [times[b][1] for b in names], color=["tab:red", "tab:orange", "tab:green"])
left.set_xscale("log")
left.set_xlabel("seconds per forward + backward (log scale)")
left.set_title(f"one Conv2D layer, x {x.shape}")
for index, backend in enumerate(names):
    left.text(times[backend][1], index, f"  {times['loops'][1] / times[backend][1]:.0f}x", va="center")
left.set_xlim(right=30 * max(times[b][1] for b in names))  # room for the slowest bar's "1x" label
right.bar(list(parts), list(parts.values()), color="tab:green")
right.set_ylabel("seconds")
right.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
right.set_title("im2col: where the time goes")
right.tick_params(axis="x", labelsize=8)
save(figure, "06_backends_timed.png")

# %% [markdown]
# Things to notice (and to try):
#
# * The copy is not free: for a few channels the patch rows are short and copying them can cost
#   as much as the product (scratchnet builds the transposed matrix for 1-3 channels for that
#   reason: see `few_channels` in `scratchnet/kernels/im2col.py`).
# * The memory cost is real: `cols` is $k_h k_w$ times the input. scratchnet's `im2col` backend
#   therefore never holds all of it: `conv2d_forward` builds the patches of a few images at a
#   time (a chunk of about 2 MiB, close to the CPU's cache, measured faster than the whole
#   batch at once), multiplies, and moves on;
#   the backward builds each chunk's patches again for $\delta W$. The layer keeps only its
#   input, as PyTorch does. Frameworks also use other algorithms (Winograd, FFT, direct
#   kernels): `Conv2D(backend="winograd")` is lesson-worthy too (`scratchnet/kernels/winograd.py`).
# * Make the layer larger (more channels, more filters) and the im2col advantage grows: the
#   product's cost grows as $KF$ per row while the copy grows only as $K$.

# %% [markdown]
# ## Exercise (graded): the backward pass with col2im
#
# ```
# scratchnet exercise start conv_backward_im2col     # im2col and the forward are given
# scratchnet exercise check conv_backward_im2col.py
# ```
#
# Write `col2im` (loop over the $k_h k_w$ kernel offsets, not over pixels: each offset is one
# strided slice of $\delta x_p$, and **add**, because windows overlap) and the backward of
# section 2. Then time your version against `Conv2D(backend="loops")` on the layer of section 1.
# Below, the grader runs on scratchnet's own `Conv2D` in the exercise's place.

# %%
from scratchnet.exercises import check  # noqa: E402

scratch = tempfile.TemporaryDirectory(prefix="scratchnet-exercise-")  # deleted when Python exits
workdir = Path(scratch.name)
reference = workdir / "scratchnet_own.py"
reference.write_text("# scratchnet exercise: conv_backward_im2col\nfrom scratchnet.layers import Conv2D\n")
report = check(reference)
print(report)
assert report.passed
