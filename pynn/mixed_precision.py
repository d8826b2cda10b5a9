"""keras.mixed_precision: dtype policies.

Two policies run:

- "float32" (the default): everything in float32.
- "mixed_bfloat16": a layer's matrix products (Dense and EinsumDense-like projections, the
  convolutions and transposed convolutions, MultiHeadAttention's projections, the recurrent
  layers' input projections, and `ops.matmul` inside a custom layer of this policy) read their
  inputs and weights rounded to bfloat16 and sum the products in float32, as Keras's policy
  does. Weights stay float32 (the optimizer updates float32 masters), and so do the other ops
  (activations, normalisation, softmax, losses) and the arrays `predict` returns. On a CPU with
  AVX512-BF16 the products run on the core's bfloat16 kernel, at up to twice the float32
  speed; elsewhere the same rounding is emulated (the same results, a little slower than
  float32). Products of fewer than 32 terms (a convolution over one input channel) stay
  float32: converting them costs more than it saves.

"bfloat16", "float16" and "mixed_float16" (float16 or bfloat16 weights, float16 products) raise
NotImplementedError rather than training in another precision than the script asked for.
LossScaleOptimizer is pynn.optimizers.LossScaleOptimizer: it scales as Keras's does, though
bfloat16 keeps float32's exponent range and needs no loss scaling.

Example:
    >>> pynn.mixed_precision.set_global_policy("mixed_bfloat16")
    >>> layer = pynn.layers.Dense(10)
    >>> layer.compute_dtype, layer.variable_dtype
    ('bfloat16', 'float32')
"""

# name: (compute dtype, variable dtype)
_POLICIES = {"float32": ("float32", "float32"), "mixed_bfloat16": ("bfloat16", "float32")}
_REFUSED = {
    "bfloat16": "pynn keeps weights in float32; use 'mixed_bfloat16' (bfloat16 products, "
                "float32 weights)",
    "float16": "pynn has no float16 kernels; use 'mixed_bfloat16' or 'float32'",
    "mixed_float16": "pynn has no float16 kernels; use 'mixed_bfloat16' (the same speed-up "
                     "where the CPU has AVX512-BF16, and no loss scaling needed) or 'float32'",
}


class DTypePolicy:
    """A dtype policy: the dtype a layer computes in and the dtype of its weights.

    Args:
        name: "float32" or "mixed_bfloat16" (None: "float32").

    Example:
        >>> pynn.mixed_precision.DTypePolicy("mixed_bfloat16").compute_dtype
        'bfloat16'
    """

    def __init__(self, name: str | None = None):
        name = "float32" if name is None else name
        if not isinstance(name, str):
            raise TypeError(f"DTypePolicy: name must be a string, got {name!r}")
        if name not in _POLICIES:
            if name in _REFUSED:
                raise NotImplementedError(f"dtype policy {name!r}: {_REFUSED[name]}")
            raise ValueError(f"DTypePolicy: unknown policy {name!r}; pynn runs "
                             f"{sorted(_POLICIES)}")
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def compute_dtype(self) -> str:
        return _POLICIES[self._name][0]

    @property
    def variable_dtype(self) -> str:
        return _POLICIES[self._name][1]

    def get_config(self) -> dict:
        return {"name": self._name}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __eq__(self, other) -> bool:
        return isinstance(other, DTypePolicy) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self._name)

    def __repr__(self) -> str:
        return f'<DTypePolicy "{self._name}">'


Policy = DTypePolicy
_global = DTypePolicy("float32")


def get(policy) -> DTypePolicy:
    """A DTypePolicy from a policy, its name, a dtype (np.float32) or None (the global one)."""
    if policy is None:
        return _global
    if isinstance(policy, DTypePolicy):
        return policy
    if isinstance(policy, dict):  # a serialized policy, as Keras writes it in a layer's config
        inner = policy.get("config", policy)
        policy = inner.get("name") if isinstance(inner, dict) else inner
    if not isinstance(policy, str):
        name = getattr(policy, "__name__", None) or getattr(policy, "name", None)
        policy = "float32" if name == "float32" else repr(policy)
    return DTypePolicy(policy)


def set_global_policy(policy) -> None:
    """Sets the policy that layers made from now on take: "float32", "mixed_bfloat16", a
    DTypePolicy, or None (back to "float32")."""
    global _global
    _global = get(policy) if policy is not None else DTypePolicy("float32")


def global_policy() -> DTypePolicy:
    """The policy that layers made now take."""
    return _global


set_dtype_policy = set_global_policy
dtype_policy = global_policy


# keras.mixed_precision.LossScaleOptimizer is keras.optimizers.LossScaleOptimizer: in pynn's
# float32 (and bfloat16 products, float32's range) it scales and unscales as Keras does
from .optimizers import LossScaleOptimizer  # noqa: E402

__all__ = ["DTypePolicy", "LossScaleOptimizer", "Policy", "dtype_policy", "global_policy",
           "set_dtype_policy", "set_global_policy"]
