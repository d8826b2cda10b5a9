"""Layers, one module per family as in Keras."""

from .activations import ELU, LeakyReLU, ReLU, Softmax
from .attention import MultiHeadAttention
from .base import Layer
from .convolutional import Conv1D, Conv1DTranspose, Conv2D, Conv2DTranspose
from .core import Activation, Dense, Embedding, Lambda, PositionEmbedding
from .input_layer import Input, InputLayer, KerasTensor
from .merging import Add, Average, Concatenate, Maximum, Multiply, Subtract
from .normalization import BatchNormalization, LayerNormalization
from .pooling import (
                      AveragePooling1D,
                      AveragePooling2D,
                      GlobalAveragePooling1D,
                      GlobalAveragePooling2D,
                      GlobalMaxPooling1D,
                      GlobalMaxPooling2D,
                      MaxPooling1D,
                      MaxPooling2D,
)
from .recurrent import GRU, LSTM, Bidirectional, SimpleRNN, TimeDistributed
from .regularization import Dropout, SpatialDropout2D
from .reshaping import Flatten, Reshape, ZeroPadding2D

# Keras's other names for the same classes
AvgPool1D, AvgPool2D = AveragePooling1D, AveragePooling2D
MaxPool1D, MaxPool2D = MaxPooling1D, MaxPooling2D
GlobalAvgPool1D, GlobalAvgPool2D = GlobalAveragePooling1D, GlobalAveragePooling2D
GlobalMaxPool1D, GlobalMaxPool2D = GlobalMaxPooling1D, GlobalMaxPooling2D
Convolution1D, Convolution2D = Conv1D, Conv2D
Convolution1DTranspose, Convolution2DTranspose = Conv1DTranspose, Conv2DTranspose
__all__ = ["Activation", "Add", "Average", "AveragePooling1D", "AveragePooling2D",
           "BatchNormalization", "Bidirectional", "Concatenate", "Conv1D", "Conv2D",
           "Conv1DTranspose", "Conv2DTranspose", "Dense",
           "Dropout", "ELU", "Embedding", "Flatten", "GlobalAveragePooling1D",
           "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GRU", "Input",
           "InputLayer", "KerasTensor", "Lambda", "Layer", "LayerNormalization", "LeakyReLU",
           "LSTM",
           "Maximum", "MaxPooling1D", "MaxPooling2D", "MultiHeadAttention", "Multiply",
           "PositionEmbedding", "ReLU", "Reshape", "SimpleRNN", "Softmax", "SpatialDropout2D",
           "Subtract", "TimeDistributed", "ZeroPadding2D",
           "AvgPool1D", "AvgPool2D", "MaxPool1D", "MaxPool2D", "GlobalAvgPool1D",
           "GlobalAvgPool2D", "GlobalMaxPool1D", "GlobalMaxPool2D", "Convolution1D",
           "Convolution2D", "Convolution1DTranspose", "Convolution2DTranspose"]
