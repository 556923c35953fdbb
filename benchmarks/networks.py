"""The networks and layers the benchmark times, built identically in scratchnet and PyTorch.

scratchnet is channels-last (N, H, W, C); PyTorch is channels-first (N, C, H, W). The input is
permuted ONCE, outside the timing, and the PyTorch network is ``scratchnet.interop.to_torch``'s
twin, with scratchnet's weights, so both contenders compute the same function. The one change:
to_torch's Flatten permutes (and copies) every step to read scratchnet's (h, w, c) order; the
timed twin flattens natively in (c, h, w) order and the next Linear's columns are reordered
once instead, as a PyTorch user's own network would do no permute.
"""

from __future__ import annotations

import numpy as np

from scratchnet import Adam, Sequential
from scratchnet.interop import to_torch
from scratchnet.interop.flatten_order import nchw_to_nhwc_order
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
    weights copied in; every image Flatten is a plain ``nn.Flatten`` (see ``flatten_natively``)."""
    network = to_torch(model, channels_first=True).train()
    flatten_natively(network, model)
    return network


def flatten_natively(network, model: Sequential) -> None:
    """Swap each top-level image Flatten of ``network`` (to_torch's ``FlattenChannelsLast``, which
    permutes NCHW to NHWC, a copy, every call) for ``nn.Flatten`` and reorder the columns of the
    next ``nn.Linear`` once, in place, so the network still computes the same function.

    scratchnet: y = W_t @ f_hwc, and f_hwc[k] = f_chw[perm[k]] (perm = ``nchw_to_nhwc_order``).
    So y = sum_k W_t[:, k] f_chw[perm[k]]: the column for chw feature perm[k] is W_t[:, k], i.e.
    the new weight is W_t[:, inverse], inverse = argsort(perm) (the hwc index of each chw feature).
    """
    import torch

    for index, layer in enumerate(model.layers):
        if type(layer) is not Flatten or len(layer.input_shape) != 3:
            continue
        linear = network[index + 1]
        if not isinstance(linear, torch.nn.Linear):
            raise TypeError(f"flatten_natively: {layer.name!r} is followed by {type(linear).__name__}, "
                            "not a Linear whose columns could be reordered")
        network[index] = torch.nn.Flatten()
        inverse = np.argsort(nchw_to_nhwc_order(layer.input_shape))  # (H*W*C,) chw -> hwc index
        with torch.no_grad():
            linear.weight.copy_(linear.weight[:, torch.from_numpy(inverse)])


def torch_layer(layer):
    """The torch.nn twin of one built scratchnet layer (NCHW, the same weights and buffers), as
    ``to_torch`` makes it for a model whose one layer is ``layer``; training mode, so a BatchNorm
    normalizes with the batch's statistics as the layer's ``forward(x, training=True)`` does."""
    model = Sequential([layer], input_shape=layer.input_shape, dtype=str(layer.dtype))
    model.built = True  # the layer is built: building the model would draw new weights
    return to_torch(model, channels_first=True)[0].train()


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
