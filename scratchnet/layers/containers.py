"""Containers: blocks made of layers that follow the same contract as one layer.

* ``Chain([l1, l2, ...])``         x -> l1 -> l2 -> ... -> y  (a list of layers used as ONE layer)
* ``Residual(block, shortcut)``    y = block(x) + shortcut(x)          (He et al., 2016)
* ``Parallel(branches, merge)``    y = merge(branch_1(x), ..., branch_k(x))  (an Inception block)

A container's own ``params`` stay empty: its children hold the weights. ``sublayers()`` returns
the children, so the optimizer, ``summary()``, save/load, freezing and ``check_model`` walk the
tree (``iter_layers``) and treat every leaf exactly like a layer of a plain chain. Wherever a
child is expected you may pass a layer or a list of layers (wrapped in a ``Chain``).

Why ``Chain`` and not a ``Sequential`` inside a ``Sequential``: the model owns training (loss,
optimizer, fit, save, its random generator); a block only needs forward/backward. ``Chain`` is
that part of ``Sequential`` alone, a Layer like any other.

Freezing: ``container.trainable = False`` sets ``trainable = False`` on every layer inside it
(and ``True`` unfreezes them all). The optimizer reads the leaves' flags; a child can still be
changed on its own afterwards, e.g. ``residual.block.trainable = True``.
"""

from __future__ import annotations

from ..input_checks import require_gradient
from .base import Layer, iter_layers, require_initialised, run_backward_params
from .merge import Add, Concatenate, Merge


# ------------------------------------------------------------------ helpers
def layer_config(layer: Layer) -> dict:
    """``{"class": "Conv2D", "config": {...}}``: what a container's get_config holds per child."""
    return {"class": type(layer).__name__, "config": layer.get_config()}


def layer_from_config(spec: dict, owner: str) -> Layer:
    """Rebuild an (unbuilt) scratchnet layer from ``layer_config``'s output."""
    from .. import layers as package  # the public layer classes, looked up by name

    cls = getattr(package, str(spec.get("class")), None)
    if not (isinstance(cls, type) and issubclass(cls, Layer)) or not isinstance(spec.get("config"), dict):
        raise ValueError(f"{owner}: cannot rebuild a layer from {spec!r}; expected "
                         "{'class': <a scratchnet.layers class name>, 'config': {...}}")
    return cls(**spec["config"])


def as_layer(value, owner: str, argument: str, chain_name: str) -> Layer:
    """A Layer as it is; a list of layers as a ``Chain`` named ``chain_name``; a config dict rebuilt."""
    if isinstance(value, Layer):
        require_initialised(value, owner)
        return value
    if isinstance(value, (list, tuple)):
        return Chain(value, name=chain_name)
    if isinstance(value, dict) and "class" in value:
        return layer_from_config(value, owner)
    raise TypeError(f"{owner}: {argument} must be a Layer or a list of layers, got {type(value).__name__}")


def planned_renames(layers, used: set[str]) -> list[tuple[Layer, str]]:
    """(layer, new name) for every layer in the tree of ``layers`` whose name is in ``used`` or
    taken by an earlier layer of the tree: 'conv2d' -> 'conv2d_1'. Renames nothing; ``used``
    grows with every name the tree will have."""
    renames = []
    for layer in iter_layers(layers):
        name = layer.name
        if name in used:
            k = 1
            while f"{name}_{k}" in used:
                k += 1
            name = f"{name}_{k}"
            renames.append((layer, name))
        used.add(name)
    return renames


def rename_duplicates(layers, used: set[str]) -> None:
    """Give every layer in the tree of ``layers`` a name not in ``used``: 'conv2d' -> 'conv2d_1'.

    ``used`` grows with the names given (``planned_renames``).
    """
    for layer, name in planned_renames(layers, used):
        layer.name = name


