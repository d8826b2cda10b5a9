"""keras.ops.nn: activations and the functions of neural networks, written with `_base`'s
primitives (symbolic tensors, Tensors and arrays alike)."""

import numpy as np

from ..tensor import Tensor
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


def one_hot(x, num_classes: int, axis: int = -1, dtype=None, sparse: bool = False):
    """Integer labels as one-hot float32 rows (no gradient). On data a label outside
    [0, num_classes) raises ValueError; in a model its row is all zeros (as Keras's JAX)."""
    if sparse:
        raise NotImplementedError("one_hot: pynn has no sparse tensors (sparse=True)")
    if _base.is_symbolic(x):
        N = _np()
        out = N.equal(N.expand_dims(x, -1), np.arange(num_classes, dtype=np.float32))
        if axis != -1:
            out = N.moveaxis(out, -1, axis)
        return out if dtype is None else _base.cast(out, N._dtype(dtype))
    labels = np.asarray(_base.eager(x)).astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"one_hot: labels must lie in 0..{num_classes - 1}")
    out = np.eye(num_classes, dtype=np.float32)[labels]
    if axis != -1:
        out = np.moveaxis(out, -1, axis)
    from ..tensor import Tensor
    return Tensor(out)


# -- more activations -----------------------------------------------------------------------------
def _np():
    from . import numpy as N
    return N


def relu6(x):
    """min(max(x, 0), 6)."""
    return _np().minimum(unary("relu", _np()._v(x)), 6.0)


def elu(x, alpha: float = 1.0):
    """x for x > 0, alpha (e^x - 1) otherwise."""
    N = _np()
    x = N._v(x)
    return N.add(unary("relu", x), N.multiply(N.expm1(N.minimum(x, 0.0)), alpha))


def selu(x):
    """scale * elu(x, alpha) with Keras's constants."""
    return _np().multiply(elu(x, 1.6732632423543772848170429916717),
                          1.0507009873554804934193349852946)


def celu(x, alpha: float = 1.0):
    """max(x, 0) + min(alpha (e^(x / alpha) - 1), 0)."""
    N = _np()
    x = N._v(x)
    return N.add(unary("relu", x), N.multiply(N.expm1(N.divide(N.minimum(x, 0.0), alpha)), alpha))


def leaky_relu(x, negative_slope: float = 0.2):
    """x for x >= 0, negative_slope x otherwise."""
    N = _np()
    x = N._v(x)
    return N.subtract(unary("relu", x), N.multiply(unary("relu", N.negative(x)), negative_slope))


def hard_sigmoid(x):
    """relu6(x + 3) / 6."""
    N = _np()
    return N.multiply(relu6(N.add(N._v(x), 3.0)), 1.0 / 6.0)


def hard_silu(x):
    """x * hard_sigmoid(x)."""
    x = _np()._v(x)
    return _np().multiply(x, hard_sigmoid(x))


hard_swish = hard_silu


def hard_tanh(x):
    """x clipped to [-1, 1]."""
    return _np().clip(_np()._v(x), -1.0, 1.0)


def hard_shrink(x, threshold: float = 0.5):
    """x where |x| > threshold, else 0."""
    N = _np()
    x = N._v(x)
    keep = unary("relu", N.sign(N.subtract(N.abs(x), threshold)))
    return N.multiply(x, keep)


def soft_shrink(x, threshold: float = 0.5):
    """x - threshold above it, x + threshold below -threshold, 0 between."""
    N = _np()
    x = N._v(x)
    return N.subtract(unary("relu", N.subtract(x, threshold)),
                      unary("relu", N.subtract(N.negative(x), threshold)))


def tanh_shrink(x):
    """x - tanh(x)."""
    x = _np()._v(x)
    return _np().subtract(x, unary("tanh", x))


def threshold(x, threshold, default_value):  # noqa: F811  (Keras's argument name)
    """x where x > threshold, else default_value."""
    N = _np()
    x = N._v(x)
    keep = unary("relu", N.sign(N.subtract(x, threshold)))
    return N.add(N.multiply(x, keep), N.multiply(N.subtract(1.0, keep), default_value))


def softsign(x):
    """x / (1 + |x|)."""
    N = _np()
    x = N._v(x)
    return N.divide(x, N.add(N.abs(x), 1.0))


