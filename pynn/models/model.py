"""Model: compile, fit, evaluate, predict, summary and weights, over a core model.

The training loop is Python bookkeeping around one core call per batch: `train_step(x, y, idx)`
gathers the batch's rows, runs forward, loss, backward and the optimizer update with the GIL
released, and returns the batch's loss and metric sums.
"""

import copyreg
import math
import sys
import warnings
import weakref

import numpy as np

from .. import _core, losses, optimizers
from .. import metrics as metrics_mod
from ..activations import relu
from ..callbacks import CallbackList, History
from ..layers.base import _takes_arg, assign_values, read_values, unique_name
from ..layers.convolutional import BaseConv
from ..layers.core import Activation, Dense
from ..layers.input_layer import KerasTensor
from ..layers.pooling import GlobalMaxPooling1D, GlobalMaxPooling2D, MaxPooling1D, MaxPooling2D
from ..tensor import Tensor, _taping, no_grad
from ..utils import random as pn_random
from .data import (
    BatchSource,
    check_steps,
    is_batch_source,
    shape_str,
    to_array,
    to_float32,
    to_int32,
)


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _rows(x) -> int:
    """Samples in prepared inputs or targets: one array, or a list with one per input/output."""
    return x.shape[0] if isinstance(x, np.ndarray) else x[0].shape[0]


def _take(x, rows):
    """The rows (a slice or an index array) of prepared inputs or targets."""
    return x[rows] if isinstance(x, np.ndarray) else [a[rows] for a in x]


def _by_name(data, names: list) -> tuple:
    """A dict (by name) or a list/tuple (in order) as one entry per name: ("ok", entries), or
    what is wrong: ("unknown", key), ("missing", name) or ("count", length)."""
    if isinstance(data, dict):
        unknown = [k for k in data if k not in names]
        if unknown:
            return "unknown", unknown[0]
        missing = [k for k in names if k not in data]
        if missing:
            return "missing", missing[0]
        return "ok", [data[k] for k in names]
    if len(data) != len(names):
        return "count", len(data)
    return "ok", list(data)


def _take_weights(sw, rows):
    """The rows of prepared sample weights (None, a vector, or a list with None or a vector per
    output)."""
    if sw is None or isinstance(sw, np.ndarray):
        return None if sw is None else sw[rows]
    return [None if w is None else w[rows] for w in sw]


def _is_arrays(x) -> bool:
    """Whether x is a list or tuple of arrays (several inputs or targets), not nested data."""
    return isinstance(x, (list, tuple)) and bool(x) and all(
        isinstance(a, (np.ndarray, Tensor)) or hasattr(a, "to_numpy") for a in x)


def _resolve_verbose(verbose) -> int:
    if verbose == "auto":
        return 1
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
    return int(verbose)


def _check_batch_size(batch_size) -> int:
    if batch_size is None:
        return 32
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)


_MAX_POOLS = (MaxPooling1D, MaxPooling2D, GlobalMaxPooling1D, GlobalMaxPooling2D)


def _refuse_to_pickle(core):
    """pickle and copy of a core model (reached through an optimizer compiled into a model):
    its state lives in C memory and belongs to its pynn model."""
    raise TypeError("A pynn core model (a model's graph, weights and optimizer state, in C "
                    "memory) cannot be pickled or copied by itself: pickle or copy the pynn model "
                    "that holds it (an optimizer compiled into a model goes with the model)")


copyreg.pickle(_core.Model, _refuse_to_pickle)


_FUNCTIONAL_CLASSES: dict = {}


def _with_functional(cls):
    """cls joined with Functional (cls first, so its methods win): a subclass of Model built
    from inputs and outputs, or traced from its call()."""
    from .functional import Functional
    if issubclass(cls, Functional):
        return cls
    mixed = _FUNCTIONAL_CLASSES.get(cls)
    if mixed is None:
        mixed = type(cls.__name__, (cls, Functional), {"__module__": cls.__module__,
                                                      "__qualname__": cls.__qualname__,
                                                      "_user_class": cls})
        _FUNCTIONAL_CLASSES[cls] = mixed
    return mixed


