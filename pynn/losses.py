"""Losses with Keras 3's names, arguments and reduction ("sum_over_batch_size").

The core computes each loss and its gradient inside the training step. A softmax (or sigmoid)
output feeding a cross-entropy is folded into it, so the loss is computed from the logits, exactly.
"""

_CORE_NAMES = {
    "mean_squared_error": "mean_squared_error",
    "mse": "mean_squared_error",
    "mean_absolute_error": "mean_absolute_error",
    "mae": "mean_absolute_error",
    "binary_crossentropy": "binary_crossentropy",
    "categorical_crossentropy": "categorical_crossentropy",
    "sparse_categorical_crossentropy": "sparse_categorical_crossentropy",
}


class Loss:
    """Base class of the losses. `name` is Keras's default name for the loss."""

    core_name = ""

    def __init__(self, name: str | None = None, reduction: str = "sum_over_batch_size",
                 dtype=None):
        if reduction != "sum_over_batch_size":
            raise ValueError(
                f"{type(self).__name__}: only reduction='sum_over_batch_size' is supported, "
                f"got {reduction!r}"
            )
        self.name = name or self.core_name
        self.reduction = reduction
        self.from_logits = False

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


class MeanSquaredError(Loss):
    """`mean((y_true - y_pred) ** 2)` over the last axis, averaged over the batch."""

    core_name = "mean_squared_error"


class MeanAbsoluteError(Loss):
    """`mean(|y_true - y_pred|)` over the last axis, averaged over the batch."""

    core_name = "mean_absolute_error"


class _CrossEntropy(Loss):
    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 name: str | None = None, reduction: str = "sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if label_smoothing:
            raise ValueError(f"{type(self).__name__}: label_smoothing is not supported")
        if axis != -1:
            raise ValueError(f"{type(self).__name__}: only axis=-1 is supported")
        self.from_logits = bool(from_logits)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


class BinaryCrossentropy(_CrossEntropy):
    """Binary cross-entropy between 0/1 targets and probabilities (or logits)."""

    core_name = "binary_crossentropy"


class CategoricalCrossentropy(_CrossEntropy):
    """Cross-entropy between one-hot targets and class probabilities (or logits)."""

    core_name = "categorical_crossentropy"


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy between integer class labels and class probabilities (or logits)."""

    core_name = "sparse_categorical_crossentropy"

    def __init__(self, from_logits: bool = False, ignore_class=None, name: str | None = None,
                 reduction: str = "sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if ignore_class is not None:
            raise ValueError("SparseCategoricalCrossentropy: ignore_class is not supported")
        self.from_logits = bool(from_logits)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


_CLASSES = {
    "mean_squared_error": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}


def _function(core_name: str):
    def fn(y_true, y_pred):
        raise TypeError(
            f"pynn.losses.{core_name} names a loss for compile(); it is computed by the core "
            "inside fit/evaluate"
        )

    fn.__name__ = fn.__qualname__ = core_name
    fn.__doc__ = f"The {core_name} loss, for `compile(loss=pynn.losses.{core_name})`."
    return fn


mean_squared_error = _function("mean_squared_error")
mean_absolute_error = _function("mean_absolute_error")
binary_crossentropy = _function("binary_crossentropy")
categorical_crossentropy = _function("categorical_crossentropy")
sparse_categorical_crossentropy = _function("sparse_categorical_crossentropy")
mse, mae = mean_squared_error, mean_absolute_error


def get(identifier) -> Loss:
    """Returns a Loss for a name ('mse', 'sparse_categorical_crossentropy', ...), a loss function
    of this module, or a Loss instance.

    Example:
        >>> pynn.losses.get("mse").name
        'mean_squared_error'
    """
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    name = identifier if isinstance(identifier, str) else getattr(identifier, "__name__", None)
    if name in _CORE_NAMES and (isinstance(identifier, str) or globals().get(name) is identifier):
        return _CLASSES[_CORE_NAMES[name]]()
    raise ValueError(
        f"Unknown loss {identifier!r}. Known: {', '.join(sorted(_CORE_NAMES))}, "
        "or a pynn.losses.Loss instance"
    )
