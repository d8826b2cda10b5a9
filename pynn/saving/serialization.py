"""The registry of serializable classes and the configs that describe objects: Keras's
`register_keras_serializable`, `serialize_keras_object` / `deserialize_keras_object`, the configs
of Sequential and functional models (`get_config` / `from_config`) and of compile settings.

Deserializing executes no code: a class is found only among pynn's own, those registered with
`register_keras_serializable`, and the `custom_objects` passed in. Every value a config holds is
checked before use, and a bad one gives a ValueError that names it.
"""

import inspect

# -- registered classes --------------------------------------------------------------------------
_REGISTERED: dict[str, type] = {}       # "package>name" -> class
_REGISTERED_NAMES: dict[type, str] = {}


def register_keras_serializable(package: str = "Custom", name: str | None = None):
    """Registers a class (a layer, loss, metric or optimizer), or a function (a Lambda layer's,
    a loss), so that loading finds it by name without `custom_objects`.

    Args:
        package: the package part of the registered name ('Custom').
        name: the class part; the class's own name when None.

    Example:
        >>> @pynn.saving.register_keras_serializable(package="my_package")
        ... class Scale(pynn.layers.Layer): ...
    """
    def decorator(cls):
        if not isinstance(cls, type) and not inspect.isfunction(cls):
            raise TypeError("register_keras_serializable: decorate a class or a function")
        key = f"{package}>{name or cls.__name__}"
        if key in _REGISTERED and _REGISTERED[key] is not cls:
            raise ValueError(f"{key} has already been registered to {_REGISTERED[key]}")
        if isinstance(cls, type) and not callable(getattr(cls, "get_config", None)):
            raise ValueError(f"Cannot register {cls.__name__}: it has no get_config()")
        _REGISTERED[key] = cls
        _REGISTERED_NAMES[cls] = key
        return cls

    return decorator


def get_registered_name(obj) -> str:
    """The name a class (or an instance's class) is saved under: 'package>name' when
    registered, else the class's name."""
    cls = obj if isinstance(obj, type) else type(obj)
    return _REGISTERED_NAMES.get(cls, cls.__name__)


def get_registered_object(name: str, custom_objects: dict | None = None,
                          module_objects: dict | None = None):
    """The class registered (or given in custom_objects / module_objects) under `name`, or
    None."""
    for table in (custom_objects or {}, _REGISTERED, module_objects or {}):
        if name in table:
            return table[name]
    return None


def _builtins(kind: str) -> tuple[type, dict]:
    """(base class, {class name: class}) of pynn's own serializable classes of one kind."""
    from .. import layers, losses, metrics, optimizers

    module, base = {"layer": (layers, layers.Layer), "loss": (losses, losses.Loss),
                    "metric": (metrics, metrics.Metric),
                    "optimizer": (optimizers, optimizers.Optimizer)}[kind]
    table = {n: c for n, c in vars(module).items()
             if isinstance(c, type) and issubclass(c, base) and not n.startswith("_")}
    return base, table


def serialize_keras_object(obj) -> dict:
    """Keras's form of a layer, loss, metric or optimizer: {module, class_name, config,
    registered_name}."""
    config = obj.get_config()
    if not isinstance(config, dict):
        raise TypeError(f"{type(obj).__name__}.get_config() must return a dict, got "
                        f"{type(config).__name__}")
    module = type(obj).__module__
    if module.startswith("pynn.") and module.count(".") > 1:
        module = module.rsplit(".", 1)[0]  # pynn.layers.core -> pynn.layers, as Keras names it
    return {"module": module, "class_name": type(obj).__name__, "config": config,
            "registered_name": _REGISTERED_NAMES.get(type(obj))}


