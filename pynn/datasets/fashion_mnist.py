"""Fashion-MNIST: Zalando's article images, a drop-in replacement for MNIST."""

from __future__ import annotations

import numpy as np

from . import _files

__all__ = ["load_data"]

#: Where Keras downloads the four IDX files from.
ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
#: SHA-256 of each file, as Keras publishes them.
FILE_SHA256 = {
    "train-labels-idx1-ubyte.gz":
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "train-images-idx3-ubyte.gz":
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "t10k-labels-idx1-ubyte.gz":
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    "t10k-images-idx3-ubyte.gz":
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
}
_SUBDIR = "fashion-mnist"


def load_data() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Loads the Fashion-MNIST dataset: 60,000 28x28 grayscale images of 10 fashion categories
    and a test set of 10,000, as Keras's `fashion_mnist.load_data()`.

    The four IDX files are looked up in `$PYNN_DATASETS/fashion-mnist/`, then in
    `~/.pynn/datasets/fashion-mnist/`, and downloaded there only when missing; each is checked
    against its published SHA-256.

    Labels: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal, 6 Shirt,
    7 Sneaker, 8 Bag, 9 Ankle boot.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: uint8 arrays of shapes (60000, 28, 28),
        (60000,), (10000, 28, 28), (10000,).

    License:
        The copyright for Fashion-MNIST is held by Zalando SE; it is licensed under the MIT
        license.
    """
    folder = _files.locate(_SUBDIR, FILE_SHA256, ORIGIN)

    def images(name: str, n: int) -> np.ndarray:
        return _files.read_idx(folder / name, _files.IDX_MAGIC_IMAGES, (n, 28, 28))

    def labels(name: str, n: int) -> np.ndarray:
        return _files.read_idx(folder / name, _files.IDX_MAGIC_LABELS, (n,))

    train = images("train-images-idx3-ubyte.gz", 60000), labels("train-labels-idx1-ubyte.gz", 60000)
    test = images("t10k-images-idx3-ubyte.gz", 10000), labels("t10k-labels-idx1-ubyte.gz", 10000)
    return train, test
