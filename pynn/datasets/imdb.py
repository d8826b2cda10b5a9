"""IMDB movie reviews, sentiment classification: word-index sequences, as keras.datasets.imdb.

Keras's imdb.npz stores the reviews as object arrays (pickled lists); they are read by a
restricted parser that builds only lists of ints (pynn.datasets._pickle), never by unpickling.
"""

from __future__ import annotations

import numpy as np

from . import _files
from . import _text_sequences as ts

__all__ = ["get_word_index", "load_data"]

ORIGIN = ts.KERAS_ORIGIN
FILE_SHA256 = {"imdb.npz": "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"}
#: md5, as Keras gives it.
WORD_INDEX_HASH = "bfafd718b763782e994055a2d397834f"
_SUBDIR = "imdb"


def load_data(path="imdb.npz", num_words=None, skip_top=0, maxlen=None, seed=113, start_char=1,
              oov_char=2, index_from=3, **kwargs):
    """Loads the IMDB dataset: 25,000 training and 25,000 test reviews labelled by sentiment
    (1 positive, 0 negative), each a list of word indexes (by overall frequency, 1 the most
    frequent), processed exactly as keras.datasets.imdb.load_data.

    The file is looked up in `$PYNN_DATASETS/imdb/`, then `~/.pynn/datasets/imdb/`, else
    downloaded there; it is checked against its SHA-256.

    Args:
        path: the file's name in the imdb folder ('imdb.npz').
        num_words: keep the words of rank below it (others become oov_char); all when None.
        skip_top: the most frequent words to replace by oov_char.
        maxlen: drop reviews of maxlen words or more (after start_char is added).
        seed: the seed of the shuffle of each set.
        start_char: the index that starts every review (None: none).
        oov_char: the index of the words cut by num_words/skip_top (None: they are dropped).
        index_from: added to every word index.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: x are object arrays of lists of ints, y int
        arrays of 0 and 1.

    Example:
        >>> (x_train, y_train), _ = pynn.datasets.imdb.load_data(num_words=10000)
    """
    if kwargs:
        raise TypeError(f"Unrecognized keyword arguments: {kwargs}")
    folder = _files.locate(_SUBDIR, {path: FILE_SHA256.get(path, FILE_SHA256["imdb.npz"])},
                           ORIGIN)
    f = ts.read(folder / path, ["x_train", "y_train", "x_test", "y_test"])
    x_train, labels_train, x_test, labels_test = (f["x_train"], f["y_train"], f["x_test"],
                                                  f["y_test"])
    if len(x_train) != len(labels_train) or len(x_test) != len(labels_test):
        raise ValueError(f"{folder / path}: the reviews and the labels differ in number")
    rng = np.random.RandomState(seed)
    indices = np.arange(len(x_train))
    rng.shuffle(indices)
    x_train, labels_train = x_train[indices], labels_train[indices]
    indices = np.arange(len(x_test))
    rng.shuffle(indices)
    x_test, labels_test = x_test[indices], labels_test[indices]
    x_train = ts.shift(x_train, start_char, index_from)
    x_test = ts.shift(x_test, start_char, index_from)
    if maxlen:
        x_train, labels_train = ts.remove_long_seq(maxlen, x_train, labels_train)
        x_test, labels_test = ts.remove_long_seq(maxlen, x_test, labels_test)
        if not x_train or not x_test:
            raise ValueError(f"After filtering for sequences shorter than maxlen={maxlen}, no "
                             "sequence was kept. Increase maxlen.")
    xs = ts.limit_words(x_train + x_test, num_words, skip_top, oov_char)
    labels = np.concatenate([labels_train, labels_test])
    idx = len(x_train)
    return ((ts.object_array(xs[:idx]), labels[:idx]),
            (ts.object_array(xs[idx:]), labels[idx:]))


def get_word_index(path="imdb_word_index.json") -> dict:
    """The dict word -> index of the IMDB reviews (add index_from to match load_data's).

    Example:
        >>> index = pynn.datasets.imdb.get_word_index()
    """
    return ts.word_index(_SUBDIR, path, WORD_INDEX_HASH)
