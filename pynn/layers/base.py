"""The Layer base class and Variable, a NumPy array that knows its name.

A layer describes itself: its configuration, its weights (shape, initializer, trainable,
regularizer) and how it lowers to core ops. It computes nothing. Until a model builds it, a
layer's weights are NumPy arrays of its own; once the model's core exists they become views onto
the core's flat parameter buffer, so the layer, the model and the optimizer all see one copy.
"""

import contextlib
import functools
import inspect
import re
import warnings
import weakref

import numpy as np

from .. import _core, constraints, initializers, mixed_precision, regularizers

_NAME_COUNTS: dict[str, int] = {}
_weight_budget = None  # set by pynn.saving while a saved model is rebuilt: caps new weights


def unique_name(base: str) -> str:
    """'dense', then 'dense_1', 'dense_2', ... as Keras names layers and models."""
    n = _NAME_COUNTS.get(base, 0)
    _NAME_COUNTS[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def snake_case(name: str) -> str:
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


_FLOAT32 = mixed_precision.DTypePolicy("float32")


@contextlib.contextmanager
def lowering(core, layer):
    """While `layer` adds its nodes to `core`: they run their matrix products in the layer's
    compute dtype (the core's bf16 setting, restored after). A layer that stands for ops of an
    enclosing call (an OpLayer: `ops.matmul` in a custom layer's call) keeps the enclosing
    layer's, as Keras computes them in that layer's dtype; so does a core without the setting
    (a layer called on data)."""
    set_bf16 = getattr(core, "set_bf16", None)
    if set_bf16 is None or getattr(layer, "_precision_of_caller", False):
        yield
        return
    was = set_bf16(layer.compute_dtype == "bfloat16")
    try:
        yield
    finally:
        set_bf16(was)


class InputSpec:
    """What a layer accepts, Keras's InputSpec: set `self.input_spec` (one, or a list for a layer
    of several inputs) and each call checks its inputs against it, raising ValueError.

    Args:
        dtype: the input's dtype. shape: its shape (None for any size of an axis).
        ndim, max_ndim, min_ndim: its rank (batch axis included).
        axes: {axis: size} that must match.
        allow_last_axis_squeeze, name, optional: as Keras (optional: the input may be None).

    Example:
        >>> spec = pynn.layers.InputSpec(ndim=3, axes={-1: 8})
        >>> spec.ndim, spec.axes
        (3, {-1: 8})
    """

    def __init__(self, dtype=None, shape=None, ndim=None, max_ndim=None, min_ndim=None,
                 axes=None, allow_last_axis_squeeze: bool = False, name=None,
                 optional: bool = False):
        self.dtype = None if dtype is None else str(np.dtype(dtype))
        self.shape = None if shape is None else tuple(shape)
        self.ndim = len(self.shape) if self.shape is not None else ndim
        self.max_ndim, self.min_ndim = max_ndim, min_ndim
        self.axes = dict(axes or {})
        self.allow_last_axis_squeeze, self.name = allow_last_axis_squeeze, name
        self.optional = optional

    def __repr__(self):
        parts = [f"{k}={v}" for k, v in (("dtype", self.dtype), ("shape", self.shape),
                                          ("ndim", self.ndim), ("max_ndim", self.max_ndim),
                                          ("min_ndim", self.min_ndim), ("axes", self.axes))
                 if v]
        return f"InputSpec({', '.join(parts)})"

    def get_config(self) -> dict:
        return {"dtype": self.dtype, "shape": self.shape, "ndim": self.ndim,
                "max_ndim": self.max_ndim, "min_ndim": self.min_ndim, "axes": self.axes}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


def check_input_spec(layer, inputs) -> None:
    """Raises ValueError when `inputs` do not fit `layer.input_spec`, as Keras does."""
    specs = layer.input_spec
    specs = list(specs) if isinstance(specs, (list, tuple)) else [specs]
    values = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    if len(specs) > 1 and len(values) != len(specs):
        raise ValueError(f"Layer '{layer.name}' expects {len(specs)} inputs, got {len(values)}")
    for k, (spec, x) in enumerate(zip(specs, values)):
        if spec is None or (x is None and spec.optional):
            continue
        shape = tuple(getattr(x, "shape", np.shape(x)))
        rank = len(shape)
        what = f"Input {k} of layer '{layer.name}' is incompatible with the layer"
        if spec.ndim is not None and rank != spec.ndim and not (
                spec.allow_last_axis_squeeze and rank - 1 == spec.ndim and shape[-1] == 1):
            raise ValueError(f"{what}: expected ndim={spec.ndim}, found ndim={rank}; full "
                             f"shape received: {shape}")
        if spec.max_ndim is not None and rank > spec.max_ndim:
            raise ValueError(f"{what}: expected max_ndim={spec.max_ndim}, found ndim={rank}")
        if spec.min_ndim is not None and rank < spec.min_ndim:
            raise ValueError(f"{what}: expected min_ndim={spec.min_ndim}, found ndim={rank}")
        for axis, size in spec.axes.items():
            if not -rank <= axis < rank:
                raise ValueError(f"{what}: expected axis {axis} of size {size}, found shape "
                                 f"{shape}")
            if size is not None and shape[axis] not in (size, None):
                raise ValueError(f"{what}: expected axis {axis} of input shape to have value "
                                 f"{size}, but received input with shape {shape}")
        if spec.shape is not None:
            for want, got in zip(spec.shape, shape):
                if want is not None and got is not None and want != got:
                    raise ValueError(f"{what}: expected shape={spec.shape}, found shape="
                                     f"{shape}")


class Variable(np.ndarray):
    """A float32 NumPy array with Keras's Variable attributes: name, path, trainable.

    Arithmetic on it gives plain arrays, except where a gradient or a graph needs it to be the
    weight itself: in a layer's call() being traced (a graph node reading the weight), under a
    GradientTape or in a layer's call() on data (a Tensor on the tape), or with a Tensor or a
    symbolic tensor as the other operand. `assign` writes in place (shape checked), so a Variable
    that views the core's parameters updates the model.
    """

    def __new__(cls, value, name: str = "variable", path: str | None = None,
                trainable: bool = True):
        a = np.asarray(value, dtype=np.float32)
        # contiguous (copy() keeps the shape, 0-d too): the core reads a variable as one block
        obj = (a if a.flags.c_contiguous else a.copy()).view(cls)
        obj._name, obj._path, obj._trainable = name, path or name, trainable
        return obj

    def __array_finalize__(self, obj):
        self._name = getattr(obj, "_name", "variable")
        self._path = getattr(obj, "_path", self._name)
        self._trainable = getattr(obj, "_trainable", True)

    def __array_wrap__(self, arr, context=None, return_scalar=False):
        arr = arr.view(np.ndarray)
        return arr[()] if return_scalar else arr

    def _op(self, name: str, other, reflected: bool):
        """self (op) other through pynn.ops when the result must stay tied to the weight."""
        from ..tensor import Tensor, _taping
        from . import tracing
        from .input_layer import KerasTensor
        if (tracing.tracing() or _taping() or tracing.in_eager_call()
                or isinstance(other, (Tensor, KerasTensor))):
            from .. import ops
            me = self
            if tracing.tracing():  # a read of the weight in the graph being traced
                from ..ops import _base
                me = _base.symbolic(self, allow_scalar=False)
            a, b = (other, me) if reflected else (me, other)
            return getattr(ops, name)(a, b)
        return NotImplemented

    def __add__(self, o):
        r = self._op("add", o, False)
        return np.ndarray.__add__(self, o) if r is NotImplemented else r

    def __radd__(self, o):
        r = self._op("add", o, True)
        return np.ndarray.__radd__(self, o) if r is NotImplemented else r

    def __sub__(self, o):
        r = self._op("subtract", o, False)
        return np.ndarray.__sub__(self, o) if r is NotImplemented else r

    def __rsub__(self, o):
        r = self._op("subtract", o, True)
        return np.ndarray.__rsub__(self, o) if r is NotImplemented else r

    def __mul__(self, o):
        r = self._op("multiply", o, False)
        return np.ndarray.__mul__(self, o) if r is NotImplemented else r

    def __rmul__(self, o):
        r = self._op("multiply", o, True)
        return np.ndarray.__rmul__(self, o) if r is NotImplemented else r

    def __truediv__(self, o):
        r = self._op("divide", o, False)
        return np.ndarray.__truediv__(self, o) if r is NotImplemented else r

    def __rtruediv__(self, o):
        r = self._op("divide", o, True)
        return np.ndarray.__rtruediv__(self, o) if r is NotImplemented else r

    def __pow__(self, o):
        r = self._op("power", o, False)
        return np.ndarray.__pow__(self, o) if r is NotImplemented else r

    def __matmul__(self, o):
        r = self._op("matmul", o, False)
        return np.ndarray.__matmul__(self, o) if r is NotImplemented else r

    def __rmatmul__(self, o):
        r = self._op("matmul", o, True)
        return np.ndarray.__rmatmul__(self, o) if r is NotImplemented else r

    def __neg__(self):
        r = self._op("multiply", -1.0, False)
        return np.ndarray.__neg__(self) if r is NotImplemented else r

    def __reduce__(self):
        """pickle: a standalone Variable (in no model) with the same values, name, path and
        trainable flag; the pickle holds them as plain data (see pynn.saving). copy.copy and
        copy.deepcopy, NumPy's, give the same."""
        from .. import saving
        return saving._unpickle_variable, (self.numpy().astype("<f4").tobytes(), self.shape,
                                           self.name, self.path, self.trainable)

    @property
    def name(self) -> str:
        return self._name

    @property
    def path(self) -> str:
        return self._path

    @property
    def trainable(self) -> bool:
        return self._trainable

    @property
    def value(self) -> np.ndarray:
        return self.view(np.ndarray)

    def numpy(self) -> np.ndarray:
        """A copy of the values (taken under the model's lock once a model holds them)."""
        return read_values([self])[0]

    @property
    def constraint(self):
        """The constraint add_weight was given (None without one), as Keras's
        Variable.constraint: applied after each optimizer update."""
        owner = getattr(self, "_owner", None)
        layer = owner() if owner is not None else None
        return vars(layer).get("_weight_constraints", {}).get(getattr(self, "_attr", None)) \
            if layer is not None else None

    def assign(self, value) -> None:
        """Writes `value` into the variable in place (under the model's lock once a model holds
        it, so that a predict on another thread sees the old value or the new one, never a mix)."""
        self._check_assign("assign", value)
        assign_values([(self, value)])

    def assign_add(self, delta) -> None:
        """Adds `delta` to the variable in place (on data: a layer's state such as a running
        total; inside a traced call() it raises, as the graph cannot write a variable)."""
        self._check_assign("assign_add", delta)
        assign_values([(self, self.numpy() + np.asarray(delta, np.float32))])

    def assign_sub(self, delta) -> None:
        self._check_assign("assign_sub", delta)
        assign_values([(self, self.numpy() - np.asarray(delta, np.float32))])

    def _check_assign(self, what: str, value) -> None:
        from .input_layer import KerasTensor
        from .tracing import where
        if isinstance(value, KerasTensor):
            raise NotImplementedError(f"Variable '{self.path}'.{what}() of a symbolic value"
                                      f"{where()}: a model's graph cannot write variables; "
                                      "compute state updates on data (in train_step)")

    # -- the imperative path --------------------------------------------------------------------
    def _owner_core(self):
        """The core model whose parameter buffer holds this variable, or None."""
        return getattr(self, "_core_owner", None)

    def _tensor(self):
        """This variable as a leaf Tensor over the same memory, whose gradient backward fills:
        in the model's gradient buffer once a model holds the variable, else its own."""
        t = getattr(self, "_leaf", None)
        if t is None:
            from .. import _core
            core = self._owner_core()
            if core is not None:
                t = core.variable_value(self._vid)
            else:
                t = _core.leaf(self.view(np.ndarray), self.trainable)
            self._leaf = t
        return t

    @property
    def grad(self):
        """The gradient that backward accumulated for this variable (an array), or None."""
        t = getattr(self, "_leaf", None)
        if self._owner_core() is not None:
            return self._owner_core().gradient(self._vid) if self.trainable else None
        return None if t is None else t.grad

    def __repr__(self):
        return (f"<Variable path={self.path}, shape={self.shape}, dtype=float32, "
                f"value={np.array2string(self.view(np.ndarray), threshold=6)}>")


def _records_build(build):
    """Wraps a layer class's `build` so that the layer keeps the arguments it was built with
    (`_build_args`, Keras's build config), from which a pickled layer is built again."""
    @functools.wraps(build)
    def wrapper(self, *args, **kwargs):
        build(self, *args, **kwargs)
        self._build_args = (args, kwargs)  # after the call: a subclass's build outlasts super()'s
        self.built = True  # as Keras marks a layer built, whether build() said so or not
    return wrapper


class Layer:
    """Base class of all layers.

    Subclasses set their config in `__init__`, declare weights in `build(input_shape)` with
    `add_weight`, give `compute_output_shape`, `get_config`, and `lower(core, node)`: the core
    ops that compute the layer, returning the output node.

    Args:
        trainable: whether the layer's weights are updated by training.
        name: the layer's name; Keras's snake-case class name made unique when None.
        input_shape: the per-sample input shape, for the first layer of a Sequential model.
    """

    def __init__(self, trainable: bool = True, name: str | None = None, dtype=None, **kwargs):
        input_shape = kwargs.pop("input_shape", None)
        input_dim = kwargs.pop("input_dim", None)
        batch_input_shape = kwargs.pop("batch_input_shape", None)
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected arguments {sorted(kwargs)}")
        self._dtype_policy = mixed_precision.get(dtype)
        if input_shape is None and input_dim is not None:
            input_shape = (int(input_dim),)
        if input_shape is None and batch_input_shape is not None:
            input_shape = tuple(batch_input_shape)[1:]
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: name must be a string")
        self._input_shape_arg = tuple(input_shape) if input_shape is not None else None
        self.name = name or unique_name(snake_case(type(self).__name__))
        self.trainable = bool(trainable)
        self.built = False
        self._weight_attrs: list[str] = []
        self._weight_regs: list = []
        self._var_ids: list[int] = []
        self._bound_to = None  # weakref to the model whose core holds the weights
        self._build_args = None  # (args, kwargs) of the last build, once built

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "build" in vars(cls):
            cls.build = _records_build(cls.build)

    # -- weights --------------------------------------------------------------------------------
    def add_weight(self, shape=(), initializer="glorot_uniform", dtype=None,
                   trainable: bool = True, regularizer=None, constraint=None,
                   name: str | None = None, **kwargs) -> Variable:
        """Declares a weight, stored as attribute `name`, initialised now (Keras 3's
        arguments; `autocast` and `aggregation` are accepted and have no effect).

        Returns:
            The Variable (a NumPy array).
        """
        if isinstance(dtype, bool):  # an older positional order: (shape, initializer, trainable)
            dtype, trainable = None, dtype
        if dtype not in (None, "float32", np.float32):
            raise ValueError(f"{self.name}: add_weight supports float32 weights, got {dtype}")
        unknown = set(kwargs) - {"autocast", "aggregation", "overwrite_with_gradient"}
        if unknown:
            raise TypeError(f"add_weight: unexpected arguments {sorted(unknown)}")
        if initializer is None:
            initializer = "glorot_uniform"
        shape = () if shape is None else shape
        if name is not None and name in self._weight_attrs:
            raise ValueError(f"{self.name}: a weight named '{name}' exists already")
        attr = name or f"variable_{len(self._weight_attrs)}"
        name = attr
        if hasattr(type(self), name) or (name in vars(self) and
                                         not isinstance(vars(self)[name], Variable)):
            attr = f"_weight_{name}"  # an attribute of the layer's own: keep it, store beside
        shape = tuple(int(d) for d in shape)
        constraint = constraints.check(constraint, shape, f"{self.name}: weight '{name}'")
        if _weight_budget is not None:
            _weight_budget.take(int(np.prod(shape, dtype=object)), f"weight {self.name}/{name} "
                                f"of shape {shape}")
        value = initializers.get(initializer)(shape)
        if value.shape != shape:
            raise ValueError(f"{self.name}: initializer returned shape {value.shape}, not {shape}")
        # a name like 'query/kernel' (MultiHeadAttention's sublayers) is the weight's path under
        # the layer; the Variable's own name is its last part, as in Keras
        var = Variable(value, name=name.rsplit("/", 1)[-1], path=f"{self.name}/{name}",
                       trainable=trainable)
        var._owner, var._attr = weakref.ref(self), attr
        object.__setattr__(self, attr, var)
        self._weight_attrs.append(attr)
        self._weight_regs.append(regularizers.get(regularizer))
        if constraint is not None:  # applied after each optimizer update (pynn.constraints)
            vars(self).setdefault("_weight_constraints", {})[attr] = constraint
        return var

    @property
    def weights(self) -> list[Variable]:
        """All weights, trainable first (as Keras lists them); a layer with a call() of its own
        lists its sublayers' weights after its own."""
        ws = [getattr(self, a) for a in self._weight_attrs]
        ws = [w for w in ws if w.trainable] + [w for w in ws if not w.trainable]
        if self._is_traced():
            seen = {id(w) for w in ws}
            for sub in self._sublayers():
                for w in sub.weights:
                    if id(w) not in seen:
                        seen.add(id(w))
                        ws.append(w)
        return ws

    @property
    def trainable_weights(self) -> list[Variable]:
        return [w for w in self.weights if w.trainable and self.trainable and
                _owner_trainable(w)]

    @property
    def non_trainable_weights(self) -> list[Variable]:
        return [w for w in self.weights if not (w.trainable and self.trainable and
                                                _owner_trainable(w))]

    # Keras 3's other names for the weights
    @property
    def variables(self) -> list[Variable]:
        return self.weights

    @property
    def trainable_variables(self) -> list[Variable]:
        return self.trainable_weights

    @property
    def non_trainable_variables(self) -> list[Variable]:
        return self.non_trainable_weights

    def add_variable(self, shape, initializer, dtype=None, trainable: bool = True,
                     name: str | None = None, **kwargs) -> Variable:
        """Keras 3's add_variable: add_weight with the initializer required."""
        return self.add_weight(shape=shape, initializer=initializer, dtype=dtype,
                               trainable=trainable, name=name, **kwargs)

    @property
    def dtype_policy(self) -> mixed_precision.DTypePolicy:
        """The layer's DTypePolicy: the global one when it was made, unless `dtype` said."""
        return vars(self).get("_dtype_policy") or _FLOAT32

    @dtype_policy.setter
    def dtype_policy(self, policy) -> None:
        if self._bound_to is not None and self._bound_to() is not None:
            raise ValueError(f"{self.name}: set dtype_policy before the layer's model is built "
                             "(its graph is made in the policy the layer had then)")
        self._dtype_policy = mixed_precision.get(policy)

    @property
    def compute_dtype(self) -> str:
        """The dtype of the layer's matrix products: "float32" or "bfloat16"."""
        return self.dtype_policy.compute_dtype

    @property
    def variable_dtype(self) -> str:
        return self.dtype_policy.variable_dtype

    dtype = variable_dtype
    input_dtype = compute_dtype
    input_spec = None

    @property
    def path(self) -> str:
        return self.name

    # Keras's masks: whether the layer passes the mask of its input on to its output (a
    # layer that does not drops it, with a warning, as Keras). Set it on an instance, as Keras
    # code does in __init__, or on a class.
    supports_masking = False

    def compute_mask(self, inputs, previous_mask=None):
        """The output's mask given the input's, on data (Keras's API; in a model pynn computes
        masks inside the core graph, with `_lower_mask`): the input's when the layer supports
        masking (the masks of a list of inputs combined: kept where all keep)."""
        if not self.supports_masking:
            return None
        if isinstance(previous_mask, list):
            if any(m is None for m in previous_mask):
                return None
            return functools.reduce(lambda a, b: a * b, previous_mask)
        return previous_mask

    def _lower_mask(self, core, inputs, output, mask):
        """The node of the output's mask (or None), from the nodes of the inputs, the output
        and the input's mask (a list of them for a layer taking a list). The default passes a
        single input's mask on when the layer supports masking, and otherwise drops it with
        Keras's warning."""
        masks = mask if isinstance(mask, list) else [mask]
        if all(m is None for m in masks):
            return None
        if _overrides(type(self), "compute_mask"):
            raise ValueError(f"{type(self).__name__} '{self.name}': its compute_mask() cannot "
                             "run: pynn computes masks inside the core graph, for its own "
                             "layers (Embedding(mask_zero=True), Masking) only")
        if self.supports_masking and not isinstance(mask, list):
            return mask
        if self.supports_masking:  # a list input: the masks combined, as Keras's merges do
            from . import masking
            return masking.all_of(core, masks)
        warnings.warn(f"Layer '{self.name}' (of type {type(self).__name__}) was passed an "
                      "input with a mask attached to it. However, this layer does not support "
                      "masking and will therefore destroy the mask information. Downstream "
                      "layers will not see the mask.", stacklevel=2)
        return None

    def get_build_config(self) -> dict:
        args = self._build_args
        return {"input_shape": args[0][0] if args and args[0] else None}

    def build_from_config(self, config: dict) -> None:
        shape = config.get("input_shape")
        if shape is not None and not self.built:
            self.build(tuple(shape) if not isinstance(shape, list) else shape)

    # -- sublayers (a layer with a call() of its own) --------------------------------------------
    def add_loss(self, loss) -> None:
        """Adds a loss term (summed to a scalar) to the model's loss, as Keras: called in
        `call()`, on the call's tensors. fit minimises the compiled loss plus these; after a
        call on data they are in `layer.losses`."""
        from .. import ops
        from . import tracing
        from .input_layer import KerasTensor

        if isinstance(loss, KerasTensor):
            if not tracing.tracing():
                raise ValueError(f"{type(self).__name__} '{self.name}': add_loss() on a symbolic "
                                 "tensor works inside call(); outside it, pass the loss to "
                                 "compile() or add it in a layer's call()")
            tracing.note_loss(ops.sum(loss))
            return
        from ..eager import as_tensor
        from ..tensor import Tensor
        value = loss if isinstance(loss, Tensor) else as_tensor(np.asarray(loss, np.float32))
        if value.ndim:
            value = ops.sum(value)
        vars(self).setdefault("_eager_losses", []).append(value)

    @property
    def losses(self) -> list:
        """The losses this layer and its sublayers added (add_loss) in their last call on
        data, then their weights' regularization penalties, as scalar Tensors (Keras's
        `layer.losses`)."""
        from .tracing import _layers_below
        return layer_losses(_layers_below(self))

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value) -> None:
        """Freezes (or unfreezes) the layer and every layer inside it, as Keras does."""
        self._trainable = bool(value)
        if "_weight_attrs" in vars(self):  # past __init__: its sublayers follow
            for layer in self._sublayers():
                layer.trainable = value

    def _is_traced(self) -> bool:
        """Whether pynn runs this layer by tracing its Python call() (a layer written the Keras
        way) rather than by its lower()."""
        cls = type(self)
        return cls.lower is Layer.lower and cls._call_tensors is None and \
            callable(getattr(cls, "call", None))

    def _sublayers(self) -> list:
        """The layers this one holds in its attributes (directly, or in lists, tuples and
        dicts), as Keras tracks them, and those its traced calls used: each once."""
        out, seen = [], {id(self)}

        def add(v):
            if isinstance(v, Layer) and id(v) not in seen:
                seen.add(id(v))
                out.append(v)
            elif isinstance(v, (list, tuple)):
                for x in v:
                    add(x)
            elif isinstance(v, dict):
                for x in v.values():
                    add(x)
        for k, v in vars(self).items():
            if k not in ("_bound_to", "_inbound", "_traces"):
                add(v)
        for trace in vars(self).get("_traces", {}).values():
            for layer in trace.layers():
                add(layer)
        return out

    def _inner_layers(self) -> list:
        """The layers whose weights and constants a model holding this one must also hold."""
        return self._sublayers() if self._is_traced() else []

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the weights' values."""
        return read_values(self.weights)

    def set_weights(self, weights) -> None:
        """Writes values into the weights, in the order of `weights`, checking each shape."""
        weights = list(weights)
        if len(weights) != len(self.weights):
            raise ValueError(f"Layer '{self.name}' expects {len(self.weights)} weights, "
                             f"got {len(weights)}")
        assign_values(zip(self.weights, weights))

    def count_params(self) -> int:
        return int(sum(w.size for w in self.weights))

    def _rebind(self, attr: str, core, vid: int) -> None:
        """Moves a weight into core memory: copies its value into variable `vid` of `core` and
        keeps a view of it."""
        old = getattr(self, attr)
        view = core.variable(vid)
        view[...] = old
        var = _as_variable(view, old)
        var._core_owner, var._vid = core, vid
        setattr(self, attr, var)

    # -- calling on symbolic tensors (the functional API) -----------------------------------------
    # A layer that takes several named tensors (MultiHeadAttention: query, value, key,
    # attention_mask) lists their names here and implements `_bind_call`, `build_call`,
    # `compute_call_output_shape` and `lower_call`; its calls are recorded with a call spec.
    _call_tensors: tuple | None = None
    _call_positional = 1  # how many of them a saved call lists as positional args

    def __call__(self, *args, **kwargs):
        """Applies the layer to `pynn.Input` tensors (one, or a list for merge layers) and returns
        the symbolic output tensor; on data (arrays or Tensors) it runs the layer now. The first
        call builds the layer; later calls share its weights.

        Example:
            >>> x = pynn.Input(shape=(4,))
            >>> y = pynn.layers.Dense(2)(x)
            >>> y.shape
            (None, 2)
        """
        from . import tracing
        from .input_layer import KerasTensor

        if self.input_spec is not None and args:
            check_input_spec(self, args[0])
        if tracing.tracing() and args and not tracing.find_tensors((args, kwargs), KerasTensor):
            # data met inside a traced call() (an arange of positions for an Embedding): a
            # constant of the graph, so the layer's weights stay in the model
            from .op_layer import constant_tensor
            args = (constant_tensor(np.asarray(args[0])),) + tuple(args[1:])
        if self._is_traced():
            return self._call_traced(args, kwargs)
        self._check_runnable()
        if self._call_tensors is not None:
            return self._call_named(args, kwargs)
        if not args and "inputs" in kwargs:  # layer(inputs=x), as Keras allows
            args = (kwargs.pop("inputs"),)
        if len(args) != 1:
            raise TypeError(f"{type(self).__name__} '{self.name}' takes one input (a tensor, or a "
                            f"list of tensors), got {len(args)} positional arguments")
        inputs = args[0]
        many = isinstance(inputs, (list, tuple))
        tensors = list(inputs) if many else [inputs]
        if not any(isinstance(t, KerasTensor) for t in tensors):
            training = kwargs.pop("training", None)
            if training is None:  # inherited from the call this one runs in, as in Keras
                training = tracing.current_training()
            return self._call_eager(inputs, bool(training), kwargs)
        # training= in a graph: the core decides at each run (fit trains, predict infers)
        kwargs.pop("training", None)
        if kwargs.get("mask") is not None:
            raise ValueError(f"{type(self).__name__} '{self.name}': mask= applies to calls on "
                             "data, not to building a graph")
        if not tensors or not all(isinstance(t, KerasTensor) for t in tensors):
            raise TypeError(f"{type(self).__name__} '{self.name}' was called on a mix of "
                            "pynn.Input tensors and data")
        shapes = [t.shape for t in tensors] if many else tensors[0].shape
        if not self.built:
            self.build(shapes)
        out = self.compute_output_shape(shapes)
        if isinstance(out, list):  # several outputs: one tensor each, all one call
            return self._record_call(tensors, self._sibling_tensors(out, tensors))
        t = KerasTensor(out, "float32", self.name, self, tensors)
        t._unbatched = all(i._unbatched for i in tensors)
        return self._record_call(tensors, t)

    def _call_traced(self, args: tuple, kwargs: dict):
        """A call of a layer with a call() of its own: traced on symbolic tensors (recorded as
        one call of this layer, whose ops are the trace), run now on data."""
        from . import tracing
        from .input_layer import KerasTensor

        tensors = tracing.find_tensors((args, kwargs), KerasTensor)
        if not tensors:
            with tracing.eager_call(self):
                return self._call_traced_eager(args, kwargs)
        if "training" in kwargs and not _takes_arg(type(self).call, "training"):
            # Keras passes training= only to a call() that takes it (a model called with
            # training= hands it to each of its layers)
            kwargs = {k: v for k, v in kwargs.items() if k != "training"}
        if not self.built:
            first = args[0] if args else next(iter(kwargs.values()))
            self._build_for(first)
        swap = {id(t): tracing.Slot(k) for k, t in enumerate(tensors)}
        spec_args = tracing.replace_tensors(list(args), swap)
        spec_kwargs = tracing.replace_tensors(dict(kwargs), swap)
        variants = [spec_kwargs]
        if spec_kwargs.get("training") is None and _takes_arg(type(self).call, "training"):
            # Python may branch on `training`: traced both ways; when the two differ, the core
            # picks at each run (fit trains, evaluate and predict infer)
            variants = [{**spec_kwargs, "training": False}, {**spec_kwargs, "training": True}]
        dynamic = any(None in t.shape[1:] for t in tensors if not t._unbatched)
        made = []
        for kw in variants:
            if dynamic:
                made.append((*self._probe_trace(spec_args, kw, tensors), kw))
            else:
                trace = self._trace_for(spec_args, kw, tensors)
                made.append((trace, [o.shape for o in trace.outputs], kw))
        if len(made) == 2 and tracing.signature(made[0][0]) == tracing.signature(made[1][0]):
            made = made[:1]
        trace, shapes, kw = made[0]
        # "given": the call's own keyword arguments, which saving writes (kw may be a variant)
        spec = {"trace": trace, "args": spec_args, "kwargs": kw, "given": spec_kwargs}
        if len(made) == 2:
            other, other_shapes, other_kw = made[1]
            if other_shapes != shapes or other.structure != trace.structure:
                raise ValueError(f"{type(self).__name__} '{self.name}': call() returns outputs "
                                 f"of other shapes in training ({other_shapes}) than in "
                                 f"inference ({shapes})")
            spec["train"] = {"trace": other, "kwargs": other_kw}
        outs = [KerasTensor(shape, o.dtype, self.name, self, tensors)
                for shape, o in zip(shapes, trace.outputs)]
        for k, o in enumerate(outs):
            o._index, o._call_spec = k, spec
            o._siblings = outs if len(outs) > 1 else None
        self._record_call(tensors, tracing.pack_outputs(trace.structure, outs))
        return tracing.pack_outputs(trace.structure, outs)

    _MAX_TRACES = 32  # traces kept per layer (one per input signature; oldest dropped)

    def _trace_for(self, spec_args, spec_kwargs, tensors: list):
        """The trace of call() for tensors of these shapes (cached per signature)."""
        from . import tracing

        key = (tuple((tuple(t.shape), t.dtype, t._unbatched) for t in tensors),
               repr(spec_args), repr(sorted(spec_kwargs.items(), key=lambda kv: kv[0])))
        traces = vars(self).setdefault("_traces", {})
        trace = traces.pop(key, None)
        if trace is None:
            swap = {k: t for k, t in enumerate(tensors)}
            args = _fill_slots(spec_args, swap)
            kwargs = _fill_slots(spec_kwargs, swap)
            trace = tracing.run_trace(self, args, kwargs, tensors)
            while len(traces) >= self._MAX_TRACES:
                traces.pop(next(iter(traces)))
        traces[key] = trace  # most recently used last
        return trace

    # lengths a None dim is traced at to find which output dims follow it (tried in order)
    _PROBES = ((32, 33), (8, 9), (2, 3))

    def _probe_trace(self, spec_args, spec_kwargs, tensors: list):
        """Traces a call on tensors with None (data-given) lengths at two probe lengths: an
        output dim that changes with them is None. Returns (a trace, the output shapes); the
        model traces again at the data's lengths when it builds its core."""
        from .input_layer import KerasTensor

        error = None
        for probes in self._PROBES:
            runs = []
            try:
                for p in probes:
                    fixed = []
                    for t in tensors:
                        c = KerasTensor(tuple(p if d is None and i else d
                                              for i, d in enumerate(t.shape)), t.dtype)
                        c._unbatched = t._unbatched
                        fixed.append(c)
                    runs.append(self._trace_for(spec_args, spec_kwargs, fixed))
            except ValueError as e:  # too short for the layer's ops: try other lengths
                error = e
                continue
            a, b = runs
            shapes = []
            for oa, ob in zip(a.outputs, b.outputs):
                if len(oa.shape) != len(ob.shape):
                    raise ValueError(f"{type(self).__name__} '{self.name}': its output's rank "
                                     "depends on the input's length")
                shapes.append(tuple(None if da != db else da
                                    for da, db in zip(oa.shape, ob.shape)))
            return a, shapes
        raise error

    def _build_for(self, first) -> None:
        """Builds the layer for its first argument (its shape, or a list of them), as Keras
        does before the first call."""
        def shape_of(v):
            if isinstance(v, (list, tuple)):
                return [shape_of(x) for x in v]
            if isinstance(v, dict):
                return {k: shape_of(x) for k, x in v.items()}
            return tuple(getattr(v, "shape", np.shape(v)))
        shape = shape_of(first)
        if type(self).build is not Layer.build:
            self.build(shape)
        self.built = True

    def _call_traced_eager(self, args: tuple, kwargs: dict):
        """call() run now on data: arrays become Tensors, each op runs on the tape."""
        from ..eager import as_tensor
        from ..tensor import Tensor

        def conv(v):
            if isinstance(v, Tensor):
                return v
            if isinstance(v, np.ndarray):  # a Variable too: its leaf, which the tape tracks
                return as_tensor(v)
            if isinstance(v, (list, tuple)) and v and all(
                    isinstance(x, (np.ndarray, Tensor)) for x in v):
                return [conv(x) for x in v]
            return v
        from . import tracing
        args = tuple(conv(a) for a in args)
        kwargs = {k: conv(v) if k not in ("training", "mask") else v for k, v in kwargs.items()}
        if not self.built:
            self._build_for(args[0] if args else next(iter(kwargs.values())))
        training = kwargs.get("training")
        if training is None:  # inherited from the call this one runs in, as in Keras
            training = tracing.current_training()
        if _takes_arg(type(self).call, "training"):
            kwargs["training"] = training
        else:
            kwargs.pop("training", None)
        from ..eager import mask_of, set_mask
        first = args[0] if args else kwargs.get("inputs")
        given = [mask_of(x) for x in first] if isinstance(first, list) else mask_of(first)
        has_mask = any(m is not None for m in (given if isinstance(given, list) else [given]))
        if has_mask and kwargs.get("mask") is None and \
                "mask" in inspect.signature(type(self).call).parameters:
            kwargs["mask"] = given  # as Keras: call() gets its first argument's masks
        with tracing.training_scope(training):
            out = self.call(*args, **kwargs)
        if has_mask:
            set_mask(out, self.compute_mask(first, given))
        return out

    def lower_call(self, core, nodes: list, spec: dict):
        """Adds the ops of one call (its tensors' nodes in `spec['names']` order); a traced call
        replays its trace."""
        if "trace" in spec:
            from . import tracing
            if "train" not in spec:
                out = self._replay(core, nodes, spec["args"], spec["trace"], spec["kwargs"])
                return out if len(out) > 1 else out[0]
            # call() branches on training: both, the core picks per run (its added losses too)
            with tracing.collect_losses() as infer_losses:
                out = self._replay(core, nodes, spec["args"], spec["trace"], spec["kwargs"])
            with tracing.collect_losses() as train_losses:
                train = self._replay(core, nodes, spec["args"], spec["train"]["trace"],
                                     spec["train"]["kwargs"])
            out = [core.add_node("training_select", (a, b))[0] for a, b in zip(train, out)]
            if infer_losses or train_losses:
                a, b = _sum_nodes(core, train_losses), _sum_nodes(core, infer_losses)
                tracing.keep_loss_nodes([core.add_node("training_select", (a, b))[0]])
            return out if len(out) > 1 else out[0]
        self._missing_hook("lower_call")

    def _lower_call_masked(self, core, nodes: list, masks: list, spec: dict):
        """A traced call whose call() takes `mask`, lowered with the mask nodes of its tensors
        (`masks`, None where a tensor has none): traced again with `mask` set to the masks of
        its first argument, as Keras passes them, each mask a float32 tensor of 1 and 0."""
        from .tracing import Slot
        extra, slots = [], {}
        for k, m in enumerate(masks):
            if m is not None:
                slots[k] = Slot(len(nodes) + len(extra))
                extra.append(m)

        def masks_of(value):  # the first argument's structure, its tensors' masks in place
            if isinstance(value, Slot):
                return slots.get(value.index)
            if isinstance(value, (list, tuple)):
                return [masks_of(v) for v in value]
            return None

        first = spec["args"][0] if spec["args"] else spec["kwargs"].get("inputs")
        mask_arg = masks_of(first)

        def with_mask(kwargs: dict) -> dict:
            return kwargs if kwargs.get("mask") is not None else {**kwargs, "mask": mask_arg}

        all_nodes = list(nodes) + extra
        tensors = [_node_tensor(core, n) for n in all_nodes]
        masked = {**spec, "kwargs": with_mask(spec["kwargs"])}
        masked["trace"] = self._trace_for(spec["args"], masked["kwargs"], tensors)
        if "train" in spec:
            kw = with_mask(spec["train"]["kwargs"])
            masked["train"] = {"kwargs": kw,
                               "trace": self._trace_for(spec["args"], kw, tensors)}
        return self.lower_call(core, all_nodes, masked)

    def _replay(self, core, nodes: list, spec_args, trace, spec_kwargs) -> list:
        """A trace's ops after `nodes`; traced again first when the nodes' shapes differ from
        the trace's (a model of data-given lengths builds a core for the data's shapes)."""
        from . import tracing
        concrete = [_node_tensor(core, n) for n in nodes]
        if any(tuple(c.shape) != tuple(p.shape) for c, p in zip(concrete, trace.inputs)):
            trace = self._trace_for(spec_args, spec_kwargs, concrete)
        return tracing.replay(core, trace, nodes)

    def _record_call(self, inputs: list, outputs):
        """Keeps a symbolic call's tensors for `input` and `output` (Keras's inbound nodes);
        returns `outputs`."""
        from .tracing import is_quiet
        if is_quiet():
            return outputs
        if "_inbound" not in vars(self):
            self._inbound = []
        self._inbound.append((list(inputs), outputs))
        return outputs

    def _first_call(self, what: str):
        calls = vars(self).get("_inbound")
        if not calls:
            raise AttributeError(f"The layer {self.name} has never been called and thus has no "
                                 f"defined {what}.")
        return calls[0]

    @property
    def input(self):
        """The tensor the layer's first symbolic call read (a list when it read several), as
        Keras's `layer.input`: with `output`, what an inference sub-model is built from."""
        inputs = self._first_call("input")[0]
        return inputs[0] if len(inputs) == 1 else inputs

    @property
    def output(self):
        """The tensor the layer's first symbolic call made (a list when it made several)."""
        outputs = self._first_call("output")[1]
        if isinstance(outputs, (list, tuple)):
            return outputs[0] if len(outputs) == 1 else list(outputs)
        return outputs

    def _sibling_tensors(self, shapes: list, inputs, spec: dict | None = None) -> list:
        """One output tensor per shape of one call with several outputs (the first stands for
        the call), each with the call's spec when it took named tensors."""
        from .input_layer import KerasTensor

        outs = [KerasTensor(s, "float32", self.name, self, inputs) for s in shapes]
        for k, t in enumerate(outs):
            t._index, t._siblings, t._call_spec = k, outs, spec
        return outs

    def _call_named(self, args: tuple, kwargs: dict):
        """A call of a layer with named tensor arguments: symbolic (all pynn.Input tensors) or on
        data (arrays or Tensors). Everything is checked before the layer is built."""
        from .input_layer import KerasTensor

        training = kwargs.pop("training", None)
        tensors, options = self._bind_call(*args, **kwargs)  # {name: tensor} of those given
        given = [tensors[n] for n in self._call_tensors if tensors.get(n) is not None]
        names = [n for n in self._call_tensors if tensors.get(n) is not None]
        symbolic = [isinstance(t, KerasTensor) for t in given]
        spec = {"names": names, "options": options}
        if not any(symbolic):
            from ..eager import run_layer_call
            from . import tracing
            if training is None:  # inherited from the call this one runs in, as in Keras
                training = tracing.current_training()
            return run_layer_call(self, given, spec, bool(training))
        if not all(symbolic):
            raise TypeError(f"{type(self).__name__} '{self.name}' was called on a mix of "
                            "pynn.Input tensors and data: "
                            + ", ".join(f"{n}={'tensor' if k else 'data'}"
                                        for n, k in zip(names, symbolic)))
        shapes = {n: tuple(t.shape) for n, t in zip(names, given)}
        dtypes = {n: t.dtype for n, t in zip(names, given)}
        out = self.compute_call_output_shape(shapes, dtypes, options)  # checks, before build
        if not self.built:
            self.build_call(shapes)
        if isinstance(out, list):  # several outputs (attention scores): a tuple, as Keras
            return self._record_call(given, tuple(self._sibling_tensors(out, given, spec)))
        t = KerasTensor(out, "float32", self.name, self, given)
        t._call_spec = spec
        return self._record_call(given, t)

    # The four hooks of a layer with named call tensors (see `_call_tensors`); the base class has
    # none, so a subclass that sets `_call_tensors` without them fails with this message.
    def _missing_hook(self, hook: str):
        raise NotImplementedError(f"{type(self).__name__} sets _call_tensors, so it must define "
                                  f"{hook}()")

    def _bind_call(self, *args, **kwargs) -> tuple[dict, dict]:
        """The call's arguments as ({name: tensor} for the names in `_call_tensors`, options)."""
        self._missing_hook("_bind_call")

    def build_call(self, shapes: dict) -> None:
        """Creates the weights for tensors of these shapes ({name: shape})."""
        self._missing_hook("build_call")

    def compute_call_output_shape(self, shapes: dict, dtypes: dict, options: dict):
        """Checks the call's tensors and options; returns the output shape."""
        self._missing_hook("compute_call_output_shape")

    def replay_call(self, tensors: list, spec: dict, **extra):
        """Calls the layer again on `tensors` with a recorded call spec (nested models,
        loading); `extra` (training=) is passed on."""
        if "trace" in spec:
            given = dict(enumerate(tensors))
            return self(*_fill_slots(spec["args"], given),
                        **{**_fill_slots(spec["kwargs"], given), **extra})
        return self(**dict(zip(spec["names"], tensors)), **spec["options"], **extra)

    def _call_eager(self, inputs, training: bool, kwargs: dict):
        """The layer run now on data: its ops, each recorded on the tape (pynn.Tensor out)."""
        from ..eager import run_layer

        if kwargs.get("mask") is not None or set(kwargs) - {"mask"}:
            raise ValueError(f"{type(self).__name__} '{self.name}': unexpected arguments "
                             f"{sorted(kwargs)}")
        return run_layer(self, inputs, training)

    # -- to override ----------------------------------------------------------------------------
    @_records_build
    def build(self, input_shape) -> None:
        self.built = True

    def compute_output_shape(self, input_shape):
        if self._is_traced():  # traced on a placeholder of that shape
            from . import tracing
            from .input_layer import KerasTensor
            with tracing.quiet():
                out = self(KerasTensor(tuple(input_shape)))
            if isinstance(out, (list, tuple)):
                return [tuple(o.shape) for o in out]
            return tuple(out.shape)
        return tuple(input_shape)

    def lower(self, core, node: int) -> int:
        """Adds this layer's ops to `core` after `node`; returns the output node (a list of
        nodes for a layer with several outputs). A layer with a call() of its own replays the
        trace made for an input of that node's shape (in a Sequential model)."""
        if self._is_traced():
            from . import tracing
            with tracing.quiet():  # the trace for this shape (made now if it is new)
                out = self(_node_tensor(core, node))
            outs = out if isinstance(out, (list, tuple)) else [out]
            return self.lower_call(core, [node], outs[0]._call_spec)
        self._check_runnable()
        return node

    def _check_runnable(self) -> None:
        """Raises unless pynn can run this layer: a layer runs as the core ops its `lower` adds
        (or `lower_call`, for named call tensors). A subclass with neither, such as one written
        for Keras with a Python `call()`, would otherwise pass its input through unchanged."""
        cls = type(self)
        if cls.lower is not Layer.lower or cls._call_tensors is not None:
            return
        what = ("defines call(), Python code that pynn cannot run yet" if hasattr(cls, "call")
                else "defines neither call() nor lower()")
        raise NotImplementedError(
            f"{cls.__name__} '{self.name}' {what}: pynn runs a layer as the core ops its lower() "
            "adds. Build it from pynn's layers (a Sequential or a functional model as a "
            "layer), or give it lower(core, node) with the ops it computes. (pynn raises "
            "rather than pass the input through unchanged.)")

    def get_config(self) -> dict:
        config = {"name": self.name, "trainable": self.trainable}
        if self.dtype_policy.name != "float32":
            config["dtype"] = self.dtype_policy.name
        return config

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"

    def __reduce__(self):
        """pickle, copy.copy and copy.deepcopy, as Keras 3 does them: a standalone layer (in no
        model) of the same config, built as this one was, with copies of its weights. The pickle
        holds only the layer's `.keras`-style archive, in bytes (see pynn.saving)."""
        from .. import saving
        return saving._unpickle_layer, (saving._archive_bytes(self, "layer"),)


