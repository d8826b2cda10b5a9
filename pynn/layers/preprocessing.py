"""Preprocessing layers that are arithmetic on images and features, and run in the core graph
like any layer: Rescaling, CenterCrop, Resizing, Normalization (with `adapt`), CategoryEncoding,
Discretization. Keras's random augmentations are in augmentation.py (core ops drawing per
image in training); its layers on strings (TextVectorization, StringLookup, IntegerLookup,
Hashing) in preprocessing_text.py (NumPy, before the core)."""

import numpy as np

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

    supports_masking = True  # passes its input's mask on, as Keras's

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


def _batches(data):
    """adapt()'s data as one float64 array: an array (or nested lists), or an iterable of
    batches (a generator, a PyDataset: x or (x, y) each)."""
    if isinstance(data, (np.ndarray, list, tuple)):
        return np.asarray(data, dtype=np.float64)
    parts = [np.asarray(b[0] if isinstance(b, (list, tuple)) else b, dtype=np.float64)
             for b in data]
    if not parts:
        raise ValueError("adapt(): the data has no batches")
    return np.concatenate(parts, axis=0)


class Normalization(Layer):
    """(x - mean) / sqrt(variance) along `axis` (per feature), Keras's Normalization: the
    statistics are given, or learned from data by `adapt(data)` (kept as the non-trainable
    weights "mean", "variance" and "count"). invert=True maps normalised values back.

    Args:
        axis: the axis (or axes) that keep their own statistics (-1: per feature); None: one
            mean and variance for everything.
        mean, variance: the statistics, if known (broadcast over `axis`).
        invert: x * sqrt(variance) + mean instead.

    Example:
        >>> norm = pynn.layers.Normalization()
        >>> norm.adapt(np.array([[1.0], [3.0], [5.0]], np.float32))
        >>> np.round(norm(np.array([[3.0]], np.float32)).numpy(), 3)
        array([[0.]], dtype=float32)
    """

    supports_masking = True  # passes its input's mask on, as Keras's

    def __init__(self, axis=-1, mean=None, variance=None, invert: bool = False, **kwargs):
        super().__init__(**kwargs)
        if axis is None:
            self.axis = ()
        elif isinstance(axis, int) and not isinstance(axis, bool):
            self.axis = (axis,)
        else:
            self.axis = tuple(axis)
        if (mean is None) != (variance is None):
            raise ValueError(f"Normalization '{self.name}': pass both mean and variance, or "
                             "neither (then call adapt())")
        self.input_mean = None if mean is None else np.asarray(mean, np.float32)
        self.input_variance = None if variance is None else np.asarray(variance, np.float32)
        self.invert = bool(invert)

    def _kept(self, input_shape) -> list:
        rank = len(input_shape)
        axes = sorted(a % rank for a in self.axis)
        if any(a == 0 for a in axes):
            raise ValueError(f"Normalization '{self.name}': axis {self.axis} includes the "
                             "batch axis")
        if any(input_shape[a] is None for a in axes):
            raise ValueError(f"Normalization '{self.name}': the axes {self.axis} of "
                             f"{tuple(input_shape)} must have known sizes")
        return axes

    def _stat_shape(self, input_shape) -> tuple:
        """The statistics' shape, as Keras keeps them: the kept axes' sizes."""
        return tuple(input_shape[a] for a in self._kept(input_shape))

    def _broadcast_shape(self, input_shape) -> tuple:
        """Against one sample: the kept axes' sizes, 1 elsewhere."""
        kept = self._kept(input_shape)
        return tuple(input_shape[a] if a in kept else 1 for a in range(1, len(input_shape)))

    def build(self, input_shape) -> None:
        shape = self._stat_shape(input_shape)
        if self.input_mean is None:
            self.mean = self.add_weight(shape, "zeros", trainable=False, name="mean")
            self.variance = self.add_weight(shape, "ones", trainable=False, name="variance")
            self.count = self.add_weight((), "zeros", trainable=False, name="count")

    def adapt(self, data) -> None:
        """Learns mean and variance (population) from `data`: an array, or batches of it."""
        if self.input_mean is not None:
            raise ValueError(f"Normalization '{self.name}': mean and variance were given; "
                             "adapt() learns them only when they were not")
        x = _batches(data)
        if x.ndim < 1 or len(x) == 0:
            raise ValueError(f"Normalization '{self.name}': adapt() needs a batch of data, "
                             f"got shape {x.shape}")
        shape = (None,) + x.shape[1:]
        if not self.built:
            self.build(shape)
            self.built = True
        kept = self._kept(shape)
        axes = tuple(i for i in range(x.ndim) if i not in kept)
        self.mean.assign(x.mean(axis=axes).reshape(self._stat_shape(shape)).astype(np.float32))
        self.variance.assign(x.var(axis=axes).reshape(self._stat_shape(shape))
                             .astype(np.float32))
        self.count.assign(np.float32(len(x)))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        if self.input_mean is not None:
            mean, variance = self.input_mean, self.input_variance
        else:
            shape = self._broadcast_shape(ops.shape(x))
            mean, variance = ops.reshape(self.mean, shape), ops.reshape(self.variance, shape)
        std = ops.maximum(ops.sqrt(variance), 1e-7)
        if self.invert:
            return ops.add(ops.multiply(x, std), mean)
        return ops.divide(ops.subtract(x, mean), std)

    def get_config(self) -> dict:
        def listed(v):
            return None if v is None else v.tolist()
        return {**super().get_config(), "axis": self.axis, "invert": self.invert,
                "mean": listed(self.input_mean), "variance": listed(self.input_variance)}


