"""Losses with Keras 3's names, arguments, reductions and configs.

Each loss is a class (`Loss`, called on y_true and y_pred: the reduced loss, a scalar Tensor on
the tape) and a function of the same name in snake case (one value per sample, no reduction).
A class runs its `call(y_true, y_pred)` (the function) and then Keras's reduction: the values
weighted by sample_weight and by y_pred's mask, then summed over all of them and divided by
their number ("sum_over_batch_size", or "mean"), summed ("sum"), divided by the sum of the
weights ("mean_with_sample_weight"), or returned as they are ("none", None).

The core computes the common losses inside `fit`'s fused training step (mean squared and
absolute error and the three cross-entropies, with Keras's default arguments; a softmax or
sigmoid output feeding a cross-entropy is folded into it, so the loss is computed from the
logits, exactly). A model compiled with any other loss, a user function or a `Loss` subclass
trains by Python steps on the tape: each batch runs the model, the loss and the gradients
through the same core kernels, with the loss's ops in between.
"""

import numpy as np

from . import _core

_EPS = 1e-7
_REDUCTIONS = ("sum_over_batch_size", "sum", None, "none", "mean", "mean_with_sample_weight")


def _ops():
    from . import ops
    return ops


def _snake(name: str) -> str:
    from .layers.base import snake_case
    return snake_case(name)


