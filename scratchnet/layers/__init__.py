"""Layers: each a small object with forward, backward, params and grads (see base.py)."""

from .activations import Activation
from .base import Layer
from .containers import Chain, Parallel, Residual
from .conv import Conv2D
from .dense import Dense
from .depthwise import DepthwiseConv2D, SeparableConv2D
from .dropout import Dropout, SpatialDropout2D
from .merge import Add, Concatenate
from .normalization import BatchNorm
from .padding import ZeroPadding2D
from .pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from .reshape import ChannelShuffle, Flatten
from .upsampling import UpSampling2D

__all__ = ["Layer", "Dense", "Conv2D", "Activation", "Flatten", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D",
           "Chain", "Residual", "Parallel", "Add", "Concatenate",
           "BatchNorm", "Dropout", "SpatialDropout2D", "ChannelShuffle", "ZeroPadding2D", "UpSampling2D",
           "DepthwiseConv2D", "SeparableConv2D"]
