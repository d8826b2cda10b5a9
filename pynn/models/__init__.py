"""Models: Sequential and the Model base with the training loop."""

from .model import Model
from .sequential import Sequential

__all__ = ["Model", "Sequential"]
