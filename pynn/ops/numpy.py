"""keras.ops's NumPy-like functions, written with the primitives of `_base`: each works on
symbolic tensors (recorded in the model's graph), on Tensors (recorded on the tape) and on
arrays and numbers (run now)."""


import builtins

import numpy as np

from ..layers.base import Variable
from ..layers.input_layer import KerasTensor
from ..tensor import Tensor
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


# -- helpers --------------------------------------------------------------------------------------
_ints = (int, np.integer)


def _v(x):
    """A layer's weight read inside a traced call() as its symbolic tensor, so that the graph
    reads the weight at every step instead of keeping its value of now."""
    if isinstance(x, Variable):
        from ..layers import tracing
        if tracing.tracing():
            return _base.symbolic(x, False)
    return x


def _shape(x) -> tuple:
    x = _v(x)
    return tuple(x.shape) if _sym(x) else tuple(np.shape(_base.eager(x)))


def _ndim(x) -> int:
    return len(_shape(x))


def _batched(x) -> bool:
    """Whether x is a symbolic tensor with a batch axis (of unknown size)."""
    return isinstance(x, KerasTensor) and not x._unbatched


def _is_int(x) -> bool:
    x = _v(x)
    if isinstance(x, KerasTensor):
        return x.dtype != "float32"
    if isinstance(x, (bool, int, np.integer)):
        return True
    return np.asarray(_base.eager(x)).dtype.kind in "iub"


def _needs_grad(*xs) -> bool:
    return builtins.any(isinstance(x, Tensor) and x.requires_grad for x in xs) or \
        builtins.any(isinstance(x, Variable) for x in xs)


def _axis(axis: int, nd: int, fn: str) -> int:
    if not -nd <= axis < nd:
        raise ValueError(f"{fn}: axis {axis} is out of bounds for a tensor of rank {nd}")
    return axis % nd


def _axes(axis, nd: int, fn: str) -> tuple:
    """axis (None, an int or a sequence) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(nd))
    axes = (axis,) if isinstance(axis, _ints) else tuple(axis)
    out = tuple(sorted({_axis(int(a), nd, fn) for a in axes}))
    if len(out) != len(axes):
        raise ValueError(f"{fn}: repeated axis in {axis}")
    return out


def _dtype(dtype, default: str = "float32") -> str:
    """A Keras dtype as the one pynn holds it in: float32, or int32 for integers and bools."""
    if dtype is None:
        return default
    name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    kind = np.dtype("float32" if name == "bfloat16" else name).kind
    if kind == "f":
        return "float32"
    if kind in "iub":
        return "int32"
    raise ValueError(f"pynn's tensors are float32 or int32, got dtype {dtype}")


def _data(x, fn: str) -> np.ndarray:
    """x's values for a function that runs on data only (in NumPy, without gradient)."""
    x = _v(x)
    if _sym(x):
        raise NotImplementedError(f"{fn} of a symbolic tensor is not supported: it runs on data "
                                  "only (a Tensor or an array), outside a model")
    if isinstance(x, Tensor) and x.requires_grad:
        raise NotImplementedError(f"{fn} has no gradient in pynn: pass values that need none "
                                  "(ops.stop_gradient(x))")
    return np.asarray(_base.eager(x))


def _out(a) -> Tensor:
    """A NumPy result as a Tensor (float32, or int32 for integers and booleans)."""
    a = np.asarray(a)
    return Tensor(a.astype(np.int32 if a.dtype.kind in "iub" else np.float32))


def _full_sym(ref: KerasTensor, own: tuple, value: float, dtype: str = "float32"):
    """A symbolic tensor of the value, batched like ref (own: its per-sample shape): a core
    random node of zero width (uniform on [value, value]), exact and without gradient."""
    own = tuple(int(d) for d in own)
    t = _base.record("random", [ref], (1, 0, len(own)) + own, (float(value), float(value)),
                     name="full")
    return t if dtype == "float32" else _base.cast(t, dtype)


def _full(shape, value, dtype: str, like=None):
    """A tensor of shape filled with value: data, or symbolic when its first entry is None (the
    batch of `like`, or of the tensor pynn.ops.shape was last given)."""
    shape = tuple(shape)
    if shape and shape[0] is None:
        ref = like if _batched(like) else None
        if ref is None:
            from .. import random as _random
            ref = _random._reference("full", shape)
        if builtins.any(d is None for d in shape[1:]):
            raise ValueError(f"full: only the first axis can be None, got {shape}")
        return _full_sym(ref, shape[1:], value, dtype)
    if isinstance(like, KerasTensor):
        return _base.cast(_base.symbolic(np.full(shape, value, np.float32), False), dtype)
    return Tensor(np.full(shape, value, dtype=dtype))


def _cat(xs, axis: int = 0):
    """concatenate that also joins Tensors needing a gradient along their first axis, and any
    number of them."""
    xs = [_v(x) for x in xs]
    if _sym(*xs):
        return concatenate(xs, axis)
    ts = [_base.tensor(x) for x in xs]
    if len(ts) == 1:
        return ts[0]
    nd = ts[0].ndim
    if nd == 0:
        raise ValueError("concatenate: zero-dimensional tensors cannot be concatenated")
    ax = _axis(axis, nd, "concatenate")
    if not builtins.any(t.requires_grad for t in ts):
        a = [np.asarray(t) for t in ts]
        if builtins.any(v.dtype.kind == "f" for v in a):
            a = [v.astype(np.float32) for v in a]
        return Tensor(np.concatenate(a, axis=ax))
    ts = [t if t.dtype == np.float32 else _base.cast(t, "float32") for t in ts]
    if len(ts) > 4:
        return _cat([_cat(ts[i:i + 4], ax) for i in range(0, len(ts), 4)], ax)
    if ax == 0:  # the core joins along a per-sample axis: give each a batch of one
        out = _cat([_base.reshape(t, (1,) + tuple(t.shape)) for t in ts], 1)
        return _base.reshape(out, tuple(out.shape[1:]))
    return concatenate(ts, ax)


def _index(x, key):
    """x[key]: ints, slices, None and one '...'; on data too."""
    x = _v(x)
    key = key if isinstance(key, tuple) else (key,)
    if _sym(x) or not builtins.any(k is None for k in key):
        return _base.getitem(x, key)
    plain = tuple(k for k in key if k is not None)
    out = _base.getitem(x, plain) if plain else _base.tensor(x)
    shape, it = [], iter(out.shape)
    for k in _base._expand(key, _ndim(x)):
        if not isinstance(k, _ints):
            shape.append(1 if k is None else next(it))
    return reshape(out, tuple(shape))


def _take_axis(x, axis: int, key, nd: int):
    """x[..., key, ...] with key on `axis`."""
    return _index(x, (slice(None),) * axis + (key,) + (slice(None),) * (nd - axis - 1))


def _unary(name: str, x):
    return unary(name, _v(x))


def _nonzero(x):
    """1 where x != 0, else 0 (as float32, without gradient)."""
    return _unary("abs", _unary("sign", x))


# -- elementwise math -----------------------------------------------------------------------------
def sin(x):
    return _unary("sin", x)


def cos(x):
    return _unary("cos", x)


def tan(x):
    return _unary("tan", x)


def arctan(x):
    return _unary("arctan", x)


def tanh(x):
    return _unary("tanh", x)


def sinh(x):
    """(e^x - e^-x) / 2."""
    x = _v(x)
    return multiply(subtract(exp(x), exp(negative(x))), 0.5)


def cosh(x):
    """(e^x + e^-x) / 2."""
    x = _v(x)
    return multiply(add(exp(x), exp(negative(x))), 0.5)


def arcsin(x):
    """arctan(x / sqrt(1 - x^2)): +-pi/2 at +-1, NaN outside [-1, 1]."""
    x = _v(x)
    return arctan(divide(x, sqrt(subtract(1.0, square(x)))))


def arccos(x):
    return subtract(np.pi / 2, arcsin(x))


def arcsinh(x):
    """sign(x) log(|x| + sqrt(x^2 + 1)), written as log1p(|x| + x^2 / (1 + sqrt(1 + x^2))) so
    that it is exact for large |x| and near 0; its gradient at 0 is 1."""
    x = _v(x)
    a = abs(x)
    sq = square(x)
    r = log1p(add(a, divide(sq, add(sqrt(add(sq, 1.0)), 1.0))))
    nz = _nonzero(x)
    # sign(x) r away from 0; x (1 - |sign x|) adds 0 there and the slope 1 at 0
    return add(multiply(r, _unary("sign", x)), multiply(x, subtract(1.0, nz)))


