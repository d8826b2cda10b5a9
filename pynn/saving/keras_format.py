"""Keras 3's own files: reading `.keras` archives written by Keras 3 (config.json, metadata.json,
model.weights.h5) and `.weights.h5` files.

Keras's HDF5 layout (keras/src/saving/saving_lib.py, H5IOStore): a group per object, by its path
in Keras's walk of the model (`layers/<snake_case class name>[_<k>]`, the k-th layer of that class
in `model.layers`; a recurrent layer's weights under its `cell`; `optimizer`), each with a `vars`
group holding the object's own variables as datasets "0", "1", ... (trainable first, then the
others, in creation order), and an attribute `name` (the layer's name, from Keras 3.10 on). The
optimizer's `vars` are its step count, its learning rate (unless a schedule), then its slots:
for each `add_optimizer_variables` call, each trained variable's slots in turn.

Loading executes no code: config.json is translated to pynn's configs (Keras's module names are
checked, Keras-only defaults dropped) and read by serialization.py, so only pynn's built-in
classes and registered (or custom_objects) ones are made. HDF5 is read with h5py; every
dataset's shape and dtype is checked against the model before it is read.
"""

import io
import re
import warnings

import numpy as np

from .serialization import _REGISTERED, _brief, _expect

KERAS_WEIGHTS_FILE = "model.weights.h5"
KERAS_API_VERSION = "3.15.1"  # the Keras whose archive layout pynn writes and tests against
WEIGHTS_H5_SUFFIX = ".weights.h5"
# modules a built-in Keras object may name: Keras's public and private paths, and pynn's own
_MODULE_PREFIXES = ("keras", "pynn")
# arguments Keras writes that pynn's classes do not take, dropped when they hold these values
_KERAS_ONLY = {"sparse": False, "ragged": False, "optional": False, "quantization_config": None,
               "lora_rank": None, "lora_alpha": None, "renorm": False, "renorm_clipping": None,
               "renorm_momentum": 0.99, "activity_regularizer": None}
# the slots each `add_optimizer_variables` call of a Keras optimizer creates, in order; an
# optimizer not named here makes all its slots in one call
_SLOT_CALLS = {"Adam": (("momentum", "velocity"), ("velocity_hat",)),
               "AdamW": (("momentum", "velocity"), ("velocity_hat",)),
               "RMSprop": (("velocity",), ("momentum",), ("average_gradient",))}


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency
        raise ImportError("Reading Keras's HDF5 weight files needs h5py: pip install h5py") \
            from None
    return h5py


