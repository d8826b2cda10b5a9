"""Convolution layers: Conv2D and Conv1D, channels-last as in Keras.

A Conv1D lowers to the core's conv2d over a (1, steps, channels) image; its kernel is the core's
(1, width, in, out) kernel seen without its leading 1, so both share one buffer.
"""

from .. import activations, constraints, initializers, regularizers
from ..utils.shape_utils import shape_str
from .base import Layer


def normalize_tuple(value, n: int, what: str, layer: str, allow_zero: bool = False) -> tuple:
    """An int or a sequence of n ints, as a tuple of n positive (or non-negative) ints."""
    items = (value,) * n if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        items = tuple(items)
    except TypeError:
        items = None
    low = 0 if allow_zero else 1
    if items is None or len(items) != n or any(
            isinstance(v, bool) or not isinstance(v, int) or v < low for v in items):
        raise ValueError(f"{layer}: {what} must be an int or a tuple of {n} ints >= {low}, "
                         f"got {value!r}")
    return items


def normalize_padding(padding, layer: str, allowed=("valid", "same")) -> str:
    p = padding.lower() if isinstance(padding, str) else padding
    if p not in allowed:
        raise ValueError(f"{layer}: padding must be one of {', '.join(allowed)}, got {padding!r}")
    return p


def normalize_data_format(data_format, layer: str, channels_first: bool = False) -> str:
    """'channels_last' for None or itself; 'channels_first' where the layer takes it
    (`channels_first`), else a ValueError that says so."""
    if data_format in (None, "channels_last"):
        return "channels_last"
    if data_format == "channels_first":
        if channels_first:
            return data_format
        raise ValueError(f"{layer}: data_format='channels_first' is not supported; pynn's images "
                         "are channels_last (batch, height, width, channels)")
    raise ValueError(f"{layer}: data_format must be 'channels_last' or 'channels_first', got "
                     f"{data_format!r}")


def channels_last_shape(shape) -> tuple:
    """(batch, channels, *spatial) as (batch, *spatial, channels)."""
    return (shape[0], *shape[2:], shape[1])


def channels_first_shape(shape) -> tuple:
    """(batch, *spatial, channels) as (batch, channels, *spatial)."""
    return (shape[0], shape[-1], *shape[1:-1])


class ChannelsLastKernel(Layer):
    """A layer whose core op reads channels-last images (the convolutions and the pools) and
    that takes data_format='channels_first' too. Subclasses write `build_last`,
    `output_shape_last` and `lower_last` for channels-last shapes; with channels_first the input
    is transposed to channels last and the output back (an output without spatial axes, a
    global pool's, as it is), as Keras's TensorFlow backend runs channels_first on a CPU."""

    data_format = "channels_last"

    def _first(self) -> bool:
        return self.data_format == "channels_first"

    def build(self, input_shape) -> None:
        self.build_last(channels_last_shape(input_shape) if self._first() else input_shape)

    def compute_output_shape(self, input_shape):
        if not self._first():
            return self.output_shape_last(input_shape)
        out = self.output_shape_last(channels_last_shape(input_shape))
        return channels_first_shape(out) if len(out) > 2 else out

    def lower(self, core, node: int) -> int:
        if not self._first():
            return self.lower_last(core, node)
        rank = len(core.node_shape(node))
        node, _ = core.add_node("transpose", (node,), (), (*range(1, rank), 0))
        node = self.lower_last(core, node)
        rank = len(core.node_shape(node))
        if rank > 1:
            node, _ = core.add_node("transpose", (node,), (), (rank - 1, *range(rank - 1)))
        return node


