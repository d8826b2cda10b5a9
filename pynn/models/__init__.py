"""Models: Sequential and the Model base with the training loop."""

from .cloning import clone_model
from .model import Model
from .sequential import Sequential


def load_model(filepath, custom_objects=None, compile: bool = True, safe_mode: bool = True):
    """Loads a model saved with `model.save` (see pynn.saving.load_model)."""
    from ..saving import load_model as _load
    return _load(filepath, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)


__all__ = ["Model", "Sequential", "clone_model", "load_model"]
