# %% [markdown]
# # Lesson 2: backpropagation through a layer
#
# **This lesson teaches** the chain rule through one Dense layer, by hand, by the library and by
# central differences; why the numerical check uses float64 and a step of 1e-6; and how to
# read a gradient-check report that points at a mistake. **Time: about 30 minutes.**
#
# Figures go to `$SCRATCHNET_FIGURES` (or a fresh temporary folder), never into the repository.

# %%
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from scratchnet.gradcheck import EPS, check_layer
from scratchnet.layers import Dense

QUICK = os.environ.get("SCRATCHNET_QUICK") == "1"   # the tests' short run (nothing to shorten here)
FIGURES = Path(os.environ.get("SCRATCHNET_FIGURES") or tempfile.mkdtemp(prefix="scratchnet-lesson02-"))
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
# ## 1. The chain rule, by hand
#
# A Dense layer with a tanh activation, for a batch of $N$ rows:
#
# $$ z = xW + b, \qquad y = \tanh(z), \qquad x: (N, D),\; W: (D, M),\; b: (M,),\; y: (N, M). $$
#
# The loss $L$ is a scalar somewhere downstream; the layer receives $\delta y = \partial L /
# \partial y$ (same shape as $y$) and must return $\partial L / \partial x$ and fill the
# gradients of its parameters. Write every derivative element by element and the matrix form
# falls out:
#
# $$ \delta z_{nj} = \delta y_{nj}\,(1 - y_{nj}^2) \qquad (\tanh' = 1 - \tanh^2) $$
#
# $$ \frac{\partial L}{\partial W_{ij}} = \sum_n \delta z_{nj}\, x_{ni}
#    \;\Rightarrow\; \delta W = x^\top \delta z,
# \qquad \delta b = \sum_n \delta z_{n\cdot}, \qquad \delta x = \delta z\, W^\top. $$
#
# Each weight $W_{ij}$ touches every sample on its way to $z_{\cdot j}$, so its gradient is a
# **sum** over the batch (a mean here is a classic bug: the loss already divides by $N$).
# Shapes are a free check: $x^\top \delta z$ is $(D, N)(N, M) = (D, M)$, the shape of $W$.

# %%
rng = np.random.default_rng(0)
layer = Dense(3, activation="tanh")
layer.build((4,), rng=rng, dtype="float64")   # W: (4, 3), b: (3,)

x = rng.normal(size=(2, 4))                    # a batch of 2 samples
y = layer.forward(x)                           # (2, 3)
dy = rng.normal(size=y.shape)                  # pretend this came from the loss

W, b = layer.params["W"], layer.params["b"]
z = x @ W + b
dz = dy * (1 - np.tanh(z) ** 2)
dW_by_hand, db_by_hand, dx_by_hand = x.T @ dz, dz.sum(axis=0), dz @ W.T

dx = layer.backward(dy)                        # the library: fills layer.grads, returns dx
print("dx matches:", np.allclose(dx, dx_by_hand, rtol=1e-12, atol=0))
print("dW matches:", np.allclose(layer.grads["W"], dW_by_hand, rtol=1e-12, atol=0))
print("db matches:", np.allclose(layer.grads["b"], db_by_hand, rtol=1e-12, atol=0))

# %% [markdown]
# ## 2. Checking with central differences
#
# Who checks the hand derivation? Calculus: for any scalar function $f$ of a parameter $\theta$,
#
# $$ \frac{\partial f}{\partial \theta} \approx \frac{f(\theta + \epsilon) - f(\theta - \epsilon)}{2\epsilon},
# \qquad \text{error} \approx \underbrace{\tfrac{\epsilon^2}{6} f'''}_{\text{truncation}}
# + \underbrace{\tfrac{u\,|f|}{\epsilon}}_{\text{round-off}} $$
#
# with $u$ the machine precision ($2.2 \times 10^{-16}$ in float64, $1.2 \times 10^{-7}$ in float32).
# The best step balances the two, $\epsilon \approx u^{1/3}$: a few times $10^{-6}$ in float64, where
# the error is about $u^{2/3} \approx 10^{-10}$; the library's step, `gradcheck.EPS` (the default of
# `check_layer`), is $10^{-6}$, at the bottom of that V. In float32 the same balance gives at best about
# $10^{-5}$, and only for a step chosen just right: too coarse to tell a small bug from noise,
# which is why every check runs in float64. The figure shows both V-shaped curves. We make $f$ a
# scalar with a fixed random projection
# $f(W) = \sum_{n,j} \delta y_{nj}\, y_{nj}(W)$, whose gradient is exactly what `backward(dy)` returns.

