"""Recurrent layers: SimpleRNN, LSTM, GRU, Keras's generic RNN(cell) with SimpleRNNCell,
LSTMCell, GRUCell and StackedRNNCells, and the wrappers Bidirectional and TimeDistributed.

Each recurrent layer lowers to one core op that runs the whole sequence (forward and
backpropagation through time, csrc/core/ops_rnn.c); a stateful layer's states are variables
the op starts from and writes its final states into at every forward. With return_state the
op's per-sample output packs the sequence output and the final states, and one `slice` op per
output takes them apart, so the layer has several outputs in the functional API. RNN(cell) runs
the built-in cells as those ops, and unrolls any other cell into the graph one timestep at a
time.
"""

import weakref

import numpy as np

from .. import _core, activations, constraints, initializers, ops, random, regularizers
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


class _FusedRNN(Layer):
    """Base of SimpleRNN, LSTM and GRU: the arguments they share, shapes and lowering. (Keras's
    generic `RNN(cell)` is `RNN` below; it lowers built-in cells to these layers' ops.)

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
                 zero_output_for_mask: bool = False, **kwargs):
        super().__init__(**kwargs)
        who = self._who()
        if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
            raise ValueError(f"{who}: units must be a positive int, got {units!r}")
        if activity_regularizer is not None:
            raise ValueError(f"{who}: activity_regularizer is not supported")
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
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout = _rate(dropout, who, "dropout")
        self.recurrent_dropout = _rate(recurrent_dropout, who, "recurrent_dropout")
        self.seed = seed
        self.return_sequences = _flag(return_sequences, who, "return_sequences")
        self.return_state = _flag(return_state, who, "return_state")
        self.go_backwards = _flag(go_backwards, who, "go_backwards")
        self.stateful = _flag(stateful, who, "stateful")
        self._state_attrs: list = []  # stateful: the attributes of its states, once built
        self.unroll = bool(unroll)  # accepted; the core runs the loop either way
        # with a mask, the output of a masked step: zeros, or (False) the step before's
        self.zero_output_for_mask = _flag(zero_output_for_mask, who, "zero_output_for_mask")
        self._reverse_output = False  # Bidirectional's backward layer: sequence in input order

    def _who(self) -> str:
        return f"{type(self).__name__} '{self.name}'"

    # -- calls ----------------------------------------------------------------------------------
    def __call__(self, inputs, initial_state=None, **kwargs):
        """Runs the layer on a sequence (batch, timesteps, features); `initial_state` (a tensor,
        or a list of them: [h] or, for LSTM, [h, c]) starts the recurrence instead of zeros
        (instead of the kept states, for a stateful layer)."""
        if initial_state is not None:
            states = list(initial_state) if isinstance(initial_state, (list, tuple)) \
                else [initial_state]
            if isinstance(inputs, (list, tuple)):
                raise ValueError(f"{self._who()}: pass the initial states either in the input "
                                 "list or as initial_state=, not both")
            inputs = [inputs] + states
        if self.stateful:
            _stateful_call(self, inputs[0] if isinstance(inputs, (list, tuple)) else inputs)
        return super().__call__(inputs, **kwargs)

    # -- stateful=True: the final states kept between calls ---------------------------------------
    @property
    def states(self):
        """A stateful layer's states (Variables of shape (batch, units): [h], or [h, c] for
        LSTM), which each call starts from and leaves its final states in; None otherwise (as
        Keras). They are not among the layer's weights, nor saved."""
        if not self.stateful or not self._state_attrs:
            return None
        return [getattr(self, a) for a in self._state_attrs]

    def reset_states(self) -> None:
        """Zeros the states of a stateful layer (nothing to do otherwise)."""
        _zero_states(self.states)

    reset_state = reset_states

    @property
    def weights(self) -> list:
        states = {id(v) for v in self.states or ()}
        return [w for w in super().weights if id(w) not in states]

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
                        regularizer=self.kernel_regularizer,
                        constraint=self.kernel_constraint, name="kernel")
        self.add_weight((self.units, gu), self.recurrent_initializer,
                        regularizer=self.recurrent_regularizer,
                        constraint=self.recurrent_constraint, name="recurrent_kernel")
        if self.use_bias:
            self.add_weight(self._bias_shape(), self._bias_value(),
                            regularizer=self.bias_regularizer,
                            constraint=self.bias_constraint, name="bias")
        for attr in self._weight_attrs:  # Keras's paths: 'lstm/lstm_cell/kernel'
            var = getattr(self, attr)
            var._path = f"{self.name}/{self.cell_name}/{attr}"
        if self.stateful:
            self._state_attrs = _add_states(self, x, [self.units] * self.n_states)
        self.built = True

    # -- shapes and lowering --------------------------------------------------------------------
    def compute_output_shape(self, input_shape):
        x, _ = self._check_input(input_shape)
        out = (x[0], x[1], self.units) if self.return_sequences else (x[0], self.units)
        if self.return_state:
            return [out] + [(x[0], self.units)] * self.n_states
        return out

    def _iattr(self, masked: bool = False) -> tuple:
        """The op's attributes: [0..7], then [8] the mask input, [9] zero_output_for_mask and
        [10] stateful (its states are the op's last variables) when any of them is set."""
        iattr = (self.units, int(self.return_sequences), int(self.go_backwards),
                 int(self.return_state), _core.op_code("rnn_activation", self.activation),
                 _core.op_code("rnn_activation", self.recurrent_activation),
                 int(getattr(self, "reset_after", False)),
                 int(self._reverse_output))
        if masked or self.stateful:
            iattr += (int(masked), int(self.zero_output_for_mask) if masked else 0,
                      int(self.stateful))
        return iattr

    supports_masking = True

    def lower(self, core, node, mask=None):
        """The op over the sequence (and initial states); with a mask (steps,) per sample, the
        masked steps are skipped as Keras does: the states carried over them unchanged."""
        nodes = list(node) if isinstance(node, (list, tuple)) else [node]
        mask = mask[0] if isinstance(mask, list) else mask
        steps = core.node_shape(nodes[0])[0]
        iattr = self._iattr(mask is not None)
        if mask is not None:  # the mask is the op's last input
            nodes.append(mask)
        # the variables: kernel, recurrent kernel, [bias], then a stateful layer's states
        out, _ = core.add_node(self.op, tuple(nodes), tuple(self._var_ids), iattr,
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

    def _lower_mask(self, core, inputs, output, mask):
        """The sequence's mask goes on with the sequence (return_sequences), as Keras's."""
        mask = mask[0] if isinstance(mask, list) else mask
        out = mask if self.return_sequences else None
        return [out] + [None] * self.n_states if self.return_state else out

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "recurrent_activation": self.recurrent_activation, "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": None,
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint),
                "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout,
                "seed": self.seed, "return_sequences": self.return_sequences,
                "return_state": self.return_state, "go_backwards": self.go_backwards,
                "stateful": self.stateful, "unroll": self.unroll,
                "zero_output_for_mask": self.zero_output_for_mask}