def to_snake_case(name: str) -> str:
    """Keras's naming.to_snake_case: 'MaxPooling2D' -> 'max_pooling2d'."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


# -- config.json -----------------------------------------------------------------------------------
def is_keras_config(config: dict) -> bool:
    """Whether a config.json was written by Keras (its top module is Keras's)."""
    module = config.get("module")
    return isinstance(module, str) and module.split(".")[0] == "keras"


def translate_config(value, custom_objects: dict | None, safe_mode: bool, where: str = "config"):
    """Keras 3's config JSON as pynn reads it: every object {module, class_name, config} checked
    (a module outside Keras and pynn is refused unless the class is registered or in
    custom_objects), DTypePolicy objects as their names, Keras-only arguments at their defaults
    dropped, `shared_object_id` dropped. Iterative, as the JSON may be nested deeply."""
    custom = custom_objects or {}
    root = [value]
    stack = [(root, 0, where)]
    while stack:
        parent, key, at = stack.pop()
        v = parent[key]
        if isinstance(v, list):
            stack += [(v, i, f"{at}[{i}]") for i in range(len(v))]
            continue
        if not isinstance(v, dict):
            continue
        v = dict(v)
        parent[key] = v
        v.pop("shared_object_id", None)
        if isinstance(v.get("inbound_nodes"), list):
            v["inbound_nodes"] = [_plain_node(n) for n in v["inbound_nodes"]]
        if isinstance(v.get("class_name"), str) and "module" in v:
            _check_module(v, custom, safe_mode, at)
            if v["class_name"] in ("DTypePolicy", "FloatDTypePolicy") and \
                    isinstance(v.get("config"), dict):
                parent[key] = v["config"].get("name", "float32")
                continue
            inner = v.get("config")
            if isinstance(inner, dict):
                inner = dict(inner)
                for arg, default in _KERAS_ONLY.items():
                    if arg in inner and inner[arg] == default:
                        del inner[arg]
                v["config"] = inner
        stack += [(v, k, f"{at}.{k}") for k in v]
    return root[0]


def _plain_node(node):
    """A Keras 3 call {"args": [tensor or [tensors]], "kwargs": {}} in the form pynn reads for a
    call on tensors alone: [[layer, call index, output], ...]; any other call is left as is."""
    def ref(t):
        if isinstance(t, dict) and t.get("class_name") == "__keras_tensor__" and \
                isinstance(t.get("config"), dict):
            return t["config"].get("keras_history")
        return None
    if not isinstance(node, dict) or node.get("kwargs") or \
            not isinstance(node.get("args"), list) or len(node["args"]) != 1:
        return node
    arg = node["args"][0]
    refs = [ref(t) for t in (arg if isinstance(arg, list) else [arg])]
    return node if not refs or any(r is None for r in refs) else refs


def _check_module(obj: dict, custom: dict, safe_mode: bool, where: str) -> None:
    module, name = obj.get("module"), obj["class_name"]
    registered = obj.get("registered_name")
    if registered is not None and not isinstance(registered, str):
        raise ValueError(f"Invalid saved model: {where}'s registered_name must be a string, "
                         f"got {_brief(registered)}")
    if name in custom or registered in custom or registered in _REGISTERED or \
            name in _REGISTERED:
        return
    if module is None or isinstance(module, str) and \
            module.split(".")[0] in _MODULE_PREFIXES:
        return
    raise ValueError(f"Could not locate class '{name}' of module {_brief(module)} ({where}): "
                     "only Keras's built-in classes that pynn has, registered classes and "
                     "custom_objects are loaded; pynn never imports a module named by a file" +
                     ("" if safe_mode else " (even with safe_mode=False)"))


def keras_compile(model, config, custom_objects: dict | None) -> None:
    """Compiles `model` as Keras's compile_config says (optimizer, loss, loss_weights, metrics,
    weighted_metrics, each in any form Keras's compile takes)."""
    from .. import metrics as metrics_mod
    from .serialization import deserialize_keras_object

    _expect(config, dict, "compile_config")

    def obj(spec, kind):
        if isinstance(spec, dict) and "class_name" in spec:
            if kind == "metric":
                return metrics_mod.deserialize(spec, custom_objects)
            return deserialize_keras_object(spec, custom_objects, kind)
        if isinstance(spec, list):
            return [obj(s, kind) for s in spec]
        if isinstance(spec, dict):
            return {k: obj(s, kind) for k, s in spec.items()}
        if spec is None or isinstance(spec, str):
            return spec
        raise ValueError(f"Invalid saved model: compile_config holds {_brief(spec)} as a {kind}")

    model.compile(optimizer=obj(config.get("optimizer"), "optimizer"),
                  loss=obj(config.get("loss"), "loss"),
                  loss_weights=config.get("loss_weights"),
                  metrics=obj(config.get("metrics"), "metric"),
                  weighted_metrics=obj(config.get("weighted_metrics"), "metric"))


# -- model.weights.h5 ------------------------------------------------------------------------------
def _own_weights(layer) -> list:
    """A layer's variables in Keras's order: trainable first, then the others."""
    ws = list(layer.weights)
    return [w for w in ws if w.trainable] + [w for w in ws if not w.trainable]


def keras_layers(model) -> list:
    """The model's layers in the order Keras 3's `model.layers` lists them, which names their
    groups in a weights file: a Sequential's without its InputLayer; a functional model's as
    Keras's map_graph orders its operations (by depth from the outputs, deepest first, then by
    first visit in a depth-first walk from the outputs), which may differ from pynn's."""
    from ..layers import InputLayer

    if type(model).__name__ == "Sequential" or not hasattr(model, "_outputs"):
        return [layer for layer in model.layers if not isinstance(layer, InputLayer)]

    def node(t):  # a call of a layer: the layer and the tensors it read
        return (id(t._layer), tuple(id(i) for i in t._inputs))
    inputs = {id(t) for t in model._inputs}
    finished, ordered, index = set(), [], {}
    stack = [(t, False) for t in reversed(list(model._outputs))]
    while stack:  # _build_map: a depth-first walk from each output in turn
        t, done = stack.pop()
        key = node(t)
        if done:
            if key not in finished:
                finished.add(key)
                ordered.append(t)
            continue
        if key in finished:
            continue
        if id(t) in inputs and not isinstance(t._layer, InputLayer):  # an inner tensor
            finished.add(key)
            continue
        index.setdefault(id(t._layer), (len(index), t._layer))
        stack.append((t, True))
        stack += [(i, False) for i in reversed(list(t._inputs))]
    in_graph = {node(t) for t in ordered}
    node_depth, op_depth = {}, {}
    for t in reversed(ordered):
        key = node(t)
        depth = max(node_depth.setdefault(key, 0), op_depth.get(id(t._layer), 0))
        op_depth[id(t._layer)] = node_depth[key] = depth
        for i in t._inputs:
            if node(i) in in_graph:
                node_depth[node(i)] = max(depth + 1, node_depth.get(node(i), 0))
    for t in model._inputs:  # inputs no output reads
        if id(t._layer) not in op_depth:
            op_depth[id(t._layer)] = 0
            index[id(t._layer)] = (-1, t._layer)
    layers = sorted(index.values(), key=lambda e: (-op_depth[id(e[1])], e[0]))
    return [layer for _, layer in layers]


def _entries(layer, sub: str = "") -> list[tuple[str, str, list]]:
    """[(sub-group, object name, [variables])] of a layer as Keras's walk saves it: its own
    variables in `vars`; a recurrent layer's in `cell/vars` (its own `vars` empty); a
    Bidirectional's in `backward_layer/...` and `forward_layer/...`, a TimeDistributed's in
    `layer/...`."""
    if hasattr(layer, "forward_layer") and hasattr(layer, "backward_layer"):
        return [(sub, layer.name, [])] + _entries(layer.backward_layer, sub + "/backward_layer") \
            + _entries(layer.forward_layer, sub + "/forward_layer")
    if hasattr(layer, "layer") and hasattr(layer.layer, "weights"):
        return [(sub, layer.name, [])] + _entries(layer.layer, sub + "/layer")
    if hasattr(layer, "layers"):
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}) holds other layers; "
                         "pynn does not map its weights to Keras's file layout yet")
    ws = _own_weights(layer)
    if ws and (getattr(layer, "cell", None) is not None or
               all("_cell/" in w.path for w in ws)):
        cell = ws[0].path.split("/")[-2] if ws[0].path.count("/") >= 2 else "cell"
        return [(sub, layer.name, []), (sub + "/cell", cell, ws)]
    return [(sub, layer.name, ws)]