class CategoryEncoding(Layer):
    """Integer categories as vectors of num_tokens: "one_hot" (one category per sample, or
    per last-axis entry), "multi_hot" (1 for every category present), "count" (how many
    times each is present).

    Example:
        >>> pynn.layers.CategoryEncoding(4, output_mode="count")(
        ...     np.array([[0, 1, 1]])).numpy()
        array([[1., 2., 0., 0.]], dtype=float32)
    """

    def __init__(self, num_tokens=None, output_mode: str = "multi_hot", sparse: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        who = f"CategoryEncoding '{self.name}'"
        if isinstance(num_tokens, bool) or not isinstance(num_tokens, int) or num_tokens < 1:
            raise ValueError(f"{who}: num_tokens must be a positive int, got {num_tokens!r}")
        if output_mode not in ("one_hot", "multi_hot", "count"):
            raise ValueError(f"{who}: output_mode must be 'one_hot', 'multi_hot' or 'count', "
                             f"got {output_mode!r}")
        if sparse:
            raise ValueError(f"{who}: sparse outputs are not supported")
        self.num_tokens, self.output_mode, self.sparse = num_tokens, output_mode, False

    def compute_output_shape(self, input_shape):
        if self.output_mode == "one_hot" and (len(input_shape) == 1 or input_shape[-1] != 1):
            return tuple(input_shape) + (self.num_tokens,)
        return tuple(input_shape[:-1]) + (self.num_tokens,)

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        shape = ops.shape(x)
        if self.output_mode == "one_hot" and len(shape) > 1 and shape[-1] == 1:
            x = ops.squeeze(x, -1)
        tokens = np.arange(self.num_tokens, dtype=np.float32)
        if self.output_mode == "one_hot":
            return ops.cast(ops.equal(ops.expand_dims(x, -1), tokens), "float32")
        hits = ops.cast(ops.equal(ops.expand_dims(x, -1), tokens), "float32")
        counts = ops.sum(hits, axis=-2)
        return counts if self.output_mode == "count" else ops.minimum(counts, 1.0)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_tokens": self.num_tokens,
                "output_mode": self.output_mode, "sparse": self.sparse}


class Discretization(Layer):
    """The bin of each value: how many of the sorted bin_boundaries are <= it (Keras's
    Discretization with output_mode "int"; the indices come out as float32, as every output
    of a pynn model is). adapt(data) sets num_bins boundaries at the data's quantiles.

    Example:
        >>> pynn.layers.Discretization([0.0, 1.0, 2.0])(
        ...     np.array([[-1.5, 0.0, 0.5, 2.5]], np.float32)).numpy()
        array([[0., 1., 1., 3.]], dtype=float32)
    """

    def __init__(self, bin_boundaries=None, num_bins=None, epsilon: float = 0.01,
                 output_mode: str = "int", sparse: bool = False, **kwargs):
        super().__init__(**kwargs)
        who = f"Discretization '{self.name}'"
        if (bin_boundaries is None) == (num_bins is None):
            raise ValueError(f"{who}: pass bin_boundaries or num_bins (then call adapt())")
        if output_mode != "int" or sparse:
            raise ValueError(f"{who}: only output_mode='int' (dense) is supported, got "
                             f"{output_mode!r}")
        self.bin_boundaries = None if bin_boundaries is None else \
            [float(b) for b in bin_boundaries]
        if self.bin_boundaries is not None and sorted(self.bin_boundaries) != \
                self.bin_boundaries:
            raise ValueError(f"{who}: bin_boundaries must be sorted, got {bin_boundaries}")
        self.num_bins, self.epsilon = num_bins, float(epsilon)
        self.output_mode, self.sparse = output_mode, False

    def adapt(self, data) -> None:
        """Boundaries at the num_bins - 1 inner quantiles of `data`."""
        if self.num_bins is None:
            raise ValueError(f"Discretization '{self.name}': adapt() needs num_bins")
        x = _batches(data).ravel()
        qs = np.linspace(0.0, 1.0, self.num_bins + 1)[1:-1]
        self.bin_boundaries = [float(b) for b in np.quantile(x, qs)]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def call(self, inputs):
        if self.bin_boundaries is None:
            raise ValueError(f"Discretization '{self.name}': call adapt() first, or pass "
                             "bin_boundaries")
        x = ops.cast(inputs, "float32")
        if not self.bin_boundaries:
            return ops.zeros_like(x)
        bounds = np.asarray(self.bin_boundaries, np.float32)
        return ops.sum(ops.cast(ops.greater_equal(ops.expand_dims(x, -1), bounds), "float32"),
                       axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "bin_boundaries": self.bin_boundaries,
                "num_bins": self.num_bins, "epsilon": self.epsilon,
                "output_mode": self.output_mode, "sparse": self.sparse}


