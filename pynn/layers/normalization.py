"""BatchNormalization over any one (channel) axis and LayerNormalization over the last axis,
as Keras 3 computes them; GroupNormalization, UnitNormalization and RMSNormalization, written
with pynn.ops (each a `call()` traced into core ops) as Keras 3 writes them; SpectralNormalization,
a wrapper whose power iteration runs in the core (spectral_norm, csrc/core/ops_spectral.c)."""

import numpy as np

from .. import _core, constraints, initializers, ops, regularizers
from ..utils.shape_utils import shape_str
from .base import InputSpec, Layer, Variable, assign_values
from .core import Dense, EinsumDense, Embedding, Wrapper
from .recurrent import _Wrapper


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
        self.axis, self.momentum, self.epsilon = axes[0], float(momentum), float(epsilon)
        self._from_end = -1  # the channel axis counted from the end of the input (set by build)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)

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
                            constraint=self.gamma_constraint, name="gamma")
        if self.center:
            self.add_weight(c, self.beta_initializer, regularizer=self.beta_regularizer,
                            constraint=self.beta_constraint, name="beta")
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
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": constraints.serialize(self.beta_constraint),
                "gamma_constraint": constraints.serialize(self.gamma_constraint)}


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
        self.axis = axis
        self._axis = ax[0]
        self.epsilon = float(epsilon)
        self.center, self.scale, self.rms_scaling = bool(center), bool(scale), bool(rms_scaling)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)

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
                            constraint=self.gamma_constraint, name="gamma")
        if self.center and not self.rms_scaling:
            self.add_weight(c, self.beta_initializer, regularizer=self.beta_regularizer,
                            constraint=self.beta_constraint, name="beta")
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
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": constraints.serialize(self.beta_constraint),
                "gamma_constraint": constraints.serialize(self.gamma_constraint)}


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
        beta_constraint, gamma_constraint: `pynn.constraints` applied after each update.

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
        self.groups, self.axis = groups, axis
        self.epsilon = _number(epsilon, "epsilon", who)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)

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
                            constraint=self.gamma_constraint, name="gamma")
        if self.center:
            self.add_weight((dim,), self.beta_initializer, regularizer=self.beta_regularizer,
                            constraint=self.beta_constraint, name="beta")
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
                "beta_constraint": constraints.serialize(self.beta_constraint),
                "gamma_constraint": constraints.serialize(self.gamma_constraint)}


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


_SN_EPSILON = 1e-7  # Keras's backend.epsilon(): the floor of the l2 normalisations' norms


