"""keras.ops.nn: activations and the functions of neural networks, written with `_base`'s
primitives (symbolic tensors, Tensors and arrays alike)."""

import numpy as np

from . import _base
from ._base import softmax as _softmax
from ._base import unary


def relu(x):
    return unary("relu", x)


def sigmoid(x):
    return unary("sigmoid", x)


def tanh(x):
    return unary("tanh", x)


def softmax(x, axis: int = -1):
    return _softmax(x, axis, False)


def log_softmax(x, axis: int = -1):
    return _softmax(x, axis, True)


def softplus(x):
    return unary("softplus", x)


def silu(x):
    return unary("silu", x)


swish = silu


def gelu(x, approximate: bool = True):
    """Keras's default is the tanh approximation."""
    if not approximate:
        return unary("gelu", x)
    # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    from .numpy import add, multiply, power
    inner = multiply(add(x, multiply(power(x, 3.0), 0.044715)), 0.7978845608028654)
    return multiply(multiply(x, 0.5), add(unary("tanh", inner), 1.0))


def log_sigmoid(x):
    return unary("log_sigmoid", x)


def one_hot(x, num_classes: int, axis: int = -1, dtype=None):
    """Integer labels as one-hot float32 rows (data only; no gradient)."""
    if _base.is_symbolic(x):
        raise NotImplementedError("one_hot of a symbolic tensor is not supported yet")
    labels = np.asarray(_base.eager(x)).astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"one_hot: labels must lie in 0..{num_classes - 1}")
    out = np.eye(num_classes, dtype=np.float32)[labels]
    if axis != -1:
        out = np.moveaxis(out, -1, axis)
    from ..tensor import Tensor
    return Tensor(out)
