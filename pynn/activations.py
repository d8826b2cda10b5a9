"""Activation functions, by Keras 3's names and defaults.

Each is usable as a layer argument (`Dense(64, activation="relu")` or
`activation=pynn.activations.relu`) and callable on an array, computed by the core.
"""

from collections.abc import Callable

import numpy as np

from . import _core


def _apply(name: str, x, alpha: float = 0.0, approximate: bool = False):
    """The activation of an array (computed now), or of a symbolic tensor, a Tensor or a
    weight through pynn.ops (recorded in the graph being traced, or on the tape)."""
    from .layers.base import Variable
    from .layers.input_layer import KerasTensor
    from .tensor import Tensor
    if isinstance(x, (KerasTensor, Tensor, Variable)):
        from .ops import nn
        if name == "linear":
            return x
        if name in ("leaky_relu", "elu"):
            return getattr(nn, name)(x, alpha)
        if name == "gelu":
            return nn.gelu(x, approximate)
        return getattr(nn, name)(x)
    return _core.activation(name, np.asarray(x), alpha, approximate)


def linear(x):
    """Identity: `linear(x) = x`."""
    return _apply("linear", x)


def relu(x):
    """Rectified linear unit: `max(x, 0)`."""
    return _apply("relu", x)


def sigmoid(x):
    """`1 / (1 + exp(-x))`."""
    return _apply("sigmoid", x)


def tanh(x):
    """Hyperbolic tangent."""
    return _apply("tanh", x)


def softmax(x, axis: int = -1):
    """`exp(x) / sum(exp(x))` over the last axis."""
    if axis != -1:
        raise ValueError("softmax: only axis=-1 is supported")
    return _apply("softmax", x)


def leaky_relu(x, negative_slope: float = 0.2):
    """`x` if `x > 0`, else `negative_slope * x`."""
    return _apply("leaky_relu", x, alpha=negative_slope)


def elu(x, alpha: float = 1.0):
    """`x` if `x > 0`, else `alpha * (exp(x) - 1)`."""
    return _apply("elu", x, alpha=alpha)


def selu(x):
    """Scaled ELU with the constants of Klambauer et al. (2017)."""
    return _apply("selu", x)


def gelu(x, approximate: bool = False):
    """Gaussian error linear unit: `x * Phi(x)`, or its tanh approximation."""
    return _apply("gelu", x, approximate=approximate)


def swish(x):
    """`x * sigmoid(x)` (also called silu)."""
    return _apply("swish", x)


silu = swish


def softplus(x):
    """`log(1 + exp(x))`."""
    return _apply("softplus", x)


_BY_NAME: dict[str, Callable] = {
    f.__name__: f
    for f in (linear, relu, sigmoid, tanh, softmax, leaky_relu, elu, selu, gelu, swish, softplus)
}
_BY_NAME["silu"] = swish


class ActivationSpec:
    """How an activation lowers to the core: op name and attributes."""

    def __init__(self, name: str, alpha: float = 0.0, approximate: bool = False):
        self.name, self.alpha, self.approximate = name, alpha, approximate

    def lower(self, core, node: int) -> int:
        if self.name == "linear":
            return node
        fattr = (self.alpha,)
        iattr = (1 if self.approximate else 0,)
        node, _ = core.add_node(self.name, (node,), (), iattr, fattr)
        return node


_DEFAULT_ALPHA = {"leaky_relu": 0.2, "elu": 1.0}


def get(identifier) -> Callable:
    """Returns the activation function for a name, a function, or None (linear).

    Example:
        >>> pynn.activations.get("relu") is pynn.activations.relu
        True
    """
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        if identifier not in _BY_NAME:
            raise ValueError(
                f"Unknown activation '{identifier}'. Known: {', '.join(sorted(_BY_NAME))}"
            )
        return _BY_NAME[identifier]
    if callable(identifier) and getattr(identifier, "__name__", None) in _BY_NAME:
        if _BY_NAME[identifier.__name__] is identifier:
            return identifier
    raise ValueError(
        f"Unknown activation {identifier!r}: pass a name or a function of pynn.activations"
    )


def serialize(fn: Callable) -> str:
    """The name of an activation function."""
    return get(fn).__name__


def spec(identifier) -> ActivationSpec:
    """The lowering of an activation (with its Keras default attributes)."""
    name = get(identifier).__name__
    return ActivationSpec(name, alpha=_DEFAULT_ALPHA.get(name, 0.0))
