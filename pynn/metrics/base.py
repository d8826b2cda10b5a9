"""The Metric base class, its state, and Keras 3's reductions: Mean, Sum and MeanMetricWrapper.

A metric holds running totals (its variables) that `update_state` adds a batch to and `result`
turns into its value. The built-in metrics compute a batch with vectorised NumPy, with Keras 3's
definitions (sample weights broadcast as Keras broadcasts them, y_pred's mask weighing the mean
metrics); several of them also have a core spec (`_spec`), by which fit and evaluate add the
same totals inside the core's training and test steps (see pynn/models/trainer.py).
"""

from __future__ import annotations

import re

import numpy as np

EPSILON = 1e-7  # Keras's backend.epsilon()


def snake_case(name: str) -> str:
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def div_no_nan(a, b):
    """a / b, 0 where b is 0 (Keras's divide_no_nan)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b != 0)


def as_array(x, dtype=None) -> np.ndarray:
    """A NumPy array of x (an array, a pynn.Tensor, a list or a number), cast to dtype when
    given (numbers only: a TypeError names any other kind)."""
    a = x if isinstance(x, np.ndarray) else np.asarray(x)
    if type(a) is not np.ndarray:
        a = a.view(np.ndarray)
    if dtype is None or a.dtype == dtype:
        return a
    if a.dtype.kind not in "biuf":
        raise TypeError(f"metrics compute on numbers; got an array of {a.dtype}")
    return a.astype(dtype)


def floats(x) -> np.ndarray:
    """x as float32, as Keras computes a metric (its floatx)."""
    return as_array(x, np.float32)


def mask_of(x):
    """Keras's mask of a model output on data (y_pred._keras_mask), or None."""
    return getattr(x, "_keras_mask", None)


class Masked(np.ndarray):
    """An array carrying a mask as `_keras_mask` (a model output on data does, as a Tensor):
    what fit hands the metrics outside the core for a masked output. Arrays computed from it
    are plain."""

    _keras_mask = None

    def __array_wrap__(self, arr, context=None, return_scalar=False):
        arr = arr.view(np.ndarray)
        return arr[()] if return_scalar else arr


def with_mask(values: np.ndarray, mask) -> np.ndarray:
    out = np.asarray(values).view(Masked)
    out._keras_mask = mask
    return out


def squeeze_or_expand_to_same_rank(x1, x2, expand_rank_1: bool = True):
    """Keras's: a trailing axis of 1 on the array of one more rank is squeezed, or, when the
    other is rank 1 (and expand_rank_1), the other gains one."""
    r1, r2 = x1.ndim, x2.ndim
    if r1 == r2:
        return x1, x2
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = x2[..., None]
        else:
            x1 = x1[..., 0]
    if r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = x1[..., None]
        else:
            x2 = x2[..., 0]
    return x1, x2


def apply_mask(sample_weight, mask):
    """Keras's apply_mask with reduction 'sum': the mask (0/1) as weights, times sample_weight."""
    if mask is None:
        return sample_weight
    m = as_array(mask).astype(np.float32)
    if sample_weight is None:
        return m
    m, w = squeeze_or_expand_to_same_rank(m, floats(sample_weight))
    return w * m


def reduce_to_samplewise_values(values, sample_weight, reduce_fn):
    """Keras's: values weighed by sample_weight (broadcast to them after reducing the axes the
    weights lack) and reduced to one value per sample; the weights reduced likewise."""
    mask = mask_of(values)
    values = floats(values)
    if sample_weight is not None:
        sample_weight = floats(sample_weight)
        if mask is not None:
            sample_weight = apply_mask(sample_weight, mask)
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        w_nd, v_nd = sample_weight.ndim, values.ndim
        if v_nd > w_nd:
            values = reduce_fn(values, axis=tuple(range(w_nd, v_nd)))
        try:
            sample_weight = np.broadcast_to(sample_weight, values.shape)
        except ValueError:
            raise ValueError(f"sample_weight of shape {sample_weight.shape} does not broadcast "
                             f"to the values' shape {values.shape}: give one weight per sample "
                             "(or one per value)") from None
        values = values * sample_weight
        if w_nd > 1:
            sample_weight = reduce_fn(sample_weight, axis=tuple(range(1, w_nd)))
    if values.ndim > 1:
        values = reduce_fn(values, axis=tuple(range(1, values.ndim)))
    return values, sample_weight


