"""Shared test helpers: the numerical gradient check and the PyTorch parity check.

Both work on a compiled pynn model (or a bare `pynn._core.Model` with its variable ids):

    grad_check(model, x, y)       the core's analytic gradients (input and every trainable weight)
                                  against central finite differences of the core's own loss;
    torch_parity(model, x, y)     the same model rebuilt in PyTorch (float64) with pynn's weights
                                  copied in: output, loss, input gradient and weight gradients.

pynn's loss is Keras's "sum_over_batch_size" reduction; `torch_loss` writes each loss in torch
the way Keras 3 defines it, so the two must agree to float32 precision.
"""

import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import pynn
from pynn import _core
from pynn.layers.base import Layer

# Keras's clipping bounds for probabilities, [1e-7, 1 - 1e-7], as float32 holds them (in float32
# 1 - 1e-7 rounds to 1 - 2**-23, so a probability clipped at the top costs -log(1.19e-7)).
EPS = float(np.float32(1e-7))
ONE_MINUS_EPS = float(np.float32(1.0) - np.float32(1e-7))

# Keras's activations in torch, with Keras's default attributes.
TORCH_ACTIVATIONS = {
    "linear": lambda z: z,
    "relu": F.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softmax": lambda z: F.softmax(z, dim=-1),
    "leaky_relu": lambda z: F.leaky_relu(z, negative_slope=0.2),
    "elu": F.elu,
    "selu": F.selu,
    "gelu": lambda z: F.gelu(z, approximate="none"),
    "swish": F.silu,
    "softplus": F.softplus,
}


