"""compile()'s arguments, resolved per output: the optimizer, a loss and a loss weight for each
output, each output's metrics and their names (Keras 3's '<output>_<metric>' with several
outputs), and the core compiled with them. Everything is checked before the model changes: a
compile that fails leaves the model as it was.
"""

import math

import numpy as np

from .. import losses, optimizers
from .. import metrics as metrics_mod
from .data import by_name


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def resolve(model, optimizer, loss, loss_weights, metrics, weighted_metrics,
            steps_per_execution) -> tuple:
    """compile's arguments for `model`, checked: (optimizer, a pynn.losses.Loss per output (none
    without a loss), a float per output, the metrics and the weighted metrics given per output,
    and without a loss the (name, metric, weighted) triples a Python step updates)."""
    if steps_per_execution != 1:
        raise ValueError("compile: only steps_per_execution=1 is supported")
    opt = optimizers.get(optimizer)
    n_out = model._n_outputs
    names = model.output_names or ["output"]
    # without a loss: a model whose train_step (or its layers' add_loss) makes one
    loss_objs = [] if loss is None else [losses.to_loss(spec) for spec in
                                         per_output(model, loss, "loss", names)]
    weights = loss_weight_list(model, loss_weights, names)
    specs = metric_lists(model, metrics, names)
    wspecs = metric_lists(model, weighted_metrics, names)
    loose = []  # without a loss, or with one the core lacks: metrics for a Python step
    if python_losses(loss_objs) or loss is None:
        # (name, metric, weighted, output), the unweighted ones first, each output's in turn
        # ('<output>_<name>' with several), as Keras 3's CompileMetrics orders and names them
        for weighted, lists in ((False, specs), (True, wspecs)):
            for k, entries in enumerate(lists):
                for m in entries:
                    # 'accuracy' takes its form from the data's shapes, as Keras's compile does
                    loose.append(metrics_mod.resolve(m, "", 0) + (weighted, k))
        names = unique_metric_names([(names[k] if n_out > 1 else None, nm, w)
                                     for nm, _, w, k in loose])
        loose = [(nm, m, w, k) for nm, (_, m, w, k) in zip(names, loose)]
    for objs, lo in zip(specs, loss_objs):  # unknown names fail here, before state changes
        for m in objs:
            metrics_mod.resolve(m, lo.core_name, 0)
    for objs, lo in zip(wspecs, loss_objs):
        for m in objs:
            metrics_mod.resolve(m, lo.core_name, 0)
    return opt, loss_objs, weights, specs, wspecs, loose


def unique_metric_names(entries: list) -> list[str]:
    """History names of (output prefix or None, metric name, weighted) entries, as Keras 3's
    CompileMetrics makes them: '<output>_<name>'; a repeat gets '_1', '_2', ...; a weighted
    metric that repeats a name is 'weighted_<name>' first."""
    seen: dict = {}
    out = []
    for prefix, name, weighted in entries:
        full = f"{prefix}_{name}" if prefix else name
        if full in seen and weighted:
            full = f"{prefix}_weighted_{name}" if prefix else f"weighted_{name}"
        if full in seen:
            seen[full] += 1
            full = f"{full}_{seen[full] - 1}"
        else:
            seen[full] = 1
        out.append(full)
    return out


def python_losses(loss_objs: list) -> bool:
    """Whether a loss is one the core's fused step does not compute (a user function, a Loss
    subclass, or arguments the core lacks): the model then trains by Python steps."""
    return any(not lo.in_core for lo in loss_objs)


def per_output(model, value, what: str, names: list) -> list:
    """compile's `loss`: one for all outputs, a list (one per output) or a dict by name."""
    if not isinstance(value, (dict, list, tuple)):
        return [value] * len(names)
    problem, detail = by_name(value, names)
    n = len(names)
    if problem == "unknown":
        raise ValueError(f"compile: {what} names output '{detail}', which model "
                         f"'{model.name}' does not have; its outputs are {names}")
    if problem == "missing":
        raise ValueError(f"compile: {what} is a dict without an entry for output "
                         f"'{detail}'; expected keys {names}")
    if problem == "count":
        raise ValueError(f"compile: {what} is a list of {detail}, but model "
                         f"'{model.name}' has {n} output{'s' if n > 1 else ''}")
    return detail