def _describe(spec) -> str:
    """A config with child specs, written as constructor calls (for __repr__)."""
    if isinstance(spec, dict) and set(spec) == {"class", "config"}:
        return f"{spec['class']}({_describe(spec['config'])})"
    if isinstance(spec, dict):
        return ", ".join(f"{key}={_describe(value)}" for key, value in spec.items())
    if isinstance(spec, list):
        return "[" + ", ".join(_describe(value) for value in spec) + "]"
    return repr(spec)


# ------------------------------------------------------------------ the base
class Container(Layer):
    """A layer made of layers: ``sublayers()`` are ``self.children``; no parameters of its own.

    Building a container builds its children (``build_children``) with the model's generator
    and dtype; ``astype``, ``count_params`` (Layer's, through ``sublayers()``), ``zero_grads`` and
    ``trainable`` reach every child.
    """

    def __init__(self, name: str | None = None):
        self.children: list[Layer] = []  # before Layer.__init__: its `trainable = True` walks them
        super().__init__(name=name)

    def set_children(self, children: list[Layer]) -> None:
        """Adopt ``children``, each layer object once in the tree.

        Names are made unique when the container joins a model (``Sequential.add`` renames over
        the whole tree, in order: conv2d, conv2d_1, conv2d_2, ...), not here.
        """
        seen: dict[int, str] = {}
        for layer in iter_layers(children):
            if id(layer) in seen or layer is self:
                raise ValueError(f"{self.name}: the layer object {layer.name!r} appears twice in this "
                                 "block; a layer holds one set of weights and one forward cache, so "
                                 "create a new layer for each place")
            seen[id(layer)] = layer.name
        self.children = list(children)

    def sublayers(self) -> list[Layer]:
        return list(self.children)

    @property
    def trainable(self) -> bool:
        return self.__dict__.get("_trainable", True)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for child in self.children:  # freezing a block freezes everything inside it
            child.trainable = value

    def init_params(self, input_shape, rng):
        """A container has no weights of its own: building it builds its children."""
        self.build_children(input_shape, rng)
        return {}

    def build_children(self, input_shape, rng) -> None:
        raise NotImplementedError

    def child_backward(self, child: Layer, dy):
        """``child.backward(dy)``; a child returning None or a dx not of its input's shape is
        named here (``require_gradient``), not blamed on the layer its dx reaches next."""
        dx = child.backward(dy)
        require_gradient(dx, child, self.name, dy)
        return dx

    def zero_grads(self) -> None:
        for child in self.children:
            child.zero_grads()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({_describe(self.get_config())})"


# ------------------------------------------------------------------ Chain
class Chain(Container):
    """x -> layers[0] -> layers[1] -> ... -> y: a list of layers used as one layer.

    Backward runs the children in reverse: dy -> layers[-1].backward -> ... -> dx.
    """

    def __init__(self, layers, name: str | None = None):
        super().__init__(name=name)
        if not isinstance(layers, (list, tuple)) or not layers:
            raise TypeError(f"{self.name}: layers must be a non-empty list of layers, got {layers!r}")
        self.set_children([as_layer(layer, self.name, f"layers[{i}]", "chain")
                           for i, layer in enumerate(layers)])

    @property
    def layers(self) -> list[Layer]:
        return self.children

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.children:
            shape = layer.output_shape(shape)
        return shape

    def build_children(self, input_shape, rng):
        shape = input_shape
        for layer in self.children:
            shape = layer.build(shape, rng=rng, dtype=self.dtype)

    def forward(self, x, training=False):
        out = self.check_input(x)
        for layer in self.children:
            out = layer.forward(out, training=training)
        self.cache = {"y_shape": out.shape}
        return out

    def backward(self, dy):
        dy = self.check_output_grad(dy, self.cache["y_shape"] if self.cache else ())
        return self.backward_children(reversed(self.children), dy)

    def backward_params(self, dy):
        """Like backward, but the first child skips dL/dx (nobody needs it)."""
        dy = self.check_output_grad(dy, self.cache["y_shape"] if self.cache else ())
        dy = self.backward_children(reversed(self.children[1:]), dy)
        run_backward_params(self.children[0], dy)

    def backward_children(self, children, dy):
        """dy through each child's backward in turn (the last child first)."""
        for layer in children:
            dy = self.child_backward(layer, dy)
        return dy

    def get_config(self):
        return {"layers": [layer_config(layer) for layer in self.children], **super().get_config()}