def arccosh(x):
    """log(x + sqrt((x - 1)(x + 1)))."""
    x = _v(x)
    return log(add(x, sqrt(multiply(subtract(x, 1.0), add(x, 1.0)))))


def arctanh(x):
    """(log1p(x) - log1p(-x)) / 2."""
    x = _v(x)
    return multiply(subtract(log1p(x), log1p(negative(x))), 0.5)


def log1p(x):
    return _unary("log1p", x)


def expm1(x):
    return _unary("expm1", x)


def log2(x):
    return multiply(log(_v(x)), 1.0 / np.log(2.0))


def log10(x):
    return multiply(log(_v(x)), 1.0 / np.log(10.0))


def exp2(x):
    return exp(multiply(_v(x), np.log(2.0)))


def cbrt(x):
    """sign(x) |x|^(1/3)."""
    x = _v(x)
    return multiply(_unary("sign", x), power(abs(x), 1.0 / 3.0))


def reciprocal(x):
    return _unary("reciprocal", x)


def rsqrt(x):
    return _unary("rsqrt", x)


def sign(x):
    return _unary("sign", x)


def floor(x):
    return _unary("floor", x)


def ceil(x):
    return _unary("ceil", x)


def trunc(x):
    """x rounded toward zero: sign(x) floor(|x|)."""
    x = _v(x)
    return multiply(_unary("sign", x), floor(abs(x)))


fabs = abs


def round(x, decimals: int = 0):  # noqa: A001  (Keras's name)
    """x rounded to `decimals` places, halves to even (as NumPy)."""
    x = _v(x)
    if not decimals:
        return _unary("round", x)
    scale = 10.0 ** int(decimals)
    return divide(_unary("round", multiply(x, scale)), scale)


def deg2rad(x):
    return multiply(_v(x), np.pi / 180.0)


def rad2deg(x):
    return multiply(_v(x), 180.0 / np.pi)


def sinc(x):
    """sin(pi x) / (pi x), 1 at 0."""
    x = _v(x)
    nz = _nonzero(x)
    y = multiply(add(x, subtract(1.0, nz)), np.pi)  # pi at x == 0: no 0 / 0
    return add(multiply(divide(sin(y), y), nz), subtract(1.0, nz))


def logaddexp(x1, x2):
    """log(e^x1 + e^x2) = max + log1p(e^-|x1 - x2|)."""
    x1, x2 = _v(x1), _v(x2)
    return add(maximum(x1, x2), log1p(exp(negative(abs(subtract(x1, x2))))))


def logaddexp2(x1, x2):
    """log2(2^x1 + 2^x2)."""
    x1, x2 = _v(x1), _v(x2)
    d = multiply(abs(subtract(x1, x2)), -np.log(2.0))
    return add(maximum(x1, x2), multiply(log1p(exp(d)), 1.0 / np.log(2.0)))


def divide_no_nan(x1, x2):
    """x1 / x2, and 0 where x2 == 0."""
    x1, x2 = _v(x1), _v(x2)
    nz = _nonzero(x2)
    return multiply(divide(x1, add(x2, subtract(1.0, nz))), nz)


def heaviside(x1, x2):
    """0 where x1 < 0, x2 where x1 == 0, 1 where x1 > 0."""
    x1, x2 = _v(x1), _v(x2)
    s = _unary("sign", x1)
    return add(_unary("relu", s), multiply(subtract(1.0, abs(s)), x2))


def angle(x):
    """The argument of a real number: pi for negative values, else 0."""
    return multiply(_unary("relu", negative(_unary("sign", x))), np.pi)


def real(x):
    return copy(x)


def conj(x):
    return copy(x)


conjugate = conj


def imag(x):
    return zeros_like(x)


def ldexp(x1, x2):
    """x1 * 2**x2."""
    return multiply(_v(x1), exp2(_v(x2)))


# -- creation -------------------------------------------------------------------------------------
def zeros(shape, dtype=None):
    """A tensor of zeros (float32 unless dtype says int); a None first entry (from
    ops.shape(x)[0]) gives a symbolic tensor with x's batch."""
    return _full((shape,) if isinstance(shape, _ints) else shape, 0, _dtype(dtype))


def ones(shape, dtype=None):
    return _full((shape,) if isinstance(shape, _ints) else shape, 1, _dtype(dtype))


empty = zeros


def full(shape, fill_value, dtype=None):
    shape = (shape,) if isinstance(shape, _ints) else tuple(shape)
    fill_value = _v(fill_value)
    if np.ndim(fill_value) == 0 and not _sym(fill_value) and \
            not isinstance(fill_value, Tensor):
        return _full(shape, float(fill_value), _dtype(dtype, "int32" if isinstance(
            fill_value, _ints) and not isinstance(fill_value, bool) else "float32"))
    out = broadcast_to(fill_value, shape)
    return out if dtype is None else _base.cast(out, _dtype(dtype))


def _like(x, value, dtype):
    x = _v(x)
    dt = _dtype(dtype, "int32" if _is_int(x) else "float32")
    if isinstance(x, KerasTensor):
        if x._unbatched:
            return _base.cast(_base.symbolic(np.full(x.shape, value, np.float32), False), dt)
        return _full_sym(x, x.shape[1:], value, dt)
    return Tensor(np.full(np.shape(_base.eager(x)), value, dtype=dt))


def zeros_like(x, dtype=None):
    """Zeros shaped like x (symbolic when x is)."""
    return _like(x, 0, dtype)


def ones_like(x, dtype=None):
    return _like(x, 1, dtype)


empty_like = zeros_like


def full_like(x, fill_value, dtype=None):
    fill_value = _v(fill_value)
    if np.ndim(fill_value) == 0 and not _sym(fill_value) and \
            not isinstance(fill_value, Tensor):
        return _like(x, float(fill_value), dtype)
    return add(zeros_like(x, dtype), fill_value)


def eye(N, M=None, k: int = 0, dtype=None):
    return Tensor(np.eye(int(N), None if M is None else int(M), int(k), dtype=_dtype(dtype)))


def identity(n, dtype=None):
    return eye(n, dtype=dtype)


def tri(N, M=None, k: int = 0, dtype=None):
    return Tensor(np.tri(int(N), None if M is None else int(M), int(k), dtype=_dtype(dtype)))


def arange(start, stop=None, step=None, dtype=None):
    """Evenly spaced values in [start, stop): int32 when every argument is an int."""
    if stop is None:
        start, stop = 0, start
    vals = [v for v in (start, stop, 1 if step is None else step)]
    vals = [_data(v, "arange").item() if not isinstance(v, (int, float)) else v for v in vals]
    every_int = builtins.all(isinstance(v, _ints) for v in vals)
    dt = _dtype(dtype, "int32" if every_int else "float32")
    return Tensor(np.arange(*vals, dtype=np.float64 if dt == "float32" else np.int64)
                  .astype(dt))


def linspace(start, stop, num: int = 50, endpoint: bool = True, retstep: bool = False,
             dtype=None, axis: int = 0):
    """num values from start to stop (tensors too: differentiable in start and stop)."""
    start, stop = _v(start), _v(stop)
    num = int(num)
    if num < 0:
        raise ValueError(f"linspace: num must be >= 0, got {num}")
    div = (num - 1) if endpoint else num
    if not (_sym(start, stop) or isinstance(start, Tensor) or isinstance(stop, Tensor)):
        dt = _dtype(dtype)  # NumPy rounds toward -inf for an integer dtype
        out = np.linspace(start, stop, num, endpoint=endpoint, retstep=retstep, axis=axis,
                          dtype=np.int64 if dt == "int32" else np.float64)
        if retstep:
            return Tensor(out[0].astype(dt)), Tensor(np.float32(out[1]))
        return Tensor(out.astype(dt))
    nd = builtins.max(_ndim(start), _ndim(stop))
    t = np.arange(num, dtype=np.float64) / builtins.max(div, 1)
    t = t.reshape((num,) + (1,) * nd).astype(np.float32)
    delta = subtract(stop, start)
    out = add(start, multiply(delta, t))
    if endpoint and num > 1:  # the last value exactly stop
        last = np.zeros((num,) + (1,) * nd, np.float32)
        last[-1] = 1.0
        out = add(multiply(out, 1.0 - last), multiply(stop, last))
    if axis != 0:
        out = moveaxis(out, 0, axis)
    if dtype is not None and _dtype(dtype) == "int32":
        out = _base.cast(floor(out), "int32")
    if retstep:
        return out, divide(delta, float(builtins.max(div, 1)))
    return out


