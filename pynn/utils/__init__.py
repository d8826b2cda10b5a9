"""Utilities: random seeding, label encoding, sequence padding, batched datasets, plots of models
and training, sampling from autoregressive models."""

from .dataset import PyDataset, Sequence
from .generation import generate
from .numerical_utils import to_categorical
from .plotting import model_to_dot, plot_history, plot_model
from .random import set_random_seed
from .sequence_utils import pad_sequences

__all__ = ["PyDataset", "Sequence", "generate", "model_to_dot", "pad_sequences", "plot_history",
           "plot_model", "set_random_seed", "to_categorical"]
