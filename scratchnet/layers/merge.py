"""Merge layers: several arrays in, one array out (used by ``Parallel(merge=...)``).

A merge layer takes a LIST of inputs where every other layer takes one array::

    y   = merge.forward([x_1, ..., x_k], training)     # one array
    dxs = merge.backward(dy)                           # [dx_1, ..., dx_k], one per input

It is built from a list of sample shapes, ``merge.build([shape_1, ..., shape_k])``, and
``output_shape`` takes that list too. It has no parameters.
"""

from __future__ import annotations

import numpy as np

from ..option_checks import is_int
from .base import Layer


class Merge(Layer):
    """Shared by Add and Concatenate: built from, and checking, a list of inputs."""

    # Layer.build builds a merge too: it validates the list below, checks the dtype, calls
    # output_shape(shapes) (raises on shapes that cannot be merged) and stores the list of sample
    # shapes as input_shape; a merge has no parameters.
    def _validate_shape(self, input_shapes) -> list[tuple[int, ...]]:
        """The sample shapes ``input_shapes`` (a list, one per input), each checked like one shape."""
        if not isinstance(input_shapes, (list, tuple)) or not input_shapes \
                or not all(isinstance(shape, (list, tuple)) for shape in input_shapes):
            raise TypeError(f"{self.name}: expected a non-empty list of sample shapes (one per input), "
                            f"got {input_shapes!r}")
        validate_one = super()._validate_shape  # Layer's check of one sample shape
        return [validate_one(shape) for shape in input_shapes]

    def check_inputs(self, xs) -> list[np.ndarray]:
        """A list of batches with the built sample shapes and one batch size, in our dtype."""
        if not isinstance(xs, (list, tuple)):
            raise TypeError(f"{self.name}: expected a list of {len(self.input_shape or [])} arrays, "
                            f"got {type(xs).__name__}")
        arrays = [self.as_numeric_array(x) for x in xs]
        got = [x.shape for x in arrays]
        if len(arrays) != len(self.input_shape) or any(
                x.ndim == 0 or x.shape[1:] != shape for x, shape in zip(arrays, self.input_shape)):
            expected = ", ".join("(" + ", ".join(["N", *map(str, shape)]) + ")" for shape in self.input_shape)
            raise ValueError(f"{self.name}: expected {len(self.input_shape)} inputs of shapes {expected}, "
                             f"got {got}")
        if len({x.shape[0] for x in arrays}) > 1:
            raise ValueError(f"{self.name}: every input must hold the same number of samples, got {got}")
        return [x.astype(self.dtype, copy=False) for x in arrays]


class Add(Merge):
    """y = x_1 + x_2 + ... + x_k, elementwise; every input has the same shape (N, ...).

    Backward: dy/dx_i = identity, so every input receives the whole gradient, dx_i = dy.
    """

    def output_shape(self, input_shapes):
        shapes = [tuple(shape) for shape in input_shapes]
        if len(set(shapes)) != 1:
            raise ValueError(f"{self.name}: every input must have the same shape to be added, got {shapes}")
        return shapes[0]

    def forward(self, xs, training=False):
        xs = self.check_inputs(xs)
        # y is a new array (never an input: other layers keep theirs); x_1 + x_2 written straight
        # into it is one pass, where a copy of x_1 and then += x_2 were two
        y = np.add(xs[0], xs[1]) if len(xs) > 1 else xs[0].copy()
        for x in xs[2:]:
            y += x                                             # y = sum_i x_i
        self.cache = {"y_shape": y.shape, "count": len(xs)}
        return y

    def backward(self, dy):
        dy = self.check_output_grad(dy, self.cache["y_shape"] if self.cache else ())
        # dx_i = dy: the same array for every input, no copies. Safe because no layer writes into
        # the dy it receives (the layer contract; check_layer tests it), just as Residual hands
        # one dy to both of its paths. (Copies cost 0.17 ms per 4 MB input; PyTorch copies none.)
        return [dy] * self.cache["count"]


class Concatenate(Merge):
    """y = [x_1 | x_2 | ... | x_k] joined along ``axis`` (default -1: channels, as in Keras).

    Shapes: x_i (N, ..., C_i, ...) -> y (N, ..., C_1 + ... + C_k, ...); every other axis equal.
    ``axis`` counts the batch axis like NumPy: -1 and 3 are the channels of (N, H, W, C);
    the batch axis 0 cannot be joined.

    Backward: y's slice [C_1 + ... + C_{i-1}, C_1 + ... + C_i) along ``axis`` came from x_i,
    so dx_i is that slice of dy.
    """

    def __init__(self, axis: int = -1, name: str | None = None):
        super().__init__(name=name)
        message = f"{self.name}: axis must be a nonzero int (0 is the batch axis), got {axis!r}"
        if not is_int(axis):
            raise TypeError(message)
        if axis == 0:
            raise ValueError(message)
        self.axis = int(axis)

    def sample_axis(self, rank: int) -> int:
        """The axis in ONE sample's shape (no batch axis) of rank ``rank``."""
        axis = self.axis - 1 if self.axis > 0 else rank + self.axis
        if not 0 <= axis < rank:
            raise ValueError(f"{self.name}: axis {self.axis} is out of range for inputs with "
                             f"{rank + 1} axes (the batch axis included)")
        return axis

    def output_shape(self, input_shapes):
        shapes = [tuple(shape) for shape in input_shapes]
        if len({len(shape) for shape in shapes}) != 1:
            raise ValueError(f"{self.name}: every input must have the same number of axes, got {shapes}")
        axis = self.sample_axis(len(shapes[0]))
        others = {shape[:axis] + shape[axis + 1:] for shape in shapes}
        if len(others) != 1:
            raise ValueError(f"{self.name}: inputs must have equal sizes on every axis but axis "
                             f"{self.axis} to be concatenated, got {shapes}")
        size = sum(shape[axis] for shape in shapes)              # C = C_1 + ... + C_k
        return shapes[0][:axis] + (size,) + shapes[0][axis + 1:]

    def forward(self, xs, training=False):
        xs = self.check_inputs(xs)
        axis = 1 + self.sample_axis(xs[0].ndim - 1)
        y = np.concatenate(xs, axis=axis)
        # where each input's slice ends along the axis: C_1, C_1 + C_2, ...
        self.cache = {"y_shape": y.shape, "axis": axis, "ends": np.cumsum([x.shape[axis] for x in xs])}
        return y

    def backward(self, dy):
        dy = self.check_output_grad(dy, self.cache["y_shape"] if self.cache else ())
        # dx_i = dy[..., start_i:end_i, ...]; np.split cuts at C_1, C_1 + C_2, ... (views, copied)
        pieces = np.split(dy, self.cache["ends"][:-1], axis=self.cache["axis"])
        return [piece.copy() for piece in pieces]

    def get_config(self):
        return {"axis": self.axis, **super().get_config()}
