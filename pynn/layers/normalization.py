"""BatchNormalization over the last (channel) axis and LayerNormalization over the last axis,
as Keras 3 computes them."""

from .. import initializers, regularizers
from ..utils.shape_utils import shape_str
from .base import Layer


class BatchNormalization(Layer):
    """Normalises each channel with the batch's statistics in training and with moving averages
    of them in inference: `gamma * (x - mean) / sqrt(var + epsilon) + beta`.

    In `fit` the moving statistics are updated after each batch:
    `moving = moving * momentum + batch_statistic * (1 - momentum)`. They are non-trainable
    weights, listed after gamma and beta as in Keras.

    Args:
        axis: the channel axis; only the last (-1) is supported.
        momentum: of the moving averages (0.99).
        epsilon: added to the variance (0.001).
        center: learn beta. scale: learn gamma.
        beta_initializer, gamma_initializer, moving_mean_initializer,
        moving_variance_initializer: initializers ('zeros', 'ones', 'zeros', 'ones').
        beta_regularizer, gamma_regularizer: L1/L2 penalties.

    Example:
        >>> layer = pynn.layers.BatchNormalization()
    """

    def __init__(self, axis=-1, momentum: float = 0.99, epsilon: float = 0.001,
                 center: bool = True, scale: bool = True, beta_initializer="zeros",
                 gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 synchronized: bool = False, **kwargs):
        super().__init__(**kwargs)
        who = f"BatchNormalization '{self.name}'"
        if axis not in (-1, [-1], (-1,)):
            raise ValueError(f"{who}: only axis=-1 (channels last) is supported, got {axis!r}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{who}: momentum must be in [0, 1], got {momentum!r}")
        if not epsilon > 0.0:
            raise ValueError(f"{who}: epsilon must be > 0, got {epsilon!r}")
        if beta_constraint is not None or gamma_constraint is not None:
            raise ValueError(f"{who}: constraints are not supported")
        self.axis, self.momentum, self.epsilon = -1, float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)

    def build(self, input_shape) -> None:
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"BatchNormalization '{self.name}': the last axis of the input "
                             f"must be known, got {shape_str(input_shape)}")
        c = (input_shape[-1],)
        if self.scale:
            self.add_weight(c, self.gamma_initializer, regularizer=self.gamma_regularizer,
                            name="gamma")
        if self.center:
            self.add_weight(c, self.beta_initializer, regularizer=self.beta_regularizer,
                            name="beta")
        self.add_weight(c, self.moving_mean_initializer, trainable=False, name="moving_mean")
        self.add_weight(c, self.moving_variance_initializer, trainable=False,
                        name="moving_variance")
        self.built = True

    def lower(self, core, node: int) -> int:
        # A frozen layer (trainable=False) normalises with its moving statistics in fit too, as
        # Keras runs it in inference mode.
        node, _ = core.add_node("batch_norm", (node,), tuple(self._var_ids),
                                (int(self.scale), int(self.center), int(not self.trainable)),
                                (self.momentum, self.epsilon))
        return node

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer":
                    initializers.serialize(self.moving_variance_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer)}


class LayerNormalization(Layer):
    """Normalises each sample over its last axis: `gamma * (x - mean) / sqrt(var + epsilon) +
    beta`, with the mean and (biased) variance of the row's features (Ba et al., 2016).

    Args:
        axis: the normalised axis; only the last (-1, or its positive index) is supported.
        epsilon: added to the variance (0.001, Keras's default; PyTorch's LayerNorm uses 1e-5).
        center: learn beta. scale: learn gamma.
        rms_scaling: Keras's RMS scaling: `gamma * x / sqrt(var + epsilon)` (x not centred, the
            variance still taken about the mean, as Keras 3 computes it); no beta.
        beta_initializer, gamma_initializer: initializers ('zeros', 'ones').
        beta_regularizer, gamma_regularizer: L1/L2 penalties.

    Example:
        >>> layer = pynn.layers.LayerNormalization(epsilon=1e-5)
    """

    def __init__(self, axis=-1, epsilon: float = 1e-3, center: bool = True, scale: bool = True,
                 rms_scaling: bool = False, beta_initializer="zeros", gamma_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, **kwargs):
        super().__init__(**kwargs)
        who = f"LayerNormalization '{self.name}'"
        ax = list(axis) if isinstance(axis, (list, tuple)) else [axis]
        if len(ax) != 1 or isinstance(ax[0], bool) or not isinstance(ax[0], int):
            raise ValueError(f"{who}: only one axis, the last, is supported, got {axis!r}")
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) \
                or not epsilon > 0.0:
            raise ValueError(f"{who}: epsilon must be > 0, got {epsilon!r}")
        if beta_constraint is not None or gamma_constraint is not None:
            raise ValueError(f"{who}: constraints are not supported")
        self.axis = axis
        self._axis = ax[0]
        self.epsilon = float(epsilon)
        self.center, self.scale, self.rms_scaling = bool(center), bool(scale), bool(rms_scaling)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)

    def _check_axis(self, input_shape) -> None:
        rank = len(input_shape)
        if self._axis not in (-1, rank - 1) or rank < 2:
            raise ValueError(f"LayerNormalization '{self.name}': only the last axis can be "
                             f"normalised (axis=-1), got axis={self.axis!r} for an input "
                             f"{shape_str(input_shape)}")

    def build(self, input_shape) -> None:
        self._check_axis(input_shape)
        if input_shape[-1] is None:
            raise ValueError(f"LayerNormalization '{self.name}': the last axis of the input "
                             f"must be known, got {shape_str(input_shape)}")
        c = (input_shape[-1],)
        if self.scale or self.rms_scaling:
            self.add_weight(c, self.gamma_initializer, regularizer=self.gamma_regularizer,
                            name="gamma")
        if self.center and not self.rms_scaling:
            self.add_weight(c, self.beta_initializer, regularizer=self.beta_regularizer,
                            name="beta")
        self.built = True

    def compute_output_shape(self, input_shape):
        self._check_axis(input_shape)
        return tuple(input_shape)

    def lower(self, core, node: int) -> int:
        scale = int(self.scale or self.rms_scaling)
        center = int(self.center and not self.rms_scaling)
        node, _ = core.add_node("layer_norm", (node,), tuple(self._var_ids),
                                (scale, center, int(self.rms_scaling)), (self.epsilon,))
        return node

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale, "rms_scaling": self.rms_scaling,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer)}


__all__ = ["BatchNormalization", "LayerNormalization"]
