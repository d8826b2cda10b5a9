"""ONNX export: a Sequential or functional model's inference graph written as an ONNX model.

The graph is written by hand from the model's layer calls and weights with the `onnx` package
(onnx.helper, onnx.numpy_helper); nothing is traced through another framework. The batch axis
of every input is dynamic ('batch'). Layers run as `predict` runs them: Dropout and the noise
layers are identities, BatchNormalization uses its moving statistics.

Convolutions and pools read pynn's channels-last images; ONNX's Conv and pools take channels
first, so the image is transposed to (N, C, ...) around each of them (a layer built with
data_format='channels_first' already has that layout and is written without transposes).

MultiHeadAttention is written with MatMul, Reshape, Transpose and Softmax; its causal mask is
built for the steps of each run (Range, Greater), and masked logits become -1e9 (Where), as
Keras adds -1e9, so a row with every key masked attends uniformly as in pynn's core.
return_attention_scores=True and attention_axes other than the steps axis are refused.

A layer, or an argument of a layer, that the exporter does not cover raises
NotImplementedError naming the layer's class and the argument, before any file is written.
"""

from __future__ import annotations

import math

import numpy as np

OPSET = 17  # LayerNormalization is in the default domain from opset 17
_KERAS_SELU_ALPHA = 1.6732632423543772848170429916717
_KERAS_SELU_SCALE = 1.0507009873554804934193349852946
_KNOWN_KWARGS = ("opset_version",)


def _onnx():
    try:
        import onnx
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("exporting to ONNX needs the `onnx` package: pip install onnx "
                          "(or pip install 'pynn[onnx]')") from e
    return onnx


class _Unsupported(NotImplementedError):
    pass


def _refuse(layer, what: str):
    raise _Unsupported(f"ONNX export: {type(layer).__name__} '{layer.name}': {what} is not "
                       "supported")


class _Graph:
    """The nodes and initializers of the ONNX graph being written, with unique names."""

    def __init__(self):
        self.onnx = _onnx()
        self.nodes: list = []
        self.inits: list = []
        self._names: dict[str, int] = {}

    def name(self, hint: str) -> str:
        hint = hint.replace("/", "_") or "t"
        n = self._names.get(hint, 0)
        self._names[hint] = n + 1
        return hint if n == 0 else f"{hint}_{n}"

    def const(self, hint: str, value, dtype=np.float32) -> str:
        name = self.name(hint)
        self.inits.append(self.onnx.numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def ints(self, hint: str, values) -> str:
        return self.const(hint, np.asarray(values, np.int64).reshape(-1), np.int64)

    def op(self, op_type: str, inputs: list, hint: str, n_out: int = 1, **attrs):
        outs = [self.name(f"{hint}_{op_type.lower()}" if n_out == 1 else f"{hint}_out{i}")
                for i in range(n_out)]
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), outs,
                                                     name=self.name(f"{hint}/{op_type}"),
                                                     **attrs))
        return outs[0] if n_out == 1 else outs


# -- activations ---------------------------------------------------------------------------------
def _activation(g: _Graph, spec, x: str, hint: str, layer) -> str:
    """`spec` (activations.ActivationSpec) applied to x."""
    name = spec.name
    if name == "linear":
        return x
    if name == "relu":
        return g.op("Relu", [x], hint)
    if name == "sigmoid":
        return g.op("Sigmoid", [x], hint)
    if name == "tanh":
        return g.op("Tanh", [x], hint)
    if name == "softmax":
        return g.op("Softmax", [x], hint, axis=-1)
    if name == "leaky_relu":
        return g.op("LeakyRelu", [x], hint, alpha=float(spec.alpha))
    if name == "elu":
        return g.op("Elu", [x], hint, alpha=float(spec.alpha))
    if name == "selu":
        return g.op("Selu", [x], hint, alpha=_KERAS_SELU_ALPHA, gamma=_KERAS_SELU_SCALE)
    if name == "softplus":
        return g.op("Softplus", [x], hint)
    if name in ("swish", "silu"):
        return g.op("Mul", [x, g.op("Sigmoid", [x], hint)], hint)
    if name == "gelu":
        half = g.const(f"{hint}_half", 0.5)
        one = g.const(f"{hint}_one", 1.0)
        if spec.approximate:  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
            cube = g.op("Mul", [g.op("Mul", [x, x], hint), x], hint)
            inner = g.op("Add", [x, g.op("Mul", [cube, g.const(f"{hint}_c", 0.044715)], hint)],
                         hint)
            inner = g.op("Mul", [inner, g.const(f"{hint}_k", math.sqrt(2.0 / math.pi))], hint)
            t = g.op("Tanh", [inner], hint)
        else:  # 0.5 x (1 + erf(x / sqrt 2))
            t = g.op("Erf", [g.op("Mul", [x, g.const(f"{hint}_r", 1.0 / math.sqrt(2.0))],
                                  hint)], hint)
        return g.op("Mul", [g.op("Mul", [x, half], hint), g.op("Add", [t, one], hint)], hint)
    _refuse(layer, f"activation '{name}'")


