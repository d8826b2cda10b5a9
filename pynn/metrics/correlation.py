"""Correlation metrics, as Keras 3 defines them: the mean over samples of a per-sample
correlation along `axis`.
"""

from __future__ import annotations

import numpy as np

from .base import EPSILON, _FunctionMetric, as_array, floats, squeeze_or_expand_to_same_rank


def _pair(y_true, y_pred):
    y_pred = floats(y_pred)
    return squeeze_or_expand_to_same_rank(as_array(y_true, y_pred.dtype), y_pred)


def pearson_correlation(y_true, y_pred, axis: int = -1):
    """Pearson's correlation of y_true and y_pred along axis."""
    y_true, y_pred = _pair(y_true, y_pred)
    t = y_true - np.mean(y_true, axis=axis, keepdims=True)
    p = y_pred - np.mean(y_pred, axis=axis, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = t / np.std(t, axis=axis, keepdims=True)
        p = p / np.std(p, axis=axis, keepdims=True)
    return np.mean(t * p, axis=axis)


def concordance_correlation(y_true, y_pred, axis: int = -1):
    """Lin's concordance correlation of y_true and y_pred along axis, as Keras 3 computes it
    (its covariance term centres y_true on y_pred's mean)."""
    y_true, y_pred = _pair(y_true, y_pred)
    t_mean = np.mean(y_true, axis=axis, keepdims=True)
    p_mean = np.mean(y_pred, axis=axis, keepdims=True)
    t_var = np.var(y_true - t_mean, axis=axis, keepdims=True)
    p_var = np.var(y_pred - p_mean, axis=axis, keepdims=True)
    covar = (y_true - p_mean) * (y_pred - p_mean)
    norm = t_var + p_var + np.square(t_mean - p_mean)
    return np.mean(2 * covar / (norm + np.float32(EPSILON)), axis=axis)


def _check_axis(axis, who: str) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"{who}: axis must be an int, got {axis!r}")
    return int(axis)


class PearsonCorrelation(_FunctionMetric):
    """The mean Pearson correlation between y_true and y_pred along `axis`.

    Args:
        axis: the axis to correlate along (-1).
    """

    _fn_default = staticmethod(pearson_correlation)
    _direction = "up"

    def __init__(self, name: str = "pearson_correlation", dtype=None, axis: int = -1):
        self.axis = _check_axis(axis, "PearsonCorrelation")
        super().__init__(name=name, dtype=dtype, axis=self.axis)

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis}


class ConcordanceCorrelation(_FunctionMetric):
    """The mean concordance correlation between y_true and y_pred along `axis`.

    Args:
        axis: the axis to correlate along (-1).
    """

    _fn_default = staticmethod(concordance_correlation)
    _direction = "up"

    def __init__(self, name: str = "concordance_correlation", dtype=None, axis: int = -1):
        self.axis = _check_axis(axis, "ConcordanceCorrelation")
        super().__init__(name=name, dtype=dtype, axis=self.axis)

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis}
