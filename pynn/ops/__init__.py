"""Tensor operations with Keras 3's `keras.ops` names.

Each works three ways, as in Keras: on symbolic tensors (a `pynn.Input`, or inside a layer's
call() while pynn traces it) it records a node of the model's core graph; on `pynn.Tensor`s it
runs now and records itself on the tape for backward; on arrays and numbers it runs now. The
same C kernels run in every case. A layer's weight is an operand like any other.

Control flow (cond, switch, fori_loop, while_loop, scan, map, ...) runs in Python, as Keras's
eager backends do: on symbolic tensors it is unrolled while the model is built, so conditions
and trip counts must be Python values. A few functions run on data only (the linear algebra of
`ops.linalg`, the integer functions such as bincount or unique): they raise
NotImplementedError on a symbolic tensor or one that needs a gradient.

Example:
    >>> def my_mse(y_true, y_pred):
    ...     return pynn.ops.mean(pynn.ops.square(y_pred - y_true))
"""

from . import core, image, linalg, math, nn, numpy  # noqa: F401
from .core import (  # noqa: F401
    associative_scan,
    cast,
    cond,
    convert_to_numpy,
    convert_to_tensor,
    dtype,
    fori_loop,
    get_item,
    is_tensor,
    map,
    saturate_cast,
    scan,
    shape,
    slice,
    slice_update,
    stop_gradient,
    switch,
    unstack,
    vectorized_map,
    while_loop,
)
from .image import depth_to_space, space_to_depth  # noqa: F401
from .linalg import (  # noqa: F401
    cholesky,
    cholesky_inverse,
    det,
    eig,
    eigh,
    inv,
    lstsq,
    lu_factor,
    matrix_rank,
    pinv,
    qr,
    slogdet,
    solve,
    solve_triangular,
    svd,
)
from .math import (  # noqa: F401
    erf,
    erfc,
    extract_sequences,
    in_top_k,
    logdet,
    logsumexp,
    segment_max,
    segment_min,
    segment_prod,
    segment_sum,
)
from .nn import (  # noqa: F401
    average_pool,
    batch_normalization,
    binary_crossentropy,
    categorical_crossentropy,
    celu,
    conv,
    conv_transpose,
    ctc_loss,
    depthwise_conv,
    dot_product_attention,
    elu,
    gelu,
    glu,
    hard_shrink,
    hard_sigmoid,
    hard_silu,
    hard_swish,
    hard_tanh,
    layer_normalization,
    leaky_relu,
    log_sigmoid,
    log_softmax,
    max_pool,
    moments,
    multi_hot,
    normalize,
    one_hot,
    psnr,
    relu,
    relu6,
    rms_normalization,
    selu,
    separable_conv,
    sigmoid,
    silu,
    soft_shrink,
    softmax,
    softplus,
    softsign,
    sparse_categorical_crossentropy,
    sparse_plus,
    sparse_sigmoid,
    squareplus,
    swish,
    tanh,
    tanh_shrink,
    threshold,
)
from .numpy import *  # noqa: F401,F403
