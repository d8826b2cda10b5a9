"""The training loop of a model whose steps are Python: a `train_step`, `test_step` or
`predict_step` of the user's (Keras 3's way of customising fit), or a model compiled without a
loss.

Such a step runs on the tape: it calls the model (or its parts) on the batch, computes a loss with
pynn.ops, takes gradients with a GradientTape (or loss.backward()) and applies them with the
optimizer. The loop here does what fit, evaluate and predict do around it: batches (shuffled each
epoch), callbacks, the progress bar, History, validation, and resetting `model.metrics` at the
start of each epoch. The built-in steps of a compiled model take the core's fused path instead
(model.py).
"""

from __future__ import annotations

import math

import numpy as np

from ..callbacks import CallbackList
from ..tensor import Tensor
from ..utils import random as pn_random
from .data import BatchSource, is_batch_source


def _rows(x) -> int:
    if isinstance(x, dict):
        x = next(iter(x.values()))
    if isinstance(x, (list, tuple)):
        x = x[0]
    return int(np.shape(x)[0])


def _take(x, rows):
    if x is None:
        return None
    if isinstance(x, dict):
        return {k: _take(v, rows) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_take(v, rows) for v in x]
    return x[rows]


def _as_arrays(x):
    """x as NumPy arrays (nested in the lists and dicts it came in), float32 or int32."""
    if x is None:
        return None
    if isinstance(x, dict):
        return {k: _as_arrays(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)) and x and not np.isscalar(x[0]) and \
            np.ndim(x[0]) > 0 and len({np.shape(v)[0] for v in x}) == 1 and \
            not isinstance(x[0], (int, float)):
        return [_as_arrays(v) for v in x]
    a = np.asarray(x)
    if a.dtype.kind in "iub":
        return a.astype(np.int32)
    if a.dtype.kind == "f":
        return a.astype(np.float32)
    raise TypeError(f"the data must hold numbers, got dtype {a.dtype}")


