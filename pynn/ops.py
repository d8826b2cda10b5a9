"""Tensor operations with Keras 3's `keras.ops` names, recorded on the tape for backward.

Each takes Tensors, arrays or numbers and returns a pynn.Tensor; the gradient flows to every
float operand that requires one. Write custom losses and metrics with them.

Example:
    >>> def my_mse(y_true, y_pred):
    ...     return pynn.ops.mean(pynn.ops.square(y_pred - y_true))
"""

import numpy as np

from . import _core
from .tensor import (
    ABS,
    ADD,
    DIV,
    EXP,
    LOG,
    MAX,
    MAXIMUM,
    MEAN,
    MIN,
    MINIMUM,
    MUL,
    NEG,
    POW,
    RELU,
    SIGMOID,
    SQRT,
    SQUARE,
    SUB,
    SUM,
    TANH,
    Tensor,
    _resolve_shape,
)


def convert_to_tensor(x, dtype=None) -> Tensor:
    """x as a Tensor (a copy of arrays; a Tensor is returned as it is)."""
    if isinstance(x, Tensor) and dtype is None:
        return x
    return Tensor(np.asarray(x, dtype=dtype))


def convert_to_numpy(x) -> np.ndarray:
    """A NumPy copy of x's values."""
    return np.array(x)


def stop_gradient(x) -> Tensor:
    """x's values, cut from the tape: no gradient flows through them."""
    return Tensor(np.asarray(x))


def add(x1, x2):
    return _core.binary(ADD, x1, x2)


def subtract(x1, x2):
    return _core.binary(SUB, x1, x2)


def multiply(x1, x2):
    return _core.binary(MUL, x1, x2)


def divide(x1, x2):
    return _core.binary(DIV, x1, x2)


true_divide = divide


def power(x1, x2):
    return _core.binary(POW, x1, x2)


def maximum(x1, x2):
    return _core.binary(MAXIMUM, x1, x2)


def minimum(x1, x2):
    return _core.binary(MINIMUM, x1, x2)


def clip(x, x_min, x_max):
    """x limited to [x_min, x_max]; the gradient passes where x lies inside."""
    return _core.binary(MINIMUM, _core.binary(MAXIMUM, x, x_min), x_max)


def matmul(x1, x2):
    return _core.matmul(x1, x2)


def negative(x):
    return _core.unary(NEG, x)


def exp(x):
    return _core.unary(EXP, x)


def log(x):
    return _core.unary(LOG, x)


def sqrt(x):
    return _core.unary(SQRT, x)


def abs(x):  # noqa: A001  (Keras's name)
    return _core.unary(ABS, x)


absolute = abs


def square(x):
    return _core.unary(SQUARE, x)


def relu(x):
    return _core.unary(RELU, x)


def sigmoid(x):
    return _core.unary(SIGMOID, x)


def tanh(x):
    return _core.unary(TANH, x)


def softmax(x, axis: int = -1):
    return _core.softmax(x, axis, False)


def log_softmax(x, axis: int = -1):
    return _core.softmax(x, axis, True)


def logsumexp(x, axis=None, keepdims: bool = False):
    """log(sum(exp(x))) over axis, computed stably (the maximum is taken out first)."""
    m = stop_gradient(_core.reduce(MAX, x, axis, True))
    out = log(_core.reduce(SUM, exp(subtract(x, m)), axis, True)) + m
    if not keepdims:
        out = out.reshape(_reduced_shape(np.shape(x), axis))
    return out


def sum(x, axis=None, keepdims: bool = False):  # noqa: A001
    return _core.reduce(SUM, x, axis, keepdims)


def mean(x, axis=None, keepdims: bool = False):
    return _core.reduce(MEAN, x, axis, keepdims)


def max(x, axis=None, keepdims: bool = False):  # noqa: A001
    return _core.reduce(MAX, x, axis, keepdims)


def min(x, axis=None, keepdims: bool = False):  # noqa: A001
    return _core.reduce(MIN, x, axis, keepdims)


def argmax(x, axis=None) -> np.ndarray:
    """Indices of the maxima, as a NumPy array (no gradient)."""
    return np.asarray(x).argmax(axis)


def argmin(x, axis=None) -> np.ndarray:
    return np.asarray(x).argmin(axis)


def reshape(x, newshape):
    newshape = (newshape,) if isinstance(newshape, int) else tuple(newshape)
    return _core.reshape(x, _resolve_shape(newshape, int(np.prod(np.shape(x), dtype=np.int64))))


def transpose(x, axes=None):
    nd = len(np.shape(x))
    axes = tuple(range(nd))[::-1] if axes is None else tuple(a % nd for a in axes)
    return _core.transpose(x, axes)


def one_hot(x, num_classes: int) -> Tensor:
    """Integer labels as one-hot float32 rows (a Tensor without gradient)."""
    labels = np.asarray(x).astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"one_hot: labels must lie in 0..{num_classes - 1}")
    return Tensor(np.eye(num_classes, dtype=np.float32)[labels])


def _reduced_shape(shape: tuple, axis) -> tuple:
    if axis is None:
        return ()
    axes = {a % len(shape) for a in ((axis,) if isinstance(axis, int) else axis)}
    return tuple(d for i, d in enumerate(shape) if i not in axes)
