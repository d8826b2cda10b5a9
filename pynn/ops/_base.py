"""The primitives every pynn.ops function is written with, each running in one of two ways:

  - on symbolic tensors (a KerasTensor from pynn.Input, or a placeholder while a layer's call()
    is traced): the op is recorded as a node of the model's core graph (an OpLayer call);
  - on data (pynn.Tensor, NumPy arrays, numbers): the op runs now in the core and, when an
    operand needs a gradient, records itself on the tape.

Both run the same C kernels (csrc/core/eager_math.c). A layer's weight (a Variable) is an operand
too: on the tape it is the weight's leaf Tensor (so gradients reach it); in a trace, a read of
the weight's core variable.
"""

import numpy as np

from .. import _core
from ..layers.base import Variable, unique_name
from ..layers.input_layer import KerasTensor
from ..tensor import Tensor


def is_symbolic(*values) -> bool:
    """Whether any value (or a value in a list or tuple) is a symbolic tensor, or a layer's
    weight read while a call() is traced: an op on weights alone is then a node that reads them
    at every step, not a constant of their values of now (which training would never change)."""
    weights = False
    for v in values:
        for x in v if isinstance(v, (list, tuple)) else (v,):
            if isinstance(x, KerasTensor):
                return True
            weights = weights or isinstance(x, Variable)
    if weights:
        from ..layers import tracing
        return tracing.tracing()
    return False


def eager(x):
    """An operand for the tape: a weight as its leaf Tensor; anything else as it is (the core
    converts arrays and numbers)."""
    if isinstance(x, Variable):
        return x._tensor()
    return x


def tensor(x):
    """x as a Tensor for the tape (arrays copied to float32 unless integer)."""
    x = eager(x)
    if isinstance(x, Tensor):
        return x
    a = np.asarray(x)
    if a.dtype.kind in "iub":
        return Tensor(a.astype(np.int32))
    return Tensor(a.astype(np.float32))


def symbolic(x, allow_scalar: bool = True):
    """An operand for the graph: a KerasTensor; a Python number (or a one-value array) as a
    float when allow_scalar; a weight or an array as an unbatched tensor."""
    from ..layers.op_layer import constant_tensor, weight_tensor

    if isinstance(x, KerasTensor):
        return x
    if isinstance(x, Variable):
        return weight_tensor(x)
    if allow_scalar and isinstance(x, (bool, int, float, np.integer, np.floating)):
        return float(x)
    a = np.asarray(x)
    if allow_scalar and a.ndim == 0:
        return float(a)
    return constant_tensor(a)


def record(op: str, inputs: list, iattr=(), fattr=(), name: str | None = None) -> KerasTensor:
    """Records core op `op` on symbolic `inputs` and returns its output tensor."""
    from ..layers.op_layer import OpLayer
    return OpLayer(op, iattr, fattr, name=unique_name(name or op))(inputs)


def as_float(t: KerasTensor) -> KerasTensor:
    """A symbolic int32 tensor cast to float32 (math ops take float32)."""
    return t if t.dtype == "float32" else record("cast", [t], (0,), name="cast")


def sample_shape(t: KerasTensor) -> tuple:
    """The node's own shape: per sample for a batched tensor, whole for an unbatched one."""
    return tuple(t.shape) if t._unbatched else tuple(t.shape[1:])


def node_axis(t: KerasTensor, axis: int) -> int:
    """A NumPy axis of the whole tensor as an axis of the node (refusing the batch axis)."""
    nd = len(t.shape)
    if not -nd <= axis < nd:
        raise ValueError(f"axis {axis} is out of bounds for a tensor of rank {nd}")
    axis %= nd
    if t._unbatched:
        return axis
    if axis == 0:
        raise ValueError("this op cannot run along the batch axis (axis 0) of a symbolic tensor")
    return axis - 1


