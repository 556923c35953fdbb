# %% [markdown]
# # Lesson 8: modern blocks
#
# **This lesson teaches** the pieces that turned LeNet into today's networks: batch
# normalisation (forward, the backward with its mean terms, training vs inference), dropout,
# residual connections (why the identity path keeps gradients alive in deep stacks),
# depthwise-separable convolutions (parameters and FLOPs counted), and receptive fields (why two
# 3x3 convolutions replace one 5x5). It ends with the graded batch-norm backward exercise.
# **Time: about 60 minutes.**
#
# Figures go to `$SCRATCHNET_FIGURES` (or a fresh temporary folder), never into the repository.

# %%
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import scratchnet as sn
from scratchnet.gradcheck import check_layer
from scratchnet.layers import (
    Activation,
    BatchNorm,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Dropout,
    Residual,
    SeparableConv2D,
)
from scratchnet.layers.base import iter_layers
from scratchnet.receptive import compare_conv_cost, layer_costs, receptive_field

QUICK = os.environ.get("SCRATCHNET_QUICK") == "1"   # the tests' short run (smaller stacks)
FIGURES = Path(os.environ.get("SCRATCHNET_FIGURES") or tempfile.mkdtemp(prefix="scratchnet-lesson08-"))
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


rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. Batch normalisation
#
# Per channel $c$, over the $M$ values of the batch (and of every position, for images):
#
# $$ \mu = \frac1M \sum_m x_m, \quad \sigma^2 = \frac1M \sum_m (x_m - \mu)^2, \quad
#    \hat x_m = \frac{x_m - \mu}{\sqrt{\sigma^2 + \epsilon}}, \quad y_m = \gamma \hat x_m + \beta. $$
#
# Every layer then sees inputs of a controlled scale whatever the layers before do, which allows
# higher learning rates and makes initialisation less delicate. The backward has two extra terms
# because $\mu$ and $\sigma$ depend on *every* $x_m$ of the batch:
#
# $$ \delta\beta = \sum_m \delta y_m, \qquad \delta\gamma = \sum_m \delta y_m \hat x_m, \qquad
#    \delta x_m = \frac{\gamma}{\sqrt{\sigma^2 + \epsilon}}\Big(\delta y_m - \frac1M\sum_k \delta y_k
#    - \hat x_m \frac1M \sum_k \delta y_k \hat x_k\Big). $$
#
# At inference there is no batch: the layer uses running averages of $\mu$ and $\sigma^2$
# collected during training, and becomes a fixed affine map per channel.

# %%
x = rng.normal(3.0, 2.0, size=(8, 5))
bn = BatchNorm()
bn.build((5,), rng=rng, dtype="float64")
bn.params["gamma"][:] = rng.uniform(0.5, 2, size=5)
y = bn.forward(x, training=True)
dy = rng.normal(size=y.shape)
dx = bn.backward(dy)
mu, var = x.mean(axis=0), x.var(axis=0)
xhat = (x - mu) / np.sqrt(var + bn.eps)
scale = bn.params["gamma"] / np.sqrt(var + bn.eps)
formula = scale * (dy - dy.mean(axis=0) - xhat * (dy * xhat).mean(axis=0))
print("BatchNorm backward matches the formula:", np.allclose(dx, formula, rtol=1e-12, atol=1e-12))
print("without the mean terms it would not:", not np.allclose(dx, scale * dy))
print(check_layer(BatchNorm(), (3, 3, 2), training=True))
inference = bn.forward(x, training=False)
print("after one training batch the running mean moved 10% of the way:", np.round(bn.buffers["mean"], 3))

# %% [markdown]
# ## 2. Dropout
#
# In training, each unit is kept with probability $1 - r$ and scaled up ("inverted" dropout),
# so the expected output equals the input and inference needs no change:
#
# $$ y = \frac{m \odot x}{1 - r}, \quad m_i \sim \operatorname{Bernoulli}(1 - r), \qquad
#    \mathbb{E}[y] = x, \qquad \delta x = \frac{m \odot \delta y}{1 - r}. $$
#
# A network cannot rely on any single unit, which acts like training an ensemble of thinned
# networks. The mask is drawn from the generator the model hands the layer (lesson 11).

# %%
drop = Dropout(0.5)
drop.build((1000,), dtype="float64")
drop.set_rng(np.random.default_rng(0))
ones = np.ones((20, 1000))
kept = drop.forward(ones, training=True)
print(f"training: {np.mean(kept == 0):.1%} dropped, kept units = {kept.max():.1f}, "
      f"mean {kept.mean():.3f} (x = 1)")
print("inference: y = x:", np.array_equal(drop.forward(ones, training=False), ones))

# %% [markdown]
# ## 3. Residual connections
#
# A residual block computes $y = x + F(x)$. Its input gradient has an identity term:
#
# $$ \frac{\partial L}{\partial x} = \frac{\partial L}{\partial y}
#    + \Big(\frac{\partial F}{\partial x}\Big)^{\!\top} \frac{\partial L}{\partial y}, $$
#
# so through $D$ stacked blocks the gradient is a sum over paths that includes the direct one, not
# a product of $D$ Jacobians that shrinks (or grows) geometrically. Below, the norm of the
# gradient arriving at each layer's input, in a deep plain stack and in the same stack with
# residual connections, both
# at initialisation, with tanh layers whose weights are deliberately half the Glorot scale.

# %%
depth, width = (12 if QUICK else 30), 32