def _tensors(x):
    """A batch for a step: arrays as Tensors, in their lists and dicts."""
    if x is None:
        return None
    if isinstance(x, dict):
        return {k: _tensors(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_tensors(v) for v in x]
    return Tensor(np.ascontiguousarray(x))


def _data(x, y, sw) -> tuple:
    """What a step receives, as Keras 3 gives it: (x,), (x, y) or (x, y, sample_weight)."""
    if y is None and sw is None:
        return (x,)
    return (x, y) if sw is None else (x, y, sw)


def _scalar_logs(logs) -> dict:
    """A step's returned logs as floats (Tensors, arrays and numbers)."""
    if logs is None:
        return {}
    if not isinstance(logs, dict):
        raise TypeError(f"a train_step or test_step must return a dict of metric values, got "
                        f"{type(logs).__name__}")
    out = {}
    for k, v in logs.items():
        if isinstance(v, dict):  # Keras flattens nested results
            out.update(_scalar_logs(v))
            continue
        a = np.asarray(v)
        out[k] = float(a) if a.size == 1 else a
    return out


def _reset(model) -> None:
    for m in model.metrics:
        m.reset_state()


def _batches(model, data, batch_size: int, shuffle: bool, steps):
    """Batches of (x, y, sw) arrays, or of a BatchSource."""
    if isinstance(data, BatchSource):
        for bx, by, bsw in data.epoch():
            yield _as_arrays(bx), _as_arrays(by), _as_arrays(bsw)
        return
    x, y, sw = data
    n = _rows(x)
    order = pn_random.generator().permutation(n) if shuffle else np.arange(n)
    n_steps = -(-n // batch_size)
    if steps is not None:
        n_steps = min(n_steps, steps)
    for step in range(n_steps):
        idx = order[step * batch_size:(step + 1) * batch_size]
        if not shuffle:
            idx = slice(step * batch_size, (step + 1) * batch_size)
        yield _take(x, idx), _take(y, idx), _take(sw, idx)


def fit(model, x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data,
        shuffle, sample_weight, initial_epoch, steps_per_epoch, validation_steps):
    if model.optimizer is None:
        raise ValueError(f"Model '{model.name}': compile() it (with an optimizer) before fit")
    if is_batch_source(x):
        train = BatchSource(x, steps_per_epoch, "fit")
        steps = train.steps
    else:
        x, y, sw = _as_arrays(x), _as_arrays(y), _as_arrays(sample_weight)
        n = _rows(x)
        if validation_split:
            split = int(math.floor(n * (1.0 - validation_split)))
            if split == 0 or split == n:
                raise ValueError(f"validation_split={validation_split} leaves no training or "
                                 f"no validation samples out of {n}")
            head, tail = slice(None, split), slice(split, None)
            validation_data = (_take(x, tail), _take(y, tail)) + (
                (_take(sw, tail),) if sw is not None else ())
            x, y, sw = _take(x, head), _take(y, head), _take(sw, head)
            n = split
        train = (x, y, sw)
        steps = -(-n // batch_size)
        if steps_per_epoch is not None:
            steps = min(steps, steps_per_epoch)
    val = _validation(validation_data, validation_steps)
    cb = callbacks if isinstance(callbacks, CallbackList) else CallbackList(
        callbacks, add_history=True, add_progbar=verbose != 0, model=model, verbose=verbose,
        epochs=epochs, steps=steps)
    model._validates = val is not None
    model.stop_training = False
    logs: dict = {}
    cb.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        _reset(model)
        cb.on_epoch_begin(epoch)
        step_logs: dict = {}
        for step, (bx, by, bsw) in enumerate(_batches(model, train, batch_size, shuffle,
                                                      steps_per_epoch)):
            cb.batch("on_train_batch_begin", step)
            step_logs = _scalar_logs(model.train_step(_data(_tensors(bx), _tensors(by),
                                                            _tensors(bsw))))
            cb.batch("on_train_batch_end", step, step_logs)
            if model.stop_training:
                break
        logs = dict(step_logs)
        if val is not None:
            vlogs = _evaluate_batches(model, val, batch_size, cb)
            logs.update({"val_" + k: v for k, v in vlogs.items()})
        cb.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    cb.on_train_end(logs)
    return model.history


def _validation(validation_data, steps):
    if validation_data is None:
        return None
    if is_batch_source(validation_data):
        return BatchSource(validation_data, steps, "validation_data")
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise ValueError("validation_data must be a tuple (x_val, y_val) or (x_val, y_val, "
                         "val_sample_weight)")
    xv, yv = _as_arrays(validation_data[0]), _as_arrays(validation_data[1])
    swv = _as_arrays(validation_data[2]) if len(validation_data) == 3 else None
    return (xv, yv, swv)


def _evaluate_batches(model, data, batch_size: int, cb) -> dict:
    _reset(model)
    cb.on_test_begin()
    logs: dict = {}
    for step, (bx, by, bsw) in enumerate(_batches(model, data, batch_size, False, None)):
        cb.batch("on_test_batch_begin", step)
        logs = _scalar_logs(model.test_step(_data(_tensors(bx), _tensors(by), _tensors(bsw))))
        cb.batch("on_test_batch_end", step, logs)
    cb.on_test_end(logs)
    return logs


def evaluate(model, x, y, batch_size, verbose, sample_weight, steps, callbacks, return_dict):
    if is_batch_source(x):
        data = BatchSource(x, steps, "evaluate")
        n_steps = data.steps
    else:
        data = (_as_arrays(x), _as_arrays(y), _as_arrays(sample_weight))
        n_steps = -(-_rows(data[0]) // batch_size)
    cb = callbacks if isinstance(callbacks, CallbackList) else CallbackList(
        callbacks, add_progbar=verbose != 0, model=model, verbose=verbose, epochs=1,
        steps=n_steps)
    logs = _evaluate_batches(model, data, batch_size, cb)
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


def predict(model, x, batch_size, verbose, steps, callbacks):
    if is_batch_source(x):
        source = BatchSource(x, steps, "predict")
        batches = (_as_arrays(bx) for bx, _, _ in source.epoch())
        n_steps = source.steps
    else:
        x = _as_arrays(x)
        n = _rows(x)
        batches = (_take(x, slice(s, s + batch_size)) for s in range(0, n, batch_size))
        n_steps = -(-n // batch_size)
    cb = callbacks if isinstance(callbacks, CallbackList) else CallbackList(
        callbacks, add_progbar=verbose != 0, model=model, verbose=verbose, epochs=1,
        steps=n_steps)
    cb.on_predict_begin()
    parts = []
    for step, bx in enumerate(batches):
        cb.batch("on_predict_batch_begin", step)
        out = model.predict_step((_tensors(bx),))
        parts.append(out)
        cb.batch("on_predict_batch_end", step, {"outputs": out})
    cb.on_predict_end()
    if not parts:
        raise ValueError("predict: the data holds no batches")

    def join(items):
        first = items[0]
        if isinstance(first, dict):
            return {k: join([p[k] for p in items]) for k in first}
        if isinstance(first, (list, tuple)):
            return [join([p[i] for p in items]) for i in range(len(first))]
        return np.concatenate([np.asarray(p) for p in items])
    return join(parts)
