"""Finding, freezing and building layers in a model's tree of layers (containers included).

``Sequential.get_layer``, ``freeze``, ``unfreeze``, ``build`` and ``add`` call these; the
inference passes (predict, evaluate, scratchnet.inspect) run inside ``caches_kept``.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager

import numpy as np

from .input_checks import refuse_rebuilding
from .layers.base import Layer, iter_layers
from .layers.containers import planned_renames
from .option_checks import is_int


def get_layer(model, name: str | None = None, *, index: int | None = None) -> Layer:
    """The layer called ``name`` at any depth (inside containers too), or ``model.layers[index]``."""
    if (name is None) == (index is None):
        raise TypeError(f"{model.name}: get_layer takes a layer name or index=..., exactly one of them")
    if index is not None:
        message = (f"{model.name}: index must be an int in [{-len(model.layers)}, {len(model.layers)}) "
                   f"(top-level layers), got {index!r}")
        if not is_int(index):  # as a list: a float index is a TypeError, one out of range an IndexError
            raise TypeError(message)
        if not -len(model.layers) <= index < len(model.layers):
            raise IndexError(message)
        return model.layers[index]
    for layer in iter_layers(model.layers):
        if layer.name == name:
            return layer
    names = ", ".join(layer.name for layer in iter_layers(model.layers))
    by_position = is_int(name)
    hint = f"; to choose by position write get_layer(index={name})" if by_position else ""
    raise KeyError(f"{model.name}: no layer named {name!r}; the layers are: {names}{hint}")


def freeze(model, up_to: str | int | None = None):
    """Make layers untrainable: all of them, or the top-level layers BEFORE ``up_to``.

    ``up_to`` is a top-level layer's name or index and is excluded, like ``layers[:up_to]``:
    ``model.freeze(up_to="dense")`` freezes the feature extractor and keeps "dense" and
    everything after it trainable. Layers after ``up_to`` are left as they are. Freezing a
    container freezes every layer inside it. Frozen layers keep their params and optimizer
    state bitwise unchanged during ``fit``, and still pass the gradient to their input.
    """
    if up_to is None:
        stop = len(model.layers)
    elif isinstance(up_to, str):
        top = [layer.name for layer in model.layers]
        if up_to not in top:
            nested = up_to in {layer.name for layer in iter_layers(model.layers)}
            hint = (" (it is inside a container; freeze it with model.get_layer(name).trainable = False)"
                    if nested else "")
            raise ValueError(f"{model.name}: freeze(up_to=...) takes a top-level layer; no top-level "
                             f"layer named {up_to!r}{hint}; the top-level layers are: {', '.join(top)}")
        stop = top.index(up_to)
    elif is_int(up_to) and 0 <= up_to <= len(model.layers):
        stop = int(up_to)
    else:
        message = (f"{model.name}: up_to must be a top-level layer name or an index in "
                   f"[0, {len(model.layers)}], got {up_to!r}")
        if is_int(up_to):  # an index out of range
            raise ValueError(message)
        raise TypeError(message)  # neither a name nor an int (2.0, True)
    for layer in iter_layers(model.layers[:stop]):  # inside a container of one's own too (sublayers())
        layer.trainable = False
    return model


def unfreeze(model):
    """Make every layer, at every depth, trainable again."""
    for layer in iter_layers(model.layers):
        layer.trainable = True
    return model


def build_for(model, who: str) -> None:
    """Build an unbuilt model from its input_shape before ``who`` (summary(), count_params(),
    get_weights()) reads its layers; without an input_shape there is nothing to read: an error,
    not 0 parameters or no weights."""
    if not model.built:
        if model.input_shape is None:
            raise ValueError(f"{model.name}: build the model (give input_shape) before {who}")
        model.build()


def append_layer(model, layer: Layer) -> None:
    """``Sequential.add`` after its checks: build ``layer`` (in a built model), rename it if its
    name is taken, append it. Names are unique over the whole tree (layers inside containers too):
    weights are saved by name. A layer refused here keeps its name, and a layer built before is
    never renamed (``refuse_renaming_built``)."""
    names_in_model = {existing.name for existing in iter_layers(model.layers)}
    renames = planned_renames([layer], used=set(names_in_model))
    built_before = [inner for inner in iter_layers([layer]) if inner.built]
    if model.built:
        build_in_model(model, layer, model.output_shape, reset=False, remedy="use a new layer")
    refuse_renaming_built(model, renames, names_in_model, built_before)
    for renamed, new_name in renames:
        renamed.name = new_name
    model.layers.append(layer)


def refuse_renaming_built(model, renames, names_in_model, built_before) -> None:
    """``renames``: the (layer, new name) pairs ``Sequential.add`` plans (``planned_renames``).
    A layer among them that was built before ``add`` (``built_before``) and whose name is one of
    the model's (``names_in_model``) is refused: it may belong to another model (shared, as
    ``build_in_model`` allows), whose layer would be renamed too, and weights are saved by name.
    (Duplicates inside the added block itself are renamed: a block that belongs to a model has
    unique names already.)"""
    built_ids = {id(layer) for layer in built_before}
    for layer, new_name in renames:
        if id(layer) in built_ids and layer.name in names_in_model:
            raise ValueError(
                f"{model.name}: the layer {layer.name!r} ({type(layer).__name__}) is built already "
                f"(perhaps in another model) and its name is taken in this model; renaming it to "
                f"{new_name!r} would rename it in the other model too. Create the layer of this model "
                f"called {layer.name!r} with another name (name=...), or rename this one yourself "
                f"(layer.name = ...) if it belongs to no other model")


def build_all(model, reset: bool) -> None:
    """Build the model's layers in order (``build_in_model``). If one fails (a wrong input shape,
    say), the layers this call built are marked unbuilt again, so that building with the right
    shape works: they were never trained, and "built already" must not refuse them."""
    built_before = {id(layer) for layer in iter_layers(model.layers) if layer.built}
    shape = model.input_shape
    try:
        for layer in model.layers:
            shape = build_in_model(model, layer, shape, reset)
    except Exception:
        for layer in iter_layers(model.layers):
            if id(layer) not in built_before or reset:
                layer.built = False
        raise


def build_in_model(model, layer: Layer, input_shape, reset: bool,
                   remedy: str = "use a new layer here, or model.build(input_shape, reset=True) to "
                                 "draw new weights for every layer on purpose") -> tuple:
    """Build ``layer`` for ``input_shape`` with the model's generator and dtype; returns its output
    shape. A layer built already (say trained in another model: ``Sequential(base.layers[:-1] +
    [Dense(5)])``) keeps its weights, as in Keras: the models then share it (its generator becomes
    this model's: the other model's dropout then draws from it too, and a file of the other model
    no longer resumes that run). Built for another input shape or dtype it is an error unless ``reset``
    (building would draw new random weights over its own; casting would change it in the other
    model too)."""
    if layer.built and not reset:
        refuse_rebuilding(layer, input_shape, model.dtype, model.name, remedy)
        layer.set_rng(model.rng)
        return layer.checked_output_shape(input_shape)
    refuse_own_build_signature(model, layer)
    from .gradcheck_contract import params_made_in_init  # (gradcheck imports this module)

    made_in_init = params_made_in_init(layer)  # params __init__ made, which build may drop
    returned = layer.build(input_shape, rng=model.rng, dtype=model.dtype)
    refuse_lost_params(model, layer, made_in_init)
    layer.set_rng(model.rng)
    return checked_build_result(model, layer, input_shape, returned)


def refuse_own_build_signature(model, layer: Layer) -> None:
    """A ``build`` override must take ``build(input_shape, rng=..., dtype=...)`` as ``Layer.build``
    does: the model passes its generator and dtype. Else a TypeError naming the signature and
    the hook to override instead (``init_params``), not "unexpected keyword argument 'rng'"."""
    try:
        signature = inspect.signature(layer.build)
        signature.bind((1,), rng=None, dtype="float32")
    except ValueError:  # no signature to read (a builtin): let build itself say
        return
    except TypeError:
        raise TypeError(
            f"{model.name}: {layer.name} ({type(layer).__name__}).build{signature} cannot be called as "
            f"build(input_shape, rng=..., dtype=...), as a model calls it. Override init_params(self, "
            f"input_shape, rng) instead and return the params as a dict (Layer.build calls it, then "
            f"casts them to the dtype and makes the grads); or write build(self, input_shape, rng=None, "
            f"dtype=\"float32\") and start it with super().build(input_shape, rng, dtype)") from None


def refuse_lost_params(model, layer: Layer, made_in_init: list[str]) -> None:
    """Params created in ``__init__`` without an ``init_params`` and dropped by ``build`` (a raw
    KeyError in forward otherwise): the contract check of check_layer (``params_lost_in_build``),
    run here. A ``build`` of one's own that keeps them is fine."""
    from .gradcheck_contract import params_lost_in_build

    problems = params_lost_in_build(layer, made_in_init)
    if problems:
        raise TypeError(f"{model.name}: {problems[0]}")


