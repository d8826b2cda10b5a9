"""Boston housing prices (regression), as keras.datasets.boston_housing."""

from __future__ import annotations

import zipfile
import zlib

import numpy as np

from . import _files

__all__ = ["load_data"]

ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
FILE_SHA256 = {"boston_housing.npz":
               "f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5"}
_SUBDIR = "boston_housing"


def split(path, name: str, n_features: int, test_split: float, seed: int, limit=None):
    """Keras's split of an npz of x (n, n_features) and y (n,): shuffled with seed."""
    if not 0 <= test_split < 1:
        raise ValueError(f"Invalid `test_split` argument: {test_split}. It must be between 0 "
                         "and 1 (exclusive of 1).")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"Could not read {path} as an .npz archive: {e}") from e
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is not an .npz archive")
    with archive as f:
        if "x" not in f.files or "y" not in f.files:
            raise ValueError(f"{path}: expected arrays x and y, found {f.files}")
        try:
            x, y = f["x"], f["y"]
        except (ValueError, OSError, EOFError, zlib.error, zipfile.BadZipFile) as e:
            raise ValueError(f"Could not read {path}: {e}") from e
    if x.ndim != 2 or x.shape[1] != n_features or y.ndim != 1 or len(x) != len(y) \
            or x.dtype.kind not in "fiu" or y.dtype.kind not in "fiu":
        raise ValueError(f"{name}: expected x of shape (n, {n_features}) and y of shape (n,), "
                         f"got {x.shape} {x.dtype} and {y.shape} {y.dtype}")
    if limit is not None:
        x, y = x[:limit], y[:limit]
    indices = np.arange(len(x))
    np.random.RandomState(seed).shuffle(indices)
    x, y = x[indices], y[indices]
    cut = int(len(x) * (1 - test_split))
    return (np.array(x[:cut]), np.array(y[:cut])), (np.array(x[cut:]), np.array(y[cut:]))


def load_data(path="boston_housing.npz", test_split=0.2, seed=113):
    """Loads the Boston Housing dataset: 506 towns, 13 features, the median home value in
    $1000s, split as keras.datasets.boston_housing.load_data.

    Args:
        path: the file's name in the boston_housing data folder.
        test_split: the fraction of the (shuffled) rows kept for the test set, in [0, 1).
        seed: the shuffle's seed.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: float64 arrays, x of shape (n, 13).

    Example:
        >>> (x_train, y_train), (x_test, y_test) = pynn.datasets.boston_housing.load_data()
    """
    if not 0 <= test_split < 1:
        raise ValueError(f"Invalid `test_split` argument: {test_split}. It must be between 0 "
                         "and 1 (exclusive of 1).")
    digest = FILE_SHA256.get(path, FILE_SHA256["boston_housing.npz"])
    folder = _files.locate(_SUBDIR, {path: digest}, ORIGIN)
    return split(folder / path, "boston_housing", 13, test_split, seed)
