"""Core layers: Dense, EinsumDense, Activation, Embedding, PositionEmbedding, Lambda."""

import math
import re
import string

import numpy as np

from .. import activations, constraints, initializers, regularizers
from ..utils.shape_utils import shape_str
from .base import Layer


class Dense(Layer):
    """Densely connected layer: `output = activation(dot(input, kernel) + bias)`, over the last
    axis of its input.

    Args:
        units: dimensionality of the output.
        activation: name or function of `pynn.activations`; None means linear.
        use_bias: whether to add a bias vector.
        kernel_initializer, bias_initializer: initializers ('glorot_uniform' and 'zeros').
        kernel_regularizer, bias_regularizer: L1/L2 penalties added to the loss.
        kernel_constraint, bias_constraint: `pynn.constraints` applied after each update.

    Example:
        >>> model = pynn.Sequential([pynn.Input(shape=(16,)), pynn.layers.Dense(8, "relu")])
        >>> model.output_shape
        (None, 8)
    """

    supports_masking = True  # passes its input's mask on, as Keras's

    def __init__(self, units: int, activation=None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
            raise ValueError(f"Dense '{self.name}': units must be a positive int, got {units!r}")
        if activity_regularizer is not None:
            raise ValueError(f"Dense '{self.name}': activity_regularizer is not supported")
        self.units = units
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)

    def build(self, input_shape) -> None:
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"Dense '{self.name}': input needs a known last axis, got "
                             f"{shape_str(input_shape)}")
        self.add_weight((input_shape[-1], self.units), self.kernel_initializer,
                        regularizer=self.kernel_regularizer,
                        constraint=self.kernel_constraint, name="kernel")
        if self.use_bias:
            self.add_weight((self.units,), self.bias_initializer,
                            regularizer=self.bias_regularizer,
                            constraint=self.bias_constraint, name="bias")
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def lower(self, core, node: int) -> int:
        node, _ = core.add_node("dense", (node,), tuple(self._var_ids))
        return activations.spec(self.activation).lower(core, node)

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units,
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint)}


