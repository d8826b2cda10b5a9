"""Exporting a model for inference outside pynn (`Model.export`)."""

from .c import to_c

__all__ = ["to_c"]