def deserialize_keras_object(config, custom_objects: dict | None = None, kind: str = "layer"):
    """The object `serialize_keras_object` described: the class is looked up (custom_objects,
    then registered classes, then pynn's own of that kind; nothing is imported or evaluated) and
    built with its `from_config`.

    Args:
        config: {class_name, config, registered_name?}.
        custom_objects: {name: class} for user-defined classes.
        kind: 'layer', 'loss', 'metric' or 'optimizer'.
    """
    what = f"{kind} config"
    _expect(config, dict, what)
    class_name = config.get("class_name")
    inner = config.get("config", {})
    registered = config.get("registered_name")
    _expect(class_name, str, f"{what}'s class_name")
    _expect(inner, dict, f"{what} of {class_name}")
    if registered is not None:
        _expect(registered, str, f"{what}'s registered_name")
    base, table = _builtins(kind)
    custom = custom_objects or {}
    cls = None
    for name in (registered, class_name):
        if name is not None and cls is None:
            cls = custom.get(name) or _REGISTERED.get(name)
    if cls is None:
        cls = table.get(class_name)
    if cls is None:
        raise ValueError(f"Could not locate {kind} class '{registered or class_name}': it is not "
                         f"one of pynn's; pass the class in custom_objects (a dict "
                         f"{{'{class_name}': the class}}) or register it with "
                         "pynn.saving.register_keras_serializable")
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ValueError(f"custom_objects['{class_name}'] is {cls!r}, not a subclass of "
                         f"{base.__module__}.{base.__name__}")
    try:
        if "custom_objects" in inspect.signature(cls.from_config).parameters:
            return cls.from_config(dict(inner), custom_objects=custom_objects)
        return cls.from_config(dict(inner))
    except (TypeError, ValueError, KeyError) as e:
        name = inner.get("name", class_name)
        raise ValueError(f"Could not deserialize {kind} '{name}' ({class_name}) from its "
                         f"config: {e}") from None


def _expect(value, types, what: str):
    if not isinstance(value, types) or isinstance(value, bool) and types is not bool:
        want = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise ValueError(f"Invalid saved model: {what} must be a {want}, got {_brief(value)}")
    return value


def _brief(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# -- model configs ---------------------------------------------------------------------------------
def sequential_config(model) -> dict:
    """Sequential.get_config(): its name and its layers (an InputLayer first when the input
    shape is known)."""
    from ..layers.input_layer import InputLayer

    layers = []
    if model._sample_shape is not None:
        inp = InputLayer(shape=model._sample_shape, batch_size=vars(model).get("_batch_size"),
                         dtype=model._input_dtype, name=f"{model.name}_input")
        layers.append(serialize_keras_object(inp))
    layers += [serialize_keras_object(layer) for layer in model._layers_in_order()]
    config = {"name": model.name, "trainable": model.trainable, "layers": layers}
    if model._sample_shape is not None:
        config["build_input_shape"] = (vars(model).get("_batch_size"),) + \
            tuple(model._sample_shape)
    return config


def sequential_from_config(cls, config: dict, custom_objects=None):
    _expect(config, dict, "Sequential config")
    specs = _expect(config.get("layers"), list, "Sequential config's layers")
    layers = [deserialize_keras_object(s, custom_objects, "layer") for s in specs]
    return cls(layers, trainable=_flag(config.get("trainable", True), "trainable"),
               name=_name(config.get("name"), "Sequential"))


def functional_config(model) -> dict:
    """Functional.get_config(): every layer with its calls ('inbound_nodes': for each call the
    tensors it read, as [layer name, call index, 0]), and the model's inputs and outputs in
    their structure (one, a list, or a dict by name)."""
    layers = model.layers
    names = [layer.name for layer in layers]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"Model '{model.name}' has two layers named '{dup}': give every layer "
                         "a unique name to save it")
    numbers = model._call_numbers()  # once, so the config takes time linear in the calls
    calls: dict = {}
    for t in model._calls:
        calls.setdefault(id(t._layer), []).append(t)
    entries = []
    for layer in layers:
        entry = {**serialize_keras_object(layer), "name": layer.name, "inbound_nodes": []}
        for t in calls.get(id(layer), []):
            entry["inbound_nodes"].append(_inbound_node(model, t, numbers))
        entries.append(entry)
    return {"name": model.name, "trainable": model.trainable, "layers": entries,
            "input_layers": _structure(model, model._inputs, model._input_names,
                                       model._input_struct, numbers),
            "output_layers": _structure(model, model._outputs, model._output_names,
                                        model._output_struct, numbers)}


