"""Metrics, as Keras 3 names and defines them (keras.metrics): stateful objects with
`update_state(y_true, y_pred, sample_weight=None)`, `result()` and `reset_state()`, the function
forms (`pynn.metrics.binary_accuracy(y_true, y_pred)`, one value per sample), and `get`,
`serialize`, `deserialize`.

A metric given to compile runs in fit and evaluate inside the core's fused step when the core
computes it (accuracies, MAE, MSE, RMSE, Precision/Recall/TruePositives/FalsePositives/
FalseNegatives at one threshold, AUC: see each class's `_spec`); any other metric, a user's
function or Metric subclass included, is updated in Python from the predictions that the same
step hands back (no second forward pass). Either way the objects given to compile hold the
epoch's state afterwards, as in Keras.

Example:
    >>> m = pynn.metrics.AUC()
    >>> m.update_state([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> float(m.result())
    0.75
"""

from __future__ import annotations

import inspect

from .accuracy import (
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    SparseCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    TopKCategoricalAccuracy,
    accuracy_by_shapes,
    binary_accuracy,
    categorical_accuracy,
    sparse_categorical_accuracy,
    sparse_top_k_categorical_accuracy,
    top_k_categorical_accuracy,
)
from .base import Mean, MeanMetricWrapper, Metric, Sum, snake_case
from .confusion import (
    AUC,
    FalseNegatives,
    FalsePositives,
    Precision,
    PrecisionAtRecall,
    Recall,
    RecallAtPrecision,
    SensitivityAtSpecificity,
    SpecificityAtSensitivity,
    TrueNegatives,
    TruePositives,
)
from .correlation import (
    ConcordanceCorrelation,
    PearsonCorrelation,
    concordance_correlation,
    pearson_correlation,
)
from .f_score import F1Score, FBetaScore
from .iou import BinaryIoU, IoU, MeanIoU, OneHotIoU, OneHotMeanIoU
from .probabilistic import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    CategoricalHinge,
    Hinge,
    KLDivergence,
    Poisson,
    SparseCategoricalCrossentropy,
    SquaredHinge,
    binary_crossentropy,
    binary_focal_crossentropy,
    categorical_crossentropy,
    categorical_focal_crossentropy,
    categorical_hinge,
    hinge,
    kl_divergence,
    poisson,
    sparse_categorical_crossentropy,
    squared_hinge,
)
from .regression import (
    CosineSimilarity,
    LogCoshError,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredError,
    MeanSquaredLogarithmicError,
    R2Score,
    RootMeanSquaredError,
    huber,
    log_cosh,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    mean_squared_logarithmic_error,
)

__all__ = [
    "AUC", "Accuracy", "BinaryAccuracy", "BinaryCrossentropy", "BinaryIoU",
    "CategoricalAccuracy", "CategoricalCrossentropy", "CategoricalHinge",
    "ConcordanceCorrelation", "CosineSimilarity", "F1Score", "FBetaScore", "FalseNegatives",
    "FalsePositives", "Hinge", "IoU", "KLDivergence", "LogCoshError", "Mean",
    "MeanAbsoluteError", "MeanAbsolutePercentageError", "MeanIoU", "MeanMetricWrapper",
    "MeanSquaredError", "MeanSquaredLogarithmicError", "Metric", "OneHotIoU", "OneHotMeanIoU",
    "PearsonCorrelation", "Poisson", "Precision", "PrecisionAtRecall", "R2Score", "Recall",
    "RecallAtPrecision", "RootMeanSquaredError", "SensitivityAtSpecificity",
    "SparseCategoricalAccuracy", "SparseCategoricalCrossentropy",
    "SparseTopKCategoricalAccuracy", "SpecificityAtSensitivity", "SquaredHinge", "Sum",
    "TopKCategoricalAccuracy", "TrueNegatives", "TruePositives", "binary_accuracy",
    "binary_crossentropy", "binary_focal_crossentropy", "categorical_accuracy",
    "categorical_crossentropy", "categorical_focal_crossentropy", "categorical_hinge",
    "concordance_correlation", "deserialize", "get", "hinge", "huber", "kl_divergence",
    "log_cosh", "mean_absolute_error", "mean_absolute_percentage_error", "mean_squared_error",
    "mean_squared_logarithmic_error", "pearson_correlation", "poisson", "serialize",
    "sparse_categorical_accuracy", "sparse_categorical_crossentropy",
    "sparse_top_k_categorical_accuracy", "squared_hinge", "top_k_categorical_accuracy",
]