# ------------------------------------------------------------------ Residual
class Residual(Container):
    """y = block(x) + shortcut(x), the shortcut being the identity unless given.

    Shapes: x (N, ...) -> y (N, ...) = the block's output shape; the shortcut's output must have
    the same shape (a block that changes the channels or strides needs a projection shortcut,
    e.g. ``Conv2D(filters, 1, stride=s)``).

    Backward: both paths carry x to y, so their input gradients add up:
        dx = block.backward(dy) + shortcut.backward(dy)      (identity: + dy)

    Parameters
    ----------
    block : Layer or list of layers (wrapped in a Chain named "block")
    shortcut : None (identity), a Layer or a list of layers, e.g. [Conv2D(c, 1, stride=2), BatchNorm()]
    """

    def __init__(self, block, shortcut=None, name: str | None = None):
        super().__init__(name=name)
        children = [as_layer(block, self.name, "block", "block")]
        if shortcut is not None:
            children.append(as_layer(shortcut, self.name, "shortcut", "shortcut"))
        self.set_children(children)

    @property
    def block(self) -> Layer:
        return self.children[0]

    @property
    def shortcut(self) -> Layer | None:
        return self.children[1] if len(self.children) > 1 else None

    @property
    def branches(self) -> list[Layer | None]:
        """The two paths from x to y: [block, shortcut] (None: the identity)."""
        return [self.block, self.shortcut]

    def output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        main = tuple(self.block.output_shape(input_shape))
        side = input_shape if self.shortcut is None else tuple(self.shortcut.output_shape(input_shape))
        if main != side:
            raise ValueError(self._mismatch_message(input_shape, main, side))
        return main

    def _mismatch_message(self, input_shape, main, side) -> str:
        message = (f"{self.name}: the block maps {input_shape} to {main}, but the shortcut "
                   f"({'identity' if self.shortcut is None else self.shortcut.name}) gives {side}; "
                   "both paths must have the same shape to be added. ")
        if self.shortcut is not None:
            return message + f"Change the shortcut so that it outputs {main}."
        if len(main) == 3 and len(input_shape) == 3:  # images: a 1x1 convolution projects
            stride = max(1, round(input_shape[0] / main[0]))
            return message + (f"Pass a projection, e.g. shortcut=Conv2D({main[2]}, 1, stride={stride}) "
                              "(a block with padding='same' keeps the sizes a 1x1 stride can match).")
        return message + f"Pass a projection, e.g. shortcut=Dense({main[-1]})."

    def build_children(self, input_shape, rng):
        self.block.build(input_shape, rng=rng, dtype=self.dtype)
        if self.shortcut is not None:
            self.shortcut.build(input_shape, rng=rng, dtype=self.dtype)

    def forward(self, x, training=False):
        x = self.check_input(x)
        main = self.block.forward(x, training=training)
        side = x if self.shortcut is None else self.shortcut.forward(x, training=training)
        y = main + side                                        # y = block(x) + shortcut(x)
        self.cache = {"y_shape": y.shape}
        return y

    def backward(self, dy):
        dy = self.check_output_grad(dy, self.cache["y_shape"] if self.cache else ())
        dx = self.child_backward(self.block, dy)               # through the block ...
        if self.shortcut is None:
            return dx + dy                                     # ... plus the identity: dx += dy
        return dx + self.child_backward(self.shortcut, dy)     # ... plus the projection's dx

    def backward_params(self, dy):
        dy = self.check_output_grad(dy, self.cache["y_shape"] if self.cache else ())
        run_backward_params(self.block, dy)
        if self.shortcut is not None:
            run_backward_params(self.shortcut, dy)

    def get_config(self):
        shortcut = None if self.shortcut is None else layer_config(self.shortcut)
        return {"block": layer_config(self.block), "shortcut": shortcut, **super().get_config()}


