"""Exporting a model for inference outside pynn (`Model.export`)."""

from .c import to_c
from .onnx import to_onnx

__all__ = ["to_c", "to_onnx"]
