"""F-scores, as Keras 3 defines them: per-class (or, micro-averaged, overall) precision and
recall of thresholded predictions on (samples, classes) inputs, combined as
(1 + beta^2) P R / (beta^2 P + R).
"""

from __future__ import annotations

import numpy as np

from .base import EPSILON, Metric, floats, result_value

_AVERAGES = (None, "micro", "macro", "weighted")


class FBetaScore(Metric):
    """The F-beta score.

    Args:
        average: None (one score per class), 'micro' (over all elements), 'macro' (the mean of
            the per-class scores) or 'weighted' (their mean weighted by each class's support).
        beta: the weight of recall against precision (a float > 0; 1.0).
        threshold: a prediction above it is positive; None: the row's largest (non-zero) ones.
    """

    _direction = "up"

    def __init__(self, average: str | None = None, beta: float = 1.0, threshold=None,
                 name: str = "fbeta_score", dtype=None):
        super().__init__(name=name, dtype=dtype)
        if average not in _AVERAGES:
            raise ValueError("Invalid `average` argument value. Expected one of: {None, "
                             f"'micro', 'macro', 'weighted'}}. Received: average={average!r}")
        if not isinstance(beta, float):
            raise ValueError("Invalid `beta` argument value. It should be a Python float. "
                             f"Received: beta={beta!r} of type '{type(beta)}'")
        if not beta > 0.0:
            raise ValueError(f"Invalid `beta` argument value. It should be > 0. Received: "
                             f"beta={beta}")
        if threshold is not None:
            if not isinstance(threshold, float):
                raise ValueError("Invalid `threshold` argument value. It should be a Python "
                                 f"float. Received: threshold={threshold!r} of type "
                                 f"'{type(threshold)}'")
            if not 0.0 < threshold <= 1.0:
                raise ValueError("Invalid `threshold` argument value. It should verify 0 < "
                                 f"threshold <= 1. Received: threshold={threshold}")
        self.average = average
        self.beta = beta
        self.threshold = threshold
        self.axis = None if average == "micro" else 0
        self._built = False

    def _build(self, y_true, y_pred) -> None:
        if y_pred.ndim != 2 or y_true.ndim != 2:
            raise ValueError(f"{type(self).__name__} expects 2D inputs with shape (batch_size, "
                             f"output_dim). Received input shapes: y_pred.shape={y_pred.shape} "
                             f"and y_true.shape={y_true.shape}.")
        shape = () if self.average == "micro" else (y_pred.shape[-1],)
        self.true_positives = self._state("true_positives", shape)
        self.false_positives = self._state("false_positives", shape)
        self.false_negatives = self._state("false_negatives", shape)
        self.intermediate_weights = self._state("intermediate_weights", shape)
        self._built = True

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        y_true, y_pred = floats(y_true), floats(y_pred)
        if not self._built:
            self._build(y_true, y_pred)
        if y_true.shape != y_pred.shape or y_pred.ndim != 2:
            raise ValueError(f"{type(self).__name__}: y_true {y_true.shape} and y_pred "
                             f"{y_pred.shape} must both be (batch_size, output_dim)")
        if self.threshold is None:
            top = np.max(y_pred, axis=-1, keepdims=True)
            positive = (y_pred >= top) & (np.abs(y_pred) > np.float32(1e-9))
        else:
            positive = y_pred > np.float32(self.threshold)
        p = positive.astype(np.float64)
        t = y_true.astype(np.float64)
        w = None if sample_weight is None else floats(sample_weight).astype(np.float64)

        def weighted_sum(v):
            if w is not None:
                v = v * np.expand_dims(w, 1)
            return np.sum(v, axis=self.axis)

        self.true_positives.assign_add(weighted_sum(p * t))
        self.false_positives.assign_add(weighted_sum(p * (1 - t)))
        self.false_negatives.assign_add(weighted_sum((1 - p) * t))
        self.intermediate_weights.assign_add(weighted_sum(t))

    def result(self):
        if not self._built:
            return 0.0
        eps = EPSILON
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        precision = tp / (tp + fp + eps)
        recall = tp / (tp + fn + eps)
        b2 = self.beta ** 2
        f = precision * recall / (b2 * precision + recall + eps) * (1 + b2)
        if self.average == "weighted":
            weights = self.intermediate_weights / (np.sum(self.intermediate_weights) + eps)
            f = np.sum(f * weights)
        elif self.average is not None:
            f = np.mean(f)
        return result_value(f)

    def reset_state(self) -> None:
        super().reset_state()

    def get_config(self) -> dict:
        return {**super().get_config(), "average": self.average, "beta": self.beta,
                "threshold": self.threshold}


class F1Score(FBetaScore):
    """The F1 score, 2 P R / (P + R): FBetaScore with beta 1.

    Args:
        average, threshold: as FBetaScore's.
    """

    def __init__(self, average: str | None = None, threshold=None, name: str = "f1_score",
                 dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self) -> dict:
        config = super().get_config()
        del config["beta"]
        return config