def _ref(model, tensor, numbers: dict | None = None) -> list:
    return [tensor._layer.name, model._call_index(tensor, numbers), tensor._index]


def _inbound_node(model, t, numbers: dict | None = None):
    """One call of a layer: the list of tensors it read; a call with named tensors
    (MultiHeadAttention's query, value, key, attention_mask and use_causal_mask) in Keras 3's form
    {"args": [...], "kwargs": {...}}, each tensor as {"class_name": "__keras_tensor__", ...}."""
    if t._call_spec is None:
        return [_ref(model, i, numbers) for i in t._inputs]

    def kt(i):
        return {"class_name": "__keras_tensor__",
                "config": {"shape": list(i.shape), "dtype": i.dtype,
                           "keras_history": _ref(model, i, numbers)}}
    if "trace" in t._call_spec:  # a traced call(): its arguments as given, tensors as refs
        from ..layers.tracing import Slot
        spec = t._call_spec

        def value(v):
            if isinstance(v, Slot):
                return kt(t._inputs[v.index])
            if isinstance(v, (list, tuple)) and any(isinstance(x, Slot) for x in v):
                raise ValueError(f"Layer '{t._layer.name}': a call with a list of tensors in "
                                 "one argument cannot be saved yet; pass them as separate "
                                 "arguments")
            return v
        # the call as the user wrote it, not the training or inference variant traced for it
        given = spec.get("given", spec["kwargs"])
        return {"args": [value(v) for v in spec["args"]],
                "kwargs": {k: value(v) for k, v in given.items()}}
    names, n_pos = t._call_spec["names"], t._layer._call_positional
    args = [kt(i) for i in t._inputs[:n_pos]]
    kwargs = {n: kt(i) for n, i in zip(names[n_pos:], t._inputs[n_pos:])}
    return {"args": args, "kwargs": {**kwargs, **t._call_spec["options"]}}


def _structure(model, tensors, names, struct, numbers: dict | None = None):
    refs = [_ref(model, t, numbers) for t in tensors]
    if struct == "dict" or (struct == "single" and names[0] != tensors[0]._layer.name):
        return dict(zip(names, refs))  # a dict of one keeps its key
    return refs if struct == "list" else refs[0]