# -- building models ------------------------------------------------------------------------------
class SpecLayer(Layer):
    """A layer that lowers one `pynn.activations.ActivationSpec` as given (any alpha, gelu's
    tanh form), to reach the core attributes that the Activation layer fixes to Keras's defaults.
    """

    def __init__(self, spec, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec

    def lower(self, core, node: int) -> int:
        return self.spec.lower(core, node)


def make_model(input_shape, layers, loss="mse", seed=0):
    """A compiled Sequential model: `Input(input_shape)`, then `layers`, SGD and `loss`."""
    pynn.utils.set_random_seed(seed)
    m = pynn.Sequential([pynn.Input(shape=input_shape)] + list(layers))
    m.compile(optimizer="sgd", loss=loss, metrics=[])
    return m


def randomize_weights(model, seed=0, low=0.1, high=0.6):
    """Sets every weight to random values of magnitude in [low, high) and random sign (biases
    included, so no bias sits at 0 where an L1 penalty has its kink)."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        mag = rng.uniform(low, high, size=w.shape)
        w.assign(np.where(rng.random(w.shape) < 0.5, -mag, mag).astype(np.float32))


# -- reading the core -----------------------------------------------------------------------------
def _core_and_vars(model, var_ids=None):
    """(core model, trainable variable ids) of a pynn model, or of a bare core with given ids."""
    if isinstance(model, _core.Model):
        return model, list(var_ids or [])
    ids = [vid for layer in model.layers if layer.trainable
           for attr, vid in zip(layer._weight_attrs, layer._var_ids)
           if getattr(layer, attr).trainable]
    return model._core, ids


def core_gradients(model, x, y, var_ids=None):
    """The core's (loss, dloss/dx, [dloss/dw for each trainable variable]), all copied."""
    core, ids = _core_and_vars(model, var_ids)
    loss, dx = core.gradients(x, y, True)
    return loss, np.array(dx), [np.array(core.gradient(v)) for v in ids]


def core_loss(core, x, y) -> float:
    """The loss the core computes for (x, y), regularizers included."""
    return core.test_step(x, y)[0]


# -- numerical gradient check ---------------------------------------------------------------------
def _pick(size, max_entries, rng):
    return np.arange(size) if size <= max_entries else rng.choice(size, max_entries, replace=False)


def numeric_gradient(f, arr, flat_idx, eps):
    """Central differences of f() with respect to arr.flat[i] for i in flat_idx; arr is changed
    in place and restored."""
    flat = arr.reshape(-1)
    out = np.empty(len(flat_idx))
    for k, i in enumerate(flat_idx):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        out[k] = (up - down) / (2.0 * eps)
    return out


def _assert_grad_close(what, analytic, numeric, rtol, atol):
    scale = max(np.max(np.abs(analytic)), np.max(np.abs(numeric)), 1e-3)
    bad = np.abs(analytic - numeric) > atol * scale + rtol * np.abs(numeric)
    assert not bad.any(), (
        f"{what}: analytic and numerical gradients differ at {np.flatnonzero(bad)[:8]}: "
        f"analytic {analytic[bad][:8]}, numerical {numeric[bad][:8]} (scale {scale:.3g})")


def grad_check(model, x, y, var_ids=None, eps=1e-2, rtol=1e-2, atol=2e-3, max_entries=24,
               seed=0, check_input=True, training=False):
    """Checks the core's gradients of the loss against central finite differences.

    The loss is the core's float32 test_step loss (regularizers included), so eps is large
    (1e-2) and the tolerance is relative to the largest gradient of each tensor (atol * scale)
    plus rtol of each entry. Tensors with more than `max_entries` values are checked at a random
    subset of entries.

    With training=True the loss differentiated numerically is the training forward's (for
    layers that behave differently in training, like batch normalization).

    Returns:
        The analytic (loss, dx, weight gradients), for further checks.
    """
    core, ids = _core_and_vars(model, var_ids)
    # a private copy: it is perturbed in place (integer inputs, indices, only without the input)
    x = np.array(x, dtype=np.float32) if check_input else np.asarray(x)
    loss, dx, grads = core_gradients(core, x, y, ids) if check_input else (
        *core.gradients(x, y), [np.array(core.gradient(v)) for v in ids])
    assert np.isfinite(loss), f"loss is {loss}"
    rng = np.random.default_rng(seed)
    def f():  # training: the loss of a training forward (batch norm on batch statistics)
        return core.gradients(x, y)[0] if training else core_loss(core, x, y)
    if check_input:
        idx = _pick(x.size, max_entries, rng)
        _assert_grad_close("dloss/dx", dx.reshape(-1)[idx], numeric_gradient(f, x, idx, eps),
                           rtol, atol)
    for vid, g in zip(ids, grads):
        w = core.variable(vid)  # a view onto the core's parameters: perturbing it moves the model
        idx = _pick(w.size, max_entries, rng)
        _assert_grad_close(f"dloss/dvariable{vid}", g.reshape(-1)[idx],
                           numeric_gradient(f, w, idx, eps), rtol, atol)
    return loss, dx, grads


# -- PyTorch replica ------------------------------------------------------------------------------
class TorchAct(torch.nn.Module):
    """A Keras activation as a torch module (name kept, for the fused-loss rule)."""

    def __init__(self, name: str, fn=None):
        super().__init__()
        self.name = name
        self.fn = fn or TORCH_ACTIVATIONS[name]

    def forward(self, z):
        return self.fn(z)


def _torch_spec_act(spec) -> TorchAct:
    if spec.name == "gelu":
        return TorchAct("gelu", lambda z: F.gelu(z, approximate="tanh" if spec.approximate
                                                 else "none"))
    if spec.name == "leaky_relu":
        return TorchAct("leaky_relu", lambda z: F.leaky_relu(z, negative_slope=spec.alpha))
    if spec.name == "elu":
        return TorchAct("elu", lambda z: F.elu(z, alpha=spec.alpha))
    return TorchAct(spec.name)


# -- channels-last layers in torch: NHWC in and out, weights kept in pynn's layout ---------------
def _nchw(x):
    return x.permute(0, 3, 1, 2)


def _nhwc(x):
    return x.permute(0, 2, 3, 1)


def _torch_conv(layer, x, kernel, bias=None):
    """Conv2D/Conv1D on channels-last x, with the pads pynn computes for the input's size."""
    if layer.rank == 1:
        x = x[:, None]
        kernel = kernel[None]
    sh, sw, dh, dw, top, left, bottom, right, groups = layer._conv_attrs(tuple(x.shape[1:3]))
    z = F.pad(_nchw(x), (left, right, top, bottom))
    z = F.conv2d(z, kernel.permute(3, 2, 0, 1), bias, stride=(sh, sw), dilation=(dh, dw),
                 groups=groups)
    z = _nhwc(z)
    return z[:, 0] if layer.rank == 1 else z


def _torch_pool(layer, x):
    if layer.rank == 1:
        x = x[:, None]
    ph, pw, sh, sw, top, left, bottom, right = layer._attrs(*x.shape[1:3])
    pads = (left, right, top, bottom)
    if layer.op == "max_pool2d":
        z = F.max_pool2d(F.pad(_nchw(x), pads, value=-float("inf")), (ph, pw), (sh, sw))
    else:  # Keras's average leaves the padding out of the count
        total = F.avg_pool2d(F.pad(_nchw(x), pads), (ph, pw), (sh, sw)) * (ph * pw)
        count = F.avg_pool2d(F.pad(torch.ones_like(_nchw(x)), pads), (ph, pw), (sh, sw)) * (ph * pw)
        z = total / count
    z = _nhwc(z)
    return z[:, 0] if layer.rank == 1 else z


def _torch_batch_norm(layer, x, *weights):
    """Training-mode batch norm (batch statistics, biased variance) over all axes but the last."""
    k = 0
    gamma = beta = None
    if layer.scale:
        gamma, k = weights[k], k + 1
    if layer.center:
        beta = weights[k]
    axes = tuple(range(x.dim() - 1))
    mean = x.mean(axes)
    var = ((x - mean) ** 2).mean(axes)
    y = (x - mean) / torch.sqrt(var + layer.epsilon)
    if gamma is not None:
        y = y * gamma
    return y + beta if beta is not None else y


def _torch_zero_pad(layer, x):
    (t, b), (le, r) = layer.padding
    return _nhwc(F.pad(_nchw(x), (le, r, t, b)))


TORCH_LAYERS = {
    pynn.layers.Conv2D: _torch_conv,
    pynn.layers.Conv1D: _torch_conv,
    pynn.layers.MaxPooling2D: _torch_pool,
    pynn.layers.AveragePooling2D: _torch_pool,
    pynn.layers.MaxPooling1D: _torch_pool,
    pynn.layers.AveragePooling1D: _torch_pool,
    pynn.layers.GlobalAveragePooling2D: lambda layer, x: x.mean((1, 2), keepdim=layer.keepdims),
    pynn.layers.GlobalMaxPooling2D: lambda layer, x: x.amax((1, 2), keepdim=layer.keepdims),
    pynn.layers.GlobalAveragePooling1D: lambda layer, x: x.mean(1, keepdim=layer.keepdims),
    pynn.layers.GlobalMaxPooling1D: lambda layer, x: x.amax(1, keepdim=layer.keepdims),
    pynn.layers.Flatten: lambda layer, x: x.reshape(x.shape[0], -1),
    pynn.layers.Reshape: lambda layer, x: x.reshape((x.shape[0],) + layer.target_shape),
    pynn.layers.ZeroPadding2D: _torch_zero_pad,
    pynn.layers.BatchNormalization: _torch_batch_norm,
    pynn.layers.Dropout: lambda layer, x: x,  # only with rate 0 in parity tests
    pynn.layers.ReLU: lambda layer, x: F.leaky_relu(x, layer.negative_slope),
    pynn.layers.LeakyReLU: lambda layer, x: F.leaky_relu(x, layer.negative_slope),
    pynn.layers.ELU: lambda layer, x: F.elu(x, layer.alpha),
    pynn.layers.Softmax: lambda layer, x: F.softmax(x, dim=-1),
}


class TorchLayer(torch.nn.Module):
    """A pynn layer computed in torch (float64) from copies of its weights in pynn's layout, so
    the weights' gradients come out in that layout too. Activations follow as TorchAct."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer
        self.fn = TORCH_LAYERS[type(layer)]
        self.weights = [torch.tensor(np.array(w, dtype=np.float64), requires_grad=w.trainable)
                        for w in (getattr(layer, a) for a in layer._weight_attrs)]
        self.trainable = [w for w in self.weights if w.requires_grad]

    def forward(self, x):
        return self.fn(self.layer, x, *self.weights)


def to_torch(model) -> torch.nn.Sequential:
    """The pynn Sequential model as a float64 torch.nn.Sequential with pynn's weights copied in
    (a Dense kernel (in, units) becomes a Linear weight (units, in))."""
    mods = []
    for layer in model.layers:
        if isinstance(layer, pynn.layers.Dense):
            lin = torch.nn.Linear(layer.kernel.shape[0], layer.units, bias=layer.use_bias,
                                  dtype=torch.float64)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.array(layer.kernel, dtype=np.float64).T))
                if layer.use_bias:
                    lin.bias.copy_(torch.from_numpy(np.array(layer.bias, dtype=np.float64)))
            mods.append(lin)
            mods.append(TorchAct(pynn.activations.serialize(layer.activation)))
        elif isinstance(layer, pynn.layers.Activation):
            mods.append(TorchAct(pynn.activations.serialize(layer.activation)))
        elif isinstance(layer, SpecLayer):
            mods.append(_torch_spec_act(layer.spec))
        elif type(layer) in TORCH_LAYERS:
            mods.append(TorchLayer(layer))
            act = getattr(layer, "activation", None)
            if act is not None:
                mods.append(TorchAct(pynn.activations.serialize(act)))
        else:
            raise TypeError(f"to_torch: no torch equivalent for {type(layer).__name__}")
    return torch.nn.Sequential(*mods)


def torch_weight_grads(tmodel) -> list[np.ndarray]:
    """The torch gradients in pynn's variable order and layout (kernel transposed, then bias)."""
    out = []
    for mod in tmodel:
        if isinstance(mod, torch.nn.Linear):
            out.append(mod.weight.grad.numpy().T)
            if mod.bias is not None:
                out.append(mod.bias.grad.numpy())
        elif isinstance(mod, TorchLayer):
            out.extend(p.grad.numpy() for p in mod.trainable)
    return out


def torch_penalty(model, tmodel) -> torch.Tensor:
    """The L1/L2 penalties of the pynn model's Dense layers, written by hand on the torch
    weights."""
    total = torch.zeros((), dtype=torch.float64)
    linears = [m for m in tmodel if isinstance(m, torch.nn.Linear)]
    denses = [layer for layer in model.layers if isinstance(layer, pynn.layers.Dense)]
    for layer, lin in zip(denses, linears):
        for reg, w in ((layer.kernel_regularizer, lin.weight), (layer.bias_regularizer, lin.bias)):
            if reg is not None and w is not None:
                total = total + reg.l1 * w.abs().sum() + reg.l2 * (w * w).sum()
    return total


def torch_loss(loss: str, from_logits: bool, out, logits, y):
    """Keras 3's loss (reduction sum_over_batch_size) in torch.

    `out` is the model's output, `logits` the input of its final softmax/sigmoid (None when the
    output has neither). As pynn (and Keras's TensorFlow backend) do, a softmax output feeding a
    categorical loss, or a sigmoid output feeding binary cross-entropy, is computed from the
    logits exactly; other probabilities are normalised (categorical) and clipped to
    [1e-7, 1 - 1e-7].
    """
    C = out.shape[-1]
    if loss in ("mean_squared_error", "mse"):
        return ((out - y) ** 2).mean()
    if loss in ("mean_absolute_error", "mae"):
        return (out - y).abs().mean()
    if loss == "binary_crossentropy":
        if from_logits:
            return F.binary_cross_entropy_with_logits(out, y)
        if logits is not None:
            return F.binary_cross_entropy_with_logits(logits, y)
        p = out.clamp(EPS, ONE_MINUS_EPS)
        return (-(y * p.log() + (1 - y) * (1 - p).log())).mean()
    if loss == "categorical_crossentropy":
        if from_logits or logits is not None:
            z = out if from_logits else logits
            return (-(y * F.log_softmax(z, dim=-1)).sum(-1)).mean()
        q = (out / out.sum(-1, keepdim=True)).clamp(EPS, ONE_MINUS_EPS)
        return (-(y * q.log()).sum(-1)).mean()
    if loss == "sparse_categorical_crossentropy":
        labels = y.reshape(-1).long()
        if from_logits or logits is not None:
            z = out if from_logits else logits
            return F.cross_entropy(z.reshape(-1, C), labels)
        q = (out / out.sum(-1, keepdim=True)).clamp(EPS, ONE_MINUS_EPS).reshape(-1, C)
        return -(q.gather(1, labels[:, None]).log()).mean()
    raise ValueError(f"torch_loss: unknown loss {loss!r}")


def torch_forward(model, x, y):
    """Runs the torch replica of `model` on x: (output, loss, dx, weight gradients, replica)."""
    tmodel = to_torch(model)
    xt = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    yt = torch.tensor(np.asarray(y, dtype=np.int64 if np.asarray(y).dtype.kind in "iu"
                                 else np.float64))
    h, logits = xt, None
    for mod in tmodel:
        if mod is tmodel[-1] and isinstance(mod, TorchAct):
            logits = h
        h = mod(h)
    out = h
    loss_name, from_logits = model.loss.core_name, model.loss.from_logits
    last = tmodel[-1]
    fused = (not from_logits and isinstance(last, TorchAct) and
             ((last.name == "softmax" and "categorical" in loss_name) or
              (last.name == "sigmoid" and loss_name == "binary_crossentropy")))
    loss = torch_loss(loss_name, from_logits, out, logits if fused else None, yt)
    loss = loss + torch_penalty(model, tmodel)
    loss.backward()
    return (out.detach().numpy(), loss.item(), xt.grad.numpy(), torch_weight_grads(tmodel),
            tmodel)


def assert_close(name, actual, expected, rtol, atol):
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, rtol=rtol,
                               atol=atol, err_msg=name)


