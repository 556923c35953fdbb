"""benchmarks/networks.py and cifar_epoch.py: the torch twins the speed benchmarks time compute what
the scratchnet side computes (same weights, same function), so that a ratio compares the same work.

float32 (the benchmarks' dtype): tolerances of a few float32 roundings of the outputs' size.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import cifar_epoch  # noqa: E402  (benchmarks/cifar_epoch.py)
import networks  # noqa: E402  (benchmarks/networks.py)
from torch_twin import nchw_tensor  # noqa: E402

from scratchnet.layers import Activation, BatchNorm, Conv2D, MaxPool2D  # noqa: E402


@pytest.mark.parametrize("name", [*networks.NETWORKS, *networks.ZOO_NETWORKS])
def test_torch_network_computes_the_scratchnet_networks_logits(name):
    model = networks.scratchnet_network(name) if name in networks.NETWORKS else networks.zoo_network(name)
    x, _ = networks.random_batch(name, 3, np.random.default_rng(0))
    twin = networks.torch_network(model).eval()  # eval: BatchNorm's running statistics, no dropout
    with torch.no_grad():
        twin_logits = twin(nchw_tensor(torch, x)).numpy()
    np.testing.assert_allclose(twin_logits, model.predict(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", [*networks.NETWORKS, "small_cnn_bn (CIFAR)"])
def test_torch_network_flattens_natively(name):
    """No permute per step: every image Flatten of the timed twin is a plain nn.Flatten."""
    model = networks.scratchnet_network(name) if name in networks.NETWORKS else networks.zoo_network(name)
    twin = networks.torch_network(model)
    assert [type(module) for module in twin if isinstance(module, torch.nn.Flatten)] == [torch.nn.Flatten]


def assert_conv_twin_matches(layer, module, x, rng):
    """module(x) and its gradients for (x, weight[, bias]) equal the Conv2D layer's (NCHW <-> NHWC)."""
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)

    x_t = nchw_tensor(torch, x).requires_grad_(True)
    y_t = module(x_t)
    wanted = [x_t, module.weight] + ([module.bias] if layer.use_bias else [])
    dx_t, dW_t, *db_t = torch.autograd.grad(y_t, wanted, nchw_tensor(torch, dy))
    np.testing.assert_allclose(y_t.detach().numpy().transpose(0, 2, 3, 1), y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx_t.numpy().transpose(0, 2, 3, 1), dx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dW_t.numpy().transpose(2, 3, 1, 0), layer.grads["W"], rtol=1e-5, atol=1e-4)
    if layer.use_bias:
        np.testing.assert_allclose(db_t[0].numpy(), layer.grads["b"], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("padding, kernel, stride", [("valid", 5, 1), ("same", 3, 1), (1, 3, 2)])
def test_torch_layer_of_a_conv_gives_the_layers_output_and_gradients(padding, kernel, stride):
    rng = np.random.default_rng(0)
    layer = Conv2D(8, kernel, stride=stride, padding=padding, backend="im2col")
    layer.build((12, 12, 3), rng=np.random.default_rng(0), dtype="float32")
    weights = layer.params["W"].copy()
    module = networks.torch_layer(layer)
    np.testing.assert_array_equal(layer.params["W"], weights)  # the layer keeps its weights
    assert_conv_twin_matches(layer, module, rng.standard_normal((2, 12, 12, 3)).astype(np.float32), rng)


def test_torch_layer_of_a_grouped_conv_is_a_plain_grouped_conv2d_with_the_layers_numbers():
    """grouped.py times it: nn.Conv2d(groups=g) with the padding built in (no F.pad copy)."""
    rng = np.random.default_rng(0)
    layer = Conv2D(8, 3, padding="same", groups=4, use_bias=False)
    layer.build((6, 6, 8), rng=np.random.default_rng(0), dtype="float32")
    module = networks.torch_layer(layer)
    assert type(module) is torch.nn.Conv2d and module.groups == 4 and module.padding == (1, 1)
    assert_conv_twin_matches(layer, module, rng.standard_normal((2, 6, 6, 8)).astype(np.float32), rng)


@pytest.mark.parametrize("make_layer", [lambda: BatchNorm(), lambda: Activation("relu"),
                                        lambda: Activation("leaky_relu"), lambda: Activation("elu"),
                                        lambda: Activation("selu"), lambda: MaxPool2D(2)],
                         ids=["batchnorm", "relu", "leaky_relu", "elu", "selu", "maxpool"])
def test_torch_layer_gives_the_layers_training_output_and_gradients(make_layer):
    """elementwise.py's torch contenders: forward in training mode (BatchNorm: the batch's
    statistics), dx and the parameters' gradients."""
    rng = np.random.default_rng(0)
    layer = make_layer()
    layer.build((6, 6, 4), rng=np.random.default_rng(0), dtype="float32")
    for key in layer.params:  # BatchNorm: gamma, beta away from 1, 0, so a swap would show
        layer.params[key][...] = rng.standard_normal(layer.params[key].shape)
    module = networks.torch_layer(layer)
    x = rng.standard_normal((3, 6, 6, 4)).astype(np.float32)
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)

    x_t = nchw_tensor(torch, x).requires_grad_(True)
    y_t = module(x_t)
    parameters = list(module.parameters())
    gradients = torch.autograd.grad(y_t, [x_t, *parameters], nchw_tensor(torch, dy))
    np.testing.assert_allclose(y_t.detach().numpy().transpose(0, 2, 3, 1), y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gradients[0].numpy().transpose(0, 2, 3, 1), dx, rtol=1e-5, atol=1e-5)
    scratchnet_grads = [layer.grads[key] for key in ("gamma", "beta") if key in layer.grads]
    assert len(parameters) == len(scratchnet_grads)
    for torch_grad, grad in zip(gradients[1:], scratchnet_grads):
        np.testing.assert_allclose(torch_grad.numpy(), grad, rtol=1e-5, atol=1e-4)


