# %% [markdown]
# # Lesson 12: write your own layer, end to end
#
# **This lesson teaches** the whole life of a new layer: derive its gradients, write it against
# scratchnet's layer contract, grade it with `check_layer`, compare it with an independent
# implementation, train a model with it, save and load that model, and finally use
# `compare_training` to prove that a faster rewrite trains *identically*, and to catch a bug no
# single-batch gradient check can see. The two layers: a **LeakyReLU with a learnable slope**
# (PReLU, He et al. 2015) and a **Conv1D**. **Time: about 60 minutes.**
#
# `SCRATCHNET_QUICK=1` trains on fewer digits for one epoch (what the tests run). Figures go to
# `$SCRATCHNET_FIGURES` (or a fresh temporary folder), never into the repository.

# %%
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import scratchnet as sn
from scratchnet import metrics, viz
from scratchnet.datasets import load_mnist_sample
from scratchnet.gradcheck import check_layer, compare_training
from scratchnet.layers import Conv2D, Dense, Flatten, Layer

QUICK = os.environ.get("SCRATCHNET_QUICK") == "1"   # the tests' short run: fewer digits, one epoch
FIGURES = Path(os.environ.get("SCRATCHNET_FIGURES") or tempfile.mkdtemp(prefix="scratchnet-lesson12-"))
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
# ## 1. The contract
#
# A layer subclasses `Layer` and writes four methods (`scratchnet/layers/base.py`):
#
# * `init_params(input_shape, rng)` returns a dict of initial arrays (shape of ONE sample, no batch axis);
# * `output_shape(input_shape)` is pure arithmetic;
# * `forward(x, training)` checks `x` (`self.check_input`), keeps in `self.cache` what backward needs;
# * `backward(dy)` fills `self.grads` (same keys and shapes as `self.params`), returns
#   $\partial L/\partial x$,
#   and never changes a parameter (updates are the optimizer's job).
#
# ## 2. LeakyReLU with a learnable slope
#
# One slope $a_c$ per channel (the last axis), shared by every position:
#
# $$ y = \begin{cases} x & x > 0 \\ a_c\, x & x \le 0 \end{cases} \qquad
#    \frac{\partial L}{\partial x} = \delta y \cdot \begin{cases} 1 & x > 0 \\ a_c & x \le 0 \end{cases}
#    \qquad \frac{\partial L}{\partial a_c} = \sum_{\text{all but } c} \delta y \cdot x\, [x \le 0]. $$
#
# The slope's gradient is a *sum* over the batch and every position, like a bias.

# %%
class LeakyReLU(Layer):
    """y = x if x > 0 else a * x, with one learnable slope a per channel (last axis).

    x, y, dy: (N, ..., C)    a: (C,)
    """

    def __init__(self, initial_slope=0.1, name=None):
        super().__init__(name=name)
        self.initial_slope = initial_slope

    def get_config(self):
        return {"initial_slope": self.initial_slope, **super().get_config()}

    def init_params(self, input_shape, rng):
        return {"a": np.full(input_shape[-1], self.initial_slope)}

    def forward(self, x, training=False):
        x = self.check_input(x)
        negative = x <= 0
        self.cache = {"x": x, "negative": negative}
        return np.where(negative, self.params["a"] * x, x)

    def backward(self, dy):
        x, negative = self.cache["x"], self.cache["negative"]
        axes = tuple(range(x.ndim - 1))                                   # every axis but channels
        self.grads["a"] = (dy * x * negative).sum(axis=axes)             # dL/da_c
        return dy * np.where(negative, self.params["a"], 1)              # dL/dx


report = check_layer(LeakyReLU(), (4, 5, 3))
print(report)
assert report.passed


# %% [markdown]
# ## 3. Conv1D
#
# Sequences $x$ of shape $(N, L, C)$, kernel $W$ $(k, C, F)$, bias $b$ $(F,)$, stride $s$:
#
# $$ y[n, t, f] = b[f] + \sum_{u=0}^{k-1} \sum_{c} x[n,\, s t + u,\, c]\; W[u, c, f],
#    \qquad L_{\text{out}} = \left\lfloor \frac{L - k}{s} \right\rfloor + 1. $$
#
# Lessons 1 and 3 in one dimension. For each kernel offset $u$ the sum over $c$ is a matrix
# product of the strided slice $x[:, u :: s]$ (positions $u, u + s, \dots$) with $W[u]$:
#
# $$ y = b + \sum_u X_u W_u, \qquad \delta W_u = X_u^\top \delta y, \qquad \delta b = \sum_{n,t} \delta y,
#    \qquad \delta x[:, u :: s] \mathrel{+}= \delta y\, W_u^\top. $$
#
# Windows overlap when $s < k$, hence the `+=`.

