"""The layer contract every scratchnet layer follows.

A layer is a small object with two passes::

    y  = layer.forward(x, training=False)   # caches what backward needs
    dx = layer.backward(dy)                  # fills layer.grads, returns dL/dx

* Data is channels-last: a batch of images is ``(N, H, W, C)``, a batch of vectors ``(N, D)``.
* ``build(input_shape)`` creates the parameters from the shape of ONE sample (no batch axis).
* ``params`` and ``grads`` are dicts with the same keys and shapes.
* ``backward`` computes gradients only. It never changes a parameter: updating is the
  optimizer's job. That is what makes a numerical gradient check possible.
* ``output_shape(input_shape)`` is pure arithmetic on one sample's shape.

To write your own layer, subclass :class:`Layer` and implement ``forward``, ``backward``,
``output_shape`` and (if it has weights) ``init_params``. Then check it with
``scratchnet.gradcheck.check_layer``.
"""

from __future__ import annotations

import functools
import numbers
import re

import numpy as np

from ..input_checks import check_sample_shape
from ..kernels.workspace import Workspace, shared_workspace
from ..option_checks import is_int


def _snake_case(class_name: str) -> str:
    """'MaxPool2D' -> 'max_pool2d', 'Dense' -> 'dense'."""
    return re.sub(r"(?<=[a-z])([A-Z])", r"_\1", class_name).lower()