# ---- state ------------------------------------------------------------------------------------

class MetricVariable(np.ndarray):
    """One of a metric's state arrays, with Keras's Variable methods (assign, assign_add,
    assign_sub, numpy). Arithmetic on it gives plain arrays. The built-in metrics keep float64
    totals; `Metric.add_variable` makes float32 ones by default, as Keras does."""

    def __new__(cls, shape, dtype="float32", name: str = "variable"):
        obj = np.zeros(tuple(shape), dtype=dtype).view(cls)
        obj._name = name
        return obj

    def __array_finalize__(self, obj):
        self._name = getattr(obj, "_name", "variable")

    def __array_wrap__(self, arr, context=None, return_scalar=False):
        arr = arr.view(np.ndarray)
        return arr[()] if return_scalar else arr

    def __reduce__(self):
        return _rebuild_variable, (self.numpy(), self._name)

    @property
    def name(self) -> str:
        return self._name

    @property
    def path(self) -> str:
        return self._name

    @property
    def trainable(self) -> bool:
        return False

    @property
    def value(self) -> np.ndarray:
        return self.view(np.ndarray)

    def numpy(self) -> np.ndarray:
        return self.view(np.ndarray).copy()

    def assign(self, value) -> MetricVariable:
        v = np.asarray(value)
        if v.shape != self.shape and v.size != 1:
            raise ValueError(f"Variable '{self._name}' has shape {self.shape}, cannot assign a "
                             f"value of shape {v.shape}")
        self.view(np.ndarray)[...] = v.reshape(()) if v.shape != self.shape else v
        return self

    def assign_add(self, delta) -> MetricVariable:
        return self.assign(self.view(np.ndarray) + np.asarray(delta))

    def assign_sub(self, delta) -> MetricVariable:
        return self.assign(self.view(np.ndarray) - np.asarray(delta))


def _rebuild_variable(values, name):
    v = MetricVariable(values.shape, values.dtype, name)
    v.view(np.ndarray)[...] = values
    return v


_DTYPES = {"int": "int32", "float": "float32"}


def standardize_dtype(dtype, who: str) -> str:
    """A dtype name ('float32', 'int32', ...; None: 'float32'), checked."""
    if dtype is None:
        return "float32"
    name = getattr(dtype, "name", dtype)  # a DTypePolicy or a NumPy dtype
    if isinstance(name, str) and "_" in name and name.startswith("mixed_"):
        name = name.split("_", 1)[1]
    name = _DTYPES.get(name, name) if isinstance(name, str) else name
    try:
        kind = np.dtype(name).kind
    except TypeError:
        kind = None
    if name == "bfloat16":
        return "bfloat16"
    if not isinstance(name, str) or kind not in ("f", "i", "u"):
        raise ValueError(f"{who}: dtype must be a float or int dtype name such as 'float32', "
                         f"got {dtype!r}")
    return str(np.dtype(name))


# ---- Metric -----------------------------------------------------------------------------------

