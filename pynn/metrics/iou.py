"""Intersection-over-union metrics, as Keras 3 defines them: a confusion matrix of
(true class, predicted class) counts over every element, and the IoU of the chosen classes,
tp / (tp + fp + fn), averaged over those that occur.

Keras keeps the matrix in the metric's dtype, 'int32' by default: weights are truncated to
integers there (pass dtype='float32' to count fractional sample weights).
"""

from __future__ import annotations

import warnings

import numpy as np

from .base import EPSILON, Metric, as_array, floats

_MAX_CLASSES = 1 << 14  # a bound Keras lacks: the matrix has num_classes ** 2 counts


def _int(value, who: str, what: str, low: int = 0, high: int = 2**31 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
            or not low <= value <= high:
        raise ValueError(f"{who}: {what} must be an int in [{low}, {high}], got {value!r}")
    return int(value)


class _IoUBase(Metric):
    """The confusion matrix; subclasses compute the IoU from it."""

    _direction = "up"

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None,
                 sparse_y_true: bool = True, sparse_y_pred: bool = True, axis: int = -1):
        who = type(self).__name__
        super().__init__(name=name, dtype=dtype or "int32")
        self.num_classes = _int(num_classes, who, "num_classes", 1, _MAX_CLASSES)
        if ignore_class is not None:
            ignore_class = _int(ignore_class, who, "ignore_class", -2 ** 31)
        self.ignore_class = ignore_class
        for what, v in (("sparse_y_true", sparse_y_true), ("sparse_y_pred", sparse_y_pred)):
            if not isinstance(v, (bool, np.bool_)):
                raise ValueError(f"{who}: {what} must be a bool, got {v!r}")
        self.sparse_y_true = bool(sparse_y_true)
        self.sparse_y_pred = bool(sparse_y_pred)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"{who}: axis must be an int, got {axis!r}")
        self.axis = int(axis)
        self.total_cm = self.add_variable((self.num_classes, self.num_classes), None,
                                          self._dtype, name="total_confusion_matrix")

    def _as_dtype(self, x):
        """x cast to the metric's dtype (truncated for an int one, as Keras casts)."""
        a = as_array(x)
        if np.dtype(self.total_cm.dtype).kind in "iu" and a.dtype.kind == "f":
            a = np.trunc(np.nan_to_num(a))
        return a.astype(self.total_cm.dtype)

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        if not self.sparse_y_true:
            y_true = np.argmax(as_array(y_true), axis=self.axis)
        if not self.sparse_y_pred:
            y_pred = np.argmax(as_array(y_pred), axis=self.axis)
        y_true = self._as_dtype(y_true).reshape(-1)
        y_pred = self._as_dtype(y_pred).reshape(-1)
        if y_true.shape != y_pred.shape:
            raise ValueError(f"{type(self).__name__}: y_true and y_pred hold {y_true.size} and "
                             f"{y_pred.size} labels; they must hold as many")
        if sample_weight is None:
            weight = np.ones(y_true.shape, self.total_cm.dtype)
        else:
            sw = as_array(sample_weight)
            if sw.dtype.kind == "f" and np.dtype(self.total_cm.dtype).kind in "iu":
                warnings.warn("You are passing weight as `float`, but dtype is `int`. This may "
                              "result in an incorrect weight due to type casting Consider "
                              "using integer weights.", stacklevel=2)
            sw = self._as_dtype(sw)
            if sw.ndim > 1:
                sw = sw.reshape(-1)
            try:
                weight = np.broadcast_to(sw, y_true.shape)
            except ValueError:
                raise ValueError(f"{type(self).__name__}: sample_weight of shape "
                                 f"{np.shape(sample_weight)} does not broadcast to the "
                                 f"{y_true.size} labels") from None
        n = self.num_classes
        keep = (y_true >= 0) & (y_true < n) & (y_pred >= 0) & (y_pred < n)
        if self.ignore_class is not None:
            keep &= y_true != self.ignore_class
        cells = (np.where(keep, y_true, 0).astype(np.int64) * n
                 + np.where(keep, y_pred, 0).astype(np.int64))
        counts = np.bincount(cells, np.where(keep, weight, 0).astype(np.float64),
                             minlength=n * n)
        self.total_cm.assign_add(counts.reshape(n, n).astype(self.total_cm.dtype))

    def reset_state(self) -> None:
        self.total_cm.assign(np.zeros(self.total_cm.shape, self.total_cm.dtype))


