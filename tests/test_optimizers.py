"""Adam, AdamW and SGD: hand-worked steps, per-layer state, schedules, clipping, settable lr, PyTorch."""

import math

import numpy as np
import pytest

import scratchnet as sn
from scratchnet.layers import Dense
from scratchnet.layers.base import Layer
from scratchnet.optimizers import (
    SGD,
    Adam,
    AdamW,
    ConstantLR,
    CosineAnnealing,
    CosineDecay,
    ExponentialDecay,
    StepDecay,
    get_optimizer,
)


def one_param_layer(values):
    """A Dense(1) layer without bias whose weight column is ``values`` (float64)."""
    layer = Dense(1, use_bias=False)
    layer.build((len(values),), dtype="float64")
    layer.params["W"][:, 0] = values
    return layer


def test_adam_two_steps_hand_worked():
    layer = one_param_layer([1.0, -2.0])
    adam = Adam(lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8)
    grads = [(0.5, -1.0), (0.1, 0.3)]
    expected = []
    for p, g1, g2 in zip([1.0, -2.0], grads[0], grads[1]):
        # step 1: m = 0.1 g1, v = 0.001 g1^2; bias-corrected m_hat = g1, v_hat = g1^2
        m, v = 0.1 * g1, 0.001 * g1 ** 2
        p = p - 0.1 * (m / 0.1) / (math.sqrt(v / 0.001) + 1e-8)
        # step 2
        m, v = 0.9 * m + 0.1 * g2, 0.999 * v + 0.001 * g2 ** 2
        m_hat, v_hat = m / (1 - 0.9 ** 2), v / (1 - 0.999 ** 2)
        expected.append(p - 0.1 * m_hat / (math.sqrt(v_hat) + 1e-8))
    for g in grads:
        layer.grads["W"][:, 0] = g
        adam.step([layer])
    np.testing.assert_allclose(layer.params["W"][:, 0], expected, rtol=0, atol=1e-12)
    # worked on paper for the first weight: p1 = 1 - 0.1 * 0.5 / 0.5 = 0.9;
    # m = 0.055, v = 0.00025975, m_hat = 0.28947, v_hat = 0.12994, p2 = 0.9 - 0.1 * 0.80304
    assert expected[0] == pytest.approx(0.819696, abs=1e-6)
    assert layer.opt_state["W"]["t"] == 2


def test_sgd_momentum_and_nesterov_hand_worked():
    for nesterov in (False, True):
        layer = one_param_layer([1.0])
        sgd = SGD(lr=0.5, momentum=0.9, nesterov=nesterov)
        layer.grads["W"][0, 0] = 2.0
        sgd.step([layer])   # buf = 2;  step = 2 + 0.9*2 (Nesterov) or 2
        layer.grads["W"][0, 0] = 1.0
        sgd.step([layer])   # buf = 0.9*2 + 1 = 2.8;  step = 1 + 0.9*2.8 or 2.8
        if nesterov:
            expected = 1.0 - 0.5 * (2 + 1.8) - 0.5 * (1 + 0.9 * 2.8)
        else:
            expected = 1.0 - 0.5 * 2 - 0.5 * 2.8
        assert layer.params["W"][0, 0] == pytest.approx(expected, abs=1e-14)


def test_weight_decay_is_added_to_the_gradient():
    layer = one_param_layer([2.0])
    layer.grads["W"][0, 0] = 0.0
    SGD(lr=0.1, weight_decay=0.5).step([layer])  # g = 0 + 0.5 * 2 = 1
    assert layer.params["W"][0, 0] == pytest.approx(1.9, abs=1e-15)


def test_state_is_per_layer_and_per_parameter(rng):
    a, b = Dense(2), Dense(3)
    a.build((4,), rng=rng)
    b.build((2,), rng=rng)
    for layer in (a, b):
        for key in layer.grads:
            layer.grads[key] = np.ones_like(layer.params[key])
    Adam().step([a, b])
    for layer in (a, b):
        assert set(layer.opt_state) == {"W", "b"}
        for key, state in layer.opt_state.items():
            assert state["m"].shape == layer.params[key].shape
            assert state["m"].dtype == np.float32
            assert state["t"] == 1


