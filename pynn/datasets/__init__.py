"""Small, ready-to-use data sets, loaded like `keras.datasets`.

Example:

```python
from pynn.datasets import mnist

(x_train, y_train), (x_test, y_test) = mnist.load_data()
```
"""

from . import mnist

__all__ = ["mnist"]
