"""Layers, one module per family as in Keras."""

from .base import Layer
from .core import Activation, Dense
from .input_layer import Input, InputLayer, KerasTensor

__all__ = ["Activation", "Dense", "Input", "InputLayer", "KerasTensor", "Layer"]
