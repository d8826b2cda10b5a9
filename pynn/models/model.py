"""Model: the base of Sequential, functional and subclassed models: building the core from the
layers (with a graph per input shape for inputs whose lengths come from the data), calling the
model on data or on symbolic tensors, weights, summary and saving.

Training and inference (compile, fit, evaluate, predict and their steps) come from Trainer
(trainer.py), as in Keras 3; compile's arguments are resolved in compile_utils.py and the data
is checked and converted in data.py.
"""

import copyreg
import functools
import sys
import weakref

import numpy as np

from .. import _core, constraints
from ..layers.base import _takes_arg, assign_values, lowering, read_values, unique_name
from ..layers.input_layer import KerasTensor
from ..tensor import Tensor, _taping, no_grad
from ..utils import random as pn_random
from ..utils.shape_utils import shape_str
from . import compile_utils
from .data import match, prepare_x, prepare_xs, single_input
from .trainer import Trainer, one_shape_at_a_time


def _refuse_to_pickle(core):
    """pickle and copy of a core model (reached through an optimizer compiled into a model):
    its state lives in C memory and belongs to its pynn model."""
    raise TypeError("A pynn core model (a model's graph, weights and optimizer state, in C "
                    "memory) cannot be pickled or copied by itself: pickle or copy the pynn model "
                    "that holds it (an optimizer compiled into a model goes with the model)")


copyreg.pickle(_core.Model, _refuse_to_pickle)


_FUNCTIONAL_CLASSES: dict = {}


class _Graphs:
    """The graphs of a dynamic model's core, by input shapes, least recently used first."""

    LIMIT = 8

    def __init__(self, core, key: tuple, gid: int, output_shapes: list):
        self.core = core
        self.ids = {key: gid}
        self.outputs = {key: list(output_shapes)}
        self.current = key
        self.stale: list[int] = []  # dropped from the cache, kept by a tape: dropped later

    def use(self, key: tuple):
        """Makes the graph for `key` current; its output shapes, or None when there is none."""
        if key not in self.ids:
            return None
        self.core.use_graph(self.ids[key])
        self.ids[key] = self.ids.pop(key)  # now the most recently used
        self.current = key
        return self.outputs[key]

    def make_room(self) -> None:
        """Drops least recently used graphs down to LIMIT - 1: not the current one, nor one a
        recorded eager call still needs (dropped later, once its tape is gone)."""
        self.stale = [gid for gid in self.stale if not self._drop(gid)]
        for key in list(self.ids):
            if len(self.ids) < self.LIMIT:
                return
            if key != self.current and self._drop(self.ids[key]):
                del self.ids[key], self.outputs[key]

    def _drop(self, gid: int) -> bool:
        try:
            self.core.drop_graph(gid)
            return True
        except RuntimeError:  # held by a tape
            return False

    def add(self, key: tuple, gid: int, output_shapes: list) -> None:
        self.ids[key] = gid
        self.outputs[key] = list(output_shapes)
        self.current = key

    def drop_others(self) -> None:
        """Keeps the current graph only: the others were compiled for an earlier loss."""
        for key in [k for k in self.ids if k != self.current]:
            if not self._drop(self.ids[key]):
                self.stale.append(self.ids[key])
            del self.ids[key], self.outputs[key]



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


@functools.cache
def _graph_kinds() -> tuple:
    """(Functional, Sequential): imported on first use, as they import this module."""
    from .functional import Functional
    from .sequential import Sequential
    return Functional, Sequential


def _with_inner(layers: list) -> list:
    """The layers and, after each, the layers inside it (a traced layer's sublayers and ops),
    each once: every layer whose weights the model's core holds."""
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


