"""What imdb and reuters share: Keras's processing of word-index sequences."""

from __future__ import annotations

import json

import numpy as np

from . import _files, _pickle

KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"


def check_sequences(x, name: str) -> None:
    """Refuses an object array whose items are not lists of non-negative ints."""
    if x.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of sequences, got shape {x.shape}")
    for s in x:
        if not isinstance(s, list) or not all(
                isinstance(w, int) and not isinstance(w, bool) and w >= 0 for w in s):
            raise ValueError(f"{name}: every sequence must be a list of word indexes (ints)")


def read(path, keys) -> dict:
    arrays = _pickle.read_npz(path, keys)
    for key in keys:
        a = arrays[key]
        if a.dtype == object:
            check_sequences(a, f"{path}[{key}]")
        elif a.dtype.kind not in "iu" or a.ndim != 1:
            raise ValueError(f"{path}[{key}]: expected 1-D int labels, got {a.dtype} "
                             f"{a.shape}")
    return arrays


def remove_long_seq(maxlen, seq, label):
    new_seq, new_label = [], []
    for x, y in zip(seq, label):
        if len(x) < maxlen:
            new_seq.append(x)
            new_label.append(y)
    return new_seq, new_label


def shift(xs, start_char, index_from):
    if start_char is not None:
        return [[start_char] + [w + index_from for w in x] for x in xs]
    if index_from:
        return [[w + index_from for w in x] for x in xs]
    return [list(x) for x in xs]


def limit_words(xs, num_words, skip_top, oov_char):
    if not num_words:
        num_words = max(max(x) for x in xs)
    if oov_char is not None:
        return [[w if skip_top <= w < num_words else oov_char for w in x] for x in xs]
    return [[w for w in x if skip_top <= w < num_words] for x in xs]


def object_array(seqs) -> np.ndarray:
    out = np.empty(len(seqs), dtype=object)
    for i, s in enumerate(seqs):
        out[i] = s
    return out


def word_index(subdir: str, name: str, digest: str) -> dict:
    folder = _files.locate(subdir, {name: digest}, KERAS_ORIGIN)
    with open(folder / name, encoding="utf-8") as f:
        try:
            index = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{folder / name}: not a JSON word index: {e}") from e
    if not isinstance(index, dict) or not all(isinstance(v, int) for v in index.values()):
        raise ValueError(f"{folder / name}: expected a JSON object of word -> int")
    return index
