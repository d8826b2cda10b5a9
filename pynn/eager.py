"""Layers called on data: the same lowering a model build uses, run op by op on Tensors.

A layer describes its computation once, as core ops (`Layer.lower(core, node)`). A model build
hands it a core model that records the ops into a graph; here it gets an _EagerGraph, whose
add_node runs each op at once on Tensors (`_core.op`, the same kernels), recording it on the tape.
"""

import numpy as np

from . import _core
from .tensor import Tensor
from .utils import random as pn_random


def as_tensor(x) -> Tensor:
    """x as a Tensor: itself, a float32 array without a copy, or a converted copy (integer data
    stays int32, for Embedding)."""
    if isinstance(x, Tensor):
        return x
    if callable(getattr(x, "_tensor", None)):  # a Variable: its leaf, which the tape tracks
        return x._tensor()
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"a layer's input must hold real numbers, got dtype {a.dtype}")
    if a.dtype == np.float32 and a.flags.c_contiguous:
        return _core.leaf(a, False)
    if a.dtype.kind in "iub":
        return Tensor(a)
    return _core.leaf(np.ascontiguousarray(a, dtype=np.float32), False)


_RANDOM_OPS = ("dropout", "attention", "simple_rnn", "lstm", "gru")  # ops that draw dropout masks


class _EagerGraph:
    """Stands in for a core model while a layer lowers itself: each node is a Tensor, computed
    when it is added."""

    def __init__(self, layer, training: bool):
        self._layer = layer
        self._training = training
        self._values: list[Tensor] = []

    def add(self, t: Tensor) -> int:
        self._values.append(t)
        return len(self._values) - 1

    def node_shape(self, node: int) -> tuple:
        return tuple(self._values[node].shape[1:])

    def node_dtype(self, node: int) -> str:
        return "int32" if self._values[node].dtype.kind in "iu" else "float32"

    def add_node(self, op: str, inputs, variables=(), iattr=(), fattr=()):
        if op == "transpose":  # a math op: its eager form is the Tensor call, batch axis first
            out = _core.transpose(self._values[inputs[0]], (0, *(a + 1 for a in iattr)))
            return self.add(out), tuple(out.shape[1:])
        if op in ("binary", "reduce", "cast"):  # math ops (masks): their keras.ops calls
            out = _math_op(op, [self._values[i] for i in inputs], iattr, fattr)
            return self.add(out), tuple(out.shape[1:])
        layer = self._layer
        weights = [getattr(layer, layer._weight_attrs[layer._var_ids.index(v)])._tensor()
                   for v in variables]
        seed = int(pn_random.generator().integers(2**63)) if op in _RANDOM_OPS else 0
        out = _core.op(op, [self._values[i] for i in inputs], weights, tuple(iattr),
                       tuple(fattr), self._training, seed, layer.compute_dtype == "bfloat16")
        return self.add(out), tuple(out.shape[1:])

    def add_constant(self, array) -> int:
        return self.add(Tensor(np.ascontiguousarray(array, np.float32)))

    def value(self, node: int) -> Tensor:
        return self._values[node]


def _op_name(kind: str, code: int, names) -> str:
    for name in names:
        if _core.op_code(kind, name) == code:
            return name
    raise ValueError(f"{kind}: no eager form of op code {code}")


def _math_op(op: str, values: list, iattr, fattr) -> Tensor:
    """A graph math node's attributes run as the keras.ops call they stand for (on Tensors
    with a batch axis; an axes mask counts the batch axis as bit 0)."""
    from . import ops
    if op == "cast":
        return ops.cast(values[0], "float32" if iattr[0] == 0 else "int32")
    if op == "reduce":
        name = _op_name("reduce", iattr[0], ("sum", "mean", "max", "min"))
        axes = tuple(a for a in range(values[0].ndim) if iattr[1] >> a & 1)
        return getattr(ops, name)(values[0], axis=axes, keepdims=bool(iattr[2]))
    name = _op_name("binary", iattr[0], ("add", "subtract", "multiply", "divide", "maximum",
                                          "minimum", "not_equal", "equal", "greater", "less"))
    fn = getattr(ops, name)
    if len(values) == 2:
        return fn(values[0], values[1])
    scalar = np.float32(fattr[0])
    return fn(scalar, values[0]) if iattr[1] == 1 else fn(values[0], scalar)


