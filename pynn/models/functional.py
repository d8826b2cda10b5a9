"""The functional API: `Model(inputs, outputs)` over a graph of layer calls.

A KerasTensor remembers the layer call that made it; the model walks back from its output to its
input, orders the calls so each comes after the calls it reads, and lowers them into one core
graph in that order. A layer called twice is one set of weights used by two calls; a tensor read
by two calls gets both gradients added (the core's plan accumulates them).
"""

import inspect

from ..layers.base import Layer, lowering, snake_case, unique_name
from ..layers.input_layer import InputLayer, KerasTensor
from . import host
from .data import match
from .model import Model


class Functional(Model):
    """A model made from `pynn.Input` tensors and layer calls (built by `pynn.Model(inputs,
    outputs)`).

    Args:
        inputs: the model's Input tensor, or a list or dict of them (a dict's keys name the
            inputs, and data for them may come as a dict with the same keys).
        outputs: the tensor the model computes, or a list or dict of them (a dict's keys name
            the outputs; otherwise each output is named after the layer that makes it).
        name: the model's name.

    Example:
        >>> a, b = pynn.Input(shape=(8,), name="a"), pynn.Input(shape=(4,), name="b")
        >>> h = pynn.layers.Concatenate()([a, b])
        >>> model = pynn.Model([a, b], {"score": pynn.layers.Dense(1)(h),
        ...                             "label": pynn.layers.Dense(3, activation="softmax")(h)})
    """

    def __init__(self, inputs=None, outputs=None, name: str | None = None,
                 trainable: bool = True, **kwargs):
        user = getattr(type(self), "_user_class", None)  # a subclass of Model joined with this
        default = snake_case(user.__name__) if user is not None else "functional"
        super().__init__(name=name or unique_name(default), trainable=trainable, **kwargs)
        self._init_graph(inputs, outputs)

    def _init_graph(self, inputs, outputs) -> None:
        """Takes the graph from `inputs` to `outputs` as the model's, and builds its core."""
        in_struct, ins, in_keys = _flatten(inputs, "inputs")
        out_struct, outs, out_keys = _flatten(outputs, "outputs")
        for t in ins:
            if t._layer is None or not isinstance(t._layer, InputLayer):
                raise ValueError("Model: `inputs` must be tensors made by pynn.Input")
        if len({id(t) for t in ins}) != len(ins):
            raise ValueError("Model: the same Input appears twice in `inputs`")
        if len(ins) > 16 or len(outs) > 16:
            raise ValueError(f"Model: at most 16 inputs and 16 outputs, got {len(ins)} and "
                             f"{len(outs)}")
        self._inputs, self._outputs = ins, outs
        self._input_struct = in_struct
        self._output_struct = out_struct
        self._n_inputs = len(ins)
        self._input_names = in_keys or [t._layer.name for t in ins]
        self._output_names = out_keys or [t._layer.name for t in outs]
        if len(set(self._input_names)) != len(self._input_names):
            raise ValueError(f"Model: input names repeat: {self._input_names}; give each "
                             "pynn.Input its own name")
        if len(outs) > 1 and len(set(self._output_names)) != len(self._output_names):
            # one layer's tensor twice, or two calls of one layer: Keras numbers them
            seen: dict = {}
            for i, nm in enumerate(self._output_names):
                seen[nm] = seen.get(nm, 0) + 1
                if seen[nm] > 1:
                    self._output_names[i] = f"{nm}_{seen[nm] - 1}"
        # the calls to the outputs, and to the losses a subclass's call() added (add_loss)
        self._calls = calls_between(ins, outs + vars(self).get("_added_losses", []),
                                    self._input_names)
        layers: list[Layer] = []
        listed = set()  # ids of the layers in `layers`: a lookup, not a scan of the list
        for t in self._calls:
            if id(t._layer) not in listed:
                listed.add(id(t._layer))
                layers.append(t._layer)
        self._graph_layers = layers
        # layers that run on the host (TextVectorization ...) after the inputs: the core starts
        # from what they make (host.py)
        self._host = host.split(ins, self._calls)
        self._core_sources = self._host.sources if self._host is not None else ins
        self._input_dtypes = [t.dtype for t in self._core_sources]
        self._input_dtype = self._core_sources[0].dtype
        if self._n_inputs > 1 or len(outs) > 1 or self._host is not None:
            self._fast_dtype = None  # predict's one-array fast path does not apply
        self._sample_shape = tuple(self._core_sources[0].shape[1:])
        self._build_core(self._sample_shape)

    # -- the graph ------------------------------------------------------------------------------
    def _layers_in_order(self) -> list:
        return list(self._graph_layers)

    @property
    def layers(self) -> list:
        """The InputLayers, then every layer once, in the order the graph first calls them."""
        return [t._layer for t in self._inputs] + list(self._graph_layers)

    @property
    def inputs(self) -> list:
        return list(self._inputs)

    @property
    def input(self):
        """The model's inputs as it was given them: a tensor, a list, or a dict by name."""
        return self._as_given(self._inputs, self._input_names, self._input_struct)

    @property
    def output(self):
        """The model's outputs as it was given them: a tensor, a list, or a dict by name."""
        return self._as_given(self._outputs, self._output_names, self._output_struct)

    @staticmethod
    def _as_given(tensors: list, names: list, struct: str):
        if struct == "single":
            return tensors[0]
        return dict(zip(names, tensors)) if struct == "dict" else list(tensors)

    @property
    def outputs(self) -> list:
        return list(self._outputs)

    @property
    def input_shape(self):
        """(None, ...) of the input; a list of them for several inputs."""
        shapes = [t.shape for t in self._inputs]
        return shapes[0] if self._input_struct == "single" else shapes

    def _call_symbolic(self, x, training=None):
        """Replays this model's layer calls on `x` (a nested model): tensors for its inputs (one,
        a list in order, or a dict by input name); returns its outputs, structured like them.
        On data (Tensors), with `training`, it runs the model in Python call by call."""
        if self._n_inputs == 1:
            if isinstance(x, dict):
                x = list(x.values())
            if isinstance(x, (list, tuple)):
                if len(x) != 1:
                    raise ValueError(f"Model '{self.name}' has 1 input, but was called on "
                                     f"{len(x)} tensors")
                x = x[0]
            given = [x]
        else:
            given = match(self, x, self._input_names, "the tensors it was called on", "input")
        tensors = {id(t): g for t, g in zip(self._inputs, given)}
        extra = {} if training is None else {"training": training}
        for t in self._calls:
            ins = [tensors[id(i)] for i in t._inputs]
            if t._call_spec is not None:
                _store(tensors, t, t._layer.replay_call(ins, t._call_spec, **extra))
                continue
            out = t._layer(ins if len(ins) != 1 or _takes_list(t._layer) else ins[0], **extra)
            _store(tensors, t, out)
        return self._pack_outputs([tensors[id(o)] for o in self._outputs])

    def _build_layers(self, layers: list, sample_shape: tuple) -> None:
        pass  # every layer was built when it was first called on a tensor

    def _input_sample_shapes(self, sample_shape: tuple) -> list[tuple]:
        if vars(self).get("_dyn_shapes") is None and vars(self).get("_concrete"):
            return list(self._concrete)  # a concrete build of a dynamic model
        return [tuple(t.shape[1:]) for t in self._core_sources]

    def _template_output_shapes(self, layers: list, sample_shape: tuple) -> list[tuple]:
        return [tuple(o.shape[1:]) for o in self._outputs]

    def _lower_model(self, core, sample_shape: tuple) -> list[int]:
        shapes = self._input_sample_shapes(sample_shape)
        nodes = {id(t): core.add_input(shape, t.dtype)
                 for t, shape in zip(self._core_sources, shapes)}
        added = vars(self).get("_added_losses", [])
        masks: dict = {}
        calls = self._calls if self._host is None else [
            t for t in self._calls if not host.is_host(t._layer)]
        lower_calls(core, calls, nodes, self._outputs + added, masks)
        from ..layers import tracing
        tracing.keep_loss_nodes([nodes[id(t)] for t in added])
        self._lowered_masks = [masks.get(id(o)) for o in self._outputs]
        return [nodes[id(o)] for o in self._outputs]

    def _ensure_built(self, x) -> None:
        if vars(self).get("_dyn_shapes"):
            self._use_shapes([x.shape[1:]])
        self._assert_built("its inputs")

    def connections(self, layer) -> list[str]:
        """Keras's "Connected to" entries of a layer: the producers of its inputs, as
        'name[call][0]'."""
        return self._connections().get(id(layer), [])

    def _connections(self) -> dict:
        """{id(layer): its connections()} of every called layer, in one pass over the calls."""
        numbers, out = self._call_numbers(), {}
        for t in self._calls:
            links = out.setdefault(id(t._layer), [])
            for i in t._inputs:
                links.append(f"{i._layer.name}[{self._call_index(i, numbers)}][{i._index}]")
        return out

    def get_config(self) -> dict:
        """Its layers with their calls ('inbound_nodes'), inputs and outputs, as Keras's."""
        from .. import saving
        return saving.functional_config(self)

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        from .. import saving
        return saving.functional_from_config(cls, config, custom_objects)

    def _call_index(self, tensor, numbers: dict | None = None) -> int:
        """Which call of its layer made `tensor` (0 for the first, or for an Input); `numbers`
        is `_call_numbers()`, which a loop over many tensors makes once."""
        if numbers is None:
            numbers = self._call_numbers()
        return numbers.get(id(tensor._call), 0)

    def _call_numbers(self) -> dict:
        """{id(call): which call of its layer it is} of this model's calls. Made afresh by
        each use, not kept on the model, so a copy of the model never reads another's ids."""
        counts, numbers = {}, {}
        for t in self._calls:
            numbers[id(t)] = counts.get(id(t._layer), 0)
            counts[id(t._layer)] = numbers[id(t)] + 1
        return numbers