# ------------------------------------------------------------------ Parallel
MERGES = {"concat": Concatenate, "add": Add}


class Parallel(Container):
    """y = merge(branch_1(x), ..., branch_k(x)): every branch sees the same input.

    merge="concat": y = [y_1 | ... | y_k] along the channels (last axis); the branches' outputs
        agree on every other axis.  (N, H, W, C) -> (N, H, W, F_1 + ... + F_k)
    merge="add":    y = y_1 + ... + y_k; every branch has the same output shape.
    merge may also be an ``Add()`` or ``Concatenate(axis=...)`` layer. The merge layer is the
    container's last child (``parallel.merge``), so ``summary()`` shows the merged shape.

    Backward: the merge splits dy into dy_i (concat: the i-th slice of channels; add: dy itself),
    and x fed every branch, so the input gradients add up:  dx = sum_i branch_i.backward(dy_i).
    """

    def __init__(self, branches, merge="concat", name: str | None = None):
        super().__init__(name=name)
        if not isinstance(branches, (list, tuple)) or not branches:
            raise TypeError(f"{self.name}: branches must be a non-empty list of layers (or of lists of "
                            f"layers), got {branches!r}")
        children = [as_layer(branch, self.name, f"branches[{i}]", "branch")
                    for i, branch in enumerate(branches)]
        self.set_children([*children, self._merge_layer(merge)])

    def _merge_layer(self, merge) -> Merge:
        if isinstance(merge, dict) and "class" in merge:
            merge = layer_from_config(merge, self.name)
        if isinstance(merge, Merge):
            return merge
        if isinstance(merge, str) and merge.lower() in MERGES:
            return MERGES[merge.lower()]()
        raise ValueError(f"{self.name}: merge must be one of {', '.join(map(repr, MERGES))} or an "
                         f"Add/Concatenate layer, got {merge!r}")

    @property
    def branches(self) -> list[Layer]:
        return self.children[:-1]

    @property
    def merge(self) -> Merge:
        return self.children[-1]

    def output_shape(self, input_shape):
        shapes = [tuple(branch.output_shape(tuple(input_shape))) for branch in self.branches]
        try:
            return self.merge.output_shape(shapes)
        except ValueError as error:
            names = ", ".join(branch.name for branch in self.branches)
            raise ValueError(f"{self.name}: the outputs of the branches ({names}) cannot be merged: "
                             f"{error}") from None

    def build_children(self, input_shape, rng):
        shapes = [branch.build(input_shape, rng=rng, dtype=self.dtype) for branch in self.branches]
        self.merge.build(shapes, rng=rng, dtype=self.dtype)

    def forward(self, x, training=False):
        x = self.check_input(x)
        outputs = [branch.forward(x, training=training) for branch in self.branches]
        y = self.merge.forward(outputs, training=training)
        self.cache = {"y_shape": y.shape}
        return y

    def backward(self, dy):
        dy = self.check_output_grad(dy, self.cache["y_shape"] if self.cache else ())
        pieces = self.merge.backward(dy)                       # dy_1, ..., dy_k
        dx = self.child_backward(self.branches[0], pieces[0])
        for branch, piece in zip(self.branches[1:], pieces[1:]):
            dx = dx + self.child_backward(branch, piece)       # dx = sum_i branch_i.backward(dy_i)
        return dx

    def backward_params(self, dy):
        dy = self.check_output_grad(dy, self.cache["y_shape"] if self.cache else ())
        for branch, piece in zip(self.branches, self.merge.backward(dy)):
            run_backward_params(branch, piece)

    def get_config(self):
        return {"branches": [layer_config(branch) for branch in self.branches],
                "merge": layer_config(self.merge), **super().get_config()}
