"""Losses with Keras 3's names, arguments and reduction ("sum_over_batch_size").

The core computes each loss and its gradient inside the training step. A softmax (or sigmoid)
output feeding a cross-entropy is folded into it, so the loss is computed from the logits, exactly.
"""

import numpy as np

from . import _core

_CORE_NAMES = {
    "mean_squared_error": "mean_squared_error",
    "mse": "mean_squared_error",
    "mean_absolute_error": "mean_absolute_error",
    "mae": "mean_absolute_error",
    "binary_crossentropy": "binary_crossentropy",
    "categorical_crossentropy": "categorical_crossentropy",
    "sparse_categorical_crossentropy": "sparse_categorical_crossentropy",
}


class Loss:
    """Base class of the losses. `name` is Keras's default name for the loss."""

    core_name = ""

    def __init__(self, name: str | None = None, reduction: str = "sum_over_batch_size",
                 dtype=None):
        if reduction != "sum_over_batch_size":
            raise ValueError(
                f"{type(self).__name__}: only reduction='sum_over_batch_size' is supported, "
                f"got {reduction!r}"
            )
        self.name = name or self.core_name
        self.reduction = reduction
        self.from_logits = False

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The loss of a batch, a scalar pynn.Tensor recorded on the tape: call it on a model's
        output in a custom training loop, then `.backward()`.

        Example:
            >>> loss = pynn.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits)
        """
        sample_weight = _with_mask(sample_weight, y_pred)
        if sample_weight is not None:
            if self.core_name not in _CLASSES:
                raise ValueError(f"{type(self).__name__}: sample_weight is not supported")
            fn = globals()[self.core_name]
            values = fn(y_true, y_pred, from_logits=True) if self.from_logits else \
                fn(y_true, y_pred)
            return _weighted_mean(values, sample_weight)
        return _core.loss(self.core_name, self.from_logits, y_true, y_pred)

    @property
    def in_core(self) -> bool:
        """Whether the core's training step computes this loss (else it runs on the tape only:
        call it in a custom train_step)."""
        return self.core_name in _CLASSES

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


class MeanSquaredError(Loss):
    """`mean((y_true - y_pred) ** 2)` over the last axis, averaged over the batch."""

    core_name = "mean_squared_error"


class MeanAbsoluteError(Loss):
    """`mean(|y_true - y_pred|)` over the last axis, averaged over the batch."""

    core_name = "mean_absolute_error"


class _CrossEntropy(Loss):
    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 name: str | None = None, reduction: str = "sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if label_smoothing:
            raise ValueError(f"{type(self).__name__}: label_smoothing is not supported")
        if axis != -1:
            raise ValueError(f"{type(self).__name__}: only axis=-1 is supported")
        self.from_logits = bool(from_logits)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


class BinaryCrossentropy(_CrossEntropy):
    """Binary cross-entropy between 0/1 targets and probabilities (or logits)."""

    core_name = "binary_crossentropy"


class CategoricalCrossentropy(_CrossEntropy):
    """Cross-entropy between one-hot targets and class probabilities (or logits)."""

    core_name = "categorical_crossentropy"


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy between integer class labels and class probabilities (or logits)."""

    core_name = "sparse_categorical_crossentropy"

    def __init__(self, from_logits: bool = False, ignore_class=None, name: str | None = None,
                 reduction: str = "sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if ignore_class is not None:
            raise ValueError("SparseCategoricalCrossentropy: ignore_class is not supported")
        self.from_logits = bool(from_logits)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


class KLDivergence(Loss):
    """Kullback-Leibler divergence `sum(y_true * log(y_true / y_pred))` over the last axis, both
    clipped to [1e-7, 1], averaged over the batch (Keras 3's KLDivergence).

    Computed with pynn.ops on the tape (not by the core's training step): call it on Tensors, as
    in a custom train_step.

    Example:
        >>> kl = pynn.losses.KLDivergence()
        >>> loss = kl(ops.softmax(teacher / T, axis=1), ops.softmax(student / T, axis=1))
    """

    core_name = "kl_divergence"

    def __init__(self, reduction: str = "sum_over_batch_size", name: str = "kl_divergence",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The mean over the batch of kl_divergence(y_true, y_pred) (weighted by sample_weight,
        one weight per sample, then divided by the batch size as Keras does)."""
        from . import ops
        values = kl_divergence(y_true, y_pred)
        sample_weight = _with_mask(sample_weight, y_pred)
        if sample_weight is not None:
            return _weighted_mean(values, sample_weight)
        return ops.mean(values)


def _with_mask(sample_weight, y_pred):
    """The sample weights with y_pred's mask (`_keras_mask`, a model output on data) folded
    in as Keras's apply_mask does for "sum_over_batch_size": kept rows weigh total / kept, so
    the mean is over the kept rows only (all masked: weight 0)."""
    mask = getattr(y_pred, "_keras_mask", None)
    if mask is None:
        return sample_weight
    m = (np.asarray(mask) != 0).astype(np.float32)
    kept = m.sum()
    m = m * (m.size / kept) if kept > 0 else m
    if sample_weight is None:
        return m
    w = np.asarray(sample_weight, np.float32)
    while w.ndim > m.ndim and w.shape[-1] == 1:
        w = w[..., 0]
    while w.ndim < m.ndim:
        w = w[..., None]
    return m * w


def _weighted_mean(values, sample_weight):
    """Keras 3's "sum_over_batch_size" reduction of weighted per-sample loss values:
    sum(values * sample_weight) / values.size. A (batch, 1) weight squeezes to (batch,); a
    weight of lower rank than the values (one per sample of a sequence loss) broadcasts over
    their trailing axes."""
    from . import ops
    w = ops.convert_to_tensor(sample_weight, "float32")
    vrank = len(ops.shape(values))
    while len(ops.shape(w)) > vrank and ops.shape(w)[-1] == 1:
        w = ops.squeeze(w, axis=-1)
    while len(ops.shape(w)) < vrank:
        w = ops.expand_dims(w, axis=-1)
    return ops.mean(ops.multiply(values, w))


_CLASSES = {
    "mean_squared_error": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}


# -- the loss functions: per-sample values (no reduction), on the tape ---------------------------
# Keras's functions of the same names: the mean (or sum) over the last axis, one value per sample.
# They are also what compile(loss=pynn.losses.mse) names.
_EPS = 1e-7


def mean_squared_error(y_true, y_pred):
    """mean((y_true - y_pred)**2) over the last axis: one value per sample."""
    from . import ops
    return ops.mean(ops.square(ops.subtract(y_pred, y_true)), axis=-1)


def mean_absolute_error(y_true, y_pred):
    """mean(|y_true - y_pred|) over the last axis: one value per sample."""
    from . import ops
    return ops.mean(ops.abs(ops.subtract(y_pred, y_true)), axis=-1)


def binary_crossentropy(y_true, y_pred, from_logits: bool = False):
    """-(y log p + (1 - y) log(1 - p)), averaged over the last axis; p clipped to [1e-7, 1 - 1e-7]
    (from logits z: max(z, 0) - z y + log(1 + exp(-|z|)), exactly)."""
    from . import ops
    if from_logits:
        z = y_pred
        return ops.mean(ops.relu(z) - z * y_true + ops.log(1.0 + ops.exp(-ops.abs(z))), axis=-1)
    p = ops.clip(y_pred, _EPS, 1.0 - _EPS)
    return -ops.mean(y_true * ops.log(p) + (1.0 - ops.convert_to_tensor(y_true)) *
                     ops.log(1.0 - p), axis=-1)


def categorical_crossentropy(y_true, y_pred, from_logits: bool = False):
    """-sum(y log p) over the last axis, p normalised to sum 1 and clipped (or log_softmax of
    logits)."""
    from . import ops
    if from_logits:
        logp = ops.log_softmax(y_pred)
    else:
        logp = ops.log(ops.clip(y_pred / ops.sum(y_pred, axis=-1, keepdims=True), _EPS,
                                1.0 - _EPS))
    return -ops.sum(y_true * logp, axis=-1)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits: bool = False):
    """categorical_crossentropy with integer labels: -log p[label], one value per label (labels
    shaped (batch, 1) as well as (batch,), as in Keras)."""
    from . import ops
    classes = y_pred.shape[-1]
    y_true = ops.convert_to_tensor(y_true)
    if len(ops.shape(y_true)) == len(ops.shape(y_pred)) and ops.shape(y_true)[-1] == 1:
        y_true = ops.squeeze(y_true, axis=-1)
    return categorical_crossentropy(ops.one_hot(y_true, classes), y_pred, from_logits)


def kl_divergence(y_true, y_pred):
    """sum(y_true * log(y_true / y_pred)) over the last axis, y_true and y_pred clipped to
    [1e-7, 1] (Keras 3's kl_divergence): one value per sample.

    Example:
        >>> pynn.losses.kl_divergence([[0.5, 0.5]], [[0.9, 0.1]]).shape
        (1,)
    """
    from . import ops
    y_pred = ops.convert_to_tensor(y_pred, "float32")
    y_true = ops.convert_to_tensor(y_true, "float32")
    y_true = ops.clip(y_true, _EPS, 1.0)
    y_pred = ops.clip(y_pred, _EPS, 1.0)
    return ops.sum(ops.multiply(y_true, ops.log(ops.divide(y_true, y_pred))), axis=-1)


mse, mae = mean_squared_error, mean_absolute_error
# Keras 2's names, which Keras 3 keeps as legacy aliases (and in losses.get)
kld = KLD = kullback_leibler_divergence = kl_divergence


# losses computed with pynn.ops (on the tape), by the names Keras 3's losses.get knows them
_TAPE_NAMES = {"kl_divergence": KLDivergence, "KLDivergence": KLDivergence, "kld": KLDivergence,
               "KLD": KLDivergence, "kullback_leibler_divergence": KLDivergence}


def get(identifier) -> Loss:
    """Returns a Loss for a name ('mse', 'sparse_categorical_crossentropy', ...), a loss function
    of this module, or a Loss instance.

    Example:
        >>> pynn.losses.get("mse").name
        'mean_squared_error'
    """
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    name = identifier if isinstance(identifier, str) else getattr(identifier, "__name__", None)
    if name in _CORE_NAMES and (isinstance(identifier, str) or globals().get(name) is identifier):
        return _CLASSES[_CORE_NAMES[name]]()
    if name in _TAPE_NAMES and (isinstance(identifier, str) or globals().get(name) is identifier):
        return _TAPE_NAMES[name]()
    raise ValueError(
        f"Unknown loss {identifier!r}. Known: {', '.join(sorted(_CORE_NAMES))}, "
        f"{', '.join(sorted(_TAPE_NAMES))}, or a pynn.losses.Loss instance"
    )