def test_adam_counts_each_layers_own_steps_across_a_freeze():
    # PyTorch's Adam keeps a step count per parameter: a layer frozen for 3 steps, then unfrozen,
    # takes its FIRST step (t = 1: m_hat = g, v_hat = g^2) and moves by lr * g / |g| = lr * sign(g).
    # The optimizer's step count (t = 4) would move it by 0.1 * 0.29 / 0.5 ~ 0.058 instead.
    frozen, trained = one_param_layer([1.0, -2.0]), one_param_layer([0.5])
    adam = Adam(lr=0.1)
    frozen.grads["W"][:, 0] = (0.5, -1.0)
    trained.grads["W"][:, 0] = (0.3,)
    frozen.trainable = False
    for _ in range(3):
        adam.step([frozen, trained])
    assert frozen.params["W"][:, 0].tolist() == [1.0, -2.0] and frozen.opt_state == {}
    frozen.trainable = True
    adam.step([frozen, trained])
    np.testing.assert_allclose(frozen.params["W"][:, 0], [1.0 - 0.1, -2.0 + 0.1], rtol=0, atol=1e-8)
    assert (frozen.opt_state["W"]["t"], trained.opt_state["W"]["t"], adam.iterations) == (1, 4, 4)


def test_float32_parameters_stay_float32(rng):
    layer = Dense(2)
    layer.build((3,), rng=rng)
    layer.grads = {key: np.ones_like(value) for key, value in layer.params.items()}
    for optimizer in (Adam(weight_decay=0.1), SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.1)):
        optimizer.step([layer])
        assert all(value.dtype == np.float32 for value in layer.params.values())


def test_schedules():
    assert StepDecay(1.0, factor=0.5, every=10)(25) == 0.25
    assert ExponentialDecay(1.0, rate=0.5, decay_steps=2)(4) == pytest.approx(0.25)
    cosine = CosineDecay(1.0, total_steps=100, final=0.1)
    assert cosine(0) == 1.0 and cosine(100) == pytest.approx(0.1) and cosine(500) == pytest.approx(0.1)
    assert cosine(50) == pytest.approx(0.55)
    optimizer = SGD(lr=StepDecay(1.0, factor=0.1, every=1))
    layer = one_param_layer([0.0])
    layer.grads["W"][0, 0] = 1.0
    optimizer.step([layer])
    optimizer.step([layer])  # lr 1.0 then 0.1
    assert layer.params["W"][0, 0] == pytest.approx(-1.1, abs=1e-15)
    assert optimizer.lr == pytest.approx(0.01)


def test_bad_options():
    with pytest.raises(ValueError, match="^Adam: lr must be a finite number > 0, got 0$"):
        Adam(lr=0)
    with pytest.raises(ValueError, match="nesterov=True needs momentum"):
        SGD(0.1, nesterov=True)
    with pytest.raises(ValueError, match="unknown optimizer 'adagrad'"):
        get_optimizer("adagrad")
    with pytest.raises(TypeError, match="lr must be"):
        Adam(lr="fast")