def lower_calls(core, calls: list, nodes: dict, keep: list | None = None,
                masks: dict | None = None) -> None:
    """Adds the ops of each layer call in `calls` (in order) to `core`; `nodes` maps the id of
    each tensor already lowered to its node, and receives the calls' outputs. With `keep` (the
    tensors read after these calls), a Dense written with pynn.ops becomes one dense node.
    `masks` maps the id of a tensor to the node of its mask (masking.py), and receives the
    masks of the calls' outputs."""
    from ..layers.masking import lower_layer
    from ..layers.op_layer import dense_fusions, lower_dense

    masks = {} if masks is None else masks

    fused, folded = dense_fusions(calls, keep) if keep is not None else ({}, set())
    for t in calls:
        if id(t) in folded:
            continue
        layer = t._layer
        if id(t) in fused:  # its kernel and bias reads are folded: only x is lowered
            kernel, bias, out = fused[id(t)]
            with lowering(core, layer):
                nodes[id(out)] = lower_dense(core, nodes[id(t._inputs[0])], kernel, bias)
            continue
        ins = [nodes[id(i)] for i in t._inputs]
        in_masks = [masks.get(id(i)) for i in t._inputs]
        try:
            with lowering(core, layer):
                if t._call_spec is not None:
                    out, out_mask = _lower_spec_call(core, layer, ins, in_masks, t._call_spec)
                else:
                    one = len(ins) == 1 and not _takes_list(layer)
                    out, out_mask = lower_layer(core, layer, ins[0] if one else ins,
                                                in_masks[0] if one else in_masks)
            _store(nodes, t, out)
            if out_mask is not None:
                if t._siblings and not isinstance(out_mask, list):  # the first output's
                    out_mask = [out_mask] + [None] * (len(t._siblings) - 1)
                _store(masks, t, out_mask)
        except ValueError as e:
            raise ValueError(f"Layer '{layer.name}': {e}") from None


