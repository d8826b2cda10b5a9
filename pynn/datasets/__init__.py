"""Small, ready-to-use data sets, loaded like `keras.datasets`.

Example:

```python
from pynn.datasets import mnist

(x_train, y_train), (x_test, y_test) = mnist.load_data()
```
"""

from . import auto_mpg, fashion_mnist, mnist, tiny_shakespeare

__all__ = ["auto_mpg", "fashion_mnist", "mnist", "tiny_shakespeare"]
