"""Accuracy metrics, as Keras 3 defines them: each a mean over samples of a per-sample match
(the function forms give the matches, one per sample or per row). Every class here but
`Accuracy` and SparseTopKCategoricalAccuracy(from_sorted_ids=True) also runs in the core in fit
and evaluate.
"""

from __future__ import annotations

import numpy as np

from .base import _FunctionMetric, as_array, floats, squeeze_or_expand_to_same_rank


def check_k(k, who: str) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{who}: k must be a positive int, got {k!r}")
    return int(k)


def check_number(value, who: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value):
        raise ValueError(f"{who}: {what} must be a finite number, got {value!r}")
    return float(value)


# ---- the functions ----------------------------------------------------------------------------

def accuracy(y_true, y_pred):
    """1.0 where y_true equals y_pred (same shape), else 0.0."""
    y_pred = floats(y_pred)
    y_true, y_pred = squeeze_or_expand_to_same_rank(as_array(y_true, y_pred.dtype), y_pred)
    return (y_true == y_pred).astype(np.float32)


def binary_accuracy(y_true, y_pred, threshold: float = 0.5):
    """1.0 where (y_pred > threshold) equals the target, elementwise."""
    y_pred = floats(y_pred)
    y_true = as_array(y_true)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    positive = (y_pred > np.float32(threshold)).astype(y_true.dtype)
    return (y_true == positive).astype(np.float32)


def categorical_accuracy(y_true, y_pred):
    """1.0 where argmax(y_pred) equals argmax(y_true) (one-hot targets), per row."""
    y_true = np.argmax(as_array(y_true), axis=-1)
    y_pred = floats(y_pred)
    shape = y_true.shape
    reshape = y_true.ndim == y_pred.ndim
    if reshape:
        y_true = y_true[..., 0]
    matches = (y_true == np.argmax(y_pred, axis=-1)).astype(np.float32)
    return matches.reshape(shape) if reshape else matches


