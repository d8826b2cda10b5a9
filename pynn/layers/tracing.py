"""Tracing a layer's Python `call()` into core ops.

A layer written the Keras way (a `call()` of pynn.ops and other layers) runs in the core like a
built-in layer: when it is first called on symbolic tensors of a given shape, its `call` runs
once on placeholder KerasTensors, and every op and layer call it makes is recorded. That record,
a Trace, is the layer's subgraph: the model lowers it into its core graph (`replay`), so `fit`
runs the user's code as core nodes. Called on data instead, `call` simply runs, each op on the
tape.

Python cannot branch on a symbolic value (`if ops.sum(x) > 0:`): that raises an error naming
the layer. Nothing a call does is skipped.
"""

import threading

_state = threading.local()


def _stack() -> list:
    if not hasattr(_state, "stack"):
        _state.stack = []
    return _state.stack


def where() -> str:
    """' in call() of layer X' while a trace runs, for messages; '' otherwise."""
    stack = _stack()
    if not stack:
        return ""
    layer = stack[-1][0]
    return f" (in call() of {type(layer).__name__} '{layer.name}')"


def current_reads():
    """The weight reads of the innermost running trace ({(layer id, attr): tensor}), so a weight
    read twice in one call is one node; None outside a trace."""
    stack = _stack()
    return stack[-1][1] if stack else None


def tracing() -> bool:
    return bool(_stack())


def quiet():
    """A context in which symbolic calls are not kept as the layers' calls (layer.input and
    layer.output): pynn's own calls on placeholders, made to trace a shape."""
    return _Quiet()


class _Quiet:
    def __enter__(self):
        _state.quiet = getattr(_state, "quiet", 0) + 1

    def __exit__(self, *exc):
        _state.quiet -= 1


def is_quiet() -> bool:
    return bool(getattr(_state, "quiet", 0))


def note_loss(loss) -> None:
    """Keeps a symbolic loss a traced call added (add_loss) with the trace being run."""
    _stack()[-1][2].append(loss)


def collect_losses():
    """A context in which lowering a model's graph gathers the nodes of the losses its traced
    calls added (add_loss): `with collect_losses() as nodes: ...`."""
    return _LossNodes()


class _LossNodes:
    def __enter__(self) -> list:
        if not hasattr(_state, "loss_nodes"):
            _state.loss_nodes = []
        self.nodes: list = []
        _state.loss_nodes.append(self.nodes)
        return self.nodes

    def __exit__(self, *exc):
        _state.loss_nodes.pop()


def keep_loss_nodes(nodes: list) -> None:
    """Hands the nodes of added losses to the innermost collect_losses (none: they are
    dropped, as for a layer lowered outside a model, whose call adds no loss to anything)."""
    stack = getattr(_state, "loss_nodes", None)
    if stack:
        stack[-1].extend(nodes)


def current_training():
    """The `training` of the innermost call on data running on this thread (None outside one):
    what a layer called inside it without `training=` inherits, as in Keras."""
    stack = getattr(_state, "training", None)
    return stack[-1] if stack else None


def training_scope(training):
    """A context in which calls on data without `training=` inherit `training`."""
    return _TrainingScope(training)


class _TrainingScope:
    def __init__(self, training):
        self.training = training

    def __enter__(self):
        if not hasattr(_state, "training"):
            _state.training = []
        _state.training.append(self.training)

    def __exit__(self, *exc):
        _state.training.pop()


def in_eager_call() -> bool:
    """Whether a layer's call() runs on data on this thread (its ops go on the tape)."""
    return getattr(_state, "eager_depth", 0) > 0


def eager_call(layer):
    """A context for a call on data: the outermost one clears the losses its layers added in
    their previous call (Keras's `layer.losses` holds those of the last call only)."""
    return _EagerCall(layer)


def _layers_below(top) -> list:
    """top and every layer it holds, at any depth (a model's layers included), each once."""
    out, seen, todo = [], set(), [top]
    while todo:
        layer = todo.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        out.append(layer)
        todo.extend(layer._sublayers() if hasattr(layer, "_sublayers") else [])
        if hasattr(layer, "_all_layers"):
            todo.extend(layer._all_layers())
    return out


class _EagerCall:
    def __init__(self, layer):
        self.layer = layer

    def __enter__(self):
        depth = getattr(_state, "eager_depth", 0)
        if depth == 0:
            for layer in _layers_below(self.layer):
                if vars(layer).get("_eager_losses"):
                    layer._eager_losses = []
        _state.eager_depth = depth + 1

    def __exit__(self, *exc):
        _state.eager_depth -= 1


class Trace:
    """One traced call: its placeholder inputs, the calls it made (in order, each after those
    it reads) and its outputs (flat), with the structure `call` returned them in."""

    def __init__(self, inputs: list, calls: list, outputs: list, structure, losses=()):
        self.inputs = inputs
        self.calls = calls
        self.outputs = outputs
        self.structure = structure  # 'single', ('list', n), ('tuple', n) or ('dict', keys)
        self.losses = list(losses)  # scalars the call added with add_loss

    def layers(self) -> list:
        """The layers its calls use, each once, in call order."""
        seen, out = set(), []
        for t in self.calls:
            if id(t._layer) not in seen:
                seen.add(id(t._layer))
                out.append(t._layer)
        return out