class Loss:
    """Base class of the losses: subclass it and write `call(y_true, y_pred)`, returning one
    loss value per sample (or per position); calling the loss reduces them.

    Args:
        name: the loss's name (the snake-case class name by default).
        reduction: "sum_over_batch_size" (default), "mean" (the same), "sum",
            "mean_with_sample_weight" or "none"/None.
        dtype: accepted; losses compute in float32.

    Example:
        >>> class Scaled(pynn.losses.Loss):
        ...     def call(self, y_true, y_pred):
        ...         return pynn.ops.mean(pynn.ops.square(y_true - y_pred) * 2.0, axis=-1)
    """

    core_name = ""  # the core's fused loss computing it (with default arguments), if any

    def __init__(self, name: str | None = None, reduction="sum_over_batch_size", dtype=None):
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: invalid value for argument `reduction`: "
                             f"expected one of {_REDUCTIONS}, got {reduction!r}")
        if name is not None and not isinstance(name, str):
            raise ValueError(f"{type(self).__name__}: name must be a string, got {name!r}")
        self.name = name or _snake(type(self).__name__)
        self.reduction = reduction
        self.dtype = "float32" if dtype is None else dtype
        if not hasattr(self, "from_logits"):
            self.from_logits = False

    def call(self, y_true, y_pred):
        raise NotImplementedError(f"{type(self).__name__}: a Loss subclass defines "
                                  "call(y_true, y_pred), returning the unreduced loss values")

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The loss of a batch, a scalar pynn.Tensor recorded on the tape: call it on a model's
        output in a custom training loop, then `.backward()`.

        Example:
            >>> loss = pynn.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits)
        """
        in_mask = getattr(y_pred, "_keras_mask", None)
        if self.in_core and sample_weight is None and in_mask is None:
            return _core.loss(self.core_name, self.from_logits, y_true, y_pred)  # fused
        values = self.call(y_true, y_pred)
        out_mask = getattr(values, "_keras_mask", None)
        mask = in_mask if out_mask is None else out_mask if in_mask is None else \
            (np.asarray(in_mask) != 0) & (np.asarray(out_mask) != 0)
        return reduce_weighted_values(values, sample_weight, mask, self.reduction)

    @property
    def in_core(self) -> bool:
        """Whether the core's fused step computes this loss: one of its kinds, with Keras's
        default arguments, and the call not overridden. Any other trains by Python steps."""
        return self.core_name in _CORE_KINDS and self.reduction in ("sum_over_batch_size",
                                                                    "mean") \
            and type(self).call is _CORE_KINDS[self.core_name].call and self._core_args()

    def _core_args(self) -> bool:
        return True

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


def _squeeze_or_expand(x1, x2):
    """Keras's squeeze_or_expand_to_same_rank: ranks differing by one where the longer ends in
    a 1 are made equal."""
    ops = _ops()
    r1, r2 = len(ops.shape(x1)), len(ops.shape(x2))
    if r1 == r2 + 1 and ops.shape(x1)[-1] == 1:
        if r2 == 1:
            x2 = ops.expand_dims(x2, -1)
        else:
            x1 = ops.squeeze(x1, -1)
    elif r2 == r1 + 1 and ops.shape(x2)[-1] == 1:
        if r1 == 1:
            x1 = ops.expand_dims(x1, -1)
        else:
            x2 = ops.squeeze(x2, -1)
    return x1, x2


def _weights_like(w, ndim: int) -> np.ndarray:
    """Weights given per sample (or of a lower rank) with trailing axes to broadcast over
    `ndim` axes of values; a trailing size-1 axis beyond them is dropped."""
    w = np.asarray(w, np.float32)
    while w.ndim > ndim and w.shape[-1] == 1:
        w = w[..., 0]
    while w.ndim < ndim:
        w = w[..., None]
    return w


def reduce_weighted_values(values, sample_weight=None, mask=None,
                           reduction="sum_over_batch_size"):
    """Keras 3's reduction of loss values: weighted by sample_weight and by the mask (kept
    positions weigh total / kept for the mean reductions, so the mean is over the kept ones),
    then reduced. Weights and masks are constants: no gradient reaches them."""
    ops = _ops()
    values = ops.convert_to_tensor(values, "float32")
    ndim = len(ops.shape(values))
    from .layers.input_layer import KerasTensor
    if isinstance(sample_weight, KerasTensor) or isinstance(values, KerasTensor):
        return _reduce_symbolic(values, sample_weight, mask, reduction, ndim)
    w = None
    if mask is not None:
        m = (np.asarray(mask) != 0).astype(np.float32)
        if reduction in ("mean", "sum_over_batch_size"):
            kept = float(m.sum())
            m = m * (m.size / kept) if kept > 0 else m * 0.0
        w = _weights_like(m, ndim)
    if sample_weight is not None:
        sw = _weights_like(sample_weight, ndim)
        w = sw if w is None else sw * w
    if w is not None:
        values = ops.multiply(values, w)
    if reduction is None or reduction == "none" or len(ops.shape(values)) == 0:
        return values
    size = int(np.prod(ops.shape(values)))
    total = ops.sum(values)
    if reduction == "sum":
        return total
    divisor = float(np.sum(w)) if reduction == "mean_with_sample_weight" and \
        sample_weight is not None else float(size)
    return ops.multiply(total, 1.0 / divisor if divisor else 0.0)


def _reduce_symbolic(values, sample_weight, mask, reduction, ndim: int):
    """reduce_weighted_values on symbolic tensors (a loss traced into the core's step,
    compile_utils.trace_loss): sample_weight is the step's weight per sample, (None,); the
    mean reductions divide by the values' count (batch included), as the array path does.
    What it cannot express (a mask, mean_with_sample_weight, unreduced values) raises, and the
    model keeps Python steps."""
    ops = _ops()
    if mask is not None or reduction not in ("sum", "sum_over_batch_size", "mean") or ndim < 1:
        raise ValueError(f"a loss with reduction {reduction!r}, a mask or values of rank {ndim} "
                         "is not traced")
    if sample_weight is not None:
        w = sample_weight
        for _ in range(ndim - len(ops.shape(w))):
            w = ops.expand_dims(w, -1)
        values = ops.multiply(values, w)
    return ops.sum(values) if reduction == "sum" else ops.mean(values)


class LossFunctionWrapper(Loss):
    """A loss from a function of (y_true, y_pred) returning one value per sample (Keras's
    LossFunctionWrapper): what compile makes of `loss=my_function`.

    Args:
        fn: the function. Its keyword arguments follow `name`, `reduction` and `dtype`.
    """

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, dtype=None, **kwargs):
        if not callable(fn):
            raise ValueError(f"LossFunctionWrapper: fn must be callable, got {fn!r}")
        super().__init__(name=name or getattr(fn, "__name__", None), reduction=reduction,
                         dtype=dtype)
        self.fn = fn
        self._fn_kwargs = kwargs

    def call(self, y_true, y_pred):
        y_true, y_pred = _squeeze_or_expand(_ops().convert_to_tensor(y_true),
                                            _ops().convert_to_tensor(y_pred))
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self) -> dict:
        fn = self.fn
        return {**super().get_config(),
                "fn": {"module": getattr(fn, "__module__", None), "class_name": "function",
                       "config": getattr(fn, "__name__", None), "registered_name": None},
                **self._fn_kwargs}

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        config = dict(config)
        spec = config.pop("fn", None)
        name = spec.get("config") if isinstance(spec, dict) else spec
        if not isinstance(name, str):
            raise ValueError(f"LossFunctionWrapper: fn must name a function, got {spec!r}")
        from .saving.serialization import _REGISTERED
        fn = (custom_objects or {}).get(name) or _REGISTERED.get(name)
        if fn is None and name in _FUNCTIONS:
            fn = _FUNCTIONS[name]
        if fn is None or not callable(fn):
            raise ValueError(f"LossFunctionWrapper: unknown loss function '{name}': pass it in "
                             "custom_objects or register it with "
                             "pynn.saving.register_keras_serializable")
        return cls(fn, **config)


# ---- the functions: one value per sample (or position), no reduction -------------------------

def _pred_true(y_true, y_pred, squeeze: bool = True):
    ops = _ops()
    y_pred = ops.convert_to_tensor(y_pred, "float32")
    y_true = ops.cast(ops.convert_to_tensor(y_true), "float32")
    return _squeeze_or_expand(y_true, y_pred) if squeeze else (y_true, y_pred)


def mean_squared_error(y_true, y_pred):
    """mean((y_true - y_pred)**2) over the last axis: one value per sample."""
    ops = _ops()
    y_true, y_pred = _pred_true(y_true, y_pred)
    return ops.mean(ops.square(ops.subtract(y_true, y_pred)), axis=-1)


def mean_absolute_error(y_true, y_pred):
    """mean(|y_true - y_pred|) over the last axis: one value per sample."""
    ops = _ops()
    y_true, y_pred = _pred_true(y_true, y_pred)
    return ops.mean(ops.abs(ops.subtract(y_true, y_pred)), axis=-1)


def mean_absolute_percentage_error(y_true, y_pred):
    """100 mean(|(y_true - y_pred) / max(|y_true|, 1e-7)|) over the last axis."""
    ops = _ops()
    y_true, y_pred = _pred_true(y_true, y_pred)
    diff = ops.abs(ops.divide(y_true - y_pred, ops.maximum(ops.abs(y_true), _EPS)))
    return 100.0 * ops.mean(diff, axis=-1)


def mean_squared_logarithmic_error(y_true, y_pred):
    """mean((log(max(y_pred, 1e-7) + 1) - log(max(y_true, 1e-7) + 1))**2) over the last
    axis."""
    ops = _ops()
    y_true, y_pred = _pred_true(y_true, y_pred)
    first = ops.log(ops.maximum(y_pred, _EPS) + 1.0)
    second = ops.log(ops.maximum(y_true, _EPS) + 1.0)
    return ops.mean(ops.square(first - second), axis=-1)


def _l2_normalize(x, axis: int):
    ops = _ops()
    square_sum = ops.sum(ops.square(x), axis=axis, keepdims=True)
    return x * ops.power(ops.maximum(square_sum, 1e-12), -0.5)


def cosine_similarity(y_true, y_pred, axis=-1):
    """-sum(l2_normalize(y_true) l2_normalize(y_pred)) along `axis`: -1 for the same
    direction, 0 for orthogonal (or zero) vectors."""
    ops = _ops()
    y_true, y_pred = _pred_true(y_true, y_pred)
    return -ops.sum(_l2_normalize(y_true, axis) * _l2_normalize(y_pred, axis), axis=axis)


def huber(y_true, y_pred, delta=1.0):
    """mean over the last axis of 0.5 e**2 where |e| <= delta, else delta |e| - 0.5 delta**2
    (e = y_pred - y_true)."""
    ops = _ops()
    y_true, y_pred = _pred_true(y_true, y_pred)
    error = ops.subtract(y_pred, y_true)
    abs_error = ops.abs(error)
    delta = float(delta)
    return ops.mean(ops.where(ops.less_equal(abs_error, delta), 0.5 * ops.square(error),
                              delta * abs_error - 0.5 * delta * delta), axis=-1)


def log_cosh(y_true, y_pred):
    """mean(log(cosh(y_pred - y_true))) over the last axis, computed stably as
    x + softplus(-2x) - log 2."""
    ops = _ops()
    y_true, y_pred = _pred_true(y_true, y_pred)
    x = y_pred - y_true
    return ops.mean(x + ops.softplus(x * -2.0) - float(np.log(2.0)), axis=-1)


def _hinge_labels(y_true):
    """0/1 labels as -1/1 (Keras converts them when every label is 0 or 1)."""
    a = np.asarray(y_true)
    if np.all((a == 0) | (a == 1)):
        return 2.0 * y_true - 1.0
    return y_true


def hinge(y_true, y_pred):
    """mean(max(1 - y_true y_pred, 0)) over the last axis (labels -1/1, or 0/1 converted)."""
    ops = _ops()
    y_true, y_pred = _pred_true(y_true, y_pred, squeeze=False)
    y_true = _hinge_labels(y_true)
    return ops.mean(ops.maximum(1.0 - y_true * y_pred, 0.0), axis=-1)


def squared_hinge(y_true, y_pred):
    """mean(max(1 - y_true y_pred, 0)**2) over the last axis."""
    ops = _ops()
    y_true, y_pred = _pred_true(y_true, y_pred, squeeze=False)
    y_true = _hinge_labels(y_true)
    return ops.mean(ops.square(ops.maximum(1.0 - y_true * y_pred, 0.0)), axis=-1)


def categorical_hinge(y_true, y_pred):
    """max(max((1 - y_true) y_pred) - sum(y_true y_pred) + 1, 0) over the last axis."""
    ops = _ops()
    y_true, y_pred = _pred_true(y_true, y_pred, squeeze=False)
    pos = ops.sum(y_true * y_pred, axis=-1)
    neg = ops.max((1.0 - y_true) * y_pred, axis=-1)
    return ops.maximum(neg - pos + 1.0, 0.0)


def kl_divergence(y_true, y_pred):
    """sum(y_true * log(y_true / y_pred)) over the last axis, y_true and y_pred clipped to
    [1e-7, 1] (Keras 3's kl_divergence): one value per sample.

    Example:
        >>> pynn.losses.kl_divergence([[0.5, 0.5]], [[0.9, 0.1]]).shape
        (1,)
    """
    ops = _ops()
    y_true, y_pred = _pred_true(y_true, y_pred, squeeze=False)
    y_true = ops.clip(y_true, _EPS, 1.0)
    y_pred = ops.clip(y_pred, _EPS, 1.0)
    return ops.sum(ops.multiply(y_true, ops.log(ops.divide(y_true, y_pred))), axis=-1)


def poisson(y_true, y_pred):
    """mean(y_pred - y_true log(y_pred + 1e-7)) over the last axis."""
    ops = _ops()
    y_true, y_pred = _pred_true(y_true, y_pred, squeeze=False)
    return ops.mean(y_pred - y_true * ops.log(y_pred + _EPS), axis=-1)


def _check_axis(axis, who: str) -> None:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"{who}: `axis` must be an int, got {axis!r}")


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """-(y log p + (1 - y) log(1 - p)) averaged along `axis`; p clipped to [1e-7, 1 - 1e-7]
    (from logits z: max(z, 0) - z y + log(1 + exp(-|z|)), exactly); label_smoothing moves the
    labels towards 0.5."""
    ops = _ops()
    _check_axis(axis, "binary_crossentropy")
    y_true, y_pred = _pred_true(y_true, y_pred, squeeze=False)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    return ops.mean(ops.binary_crossentropy(y_true, y_pred, from_logits=from_logits), axis=axis)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """-sum(y log p) along `axis`, p normalised to sum 1 and clipped (or log_softmax of
    logits); label_smoothing mixes the labels with the uniform distribution."""
    ops = _ops()
    _check_axis(axis, "categorical_crossentropy")
    y_true, y_pred = _pred_true(y_true, y_pred, squeeze=False)
    if label_smoothing:
        classes = ops.shape(y_true)[-1]
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / classes
    return ops.categorical_crossentropy(y_true, y_pred, from_logits=from_logits, axis=axis)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None,
                                    axis=-1):
    """categorical_crossentropy with integer labels: -log p[label], one value per label (labels
    shaped (batch, 1) as well as (batch,), as in Keras). With ignore_class, those labels give
    0 and are masked out of the reduction."""
    ops = _ops()
    _check_axis(axis, "sparse_categorical_crossentropy")
    y_pred = ops.convert_to_tensor(y_pred, "float32")
    y_true = ops.convert_to_tensor(y_true)
    if len(ops.shape(y_true)) == len(ops.shape(y_pred)) and ops.shape(y_true)[axis] == 1:
        y_true = ops.squeeze(y_true, axis=axis)
    if ignore_class is None:
        return ops.sparse_categorical_crossentropy(y_true, y_pred, from_logits=from_logits,
                                                   axis=axis)
    labels = np.asarray(y_true)
    valid = labels != ignore_class
    safe = np.where(valid, labels, 0).astype(np.int32)
    res = ops.sparse_categorical_crossentropy(safe, y_pred, from_logits=from_logits, axis=axis)
    res = ops.multiply(res, valid.astype(np.float32))
    res._keras_mask = valid
    return res


def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=False, alpha=0.25,
                              gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1):
    """binary cross-entropy times (1 - p_t)**gamma (and alpha / 1 - alpha with
    apply_class_balancing), averaged along `axis` (Lin et al., 2017)."""
    ops = _ops()
    y_true, y_pred = _pred_true(y_true, y_pred, squeeze=False)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        y_pred = ops.sigmoid(y_pred)
    bce = ops.binary_crossentropy(y_true, y_pred, from_logits=False)
    p_t = y_true * y_pred + (1.0 - y_true) * (1.0 - y_pred)
    focal = ops.power(1.0 - p_t, gamma) * bce
    if apply_class_balancing:
        focal = (y_true * alpha + (1.0 - y_true) * (1.0 - alpha)) * focal
    return ops.mean(focal, axis=axis)


def categorical_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False,
                                   label_smoothing=0.0, axis=-1):
    """-sum(alpha (1 - p)**gamma y log p) along `axis`, p normalised and clipped."""
    ops = _ops()
    _check_axis(axis, "categorical_focal_crossentropy")
    y_true, y_pred = _pred_true(y_true, y_pred, squeeze=False)
    if label_smoothing:
        classes = ops.shape(y_true)[-1]
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / classes
    if from_logits:
        y_pred = ops.softmax(y_pred, axis=axis)
    output = ops.clip(y_pred / ops.sum(y_pred, axis=axis, keepdims=True), _EPS, 1.0 - _EPS)
    cce = -y_true * ops.log(output)
    return ops.sum(ops.power(1.0 - output, gamma) * alpha * cce, axis=axis)


def dice(y_true, y_pred, axis=None):
    """1 - 2 sum(y_true y_pred) / (sum(y_true) + sum(y_pred) + 1e-7), over `axis` (None:
    everything, one value for the batch)."""
    ops = _ops()
    y_true, y_pred = _pred_true(y_true, y_pred, squeeze=False)
    inter = ops.sum(y_true * y_pred, axis=axis)
    return 1.0 - ops.divide(2.0 * inter, ops.sum(y_true, axis=axis) +
                            ops.sum(y_pred, axis=axis) + _EPS)


def tversky(y_true, y_pred, alpha=0.5, beta=0.5, axis=None):
    """1 - TP / (TP + alpha FP + beta FN + 1e-7), Keras's soft counts over `axis`."""
    ops = _ops()
    y_true, y_pred = _pred_true(y_true, y_pred, squeeze=False)
    inter = ops.sum(y_true * y_pred, axis=axis)
    fp = ops.sum((1.0 - y_pred) * y_true, axis=axis)
    fn = ops.sum(y_pred * (1.0 - y_true), axis=axis)
    return 1.0 - ops.divide(inter, inter + fp * alpha + fn * beta + _EPS)


def ctc(y_true, y_pred):
    """CTC loss per sample (Keras's losses.ctc): y_true (batch, max_length) integer labels, 0
    the blank and the padding (a row's length is its count of nonzero labels); y_pred (batch,
    steps, classes) logits, every step counted."""
    ops = _ops()
    if len(ops.shape(y_true)) != 2:
        raise ValueError("Targets `y_true` are expected to be a tensor of shape `(batch_size, "
                         f"max_length)` in integer format. Received: y_true.shape="
                         f"{ops.shape(y_true)}")
    if len(ops.shape(y_pred)) != 3:
        raise ValueError("Logits `y_pred` are expected to be a tensor of shape `(batch_size, "
                         "max_length, num_classes)`. Received: y_pred.shape="
                         f"{ops.shape(y_pred)}")
    labels = np.asarray(y_true).astype(np.int32)
    batch, steps = ops.shape(y_pred)[0], ops.shape(y_pred)[1]
    label_length = np.count_nonzero(labels != 0, axis=-1).astype(np.int32)
    return ops.ctc_loss(labels, y_pred, label_length, np.full((batch,), steps, np.int32),
                        mask_index=0)


def circle(y_true, y_pred, ref_labels=None, ref_embeddings=None, remove_diagonal=True,
           gamma=80, margin=0.4):
    """Circle loss (Sun et al., 2020) of L2-normalised embeddings y_pred with integer labels
    y_true, against the batch itself (or ref_embeddings/ref_labels); one value per sample,
    samples without any positive or negative pair masked out."""
    ops = _ops()
    y_pred = ops.convert_to_tensor(y_pred, "float32")
    labels = np.asarray(y_true).astype(np.int64).reshape(-1)
    ref = y_pred if ref_embeddings is None else ops.convert_to_tensor(ref_embeddings, "float32")
    ref_labels = labels if ref_labels is None else \
        np.asarray(ref_labels).astype(np.int64).reshape(-1)
    distances = ops.maximum(1.0 - ops.matmul(y_pred, ops.transpose(ref)), 0.0)
    positive = labels[:, None] == ref_labels[None, :]
    negative = ~positive
    if remove_diagonal:
        positive &= ~np.eye(len(labels), len(ref_labels), dtype=bool)
    pos_w = ops.maximum((margin + distances) * positive.astype(np.float32), 0.0)
    neg_w = ops.maximum((1.0 + margin - distances) * negative.astype(np.float32), 0.0)
    pos = -1.0 * gamma * pos_w * (margin - distances)
    neg = gamma * neg_w * ((1.0 - margin) - distances)
    p_loss = ops.logsumexp(ops.where(positive, pos, float("-inf")), axis=1)
    n_loss = ops.logsumexp(ops.where(negative, neg, float("-inf")), axis=1)
    loss = ops.softplus(p_loss + n_loss)
    loss._keras_mask = np.asarray(loss) > 0
    return loss


def categorical_generalized_cross_entropy(y_true, y_pred, q):
    """(1 - p_label**q) / q with integer labels (Zhang and Sabuncu, 2018): between
    cross-entropy (q -> 0) and mean absolute error (q = 1)."""
    ops = _ops()
    y_pred = ops.convert_to_tensor(y_pred, "float32")
    onehot = ops.one_hot(np.asarray(y_true).astype(np.int32), ops.shape(y_pred)[-1])
    p = ops.sum(y_pred * onehot, axis=-1)
    return (1.0 - ops.power(p, q)) / q


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
bce = BCE = binary_crossentropy
# Keras 2's names, which Keras 3 keeps as legacy aliases
kld = KLD = kullback_leibler_divergence = kl_divergence
logcosh = log_cosh


# ---- the classes -----------------------------------------------------------------------------

def _wrapped(fn, core_name: str = "", doc: str = "", **defaults):
    """A Loss class over `fn` whose constructor takes fn's keyword arguments (`defaults`,
    checked by name) besides name, reduction and dtype."""

    def __init__(self, *args, reduction="sum_over_batch_size", name=None, dtype=None,
                 **kwargs):
        if len(args) > len(defaults):
            raise TypeError(f"{type(self).__name__} takes at most {len(defaults)} positional "
                            f"arguments, got {len(args)}")
        given = dict(zip(defaults, args))
        for k in kwargs:
            if k not in defaults:
                raise TypeError(f"{type(self).__name__}: unexpected argument '{k}'")
            if k in given:
                raise TypeError(f"{type(self).__name__}: '{k}' given twice")
        given.update(kwargs)
        Loss.__init__(self, name=name or _DEFAULT_NAMES.get(type(self).__name__),
                      reduction=reduction, dtype=dtype)
        self._fn_kwargs = {**defaults, **given}
        self._check_args()
        self.from_logits = bool(self._fn_kwargs.get("from_logits", False))

    def call(self, y_true, y_pred):
        return fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self) -> dict:
        return {**Loss.get_config(self), **self._fn_kwargs}

    return {"__init__": __init__, "call": call, "get_config": get_config,
            "core_name": core_name, "__doc__": doc}


