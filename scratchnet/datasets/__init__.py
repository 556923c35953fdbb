"""Datasets: real MNIST and CIFAR-10 readers, a bundled MNIST sample and synthetic patterns.

Every loader returns images as floats ``(N, H, W, C)`` in [0, 1] (or standardised with
``standardize=True``) and labels as int64 class indices.

    >>> from scratchnet.datasets import load_mnist_sample
    >>> (x_train, y_train), (x_test, y_test) = load_mnist_sample()   # no network needed
    >>> x_train.shape, x_test.shape
    ((8000, 28, 28, 1), (2000, 28, 28, 1))
"""

from .cifar import CLASSES as CIFAR10_CLASSES
from .cifar import load_cifar10
from .common import CorruptDataError, DataNotFoundError, DatasetError, channel_mean_std, standardize
from .mnist import load_mnist, load_mnist_sample, read_idx
from .patterns import PATTERN_NAMES, make_patterns

__all__ = ["load_mnist", "load_mnist_sample", "load_cifar10", "make_patterns", "read_idx",
           "CIFAR10_CLASSES", "PATTERN_NAMES",
           "channel_mean_std", "standardize", "DatasetError", "DataNotFoundError", "CorruptDataError"]
