"""Recurrent layers: SimpleRNN, LSTM, GRU, and the wrappers Bidirectional and TimeDistributed.

Each recurrent layer lowers to one core op that runs the whole sequence (forward and
backpropagation through time, csrc/core/ops_rnn.c). With return_state the op's per-sample output
packs the sequence output and the final states, and one `slice` op per output takes them apart,
so the layer has several outputs in the functional API.
"""

import numpy as np

from .. import _core, activations, initializers, regularizers
from ..utils.shape_utils import shape_str
from .base import Layer


def _act_name(identifier, who: str, arg: str) -> str:
    """The gate activation's name, checked against the ones the core's cells run."""
    name = ("hard_sigmoid" if identifier == "hard_sigmoid"
            else activations.serialize(activations.get(identifier)))
    try:
        _core.op_code("rnn_activation", name)
    except ValueError:
        raise ValueError(f"{who}: {arg} '{name}' is not supported in recurrent layers; use "
                         "'tanh', 'sigmoid', 'relu', 'linear' or 'hard_sigmoid'") from None
    return name


def _flag(v, who: str, arg: str) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"{who}: {arg} must be True or False, got {v!r}")
    return v


def _rate(v, who: str, arg: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
        raise ValueError(f"{who}: {arg} must be a number in [0, 1), got {v!r}")
    return float(v)


class RNN(Layer):
    """Base of SimpleRNN, LSTM and GRU: the arguments they share, shapes and lowering. (Not
    Keras's `RNN(cell)`, which pynn does not have: it is not exported.)

    Subclasses set `op` (the core op), `gates` and `n_states`.
    """

    op, gates, n_states, cell_name = "simple_rnn", 1, 1, "simple_rnn_cell"

    def __init__(self, units: int, activation="tanh", recurrent_activation="sigmoid",
                 use_bias: bool = True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, recurrent_constraint=None,
                 bias_constraint=None, dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 seed=None, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        who = self._who()
        if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
            raise ValueError(f"{who}: units must be a positive int, got {units!r}")
        for arg, v in (("activity_regularizer", activity_regularizer),
                       ("kernel_constraint", kernel_constraint),
                       ("recurrent_constraint", recurrent_constraint),
                       ("bias_constraint", bias_constraint)):
            if v is not None:
                raise ValueError(f"{who}: {arg} is not supported")
        if stateful:
            raise ValueError(f"{who}: stateful=True is not supported: pynn keeps no state "
                             "between batches (pass initial_state= instead)")
        self.units = units
        self.activation = _act_name(activation, who, "activation")
        self.recurrent_activation = _act_name(recurrent_activation, who,
                                              "recurrent_activation")
        self.use_bias = _flag(use_bias, who, "use_bias")
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.dropout = _rate(dropout, who, "dropout")
        self.recurrent_dropout = _rate(recurrent_dropout, who, "recurrent_dropout")
        self.seed = seed
        self.return_sequences = _flag(return_sequences, who, "return_sequences")
        self.return_state = _flag(return_state, who, "return_state")
        self.go_backwards = _flag(go_backwards, who, "go_backwards")
        self.stateful = False
        self.unroll = bool(unroll)  # accepted; the core runs the loop either way
        self._reverse_output = False  # Bidirectional's backward layer: sequence in input order

    def _who(self) -> str:
        return f"{type(self).__name__} '{self.name}'"

    # -- calls ----------------------------------------------------------------------------------
    def __call__(self, inputs, initial_state=None, **kwargs):
        """Runs the layer on a sequence (batch, timesteps, features); `initial_state` (a tensor,
        or a list of them: [h] or, for LSTM, [h, c]) starts the recurrence instead of zeros."""
        if initial_state is not None:
            states = list(initial_state) if isinstance(initial_state, (list, tuple)) \
                else [initial_state]
            if isinstance(inputs, (list, tuple)):
                raise ValueError(f"{self._who()}: pass the initial states either in the input "
                                 "list or as initial_state=, not both")
            inputs = [inputs] + states
        return super().__call__(inputs, **kwargs)

    def _split(self, input_shape):
        """(sequence shape, [state shapes]) of a call's input shape(s)."""
        if isinstance(input_shape, list) or (isinstance(input_shape, tuple) and input_shape
                                             and isinstance(input_shape[0], (list, tuple))):
            shapes = [tuple(s) for s in input_shape]
            return shapes[0], shapes[1:]
        return tuple(input_shape), []

    def _check_input(self, input_shape):
        x, states = self._split(input_shape)
        who = self._who()
        if len(x) != 3:
            raise ValueError(f"{who}: expects input of rank 3 (batch, timesteps, features), got "
                             f"{shape_str(x)}")
        if x[2] is None:  # timesteps may be None: known from the data at each run
            raise ValueError(f"{who}: the number of features must be known, got "
                             f"{shape_str(x)}")
        if states and len(states) != self.n_states:
            raise ValueError(f"{who}: takes {self.n_states} initial state"
                             f"{'s' if self.n_states > 1 else ''}, got {len(states)}")
        for s in states:
            if len(s) != 2 or s[1] != self.units:
                raise ValueError(f"{who}: an initial state must be (batch, {self.units}), got "
                                 f"{shape_str(s)}")
        return x, states

    # -- weights --------------------------------------------------------------------------------
    def _bias_shape(self) -> tuple:
        return (self.gates * self.units,)

    def _bias_value(self):
        return self.bias_initializer

    def build(self, input_shape) -> None:
        x, _ = self._check_input(input_shape)
        gu = self.gates * self.units
        self.add_weight((x[2], gu), self.kernel_initializer,
                        regularizer=self.kernel_regularizer, name="kernel")
        self.add_weight((self.units, gu), self.recurrent_initializer,
                        regularizer=self.recurrent_regularizer, name="recurrent_kernel")
        if self.use_bias:
            self.add_weight(self._bias_shape(), self._bias_value(),
                            regularizer=self.bias_regularizer, name="bias")
        for attr in self._weight_attrs:  # Keras's paths: 'lstm/lstm_cell/kernel'
            var = getattr(self, attr)
            var._path = f"{self.name}/{self.cell_name}/{attr}"
        self.built = True

    # -- shapes and lowering --------------------------------------------------------------------
    def compute_output_shape(self, input_shape):
        x, _ = self._check_input(input_shape)
        out = (x[0], x[1], self.units) if self.return_sequences else (x[0], self.units)
        if self.return_state:
            return [out] + [(x[0], self.units)] * self.n_states
        return out

    def _iattr(self) -> tuple:
        return (self.units, int(self.return_sequences), int(self.go_backwards),
                int(self.return_state), _core.op_code("rnn_activation", self.activation),
                _core.op_code("rnn_activation", self.recurrent_activation),
                int(getattr(self, "reset_after", False)),
                int(self._reverse_output))

    def lower(self, core, node):
        nodes = list(node) if isinstance(node, (list, tuple)) else [node]
        steps = core.node_shape(nodes[0])[0]
        out, _ = core.add_node(self.op, tuple(nodes), tuple(self._var_ids), self._iattr(),
                               (self.dropout, self.recurrent_dropout))
        if not self.return_state:
            return out
        u = self.units
        seq = steps * u if self.return_sequences else u
        first = (steps, u) if self.return_sequences else (u,)
        outs = [_slice(core, out, 0, first)]
        for k in range(self.n_states):
            outs.append(_slice(core, out, seq + k * u, (u,)))
        return outs

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "recurrent_activation": self.recurrent_activation, "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": None, "kernel_constraint": None,
                "recurrent_constraint": None, "bias_constraint": None,
                "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout,
                "seed": self.seed, "return_sequences": self.return_sequences,
                "return_state": self.return_state, "go_backwards": self.go_backwards,
                "stateful": False, "unroll": self.unroll}


def _slice(core, node: int, offset: int, shape: tuple) -> int:
    out, _ = core.add_node("slice", (node,), (), (offset, len(shape)) + tuple(shape))
    return out


class SimpleRNN(RNN):
    """Fully connected RNN: `h_t = activation(x_t W + h_{t-1} U + b)`.

    Args:
        units: the size of the state and output.
        activation: 'tanh' (default), 'sigmoid', 'relu', 'linear' or 'hard_sigmoid'.
        use_bias, kernel_initializer, recurrent_initializer, bias_initializer, *_regularizer:
            as Keras (glorot_uniform, orthogonal, zeros).
        dropout, recurrent_dropout: fractions of the inputs and of the state dropped in training
            (one mask per sample for all timesteps, as Keras 3).
        seed: accepted for Keras compatibility; the model's seed governs the masks
            (`pynn.utils.set_random_seed` makes them repeatable).
        return_sequences: output every step's h (batch, timesteps, units), else the last.
        return_state: also return the final state: [output, h].
        go_backwards: process the sequence in reverse (and return it reversed).
        stateful: must be False; unroll: accepted and ignored (the core runs the whole loop).

    Call it as `layer(x)` or `layer(x, initial_state=[h])` (LSTM: `[h, c]`).

    Example:
        >>> layer = pynn.layers.SimpleRNN(8)
        >>> layer.compute_output_shape((None, 5, 3))
        (None, 8)
    """

    op, gates, n_states, cell_name = "simple_rnn", 1, 1, "simple_rnn_cell"

    def __init__(self, units: int, activation="tanh", **kwargs):
        if "recurrent_activation" in kwargs:
            raise TypeError("SimpleRNN: unexpected argument 'recurrent_activation'")
        super().__init__(units, activation=activation, **kwargs)

    def get_config(self) -> dict:
        config = super().get_config()
        del config["recurrent_activation"]
        return config


class LSTM(RNN):
    """Long short-term memory (Hochreiter 1997), Keras 3's: gates i, f, c, o in that column
    order of `kernel` (features, 4 units), `recurrent_kernel` (units, 4 units) and `bias`.

    Args:
        units: the size of the states and output.
        activation: of the cell candidate and the output ('tanh').
        recurrent_activation: of the gates ('sigmoid').
        unit_forget_bias: the forget gate's bias starts at 1 (Keras's default True).
        Others as SimpleRNN. return_state gives [output, h, c].

    Example:
        >>> model = pynn.Sequential([pynn.Input((10, 4)), pynn.layers.LSTM(16)])
        >>> model.output_shape
        (None, 16)
    """

    op, gates, n_states, cell_name = "lstm", 4, 2, "lstm_cell"

    def __init__(self, units: int, activation="tanh", recurrent_activation="sigmoid",
                 unit_forget_bias: bool = True, use_cudnn="auto", **kwargs):
        super().__init__(units, activation=activation,
                         recurrent_activation=recurrent_activation, **kwargs)
        self.unit_forget_bias = _flag(unit_forget_bias, self._who(), "unit_forget_bias")

    def _bias_value(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        return _ForgetBias(self.bias_initializer, self.units)

    def get_config(self) -> dict:
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


class _ForgetBias(initializers.Initializer):
    """LSTM's unit_forget_bias: `base` for the gates i, c, o and ones for the forget gate."""

    def __init__(self, base, units: int):
        self.base, self.units = base, units

    def __call__(self, shape, dtype=None):
        u = self.units
        return np.concatenate([self.base((u,)), np.ones((u,), np.float32),
                               self.base((2 * u,))]).astype(np.float32)


class GRU(RNN):
    """Gated recurrent unit (Cho 2014), Keras 3's: gates z, r, h in that column order.

    Args:
        units: the size of the state and output.
        reset_after: apply the reset gate after the recurrent product (Keras's default True,
            PyTorch's and cuDNN's form; the bias is then (2, 3 units): input and recurrent).
        Others as LSTM. return_state gives [output, h].

    Example:
        >>> layer = pynn.layers.GRU(8, return_sequences=True)
        >>> layer.compute_output_shape((None, 5, 3))
        (None, 5, 8)
    """

    op, gates, n_states, cell_name = "gru", 3, 1, "gru_cell"

    def __init__(self, units: int, activation="tanh", recurrent_activation="sigmoid",
                 reset_after: bool = True, use_cudnn="auto", **kwargs):
        super().__init__(units, activation=activation,
                         recurrent_activation=recurrent_activation, **kwargs)
        self.reset_after = _flag(reset_after, self._who(), "reset_after")

    def _bias_shape(self) -> tuple:
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def get_config(self) -> dict:
        return {**super().get_config(), "reset_after": self.reset_after}


# ---- wrappers ------------------------------------------------------------------------------


class _Wrapper(Layer):
    """A layer whose weights are those of the layers it wraps, adopted under its own name."""

    def _adopt(self, inner, prefix: str) -> None:
        for attr in inner._weight_attrs:
            var = getattr(inner, attr)
            mine = f"{prefix}{attr}"
            var._path = f"{self.name}/{var.path}"
            setattr(self, mine, var)
            self._weight_attrs.append(mine)
            self._weight_regs.append(inner._weight_regs[inner._weight_attrs.index(attr)])
            self._owners[mine] = (inner, attr)

    def _rebind(self, attr: str, core, vid: int) -> None:
        super()._rebind(attr, core, vid)
        inner, inner_attr = self._owners[attr]
        setattr(inner, inner_attr, getattr(self, attr))

    def _lower_inner(self, inner, core, node, start: int):
        """Lowers `inner` with its slice of this wrapper's variable ids."""
        n = len(inner._weight_attrs)
        saved = inner._var_ids
        inner._var_ids = list(self._var_ids[start:start + n])
        try:
            return inner.lower(core, node)
        finally:
            inner._var_ids = saved


class Bidirectional(_Wrapper):
    """Runs a recurrent layer forwards and a copy backwards over the sequence and merges them.

    The backward layer's sequence output is put back in input order, so step t of both lines
    up. Weights: the forward layer's, then the backward layer's.

    Args:
        layer: a SimpleRNN, LSTM or GRU (its copy runs with go_backwards flipped).
        merge_mode: 'concat' (default), 'sum', 'mul', 'ave', or None (a list of both outputs).
        backward_layer: the backward layer to use instead of a copy (go_backwards=True).

    Example:
        >>> layer = pynn.layers.Bidirectional(pynn.layers.LSTM(8, return_sequences=True))
        >>> layer.compute_output_shape((None, 5, 3))
        (None, 5, 16)
    """

    _MERGE_OPS = {"sum": "add", "mul": "multiply", "ave": "average"}

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        from .. import saving
        super().__init__(**kwargs)
        who = f"Bidirectional '{self.name}'"
        if isinstance(layer, dict):
            layer = saving.deserialize_keras_object(layer)
        if isinstance(backward_layer, dict):
            backward_layer = saving.deserialize_keras_object(backward_layer)
        if not isinstance(layer, RNN):
            raise ValueError(f"{who}: wraps a SimpleRNN, LSTM or GRU layer, got "
                             f"{type(layer).__name__}")
        if merge_mode not in ("concat", "sum", "mul", "ave", None):
            raise ValueError(f"{who}: merge_mode must be 'concat', 'sum', 'mul', 'ave' or None, "
                             f"got {merge_mode!r}")
        if weights is not None:
            raise ValueError(f"{who}: weights= is not supported; use set_weights")
        self.layer = layer
        self.merge_mode = merge_mode
        config = layer.get_config()
        config["name"] = "forward_" + layer.name
        self.forward_layer = type(layer).from_config(config)
        if backward_layer is None:
            config = layer.get_config()
            config["name"] = "backward_" + layer.name
            config["go_backwards"] = not layer.go_backwards
            self.backward_layer = type(layer).from_config(config)
            self._backward_given = None
        else:
            if not isinstance(backward_layer, RNN):
                raise ValueError(f"{who}: backward_layer must be a SimpleRNN, LSTM or GRU, got "
                                 f"{type(backward_layer).__name__}")
            for attr in ("return_sequences", "return_state"):
                if getattr(backward_layer, attr) != getattr(layer, attr):
                    raise ValueError(f"{who}: backward_layer.{attr} must equal layer.{attr}")
            if backward_layer.go_backwards == layer.go_backwards:
                raise ValueError(f"{who}: backward_layer must have go_backwards="
                                 f"{not layer.go_backwards}")
            self.backward_layer = backward_layer
            self._backward_given = backward_layer
        self.backward_layer._reverse_output = self.backward_layer.return_sequences
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self._owners = {}

    def build(self, input_shape) -> None:
        self.forward_layer.build(input_shape)
        self.backward_layer.build(input_shape)
        self._adopt(self.forward_layer, "forward_")
        self._adopt(self.backward_layer, "backward_")
        self.built = True

    def compute_output_shape(self, input_shape):
        f = self.forward_layer.compute_output_shape(input_shape)
        b = self.backward_layer.compute_output_shape(input_shape)
        fo, bo = (f[0], b[0]) if self.return_state else (f, b)
        if self.merge_mode == "concat":
            out = [tuple(fo[:-1]) + (fo[-1] + bo[-1],)]
        elif self.merge_mode is None:
            out = [fo, bo]
        else:
            out = [fo]
        if self.return_state:
            out += list(f[1:]) + list(b[1:])
        return out if len(out) > 1 else out[0]

    def lower(self, core, node):
        nf = len(self.forward_layer._weight_attrs)
        f = self._lower_inner(self.forward_layer, core, node, 0)
        b = self._lower_inner(self.backward_layer, core, node, nf)
        fo, bo = (f[0], b[0]) if self.return_state else (f, b)
        if self.merge_mode == "concat":
            axis = len(core.node_shape(fo)) - 1
            merged, _ = core.add_node("concatenate", (fo, bo), (), (axis,))
            out = [merged]
        elif self.merge_mode is None:
            out = [fo, bo]
        else:
            merged, _ = core.add_node(self._MERGE_OPS[self.merge_mode], (fo, bo))
            out = [merged]
        if self.return_state:
            out += list(f[1:]) + list(b[1:])
        return out if len(out) > 1 else out[0]

    def get_config(self) -> dict:
        from .. import saving
        config = {**super().get_config(), "merge_mode": self.merge_mode,
                  "layer": saving.serialize_keras_object(self.layer)}
        if self._backward_given is not None:
            config["backward_layer"] = saving.serialize_keras_object(self._backward_given)
        return config


class TimeDistributed(_Wrapper):
    """Applies a layer to every timestep of (batch, timesteps, ...) alike, with one set of
    weights.

    Supported inner layers: Dense, Activation, Dropout, BatchNormalization (they act on the last
    axis of any rank, so the core runs them on the whole sequence at once), Flatten and Reshape
    (per step).

    Example:
        >>> layer = pynn.layers.TimeDistributed(pynn.layers.Dense(4))
        >>> layer.compute_output_shape((None, 10, 8))
        (None, 10, 4)
    """

    def __init__(self, layer, **kwargs):
        from .. import saving
        from .core import Activation, Dense
        from .normalization import BatchNormalization
        from .regularization import Dropout
        from .reshaping import Flatten, Reshape
        super().__init__(**kwargs)
        if isinstance(layer, dict):
            layer = saving.deserialize_keras_object(layer)
        self._last_axis = (Dense, Activation, Dropout, BatchNormalization)
        self._per_step = (Flatten, Reshape)
        if not isinstance(layer, self._last_axis + self._per_step):
            raise ValueError(f"TimeDistributed '{self.name}': {type(layer).__name__} is not "
                             "supported; it wraps Dense, Activation, Dropout, "
                             "BatchNormalization, Flatten or Reshape")
        self.layer = layer
        self._owners = {}

    def _step_shape(self, input_shape):
        s = tuple(input_shape)
        if len(s) < 3:
            raise ValueError(f"TimeDistributed '{self.name}': expects input of rank >= 3 "
                             f"(batch, timesteps, ...), got {shape_str(s)}")
        return (s[0],) + s[2:]

    def build(self, input_shape) -> None:
        step = self._step_shape(input_shape)
        if not self.layer.built:
            self.layer.build(step)
        self._adopt(self.layer, "")
        self.built = True

    def compute_output_shape(self, input_shape):
        step = self._step_shape(input_shape)
        out = self.layer.compute_output_shape(step)
        return (input_shape[0], input_shape[1]) + tuple(out[1:])

    def lower(self, core, node):
        if isinstance(self.layer, self._last_axis):
            return self._lower_inner(self.layer, core, node, 0)
        shape = tuple(core.node_shape(node))
        out = self.compute_output_shape((None,) + shape)[1:]
        if tuple(out) == shape:
            return node
        node, _ = core.add_node("reshape", (node,), (), (len(out),) + tuple(out))
        return node

    def get_config(self) -> dict:
        from .. import saving
        return {**super().get_config(), "layer": saving.serialize_keras_object(self.layer)}


__all__ = ["SimpleRNN", "LSTM", "GRU", "Bidirectional", "TimeDistributed"]
