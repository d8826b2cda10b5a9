"""Utilities: random seeding, label encoding."""

from .numerical_utils import to_categorical
from .random import set_random_seed

__all__ = ["set_random_seed", "to_categorical"]