def squareplus(x, b=4):
    """(x + sqrt(x^2 + b)) / 2."""
    N = _np()
    x = N._v(x)
    return N.multiply(N.add(x, N.sqrt(N.add(N.square(x), b))), 0.5)


def sparse_plus(x):
    """0 for x <= -1, (x + 1)^2 / 4 between -1 and 1, x for x >= 1."""
    N = _np()
    x = N._v(x)
    c = N.clip(x, -1.0, 1.0)
    return N.add(N.multiply(N.square(N.add(c, 1.0)), 0.25), unary("relu", N.subtract(x, 1.0)))


def sparse_sigmoid(x):
    """0 for x <= -1, (x + 1) / 2 between -1 and 1, 1 for x >= 1."""
    N = _np()
    return N.multiply(N.add(N.clip(N._v(x), -1.0, 1.0), 1.0), 0.5)


def glu(x, axis: int = -1):
    """a * sigmoid(b), a and b the two halves of x along axis."""
    N = _np()
    x = N._v(x)
    n = N._shape(x)[N._axis(axis, N._ndim(x), "glu")]
    if n % 2:
        raise ValueError(f"glu: axis {axis} must have an even size, got {n}")
    a, b = N.split(x, 2, axis)
    return N.multiply(a, unary("sigmoid", b))


def normalize(x, axis: int = -1, order: int = 2, epsilon=None):
    """x / max(norm(x, order, axis), epsilon)."""
    N = _np()
    x = N._v(x)
    if not isinstance(order, int) or order < 1:
        raise ValueError(f"normalize: order must be an int >= 1, got {order}")
    if N._ndim(x) == 0:
        x = N.reshape(x, (1,))
    epsilon = 1e-7 if epsilon is None else epsilon
    if order == 2:
        inv = N.rsqrt(N.sum(N.square(x), axis, keepdims=True))
        return N.multiply(x, N.minimum(inv, 1.0 / epsilon))
    return N.divide(x, N.maximum(N.norm(x, order, axis, keepdims=True), epsilon))


# -- statistics and normalization -----------------------------------------------------------------
def moments(x, axes, keepdims: bool = False, synchronized: bool = False):
    """(mean, variance) of x over axes."""
    N = _np()
    x = N._v(x)
    m = N.mean(x, axes, keepdims=True)
    v = N.mean(N.square(N.subtract(x, m)), axes, keepdims=keepdims)
    if not keepdims:
        m = N.mean(x, axes, keepdims=False)
    return m, v


def _along(v, axis: int, nd: int):
    """A 1-D v shaped to broadcast along `axis` of a rank-nd tensor."""
    N = _np()
    if v is None:
        return None
    v = N._v(v)
    if N._ndim(v) != 1 or axis == nd - 1:
        return v
    return N.reshape(v, tuple(-1 if i == axis else 1 for i in range(nd)))


def batch_normalization(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3):
    """(x - mean) / sqrt(variance + epsilon) * scale + offset, the statistics along axis."""
    N = _np()
    x = N._v(x)
    nd = N._ndim(x)
    ax = N._axis(axis, nd, "batch_normalization")
    inv = N.rsqrt(N.add(_along(variance, ax, nd), epsilon))
    if scale is not None:
        inv = N.multiply(inv, _along(scale, ax, nd))
    out = N.multiply(N.subtract(x, _along(mean, ax, nd)), inv)
    return out if offset is None else N.add(out, _along(offset, ax, nd))


def _broadcast_param(v, axes, x_shape):
    N = _np()
    if v is None:
        return None
    v = N._v(v)
    nd = len(x_shape)
    if N._ndim(v) == nd or list(axes) == [nd - 1]:
        return v
    return N.reshape(v, tuple(x_shape[i] if i in axes else 1 for i in range(nd)))


def layer_normalization(x, gamma=None, beta=None, axis: int = -1, epsilon=None, **kwargs):
    """(x - mean) / sqrt(var + epsilon) * gamma + beta over axis (Keras's epsilon: 1e-7)."""
    N = _np()
    rms_scaling = kwargs.pop("rms_scaling", False)
    if kwargs:
        raise TypeError(f"layer_normalization: unexpected arguments {sorted(kwargs)}")
    x = N._v(x)
    epsilon = 1e-7 if epsilon is None else epsilon
    nd = N._ndim(x)
    axes = N._axes(axis, nd, "layer_normalization")
    shape = N._shape(x)
    gamma, beta = _broadcast_param(gamma, axes, shape), _broadcast_param(beta, axes, shape)
    if rms_scaling:
        inv = N.rsqrt(N.add(N.var(x, axes, keepdims=True), epsilon))
        out = N.multiply(x, inv)
        return out if gamma is None else N.multiply(out, gamma)
    m, v = moments(x, axes, keepdims=True)
    inv = N.rsqrt(N.add(v, epsilon))
    if gamma is not None:
        inv = N.multiply(inv, gamma)
    out = N.multiply(N.subtract(x, m), inv)
    return out if beta is None else N.add(out, beta)


