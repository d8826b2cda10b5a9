"""MultiHeadAttention, as Keras 3 defines it: four projections (dense ops over Keras's EinsumDense
kernels) around the core's fused attention op."""

import numpy as np

from .. import constraints, initializers, regularizers
from ..utils.shape_utils import shape_str
from .base import Layer


def _positive_int(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, int) and v > 0


class MultiHeadAttention(Layer):
    """Multi-head attention (Vaswani et al., 2017), Keras 3's layer.

    Each head projects the query, key and value (`query/kernel` (dim, num_heads, key_dim), ...),
    computes `softmax(q k^T / sqrt(key_dim))` over the keys (masked where `attention_mask` is 0
    and, with `use_causal_mask`, above the diagonal), applies dropout to it in training, and
    takes the weighted sum of the values; `attention_output` projects the heads back to the
    query's last axis (or `output_shape`). A query row whose keys are all masked attends
    uniformly to every key, as in Keras.

    Called as `mha(query, value, key=None, attention_mask=None, return_attention_scores=False,
    use_causal_mask=False)`: query (batch, Tq, dim), value (batch, Tk, dim_v), key (batch, Tk,
    dim_k) (the value when None), attention_mask (batch, Tq, Tk) of 0/1 (int32, float32 or
    bool): a second model `Input` of shape (Tq, Tk), or an array when called on data. With
    return_attention_scores, a tuple (output, scores): the probabilities of every head before
    dropout, (batch, num_heads, Tq, Tk), which gradients flow through like the output's.

    Args:
        num_heads: number of attention heads.
        key_dim: size of each head for query and key.
        value_dim: size of each head for value (key_dim when None).
        dropout: dropout rate on the attention probabilities.
        use_bias: whether the projections have biases.
        output_shape: the size of the output's last axis (the query's when None).
        attention_axes: only None (attention over the steps axis) is supported.
        kernel_initializer, bias_initializer: initializers ('glorot_uniform', 'zeros').
        kernel_regularizer, bias_regularizer: L1/L2 penalties on every projection.

    Example:
        >>> x = pynn.Input((64, 128))
        >>> y = pynn.layers.MultiHeadAttention(4, 32)(x, x, use_causal_mask=True)
        >>> y.shape
        (None, 64, 128)
    """

    _call_tensors = ("query", "value", "key", "attention_mask")
    _call_positional = 2

    def __init__(self, num_heads: int, key_dim: int, value_dim: int | None = None,
                 dropout: float = 0.0, use_bias: bool = True, output_shape=None,
                 attention_axes=None, flash_attention=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        who = f"MultiHeadAttention '{self.name}'"
        if not _positive_int(num_heads):
            raise ValueError(f"{who}: num_heads must be a positive int, got {num_heads!r}")
        if not _positive_int(key_dim):
            raise ValueError(f"{who}: key_dim must be a positive int, got {key_dim!r}")
        if value_dim is not None and not _positive_int(value_dim):
            raise ValueError(f"{who}: value_dim must be a positive int or None, got "
                             f"{value_dim!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) \
                or not 0.0 <= dropout < 1.0:
            raise ValueError(f"{who}: dropout must be in [0, 1), got {dropout!r}")
        if isinstance(output_shape, (list, tuple)):
            if len(output_shape) != 1:
                raise ValueError(f"{who}: output_shape must be an int (or a 1-tuple), got "
                                 f"{output_shape!r}")
            output_shape = output_shape[0]
        if output_shape is not None and not _positive_int(output_shape):
            raise ValueError(f"{who}: output_shape must be a positive int, got "
                             f"{output_shape!r}")
        if attention_axes is not None and attention_axes not in (1, -2, [1], (1,), [-2], (-2,)):
            raise ValueError(f"{who}: only attention_axes=None (attention over the steps of "
                             f"(batch, steps, features) inputs) is supported, got "
                             f"{attention_axes!r}")
        if activity_regularizer is not None:
            raise ValueError(f"{who}: activity_regularizer is not supported")
        self.num_heads, self.key_dim = num_heads, key_dim
        self.value_dim = value_dim if value_dim is not None else key_dim
        self._value_dim_arg = value_dim
        self.dropout = float(dropout)
        self.use_bias = bool(use_bias)
        self._output_shape = output_shape
        self.attention_axes = None
        self.flash_attention = flash_attention
        self.seed = seed
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)

    def _who(self) -> str:
        return f"MultiHeadAttention '{self.name}'"

    # -- calls ----------------------------------------------------------------------------------
    def _bind_call(self, query=None, value=None, key=None, query_mask=None, value_mask=None,
                   key_mask=None, attention_mask=None, return_attention_scores=False,
                   use_causal_mask=False):
        if query is None or value is None:
            raise ValueError(f"{self._who()}: call it as mha(query, value, key=None, "
                             "attention_mask=None, use_causal_mask=False): query and value are "
                             "required")
        if query_mask is not None or value_mask is not None or key_mask is not None:
            raise ValueError(f"{self._who()}: query_mask, value_mask and key_mask are not "
                             "supported (pynn has no Keras masks); pass attention_mask")
        if not isinstance(return_attention_scores, bool):
            raise ValueError(f"{self._who()}: return_attention_scores must be True or False, "
                             f"got {return_attention_scores!r}")
        if not isinstance(use_causal_mask, bool):
            raise ValueError(f"{self._who()}: use_causal_mask must be True or False, got "
                             f"{use_causal_mask!r}")
        tensors = {"query": query, "value": value, "key": key, "attention_mask": attention_mask}
        options = {"use_causal_mask": True} if use_causal_mask else {}
        if return_attention_scores:
            options["return_attention_scores"] = True
        return tensors, options

    def compute_call_output_shape(self, shapes: dict, dtypes: dict, options: dict):
        q, v = shapes["query"], shapes["value"]
        k = shapes.get("key", v)
        for name, s in (("query", q), ("value", v), ("key", k)):
            if len(s) != 3:
                raise ValueError(f"{self._who()}: {name} must be (batch, steps, features), got "
                                 f"{shape_str(s)}")
            if s[-1] is None:  # steps may be None: known from the data at each run
                raise ValueError(f"{self._who()}: {name} needs known features, got "
                                 f"{shape_str(s)}")
            if dtypes.get(name, "float32") != "float32":
                raise ValueError(f"{self._who()}: {name} must be float32, got "
                                 f"{dtypes[name]}")
        if k[1] != v[1] and None not in (k[1], v[1]):
            raise ValueError(f"{self._who()}: key and value need the same number of steps, got "
                             f"key {shape_str(k)} and value {shape_str(v)}")
        if self.built:
            want = {"query": self.query_kernel_dim, "value": self.value_kernel_dim,
                    "key": self.key_kernel_dim}
            for name, s in (("query", q), ("value", v), ("key", k)):
                if s[-1] != want[name]:
                    raise ValueError(f"{self._who()}: was built for a {name} of {want[name]} "
                                     f"features, got {shape_str(s)}")
        m = shapes.get("attention_mask")
        if m is not None and (len(m) != 3 or any(
                a is not None and b is not None and a != b
                for a, b in zip(m[1:], (q[1], k[1])))):
            raise ValueError(f"{self._who()}: attention_mask must be (batch, {q[1]}, {k[1]}) "
                             f"for a query of {q[1]} steps and a value of {k[1]}, got "
                             f"{shape_str(m)}")
        out = (q[0], q[1], self._output_shape or q[-1])
        if options.get("return_attention_scores"):  # and the scores (batch, heads, Tq, Tk)
            return [out, (q[0], self.num_heads, q[1], k[1])]
        return out

    def build_call(self, shapes: dict) -> None:
        self.build(shapes["query"], shapes["value"], shapes.get("key"))

    def build(self, query_shape, value_shape=None, key_shape=None) -> None:
        """Declares the projections' weights, in Keras's order (query, key, value, output)."""
        if value_shape is None:
            raise ValueError(f"{self._who()}: build needs the query's and the value's shapes "
                             "(MultiHeadAttention takes two inputs: use the functional API)")
        key_shape = key_shape if key_shape is not None else value_shape
        self.query_kernel_dim = query_shape[-1]
        self.value_kernel_dim = value_shape[-1]
        self.key_kernel_dim = key_shape[-1]
        H, kd, vd = self.num_heads, self.key_dim, self.value_dim
        out = self._output_shape or query_shape[-1]
        for sub, dim, head in (("query", query_shape[-1], kd), ("key", key_shape[-1], kd),
                               ("value", value_shape[-1], vd)):
            self.add_weight((dim, H, head), self.kernel_initializer,
                            regularizer=self.kernel_regularizer,
                            constraint=self.kernel_constraint, name=f"{sub}/kernel")
            if self.use_bias:
                self.add_weight((H, head), self.bias_initializer,
                                regularizer=self.bias_regularizer,
                                constraint=self.bias_constraint, name=f"{sub}/bias")
        self.add_weight((H, vd, out), self.kernel_initializer,
                        regularizer=self.kernel_regularizer,
                        constraint=self.kernel_constraint, name="attention_output/kernel")
        if self.use_bias:
            self.add_weight((out,), self.bias_initializer, regularizer=self.bias_regularizer,
                            constraint=self.bias_constraint, name="attention_output/bias")
        self.built = True

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        return tuple(query_shape[:-1]) + (self._output_shape or query_shape[-1],)

    def lower(self, core, node):
        raise ValueError(f"{self._who()}: takes a query and a value (and optionally a key and an "
                         "attention_mask): call it in the functional API, "
                         "mha(query, value, ...), not in a Sequential stack")

    supports_masking = True  # the query's mask goes on to the output, as Keras's

    def _attention_mask(self, core, given: dict, masks: dict):
        """The attention_mask node (Tq, Tk) with the inputs' masks folded in as Keras's
        _compute_attention_mask does: a masked query step attends nowhere (its softmax is
        uniform), a masked value or key step is attended by none. None when there is none."""
        from .masking import _binary, expand, not_equal
        qm, vm = masks.get("query"), masks.get("value")
        km = masks.get("key") if "key" in given else None
        given_mask = given.get("attention_mask")
        if qm is None and vm is None and km is None:
            return given_mask
        tq = core.node_shape(given["query"])[0]
        tk = core.node_shape(given["value"])[0]
        auto = core.add_constant(np.ones((tq, tk), np.float32))
        if qm is not None:
            auto = _binary(core, "multiply", auto, expand(core, qm, -1))
        for m in (vm, km):
            if m is not None:
                auto = _binary(core, "multiply", auto, expand(core, m, 0))
        if given_mask is None:
            return auto
        if core.node_dtype(given_mask) != "float32":
            given_mask, _ = core.add_node("cast", (given_mask,), (), (0,))
        keep = not_equal(core, given_mask, 0.0)
        return _binary(core, "multiply", auto, keep)

    def _lower_spec_mask(self, core, ins, out, in_masks, spec):
        qm = dict(zip(spec["names"], in_masks)).get("query")
        return [qm, None] if isinstance(out, list) else qm

    def lower_call(self, core, nodes: list, spec: dict, masks=None) -> int:
        given = dict(zip(spec["names"], nodes))
        q, v = given["query"], given["value"]
        k = given.get("key", v)
        per = 2 if self.use_bias else 1
        ids = list(self._var_ids)
        wq, wk, wv, wo = (tuple(ids[i * per:(i + 1) * per]) for i in range(4))
        qn, _ = core.add_node("dense", (q,), wq)
        kn, _ = core.add_node("dense", (k,), wk)
        vn, _ = core.add_node("dense", (v,), wv)
        mask = self._attention_mask(core, given, dict(zip(spec["names"], masks or [])))
        ins = (qn, kn, vn) + ((mask,) if mask is not None else ())
        causal = int(spec["options"].get("use_causal_mask", False))
        attrs = (self.num_heads, self.key_dim, self.value_dim, causal)
        an, _ = core.add_node("attention", ins, (), attrs, (self.dropout,))
        out, _ = core.add_node("dense", (an,), wo, (0, 2))
        if not spec["options"].get("return_attention_scores"):
            return out
        # the probabilities before dropout, as Keras returns them: (heads, Tq, Tk) per sample
        scores, _ = core.add_node("attention_scores", (qn, kn) + ins[3:], (), attrs)
        return [out, scores]

    def get_config(self) -> dict:
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "value_dim": self.value_dim, "dropout": self.dropout, "use_bias": self.use_bias,
                "output_shape": self._output_shape, "attention_axes": self.attention_axes,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint),
                "seed": self.seed}


