"""Turning user data (NumPy arrays of any numeric dtype, pandas objects, nested lists) into the
arrays the core borrows: converted once, as a whole, never element by element."""

import numpy as np


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


def shape_str(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


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
