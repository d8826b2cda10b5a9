"""keras.ops.math: functions beyond NumPy's, written with `_base`'s primitives."""

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
