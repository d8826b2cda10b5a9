"""Standalone C99 export of a trained model (issue 20).

`to_c(model, "model.c")` writes one C source file and its header: the weights as `static const
float` arrays and one inference function for a single sample, depending on nothing but the C
standard library (`<math.h>`, `<string.h>`). The generated code allocates nothing: the caller
passes a workspace of `<NAME>_WORKSPACE_FLOATS` floats (static, on the stack, or its own arena).

Covered: Sequential models (and functional ones that are a single chain) of Dense, Activation
(linear relu sigmoid tanh softmax gelu elu selu leaky_relu swish/silu softplus), ReLU
(negative_slope), LeakyReLU, ELU, Softmax (last axis), Dropout and the other layers that are
identities at inference (SpatialDropout1D/2D/3D, GaussianNoise, GaussianDropout, AlphaDropout,
ActivityRegularization, Identity), Flatten, Reshape, Conv1D/Conv2D (channels_last,
valid/same/causal, strides, dilation), Max/AveragePooling1D/2D, GlobalAverage/MaxPooling1D/2D,
BatchNormalization (inference form) and LayerNormalization (last axis), Embedding (first layer),
SimpleRNN, LSTM and GRU (either reset_after). Anything else raises NotImplementedError before a
file is written.
"""

from __future__ import annotations

import os
import re

import numpy as np

from .. import activations as _activations

__all__ = ["to_c"]

_ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax", "gelu", "elu", "selu",
                "leaky_relu", "swish", "softplus")
_DEFAULT_ALPHA = {"leaky_relu": 0.2, "elu": 1.0}  # Keras's negative_slope and alpha

# One C helper per activation, applied in place to n floats (softmax: to rows of `cols` floats;
# leaky_relu and elu take their slope or alpha as a third argument).
_ACT_C = {
    "relu": "/* y = max(x, 0), NaN kept */\n"
            "static void act_relu(float *x, int n) {\n"
            "    for (int i = 0; i < n; i++) x[i] = x[i] <= 0.0f ? 0.0f : x[i];\n}\n",
    "sigmoid": "/* y = 1 / (1 + exp(-x)) */\n"
               "static void act_sigmoid(float *x, int n) {\n"
               "    for (int i = 0; i < n; i++) x[i] = 1.0f / (1.0f + expf(-x[i]));\n}\n",
    "tanh": "/* y = tanh(x) */\n"
            "static void act_tanh(float *x, int n) {\n"
            "    for (int i = 0; i < n; i++) x[i] = tanhf(x[i]);\n}\n",
    "gelu": "/* y = x/2 (1 + erf(x / sqrt(2)))  (exact GELU, Keras's default) */\n"
            "static void act_gelu(float *x, int n) {\n"
            "    for (int i = 0; i < n; i++)\n"
            "        x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));\n}\n",
    "elu": "/* y = x if x > 0 else a (exp(x) - 1) */\n"
           "static void act_elu(float *x, int n, float a) {\n"
           "    for (int i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : a * expm1f(x[i]);\n}\n",
    "selu": "/* y = s x if x > 0 else s A (exp(x) - 1),  A = 1.6732632, s = 1.0507010 */\n"
            "static void act_selu(float *x, int n) {\n"
            "    const float A = 1.67326324235437728481f, s = 1.05070098735548049342f;\n"
            "    for (int i = 0; i < n; i++)\n"
            "        x[i] = x[i] > 0.0f ? s * x[i] : s * A * expm1f(x[i]);\n"
            "}\n",
    "leaky_relu": "/* y = x if x > 0 else a x */\n"
                  "static void act_leaky_relu(float *x, int n, float a) {\n"
                  "    for (int i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : a * x[i];\n}\n",
    "swish": "/* y = x sigmoid(x) */\n"
             "static void act_swish(float *x, int n) {\n"
             "    for (int i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i]));\n}\n",
    "softplus": "/* y = log(1 + exp(x)), computed as max(x, 0) + log1p(exp(-|x|)) */\n"
                "static void act_softplus(float *x, int n) {\n"
                "    for (int i = 0; i < n; i++)\n"
                "        x[i] = (x[i] > 0.0f ? x[i] : 0.0f) + log1pf(expf(-fabsf(x[i])));\n}\n",
    "softmax": "/* each row of cols: y = exp(x - max x) / sum exp(x - max x) */\n"
               "static void act_softmax(float *x, int rows, int cols) {\n"
               "    for (int r = 0; r < rows; r++, x += cols) {\n"
               "        float m = x[0], s = 0.0f;\n"
               "        for (int i = 1; i < cols; i++) m = x[i] > m ? x[i] : m;\n"
               "        for (int i = 0; i < cols; i++) { x[i] = expf(x[i] - m); s += x[i]; }\n"
               "        for (int i = 0; i < cols; i++) x[i] /= s;\n"
               "    }\n}\n",
}


