"""keras.ops.math: functions beyond NumPy's, written with `_base`'s primitives."""

import numpy as np

from . import _base
from .core import stop_gradient
from .numpy import add, exp, log, max, subtract, sum  # noqa: A004


def logsumexp(x, axis=None, keepdims: bool = False):
    """log(sum(exp(x))) over axis, computed stably (the maximum is taken out first)."""
    m = stop_gradient(max(x, axis, keepdims=True))
    out = add(log(sum(exp(subtract(x, m)), axis, keepdims=True)), m)
    if not keepdims:
        from .numpy import squeeze
        nd = len(_base.sample_shape(out)) if _base.is_symbolic(out) else None
        del nd
        shape = tuple(out.shape)
        axes = range(len(shape)) if axis is None else ((axis,) if isinstance(axis, int)
                                                       else axis)
        axes = tuple(a % len(shape) for a in axes)
        if _base.is_symbolic(out) and not out._unbatched:
            axes = tuple(a for a in axes if a != 0)
        out = squeeze(out, axes) if axes else out
        if axis is None and not _base.is_symbolic(out):
            out = out.reshape(())
    return out


def erf(x):
    return _base.unary("erf", x)


def erfc(x):
    """1 - erf(x)."""
    from .numpy import _v, subtract
    return subtract(1.0, erf(_v(x)))


def rsqrt(x):
    from .numpy import rsqrt as _rsqrt
    return _rsqrt(x)


def extract_sequences(x, sequence_length: int, sequence_stride: int):
    """Frames of the last axis: (..., n) -> (..., frames, sequence_length), frame i starting
    at i * sequence_stride."""
    from . import numpy as N
    x = N._v(x)
    n = N._shape(x)[-1]
    nd = N._ndim(x)
    count = 1 + (n - sequence_length) // sequence_stride
    if count <= 0:
        raise ValueError(f"extract_sequences: sequence_length {sequence_length} is longer "
                         f"than the last axis ({n})")
    frames = [N._take_axis(x, nd - 1, slice(i * sequence_stride,
                                            i * sequence_stride + sequence_length), nd)
              for i in range(count)]
    return N.stack(frames, -2)


def _segments(segment_ids, num_segments, fn: str):
    from . import numpy as N
    ids = N._data(segment_ids, f"{fn} (segment_ids)").astype(np.int64).reshape(-1)
    if num_segments is None:
        num_segments = int(ids.max()) + 1 if ids.size else 0
    return ids, int(num_segments)


def segment_sum(data, segment_ids, num_segments=None, sorted: bool = False):  # noqa: A002
    """The sum of data's rows per segment id (ids outside [0, num_segments) dropped); a
    matmul with the ids' one-hot matrix, so gradients reach data."""
    from . import numpy as N
    ids, k = _segments(segment_ids, num_segments, "segment_sum")
    x = N._v(data)
    shape = N._shape(x)
    if shape[0] is None or len(ids) != shape[0]:
        raise ValueError(f"segment_sum: {len(ids)} segment ids for data of shape {shape}")
    onehot = np.zeros((k, len(ids)), np.float32)
    ok = (ids >= 0) & (ids < k)
    onehot[ids[ok], np.nonzero(ok)[0]] = 1.0
    flat = N.reshape(x, (shape[0], -1))
    return N.reshape(N.matmul(onehot, flat), (k,) + shape[1:])


def _segment_reduce(data, segment_ids, num_segments, fn: str, reduce_fn, empty: float):
    from . import numpy as N
    ids, k = _segments(segment_ids, num_segments, fn)
    x = N._v(data)
    shape = N._shape(x)
    if shape[0] is None or len(ids) != shape[0]:
        raise ValueError(f"{fn}: {len(ids)} segment ids for data of shape {shape}")
    nd = len(shape)
    outs = []
    for s in range(k):
        rows = [N._take_axis(x, 0, slice(i, i + 1), nd) for i in np.nonzero(ids == s)[0]]
        if rows:
            outs.append(reduce_fn(N._cat(rows, 0)))
        else:
            outs.append(N.full((1,) + shape[1:], empty))
    return N._cat(outs, 0)


def segment_max(data, segment_ids, num_segments=None, sorted: bool = False):  # noqa: A002
    """The maximum of data's rows per segment (-inf for an empty segment)."""
    from . import numpy as N
    return _segment_reduce(data, segment_ids, num_segments, "segment_max",
                           lambda r: N.max(r, 0, keepdims=True), -np.inf)


def segment_min(data, segment_ids, num_segments=None, sorted: bool = False):  # noqa: A002
    from . import numpy as N
    return _segment_reduce(data, segment_ids, num_segments, "segment_min",
                           lambda r: N.min(r, 0, keepdims=True), np.inf)


def segment_prod(data, segment_ids, num_segments=None, sorted: bool = False):  # noqa: A002
    from . import numpy as N

    def prod_rows(r):
        rows = N.unstack(r, axis=0)
        out = rows[0]
        for row in rows[1:]:
            out = N.multiply(out, row)
        return N.expand_dims(out, 0)
    return _segment_reduce(data, segment_ids, num_segments, "segment_prod", prod_rows, 1.0)


def in_top_k(targets, predictions, k: int):
    """Whether each target's prediction is among the k largest of its row (ties count in)."""
    from . import numpy as N
    t = N._data(targets, "in_top_k").astype(np.int64).reshape(-1)
    p = N._data(predictions, "in_top_k")
    if p.ndim != 2 or p.shape[0] != t.shape[0]:
        raise ValueError(f"in_top_k: predictions must be (batch, classes) with one target per "
                         f"row, got {p.shape} and {t.shape}")
    kth = -np.sort(-p, axis=-1)[:, min(int(k), p.shape[1]) - 1]
    return N._out(p[np.arange(len(t)), t] >= kth)


def logdet(x):
    from .linalg import logdet as _logdet
    return _logdet(x)
