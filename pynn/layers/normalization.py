"""BatchNormalization over any one (channel) axis and LayerNormalization over the last axis,
as Keras 3 computes them; GroupNormalization, UnitNormalization and RMSNormalization, written
with pynn.ops (each a `call()` traced into core ops) as Keras 3 writes them. SpectralNormalization
is declared and refused (see its docstring)."""

from .. import initializers, ops, regularizers
from ..utils.shape_utils import shape_str
from .base import Layer


class BatchNormalization(Layer):
    """Normalises each channel with the batch's statistics in training and with moving averages
    of them in inference: `gamma * (x - mean) / sqrt(var + epsilon) + beta`.

    In `fit` the moving statistics are updated after each batch:
    `moving = moving * momentum + batch_statistic * (1 - momentum)`. They are non-trainable
    weights, listed after gamma and beta as in Keras.

    The core's batch_norm op normalises the last axis. With another channel axis (axis=1 after a
    Conv2D with data_format="channels_first") the input is transposed to put that axis last and
    the output back, around the same op; the weights are the same (channels,) vectors.

    Args:
        axis: the channel axis (-1), an int (or a list of one int); not the batch axis.
        momentum: of the moving averages (0.99).
        epsilon: added to the variance (0.001).
        center: learn beta. scale: learn gamma.
        beta_initializer, gamma_initializer, moving_mean_initializer,
        moving_variance_initializer: initializers ('zeros', 'ones', 'zeros', 'ones').
        beta_regularizer, gamma_regularizer: L1/L2 penalties.

    Example:
        >>> layer = pynn.layers.BatchNormalization(axis=1)  # (batch, channels, h, w) images
        >>> layer(np.ones((2, 3, 4, 4), np.float32)).shape
        (2, 3, 4, 4)
    """

    supports_masking = True  # passes its input's mask on, as Keras's

    def __init__(self, axis=-1, momentum: float = 0.99, epsilon: float = 0.001,
                 center: bool = True, scale: bool = True, beta_initializer="zeros",
                 gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 synchronized: bool = False, **kwargs):
        super().__init__(**kwargs)
        who = f"BatchNormalization '{self.name}'"
        axes = _axes_of(axis, "axis", who)
        if len(axes) != 1:
            raise ValueError(f"{who}: normalises along one channel axis; a list of several "
                             f"axes is not supported, got axis={axis!r}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{who}: momentum must be in [0, 1], got {momentum!r}")
        if not epsilon > 0.0:
            raise ValueError(f"{who}: epsilon must be > 0, got {epsilon!r}")
        if beta_constraint is not None or gamma_constraint is not None:
            raise ValueError(f"{who}: constraints are not supported")
        self.axis, self.momentum, self.epsilon = axes[0], float(momentum), float(epsilon)
        self._from_end = -1  # the channel axis counted from the end of the input (set by build)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)

    def _channel_axis(self, input_shape) -> int:
        """The channel axis as an index of an input of `input_shape` (ValueError when it is out
        of range or the batch axis)."""
        axis = _check_axes([self.axis], input_shape, _who(self), self.axis)[0]
        if axis == 0:
            raise ValueError(f"{_who(self)}: axis={self.axis} is the batch axis of an input "
                             f"{shape_str(input_shape)}; give the channel axis")
        return axis

    def build(self, input_shape) -> None:
        axis = self._channel_axis(input_shape)
        if input_shape[axis] is None:
            raise ValueError(f"{_who(self)}: axis {self.axis} of the input must have a known "
                             f"size, got an input of shape {shape_str(input_shape)}")
        # counted from the end, so the axis stays the channels' when a wrapper (TimeDistributed)
        # lowers the layer on an input with more leading axes
        self._from_end = axis - len(input_shape)
        c = (input_shape[axis],)
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

    def compute_output_shape(self, input_shape):
        self._channel_axis(input_shape)
        return tuple(input_shape)

    def lower(self, core, node: int) -> int:
        # the core op normalises the last axis; another channel axis is moved last and back
        rank = len(core.node_shape(node))  # per sample
        axis = rank + self._from_end
        if axis != rank - 1:
            order = (*range(axis), *range(axis + 1, rank), axis)
            node, _ = core.add_node("transpose", (node,), (), order)
        # A frozen layer (trainable=False) normalises with its moving statistics in fit too, as
        # Keras runs it in inference mode.
        node, _ = core.add_node("batch_norm", (node,), tuple(self._var_ids),
                                (int(self.scale), int(self.center), int(not self.trainable)),
                                (self.momentum, self.epsilon))
        if axis != rank - 1:
            back = (*range(axis), rank - 1, *range(axis, rank - 1))
            node, _ = core.add_node("transpose", (node,), (), back)
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

    supports_masking = True  # passes its input's mask on, as Keras's

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


