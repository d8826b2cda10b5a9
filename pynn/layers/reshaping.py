"""Reshaping layers: Flatten, Reshape, Permute, RepeatVector, Identity, and the up-sampling,
cropping and zero-padding layers of 1, 2 and 3 spatial axes.

Most lower to the core's shape ops (reshape, slice, zero_pad2d, concatenate), which run alike in
a model's graph and on data. The few that need an op of `pynn.ops` (a transpose for Permute,
strided slices for Cropping2D and Cropping3D, gathers for UpSampling2D) are written with
`call()`, which pynn traces into the same core graph and runs on the tape on data.
"""

import math

import numpy as np

from ..utils.shape_utils import shape_str
from .base import Layer
from .convolutional import check_image, normalize_data_format


def _known(shape) -> bool:
    return all(d is not None for d in shape)


class Flatten(Layer):
    """Flattens each sample to one axis: (batch, ...) -> (batch, product of the rest).

    Example:
        >>> pynn.layers.Flatten().compute_output_shape((None, 5, 5, 64))
        (None, 1600)
    """

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = normalize_data_format(data_format, f"Flatten '{self.name}'")

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        return (input_shape[0], math.prod(rest) if _known(rest) else None)

    def lower(self, core, node: int) -> int:
        shape = core.node_shape(node)
        if len(shape) == 1:
            return node
        node, _ = core.add_node("reshape", (node,), (), (1, math.prod(shape)))
        return node

    def get_config(self) -> dict:
        return {**super().get_config(), "data_format": self.data_format}


