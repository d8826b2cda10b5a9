"""Metrics for compile(metrics=...), by Keras 3's names. The core sums them per batch; fit and
evaluate average them over the samples seen, as Keras's mean metrics do."""

_ALIASES = {
    "accuracy": "accuracy",
    "acc": "accuracy",
    "binary_accuracy": "binary_accuracy",
    "categorical_accuracy": "categorical_accuracy",
    "sparse_categorical_accuracy": "sparse_categorical_accuracy",
    "mae": "mean_absolute_error",
    "mean_absolute_error": "mean_absolute_error",
    "mse": "mean_squared_error",
    "mean_squared_error": "mean_squared_error",
}


class Metric:
    """Base class of the metrics: a name and the core's metric it stands for."""

    core_name = ""

    def __init__(self, name: str | None = None, dtype=None):
        self.name = name or self.core_name

    def get_config(self) -> dict:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


class BinaryAccuracy(Metric):
    """How often `y_pred > threshold` equals the 0/1 target."""

    core_name = "binary_accuracy"

    def __init__(self, name: str = "binary_accuracy", dtype=None, threshold: float = 0.5):
        super().__init__(name, dtype)
        if threshold != 0.5:
            raise ValueError("BinaryAccuracy: only threshold=0.5 is supported")
        self.threshold = threshold

    def get_config(self) -> dict:
        return {**super().get_config(), "threshold": self.threshold}


class CategoricalAccuracy(Metric):
    """How often argmax(y_pred) equals argmax(y_true) (one-hot targets)."""

    core_name = "categorical_accuracy"


class SparseCategoricalAccuracy(Metric):
    """How often argmax(y_pred) equals the integer label."""

    core_name = "sparse_categorical_accuracy"


class MeanAbsoluteError(Metric):
    """Mean of |y_true - y_pred|."""

    core_name = "mean_absolute_error"


class MeanSquaredError(Metric):
    """Mean of (y_true - y_pred) ** 2."""

    core_name = "mean_squared_error"


_CLASSES = {c.core_name: c for c in (BinaryAccuracy, CategoricalAccuracy,
                                     SparseCategoricalAccuracy, MeanAbsoluteError,
                                     MeanSquaredError)}


def resolve(identifier, loss_name: str, output_units: int) -> tuple[str, str]:
    """(history key, core metric name) for one entry of compile's `metrics`.

    'accuracy' follows the loss and the output as in Keras: binary for one output unit or a
    binary cross-entropy, sparse for integer labels, categorical otherwise.
    """
    if isinstance(identifier, Metric):
        return identifier.name, identifier.core_name
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        m = identifier()
        return m.name, m.core_name
    if not isinstance(identifier, str) or identifier not in _ALIASES:
        raise ValueError(
            f"Unknown metric {identifier!r}. Known: {', '.join(sorted(_ALIASES))}, "
            "or a pynn.metrics.Metric instance"
        )
    core = _ALIASES[identifier]
    if core == "accuracy":
        if loss_name == "sparse_categorical_crossentropy":
            core = "sparse_categorical_accuracy"
        elif output_units == 1 or loss_name == "binary_crossentropy":
            core = "binary_accuracy"
        else:
            core = "categorical_accuracy"
    return identifier, core


def get(identifier) -> Metric:
    """Returns a Metric instance for a name or an instance ('accuracy' needs compile's context)."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str) and _ALIASES.get(identifier) in _CLASSES:
        return _CLASSES[_ALIASES[identifier]](name=identifier)
    raise ValueError(f"Unknown metric {identifier!r}")