def _who(layer) -> str:
    return f"{type(layer).__name__} '{layer.name}'"


def _number(value, what: str, who: str) -> float:
    """value as a float, refusing anything but a finite number >= 0 (TypeError for a
    non-number, ValueError for a negative one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{who}: {what} must be a number, got {value!r}")
    if not 0.0 <= value < float("inf"):
        raise ValueError(f"{who}: {what} must be a finite number >= 0, got {value!r}")
    return float(value)


def _axes_of(axis, what: str, who: str) -> list:
    """axis (an int, or a list or tuple of ints) as a list of ints; TypeError otherwise."""
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    if not axes or any(isinstance(a, bool) or not isinstance(a, int) for a in axes):
        raise TypeError(f"{who}: {what} must be an int or a list/tuple of ints, got {axis!r}")
    return axes


def _check_axes(axes: list, input_shape, who: str, axis) -> list:
    """The axes as non-negative indices of an input of `input_shape`, each in range and once
    (ValueError otherwise, as Keras's compute_output_shape)."""
    rank = len(input_shape)
    out = []
    for a in axes:
        if not -rank <= a < rank:
            raise ValueError(f"{who}: axis {a} is out of bounds for input shape "
                             f"{shape_str(input_shape)} (axis={axis!r})")
        out.append(a % rank)
    if len(set(out)) != len(out):
        raise ValueError(f"{who}: axis={axis!r} names an axis twice")
    return out


def _weight_as(weight, shape: list):
    """A weight read in call(), shaped to broadcast against an input of `shape` (its sizes
    where the weight's axes are, 1 elsewhere); as it is when it broadcasts already."""
    kept = [d for d in shape if d != 1]
    if list(weight.shape) == kept and shape[len(shape) - len(kept):] == kept:
        return weight
    return ops.reshape(weight, shape)


class GroupNormalization(Layer):
    """Normalises the channels in `groups` groups (Wu & He, 2018): each sample's group of
    channels, over every other axis but the batch, to mean 0 and variance 1, then
    `gamma * xhat + beta` per channel. groups=1 normalises each sample as a whole (layer
    normalization over all its axes); groups=-1 (one channel a group) is instance normalization.

    Args:
        groups: the number of groups (32), dividing the channels; -1 for one per channel.
        axis: the channel axis (-1).
        epsilon: added to the variance (1e-3).
        center: learn beta. scale: learn gamma.
        beta_initializer, gamma_initializer: initializers ('zeros', 'ones').
        beta_regularizer, gamma_regularizer: L1/L2 penalties.
        beta_constraint, gamma_constraint: not supported (None).

    Example:
        >>> layer = pynn.layers.GroupNormalization(groups=4)
        >>> layer(np.ones((2, 5, 8), np.float32)).shape
        (2, 5, 8)
    """

    supports_masking = True  # passes its input's mask on, as Keras's

    def __init__(self, groups: int = 32, axis: int = -1, epsilon: float = 1e-3,
                 center: bool = True, scale: bool = True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None,
                 beta_constraint=None, gamma_constraint=None, **kwargs):
        if isinstance(groups, bool) or not isinstance(groups, int) or (groups <= 0
                                                                       and groups != -1):
            raise ValueError("GroupNormalization: groups must be a positive int (or -1 for "
                             f"instance normalization), got groups={groups!r}")
        super().__init__(**kwargs)
        who = _who(self)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"{who}: axis must be an int (the channel axis), got {axis!r}")
        if beta_constraint is not None or gamma_constraint is not None:
            raise ValueError(f"{who}: constraints are not supported")
        self.groups, self.axis = groups, axis
        self.epsilon = _number(epsilon, "epsilon", who)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)

    def _channel_axis(self, input_shape) -> int:
        axis = _check_axes([self.axis], input_shape, _who(self), self.axis)[0]
        if axis == 0:
            raise ValueError(f"{_who(self)}: axis {self.axis} is the batch axis of an input "
                             f"{shape_str(input_shape)}; give the channel axis")
        return axis

    def build(self, input_shape) -> None:
        dim = input_shape[self._channel_axis(input_shape)]
        if dim is None:
            raise ValueError(f"{_who(self)}: axis {self.axis} of the input must have a known "
                             f"size, got an input of shape {shape_str(input_shape)}")
        if self.groups == -1:  # instance normalization: Keras keeps the count it stands for
            self.groups = dim
        if dim < self.groups:
            raise ValueError(f"{_who(self)}: the number of groups ({self.groups}) cannot be "
                             f"more than the number of channels ({dim})")
        if dim % self.groups:
            raise ValueError(f"{_who(self)}: the number of channels ({dim}) must be a multiple "
                             f"of the number of groups ({self.groups})")
        if self.scale:
            self.add_weight((dim,), self.gamma_initializer, regularizer=self.gamma_regularizer,
                            name="gamma")
        if self.center:
            self.add_weight((dim,), self.beta_initializer, regularizer=self.beta_regularizer,
                            name="beta")
        self.built = True

    def compute_output_shape(self, input_shape):
        self._channel_axis(input_shape)
        return tuple(input_shape)

    def call(self, inputs):
        # x (batch, ..., C, ...) viewed as (batch, ..., G, C / G, ...): each group normalised
        # over every axis but the batch and the group's, xhat = (x - mean) / sqrt(var + epsilon),
        # then y = gamma xhat + beta per channel
        shape = list(ops.shape(inputs))
        axis = self._channel_axis(shape)
        grouped = [-1] + shape[1:]
        grouped[axis] = shape[axis] // self.groups
        grouped.insert(axis, self.groups)
        x = ops.reshape(inputs, grouped)
        reduce_axes = [i for i in range(1, len(grouped)) if i != axis]
        mean, variance = ops.moments(x, axes=reduce_axes, keepdims=True)
        xhat = ops.multiply(ops.subtract(x, mean), ops.rsqrt(ops.add(variance, self.epsilon)))
        out = ops.reshape(xhat, [-1] + shape[1:])
        along = [d if i == axis else 1 for i, d in enumerate(shape)]
        if self.scale:
            out = ops.multiply(out, _weight_as(self.gamma, along))
        if self.center:
            out = ops.add(out, _weight_as(self.beta, along))
        return out

    def get_config(self) -> dict:
        return {**super().get_config(), "groups": self.groups, "axis": self.axis,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": None, "gamma_constraint": None}


class UnitNormalization(Layer):
    """Scales each sample to an L2 norm of 1 over `axis`: `x / sqrt(sum(x**2))` (computed as
    Keras does, `x * min(rsqrt(sum(x**2)), 1e12)`, so an all-zero row stays zero).

    Args:
        axis: the axis, or a list of axes, to normalise over (-1).

    Example:
        >>> y = pynn.layers.UnitNormalization()(np.array([[3.0, 4.0]], np.float32))
        >>> np.asarray(y)
        array([[0.6, 0.8]], dtype=float32)
    """

    supports_masking = True  # passes its input's mask on, as Keras's

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        _axes_of(axis, "axis", _who(self))
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else axis

    def build(self, input_shape) -> None:
        self.compute_output_shape(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        _check_axes(_axes_of(self.axis, "axis", _who(self)), input_shape, _who(self), self.axis)
        return tuple(input_shape)

    def call(self, inputs):
        return ops.normalize(inputs, axis=self.axis, order=2, epsilon=1e-12)

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis}


class RMSNormalization(Layer):
    """Root mean square normalization (Zhang & Sennrich, 2019), as Keras 3 defines it:
    `x * rsqrt(mean(x**2) + epsilon) * scale` over `axis`, with a learned `scale` (initially
    ones) of the normalised axes' shape. Unlike LayerNormalization(rms_scaling=True), the mean
    square is taken about 0.

    Args:
        axis: the axis, or a list of axes, to normalise over (-1); a list is kept sorted, and
            an int becomes a one-item list when the layer is built, as in Keras.
        epsilon: added to the mean square (1e-6).

    Example:
        >>> layer = pynn.layers.RMSNormalization()
        >>> layer(np.ones((2, 8), np.float32)).shape
        (2, 8)
    """

    def __init__(self, axis=-1, epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        _axes_of(axis, "axis", _who(self))
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else axis
        self.epsilon = _number(epsilon, "epsilon", _who(self))

    def _axes(self, input_shape) -> list:
        return _check_axes(_axes_of(self.axis, "axis", _who(self)), input_shape, _who(self),
                           self.axis)

    def build(self, input_shape) -> None:
        axes = sorted(self._axes(input_shape))
        if 0 in axes:
            raise ValueError(f"{_who(self)}: cannot normalise over the batch axis (axis="
                             f"{self.axis!r} of an input {shape_str(input_shape)})")
        shape = tuple(input_shape[a] for a in axes)
        if None in shape:
            raise ValueError(f"{_who(self)}: the normalised axes must have known sizes, got "
                             f"axis={self.axis!r} of an input {shape_str(input_shape)}")
        self.axis = sorted(self.axis) if isinstance(self.axis, list) else [self.axis]
        self.add_weight(shape, "ones", name="scale")
        self.built = True

    def compute_output_shape(self, input_shape):
        self._axes(input_shape)
        return tuple(input_shape)

    def call(self, x):
        shape = list(ops.shape(x))
        axes = sorted(self._axes(shape))
        scale = _weight_as(self.scale, [d if i in axes else 1 for i, d in enumerate(shape)])
        return ops.rms_normalization(x, scale=scale, axis=axes, epsilon=self.epsilon)

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon}


class SpectralNormalization(Layer):
    """Keras 3's wrapper that divides a layer's kernel by its spectral norm (Miyato et al.,
    2018): not supported yet, it raises NotImplementedError.

    What Keras computes: `vector_u`, a non-trainable (1, units) weight, starts at random; each
    training call runs `power_iterations` steps of `v = normalize(u W^T)`,
    `u = normalize(v W)` on the kernel W seen as (-1, units), takes `sigma = v W u^T` (u and v
    without gradient), computes the wrapped layer with `W / sigma`, and writes the new u back
    into `vector_u`, so the next step starts from it and sigma converges to W's largest
    singular value over training. In inference the wrapped layer runs as it is.

    Why pynn refuses it: a model's training step (fit, train_on_batch, a model called with
    training=True) runs as one core graph, and the core has no op that writes a value computed
    in the graph into a variable (batch_norm updates its own moving statistics, nothing else
    can). Without that write every step would start again from the initial u, and one power
    iteration from a random vector is not the sigma Keras reaches: training would silently
    differ from Keras. The forward and its gradient need only pynn.ops (matmul, normalize,
    stop_gradient, divide, then the wrapped layer's op); the missing piece is a core op that
    assigns a node's value to a variable in training runs.

    Args:
        layer: the wrapped layer (one with a `kernel`, such as Dense or Conv2D, or Embedding's
            `embeddings`).
        power_iterations: power iteration steps per training call (1).

    Example:
        >>> pynn.layers.SpectralNormalization(pynn.layers.Dense(4))
        Traceback (most recent call last):
        NotImplementedError: SpectralNormalization (of a Dense) is not supported yet: ...
    """

    def __init__(self, layer, power_iterations: int = 1, **kwargs):
        raise NotImplementedError(
            f"SpectralNormalization (of a {type(layer).__name__}) is not supported yet: it must "
            "write its power-iteration vector (vector_u) in every training step, and pynn's core "
            "cannot write a variable from a model's graph, so training would silently differ "
            "from Keras")


__all__ = ["BatchNormalization", "GroupNormalization", "LayerNormalization", "RMSNormalization",
           "SpectralNormalization", "UnitNormalization"]
