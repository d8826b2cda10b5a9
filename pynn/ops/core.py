"""keras.ops core functions: conversion, shape, cast, gradients stopped, indexing."""

import builtins

import numpy as np

from ..layers.input_layer import KerasTensor
from ..tensor import Tensor
from . import _base
from ._base import cast, is_symbolic  # noqa: F401  (re-exported)


def convert_to_tensor(x, dtype=None, sparse=None):
    """x as a Tensor (a copy of arrays; a Tensor of the same dtype is returned as it is); a
    symbolic tensor stays symbolic."""
    if isinstance(x, KerasTensor):
        return x if dtype is None else cast(x, dtype)
    if isinstance(x, Tensor) and dtype is None:
        return x
    x = _base.eager(x)
    if isinstance(x, Tensor) and dtype is not None:
        return cast(x, dtype)
    a = np.asarray(x, dtype=dtype)
    if a.dtype.kind in "iub" and dtype is None:
        a = a.astype(np.int32)
    elif a.dtype.kind == "f":
        a = a.astype(np.float32)
    return Tensor(a)


def convert_to_numpy(x) -> np.ndarray:
    """A NumPy copy of x's values."""
    if isinstance(x, KerasTensor):
        x.__array__()
    return np.array(_base.eager(x))


def stop_gradient(x):
    """x's values, cut from the tape (no gradient flows through them); in a graph, a copy whose
    gradient is not passed on."""
    if is_symbolic(x):
        t = _base.as_float(_base.symbolic(x, False))
        return _base.record("cast", [t], (0, 1), name="stop_gradient")
    return Tensor(np.asarray(_base.eager(x)))


def shape(x) -> tuple:
    """x's shape as a tuple: None for the batch axis of a symbolic tensor."""
    if isinstance(x, KerasTensor):
        from .. import random as _random  # the batch size of noise drawn with this shape
        _random._note_shape_source(x)
        return tuple(x.shape)
    return tuple(np.shape(_base.eager(x)))


def dtype(x) -> str:
    return x.dtype if isinstance(x, KerasTensor) else np.asarray(_base.eager(x)).dtype.name


def is_tensor(x) -> bool:
    return isinstance(x, (Tensor, KerasTensor))


def _getitem(x, key):
    return _base.getitem(x, key)


# -- control flow: Keras's eager semantics; on symbolic tensors, unrolled -------------------------
def _concrete(value, fn: str, what: str):
    """A Python value for a decision that control flow makes now."""
    if is_symbolic(value):
        raise NotImplementedError(
            f"{fn}: {what} depends on a symbolic tensor; pynn unrolls control flow while it "
            "builds a model, so it must be a Python value or data (a static trip count or a "
            "condition on Python numbers)")
    return value


def cond(pred, true_fn, false_fn):
    """true_fn() if pred else false_fn()."""
    pred = _concrete(pred, "cond", "the predicate")
    return true_fn() if bool(np.asarray(_base.eager(pred))) else false_fn()


def switch(index, branches, *operands):
    """branches[index](*operands), index clipped to the branches."""
    index = _concrete(index, "switch", "the branch index")
    i = int(np.clip(int(np.asarray(_base.eager(index))), 0, len(branches) - 1))
    return branches[i](*operands)


def fori_loop(lower, upper, body_fun, init_val):
    """val = body_fun(i, val) for i in range(lower, upper)."""
    lo = int(np.asarray(_base.eager(_concrete(lower, "fori_loop", "the lower bound"))))
    hi = int(np.asarray(_base.eager(_concrete(upper, "fori_loop", "the upper bound"))))
    val = init_val
    for i in range(lo, hi):
        val = body_fun(i, val)
    return val


