"""Dropout and noise layers, active in fit (or a call with training=True) and the identity in
predict and evaluate; and ActivityRegularization, which adds a penalty of its input to the loss.

Dropout and the spatial dropouts are the core's dropout op, which knows whether a run trains.
GaussianNoise, GaussianDropout and AlphaDropout are written as Keras writes them, a `call()` of
pynn.ops and pynn.random: pynn traces it both ways (training and not), and the core picks the
trace that fits each run. In a model the noise follows the model's random stream
(`pynn.utils.set_random_seed`); on data it comes from the layer's own seed when it has one.
"""

import math

from .. import ops, random
from ..utils.shape_utils import shape_str
from .base import Layer
from .convolutional import check_image


class Dropout(Layer):
    """Sets a random fraction `rate` of its inputs to zero in training and scales the rest by
    1 / (1 - rate), so the expected sum is unchanged; passes inputs through in inference.

    The masks come from the model's random stream: `pynn.utils.set_random_seed` makes them
    repeatable.

    Args:
        rate: the fraction to drop, in [0, 1).
        noise_shape: not supported (None).
        seed: accepted for Keras compatibility; the model's seed governs the masks.

    Example:
        >>> layer = pynn.layers.Dropout(0.5)
    """

    supports_masking = True  # passes its input's mask on, as Keras's

    spatial = 0

    def __init__(self, rate: float, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        who = f"{type(self).__name__} '{self.name}'"
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"{who}: rate must be a number in [0, 1), got {rate!r}")
        if noise_shape is not None:
            raise ValueError(f"{who}: noise_shape is not supported")
        self.rate, self.seed = float(rate), seed

    def lower(self, core, node: int) -> int:
        if self.rate == 0.0:
            return node
        node, _ = core.add_node("dropout", (node,), (), (self.spatial,), (self.rate,))
        return node

    def get_config(self) -> dict:
        return {**super().get_config(), "rate": self.rate, "noise_shape": None, "seed": self.seed}


class SpatialDropout2D(Dropout):
    """Drops whole channels of (batch, height, width, channels) images: one draw per sample and
    channel. Arguments as Dropout."""

    spatial = 1

    def __init__(self, rate: float, data_format=None, seed=None, **kwargs):
        super().__init__(rate, seed=seed, **kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"SpatialDropout2D '{self.name}': only channels_last is supported")

    def build(self, input_shape) -> None:
        check_image(input_shape, 2, f"SpatialDropout2D '{self.name}'")
        self.built = True

    def get_config(self) -> dict:
        config = {**super().get_config(), "data_format": "channels_last"}
        del config["noise_shape"]
        return config


class SpatialDropout1D(Dropout):
    """Drops whole channels of (batch, steps, channels) sequences: one draw per sample and
    channel, shared by every step. Arguments as Dropout.

    Example:
        >>> layer = pynn.layers.SpatialDropout1D(0.2)
    """

    spatial = 1

    def __init__(self, rate: float, seed=None, **kwargs):
        super().__init__(rate, seed=seed, **kwargs)

    def build(self, input_shape) -> None:
        check_image(input_shape, 1, f"SpatialDropout1D '{self.name}'")
        self.built = True

    def get_config(self) -> dict:
        config = super().get_config()
        del config["noise_shape"]
        return config


class SpatialDropout3D(Dropout):
    """Drops whole channels of (batch, depth, height, width, channels) volumes: one draw per
    sample and channel. Arguments as Dropout; data_format: only channels_last.

    Example:
        >>> layer = pynn.layers.SpatialDropout3D(0.2)
    """

    spatial = 1

    def __init__(self, rate: float, data_format=None, seed=None, **kwargs):
        super().__init__(rate, seed=seed, **kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"SpatialDropout3D '{self.name}': only channels_last is supported")

    def build(self, input_shape) -> None:
        who = f"SpatialDropout3D '{self.name}'"
        if len(input_shape) != 5:
            raise ValueError(f"{who}: expected an input of rank 5 (batch, depth, height, width, "
                             f"channels), got shape {shape_str(input_shape)}")
        if input_shape[-1] is None:
            raise ValueError(f"{who}: the channel axis of the input must be known, got "
                             f"{shape_str(input_shape)}")
        self.built = True

    def get_config(self) -> dict:
        config = {**super().get_config(), "data_format": "channels_last"}
        del config["noise_shape"]
        return config


