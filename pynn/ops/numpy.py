"""keras.ops's NumPy-like functions, written with the primitives of `_base`: each works on
symbolic tensors (recorded in the model's graph), on Tensors (recorded on the tape) and on
arrays and numbers (run now)."""


import numpy as np

from . import _base
from ._base import binary, concatenate, matmul, reduce, reshape, transpose, unary  # noqa: F401
from ._base import is_symbolic as _sym


def add(x1, x2):
    return binary("add", x1, x2)


def subtract(x1, x2):
    return binary("subtract", x1, x2)


def multiply(x1, x2):
    return binary("multiply", x1, x2)


def divide(x1, x2):
    return binary("divide", x1, x2)


true_divide = divide


def power(x1, x2):
    return binary("power", x1, x2)


def maximum(x1, x2):
    return binary("maximum", x1, x2)


def minimum(x1, x2):
    return binary("minimum", x1, x2)


def clip(x, x_min, x_max):
    """x limited to [x_min, x_max]; the gradient passes where x lies inside."""
    return minimum(maximum(x, x_min), x_max)


def negative(x):
    return unary("negative", x)


def exp(x):
    return unary("exp", x)


def log(x):
    return unary("log", x)


def sqrt(x):
    return unary("sqrt", x)


def abs(x):  # noqa: A001  (Keras's name)
    return unary("abs", x)


absolute = abs


def square(x):
    return unary("square", x)


def sum(x, axis=None, keepdims: bool = False):  # noqa: A001
    return reduce("sum", x, axis, keepdims)


def mean(x, axis=None, keepdims: bool = False):
    return reduce("mean", x, axis, keepdims)


def max(x, axis=None, keepdims: bool = False, initial=None):  # noqa: A001
    out = reduce("max", x, axis, keepdims)
    return out if initial is None else maximum(out, initial)


def min(x, axis=None, keepdims: bool = False, initial=None):  # noqa: A001
    out = reduce("min", x, axis, keepdims)
    return out if initial is None else minimum(out, initial)


amax, amin = max, min


def argmax(x, axis=None, keepdims: bool = False):
    """Indices of the maxima, as int32 (no gradient; data only)."""
    if _sym(x):
        raise NotImplementedError("argmax of a symbolic tensor is not supported yet")
    return _base.tensor(np.asarray(_base.eager(x)).argmax(axis, keepdims=keepdims))


def argmin(x, axis=None, keepdims: bool = False):
    if _sym(x):
        raise NotImplementedError("argmin of a symbolic tensor is not supported yet")
    return _base.tensor(np.asarray(_base.eager(x)).argmin(axis, keepdims=keepdims))


def expand_dims(x, axis):
    shape = list(_shape(x))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    nd = len(shape) + len(axes)
    for a in sorted(a % nd for a in axes):
        shape.insert(a, 1)
    return reshape(x, tuple(-1 if d is None else d for d in shape))


def squeeze(x, axis=None):
    shape = _shape(x)
    nd = len(shape)
    if axis is None:
        keep = [d for i, d in enumerate(shape) if d != 1 or (i == 0 and _sym(x))]
    else:
        axes = {a % nd for a in ((axis,) if isinstance(axis, int) else axis)}
        for a in axes:
            if shape[a] != 1:
                raise ValueError(f"squeeze: axis {a} has size {shape[a]}, not 1")
        keep = [d for i, d in enumerate(shape) if i not in axes]
    return reshape(x, tuple(-1 if d is None else d for d in keep))


def _shape(x) -> tuple:
    return tuple(x.shape) if _sym(x) else np.shape(_base.eager(x))
