"""Core layers: Dense, Activation, Embedding, PositionEmbedding."""

import numpy as np

from .. import activations, initializers, regularizers
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

    Example:
        >>> model = pynn.Sequential([pynn.Input(shape=(16,)), pynn.layers.Dense(8, "relu")])
        >>> model.output_shape
        (None, 8)
    """

    def __init__(self, units: int, activation=None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
            raise ValueError(f"Dense '{self.name}': units must be a positive int, got {units!r}")
        for arg, v in (("activity_regularizer", activity_regularizer),
                       ("kernel_constraint", kernel_constraint),
                       ("bias_constraint", bias_constraint)):
            if v is not None:
                raise ValueError(f"Dense '{self.name}': {arg} is not supported")
        self.units = units
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)

    def build(self, input_shape) -> None:
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"Dense '{self.name}': input needs a known last axis, got "
                             f"{shape_str(input_shape)}")
        self.add_weight((input_shape[-1], self.units), self.kernel_initializer,
                        regularizer=self.kernel_regularizer, name="kernel")
        if self.use_bias:
            self.add_weight((self.units,), self.bias_initializer,
                            regularizer=self.bias_regularizer, name="bias")
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
                "bias_regularizer": regularizers.serialize(self.bias_regularizer)}


class Activation(Layer):
    """Applies an activation function to its input.

    Args:
        activation: name or function of `pynn.activations`.

    Example:
        >>> layer = pynn.layers.Activation("relu")
    """

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
        mask_zero: must be False (masks are not supported).

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
        for arg, v in (("embeddings_constraint", embeddings_constraint),
                       ("lora_rank", lora_rank)):
            if v is not None:
                raise ValueError(f"{who}: {arg} is not supported")
        if mask_zero:
            raise ValueError(f"{who}: mask_zero=True is not supported: pynn has no masks yet")
        self.input_dim, self.output_dim = input_dim, output_dim
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.mask_zero = False
        self._initial_weights = weights

    def build(self, input_shape) -> None:
        self.add_weight((self.input_dim, self.output_dim), self.embeddings_initializer,
                        regularizer=self.embeddings_regularizer, name="embeddings")
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
