"""Convolutional LSTM layers: ConvLSTM1D, ConvLSTM2D and ConvLSTM3D, Keras 3's.

A ConvLSTM is an LSTM whose input and recurrent products are convolutions, so its states keep
the input's spatial axes: (batch, *spatial, filters). The layers are Keras's generic RNN
(recurrent.py) over a private cell written with pynn.ops.conv; RNN unrolls the cell one timestep
at a time into the core graph, so the layers train, save and run in the core like a user's cell.
"""

from .. import constraints, initializers, ops, regularizers
from ..utils.shape_utils import shape_str
from .convolutional import (
    conv_output_length,
    normalize_data_format,
    normalize_padding,
    normalize_tuple,
)
from .recurrent import RNN, LSTMCell, _act_fn, _flatten, _rate


class _ConvLSTMCell(LSTMCell):
    """One timestep of a ConvLSTM, Keras's ConvLSTMCell: LSTMCell's gates i, f, c, o, with

        z = conv(x_t, kernel; strides, padding, dilation) + conv(h, recurrent_kernel; 1, 'same')
        i, f, o = recurrent_activation(z_i, z_f, z_o)    c = f c + i activation(z_c)
        h = o activation(c)

    kernel (*kernel_size, channels, 4 filters), recurrent_kernel (*kernel_size, filters,
    4 filters), bias (4 filters); the gates are consecutive blocks of filters on the channel axis.
    Built for one step's input (batch, *spatial, channels) (channels first in 'channels_first').
    `units` is `filters`: the states' channels.
    """

    def __init__(self, rank: int, filters: int, kernel_size, strides, padding, data_format,
                 dilation_rate, **kwargs):
        super().__init__(filters, **kwargs)
        self.rank, self.filters = rank, filters
        self.kernel_size, self.strides, self.dilation_rate = kernel_size, strides, dilation_rate
        self.padding, self.data_format = padding, data_format

    def _split_shape(self, input_shape) -> tuple:
        """(spatial axes, channels) of one step's input shape."""
        shape = tuple(input_shape)
        if self.data_format == "channels_first":
            return shape[2:], shape[1]
        return shape[1:-1], shape[-1]

    def state_shape(self, input_shape) -> tuple:
        """A state's shape without the batch axis, for one step's input shape."""
        spatial, _ = self._split_shape(input_shape)
        out = tuple(conv_output_length(s, k, self.padding, st, d) for s, k, st, d in zip(
            spatial, self.kernel_size, self.strides, self.dilation_rate))
        if self.data_format == "channels_first":
            return (self.filters,) + out
        return out + (self.filters,)

    def build(self, input_shape) -> None:
        _, channels = self._split_shape(input_shape)
        self._state_shape = self.state_shape(input_shape)
        gf = 4 * self.filters
        self.kernel = self.add_weight(self.kernel_size + (channels, gf), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint, name="kernel")
        self.recurrent_kernel = self.add_weight(
            self.kernel_size + (self.filters, gf), self.recurrent_initializer,
            regularizer=self.recurrent_regularizer, constraint=self.recurrent_constraint,
            name="recurrent_kernel")
        if self.use_bias:
            self.bias = self.add_weight((gf,), self._bias_value(),
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint, name="bias")
        else:
            self.bias = None

    def get_initial_state(self, batch_size=None) -> list:
        """Zeros for h and c: (batch_size, *spatial, filters) each."""
        return [ops.zeros((batch_size,) + self._state_shape) for _ in range(2)]

    def call(self, inputs, states, training=None):
        h_prev, c_prev = states[0], states[1]
        first = self.data_format == "channels_first"
        z = ops.conv(inputs, self.kernel, self.strides, self.padding, self.data_format,
                     self.dilation_rate)
        z = z + ops.conv(h_prev, self.recurrent_kernel, 1, "same", self.data_format)
        if self.use_bias:
            z = z + (ops.reshape(self.bias, (-1,) + (1,) * self.rank) if first else self.bias)
        f = self.filters

        def gate(k):
            block = slice(k * f, (k + 1) * f)
            return z[:, block] if first else z[..., block]

        act, ract = _act_fn(self.activation), _act_fn(self.recurrent_activation)
        c = ract(gate(1)) * c_prev + ract(gate(0)) * act(gate(2))
        h = ract(gate(3)) * act(c)
        return h, [h, c]


def _from_cell(attr: str):
    """A layer property that reads the cell's attribute, as Keras's ConvLSTM has them."""
    return property(lambda self: getattr(self.cell, attr))


