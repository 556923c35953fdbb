"""The training loop behind ``Sequential.fit``: epochs of shuffled mini-batches, validation,
callbacks, per-sample weights and augmentation.

One epoch::

    order = rng.permutation(N)                       # the model's generator (saved with it)
    for each batch b of order:
        x_b, y_b = augment(x[b], y[b], rng)          # optional, same generator
        loss = mean_n w_n * L(model(x_b)_n, y_b_n)   # w = sample_weight * class_weight[y]
        backward, optimizer step                     # refused if loss is NaN/inf (weights kept)
    logs = {loss, accuracy, val_loss, val_accuracy}
    schedule.on_epoch_end(epoch, logs)               # if the LR schedule has it (reduce-on-plateau)
    callback.on_epoch_end(epoch, logs)               # early stopping, checkpoints, loggers

Epoch numbers count from 0 like Keras' ``initial_epoch``; ``History.epoch`` and
``model.epochs_trained`` count finished epochs (epoch 0 finished -> 1).

Resuming bitwise: everything that decides the next epoch lives on the model and is saved with
it: weights, optimizer state, the generator that shuffles and augments, ``epochs_trained`` and
``model.callback_state`` (EarlyStopping's best value and patience count, ModelCheckpoint's best
value). Pass the same callbacks, augment and options again after ``scratchnet.load``.
That holds between epochs. A model saved in the middle of one (from ``on_batch_end``, or by
``scratchnet train`` after Ctrl-C) records it in ``model.epoch_in_progress``; fitting it again
warns that the interrupted epoch starts again from its first batch (the generator has moved
on), so the result differs from a run never interrupted. A Ctrl-C during the optimizer step
waits for the step to finish (``interruptions.finish_step_before_ctrl_c``): no model is left with half its
layers updated.

This module never imports model.py (model -> training, one way).
"""

from __future__ import annotations

import math
import time

import numpy as np

