"""Sequential: a stack of layers trained with a fused loss and a per-layer optimizer.

One training step on a batch (x, y)::

    logits = forward(x)                  # every layer in order, caching for backward
    loss   = loss.forward(logits, y)
    d      = loss.backward()             # dL/dlogits
    d      = layer.backward(d)           # every layer in reverse: fills layer.grads
    optimizer.step(layers)               # the only place parameters change
"""

from __future__ import annotations

import math
import time

import numpy as np

from .layers.base import Layer, iter_layers
from .layers.containers import rename_duplicates
from .losses import get_loss
from .optimizers import get_optimizer
from .progress import ProgressBar


class History:
    """Per-epoch metrics returned by ``fit``: ``history["loss"]``, ``history["val_accuracy"]``...

    ``epoch`` holds the model's epoch numbers and ``seconds`` the wall time of each epoch.
    """

    def __init__(self):
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.seconds: list[float] = []

    def append(self, epoch: int, metrics: dict, seconds: float | None = None) -> None:
        self.epoch.append(epoch)
        self.seconds.append(seconds)
        for key, value in metrics.items():
            self.history.setdefault(key, []).append(value)

    def __getitem__(self, key):
        return self.history[key]

    def __contains__(self, key):
        return key in self.history

    def to_dict(self) -> dict:
        return {"epoch": list(self.epoch), "seconds": list(self.seconds),
                **{key: list(values) for key, values in self.history.items()}}

    def __repr__(self):
        return f"History({self.to_dict()})"