class _ConvLSTM(RNN):
    """What ConvLSTM1D, ConvLSTM2D and ConvLSTM3D share: Keras's ConvLSTM, the generic RNN over
    a _ConvLSTMCell, on sequences (batch, timesteps, *spatial, channels).

    Subclasses set `rank`.
    """

    rank = 2

    def __init__(self, filters: int, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, activation="tanh", recurrent_activation="sigmoid",
                 use_bias: bool = True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias: bool = True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0, seed=None,
                 return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, **kwargs):
        name = kwargs.get("name")
        who = f"{type(self).__name__} '{name}'" if name else type(self).__name__
        if isinstance(filters, bool) or not isinstance(filters, int) or filters <= 0:
            raise ValueError(f"{who}: filters must be a positive int, got {filters!r}")
        if activity_regularizer is not None:
            raise ValueError(f"{who}: activity_regularizer is not supported")
        for arg, v in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if _rate(v, who, arg):
                raise NotImplementedError(
                    f"{who}: {arg} > 0 is not supported (Keras's ConvLSTM draws a mask per "
                    "gate); add a SpatialDropout or Dropout layer before it instead")
        n = self.rank
        kernel_size = normalize_tuple(kernel_size, n, "kernel_size", who)
        strides = normalize_tuple(strides, n, "strides", who)
        dilation_rate = normalize_tuple(dilation_rate, n, "dilation_rate", who)
        if max(strides) > 1 and max(dilation_rate) > 1:
            raise ValueError(f"{who}: strides > 1 and dilation_rate > 1 cannot be combined (as "
                             f"in Keras), got strides={strides}, dilation_rate={dilation_rate}")
        cell = _ConvLSTMCell(
            n, filters, kernel_size, strides, normalize_padding(padding, who),
            normalize_data_format(data_format, who, channels_first=True), dilation_rate,
            activation=activation, recurrent_activation=recurrent_activation, use_bias=use_bias,
            kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer, unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint,
            seed=seed, name="conv_lstm_cell",
            dtype=kwargs.get("dtype"))
        if stateful is not False:
            raise NotImplementedError(
                f"{who}: stateful=True is not supported: its convolutional cell runs unrolled, "
                "and only the fused SimpleRNN, LSTM and GRU ops keep states in the core. Pass "
                "the final states of one batch (return_state=True) as initial_state of the next")
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, **kwargs)

    filters = _from_cell("filters")
    kernel_size = _from_cell("kernel_size")
    strides = _from_cell("strides")
    padding = _from_cell("padding")
    data_format = _from_cell("data_format")
    dilation_rate = _from_cell("dilation_rate")
    activation = _from_cell("activation")
    recurrent_activation = _from_cell("recurrent_activation")
    use_bias = _from_cell("use_bias")
    kernel_initializer = _from_cell("kernel_initializer")
    recurrent_initializer = _from_cell("recurrent_initializer")
    bias_initializer = _from_cell("bias_initializer")
    unit_forget_bias = _from_cell("unit_forget_bias")
    kernel_regularizer = _from_cell("kernel_regularizer")
    recurrent_regularizer = _from_cell("recurrent_regularizer")
    bias_regularizer = _from_cell("bias_regularizer")
    kernel_constraint = _from_cell("kernel_constraint")
    recurrent_constraint = _from_cell("recurrent_constraint")
    bias_constraint = _from_cell("bias_constraint")
    dropout = _from_cell("dropout")
    recurrent_dropout = _from_cell("recurrent_dropout")
    seed = _from_cell("seed")

    # -- shapes ---------------------------------------------------------------------------------
    def _check_shape(self, shape: tuple) -> tuple:
        """One step's input shape (batch, *spatial, channels), checked, of a sequence's."""
        who, n = self._who(), self.rank
        if len(shape) != n + 3:
            raise ValueError(f"{who}: expects input of rank {n + 3} (batch, timesteps, {n} "
                             f"spatial axes, channels), got {shape_str(shape)}")
        step = (shape[0],) + tuple(shape[2:])
        spatial, channels = self.cell._split_shape(step)
        if channels is None or None in spatial:
            raise ValueError(f"{who}: the channels and spatial axes must be known, got "
                             f"{shape_str(shape)}")
        if min(self.cell.state_shape(step)) < 1:
            raise ValueError(f"{who}: the kernel {self.kernel_size} (dilation "
                             f"{self.dilation_rate}) is larger than the input "
                             f"{shape_str(shape)} with padding='{self.padding}'")
        return step

    def build(self, sequences_shape) -> None:
        shape = tuple(sequences_shape)
        if shape and isinstance(shape[0], (list, tuple)):  # [sequence, *states] shapes
            shape = tuple(shape[0])
        self._check_shape(shape)
        super().build(shape)

    def compute_output_shape(self, sequences_shape):
        shape = tuple(sequences_shape)
        if shape and isinstance(shape[0], (list, tuple)):
            shape = tuple(shape[0])
        state = (shape[0],) + self.cell.state_shape(self._check_shape(shape))
        out = (shape[0], shape[1]) + state[1:] if self.return_sequences else state
        return [out, state, state] if self.return_state else out

    # -- the call -------------------------------------------------------------------------------
    def call(self, sequences, *states, initial_state=None, mask=None, training=None):
        who = self._who()
        if mask is not None:
            raise ValueError(f"{who}: mask= is not supported (pynn's layers take no masks)")
        step = self._check_shape(tuple(sequences.shape))
        given = _flatten(list(states)) + _flatten(initial_state)
        if given:
            want = self.cell.state_shape(step)
            if len(given) != 2:
                raise ValueError(f"{who}: takes 2 initial states [h, c], got {len(given)}")
            for s in given:
                if tuple(s.shape[1:]) != want:
                    raise ValueError(f"{who}: an initial state must be "
                                     f"{shape_str((None,) + want)}, got "
                                     f"{shape_str(tuple(s.shape))}")
        return self._unrolled(sequences, given, training)

    # -- config ---------------------------------------------------------------------------------
    def get_config(self) -> dict:
        config = super().get_config()
        del config["cell"]
        cell = self.cell
        return {**config, "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding,
                "data_format": self.data_format, "dilation_rate": self.dilation_rate,
                "activation": self.activation,
                "recurrent_activation": self.recurrent_activation, "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(cell.kernel_initializer),
                "recurrent_initializer": initializers.serialize(cell.recurrent_initializer),
                "bias_initializer": initializers.serialize(cell.bias_initializer),
                "unit_forget_bias": self.unit_forget_bias,
                "kernel_regularizer": regularizers.serialize(cell.kernel_regularizer),
                "recurrent_regularizer": regularizers.serialize(cell.recurrent_regularizer),
                "bias_regularizer": regularizers.serialize(cell.bias_regularizer),
                "activity_regularizer": None,
                "kernel_constraint": constraints.serialize(cell.kernel_constraint),
                "recurrent_constraint": constraints.serialize(cell.recurrent_constraint),
                "bias_constraint": constraints.serialize(cell.bias_constraint),
                "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout,
                "seed": self.seed}

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        return cls(**config)