def stack(residual):
    layers = []
    for _ in range(depth):
        block = [Dense(width, activation="tanh", kernel_initializer="glorot_normal")]
        layers.append(Residual(block) if residual else block[0])
    model = sn.Sequential(layers + [Dense(10)], input_shape=(width,), seed=0, dtype="float64").build()
    hidden = [layer for layer in iter_layers(model.layers) if isinstance(layer, Dense)][:-1]
    for layer in hidden:
        layer.params["W"] *= 0.5          # a gain of about 0.5 per layer: too small on purpose
    return model.compile(optimizer="adam", loss="cross_entropy"), hidden


def input_gradient_norms(model, inputs, labels):
    """||dL/d(input of layer l)|| for every layer l, from one forward and backward pass."""
    model.loss.forward(model.forward(inputs, training=True), labels)
    grad = model.loss.backward()                                   # dL/dlogits
    norms = []
    for layer in reversed(model.layers):
        grad = layer.backward(grad)
        norms.append(float(np.linalg.norm(grad)))
    return norms[::-1][:depth]


inputs, labels = rng.normal(size=(64, width)), rng.integers(0, 10, size=64)
norms = {"plain": input_gradient_norms(stack(False)[0], inputs, labels),
         "residual": input_gradient_norms(stack(True)[0], inputs, labels)}
ratio = {name: values[0] / values[-1] for name, values in norms.items()}
print(f"gradient reaching the input / reaching the last block: plain {ratio['plain']:.2e}, "
      f"residual {ratio['residual']:.2e}")
figure = Figure(figsize=(6, 4), layout="constrained")
axes = figure.subplots()
for name, values in norms.items():
    axes.semilogy(range(1, depth + 1), values, "o-", ms=3, label=name)
axes.set_xlabel("layer (1 = next to the input)")
axes.set_ylabel("||dL/d input of the layer||")
axes.set_title(f"{depth} tanh layers at initialisation")
axes.legend()
axes.grid(alpha=0.3, which="both")
save(figure, "08_residual_gradients.png")

# %% [markdown]
# ## 4. Depthwise-separable convolutions
#
# A standard $k \times k$ convolution from $C$ to $F$ channels mixes space and channels at once:
# $k^2 C F$ weights and $H_o W_o k^2 C F$ multiply-adds. A depthwise-separable one splits the job:
# a **depthwise** $k \times k$ filter per channel (space only, $k^2 C$) then a **pointwise**
# $1 \times 1$ convolution (channels only, $C F$). The cost ratio (MobileNet, Howard et al. 2017):
#
# $$ \frac{k^2 C + C F}{k^2 C F} = \frac1F + \frac1{k^2}
#    \approx \frac19 \text{ for } k = 3,\ F \text{ large}. $$

# %%
cost = compare_conv_cost((32, 32, 64), filters=128, kernel_size=3)
print(cost)
standard = Conv2D(128, 3, padding="same")
separable = SeparableConv2D(128, 3, padding="same")
for layer in (standard, separable):
    layer.build((32, 32, 64), rng=rng)
print("layer parameters agree with the table:",
      standard.count_params() == cost.standard_params and separable.count_params() == cost.separable_params)
print(check_layer(DepthwiseConv2D(3, padding="same"), (5, 5, 3)))

# %% [markdown]
# ## 5. Receptive fields: two 3x3 against one 5x5
#
# An output cell of a layer with kernel $k$ (stride 1) sees $k$ cells of its input; stacking adds
# $k - 1$ each time: $r_{\text{out}} = r_{\text{in}} + (k - 1)\, j$ with $j$ the product of the
# strides so far. Two 3x3 layers therefore see $1 + 2 + 2 = 5$ pixels, like one 5x5, with
# $2 \cdot 9 C^2 = 18 C^2$ weights instead of $25 C^2$ and one more non-linearity in between (VGG).

# %%
channels = 32
two = sn.Sequential([Conv2D(channels, 3), Activation("relu"), Conv2D(channels, 3)],
                    input_shape=(16, 16, channels), seed=0).build()
one = sn.Sequential([Conv2D(channels, 5)], input_shape=(16, 16, channels), seed=0).build()
rf_two, rf_one = receptive_field(two)[-1].size, receptive_field(one)[-1].size
print(f"two 3x3: receptive field {rf_two}, {two.count_params():,} parameters, "
      f"{layer_costs(two)[1]['macs']:,} MACs per sample")
print(f"one 5x5: receptive field {rf_one}, {one.count_params():,} parameters, "
      f"{layer_costs(one)[1]['macs']:,} MACs per sample")
print("two 3x3 see 5x5:", rf_two == rf_one == (5, 5))
for row in receptive_field(two):
    print(f"  {row.name:<12} output {row.output_shape}  receptive field {row.size}  jump {row.jump}")

# %% [markdown]
# ## Exercise (graded): batch norm's backward
#
# ```
# scratchnet exercise start batch_norm_backward      # the forward is given
# scratchnet exercise check batch_norm_backward.py
# ```
#
# Derive $\delta x$ of section 1 yourself (start from $\hat x$, then $\sigma$, then $\mu$; both
# depend on every row), implement it, and let the grader check it on vectors, images and inputs
# of size 1000. `scratchnet exercise start residual_block` writes the backward of a residual
# block. Below, the grader runs on scratchnet's own `BatchNorm` in the exercise's place.

# %%
from scratchnet.exercises import check  # noqa: E402

scratch = tempfile.TemporaryDirectory(prefix="scratchnet-exercise-")  # deleted when Python exits
workdir = Path(scratch.name)
reference = workdir / "scratchnet_own.py"
reference.write_text("# scratchnet exercise: batch_norm_backward\nfrom scratchnet.layers import BatchNorm\n")
report = check(reference)
print(report)
assert report.passed
