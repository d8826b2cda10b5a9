"""OpLayer: one core math op applied to symbolic tensors.

What `pynn.ops` records when one of its operands is a KerasTensor (Keras 3 records an
Operation): a layer call whose `lower` adds one node of the core's math ops (ops_math.c). Its
output shape comes from the core itself (`_core.infer`), so shapes are checked once, by the code
that runs them.

Three kinds of operand reach the graph besides tensors: a Python number (an attribute of the
node), a weight of a layer (a `variable` node over the layer's core variable) and an array
constant (a `constant` node: the graph holds a copy of the array).
"""

import weakref

import numpy as np

from .. import _core
from .base import Layer, unique_name
from .input_layer import KerasTensor


class OpLayer(Layer):
    """A core op (`op`, with integer and float attributes) on symbolic tensors.

    Args:
        op: the core op's name ("binary", "matmul", "reduce", ...).
        iattr, fattr: its attributes.
        name: the layer's name (the keras.ops function's, made unique).
        constant: for op "constant": the array it holds.
        weight: for op "variable": (layer, attribute) of the weight it reads.
    """

    _precision_of_caller = True  # computes in the dtype of the layer whose call made it

    def __init__(self, op: str, iattr=(), fattr=(), name: str | None = None, constant=None,
                 weight=None):
        super().__init__(name=name or unique_name(op))
        self.op = op
        self.iattr = tuple(int(a) for a in iattr)
        self.fattr = tuple(float(a) for a in fattr)
        self._constants = [] if constant is None else [np.ascontiguousarray(constant, np.float32)]
        self._weight = None
        if weight is not None:
            self._weight = (weakref.ref(weight[0]), weight[1])
        self.built = True

    @property
    def _is_source(self) -> bool:
        """Whether the op reads no tensor (a weight, a constant, an arange)."""
        return self.op in ("constant", "variable", "arange") or (
            self.op == "random" and not self._takes_batch)

    _takes_batch = False

    def _lower_mask(self, core, inputs, output, mask):
        return None  # a keras.ops result carries no mask (and Keras gives no warning)

    def _check_runnable(self) -> None:
        pass

    def _core_op(self) -> str:
        return "variable" if self.op == "constant" else self.op

    def _var_shapes(self) -> list:
        if self.op == "constant":
            return [self._constants[0].shape]
        if self.op == "variable":
            layer, attr = self._weight[0](), self._weight[1]
            return [getattr(layer, attr).shape]
        return []

    def __call__(self, inputs, training=None):
        """Records the op on `inputs` (a list of KerasTensors, empty for a source)."""
        inputs = list(inputs)
        if any(not isinstance(t, KerasTensor) for t in inputs):
            raise NotImplementedError(
                f"'{self.name}', a keras.ops call on the model's tensors, cannot run in Python "
                "on data (the model is run call by call because a layer adds losses with "
                "add_loss): move the op into a layer's call() or a layers.Lambda")
        descs = [(tuple(t.shape) if t._unbatched else tuple(t.shape[1:]), t.dtype,
                  t._unbatched) for t in inputs]
        try:
            shape, dtype, unbatched = _core.infer(self._core_op(), descs, self._var_shapes(),
                                                  self.iattr, self.fattr)
        except ValueError as e:
            from .tracing import where
            raise ValueError(f"{self.name}{where()}: {e}") from None
        full = tuple(shape) if unbatched else (None,) + tuple(shape)
        t = KerasTensor(full, dtype, self.name, self, inputs)
        t._unbatched = bool(unbatched)
        return self._record_call(inputs, t)

    def lower(self, core, nodes) -> int:
        nodes = list(nodes) if isinstance(nodes, (list, tuple)) else [nodes]
        if self.op == "constant":
            return core.add_constant(self._constants[0])
        variables = ()
        if self.op == "variable":
            layer, attr = self._weight[0](), self._weight[1]
            variables = (layer._var_ids[layer._weight_attrs.index(attr)],)
        node, _ = core.add_node(self._core_op(), tuple(nodes), variables, self.iattr,
                                self.fattr)
        return node

    def get_config(self) -> dict:
        config = {"name": self.name, "op": self.op, "iattr": list(self.iattr),
                  "fattr": list(self.fattr)}
        if self._constants:
            config["constant"] = self._constants[0].tolist()
        if self._weight is not None:
            raise NotImplementedError(
                f"{self.name}: a weight read by pynn.ops outside a layer cannot be saved in a "
                "model's config; read weights inside a Layer's call()")
        return config

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        constant = config.pop("constant", None)
        if constant is not None:
            constant = np.asarray(constant, np.float32)
        return cls(config.pop("op"), config.pop("iattr", ()), config.pop("fattr", ()),
                   name=config.pop("name", None), constant=constant)

    def compute_output_shape(self, input_shape):
        raise NotImplementedError(f"{self.name}: an op layer's shape comes from its call")