# %%
class Conv1D(Layer):
    """1-D convolution (cross-correlation), channels-last: x (N, L, C) -> y (N, L_out, F)."""

    def __init__(self, filters, kernel_size, stride=1, name=None):
        super().__init__(name=name)
        self.filters, self.kernel_size, self.stride = filters, kernel_size, stride

    def get_config(self):
        return {"filters": self.filters, "kernel_size": self.kernel_size, "stride": self.stride,
                **super().get_config()}

    def output_shape(self, input_shape):
        length, _ = input_shape
        if length < self.kernel_size:
            raise ValueError(f"{self.name}: input length {length} is shorter than the kernel "
                             f"{self.kernel_size}")
        return ((length - self.kernel_size) // self.stride + 1, self.filters)

    def init_params(self, input_shape, rng):
        fan_in = self.kernel_size * input_shape[1]
        shape = (self.kernel_size, input_shape[1], self.filters)
        return {"W": rng.normal(0, np.sqrt(2 / fan_in), size=shape),
                "b": np.zeros(self.filters)}

    def _rows(self, u, out_len):
        """The positions s*t + u for t = 0 .. out_len-1, as a slice."""
        return slice(u, u + self.stride * (out_len - 1) + 1, self.stride)

    def forward(self, x, training=False):
        x = self.check_input(x)
        out_len = self.output_shape(x.shape[1:])[0]
        W, b = self.params["W"], self.params["b"]
        y = np.broadcast_to(b, (x.shape[0], out_len, self.filters)).copy()
        for u in range(self.kernel_size):
            y += x[:, self._rows(u, out_len)] @ W[u]          # (N, L_out, C) @ (C, F)
        self.cache = {"x": x}
        return y

    def backward(self, dy):
        x, W = self.cache["x"], self.params["W"]
        out_len = dy.shape[1]
        dx, dW = np.zeros_like(x), np.zeros_like(W)
        for u in range(self.kernel_size):
            rows = self._rows(u, out_len)
            dW[u] = np.einsum("ntc,ntf->cf", x[:, rows], dy)   # X_u^T dy, summed over n and t
            dx[:, rows] += dy @ W[u].T                           # += : windows overlap
        self.grads = {"W": dW, "b": dy.sum(axis=(0, 1))}
        return dx


for options, shape in (({"filters": 4, "kernel_size": 3}, (10, 2)),
                       ({"filters": 2, "kernel_size": 3, "stride": 2}, (11, 3)),
                       ({"filters": 3, "kernel_size": 1}, (5, 4))):
    result = check_layer(Conv1D(**options), shape)
    print(f"check_layer Conv1D({options}) on {shape}:", "PASSED" if result.passed else result)
    assert result.passed

# %% [markdown]
# ## 4. An independent reference
#
# A gradient check proves backward matches forward; it cannot tell whether forward computes the
# right thing. For that, compare with an implementation you trust: a Conv1D over $(N, L, C)$ is
# scratchnet's `Conv2D` over $(N, 1, L, C)$ with a $(1, k)$ kernel and stride $(1, s)$.

# %%
rng = np.random.default_rng(0)
x = rng.normal(size=(3, 11, 2))
mine = Conv1D(4, 3, stride=2)
mine.build((11, 2), rng=rng, dtype="float64")
theirs = Conv2D(4, (1, 3), stride=(1, 2))
theirs.build((1, 11, 2), rng=rng, dtype="float64")
theirs.params["W"][...] = mine.params["W"][None]          # (1, k, C, F)
theirs.params["b"][...] = mine.params["b"] + 0.3
mine.params["b"] += 0.3
agree = np.allclose(mine.forward(x), theirs.forward(x[:, None])[:, 0], rtol=0, atol=1e-12)
print("Conv1D matches Conv2D with a (1, k) kernel:", agree)
assert agree

# %% [markdown]
# ## 5. Train with them
#
# A digit read as a *sequence* of 28 rows, each row 28 numbers: Conv1D slides along the rows
# (height), seeing 3 rows at a time. The last 10% of the training digits validate; the test
# digits are used once, at the end.

# %%
(x_train, y_train), (x_test, y_test) = load_mnist_sample()
if QUICK:
    x_train, y_train, x_test, y_test = x_train[:1500], y_train[:1500], x_test[:500], y_test[:500]
rows = lambda images: images[..., 0]                       # noqa: E731  (N, 28, 28): 28 rows of 28
model = sn.Sequential([Conv1D(32, 3, stride=2), LeakyReLU(0.1), Conv1D(32, 3), LeakyReLU(0.1),
                       Flatten(), Dense(10)], input_shape=(28, 28), seed=0)
model.compile(optimizer=sn.Adam(lr=2e-3), loss="cross_entropy")
model.summary()
history = model.fit(rows(x_train), y_train, epochs=1 if QUICK else 4, batch_size=32, validation_split=0.1,
                    verbose=0)
print(f"validation accuracy {history['val_accuracy'][-1]:.3f}")
print(f"test accuracy: {metrics.accuracy(y_test, model.predict_classes(rows(x_test))):.4f}")
slopes = model.layers[1].params["a"]
print(f"LeakyReLU slope learned: mean {slopes.mean():.3f}, range [{slopes.min():.3f}, {slopes.max():.3f}] "
      "(started at 0.1)")
save(viz.plot_history(history, title="Conv1D + learnable LeakyReLU on digit rows"), "12_curves.png")

figure = Figure(figsize=(5, 3.5), layout="constrained")
axes = figure.subplots()
z = np.linspace(-3, 3, 200)
for a in (slopes.min(), np.median(slopes), slopes.max()):
    axes.plot(z, np.where(z > 0, z, a * z), label=f"a = {a:.3f}")
axes.set_title("learned LeakyReLUs (first layer, extreme and median channels)")
axes.legend(fontsize=8)
axes.grid(alpha=0.3)
save(figure, "12_learned_slopes.png")

# %% [markdown]
# Your classes load with the model when you name them (lesson 11): the restricted loader refuses
# any class it was not told about.

# %%
scratch = tempfile.TemporaryDirectory(prefix="scratchnet-lesson12-")  # deleted when Python exits
path = Path(scratch.name) / "rows.sn"
model.save(path)
again = sn.load(path, allowed_classes=[Conv1D, LeakyReLU])
print("loaded with allowed_classes, same predictions:",
      np.array_equal(again.predict(rows(x_test[:50])), model.predict(rows(x_test[:50]))))


# %% [markdown]
# ## 6. compare_training: a rewrite that must train identically
#
# You speed a layer up and want proof nothing changed. `compare_training(model, name, new_layer,
# x, y, steps)` copies the model twice in float64 (same weights, same batches), swaps your layer in
# for the named one in the second copy, trains both, and compares loss, outputs and every
# parameter after every step. Below, a LeakyReLU rewritten with `np.maximum` (valid for $a \le 1$:
# $\max(x, a x)$), then a tempting "optimisation" that keeps the mask of the first batch: a
# single-batch `check_layer` passes it, training does not.

# %%
class FastLeakyReLU(LeakyReLU):
    def forward(self, x, training=False):
        x = self.check_input(x)
        self.cache = {"x": x, "negative": x <= 0}
        return np.maximum(x, self.params["a"] * x)             # = max(x, a x) whenever a <= 1


class StaleLeakyReLU(LeakyReLU):
    def forward(self, x, training=False):
        x = self.check_input(x)
        if "negative" not in self.cache:                      # BUG: the mask of the FIRST batch, kept
            self.cache["negative"] = x <= 0
        self.cache["x"] = x
        return np.where(self.cache["negative"], self.params["a"] * x, x)


x_small, y_small = rows(x_train[:64]), y_train[:64]
stale_check = check_layer(StaleLeakyReLU(), (28, 32))
print("check_layer on the stale version:", "PASSED" if stale_check.passed else "FAILED")
fast = compare_training(model, model.layers[1].name, FastLeakyReLU(0.1), x_small, y_small, steps=4)
print("compare_training, np.maximum rewrite:", fast)
stale = compare_training(model, model.layers[1].name, StaleLeakyReLU(0.1), x_small, y_small, steps=4)
print("compare_training, stale mask:", stale)
assert fast.passed and not stale.passed

# %% [markdown]
# ## Exercise (graded): your own layer
#
# Extend `Conv1D` with `padding` (zeros on both ends: $L_{\text{out}} = \lfloor (L + 2p - k)/s \rfloor + 1$)
# and `dilation` ($x[n, s t + d u, c]$), then grade it three ways, as above:
#
# 1. `check_layer(Conv1D(4, 3, stride=2, padding=1, dilation=2), (11, 3))` (or from a terminal:
#    `scratchnet gradcheck my_conv1d.py:Conv1D --input-shape 11,3
#    --config '{"filters": 4, "kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2}'`);
# 2. against `Conv2D(4, (1, 3), stride=(1, 2), padding=((0, 0), (1, 1)), dilation=(1, 2))` on $(N, 1, L, C)$;
# 3. `compare_training` of your new class against this lesson's `Conv1D` in the model above
#    (with padding 0 and dilation 1 they must train identically).
#
# For a graded exercise on a block, `scratchnet exercise start residual_block`. The cell below
# grades this lesson's two layers the same way, so it runs; run it on yours.

# %%
graded = {"check_layer LeakyReLU(0.3) on (6, 4)": check_layer(LeakyReLU(0.3), (6, 4)),
          "check_layer Conv1D(4, 3, stride=2) on (11, 3)": check_layer(Conv1D(4, 3, stride=2), (11, 3)),
          "compare_training Conv1D(32, 3, stride=2) in the model": compare_training(
              model, model.layers[0].name, Conv1D(32, 3, stride=2), x_small, y_small, steps=3)}
for what, result in graded.items():
    print(f"{what}:", "PASSED" if result.passed else result)
assert all(result.passed for result in graded.values())