def unpack_x_y_sample_weight(data):
    """(x, y, sample_weight) of a step's data, as Keras's keras.utils.unpack_x_y_sample_weight."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) == 1:
        return data[0], None, None
    if len(data) == 2:
        return data[0], data[1], None
    if len(data) == 3:
        return data
    raise ValueError(f"Data is expected to be in format `x`, `(x,)`, `(x, y)`, or "
                     f"`(x, y, sample_weight)`, found: {data}")


def _with_inner(layers: list) -> list:
    """The layers and, after each, the layers inside it (a traced layer's sublayers and ops),
    each once: every layer whose weights and constants the model's core holds."""
    out, seen = [], set()
    stack = list(reversed(layers))
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        out.append(layer)
        stack.extend(reversed(layer._inner_layers()))
    return out


def _relu_before_max_pool(layer, nxt) -> bool:
    """Whether `layer` ends in a relu that feeds the max pooling layer `nxt`. Then the relu runs
    after the pooling instead: max(relu(x)) = relu(max(x)), and the gradients agree too (where the
    window's maximum is positive both route dout to it, else both give 0), so the relu and its
    backward touch a quarter of the values (a 2x2 pool); about 8% of an MNIST CNN step."""
    return (isinstance(nxt, _MAX_POOLS) and isinstance(layer, (Activation, BaseConv, Dense))
            and layer.activation is relu)


class _Totals:
    """Running sums of steps' results: the losses (batch means, weighed by the batch's samples)
    and every metric's accumulators; `logs()` turns them into Keras's logs, as each metric's
    `result()` would. Made once per fit or evaluate: a step then costs a few microseconds (fit
    calls add() and, for batch callbacks, logs() every step)."""

    __slots__ = ("names", "means", "metrics", "sums", "seen", "_scale", "_batch", "_order")

    def __init__(self, model):
        self.names = model.metrics_names
        self.means = model._n_means
        pos, self.metrics = self.means, []
        for nm, metric in zip(self.names[self.means:], model._metric_objs):
            self.metrics.append((nm, metric, pos, pos + metric._size))
            pos += metric._size
        self.sums, self._scale = np.zeros(pos), np.ones(pos)
        self.seen, self._batch = 0, -1
        self._order = sorted(self.names)

    def add(self, r: np.ndarray, batch: int) -> None:
        if batch != self._batch:
            self._scale[:self.means] = batch
            self._batch = batch
        r *= self._scale
        self.sums += r
        self.seen += batch

    def logs(self, sort: bool = False) -> dict:
        """Keyed as metrics_names (sorted, as Keras's batch and epoch logs are, with sort)."""
        seen, sums = self.seen, self.sums
        values = sums[:self.means].tolist()
        logs = {nm: v / seen for nm, v in zip(self.names, values)}
        for nm, metric, start, stop in self.metrics:
            logs[nm] = metric._combine(sums[start:stop], seen)
        return {k: logs[k] for k in self._order} if sort else logs


class Model:
    """Base of all models: the training and inference API of Keras 3.

    Subclasses (Sequential) provide `_input_shape()` and `_lower(core, node)`; a model with
    several inputs or outputs (Functional) overrides `_lower_model(core, sample_shape)`.
    """

    def __new__(cls, *args, **kwargs):
        # Model(inputs, outputs) is a functional model, as in Keras; so is a subclass of Model
        # made that way (CustomModel(inputs, outputs) overriding train_step): its class is
        # joined with Functional, as Keras 3 injects it
        from .functional import Functional
        from .sequential import Sequential
        functional = len(args) == 2 or (len(args) == 1 and "outputs" in kwargs) or (
            "inputs" in kwargs and "outputs" in kwargs)
        if cls is Model and (args or "inputs" in kwargs or "outputs" in kwargs):
            return super().__new__(Functional)
        if functional and not issubclass(cls, (Functional, Sequential)):
            return super().__new__(_with_functional(cls))
        return super().__new__(cls)

    def __init__(self, *args, name: str | None = None, trainable: bool = True, **kwargs):
        kwargs.pop("dtype", None)  # Keras's Layer arguments a subclass may pass on
        kwargs.pop("autocast", None)
        if args or kwargs:
            raise TypeError(f"Model: unexpected arguments {sorted(kwargs)}")
        self.name = name or unique_name("model")
        self.trainable = trainable
        self._core = None
        self._compiled = False
        self.optimizer = None
        self.loss = None
        self._metric_specs: list = []    # per output: the metrics compile was given
        self._metric_names: list[str] = []
        self._metric_core_names: list[str] = []
        self._metric_objs: list = []     # the compiled metrics, in the order of their results
        self._losses: list = []          # per output: a pynn.losses.Loss
        self._loss_weights: list = []    # per output: a float
        self._n_inputs = 1
        self._input_names: list[str] = []
        self._output_names: list[str] = []
        self._output_struct = "single"   # how predict returns: one array, a list, or a dict
        self.history = None
        self.stop_training = False     # a callback sets it to end fit (Keras 3's flags)
        self.stop_evaluating = False
        self.stop_predicting = False
        self._validates = False        # whether the running fit validates (for CSVLogger)
        self._input_dtype = "float32"  # or "int32" (indices for an Embedding), from the Input

    # -- building -------------------------------------------------------------------------------
    @property
    def _input_dtype(self) -> str:
        return self._x_dtype.name

    @_input_dtype.setter
    def _input_dtype(self, name: str) -> None:
        self._x_dtype = np.dtype(name)
        # predict's fast path (one array in, one out) compares with it; None turns it off
        self._fast_dtype = self._x_dtype

    @property
    def built(self) -> bool:
        return self._core is not None or bool(vars(self).get("_dyn_shapes"))

    def _layers_in_order(self) -> list:
        return []

    def _input_sample_shapes(self, sample_shape: tuple) -> list[tuple]:
        """Every input's per-sample shape, given the first's."""
        return [tuple(sample_shape)]

    def _build_core(self, sample_shape: tuple) -> None:
        """Builds every layer, creates the core model: variables in one buffer, then the graph.
        With a length unknown (None) the layers are built and the core waits for data."""
        layers = self._layers_in_order()
        if not layers:
            raise ValueError(f"Model '{self.name}' has no layers")
        shapes = self._input_sample_shapes(sample_shape)
        if any(d is None for shape in shapes for d in shape):
            self._defer_core(layers, shapes)
            return
        self._build_layers(layers, sample_shape)
        core = _core.Model()
        core.set_seed(int(pn_random.generator().integers(2**63)))
        owners, constants = [], []
        for layer in _with_inner(layers):
            # A layer's weights live in one core: the last model built with it. Another model
            # sharing the layer (a model nested in this one, say) rebuilds its core from the
            # layer's values when it is next used.
            previous = layer._bound_to() if layer._bound_to is not None else None
            if previous is not None and previous is not self:
                previous._core = None
            layer._bound_to = weakref.ref(self)
            layer._var_ids = []
            for attr in layer._weight_attrs:
                var = getattr(layer, attr)
                trainable = self.trainable and var.trainable and layer.trainable
                vid = core.add_variable(var.shape, trainable)
                layer._var_ids.append(vid)
                owners.append((layer, attr, vid))
            # constants of traced ops: hidden, non-trainable variables
            layer._const_ids = [core.add_variable(c.shape, False)
                                for c in getattr(layer, "_constants", ())]
            constants += zip(layer._constants, layer._const_ids) if layer._const_ids else []
        core.alloc()
        for value, vid in constants:
            core.variable(vid)[...] = value
        for layer, attr, vid in owners:
            layer._rebind(attr, core, vid)
            reg = layer._weight_regs[layer._weight_attrs.index(attr)]
            if reg is not None:
                core.set_regularizer(vid, reg.l1, reg.l2)
        try:
            nodes = self._lower_model(core, sample_shape)
        except OverflowError as e:  # a size or attribute beyond what the core's ints hold
            raise ValueError(f"Model '{self.name}': a layer's size or attribute is too large: "
                             f"{e}") from None
        core.set_output(nodes if len(nodes) > 1 else nodes[0])
        self._core = core
        self._built_shape = sample_shape
        self._trainable_flags = self._current_trainable_flags()
        self._output_sample_shapes = [tuple(core.node_shape(n)) for n in nodes]
        self._output_sample_shape = self._output_sample_shapes[0]
        if self._compiled and self._losses:
            self._compile_core()
        elif self._compiled and self.optimizer is not None:
            self.optimizer._bind(core)  # compiled without a loss: the optimizer alone

    # -- inputs whose lengths come from the data (Input(shape=(None, ...))) ------------------------
    # The model keeps the graph with None dims as its template; a core is built for the shapes of
    # the data it runs on and rebuilt when they change, the weights, the optimizer's state and the
    # random stream carried over. One core is held at a time, so memory stays bounded however
    # many lengths are seen; a traced call() is traced once per concrete shape (bounded cache).
    def _defer_core(self, layers: list, shapes: list) -> None:
        self._build_layers(layers, shapes[0])
        self._dyn_shapes = [tuple(s) for s in shapes]
        self._concrete = None
        self._core = None
        self._built_shape = None
        self._output_sample_shapes = self._template_output_shapes(layers, shapes[0])
        self._output_sample_shape = self._output_sample_shapes[0]
        self._trainable_flags = self._current_trainable_flags()

    def _template_output_shapes(self, layers: list, sample_shape: tuple) -> list[tuple]:
        shape = (None,) + tuple(sample_shape)
        for layer in layers:
            shape = layer.compute_output_shape(shape)
        return [tuple(shape[1:])]

    def _use_shapes(self, shapes: list) -> None:
        """Makes the core the one for inputs of these per-sample shapes (a dynamic model)."""
        template = self._dyn_shapes
        shapes = [tuple(int(d) for d in s) for s in shapes]
        for k, (got, want) in enumerate(zip(shapes, template)):
            if len(got) != len(want) or any(w is not None and g != w for g, w in zip(got, want)):
                name = self._input_names[k] if len(template) > 1 else "x"
                raise ValueError(f"Input {name} of model '{self.name}' has shape "
                                 f"{shape_str((None,) + want)}, but the data has shape "
                                 f"{shape_str((None,) + got)}")
        if self._core is not None and self._concrete == shapes:
            return
        state = self._training_state()
        self._concrete = shapes
        self._build_concrete(shapes)
        self._restore_training_state(state)

    def _build_concrete(self, shapes: list) -> None:
        dyn = self._dyn_shapes
        self._dyn_shapes = None  # a concrete build
        try:
            Model._build_core(self, shapes[0])
        finally:
            self._dyn_shapes = dyn
        self._built_shape = None  # the template stays the model's shape

    def _training_state(self):
        """What a rebuilt core must carry on: optimizer slots, step count, random stream; the
        old core itself (its buffers are read once the new one is built), or the state a file
        gave before any data came."""
        if self._core is None:
            return vars(self).pop("_pending_state", None)
        return self._core

    def _restore_training_state(self, state) -> None:
        if state is None:
            return
        if isinstance(state, _core.Model):
            # the trainable weights come first in both cores and in the same order, so the
            # slots are one flat copy (a changed set of trainable weights starts them afresh)
            old, new = state.optimizer_state(), self._core.optimizer_state()
            if old.shape == new.shape:
                new[...] = old
            self._core.iterations = state.iterations
            self._core.rng_state = state.rng_state
            return
        from ..saving import _optimizer_slots
        slots, iterations, rng = state
        for name, view in _optimizer_slots(self).items():
            if name in slots and slots[name].shape == view.shape:
                view[...] = slots[name]
        if iterations is not None:
            self._core.iterations = iterations
        if rng is not None:
            self._core.rng_state = rng

    def _current_trainable_flags(self) -> tuple:
        """Which weights train now: the model's, each layer's and each weight's own flag."""
        return tuple(self.trainable and layer.trainable and getattr(layer, a).trainable
                     for layer in _with_inner(self._layers_in_order())
                     for a in layer._weight_attrs)

    def _lower_model(self, core, sample_shape: tuple) -> list[int]:
        """Adds the model's input nodes (node k is input k) and its ops; returns the output
        nodes."""
        return [self._lower(core, core.add_input(tuple(sample_shape), self._input_dtype))]

    @property
    def _n_outputs(self) -> int:
        return max(1, len(self._output_names))

    def _build_layers(self, layers: list, sample_shape: tuple) -> None:
        """Builds the layers of a stack, each on the output shape of the one before."""
        shape = (None,) + tuple(sample_shape)
        for layer in layers:
            if not layer.built:
                layer.build(shape)
            shape = layer.compute_output_shape(shape)
            if isinstance(shape, list):
                raise ValueError(f"Layer '{layer.name}' has several outputs (return_state, or "
                                 "Bidirectional with merge_mode=None): a Sequential model "
                                 "takes one; use the functional API")

    def _lower(self, core, node: int) -> int:
        """Adds the stack's ops after the input node; returns the output node."""
        layers = self._layers_in_order()
        relu_after = False
        for layer, nxt in zip(layers, layers[1:] + [None]):
            try:
                if _relu_before_max_pool(layer, nxt):
                    node = layer.lower(core, node, activation=False)
                    relu_after = True
                    continue
                node = layer.lower(core, node)
                if isinstance(node, (list, tuple)):
                    raise ValueError("it has several outputs (return_state, or Bidirectional "
                                     "with merge_mode=None): a Sequential model takes one; use "
                                     "the functional API")
                if relu_after:
                    node, _ = core.add_node("relu", (node,))
                    relu_after = False
            except ValueError as e:
                raise ValueError(f"Layer '{layer.name}': {e}") from None
        return node

    def _ensure_built(self, x: np.ndarray) -> None:
        if vars(self).get("_dyn_shapes"):
            self._use_shapes([x.shape[1:]])
        elif self._core is None:
            self._build_core(x.shape[1:])

    def build(self, input_shape) -> None:
        """Builds the model for inputs of `input_shape` (batch axis first, may be None)."""
        if self._is_subclassed():
            from ..layers.input_layer import Input
            shapes = input_shape if isinstance(input_shape, list) else [input_shape]
            ins = [Input(shape=tuple(sh)[1:]) for sh in shapes]
            self._trace_call(ins if isinstance(input_shape, list) else ins[0])
            return
        self._build_core(tuple(input_shape)[1:])

    # -- subclassed models: layers made in __init__, wired by call() -----------------------------
    def _is_subclassed(self) -> bool:
        """Whether this is a subclass of Model with a call() of its own, not yet traced."""
        from .functional import Functional
        from .sequential import Sequential
        return callable(getattr(type(self), "call", None)) and \
            not isinstance(self, (Functional, Sequential))

    def _build_from_data(self, x) -> None:
        """A subclassed model's first use on data: its call() traced on inputs of the data's
        per-sample shapes and dtypes, then built as the functional model that trace is."""
        if not self._is_subclassed():
            return
        from ..layers.input_layer import Input

        def spec(a):
            a = np.asarray(a)
            if a.ndim < 1:
                raise ValueError(f"Model '{self.name}': inputs need a batch axis")
            return Input(shape=a.shape[1:], dtype="int32" if a.dtype.kind in "iub"
                         else "float32")
        if isinstance(x, dict):
            ins = {k: spec(v) for k, v in x.items()}
        elif isinstance(x, (list, tuple)) and x and all(isinstance(v, (np.ndarray, Tensor))
                                                        for v in x):
            ins = [spec(v) for v in x] if len(x) > 1 else spec(x[0])
        else:
            ins = spec(x)
        self._trace_call(ins)

    def _trace_call(self, inputs) -> None:
        from ..layers import tracing
        outputs, added = tracing.run_model_call(self, inputs)
        self.__class__ = _with_functional(type(self))
        self._init_graph(inputs, outputs)
        self._added_losses = added

    def _tracked(self) -> list:
        """The layers and models held in this model's attributes (directly, or in lists, tuples
        and dicts), as Keras tracks them."""
        from ..layers.base import Layer
        out, seen = [], {id(self)}

        def add(v):
            if isinstance(v, (Layer, Model)) and id(v) not in seen:
                seen.add(id(v))
                out.append(v)
            elif isinstance(v, (list, tuple)):
                for x in v:
                    add(x)
            elif isinstance(v, dict):
                for x in v.values():
                    add(x)
        for k, v in vars(self).items():
            if not k.startswith("_") or k in ("_layers",):
                add(v)
        return out

    # -- the steps fit, evaluate and predict run (Keras 3's Trainer) ------------------------------
    def _custom(self, step: str) -> bool:
        """Whether `step` runs in Python: the subclass overrides it, or (train and test) the
        model was compiled without a loss."""
        mine = getattr(type(self), step) is not getattr(Model, step)
        if step == "predict_step":
            return mine or self._core is None and not self._is_subclassed()
        # losses added in call() (add_loss) are computed on the tape, with the compiled ones
        return mine or not self._losses or self._adds_losses()

    def _adds_losses(self) -> bool:
        """Whether the model's call, or a layer's call in it, adds losses (add_loss)."""
        if vars(self).get("_added_losses"):
            return True
        for layer in self._all_layers():
            for trace in vars(layer).get("_traces", {}).values():
                if trace.losses:
                    return True
        return False

    def train_step(self, data):
        """One training step on a batch `data` ((x,), (x, y) or (x, y, sample_weight) Tensors),
        on the tape: forward, compute_loss, gradients, optimizer.apply; returns the metrics'
        results. fit runs it when a subclass overrides it or the model has no compiled loss
        (otherwise the core runs the same step fused)."""
        from ..tensor import GradientTape
        x, y, sw = unpack_x_y_sample_weight(data)
        with GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sw)
        weights = self.trainable_weights
        self.optimizer.apply(tape.gradient(loss, weights), weights)
        return self.compute_metrics(x, y, y_pred, sw, loss=loss)

    def test_step(self, data):
        """One evaluation step on a batch: forward, compute_loss, metrics."""
        x, y, sw = unpack_x_y_sample_weight(data)
        with no_grad():
            y_pred = self(x, training=False)
            extra = {"training": False} if _takes_arg(type(self).compute_loss, "training") \
                else {}
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sw, **extra)
        return self.compute_metrics(x, y, y_pred, sw, loss=loss)

    def predict_step(self, data):
        """The model's outputs for a batch (as NumPy arrays)."""
        x, _, _ = unpack_x_y_sample_weight(data)
        with no_grad():
            out = self(x, training=False)
        if isinstance(out, dict):
            return {k: np.asarray(v) for k, v in out.items()}
        if isinstance(out, (list, tuple)):
            return [np.asarray(v) for v in out]
        return np.asarray(out)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled losses of y_pred against y (weighted per output), plus the losses the
        model's layers added (`model.losses`): a scalar Tensor."""
        from .. import ops
        total = None
        if self._losses:
            preds = y_pred if isinstance(y_pred, (list, tuple)) else (
                list(y_pred.values()) if isinstance(y_pred, dict) else [y_pred])
            ys = y if isinstance(y, (list, tuple)) else (
                [y[k] for k in self._output_names] if isinstance(y, dict) else [y])
            for lo, w, yt, yp in zip(self._losses, self._loss_weights, ys, preds):
                term = lo(yt, yp, sample_weight=sample_weight) if sample_weight is not None \
                    else lo(yt, yp)
                term = term if w == 1.0 else ops.multiply(term, w)
                total = term if total is None else ops.add(total, term)
        for extra in self.losses:
            total = extra if total is None else ops.add(total, extra)
        if total is None:
            raise ValueError(f"Model '{self.name}' has no loss to compute: compile it with a "
                             "loss, add losses with add_loss, or override train_step")
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None, loss=None) -> dict:
        """Updates `model.metrics` with the batch (the loss tracker with the loss) and returns
        their results."""
        for m in self.metrics:
            if m.name == "loss":
                if loss is not None:
                    m.update_state(loss)
            else:
                m.update_state(y, y_pred, sample_weight)
        return self.get_metrics_result()

    def get_metrics_result(self) -> dict:
        out = {}
        for m in self.metrics:
            r = m.result()
            if isinstance(r, dict):
                out.update(r)
            else:
                out[m.name] = r
        return out

    @property
    def metrics(self) -> list:
        """The metrics a Python step updates and fit resets each epoch: the loss tracker, then
        the compiled metrics (as one entry, `compile_metrics`), as Keras 3 lists them."""
        if not self._compiled:
            return []
        tracker = vars(self).get("_loss_tracker")
        if tracker is None:
            tracker = self._loss_tracker = metrics_mod.Mean(name="loss")
        out = [tracker]  # Keras 3 tracks the loss whenever the model is compiled
        if self._metric_objs:
            cm = vars(self).get("_compile_metrics")
            if cm is None or cm.metrics != self._metric_objs:
                cm = self._compile_metrics = metrics_mod.CompileMetrics(
                    self._metric_objs, self._metric_names)
            out.append(cm)
        return out

    def add_loss(self, loss) -> None:
        """Adds a loss term in the model's call(), as a layer's add_loss (see Layer.add_loss)."""
        from ..layers.base import Layer
        Layer.add_loss(self, loss)

    @property
    def losses(self) -> list:
        """The losses the model's layers added in their last call on data (add_loss), then
        their weights' regularization penalties, as scalar Tensors."""
        from ..layers.base import layer_losses
        from ..layers.tracing import _layers_below
        return layer_losses(_layers_below(self))

    def _all_layers(self) -> list:
        layers = self._layers_in_order() or [x for x in self._tracked()
                                             if not isinstance(x, Model)]
        return _with_inner(layers)

    @property
    def trainable_variables(self) -> list:
        return self.trainable_weights

    @property
    def non_trainable_variables(self) -> list:
        return self.non_trainable_weights

    @property
    def variables(self) -> list:
        return self.weights

    @property
    def output_shape(self):
        """(None, ...) of the output; a list (or dict) of them for several outputs."""
        self._assert_built("output_shape")
        return self._pack_outputs([(None,) + tuple(s) for s in self._output_sample_shapes])

    def _pack_outputs(self, values):
        """values (one per output) as the model's outputs are structured: one, a list, a dict."""
        if self._output_struct == "single":
            return values[0]
        if self._output_struct == "dict":
            return dict(zip(self._output_names, values))
        return list(values)

    def _assert_built(self, what: str) -> None:
        if vars(self).get("_dyn_shapes"):
            return  # the template answers; a core comes with data
        if self._core is None and getattr(self, "_sample_shape", None) is not None:
            self._build_core(self._sample_shape)  # its core went to a model sharing its layers
        if self._core is None:
            raise ValueError(f"Model '{self.name}' has not been built yet, so {what} is unknown: "
                             "give it an Input, an input_shape, or call it on data first")

    # -- compile --------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1,
                jit_compile="auto", auto_scale_loss=True) -> None:
        """Configures training.

        Args:
            optimizer: name ('adam', 'sgd', ...) or a pynn.optimizers instance.
            loss: name ('sparse_categorical_crossentropy', 'mse', ...) or a pynn.losses instance;
                with several outputs, one loss for all of them, a list (one per output) or a
                dict keyed by output name.
            loss_weights: with several outputs, a list or a dict of floats (default 1.0 each):
                the loss minimised is the sum of weight * loss over the outputs.
            metrics: list of names ('accuracy', 'mae', ...) or pynn.metrics instances; with
                several outputs, a list with one entry (a metric or a list) per output, or a
                dict {output name: metric or list}, as Keras 3 takes them.

        Example:
            >>> model.compile(optimizer="adam", loss="mse", metrics=["mae"])
        """
        if weighted_metrics is not None:
            raise ValueError("compile: weighted_metrics is not supported")
        if steps_per_execution != 1:
            raise ValueError("compile: only steps_per_execution=1 is supported")
        opt = optimizers.get(optimizer)
        n_out = self._n_outputs
        names = self.output_names or ["output"]
        # without a loss: a model whose train_step (or its layers' add_loss) makes one
        loss_objs = [] if loss is None else [losses.get(spec) for spec in
                                             self._per_output(loss, "loss", names)]
        weights = self._loss_weight_list(loss_weights, names)
        specs = self._metric_lists(metrics, names)
        loose = []  # without a loss: metric objects for a Python step (one output)
        if loss is None and any(specs):
            if n_out > 1:
                raise ValueError("compile: metrics without a loss take a model with one output")
            for m in specs[0]:
                if isinstance(m, str) and m in metrics_mod._ACCURACY:
                    raise ValueError(f"compile: metric '{m}' takes its form from the loss; "
                                     "without a loss name the metric (such as pynn.metrics."
                                     "SparseCategoricalAccuracy())")
                loose.append(metrics_mod.resolve(m, "", 0))
        for objs, lo in zip(specs, loss_objs):  # unknown names fail here, before state changes
            for m in objs:
                metrics_mod.resolve(m, lo.core_name, 0)
            if len(objs) > 8:
                raise ValueError("compile: at most 8 metrics" + (" per output" if n_out > 1
                                                                 else ""))
        self.optimizer, self._metric_specs = opt, specs
        self._losses, self._loss_weights = loss_objs, weights
        self.loss = loss_objs[0] if n_out == 1 and loss_objs else loss
        self._compiled = True
        if loss is None:
            self._metric_names = [k for k, _ in loose]
            self._metric_objs = [m for _, m in loose]
        if self._core is not None and loss is None:
            self.optimizer._bind(self._core)
        elif self._core is not None:
            if self._current_trainable_flags() != self._trainable_flags:
                # a layer was frozen or unfrozen since the build: as in Keras, compile makes it
                # count; the core is rebuilt around the same weight values (and compiled)
                self._build_core(self._built_shape)
            else:
                self._compile_core()

    def _per_output(self, value, what: str, names: list) -> list:
        """compile's `loss`: one for all outputs, a list (one per output) or a dict by name."""
        if not isinstance(value, (dict, list, tuple)):
            return [value] * len(names)
        problem, detail = _by_name(value, names)
        n = len(names)
        if problem == "unknown":
            raise ValueError(f"compile: {what} names output '{detail}', which model "
                             f"'{self.name}' does not have; its outputs are {names}")
        if problem == "missing":
            raise ValueError(f"compile: {what} is a dict without an entry for output "
                             f"'{detail}'; expected keys {names}")
        if problem == "count":
            raise ValueError(f"compile: {what} is a list of {detail}, but model "
                             f"'{self.name}' has {n} output{'s' if n > 1 else ''}")
        return detail

    def _loss_weight_list(self, loss_weights, names: list) -> list[float]:
        n = len(names)
        if loss_weights is None:
            return [1.0] * n
        if isinstance(loss_weights, dict):
            unknown = [k for k in loss_weights if k not in names]
            if unknown:
                raise ValueError(f"compile: loss_weights names output '{unknown[0]}', which "
                                 f"model '{self.name}' does not have; its outputs are {names}")
            weights = [loss_weights.get(k, 1.0) for k in names]
        elif isinstance(loss_weights, (list, tuple)):
            if len(loss_weights) != n:
                raise ValueError(f"compile: loss_weights is a list of {len(loss_weights)}, but "
                                 f"model '{self.name}' has {n} output{'s' if n > 1 else ''}")
            weights = list(loss_weights)
        elif n == 1:
            weights = [loss_weights]
        else:
            raise ValueError("compile: with several outputs, loss_weights must be a list or a "
                             f"dict, got {loss_weights!r}")
        out = []
        for w in weights:
            if isinstance(w, bool) or not isinstance(w, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(w):
                raise ValueError(f"compile: loss weights must be finite numbers, got {w!r}")
            out.append(float(w))
        return out

    def _metric_lists(self, metrics, names: list) -> list[list]:
        """compile's `metrics` as one list per output, following Keras 3."""
        n = len(names)
        if metrics is None:
            return [[] for _ in names]
        if not isinstance(metrics, (str, metrics_mod.Metric, list, tuple, dict)):
            raise TypeError(f"compile: metrics must be a list (or a dict by output) of metric "
                            f"names or instances, got {type(metrics).__name__}")
        if n == 1:
            if isinstance(metrics, (str, metrics_mod.Metric)):
                metrics = [metrics]
            if isinstance(metrics, dict):
                if self._output_names and any(k not in names for k in metrics):
                    bad = [k for k in metrics if k not in names][0]
                    raise ValueError(f"compile: metrics names output '{bad}', which model "
                                     f"'{self.name}' does not have; its outputs are {names}")
                if not self._output_names:
                    raise ValueError("compile: metrics as a dict need named outputs; pass a "
                                     "list")
                flat = []
                for v in metrics.values():
                    flat.extend(v if isinstance(v, (list, tuple)) else [v])
                metrics = flat
            return [list(metrics)]
        if isinstance(metrics, dict):
            unknown = [k for k in metrics if k not in names]
            if unknown:
                raise ValueError(f"compile: metrics names output '{unknown[0]}', which model "
                                 f"'{self.name}' does not have; its outputs are {names}")
            return [_as_list(metrics.get(k)) for k in names]
        if isinstance(metrics, (list, tuple)):
            if len(metrics) != n:
                raise ValueError(
                    f"compile: for a model with several outputs, metrics given as a list need "
                    f"one entry (a metric or a list of them) per output: model '{self.name}' "
                    f"has {n} outputs {names}, got a list of {len(metrics)}")
            return [_as_list(m) for m in metrics]
        raise ValueError("compile: with several outputs, metrics must be a list (one entry per "
                         f"output) or a dict keyed by output name, got {metrics!r}")

    def _compile_core(self) -> None:
        n_out = len(self._losses)
        if n_out != self._n_outputs:
            raise ValueError(f"Model '{self.name}' has {self._n_outputs} outputs but was "
                             f"compiled for {n_out}")
        entries, all_names, objs = [], [], []
        for k in range(n_out):
            loss = self._losses[k]
            units = self._output_sample_shapes[k][-1]
            resolved = [metrics_mod.resolve(m, loss.core_name, units)
                        for m in self._metric_specs[k]]
            names = [name for name, _ in resolved]
            if n_out == 1:
                if len(set(names)) != len(names):
                    raise ValueError(f"compile: metric names repeat: {names}")
            else:  # Keras 3: '<output>_<metric>', a repeat gets '_1', '_2', ...
                names = [f"{self._output_names[k]}_{nm}" for nm in names]
            all_names.extend(names)
            entries.append((loss.core_name, loss.from_logits, self._loss_weights[k],
                            [m._spec() for _, m in resolved]))
            objs.extend(m for _, m in resolved)
        if n_out > 1:
            seen: dict = {}
            for i, nm in enumerate(all_names):
                if nm in seen:
                    seen[nm] += 1
                    all_names[i] = f"{nm}_{seen[nm] - 1}"
                else:
                    seen[nm] = 1
        self._core.compile_outputs(entries)
        self._metric_names, self._metric_objs = all_names, objs
        self._metric_core_names = [m.core_name for m in objs]  # for EarlyStopping & co.
        self.optimizer._bind(self._core)

    @property
    def metrics_names(self) -> list[str]:
        """'loss' (the weighted total); with several outputs each output's '<name>_loss'; then
        the metrics: the order of evaluate's list and of a step's results."""
        per_output = ([f"{nm}_loss" for nm in self._output_names] if self._n_outputs > 1
                      else [])
        return ["loss"] + per_output + list(self._metric_names)

    @property
    def _n_means(self) -> int:
        """How many of a step's results are batch means (the losses); the rest are sums."""
        return 1 + (self._n_outputs if self._n_outputs > 1 else 0)

    @property
    def output_names(self) -> list[str]:
        return list(self._output_names) if self._output_names else [
            layer.name for layer in self.layers[-1:]]

    @property
    def input_names(self) -> list[str]:
        return list(self._input_names)

    def _assert_compiled(self, what: str) -> None:
        if not self._compiled:
            raise RuntimeError(f"You must call compile() before {what}")

    # -- data -----------------------------------------------------------------------------------
    def _prepare_x(self, x, what: str = "x"):
        """The inputs as the core takes them: one contiguous array per input (the array itself
        for a one-input model, else a list in input order)."""
        if self._n_inputs > 1:
            return self._prepare_xs(x, what)
        x = self._single_input(x, what)
        x = to_int32(x, what) if self._input_dtype == "int32" else to_float32(x, what)
        if x.ndim == 1:  # a vector of scalars is N samples of one feature, as Keras 2 read it
            x = x.reshape(-1, 1)
        if x.shape[0] == 0:
            raise ValueError(f"{what} is empty: it has no samples")
        self._ensure_built(x)
        want = tuple(self._core.node_shape(0))
        if x.shape[1:] + (1,) == want and len(want) > 1:
            # Keras adds a trailing axis of 1 (images without their channel axis)
            x = np.ascontiguousarray(x.reshape((x.shape[0],) + want))
        if x.shape[1:] != want:
            raise ValueError(f"Input of model '{self.name}' has shape {shape_str((None,) + want)}"
                             f", but the data has shape {shape_str(x.shape)}")
        return x

    def _single_input(self, x, what: str):
        """The one input array of `x`: Keras also accepts it inside a list or a dict."""
        if isinstance(x, dict):
            x = list(x.values())
        elif not _is_arrays(x):
            return x
        if len(x) != 1:
            raise ValueError(f"Model '{self.name}' has 1 input, but {what} holds {len(x)} arrays")
        return x[0]

    def _match(self, data, names: list, what: str, kind: str) -> list:
        """data for several inputs (or outputs) as a list in their order: from a list or tuple
        (in order) or a dict (by name)."""
        n = len(names)
        if isinstance(data, (dict, list, tuple)):
            problem, detail = _by_name(data, names)
            if problem == "unknown":
                raise ValueError(f"{what} has an entry '{detail}', but model '{self.name}' "
                                 f"has no {kind} of that name; its {kind}s are {names}")
            if problem == "missing":
                raise ValueError(f"{what} has no entry for {kind} '{detail}' of model "
                                 f"'{self.name}' (its {kind}s are {names})")
            if problem == "count":
                raise ValueError(f"Model '{self.name}' has {n} {kind}s, but {what} holds "
                                 f"{detail} arrays")
            return detail
        if data is None:
            raise ValueError(f"{what} is missing")
        raise ValueError(f"Model '{self.name}' has {n} {kind}s, but {what} is a single array: "
                         f"pass a list of {n} arrays or a dict keyed by {kind} name {names}")

    def _prepare_xs(self, x, what: str) -> list:
        self._assert_built("its inputs")
        converted = []
        for k, (name, a) in enumerate(zip(self._input_names,
                                          self._match(x, self._input_names, what, "input"))):
            label = f"{what}['{name}']"
            a = (to_int32(a, label) if self._input_dtypes[k] == "int32"
                 else to_float32(a, label))
            converted.append(a.reshape(-1, 1) if a.ndim == 1 else a)
        if vars(self).get("_dyn_shapes"):
            self._use_shapes([a.shape[1:] for a in converted])
        arrays, n = [], None
        for k, (name, a) in enumerate(zip(self._input_names, converted)):
            label = f"{what}['{name}']"
            want = tuple(self._core.node_shape(k))
            if a.shape[1:] != want:
                raise ValueError(f"Input '{name}' of model '{self.name}' has shape "
                                 f"{shape_str((None,) + want)}, but the data has shape "
                                 f"{shape_str(a.shape)}")
            if n is None:
                n = a.shape[0]
            elif a.shape[0] != n:
                raise ValueError(f"Data cardinality is ambiguous: {what}['{self._input_names[0]}'"
                                 f"] has {n} samples but {label} has {a.shape[0]}; make sure "
                                 "all arrays contain the same number of samples")
            arrays.append(a)
        if n == 0:
            raise ValueError(f"{what} is empty: it has no samples")
        return arrays

    def _prepare_y(self, y, n: int, what: str = "y"):
        """The targets as the core takes them: one array per output (the array itself for a
        one-output model, else a list in output order)."""
        if self._n_outputs == 1:
            if isinstance(y, dict) or (_is_arrays(y) and len(y) == 1):
                y = self._single_input(y, what)
            return self._prepare_one_y(y, n, what, 0)
        ys = self._match(y, self._output_names, what, "output")
        return [self._prepare_one_y(a, n, f"{what}['{name}']", k)
                for k, (name, a) in enumerate(zip(self._output_names, ys))]

    def _prepare_one_y(self, y, n: int, what: str, k: int) -> np.ndarray:
        y = to_array(y, what)
        if y.shape[0] != n:
            raise ValueError(f"Data cardinality is ambiguous: x has {n} samples but {what} has "
                             f"{y.shape[0]}; make sure all arrays contain the same number of "
                             "samples")
        out = tuple(self._output_sample_shapes[k])
        if self._losses[k].core_name == "sparse_categorical_crossentropy":
            classes = out[-1]
            want = int(np.prod(out[:-1], dtype=np.int64))
            if y.size != n * want:
                raise ValueError(f"{what}: sparse_categorical_crossentropy needs one integer label"
                                 f" per sample (shape {shape_str((None,) + out[:-1])}), got "
                                 f"{shape_str(y.shape)}")
            if y.dtype.kind == "f" and not np.array_equal(y, np.floor(y)):
                raise ValueError(f"{what}: class labels must be integers")
            lo, hi = (y.min(), y.max()) if y.size else (0, 0)
            if lo < 0 or hi >= classes:
                raise ValueError(f"{what}: labels must lie in 0..{classes - 1} for an output of "
                                 f"{classes} classes, got values from {lo} to {hi}")
            return np.ascontiguousarray(y.reshape((n,) + out[:-1]), dtype=np.int32)
        want = int(np.prod(out, dtype=np.int64))
        if y.size != n * want:
            raise ValueError(f"{what}: the model's output has shape {shape_str((None,) + out)}, "
                             f"the targets have shape {shape_str(y.shape)}")
        return np.ascontiguousarray(y.reshape((n,) + out), dtype=np.float32)

    # -- fit ------------------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs: int = 1, verbose="auto",
            callbacks=None, validation_split: float = 0.0, validation_data=None,
            shuffle: bool = True, class_weight=None, sample_weight=None, initial_epoch: int = 0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None,
            validation_freq: int = 1) -> History:
        """Trains the model.

        Args:
            x, y: inputs and targets (NumPy arrays, pandas objects or nested lists); or, as x
                alone, a pynn.utils.PyDataset or a generator yielding (x, y) or (x, y,
                sample_weight) batches.
            batch_size: samples per step (32).
            epochs: the epoch to stop after.
            verbose: 'auto' or 1 (a progress bar), 2 (a line per epoch), 0 (silent).
            callbacks: a list of pynn.callbacks.Callback.
            validation_split: fraction of the data, taken from its end, to validate on.
            validation_data: (x_val, y_val) or (x_val, y_val, val_sample_weight) to validate
                on instead.
            shuffle: shuffle the training samples every epoch.
            class_weight: {class index: weight} multiplying each sample's loss by its class's
                weight (one-output models).
            sample_weight: a weight per sample multiplying its loss (for several outputs, a
                list or dict with one array, or None, per output).
            initial_epoch: the epoch to start at (to resume a run).
            steps_per_epoch: batches per epoch (default: all the data; a generator without it
                is read until it ends, once).
            validation_steps: batches of a PyDataset or generator validation_data to use.

        Returns:
            A History whose `.history` maps 'loss', each metric and their 'val_' versions to a
            list of per-epoch values.
        """
        self._assert_compiled("fit")
        verbose = _resolve_verbose(verbose)
        batch_size = _check_batch_size(batch_size)
        if not is_batch_source(x):
            self._build_from_data(x)
        if self._custom("train_step"):
            from . import trainer
            if class_weight is not None:
                raise ValueError("fit: class_weight is not supported with a Python train_step")
            return trainer.fit(self, x, y, batch_size, epochs, verbose, callbacks,
                               validation_split, validation_data, shuffle, sample_weight,
                               initial_epoch, steps_per_epoch, validation_steps)
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative int, got {epochs!r}")
        if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) \
                or not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split must be a number in [0, 1), got "
                             f"{validation_split!r}")
        if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, (int, np.integer)) \
                or initial_epoch < 0:
            raise ValueError(f"initial_epoch must be a non-negative int, got {initial_epoch!r}")
        if isinstance(validation_freq, bool) or not isinstance(validation_freq, int) \
                or validation_freq < 1:
            raise ValueError("validation_freq must be a positive int")
        if is_batch_source(x):
            for name, value in (("y", y), ("sample_weight", sample_weight)):
                if value is not None:
                    raise ValueError(f"fit: `{name}` must be None when x is a PyDataset or a "
                                     "generator: each batch holds its targets and weights")
            if validation_split:
                raise ValueError("fit: validation_split needs arrays; give validation_data")
            train = BatchSource(x, steps_per_epoch, "fit")
            steps = train.steps
        else:
            x = self._prepare_x(x)
            y = self._prepare_y(y, _rows(x))
            sw = self._prepare_weights(sample_weight, None, y, _rows(x))
        val = None
        if is_batch_source(validation_data):
            val = BatchSource(validation_data, validation_steps, "validation_data")
        elif validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be a tuple (x_val, y_val) or (x_val, "
                                 "y_val, val_sample_weight)")
            xv = self._prepare_x(validation_data[0], "validation x")
            yv = self._prepare_y(validation_data[1], _rows(xv), "validation y")
            swv = validation_data[2] if len(validation_data) == 3 else None
            val = (xv, yv, self._prepare_weights(swv, None, yv, _rows(xv),
                                                 "validation sample_weight"))
        elif validation_split:
            n = _rows(x)
            split = int(math.floor(n * (1.0 - validation_split)))
            if split == 0 or split == n:
                raise ValueError(f"validation_split={validation_split} leaves no training or no "
                                 f"validation samples out of {n}")
            head, tail = slice(None, split), slice(split, None)
            val = (_take(x, tail), _take(y, tail), _take_weights(sw, tail))
            x, y, sw = _take(x, head), _take(y, head), _take_weights(sw, head)
        val_batch = _check_batch_size(batch_size if validation_batch_size is None
                                      else validation_batch_size)
        if not is_batch_source(x):
            # class weights weigh the training samples only (validation keeps sample weights)
            train = (x, y, self._prepare_weights(sw, class_weight, y, _rows(x)))
            steps = -(-_rows(x) // batch_size)
            if check_steps(steps_per_epoch, "fit") is not None:
                steps = min(steps, steps_per_epoch)
        cb = callbacks if isinstance(callbacks, CallbackList) else CallbackList(
            callbacks, add_history=True, add_progbar=verbose != 0, model=self,
            verbose=verbose, epochs=epochs, steps=steps)
        self._validates = val is not None
        core = self._core
        opt = self.optimizer
        scheduled = opt._schedule is not None
        self.stop_training = False
        begin = cb.wants("on_train_batch_begin")
        end = cb.wants("on_train_batch_end")
        logs: dict = {}
        cb.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            cb.on_epoch_begin(epoch)
            totals = _Totals(self)
            batches = self._train_batches(train, batch_size, steps, shuffle, class_weight)
            for step, (bx, by, idx, bsw, b) in enumerate(batches):
                if begin:
                    cb.batch("on_train_batch_begin", step)
                if scheduled:
                    opt._apply_schedule()
                r = core.train_step(bx, by, idx, bsw)
                totals.add(r, b)
                if end:
                    cb.batch("on_train_batch_end", step, totals.logs(sort=True))
                if self.stop_training:
                    break
            if not totals.seen and isinstance(train, BatchSource):
                warnings.warn("Your input ran out of data; interrupting training. Make sure "
                              "that your dataset or generator can generate at least "
                              "`steps_per_epoch * epochs` batches.", stacklevel=2)
                break
            logs = totals.logs(sort=True) if totals.seen else {}
            if val is not None and (epoch + 1) % validation_freq == 0:
                cb.on_test_begin()
                vlogs = self._evaluate_batches(self._test_batches(val, val_batch), cb)
                cb.on_test_end(vlogs)
                logs.update({"val_" + k: v for k, v in vlogs.items()})
                logs = dict(sorted(logs.items()))
            cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        cb.on_train_end(logs)
        return self.history

    # -- evaluate / predict ---------------------------------------------------------------------
    def _train_batches(self, train, batch_size: int, steps, shuffle: bool, class_weight):
        """One epoch of training batches as (x, y, idx, sample_weight, size): rows idx of the
        arrays (shuffled), or a BatchSource's batches, prepared."""
        if isinstance(train, BatchSource):
            for bx, by, bsw in train.epoch():
                bx, by, bsw, b = self._prepare_batch(bx, by, bsw, class_weight, "fit")
                yield bx, by, None, bsw, b
            return
        x, y, sw = train
        n = _rows(x)
        order = pn_random.generator().permutation(n) if shuffle else np.arange(n)
        for step in range(steps):
            idx = order[step * batch_size:(step + 1) * batch_size]
            yield x, y, idx, sw, idx.shape[0]

    def _test_batches(self, data, batch_size: int):
        """Batches of (x, y, sample_weight) arrays or of a BatchSource, as (x, y, None,
        sample_weight, size)."""
        if isinstance(data, BatchSource):
            for bx, by, bsw in data.epoch():
                bx, by, bsw, b = self._prepare_batch(bx, by, bsw, None, "evaluate")
                yield bx, by, None, bsw, b
            return
        x, y, sw = data
        n = _rows(x)
        for start in range(0, n, batch_size):
            rows = slice(start, start + batch_size)
            yield _take(x, rows), _take(y, rows), None, _take_weights(sw, rows), \
                min(batch_size, n - start)

    def _prepare_batch(self, x, y, sw, class_weight, what: str):
        """One batch from a PyDataset or generator, made ready for a core step."""
        if y is None:
            raise ValueError(f"{what}: each batch must hold its targets, (x, y) or (x, y, "
                             "sample_weight); this one holds only x")
        x = self._prepare_x(x, f"{what}: a batch's x")
        n = _rows(x)
        y = self._prepare_y(y, n, f"{what}: a batch's y")
        return x, y, self._prepare_weights(sw, class_weight, y, n), n

    def _evaluate_batches(self, batches, cb=None) -> dict:
        """The loss and metrics over (x, y, idx, sample_weight, size) batches; calls the test
        batch hooks of `cb` (a CallbackList) that some callback defines."""
        totals = _Totals(self)
        begin = cb is not None and cb.wants("on_test_batch_begin")
        end = cb is not None and cb.wants("on_test_batch_end")
        self.stop_evaluating = False
        for step, (bx, by, _, bsw, b) in enumerate(batches):
            if begin:
                cb.batch("on_test_batch_begin", step)
            r = self._core.test_step(bx, by, None, bsw)
            totals.add(r, b)
            if end:
                cb.batch("on_test_batch_end", step, totals.logs(sort=True))
            if self.stop_evaluating:
                break
        if not totals.seen:
            raise ValueError("evaluate: the data holds no batches")
        return totals.logs()  # in metrics_names order, as Keras's evaluate returns them

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict: bool = False):
        """Returns the loss (a float) when there are no metrics and one output, else [loss,
        *output_losses, *metrics] in the order of `metrics_names` (or a dict with
        return_dict=True), averaged over all samples."""
        self._assert_compiled("evaluate")
        verbose = _resolve_verbose(verbose)
        batch_size = _check_batch_size(batch_size)
        check_steps(steps, "evaluate")
        if not is_batch_source(x):
            self._build_from_data(x)
        if self._custom("test_step"):
            from . import trainer
            return trainer.evaluate(self, x, y, batch_size, verbose, sample_weight, steps,
                                    callbacks, return_dict)
        if is_batch_source(x):
            if y is not None or sample_weight is not None:
                raise ValueError("evaluate: `y` and `sample_weight` must be None when x is a "
                                 "PyDataset or a generator: each batch holds them")
            data = BatchSource(x, steps, "evaluate")
            steps = data.steps
        else:
            x = self._prepare_x(x)
            y = self._prepare_y(y, _rows(x))
            data = (x, y, self._prepare_weights(sample_weight, None, y, _rows(x)))
            steps = -(-_rows(x) // batch_size)
        cb = callbacks if isinstance(callbacks, CallbackList) else CallbackList(
            callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1,
            steps=steps)
        cb.on_test_begin()
        logs = self._evaluate_batches(self._test_batches(data, batch_size), cb)
        cb.on_test_end(logs)
        if return_dict:
            return logs
        values = [logs[k] for k in self.metrics_names]
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Returns the model's outputs for `x` as a float32 NumPy array (the caller owns it); a
        list of them (a dict, by output name) for a model with a list (dict) of outputs."""
        if not is_batch_source(x):
            self._build_from_data(x)
        if self._custom("predict_step"):
            from . import trainer
            return trainer.predict(self, x, _check_batch_size(batch_size),
                                   _resolve_verbose(verbose), steps, callbacks)
        core = self._core
        if (verbose == 0 and callbacks is None and batch_size is None and steps is None
                and core is not None and self._fast_dtype is not None
                and not vars(self).get("_dyn_shapes")):
            # the latency path: one float array of the input's dtype, checked by the core
            out = core.predict_array(x)
            if out is not NotImplemented:
                return out if self._output_struct == "single" else self._wrap(out)
        batch_size = _check_batch_size(batch_size)
        verbose = _resolve_verbose(verbose)
        check_steps(steps, "predict")
        if is_batch_source(x):  # each batch: x, or a tuple whose first entry is x
            source = BatchSource(x, steps, "predict")
            batches = (self._prepare_x(bx, "predict: a batch's x") for bx, _, _ in source.epoch())
            n_steps = source.steps
        else:
            x = self._prepare_x(x)
            if not verbose and not callbacks:
                return self._wrap(self._core.predict(x, batch_size))
            n = _rows(x)
            batches = (_take(x, slice(s, s + batch_size)) for s in range(0, n, batch_size))
            n_steps = -(-n // batch_size)
        cb = callbacks if isinstance(callbacks, CallbackList) else CallbackList(
            callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1,
            steps=n_steps)
        begin = cb.wants("on_predict_batch_begin")
        end = cb.wants("on_predict_batch_end")
        self.stop_predicting = False
        cb.on_predict_begin()
        parts = []
        for step, bx in enumerate(batches):
            if begin:
                cb.batch("on_predict_batch_begin", step)
            part = self._core.predict(bx, max(batch_size, _rows(bx)))
            parts.append(part if isinstance(part, list) else [part])
            if end:
                cb.batch("on_predict_batch_end", step, {"outputs": self._wrap(part)})
            if self.stop_predicting:
                break
        cb.on_predict_end()
        if not parts:
            raise ValueError("predict: the data holds no batches")
        return self._wrap([np.concatenate(p) for p in zip(*parts)])

    def _wrap(self, out):
        """The core's predict result (an array, or a list for several outputs) as the model's
        outputs are structured."""
        if self._output_struct == "single":
            return out[0] if isinstance(out, list) else out
        return self._pack_outputs(out if isinstance(out, list) else [out])

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None,
                       return_dict: bool = False):
        """One training step on the whole of (x, y): forward, loss, backward, update.

        Returns:
            The batch's loss (a float) when there are no metrics, else [loss, *metrics], or a
            dict with return_dict=True, as Keras returns them.
        """
        return self._on_batch(x, y, return_dict, True, sample_weight, class_weight)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict: bool = False):
        """The loss and metrics of (x, y) as one batch, without updating anything."""
        return self._on_batch(x, y, return_dict, False, sample_weight)

    def _prepare_weights(self, sample_weight, class_weight, y, n: int,
                         what: str = "sample_weight"):
        """The per-sample loss weights a step takes: None, or (one output) a float32 vector of
        n, or a list with a vector or None per output. sample_weight times, for class_weight,
        the weight of each sample's class (read from y as Keras reads it: the integer label,
        the argmax of a one-hot row, or a rounded single value)."""
        if sample_weight is None and class_weight is None:
            return None
        names = self._output_names or [self.name]
        if sample_weight is None:
            parts = [None] * len(names)
        elif len(names) > 1 and isinstance(sample_weight, (list, tuple, dict)):
            parts = self._match(sample_weight, names, what, "output")
        else:
            parts = [sample_weight] * len(names)
        out = []
        for part in parts:
            if part is None:
                out.append(None)
                continue
            w = np.asarray(part, dtype=np.float32).reshape(-1)
            if w.shape[0] != n:
                raise ValueError(f"{what} holds {w.shape[0]} weights for {n} samples")
            if not (np.isfinite(w).all() and (w >= 0).all()):
                raise ValueError(f"{what}: weights must be finite and >= 0")
            out.append(w)
        if class_weight is not None:
            if len(names) > 1:
                raise ValueError("`class_weight` is only supported for Models with a single "
                                 "output.")
            if not isinstance(class_weight, dict):
                raise ValueError(f"class_weight must be a dict {{class: weight}}, got "
                                 f"{type(class_weight).__name__}")
            labels = y.reshape(n, -1)
            labels = labels.argmax(-1) if labels.shape[1] > 1 else np.rint(labels[:, 0])
            labels = labels.astype(np.int64)
            table = np.ones(max([int(k) for k in class_weight] + [int(labels.max(initial=0))])
                            + 1, np.float32)
            for k, v in class_weight.items():
                if int(k) < 0 or not (float(v) >= 0 and np.isfinite(float(v))):
                    raise ValueError(f"class_weight: class {k} with weight {v}: classes are "
                                     "indices >= 0 and weights finite and >= 0")
                table[int(k)] = float(v)
            cw = table[np.clip(labels, 0, None)]
            out[0] = cw if out[0] is None else out[0] * cw
        return out[0] if len(out) == 1 else out

    def _on_batch(self, x, y, return_dict: bool, train: bool, sample_weight=None,
                  class_weight=None):
        self._assert_compiled("train_on_batch" if train else "test_on_batch")
        x = self._prepare_x(x)
        n = _rows(x)
        y = self._prepare_y(y, n)
        sw = self._prepare_weights(sample_weight, class_weight, y, n)
        if train:
            self.optimizer._apply_schedule()
        r = (self._core.train_step if train else self._core.test_step)(x, y, None, sw)
        totals = _Totals(self)
        totals.add(r, n)
        logs = totals.logs()
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict_on_batch(self, x):
        """predict for one batch, without batching or progress."""
        x = self._prepare_x(x)
        return self._wrap(self._core.predict(x, _rows(x)))

    def __call__(self, x, training: bool = False):
        """On data: the model run now, returning a `pynn.Tensor`. With training=True (or inside
        a GradientTape, or on a Tensor that requires a gradient) the call is recorded on the tape,
        so `loss.backward()` or `tape.gradient` can reach the weights; training=True also makes
        Dropout drop and BatchNormalization use batch statistics, as in fit.

        On a `pynn.Input` tensor: the model's layers applied to it, so the model nests inside
        another (its layers, and their weights, are shared)."""
        parts = list(x.values()) if isinstance(x, dict) else x
        if isinstance(x, KerasTensor) or (isinstance(parts, (list, tuple)) and parts and all(
                isinstance(t, KerasTensor) for t in parts)):
            return self._call_symbolic(x)
        if self._is_subclassed():
            self._build_from_data(x)
        elif self._core is None and not self._layers_in_order() and self._tracked():
            raise ValueError(f"Model '{self.name}' has no call() and no layers of its own to "
                             "run: call its parts (such as self.encoder) instead")
        if self._adds_losses():  # call() runs in Python, so its add_loss terms are computed
            from ..layers import tracing
            with tracing.eager_call(self):
                if training or _taping():
                    return self._run_python(x, bool(training))
                with no_grad():
                    return self._run_python(x, False)
        x = self._call_inputs(x)
        record = training or _taping() or any(
            isinstance(t, Tensor) and t.requires_grad for t in (x if isinstance(x, list) else [x]))
        if record:
            return self._wrap(self._core.call(x, bool(training)))
        with no_grad():
            return self._wrap(self._core.call(x, False))

    def _run_python(self, x, training: bool):
        """The model run on data in Python, layer call by layer call (each on the tape): a
        subclass's own call(), or the functional graph's calls replayed; what add_loss needs."""
        from ..eager import as_tensor

        def conv(v):
            if isinstance(v, dict):
                return {k: conv(a) for k, a in v.items()}
            if isinstance(v, (list, tuple)):
                return [conv(a) for a in v]
            return v if isinstance(v, Tensor) else as_tensor(np.asarray(v))
        x = conv(x)
        user = getattr(type(self), "_user_class", None)
        if user is not None and "call" in vars(user):
            fn = type(self).call
            return self.call(x, training=training) if _takes_arg(fn, "training") else self.call(x)
        return self._call_symbolic(x, training=training)

    def _call_inputs(self, x):
        """x for a call on data: what _prepare_x makes of it, except that Tensors which need a
        gradient pass as they are, to stay on the tape (the core checks their shapes)."""
        def needs_grad(t):
            return isinstance(t, Tensor) and t.requires_grad

        if self._n_inputs > 1:
            self._assert_built("its inputs")
            parts = self._match(x, self._input_names, "x", "input")
            return list(parts) if any(map(needs_grad, parts)) else self._prepare_xs(parts, "x")
        one = self._single_input(x, "x")
        if needs_grad(one):
            self._ensure_built(one)
            return one
        return self._prepare_x(x)

    def zero_grad(self) -> None:
        """Zeroes the gradients that backward accumulated in the model's weights."""
        if self._core is not None:
            self._core.zero_grads()

    def _call_symbolic(self, x, training=None):
        if self._is_subclassed():  # its call() on the tensors, recorded where it is called
            from ..layers import tracing
            return tracing.run_model_call(self, x)[0]
        extra = {} if training is None else {"training": training}
        for layer in self._layers_in_order():
            x = layer(x, **extra)
        return x

    # -- weights --------------------------------------------------------------------------------
    @property
    def layers(self) -> list:
        return list(self._layers_in_order()) or self._tracked()

    def _weight_lists(self, kind: str) -> list:
        out, seen = [], set()
        for layer in self.layers:
            for w in getattr(layer, kind):
                if id(w) not in seen:
                    seen.add(id(w))
                    out.append(w)
        return out

    @property
    def weights(self) -> list:
        return self._weight_lists("weights")

    @property
    def trainable_weights(self) -> list:
        if not self.trainable:
            return []
        return self._weight_lists("trainable_weights")

    @property
    def non_trainable_weights(self) -> list:
        if not self.trainable:
            return self.weights
        return self._weight_lists("non_trainable_weights")

    def get_weights(self) -> list[np.ndarray]:
        """Copies of all weights, layer by layer, taken together under the model's lock."""
        return read_values(self.weights)

    def set_weights(self, weights) -> None:
        """Writes all weights, layer by layer; every shape is checked before anything changes,
        and the writes happen together under the model's lock (a predict on another thread
        sees the old weights or the new ones, never a mix)."""
        weights = [np.asarray(w, dtype=np.float32) for w in weights]
        mine = self.weights
        if len(weights) != len(mine):
            raise ValueError(f"Model '{self.name}' has {len(mine)} weights, got {len(weights)}")
        for var, value in zip(mine, weights):
            if var.shape != value.shape:
                raise ValueError(f"Weight '{var.path}' has shape {var.shape}, got {value.shape}")
        assign_values(zip(mine, weights))

    def count_params(self) -> int:
        self._assert_built("count_params()")
        return int(sum(w.size for w in self.weights))

    def get_layer(self, name: str | None = None, index: int | None = None):
        """A layer by name or by index."""
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, int) \
                    or not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"get_layer: index {index!r} is out of range for model "
                                 f"'{self.name}' of {len(self.layers)} layers")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: "
                         f"{[layer.name for layer in self.layers]}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"

    def _repr_html_(self) -> str:
        """A notebook shows a built model as its summary table."""
        from html import escape

        from ..utils.summary import summary_html

        if self._core is None:
            return f"<pre>{escape(repr(self))}</pre>"
        return summary_html(self)

    def summary(self, line_length=None, positions=None, print_fn=None, **kwargs) -> None:
        """Prints Keras's table: layers, output shapes, parameter counts."""
        from ..utils.summary import print_summary

        self._assert_built("its summary")
        print_summary(self, line_length=line_length, print_fn=print_fn or
                      (lambda s: print(s, file=sys.stdout)))

    # -- saving (pynn/saving.py does the work) ---------------------------------------------------
    def __reduce__(self):
        """pickle, copy.copy and copy.deepcopy, as Keras 3 does them: through the model's `.keras`
        archive, in memory (config, weights, compile settings, optimizer state and random
        state), so the copy is independent of this model, predicts the same and trains on
        exactly as this one would. The pickle holds only the archive's bytes: unpickling runs no
        code from it."""
        from .. import saving
        return saving._unpickle_model, (saving._archive_bytes(self, "model"),)

    def save(self, filepath, overwrite: bool = True, zipped: bool | None = None) -> None:
        """Saves the model to a `.keras` (or `.pynn`) archive: its architecture and compile
        settings (config.json) and its weights and optimizer state (model.safetensors), so
        `pynn.models.load_model` gives a model that predicts the same and trains on exactly
        where this one stopped. Writes a temporary file and renames it over `filepath`.

        Example:
            >>> model.save("model.keras")
        """
        from .. import saving
        saving.save_model(self, filepath, overwrite=overwrite, zipped=zipped)

    def save_weights(self, filepath, overwrite: bool = True) -> None:
        """Saves the weights to a `.weights.safetensors` file (Keras's `.weights.h5`), each
        named by its path ('dense/kernel'); any safetensors reader can read it."""
        from .. import saving
        saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath, skip_mismatch: bool = False) -> None:
        """Loads weights from a `.weights.safetensors` file (or a `.keras` archive), by weight
        path, or in order when the paths differ and every shape agrees."""
        from .. import saving
        saving.load_weights(self, filepath, skip_mismatch=skip_mismatch)

    def get_config(self) -> dict:
        raise NotImplementedError(f"{type(self).__name__} has no get_config(); pynn serializes "
                                  "Sequential and functional models")

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        """A functional model from `get_config()`'s dict (Sequential has its own)."""
        from .. import saving
        from .functional import Functional
        return saving.functional_from_config(Functional if cls is Model else cls, config,
                                             custom_objects)
