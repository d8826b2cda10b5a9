"""Weight penalties added to the loss: Keras 3's L1, L2 and L1L2 (defaults 0.01)."""


class Regularizer:
    """Base class: a penalty `l1 * sum(|w|) + l2 * sum(w**2)`, computed by the core."""

    l1: float = 0.0
    l2: float = 0.0

    def __call__(self, x):
        """The penalty of `x` (a weight, a Tensor or an array), on the tape as Keras computes it
        for `layer.losses`."""
        from . import ops
        out = 0.0
        if self.l1:
            out = ops.multiply(ops.sum(ops.abs(x)), self.l1)
        if self.l2:
            term = ops.multiply(ops.sum(ops.square(x)), self.l2)
            out = term if isinstance(out, float) else ops.add(out, term)
        return out

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


def _factor(name: str, v) -> float:
    v = float(v)
    if not v >= 0.0 or v == float("inf"):
        raise ValueError(f"{name} must be a finite number >= 0, got {v}")
    return v


class L1L2(Regularizer):
    """`l1 * sum(|w|) + l2 * sum(w**2)`."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1, self.l2 = _factor("l1", l1), _factor("l2", l2)

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """`l1 * sum(|w|)`."""

    def __init__(self, l1: float = 0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    """`l2 * sum(w**2)`."""

    def __init__(self, l2: float = 0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


l1, l2, l1_l2 = L1, L2, L1L2

_BY_NAME = {"l1": L1, "l2": L2, "l1_l2": L1L2, "l1l2": L1L2}


def serialize(regularizer: Regularizer | None) -> dict | None:
    """Keras's {"class_name", "config"} form of a regularizer (None stays None)."""
    if regularizer is None:
        return None
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}


def get(identifier) -> Regularizer | None:
    """Returns a regularizer for None, a name ('l1', 'l2', 'l1_l2') or an instance."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    if isinstance(identifier, dict):  # Keras's serialized form: {"class_name", "config"}
        name, config = identifier.get("class_name"), identifier.get("config", {})
        key = name.lower() if isinstance(name, str) else None
        if key in _BY_NAME and isinstance(config, dict):
            try:
                return _BY_NAME[key].from_config(config)
            except TypeError as e:
                raise ValueError(f"Regularizer {name}: bad config {config!r}: {e}") from None
    raise ValueError(f"Unknown regularizer {identifier!r}")
