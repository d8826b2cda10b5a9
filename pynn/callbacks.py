"""Callbacks with Keras 3's names, arguments, defaults and hook order, and the progress display.

fit calls, in this order (Keras 3's): on_train_begin; for each epoch on_epoch_begin, then per
batch on_train_batch_begin / on_train_batch_end, then (when it validates) on_test_begin,
on_test_batch_begin / on_test_batch_end per validation batch and on_test_end, then on_epoch_end;
finally on_train_end. evaluate calls on_test_begin, the test batch hooks, on_test_end; predict
on_predict_begin, on_predict_batch_begin / on_predict_batch_end, on_predict_end.

Batch hooks cost a Python call per batch, so fit calls them only on the callbacks that define
them (CallbackList keeps those lists).
"""

import collections
import csv
import math
import os
import sys
import time
import warnings

import numpy as np


class Callback:
    """Base class: override any of the hooks. fit, evaluate and predict set `self.model` (with
    set_model) and `self.params` (with set_params: verbose, epochs, steps).

    Example:
        >>> class Stop(pynn.callbacks.Callback):
        ...     def on_epoch_end(self, epoch, logs=None):
        ...         self.model.stop_training = logs["loss"] < 0.1
    """

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_batch_begin(self, batch, logs=None):
        """A backwards compatibility alias for `on_train_batch_begin`."""

    def on_batch_end(self, batch, logs=None):
        """A backwards compatibility alias for `on_train_batch_end`."""

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass


_BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin",
                "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end")
_ALIASES = {"on_train_batch_begin": "on_batch_begin", "on_train_batch_end": "on_batch_end"}


def _logs(logs) -> dict:
    """Batch logs as a dict: `logs` itself, or what the function fit passes makes."""
    if callable(logs):
        logs = logs()
    return logs or {}


def _defines(cb, hook: str) -> bool:
    """Whether a callback does something in `hook`: its class overrides it (or the Keras 2
    alias), or it holds a function of that name (LambdaCallback)."""
    for name in (hook, _ALIASES.get(hook)):
        if name is None:
            continue
        if name in getattr(cb, "__dict__", {}):
            return True
        if getattr(type(cb), name, None) is not getattr(Callback, name):
            return True
    return False


class History(Callback):
    """Records each epoch's logs: `history.history["loss"]` is the list of epoch losses. fit
    adds one and returns it."""

    def __init__(self):
        super().__init__()
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)
        if self.model is not None:
            self.model.history = self

    def plot(self, metrics=None, ax=None):
        """Draws the loss and metrics per epoch (val_ versions dashed) with matplotlib, an
        optional extra (`pip install "pynn[plot]"`); returns the Axes."""
        from .utils.plotting import plot_history
        return plot_history(self, metrics=metrics, ax=ax)