class Resizing(Layer):
    """Images resized to (height, width), Keras's Resizing without antialiasing: "nearest" or
    "bilinear" (half-pixel centers, edges held, as Keras and PyTorch's
    interpolate(align_corners=False) compute them). crop_to_aspect_ratio, pad_to_aspect_ratio
    and antialias are not supported (refused).

    Example:
        >>> pynn.layers.Resizing(8, 6).compute_output_shape((None, 4, 3, 3))
        (None, 8, 6, 3)
    """

    def __init__(self, height: int, width: int, interpolation: str = "bilinear",
                 crop_to_aspect_ratio: bool = False, pad_to_aspect_ratio: bool = False,
                 fill_mode: str = "constant", fill_value: float = 0.0, antialias: bool = False,
                 data_format=None, **kwargs):
        super().__init__(**kwargs)
        who = f"Resizing '{self.name}'"
        for arg, v in (("height", height), ("width", width)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{who}: {arg} must be a positive int, got {v!r}")
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError(f"{who}: interpolation {interpolation!r} is not supported "
                             "('nearest' or 'bilinear')")
        for arg, v in (("crop_to_aspect_ratio", crop_to_aspect_ratio),
                       ("pad_to_aspect_ratio", pad_to_aspect_ratio), ("antialias", antialias)):
            if v:
                raise ValueError(f"{who}: {arg}=True is not supported")
        self.height, self.width, self.interpolation = height, width, interpolation
        self.crop_to_aspect_ratio = self.pad_to_aspect_ratio = self.antialias = False
        self.fill_mode, self.fill_value = fill_mode, float(fill_value)
        self.data_format = normalize_data_format(data_format, who, channels_first=True)

    def _axes(self) -> tuple:
        return (2, 3) if self.data_format == "channels_first" else (1, 2)

    def compute_output_shape(self, input_shape):
        out = list(input_shape)
        for axis, size in zip(self._axes(), (self.height, self.width)):
            out[axis] = size
        return tuple(out)

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        for axis, size in zip(self._axes(), (self.height, self.width)):
            n = ops.shape(x)[axis]
            if n is None:
                raise ValueError(f"Resizing '{self.name}': the image size must be known")
            if n == size:
                continue
            src = (np.arange(size) + 0.5) * (n / size) - 0.5
            if self.interpolation == "nearest":
                idx = np.clip(np.floor((np.arange(size) + 0.5) * (n / size)), 0, n - 1)
                x = ops.take(x, idx.astype(np.int32), axis=axis)
                continue
            src = np.clip(src, 0, n - 1)
            lo = np.floor(src)
            frac = (src - lo).astype(np.float32).reshape(
                (-1,) + (1,) * (len(ops.shape(x)) - 1 - axis))
            a = ops.take(x, lo.astype(np.int32), axis=axis)
            b = ops.take(x, np.minimum(lo + 1, n - 1).astype(np.int32), axis=axis)
            x = a + (b - a) * frac
        return x

    def get_config(self) -> dict:
        return {**super().get_config(), "data_format": self.data_format,
                "height": self.height, "width": self.width,
                "interpolation": self.interpolation,
                "crop_to_aspect_ratio": self.crop_to_aspect_ratio,
                "pad_to_aspect_ratio": self.pad_to_aspect_ratio, "fill_mode": self.fill_mode,
                "fill_value": self.fill_value, "antialias": self.antialias}


__all__ = ["CategoryEncoding", "CenterCrop", "Discretization", "Normalization", "Rescaling",
           "Resizing"]