def rms_normalization(x, scale=None, axis: int = -1, epsilon=None):
    """x / sqrt(mean(x^2) + epsilon) * scale over axis."""
    N = _np()
    x = N._v(x)
    epsilon = 1e-7 if epsilon is None else epsilon
    if N._ndim(x) == 0:
        x = N.reshape(x, (1,))
    out = N.multiply(x, N.rsqrt(N.add(N.mean(N.square(x), axis, keepdims=True), epsilon)))
    return out if scale is None else N.multiply(out, N._v(scale))


# -- losses (per sample, not reduced) -------------------------------------------------------------
_EPS = 1e-7


def binary_crossentropy(target, output, from_logits: bool = False):
    """-t log(p) - (1 - t) log(1 - p) elementwise (p clipped to [1e-7, 1 - 1e-7])."""
    N = _np()
    t, o = N._v(target), N._v(output)
    if N._shape(t) != N._shape(o):
        raise ValueError(f"binary_crossentropy: target and output must have the same shape, "
                         f"got {N._shape(t)} and {N._shape(o)}")
    if from_logits:
        # -t log_sigmoid(o) - (1 - t) log_sigmoid(-o)
        return N.subtract(N.negative(N.multiply(t, unary("log_sigmoid", o))),
                          N.multiply(N.subtract(1.0, t), unary("log_sigmoid", N.negative(o))))
    o = N.clip(o, _EPS, 1.0 - _EPS)
    return N.negative(N.add(N.multiply(t, N.log(o)),
                            N.multiply(N.subtract(1.0, t), N.log(N.subtract(1.0, o)))))


def categorical_crossentropy(target, output, from_logits: bool = False, axis: int = -1):
    """-sum(t log p) over axis (p normalized to sum 1 and clipped, or log_softmax of logits)."""
    N = _np()
    t, o = N._v(target), N._v(output)
    if N._shape(t) != N._shape(o):
        raise ValueError(f"categorical_crossentropy: target and output must have the same "
                         f"shape, got {N._shape(t)} and {N._shape(o)}")
    if from_logits:
        logp = log_softmax(o, axis)
    else:
        o = N.divide(o, N.sum(o, axis, keepdims=True))
        logp = N.log(N.clip(o, _EPS, 1.0 - _EPS))
    return N.negative(N.sum(N.multiply(t, logp), axis))


def sparse_categorical_crossentropy(target, output, from_logits: bool = False, axis: int = -1):
    """categorical_crossentropy with integer class labels as target."""
    N = _np()
    t, o = N._v(target), N._v(output)
    ts, os_ = N._shape(t), N._shape(o)
    if len(ts) == len(os_) and ts[-1] == 1:
        t = N.squeeze(t, -1)
        ts = ts[:-1]
    if len(os_) < 1:
        raise ValueError("sparse_categorical_crossentropy: output must be at least rank 1")
    nd = len(os_)
    ax = N._axis(axis, nd, "sparse_categorical_crossentropy")
    if ax != nd - 1:
        o = N.moveaxis(o, ax, -1)
        os_ = N._shape(o)
    if ts != os_[:-1]:
        raise ValueError(f"sparse_categorical_crossentropy: target's shape {ts} must be "
                         f"output's up to the last axis, {os_}")
    hot = one_hot(t, os_[-1])
    return categorical_crossentropy(hot, o, from_logits, -1)