def _fraction(value, what: str, who: str) -> float:
    """value as a float in [0, 1] (Keras's range): TypeError for a non-number, ValueError
    outside."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{who}: {what} must be a number between 0 and 1, got {value!r}")
    if not 0 <= value <= 1:
        raise ValueError(f"{who}: {what} must be between 0 and 1, got {what}={value!r}")
    return float(value)


class _NoiseLayer(Layer):
    """What the noise layers share: a seed, checked, whose SeedGenerator draws the noise of
    calls on data (None: pynn's global generator); the output shape of the input's."""

    supports_masking = True  # passes its input's mask on, as Keras's

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"{self._who()}: seed must be None or an int, got {seed!r}")
        self.seed = seed
        self._seed_generator = None if seed is None else random.SeedGenerator(seed)

    def _who(self) -> str:
        return f"{type(self).__name__} '{self.name}'"

    def _untrainable_rate(self) -> None:
        """Refuses training at rate 1, where Keras's formulas divide by 1 - rate (Keras raises
        ZeroDivisionError then). A model traces its layers for training when it is built, so
        there the error comes at once."""
        if self.rate == 1.0:
            raise ValueError(f"{self._who()}: rate=1 cannot be used in training (the noise's "
                             "scale divides by 1 - rate); give a rate < 1")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


class GaussianNoise(_NoiseLayer):
    """Adds zero-centred Gaussian noise of standard deviation `stddev` in training (a kind of
    data augmentation for real-valued inputs); passes inputs through in inference.

    Args:
        stddev: the noise's standard deviation, in [0, 1].
        seed: an int for repeatable noise in calls on data (a model's noise follows the
            model's random stream).

    Example:
        >>> layer = pynn.layers.GaussianNoise(0.1)
        >>> y = layer(np.zeros((2, 3), np.float32), training=True)
    """

    def __init__(self, stddev: float, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.stddev = _fraction(stddev, "stddev", self._who())

    def call(self, inputs, training=False):
        if training and self.stddev > 0:
            noise = random.normal(ops.shape(inputs), mean=0.0, stddev=self.stddev,
                                  seed=self._seed_generator)
            return ops.add(inputs, noise)
        return inputs

    def get_config(self) -> dict:
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


class GaussianDropout(_NoiseLayer):
    """Multiplies its inputs by Gaussian noise of mean 1 and standard deviation
    `sqrt(rate / (1 - rate))` in training (Srivastava et al., 2014); passes them through in
    inference.

    Args:
        rate: the drop probability it stands for, in [0, 1] (rate 1 only in inference).
        seed: as for GaussianNoise.

    Example:
        >>> layer = pynn.layers.GaussianDropout(0.2)
    """

    def __init__(self, rate: float, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = _fraction(rate, "rate", self._who())

    def call(self, inputs, training=False):
        if training and self.rate > 0:
            self._untrainable_rate()
            stddev = math.sqrt(self.rate / (1.0 - self.rate))
            noise = random.normal(ops.shape(inputs), mean=1.0, stddev=stddev,
                                  seed=self._seed_generator)
            return ops.multiply(inputs, noise)
        return inputs

    def get_config(self) -> dict:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


# SELU's constants: alpha dropout sets dropped values to SELU's negative saturation
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


class AlphaDropout(_NoiseLayer):
    """Dropout that keeps the mean and variance of its inputs, for self-normalizing networks
    (SELU activations; Klambauer et al., 2017). In training each value is kept with
    probability 1 - rate or set to SELU's saturation `-alpha * scale`, then the whole is mapped
    by `a x + b`, with `a = ((1 - rate) (1 + rate alpha'^2))^-1/2` and `b = -a alpha' rate`
    (alpha' = -alpha * scale), so that zero mean and unit variance are kept; in inference the
    inputs pass through.

    Args:
        rate: the fraction dropped, in [0, 1] (rate 1 only in inference).
        noise_shape: the shape of the keep mask, broadcast to the input's (None entries take
            the input's sizes), e.g. (None, 1, features) for one mask for all time steps. In a
            model, its first entry is the batch: None, or 1 for one mask shared by all samples
            (another int counts as the batch, as it must equal it in Keras).
        seed: as for GaussianNoise.

    Example:
        >>> layer = pynn.layers.AlphaDropout(0.1)
    """

    def __init__(self, rate: float, noise_shape=None, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        who = self._who()
        self.rate = _fraction(rate, "rate", who)
        if noise_shape is not None:
            if not isinstance(noise_shape, (list, tuple)) or any(
                    d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 1)
                    for d in noise_shape):
                raise ValueError(f"{who}: noise_shape must be None or a list/tuple of positive "
                                 f"ints and None, got {noise_shape!r}")
        self.noise_shape = noise_shape

    def build(self, input_shape) -> None:
        if self.noise_shape is not None and len(self.noise_shape) != len(input_shape):
            raise ValueError(f"{self._who()}: noise_shape {tuple(self.noise_shape)} must have "
                             f"the rank of the input's shape {shape_str(input_shape)}")
        self.built = True

    def _mask_shape(self, inputs) -> tuple:
        shape = ops.shape(inputs)  # on a symbolic tensor, its batch is the noise's
        if self.noise_shape is None:
            return shape
        if len(self.noise_shape) != len(shape):
            raise ValueError(f"{self._who()}: noise_shape {tuple(self.noise_shape)} must have "
                             f"the rank of the input's shape {shape_str(shape)}")
        mask = [d if n is None else n for n, d in zip(self.noise_shape, shape)]
        if shape[0] is None and mask[0] != 1:  # a model's open batch
            mask[0] = None
        return tuple(mask)

    def call(self, inputs, training=False):
        if training and self.rate > 0:
            self._untrainable_rate()
            alpha_p = -_SELU_ALPHA * _SELU_SCALE
            u = random.uniform(self._mask_shape(inputs), seed=self._seed_generator)
            kept = ops.cast(ops.greater_equal(u, self.rate), "float32")
            a = ((1.0 - self.rate) * (1.0 + self.rate * alpha_p ** 2)) ** -0.5
            b = -a * alpha_p * self.rate
            # x = inputs where kept, alpha_p elsewhere; out = a x + b
            x = ops.add(ops.multiply(inputs, kept),
                        ops.multiply(ops.subtract(1.0, kept), alpha_p))
            return ops.add(ops.multiply(x, a), b)
        return inputs

    def get_config(self) -> dict:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed,
                "noise_shape": self.noise_shape}


def _factor(value, what: str, who: str) -> float:
    """A penalty factor as a float: a finite number >= 0 (ValueError otherwise, as Keras)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if isinstance(value, bool) or not 0.0 <= v < float("inf"):
        raise ValueError(f"{who}: {what} must be a non-negative number, got {what}={value!r}")
    return v


class ActivityRegularization(Layer):
    """Passes its inputs through and adds `l1 * sum(|x|) + l2 * sum(x**2)`, divided by the
    batch size (as Keras 3 normalises activity penalties), to the model's loss through
    add_loss: in fit and evaluate, and in `layer.losses` after a call on data.

    Args:
        l1: the L1 factor (>= 0).
        l2: the L2 factor (>= 0).

    Example:
        >>> layer = pynn.layers.ActivityRegularization(l2=1e-3)
    """

    supports_masking = True  # passes its input's mask on, as Keras's

    def __init__(self, l1: float = 0.0, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.l1, self.l2 = (_factor(v, what, f"ActivityRegularization '{self.name}'")
                            for v, what in ((l1, "l1"), (l2, "l2")))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def call(self, inputs):
        if self.l1 or self.l2:
            # l1 |x| + l2 x^2 summed over each sample's axes, then averaged over the batch
            axes = tuple(range(1, len(ops.shape(inputs))))
            terms = [ops.multiply(f(inputs), factor)
                     for factor, f in ((self.l1, ops.abs), (self.l2, ops.square)) if factor]
            penalty = terms[0] if len(terms) == 1 else ops.add(*terms)
            self.add_loss(ops.mean(ops.sum(penalty, axis=axes) if axes else penalty))
        return inputs

    def get_config(self) -> dict:
        return {**super().get_config(), "l1": self.l1, "l2": self.l2}


__all__ = ["ActivityRegularization", "AlphaDropout", "Dropout", "GaussianDropout",
           "GaussianNoise", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D"]
