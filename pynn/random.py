"""Random numbers with Keras 3's `keras.random` names, arguments and seeds.

On data (a shape of ints) each function draws now, in NumPy, and returns a `pynn.Tensor`
(float32; int32 for `randint` and `categorical`). The seed decides the stream, as in Keras:

  - an int: the same numbers at every call (Keras's NumPy backend draws the same ones:
    `np.random.default_rng([seed, 0])`);
  - a `SeedGenerator`: new numbers at every call, the same sequence from the same initial seed;
  - None: pynn's global generator (`pynn.utils.set_random_seed` seeds it).

In a model (a layer's call() being traced, or on a `pynn.Input`), `normal` and `uniform` record a
core "random" node instead, which draws new noise at every step: a shape whose first entry is
None (`ops.shape(x)[0]`) takes the batch of the tensor that `ops.shape` was given. There the
noise follows the model's own random stream (the one dropout uses), whatever `seed` says.
`dropout` records the same node. The other functions run on data only.

Example:
    >>> gen = pynn.random.SeedGenerator(seed=1337)
    >>> eps = pynn.random.normal((2, 3), seed=gen)
"""

import math
import weakref

import numpy as np

from .layers.input_layer import KerasTensor
from .ops import _base
from .tensor import Tensor
from .utils import random as _global

_FLOAT_DTYPES = ("float32", "float16", "bfloat16", "float64", "float")
_INT_DTYPES = ("int32", "int64", "int16", "int8", "uint8", "uint16", "uint32", "int")


class SeedGenerator:
    """A seed that changes at every use: pass it as `seed=` to draw new numbers at each call,
    deterministically from its initial seed.

    Its state is `[seed, counter]`, as Keras's; each draw uses the state and then advances the
    counter.

    Args:
        seed: the initial seed (an int); None picks one at random.
        name: a name, for Keras compatibility.

    Example:
        >>> gen = pynn.random.SeedGenerator(seed=42)
        >>> a, b = pynn.random.normal((2,), seed=gen), pynn.random.normal((2,), seed=gen)
    """

    _count = 0

    def __init__(self, seed: int | None = None, name: str | None = None, **kwargs):
        kwargs.pop("backend", None)
        if kwargs:
            raise ValueError(f"SeedGenerator: unrecognized keyword arguments: {kwargs}")
        if name is None:
            SeedGenerator._count += 1
            name = "seed_generator" if SeedGenerator._count == 1 else \
                f"seed_generator_{SeedGenerator._count - 1}"
        self.name = name
        self._initial_seed = seed
        if seed is None:
            seed = int(_global.generator().integers(1, 10**9))
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"SeedGenerator: seed must be an integer, got {seed!r}")
        self.state = np.array([int(seed), 0], dtype=np.int64)

    def next(self, ordered: bool = True) -> np.ndarray:
        """The current state (a copy), then advances it."""
        value = self.state.copy()
        if ordered:
            self.state[1] += 1
        else:  # Keras's sequence of near-unique numbers below 1M
            self.state[:] = (self.state + 1) * 5387 % 933199
        return value

    def get_config(self) -> dict:
        return {"seed": self._initial_seed}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        return f"<SeedGenerator '{self.name}' state={self.state.tolist()}>"


def _rng(seed, fn: str) -> np.random.Generator:
    """The NumPy generator a draw with `seed` uses."""
    if isinstance(seed, SeedGenerator):
        return np.random.default_rng([int(v) % 2**64 for v in seed.next()])
    if seed is None:
        return _global.generator()
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return np.random.default_rng([int(seed) % 2**64, 0])
    raise ValueError(f"{fn}: seed must be an int, a pynn.random.SeedGenerator or None, got "
                     f"{seed!r} (of type {type(seed).__name__})")