def keras_weight_paths(model, empty: bool = False) -> list[tuple[str, str, str, str, list]]:
    """[(layer's group, sub-group, layer name, object name, [variables])] for every layer of
    `model`, as
    Keras's walk names them: `layers/<snake_case class>[_k]`, its variables in `vars` below it
    or below a sub-group (see _entries); the entries without variables only when `empty`."""
    out, counts = [], {}
    for layer in keras_layers(model):
        base = to_snake_case(type(layer).__name__)
        k = counts.get(base, 0)
        counts[base] = k + 1
        group = f"layers/{base}" + (f"_{k}" if k else "")
        for sub, name, ws in _entries(layer):
            if ws or empty:
                out.append((group, sub, layer.name, name, ws))
    return out


def _open_h5(data: bytes, what: str):
    h5py = _h5py()
    try:
        return h5py.File(io.BytesIO(data), "r")
    except (OSError, ValueError, KeyError, RuntimeError, OverflowError) as e:
        raise ValueError(f"{what} is not a readable HDF5 file: {e}") from None


def _dataset(f, path: str, what: str):
    h5py = _h5py()
    try:
        ds = f.get(path)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError, OverflowError) as e:
        raise ValueError(f"{what}: cannot read {path}: {e}") from None
    if ds is None:
        raise ValueError(f"{what} has no {path}")
    if not isinstance(ds, h5py.Dataset):
        raise ValueError(f"{what}: {path} is not a dataset")
    return ds


