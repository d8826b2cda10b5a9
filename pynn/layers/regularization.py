"""Dropout layers: active in fit, the identity in predict and evaluate."""

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


__all__ = ["Dropout", "SpatialDropout2D"]
