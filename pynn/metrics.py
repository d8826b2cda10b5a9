"""Metrics, as Keras 3 names and defines them: stateful objects whose accumulators the core adds.

A metric holds a few running sums (its accumulators: a sum over samples for the mean metrics;
true/false positives and negatives for Precision, Recall and AUC). `update_state` makes one core
call that returns a batch's accumulators and adds them; `result()` combines the totals. In fit
and evaluate the core adds the same accumulators inside each training or test step, and the
same combination turns an epoch's totals into its logs.

Example:
    >>> m = pynn.metrics.AUC()
    >>> m.update_state([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> float(m.result())
    0.75
"""

from __future__ import annotations

import re

import numpy as np

from . import _core

__all__ = [
    "Metric", "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy",
    "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "MeanAbsoluteError",
    "MeanSquaredError", "RootMeanSquaredError", "Precision", "Recall", "AUC", "Mean", "Sum",
    "get",
]


def _snake(name: str) -> str:
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def _div(a, b):
    """a / b, 0 where b is 0 (Keras's divide_no_nan)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b != 0)


def _as_array(x) -> np.ndarray:
    """NumPy arrays pass through; pynn.Tensors and nested lists become arrays (the core casts)."""
    return x if isinstance(x, np.ndarray) else np.asarray(x)


class Metric:
    """Base class of the metrics: a name, state, `update_state`, `result`, `reset_state`.

    Subclasses backed by the core set `core_name` and combine their accumulators in `_combine`.
    Calling a metric (`m(y_true, y_pred)`) updates it and returns the result, as in Keras.
    """

    core_name = ""

    def __init__(self, name: str | None = None, dtype=None):
        self.name = name or _snake(type(self).__name__)
        self.dtype = dtype or "float32"
        self._size = _core.metric_size(self._spec()) if self.core_name else 0
        Metric.reset_state(self)  # a subclass's own reset may need state its __init__ adds later

    # -- what the core needs --------------------------------------------------------------------
    def _spec(self) -> tuple:
        """(core name, k, threshold, num_thresholds, from_logits): the core's metric spec."""
        return (self.core_name, int(getattr(self, "k", 5)),
                float(getattr(self, "_threshold", 0.5)), int(getattr(self, "num_thresholds", 200)),
                bool(getattr(self, "_from_logits", False)))

    def _combine(self, sums: np.ndarray, count: float) -> float:
        """The metric's value from its accumulators' totals and the samples they cover."""
        return float(sums[0] / count) if count else 0.0

    # -- Keras's interface ----------------------------------------------------------------------
    def reset_state(self) -> None:
        """Sets every accumulator back to 0."""
        self._totals = np.zeros(self._size, np.float64)
        self._count = 0

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        """Adds a batch: y_pred (samples, ..., classes) as NumPy arrays or pynn.Tensors, y_true
        shaped like it (or integer labels, one per row, for the sparse metrics)."""
        if not self.core_name:
            raise NotImplementedError(f"{type(self).__name__} must define update_state")
        mask = getattr(y_pred, "_keras_mask", None)  # a model output on data (masking)
        y_pred = _as_array(y_pred)
        if mask is not None and _core.metric_reads_mask(self._spec()):
            # as Keras's MeanMetricWrapper: the mask weighs each row, so the mean is over
            # the kept rows (each kept row counts as a sample)
            keep = np.asarray(mask) != 0
            if keep.shape != y_pred.shape[:keep.ndim] or keep.ndim >= y_pred.ndim:
                raise ValueError(f"{self.name}: y_pred's mask has shape {keep.shape}, which "
                                 f"does not lead y_pred's {y_pred.shape}")
            if sample_weight is not None:
                w = np.asarray(sample_weight, np.float64).reshape(
                    (-1,) + (1,) * (keep.ndim - 1))
                sample_weight = np.broadcast_to(w, keep.shape)[keep]
            y_true, y_pred = _as_array(y_true)[keep], y_pred[keep]
        if sample_weight is not None and y_pred.ndim:
            self._update_weighted(_as_array(y_true), y_pred, sample_weight)
            return
        self._totals += _core.metric_accumulate(self._spec(), _as_array(y_true), y_pred)
        self._count += y_pred.shape[0] if y_pred.ndim else 1

    def _update_weighted(self, y_true, y_pred, sample_weight) -> None:
        """update_state with one weight per sample, as Keras weighs them: each sample's
        accumulators (its metric value, or its confusion counts) times its weight, and the
        weights summed in place of the sample count."""
        n = y_pred.shape[0]
        w = np.asarray(sample_weight, dtype=np.float64)
        while w.ndim > 1 and w.shape[-1] == 1:
            w = w[..., 0]
        if w.ndim == 0:
            w = np.full(n, float(w))
        if w.shape != (n,):
            raise ValueError(f"{self.name}: sample_weight must hold one weight per sample "
                             f"(shape ({n},) or ({n}, 1)), got shape {np.shape(sample_weight)}")
        spec = self._spec()
        for i in np.flatnonzero(w):
            self._totals += w[i] * _core.metric_accumulate(spec, y_true[i:i + 1],
                                                           y_pred[i:i + 1])
        self._count += float(w.sum())

    def result(self) -> float:
        """The metric's value over everything added since the last reset."""
        if not self.core_name:
            raise NotImplementedError(f"{type(self).__name__} must define result")
        return self._combine(self._totals, self._count)

    def __call__(self, y_true, y_pred, sample_weight=None) -> float:
        self.update_state(y_true, y_pred, sample_weight)
        return self.result()

    @property
    def variables(self) -> list[np.ndarray]:
        """The state: the accumulators (then, for the mean metrics, the sample count)."""
        return [self._totals, np.array(float(self._count))]

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