def loss_weight_list(model, loss_weights, names: list) -> list[float]:
    """compile's `loss_weights` as a float per output (1.0 where none is given)."""
    n = len(names)
    if loss_weights is None:
        return [1.0] * n
    if isinstance(loss_weights, dict):
        unknown = [k for k in loss_weights if k not in names]
        if unknown:
            raise ValueError(f"compile: loss_weights names output '{unknown[0]}', which "
                             f"model '{model.name}' does not have; its outputs are {names}")
        weights = [loss_weights.get(k, 1.0) for k in names]
    elif isinstance(loss_weights, (list, tuple)):
        if len(loss_weights) != n:
            raise ValueError(f"compile: loss_weights is a list of {len(loss_weights)}, but "
                             f"model '{model.name}' has {n} output{'s' if n > 1 else ''}")
        weights = list(loss_weights)
    elif n == 1:
        weights = [loss_weights]
    else:
        raise ValueError("compile: with several outputs, loss_weights must be a list or a "
                         f"dict, got {loss_weights!r}")
    out = []
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, (int, float, np.integer, np.floating)) \
                or not math.isfinite(w):
            raise ValueError(f"compile: loss weights must be finite numbers, got {w!r}")
        out.append(float(w))
    return out


def metric_lists(model, metrics, names: list) -> list[list]:
    """compile's `metrics` as one list per output, following Keras 3."""
    n = len(names)
    if metrics is None:
        return [[] for _ in names]
    if not isinstance(metrics, (str, metrics_mod.Metric, list, tuple, dict)):
        raise TypeError(f"compile: metrics must be a list (or a dict by output) of metric "
                        f"names or instances, got {type(metrics).__name__}")
    if n == 1:
        if isinstance(metrics, (str, metrics_mod.Metric)):
            metrics = [metrics]
        if isinstance(metrics, dict):
            if model._output_names and any(k not in names for k in metrics):
                bad = [k for k in metrics if k not in names][0]
                raise ValueError(f"compile: metrics names output '{bad}', which model "
                                 f"'{model.name}' does not have; its outputs are {names}")
            if not model._output_names:
                raise ValueError("compile: metrics as a dict need named outputs; pass a "
                                 "list")
            flat = []
            for v in metrics.values():
                flat.extend(v if isinstance(v, (list, tuple)) else [v])
            metrics = flat
        return [list(metrics)]
    if isinstance(metrics, dict):
        unknown = [k for k in metrics if k not in names]
        if unknown:
            raise ValueError(f"compile: metrics names output '{unknown[0]}', which model "
                             f"'{model.name}' does not have; its outputs are {names}")
        return [_as_list(metrics.get(k)) for k in names]
    if isinstance(metrics, (list, tuple)):
        if len(metrics) != n:
            raise ValueError(
                f"compile: for a model with several outputs, metrics given as a list need "
                f"one entry (a metric or a list of them) per output: model '{model.name}' "
                f"has {n} outputs {names}, got a list of {len(metrics)}")
        return [_as_list(m) for m in metrics]
    raise ValueError("compile: with several outputs, metrics must be a list (one entry per "
                     f"output) or a dict keyed by output name, got {metrics!r}")


def compile_core(model) -> None:
    """Compiles the model's core with its losses, loss weights and metrics (resolved now that
    each output's size is known), names the metrics, and binds the optimizer to the core. A
    loss the core lacks is traced into its graph where it can be (trace_loss)."""
    state = vars(model).get("_loss_trace")
    if state is not None and state[0] is model._core and state[4] \
            and state[1:3] != _trace_key(model):
        # the graph holds another loss's trace: built again, without it, for this one
        model._loss_trace = None
        model._build_core(model._built_shape)
        return
    if python_losses(model._losses) and not trace_loss(model):
        model.optimizer._bind(model._core, model)  # Python steps: the core only runs the model
        return
    graphs = vars(model).get("_graphs")
    if graphs is not None and graphs.core is model._core:
        graphs.drop_others()  # a dynamic model's other input shapes: built again with this loss
    compile_graph(model)
    model.optimizer._bind(model._core, model)