def _fill_slots(value, tensors: dict):
    """A call spec's arguments with each Slot replaced by its tensor."""
    from .tracing import Slot
    if isinstance(value, Slot):
        return tensors[value.index]
    if isinstance(value, list):
        return [_fill_slots(v, tensors) for v in value]
    if isinstance(value, tuple):
        return tuple(_fill_slots(v, tensors) for v in value)
    if isinstance(value, dict):
        return {k: _fill_slots(v, tensors) for k, v in value.items()}
    return value


def _node_tensor(core, node: int):
    """A placeholder KerasTensor of a core node's shape and dtype."""
    from .input_layer import KerasTensor
    unbatched = bool(core.node_unbatched(node))
    shape = tuple(core.node_shape(node))
    t = KerasTensor(shape if unbatched else (None,) + shape, core.node_dtype(node))
    t._unbatched = unbatched
    return t


def _sum_nodes(core, nodes: list) -> int:
    """One scalar node: the sum of scalar nodes (a zero constant for none)."""
    if not nodes:
        return core.add_constant(np.zeros((), np.float32))
    total = nodes[0]
    add = _core.op_code("binary", "add")
    for n in nodes[1:]:
        total, _ = core.add_node("binary", (total, n), (), (add,))
    return total


def layer_losses(layers: list) -> list:
    """The add_loss values of `layers`' last calls on data, then their weights' penalties."""
    out = []
    for layer in layers:
        out.extend(vars(layer).get("_eager_losses", []))
    for layer in layers:
        for attr, reg in zip(getattr(layer, "_weight_attrs", ()), getattr(layer, "_weight_regs",
                                                                          ())):
            if reg is not None and (reg.l1 or reg.l2):
                out.append(reg(getattr(layer, attr)))
    return out


