"""The random state pynn draws from: weight initializers and the order of training samples."""

import random as _random

import numpy as np

_generator = np.random.default_rng()


def set_random_seed(seed: int) -> None:
    """Seeds every random generator pynn uses, and Python's and NumPy's global ones, as Keras does.

    Two runs with the same seed (and the same thread count) train to bitwise-identical weights.

    Args:
        seed: a non-negative integer.

    Example:
        >>> pynn.utils.set_random_seed(42)
    """
    global _generator
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"set_random_seed: seed must be a non-negative int, got {seed!r}")
    _random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    _generator = np.random.default_rng(int(seed))


def generator(seed: int | None = None) -> np.random.Generator:
    """pynn's generator, or a fresh one seeded with `seed` when given."""
    return _generator if seed is None else np.random.default_rng(seed)