@pytest.mark.torch
@pytest.mark.parametrize("make_pair", [
    lambda torch, p: (Adam(lr=0.01, weight_decay=0.01), torch.optim.Adam(p, lr=0.01, weight_decay=0.01)),
    lambda torch, p: (SGD(0.1, momentum=0.9), torch.optim.SGD(p, lr=0.1, momentum=0.9)),
    lambda torch, p: (SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.001),
                      torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.001)),
])
def test_optimizers_match_torch(make_pair, rng):
    torch = pytest.importorskip("torch")
    layer = Dense(3)
    layer.build((4,), rng=rng, dtype="float64")
    layer.params["b"][...] = rng.normal(size=3)
    torch_params = [torch.tensor(layer.params[key].copy(), requires_grad=True) for key in ("W", "b")]
    ours, theirs = make_pair(torch, torch_params)
    for _ in range(5):
        for key, torch_param in zip(("W", "b"), torch_params):
            grad = rng.normal(size=layer.params[key].shape)
            layer.grads[key] = grad
            torch_param.grad = torch.tensor(grad)
        ours.step([layer])
        theirs.step()
    for key, torch_param in zip(("W", "b"), torch_params):
        np.testing.assert_allclose(layer.params[key], torch_param.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_adamw_one_step_hand_worked():
    layer = one_param_layer([1.0, -2.0])
    layer.grads["W"] = np.array([[0.5], [0.5]])
    AdamW(lr=0.1, weight_decay=0.5).step([layer])
    # p (1 - 0.1 * 0.5) = 0.95 p; first Adam step moves by lr * g / (|g| + eps) = 0.1 sign(g)
    expected = np.array([0.95 - 0.1 * 0.5 / (0.5 + 1e-8), -1.9 - 0.1 * 0.5 / (0.5 + 1e-8)])
    np.testing.assert_allclose(layer.params["W"][:, 0], expected, rtol=0, atol=1e-15)


def test_clipnorm_hand_worked_and_only_when_above():
    layer = one_param_layer([0.0, 0.0])
    layer.grads["W"] = np.array([[3.0], [4.0]])  # global norm 5
    SGD(1.0, clipnorm=1.0).step([layer])
    np.testing.assert_allclose(layer.params["W"][:, 0], [-3 / (5 + 1e-6), -4 / (5 + 1e-6)], rtol=1e-15)
    np.testing.assert_array_equal(layer.grads["W"][:, 0], [3.0, 4.0])  # the layer's gradients are left alone
    layer = one_param_layer([0.0, 0.0])
    layer.grads["W"] = np.array([[3.0], [4.0]])
    SGD(1.0, clipnorm=10.0).step([layer])
    np.testing.assert_array_equal(layer.params["W"][:, 0], [-3.0, -4.0])


class Box(Layer):
    """A minimal container (no params of its own): the optimizer must find the layer inside."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def sublayers(self):
        return [self.inner]


def _three_layers(rng):
    """Two Dense layers, the second inside a container, and a frozen third one (float64)."""
    first, second, frozen = sn.layers.Dense(3), sn.layers.Dense(3), sn.layers.Dense(3)
    for layer in (first, second, frozen):
        layer.build((3,), rng=rng, dtype="float64")
    frozen.trainable = False
    return [first, Box(second), frozen], [first, second]


@pytest.mark.torch
@pytest.mark.parametrize("make_pair, clip", [
    (lambda torch, p: (AdamW(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1),
                       torch.optim.AdamW(p, lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)), None),
    (lambda torch, p: (AdamW(lr=CosineAnnealing(0.02, T_max=20), clipnorm=0.7),
                       torch.optim.AdamW(p, lr=0.02)), 0.7),
    (lambda torch, p: (SGD(0.1, momentum=0.9, weight_decay=5e-4, clipnorm=1.5),
                       torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=5e-4)), 1.5),
    (lambda torch, p: (Adam(lr=0.01, clipnorm=0.5), torch.optim.Adam(p, lr=0.01)), 0.5),
])
def test_twenty_steps_match_torch_with_clipping_over_trainable_layers(make_pair, clip, rng):
    torch = pytest.importorskip("torch")
    layers, trainable = _three_layers(rng)
    frozen_before = {key: value.copy() for key, value in layers[2].params.items()}
    pairs = [(layer, key) for layer in trainable for key in ("W", "b")]
    torch_params = [torch.tensor(layer.params[key].copy(), requires_grad=True) for layer, key in pairs]
    ours, theirs = make_pair(torch, torch_params)
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(theirs, T_max=20)
                 if isinstance(ours.schedule, CosineAnnealing) else None)
    clipped = 0
    for _ in range(20):
        scale = rng.uniform(0.02, 0.6)  # some steps above the clip norm, some below
        for (layer, key), torch_param in zip(pairs, torch_params):
            grad = scale * rng.normal(size=layer.params[key].shape)
            layer.grads[key] = grad
            torch_param.grad = torch.tensor(grad)
        for key in ("W", "b"):
            layers[2].grads[key] = 100 * rng.normal(size=layers[2].params[key].shape)  # ignored: frozen
        if clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(torch_params, clip)
            clipped += bool(norm > clip)
        ours.step(layers)
        theirs.step()
        if scheduler is not None:
            scheduler.step()
    for (layer, key), torch_param in zip(pairs, torch_params):
        np.testing.assert_allclose(layer.params[key], torch_param.detach().numpy(), rtol=1e-12, atol=1e-14)
    for key, value in frozen_before.items():
        np.testing.assert_array_equal(layers[2].params[key], value)
    assert clip is None or 0 < clipped < 20


def test_lr_is_readable_and_settable_after_compile_and_load(tmp_path):
    model = sn.Sequential([sn.layers.Dense(2)], input_shape=(3,), seed=0)
    model.compile(optimizer=SGD(lr=CosineDecay(0.5, total_steps=10)), loss="cross_entropy")
    assert model.optimizer.lr == 0.5
    model.optimizer.iterations = 5
    assert model.optimizer.lr == pytest.approx(0.25)
    model.optimizer.lr = 1e-3  # replaces the schedule with a constant
    assert isinstance(model.optimizer.schedule, ConstantLR) and model.optimizer.lr == 1e-3
    model.fit(np.ones((4, 3), dtype="float32"), np.array([0, 1, 0, 1]), epochs=1, batch_size=4, verbose=0)
    weights = model.layers[0].params["W"].copy()
    model.save(tmp_path / "m.sn")
    loaded = sn.load(tmp_path / "m.sn")
    assert loaded.optimizer.lr == 1e-3 and loaded.optimizer.iterations == 6
    loaded.optimizer.lr = 0.25
    assert loaded.optimizer.lr == 0.25
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match=f"^SGD.lr: lr must be a finite number > 0, got {bad}$"):
            loaded.optimizer.lr = bad
    with pytest.raises(TypeError, match="SGD.lr: expected a positive number, got 'x'"):
        loaded.optimizer.lr = "x"
    np.testing.assert_array_equal(loaded.layers[0].params["W"], weights)


def test_clipnorm_and_adamw_options_are_checked():
    with pytest.raises(ValueError, match="^AdamW: clipnorm must be a finite number > 0, got 0$"):
        AdamW(clipnorm=0)
    with pytest.raises(ValueError, match="AdamW: betas must be a pair"):
        AdamW(betas=(0.9,))
    assert isinstance(get_optimizer("adamw"), AdamW) and get_optimizer("adamw").weight_decay == 0.01


def test_schedules_and_adamw_survive_the_restricted_loader(tmp_path):
    from scratchnet.schedules import LinearWarmup, ReduceOnPlateau

    x, y = np.random.default_rng(0).random((8, 3)), np.array([0, 1] * 4)
    for schedule in (LinearWarmup(CosineAnnealing(0.1, T_max=4, steps_per_epoch=2), warmup_steps=3),
                     ReduceOnPlateau(0.1, factor=0.5, patience=0, monitor="loss")):
        model = sn.Sequential([sn.layers.Dense(2)], input_shape=(3,), seed=0, dtype="float64")
        model.compile(optimizer=AdamW(lr=schedule, clipnorm=1.0), loss="cross_entropy")
        for _ in range(3):
            history = model.fit(x, y, epochs=1, batch_size=4, verbose=0)  # fit calls on_epoch_end
        model.save(tmp_path / "m.sn")
        loaded = sn.load(tmp_path / "m.sn")
        assert type(loaded.optimizer) is AdamW and loaded.optimizer.clipnorm == 1.0
        assert vars(loaded.optimizer.schedule).keys() == vars(schedule).keys()
        assert loaded.optimizer.lr == model.optimizer.lr and loaded.optimizer.iterations == 6
        model.fit(x, y, epochs=1, batch_size=4, verbose=0)
        loaded.fit(x, y, epochs=1, batch_size=4, verbose=0)
        np.testing.assert_array_equal(loaded.layers[0].params["W"], model.layers[0].params["W"])
        assert ([loaded.optimizer.schedule(step) for step in range(12)]
                == [model.optimizer.schedule(step) for step in range(12)])
    assert history is not None
