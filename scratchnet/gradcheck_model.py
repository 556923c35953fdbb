"""check_model: the whole model's backward, loss included, against central differences."""

from __future__ import annotations

import copy

import numpy as np

from .gradcheck import EPS, TOLERANCE, arrays_to_compare, compare_gradients, gradient_copies
from .gradcheck_contract import check_grads, snapshot_params
from .gradcheck_numeric import central_difference_noise
from .gradcheck_report import GradientCheckReport
from .layers.base import iter_layers


def check_model(model, x, y, seed: int = 0, eps: float = EPS, tolerance: float = TOLERANCE,
                training: bool = False, max_elements: int | None = 200) -> GradientCheckReport:
    """Check the whole model's backward (loss included) against central differences.

    The model must be compiled (its loss is used). It is deep-copied and cast to float64.
    By default at most ``max_elements`` random entries of each array are checked; the grads of
    every layer are checked against its params' shapes and dtypes first.

    A difference below the round-off of a central difference of the loss passes ("ok
    (round-off)"), as in check_layer: e.g. a conv bias before a training-mode BatchNorm has a
    true gradient of 0 (the batch mean removes it) and ~1e-17 of round-off analytically.
    """
    if model.loss is None:
        raise RuntimeError(f"{model.name}: compile the model (a loss is needed) before check_model")
    rng = np.random.default_rng(seed)
    model = copy.deepcopy(model)
    x = np.array(x, dtype=np.float64)
    if not model.built:
        model.build(x.shape[1:] if model.input_shape is None else None)
    model.astype(np.float64)

    noise_seed = int(rng.integers(2**31))

    def loss_value(_):
        for layer in model.layers:
            layer.set_rng(np.random.default_rng(noise_seed))  # same dropout mask on every call
        return model.loss.forward(model.forward(x, training=training), y)

    # the loss is a mean of per-sample terms, each >= 0 for the library's losses: |loss| is their size
    noise_floor = central_difference_noise(abs(float(loss_value(None))), eps)
    leaves = list(iter_layers(model.layers))
    before = {id(layer): snapshot_params(layer) for layer in leaves}  # the caches are not compared here
    analytic_dx = model.backward(model.loss.backward())
    report = GradientCheckReport(f"check_model: {model.name}, input {x.shape}, "
                                 f"loss {model.loss.name}", tolerance, batch_size=x.shape[0])
    for layer in leaves:
        report.contract += check_grads(layer)
        if layer.params is not before[id(layer)]["params_dict"] or any(
                not np.array_equal(layer.params[key], value)
                for key, value in before[id(layer)]["params"].items() if key in layer.params):
            report.contract.append(f"{layer.name}: backward changed its parameters; only the optimizer "
                                   "may (fit would update them twice)")
    arrays = arrays_to_compare(model, leaves, x, analytic_dx, gradient_copies(model, leaves))  # "dense/W"
    compare_gradients(report, loss_value, arrays, rng, eps, max_elements, noise_floor=noise_floor)
    return report
