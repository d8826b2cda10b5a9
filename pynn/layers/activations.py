"""Keras 3's activation layers: ReLU, LeakyReLU, ELU and Softmax, each the core's elementwise op
(or softmax over the last axis) with the layer's own arguments and defaults."""

from .. import activations
from .base import Layer


class _ActivationLayer(Layer):
    """An activation op with an attribute: each subclass's `_spec()` gives its
    `pynn.activations.ActivationSpec`."""

    def _who(self) -> str:
        return f"{type(self).__name__} '{self.name}'"

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def lower(self, core, node: int) -> int:
        return self._spec().lower(core, node)


def _non_negative(value, what: str, who: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{who}: {what} must be a number >= 0, got {value!r}")
    return float(value)


class ReLU(_ActivationLayer):
    """Rectified linear unit: `max(x, 0)`, or `negative_slope * x` below 0.

    Args:
        max_value: only None (no upper bound) is supported.
        negative_slope: the slope below 0 (0: plain relu; above 0: leaky relu).
        threshold: only 0 is supported.

    Example:
        >>> pynn.layers.ReLU()(np.array([-1.0, 2.0], np.float32)).numpy()
        array([0., 2.], dtype=float32)
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        who = self._who()
        if max_value is not None:
            _non_negative(max_value, "max_value", who)
            raise ValueError(f"{who}: max_value={max_value!r} is not supported (only None)")
        self.negative_slope = _non_negative(negative_slope, "negative_slope", who)
        if _non_negative(threshold, "threshold", who) != 0.0:
            raise ValueError(f"{who}: threshold={threshold!r} is not supported (only 0)")
        self.max_value, self.threshold = None, 0.0

    def _spec(self):
        if self.negative_slope == 0.0:
            return activations.ActivationSpec("relu")
        return activations.ActivationSpec("leaky_relu", alpha=self.negative_slope)

    def get_config(self) -> dict:
        return {**super().get_config(), "max_value": self.max_value,
                "negative_slope": self.negative_slope, "threshold": self.threshold}


class LeakyReLU(_ActivationLayer):
    """`x` above 0, `negative_slope * x` below.

    Args:
        negative_slope: the slope below 0 (Keras's layer default: 0.3; the
            `leaky_relu` activation's is 0.2).
    """

    def __init__(self, negative_slope=0.3, **kwargs):
        super().__init__(**kwargs)
        self.negative_slope = _non_negative(negative_slope, "negative_slope", self._who())

    def _spec(self):
        return activations.ActivationSpec("leaky_relu", alpha=self.negative_slope)

    def get_config(self) -> dict:
        return {**super().get_config(), "negative_slope": self.negative_slope}


class ELU(_ActivationLayer):
    """`x` above 0, `alpha * (exp(x) - 1)` below.

    Args:
        alpha: the scale of the negative part (1.0).
    """

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
            raise ValueError(f"{self._who()}: alpha must be a number, got {alpha!r}")
        self.alpha = float(alpha)

    def _spec(self):
        return activations.ActivationSpec("elu", alpha=self.alpha)

    def get_config(self) -> dict:
        return {**super().get_config(), "alpha": self.alpha}


class Softmax(_ActivationLayer):
    """`exp(x) / sum(exp(x))` over the last axis.

    Args:
        axis: only -1 (the last axis) is supported.
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if axis not in (-1, [-1], (-1,)):
            raise ValueError(f"{self._who()}: only axis=-1 is supported, got {axis!r}")
        self.axis = -1

    def _spec(self):
        return activations.ActivationSpec("softmax")

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis}


__all__ = ["ELU", "LeakyReLU", "ReLU", "Softmax"]