def _read(ds, shape: tuple, what: str, integer: bool = False) -> np.ndarray:
    """The dataset's values, after its shape and dtype are checked (nothing is read before)."""
    try:
        have, dtype = tuple(ds.shape or ()), ds.dtype
    except (OSError, ValueError, KeyError, RuntimeError, TypeError, OverflowError) as e:
        raise ValueError(f"{what}: cannot read {ds.name}: {e}") from None
    if have != tuple(shape):
        raise ValueError(f"{what}: {ds.name} has shape {have}, the model needs {tuple(shape)}")
    kinds = "iu" if integer else "f"
    if dtype.kind not in kinds or dtype.itemsize > 8:
        raise ValueError(f"{what}: {ds.name} has dtype {dtype}, expected "
                         f"{'an integer' if integer else 'a float'}")
    try:
        values = np.empty(shape, dtype)
        ds.read_direct(values) if values.size else None
    except (OSError, ValueError, KeyError, RuntimeError, TypeError, OverflowError) as e:
        raise ValueError(f"{what}: cannot read {ds.name}: {e}") from None
    if not integer and not values.flags.c_contiguous:  # pragma: no cover
        values = np.ascontiguousarray(values)
    return values


def _vars_count(f, group: str) -> int:
    g = f.get(group)
    if g is None:
        return 0
    n = 0
    while str(n) in g:
        n += 1
    return n


_H5_ERRORS = (OSError, KeyError, RuntimeError, TypeError, AttributeError, IndexError,
              OverflowError)  # h5py's, on a corrupted file (an offset beyond ssize_t)


def read_keras_weights(model, data: bytes, what: str, skip_mismatch: bool = False) -> tuple:
    """({variable path: values} of the model's weights, the opened file) from a Keras
    model.weights.h5 / .weights.h5 (see _read_keras_weights); a file HDF5 cannot read is a
    ValueError."""
    f = _open_h5(data, what)
    try:
        return _read_keras_weights(model, f, what, skip_mismatch), f
    except _H5_ERRORS as e:
        f.close()
        raise ValueError(f"{what}: a corrupted HDF5 file ({type(e).__name__}: {e})") from None
    except BaseException:
        f.close()
        raise


def _read_keras_weights(model, f, what: str, skip_mismatch: bool) -> dict:
    """{variable path: values} of the model's weights from an open Keras model.weights.h5 /
    .weights.h5, each group found by Keras's path, as Keras's own loader finds it (the `name`
    attributes Keras writes are not read: a corrupted variable-length string makes HDF5 loop);
    every dataset's shape is checked before it is read."""
    plan = keras_weight_paths(model)
    tensors = {}
    for group, sub, name, _, ws in plan:
        group = group + sub + "/vars"
        n = _vars_count(f, group)
        if n != len(ws):
            if skip_mismatch:
                continue
            raise ValueError(f"{what}: {group} holds {n} variables, layer '{name}' has "
                             f"{len(ws)}")
        for i, w in enumerate(ws):
            if skip_mismatch and f.get(f"{group}/{i}") is None:
                continue
            ds = _dataset(f, f"{group}/{i}", what)
            if skip_mismatch and tuple(ds.shape or ()) != tuple(w.shape):
                continue
            tensors[w.path] = _read(ds, w.shape, what).astype(np.float32)
    return tensors


def read_keras_optimizer(model, f, what: str) -> tuple[dict, int] | None:
    """See _read_keras_optimizer; a file HDF5 cannot read is a ValueError."""
    try:
        return _read_keras_optimizer(model, f, what)
    except _H5_ERRORS as e:
        raise ValueError(f"{what}: a corrupted HDF5 file ({type(e).__name__}: {e})") from None


