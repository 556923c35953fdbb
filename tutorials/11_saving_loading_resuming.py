# %% [markdown]
# # Lesson 11: saving, loading and resuming, and why pickles can bite
#
# **This lesson teaches** what a saved model must contain to *resume* training exactly (weights,
# the optimizer's moments and step count, the shuffling generator's state), how to check that a
# resumed run is bitwise the same as an uninterrupted one, why loading a pickle from a stranger
# runs the stranger's code (shown safely: the "attack" only writes a marker file into a temporary
# folder), what `scratchnet.load` does about it, and how to share weights in a pickle-free `.npz`.
# **Time: about 30 minutes.**
#
# Every file goes into a temporary folder; figures go to `$SCRATCHNET_FIGURES` (or a fresh
# temporary folder), never into the repository.

# %%
import os
import pickle
import sys
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import scratchnet as sn
from scratchnet.callbacks import Callback
from scratchnet.datasets import load_mnist_sample
from scratchnet.models import tiny_cnn
from scratchnet.serialization import frame_payload

QUICK = os.environ.get("SCRATCHNET_QUICK") == "1"   # the tests' short run: fewer digits
FIGURES = Path(os.environ.get("SCRATCHNET_FIGURES") or tempfile.mkdtemp(prefix="scratchnet-lesson11-"))
FIGURES.mkdir(parents=True, exist_ok=True)
if not os.environ.get("SCRATCHNET_FIGURES"):
    print(f"figures go to {FIGURES}, a new temporary folder: delete it when you are done")
SCRATCH = tempfile.TemporaryDirectory(prefix="scratchnet-lesson11-files-")  # deleted at exit
FILES = Path(SCRATCH.name)                                    # models and weights


def save(figure, name):
    """Write the figure to FIGURES (never into the repository); a notebook also shows it."""
    path = FIGURES / name
    figure.savefig(path, dpi=100)
    print(f"figure: {path}")
    if "ipykernel" in sys.modules:
        from IPython.display import Image, display
        display(Image(filename=str(path)))


# %% [markdown]
# ## 1. Save, load, predict
#
# `model.save(path)` writes a small header (magic, versions, payload length, SHA-256 of the
# payload) and a pickle of the model. `scratchnet.load(path)` checks the header and the checksum,
# rebuilds the model, and returns it ready to predict *or to continue training*.

# %%
(x_train, y_train), (x_test, y_test) = load_mnist_sample()
n = 500 if QUICK else 4000
x_train, y_train = x_train[:n], y_train[:n]


class BatchLosses(Callback):
    """Record the running training loss after every batch."""

    def __init__(self):
        self.losses = []

    def on_batch_end(self, batch, logs=None):
        self.losses.append(logs["loss"])


def fresh_model():
    return tiny_cnn(seed=0).compile(optimizer=sn.Adam(lr=3e-3), loss="cross_entropy")


model = fresh_model()
first = BatchLosses()
model.fit(x_train, y_train, epochs=1, batch_size=32, validation_split=0.1, callbacks=[first], verbose=0)
model.save(FILES / "digits.sn")
loaded = sn.load(FILES / "digits.sn")
print(f"saved {os.path.getsize(FILES / 'digits.sn'):,} bytes; same predictions after loading:",
      np.array_equal(model.predict(x_test[:100]), loaded.predict(x_test[:100])))
print("what travelled: epochs trained", loaded.epochs_trained,
      "| optimizer steps", loaded.optimizer.iterations,
      "| Adam moments of the first layer:", sorted(loaded.layers[0].opt_state))

# %% [markdown]
# ## 2. Resuming is exact
#
# Adam's update for a weight $w$ after $t$ steps depends on more than $w$:
#
# $$ m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \quad
#    w_t = w_{t-1} - \eta\, \frac{m_t / (1 - \beta_1^t)}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}. $$
#
# A file with only the weights restarts $m = v = 0$ and $t = 0$ (the bias correction then makes the
# first steps large), and a new shuffling order. scratchnet saves $m$, $v$, $t$ and the
# generator's state, so training one epoch, saving, loading and training a second epoch gives
# **bitwise** the same weights as two epochs in one go.

# %%
straight = fresh_model()
both = BatchLosses()
straight.fit(x_train, y_train, epochs=2, batch_size=32, validation_split=0.1, callbacks=[both], verbose=0)

second = BatchLosses()
loaded.fit(x_train, y_train, epochs=1, batch_size=32, validation_split=0.1, callbacks=[second], verbose=0)
same = all(np.array_equal(a, b)
           for a, b in zip(straight.get_weights().values(), loaded.get_weights().values()))
print("resumed bitwise:", same)
assert same

# the weights alone (a fresh optimizer) do NOT resume the same run:
restarted = fresh_model()
restarted.set_weights(sn.load(FILES / "digits.sn").get_weights())
restarted.fit(x_train, y_train, epochs=1, batch_size=32, validation_split=0.1, verbose=0)
drift = max(float(np.abs(a - b).max()) for a, b in zip(straight.get_weights().values(),
                                                       restarted.get_weights().values()))
print(f"weights only, fresh optimizer: max weight difference after the second epoch {drift:.3g}")

