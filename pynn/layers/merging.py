"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot, and
Keras's functional forms of them (add, subtract, multiply, average, maximum, minimum,
concatenate, dot). Each takes a list of tensors: 2 to 4 (Subtract and Dot exactly 2, Minimum 2
or more).

Most lower to one core merge node. Minimum and Dot are written in `call()` with pynn.ops, which
pynn traces into core nodes in a model and runs op by op on data.
"""

import math

from ..utils.shape_utils import shape_str
from .base import Layer

_MAX_INPUTS = 4  # the core's inputs per node


class Merge(Layer):
    """Elementwise merge of tensors of one shape."""

    op = "add"
    n_inputs = None  # exactly this many, when set
    supports_masking = True  # the inputs' masks combined: kept where all keep (as Keras)
    max_inputs = _MAX_INPUTS  # at most this many (None: no limit)

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
        most = self.max_inputs
        if len(shapes) < 2 or (most is not None and len(shapes) > most):
            span = f"2 to {most}" if most is not None else "at least 2"
            raise ValueError(f"{self._who()}: takes {span} inputs, got {len(shapes)}")
        return shapes

    def _check_same(self, shapes: list) -> None:
        """Raises unless the shapes agree but for the batch axis."""
        for s in shapes[1:]:
            if s[1:] != shapes[0][1:]:
                raise ValueError(f"{self._who()}: inputs must have the same shape, got "
                                 f"{', '.join(shape_str(x) for x in shapes)}")

    def build(self, input_shape) -> None:
        self._check_same(self._check_list(input_shape))
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


class _TracedMerge(Merge):
    """A merge written in `call()` with pynn.ops rather than as one core merge node. A model
    records its calls as any merge's (so they save as lists of tensors); it lowers one by
    tracing `call()` on placeholders of the inputs' shapes and adding the nodes recorded. On
    data `call()` runs on the tape."""

    def lower(self, core, nodes) -> int:
        from . import tracing
        from .base import _node_tensor

        inputs = [_node_tensor(core, n) for n in nodes]
        with tracing.quiet():
            trace = tracing.run_trace(self, (inputs,), {}, inputs)
        return tracing.replay(core, trace, list(nodes))[0]

    def _call_eager(self, inputs, training: bool, kwargs: dict):
        from ..eager import as_tensor

        if kwargs.get("mask") is not None or set(kwargs) - {"mask"}:
            raise ValueError(f"{self._who()}: unexpected arguments {sorted(kwargs)}")
        if not isinstance(inputs, (list, tuple)):
            self._check_list(tuple(getattr(inputs, "shape", ())))  # raises: not a list
        xs = [as_tensor(x) for x in inputs]
        if any(x.ndim < 1 for x in xs):
            raise ValueError(f"{self._who()}: inputs need a batch axis")
        if len({x.shape[0] for x in xs}) > 1:
            raise ValueError(f"{self._who()}: inputs must have the same batch size, got "
                             f"{', '.join(shape_str(x.shape) for x in xs)}")
        if not self.built:
            self.build([(None,) + tuple(x.shape[1:]) for x in xs])
        return self.call(xs)

    def _input_shapes(self, inputs: list) -> list:
        """The shapes of the tensors a call got (batch axis included), checked as build checks
        them."""
        return self._check_list([tuple(x.shape) for x in inputs])


class Minimum(_TracedMerge):
    """The elementwise minimum of its inputs, folded left to right as Keras does (on ties the
    gradient goes to the earlier input, as with Maximum).

    Example:
        >>> pynn.layers.Minimum()([x1, x2])
    """

    max_inputs = None  # one binary minimum per input after the first: no core limit

    def call(self, inputs):
        from .. import ops

        # every call, not only the first (build's): ops.minimum alone would broadcast
        self._check_same(self._input_shapes(inputs))
        out = inputs[0]
        for x in inputs[1:]:
            out = ops.minimum(out, x)
        return out


class Concatenate(Merge):
    """Joins its inputs along `axis`; their other axes must agree.

    Args:
        axis: the axis to join on (-1, the last, by default; the batch axis cannot be used).

    Example:
        >>> pynn.layers.Concatenate()([x1, x2])
    """

    op = "concatenate"

    def _lower_mask(self, core, inputs, output, mask):
        """Joined along the features (the last axis): kept where every masked input keeps, as
        Keras's (an unmasked input keeps everywhere)."""
        present = [m for m in (mask or []) if m is not None]
        if not present:
            return None
        rank = len(core.node_shape(inputs[0])) + 1
        if self._sample_axis(rank) != rank - 2:
            raise ValueError(f"{self._who()}: joining masked inputs along axis {self.axis} is "
                             "not supported (only along the last axis)")
        from .masking import all_of
        return all_of(core, present)

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


