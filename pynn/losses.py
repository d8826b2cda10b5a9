"""Losses with Keras 3's names, arguments and reduction ("sum_over_batch_size").

The core computes each loss and its gradient inside the training step. A softmax (or sigmoid)
output feeding a cross-entropy is folded into it, so the loss is computed from the logits, exactly.
"""

from . import _core

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

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The loss of a batch, a scalar pynn.Tensor recorded on the tape: call it on a model's
        output in a custom training loop, then `.backward()`.

        Example:
            >>> loss = pynn.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits)
        """
        if sample_weight is not None:
            raise ValueError(f"{type(self).__name__}: sample_weight is not supported")
        return _core.loss(self.core_name, self.from_logits, y_true, y_pred)

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


# -- the loss functions: per-sample values (no reduction), on the tape ---------------------------
# Keras's functions of the same names: the mean (or sum) over the last axis, one value per sample.
# They are also what compile(loss=pynn.losses.mse) names.
_EPS = 1e-7


def mean_squared_error(y_true, y_pred):
    """mean((y_true - y_pred)**2) over the last axis: one value per sample."""
    from . import ops
    return ops.mean(ops.square(ops.subtract(y_pred, y_true)), axis=-1)


def mean_absolute_error(y_true, y_pred):
    """mean(|y_true - y_pred|) over the last axis: one value per sample."""
    from . import ops
    return ops.mean(ops.abs(ops.subtract(y_pred, y_true)), axis=-1)


def binary_crossentropy(y_true, y_pred, from_logits: bool = False):
    """-(y log p + (1 - y) log(1 - p)), averaged over the last axis; p clipped to [1e-7, 1 - 1e-7]
    (from logits z: max(z, 0) - z y + log(1 + exp(-|z|)), exactly)."""
    from . import ops
    if from_logits:
        z = y_pred
        return ops.mean(ops.relu(z) - z * y_true + ops.log(1.0 + ops.exp(-ops.abs(z))), axis=-1)
    p = ops.clip(y_pred, _EPS, 1.0 - _EPS)
    return -ops.mean(y_true * ops.log(p) + (1.0 - ops.convert_to_tensor(y_true)) *
                     ops.log(1.0 - p), axis=-1)


def categorical_crossentropy(y_true, y_pred, from_logits: bool = False):
    """-sum(y log p) over the last axis, p normalised to sum 1 and clipped (or log_softmax of
    logits)."""
    from . import ops
    if from_logits:
        logp = ops.log_softmax(y_pred)
    else:
        logp = ops.log(ops.clip(y_pred / ops.sum(y_pred, axis=-1, keepdims=True), _EPS,
                                1.0 - _EPS))
    return -ops.sum(y_true * logp, axis=-1)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits: bool = False):
    """categorical_crossentropy with integer labels: -log p[label], one value per label."""
    from . import ops
    classes = y_pred.shape[-1]
    return categorical_crossentropy(ops.one_hot(y_true, classes), y_pred, from_logits)


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
