"""Layers, one module per family as in Keras. The families below export their `__all__`."""

from . import activations as _activations
from . import augmentation as _augmentation
from . import conv_lstm as _conv_lstm
from . import convolutional_ops as _convolutional_ops
from . import masking as _masking
from . import merging as _merging
from . import normalization as _normalization
from . import preprocessing as _preprocessing
from . import preprocessing_text as _preprocessing_text
from . import recurrent as _recurrent
from . import regularization as _regularization
from . import reshaping as _reshaping
from .activations import *  # noqa: F403
from .attention import AdditiveAttention, Attention, MultiHeadAttention
from .augmentation import *  # noqa: F403
from .base import InputSpec, Layer
from .conv_lstm import *  # noqa: F403
from .convolutional import Conv1D, Conv1DTranspose, Conv2D, Conv2DTranspose
from .convolutional_ops import *  # noqa: F403
from .core import (
    Activation,
    Dense,
    EinsumDense,
    Embedding,
    Lambda,
    PositionEmbedding,
    Wrapper,
    deserialize,
    serialize,
)
from .input_layer import Input, InputLayer, KerasTensor
from .masking import *  # noqa: F403
from .merging import *  # noqa: F403
from .normalization import *  # noqa: F403
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
from .preprocessing import *  # noqa: F403
from .preprocessing_text import *  # noqa: F403
from .recurrent import *  # noqa: F403
from .regularization import *  # noqa: F403
from .reshaping import *  # noqa: F403

# Keras's other names for the same classes
AvgPool1D, AvgPool2D = AveragePooling1D, AveragePooling2D
MaxPool1D, MaxPool2D = MaxPooling1D, MaxPooling2D
GlobalAvgPool1D, GlobalAvgPool2D = GlobalAveragePooling1D, GlobalAveragePooling2D
GlobalMaxPool1D, GlobalMaxPool2D = GlobalMaxPooling1D, GlobalMaxPooling2D
Convolution1D, Convolution2D = Conv1D, Conv2D
Convolution1DTranspose, Convolution2DTranspose = Conv1DTranspose, Conv2DTranspose
__all__ = ["Activation", "AdditiveAttention", "Attention", "AveragePooling1D",
           "AveragePooling2D", "Conv1D", "Conv2D", "Conv1DTranspose",
           "Conv2DTranspose", "Dense", "EinsumDense", "Embedding", "InputSpec", "Wrapper",
           "deserialize",
           "serialize",
           "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
           "GlobalMaxPooling2D", "Input", "InputLayer", "KerasTensor", "Lambda",
           "Layer", "MaxPooling1D", "MaxPooling2D", "MultiHeadAttention",
           "PositionEmbedding", "AvgPool1D",
           "AvgPool2D", "MaxPool1D", "MaxPool2D", "GlobalAvgPool1D", "GlobalAvgPool2D",
           "GlobalMaxPool1D", "GlobalMaxPool2D", "Convolution1D", "Convolution2D",
           "Convolution1DTranspose", "Convolution2DTranspose"] + [
    *_activations.__all__, *_augmentation.__all__,
    *_conv_lstm.__all__, *_convolutional_ops.__all__, *_masking.__all__,
    *_merging.__all__,
    *_normalization.__all__, *_preprocessing.__all__, *_preprocessing_text.__all__,
    *_recurrent.__all__,
    *_regularization.__all__, *_reshaping.__all__]