class _Wrapped(Loss):
    def _check_args(self) -> None:
        kw, who = self._fn_kwargs, type(self).__name__
        for k in ("from_logits", "apply_class_balancing", "remove_diagonal"):
            if k in kw:
                kw[k] = bool(kw[k])
        for k in ("label_smoothing",):
            if k in kw and not (isinstance(kw[k], (int, float)) and 0.0 <= kw[k] <= 1.0):
                raise ValueError(f"{who}: label_smoothing must be in [0, 1], got {kw[k]!r}")
        for k in ("delta", "alpha", "beta", "gamma", "q", "margin"):
            if k in kw and (isinstance(kw[k], bool) or not isinstance(kw[k], (int, float))
                            or not np.isfinite(kw[k])):
                raise ValueError(f"{who}: {k} must be a number, got {kw[k]!r}")
        if "q" in kw and not 0.0 < kw["q"] <= 1.0:
            raise ValueError(f"{who}: q must be in (0, 1], got {kw['q']!r}")
        if "axis" in kw and kw["axis"] is not None:
            _check_axis(kw["axis"], who)

    def _core_args(self) -> bool:
        kw = self._fn_kwargs
        return not kw.get("label_smoothing") and kw.get("axis", -1) == -1 and \
            kw.get("ignore_class") is None