from .callbacks import check_watched_values
from .input_checks import check_callbacks, check_not_empty, non_finite_already_said, warn_non_finite
from .interruptions import finish_step_before_ctrl_c, warn_interrupted_epoch
from .kernels.workspace import keep_freed_memory
from .layers.base import iter_layers
from .loss_weights import per_sample_weights
from .option_checks import check_count, check_real, refuse_class
from .progress import ProgressBar
from .training_watch import diagnose_non_finite, rows_of_x_with_non_finite, warn_unfilled_gradients


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or inf; the message says where and which layer went first."""


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


def drop_caches(layer) -> None:
    """Forget the forward caches of ``layer`` and of every layer inside it (after its backward)."""
    layer.cache = {}
    for inner in layer.sublayers():  # recursion, not iter_layers: no generator per layer and step
        drop_caches(inner)


def train_step(model, x, y, sample_weight=None) -> tuple[float, np.ndarray]:
    """``model.train_step``: forward, loss, backward (releasing caches), optimizer step.

    The forward in training mode updates running statistics (BatchNorm's buffers); a
    non-finite loss puts them back and raises ``NonFiniteLossError`` before the update.
    """
    model._require_compiled()
    keep_freed_memory()  # the caches released below are allocated again by the next step
    prepared = (isinstance(x, np.ndarray) and model.built and x.dtype == model.dtype
                and x.shape[1:] == model.input_shape and not model.check_numerics)
    x = x if prepared else model._prepare_input(x)  # fit checks its whole array once
    y = model._check_targets(x, y)  # one per sample (cheap: no copy of an array)
    saved = [(layer.buffers, {name: value.copy() for name, value in layer.buffers.items()})
             for layer in iter_layers(model.layers) if layer.buffers]  # e.g. running means, a few KB
    logits = model._run_layers(x, training=True)
    if sample_weight is None:
        loss = model.loss.forward(logits, y)
    else:
        loss = model.loss.forward(logits, y, weights=sample_weight)
    if not np.isfinite(loss):
        for buffers, copies in saved:
            for name, value in copies.items():
                np.copyto(buffers[name], value)  # in place: optimizer and user may hold these arrays
        raise NonFiniteLossError(f"{model.name}: the loss is {loss}; {diagnose_non_finite(model, x)}; "
                                 f"the weights are those from before this step")
    dlogits = model.loss.backward()
    model.loss.cache = {}
    # dL/dx of the data is never used; each layer's cache goes as soon as its backward has run
    model.backward(dlogits, input_gradient=False, release_caches=True)
    if model.optimizer.iterations == 1:  # the second step only (see warn_unfilled_gradients)
        warn_unfilled_gradients(model.layers, model.name)
    with finish_step_before_ctrl_c():
        model.optimizer.step(model.layers)
    return loss, logits


def _validation(model, x, y, validation_data, validation_split):
    """Split off the LAST ``validation_split`` of (x, y) (before shuffling, as Keras does)."""
    if validation_data is not None:
        if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
            got = (f"a {type(validation_data).__name__} of {len(validation_data)} item(s)"
                   if isinstance(validation_data, (tuple, list)) else type(validation_data).__name__)
            raise ValueError(f"{model.name}: validation_data must be a pair (x_val, y_val), got {got}")
        if validation_split:
            raise ValueError(f"{model.name}: give validation_data or validation_split, not both")
        return x, y, validation_data
    check_real(validation_split, "validation_split", model.name, least=0, below=1)
    n_val = int(round(len(x) * validation_split))
    if not n_val:
        return x, y, None
    if n_val == len(x):
        raise ValueError(f"{model.name}: validation_split={validation_split} of {len(x)} samples leaves "
                         f"no training samples")
    return x[:-n_val], y[:-n_val], (x[-n_val:], y[-n_val:])


def check_targets_for_loss(model, y, chunk: int = 1024) -> None:
    """Run the loss on zero logits, ``chunk`` samples at a time: labels out of range, of the wrong
    shape or kind fail before training starts, not in a late batch."""
    per_sample = int(np.prod(model.output_shape))  # large outputs (an image per sample): fewer at once
    chunk = max(1, min(chunk, (1 << 22) // per_sample))
    logits = np.zeros((min(chunk, len(y)), *model.output_shape), dtype=model.dtype)
    try:
        for start in range(0, len(y), chunk):
            targets = y[start:start + chunk]
            model.loss.forward(logits[:len(targets)], targets)
    finally:
        model.loss.cache = {}


def _warn_non_finite_in_fit(model, x, validation_data, from_split: bool) -> None:
    """One warning for NaN/inf in the training rows (fit stops at the first batch holding one)
    and one for the validation rows (val_loss becomes NaN), each with indices the user can find:
    a validation split's rows are the last rows of fit's x."""
    warn_non_finite(x, model.name, "fit will stop with NonFiniteLossError at the first batch holding one")
    if validation_data is not None:
        what = "the validation split (the last rows of x)" if from_split else "validation_data"
        warn_non_finite(np.asarray(validation_data[0]), model.name, "val_loss will be NaN", what,
                        first_row=len(x) if from_split else 0)


def _checked_validation(model, x_val, y_val, where: str = "validation_data"):
    """validation_data checked before the first epoch (evaluate would only fail after it); an
    error says it came from the validation data (``where``: validation_data, or the rows a
    validation_split took off the end of x and y)."""
    try:
        x_val = model._prepare_input(x_val, check_range=False)
        y_val = model._check_targets(x_val, y_val)
        check_targets_for_loss(model, y_val)
    except (ValueError, TypeError) as error:
        if type(error) not in (ValueError, TypeError):
            raise
        raise type(error)(f"{error} (in {where})") from None
    return x_val, y_val


def _refuse_batches_of_one_for_batch_norm(model, n_train: int, batch_size: int) -> None:
    """A batch of ONE sample gives a BatchNorm on (N, D) inputs one value per channel: no batch
    variance, so the layer refuses it in training mode (as PyTorch does). Said before training
    starts, naming the remainder that makes the batch, not at the end of every epoch's batches."""
    from .layers.normalization import BatchNorm

    last_batch = n_train % batch_size or batch_size  # samples in the last batch (n_train >= 1)
    if last_batch != 1:
        return
    for layer in iter_layers(model.layers):
        if isinstance(layer, BatchNorm) and layer.trainable and layer.input_shape is not None \
                and math.prod(layer.input_shape[:-1]) == 1:
            break
    else:
        return
    why = ("batch_size=1 makes every batch ONE sample" if batch_size == 1 else
           f"{n_train} training samples in batches of {batch_size} leave a last batch of ONE sample "
           f"({n_train} % {batch_size} = 1)")
    other = next((size for size in range(batch_size + 1, n_train + 1) if n_train % size != 1), None)
    drop = " or drop one training sample" if batch_size > 1 else ""
    fix = f"pass another batch_size (e.g. {other}){drop}" if other else "give it at least 2 training samples"
    raise ValueError(f"{model.name}: {why}, and BatchNorm layer {layer.name!r} on inputs of shape "
                     f"{tuple(layer.input_shape)} cannot compute a batch variance from one value per "
                     f"channel; {fix}")


def _call(callbacks, hook, *args):
    for callback in callbacks:
        getattr(callback, hook)(*args)


def fit(model, x, y, epochs=1, batch_size=32, validation_data=None, shuffle=True, verbose=1,
        history=None, validation_split=0.0, callbacks=(), initial_epoch=None,
        sample_weight=None, class_weight=None, augment=None) -> History:
    """Train ``model`` on (x, y); return a History of per-epoch metrics.

    epochs : without ``initial_epoch``, the number of epochs to run. With it (Keras style),
        the index to stop at: epochs ``initial_epoch, ..., epochs - 1`` run and
        ``model.epochs_trained`` becomes ``epochs``. ``initial_epoch`` must equal
        ``model.epochs_trained`` (0 for a fresh model, the saved count after ``scratchnet.load``).
    validation_data : (x_val, y_val), or ``validation_split`` (a fraction: the LAST samples of x).
    callbacks : objects with the hooks of ``scratchnet.callbacks.Callback``; setting
        ``model.stop_training = True`` ends training after the current epoch.
    sample_weight : (N,) loss weights; class_weight : {class: weight}. Both multiply.
    augment : ``augment(x_batch, y_batch, rng) -> (x_batch, y_batch)`` applied to each training
        batch with the model's generator (y may come back as soft-label rows (N, classes)).
    history : a History to append to as each epoch finishes (kept if Ctrl-C interrupts).
    One thread at a time: ``Sequential.fit`` keeps other threads off the model (one_thread.py).
    """
    model._require_compiled()
    batch_size = check_count(batch_size, "batch_size", model.name, 1)
    epochs = check_count(epochs, "epochs", model.name, 0)
    if initial_epoch is None:
        first, last = model.epochs_trained, model.epochs_trained + epochs
    else:
        first = check_count(initial_epoch, "initial_epoch", model.name, 0)
        if first != model.epochs_trained:
            raise ValueError(f"{model.name}: initial_epoch={first} but the model has trained "
                             f"{model.epochs_trained} epoch(s); pass initial_epoch={model.epochs_trained} "
                             f"to continue, or leave it out")
        if epochs < first:
            raise ValueError(f"{model.name}: with initial_epoch={first}, epochs is the epoch to stop at "
                             f"and must be >= {first}, got {epochs}")
        last = epochs
    x = model._prepare_input(x, record_range=True)
    check_not_empty(x, model.name, "fit: x")
    y = model._check_targets(x, y)
    weights = per_sample_weights(model, y, sample_weight, class_weight)
    x, y, validation_data = _validation(model, x, y, validation_data, validation_split)
    _refuse_batches_of_one_for_batch_norm(model, len(x), batch_size)
    if not model.check_numerics:
        _warn_non_finite_in_fit(model, x, validation_data, from_split=validation_split > 0)
    if weights is not None:
        weights = weights[:len(x)]
    if augment is None:  # augment may change y (Mixup: int labels -> rows) before the loss sees it
        check_targets_for_loss(model, y)  # the training rows first: a split's error is in the user's y
    if validation_data is not None:
        check_not_empty(np.asarray(validation_data[0]), model.name, "validation_data: x_val")
        n_val = len(validation_data[0])
        where = (f"the validation split, the last {n_val} rows of x and y" if validation_split
                 else "validation_data")
        validation_data = _checked_validation(model, *validation_data, where)
    refuse_class(augment, "augment", model.name)
    if isinstance(shuffle, str) or shuffle not in (True, False):  # "no" would count as True; 0/1 pass
        raise TypeError(f"{model.name}: shuffle must be True or False, got {shuffle!r}")
    if augment is not None and not callable(augment):
        raise TypeError(f"{model.name}: augment must be callable as augment(x, y, rng), got {augment!r}")
    callbacks = check_callbacks(callbacks, model.name)
    check_watched_values(model, callbacks, validating=validation_data is not None)
    for callback in callbacks:
        if hasattr(callback, "set_model"):
            callback.set_model(model)
    history = history if history is not None else History()
    if first < last:
        warn_interrupted_epoch(model)
    outer_stop_training = model.__dict__.get("stop_training")  # set: this fit runs inside another's
    model.stop_training = False                                 # callback (on this same model)
    n_steps = math.ceil(len(x) / batch_size)
    logs = {}
    try:
        _call(callbacks, "on_train_begin", {})
        for epoch in range(first, last):
            title = (f"Epoch {epoch + 1}/{last}" if initial_epoch is not None
                     else f"Epoch {epoch - first + 1}/{epochs}")  # a plain fit(epochs=3) counts 1, 2, 3
            logs = _run_epoch(model, x, y, weights, epoch, title, n_steps, batch_size, shuffle, verbose,
                              augment, callbacks, validation_data, history)
            if model.stop_training:
                break
        _call(callbacks, "on_train_end", dict(logs))
    finally:
        model.__dict__.pop("stop_training", None)  # a flag for this call only; an outer fit's flag
        if outer_stop_training is not None:         # is as this fit found it
            model.stop_training = outer_stop_training
    return history


def augmented_batch(augment, x_batch, y_batch, rng, owner: str):
    """``augment(x_batch, y_batch, rng)``, checked: it must return the pair (x, y) (a tuple or a
    list of two) with as many
    samples N as it was given (x (N, ...), y (N,) or (N, K)). Else the error names the augment,
    not a later step ("too many values to unpack", "looks like ONE sample", blamed on y)."""
    result = augment(x_batch, y_batch, rng)
    name = getattr(augment, "__qualname__", None) or repr(augment)
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise TypeError(f"{owner}: fit's augment {name} must return the pair (x_batch, y_batch), "
                        f"got {_described(result)}; write `return x, y` (y unchanged if it only changes x)")
    x_new, y_new = result
    n = len(x_batch)
    if np.ndim(x_new) == 0 or np.ndim(y_new) == 0 or len(x_new) != n or len(y_new) != n:
        raise ValueError(f"{owner}: fit's augment {name} was given a batch of {n} samples and returned "
                         f"x of shape {np.shape(x_new)} and y of shape {np.shape(y_new)}; it must "
                         f"return {n} samples in each (the same N: a sample or a label dropped or "
                         f"added would pair the wrong ones)")
    return x_new, y_new


def _described(value) -> str:
    """'a tuple of 3', 'a list of 3', 'an array of shape (4, 8, 8, 1)' or the type's name."""
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    return type(value).__name__


def _run_epoch(model, x, y, weights, epoch, title, n_steps, batch_size, shuffle, verbose, augment,
               callbacks, validation_data, history) -> dict:
    start = time.perf_counter()
    _call(callbacks, "on_epoch_begin", epoch, {})
    order = model.rng.permutation(len(x)) if shuffle else np.arange(len(x))
    # from here until the epoch ends, the model is in the middle of it (the generator has moved):
    # batches done so far = optimizer.iterations - iterations_at_start, exact wherever it stops
    model.epoch_in_progress = {"epoch": epoch, "batches": n_steps,
                               "iterations_at_start": model.optimizer.iterations}
    bar = ProgressBar(n_steps, title) if verbose else None
    loss_sum, correct_sum, seen = 0.0, 0.0, 0
    for step in range(n_steps):
        batch = order[step * batch_size:(step + 1) * batch_size]
        xb, yb = x[batch], y[batch]
        if augment is not None:
            xb, yb = augmented_batch(augment, xb, yb, model.rng, model.name)
            xb = np.asarray(xb, dtype=model.dtype)
        try:
            if weights is None:
                loss, logits = model.train_step(xb, yb)
            else:
                loss, logits = model.train_step(xb, yb, sample_weight=weights[batch])
        except NonFiniteLossError as error:
            where = f"epoch {epoch + 1}, batch {step + 1} of {n_steps}{rows_of_x_with_non_finite(xb, batch)}"
            raise NonFiniteLossError(f"{where}: {error}") from None
        loss_sum += loss * len(batch)
        correct_sum += (model.loss.accuracy(logits, yb) or 0.0) * len(batch)
        seen += len(batch)
        logs = {"loss": loss_sum / seen}
        if model.loss.has_accuracy:
            logs["accuracy"] = correct_sum / seen
        _call(callbacks, "on_batch_end", step, dict(logs))
        if bar:
            bar.update(step + 1, logs)
    if validation_data is not None:
        with non_finite_already_said():  # said once, before the first epoch, in row numbers of x
            val = model.evaluate(*validation_data)
        logs.update({f"val_{key}": value for key, value in val.items()})
    model.epochs_trained += 1
    model.epoch_in_progress = None  # a whole epoch again: resuming from here is exact
    schedule = getattr(model.optimizer, "schedule", None)
    if hasattr(schedule, "on_epoch_end"):  # e.g. reduce-on-plateau reads val_loss
        schedule.on_epoch_end(epoch, dict(logs))
    history.append(model.epochs_trained, logs, seconds=time.perf_counter() - start)
    _call(callbacks, "on_epoch_end", epoch, logs)
    if bar:
        bar.close(logs)
    return logs