def _tensors(value) -> bool:
    """Whether value is a symbolic tensor, or a list, tuple or dict of them."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return bool(value) and all(isinstance(v, KerasTensor) for v in value)
    return isinstance(value, KerasTensor)


class Model(Trainer):
    """Base of all models: the training and inference API of Keras 3 (from Trainer), over a
    core model built from the layers.

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
        # a subclass takes its own arguments (VAE(encoder, decoder)): it is functional only when
        # they are the graph's tensors
        given = args[0] if args else kwargs.get("inputs")
        if functional and not issubclass(cls, (Functional, Sequential)) and _tensors(given):
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
        Trainer.__init__(self)  # compile settings, metrics, history and the stop flags
        self._n_inputs = 1
        self._input_names: list[str] = []
        self._output_names: list[str] = []
        self._output_struct = "single"   # how predict returns: one array, a list, or a dict
        self._input_dtype = "float32"  # or "int32" (indices for an Embedding), from the Input

    # -- building -------------------------------------------------------------------------------
    @property
    def _input_dtype(self) -> str:
        return self._x_dtype.name if self._x_dtype.kind != "U" else "string"

    @_input_dtype.setter
    def _input_dtype(self, name: str) -> None:
        self._x_dtype = np.dtype(name) if name != "string" else np.dtype("U")
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
        owners = []
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
        core.alloc()
        for layer, attr, vid in owners:
            layer._rebind(attr, core, vid)
            reg = layer._weight_regs[layer._weight_attrs.index(attr)]
            if reg is not None:
                core.set_regularizer(vid, reg.l1, reg.l2)
            var = getattr(layer, attr)
            if var.constraint is not None:  # the core applies a built-in one after each update
                constraints.register(core, vid, var.constraint, var.shape, var.path)
        self._lower_graph(core, sample_shape)
        self._core = core
        self._built_shape = sample_shape
        self._trainable_flags = self._current_trainable_flags()
        if self._compiled and self._losses:
            compile_utils.compile_core(self)

    def _lower_graph(self, core, sample_shape: tuple) -> None:
        """Adds the model's nodes and outputs to the core's current graph, and the losses its
        calls add (add_loss), which the core's steps add to the compiled ones."""
        from ..layers import tracing
        try:
            with tracing.collect_losses() as added:
                nodes = self._lower_model(core, sample_shape)
        except OverflowError as e:  # a size or attribute beyond what the core's ints hold
            raise ValueError(f"Model '{self.name}': a layer's size or attribute is too large: "
                             f"{e}") from None
        core.set_output(nodes if len(nodes) > 1 else nodes[0])
        masks = vars(self).pop("_lowered_masks", None) or []
        if any(m is not None for m in masks):  # the losses and metrics leave masked rows out
            core.set_output_masks([-1 if m is None else m for m in masks])
        if added:
            core.set_added_losses(added)
        self._output_sample_shapes = [tuple(core.node_shape(n)) for n in nodes]
        self._output_sample_shape = self._output_sample_shapes[0]

    # -- inputs whose lengths come from the data (Input(shape=(None, ...))) ------------------------
    # The model keeps the graph with None dims as its template. Data of new per-sample shapes
    # gets a graph of its own in the one core, over the same weights, optimizer state and random
    # stream (pn_model_add_graph); the last _MAX_GRAPHS shapes stay built (least recently used
    # dropped first), so memory stays bounded however many lengths are seen. A traced call() is
    # traced once per concrete shape (bounded cache).
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
        """Makes the core's current graph the one for inputs of these per-sample shapes (a
        dynamic model)."""
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
        key = tuple(shapes)
        graphs = vars(self).get("_graphs")
        if self._core is None or graphs is None or graphs.core is not self._core:
            # the first data, or a core rebuilt: a new core whose graph 0 takes these shapes
            state = self._training_state()
            self._concrete = shapes
            self._build_concrete(shapes)
            self._restore_training_state(state)
            self._graphs = _Graphs(self._core, key, 0, self._output_sample_shapes)
            return
        found = graphs.use(key)
        if found is None:
            found = self._add_graph(graphs, key, shapes)
        self._concrete = shapes
        self._output_sample_shapes = list(found)
        self._output_sample_shape = found[0]

    def _add_graph(self, graphs, key: tuple, shapes: list) -> list:
        """Lowers the model for these shapes into a new graph of the core; its output shapes."""
        core, previous = self._core, graphs.current
        graphs.make_room()
        try:
            gid = core.add_graph()
        except RuntimeError:
            raise RuntimeError(
                f"Model '{self.name}' was called on more input shapes than it can hold at once "
                "while a GradientTape keeps each call for its backward: compute the gradients "
                "(or drop the tape) before calling it on further shapes") from None
        dyn, self._dyn_shapes = self._dyn_shapes, None  # a concrete lowering
        concrete, self._concrete = self._concrete, shapes
        try:
            self._lower_graph(core, shapes[0])
            if self._compiled and self._losses:
                compile_utils.compile_graph(self)
        except BaseException:
            core.use_graph(graphs.ids[previous])
            core.drop_graph(gid)
            self._concrete = concrete
            raise
        finally:
            self._dyn_shapes = dyn
        graphs.add(key, gid, self._output_sample_shapes)
        return self._output_sample_shapes

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
        from ..saving.archive import _optimizer_slots
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
        node, mask = self._lower(core, core.add_input(tuple(sample_shape), self._input_dtype))
        self._lowered_masks = [mask]
        return [node]

    @property
    def _n_outputs(self) -> int:
        return max(1, len(self._output_names))

    def _build_layers(self, layers: list, sample_shape: tuple) -> None:
        """Builds the layers of a stack, each on the output shape of the one before (a
        stateful recurrent layer on the batch size the Input fixed, for its states)."""
        shape = (None,) + tuple(sample_shape)
        batch = vars(self).get("_batch_size")
        for layer in layers:
            if not layer.built:
                layer.build((batch,) + tuple(shape[1:]) if getattr(layer, "stateful", False)
                            else shape)
            shape = layer.compute_output_shape(shape)
            if isinstance(shape, list):
                raise ValueError(f"Layer '{layer.name}' has several outputs (return_state, or "
                                 "Bidirectional with merge_mode=None): a Sequential model "
                                 "takes one; use the functional API")

    def _lower(self, core, node: int, mask=None, skip: int = 0) -> tuple:
        """Adds the stack's ops after the input node (whose mask node is `mask`, or None);
        returns the output node and its mask node (or None). The first `skip` layers run
        before the core (on the host: models/host.py)."""
        from ..layers.masking import lower_layer
        for layer in self._layers_in_order()[skip:]:
            try:
                with lowering(core, layer):
                    node, mask = lower_layer(core, layer, node, mask)
                if isinstance(node, (list, tuple)):
                    raise ValueError("it has several outputs (return_state, or Bidirectional "
                                     "with merge_mode=None): a Sequential model takes one; use "
                                     "the functional API")
            except ValueError as e:
                raise ValueError(f"Layer '{layer.name}': {e}") from None
        return node, mask

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
        return callable(getattr(type(self), "call", None)) and \
            not isinstance(self, _graph_kinds())

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
        self._added_losses = added
        self._init_graph(inputs, outputs)

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

    def _adds_losses(self) -> bool:
        """Whether the model's call, or a layer's call in it, adds losses (add_loss)."""
        if vars(self).get("_added_losses"):
            return True
        for layer in self._all_layers():
            for trace in vars(layer).get("_traces", {}).values():
                if trace.losses:
                    return True
        return False

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

    @property
    def output_names(self) -> list[str]:
        return list(self._output_names) if self._output_names else [
            layer.name for layer in self.layers[-1:]]

    @property
    def input_names(self) -> list[str]:
        return list(self._input_names)

    # -- calls on data or on symbolic tensors ----------------------------------------------------
    def _wrap(self, out):
        """The core's predict result (an array, or a list for several outputs) as the model's
        outputs are structured."""
        if self._output_struct == "single":
            return out[0] if isinstance(out, list) else out
        return self._pack_outputs(out if isinstance(out, list) else [out])

    @one_shape_at_a_time
    def __call__(self, x, training=None):
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
        if training is None:  # inherited from the call this one runs in, as in Keras
            from ..layers import tracing
            training = bool(tracing.current_training())
        if self._is_subclassed():
            self._build_from_data(x)
        elif self._core is None and not self._layers_in_order() and self._tracked():
            raise ValueError(f"Model '{self.name}' has no call() and no layers of its own to "
                             "run: call its parts (such as self.encoder) instead")
        if self._adds_losses() or self._masked_outputs():
            # call() runs in Python, so its add_loss terms are computed, and the outputs carry
            # their masks (_keras_mask) for the losses of a custom training loop
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

    def _masked_outputs(self) -> bool:
        """Whether an output of the model carries a mask (Embedding(mask_zero=True) ...)."""
        core = self._core
        return core is not None and any(m >= 0 for m in core.output_masks())

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
        from ..layers import tracing
        x = conv(x)
        user = getattr(type(self), "_user_class", None)
        with tracing.training_scope(training):  # what its layers inherit, as in Keras
            if user is not None and callable(getattr(user, "call", None)):  # its own or inherited
                fn = type(self).call
                return (self.call(x, training=training) if _takes_arg(fn, "training")
                        else self.call(x))
            return self._call_symbolic(x, training=training)

    def _call_inputs(self, x):
        """x for a call on data: what _prepare_x makes of it, except that Tensors which need a
        gradient pass as they are, to stay on the tape (the core checks their shapes)."""
        def needs_grad(t):
            return isinstance(t, Tensor) and t.requires_grad

        if vars(self).get("_host") is not None:  # strings for its host layers (host.py)
            return prepare_x(self, x)
        if self._n_inputs > 1:
            self._assert_built("its inputs")
            parts = match(self, x, self._input_names, "x", "input")
            return list(parts) if any(map(needs_grad, parts)) else prepare_xs(self, parts, "x")
        one = single_input(self, x, "x")
        if needs_grad(one):
            self._ensure_built(one)
            return one
        return prepare_x(self, x)

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

    # -- saving (pynn/saving/ does the work) ----------------------------------------------------
    def __reduce__(self):
        """pickle, copy.copy and copy.deepcopy, as Keras 3 does them: through the model's `.keras`
        archive, in memory (config, weights, compile settings, optimizer state and random
        state), so the copy is independent of this model, predicts the same and trains on
        exactly as this one would. The pickle holds only the archive's bytes: unpickling runs no
        code from it."""
        from .. import saving
        return saving._unpickle_model, (saving._archive_bytes(self, "model"),)

    def save(self, filepath, overwrite: bool = True, zipped: bool | None = None,
             keras_format: bool = False) -> None:
        """Saves the model to a `.keras` (or `.pynn`) archive: its architecture and compile
        settings (config.json) and its weights and optimizer state (model.safetensors), so
        `pynn.models.load_model` gives a model that predicts the same and trains on exactly
        where this one stopped. Writes a temporary file and renames it over `filepath`.
        With keras_format=True, the archive Keras 3 writes (model.weights.h5), which
        `keras.saving.load_model` opens.

        Example:
            >>> model.save("model.keras")
        """
        from .. import saving
        saving.save_model(self, filepath, overwrite=overwrite, zipped=zipped,
                          keras_format=keras_format)

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

    def export(self, filepath, format: str = "onnx", verbose: bool = True,
               input_signature=None, **kwargs) -> None:
        """Exports the model for inference outside pynn, as Keras 3's `Model.export`.

        format='onnx' writes an ONNX file (`pynn.export.to_onnx`; needs the `onnx` package):
        Sequential and functional models of the built-in layers, with a dynamic batch axis.
        Keras's other formats ('tf_saved_model', 'openvino', 'litert', 'torch') raise
        NotImplementedError. kwargs: opset_version for 'onnx'.

        Example:
            >>> model.export("model.onnx", format="onnx")
        """
        if format == "onnx":
            from ..export import to_onnx
            to_onnx(self, filepath, verbose=verbose, input_signature=input_signature, **kwargs)
            return
        if format in ("tf_saved_model", "openvino", "litert", "torch"):
            raise NotImplementedError(f"Model.export: format='{format}' is not supported by "
                                      "pynn; use format='onnx'")
        raise ValueError(f"Unrecognized format={format!r}. Supported formats are: ['onnx']")

    def get_config(self) -> dict:
        raise NotImplementedError(f"{type(self).__name__} has no get_config(); pynn serializes "
                                  "Sequential and functional models")

    def get_compile_config(self) -> dict | None:
        """compile()'s arguments as a config (None when not compiled), as saved in `.keras`."""
        from .. import saving
        return saving.compile_config(self)

    def compile_from_config(self, config: dict) -> None:
        from .. import saving
        saving.compile_from_config(self, config)

    def to_json(self, **kwargs) -> str:
        """The model's config as JSON (Keras's {class_name, config} form)."""
        import json

        from .. import saving
        return json.dumps(saving.serialize_keras_object(self), **kwargs)

    def reset_metrics(self) -> None:
        """Resets the state of every metric the model tracks."""
        for m in self.metrics:
            m.reset_state()

    def compute_output_shape(self, input_shape):
        """The output shape for inputs of `input_shape` (the model's own shape when they agree)."""
        return self.output_shape

    # compile's run_eagerly and jit_compile choose nothing in pynn: steps run in the C core
    # (or in Python when train_step is overridden)
    run_eagerly = False
    jit_compile = False
    dtype = compute_dtype = variable_dtype = input_dtype = "float32"  # its layers have their own
    supports_masking = False
    input_spec = None

    @property
    def path(self) -> str:
        return self.name

    def compute_mask(self, inputs, previous_mask=None):
        return None

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        """A functional model from `get_config()`'s dict (Sequential has its own)."""
        from .. import saving
        from .functional import Functional
        return saving.functional_from_config(Functional if cls is Model else cls, config,
                                             custom_objects)