def _class(name: str, fn, core_name: str = "", doc: str = "", **defaults) -> type:
    return type(name, (_Wrapped,), {**_wrapped(fn, core_name, doc, **defaults),
                                   "__module__": __name__, "__qualname__": name})


_DEFAULT_NAMES = {"Huber": "huber_loss"}

MeanSquaredError = _class("MeanSquaredError", mean_squared_error, "mean_squared_error",
                          "`mean((y_true - y_pred) ** 2)` over the last axis, averaged over "
                          "the batch.")
MeanAbsoluteError = _class("MeanAbsoluteError", mean_absolute_error, "mean_absolute_error",
                           "`mean(|y_true - y_pred|)` over the last axis, averaged over the "
                           "batch.")
MeanAbsolutePercentageError = _class("MeanAbsolutePercentageError",
                                     mean_absolute_percentage_error,
                                     doc=mean_absolute_percentage_error.__doc__)
MeanSquaredLogarithmicError = _class("MeanSquaredLogarithmicError",
                                     mean_squared_logarithmic_error,
                                     doc=mean_squared_logarithmic_error.__doc__)
CosineSimilarity = _class("CosineSimilarity", cosine_similarity, doc=cosine_similarity.__doc__,
                          axis=-1)
Huber = _class("Huber", huber, doc=huber.__doc__, delta=1.0)
LogCosh = _class("LogCosh", log_cosh, doc=log_cosh.__doc__)
Hinge = _class("Hinge", hinge, doc=hinge.__doc__)
SquaredHinge = _class("SquaredHinge", squared_hinge, doc=squared_hinge.__doc__)
CategoricalHinge = _class("CategoricalHinge", categorical_hinge, doc=categorical_hinge.__doc__)
KLDivergence = _class("KLDivergence", kl_divergence, doc=kl_divergence.__doc__)
Poisson = _class("Poisson", poisson, doc=poisson.__doc__)
BinaryCrossentropy = _class("BinaryCrossentropy", binary_crossentropy, "binary_crossentropy",
                            "Binary cross-entropy between 0/1 targets and probabilities (or "
                            "logits).", from_logits=False, label_smoothing=0.0, axis=-1)
