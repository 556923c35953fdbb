"""Plain chains of layers: LeNet-5 and the small CNNs of the course and of the seeds' recipes.

lenet5, small_cnn, tiny_cnn, mlp (no normalisation); flax_cnn (average pooling, the Flax CIFAR-10
example); small_cnn_bn and deeper_cnn (conv-BatchNorm-ReLU stacks, VGG style).
"""

from __future__ import annotations

from .. import layers as L
from ..layers.spatial import positive_int
from ..model import Sequential


def logits_layer(n_classes, model_name: str) -> L.Dense:
    """The last layer of every model here: one logit per class, ``Dense(n_classes)``."""
    return L.Dense(positive_int(n_classes, "n_classes", model_name))


def lenet5(input_shape=(28, 28, 1), n_classes: int = 10, seed: int | None = 0, dtype="float32",
           backend: str = "auto") -> Sequential:
    """LeNet-5 (LeCun et al., 1998) in its common modern adaptation for 28x28 MNIST.

    ======================  =========================  ==============
    layer                   output (for 28x28x1)        parameters
    ======================  =========================  ==============
    Conv2D 6, 5x5, "same"   28 x 28 x 6                 156
    ReLU, MaxPool 2         14 x 14 x 6
    Conv2D 16, 5x5          10 x 10 x 16                2,416
    ReLU, MaxPool 2         5 x 5 x 16
    Flatten                 400
    Dense 120, ReLU         120                         48,120
    Dense 84, ReLU          84                          10,164
    Dense n_classes         10 (logits)                 850
    ======================  =========================  ==============

    The original read 32x32 images (MNIST digits padded by 2 pixels) with a "valid" first
    convolution; "same" padding on 28x28 gives the same 28x28 feature maps. The original's
    tanh units and trainable average-pooling "subsampling" are replaced by ReLU and max
    pooling, and its sparse C3 connection table by a full convolution, as in most
    textbooks today. 61,706 parameters in all.
    """
    return Sequential([
        L.Conv2D(6, 5, padding="same", backend=backend), L.Activation("relu"), L.MaxPool2D(2),
        L.Conv2D(16, 5, backend=backend), L.Activation("relu"), L.MaxPool2D(2),
        L.Flatten(),
        L.Dense(120, activation="relu"),
        L.Dense(84, activation="relu"),
        logits_layer(n_classes, "lenet5"),
    ], input_shape=input_shape, seed=seed, dtype=dtype, name="lenet5").build()


def small_cnn(input_shape=(28, 28, 1), n_classes: int = 10, seed: int | None = 0, dtype="float32",
              backend: str = "auto") -> Sequential:
    """Two 3x3 convolution blocks and a hidden dense layer; a good default for CIFAR-10.

    Conv2D 32 3x3 same - ReLU - MaxPool 2 - Conv2D 64 3x3 same - ReLU - MaxPool 2 - Flatten -
    Dense 128 ReLU - Dense n_classes. ``small_cnn_bn`` is the same network with batch
    normalisation after each convolution and dropout before the last layer.
    """
    return Sequential([
        L.Conv2D(32, 3, padding="same", backend=backend), L.Activation("relu"), L.MaxPool2D(2),
        L.Conv2D(64, 3, padding="same", backend=backend), L.Activation("relu"), L.MaxPool2D(2),
        L.Flatten(),
        L.Dense(128, activation="relu"),
        logits_layer(n_classes, "small_cnn"),
    ], input_shape=input_shape, seed=seed, dtype=dtype, name="small_cnn").build()


def tiny_cnn(input_shape=(28, 28, 1), n_classes: int = 10, seed: int | None = 0, dtype="float32",
             backend: str = "auto") -> Sequential:
    """The smallest useful CNN, for quick lessons: one convolution, pooling, one dense layer.

    Conv2D 8 3x3 - ReLU - MaxPool 2 - Flatten - Dense n_classes. Trains in seconds.
    """
    return Sequential([
        L.Conv2D(8, 3, backend=backend), L.Activation("relu"), L.MaxPool2D(2),
        L.Flatten(),
        logits_layer(n_classes, "tiny_cnn"),
    ], input_shape=input_shape, seed=seed, dtype=dtype, name="tiny_cnn").build()


def mlp(input_shape=(28, 28, 1), n_classes: int = 10, seed: int | None = 0, dtype="float32",
        backend: str = "auto") -> Sequential:
    """A convolution-free baseline: Flatten - Dense 128 ReLU - Dense n_classes.

    ``backend`` is accepted (and ignored) so every model function has the same signature.
    """
    return Sequential([
        L.Flatten(), L.Dense(128, activation="relu"), logits_layer(n_classes, "mlp"),
    ], input_shape=input_shape, seed=seed, dtype=dtype, name="mlp").build()



