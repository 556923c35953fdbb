"""The networks and layers the benchmark times, built identically in scratchnet and PyTorch.

scratchnet is channels-last (N, H, W, C); PyTorch is channels-first (N, C, H, W). The input is
permuted ONCE, outside the timing, and the PyTorch weights are copied from scratchnet's, so
both contenders compute the same function (up to the order of the flattened features).
"""

from __future__ import annotations

import numpy as np

from scratchnet import Adam, Sequential
from scratchnet.interop import to_torch
from scratchnet.interop.layouts import to_torch_arrays
from scratchnet.layers import Activation, Conv2D, Dense, Flatten, MaxPool2D
from scratchnet.models import get_model

# name -> (input shape of one sample, [(filters, kernel, padding) per conv block])
NETWORKS = {
    "reference (MNIST)": ((28, 28, 1), [(8, 3, "valid"), (16, 3, "valid")]),
    "small CNN (CIFAR)": ((32, 32, 3), [(32, 3, "same"), (64, 3, "same")]),
}
HIDDEN_UNITS, CLASSES = 128, 10
# model-zoo rows: name -> (scratchnet.models name, input shape of one sample)
ZOO_NETWORKS = {
    "small_cnn_bn (CIFAR)": ("small_cnn_bn", (32, 32, 3)),
    "resnet8 (CIFAR)": ("resnet8", (32, 32, 3)),
}


def scratchnet_network(name: str, backend: str = "im2col", seed: int = 0) -> Sequential:
    """conv relu maxpool2 (x2), flatten, dense 128 relu, dense 10; Adam, cross-entropy."""
    input_shape, blocks = NETWORKS[name]
    layers = []
    for filters, kernel, padding in blocks:
        layers += [Conv2D(filters, kernel, padding=padding, backend=backend), Activation("relu"),
                   MaxPool2D(2)]
    layers += [Flatten(), Dense(HIDDEN_UNITS, activation="relu"), Dense(CLASSES)]
    model = Sequential(layers, input_shape=input_shape, seed=seed, dtype="float32")
    model.build()
    model.compile(optimizer=Adam(lr=1e-3), loss="cross_entropy")
    return model


def zoo_network(name: str, seed: int = 0) -> Sequential:
    """A model-zoo network (float32, im2col), compiled with Adam and cross-entropy."""
    model_name, input_shape = ZOO_NETWORKS[name]
    model = get_model(model_name, input_shape=input_shape, n_classes=CLASSES, seed=seed, dtype="float32")
    return model.compile(optimizer=Adam(lr=1e-3), loss="cross_entropy")


def torch_zoo_network(torch, model: Sequential):
    """The same network in torch.nn (the model's float32, training mode, NCHW in and out), built by
    ``scratchnet.interop.to_torch``: BatchNorm2d for BatchNorm, nn.Dropout for Dropout, the
    scratchnet weights copied in."""
    return to_torch(model, channels_first=True).train()


def torch_conv(torch, conv: Conv2D):
    """A torch.nn.Conv2d holding the same weights as a built scratchnet Conv2D."""
    kh, kw, channels, filters = conv.params["W"].shape
    (top, bottom), (left, right) = conv.pads_for(conv.input_shape[:2])
    if top != bottom or left != right:
        raise ValueError("torch.nn.Conv2d needs symmetric padding")
    module = torch.nn.Conv2d(channels, filters, (kh, kw), stride=conv.stride, padding=(top, left),
                             dilation=conv.dilation, bias=conv.use_bias)
    arrays = to_torch_arrays(conv, conv.params)  # weight (kh, kw, C, F) -> (F, C, kh, kw), bias
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(arrays["weight"]))
        if conv.use_bias:
            module.bias.copy_(torch.from_numpy(arrays["bias"]))
    return module


def torch_network(torch, model: Sequential):
    """The same architecture as ``model`` in torch.nn (float32), with its conv/dense weights."""
    nn = torch.nn
    modules = []
    for layer in model.layers:
        if isinstance(layer, Conv2D):
            modules.append(torch_conv(torch, layer))
        elif isinstance(layer, Activation):
            modules.append(nn.ReLU())
        elif isinstance(layer, MaxPool2D):
            modules.append(nn.MaxPool2d(layer.pool_size))
        elif isinstance(layer, Flatten):
            modules.append(nn.Flatten())
        elif isinstance(layer, Dense):
            fan_in, units = layer.params["W"].shape
            linear = nn.Linear(fan_in, units)
            arrays = to_torch_arrays(layer, layer.params)  # weight W.T (units, fan_in), bias
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(arrays["weight"]))
                linear.bias.copy_(torch.from_numpy(arrays["bias"]))
            modules.append(linear)
            if layer.activation == "relu":
                modules.append(nn.ReLU())
        else:
            raise TypeError(f"no torch equivalent for {type(layer).__name__}")
    return nn.Sequential(*modules).float()


def torch_train_step(torch, network, optimizer, loss_function, x_nchw, labels):
    """One PyTorch training step: forward, cross-entropy, backward, Adam."""
    optimizer.zero_grad(set_to_none=True)
    loss = loss_function(network(x_nchw), labels)
    loss.backward()
    optimizer.step()
    return loss


def random_batch(name: str, batch_size: int, rng: np.random.Generator):
    """(x NHWC float32, labels int64) for the network ``name``."""
    input_shape = NETWORKS[name][0] if name in NETWORKS else ZOO_NETWORKS[name][1]
    x = rng.standard_normal((batch_size, *input_shape)).astype(np.float32)
    labels = rng.integers(0, CLASSES, size=batch_size)
    return x, labels