def logspace(start, stop, num: int = 50, endpoint: bool = True, base=10, dtype=None,
             axis: int = 0):
    """base ** linspace(start, stop)."""
    start, stop = _v(start), _v(stop)
    if not (_sym(start, stop, base) or builtins.any(isinstance(v, Tensor)
                                                    for v in (start, stop, base))):
        return Tensor(np.logspace(start, stop, int(num), endpoint=endpoint, base=base,
                                  axis=axis).astype(_dtype(dtype)))
    out = power(base, linspace(start, stop, num, endpoint, axis=axis))
    return out if dtype is None else _base.cast(out, _dtype(dtype))


def geomspace(start, stop, num: int = 50, endpoint: bool = True, dtype=None, axis: int = 0):
    """Values spaced evenly on a log scale from start to stop (same sign)."""
    start, stop = _v(start), _v(stop)
    if not (_sym(start, stop) or isinstance(start, Tensor) or isinstance(stop, Tensor)):
        return Tensor(np.geomspace(start, stop, int(num), endpoint=endpoint, axis=axis)
                      .astype(_dtype(dtype)))
    s = sign(start)
    out = multiply(s, exp(linspace(log(abs(start)), log(abs(stop)), num, endpoint, axis=axis)))
    return out if dtype is None else _base.cast(out, _dtype(dtype))


def meshgrid(*x, indexing: str = "xy"):
    """Coordinate grids from 1-D tensors ('xy': Cartesian, 'ij': matrix indexing)."""
    if indexing not in ("xy", "ij"):
        raise ValueError(f"meshgrid: indexing must be 'xy' or 'ij', got {indexing!r}")
    xs = [_v(v) for v in x]
    sizes = [int(np.prod(_shape(v))) for v in xs]
    n = len(xs)
    if indexing == "xy" and n > 1:
        sizes[0], sizes[1] = sizes[1], sizes[0]
    out = []
    for i, v in enumerate(xs):
        pos = i if indexing == "ij" or n < 2 or i > 1 else 1 - i
        shape = [1] * n
        shape[pos] = -1
        out.append(broadcast_to(reshape(v, tuple(shape)), tuple(sizes)))
    return out


def array(x, dtype=None):
    from .core import convert_to_tensor
    return convert_to_tensor(x, dtype)


def copy(x):
    """A new tensor with x's values (the gradient passes through)."""
    x = _v(x)
    if _sym(x):  # a new node: the identity cast
        t = _base.symbolic(x, False)
        return _base.record("cast", [t], (0 if t.dtype == "float32" else 1,), name="copy")
    t = _base.tensor(x)
    if t.dtype != np.float32 or not t.requires_grad:
        return Tensor(np.array(t))
    return add(t, 0.0)


# -- shapes ---------------------------------------------------------------------------------------
def ndim(x) -> int:
    return _ndim(x)


def size(x) -> int:
    """The number of values in x."""
    shape = _shape(x)
    if builtins.any(d is None for d in shape):
        raise ValueError("size: a symbolic tensor's batch size is unknown; use the per-sample "
                         "size, np.prod(ops.shape(x)[1:])")
    return int(np.prod(shape, dtype=np.int64))


def ravel(x):
    """x flattened to one axis."""
    x = _v(x)
    if _batched(x):
        raise NotImplementedError("ravel: a symbolic tensor keeps its batch axis; use "
                                  "ops.reshape(x, (-1, n)) to flatten each sample")
    return reshape(x, (-1,))


def broadcast_to(x, shape):
    """x broadcast to `shape` (NumPy's rules); its gradient sums over the copies."""
    x = _v(x)
    shape = (shape,) if isinstance(shape, _ints) else tuple(shape)
    xs = _shape(x)
    if len(shape) < len(xs):
        raise ValueError(f"broadcast_to: cannot broadcast {xs} to {shape}")
    for a, b in zip(xs[::-1], shape[::-1]):
        if a is not None and b is not None and a != 1 and a != b:
            raise ValueError(f"broadcast_to: cannot broadcast {xs} to {shape}")
    if xs == shape:
        return x
    if _batched(x):
        if len(shape) != len(xs):
            raise ValueError(f"broadcast_to: a symbolic tensor keeps its batch axis first: "
                             f"cannot broadcast {xs} to {shape}")
        return add(x, _full_sym(x, shape[1:], 0.0))
    if _sym(x) or (shape and shape[0] is None):
        return add(x, _full(shape, 0.0, "float32", x))
    if _is_int(x) or not _needs_grad(x):
        a = np.asarray(_base.eager(x))
        return _out(np.broadcast_to(a, shape))
    return add(x, Tensor(np.zeros(shape, np.float32)))