def _owner_trainable(w) -> bool:
    """Whether the layer that made weight w trains (a frozen sublayer's weights do not)."""
    owner = getattr(w, "_owner", None)
    layer = owner() if owner is not None else None
    return layer is None or layer.trainable


def _overrides(cls, name: str) -> bool:
    """Whether a user's class (not one of pynn's) defines the method `name` (compute_mask)."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return not klass.__module__.startswith("pynn.")
    return False


def _takes_arg(fn, name: str) -> bool:
    """Whether fn accepts an argument `name` (or **kwargs)."""
    import inspect
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def assign_values(pairs) -> None:
    """Writes each (variable, value) pair after checking every shape. The variables a model's
    core holds are written together under its lock, so a run on another thread sees all of them
    old or all of them new."""
    checked = []
    for var, value in pairs:
        v = np.asarray(value, dtype=np.float32)
        if v.shape != var.shape:
            raise ValueError(f"Variable '{var.path}' has shape {var.shape}, "
                             f"cannot assign a value of shape {v.shape}")
        checked.append((var, v))
    by_core: dict = {}
    for var, v in checked:
        core = var._owner_core()
        if core is None:
            var.view(np.ndarray)[...] = v
        else:
            by_core.setdefault(id(core), (core, [], []))
            by_core[id(core)][1].append(var._vid)
            by_core[id(core)][2].append(np.ascontiguousarray(v))
    for core, ids, values in by_core.values():
        core.write_variables(ids, values)


def read_values(variables) -> list[np.ndarray]:
    """Copies of the variables' values; those of one model's core are read together under its
    lock, so they come from one moment (not half before and half after a training step)."""
    out: list = [None] * len(variables)
    by_core: dict = {}
    for i, var in enumerate(variables):
        core = var._owner_core()
        if core is None:
            out[i] = np.array(var, dtype=np.float32, copy=True).view(np.ndarray)
        else:
            by_core.setdefault(id(core), (core, [], []))
            by_core[id(core)][1].append(var._vid)
            by_core[id(core)][2].append(i)
    for core, ids, where in by_core.values():
        for i, value in zip(where, core.read_variables(ids)):
            out[i] = value
    return out


def _as_variable(view: np.ndarray, like: Variable) -> Variable:
    """A Variable sharing `view`'s memory, with `like`'s name, flags and owner."""
    v = view.view(Variable)
    v._name, v._path, v._trainable = like.name, like.path, like.trainable
    v._owner, v._attr = getattr(like, "_owner", None), getattr(like, "_attr", None)
    return v
