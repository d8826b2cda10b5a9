"""Tensor operations with Keras 3's `keras.ops` names.

Each works three ways, as in Keras: on symbolic tensors (a `pynn.Input`, or inside a layer's
call() while pynn traces it) it records a node of the model's core graph; on `pynn.Tensor`s it
runs now and records itself on the tape for backward; on arrays and numbers it runs now. The
same C kernels run in every case. A layer's weight is an operand like any other.

Example:
    >>> def my_mse(y_true, y_pred):
    ...     return pynn.ops.mean(pynn.ops.square(y_pred - y_true))
"""

from . import core, math, nn, numpy  # noqa: F401
from .core import (  # noqa: F401
    cast,
    convert_to_numpy,
    convert_to_tensor,
    dtype,
    is_tensor,
    shape,
    stop_gradient,
)
from .math import erf, logsumexp  # noqa: F401
from .nn import (  # noqa: F401
    gelu,
    log_sigmoid,
    log_softmax,
    one_hot,
    relu,
    sigmoid,
    silu,
    softmax,
    softplus,
    swish,
    tanh,
)
from .numpy import *  # noqa: F401,F403
from .numpy import (  # noqa: F401
    abs,
    absolute,
    add,
    amax,
    amin,
    argmax,
    argmin,
    clip,
    concatenate,
    divide,
    exp,
    expand_dims,
    log,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    multiply,
    negative,
    power,
    reshape,
    sqrt,
    square,
    squeeze,
    subtract,
    sum,
    transpose,
    true_divide,
)