class EinsumDense(Layer):
    """A dense layer written as an einsum, as Keras's EinsumDense: `output = activation(
    einsum(equation, input, kernel) + bias)`, with the kernel's shape read from the equation.

    The equation is `X,W->Z` (or `...X,W->...Z`, or `X...,W->Z...`, the `...` standing for
    axes the kernel leaves as they are); the input's first axis, the batch, must come first in
    the output and not be the kernel's. It runs as one batched matrix product (with transposes
    and reshapes around it), a dense node where the kernel is a plain (in, out) matrix.

    Args:
        equation: the einsum equation, e.g. "ab,bc->ac" (Dense) or "abc,cd->abd".
        output_shape: the output's shape without the batch axis and the `...` axes (an int for
            one axis); None for an axis the input gives.
        activation: name or function of `pynn.activations`; None means linear.
        bias_axes: the output letters that get a bias (a bias broadcast over the others), or
            None for no bias.
        kernel_initializer, bias_initializer: initializers ('glorot_uniform' and 'zeros'); a
            variance-scaling one counts fans over the kernel's input and output letters, as
            Keras does.
        kernel_regularizer, bias_regularizer: L1/L2 penalties added to the loss.
        kernel_constraint, bias_constraint: `pynn.constraints` applied after each update.

    Example:
        >>> layer = pynn.layers.EinsumDense("abc,cd->abd", output_shape=(None, 64), bias_axes="d")
        >>> layer(pynn.Input(shape=(32, 128))).shape
        (None, 32, 64)
    """

    supports_masking = True  # passes its input's mask on, as Keras's

    def __init__(self, equation: str, output_shape, activation=None, bias_axes=None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, lora_rank=None, lora_alpha=None,
                 gptq_unpacked_column_size=None, quantization_config=None,
                 activity_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        who = f"EinsumDense '{self.name}'"
        for arg, v in (("lora_rank", lora_rank),
                       ("lora_alpha", lora_alpha),
                       ("gptq_unpacked_column_size", gptq_unpacked_column_size),
                       ("quantization_config", quantization_config),
                       ("activity_regularizer", activity_regularizer)):
            if v is not None:
                raise ValueError(f"{who}: {arg} is not supported")
        if not isinstance(equation, str):
            raise TypeError(f"{who}: equation must be a string, got {equation!r}")
        try:
            _einsum_parts(equation)  # a form Keras takes
        except ValueError as e:
            raise ValueError(f"{who}: {e}") from None
        shape = (output_shape,) if isinstance(output_shape, int) else output_shape
        if not isinstance(shape, (list, tuple)) or any(
                d is not None and (isinstance(d, bool) or not isinstance(d, int) or d <= 0)
                for d in shape):
            raise TypeError(f"{who}: output_shape must be an int or a tuple of positive ints "
                            f"and None, got {output_shape!r}")
        if bias_axes is not None and not isinstance(bias_axes, str):
            raise TypeError(f"{who}: bias_axes must be a string of output letters, got "
                            f"{bias_axes!r}")
        self.equation = equation
        self.partial_output_shape = tuple(shape)
        self.bias_axes = bias_axes
        self.activation = activations.get(activation)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)

    def _plan(self, input_shape) -> "_EinsumPlan":
        try:
            return _einsum_plan(self.equation, self.bias_axes, tuple(input_shape),
                                self.partial_output_shape)
        except ValueError as e:
            raise ValueError(f"EinsumDense '{self.name}': {e}") from None

    def build(self, input_shape) -> None:
        plan = self._plan(input_shape)
        init = self.kernel_initializer
        if isinstance(init, initializers.VarianceScaling):
            init = _FansOf(init, plan.fans)
        self.add_weight(plan.kernel_shape, init, regularizer=self.kernel_regularizer,
                        constraint=self.kernel_constraint, name="kernel")
        if plan.bias_shape is not None:
            self.add_weight(plan.bias_shape, self.bias_initializer,
                            regularizer=self.bias_regularizer,
                            constraint=self.bias_constraint, name="bias")
        else:
            self.bias = None
        self.built = True

    def compute_output_shape(self, input_shape):
        return self._plan(input_shape).output_shape

    def call(self, inputs):
        from .. import ops
        from . import tracing

        plan = self._plan(inputs.shape)
        kernel = self.kernel
        if plan.kernel_shape != kernel.shape:
            raise ValueError(f"EinsumDense '{self.name}': an input of shape "
                             f"{shape_str(inputs.shape)} needs a kernel of shape "
                             f"{plan.kernel_shape}; the layer's is {kernel.shape}")
        if tracing.tracing():  # its read in the graph (ops on the weight alone would run now)
            from ..ops import _base
            kernel = _base.symbolic(kernel, allow_scalar=False)
        x = _einsum_matmul(inputs, kernel, *plan.letters)
        if self.bias is not None:
            x = ops.add(x, self.bias)
        return self.activation(x)

    def get_config(self) -> dict:
        return {**super().get_config(), "output_shape": self.partial_output_shape,
                "equation": self.equation, "activation": activations.serialize(self.activation),
                "bias_axes": self.bias_axes,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": None,
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint),
                "quantization_config": None}


class _FansOf(initializers.Initializer):
    """A variance-scaling initializer drawn with given fans (Keras's compute_fans over an einsum
    kernel's input and output axes): values for a (fan_in, fan_out) matrix, in the kernel's
    shape."""

    def __init__(self, base: initializers.VarianceScaling, fans: tuple[int, int]):
        self.base, self.fans = base, fans

    def __call__(self, shape, dtype=None):
        return self.base(self.fans).reshape(tuple(shape))


def _einsum_parts(equation: str) -> tuple[str, str, str, str]:
    """(input letters, kernel letters, output letters, where '...' is: '', 'left' or
    'right') of an EinsumDense equation, in one of Keras's three forms."""
    forms = ((r"([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]+)", ""),
             (r"\.\.\.([a-zA-Z]+),([a-zA-Z]+)->\.\.\.([a-zA-Z]+)", "left"),
             (r"([a-zA-Z]{2,})\.\.\.,([a-zA-Z]+)->([a-zA-Z]+)\.\.\.", "right"))
    for pattern, elided in forms:
        m = re.fullmatch(pattern, equation.replace(" ", ""))
        if m:
            for spec in m.groups():
                if len(set(spec)) != len(spec):
                    raise ValueError(f"Invalid einsum equation '{equation}': a letter repeats "
                                     f"in '{spec}'")
            return (*m.groups(), elided)
    raise ValueError(f"Invalid einsum equation '{equation}'. Equations must be in the form "
                     "[X],[Y]->[Z], ...[X],[Y]->...[Z], or [X]...,[Y]->[Z]....")