class Metric:
    """Encapsulates a metric's logic and state, as Keras 3's keras.metrics.Metric.

    Subclasses create their state in `__init__` with `add_variable`, add a batch in
    `update_state` (`self.total.assign_add(...)`) and compute the value in `result`;
    `reset_state` sets every variable back to 0. Calling a metric (`m(y_true, y_pred)`) updates
    it and returns its result.

    Args:
        dtype: the dtype of the metric's computations ('float32').
        name: its name (the snake_case class name when None).

    Example:
        >>> class Positives(pynn.metrics.Metric):
        ...     def __init__(self, name="positives", **kwargs):
        ...         super().__init__(name=name, **kwargs)
        ...         self.count = self.add_variable(shape=(), initializer="zeros", name="count")
        ...     def update_state(self, y_true, y_pred, sample_weight=None):
        ...         self.count.assign_add(float((np.asarray(y_pred) > 0.5).sum()))
        ...     def result(self):
        ...         return self.count
    """

    def __init__(self, dtype=None, name: str | None = None):
        if name is not None and not isinstance(name, str):
            raise ValueError(f"{type(self).__name__}: name must be a string, got {name!r}")
        self.name = name or snake_case(type(self).__name__)
        self._dtype = standardize_dtype(dtype, type(self).__name__)
        self._variables: list = []

    # -- state ----------------------------------------------------------------------------------
    def add_variable(self, shape=(), initializer=None, dtype=None, aggregation: str = "sum",
                     name: str | None = None) -> MetricVariable:
        """A new state variable (zeros, or the initializer's values), tracked in `variables`."""
        if not hasattr(self, "_variables"):
            raise RuntimeError("You forgot to call `super().__init__()` in the `__init__()` "
                               "method. Go add it!")
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape or ())
        dtype = standardize_dtype(dtype or self._dtype, type(self).__name__)
        dtype = "float32" if dtype == "bfloat16" else dtype
        v = MetricVariable(shape, dtype, name or f"variable_{len(self._variables)}")
        if initializer is not None and not (isinstance(initializer, str)
                                            and initializer.lower() == "zeros"):
            from .. import initializers
            v.assign(initializers.get(initializer)(shape))
        self._variables.append(v)
        return v

    def add_weight(self, shape=(), initializer=None, dtype=None, name: str | None = None):
        return self.add_variable(shape=shape, initializer=initializer, dtype=dtype, name=name)

    def _state(self, name: str, shape=()) -> MetricVariable:
        """A float64 total of a built-in metric."""
        return self.add_variable(shape, None, "float64", name=name)

    @property
    def variables(self) -> list:
        return list(getattr(self, "_variables", []))

    @property
    def dtype(self) -> str:
        return self._dtype

    # -- Keras's interface ----------------------------------------------------------------------
    def reset_state(self) -> None:
        """Sets every state variable back to 0."""
        for v in self.variables:
            v.assign(np.zeros(v.shape, v.dtype))

    def update_state(self, *args, **kwargs) -> None:
        """Adds a batch to the state."""
        raise NotImplementedError(f"{type(self).__name__} must define update_state")

    def result(self):
        """The metric's value from its state: a float, or an array for a metric of several
        values."""
        raise NotImplementedError(f"{type(self).__name__} must define result")

    def __call__(self, *args, **kwargs):
        if not hasattr(self, "_variables"):
            raise RuntimeError("You forgot to call `super().__init__()` in the `__init__()` "
                               "method. Go add it!")
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self._dtype}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"

    # -- the core's part (built-in metrics) -----------------------------------------------------
    def _spec(self):
        """The core's spec of this metric (name, k, threshold, num_thresholds, from_logits)
        when fit and evaluate can add it inside the core's steps, else None."""
        return None

    @property
    def _size(self) -> int:
        """How many accumulators the core adds per batch for this metric."""
        from .. import _core
        spec = self._spec()
        return _core.metric_size(spec) if spec is not None else 0

    def _load(self, sums: np.ndarray, count: float) -> None:
        """Sets the state from the core's totals for this metric (its accumulators summed over
        the batches, and the samples, or the mask's weight, they cover)."""
        raise NotImplementedError

    def _combine(self, sums: np.ndarray, count: float):
        """The value of the core's totals; the state becomes them."""
        self._load(sums, count)
        return self.result()