ALL_OBJECTS = (
    Metric, Mean, Sum, MeanMetricWrapper, MeanSquaredError, RootMeanSquaredError,
    MeanAbsoluteError, MeanAbsolutePercentageError, MeanSquaredLogarithmicError,
    CosineSimilarity, LogCoshError, R2Score, AUC, FalseNegatives, FalsePositives, Precision,
    PrecisionAtRecall, Recall, RecallAtPrecision, SensitivityAtSpecificity,
    SpecificityAtSensitivity, TrueNegatives, TruePositives, ConcordanceCorrelation,
    PearsonCorrelation, Hinge, SquaredHinge, CategoricalHinge, KLDivergence, Poisson,
    BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy, Accuracy,
    BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy, TopKCategoricalAccuracy,
    SparseTopKCategoricalAccuracy, F1Score, FBetaScore, IoU, BinaryIoU, MeanIoU, OneHotIoU,
    OneHotMeanIoU,
)
# Keras 3's metrics.get: class names, their snake_case forms, and a few short names
ALL_OBJECTS_DICT = {c.__name__: c for c in ALL_OBJECTS}
ALL_OBJECTS_DICT.update({snake_case(c.__name__): c for c in ALL_OBJECTS})
ALL_OBJECTS_DICT.update({
    "bce": BinaryCrossentropy, "BCE": BinaryCrossentropy, "mse": MeanSquaredError,
    "MSE": MeanSquaredError, "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError,
    "mape": MeanAbsolutePercentageError, "MAPE": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError, "MSLE": MeanSquaredLogarithmicError,
})
_BY_NAME = ALL_OBJECTS_DICT  # the name pynn used before
_ACCURACY = ("accuracy", "acc")

# the function forms, by name (what a saved MeanMetricWrapper's fn names)
FUNCTIONS = {f.__name__: f for f in (
    binary_accuracy, binary_crossentropy, binary_focal_crossentropy, categorical_accuracy,
    categorical_crossentropy, categorical_focal_crossentropy, categorical_hinge,
    concordance_correlation, hinge, huber, kl_divergence, log_cosh, mean_absolute_error,
    mean_absolute_percentage_error, mean_squared_error, mean_squared_logarithmic_error,
    pearson_correlation, poisson, sparse_categorical_accuracy, sparse_categorical_crossentropy,
    sparse_top_k_categorical_accuracy, squared_hinge, top_k_categorical_accuracy)}


# ---- serialization ------------------------------------------------------------------------------

def serialize_function(fn) -> dict:
    """Keras's form of a metric function: {module, class_name: 'function', config: its name,
    registered_name}."""
    from ..saving import serialization
    registered = serialization._REGISTERED_NAMES.get(fn)
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str) or name == "<lambda>":
        raise ValueError(f"Cannot serialize the metric function {fn!r}: give a named function "
                         "(and register it with pynn.saving.register_keras_serializable)")
    return {"module": "builtins", "class_name": "function", "config": name,
            "registered_name": registered or "function"}


def deserialize_function(config, custom_objects: dict | None = None):
    """The function that `serialize_function` described: a custom object, a registered function
    or one of pynn.metrics' (nothing is imported or evaluated)."""
    from ..saving import serialization
    if callable(config):
        return config
    if isinstance(config, str):
        name, registered = config, None
    elif isinstance(config, dict) and config.get("class_name") == "function":
        name, registered = config.get("config"), config.get("registered_name")
    else:
        raise ValueError(f"Invalid metric function config: {config!r}")
    if not isinstance(name, str):
        raise ValueError(f"Invalid metric function name: {name!r}")
    custom = custom_objects or {}
    for key in (registered, name):
        if isinstance(key, str) and key != "function":
            fn = custom.get(key) or serialization._REGISTERED.get(key)
            if fn is not None:
                return fn
    if name in FUNCTIONS:
        return FUNCTIONS[name]
    raise ValueError(f"Could not locate the metric function '{name}': pass it in "
                     f"custom_objects ({{'{name}': the function}}) or register it with "
                     "pynn.saving.register_keras_serializable")


def serialize(metric) -> dict:
    """Keras's form of a metric: {module, class_name, config, registered_name} (a function's
    for a metric function)."""
    from ..saving import serialization
    if isinstance(metric, Metric):
        return serialization.serialize_keras_object(metric)
    if callable(metric) and not isinstance(metric, type):
        return serialize_function(metric)
    raise ValueError(f"Could not serialize metric {metric!r}: not a Metric or a function")


def deserialize(config, custom_objects: dict | None = None):
    """The metric (an instance, or a function) that `serialize` described."""
    from ..saving import serialization
    if isinstance(config, str):
        return get(config)
    if isinstance(config, dict) and config.get("class_name") == "function":
        return deserialize_function(config, custom_objects)
    return serialization.deserialize_keras_object(config, custom_objects, "metric")


