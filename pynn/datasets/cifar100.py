"""CIFAR-100: 60,000 32x32 colour images in 100 classes (20 superclasses), as
keras.datasets.cifar100. Read without unpickling (see cifar10)."""

from __future__ import annotations

from . import _cifar, _files

__all__ = ["load_data"]

ORIGIN = "https://www.cs.toronto.edu/~kriz/"
FILE_SHA256 = {"cifar-100-python.tar.gz":
               "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"}
_SUBDIR = "cifar100"


def load_data(label_mode="fine"):
    """Loads the CIFAR100 dataset: 50,000 training and 10,000 test images.

    Args:
        label_mode: 'fine' (100 classes) or 'coarse' (20 superclasses).

    Returns:
        `(x_train, y_train), (x_test, y_test)`: uint8 arrays of shapes (50000, 32, 32, 3),
        (50000, 1), (10000, 32, 32, 3), (10000, 1).

    Example:
        >>> (x_train, y_train), _ = pynn.datasets.cifar100.load_data(label_mode="coarse")
    """
    if label_mode not in ("fine", "coarse"):
        raise ValueError('`label_mode` must be one of `"fine"`, `"coarse"`. Received: '
                         f"label_mode={label_mode}.")
    name = next(iter(FILE_SHA256))
    folder = _files.locate(_SUBDIR, FILE_SHA256, ORIGIN)
    train, test = "cifar-100-python/train", "cifar-100-python/test"
    batches = _cifar.read_batches(folder / name, [train, test], f"{label_mode}_labels")
    (x_train, y_train), (x_test, y_test) = batches[train], batches[test]
    return ((x_train.transpose(0, 2, 3, 1), y_train.reshape(-1, 1)),
            (x_test.transpose(0, 2, 3, 1), y_test.reshape(-1, 1)))