def result_value(x):
    """A metric's result as Keras users read it: a float for one value, else a float32 array."""
    a = np.asarray(x)
    return float(a) if a.ndim == 0 else a.astype(np.float32)


# ---- reductions -------------------------------------------------------------------------------

class Sum(Metric):
    """The (weighted) sum of the values given to update_state.

    Example:
        >>> m = pynn.metrics.Sum()
        >>> m.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
        >>> float(m.result())
        4.0
    """

    def __init__(self, name: str = "sum", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self._state("total")

    def update_state(self, values, sample_weight=None) -> None:
        values, _ = reduce_to_samplewise_values(values, sample_weight, np.sum)
        self.total.assign_add(np.sum(values, dtype=np.float64))

    def result(self) -> float:
        return float(self.total)


class Mean(Metric):
    """The (weighted) mean of the values given to update_state: `total / count`.

    Example:
        >>> m = pynn.metrics.Mean()
        >>> m.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
        >>> float(m.result())
        2.0
    """

    def __init__(self, name: str = "mean", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self._state("total")
        self.count = self._state("count")

    def update_state(self, values, sample_weight=None) -> None:
        values, sample_weight = reduce_to_samplewise_values(values, sample_weight, np.mean)
        self._add(values, sample_weight)

    def _add(self, values, sample_weight) -> None:
        self.total.assign_add(np.sum(values, dtype=np.float64))
        if sample_weight is not None:
            n = np.sum(sample_weight, dtype=np.float64)
        else:
            n = values.shape[0] if values.ndim >= 1 else 1
        self.count.assign_add(n)

    def result(self) -> float:
        return float(div_no_nan(self.total, self.count))

    def _load(self, sums, count) -> None:
        self.total.assign(float(sums[0]))
        self.count.assign(float(count))


class MeanMetricWrapper(Mean):
    """The mean of a per-sample metric function `fn(y_true, y_pred, **kwargs)` over everything
    given to update_state; y_pred's mask (`_keras_mask`) weighs the values, as Keras's does.

    Args:
        fn: the function; its result has one value per sample (or per row of a sample).
        name: the metric's name ('mean_metric_wrapper'; compile names it after fn).
        dtype: the dtype of its computations.
        **kwargs: passed on to fn.

    Example:
        >>> m = pynn.metrics.MeanMetricWrapper(lambda t, p: np.abs(t - p).max(-1), name="maxerr")
    """

    def __init__(self, fn, name: str | None = None, dtype=None, **kwargs):
        if not callable(fn):
            raise ValueError(f"MeanMetricWrapper: fn must be a function, got {fn!r}")
        super().__init__(name=name or "mean_metric_wrapper", dtype=dtype)
        self._fn = fn
        self._fn_kwargs = kwargs

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        mask = mask_of(y_pred)
        values = self._values(y_true, y_pred)
        if mask is not None:
            sample_weight = apply_mask(sample_weight, mask)
        super().update_state(values, sample_weight=sample_weight)

    def _values(self, y_true, y_pred):
        values = self._fn(y_true, y_pred, **self._fn_kwargs)
        mask = mask_of(values)
        values = as_array(values)
        return with_mask(values, mask) if mask is not None else values

    def get_config(self) -> dict:
        from . import serialize_function
        return {**super().get_config(), "fn": serialize_function(self._fn), **self._fn_kwargs}

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        if "fn" in config:
            from . import deserialize_function
            config["fn"] = deserialize_function(config["fn"])
        return cls(**config)


class _FunctionMetric(MeanMetricWrapper):
    """A built-in MeanMetricWrapper: its function and keyword arguments are fixed by the class,
    its config holds the class's own arguments."""

    _fn_default = None

    def __init__(self, name=None, dtype=None, **kwargs):
        super().__init__(type(self)._fn_default, name=name, dtype=dtype, **kwargs)

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self._dtype}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)