# ------------------------------------------------------------------ cifar_epoch.py's twins
@pytest.mark.parametrize("name", cifar_epoch.MODELS)
def test_cifar_epoch_twin_takes_nchw_and_its_first_step_loss_is_scratchnets(name):
    """The twin cifar_epoch.py times is channels-first with a plain nn.Flatten (no permute per
    step), and one training step on the NCHW copy of a batch has scratchnet's loss."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 32, 32, 3)).astype(np.float32)
    labels = rng.integers(0, 10, size=6)
    model, recipe = cifar_epoch.scratchnet_model(name, no_dropout=True)
    twin, optimizer = cifar_epoch.torch_twin(torch, model, x, labels)  # checks the eval-mode loss
    assert not any(type(module).__name__ == "FlattenChannelsLast" for module in twin.modules())
    x_nchw = cifar_epoch.nchw(x)
    assert x_nchw.shape == (6, 3, 32, 32) and x_nchw.flags.c_contiguous
    np.testing.assert_array_equal(x_nchw[2, 1], x[2, :, :, 1])
    ours = float(model.train_step(x, labels)[0])
    theirs = cifar_epoch.torch_step(torch, twin, optimizer, torch.from_numpy(x_nchw),
                                    torch.from_numpy(labels), recipe.lr)
    assert abs(ours - theirs) <= 1e-5 * max(1.0, abs(ours))


def test_cifar_epoch_check_same_loss_raises_for_a_twin_computing_something_else():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 32, 32, 3)).astype(np.float32)
    labels = rng.integers(0, 10, size=4)
    model, _ = cifar_epoch.scratchnet_model("flax_cnn")
    twin = networks.torch_network(model)
    cifar_epoch.check_same_loss(torch, model, twin, x, labels)  # the same function: passes
    assert twin.training  # the check leaves the twin in training mode
    with torch.no_grad():
        twin[-1].bias[0] += 0.01  # one logit moved: the loss moves by about 0.01 / 10
    with pytest.raises(RuntimeError, match="not scratchnet's"):
        cifar_epoch.check_same_loss(torch, model, twin, x, labels)