# -- the primitives -------------------------------------------------------------------------------
def binary(name: str, a, b):
    """a (op) b with NumPy broadcasting: add, subtract, multiply, divide, maximum, minimum,
    power."""
    if not is_symbolic(a, b):
        return _core.binary(name, eager(a), eager(b))
    sa, sb = symbolic(a), symbolic(b)
    code = _core.op_code("binary", name)
    if isinstance(sa, float) and isinstance(sb, float):
        return float(_core.binary(name, sa, sb).item())
    if isinstance(sa, float):
        return record("binary", [as_float(sb)], (code, 1), (sa,), name=name)
    if isinstance(sb, float):
        return record("binary", [as_float(sa)], (code, 0), (sb,), name=name)
    return record("binary", [as_float(sa), as_float(sb)], (code,), name=name)


def unary(name: str, x):
    """f(x) elementwise, f one of the core's unary ops (negative, exp, log, sin, erf, ...)."""
    if not is_symbolic(x):
        return _core.unary(name, eager(x))
    return record("unary", [as_float(symbolic(x, False))], (_core.op_code("unary", name),),
                  name=name)


def reduce(name: str, x, axis=None, keepdims: bool = False):
    """sum, mean, max or min over `axis` (an int, a tuple, or None for all)."""
    if not is_symbolic(x):
        return _core.reduce(name, eager(x), axis, keepdims)
    t = as_float(symbolic(x, False))
    nd = len(t.shape)
    axes = range(nd) if axis is None else ((axis,) if isinstance(axis, int) else tuple(axis))
    mask = 0
    for a in axes:
        if not -nd <= a < nd:
            raise ValueError(f"{name}: axis {a} is out of bounds for a tensor of rank {nd}")
        mask |= 1 << (a % nd)
    # the core's mask counts the batch axis of a batched tensor as axis 0, as NumPy does
    return record("reduce", [t], (_core.op_code("reduce", name), mask, int(bool(keepdims))),
                  name=name)


def matmul(a, b):
    if not is_symbolic(a, b):
        return _core.matmul(eager(a), eager(b))
    return record("matmul", [as_float(symbolic(a, False)), as_float(symbolic(b, False))])


def softmax(x, axis: int = -1, log: bool = False):
    if not is_symbolic(x):
        return _core.softmax(eager(x), axis, log)
    t = as_float(symbolic(x, False))
    return record("softmax_axis", [t], (node_axis(t, axis), int(log)),
                  name="log_softmax" if log else "softmax")


