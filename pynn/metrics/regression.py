"""Regression metrics, as Keras 3 defines them. MeanSquaredError, MeanAbsoluteError and
RootMeanSquaredError also run in the core in fit and evaluate.
"""

from __future__ import annotations

import warnings

import numpy as np

from .base import (
    EPSILON,
    Mean,
    Metric,
    _FunctionMetric,
    as_array,
    floats,
    squeeze_or_expand_to_same_rank,
)


def _pair(y_true, y_pred):
    y_pred = floats(y_pred)
    return squeeze_or_expand_to_same_rank(as_array(y_true, y_pred.dtype), y_pred)


# ---- the functions (one value per row: the mean over the last axis) ---------------------------

def mean_squared_error(y_true, y_pred):
    """mean((y_true - y_pred) ** 2) over the last axis."""
    y_true, y_pred = _pair(y_true, y_pred)
    return np.mean(np.square(y_true - y_pred), axis=-1)


def mean_absolute_error(y_true, y_pred):
    """mean(|y_true - y_pred|) over the last axis."""
    y_true, y_pred = _pair(y_true, y_pred)
    return np.mean(np.abs(y_true - y_pred), axis=-1)


def mean_absolute_percentage_error(y_true, y_pred):
    """100 * mean(|y_true - y_pred| / max(|y_true|, epsilon)) over the last axis."""
    y_true, y_pred = _pair(y_true, y_pred)
    diff = np.abs((y_true - y_pred) / np.maximum(np.abs(y_true), np.float32(EPSILON)))
    return np.float32(100.0) * np.mean(diff, axis=-1)


def mean_squared_logarithmic_error(y_true, y_pred):
    """mean((log(max(y_pred, eps) + 1) - log(max(y_true, eps) + 1)) ** 2) over the last
    axis."""
    y_true, y_pred = _pair(y_true, y_pred)
    eps = np.float32(EPSILON)
    first = np.log(np.maximum(y_pred, eps) + np.float32(1.0))
    second = np.log(np.maximum(y_true, eps) + np.float32(1.0))
    return np.mean(np.square(first - second), axis=-1)


def _l2_normalize(x, axis):
    """x / max(||x||, epsilon) along axis (Keras's ops.normalize)."""
    square_sum = np.sum(np.square(x), axis=axis, keepdims=True)
    with np.errstate(divide="ignore"):
        inv = np.minimum(1.0 / np.sqrt(square_sum), np.float32(1.0 / EPSILON))
    return x * inv.astype(x.dtype)


def cosine_similarity(y_true, y_pred, axis: int = -1):
    """The cosine of the angle between y_true and y_pred along axis (the metric's sign: 1 for
    the same direction)."""
    y_true, y_pred = _pair(y_true, y_pred)
    return np.sum(_l2_normalize(y_true, axis) * _l2_normalize(y_pred, axis), axis=axis)


def log_cosh(y_true, y_pred):
    """mean(log(cosh(y_pred - y_true))) over the last axis, as x + softplus(-2x) - log 2."""
    y_true, y_pred = _pair(y_true, y_pred)
    x = y_pred - y_true
    softplus = np.logaddexp(np.float32(0.0), np.float32(-2.0) * x)
    return np.mean(x + softplus - np.float32(np.log(2.0)), axis=-1)


def huber(y_true, y_pred, delta: float = 1.0):
    """mean over the last axis of 0.5 e^2 where |e| <= delta, else delta |e| - 0.5 delta^2
    (e = y_pred - y_true)."""
    y_true, y_pred = _pair(y_true, y_pred)
    d = np.float32(delta)
    error = y_pred - y_true
    a = np.abs(error)
    half = np.float32(0.5)
    return np.mean(np.where(a <= d, half * np.square(error), d * a - half * np.square(d)),
                   axis=-1)


# ---- the classes ------------------------------------------------------------------------------

