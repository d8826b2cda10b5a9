"""Weight initializers, with Keras 3's names, arguments and distributions.

Each is a callable `init(shape, dtype=None) -> np.ndarray` drawing from pynn's seeded generator
(`pynn.utils.set_random_seed`) unless given its own `seed`.
"""

import abc
import math

import numpy as np

from .utils.random import generator


def _fans(shape) -> tuple[float, float]:
    if len(shape) < 1:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    receptive = float(np.prod(shape[:-2])) if len(shape) > 2 else 1.0
    return shape[-2] * receptive, shape[-1] * receptive


def _seed(seed, who: str):
    """`seed` checked: None or a non-negative int (NumPy's SeedSequence takes nothing else)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                             or seed < 0):
        raise ValueError(f"{who}: seed must be None or a non-negative int, got {seed!r}")
    return seed


class Initializer(abc.ABC):
    """Base class: subclasses implement `__call__(shape, dtype=None)` and `get_config()`."""

    @abc.abstractmethod
    def __call__(self, shape, dtype=None) -> np.ndarray:
        """A new float32 array of `shape`."""

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


class Constant(Initializer):
    """Fills with `value`."""

    def __init__(self, value: float = 0.0):
        self.value = float(value)

    def __call__(self, shape, dtype=None):
        return np.full(tuple(shape), self.value, dtype=np.float32)

    def get_config(self):
        return {"value": self.value}


class Zeros(Constant):
    """Fills with zeros."""

    def __init__(self):
        super().__init__(0.0)

    def get_config(self):
        return {}


class Ones(Constant):
    """Fills with ones."""

    def __init__(self):
        super().__init__(1.0)

    def get_config(self):
        return {}


class RandomUniform(Initializer):
    """Uniform in [minval, maxval)."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None):
        self.minval, self.maxval, self.seed = minval, maxval, _seed(seed, type(self).__name__)

    def __call__(self, shape, dtype=None):
        g = generator(self.seed)
        return g.uniform(self.minval, self.maxval, size=tuple(shape)).astype(np.float32)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class RandomNormal(Initializer):
    """Normal with `mean` and `stddev`."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        self.mean, self.stddev, self.seed = mean, stddev, _seed(seed, type(self).__name__)

    def __call__(self, shape, dtype=None):
        g = generator(self.seed)
        return g.normal(self.mean, self.stddev, size=tuple(shape)).astype(np.float32)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


def _truncated_normal(g: np.random.Generator, stddev: float, shape) -> np.ndarray:
    """Normal(0, stddev) redrawn outside two standard deviations, as Keras's truncated normal."""
    out = g.normal(0.0, 1.0, size=tuple(shape))
    bad = np.abs(out) > 2.0
    while bad.any():
        out[bad] = g.normal(0.0, 1.0, size=int(bad.sum()))
        bad = np.abs(out) > 2.0
    return (out * stddev).astype(np.float32)