def _lower_spec_call(core, layer, ins: list, in_masks: list, spec: dict) -> tuple:
    """(outputs, output mask) of a call recorded with its arguments (a traced call(), or a
    layer taking named tensors such as MultiHeadAttention): such a layer takes the masks of
    its tensors when its lower_call accepts `masks`; a traced call() cannot receive one."""
    from ..layers.base import _takes_arg
    if all(m is None for m in in_masks):
        return layer.lower_call(core, ins, spec), None
    if _takes_arg(type(layer).lower_call, "masks"):
        out = layer.lower_call(core, ins, spec, masks=in_masks)
        return out, layer._lower_spec_mask(core, ins, out, in_masks, spec)
    if "trace" in spec and "mask" in inspect.signature(type(layer).call).parameters:
        out = layer._lower_call_masked(core, ins, in_masks, spec)
    else:
        out = layer.lower_call(core, ins, spec)
    outs = out if isinstance(out, list) else [out]
    # the first tensor's mask goes on (supports_masking) or is dropped, as Keras
    if _takes_list(layer):  # a merge written with ops: all its inputs' masks
        mask = layer._lower_mask(core, ins, outs[0], in_masks)
    else:
        mask = layer._lower_mask(core, ins[0], outs[0], in_masks[0])
    return out, mask