CategoricalCrossentropy = _class("CategoricalCrossentropy", categorical_crossentropy,
                                 "categorical_crossentropy",
                                 "Cross-entropy between one-hot targets and class "
                                 "probabilities (or logits).",
                                 from_logits=False, label_smoothing=0.0, axis=-1)
SparseCategoricalCrossentropy = _class("SparseCategoricalCrossentropy",
                                       sparse_categorical_crossentropy,
                                       "sparse_categorical_crossentropy",
                                       "Cross-entropy between integer class labels and class "
                                       "probabilities (or logits).",
                                       from_logits=False, ignore_class=None, axis=-1)
BinaryFocalCrossentropy = _class("BinaryFocalCrossentropy", binary_focal_crossentropy,
                                 doc=binary_focal_crossentropy.__doc__,
                                 apply_class_balancing=False, alpha=0.25, gamma=2.0,
                                 from_logits=False, label_smoothing=0.0, axis=-1)
CategoricalFocalCrossentropy = _class("CategoricalFocalCrossentropy",
                                      categorical_focal_crossentropy,
                                      doc=categorical_focal_crossentropy.__doc__, alpha=0.25,
                                      gamma=2.0, from_logits=False, label_smoothing=0.0,
                                      axis=-1)
Dice = _class("Dice", dice, doc=dice.__doc__, axis=None)
Tversky = _class("Tversky", tversky, doc=tversky.__doc__, alpha=0.5, beta=0.5, axis=None)
CTC = _class("CTC", ctc, doc=ctc.__doc__)
Circle = _class("Circle", circle, doc=circle.__doc__, gamma=80.0, margin=0.4,
                remove_diagonal=True)
