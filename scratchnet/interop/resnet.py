"""Importing a torchvision-style ResNet (He et al., 2016) with ``from_torch``.

Recognised by its class names (ResNet, BasicBlock, Bottleneck) AND torchvision's attribute
names, so ``torchvision.models.resnet18()`` and a hand-written copy both work:

    ResNet:      conv1 (7x7, stride 2, padding 3), bn1, relu, maxpool (3, stride 2, padding 1),
                 layer1 .. layer4 (nn.Sequential of blocks), avgpool (AdaptiveAvgPool2d(1)), fc
    BasicBlock:  out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))
    Bottleneck:  out = relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x))
                 shortcut = downsample (conv 1x1 + BatchNorm) or the identity

The forward is assumed to be torchvision's (names cannot tell a different one apart): a block
with these names and another forward (a pre-activation block) is caught by from_torch's check
of one random batch (verify.py), which raises instead of returning the model.
The scratchnet model keeps PyTorch's names: top-level layers conv1, bn1, relu, maxpool,
layer1 .. layer4, avgpool, fc, so ``model.freeze(up_to="fc")`` freezes everything but the
head. Each block is a ``Chain`` named like the PyTorch module ("layer2.0"): a ``Residual``
("layer2.0.residual": the main path "layer2.0.main" plus "layer2.0.downsample") and the
ReLU after the addition ("layer2.0.relu_out"); layers inside keep PyTorch paths
("layer2.0.conv1").

With the internet (torchvision installed), the ImageNet weights::

    net = torchvision.models.resnet18(weights="IMAGENET1K_V1").eval()
    model = from_torch(net, input_shape=(224, 224, 3))
"""

from __future__ import annotations

from .. import layers as L

RESNET_PARTS = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc")


def is_resnet(module) -> bool:
    """A class named ResNet with torchvision's attribute names."""
    return type(module).__name__ == "ResNet" and all(hasattr(module, part) for part in RESNET_PARTS)


def is_block(module) -> bool:
    """A class named BasicBlock or Bottleneck with torchvision's attribute names."""
    parts = ("conv1", "bn1", "conv2", "bn2", "relu", "downsample")
    named = type(module).__name__ in ("BasicBlock", "Bottleneck")
    return named and all(hasattr(module, part) for part in parts)


def convert_resnet(importer, net, shape, path):
    """The top-level scratchnet layers of a torchvision ResNet."""
    prefix = f"{path}." if path else ""
    parts = [(f"{prefix}{part}", getattr(net, part)) for part in RESNET_PARTS[:-1]]
    parts += [(f"{prefix}flatten", importer.nn.Flatten()), (f"{prefix}fc", net.fc)]  # torch.flatten(x, 1)
    importer.path_names = True
    layers, _ = importer.sequence(parts, shape, path)
    return layers


def convert_block(importer, block, shape, path):
    """One BasicBlock / Bottleneck as Chain([Residual(main, downsample), ReLU])."""
    importer.path_names = True
    steps = ["conv1", "bn1", "relu", "conv2", "bn2"]
    if hasattr(block, "conv3"):
        steps += ["relu", "conv3", "bn3"]
    main, _ = importer.sequence([(f"{path}.{step}", getattr(block, step)) for step in steps], shape, path)
    shortcut = None
    if block.downsample is not None:
        shortcut = importer.sub(f"{path}.downsample", block.downsample, shape)
    residual = L.Residual(L.Chain(main, name=f"{path}.main"), shortcut, name=f"{path}.residual")
    return L.Chain([residual, L.Activation("relu", name=f"{path}.relu_out")], name=path)
