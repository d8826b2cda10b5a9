"""Keras 3's Trainer, a base class of Model: compile, fit, evaluate, predict, the *_on_batch
methods and the steps they run.

A compiled model's built-in steps take the core's fused path: fit is Python bookkeeping around
one core call per batch, `train_step(x, y, idx, sample_weight)`, which gathers the batch's rows,
runs forward, loss, backward and the optimizer update with the GIL released, and returns the
batch's loss and metric sums (`_Totals` turns them into logs).

A model whose steps are Python takes the loop at the end of this file: a `train_step`,
`test_step` or `predict_step` of the user's (Keras 3's way of customising fit), or a model
compiled without a loss. Such a step runs on the tape: it calls the model (or its parts) on the
batch, computes a loss with pynn.ops, takes gradients with a GradientTape (or loss.backward())
and applies them with the optimizer. The loop does what fit, evaluate and predict do around it:
batches (shuffled each epoch), callbacks, the progress bar, History, validation, and resetting
`model.metrics` at the start of each epoch.
"""

from __future__ import annotations

import functools
import math
import threading
import warnings
import weakref

import numpy as np

from .. import _core, constraints
from .. import metrics as metrics_mod
from ..callbacks import CallbackList, History
from ..layers.base import _takes_arg
from ..tensor import GradientTape, no_grad
from ..utils import random as pn_random
from . import compile_utils
from .data import (
    BatchSource,
    as_arrays,
    as_tensors,
    check_steps,
    is_batch_source,
    n_samples,
    prepare_batch,
    prepare_weights,
    prepare_x,
    prepare_y,
    take,
    unpack_x_y_sample_weight,
)

_shape_locks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_shape_locks_guard = threading.Lock()


def one_shape_at_a_time(method):
    """A model whose input lengths come from the data runs one input shape at a time: its core
    holds a graph per shape, and the current one is the core's state. Threads calling such a
    model wait for each other's call to end (other models run freely)."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        if not vars(self).get("_dyn_shapes"):
            return method(self, *args, **kwargs)
        with _shape_locks_guard:
            lock = _shape_locks.get(self)
            if lock is None:
                lock = _shape_locks[self] = threading.RLock()
        with lock:
            return method(self, *args, **kwargs)
    return run


def _resolve_verbose(verbose) -> int:
    if verbose == "auto":
        return 1
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
    return int(verbose)


def _check_batch_size(batch_size) -> int:
    if batch_size is None:
        return 32
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)


# Metrics outside the core are updated once per this many samples (and whenever logs are read).
_DEFERRED_ROWS = 4096


def _copy_arrays(value):
    """A copy of an array, or of each array in a list (None stays None)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [_copy_arrays(v) for v in value]
    return np.array(value)


def _concat(parts: list):
    """Batches (arrays, or lists of arrays or None, alike in structure) joined along the batch
    axis; ValueError when their shapes do not line up."""
    first = parts[0]
    if first is None:
        if any(p is not None for p in parts):
            raise ValueError("some batches have no value")
        return None
    if isinstance(first, (list, tuple)):
        if any(not isinstance(p, (list, tuple)) or len(p) != len(first) for p in parts):
            raise ValueError("batches differ in structure")
        return [_concat([p[i] for p in parts]) for i in range(len(first))]
    return np.concatenate(parts, axis=0)


