"""MNIST handwritten digits data set."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import _files

__all__ = ["load_data"]

#: Keras's copy of MNIST, downloaded when nothing is found locally.
ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
#: SHA-256 of the file at `ORIGIN` (and of any local `mnist.npz`).
NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"

#: The four original IDX files and their SHA-256 digests.
IDX_SHA256 = {
    "train-images-idx3-ubyte.gz":
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz":
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

_SUBDIR = "mnist"
_NUM_TRAIN, _NUM_TEST, _ROWS, _COLS = 60000, 10000, 28, 28
_U8 = np.dtype(np.uint8)
_NPZ_SPEC = {
    "x_train": ((_NUM_TRAIN, _ROWS, _COLS), _U8),
    "y_train": ((_NUM_TRAIN,), _U8),
    "x_test": ((_NUM_TEST, _ROWS, _COLS), _U8),
    "y_test": ((_NUM_TEST,), _U8),
}

_Split = tuple[np.ndarray, np.ndarray]


def load_data(path: str = "mnist.npz") -> tuple[_Split, _Split]:
    """Loads the MNIST dataset.

    This is a dataset of 60,000 28x28 grayscale images of the 10 digits,
    along with a test set of 10,000 images.
    More info can be found at the
    [MNIST homepage](http://yann.lecun.com/exdb/mnist/).

    The data is looked up, in this order, in the folder named by the
    `PYNN_DATASETS` environment variable and in `~/.pynn/datasets`. In each,
    a subfolder `mnist/` holding the four original IDX files
    (`train-images-idx3-ubyte.gz`, `train-labels-idx1-ubyte.gz`,
    `t10k-images-idx3-ubyte.gz`, `t10k-labels-idx1-ubyte.gz`) is used first,
    then Keras's `mnist.npz` as `mnist/<path>` or `<path>`. Only when none is
    found is `mnist.npz` downloaded to `~/.pynn/datasets/mnist/<path>`.
    Every file is checked against its published SHA-256 before use.

    Args:
        path: name of the `.npz` file to look for and to download to,
            relative to the `mnist/` folder (or to the data folder itself when
            looking up). An absolute path is used as given: loaded if it
            exists, downloaded to otherwise.

    Returns:
        Tuple of NumPy arrays: `(x_train, y_train), (x_test, y_test)`.

        **`x_train`**: `uint8` NumPy array of grayscale image data with shapes
          `(60000, 28, 28)`, containing the training data. Pixel values range
          from 0 to 255.

        **`y_train`**: `uint8` NumPy array of digit labels (integers in range
          0-9) with shape `(60000,)` for the training data.

        **`x_test`**: `uint8` NumPy array of grayscale image data with shapes
          `(10000, 28, 28)`, containing the test data. Pixel values range
          from 0 to 255.

        **`y_test`**: `uint8` NumPy array of digit labels (integers in range
          0-9) with shape `(10000,)` for the test data.

    Raises:
        ValueError: a file found or downloaded is corrupt or fails its
            SHA-256 check.

    Example:

    ```python
    (x_train, y_train), (x_test, y_test) = pynn.datasets.mnist.load_data()
    assert x_train.shape == (60000, 28, 28)
    assert x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,)
    assert y_test.shape == (10000,)
    ```

    License:
        Yann LeCun and Corinna Cortes hold the copyright of MNIST dataset,
        which is a derivative work from original NIST datasets.
        MNIST dataset is made available under the terms of the
        [Creative Commons Attribution-Share Alike 3.0 license.](
        https://creativecommons.org/licenses/by-sa/3.0/)
    """
    npz_path = Path(os.path.expanduser(os.fspath(path)))
    if npz_path.is_absolute():
        if not npz_path.is_file():
            _files.download(ORIGIN, npz_path, NPZ_SHA256)
        return _load_npz(npz_path)

    for root in _files.dataset_roots():
        folder = root / _SUBDIR
        if all((folder / name).is_file() for name in IDX_SHA256):
            return _load_idx(folder)
        found = _files.first_existing([folder / npz_path, root / npz_path])
        if found is not None:
            return _load_npz(found)

    dest = _files.cache_dir() / _SUBDIR / npz_path
    _files.download(ORIGIN, dest, NPZ_SHA256)
    return _load_npz(dest)


def _load_idx(folder: Path) -> tuple[_Split, _Split]:
    """Reads the four verified IDX files in `folder`."""
    for name, digest in IDX_SHA256.items():
        _files.verify_file(folder / name, digest)

    def images(name: str, n: int) -> np.ndarray:
        return _files.read_idx(
            folder / name, _files.IDX_MAGIC_IMAGES, (n, _ROWS, _COLS)
        )

    def labels(name: str, n: int) -> np.ndarray:
        return _files.read_idx(folder / name, _files.IDX_MAGIC_LABELS, (n,))

    x_train = images("train-images-idx3-ubyte.gz", _NUM_TRAIN)
    y_train = labels("train-labels-idx1-ubyte.gz", _NUM_TRAIN)
    x_test = images("t10k-images-idx3-ubyte.gz", _NUM_TEST)
    y_test = labels("t10k-labels-idx1-ubyte.gz", _NUM_TEST)
    return _checked(folder, x_train, y_train, x_test, y_test)


def _load_npz(file: Path) -> tuple[_Split, _Split]:
    """Reads a verified Keras-style `mnist.npz`."""
    _files.verify_file(file, NPZ_SHA256)
    a = _files.read_npz(file, _NPZ_SPEC)
    return _checked(file, a["x_train"], a["y_train"], a["x_test"], a["y_test"])


def _checked(
    source: Path,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
) -> tuple[_Split, _Split]:
    for name, y in (("y_train", y_train), ("y_test", y_test)):
        if y.size and int(y.max()) > 9:
            raise ValueError(
                f"MNIST labels {name} from {os.fspath(source)!r} hold {int(y.max())}; "
                "expected digits 0-9."
            )
    return (x_train, y_train), (x_test, y_test)