class _EinsumPlan:
    """What an EinsumDense equation makes of an input shape: the letters of the input, kernel
    and output with '...' spelled out as letters of its own, the weights' shapes, the full
    output shape and the kernel's fans."""

    def __init__(self, letters, kernel_shape, bias_shape, output_shape, fans):
        self.letters = letters
        self.kernel_shape = kernel_shape
        self.bias_shape = bias_shape
        self.output_shape = output_shape
        self.fans = fans


def _einsum_plan(equation: str, bias_axes, input_shape: tuple, partial: tuple) -> _EinsumPlan:
    """Keras's EinsumDense shape analysis (`_analyze_einsum_string`) for an input of shape
    `input_shape` (batch axis first), with its checks and messages, and those a run needs."""
    xs, ws, zs, elided = _einsum_parts(equation)
    n_el = len(input_shape) - len(xs)
    if (elided == "" and n_el != 0) or (elided == "left" and n_el < 1) or n_el < 0:
        raise ValueError(f"equation '{equation}' does not fit an input of shape "
                         f"{shape_str(input_shape)} (the batch axis included)")
    free = [c for c in string.ascii_letters if c not in xs + ws + zs][:n_el]
    if elided == "left":
        x_letters, z_letters = "".join(free) + xs, "".join(free) + zs
    else:
        x_letters, z_letters = xs + "".join(free), zs + "".join(free)
    want = len(zs) - (elided != "left")  # output axes partial gives: not the batch, not '...'
    if len(partial) != want:
        raise ValueError(f"output_shape {partial} has {len(partial)} axes, but equation "
                         f"'{equation}' makes {want} besides the batch axis and '...'")
    # the output's shape: the batch, the '...' axes, and the given ones
    head = (input_shape[0],) + (tuple(input_shape[1:n_el]) if elided == "left" else ())
    tail = tuple(input_shape[len(xs):]) if elided == "right" else ()
    out = list(head + partial + tail)
    x_dims = dict(zip(x_letters, input_shape))
    for c in zs:
        if c not in xs and c not in ws:
            raise ValueError(f"Dimension '{c}' was specified in the output '{zs}' but has no "
                             f"corresponding dim in the input spec '{xs}' or weight spec "
                             f"'{ws}'")
    for i, c in enumerate(z_letters):
        if c in x_dims:
            if out[i] is not None and x_dims[c] is not None and out[i] != x_dims[c]:
                raise ValueError(f"Input shape and output shape do not match at shared "
                                 f"dimension '{c}'. Input shape is {x_dims[c]}, and output "
                                 f"shape is {out[i]}.")
            out[i] = x_dims[c] if out[i] is None else out[i]
    if z_letters[0] != x_letters[0] or x_letters[0] in ws:
        raise ValueError(f"equation '{equation}': the input's first axis, the batch, must be "
                         "the output's first axis and not the kernel's")
    z_dims = dict(zip(z_letters, out))
    kernel, fan_in, fan_out = [], 1, 1
    for c in ws:
        if c not in z_dims and c not in x_dims:
            raise ValueError(f"Weight dimension '{c}' did not have a match in either the input "
                             f"spec '{xs}' or the output spec '{zs}'. For this layer, the "
                             "weight must be fully specified.")
        d = z_dims[c] if c in z_dims else x_dims[c]
        if d is None:
            raise ValueError(f"the kernel's axis '{c}' needs a known size (from output_shape "
                             f"or the input's shape {shape_str(input_shape)})")
        kernel.append(d)
        if c in z_dims:
            fan_out *= d
        else:
            fan_in *= d
    bias = None
    if bias_axes is not None:
        if not bias_axes:
            raise ValueError("bias_axes is empty: give output letters, or None for no bias")
        for c in bias_axes:
            if c not in zs:
                raise ValueError(f"Bias dimension '{c}' was requested, but is not part of the "
                                 f"output spec '{zs}'")
        first = min(zs.find(c) for c in bias_axes)
        bias = [z_dims[c] if c in bias_axes else 1 for c in zs[first:]]
        bias += [1] * (n_el if elided == "right" else 0)
        if None in bias:
            raise ValueError(f"a bias over axes '{bias_axes}' needs their sizes known, got "
                             f"output shape {shape_str(out)}")
        bias = tuple(bias)
    return _EinsumPlan((x_letters, ws, z_letters), tuple(kernel), bias, tuple(out),
                       (fan_in, fan_out))