def _act_of(layer):
    from .. import activations
    return activations.spec(layer.activation)


def _rnn_activation(layer, fn, what: str) -> str:
    from .. import activations
    name = activations.get(fn).__name__
    table = {"tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu"}
    if name not in table:
        _refuse(layer, f"{what}='{name}'")
    return table[name]


# -- weights -------------------------------------------------------------------------------------
def _weights(layer) -> dict:
    """{short name: current value} of a layer's weights."""
    return {w.name: np.asarray(v, np.float32)
            for w, v in zip(layer.weights, layer.get_weights())}


# -- the layers ----------------------------------------------------------------------------------
def _dense(g, layer, ins, in_shapes, t):
    w = _weights(layer)
    h = layer.name
    y = g.op("MatMul", [ins[0], g.const(f"{h}_kernel", w["kernel"])], h)
    if layer.use_bias:
        y = g.op("Add", [y, g.const(f"{h}_bias", w["bias"])], h)
    return [_activation(g, _act_of(layer), y, h, layer)]


def _activation_layer(g, layer, ins, in_shapes, t):
    from .. import activations
    spec = layer._spec() if hasattr(layer, "_spec") else activations.spec(layer.activation)
    out = _activation(g, spec, ins[0], layer.name, layer)
    return [out if out != ins[0] else g.op("Identity", [out], layer.name)]


def _identity(g, layer, ins, in_shapes, t):
    return [g.op("Identity", [ins[0]], layer.name)]


def _flatten(g, layer, ins, in_shapes, t):
    # as pynn runs it: the sample's values in their order, whatever data_format says
    return [g.op("Reshape", [ins[0], g.ints(f"{layer.name}_shape", [0, -1])], layer.name)]


def _reshape(g, layer, ins, in_shapes, t):
    target = layer._resolve(tuple(in_shapes[0]))
    return [g.op("Reshape", [ins[0], g.ints(f"{layer.name}_shape", [0, *target])], layer.name)]


def _to_first(g, x, rank_sp: int, hint):
    return g.op("Transpose", [x], hint, perm=[0, rank_sp + 1, *range(1, rank_sp + 1)])


def _to_last(g, x, rank_sp: int, hint):
    return g.op("Transpose", [x], hint, perm=[0, *range(2, rank_sp + 2), 1])


def _same_pads(sizes, windows, strides, dilations):
    """ONNX pads [begins..., ends...] of TensorFlow's 'same' (the extra one after), or None
    when a spatial size is unknown."""
    from ..layers.convolutional import same_pads
    if any(s is None for s in sizes):
        return None
    pairs = [same_pads(s, k, st, d) for s, k, st, d in zip(sizes, windows, strides, dilations)]
    return [p[0] for p in pairs] + [p[1] for p in pairs]


def _spatial(layer, shape) -> list:
    """The spatial sizes of an input of `shape` (batch included) in the layer's layout."""
    return list(shape[2:] if layer.data_format == "channels_first" else shape[1:-1])


