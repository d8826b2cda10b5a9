"""keras.ops functions of comparison, selection, indexing and ordering, each one core op
(csrc/core/eager_math.c's binary, unary and reduce codes; csrc/core/ops_select.c's where,
gather, cumulative, sort, arg_reduce and pad).

Like every pynn.ops function, each records a graph node on symbolic tensors (pynn.Input, a
custom layer's traced call()), and runs now on pynn.Tensor values (with gradients on the tape)
and on NumPy arrays (giving a Tensor); the same kernels compute all three.

Differences from Keras 3, from pynn's two element types (float32 and int32):
  - comparisons, logical ops, isnan/isinf/isfinite and signbit return float32 0/1 where Keras
    returns bool (they have no gradient; use them as masks, or as `where`'s condition);
  - argmax, argmin, argsort and top_k's indices are int32.

Example:
    >>> x = np.array([[3., 1., 2.]], np.float32)
    >>> np.asarray(take_along_axis(x, argsort(x, axis=-1), axis=-1))
    array([[1., 2., 3.]], dtype=float32)
"""

import numpy as np

from ..tensor import Tensor
from . import _base
from ._base import binary, is_symbolic, unary

__all__ = [
    "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
    "logical_and", "logical_or", "logical_xor", "logical_not",
    "floor_divide", "mod", "arctan2", "hypot",
    "isnan", "isinf", "isfinite", "signbit",
    "where", "select", "take", "take_along_axis", "cumsum", "cumprod",
    "sort", "argsort", "top_k", "argmax", "argmin", "prod", "pad",
]


# -- elementwise: comparisons and logical ops (float32 0/1, no gradient) ---------------------------
def equal(x1, x2):
    """x1 == x2 elementwise, broadcast: float32 1.0 where true, 0.0 elsewhere (NaN == NaN is 0)."""
    return binary("equal", x1, x2)


def not_equal(x1, x2):
    """x1 != x2 elementwise, as float32 0/1."""
    return binary("not_equal", x1, x2)


def less(x1, x2):
    """x1 < x2 elementwise, as float32 0/1."""
    return binary("less", x1, x2)


def less_equal(x1, x2):
    """x1 <= x2 elementwise, as float32 0/1."""
    return binary("less_equal", x1, x2)


def greater(x1, x2):
    """x1 > x2 elementwise, as float32 0/1."""
    return binary("greater", x1, x2)


def greater_equal(x1, x2):
    """x1 >= x2 elementwise, as float32 0/1."""
    return binary("greater_equal", x1, x2)


def logical_and(x1, x2):
    """Both nonzero (NaN counts as true), as float32 0/1."""
    return binary("logical_and", x1, x2)


def logical_or(x1, x2):
    """Either nonzero, as float32 0/1."""
    return binary("logical_or", x1, x2)


def logical_xor(x1, x2):
    """Exactly one nonzero, as float32 0/1."""
    return binary("logical_xor", x1, x2)


def logical_not(x):
    """x == 0, as float32 0/1."""
    return unary("logical_not", x)


def isnan(x):
    """Whether each value is NaN, as float32 0/1."""
    return unary("isnan", x)


def isinf(x):
    """Whether each value is +inf or -inf, as float32 0/1."""
    return unary("isinf", x)


def isfinite(x):
    """Whether each value is neither NaN nor infinite, as float32 0/1."""
    return unary("isfinite", x)


def signbit(x):
    """Whether each value's sign bit is set (-0.0 and negative NaNs included), as float32 0/1."""
    return unary("signbit", x)


# -- elementwise arithmetic ------------------------------------------------------------------------
def floor_divide(x1, x2):
    """floor(x1 / x2) elementwise, as NumPy computes it (no gradient)."""
    return binary("floor_divide", x1, x2)


def mod(x1, x2):
    """x1 - floor(x1 / x2) * x2: the remainder with x2's sign (Python, NumPy). Gradients:
    1 for x1, -floor(x1 / x2) for x2."""
    return binary("mod", x1, x2)