def _einsum_matmul(x, kernel, xs: str, ws: str, zs: str):
    """einsum(xs,ws->zs) of x (batch first) and the kernel as one matmul: x as (batch, shared,
    m, k) by the kernel as (shared, k, n), where k spans the letters summed over, m x's other
    letters, n the kernel's, and shared those of both that the output keeps; letters of x
    alone that the output drops are summed first."""
    from .. import ops

    dims = {**dict(zip(xs, x.shape)), **dict(zip(ws, kernel.shape))}
    gone = [i for i, c in enumerate(xs) if c not in ws and c not in zs]
    if gone:
        x = ops.sum(x, axis=tuple(gone))
        xs = "".join(c for c in xs if c in ws or c in zs)
    shared = "".join(c for c in xs[1:] if c in ws and c in zs)
    summed = "".join(c for c in xs[1:] if c in ws and c not in zs)
    rows = "".join(c for c in xs[1:] if c not in ws)
    cols = "".join(c for c in ws if c not in xs)
    x = _permute(x, xs, xs[0] + shared + rows + summed)
    kernel = _permute(kernel, ws, shared + summed + cols)
    s = tuple(dims[c] for c in shared)

    def size(letters):
        return math.prod(dims[c] for c in letters)
    y = ops.matmul(ops.reshape(x, (-1,) + s + (size(rows), size(summed))),
                   ops.reshape(kernel, s + (size(summed), size(cols))))
    y = ops.reshape(y, (-1,) + tuple(dims[c] for c in shared + rows + cols))
    return _permute(y, xs[0] + shared + rows + cols, zs)


def _permute(t, have: str, want: str):
    """t with its axes (lettered `have`) in the order of `want`."""
    from .. import ops
    return t if have == want else ops.transpose(t, [have.index(c) for c in want])


class Activation(Layer):
    """Applies an activation function to its input.

    Args:
        activation: name or function of `pynn.activations`.

    Example:
        >>> layer = pynn.layers.Activation("relu")
    """

    supports_masking = True  # passes its input's mask on, as Keras's

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def lower(self, core, node: int) -> int:
        return activations.spec(self.activation).lower(core, node)

    def get_config(self) -> dict:
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