def while_loop(cond, body, loop_vars, maximum_iterations=None):  # noqa: A002
    """loop_vars = body(*loop_vars) while cond(*loop_vars) (at most maximum_iterations)."""
    is_tuple = isinstance(loop_vars, (tuple, list))
    loop_vars = tuple(loop_vars) if is_tuple else (loop_vars,)
    n = 0
    while maximum_iterations is None or n < maximum_iterations:
        go = _concrete(cond(*loop_vars), "while_loop", "the condition")
        if not bool(np.asarray(_base.eager(go))):
            break
        loop_vars = body(*loop_vars)
        if not isinstance(loop_vars, (list, tuple)):
            loop_vars = (loop_vars,)
        loop_vars = tuple(loop_vars)
        n += 1
    return loop_vars if is_tuple else loop_vars[0]


def _flatten(tree):
    if isinstance(tree, (list, tuple)):
        out = []
        for t in tree:
            out.extend(_flatten(t))
        return out
    if isinstance(tree, dict):
        out = []
        for k in sorted(tree):
            out.extend(_flatten(tree[k]))
        return out
    return [tree]


def _pack(tree, flat: list):
    """flat's values in tree's structure (consumed from the front)."""
    if isinstance(tree, (list, tuple)):
        return type(tree)(_pack(t, flat) for t in tree)
    if isinstance(tree, dict):
        return {k: _pack(tree[k], flat) for k in sorted(tree)}
    return flat.pop(0)


def _rows(x, fn: str) -> list:
    """The slices of x along its first axis."""
    from . import numpy as N
    x = N._v(x)
    if N._batched(x):
        raise NotImplementedError(f"{fn}: cannot loop over the batch axis of a symbolic "
                                  "tensor; pynn unrolls loops with a static trip count")
    return N.unstack(x, axis=0)


def _stack_rows(ys: list, fn: str):
    from . import numpy as N
    if any(N._batched(y) for y in ys):
        raise NotImplementedError(f"{fn}: the results are per-sample symbolic tensors, which "
                                  "pynn cannot stack along a new first axis")
    return N.stack(ys, 0)


def scan(f, init, xs=None, length=None, reverse: bool = False, unroll=1):
    """carry, y = f(carry, x) over the slices x of xs (or `length` times with x None); returns
    (the last carry, the ys stacked)."""
    if not callable(f):
        raise TypeError(f"scan: f must be callable, got {f!r}")
    if xs is None and length is None:
        raise ValueError("scan: got no xs to scan over and no length")
    flat_xs = [] if xs is None else [_rows(x, "scan") for x in _flatten(xs)]
    n = int(length) if length is not None else len(flat_xs[0])
    carry, ys = init, []
    order = range(n - 1, -1, -1) if reverse else range(n)
    for i in order:
        x = None if xs is None else _pack(xs, [rows[i] for rows in flat_xs])
        carry, y = f(carry, x)
        ys.append(y)
    if reverse:
        ys = ys[::-1]
    if not ys or ys[0] is None:
        return carry, None
    flat_ys = [_flatten(y) for y in ys]
    stacked = [_stack_rows([fy[j] for fy in flat_ys], "scan") for j in range(len(flat_ys[0]))]
    return carry, _pack(ys[0], stacked)


def map(f, xs):  # noqa: A001  (Keras's name)
    """f applied to each slice of xs along its first axis, the results stacked."""
    return scan(lambda _, x: ((), f(x)), (), xs)[1]


def vectorized_map(function, elements):
    """function over the slices of elements along their first axis, results stacked."""
    if isinstance(elements, (list, tuple)):
        rows = [_rows(e, "vectorized_map") for e in elements]
        outs = [function([r[i] for r in rows]) for i in range(len(rows[0]))]
    else:
        outs = [function(r) for r in _rows(elements, "vectorized_map")]
    flat = [_flatten(o) for o in outs]
    stacked = [_stack_rows([fo[j] for fo in flat], "vectorized_map")
               for j in range(len(flat[0]))]
    return _pack(outs[0], stacked)