def flax_cnn(input_shape=(32, 32, 3), n_classes: int = 10, seed: int | None = 0, dtype="float32",
             backend: str = "auto") -> Sequential:
    """The CNN of the Flax examples (72.7% CIFAR-10 test accuracy in the seed's Flax original).

    ======================  =========================  ==============
    layer                   output (for 32x32x3)        parameters
    ======================  =========================  ==============
    Conv2D 32, 3x3, "same"  32 x 32 x 32                896
    ReLU, AvgPool 2         16 x 16 x 32
    Conv2D 64, 3x3, "same"  16 x 16 x 64                18,496
    ReLU, AvgPool 2         8 x 8 x 64
    Flatten                 4,096
    Dense 256, ReLU         256                         1,048,832
    Dense n_classes         10 (logits)                 2,570
    ======================  =========================  ==============

    1,070,794 parameters for 32x32x3 (824,458 for 28x28x1: the dense layer sees 7*7*64).
    Flax's ``nn.Conv`` pads "SAME" by default and its ``avg_pool(x, (2, 2), strides=(2, 2))``
    halves the sizes, as here. Flax initialises kernels with LeCun normal; scratchnet uses its
    default Glorot uniform.
    """
    return Sequential([
        L.Conv2D(32, 3, padding="same", backend=backend), L.Activation("relu"), L.AvgPool2D(2),
        L.Conv2D(64, 3, padding="same", backend=backend), L.Activation("relu"), L.AvgPool2D(2),
        L.Flatten(),
        L.Dense(256, activation="relu"),
        logits_layer(n_classes, "flax_cnn"),
    ], input_shape=input_shape, seed=seed, dtype=dtype, name="flax_cnn").build()


def conv_bn_relu(filters: int, stride=1, backend: str = "auto") -> list:
    """[Conv2D 3x3 (padding 1, no bias), BatchNorm, ReLU]: the VGG-style unit.

    No bias: the BatchNorm right after subtracts the channel mean, which would cancel it (beta
    plays its role). Padding 1 keeps the size at stride 1 and halves it at stride 2 exactly as
    PyTorch's ``padding=1`` does. He-normal weights (He et al., 2015), as for ReLU networks.
    """
    return [L.Conv2D(filters, 3, stride=stride, padding=1, use_bias=False, kernel_initializer="he_normal",
                     backend=backend),
            L.BatchNorm(), L.Activation("relu")]


def small_cnn_bn(input_shape=(32, 32, 3), n_classes: int = 10, seed: int | None = 0, dtype="float32",
                 backend: str = "auto", dropout: float = 0.5) -> Sequential:
    """The PyTorch "SmallCNN" recipe: two conv-BN-ReLU-pool blocks, dense 128, dropout, logits.

    ==========================  =========================  ==============
    layer                       output (for 32x32x3)        parameters
    ==========================  =========================  ==============
    Conv2D 32, 3x3, no bias     32 x 32 x 32                864
    BatchNorm, ReLU, MaxPool 2  16 x 16 x 32                64
    Conv2D 64, 3x3, no bias     16 x 16 x 64                18,432
    BatchNorm, ReLU, MaxPool 2  8 x 8 x 64                  128
    Flatten                     4,096
    Dense 128, ReLU             128                         524,416
    Dropout 0.5                 128
    Dense n_classes             10 (logits)                 1,290
    ==========================  =========================  ==============

    545,194 parameters for 32x32x3 (421,738 for 28x28x1: the dense layer sees 7*7*64).
    Choices: convolutions without bias (the BatchNorm after each makes a bias redundant; its
    beta is the shift), padding 1 ("same" for 3x3), He-normal weights, dropout on the hidden
    dense layer's output only (the convolutions are regularised by BatchNorm), PyTorch's
    BatchNorm momentum 0.1. ``dropout=0`` removes the dropout layer's effect.
    """
    return Sequential([
        *conv_bn_relu(32, backend=backend), L.MaxPool2D(2),
        *conv_bn_relu(64, backend=backend), L.MaxPool2D(2),
        L.Flatten(),
        L.Dense(128, activation="relu", kernel_initializer="he_normal"),
        L.Dropout(dropout),
        logits_layer(n_classes, "small_cnn_bn"),
    ], input_shape=input_shape, seed=seed, dtype=dtype, name="small_cnn_bn").build()


def deeper_cnn(input_shape=(32, 32, 3), n_classes: int = 10, seed: int | None = 0, dtype="float32",
               backend: str = "auto") -> Sequential:
    """A VGG-style stack: a 64-channel stem, then stages of 64, 128, 256 channels, each halving the size.

    ==========================  =========================  ==============
    layer                       output (for 32x32x3)        parameters
    ==========================  =========================  ==============
    stem: Conv2D 64, 3x3        32 x 32 x 64                1,728
          BatchNorm, ReLU       32 x 32 x 64                128
    stage 1: Conv2D 64          32 x 32 x 64                36,864
          BatchNorm, ReLU       32 x 32 x 64                128
          MaxPool 2             16 x 16 x 64
    stage 2: Conv2D 128         16 x 16 x 128               73,728
          BatchNorm, ReLU       16 x 16 x 128               256
          MaxPool 2             8 x 8 x 128
    stage 3: Conv2D 256         8 x 8 x 256                 294,912
          BatchNorm, ReLU       8 x 8 x 256                 512
          MaxPool 2             4 x 4 x 256
    GlobalAvgPool               256
    Dense n_classes             10 (logits)                 2,570
    ==========================  =========================  ==============

    410,826 parameters (409,674 for 28x28x1, whose stem has 3*3*1*64 = 576 weights; sizes
    28 -> 14 -> 7 -> 3). Every convolution is 3x3, padding 1, no bias (see ``conv_bn_relu``).
    The global average pool makes the parameter count independent of the image size.
    """
    layers = conv_bn_relu(64, backend=backend)                      # the stem
    for filters in (64, 128, 256):                                  # the three stages
        layers += [*conv_bn_relu(filters, backend=backend), L.MaxPool2D(2)]
    layers += [L.GlobalAvgPool2D(), logits_layer(n_classes, "deeper_cnn")]
    return Sequential(layers, input_shape=input_shape, seed=seed, dtype=dtype, name="deeper_cnn").build()