class Embedding(Layer):
    """Turns int32 indices into dense vectors: row `i` of a trainable (input_dim, output_dim)
    table for each index `i`.

    Its input must be the model's int32 input (`pynn.Input(shape, dtype="int32")`). An index
    outside 0..input_dim-1 raises ValueError before anything is read.

    Args:
        input_dim: the number of rows (the vocabulary size).
        output_dim: the length of each vector.
        embeddings_initializer: 'uniform' (Keras's: uniform in [-0.05, 0.05]).
        embeddings_regularizer: an L1/L2 penalty on the table.
        embeddings_constraint: a `pynn.constraints` constraint applied after each update.
        mask_zero: index 0 is padding: the output carries a mask (False at 0s) that
            recurrent layers, attention, GlobalAveragePooling1D and the losses honour.

    Example:
        >>> model = pynn.Sequential([pynn.Input((10,), dtype="int32"),
        ...                          pynn.layers.Embedding(1000, 16)])
        >>> model.output_shape
        (None, 10, 16)
    """

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer="uniform",
                 embeddings_regularizer=None, embeddings_constraint=None, mask_zero: bool = False,
                 weights=None, lora_rank=None, **kwargs):
        super().__init__(**kwargs)
        who = f"Embedding '{self.name}'"
        for arg, v in (("input_dim", input_dim), ("output_dim", output_dim)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{who}: {arg} must be a positive int, got {v!r}")
        if lora_rank is not None:
            raise ValueError(f"{who}: lora_rank is not supported")
        self.input_dim, self.output_dim = input_dim, output_dim
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.embeddings_constraint = constraints.get(embeddings_constraint)
        self.mask_zero = bool(mask_zero)
        self._initial_weights = weights

    def build(self, input_shape) -> None:
        self.add_weight((self.input_dim, self.output_dim), self.embeddings_initializer,
                        regularizer=self.embeddings_regularizer,
                        constraint=self.embeddings_constraint, name="embeddings")
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def lower(self, core, node: int) -> int:
        if core.node_dtype(node) != "int32":  # a float Input of token ids, as Keras allows
            node, _ = core.add_node("cast", (node,), (), (1,))
        node, _ = core.add_node("embedding", (node,), tuple(self._var_ids))
        return node

    supports_masking = True  # it makes its own mask (mask_zero), as Keras's compute_mask

    def _lower_mask(self, core, inputs, output, mask):
        from .masking import not_equal
        return not_equal(core, inputs, 0.0) if self.mask_zero else None

    def _call_eager(self, inputs, training: bool, kwargs: dict):
        from ..tensor import Tensor
        a = np.asarray(inputs)
        if a.dtype.kind == "f":  # token ids given as floats: truncated, as Keras casts them
            inputs = Tensor(a.astype(np.int32))
        return super()._call_eager(inputs, training, kwargs)

    def get_config(self) -> dict:
        return {**super().get_config(), "input_dim": self.input_dim,
                "output_dim": self.output_dim,
                "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
                "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
                "embeddings_constraint": constraints.serialize(self.embeddings_constraint),
                "mask_zero": self.mask_zero}


class PositionEmbedding(Layer):
    """A learned embedding of positions (keras_hub's PositionEmbedding): for an input of shape
    (batch, steps, features) it returns the table's rows 0..steps-1, broadcast to the input's
    shape; add them to the token embeddings (`Add()([x, p])` or `x + p`).

    Args:
        sequence_length: the most steps an input may have (the table's rows).
        initializer: of the (sequence_length, features) table ('glorot_uniform').

    Example:
        >>> tokens = pynn.layers.Embedding(65, 128)(pynn.Input((64,), dtype="int32"))
        >>> x = tokens + pynn.layers.PositionEmbedding(64)(tokens)
    """

    def __init__(self, sequence_length: int, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if isinstance(sequence_length, bool) or not isinstance(sequence_length, int) \
                or sequence_length <= 0:
            raise ValueError(f"PositionEmbedding '{self.name}': sequence_length must be a "
                             f"positive int, got {sequence_length!r}")
        self.sequence_length = sequence_length
        self.initializer = initializers.get(initializer)

    def _check(self, input_shape) -> None:
        if len(input_shape) < 3 or input_shape[-1] is None or input_shape[-2] is None:
            raise ValueError(f"PositionEmbedding '{self.name}': input must be (batch, steps, "
                             f"features) with known steps and features, got "
                             f"{shape_str(input_shape)}")
        if input_shape[-2] > self.sequence_length:
            raise ValueError(f"PositionEmbedding '{self.name}': the input has "
                             f"{input_shape[-2]} steps, more than sequence_length="
                             f"{self.sequence_length}")

    def build(self, input_shape) -> None:
        self._check(input_shape)
        self.add_weight((self.sequence_length, input_shape[-1]), self.initializer,
                        name="embeddings")
        self.built = True

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        return tuple(input_shape)

    def lower(self, core, node: int) -> int:
        node, _ = core.add_node("position_embedding", (node,), tuple(self._var_ids))
        return node

    def get_config(self) -> dict:
        return {**super().get_config(), "sequence_length": self.sequence_length,
                "initializer": initializers.serialize(self.initializer)}


class Lambda(Layer):
    """Wraps a Python function of `pynn.ops` as a layer, as Keras's `Lambda`: the function is
    traced into the model's graph like a custom layer's call(), so it runs in the core at
    `fit` speed.

    Args:
        function: called as `function(inputs, **arguments)`; it may also take `mask` and
            `training`.
        output_shape: accepted for Keras compatibility; the shape is found by tracing.
        mask: accepted for Keras compatibility (masks are not propagated).
        arguments: extra keyword arguments for `function`.

    Saving keeps the function by name: a named function loads again when it is registered
    (`pynn.saving.register_keras_serializable`) or passed in `custom_objects`. A `lambda` cannot
    be reloaded (pynn never runs code from a file); loading one raises ValueError.

    Example:
        >>> layer = pynn.layers.Lambda(lambda x: pynn.ops.square(x) + 1)
    """

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"Lambda: function must be callable, got {type(function).__name__}")
        if arguments is not None and not isinstance(arguments, dict):
            raise TypeError("Lambda: arguments must be a dict of keyword arguments")
        self.function = function
        self.arguments = dict(arguments or {})
        self._output_shape = output_shape
        self.mask = mask

    def call(self, inputs, mask=None, training=None):
        kwargs = dict(self.arguments)
        if mask is not None and _takes(self.function, "mask"):
            kwargs["mask"] = mask
        if training is not None and _takes(self.function, "training"):
            kwargs["training"] = training
        return self.function(inputs, **kwargs)

    def get_config(self) -> dict:
        fn = self.function
        if getattr(fn, "__name__", "<lambda>") == "<lambda>":
            function = {"class_name": "__lambda__", "config": {"name": "<lambda>"}}
        else:
            from ..saving import _REGISTERED_NAMES
            function = {"module": getattr(fn, "__module__", None), "class_name": "function",
                        "config": _REGISTERED_NAMES.get(fn, fn.__name__),
                        "registered_name": "function"}
        config = {**super().get_config(), "function": function, "arguments": self.arguments}
        if self._output_shape is not None and not callable(self._output_shape):
            config["output_shape"] = list(self._output_shape)
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None):
        config = dict(config)
        spec = config.pop("function", None)
        if isinstance(spec, dict) and spec.get("class_name") == "__lambda__":
            raise ValueError("This file holds a Lambda layer whose function is a Python lambda: "
                             "its code is not loaded (pynn never runs code from a file). Define "
                             "the function with def, register it with pynn.saving."
                             "register_keras_serializable() or pass it in custom_objects, and "
                             "save the model again.")
        name = spec.get("config") if isinstance(spec, dict) else spec
        if not isinstance(name, str):
            raise ValueError(f"Lambda: cannot read the function of {config.get('name')!r}")
        from ..saving import get_registered_object
        fn = get_registered_object(name, custom_objects)
        if fn is None and ">" in name:  # registered when saved, given by its own name now
            fn = get_registered_object(name.split(">", 1)[1], custom_objects)
        if fn is None or isinstance(fn, type) or not callable(fn):
            raise ValueError(f"Lambda '{config.get('name')}': its function '{name}' is not "
                             f"known; pass it in custom_objects ({{'{name}': the function}}) or "
                             "register it with pynn.saving.register_keras_serializable")
        return cls(fn, **config)


