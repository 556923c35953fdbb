"""Layers: each a small object with forward, backward, params and grads (see base.py)."""

from .activations import Activation
from .base import Layer
from .conv import Conv2D
from .dense import Dense
from .depthwise import DepthwiseConv2D, SeparableConv2D
from .pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from .reshape import Flatten

__all__ = ["Layer", "Dense", "Conv2D", "Activation", "Flatten", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D"]
__all__ += ["DepthwiseConv2D", "SeparableConv2D"]
