"""Turning user data (NumPy arrays of any numeric dtype, pandas objects, nested lists) into the
arrays the core borrows: converted once, as a whole, never element by element.

Here are the checks and conversions fit, evaluate and predict apply to x, y and sample_weight
(one array per input or output, matched by position or by name, against the model's shapes and
losses), the batches of a PyDataset or generator, and the data a Python step receives.
"""

import numpy as np

from ..tensor import Tensor
from ..utils.shape_utils import shape_str


def to_array(data, what: str) -> np.ndarray:
    """A NumPy array of real numbers from `data`, or a TypeError/ValueError naming `what`."""
    if data is None:
        raise ValueError(f"{what} is missing")
    if hasattr(data, "to_numpy") and not isinstance(data, np.ndarray):  # pandas
        data = data.to_numpy()
    try:
        a = np.asarray(data)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{what} could not be read as an array: {e}") from None
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{what} must hold real numbers, got dtype {a.dtype}")
    if a.ndim == 0:
        raise ValueError(f"{what} must have a batch axis, got a scalar")
    return a


def to_float32(data, what: str) -> np.ndarray:
    """C-contiguous float32 (no copy when it already is)."""
    return np.ascontiguousarray(to_array(data, what), dtype=np.float32)


def to_int32(data, what: str) -> np.ndarray:
    """C-contiguous int32 indices (no copy when it already is); floats must be whole numbers."""
    a = to_array(data, what)
    if a.dtype.kind == "f" and not np.array_equal(a, np.round(a)):
        raise ValueError(f"{what} must hold integer indices for this model's int32 input")
    if a.size and (a.min() < -2**31 or a.max() >= 2**31):
        raise ValueError(f"{what} holds values outside the int32 range")
    return np.ascontiguousarray(a, dtype=np.int32)


def is_batch_source(data) -> bool:
    """Whether `data` gives batches (a PyDataset, a generator or another iterator) rather than
    being the samples themselves."""
    from ..utils.dataset import PyDataset

    return isinstance(data, PyDataset) or (hasattr(data, "__next__") and
                                           not isinstance(data, (np.ndarray, list, tuple, dict)))


def check_steps(steps, what: str):
    """steps (per epoch) must be None or a positive int."""
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or
                              steps < 1):
        raise ValueError(f"{what}: steps must be a positive int or None, got {steps!r}")
    return steps


class BatchSource:
    """Batches from a PyDataset or an iterator, an epoch at a time, as `(x, y, sample_weight)`
    tuples of what each batch holds (y and sample_weight None when it holds fewer)."""

    def __init__(self, data, steps, what: str):
        check_steps(steps, what)
        self.data, self.what = data, what
        self.indexed = hasattr(data, "__getitem__") and hasattr(data, "__len__")
        if self.indexed:
            size = len(data)
            if size < 1:
                raise ValueError(f"{what}: the dataset holds no batches")
            steps = size if steps is None else min(steps, size)
        self.steps = steps
        self.exhausted = False

    def epoch(self):
        """One epoch's batches: `steps` of them, or, for an iterator without steps, until it
        ends (it cannot restart: later epochs find it exhausted)."""
        if self.indexed:
            if hasattr(self.data, "on_epoch_begin"):
                self.data.on_epoch_begin()
            for i in range(self.steps):
                yield self._unpack(self.data[i])
            if hasattr(self.data, "on_epoch_end"):
                self.data.on_epoch_end()
            return
        for _ in range(self.steps) if self.steps is not None else iter(int, 1):
            try:
                item = next(self.data)
            except StopIteration:
                self.exhausted = True
                return
            yield self._unpack(item)

    def _unpack(self, item):
        if isinstance(item, tuple) and 1 <= len(item) <= 3:
            return item + (None,) * (3 - len(item))
        if isinstance(item, tuple):
            raise ValueError(f"{self.what}: a batch must be x, (x,), (x, y) or (x, y, "
                             f"sample_weight), got a tuple of {len(item)}")
        return item, None, None


