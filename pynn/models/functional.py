"""The functional API: `Model(inputs, outputs)` over a graph of layer calls.

A KerasTensor remembers the layer call that made it; the model walks back from its output to its
input, orders the calls so each comes after the calls it reads, and lowers them into one core
graph in that order. A layer called twice is one set of weights used by two calls; a tensor read
by two calls gets both gradients added (the core's plan accumulates them).
"""

from ..layers.base import Layer, unique_name
from ..layers.input_layer import InputLayer, KerasTensor
from .model import Model


class Functional(Model):
    """A model made from `pynn.Input` tensors and layer calls (built by `pynn.Model(inputs,
    outputs)`).

    Args:
        inputs: the model's Input tensor (a list or dict of one is accepted).
        outputs: the tensor the model computes from it (a list or dict of one is accepted).
        name: the model's name.

    Example:
        >>> x = pynn.Input(shape=(8,))
        >>> h = pynn.layers.Dense(16, activation="relu")(x)
        >>> model = pynn.Model(x, pynn.layers.Add()([h, pynn.layers.Dense(16)(x)]))
    """

    def __init__(self, inputs=None, outputs=None, name: str | None = None,
                 trainable: bool = True):
        super().__init__(name=name or unique_name("functional"), trainable=trainable)
        self._input = _single(inputs, "inputs")
        self._output = _single(outputs, "outputs")
        if self._input._layer is None or not isinstance(self._input._layer, InputLayer):
            raise ValueError("Model: `inputs` must be the tensor made by pynn.Input")
        self._calls = _calls_between(self._input, self._output)
        layers: list[Layer] = []
        for t in self._calls:
            if t._layer not in layers:
                layers.append(t._layer)
        self._graph_layers = layers
        self._input_dtype = self._input.dtype
        self._sample_shape = tuple(self._input.shape[1:])
        self._build_core(self._sample_shape)

    # -- the graph ------------------------------------------------------------------------------
    def _layers_in_order(self) -> list:
        return list(self._graph_layers)

    @property
    def layers(self) -> list:
        """The InputLayer, then every layer once, in the order the graph first calls them."""
        return [self._input._layer] + list(self._graph_layers)

    @property
    def inputs(self) -> list:
        return [self._input]

    @property
    def outputs(self) -> list:
        return [self._output]

    @property
    def input_shape(self) -> tuple:
        return self._input.shape

    def _call_symbolic(self, x):
        """Replays this model's layer calls on `x` (a nested model)."""
        tensors = {id(self._input): x}
        for t in self._calls:
            ins = [tensors[id(i)] for i in t._inputs]
            tensors[id(t)] = t._layer(ins if len(ins) > 1 or _takes_list(t._layer) else ins[0])
        return tensors[id(self._output)]

    def _build_layers(self, layers: list, sample_shape: tuple) -> None:
        pass  # every layer was built when it was first called on a tensor

    def _lower(self, core, node: int) -> int:
        nodes = {id(self._input): node}
        for t in self._calls:
            layer = t._layer
            ins = [nodes[id(i)] for i in t._inputs]
            try:
                nodes[id(t)] = layer.lower(core, ins if len(ins) > 1 or _takes_list(layer)
                                           else ins[0])
            except ValueError as e:
                raise ValueError(f"Layer '{layer.name}': {e}") from None
        return nodes[id(self._output)]

    def connections(self, layer) -> list[str]:
        """Keras's "Connected to" entries of a layer: the producers of its inputs, as
        'name[call][0]'."""
        out = []
        for t in self._calls:
            if t._layer is layer:
                for i in t._inputs:
                    out.append(f"{i._layer.name}[{self._call_index(i)}][0]")
        return out

    def _call_index(self, tensor) -> int:
        """Which call of its layer made `tensor` (0 for the first)."""
        same = [t for t in self._calls if t._layer is tensor._layer]
        return same.index(tensor) if tensor in same else 0


def _takes_list(layer) -> bool:
    from ..layers.merging import Merge
    return isinstance(layer, Merge)


def _single(value, what: str) -> KerasTensor:
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(f"Model: {len(value)} {what} given; this version supports models "
                             f"with one input and one output")
        value = value[0]
    if not isinstance(value, KerasTensor):
        raise TypeError(f"Model: {what} must be tensors made by pynn.Input and layer calls, got "
                        f"{type(value).__name__}")
    return value


def _calls_between(source: KerasTensor, target: KerasTensor) -> list:
    """The layer calls that lead from `source` to `target`, each after the calls it reads."""
    order, state = [], {}  # state: 1 visiting, 2 done

    def visit(t):
        if state.get(id(t)) == 2:
            return
        if t is source:
            state[id(t)] = 2
            return
        if not t._inputs:
            what = t._layer.name if t._layer is not None else "a tensor"
            raise ValueError(f"Model: the outputs depend on '{what}', which is not the model's "
                             "input: every path to the outputs must start at `inputs`")
        state[id(t)] = 1
        for i in t._inputs:
            visit(i)
        state[id(t)] = 2
        order.append(t)

    visit(target)
    if target is source:
        raise ValueError("Model: the outputs are the inputs; add at least one layer")
    return order