def _takes(fn, name: str) -> bool:
    import inspect
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


class Wrapper(Layer):
    """Keras's base class of layers that wrap another layer: it holds `layer`, builds it, and
    saves it inside its own config. A subclass writes call() (with pynn.ops and self.layer),
    as in Keras.

    Args:
        layer: the wrapped layer.

    Example:
        >>> class Twice(pynn.layers.Wrapper):
        ...     def call(self, x):
        ...         return self.layer(self.layer(x))
        >>> Twice(pynn.layers.Dense(4)).layer.units
        4
    """

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, Layer):
            raise ValueError(f"{type(self).__name__} '{self.name}': layer must be a Layer, got "
                             f"{type(layer).__name__}")
        self.layer = layer

    def build(self, input_shape=None) -> None:
        if not self.layer.built:
            self.layer.build(input_shape)
        self.built = True

    def get_config(self) -> dict:
        from ..saving.serialization import serialize_keras_object
        return {**super().get_config(), "layer": serialize_keras_object(self.layer)}

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        from ..saving.serialization import deserialize_keras_object
        config = dict(config)
        layer = deserialize_keras_object(config.pop("layer"), custom_objects)
        return cls(layer, **config)


def serialize(layer) -> dict:
    """Keras's form of a layer: {module, class_name, config, registered_name}."""
    from ..saving.serialization import serialize_keras_object
    return serialize_keras_object(layer)


def deserialize(config: dict, custom_objects: dict | None = None):
    """The layer `serialize` described (pynn's classes, registered ones or custom_objects;
    nothing is imported or evaluated)."""
    from ..saving.serialization import deserialize_keras_object
    return deserialize_keras_object(config, custom_objects, kind="layer")
