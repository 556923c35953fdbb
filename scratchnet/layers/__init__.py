"""Layers: each a small object with forward, backward, params and grads (see base.py)."""

from .activations import Activation
from .base import Layer
from .dense import Dense
from .reshape import Flatten

__all__ = ["Layer", "Dense", "Activation", "Flatten"]
