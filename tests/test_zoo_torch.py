"""The model zoo against PyTorch (issue 11), float64, same weights: forward, input gradient, every
parameter gradient and the BatchNorm running statistics, in training and in eval mode.

The ResNet, the Inception, MobileNet and ShuffleNet blocks and the inverted residual are compared with
torch.nn modules written here from the papers (independent of scratchnet's model code; the
weights are copied in module order by ``copy_into``); the others with the generic twin
(tests/torch_twin.py), which mirrors the scratchnet structure and so checks the layers' math.
"""

import numpy as np
import pytest
from torch_twin import copy_into, nchw, nhwc, torch_twin

import scratchnet as sn
from scratchnet import layers as L
from scratchnet.layers import BatchNorm
from scratchnet.layers.base import iter_layers
from scratchnet.models import (
    dense_block,
    get_model,
    inception_block,
    inverted_residual,
    mobilenet_block,
    resnet,
    shufflenet_unit,
)


def compare_with_torch(torch, model, x, training, atol=1e-10, reference=None):
    """Forward, dx and every parameter gradient of ``model`` against a torch module holding the same
    weights: ``reference`` (a hand-written torch.nn module, weights copied in) or else the twin."""
    if reference is None:
        twin, pairs, bn_pairs = torch_twin(torch, model)
    else:
        twin = reference.to(torch.float64)
        pairs, bn_pairs = copy_into(torch, model, twin)
    twin.train(training)
    rng = np.random.default_rng(7)
    y = model.forward(x, training=training)
    dy = rng.standard_normal(y.shape)
    for leaf in iter_layers(model.layers):
        leaf.grads = {}
    dx = model.backward(dy)
    x_t = torch.tensor(nchw(x), requires_grad=True)
    y_t = twin(x_t)
    y_t.backward(torch.tensor(nchw(dy)))
    np.testing.assert_allclose(y, nhwc(y_t.detach().numpy()), rtol=0, atol=atol)
    np.testing.assert_allclose(dx, nhwc(x_t.grad.numpy()), rtol=0, atol=atol)
    assert len(pairs) == sum(len(leaf.params) for leaf in iter_layers(model.layers))
    for leaf, key, param, to_scratchnet in pairs:
        np.testing.assert_allclose(leaf.grads[key], to_scratchnet(param.grad), rtol=0, atol=atol,
                                   err_msg=f"{leaf.name}/{key}")
    for leaf, module in bn_pairs:  # running statistics: updated in training mode, unchanged otherwise
        np.testing.assert_allclose(leaf.buffers["mean"], module.running_mean.numpy(), rtol=0, atol=atol)
        np.testing.assert_allclose(leaf.buffers["var"], module.running_var.numpy(), rtol=0, atol=atol)
    return twin


def perturb_batch_norms(model, rng):
    """Random gamma, beta and running statistics, so that BatchNorm is not the identity."""
    for leaf in iter_layers(model.layers):
        if isinstance(leaf, BatchNorm):
            channels = leaf.params["gamma"].shape[0]
            leaf.params["gamma"][:] = rng.uniform(0.5, 1.5, channels)
            leaf.params["beta"][:] = rng.normal(0, 0.3, channels)
            leaf.buffers["mean"][:] = rng.normal(0, 0.3, channels)
            leaf.buffers["var"][:] = rng.uniform(0.5, 2.0, channels)