def _stateful_call(layer, x) -> None:
    """Before a stateful layer's call on `x` (a symbolic tensor or data): builds it for the
    batch size x has (an Input's batch_size, or the data's), and refuses another batch size
    than its states', as Keras does."""
    from .input_layer import KerasTensor
    if isinstance(x, KerasTensor):
        batch = x._batch_size
        shape = (batch,) + tuple(x.shape[1:])
    else:
        shape = tuple(getattr(x, "shape", np.shape(x)))
        batch = shape[0] if shape else None
    states = layer.states
    if states is None and not layer.built:
        layer.build(shape)
        return
    if states and batch is not None and batch != states[0].shape[0]:
        raise ValueError("If an RNN is stateful, the batch size of the input sequences must be "
                         "the same as the batch size of the initial state. \n"
                         f"- Expected batch size: {states[0].shape[0]}\n"
                         f"- Received batch size: {batch}")


def _add_states(layer, sequences_shape: tuple, sizes: list) -> list:
    """A stateful layer's states: one non-trainable Variable of zeros (batch, size) per state,
    named as Keras names them ('lstm/rnn_state'); returns their attributes. ValueError (Keras's)
    when the batch size is not known."""
    batch = sequences_shape[0]
    if batch is None:
        raise ValueError("When using `stateful=True` in a RNN, the batch size must be static. "
                         f"Found dynamic batch size: sequence.shape={shape_str(sequences_shape)}"
                         "; give the model's Input a batch_size (pynn.Input(shape, "
                         "batch_size=...)), or call the layer on data")
    from . import base
    budget = base._weight_budget  # loading a saved model: the states are not in its file
    if budget is not None and int(batch) * max(sizes) > _MAX_LOADED_STATE:
        raise ValueError(f"Invalid saved model: {layer._who()}'s states of batch size {batch} "
                         f"would hold more than {_MAX_LOADED_STATE} values each")
    attrs = []
    base._weight_budget = None
    try:
        for k, size in enumerate(sizes):
            attr = "rnn_state" if k == 0 else f"rnn_state_{k}"
            var = layer.add_weight((int(batch), int(size)), "zeros", trainable=False, name=attr)
            var._name, var._path = "rnn_state", f"{layer.name}/rnn_state"
            attrs.append(attr)
    finally:
        base._weight_budget = budget
    return attrs


# While a saved model is rebuilt its weights may not exceed what its file holds; its stateful
# layers' states are not in the file, so each is capped at this many values instead.
_MAX_LOADED_STATE = 2**24


def _zero_states(states) -> None:
    from .base import assign_values
    if states:
        assign_values([(v, np.zeros(v.shape, np.float32)) for v in states])


def _slice(core, node: int, offset: int, shape: tuple) -> int:
    out, _ = core.add_node("slice", (node,), (), (offset, len(shape)) + tuple(shape))
    return out


class SimpleRNN(_FusedRNN):
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
        stateful: keep the final states of each call (each batch of fit, predict and
            evaluate) as the next call's initial states, in `layer.states` (non-trainable
            Variables (batch, units), not weights, not saved); the batch size is then fixed:
            give the model's Input a batch_size (`pynn.Input(shape, batch_size=4)`), and every
            batch must have it. `reset_states()` zeros them.
        unroll: accepted and ignored (the core runs the whole loop).

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


class LSTM(_FusedRNN):
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


class GRU(_FusedRNN):
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


# ---- cells and the generic RNN ---------------------------------------------------------------
# Keras's cell API: a cell computes one timestep, `call(inputs, states) -> (output, new_states)`,
# and RNN(cell) runs it over the sequence. The built-in cells are written with pynn.ops (so they
# also run alone, on data); RNN lowers them to the fused ops above, and unrolls any other cell
# step by step while its call() is traced (one set of ops per timestep, all in the core graph).


def _cell_act(identifier, who: str, arg: str) -> str:
    """An activation's name: any of pynn.activations, or 'hard_sigmoid' (Keras 3's)."""
    if identifier == "hard_sigmoid" or identifier is ops.hard_sigmoid:
        return "hard_sigmoid"
    try:
        return activations.serialize(activations.get(identifier))
    except ValueError as e:
        raise ValueError(f"{who}: {arg}: {e}") from None


def _act_fn(name: str):
    return ops.hard_sigmoid if name == "hard_sigmoid" else activations.get(name)


def _core_runs(name: str) -> bool:
    """Whether the fused recurrent ops run this activation (else its cell runs unrolled)."""
    try:
        _core.op_code("rnn_activation", name)
    except ValueError:
        return False
    return True


def _flat_sizes(state_size) -> list:
    """A cell's state_size (an int, or nested lists of them) as the list of state widths."""
    if isinstance(state_size, (list, tuple)):
        return [d for s in state_size for d in _flat_sizes(s)]
    return [int(state_size)]


def _flatten(states) -> list:
    """Nested lists and tuples of tensors as one flat list (None: an empty one)."""
    if states is None:
        return []
    if isinstance(states, (list, tuple)):
        return [t for s in states for t in _flatten(s)]
    return [states]


