"""Confusion-matrix metrics, as Keras 3 defines them: counts of true/false positives and
negatives at one or more thresholds, and what follows from them (precision, recall, the
sensitivity/specificity trade-offs, the area under a curve).

A prediction counts as positive at threshold t when it is above t; a target is positive when it
is non-zero. Every element of y_pred is one prediction (class_id picks one column, top_k keeps
each row's k largest); AUC with multi_label counts each column apart. Sample weights broadcast
to y_pred, as Keras broadcasts them. Thresholds spread evenly over [0, 1] (AUC's, and the
*At* metrics') are counted as Keras counts them: each prediction, clipped to [0, 1], falls in
bucket ceil(p (T - 1)) - 1, and the counts are suffix sums over the buckets.

Precision, Recall, TruePositives, FalsePositives and FalseNegatives at one threshold, and AUC
over evenly spread thresholds without multi_label or label_weights, also run in the core in fit
and evaluate.
"""

from __future__ import annotations

import numpy as np

from .base import EPSILON, Metric, div_no_nan, floats, result_value, squeeze_or_expand_to_same_rank

NEG_INF = -1e10
_CORE_MAX_THRESHOLDS = 10000  # the core's PN_MAX_THRESHOLDS
_MAX_THRESHOLDS = 1 << 20     # a bound Keras lacks: a saved file cannot ask for 2**63 of them
_MAX_COUNTS = 1 << 27         # thresholds x labels


# ---- arguments --------------------------------------------------------------------------------

def _number(value, who: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value):
        raise ValueError(f"{who}: {what} must be a finite number, got {value!r}")
    return float(value)


def parse_init_thresholds(thresholds, who: str, default: float = 0.5) -> list[float]:
    """Keras's: None (the default), a float in [0, 1], or a list of them."""
    if thresholds is None:
        return [default]
    values = list(thresholds) if isinstance(thresholds, (list, tuple, np.ndarray)) \
        else [thresholds]
    if not values:
        raise ValueError(f"{who}: thresholds must not be empty")
    out = [_number(t, who, "each threshold") for t in values]
    bad = [t for t in out if not 0.0 <= t <= 1.0]
    if bad:
        raise ValueError(f"{who}: threshold values must be in [0, 1]. Received: {bad}")
    return out


def is_evenly_distributed_thresholds(thresholds) -> bool:
    t = np.asarray(thresholds, np.float64)
    if t.size < 3:
        return False
    even = np.arange(t.size, dtype=np.float32) / (t.size - 1)
    return bool(np.allclose(t, even, atol=EPSILON))


def _class_id(class_id, who: str):
    if class_id is not None and (isinstance(class_id, bool)
                                 or not isinstance(class_id, (int, np.integer)) or class_id < 0):
        raise ValueError(f"{who}: class_id must be None or a non-negative int, got {class_id!r}")
    return None if class_id is None else int(class_id)


def _top_k(top_k, who: str):
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer))
                              or top_k < 1):
        raise ValueError(f"{who}: top_k must be None or a positive int, got {top_k!r}")
    return None if top_k is None else int(top_k)


# ---- counting ---------------------------------------------------------------------------------

def _filter_top_k(x, k: int):
    """x where it is among its row's k largest (the lower index first on ties), NEG_INF
    elsewhere."""
    k = min(k, x.shape[-1])
    idx = np.argsort(-x, axis=-1, kind="stable")[..., :k]
    keep = np.zeros(x.shape, bool)
    np.put_along_axis(keep, idx, True, axis=-1)
    return np.where(keep, x, np.float32(NEG_INF)).astype(np.float32)


def _counts_sorted(pred, label, weight, thresholds):
    """For each threshold t: the weights of positives and of negatives with pred > t (pred,
    label, weight: 1-D; NaN predictions are never above a threshold)."""
    keep = ~np.isnan(pred)
    order = np.argsort(pred[keep], kind="stable")
    p = pred[keep][order]
    pos = np.where(label, weight, 0.0)[keep][order]
    neg = np.where(label, 0.0, weight)[keep][order]
    suffix_pos = np.concatenate([np.cumsum(pos[::-1])[::-1], [0.0]])
    suffix_neg = np.concatenate([np.cumsum(neg[::-1])[::-1], [0.0]])
    at = np.searchsorted(p, np.asarray(thresholds, np.float32), side="right")
    return suffix_pos[at], suffix_neg[at]