def mask_of(x):
    """Keras's mask carried by a layer's output on data (a float32 Tensor of 1 and 0), or
    None."""
    return getattr(x, "_keras_mask", None)


def set_mask(out, mask) -> None:
    """Attaches mask values (a Tensor, or a list parallel to a list of outputs) to outputs."""
    outs = out if isinstance(out, (list, tuple)) else [out]
    masks = mask if isinstance(mask, list) else [mask] + [None] * (len(outs) - 1)
    for o, m in zip(outs, masks):
        if m is not None and isinstance(o, Tensor):
            o._keras_mask = m


def run_layer(layer, inputs, training: bool):
    """Runs `layer` on data or Tensors (one, or a list for merge layers) and returns the output
    Tensor (a list of them for a layer with several outputs)."""
    many = isinstance(inputs, (list, tuple))
    xs = [as_tensor(x) for x in (inputs if many else [inputs])]
    if any(t.ndim < 1 for t in xs):
        raise ValueError(f"{type(layer).__name__} '{layer.name}': inputs need a batch axis")
    shapes = [(None,) + tuple(t.shape[1:]) for t in xs]
    if not layer.built:
        layer.build(shapes if many else shapes[0])
    if len(layer._var_ids) != len(layer._weight_attrs):  # weights of its own, in no model
        layer._var_ids = list(range(len(layer._weight_attrs)))
    from .layers.masking import lower_layer
    graph = _EagerGraph(layer, training)
    nodes = [graph.add(t) for t in xs]
    masks = [None if mask_of(x) is None else graph.add(as_tensor(mask_of(x)))
             for x in (inputs if many else [inputs])]
    try:
        out, mask = lower_layer(graph, layer, nodes if many else nodes[0],
                                masks if many else masks[0])
    except ValueError as e:
        raise ValueError(f"Layer '{layer.name}': {e}") from None
    values = [graph.value(o) for o in out] if isinstance(out, (list, tuple)) else graph.value(out)
    if mask is not None:
        set_mask(values, [None if m is None else graph.value(m) for m in mask]
                 if isinstance(mask, list) else graph.value(mask))
    return values


def run_layer_call(layer, tensors: list, spec: dict, training: bool):
    """Runs a layer that takes named tensors (`spec['names']`, in that order) on data and returns
    the output Tensor (a tuple of them for a call with several outputs)."""
    xs = [as_tensor(x) for x in tensors]
    if any(t.ndim < 1 for t in xs):
        raise ValueError(f"{type(layer).__name__} '{layer.name}': inputs need a batch axis")
    if len({t.shape[0] for t in xs}) > 1:
        raise ValueError(f"{type(layer).__name__} '{layer.name}': every input needs the same "
                         f"batch size, got " + ", ".join(f"{n} {tuple(t.shape)}"
                                                         for n, t in zip(spec["names"], xs)))
    names = spec["names"]
    shapes = {n: (None,) + tuple(t.shape[1:]) for n, t in zip(names, xs)}
    dtypes = {n: "int32" if t.dtype.kind in "iub" else "float32" for n, t in zip(names, xs)}
    layer.compute_call_output_shape(shapes, dtypes, spec["options"])
    if not layer.built:
        layer.build_call(shapes)
    if len(layer._var_ids) != len(layer._weight_attrs):  # weights of its own, in no model
        layer._var_ids = list(range(len(layer._weight_attrs)))
    graph = _EagerGraph(layer, training)
    nodes = [graph.add(t) for t in xs]
    masks = [None if mask_of(x) is None else graph.add(as_tensor(mask_of(x))) for x in tensors]
    try:
        from .layers.base import _takes_arg
        if any(m is not None for m in masks) and _takes_arg(type(layer).lower_call, "masks"):
            out = layer.lower_call(graph, nodes, spec, masks=masks)
            mask = layer._lower_spec_mask(graph, nodes, out, masks, spec)
        else:
            out, mask = layer.lower_call(graph, nodes, spec), None
    except ValueError as e:
        raise ValueError(f"Layer '{layer.name}': {e}") from None
    if isinstance(out, (list, tuple)):  # several outputs (attention scores): a tuple, as Keras
        values = tuple(graph.value(o) for o in out)
        masks_out = mask if isinstance(mask, list) else [mask]
        set_mask(values, [None if m is None else graph.value(m) for m in masks_out])
        return values
    value = graph.value(out)
    if mask is not None:
        set_mask(value, graph.value(mask))
    return value