def torch_parity(model, x, y, rtol=2e-4, atol=1e-5, training=False):
    """Checks pynn against its float64 torch replica: prediction, loss (regularizers included),
    dloss/dx and every weight's gradient. Gradient tolerances scale with the largest gradient.
    With training=True the replica computes the training forward (batch norm on batch
    statistics), which predict does not, so only the training step's loss and gradients are
    compared.

    Returns:
        (pynn's core gradients, torch's results), for further checks.
    """
    x = np.asarray(x, dtype=np.float32)
    t_out, t_loss, t_dx, t_grads, _ = torch_forward(model, x, y)
    if not training:
        out = model.predict(x, verbose=0)
        assert_close("output", out, t_out, rtol, atol * max(1.0, np.abs(t_out).max()))
    loss, dx, grads = core_gradients(model, x, y)
    assert_close("loss", loss, t_loss, rtol, atol * max(1.0, abs(t_loss)))
    assert_close("dloss/dx", dx, t_dx, rtol, atol * max(1e-3, np.abs(t_dx).max()) * 10)
    assert len(grads) == len(t_grads), "pynn and torch have different numbers of weights"
    for k, (g, tg) in enumerate(zip(grads, t_grads)):
        assert_close(f"dloss/dweight[{k}]", g, tg, rtol, atol * max(1e-3, np.abs(tg).max()) * 10)
    return (loss, dx, grads), (t_out, t_loss, t_dx, t_grads)