CategoricalGeneralizedCrossEntropy = _class("CategoricalGeneralizedCrossEntropy",
                                            categorical_generalized_cross_entropy,
                                            doc=categorical_generalized_cross_entropy.__doc__,
                                            q=0.5)

# the core's fused kinds, by core_name, and the class whose call they replace
_CORE_KINDS = {c.core_name: c for c in (MeanSquaredError, MeanAbsoluteError,
                                        BinaryCrossentropy, CategoricalCrossentropy,
                                        SparseCategoricalCrossentropy)}

_FUNCTIONS = {f.__name__: f for f in (
    mean_squared_error, mean_absolute_error, mean_absolute_percentage_error,
    mean_squared_logarithmic_error, cosine_similarity, huber, log_cosh, hinge, squared_hinge,
    categorical_hinge, kl_divergence, poisson, binary_crossentropy, categorical_crossentropy,
    sparse_categorical_crossentropy, binary_focal_crossentropy, categorical_focal_crossentropy,
    dice, tversky, circle, categorical_generalized_cross_entropy, ctc)}
_ALIASES = {"mse": mean_squared_error, "MSE": mean_squared_error, "mae": mean_absolute_error,
            "MAE": mean_absolute_error, "mape": mean_absolute_percentage_error,
            "MAPE": mean_absolute_percentage_error, "msle": mean_squared_logarithmic_error,
            "MSLE": mean_squared_logarithmic_error, "bce": binary_crossentropy,
            "BCE": binary_crossentropy, "kld": kl_divergence, "KLD": kl_divergence,
            "kullback_leibler_divergence": kl_divergence, "logcosh": log_cosh}