def compile_graph(model) -> None:
    """Compiles the core's current graph with the model's losses, loss weights and metrics
    (resolved now that each output's size is known) and names the metrics."""
    n_out = len(model._losses)
    if n_out != model._n_outputs:
        raise ValueError(f"Model '{model.name}' has {model._n_outputs} outputs but was "
                         f"compiled for {n_out}")
    entries, named, objs, outputs, in_core = [], [], [], [], []
    for k in range(n_out):
        loss = model._losses[k]
        resolved = resolved_metrics(model, k, loss.core_name, python=not loss.in_core)
        prefix = model._output_names[k] if n_out > 1 else None  # Keras 3: '<output>_<metric>'
        named.extend((prefix, name, False) for name, _ in resolved)
        # the core adds the metrics it has (up to 8 per output) in its step; the others update
        # in Python from the predictions the step hands back (trainer._Totals); a traced loss's
        # output has no fused loss ('none'), and all its metrics update in Python
        specs, traced = [], not loss.in_core
        for _, m in resolved:
            spec = m._spec()
            in_core.append(spec is not None and len(specs) < 8 and not traced)
            if in_core[-1]:
                specs.append(spec)
        entries.append(("none", False, 1.0, []) if traced else
                       (loss.core_name, loss.from_logits, model._loss_weights[k], specs))
        objs.extend(m for _, m in resolved)
        outputs.extend([k] * len(resolved))
    # weighted_metrics, after the others as Keras lists them: in Python, with the sample
    # weights (the core's metrics are unweighted)
    for k in range(n_out):
        resolved = resolved_metrics(model, k, model._losses[k].core_name, weighted=True,
                                    python=not model._losses[k].in_core)
        prefix = model._output_names[k] if n_out > 1 else None
        named.extend((prefix, name, True) for name, _ in resolved)
        objs.extend(m for _, m in resolved)
        outputs.extend([k] * len(resolved))
        in_core.extend([False] * len(resolved))
    model._core.compile_outputs(entries)
    model._metric_names, model._metric_objs = unique_metric_names(named), objs
    model._metric_outputs = outputs  # each metric's output: whose mask weighs it (_Totals)
    model._metric_in_core = in_core
    model._metric_weighted = [w for _, _, w in named]
    model._metric_core_names = [(m._spec() or ("",))[0] for m in objs]


def _trace_key(model) -> tuple:
    return (model._losses[0] if model._losses else None,
            model._loss_weights[0] if model._loss_weights else None)


def traced(model) -> bool:
    """Whether the model's loss (one the core lacks) runs traced in its core's step."""
    state = vars(model).get("_loss_trace")
    return state is not None and state[0] is model._core and state[3] \
        and state[1:3] == _trace_key(model)


def _traceable(model) -> bool:
    from .trainer import Trainer
    if not getattr(model, "_trace_losses", True) or model._core is None:
        return False
    if model._n_outputs != 1 or len(model._losses) != 1 or model._losses[0].in_core:
        return False  # several outputs keep Python steps
    cls = type(model)
    if any(getattr(cls, f) is not getattr(Trainer, f)
           for f in ("train_step", "test_step", "compute_loss")):
        return False
    if vars(model).get("_dyn_shapes") or model._adds_losses():
        return False
    return all(mk < 0 for mk in model._core.output_masks())