def _conv(g, layer, ins, in_shapes, t):
    h, r = layer.name, layer.rank
    w = _weights(layer)
    first = layer.data_format == "channels_first"
    x = ins[0] if first else _to_first(g, ins[0], r, h)
    kernel = w["kernel"]  # (*k, cin/groups, filters) -> (filters, cin/groups, *k)
    kernel = np.transpose(kernel, (r + 1, r, *range(r)))
    attrs = dict(kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
                 dilations=list(layer.dilation_rate), group=int(layer.groups))
    if layer.padding == "same":
        pads = _same_pads(_spatial(layer, in_shapes[0]), layer.kernel_size, layer.strides,
                          layer.dilation_rate)
        if pads is None:
            attrs["auto_pad"] = "SAME_UPPER"
        else:
            attrs["pads"] = pads
    elif layer.padding == "causal":
        attrs["pads"] = [(layer.kernel_size[0] - 1) * layer.dilation_rate[0], 0]
    else:
        attrs["pads"] = [0] * (2 * r)
    inputs = [x, g.const(f"{h}_kernel", kernel)]
    if layer.use_bias:
        inputs.append(g.const(f"{h}_bias", w["bias"]))
    y = g.op("Conv", inputs, h, **attrs)
    y = _activation(g, _act_of(layer), y, h, layer)  # elementwise: either layout
    return [y if first else _to_last(g, y, r, h)]


def _pool(g, layer, ins, in_shapes, t):
    h, r = layer.name, layer.rank
    first = layer.data_format == "channels_first"
    x = ins[0] if first else _to_first(g, ins[0], r, h)
    attrs = dict(kernel_shape=list(layer.pool_size), strides=list(layer.strides))
    if layer.padding == "same":
        pads = _same_pads(_spatial(layer, in_shapes[0]), layer.pool_size, layer.strides,
                          [1] * r)
        if pads is None:
            attrs["auto_pad"] = "SAME_UPPER"
        else:
            attrs["pads"] = pads
    else:
        attrs["pads"] = [0] * (2 * r)
    if "Average" in type(layer).__name__:
        y = g.op("AveragePool", [x], h, count_include_pad=0, **attrs)  # Keras: inside only
    else:
        y = g.op("MaxPool", [x], h, **attrs)
    return [y if first else _to_last(g, y, r, h)]


def _global_pool(g, layer, ins, in_shapes, t):
    h, r = layer.name, layer.rank
    first = layer.data_format == "channels_first"
    axes = list(range(2, r + 2)) if first else list(range(1, r + 1))
    op = "ReduceMean" if "Average" in type(layer).__name__ else "ReduceMax"
    return [g.op(op, [ins[0]], h, axes=axes, keepdims=int(layer.keepdims))]


def _batch_norm(g, layer, ins, in_shapes, t):
    h = layer.name
    w = _weights(layer)
    rank = len(in_shapes[0])
    axis = rank + layer._from_end
    c = w["moving_mean"].shape[0]
    gamma = w["gamma"] if layer.scale else np.ones(c, np.float32)
    beta = w["beta"] if layer.center else np.zeros(c, np.float32)
    inv = (1.0 / np.sqrt(w["moving_variance"].astype(np.float64) + layer.epsilon))
    a = gamma.astype(np.float64) * inv
    b = beta.astype(np.float64) - w["moving_mean"].astype(np.float64) * a
    shape = [c] + [1] * (rank - 1 - axis)
    y = g.op("Mul", [ins[0], g.const(f"{h}_scale", a.reshape(shape))], h)
    return [g.op("Add", [y, g.const(f"{h}_shift", b.reshape(shape))], h)]


def _layer_norm(g, layer, ins, in_shapes, t):
    h = layer.name
    w = _weights(layer)
    c = in_shapes[0][-1]
    if layer.rms_scaling:  # Keras's: gamma * x / sqrt(var(x) + eps), x not centred
        mean = g.op("ReduceMean", [ins[0]], h, axes=[-1], keepdims=1)
        d = g.op("Sub", [ins[0], mean], h)
        var = g.op("ReduceMean", [g.op("Mul", [d, d], h)], h, axes=[-1], keepdims=1)
        rms = g.op("Sqrt", [g.op("Add", [var, g.const(f"{h}_eps", layer.epsilon)], h)], h)
        y = g.op("Div", [ins[0], rms], h)
        return [g.op("Mul", [y, g.const(f"{h}_gamma", w["gamma"])], h)]
    gamma = w["gamma"] if layer.scale else np.ones(c, np.float32)
    inputs = [ins[0], g.const(f"{h}_gamma", gamma)]
    if layer.center:
        inputs.append(g.const(f"{h}_beta", w["beta"]))
    return [g.op("LayerNormalization", inputs, h, axis=-1, epsilon=float(layer.epsilon))]


