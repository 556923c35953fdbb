"""Learning-rate schedules: hand-worked values, PyTorch's schedulers value by value, bad input, pickling."""

import math
import pickle

import numpy as np
import pytest

from scratchnet.optimizers import SGD, StepDecay  # the old import path keeps working
from scratchnet.schedules import (
    ConstantLR,
    CosineAnnealing,
    CosineDecay,
    ExponentialDecay,
    LinearWarmup,
    OneCycle,
    ReduceOnPlateau,
)


def test_hand_worked_values():
    assert StepDecay(1.0, factor=0.5, every=10)(25) == 0.25
    assert ExponentialDecay(1.0, rate=0.5, decay_steps=2)(4) == pytest.approx(0.25, abs=1e-15)
    assert CosineDecay(1.0, total_steps=100, final=0.1)(50) == pytest.approx(0.55, abs=1e-15)
    assert CosineAnnealing(1.0, T_max=4)(2) == pytest.approx(0.5, abs=1e-15)
    assert CosineAnnealing(1.0, T_max=4, eta_min=0.2)(4) == pytest.approx(0.2, abs=1e-15)
    # per epoch with 3 steps per epoch: steps 0..2 are epoch 0, steps 6..8 epoch 2
    per_epoch = CosineAnnealing(1.0, T_max=4, steps_per_epoch=3)
    expected = [1.0, 1.0, (1 + math.cos(math.pi / 4)) / 2, 0.5]
    assert [per_epoch(s) for s in (0, 2, 3, 8)] == pytest.approx(expected, abs=1e-15)
    warm = LinearWarmup(2.0, warmup_steps=4)
    assert [warm(s) for s in range(6)] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.0])
    warm_cos = LinearWarmup(CosineAnnealing(1.0, T_max=2), warmup_steps=2, start_factor=0.5)
    assert [warm_cos(s) for s in range(5)] == pytest.approx([0.5, 0.75, 1.0, 0.5, 0.0], abs=1e-15)


def test_optimizer_drives_an_epoch_schedule_by_its_step_count():
    optimizer = SGD(lr=CosineAnnealing(1.0, T_max=2, steps_per_epoch=2))
    rates = []
    for _ in range(5):
        rates.append(optimizer.lr)
        optimizer.step([])
    assert rates == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.0], abs=1e-15)


@pytest.mark.torch
@pytest.mark.parametrize("eta_min", [0.0, 0.01])
def test_cosine_annealing_matches_torch_for_three_periods(eta_min):
    torch = pytest.importorskip("torch")
    param = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([param], lr=0.3)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=7, eta_min=eta_min)
    ours = CosineAnnealing(0.3, T_max=7, eta_min=eta_min)
    for epoch in range(45):  # past T_max the cosine rises again, in both
        assert ours(epoch) == pytest.approx(reference.get_last_lr()[0], rel=1e-12, abs=1e-15), epoch
        opt.step()
        reference.step()


@pytest.mark.torch
@pytest.mark.parametrize("total, pct, div, final_div", [(100, 0.3, 25.0, 1e4), (37, 0.25, 10.0, 100.0),
                                                        (10, 0.5, 5.0, 1e3)])
def test_one_cycle_matches_torch_every_step(total, pct, div, final_div):
    torch = pytest.importorskip("torch")
    param = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    reference = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=total, pct_start=pct,
                                                    div_factor=div, final_div_factor=final_div)
    ours = OneCycle(0.5, total_steps=total, pct_start=pct, div_factor=div, final_div_factor=final_div)
    for step in range(total):
        assert ours(step) == pytest.approx(reference.get_last_lr()[0], rel=1e-12), step
        opt.step()
        reference.step()
    with pytest.raises(ValueError, match="past total_steps"):
        ours(total + 1)


@pytest.mark.torch
def test_linear_warmup_then_cosine_matches_torch_sequential():
    torch = pytest.importorskip("torch")
    param = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([param], lr=0.2)
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, end_factor=1.0, total_iters=5)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=0.001)
    reference = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cosine], milestones=[5])
    ours = LinearWarmup(CosineAnnealing(0.2, T_max=10, eta_min=0.001), warmup_steps=5, start_factor=0.1)
    for step in range(20):
        assert ours(step) == pytest.approx(reference.get_last_lr()[0], rel=1e-12), step
        opt.step()
        reference.step()


