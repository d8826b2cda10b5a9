"""Layers, one module per family as in Keras."""

from .base import Layer
from .convolutional import Conv1D, Conv2D
from .core import Activation, Dense, Embedding
from .input_layer import Input, InputLayer, KerasTensor
from .merging import Add, Average, Concatenate, Maximum, Multiply, Subtract
from .normalization import BatchNormalization
from .pooling import (
                      AveragePooling1D,
                      AveragePooling2D,
                      GlobalAveragePooling2D,
                      GlobalMaxPooling2D,
                      MaxPooling1D,
                      MaxPooling2D,
)
from .regularization import Dropout, SpatialDropout2D
from .reshaping import Flatten, Reshape, ZeroPadding2D

__all__ = ["Activation", "Add", "Average", "AveragePooling1D", "AveragePooling2D",
           "BatchNormalization", "Concatenate", "Conv1D", "Conv2D", "Dense", "Dropout",
           "Embedding", "Flatten", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Input",
           "InputLayer", "KerasTensor", "Layer", "Maximum", "MaxPooling1D", "MaxPooling2D",
           "Multiply", "Reshape", "SpatialDropout2D", "Subtract", "ZeroPadding2D"]