def functional_from_config(cls, config: dict, custom_objects=None):
    """Rebuilds a functional model: its layers from their configs, then each layer's calls in
    order as soon as the tensors they read exist, as Keras does."""
    from ..layers.input_layer import InputLayer
    from ..models.functional import _takes_list

    _expect(config, dict, "Functional config")
    specs = _expect(config.get("layers"), list, "Functional config's layers")
    layers, pending, made = {}, {}, {}
    for spec in specs:
        _expect(spec, dict, "a layer entry")
        layer = deserialize_keras_object(spec, custom_objects, "layer")
        name = spec.get("name", layer.name)
        _expect(name, str, "a layer's name")
        if name in layers:
            raise ValueError(f"Invalid saved model: two layers are named '{name}'")
        layers[name] = layer
        nodes = _expect(spec.get("inbound_nodes", []), list, f"inbound_nodes of '{name}'")
        if isinstance(layer, InputLayer):
            if nodes:
                raise ValueError(f"Invalid saved model: InputLayer '{name}' has inbound nodes")
            made[name] = [layer.output]
        else:
            made[name] = []
            pending[name] = [_expect(n, (list, dict), f"an inbound node of '{name}'")
                             for n in nodes]

    def tensor(ref, where: str):
        if (not isinstance(ref, list) or len(ref) != 3 or not isinstance(ref[0], str)
                or any(isinstance(v, bool) or not isinstance(v, int) for v in ref[1:])):
            raise ValueError(f"Invalid saved model: {where} names a tensor as {_brief(ref)}, "
                             "expected [layer name, call index, 0]")
        if ref[0] not in layers:
            raise ValueError(f"Invalid saved model: {where} reads layer '{ref[0]}', which the "
                             "config does not define")
        calls = made[ref[0]]
        call = calls[ref[1]] if 0 <= ref[1] < len(calls) else None
        if call is None:
            return None
        outs = call if isinstance(call, (list, tuple)) else [call]
        if not 0 <= ref[2] < len(outs):
            raise ValueError(f"Invalid saved model: {where} reads output {ref[2]} of "
                             f"'{ref[0]}', which has {len(outs)}")
        return outs[ref[2]]

    def named_call(node: dict, where: str):
        """(args, kwargs) of a Keras 3 call {"args", "kwargs"} with its tensors resolved, or
        None while a tensor it reads is not made yet."""
        args = _expect(node.get("args", []), list, f"the args of {where}")
        kwargs = _expect(node.get("kwargs", {}), dict, f"the kwargs of {where}")

        def value(v):
            if isinstance(v, dict) and v.get("class_name") == "__keras_tensor__":
                cfg = _expect(v.get("config"), dict, f"a tensor of {where}")
                return tensor(cfg.get("keras_history"), where)
            if v is None or isinstance(v, (bool, int, float, str)):
                return v
            raise ValueError(f"Invalid saved model: {where} has an argument {_brief(v)}")
        a = [value(v) for v in args]
        k = {_expect(n, str, f"an argument name of {where}"): value(v)
             for n, v in kwargs.items()}
        tensors = [v for v, raw in zip(a + list(k.values()), args + list(kwargs.values()))
                   if isinstance(raw, dict)]
        if not tensors or any(t is None for t in tensors):
            return None
        return a, k

    progress = True
    while progress and any(pending.values()):
        progress = False
        for name, nodes in pending.items():
            while nodes:
                layer = layers[name]
                if isinstance(nodes[0], dict):
                    call = named_call(nodes[0], f"layer '{name}'")
                    if call is None:
                        break
                    try:
                        made[name].append(layer(*call[0], **call[1]))
                    except (TypeError, ValueError) as e:
                        raise ValueError(f"Could not rebuild the call of layer '{name}': {e}") \
                            from None
                    nodes.pop(0)
                    progress = True
                    continue
                ins = [tensor(r, f"layer '{name}'") for r in nodes[0]]
                if not ins and getattr(layer, "_is_source", False):  # a constant, an arange
                    made[name].append(layer([]))
                    nodes.pop(0)
                    progress = True
                    continue
                if not ins or any(t is None for t in ins):
                    break
                arg = ins if len(ins) > 1 or _takes_list(layer) else ins[0]
                try:
                    made[name].append(layer(arg))
                except (TypeError, ValueError) as e:
                    raise ValueError(f"Could not rebuild the call of layer '{name}': {e}") \
                        from None
                nodes.pop(0)
                progress = True
    stuck = [n for n, nodes in pending.items() if nodes]
    if stuck:
        raise ValueError(f"Invalid saved model: the calls of layer '{stuck[0]}' read tensors "
                         "that no call makes (a cycle, or a missing layer)")

    def struct(value, what):
        if isinstance(value, dict):
            return {k: _need(tensor(v, what), v, what) for k, v in value.items()}
        if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
            return [_need(tensor(v, what), v, what) for v in value]
        return _need(tensor(value, what), value, what)

    inputs = struct(config.get("input_layers"), "input_layers")
    outputs = struct(config.get("output_layers"), "output_layers")
    return cls(inputs, outputs, name=_name(config.get("name"), "functional"),
               trainable=_flag(config.get("trainable", True), "trainable"))