def moveaxis(x, source, destination):
    x = _v(x)
    nd = _ndim(x)
    src = [_axis(int(s), nd, "moveaxis") for s in
           ((source,) if isinstance(source, _ints) else source)]
    dst = [_axis(int(d), nd, "moveaxis") for d in
           ((destination,) if isinstance(destination, _ints) else destination)]
    if len(src) != len(dst):
        raise ValueError("moveaxis: source and destination need the same number of axes")
    order = [n for n in range(nd) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return x if order == list(range(nd)) else transpose(x, order)


def swapaxes(x, axis1, axis2):
    x = _v(x)
    nd = _ndim(x)
    a, b = _axis(int(axis1), nd, "swapaxes"), _axis(int(axis2), nd, "swapaxes")
    perm = list(range(nd))
    perm[a], perm[b] = perm[b], perm[a]
    return x if a == b else transpose(x, perm)


def flip(x, axis=None):
    """x with the order of values along `axis` (every axis when None) reversed."""
    x = _v(x)
    nd = _ndim(x)
    axes = _axes(axis, nd, "flip")
    return _index(x, tuple(slice(None, None, -1) if i in axes else slice(None)
                           for i in range(nd)))


def fliplr(x):
    if _ndim(x) < 2:
        raise ValueError("fliplr: x must have at least 2 axes")
    return flip(x, 1)


def flipud(x):
    if _ndim(x) < 1:
        raise ValueError("flipud: x must have at least 1 axis")
    return flip(x, 0)


def roll(x, shift, axis=None):
    """Values shifted along axis (the flattened x when None), those past the end coming back
    at the start."""
    x = _v(x)
    if axis is None:
        return reshape(roll(ravel(x), builtins.sum(np.atleast_1d(shift).tolist()), 0),
                       _shape(x))
    shifts = np.atleast_1d(shift).tolist()
    axes = np.atleast_1d(axis).tolist()
    if len(shifts) == 1:
        shifts = shifts * len(axes)
    nd = _ndim(x)
    for s, a in zip(shifts, axes):
        a = _axis(int(a), nd, "roll")
        n = _shape(x)[a]
        s = int(s) % n if n else 0
        if s:
            x = _cat([_take_axis(x, a, slice(n - s, None), nd),
                      _take_axis(x, a, slice(0, n - s), nd)], a)
    return x


def rot90(array, k: int = 1, axes=(0, 1)):  # noqa: A002  (Keras's name)
    """x rotated by 90 degrees k times in the plane of `axes` (from the first toward the
    second)."""
    x = _v(array)
    nd = _ndim(x)
    if len(axes) != 2:
        raise ValueError("rot90: axes must be 2 axes")
    a, b = _axis(axes[0], nd, "rot90"), _axis(axes[1], nd, "rot90")
    if a == b:
        raise ValueError("rot90: the axes must differ")
    k = int(k) % 4
    if k == 0:
        return x
    if k == 2:
        return flip(flip(x, a), b)
    perm = list(range(nd))
    perm[a], perm[b] = perm[b], perm[a]
    if k == 1:
        return transpose(flip(x, b), perm)
    return flip(transpose(x, perm), b)


def _reshape_keep(x, shape):
    """reshape to a shape that may hold None (the batch axis)."""
    return reshape(x, tuple(-1 if d is None else d for d in shape))


def stack(x, axis: int = 0):
    """The tensors joined along a new axis."""
    xs = [_v(t) for t in x]
    if not xs:
        raise ValueError("stack: needs at least one tensor")
    nd = _ndim(xs[0]) + 1
    ax = _axis(axis, nd, "stack")
    return _cat([expand_dims(t, ax) for t in xs], ax)


def unstack(x, num=None, axis: int = 0):
    """The slices of x along axis, as a list."""
    x = _v(x)
    nd = _ndim(x)
    ax = _axis(axis, nd, "unstack")
    n = _shape(x)[ax]
    if n is None:
        raise ValueError("unstack: cannot unstack along the batch axis of a symbolic tensor")
    if num is not None and num != n:
        raise ValueError(f"unstack: num={num} but axis {axis} has {n} values")
    return [_take_axis(x, ax, i, nd) for i in range(n)]


def _split_at(x, bounds, axis):
    nd = _ndim(x)
    return [_take_axis(x, axis, slice(lo, hi), nd) for lo, hi in zip(bounds[:-1], bounds[1:])]


def split(x, indices_or_sections, axis: int = 0):
    """x cut along axis into equal sections, or at the given indices."""
    x = _v(x)
    ax = _axis(axis, _ndim(x), "split")
    n = _shape(x)[ax]
    if n is None:
        raise ValueError("split: cannot split along the batch axis of a symbolic tensor")
    if isinstance(indices_or_sections, _ints):
        k = int(indices_or_sections)
        if k <= 0 or n % k:
            raise ValueError(f"split: an axis of {n} values does not split into {k} equal "
                             "sections")
        bounds = [i * (n // k) for i in range(k + 1)]
    else:
        idx = [builtins.min(builtins.max(int(i) % n if int(i) < 0 else int(i), 0), n)
               for i in indices_or_sections]
        bounds = [0] + idx + [n]
    return _split_at(x, bounds, ax)


def array_split(x, indices_or_sections, axis: int = 0):
    """As split, but sections need not be equal (the first ones get one more value)."""
    x = _v(x)
    ax = _axis(axis, _ndim(x), "array_split")
    n = _shape(x)[ax]
    if not isinstance(indices_or_sections, _ints):
        return split(x, indices_or_sections, ax)
    k = int(indices_or_sections)
    if k <= 0:
        raise ValueError("array_split: the number of sections must be > 0")
    each, extra = divmod(n, k)
    sizes = [each + 1] * extra + [each] * (k - extra)
    return _split_at(x, [0] + np.cumsum(sizes).tolist(), ax)


def hsplit(x, indices_or_sections):
    return split(x, indices_or_sections, 1 if _ndim(x) > 1 else 0)


def vsplit(x, indices_or_sections):
    if _ndim(x) < 2:
        raise ValueError("vsplit: x must have at least 2 axes")
    return split(x, indices_or_sections, 0)


def dsplit(x, indices_or_sections):
    if _ndim(x) < 3:
        raise ValueError("dsplit: x must have at least 3 axes")
    return split(x, indices_or_sections, 2)


def _atleast(x, n: int):
    x = _v(x)
    s = _shape(x)
    if len(s) >= n:
        return x
    if n == 2:
        return reshape(x, (1,) + s if s else (1, 1))
    return reshape(x, {0: (1, 1, 1), 1: (1,) + s + (1,), 2: s + (1,)}[len(s)])


def hstack(xs):
    xs = [_v(t) if _ndim(t) else reshape(t, (1,)) for t in xs]
    return _cat(xs, 0 if _ndim(xs[0]) == 1 else 1)


def vstack(xs):
    return _cat([_atleast(t, 2) for t in xs], 0)


def dstack(xs):
    return _cat([_atleast(t, 3) for t in xs], 2)


def append(x1, x2, axis=None):
    """x2's values after x1's, along axis (both flattened when None)."""
    if axis is None:
        return _cat([ravel(x1), ravel(x2)], 0)
    return _cat([x1, x2], axis)


def repeat(x, repeats, axis=None):
    """Each value of x repeated `repeats` times along axis (x flattened when None)."""
    x = _v(x)
    if axis is None:
        x, axis = ravel(x), 0
    nd = _ndim(x)
    ax = _axis(axis, nd, "repeat")
    shape = list(_shape(x))
    n = shape[ax]
    reps = np.asarray(repeats).reshape(-1).tolist() if not isinstance(repeats, _ints) else \
        [int(repeats)]
    if len(reps) == 1:
        r = int(reps[0])
        if r == 1:
            return x
        y = expand_dims(x, ax + 1)
        y = broadcast_to(y, tuple(shape[:ax + 1] + [r] + shape[ax + 1:]))
        return _reshape_keep(y, tuple(shape[:ax] + [n * r] + shape[ax + 1:]))
    if len(reps) != n:
        raise ValueError(f"repeat: {len(reps)} repeats for an axis of {n} values")
    pieces = [_take_axis(x, ax, slice(i, i + 1), nd) for i, r in enumerate(reps)
              for _ in range(int(r))]
    return _cat(pieces, ax)


def tile(x, repeats):
    """x repeated `repeats` times along each axis."""
    x = _v(x)
    reps = (int(repeats),) if isinstance(repeats, _ints) else tuple(int(r) for r in repeats)
    shape = _shape(x)
    if len(reps) > len(shape):
        x = reshape(x, (1,) * (len(reps) - len(shape)) + shape)
        shape = _shape(x)
    reps = (1,) * (len(shape) - len(reps)) + reps
    for i, r in enumerate(reps):
        if r != 1:
            x = _cat([x] * r, i)
    return x


def _tri_mask(shape, k: int, lower: bool) -> np.ndarray:
    if len(shape) < 2:
        raise ValueError(f"tril/triu: x must have at least 2 axes, got shape {shape}")
    n, m = shape[-2], shape[-1]
    if n is None:
        raise ValueError("tril/triu: the matrix rows would be a symbolic tensor's batch axis")
    return np.tri(n, m, k, dtype=np.float32) if lower else \
        1.0 - np.tri(n, m, k - 1, dtype=np.float32)


def _mask(x, mask: np.ndarray):
    """x where mask is 1, else 0."""
    where = globals().get("where")
    if where is not None:
        return where(mask.astype(bool), x, 0.0)
    return multiply(x, mask)


def tril(x, k: int = 0):
    """x with the values above the k-th diagonal set to 0."""
    x = _v(x)
    return _mask(x, _tri_mask(_shape(x), int(k), True))


def triu(x, k: int = 0):
    x = _v(x)
    return _mask(x, _tri_mask(_shape(x), int(k), False))


def diagonal(x, offset: int = 0, axis1: int = 0, axis2: int = 1):
    """The values x[..., i, i + offset] of the plane (axis1, axis2), on a last axis."""
    x = _v(x)
    nd = _ndim(x)
    if nd < 2:
        raise ValueError("diagonal: x must have at least 2 axes")
    x = moveaxis(x, (_axis(axis1, nd, "diagonal"), _axis(axis2, nd, "diagonal")), (-2, -1))
    shape = _shape(x)
    n, m = shape[-2], shape[-1]
    offset = int(offset)
    start = offset if offset >= 0 else -offset * m
    length = builtins.max(builtins.min(n, m - offset) if offset >= 0 else
                          builtins.min(n + offset, m), 0)
    if length == 0:
        raise ValueError(f"diagonal: offset {offset} is outside a {n}x{m} plane")
    flat = _reshape_keep(x, shape[:-2] + (n * m,))
    return _index(flat, (Ellipsis, slice(start, start + (length - 1) * (m + 1) + 1, m + 1)))


def diag(x, k: int = 0):
    """The k-th diagonal of a 2-D x, or a 2-D tensor with 1-D x on its k-th diagonal."""
    x = _v(x)
    nd = _ndim(x)
    if nd == 2:
        return diagonal(x, k)
    if nd != 1:
        raise ValueError(f"diag: x must be 1-D or 2-D, got rank {nd}")
    n = _shape(x)[0]
    k = int(k)
    size_ = n + builtins.abs(k)
    e = np.zeros((n, size_, size_), np.float32)
    i = np.arange(n)
    e[i, i + builtins.max(-k, 0), i + builtins.max(k, 0)] = 1.0
    return reshape(matmul(x, e.reshape(n, size_ * size_)), (size_, size_))


def diagflat(x, k: int = 0):
    return diag(ravel(x), k)


def trace(x, offset: int = 0, axis1: int = 0, axis2: int = 1):
    return sum(diagonal(x, offset, axis1, axis2), axis=-1)


# -- reductions -----------------------------------------------------------------------------------
def var(x, axis=None, keepdims: bool = False):
    """The variance (mean squared deviation from the mean)."""
    x = _v(x)
    m = mean(x, axis, keepdims=True)
    return mean(square(subtract(x, m)), axis, keepdims)


def std(x, axis=None, keepdims: bool = False):
    return sqrt(var(x, axis, keepdims))


def average(x, axis=None, weights=None):
    """The weighted mean along axis (weights shaped like x, or 1-D along axis)."""
    x = _v(x)
    if weights is None:
        return mean(x, axis)
    weights = _v(weights)
    xs, ws = _shape(x), _shape(weights)
    if ws != xs:
        if axis is None:
            raise ValueError("average: weights of another shape than x need an axis")
        if len(ws) != 1 or (not isinstance(axis, _ints)):
            raise ValueError(f"average: weights of shape {ws} do not fit x of shape {xs}")
        ax = _axis(axis, len(xs), "average")
        weights = reshape(weights, tuple(-1 if i == ax else 1 for i in range(len(xs))))
    return divide(sum(multiply(x, weights), axis), sum(weights, axis))


def ptp(x, axis=None, keepdims: bool = False):
    """max - min along axis."""
    x = _v(x)
    return subtract(max(x, axis, keepdims), min(x, axis, keepdims))


def norm(x, ord=None, axis=None, keepdims: bool = False):  # noqa: A002
    """Vector norms (over one axis) and matrix norms (over two), as numpy.linalg.norm."""
    x = _v(x)
    nd = _ndim(x)
    if axis is None:
        if ord is None:
            out = sqrt(sum(square(x), None, keepdims))
            return out
        if nd not in (1, 2):
            raise ValueError("norm: with an ord, x must be 1-D or 2-D when axis is None")
        axis = tuple(range(nd))
    axes = (axis,) if isinstance(axis, _ints) else tuple(axis)
    axes = tuple(_axis(int(a), nd, "norm") for a in axes)
    if len(axes) == 1:
        a = axes[0]
        if ord is None or ord == 2:
            return sqrt(sum(square(x), a, keepdims))
        if ord == np.inf:
            return max(abs(x), a, keepdims)
        if ord == -np.inf:
            return min(abs(x), a, keepdims)
        if ord == 0:
            return sum(_nonzero(x), a, keepdims)
        if ord == 1:
            return sum(abs(x), a, keepdims)
        if isinstance(ord, str):
            raise ValueError(f"norm: ord {ord!r} is for matrices; a vector norm takes a number")
        p = float(ord)
        return power(sum(power(abs(x), p), a, keepdims), 1.0 / p)
    if len(axes) != 2 or axes[0] == axes[1]:
        raise ValueError(f"norm: axis must be one axis or two, got {axis}")
    r, c = axes
    if ord is None or ord == "fro":
        return sqrt(sum(square(x), axes, keepdims))
    if ord in (1, -1, np.inf, -np.inf):
        inner_, outer_ = (r, c) if ord in (1, -1) else (c, r)
        s = sum(abs(x), inner_, keepdims=True)
        out = (max if ord > 0 else min)(s, outer_, keepdims=True)
        return out if keepdims else squeeze(out, axes)
    if ord in ("nuc", 2, -2):
        a = _data(x, f"norm(ord={ord!r})")
        return _out(np.linalg.norm(a, ord, axes, keepdims))
    raise ValueError(f"norm: invalid ord {ord!r} for a matrix norm")


# -- products -------------------------------------------------------------------------------------
def tensordot(x1, x2, axes=2):
    """The sum of products over the given axes of x1 and x2 (NumPy's tensordot)."""
    a, b = _v(x1), _v(x2)
    sa, sb = _shape(a), _shape(b)
    if isinstance(axes, _ints):
        n = int(axes)
        ax_a, ax_b = list(range(len(sa) - n, len(sa))), list(range(n))
    else:
        ax_a, ax_b = axes
        ax_a = [ax_a] if isinstance(ax_a, _ints) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, _ints) else list(ax_b)
    ax_a = [_axis(int(i), len(sa), "tensordot") for i in ax_a]
    ax_b = [_axis(int(i), len(sb), "tensordot") for i in ax_b]
    if len(ax_a) != len(ax_b) or builtins.any(sa[i] != sb[j] for i, j in zip(ax_a, ax_b)):
        raise ValueError(f"tensordot: shapes {sa} and {sb} do not match on axes {axes}")
    free_a = [i for i in range(len(sa)) if i not in ax_a]
    free_b = [j for j in range(len(sb)) if j not in ax_b]
    if _batched(b):
        if _batched(a) or free_a:
            raise NotImplementedError("tensordot: the batch axis of a symbolic x2 would not "
                                      "come first in the result")
        return tensordot(b, a, (ax_b, ax_a))
    k = int(np.prod([sa[i] for i in ax_a], dtype=np.int64))
    a2 = transpose(a, free_a + ax_a) if free_a + ax_a != list(range(len(sa))) else a
    a2 = _reshape_keep(a2, tuple(sa[i] for i in free_a) + (k,))
    nb = int(np.prod([sb[j] for j in free_b], dtype=np.int64))
    b2 = transpose(b, ax_b + free_b) if ax_b + free_b != list(range(len(sb))) else b
    b2 = reshape(b2, (k, nb) if free_b else (k,))
    out = matmul(a2, b2)
    return _reshape_keep(out, tuple(sa[i] for i in free_a) + tuple(sb[j] for j in free_b))


def dot(x1, x2):
    """NumPy's dot: products of scalars, sums over the last axis of x1 and the second-to-last
    of x2."""
    a, b = _v(x1), _v(x2)
    na, nb = _ndim(a), _ndim(b)
    if na == 0 or nb == 0:
        return multiply(a, b)
    if nb == 1 or (nb == 2 and na >= 2):
        return matmul(a, b)
    return tensordot(a, b, ([na - 1], [nb - 2]))


def inner(x1, x2):
    """The sum of products over the last axes."""
    a, b = _v(x1), _v(x2)
    if _ndim(a) == 0 or _ndim(b) == 0:
        return multiply(a, b)
    return tensordot(a, b, ([-1], [-1]))


def outer(x1, x2):
    a, b = ravel(x1), ravel(x2)
    return multiply(reshape(a, (-1, 1)), reshape(b, (1, -1)))


def vdot(x1, x2):
    return sum(multiply(ravel(x1), ravel(x2)))


def kron(x1, x2):
    """The Kronecker product: blocks of x2 scaled by each value of x1."""
    a, b = _v(x1), _v(x2)
    sa, sb = _shape(a), _shape(b)
    nd = builtins.max(len(sa), len(sb))
    sa, sb = (1,) * (nd - len(sa)) + sa, (1,) * (nd - len(sb)) + sb
    a = _reshape_keep(a, tuple(d for s in sa for d in (s, 1)))
    b = _reshape_keep(b, tuple(d for s in sb for d in (1, s)))
    out = multiply(a, b)
    return _reshape_keep(out, tuple(None if p is None else p * q for p, q in zip(sa, sb)))


def cross(x1, x2, axisa: int = -1, axisb: int = -1, axisc: int = -1, axis=None):
    """The cross product of 2- or 3-vectors along the given axes."""
    if axis is not None:
        axisa = axisb = axisc = axis
    a = moveaxis(_v(x1), axisa, -1)
    b = moveaxis(_v(x2), axisb, -1)
    da, db = _shape(a)[-1], _shape(b)[-1]
    if da not in (2, 3) or db not in (2, 3):
        raise ValueError(f"cross: vectors must have 2 or 3 components, got {da} and {db}")
    ca = [_index(a, (Ellipsis, i)) for i in range(da)]
    cb = [_index(b, (Ellipsis, i)) for i in range(db)]
    if da == 2 and db == 2:
        return subtract(multiply(ca[0], cb[1]), multiply(ca[1], cb[0]))
    a2 = ca[2] if da == 3 else 0.0
    b2 = cb[2] if db == 3 else 0.0

    def term(p, q, r, s):
        left = 0.0 if isinstance(p, float) or isinstance(q, float) else multiply(p, q)
        right = 0.0 if isinstance(r, float) or isinstance(s, float) else multiply(r, s)
        return subtract(left, right)
    c = [term(ca[1], b2, a2, cb[1]), term(a2, cb[0], ca[0], b2),
         subtract(multiply(ca[0], cb[1]), multiply(ca[1], cb[0]))]
    out = stack([c[i] if not isinstance(c[i], float) else zeros_like(c[2]) for i in range(3)],
                -1)
    return moveaxis(out, -1, axisc)


def diff(a, n: int = 1, axis: int = -1):
    """The n-th differences along axis: out[i] = a[i + 1] - a[i]."""
    x = _v(a)
    nd = _ndim(x)
    ax = _axis(axis, nd, "diff")
    for _ in range(int(n)):
        x = subtract(_take_axis(x, ax, slice(1, None), nd), _take_axis(x, ax, slice(None, -1),
                                                                         nd))
    return x


def trapezoid(y, x=None, dx: float = 1.0, axis: int = -1):
    """The integral of y by the trapezoidal rule (at points x, or spaced dx)."""
    y = _v(y)
    nd = _ndim(y)
    ax = _axis(axis, nd, "trapezoid")
    if x is None:
        d = dx
    else:
        x = _v(x)
        d = diff(x, axis=-1 if _ndim(x) == 1 else ax)
        if _ndim(x) == 1:
            d = reshape(d, tuple(-1 if i == ax else 1 for i in range(nd)))
    mid = add(_take_axis(y, ax, slice(1, None), nd), _take_axis(y, ax, slice(None, -1), nd))
    return sum(multiply(multiply(mid, d), 0.5), ax)


def einsum(subscripts: str, *operands, **kwargs):
    """Einstein summation: pairwise transposes, reshapes and matmuls (a letter repeated within
    one operand, a diagonal, is not supported)."""
    if kwargs:
        raise TypeError(f"einsum: unexpected keyword arguments {sorted(kwargs)}")
    ops_ = [_v(o) for o in operands]
    spec = subscripts.replace(" ", "")
    ins, arrow, out = spec.partition("->")
    terms = ins.split(",")
    if len(terms) != len(ops_):
        raise ValueError(f"einsum: {len(terms)} operands in {subscripts!r}, {len(ops_)} given")
    shapes = [_shape(o) for o in ops_]
    used = set(c for c in spec if c.isalpha())
    pool = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in used]
    n_ell = 0
    for t, s in zip(terms, shapes):
        if "..." in t:
            n_ell = builtins.max(n_ell, len(s) - (len(t) - 3))
    ell = pool[:n_ell]
    for i, (t, s) in enumerate(zip(terms, shapes)):
        if "..." in t:
            k = len(s) - (len(t) - 3)
            terms[i] = t.replace("...", "".join(ell[n_ell - k:]))
    if arrow:
        out = out.replace("...", "".join(ell))
    else:
        counts = {}
        for t in terms:
            for c in t:
                counts[c] = counts.get(c, 0) + 1
        out = "".join(ell) + "".join(sorted(c for c, n in counts.items()
                                            if n == 1 and c not in ell))
    dims = {}
    for t, s in zip(terms, shapes):
        if len(t) != len(s):
            raise ValueError(f"einsum: operand of shape {s} does not fit subscripts {t!r}")
        if len(set(t)) != len(t):
            raise NotImplementedError(f"einsum: a letter repeated within one operand ({t!r}, "
                                      "a diagonal) is not supported")
        for c, d in zip(t, s):
            if dims.get(c) not in (None, d) and d is not None:
                raise ValueError(f"einsum: letter {c!r} has sizes {dims[c]} and {d}")
            if c not in dims or dims[c] is None:
                dims[c] = d
    for c in out:
        if c not in dims:
            raise ValueError(f"einsum: output letter {c!r} is in no operand")

    def reduce_unused(x, t, keep):
        drop = [i for i, c in enumerate(t) if c not in keep]
        if drop:
            x = sum(x, tuple(drop))
            t = "".join(c for c in t if c in keep)
        return x, t

    x, t = ops_[0], terms[0]
    for j in range(1, len(ops_)):
        y, u = ops_[j], terms[j]
        later = set(out).union(*[set(v) for v in terms[j + 1:]])
        x, t = reduce_unused(x, t, later | set(u))
        y, u = reduce_unused(y, u, later | set(t))
        batch = [c for c in t if c in u and c in later]
        contr = [c for c in t if c in u and c not in later]
        fa = [c for c in t if c not in u]
        fb = [c for c in u if c not in t]
        for group in (batch, fa):  # a symbolic x keeps its batch letter first
            if _batched(x) and t[0] in group:
                group.remove(t[0])
                group.insert(0, t[0])
        if _batched(y) and u[0] in batch:
            batch.remove(u[0])
            batch.insert(0, u[0])
        xt = transpose(x, [t.index(c) for c in batch + fa + contr]) \
            if batch + fa + contr != list(t) else x
        yt = transpose(y, [u.index(c) for c in batch + contr + fb]) \
            if batch + contr + fb != list(u) else y
        bshape = tuple(dims[c] for c in batch)
        fa_n = int(np.prod([dims[c] for c in fa], dtype=np.int64))
        fb_n = int(np.prod([dims[c] for c in fb], dtype=np.int64))
        k = int(np.prod([dims[c] for c in contr], dtype=np.int64))
        xt = _reshape_keep(xt, bshape + (fa_n, k))
        yt = _reshape_keep(yt, tuple(_shape(yt)[:len(batch)]) + (k, fb_n))
        x = _reshape_keep(matmul(xt, yt), bshape + tuple(dims[c] for c in fa + fb))
        t = "".join(batch + fa + fb)
    x, t = reduce_unused(x, t, set(out))
    if t != out:
        x = transpose(x, [t.index(c) for c in out])
    return x


# -- more composed math ---------------------------------------------------------------------------
def fmod(x1, x2):
    """The remainder of x1 / x2 with x1's sign (C's fmod): x1 - trunc(x1 / x2) x2."""
    x1, x2 = _v(x1), _v(x2)
    return subtract(x1, multiply(trunc(divide(x1, x2)), x2))


def vander(x, N=None, increasing: bool = False):  # noqa: N803  (Keras's name)
    """The Vandermonde matrix of 1-D x: columns x^(N-1), ..., x, 1 (reversed if increasing)."""
    x = _v(x)
    if _ndim(x) != 1:
        raise ValueError("vander: x must be 1-D")
    n = _shape(x)[0] if N is None else int(N)
    cols, p = [], ones_like(x, "float32")
    for _ in range(n):
        cols.append(p)
        p = multiply(p, x)
    if not increasing:
        cols = cols[::-1]
    return stack(cols, -1)


def cdist(x, y):
    """The Euclidean distances between the rows of x (..., n, d) and of y (..., m, d)."""
    x, y = _v(x), _v(y)
    d = subtract(expand_dims(x, -2), expand_dims(y, -3))
    return sqrt(sum(square(d), -1))


def corrcoef(x):
    """Pearson correlation coefficients between the rows of x (variables in rows)."""
    x = _v(x)
    if _ndim(x) == 1:
        x = reshape(x, (1, -1))
    c = subtract(x, mean(x, -1, keepdims=True))
    cov = matmul(c, transpose(c))
    d = sqrt(diagonal(cov))
    return clip(divide(divide(cov, reshape(d, (-1, 1))), reshape(d, (1, -1))), -1.0, 1.0)


def correlate(x1, x2, mode: str = "valid"):
    """The cross-correlation of two 1-D tensors: c[k] = sum_n x1[n + k] x2[n]."""
    a, v = _v(x1), _v(x2)
    if _ndim(a) != 1 or _ndim(v) != 1:
        raise ValueError("correlate: x1 and x2 must be 1-D")
    n, m = _shape(a)[0], _shape(v)[0]
    if mode not in ("valid", "same", "full"):
        raise ValueError(f"correlate: mode must be 'valid', 'same' or 'full', got {mode!r}")
    if m > n:  # NumPy swaps them and reverses the result
        return flip(correlate(v, a, mode), 0)
    from .nn import _zero_pad
    lo, hi = {"valid": (0, 0), "same": (m // 2, m - 1 - m // 2),
              "full": (m - 1, m - 1)}[mode]
    a = _zero_pad(a, 0, lo, hi)
    k = n + lo + hi - m + 1
    out = None
    for j in range(m):
        term = multiply(_index(a, slice(j, j + k)), _index(v, j))
        out = term if out is None else add(out, term)
    return out


def isreal(x):
    """True (1) everywhere: pynn's tensors are real."""
    return ones_like(x, "int32")


def i0(x):
    """The modified Bessel function of the first kind, order 0 (data only)."""
    return _out(np.i0(_data(x, "i0")))


# -- on data only: integer results, in NumPy ----------------------------------------------------
def _window(fn: str, n, *args):
    n = int(_data(n, fn)) if not isinstance(n, _ints) else int(n)
    return Tensor(getattr(np, fn)(n, *args).astype(np.float32))


def bartlett(x):
    return _window("bartlett", x)


def blackman(x):
    return _window("blackman", x)


def hamming(x):
    return _window("hamming", x)


def hanning(x):
    return _window("hanning", x)


def kaiser(x, beta):
    return _window("kaiser", x, float(beta))


def _ints_of(x, fn: str) -> np.ndarray:
    a = _data(x, fn)
    if a.dtype.kind not in "iub":
        if not np.all(a == np.round(a)):
            raise TypeError(f"{fn}: expects integers, got non-integer values")
        a = a.astype(np.int64)
    return a.astype(np.int64)


def bincount(x, weights=None, minlength: int = 0, sparse: bool = False):
    """The count of each non-negative integer in x (weighted: their summed weights)."""
    if sparse:
        raise NotImplementedError("bincount: pynn has no sparse tensors (sparse=True)")
    a = _ints_of(x, "bincount")
    w = None if weights is None else _data(weights, "bincount")
    if a.ndim == 2:  # Keras: one count per row
        size = builtins.max(int(a.max()) + 1 if a.size else 0, minlength)
        return _out(np.stack([np.bincount(r, None if w is None else w[i], size)
                              for i, r in enumerate(a)]))
    out = np.bincount(a, w, minlength)
    return Tensor(out.astype(np.float32 if w is not None else np.int32))


def digitize(x, bins):
    return _out(np.digitize(_data(x, "digitize"), _data(bins, "digitize")))


def searchsorted(sorted_sequence, values, side: str = "left"):
    return _out(np.searchsorted(_data(sorted_sequence, "searchsorted"),
                                _data(values, "searchsorted"), side=side))


def histogram(x, bins: int = 10, range=None):  # noqa: A002
    counts, edges = np.histogram(_data(x, "histogram"), bins=bins, range=range)
    return _out(counts), Tensor(edges.astype(np.float32))


def unique(x, sorted: bool = True, return_index: bool = False,  # noqa: A002
           return_inverse: bool = False, return_counts: bool = False, axis=None, size=None,
           fill_value=None):
    """The distinct values of x (sorted), with NumPy's optional extras."""
    a = _data(x, "unique")
    out = np.unique(a, return_index=return_index, return_inverse=return_inverse,
                    return_counts=return_counts, axis=axis)
    out = list(out) if isinstance(out, tuple) else [out]
    if size is not None:
        n = len(out[0])
        if n < size:
            fill = out[0].min() if fill_value is None and n else (fill_value or 0)
            out[0] = np.concatenate([out[0], np.full(size - n, fill, out[0].dtype)])
        else:
            out[0] = out[0][:size]
    res = [_out(o) for o in out]
    return res[0] if len(res) == 1 else tuple(res)


def nonzero(x):
    """The indices of the non-zero values, one int32 tensor per axis."""
    return tuple(_out(i) for i in np.nonzero(_data(x, "nonzero")))


def argpartition(x, kth, axis: int = -1):
    return _out(np.argpartition(_data(x, "argpartition"), kth, axis=axis))


def unravel_index(indices, shape):
    return tuple(_out(i) for i in np.unravel_index(_ints_of(indices, "unravel_index"), shape))


def isin(x1, x2, assume_unique: bool = False, invert: bool = False):
    return _out(np.isin(_data(x1, "isin"), _data(x2, "isin"), assume_unique=assume_unique,
                        invert=invert))


def nextafter(x1, x2):
    """The next float32 after x1 toward x2."""
    a = _data(x1, "nextafter").astype(np.float32)
    return Tensor(np.nextafter(a, _data(x2, "nextafter").astype(np.float32)))


def gcd(x1, x2):
    return _out(np.gcd(_ints_of(x1, "gcd"), _ints_of(x2, "gcd")))


def lcm(x1, x2):
    return _out(np.lcm(_ints_of(x1, "lcm"), _ints_of(x2, "lcm")))


def bitwise_and(x, y):
    return _out(np.bitwise_and(_ints_of(x, "bitwise_and"), _ints_of(y, "bitwise_and")))


def bitwise_or(x, y):
    return _out(np.bitwise_or(_ints_of(x, "bitwise_or"), _ints_of(y, "bitwise_or")))


def bitwise_xor(x, y):
    return _out(np.bitwise_xor(_ints_of(x, "bitwise_xor"), _ints_of(y, "bitwise_xor")))


def bitwise_invert(x):
    return _out(np.invert(_ints_of(x, "bitwise_invert").astype(np.int32)))


bitwise_not = bitwise_invert


def bitwise_left_shift(x, y):
    a = _ints_of(x, "bitwise_left_shift").astype(np.int32)
    return _out(np.left_shift(a, _ints_of(y, "bitwise_left_shift").astype(np.int32)))


def bitwise_right_shift(x, y):
    a = _ints_of(x, "bitwise_right_shift").astype(np.int32)
    return _out(np.right_shift(a, _ints_of(y, "bitwise_right_shift").astype(np.int32)))


left_shift = bitwise_left_shift
right_shift = bitwise_right_shift


# -- comparisons, selection, sorting: pynn/ops/_select.py -----------------------------------------
from ._select import (  # noqa: E402  (they build on the functions above)
    arctan2,
    argmax,
    argmin,
    argsort,
    cumprod,
    cumsum,
    equal,
    floor_divide,
    greater,
    greater_equal,
    hypot,
    isfinite,
    isinf,
    isnan,
    less,
    less_equal,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    mod,
    not_equal,
    pad,
    prod,
    select,
    signbit,
    sort,
    take,
    take_along_axis,
    top_k,
    where,
)

_SELECTED = (arctan2, argmax, argmin, argsort, cumprod, cumsum, equal, floor_divide, greater,
             greater_equal, hypot, isfinite, isinf, isnan, less, less_equal, logical_and,
             logical_not, logical_or, logical_xor, mod, not_equal, pad, prod, select, signbit,
             sort, take, take_along_axis, top_k, where)  # re-exported as keras.ops's


# -- composed with them ---------------------------------------------------------------------------
# Truth values are float32 0/1, as _select's comparisons give them (Keras: bool).
def all(x, axis=None, keepdims: bool = False):  # noqa: A001
    """1 where every value along axis is non-zero, else 0."""
    return min(not_equal(_v(x), 0.0), axis, keepdims)


def any(x, axis=None, keepdims: bool = False):  # noqa: A001
    """1 where some value along axis is non-zero, else 0."""
    return max(not_equal(_v(x), 0.0), axis, keepdims)


def count_nonzero(x, axis=None):
    """The number of non-zero values along axis (int32)."""
    return _base.cast(sum(not_equal(_v(x), 0.0), axis), "int32")


def isclose(x1, x2, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False):
    """|x1 - x2| <= atol + rtol |x2| (equal infinities too; NaNs when equal_nan)."""
    a, b = _v(x1), _v(x2)
    close = less_equal(abs(subtract(a, b)), add(multiply(abs(b), rtol), atol))
    out = logical_or(equal(a, b), close)
    if equal_nan:
        out = logical_or(out, logical_and(isnan(a), isnan(b)))
    return out


def allclose(x1, x2, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False):
    return all(isclose(x1, x2, rtol, atol, equal_nan))


def isposinf(x):
    x = _v(x)
    return logical_and(isinf(x), greater(x, 0.0))


def isneginf(x):
    x = _v(x)
    return logical_and(isinf(x), less(x, 0.0))


def nan_to_num(x, nan: float = 0.0, posinf=None, neginf=None):
    """x with NaN, +inf and -inf replaced (by default: 0, and float32's largest and lowest)."""
    x = _v(x)
    big = float(np.finfo(np.float32).max)
    posinf = big if posinf is None else posinf
    neginf = -big if neginf is None else neginf
    out = where(isnan(x), nan, x)
    out = where(isposinf(x), posinf, out)
    return where(isneginf(x), neginf, out)


def fmax(x1, x2):
    """maximum that ignores a NaN (NaN only where both are)."""
    a, b = _v(x1), _v(x2)
    return where(isnan(a), b, where(isnan(b), a, maximum(a, b)))


def fmin(x1, x2):
    a, b = _v(x1), _v(x2)
    return where(isnan(a), b, where(isnan(b), a, minimum(a, b)))


def _quantile(x, q, axis, method: str, keepdims: bool, fn: str):
    """Quantiles (q in [0, 1]) by sorting along the axes: linear interpolation between
    neighbours, or lower, higher, midpoint, nearest (NumPy's methods)."""
    methods = ("linear", "lower", "higher", "midpoint", "nearest")
    if method not in methods:
        raise ValueError(f"{fn}: method must be one of {methods}, got {method!r}")
    x = _v(x)
    qs = _data(q, f"{fn} (q)").astype(np.float64)
    if np.any(qs < 0) or np.any(qs > 1):
        raise ValueError(f"{fn}: q must lie in [0, 1] (percentile: [0, 100])")
    nd = _ndim(x)
    axes = _axes(axis, nd, fn)
    rest = [i for i in range(nd) if i not in axes]
    y = transpose(x, rest + list(axes)) if rest + list(axes) != list(range(nd)) else x
    shape = _shape(y)
    n = int(np.prod([_shape(x)[a] for a in axes], dtype=np.int64))
    y = sort(_reshape_keep(y, shape[:len(rest)] + (n,)), -1)
    m = len(rest)
    outs = []
    for qv in qs.reshape(-1):
        pos = qv * (n - 1)
        lo, hi = int(np.floor(pos)), int(np.ceil(pos))
        frac = pos - lo
        if method == "lower":
            hi, frac = lo, 0.0
        elif method == "higher":
            lo, frac = hi, 0.0
        elif method == "nearest":
            lo = hi = int(np.round(pos))
            frac = 0.0
        elif method == "midpoint":
            frac = 0.5 if hi != lo else 0.0
        a = _take_axis(y, m, lo, m + 1)
        v = a if hi == lo or frac == 0 else add(multiply(a, 1.0 - frac),
                                               multiply(_take_axis(y, m, hi, m + 1), frac))
        if keepdims:
            full = list(_shape(x))
            for ax in axes:
                full[ax] = 1
            v = _reshape_keep(v, tuple(full))
        outs.append(v)
    if qs.ndim == 0:
        return outs[0]
    return stack(outs, 0)


def quantile(x, q, axis=None, method: str = "linear", keepdims: bool = False):
    """The q-th quantiles of x along axis (q in [0, 1]; an array of q: a first axis)."""
    return _quantile(x, q, axis, method, keepdims, "quantile")


def percentile(x, q, axis=None, method: str = "linear", keepdims: bool = False):
    """The q-th percentiles (q in [0, 100])."""
    qs = np.asarray(_data(q, "percentile (q)"), np.float64) / 100.0
    return _quantile(x, qs, axis, method, keepdims, "percentile")


def median(x, axis=None, keepdims: bool = False):
    return _quantile(x, 0.5, axis, "linear", keepdims, "median")


# NaN-ignoring reductions: NaN replaced by the reduction's identity, counts without the NaNs
def nansum(x, axis=None, keepdims: bool = False):
    x = _v(x)
    return sum(where(isnan(x), 0.0, x), axis, keepdims)


def nanprod(x, axis=None, keepdims: bool = False):
    x = _v(x)
    return prod(where(isnan(x), 1.0, x), axis, keepdims)


def nanmean(x, axis=None, keepdims: bool = False):
    """The mean of the non-NaN values (NaN where there are none)."""
    x = _v(x)
    return divide(nansum(x, axis, keepdims), sum(logical_not(isnan(x)), axis, keepdims))


def nanvar(x, axis=None, keepdims: bool = False):
    x = _v(x)
    m = nanmean(x, axis, keepdims=True)
    return nanmean(square(subtract(x, m)), axis, keepdims)


def nanstd(x, axis=None, keepdims: bool = False):
    return sqrt(nanvar(x, axis, keepdims))


def nanmax(x, axis=None, keepdims: bool = False):
    """The maximum of the non-NaN values (NaN where all are NaN)."""
    x = _v(x)
    out = max(where(isnan(x), -np.inf, x), axis, keepdims)
    none = min(isnan(x), axis, keepdims)  # 1 where every value is NaN
    return where(none, np.nan, out)


def nanmin(x, axis=None, keepdims: bool = False):
    x = _v(x)
    out = min(where(isnan(x), np.inf, x), axis, keepdims)
    return where(min(isnan(x), axis, keepdims), np.nan, out)


def nanargmax(x, axis=None, keepdims: bool = False):
    """argmax ignoring NaNs (a row of NaNs gives 0... as Keras: NumPy raises)."""
    x = _v(x)
    return argmax(where(isnan(x), -np.inf, x), axis, keepdims)


def nanargmin(x, axis=None, keepdims: bool = False):
    x = _v(x)
    return argmin(where(isnan(x), np.inf, x), axis, keepdims)


def nancumsum(x, axis=None, dtype=None):
    x = _v(x)
    return cumsum(where(isnan(x), 0.0, x), axis)


def nancumprod(x, axis=None, dtype=None):
    x = _v(x)
    return cumprod(where(isnan(x), 1.0, x), axis)


def _nanquantile(x, q, axis, method, keepdims, fn):
    import warnings
    a = _data(x, fn)
    with warnings.catch_warnings():  # an all-NaN row gives NaN, as Keras's
        warnings.simplefilter("ignore", RuntimeWarning)
        return _out(getattr(np, fn)(a, q, axis=axis, method=method, keepdims=keepdims))


def nanquantile(x, q, axis=None, method: str = "linear", keepdims: bool = False):
    """quantile ignoring NaNs (on data only: the count of values differs by row)."""
    return _nanquantile(x, q, axis, method, keepdims, "nanquantile")


def nanpercentile(x, q, axis=None, method: str = "linear", keepdims: bool = False):
    return _nanquantile(x, q, axis, method, keepdims, "nanpercentile")


def nanmedian(x, axis=None, keepdims: bool = False):
    return _nanquantile(x, 0.5, axis, "linear", keepdims, "nanquantile")


# -- scatter (indices on data; gradients reach the values) ----------------------------------------
def _scatter_matrix(indices, shape, fn: str):
    """(rows of the flattened leading axes, the one-hot matrix that places each update) for
    indices (N, k) into shape."""
    idx = _ints_of(indices, fn)
    if idx.ndim == 1:
        idx = idx[:, None]
    k = idx.shape[-1]
    idx = idx.reshape(-1, k)
    lead = tuple(int(d) for d in shape[:k])
    if np.any(idx < 0) or np.any(idx >= np.array(lead)):
        raise ValueError(f"{fn}: an index lies outside shape {tuple(shape)}")
    flat = np.ravel_multi_index(idx.T, lead) if k else np.zeros(len(idx), np.int64)
    rows = int(np.prod(lead, dtype=np.int64))
    mat = np.zeros((rows, len(idx)), np.float32)
    np.add.at(mat, (flat, np.arange(len(idx))), 1.0)
    return mat, idx, k


def scatter(indices, values, shape):
    """Zeros of `shape` with values added at indices ((N, k) positions of the first k axes);
    repeated indices add up."""
    shape = tuple(int(d) for d in shape)
    mat, idx, k = _scatter_matrix(indices, shape, "scatter")
    v = reshape(_v(values), (len(idx), -1))
    return reshape(matmul(mat, v), shape)


def scatter_update(inputs, indices, updates, reduction=None):
    """inputs with the slices at indices replaced by updates (reduction "add": added to)."""
    x = _v(inputs)
    shape = _shape(x)
    if builtins.any(d is None for d in shape):
        raise NotImplementedError("scatter_update: indices into a symbolic tensor's batch axis "
                                  "are not supported")
    if reduction not in (None, "add"):
        raise NotImplementedError(f"scatter_update: reduction {reduction!r} is not supported "
                                  "(None or 'add')")
    mat, idx, k = _scatter_matrix(indices, shape, "scatter_update")
    u = reshape(_v(updates), (len(idx), -1))
    placed = reshape(matmul(mat, u), shape)
    if reduction == "add":
        return add(x, placed)
    if np.any(mat.sum(1) > 1):
        raise ValueError("scatter_update: an index repeats; which update wins is undefined")
    keep = (mat.sum(1) == 0).astype(np.float32).reshape(shape[:k] + (1,) * (len(shape) - k))
    return add(multiply(x, keep), placed)


def sparsemax(x, axis: int = -1):
    """The Euclidean projection of x onto the simplex along axis (sparse probabilities)."""
    x = _v(x)
    nd = _ndim(x)
    ax = _axis(axis, nd, "sparsemax")
    n = _shape(x)[ax]
    z = flip(sort(x, ax), ax)  # largest first
    k = np.arange(1, n + 1, dtype=np.float32).reshape([n if i == ax else 1 for i in range(nd)])
    cs = cumsum(z, ax)
    support = greater(add(multiply(z, k), 1.0), cs)
    kz = sum(support, ax, keepdims=True)
    tau = divide(subtract(sum(multiply(z, support), ax, keepdims=True), 1.0), kz)
    return _unary("relu", subtract(x, tau))

__all__ = sorted(n for n, v in list(globals().items())
                 if not n.startswith("_") and callable(v) and not isinstance(v, type) and
                 n not in ("binary", "unary", "reduce"))