class ConvLSTM1D(_ConvLSTM):
    """1-D convolutional LSTM over sequences of 1-D signals (batch, timesteps, steps, channels),
    Keras 3's: an LSTM whose input and recurrent products are convolutions.

    Args:
        filters: the channels of the output and of the states h and c.
        kernel_size, strides, dilation_rate: an int or a tuple of 1 int (the input
            convolution's; the recurrent one is stride 1, 'same' padding, no dilation).
        padding: 'valid' (default) or 'same'. data_format: 'channels_last' (None) or
            'channels_first' (batch, timesteps, channels, steps).
        activation ('tanh'), recurrent_activation ('sigmoid'), use_bias, kernel_initializer
        ('glorot_uniform'), recurrent_initializer ('orthogonal'), bias_initializer ('zeros'),
        unit_forget_bias (True), *_regularizer: as LSTM's.
        dropout, recurrent_dropout: must be 0 (refused with NotImplementedError otherwise).
        seed: accepted for Keras compatibility.
        return_sequences, return_state, go_backwards: as RNN's; return_state gives [output, h, c].
        stateful: must be False (NotImplementedError: the cell runs unrolled).

    Weights: kernel (*kernel_size, channels, 4 filters), recurrent_kernel (*kernel_size, filters,
    4 filters), bias (4 filters), gates i, f, c, o. The timesteps must be known (the cell is
    unrolled into the graph one timestep at a time).

    Example:
        >>> layer = pynn.layers.ConvLSTM1D(8, 3)
        >>> layer.compute_output_shape((None, 5, 20, 2))
        (None, 18, 8)
    """

    rank = 1


class ConvLSTM2D(_ConvLSTM):
    """2-D convolutional LSTM (Shi et al. 2015) over sequences of images (batch, timesteps,
    rows, cols, channels), Keras 3's. Arguments as ConvLSTM1D's, with kernel_size, strides and
    dilation_rate an int or (rows, cols).

    Example:
        >>> layer = pynn.layers.ConvLSTM2D(16, 3, padding="same", return_sequences=True)
        >>> layer.compute_output_shape((None, 10, 32, 32, 3))
        (None, 10, 32, 32, 16)
    """

    rank = 2


class ConvLSTM3D(_ConvLSTM):
    """3-D convolutional LSTM over sequences of volumes (batch, timesteps, depth, rows, cols,
    channels), Keras 3's. Arguments as ConvLSTM1D's, with kernel_size, strides and
    dilation_rate an int or (depth, rows, cols).

    Example:
        >>> layer = pynn.layers.ConvLSTM3D(4, 3)
        >>> layer.compute_output_shape((None, 3, 8, 8, 8, 1))
        (None, 6, 6, 6, 4)
    """

    rank = 3


__all__ = ["ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"]
