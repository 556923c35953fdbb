"""Learning-rate schedules: plain picklable objects, ``schedule(step) -> lr``.

The optimizer asks ``schedule(optimizer.iterations)`` before every update, where
``iterations`` counts the updates already made (0 for the first one). A schedule holds no
generator, lambda or file, so it is saved with the model and a loaded model resumes with the
same learning rates. Epoch-based schedules take ``steps_per_epoch`` and use
``epoch = step // steps_per_epoch``.

    ConstantLR(lr)                     lr
    StepDecay(initial, factor, every)  initial * factor ** (step // every)
    ExponentialDecay(initial, rate, decay_steps)
                                       initial * rate ** (step / decay_steps)
    CosineDecay(initial, total_steps, final)
                                       final + (initial - final) (1 + cos(pi min(step, T) / T)) / 2
    CosineAnnealing(initial, T_max, eta_min, steps_per_epoch=None)
                                       as torch.optim.lr_scheduler.CosineAnnealingLR
    LinearWarmup(after, warmup_steps, start_factor)
                                       a straight ramp, then another schedule (restarted at 0)
    OneCycle(max_lr, total_steps, pct_start, div_factor, final_div_factor)
                                       as torch.optim.lr_scheduler.OneCycleLR (anneal "cos")
    ReduceOnPlateau(initial, factor, patience, min_lr, monitor)
                                       as torch.optim.lr_scheduler.ReduceLROnPlateau, driven
                                       by ``on_epoch_end(epoch, logs)``

Every one derives from :class:`Schedule`; a schedule of your own does too, so that
``scratchnet.load(path, allowed_classes=[MySchedule])`` takes it.
"""

from __future__ import annotations

import math

from .option_checks import check_count, check_monitor, check_real


class Schedule:
    """Base class of every learning-rate schedule. A schedule provides:

    * ``__call__(self, step) -> float``: the learning rate for update ``step`` (0 for the first
      one), the same number every time for the same step (a loaded model resumes with it);
    * only plain attributes (numbers, strings, other schedules): no generator, lambda or file,
      so it pickles with the model;
    * optionally ``on_epoch_end(epoch, logs)`` and ``watched_values()`` if it reads logged
      values (as ReduceOnPlateau), called by ``fit`` like a callback's.

    ``scratchnet.load(path, allowed_classes=[...])`` takes subclasses of this class (and of
    Layer, Loss, Optimizer, Callback) only: any other class with a ``__call__`` is refused.
    """

    def __call__(self, step: int) -> float:
        raise NotImplementedError(f"{type(self).__name__} must define __call__(self, step) -> learning rate")


def check_step(step, who: str) -> int:
    """A step (or epoch) count: an int >= 0 (``option_checks.check_count``)."""
    return check_count(step, "the step/epoch", who, 0)


def _count(value, what: str, who: str) -> int:
    """An int >= 1 (``option_checks.check_count``)."""
    return check_count(value, what, who, 1)


class ConstantLR(Schedule):
    """lr (what a plain number becomes, and what ``optimizer.lr = value`` installs)."""

    def __init__(self, lr: float):
        self.lr = check_real(lr, "lr", "ConstantLR", above=0)

    def __call__(self, step: int) -> float:
        check_step(step, "ConstantLR")
        return self.lr

    def __repr__(self):
        return f"{self.lr:g}"


