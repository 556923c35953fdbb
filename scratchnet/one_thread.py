"""A model is trained by one thread at a time, and nothing else uses it meanwhile.

Every layer keeps its forward's cache (``layer.cache``) for its backward. A ``predict`` run from a
second thread while the first is inside ``fit`` (the Jupyter pattern: training in a background
thread, predicting in the notebook) would overwrite those caches between the training
forward and its backward, and the weights would come out silently wrong. So while ``fit`` or
``train_step`` runs (the model's methods: ``Sequential.fit`` and ``Sequential.train_step`` hold
the mark), the model records the thread that runs it (``training_thread``), and
``fit``, ``train_step``, ``forward``, ``backward``, ``predict``, ``evaluate``, ``save`` and the
inspection functions (activations, gradients: they run the layers) from any OTHER thread are
refused (``refuse_other_threads``). The training thread itself may call them (a callback
that evaluates or saves). Another thread predicts on a copy: ``copy.deepcopy(model)``.
"""

from __future__ import annotations

import contextlib
import threading

OWNER = "_training_thread"  # attribute on the model: (thread ident, thread name) while training


def refuse_other_threads(model, what: str) -> None:
    """Raise RuntimeError if a thread other than the caller is training ``model``."""
    owner = model.__dict__.get(OWNER)
    if owner is not None and owner[0] != threading.get_ident():
        raise RuntimeError(_refusal(model, what, owner))


def _refusal(model, what: str, owner) -> str:
    start = f"{model.name} is being trained by another thread ({owner[1]}); {what} from this thread"
    if what == "save":  # no cache involved: the weights may be half updated
        return (f"{start} could write half-updated weights. Save from a callback of that fit "
                f"(e.g. callbacks.ModelCheckpoint), or after fit returns")
    return (f"{start} would overwrite the forward caches that training needs. Use a copy here "
            f"(copy.deepcopy(model)), or wait until fit returns")


@contextlib.contextmanager
def training_thread(model, what: str):
    """Mark ``model`` as trained by the calling thread while the block runs (``fit``,
    ``train_step``); nested calls from the same thread (fit -> train_step, a callback) pass.

    The mark is claimed in one step, ``dict.setdefault`` (atomic under the GIL): of two threads
    starting at once, exactly one gets it, and only the thread that set it removes it."""
    thread = threading.current_thread()
    mine = (thread.ident, thread.name)
    holder = model.__dict__.setdefault(OWNER, mine)
    if holder is not mine:
        if holder[0] != thread.ident:
            raise RuntimeError(_refusal(model, what, holder))  # another thread holds it
        yield  # our own outer fit or train_step holds it
        return
    try:
        yield
    finally:
        model.__dict__.pop(OWNER, None)