def _counts_buckets(pred, label, weight, n_thresholds: int, with_epsilon: bool):
    """The same for evenly spread thresholds, bucketed as Keras buckets them (pred clipped to
    [0, 1], bucket ceil(p (T - 1)) - 1; below 0 dropped, or bucket 0 when the end thresholds
    lie just outside [0, 1])."""
    t = n_thresholds
    q = np.clip(pred, np.float32(0.0), np.float32(1.0))
    b = np.ceil(q * np.float32(t - 1)) - np.float32(1.0)
    if with_epsilon:
        b = np.maximum(b, np.float32(0.0))
    b = np.where(np.isnan(b), 0, b).astype(np.int64)
    inside = b >= 0
    pos = np.bincount(b[inside], np.where(label, weight, 0.0)[inside], minlength=t)[:t]
    neg = np.bincount(b[inside], np.where(label, 0.0, weight)[inside], minlength=t)[:t]
    return np.cumsum(pos[::-1])[::-1], np.cumsum(neg[::-1])[::-1]


def update_confusion_matrix_variables(variables: dict, y_true, y_pred, thresholds, top_k=None,
                                      class_id=None, sample_weight=None,
                                      multi_label: bool = False, label_weights=None,
                                      thresholds_distributed_evenly: bool = False) -> None:
    """Adds the batch's weighted tp/fp/tn/fn at each threshold to the variables given
    (keys 'tp', 'fp', 'tn', 'fn'), as Keras's function of that name."""
    y_true, y_pred = floats(y_true), floats(y_pred)
    thresholds = np.asarray(thresholds, np.float64)
    with_epsilon = bool(thresholds[0] < 0.0 or thresholds[-1] > 1.0)
    y_pred, y_true = squeeze_or_expand_to_same_rank(y_pred, y_true)
    if y_pred.shape != y_true.shape:
        raise ValueError(f"y_true of shape {y_true.shape} and y_pred of shape {y_pred.shape} "
                         "must have the same shape")
    if sample_weight is not None:
        sample_weight = floats(sample_weight)[..., None]
        _, sample_weight = squeeze_or_expand_to_same_rank(y_true, sample_weight,
                                                          expand_rank_1=False)
    if top_k is not None:
        y_pred = _filter_top_k(y_pred, top_k)
    if class_id is not None:
        if y_pred.ndim == 1:
            raise ValueError("When class_id is provided, y_pred must be a 2D array with shape "
                             f"(num_samples, num_classes), found shape: {y_pred.shape}")
        if class_id >= y_pred.shape[-1]:
            raise ValueError(f"class_id {class_id} is out of range for y_pred of shape "
                             f"{y_pred.shape}")
        y_true, y_pred = y_true[..., class_id, None], y_pred[..., class_id, None]
    weight = np.ones(y_pred.shape, np.float64)
    if sample_weight is not None:
        try:
            weight = weight * np.broadcast_to(sample_weight, y_pred.shape)
        except ValueError:
            raise ValueError(f"sample_weight of shape {sample_weight.shape} does not broadcast "
                             f"to y_pred's shape {y_pred.shape}") from None
    if label_weights is not None:
        weight = weight * np.broadcast_to(np.asarray(label_weights, np.float64), y_pred.shape)
    label = y_true != 0
    t = thresholds.shape[0]
    if multi_label:
        columns = y_pred.reshape(y_pred.shape[0], -1) if y_pred.ndim > 1 else y_pred[:, None]
        labels = label.reshape(columns.shape)
        weights = weight.reshape(columns.shape)
        tp, fp = np.zeros((t, columns.shape[1])), np.zeros((t, columns.shape[1]))
        for j in range(columns.shape[1]):  # one count per label column
            tp[:, j], fp[:, j] = _count(columns[:, j], labels[:, j], weights[:, j], thresholds,
                                        thresholds_distributed_evenly, with_epsilon)
        total_pos = np.where(labels, weights, 0.0).sum(axis=0)
        total_neg = np.where(labels, 0.0, weights).sum(axis=0)
    else:
        p, lab, w = y_pred.reshape(-1), label.reshape(-1), weight.reshape(-1)
        tp, fp = _count(p, lab, w, thresholds, thresholds_distributed_evenly, with_epsilon)
        total_pos = np.where(lab, w, 0.0).sum()
        total_neg = np.where(lab, 0.0, w).sum()
    found = {"tp": tp, "fp": fp, "tn": total_neg - fp, "fn": total_pos - tp}
    for key, var in variables.items():
        var.assign_add(found[key].reshape(var.shape))