def _shape(shape, fn: str, allow_batch: bool = False) -> tuple:
    """shape as a tuple of ints (its first entry may be None when allow_batch)."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"{fn}: shape must be a tuple of ints, got {shape!r}") from None
    out = []
    for i, d in enumerate(shape):
        if d is None:
            if i == 0 and allow_batch:
                out.append(None)
                continue
            what = "only its first entry (the batch)" if allow_batch else "no entry"
            raise ValueError(f"{fn}: shape {shape} has None at position {i}; {what} may be "
                             "None")
        if isinstance(d, KerasTensor):
            raise TypeError(f"{fn}: shape {shape} holds a symbolic tensor: take the sizes "
                            "from pynn.ops.shape(x)")
        try:
            d = int(d)
        except (TypeError, ValueError):
            raise TypeError(f"{fn}: shape must be a tuple of ints, got {shape!r}") from None
        if d < 0:
            raise ValueError(f"{fn}: shape {shape} has a negative size")
        out.append(d)
    return tuple(out)


def _float_dtype(dtype, fn: str) -> None:
    name = dtype if isinstance(dtype, str) or dtype is None else np.dtype(dtype).name
    if name is not None and name not in _FLOAT_DTYPES:
        raise ValueError(f"{fn}: requires a floating point dtype, got dtype={dtype}")


def _int_dtype(dtype, fn: str) -> None:
    name = dtype if isinstance(dtype, str) or dtype is None else np.dtype(dtype).name
    if name is not None and name not in _INT_DTYPES:
        raise ValueError(f"{fn}: requires an integer dtype, got dtype={dtype}")


def _tracing() -> bool:
    from .layers import tracing
    return tracing.tracing()


def _f32(a) -> Tensor:
    return Tensor(np.array(a, dtype=np.float32))


def _i32(a) -> Tensor:
    return Tensor(np.array(a, dtype=np.int32))


# -- the reference tensor of a symbolic batch -----------------------------------------------------
# `normal((ops.shape(x)[0], 4))` sees only None where the batch goes: its noise takes the batch of
# the last batched symbolic tensor that ops.shape was given, in the same trace (or outside any).
_shape_source = None  # (weak reference to the tensor, the trace it was noted in)


def _trace_token():
    """The running trace's own record (held, so its identity stays unique), or None."""
    from .layers import tracing
    stack = tracing._stack()
    return stack[-1][1] if stack else None


def _note_shape_source(x) -> None:
    """Called by pynn.ops.shape on a symbolic tensor: noise of shape (None, ...) takes its batch."""
    global _shape_source
    if getattr(x, "_unbatched", False):
        return
    try:
        _shape_source = (weakref.ref(x), _trace_token())
    except TypeError:
        _shape_source = None


def _reference(fn: str, shape: tuple) -> KerasTensor:
    ref = None
    if _shape_source is not None and _shape_source[1] is _trace_token():
        ref = _shape_source[0]()
    if ref is None or ref._unbatched:
        raise ValueError(
            f"{fn}: shape {shape} has None for the batch size, and pynn cannot tell which "
            "tensor's batch it is: take the batch size from pynn.ops.shape(x)[0] of a tensor "
            "in this call (the noise then has x's batch), or pass a concrete batch size")
    return ref


def _draw_node(kind: int, shape: tuple, a: float, b: float, fn: str, ref=None):
    """A core "random" node (kind 0: normal(a, b); 1: uniform[a, b)): batched like `ref` (or
    like the tensor behind a None batch in `shape`), else unbatched of the whole shape."""
    if ref is None and shape and shape[0] is None:
        ref = _reference(fn, shape)
    own = tuple(shape[1:]) if ref is not None else tuple(shape)
    iattr = (kind, 0, len(own)) + own
    return _base.record("random", [ref] if ref is not None else [], iattr, (a, b), name=fn)