def ctc_loss(target, output, target_length, output_length, mask_index: int = 0):
    """Connectionist temporal classification loss, per sample (Keras's ops.ctc_loss).

    Args:
        target: (batch, max_label_length) integer labels; only the first target_length of each
            row count.
        output: (batch, max_steps, num_classes) logits (not softmaxed).
        target_length: (batch,) each label's length.
        output_length: (batch,) each sample's number of steps.
        mask_index: the blank class.

    Returns:
        (batch,) float32 negative log likelihoods; infinite for a label no alignment of the
        sample's steps can produce (PyTorch's convention; Keras's JAX backend gives a large
        finite value there).

    Example:
        >>> pynn.ops.ctc_loss(np.array([[1, 2]]), np.zeros((1, 4, 3)), np.array([2]),
        ...                   np.array([4])).shape
        (1,)
    """
    N = _np()
    os_, ts = N._shape(output), N._shape(target)
    if len(os_) != 3 or len(ts) != 2 or os_[0] != ts[0]:
        raise ValueError(f"ctc_loss: output must be (batch, steps, classes) and target (batch, "
                         f"max_label_length) with the same batch, got {os_} and {ts}")
    for name, v in (("target_length", target_length), ("output_length", output_length)):
        if N._shape(v) != (os_[0],):
            raise ValueError(f"ctc_loss: {name} must have one length per sample, shape "
                             f"({os_[0]},), got {N._shape(v)}")
    if isinstance(mask_index, bool) or not isinstance(mask_index, (int, np.integer)):
        raise ValueError(f"ctc_loss: mask_index must be an int, got {mask_index!r}")
    return _base.ctc_loss(target, output, target_length, output_length, int(mask_index))


def psnr(x1, x2, max_val):
    """Peak signal-to-noise ratio: 20 log10(max_val) - 10 log10(mean((x1 - x2)^2))."""
    N = _np()
    x1, x2 = N._v(x1), N._v(x2)
    if N._shape(x1) != N._shape(x2):
        raise ValueError(f"psnr: x1 and x2 must have the same shape, got {N._shape(x1)} and "
                         f"{N._shape(x2)}")
    mse = N.mean(N.square(N.subtract(x1, x2)))
    return N.subtract(N.multiply(N.log10(max_val), 20.0), N.multiply(N.log10(mse), 10.0))


def multi_hot(inputs, num_classes=None, axis: int = -1, dtype=None, sparse: bool = False,
              **kwargs):
    """1 at each label of a sample's labels (the last axis of a rank-2 input), else 0."""
    N = _np()
    if num_classes is None:
        num_classes = kwargs.pop("num_tokens", None)
    if num_classes is None:
        raise ValueError("multi_hot: num_classes is required")
    if sparse:
        raise NotImplementedError("multi_hot: pynn has no sparse tensors (sparse=True)")
    x = N._v(inputs)
    hot = one_hot(x, num_classes, -1)
    nd = N._ndim(x)
    out = N.max(hot, axis=-2) if nd > 1 else N.max(hot, axis=0)
    if axis != -1:
        out = N.moveaxis(out, -1, axis)
    return out if dtype is None else _base.cast(out, N._dtype(dtype))


# -- attention ------------------------------------------------------------------------------------
def dot_product_attention(query, key, value, bias=None, mask=None, scale=None,
                          is_causal: bool = False, flash_attention=None,
                          attn_logits_soft_cap=None):
    """softmax(Q K^T scale + bias, masked) V over inputs of shape (B, T, N, H) (or (T, N, H)).

    Masked logits (mask False, or above the diagonal when is_causal) take no weight; a fully
    masked row attends uniformly, as in Keras."""
    N = _np()
    if flash_attention:
        raise NotImplementedError("dot_product_attention: flash_attention=True is not "
                                  "supported by pynn")
    if attn_logits_soft_cap is not None:
        raise NotImplementedError("dot_product_attention: attn_logits_soft_cap (flash "
                                  "attention on TPU) is not supported by pynn")
    q, k, v = N._v(query), N._v(key), N._v(value)
    nd = N._ndim(q)
    if nd not in (3, 4) or N._ndim(k) != nd or N._ndim(v) != nd:
        raise ValueError("dot_product_attention: query, key and value must all be 3-D "
                         "(T, N, H) or 4-D (B, T, N, H)")
    if nd == 3:
        q, k, v = (N.expand_dims(t, 0) for t in (q, k, v))
    h = N._shape(q)[-1]
    scale = 1.0 / np.sqrt(h) if scale is None else float(scale)
    logits = N.multiply(N.matmul(N.transpose(q, (0, 2, 1, 3)), N.transpose(k, (0, 2, 3, 1))),
                        scale)  # (B, N, T, S)
    if bias is not None:
        logits = N.add(logits, N._v(bias))
    T, S = N._shape(logits)[2], N._shape(logits)[3]
    keep = None
    if mask is not None:
        keep = _base.cast(N._v(mask), "float32") if N._sym(mask) else \
            np.asarray(_base.eager(mask)).astype(bool).astype(np.float32)
        if N._ndim(keep) == 3 and nd == 3:
            keep = N.expand_dims(keep, 0)
    if is_causal:
        tri = np.tri(T, S, dtype=np.float32)
        keep = tri if keep is None else N.multiply(keep, tri)
    if keep is not None:
        # masked logits at -0.7 * float32 max, as Keras: a fully masked row is uniform
        big = -0.7 * float(np.finfo(np.float32).max)
        logits = N.add(N.multiply(logits, keep), N.multiply(N.subtract(1.0, keep), big))
    probs = softmax(logits, -1)
    out = N.transpose(N.matmul(probs, N.transpose(v, (0, 2, 1, 3))), (0, 2, 1, 3))
    return N.squeeze(out, 0) if nd == 3 else out