def trace_loss(model) -> bool:
    """Traces the model's loss (a user function, a Loss subclass, a loss the core lacks) into
    its core graph: symbolic y_true (the output's per-sample shape) and sample weights bound to
    the core's target nodes, `loss(y_true, y_pred, sample_weight=sw)` (Loss.__call__, as the
    Python step calls it) times the loss weight, lowered after the output as an added loss; the
    output is then compiled without a fused loss ('none'). Returns whether it did: anything the
    trace cannot express (an op without a core row, NumPy on a symbolic tensor, Python
    branching on one, a mask) leaves Python steps, without an error."""
    if traced(model):
        return True
    state = vars(model).get("_loss_trace")
    if state is not None and (isinstance(state[0], str) or state[0] is model._core
                              and state[1:3] == _trace_key(model)):
        return False  # tried on this core, and failed (or building it again after a failure)
    if not _traceable(model):
        return False
    from .. import ops
    from ..layers import tracing
    from ..layers.input_layer import KerasTensor
    from .functional import calls_between, lower_calls
    core, (loss, weight) = model._core, _trace_key(model)
    shape = tuple(model._output_sample_shapes[0])
    y_pred = KerasTensor((None,) + shape, "float32", "y_pred")
    y_true = KerasTensor((None,) + shape, "float32", "y_true")
    sw = KerasTensor((None,), "float32", "sample_weight")
    model._loss_trace = (core, loss, weight, False, False)
    try:
        with tracing.quiet():
            tracing._stack().append((model, {}, []))
            try:
                term = loss(y_true, y_pred, sample_weight=sw)
                if weight != 1.0:
                    term = ops.multiply(term, weight)
            finally:
                tracing._stack().pop()
        if not isinstance(term, KerasTensor) or not term._unbatched or tuple(term.shape):
            return False
        calls = calls_between([y_true, y_pred, sw], [term], None)
    except Exception:  # noqa: BLE001 - any failure of the user's code: Python steps
        return False
    try:
        nodes = {id(y_pred): core.output_node(0), id(y_true): core.add_target(0, 0, shape),
                 id(sw): core.add_target(0, 1, ())}
        lower_calls(core, calls, nodes, [term])
        core.set_added_losses([nodes[id(term)]])
    except Exception:  # noqa: BLE001 - an op the core cannot run: a clean graph, Python steps
        model._loss_trace = ("rebuilding", loss, weight, False, False)
        try:
            model._build_core(model._built_shape)  # a graph without the partial trace
        finally:
            model._loss_trace = (model._core, loss, weight, False, False)
        return False
    model._loss_trace = (core, loss, weight, True, True)
    return True


def check_traced_y(model, y) -> None:
    """Before a step on targets y: a traced loss read targets shaped like the output; targets
    of another per-sample shape (labels for a loss that broadcasts them) go back to Python
    steps, which compute that loss as Keras does (the graph keeps its unused trace)."""
    if y is None or not traced(model):
        return
    if isinstance(y, dict) and len(y) == 1:
        y = next(iter(y.values()))
    elif isinstance(y, (list, tuple)) and len(y) == 1 and hasattr(y[0], "shape"):
        y = y[0]
    try:
        per = tuple(np.shape(y))[1:]
    except Exception:  # noqa: BLE001 - not array-like: the data checks say why
        return
    if per != tuple(model._output_sample_shapes[0]):
        state = model._loss_trace
        model._loss_trace = state[:3] + (False, True)
        model.optimizer._bind(model._core, model)


def resolved_metrics(model, k: int, loss_name: str, weighted: bool = False,
                     python: bool = False) -> list:
    """Output k's (name, metric) pairs for compile's metrics (or weighted_metrics), resolved
    once per compile (a name becomes one object, which every graph of a dynamic model
    shares). python: as Python steps resolve them (a traced loss's output: 'accuracy' takes
    its form from the data, and the objects serve Python steps if the model goes back to
    them)."""
    if python:
        lists = (vars(model).get("_weighted_specs") or [[]] * (k + 1)) if weighted \
            else model._metric_specs
        return [metrics_mod.resolve(m, "", 0) for m in lists[k]]
    cache = vars(model).get("_resolved_metrics")
    if cache is None or cache[0] is not model._metric_specs:
        cache = model._resolved_metrics = (model._metric_specs, {})
    if (k, weighted) not in cache[1]:
        units = model._output_sample_shapes[k][-1]
        lists = (vars(model).get("_weighted_specs") or [[]] * (k + 1)) if weighted \
            else model._metric_specs
        cache[1][(k, weighted)] = [metrics_mod.resolve(m, loss_name, units) for m in lists[k]]
    return cache[1][(k, weighted)]
