"""Random numbers, as Keras 3's `keras.random`."""

import weakref

_shape_source = None  # a weak reference to the last symbolic tensor given to pynn.ops.shape


def _note_shape_source(x) -> None:
    """Called by pynn.ops.shape on a symbolic tensor: noise of shape (None, ...) takes its batch."""
    global _shape_source
    try:
        _shape_source = weakref.ref(x)
    except TypeError:
        _shape_source = None
