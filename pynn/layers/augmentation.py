"""Keras 3's random image augmentation layers: RandomFlip, RandomRotation, RandomZoom,
RandomTranslation, RandomContrast, RandomBrightness, RandomCrop.

Each lowers to one core op (csrc/core/ops_augment.c) that draws its parameters per image in a
training run from the model's random stream, so `fit` stays one core call per batch and a seed
repeats it; predict, evaluate and a model called without `training=True` pass the images
through (RandomCrop: see its docstring). Called on data, a layer draws from its own `seed`
(pynn's global generator when None) and, as in Keras, augments unless called with
`training=False` or inside a call that runs in inference.
"""

import numpy as np

from .. import _core
from .. import random as pn_random
from ..utils.shape_utils import shape_str
from .base import Layer
from .convolutional import normalize_data_format

_FILL_MODES = ("reflect", "wrap", "constant", "nearest")
_INTERPOLATIONS = ("bilinear", "nearest")
_FLIP_MODES = {"horizontal": 1, "vertical": 2, "horizontal_and_vertical": 3}


def _number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _symmetric_factor(factor, bounds, message: str):
    """Keras's BaseImagePreprocessingLayer._set_factor: a number f gives
    (max(-|f|, bounds[0]), |f|), a pair its sorted values; ValueError outside `bounds`."""
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or not all(_number(f) for f in factor):
            raise ValueError(f"{message} Received: factor={factor}")
        if factor[0] > bounds[1] or factor[1] < bounds[0]:
            raise ValueError(f"{message} Received: factor={factor}")
        lower, upper = sorted(float(f) for f in factor)
    elif _number(factor):
        if factor < bounds[0] or factor > bounds[1]:
            raise ValueError(f"{message} Received: factor={factor}")
        factor = abs(float(factor))
        lower, upper = max(-factor, bounds[0]), factor
    else:
        raise ValueError(f"{message} Received: factor={factor}")
    return lower, upper


def _axis_factor(factor, name: str, low_open: bool, message: str):
    """RandomZoom's and RandomTranslation's _set_factor: each number in [-1, 1] ((-1, 1] for a
    zoom, `low_open`), a number f gives (-|f|, |f|), a pair its sorted values."""
    def check(v):
        if not _number(v) or v > 1.0 or v < -1.0 or (low_open and v == -1.0):
            raise ValueError(f"{message} Received: {name}={factor}")

    if isinstance(factor, (tuple, list)):
        if len(factor) != 2:
            raise ValueError(f"{message} Received: {name}={factor}")
        check(factor[0])
        check(factor[1])
        return tuple(sorted(float(f) for f in factor))
    if _number(factor):
        check(factor)
        return -abs(float(factor)), abs(float(factor))
    raise ValueError(f"{message} Received: {name}={factor}")


class _Augmentation(Layer):
    """What the augmentation layers share: seed, data_format, the image checks, the lowering to
    one core op, and Keras's default of augmenting a call on data given no `training`."""

    _op = ""

    def __init__(self, seed=None, data_format=None, bounding_box_format=None, **kwargs):
        super().__init__(**kwargs)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ValueError(f"{self._who()}: seed must be None or an int, got {seed!r}")
        if bounding_box_format is not None:
            raise NotImplementedError(f"{self._who()}: bounding boxes are not supported "
                                      "(bounding_box_format must be None); pynn augments images")
        self.seed = None if seed is None else int(seed)
        self.data_format = normalize_data_format(data_format, self._who(), channels_first=True)
        self._seed_generator = None if seed is None else pn_random.SeedGenerator(int(seed))

    def _who(self) -> str:
        return f"{type(self).__name__} '{self.name}'"

    def __call__(self, *args, **kwargs):
        # Keras's call(data, training=True): a call on data outside any model call augments
        from . import tracing
        from .input_layer import KerasTensor
        if (args and kwargs.get("training") is None and tracing.current_training() is None
                and not tracing.tracing()
                and not tracing.find_tensors((args, kwargs), KerasTensor)):
            kwargs["training"] = True
        return super().__call__(*args, **kwargs)

    def _call_eager(self, inputs, training: bool, kwargs: dict):
        # Keras takes a single image (height, width, channels) too: a batch of one
        if not isinstance(inputs, (list, tuple)) and np.ndim(inputs) == 3:
            from .. import ops
            out = super()._call_eager(ops.expand_dims(inputs, 0), training, kwargs)
            return ops.squeeze(out, 0)
        return super()._call_eager(inputs, training, kwargs)

    def _hw_axes(self) -> tuple:
        return (2, 3) if self.data_format == "channels_first" else (1, 2)

    def build(self, input_shape) -> None:
        if len(input_shape) != 4:
            want = ("(batch, channels, height, width)" if self.data_format == "channels_first"
                    else "(batch, height, width, channels)")
            raise ValueError(f"{self._who()}: expected images of rank 4 {want}, got shape "
                             f"{shape_str(input_shape)}")
        if any(d is None for d in input_shape[1:]):
            raise ValueError(f"{self._who()}: the image size and channels must be known, got "
                             f"shape {shape_str(input_shape)}")
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _attrs(self, shape: tuple):
        """The op's (iattr, fattr) for per-sample input `shape`."""
        raise NotImplementedError

    def lower(self, core, node: int) -> int:
        shape = tuple(core.node_shape(node))
        self.build((None, *shape))
        if core.node_dtype(node) != "float32":  # Keras computes in float32 (compute dtype)
            node, _ = core.add_node("cast", (node,), (), (0,))
        from ..eager import _EagerGraph
        if isinstance(core, _EagerGraph):
            return self._lower_eager(core, node, shape)
        iattr, fattr = self._attrs(shape)
        node, _ = core.add_node(self._op, (node,), (), iattr, fattr)
        return node

    def _lower_eager(self, core, node: int, shape: tuple) -> int:
        """The op run now on the value, seeded by the layer's own seed generator."""
        iattr, fattr = self._attrs(shape)
        rng = pn_random._rng(self._seed_generator, type(self).__name__)
        seed = int(rng.integers(2**63))
        out = _core.op(self._op, [core.value(node)], [], tuple(iattr), tuple(fattr),
                       bool(core._training), seed, False)
        return core.add(out)

    def get_config(self) -> dict:
        return {**super().get_config(), "data_format": self.data_format}


