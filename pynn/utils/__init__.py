"""Utilities: random seeding, label encoding, sequence padding."""

from .numerical_utils import to_categorical
from .random import set_random_seed
from .sequence_utils import pad_sequences

__all__ = ["pad_sequences", "set_random_seed", "to_categorical"]