# -- the distributions ----------------------------------------------------------------------------
def normal(shape, mean: float = 0.0, stddev: float = 1.0, dtype=None, seed=None):
    """Samples of a normal (Gaussian) distribution.

    Args:
        shape: the shape of the result; its first entry may be None in a model (the batch).
        mean, stddev: the distribution's mean and standard deviation.
        dtype: a float dtype (pynn computes in float32).
        seed: an int (the same values at every call), a SeedGenerator (new values at every
            call) or None (pynn's global generator).

    Returns:
        A float32 Tensor of `shape`; a symbolic tensor in a model.

    Example:
        >>> pynn.random.normal((2, 3), seed=1).shape
        (2, 3)
    """
    _float_dtype(dtype, "normal")
    shape = _shape(shape, "normal", allow_batch=True)
    if (shape and shape[0] is None) or _tracing():
        return _draw_node(0, shape, float(mean), float(stddev), "normal")
    return _f32(_rng(seed, "normal").normal(loc=mean, scale=stddev, size=shape))


def uniform(shape, minval: float = 0.0, maxval: float = 1.0, dtype=None, seed=None):
    """Samples of a uniform distribution on [minval, maxval).

    Args:
        shape: the shape of the result; its first entry may be None in a model (the batch).
        minval, maxval: the range (minval included, maxval excluded).
        dtype: a float dtype (pynn computes in float32).
        seed: an int, a SeedGenerator or None, as for `normal`.

    Returns:
        A float32 Tensor of `shape`; a symbolic tensor in a model.

    Example:
        >>> pynn.random.uniform((4,), minval=-1.0, maxval=1.0, seed=3).shape
        (4,)
    """
    _float_dtype(dtype, "uniform")
    shape = _shape(shape, "uniform", allow_batch=True)
    if (shape and shape[0] is None) or _tracing():
        return _draw_node(1, shape, float(minval), float(maxval), "uniform")
    return _f32(_rng(seed, "uniform").uniform(low=minval, high=maxval, size=shape))


def _data_only(fn: str, *values) -> None:
    if _tracing() or _base.is_symbolic(*values):
        raise NotImplementedError(
            f"{fn}: draws on data only; in a model's graph pynn draws normal, uniform and "
            "dropout noise (use them, or call this outside the model)")


def truncated_normal(shape, mean: float = 0.0, stddev: float = 1.0, dtype=None, seed=None):
    """Samples of a normal distribution, redrawn where more than two standard deviations from
    the mean (Keras's truncation).

    Args:
        shape: the shape of the result.
        mean, stddev: the mean and standard deviation before truncation.
        dtype: a float dtype.
        seed: an int, a SeedGenerator or None, as for `normal`.

    Returns:
        A float32 Tensor of `shape`, within [mean - 2 stddev, mean + 2 stddev].

    Example:
        >>> float(pynn.ops.max(pynn.ops.abs(pynn.random.truncated_normal((100,), seed=0)))) <= 2
        True
    """
    _float_dtype(dtype, "truncated_normal")
    _data_only("truncated_normal")
    shape = _shape(shape, "truncated_normal")
    rng = _rng(seed, "truncated_normal")
    size = math.prod(shape)
    lo, hi = mean - 2 * stddev, mean + 2 * stddev
    out = np.empty(0)
    while out.shape[0] < size:
        batch = rng.normal(loc=mean, scale=stddev, size=size)
        out = np.append(out, batch[(batch >= lo) & (batch <= hi)])
    return _f32(out[:size].reshape(shape))


def randint(shape, minval: int, maxval: int, dtype="int32", seed=None):
    """Integers drawn uniformly from [minval, maxval).

    Args:
        shape: the shape of the result.
        minval, maxval: the range (minval included, maxval excluded).
        dtype: an integer dtype (pynn's integers are int32).
        seed: an int, a SeedGenerator or None, as for `normal`.

    Returns:
        An int32 Tensor of `shape`.

    Example:
        >>> pynn.random.randint((3,), 0, 10, seed=0).dtype
        dtype('int32')
    """
    _int_dtype(dtype, "randint")
    _data_only("randint")
    shape = _shape(shape, "randint")
    lo, hi = int(minval), int(maxval)
    if not -2**31 <= lo < hi <= 2**31:
        raise ValueError(f"randint: needs minval < maxval within int32, got {minval}, {maxval}")
    return _i32(_rng(seed, "randint").integers(lo, hi, size=shape, dtype=np.int64))