class Dot(_TracedMerge):
    """The dot product of two inputs' samples along one axis of each, as Keras's Dot (its
    `batch_dot`): the output has the first input's other axes, then the second's (batch axis
    left out); a single value per sample comes out as shape (batch, 1).

    Inputs of shapes (batch, 3, 5) and (batch, 10, 3) with axes=(1, 2) give (batch, 5, 10); two
    (batch, 8) inputs with axes=1 give (batch, 1).

    Args:
        axes: an int (that axis of both inputs) or a pair of ints (one axis of each). Axes count
            the batch axis as 0, which cannot be one of them; negative axes count from the end.
        normalize: whether to L2-normalise each input along its dot axis first, so that the
            output is the cosine similarity of the two samples.

    Example:
        >>> pynn.layers.Dot(axes=1)([x1, x2])
    """

    def _lower_mask(self, core, inputs, output, mask):
        return None  # the product has no steps to mask, as Keras's Dot

    n_inputs = 2

    def __init__(self, axes, normalize: bool = False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axes, bool) or not isinstance(axes, (int, list, tuple)):
            raise TypeError(f"{self._who()}: axes must be an int or a pair of ints, got "
                            f"{axes!r}")
        if isinstance(axes, (list, tuple)):
            if len(axes) != 2:
                raise ValueError(f"{self._who()}: axes must hold two ints (one axis of each "
                                 f"input), got {axes!r}")
            if any(isinstance(a, bool) or not isinstance(a, int) for a in axes):
                raise ValueError(f"{self._who()}: axes must hold ints, got {axes!r}")
        self.axes = axes
        self.normalize = bool(normalize)

    def _dot_axes(self, shapes: list) -> tuple[int, int]:
        """The dot axis of each input, an axis of the whole tensor (1 or more; 0 is the batch)."""
        pair = (self.axes, self.axes) if isinstance(self.axes, int) else tuple(self.axes)
        out = []
        for k, (axis, shape) in enumerate(zip(pair, shapes)):
            rank = len(shape)
            if not -rank <= axis < rank:
                raise ValueError(f"{self._who()}: axis {axis} is outside input {k}'s axes "
                                 f"(shape {shape_str(shape)})")
            if axis % rank == 0:
                raise ValueError(f"{self._who()}: cannot take the dot product over the batch "
                                 f"axis (axes={self.axes!r}, input {k} of rank {rank})")
            out.append(axis % rank)
        a, b = out
        da, db = shapes[0][a], shapes[1][b]
        if da is not None and db is not None and da != db:
            raise ValueError(f"{self._who()}: the dot axes differ in size: {da} (axis {a} of "
                             f"{shape_str(shapes[0])}) and {db} (axis {b} of "
                             f"{shape_str(shapes[1])})")
        return a, b

    def build(self, input_shape) -> None:
        self._dot_axes(self._check_list(input_shape))
        self.built = True

    def compute_output_shape(self, input_shape):
        s1, s2 = self._check_list(input_shape)
        a, b = self._dot_axes([s1, s2])
        out = s1[:a] + s1[a + 1:] + s2[1:b] + s2[b + 1:]
        return out if len(out) > 1 else out + (1,)

    def call(self, inputs):
        from .. import ops

        shapes = self._input_shapes(inputs)
        a, b = self._dot_axes(shapes)
        x1, x2 = inputs
        if self.normalize:  # x * min(rsqrt(sum(x^2)), 1 / 1e-7), as Keras normalises
            x1, x2 = ops.normalize(x1, axis=a), ops.normalize(x2, axis=b)
        return _batch_dot(x1, x2, a, b)

    def get_config(self) -> dict:
        return {**super().get_config(), "axes": self.axes, "normalize": self.normalize}


