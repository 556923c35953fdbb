"""A model is trained by one thread at a time, and nothing else uses it meanwhile.

Every layer keeps its forward's cache (``layer.cache``) for its backward. A ``predict`` run from a
second thread while the first is inside ``fit`` (the Jupyter pattern: training in a background
thread, predicting in the notebook) would overwrite those caches between the training
forward and its backward, and the weights would come out silently wrong. So while ``fit`` or
``train_step`` runs, the model records the thread that runs it (``training_thread``), and
``fit``, ``train_step``, ``forward``, ``predict``, ``evaluate`` and ``save`` from any OTHER thread
are refused (``refuse_other_threads``). The training thread itself may call them (a callback
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
        raise RuntimeError(f"{model.name} is being trained by another thread ({owner[1]}); {what} from "
                           f"this thread would overwrite the forward caches that training needs. Use a "
                           f"copy here (copy.deepcopy(model)), or wait until fit returns")


@contextlib.contextmanager
def training_thread(model, what: str):
    """Mark ``model`` as trained by the calling thread while the block runs (``fit``,
    ``train_step``); nested calls from the same thread (fit -> train_step, a callback) pass."""
    refuse_other_threads(model, what)
    if OWNER in model.__dict__:  # already ours: an outer fit or train_step owns the mark
        yield
        return
    thread = threading.current_thread()
    setattr(model, OWNER, (thread.ident, thread.name))
    try:
        yield
    finally:
        model.__dict__.pop(OWNER, None)
