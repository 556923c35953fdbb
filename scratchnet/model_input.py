"""A batch on its way into a model: ``Sequential._prepare_input`` (predict, evaluate, fit, forward).

Every public entry point of a model sends its x through ``prepare_input``: the array's kind
and shape are checked against the model's input shape (with a hint for the common mistakes:
channels-first, a missing batch axis), an unbuilt model is built from it, values are checked
(NaN/inf, unscaled 0-255 images, values far outside the range the model was trained on), and
the batch comes back in the model's dtype.
"""

from __future__ import annotations

import numpy as np

from .input_checks import (
    build_from_batch,
    check_array_kind,
    finite_range,
    looks_channels_first,
    shape_hint,
    warn_non_finite,
    warn_out_of_range,
    warn_unscaled_images,
)


def prepare_input(model, x, record_range: bool = False, check_range: bool = True) -> np.ndarray:
    """Check a batch (kind, shape, values) and return it in the model's dtype (N, *input_shape).

    Builds an unbuilt model from it, and always warns about integer 0-255 images.
    check_range   (predict, evaluate; not ``forward``: gradient checks feed random inputs) warn
                  about NaN/inf and about values far outside the range the model was trained on.
    record_range  (fit) record that range on the model (``model.input_range``) and warn about
                  float images holding whole numbers 0-255; NaN/inf is fit's to warn about, after
                  its validation split (rows named in x's numbering).
    """
    x = check_array_kind(x, model.name)
    if x.ndim < 2 and model.input_shape is None:
        raise ValueError(f"{model.name}: expected a batch of samples (N, ...), got shape {x.shape}; "
                         f"add a batch axis (x[None]) or give Sequential(input_shape=...)")
    if not model.built:
        if model.input_shape is None and looks_channels_first(x.shape):
            raise ValueError(
                f"{model.name}: input of shape {x.shape} looks channels-first (N, C, H, W), but "
                f"scratchnet is channels-last (N, H, W, C): pass x.transpose(0, 2, 3, 1), or give "
                f"Sequential(input_shape={x.shape[1:]}) if the shape is meant as it is")
        if model.input_shape is None:
            build_from_batch(model, x.shape)
        model.build()
    if x.ndim != 1 + len(model.input_shape) or x.shape[1:] != model.input_shape:
        expected = ", ".join(["N", *map(str, model.input_shape)])
        hint = shape_hint(x.shape, model.input_shape)
        raise ValueError(f"{model.name}: expected input of shape ({expected}), got {x.shape}{hint}")
    if model.check_numerics and not np.all(np.isfinite(x)):
        raise ValueError(f"{model.name}: input contains NaN or inf "
                         f"({int(np.sum(~np.isfinite(x)))} values)")
    # predict and evaluate warn here; fit warns after its validation split
    if not model.check_numerics and check_range and not record_range:
        warn_non_finite(x, model.name)
    first_layer = model.layers[0] if model.layers else None
    warn_unscaled_images(x, model.name, first_layer, whole_floats=record_range)  # fit: once
    x_range = finite_range(x) if check_range or record_range else None
    if check_range:
        warn_out_of_range(x_range, model.input_range, model.name)
    if record_range and x_range is not None:
        lo, hi = x_range if model.input_range is None else (
            min(x_range[0], model.input_range[0]), max(x_range[1], model.input_range[1]))
        model.input_range = (lo, hi)
    return x.astype(model.dtype, copy=False)
