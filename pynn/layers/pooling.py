"""Pooling layers, channels-last as in Keras (channels_first transposed around the op). The 1D
layers lower to the 2D ops over a (1, steps, channels) image."""

from .. import _core
from ..utils.shape_utils import shape_str
from .convolutional import (
    ChannelsLastKernel,
    check_image,
    conv_output_length,
    normalize_data_format,
    normalize_padding,
    normalize_tuple,
    same_pads,
)


class BasePooling(ChannelsLastKernel):
    """Max or average pooling over 1 or 2 spatial axes."""

    rank = 2
    op = "max_pool2d"

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        who = f"{type(self).__name__} '{self.name}'"
        self.pool_size = normalize_tuple(pool_size, self.rank, "pool_size", who)
        self.strides = (self.pool_size if strides is None
                        else normalize_tuple(strides, self.rank, "strides", who))
        self.padding = normalize_padding(padding, who)
        self.data_format = normalize_data_format(data_format, who, channels_first=True)

    def build_last(self, input_shape) -> None:
        check_image(input_shape, self.rank, f"{type(self).__name__} '{self.name}'")
        out = self.output_shape_last(input_shape)
        if any(d is not None and d < 1 for d in out[1:-1]):
            raise ValueError(f"{type(self).__name__} '{self.name}': pool_size {self.pool_size} "
                             f"is larger than the input {shape_str(input_shape)}")
        self.built = True

    def output_shape_last(self, input_shape):
        spatial = tuple(conv_output_length(s, p, self.padding, st) for s, p, st in zip(
            input_shape[1:-1], self.pool_size, self.strides))
        return (input_shape[0],) + spatial + (input_shape[-1],)

    def _attrs(self, h: int, w: int) -> tuple:
        (ph, pw) = self.pool_size if self.rank == 2 else (1,) + self.pool_size
        (sh, sw) = self.strides if self.rank == 2 else (1,) + self.strides
        top = bottom = left = right = 0
        if self.padding == "same":
            top, bottom = same_pads(h, ph, sh)
            left, right = same_pads(w, pw, sw)
        return (ph, pw, sh, sw, top, left, bottom, right)

    def lower_last(self, core, node: int) -> int:
        if self.rank == 2:
            h, w, _ = core.node_shape(node)
            node, _ = core.add_node(self.op, (node,), (), self._attrs(h, w))
            return node
        steps, channels = core.node_shape(node)
        node, _ = core.add_node("reshape", (node,), (), (3, 1, steps, channels))
        node, (_, out_steps, _) = core.add_node(self.op, (node,), (), self._attrs(1, steps))
        node, _ = core.add_node("reshape", (node,), (), (2, out_steps, channels))
        return node

    def get_config(self) -> dict:
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding, "data_format": self.data_format}


class MaxPooling2D(BasePooling):
    """The maximum over each pool_size window of (batch, height, width, channels) images.

    Args:
        pool_size: an int or (height, width) (2).
        strides: an int or (height, width); None means pool_size.
        padding: 'valid' or 'same'.
        data_format: 'channels_last' (None means the same) or 'channels_first'.

    Example:
        >>> pynn.layers.MaxPooling2D(2).compute_output_shape((None, 26, 26, 32))
        (None, 13, 13, 32)
    """

    rank, op = 2, "max_pool2d"


class AveragePooling2D(BasePooling):
    """The mean over each pool_size window (with 'same' padding, of the window's part inside
    the image). Arguments as MaxPooling2D."""

    rank, op = 2, "avg_pool2d"


class MaxPooling1D(BasePooling):
    """The maximum over windows of (batch, steps, channels) sequences.

    Args:
        pool_size: an int (2). strides: an int, None means pool_size. padding: 'valid' or 'same'.
    """

    rank, op = 1, "max_pool2d"


class AveragePooling1D(BasePooling):
    """The mean over windows of (batch, steps, channels) sequences. Arguments as MaxPooling1D."""

    rank, op = 1, "avg_pool2d"


class BaseGlobalPooling(ChannelsLastKernel):
    """The mean or maximum over all spatial axes (1 or 2) of channels-last input."""

    rank = 2
    op = "global_avg_pool2d"

    def __init__(self, data_format=None, keepdims: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = normalize_data_format(
            data_format, f"{type(self).__name__} '{self.name}'", channels_first=True)
        self.keepdims = bool(keepdims)

    def build_last(self, input_shape) -> None:
        check_image(input_shape, self.rank, f"{type(self).__name__} '{self.name}'")
        self.built = True

    def output_shape_last(self, input_shape):
        if self.keepdims:
            return (input_shape[0],) + (1,) * self.rank + (input_shape[-1],)
        return (input_shape[0], input_shape[-1])

    def lower_last(self, core, node: int) -> int:
        if self.rank == 1:  # (steps, channels) as a (1, steps, channels) image
            steps, channels = core.node_shape(node)
            node, _ = core.add_node("reshape", (node,), (), (3, 1, steps, channels))
        node, (channels,) = core.add_node(self.op, (node,))
        if self.keepdims:
            node, _ = core.add_node("reshape", (node,), (),
                                    (self.rank + 1,) + (1,) * self.rank + (channels,))
        return node

    def get_config(self) -> dict:
        return {**super().get_config(), "data_format": self.data_format,
                "keepdims": self.keepdims}


class GlobalAveragePooling2D(BaseGlobalPooling):
    """The mean over height and width: (batch, h, w, c) -> (batch, c).

    Args:
        data_format: 'channels_last' (None means the same) or 'channels_first'.
        keepdims: keep the spatial axes as size 1: (batch, 1, 1, c).
    """

    rank, op = 2, "global_avg_pool2d"


class GlobalMaxPooling2D(BaseGlobalPooling):
    """The maximum over height and width: (batch, h, w, c) -> (batch, c). Arguments as
    GlobalAveragePooling2D."""

    rank, op = 2, "global_max_pool2d"


class GlobalAveragePooling1D(BaseGlobalPooling):
    """The mean over the steps: (batch, steps, c) -> (batch, c).

    Args:
        data_format: 'channels_last' (None means the same) or 'channels_first'.
        keepdims: keep the steps axis as size 1: (batch, 1, c).

    Example:
        >>> pynn.layers.GlobalAveragePooling1D().compute_output_shape((None, 64, 32))
        (None, 32)
    """

    rank, op = 1, "global_avg_pool2d"
    supports_masking = True

    def lower(self, core, node: int, mask=None) -> int:
        """With a mask (steps,), the mean over the unmasked steps, as Keras's."""
        if mask is None:
            return super().lower(core, node)
        from .masking import _binary, expand
        if self._first():  # (channels, steps) -> (steps, channels)
            node, _ = core.add_node("transpose", (node,), (), (1, 0))
        total = _core.op_code("reduce", "sum")
        weights = expand(core, mask, -1)  # (steps, 1)
        num, _ = core.add_node("reduce", (_binary(core, "multiply", node, weights),), (),
                               (total, 1 << 1, 0))
        den, _ = core.add_node("reduce", (weights,), (), (total, 1 << 1, 0))  # (1,)
        node = _binary(core, "divide", num, den)
        if self.keepdims:
            node, _ = core.add_node("reshape", (node,), (), (2, 1, core.node_shape(node)[0]))
        return node

    def _lower_mask(self, core, inputs, output, mask):
        return None  # no steps left to mask


class GlobalMaxPooling1D(BaseGlobalPooling):
    """The maximum over the steps: (batch, steps, c) -> (batch, c). Arguments as
    GlobalAveragePooling1D."""

    rank, op = 1, "global_max_pool2d"
