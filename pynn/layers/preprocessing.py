"""Preprocessing layers that are plain arithmetic on images and features, and run in the core
graph like any layer: Rescaling and CenterCrop. (Keras's other preprocessing layers, with
vocabularies, statistics from `adapt()` or random augmentation, are not here yet.)"""

from .. import ops
from .base import Layer
from .convolutional import normalize_data_format


def _plain(v):
    """A number or an array as JSON takes it."""
    return v.tolist() if hasattr(v, "tolist") else v


class Rescaling(Layer):
    """x * scale + offset: Rescaling(1 / 255) maps [0, 255] pixels to [0, 1], and
    Rescaling(1 / 127.5, offset=-1) to [-1, 1].

    Args:
        scale: a number, or values that broadcast against one sample (per channel, say).
        offset: likewise (0).

    Example:
        >>> pynn.layers.Rescaling(1 / 255)(np.full((1, 2), 255, np.float32)).numpy()
        array([[1., 1.]], dtype=float32)
    """

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.offset = scale, offset

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def call(self, inputs):
        return ops.add(ops.multiply(ops.cast(inputs, "float32"), self.scale), self.offset)

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": _plain(self.scale),
                "offset": _plain(self.offset)}


class CenterCrop(Layer):
    """The central (height, width) window of (batch, h, w, channels) images (the top-left
    corner at ((h - height) // 2, (w - width) // 2)). Keras resizes an image smaller than the
    window; pynn refuses it with an error instead.

    Args:
        height, width: the window's size.
        data_format: 'channels_last' (None) or 'channels_first'.

    Example:
        >>> pynn.layers.CenterCrop(24, 24).compute_output_shape((None, 28, 28, 1))
        (None, 24, 24, 1)
    """

    def __init__(self, height: int, width: int, data_format=None, **kwargs):
        super().__init__(**kwargs)
        who = f"CenterCrop '{self.name}'"
        for arg, v in (("height", height), ("width", width)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{who}: {arg} must be a positive int, got {v!r}")
        self.height, self.width = height, width
        self.data_format = normalize_data_format(data_format, who, channels_first=True)

    def _axes(self) -> tuple:
        return (2, 3) if self.data_format == "channels_first" else (1, 2)

    def compute_output_shape(self, input_shape):
        if len(input_shape) not in (3, 4):
            raise ValueError(f"CenterCrop '{self.name}': expects images of rank 4 (batch "
                             f"first), got {tuple(input_shape)}")
        out = list(input_shape)
        for axis, size in zip(self._axes(), (self.height, self.width)):
            if out[axis] is not None and out[axis] < size:
                raise ValueError(f"CenterCrop '{self.name}': the input {tuple(input_shape)} is "
                                 f"smaller than the crop ({self.height}, {self.width}); pynn "
                                 "does not resize it as Keras does (use Resizing first)")
            out[axis] = size
        return tuple(out)

    def call(self, inputs):
        shape = ops.shape(inputs)
        self.compute_output_shape(shape)
        key = [slice(None)] * len(shape)
        for axis, size in zip(self._axes(), (self.height, self.width)):
            if shape[axis] is None:
                raise ValueError(f"CenterCrop '{self.name}': the image size must be known, got "
                                 f"{tuple(shape)}")
            lo = (shape[axis] - size) // 2
            key[axis] = slice(lo, lo + size)
        return inputs[tuple(key)]

    def get_config(self) -> dict:
        return {**super().get_config(), "height": self.height, "width": self.width,
                "data_format": self.data_format}


__all__ = ["CenterCrop", "Rescaling"]