class IoU(_IoUBase):
    """The mean IoU of the classes in target_class_ids: tp / (tp + fp + fn) each, over the
    classes whose denominator is not 0.

    Args:
        num_classes: the classes (labels 0..num_classes - 1).
        target_class_ids: the classes to average over.
        ignore_class: a label left out of the counts.
        sparse_y_true, sparse_y_pred: False for one-hot (or score) arrays, read by their
            argmax over `axis`.
        axis: the class axis of non-sparse inputs (-1).
    """

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None,
                 sparse_y_true: bool = True, sparse_y_pred: bool = True, axis: int = -1):
        super().__init__(num_classes=num_classes, name=name, dtype=dtype,
                         ignore_class=ignore_class, sparse_y_true=sparse_y_true,
                         sparse_y_pred=sparse_y_pred, axis=axis)
        ids = list(target_class_ids) if isinstance(target_class_ids, (list, tuple, range,
                                                                      np.ndarray)) else None
        if not ids or any(isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < 0
                          for i in ids):
            raise ValueError(f"{type(self).__name__}: target_class_ids must be a non-empty list "
                             f"of class ids, got {target_class_ids!r}")
        if max(ids) >= self.num_classes:
            raise ValueError(f"Target class id {max(ids)} is out of range, which is "
                             f"[0, {self.num_classes}).")
        self.target_class_ids = [int(i) for i in ids]

    def result(self) -> float:
        cm = self.total_cm.astype(np.float64)
        tp = np.diag(cm)
        denominator = cm.sum(axis=0) + cm.sum(axis=1) - tp
        ids = self.target_class_ids
        tp, denominator = tp[ids].astype(np.float32), denominator[ids].astype(np.float32)
        valid = denominator > 1e-9
        iou = np.where(valid, tp / (denominator + np.float32(EPSILON)), 0.0)
        return float(np.sum(iou) / (np.sum(valid, dtype=np.float32) + np.float32(EPSILON)))

    def get_config(self) -> dict:
        return {**super().get_config(), "num_classes": self.num_classes,
                "target_class_ids": self.target_class_ids, "ignore_class": self.ignore_class,
                "sparse_y_true": self.sparse_y_true, "sparse_y_pred": self.sparse_y_pred,
                "axis": self.axis}


class BinaryIoU(IoU):
    """IoU for binary targets: a prediction at or above `threshold` is class 1.

    Args:
        target_class_ids: the classes to average over ((0, 1)).
        threshold: the decision threshold (0.5).
    """

    def __init__(self, target_class_ids=(0, 1), threshold: float = 0.5, name=None, dtype=None):
        super().__init__(num_classes=2, target_class_ids=target_class_ids, name=name,
                         dtype=dtype)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer,
                                                                     np.floating)):
            raise ValueError(f"BinaryIoU: threshold must be a number, got {threshold!r}")
        self.threshold = threshold

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        positive = floats(y_pred) >= np.float32(self.threshold)
        super().update_state(y_true, positive.astype(self.total_cm.dtype), sample_weight)

    def get_config(self) -> dict:
        return {"target_class_ids": self.target_class_ids, "threshold": self.threshold,
                "name": self.name, "dtype": self._dtype}


class MeanIoU(IoU):
    """The IoU averaged over every class.

    Args:
        num_classes, ignore_class, sparse_y_true, sparse_y_pred, axis: as IoU's.
    """

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None,
                 sparse_y_true: bool = True, sparse_y_pred: bool = True, axis: int = -1):
        n = _int(num_classes, type(self).__name__, "num_classes", 1, _MAX_CLASSES)
        super().__init__(num_classes=n, target_class_ids=list(range(n)), name=name,
                         dtype=dtype, ignore_class=ignore_class, sparse_y_true=sparse_y_true,
                         sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self) -> dict:
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self._dtype,
                "ignore_class": self.ignore_class, "sparse_y_true": self.sparse_y_true,
                "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


class OneHotIoU(IoU):
    """IoU with one-hot y_true (and scores or one-hot y_pred, unless sparse_y_pred)."""

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None,
                 sparse_y_pred: bool = False, axis: int = -1):
        super().__init__(num_classes=num_classes, target_class_ids=target_class_ids, name=name,
                         dtype=dtype, ignore_class=ignore_class, sparse_y_true=False,
                         sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self) -> dict:
        return {"num_classes": self.num_classes, "target_class_ids": self.target_class_ids,
                "name": self.name, "dtype": self._dtype, "ignore_class": self.ignore_class,
                "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


class OneHotMeanIoU(MeanIoU):
    """MeanIoU with one-hot y_true (and scores or one-hot y_pred, unless sparse_y_pred)."""

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None,
                 sparse_y_pred: bool = False, axis: int = -1):
        super().__init__(num_classes=num_classes, name=name, dtype=dtype,
                         ignore_class=ignore_class, sparse_y_true=False,
                         sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self) -> dict:
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self._dtype,
                "ignore_class": self.ignore_class, "sparse_y_pred": self.sparse_y_pred,
                "axis": self.axis}
