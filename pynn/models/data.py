"""Turning user data (NumPy arrays of any numeric dtype, pandas objects, nested lists) into the
arrays the core borrows: converted once, as a whole, never element by element."""

import numpy as np


def to_array(data, what: str) -> np.ndarray:
    """A NumPy array of real numbers from `data`, or a TypeError/ValueError naming `what`."""
    if data is None:
        raise ValueError(f"{what} is missing")
    if hasattr(data, "to_numpy") and not isinstance(data, np.ndarray):  # pandas
        data = data.to_numpy()
    try:
        a = np.asarray(data)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{what} could not be read as an array: {e}") from None
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{what} must hold real numbers, got dtype {a.dtype}")
    if a.ndim == 0:
        raise ValueError(f"{what} must have a batch axis, got a scalar")
    return a


def to_float32(data, what: str) -> np.ndarray:
    """C-contiguous float32 (no copy when it already is)."""
    return np.ascontiguousarray(to_array(data, what), dtype=np.float32)


def to_int32(data, what: str) -> np.ndarray:
    """C-contiguous int32 indices (no copy when it already is); floats must be whole numbers."""
    a = to_array(data, what)
    if a.dtype.kind == "f" and not np.array_equal(a, np.round(a)):
        raise ValueError(f"{what} must hold integer indices for this model's int32 input")
    if a.size and (a.min() < -2**31 or a.max() >= 2**31):
        raise ValueError(f"{what} holds values outside the int32 range")
    return np.ascontiguousarray(a, dtype=np.int32)


def shape_str(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"