class _AffineAugmentation(_Augmentation):
    """RandomRotation, RandomZoom, RandomTranslation: one image_affine op."""

    _op = "image_affine"
    _transform = 0

    def _set_sampling(self, fill_mode, interpolation, fill_value) -> None:
        if fill_mode not in _FILL_MODES:
            raise NotImplementedError(f"Unknown `fill_mode` {fill_mode}. Expected of one "
                                      f"{_FILL_MODES}.")
        if interpolation not in ("nearest", "bilinear"):
            raise NotImplementedError(f"Unknown `interpolation` {interpolation}. Expected of "
                                      "one ('nearest', 'bilinear').")
        if not _number(fill_value):
            raise ValueError(f"{self._who()}: fill_value must be a number, got {fill_value!r}")
        self.fill_mode, self.interpolation = fill_mode, interpolation
        self.fill_value = fill_value

    def _ranges(self) -> tuple:
        """(lower, upper) of the first and second parameters, and whether the second is drawn."""
        raise NotImplementedError

    def _attrs(self, shape: tuple):
        (a, b), (c, d), own = self._ranges()
        iattr = (self._transform, _FILL_MODES.index(self.fill_mode),
                 _INTERPOLATIONS.index(self.interpolation),
                 int(self.data_format == "channels_first"), int(own))
        return iattr, (a, b, c, d, float(self.fill_value))


class RandomRotation(_AffineAugmentation):
    """Rotates each image by a random angle in training (about its centre), filling the corners
    according to `fill_mode`; passes images through in inference.

    Args:
        factor: a fraction of a full turn: f draws angles in [-f * 360, f * 360] degrees, a pair
            (lower, upper) in [lower * 360, upper * 360]; positive turns counter-clockwise.
        fill_mode: 'reflect' (d c b a | a b c d | d c b a), 'wrap', 'constant' (fill_value)
            or 'nearest'.
        interpolation: 'bilinear' or 'nearest'.
        seed: an int: repeatable draws in calls on data (a model follows its random stream).
        fill_value: the value outside the image with fill_mode='constant'.
        data_format: 'channels_last' (None) or 'channels_first'.

    Example:
        >>> layer = pynn.layers.RandomRotation(0.1, fill_mode="constant")
        >>> layer(np.ones((2, 8, 8, 3), np.float32), training=True).shape
        (2, 8, 8, 3)
    """

    _transform = 0

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _symmetric_factor(
            factor or 0.0, (-1, 1), "The `factor` argument should be a number (or a list of two "
            "numbers) in the range [-1, 1].")
        self._set_sampling(fill_mode, interpolation, fill_value)

    def _ranges(self):
        return self.factor, (0.0, 0.0), False

    def get_config(self) -> dict:
        return {**super().get_config(), "factor": self.factor, "fill_mode": self.fill_mode,
                "fill_value": self.fill_value, "interpolation": self.interpolation,
                "seed": self.seed}