class Reshape(Layer):
    """Reshapes each sample to `target_shape` (one entry may be -1: inferred).

    Args:
        target_shape: the per-sample shape, batch axis excluded.

    Example:
        >>> pynn.layers.Reshape((7, 7, 16)).compute_output_shape((None, 784))
        (None, 7, 7, 16)
    """

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        target = tuple(target_shape) if not isinstance(target_shape, int) else (target_shape,)
        if (not target or len(target) > 7 or target.count(-1) > 1 or any(
                isinstance(d, bool) or not isinstance(d, int) or (d < 1 and d != -1)
                for d in target)):
            raise ValueError(f"Reshape '{self.name}': target_shape must be 1 to 7 positive ints "
                             f"(one may be -1), got {target_shape!r}")
        self.target_shape = target

    def _resolve(self, input_shape) -> tuple:
        rest = input_shape[1:]
        if not _known(rest):
            return self.target_shape
        total, known = math.prod(rest), math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape:
            if total % known:
                raise ValueError(f"Reshape '{self.name}': cannot reshape {shape_str(input_shape)}"
                                 f" ({total} values a sample) to {self.target_shape}")
            return tuple(total // known if d == -1 else d for d in self.target_shape)
        if known != total:
            raise ValueError(f"Reshape '{self.name}': cannot reshape {shape_str(input_shape)} "
                             f"({total} values a sample) to {self.target_shape} ({known})")
        return self.target_shape

    def build(self, input_shape) -> None:
        self._resolve(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self._resolve(input_shape)

    def lower(self, core, node: int) -> int:
        shape = self._resolve((None,) + tuple(core.node_shape(node)))
        node, _ = core.add_node("reshape", (node,), (), (len(shape),) + shape)
        return node

    def get_config(self) -> dict:
        return {**super().get_config(), "target_shape": self.target_shape}


class ZeroPadding2D(Layer):
    """Pads (batch, height, width, channels) images with zeros.

    Args:
        padding: an int (all sides), (rows, cols) (symmetric), or ((top, bottom), (left, right)).
        data_format: 'channels_last' (None means the same).

    Example:
        >>> pynn.layers.ZeroPadding2D(1).compute_output_shape((None, 28, 28, 1))
        (None, 30, 30, 1)
    """

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        who = f"ZeroPadding2D '{self.name}'"
        self.data_format = normalize_data_format(data_format, who)
        self.padding = self._normalize(padding, who)

    @staticmethod
    def _normalize(padding, who: str) -> tuple:
        def ok(v):
            return isinstance(v, int) and not isinstance(v, bool) and v >= 0
        if ok(padding):
            return ((padding, padding), (padding, padding))
        try:
            a, b = padding
            if ok(a) and ok(b):
                return ((a, a), (b, b))
            (t, bo), (le, r) = a, b
            if all(ok(v) for v in (t, bo, le, r)):
                return ((t, bo), (le, r))
        except (TypeError, ValueError):
            pass
        raise ValueError(f"{who}: padding must be an int, (rows, cols) or ((top, bottom), "
                         f"(left, right)) of non-negative ints, got {padding!r}")

    def build(self, input_shape) -> None:
        check_image(input_shape, 2, f"ZeroPadding2D '{self.name}'")
        self.built = True

    def compute_output_shape(self, input_shape):
        (t, b), (le, r) = self.padding
        h, w = input_shape[1:3]
        return (input_shape[0], None if h is None else h + t + b,
                None if w is None else w + le + r, input_shape[3])

    def lower(self, core, node: int) -> int:
        (t, b), (le, r) = self.padding
        node, _ = core.add_node("zero_pad2d", (node,), (), (t, b, le, r))
        return node

    def get_config(self) -> dict:
        return {**super().get_config(), "padding": self.padding, "data_format": self.data_format}


# -- arguments and checks shared by the layers below ----------------------------------------------
def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _data_format(data_format, who: str) -> str:
    """Keras's data_format, in any case: convolutional.normalize_data_format's answer."""
    value = data_format.lower() if isinstance(data_format, str) else data_format
    return normalize_data_format(value, who, channels_first=True)


def _int_tuple(value, n: int, name: str, who: str, allow_zero: bool = False) -> tuple:
    """Keras's standardize_tuple: an int (for all n) or n ints, each > 0 (>= 0 with
    allow_zero)."""
    values = (value,) * n if _is_int(value) else value
    try:
        values = tuple(values)
    except TypeError:
        values = ()
    low = 0 if allow_zero else 1
    if len(values) != n or not all(_is_int(v) and v >= low for v in values):
        raise ValueError(f"{who}: {name} must be an int or a tuple of {n} ints, each "
                         f"{'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return tuple(int(v) for v in values)


def _int_pairs(value, n: int, name: str, who: str) -> tuple:
    """n (before, after) pairs of ints >= 0 from an int (everywhere), n ints (symmetric) or n
    pairs, as Keras's Cropping2D/3D and ZeroPadding3D read them."""
    if _is_int(value):
        if value < 0:
            raise ValueError(f"{who}: {name} cannot be negative, got {value!r}")
        return ((int(value),) * 2,) * n
    if not hasattr(value, "__len__") or len(value) != n:
        raise ValueError(f"{who}: {name} must be an int, a tuple of {n} ints or a tuple of {n} "
                         f"(before, after) pairs of ints, got {value!r}")
    return tuple(_int_tuple(v, 2, f"entry {i} of {name}", who, allow_zero=True)
                 for i, v in enumerate(value))


def _check_rank(input_shape, rank: int, who: str, what: str) -> None:
    if len(input_shape) != rank:
        raise ValueError(f"{who}: expected an input of rank {rank} {what}, got shape "
                         f"{shape_str(input_shape)}")


def _spatial_axes(data_format: str, n: int) -> tuple:
    """The axes (batch axis 0) of n spatial dims: after the batch, or after the channels."""
    first = 2 if data_format == "channels_first" else 1
    return tuple(range(first, first + n))


def _scaled(d, k: int):
    return None if d is None else d * k


# -- core shape ops on any per-sample axis (reshape views of rank 3) ------------------------------
def _reshape(core, node: int, shape) -> int:
    """`node` with per-sample shape `shape` (the node itself when it has that shape)."""
    shape = tuple(int(d) for d in shape)
    if tuple(core.node_shape(node)) == shape:
        return node
    node, _ = core.add_node("reshape", (node,), (), (len(shape),) + shape)
    return node


def _concat(core, nodes: list, axis: int) -> int:
    if len(nodes) == 1:
        return nodes[0]
    node, _ = core.add_node("concatenate", tuple(nodes), (), (axis,))
    return node


def _tile(core, node: int, times: int, axis: int) -> int:
    """`times` copies of `node` side by side along per-sample `axis`. The core's concatenate
    joins at most 4 inputs: blocks of 4**k copies, as many as the base-4 digits of `times` say."""
    parts, block = [], node
    while times:
        times, digit = divmod(times, 4)
        parts += [block] * digit
        if times:
            block = _concat(core, [block] * 4, axis)
    while len(parts) > 1:
        parts = [_concat(core, parts[i:i + 4], axis) for i in range(0, len(parts), 4)]
    return parts[0]


def _repeat_axes(core, node: int, repeats) -> int:
    """Each value repeated repeats[k] times along per-sample axis k (NumPy's repeat, axis by
    axis): x viewed as (before, 1, after) around the axis, `repeats[k]` copies joined on the 1."""
    shape = list(core.node_shape(node))
    for k, r in enumerate(repeats):
        if r == 1:
            continue
        node = _reshape(core, node, (math.prod(shape[:k + 1]), 1, math.prod(shape[k + 1:])))
        node = _tile(core, node, r, 1)
        shape[k] *= r
    return _reshape(core, node, shape)


def _pad_axes(core, node: int, pads) -> int:
    """Zeros around the values of each per-sample axis k: pads[k] = (before, after). Each padded
    axis is the width of a zero_pad2d on the view (before, axis, after); the first axis and the
    next share one as (height, width, rest)."""
    shape = list(core.node_shape(node))
    k = 0
    while k < len(shape):
        before, after = pads[k]
        if k == 0 and len(shape) > 1:
            left, right = pads[1]
            if before or after or left or right:
                node = _reshape(core, node, (shape[0], shape[1], math.prod(shape[2:])))
                node, _ = core.add_node("zero_pad2d", (node,), (), (before, after, left, right))
                shape[0] += before + after
                shape[1] += left + right
            k = 2
            continue
        if before or after:
            node = _reshape(core, node, (math.prod(shape[:k]), shape[k], math.prod(shape[k + 1:])))
            node, _ = core.add_node("zero_pad2d", (node,), (), (0, 0, before, after))
            shape[k] += before + after
        k += 1
    return _reshape(core, node, shape)


# -- the layers -----------------------------------------------------------------------------------
class Identity(Layer):
    """Returns its input unchanged: a placeholder where no operation is to be performed.

    Example:
        >>> pynn.layers.Identity().compute_output_shape((None, 3, 4))
        (None, 3, 4)
    """

    supports_masking = True  # passes its input's mask on, as Keras's

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def lower(self, core, node: int) -> int:
        return node


class RepeatVector(Layer):
    """Repeats a (batch, features) input n times: (batch, n, features).

    Args:
        n: how many times, a positive int.

    Example:
        >>> pynn.layers.RepeatVector(3).compute_output_shape((None, 32))
        (None, 3, 32)
    """

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if not _is_int(n):
            raise TypeError(f"RepeatVector '{self.name}': n must be an int, got "
                            f"{type(n).__name__}")
        if n <= 0:
            raise ValueError(f"RepeatVector '{self.name}': n must be a positive int, got {n}")
        self.n = int(n)

    def _check(self, input_shape) -> None:
        _check_rank(input_shape, 2, f"RepeatVector '{self.name}'", "(batch, features)")

    def build(self, input_shape) -> None:
        self._check(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        return (input_shape[0], self.n, input_shape[1])

    def lower(self, core, node: int) -> int:
        self._check((None,) + tuple(core.node_shape(node)))
        return _tile(core, _reshape(core, node, (1,) + tuple(core.node_shape(node))), self.n, 0)

    def get_config(self) -> dict:
        return {**super().get_config(), "n": self.n}


class Permute(Layer):
    """Permutes the axes of each sample: dims lists, from 1, the input axis each output axis
    takes (the batch axis stays first).

    Args:
        dims: a permutation of 1, 2, ..., rank - 1 (the input's rank, batch axis included).

    Example:
        >>> pynn.layers.Permute((2, 1)).compute_output_shape((None, 10, 64))
        (None, 64, 10)
    """

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        self.dims = tuple(dims)
        if sorted(self.dims) != list(range(1, len(self.dims) + 1)):
            raise ValueError(f"Permute '{self.name}': dims must be a permutation of 1, ..., "
                             f"{len(self.dims)} (consecutive, from 1), got {dims!r}")

    def _check(self, input_shape) -> None:
        _check_rank(input_shape, len(self.dims) + 1, f"Permute '{self.name}'",
                    f"(the batch, then the {len(self.dims)} axes that dims={self.dims} orders)")

    def build(self, input_shape) -> None:
        self._check(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        return (input_shape[0],) + tuple(input_shape[d] for d in self.dims)

    def call(self, inputs):
        from .. import ops
        self._check(tuple(inputs.shape))
        return ops.transpose(inputs, (0,) + self.dims)

    def get_config(self) -> dict:
        return {**super().get_config(), "dims": self.dims}


class UpSampling1D(Layer):
    """Repeats each step of a (batch, steps, features) input `size` times along the steps.

    Args:
        size: the upsampling factor, a positive int.

    Example:
        >>> pynn.layers.UpSampling1D(2).compute_output_shape((None, 10, 3))
        (None, 20, 3)
    """

    def __init__(self, size=2, **kwargs):
        super().__init__(**kwargs)
        if not _is_int(size):
            raise TypeError(f"UpSampling1D '{self.name}': size must be an int, got "
                            f"{type(size).__name__}")
        if size <= 0:
            raise ValueError(f"UpSampling1D '{self.name}': size must be a positive int, got "
                             f"{size}")
        self.size = int(size)

    def _check(self, input_shape) -> None:
        _check_rank(input_shape, 3, f"UpSampling1D '{self.name}'", "(batch, steps, features)")

    def build(self, input_shape) -> None:
        self._check(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        return (input_shape[0], _scaled(input_shape[1], self.size), input_shape[2])

    def lower(self, core, node: int) -> int:
        self._check((None,) + tuple(core.node_shape(node)))
        return _repeat_axes(core, node, (self.size, 1))

    def get_config(self) -> dict:
        return {**super().get_config(), "size": self.size}


class UpSampling2D(Layer):
    """Upsamples images by (rows, cols) factors: "nearest" repeats each pixel, "bilinear"
    interpolates as Keras 3 resizes images (half-pixel centers, edges held: PyTorch's
    `interpolate(mode="bilinear", align_corners=False)`).

    Args:
        size: an int (both factors) or (rows, cols), positive ints.
        data_format: 'channels_last' (batch, height, width, channels; None means it) or
            'channels_first' (batch, channels, height, width).
        interpolation: "nearest" or "bilinear" (Keras's "bicubic", "lanczos3" and "lanczos5"
            raise NotImplementedError).

    Example:
        >>> pynn.layers.UpSampling2D((2, 3)).compute_output_shape((None, 8, 8, 16))
        (None, 16, 24, 16)
    """

    _INTERPOLATIONS = ("nearest", "bilinear")
    _KERAS_ONLY = ("bicubic", "lanczos3", "lanczos5")

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        who = f"UpSampling2D '{self.name}'"
        self.data_format = _data_format(data_format, who)
        self.size = _int_tuple(size, 2, "size", who)
        method = interpolation.lower() if isinstance(interpolation, str) else interpolation
        if method in self._KERAS_ONLY:
            raise NotImplementedError(f"{who}: interpolation={interpolation!r} is not supported "
                                      "yet; use 'nearest' or 'bilinear'")
        if method not in self._INTERPOLATIONS:
            raise ValueError(f"{who}: interpolation must be one of "
                             f"{self._INTERPOLATIONS + self._KERAS_ONLY}, got {interpolation!r}")
        self.interpolation = method

    def _check(self, input_shape) -> None:
        _check_rank(input_shape, 4, f"UpSampling2D '{self.name}'",
                    "(batch, height, width, channels)" if self.data_format == "channels_last"
                    else "(batch, channels, height, width)")

    def build(self, input_shape) -> None:
        self._check(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        out = list(input_shape)
        for axis, k in zip(_spatial_axes(self.data_format, 2), self.size):
            out[axis] = _scaled(out[axis], k)
        return tuple(out)

    def call(self, inputs):
        from .. import ops
        shape = tuple(inputs.shape)
        self._check(shape)
        x = inputs
        for axis, k in zip(_spatial_axes(self.data_format, 2), self.size):
            if k == 1:
                continue
            n = shape[axis]
            if self.interpolation == "nearest":
                x = ops.take(x, np.repeat(np.arange(n), k), axis=axis)
                continue
            # output i samples the input at (i + 0.5) / k - 0.5, between lo and lo + 1 (held
            # at the edges): x[lo] + (x[lo + 1] - x[lo]) * frac, frac along the axis
            src = (np.arange(n * k) + 0.5) / k - 0.5
            lo = np.floor(src)
            frac = (src - lo).astype(np.float32).reshape((-1,) + (1,) * (len(shape) - 1 - axis))
            a = ops.take(x, np.clip(lo, 0, n - 1).astype(np.int32), axis=axis)
            b = ops.take(x, np.clip(lo + 1, 0, n - 1).astype(np.int32), axis=axis)
            x = a + (b - a) * frac
        return x

    def get_config(self) -> dict:
        return {**super().get_config(), "size": self.size, "data_format": self.data_format,
                "interpolation": self.interpolation}


class UpSampling3D(Layer):
    """Repeats the values of volumes (batch, dim1, dim2, dim3, channels) size[k] times along
    spatial axis k.

    Args:
        size: an int (all three factors) or (dim1, dim2, dim3), positive ints.
        data_format: 'channels_last' (None means it) or 'channels_first' (batch, channels,
            dim1, dim2, dim3).

    Example:
        >>> pynn.layers.UpSampling3D(2).compute_output_shape((None, 4, 4, 4, 8))
        (None, 8, 8, 8, 8)
    """

    def __init__(self, size=(2, 2, 2), data_format=None, **kwargs):
        super().__init__(**kwargs)
        who = f"UpSampling3D '{self.name}'"
        self.data_format = _data_format(data_format, who)
        self.size = _int_tuple(size, 3, "size", who)

    def _check(self, input_shape) -> None:
        _check_rank(input_shape, 5, f"UpSampling3D '{self.name}'",
                    "(batch, dim1, dim2, dim3, channels)" if self.data_format == "channels_last"
                    else "(batch, channels, dim1, dim2, dim3)")

    def build(self, input_shape) -> None:
        self._check(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        out = list(input_shape)
        for axis, k in zip(_spatial_axes(self.data_format, 3), self.size):
            out[axis] = _scaled(out[axis], k)
        return tuple(out)

    def lower(self, core, node: int) -> int:
        self._check((None,) + tuple(core.node_shape(node)))
        repeats = [1] * 4
        for axis, k in zip(_spatial_axes(self.data_format, 3), self.size):
            repeats[axis - 1] = k
        return _repeat_axes(core, node, repeats)

    def get_config(self) -> dict:
        return {**super().get_config(), "size": self.size, "data_format": self.data_format}


def _cropped(input_shape, axes, cropping, who: str) -> tuple:
    """The input shape with each of `axes` shortened by its (before, after) cropping; a crop
    that leaves no value raises ValueError, as in Keras."""
    out = list(input_shape)
    for axis, (a, b) in zip(axes, cropping):
        if out[axis] is not None:
            if a + b >= out[axis]:
                raise ValueError(f"{who}: cropping {cropping} must leave values on each "
                                 f"axis: it is too large for input shape "
                                 f"{shape_str(input_shape)}")
            out[axis] -= a + b
    return tuple(out)


class Cropping1D(Layer):
    """Crops (batch, steps, features) sequences along the steps.

    Args:
        cropping: an int (both ends) or (start, end): how many steps to remove at each end.

    Example:
        >>> pynn.layers.Cropping1D((1, 2)).compute_output_shape((None, 10, 3))
        (None, 7, 3)
    """

    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self.cropping = _int_tuple(cropping, 2, "cropping", f"Cropping1D '{self.name}'",
                                   allow_zero=True)

    def build(self, input_shape) -> None:
        self.compute_output_shape(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        who = f"Cropping1D '{self.name}'"
        _check_rank(input_shape, 3, who, "(batch, steps, features)")
        return _cropped(input_shape, (1,), (self.cropping,), who)

    def lower(self, core, node: int) -> int:
        steps, features = self.compute_output_shape((None,) + tuple(core.node_shape(node)))[1:]
        if self.cropping == (0, 0):
            return node
        # the kept steps are one run of values in each sample
        node, _ = core.add_node("slice", (node,), (),
                                (self.cropping[0] * features, 2, steps, features))
        return node

    def get_config(self) -> dict:
        return {**super().get_config(), "cropping": self.cropping}


class _CroppingND(Layer):
    """Cropping2D and Cropping3D: strided slices of the spatial axes (written with call())."""

    _rank = 2

    def __init__(self, cropping, data_format=None, **kwargs):
        super().__init__(**kwargs)
        who = f"{type(self).__name__} '{self.name}'"
        self.data_format = _data_format(data_format, who)
        self.cropping = _int_pairs(cropping, self._rank, "cropping", who)

    def build(self, input_shape) -> None:
        self.compute_output_shape(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        who = f"{type(self).__name__} '{self.name}'"
        spatial = "height, width" if self._rank == 2 else "dim1, dim2, dim3"
        _check_rank(input_shape, self._rank + 2, who,
                    f"(batch, {spatial}, channels)" if self.data_format == "channels_last"
                    else f"(batch, channels, {spatial})")
        return _cropped(input_shape, _spatial_axes(self.data_format, self._rank),
                        self.cropping, who)

    def call(self, inputs):
        self.compute_output_shape(tuple(inputs.shape))
        key = [slice(None)] * (self._rank + 2)
        for axis, (a, b) in zip(_spatial_axes(self.data_format, self._rank), self.cropping):
            key[axis] = slice(a, -b if b else None)
        return inputs[tuple(key)]

    def get_config(self) -> dict:
        return {**super().get_config(), "cropping": self.cropping, "data_format": self.data_format}


class Cropping2D(_CroppingND):
    """Crops images along height and width.

    Args:
        cropping: an int (every side), (rows, cols) (symmetric) or ((top, bottom),
            (left, right)).
        data_format: 'channels_last' (batch, height, width, channels; None means it) or
            'channels_first' (batch, channels, height, width).

    Example:
        >>> pynn.layers.Cropping2D(((2, 2), (4, 4))).compute_output_shape((None, 28, 28, 3))
        (None, 24, 20, 3)
    """

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(cropping, data_format, **kwargs)


class Cropping3D(_CroppingND):
    """Crops volumes (batch, dim1, dim2, dim3, channels) along their three spatial axes.

    Args:
        cropping: an int (every side), three ints (symmetric) or three (before, after) pairs.
        data_format: 'channels_last' (None means it) or 'channels_first' (batch, channels,
            dim1, dim2, dim3).

    Example:
        >>> pynn.layers.Cropping3D(1).compute_output_shape((None, 8, 8, 8, 2))
        (None, 6, 6, 6, 2)
    """

    _rank = 3

    def __init__(self, cropping=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(cropping, data_format, **kwargs)


class ZeroPadding1D(Layer):
    """Pads (batch, steps, features) sequences with zero steps at both ends.

    Args:
        padding: an int (both ends) or (start, end).
        data_format: 'channels_last' (batch, steps, features; None means it) or
            'channels_first' (batch, features, steps).

    Example:
        >>> pynn.layers.ZeroPadding1D(2).compute_output_shape((None, 10, 3))
        (None, 14, 3)
    """

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(**kwargs)
        who = f"ZeroPadding1D '{self.name}'"
        self.data_format = _data_format(data_format, who)
        self.padding = _int_tuple(padding, 2, "padding", who, allow_zero=True)

    def build(self, input_shape) -> None:
        self.compute_output_shape(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        _check_rank(input_shape, 3, f"ZeroPadding1D '{self.name}'",
                    "(batch, steps, features)" if self.data_format == "channels_last"
                    else "(batch, features, steps)")
        out = list(input_shape)
        axis = _spatial_axes(self.data_format, 1)[0]
        if out[axis] is not None:
            out[axis] += sum(self.padding)
        return tuple(out)

    def lower(self, core, node: int) -> int:
        self.compute_output_shape((None,) + tuple(core.node_shape(node)))
        pads = [(0, 0), (0, 0)]
        pads[_spatial_axes(self.data_format, 1)[0] - 1] = self.padding
        return _pad_axes(core, node, pads)

    def get_config(self) -> dict:
        return {**super().get_config(), "padding": self.padding, "data_format": self.data_format}


class ZeroPadding3D(Layer):
    """Pads volumes (batch, dim1, dim2, dim3, channels) with zeros along their spatial axes.

    Args:
        padding: an int (every side), three ints (symmetric) or three (before, after) pairs.
        data_format: 'channels_last' (None means it) or 'channels_first' (batch, channels,
            dim1, dim2, dim3).

    Example:
        >>> pynn.layers.ZeroPadding3D(1).compute_output_shape((None, 4, 4, 4, 2))
        (None, 6, 6, 6, 2)
    """

    def __init__(self, padding=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        who = f"ZeroPadding3D '{self.name}'"
        self.data_format = _data_format(data_format, who)
        self.padding = _int_pairs(padding, 3, "padding", who)

    def build(self, input_shape) -> None:
        self.compute_output_shape(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        _check_rank(input_shape, 5, f"ZeroPadding3D '{self.name}'",
                    "(batch, dim1, dim2, dim3, channels)" if self.data_format == "channels_last"
                    else "(batch, channels, dim1, dim2, dim3)")
        out = list(input_shape)
        for axis, (a, b) in zip(_spatial_axes(self.data_format, 3), self.padding):
            if out[axis] is not None:
                out[axis] += a + b
        return tuple(out)

    def lower(self, core, node: int) -> int:
        self.compute_output_shape((None,) + tuple(core.node_shape(node)))
        pads = [(0, 0)] * 4
        for axis, pad in zip(_spatial_axes(self.data_format, 3), self.padding):
            pads[axis - 1] = pad
        return _pad_axes(core, node, pads)

    def get_config(self) -> dict:
        return {**super().get_config(), "padding": self.padding, "data_format": self.data_format}


__all__ = ["Cropping1D", "Cropping2D", "Cropping3D", "Flatten", "Identity", "Permute",
           "RepeatVector", "Reshape", "UpSampling1D", "UpSampling2D", "UpSampling3D",
           "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D"]
