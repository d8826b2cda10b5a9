"""The host stage of a model: layers that run in NumPy on strings (TextVectorization,
StringLookup, IntegerLookup, Hashing; `_host_layer` set) at the model's input side.

Such a layer must be fed by the model's inputs or by another host layer. The model applies them
to each batch of raw inputs before the core (data.prepare_x calls `HostStage.prepare`), and its
core graph starts from their outputs: one core input per tensor the core reads (a host layer's
output, or a model input that no host layer needs).
"""

import numpy as np

from ..utils.shape_utils import shape_str
from .data import match, single_input, to_float32, to_int32


def is_host(layer) -> bool:
    return bool(getattr(layer, "_host_layer", False))


class HostStage:
    """The host calls of a model and the tensors its core starts from.

    Args:
        inputs: the model's Input tensors, in order.
        calls: the host layer calls, in order.
        sources: the tensors the core graph reads first (its inputs, in order).
    """

    def __init__(self, inputs: list, calls: list, sources: list):
        self.inputs, self.calls, self.sources = inputs, calls, sources

    def run(self, raw: list) -> dict:
        """{id(tensor): value} of the model inputs (`raw`, in order) and of every host call."""
        values = {}
        for t, a in zip(self.inputs, raw):
            a = np.asarray(a, dtype=object) if isinstance(a, (list, tuple)) else a
            if hasattr(a, "to_numpy") and not isinstance(a, np.ndarray):  # pandas
                a = a.to_numpy()
            a = np.asarray(a)
            if a.ndim == 0:
                raise ValueError(f"the data for input '{t._layer.name}' must have a batch axis, "
                                 "got a scalar")
            if a.ndim == len(t.shape) - 1 and tuple(t.shape[1:]) == (1,):
                a = a.reshape(-1, 1)  # a vector of strings: one per sample
            values[id(t)] = a
        for t in self.calls:
            values[id(t)] = np.asarray(t._layer.call(values[id(t._inputs[0])]))
        return values

    def prepare(self, model, x, what: str):
        """x (raw data for the model's inputs) as the core takes it: the host layers applied,
        each core input converted and checked (one array, or a list in core input order)."""
        if model._n_inputs == 1:
            raw = [single_input(model, x, what)]
        else:
            raw = match(model, x, model._input_names, what, "input")
        if any(r is None for r in raw):
            raise ValueError(f"{what} is missing")
        values = self.run(raw)
        arrays = []
        for t in self.sources:
            label = f"{what} (the input of the core: '{t._layer.name}''s output)"
            a = values[id(t)]
            a = to_int32(a, label) if t.dtype == "int32" else to_float32(a, label)
            arrays.append(a.reshape(-1, 1) if a.ndim == 1 and len(t.shape) == 2 else a)
        n = arrays[0].shape[0]
        if n == 0:
            raise ValueError(f"{what} is empty: it has no samples")
        if any(a.shape[0] != n for a in arrays):
            raise ValueError(f"Data cardinality is ambiguous: the inputs of model "
                             f"'{model.name}' hold different numbers of samples")
        if vars(model).get("_dyn_shapes"):
            model._use_shapes([a.shape[1:] for a in arrays])
        model._assert_built("its inputs")
        for k, (t, a) in enumerate(zip(self.sources, arrays)):
            want = tuple(model._core.node_shape(k))
            if a.shape[1:] != want:
                raise ValueError(f"Layer '{t._layer.name}' of model '{model.name}' made "
                                 f"{shape_str(a.shape)} on the host, but the model's core "
                                 f"takes {shape_str((None,) + want)}")
        return arrays[0] if len(arrays) == 1 else arrays


def split(inputs: list, calls: list) -> HostStage | None:
    """The host stage of a functional model's graph (`calls` in order), or None when no layer
    of it runs on the host. A host layer fed by a core layer, or a core layer fed by a string,
    is an error naming it."""
    if not any(is_host(t._layer) for t in calls):
        if any(t.dtype == "string" for t in inputs):
            name = next(t._layer.name for t in inputs if t.dtype == "string")
            raise ValueError(f"Model: input '{name}' holds strings, which only a layer that "
                             "runs on the host (TextVectorization, StringLookup, Hashing, ...) "
                             "can take first")
        return None
    host_made = {id(t) for t in inputs}
    host_calls, sources, seen = [], [], set()
    for t in calls:
        if is_host(t._layer):
            for i in t._inputs:
                if id(i) not in host_made:
                    raise ValueError(f"{type(t._layer).__name__} '{t._layer.name}' runs on the "
                                     "host (NumPy) on strings, so in a model it must be fed by "
                                     "the model's input (or by another such layer), not by "
                                     f"'{i._layer.name}'")
            host_calls.append(t)
            for o in (t._siblings or [t]):
                host_made.add(id(o))
            continue
        for i in t._inputs:
            if id(i) in host_made and id(i) not in seen:
                if i.dtype == "string":
                    raise ValueError(f"Layer '{t._layer.name}' is fed strings by "
                                     f"'{i._layer.name}': only a layer that runs on the host "
                                     "(StringLookup, ...) can take them")
                seen.add(id(i))
                sources.append(i)
    if not sources:
        raise ValueError("Model: its outputs are made on the host alone (by "
                         f"'{host_calls[-1]._layer.name}'): add at least one layer of the core "
                         "after the host layers, or call the host layers directly on data")
    return HostStage(list(inputs), host_calls, sources)