def _embedding(g, layer, ins, in_shapes, t, in_dtypes=None):
    h = layer.name
    if layer.mask_zero:
        _refuse(layer, "mask_zero=True (masks are not exported)")
    idx = g.op("Cast", [ins[0]], h, to=g.onnx.TensorProto.INT64)
    table = _weights(layer)["embeddings"]
    return [g.op("Gather", [g.const(f"{h}_embeddings", table), idx], h, axis=0)]


def _position_embedding(g, layer, ins, in_shapes, t):
    """The table's rows 0..steps-1, broadcast to the input's shape."""
    h = layer.name
    table = g.const(f"{h}_embeddings", _weights(layer)["embeddings"])
    shape = g.op("Shape", [ins[0]], h)
    steps = g.op("Gather", [shape, g.ints(f"{h}_axis", [len(in_shapes[0]) - 2])], h, axis=0)
    rows = g.op("Slice", [table, g.ints(f"{h}_zero", [0]), steps, g.ints(f"{h}_ax0", [0])], h)
    return [g.op("Expand", [rows, shape], h)]


def _mha_project(g, h, x, kernel, bias, heads: int, size: int):
    """x (B, T, d) through an EinsumDense kernel (d, heads, size) -> (B, heads, T, size)."""
    y = g.op("MatMul", [x, g.const(f"{h}_kernel", kernel.reshape(kernel.shape[0], -1))], h)
    if bias is not None:
        y = g.op("Add", [y, g.const(f"{h}_bias", bias.reshape(-1))], h)
    y = g.op("Reshape", [y, g.ints(f"{h}_split", [0, 0, heads, size])], h)
    return g.op("Transpose", [y], h, perm=[0, 2, 1, 3])


