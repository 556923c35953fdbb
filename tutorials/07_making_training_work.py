# %% [markdown]
# # Lesson 7: making training work
#
# **This lesson teaches** the handful of things that decide whether a network trains at all and
# how well it generalises: weight initialisation (why the scale must be about
# $\sqrt{2/\text{fan-in}}$ for ReLU), the learning rate and its schedules, watching a run's health
# with `HealthMonitor` (a broken run and a good one), overfitting and weight decay, and early
# stopping on a held-out split. **Time: about 60 minutes.**
#
# `SCRATCHNET_QUICK=1` uses fewer digits and epochs (what the tests run). Figures go to
# `$SCRATCHNET_FIGURES` (or a fresh temporary folder), never into the repository.

# %%
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import scratchnet as sn
from scratchnet import metrics, schedules
from scratchnet.callbacks import EarlyStopping
from scratchnet.datasets import load_mnist_sample
from scratchnet.health import HealthMonitor
from scratchnet.layers import Dense, Flatten

QUICK = os.environ.get("SCRATCHNET_QUICK") == "1"   # the tests' short run: fewer digits and epochs
FIGURES = Path(os.environ.get("SCRATCHNET_FIGURES") or tempfile.mkdtemp(prefix="scratchnet-lesson07-"))
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


(x_all, y_all), (x_test, y_test) = load_mnist_sample()
n_train = 600 if QUICK else 3000
x_train, y_train = x_all[:n_train], y_all[:n_train]
n_val = 300 if QUICK else 1000
x_val, y_val = x_all[-n_val:], y_all[-n_val:]       # held out: never trained on, used to choose
print(f"train {len(x_train)}, validation {len(x_val)} (held out from the training digits), "
      f"test {len(x_test)}")


def small_mlp(seed=0, hidden=64):
    return sn.Sequential([Flatten(), Dense(hidden, activation="relu"), Dense(10)],
                         input_shape=(28, 28, 1), seed=seed)


# %% [markdown]
# ## 1. Initialisation: keep the signal's scale
#
# A Dense layer $z = W a$ with $n$ inputs, weights of variance $\sigma_w^2$ and independent
# inputs: $\operatorname{Var}(z) = n\, \sigma_w^2\, \mathbb{E}[a^2]$. After a ReLU, half the
# pre-activations are cut to zero, so $\mathbb{E}[a^2] = \tfrac12 \operatorname{Var}(z_{\text{prev}})$ and
#
# $$ \operatorname{Var}(z_l) = \tfrac{n}{2}\, \sigma_w^2 \operatorname{Var}(z_{l-1})
#    \quad\Rightarrow\quad \sigma_w^2 = \frac{2}{n} \text{ keeps it constant (He et al. 2015).} $$
#
# Any other scale multiplies the signal by the same factor at every layer: after 20 layers a
# factor of 0.7 is $10^{-3}$ (vanishing), a factor of 1.4 is $10^{3}$ (exploding). The same holds
# for the gradients flowing back. Glorot's $\sigma_w^2 = 2/(n_{in} + n_{out})$ is the tanh version.
# scratchnet's `Dense` and `Conv2D` take `kernel_initializer="he_normal"`, `"glorot_uniform"`, ...

# %%
rng = np.random.default_rng(0)
width, depth = 256, 20
scales = {"0.01 (too small)": lambda n: 0.01, "sqrt(1/n) (Glorot-like)": lambda n: np.sqrt(1 / n),
          "sqrt(2/n) (He)": lambda n: np.sqrt(2 / n), "sqrt(4/n) (too large)": lambda n: np.sqrt(4 / n)}
stds = {}
for label, scale in scales.items():
    a, values = rng.normal(size=(256, width)), []
    for _ in range(depth):
        a = np.maximum(a @ rng.normal(0, scale(width), size=(width, width)), 0)   # Dense + ReLU
        values.append(a.std())
    stds[label] = values
    print(f"{label:>24}: activation std after {depth} layers {values[-1]:.2e}")

figure = Figure(figsize=(6, 4), layout="constrained")
axes = figure.subplots()
for label, values in stds.items():
    axes.semilogy(range(1, depth + 1), values, "o-", ms=3, label=label)
axes.set_xlabel("layer")
axes.set_ylabel("std of the ReLU outputs")
axes.set_title("20 Dense + ReLU layers, 256 units: weight scale")
axes.legend(fontsize=8)
axes.grid(alpha=0.3)
save(figure, "07_initialisation.png")

# %% [markdown]
# ## 2. The learning rate
#
# Gradient descent takes the step $W \leftarrow W - \eta\, \nabla_W L$. Too small an $\eta$ and the
# loss creeps down; too large and each step overshoots the valley it is in, the loss jumps or
# diverges. Plain SGD on the same small network with three rates, one step per batch:

