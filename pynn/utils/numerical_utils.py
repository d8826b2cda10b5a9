"""Label encoding helpers with Keras's semantics."""

import numpy as np


def to_categorical(x, num_classes: int | None = None) -> np.ndarray:
    """Converts integer class labels to a one-hot float32 matrix.

    Args:
        x: integer labels of any shape.
        num_classes: the number of classes; max(x) + 1 when None.

    Returns:
        A float32 array of shape x.shape + (num_classes,) (a trailing axis of 1 is dropped first).

    Example:
        >>> pynn.utils.to_categorical([0, 2], num_classes=3)
        array([[1., 0., 0.], [0., 0., 1.]], dtype=float32)
    """
    if num_classes is not None and (isinstance(num_classes, bool) or
                                    not isinstance(num_classes, (int, np.integer)) or
                                    num_classes < 1):
        raise ValueError(f"to_categorical: num_classes must be a positive int or None, got "
                         f"{num_classes!r}")
    y = np.asarray(x)
    if y.dtype.kind not in "iub" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
        raise ValueError("to_categorical: labels must be integers")
    y = y.astype(np.int64)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y.reshape(y.shape[:-1])
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"to_categorical: labels must lie in 0..{num_classes - 1}")
    out = np.zeros(y.shape + (num_classes,), dtype=np.float32)
    np.put_along_axis(out, y[..., None], 1.0, axis=-1)
    return out


def normalize(x, axis: int = -1, order: int = 2) -> np.ndarray:
    """Scales x to unit `order`-norm along `axis` (a zero vector stays zero), as
    keras.utils.normalize.

    Example:
        >>> pynn.utils.normalize(np.array([[3.0, 4.0]]))
        array([[0.6, 0.8]])
    """
    x = np.asarray(x)
    norm = np.atleast_1d(np.linalg.norm(x, order, axis))
    norm[norm == 0] = 1
    return x / np.expand_dims(norm, axis)  # Keras's `axis or -1` breaks axis=0; not here
