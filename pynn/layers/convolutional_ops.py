"""Convolutions written with pynn.ops, as Keras writes its own: depthwise, separable and 3-D
convolutions (transposed too), 3-D and adaptive pooling. Each layer's `call()` is traced into
the core graph like a user layer's (the taps of the window are strided slices, concatenated and
multiplied out), so they train, save and run in the core; the 1-D and 2-D convolutions and pools
of convolutional.py and pooling.py are single core ops instead, and faster.
"""

from .. import activations, constraints, initializers, ops, regularizers
from .base import Layer
from .convolutional import (
    conv_output_length,
    normalize_data_format,
    normalize_padding,
    normalize_tuple,
    transpose_geometry,
)


def _refuse(who: str, **given) -> None:
    for arg, v in given.items():
        if v is not None:
            raise ValueError(f"{who}: {arg} is not supported")


def _spatial_out(layer, spatial) -> tuple:
    return tuple(conv_output_length(s, k, layer.padding, st, d) for s, k, st, d in zip(
        spatial, layer.kernel_size, layer.strides, layer.dilation_rate))


class _WindowConv(Layer):
    """What the depthwise, separable and 3-D convolutions share: the window's geometry, the
    activation, the bias, and shapes in either data format."""

    rank = 2

    def _geometry(self, kernel_size, strides, padding, data_format, dilation_rate) -> None:
        who = self._who()
        n = self.rank
        self.kernel_size = normalize_tuple(kernel_size, n, "kernel_size", who)
        self.strides = normalize_tuple(strides, n, "strides", who)
        self.dilation_rate = normalize_tuple(dilation_rate, n, "dilation_rate", who)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{who}: strides > 1 and dilation_rate > 1 cannot be combined "
                             f"(as in Keras), got strides={self.strides}, "
                             f"dilation_rate={self.dilation_rate}")
        self.padding = normalize_padding(padding, who)
        self.data_format = normalize_data_format(data_format, who, channels_first=True)

    def _weight_args(self, activation, use_bias, bias_initializer, bias_regularizer,
                     **kernels) -> None:
        """The activation, the bias, and each kernel's initializer and regularizer: kernels
        maps a prefix ("kernel", "depthwise", "pointwise") to (initializer, regularizer)."""
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.bias_initializer = initializers.get(bias_initializer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        for prefix, (init, reg) in kernels.items():
            setattr(self, f"{prefix}_initializer", initializers.get(init))
            setattr(self, f"{prefix}_regularizer", regularizers.get(reg))

    def _constraints(self, **given) -> None:
        """Each weight's constraint: given maps a prefix ("bias", "kernel", ...) to it."""
        for prefix, c in given.items():
            setattr(self, f"{prefix}_constraint", constraints.get(c))

    def _who(self) -> str:
        return f"{type(self).__name__} '{self.name}'"

    def _channels(self, input_shape) -> int:
        if len(input_shape) != self.rank + 2:
            raise ValueError(f"{self._who()}: expects inputs of rank {self.rank + 2} (batch, "
                             f"{self.rank} spatial axes, channels), got {tuple(input_shape)}")
        c = input_shape[1] if self.data_format == "channels_first" else input_shape[-1]
        if c is None:
            raise ValueError(f"{self._who()}: the channel axis must be known, got "
                             f"{tuple(input_shape)}")
        return c

    def _out_channels(self, input_shape) -> int:
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        first = self.data_format == "channels_first"
        spatial = _spatial_out(self, input_shape[2:] if first else input_shape[1:-1])
        c = self._out_channels(input_shape)
        return (input_shape[0], c, *spatial) if first else (input_shape[0], *spatial, c)

    def _check_fits(self, input_shape) -> None:
        out = self.compute_output_shape(input_shape)
        spatial = out[2:] if self.data_format == "channels_first" else out[1:-1]
        if any(d is not None and d < 1 for d in spatial):
            raise ValueError(f"{self._who()}: the kernel {self.kernel_size} (dilation "
                             f"{self.dilation_rate}) is larger than the input "
                             f"{tuple(input_shape)} with padding='{self.padding}'")

    def _finish(self, y):
        if self.use_bias:
            if self.data_format == "channels_first":
                y = y + ops.reshape(self.bias, (-1,) + (1,) * self.rank)
            else:
                y = y + self.bias
        return self.activation(y)

    def _window_config(self) -> dict:
        return {"kernel_size": self.kernel_size, "strides": self.strides,
                "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": self.dilation_rate,
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "bias_constraint": constraints.serialize(self.bias_constraint)}


class DepthwiseConv2D(_WindowConv):
    """Each input channel convolved with depth_multiplier filters of its own: (batch, h, w, c)
    to (batch, h', w', c * depth_multiplier). The kernel is (kh, kw, c, depth_multiplier), as in
    Keras (weight name "kernel").

    Args:
        kernel_size, strides, dilation_rate: an int or (height, width).
        padding: 'valid' or 'same'. data_format: 'channels_last' (None) or 'channels_first'.
        depth_multiplier: filters per input channel (1).
        activation, use_bias, depthwise_initializer, bias_initializer, depthwise_regularizer,
        bias_regularizer: as for Conv2D.

    Example:
        >>> layer = pynn.layers.DepthwiseConv2D(3, depth_multiplier=2)
        >>> layer.compute_output_shape((None, 28, 28, 8))
        (None, 26, 26, 16)
    """

    rank = 2

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier: int = 1,
                 data_format=None, dilation_rate=1, activation=None, use_bias: bool = True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        who = self._who()
        _refuse(who, activity_regularizer=activity_regularizer)
        self._constraints(bias=bias_constraint, depthwise=depthwise_constraint)
        if isinstance(depth_multiplier, bool) or not isinstance(depth_multiplier, int) or \
                depth_multiplier < 1:
            raise ValueError(f"{who}: depth_multiplier must be a positive int, got "
                             f"{depth_multiplier!r}")
        self._geometry(kernel_size, strides, padding, data_format, dilation_rate)
        self.depth_multiplier = depth_multiplier
        self._weight_args(activation, use_bias, bias_initializer, bias_regularizer,
                          depthwise=(depthwise_initializer, depthwise_regularizer))

    def _out_channels(self, input_shape) -> int:
        return self._channels(input_shape) * self.depth_multiplier

    def build(self, input_shape) -> None:
        c = self._channels(input_shape)
        self._check_fits(input_shape)
        self.kernel = self.add_weight(self.kernel_size + (c, self.depth_multiplier),
                                      self.depthwise_initializer, name="kernel",
                                      regularizer=self.depthwise_regularizer,
                                      constraint=self.depthwise_constraint)
        if self.use_bias:
            self.bias = self.add_weight((c * self.depth_multiplier,), self.bias_initializer,
                                        name="bias", regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)

    def call(self, inputs):
        y = ops.depthwise_conv(inputs, self.kernel, self.strides, self.padding,
                               self.data_format, self.dilation_rate)
        return self._finish(y)

    def get_config(self) -> dict:
        return {**super().get_config(), "depth_multiplier": self.depth_multiplier,
                **self._window_config(),
                "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
                "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
                "depthwise_constraint": constraints.serialize(self.depthwise_constraint)}


class DepthwiseConv1D(DepthwiseConv2D):
    """DepthwiseConv2D over (batch, steps, channels) sequences; kernel (k, c, multiplier).

    Example:
        >>> pynn.layers.DepthwiseConv1D(5).compute_output_shape((None, 100, 4))
        (None, 96, 4)
    """

    rank = 1


class SeparableConv2D(_WindowConv):
    """A depthwise convolution, then a 1x1 convolution to `filters` channels: Keras's
    SeparableConv2D. Weights "depthwise_kernel" (kh, kw, c, depth_multiplier),
    "pointwise_kernel" (1, 1, c * depth_multiplier, filters) and "bias" (filters).

    Args:
        filters: the output channels. depth_multiplier: depthwise filters per input channel.
        Other arguments as for DepthwiseConv2D, with pointwise_initializer and
        pointwise_regularizer for the 1x1 kernel.

    Example:
        >>> pynn.layers.SeparableConv2D(16, 3).compute_output_shape((None, 32, 32, 3))
        (None, 30, 30, 16)
    """

    rank = 2

    def __init__(self, filters: int, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, depth_multiplier: int = 1, activation=None,
                 use_bias: bool = True, depthwise_initializer="glorot_uniform",
                 pointwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, pointwise_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, depthwise_constraint=None, pointwise_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        who = self._who()
        _refuse(who, activity_regularizer=activity_regularizer)
        self._constraints(bias=bias_constraint, depthwise=depthwise_constraint,
                          pointwise=pointwise_constraint)
        for arg, v in (("filters", filters), ("depth_multiplier", depth_multiplier)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{who}: {arg} must be a positive int, got {v!r}")
        self._geometry(kernel_size, strides, padding, data_format, dilation_rate)
        self.filters, self.depth_multiplier = filters, depth_multiplier
        self._weight_args(activation, use_bias, bias_initializer, bias_regularizer,
                          depthwise=(depthwise_initializer, depthwise_regularizer),
                          pointwise=(pointwise_initializer, pointwise_regularizer))

    def _out_channels(self, input_shape) -> int:
        self._channels(input_shape)
        return self.filters

    def build(self, input_shape) -> None:
        c = self._channels(input_shape)
        self._check_fits(input_shape)
        self.depthwise_kernel = self.add_weight(
            self.kernel_size + (c, self.depth_multiplier), self.depthwise_initializer,
            name="depthwise_kernel", regularizer=self.depthwise_regularizer,
            constraint=self.depthwise_constraint)
        self.pointwise_kernel = self.add_weight(
            (1,) * self.rank + (c * self.depth_multiplier, self.filters),
            self.pointwise_initializer, name="pointwise_kernel",
            regularizer=self.pointwise_regularizer, constraint=self.pointwise_constraint)
        if self.use_bias:
            self.bias = self.add_weight((self.filters,), self.bias_initializer, name="bias",
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)

    def call(self, inputs):
        y = ops.separable_conv(inputs, self.depthwise_kernel, self.pointwise_kernel,
                               self.strides, self.padding, self.data_format, self.dilation_rate)
        return self._finish(y)

    def get_config(self) -> dict:
        return {**super().get_config(), "depth_multiplier": self.depth_multiplier,
                "filters": self.filters, **self._window_config(),
                "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
                "pointwise_initializer": initializers.serialize(self.pointwise_initializer),
                "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
                "pointwise_regularizer": regularizers.serialize(self.pointwise_regularizer),
                "depthwise_constraint": constraints.serialize(self.depthwise_constraint),
                "pointwise_constraint": constraints.serialize(self.pointwise_constraint)}


class SeparableConv1D(SeparableConv2D):
    """SeparableConv2D over (batch, steps, channels) sequences.

    Example:
        >>> pynn.layers.SeparableConv1D(8, 3).compute_output_shape((None, 50, 4))
        (None, 48, 8)
    """

    rank = 1


class Conv3D(_WindowConv):
    """3-D convolution over (batch, depth, height, width, channels) volumes; kernel (kd, kh, kw,
    in_channels / groups, filters), as in Keras.

    Args:
        filters: the output channels. groups: channel groups convolved apart (1).
        kernel_size, strides, dilation_rate: an int or (depth, height, width).
        Other arguments as for Conv2D.

    Example:
        >>> pynn.layers.Conv3D(4, 3).compute_output_shape((None, 8, 8, 8, 2))
        (None, 6, 6, 6, 4)
    """

    rank = 3

    def __init__(self, filters: int, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups: int = 1, activation=None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        who = self._who()
        _refuse(who, activity_regularizer=activity_regularizer)
        self._constraints(bias=bias_constraint, kernel=kernel_constraint)
        for arg, v in (("filters", filters), ("groups", groups)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{who}: {arg} must be a positive int, got {v!r}")
        if filters % groups:
            raise ValueError(f"{who}: filters ({filters}) must be a multiple of groups "
                             f"({groups})")
        self._geometry(kernel_size, strides, padding, data_format, dilation_rate)
        self.filters, self.groups = filters, groups
        self._weight_args(activation, use_bias, bias_initializer, bias_regularizer,
                          kernel=(kernel_initializer, kernel_regularizer))

    def _out_channels(self, input_shape) -> int:
        self._channels(input_shape)
        return self.filters

    def build(self, input_shape) -> None:
        c = self._channels(input_shape)
        if c % self.groups:
            raise ValueError(f"{self._who()}: {c} input channels are not a multiple of groups "
                             f"({self.groups})")
        self._check_fits(input_shape)
        self.kernel = self.add_weight(self.kernel_size + (c // self.groups, self.filters),
                                      self.kernel_initializer, name="kernel",
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight((self.filters,), self.bias_initializer, name="bias",
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)

    def call(self, inputs):
        y = ops.conv(inputs, self.kernel, self.strides, self.padding, self.data_format,
                     self.dilation_rate)
        return self._finish(y)

    def get_config(self) -> dict:
        return {**super().get_config(), "filters": self.filters, "groups": self.groups,
                **self._window_config(),
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint)}


class Conv3DTranspose(_WindowConv):
    """The transposed 3-D convolution over (batch, depth, height, width, channels) volumes:
    (batch, *spatial * strides, filters) with padding 'same'. The kernel is (kd, kh, kw, filters,
    in_channels), as in Keras.

    Args:
        filters: the output channels.
        kernel_size, strides, dilation_rate: an int or (depth, height, width).
        padding: 'valid' or 'same'. output_padding: None, or extra rows at the end of each axis.
        Other arguments as for Conv3D.

    Example:
        >>> pynn.layers.Conv3DTranspose(4, 3, strides=2, padding="same").compute_output_shape(
        ...     (None, 4, 4, 4, 2))
        (None, 8, 8, 8, 4)
    """

    rank = 3

    def __init__(self, filters: int, kernel_size, strides=1, padding="valid", data_format=None,
                 output_padding=None, dilation_rate=1, activation=None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        who = self._who()
        _refuse(who, activity_regularizer=activity_regularizer)
        self._constraints(bias=bias_constraint, kernel=kernel_constraint)
        if isinstance(filters, bool) or not isinstance(filters, int) or filters < 1:
            raise ValueError(f"{who}: filters must be a positive int, got {filters!r}")
        self._geometry(kernel_size, strides, padding, data_format, dilation_rate)
        self.output_padding = (None if output_padding is None else normalize_tuple(
            output_padding, 3, "output_padding", who, allow_zero=True))
        if self.output_padding is not None and any(
                p >= s for p, s in zip(self.output_padding, self.strides)):
            raise ValueError(f"{who}: output_padding {self.output_padding} must be smaller "
                             f"than strides {self.strides}")
        self.filters = filters
        self._weight_args(activation, use_bias, bias_initializer, bias_regularizer,
                          kernel=(kernel_initializer, kernel_regularizer))

    def _out_channels(self, input_shape) -> int:
        self._channels(input_shape)
        return self.filters

    def compute_output_shape(self, input_shape):
        first = self.data_format == "channels_first"
        self._channels(input_shape)
        pads = self.output_padding or (None,) * 3
        spatial = tuple(None if n is None else transpose_geometry(n, k, s, d, self.padding, p)[0]
                        for n, k, s, d, p in zip(input_shape[2:] if first else input_shape[1:-1],
                                                 self.kernel_size, self.strides,
                                                 self.dilation_rate, pads))
        return ((input_shape[0], self.filters, *spatial) if first
                else (input_shape[0], *spatial, self.filters))

    def build(self, input_shape) -> None:
        c = self._channels(input_shape)
        self.kernel = self.add_weight(self.kernel_size + (self.filters, c),
                                      self.kernel_initializer, name="kernel",
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight((self.filters,), self.bias_initializer, name="bias",
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)

    def call(self, inputs):
        y = ops.conv_transpose(inputs, self.kernel, self.strides, self.padding,
                               self.output_padding, self.data_format, self.dilation_rate)
        return self._finish(y)

    def get_config(self) -> dict:
        return {**super().get_config(), "filters": self.filters,
                "output_padding": self.output_padding, **self._window_config(),
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint)}


class _Pool3D(Layer):
    """Max or average pooling over (batch, depth, height, width, channels) volumes."""

    op = "max_pool"

    def __init__(self, pool_size=(2, 2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(**kwargs)
        who = f"{type(self).__name__} '{self.name}'"
        self.pool_size = normalize_tuple(pool_size, 3, "pool_size", who)
        self.strides = (self.pool_size if strides is None
                        else normalize_tuple(strides, 3, "strides", who))
        self.padding = normalize_padding(padding, who)
        self.data_format = normalize_data_format(data_format, who, channels_first=True)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 5:
            raise ValueError(f"{type(self).__name__} '{self.name}': expects inputs of rank 5, "
                             f"got {tuple(input_shape)}")
        first = self.data_format == "channels_first"
        spatial = tuple(conv_output_length(s, p, self.padding, st) for s, p, st in zip(
            input_shape[2:] if first else input_shape[1:-1], self.pool_size, self.strides))
        c = input_shape[1] if first else input_shape[-1]
        return (input_shape[0], c, *spatial) if first else (input_shape[0], *spatial, c)

    def call(self, inputs):
        # the window's taps (strided slices of the padded input), then their max or mean: with
        # 'same' padding the max pads with -inf and the mean counts the taps inside the volume
        from ..ops.nn import _same_pads, _taps
        first = self.data_format == "channels_first"
        x = ops.moveaxis(inputs, 1, -1) if first else inputs
        if self.padding == "same":
            spatial = ops.shape(x)[1:-1]
            pads = [(0, 0)] + [_same_pads(n, k, s, 1) for n, k, s in zip(
                spatial, self.pool_size, self.strides)] + [(0, 0)]
            fill = float("-inf") if self.op == "max_pool" else 0.0
            x = ops.pad(x, pads, constant_values=fill)
        taps, _ = _taps(x, self.pool_size, self.strides, "valid", (1, 1, 1), self.name)
        if self.op == "max_pool":
            y = ops.max(ops.stack(taps, axis=-1), axis=-1)
        else:
            y = ops.sum(ops.stack(taps, axis=-1), axis=-1)
            if self.padding == "same":
                ones, _ = _taps(ops.pad(ops.ones_like(inputs if not first else
                                                      ops.moveaxis(inputs, 1, -1)), pads),
                                self.pool_size, self.strides, "valid", (1, 1, 1), self.name)
                y = y / ops.sum(ops.stack(ones, axis=-1), axis=-1)
            else:
                y = y / float(self.pool_size[0] * self.pool_size[1] * self.pool_size[2])
        return ops.moveaxis(y, -1, 1) if first else y

    def get_config(self) -> dict:
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding, "data_format": self.data_format}


class MaxPooling3D(_Pool3D):
    """The maximum over each pool_size window of (batch, d, h, w, channels) volumes.

    Example:
        >>> pynn.layers.MaxPooling3D().compute_output_shape((None, 8, 8, 8, 3))
        (None, 4, 4, 4, 3)
    """

    op = "max_pool"


class AveragePooling3D(_Pool3D):
    """The mean over each pool_size window of (batch, d, h, w, channels) volumes (with 'same'
    padding, of the window's part inside the volume)."""

    op = "average_pool"


class _GlobalPool3D(Layer):
    """The mean or maximum over the three spatial axes."""

    reduce = "mean"

    def __init__(self, data_format=None, keepdims: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = normalize_data_format(
            data_format, f"{type(self).__name__} '{self.name}'", channels_first=True)
        self.keepdims = bool(keepdims)

    def _axes(self) -> tuple:
        return (2, 3, 4) if self.data_format == "channels_first" else (1, 2, 3)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 5:
            raise ValueError(f"{type(self).__name__} '{self.name}': expects inputs of rank 5, "
                             f"got {tuple(input_shape)}")
        if self.keepdims:
            return tuple(1 if i in self._axes() else d for i, d in enumerate(input_shape))
        return tuple(d for i, d in enumerate(input_shape) if i not in self._axes())

    def call(self, inputs):
        fn = ops.mean if self.reduce == "mean" else ops.max
        return fn(inputs, axis=self._axes(), keepdims=self.keepdims)

    def get_config(self) -> dict:
        return {**super().get_config(), "data_format": self.data_format,
                "keepdims": self.keepdims}


class GlobalAveragePooling3D(_GlobalPool3D):
    """The mean over depth, height and width: (batch, d, h, w, c) -> (batch, c)."""

    reduce = "mean"


class GlobalMaxPooling3D(_GlobalPool3D):
    """The maximum over depth, height and width: (batch, d, h, w, c) -> (batch, c)."""

    reduce = "max"


class _AdaptivePool(Layer):
    """Pools each spatial axis into output_size windows: window i of an axis of length n spans
    [floor(i n / out), ceil((i + 1) n / out)), as Keras and PyTorch define adaptive pooling;
    the windows' means or maxima are concatenated along the axis."""

    rank = 1
    reduce = "mean"

    def __init__(self, output_size, data_format=None, **kwargs):
        super().__init__(**kwargs)
        who = f"{type(self).__name__} '{self.name}'"
        self.output_size = normalize_tuple(output_size, self.rank, "output_size", who)
        self.data_format = normalize_data_format(data_format, who, channels_first=True)

    def _axes(self) -> tuple:
        start = 2 if self.data_format == "channels_first" else 1
        return tuple(range(start, start + self.rank))

    def compute_output_shape(self, input_shape):
        if len(input_shape) != self.rank + 2:
            raise ValueError(f"{type(self).__name__} '{self.name}': expects inputs of rank "
                             f"{self.rank + 2}, got {tuple(input_shape)}")
        out = list(input_shape)
        for axis, size in zip(self._axes(), self.output_size):
            out[axis] = size
        return tuple(out)

    def call(self, inputs):
        fn = ops.mean if self.reduce == "mean" else ops.max
        x = inputs
        for axis, out in zip(self._axes(), self.output_size):
            n = ops.shape(x)[axis]
            if n is None:
                raise ValueError(f"{type(self).__name__} '{self.name}': the pooled axes' "
                                 f"lengths must be known, got {ops.shape(inputs)}")
            pieces = []
            for i in range(out):
                lo, hi = (i * n) // out, -((-(i + 1) * n) // out)
                key = (slice(None),) * axis + (slice(lo, hi),)
                pieces.append(fn(x[key], axis=axis, keepdims=True))
            x = pieces[0] if out == 1 else ops.concatenate(pieces, axis=axis)
        return x

    def get_config(self) -> dict:
        return {**super().get_config(), "output_size": self.output_size,
                "data_format": self.data_format}


class AdaptiveAveragePooling1D(_AdaptivePool):
    """The mean over output_size adaptive windows of (batch, steps, channels) sequences.

    Example:
        >>> pynn.layers.AdaptiveAveragePooling1D(3).compute_output_shape((None, 7, 2))
        (None, 3, 2)
    """

    rank, reduce = 1, "mean"


class AdaptiveAveragePooling2D(_AdaptivePool):
    """The mean over (rows, cols) adaptive windows of (batch, h, w, channels) images."""

    rank, reduce = 2, "mean"


class AdaptiveAveragePooling3D(_AdaptivePool):
    """The mean over adaptive windows of (batch, d, h, w, channels) volumes."""

    rank, reduce = 3, "mean"


class AdaptiveMaxPooling1D(_AdaptivePool):
    """The maximum over output_size adaptive windows of (batch, steps, channels) sequences."""

    rank, reduce = 1, "max"


class AdaptiveMaxPooling2D(_AdaptivePool):
    """The maximum over (rows, cols) adaptive windows of (batch, h, w, channels) images."""

    rank, reduce = 2, "max"


class AdaptiveMaxPooling3D(_AdaptivePool):
    """The maximum over adaptive windows of (batch, d, h, w, channels) volumes."""

    rank, reduce = 3, "max"


Convolution3D, Convolution3DTranspose = Conv3D, Conv3DTranspose
SeparableConvolution1D, SeparableConvolution2D = SeparableConv1D, SeparableConv2D
MaxPool3D, AvgPool3D = MaxPooling3D, AveragePooling3D
GlobalAvgPool3D, GlobalMaxPool3D = GlobalAveragePooling3D, GlobalMaxPooling3D

__all__ = ["AdaptiveAveragePooling1D", "AdaptiveAveragePooling2D", "AdaptiveAveragePooling3D",
           "AdaptiveMaxPooling1D", "AdaptiveMaxPooling2D", "AdaptiveMaxPooling3D",
           "AveragePooling3D", "AvgPool3D", "Conv3D", "Conv3DTranspose", "Convolution3D",
           "Convolution3DTranspose", "SeparableConvolution1D", "SeparableConvolution2D",
           "DepthwiseConv1D",
           "DepthwiseConv2D", "GlobalAveragePooling3D", "GlobalAvgPool3D", "GlobalMaxPool3D",
           "GlobalMaxPooling3D", "MaxPool3D", "MaxPooling3D", "SeparableConv1D",
           "SeparableConv2D"]
