"""Weight constraints, as Keras 3's keras.constraints: MaxNorm, NonNeg, UnitNorm, MinMaxNorm.

A constraint is a projection applied to a weight after every optimizer update (in fit, in
train_on_batch, in `optimizer.apply`). The four built-in ones are fused into the core: the core
applies them to each constrained variable right after its update, in C, with no Python in the
step. A `Constraint` subclass with a `__call__` of its own (or any callable) runs from Python
after each step on the weight (a NumPy array sharing the core's memory) and its result is
written back in place: it works the same, only slower.

Norms are taken over `axis` (an int, a list of ints, or None for all axes), one per index of
the other axes: for a Dense kernel (in, out), axis=0 constrains each unit's incoming vector;
for a Conv2D kernel (kh, kw, in, out), axis=[0, 1, 2] each filter.

Example:
    >>> layer = pynn.layers.Dense(8, kernel_constraint=pynn.constraints.MaxNorm(2.0))
    >>> pynn.constraints.NonNeg()(np.array([-1.0, 1.0], np.float32))
    pynn.Tensor([0., 1.], dtype=float32)
"""

import inspect
import math

import numpy as np

_EPSILON = 1e-7  # Keras's backend.epsilon()


class Constraint:
    """Base class: a stateless projection of a weight. Subclasses override `__call__(w)`,
    which returns the projected weight (same shape); the base returns `w` unchanged.

    Example:
        >>> class Clip(pynn.constraints.Constraint):
        ...     def __call__(self, w):
        ...         return pynn.ops.clip(w, -1.0, 1.0)
        >>> pynn.layers.Dense(4, kernel_constraint=Clip())  # applied after each step
    """

    def __call__(self, w):
        return w

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


def _number(who: str, name: str, v):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(v)):
        raise ValueError(f"{who}: {name} must be a finite number, got {v!r}")
    return v.item() if isinstance(v, np.generic) else v


def _axis(who: str, axis):
    """Keras's axis: an int, a list or tuple of ints, or None (all axes)."""
    if axis is None:
        return None
    items = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    for a in items:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
            raise ValueError(f"{who}: axis must be an int, a list of ints or None, got {axis!r}")
    if len(set(int(a) for a in items)) != len(items):
        raise ValueError(f"{who}: axis lists an axis twice: {axis!r}")
    return list(axis) if isinstance(axis, tuple) else axis


def _norms(w, axis):
    from . import ops
    ax = tuple(axis) if isinstance(axis, list) else axis
    return ops.sqrt(ops.sum(ops.square(w), axis=ax, keepdims=True))


class MaxNorm(Constraint):
    """Constrains the norm of the weights incident to each unit to at most `max_value`:
    `w * clip(norm, 0, max_value) / (epsilon + norm)`, the norms over `axis`.

    Args:
        max_value: the largest norm allowed (2).
        axis: the axis or axes the norms run over (0: a Dense kernel's incoming vectors;
            [0, 1, 2] for a Conv2D kernel's filters).

    Example:
        >>> pynn.layers.Dense(8, kernel_constraint=pynn.constraints.MaxNorm(3.0))
    """

    def __init__(self, max_value=2, axis=0):
        self.max_value = _number("MaxNorm", "max_value", max_value)
        self.axis = _axis("MaxNorm", axis)

    def __call__(self, w):
        from . import ops
        norms = _norms(w, self.axis)
        desired = ops.clip(norms, 0, self.max_value)
        return ops.multiply(w, ops.divide(desired, ops.add(_EPSILON, norms)))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """Constrains the weights to be non-negative: `max(w, 0)`.

    Example:
        >>> pynn.layers.Dense(8, kernel_constraint=pynn.constraints.NonNeg())
    """

    def __call__(self, w):
        from . import ops
        return ops.maximum(w, 0.0)