class Layer:
    """Base class of every layer.

    Attributes
    ----------
    name : str
        Used in error messages, ``summary()`` and saved weight files.
    params : dict[str, ndarray]
        Trainable arrays, e.g. ``{"W": (D_in, D_out), "b": (D_out,)}``.
    grads : dict[str, ndarray]
        ``dL/dparam`` for every key of ``params``, filled by ``backward``.
    buffers : dict[str, ndarray]
        Non-trainable state that is saved with the model (e.g. running means).
    opt_state : dict
        The optimizer's per-parameter state (moments, step count). Lives on the layer so a
        pickled model resumes training exactly.
    cache : dict
        What ``forward`` keeps for ``backward``. Never saved.
    workspace : Workspace
        Scratch arrays a layer's kernels reuse from call to call: the calling thread's
        workspace, SHARED by every layer (kernels/workspace.py), so an array from it is
        scratch for one call only. Not an attribute of the layer: never saved.
    input_shape : tuple[int, ...] | None
        Shape of one input sample, set by ``build``.
    param_shapes : dict[str, tuple] | None
        The shape of every parameter as ``build`` made it: a parameter replaced by assignment
        (``layer.params["W"] = ...``) is checked against it before each forward pass of a model
        and each optimizer step (``optimizers.check_params``). None for files saved before it.
    dtype : numpy.dtype
        Dtype of the parameters and of every array the layer computes.
    trainable : bool
        False freezes the layer: the optimizer leaves its parameters and optimizer state
        untouched, but backward still passes the gradient on to the layer's input.
    rng : numpy.random.Generator | None
        The generator a random layer (dropout, ...) draws from. The model hands every layer
        its own generator (``Sequential`` does this on build and load), so one seed fixes a run
        and a saved model resumes bitwise. Never pickled: the model saves the generator's state.
    """

    # Class-level defaults, so layers from files saved before these attributes existed load.
    trainable = True
    rng = None
    param_shapes = None

    def __init__(self, name: str | None = None):
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"{type(self).__name__}: name must be a non-empty string, got {name!r} (names "
                            f"find layers with get_layer and key their weights in saved files)")
        self.name = name if name is not None else _snake_case(type(self).__name__)
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.opt_state: dict = {}
        self.cache: dict = {}
        self.input_shape: tuple[int, ...] | None = None
        self.dtype = np.dtype("float32")
        self.built = False
        self.trainable = True
        self.rng: np.random.Generator | None = None

    # ----------------------------------------------------------------- building
    def build(self, input_shape, rng: np.random.Generator | None = None, dtype="float32"):
        """Create the parameters for samples of shape ``input_shape`` (no batch axis).

        Returns the output shape of one sample.
        """
        input_shape = self._validate_shape(input_shape)
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise TypeError(f"{self.name}: dtype must be a floating type, got {self.dtype}")
        output_shape = self.checked_output_shape(input_shape)  # raises early on impossible shapes
        rng = rng if rng is not None else np.random.default_rng()
        self.input_shape = input_shape
        new_params = self.init_params(input_shape, rng)
        self.params = {key: np.asarray(value, dtype=self.dtype) for key, value in new_params.items()}
        self.grads = {key: np.zeros_like(value) for key, value in self.params.items()}
        self.param_shapes = {key: value.shape for key, value in self.params.items()}
        self.buffers = {key: cast_if_float(value, self.dtype) for key, value in self.buffers.items()}
        self.opt_state = {}
        self.cache = {}
        self.built = True
        return output_shape

    def init_params(self, input_shape: tuple[int, ...], rng: np.random.Generator) -> dict:
        """Return the initial parameters. Layers without weights keep this default."""
        return {}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one output sample for one input sample of ``input_shape``."""
        return tuple(input_shape)

    # ------------------------------------------------------------------ passes
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x, training)")

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement backward(dy)")

    def backward_params(self, dy) -> None:
        """Fill ``self.grads`` like ``backward``, but without returning dL/dx.

        ``Sequential.train_step`` calls this on its FIRST layer: the gradient with respect to
        the model's input is never used for training (PyTorch skips it too), and for a
        convolution it can cost as much as the weight gradient. Layers where dx is expensive
        override this to skip computing it; the default runs ``backward`` and drops dx.
        """
        self.backward(dy)

    # ------------------------------------------------------------------ checks
    def _validate_shape(self, input_shape) -> tuple[int, ...]:
        return check_sample_shape(input_shape, self.name)

    def checked_output_shape(self, input_shape) -> tuple:
        """``output_shape(input_shape)``, refused with this layer's name if a size is a float: a
        layer of one's own computing ``h / 2`` would otherwise fail in the NEXT layer's build,
        whose message names the wrong layer. Whole sizes come back as a tuple of Python ints
        (NumPy ints, ``np.int64(4)``, would show as such in summary())."""
        shape = self.output_shape(input_shape)
        sizes = tuple(shape) if isinstance(shape, (tuple, list, np.ndarray)) else ()
        not_whole = [size for size in sizes if isinstance(size, numbers.Real) and not is_int(size)]
        if not_whole:
            raise TypeError(f"{self.name} ({type(self).__name__}): output_shape returned {tuple(shape)!r}; "
                            f"sizes must be ints: use // (or int(np.ceil(...))) in output_shape")
        if sizes and all(is_int(size) for size in sizes):
            return tuple(int(size) for size in sizes)
        return shape

    def check_input(self, x) -> np.ndarray:
        """Validate a batch against the built input shape; return it in the layer's dtype.

        Every built-in ``forward`` starts with this line, so a wrong shape fails here with
        a message naming the layer, not deep inside a matrix product.
        """
        x = self.as_numeric_array(x)
        if x.ndim != 1 + len(self.input_shape) or x.shape[1:] != self.input_shape:
            expected = ", ".join(["N", *map(str, self.input_shape)])
            raise ValueError(f"{self.name}: expected input of shape ({expected}), got {x.shape}")
        return x.astype(self.dtype, copy=False)

    def as_numeric_array(self, x) -> np.ndarray:
        """``x`` as an array, after checking the layer is built and ``x`` holds numbers."""
        if not self.built:
            raise RuntimeError(
                f"{self.name}: layer is not built; call build(input_shape) first "
                "or put it in a Sequential model with an input_shape"
            )
        x = np.asarray(x)
        if x.dtype.kind not in "fiub":
            raise TypeError(f"{self.name}: expected a numeric array, got dtype {x.dtype}")
        return x

    def check_output_grad(self, dy, expected_shape: tuple[int, ...]) -> np.ndarray:
        """Validate ``dy`` against the shape ``forward`` produced; return it in our dtype."""
        if not self.cache:
            raise RuntimeError(
                f"{self.name}: backward found no forward cache; call forward(x, training=...) right "
                f"before it. These leave no cache for a backward: predict and evaluate (they keep none "
                f"of their own), fit and train_step, backward(release_caches=True), copy.deepcopy, "
                f"pickling and save/load, astype")
        dy = np.asarray(dy)
        if dy.shape != tuple(expected_shape):
            raise ValueError(
                f"{self.name}: backward expected dy of shape {tuple(expected_shape)} "
                f"(the shape forward returned), got {dy.shape}"
            )
        return dy.astype(self.dtype, copy=False)

    # ------------------------------------------------------------------- tree
    def sublayers(self) -> list["Layer"]:
        """The layers inside this one, in order (a container overrides this; a leaf has none)."""
        return []

    def set_rng(self, rng: np.random.Generator | None) -> None:
        """Hand ``rng`` to this layer and every layer inside it."""
        for layer in iter_layers([self]):
            layer.rng = rng

    def random_generator(self) -> np.random.Generator:
        """The generator to draw from: the one the model handed us, or a fresh unseeded one."""
        if self.rng is None:
            self.rng = np.random.default_rng()
        return self.rng

    # ----------------------------------------------------------------- utility
    def astype(self, dtype) -> "Layer":
        """Cast parameters, gradients, float buffers and optimizer moments to ``dtype`` in place,
        here and in every layer inside (``sublayers()``). Int and bool buffers (a count, a mask)
        keep their dtype."""
        self.dtype = np.dtype(dtype)
        for store in (self.params, self.grads):
            for key, value in store.items():
                store[key] = value.astype(self.dtype)
        for key, value in self.buffers.items():
            self.buffers[key] = cast_if_float(value, self.dtype)
        for state in self.opt_state.values():
            for key, value in state.items():
                if isinstance(value, np.ndarray):
                    state[key] = value.astype(self.dtype)
        self.cache = {}
        for layer in self.sublayers():  # a container of one's own too, not only Container
            layer.astype(dtype)
        return self

    def count_params(self) -> int:
        """The number of parameters here and in every layer inside (``sublayers()``)."""
        own = sum(value.size for value in self.params.values())
        return int(own + sum(layer.count_params() for layer in self.sublayers()))

    def get_config(self) -> dict:
        """Constructor arguments, enough to rebuild an untrained copy: ``type(l)(**config)``."""
        return {"name": self.name}

    def zero_grads(self) -> None:
        """Set every gradient to 0. Training never needs it: ``backward`` REPLACES ``grads``
        (PyTorch accumulates into ``.grad``). To accumulate over micro-batches, sum the grads of
        each backward yourself (``total[name] += layer.grads[name]``) before the step."""
        for value in self.grads.values():
            value.fill(0)

    @property
    def workspace(self) -> Workspace:
        return shared_workspace()  # one per thread: its memory is the max over layers, not the sum

    def __getstate__(self):
        # Forward caches (inputs, argmax indices, Winograd's tiles) and scratch arrays are never
        # pickled: a saved model is the size of its parameters and optimizer state.
        state = self.__dict__.copy()
        state["cache"] = {}
        state.pop("_workspace", None)  # layers pickled when each had its own workspace
        state["rng"] = None  # the model saves its generator's state and hands it back on load
        return state

    def __repr__(self) -> str:
        config = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({config})"


def cast_if_float(value, dtype) -> np.ndarray:
    """A buffer in the layer's float ``dtype``, unless it is already a NumPy integer or bool
    ARRAY (a count, a mask used as an index): casting that to float would break it, so it keeps
    its dtype. Python numbers and lists are cast as always: ``{"scale": 1}`` becomes a float
    buffer, which an in-place ``*= 0.9`` can update (an int64 one would refuse)."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "biu":
        return value
    return np.asarray(value).astype(dtype)