class StepDecay(Schedule):
    """lr = initial * factor ** (step // every)."""

    def __init__(self, initial: float, factor: float = 0.5, every: int = 1000):
        self.initial = check_real(initial, "initial", "StepDecay", above=0)
        self.factor = check_real(factor, "factor", "StepDecay", above=0)  # 0: lr 0 after `every` steps
        self.every = _count(every, "every", "StepDecay")

    def __call__(self, step):
        return self.initial * self.factor ** (check_step(step, "StepDecay") // self.every)

    def __repr__(self):
        return f"StepDecay({self.initial:g}, factor={self.factor:g}, every={self.every})"


class ExponentialDecay(Schedule):
    """lr = initial * rate ** (step / decay_steps)."""

    def __init__(self, initial: float, rate: float = 0.96, decay_steps: int = 1000):
        self.initial = check_real(initial, "initial", "ExponentialDecay", above=0)
        # rate 0: lr 0 after one step; rate < 0: complex learning rates
        self.rate = check_real(rate, "rate", "ExponentialDecay", above=0)
        self.decay_steps = _count(decay_steps, "decay_steps", "ExponentialDecay")

    def __call__(self, step):
        return self.initial * self.rate ** (check_step(step, "ExponentialDecay") / self.decay_steps)

    def __repr__(self):
        return f"ExponentialDecay({self.initial:g}, rate={self.rate:g}, decay_steps={self.decay_steps})"


class CosineDecay(Schedule):
    """lr = final + (initial - final) * (1 + cos(pi * min(step, total) / total)) / 2 (then flat)."""

    def __init__(self, initial: float, total_steps: int, final: float = 0.0):
        self.initial = check_real(initial, "initial", "CosineDecay", above=0)
        self.total_steps = _count(total_steps, "total_steps", "CosineDecay")
        self.final = check_real(final, "final", "CosineDecay", least=0)

    def __call__(self, step):
        progress = min(check_step(step, "CosineDecay"), self.total_steps) / self.total_steps
        return self.final + (self.initial - self.final) * 0.5 * (1 + math.cos(math.pi * progress))

    def __repr__(self):
        return f"CosineDecay({self.initial:g}, total_steps={self.total_steps}, final={self.final:g})"


class CosineAnnealing(Schedule):
    """torch.optim.lr_scheduler.CosineAnnealingLR, in closed form.

        t  = step                      (steps_per_epoch=None: annealed per optimizer step)
        t  = step // steps_per_epoch   (annealed per epoch, driven by the step count)
        lr = eta_min + (initial - eta_min) * (1 + cos(pi * t / T_max)) / 2

    Like torch's, it does not stop at T_max: past it the cosine rises again (period 2 T_max).
    """

    def __init__(self, initial: float, T_max: int, eta_min: float = 0.0, steps_per_epoch: int | None = None):
        self.initial = check_real(initial, "initial", "CosineAnnealing", above=0)
        self.T_max = _count(T_max, "T_max", "CosineAnnealing")
        self.eta_min = check_real(eta_min, "eta_min", "CosineAnnealing", least=0)
        self.steps_per_epoch = None if steps_per_epoch is None else _count(
            steps_per_epoch, "steps_per_epoch", "CosineAnnealing")

    def __call__(self, step):
        t = check_step(step, "CosineAnnealing")
        if self.steps_per_epoch:
            t //= self.steps_per_epoch
        return self.eta_min + (self.initial - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2

    def __repr__(self):
        return (f"CosineAnnealing({self.initial:g}, T_max={self.T_max}, eta_min={self.eta_min:g}, "
                f"steps_per_epoch={self.steps_per_epoch})")


class LinearWarmup(Schedule):
    """A linear ramp over ``warmup_steps`` steps, then ``after`` (which starts again at its step 0).

        step < W :  lr = after(0) * (start_factor + (1 - start_factor) * step / W)
        step >= W:  lr = after(step - W)

    Equals torch's ``SequentialLR([LinearLR(start_factor, total_iters=W), after], milestones=[W])``.
    ``after`` may be a number (a constant learning rate after the ramp).
    With the default ``start_factor=0`` the first step's learning rate is exactly 0: that step
    leaves the weights unchanged (its gradient still enters momentum, Adam's m and v). torch's
    LinearLR refuses start_factor=0 (it asks 0 < start_factor <= 1); pass e.g. 1 / warmup_steps
    for a first step that moves.
    """

    def __init__(self, after, warmup_steps: int, start_factor: float = 0.0):
        if not callable(after):  # a constant rate after the ramp, checked under its own name here
            after = ConstantLR(check_real(after, "after", "LinearWarmup", above=0))
        self.after = after
        self.warmup_steps = _count(warmup_steps, "warmup_steps", "LinearWarmup")
        self.start_factor = check_real(start_factor, "start_factor", "LinearWarmup", least=0, most=1)

    def __call__(self, step):
        step = check_step(step, "LinearWarmup")
        if step >= self.warmup_steps:
            return self.after(step - self.warmup_steps)
        fraction = self.start_factor + (1 - self.start_factor) * step / self.warmup_steps
        return self.after(0) * fraction

    def __repr__(self):
        return (f"LinearWarmup({self.after!r}, warmup_steps={self.warmup_steps}, "
                f"start_factor={self.start_factor:g})")


class OneCycle(Schedule):
    """torch.optim.lr_scheduler.OneCycleLR (anneal_strategy="cos", two phases), learning rate only.

        start = max_lr / div_factor,  end = start / final_div_factor
        phase 1: steps 0 .. P = pct_start * total - 1      start -> max_lr
        phase 2: steps P .. total - 1                      max_lr -> end
        cos anneal from a to b at fraction f:  b + (a - b) * (1 + cos(pi f)) / 2

    Asking for a step >= total_steps + 1 is an error (as torch); momentum is not cycled.
    """

    def __init__(self, max_lr: float, total_steps: int, pct_start: float = 0.3,
                 div_factor: float = 25.0, final_div_factor: float = 1e4):
        self.max_lr = check_real(max_lr, "max_lr", "OneCycle", above=0)
        self.total_steps = _count(total_steps, "total_steps", "OneCycle")
        self.pct_start = check_real(pct_start, "pct_start", "OneCycle", above=0, below=1)
        self.div_factor = check_real(div_factor, "div_factor", "OneCycle", above=0)
        self.final_div_factor = check_real(final_div_factor, "final_div_factor", "OneCycle", above=0)
        self._check_warm_up_has_length()

    def _check_warm_up_has_length(self):
        """Phase 1 ends at step P = pct_start * total - 1; P = 0 makes step 0's fraction 0 / 0."""
        if float(self.pct_start * self.total_steps) != 1:
            return
        raise ValueError(f"OneCycle: pct_start * total_steps = {self.pct_start:g} * {self.total_steps} = 1 "
                         f"gives the warm-up phase no length (it would end at step pct_start * "
                         f"total_steps - 1 = 0, and its fraction step / 0 at step 0 is 0 / 0; torch's "
                         f"OneCycleLR raises ZeroDivisionError there); make pct_start larger than "
                         f"1 / total_steps = {1 / self.total_steps:g}, or total_steps larger")

    @staticmethod
    def _anneal(start, end, fraction):
        return end + (start - end) / 2.0 * (math.cos(math.pi * fraction) + 1)

    def __call__(self, step):
        step = check_step(step, "OneCycle")
        if step > self.total_steps:
            raise ValueError(f"OneCycle: step {step} is past total_steps={self.total_steps}")
        initial = self.max_lr / self.div_factor
        final = initial / self.final_div_factor
        peak = float(self.pct_start * self.total_steps) - 1   # torch's end_step of phase 1
        if step <= peak:
            return self._anneal(initial, self.max_lr, step / peak)
        return self._anneal(self.max_lr, final, (step - peak) / (self.total_steps - 1 - peak))

    def __repr__(self):
        return (f"OneCycle({self.max_lr:g}, total_steps={self.total_steps}, pct_start={self.pct_start:g}, "
                f"div_factor={self.div_factor:g}, final_div_factor={self.final_div_factor:g})")


class ReduceOnPlateau(Schedule):
    """Multiply the learning rate by ``factor`` when ``logs[monitor]`` stops improving.

    As torch.optim.lr_scheduler.ReduceLROnPlateau (threshold_mode "rel"): after each epoch the
    training loop calls ``on_epoch_end(epoch, logs)``; with mode "min" a value is better when
        value < best * (1 - threshold)        ("max": value > best * (1 + threshold))
    After more than ``patience`` epochs without improvement:
        lr = max(lr * factor, min_lr)         (changes smaller than 1e-8 are ignored)
    followed by ``cooldown`` epochs in which bad epochs are not counted.
    ``schedule(step)`` returns the current learning rate whatever the step.
    """

    def __init__(self, initial: float, factor: float = 0.1, patience: int = 10, min_lr: float = 0.0,
                 monitor: str = "val_loss", mode: str = "min", threshold: float = 1e-4, cooldown: int = 0):
        self.lr = check_real(initial, "initial", "ReduceOnPlateau", above=0)
        self.factor = check_real(factor, "factor", "ReduceOnPlateau", above=0, below=1)
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceOnPlateau: mode must be 'min' or 'max', got {mode!r}")
        self.mode, self.monitor = mode, check_monitor(monitor, "ReduceOnPlateau")
        self.patience = check_count(patience, "patience", "ReduceOnPlateau", 0)
        self.cooldown = check_count(cooldown, "cooldown", "ReduceOnPlateau", 0)
        self.min_lr = check_real(min_lr, "min_lr", "ReduceOnPlateau", least=0)
        self.threshold = check_real(threshold, "threshold", "ReduceOnPlateau", least=0)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = -1

    def __call__(self, step):
        check_step(step, "ReduceOnPlateau")
        return self.lr

    def watched_values(self) -> list[tuple[str, str]]:
        """(name, how it is watched): what fit checks it will log, before the first batch."""
        return [(self.monitor, f"watches monitor={self.monitor!r}")]

    def _is_better(self, value):
        if self.mode == "min":
            return value < self.best * (1 - self.threshold)
        return value > self.best * (1 + self.threshold)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        """Record the epoch's ``logs[monitor]``; reduce the rate after ``patience`` bad epochs."""
        epoch = check_step(epoch, "ReduceOnPlateau.on_epoch_end")
        if self.monitor not in logs:
            raise KeyError(f"ReduceOnPlateau: monitor {self.monitor!r} is not in the epoch's logs "
                           f"(keys: {sorted(logs)}); pass validation data or monitor='loss'")
        value = float(logs[self.monitor])
        self.last_epoch = epoch
        if self._is_better(value):
            self.best, self.num_bad_epochs = value, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            new_lr = max(self.lr * self.factor, self.min_lr)
            if self.lr - new_lr > 1e-8:
                self.lr = new_lr
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0

    def __repr__(self):
        return (f"ReduceOnPlateau(lr={self.lr:g}, factor={self.factor:g}, patience={self.patience}, "
                f"min_lr={self.min_lr:g}, monitor={self.monitor!r})")


__all__ = ["ConstantLR", "StepDecay", "ExponentialDecay", "CosineDecay", "CosineAnnealing",
           "LinearWarmup", "OneCycle", "ReduceOnPlateau", "check_step"]
