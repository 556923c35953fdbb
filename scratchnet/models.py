"""Ready-made models: each function returns an uncompiled, built ``Sequential``.

    >>> model = lenet5()                      # 28x28x1 digits, 10 classes
    >>> model.compile(optimizer="adam", loss="cross_entropy")

Every function takes ``input_shape`` (one sample, channels-last), ``n_classes``, ``seed``
(weight initialisation and shuffling), ``dtype`` and the convolution ``backend``
("im2col" trains fast, "scipy" is the readable reference). The last layer outputs logits:
the cross-entropy loss applies the softmax.

``get_model(name, **options)`` looks a model up by name (as the ``scratchnet`` command does).
"""

from __future__ import annotations

from .model import Sequential


def _layers():
    # Imported when a model is built, not when scratchnet.models is imported.
    from . import layers
    return layers


def lenet5(input_shape=(28, 28, 1), n_classes: int = 10, seed: int | None = 0, dtype="float32",
           backend: str = "im2col") -> Sequential:
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
    L = _layers()
    return Sequential([
        L.Conv2D(6, 5, padding="same", backend=backend), L.Activation("relu"), L.MaxPool2D(2),
        L.Conv2D(16, 5, backend=backend), L.Activation("relu"), L.MaxPool2D(2),
        L.Flatten(),
        L.Dense(120, activation="relu"),
        L.Dense(84, activation="relu"),
        L.Dense(n_classes),
    ], input_shape=input_shape, seed=seed, dtype=dtype, name="lenet5").build()


def small_cnn(input_shape=(28, 28, 1), n_classes: int = 10, seed: int | None = 0, dtype="float32",
              backend: str = "im2col") -> Sequential:
    """Two 3x3 convolution blocks and a hidden dense layer; a good default for CIFAR-10.

    Conv2D 32 3x3 same - ReLU - MaxPool 2 - Conv2D 64 3x3 same - ReLU - MaxPool 2 - Flatten -
    Dense 128 ReLU - Dense n_classes. (Batch normalisation and dropout are not in scratchnet
    yet; they belong after each convolution and before the last layer when they are.)
    """
    L = _layers()
    return Sequential([
        L.Conv2D(32, 3, padding="same", backend=backend), L.Activation("relu"), L.MaxPool2D(2),
        L.Conv2D(64, 3, padding="same", backend=backend), L.Activation("relu"), L.MaxPool2D(2),
        L.Flatten(),
        L.Dense(128, activation="relu"),
        L.Dense(n_classes),
    ], input_shape=input_shape, seed=seed, dtype=dtype, name="small_cnn").build()


def tiny_cnn(input_shape=(28, 28, 1), n_classes: int = 10, seed: int | None = 0, dtype="float32",
             backend: str = "im2col") -> Sequential:
    """The smallest useful CNN, for quick lessons: one convolution, pooling, one dense layer.

    Conv2D 8 3x3 - ReLU - MaxPool 2 - Flatten - Dense n_classes. Trains in seconds.
    """
    L = _layers()
    return Sequential([
        L.Conv2D(8, 3, backend=backend), L.Activation("relu"), L.MaxPool2D(2),
        L.Flatten(),
        L.Dense(n_classes),
    ], input_shape=input_shape, seed=seed, dtype=dtype, name="tiny_cnn").build()


def mlp(input_shape=(28, 28, 1), n_classes: int = 10, seed: int | None = 0, dtype="float32",
        backend: str = "im2col") -> Sequential:
    """A convolution-free baseline: Flatten - Dense 128 ReLU - Dense n_classes.

    ``backend`` is accepted (and ignored) so every model function has the same signature.
    """
    L = _layers()
    return Sequential([
        L.Flatten(), L.Dense(128, activation="relu"), L.Dense(n_classes),
    ], input_shape=input_shape, seed=seed, dtype=dtype, name="mlp").build()


MODELS = {"lenet5": lenet5, "small_cnn": small_cnn, "tiny_cnn": tiny_cnn, "mlp": mlp}


def get_model(name: str, **options) -> Sequential:
    """Build a model by name (one of ``MODELS``) with the options of the model functions."""
    key = str(name).lower().replace("-", "_")
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[key](**options)