def _multi_head_attention(g, layer, ins, in_shapes, t):
    """Keras 3's MultiHeadAttention at inference (dropout off): the projections as MatMuls,
    softmax(q k^T / sqrt(key_dim)) per head with masked logits set to -1e9 (as Keras adds
    -1e9: a query row with every key masked attends uniformly, as pynn's core does)."""
    h = layer.name
    spec = t._call_spec
    if spec is None or "trace" in spec:
        _refuse(layer, "a call without named query and value tensors")
    options = spec["options"]
    if options.get("return_attention_scores"):
        _refuse(layer, "return_attention_scores=True")
    unknown = [k for k in options if k not in ("use_causal_mask", "return_attention_scores")]
    if unknown:
        _refuse(layer, f"the call options {unknown}")
    if layer.attention_axes not in (None, 1, -2, (1,), [1], (-2,), [-2]):
        _refuse(layer, f"attention_axes={layer.attention_axes!r}")
    given = dict(zip(spec["names"], ins))
    shapes = dict(zip(spec["names"], in_shapes))
    if any(len(s) != 3 for s in shapes.values() if s is not None):
        _refuse(layer, "inputs other than (batch, steps, features)")
    q, v = given["query"], given["value"]
    k = given.get("key", v)
    H, kd, vd = layer.num_heads, layer.key_dim, layer.value_dim
    ws = [np.asarray(w, np.float32) for w in layer.get_weights()]
    per = 2 if layer.use_bias else 1
    (wq, wk, wv, wo) = (ws[i * per:(i + 1) * per] for i in range(4))

    def b(w):
        return w[1] if layer.use_bias else None
    qh = _mha_project(g, f"{h}_query", q, wq[0], b(wq), H, kd)         # (B, H, Tq, kd)
    kh = _mha_project(g, f"{h}_key", k, wk[0], b(wk), H, kd)           # (B, H, Tk, kd)
    vh = _mha_project(g, f"{h}_value", v, wv[0], b(wv), H, vd)         # (B, H, Tk, vd)
    qh = g.op("Mul", [qh, g.const(f"{h}_scale", 1.0 / math.sqrt(kd))], h)
    kt = g.op("Transpose", [kh], h, perm=[0, 1, 3, 2])
    s = g.op("MatMul", [qh, kt], h)                                    # (B, H, Tq, Tk)
    hidden = None                                                      # bool, True: masked
    if options.get("use_causal_mask"):
        zero, one = (g.const(f"{h}_i0", 0, np.int64), g.const(f"{h}_i1", 1, np.int64))
        tq = g.op("Gather", [g.op("Shape", [q], h), g.const(f"{h}_ax1", 1, np.int64)], h, axis=0)
        tk = g.op("Gather", [g.op("Shape", [k], h), g.const(f"{h}_ax1k", 1, np.int64)], h,
                  axis=0)
        rows = g.op("Unsqueeze", [g.op("Range", [zero, tq, one], h), g.ints(f"{h}_last", [1])],
                    h)                                                 # (Tq, 1)
        cols = g.op("Range", [zero, tk, one], h)                       # (Tk,)
        hidden = g.op("Greater", [cols, rows], h)                      # (Tq, Tk): j > i
    if "attention_mask" in given:
        m = g.op("Cast", [given["attention_mask"]], h, to=g.onnx.TensorProto.FLOAT)
        m = g.op("Equal", [m, g.const(f"{h}_mzero", 0.0)], h)
        m = g.op("Unsqueeze", [m, g.ints(f"{h}_head_axis", [1])], h)  # (B, 1, Tq, Tk)
        hidden = m if hidden is None else g.op("Or", [hidden, m], h)
    if hidden is not None:
        s = g.op("Where", [hidden, g.const(f"{h}_neg", -1e9), s], h)
    p = g.op("Softmax", [s], h, axis=-1)
    o = g.op("MatMul", [p, vh], h)                                     # (B, H, Tq, vd)
    o = g.op("Transpose", [o], h, perm=[0, 2, 1, 3])
    o = g.op("Reshape", [o, g.ints(f"{h}_merge", [0, 0, H * vd])], h)
    kernel = wo[0]
    y = g.op("MatMul", [o, g.const(f"{h}_out_kernel", kernel.reshape(H * vd, -1))], h)
    if layer.use_bias:
        y = g.op("Add", [y, g.const(f"{h}_out_bias", wo[1])], h)
    return [y]


_MERGE_OPS = {"Add": "Sum", "Multiply": None, "Average": "Mean", "Maximum": "Max",
              "Minimum": "Min"}


def _merge(g, layer, ins, in_shapes, t):
    h, kind = layer.name, type(layer).__name__
    if kind == "Subtract":
        return [g.op("Sub", ins, h)]
    if kind == "Multiply":
        y = ins[0]
        for x in ins[1:]:
            y = g.op("Mul", [y, x], h)
        return [y]
    if kind == "Concatenate":
        rank = len(in_shapes[0])
        return [g.op("Concat", ins, h, axis=layer._sample_axis(rank) + 1)]
    return [g.op(_MERGE_OPS[kind], ins, h)]


# recurrent layers: Keras's gate blocks (columns of kernel) -> ONNX's order
_LSTM_ORDER = (0, 3, 1, 2)  # Keras i, f, c, o -> ONNX i, o, f, c
_GRU_ORDER = (0, 1, 2)      # Keras z, r, h == ONNX z, r, h


def _gates(a: np.ndarray, order, units: int) -> np.ndarray:
    """The gate blocks of the last axis of `a` in `order`."""
    return np.concatenate([a[..., k * units:(k + 1) * units] for k in order], axis=-1)