figure = Figure(figsize=(7, 4), layout="constrained")
axes = figure.subplots()
steps = np.arange(1, len(both.losses) + 1)
axes.plot(steps, both.losses, lw=3, alpha=0.4, label="two epochs in one go")
axes.plot(steps, first.losses + second.losses, "k--", lw=1, label="one epoch, save, load, one more")
axes.axvline(len(first.losses) + 0.5, color="gray", lw=1)
axes.text(len(first.losses) + 1, max(both.losses) * 0.9, "save / load", fontsize=8)
axes.set_xlabel("batch")
axes.set_ylabel("running training loss in the epoch")
axes.set_title("a resumed run retraces the uninterrupted one")
axes.legend()
axes.grid(alpha=0.3)
save(figure, "11_resume.png")

# %% [markdown]
# ## 3. Why loading a pickle runs code
#
# Pickle is not a data format; it is a small program for a stack machine. One of its
# instructions is "call this function with these arguments", and any object can ask to be
# rebuilt that way through `__reduce__`. So a file can say "call `pathlib.Path.write_text` with a
# path of my choosing" (or `os.system` with any command), and `pickle.load` will do it while it
# *loads*, before you have looked at anything. Here is such a file, harmless on purpose: it would
# print a line and write a marker into our temporary folder. We wrap it in a valid scratchnet header
# (the checksum only proves the file was not damaged, not who made it).

# %%
marker = FILES / "i_ran_while_loading.txt"


class Payload:
    def __reduce__(self):
        return (Path.write_text, (marker, "code from the file ran on your machine"))


class Announce:
    def __reduce__(self):
        return (print, ("  (a print call hidden in the file ran while loading)",))


evil = FILES / "model_from_a_stranger.sn"
evil.write_bytes(frame_payload(pickle.dumps([Announce(), Payload()], protocol=4)))

try:
    sn.load(evil)
except sn.UnsafeModelError as error:
    first_sentence = str(error).split(". ")[0] + "."  # the rest says how to load a file you trust
    print("scratchnet.load refused it: UnsafeModelError:", first_sentence)
print("the marker file exists:", marker.exists())
assert not marker.exists()

# %% [markdown]
# `scratchnet.load` uses a **restricted unpickler**: its `find_class` allows only scratchnet's own
# classes (rebuilt from their saved attributes, no custom code), NumPy's array rebuilders and
# builtin containers; everything else raises `UnsafeModelError` naming what was asked for, before
# anything runs. A model with your own layer classes loads with `sn.load(path,
# allowed_classes=[MyLayer])`. Plain pickle has no such guard; `sn.load(path, trusted=True)` is
# plain pickle, for files you made yourself. For contrast, plain `pickle.loads` on the same bytes
# (only acceptable here because we wrote the payload and know it is harmless):

# %%
pickle.loads(evil.read_bytes().split(b"\n", 1)[1])
print("after plain pickle.loads, the marker file exists:", marker.exists(), "->", marker.read_text())
marker.unlink()

# %% [markdown]
# ## 4. Sharing weights: `.npz`
#
# To hand weights to someone, send arrays, not a program: `model.save_weights("w.npz")` writes
# every parameter and buffer as a named array (`"conv2d/W"`, ...) in NumPy's zip format, and
# `load_weights` reads it with `allow_pickle=False`, checking every name and shape against the
# model before changing anything; the values must be real numbers and are converted to the
# model's dtype (float64 weights load into a float32 model). The receiver builds the
# architecture in code.

# %%
model.save_weights(FILES / "digits_weights.npz")
with np.load(FILES / "digits_weights.npz", allow_pickle=False) as archive:
    for key in archive.files:
        print(f"  {key:<12} {archive[key].shape} {archive[key].dtype}")
receiver = tiny_cnn(seed=123)
receiver.load_weights(FILES / "digits_weights.npz")
print("same predictions from the .npz:",
      np.array_equal(receiver.predict(x_test[:100]), model.predict(x_test[:100])))

# %% [markdown]
# ## Exercise (graded): dropout that resumes exactly
#
# A saved model resumes bitwise only if every random number comes from the generator the model
# hands its layers (`self.random_generator()`), whose state is saved, never from
# `np.random`'s global state. Write inverted dropout that way:
#
# $$ \text{training: } y = \frac{m \odot x}{1 - r},\ m_i \sim \text{Bernoulli}(1 - r), \qquad
#    \delta x = \frac{m \odot \delta y}{1 - r}; \qquad \text{inference: } y = x. $$
#
# ```
# scratchnet exercise start dropout
# scratchnet exercise check dropout.py
# ```
#
# Then: add your dropout to a model, train one epoch, save, load with
# `sn.load(path, allowed_classes=[Dropout])`, and check that section 2's bitwise test still
# holds. Below, the grader runs on scratchnet's own `Dropout` in the exercise's place.

# %%
from scratchnet.exercises import check  # noqa: E402

reference = FILES / "scratchnet_own.py"
reference.write_text("# scratchnet exercise: dropout\nfrom scratchnet.layers import Dropout\n")
report = check(reference)
print(report)
assert report.passed
