"""California housing prices (regression), as keras.datasets.california_housing."""

from __future__ import annotations

from . import _files
from .boston_housing import split

__all__ = ["load_data"]

ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
FILE_SHA256 = {"california_housing.npz":
               "1a2e3a52e0398de6463aebe6f4a8da34fb21fbb6b934cf88c3425e766f2a1a6f"}
_SUBDIR = "california_housing"


def load_data(version="large", path="california_housing.npz", test_split=0.2, seed=113):
    """Loads the California Housing dataset: 20,640 block groups of the 1990 census, 8
    features (MedInc, HouseAge, AveRooms, AveBedrms, Population, AveOccup, Latitude,
    Longitude), the median house value in dollars.

    Args:
        version: 'large' (all 20,640 rows) or 'small' (the first 600).
        path: the file's name in the california_housing data folder.
        test_split: the fraction of the (shuffled) rows kept for the test set, in [0, 1).
        seed: the shuffle's seed.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: x of shape (n, 8), y of shape (n,).

    Example:
        >>> (x_train, y_train), _ = pynn.datasets.california_housing.load_data("small")
    """
    if not 0 <= test_split < 1:
        raise ValueError(f"Invalid `test_split` argument: {test_split}. It must be between 0 "
                         "and 1 (exclusive of 1).")
    if version not in ("small", "large"):
        raise ValueError(f"Argument `version` must be one of 'small', 'large'. Received: "
                         f"version={version}")
    digest = FILE_SHA256.get(path, FILE_SHA256["california_housing.npz"])
    folder = _files.locate(_SUBDIR, {path: digest}, ORIGIN)
    return split(folder / path, "california_housing", 8, test_split, seed,
                 600 if version == "small" else None)