_CLASSES = {c.__name__: c for c in (
    MeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError, CosineSimilarity, Huber, LogCosh, Hinge, SquaredHinge,
    CategoricalHinge, KLDivergence, Poisson, BinaryCrossentropy, CategoricalCrossentropy,
    SparseCategoricalCrossentropy, BinaryFocalCrossentropy, CategoricalFocalCrossentropy, Dice,
    Tversky, Circle, CategoricalGeneralizedCrossEntropy, CTC)}
# a function's class, for compile (huber's is Huber: the function with its defaults)
_CLASS_OF = {fn: _CLASSES[c] for fn, c in (
    (mean_squared_error, "MeanSquaredError"), (mean_absolute_error, "MeanAbsoluteError"),
    (mean_absolute_percentage_error, "MeanAbsolutePercentageError"),
    (mean_squared_logarithmic_error, "MeanSquaredLogarithmicError"),
    (cosine_similarity, "CosineSimilarity"), (huber, "Huber"), (log_cosh, "LogCosh"),
    (hinge, "Hinge"), (squared_hinge, "SquaredHinge"), (categorical_hinge, "CategoricalHinge"),
    (kl_divergence, "KLDivergence"), (poisson, "Poisson"),
    (binary_crossentropy, "BinaryCrossentropy"),
    (categorical_crossentropy, "CategoricalCrossentropy"),
    (sparse_categorical_crossentropy, "SparseCategoricalCrossentropy"),
    (binary_focal_crossentropy, "BinaryFocalCrossentropy"),
    (categorical_focal_crossentropy, "CategoricalFocalCrossentropy"), (dice, "Dice"),
    (tversky, "Tversky"), (ctc, "CTC"))}


