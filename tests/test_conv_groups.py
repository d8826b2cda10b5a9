"""Grouped convolutions: Keras 3's `groups` on Conv1D and Conv2D. The input channels and the
filters split into `groups` blocks, block g of the output convolving block g of the input with
its own (kernel_size, in_channels // groups, filters // groups) kernel slice. Checked against
PyTorch's groups= (forward and every gradient, channels last and first), finite differences,
the same layer called on data and under a tape, mixed bfloat16, the ungrouped path (groups=1
unchanged, bitwise), the same convolution written as separate convolutions, configs and saved
models, and refusals of bad arguments (the file fuzzer's corrupted configs included)."""

import json
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from helpers import core_gradients, grad_check, make_model, torch_parity  # noqa: E402

import pynn  # noqa: E402
from pynn import _core, layers, mixed_precision  # noqa: E402


def data(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# -- parity with PyTorch ----------------------------------------------------------------------
CONV2D = {  # on (7, 6, 8) images
    "g2_3x3_valid": dict(filters=6, kernel_size=3, groups=2),
    "g4_3x3_same": dict(filters=8, kernel_size=3, padding="same", groups=4),
    "g8_depthwise_same": dict(filters=8, kernel_size=3, padding="same", groups=8),
    "g8_two_filters_each": dict(filters=16, kernel_size=(2, 3), groups=8),
    "g2_stride2_same": dict(filters=4, kernel_size=3, strides=2, padding="same", groups=2),
    "g4_stride_2_1": dict(filters=8, kernel_size=(3, 2), strides=(2, 1), groups=4),
    "g2_dilation2": dict(filters=6, kernel_size=3, dilation_rate=2, groups=2),
    "g4_dilation_same_nobias": dict(filters=4, kernel_size=(3, 2), dilation_rate=(2, 1),
                                    padding="same", groups=4, use_bias=False),
    "g2_1x1": dict(filters=6, kernel_size=1, groups=2),
    "g4_1x1_stride2": dict(filters=4, kernel_size=1, strides=2, groups=4),
}


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("cfg", CONV2D.values(), ids=CONV2D.keys())
def test_conv2d_groups_match_torch(cfg, batch):
    m = make_model((7, 6, 8), [layers.Conv2D(**cfg), layers.Flatten(), layers.Dense(2)])
    torch_parity(m, data((batch, 7, 6, 8)), data((batch, 2), seed=1))


CONV1D = {  # on (9, 4) sequences
    "g2_valid": dict(filters=4, kernel_size=3, groups=2),
    "g4_same": dict(filters=8, kernel_size=3, padding="same", groups=4),
    "g2_causal_dilation2": dict(filters=6, kernel_size=3, padding="causal", dilation_rate=2,
                                groups=2),
    "g2_stride2": dict(filters=4, kernel_size=2, strides=2, groups=2),
}


@pytest.mark.parametrize("cfg", CONV1D.values(), ids=CONV1D.keys())
def test_conv1d_groups_match_torch(cfg):
    m = make_model((9, 4), [layers.Conv1D(**cfg)])
    torch_parity(m, data((2, 9, 4)), data((2,) + m.output_shape[1:], seed=1))


def test_a_stack_of_grouped_convolutions_matches_torch():
    """the second layer's input gradient goes through the grouped col2im"""
    m = make_model((10, 9, 8), [layers.Conv2D(8, 3, padding="same", groups=4, activation="tanh"),
                                layers.Conv2D(12, 3, strides=2, groups=2, activation="relu"),
                                layers.Conv2D(6, 1, groups=6)])
    torch_parity(m, data((4, 10, 9, 8)), data((4,) + m.output_shape[1:], seed=1))


def _torch_nchw(x, kernel, bias, groups, **kw):
    """F.conv1d/conv2d on channels-first x with a Keras kernel (..., in // groups, out)."""
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    perm = (2, 1, 0) if kernel.ndim == 3 else (3, 2, 0, 1)
    wt = torch.tensor(kernel.transpose(perm), dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(bias, dtype=torch.float64, requires_grad=True)
    conv = F.conv1d if kernel.ndim == 3 else F.conv2d
    return xt, wt, bt, conv(xt, wt, bt, groups=groups, **kw)


@pytest.mark.parametrize("rank", [1, 2])
def test_channels_first_groups_match_torch_forward_and_backward(rank):
    x = data((3, 8, 9, 7) if rank == 2 else (3, 8, 11), seed=2)
    Conv = layers.Conv2D if rank == 2 else layers.Conv1D
    conv = Conv(12, 3, strides=2, groups=4, data_format="channels_first")
    model = pynn.Sequential([pynn.Input(x.shape[1:]), conv])
    model.compile(loss="mse")
    kernel, bias = conv.get_weights()
    assert kernel.shape == (3,) * rank + (2, 12)
    y = data((3,) + model.output_shape[1:], seed=3)
    xt, wt, bt, out = _torch_nchw(x, kernel, bias, 4, stride=2)
    loss = ((out - torch.tensor(y, dtype=torch.float64)) ** 2).mean()
    loss.backward()
    np.testing.assert_allclose(model.predict(x, verbose=0), out.detach().numpy(), rtol=1e-4,
                               atol=1e-5)
    got_loss, dx, (dk, db) = core_gradients(model, x, y)
    perm = (2, 1, 0) if rank == 1 else (2, 3, 1, 0)
    np.testing.assert_allclose(got_loss, loss.item(), rtol=1e-4)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(dk, wt.grad.numpy().transpose(perm), rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-3, atol=1e-6)


# -- finite differences ----------------------------------------------------------------------
@pytest.mark.parametrize("groups", [2, 4])
def test_grouped_gradients_match_finite_differences(groups):
    m = make_model((6, 5, 4), [layers.Conv2D(4, 3, padding="same", groups=groups),
                               layers.Conv2D(4, 2, strides=2, groups=groups)])
    grad_check(m, data((2, 6, 5, 4)), data((2,) + m.output_shape[1:], seed=1))


def test_grouped_conv1d_gradients_match_finite_differences():
    m = make_model((9, 6), [layers.Conv1D(6, 3, padding="causal", dilation_rate=2, groups=3)])
    grad_check(m, data((2, 9, 6)), data((2, 9, 6), seed=1))


# -- called on data ---------------------------------------------------------------------------
@pytest.mark.parametrize("training", [False, True])
def test_grouped_layer_on_data_and_under_a_tape(training):
    """A grouped layer called on data computes as in a model; under a tape its gradients are
    PyTorch's, also when called with training=False (its backward then makes its columns
    again, with scratch sized for a backward)."""
    conv = layers.Conv2D(6, 3, padding="same", groups=3)
    model = pynn.Sequential([pynn.Input((5, 6, 6)), conv])
    x = data((2, 5, 6, 6))
    np.testing.assert_allclose(conv(x).numpy(), model.predict(x, verbose=0), rtol=1e-6,
                               atol=1e-6)
    g = data((2, 5, 6, 6), seed=4)
    xt = pynn.ops.convert_to_tensor(x)
    with pynn.GradientTape() as tape:
        tape.watch(xt)
        loss = pynn.ops.sum(conv(xt, training=training) * g)
    dx, dk, db = tape.gradient(loss, [xt, conv.kernel, conv.bias])
    kernel, bias = conv.get_weights()
    tx, tw, tb, out = _torch_nchw(x.transpose(0, 3, 1, 2), kernel, bias, 3, padding=1)
    (out * torch.tensor(g.transpose(0, 3, 1, 2), dtype=torch.float64)).sum().backward()
    np.testing.assert_allclose(np.asarray(dx), tx.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(np.asarray(dk), tw.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(np.asarray(db), tb.grad.numpy(), rtol=1e-4, atol=1e-5)


# -- mixed precision ----------------------------------------------------------------------------
def _bf16(a):
    """a rounded to bfloat16 (to nearest, ties to even), as float32"""
    u = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


@pytest.mark.parametrize("path", ["kernel", "emulation"])
def test_mixed_bfloat16_grouped_products_read_bfloat16(path):
    """Each group's product (3x3x4 = 36 terms, enough for the bfloat16 kernel) reads
    bfloat16-rounded inputs and weights and sums in float32."""
    _core.cpu_disable("avx512_bf16" if path == "emulation" else "")
    try:
        mixed_precision.set_global_policy("mixed_bfloat16")
        model = pynn.Sequential([pynn.Input((6, 7, 8)),
                                 layers.Conv2D(6, 3, padding="same", groups=2)])
    finally:
        mixed_precision.set_global_policy("float32")
    try:
        kernel, bias = (data(w.shape, seed=5 + i) for i, w in enumerate(model.get_weights()))
        model.set_weights([kernel, bias])
        x = data((3, 6, 7, 8), seed=7)
        got = model.predict(x, verbose=0)
        *_, want = _torch_nchw(_bf16(x).transpose(0, 3, 1, 2), _bf16(kernel), bias, 2,
                               padding=1)
        want = want.detach().numpy().transpose(0, 2, 3, 1)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        *_, exact = _torch_nchw(x.transpose(0, 3, 1, 2), kernel, bias, 2, padding=1)
        assert np.abs(got - exact.detach().numpy().transpose(0, 2, 3, 1)).max() > 1e-3
    finally:
        _core.cpu_disable("")


# -- the ungrouped path, and the grouped one as separate convolutions --------------------------
def test_groups_1_is_the_ungrouped_op_bitwise(monkeypatch):
    """groups=1 runs exactly what a conv2d node without the groups attribute runs (a graph
    made before groups existed): predictions and gradients equal to the bit."""
    x, y = data((3, 9, 8, 5)), data((3, 4, 4, 7), seed=1)
    runs, attrs = [], layers.Conv2D._conv_attrs
    for legacy in (False, True):
        if legacy:  # the node's attributes as they were: strides, dilations, pads
            monkeypatch.setattr(layers.Conv2D, "_conv_attrs",
                                lambda self, spatial: attrs(self, spatial)[:8])
        m = make_model((9, 8, 5), [layers.Conv2D(6, 3, padding="same", activation="relu"),
                                   layers.Conv2D(7, 2, strides=2, groups=1)], seed=3)
        runs.append((m.predict(x, verbose=0), *core_gradients(m, x, y)))
    (p0, l0, dx0, g0), (p1, l1, dx1, g1) = runs
    np.testing.assert_array_equal(p0, p1)
    assert l0 == l1
    np.testing.assert_array_equal(dx0, dx1)
    for a, b in zip(g0, g1):
        np.testing.assert_array_equal(a, b)


def test_grouped_conv_equals_separate_convolutions_concatenated():
    """Conv2D(groups=G) is G Conv2D layers on the channel blocks, their outputs concatenated:
    the same predictions and gradients (to float32 rounding)."""
    G, cg, fg = 3, 2, 4
    x, y = data((4, 8, 7, G * cg)), data((4, 8, 7, G * fg), seed=1)
    grouped = make_model((8, 7, G * cg), [layers.Conv2D(G * fg, 3, padding="same", groups=G)])
    inp = pynn.Input((8, 7, G * cg))
    parts = [layers.Conv2D(fg, 3, padding="same")(
        layers.Lambda(lambda t, g=g: t[..., g * cg:(g + 1) * cg])(inp)) for g in range(G)]
    split = pynn.Model(inp, layers.Concatenate()(parts))
    split.compile(optimizer="sgd", loss="mse")
    kernel, bias = grouped.get_weights()
    split.set_weights([w for g in range(G) for w in (kernel[..., g * fg:(g + 1) * fg],
                                                     bias[g * fg:(g + 1) * fg])])
    np.testing.assert_allclose(grouped.predict(x, verbose=0), split.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    loss_g, dx_g, (dk, db) = core_gradients(grouped, x, y)
    loss_s, dx_s, grads = core_gradients(split, x, y)
    np.testing.assert_allclose(loss_g, loss_s, rtol=1e-6)
    np.testing.assert_allclose(dx_g, dx_s, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dk, np.concatenate(grads[0::2], -1), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(db, np.concatenate(grads[1::2]), rtol=1e-5, atol=1e-7)


def test_a_grouped_cnn_trains():
    pynn.utils.set_random_seed(0)
    model = pynn.Sequential([
        pynn.Input((8, 8, 4)), layers.Conv2D(8, 3, padding="same", groups=2, activation="relu"),
        layers.Conv2D(8, 3, groups=4, activation="relu"), layers.GlobalAveragePooling2D(),
        layers.Dense(3, activation="softmax")])
    model.compile(optimizer=pynn.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    x = data((64, 8, 8, 4))
    y = (x[..., :2].mean((1, 2, 3)) > 0).astype(np.int32) + (x[..., 2:].mean((1, 2, 3)) > 0)
    history = model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


# -- configs and saving --------------------------------------------------------------------------
KERAS_CONV2D_CONFIG = {  # keras.layers.Conv2D(6, 3, groups=3, padding="same").get_config()
    "name": "gconv", "trainable": True,
    "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
              "registered_name": None},
    "filters": 6, "kernel_size": [3, 3], "strides": [1, 1], "padding": "same",
    "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 3, "activation": "linear",
    "use_bias": True,
    "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                           "config": {"seed": None}, "registered_name": None},
    "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {},
                         "registered_name": None},
    "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
    "kernel_constraint": None, "bias_constraint": None}


def test_keras_config_loads_with_keras_kernel_shape():
    conv = layers.Conv2D.from_config(KERAS_CONV2D_CONFIG)
    pynn.Sequential([pynn.Input((5, 5, 6)), conv])
    assert conv.groups == 3 and conv.kernel.shape == (3, 3, 2, 6)  # Keras's (3, 3, 2, 6)


@pytest.mark.parametrize("make", [lambda: layers.Conv2D(8, 3, groups=4, strides=2),
                                  lambda: layers.Conv1D(6, 2, groups=3, padding="causal")],
                         ids=["conv2d", "conv1d"])
def test_groups_config_round_trips(make):
    layer = make()
    config = layer.get_config()
    assert config["groups"] == layer.groups
    again = type(layer).from_config(json.loads(json.dumps(config)))
    assert again.get_config() == config


def test_saved_grouped_model_loads_and_predicts_identically(tmp_path):
    model = make_model((9, 8, 6), [layers.Conv2D(6, 3, groups=3, padding="same"),
                                   layers.Conv2D(6, 2, groups=3, data_format="channels_first")])
    path = tmp_path / "grouped.keras"
    model.save(path)
    again = pynn.models.load_model(path)
    assert [layer.groups for layer in again.layers] == [3, 3]
    x = data((2, 9, 8, 6))
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


# -- refusals ------------------------------------------------------------------------------------
@pytest.mark.parametrize("Conv", [layers.Conv1D, layers.Conv2D])
@pytest.mark.parametrize("groups", [0, -1, 2.0, "2", True, None, [2]])
def test_bad_groups_are_refused(Conv, groups):
    with pytest.raises(ValueError, match="groups must be a positive int"):
        Conv(4, 3, groups=groups)


@pytest.mark.parametrize("Conv", [layers.Conv1D, layers.Conv2D])
def test_filters_must_divide_into_groups(Conv):
    with pytest.raises(ValueError, match=r"filters must be evenly divisible.*groups=2, "
                                         r"filters=5"):
        Conv(5, 3, groups=2)
    with pytest.raises(ValueError, match="groups=8, filters=4"):  # more groups than filters
        Conv(4, 3, groups=8)


@pytest.mark.parametrize("shape,Conv", [((5, 5, 5), layers.Conv2D), ((7, 6), layers.Conv1D)])
def test_input_channels_must_divide_into_groups(shape, Conv):
    with pytest.raises(ValueError, match=r"input channels must be evenly divisible.*groups=4, "
                                         rf"but the input has {shape[-1]} channels"):
        pynn.Sequential([pynn.Input(shape), Conv(4, 3, groups=4)])


def test_channels_first_checks_the_channel_axis():
    with pytest.raises(ValueError, match="has 5 channels"):
        pynn.Sequential([pynn.Input((5, 8, 8)),
                         layers.Conv2D(4, 3, groups=2, data_format="channels_first")])


def test_transposed_convolutions_take_no_groups():
    """as in Keras 3, whose Conv1DTranspose/Conv2DTranspose have no groups argument"""
    with pytest.raises((TypeError, ValueError)):
        layers.Conv2DTranspose(4, 3, groups=2)


@pytest.mark.parametrize("bad", [0, -3, 5, 2**31, 2**64, 1e308, "x", None, [], {}])
def test_corrupted_groups_in_a_saved_model_raise_value_error(tmp_path, bad):
    """what the file fuzzer's mutated configs meet: ValueError, never TypeError or a crash"""
    model = make_model((6, 6, 4), [layers.Conv2D(4, 3, groups=2)])
    path = tmp_path / "m.keras"
    model.save(path)
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    config = json.loads(members["config.json"])
    layer = next(c for c in config["config"]["layers"] if c["class_name"] == "Conv2D")
    layer["config"]["groups"] = bad
    members["config.json"] = json.dumps(config).encode()
    bad_path = tmp_path / "bad.keras"
    with zipfile.ZipFile(bad_path, "w") as z:
        for name, blob in members.items():
            z.writestr(name, blob)
    with pytest.raises(ValueError):
        pynn.models.load_model(bad_path)
