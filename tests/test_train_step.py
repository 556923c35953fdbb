"""Sequential.train_step releases every forward cache during the backward (memory), without
changing what training computes; model.backward keeps the caches unless asked."""

import numpy as np
import pytest

import scratchnet as sn
from scratchnet.interpret import grad_cam
from scratchnet.layers import (
    Activation,
    BatchNorm,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    Parallel,
    Residual,
)
from scratchnet.layers.base import iter_layers


def residual_cnn(seed=0, dtype="float32"):
    """Conv, BatchNorm, a Residual block with a projection shortcut, pooling, dense."""
    block = Residual([Conv2D(6, 3, padding="same"), BatchNorm(), Activation("relu"),
                      Conv2D(6, 3, padding="same")], shortcut=Conv2D(6, 1))
    model = sn.Sequential([Conv2D(4, 3, padding="same"), BatchNorm(), Activation("relu"), block,
                           MaxPool2D(2), GlobalAvgPool2D(), Dense(3)],
                          input_shape=(8, 8, 2), seed=seed, dtype=dtype)
    return model.compile(sn.Adam(lr=1e-2), "cross_entropy")


def wide_parallel_cnn(seed=0, dtype="float32"):
    """16-channel 3x3 convolutions (backend "auto" runs Winograd, which caches its V chunks) in
    a Parallel block whose branches are added, then a stride-2 im2col convolution."""
    branches = Parallel([[Conv2D(16, 3, padding="same", backend="auto"), BatchNorm(), Activation("relu")],
                         [Conv2D(16, 1, backend="auto")]], merge="add")
    layers = [Conv2D(16, 3, padding="same", backend="auto"), Activation("relu"), branches,
              Conv2D(8, 3, stride=2, padding="same", backend="auto"), GlobalAvgPool2D(), Dense(3)]
    model = sn.Sequential(layers, input_shape=(8, 8, 2), seed=seed, dtype=dtype)
    return model.compile(sn.Adam(lr=1e-2), "cross_entropy")


def batch(seed=1, n=6):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 8, 8, 2)).astype("float32"), rng.integers(0, 3, n)


def old_train_step(model, x, y):
    """The step before caches were released: the same forward, loss, backward and update."""
    logits = model.forward(x, training=True)
    loss = model.loss.forward(logits, y)
    model.backward(model.loss.backward(), input_gradient=False)
    model.optimizer.step(model.layers)
    return loss, logits


def test_train_step_leaves_no_forward_cache_behind():
    model = residual_cnn()
    x, y = batch()
    model.train_step(x, y)
    held = {layer.name: sorted(layer.cache) for layer in iter_layers(model.layers) if layer.cache}
    assert held == {}
    assert model.loss.cache == {}


@pytest.mark.parametrize("build", [residual_cnn, wide_parallel_cnn])
def test_releasing_caches_changes_no_number_of_training(build):
    released, kept = build(seed=3), build(seed=3)
    for step in range(3):
        x, y = batch(seed=step)
        loss_released, logits_released = released.train_step(x, y)
        loss_kept, logits_kept = old_train_step(kept, x, y)
        assert loss_released == loss_kept
        np.testing.assert_array_equal(logits_released, logits_kept)
    for name, value in kept.get_weights().items():  # parameters and running statistics
        np.testing.assert_array_equal(released.get_weights()[name], value, err_msg=name)
    assert any(layer.cache for layer in iter_layers(kept.layers))  # the old way kept them


def test_model_backward_keeps_the_caches_unless_asked():
    model = residual_cnn()
    x, y = batch()
    logits = model.forward(x, training=True)
    model.loss.forward(logits, y)
    dlogits = model.loss.backward()
    first = model.backward(dlogits)
    assert all(layer.cache for layer in model.layers)
    np.testing.assert_array_equal(model.backward(dlogits), first)  # twice: same answer
    model.backward(dlogits, release_caches=True)
    assert not any(layer.cache for layer in iter_layers(model.layers))
    with pytest.raises(RuntimeError, match="backward found no forward cache"):
        model.backward(dlogits)


def test_fit_evaluate_and_grad_cam_after_training_steps():
    model = residual_cnn()
    x, y = batch(n=12)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert not any(layer.cache for layer in iter_layers(model.layers))
    assert np.isfinite(model.evaluate(x, y)["loss"])
    maps = grad_cam(model, x[:2], layer=0)  # runs its own forward and backward
    assert maps.shape[:3] == (2, 8, 8) and np.all(np.isfinite(maps))


def test_a_non_finite_loss_still_restores_the_running_statistics():
    model = residual_cnn()
    x, y = batch()
    model.train_step(x, y)
    before = model.get_weights()
    running_mean = model.layers[1].buffers["mean"]
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(sn.NonFiniteLossError):
        model.train_step(bad, y)
    assert model.layers[1].buffers["mean"] is running_mean  # restored in place
    for name, value in before.items():
        np.testing.assert_array_equal(model.get_weights()[name], value, err_msg=name)


def test_a_dense_model_steps_like_before():
    released, kept = (sn.Sequential([Flatten(), Dense(5, activation="relu"), Dense(2)],
                                    input_shape=(8, 8, 2), seed=4).compile(sn.Adam(1e-2), "cross_entropy")
                      for _ in range(2))
    x, y = batch()
    y = y % 2
    for _ in range(2):
        assert released.train_step(x, y)[0] == old_train_step(kept, x, y)[0]
    for name, value in kept.get_weights().items():
        np.testing.assert_array_equal(released.get_weights()[name], value)


def test_training_steps_do_not_page_fault_their_caches_back_in():
    # train_step frees the caches during the backward; glibc must keep that memory for the
    # next step (kernels/workspace.py keep_freed_memory) instead of returning it to the OS
    resource = pytest.importorskip("resource")
    from scratchnet.kernels.workspace import keep_freed_memory

    if not keep_freed_memory():
        pytest.skip("not glibc: malloc's trimming is not tuned")
    from scratchnet.models import get_model

    model = get_model("resnet8", input_shape=(32, 32, 3), dtype="float32", backend="auto", seed=0)
    model.compile(sn.Adam(1e-3), "cross_entropy")
    x = np.random.default_rng(0).standard_normal((128, 32, 32, 3)).astype("float32")
    y = np.arange(128) % 10
    for _ in range(2):
        model.train_step(x, y)  # warm-up: the heap grows to the step's peak
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        model.train_step(x, y)
    faults_per_step = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3
    # measured (batch 128): 13,000 faults per step with glibc's defaults, 0-60 tuned
    assert faults_per_step < 1500


def test_evaluate_and_predict_keep_no_cache_of_their_own():
    # no backward follows evaluate: a resnet8 would otherwise hold 244 MiB after batches of 256.
    # Changed on purpose (eighth session): predict no longer leaves ITS caches for a backward;
    # both leave the caches as they found them (a training forward's stay for its backward).
    model = residual_cnn()
    x, y = batch(n=10)
    model.evaluate(x, y, batch_size=4)
    model.predict(x, batch_size=4)
    assert not any(layer.cache for layer in iter_layers(model.layers))
    out = model.forward(x)
    caches = [layer.cache for layer in iter_layers(model.layers)]
    model.evaluate(x, y, batch_size=4)
    model.predict(x, batch_size=4)
    assert all(layer.cache is cache for layer, cache in zip(iter_layers(model.layers), caches))
    assert model.backward(np.ones_like(out)).shape == x.shape