class _Totals:
    """Running sums of steps' results: the losses (batch means, weighed by the batch's samples)
    and every metric's accumulators; `logs()` turns them into Keras's logs, as each metric's
    `result()` would. A mean metric of an output with a mask (one the mask weighs:
    _core.metric_reads_mask) divides by that output's summed metric weight (its kept rows, which
    the core reports after the metrics, one per masked output) where the others divide by the
    samples. Made once per fit or evaluate: a step then costs a
    few microseconds (fit calls add() and, for batch callbacks, logs() every step).

    Metrics the core does not compute (compile_utils: `_metric_in_core`) are updated in Python
    from the predictions of the step itself: `stepper(core.train_step)` asks the step to hand
    back the outputs (and masks) those metrics read, and updates the metric objects with them;
    with none, it is the core's step itself, so fit costs what it did. Made, it resets those
    metrics (an epoch, an evaluate); logs() loads the core's totals into the other metric
    objects, so every object given to compile holds what the logs report."""

    __slots__ = ("names", "means", "metrics", "sums", "seen", "_scale", "_batch", "_order",
                 "_model", "_python", "_outputs", "_pending", "_pending_rows")

    def __init__(self, model):
        self.names = model.metrics_names
        self.means = model._n_means
        self._model = model
        self.metrics = None  # (name, metric, start, stop, weight index or None): at the first add
        self.sums = self._scale = None
        self.seen, self._batch = 0, -1
        self._order = sorted(self.names)
        objs = model._metric_objs
        in_core = vars(model).get("_metric_in_core") or [True] * len(objs)
        outputs = vars(model).get("_metric_outputs") or [0] * len(objs)
        weighted = vars(model).get("_metric_weighted") or [False] * len(objs)
        self._python = [(m, k, w) for m, k, c, w in zip(objs, outputs, in_core, weighted)
                        if not c]
        self._outputs = sorted({k for _, k, _ in self._python}) or None
        self._pending, self._pending_rows = [], 0
        for m, _, _ in self._python:
            m.reset_state()

    def _in_core(self) -> list:
        objs = self._model._metric_objs
        return vars(self._model).get("_metric_in_core") or [True] * len(objs)

    def _layout(self, n: int) -> None:
        """Where each metric's accumulators (and, for a masked output's, its weight) are in a
        step's n results."""
        model = self._model
        objs, in_core = model._metric_objs, self._in_core()
        pos = self.means
        stop = pos + sum(m._size for m, c in zip(objs, in_core) if c)
        weight: dict = {}
        if n > stop:  # masked outputs' weights, in output order
            masked = [k for k, node in enumerate(model._core.output_masks()) if node >= 0]
            weight = {k: stop + i for i, k in enumerate(masked)}
        outputs = vars(model).get("_metric_outputs") or [0] * len(objs)
        self.metrics = []
        for nm, metric, k, c in zip(self.names[self.means:], objs, outputs, in_core):
            if not c:
                self.metrics.append((nm, metric, None, None, None))
                continue
            w = weight.get(k) if k in weight and _core.metric_reads_mask(metric._spec()) else None
            self.metrics.append((nm, metric, pos, pos + metric._size, w))
            pos += metric._size
        self.sums, self._scale = np.zeros(n), np.ones(n)

    def stepper(self, step):
        """The core's train_step or test_step as this fit or evaluate calls it: itself, or,
        with metrics outside the core, a step that also updates them from its own outputs."""
        if self._outputs is None:
            return step
        outputs = self._outputs

        def step_and_update(x, y, idx=None, sw=None):
            r, outs, masks = step(x, y, idx, sw, outputs)
            if idx is not None:
                y, sw = take(y, idx), take(sw, idx)
            else:  # the caller's batch, which a generator may fill again: kept as a copy
                y, sw = _copy_arrays(y), _copy_arrays(sw)
            self._pending.append((y, outs, masks, sw))
            self._pending_rows += next(o.shape[0] for o in outs if o is not None)
            if self._pending_rows >= _DEFERRED_ROWS:
                self.flush()
            return r
        return step_and_update

    def flush(self) -> None:
        """Updates the metrics outside the core with the batches held back: all at once, so
        their Python cost is paid per few thousand samples, not per batch (their sums do not
        depend on how the samples are grouped). Batches whose shapes do not line up (sequence
        lengths that vary) update one by one."""
        pending, self._pending, self._pending_rows = self._pending, [], 0
        if len(pending) == 1:
            self.update(*pending[0])
        elif pending:
            try:
                joined = [_concat([p[i] for p in pending]) for i in range(4)]
            except ValueError:
                for batch in pending:
                    self.update(*batch)
                return
            self.update(*joined)

    def update(self, y, outs: list, masks: list, sw=None) -> None:
        """Adds a batch's targets and predictions (with their masks, as a model output on data
        carries them) to the metrics outside the core; the weighted metrics get the batch's
        sample weights (None, an array, or a list with one per output)."""
        several = isinstance(y, list) and len(outs) > 1
        for metric, k, weighted in self._python:
            pred = outs[k]
            if masks[k] is not None:
                pred = metrics_mod.base.with_mask(pred, masks[k])
            w = (sw[k] if isinstance(sw, list) else sw) if weighted else None
            if w is None:
                metric.update_state(y[k] if several else y, pred)
            else:
                metric.update_state(y[k] if several else y, pred, w)

    def add(self, r: np.ndarray, batch: int) -> None:
        if self.sums is None:
            self._layout(r.shape[0])
        if batch != self._batch:
            self._scale[:self.means] = batch
            self._batch = batch
        r *= self._scale
        self.sums += r
        self.seen += batch

    def logs(self, sort: bool = False) -> dict:
        """Keyed as metrics_names (sorted, as Keras's batch and epoch logs are, with sort)."""
        if self._pending:
            self.flush()
        if self.sums is None:
            objs = self._model._metric_objs
            self._layout(self.means + sum(m._size for m, c in zip(objs, self._in_core()) if c))
        seen, sums = self.seen, self.sums
        values = sums[:self.means].tolist()
        logs = {nm: v / seen for nm, v in zip(self.names, values)}
        for nm, metric, start, stop, w in self.metrics:
            if start is None:
                logs[nm] = metrics_mod.base.result_value(metric.result())
            else:
                logs[nm] = metric._combine(sums[start:stop], seen if w is None else sums[w])
        return {k: logs[k] for k in self._order} if sort else logs


