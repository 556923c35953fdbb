"""The networks and layers the benchmark times, built identically in scratchnet and PyTorch.

scratchnet is channels-last (N, H, W, C); PyTorch is channels-first (N, C, H, W). The input is
permuted ONCE, outside the timing, and the PyTorch network is ``scratchnet.interop.to_torch``'s
twin, with scratchnet's weights, so both contenders compute the same function.
"""

from __future__ import annotations

import numpy as np

from scratchnet import Adam, Sequential
from scratchnet.interop import to_torch
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


def torch_network(model: Sequential):
    """The same network in torch.nn, built by ``scratchnet.interop.to_torch``: NCHW in and out, the
    model's dtype, training mode (BatchNorm2d and Dropout as in a training step), the scratchnet
    weights copied in, Flatten reading the features in scratchnet's (h, w, c) order."""
    return to_torch(model, channels_first=True).train()


def torch_conv(conv: Conv2D):
    """The torch.nn.Conv2d twin of a built Conv2D (NCHW, the same weights), as ``to_torch`` makes it
    for a model whose one layer is ``conv``."""
    model = Sequential([conv], input_shape=conv.input_shape, dtype=str(conv.dtype))
    model.built = True  # the layer is built: building the model would draw new weights
    return to_torch(model, channels_first=True)[0]


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