def _pack(flat: list, state_size) -> list:
    """Flat states in the structure a cell takes: a list with, for each entry of a list
    state_size, one tensor (an int) or a list (a nested list, a stacked cell's)."""
    sizes = state_size if isinstance(state_size, (list, tuple)) else [state_size]
    out, k = [], 0
    for s in sizes:
        n = len(_flat_sizes(s))
        out.append(_pack(flat[k:k + n], s) if isinstance(s, (list, tuple)) else flat[k])
        k += n
    return out


def _takes_training(cell) -> bool:
    from .base import _takes_arg
    return _takes_arg(type(cell).call, "training")


def _step(cell, inputs, states, training):
    """One timestep of `cell`: (output, new states as a list)."""
    kwargs = {"training": training} if _takes_training(cell) else {}
    output, new_states = cell.call(inputs, states, **kwargs)
    if not isinstance(new_states, (list, tuple)):
        new_states = [new_states]
    return output, list(new_states)


def _output_size(cell) -> int:
    size = getattr(cell, "output_size", None)
    return int(size) if size is not None else _flat_sizes(cell.state_size)[0]


def _check_cell(cell, who: str) -> None:
    if not isinstance(cell, Layer) or not callable(getattr(cell, "call", None)):
        raise ValueError(f"{who}: a cell must be a Layer with a call(inputs, states) method, got "
                         f"{type(cell).__name__}")
    size = getattr(cell, "state_size", None)
    try:
        ok = size is not None and all(d > 0 for d in _flat_sizes(size))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{who}: cell {type(cell).__name__} '{cell.name}' needs a state_size "
                         f"attribute (a positive int, or a list of them), got {size!r}")


def _reset_dropout_masks(cell) -> None:
    """Keras's RNN does this before and after each sequence: its cells draw new masks."""
    if isinstance(cell, _DropoutCell):
        cell.reset_dropout_mask()
        cell.reset_recurrent_dropout_mask()
    if isinstance(cell, StackedRNNCells):
        for inner in cell.cells:
            _reset_dropout_masks(inner)


class _CellCall:
    """A cell's __call__: on data it runs call() (as any layer's); on symbolic tensors inside
    another layer's traced call() (a cell that calls a cell), its ops join that trace. A cell
    alone in a model's graph is refused: RNN(cell) is the layer that runs it."""

    def __call__(self, *args, **kwargs):
        from . import tracing
        from .input_layer import KerasTensor
        if not tracing.find_tensors((args, kwargs), KerasTensor):
            return super().__call__(*args, **kwargs)
        if not tracing.tracing():
            raise NotImplementedError(
                f"{type(self).__name__} '{self.name}' was called on symbolic tensors: a cell "
                "computes one timestep inside a recurrent layer; use pynn.layers.RNN(cell) in "
                "a model (or call the cell on data)")
        if not self.built:
            self._build_for(args[0] if args else kwargs["inputs"])
        if not _takes_training(self):
            kwargs.pop("training", None)
        return self.call(*args, **kwargs)


