"""A model is trained by one thread at a time, and no other thread uses it meanwhile.

Every layer keeps its forward's cache (``layer.cache``) for its backward. A ``predict`` run from a
second thread while the first is inside ``fit`` (the Jupyter pattern: training in a background
thread, predicting in the notebook) would overwrite those caches between the training
forward and its backward, and the weights would come out silently wrong.

So while ``Sequential.fit`` or ``Sequential.train_step`` runs, the model carries a MARK, the
attribute ``model._training_thread`` = (ident, name) of the thread running it (set and removed
by ``training_thread()``; never pickled). ``refuse_other_threads()``, called first in forward,
backward, predict, evaluate, the inspection functions (activations, gradients), fit,
train_step, build, compile, set_weights, load_weights, save and save_weights, raises in any
OTHER thread while the mark is there. The training thread itself may call them (a callback
that evaluates or saves a checkpoint).

Another thread may look at a copy, ``copy.deepcopy(model)``: taken in the middle of a step it
may hold some layers updated and others not, fine for a look, not for saving.
"""

from __future__ import annotations

import contextlib
import threading

MARK = "_training_thread"  # attribute on the model: (thread ident, thread name) while training


def refuse_other_threads(model, what: str) -> None:
    """Raise RuntimeError if a thread other than the caller is training ``model``."""
    owner = model.__dict__.get(MARK)
    if owner is not None and owner[0] != threading.get_ident():
        raise RuntimeError(_refusal(model, what, owner))


def _refusal(model, what: str, owner) -> str:
    start = f"{model.name} is being trained by another thread ({owner[1]}); {what} from this thread"
    if what in ("save", "save_weights"):  # no cache involved: the weights may be half updated
        return (f"{start} could write half-updated weights. Save from a callback of that fit "
                f"(e.g. callbacks.ModelCheckpoint), or after fit returns")
    if what in ("build", "compile", "set_weights", "load_weights"):
        return f"{start} would change the model under the running fit. Wait until fit returns"
    if what == "backward":
        return (f"{start} would use up the forward caches that training needs. Wait until fit "
                f"returns")
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
    holder = model.__dict__.setdefault(MARK, mine)
    if holder is not mine:  # `is`: the very tuple we offered is there only if we set the mark
        if holder[0] != thread.ident:
            raise RuntimeError(_refusal(model, what, holder))  # another thread holds it
        yield  # our own outer fit or train_step holds it
        return
    try:
        yield
    finally:
        model.__dict__.pop(MARK, None)