def associative_scan(f, elems, reverse: bool = False, axis: int = 0):
    """The running reduction by an associative f along axis: out[i] = f(out[i - 1],
    elems[i]), computed in order."""
    from . import numpy as N
    flat = _flatten(elems)
    nd = N._ndim(flat[0])
    ax = N._axis(axis, nd, "associative_scan")
    n = N._shape(flat[0])[ax]
    if n is None:
        raise NotImplementedError("associative_scan: cannot scan the batch axis of a symbolic "
                                  "tensor")
    cols = [[N._take_axis(e, ax, builtins.slice(i, i + 1), nd) for i in range(n)] for e in flat]
    order = list(range(n))[::-1] if reverse else list(range(n))
    acc = None
    outs = [None] * n
    for i in order:
        cur = _pack(elems, [c[i] for c in cols])
        acc = cur if acc is None else f(acc, cur)
        outs[i] = acc
    flat_outs = [_flatten(o) for o in outs]
    joined = [N._cat([fo[j] for fo in flat_outs], ax) for j in range(len(flat))]
    return _pack(elems, joined)


# -- slices ---------------------------------------------------------------------------------------
def slice(inputs, start_indices, shape):  # noqa: A001  (Keras's name)
    """inputs[start:start + shape] on every axis (a shape entry of -1 or None: to the end)."""
    from . import numpy as N
    x = N._v(inputs)
    xs = N._shape(x)
    starts = [int(np.asarray(_base.eager(_concrete(s, "slice", "a start index"))))
              for s in start_indices]
    if len(starts) != len(xs) or len(shape) != len(xs):
        raise ValueError(f"slice: start_indices and shape need {len(xs)} entries")
    key = []
    for s, n, d in zip(starts, shape, xs):
        if d is None:  # the batch axis of a symbolic tensor: whole
            if s != 0 or n not in (None, -1):
                raise ValueError("slice: a symbolic tensor's batch axis is taken whole")
            key.append(builtins.slice(None))
            continue
        n = d - s if n in (None, -1) else int(n)
        s = max(0, min(s, d - n))  # as XLA's dynamic_slice: the window kept inside
        key.append(builtins.slice(s, s + n))
    return N._index(x, tuple(key))


def slice_update(inputs, start_indices, updates):
    """inputs with the block at start_indices replaced by updates."""
    from . import numpy as N
    from .nn import _zero_pad
    x, u = N._v(inputs), N._v(updates)
    xs, us = N._shape(x), N._shape(u)
    starts = [int(np.asarray(_base.eager(_concrete(s, "slice_update", "a start index"))))
              for s in start_indices]
    if len(starts) != len(xs) or len(us) != len(xs):
        raise ValueError(f"slice_update: start_indices and updates need rank {len(xs)}")
    mask = np.ones(tuple(1 if d is None else d for d in xs), np.float32)
    block = []
    for i, (s, n, d) in enumerate(zip(starts, us, xs)):
        if d is None:
            block.append(builtins.slice(None))
            continue
        s = max(0, min(s, d - n))
        starts[i] = s
        block.append(builtins.slice(s, s + n))
    mask[tuple(block)] = 0.0
    padded = u
    for i, (s, n, d) in enumerate(zip(starts, us, xs)):
        if d is not None:
            padded = _zero_pad(padded, i, s, d - s - n)
    return N.add(N.multiply(x, mask), padded)


def saturate_cast(x, dtype):
    """x clipped to dtype's range, then cast (to float32 or int32, pynn's dtypes)."""
    from . import numpy as N
    x = N._v(x)
    name = N._dtype(dtype)
    if name == "float32":
        return cast(x, "float32")
    info = np.iinfo(np.dtype("int32" if dtype in ("bool", bool) else dtype))
    lo, hi = max(int(info.min), -2**31), min(int(info.max), 2**31 - 1)
    if is_symbolic(x):  # the bounds as float32 holds them, inside int32's range
        return cast(N.clip(x, float(np.float32(lo)), float(np.nextafter(np.float32(hi), 0))),
                    dtype)
    a = np.asarray(_base.eager(x)).astype(np.float64)
    return Tensor(np.clip(np.trunc(a), lo, hi).astype(np.int32))


def unstack(x, num=None, axis: int = 0):
    from .numpy import unstack as _unstack
    return _unstack(x, num, axis)


def get_item(x, key):
    """x[key]: ints, slices, None and '...' (a symbolic tensor's batch axis taken whole)."""
    from .numpy import _index
    return _index(x, key)
