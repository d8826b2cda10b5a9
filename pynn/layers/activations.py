"""Keras 3's activation layers: ReLU, LeakyReLU, ELU and Softmax, each the core's elementwise op
(or softmax over the last axis) with the layer's own arguments and defaults; and PReLU, whose
slope is a weight, written with pynn.ops as Keras writes it."""

from .. import activations, constraints, initializers, ops, regularizers
from ..utils.shape_utils import shape_str
from .base import Layer


class _ActivationLayer(Layer):
    """An activation op with an attribute: each subclass's `_spec()` gives its
    `pynn.activations.ActivationSpec`."""

    supports_masking = True  # passes its input's mask on, as Keras's

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

    def _lower_mask(self, core, inputs, output, mask):
        if mask is not None:  # Keras masks the softmax's own axis with it
            raise ValueError(f"{self._who()}: a masked input is not supported (the mask "
                             "would apply to the softmax's axis)")
        return None

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis}


class PReLU(Layer):
    """Parametric ReLU (He et al., 2015): `x` above 0, `alpha * x` below, with `alpha` a
    learned weight of the input's per-sample shape (computed as Keras does,
    `relu(x) - alpha * relu(-x)`).

    Args:
        alpha_initializer: the initializer of alpha ('Zeros': a plain relu to start with).
        alpha_regularizer: an L1/L2 penalty on alpha.
        alpha_constraint: a `pynn.constraints` constraint applied after each update.
        shared_axes: the axes (of the whole input, 1 the first after the batch) along which
            one alpha is shared: [1, 2] for one alpha per channel of (batch, height, width,
            channels) images.

    Example:
        >>> layer = pynn.layers.PReLU(shared_axes=[1])
        >>> layer(np.ones((2, 5, 3), np.float32)).shape
        (2, 5, 3)
        >>> layer.alpha.shape
        (1, 3)
    """

    supports_masking = True  # passes its input's mask on, as Keras's

    def __init__(self, alpha_initializer="Zeros", alpha_regularizer=None, alpha_constraint=None,
                 shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        who = f"PReLU '{self.name}'"
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        self.alpha_constraint = constraints.get(alpha_constraint)
        if shared_axes is None:
            self.shared_axes = None
        else:
            axes = list(shared_axes) if isinstance(shared_axes, (list, tuple)) else [shared_axes]
            if any(isinstance(a, bool) or not isinstance(a, int) for a in axes):
                raise TypeError(f"{who}: shared_axes must be an int or a list of ints, got "
                                f"{shared_axes!r}")
            self.shared_axes = axes

    def build(self, input_shape) -> None:
        who = f"PReLU '{self.name}'"
        shape = list(input_shape[1:])
        for a in self.shared_axes or ():
            if not 1 <= a <= len(shape):
                raise ValueError(f"{who}: shared_axes {self.shared_axes} must be axes 1 to "
                                 f"{len(shape)} of an input {shape_str(input_shape)}")
            shape[a - 1] = 1
        if None in shape:
            raise ValueError(f"{who}: alpha needs the input's sizes, got {shape_str(input_shape)}"
                             "; share alpha along the axes of unknown size (shared_axes)")
        self.add_weight(shape, self.alpha_initializer, regularizer=self.alpha_regularizer,
                        constraint=self.alpha_constraint, name="alpha")
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def call(self, inputs):
        return ops.subtract(ops.relu(inputs),
                            ops.multiply(self.alpha, ops.relu(ops.negative(inputs))))

    def get_config(self) -> dict:
        return {**super().get_config(),
                "alpha_initializer": initializers.serialize(self.alpha_initializer),
                "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
                "alpha_constraint": constraints.serialize(self.alpha_constraint),
                "shared_axes": self.shared_axes}


__all__ = ["ELU", "LeakyReLU", "PReLU", "ReLU", "Softmax"]