class Affine(pynn.layers.Layer):
    """A user layer for the saving and pickling tests: x W + b with its own `units` and a
    `note` in its config."""

    def __init__(self, units, note="", **kwargs):
        super().__init__(**kwargs)
        self.units, self.note = units, note

    def build(self, input_shape):
        self.add_weight((input_shape[-1], self.units), "glorot_uniform", name="w")
        self.add_weight((self.units,), "ones", name="b")
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def lower(self, core, node):
        node, _ = core.add_node("dense", (node,), tuple(self._var_ids))
        return node

    def get_config(self):
        return {**super().get_config(), "units": self.units, "note": self.note}


# -- comparisons with Keras 3 ---------------------------------------------------------------------
KERAS_REFERENCE = Path(__file__).parent / "keras_reference"


def keras_reference_module(name: str):
    """tests/keras_reference/<name>.py, a script that runs the same under pynn and Keras 3, loaded
    as a module (its run() gives pynn's values)."""
    spec = importlib.util.spec_from_file_location(f"{name}_ref", KERAS_REFERENCE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def keras_reference_values(name: str) -> dict:
    """What Keras 3 gave for tests/keras_reference/<name>.py, kept beside it in <name>.npz."""
    return dict(np.load(KERAS_REFERENCE / f"{name}.npz"))


def keras_values_now(name: str, python: str, backend: str, folder, timeout: int = 600) -> dict:
    """tests/keras_reference/<name>.py run by Keras 3 now, under `python` (a Python with keras
    and the backend installed) through shared/tools/keras_ref.py: the values it saves."""
    import os
    import subprocess

    tool = Path(__file__).resolve().parents[2] / "shared" / "tools" / "keras_ref.py"
    out = Path(folder) / f"{name}_now.npz"
    subprocess.run([python, str(tool), str(KERAS_REFERENCE / f"{name}.py"), str(out)],
                   check=True, env={**os.environ, "KERAS_BACKEND": backend}, timeout=timeout)
    return dict(np.load(out))