# ---- mean metrics: a sum over samples, divided by the samples seen --------------------------

class BinaryAccuracy(Metric):
    """How often `y_pred > threshold` equals the 0/1 target (the mean over the last axis).

    Args:
        name, dtype: as every metric.
        threshold: a prediction above it counts as 1 (0.5).
    """

    core_name = "binary_accuracy"

    def __init__(self, name: str = "binary_accuracy", dtype=None, threshold: float = 0.5):
        self.threshold = self._threshold = threshold
        super().__init__(name, dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "threshold": self.threshold}


class CategoricalAccuracy(Metric):
    """How often argmax(y_pred) equals argmax(y_true) (one-hot targets)."""

    core_name = "categorical_accuracy"

    def __init__(self, name: str = "categorical_accuracy", dtype=None):
        super().__init__(name, dtype)


class SparseCategoricalAccuracy(Metric):
    """How often argmax(y_pred) equals the integer label."""

    core_name = "sparse_categorical_accuracy"

    def __init__(self, name: str = "sparse_categorical_accuracy", dtype=None):
        super().__init__(name, dtype)


def _check_k(k, who: str) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{who}: k must be a positive int, got {k!r}")
    return int(k)


class TopKCategoricalAccuracy(Metric):
    """How often the target class (argmax of the one-hot y_true) is among the k largest
    predictions; a prediction tied with the k-th largest counts in.

    Args:
        k: how many of the largest predictions count (5).
    """

    core_name = "top_k_categorical_accuracy"

    def __init__(self, k: int = 5, name: str = "top_k_categorical_accuracy", dtype=None):
        self.k = _check_k(k, type(self).__name__)
        super().__init__(name, dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "k": self.k}


class SparseTopKCategoricalAccuracy(Metric):
    """How often the integer label is among the k largest predictions.

    Args:
        k: how many of the largest predictions count (5).
        from_sorted_ids: Keras's option for predictions given as sorted class ids: not
            supported (False only).
    """

    core_name = "sparse_top_k_categorical_accuracy"

    def __init__(self, k: int = 5, name: str = "sparse_top_k_categorical_accuracy", dtype=None,
                 from_sorted_ids: bool = False):
        if from_sorted_ids:
            raise ValueError("SparseTopKCategoricalAccuracy: from_sorted_ids=True is not "
                             "supported")
        self.k = _check_k(k, type(self).__name__)
        self.from_sorted_ids = False
        super().__init__(name, dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "k": self.k}


