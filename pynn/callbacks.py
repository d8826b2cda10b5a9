"""Callbacks with Keras 3's names and hook order, and the progress display of fit/evaluate."""

import sys
import time


class Callback:
    """Base class: override any of the hooks. `self.model` and `self.params` are set by fit."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass


class History(Callback):
    """Records each epoch's logs: `history.history["loss"]` is the list of epoch losses."""

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


class LearningRateScheduler(Callback):
    """Sets the optimizer's learning rate at the start of every epoch to
    `schedule(epoch, current_lr)`, and records it in the epoch's logs as "learning_rate".

    Args:
        schedule: a function (epoch index from 0, current learning rate) -> new learning rate.
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
        lr = self.schedule(epoch, float(optimizer.learning_rate))
        try:
            lr = float(lr)
        except (TypeError, ValueError):
            raise ValueError(f"LearningRateScheduler: the schedule returned {lr!r}, not a "
                             "number") from None
        optimizer.learning_rate = lr
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


def _format_logs(logs: dict) -> str:
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


def _format_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.0f}s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms"
    return f"{seconds * 1e6:.0f}us"


class ProgbarLogger(Callback):
    """The progress display: a tqdm bar per epoch (verbose=1) or one line per epoch (verbose=2).

    The bar is redrawn at most ten times a second, so its cost per batch is a clock read.
    """

    def __init__(self, verbose: int = 1):
        super().__init__()
        self.verbose = verbose
        self._bar = None

    def on_epoch_begin(self, epoch, logs=None):
        epochs = self.params.get("epochs", 1)
        if self.verbose == 1:
            print(f"Epoch {epoch + 1}/{epochs}", file=sys.stdout, flush=True)
            self._open(self.params.get("steps"))
        self._start = time.perf_counter()

    def _open(self, steps):
        from tqdm.auto import tqdm

        self._bar = tqdm(total=steps, file=sys.stdout, unit="step", dynamic_ncols=True,
                         mininterval=0.1, leave=True,
                         bar_format="{n_fmt}/{total_fmt} {bar:20} {elapsed}<{remaining} "
                                    "{rate_fmt}{postfix}")
        self._pending = 0
        self._last = 0.0

    def on_train_batch_end(self, batch, logs=None):
        self._tick(logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._tick(None)

    def on_test_batch_end(self, batch, logs=None):
        if self.params.get("is_test"):
            self._tick(logs)

    def _tick(self, logs):
        if self._bar is None:
            return
        self._pending += 1
        now = time.perf_counter()
        if now - self._last >= 0.1:
            if logs:
                self._bar.set_postfix_str(_format_logs(logs), refresh=False)
            self._bar.update(self._pending)
            self._pending = 0
            self._last = now

    def _close(self, logs):
        if self._bar is None:
            return
        if logs:
            self._bar.set_postfix_str(_format_logs(logs), refresh=False)
        self._bar.update(self._pending)
        self._bar.close()
        self._bar = None

    def on_epoch_end(self, epoch, logs=None):
        if self.verbose == 1:
            self._close(logs)
        elif self.verbose == 2:
            steps = self.params.get("steps") or 1
            took = time.perf_counter() - self._start
            print(f"{steps}/{steps} - {_format_time(took)} - {_format_time(took / steps)}/step - "
                  f"{_format_logs(logs or {})}", file=sys.stdout, flush=True)

    def on_test_begin(self, logs=None):
        if self.params.get("is_test") and self.verbose == 1:
            self._open(self.params.get("steps"))

    def on_test_end(self, logs=None):
        if self.params.get("is_test"):
            self._close(logs)

    def on_predict_begin(self, logs=None):
        if self.verbose == 1:
            self._open(self.params.get("steps"))

    def on_predict_end(self, logs=None):
        self._close(None)


class CallbackList:
    """Calls every callback's hook in order."""

    def __init__(self, callbacks, model, params: dict):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)
        # Only callbacks that override a batch hook are called per batch.
        self._batch = {
            name: [getattr(cb, name) for cb in self.callbacks
                   if getattr(type(cb), name) is not getattr(Callback, name)]
            for name in ("on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin",
                         "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end")
        }

    def wants(self, hook: str) -> bool:
        return bool(self._batch[hook])

    def batch(self, hook: str, batch: int, logs=None) -> None:
        for fn in self._batch[hook]:
            fn(batch, logs)

    def __getattr__(self, hook):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args, **kwargs):
            for cb in self.callbacks:
                getattr(cb, hook)(*args, **kwargs)

        return call