def reshape(x, newshape):
    newshape = (newshape,) if isinstance(newshape, (int, np.integer)) else tuple(newshape)
    if not is_symbolic(x):
        from ..tensor import _resolve_shape
        x = tensor(x)
        return _core.reshape(x, _resolve_shape(tuple(int(d) for d in newshape), x.size))
    t = symbolic(x, False)
    own = sample_shape(t)
    if t._unbatched:
        target = newshape
    else:  # the batch axis stays: newshape[0] must be it (None or -1)
        if not newshape or newshape[0] not in (None, -1):
            raise ValueError(f"reshape: a symbolic tensor keeps its batch axis: the new shape "
                             f"must start with None or -1, got {newshape}")
        target = tuple(newshape[1:])
    size = int(np.prod(own, dtype=np.int64))
    target = tuple(-1 if d is None else int(d) for d in target)
    if target.count(-1) > 1:
        raise ValueError("reshape: only one dimension can be -1")
    if -1 in target:
        known = int(np.prod([d for d in target if d != -1], dtype=np.int64))
        if known == 0 or size % known:
            raise ValueError(f"reshape: cannot reshape {t.shape} into {newshape}")
        target = tuple(size // known if d == -1 else d for d in target)
    if target == own:
        return t
    if not target:  # to a scalar per sample: via a sum over a single value
        return reduce("sum", reshape(t, (None, 1) if not t._unbatched else (1,)), -1)
    return record("reshape", [as_float(t)], (len(target),) + target, name="reshape")


def transpose(x, axes=None):
    if not is_symbolic(x):
        x = tensor(x)
        nd = x.ndim
        axes = tuple(range(nd))[::-1] if axes is None else tuple(int(a) % nd for a in axes)
        return _core.transpose(x, axes)
    t = as_float(symbolic(x, False))
    nd = len(t.shape)
    axes = tuple(range(nd))[::-1] if axes is None else tuple(int(a) % nd for a in axes)
    if not t._unbatched:
        if axes[0] != 0:
            raise ValueError(f"transpose: the batch axis of a symbolic tensor stays first, got "
                             f"axes {axes}")
        axes = tuple(a - 1 for a in axes[1:])
    return record("transpose", [t], axes)


def getitem(x, key):
    """x[key] for ints, slices, None and one Ellipsis."""
    if not is_symbolic(x):
        return tensor(x)[key]
    t = as_float(symbolic(x, False))
    key = key if isinstance(key, tuple) else (key,)
    if any(k is None for k in key):  # new axes: index without them, then reshape
        plain = tuple(k for k in key if k is not None)
        out = getitem(t, plain) if plain else t
        shape, it = [], iter(out.shape)
        kept = [k for k in _expand(key, len(t.shape)) if not isinstance(k, (int, np.integer))]
        for k in kept:
            shape.append(1 if k is None else next(it))
        return reshape(out, tuple(-1 if s is None else s for s in shape))
    full = _expand(key, len(t.shape))
    batched = not t._unbatched
    if batched and full[0] != slice(None):
        raise ValueError("indexing a symbolic tensor takes the whole batch axis (x[:, ...])")
    own = full[1:] if batched else full
    shape = sample_shape(t)
    iattr, drop = [0], 0
    for i, (k, dim) in enumerate(zip(own, shape)):
        if isinstance(k, slice):
            start, stop, step = k.indices(dim)
            count = len(range(start, stop, step))
            if count == 0:
                raise ValueError(f"indexing: axis {i} of {t.shape} would be empty")
        elif isinstance(k, (int, np.integer)):
            if not -dim <= int(k) < dim:
                raise IndexError(f"index {int(k)} is out of bounds for an axis of size {dim}")
            start, step, count = int(k) % dim, 1, 1
            drop |= 1 << i
        else:
            raise TypeError(f"indexing a symbolic tensor takes ints, slices, None and '...', "
                            f"got {type(k).__name__}")
        iattr += [start, step, count]
    iattr[0] = drop
    if drop == 0 and all(isinstance(k, slice) and k == slice(None) for k in own):
        return t
    return record("strided_slice", [t], iattr, name="slice")


def _expand(key: tuple, nd: int) -> tuple:
    """key with its Ellipsis expanded and trailing full slices added (None counts no axis)."""
    n_real = sum(k is not Ellipsis and k is not None for k in key)
    if sum(k is Ellipsis for k in key) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if n_real > nd:
        raise IndexError(f"too many indices for a tensor of rank {nd}")
    if Ellipsis in key:
        i = key.index(Ellipsis)
        key = key[:i] + (slice(None),) * (nd - n_real) + key[i + 1:]
    return key + (slice(None),) * (nd - n_real - sum(k is Ellipsis for k in key))


def cast(x, dtype):
    """x as float32 or int32 (toward zero, as NumPy's astype)."""
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name in ("float16", "bfloat16", "float64", "float"):
        name = "float32"
    if name in ("int64", "int16", "int8", "uint8", "bool", "int"):
        name = "int32" if name != "bool" else "bool"
    if name not in ("float32", "int32", "bool"):
        raise ValueError(f"cast: pynn's tensors are float32 or int32, got {dtype}")
    if not is_symbolic(x):
        x = eager(x)
        if name == "float32":
            if isinstance(x, Tensor) and x.dtype == np.float32:
                return x
            return Tensor(np.asarray(x).astype(np.float32))
        a = np.asarray(x)
        return Tensor((a != 0).astype(np.int32) if name == "bool" else a.astype(np.int32))
    t = symbolic(x, False)
    if name == "bool":
        return binary("minimum", unary("abs", unary("sign", t)), 1.0)
    want = "float32" if name == "float32" else "int32"
    if t.dtype == want:
        return t
    return record("cast", [t], (0 if want == "float32" else 1,), name="cast")


def concatenate(xs, axis: int = 0):
    xs = list(xs)
    if not xs:
        raise ValueError("concatenate: needs at least one tensor")
    if not is_symbolic(*xs):
        ts = [tensor(x) for x in xs]
        if len(ts) == 1:
            return ts[0]
        nd = ts[0].ndim
        ax = axis % nd
        if ax == 0 or len(ts) > 4 or any(t.dtype != np.float32 for t in ts):
            # along the first axis (or many, or integers): NumPy, without gradient when none
            # is needed
            if not any(getattr(t, "requires_grad", False) for t in ts):
                return Tensor(np.concatenate([np.asarray(t) for t in ts], axis=ax))
            return _concat_by_slices(ts, ax)
        return _core.op("concatenate", ts, [], (ax - 1,), (), False, 0)
    ts = [as_float(symbolic(x, False)) for x in xs]
    if len(ts) == 1:
        return ts[0]
    if len(ts) > 4:
        return concatenate([concatenate(ts[:4], axis)] + ts[4:], axis)
    if any(t._unbatched for t in ts) and not all(t._unbatched for t in ts):
        raise ValueError("concatenate: joins tensors that all have a batch axis, or none")
    ax = node_axis(ts[0], axis)
    return record("concatenate", ts, (ax,), name="concatenate")


def _concat_by_slices(ts, axis):
    """Concatenation along `axis` as a sum of zero-padded pieces (so gradients flow)."""
    raise NotImplementedError("concatenate along the first axis of Tensors that need a "
                              "gradient is not supported; concatenate along another axis")


# -- selection, indexing and ordering (csrc/core/ops_select.c) ------------------------------------
# Each runs one core op: recorded on symbolic tensors, run now through _core.op on data (whole
# tensors, no batch axis), with the tape's gradient when an operand needs one.

def _f32(x):
    """An eager operand as float32 (an int32 Tensor or array converted; it has no gradient)."""
    x = eager(x)
    if isinstance(x, Tensor):
        return x if x.dtype == np.float32 else Tensor(np.asarray(x).astype(np.float32))
    return np.asarray(x, dtype=np.float32)


def _i32(x):
    """Eager indices as int32 (float values truncated toward zero, as a cast)."""
    x = eager(x)
    if isinstance(x, Tensor) and x.dtype == np.int32:
        return x
    a = np.asarray(x)
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise ValueError("indices must be finite numbers")
    if a.dtype.kind in "iu" and a.size and (a.min() < -2**31 or a.max() >= 2**31):
        raise ValueError("indices beyond int32")
    return np.ascontiguousarray(a.astype(np.int32))


def _sym_f32(x) -> KerasTensor:
    return as_float(symbolic(x, False))


def _sym_i32(x) -> KerasTensor:
    t = symbolic(x, False)
    return t if t.dtype == "int32" else record("cast", [t], (1,), name="cast")


def _run(op: str, inputs: list, iattr=(), fattr=()):
    return _core.op(op, inputs, [], tuple(iattr), tuple(fattr), False, 0)


def _whole_axis(axis: int, nd: int, what: str) -> int:
    if not -nd <= axis < nd:
        raise ValueError(f"{what}: axis {axis} is out of bounds for a tensor of rank {nd}")
    return axis % nd


def where(condition, x1, x2):
    """condition ? x1 : x2 elementwise, NumPy broadcasting; the condition is true where nonzero.
    The gradient flows to x1 where it is chosen and to x2 elsewhere."""
    if not is_symbolic(condition, x1, x2):
        return _run("where", [_f32(condition), _f32(x1), _f32(x2)])
    return record("where", [_sym_f32(condition), _sym_f32(x1), _sym_f32(x2)], name="where")


def gather(x, indices, axis: int, along: bool = False):
    """take (along=False: x.shape[:axis] + indices.shape + x.shape[axis+1:]) or
    take_along_axis (along=True) along a NumPy axis of the whole tensor, with int32 indices
    (negative ones count from the end; others out of range raise ValueError when run)."""
    name = "take_along_axis" if along else "take"
    if not is_symbolic(x, indices):
        xv, iv = _f32(x), _i32(indices)
        nd = np.ndim(xv) if not isinstance(xv, Tensor) else xv.ndim
        return _run("gather", [xv, iv], (int(along), _whole_axis(axis, nd, name)))
    tx, ti = _sym_f32(x), _sym_i32(indices)
    nd = len(tx.shape)
    ax = _whole_axis(axis, nd, name)
    batched = not (tx._unbatched and ti._unbatched)
    if along:
        if batched and ax == 0:
            raise ValueError(f"{name}: cannot run along the batch axis (axis 0) of a symbolic "
                             "tensor")
        return record("gather", [tx, ti], (1, ax - 1 if batched else ax), name=name)
    if not tx._unbatched:
        if ax == 0:
            raise ValueError(f"{name}: cannot take along the batch axis (axis 0) of a symbolic "
                             "tensor")
        ax -= 1
    return record("gather", [tx, ti], (0, ax), name=name)


def ctc_loss(target, output, target_length, output_length, mask_index: int):
    """Each sample's CTC loss (ops_ctc.c): output (batch, steps, classes) logits, target
    (batch, max_label_length) int32 labels, the lengths one int32 per sample."""
    if not is_symbolic(target, output, target_length, output_length):
        return _run("ctc_loss", [_f32(output), _i32(target), _i32(target_length),
                                 _i32(output_length)], (int(mask_index),))
    return record("ctc_loss", [_sym_f32(output), _sym_i32(target), _sym_i32(target_length),
                               _sym_i32(output_length)], (int(mask_index),), name="ctc_loss")


def cumulative(kind: str, x, axis: int):
    """cumsum or cumprod along a NumPy axis."""
    code = {"cumsum": 0, "cumprod": 1}[kind]
    if not is_symbolic(x):
        xv = _f32(x)
        nd = xv.ndim
        return _run("cumulative", [xv], (code, _whole_axis(axis, nd, kind)))
    t = _sym_f32(x)
    return record("cumulative", [t], (code, node_axis(t, axis)), name=kind)


def sort(x, axis: int = -1, indices: bool = False, descending: bool = False, k: int = 0):
    """The values (with a gradient through the permutation) or the int32 permutation of a stable
    sort along `axis` (NaN last ascending, first descending); k > 0 keeps the first k."""
    name = "top_k" if k else ("argsort" if indices else "sort")
    if not is_symbolic(x):
        xv = _f32(x)
        ax = _whole_axis(axis, xv.ndim, name)
        return _run("sort", [xv], (ax, int(indices), int(descending), int(k)))
    t = _sym_f32(x)
    return record("sort", [t], (node_axis(t, axis), int(indices), int(descending), int(k)),
                  name=name)


def arg_reduce(kind: str, x, axis: int, keepdims: bool = False):
    """int32 argmax or argmin along one axis (the first extreme; a NaN counts as one)."""
    code = {"argmax": 0, "argmin": 1}[kind]
    if not is_symbolic(x):
        xv = _f32(x)
        return _run("arg_reduce", [xv], (_whole_axis(axis, xv.ndim, kind), code,
                                         int(bool(keepdims))))
    t = _sym_f32(x)
    return record("arg_reduce", [t], (node_axis(t, axis), code, int(bool(keepdims))), name=kind)


_PAD_MODES = {"constant": 0, "reflect": 1, "symmetric": 2}


def pad(x, widths, mode: str = "constant", value: float = 0.0):
    """x padded by widths[i] = (before, after) on each axis of the whole tensor."""
    if mode not in _PAD_MODES:
        raise ValueError(f"pad: mode must be one of {sorted(_PAD_MODES)}, got {mode!r}")
    iattr = [_PAD_MODES[mode]]
    if not is_symbolic(x):
        xv = _f32(x)
        for b, a in widths:
            iattr += [int(b), int(a)]
        return _run("pad", [xv], iattr, (float(value),))
    t = _sym_f32(x)
    own = widths if t._unbatched else widths[1:]
    if not t._unbatched and tuple(widths[0]) != (0, 0):
        raise ValueError("pad: the batch axis (axis 0) of a symbolic tensor cannot be padded")
    for b, a in own:
        iattr += [int(b), int(a)]
    return record("pad", [t], iattr, (float(value),), name="pad")
