"""Transfer learning helpers: swap a model's head, keep the (frozen) body."""

from __future__ import annotations


def replace_head(model, head):
    """Replace the model's LAST top-level layer by ``head``; returns the removed layer.

    ``head`` (e.g. ``Dense(5, name="fc")``) is built for the output of the layers before it,
    with the model's generator and dtype (``Sequential.add`` on a built model), so it gets fresh
    weights; everything else keeps its weights and ``trainable`` flags. Compile again afterwards
    (a new optimizer: the old one's moments belong to the old head). Typical use::

        model = from_torch(torch_resnet, input_shape=(224, 224, 3))
        replace_head(model, Dense(5, name="fc"))
        model.freeze(up_to="fc")
        model.compile(optimizer=Adam(1e-3), loss="cross_entropy")
    """
    if not model.layers:
        raise ValueError(f"{model.name}: the model has no layers, there is no head to replace")
    if not model.built:
        model.build()
    old = model.layers.pop()
    try:
        model.add(head)
    except Exception:
        model.layers.append(old)  # a head that does not fit leaves the model as it was
        raise
    return old
