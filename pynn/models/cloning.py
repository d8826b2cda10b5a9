"""keras.models.clone_model: the same architecture with new layers (and new weights)."""

from ..layers.base import Layer
from ..layers.input_layer import Input, InputLayer
from .functional import Functional, _store, _takes_list
from .model import Model
from .sequential import Sequential


def clone_model(model, input_tensors=None, clone_function=None, call_function=None,
                recursive: bool = False, **kwargs):
    """A new model with the same architecture as `model`: each layer is rebuilt from its config,
    so the clone has freshly initialized weights (copy them with `set_weights` to share values).

    Args:
        model: a Sequential or functional model (a subclassed model is rebuilt with its own
            `from_config(get_config())`).
        input_tensors: `pynn.Input` tensors to build the clone on (one per model input).
        clone_function: called on each layer to make its clone (default: `from_config` of its
            `get_config()`); return the layer itself to share it.
        call_function: `call_function(layer, *args, **kwargs)` replaces the calls of the
            functional graph (functional models only).
        recursive: clone nested models too, with the same functions (otherwise they are cloned
            with the default function).

    Example:
        >>> twin = pynn.models.clone_model(model)
        >>> twin.set_weights(model.get_weights())
    """
    if kwargs:
        raise TypeError(f"clone_model: unexpected arguments {sorted(kwargs)}")
    if not isinstance(model, Model):
        raise TypeError(f"clone_model: expected a pynn Model, got {type(model).__name__}")
    fn = clone_function or _clone_layer

    def clone(layer):
        if isinstance(layer, Model):
            if recursive:
                return clone_model(layer, clone_function=clone_function,
                                   call_function=call_function, recursive=True)
            return clone_model(layer)
        return fn(layer)

    user = getattr(type(model), "_user_class", None)
    if user is not None or model._is_subclassed():
        cls = user or type(model)
        if input_tensors is not None or clone_function is not None or call_function is not None:
            raise ValueError("clone_model: input_tensors, clone_function and call_function apply "
                             "to Sequential and functional models, not to a subclassed Model")
        if "get_config" not in vars(cls):
            raise ValueError(f"clone_model: the subclassed model {cls.__name__} has no "
                             "get_config(), so it cannot be rebuilt; define get_config() (and "
                             "from_config() if __init__ needs more)")
        return cls.from_config(model.get_config())
    if isinstance(model, Sequential):
        if call_function is not None:
            raise ValueError("clone_model: call_function applies to functional models; a "
                             "Sequential model's layers each take the previous one's output")
        layers = [_checked(clone(layer), layer) for layer in model._stack]
        if input_tensors is not None:
            first = input_tensors[0] if isinstance(input_tensors, (list, tuple)) else input_tensors
            return Sequential([first] + layers, name=model.name)
        if model._sample_shape is not None:
            dtype = getattr(model, "_input_dtype", "float32")
            batch = vars(model).get("_batch_size")  # a stateful layer's, or None
            return Sequential([Input(shape=model._sample_shape, batch_size=batch,
                                     dtype=dtype)] + layers, name=model.name)
        return Sequential(layers, name=model.name)
    if not isinstance(model, Functional):
        raise ValueError(f"clone_model: cannot clone {type(model).__name__}")
    return _clone_functional(model, input_tensors, clone, call_function)


def _clone_layer(layer: Layer) -> Layer:
    return type(layer).from_config(layer.get_config())


def _checked(new, old):
    if not isinstance(new, Layer):
        raise TypeError(f"clone_model: clone_function must return a layer, got "
                        f"{type(new).__name__} for layer '{old.name}'")
    return new


def _clone_functional(model, input_tensors, clone, call_function):
    if input_tensors is None:
        ins = [Input(shape=t.shape[1:], batch_size=t._batch_size, dtype=t.dtype,
                     name=t._layer.name) for t in model._inputs]
    else:
        ins = list(input_tensors) if isinstance(input_tensors, (list, tuple)) else \
            list(input_tensors.values()) if isinstance(input_tensors, dict) else [input_tensors]
        if len(ins) != len(model._inputs):
            raise ValueError(f"clone_model: model '{model.name}' has {len(model._inputs)} "
                             f"inputs, but {len(ins)} input_tensors were given")
    tensors = {id(t): n for t, n in zip(model._inputs, ins)}
    clones: dict = {}
    for t in model._calls:
        layer = t._layer
        if isinstance(layer, InputLayer):
            continue
        new = clones.get(id(layer))
        if new is None:
            new = clones[id(layer)] = _checked(clone(layer), layer)
        args = [tensors[id(i)] for i in t._inputs]
        if call_function is not None and t._call_spec is None:
            one = args if len(args) != 1 or _takes_list(new) else args[0]
            out = call_function(new, one)
        elif t._call_spec is not None:
            out = new.replay_call(args, t._call_spec)
        else:
            out = new(args if len(args) != 1 or _takes_list(new) else args[0])
        _store(tensors, t, out)
    outs = [tensors[id(o)] for o in model._outputs]
    if model._input_struct == "dict":
        ins = dict(zip(model._input_names, ins))
    elif model._input_struct == "single":
        ins = ins[0]
    if model._output_struct == "dict":
        outs = dict(zip(model._output_names, outs))
    elif model._output_struct == "single":
        outs = outs[0]
    return Model(ins, outs, name=model.name)
