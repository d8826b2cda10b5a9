"""stateful=True recurrent layers (SimpleRNN, LSTM, GRU, RNN over the built-in cells): the core
op starts from the layer's states and writes its final states into them at every forward
(fit, predict, evaluate, calls on data), until reset_states.

The models of tests/keras_reference/stateful.py are compared with what Keras 3 (TensorFlow)
gave for the same weights and data (stateful.npz); the rest checks the states against one call
on the concatenated sequence, configs and saving, and the refusals."""

import os
import warnings

import numpy as np
import pytest
from helpers import (
    keras_reference_module,
    keras_reference_values,
    keras_values_now,
)

import pynn
from pynn import layers

B, T, F = 4, 5, 3


# ---- against Keras 3 -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def keras_run():
    mod = keras_reference_module("stateful")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mine = mod.run()
    return mine, keras_reference_values("stateful")


@pytest.mark.skipif(not os.environ.get("PYNN_KERAS_TF_PYTHON"),
                    reason="set PYNN_KERAS_TF_PYTHON to a Python with keras and tensorflow")
def test_the_stored_keras_reference_is_what_keras_computes(tmp_path):
    """stateful.npz made again by Keras 3 on TensorFlow now (PYNN_KERAS_TF_PYTHON: a Python
    with keras and tensorflow) equals the stored one. (Keras on JAX keeps no state across the
    batches of its compiled predict and fit; on PyTorch its stateful fit fails.)"""
    fresh = keras_values_now("stateful", os.environ["PYNN_KERAS_TF_PYTHON"], "tensorflow",
                             tmp_path, timeout=900)
    stored = keras_reference_values("stateful")
    assert fresh.keys() == stored.keys()
    for k in stored:
        np.testing.assert_allclose(fresh[k], stored[k], rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("name", ["lstm", "gru", "gru_v1", "simple_rnn", "rnn_cell",
                                  "sequential"])
def test_models_match_keras(keras_run, name):
    """Same weights, same data: a predict over three batches (the states carried from batch to
    batch), a second predict going on from there, reset_states, one epoch of fit with
    shuffle=False, evaluate and a call on data, with the states after each, as Keras 3
    computes them."""
    mine, ref = keras_run
    keys = sorted(k for k in ref if k.startswith(name + "/"))
    assert keys and set(keys) == {k for k in mine if k.startswith(name + "/")}
    for k in keys:
        np.testing.assert_allclose(mine[k], ref[k], rtol=2e-4, atol=2e-5, err_msg=k)


# ---- the states --------------------------------------------------------------------------------

def _data(n=2 * B, steps=T, seed=0):
    return np.random.RandomState(seed).uniform(-1, 1, (n, steps, F)).astype(np.float32)


def _pair(make, steps=T, seed=1):
    """Two models of one stateful layer type with the same weights: over `steps` and over
    2 `steps` timesteps."""
    models = []
    for s in (steps, 2 * steps):
        i = pynn.Input((s, F), batch_size=B)
        models.append(pynn.Model(i, make()(i)))
    rng = np.random.RandomState(seed)
    ws = [rng.uniform(-0.5, 0.5, w.shape).astype(np.float32) for w in models[0].get_weights()]
    for m in models:
        m.set_weights(ws)
    return models


MAKERS = {
    "lstm": lambda: layers.LSTM(4, stateful=True),
    "gru": lambda: layers.GRU(4, stateful=True),
    "gru_v1": lambda: layers.GRU(3, stateful=True, reset_after=False),
    "simple_rnn": lambda: layers.SimpleRNN(4, stateful=True, activation="relu"),
    "rnn_stack": lambda: layers.RNN([layers.LSTMCell(3), layers.GRUCell(2)], stateful=True),
    "no_bias": lambda: layers.LSTM(2, stateful=True, use_bias=False),
}


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_two_consecutive_batches_equal_one_call_on_the_joined_sequence(kind):
    short, long = _pair(MAKERS[kind])
    a, b = _data(B, seed=2), _data(B, seed=3)
    short.predict(a, batch_size=B, verbose=0)
    second = short.predict(b, batch_size=B, verbose=0)
    whole = long.predict(np.concatenate([a, b], axis=1), batch_size=B, verbose=0)
    np.testing.assert_allclose(second, whole, rtol=1e-5, atol=1e-6)
    for s, w in zip(short.layers[-1].states, long.layers[-1].states):
        np.testing.assert_allclose(s.numpy(), w.numpy(), rtol=1e-5, atol=1e-6)


def test_the_states_are_the_final_states_return_state_gives():
    i = pynn.Input((T, F), batch_size=B)
    lstm = layers.LSTM(3, stateful=True, return_state=True)
    model = pynn.Model(i, lstm(i))
    x = _data(B)
    out, h, c = model.predict(x, batch_size=B, verbose=0)
    np.testing.assert_array_equal(lstm.states[0].numpy(), h)
    np.testing.assert_array_equal(lstm.states[1].numpy(), c)
    np.testing.assert_array_equal(out, h)


def test_reset_states_zeros_them_and_starts_again():
    short, _ = _pair(MAKERS["lstm"])
    layer = short.layers[-1]
    x = _data(B)
    first = short.predict(x, batch_size=B, verbose=0)
    assert np.abs(layer.states[0].numpy()).max() > 0
    assert not np.allclose(short.predict(x, batch_size=B, verbose=0), first)
    layer.reset_states()
    for s in layer.states:
        np.testing.assert_array_equal(s.numpy(), np.zeros((B, 4), np.float32))
    np.testing.assert_array_equal(short.predict(x, batch_size=B, verbose=0), first)
    layer.reset_state()  # Keras 3's name too
    np.testing.assert_array_equal(short.predict(x, batch_size=B, verbose=0), first)
    assert not hasattr(pynn.Model, "reset_states")  # as Keras 3: reset each layer


def test_fit_carries_the_states_across_batches_and_epochs():
    """With a learning rate of 0, fit's forwards are predict's: the states after an epoch of
    fit (shuffle=False) are those after a predict over the same batches, and a second epoch
    goes on from there."""
    short, _ = _pair(MAKERS["gru"])
    layer = short.layers[-1]
    x, y = _data(3 * B), np.zeros((3 * B, 4), np.float32)
    short.predict(x, batch_size=B, verbose=0)
    once = [s.numpy() for s in layer.states]
    short.predict(x, batch_size=B, verbose=0)
    twice = [s.numpy() for s in layer.states]
    layer.reset_states()
    short.compile(optimizer=pynn.optimizers.SGD(0.0), loss="mse")
    short.fit(x, y, batch_size=B, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(layer.states[0].numpy(), once[0], rtol=1e-6, atol=1e-7)
    short.fit(x, y, batch_size=B, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(layer.states[0].numpy(), twice[0], rtol=1e-6, atol=1e-7)


def test_a_layer_called_on_data_keeps_its_states():
    layer = layers.GRU(3, stateful=True)
    a, b = _data(B, seed=4), _data(B, seed=5)
    layer(a)
    assert layer.states[0].shape == (B, 3)
    second = np.asarray(layer(b))
    joined = layers.GRU(3, stateful=True)
    joined(np.concatenate([a, b], axis=1)[:, :1])  # build
    joined.set_weights(layer.get_weights())
    joined.reset_states()
    np.testing.assert_allclose(np.asarray(joined(np.concatenate([a, b], axis=1))), second,
                               rtol=1e-5, atol=1e-6)
    rnn = layers.RNN(layers.SimpleRNNCell(2), stateful=True)
    first = np.asarray(rnn(a))
    np.testing.assert_array_equal(rnn.states[0].numpy(), first)


def test_an_initial_state_given_starts_the_call_and_the_final_states_are_kept():
    i = pynn.Input((T, F), batch_size=B)
    h0 = pynn.Input((3,), batch_size=B)
    layer = layers.SimpleRNN(3, stateful=True)
    model = pynn.Model([i, h0], layer(i, initial_state=[h0]))
    x, h = _data(B), np.full((B, 3), 0.5, np.float32)
    out = model.predict([x, h], batch_size=B, verbose=0)
    np.testing.assert_array_equal(layer.states[0].numpy(), out)
    j, g0 = pynn.Input((T, F)), pynn.Input((3,))
    ref = pynn.Model([j, g0], layers.SimpleRNN(3)(j, initial_state=[g0]))
    ref.set_weights(model.get_weights())
    np.testing.assert_allclose(ref.predict([x, h], verbose=0), out, rtol=1e-6)


def test_masked_steps_carry_the_kept_states():
    """A stateful layer after Embedding(mask_zero=True): masked steps carry the states, and the
    next batch starts from the last kept one: two batches equal one call (no state kept) on the
    joined, masked sequence."""
    a = np.array([[1, 2, 0, 0], [3, 0, 0, 0], [4, 5, 6, 7], [0, 0, 0, 0]], np.int32)
    b = np.array([[0, 1, 1, 0], [2, 2, 0, 0], [0, 0, 0, 0], [5, 0, 4, 0]], np.int32)
    i = pynn.Input((4,), dtype="int32", batch_size=4)
    lstm = layers.LSTM(2, stateful=True)
    model = pynn.Model(i, lstm(layers.Embedding(8, 3, mask_zero=True)(i)))
    j = pynn.Input((8,), dtype="int32")
    joined = pynn.Model(j, layers.LSTM(2)(layers.Embedding(8, 3, mask_zero=True)(j)))
    joined.set_weights(model.get_weights())
    model.predict(a, batch_size=4, verbose=0)
    np.testing.assert_array_equal(lstm.states[0].numpy()[3], np.zeros(2, np.float32))
    second = model.predict(b, batch_size=4, verbose=0)
    want = joined.predict(np.concatenate([a, b], axis=1), verbose=0)
    np.testing.assert_allclose(lstm.states[0].numpy(), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(second[:2], want[:2], rtol=1e-5, atol=1e-6)


# ---- weights, configs, saving ----------------------------------------------------------------

def test_states_are_not_weights_and_carry_keras_names():
    i = pynn.Input((T, F), batch_size=B)
    lstm = layers.LSTM(2, stateful=True, name="lstm")
    model = pynn.Model(i, lstm(i))
    assert [w.path for w in model.weights] == ["lstm/lstm_cell/kernel",
                                              "lstm/lstm_cell/recurrent_kernel",
                                              "lstm/lstm_cell/bias"]
    assert [(v.path, v.shape, v.trainable) for v in lstm.states] == \
        [("lstm/rnn_state", (B, 2), False)] * 2
    assert lstm.count_params() == 3 * 8 + 2 * 8 + 8
    assert layers.LSTM(2).states is None


def test_config_round_trip_and_saving(tmp_path):
    model = pynn.Sequential([pynn.Input(batch_shape=(B, T, F)),
                             layers.LSTM(3, stateful=True, return_sequences=True),
                             layers.GRU(2, stateful=True), layers.Dense(1)])
    config = model.get_config()
    assert config["layers"][0]["config"]["batch_shape"] == (B, T, F)
    assert config["layers"][1]["config"]["stateful"] is True
    again = pynn.Sequential.from_config(config)
    assert again.layers[0].stateful and again.layers[0].states[0].shape == (B, 3)
    x = _data(B)
    model.predict(x, batch_size=B, verbose=0)
    model.save(tmp_path / "s.keras")
    loaded = pynn.models.load_model(tmp_path / "s.keras")
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    # the states are not saved (as Keras): the loaded model starts from zeros
    assert all(not s.numpy().any() for s in loaded.layers[0].states)
    model.layers[0].reset_states()
    model.layers[1].reset_states()
    np.testing.assert_array_equal(loaded.predict(x, batch_size=B, verbose=0),
                                  model.predict(x, batch_size=B, verbose=0))
    layer = layers.RNN(layers.GRUCell(2), stateful=True)
    assert layers.RNN.from_config(layer.get_config()).stateful


def test_a_saved_model_asking_for_huge_states_is_refused(tmp_path):
    model = pynn.Sequential([pynn.Input(batch_shape=(B, T, F)), layers.GRU(2, stateful=True)])
    model.save(tmp_path / "s.keras")
    import json
    import zipfile
    with zipfile.ZipFile(tmp_path / "s.keras") as z:
        files = {n: z.read(n) for n in z.namelist()}
    config = json.loads(files["config.json"])
    config["config"]["layers"][0]["config"]["batch_shape"] = [2**30, T, F]
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "big.keras", "w") as z:
        for n, data in files.items():
            z.writestr(n, data)
    with pytest.raises(ValueError, match="states"):
        pynn.models.load_model(tmp_path / "big.keras")


def test_functional_model_from_config_and_clones_keep_the_batch_size():
    i = pynn.Input((T, F), batch_size=B)
    model = pynn.Model(i, layers.SimpleRNN(2, stateful=True)(i))
    again = pynn.Model.from_config(model.get_config())
    assert again.layers[-1].states[0].shape == (B, 2)
    assert pynn.models.clone_model(model).layers[-1].states[0].shape == (B, 2)
    seq = pynn.Sequential([pynn.Input(batch_shape=(B, T, F)), layers.GRU(2, stateful=True)])
    assert pynn.models.clone_model(seq).layers[0].states[0].shape == (B, 2)


# ---- refusals -----------------------------------------------------------------------------

def test_stateful_without_a_batch_size_is_refused_as_keras():
    for make in (lambda: layers.LSTM(2, stateful=True),
                 lambda: layers.RNN(layers.GRUCell(2), stateful=True)):
        with pytest.raises(ValueError, match="batch size must be static"):
            make()(pynn.Input((T, F)))
    with pytest.raises(ValueError, match="batch size must be static"):
        pynn.Sequential([pynn.Input((T, F)), layers.GRU(2, stateful=True)])


def test_a_batch_of_another_size_is_refused():
    short, _ = _pair(MAKERS["lstm"])
    x = _data(3 * B)
    with pytest.raises(ValueError, match="Expected batch size: 4, received batch size: 3"):
        short.predict(x[:3], batch_size=3, verbose=0)
    with pytest.raises(ValueError, match="Expected batch size: 4"):
        short.predict(x[:6], batch_size=B, verbose=0)  # a last batch of 2
    short.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="Expected batch size: 4"):
        short.fit(x[:8], np.zeros((8, 4), np.float32), batch_size=8, verbose=0)
    with pytest.raises(ValueError, match="Expected batch size: 4"):
        short(x[:2])
    layer = short.layers[-1]
    with pytest.raises(ValueError, match="must be the same as the batch size of the initial"):
        layer(pynn.Input((T, F), batch_size=2))
    gru = layers.GRU(2, stateful=True)
    gru(x[:B])
    with pytest.raises(ValueError, match="Expected batch size: 4"):
        gru(x[:2])


def test_what_cannot_be_stateful_is_refused_clearly():
    class MyCell(layers.Layer):
        state_size = 2

        def build(self, input_shape):
            self.w = self.add_weight((input_shape[-1], 2))

        def call(self, x, states):
            h = pynn.ops.tanh(pynn.ops.matmul(x, self.w) + states[0])
            return h, [h]

    with pytest.raises(NotImplementedError, match="MyCell runs unrolled"):
        layers.RNN(MyCell(), stateful=True)
    with pytest.raises(NotImplementedError, match="stateful"):
        layers.Bidirectional(layers.LSTM(2, stateful=True))
    with pytest.raises(NotImplementedError, match="stateful"):
        layers.ConvLSTM2D(2, 3, stateful=True)
    for bad in ("yes", 1, None):
        with pytest.raises(ValueError, match="stateful"):
            layers.LSTM(2, stateful=bad)
        with pytest.raises(ValueError, match="stateful"):
            layers.RNN(layers.LSTMCell(2), stateful=bad)


@pytest.mark.parametrize("batch_shape", [(0, T, F), (2.5, T, F), ("4", T, F), "abc", ()])
def test_a_bad_batch_shape_is_refused(batch_shape):
    with pytest.raises(ValueError):
        pynn.Input(batch_shape=batch_shape)
    with pytest.raises(ValueError):
        pynn.layers.InputLayer.from_config({"name": "x", "batch_shape": batch_shape})