class SpectralNormalization(_Wrapper, Wrapper):
    """Divides a layer's kernel by its spectral norm (Miyato et al., 2018), as Keras 3's
    wrapper: it bounds the layer's Lipschitz constant, which steadies the training of GANs.

    `vector_u`, a non-trainable (1, units) weight, starts from a truncated normal (stddev
    0.02). Each training call runs `power_iterations` steps of `v = normalize(u W^T)`,
    `u = normalize(v W)` on the kernel W seen as (-1, units), takes `sigma = v W u^T` (u and v
    without gradient), computes the wrapped layer with `W / sigma` and writes the new u into
    `vector_u`. In inference the wrapped layer runs as it is. What happens to the kernel
    variable follows Keras on JAX: a step of `fit` or `train_on_batch` trains W itself through
    `W / sigma` (Keras's kernel assignment inside its stateless step is dropped), while a call
    on data with `training=True` (the layer, or a model holding it) assigns `W / sigma` to the
    kernel, the layer then reading the assigned kernel (as Keras's TensorFlow and PyTorch
    backends do in a custom training loop).

    The core's spectral_norm op computes the power iteration and 1 / sigma; the wrapped layer,
    linear in its input before its bias, runs unchanged on its input times 1 / sigma (an
    Embedding's output is scaled instead), so it keeps its own fused op.

    Args:
        layer: the wrapped layer: Dense, EinsumDense, Conv1D/2D/3D, Conv1D/2D/3DTranspose,
            DepthwiseConv1D/2D (their `kernel`) or Embedding (its `embeddings`).
        power_iterations: power iteration steps per training call, an int >= 1 (1).

    Weights: the kernel, `vector_u`, then the wrapped layer's others (its bias), as Keras
    lists them. As Keras, the output is cast to the input's dtype: over int32 token ids an
    Embedding's output is truncated to integers (given as float32 values), with no gradient;
    give float32 ids (`Input(..., dtype="float32")`) to keep the vectors.

    Example:
        >>> layer = pynn.layers.SpectralNormalization(pynn.layers.Dense(4))
        >>> layer(np.ones((2, 3), np.float32), training=True).shape
        (2, 4)
    """

    def __init__(self, layer, power_iterations: int = 1, **kwargs):
        super().__init__(layer, **kwargs)
        if isinstance(power_iterations, bool) or not isinstance(power_iterations,
                                                                (int, np.integer)):
            raise ValueError(f"SpectralNormalization '{self.name}': power_iterations must be an "
                             f"int, got {power_iterations!r}")
        if power_iterations <= 0:
            raise ValueError("`power_iterations` should be greater than zero. Received: "
                             f"`power_iterations={power_iterations}`")
        if power_iterations > 2**31 - 1:
            raise ValueError(f"SpectralNormalization '{self.name}': power_iterations must be "
                             f"below 2**31, got {power_iterations}")
        self.power_iterations = int(power_iterations)
        self._owners = {}
        self._kernel_attr = None

    def build(self, input_shape) -> None:
        if "vector_u" in self._weight_attrs:
            return
        super().build(input_shape)  # Wrapper's: builds the wrapped layer
        self.input_spec = InputSpec(min_ndim=1, axes={-1: tuple(input_shape)[-1]})
        self._kernel_attr = _spectral_kernel_attr(self.layer)
        self._adopt(self.layer, "")
        kernel = getattr(self, self._kernel_attr)
        self.kernel_shape = kernel.shape
        if self._kernel_attr != "kernel":
            self.kernel = kernel  # Keras's name for the embeddings too
        self.add_weight((1, kernel.shape[-1]), initializers.TruncatedNormal(stddev=0.02),
                        trainable=False, name="vector_u")
        self.built = True

    @property
    def weights(self) -> list:
        """The kernel, vector_u, then the wrapped layer's other weights: Keras's order (the
        wrapper tracks the kernel and vector_u as its own)."""
        if self._kernel_attr is None:
            return []
        kernel = getattr(self, self._kernel_attr)
        return [kernel, self.vector_u] + [w for w in self.layer.weights if w is not kernel]

    def _rebind(self, attr: str, core, vid: int) -> None:
        Layer._rebind(self, attr, core, vid)
        if attr in self._owners:
            inner, inner_attr = self._owners[attr]
            setattr(inner, inner_attr, getattr(self, attr))
        if attr == self._kernel_attr and attr != "kernel":
            self.kernel = getattr(self, attr)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def lower(self, core, node: int) -> int:
        """spectral_norm's scalar s (1 / sigma in a step of fit, 1 otherwise) times the wrapped
        layer's input (an Embedding's output), then the wrapped layer's own ops."""
        ids = dict(zip(self._weight_attrs, self._var_ids))
        s, _ = core.add_node("spectral_norm", (), (ids[self._kernel_attr], ids["vector_u"]),
                             (self.power_iterations,), (_SN_EPSILON,))
        times = (_core.op_code("binary", "multiply"),)
        if isinstance(self.layer, Embedding):
            out = self._lower_inner(self.layer, core, node, 0)
            out, _ = core.add_node("binary", (out, s), (), times)
        else:
            scaled, _ = core.add_node("binary", (node, s), (), times)
            out = self._lower_inner(self.layer, core, scaled, 0)
        if core.node_dtype(node) == "int32":  # Keras casts the output to the input's dtype
            out, _ = core.add_node("cast", (out,), (), (1,))
            out, _ = core.add_node("cast", (out,), (), (0,))
        return out

    def _call_eager(self, inputs, training: bool, kwargs: dict):
        """On data: in training, Keras's normalized_weights() now (pynn.ops on the weights'
        values) and both assignments, then the wrapped layer on the assigned kernel."""
        if kwargs.get("mask") is not None or set(kwargs) - {"mask"}:
            raise ValueError(f"SpectralNormalization '{self.name}': unexpected arguments "
                             f"{sorted(kwargs)}")
        if not self.built:
            shape = tuple(getattr(inputs, "shape", np.shape(inputs)))
            self.build((None,) + shape[1:])
        if training:
            self._normalize_now()
        out = self.layer(inputs, training=training)
        if np.dtype(getattr(inputs, "dtype", np.asarray(inputs).dtype)).kind in "iub":
            # Keras casts the output to the input's dtype: integers (kept as float32 values)
            out = ops.cast(ops.cast(out, "int32"), "float32")
        return out

    def _normalize_now(self) -> None:
        kernel_var = getattr(self, self._kernel_attr)
        kernel, u = kernel_var.numpy(), self.vector_u.numpy()
        if bool(np.asarray(ops.all(ops.equal(kernel, 0.0)))):
            return  # Keras's ops.cond: an all-zero kernel stays, and so does vector_u
        weights = ops.reshape(kernel, (-1, kernel.shape[-1]))
        v = None
        for _ in range(self.power_iterations):
            v = ops.normalize(ops.matmul(u, ops.transpose(weights)), axis=None,
                              epsilon=_SN_EPSILON)
            u = ops.normalize(ops.matmul(v, weights), axis=None, epsilon=_SN_EPSILON)
        sigma = ops.matmul(ops.matmul(v, weights), ops.transpose(u))
        normalized = ops.reshape(ops.divide(weights, sigma), kernel.shape)
        assign_values([(self.vector_u, np.asarray(u)), (kernel_var, np.asarray(normalized))])

    def get_config(self) -> dict:
        return {**super().get_config(), "power_iterations": self.power_iterations}

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        if not isinstance(config, dict) or not isinstance(config.get("layer"), (dict, Layer)):
            raise ValueError("SpectralNormalization: its config needs the wrapped layer's "
                             "config under 'layer'")
        config = dict(config)
        layer = config.pop("layer")
        if isinstance(layer, dict):
            from ..saving.serialization import deserialize_keras_object
            layer = deserialize_keras_object(layer, custom_objects)
        return cls(layer, **config)