def require_initialised(layer, owner: str) -> None:
    """A Layer subclass whose ``__init__`` forgot ``super().__init__()`` has no name, params, ..."""
    if not (hasattr(layer, "name") and hasattr(layer, "params")):
        raise TypeError(f"{owner}: the {type(layer).__name__} object was not set up as a layer: its "
                        f"__init__ must call super().__init__() first (it gives the layer its name, "
                        f"params, grads, ...)")


def run_backward_params(layer, dy) -> None:
    """``layer.backward_params(dy)`` (fill the grads, skip dL/dx), or ``layer.backward(dy)`` with
    its dx dropped when the layer's class overrides ``backward`` below the class whose
    ``backward_params`` it inherits: README's ``class MyConv(Conv2D): def backward(...)`` must
    run ITS backward when it is a model's first layer, not Conv2D's fast built-in one."""
    cls = type(layer)
    if backward_overrides_fast_path(cls, cls.backward, cls.backward_params):
        layer.backward(dy)
    else:
        layer.backward_params(dy)


@functools.cache  # once per class and methods: run_backward_params asks on every backward
def backward_overrides_fast_path(layer_class, backward, backward_params) -> bool:
    """True if ``backward`` is defined in a class nearer ``layer_class`` (in its MRO) than
    ``backward_params`` is: that backward_params knows nothing of the newer backward.
    Remembered per (class, its backward, its backward_params): a method assigned to the class
    later (``MyConv.backward = ...`` in a later notebook cell) is a new key, asked again."""
    classes = layer_class.__mro__

    def defining(method: str) -> int:
        return next(index for index, cls in enumerate(classes) if method in vars(cls))

    return defining("backward") < defining("backward_params")


def missing_attribute(obj, attribute: str, base: type, set_by_init: tuple[str, ...]) -> AttributeError:
    """The AttributeError for ``obj.attribute`` when it is missing (``__getattr__`` of Loss and
    Optimizer): for one of ``set_by_init``, which ``base.__init__`` sets, it says that the
    subclass's ``__init__`` must call ``super().__init__()`` (``require_initialised`` does it
    for layers); for any other name it is Python's own message."""
    message = f"{type(obj).__name__!r} object has no attribute {attribute!r}"
    if attribute in set_by_init:
        message += (f": {base.__name__}.__init__ sets it ({', '.join(set_by_init)}), so the __init__ of "
                    f"{type(obj).__name__} must call super().__init__(...) first")
    return AttributeError(message)


def iter_layers(layers):
    """Every layer in ``layers`` and inside them, depth-first, each container before its children.

    The optimizer, ``summary()``, save/load and freezing walk this tree: a leaf layer inside a
    ``Residual`` is treated exactly as a layer of a plain chain.
    """
    for layer in layers:
        yield layer
        yield from iter_layers(layer.sublayers())