def _read_keras_optimizer(model, f, what: str) -> tuple[dict, int] | None:
    """(slots as archive.py names them, 'optimizer/<slot>/<path>', step count) from the
    `optimizer/vars` of a Keras file, or None (with a warning) when the file's optimizer
    variables do not match the model's optimizer."""
    opt = model.optimizer
    order = _optimizer_order(model)
    n = _vars_count(f, "optimizer/vars")
    if n == 0:
        return None
    scalars = list(opt._scalar_names())
    has_lr = n == 2 + len(order) + len(scalars)
    if any(name not in _KERAS_SCALARS for name in scalars) or \
            n - len(order) - len(scalars) not in (1, 2) or \
            any(opt._slot_shape(s, w) is None for s, w in order):
        warnings.warn(f"{what}: the optimizer's {n} saved variables do not match "
                      f"{type(opt).__name__}'s layout in pynn; its state is not restored",
                      stacklevel=4)
        return None
    it = _read(_dataset(f, "optimizer/vars/0", what), (), what, integer=True)
    iterations = int(it)
    if not 0 <= iterations <= 2**53:
        raise ValueError(f"{what}: the optimizer's step count {iterations} is out of range")
    slots = {}
    for i, (slot, w) in enumerate(order):
        ds = _dataset(f, f"optimizer/vars/{i + 1 + has_lr}", what)
        shape = tuple(opt._slot_shape(slot, w))
        slots[f"optimizer/{slot}/{w.path}"] = _read(ds, shape, what).astype(np.float32)
    for i, name in enumerate(scalars):  # after the slots, as Keras creates them
        ds = _dataset(f, f"optimizer/vars/{1 + has_lr + len(order) + i}", what)
        slots[f"optimizer/scalars/{name}"] = _read(ds, (), what).astype(np.float32)
    return slots, iterations


def _optimizer_order(model) -> list[tuple[str, object]]:
    """[(slot, variable)] in the order Keras's optimizer creates its slot variables."""
    opt = model.optimizer
    names = list(opt._slot_names())
    trainable = {id(w) for w in model.trainable_weights}
    # Keras's model.trainable_variables: layer by layer, in Keras's order of the layers
    variables = [w for layer in keras_layers(model) for w in _own_weights(layer)
                 if id(w) in trainable]
    if len(variables) != len(trainable):
        variables = list(model.trainable_weights)
    trained = [w for w in variables
               if any(opt._slot_shape(s, w) is not None for s in names)] if names else []
    calls = _SLOT_CALLS.get(type(opt).__name__, (tuple(names),))
    return [(slot, w) for call in calls for w in trained for slot in call if slot in names]


def keras_weights_bytes(model, tensors: dict, iterations: int | None) -> bytes:
    """Keras's weights file (model.weights.h5, or a .weights.h5) of `model`, in memory: the
    model's group, each layer's by Keras's path with its variables "0", "1", ..., and when
    `iterations` is given the optimizer's (step count, learning rate, slots in Keras's order,
    from `tensors`: 'optimizer/<slot>/<path>', as archive.py names them)."""
    h5py = _h5py()

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.create_group("vars").attrs["name"] = model.name
        # every layer (and object in it) has a group, as Keras's walk makes them
        for group, sub, _, name, ws in keras_weight_paths(model, empty=True):
            target = f.create_group(group + sub + "/vars")
            target.attrs["name"] = name
            for i, w in enumerate(ws):
                target.create_dataset(str(i), data=np.asarray(w, np.float32))
        opt = model.optimizer
        if iterations is not None and opt is not None:
            g = f.create_group("optimizer/vars")
            g.attrs["name"] = getattr(opt, "name", to_snake_case(type(opt).__name__))
            g.create_dataset("0", data=np.asarray(iterations, np.int64))
            i = 1
            if getattr(opt, "_schedule", None) is None:
                g.create_dataset("1", data=np.asarray(opt.learning_rate, np.float32))
                i = 2
            for slot, w in _optimizer_order(model):
                value = tensors.get(f"optimizer/{slot}/{w.path}")
                if value is None:
                    value = np.zeros(opt._slot_shape(slot, w), np.float32)
                g.create_dataset(str(i), data=np.asarray(value, np.float32))
                i += 1
            for name in opt._scalar_names():  # Nadam's u_product, after the slots as Keras's
                if name in _KERAS_SCALARS:
                    value = tensors.get(f"optimizer/scalars/{name}", _KERAS_SCALARS[name])
                    g.create_dataset(str(i), data=np.asarray(value, np.float32))
                    i += 1
    return buffer.getvalue()