class MeanAbsoluteError(Metric):
    """Mean of |y_true - y_pred|."""

    core_name = "mean_absolute_error"

    def __init__(self, name: str = "mean_absolute_error", dtype=None):
        super().__init__(name, dtype)


class MeanSquaredError(Metric):
    """Mean of (y_true - y_pred) ** 2."""

    core_name = "mean_squared_error"

    def __init__(self, name: str = "mean_squared_error", dtype=None):
        super().__init__(name, dtype)


class RootMeanSquaredError(Metric):
    """sqrt of the mean of (y_true - y_pred) ** 2 over everything seen (not a mean of
    per-batch roots)."""

    core_name = "root_mean_squared_error"

    def __init__(self, name: str = "root_mean_squared_error", dtype=None):
        super().__init__(name, dtype)

    def _combine(self, sums, count) -> float:
        return float(np.sqrt(sums[0] / count)) if count else 0.0


# ---- confusion metrics: counts over every element ---------------------------------------------

def _one_threshold(thresholds, who: str) -> float:
    """Keras's `thresholds` argument, limited to one value (None: 0.5)."""
    if thresholds is None:
        return 0.5
    if isinstance(thresholds, (list, tuple, np.ndarray)):
        values = list(np.ravel(thresholds))
        if len(values) != 1:
            raise ValueError(f"{who}: only one threshold is supported, got {thresholds!r}")
        thresholds = values[0]
    if isinstance(thresholds, bool) or not isinstance(thresholds, (int, float, np.number)):
        raise ValueError(f"{who}: thresholds must be a float in [0, 1], got {thresholds!r}")
    if not 0.0 <= float(thresholds) <= 1.0:
        raise ValueError(f"{who}: threshold values must be in [0, 1], got {thresholds!r}")
    return float(thresholds)


class _Confusion(Metric):
    """Precision and Recall: true positives and one other count, at one threshold."""

    _second = ""

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        who = type(self).__name__
        if top_k is not None:
            raise ValueError(f"{who}: top_k is not supported (use top_k=None)")
        if class_id is not None:
            raise ValueError(f"{who}: class_id is not supported (use class_id=None)")
        self.thresholds = thresholds
        self._threshold = _one_threshold(thresholds, who)
        self.top_k, self.class_id = None, None
        super().__init__(name, dtype)

    def _combine(self, sums, count) -> float:
        tp, other = sums[0], sums[1]
        return float(tp / (tp + other)) if tp + other else 0.0

    @property
    def true_positives(self) -> np.ndarray:
        return self._totals[0:1]

    @property
    def variables(self) -> list[np.ndarray]:
        return [self._totals[0:1], self._totals[1:2]]

    def get_config(self) -> dict:
        return {**super().get_config(), "thresholds": self.thresholds, "top_k": None,
                "class_id": None}


class Precision(_Confusion):
    """tp / (tp + fp) over every element: a prediction above the threshold (0.5) is positive, a
    non-zero target is positive; 0 before any positive prediction.

    Args:
        thresholds: one float in [0, 1] (None: 0.5).
        top_k, class_id: Keras's options, not supported (None only).
    """

    core_name = "precision"

    @property
    def false_positives(self) -> np.ndarray:
        return self._totals[1:2]


class Recall(_Confusion):
    """tp / (tp + fn) over every element, a prediction above the threshold (0.5) positive."""

    core_name = "recall"

    @property
    def false_negatives(self) -> np.ndarray:
        return self._totals[1:2]


_CURVES = {"roc": "ROC", "pr": "PR"}
_SUMMATIONS = ("interpolation", "minoring", "majoring")