def torch_cifar_resnet(torch, depth, width, channels, classes):
    """He et al.'s CIFAR ResNet written directly in torch.nn, as in the usual PyTorch code
    (independent of scratchnet's model code; only the module ORDER must match for copy_into)."""
    nn, F = torch.nn, torch.nn.functional

    class BasicBlock(nn.Module):
        def __init__(self, c_in, c, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(c)
            self.conv2 = nn.Conv2d(c, c, 3, stride=1, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(c)
            self.shortcut = nn.Sequential()
            if stride != 1 or c_in != c:  # option B: 1x1 convolution + BN projection
                self.shortcut = nn.Sequential(nn.Conv2d(c_in, c, 1, stride=stride, bias=False),
                                              nn.BatchNorm2d(c))

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return F.relu(out + self.shortcut(x))

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            n = (depth - 2) // 6
            self.conv1 = nn.Conv2d(channels, width, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            blocks, c_in = [], width
            for stage, c in enumerate((width, 2 * width, 4 * width)):
                for k in range(n):
                    blocks.append(BasicBlock(c_in, c, 2 if stage > 0 and k == 0 else 1))
                    c_in = c
            self.blocks = nn.Sequential(*blocks)
            self.linear = nn.Linear(4 * width, classes)

        def forward(self, x):
            out = self.blocks(F.relu(self.bn1(self.conv1(x))))
            return self.linear(out.mean(dim=(2, 3)))  # global average pool

    return ResNet()


@pytest.mark.torch
@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
def test_resnet8_matches_pytorch(training, rng):
    torch = pytest.importorskip("torch")
    model = resnet(8, input_shape=(16, 16, 3), n_classes=10, seed=3, dtype="float64")
    perturb_batch_norms(model, rng)
    model.layers[-1].params["b"][:] = rng.normal(0, 0.1, 10)
    x = rng.standard_normal((4, 16, 16, 3))
    compare_with_torch(torch, model, x, training, reference=torch_cifar_resnet(torch, 8, 16, 3, 10))


@pytest.mark.torch
def test_resnet14_matches_pytorch_on_mnist_shapes_with_odd_sizes(rng):
    """28x28: the stride-2 convolutions meet 28 -> 14 -> 7 (an odd size in the last stage)."""
    torch = pytest.importorskip("torch")
    model = resnet(14, width=4, input_shape=(28, 28, 1), n_classes=10, seed=4, dtype="float64")
    perturb_batch_norms(model, rng)
    compare_with_torch(torch, model, rng.standard_normal((3, 28, 28, 1)), training=True,
                       reference=torch_cifar_resnet(torch, 14, 4, 1, 10))


@pytest.mark.torch
@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
def test_inception_block_matches_pytorch(training, rng):
    torch = pytest.importorskip("torch")
    model = sn.Sequential([inception_block(3, 2, 4, 2, 3, 2)], input_shape=(7, 6, 5), seed=2,
                          dtype="float64").build()
    for leaf in iter_layers(model.layers):
        if "b" in leaf.params:
            leaf.params["b"][:] = rng.normal(0, 0.5, leaf.params["b"].shape)  # biases that matter
    nn, F = torch.nn, torch.nn.functional

    class Inception(nn.Module):  # written from the GoogLeNet paper, not from scratchnet's code
        def __init__(self, c, f1, f3r, f3, f5r, f5, pool):
            super().__init__()
            self.b1 = nn.Conv2d(c, f1, 1)
            self.b2 = nn.Sequential(nn.Conv2d(c, f3r, 1), nn.ReLU(), nn.Conv2d(f3r, f3, 3, padding=1))
            self.b3 = nn.Sequential(nn.Conv2d(c, f5r, 1), nn.ReLU(), nn.Conv2d(f5r, f5, 5, padding=2))
            self.b4 = nn.Conv2d(c, pool, 1)

        def forward(self, x):
            pooled = F.max_pool2d(x, 3, stride=1, padding=1)
            return torch.cat([F.relu(self.b1(x)), F.relu(self.b2(x)), F.relu(self.b3(x)),
                              F.relu(self.b4(pooled))], dim=1)

    x = rng.standard_normal((3, 7, 6, 5))
    compare_with_torch(torch, model, x, training, reference=Inception(5, 3, 2, 4, 2, 3, 2))
    compare_with_torch(torch, model, x, training)  # and the generic twin agrees too


@pytest.mark.torch
def test_twin_pads_an_odd_same_padding_bottom_right_as_pytorch(rng):
    """"same" with an odd total padding: an even kernel at stride 1 (torch's own padding="same" in
    the twin), stride 2 on an even size (ZeroPad2d, the odd cell bottom/right) and a max pool."""
    torch = pytest.importorskip("torch")
    model = sn.Sequential([L.Conv2D(3, (2, 4), padding="same"), L.Activation("tanh"),          # 8x8x3
                           L.DepthwiseConv2D(3, stride=2, padding="same"),                      # 4x4x3
                           L.MaxPool2D(3, stride=2, padding="same"), L.Flatten(), L.Dense(2)],  # 2x2x3
                          input_shape=(8, 8, 2), seed=4, dtype="float64").build()
    for leaf in iter_layers(model.layers):  # a zero bias would hide a bias added at the wrong place
        if "b" in leaf.params:
            leaf.params["b"][:] = rng.normal(0, 0.5, leaf.params["b"].shape)
    compare_with_torch(torch, model, rng.standard_normal((2, 8, 8, 2)), training=False)


@pytest.mark.torch
@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
def test_small_cnn_bn_and_dense_block_match_pytorch(training, rng):
    torch = pytest.importorskip("torch")
    model = get_model("small_cnn_bn", input_shape=(12, 12, 2), n_classes=5, seed=1, dtype="float64",
                      dropout=0.0)
    perturb_batch_norms(model, rng)
    compare_with_torch(torch, model, rng.standard_normal((4, 12, 12, 2)), training)
    block = sn.Sequential([dense_block(2, 3, bottleneck=True)], input_shape=(5, 5, 2),
                          dtype="float64").build()
    perturb_batch_norms(block, rng)
    compare_with_torch(torch, block, rng.standard_normal((3, 5, 5, 2)), training)


@pytest.mark.torch
@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
def test_mobilenet_block_matches_pytorch(training, rng):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    model = sn.Sequential([mobilenet_block(6, stride=2)], input_shape=(7, 7, 4), seed=2,
                          dtype="float64").build()
    perturb_batch_norms(model, rng)
    reference = nn.Sequential(  # MobileNet v1's depthwise-separable convolution, written in torch.nn
        nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 6, 1, bias=False), nn.BatchNorm2d(6), nn.ReLU())
    x = rng.standard_normal((3, 7, 7, 4))
    compare_with_torch(torch, model, x, training, reference=reference)


@pytest.mark.torch
@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
def test_inverted_residual_and_shufflenet_unit_match_pytorch(training, rng):
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class InvertedResidual(nn.Module):  # MobileNetV2, written in torch.nn
        def __init__(self, c, t):
            super().__init__()
            self.block = nn.Sequential(
                nn.Conv2d(c, c * t, 1, bias=False), nn.BatchNorm2d(c * t), nn.ReLU(),
                nn.Conv2d(c * t, c * t, 3, padding=1, groups=c * t, bias=False), nn.BatchNorm2d(c * t),
                nn.ReLU(),
                nn.Conv2d(c * t, c, 1, bias=False), nn.BatchNorm2d(c))

        def forward(self, x):
            return x + self.block(x)

    class ShuffleUnit(nn.Module):  # ShuffleNet v1, stride 2, written in torch.nn
        def __init__(self, c, f, g, m):
            super().__init__()
            self.groups = g
            self.conv1, self.bn1 = nn.Conv2d(c, m, 1, groups=g, bias=False), nn.BatchNorm2d(m)
            self.depthwise = nn.Conv2d(m, m, 3, stride=2, padding=1, groups=m, bias=False)
            self.bn2 = nn.BatchNorm2d(m)
            self.conv2, self.bn3 = nn.Conv2d(m, f - c, 1, groups=g, bias=False), nn.BatchNorm2d(f - c)

        def forward(self, x):
            out = torch.relu(self.bn1(self.conv1(x)))
            n, c, h, w = out.shape  # channel shuffle: (g, c/g) -> (c/g, g)
            out = out.reshape(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)
            out = self.bn3(self.conv2(self.bn2(self.depthwise(out))))
            pooled = torch.nn.functional.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            return torch.relu(torch.cat([pooled, out], dim=1))

    model = sn.Sequential([inverted_residual(3, 3, expansion=2)], input_shape=(5, 5, 3), seed=1,
                          dtype="float64").build()
    perturb_batch_norms(model, rng)
    compare_with_torch(torch, model, rng.standard_normal((2, 5, 5, 3)), training,
                       reference=InvertedResidual(3, 2))
    unit = sn.Sequential([shufflenet_unit(4, 16, groups=2, stride=2, bottleneck_ratio=0.5)],
                         input_shape=(6, 6, 4), seed=1, dtype="float64").build()
    perturb_batch_norms(unit, rng)
    x = rng.standard_normal((2, 6, 6, 4))
    compare_with_torch(torch, unit, x, training, reference=ShuffleUnit(4, 16, 2, 8))
    compare_with_torch(torch, unit, x, training)  # and the generic twin agrees too