# -- writing Keras's archive ----------------------------------------------------------------------
def keras_config(config):
    """pynn's config JSON as Keras 3 names it: every object of pynn's modules ('pynn.layers')
    under Keras's ('keras.layers'). Iterative, as configs may be nested deeply."""
    root = [config]
    stack = [(root, 0)]
    while stack:
        parent, key = stack.pop()
        v = parent[key]
        if isinstance(v, list):
            v = list(v)
            parent[key] = v
            stack += [(v, i) for i in range(len(v))]
        elif isinstance(v, dict):
            v = dict(v)
            parent[key] = v
            module = v.get("module")
            if isinstance(module, str) and module.split(".")[0] == "pynn" and \
                    v.get("registered_name") is None:
                v["module"] = "keras" + module[len("pynn"):]
            for k, item in v.items():
                kind = k.rsplit("_", 1)[-1]
                if kind in _KINDS and isinstance(item, dict) and "class_name" in item and \
                        "module" not in item:  # an initializer, regularizer or constraint
                    v[k] = {"module": _KINDS[kind], **item, "registered_name": None}
            inner = v.get("config")
            if v.get("module") in _POLICY_MODULES and v.get("class_name") != "InputLayer" and \
                    isinstance(inner, dict) and "trainable" in inner and \
                    isinstance(inner.get("dtype", ""), str):
                # a layer's (or a model's) dtype as Keras writes it: its DTypePolicy
                v["config"] = {**inner, "dtype": {
                    "module": "keras", "class_name": "DTypePolicy",
                    "config": {"name": inner.get("dtype") or "float32"},
                    "registered_name": None}}
            stack += [(v, k) for k in v]
    return root[0]


# an optimizer's scalar state that Keras keeps as a variable after the slots, and its start
_KERAS_SCALARS = {"u_product": 1.0}
_POLICY_MODULES = ("keras.layers", "keras")  # Keras writes no policy for a Functional
_KINDS = {"initializer": "keras.initializers", "regularizer": "keras.regularizers",
          "constraint": "keras.constraints"}


def keras_archive_config(model, compile_cfg) -> dict:
    """config.json of Keras's archive for `model`: Keras's module and class names, its
    build_config and compile_config."""
    from ..models import Sequential

    sequential = type(model) is Sequential
    config = {"module": "keras" if sequential else "keras.src.models.functional",
              "class_name": "Sequential" if sequential else "Functional",
              "config": model.get_config(), "registered_name": None}
    shape = config["config"].get("build_input_shape") if sequential else None
    if shape is not None:
        config["build_config"] = {"input_shape": list(shape)}
    if compile_cfg is not None:
        config["compile_config"] = _keras_compile_config(compile_cfg, model._n_outputs)
    return keras_config(config)


def _keras_compile_config(cc: dict, n_outputs: int) -> dict:
    """pynn's compile_config (a list per output of everything) in the form Keras writes: one
    output's loss, loss weight and metrics unwrapped."""
    cc = dict(cc)
    if n_outputs == 1:
        cc["loss"] = cc["loss"][0]
        cc["loss_weights"] = None if cc["loss_weights"] == [1.0] else cc["loss_weights"][0]
        for key in ("metrics", "weighted_metrics"):
            if cc.get(key):
                cc[key] = cc[key][0]
    for key in ("metrics", "weighted_metrics"):
        cc[key] = cc.get(key) or None
    return cc
