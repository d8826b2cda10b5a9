"""ConvLSTM1D, ConvLSTM2D and ConvLSTM3D: Keras 3's convolutional LSTMs, RNN over a cell
written with pynn.ops.conv (unrolled one timestep at a time into the core graph).

The reference is the ConvLSTM equations in a PyTorch loop (float64, F.conv1d/2d/3d): gates
i, f, c, o on blocks of `filters` channels of z = conv(x_t, kernel; the layer's strides, padding
and dilation) + conv(h, recurrent_kernel; stride 1, 'same') + bias. A few outputs of Keras 3
itself (jax backend, weights drawn as `_data` draws them) are kept below as numbers.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import grad_check

import pynn
from pynn import layers as L

RTOL, ATOL = 2e-4, 2e-5
TORCH_ACT = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": F.relu,
             "hard_sigmoid": lambda z: torch.clamp(z / 6 + 0.5, 0, 1)}
TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _t(a):
    return torch.tensor(np.asarray(a, dtype=np.float64))


def _conv(x, kernel, strides, padding, dilation):
    """Keras's conv of channels-first x (B, C, *sp) with a Keras kernel (*k, in, out)."""
    n = x.dim() - 2
    w = kernel.permute(n + 1, n, *range(n))  # (out, in, *k)
    if padding == "same":  # TensorFlow's rule: the extra one after
        pads = []
        for size, k, s, d in zip(x.shape[2:], kernel.shape[:n], strides, dilation):
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        x = F.pad(x, [p for pair in reversed(pads) for p in pair])
    return TORCH_CONV[n](x, w, stride=tuple(strides), dilation=tuple(dilation))


def reference(layer, x, states=None):
    """(sequence of h in processing order, h, c) of `layer` on x, in layer's data format."""
    first = layer.data_format == "channels_first"
    n, f = layer.rank, layer.filters
    xt = _t(x)
    if not first:  # to (B, T, C, *sp)
        xt = xt.permute(0, 1, n + 2, *range(2, n + 2))
    kernel, rkernel = _t(layer.cell.kernel.numpy()), _t(layer.cell.recurrent_kernel.numpy())
    bias = _t(layer.cell.bias.numpy()) if layer.use_bias else None
    act, ract = TORCH_ACT[layer.activation], TORCH_ACT[layer.recurrent_activation]
    h = c = None
    if states is not None:
        h, c = (_t(s) if first else _t(s).permute(0, n + 1, *range(1, n + 1)) for s in states)
    seq = []
    steps = range(xt.shape[1] - 1, -1, -1) if layer.go_backwards else range(xt.shape[1])
    for t in steps:
        z = _conv(xt[:, t], kernel, layer.strides, layer.padding, layer.dilation_rate)
        if h is None:
            h = c = torch.zeros_like(z[:, :f])
        z = z + _conv(h, rkernel, (1,) * n, "same", (1,) * n)
        if bias is not None:
            z = z + bias.reshape((-1,) + (1,) * n)
        i, fg, g, o = (z[:, k * f:(k + 1) * f] for k in range(4))
        c = ract(fg) * c + ract(i) * act(g)
        h = ract(o) * act(c)
        seq.append(h)
    seq = torch.stack(seq, 1)
    if not first:
        seq = seq.permute(0, 1, *range(3, n + 3), 2)
        h, c = (s.permute(0, *range(2, n + 2), 1) for s in (h, c))
    return [s.numpy().astype(np.float32) for s in (seq, h, c)]


def randomize(model, seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.uniform(-scale, scale, w.shape).astype(np.float32))


# -- Keras 3's own outputs -------------------------------------------------------------------
# Keras (jax) with x = _data(*shape, seed=1) and weight k set to _data(*its shape, seed=10+k) / 2.
KERAS_CASES = {
    "2d": (L.ConvLSTM2D, dict(filters=2, kernel_size=2), (1, 3, 3, 3, 2), [
        0.423708, -0.526568, 0.325061, 0.007901, 0.412752, -0.094671, 0.260453, -0.185176]),
    "1d_strided_same_backwards": (
        L.ConvLSTM1D, dict(filters=2, kernel_size=3, strides=2, padding="same",
                           return_sequences=True, go_backwards=True), (1, 3, 5, 2), [
            0.119913, 0.008282, 0.179565, 0.060438, 0.148387, -0.109958,
            0.155209, -0.072936, 0.256178, -0.035371, 0.313312, -0.173777,
            0.236036, -0.190225, 0.309415, -0.136314, 0.186817, -0.117658]),
    "2d_channels_first_dilated": (
        L.ConvLSTM2D, dict(filters=2, kernel_size=(2, 3), padding="same",
                           data_format="channels_first", dilation_rate=(1, 2)), (1, 2, 2, 3, 4), [
            0.263325, 0.139162, 0.284637, 0.318503, 0.244376, -0.058894,
            0.053767, 0.166096, 0.220527, 0.031307, 0.168470, 0.069237,
            0.052321, -0.414549, -0.006518, 0.002917, -0.289756, -0.095126,
            -0.435960, -0.056338, -0.067365, -0.147226, -0.138091, -0.286050]),
}