def to_c(model, filepath: str, header: str | None = None, name: str = "model") -> tuple[str, str]:
    """Writes a trained Sequential model as standalone C99: a source file and its header.

    The header declares `<NAME>_INPUT_SIZE`, `<NAME>_OUTPUT_SIZE`, `<NAME>_WORKSPACE_FLOATS` and
    `void <name>_predict(const float *input, float *output, float *workspace)`, which computes one
    sample (input and output as flat channels_last float arrays; an Embedding's indices passed as
    floats) with plain loops, no allocation and no global state, so separate workspaces make it
    safe to call from several threads (input, output and workspace must not overlap). The
    weights are `static const float` arrays printed with `%.9g`, which round-trips float32
    exactly. Build with e.g. `cc -O2 -std=c99 -c model.c` and link with `-lm`.

    Args:
        model: a built `pynn.models.Sequential` of the layers listed in this module's
            docstring, or a functional model whose layers form one chain.
        filepath: path of the C source file to write (e.g. "model.c").
        header: path of the header; by default `filepath` with its extension replaced by ".h".
        name: prefix of the C symbols (a C identifier); the macros use it in upper case.

    Returns:
        The paths written: (source, header).

    Raises:
        NotImplementedError: a layer, or a layer argument, the exporter does not cover (named),
            raised before any file is written.
        ValueError: a model that is not built, an input shape that is not fixed, or a name that is
            not a C identifier.

    Example:
        >>> pynn.export.to_c(model, "mnist.c", name="mnist")   # writes mnist.c and mnist.h
        >>> # C: float ws[MNIST_WORKSPACE_FLOATS]; mnist_predict(image, probs, ws);
    """
    from ..saving.archive import _atomic_write

    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"to_c: name must be a C identifier, got {name!r}")
    filepath = os.fspath(filepath)
    header = os.path.splitext(filepath)[0] + ".h" if header is None else os.fspath(header)
    if any(c in os.path.basename(header) for c in '"\\\n\r'):
        raise ValueError(f"to_c: the header's file name {os.path.basename(header)!r} cannot "
                         "stand in an #include line")
    source, header_text = _generate(model, name, os.path.basename(header))
    _atomic_write(header, lambda f: f.write(header_text.encode()), True)
    _atomic_write(filepath, lambda f: f.write(source.encode()), True)
    return filepath, header


# ---------------------------------------------------------------------------------------------
# generation


def _c_array(cname: str, values: np.ndarray, what: str) -> str:
    flat = np.ascontiguousarray(values, dtype=np.float32).ravel()
    if not np.all(np.isfinite(flat)):
        raise ValueError(f"to_c: {what} holds NaN or Inf; a C initializer cannot carry them")
    items = [_c_float(v) for v in flat]
    lines = [", ".join(items[i:i + 8]) for i in range(0, len(items), 8)]
    body = ",\n    ".join(lines) if lines else "0"
    return f"static const float {cname}[{max(len(items), 1)}] = {{\n    {body}\n}};\n"


def _safe(text: str) -> str:
    """A name as it may stand inside a C comment (no comment end, one line)."""
    return str(text).replace("*/", "* /").replace("\n", " ").replace("\r", " ")


def _c_float(v: float) -> str:
    """A float C literal that round-trips float32: "0.2f", "1.0f", "1e-05f"."""
    text = f"{float(np.float32(v)):.9g}"
    return text + ("f" if any(c in text for c in ".e") else ".0f")


def _act_name(identifier, layer) -> str:
    try:
        act = _activations.get(identifier).__name__
    except ValueError as e:
        raise NotImplementedError(f"to_c: layer '{layer.name}': activation {identifier!r}") from e
    if act == "silu":
        act = "swish"
    if act not in _ACTIVATIONS:
        raise NotImplementedError(
            f"to_c: layer '{layer.name}' ({type(layer).__name__}): activation '{act}' is not "
            f"supported (supported: {', '.join(_ACTIVATIONS)})")
    return act