def checked_build_result(model, layer: Layer, input_shape, returned) -> tuple[int, ...]:
    """``layer.build``'s result, which must be the output shape of one sample, the tuple of ints
    ``output_shape(input_shape)`` gives; a build override returning None (or another shape) is
    named here, not in the next layer's build."""
    output_shape = layer.checked_output_shape(input_shape)
    is_shape = isinstance(returned, (tuple, list)) and all(is_int(size) for size in returned)
    if not is_shape or tuple(returned) != tuple(output_shape):
        raise TypeError(f"{model.name}: {layer.name} ({type(layer).__name__}).build returned {returned!r}; "
                        f"it must return the shape of one output sample, output_shape(input_shape) = "
                        f"{tuple(output_shape)!r} (end a build override with "
                        f"`return self.output_shape(input_shape)`)")
    return tuple(int(size) for size in output_shape)


def share_generator(model, generator) -> None:
    """``model.rng = generator``: keep ``generator`` as the model's and hand it to every layer,
    containers' inner layers too, so that dropout draws from the generator the file saves."""
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"{model.name}: rng must be a numpy.random.Generator "
                        f"(np.random.default_rng(seed)), got {generator!r}")
    model._rng = generator
    for layer in model.layers:
        layer.set_rng(generator)


@contextmanager
def caches_kept(layers):
    """Run an inference pass without touching the forward caches of ``layers`` (containers' inner
    layers too): each layer's cache dict is put aside, the pass gets empty ones, and the old
    ones come back afterwards, even if the pass raises.

    A manual loop ``forward(x, training=True)`` -> ``predict(x)`` (to log the accuracy) ->
    ``backward(d)`` then gets the gradient of ITS forward (dropout mask, BatchNorm's batch
    statistics), as in PyTorch, where inference records nothing for backward.
    """
    saved = [(layer, layer.cache) for layer in iter_layers(layers)]
    for layer, _ in saved:
        layer.cache = {}
    try:
        yield
    finally:
        for layer, cache in saved:
            layer.cache = cache