@pytest.mark.parametrize("case", list(KERAS_CASES))
def test_outputs_match_keras(case):
    cls, kwargs, shape, want = KERAS_CASES[case]
    layer = cls(**kwargs)
    model = pynn.Sequential([pynn.Input(shape[1:]), layer])
    for k, w in enumerate(layer.weights):
        w.assign(_data(*w.shape, seed=10 + k) * 0.5)
    x = _data(*shape, seed=1)
    got = model.predict(x, verbose=0)
    np.testing.assert_allclose(got.reshape(-1), want, atol=2e-6)
    np.testing.assert_allclose(got, reference(layer, x)[0 if layer.return_sequences else 1],
                               rtol=RTOL, atol=ATOL)


# -- the equations, every option -------------------------------------------------------------
CASES = {
    "1d": (L.ConvLSTM1D, dict(filters=3, kernel_size=3), (4, 7, 2)),
    "1d_same_dilated": (L.ConvLSTM1D, dict(filters=2, kernel_size=2, padding="same",
                                           dilation_rate=2), (3, 6, 2)),
    "2d_strided": (L.ConvLSTM2D, dict(filters=2, kernel_size=(3, 2), strides=(2, 1)),
                   (3, 6, 5, 2)),
    "2d_same_nobias_backwards": (L.ConvLSTM2D, dict(filters=3, kernel_size=3, padding="same",
                                                    use_bias=False, go_backwards=True),
                                 (3, 4, 4, 1)),
    "2d_activations": (L.ConvLSTM2D, dict(filters=2, kernel_size=2, activation="relu",
                                          recurrent_activation="hard_sigmoid"), (3, 4, 3, 2)),
    "2d_channels_first": (L.ConvLSTM2D, dict(filters=2, kernel_size=2, strides=2,
                                             padding="same", data_format="channels_first"),
                          (3, 2, 5, 4)),
    "3d": (L.ConvLSTM3D, dict(filters=2, kernel_size=2), (2, 3, 3, 4, 1)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_sequence_and_states_match_reference(case):
    cls, kwargs, shape = CASES[case]
    layer = cls(**kwargs, return_sequences=True, return_state=True)
    inp = pynn.Input(shape)
    model = pynn.Model(inp, layer(inp))
    randomize(model, 1)
    x = _data(2, *shape, seed=2)
    got = model.predict(x, verbose=0)
    for g, w, what in zip(got, reference(layer, x), ("sequence", "h", "c")):
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL, err_msg=what)


def test_last_output_is_the_final_state():
    layer = L.ConvLSTM2D(2, 2, return_state=True)
    inp = pynn.Input((3, 4, 4, 2))
    model = pynn.Model(inp, layer(inp))
    randomize(model, 3)
    x = _data(2, 3, 4, 4, 2, seed=4)
    out, h, c = model.predict(x, verbose=0)
    np.testing.assert_array_equal(out, h)
    np.testing.assert_allclose(c, reference(layer, x)[2], rtol=RTOL, atol=ATOL)


def test_initial_state_starts_the_recurrence():
    layer = L.ConvLSTM1D(2, 3, padding="same")
    x_in, h_in, c_in = pynn.Input((3, 5, 2)), pynn.Input((5, 2)), pynn.Input((5, 2))
    model = pynn.Model([x_in, h_in, c_in], layer(x_in, initial_state=[h_in, c_in]))
    randomize(model, 5)
    x, h, c = _data(2, 3, 5, 2, seed=6), _data(2, 5, 2, seed=7), _data(2, 5, 2, seed=8)
    np.testing.assert_allclose(model.predict([x, h, c], verbose=0),
                               reference(layer, x, (h, c))[1], rtol=RTOL, atol=ATOL)


def test_runs_on_data_outside_a_model():
    layer = L.ConvLSTM2D(2, 2, return_sequences=True)
    x = _data(2, 3, 4, 4, 1, seed=9)
    got = np.asarray(layer(x))
    np.testing.assert_allclose(got, reference(layer, x)[0], rtol=RTOL, atol=ATOL)


# -- shapes, weights, names, configs ---------------------------------------------------------
@pytest.mark.parametrize("layer, shape, want", [
    (L.ConvLSTM1D(8, 3), (None, 5, 20, 2), (None, 18, 8)),
    (L.ConvLSTM1D(4, 3, strides=2, padding="same", return_sequences=True), (None, 5, 9, 2),
     (None, 5, 5, 4)),
    (L.ConvLSTM2D(16, 3, padding="same", return_sequences=True), (None, 10, 32, 32, 3),
     (None, 10, 32, 32, 16)),
    (L.ConvLSTM2D(4, 3, data_format="channels_first"), (None, 2, 3, 8, 9), (None, 4, 6, 7)),
    (L.ConvLSTM3D(4, 3), (None, 3, 8, 8, 8, 1), (None, 6, 6, 6, 4)),
])
def test_output_shapes(layer, shape, want):
    assert layer.compute_output_shape(shape) == want
    assert pynn.Sequential([pynn.Input(shape[1:]), layer]).output_shape == want


def test_return_state_shapes():
    layer = L.ConvLSTM2D(3, 2, return_state=True, return_sequences=True)
    outs = layer(pynn.Input((4, 5, 6, 2)))
    assert [tuple(o.shape) for o in outs] == [(None, 4, 4, 5, 3), (None, 4, 5, 3),
                                              (None, 4, 5, 3)]


def test_weights_are_keras_names_and_shapes():
    layer = L.ConvLSTM2D(3, (2, 3))
    pynn.Sequential([pynn.Input((4, 5, 6, 2)), layer])
    assert [(w.path, w.shape) for w in layer.weights] == [
        (f"{layer.name}/conv_lstm_cell/kernel", (2, 3, 2, 12)),
        (f"{layer.name}/conv_lstm_cell/recurrent_kernel", (2, 3, 3, 12)),
        (f"{layer.name}/conv_lstm_cell/bias", (12,))]
    np.testing.assert_array_equal(layer.cell.bias.numpy(), [0] * 3 + [1] * 3 + [0] * 6)
    layer = L.ConvLSTM1D(2, 2, use_bias=False, unit_forget_bias=False)
    pynn.Sequential([pynn.Input((4, 5, 2)), layer])
    assert [w.shape for w in layer.weights] == [(2, 2, 8), (2, 2, 8)]


def test_default_names():
    assert L.ConvLSTM1D(2, 2).name.startswith("conv_lstm1d")
    assert L.ConvLSTM2D(2, 2).name.startswith("conv_lstm2d")
    assert L.ConvLSTM3D(2, 2).name.startswith("conv_lstm3d")
    assert L.ConvLSTM2D(2, 2).cell.name == "conv_lstm_cell"


KERAS_KEYS = [
    "name", "trainable", "dtype", "return_sequences", "return_state", "go_backwards", "stateful",
    "unroll", "zero_output_for_mask", "filters", "kernel_size", "strides", "padding",
    "data_format", "dilation_rate", "activation", "recurrent_activation", "use_bias",
    "kernel_initializer", "recurrent_initializer", "bias_initializer", "unit_forget_bias",
    "kernel_regularizer", "recurrent_regularizer", "bias_regularizer", "activity_regularizer",
    "kernel_constraint", "recurrent_constraint", "bias_constraint", "dropout",
    "recurrent_dropout", "seed"]


def test_config_has_keras_keys_and_round_trips():
    layer = L.ConvLSTM2D(3, (2, 3), strides=2, padding="same", recurrent_activation="relu",
                         use_bias=False, unit_forget_bias=False, return_sequences=True,
                         go_backwards=True, kernel_regularizer="l2", seed=4, name="clstm")
    config = layer.get_config()
    assert set(config) | {"dtype"} == set(KERAS_KEYS)  # pynn gives dtype when not float32
    assert config["kernel_size"] == (2, 3) and config["strides"] == (2, 2)
    assert config["dilation_rate"] == (1, 1) and config["data_format"] == "channels_last"
    again = L.ConvLSTM2D.from_config(config)
    assert again.get_config() == config
    assert L.deserialize(L.serialize(layer)).get_config() == config
    assert L.ConvLSTM3D.from_config(L.ConvLSTM3D(2, 2).get_config()).kernel_size == (2, 2, 2)


def test_saved_model_loads_and_predicts_the_same(tmp_path):
    model = pynn.Sequential([pynn.Input((3, 5, 2)),
                             L.ConvLSTM1D(3, 2, return_sequences=True),
                             L.ConvLSTM1D(2, 2, go_backwards=True)])
    randomize(model, 11)
    x = _data(2, 3, 5, 2, seed=12)
    before = model.predict(x, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = pynn.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), before)
    assert [w.path for w in loaded.weights] == [w.path for w in model.weights]