class CallbackList(Callback):
    """Calls the hooks of several callbacks in order, as Keras's CallbackList.

    Args:
        callbacks: a list of Callback instances.
        add_history: append a History unless the list holds one.
        add_progbar: append a ProgbarLogger unless the list holds one.
        model: given to every callback's set_model.
        **params: given to every callback's set_params (verbose, epochs, steps).
    """

    def __init__(self, callbacks=None, add_history: bool = False, add_progbar: bool = False,
                 model=None, **params):
        super().__init__()
        if callbacks is not None and not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"callbacks must be a list of pynn.callbacks.Callback instances, got "
                            f"{type(callbacks).__name__}")
        self.callbacks = list(callbacks) if callbacks else []
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be pynn.callbacks.Callback instances, got "
                                f"{type(cb).__name__}")
        self._history = next((c for c in self.callbacks if isinstance(c, History)), None)
        if self._history is None and add_history:
            self._history = History()
            self.callbacks.append(self._history)
        if add_progbar and not any(isinstance(c, ProgbarLogger) for c in self.callbacks):
            self.callbacks.append(ProgbarLogger())
        self.set_model(model)
        self.set_params(params)
        self._index()

    def append(self, callback: Callback) -> None:
        self.callbacks.append(callback)
        if self.model is not None:
            callback.set_model(self.model)
        if self.params:
            callback.set_params(self.params)
        self._index()

    def _index(self) -> None:
        self._batch = {hook: [getattr(cb, hook) for cb in self.callbacks if _defines(cb, hook)]
                       for hook in _BATCH_HOOKS}

    def set_model(self, model) -> None:
        if model is None:
            return
        self.model = model
        if self._history is not None:
            model.history = self._history
        for cb in self.callbacks:
            cb.set_model(model)

    def set_params(self, params: dict) -> None:
        self.params = params
        if params:
            for cb in self.callbacks:
                cb.set_params(params)

    # -- the fast path of the training loop ----------------------------------------------------
    def wants(self, hook: str) -> bool:
        """Whether any callback defines the batch hook `hook`."""
        return bool(self._batch[hook])

    def batch(self, hook: str, batch: int, logs=None) -> None:
        """Calls the batch hook `hook` on the callbacks that define it. `logs` may be a function
        that makes them (fit's running totals, whose metrics outside the core cost a flush): it
        is called once, and only when a callback needs the dict; pynn's own callbacks, which
        read batch logs rarely (a progress bar's redraw, a checkpoint's save), take the
        function itself (`_lazy_logs`)."""
        made = None
        for fn in self._batch[hook]:
            if callable(logs) and not getattr(getattr(fn, "__self__", None), "_lazy_logs", False):
                if made is None:
                    made = logs()
                fn(batch, logs=made)
            else:
                fn(batch, logs=logs if logs is not None else {})

    # -- every hook ----------------------------------------------------------------------------
    def on_batch_begin(self, batch, logs=None):
        self.batch("on_train_batch_begin", batch, logs)

    def on_batch_end(self, batch, logs=None):
        self.batch("on_train_batch_end", batch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self.batch("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self.batch("on_train_batch_end", batch, logs)

    def on_test_batch_begin(self, batch, logs=None):
        self.batch("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self.batch("on_test_batch_end", batch, logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self.batch("on_predict_batch_begin", batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self.batch("on_predict_batch_end", batch, logs)

    def on_epoch_begin(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def _each(self, hook: str, logs) -> None:
        logs = logs if logs is not None else {}
        for cb in self.callbacks:
            getattr(cb, hook)(logs)

    def on_train_begin(self, logs=None):
        self._each("on_train_begin", logs)

    def on_train_end(self, logs=None):
        self._each("on_train_end", logs)

    def on_test_begin(self, logs=None):
        self._each("on_test_begin", logs)

    def on_test_end(self, logs=None):
        self._each("on_test_end", logs)

    def on_predict_begin(self, logs=None):
        self._each("on_predict_begin", logs)

    def on_predict_end(self, logs=None):
        self._each("on_predict_end", logs)


# -- monitoring a quantity -------------------------------------------------------------------

def _less(a, b) -> bool:
    return a < b


def _greater(a, b) -> bool:
    return a > b


def _metric_direction(model, name: str) -> str | None:
    """'down' for a loss or an error metric, 'up' for an accuracy, None if `name` is none of
    the model's metrics."""
    if name == "loss" or (model is not None and name.endswith("_loss")
                          and name in getattr(model, "metrics_names", ())):
        return "down"
    names = list(getattr(model, "_metric_names", []) or [])
    objs = list(getattr(model, "_metric_objs", []) or [])
    if name in names and len(objs) == len(names):  # Keras 3: the metric's own _direction
        direction = getattr(objs[names.index(name)], "_direction", None)
        if direction in ("up", "down"):
            return direction
    cores = list(getattr(model, "_metric_core_names", []) or [])
    if name in names and len(cores) == len(names):
        core = cores[names.index(name)]
        if core:
            return "up" if "accuracy" in core or core in ("precision", "recall", "auc") \
                else "down"
    return None


class _MonitorCallback(Callback):
    """Keras 3's MonitorCallback: which way the monitored quantity should go, and whether a
    value improves on a reference by more than min_delta."""

    def __init__(self, monitor: str = "val_loss", mode: str = "auto", baseline=None,
                 min_delta: float = 0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"{type(self).__name__} mode '{mode}' is unknown, fallback to auto "
                          "mode.", stacklevel=3)
            mode = "auto"
        self.monitor = monitor
        self.mode = mode
        self.best = baseline
        self.min_delta = abs(min_delta)
        self.monitor_op = None

    def _set_monitor_op(self) -> None:
        if self.mode == "min":
            self.monitor_op = _less
        elif self.mode == "max":
            self.monitor_op = _greater
        else:
            direction = _metric_direction(self.model, self.monitor.removeprefix("val_"))
            if direction is not None:
                self.monitor_op = _greater if direction == "up" else _less
            else:
                raise ValueError(
                    f"{type(self).__name__} callback received monitor={self.monitor}, but "
                    "Keras isn't able to automatically determine whether that metric should "
                    "be maximized or minimized. Pass `mode='max'` in order to monitor based on "
                    "the highest metric value, or pass `mode='min'` in order to use the lowest "
                    "value.")
        if self.monitor_op is _less:
            self.min_delta *= -1

    def _is_improvement(self, value, reference) -> bool:
        if reference is None:
            return True
        return bool(self.monitor_op(value - self.min_delta, reference))


class EarlyStopping(_MonitorCallback):
    """Stops training when a monitored quantity has stopped improving.

    Args:
        monitor: the quantity, a key of the epoch logs ("val_loss", "accuracy", ...).
        min_delta: a change smaller than this is no improvement.
        patience: epochs without improvement after which training stops.
        verbose: 1 prints a line when it stops and when it restores weights.
        mode: "min", "max", or "auto" (from the quantity: losses and errors go down,
            accuracies up).
        baseline: training stops if the quantity does not beat it within `patience` epochs.
        restore_best_weights: at the end of training, set the weights of the best epoch.
        start_from_epoch: epochs of warm-up before it starts watching.

    Example:
        >>> stop = pynn.callbacks.EarlyStopping(monitor="loss", patience=3)
        >>> model.fit(x, y, epochs=100, callbacks=[stop])
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto", baseline=None,
                 restore_best_weights: bool = False, start_from_epoch: int = 0):
        super().__init__(monitor, mode, None, min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.wait = 0
        self.stopped_epoch = 0
        self.best_weights = None
        self.best_epoch = 0

    def on_train_begin(self, logs=None):
        # an instance can be used for several fits
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            # nothing better seen yet: these weights are the best
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            # wait restarts only when both the previous best and the baseline are beaten
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping", file=sys.stdout)
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print("Restoring model weights from the end of the best epoch: "
                      f"{self.best_epoch + 1}.", file=sys.stdout)
            self.model.set_weights(self.best_weights)

    def get_monitor_value(self, logs):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(list(logs.keys()))}",
                          stacklevel=2)
        return value


class ModelCheckpoint(_MonitorCallback):
    """Saves the model (`model.save`) or its weights (`model.save_weights`) every epoch or
    every `save_freq` batches, optionally only when the monitored quantity improves.

    Args:
        filepath: where to save; may hold `{epoch:02d}`, `{batch}` and any log key
            (`{val_loss:.2f}`), filled in at each save. It must end in ".keras" (".h5")
            for a model, ".weights.h5" (or ".weights.safetensors") with save_weights_only.
        monitor: the quantity for save_best_only.
        verbose: 1 prints a line per save.
        save_best_only: save only when the monitored quantity improves on the best so far.
        save_weights_only: save the weights only.
        mode: "min", "max" or "auto".
        save_freq: "epoch", or a number of batches.
        initial_value_threshold: the best value to beat at first.

    Example:
        >>> ckpt = pynn.callbacks.ModelCheckpoint("ckpt/{epoch:02d}-{val_loss:.2f}.keras")
    """

    _lazy_logs = True  # batch logs may come as a function (CallbackList.batch)

    def __init__(self, filepath, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False,
                 mode: str = "auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__(monitor, mode, initial_value_threshold)
        self.verbose = verbose
        self.filepath = os.fspath(filepath)
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.save_freq = save_freq
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = 0
        self._current_epoch = 0
        if save_freq != "epoch" and (isinstance(save_freq, bool)
                                     or not isinstance(save_freq, int)):
            raise ValueError(f"Unrecognized save_freq: {save_freq}. Expected save_freq are "
                             "'epoch' or integer values")
        if save_weights_only:
            if not self.filepath.endswith((".weights.h5", ".weights.safetensors")):
                raise ValueError("When using `save_weights_only=True` in `ModelCheckpoint`, "
                                 "the filepath provided must end in `.weights.h5` (Keras "
                                 f"weights format). Received: filepath={self.filepath}")
        elif not self.filepath.endswith((".keras", ".h5")):
            raise ValueError("The filepath provided must end in `.keras` (Keras model "
                             f"format). Received: filepath={self.filepath}")

    def on_train_batch_end(self, batch, logs=None):
        if self._should_save_on_batch(batch):
            self._save_model(self._current_epoch, batch, logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save_model(epoch, None, logs)

    def _should_save_on_batch(self, batch: int) -> bool:
        if self.save_freq == "epoch":
            return False
        if batch <= self._last_batch_seen:  # a new epoch
            add = batch + 1
        else:
            add = batch - self._last_batch_seen
        self._batches_seen_since_last_saving += add
        self._last_batch_seen = batch
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            return True
        return False

    def _should_save(self, epoch: int, logs: dict, filepath: str) -> bool:
        if not self.save_best_only:
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: saving model to {filepath}", file=sys.stdout)
            return True
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.",
                          stacklevel=3)
            return True
        if self.monitor_op is None:
            self._set_monitor_op()
        best = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to "
                      f"{current:.5f}, saving model to {filepath}", file=sys.stdout)
            self.best = current
            return True
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}",
                  file=sys.stdout)
        return False

    def _save_model(self, epoch: int, batch, logs) -> None:
        logs = _logs(logs)
        filepath = self._get_file_path(epoch, batch, logs)
        if not self._should_save(epoch, logs, filepath):
            return
        if os.path.isdir(filepath):
            raise OSError("Please specify a non-directory filepath for ModelCheckpoint. "
                          f"Filepath used is an existing directory: {filepath}")
        dirname = os.path.dirname(filepath)
        if dirname:
            os.makedirs(dirname, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(filepath, overwrite=True)
        else:
            self.model.save(filepath, overwrite=True)

    def _get_file_path(self, epoch: int, batch, logs: dict) -> str:
        try:
            if batch is None or "batch" in logs:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as e:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". '
                           f"Reason: {e}") from None


class ReduceLROnPlateau(Callback):
    """Multiplies the learning rate by `factor` when the monitored quantity has not improved
    for `patience` epochs; records the rate in the epoch logs as "learning_rate".

    Args:
        monitor: the quantity.
        factor: `new_lr = lr * factor` (< 1).
        patience: epochs without improvement before a reduction.
        verbose: 1 prints each reduction.
        mode: "min", "max" or "auto" (max when the name holds "acc").
        min_delta: the least change that counts as an improvement.
        cooldown: epochs to wait after a reduction before counting again.
        min_lr: the rate never goes below this.

    Example:
        >>> reduce = pynn.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.2, patience=5)
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 verbose: int = 0, mode: str = "auto", min_delta: float = 1e-4,
                 cooldown: int = 0, min_lr: float = 0.0, **kwargs):
        super().__init__()
        if factor >= 1.0:
            raise ValueError("ReduceLROnPlateau does not support a factor >= 1.0. Received "
                             f"factor={factor}")
        self.monitor = monitor
        self.factor = factor
        self.min_lr = min_lr
        self.min_delta = min_delta
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.cooldown_counter = 0
        self.wait = 0
        self.best = 0
        self.mode = mode
        self.monitor_op = None
        self._reset()

    def _reset(self) -> None:
        if self.mode not in ("auto", "min", "max"):
            warnings.warn(f"Learning rate reduction mode {self.mode} is unknown, fallback to "
                          "auto mode.", stacklevel=2)
            self.mode = "auto"
        if self.mode == "min" or (self.mode == "auto" and "acc" not in self.monitor):
            self.monitor_op = lambda a, b: a < b - self.min_delta
            self.best = np.inf
        else:
            self.monitor_op = lambda a, b: a > b + self.min_delta
            self.best = -np.inf
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        self._reset()

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` "
                          "which is not available. Available metrics are: "
                          f"{','.join(list(logs.keys()))}.", stacklevel=2)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self.monitor_op(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = float(self.model.optimizer.learning_rate)
                if old_lr > np.float32(self.min_lr):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    self.model.optimizer.learning_rate = new_lr
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                              f"to {new_lr}.", file=sys.stdout)
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class CSVLogger(Callback):
    """Writes each epoch's logs as a row of a CSV file: an "epoch" column, then the log keys in
    sorted order.

    Args:
        filename: the file.
        separator: the field separator.
        append: add to an existing file (its header kept) instead of overwriting it.

    Example:
        >>> model.fit(x, y, epochs=5, callbacks=[pynn.callbacks.CSVLogger("training.log")])
    """

    def __init__(self, filename, separator: str = ",", append: bool = False):
        super().__init__()
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = append
        self.writer = None
        self.keys = None
        self.append_header = True
        self.csv_file = None

    def on_train_begin(self, logs=None):
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename) as f:
                    self.append_header = not bool(len(f.readline()))
            mode = "a"
        else:
            mode = "w"
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode, newline="")
        self.writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}

        def handle_value(v):
            if isinstance(v, str):
                return v
            if isinstance(v, collections.abc.Iterable) and not (
                    isinstance(v, np.ndarray) and v.ndim == 0):
                return f'"[{", ".join(map(str, v))}]"'
            return v

        if self.keys is None:
            self.keys = sorted(logs.keys())
            # an epoch without validation (validation_freq > 1) still gets the val_ columns
            if getattr(self.model, "_validates", False) and not any(
                    k.startswith("val_") for k in self.keys):
                self.keys += ["val_" + k for k in self.keys if k != "learning_rate"]
        if self.writer is None:
            class Dialect(csv.excel):
                delimiter = self.sep

            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys,
                                         dialect=Dialect)
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update((k, handle_value(logs.get(k, "NA"))) for k in self.keys)
        try:
            self.writer.writerow(row)
            self.csv_file.flush()
        except OSError as e:  # a failed write (disk full) names no file: name the log
            raise OSError(e.errno, e.strerror, self.filename) from e

    def on_train_end(self, logs=None):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


class TerminateOnNaN(Callback):
    """Stops training when a batch gives a NaN or infinite loss.

    Args:
        raise_error: raise a RuntimeError at once instead of stopping gracefully (which still
            calls every callback's on_train_end).
    """

    def __init__(self, raise_error: bool = False):
        super().__init__()
        self.raise_error = raise_error

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. Loss value: "
                                   f"{loss}. Terminating training immediately.")
            print(f"Batch {batch}: Invalid loss, terminating training", file=sys.stdout)
            self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback from functions: on_epoch_begin / on_epoch_end take (epoch, logs),
    on_train_begin / on_train_end take (logs), on_train_batch_begin / on_train_batch_end take
    (batch, logs); any other hook by keyword (`on_test_end=fn`).

    Example:
        >>> log = pynn.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: print(e, logs))
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None,
                 **kwargs):
        super().__init__()
        self.__dict__.update(kwargs)
        for name, fn in (("on_epoch_begin", on_epoch_begin), ("on_epoch_end", on_epoch_end),
                         ("on_train_begin", on_train_begin), ("on_train_end", on_train_end),
                         ("on_train_batch_begin", on_train_batch_begin),
                         ("on_train_batch_end", on_train_batch_end)):
            if fn is not None:
                setattr(self, name, fn)


class LearningRateScheduler(Callback):
    """Sets the optimizer's learning rate at the start of every epoch to
    `schedule(epoch, current_lr)`, and records it in the epoch's logs as "learning_rate".

    Args:
        schedule: a function (epoch index from 0, current learning rate) -> new learning rate
            (or, as in Keras 2, a function of the epoch only).
        verbose: 1 prints each change.

    Example:
        >>> decay = pynn.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.7 ** (epoch > 0))
        >>> model.fit(x, y, epochs=3, callbacks=[decay])
    """

    def __init__(self, schedule, verbose: int = 0):
        super().__init__()
        if not callable(schedule):
            raise TypeError("LearningRateScheduler: schedule must be a function (epoch, lr)")
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        try:
            lr = self.schedule(epoch, float(optimizer.learning_rate))
        except TypeError:  # a schedule of the epoch only (the old API)
            lr = self.schedule(epoch)
        try:
            lr = float(lr)
        except (TypeError, ValueError):
            raise ValueError(f"LearningRateScheduler: the schedule returned {lr!r}, not a "
                             "number") from None
        optimizer.learning_rate = lr
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.",
                  file=sys.stdout)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


# -- the progress display ----------------------------------------------------------------------

def _format_value(v) -> str:
    if isinstance(v, (float, int, np.floating, np.integer)) and not isinstance(v, bool):
        return f"{v:.4f}" if abs(v) > 1e-3 else f"{v:.4e}"
    return str(v)


def _format_logs(logs: dict) -> str:
    """Keras's ` - key: value` list: 4 decimals, or scientific notation for tiny values."""
    return " - ".join(f"{k}: {_format_value(v)}" for k, v in logs.items())


def _format_step_time(seconds: float, unit: str = "step") -> str:
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit}"
    return f"{seconds * 1e6:.0f}us/{unit}"


def _format_eta(eta: float) -> str:
    if eta > 3600:
        return f"{int(eta // 3600)}:{int(eta % 3600 // 60):02d}:{int(eta % 60):02d}"
    if eta > 60:
        return f"{int(eta // 60)}:{int(eta % 60):02d}"
    return f"{int(eta)}s"


def _braces(text: str) -> str:
    """text that tqdm's bar_format shows as it is."""
    return text.replace("{", "{{").replace("}", "}}")


def _unicode_ok(fp) -> bool:
    try:
        "━─".encode(getattr(fp, "encoding", None) or "ascii")
        return True
    except (UnicodeEncodeError, LookupError):
        return False


def _interactive() -> bool:
    """False after pynn.utils.disable_interactive_logging(): progress goes to logging."""
    from .utils.io_utils import is_interactive_logging_enabled

    return is_interactive_logging_enabled()


class ProgbarLogger(Callback):
    """The progress display of fit, evaluate and predict, as Keras prints it.

    verbose=1: a tqdm bar per epoch (`tqdm.auto`, so a widget in Jupyter) with steps done out of
    the total, the time elapsed and left, the time per step and the running logs; it ends as
    Keras's line, `20/20 ━━━━━━━━━━━━━━━━━━━━ 1s 25ms/step - loss: 0.1234 - val_loss: ...`.
    verbose=2: that line alone, once per epoch. fit adds one; validation inside fit is silent.

    The bar is redrawn at most every 0.1 s, so a batch costs a clock read and a comparison.
    """

    _lazy_logs = True  # batch logs may come as a function (CallbackList.batch)

    interval = 0.1  # seconds between two redraws of the bar

    def __init__(self, verbose=None):
        super().__init__()
        self._verbose_arg = verbose
        self.verbose = 1 if verbose is None else verbose
        self.epochs = 1
        self.target = None
        self.seen = 0
        self._called_in_fit = False
        self._bar = None
        self._reset()

    def set_params(self, params: dict) -> None:
        super().set_params(params)
        verbose = params.get("verbose", 1) if self._verbose_arg is None else self._verbose_arg
        self.verbose = 1 if verbose == "auto" else verbose
        self.epochs = params.get("epochs", 1)
        self.target = params.get("steps")

    # -- hooks ---------------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self._called_in_fit = True  # validation inside fit shows no bar

    def on_train_end(self, logs=None):
        self._called_in_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        self._reset()
        if self.verbose and self.epochs > 1:
            if not _interactive():
                from .utils.io_utils import print_msg

                print_msg(f"Epoch {epoch + 1}/{self.epochs}")
            else:
                print(f"Epoch {epoch + 1}/{self.epochs}", file=sys.stdout, flush=True)

    def on_train_batch_end(self, batch, logs=None):
        self._update(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._finalize(logs)

    def on_test_begin(self, logs=None):
        if not self._called_in_fit:
            self._reset()

    def on_test_batch_end(self, batch, logs=None):
        if not self._called_in_fit:
            self._update(batch, logs)

    def on_test_end(self, logs=None):
        if not self._called_in_fit:
            self._finalize(logs)

    def on_predict_begin(self, logs=None):
        self._reset()

    def on_predict_batch_end(self, batch, logs=None):
        self._update(batch, None)  # not the predictions

    def on_predict_end(self, logs=None):
        self._finalize(None)

    # -- drawing -------------------------------------------------------------------------------
    def _reset(self) -> None:
        if self._bar is not None:  # an epoch cut short by an exception
            self._bar.close()
        self._bar = None
        self.seen = 0
        self._start = time.perf_counter()
        self._after_first = None
        self._last = 0.0

    def _update(self, batch: int, logs) -> None:
        self.seen = batch + 1
        if self.verbose != 1 or not _interactive():
            return
        now = time.perf_counter()
        if self.seen == 1:
            self._after_first = now
        if now - self._last >= self.interval:
            self._draw(now, logs, final=False)
            self._last = now

    def _step_time(self, now: float) -> float:
        """Seconds per step, leaving out the first (slower: plans are compiled) when others
        were run."""
        if self._after_first is not None and self.seen > 1:
            return (now - self._after_first) / (self.seen - 1)
        return (now - self._start) / self.seen if self.seen else 0.0

    def _line(self, now: float, logs, final: bool) -> tuple[str, str]:
        """(count, info): `12/20`, and `3s 25ms/step - loss: ...` (ETA while running, the time
        taken at the end)."""
        logs = _logs(logs)
        target = self.target or self.seen
        count = f"{self.seen:>{len(str(target))}}/{target}"
        per_step = self._step_time(now)
        when = (f"{now - self._start:.0f}s" if final
                else _format_eta(per_step * (target - self.seen)))
        info = f"{when} {_format_step_time(per_step)}"
        if logs:
            info += " - " + _format_logs(logs)
        return count, info

    def _draw(self, now: float, logs, final: bool) -> None:
        """Shows the line; a final one stays when the bar closes."""
        count, info = self._line(now, logs, final)
        if self._bar is None:
            self._open(count, info)  # which draws it
        else:
            self._bar.bar_format = _braces(count) + " " + self._bar_field + " " + _braces(info)
            self._bar.n = self.seen
            if not final:
                self._bar.refresh()
        if final:
            self._bar.close()  # draws it a last time and ends the line
            self._bar = None

    def _open(self, count: str, info: str) -> None:
        from tqdm.auto import tqdm

        out = sys.stdout
        # the notebook widget draws its own bar where a plain "{bar}" stands
        self._bar_field = "{bar}" if tqdm.__module__.startswith("tqdm.notebook") else "{bar:20}"
        self._bar = tqdm(total=self.target or None, initial=self.seen, file=out, leave=True,
                         dynamic_ncols=True, ascii="─━" if _unicode_ok(out) else ".=",
                         bar_format=_braces(count) + " " + self._bar_field + " " + _braces(info))

    def _finalize(self, logs) -> None:
        if self.verbose == 0:
            return
        if self.target is None:
            self.target = self.seen
        self.seen = self.target
        now = time.perf_counter()
        if not _interactive():  # pynn.utils.disable_interactive_logging(): one logged line
            count, info = self._line(now, logs, final=True)
            from .utils.io_utils import print_msg

            print_msg(f"{count} - {info}")
        elif self.verbose == 1:
            self._draw(now, logs, final=True)
        elif self.verbose == 2:
            count, info = self._line(now, logs, final=True)
            when, rest = info.split(" ", 1)
            print(f"{count} - {when} - {rest}", file=sys.stdout, flush=True)


class BackupAndRestore(Callback):
    """Backs up the training state to `backup_dir` during fit, and when a fit is started again
    after an interruption (an exception, a killed process, a lost machine), restores it and
    resumes where the last backup was taken: at the start of the next epoch, or, with an int
    save_freq, at the next step of the interrupted epoch, with the same samples in the same
    order (the shuffle's and dropout's random states are part of the backup). The state is the
    weights, the optimizer's slots and step count, and the random streams, in one file written
    atomically (backup_dir/latest.weights.safetensors), so a run killed while it writes leaves
    the previous backup whole. A fit that ends normally deletes the backup.

    Keras 3 resumes at an epoch's start only; pynn also resumes inside an epoch (the resumed
    epoch's logs then cover the steps after the backup). The model and compile settings must
    be those of the interrupted run.

    Args:
        backup_dir: a folder for the backup, used by nothing else.
        save_freq: 'epoch' (back up at each epoch's end), an int n (also every n batches), or
            False (never).
        double_checkpoint: keep the previous backup too, and fall back on it when the latest
            cannot be read.
        delete_checkpoint: delete the backup when fit ends (its files, then the folder if it
            is left empty; Keras deletes the whole folder).

    Example:
        >>> backup = pynn.callbacks.BackupAndRestore("/tmp/backup", save_freq=100)
        >>> model.fit(x, y, epochs=10, callbacks=[backup])  # run again after a crash: resumes
    """

    _lazy_logs = True  # batch logs may come as a function (CallbackList.batch)

    _FILE = "latest.weights.safetensors"

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint: bool = False,
                 delete_checkpoint: bool = True):
        super().__init__()
        if not backup_dir:
            raise ValueError("Empty `backup_dir` argument passed")
        if save_freq != "epoch" and (not isinstance(save_freq, int) or save_freq < 0):
            raise ValueError("Invalid value for argument `save_freq`. Received: "
                             f"save_freq={save_freq}. Expected either 'epoch' or an integer "
                             "value.")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq
        self.double_checkpoint = bool(double_checkpoint)
        self.delete_checkpoint = bool(delete_checkpoint)
        self._path = os.path.join(self.backup_dir, self._FILE)
        self._previous = self._path + ".bkp"
        self._epoch = 0           # the epoch under way
        self._epoch_shuffle = None  # the shuffle's random state as that epoch began
        self._since_save = 0
        if save_freq != "epoch" and save_freq > 0:
            # a batch hook only then: fit computes batch logs for the callbacks that have one
            self.on_train_batch_end = self._after_batch

    def on_train_begin(self, logs=None):
        from .saving.archive import load_checkpoint

        for path in (self._path, self._previous):
            if not os.path.exists(path):
                continue
            try:
                meta = load_checkpoint(self.model, path)
            except (OSError, ValueError) as e:
                if path == self._path and self.double_checkpoint and \
                        os.path.exists(self._previous):
                    warnings.warn(f"BackupAndRestore: the backup {path} cannot be restored "
                                  f"({e}); restoring the previous one", stacklevel=2)
                    continue
                raise ValueError(f"BackupAndRestore: cannot resume from {path}: {e}") from e
            self._resume(meta, path)
            return

    def _resume(self, meta: dict, path: str) -> None:
        import json

        from .utils import random as pn_random
        try:
            epoch, step = int(meta["fit.epoch"]), int(meta["fit.step"])
            shuffle = json.loads(meta["fit.shuffle"])
            if epoch < 0 or step < 0:
                raise ValueError("negative epoch or step")
            pn_random.generator().bit_generator.state = shuffle
        except (KeyError, ValueError, TypeError) as e:
            raise ValueError(f"BackupAndRestore: {path} is not a backup of a fit's state "
                             f"({e})") from None
        self.model._initial_epoch, self.model._initial_step = epoch, step
        self._epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        from .utils import random as pn_random

        self._epoch = epoch
        self._epoch_shuffle = pn_random.generator().bit_generator.state

    def _after_batch(self, batch, logs=None):
        self._since_save += 1
        if self._since_save >= self.save_freq:
            self._save(self._epoch, batch + 1, self._epoch_shuffle)

    def on_epoch_end(self, epoch, logs=None):
        from .utils import random as pn_random

        if self.save_freq == "epoch":
            self._save(epoch + 1, 0, pn_random.generator().bit_generator.state)

    def _save(self, epoch: int, step: int, shuffle) -> None:
        import json
        import shutil

        from .saving.archive import save_checkpoint
        self._since_save = 0
        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint and os.path.exists(self._path):
            shutil.copyfile(self._path, self._previous)
        save_checkpoint(self.model, self._path, {
            "fit.epoch": str(epoch), "fit.step": str(step), "fit.shuffle": json.dumps(shuffle)})

    def on_train_end(self, logs=None):
        if not self.delete_checkpoint:
            return
        for path in (self._path, self._previous):
            if os.path.exists(path):
                os.remove(path)
        try:
            os.rmdir(self.backup_dir)
        except OSError:
            pass  # not there, or holding other files: left as it is


class SwapEMAWeights(Callback):
    """Evaluates with the moving averages of the weights that an optimizer made with
    use_ema=True keeps: swaps them into the model for validation (and evaluate, predict) and
    back for training. With swap_on_epoch=True the averages are also in the model from each
    epoch's end to the next epoch's start, so callbacks after this one (ModelCheckpoint, say)
    see them.

    Args:
        swap_on_epoch: also swap at each epoch's end.

    Example:
        >>> model.compile(optimizer=pynn.optimizers.Adam(use_ema=True), loss="mse")
        >>> model.fit(x, y, validation_split=0.1, callbacks=[pynn.callbacks.SwapEMAWeights()])
    """

    def __init__(self, swap_on_epoch: bool = False):
        super().__init__()
        self.swap_on_epoch = bool(swap_on_epoch)
        self._swapped = False

    def _averages(self) -> list:
        """(weight, average) view pairs of the weights the optimizer averages."""
        from .saving.archive import _optimizer_slots

        opt = getattr(self.model, "optimizer", None)
        opt = getattr(opt, "inner_optimizer", opt)  # a LossScaleOptimizer's
        if not getattr(opt, "use_ema", False):
            raise ValueError("SwapEMAWeights must be used when `use_ema=True` is set on the "
                             f"optimizer. Received: use_ema={getattr(opt, 'use_ema', None)}")
        slots = _optimizer_slots(self.model)
        return [(w, slots[f"optimizer/average/{w.path}"]) for w in self.model.trainable_weights
                if f"optimizer/average/{w.path}" in slots]

    def _swap(self, into_model: bool) -> None:
        from .layers.base import assign_values, read_values

        if self._swapped == into_model:
            return
        opt = self.model.optimizer
        pairs = self._averages()
        if pairs and getattr(opt, "inner_optimizer", opt)._steps_taken() > 0:
            # no step yet: the averages are not made, and the weights stay
            weights = read_values([w for w, _ in pairs])
            assign_values([(w, avg) for w, avg in pairs])
            for (_, avg), held in zip(pairs, weights):
                avg[...] = held
        self._swapped = into_model

    def on_epoch_begin(self, epoch, logs=None):
        if self.swap_on_epoch:
            self._swap(False)

    def on_epoch_end(self, epoch, logs=None):
        if self.swap_on_epoch:
            self._swap(True)
            if epoch == self.params.get("epochs", 0) - 1:
                # fit ends by writing the averages into the weights, which hold them now: the
                # averages take the same values, so the weights stay
                for w, avg in self._averages():
                    avg[...] = np.asarray(w)
                self._swapped = False

    def on_test_begin(self, logs=None):
        self._swap(True)

    def on_test_end(self, logs=None):
        self._swap(False)

    def on_predict_begin(self, logs=None):
        self._swap(True)

    def on_predict_end(self, logs=None):
        self._swap(False)

class RemoteMonitor(Callback):
    """Sends each epoch's logs to a server by HTTP POST (Keras's RemoteMonitor): the logs and
    the epoch as JSON, in the form field `field` (or as the JSON body with send_as_json).
    A server that does not answer gives a warning, not an error: training goes on.

    Args:
        root: the server's root URL ("http://localhost:9000").
        path: the path under root the logs are posted to ("/publish/epoch/end/").
        field: the form field holding the JSON ("data").
        headers: extra HTTP headers (a dict).
        send_as_json: send the logs as the JSON request body.
    """

    def __init__(self, root="http://localhost:9000", path="/publish/epoch/end/", field="data",
                 headers=None, send_as_json=False):
        super().__init__()
        for arg, v in (("root", root), ("path", path), ("field", field)):
            if not isinstance(v, str):
                raise ValueError(f"RemoteMonitor: {arg} must be a string, got {v!r}")
        if headers is not None and not isinstance(headers, dict):
            raise ValueError(f"RemoteMonitor: headers must be a dict, got {headers!r}")
        self.root, self.path, self.field = root, path, field
        self.headers = dict(headers or {})
        self.send_as_json = bool(send_as_json)

    def on_epoch_end(self, epoch, logs=None):
        import json
        import urllib.error
        import urllib.parse
        import urllib.request
        send = {"epoch": int(epoch)}
        for k, v in (logs or {}).items():  # numbers as plain floats, as Keras's
            send[k] = float(v) if isinstance(v, (int, float, np.floating, np.integer)) else v
        if self.send_as_json:
            body = json.dumps(send).encode()
            headers = {"Content-Type": "application/json", **self.headers}
        else:
            body = urllib.parse.urlencode({self.field: json.dumps(send)}).encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded", **self.headers}
        request = urllib.request.Request(self.root + self.path, data=body, headers=headers,
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                reply.read()
        except (urllib.error.URLError, OSError, ValueError) as e:
            warnings.warn(f"RemoteMonitor: could not reach the server at {self.root}: {e}",
                          stacklevel=2)


class TensorBoard(Callback):
    """Writes logs that TensorBoard shows (Keras's TensorBoard callback), with tensorboardX's
    event-file writer (`pip install tensorboardX`): the epoch's metrics as scalars
    "epoch_<name>" under log_dir/train and log_dir/validation (the "val_" ones), with
    update_freq="batch" or an int also "batch_<name>" every so many batches, the learning rate,
    and with histogram_freq each weight's histogram every so many epochs.

    Args:
        log_dir: the directory ("logs").
        histogram_freq: write weight histograms every this many epochs (0: never).
        write_graph: accepted; pynn writes no graph (the model's summary is in model.summary()).
        write_images: accepted; no images are written.
        write_steps_per_second: also write the training steps per second of each epoch.
        update_freq: "epoch", "batch" or an int (every that many batches).
        profile_batch, embeddings_freq, embeddings_metadata: must stay off (0 / None).
    """

    _lazy_logs = True  # batch logs may come as a function (CallbackList.batch)

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0,
                 embeddings_freq=0, embeddings_metadata=None):
        super().__init__()
        if isinstance(histogram_freq, bool) or not isinstance(histogram_freq, int) or \
                histogram_freq < 0:
            raise ValueError(f"TensorBoard: histogram_freq must be an int >= 0, got "
                             f"{histogram_freq!r}")
        if update_freq not in ("epoch", "batch") and (
                isinstance(update_freq, bool) or not isinstance(update_freq, int) or
                update_freq < 1):
            raise ValueError(f"TensorBoard: update_freq must be 'epoch', 'batch' or an int "
                             f">= 1, got {update_freq!r}")
        if profile_batch not in (0, None) or embeddings_freq or embeddings_metadata:
            raise ValueError("TensorBoard: profiling and embeddings are not supported (keep "
                             "profile_batch=0, embeddings_freq=0)")
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = histogram_freq
        self.write_graph, self.write_images = bool(write_graph), bool(write_images)
        self.write_steps_per_second = bool(write_steps_per_second)
        self.update_freq = 1 if update_freq == "batch" else update_freq
        self._writers: dict = {}
        self._batches = 0

    def _writer(self, kind: str):
        if kind not in self._writers:
            try:
                from tensorboardX import SummaryWriter
            except ImportError:
                raise ImportError("TensorBoard needs tensorboardX to write its event files: "
                                  "pip install tensorboardX") from None
            self._writers[kind] = SummaryWriter(os.path.join(self.log_dir, kind))
        return self._writers[kind]

    def on_train_begin(self, logs=None):
        self._writer("train")  # fails now, before training, when tensorboardX is missing
        self._batches = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start, self._epoch_batches = time.perf_counter(), 0

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1
        self._epoch_batches += 1
        if self.update_freq != "epoch" and self._batches % self.update_freq == 0:
            writer = self._writer("train")
            for k, v in _logs(logs).items():
                writer.add_scalar(f"batch_{k}", float(v), self._batches)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        train, val = self._writer("train"), None
        for k, v in logs.items():
            if k.startswith("val_"):
                val = val or self._writer("validation")
                val.add_scalar(f"epoch_{k[4:]}", float(v), epoch)
            else:
                train.add_scalar(f"epoch_{k}", float(v), epoch)
        opt = getattr(self.model, "optimizer", None)
        if opt is not None and "learning_rate" not in logs:
            try:
                train.add_scalar("epoch_learning_rate", float(opt.learning_rate), epoch)
            except (TypeError, ValueError):
                pass
        if self.write_steps_per_second and self._epoch_batches:
            seconds = time.perf_counter() - self._epoch_start
            train.add_scalar("epoch_steps_per_second", self._epoch_batches / seconds, epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            for w in self.model.weights:
                train.add_histogram(getattr(w, "path", w.name), np.asarray(w), epoch)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
