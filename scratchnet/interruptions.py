"""When training stops in the middle: an epoch cut short, a Ctrl-C during the optimizer step.

``fit`` records the epoch it is in on the model (``model.epoch_in_progress``: the epoch, its
number of batches and the optimizer's step count when it began; cleared when the epoch ends,
saved with the model). A model saved in the middle of an epoch (from ``on_batch_end``, or by
``scratchnet train`` after Ctrl-C) and fitted again starts that epoch over from its first batch:
``warn_interrupted_epoch`` says so, with how many batches it had done. A Ctrl-C that lands inside
the optimizer step is held until the step ends (``finish_step_before_ctrl_c``), so no model is
left with half its layers updated; so are SIGTERM and SIGHUP, which ``scratchnet train`` turns into
the same stop as Ctrl-C (``signals_stop_like_ctrl_c``).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import warnings

from .caller import user_stacklevel

TERMINATING_SIGNALS = ("SIGTERM", "SIGHUP")  # SIGHUP: not on Windows


def signal_numbers(names) -> list:
    """The numbers of the signals ``names`` this system has."""
    return [getattr(signal, name) for name in names if hasattr(signal, name)]


def stops_like_ctrl_c(number) -> bool:
    """Whether signal ``number`` raises KeyboardInterrupt now (Python's Ctrl-C handler, or
    ``signals_stop_like_ctrl_c``'s)."""
    handler = signal.getsignal(number)
    return handler is signal.default_int_handler or getattr(handler, "like_ctrl_c", False)


@contextlib.contextmanager
def finish_step_before_ctrl_c():
    """Hold back a Ctrl-C (SIGINT) until the block ends, then raise KeyboardInterrupt.

    An optimizer step updates the layers one after another: interrupted half way, the model
    would hold updated and old layers (and Adam step counts that disagree) and be saved so.
    Held: every signal that raises KeyboardInterrupt (``stops_like_ctrl_c``): SIGINT under
    Python's own handler, and SIGTERM / SIGHUP inside ``signals_stop_like_ctrl_c``. Only in the
    main thread (signal handlers can only be set there); elsewhere, e.g. under a handler of the
    user's, the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {number: signal.getsignal(number)
            for number in signal_numbers(("SIGINT", *TERMINATING_SIGNALS)) if stops_like_ctrl_c(number)}
    if not held:
        yield
        return
    arrived = []
    for number in held:
        signal.signal(number, lambda number, frame: arrived.append(number))
    try:
        yield
    finally:
        for number, handler in held.items():
            signal.signal(number, handler)
    if arrived:  # now what the first signal would have done: its handler raises KeyboardInterrupt
        held[arrived[0]](arrived[0], None)
        raise KeyboardInterrupt


@contextlib.contextmanager
def signals_stop_like_ctrl_c(names=TERMINATING_SIGNALS):
    """Within the block SIGTERM and SIGHUP raise KeyboardInterrupt, as Ctrl-C does; yields the
    list of the signal numbers received.

    A CI timeout, `timeout 60`, Slurm's time limit and `docker stop` send SIGTERM, closing the
    terminal SIGHUP; by default either ends Python at once, without a word and without saving.
    ``scratchnet train`` uses this (``fit`` does not: a library leaves a program's signals alone).
    Only signals at their default action are taken: ``nohup`` ignores SIGHUP and keeps it so, and
    a handler of the program's own stays. Main thread only; the default comes back at the end.
    """
    received = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def stop(number, frame):
        received.append(number)
        raise KeyboardInterrupt

    stop.like_ctrl_c = True  # held during the optimizer step, as Ctrl-C is
    taken = [number for number in signal_numbers(names) if signal.getsignal(number) is signal.SIG_DFL]
    for number in taken:
        signal.signal(number, stop)
    try:
        yield received
    finally:
        for number in taken:
            signal.signal(number, signal.SIG_DFL)


def warn_interrupted_epoch(model) -> None:
    """Say that an epoch stopped in the middle (a save from on_batch_end, Ctrl-C) starts again."""
    stopped = model.epoch_in_progress
    if not isinstance(stopped, dict):
        return
    batches_done = model.optimizer.iterations - stopped["iterations_at_start"]
    after = (f", after batch {batches_done} of {stopped['batches']}"
             if 0 <= batches_done <= stopped["batches"] else "")  # unknown with a new optimizer
    warnings.warn(f"{model.name} stopped in the middle of epoch {stopped['epoch'] + 1}{after}; fit "
                  f"starts that epoch again from its first batch (the batches already trained stay in "
                  f"the weights and the optimizer state, and the shuffling generator has moved on), so "
                  f"the result differs from a run never interrupted", UserWarning,
                  stacklevel=user_stacklevel())
