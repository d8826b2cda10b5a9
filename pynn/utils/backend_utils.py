"""Global state and tensors: clear_session, standardize_dtype, is_keras_tensor,
get_source_inputs, and the (x, y, sample_weight) packing of a step's data."""

import numpy as np

_ALLOWED_DTYPES = ("float16", "float32", "float64", "uint8", "uint16", "uint32", "uint64",
                   "int8", "int16", "int32", "int64", "bfloat16", "bool", "string",
                   "float8_e4m3fn", "float8_e5m2", "complex64", "complex128")
_PYTHON_DTYPES = {bool: "bool", int: "int32", float: "float32", str: "string", "int": "int32"}


def clear_session(free_memory: bool = True) -> None:
    """Resets pynn's global state, as keras.utils.clear_session: the counters behind
    automatic layer and model names ('dense', 'dense_1', ...) start again.

    Args:
        free_memory: also run Python's garbage collector (True).

    Example:
        >>> pynn.utils.clear_session()
        >>> pynn.layers.Dense(2).name
        'dense'
    """
    from ..layers import base

    base._NAME_COUNTS.clear()
    if free_memory:
        import gc

        gc.collect()


def standardize_dtype(dtype) -> str:
    """A dtype's canonical name, as Keras spells it ('float32', 'int32', 'string', ...).

    None is 'float32'; Python's int, float, bool and str are 'int32', 'float32', 'bool' and
    'string'; NumPy dtypes and their types give their names.

    Raises:
        ValueError: not one of Keras's dtypes.

    Example:
        >>> pynn.utils.standardize_dtype(np.float64)
        'float64'
    """
    if dtype is None:
        return "float32"
    try:
        dtype = _PYTHON_DTYPES.get(dtype, dtype)
    except TypeError:  # an unhashable value
        pass
    if hasattr(dtype, "name"):
        dtype = dtype.name
    elif hasattr(dtype, "__name__"):
        dtype = dtype.__name__
    elif isinstance(dtype, type) and issubclass(dtype, np.generic):
        dtype = np.dtype(dtype).name
    if not isinstance(dtype, str) or dtype not in _ALLOWED_DTYPES:
        raise ValueError(f"Invalid dtype: {dtype}")
    return dtype


def is_keras_tensor(x) -> bool:
    """True for the symbolic tensors of a functional model (what `pynn.Input` and layer calls
    on them return), False for data.

    Example:
        >>> pynn.utils.is_keras_tensor(pynn.Input((3,)))
        True
    """
    from ..layers.input_layer import KerasTensor

    return isinstance(x, KerasTensor)


def get_source_inputs(tensor) -> list:
    """The Input tensors a symbolic tensor was computed from, in the order first reached.

    Args:
        tensor: a symbolic tensor (see `is_keras_tensor`).

    Returns:
        A list of the Input tensors; `[tensor]` for an Input itself.

    Example:
        >>> x = pynn.Input((3,))
        >>> pynn.utils.get_source_inputs(pynn.layers.Dense(2)(x))[0] is x
        True
    """
    from ..layers.input_layer import InputLayer

    if not is_keras_tensor(tensor):
        raise ValueError(f"get_source_inputs: expected a symbolic tensor, got "
                         f"{type(tensor).__name__}")
    found, seen, stack = [], set(), [tensor]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        layer, parents = getattr(t, "_layer", None), getattr(t, "_inputs", ())
        if layer is None or isinstance(layer, InputLayer) or not parents:
            found.append(t)
        else:
            stack.extend(reversed([p for p in parents if is_keras_tensor(p)]))
    return found


def pack_x_y_sample_weight(x, y=None, sample_weight=None):
    """A step's data as one value: `(x,)`, `(x, y)` or `(x, y, sample_weight)`, as Keras packs
    it (a lone x that is a tuple or list is wrapped so it stays one input).

    Example:
        >>> pynn.utils.pack_x_y_sample_weight(x, y)
        (x, y)
    """
    if y is None:
        if not isinstance(x, (tuple, list)):
            return x
        return (x,)
    if sample_weight is None:
        return (x, y)
    return (x, y, sample_weight)


def unpack_x_y_sample_weight(data):
    """(x, y, sample_weight) of a step's data, None where absent, as
    keras.utils.unpack_x_y_sample_weight."""
    from ..models.data import unpack_x_y_sample_weight as unpack

    return unpack(data)