def get(identifier):
    """Keras's losses.get: a name gives the function ('mse', 'huber') or a new instance of
    the class ('Huber'); a config dict gives the object it describes; a function or a Loss
    instance comes back as it is; a Loss class gives an instance.

    Example:
        >>> pynn.losses.get("mse") is pynn.losses.mean_squared_error
        True
    """
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        obj = _FUNCTIONS.get(identifier) or _ALIASES.get(identifier) or \
            _CLASSES.get(identifier)
        if obj is None:
            raise ValueError(f"Unknown loss {identifier!r} (could not interpret the loss "
                             f"identifier). Known: "
                             f"{', '.join(sorted({*_FUNCTIONS, *_ALIASES, *_CLASSES}))}")
    else:
        obj = identifier
    if isinstance(obj, type):
        if not issubclass(obj, Loss):
            raise ValueError(f"Could not interpret loss identifier: {identifier!r}")
        return obj()
    if callable(obj):
        return obj
    raise ValueError(f"Could not interpret loss identifier: {identifier!r}")


def to_loss(identifier) -> Loss:
    """A Loss object for compile's `loss` entry: a name, a function (its class when it is one
    of pynn's, else wrapped), a Loss class or instance, or a config dict."""
    obj = get(identifier)
    if isinstance(obj, Loss):
        return obj
    cls = _CLASS_OF.get(obj)
    if cls is not None:
        return cls(name=obj.__name__)
    return LossFunctionWrapper(obj, name=getattr(obj, "__name__", None))


def serialize(loss) -> dict:
    """Keras's form of a Loss object: {module, class_name, config, registered_name}."""
    from .saving import serialize_keras_object
    return serialize_keras_object(loss)


def deserialize(config, custom_objects=None):
    """The Loss described by `serialize`'s dict (its class looked up, nothing imported)."""
    from .saving.serialization import deserialize_keras_object
    return deserialize_keras_object(config, custom_objects, "loss")
