"""compare_training: a student's layer trained beside the original, step by step.

A single-layer gradient check runs one input again and again; it cannot see a layer that keeps
a stale cache from an earlier batch, or one that behaves differently in training and
inference mode. Here a model is trained twice from identical copies (float64, same weights and
buffers, one generator each in the same state, same batches): once as it is and once with one
top-level layer replaced by the student's. After every step we compare, in this order,

    the loss,  the training-mode output,  every parameter of every layer,  the inference output

and report the first step and array where the two runs part.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from .gradcheck_report import relative_difference


@dataclass
class TrainingComparison:
    steps: int
    parted: bool
    step: int | None = None
    where: str = ""
    difference: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.parted

    def __str__(self):
        if not self.parted:
            return f"compare_training: the two runs agree for all {self.steps} steps (float64) - PASSED"
        return (f"compare_training: the runs part at step {self.step}: {self.where} differs "
                f"(max relative difference {self.difference:.2e}) - FAILED")

    __repr__ = __str__


def _swap_in(model, layer_name, replacement):
    """Put a built deep copy of ``replacement`` in place of ``model``'s top-level ``layer_name``,
    with the original's parameters, buffers (BatchNorm's running statistics) and optimizer state.
    It draws from the model's generator, as the original did: a private copy would leave the
    other layers' draws (a second Dropout) where they were and part the runs at step 0."""
    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        raise ValueError(f"compare_training: the model has no top-level layer {layer_name!r}; "
                         f"its layers are {', '.join(names)}")
    index = names.index(layer_name)
    original = model.layers[index]
    student = copy.deepcopy(replacement)
    student.build(original.input_shape, rng=np.random.default_rng(0), dtype=np.float64)
    _copy_arrays(original.params, student.params, "params", layer_name, student)
    _copy_arrays(original.buffers, student.buffers, "buffers", layer_name, student)
    student.name = original.name
    student.set_rng(model.rng)
    student.opt_state = copy.deepcopy(original.opt_state)
    model.layers[index] = student
    return model


def _copy_arrays(originals: dict, students: dict, what: str, layer_name: str, student) -> None:
    """Copy each array of ``originals`` into ``students`` (the student's params or buffers), by
    name. Buffers a student named otherwise are matched when the name is unambiguous: the one
    student name that contains the original's, with its shape (``running_mean`` for ``mean``).
    Params keep their names: compare_training compares them by name after the updates."""
    original_shapes = {key: np.shape(value) for key, value in originals.items()}
    student_shapes = {key: np.shape(value) for key, value in students.items()}
    for key, value in originals.items():
        student_key = key if key in students or what == "params" else _containing(key, students)
        if student_shapes.get(student_key) != value.shape:
            raise ValueError(f"compare_training: {type(student).__name__} has {what} {student_shapes}, "
                             f"the original {layer_name} has {original_shapes}")
        students[student_key] = value.copy()


def _containing(key: str, students: dict) -> str | None:
    """The one name among ``students`` that contains ``key`` ("running_mean" for "mean"), or None."""
    matches = [name for name in students if key in name]
    return matches[0] if len(matches) == 1 else None


def compare_training(model, layer_name, replacement, x, y, steps: int = 5, batch_size: int | None = None,
                     tolerance: float = 1e-9) -> TrainingComparison:
    """Train deep copies of ``model`` with and without ``replacement`` for ``layer_name``.

    ``model`` must be compiled; it is deep-copied and cast to float64 (the original is never
    touched). ``replacement`` is an unbuilt (or built) layer of the student's with the same
    parameter and buffer keys and shapes; it gets the original layer's weights and buffers, and
    draws from the model's generator. Each step trains on the next ``batch_size`` samples of
    ``x, y`` (cycling). Returns a ``TrainingComparison``.
    """
    if model.loss is None or model.optimizer is None:
        raise RuntimeError(f"{model.name}: compile the model before compare_training")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    reference = copy.deepcopy(model)
    if not reference.built:
        reference.build(x.shape[1:])
    reference.astype(np.float64)
    student = _swap_in(copy.deepcopy(reference), layer_name, replacement)
    batch_size = batch_size or min(len(x), 8)
    for step in range(steps):
        start = (step * batch_size) % len(x)
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        results = []
        for run in (reference, student):
            loss, logits = run.train_step(xb, yb)
            results.append((loss, logits))
        (loss_a, logits_a), (loss_b, logits_b) = results
        checks = [("the loss", loss_b, loss_a), ("the training-mode output", logits_b, logits_a)]
        for layer_a, layer_b in zip(reference.layers, student.layers):
            for key, value in layer_a.params.items():
                checks.append((f"parameter {layer_a.name}/{key} after the update",
                               layer_b.params.get(key), value))
        checks.append(("the inference-mode output (training=False)",
                       student.forward(xb, training=False), reference.forward(xb, training=False)))
        for where, mine, expected in checks:
            difference = relative_difference(mine, expected)
            if not difference <= tolerance:
                return TrainingComparison(steps, True, step, where, difference)
    return TrainingComparison(steps, False)