# -- gradients and training ------------------------------------------------------------------
@pytest.mark.parametrize("make, shape", [
    (lambda: L.ConvLSTM1D(2, 2, padding="same", return_sequences=True), (3, 4, 2)),
    (lambda: L.ConvLSTM2D(2, 2, strides=2, go_backwards=True), (2, 4, 3, 1)),
], ids=["1d_sequences", "2d_strided_backwards"])
def test_gradients_match_finite_differences(make, shape):
    model = pynn.Sequential([pynn.Input(shape), make()])
    randomize(model, 13)
    model.compile(optimizer="sgd", loss="mse")
    x = _data(2, *shape, seed=14)
    y = _data(2, *model.output_shape[1:], seed=15)
    grad_check(model._core, x, y, var_ids=[w._vid for w in model.weights], max_entries=12)


def test_trains_in_a_model():
    pynn.utils.set_random_seed(0)
    layer = L.ConvLSTM2D(4, 3, padding="same")
    model = pynn.Sequential([pynn.Input((3, 5, 5, 1)), layer, L.GlobalAveragePooling2D(),
                             L.Dense(1)])
    x = _data(32, 3, 5, 5, 1, seed=16)
    y = x.mean(axis=(1, 2, 3, 4))[:, None] * 3
    model.compile(optimizer=pynn.optimizers.Adam(0.02), loss="mse")
    before = [w.numpy() for w in layer.weights]
    hist = model.fit(x, y, epochs=25, batch_size=8, verbose=0)
    assert hist.history["loss"][-1] < 0.3 * hist.history["loss"][0]
    assert all(np.abs(w.numpy() - b).max() > 1e-3 for w, b in zip(layer.weights, before))


