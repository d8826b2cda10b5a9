"""CIFAR-10: 60,000 32x32 colour images in 10 classes, as keras.datasets.cifar10.

The python tarball's batches are pickled dicts; they are read by a restricted parser
(pynn.datasets._pickle), never unpickled."""

from __future__ import annotations

import numpy as np

from . import _cifar, _files

__all__ = ["load_data"]

ORIGIN = "https://www.cs.toronto.edu/~kriz/"
FILE_SHA256 = {"cifar-10-python.tar.gz":
               "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"}
_SUBDIR = "cifar10"


def load_data():
    """Loads the CIFAR10 dataset: 50,000 training and 10,000 test images, labels 0-9 (airplane,
    automobile, bird, cat, deer, dog, frog, horse, ship, truck).

    `cifar-10-python.tar.gz` is looked up in `$PYNN_DATASETS/cifar10/`, then
    `~/.pynn/datasets/cifar10/`, else downloaded there; it is checked against its SHA-256 and
    read in place (no extraction).

    Returns:
        `(x_train, y_train), (x_test, y_test)`: uint8 arrays of shapes (50000, 32, 32, 3),
        (50000, 1), (10000, 32, 32, 3), (10000, 1).

    Example:
        >>> (x_train, y_train), (x_test, y_test) = pynn.datasets.cifar10.load_data()
    """
    name = next(iter(FILE_SHA256))
    folder = _files.locate(_SUBDIR, FILE_SHA256, ORIGIN)
    members = [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)]
    test = "cifar-10-batches-py/test_batch"
    batches = _cifar.read_batches(folder / name, members + [test], "labels")
    x_train = np.concatenate([batches[m][0] for m in members])
    y_train = np.concatenate([batches[m][1] for m in members]).reshape(-1, 1)
    x_test, y_test = batches[test][0], batches[test][1].reshape(-1, 1)
    return (x_train.transpose(0, 2, 3, 1), y_train), (x_test.transpose(0, 2, 3, 1), y_test)
