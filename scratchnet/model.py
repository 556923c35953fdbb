"""Sequential: a stack of layers trained with a fused loss and a per-layer optimizer.

One training step on a batch (x, y)::

    logits = forward(x)                  # every layer in order, caching for backward
    loss   = loss.forward(logits, y)
    d      = loss.backward()             # dL/dlogits
    d      = layer.backward(d)           # every layer in reverse: fills layer.grads
    optimizer.step(layers)               # the only place parameters change
"""

from __future__ import annotations

import numpy as np

from . import input_checks as checks
from . import inspect as _inspect
from . import layer_tree, one_thread, option_checks
from . import weights as weights_module
from .callbacks import forget_best_weights
from .evaluation import evaluate as _evaluate
from .layers.base import Layer, iter_layers, run_backward_params
from .losses import get_loss
from .model_input import prepare_input
from .optimizers import check_params, get_optimizer
from .training import History, NonFiniteLossError, drop_caches
from .training import fit as _fit
from .training import train_step as _train_step

__all__ = ["Sequential", "History", "NonFiniteLossError"]


class Sequential:
    """A linear stack of layers.

    Parameters
    ----------
    layers : list of Layer, optional
    input_shape : tuple, optional
        Shape of one sample, e.g. ``(28, 28, 1)``. Without it the model builds from the first
        batch it sees.
    seed : int >= 0 or None
        Seeds weight initialisation, shuffling, augmentation and any layer randomness (one
        generator, ``model.rng``). Same seed and same data give bitwise-identical weights and
        history on the same machine, NumPy/BLAS build and BLAS thread count (products round
        differently on 1 and 2 BLAS threads; ``blas_threads.set_blas_threads(1)`` or the CLI's
        ``--threads 1`` give results independent of the core count). None draws fresh entropy
        and stores it as ``model.seed`` (an int): ``seed=model.seed`` repeats a lucky run.
    dtype : "float32" (default, fast) or "float64" (exact). float16 is refused: Adam's
        eps = 1e-8 rounds to 0 in it and the updates turn into NaN.
    check_numerics : bool
        If True, every input batch is checked for NaN and inf.

    Calling the model, ``model(x)``, is ``model.predict(x)``.
    """

    # Class-level defaults, so models saved before these attributes existed still load.
    input_range = None       # (min, max) of the training inputs, recorded by fit
    callback_state = None    # state callbacks keep on the model so that it is saved (callbacks.py)
    epoch_in_progress = None  # while fit runs an epoch: {"epoch", "batches", "iterations_at_start"}

    def __init__(self, layers=None, input_shape=None, seed=None, dtype="float32",
                 check_numerics=False, name="sequential"):
        self.name = name
        self.layers: list[Layer] = []
        self.input_shape = checks.check_input_shape(input_shape, name)
        self.seed = option_checks.check_seed(seed, name)  # an int: None's entropy is kept
        self.dtype = option_checks.check_model_dtype(dtype, name)
        self.check_numerics = bool(check_numerics)
        self.rng = np.random.default_rng(self.seed)
        self.optimizer = None
        self.loss = None
        self.built = False
        self.epochs_trained = 0
        for layer in checks.check_layer_list(layers, name):
            self.add(layer)

    @property
    def rng(self) -> np.random.Generator:
        """The generator of shuffling, augmentation and layer randomness; ``model.rng = g`` hands
        ``g`` to every layer too (``layer_tree.share_generator``): the file saves what runs draw from."""
        return self._rng

    @rng.setter
    def rng(self, generator: np.random.Generator) -> None:
        layer_tree.share_generator(self, generator)

    # ------------------------------------------------------------------ building
    def add(self, layer: Layer) -> None:
        checks.check_is_layer(layer, Layer, self.name)
        checks.refuse_reused_layer(self.layers, layer, self.name)
        layer_tree.append_layer(self, layer)  # builds it (a built model), gives it a unique name
        forget_best_weights(self)  # kept for the layers before; a new head may share the old one's name

    def build(self, input_shape=None, reset: bool = False) -> "Sequential":
        """Build every layer in order from the shape of one sample.

        On a built model, ``build()`` (or the same shape) does nothing; a different shape is an
        error, because building draws new weights. ``reset=True`` rebuilds on purpose: new
        weights, optimizer state, ``epochs_trained = 0``. Layers built already (from another
        model) keep their weights: ``layer_tree.build_in_model``; but ``reset=True`` redraws
        them too, in the other model as well.
        """
        one_thread.refuse_other_threads(self, "build")
        input_shape = checks.check_input_shape(input_shape, self.name)
        if self.built and not reset:
            if input_shape is None or input_shape == self.input_shape:
                return self
            raise ValueError(
                f"{self.name}: the model is already built for input shape {self.input_shape}, got "
                f"{input_shape}; building again would replace every trained weight. Call "
                f"model.build({input_shape}, reset=True) to start over with new weights")
        if input_shape is not None:
            self.input_shape = input_shape
        if reset:
            self.epochs_trained, self.input_range, self.callback_state = 0, None, None
            if self.optimizer is not None:
                self.optimizer.iterations = 0
        if self.input_shape is None:
            raise ValueError(f"{self.name}: no input_shape; pass Sequential(input_shape=...) or build(shape)")
        if not self.layers:
            raise ValueError(f"{self.name}: the model has no layers")
        with checks.input_shape_hints(self.input_shape):  # a batch axis, channels first, ...
            layer_tree.build_all(self, reset)
        self.built = True
        return self

    @property
    def output_shape(self) -> tuple[int, ...]:
        if self.input_shape is None:
            raise ValueError(f"{self.name}: build the model (give input_shape) before output_shape")
        shape = self.input_shape
        for layer in self.layers:
            shape = layer.output_shape(shape)
        return shape

    def compile(self, optimizer="adam", loss="cross_entropy") -> "Sequential":
        """Choose the optimizer and the loss. A new optimizer object starts from fresh per-layer
        state; the same one again keeps it; one compiled into another live model is refused
        (``Optimizer.attach``)."""
        one_thread.refuse_other_threads(self, "compile")
        option_checks.refuse_class(optimizer, "compile: optimizer", self.name)
        option_checks.refuse_class(loss, "compile: loss", self.name)
        new_optimizer, new_loss = get_optimizer(optimizer), get_loss(loss)
        new_optimizer.attach(self)
        self.optimizer, self.loss = new_optimizer, new_loss
        checks.warn_softmax_before_cross_entropy(self.layers, self.loss, self.name)
        return self

    # ------------------------------------------------------------------ checks
    # Check a batch (kind, shape, values), build an unbuilt model from it, and return it in the
    # model's dtype: model_input.prepare_input(model, x, ...) used as this method.
    _prepare_input = prepare_input

    def _check_targets(self, x, y) -> np.ndarray:
        return checks.check_targets(x, y, self.name)

    def _require_compiled(self):
        if self.loss is None or self.optimizer is None:
            raise RuntimeError(f"{self.name}: call compile(optimizer, loss) before training")

    # ------------------------------------------------------------------ passes
    def forward(self, x, training=False) -> np.ndarray:
        one_thread.refuse_other_threads(self, "forward")
        return self._run_layers(self._prepare_input(x, check_range=False), training)

    def _run_layers(self, out, training=False, keep_caches=True) -> np.ndarray:
        """Every layer's forward in order, on an input already checked by _prepare_input.

        ``keep_caches=False`` (evaluate: no backward follows) drops each layer's cache as soon as
        it has run: a resnet8 otherwise keeps 244 MiB of caches after evaluating batches of 256
        (fit's validation, between epochs). predict and evaluate run in ``layer_tree.caches_kept``.
        """
        one_thread.refuse_other_threads(self, "running its layers")  # activations, gradients, ...
        check_params(iter_layers(self.layers))  # a parameter replaced by assignment (wrong dtype, shape)
        for layer in self.layers:
            out = layer.forward(out, training=training)
            if not keep_caches:
                drop_caches(layer)
        return out

    def backward(self, dout, input_gradient: bool = True, release_caches: bool = False) -> np.ndarray | None:
        """Every layer's backward in reverse order; returns dL/d(input).

        With ``input_gradient=False`` (what training uses) the first layer only fills its
        gradients (``Layer.backward_params``), skipping dL/d(input), and None is returned.
        With ``release_caches=True`` (what training uses) each top-level layer's forward cache,
        and those of the layers inside it, is dropped as soon as its backward has run, as
        PyTorch frees a saved tensor once its backward has used it: the backward's peak memory
        falls and nothing is held between steps (a second backward then needs a new forward).
        """
        one_thread.refuse_other_threads(self, "backward")
        last = 0 if input_gradient else 1
        for layer in reversed(self.layers[last:]):
            dx = layer.backward(dout)
            checks.require_gradient(dx, layer, self.name, dout)  # your own layer: None, a wrong shape
            dout = dx
            if release_caches:
                drop_caches(layer)
        if input_gradient:
            return dout
        run_backward_params(self.layers[0], dout)  # your own subclass's backward if it has one
        if release_caches:
            drop_caches(self.layers[0])
        return None

    def train_step(self, x, y, sample_weight=None) -> tuple[float, np.ndarray]:
        """One step of forward, loss, backward and update. Returns (loss, logits).

        A non-finite loss raises ``NonFiniteLossError`` BEFORE the update (backward never
        changes a parameter), so the weights stay those from before this step. Every forward
        cache is released during the backward (see ``backward``), and the first call asks
        glibc's malloc to keep freed memory for the next step (``keep_freed_memory`` in
        kernels/workspace.py: no page faults). See training.train_step.
        """
        with one_thread.training_thread(self, "train_step"):  # no other thread uses it meanwhile
            return _train_step(self, x, y, sample_weight)

    # ------------------------------------------------------------------ training
    def fit(self, x, y, epochs=1, batch_size=32, validation_data=None, shuffle=True, verbose=1,
            history=None, validation_split=0.0, callbacks=(), initial_epoch=None,
            sample_weight=None, class_weight=None, augment=None):
        """Train for ``epochs`` passes over (x, y) in shuffled mini-batches; returns a History.

        See :func:`scratchnet.training.fit` for every option (validation_split, callbacks,
        initial_epoch, sample_weight, class_weight, augment).
        """
        with one_thread.training_thread(self, "fit"):  # no other thread uses it meanwhile
            return _fit(self, x, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data,
                        shuffle=shuffle, verbose=verbose, history=history, validation_split=validation_split,
                        callbacks=callbacks, initial_epoch=initial_epoch, sample_weight=sample_weight,
                        class_weight=class_weight, augment=augment)

    def evaluate(self, x, y, batch_size=256, verbose=0, sample_weight=None) -> dict:
        """Mean loss (and accuracy for classification losses) over (x, y), in inference mode;
        ``verbose=1`` prints it on one line. See :func:`scratchnet.evaluation.evaluate`."""
        return _evaluate(self, x, y, batch_size=batch_size, verbose=verbose, sample_weight=sample_weight)

    def predict(self, x, batch_size=256) -> np.ndarray:
        """Output of the last layer (logits if the model ends without softmax). The forward
        caches stay as predict found them (``layer_tree.caches_kept``): call forward to backward."""
        one_thread.refuse_other_threads(self, "predict")
        batch_size = option_checks.check_count(batch_size, "batch_size", self.name, 1)
        x = self._prepare_input(x)
        with layer_tree.caches_kept(self.layers):
            outputs = [self._run_layers(x[start:start + batch_size], keep_caches=False)
                       for start in range(0, len(x), batch_size)]
        if not outputs:
            return np.zeros((0, *self.output_shape), dtype=self.dtype)
        return np.concatenate(outputs)

    __call__ = predict

    def _class_scores(self, x, batch_size, who: str) -> np.ndarray:
        """predict's logits (N, classes); other output shapes, and a loss that is not a classifier's
        (mse: ``has_accuracy`` False), raise, naming ``who`` asked."""
        if self.loss is not None and not self.loss.has_accuracy:
            raise ValueError(f"{self.name}: {who} is for classifiers (the loss is {self.loss.name}); "
                             "use predict(x)")
        logits = self.predict(x, batch_size)
        if logits.ndim != 2:
            raise ValueError(f"{self.name}: {who} needs outputs of shape (N, classes), got {logits.shape}")
        return logits

    def predict_proba(self, x, batch_size=256) -> np.ndarray:
        """Probabilities (N, K): with binary_cross_entropy sigmoid(z) of each output on its own (one
        yes/no per label); otherwise the softmax of each row (``metrics.probabilities``). A
        regression loss (mse) raises: use predict(x)."""
        from .metrics import probabilities
        return probabilities(self._class_scores(x, batch_size, "predict_proba"), self.loss)

    def predict_classes(self, x, batch_size=256) -> np.ndarray:
        """cross_entropy: the index of the largest logit, (N,) ints. binary_cross_entropy: 1 where
        a logit is > 0 (sigmoid > 0.5) else 0: (N,) for one output, (N, K) 0/1 ints for K labels
        (``metrics.predictions``). A regression loss (mse) raises: use predict(x)."""
        from .metrics import predictions
        return predictions(self._class_scores(x, batch_size, "predict_classes"), self.loss)

    # ------------------------------------------------------------------ inspection
    def activations(self, x, layers=None, **options) -> dict:
        """Chosen layers' outputs (inference mode): ``{name: array}``; see scratchnet.inspect."""
        return _inspect.activations(self, x, layers, **options)

    def input_gradient(self, x, target, labels=None, **options) -> np.ndarray:
        """d(class score, or loss with ``labels``)/d(input), shape of x; see scratchnet.inspect."""
        return _inspect.input_gradient(self, x, target, labels, **options)

    def gradient_at(self, x, layer, target, labels=None, **options) -> np.ndarray:
        """d(score)/d(output of ``layer``); see scratchnet.inspect."""
        return _inspect.gradient_at(self, x, layer, target, labels, **options)

    def count_params(self) -> int:
        layer_tree.build_for(self, "count_params()")
        return sum(layer.count_params() for layer in self.layers)

    def summary_text(self) -> str:
        """The table ``summary()`` prints (scratchnet/summary.py)."""
        from .summary import summary_text
        return summary_text(self)

    def summary(self) -> None:
        """Print one row per layer: name, output shape, parameter count; then the totals.

        Layers inside a container (Residual, Parallel, ...) are indented two spaces per level
        under it; the container's own row shows, in parentheses, the params of its rows. Image
        models get each top-level layer's receptive field (RF) and multiply-accumulates (MACs).
        "Non-trainable params" are the params of frozen layers (``trainable = False``); buffers
        (e.g. BatchNorm's running mean and variance) are not params: they get their own line.
        """
        print(self.summary_text())

    def get_layer(self, name: str | None = None, *, index: int | None = None) -> Layer:
        """The layer called ``name`` at any depth (inside containers too), or ``self.layers[index]``."""
        return layer_tree.get_layer(self, name, index=index)

    def freeze(self, up_to: str | int | None = None) -> "Sequential":
        """Make layers untrainable: all of them, or the top-level layers BEFORE ``up_to``
        (excluded, like ``layers[:up_to]``); see scratchnet/layer_tree.py."""
        return layer_tree.freeze(self, up_to)

    def unfreeze(self) -> "Sequential":
        """Make every layer, at every depth, trainable again."""
        return layer_tree.unfreeze(self)

    def astype(self, dtype) -> "Sequential":
        """Cast every layer (params, grads, optimizer moments) to ``dtype`` in place."""
        self.dtype = option_checks.check_model_dtype(dtype, self.name)
        for layer in self.layers:
            layer.astype(self.dtype)
        return self

    # ------------------------------------------------------------------ weights
    def get_weights(self) -> dict[str, np.ndarray]:
        """A COPY of every parameter and buffer as ``{"layer_name/param_name": array}``.

        Copies, so ``best = model.get_weights()`` keeps its values while training goes on.
        """
        layer_tree.build_for(self, "get_weights()")
        return weights_module.get_weights(self)

    def set_weights(self, weights) -> None:
        """Copy arrays in, by name (a dict as get_weights returns) or in order (a list).

        Every name and shape is checked before anything changes; values must be real numbers and
        are converted to the model's dtype (float64 weights load into a float32 model).
        """
        one_thread.refuse_other_threads(self, "set_weights")
        weights_module.set_weights(self, weights)

    def save(self, path, trusted: bool = False) -> None:
        """Save architecture, weights, optimizer state and RNG state (see scratchnet.load).

        Refused before writing if the safe ``scratchnet.load`` would refuse the file (a function
        or a class of no allowed kind kept in an attribute); ``trusted=True`` writes it anyway,
        for a file only ever read back with ``scratchnet.load(path, trusted=True)``."""
        from .serialization import save_model
        one_thread.refuse_other_threads(self, "save")
        save_model(self, path, trusted=trusted)

    def save_weights(self, path, naming: str = "scratchnet") -> None:
        """Save only the weights, as a pickle-free .npz file; ``naming="torch"`` writes PyTorch
        state_dict keys and layouts (``load_weights`` reads either)."""
        from .weights_file import save_weights
        one_thread.refuse_other_threads(self, "save_weights")
        save_weights(self, path, naming=naming)

    def load_weights(self, path) -> None:
        from .weights_file import load_weights
        one_thread.refuse_other_threads(self, "load_weights")
        load_weights(self, path)

    def __getstate__(self):
        # The shuffling generator is saved as its plain state dict (ints and strings), so the
        # restricted loader needs no NumPy random internals and resume stays exact.
        state = self.__dict__.copy()
        state["rng"] = state.pop("_rng").bit_generator.state  # the key files have always used
        state.pop("stop_training", None)  # fit's flag for the current call (a checkpoint mid-fit)
        state.pop(one_thread.MARK, None)  # the thread training it now (one_thread.py)
        return state

    def __setstate__(self, state):
        rng_state = state.pop("rng")
        self.__dict__.update(state)
        generator = np.random.default_rng()
        if rng_state.get("bit_generator") != type(generator.bit_generator).__name__:
            raise ValueError(f"{self.name}: unknown random generator {rng_state.get('bit_generator')!r}")
        generator.bit_generator.state = rng_state
        self.rng = generator  # and to every layer: layers never pickle a generator, they share the model's
        if hasattr(self.optimizer, "owner") and self.optimizer.owner() is None:
            self.optimizer.attach(self)  # a loaded (or deep-copied) model's optimizer is its own
        # (copy.copy shares the original's optimizer: it stays the original's, and compiling the
        # copy with it is refused as any shared optimizer is; unpickling never raises for it)

    def __repr__(self):
        return f"Sequential({len(self.layers)} layers, input_shape={self.input_shape}, dtype={self.dtype})"