class TruncatedNormal(Initializer):
    """Normal with `mean` and `stddev`, redrawn beyond two standard deviations."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        self.mean, self.stddev, self.seed = mean, stddev, _seed(seed, type(self).__name__)

    def __call__(self, shape, dtype=None):
        return _truncated_normal(generator(self.seed), self.stddev, shape) + np.float32(self.mean)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class VarianceScaling(Initializer):
    """Keras's VarianceScaling: scale / fan (fan_in, fan_out or their mean), drawn from a
    truncated normal, an untruncated normal, or a uniform distribution."""

    def __init__(self, scale: float = 1.0, mode: str = "fan_in",
                 distribution: str = "truncated_normal", seed: int | None = None,
                 input_axes=None, output_axes=None):
        if scale <= 0:
            raise ValueError(f"VarianceScaling: scale must be positive, got {scale}")
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"VarianceScaling: unknown mode '{mode}'")
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError(f"VarianceScaling: unknown distribution '{distribution}'")
        self.scale, self.mode, self.distribution = scale, mode, distribution
        self.seed = _seed(seed, type(self).__name__)
        # Keras 3.15's: the kernel axes that count as the input's and the output's (an einsum
        # kernel's); None: the usual fans
        self.input_axes, self.output_axes = _axes(input_axes), _axes(output_axes)

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        fan_in, fan_out = _fans(shape)
        for axes in (self.input_axes, self.output_axes):
            if axes is not None and any(not -len(shape) <= a < len(shape) for a in axes):
                raise ValueError(f"{type(self).__name__}: axes {axes} are out of range for a "
                                 f"weight of shape {shape}")
        if self.input_axes is not None:
            fan_in = math.prod(shape[a] for a in self.input_axes)
        if self.output_axes is not None:
            fan_out = math.prod(shape[a] for a in self.output_axes)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        var = self.scale / max(1.0, fan)
        g = generator(self.seed)
        if self.distribution == "truncated_normal":
            # the standard deviation of a unit normal truncated to (-2, 2)
            return _truncated_normal(g, math.sqrt(var) / 0.87962566103423978, shape)
        if self.distribution == "untruncated_normal":
            return g.normal(0.0, math.sqrt(var), size=tuple(shape)).astype(np.float32)
        limit = math.sqrt(3.0 * var)
        return g.uniform(-limit, limit, size=tuple(shape)).astype(np.float32)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "seed": self.seed, "input_axes": self.input_axes,
                "output_axes": self.output_axes}


def _axes(axes):
    """None, or a list of ints (an int alone as a list of one)."""
    if axes is None:
        return None
    items = [axes] if isinstance(axes, int) else list(axes)
    if any(isinstance(a, bool) or not isinstance(a, int) for a in items):
        raise ValueError(f"initializer axes must be ints, got {axes!r}")
    return items


def _variance_scaling(name: str, scale: float, mode: str, distribution: str):
    class _VS(VarianceScaling):
        def __init__(self, seed: int | None = None, input_axes=None, output_axes=None):
            super().__init__(scale, mode, distribution, seed, input_axes, output_axes)

        def get_config(self):
            return {"seed": self.seed, "input_axes": self.input_axes,
                    "output_axes": self.output_axes}

    _VS.__name__ = _VS.__qualname__ = name
    _VS.__doc__ = f"VarianceScaling(scale={scale}, mode='{mode}', distribution='{distribution}')."
    return _VS


class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix, Keras's: QR of a standard normal matrix over
    (prod(shape[:-1]), shape[-1]), signs fixed by R's diagonal, times `gain`."""

    def __init__(self, gain: float = 1.0, seed: int | None = None):
        self.gain, self.seed = float(gain), _seed(seed, "Orthogonal")

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        if len(shape) < 2:
            raise ValueError(f"Orthogonal: needs a shape of rank >= 2, got {shape}")
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        g = generator() if self.seed is None else np.random.default_rng(self.seed)
        a = g.standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return np.ascontiguousarray((self.gain * q).reshape(shape), dtype=np.float32)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


GlorotUniform = _variance_scaling("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _variance_scaling("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeUniform = _variance_scaling("HeUniform", 2.0, "fan_in", "uniform")
HeNormal = _variance_scaling("HeNormal", 2.0, "fan_in", "truncated_normal")
LecunUniform = _variance_scaling("LecunUniform", 1.0, "fan_in", "uniform")
LecunNormal = _variance_scaling("LecunNormal", 1.0, "fan_in", "truncated_normal")

_BY_NAME = {
    "zeros": Zeros, "ones": Ones, "constant": Constant,
    "random_uniform": RandomUniform, "random_normal": RandomNormal,
    "truncated_normal": TruncatedNormal, "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform, "he_normal": HeNormal,
    "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal,
    "orthogonal": Orthogonal,
    "uniform": RandomUniform, "normal": RandomNormal,  # Keras's short names
}


def get(identifier) -> Initializer:
    """Returns an initializer for a name ('glorot_uniform', ...), an instance, or a class.

    Example:
        >>> pynn.initializers.get("he_normal")((3, 4)).shape
        (3, 4)
    """
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if isinstance(identifier, dict):  # Keras's serialized form: {"class_name", "config"}
        return _from_dict(identifier)
    if isinstance(identifier, str):
        key = identifier if identifier in _BY_NAME else _snake(identifier)
        if key in _BY_NAME:
            return _BY_NAME[key]()
        raise ValueError(f"Unknown initializer '{identifier}'. "
                         f"Known: {', '.join(sorted(_BY_NAME))}")
    raise ValueError(f"Unknown initializer {identifier!r}")


def _from_dict(d: dict) -> Initializer:
    name, config = d.get("class_name"), d.get("config", {})
    key = _snake(name) if isinstance(name, str) else None
    if key not in _BY_NAME or not isinstance(config, dict):
        raise ValueError(f"Unknown initializer {d!r}. Known: {', '.join(sorted(_BY_NAME))}")
    try:
        return _BY_NAME[key].from_config(config)
    except TypeError as e:
        raise ValueError(f"Initializer {name}: bad config {config!r}: {e}") from None


def serialize(init: Initializer) -> dict:
    return {"class_name": type(init).__name__, "config": init.get_config()}


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)