def arctan2(x1, x2):
    """The angle of the point (x2, x1), in [-pi, pi]; gradients x2 / r^2 and -x1 / r^2."""
    return binary("arctan2", x1, x2)


def hypot(x1, x2):
    """sqrt(x1^2 + x2^2) without overflow; gradients x1 / z and x2 / z (0 where z is 0)."""
    return binary("hypot", x1, x2)


# -- selection -------------------------------------------------------------------------------------
def where(condition, x1=None, x2=None):
    """x1 where condition is true (nonzero), x2 elsewhere, with NumPy broadcasting of all three.
    The gradient reaches x1 where it is chosen and x2 elsewhere; a NaN or inf in the branch not
    chosen does not reach the result or the gradient.

    Example:
        >>> where(np.array([1., 0.]), np.array([1., 2.]), 0.0)  # Tensor([1., 0.])
    """
    if x1 is None and x2 is None:
        raise NotImplementedError("where(condition) (the indices of nonzero values) has a shape "
                                  "that depends on the data; pynn supports where(condition, x1, "
                                  "x2)")
    if x1 is None or x2 is None:
        raise ValueError("where: give both x1 and x2, or neither")
    return _base.where(condition, x1, x2)


def select(condlist, choicelist, default=0):
    """choicelist[i] where condlist[i] is the first true condition, default where none is."""
    condlist, choicelist = list(condlist), list(choicelist)
    if len(condlist) != len(choicelist):
        raise ValueError(f"select: {len(condlist)} conditions and {len(choicelist)} choices")
    if not condlist:
        raise ValueError("select: condlist is empty")
    out = default
    for cond, choice in zip(reversed(condlist), reversed(choicelist)):
        out = _base.where(cond, choice, out)
    return out


def _ndim(x) -> int:
    if is_symbolic(x):
        return len(x.shape)
    e = _base.eager(x)
    return e.ndim if hasattr(e, "ndim") else np.ndim(e)


def _flat(x):
    """x as one axis: a symbolic tensor with a batch axis cannot be (it would mix samples)."""
    if is_symbolic(x):
        t = _base.symbolic(x, False)
        if not t._unbatched:
            raise ValueError("axis=None flattens the batch axis of a symbolic tensor; give an "
                             "axis")
        return _base.reshape(t, (-1,))
    t = _base.tensor(x)
    if t.dtype != np.float32:  # integers: no gradient to keep
        return Tensor(np.asarray(t).reshape(-1))
    return _base.reshape(t, (-1,))


def take(x, indices, axis=None):
    """Values of x at `indices` along `axis` (None: of x flattened): the result's shape is
    x.shape[:axis] + indices.shape + x.shape[axis + 1:]. Indices are int32 (float ones are cast);
    a negative one counts from the end; one out of range raises ValueError when it runs. The
    gradient adds into x at each index taken (repeats add up).

    In a model, x and the indices may not both have a batch axis; indices with one (token ids
    from an Input) take rows of a weight or a constant (axis 0), as an embedding does.
    """
    if axis is None:
        return _base.gather(_flat(x), indices, 0)
    return _base.gather(x, indices, int(axis))


def take_along_axis(x, indices, axis=None):
    """x's values at `indices` along `axis`: indices has x's rank and the other axes broadcast
    (NumPy's take_along_axis); axis None flattens both. Gradient as take's."""
    if axis is None:
        return _base.gather(_flat(x), _flat(indices) if is_symbolic(indices)
                            else np.asarray(indices).reshape(-1), 0, along=True)
    return _base.gather(x, indices, int(axis), along=True)


# -- cumulative ------------------------------------------------------------------------------------
def cumsum(x, axis=None, dtype=None):
    """The running sum along `axis` (None: of x flattened); float32."""
    if axis is None:
        return _base.cumulative("cumsum", _flat(x), 0)
    return _base.cumulative("cumsum", x, int(axis))