def categorical(logits, num_samples: int, dtype="int32", seed=None):
    """Class indices drawn from the categorical distribution of each row of `logits`.

    Args:
        logits: a 2-D tensor (batch_size, num_classes) of unnormalised log-probabilities.
        num_samples: the samples drawn for each row.
        dtype: an integer dtype (pynn's integers are int32).
        seed: an int, a SeedGenerator or None, as for `normal`.

    Returns:
        An int32 Tensor (batch_size, num_samples).

    Example:
        >>> pynn.random.categorical([[0.0, 0.0, 100.0]], 4, seed=0)
        pynn.Tensor([[2, 2, 2, 2]], dtype=int32)
    """
    _int_dtype(dtype, "categorical")
    _data_only("categorical", logits)
    z = np.asarray(_base.eager(logits), dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"categorical: logits must be a 2-D tensor (batch_size, num_classes), "
                         f"got shape {z.shape}")
    n = int(num_samples)
    batch, classes = z.shape
    if classes == 0 or n < 0:
        raise ValueError(f"categorical: needs at least one class and num_samples >= 0, got "
                         f"logits of shape {z.shape} and num_samples={num_samples}")
    p = np.exp(z - z.max(axis=1, keepdims=True))
    cdf = np.cumsum(p, axis=1)
    cdf /= cdf[:, -1:]
    u = _rng(seed, "categorical").random((batch, n))
    out = np.empty((batch, n), dtype=np.int32)
    for i in range(batch):  # the first class whose cumulative probability exceeds u
        out[i] = np.minimum(np.searchsorted(cdf[i], u[i], side="right"), classes - 1)
    return _i32(out)


def dropout(inputs, rate: float, noise_shape=None, seed=None):
    """inputs with each value set to 0 with probability `rate`, the others scaled by
    1 / (1 - rate) (always: a layer decides when to call it, e.g. only in training).

    On a Tensor that needs a gradient, the gradient passes through the kept values (the mask is
    a constant). In a model, the mask is drawn anew at every step.

    Args:
        inputs: the tensor.
        rate: the fraction dropped, in [0, 1].
        noise_shape: the shape of the mask, broadcast to inputs' shape (None entries take
            inputs' sizes); by default inputs' shape.
        seed: an int, a SeedGenerator or None, as for `normal`.

    Returns:
        A tensor of inputs' shape.

    Example:
        >>> y = pynn.random.dropout(np.ones((2, 4), np.float32), 0.5, seed=0)
    """
    rate = float(rate)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"dropout: rate must be in [0, 1], got {rate}")
    if _base.is_symbolic(inputs):
        return _dropout_node(_base.symbolic(inputs, False), rate, noise_shape)
    if rate == 0.0:
        return inputs
    x = _base.tensor(inputs)
    full = tuple(x.shape)
    if noise_shape is None:
        mshape = full
    else:
        noise_shape = tuple(noise_shape)
        if len(noise_shape) != len(full):
            raise ValueError(f"dropout: noise_shape {noise_shape} must have the rank of "
                             f"inputs' shape {full}")
        mshape = tuple(d if n is None else int(n) for n, d in zip(noise_shape, full))
    keep = 1.0 - rate
    if keep == 0.0:
        mask = np.zeros(full, np.float32)
    else:
        kept = _rng(seed, "dropout").uniform(size=mshape) < keep
        try:
            kept = np.broadcast_to(kept, full)
        except ValueError:
            raise ValueError(f"dropout: noise_shape {mshape} does not broadcast to inputs' "
                             f"shape {full}") from None
        mask = np.where(kept, np.float32(1.0 / keep), np.float32(0.0))
    from .ops import multiply
    return multiply(x, _f32(mask))


