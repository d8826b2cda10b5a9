"""Small, ready-to-use data sets, loaded like `keras.datasets`.

Example:

```python
from pynn.datasets import mnist

(x_train, y_train), (x_test, y_test) = mnist.load_data()
```
"""

from . import (
    auto_mpg,
    boston_housing,
    california_housing,
    cifar10,
    cifar100,
    fashion_mnist,
    imdb,
    mnist,
    reuters,
    tiny_shakespeare,
)

__all__ = ["auto_mpg", "boston_housing", "california_housing", "cifar10", "cifar100",
           "fashion_mnist", "imdb", "mnist", "reuters", "tiny_shakespeare"]