# %%
def train_steps(model, steps, batch=32):
    losses, order = [], np.random.default_rng(0).permutation(len(x_train))
    for step in range(steps):
        index = order[(step * batch) % len(order):][:batch]
        loss, _ = model.train_step(x_train[index], y_train[index])
        losses.append(loss)
    return losses


curves = {}
for lr in (0.002, 0.1, 3.0):
    model = small_mlp().compile(optimizer=sn.SGD(lr=lr), loss="cross_entropy")
    curves[lr] = train_steps(model, 40 if QUICK else 200)
    print(f"SGD lr={lr:<5}: loss after {len(curves[lr])} steps {np.mean(curves[lr][-5:]):.3f}")

# %% [markdown]
# A **schedule** changes $\eta$ over training: large early (fast progress), small late (settle
# into the minimum). Common ones, as the optimizer sees them step by step:
#
# $$ \text{cosine: } \eta_t = \eta_{\min}
#    + \tfrac12(\eta_0 - \eta_{\min})\left(1 + \cos\tfrac{\pi t}{T}\right),
#    \qquad \text{step: } \eta_t = \eta_0\, \gamma^{\lfloor t / k \rfloor}, $$
#
# a linear **warm-up** (start small while Adam's moment estimates and batch statistics are
# still noisy) and **one-cycle** (warm up to a high rate, then anneal far below the start).
# Pass one as the optimizer's `lr`: `sn.Adam(lr=schedules.CosineDecay(3e-3, total_steps=1000))`.

# %%
total = 1000
plans = {"StepDecay(0.1, 0.5, every=250)": schedules.StepDecay(0.1, factor=0.5, every=250),
         "CosineDecay(0.1, 1000)": schedules.CosineDecay(0.1, total_steps=total),
         "LinearWarmup(cosine, 100 steps)":
             schedules.LinearWarmup(schedules.CosineDecay(0.1, total - 100), 100),
         "OneCycle(0.1, 1000)": schedules.OneCycle(0.1, total_steps=total)}

figure = Figure(figsize=(11, 3.8), layout="constrained")
left, right = figure.subplots(1, 2)
for lr, losses in curves.items():
    left.plot(losses, label=f"SGD lr={lr}")
left.set_xlabel("step")
left.set_ylabel("training loss (batch)")
left.set_title("learning rate: too small, good, too large")
left.set_ylim(0, 5)
left.legend(fontsize=8)
steps = np.arange(total)
for label, schedule in plans.items():
    right.plot(steps, [schedule(int(t)) for t in steps], label=label)
right.set_xlabel("step")
right.set_ylabel("learning rate")
right.set_title("schedules")
right.legend(fontsize=8)
for axes in (left, right):
    axes.grid(alpha=0.3)
save(figure, "07_learning_rates.png")

# %% [markdown]
# ## 3. Watching a run: HealthMonitor
#
# The loss tells you *that* something is wrong, rarely *what*. `HealthMonitor` records, every few
# steps, for every layer the **update-to-weight ratio** $\lVert W_t - W_{t-1} \rVert / \lVert W_{t-1} \rVert$
# (rule of thumb: about $10^{-3}$; near 1 the optimizer rewrites the layer each step), gradient
# norms, and on a fixed probe batch the share of **dead ReLUs** (units never positive: they pass
# no gradient and stop learning). Below, the same network trained with a learning rate that is far
# too high, then with a good one.

# %%
def monitored_run(optimizer):
    model = small_mlp().compile(optimizer=optimizer, loss="cross_entropy")
    monitor = HealthMonitor(probe=x_train[:128], every=5, verbose=False)
    try:
        model.fit(x_train, y_train, epochs=1, batch_size=32, validation_data=(x_val, y_val),
                  callbacks=[monitor], verbose=0)
    except sn.NonFiniteLossError as error:       # a diverged run: the monitor records why
        monitor.report_error(error)
    return model, monitor


broken_model, broken = monitored_run(sn.SGD(lr=2.0))
print("HealthMonitor on the broken run:")
for warning in broken.warnings:
    print("  -", warning)
assert broken.warnings
good_model, good = monitored_run(sn.Adam(lr=1e-3))
print("HealthMonitor on the good run:", good.warnings or "no warnings")
save(broken.plot(), "07_health_broken.png")
save(good.plot(), "07_health_good.png")