def _need(t, ref, what):
    if t is None:
        raise ValueError(f"Invalid saved model: {what} names {_brief(ref)}, which no layer "
                         "call makes")
    return t


def _flag(v, what: str) -> bool:
    return _expect(v, bool, what)


def _name(v, default: str):
    return default if v is None else _expect(v, str, "a model's name")


def model_from_config(config: dict, custom_objects=None):
    """A Sequential or functional model from its {class_name, config} (config.json's top)."""
    from ..models import Model, Sequential
    from ..models.functional import Functional

    _expect(config, dict, "the model config")
    class_name, inner = config.get("class_name"), config.get("config")
    _expect(class_name, str, "the model's class_name")
    if config.get("registered_name") is not None:
        _expect(config.get("registered_name"), str, "the model's registered_name")
    custom = custom_objects or {}
    cls = custom.get(class_name) or _REGISTERED.get(config.get("registered_name") or "") or {
        "Sequential": Sequential, "Functional": Functional, "Model": Functional}.get(class_name)
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise ValueError(f"Invalid saved model: unknown model class {_brief(class_name)}; "
                         "pynn saves Sequential and functional models")
    return cls.from_config(_expect(inner, dict, "the model's config"), custom_objects)


# -- compile settings ----------------------------------------------------------------------------
def compile_config(model) -> dict | None:
    from .. import metrics as metrics_mod
    if not model._compiled:
        return None

    def saved(lists):
        out = []
        for specs in lists:
            out.append([])
            for m in specs:
                if isinstance(m, str):
                    out[-1].append(m)
                elif isinstance(m, type):
                    out[-1].append(serialize_keras_object(m()))
                else:  # a Metric, or a metric function (saved by name, as Keras saves it)
                    out[-1].append(metrics_mod.serialize(m))
        return out
    config = {"optimizer": serialize_keras_object(model.optimizer),
              "loss": [serialize_keras_object(lo) for lo in model._losses],
              "loss_weights": list(model._loss_weights), "metrics": saved(model._metric_specs)}
    weighted = getattr(model, "_weighted_specs", None) or []
    if any(weighted):
        config["weighted_metrics"] = saved(weighted)
    return config


def compile_from_config(model, config: dict, custom_objects=None) -> None:
    from .. import metrics as metrics_mod
    _expect(config, dict, "compile_config")
    opt = deserialize_keras_object(config.get("optimizer"), custom_objects, "optimizer")
    loss = [deserialize_keras_object(lo, custom_objects, "loss")
            for lo in _expect(config.get("loss"), list, "compile_config's loss")]
    weights = _expect(config.get("loss_weights"), list, "compile_config's loss_weights")

    def loaded(key):
        out = []
        for specs in _expect(config.get(key) or [], list, f"compile_config's {key}"):
            out.append([])
            for m in _expect(specs, list, f"compile_config's {key}"):
                out[-1].append(m if isinstance(m, str)
                               else metrics_mod.deserialize(m, custom_objects))
        return out
    metrics, weighted = loaded("metrics"), loaded("weighted_metrics")
    n = model._n_outputs
    if not (len(loss) == len(weights) == n) or len(metrics) not in (0, n) \
            or len(weighted) not in (0, n):
        raise ValueError(f"Invalid saved model: compile_config has {len(loss)} losses, "
                         f"{len(weights)} loss weights and {len(metrics)} metric lists for a "
                         f"model with {n} output{'s' if n > 1 else ''}")
    if n == 1:
        model.compile(optimizer=opt, loss=loss[0], loss_weights=weights,
                      metrics=metrics[0] if metrics else None,
                      weighted_metrics=weighted[0] if weighted else None)
    else:
        model.compile(optimizer=opt, loss=loss, loss_weights=weights, metrics=metrics or None,
                      weighted_metrics=weighted or None)