class AUC(Metric):
    """The area under the ROC (or precision-recall) curve, by Keras's Riemann sum over
    `num_thresholds` evenly spaced thresholds (the end points just outside [0, 1]). Every element
    of y_pred is one prediction (Keras's multi_label=False); predictions are clipped to [0, 1].

    Args:
        num_thresholds: 2..10000 (200).
        curve: 'ROC' or 'PR'.
        summation_method: 'interpolation' (the trapezoid rule for ROC; Davis & Goadrich's
            interpolation for PR), 'minoring' or 'majoring'.
        from_logits: y_pred holds logits (a sigmoid is applied first).
        thresholds, multi_label, num_labels, label_weights: not supported (their defaults only).
    """

    core_name = "auc"

    def __init__(self, num_thresholds: int = 200, curve: str = "ROC",
                 summation_method: str = "interpolation", name: str | None = None, dtype=None,
                 thresholds=None, multi_label: bool = False, num_labels=None,
                 label_weights=None, from_logits: bool = False):
        if thresholds is not None:
            raise ValueError("AUC: explicit thresholds are not supported; use num_thresholds")
        if multi_label or num_labels is not None or label_weights is not None:
            raise ValueError("AUC: multi_label, num_labels and label_weights are not supported")
        if isinstance(num_thresholds, bool) or not isinstance(num_thresholds,
                                                              (int, np.integer)):
            raise ValueError(f"AUC: num_thresholds must be an int, got {num_thresholds!r}")
        if not 2 <= num_thresholds <= 10000:
            raise ValueError("AUC: num_thresholds must be an integer in [2, 10000], got "
                             f"{num_thresholds}")
        if not isinstance(curve, str) or curve.lower() not in _CURVES:
            raise ValueError(f'AUC: invalid curve "{curve}"; expected "ROC" or "PR"')
        if not isinstance(summation_method, str) or summation_method.lower() not in _SUMMATIONS:
            raise ValueError(f'AUC: invalid summation_method "{summation_method}"; expected one '
                             f"of {list(_SUMMATIONS)}")
        self.num_thresholds = int(num_thresholds)
        self.curve = _CURVES[curve.lower()]
        self.summation_method = summation_method.lower()
        self.multi_label, self.num_labels, self.label_weights = False, None, None
        self._from_logits = bool(from_logits)
        super().__init__(name, dtype)

    @property
    def thresholds(self) -> list[float]:
        """The thresholds: -1e-7, 1 / (T - 1), ..., (T - 2) / (T - 1), 1 + 1e-7."""
        t = self.num_thresholds
        return [-1e-7] + [(i + 1) / (t - 1) for i in range(t - 2)] + [1.0 + 1e-7]

    def _parts(self, sums):
        return np.asarray(sums, np.float64).reshape(4, self.num_thresholds)

    @property
    def true_positives(self) -> np.ndarray:
        return self._parts(self._totals)[0]

    @property
    def false_positives(self) -> np.ndarray:
        return self._parts(self._totals)[1]

    @property
    def true_negatives(self) -> np.ndarray:
        return self._parts(self._totals)[2]

    @property
    def false_negatives(self) -> np.ndarray:
        return self._parts(self._totals)[3]

    @property
    def variables(self) -> list[np.ndarray]:
        return list(self._totals.reshape(4, self.num_thresholds))

    def _combine(self, sums, count) -> float:
        tp, fp, tn, fn = self._parts(sums)
        if self.curve == "PR" and self.summation_method == "interpolation":
            # Davis & Goadrich: tp and p = tp + fp linear within each bucket, precision not
            dtp = tp[:-1] - tp[1:]
            p = tp + fp
            slope = _div(dtp, np.maximum(p[:-1] - p[1:], 0))
            intercept = tp[1:] - slope * p[1:]
            both = (p[:-1] > 0) & (p[1:] > 0)
            ratio = np.where(both, _div(p[:-1], np.maximum(p[1:], 0)), 1.0)
            return float(np.sum(_div(slope * (dtp + intercept * np.log(ratio)),
                                     np.maximum(tp[1:] + fn[1:], 0))))
        recall = _div(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _div(fp, fp + tn), recall
        else:
            x, y = recall, _div(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return float(np.sum((x[:-1] - x[1:]) * heights))

    def get_config(self) -> dict:
        return {**super().get_config(), "num_thresholds": self.num_thresholds,
                "curve": self.curve, "summation_method": self.summation_method,
                "multi_label": False, "num_labels": None, "label_weights": None,
                "from_logits": self._from_logits}


# ---- names, as compile and get take them ------------------------------------------------------

_CLASSES = (BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
            TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, MeanAbsoluteError,
            MeanSquaredError, RootMeanSquaredError, Precision, Recall, AUC)
# Keras 3's metrics.get: class names, their snake_case forms, and a few short names
_BY_NAME = {c.__name__: c for c in _CLASSES}
_BY_NAME.update({_snake(c.__name__): c for c in _CLASSES})
_BY_NAME.update({"mse": MeanSquaredError, "MSE": MeanSquaredError,
                 "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError})
_ACCURACY = ("accuracy", "acc")


class Mean(Metric):
    """The running (weighted) mean of the values given to update_state, as Keras's
    keras.metrics.Mean: what a custom train_step tracks its loss with.

    Example:
        >>> m = pynn.metrics.Mean(name="loss")
        >>> m.update_state([1, 3])
        >>> float(m.result())
        2.0
    """

    def __init__(self, name: str | None = None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.reset_state()

    def reset_state(self) -> None:
        self._total, self._weight = 0.0, 0.0

    def update_state(self, values, sample_weight=None) -> None:
        v = np.asarray(values, dtype=np.float64)
        if sample_weight is None:
            self._total += float(v.sum())
            self._weight += float(v.size)
        else:
            w = np.broadcast_to(np.asarray(sample_weight, dtype=np.float64), v.shape)
            self._total += float((v * w).sum())
            self._weight += float(w.sum())

    def result(self) -> float:
        return self._total / self._weight if self._weight else 0.0

    def __call__(self, values, sample_weight=None) -> float:
        self.update_state(values, sample_weight)
        return self.result()

    @property
    def variables(self) -> list[np.ndarray]:
        return [np.array(self._total), np.array(self._weight)]


class Sum(Mean):
    """The running sum of the values given to update_state (keras.metrics.Sum)."""

    def result(self) -> float:
        return self._total


class CompileMetrics(Metric):
    """The metrics given to compile, as one entry of `model.metrics` (Keras 3's
    'compile_metrics'): update_state updates each, result() is a dict of their results."""

    def __init__(self, metrics: list, names: list):
        self.metrics, self._names = list(metrics), list(names)
        super().__init__(name="compile_metrics")

    def reset_state(self) -> None:
        for m in getattr(self, "metrics", []):
            m.reset_state()

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        # compile's `metrics` are unweighted in Keras 3 (only `weighted_metrics`, which pynn
        # lacks, get the sample_weight): a custom train_step passing it gets the same figures
        for m in self.metrics:
            m.update_state(y_true, y_pred)

    def result(self) -> dict:
        return {n: m.result() for n, m in zip(self._names, self.metrics)}


def resolve(identifier, loss_name: str, output_units: int) -> tuple[str, Metric]:
    """(history key, a fresh Metric) for one entry of compile's `metrics`.

    A string keeps its spelling as the key (Keras 3 does); 'accuracy' follows the loss and the
    output: binary for one output unit or a binary cross-entropy, sparse for integer labels,
    categorical otherwise.
    """
    if isinstance(identifier, Metric):
        if not identifier.core_name:
            raise ValueError(f"compile: metric {identifier!r} has no core implementation; "
                             "only pynn's built-in metrics can be used in compile")
        return identifier.name, identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        m = identifier()
        return m.name, m
    if isinstance(identifier, str) and identifier in _ACCURACY:
        if loss_name == "sparse_categorical_crossentropy":
            cls = SparseCategoricalAccuracy
        elif output_units == 1 or loss_name == "binary_crossentropy":
            cls = BinaryAccuracy
        else:
            cls = CategoricalAccuracy
        return identifier, cls(name=identifier)
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return identifier, _BY_NAME[identifier](name=identifier)
    known = sorted(set(_BY_NAME) | set(_ACCURACY), key=str.lower)
    raise ValueError(f"Unknown metric {identifier!r}. Known: {', '.join(known)}, or a "
                     "pynn.metrics.Metric instance")


def get(identifier) -> Metric:
    """A Metric instance for a name ('auc', 'Precision', 'mse'), a class or an instance
    ('accuracy' needs compile's context)."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}")
