"""Reuters newswire topics: 11,228 newswires in 46 topics as word-index sequences, as
keras.datasets.reuters. Read without unpickling (see imdb)."""

from __future__ import annotations

import numpy as np

from . import _files
from . import _text_sequences as ts

__all__ = ["get_label_names", "get_word_index", "load_data"]

ORIGIN = ts.KERAS_ORIGIN
FILE_SHA256 = {"reuters.npz": "d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916"}
WORD_INDEX_HASH = "4d44cc38712099c9e383dc6e5f11a921"  # md5, as Keras gives it
_SUBDIR = "reuters"


def load_data(path="reuters.npz", num_words=None, skip_top=0, maxlen=None, test_split=0.2,
              seed=113, start_char=1, oov_char=2, index_from=3):
    """Loads the Reuters newswire dataset, processed exactly as keras.datasets.reuters.

    Args:
        path, num_words, skip_top, maxlen, seed, start_char, oov_char, index_from: as in
            `pynn.datasets.imdb.load_data`.
        test_split: the fraction of the (shuffled) newswires kept for the test set.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: x object arrays of lists of ints, y int topics.

    Example:
        >>> (x_train, y_train), _ = pynn.datasets.reuters.load_data(num_words=10000)
    """
    folder = _files.locate(_SUBDIR, {path: FILE_SHA256.get(path, FILE_SHA256["reuters.npz"])},
                           ORIGIN)
    f = ts.read(folder / path, ["x", "y"])
    xs, labels = f["x"], f["y"]
    if len(xs) != len(labels):
        raise ValueError(f"{folder / path}: the newswires and the labels differ in number")
    rng = np.random.RandomState(seed)
    indices = np.arange(len(xs))
    rng.shuffle(indices)
    xs, labels = xs[indices], labels[indices]
    xs = ts.shift(xs, start_char, index_from)
    if maxlen:
        xs, labels = ts.remove_long_seq(maxlen, xs, labels)
    xs = ts.limit_words(xs, num_words, skip_top, oov_char)
    idx = int(len(xs) * (1 - test_split))
    return ((ts.object_array(xs[:idx]), np.array(labels[:idx])),
            (ts.object_array(xs[idx:]), np.array(labels[idx:])))


def get_word_index(path="reuters_word_index.json") -> dict:
    """The dict word -> index of the newswires (add index_from to match load_data's)."""
    return ts.word_index(_SUBDIR, path, WORD_INDEX_HASH)


def get_label_names() -> tuple:
    """The 46 topics' names, in label order."""
    return ("cocoa", "grain", "veg-oil", "earn", "acq", "wheat", "copper", "housing",
            "money-supply", "coffee", "sugar", "trade", "reserves", "ship", "cotton", "carcass",
            "crude", "nat-gas", "cpi", "money-fx", "interest", "gnp", "meal-feed", "alum",
            "oilseed", "gold", "tin", "strategic-metal", "livestock", "retail", "ipi", "iron-steel",
            "rubber", "heat", "jobs", "lei", "bop", "zinc", "orange", "pet-chem", "dlr", "gas",
            "silver", "wpi", "hog", "lead")