def _store(table: dict, t, out) -> None:
    """Records what the call `t` made (one value, or a list for a layer with several outputs)
    under each of its output tensors."""
    if t._siblings:
        made = len(out) if isinstance(out, (list, tuple)) else 1
        if made != len(t._siblings):
            raise ValueError(f"Layer '{t._layer.name}' made {made} outputs, expected "
                             f"{len(t._siblings)}")
        for sib, o in zip(t._siblings, out):
            table[id(sib)] = o
    else:
        table[id(t)] = out


def _takes_list(layer) -> bool:
    from ..layers.merging import Merge
    from ..layers.op_layer import OpLayer
    return isinstance(layer, (Merge, OpLayer))


def _flatten(value, what: str) -> tuple[str, list, list | None]:
    """(structure, tensors in order, dict keys or None) of Model's `inputs` or `outputs`: one
    tensor ('single'), a list or tuple ('list'; one of one is 'single', as Keras unpacks it), or
    a dict ('dict', in key order as Keras flattens it). Outputs in a dict of one stay a dict, as
    Keras 3's predict and call return them; inputs in a dict of one are one input, which a call
    takes bare or in its dict."""
    keys = None
    if isinstance(value, dict):
        keys = sorted(value)
        tensors = [value[k] for k in keys]
        struct = "dict" if len(tensors) > 1 or what == "outputs" else "single"
    elif isinstance(value, (list, tuple)):
        tensors = list(value)
        struct = "list" if len(tensors) > 1 else "single"
    else:
        tensors, struct = [value], "single"
    if not tensors:
        raise ValueError(f"Model: `{what}` is empty")
    for t in tensors:
        if not isinstance(t, KerasTensor):
            raise TypeError(f"Model: {what} must be tensors made by pynn.Input and layer calls, "
                            f"got {type(t).__name__}")
    return struct, tensors, keys


def calls_between(sources: list, targets: list, source_names: list | None) -> list:
    """The layer calls that lead from `sources` to `targets`, each after the calls it reads.
    With `source_names`, every source must be used (a model's inputs); calls of sources (a
    weight, a constant) start paths of their own."""
    order, state = [], {}  # state: 1 visiting, 2 done
    is_source = {id(t) for t in sources}
    used = set()

    def visit(target):
        # depth first with a stack of (call, its inputs still to visit), not recursion: a chain
        # of thousands of layers is deeper than Python's recursion limit
        stack = [(target, None)]
        while stack:
            t, pending = stack[-1]
            if pending is None:  # entering t
                if id(t) not in is_source:
                    t = t._call  # the first output of a call with several stands for the call
                if state.get(id(t)) == 2:
                    stack.pop()
                    continue
                if id(t) in is_source:
                    used.add(id(t))
                    state[id(t)] = 2
                    stack.pop()
                    continue
                if not t._inputs and getattr(t._layer, "_is_source", False):
                    state[id(t)] = 2
                    order.append(t)
                    stack.pop()
                    continue
                if not t._inputs:
                    what = t._layer.name if t._layer is not None else "a tensor"
                    raise ValueError(f"Model: the outputs depend on '{what}', which is not the "
                                     "model's input: every path to the outputs must start at "
                                     "`inputs`")
                state[id(t)] = 1
                pending = iter(t._inputs)
                stack[-1] = (t, pending)
            i = next(pending, None)
            if i is not None:
                stack.append((i, None))
                continue
            state[id(t)] = 2
            order.append(t)
            stack.pop()

    for target in targets:
        if id(target) in is_source:
            raise ValueError(f"Model: the output '{target._layer.name}' is one of the inputs; "
                             "add at least one layer")
        visit(target)
    for t, name in zip(sources, source_names or []):
        if id(t) not in used:
            raise ValueError(f"Model: input '{name}' is not used: no output depends on it")
    return order
