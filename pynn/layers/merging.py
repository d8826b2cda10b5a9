"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Concatenate. Each takes a list of
2 to 4 tensors (Subtract exactly 2)."""

from ..utils.shape_utils import shape_str
from .base import Layer

_MAX_INPUTS = 4  # the core's inputs per node


class Merge(Layer):
    """Elementwise merge of tensors of one shape."""

    op = "add"
    n_inputs = None  # exactly this many, when set

    def _who(self) -> str:
        return f"{type(self).__name__} '{self.name}'"

    def _check_list(self, input_shape) -> list:
        if not isinstance(input_shape, (list, tuple)) or not input_shape or \
                not isinstance(input_shape[0], (list, tuple)):
            raise ValueError(f"{self._who()}: call it on a list of tensors, got one tensor")
        shapes = [tuple(s) for s in input_shape]
        want = self.n_inputs
        if want is not None and len(shapes) != want:
            raise ValueError(f"{self._who()}: takes exactly {want} inputs, got {len(shapes)}")
        if not 2 <= len(shapes) <= _MAX_INPUTS:
            raise ValueError(f"{self._who()}: takes 2 to {_MAX_INPUTS} inputs, got "
                             f"{len(shapes)}")
        return shapes

    def build(self, input_shape) -> None:
        shapes = self._check_list(input_shape)
        for s in shapes[1:]:
            if s[1:] != shapes[0][1:]:
                raise ValueError(f"{self._who()}: inputs must have the same shape, got "
                                 f"{', '.join(shape_str(x) for x in shapes)}")
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(self._check_list(input_shape)[0])

    def lower(self, core, nodes) -> int:
        node, _ = core.add_node(self.op, tuple(nodes))
        return node


class Add(Merge):
    """The sum of its inputs. Example: `pynn.layers.Add()([x1, x2])`."""

    op = "add"


class Subtract(Merge):
    """The first input minus the second. Example: `pynn.layers.Subtract()([x1, x2])`."""

    op, n_inputs = "subtract", 2


class Multiply(Merge):
    """The elementwise product of its inputs."""

    op = "multiply"


class Average(Merge):
    """The elementwise mean of its inputs."""

    op = "average"


class Maximum(Merge):
    """The elementwise maximum of its inputs (on ties the gradient goes to the first, as in
    Keras)."""

    op = "maximum"


class Concatenate(Merge):
    """Joins its inputs along `axis`; their other axes must agree.

    Args:
        axis: the axis to join on (-1, the last, by default; the batch axis cannot be used).

    Example:
        >>> pynn.layers.Concatenate()([x1, x2])
    """

    op = "concatenate"

    def __init__(self, axis: int = -1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(f"{self._who()}: axis must be an int, got {axis!r}")
        self.axis = axis

    def _sample_axis(self, rank: int) -> int:
        """The axis within a sample (batch excluded), from Keras's axis over the full rank."""
        axis = self.axis + rank if self.axis < 0 else self.axis
        if not 1 <= axis < rank:
            raise ValueError(f"{self._who()}: axis {self.axis} is outside the inputs' axes "
                             f"(rank {rank}; the batch axis 0 cannot be joined)")
        return axis - 1

    def build(self, input_shape) -> None:
        shapes = self._check_list(input_shape)
        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes):
            raise ValueError(f"{self._who()}: inputs must have the same rank, got "
                             f"{', '.join(shape_str(x) for x in shapes)}")
        a = self._sample_axis(rank) + 1
        for s in shapes[1:]:
            if s[1:a] + s[a + 1:] != shapes[0][1:a] + shapes[0][a + 1:]:
                raise ValueError(f"{self._who()}: inputs must agree on every axis but {self.axis}"
                                 f", got {', '.join(shape_str(x) for x in shapes)}")
        self.built = True

    def compute_output_shape(self, input_shape):
        shapes = self._check_list(input_shape)
        a = self._sample_axis(len(shapes[0])) + 1
        joined = sum(s[a] for s in shapes) if all(s[a] is not None for s in shapes) else None
        return shapes[0][:a] + (joined,) + shapes[0][a + 1:]

    def lower(self, core, nodes) -> int:
        rank = len(core.node_shape(nodes[0])) + 1
        node, _ = core.add_node("concatenate", tuple(nodes), (), (self._sample_axis(rank),))
        return node

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis}


__all__ = ["Add", "Average", "Concatenate", "Maximum", "Multiply", "Subtract"]
