"""Reshaping layers: Flatten, Reshape, ZeroPadding2D."""

import math

from ..utils.shape_utils import shape_str
from .base import Layer
from .convolutional import check_image, normalize_data_format


def _known(shape) -> bool:
    return all(d is not None for d in shape)


class Flatten(Layer):
    """Flattens each sample to one axis: (batch, ...) -> (batch, product of the rest).

    Example:
        >>> pynn.layers.Flatten().compute_output_shape((None, 5, 5, 64))
        (None, 1600)
    """

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = normalize_data_format(data_format, f"Flatten '{self.name}'")

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        return (input_shape[0], math.prod(rest) if _known(rest) else None)

    def lower(self, core, node: int) -> int:
        shape = core.node_shape(node)
        if len(shape) == 1:
            return node
        node, _ = core.add_node("reshape", (node,), (), (1, math.prod(shape)))
        return node

    def get_config(self) -> dict:
        return {**super().get_config(), "data_format": self.data_format}


class Reshape(Layer):
    """Reshapes each sample to `target_shape` (one entry may be -1: inferred).

    Args:
        target_shape: the per-sample shape, batch axis excluded.

    Example:
        >>> pynn.layers.Reshape((7, 7, 16)).compute_output_shape((None, 784))
        (None, 7, 7, 16)
    """

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        target = tuple(target_shape) if not isinstance(target_shape, int) else (target_shape,)
        if (not target or len(target) > 7 or target.count(-1) > 1 or any(
                isinstance(d, bool) or not isinstance(d, int) or (d < 1 and d != -1)
                for d in target)):
            raise ValueError(f"Reshape '{self.name}': target_shape must be 1 to 7 positive ints "
                             f"(one may be -1), got {target_shape!r}")
        self.target_shape = target

    def _resolve(self, input_shape) -> tuple:
        rest = input_shape[1:]
        if not _known(rest):
            return self.target_shape
        total, known = math.prod(rest), math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape:
            if total % known:
                raise ValueError(f"Reshape '{self.name}': cannot reshape {shape_str(input_shape)}"
                                 f" ({total} values a sample) to {self.target_shape}")
            return tuple(total // known if d == -1 else d for d in self.target_shape)
        if known != total:
            raise ValueError(f"Reshape '{self.name}': cannot reshape {shape_str(input_shape)} "
                             f"({total} values a sample) to {self.target_shape} ({known})")
        return self.target_shape

    def build(self, input_shape) -> None:
        self._resolve(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self._resolve(input_shape)

    def lower(self, core, node: int) -> int:
        shape = self._resolve((None,) + tuple(core.node_shape(node)))
        node, _ = core.add_node("reshape", (node,), (), (len(shape),) + shape)
        return node

    def get_config(self) -> dict:
        return {**super().get_config(), "target_shape": self.target_shape}


class ZeroPadding2D(Layer):
    """Pads (batch, height, width, channels) images with zeros.

    Args:
        padding: an int (all sides), (rows, cols) (symmetric), or ((top, bottom), (left, right)).
        data_format: 'channels_last' (None means the same).

    Example:
        >>> pynn.layers.ZeroPadding2D(1).compute_output_shape((None, 28, 28, 1))
        (None, 30, 30, 1)
    """

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        who = f"ZeroPadding2D '{self.name}'"
        self.data_format = normalize_data_format(data_format, who)
        self.padding = self._normalize(padding, who)

    @staticmethod
    def _normalize(padding, who: str) -> tuple:
        def ok(v):
            return isinstance(v, int) and not isinstance(v, bool) and v >= 0
        if ok(padding):
            return ((padding, padding), (padding, padding))
        try:
            a, b = padding
            if ok(a) and ok(b):
                return ((a, a), (b, b))
            (t, bo), (le, r) = a, b
            if all(ok(v) for v in (t, bo, le, r)):
                return ((t, bo), (le, r))
        except (TypeError, ValueError):
            pass
        raise ValueError(f"{who}: padding must be an int, (rows, cols) or ((top, bottom), "
                         f"(left, right)) of non-negative ints, got {padding!r}")

    def build(self, input_shape) -> None:
        check_image(input_shape, 2, f"ZeroPadding2D '{self.name}'")
        self.built = True

    def compute_output_shape(self, input_shape):
        (t, b), (le, r) = self.padding
        h, w = input_shape[1:3]
        return (input_shape[0], None if h is None else h + t + b,
                None if w is None else w + le + r, input_shape[3])

    def lower(self, core, node: int) -> int:
        (t, b), (le, r) = self.padding
        node, _ = core.add_node("zero_pad2d", (node,), (), (t, b, le, r))
        return node

    def get_config(self) -> dict:
        return {**super().get_config(), "padding": self.padding, "data_format": self.data_format}


__all__ = ["Flatten", "Reshape", "ZeroPadding2D"]
