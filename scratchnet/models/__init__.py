"""Ready-made models: each function returns an uncompiled, built ``Sequential``.

    >>> model = lenet5()                      # 28x28x1 digits, 10 classes
    >>> model.compile(optimizer="adam", loss="cross_entropy")

Every function takes ``input_shape`` (one sample, channels-last), ``n_classes``, ``seed``
(weight initialisation and shuffling), ``dtype`` and the convolution ``backend``
("auto", the default, trains fastest: Winograd for 3x3 stride-1 convolutions with >= 16
channels, im2col elsewhere; "im2col" alone, "scipy" the readable reference). The last layer outputs logits:
the cross-entropy loss applies the softmax.

    classic.py   lenet5, small_cnn, tiny_cnn, mlp, flax_cnn, small_cnn_bn, deeper_cnn
    digits.py    digit_cnn (conv-BN-ReLU 16/32/64 for 28x28 digits: `scratchnet train`'s default)
    resnet.py    resnet(depth=8|14|20|..., width=16), resnet8/14/20, basic_block
    blocks.py    inception_block, dense_block, mobilenet_block, inverted_residual, shufflenet_unit
                 (functions returning ONE layer, to put inside a model)

``get_model(name, **options)`` looks a model up by name (as the ``scratchnet`` command does).
"""

from __future__ import annotations

import inspect

from ..model import Sequential
from .blocks import (
    dense_block,
    dense_layer,
    inception_block,
    inverted_residual,
    mobilenet_block,
    shufflenet_unit,
)
from .classic import conv_bn_relu, deeper_cnn, flax_cnn, lenet5, mlp, small_cnn, small_cnn_bn, tiny_cnn
from .digits import digit_cnn
from .resnet import basic_block, resnet, resnet8, resnet14, resnet20

MODELS = {"lenet5": lenet5, "small_cnn": small_cnn, "tiny_cnn": tiny_cnn, "mlp": mlp,
          "flax_cnn": flax_cnn, "small_cnn_bn": small_cnn_bn, "deeper_cnn": deeper_cnn,
          "resnet": resnet, "resnet8": resnet8, "resnet14": resnet14, "resnet20": resnet20,
          "digit_cnn": digit_cnn}
MODEL_NAMES = tuple(MODELS)


def get_model(name: str, **options) -> Sequential:
    """Build a model by name (one of ``MODELS``) with the options of the model functions."""
    key = str(name).lower().replace("-", "_")
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    accepted = inspect.signature(MODELS[key]).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())  # **options
    unknown = [] if takes_any else [option for option in options if option not in accepted]
    if unknown:
        raise TypeError(f"get_model({name!r}): unknown option(s) {', '.join(unknown)}; {key} takes "
                        f"{', '.join(accepted)}")
    return MODELS[key](**options)


__all__ = ["MODELS", "MODEL_NAMES", "get_model", "lenet5", "small_cnn", "tiny_cnn", "mlp", "flax_cnn",
           "small_cnn_bn", "deeper_cnn", "resnet", "resnet8", "resnet14", "resnet20", "basic_block",
           "conv_bn_relu", "inception_block", "dense_block", "dense_layer", "mobilenet_block",
           "inverted_residual", "shufflenet_unit", "digit_cnn"]