def cumprod(x, axis=None, dtype=None):
    """The running product along `axis` (None: of x flattened); the gradient is exact with zeros
    in x too."""
    if axis is None:
        return _base.cumulative("cumprod", _flat(x), 0)
    return _base.cumulative("cumprod", x, int(axis))


# -- ordering --------------------------------------------------------------------------------------
def sort(x, axis=-1):
    """x sorted along `axis` (NaN last, stable); the gradient follows the permutation."""
    return _base.sort(x, int(axis))


def argsort(x, axis=-1):
    """The int32 positions that sort x along `axis` (stable: ties keep their order)."""
    return _base.sort(x, int(axis), indices=True)


def top_k(x, k, sorted=True):
    """The k largest values along the last axis, largest first, and their int32 positions (ties:
    the first position first; NaN counts as the largest): a tuple (values, indices). The values'
    gradient reaches the positions taken."""
    k = int(k)
    if k < 1:
        raise ValueError(f"top_k: k must be >= 1, got {k}")
    return (_base.sort(x, -1, descending=True, k=k),
            _base.sort(x, -1, indices=True, descending=True, k=k))


def _arg(kind, x, axis, keepdims):
    if axis is None:
        nd = _ndim(x)
        out = _base.arg_reduce(kind, _flat(x), 0, keepdims)
        if keepdims and nd != 1:  # (1,) * rank, as NumPy
            out = _base.reshape(_base.cast(out, "float32"), (1,) * nd) if is_symbolic(out) \
                else Tensor(np.asarray(out).reshape((1,) * nd))
            if is_symbolic(out):
                out = _base.cast(out, "int32")
        return out
    return _base.arg_reduce(kind, x, int(axis), keepdims)


def argmax(x, axis=None, keepdims=False):
    """The int32 position of the first maximum along `axis` (None: of x flattened); a NaN counts
    as the maximum (NumPy)."""
    return _arg("argmax", x, axis, keepdims)


def argmin(x, axis=None, keepdims=False):
    """The int32 position of the first minimum along `axis` (None: of x flattened)."""
    return _arg("argmin", x, axis, keepdims)


# -- reductions and padding ------------------------------------------------------------------------
def prod(x, axis=None, keepdims=False, dtype=None):
    """The product over `axis` (an int, a tuple or None for all), in double inside; the gradient is
    exact with zeros (one zero: its element gets the product of the others)."""
    return _base.reduce("prod", x, axis, keepdims)


def _pad_widths(pad_width, nd: int) -> list:
    a = np.asarray(pad_width, dtype=np.int64)
    if a.ndim == 0:
        a = np.full((nd, 2), int(a))
    elif a.shape == (1,):
        a = np.full((nd, 2), int(a[0]))
    elif a.shape in ((2,), (1, 2)):
        a = np.tile(a.reshape(1, 2), (nd, 1))
    if a.shape != (nd, 2):
        raise ValueError(f"pad: pad_width must give (before, after) for each of the {nd} axes, "
                         f"got {pad_width}")
    if (a < 0).any():
        raise ValueError(f"pad: pad_width must be >= 0, got {pad_width}")
    return [(int(b), int(e)) for b, e in a]


def pad(x, pad_width, mode="constant", constant_values=None):
    """x padded on each axis by pad_width's (before, after) values (NumPy's forms: an int, a
    pair, or a pair per axis). mode: "constant" (constant_values, 0 by default), "reflect"
    (mirrored about the edge values) or "symmetric" (the edge values repeated). The gradient sums
    over every place a value was copied to."""
    if mode != "constant" and constant_values is not None:
        raise ValueError("pad: constant_values is only for mode='constant'")
    nd = _ndim(x)
    value = 0.0 if constant_values is None else float(constant_values)
    return _base.pad(x, _pad_widths(pad_width, nd), mode, value)
