"""When training stops in the middle: an epoch cut short, a Ctrl-C during the optimizer step.

``fit`` records the epoch it is in on the model (``model.epoch_in_progress``: the epoch, its
number of batches and the optimizer's step count when it began; cleared when the epoch ends,
saved with the model). A model saved in the middle of an epoch (from ``on_batch_end``, or by
``scratchnet train`` after Ctrl-C) and fitted again starts that epoch over from its first batch:
``warn_interrupted_epoch`` says so, with how many batches it had done. A Ctrl-C that lands inside
the optimizer step is held until the step ends (``finish_step_before_ctrl_c``), so no model is
left with half its layers updated.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import warnings

from .caller import user_stacklevel


@contextlib.contextmanager
def finish_step_before_ctrl_c():
    """Hold back a Ctrl-C (SIGINT) until the block ends, then raise KeyboardInterrupt.

    An optimizer step updates the layers one after another: interrupted half way, the model
    would hold updated and old layers (and Adam step counts that disagree) and be saved so.
    Only where Python's own handler is in place, in the main thread (signal handlers can only be
    set there); elsewhere, e.g. under a handler of the user's, the block runs as it is.
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    pressed = []
    signal.signal(signal.SIGINT, lambda number, frame: pressed.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if pressed:
        raise KeyboardInterrupt


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