class RandomZoom(_AffineAugmentation):
    """Zooms each image by a random amount in training, about its centre; passes images through
    in inference.

    Args:
        height_factor: a number f in (-1, 1] draws the height's zoom from [-f, f], a pair from
            [lower, upper]; the image is sampled at (1 + zoom) times its spacing, so a positive
            zoom shows more of the image (zooms out) and a negative one zooms in.
        width_factor: likewise for the width; None zooms the width as the height (one draw).
        fill_mode, interpolation, seed, fill_value, data_format: as for RandomRotation.

    Example:
        >>> layer = pynn.layers.RandomZoom((-0.2, 0.2))
        >>> layer(np.ones((2, 8, 8, 3), np.float32), training=True).shape
        (2, 8, 8, 3)
    """

    _transform = 1
    _message = ("The `height_factor` and `width_factor` arguments should be a number (or a list "
                "of two numbers) in the range (-1.0, 1.0].")

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self._height = _axis_factor(height_factor, "height_factor", True, self._message)
        self._width = (None if width_factor is None else
                       _axis_factor(width_factor, "width_factor", True, self._message))
        self._set_sampling(fill_mode, interpolation, fill_value)

    def _ranges(self):
        return self._height, self._width or (0.0, 0.0), self._width is not None

    def get_config(self) -> dict:
        return {**super().get_config(), "height_factor": self.height_factor,
                "width_factor": self.width_factor, "fill_mode": self.fill_mode,
                "interpolation": self.interpolation, "seed": self.seed,
                "fill_value": self.fill_value}


class RandomTranslation(_AffineAugmentation):
    """Shifts each image by a random fraction of its height and width in training; passes
    images through in inference.

    Args:
        height_factor: a number f in [-1, 1] draws the vertical shift from [-f, f] times the
            height, a pair from [lower, upper]; positive shifts the image down.
        width_factor: likewise across the width; positive shifts it right.
        fill_mode, interpolation, seed, fill_value, data_format: as for RandomRotation.

    Example:
        >>> layer = pynn.layers.RandomTranslation(0.1, 0.1)
        >>> layer(np.ones((2, 8, 8, 3), np.float32), training=True).shape
        (2, 8, 8, 3)
    """

    _transform = 2
    _message = ("The `factor` argument should be a number (or a list of two numbers) in the "
                "range [-1.0, 1.0].")

    def __init__(self, height_factor, width_factor, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self._height = _axis_factor(height_factor, "height_factor", False, self._message)
        self._width = _axis_factor(width_factor, "width_factor", False, self._message)
        self._set_sampling(fill_mode, interpolation, fill_value)

    def _ranges(self):
        return self._height, self._width, True

    def get_config(self) -> dict:
        return {**super().get_config(), "height_factor": self.height_factor,
                "width_factor": self.width_factor, "fill_mode": self.fill_mode,
                "interpolation": self.interpolation, "seed": self.seed,
                "fill_value": self.fill_value}


class RandomFlip(_Augmentation):
    """Flips each image with probability 1/2 in training; passes images through in inference.
    With 'horizontal_and_vertical' one draw flips both axes (as Keras: an image is either
    itself or turned by 180 degrees).

    Args:
        mode: 'horizontal' (left-right), 'vertical' (top-bottom) or 'horizontal_and_vertical'.
        seed: an int: repeatable draws in calls on data (a model follows its random stream).
        data_format: 'channels_last' (None) or 'channels_first'.

    Example:
        >>> layer = pynn.layers.RandomFlip("horizontal")
        >>> layer(np.ones((2, 4, 4, 1), np.float32), training=True).shape
        (2, 4, 4, 1)
    """

    _op = "random_flip"

    def __init__(self, mode="horizontal_and_vertical", seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if mode not in _FLIP_MODES:
            raise ValueError(f"{self._who()}: mode must be one of {tuple(_FLIP_MODES)}, got "
                             f"{mode!r}")
        self.mode = mode

    def _attrs(self, shape):
        return (_FLIP_MODES[self.mode], int(self.data_format == "channels_first")), ()

    def get_config(self) -> dict:
        return {**super().get_config(), "seed": self.seed, "mode": self.mode}


class RandomContrast(_Augmentation):
    """Scales each image's deviation from its per-channel mean by a random factor in training,
    then clips to `value_range`: y = clip((x - mean) f + mean); passes images through in
    inference.

    Args:
        factor: a number or a pair (lower, upper) in [0, 1]; f is drawn from
            [1 - lower, 1 + upper]. As in Keras, a single number f keeps (0, f): factors in
            [1, 1 + f].
        value_range: (low, high): the output is clipped to it (Keras: (0, 255)).
        seed: an int: repeatable draws in calls on data (a model follows its random stream).

    Example:
        >>> layer = pynn.layers.RandomContrast((0.2, 0.2), value_range=(0, 1))
        >>> layer(np.ones((2, 4, 4, 3), np.float32), training=True).shape
        (2, 4, 4, 3)
    """

    _op = "random_contrast"

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor = _symmetric_factor(
            factor or 0.0, (0, 1), "The `factor` argument should be a number (or a list of two "
            "numbers) in the range [0, 1].")
        if (not isinstance(value_range, (tuple, list)) or len(value_range) != 2
                or not all(_number(v) for v in value_range)):
            raise ValueError(f"{self._who()}: value_range must be a pair of numbers (low, high), "
                             f"got {value_range!r}")
        self.value_range = value_range

    def _attrs(self, shape):
        lo, hi = 1.0 - self.factor[0], 1.0 + self.factor[1]
        return ((int(self.data_format == "channels_first"),),
                (lo, max(lo, hi), float(self.value_range[0]), float(self.value_range[1])))

    def get_config(self) -> dict:
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range,
                "seed": self.seed}


class RandomBrightness(_Augmentation):
    """Adds a random delta to each image in training, then clips to `value_range`; passes images
    through in inference.

    Args:
        factor: a number f in [-1, 1] draws the delta from [-f, f] times the width of
            value_range, a pair (lower, upper) from [lower, upper] times it.
        value_range: (low, high), sorted (Keras: (0, 255)).
        seed: an int: repeatable draws in calls on data (a model follows its random stream).

    Example:
        >>> layer = pynn.layers.RandomBrightness(0.2, value_range=(0, 1))
        >>> layer(np.full((2, 4, 4, 3), 0.5, np.float32), training=True).shape
        (2, 4, 4, 3)
    """

    _op = "random_brightness"

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor = _symmetric_factor(
            factor or 0.0, (-1, 1), "The `factor` argument should be a number (or a list of two "
            "numbers) in the range [-1, 1].")
        message = ("The `value_range` argument should be a list of two numbers. Received: "
                   f"value_range={value_range}")
        if not isinstance(value_range, (tuple, list)) or len(value_range) != 2:
            raise ValueError(message)
        if not all(_number(v) for v in value_range):
            raise ValueError(message)
        self.value_range = sorted(value_range)

    def _attrs(self, shape):
        return (), (self.factor[0], self.factor[1], float(self.value_range[0]),
                    float(self.value_range[1]))

    def get_config(self) -> dict:
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range,
                "seed": self.seed}