def conv_output_length(size, window: int, padding: str, stride: int, dilation: int = 1):
    """The output length of a window sliding over `size` (None stays None), as Keras computes it."""
    if size is None:
        return None
    span = (window - 1) * dilation + 1
    if padding == "same":
        return -(-size // stride)
    if padding == "causal":
        return -(-size // stride) if stride > 1 else size
    return (size - span) // stride + 1 if size >= span else 0


def same_pads(size: int, window: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """'same' padding before and after, TensorFlow's rule (the extra one goes after)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (window - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def check_image(input_shape, rank: int, layer: str) -> None:
    """Refuses an input that is not (batch, *spatial, channels) with `rank` spatial axes."""
    if len(input_shape) != rank + 2:
        want = "(batch, steps, channels)" if rank == 1 else "(batch, height, width, channels)"
        raise ValueError(f"{layer}: expected an input of rank {rank + 2} {want}, got shape "
                         f"{shape_str(input_shape)}")
    if input_shape[-1] is None:
        raise ValueError(f"{layer}: the channel axis of the input must be known, got "
                         f"{shape_str(input_shape)}")


def weight_args(layer, who: str, filters, activation, use_bias, kernel_initializer,
                bias_initializer, kernel_regularizer, bias_regularizer, activity_regularizer,
                kernel_constraint, bias_constraint) -> None:
    """What every convolution takes besides its geometry: filters, activation, bias,
    initializers, regularizers and constraints (activity regularizers are refused)."""
    if isinstance(filters, bool) or not isinstance(filters, int) or filters <= 0:
        raise ValueError(f"{who}: filters must be a positive int, got {filters!r}")
    if activity_regularizer is not None:
        raise ValueError(f"{who}: activity_regularizer is not supported")
    layer.filters = filters
    layer.activation = activations.get(activation)
    layer.use_bias = bool(use_bias)
    layer.kernel_initializer = initializers.get(kernel_initializer)
    layer.bias_initializer = initializers.get(bias_initializer)
    layer.kernel_regularizer = regularizers.get(kernel_regularizer)
    layer.bias_regularizer = regularizers.get(bias_regularizer)
    layer.kernel_constraint = constraints.get(kernel_constraint)
    layer.bias_constraint = constraints.get(bias_constraint)


def weight_config(layer) -> dict:
    """weight_args' part of a convolution's config, with its geometry's shared keys."""
    return {"filters": layer.filters, "kernel_size": layer.kernel_size,
            "strides": layer.strides, "padding": layer.padding,
            "data_format": layer.data_format, "dilation_rate": layer.dilation_rate,
            "activation": activations.serialize(layer.activation), "use_bias": layer.use_bias,
            "kernel_initializer": initializers.serialize(layer.kernel_initializer),
            "bias_initializer": initializers.serialize(layer.bias_initializer),
            "kernel_regularizer": regularizers.serialize(layer.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(layer.bias_regularizer),
            "kernel_constraint": constraints.serialize(layer.kernel_constraint),
            "bias_constraint": constraints.serialize(layer.bias_constraint)}


class BaseConv(ChannelsLastKernel):
    """What Conv1D and Conv2D share: arguments, weights, output shape and lowering."""

    rank = 2

    def __init__(self, filters: int, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups: int = 1, activation=None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        who = f"{type(self).__name__} '{self.name}'"
        weight_args(self, who, filters, activation, use_bias, kernel_initializer,
                    bias_initializer, kernel_regularizer, bias_regularizer,
                    activity_regularizer, kernel_constraint, bias_constraint)
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise ValueError(f"{who}: the number of groups must be a positive int, got "
                             f"groups={groups!r}")
        if filters % groups:
            raise ValueError(f"{who}: the number of filters must be evenly divisible by the "
                             f"number of groups, got groups={groups}, filters={filters}")
        self.groups = groups
        self.kernel_size = normalize_tuple(kernel_size, self.rank, "kernel_size", who)
        self.strides = normalize_tuple(strides, self.rank, "strides", who)
        self.dilation_rate = normalize_tuple(dilation_rate, self.rank, "dilation_rate", who)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{who}: strides > 1 and dilation_rate > 1 cannot be combined "
                             f"(as in Keras), got strides={self.strides}, "
                             f"dilation_rate={self.dilation_rate}")
        allowed = ("valid", "same", "causal") if self.rank == 1 else ("valid", "same")
        self.padding = normalize_padding(padding, who, allowed)
        self.data_format = normalize_data_format(data_format, who, channels_first=True)

    def _who(self) -> str:
        return f"{type(self).__name__} '{self.name}'"

    def build_last(self, input_shape) -> None:
        check_image(input_shape, self.rank, self._who())
        out = self.output_shape_last(input_shape)
        if any(d is not None and d < 1 for d in out[1:-1]):
            span = tuple((k - 1) * d + 1 for k, d in zip(self.kernel_size, self.dilation_rate))
            raise ValueError(f"{self._who()}: the kernel (span {span}) is larger than the input "
                             f"{shape_str(input_shape)} with padding='{self.padding}'")
        if input_shape[-1] % self.groups:
            raise ValueError(f"{self._who()}: the number of input channels must be evenly "
                             f"divisible by the number of groups, got groups={self.groups}, "
                             f"but the input has {input_shape[-1]} channels")
        self.add_weight(self.kernel_size + (input_shape[-1] // self.groups, self.filters),
                        self.kernel_initializer, regularizer=self.kernel_regularizer,
                        constraint=self.kernel_constraint, name="kernel")
        if self.use_bias:
            self.add_weight((self.filters,), self.bias_initializer,
                            regularizer=self.bias_regularizer,
                            constraint=self.bias_constraint, name="bias")
        self.built = True

    def output_shape_last(self, input_shape):
        spatial = tuple(conv_output_length(s, k, self.padding, st, d) for s, k, st, d in zip(
            input_shape[1:-1], self.kernel_size, self.strides, self.dilation_rate))
        return (input_shape[0],) + spatial + (self.filters,)

    def _conv_attrs(self, spatial) -> tuple:
        """conv2d's attributes for a (height, width) image: strides, dilations, four pads,
        groups."""
        (h, w), (kh, kw) = spatial, self._kernel_2d()
        (sh, sw), (dh, dw) = self._pair(self.strides), self._pair(self.dilation_rate)
        top = bottom = left = right = 0
        if self.padding == "same":
            top, bottom = same_pads(h, kh, sh, dh)
            left, right = same_pads(w, kw, sw, dw)
        elif self.padding == "causal":
            left = (kw - 1) * dw
        return (sh, sw, dh, dw, top, left, bottom, right, self.groups)

    def _pair(self, t: tuple) -> tuple:
        return t if self.rank == 2 else (1,) + t

    def _kernel_2d(self) -> tuple:
        return self._pair(self.kernel_size)

    def get_config(self) -> dict:
        return {**super().get_config(), **weight_config(self), "groups": self.groups}


class Conv2D(BaseConv):
    """2D convolution over (batch, height, width, channels) images.

    Args:
        filters: number of output channels.
        kernel_size: an int or (height, width).
        strides: an int or (height, width) (1).
        padding: 'valid' (no padding) or 'same' (output size = ceil(input / stride)).
        data_format: 'channels_last' (None means the same) or 'channels_first'.
        dilation_rate: an int or (height, width) (1).
        groups: the number of groups the input channels are split into (1); each group is
            convolved with its own filters // groups filters, and the results are concatenated
            along the channel axis. Input channels and filters must both be divisible by it.
            The kernel is (kh, kw, in_channels // groups, filters).
        activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer: as for Dense.

    Example:
        >>> model = pynn.Sequential([pynn.Input((28, 28, 1)), pynn.layers.Conv2D(32, 3)])
        >>> model.output_shape
        (None, 26, 26, 32)
    """

    rank = 2

    def lower_last(self, core, node: int) -> int:
        shape = core.node_shape(node)
        node, _ = core.add_node("conv2d", (node,), tuple(self._var_ids),
                                self._conv_attrs(shape[:2]))
        return activations.spec(self.activation).lower(core, node)


class Conv1D(BaseConv):
    """1D convolution over (batch, steps, channels) sequences.

    Args:
        filters: number of output channels.
        kernel_size: an int (or a 1-tuple).
        strides: an int (1).
        padding: 'valid', 'same' or 'causal' (left padding only: output t sees inputs <= t).
        dilation_rate: an int (1).
        groups: as for Conv2D (kernel (width, in_channels // groups, filters)).
        Other arguments as for Conv2D.

    Example:
        >>> model = pynn.Sequential([pynn.Input((100, 8)), pynn.layers.Conv1D(16, 5)])
        >>> model.output_shape
        (None, 96, 16)
    """

    rank = 1

    def lower_last(self, core, node: int) -> int:
        steps, channels = core.node_shape(node)
        node, _ = core.add_node("reshape", (node,), (), (3, 1, steps, channels))
        node, (_, out_steps, filters) = core.add_node(
            "conv2d", (node,), tuple(self._var_ids), self._conv_attrs((1, steps)))
        node, _ = core.add_node("reshape", (node,), (), (2, out_steps, filters))
        return activations.spec(self.activation).lower(core, node)


def transpose_geometry(size: int, kernel: int, stride: int, dilation: int, padding: str,
                       output_padding) -> tuple[int, int]:
    """(output size, top pad of the conv2d it transposes) along one axis, as Keras computes a
    transposed convolution's output: 'same' gives size * stride, 'valid' (size - 1) * stride +
    max(span, stride); output_padding, when given, sets the extra rows at the end."""
    span = (kernel - 1) * dilation + 1
    if padding == "valid":
        extra = max(span, stride) - span if output_padding is None else output_padding
        lo, hi = span - 1, span - 1 + extra
    else:
        pad_len = (stride + span - 2 if output_padding is None
                   else span + span % 2 - 2 + output_padding)
        lo = min(pad_len // 2 + pad_len % 2, span - 1)
        hi = pad_len - lo
    return (size - 1) * stride + 1 + lo + hi - span + 1, span - 1 - lo


class BaseConvTranspose(ChannelsLastKernel):
    """What Conv1DTranspose and Conv2DTranspose share: the transposed convolution
    ("deconvolution"), conv's input gradient as a layer. It maps (batch, *spatial, C) to (batch,
    *spatial * strides, filters) with padding 'same' ((size - 1) * s + k with 'valid'); the
    kernel is (*kernel_size, filters, in_channels), as in Keras. One core op
    (conv2d_transpose, csrc/core/ops_conv.c)."""

    rank = 2

    def __init__(self, filters: int, kernel_size, strides=1, padding="valid",
                 output_padding=None, data_format=None, dilation_rate=1, activation=None,
                 use_bias: bool = True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(**kwargs)
        who = f"{type(self).__name__} '{self.name}'"
        weight_args(self, who, filters, activation, use_bias, kernel_initializer,
                    bias_initializer, kernel_regularizer, bias_regularizer,
                    activity_regularizer, kernel_constraint, bias_constraint)
        n = self.rank
        self.kernel_size = normalize_tuple(kernel_size, n, "kernel_size", who)
        self.strides = normalize_tuple(strides, n, "strides", who)
        self.dilation_rate = normalize_tuple(dilation_rate, n, "dilation_rate", who)
        self.output_padding = (None if output_padding is None else
                               normalize_tuple(output_padding, n, "output_padding", who,
                                               allow_zero=True))
        if self.output_padding is not None:
            for p, s in zip(self.output_padding, self.strides):
                if p >= s:
                    raise ValueError(f"{who}: output_padding {self.output_padding} must be "
                                     f"smaller than strides {self.strides}")
        self.padding = normalize_padding(padding, who, ("valid", "same"))
        self.data_format = normalize_data_format(data_format, who, channels_first=True)

    def build_last(self, input_shape) -> None:
        check_image(input_shape, self.rank, f"{type(self).__name__} '{self.name}'")
        self.add_weight(self.kernel_size + (self.filters, input_shape[-1]),
                        self.kernel_initializer, regularizer=self.kernel_regularizer,
                        constraint=self.kernel_constraint, name="kernel")
        if self.use_bias:
            self.add_weight((self.filters,), self.bias_initializer,
                            regularizer=self.bias_regularizer,
                            constraint=self.bias_constraint, name="bias")
        self.built = True

    def _geometry(self, spatial) -> list:
        pads = self.output_padding or (None,) * self.rank
        return [transpose_geometry(n, k, s, d, self.padding, p) for n, k, s, d, p in zip(
            spatial, self.kernel_size, self.strides, self.dilation_rate, pads)]

    def output_shape_last(self, input_shape):
        spatial = tuple(None if n is None else size for n, (size, _) in zip(
            input_shape[1:-1], self._geometry([n or 1 for n in input_shape[1:-1]])))
        return (input_shape[0],) + spatial + (self.filters,)

    def _lower_2d(self, core, node: int, spatial: tuple) -> int:
        """conv2d_transpose on a (height, width) image (a 1-D one: (1, steps))."""
        geo, strides, dilation = self._geometry(spatial), self.strides, self.dilation_rate
        if self.rank == 1:
            geo, strides, dilation = [(1, 0)] + geo, (1,) + strides, (1,) + dilation
        (sh, sw), (dh, dw) = strides, dilation
        attrs = (sh, sw, dh, dw, geo[0][1], geo[1][1], geo[0][0], geo[1][0])
        node, _ = core.add_node("conv2d_transpose", (node,), tuple(self._var_ids), attrs)
        return node

    def get_config(self) -> dict:
        return {**super().get_config(), **weight_config(self),
                "output_padding": self.output_padding}


class Conv2DTranspose(BaseConvTranspose):
    """The transposed 2-D convolution over (batch, height, width, channels) images.

    Args:
        filters: the output channels.
        kernel_size, strides, dilation_rate: an int or (height, width).
        padding: 'valid' or 'same' (output size = input * strides).
        output_padding: None, or an int or (height, width) of extra rows and columns at the end
            (each smaller than its stride).
        Other arguments as for Conv2D.

    Example:
        >>> up = pynn.layers.Conv2DTranspose(64, 4, strides=2, padding="same")
        >>> pynn.Sequential([pynn.Input((7, 7, 8)), up]).output_shape
        (None, 14, 14, 64)
    """

    rank = 2

    def lower_last(self, core, node: int) -> int:
        h, w, _ = core.node_shape(node)
        node = self._lower_2d(core, node, (h, w))
        return activations.spec(self.activation).lower(core, node)


class Conv1DTranspose(BaseConvTranspose):
    """The transposed 1-D convolution over (batch, steps, channels) sequences.

    Args: as Conv2DTranspose, each an int (or a 1-tuple).

    Example:
        >>> up = pynn.layers.Conv1DTranspose(8, 3, strides=2, padding="same")
        >>> pynn.Sequential([pynn.Input((10, 4)), up]).output_shape
        (None, 20, 8)
    """

    rank = 1

    def lower_last(self, core, node: int) -> int:
        steps, channels = core.node_shape(node)
        node, _ = core.add_node("reshape", (node,), (), (3, 1, steps, channels))
        node = self._lower_2d(core, node, (steps,))
        _, out_steps, filters = core.node_shape(node)
        node, _ = core.add_node("reshape", (node,), (), (2, out_steps, filters))
        return activations.spec(self.activation).lower(core, node)
