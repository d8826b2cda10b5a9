"""keras.mixed_precision: dtype policies.

pynn computes in float32: its kernels have no bfloat16 or float16 path yet, so the float32
policy is the one there is. Asking for another ("mixed_bfloat16", "mixed_float16", "bfloat16",
...) raises NotImplementedError rather than training in float32 while the script believes it
trains in bfloat16. Keras's names are all here, so a script that sets float32, or reads the
policy, runs unchanged.
"""

_SUPPORTED = "float32"


def _refuse(name: str):
    raise NotImplementedError(
        f"dtype policy {name!r}: pynn computes in float32 only for now (its matrix kernels have "
        "no bfloat16 or float16 path yet); use the 'float32' policy")


class DTypePolicy:
    """A dtype policy: the dtype layers compute in and the dtype of their weights. Only
    "float32" (both float32) is available.

    Example:
        >>> pynn.mixed_precision.DTypePolicy("float32").compute_dtype
        'float32'
    """

    def __init__(self, name: str | None = None):
        name = _SUPPORTED if name is None else name
        if not isinstance(name, str):
            raise TypeError(f"DTypePolicy: name must be a string, got {name!r}")
        if name != _SUPPORTED:
            _refuse(name)
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def compute_dtype(self) -> str:
        return "float32"

    @property
    def variable_dtype(self) -> str:
        return "float32"

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


def set_global_policy(policy) -> None:
    """Sets the policy new layers take: "float32" (or a DTypePolicy of it); others raise."""
    DTypePolicy(policy.name if isinstance(policy, DTypePolicy) else policy)


def global_policy() -> DTypePolicy:
    """The policy new layers take: float32."""
    return DTypePolicy(_SUPPORTED)


set_dtype_policy = set_global_policy
dtype_policy = global_policy


class LossScaleOptimizer:
    """Keras's loss-scaling wrapper for float16 training, which pynn does not run yet."""

    def __init__(self, inner_optimizer=None, initial_scale=2.0**15, dynamic_growth_steps=2000,
                 **kwargs):
        raise NotImplementedError(
            "LossScaleOptimizer: pynn trains in float32 only for now, where losses need no "
            "scaling; pass the inner optimizer to compile() directly")


__all__ = ["DTypePolicy", "LossScaleOptimizer", "Policy", "dtype_policy", "global_policy",
           "set_dtype_policy", "set_global_policy"]