class UnitNorm(Constraint):
    """Constrains the weights incident to each unit to unit norm: `w / (epsilon + norm)`.

    Args:
        axis: the axis or axes the norms run over (0).

    Example:
        >>> pynn.layers.Dense(8, kernel_constraint=pynn.constraints.UnitNorm(axis=0))
    """

    def __init__(self, axis=0):
        self.axis = _axis("UnitNorm", axis)

    def __call__(self, w):
        from . import ops
        return ops.divide(w, ops.add(_EPSILON, _norms(w, self.axis)))

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Constrains the norm of the weights incident to each unit to [min_value, max_value]:
    `w * (rate * clip(norm, min_value, max_value) + (1 - rate) * norm) / (epsilon + norm)`.

    Args:
        min_value, max_value: the norm's bounds (0.0 and 1.0).
        rate: 1.0 enforces the bounds at once; below 1 moves the norm part of the way each step.
        axis: the axis or axes the norms run over (0).

    Example:
        >>> pynn.layers.Dense(8, kernel_constraint=pynn.constraints.MinMaxNorm(0.5, 1.0))
    """

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value = _number("MinMaxNorm", "min_value", min_value)
        self.max_value = _number("MinMaxNorm", "max_value", max_value)
        self.rate = _number("MinMaxNorm", "rate", rate)
        self.axis = _axis("MinMaxNorm", axis)

    def __call__(self, w):
        from . import ops
        norms = _norms(w, self.axis)
        desired = ops.add(ops.multiply(self.rate, ops.clip(norms, self.min_value,
                                                           self.max_value)),
                          ops.multiply(1 - self.rate, norms))
        return ops.multiply(w, ops.divide(desired, ops.add(_EPSILON, norms)))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


max_norm, non_neg, unit_norm, min_max_norm = MaxNorm, NonNeg, UnitNorm, MinMaxNorm

_CLASSES = (Constraint, MaxNorm, MinMaxNorm, NonNeg, UnitNorm)
# Keras's ALL_OBJECTS_DICT: the class names and their snake-case forms
_BY_NAME = {**{c.__name__: c for c in _CLASSES},
            "constraint": Constraint, "max_norm": MaxNorm, "min_max_norm": MinMaxNorm,
            "non_neg": NonNeg, "unit_norm": UnitNorm}


def serialize(constraint) -> dict | None:
    """Keras's form of a constraint: {module, class_name, config, registered_name} (None stays
    None; a function is saved by its name).

    Example:
        >>> pynn.constraints.serialize(pynn.constraints.NonNeg())["class_name"]
        'NonNeg'
    """
    from .saving import serialization
    if constraint is None:
        return None
    if type(constraint) in _CLASSES:
        return {"module": "keras.constraints", "class_name": type(constraint).__name__,
                "config": constraint.get_config(), "registered_name": None}
    registered = serialization._REGISTERED_NAMES.get(type(constraint))
    if not isinstance(constraint, Constraint) and inspect.isfunction(constraint):
        key = serialization._REGISTERED_NAMES.get(constraint)
        return {"module": constraint.__module__, "class_name": "function",
                "config": constraint.__name__, "registered_name": key}
    if not callable(getattr(constraint, "get_config", None)):
        raise ValueError(f"Cannot serialize constraint {constraint!r}: it has no get_config()")
    config = constraint.get_config()
    if not isinstance(config, dict):
        raise TypeError(f"{type(constraint).__name__}.get_config() must return a dict")
    return {"module": type(constraint).__module__, "class_name": type(constraint).__name__,
            "config": config,
            "registered_name": registered}


def deserialize(config, custom_objects: dict | None = None):
    """The constraint `serialize` described: pynn's own, one in `custom_objects`, or one
    registered with `pynn.saving.register_keras_serializable`. Nothing is imported or run."""
    from .saving import serialization
    if config is None:
        return None
    if isinstance(config, str):
        return get(config) if config in _BY_NAME else _lookup(config, custom_objects)
    if not isinstance(config, dict):
        raise ValueError(f"Could not interpret constraint config {config!r}")
    name, inner = config.get("class_name"), config.get("config", {})
    registered = config.get("registered_name")
    if not isinstance(name, str):
        raise ValueError(f"Constraint config: class_name must be a string, got {name!r}")
    if name == "function":
        fn = _lookup(registered or inner, custom_objects)
        if not callable(fn) or isinstance(fn, type):
            raise ValueError(f"Constraint function {inner!r} is not a function")
        return fn
    cls = None
    for key in (registered, name):
        if isinstance(key, str) and cls is None:
            cls = (custom_objects or {}).get(key) or serialization.get_registered_object(key)
    if cls is None:
        cls = _BY_NAME.get(name)
    if cls is None or not isinstance(cls, type):
        raise ValueError(f"Could not locate constraint class '{registered or name}': pass it in "
                         f"custom_objects or register it with "
                         "pynn.saving.register_keras_serializable")
    if not isinstance(inner, dict):
        raise ValueError(f"Constraint {name}: config must be a dict, got {inner!r}")
    try:
        return cls.from_config(dict(inner))
    except TypeError as e:
        raise ValueError(f"Constraint {name}: bad config {inner!r}: {e}") from None


def _lookup(name, custom_objects):
    from .saving import serialization
    obj = None
    if isinstance(name, str):
        obj = (custom_objects or {}).get(name) or serialization.get_registered_object(name)
    if obj is None:
        raise ValueError(f"Could not interpret constraint identifier: {name}")
    return obj


def get(identifier):
    """A constraint from None, a name ('max_norm', 'MaxNorm', 'non_neg', 'unit_norm',
    'min_max_norm', ...), a serialized dict, a class, an instance or any callable.

    Example:
        >>> pynn.constraints.get("non_neg")
        <pynn.constraints.NonNeg object at ...>
    """
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        obj = deserialize(identifier)
    elif isinstance(identifier, str):
        obj = _BY_NAME.get(identifier)
    else:
        obj = identifier
    if callable(obj):
        return obj() if inspect.isclass(obj) else obj
    raise ValueError(f"Could not interpret constraint identifier: {identifier!r}")


# ---- how the core and the training loop apply them ---------------------------------------------

_FUSED = {MaxNorm.__call__: "max_norm", NonNeg.__call__: "non_neg",
          UnitNorm.__call__: "unit_norm", MinMaxNorm.__call__: "min_max_norm"}


def _fused_kind(constraint) -> str | None:
    """The core's name for a built-in constraint whose math is ours, else None."""
    return _FUSED.get(_own_call(constraint))