def unpack_x_y_sample_weight(data):
    """(x, y, sample_weight) of a step's data, as Keras's keras.utils.unpack_x_y_sample_weight."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) == 1:
        return data[0], None, None
    if len(data) == 2:
        return data[0], data[1], None
    if len(data) == 3:
        return data
    raise ValueError(f"Data is expected to be in format `x`, `(x,)`, `(x, y)`, or "
                     f"`(x, y, sample_weight)`, found: {data}")


# -- samples of prepared data: one array, or lists and dicts of them (None where absent) ---------
def n_samples(x) -> int:
    """Samples in inputs or targets: one array, or a list (or dict) with one per input/output."""
    if isinstance(x, dict):
        x = next(iter(x.values()))
    if isinstance(x, (list, tuple)):
        x = x[0]
    return int(np.shape(x)[0])


def take(x, rows):
    """The rows (a slice or an index array) of inputs, targets or sample weights: one array, or
    lists and dicts of them, None where there is none."""
    if x is None:
        return None
    if isinstance(x, dict):
        return {k: take(v, rows) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [take(v, rows) for v in x]
    return x[rows]


def is_arrays(x) -> bool:
    """Whether x is a list or tuple of arrays (several inputs or targets), not nested data."""
    return isinstance(x, (list, tuple)) and bool(x) and all(
        isinstance(a, (np.ndarray, Tensor)) or hasattr(a, "to_numpy") for a in x)


def by_name(data, names: list) -> tuple:
    """A dict (by name) or a list/tuple (in order) as one entry per name: ("ok", entries), or
    what is wrong: ("unknown", key), ("missing", name) or ("count", length)."""
    if isinstance(data, dict):
        unknown = [k for k in data if k not in names]
        if unknown:
            return "unknown", unknown[0]
        missing = [k for k in names if k not in data]
        if missing:
            return "missing", missing[0]
        return "ok", [data[k] for k in names]
    if len(data) != len(names):
        return "count", len(data)
    return "ok", list(data)


# -- a Python step's data (trainer.py's loop) ---------------------------------------------------
def as_arrays(x):
    """x as NumPy arrays (nested in the lists and dicts it came in), float32 or int32."""
    if x is None:
        return None
    if isinstance(x, dict):
        return {k: as_arrays(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)) and x and not np.isscalar(x[0]) and \
            np.ndim(x[0]) > 0 and len({np.shape(v)[0] for v in x}) == 1 and \
            not isinstance(x[0], (int, float)):
        return [as_arrays(v) for v in x]
    a = np.asarray(x)
    if a.dtype.kind in "iub":
        return a.astype(np.int32)
    if a.dtype.kind == "f":
        return a.astype(np.float32)
    raise TypeError(f"the data must hold numbers, got dtype {a.dtype}")


def as_tensors(x):
    """A batch for a step: arrays as Tensors, in their lists and dicts."""
    if x is None:
        return None
    if isinstance(x, dict):
        return {k: as_tensors(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [as_tensors(v) for v in x]
    return Tensor(np.ascontiguousarray(x))


# -- what the core's steps take, checked against the model ----------------------------------------
def prepare_x(model, x, what: str = "x"):
    """The inputs as the core takes them: one contiguous array per input (the array itself
    for a one-input model, else a list in input order). Builds the model's core for them when
    it has none yet (or for their lengths, when the model takes any)."""
    if vars(model).get("_host") is not None:  # strings: its host layers run first (host.py)
        return model._host.prepare(model, x, what)
    if model._n_inputs > 1:
        return prepare_xs(model, x, what)
    x = single_input(model, x, what)
    x = to_int32(x, what) if model._input_dtype == "int32" else to_float32(x, what)
    if x.ndim == 1:  # a vector of scalars is N samples of one feature, as Keras 2 read it
        x = x.reshape(-1, 1)
    if x.shape[0] == 0:
        raise ValueError(f"{what} is empty: it has no samples")
    model._ensure_built(x)
    want = tuple(model._core.node_shape(0))
    if x.shape[1:] + (1,) == want and len(want) > 1:
        # Keras adds a trailing axis of 1 (images without their channel axis)
        x = np.ascontiguousarray(x.reshape((x.shape[0],) + want))
    if x.shape[1:] != want:
        raise ValueError(f"Input of model '{model.name}' has shape {shape_str((None,) + want)}"
                         f", but the data has shape {shape_str(x.shape)}")
    return x


def single_input(model, x, what: str):
    """The one input array of `x`: Keras also accepts it inside a list or a dict."""
    if isinstance(x, dict):
        x = list(x.values())
    elif not is_arrays(x):
        return x
    if len(x) != 1:
        raise ValueError(f"Model '{model.name}' has 1 input, but {what} holds {len(x)} arrays")
    return x[0]


def match(model, data, names: list, what: str, kind: str) -> list:
    """data for several inputs (or outputs) as a list in their order: from a list or tuple
    (in order) or a dict (by name)."""
    n = len(names)
    if isinstance(data, (dict, list, tuple)):
        problem, detail = by_name(data, names)
        if problem == "unknown":
            raise ValueError(f"{what} has an entry '{detail}', but model '{model.name}' "
                             f"has no {kind} of that name; its {kind}s are {names}")
        if problem == "missing":
            raise ValueError(f"{what} has no entry for {kind} '{detail}' of model "
                             f"'{model.name}' (its {kind}s are {names})")
        if problem == "count":
            raise ValueError(f"Model '{model.name}' has {n} {kind}s, but {what} holds "
                             f"{detail} arrays")
        return detail
    if data is None:
        raise ValueError(f"{what} is missing")
    raise ValueError(f"Model '{model.name}' has {n} {kind}s, but {what} is a single array: "
                     f"pass a list of {n} arrays or a dict keyed by {kind} name {names}")


def prepare_xs(model, x, what: str) -> list:
    """prepare_x for a model of several inputs: a list of arrays, in input order."""
    model._assert_built("its inputs")
    converted = []
    for k, (name, a) in enumerate(zip(model._input_names,
                                      match(model, x, model._input_names, what, "input"))):
        label = f"{what}['{name}']"
        a = (to_int32(a, label) if model._input_dtypes[k] == "int32"
             else to_float32(a, label))
        converted.append(a.reshape(-1, 1) if a.ndim == 1 else a)
    if vars(model).get("_dyn_shapes"):
        model._use_shapes([a.shape[1:] for a in converted])
    arrays, n = [], None
    for k, (name, a) in enumerate(zip(model._input_names, converted)):
        label = f"{what}['{name}']"
        want = tuple(model._core.node_shape(k))
        if a.shape[1:] != want:
            raise ValueError(f"Input '{name}' of model '{model.name}' has shape "
                             f"{shape_str((None,) + want)}, but the data has shape "
                             f"{shape_str(a.shape)}")
        if n is None:
            n = a.shape[0]
        elif a.shape[0] != n:
            raise ValueError(f"Data cardinality is ambiguous: {what}['{model._input_names[0]}'"
                             f"] has {n} samples but {label} has {a.shape[0]}; make sure "
                             "all arrays contain the same number of samples")
        arrays.append(a)
    if n == 0:
        raise ValueError(f"{what} is empty: it has no samples")
    return arrays


def prepare_y(model, y, n: int, what: str = "y"):
    """The targets as the core takes them: one array per output (the array itself for a
    one-output model, else a list in output order)."""
    if model._n_outputs == 1:
        if isinstance(y, dict) or (is_arrays(y) and len(y) == 1):
            y = single_input(model, y, what)
        return _prepare_one_y(model, y, n, what, 0)
    ys = match(model, y, model._output_names, what, "output")
    return [_prepare_one_y(model, a, n, f"{what}['{name}']", k)
            for k, (name, a) in enumerate(zip(model._output_names, ys))]


def _prepare_one_y(model, y, n: int, what: str, k: int) -> np.ndarray:
    """The targets of output k: integer labels for sparse_categorical_crossentropy (checked
    against the output's classes), else float32 of the output's shape."""
    y = to_array(y, what)
    if y.shape[0] != n:
        raise ValueError(f"Data cardinality is ambiguous: x has {n} samples but {what} has "
                         f"{y.shape[0]}; make sure all arrays contain the same number of "
                         "samples")
    out = tuple(model._output_sample_shapes[k])
    if model._losses[k].core_name == "sparse_categorical_crossentropy":
        classes = out[-1]
        want = int(np.prod(out[:-1], dtype=np.int64))
        if y.size != n * want:
            raise ValueError(f"{what}: sparse_categorical_crossentropy needs one integer label"
                             f" per sample (shape {shape_str((None,) + out[:-1])}), got "
                             f"{shape_str(y.shape)}")
        if y.dtype.kind == "f" and not np.array_equal(y, np.floor(y)):
            raise ValueError(f"{what}: class labels must be integers")
        lo, hi = (y.min(), y.max()) if y.size else (0, 0)
        if lo < 0 or hi >= classes:
            raise ValueError(f"{what}: labels must lie in 0..{classes - 1} for an output of "
                             f"{classes} classes, got values from {lo} to {hi}")
        return np.ascontiguousarray(y.reshape((n,) + out[:-1]), dtype=np.int32)
    want = int(np.prod(out, dtype=np.int64))
    if y.size != n * want:
        raise ValueError(f"{what}: the model's output has shape {shape_str((None,) + out)}, "
                         f"the targets have shape {shape_str(y.shape)}")
    return np.ascontiguousarray(y.reshape((n,) + out), dtype=np.float32)


def prepare_weights(model, sample_weight, class_weight, y, n: int,
                    what: str = "sample_weight"):
    """The per-sample loss weights a step takes: None, or (one output) a float32 vector of
    n, or a list with a vector or None per output. sample_weight times, for class_weight,
    the weight of each sample's class (read from y as Keras reads it: the integer label,
    the argmax of a one-hot row, or a rounded single value)."""
    if sample_weight is None and class_weight is None:
        return None
    names = model._output_names or [model.name]
    if sample_weight is None:
        parts = [None] * len(names)
    elif len(names) > 1 and isinstance(sample_weight, (list, tuple, dict)):
        parts = match(model, sample_weight, names, what, "output")
    else:
        parts = [sample_weight] * len(names)
    out = []
    for part in parts:
        if part is None:
            out.append(None)
            continue
        w = np.asarray(part, dtype=np.float32).reshape(-1)
        if w.shape[0] != n:
            raise ValueError(f"{what} holds {w.shape[0]} weights for {n} samples")
        if not (np.isfinite(w).all() and (w >= 0).all()):
            raise ValueError(f"{what}: weights must be finite and >= 0")
        out.append(w)
    if class_weight is not None:
        if len(names) > 1:
            raise ValueError("`class_weight` is only supported for Models with a single "
                             "output.")
        if not isinstance(class_weight, dict):
            raise ValueError(f"class_weight must be a dict {{class: weight}}, got "
                             f"{type(class_weight).__name__}")
        labels = y.reshape(n, -1)
        labels = labels.argmax(-1) if labels.shape[1] > 1 else np.rint(labels[:, 0])
        labels = labels.astype(np.int64)
        table = np.ones(max([int(k) for k in class_weight] + [int(labels.max(initial=0))])
                        + 1, np.float32)
        for k, v in class_weight.items():
            if int(k) < 0 or not (float(v) >= 0 and np.isfinite(float(v))):
                raise ValueError(f"class_weight: class {k} with weight {v}: classes are "
                                 "indices >= 0 and weights finite and >= 0")
            table[int(k)] = float(v)
        cw = table[np.clip(labels, 0, None)]
        out[0] = cw if out[0] is None else out[0] * cw
    return out[0] if len(out) == 1 else out


def prepare_batch(model, x, y, sw, class_weight, what: str):
    """One batch from a PyDataset or generator, made ready for a core step: (x, y,
    sample_weight, size)."""
    if y is None:
        raise ValueError(f"{what}: each batch must hold its targets, (x, y) or (x, y, "
                         "sample_weight); this one holds only x")
    x = prepare_x(model, x, f"{what}: a batch's x")
    n = n_samples(x)
    y = prepare_y(model, y, n, f"{what}: a batch's y")
    return x, y, prepare_weights(model, sw, class_weight, y, n), n