def _rnn(g, layer, ins, in_shapes, t):
    h, kind, u = layer.name, type(layer).__name__, layer.units
    if layer.stateful:
        _refuse(layer, "stateful=True")
    if layer.go_backwards and layer.return_sequences:
        _refuse(layer, "go_backwards=True with return_sequences=True")
    w = _weights(layer)
    op, order = {"LSTM": ("LSTM", _LSTM_ORDER), "GRU": ("GRU", _GRU_ORDER),
                 "SimpleRNN": ("RNN", (0,))}[kind]
    n = len(order)
    W = _gates(w["kernel"], order, u).T[None]            # (1, n*u, input)
    R = _gates(w["recurrent_kernel"], order, u).T[None]  # (1, n*u, u)
    attrs = {"hidden_size": u}
    if layer.go_backwards:
        attrs["direction"] = "reverse"
    act = _rnn_activation(layer, layer.activation, "activation")
    if kind == "LSTM":
        rec = _rnn_activation(layer, layer.recurrent_activation, "recurrent_activation")
        attrs["activations"] = [rec, act, act]
    elif kind == "GRU":
        rec = _rnn_activation(layer, layer.recurrent_activation, "recurrent_activation")
        attrs["activations"] = [rec, act]
        attrs["linear_before_reset"] = int(layer.reset_after)
    else:
        attrs["activations"] = [act]
    if layer.use_bias:
        b = w["bias"]
        if kind == "GRU" and layer.reset_after:  # (2, 3u): input bias, recurrent bias
            wb, rb = _gates(b[0], order, u), _gates(b[1], order, u)
        else:
            wb, rb = _gates(b, order, u), np.zeros(n * u, np.float32)
        B = np.concatenate([wb, rb])[None]
    else:
        B = np.zeros((1, 2 * n * u), np.float32)
    x = g.op("Transpose", [ins[0]], h, perm=[1, 0, 2])  # (steps, batch, features)
    inputs = [x, g.const(f"{h}_W", W), g.const(f"{h}_R", R), g.const(f"{h}_B", B)]
    n_out = 3 if kind == "LSTM" else 2
    outs = g.op(op, inputs, h, n_out=n_out, **attrs)
    if layer.return_sequences:  # Y (steps, 1, batch, u) -> (batch, steps, u)
        y = g.op("Squeeze", [outs[0], g.ints(f"{h}_axis1", [1])], h)
        y = g.op("Transpose", [y], h, perm=[1, 0, 2])
    else:
        y = g.op("Squeeze", [outs[1], g.ints(f"{h}_axis0", [0])], h)
    if not layer.return_state:
        return [y]
    states = [g.op("Squeeze", [outs[1], g.ints(f"{h}_axis0", [0])], h)]
    if kind == "LSTM":
        states.append(g.op("Squeeze", [outs[2], g.ints(f"{h}_axis0", [0])], h))
    return [y, *states]


_CONVERTERS = {
    "Dense": _dense,
    "Activation": _activation_layer, "ReLU": _activation_layer,
    "LeakyReLU": _activation_layer, "ELU": _activation_layer, "Softmax": _activation_layer,
    "Dropout": _identity, "SpatialDropout1D": _identity, "SpatialDropout2D": _identity,
    "SpatialDropout3D": _identity, "GaussianNoise": _identity, "GaussianDropout": _identity,
    "AlphaDropout": _identity, "Identity": _identity, "ActivityRegularization": _identity,
    "Flatten": _flatten, "Reshape": _reshape,
    "Conv1D": _conv, "Conv2D": _conv,
    "MaxPooling1D": _pool, "MaxPooling2D": _pool,
    "AveragePooling1D": _pool, "AveragePooling2D": _pool,
    "GlobalAveragePooling1D": _global_pool, "GlobalAveragePooling2D": _global_pool,
    "GlobalMaxPooling1D": _global_pool, "GlobalMaxPooling2D": _global_pool,
    "BatchNormalization": _batch_norm, "LayerNormalization": _layer_norm,
    "Embedding": _embedding, "PositionEmbedding": _position_embedding,
    "MultiHeadAttention": _multi_head_attention,
    "Add": _merge, "Subtract": _merge, "Multiply": _merge, "Average": _merge,
    "Maximum": _merge, "Minimum": _merge, "Concatenate": _merge,
    "LSTM": _rnn, "GRU": _rnn, "SimpleRNN": _rnn,
}