# %%
def f(W_value, dtype):
    probe = Dense(3, activation="tanh")
    probe.build((4,), dtype=dtype)
    probe.params["W"], probe.params["b"] = W_value.astype(dtype), b.astype(dtype)
    return float(np.sum(dy.astype(dtype) * probe.forward(x.astype(dtype))))


def numeric_dW(eps, dtype):
    grad = np.zeros_like(W)
    for index in np.ndindex(W.shape):
        step = np.zeros_like(W)
        step[index] = eps
        grad[index] = (f(W + step, dtype) - f(W - step, dtype)) / (2 * eps)
    return grad


def relative_error(a, b):
    return np.abs(a - b).max() / max(np.abs(a).max(), np.abs(b).max())


steps = np.logspace(-12, -1, 12 if QUICK else 23)
errors = {dtype: [relative_error(numeric_dW(eps, dtype), dW_by_hand) for eps in steps]
          for dtype in ("float64", "float32")}
best = steps[int(np.argmin(errors["float64"]))]
print(f"float64: best step {best:.0e}, relative error {min(errors['float64']):.1e}")
print(f"float32: best relative error {min(errors['float32']):.1e}")
error_at_eps = relative_error(numeric_dW(EPS, "float64"), dW_by_hand)
print(f"float64 at the library's step gradcheck.EPS = {EPS:.0e}: relative error {error_at_eps:.1e}")
assert min(errors["float64"]) < 1e-8 and error_at_eps < 1e-8

# %%
figure = Figure(figsize=(6, 4), layout="constrained")
axes = figure.subplots()
for dtype, values in errors.items():
    axes.loglog(steps, values, "o-", label=dtype)
axes.axhline(1e-6, color="gray", ls="--", lw=1)
axes.text(steps[0], 1.5e-6, "check_layer passes below 1e-6", fontsize=8, color="gray")
axes.set_xlabel("step $\\epsilon$")
axes.set_ylabel("relative error of the central difference")
axes.set_title("truncation (right) against round-off (left)")
axes.legend()
axes.grid(alpha=0.3, which="both")
save(figure, "02_central_difference_error.png")

# %% [markdown]
# ## 3. Let the library do it, and read the report
#
# `check_layer` does all of this for every array at once: it deep-copies the layer, runs it in
# float64, projects the output on a random direction and compares your `backward` with central
# differences for the input and every parameter. The error per array is
# $\max|a - n| / \max(\max|a|, \max|n|)$; it passes below $10^{-6}$.

# %%
print(check_layer(Dense(3, activation="tanh"), (4,)))


# %% [markdown]
# Now a layer with a classic mistake: the weight gradient is averaged over the batch, and the
# bias gradient is never filled. The report names the arrays, the worst element, and a
# **diagnosis**: "analytic = 1/N x numeric" means the sum became a mean.

# %%
class MyDense(Dense):
    def backward(self, dy):
        x = self.cache["x"]
        self.grads["W"] = x.T @ dy / len(x)   # a mean over the batch
        return dy @ self.params["W"].T        # grads["b"] is never filled


broken = check_layer(MyDense(3), (4,))
print(broken)
assert not broken.passed

# %% [markdown]
# ## Exercise (graded): Dense backward
#
# Write the backward pass of a Dense layer (no activation) yourself:
#
# ```
# scratchnet exercise start dense_backward      # writes dense_backward.py
# scratchnet exercise check dense_backward.py   # one verdict per case, with a diagnosis
# ```
#
# Then try breaking it on purpose (transpose `dW`, add `keepdims=True` to `db`, update `W`
# inside `backward`) and read what the grader says. Below the grader runs on scratchnet's own
# `Dense` in the exercise's place, so you see the report a correct answer gets.

# %%
from scratchnet.exercises import check  # noqa: E402

scratch = tempfile.TemporaryDirectory(prefix="scratchnet-exercise-")  # deleted when Python exits
workdir = Path(scratch.name)
reference = workdir / "scratchnet_own.py"
reference.write_text("# scratchnet exercise: dense_backward\nfrom scratchnet.layers import Dense\n")
report = check(reference)
print(report)
assert report.passed
