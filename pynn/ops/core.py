"""keras.ops core functions: conversion, shape, cast, gradients stopped, indexing."""

import numpy as np

from ..layers.input_layer import KerasTensor
from ..tensor import Tensor
from . import _base
from ._base import cast, is_symbolic  # noqa: F401  (re-exported)


def convert_to_tensor(x, dtype=None, sparse=None):
    """x as a Tensor (a copy of arrays; a Tensor of the same dtype is returned as it is); a
    symbolic tensor stays symbolic."""
    if isinstance(x, KerasTensor):
        return x if dtype is None else cast(x, dtype)
    if isinstance(x, Tensor) and dtype is None:
        return x
    x = _base.eager(x)
    if isinstance(x, Tensor) and dtype is not None:
        return cast(x, dtype)
    a = np.asarray(x, dtype=dtype)
    if a.dtype.kind in "iub" and dtype is None:
        a = a.astype(np.int32)
    elif a.dtype.kind == "f":
        a = a.astype(np.float32)
    return Tensor(a)


def convert_to_numpy(x) -> np.ndarray:
    """A NumPy copy of x's values."""
    if isinstance(x, KerasTensor):
        x.__array__()
    return np.array(_base.eager(x))


def stop_gradient(x):
    """x's values, cut from the tape (no gradient flows through them); in a graph, a copy whose
    gradient is not passed on."""
    if is_symbolic(x):
        t = _base.as_float(_base.symbolic(x, False))
        return _base.record("cast", [t], (0, 1), name="stop_gradient")
    return Tensor(np.asarray(_base.eager(x)))


def shape(x) -> tuple:
    """x's shape as a tuple: None for the batch axis of a symbolic tensor."""
    if isinstance(x, KerasTensor):
        from .. import random as _random  # the batch size of noise drawn with this shape
        _random._note_shape_source(x)
        return tuple(x.shape)
    return tuple(np.shape(_base.eager(x)))


def dtype(x) -> str:
    return x.dtype if isinstance(x, KerasTensor) else np.asarray(_base.eager(x)).dtype.name


def is_tensor(x) -> bool:
    return isinstance(x, (Tensor, KerasTensor))


def _getitem(x, key):
    return _base.getitem(x, key)