class Sequential:
    """A linear stack of layers.

    Parameters
    ----------
    layers : list of Layer, optional
    input_shape : tuple, optional
        Shape of one sample, e.g. ``(28, 28, 1)``. Without it the model builds from the first
        batch it sees.
    seed : int, optional
        Seeds weight initialisation, shuffling and any layer randomness. Same seed and same
        data give bitwise-identical weights and history.
    dtype : "float32" (default, fast) or "float64" (exact)
    check_numerics : bool
        If True, every input batch is checked for NaN and inf.
    """

    def __init__(self, layers=None, input_shape=None, seed=None, dtype="float32",
                 check_numerics=False, name="sequential"):
        self.name = name
        self.layers: list[Layer] = []
        self.input_shape = tuple(int(size) for size in input_shape) if input_shape is not None else None
        self.seed = seed
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise TypeError(f"{self.name}: dtype must be a floating type, got {self.dtype}")
        self.check_numerics = bool(check_numerics)
        self.rng = np.random.default_rng(seed)
        self.optimizer = None
        self.loss = None
        self.built = False
        self.epochs_trained = 0
        for layer in layers or []:
            self.add(layer)

    # ------------------------------------------------------------------ building
    def add(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(f"{self.name}: add() expects a Layer, got {type(layer).__name__}")
        # names are unique over the whole tree (layers inside containers too): weights are saved by name
        rename_duplicates([layer], used={existing.name for existing in iter_layers(self.layers)})
        if self.built:
            layer.build(self.output_shape, rng=self.rng, dtype=self.dtype)
            layer.set_rng(self.rng)
        self.layers.append(layer)

    def build(self, input_shape=None) -> "Sequential":
        """Build every layer in order from the shape of one sample."""
        if input_shape is not None:
            self.input_shape = tuple(int(size) for size in input_shape)
        if self.input_shape is None:
            raise ValueError(f"{self.name}: no input_shape; pass Sequential(input_shape=...) or build(shape)")
        if not self.layers:
            raise ValueError(f"{self.name}: the model has no layers")
        shape = self.input_shape
        for layer in self.layers:
            shape = layer.build(shape, rng=self.rng, dtype=self.dtype)
            layer.set_rng(self.rng)
        self.built = True
        return self

    @property
    def output_shape(self) -> tuple[int, ...]:
        shape = self.input_shape
        for layer in self.layers:
            shape = layer.output_shape(shape)
        return shape

    def compile(self, optimizer="adam", loss="cross_entropy") -> "Sequential":
        self.optimizer = get_optimizer(optimizer)
        self.loss = get_loss(loss)
        return self

    # ------------------------------------------------------------------ checks
    def _prepare_input(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind not in "fiub":
            raise TypeError(f"{self.name}: expected a numeric input array, got dtype {x.dtype}")
        if not self.built:
            self.build(x.shape[1:] if self.input_shape is None else None)
        if x.ndim != 1 + len(self.input_shape) or x.shape[1:] != self.input_shape:
            expected = ", ".join(["N", *map(str, self.input_shape)])
            raise ValueError(f"{self.name}: expected input of shape ({expected}), got {x.shape}")
        if self.check_numerics and not np.all(np.isfinite(x)):
            raise ValueError(f"{self.name}: input contains NaN or inf "
                             f"({int(np.sum(~np.isfinite(x)))} values)")
        return x.astype(self.dtype, copy=False)

    def _check_targets(self, x, y) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim == 0 or len(y) != len(x):
            raise ValueError(f"{self.name}: got {len(x)} inputs but {y.shape} targets")
        return y

    def _require_compiled(self):
        if self.loss is None or self.optimizer is None:
            raise RuntimeError(f"{self.name}: call compile(optimizer, loss) before training")

    # ------------------------------------------------------------------ passes
    def forward(self, x, training=False) -> np.ndarray:
        return self._run_layers(self._prepare_input(x), training)

    def _run_layers(self, out, training=False) -> np.ndarray:
        """Every layer's forward in order, on an input already checked by _prepare_input."""
        for layer in self.layers:
            out = layer.forward(out, training=training)
        return out

    def backward(self, dout, input_gradient: bool = True) -> np.ndarray | None:
        """Every layer's backward in reverse order; returns dL/d(input).

        With ``input_gradient=False`` (what training uses) the first layer only fills its
        gradients (``Layer.backward_params``), skipping dL/d(input), and None is returned.
        """
        last = 0 if input_gradient else 1
        for layer in reversed(self.layers[last:]):
            dout = layer.backward(dout)
        if input_gradient:
            return dout
        self.layers[0].backward_params(dout)
        return None

    def train_step(self, x, y) -> tuple[float, np.ndarray]:
        """One step of forward, loss, backward and update. Returns (loss, logits)."""
        self._require_compiled()
        logits = self.forward(x, training=True)
        loss = self.loss.forward(logits, y)
        self.backward(self.loss.backward(), input_gradient=False)  # dL/dx of the data is never used
        self.optimizer.step(self.layers)
        return loss, logits

    # ------------------------------------------------------------------ training
    def fit(self, x, y, epochs=1, batch_size=32, validation_data=None, shuffle=True,
            verbose=1, history: History | None = None) -> History:
        """Train for ``epochs`` passes over (x, y) in shuffled mini-batches.

        Returns a History of per-epoch loss and accuracy (on the training batches, as they
        were seen) and val_loss / val_accuracy when ``validation_data=(x_val, y_val)``.
        Pass your own ``history`` to have each epoch appended the moment it finishes: a
        KeyboardInterrupt then leaves every finished epoch in it (``scratchnet train`` does).
        """
        self._require_compiled()
        x = self._prepare_input(x)
        y = self._check_targets(x, y)
        for option, value, least in (("batch_size", batch_size, 1), ("epochs", epochs, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise ValueError(f"{self.name}: {option} must be an int >= {least}, got {value!r}")
        history = history if history is not None else History()
        n_samples = len(x)
        n_steps = math.ceil(n_samples / batch_size)
        for epoch in range(epochs):
            start = time.perf_counter()
            order = self.rng.permutation(n_samples) if shuffle else np.arange(n_samples)
            bar = ProgressBar(n_steps, f"Epoch {epoch + 1}/{epochs}") if verbose else None
            loss_sum, correct_sum, seen = 0.0, 0.0, 0
            for step in range(n_steps):
                batch = order[step * batch_size:(step + 1) * batch_size]
                loss, logits = self.train_step(x[batch], y[batch])
                loss_sum += loss * len(batch)
                accuracy = self.loss.accuracy(logits, y[batch])
                correct_sum += (accuracy or 0.0) * len(batch)
                seen += len(batch)
                metrics = {"loss": loss_sum / seen}
                if self.loss.has_accuracy:
                    metrics["accuracy"] = correct_sum / seen
                if bar:
                    bar.update(step + 1, metrics)
            if validation_data is not None:
                val = self.evaluate(*validation_data)
                metrics.update({f"val_{key}": value for key, value in val.items()})
            self.epochs_trained += 1
            history.append(self.epochs_trained, metrics, seconds=time.perf_counter() - start)
            if bar:
                bar.close(metrics)
        return history

    def evaluate(self, x, y, batch_size=256) -> dict:
        """Mean loss (and accuracy for classification losses) over (x, y), in inference mode."""
        if self.loss is None:
            raise RuntimeError(f"{self.name}: call compile(optimizer, loss) before evaluate")
        x = self._prepare_input(x)
        y = self._check_targets(x, y)
        loss_sum, correct_sum = 0.0, 0.0
        for start in range(0, len(x), batch_size):
            logits = self._run_layers(x[start:start + batch_size])
            targets = y[start:start + batch_size]
            loss_sum += self.loss.forward(logits, targets) * len(logits)
            correct_sum += (self.loss.accuracy(logits, targets) or 0.0) * len(logits)
        results = {"loss": loss_sum / len(x)}
        if self.loss.has_accuracy:
            results["accuracy"] = correct_sum / len(x)
        return results

    def predict(self, x, batch_size=256) -> np.ndarray:
        """Output of the last layer (logits if the model ends without softmax)."""
        x = self._prepare_input(x)
        outputs = [self._run_layers(x[start:start + batch_size]) for start in range(0, len(x), batch_size)]
        if not outputs:
            return np.zeros((0, *self.output_shape), dtype=self.dtype)
        return np.concatenate(outputs)

    # ------------------------------------------------------------------ inspection
    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def _layer_rows(self, layers, depth=0):
        """(layer, depth) for every layer of the tree, depth-first: containers before their children."""
        for layer in layers:
            yield layer, depth
            yield from self._layer_rows(layer.sublayers(), depth + 1)

    def summary_text(self) -> str:
        """The table ``summary()`` prints (see there)."""
        if not self.built:
            if self.input_shape is None:
                raise ValueError(f"{self.name}: build the model (give input_shape) before summary()")
            self.build()
        rows = [("Layer (type)", "Output shape", "Params")]
        for layer, depth in self._layer_rows(self.layers):
            shape = layer.output_shape(layer.input_shape)
            count = f"{layer.count_params():,}"
            frozen = "" if layer.trainable else "  [frozen]"
            rows.append(("  " * depth + f"{layer.name} ({type(layer).__name__}){frozen}",
                         str((None, *shape)), f"({count})" if layer.sublayers() else count))
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        rule = "-" * (sum(widths) + 6)
        lines = [f'Model "{self.name}"  input {(None, *self.input_shape)}  dtype {self.dtype}', rule]
        for i, row in enumerate(rows):
            lines.append(f"{row[0]:<{widths[0]}}   {row[1]:<{widths[1]}}   {row[2]:>{widths[2]}}")
            if i == 0:
                lines.append(rule)
        tree = list(iter_layers(self.layers))  # a container's own params are empty: each counted once
        total = self.count_params()
        trainable = sum(value.size for layer in tree if layer.trainable for value in layer.params.values())
        buffers = sum(value.size for layer in tree for value in layer.buffers.values())
        lines += [rule, f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {total - trainable:,}"]
        if buffers:
            lines.append(f"Buffers (saved, never trained, e.g. running statistics): {buffers:,}")
        if any(layer.sublayers() for layer in self.layers):
            lines.append("(n): a container's params, the sum of the rows indented under it")
        return "\n".join(lines)

    def summary(self) -> None:
        """Print one row per layer: name, output shape, parameter count; then the totals.

        Layers inside a container (Residual, Parallel, ...) are indented two spaces per level
        under it; the container's own row shows, in parentheses, the params of its rows.
        "Non-trainable params" are the params of frozen layers (``trainable = False``); buffers
        (e.g. BatchNorm's running mean and variance) are not params: they get their own line.
        """
        print(self.summary_text())

    def get_layer(self, name: str | None = None, *, index: int | None = None) -> Layer:
        """The layer called ``name`` at any depth (inside containers too), or ``self.layers[index]``."""
        if (name is None) == (index is None):
            raise TypeError(f"{self.name}: get_layer takes a layer name or index=..., exactly one of them")
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)) \
                    or not -len(self.layers) <= index < len(self.layers):
                raise IndexError(f"{self.name}: index must be an int in [{-len(self.layers)}, "
                                 f"{len(self.layers)}) (top-level layers), got {index!r}")
            return self.layers[index]
        for layer in iter_layers(self.layers):
            if layer.name == name:
                return layer
        names = ", ".join(layer.name for layer in iter_layers(self.layers))
        raise KeyError(f"{self.name}: no layer named {name!r}; the layers are: {names}")

    def freeze(self, up_to: str | int | None = None) -> "Sequential":
        """Make layers untrainable: all of them, or the top-level layers BEFORE ``up_to``.

        ``up_to`` is a top-level layer's name or index and is excluded, like ``layers[:up_to]``:
        ``model.freeze(up_to="dense")`` freezes the feature extractor and keeps "dense" and
        everything after it trainable. Layers after ``up_to`` are left as they are. Freezing a
        container freezes every layer inside it. Frozen layers keep their params and optimizer
        state bitwise unchanged during ``fit``, and still pass the gradient to their input.
        """
        if up_to is None:
            stop = len(self.layers)
        elif isinstance(up_to, str):
            top = [layer.name for layer in self.layers]
            if up_to not in top:
                nested = up_to in {layer.name for layer in iter_layers(self.layers)}
                hint = (" (it is inside a container; freeze it with model.get_layer(name).trainable = False)"
                        if nested else "")
                raise KeyError(f"{self.name}: freeze(up_to=...) takes a top-level layer; no top-level "
                               f"layer named {up_to!r}{hint}; the top-level layers are: {', '.join(top)}")
            stop = top.index(up_to)
        elif isinstance(up_to, (int, np.integer)) and not isinstance(up_to, bool) \
                and 0 <= up_to <= len(self.layers):
            stop = int(up_to)
        else:
            raise ValueError(f"{self.name}: up_to must be a top-level layer name or an index in "
                             f"[0, {len(self.layers)}], got {up_to!r}")
        for layer in self.layers[:stop]:
            layer.trainable = False  # a container passes it on to every layer inside it
        return self

    def unfreeze(self) -> "Sequential":
        """Make every layer, at every depth, trainable again."""
        for layer in iter_layers(self.layers):
            layer.trainable = True
        return self

    def astype(self, dtype) -> "Sequential":
        """Cast every layer (params, grads, optimizer moments) to ``dtype`` in place."""
        self.dtype = np.dtype(dtype)
        for layer in self.layers:
            layer.astype(self.dtype)
        return self

    # ------------------------------------------------------------------ weights
    def get_weights(self) -> dict[str, np.ndarray]:
        """Every parameter and buffer as ``{"layer_name/param_name": array}``."""
        weights = {}
        for layer in iter_layers(self.layers):  # layers inside containers too
            for store in (layer.params, layer.buffers):
                for key, value in store.items():
                    weights[f"{layer.name}/{key}"] = value
        return weights

    def set_weights(self, weights: dict) -> None:
        """Copy arrays in by name; checks every name, shape and dtype before changing anything."""
        if not self.built:
            self.build()
        own = self.get_weights()
        missing = sorted(set(own) - set(weights))
        unexpected = sorted(set(weights) - set(own))
        if missing or unexpected:
            raise ValueError(f"{self.name}: weights do not match the model: missing {missing}, "
                             f"unexpected {unexpected}")
        converted = {}
        for key, value in weights.items():
            value = np.asarray(value)
            layer_name, param = key.rsplit("/", 1)
            if value.shape != own[key].shape:
                raise ValueError(f"{layer_name}: parameter {param!r} has shape {own[key].shape} "
                                 f"in the model but {value.shape} in the weights")
            if value.dtype.kind not in "biuf":
                raise TypeError(f"{layer_name}: parameter {param!r} must hold real numbers, got dtype "
                                f"{value.dtype} in the weights")
            converted[key] = value.astype(own[key].dtype)  # converted now: the copy below cannot fail
        for key, value in converted.items():
            own[key][...] = value  # in place: the arrays the layers and optimizer hold

    def save(self, path) -> None:
        """Save architecture, weights, optimizer state and RNG state (see scratchnet.load)."""
        from .serialization import save_model
        save_model(self, path)

    def save_weights(self, path) -> None:
        """Save only the weights, as a pickle-free .npz file."""
        from .serialization import save_weights
        save_weights(self, path)

    def load_weights(self, path) -> None:
        from .serialization import load_weights
        load_weights(self, path)

    def __getstate__(self):
        # The shuffling generator is saved as its plain state dict (ints and strings), so the
        # restricted loader needs no NumPy random internals and resume stays exact.
        state = self.__dict__.copy()
        state["rng"] = self.rng.bit_generator.state
        return state

    def __setstate__(self, state):
        rng_state = state.pop("rng")
        self.__dict__.update(state)
        self.rng = np.random.default_rng()
        if rng_state.get("bit_generator") != type(self.rng.bit_generator).__name__:
            raise ValueError(f"{self.name}: unknown random generator {rng_state.get('bit_generator')!r}")
        self.rng.bit_generator.state = rng_state
        for layer in self.layers:
            layer.set_rng(self.rng)  # layers never pickle a generator: they share the model's

    def __repr__(self):
        return f"Sequential({len(self.layers)} layers, input_shape={self.input_shape}, dtype={self.dtype})"