class MeanSquaredError(_FunctionMetric):
    """The mean of (y_true - y_pred) ** 2."""

    _fn_default = staticmethod(mean_squared_error)
    _direction = "down"

    def __init__(self, name: str = "mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def _spec(self):
        return ("mean_squared_error",)


class MeanAbsoluteError(_FunctionMetric):
    """The mean of |y_true - y_pred|."""

    _fn_default = staticmethod(mean_absolute_error)
    _direction = "down"

    def __init__(self, name: str = "mean_absolute_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def _spec(self):
        return ("mean_absolute_error",)


class MeanAbsolutePercentageError(_FunctionMetric):
    """The mean of 100 |y_true - y_pred| / max(|y_true|, 1e-7)."""

    _fn_default = staticmethod(mean_absolute_percentage_error)
    _direction = "down"

    def __init__(self, name: str = "mean_absolute_percentage_error", dtype=None):
        super().__init__(name=name, dtype=dtype)


class MeanSquaredLogarithmicError(_FunctionMetric):
    """The mean of (log(y_pred + 1) - log(y_true + 1)) ** 2 (both at least 1e-7)."""

    _fn_default = staticmethod(mean_squared_logarithmic_error)
    _direction = "down"

    def __init__(self, name: str = "mean_squared_logarithmic_error", dtype=None):
        super().__init__(name=name, dtype=dtype)


class CosineSimilarity(_FunctionMetric):
    """The mean cosine similarity between y_true and y_pred along `axis`.

    Args:
        axis: the axis of the vectors (-1).
    """

    _fn_default = staticmethod(cosine_similarity)
    _direction = "up"

    def __init__(self, name: str = "cosine_similarity", dtype=None, axis: int = -1):
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"CosineSimilarity: axis must be an int, got {axis!r}")
        self.axis = int(axis)
        super().__init__(name=name, dtype=dtype, axis=self.axis)


class LogCoshError(_FunctionMetric):
    """The mean of log(cosh(y_pred - y_true))."""

    _fn_default = staticmethod(log_cosh)
    _direction = "down"

    def __init__(self, name: str = "logcosh", dtype=None):
        super().__init__(name=name, dtype=dtype)


class RootMeanSquaredError(Mean):
    """sqrt of the (weighted) mean of (y_true - y_pred) ** 2 over everything seen (not a mean
    of per-batch roots). It reads no mask (a Mean of the squared errors, as in Keras 3)."""

    _direction = "down"

    def __init__(self, name: str = "root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        y_true, y_pred = _pair(y_true, y_pred)
        super().update_state(np.square(y_pred - y_true), sample_weight=sample_weight)

    def result(self) -> float:
        return float(np.sqrt(super().result()))

    def _spec(self):
        return ("root_mean_squared_error",)


_AGGREGATIONS = (None, "uniform_average", "variance_weighted_average")


class R2Score(Metric):
    """The coefficient of determination, 1 - SS_res / SS_tot per output column, over
    everything seen; inputs are (samples, outputs).

    Args:
        class_aggregation: 'uniform_average' (the mean over columns), 'variance_weighted_average'
            (weighted by each column's variance) or None (one score per column).
        num_regressors: the independent variables, for the adjusted R2 (0: plain R2).
    """

    _direction = "up"

    def __init__(self, class_aggregation: str | None = "uniform_average",
                 num_regressors: int = 0, name: str = "r2_score", dtype=None):
        super().__init__(name=name, dtype=dtype)
        if class_aggregation not in _AGGREGATIONS:
            raise ValueError("Invalid value for argument `class_aggregation`. Expected one of "
                             f"{_AGGREGATIONS}. Received: class_aggregation={class_aggregation}")
        if isinstance(num_regressors, bool) or not isinstance(num_regressors, (int, np.integer)) \
                or num_regressors < 0:
            raise ValueError("Invalid value for argument `num_regressors`. Expected an int "
                             f">= 0. Received: num_regressors={num_regressors!r}")
        self.class_aggregation = class_aggregation
        self.num_regressors = int(num_regressors)
        self.num_samples = self._state("num_samples")
        self._built = False

    def _build(self, y_true, y_pred) -> None:
        if y_pred.ndim != 2 or y_true.ndim != 2:
            raise ValueError("R2Score expects 2D inputs with shape (batch_size, output_dim). "
                             f"Received input shapes: y_pred.shape={y_pred.shape} and "
                             f"y_true.shape={y_true.shape}.")
        c = y_pred.shape[-1]
        self.squared_sum = self._state("squared_sum", (c,))
        self.sum = self._state("sum", (c,))
        self.total_mse = self._state("residual", (c,))
        self.count = self._state("count", (c,))
        self._built = True

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        y_true, y_pred = _pair(y_true, y_pred)
        if not self._built:
            self._build(y_true, y_pred)
        if y_true.shape != y_pred.shape or y_pred.shape[-1] != self.sum.shape[0]:
            raise ValueError(f"R2Score: y_true {y_true.shape} and y_pred {y_pred.shape} must "
                             f"both be (samples, {self.sum.shape[0]})")
        w = floats(1.0 if sample_weight is None else sample_weight)
        if w.ndim == 1:
            w = w[:, None]
        try:
            w = np.broadcast_to(w, y_true.shape)
        except ValueError:
            raise ValueError(f"R2Score: sample_weight of shape {np.shape(sample_weight)} does "
                             f"not broadcast to {y_true.shape}") from None
        t, p, w = (a.astype(np.float64) for a in (y_true, y_pred, w))
        wt = t * w
        self.sum.assign_add(wt.sum(axis=0))
        self.squared_sum.assign_add((t * wt).sum(axis=0))
        self.total_mse.assign_add(((t - p) ** 2 * w).sum(axis=0))
        self.count.assign_add(w.sum(axis=0))
        self.num_samples.assign_add(t.size)

    def result(self):
        if not self._built:
            return 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = self.sum / self.count
            total = self.squared_sum - self.sum * mean
            raw = 1.0 - self.total_mse / total
        raw = np.where(np.isinf(raw), 0.0, raw)
        if self.class_aggregation == "uniform_average":
            score = np.mean(raw)
        elif self.class_aggregation == "variance_weighted_average":
            with np.errstate(divide="ignore", invalid="ignore"):
                score = np.sum(total * raw) / np.sum(total)
        else:
            score = raw
        if self.num_regressors != 0:
            n, p = float(self.num_samples), float(self.num_regressors)
            if p > n - 1:
                warnings.warn("More independent predictors than datapoints in adjusted R2 "
                              "score. Falling back to standard R2 score.", stacklevel=2)
            elif p == n - 1:
                warnings.warn("Division by zero in Adjusted R2 score. Falling back to "
                              "standard R2 score.", stacklevel=2)
            else:
                score = 1.0 - (1.0 - score) * (n - 1.0) / (n - p - 1.0)
        a = np.asarray(score)
        return float(a) if a.ndim == 0 else a.astype(np.float32)

    def reset_state(self) -> None:
        super().reset_state()

    def get_config(self) -> dict:
        return {**super().get_config(), "class_aggregation": self.class_aggregation,
                "num_regressors": self.num_regressors}