# -- bad arguments ---------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, error, match", [
    (dict(filters=0, kernel_size=2), ValueError, "filters"),
    (dict(filters=2.0, kernel_size=2), ValueError, "filters"),
    (dict(filters=2, kernel_size=(2, 2, 2)), ValueError, "kernel_size"),
    (dict(filters=2, kernel_size=2, strides=0), ValueError, "strides"),
    (dict(filters=2, kernel_size=2, strides=2, dilation_rate=2), ValueError, "dilation_rate"),
    (dict(filters=2, kernel_size=2, padding="causal"), ValueError, "padding"),
    (dict(filters=2, kernel_size=2, data_format="nhwc"), ValueError, "data_format"),
    (dict(filters=2, kernel_size=2, activation="nope"), ValueError, "activation"),
    (dict(filters=2, kernel_size=2, dropout=0.2), NotImplementedError, "dropout"),
    (dict(filters=2, kernel_size=2, recurrent_dropout=0.2), NotImplementedError, "dropout"),
    (dict(filters=2, kernel_size=2, dropout=1.5), ValueError, "dropout"),
    (dict(filters=2, kernel_size=2, stateful=True), NotImplementedError, "stateful"),
    (dict(filters=2, kernel_size=2, return_sequences="yes"), ValueError, "return_sequences"),
])
def test_bad_arguments_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        L.ConvLSTM2D(**kwargs)


@pytest.mark.parametrize("shape, match", [
    ((3, 5, 2), "rank 5"),
    ((3, 5, 5, 2, 1), "rank 5"),
    ((3, None, 5, 2), "must be known"),
    ((3, 1, 5, 2), "larger than the input"),
])
def test_bad_inputs_are_refused(shape, match):
    with pytest.raises(ValueError, match=match):
        pynn.Sequential([pynn.Input(shape), L.ConvLSTM2D(2, 2)])


def test_bad_initial_state_is_refused():
    layer = L.ConvLSTM2D(2, 2)
    x_in, h_in = pynn.Input((3, 4, 4, 1)), pynn.Input((4, 4, 2))
    with pytest.raises(ValueError, match=r"initial state must be \(None, 3, 3, 2\)"):
        layer(x_in, initial_state=[h_in, h_in])
    with pytest.raises(ValueError, match="2 initial states"):
        L.ConvLSTM2D(2, 2)(x_in, initial_state=[h_in])