def get(identifier):
    """A metric for a name ('auc', 'Precision', 'mse', 'binary_accuracy'), a config dict, a
    class or an instance; a function is returned as it is ('accuracy' needs compile's
    context)."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        return deserialize(identifier)
    obj = ALL_OBJECTS_DICT.get(identifier) if isinstance(identifier, str) else identifier
    if isinstance(obj, type) and issubclass(obj, Metric):
        return obj()
    if obj is not None and callable(obj) and not isinstance(obj, type):
        return obj
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}")


# ---- compile ------------------------------------------------------------------------------------

class CompileMetrics(Metric):
    """The metrics given to compile, as one entry of `model.metrics` (Keras 3's
    'compile_metrics'): update_state updates each, result() is a dict of their results."""

    def __init__(self, metrics: list, names: list, weighted: list | None = None,
                 outputs: list | None = None, output_names: list | None = None):
        super().__init__(name="compile_metrics")
        self.metrics, self._names = list(metrics), list(names)
        self._weighted = list(weighted or [False] * len(self.metrics))
        # with several outputs: each metric's output (an index into y and y_pred, or their
        # key by output name when they are dicts)
        self._outputs, self._output_names = outputs, list(output_names or [])

    @property
    def variables(self) -> list:
        return [v for m in self.metrics for v in m.variables]

    def reset_state(self) -> None:
        for m in self.metrics:
            m.reset_state()

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        # compile's `metrics` are unweighted in Keras 3 (only `weighted_metrics` get the
        # sample_weight): a custom train_step passing it gets the same figures
        for i, (m, weighted) in enumerate(zip(self.metrics, self._weighted)):
            yt, yp, sw = y_true, y_pred, sample_weight
            if self._outputs is not None:
                yt, yp, sw = (self._of_output(v, self._outputs[i]) for v in (yt, yp, sw))
            if weighted and sw is not None:
                m.update_state(yt, yp, sw)
            else:
                m.update_state(yt, yp)

    def _of_output(self, value, k: int):
        """Output k's part of y, y_pred or sample_weight given for every output (a list, or a
        dict by output name); a sample_weight for all outputs is everyone's."""
        if isinstance(value, dict):
            return value.get(self._output_names[k]) if self._output_names else None
        if isinstance(value, (list, tuple)):
            return value[k]
        return value

    def result(self) -> dict:
        from .base import result_value
        return {n: result_value(m.result()) for n, m in zip(self._names, self.metrics)}


def resolve(identifier, loss_name: str, output_units: int) -> tuple[str, Metric]:
    """(history key, a Metric) for one entry of compile's `metrics`, as Keras 3's get_metric.

    A string keeps its spelling as the key; 'accuracy' (or 'acc') takes its form from the
    shapes as Keras's compile does: binary for one output unit, sparse for integer labels (a
    sparse cross-entropy), categorical otherwise; without a loss of pynn's (`loss_name` ''),
    from the data's shapes batch by batch. A function becomes a MeanMetricWrapper named
    after it.
    """
    if isinstance(identifier, Metric):
        return identifier.name, identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        m = identifier()
        return m.name, m
    if isinstance(identifier, str) and identifier.lower() in _ACCURACY:
        if not loss_name:  # no loss of pynn's: the shapes of the data decide, batch by batch
            return identifier, MeanMetricWrapper(accuracy_by_shapes, name=identifier)
        # Keras's choice from the shapes, which the loss fixes: one unit is binary (a
        # multi-label binary cross-entropy is categorical, as in Keras), integer labels sparse
        if output_units == 1:
            cls = BinaryAccuracy
        elif loss_name == "sparse_categorical_crossentropy":
            cls = SparseCategoricalAccuracy
        else:
            cls = CategoricalAccuracy
        return identifier, cls(name=identifier)
    if isinstance(identifier, str) and identifier in ALL_OBJECTS_DICT:
        cls = ALL_OBJECTS_DICT[identifier]
        if cls in (Metric, Mean, Sum, MeanMetricWrapper) or not _default_constructible(cls):
            raise ValueError(f"compile: metric '{identifier}' needs arguments; pass an "
                             f"instance (pynn.metrics.{cls.__name__}(...))")
        return identifier, cls(name=identifier)
    if isinstance(identifier, dict):
        m = deserialize(identifier)
        return resolve(m, loss_name, output_units)
    if callable(identifier) and not isinstance(identifier, type):
        name = getattr(identifier, "__name__", None)
        if not isinstance(name, str):
            name = snake_case(type(identifier).__name__)  # a callable object, as Keras names it
        m = MeanMetricWrapper(identifier, name=name)
        return name, m
    if isinstance(identifier, str):
        known = sorted(set(ALL_OBJECTS_DICT) | set(_ACCURACY), key=str.lower)
        raise ValueError(f"Unknown metric {identifier!r}. Known: {', '.join(known)}; or a "
                         "pynn.metrics.Metric instance, or a function (y_true, y_pred)")
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}: give a name, a "
                     "pynn.metrics.Metric instance or a function (y_true, y_pred)")


def _default_constructible(cls) -> bool:
    """Whether cls() takes no required argument (IoU needs num_classes, ...)."""
    try:
        params = inspect.signature(cls.__init__).parameters.values()
    except (TypeError, ValueError):
        return True
    return not any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                                       p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                   and p.name != "self" for p in params)