def run_trace(layer, args: tuple, kwargs: dict, tensors: list) -> Trace:
    """Runs `layer.call(*args, **kwargs)` with each KerasTensor of `tensors` (in the order they
    occur in args and kwargs) replaced by a placeholder of its shape; returns the Trace."""
    from ..models.functional import calls_between
    from .input_layer import KerasTensor

    placeholders = []
    for t in tensors:
        p = KerasTensor(t.shape, t.dtype, t.name, None, ())
        p._unbatched = t._unbatched
        placeholders.append(p)
    swap = {id(t): p for t, p in zip(tensors, placeholders)}
    args2 = replace_tensors(args, swap)
    kwargs2 = replace_tensors(kwargs, swap)
    added: list = []
    _stack().append((layer, {}, added))
    try:
        out = layer.call(*args2, **kwargs2)
    finally:
        _stack().pop()
    structure, flat = flatten_outputs(out, layer)
    ids = {id(p) for p in placeholders}
    from .op_layer import OpLayer
    outputs = []
    for o in flat:
        if not isinstance(o, KerasTensor):
            from .op_layer import constant_tensor
            o = constant_tensor(o)
        if id(o) in ids or o._unbatched:  # an input passed through, or a value of weights
            if o._unbatched:
                raise ValueError(f"{type(layer).__name__} '{layer.name}': call() returned a "
                                 "value computed from weights and constants only, without a "
                                 "batch axis; a layer's outputs are per sample")
            o = OpLayer("cast", (0,), name=f"{layer.name}_identity")([o])
        outputs.append(o)
    calls = calls_between(placeholders, outputs + added, None)
    return Trace(placeholders, calls, outputs, structure, added)


def signature(trace: Trace) -> list:
    """What a trace computes, as comparable values: each call's layer (an op with its
    attributes, constants and weight, or the layer itself), where its inputs come from, and
    which values it returns. Two traces of one call() with equal signatures are one graph."""
    where = {id(p): ("input", k) for k, p in enumerate(trace.inputs)}
    out = []
    for k, t in enumerate(trace.calls):
        layer = t._layer
        if hasattr(layer, "op") and hasattr(layer, "iattr"):  # an OpLayer
            weight = layer._weight and (id(layer._weight[0]()), layer._weight[1])
            what = (layer.op, layer.iattr, layer.fattr, weight,
                    tuple(c.tobytes() for c in layer._constants))
        else:
            what = id(layer)
        spec = t._call_spec
        if spec is not None:
            spec = (id(spec.get("trace")), id((spec.get("train") or {}).get("trace")),
                    repr(spec.get("args")), repr(spec.get("kwargs")), repr(spec.get("names")),
                    repr(spec.get("options")))
        out.append((what, spec, tuple(where.get(id(i)) for i in t._inputs)))
        for j, sib in enumerate(t._siblings or [t]):
            where[id(sib)] = ("call", k, j)
    out.append(tuple(where.get(id(o)) for o in trace.outputs + trace.losses))
    return out


class Slot:
    """Where the k-th tensor of a call's arguments stood (a call spec keeps its arguments with
    the tensors taken out, to replay or save the call)."""

    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index

    def __repr__(self):
        return f"<tensor {self.index}>"


def run_model_call(model, inputs) -> tuple:
    """A subclassed model's call() on symbolic `inputs`, recorded like a layer's (its layers'
    calls and ops join the graph being built); returns (outputs, the losses it added)."""
    added: list = []
    _stack().append((model, {}, added))
    try:
        out = model.call(inputs)
    finally:
        _stack().pop()
    if _stack():  # called inside another traced call: its losses are that call's
        _stack()[-1][2].extend(added)
    return out, added


def replace_tensors(value, swap: dict):
    """value (args, kwargs, nested lists, tuples and dicts) with tensors swapped by id."""
    if id(value) in swap:
        return swap[id(value)]
    if isinstance(value, list):
        return [replace_tensors(v, swap) for v in value]
    if isinstance(value, tuple):
        return tuple(replace_tensors(v, swap) for v in value)
    if isinstance(value, dict):
        return {k: replace_tensors(v, swap) for k, v in value.items()}
    return value


def find_tensors(value, kind) -> list:
    """The objects of type `kind` in value (nested lists, tuples, dicts), in order."""
    out: list = []

    def walk(v):
        if isinstance(v, kind):
            out.append(v)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)

    walk(value)
    return out


def flatten_outputs(out, layer) -> tuple:
    if isinstance(out, dict):
        keys = list(out)
        return ("dict", keys), [out[k] for k in keys]
    if isinstance(out, (list, tuple)):
        return ("tuple" if isinstance(out, tuple) else "list", len(out)), list(out)
    return "single", [out]


def pack_outputs(structure, values: list):
    if structure == "single":
        return values[0]
    kind, arg = structure
    if kind == "dict":
        return dict(zip(arg, values))
    return tuple(values) if kind == "tuple" else list(values)


def replay(core, trace: Trace, in_nodes: list) -> list:
    """Lowers a trace into `core` with its inputs at `in_nodes`; returns its output nodes (the
    nodes of the losses it added go to collect_losses)."""
    from ..models.functional import lower_calls

    nodes = {id(p): n for p, n in zip(trace.inputs, in_nodes)}
    lower_calls(core, trace.calls, nodes, trace.outputs + trace.losses)
    keep_loss_nodes([nodes[id(t)] for t in trace.losses])
    return [nodes[id(o)] for o in trace.outputs]