def _own_call(constraint):
    """The __call__ function a constraint's class uses (its nearest in the MRO)."""
    for cls in type(constraint).__mro__:
        if "__call__" in vars(cls):
            return vars(cls)["__call__"]
    return None


def _is_identity(constraint) -> bool:
    return _own_call(constraint) is Constraint.__call__


def _axes_mask(axis, ndim: int, who: str, shape) -> int:
    """Bit i set: the norms reduce over axis i of a weight of rank ndim."""
    items = range(ndim) if axis is None else (
        list(axis) if isinstance(axis, (list, tuple)) else [axis])
    mask = 0
    for a in items:
        a = int(a)
        if not -ndim <= a < ndim:
            raise ValueError(f"{who}: the constraint's axis {axis!r} is out of range for a "
                             f"weight of shape {tuple(shape)}")
        mask |= 1 << (a % ndim)
    return mask


def check(constraint, shape, who: str):
    """add_weight's constraint: the object (`get`), its axes checked against the weight's
    shape. `who` names the layer and the weight in errors."""
    c = get(constraint)
    if c is None:
        return None
    kind = _fused_kind(c)
    if kind is not None and kind != "non_neg":
        _axes_mask(c.axis, len(shape), who, shape)
    return c


def register(core, vid: int, constraint, shape, who: str) -> None:
    """Tells the core to apply a built-in constraint to variable vid after every update (the
    others run from Python: `python_weights`, `apply_python`)."""
    kind = None if constraint is None else _fused_kind(constraint)
    if kind is None:
        return
    mask = 0 if kind == "non_neg" else _axes_mask(constraint.axis, len(shape), who, shape)
    lo = float(getattr(constraint, "min_value", 0.0))
    hi = float(getattr(constraint, "max_value", 0.0))
    rate = float(getattr(constraint, "rate", 1.0))
    core.set_variable_constraint(vid, kind, mask, lo, hi, rate)


def python_weights(weights) -> list:
    """The weights whose constraint runs in Python (not one of the four built-ins)."""
    out = []
    for w in weights:
        c = getattr(w, "constraint", None)
        if c is not None and _fused_kind(c) is None and not _is_identity(c):
            owner = w._owner() if getattr(w, "_owner", None) is not None else None
            current = getattr(owner, w._attr, None) if owner is not None else None
            out.append(current if current is not None else w)  # the view of the core's memory
    return out


def apply_python(weights) -> None:
    """Runs each weight's Python constraint on it and writes the result back in place."""
    for w in weights:
        c = w.constraint
        out = np.asarray(c(w), dtype=np.float32)
        if out.shape != w.shape:
            raise ValueError(f"Constraint {type(c).__name__} of weight '{w.path}' returned shape "
                             f"{out.shape}; the weight has shape {w.shape}")
        w.assign(out)


def after_steps(step, weights):
    """`step` (a core train step) followed by the Python constraints of `weights`; `step`
    itself when there are none."""
    weights = python_weights(weights)
    if not weights:
        return step

    def step_and_constrain(*args, **kwargs):
        r = step(*args, **kwargs)
        apply_python(weights)
        return r
    return step_and_constrain


__all__ = ["Constraint", "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm", "deserialize", "get",
           "max_norm", "min_max_norm", "non_neg", "serialize", "unit_norm"]