class RandomCrop(_Augmentation):
    """Crops a random (height, width) window out of the images in training: one window for the
    whole batch (as Keras), when the images are larger than it on both axes; otherwise the
    centre at the window's aspect ratio, resized bilinearly to (height, width).

    Inference: called on data with training=False it returns the images unchanged (as Keras 3
    does); in a model (predict, evaluate), whose output shape is fixed, it takes the centre at
    the window's aspect ratio resized to (height, width), as Keras 2 did (Keras 3 would give the
    uncropped images there).

    Args:
        height, width: the window's size.
        seed: an int: repeatable draws in calls on data (a model follows its random stream);
            None picks one, which the config keeps (as Keras).
        data_format: 'channels_last' (None) or 'channels_first'.

    Example:
        >>> layer = pynn.layers.RandomCrop(24, 24)
        >>> layer.compute_output_shape((None, 28, 28, 1))
        (None, 24, 24, 1)
    """

    _op = "random_crop"

    def __init__(self, height, width, seed=None, data_format=None, name=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, name=name, **kwargs)
        for arg, v in (("height", height), ("width", width)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{self._who()}: {arg} must be a positive int, got {v!r}")
        self.height, self.width = int(height), int(width)
        if self.seed is None:  # Keras keeps a default seed of its own in the config
            self.seed = int(pn_random._rng(None, "RandomCrop").integers(1, 10**9))
            self._seed_generator = pn_random.SeedGenerator(self.seed)

    def compute_output_shape(self, input_shape):
        out = list(input_shape)
        if len(out) not in (3, 4):
            raise ValueError(f"{self._who()}: expected images of rank 4, got shape "
                             f"{shape_str(input_shape)}")
        h, w = (-2, -1) if self.data_format == "channels_first" else (-3, -2)
        out[h], out[w] = self.height, self.width
        return tuple(out)

    def _attrs(self, shape):
        return (self.height, self.width, int(self.data_format == "channels_first")), ()

    def _lower_eager(self, core, node: int, shape: tuple) -> int:
        if not core._training:  # Keras 3: the images unchanged
            return node
        return super()._lower_eager(core, node, shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "height": self.height, "width": self.width,
                "seed": self.seed}


__all__ = ["RandomBrightness", "RandomContrast", "RandomCrop", "RandomFlip", "RandomRotation",
           "RandomTranslation", "RandomZoom"]