# -- convolutions and pools -----------------------------------------------------------------------
def _tuple(v, n: int, name: str) -> tuple:
    t = (int(v),) * n if isinstance(v, (int, np.integer)) else tuple(int(a) for a in v)
    if len(t) != n:
        raise ValueError(f"{name} must be an int or {n} ints, got {v}")
    return t


def _same_pads(n: int, k: int, s: int, d: int) -> tuple:
    """TensorFlow's 'same' padding of an axis: (before, after), the extra one after."""
    out = -(-n // s)
    total = builtins_max((out - 1) * s + (k - 1) * d + 1 - n, 0)
    return total // 2, total - total // 2


def builtins_max(a, b):
    return a if a > b else b


def _zero_pad(x, axis: int, before: int, after: int):
    """x with zeros added along axis (negative amounts crop)."""
    N = _np()
    nd = N._ndim(x)
    if before < 0 or after < 0:
        n = N._shape(x)[axis]
        x = N._take_axis(x, axis, slice(builtins_max(-before, 0), n - builtins_max(-after, 0)),
                         nd)
        before, after = builtins_max(before, 0), builtins_max(after, 0)
    if not before and not after:
        return x
    parts = []
    for width in (before, after):
        if not width:
            parts.append(None)
            continue
        shape = list(N._shape(x))
        shape[axis] = width
        if N._batched(x):
            parts.append(N._full_sym(x, shape[1:], 0.0))
        elif N._sym(x):
            parts.append(np.zeros(shape, np.float32))
        else:
            parts.append(Tensor(np.zeros(shape, np.float32)))
    pieces = [p for p in (parts[0], x, parts[1]) if p is not None]
    return N._cat(pieces, axis)


def _channels_last(inputs, data_format, fn: str):
    N = _np()
    x = N._v(inputs)
    data_format = data_format or "channels_last"
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"{fn}: data_format must be 'channels_last' or 'channels_first', got "
                         f"{data_format!r}")
    if data_format == "channels_first":
        x = N.moveaxis(x, 1, -1)
    return x, data_format == "channels_first"


def _back(out, first: bool):
    return _np().moveaxis(out, -1, 1) if first else out


def _taps(x, ksize, strides, padding, dilation, fn: str):
    """The input values each kernel tap reads, (B, *out, C) per tap in the kernel's order."""
    import itertools
    N = _np()
    nsp = len(ksize)
    shape = N._shape(x)
    padding = padding.lower()
    if padding not in ("valid", "same"):
        raise ValueError(f"{fn}: padding must be 'valid' or 'same', got {padding!r}")
    for i in range(nsp):
        if padding == "same":
            lo, hi = _same_pads(shape[1 + i], ksize[i], strides[i], dilation[i])
            x = _zero_pad(x, 1 + i, lo, hi)
    shape = N._shape(x)
    outs = [(shape[1 + i] - (ksize[i] - 1) * dilation[i] - 1) // strides[i] + 1
            for i in range(nsp)]
    if builtins_min(outs) <= 0:
        raise ValueError(f"{fn}: the kernel {ksize} (dilation {dilation}) is larger than the "
                         f"input {shape[1:-1]}")
    taps = []
    for idx in itertools.product(*[range(k) for k in ksize]):
        key = (slice(None),) + tuple(
            slice(j * dilation[i], j * dilation[i] + (outs[i] - 1) * strides[i] + 1, strides[i])
            for i, j in enumerate(idx)) + (slice(None),)
        taps.append(N._index(x, key))
    return taps, outs


