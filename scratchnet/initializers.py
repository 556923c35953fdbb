"""Weight initialisers, chosen by name so that models stay picklable.

fan_in / fan_out of a weight array:
    Dense  W (D_in, D_out)            fan_in = D_in,            fan_out = D_out
    Conv2D W (kh, kw, C_in, filters)  fan_in = kh * kw * C_in,  fan_out = kh * kw * filters

Glorot (Xavier):  Var(w) = 2 / (fan_in + fan_out)   -- keeps variance through tanh/sigmoid
He (Kaiming):     Var(w) = 2 / fan_in               -- keeps variance through ReLU
A uniform(-a, a) has variance a^2 / 3, so a = sqrt(3 * Var).
"""

from __future__ import annotations

import numpy as np

from .option_checks import check_bool

INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "zeros")


def compute_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) for a Dense (2-D) or convolution (kh, kw, C_in, C_out) weight."""
    if len(shape) < 2:
        return int(np.prod(shape)), int(np.prod(shape))
    receptive_field = int(np.prod(shape[:-2]))  # kh * kw for a convolution, 1 for Dense
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def check_initializer_name(name, layer_name: str) -> str:
    if name not in INITIALIZERS:
        raise ValueError(
            f"{layer_name}: unknown initializer {name!r}; expected one of {', '.join(INITIALIZERS)}"
        )
    return name


def check_use_bias(use_bias, layer_name: str) -> bool:
    """A layer's ``use_bias``: True or False. An initializer's name there was meant for
    ``kernel_initializer`` (given by position: Dense(10, "relu", "he_normal")): the message says so."""
    hint = (f"; a string given by position? pass it by name, e.g. kernel_initializer={use_bias!r}"
            if isinstance(use_bias, str) and use_bias in INITIALIZERS else "")
    return check_bool(use_bias, "use_bias", layer_name, hint)


def initialize(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A float64 array of ``shape`` drawn by the initializer ``name``."""
    fan_in, fan_out = compute_fans(shape)
    if name == "zeros":
        return np.zeros(shape)
    if name.startswith("glorot"):
        variance = 2.0 / (fan_in + fan_out)
    elif name.startswith("he"):
        variance = 2.0 / fan_in
    else:
        raise ValueError(f"unknown initializer {name!r}; expected one of {', '.join(INITIALIZERS)}")
    if name.endswith("uniform"):
        limit = np.sqrt(3.0 * variance)
        return rng.uniform(-limit, limit, size=shape)
    return rng.normal(0.0, np.sqrt(variance), size=shape)