def _converter(layer):
    """The writer of `layer`: by its exact class (a subclass may compute something else)."""
    from .. import layers as L
    cls = type(layer)
    fn = _CONVERTERS.get(cls.__name__)
    if fn is None or getattr(L, cls.__name__, None) is not cls:
        raise _Unsupported(f"ONNX export: layer class {cls.__name__} ('{layer.name}') is not "
                           f"supported; supported: {', '.join(sorted(_CONVERTERS))}")
    return fn


# -- the graph -----------------------------------------------------------------------------------
def _model_graph(model):
    """(inputs, outputs, calls) of a built Sequential or functional model."""
    from ..models.functional import calls_between
    from ..models.model import Model
    if not isinstance(model, Model):
        raise TypeError(f"to_onnx: expected a pynn Model, got {type(model).__name__}")
    if not model.built:
        raise ValueError(f"Model '{model.name}' is not built: give it an Input (or call it on "
                         "data) before exporting")
    try:
        ins, outs = list(model.inputs), list(model.outputs)
    except (AttributeError, ValueError, NotImplementedError) as e:
        raise NotImplementedError(f"ONNX export: model '{model.name}' "
                                  f"({type(model).__name__}) has no graph of layer calls "
                                  f"(a subclassed model's call() is not exported): {e}") from None
    return ins, outs, calls_between(ins, outs, None)


def _emit(g: _Graph, model, values: dict, prefix: str = "") -> list:
    """Writes the calls of `model` (its inputs already in `values`, by tensor id); returns the
    names of its outputs."""
    from ..models.model import Model
    ins, outs, calls = _model_graph(model)
    for t in calls:
        layer = t._layer
        if not t._inputs:
            raise _Unsupported(f"ONNX export: '{layer.name}' ({type(layer).__name__}) reads no "
                               "input (a weight or constant read by ops) is not supported")
        srcs = [values[id(i)] for i in t._inputs]
        in_shapes = [tuple(i.shape) for i in t._inputs]
        if isinstance(layer, Model):  # a nested model: its calls, inline
            sub_ins, _, _ = _model_graph(layer)
            if len(sub_ins) != len(srcs):
                raise _Unsupported(f"ONNX export: nested model '{layer.name}' called on "
                                   f"{len(srcs)} tensors for {len(sub_ins)} inputs")
            sub_values = {id(s): v for s, v in zip(sub_ins, srcs)}
            made = _emit(g, layer, sub_values, prefix + layer.name + "/")
        else:
            if t._call_spec is not None and (_converter(layer) is not _multi_head_attention
                                             or "trace" in t._call_spec):
                _refuse(layer, "a call with keyword tensors or a traced call()")
            made = _converter(layer)(g, layer, srcs, in_shapes, t)
        sibs = t._siblings or [t]
        if len(made) != len(sibs):
            raise _Unsupported(f"ONNX export: '{layer.name}' made {len(made)} outputs, the "
                               f"model reads {len(sibs)}")
        for s, name in zip(sibs, made):
            values[id(s)] = name
    return [values[id(o)] for o in outs]


def _dims(shape, input_name: str) -> list:
    out = []
    for i, d in enumerate(shape):
        out.append(("batch" if i == 0 else f"{input_name}_dim{i}") if d is None else int(d))
    return out


def _signature_shapes(model, ins, input_signature) -> list:
    """The shape (batch axis included) each ONNX input is declared with."""
    shapes = [tuple(t.shape) for t in ins]
    if input_signature is None:
        return shapes
    sig = input_signature
    if isinstance(sig, dict):
        names = _input_names(model, ins)
        missing = [n for n in names if n not in sig]
        if missing:
            raise ValueError(f"input_signature: no entry for the inputs {missing}")
        sig = [sig[n] for n in names]
    if not isinstance(sig, (list, tuple)) or (len(ins) == 1 and len(sig) != 1 and
                                              not hasattr(sig[0], "shape") and
                                              not isinstance(sig[0], (list, tuple))):
        sig = [sig]
    if len(sig) != len(ins):
        raise ValueError(f"input_signature: {len(sig)} entries for {len(ins)} inputs")
    out = []
    for spec, have in zip(sig, shapes):
        s = tuple(getattr(spec, "shape", spec))
        if len(s) != len(have) or any(a is not None and b is not None and a != b
                                      for a, b in zip(s, have)):
            raise ValueError(f"input_signature: shape {s} does not fit the model's input "
                             f"{have}")
        out.append(tuple(b if a is None else a for a, b in zip(s, have)))
    return out