def constant_tensor(value) -> KerasTensor:
    """An array as a symbolic, unbatched tensor (float32 values in a hidden core variable, or an
    int32 arange when it is one)."""
    a = np.asarray(value)
    if a.dtype.kind in "iub" and a.ndim == 1 and a.size >= 1:
        step = int(a[1] - a[0]) if a.size > 1 else 1
        if np.array_equal(a, a[0] + step * np.arange(a.size)) and \
                abs(int(a[0])) < 2**31 and abs(int(a[-1])) < 2**31:
            return OpLayer("arange", (int(a[0]), step, a.size), name=unique_name("arange"))([])
    if a.dtype.kind not in "biuf":
        raise TypeError(f"a constant must hold numbers, got dtype {a.dtype}")
    if a.ndim > 8:
        raise ValueError(f"a constant of rank {a.ndim}: at most 8 axes")
    t = OpLayer("constant", constant=a.astype(np.float32), name=unique_name("constant"))([])
    if a.dtype.kind in "iub":
        return OpLayer("cast", (1,), name=unique_name("cast"))([t])
    return t


def weight_tensor(var) -> KerasTensor:
    """A layer's weight (a Variable made by add_weight) as a symbolic, unbatched tensor."""
    owner = getattr(var, "_owner", None)
    layer = owner() if owner is not None else None
    if layer is None:
        raise TypeError(f"Variable '{var.path}' belongs to no layer: only weights made with a "
                        "layer's add_weight() can be used in a traced call()")
    from .tracing import current_reads
    reads = current_reads()
    key = (id(layer), var._attr)
    if reads is not None and key in reads:
        return reads[key]
    t = OpLayer("variable", weight=(layer, var._attr),
                name=unique_name(f"{layer.name}_{var._attr}".replace("/", "_")))([])
    if reads is not None:
        reads[key] = t
    return t


def dense_fusions(calls: list, keep: list) -> tuple[dict, set]:
    """Where a traced call() computes a Dense layer with pynn.ops (`matmul(x, w) + b`, w and b a
    layer's weights), the calls that lower as one core dense node instead of a weight read, a
    matmul, a bias read and a broadcasting add: the same values and gradients, at Dense's speed.

    Returns ({id of the matmul's output tensor: (kernel read, bias read or None, output tensor)},
    ids of the calls folded into it). `keep`: tensors read outside `calls` (outputs, losses)."""
    uses: dict = {}
    for t in calls:
        for i in t._inputs:
            uses[id(i)] = uses.get(id(i), 0) + 1
    for t in keep:
        uses[id(t)] = uses.get(id(t), 0) + 2  # never folded away
    readers: dict = {}
    for t in calls:
        for i in t._inputs:
            readers.setdefault(id(i), []).append(t)
    add = _core.op_code("binary", "add")

    def weight_read(t, ndim):
        layer = t._layer
        if not (isinstance(layer, OpLayer) and layer.op == "variable") or uses.get(id(t)) != 1:
            return False
        owner, attr = layer._weight[0](), layer._weight[1]
        return owner is not None and getattr(owner, attr).ndim == ndim

    fused, folded = {}, set()
    for t in calls:
        layer = t._layer
        if not (isinstance(layer, OpLayer) and layer.op == "matmul" and len(t._inputs) == 2):
            continue
        x, w = t._inputs
        if x._unbatched or x.dtype != "float32" or not weight_read(w, 2):
            continue
        bias, out = None, t
        after = readers.get(id(t), [])
        if uses.get(id(t)) == 1 and len(after) == 1:
            nxt = after[0]
            lay = nxt._layer
            if isinstance(lay, OpLayer) and lay.op == "binary" and lay.iattr[:1] == (add,) \
                    and len(lay.iattr) == 1 and len(nxt._inputs) == 2:
                other = nxt._inputs[1] if nxt._inputs[0] is t else nxt._inputs[0]
                if weight_read(other, 1) and tuple(other.shape) == (t.shape[-1],):
                    bias, out = other, nxt
                    folded.update((id(other), id(nxt)))
        fused[id(t)] = (w, bias, out)
        folded.add(id(w))
    return fused, folded


def lower_dense(core, x_node: int, kernel_read, bias_read) -> int:
    """The core dense node for a fused matmul (+ bias) of `dense_fusions`."""
    def vid(read):
        owner, attr = read._layer._weight[0](), read._layer._weight[1]
        return owner._var_ids[owner._weight_attrs.index(attr)]
    variables = (vid(kernel_read),) + ((vid(bias_read),) if bias_read is not None else ())
    node, _ = core.add_node("dense", (x_node,), variables)
    return node