class Attention(Layer):
    """Dot-product attention (Luong-style), Keras's Attention layer: called on [query, value] or
    [query, value, key] (key defaults to value), (batch, Tq, dim) and (batch, Tv, dim), it
    returns softmax(scores) value, (batch, Tq, dim). Written with pynn.ops and traced into the
    core graph.

    Args:
        use_scale: learn a scalar "scale" that multiplies the scores (initialised to 1).
        score_mode: "dot" (query key^T) or "concat" (sum(tanh(query + key)), with a learned
            scalar "concat_score_weight").
        dropout: the rate of dropout on the attention weights, in training.
        seed: the dropout's seed.

    Call arguments: return_attention_scores (also return the weights, (batch, Tq, Tv)),
    use_causal_mask (query i attends to keys 0..i), training.

    Example:
        >>> q, v = pynn.Input((4, 8)), pynn.Input((6, 8))
        >>> pynn.layers.Attention()([q, v]).shape
        (None, 4, 8)
    """

    def __init__(self, use_scale: bool = False, score_mode: str = "dot", dropout: float = 0.0,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        if score_mode not in ("dot", "concat"):
            raise ValueError(f"{type(self).__name__} '{self.name}': score_mode must be 'dot' or "
                             f"'concat', got {score_mode!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"{type(self).__name__} '{self.name}': dropout must be in [0, 1), "
                             f"got {dropout!r}")
        self.use_scale, self.score_mode = bool(use_scale), score_mode
        self.dropout, self.seed = float(dropout), seed

    def _inputs(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) not in (2, 3):
            raise ValueError(f"{type(self).__name__} '{self.name}': call it on [query, value] or "
                             f"[query, value, key], got {type(inputs).__name__}")
        q, v = inputs[0], inputs[1]
        return q, v, inputs[2] if len(inputs) == 3 else v

    def build(self, input_shape) -> None:
        if self.use_scale:
            self.scale = self.add_weight((), "ones", name="scale")
        if self.score_mode == "concat":
            self.concat_score_weight = self.add_weight((), "ones", name="concat_score_weight")

    def _scores(self, q, k):
        from .. import ops
        if self.score_mode == "dot":
            scores = ops.matmul(q, ops.transpose(k, (0, 2, 1)))
            return scores * self.scale if self.use_scale else scores
        s = ops.expand_dims(q, -2) + ops.expand_dims(k, -3)  # (batch, Tq, Tv, dim)
        if self.use_scale:
            s = s * self.scale
        return self.concat_score_weight * ops.sum(ops.tanh(s), axis=-1)

    supports_masking = True  # the query's mask goes on to the output, as Keras's

    def compute_mask(self, inputs, previous_mask=None):
        if isinstance(previous_mask, list):
            return previous_mask[0]
        return previous_mask

    def call(self, inputs, mask=None, return_attention_scores: bool = False, training=None,
             use_causal_mask: bool = False):
        from .. import ops, random
        q, v, k = self._inputs(inputs)
        if mask is not None and (not isinstance(mask, (list, tuple)) or len(mask) < 2):
            raise ValueError(f"{type(self).__name__} '{self.name}': mask must be a list "
                             f"[query_mask, value_mask], got {mask!r}")
        q_mask, v_mask = (mask[0], mask[1]) if mask is not None else (None, None)
        scores = self._scores(q, k)
        # Keras subtracts 1e9 from the scores of the keys a query may not see: later ones
        # (use_causal_mask) and masked value steps
        hidden = None
        if use_causal_mask:
            ones = ops.ones_like(scores)
            hidden = ops.cast(ops.greater(ops.cumsum(ones, axis=-1), ops.cumsum(ones, axis=-2)),
                              "float32")
        if v_mask is not None:
            padded = 1.0 - ops.expand_dims(ops.cast(v_mask, "float32"), -2)  # (batch, 1, Tv)
            hidden = padded if hidden is None else ops.maximum(hidden, padded)
        if hidden is not None:
            scores = scores - 1.0e9 * hidden
        weights = ops.softmax(scores, axis=-1)
        dropped = weights
        if training and self.dropout > 0:
            dropped = random.dropout(weights, self.dropout, seed=self.seed)
        out = ops.matmul(dropped, v)
        if q_mask is not None:  # masked query steps output zeros
            out = out * ops.expand_dims(ops.cast(q_mask, "float32"), -1)
        return (out, weights) if return_attention_scores else out

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0][:-1]) + (input_shape[1][-1],)

    def get_config(self) -> dict:
        return {**super().get_config(), "use_scale": self.use_scale,
                "score_mode": self.score_mode, "dropout": self.dropout, "seed": self.seed}


class AdditiveAttention(Attention):
    """Additive (Bahdanau-style) attention, Keras's AdditiveAttention layer: the scores are
    sum(scale * tanh(query + key)) over the features, with a learned "scale" of one value per
    feature (glorot_uniform) when use_scale (the default). Called as Attention is.

    Example:
        >>> q, v = pynn.Input((4, 8)), pynn.Input((6, 8))
        >>> pynn.layers.AdditiveAttention()([q, v]).shape
        (None, 4, 8)
    """

    def __init__(self, use_scale: bool = True, dropout: float = 0.0, seed=None, **kwargs):
        super().__init__(use_scale=use_scale, dropout=dropout, seed=seed, **kwargs)

    def build(self, input_shape) -> None:
        if self.use_scale:
            self.scale = self.add_weight((input_shape[0][-1],), "glorot_uniform", name="scale")

    def _scores(self, q, k):
        from .. import ops
        s = ops.tanh(ops.expand_dims(q, -2) + ops.expand_dims(k, -3))  # (batch, Tq, Tv, dim)
        return ops.sum(s * self.scale if self.use_scale else s, axis=-1)

    def get_config(self) -> dict:
        config = super().get_config()
        del config["score_mode"]
        return config