def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 where argmax(y_pred) equals the integer label, per row."""
    y_pred = floats(y_pred)
    y_true = as_array(y_true, y_pred.dtype)
    shape = y_true.shape
    reshape = y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1
    if reshape:
        y_true = y_true[..., 0]
    c = y_pred.shape[-1] if y_pred.ndim else 1
    if y_true.size and not (np.nanmin(y_true) >= 0 and np.nanmax(y_true) < c):
        # Keras counts such a label as a miss; the fused step refuses it, and so does this
        bad = y_true[~((y_true >= 0) & (y_true < c))].ravel()[0]
        raise ValueError(f"sparse_categorical_accuracy: label {bad:g} is out of range for "
                         f"{c} classes (valid labels are 0..{c - 1})")
    matches = (y_true == np.argmax(y_pred, axis=-1)).astype(np.float32)
    if reshape:
        matches = matches.reshape(shape)
    if matches.ndim > 1 and matches.shape[-1] == 1:
        matches = matches[..., 0]
    return matches


def _in_top_k(targets, predictions, k: int):
    """Whether each target's prediction has fewer than k predictions above it (ties count in;
    a NaN prediction at the target never does)."""
    if targets.shape[0] != predictions.shape[0]:
        raise ValueError(f"y_true must hold one integer label per row of y_pred "
                         f"({predictions.shape[0]}), got {targets.shape[0]}")
    targets = targets.astype(np.int64)
    c = predictions.shape[-1]
    if targets.size and (targets.min() < 0 or targets.max() >= c):
        bad = targets[(targets < 0) | (targets >= c)][0]
        raise ValueError(f"label {bad} is out of range for {c} classes (valid labels are "
                         f"0..{c - 1})")
    at = np.take_along_axis(predictions, targets[:, None], axis=-1)
    at = np.where(np.isnan(at), -np.inf, at)
    return 1 + np.sum(predictions > at, axis=-1) <= k


def top_k_categorical_accuracy(y_true, y_pred, k: int = 5):
    """1.0 where the target class (argmax of the one-hot y_true) is among the k largest
    predictions (a prediction tied with it counts in), per row."""
    y_pred = floats(y_pred)
    y_true = np.argmax(as_array(y_true), axis=-1)
    shape = y_true.shape
    matches = _in_top_k(y_true.reshape(-1), y_pred.reshape(-1, y_pred.shape[-1]), k)
    return matches.astype(np.float32).reshape(shape)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k: int = 5, from_sorted_ids: bool = False):
    """1.0 where the integer label is among the k largest predictions, per row; with
    from_sorted_ids, y_pred holds class ids sorted by score and the label must be among the
    first k."""
    y_pred = floats(y_pred) if not from_sorted_ids else as_array(y_pred)
    y_true = as_array(y_true)
    shape = y_true.shape
    if from_sorted_ids:
        flat = y_pred.reshape(-1, y_pred.shape[-1]) if y_pred.ndim > 2 else y_pred
        matches = np.any(y_true.reshape(-1)[:, None] == flat[:, :k], axis=1)
    else:
        if y_true.dtype.kind == "f" and not np.array_equal(y_true, np.floor(y_true)):
            raise ValueError("sparse_top_k_categorical_accuracy: labels must be integers")
        matches = _in_top_k(y_true.reshape(-1), y_pred.reshape(-1, y_pred.shape[-1]), k)
    return matches.astype(np.float32).reshape(shape)


# ---- the classes ------------------------------------------------------------------------------

class Accuracy(_FunctionMetric):
    """How often predictions equal the labels exactly.

    Example:
        >>> m = pynn.metrics.Accuracy()
        >>> m.update_state([[1], [2], [3], [4]], [[0], [2], [3], [4]])
        >>> float(m.result())
        0.75
    """

    _fn_default = staticmethod(accuracy)
    _direction = "up"

    def __init__(self, name: str = "accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)


def accuracy_by_shapes(y_true, y_pred):
    """Keras 3's 'accuracy' when no loss fixes its form, chosen from the shapes as Keras's
    compile does: binary for one prediction per sample, sparse for integer labels (of a lower
    rank than the predictions, or a last axis of 1 against several classes), categorical
    otherwise."""
    t = tuple(getattr(y_true, "shape", np.shape(y_true)))
    p = tuple(getattr(y_pred, "shape", np.shape(y_pred)))
    if p[-1:] == (1,):
        return binary_accuracy(y_true, y_pred)
    if len(t) < len(p) or (t[-1:] == (1,) and p[-1:] != (1,)):
        return sparse_categorical_accuracy(y_true, y_pred)
    return categorical_accuracy(y_true, y_pred)


class BinaryAccuracy(_FunctionMetric):
    """How often `y_pred > threshold` equals the 0/1 target.

    Args:
        name, dtype: as every metric.
        threshold: a prediction above it counts as 1 (0.5).
    """

    _fn_default = staticmethod(binary_accuracy)
    _direction = "up"

    def __init__(self, name: str = "binary_accuracy", dtype=None, threshold: float = 0.5):
        self.threshold = check_number(threshold, "BinaryAccuracy", "threshold")
        super().__init__(name=name, dtype=dtype, threshold=self.threshold)
        self.threshold = threshold

    def get_config(self) -> dict:
        return {**super().get_config(), "threshold": self.threshold}

    def _spec(self):
        return ("binary_accuracy", 5, float(self.threshold), 200, False)


class CategoricalAccuracy(_FunctionMetric):
    """How often argmax(y_pred) equals argmax(y_true) (one-hot targets)."""

    _fn_default = staticmethod(categorical_accuracy)
    _direction = "up"

    def __init__(self, name: str = "categorical_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def _spec(self):
        return ("categorical_accuracy",)


class SparseCategoricalAccuracy(_FunctionMetric):
    """How often argmax(y_pred) equals the integer label."""

    _fn_default = staticmethod(sparse_categorical_accuracy)
    _direction = "up"

    def __init__(self, name: str = "sparse_categorical_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def _spec(self):
        return ("sparse_categorical_accuracy",)


class TopKCategoricalAccuracy(_FunctionMetric):
    """How often the target class (argmax of the one-hot y_true) is among the k largest
    predictions; a prediction tied with it counts in.

    Args:
        k: how many of the largest predictions count (5).
    """

    _fn_default = staticmethod(top_k_categorical_accuracy)
    _direction = "up"

    def __init__(self, k: int = 5, name: str = "top_k_categorical_accuracy", dtype=None):
        self.k = check_k(k, "TopKCategoricalAccuracy")
        super().__init__(name=name, dtype=dtype, k=self.k)

    def get_config(self) -> dict:
        return {**super().get_config(), "k": self.k}

    def _spec(self):
        return ("top_k_categorical_accuracy", self.k)


class SparseTopKCategoricalAccuracy(_FunctionMetric):
    """How often the integer label is among the k largest predictions.

    Args:
        k: how many of the largest predictions count (5).
        from_sorted_ids: y_pred holds class ids sorted by score (the label must be among the
            first k), as a top-k retrieval layer gives them.
    """

    _fn_default = staticmethod(sparse_top_k_categorical_accuracy)
    _direction = "up"

    def __init__(self, k: int = 5, name: str = "sparse_top_k_categorical_accuracy", dtype=None,
                 from_sorted_ids: bool = False):
        if not isinstance(from_sorted_ids, (bool, np.bool_)):
            raise ValueError("SparseTopKCategoricalAccuracy: from_sorted_ids must be a bool, "
                             f"got {from_sorted_ids!r}")
        self.k = check_k(k, "SparseTopKCategoricalAccuracy")
        self.from_sorted_ids = bool(from_sorted_ids)
        super().__init__(name=name, dtype=dtype, k=self.k, from_sorted_ids=self.from_sorted_ids)

    def get_config(self) -> dict:
        config = {**super().get_config(), "k": self.k}
        if self.from_sorted_ids:
            config["from_sorted_ids"] = True
        return config

    def _spec(self):
        return None if self.from_sorted_ids else ("sparse_top_k_categorical_accuracy", self.k)