def _input_names(model, ins) -> list:
    names = list(vars(model).get("_input_names") or [])
    return names if len(names) == len(ins) else [t._layer.name for t in ins]


def _dtype_code(onnx, dtype: str) -> int:
    table = {"float32": onnx.TensorProto.FLOAT, "int32": onnx.TensorProto.INT32,
             "int64": onnx.TensorProto.INT64, "float64": onnx.TensorProto.DOUBLE}
    if str(dtype) not in table:
        raise _Unsupported(f"ONNX export: an input of dtype {dtype} is not supported")
    return table[str(dtype)]


def build_model_proto(model, input_signature=None, opset_version=None):
    """The onnx.ModelProto of `model` (nothing written)."""
    opset = OPSET if opset_version is None else int(opset_version)
    if opset < OPSET:
        raise ValueError(f"opset_version must be at least {OPSET}, got {opset_version}")
    g = _Graph()
    onnx, helper = g.onnx, g.onnx.helper
    ins, outs, _ = _model_graph(model)
    if getattr(model, "_host", None) is not None:
        raise _Unsupported("ONNX export: layers that run on the host (preprocessing such as "
                           "TextVectorization) are not supported")
    in_names = [g.name(n) for n in _input_names(model, ins)]
    shapes = _signature_shapes(model, ins, input_signature)
    values = {id(t): n for t, n in zip(ins, in_names)}
    made = _emit(g, model, values)
    out_names = list(model.output_names)
    if len(out_names) != len(outs):
        out_names = [o._layer.name for o in outs]
    graph_outputs, final = [], []
    for src, nm, o in zip(made, out_names, outs):
        name = g.name(nm)
        g.nodes.append(helper.make_node("Identity", [src], [name], name=g.name(f"{nm}/output")))
        final.append(name)
        graph_outputs.append(helper.make_tensor_value_info(
            name, onnx.TensorProto.FLOAT, _dims(o.shape, name)))
    graph_inputs = [helper.make_tensor_value_info(n, _dtype_code(onnx, t.dtype), _dims(s, n))
                    for n, t, s in zip(in_names, ins, shapes)]
    graph = helper.make_graph(g.nodes, model.name, graph_inputs, graph_outputs, g.inits)
    from .. import __version__
    proto = helper.make_model(graph, producer_name="pynn", producer_version=__version__,
                              opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = min(proto.ir_version, 8)  # what onnxruntime releases since 1.14 read
    return proto


def to_onnx(model, filepath, verbose: bool = True, input_signature=None, **kwargs) -> None:
    """Writes `model` (a built Sequential or functional model) as an ONNX file for inference,
    with a dynamic batch axis; see the module's doc for what is covered.

    Args:
        model: the model.
        filepath: where to write the .onnx file (written to a temporary file beside it and
            renamed over it).
        verbose: print where the file was written.
        input_signature: None (the model's input shapes, batch dynamic), or one shape (or an
            object with `.shape`, such as a `pynn.InputSpec`) per input, in order or as a dict
            by input name; a None in it stays dynamic.
        opset_version: the ONNX opset to declare (17, the default, or later).

    Example:
        >>> model.export("model.onnx", format="onnx")
        >>> import onnxruntime
        >>> sess = onnxruntime.InferenceSession("model.onnx")
        >>> y = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    """
    import os

    unknown = [k for k in kwargs if k not in _KNOWN_KWARGS]
    if unknown:
        raise TypeError(f"to_onnx: unexpected keyword arguments {unknown}")
    proto = build_model_proto(model, input_signature, kwargs.get("opset_version"))
    data = proto.SerializeToString()
    from ..saving.archive import _atomic_write
    _atomic_write(os.fspath(filepath), lambda f: f.write(data), True)
    if verbose:
        from ..utils import io_utils
        io_utils.print_msg(f"Saved artifact at '{os.fspath(filepath)}'.")