def _count(pred, label, weight, thresholds, evenly: bool, with_epsilon: bool):
    if evenly:
        return _counts_buckets(pred, label, weight, thresholds.shape[0], with_epsilon)
    return _counts_sorted(pred, label, weight, thresholds)


# ---- counts -----------------------------------------------------------------------------------

class _ConfusionMatrixConditionCount(Metric):
    """One count (tp, fp, tn or fn) at each threshold."""

    _cond = ""

    def __init__(self, thresholds=None, name: str | None = None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.init_thresholds = thresholds
        self.thresholds = parse_init_thresholds(thresholds, type(self).__name__)
        self._thresholds_distributed_evenly = is_evenly_distributed_thresholds(self.thresholds)
        self.accumulator = self._state("accumulator", (len(self.thresholds),))

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        update_confusion_matrix_variables(
            {self._cond: self.accumulator}, y_true, y_pred, self.thresholds,
            sample_weight=sample_weight,
            thresholds_distributed_evenly=self._thresholds_distributed_evenly)

    def result(self):
        return result_value(self.accumulator[0] if len(self.thresholds) == 1
                            else self.accumulator)

    def get_config(self) -> dict:
        return {**super().get_config(), "thresholds": self.init_thresholds}

    # the core's precision adds (tp, fp), its recall (tp, fn), at one threshold
    _core_kind, _core_index = "", 0

    def _spec(self):
        if not self._core_kind or len(self.thresholds) != 1:
            return None
        return (self._core_kind, 5, self.thresholds[0], 200, False)

    def _load(self, sums, count) -> None:
        self.accumulator.assign([sums[self._core_index]])


class TruePositives(_ConfusionMatrixConditionCount):
    """The (weighted) count of true positives: positive targets predicted above the
    threshold.

    Args:
        thresholds: a float in [0, 1] or a list of them (0.5); with several, the result has
            one count per threshold.
    """

    _cond, _core_kind, _core_index = "tp", "precision", 0


class FalsePositives(_ConfusionMatrixConditionCount):
    """The (weighted) count of false positives: zero targets predicted above the threshold."""

    _cond, _core_kind, _core_index = "fp", "precision", 1


class TrueNegatives(_ConfusionMatrixConditionCount):
    """The (weighted) count of true negatives: zero targets predicted at or below the
    threshold."""

    _cond = "tn"


class FalseNegatives(_ConfusionMatrixConditionCount):
    """The (weighted) count of false negatives: positive targets predicted at or below the
    threshold."""

    _cond, _core_kind, _core_index = "fn", "recall", 1


class _PrecisionRecall(Metric):
    """tp and one other count at each threshold; top_k and class_id as Keras takes them."""

    _second = ""
    _direction = "up"

    def __init__(self, thresholds=None, top_k=None, class_id=None, name: str | None = None,
                 dtype=None):
        super().__init__(name=name, dtype=dtype)
        who = type(self).__name__
        self.init_thresholds = thresholds
        self.top_k = _top_k(top_k, who)
        self.class_id = _class_id(class_id, who)
        self.thresholds = parse_init_thresholds(thresholds, who,
                                                0.5 if top_k is None else NEG_INF)
        self._thresholds_distributed_evenly = is_evenly_distributed_thresholds(self.thresholds)
        n = len(self.thresholds)
        self.true_positives = self._state("true_positives", (n,))
        setattr(self, self._second_name, self._state(self._second_name, (n,)))

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        update_confusion_matrix_variables(
            {"tp": self.true_positives, self._second: getattr(self, self._second_name)},
            y_true, y_pred, self.thresholds, top_k=self.top_k, class_id=self.class_id,
            sample_weight=sample_weight,
            thresholds_distributed_evenly=self._thresholds_distributed_evenly)

    def result(self):
        other = getattr(self, self._second_name)
        r = div_no_nan(self.true_positives, self.true_positives + other)
        return result_value(r[0] if len(self.thresholds) == 1 else r)

    def get_config(self) -> dict:
        return {**super().get_config(), "thresholds": self.init_thresholds, "top_k": self.top_k,
                "class_id": self.class_id}

    def _spec(self):
        if self.top_k is not None or self.class_id is not None or len(self.thresholds) != 1:
            return None
        return (self._core_kind, 5, self.thresholds[0], 200, False)

    def _load(self, sums, count) -> None:
        self.true_positives.assign([sums[0]])
        getattr(self, self._second_name).assign([sums[1]])


class Precision(_PrecisionRecall):
    """tp / (tp + fp): how many of the positive predictions are right (0 before any positive
    prediction).

    Args:
        thresholds: a float in [0, 1] or a list of them (0.5; with top_k, none: every kept
            prediction is positive); with several, one precision per threshold.
        top_k: count only each row's k largest predictions.
        class_id: count only this column.

    Example:
        >>> m = pynn.metrics.Precision()
        >>> m.update_state([0, 1, 1, 1], [1, 0, 1, 1])
        >>> float(m.result())
        0.6666666666666666
    """

    _second, _second_name, _core_kind = "fp", "false_positives", "precision"


class Recall(_PrecisionRecall):
    """tp / (tp + fn): how many of the positive targets are predicted positive.

    Args:
        thresholds, top_k, class_id: as Precision's.
    """

    _second, _second_name, _core_kind = "fn", "false_negatives", "recall"


# ---- one rate at a constraint on another -------------------------------------------------------

class SensitivitySpecificityBase(Metric):
    """tp, fp, tn, fn at num_thresholds thresholds spread evenly over [0, 1]; the subclasses'
    result is the best of one rate over the thresholds where another meets `value`."""

    _direction = "up"

    def __init__(self, value, num_thresholds: int = 200, class_id=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        who = type(self).__name__
        if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, (int, np.integer)) \
                or not 0 < num_thresholds <= _MAX_THRESHOLDS:
            raise ValueError(f"{who}: argument `num_thresholds` must be an integer in "
                             f"[1, {_MAX_THRESHOLDS}]. Received: num_thresholds={num_thresholds!r}")
        self.value = value
        self.class_id = _class_id(class_id, who)
        if num_thresholds == 1:
            self.thresholds = [0.5]
            self._thresholds_distributed_evenly = False
        else:
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            self.thresholds = [0.0] + inner + [1.0]
            self._thresholds_distributed_evenly = True
        n = len(self.thresholds)
        self.true_positives = self._state("true_positives", (n,))
        self.false_positives = self._state("false_positives", (n,))
        self.true_negatives = self._state("true_negatives", (n,))
        self.false_negatives = self._state("false_negatives", (n,))

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        update_confusion_matrix_variables(
            {"tp": self.true_positives, "tn": self.true_negatives, "fp": self.false_positives,
             "fn": self.false_negatives}, y_true, y_pred, self.thresholds,
            class_id=self.class_id, sample_weight=sample_weight,
            thresholds_distributed_evenly=self._thresholds_distributed_evenly)

    def get_config(self) -> dict:
        return {**super().get_config(), "class_id": self.class_id}

    def _rates(self):
        tp, fp, tn, fn = (self.true_positives, self.false_positives, self.true_negatives,
                          self.false_negatives)
        return {"sensitivity": div_no_nan(tp, tp + fn), "specificity": div_no_nan(tn, tn + fp),
                "precision": div_no_nan(tp, tp + fp)}

    def _best(self, constrained: str, dependent: str) -> float:
        """max over the thresholds where `constrained` >= value of `dependent` (0 if none)."""
        r = self._rates()
        feasible = r[constrained] >= np.float32(self.value)
        return float(np.max(np.where(feasible, r[dependent], 0.0), initial=0.0))


def _unit(value, who: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0.0 <= value <= 1.0:
        raise ValueError(f"{who}: argument `{what}` must be in the range [0, 1]. Received: "
                         f"{what}={value!r}")
    return value


class SensitivityAtSpecificity(SensitivitySpecificityBase):
    """The best sensitivity (recall) at a specificity of at least `specificity`.

    Args:
        specificity: in [0, 1].
        num_thresholds: thresholds tried, evenly over [0, 1] (200).
        class_id: count only this column.
    """

    def __init__(self, specificity, num_thresholds: int = 200, class_id=None, name=None,
                 dtype=None):
        self.specificity = _unit(specificity, "SensitivityAtSpecificity", "specificity")
        self.num_thresholds = num_thresholds
        super().__init__(specificity, num_thresholds=num_thresholds, class_id=class_id,
                         name=name, dtype=dtype)

    def result(self) -> float:
        return self._best("specificity", "sensitivity")

    def get_config(self) -> dict:
        return {**super().get_config(), "num_thresholds": self.num_thresholds,
                "specificity": self.specificity}


class SpecificityAtSensitivity(SensitivitySpecificityBase):
    """The best specificity at a sensitivity (recall) of at least `sensitivity`.

    Args:
        sensitivity: in [0, 1].
        num_thresholds, class_id: as SensitivityAtSpecificity's.
    """

    def __init__(self, sensitivity, num_thresholds: int = 200, class_id=None, name=None,
                 dtype=None):
        self.sensitivity = _unit(sensitivity, "SpecificityAtSensitivity", "sensitivity")
        self.num_thresholds = num_thresholds
        super().__init__(sensitivity, num_thresholds=num_thresholds, class_id=class_id,
                         name=name, dtype=dtype)

    def result(self) -> float:
        return self._best("sensitivity", "specificity")

    def get_config(self) -> dict:
        return {**super().get_config(), "num_thresholds": self.num_thresholds,
                "sensitivity": self.sensitivity}


class PrecisionAtRecall(SensitivitySpecificityBase):
    """The best precision at a recall of at least `recall`.

    Args:
        recall: in [0, 1].
        num_thresholds, class_id: as SensitivityAtSpecificity's.
    """

    def __init__(self, recall, num_thresholds: int = 200, class_id=None, name=None,
                 dtype=None):
        self.recall = _unit(recall, "PrecisionAtRecall", "recall")
        self.num_thresholds = num_thresholds
        super().__init__(value=recall, num_thresholds=num_thresholds, class_id=class_id,
                         name=name, dtype=dtype)

    def result(self) -> float:
        return self._best("sensitivity", "precision")

    def get_config(self) -> dict:
        return {**super().get_config(), "num_thresholds": self.num_thresholds,
                "recall": self.recall}


class RecallAtPrecision(SensitivitySpecificityBase):
    """The best recall at a precision of at least `precision`.

    Args:
        precision: in [0, 1].
        num_thresholds, class_id: as SensitivityAtSpecificity's.
    """

    def __init__(self, precision, num_thresholds: int = 200, class_id=None, name=None,
                 dtype=None):
        self.precision = _unit(precision, "RecallAtPrecision", "precision")
        self.num_thresholds = num_thresholds
        super().__init__(value=precision, num_thresholds=num_thresholds, class_id=class_id,
                         name=name, dtype=dtype)

    def result(self) -> float:
        return self._best("precision", "sensitivity")

    def get_config(self) -> dict:
        return {**super().get_config(), "num_thresholds": self.num_thresholds,
                "precision": self.precision}


# ---- AUC --------------------------------------------------------------------------------------

_CURVES = {"roc": "ROC", "pr": "PR", "prgain": "PRGAIN"}
_SUMMATIONS = ("interpolation", "minoring", "majoring")


class AUC(Metric):
    """The area under the ROC, precision-recall or PR-gain curve, by Keras's Riemann sum over
    `num_thresholds` thresholds (the end ones just outside [0, 1]).

    Args:
        num_thresholds: thresholds, evenly spread (200; > 1).
        curve: 'ROC', 'PR' or 'PRGAIN'.
        summation_method: 'interpolation' (the trapezoid rule; Davis & Goadrich's interpolation
            for PR), 'minoring' or 'majoring'.
        thresholds: explicit thresholds (num_thresholds becomes their count + 2).
        multi_label: count each column of y_pred as its own label and average their AUCs
            (weighted by label_weights); otherwise every element is one prediction.
        num_labels: the columns, with multi_label (else found at the first update).
        label_weights: a weight per label (column).
        from_logits: y_pred holds logits (a sigmoid is applied first).

    Example:
        >>> m = pynn.metrics.AUC()
        >>> m.update_state([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        >>> float(m.result())
        0.75
    """

    _direction = "up"

    def __init__(self, num_thresholds: int = 200, curve: str = "ROC",
                 summation_method: str = "interpolation", name: str | None = None, dtype=None,
                 thresholds=None, multi_label: bool = False, num_labels=None,
                 label_weights=None, from_logits: bool = False):
        if not isinstance(curve, str) or curve.lower() not in _CURVES:
            raise ValueError(f'AUC: invalid curve "{curve}"; expected values are '
                             '["PR", "ROC", "PRGAIN"]')
        if not isinstance(summation_method, str) or summation_method.lower() not in _SUMMATIONS:
            raise ValueError(f'AUC: invalid summation_method "{summation_method}"; expected '
                             'values are ["interpolation", "majoring", "minoring"]')
        for what, v in (("multi_label", multi_label), ("from_logits", from_logits)):
            if not isinstance(v, (bool, np.bool_)):
                raise ValueError(f"AUC: {what} must be a bool, got {v!r}")
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            values = list(thresholds) if isinstance(thresholds, (list, tuple, np.ndarray)) \
                else [thresholds]
            inner = sorted(_number(t, "AUC", "each threshold") for t in values)
            self.num_thresholds = len(inner) + 2
            self._thresholds_distributed_evenly = is_evenly_distributed_thresholds(
                [0.0] + inner + [1.0])
        else:
            if isinstance(num_thresholds, bool) or not isinstance(num_thresholds,
                                                                  (int, np.integer)):
                raise ValueError(f"AUC: num_thresholds must be an int, got {num_thresholds!r}")
            if not 1 < num_thresholds <= _MAX_THRESHOLDS:
                raise ValueError(f"AUC: argument `num_thresholds` must be an integer in [2, "
                                 f"{_MAX_THRESHOLDS}]. Received: num_thresholds={num_thresholds}")
            self.num_thresholds = int(num_thresholds)
            inner = [(i + 1) * 1.0 / (self.num_thresholds - 1)
                     for i in range(self.num_thresholds - 2)]
            self._thresholds_distributed_evenly = True
        self._thresholds = np.array([0.0 - EPSILON] + inner + [1.0 + EPSILON])
        self.curve = _CURVES[curve.lower()]
        self.summation_method = summation_method.lower()
        super().__init__(name=name, dtype=dtype)
        self.multi_label = bool(multi_label)
        if num_labels is not None and (isinstance(num_labels, bool) or not isinstance(
                num_labels, (int, np.integer)) or not 0 < num_labels * self.num_thresholds
                <= _MAX_COUNTS):
            raise ValueError(f"AUC: num_labels must be None or a positive int (at most "
                             f"{_MAX_COUNTS} counts of thresholds x labels), got "
                             f"{num_labels!r}")
        self.num_labels = num_labels
        if label_weights is not None:
            lw = np.asarray(label_weights, dtype=object)
            if lw.ndim != 1 or not all(isinstance(v, (int, float, np.integer, np.floating))
                                       and not isinstance(v, bool) for v in lw):
                raise ValueError(f"AUC: label_weights must be a list of numbers, got "
                                 f"{label_weights!r}")
            label_weights = np.asarray(label_weights, np.float32)
        self.label_weights = label_weights
        self._from_logits = bool(from_logits)
        self._built = False
        if self.multi_label:
            if num_labels:
                self._build((None, num_labels))
        else:
            if num_labels:
                raise ValueError("AUC: `num_labels` is needed only when `multi_label` is True.")
            self._build(None)

    @property
    def thresholds(self) -> list[float]:
        return [float(t) for t in self._thresholds]

    def _build(self, shape) -> None:
        if self.multi_label:
            if len(shape) != 2:
                raise ValueError("`y_pred` must have rank 2 when `multi_label=True`. Found rank "
                                 f"{len(shape)}. Full shape received for `y_pred`: {shape}")
            self._num_labels = shape[1]
            var_shape = (self.num_thresholds, self._num_labels)
        else:
            var_shape = (self.num_thresholds,)
        self.true_positives = self._state("true_positives", var_shape)
        self.false_positives = self._state("false_positives", var_shape)
        self.true_negatives = self._state("true_negatives", var_shape)
        self.false_negatives = self._state("false_negatives", var_shape)
        self._built = True

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        y_pred = floats(y_pred)
        if not self._built:
            self._build(y_pred.shape)
        if self.multi_label and (y_pred.ndim != 2 or y_pred.shape[1] != self._num_labels):
            raise ValueError(f"AUC: multi_label takes y_pred of shape (samples, "
                             f"{self._num_labels}), got {y_pred.shape}")
        if self._from_logits:
            y_pred = (1.0 / (1.0 + np.exp(-y_pred.astype(np.float64)))).astype(np.float32)
        update_confusion_matrix_variables(
            {"tp": self.true_positives, "tn": self.true_negatives, "fp": self.false_positives,
             "fn": self.false_negatives}, y_true, y_pred, self._thresholds,
            sample_weight=sample_weight, multi_label=self.multi_label,
            label_weights=None if self.multi_label else self.label_weights,
            thresholds_distributed_evenly=self._thresholds_distributed_evenly)

    def _by_label(self, terms) -> float:
        if not self.multi_label:
            return float(np.sum(terms))
        by_label = np.sum(terms, axis=0)
        if self.label_weights is None:
            return float(np.mean(by_label))
        lw = self.label_weights.astype(np.float64)
        return float(div_no_nan(np.sum(by_label * lw), np.sum(lw)))

    def _interpolate_pr_auc(self) -> float:
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = div_no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = np.where(both, div_no_nan(p[:-1], np.maximum(p[1:], 0)), 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = np.log(ratio)
        return self._by_label(div_no_nan(slope * (dtp + intercept * log_ratio),
                                         np.maximum(tp[1:] + fn[1:], 0)))

    def result(self) -> float:
        if not self._built:
            return 0.0
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._interpolate_pr_auc()
        tp, fp, tn, fn = (self.true_positives, self.false_positives, self.true_negatives,
                          self.false_negatives)
        recall = div_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = div_no_nan(fp, fp + tn), recall
        elif self.curve == "PR":
            x, y = recall, div_no_nan(tp, tp + fp)
        else:  # PRGAIN
            scale = div_no_nan(tp + fn, tn + fp)
            recall_gain = 1.0 - scale * div_no_nan(fn, tp)
            precision_gain = 1.0 - scale * div_no_nan(fp, tp)
            recall_gain = np.maximum(np.where(tp == 0, 0.0, recall_gain), 0.0)
            precision_gain = np.where(tp == 0, 1.0, precision_gain)
            x, y = recall_gain, precision_gain
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return self._by_label((x[:-1] - x[1:]) * heights)

    def reset_state(self) -> None:
        if self._built:
            super().reset_state()

    def get_config(self) -> dict:
        lw = self.label_weights
        config = {**super().get_config(), "num_thresholds": self.num_thresholds,
                  "curve": self.curve, "summation_method": self.summation_method,
                  "multi_label": self.multi_label, "num_labels": self.num_labels,
                  "label_weights": None if lw is None else [float(v) for v in lw],
                  "from_logits": self._from_logits}
        if self._init_from_thresholds:
            config["thresholds"] = self.thresholds[1:-1]
        return config

    # -- the core: tp[T], fp[T], tn[T], fn[T] over every element, evenly spread thresholds ---
    def _spec(self):
        if (self.multi_label or self._init_from_thresholds or self.label_weights is not None
                or self.num_thresholds > _CORE_MAX_THRESHOLDS):
            return None
        return ("auc", 5, 0.5, self.num_thresholds, self._from_logits)

    def _load(self, sums, count) -> None:
        parts = np.asarray(sums, np.float64).reshape(4, self.num_thresholds)
        for var, part in zip((self.true_positives, self.false_positives, self.true_negatives,
                              self.false_negatives), parts):
            var.assign(part)
