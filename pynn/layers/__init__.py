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
from .recurrent import GRU, LSTM, Bidirectional, SimpleRNN, TimeDistributed
from .regularization import Dropout, SpatialDropout2D
from .reshaping import Flatten, Reshape, ZeroPadding2D

__all__ = ["Activation", "Add", "Average", "AveragePooling1D", "AveragePooling2D",
           "BatchNormalization", "Bidirectional", "Concatenate", "Conv1D", "Conv2D", "Dense",
           "Dropout", "Embedding", "Flatten", "GRU", "GlobalAveragePooling2D",
           "GlobalMaxPooling2D", "Input", "InputLayer", "KerasTensor", "LSTM", "Layer", "Maximum",
           "MaxPooling1D", "MaxPooling2D", "Multiply", "Reshape", "SimpleRNN",
           "SpatialDropout2D", "Subtract", "TimeDistributed", "ZeroPadding2D"]