def builtins_min(v):
    m = v[0]
    for a in v[1:]:
        m = a if a < m else m
    return m


def _conv_channels_last(x, kernel, strides, padding, dilation, fn: str):
    N = _np()
    kshape = N._shape(kernel)
    nsp = len(kshape) - 2
    if N._ndim(x) != nsp + 2:
        raise ValueError(f"{fn}: inputs of rank {N._ndim(x)} do not fit a kernel of rank "
                         f"{len(kshape)} (inputs (batch, *spatial, channels))")
    c, cin, cout = N._shape(x)[-1], kshape[-2], kshape[-1]
    if c % cin or cout % (c // cin):
        raise ValueError(f"{fn}: {c} input channels do not fit a kernel of shape {kshape}")
    groups = c // cin
    strides = _tuple(strides, nsp, "strides")
    dilation = _tuple(dilation, nsp, "dilation_rate")
    if groups > 1:
        og = cout // groups
        outs = [_conv_channels_last(
            N._index(x, (Ellipsis, slice(g * cin, (g + 1) * cin))),
            N._index(kernel, (Ellipsis, slice(g * og, (g + 1) * og))), strides, padding,
            dilation, fn) for g in range(groups)]
        return N._cat(outs, -1)
    taps, outs = _taps(x, kshape[:-2], strides, padding, dilation, fn)
    cols = N._cat(taps, -1)  # (B, *out, taps * C): the kernel's memory order
    k2 = N.reshape(kernel, (-1, cout))
    return N.matmul(cols, k2)


def conv(inputs, kernel, strides=1, padding: str = "valid", data_format=None,
         dilation_rate=1):
    """N-D convolution (cross-correlation) of inputs (batch, *spatial, channels) with kernel
    (*kernel_size, in_channels / groups, out_channels)."""
    x, first = _channels_last(inputs, data_format, "conv")
    return _back(_conv_channels_last(x, _np()._v(kernel), strides, padding, dilation_rate,
                                     "conv"), first)


def depthwise_conv(inputs, kernel, strides=1, padding: str = "valid", data_format=None,
                   dilation_rate=1):
    """Each input channel convolved with its own filters: kernel (*kernel_size, channels,
    multiplier) gives channels * multiplier outputs."""
    N = _np()
    x, first = _channels_last(inputs, data_format, "depthwise_conv")
    kernel = N._v(kernel)
    kshape = N._shape(kernel)
    nsp = len(kshape) - 2
    c, m = N._shape(x)[-1], kshape[-1]
    if N._ndim(x) != nsp + 2 or kshape[-2] != c:
        raise ValueError(f"depthwise_conv: inputs {N._shape(x)} do not fit a kernel of shape "
                         f"{kshape}")
    taps, outs = _taps(x, kshape[:-2], _tuple(strides, nsp, "strides"), padding,
                       _tuple(dilation_rate, nsp, "dilation_rate"), "depthwise_conv")
    t = len(taps)
    cols = N._cat(taps, -1)  # (B, *out, taps * C)
    cols = N._reshape_keep(cols, N._shape(cols)[:-1] + (t, c, 1))
    out = N.sum(N.multiply(cols, N.reshape(kernel, (t, c, m))), -3)
    return _back(N._reshape_keep(out, N._shape(out)[:-2] + (c * m,)), first)


def separable_conv(inputs, depthwise_kernel, pointwise_kernel, strides=1,
                   padding: str = "valid", data_format=None, dilation_rate=1):
    """depthwise_conv, then a 1x1 conv with pointwise_kernel."""
    N = _np()
    x, first = _channels_last(inputs, data_format, "separable_conv")
    y = depthwise_conv(x, depthwise_kernel, strides, padding, None, dilation_rate)
    pk = N._v(pointwise_kernel)
    return _back(N.matmul(y, N.reshape(pk, (-1, N._shape(pk)[-1]))), first)


def conv_transpose(inputs, kernel, strides=1, padding: str = "valid", output_padding=None,
                   data_format=None, dilation_rate=1):
    """The transpose (gradient) of conv: kernel (*kernel_size, out_channels, in_channels);
    output sizes as Keras's ('same': input * strides)."""
    N = _np()
    x, first = _channels_last(inputs, data_format, "conv_transpose")
    kernel = N._v(kernel)
    kshape = N._shape(kernel)
    nsp = len(kshape) - 2
    if N._ndim(x) != nsp + 2 or kshape[-1] != N._shape(x)[-1]:
        raise ValueError(f"conv_transpose: inputs {N._shape(x)} do not fit a kernel of shape "
                         f"{kshape} (its last axis: the input channels)")
    strides = _tuple(strides, nsp, "strides")
    dilation = _tuple(dilation_rate, nsp, "dilation_rate")
    opad = [None] * nsp if output_padding is None else list(_tuple(output_padding, nsp,
                                                                   "output_padding"))
    if padding.lower() not in ("valid", "same"):
        raise ValueError(f"conv_transpose: padding must be 'valid' or 'same', got {padding!r}")
    for i in range(nsp):
        ax, s = 1 + i, strides[i]
        n = N._shape(x)[ax]
        if s > 1:  # s - 1 zeros between the input's values
            nd = N._ndim(x)
            z = N.zeros_like(x)
            y = N.stack([x] + [z] * (s - 1), ax + 1)
            shape = N._shape(y)
            y = N._reshape_keep(y, shape[:ax] + (n * s,) + shape[ax + 2:])
            x = N._take_axis(y, ax, slice(0, (n - 1) * s + 1), nd)
        k = (kshape[i] - 1) * dilation[i] + 1
        if padding.lower() == "valid":
            op = builtins_max(k, s) - k if opad[i] is None else opad[i]
            lo, hi = k - 1, k - 1 + op
        else:
            pad_len = s + k - 2 if opad[i] is None else k + k % 2 - 2 + opad[i]
            lo = min(pad_len // 2 + pad_len % 2, k - 1)
            hi = pad_len - lo
        x = _zero_pad(x, ax, lo, hi)
    # the kernel flipped in space, its channel axes swapped: (*k, in, out)
    kf = N.flip(kernel, tuple(range(nsp))) if nsp else kernel
    kf = N.swapaxes(kf, -1, -2)
    return _back(_conv_channels_last(x, kf, 1, "valid", dilation, "conv_transpose"), first)


def _pool(op: str, inputs, pool_size, strides, padding, data_format, fn: str):
    N = _np()
    x, first = _channels_last(inputs, data_format, fn)
    nsp = N._ndim(x) - 2
    if nsp not in (1, 2):
        raise NotImplementedError(f"{fn}: pynn pools 1-D and 2-D inputs, got {nsp} spatial "
                                  "axes")
    pool = _tuple(pool_size, nsp, "pool_size")
    strides = pool if strides is None else _tuple(strides, nsp, "strides")
    if nsp == 1:
        x = N.expand_dims(x, 1)
        pool, strides = (1,) + pool, (1,) + strides
    shape = N._shape(x)
    padding = padding.lower()
    if padding not in ("valid", "same"):
        raise ValueError(f"{fn}: padding must be 'valid' or 'same', got {padding!r}")
    pads = [(0, 0), (0, 0)]
    if padding == "same":
        pads = [_same_pads(shape[1 + i], pool[i], strides[i], 1) for i in range(2)]
    iattr = (pool[0], pool[1], strides[0], strides[1], pads[0][0], pads[1][0], pads[0][1],
             pads[1][1])
    for i in range(2):
        if shape[1 + i] + pads[i][0] + pads[i][1] < pool[i]:
            raise ValueError(f"{fn}: pool {pool} is larger than the input {shape[1:-1]}")
    if N._sym(x):
        out = _base.record(op, [_base.as_float(_base.symbolic(x, False))], iattr, name=fn)
    else:
        from .. import _core
        out = _core.op(op, [_base.tensor(_base.cast(x, "float32"))], [], iattr, (), False, 0)
    if nsp == 1:
        out = N.squeeze(out, 1)
    return _back(out, first)


def max_pool(inputs, pool_size, strides=None, padding: str = "valid", data_format=None):
    """The maximum of each pool_size window (1-D or 2-D, channels_last by default)."""
    return _pool("max_pool2d", inputs, pool_size, strides, padding, data_format, "max_pool")


def average_pool(inputs, pool_size, strides=None, padding: str = "valid", data_format=None):
    """The mean of each window ('same': of the values inside the input, as Keras)."""
    return _pool("avg_pool2d", inputs, pool_size, strides, padding, data_format,
                 "average_pool")