class Trainer:
    """What Model inherits to train and evaluate: compile, fit, evaluate, predict, the steps
    (train_step, test_step, predict_step, compute_loss, compute_metrics) a subclass may
    override, and the metrics they report. It works on the model's core, inputs and outputs,
    which Model provides."""

    def __init__(self):
        self._compiled = False
        self.optimizer = None
        self.loss = None
        self._metric_specs: list = []    # per output: the metrics compile was given
        self._weighted_specs: list = []  # per output: its weighted_metrics
        self._metric_names: list[str] = []
        self._metric_core_names: list[str] = []
        self._metric_objs: list = []     # the compiled metrics, in the order of their results
        self._metric_outputs: list = []  # each compiled metric's output
        self._losses: list = []          # per output: a pynn.losses.Loss
        self._loss_weights: list = []    # per output: a float
        self.history = None
        self.stop_training = False     # a callback sets it to end fit (Keras 3's flags)
        self.stop_evaluating = False
        self.stop_predicting = False
        self._validates = False        # whether the running fit validates (for CSVLogger)

    # -- compile --------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1,
                jit_compile="auto", auto_scale_loss=True) -> None:
        """Configures training.

        Args:
            optimizer: name ('adam', 'sgd', ...) or a pynn.optimizers instance.
            loss: name ('sparse_categorical_crossentropy', 'mse', ...) or a pynn.losses instance;
                with several outputs, one loss for all of them, a list (one per output) or a
                dict keyed by output name.
            loss_weights: with several outputs, a list or a dict of floats (default 1.0 each):
                the loss minimised is the sum of weight * loss over the outputs.
            metrics: list of names ('accuracy', 'mae', ...), pynn.metrics instances or
                functions (y_true, y_pred); with several outputs, a list with one entry (a
                metric or a list) per output, or a dict {output name: metric or list}, as
                Keras 3 takes them. They ignore sample weights.
            weighted_metrics: the same, weighed by fit's and evaluate's sample_weight (and
                class_weight); named 'weighted_<name>' where a metric has that name already.

        Example:
            >>> model.compile(optimizer="adam", loss="mse", metrics=["mae"])
        """
        opt, loss_objs, weights, specs, wspecs, loose = compile_utils.resolve(
            self, optimizer, loss, loss_weights, metrics, weighted_metrics,
            steps_per_execution)
        n_out = self._n_outputs
        self.optimizer, self._metric_specs, self._weighted_specs = opt, specs, wspecs
        self._losses, self._loss_weights = loss_objs, weights
        self.loss = loss_objs[0] if n_out == 1 and loss_objs else loss
        self._compiled = True
        python = loss is None or compile_utils.python_losses(loss_objs)
        self._out_trackers = None  # made again for these losses (_output_loss_trackers)
        if python:  # Python steps update these metric objects
            self._metric_names = [nm for nm, _, _, _ in loose]
            self._metric_objs = [m for _, m, _, _ in loose]
            self._metric_weighted = [w for _, _, w, _ in loose]
            self._metric_outputs = [k for _, _, _, k in loose]
        if self._core is not None and python and loss is None:
            self.optimizer._bind(self._core, self)
        elif self._core is not None:
            if self._current_trainable_flags() != self._trainable_flags:
                # a layer was frozen or unfrozen since the build: as in Keras, compile makes it
                # count; the core is rebuilt around the same weight values (and compiled), for
                # a model whose input lengths come from the data when the next data comes
                if vars(self).get("_dyn_shapes"):
                    self._core, self._concrete = None, None
                    self._trainable_flags = self._current_trainable_flags()
                else:
                    self._build_core(self._built_shape)
            else:
                compile_utils.compile_core(self)

    @property
    def metrics_names(self) -> list[str]:
        """'loss' (the weighted total); with several outputs each output's '<name>_loss'; then
        the metrics: the order of evaluate's list and of a step's results."""
        per_output = ([f"{nm}_loss" for nm in self._output_names] if self._n_outputs > 1
                      else [])
        return ["loss"] + per_output + list(self._metric_names)

    @property
    def _n_means(self) -> int:
        """How many of a step's results are batch means (the losses); the rest are sums."""
        return 1 + (self._n_outputs if self._n_outputs > 1 else 0)

    def _assert_compiled(self, what: str) -> None:
        if not self._compiled:
            raise RuntimeError(f"You must call compile() before {what}")

    # -- the steps fit, evaluate and predict run ---------------------------------------------------
    def _custom(self, step: str) -> bool:
        """Whether `step` runs in Python: the subclass overrides it, or (train and test) the
        model was compiled without a loss."""
        mine = getattr(type(self), step) is not getattr(Trainer, step)
        if step == "predict_step":
            return mine or self._core is None and not self._is_subclassed()
        # losses added in call() (add_loss) are nodes of the core's graph, which its steps add
        # to the compiled ones
        # a loss the core lacks runs in its step when it was traced (compile_utils.trace_loss)
        return mine or not self._losses or (compile_utils.python_losses(self._losses)
                                            and not compile_utils.traced(self))

    def train_step(self, data):
        """One training step on a batch `data` ((x,), (x, y) or (x, y, sample_weight) Tensors),
        on the tape: forward, compute_loss, gradients, optimizer.apply; returns the metrics'
        results. fit runs it when a subclass overrides it or the model has no compiled loss
        (otherwise the core runs the same step fused)."""
        x, y, sw = unpack_x_y_sample_weight(data)
        with GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sw)
            scaled = self.optimizer.scale_loss(loss)  # a loss scale's gradients, as Keras
        weights = self.trainable_weights
        self.optimizer.apply(tape.gradient(scaled, weights), weights)
        return self.compute_metrics(x, y, y_pred, sw, loss=loss)

    def test_step(self, data):
        """One evaluation step on a batch: forward, compute_loss, metrics."""
        x, y, sw = unpack_x_y_sample_weight(data)
        with no_grad():
            y_pred = self(x, training=False)
            extra = {"training": False} if _takes_arg(type(self).compute_loss, "training") \
                else {}
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sw, **extra)
        return self.compute_metrics(x, y, y_pred, sw, loss=loss)

    def predict_step(self, data):
        """The model's outputs for a batch (as NumPy arrays)."""
        x, _, _ = unpack_x_y_sample_weight(data)
        with no_grad():
            out = self(x, training=False)
        if isinstance(out, dict):
            return {k: np.asarray(v) for k, v in out.items()}
        if isinstance(out, (list, tuple)):
            return [np.asarray(v) for v in out]
        return np.asarray(out)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled losses of y_pred against y (weighted per output), plus the losses the
        model's layers added (`model.losses`): a scalar Tensor."""
        from .. import ops
        total = None
        if self._losses:
            preds = y_pred if isinstance(y_pred, (list, tuple)) else (
                list(y_pred.values()) if isinstance(y_pred, dict) else [y_pred])
            ys = y if isinstance(y, (list, tuple)) else (
                [y[k] for k in self._output_names] if isinstance(y, dict) else [y])
            trackers = self._output_loss_trackers()
            for k, (lo, w, yt, yp) in enumerate(zip(self._losses, self._loss_weights, ys,
                                                    preds)):
                sw = sample_weight[k] if isinstance(sample_weight, (list, tuple)) else (
                    sample_weight.get(self._output_names[k])
                    if isinstance(sample_weight, dict) else sample_weight)
                term = lo(yt, yp, sample_weight=sw) if sw is not None else lo(yt, yp)
                if trackers:  # each output's own loss, unweighted, a mean over the samples
                    trackers[k].update_state(np.asarray(term), sample_weight=len(yp))
                term = term if w == 1.0 else ops.multiply(term, w)
                total = term if total is None else ops.add(total, term)
        for extra in self.losses:
            total = extra if total is None else ops.add(total, extra)
        if total is None:
            raise ValueError(f"Model '{self.name}' has no loss to compute: compile it with a "
                             "loss, add losses with add_loss, or override train_step")
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None, loss=None) -> dict:
        """Updates `model.metrics` with the batch (the loss tracker with the loss) and returns
        their results."""
        for m in self.metrics:
            if m is vars(self).get("_loss_tracker"):
                if loss is not None:  # a mean over the samples, as Keras's loss tracker
                    m.update_state(np.asarray(loss), sample_weight=_batch_size(x, y_pred))
            elif m.name != "loss" and m not in (vars(self).get("_out_trackers") or []):
                m.update_state(y, y_pred, sample_weight)
        return self.get_metrics_result()

    def _output_loss_trackers(self) -> list:
        """Keras 3's per-output loss trackers ('<output>_loss': each output's unweighted loss,
        a mean over the samples) of a model with several outputs compiled with losses, which
        compute_loss updates; [] otherwise."""
        if not self._compiled or self._n_outputs < 2 or not self._losses:
            return []
        trackers = vars(self).get("_out_trackers")
        if trackers is None:
            trackers = self._out_trackers = [metrics_mod.Mean(name=f"{nm}_loss")
                                             for nm in self._output_names]
        return trackers

    def get_metrics_result(self) -> dict:
        out = {}
        for m in self.metrics:
            r = m.result()
            if isinstance(r, dict):
                out.update(r)
            else:
                out[m.name] = r
        return out

    @property
    def metrics(self) -> list:
        """The metrics a Python step updates and fit resets each epoch: the loss tracker, then
        the compiled metrics (as one entry, `compile_metrics`), as Keras 3 lists them."""
        if not self._compiled:
            return []
        tracker = vars(self).get("_loss_tracker")
        if tracker is None:
            tracker = self._loss_tracker = metrics_mod.Mean(name="loss")
        out = [tracker]  # Keras 3 tracks the loss whenever the model is compiled
        out.extend(self._output_loss_trackers())
        if self._metric_objs:
            cm = vars(self).get("_compile_metrics")
            if cm is None or cm.metrics != self._metric_objs:
                cm = self._compile_metrics = metrics_mod.CompileMetrics(
                    self._metric_objs, self._metric_names, vars(self).get("_metric_weighted"),
                    vars(self).get("_metric_outputs") if self._n_outputs > 1 else None,
                    self._output_names)
            out.append(cm)
        return out

    # -- fit ------------------------------------------------------------------------------------
    @one_shape_at_a_time
    def fit(self, x=None, y=None, batch_size=None, epochs: int = 1, verbose="auto",
            callbacks=None, validation_split: float = 0.0, validation_data=None,
            shuffle: bool = True, class_weight=None, sample_weight=None, initial_epoch: int = 0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None,
            validation_freq: int = 1) -> History:
        """Trains the model.

        Args:
            x, y: inputs and targets (NumPy arrays, pandas objects or nested lists); or, as x
                alone, a pynn.utils.PyDataset or a generator yielding (x, y) or (x, y,
                sample_weight) batches.
            batch_size: samples per step (32).
            epochs: the epoch to stop after.
            verbose: 'auto' or 1 (a progress bar), 2 (a line per epoch), 0 (silent).
            callbacks: a list of pynn.callbacks.Callback.
            validation_split: fraction of the data, taken from its end, to validate on.
            validation_data: (x_val, y_val) or (x_val, y_val, val_sample_weight) to validate
                on instead.
            shuffle: shuffle the training samples every epoch.
            class_weight: {class index: weight} multiplying each sample's loss by its class's
                weight (one-output models).
            sample_weight: a weight per sample multiplying its loss (for several outputs, a
                list or dict with one array, or None, per output).
            initial_epoch: the epoch to start at (to resume a run).
            steps_per_epoch: batches per epoch (default: all the data; a generator without it
                is read until it ends, once).
            validation_steps: batches of a PyDataset or generator validation_data to use.

        Returns:
            A History whose `.history` maps 'loss', each metric and their 'val_' versions to a
            list of per-epoch values.
        """
        self._assert_compiled("fit")
        verbose = _resolve_verbose(verbose)
        batch_size = _check_batch_size(batch_size)
        if not is_batch_source(x):
            self._build_from_data(x)
        compile_utils.check_traced_y(self, y)
        if self._custom("train_step"):
            if class_weight is not None:
                raise ValueError("fit: class_weight is not supported with a Python train_step")
            return fit_python(self, x, y, batch_size, epochs, verbose, callbacks,
                              validation_split, validation_data, shuffle, sample_weight,
                              initial_epoch, steps_per_epoch, validation_steps)
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative int, got {epochs!r}")
        if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) \
                or not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split must be a number in [0, 1), got "
                             f"{validation_split!r}")
        if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, (int, np.integer)) \
                or initial_epoch < 0:
            raise ValueError(f"initial_epoch must be a non-negative int, got {initial_epoch!r}")
        if isinstance(validation_freq, bool) or not isinstance(validation_freq, int) \
                or validation_freq < 1:
            raise ValueError("validation_freq must be a positive int")
        if is_batch_source(x):
            for name, value in (("y", y), ("sample_weight", sample_weight)):
                if value is not None:
                    raise ValueError(f"fit: `{name}` must be None when x is a PyDataset or a "
                                     "generator: each batch holds its targets and weights")
            if validation_split:
                raise ValueError("fit: validation_split needs arrays; give validation_data")
            train = BatchSource(x, steps_per_epoch, "fit")
            steps = train.steps
        else:
            x = prepare_x(self, x)
            y = prepare_y(self, y, n_samples(x))
            sw = prepare_weights(self, sample_weight, None, y, n_samples(x))
        val = None
        if is_batch_source(validation_data):
            val = BatchSource(validation_data, validation_steps, "validation_data")
        elif validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be a tuple (x_val, y_val) or (x_val, "
                                 "y_val, val_sample_weight)")
            xv = prepare_x(self, validation_data[0], "validation x")
            yv = prepare_y(self, validation_data[1], n_samples(xv), "validation y")
            swv = validation_data[2] if len(validation_data) == 3 else None
            val = (xv, yv, prepare_weights(self, swv, None, yv, n_samples(xv),
                                           "validation sample_weight"))
        elif validation_split:
            n = n_samples(x)
            split = int(math.floor(n * (1.0 - validation_split)))
            if split == 0 or split == n:
                raise ValueError(f"validation_split={validation_split} leaves no training or no "
                                 f"validation samples out of {n}")
            head, tail = slice(None, split), slice(split, None)
            val = (take(x, tail), take(y, tail), take(sw, tail))
            x, y, sw = take(x, head), take(y, head), take(sw, head)
        val_batch = _check_batch_size(batch_size if validation_batch_size is None
                                      else validation_batch_size)
        if not is_batch_source(x):
            # class weights weigh the training samples only (validation keeps sample weights)
            train = (x, y, prepare_weights(self, sw, class_weight, y, n_samples(x)))
            steps = -(-n_samples(x) // batch_size)
            if check_steps(steps_per_epoch, "fit") is not None:
                steps = min(steps, steps_per_epoch)
        cb = callbacks if isinstance(callbacks, CallbackList) else CallbackList(
            callbacks, add_history=True, add_progbar=verbose != 0, model=self,
            verbose=verbose, epochs=epochs, steps=steps)
        self._validates = val is not None
        core = self._core
        opt = self.optimizer
        scheduled = opt._schedule is not None
        self.stop_training = False
        begin = cb.wants("on_train_batch_begin")
        end = cb.wants("on_train_batch_end")
        logs: dict = {}
        initial_epoch, skip = _on_train_begin(self, cb, initial_epoch)
        for epoch in range(initial_epoch, epochs):
            cb.on_epoch_begin(epoch)
            totals = _Totals(self)
            train_step = totals.stepper(constraints.after_steps(core.train_step,
                                                                self.trainable_weights))
            batches = self._train_batches(train, batch_size, steps, shuffle, class_weight, skip)
            for step, (bx, by, idx, bsw, b) in enumerate(batches, skip):
                if begin:
                    cb.batch("on_train_batch_begin", step)
                if scheduled:
                    opt._apply_schedule()
                r = train_step(bx, by, idx, bsw)
                totals.add(r, b)
                if end:
                    cb.batch("on_train_batch_end", step, functools.partial(totals.logs, sort=True))
                if self.stop_training:
                    break
            if not totals.seen and isinstance(train, BatchSource):
                warnings.warn("Your input ran out of data; interrupting training. Make sure "
                              "that your dataset or generator can generate at least "
                              "`steps_per_epoch * epochs` batches.", stacklevel=2)
                break
            logs = totals.logs(sort=True) if totals.seen else {}
            if val is not None and (epoch + 1) % validation_freq == 0:
                cb.on_test_begin()
                vlogs = self._evaluate_batches(self._test_batches(val, val_batch), cb)
                cb.on_test_end(vlogs)
                logs.update({"val_" + k: v for k, v in vlogs.items()})
                logs = dict(sorted(logs.items()))
            skip = 0
            cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        if epochs > 0:  # use_ema: the moving averages become the weights, as Keras's fit ends
            opt.finalize_variable_values(self.trainable_weights)
        cb.on_train_end(logs)
        return self.history

    # -- evaluate / predict ---------------------------------------------------------------------
    def _train_batches(self, train, batch_size: int, steps, shuffle: bool, class_weight,
                       skip: int = 0):
        """One epoch of training batches as (x, y, idx, sample_weight, size): rows idx of the
        arrays (shuffled), or a BatchSource's batches, prepared; the first `skip` left out (a
        run resumed inside an epoch)."""
        if isinstance(train, BatchSource):
            for step, (bx, by, bsw) in enumerate(train.epoch()):
                if step < skip:
                    continue
                bx, by, bsw, b = prepare_batch(self, bx, by, bsw, class_weight, "fit")
                yield bx, by, None, bsw, b
            return
        x, y, sw = train
        n = n_samples(x)
        order = pn_random.generator().permutation(n) if shuffle else np.arange(n)
        for step in range(skip, steps):
            idx = order[step * batch_size:(step + 1) * batch_size]
            yield x, y, idx, sw, idx.shape[0]

    def _test_batches(self, data, batch_size: int):
        """Batches of (x, y, sample_weight) arrays or of a BatchSource, as (x, y, None,
        sample_weight, size)."""
        if isinstance(data, BatchSource):
            for bx, by, bsw in data.epoch():
                bx, by, bsw, b = prepare_batch(self, bx, by, bsw, None, "evaluate")
                yield bx, by, None, bsw, b
            return
        x, y, sw = data
        n = n_samples(x)
        for start in range(0, n, batch_size):
            rows = slice(start, start + batch_size)
            yield take(x, rows), take(y, rows), None, take(sw, rows), \
                min(batch_size, n - start)

    def _evaluate_batches(self, batches, cb=None) -> dict:
        """The loss and metrics over (x, y, idx, sample_weight, size) batches; calls the test
        batch hooks of `cb` (a CallbackList) that some callback defines."""
        totals = _Totals(self)
        test_step = totals.stepper(self._core.test_step)
        begin = cb is not None and cb.wants("on_test_batch_begin")
        end = cb is not None and cb.wants("on_test_batch_end")
        self.stop_evaluating = False
        for step, (bx, by, _, bsw, b) in enumerate(batches):
            if begin:
                cb.batch("on_test_batch_begin", step)
            r = test_step(bx, by, None, bsw)
            totals.add(r, b)
            if end:
                cb.batch("on_test_batch_end", step, functools.partial(totals.logs, sort=True))
            if self.stop_evaluating:
                break
        if not totals.seen:
            raise ValueError("evaluate: the data holds no batches")
        return totals.logs()  # in metrics_names order, as Keras's evaluate returns them

    @one_shape_at_a_time
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict: bool = False):
        """Returns the loss (a float) when there are no metrics and one output, else [loss,
        *output_losses, *metrics] in the order of `metrics_names` (or a dict with
        return_dict=True), averaged over all samples."""
        self._assert_compiled("evaluate")
        verbose = _resolve_verbose(verbose)
        batch_size = _check_batch_size(batch_size)
        check_steps(steps, "evaluate")
        if not is_batch_source(x):
            self._build_from_data(x)
        compile_utils.check_traced_y(self, y)
        if self._custom("test_step"):
            return evaluate_python(self, x, y, batch_size, verbose, sample_weight, steps,
                                   callbacks, return_dict)
        if is_batch_source(x):
            if y is not None or sample_weight is not None:
                raise ValueError("evaluate: `y` and `sample_weight` must be None when x is a "
                                 "PyDataset or a generator: each batch holds them")
            data = BatchSource(x, steps, "evaluate")
            steps = data.steps
        else:
            x = prepare_x(self, x)
            y = prepare_y(self, y, n_samples(x))
            data = (x, y, prepare_weights(self, sample_weight, None, y, n_samples(x)))
            steps = -(-n_samples(x) // batch_size)
        cb = callbacks if isinstance(callbacks, CallbackList) else CallbackList(
            callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1,
            steps=steps)
        cb.on_test_begin()
        logs = self._evaluate_batches(self._test_batches(data, batch_size), cb)
        cb.on_test_end(logs)
        if return_dict:
            return logs
        values = [logs[k] for k in self.metrics_names]
        return values[0] if len(values) == 1 else values

    @one_shape_at_a_time
    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Returns the model's outputs for `x` as a float32 NumPy array (the caller owns it); a
        list of them (a dict, by output name) for a model with a list (dict) of outputs."""
        core = self._core
        if (type(x) is np.ndarray and verbose == 0 and callbacks is None and batch_size is None
                and steps is None and core is not None and self._fast_dtype is not None
                and not vars(self).get("_dyn_shapes") and not self._custom("predict_step")):
            # the latency path, checked first (a single-sample predict costs a few
            # microseconds): one float array of the input's dtype, checked by the core
            out = core.predict_array(x)
            if out is not NotImplemented:
                return out if self._output_struct == "single" else self._wrap(out)
        if not is_batch_source(x):
            self._build_from_data(x)
        if self._custom("predict_step"):
            return predict_python(self, x, _check_batch_size(batch_size),
                                  _resolve_verbose(verbose), steps, callbacks)
        core = self._core
        batch_size = _check_batch_size(batch_size)
        verbose = _resolve_verbose(verbose)
        check_steps(steps, "predict")
        if is_batch_source(x):  # each batch: x, or a tuple whose first entry is x
            source = BatchSource(x, steps, "predict")
            batches = (prepare_x(self, bx, "predict: a batch's x")
                       for bx, _, _ in source.epoch())
            n_steps = source.steps
        else:
            x = prepare_x(self, x)
            if not verbose and not callbacks:
                return self._wrap(self._core.predict(x, batch_size))
            n = n_samples(x)
            batches = (take(x, slice(s, s + batch_size)) for s in range(0, n, batch_size))
            n_steps = -(-n // batch_size)
        cb = callbacks if isinstance(callbacks, CallbackList) else CallbackList(
            callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1,
            steps=n_steps)
        begin = cb.wants("on_predict_batch_begin")
        end = cb.wants("on_predict_batch_end")
        self.stop_predicting = False
        cb.on_predict_begin()
        parts = []
        for step, bx in enumerate(batches):
            if begin:
                cb.batch("on_predict_batch_begin", step)
            part = self._core.predict(bx, max(batch_size, n_samples(bx)))
            parts.append(part if isinstance(part, list) else [part])
            if end:
                cb.batch("on_predict_batch_end", step, {"outputs": self._wrap(part)})
            if self.stop_predicting:
                break
        cb.on_predict_end()
        if not parts:
            raise ValueError("predict: the data holds no batches")
        return self._wrap([np.concatenate(p) for p in zip(*parts)])

    @one_shape_at_a_time
    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None,
                       return_dict: bool = False):
        """One training step on the whole of (x, y): forward, loss, backward, update.

        Returns:
            The batch's loss (a float) when there are no metrics, else [loss, *metrics], or a
            dict with return_dict=True, as Keras returns them.
        """
        return self._on_batch(x, y, return_dict, True, sample_weight, class_weight)

    @one_shape_at_a_time
    def test_on_batch(self, x, y=None, sample_weight=None, return_dict: bool = False):
        """The loss and metrics of (x, y) as one batch, without updating anything."""
        return self._on_batch(x, y, return_dict, False, sample_weight)

    def _on_batch(self, x, y, return_dict: bool, train: bool, sample_weight=None,
                  class_weight=None):
        self._assert_compiled("train_on_batch" if train else "test_on_batch")
        if self._custom("train_step" if train else "test_step"):
            # a train_step (test_step) of the subclass's own, or a loss on Python steps: that
            # step, as fit runs it; each call reports its own batch, as the fused step does
            if class_weight is not None:
                raise ValueError("train_on_batch: class_weight is not supported with a Python "
                                 "train_step")
            _reset(self)
            data = _data(as_tensors(as_arrays(x)), as_tensors(as_arrays(y)),
                         as_tensors(as_arrays(sample_weight)))
            logs = _scalar_logs(self.train_step(data) if train else self.test_step(data))
        else:
            logs = self._fused_on_batch(x, y, train, sample_weight, class_weight)
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def _fused_on_batch(self, x, y, train: bool, sample_weight, class_weight) -> dict:
        """train_on_batch / test_on_batch as one call of the core's fused step."""
        x = prepare_x(self, x)
        n = n_samples(x)
        y = prepare_y(self, y, n)
        sw = prepare_weights(self, sample_weight, class_weight, y, n)
        if train:
            self.optimizer._apply_schedule()
        totals = _Totals(self)
        step = totals.stepper(constraints.after_steps(self._core.train_step,
                                                      self.trainable_weights)
                              if train else self._core.test_step)
        totals.add(step(x, y, None, sw), n)
        return totals.logs()

    @one_shape_at_a_time
    def predict_on_batch(self, x):
        """predict for one batch, without batching or progress."""
        x = prepare_x(self, x)
        return self._wrap(self._core.predict(x, n_samples(x)))


# -- the loop of Python steps ---------------------------------------------------------------------
def _data(x, y, sw):
    """What a step receives, as Keras 3 packs it: x alone (a one-tuple when x is a list or
    tuple), (x, y) or (x, y, sample_weight)."""
    if y is None and sw is None:
        return (x,) if isinstance(x, (list, tuple)) else x
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


def _batch_size(x, y_pred) -> int:
    """A batch's samples: the first axis of its first input (or prediction)."""
    for value in (x, y_pred):
        while isinstance(value, (list, tuple, dict)) and value:
            value = next(iter(value.values())) if isinstance(value, dict) else value[0]
        shape = getattr(value, "shape", None)
        if shape:
            return int(shape[0])
    return 1


def _on_train_begin(model, cb, initial_epoch: int) -> tuple[int, int]:
    """Calls the callbacks' on_train_begin; returns the epoch and step to start at: those a
    callback restored (BackupAndRestore sets model._initial_epoch and _initial_step), else
    initial_epoch and 0."""
    model._initial_epoch = model._initial_step = None
    cb.on_train_begin()
    epoch, step = model._initial_epoch, model._initial_step
    model._initial_epoch = model._initial_step = None
    return (initial_epoch, 0) if epoch is None else (epoch, step or 0)


def _reset(model) -> None:
    for m in model.metrics:
        m.reset_state()


def _batches(model, data, batch_size: int, shuffle: bool, steps):
    """Batches of (x, y, sw) arrays, or of a BatchSource."""
    if isinstance(data, BatchSource):
        for bx, by, bsw in data.epoch():
            yield as_arrays(bx), as_arrays(by), as_arrays(bsw)
        return
    x, y, sw = data
    n = n_samples(x)
    order = pn_random.generator().permutation(n) if shuffle else np.arange(n)
    n_steps = -(-n // batch_size)
    if steps is not None:
        n_steps = min(n_steps, steps)
    for step in range(n_steps):
        idx = order[step * batch_size:(step + 1) * batch_size]
        if not shuffle:
            idx = slice(step * batch_size, (step + 1) * batch_size)
        yield take(x, idx), take(y, idx), take(sw, idx)


def fit_python(model, x, y, batch_size, epochs, verbose, callbacks, validation_split,
               validation_data, shuffle, sample_weight, initial_epoch, steps_per_epoch,
               validation_steps):
    """Trainer.fit for a model whose train_step runs in Python (its arguments checked)."""
    if model.optimizer is None:
        raise ValueError(f"Model '{model.name}': compile() it (with an optimizer) before fit")
    if is_batch_source(x):
        train = BatchSource(x, steps_per_epoch, "fit")
        steps = train.steps
    else:
        x, y, sw = as_arrays(x), as_arrays(y), as_arrays(sample_weight)
        n = n_samples(x)
        if validation_split:
            split = int(math.floor(n * (1.0 - validation_split)))
            if split == 0 or split == n:
                raise ValueError(f"validation_split={validation_split} leaves no training or "
                                 f"no validation samples out of {n}")
            head, tail = slice(None, split), slice(split, None)
            validation_data = (take(x, tail), take(y, tail)) + (
                (take(sw, tail),) if sw is not None else ())
            x, y, sw = take(x, head), take(y, head), take(sw, head)
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
    initial_epoch, skip = _on_train_begin(model, cb, initial_epoch)
    for epoch in range(initial_epoch, epochs):
        _reset(model)
        cb.on_epoch_begin(epoch)
        step_logs: dict = {}
        for step, (bx, by, bsw) in enumerate(_batches(model, train, batch_size, shuffle,
                                                      steps_per_epoch)):
            if step < skip:
                continue
            cb.batch("on_train_batch_begin", step)
            step_logs = _scalar_logs(model.train_step(_data(as_tensors(bx), as_tensors(by),
                                                            as_tensors(bsw))))
            cb.batch("on_train_batch_end", step, step_logs)
            if model.stop_training:
                break
        logs = dict(step_logs)
        skip = 0
        if val is not None:
            vlogs = _evaluate_python(model, val, batch_size, cb)
            logs.update({"val_" + k: v for k, v in vlogs.items()})
        cb.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    if epochs > 0:  # use_ema: the moving averages become the weights, as Keras's fit ends
        model.optimizer.finalize_variable_values(model.trainable_weights)
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
    xv, yv = as_arrays(validation_data[0]), as_arrays(validation_data[1])
    swv = as_arrays(validation_data[2]) if len(validation_data) == 3 else None
    return (xv, yv, swv)


def _evaluate_python(model, data, batch_size: int, cb) -> dict:
    _reset(model)
    cb.on_test_begin()
    logs: dict = {}
    for step, (bx, by, bsw) in enumerate(_batches(model, data, batch_size, False, None)):
        cb.batch("on_test_batch_begin", step)
        logs = _scalar_logs(model.test_step(_data(as_tensors(bx), as_tensors(by),
                                                  as_tensors(bsw))))
        cb.batch("on_test_batch_end", step, logs)
    cb.on_test_end(logs)
    return logs


def evaluate_python(model, x, y, batch_size, verbose, sample_weight, steps, callbacks,
                    return_dict):
    """Trainer.evaluate for a model whose test_step runs in Python."""
    if is_batch_source(x):
        data = BatchSource(x, steps, "evaluate")
        n_steps = data.steps
    else:
        data = (as_arrays(x), as_arrays(y), as_arrays(sample_weight))
        n_steps = -(-n_samples(data[0]) // batch_size)
    cb = callbacks if isinstance(callbacks, CallbackList) else CallbackList(
        callbacks, add_progbar=verbose != 0, model=model, verbose=verbose, epochs=1,
        steps=n_steps)
    logs = _evaluate_python(model, data, batch_size, cb)
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


def predict_python(model, x, batch_size, verbose, steps, callbacks):
    """Trainer.predict for a model whose predict_step runs in Python."""
    if is_batch_source(x):
        source = BatchSource(x, steps, "predict")
        batches = (as_arrays(bx) for bx, _, _ in source.epoch())
        n_steps = source.steps
    else:
        x = as_arrays(x)
        n = n_samples(x)
        batches = (take(x, slice(s, s + batch_size)) for s in range(0, n, batch_size))
        n_steps = -(-n // batch_size)
    cb = callbacks if isinstance(callbacks, CallbackList) else CallbackList(
        callbacks, add_progbar=verbose != 0, model=model, verbose=verbose, epochs=1,
        steps=n_steps)
    cb.on_predict_begin()
    parts = []
    for step, bx in enumerate(batches):
        cb.batch("on_predict_batch_begin", step)
        out = model.predict_step(_data(as_tensors(bx), None, None))
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
