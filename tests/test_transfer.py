"""Transfer learning: import a torchvision-style ResNet with from_torch, freeze it, fine-tune a new head.

torchvision is not needed: the ResNet below has torchvision's attribute names and forward
(conv1/bn1/relu/maxpool/layer1..4/avgpool/fc; BasicBlock and Bottleneck with downsample), small
widths, random weights and random BatchNorm statistics (so inference mode is really tested).
"""

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import interop  # imports without torch: a broken bridge fails here, never skips
from scratchnet import layers as L

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.torch, pytest.mark.usefixtures("one_torch_thread")]

nn = torch.nn


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(nn.Module):
    """torchvision.models.ResNet's structure, with widths as a parameter."""

    def __init__(self, block=BasicBlock, layers=(2, 2, 2, 2), widths=(4, 8, 8, 16), num_classes=10):
        super().__init__()
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, widths[0], layers[0])
        self.layer2 = self._make_layer(block, widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, widths[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3] * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride,
                                                 bias=False), nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def random_resnet(block=BasicBlock, seed=0, **options):
    torch.manual_seed(seed)
    net = ResNet(block, **options).double()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):   # statistics as after some training
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.3, 0.3)
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return net.eval()


def torch_forward(net, x):
    return net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).detach().numpy()


def images(n=4, size=32, seed=0):
    return np.random.default_rng(seed).normal(size=(n, size, size, 3))


@pytest.mark.parametrize("block, size", [(BasicBlock, 32), (BasicBlock, 37), (Bottleneck, 32)])
def test_resnet_import_forward_matches_pytorch_in_eval_mode(block, size):
    net = random_resnet(block)
    model = interop.from_torch(net, input_shape=(size, size, 3))
    x = images(size=size)
    np.testing.assert_allclose(model.predict(x), torch_forward(net, x), rtol=0, atol=1e-10)
    assert [layer.name for layer in model.layers] == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2",
                                                     "layer3", "layer4", "avgpool", "fc"]
    shortcut = model.get_layer("layer2.0.downsample.0")
    assert isinstance(shortcut, L.Conv2D) and shortcut.stride == (2, 2) and shortcut.kernel_size == (1, 1)
    pool = model.get_layer("maxpool")
    assert pool.padding == ((1, 1), (1, 1)) and pool.stride == (2, 2)   # MaxPool2D pads with -inf


def test_resnet_import_gradients_and_training_mode_match_pytorch():
    """Training mode (batch statistics in every BatchNorm) and the gradient of a projection of the output."""
    net = random_resnet().train()
    model = interop.from_torch(net, input_shape=(32, 32, 3))
    x = images(n=6)
    x_t = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    y_t = net(x_t)
    y = model.forward(x, training=True)
    np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=0, atol=1e-10)
    projection = np.random.default_rng(1).normal(size=y.shape)
    (y_t * torch.from_numpy(projection)).sum().backward()
    dx = model.backward(projection)
    np.testing.assert_allclose(dx, x_t.grad.numpy().transpose(0, 2, 3, 1), rtol=0, atol=1e-10)
    ours = model.get_layer("layer3.1.conv2").grads["W"].transpose(3, 2, 0, 1)
    np.testing.assert_allclose(ours, net.layer3[1].conv2.weight.grad.numpy(), rtol=0, atol=1e-10)
    running = model.get_layer("layer1.0.bn1").buffers["mean"]            # updated like PyTorch's
    np.testing.assert_allclose(running, net.layer1[0].bn1.running_mean.numpy(), rtol=0, atol=1e-12)


def test_freeze_replace_head_and_fine_tune_in_numpy():
    net = random_resnet()
    model = interop.from_torch(net, input_shape=(32, 32, 3))
    old = interop.replace_head(model, L.Dense(3, name="fc"))
    assert old.name == "fc" and model.layers[-1].params["W"].shape == (16, 3)
    model.freeze(up_to="fc")
    body = {key: value for key, value in model.get_weights().items() if not key.startswith("fc/")}
    rng = np.random.default_rng(0)
    x = images(n=48, seed=1)
    features = torch_forward(nn.Sequential(*list(net.children())[:-1]), x).reshape(48, -1)  # avgpool out
    y = np.argsort(features @ rng.normal(size=(16, 3)), axis=1)[:, -1]     # labels the features can tell
    model.compile(optimizer=sn.Adam(lr=3e-2), loss="cross_entropy")
    start = model.evaluate(x, y)["loss"]
    model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    end = model.evaluate(x, y)
    assert end["loss"] < 0.7 * start and end["accuracy"] >= 0.8
    for key, value in model.get_weights().items():
        if key in body:                          # weights AND BatchNorm running statistics untouched
            np.testing.assert_array_equal(value, body[key], err_msg=key)
    np.testing.assert_allclose(model.predict(x[:4]), features[:4] @ model.layers[-1].params["W"]
                               + model.layers[-1].params["b"], rtol=0, atol=1e-10)


def test_replace_head_that_does_not_fit_leaves_the_model_as_it_was():
    model = sn.Sequential([L.Dense(4), L.Dense(2)], input_shape=(3,), seed=0).build()
    with pytest.raises(ValueError):
        interop.replace_head(model, L.Conv2D(2, 3))
    assert [layer.name for layer in model.layers] == ["dense", "dense_1"]


def test_imported_resnet_round_trips_through_to_torch():
    model = interop.from_torch(random_resnet(), input_shape=(32, 32, 3))
    twin = interop.to_torch(model)
    x = images()
    output = twin(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(output, model.predict(x), rtol=0, atol=1e-10)
    again = interop.from_torch(twin)
    for key, value in model.get_weights().items():
        np.testing.assert_array_equal(again.get_weights()[key], value)
