"""UCI Auto MPG: fuel consumption of 398 cars from 1970-1982, a small regression set."""

from __future__ import annotations

import numpy as np

from . import _files

__all__ = ["load_data", "FEATURES"]

ORIGIN = "https://archive.ics.uci.edu/ml/machine-learning-databases/auto-mpg/"
FILE_SHA256 = {"auto-mpg.data": "48b830e11feee5572525f8f1691ddb9d38d3d7b7063edcd8fca672c2a5e17d8d"}
_SUBDIR = "auto-mpg"

#: The columns of x, in order; the target y is mpg. origin: 1 USA, 2 Europe, 3 Japan.
FEATURES = ("cylinders", "displacement", "horsepower", "weight", "acceleration", "model_year",
            "origin")


def load_data(test_split: float = 0.2, seed: int = 113):
    """Loads the Auto MPG data set, split like Keras's `boston_housing.load_data()`: the rows are
    shuffled with `seed`, and the last `test_split` of them are the test set.

    The six cars whose horsepower is unknown (`?` in the file) are left out: 392 remain. The
    file is looked up in `$PYNN_DATASETS/auto-mpg/`, then `~/.pynn/datasets/auto-mpg/`, else
    downloaded there; it is checked against its SHA-256.

    Args:
        test_split: the fraction of the rows held out as the test set, in [0, 1).
        seed: the seed of the shuffle.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: float32 arrays, x of shape (n, 7) with the
        columns `FEATURES`, y of shape (n,) in miles per gallon.

    License:
        CC BY 4.0, UCI Machine Learning Repository (Quinlan, R. (1993), Auto MPG,
        https://doi.org/10.24432/C5859H).
    """
    if isinstance(test_split, bool) or not isinstance(test_split, (int, float)) \
            or not 0.0 <= test_split < 1.0:
        raise ValueError(f"test_split must be a number in [0, 1), got {test_split!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    folder = _files.locate(_SUBDIR, FILE_SHA256, ORIGIN)
    rows = []
    for n, line in enumerate((folder / "auto-mpg.data").read_text(encoding="ascii").splitlines()):
        fields = line.split('"')[0].split()  # the car's name, in quotes, is not a feature
        if not fields:
            continue
        if len(fields) != 8:
            raise ValueError(f"auto-mpg.data line {n + 1}: expected 8 numbers, got {fields}")
        if "?" in fields:
            continue
        rows.append([float(v) for v in fields])
    data = np.asarray(rows, dtype=np.float32)
    data = data[np.random.default_rng(seed).permutation(len(data))]
    split = int(len(data) * (1.0 - test_split))
    x, y = data[:, 1:], data[:, 0]
    return (x[:split], y[:split]), (x[split:], y[split:])