@pytest.mark.torch
@pytest.mark.parametrize("mode, cooldown, min_lr, threshold", [
    ("min", 0, 0.0, 1e-4), ("min", 2, 0.004, 1e-4), ("max", 1, 0.0, 1e-4),
    ("min", 0, 0.0, 0.02), ("max", 0, 0.0, 0.02),   # a threshold that decides: values move ~2% an epoch
])
def test_reduce_on_plateau_matches_torch(mode, cooldown, min_lr, threshold):
    torch = pytest.importorskip("torch")
    param = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([param], lr=0.1)
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=mode, factor=0.5, patience=2,
                                                           cooldown=cooldown, min_lr=min_lr,
                                                           threshold=threshold)
    ours = ReduceOnPlateau(0.1, factor=0.5, patience=2, cooldown=cooldown, min_lr=min_lr,
                           monitor="val_acc", mode=mode, threshold=threshold)
    values = np.random.default_rng(0).normal(size=40).cumsum() * 0.1 + 5  # wanders, with plateaus
    values[10:20] = values[10]
    changes = 0
    for epoch, value in enumerate(values):
        before = ours(0)
        ours.on_epoch_end(epoch, {"val_acc": value, "loss": 1.0})
        reference.step(value)
        assert ours(123) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-15), epoch
        changes += ours(0) != before
    assert changes >= 2  # the comparison exercised reductions


def test_reduce_on_plateau_hand_worked_and_errors():
    schedule = ReduceOnPlateau(1.0, factor=0.5, patience=1)
    for epoch, loss in enumerate([3.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0]):
        schedule.on_epoch_end(epoch, {"val_loss": loss})
    assert schedule(0) == 0.25  # reduced after epochs 3 and 6 (two non-improving epochs each)
    # "max", threshold 0.1 (relative, as PyTorch's "rel" mode): 0.52 < 0.5 * 1.1 is no improvement
    by_accuracy = ReduceOnPlateau(1.0, factor=0.5, patience=0, mode="max", monitor="val_acc", threshold=0.1)
    for epoch, accuracy in enumerate([0.5, 0.52, 0.56]):
        by_accuracy.on_epoch_end(epoch, {"val_acc": accuracy})
    assert by_accuracy(0) == 0.5 and by_accuracy.best == 0.56  # reduced once, at 0.52; 0.56 > 0.55
    with pytest.raises(KeyError, match="val_loss.*monitor='loss'"):
        schedule.on_epoch_end(7, {"loss": 1.0})
    with pytest.raises(ValueError, match="^ReduceOnPlateau.on_epoch_end: the step/epoch must be an int >= 0, "
                                         "got -1$"):
        schedule.on_epoch_end(-1, {"val_loss": 1.0})


@pytest.mark.parametrize("schedule", [ConstantLR(0.1), StepDecay(0.1), ExponentialDecay(0.1),
                                      CosineDecay(0.1, 10), CosineAnnealing(0.1, 10, steps_per_epoch=3),
                                      LinearWarmup(0.1, 3), OneCycle(0.1, 10), ReduceOnPlateau(0.1)])
def test_negative_or_fractional_steps_are_errors_and_pickling_keeps_state(schedule):
    name = type(schedule).__name__
    for bad, error in ((-1, ValueError), (2.5, TypeError), (2.0, TypeError), (True, TypeError)):
        hint = r" \(a float: pass int\(\.\.\.\), or compute it with //\)" if bad == 2.0 else ""
        with pytest.raises(error, match=rf"^{name}: the step/epoch must be an int >= 0, got {bad}{hint}$"):
            schedule(bad)
    if isinstance(schedule, ReduceOnPlateau):
        for epoch in range(13):
            schedule.on_epoch_end(epoch, {"val_loss": 1.0})
    copy = pickle.loads(pickle.dumps(schedule))
    assert copy.__dict__.keys() == schedule.__dict__.keys()
    assert [copy(s) for s in range(10)] == [schedule(s) for s in range(10)]


def test_bad_constructor_arguments():
    for make, message in [(lambda: CosineAnnealing(0.1, T_max=0),
                           "^CosineAnnealing: T_max must be an int >= 1, got 0$"),
                          (lambda: CosineAnnealing(-0.1, T_max=3),
                           "^CosineAnnealing: initial must be a finite number > 0, got -0.1$"),
                          (lambda: OneCycle(0.1, 10, pct_start=1.5),
                           r"^OneCycle: pct_start must be a number in \(0, 1\), got 1.5$"),
                          (lambda: LinearWarmup(0.1, 0),
                           "^LinearWarmup: warmup_steps must be an int >= 1, got 0$"),
                          (lambda: ReduceOnPlateau(0.1, factor=1.0),
                           r"^ReduceOnPlateau: factor must be a number in \(0, 1\), got 1.0$"),
                          (lambda: ReduceOnPlateau(0.1, mode="up"), "mode must be 'min' or 'max'"),
                          (lambda: ReduceOnPlateau(0.1, patience=-1),
                           "^ReduceOnPlateau: patience must be an int >= 0"),
                          (lambda: StepDecay(0.1, every=0), "^StepDecay: every must be an int >= 1, got 0$")]:
        with pytest.raises(ValueError, match=message):
            make()