# %% [markdown]
# ## 4. Overfitting and weight decay
#
# With few examples and many weights a network can memorise its training set: training loss
# keeps falling while the **validation** loss (held-out digits) turns up. Weight decay adds a
# penalty on large weights, $L' = L + \tfrac{\lambda}{2}\lVert W\rVert^2$, whose gradient
# $\lambda W$ pulls every weight towards zero each step (`Adam(weight_decay=...)` adds it to the
# gradient; `AdamW` applies it directly as $W \leftarrow W - \eta\lambda W$, which works better with
# Adam's per-weight scaling; here $\eta\lambda = 0.003 \cdot 2$ shrinks every weight by 0.6% per step).
# A smaller training set makes the effect visible quickly: with 500 digits and 40 epochs the
# run without decay ends with a validation loss near 0.63 (best 0.47, at epoch 5), the decayed
# one near 0.43 (machine-dependent; the tests run a 3-epoch version).

# %%
few = 200 if QUICK else 500
epochs = 3 if QUICK else 40
runs = {}
for label, optimizer in (("no decay", sn.Adam(lr=3e-3)),
                         ("AdamW, decay 2", sn.AdamW(lr=3e-3, weight_decay=2.0))):
    model = small_mlp(hidden=256).compile(optimizer=optimizer, loss="cross_entropy")
    runs[label] = model.fit(x_train[:few], y_train[:few], epochs=epochs, batch_size=32,
                            validation_data=(x_val, y_val), verbose=0)
    h = runs[label]
    print(f"{label:>16}: train loss {h['loss'][-1]:.3f}, validation loss {h['val_loss'][-1]:.3f} "
          f"(best {min(h['val_loss']):.3f} at epoch {int(np.argmin(h['val_loss'])) + 1})")
figure = Figure(figsize=(6.5, 4), layout="constrained")
axes = figure.subplots()
for (label, h), color in zip(runs.items(), ("tab:red", "tab:blue")):
    epochs_run = range(1, len(h["loss"]) + 1)
    axes.plot(epochs_run, h["loss"], "o-", ms=3, color=color, label=f"{label}: training")
    axes.plot(epochs_run, h["val_loss"], "s--", ms=3, color=color, label=f"{label}: validation")
axes.set_xlabel("epoch")
axes.set_ylabel("cross-entropy loss")
axes.set_title(f"{few} training digits: the gap between the curves is overfitting")
axes.legend(fontsize=8)
axes.grid(alpha=0.3)
save(figure, "07_overfitting.png")

# %% [markdown]
# ## 5. Early stopping
#
# The validation curve says when to stop: `EarlyStopping(monitor="val_loss", patience=p)` ends
# training after $p$ epochs without improvement, and `restore_best_weights=True` goes back to the
# best epoch's weights. It chooses on the **validation** split, so the test set is still unseen
# and its accuracy, printed once below, is an honest estimate.

# %%
model = small_mlp(hidden=256).compile(optimizer=sn.Adam(lr=3e-3), loss="cross_entropy")
stopper = EarlyStopping(monitor="val_loss", patience=1 if QUICK else 3, restore_best_weights=True)
history = model.fit(x_train[:few], y_train[:few], epochs=epochs, batch_size=32,
                    validation_data=(x_val, y_val), callbacks=[stopper], verbose=0)
best = int(np.argmin(history["val_loss"])) + 1
stopped = ("did not stop early" if stopper.stopped_epoch is None
           else f"stopped after epoch {stopper.stopped_epoch + 1}")
print(f"early stopping {stopped}; weights of epoch {best} (validation loss {min(history['val_loss']):.3f})")
print(f"test accuracy of the chosen model: {metrics.accuracy(y_test, model.predict_classes(x_test)):.4f}")

# %% [markdown]
# ## Exercise (graded): the sigmoid's backward, and why it vanishes
#
# The sigmoid $\sigma(z) = 1/(1 + e^{-z})$ has $\sigma'(z) = \sigma(z)(1 - \sigma(z)) \le \tfrac14$:
# through ten sigmoid layers the gradient shrinks by at least $4^{10} \approx 10^6$, the
# vanishing gradient that ReLU and He initialisation fixed. Write its backward:
#
# ```
# scratchnet exercise start sigmoid
# scratchnet exercise check sigmoid.py
# ```
#
# (`relu` and `tanh` are exercises too.) Then rerun section 1 with `np.tanh` instead of the ReLU
# and find the scale that keeps the signal alive. Below, the grader runs on scratchnet's own
# sigmoid activation in the exercise's place.

# %%
from scratchnet.exercises import check  # noqa: E402

scratch = tempfile.TemporaryDirectory(prefix="scratchnet-exercise-")  # deleted when Python exits
workdir = Path(scratch.name)
reference = workdir / "scratchnet_own.py"
reference.write_text("# scratchnet exercise: sigmoid\nfrom scratchnet.layers import Activation\n\n\n"
                     "def Sigmoid():\n    return Activation('sigmoid')\n")
report = check(reference)
print(report)
assert report.passed
