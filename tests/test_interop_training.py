"""A scratchnet model and its to_torch twin, trained side by side, stay together (float64, 1e-8)."""

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import interop  # imports without torch: a broken bridge fails here, never skips
from scratchnet import layers as L
from scratchnet.schedules import CosineAnnealing, StepDecay

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.torch, pytest.mark.usefixtures("one_torch_thread")]


STEPS = 20


def small_model(seed=0):
    """Conv, BatchNorm (training mode: batch statistics and running updates), a residual block,
    pooling, a dense head: the parts whose gradients and updates must all agree.

    No bias on a convolution feeding a BatchNorm: the BatchNorm subtracts the mean, so that bias's
    gradient is exactly 0 in exact arithmetic and ~1e-17 of round-off in practice, and Adam divides
    it by its own root mean square: the two frameworks' round-off then walks apart (2e-5 after 3
    steps, measured) although every other number agrees to 1e-15.
    """
    return sn.Sequential([
        L.Conv2D(4, 3, padding="same", use_bias=False), L.BatchNorm(momentum=0.2), L.Activation("relu"),
        L.Residual([L.Conv2D(4, 3, padding="same", use_bias=False), L.BatchNorm(), L.Activation("gelu")]),
        L.MaxPool2D(2, padding="same"), L.Flatten(), L.Dense(10, activation="tanh"), L.Dense(3),
    ], input_shape=(7, 7, 2), seed=seed, dtype="float64").build()


def batches(model, n=8, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(n, *model.input_shape)), rng.integers(0, model.output_shape[-1], size=n))
            for _ in range(STEPS)]


def train_both(model, optimizer, data, torch_side=None):
    """STEPS steps of model.train_step and of the same loop in PyTorch.

    Returns the largest difference of the weights and buffers at the end and of the losses on the way.
    """
    twin = interop.to_torch(model).train()
    torch_opt, scheduler = (torch_side or interop.to_torch_optimizer)(optimizer, twin)
    model.compile(optimizer=optimizer, loss="cross_entropy")
    loss_difference = 0.0
    for x, y in data:
        loss, _ = model.train_step(x, y)
        torch_opt.zero_grad()
        torch_loss = torch.nn.functional.cross_entropy(twin(torch.from_numpy(x)), torch.from_numpy(y))
        torch_loss.backward()
        torch_opt.step()
        if scheduler is not None:
            scheduler.step()
        loss_difference = max(loss_difference, abs(loss - torch_loss.item()))
    ours, theirs = interop.torch_state_dict(model), twin.state_dict()
    return max(float(np.max(np.abs(ours[key] - theirs[key].numpy()))) for key in ours
               if not key.endswith("num_batches_tracked")), loss_difference


@pytest.mark.parametrize("optimizer", [
    lambda: sn.Adam(lr=1e-2, weight_decay=1e-3),
    lambda: sn.AdamW(lr=1e-2, weight_decay=0.05),
    lambda: sn.SGD(lr=CosineAnnealing(0.1, T_max=STEPS // 2, eta_min=1e-3), momentum=0.9, nesterov=True,
                   weight_decay=5e-4),
    lambda: sn.Adam(lr=CosineAnnealing(1e-2, T_max=STEPS)),
    lambda: sn.SGD(lr=StepDecay(0.05, factor=0.5, every=5), momentum=0.5),   # LambdaLR
], ids=["adam_l2", "adamw", "sgd_nesterov_wd_cosine", "adam_cosine", "sgd_step_decay"])
def test_twenty_steps_agree_with_pytorch(optimizer):
    model = small_model()
    before = interop.torch_state_dict(model)
    difference, loss_difference = train_both(model, optimizer(), batches(model))
    assert difference <= 1e-8 and loss_difference <= 1e-8
    after = interop.torch_state_dict(model)
    moved = max(float(np.max(np.abs(value - before[key]))) for key, value in after.items())
    assert moved > 1e-2  # the weights really moved (an agreement of two frozen models proves nothing)


def test_a_different_torch_optimizer_is_detected():
    """The comparison can fail: plain momentum in torch against scratchnet's Nesterov."""
    def wrong(optimizer, twin):
        params = [p for p in twin.parameters() if p.requires_grad]
        return torch.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=False), None

    model = small_model()
    difference, loss_difference = train_both(model, sn.SGD(lr=0.05, momentum=0.9, nesterov=True),
                                             batches(model), wrong)
    assert difference > 1e-6 and loss_difference > 1e-6


def test_frozen_layers_stay_frozen_in_both():
    model = small_model()
    model.freeze(up_to=3)
    frozen = {key: value for key, value in interop.torch_state_dict(model).items() if key[0] in "012"}
    assert max(train_both(model, sn.Adam(lr=1e-2), batches(model))) <= 1e-8
    for key, value in interop.torch_state_dict(model).items():
        if key in frozen:
            np.testing.assert_array_equal(value, frozen[key])


def test_to_torch_optimizer_refusals():
    twin = interop.to_torch(small_model())
    with pytest.raises(ValueError, match="clip_grad_norm_"):
        interop.to_torch_optimizer(sn.Adam(clipnorm=1.0), twin)
    used = sn.Adam()
    used.iterations = 3
    with pytest.raises(ValueError, match="already took 3 steps"):
        interop.to_torch_optimizer(used, twin)