def _batch_dot(x1, x2, a1: int, a2: int):
    """Keras's batch_dot over axis a1 of x1 and a2 of x2 (axes of the whole tensors, not the
    batch): one batched matmul of x1 as (batch, m, k) by x2 as (batch, k, n), reshaped to the
    free axes of x1 then of x2 ((batch, 1) when there are none)."""
    from .. import ops

    s1, s2 = tuple(x1.shape), tuple(x2.shape)
    free1 = [i for i in range(1, len(s1)) if i != a1]
    free2 = [i for i in range(1, len(s2)) if i != a2]
    if free1 and free1[-1] > a1:  # the dot axis last
        x1 = ops.transpose(x1, [0] + free1 + [a1])
    if free2 and free2[0] < a2:  # the dot axis first after the batch
        x2 = ops.transpose(x2, [0, a2] + free2)
    dims1, dims2 = tuple(s1[i] for i in free1), tuple(s2[i] for i in free2)
    k = s1[a1]
    out = ops.matmul(ops.reshape(x1, (-1, math.prod(dims1), k)),
                     ops.reshape(x2, (-1, k, math.prod(dims2))))
    return ops.reshape(out, (-1,) + (dims1 + dims2 or (1,)))


# -- Keras's functional forms: each makes the layer and calls it on the inputs --------------------
def add(inputs: list, **kwargs):
    """`Add(**kwargs)(inputs)`: the sum of the inputs.

    Example:
        >>> y = pynn.layers.add([x1, x2])
    """
    return Add(**kwargs)(inputs)


def subtract(inputs: list, **kwargs):
    """`Subtract(**kwargs)(inputs)`: the first input minus the second.

    Example:
        >>> y = pynn.layers.subtract([x1, x2])
    """
    return Subtract(**kwargs)(inputs)


def multiply(inputs: list, **kwargs):
    """`Multiply(**kwargs)(inputs)`: the elementwise product of the inputs.

    Example:
        >>> y = pynn.layers.multiply([x1, x2])
    """
    return Multiply(**kwargs)(inputs)


def average(inputs: list, **kwargs):
    """`Average(**kwargs)(inputs)`: the elementwise mean of the inputs.

    Example:
        >>> y = pynn.layers.average([x1, x2])
    """
    return Average(**kwargs)(inputs)


def maximum(inputs: list, **kwargs):
    """`Maximum(**kwargs)(inputs)`: the elementwise maximum of the inputs.

    Example:
        >>> y = pynn.layers.maximum([x1, x2])
    """
    return Maximum(**kwargs)(inputs)


def minimum(inputs: list, **kwargs):
    """`Minimum(**kwargs)(inputs)`: the elementwise minimum of the inputs.

    Example:
        >>> y = pynn.layers.minimum([x1, x2])
    """
    return Minimum(**kwargs)(inputs)


def concatenate(inputs: list, axis: int = -1, **kwargs):
    """`Concatenate(axis, **kwargs)(inputs)`: the inputs joined along `axis`.

    Example:
        >>> y = pynn.layers.concatenate([x1, x2], axis=-1)
    """
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs: list, axes=-1, **kwargs):
    """`Dot(axes, **kwargs)(inputs)`: the dot product of the two inputs' samples along `axes`
    (`normalize=True` among the kwargs for their cosine similarity).

    Example:
        >>> y = pynn.layers.dot([x1, x2], axes=1)
    """
    return Dot(axes=axes, **kwargs)(inputs)


__all__ = ["Add", "Average", "Concatenate", "Dot", "Maximum", "Minimum", "Multiply", "Subtract",
           "add", "average", "concatenate", "dot", "maximum", "minimum", "multiply", "subtract"]
