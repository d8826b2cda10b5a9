"""Probabilistic and hinge metrics, as Keras 3 defines them: the means of Keras's loss
functions (computed here with NumPy, one value per row), as metrics.
"""

from __future__ import annotations

import warnings

import numpy as np

from .base import (
    EPSILON,
    _FunctionMetric,
    as_array,
    floats,
    squeeze_or_expand_to_same_rank,
    with_mask,
)

_EPS = np.float32(EPSILON)


def _log_sigmoid(x):
    return -np.logaddexp(np.float32(0.0), -x)


def _log_softmax(x, axis):
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def _check_axis(axis, who: str) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"{who}: `axis` must be of type `int`, got {axis!r}")
    return int(axis)


def _check_unit(value, who: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0.0 <= value <= 1.0:
        raise ValueError(f"{who}: {what} must be a number in [0, 1], got {value!r}")
    return value


def _check_bool(value, who: str, what: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{who}: {what} must be a bool, got {value!r}")
    return bool(value)


# ---- the functions ----------------------------------------------------------------------------

def _bce(t, p, from_logits: bool):
    """Elementwise binary cross-entropy (probabilities clipped to [eps, 1 - eps])."""
    if from_logits:
        return -t * _log_sigmoid(p) - (1.0 - t) * _log_sigmoid(-p)
    p = np.clip(p, _EPS, np.float32(1.0) - _EPS)
    return -(t * np.log(p) + (1.0 - t) * np.log(1.0 - p))


def binary_crossentropy(y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0,
                        axis: int = -1):
    """The mean over `axis` of -(t log p + (1 - t) log(1 - p)); label_smoothing moves the
    targets towards 0.5."""
    y_pred = floats(y_pred)
    y_true, y_pred = squeeze_or_expand_to_same_rank(as_array(y_true, y_pred.dtype), y_pred)
    if label_smoothing:
        y_true = y_true * np.float32(1.0 - label_smoothing) + np.float32(0.5 * label_smoothing)
    return np.mean(_bce(y_true, y_pred, from_logits), axis=axis)


def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing: bool = False,
                              alpha: float = 0.25, gamma: float = 2.0, from_logits: bool = False,
                              label_smoothing: float = 0.0, axis: int = -1):
    """Binary cross-entropy times (1 - p_t) ** gamma (and, with class balancing, alpha for
    positives, 1 - alpha for negatives), its mean over `axis`."""
    y_pred = floats(y_pred)
    y_true, y_pred = squeeze_or_expand_to_same_rank(as_array(y_true, y_pred.dtype), y_pred)
    if label_smoothing:
        y_true = y_true * np.float32(1.0 - label_smoothing) + np.float32(0.5 * label_smoothing)
    if from_logits:
        y_pred = 1.0 / (1.0 + np.exp(-y_pred))
    bce = _bce(y_true, y_pred, False)
    p_t = y_true * y_pred + (1 - y_true) * (1 - y_pred)
    focal = np.power(1.0 - p_t, np.float32(gamma)) * bce
    if apply_class_balancing:
        focal = (y_true * np.float32(alpha) + (1 - y_true) * np.float32(1 - alpha)) * focal
    return np.mean(focal, axis=axis)


def _smooth_categorical(y_true, label_smoothing):
    if label_smoothing:
        c = np.float32(y_true.shape[-1])
        y_true = y_true * np.float32(1.0 - label_smoothing) + np.float32(label_smoothing) / c
    return y_true


def _warn_one_class(y_pred, who: str) -> None:
    if y_pred.ndim and y_pred.shape[-1] == 1:
        warnings.warn(f"In loss {who}, expected y_pred.shape to be (batch_size, num_classes) "
                      f"with num_classes > 1. Received: y_pred.shape={y_pred.shape}. Consider "
                      "using 'binary_crossentropy' if you only have 2 classes.", SyntaxWarning,
                      stacklevel=3)


def _log_probs(y_pred, from_logits: bool, axis: int):
    if from_logits:
        return _log_softmax(y_pred, axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = y_pred / np.sum(y_pred, axis=axis, keepdims=True)
    return np.log(np.clip(out, _EPS, np.float32(1.0) - _EPS))


def categorical_crossentropy(y_true, y_pred, from_logits: bool = False,
                             label_smoothing: float = 0.0, axis: int = -1):
    """-sum(y_true log p) over `axis`, p the predictions normalised to sum to 1 and clipped to
    [eps, 1 - eps] (or the softmax of logits)."""
    _check_axis(axis, "categorical_crossentropy")
    y_pred = floats(y_pred)
    y_true = as_array(y_true, y_pred.dtype)
    _warn_one_class(y_pred, "categorical_crossentropy")
    if y_true.shape != y_pred.shape:
        raise ValueError("Arguments `target` and `output` must have the same shape. Received: "
                         f"target.shape={y_true.shape}, output.shape={y_pred.shape}")
    y_true = _smooth_categorical(y_true, label_smoothing)
    return -np.sum(y_true * _log_probs(y_pred, from_logits, axis), axis=axis)


def categorical_focal_crossentropy(y_true, y_pred, alpha: float = 0.25, gamma: float = 2.0,
                                   from_logits: bool = False, label_smoothing: float = 0.0,
                                   axis: int = -1):
    """sum over `axis` of alpha (1 - p) ** gamma * (-y_true log p)."""
    _check_axis(axis, "categorical_focal_crossentropy")
    y_pred = floats(y_pred)
    y_true = as_array(y_true, y_pred.dtype)
    _warn_one_class(y_pred, "categorical_focal_crossentropy")
    y_true = _smooth_categorical(y_true, label_smoothing)
    if from_logits:
        y_pred = np.exp(_log_softmax(y_pred, axis))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = y_pred / np.sum(y_pred, axis=axis, keepdims=True)
    out = np.clip(out, _EPS, np.float32(1.0) - _EPS)
    cce = -y_true * np.log(out)
    focal = np.power(1.0 - out, np.float32(gamma)) * np.float32(alpha) * cce
    return np.sum(focal, axis=axis)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits: bool = False, ignore_class=None,
                                    axis: int = -1):
    """-log p[label] per row (0 for a label out of range); with ignore_class, rows of that label
    give 0 and carry a mask that leaves them out of a weighted mean."""
    _check_axis(axis, "sparse_categorical_crossentropy")
    y_pred = floats(y_pred)
    y_true = as_array(y_true)
    if y_true.ndim == y_pred.ndim and y_true.shape[axis] == 1:
        y_true = np.squeeze(y_true, axis=axis)
    pred = np.moveaxis(y_pred, axis, -1)
    if y_true.shape != pred.shape[:-1]:
        raise ValueError("Arguments `target` and `output` must have the same shape up until the "
                         f"last dimension: target.shape={y_true.shape}, "
                         f"output.shape={y_pred.shape}")
    valid = None
    if ignore_class is not None:
        valid = y_true != ignore_class
        y_true = np.where(valid, y_true, 0)
        pred = np.where(valid[..., None], pred, np.float32(0.0))
    labels = y_true.astype(np.int64)
    c = pred.shape[-1]
    in_range = (labels >= 0) & (labels < c)
    logp = _log_probs(pred, from_logits, -1)
    picked = np.take_along_axis(logp, np.clip(labels, 0, c - 1)[..., None], axis=-1)[..., 0]
    res = np.where(in_range, -picked, np.float32(0.0)).astype(np.float32)
    if valid is not None:
        res = with_mask(np.where(valid, res, np.float32(0.0)), valid)
    return res


def kl_divergence(y_true, y_pred):
    """sum over the last axis of t log(t / p), both clipped to [eps, 1]."""
    y_pred = floats(y_pred)
    y_true = np.clip(as_array(y_true, y_pred.dtype), _EPS, np.float32(1.0))
    y_pred = np.clip(y_pred, _EPS, np.float32(1.0))
    return np.sum(y_true * np.log(y_true / y_pred), axis=-1)


def poisson(y_true, y_pred):
    """mean over the last axis of p - t log(p + eps)."""
    y_pred = floats(y_pred)
    y_true = as_array(y_true, y_pred.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.mean(y_pred - y_true * np.log(y_pred + _EPS), axis=-1)


def _hinge_labels(y_true):
    """0/1 labels become -1/1; others are kept."""
    if np.all((y_true == 0) | (y_true == 1)):
        return 2.0 * y_true - 1.0
    return y_true


def hinge(y_true, y_pred):
    """mean over the last axis of max(1 - t p, 0), 0/1 targets read as -1/1."""
    y_pred = floats(y_pred)
    y_true = _hinge_labels(as_array(y_true, y_pred.dtype))
    return np.mean(np.maximum(1.0 - y_true * y_pred, 0.0), axis=-1)


def squared_hinge(y_true, y_pred):
    """mean over the last axis of max(1 - t p, 0) ** 2, 0/1 targets read as -1/1."""
    y_pred = floats(y_pred)
    y_true = _hinge_labels(as_array(y_true, y_pred.dtype))
    return np.mean(np.square(np.maximum(1.0 - y_true * y_pred, 0.0)), axis=-1)


def categorical_hinge(y_true, y_pred):
    """max(max((1 - t) p) - sum(t p) + 1, 0) over the last axis (one-hot targets)."""
    y_pred = floats(y_pred)
    y_true = as_array(y_true, y_pred.dtype)
    pos = np.sum(y_true * y_pred, axis=-1)
    neg = np.max((1.0 - y_true) * y_pred, axis=-1)
    return np.maximum(neg - pos + 1.0, np.float32(0.0))


# ---- the classes ------------------------------------------------------------------------------

class KLDivergence(_FunctionMetric):
    """The mean Kullback-Leibler divergence sum(t log(t / p)) between y_true and y_pred."""

    _fn_default = staticmethod(kl_divergence)

    def __init__(self, name: str = "kl_divergence", dtype=None):
        super().__init__(name=name, dtype=dtype)


class Poisson(_FunctionMetric):
    """The mean Poisson deviance p - t log(p)."""

    _fn_default = staticmethod(poisson)

    def __init__(self, name: str = "poisson", dtype=None):
        super().__init__(name=name, dtype=dtype)


class BinaryCrossentropy(_FunctionMetric):
    """The mean binary cross-entropy between the 0/1 labels and the predictions.

    Args:
        from_logits: y_pred holds logits.
        label_smoothing: in [0, 1]: the labels move towards 0.5 by this much.
    """

    _fn_default = staticmethod(binary_crossentropy)
    _direction = "down"

    def __init__(self, name: str = "binary_crossentropy", dtype=None, from_logits: bool = False,
                 label_smoothing: float = 0):
        self.from_logits = _check_bool(from_logits, "BinaryCrossentropy", "from_logits")
        self.label_smoothing = _check_unit(label_smoothing, "BinaryCrossentropy",
                                           "label_smoothing")
        super().__init__(name=name, dtype=dtype, from_logits=self.from_logits,
                         label_smoothing=float(label_smoothing))

    def get_config(self) -> dict:
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing}


class CategoricalCrossentropy(_FunctionMetric):
    """The mean categorical cross-entropy between one-hot labels and the predictions.

    Args:
        from_logits: y_pred holds logits.
        label_smoothing: in [0, 1]: the labels move towards 1 / classes by this much.
        axis: the class axis (-1).
    """

    _fn_default = staticmethod(categorical_crossentropy)
    _direction = "down"

    def __init__(self, name: str = "categorical_crossentropy", dtype=None,
                 from_logits: bool = False, label_smoothing: float = 0, axis: int = -1):
        self.from_logits = _check_bool(from_logits, "CategoricalCrossentropy", "from_logits")
        self.label_smoothing = _check_unit(label_smoothing, "CategoricalCrossentropy",
                                           "label_smoothing")
        self.axis = _check_axis(axis, "CategoricalCrossentropy")
        super().__init__(name=name, dtype=dtype, from_logits=self.from_logits,
                         label_smoothing=float(label_smoothing), axis=self.axis)

    def get_config(self) -> dict:
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


class SparseCategoricalCrossentropy(_FunctionMetric):
    """The mean cross-entropy between integer labels and the predictions.

    Args:
        from_logits: y_pred holds logits.
        ignore_class: a label whose rows give 0 (and, with sample weights or a mask, are left
            out of the mean).
        axis: the class axis (-1).
    """

    _fn_default = staticmethod(sparse_categorical_crossentropy)
    _direction = "down"

    def __init__(self, name: str = "sparse_categorical_crossentropy", dtype=None,
                 from_logits: bool = False, ignore_class=None, axis: int = -1):
        self.from_logits = _check_bool(from_logits, "SparseCategoricalCrossentropy",
                                       "from_logits")
        if ignore_class is not None and (isinstance(ignore_class, bool) or not isinstance(
                ignore_class, (int, np.integer))):
            raise ValueError("SparseCategoricalCrossentropy: ignore_class must be None or an "
                             f"int, got {ignore_class!r}")
        self.ignore_class = ignore_class
        self.axis = _check_axis(axis, "SparseCategoricalCrossentropy")
        super().__init__(name=name, dtype=dtype, from_logits=self.from_logits,
                         ignore_class=ignore_class, axis=self.axis)

    def get_config(self) -> dict:
        return {**super().get_config(), "from_logits": self.from_logits,
                "ignore_class": self.ignore_class, "axis": self.axis}


class Hinge(_FunctionMetric):
    """The mean hinge loss max(1 - t p, 0) (0/1 labels read as -1/1)."""

    _fn_default = staticmethod(hinge)
    _direction = "down"

    def __init__(self, name: str = "hinge", dtype=None):
        super().__init__(name=name, dtype=dtype)


class SquaredHinge(_FunctionMetric):
    """The mean squared hinge loss max(1 - t p, 0) ** 2."""

    _fn_default = staticmethod(squared_hinge)
    _direction = "down"

    def __init__(self, name: str = "squared_hinge", dtype=None):
        super().__init__(name=name, dtype=dtype)


class CategoricalHinge(_FunctionMetric):
    """The mean categorical hinge loss max(max((1 - t) p) - sum(t p) + 1, 0)."""

    _fn_default = staticmethod(categorical_hinge)
    _direction = "down"

    def __init__(self, name: str = "categorical_hinge", dtype=None):
        super().__init__(name=name, dtype=dtype)