def _same_pad(size: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """Output size and leading padding of Keras's 'same' padding along one axis."""
    out = -(-size // s)
    eff = (k - 1) * d + 1
    total = max((out - 1) * s + eff - size, 0)
    return out, total // 2


class _Gen:
    def __init__(self, name: str):
        self.name = name
        self.weights: list[str] = []   # C array definitions
        self.funcs: list[str] = []     # layer functions
        self.calls: list[str] = []     # C statements, {dst} and {src} to fill in
        self.acts: set[str] = set()
        self.scratch = 0               # floats past the two ping-pong buffers
        self.n = 0

    def weight(self, tag: str, values, layer) -> str:
        cname = f"{self.name}_l{self.n}_{tag}"
        self.weights.append(_c_array(cname, values, f"layer '{layer.name}' {tag}"))
        return cname

    def act_call(self, act: str, ptr: str, rows: int, cols: int, alpha: float | None = None) -> str:
        if act == "linear":
            return ""
        self.acts.add(act)
        if act == "softmax":
            return f"act_softmax({ptr}, {rows}, {cols});"
        if act in _DEFAULT_ALPHA:
            a = float(_DEFAULT_ALPHA[act] if alpha is None else alpha)
            return f"act_{act}({ptr}, {rows * cols}, {_c_float(a)});"
        return f"act_{act}({ptr}, {rows * cols});"


def _chain(model) -> tuple[tuple, list]:
    """The sample's input shape and the layers in order, for a Sequential model or a functional
    one whose layers form a single chain (one input, one output, each layer called once on the
    previous one's output); anything else raises NotImplementedError."""
    from ..models.sequential import Sequential

    if isinstance(model, Sequential):
        try:
            return tuple(model.input_shape)[1:], list(model.layers)
        except Exception as e:  # not built: the exporter needs the shapes
            raise ValueError(
                "to_c: the model is not built; call it on data or give it an Input") from e
    why = (f"to_c: a {type(model).__name__} model is exported when it is Sequential or a single "
           "chain of layers (one input, one output, no branches or shared layers)")
    inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
    if not inputs or not outputs or len(inputs) != 1 or len(outputs) != 1:
        raise NotImplementedError(why)
    layers = [lay for lay in model.layers if type(lay).__name__ != "InputLayer"]
    prev = inputs[0]
    for layer in layers:
        if len(vars(layer).get("_inbound") or ()) != 1:
            raise NotImplementedError(f"{why}: layer '{layer.name}' is called more than once")
        try:
            chained = layer.input is prev
            prev = layer.output
        except (AttributeError, ValueError):
            chained = False
        if not chained:
            raise NotImplementedError(f"{why}: layer '{layer.name}' does not read the previous "
                                      "layer's output alone")
    if prev is not outputs[0]:
        raise NotImplementedError(why)
    return tuple(inputs[0].shape)[1:], layers


def _generate(model, name: str, header_name: str) -> tuple[str, str]:
    in_shape, layers = _chain(model)
    if any(d is None for d in in_shape):
        raise ValueError(f"to_c: the input shape {in_shape} must be fixed (no None dimensions)")
    g = _Gen(name)
    shape = in_shape
    in_size = int(np.prod(shape, dtype=np.int64))
    sizes = [in_size]
    for i, layer in enumerate(layers):
        g.n = i
        shape = _emit(g, layer, shape, first=(i == 0))
        sizes.append(int(np.prod(shape, dtype=np.int64)))
    out_size = sizes[-1]
    # the buffers hold layer outputs, never the input; a model of identities needs none
    buf = max(sizes[1:], default=0) if g.calls else 0
    ws = max(2 * buf + g.scratch, 1)  # at least 1: a C array cannot have 0 elements
    upper = name.upper()

    h = [f"/* {_safe(header_name)}: model '{_safe(model.name)}' exported by pynn.export.to_c"
         " (standalone C99).\n"
         f" *\n * {name}_predict computes one sample: input holds {upper}_INPUT_SIZE floats (the\n"
         f" * sample's shape {in_shape}, flattened in C order), output receives\n"
         f" * {upper}_OUTPUT_SIZE floats (shape {tuple(shape)}), and workspace is caller-owned\n"
         f" * scratch of {upper}_WORKSPACE_FLOATS floats (nothing is allocated; no global state,\n"
         f" * so one workspace per thread makes concurrent calls safe). input, output and\n"
         f" * workspace must not overlap. Link with -lm. */\n",
         f"#ifndef {upper}_H\n#define {upper}_H\n\n",
         f"#define {upper}_INPUT_SIZE {in_size}\n#define {upper}_OUTPUT_SIZE {out_size}\n"
         f"#define {upper}_WORKSPACE_FLOATS {ws}\n\n",
         "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n",
         f"void {name}_predict(const float *input, float *output, float *workspace);\n\n",
         "#ifdef __cplusplus\n}\n#endif\n\n#endif\n"]

    c = [f"/* Generated by pynn.export.to_c from model '{_safe(model.name)}'. Standalone C99. */\n",
         f'#include "{header_name}"\n\n#include <math.h>\n#include <string.h>\n\n']
    c += [_ACT_C[a] + "\n" for a in sorted(g.acts)]
    c += [w + "\n" for w in g.weights]
    c += [f + "\n" for f in g.funcs]
    body = [f"void {name}_predict(const float *input, float *output, float *workspace) {{",
            f"    float *buf[2] = {{workspace, workspace + {buf}}};",
            f"    float *scratch = workspace + {2 * buf};",
            "    const float *src = input;",
            "    (void)scratch; (void)buf; (void)src;"]
    if not g.calls:
        body.append(f"    memcpy(output, input, sizeof(float) * {out_size});")
    for k, call in enumerate(g.calls):
        dst = "output" if k == len(g.calls) - 1 else f"buf[{k % 2}]"
        body.append(f"    {call.format(dst=dst, src='src')}")
        if k < len(g.calls) - 1:
            body.append(f"    src = buf[{k % 2}];")
    body.append("}\n")
    c.append("\n".join(body))
    return "".join(c), "".join(h)


def _unsupported(layer, what: str):
    raise NotImplementedError(f"to_c: layer '{layer.name}' ({type(layer).__name__}): {what}")


def _emit(g: _Gen, layer, shape: tuple, first: bool) -> tuple:
    """Adds the layer's C code and returns its output shape (without the batch)."""
    kind = type(layer).__name__
    cfg = layer.get_config()
    handler = _HANDLERS.get(kind)
    if handler is None:
        raise NotImplementedError(
            f"to_c: layer '{layer.name}' of class {kind} is not supported (supported: "
            f"{', '.join(sorted(_HANDLERS))})")
    if cfg.get("data_format", "channels_last") != "channels_last":
        _unsupported(layer, "data_format='channels_first' (only channels_last is exported)")
    return handler(g, layer, cfg, shape, first)


def _w(layer) -> dict:
    return {w.path.split("/")[-1]: np.asarray(w) for w in layer.weights}


def _dense(g, layer, cfg, shape, first):
    w = _w(layer)
    act = _act_name(cfg["activation"], layer)
    k = w["kernel"]
    cin, units = k.shape
    rows = int(np.prod(shape[:-1], dtype=np.int64))
    kn = g.weight("kernel", k, layer)
    bias = g.weight("bias", w["bias"], layer) if cfg["use_bias"] else None
    f = f"{g.name}_dense{g.n}"
    init = f"{bias}[o]" if bias else "0.0f"
    g.funcs.append(
        f"/* {_safe(layer.name)}: y[r] = x[r] W + b,"
        f"  x (rows={rows}, {cin}), W ({cin}, {units}) */\n"
        f"static void {f}(float *restrict y, const float *restrict x) {{\n"
        f"    for (int r = 0; r < {rows}; r++, x += {cin}, y += {units}) {{\n"
        f"        for (int o = 0; o < {units}; o++) y[o] = {init};\n"
        f"        int i = 0;\n"
        f"        for (; i + 4 <= {cin}; i += 4) {{  /* four rows of W per pass over y */\n"
        f"            const float x0 = x[i], x1 = x[i + 1], x2 = x[i + 2], x3 = x[i + 3];\n"
        f"            const float *w0 = {kn} + (long)i * {units}, *w1 = w0 + {units};\n"
        f"            const float *w2 = w1 + {units}, *w3 = w2 + {units};\n"
        f"            for (int o = 0; o < {units}; o++)\n"
        f"                y[o] += x0 * w0[o] + x1 * w1[o] + x2 * w2[o] + x3 * w3[o];\n"
        f"        }}\n"
        f"        for (; i < {cin}; i++) {{\n"
        f"            const float xi = x[i];\n"
        f"            const float *wr = {kn} + (long)i * {units};\n"
        f"            for (int o = 0; o < {units}; o++) y[o] += xi * wr[o];\n"
        f"        }}\n    }}\n}}\n")
    g.calls.append(f"{f}({{dst}}, {{src}}); " + g.act_call(act, "{dst}", rows, units))
    return tuple(shape[:-1]) + (units,)


def _activation(g, layer, cfg, shape, first):
    kind = type(layer).__name__
    alpha = None
    if kind == "Activation":
        act = _act_name(cfg["activation"], layer)
    elif kind == "ReLU":
        if cfg.get("max_value") is not None or cfg.get("threshold", 0.0) != 0.0:
            _unsupported(layer, "max_value or threshold")
        alpha = float(cfg.get("negative_slope", 0.0))
        act = "leaky_relu" if alpha != 0.0 else "relu"
    elif kind == "LeakyReLU":
        act, alpha = "leaky_relu", float(cfg["negative_slope"])
    elif kind == "ELU":
        act, alpha = "elu", float(cfg["alpha"])
    else:  # Softmax
        axis = cfg.get("axis", -1)
        axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
        if axis not in (-1, len(shape)):
            _unsupported(layer, f"axis={cfg.get('axis')} (only the last axis is exported)")
        act = "softmax"
    if act != "linear":
        n = int(np.prod(shape, dtype=np.int64))
        cols = shape[-1] if shape else 1
        g.calls.append(f"memcpy({{dst}}, {{src}}, sizeof(float) * {n}); "
                       + g.act_call(act, "{dst}", n // cols, cols, alpha))
    return shape


def _identity(g, layer, cfg, shape, first):
    return shape


def _flatten(g, layer, cfg, shape, first):
    return (int(np.prod(shape, dtype=np.int64)),)


def _reshape(g, layer, cfg, shape, first):
    target = list(cfg["target_shape"])
    n = int(np.prod(shape, dtype=np.int64))
    if -1 in target:
        known = int(np.prod([d for d in target if d != -1], dtype=np.int64))
        target[target.index(-1)] = n // known
    if int(np.prod(target, dtype=np.int64)) != n:
        raise ValueError(f"to_c: layer '{layer.name}': cannot reshape {shape} to {tuple(target)}")
    return tuple(target)


def _as_2d(layer, cfg, shape, keys) -> tuple:
    """A 1-D layer's input shape and window arguments as 2-D ones of height 1."""
    one_d = type(layer).__name__.endswith("1D")
    if len(shape) != (2 if one_d else 3):
        want = "(steps, channels)" if one_d else "(height, width, channels)"
        _unsupported(layer, f"input shape {shape} (expects {want})")
    if not one_d:
        return one_d, shape, [tuple(cfg[k]) for k in keys]
    return one_d, (1,) + tuple(shape), [(1,) + tuple(cfg[k]) for k in keys]


def _conv2d(g, layer, cfg, shape, first):
    if cfg.get("groups", 1) != 1:
        _unsupported(layer, f"groups={cfg['groups']}")
    one_d, (H, W, C), ((kh, kw), (sh, sw), (dh, dw)) = _as_2d(
        layer, cfg, shape, ("kernel_size", "strides", "dilation_rate"))
    pad = cfg["padding"]
    if pad == "causal" and one_d:  # (kernel - 1) dilation zeros on the left, then valid
        OH, OW, ph, pw = 1, (W - 1) // sw + 1, 0, (kw - 1) * dw
    elif pad == "valid":
        OH, OW = (H - (kh - 1) * dh - 1) // sh + 1, (W - (kw - 1) * dw - 1) // sw + 1
        ph = pw = 0
    elif pad == "same":
        (OH, ph), (OW, pw) = _same_pad(H, kh, sh, dh), _same_pad(W, kw, sw, dw)
    else:
        _unsupported(layer, f"padding='{pad}'")
    w = _w(layer)
    F = w["kernel"].shape[-1]  # a 1-D kernel (k, C, F) is the 2-D one (1, k, C, F)
    act = _act_name(cfg["activation"], layer)
    kn = g.weight("kernel", w["kernel"], layer)
    bias = g.weight("bias", w["bias"], layer) if cfg["use_bias"] else None
    f = f"{g.name}_conv{g.n}"
    init = f"{bias}[o]" if bias else "0.0f"
    g.funcs.append(
        f"/* {_safe(layer.name)}: y[oh,ow,o] = b[o]\n"
        f"     + sum_{{i,j,c}} x[oh*{sh}+i*{dh}-{ph}, ow*{sw}+j*{dw}-{pw}, c] K[i,j,c,o]\n"
        f"   x ({H},{W},{C}), K ({kh},{kw},{C},{F}), y ({OH},{OW},{F}); outside x reads 0 */\n"
        f"static void {f}(float *restrict y, const float *restrict x) {{\n"
        f"    for (int oh = 0; oh < {OH}; oh++)\n"
        f"    for (int ow = 0; ow < {OW}; ow++) {{\n"
        f"        float *yo = y + ((long)oh * {OW} + ow) * {F};\n"
        f"        for (int o = 0; o < {F}; o++) yo[o] = {init};\n"
        f"        for (int i = 0; i < {kh}; i++) {{\n"
        f"            const int ih = oh * {sh} + i * {dh} - {ph};\n"
        f"            if (ih < 0 || ih >= {H}) continue;\n"
        f"            for (int j = 0; j < {kw}; j++) {{\n"
        f"                const int iw = ow * {sw} + j * {dw} - {pw};\n"
        f"                if (iw < 0 || iw >= {W}) continue;\n"
        f"                const float *xp = x + ((long)ih * {W} + iw) * {C};\n"
        f"                const float *kp = {kn} + (long)(i * {kw} + j) * {C} * {F};\n"
        f"                for (int c = 0; c < {C}; c++, kp += {F}) {{\n"
        f"                    const float xc = xp[c];\n"
        f"                    for (int o = 0; o < {F}; o++) yo[o] += xc * kp[o];\n"
        f"                }}\n            }}\n        }}\n    }}\n}}\n")
    g.calls.append(f"{f}({{dst}}, {{src}}); " + g.act_call(act, "{dst}", OH * OW, F))
    return (OW, F) if one_d else (OH, OW, F)


def _pool2d(g, layer, cfg, shape, first):
    cfg = {**cfg, "strides": cfg["pool_size"] if cfg.get("strides") is None else cfg["strides"]}
    one_d, (H, W, C), ((kh, kw), (sh, sw)) = _as_2d(layer, cfg, shape, ("pool_size", "strides"))
    pad = cfg["padding"]
    if pad == "valid":
        OH, OW, ph, pw = (H - kh) // sh + 1, (W - kw) // sw + 1, 0, 0
    elif pad == "same":
        (OH, ph), (OW, pw) = _same_pad(H, kh, sh), _same_pad(W, kw, sw)
    else:
        _unsupported(layer, f"padding='{pad}'")
    is_max = type(layer).__name__.startswith("Max")
    f = f"{g.name}_pool{g.n}"
    if is_max:
        math_ = "max over the window (padding ignored)"
        init, upd, fin = "-INFINITY", "yo[c] = v > yo[c] ? v : yo[c];", ""
    else:
        math_ = "mean over the window's positions inside x (padding not counted)"
        init, upd = "0.0f", "yo[c] += v;"
        fin = f"        for (int c = 0; c < {C}; c++) yo[c] /= (float)cnt;\n"
    g.funcs.append(
        f"/* {_safe(layer.name)}: y[oh,ow,c] = {math_},\n"
        f"   window {kh}x{kw} at (oh*{sh}-{ph}, ow*{sw}-{pw});"
        f" x ({H},{W},{C}), y ({OH},{OW},{C}) */\n"
        f"static void {f}(float *restrict y, const float *restrict x) {{\n"
        f"    for (int oh = 0; oh < {OH}; oh++)\n"
        f"    for (int ow = 0; ow < {OW}; ow++) {{\n"
        f"        float *yo = y + ((long)oh * {OW} + ow) * {C};\n"
        f"        int cnt = 0;\n"
        f"        for (int c = 0; c < {C}; c++) yo[c] = {init};\n"
        f"        for (int i = 0; i < {kh}; i++) {{\n"
        f"            const int ih = oh * {sh} + i - {ph};\n"
        f"            if (ih < 0 || ih >= {H}) continue;\n"
        f"            for (int j = 0; j < {kw}; j++) {{\n"
        f"                const int iw = ow * {sw} + j - {pw};\n"
        f"                if (iw < 0 || iw >= {W}) continue;\n"
        f"                const float *xp = x + ((long)ih * {W} + iw) * {C};\n"
        f"                cnt++;\n"
        f"                for (int c = 0; c < {C}; c++) {{ const float v = xp[c]; {upd} }}\n"
        f"            }}\n        }}\n{fin}"
        f"        (void)cnt;\n    }}\n}}\n")
    g.calls.append(f"{f}({{dst}}, {{src}});")
    return (OW, C) if one_d else (OH, OW, C)


def _global_pool(g, layer, cfg, shape, first):
    kind = type(layer).__name__
    rank = 2 if kind.endswith("1D") else 3
    if len(shape) != rank:
        _unsupported(layer, f"input shape {shape} (expects {rank} dimensions)")
    P, C = int(np.prod(shape[:-1], dtype=np.int64)), shape[-1]
    f = f"{g.name}_gpool{g.n}"
    if kind.startswith("GlobalMax"):
        what, init, upd, fin = "max", "x[c]", "y[c] = x[c] > y[c] ? x[c] : y[c];", ""
        start = f"    x += {C};\n    for (int p = 1; p < {P}; p++, x += {C})\n"
    else:
        what, init, upd = "mean", "0.0f", "y[c] += x[c];"
        fin = f"    for (int c = 0; c < {C}; c++) y[c] /= {_c_float(P)};\n"
        start = f"    for (int p = 0; p < {P}; p++, x += {C})\n"
    g.funcs.append(
        f"/* {_safe(layer.name)}: y[c] = {what} over the {P} positions p of x[p,c],  x {shape} */\n"
        f"static void {f}(float *restrict y, const float *restrict x) {{\n"
        f"    for (int c = 0; c < {C}; c++) y[c] = {init};\n{start}"
        f"        for (int c = 0; c < {C}; c++) {upd}\n{fin}}}\n")
    g.calls.append(f"{f}({{dst}}, {{src}});")
    return (1,) * (rank - 1) + (C,) if cfg.get("keepdims") else (C,)


def _batchnorm(g, layer, cfg, shape, first):
    axis = cfg["axis"]
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    if not isinstance(axis, int) or axis not in (-1, len(shape)):
        _unsupported(layer, f"axis={cfg['axis']} (only the last axis is exported)")
    w = _w(layer)
    C = shape[-1]
    eps = float(cfg["epsilon"])
    gamma = w.get("gamma", np.ones(C, np.float32))
    beta = w.get("beta", np.zeros(C, np.float32))
    gn, bn = g.weight("gamma", gamma, layer), g.weight("beta", beta, layer)
    mn = g.weight("mean", w["moving_mean"], layer)
    vn = g.weight("var", w["moving_variance"], layer)
    rows = int(np.prod(shape[:-1], dtype=np.int64))
    f = f"{g.name}_bn{g.n}"
    g.funcs.append(
        f"/* {_safe(layer.name)}: y[.,c] = (x[.,c] - mean[c]) / sqrt(var[c] + {eps!r}) gamma[c]"
        f" + beta[c] */\n"
        f"static void {f}(float *restrict y, const float *restrict x) {{\n"
        f"    for (int r = 0; r < {rows}; r++, x += {C}, y += {C})\n"
        f"        for (int c = 0; c < {C}; c++)\n"
        f"            y[c] = (x[c] - {mn}[c]) / sqrtf({vn}[c] + {_c_float(eps)}) * {gn}[c]"
        f" + {bn}[c];\n}}\n")
    g.calls.append(f"{f}({{dst}}, {{src}});")
    return shape


def _layernorm(g, layer, cfg, shape, first):
    axis = cfg["axis"]
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    if not isinstance(axis, int) or axis not in (-1, len(shape)):
        _unsupported(layer, f"axis={cfg['axis']} (only the last axis is exported)")
    if cfg.get("rms_scaling"):
        _unsupported(layer, "rms_scaling=True")
    w = _w(layer)
    C = shape[-1]
    eps = _c_float(cfg["epsilon"])
    gn = g.weight("gamma", w["gamma"], layer) if "gamma" in w else None
    bn = g.weight("beta", w["beta"], layer) if "beta" in w else None
    rows = int(np.prod(shape[:-1], dtype=np.int64))
    f = f"{g.name}_ln{g.n}"
    scale = f" * {gn}[c]" if gn else ""
    shift = f" + {bn}[c]" if bn else ""
    g.funcs.append(
        f"/* {_safe(layer.name)}: per row of {C}:"
        f" y = (x - mean x) / sqrt(var x + {eps}) gamma + beta */\n"
        f"static void {f}(float *restrict y, const float *restrict x) {{\n"
        f"    for (int r = 0; r < {rows}; r++, x += {C}, y += {C}) {{\n"
        f"        float m = 0.0f, v = 0.0f;\n"
        f"        for (int c = 0; c < {C}; c++) m += x[c];\n"
        f"        m /= {_c_float(C)};\n"
        f"        for (int c = 0; c < {C}; c++) v += (x[c] - m) * (x[c] - m);\n"
        f"        const float inv = 1.0f / sqrtf(v / {_c_float(C)} + {eps});\n"
        f"        for (int c = 0; c < {C}; c++) y[c] = (x[c] - m) * inv{scale}{shift};\n"
        f"    }}\n}}\n")
    g.calls.append(f"{f}({{dst}}, {{src}});")
    return shape


def _embedding(g, layer, cfg, shape, first):
    if not first:
        _unsupported(layer, "an Embedding after the first layer (indices must be the input)")
    if cfg.get("mask_zero"):
        _unsupported(layer, "mask_zero=True")
    emb = _w(layer)["embeddings"]
    V, D = emb.shape
    n = int(np.prod(shape, dtype=np.int64))
    en = g.weight("embeddings", emb, layer)
    f = f"{g.name}_embed{g.n}"
    g.funcs.append(
        f"/* {_safe(layer.name)}: y[t] = E[(int)x[t]],  E ({V},{D});"
        f" an index outside [0, {V}) gives zeros */\n"
        f"static void {f}(float *restrict y, const float *restrict x) {{\n"
        f"    for (int t = 0; t < {n}; t++, y += {D}) {{\n"
        f"        const int k = (int)x[t];\n"
        f"        if (k < 0 || k >= {V}) {{\n"
        f"            for (int d = 0; d < {D}; d++) y[d] = 0.0f;\n"
        f"            continue;\n"
        f"        }}\n"
        f"        memcpy(y, {en} + (long)k * {D}, sizeof(float) * {D});\n"
        f"    }}\n}}\n")
    g.calls.append(f"{f}({{dst}}, {{src}});")
    return tuple(shape) + (D,)


def _rnn_common(g, layer, cfg, shape):
    for arg in ("return_state", "stateful"):
        if cfg.get(arg):
            _unsupported(layer, f"{arg}=True")
    if len(shape) != 2:
        _unsupported(layer, f"input shape {shape} (expects (timesteps, features))")
    act = _act_name(cfg["activation"], layer)
    ract = _act_name(cfg["recurrent_activation"], layer)
    if "softmax" in (act, ract):
        _unsupported(layer, "a softmax (recurrent) activation")
    return act, ract


def _rnn_store(seq: bool, U: int) -> tuple[str, str]:
    """C lines that keep every step's h (return_sequences) or only the last one."""
    if seq:
        return f"        memcpy(y + (long)s * {U}, h, sizeof(float) * {U});\n", ""
    return "", f"    memcpy(y, h, sizeof(float) * {U});\n"


def _simple_rnn(g, layer, cfg, shape, first):
    act = _act_name(cfg["activation"], layer)
    for arg in ("return_state", "stateful"):
        if cfg.get(arg):
            _unsupported(layer, f"{arg}=True")
    if len(shape) != 2:
        _unsupported(layer, f"input shape {shape} (expects (timesteps, features))")
    if act == "softmax":
        _unsupported(layer, "a softmax activation")
    T, NI = shape
    w = _w(layer)
    U = w["recurrent_kernel"].shape[0]
    kn = g.weight("kernel", w["kernel"], layer)
    rn = g.weight("recurrent", w["recurrent_kernel"], layer)
    bn = g.weight("bias", w["bias"], layer) if cfg["use_bias"] else None
    seq, back = bool(cfg["return_sequences"]), bool(cfg["go_backwards"])
    off = g.scratch
    g.scratch += 2 * U  # h, z
    f = f"{g.name}_rnn{g.n}"
    a_z = g.act_call(act, "z", 1, U)
    t_expr = f"{T - 1} - s" if back else "s"
    store, final = _rnn_store(seq, U)
    g.funcs.append(
        f"/* {_safe(layer.name)} (SimpleRNN): h = {act}(x_t W + h U + b).  x ({T},{NI}), h ({U},)"
        f" starts at 0;\n   y = {'every h' if seq else 'the last h'} */\n"
        f"static void {f}(float *y, const float *x, float *scratch) {{\n"
        f"    float *h = scratch, *z = scratch + {U};\n"
        f"    for (int u = 0; u < {U}; u++) h[u] = 0.0f;\n"
        f"    for (int s = 0; s < {T}; s++) {{\n"
        f"        const float *xt = x + (long)({t_expr}) * {NI};\n"
        f"        for (int k = 0; k < {U}; k++) z[k] = {bn + '[k]' if bn else '0.0f'};\n"
        f"        for (int i = 0; i < {NI}; i++) {{\n"
        f"            const float xi = xt[i]; const float *wr = {kn} + (long)i * {U};\n"
        f"            for (int k = 0; k < {U}; k++) z[k] += xi * wr[k];\n"
        f"        }}\n"
        f"        for (int j = 0; j < {U}; j++) {{\n"
        f"            const float hj = h[j]; const float *ur = {rn} + (long)j * {U};\n"
        f"            for (int k = 0; k < {U}; k++) z[k] += hj * ur[k];\n"
        f"        }}\n"
        f"        {a_z}\n"
        f"        memcpy(h, z, sizeof(float) * {U});\n"
        f"{store}"
        f"    }}\n"
        f"{final}}}\n")
    g.calls.append(f"{f}({{dst}}, {{src}}, scratch + {off});")
    return (T, U) if seq else (U,)


def _lstm(g, layer, cfg, shape, first):
    act, ract = _rnn_common(g, layer, cfg, shape)
    T, NI = shape
    w = _w(layer)
    U = w["recurrent_kernel"].shape[0]
    kn = g.weight("kernel", w["kernel"], layer)
    rn = g.weight("recurrent", w["recurrent_kernel"], layer)
    bn = g.weight("bias", w["bias"], layer) if cfg["use_bias"] else None
    seq, back = bool(cfg["return_sequences"]), bool(cfg["go_backwards"])
    off = g.scratch
    g.scratch += 7 * U  # h, c, gates (4U), act(c)
    f = f"{g.name}_lstm{g.n}"
    a_i = g.act_call(ract, "z", 1, 2 * U)
    a_o = g.act_call(ract, f"z + {3 * U}", 1, U)
    a_c = g.act_call(act, f"z + {2 * U}", 1, U)
    a_h = g.act_call(act, "th", 1, U)
    init = f"{bn}[k]" if bn else "0.0f"
    t_expr = f"{T - 1} - s" if back else "s"
    store, final = _rnn_store(seq, U)
    g.funcs.append(
        f"/* {_safe(layer.name)} (LSTM, gates i f c o): z = x_t W + h U + b;\n"
        f"   i, f, o = {ract}(z_i, z_f, z_o);"
        f"   c = f c + i {act}(z_c);  h = o {act}(c).  x ({T},{NI}), h, c ({U},) start at 0;"
        f" y = {'every h' if seq else 'the last h'} */\n"
        f"static void {f}(float *restrict y, const float *restrict x, float *scratch) {{\n"
        f"    float *h = scratch, *c = scratch + {U}, *z = scratch + {2 * U}, *th = z + {4 * U};\n"
        f"    (void)th;\n"
        f"    for (int u = 0; u < {U}; u++) h[u] = c[u] = 0.0f;\n"
        f"    for (int s = 0; s < {T}; s++) {{\n"
        f"        const float *xt = x + (long)({t_expr}) * {NI};\n"
        f"        for (int k = 0; k < {4 * U}; k++) z[k] = {init};\n"
        f"        for (int i = 0; i < {NI}; i++) {{\n"
        f"            const float xi = xt[i]; const float *wr = {kn} + (long)i * {4 * U};\n"
        f"            for (int k = 0; k < {4 * U}; k++) z[k] += xi * wr[k];\n"
        f"        }}\n"
        f"        for (int j = 0; j < {U}; j++) {{\n"
        f"            const float hj = h[j]; const float *ur = {rn} + (long)j * {4 * U};\n"
        f"            for (int k = 0; k < {4 * U}; k++) z[k] += hj * ur[k];\n"
        f"        }}\n"
        f"        {a_i} {a_o} {a_c}\n"
        f"        for (int u = 0; u < {U}; u++) {{\n"
        f"            c[u] = z[{U} + u] * c[u] + z[u] * z[{2 * U} + u];\n"
        f"            th[u] = c[u];\n"
        f"        }}\n"
        f"        {a_h}\n"
        f"        for (int u = 0; u < {U}; u++) h[u] = z[{3 * U} + u] * th[u];\n"
        f"{store}"
        f"    }}\n"
        f"{final}}}\n")
    g.calls.append(f"{f}({{dst}}, {{src}}, scratch + {off});")
    return (T, U) if seq else (U,)


def _gru_candidate(rn: str, U: int, after: bool) -> str:
    """C lines that set hh to the candidate's pre-activation, from xz (z, r activated) and hz."""
    if after:  # xz_h + r (h U_h + b_rec_h)
        return (f"        for (int u = 0; u < {U}; u++)\n"
                f"            hh[u] = xz[{2 * U} + u] + xz[{U} + u] * hz[{2 * U} + u];\n")
    return (f"        for (int u = 0; u < {U}; u++) hh[u] = xz[{U} + u] * h[u];  /* r h */\n"
            f"        for (int u = 0; u < {U}; u++) hz[{2 * U} + u] = 0.0f;\n"
            f"        for (int j = 0; j < {U}; j++) {{\n"
            f"            const float rh = hh[j];\n"
            f"            const float *ur = {rn} + (long)j * {3 * U} + {2 * U};\n"
            f"            for (int u = 0; u < {U}; u++) hz[{2 * U} + u] += rh * ur[u];\n"
            f"        }}\n"
            f"        for (int u = 0; u < {U}; u++) hh[u] = xz[{2 * U} + u] + hz[{2 * U} + u];\n")


def _gru(g, layer, cfg, shape, first):
    act, ract = _rnn_common(g, layer, cfg, shape)
    after = bool(cfg.get("reset_after", True))
    T, NI = shape
    w = _w(layer)
    U = w["recurrent_kernel"].shape[0]
    kn = g.weight("kernel", w["kernel"], layer)
    rn = g.weight("recurrent", w["recurrent_kernel"], layer)
    bias = w.get("bias") if cfg["use_bias"] else None
    if bias is not None and bias.shape != ((2, 3 * U) if after else (3 * U,)):
        _unsupported(layer, f"bias of shape {bias.shape}")
    if bias is not None and not after:
        bias = np.stack([bias, np.zeros_like(bias)])  # the input bias only
    bin_ = g.weight("bias_in", bias[0], layer) if bias is not None else None
    brn = g.weight("bias_rec", bias[1], layer) if bias is not None and after else None
    kr = 3 * U if after else 2 * U  # columns of h U computed before the reset gate
    seq, back = bool(cfg["return_sequences"]), bool(cfg["go_backwards"])
    off = g.scratch
    g.scratch += 8 * U  # h, xz (3U), hz (3U), hh (U)
    f = f"{g.name}_gru{g.n}"
    a_zr = g.act_call(ract, "xz", 1, 2 * U)
    a_h = g.act_call(act, "hh", 1, U)
    t_expr = f"{T - 1} - s" if back else "s"
    store, final = _rnn_store(seq, U)
    g.funcs.append(
        f"/* {_safe(layer.name)} (GRU, reset_after={after}, gates z r h):"
        f" xz = x_t W + b_in, hz = h U + b_rec;\n"
        f"   z, r = {ract}(xz + hz);  hh = {act}(xz_h + "
        f"{'r hz_h' if after else '(r h) U_h'});  h = z h + (1 - z) hh.\n"
        f"   x ({T},{NI}), h ({U},) starts at 0; y = {'every h' if seq else 'the last h'} */\n"
        f"static void {f}(float *restrict y, const float *restrict x, float *scratch) {{\n"
        f"    float *h = scratch, *xz = scratch + {U}, *hz = xz + {3 * U}, *hh = hz + {3 * U};\n"
        f"    for (int u = 0; u < {U}; u++) h[u] = 0.0f;\n"
        f"    for (int s = 0; s < {T}; s++) {{\n"
        f"        const float *xt = x + (long)({t_expr}) * {NI};\n"
        f"        for (int k = 0; k < {3 * U}; k++) {{ xz[k] = {bin_ + '[k]' if bin_ else '0.0f'};"
        f" hz[k] = {brn + '[k]' if brn else '0.0f'}; }}\n"
        f"        for (int i = 0; i < {NI}; i++) {{\n"
        f"            const float xi = xt[i]; const float *wr = {kn} + (long)i * {3 * U};\n"
        f"            for (int k = 0; k < {3 * U}; k++) xz[k] += xi * wr[k];\n"
        f"        }}\n"
        f"        for (int j = 0; j < {U}; j++) {{\n"
        f"            const float hj = h[j]; const float *ur = {rn} + (long)j * {3 * U};\n"
        f"            for (int k = 0; k < {kr}; k++) hz[k] += hj * ur[k];\n"
        f"        }}\n"
        f"        for (int k = 0; k < {2 * U}; k++) xz[k] += hz[k];\n"
        f"        {a_zr}\n"
        f"{_gru_candidate(rn, U, after)}"
        f"        {a_h}\n"
        f"        for (int u = 0; u < {U}; u++) h[u] = xz[u] * h[u] + (1.0f - xz[u]) * hh[u];\n"
        f"{store}"
        f"    }}\n"
        f"{final}}}\n")
    g.calls.append(f"{f}({{dst}}, {{src}}, scratch + {off});")
    return (T, U) if seq else (U,)


_HANDLERS = {
    "Dense": _dense, "Activation": _activation, "ReLU": _activation, "LeakyReLU": _activation,
    "ELU": _activation, "Softmax": _activation, "Dropout": _identity, "Flatten": _flatten,
    "Reshape": _reshape, "Conv1D": _conv2d, "Conv2D": _conv2d, "MaxPooling1D": _pool2d,
    "MaxPooling2D": _pool2d, "AveragePooling1D": _pool2d, "AveragePooling2D": _pool2d,
    "GlobalAveragePooling1D": _global_pool, "GlobalAveragePooling2D": _global_pool,
    "GlobalMaxPooling1D": _global_pool, "GlobalMaxPooling2D": _global_pool,
    "BatchNormalization": _batchnorm, "LayerNormalization": _layernorm,
    "Embedding": _embedding, "SimpleRNN": _simple_rnn, "LSTM": _lstm, "GRU": _gru,
    # identities at inference
    "SpatialDropout1D": _identity, "SpatialDropout2D": _identity, "SpatialDropout3D": _identity,
    "GaussianNoise": _identity, "GaussianDropout": _identity, "AlphaDropout": _identity,
    "ActivityRegularization": _identity, "Identity": _identity,
}