def _dropout_node(t: KerasTensor, rate: float, noise_shape):
    """dropout in a graph: a uniform node u, mask = sign(relu(u - rate)) / (1 - rate)."""
    if rate == 0.0:
        return t
    own = _base.sample_shape(t)
    if noise_shape is not None:
        noise_shape = tuple(noise_shape)
        if len(noise_shape) != len(t.shape):
            raise ValueError(f"dropout: noise_shape {noise_shape} must have the rank of "
                             f"inputs' shape {t.shape}")
        if not t._unbatched:
            if noise_shape[0] is not None:
                raise NotImplementedError("dropout: in a model, noise_shape's first entry (the "
                                          "batch) must be None")
            noise_shape = noise_shape[1:]
        own = tuple(d if n is None else int(n) for n, d in zip(noise_shape, own))
    if rate == 1.0:
        return _base.binary("multiply", t, 0.0)
    ref = None if t._unbatched else t
    u = _draw_node(1, (None,) + own if ref is not None else own, 0.0, 1.0, "dropout_noise",
                   ref=ref)
    kept = _base.unary("sign", _base.unary("relu", _base.binary("subtract", u, rate)))
    return _base.binary("multiply", t, _base.binary("multiply", kept, 1.0 / (1.0 - rate)))


def shuffle(x, axis: int = 0, seed=None):
    """x with its slices along `axis` in a random order (one permutation for all of them).

    Args:
        x: the tensor.
        axis: the axis along which to shuffle.
        seed: an int, a SeedGenerator or None, as for `normal`.

    Returns:
        A Tensor of x's shape and dtype (no gradient flows through it).

    Example:
        >>> sorted(np.asarray(pynn.random.shuffle(np.arange(4), seed=0)).tolist())
        [0, 1, 2, 3]
    """
    _data_only("shuffle", x)
    a = np.asarray(_base.eager(x))
    if a.ndim == 0:
        raise ValueError("shuffle: x must have at least one axis")
    if not -a.ndim <= axis < a.ndim:
        raise ValueError(f"shuffle: axis {axis} is out of bounds for a tensor of rank {a.ndim}")
    perm = _rng(seed, "shuffle").permutation(a.shape[axis])
    out = np.take(a, perm, axis=axis)
    return _i32(out) if out.dtype.kind in "iub" else _f32(out)


def gamma(shape, alpha, dtype=None, seed=None):
    """Samples of the Gamma distribution of shape `alpha` (scale 1).

    Example:
        >>> pynn.random.gamma((3,), alpha=2.0, seed=0).shape
        (3,)
    """
    _float_dtype(dtype, "gamma")
    _data_only("gamma")
    shape = _shape(shape, "gamma")
    return _f32(_rng(seed, "gamma").gamma(np.asarray(alpha, np.float64), scale=1.0, size=shape))


def binomial(shape, counts, probabilities, dtype=None, seed=None):
    """Samples of the Binomial distribution: successes in `counts` trials of probability
    `probabilities` (broadcast together), as floats.

    Example:
        >>> pynn.random.binomial((3,), counts=10, probabilities=0.5, seed=0).shape
        (3,)
    """
    _float_dtype(dtype, "binomial")
    _data_only("binomial")
    shape = _shape(shape, "binomial")
    n = np.asarray(_base.eager(counts))
    p = np.asarray(_base.eager(probabilities), np.float64)
    return _f32(_rng(seed, "binomial").binomial(n=n.astype(np.int64), p=p, size=shape))


def beta(shape, alpha, beta, dtype=None, seed=None):
    """Samples of the Beta(alpha, beta) distribution.

    Example:
        >>> pynn.random.beta((3,), alpha=2.0, beta=5.0, seed=0).shape
        (3,)
    """
    _float_dtype(dtype, "beta")
    _data_only("beta")
    shape = _shape(shape, "beta")
    a = np.asarray(_base.eager(alpha), np.float64)
    b = np.asarray(_base.eager(beta), np.float64)
    return _f32(_rng(seed, "beta").beta(a=a, b=b, size=shape))


__all__ = ["SeedGenerator", "beta", "binomial", "categorical", "dropout", "gamma", "normal",
           "randint", "shuffle", "truncated_normal", "uniform"]