class _DropoutCell(_CellCall, Layer):
    """What SimpleRNNCell, LSTMCell and GRUCell share: their arguments, weights and Keras's
    dropout masks (DropoutRNNCell's: drawn at a sequence's first step, reused at every step).

    Subclasses set `gates` and `_has_recurrent_activation`.
    """

    gates = 1
    _has_recurrent_activation = True

    def __init__(self, units: int, activation="tanh", recurrent_activation="sigmoid",
                 use_bias: bool = True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        who = f"{type(self).__name__} '{self.name}'"
        if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
            raise ValueError(f"{who}: units must be a positive int, got {units!r}")
        self.units = units
        self.activation = _cell_act(activation, who, "activation")
        self.recurrent_activation = _cell_act(recurrent_activation, who, "recurrent_activation")
        self.use_bias = _flag(use_bias, who, "use_bias")
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout = _rate(dropout, who, "dropout")
        self.recurrent_dropout = _rate(recurrent_dropout, who, "recurrent_dropout")
        self.seed = seed

    @property
    def state_size(self):
        return self.units

    @property
    def output_size(self) -> int:
        return self.units

    def get_initial_state(self, batch_size=None) -> list:
        """Zeros for each state, (batch_size, units): a list, as Keras's cells give them."""
        return [ops.zeros((batch_size, d)) for d in _flat_sizes(self.state_size)]

    # -- weights --------------------------------------------------------------------------------
    def _bias_shape(self) -> tuple:
        return (self.gates * self.units,)

    def _bias_value(self):
        return self.bias_initializer

    def build(self, input_shape) -> None:
        features = tuple(input_shape)[-1]
        if features is None:
            raise ValueError(f"{type(self).__name__} '{self.name}': the number of input features "
                             f"must be known, got {shape_str(tuple(input_shape))}")
        gu = self.gates * self.units
        self.kernel = self.add_weight((features, gu), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint, name="kernel")
        self.recurrent_kernel = self.add_weight((self.units, gu), self.recurrent_initializer,
                                                regularizer=self.recurrent_regularizer,
                                                constraint=self.recurrent_constraint,
                                                name="recurrent_kernel")
        if self.use_bias:
            self.bias = self.add_weight(self._bias_shape(), self._bias_value(),
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint, name="bias")
        else:
            self.bias = None

    # -- dropout masks (Keras's DropoutRNNCell) -------------------------------------------------
    def _mask(self, attr: str, rate: float, like):
        from .input_layer import KerasTensor
        mask = vars(self).get(attr)
        if mask is None or isinstance(mask, KerasTensor) != isinstance(like, KerasTensor) or \
                tuple(mask.shape) != tuple(like.shape):
            mask = random.dropout(ops.ones_like(like), rate)
            setattr(self, attr, mask)
        return mask

    def get_dropout_mask(self, step_inputs):
        """The inputs' dropout mask of the current sequence (drawn at its first step)."""
        return self._mask("_dropout_mask", self.dropout, step_inputs) if self.dropout else None

    def get_recurrent_dropout_mask(self, step_inputs):
        """The state's dropout mask of the current sequence (drawn at its first step)."""
        return self._mask("_recurrent_dropout_mask", self.recurrent_dropout, step_inputs) \
            if self.recurrent_dropout else None

    def reset_dropout_mask(self) -> None:
        self._dropout_mask = None

    def reset_recurrent_dropout_mask(self) -> None:
        self._recurrent_dropout_mask = None

    def _dropped(self, inputs, h, training):
        """(inputs, h) with the sequence's dropout masks applied in training."""
        if training and self.dropout:
            inputs = inputs * self.get_dropout_mask(inputs)
        if training and self.recurrent_dropout:
            h = h * self.get_recurrent_dropout_mask(h)
        return inputs, h

    def get_config(self) -> dict:
        config = {**super().get_config(), "units": self.units, "activation": self.activation}
        if self._has_recurrent_activation:
            config["recurrent_activation"] = self.recurrent_activation
        return {**config, "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint),
                "dropout": self.dropout,
                "recurrent_dropout": self.recurrent_dropout, "seed": self.seed}


class SimpleRNNCell(_DropoutCell):
    """One timestep of SimpleRNN: `h = activation(x W + h_prev U + b)`; output and state h.

    Args:
        units: the size of the state and output.
        activation: 'tanh' by default (any of pynn.activations, or 'hard_sigmoid').
        use_bias, kernel_initializer, recurrent_initializer, bias_initializer, *_regularizer,
        dropout, recurrent_dropout, seed: as SimpleRNN's.

    `call(inputs, states, training=None)` returns `(h, [h])` (`(h, h)` for a bare state), as
    Keras's cell. `RNN(SimpleRNNCell(...))` runs SimpleRNN's fused op.

    Example:
        >>> cell = pynn.layers.SimpleRNNCell(4)
        >>> h, [state] = cell(np.ones((2, 3), "float32"), cell.get_initial_state(2))
    """

    gates = 1
    _has_recurrent_activation = False

    def __init__(self, units: int, activation="tanh", **kwargs):
        if "recurrent_activation" in kwargs:
            raise TypeError("SimpleRNNCell: unexpected argument 'recurrent_activation'")
        super().__init__(units, activation=activation, **kwargs)

    def call(self, inputs, states, training=None):
        h_prev = states[0] if isinstance(states, (list, tuple)) else states
        inputs, h_prev = self._dropped(inputs, h_prev, training)
        h = ops.matmul(inputs, self.kernel)
        if self.use_bias:
            h = h + self.bias
        output = _act_fn(self.activation)(h + ops.matmul(h_prev, self.recurrent_kernel))
        return output, [output] if isinstance(states, (list, tuple)) else output


class LSTMCell(_DropoutCell):
    """One timestep of LSTM: gates i, f, c, o in that column order of `kernel` (features,
    4 units), `recurrent_kernel` (units, 4 units) and `bias` (4 units), as Keras's.

    Args:
        units: the size of the states and output.
        activation: of the cell candidate and the output ('tanh').
        recurrent_activation: of the gates ('sigmoid').
        unit_forget_bias: the forget gate's bias starts at 1 (True).
        Others as SimpleRNNCell.

    state_size is [units, units] (h, c); `call(inputs, [h, c])` returns `(h, [h, c])`.
    `RNN(LSTMCell(...))` runs LSTM's fused op.

    Example:
        >>> cell = pynn.layers.LSTMCell(4)
        >>> h, (h, c) = cell(np.ones((2, 3), "float32"), cell.get_initial_state(2))
    """

    gates = 4

    def __init__(self, units: int, activation="tanh", recurrent_activation="sigmoid",
                 use_bias: bool = True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias: bool = True, **kwargs):
        super().__init__(units, activation=activation,
                         recurrent_activation=recurrent_activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer,
                         bias_initializer=bias_initializer, **kwargs)
        self.unit_forget_bias = _flag(unit_forget_bias, f"LSTMCell '{self.name}'",
                                      "unit_forget_bias")

    @property
    def state_size(self):
        return [self.units, self.units]

    def _bias_value(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        return _ForgetBias(self.bias_initializer, self.units)

    def call(self, inputs, states, training=None):
        h_prev, c_prev = states[0], states[1]
        inputs, h_prev = self._dropped(inputs, h_prev, training)
        z = ops.matmul(inputs, self.kernel) + ops.matmul(h_prev, self.recurrent_kernel)
        if self.use_bias:
            z = z + self.bias
        u, act, ract = self.units, _act_fn(self.activation), _act_fn(self.recurrent_activation)
        i, f = ract(z[:, :u]), ract(z[:, u:2 * u])
        c = f * c_prev + i * act(z[:, 2 * u:3 * u])
        h = ract(z[:, 3 * u:]) * act(c)
        return h, [h, c]

    def get_config(self) -> dict:
        config = super().get_config()
        keys = list(config)  # Keras's order: unit_forget_bias after use_bias
        at = keys.index("use_bias") + 1
        items = list(config.items())
        return dict(items[:at] + [("unit_forget_bias", self.unit_forget_bias)] + items[at:])


class GRUCell(_DropoutCell):
    """One timestep of GRU: gates z, r, h in that column order, as Keras's.

    Args:
        units: the size of the state and output.
        reset_after: apply the reset gate after the recurrent product (True, Keras's default;
            the bias is then (2, 3 units): input and recurrent).
        Others as LSTMCell.

    `call(inputs, [h])` returns `(h, [h])`. `RNN(GRUCell(...))` runs GRU's fused op.

    Example:
        >>> cell = pynn.layers.GRUCell(4)
        >>> h, [state] = cell(np.ones((2, 3), "float32"), cell.get_initial_state(2))
        >>> [w.shape for w in cell.weights]
        [(3, 12), (4, 12), (2, 12)]
    """

    gates = 3

    def __init__(self, units: int, activation="tanh", recurrent_activation="sigmoid",
                 reset_after: bool = True, **kwargs):
        super().__init__(units, activation=activation,
                         recurrent_activation=recurrent_activation, **kwargs)
        self.reset_after = _flag(reset_after, f"GRUCell '{self.name}'", "reset_after")

    def _bias_shape(self) -> tuple:
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def call(self, inputs, states, training=None):
        h_prev = states[0] if isinstance(states, (list, tuple)) else states
        x, h_in = self._dropped(inputs, h_prev, training)
        u, act, ract = self.units, _act_fn(self.activation), _act_fn(self.recurrent_activation)
        weight = ops.get_item  # a part of a weight (a graph node that reads it, in a trace)
        mx = ops.matmul(x, self.kernel)
        if self.use_bias:
            mx = mx + (weight(self.bias, 0) if self.reset_after else self.bias)
        if self.reset_after:
            mh = ops.matmul(h_in, self.recurrent_kernel)
            if self.use_bias:
                mh = mh + weight(self.bias, 1)
        else:
            mh = ops.matmul(h_in, weight(self.recurrent_kernel, (slice(None), slice(0, 2 * u))))
        z = ract(mx[:, :u] + mh[:, :u])
        r = ract(mx[:, u:2 * u] + mh[:, u:2 * u])
        if self.reset_after:
            rh = r * mh[:, 2 * u:]
        else:
            rh = ops.matmul(r * h_in, weight(self.recurrent_kernel,
                                             (slice(None), slice(2 * u, None))))
        h = z * h_prev + (1 - z) * act(mx[:, 2 * u:] + rh)
        return h, [h] if isinstance(states, (list, tuple)) else h

    def get_config(self) -> dict:
        config = super().get_config()
        seed = config.pop("seed")  # Keras's order: reset_after, then seed
        return {**config, "reset_after": self.reset_after, "seed": seed}


class StackedRNNCells(_CellCall, Layer):
    """Cells run one after the other at each timestep, each on the output of the one before:
    RNN(StackedRNNCells([a, b])) is the stack of two recurrent layers (RNN([a, b]) makes it).

    Args:
        cells: a list of cells (built-in or user-written).

    state_size is the list of the cells' state sizes; the states are one entry per cell (each
    its own structure), the output is the last cell's. Built-in cells in RNN run as one fused op
    per cell; a stack with another cell runs unrolled.

    Example:
        >>> layer = pynn.layers.RNN(pynn.layers.StackedRNNCells(
        ...     [pynn.layers.LSTMCell(8), pynn.layers.GRUCell(4)]))
        >>> layer.cell.state_size
        [[8, 8], 4]
    """

    def __init__(self, cells, **kwargs):
        from .. import saving
        super().__init__(**kwargs)
        if not isinstance(cells, (list, tuple)) or not cells:
            raise ValueError(f"StackedRNNCells '{self.name}': cells must be a non-empty list, "
                             f"got {cells!r}")
        cells = [saving.deserialize_keras_object(c) if isinstance(c, dict) else c
                 for c in cells]
        for c in cells:
            _check_cell(c, f"StackedRNNCells '{self.name}'")
        self.cells = list(cells)

    @property
    def state_size(self) -> list:
        return [c.state_size for c in self.cells]

    @property
    def output_size(self) -> int:
        return _output_size(self.cells[-1])

    def get_initial_state(self, batch_size=None) -> list:
        """Each cell's initial states (its get_initial_state, or zeros)."""
        out = []
        for c in self.cells:
            fn = getattr(c, "get_initial_state", None)
            if fn is not None:
                out.append(fn(batch_size=batch_size))
            elif isinstance(c.state_size, (list, tuple)):
                out.append([ops.zeros((batch_size, d)) for d in _flat_sizes(c.state_size)])
            else:
                out.append(ops.zeros((batch_size, int(c.state_size))))
        return out

    def build(self, input_shape) -> None:
        shape = tuple(input_shape)
        for c in self.cells:
            if not c.built:
                c.build(shape)
                c.built = True
            shape = shape[:-1] + (_output_size(c),)

    def call(self, inputs, states, training=None):
        new_states = []
        for c, s in zip(self.cells, states):
            nested = isinstance(s, (list, tuple))
            inputs, s = _step(c, inputs, list(s) if nested else [s], training)
            new_states.append(s if nested or len(s) != 1 else s[0])
        return inputs, new_states

    def get_config(self) -> dict:
        from .. import saving
        return {**super().get_config(),
                "cells": [saving.serialize_keras_object(c) for c in self.cells]}

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        from .. import saving
        config = dict(config)
        cells = [saving.deserialize_keras_object(c, custom_objects) if isinstance(c, dict)
                 else c for c in config.pop("cells", [])]
        return cls(cells, **config)


_FUSED_CELLS = {SimpleRNNCell: SimpleRNN, LSTMCell: LSTM, GRUCell: GRU}


def _fusable(cell) -> bool:
    """Whether a cell computes what a fused op runs: a built-in cell (not a subclass, which
    may change call()) whose activations the core's recurrent ops have."""
    if type(cell) not in _FUSED_CELLS:
        return False
    acts = [cell.activation] + ([cell.recurrent_activation]
                                if cell._has_recurrent_activation else [])
    return all(_core_runs(a) for a in acts)


class _WeightTable:
    """Stands for a layer in an eager graph (eager._EagerGraph): several cells' weights under
    the variable ids 0, 1, ..."""

    def __init__(self, variables: list, compute_dtype: str):
        self._weight_attrs = [f"w{k}" for k in range(len(variables))]
        self._var_ids = list(range(len(variables)))
        for attr, var in zip(self._weight_attrs, variables):
            setattr(self, attr, var)
        self.compute_dtype = compute_dtype


class _FusedCells(Layer):
    """RNN's fast path: built-in cells run by the fused ops of SimpleRNN, LSTM and GRU over the
    cells' own weights, one op per cell of a stack (each but the last returning its sequence,
    which the next one reads in processing order). Its input: [sequence, *initial states]."""

    _precision_of_caller = True  # computes in the RNN's dtype, as the ops of its call()

    def __init__(self, rnn, cells: list, masked: bool = False):
        super().__init__(name=f"{rnn.name}_fused_cells", dtype=rnn.dtype_policy)
        self._rnn = weakref.ref(rnn)  # a stateful RNN's states: the stages' last variables
        self._cells = cells
        self._masked = masked  # its last input is the sequence's mask
        self.return_state = rnn.return_state
        self._stages = []
        for k, cell in enumerate(cells):
            last = k == len(cells) - 1
            config = {"units": cell.units, "activation": cell.activation,
                      "use_bias": cell.use_bias, "dropout": cell.dropout,
                      "recurrent_dropout": cell.recurrent_dropout,
                      "return_sequences": rnn.return_sequences or not last,
                      "return_state": rnn.return_state,
                      "go_backwards": rnn.go_backwards and k == 0, "name": cell.name,
                      "zero_output_for_mask": rnn.zero_output_for_mask and last}
            if cell._has_recurrent_activation:
                config["recurrent_activation"] = cell.recurrent_activation
            if isinstance(cell, GRUCell):
                config["reset_after"] = cell.reset_after
            self._stages.append(_FUSED_CELLS[type(cell)](**config))
            self._stages[-1].stateful = rnn.stateful
        self.built = True

    def _state_groups(self, items: list) -> list:
        """A stateful RNN's states (ids or Variables, flat) cut per stage; empty lists when
        it keeps none."""
        rnn = self._rnn()
        if rnn is None or not rnn.stateful:
            return [[] for _ in self._stages]
        out, k = [], 0
        for stage in self._stages:
            out.append(list(items[k:k + stage.n_states]))
            k += stage.n_states
        return out

    def compute_output_shape(self, input_shape):
        shapes = input_shape if isinstance(input_shape, list) else [input_shape]
        shapes = shapes[:-1] if self._masked else shapes
        x, states, out_states = tuple(shapes[0]), list(shapes[1:]), []
        for stage in self._stages:
            given, states = states[:stage.n_states], states[stage.n_states:]
            out = stage.compute_output_shape([x] + given if given else x)
            x, out_states = (out[0], out_states + out[1:]) if self.return_state else (out, [])
        return [x] + out_states if self.return_state else x

    def _lower_with(self, core, node, var_ids: list):
        """The stages' ops, stage k over the variables var_ids[k]."""
        nodes = list(node) if isinstance(node, (list, tuple)) else [node]
        mask = nodes.pop() if self._masked else None
        if mask is not None and len(self._stages) > 1 and self._stages[0].go_backwards:
            raise ValueError(f"{self.name}: a mask with go_backwards and stacked cells is not "
                             "supported")
        x, states, out_states = nodes[0], nodes[1:], []
        for stage, ids in zip(self._stages, var_ids):
            given, states = states[:stage.n_states], states[stage.n_states:]
            stage._var_ids = list(ids)
            out = stage.lower(core, [x] + given if given else x, mask=mask)
            x, out_states = (out[0], out_states + out[1:]) if self.return_state else (out, [])
        return [x] + out_states if self.return_state else x

    def lower(self, core, node):
        rnn = self._rnn()
        state_ids = [rnn._var_ids[rnn._weight_attrs.index(a)] for a in rnn._state_attrs] \
            if rnn is not None and rnn.stateful else []
        return self._lower_with(core, node, [
            list(c._var_ids) + ids
            for c, ids in zip(self._cells, self._state_groups(state_ids))])

    def _call_eager(self, inputs, training: bool, kwargs: dict):
        """On data: the same ops run now (eager._EagerGraph), over the cells' weights (and a
        stateful RNN's states)."""
        from ..eager import _EagerGraph, as_tensor
        many = isinstance(inputs, (list, tuple))
        xs = [as_tensor(x) for x in (inputs if many else [inputs])]
        rnn = self._rnn()
        groups = self._state_groups((rnn.states or []) if rnn is not None else [])
        variables, ids = [], []
        for c, states in zip(self._cells, groups):
            mine = [getattr(c, a) for a in c._weight_attrs] + states
            ids.append(range(len(variables), len(variables) + len(mine)))
            variables += mine
        graph = _EagerGraph(_WeightTable(variables, self.compute_dtype), training)
        out = self._lower_with(graph, [graph.add(t) for t in xs], ids)
        return [graph.value(o) for o in out] if isinstance(out, list) else graph.value(out)


class RNN(Layer):
    """Keras's generic recurrent layer: runs a cell over the time axis of (batch, timesteps,
    features).

    A cell is a layer with `state_size` (an int, or a list of them) and
    `call(inputs, states) -> (output, new_states)` computing one timestep: SimpleRNNCell,
    LSTMCell, GRUCell, StackedRNNCells, or one of your own written with pynn.ops. The built-in
    cells run as the fused ops of SimpleRNN, LSTM and GRU (RNN(LSTMCell(n)) computes what
    LSTM(n) computes, with the same weights); any other cell is unrolled step by step while the
    model is built, each timestep's ops joining the core graph (a sequence length unknown until
    the data comes is unrolled for each length the data has).

    Args:
        cell: a cell, or a list of cells (a StackedRNNCells).
        return_sequences: output every step's output (batch, timesteps, units), else the last.
        return_state: also return the final states, flat: [output, *states].
        go_backwards: process the sequence in reverse (and return it reversed).
        stateful: keep the final states of each call as the next call's initial states, as
            SimpleRNN's (over SimpleRNNCell, LSTMCell, GRUCell and stacks of them; another
            cell is refused); `layer.states` holds them flat.
        unroll: accepted (the fused ops run the whole loop; other cells are unrolled anyway).
        zero_output_for_mask: with a mask, the output of a masked step is zeros instead of
            the step before's.

    Call it as `layer(x)` or `layer(x, initial_state=[h, ...])` (the cell's states, flat).

    Example:
        >>> layer = pynn.layers.RNN(pynn.layers.LSTMCell(8), return_sequences=True)
        >>> pynn.Sequential([pynn.Input((5, 3)), layer]).output_shape
        (None, 5, 8)
    """

    def __init__(self, cell, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False,
                 zero_output_for_mask: bool = False, **kwargs):
        from .. import saving
        if isinstance(cell, dict):
            cell = saving.deserialize_keras_object(cell)
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(cell)
        super().__init__(**kwargs)
        who = self._who()
        _check_cell(cell, who)
        stateful = _flag(stateful, who, "stateful")
        cells = cell.cells if isinstance(cell, StackedRNNCells) else [cell]
        if stateful and not all(map(_fusable, cells)):
            raise NotImplementedError(
                f"{who}: stateful=True runs over SimpleRNNCell, LSTMCell and GRUCell (and stacks "
                "of them), whose fused ops keep the states in the core; "
                f"{', '.join(type(c).__name__ for c in cells if not _fusable(c))} runs "
                "unrolled. Pass the final states of one batch (return_state=True) as "
                "initial_state of the next instead")
        self.cell = cell
        self.return_sequences = _flag(return_sequences, who, "return_sequences")
        self.return_state = _flag(return_state, who, "return_state")
        self.go_backwards = _flag(go_backwards, who, "go_backwards")
        self.stateful = stateful
        self._state_attrs: list = []  # stateful: the attributes of its states, once built
        self.unroll = _flag(unroll, who, "unroll")
        self.zero_output_for_mask = _flag(zero_output_for_mask, who, "zero_output_for_mask")

    def _who(self) -> str:
        return f"{type(self).__name__} '{self.name}'"

    @property
    def state_size(self):
        return self.cell.state_size

    def get_initial_state(self, batch_size) -> list:
        """The cell's initial states (its get_initial_state, else zeros), as a list."""
        fn = getattr(self.cell, "get_initial_state", None)
        if fn is None:
            return [ops.zeros((batch_size, d)) for d in _flat_sizes(self.cell.state_size)]
        states = fn(batch_size=batch_size)
        return list(states) if isinstance(states, (list, tuple)) else [states]

    @property
    def states(self):
        """A stateful layer's states (Variables (batch, size), the cell's states flat), which
        each call starts from and leaves its final states in; None otherwise, as Keras."""
        if not self.stateful or not self._state_attrs:
            return None
        return [getattr(self, a) for a in self._state_attrs]

    def reset_states(self) -> None:
        """Zeros the states of a stateful layer (nothing to do otherwise)."""
        _zero_states(self.states)

    reset_state = reset_states

    @property
    def weights(self) -> list:
        states = {id(v) for v in self.states or ()}
        return [w for w in super().weights if id(w) not in states]

    # -- calls ----------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        """Runs the layer on a sequence; `initial_state` (a tensor, or a list of them: the
        cell's states, flat) starts the recurrence instead of the cell's initial state. The
        states are passed on as further tensor arguments, so a functional model that gives
        them can be saved."""
        if args and isinstance(args[0], (list, tuple)):  # [sequence, *initial states]
            args = (args[0][0], *args[0][1:], *args[1:])
        if self.stateful and (args or "sequences" in kwargs):
            _stateful_call(self, args[0] if args else kwargs["sequences"])
        states = _flatten(list(args[1:])) + _flatten(kwargs.pop("initial_state", None))
        if args:
            args = (args[0], *states)
        elif states:
            kwargs["initial_state"] = states
        return super().__call__(*args, **kwargs)

    def build(self, sequences_shape) -> None:
        shape = tuple(sequences_shape)
        if shape and isinstance(shape[0], (list, tuple)):  # [sequence, *states] shapes
            shape = tuple(shape[0])
        if len(shape) < 3:
            raise ValueError(f"{self._who()}: expects input of rank 3 (batch, timesteps, "
                             f"features), got {shape_str(shape)}")
        if shape[-1] is None:
            raise ValueError(f"{self._who()}: the number of features must be known, got "
                             f"{shape_str(shape)}")
        if not self.cell.built:
            self.cell.build((shape[0],) + shape[2:])
            self.cell.built = True
        _prefix_paths(self.cell, self.name)  # Keras's paths: 'rnn/lstm_cell/kernel'
        if self.stateful and not self._state_attrs:
            self._state_attrs = _add_states(self, shape, _flat_sizes(self.cell.state_size))

    supports_masking = True

    def _lower_mask(self, core, inputs, output, mask):
        return self.compute_mask(inputs, mask)

    def compute_mask(self, inputs, previous_mask=None):
        mask = previous_mask[0] if isinstance(previous_mask, list) else previous_mask
        out = mask if self.return_sequences else None
        n = len(_flat_sizes(self.cell.state_size))
        return [out] + [None] * n if self.return_state else out

    def call(self, sequences, *states, initial_state=None, mask=None, training=None):
        """The cell over the sequence; with a mask (batch, timesteps) the masked steps are
        skipped as Keras does (states carried over them; their output the step before's, or
        zeros with zero_output_for_mask)."""
        who = self._who()
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if mask is not None and not hasattr(mask, "_layer"):  # data: 1 keeps, 0 masks
            mask = np.asarray(mask).astype(np.float32)
        shape = tuple(sequences.shape)
        if len(shape) < 3:
            raise ValueError(f"{who}: expects input of rank 3 (batch, timesteps, features), "
                             f"got {shape_str(shape)}")
        given = _flatten(list(states)) + _flatten(initial_state)
        sizes = _flat_sizes(self.cell.state_size)
        if given:
            if len(given) != len(sizes):
                raise ValueError(f"{who}: its cell has {len(sizes)} state"
                                 f"{'s' if len(sizes) > 1 else ''} of sizes {sizes}, got "
                                 f"{len(given)} initial states")
            for s, d in zip(given, sizes):
                if len(s.shape) != 2 or s.shape[1] != d:
                    raise ValueError(f"{who}: an initial state must be (batch, {d}), got "
                                     f"{shape_str(tuple(s.shape))}")
        fused = self._fused(mask is not None)
        if fused is not None and len(shape) == 3:
            ins = [sequences] + given + ([mask] if mask is not None else [])
            return fused(ins if len(ins) > 1 else sequences)
        return self._unrolled(sequences, given, training, mask)

    def _fused(self, masked: bool = False):
        """The fused ops' layer when every cell is a built-in one, else None (one taking the
        mask as its last input when `masked`). Made once, and kept in a dict: a helper of this
        layer's trace, not a sublayer that pickling, copies or configs describe."""
        cache = vars(self).setdefault("_fused_cache", {})
        if masked not in cache:
            cells = self.cell.cells if isinstance(self.cell, StackedRNNCells) else [self.cell]
            cache[masked] = _FusedCells(self, cells, masked) if all(map(_fusable, cells)) \
                else None
        return cache[masked]

    def _unrolled(self, sequences, given: list, training, mask=None):
        """The cell's call() at each timestep (pynn.ops: graph nodes in a trace, or run now on
        data)."""
        steps = sequences.shape[1]
        if steps is None:
            raise ValueError(f"{self._who()}: cell {type(self.cell).__name__} runs unrolled, one "
                             "timestep at a time, so the number of timesteps must be known, got "
                             f"{shape_str(tuple(sequences.shape))}")
        if steps == 0:
            raise ValueError(f"{self._who()}: the sequence has no timesteps")
        if given:
            states = _pack(given, self.cell.state_size)
        else:
            states = self.get_initial_state(ops.shape(sequences)[0])
        outputs = []
        keep_all = None if mask is None else ops.cast(mask, "float32")
        _reset_dropout_masks(self.cell)
        try:
            for t in (range(steps - 1, -1, -1) if self.go_backwards else range(steps)):
                output, new_states = _step(self.cell, sequences[:, t], states, training)
                if keep_all is not None:  # a masked step keeps the states, as Keras's rnn
                    keep = keep_all[:, t:t + 1]
                    before = _flatten(states)
                    # its output: zeros, or the first state before the step (the last
                    # cell's, for a stack)
                    last = states[-1] if isinstance(states[-1], (list, tuple)) else states
                    prev = _flatten(last)[0]
                    output = output * keep if self.zero_output_for_mask else \
                        output * keep + prev * (1.0 - keep)
                    new_states = _pack([n * keep + o * (1.0 - keep) for n, o in
                                        zip(_flatten(new_states), before)],
                                       self.cell.state_size)
                states = new_states
                if self.return_sequences:
                    outputs.append(output)
        finally:
            _reset_dropout_masks(self.cell)
        out = ops.stack(outputs, axis=1) if self.return_sequences else output
        return [out] + _flatten(states) if self.return_state else out

    def get_config(self) -> dict:
        from .. import saving
        return {**super().get_config(), "return_sequences": self.return_sequences,
                "return_state": self.return_state, "go_backwards": self.go_backwards,
                "stateful": self.stateful, "unroll": self.unroll,
                "zero_output_for_mask": self.zero_output_for_mask,
                "cell": saving.serialize_keras_object(self.cell)}

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        from .. import saving
        config = dict(config)
        cell = config.pop("cell", None)
        if isinstance(cell, dict):
            cell = saving.deserialize_keras_object(cell, custom_objects)
        return cls(cell, **config)


def _prefix_paths(layer, prefix: str) -> None:
    """Puts `prefix/` before the paths of a cell's weights (a stack's cells' too), once."""
    for attr in layer._weight_attrs:
        var = getattr(layer, attr)
        if not var.path.startswith(prefix + "/"):
            var._path = f"{prefix}/{var.path}"
    if isinstance(layer, StackedRNNCells):
        for cell in layer.cells:
            _prefix_paths(cell, f"{prefix}/{layer.name}")


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

    def _lower_inner(self, inner, core, node, start: int, mask=None):
        """Lowers `inner` with its slice of this wrapper's variable ids (and the input's mask,
        when there is one)."""
        n = len(inner._weight_attrs)
        saved = inner._var_ids
        inner._var_ids = list(self._var_ids[start:start + n])
        try:
            return inner.lower(core, node) if mask is None else \
                inner.lower(core, node, mask=mask)
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
        if not isinstance(layer, _FusedRNN):
            raise ValueError(f"{who}: wraps a SimpleRNN, LSTM or GRU layer, got "
                             f"{type(layer).__name__}")
        if layer.stateful or getattr(backward_layer, "stateful", False):
            raise NotImplementedError(f"{who}: a stateful layer inside Bidirectional is not "
                                      "supported yet; use stateful SimpleRNN, LSTM, GRU or RNN "
                                      "layers directly")
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
            if not isinstance(backward_layer, _FusedRNN):
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
        for inner in (self.forward_layer, self.backward_layer):
            # as Keras: masked steps of a returned sequence are zeros in both directions
            inner.zero_output_for_mask = inner.return_sequences
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

    supports_masking = True

    def _lower_mask(self, core, inputs, output, mask):
        mask = mask[0] if isinstance(mask, list) else mask
        if not self.return_sequences:
            out = [None, None] if self.merge_mode is None else [None]
        else:
            out = [mask, mask] if self.merge_mode is None else [mask]
        if self.return_state:
            out += [None] * (2 * self.forward_layer.n_states)
        return out if len(out) > 1 else out[0]

    def lower(self, core, node, mask=None):
        nf = len(self.forward_layer._weight_attrs)
        f = self._lower_inner(self.forward_layer, core, node, 0, mask)
        b = self._lower_inner(self.backward_layer, core, node, nf, mask)
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

    supports_masking = True  # passes its input's mask on, as Keras's

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


__all__ = ["SimpleRNN", "LSTM", "GRU", "Bidirectional", "TimeDistributed", "RNN",
           "SimpleRNNCell", "LSTMCell", "GRUCell", "StackedRNNCells"]