def _spectral_kernel_attr(layer) -> str:
    """The attribute of the weight SpectralNormalization normalises ('kernel' or 'embeddings'),
    or Keras's ValueError; NotImplementedError for a kernel pynn cannot scale."""
    from .convolutional import BaseConv, BaseConvTranspose
    from .convolutional_ops import Conv3D, Conv3DTranspose, DepthwiseConv2D
    from .recurrent import RNN, _FusedRNN

    name = type(layer).__name__
    # Keras's recurrent layers (ConvLSTM too) keep their kernels in their cells
    has = {a for a in ("kernel", "embeddings")
           if isinstance(getattr(layer, a, None), Variable)
           and not isinstance(layer, (_FusedRNN, RNN))}
    if not has:
        raise ValueError(f"{name} object has no attribute 'kernel' nor 'embeddings'")
    attr = "kernel" if "kernel" in has else "embeddings"
    linear = (Dense, EinsumDense, BaseConv, BaseConvTranspose, DepthwiseConv2D, Conv3D,
              Conv3DTranspose)
    if (attr == "kernel" and not isinstance(layer, linear)) or \
            (attr == "embeddings" and not isinstance(layer, Embedding)):
        raise NotImplementedError(
            f"SpectralNormalization over a {name}: pynn runs it over Dense, EinsumDense, the "
            "convolutions (Conv1D/2D/3D, their transposes, DepthwiseConv1D/2D) and Embedding, "
            "layers linear in their input before the bias, whose input (an Embedding's output) "
            "it scales by 1 / sigma")
    return attr


__all__ = ["BatchNormalization", "GroupNormalization", "LayerNormalization", "RMSNormalization",
           "SpectralNormalization", "UnitNormalization"]
