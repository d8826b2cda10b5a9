"""Keras's masks end to end: Embedding(mask_zero=True) and Masking make them; recurrent
layers, attention, GlobalAveragePooling1D, user layers and the losses and metrics honour them.

The models of tests/keras_reference/masking.py are compared with what Keras 3 (JAX) gave for
the same weights and data (masking.npz); the rest checks against NumPy."""

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
from pynn import layers, ops


def _ids():
    return np.array([[1, 2, 3, 0, 0], [4, 0, 0, 0, 0], [0, 0, 5, 6, 7], [0, 0, 0, 0, 0]],
                    np.int32)


# ---- against Keras 3 -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def keras_run():
    mod = keras_reference_module("masking")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mine = mod.run()
    return mine, keras_reference_values("masking")


@pytest.mark.skipif(not os.environ.get("PYNN_KERAS_PYTHON"),
                    reason="set PYNN_KERAS_PYTHON to a Python with keras and jax")
def test_the_stored_keras_reference_is_what_keras_computes(tmp_path):
    """masking.npz made again by Keras 3 now (a Python with keras and jax installed, named by
    PYNN_KERAS_PYTHON) equals the stored one: the comparison above is against Keras itself."""
    fresh = keras_values_now("masking", os.environ["PYNN_KERAS_PYTHON"], "jax",
                             tmp_path, timeout=600)
    stored = keras_reference_values("masking")
    assert fresh.keys() == stored.keys()
    for k in stored:
        np.testing.assert_allclose(fresh[k], stored[k], rtol=1e-5, atol=1e-6, err_msg=k)


MODELS = ["lstm", "gru", "gru_v1", "simple_rnn", "bidirectional", "rnn_cells", "attention",
          "per_step", "masking"]


@pytest.mark.parametrize("name", MODELS)
def test_masked_models_match_keras(keras_run, name):
    """Same weights, same padded data: predictions, evaluate's loss and accuracy, two epochs of
    SGD (their losses and accuracies, then every weight) as Keras 3 computes them."""
    mine, ref = keras_run
    keys = sorted(k for k in ref if k.startswith(name + "/"))
    assert keys and set(keys) == {k for k in mine if k.startswith(name + "/")}
    for k in keys:
        want, got = ref[k], mine[k]
        if k == "per_step/fit":
            # Keras on JAX computes fit's metrics on y_pred without its mask (its train_step
            # takes y_pred out of value_and_grad's aux, which drops the mask), while its
            # evaluate, and fit on TensorFlow and torch, leave masked steps out; pynn leaves
            # them out in both. The losses are compared; the accuracies, after the two losses,
            # are checked against the masked definition below.
            want, got = want[:2], got[:2]
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5, err_msg=k)


def test_fit_accuracy_of_a_masked_output_leaves_padding_out():
    """fit's accuracy on a masked per-step output is the mean over the real steps of the
    epoch (what Keras's evaluate computes, and its fit on TensorFlow and torch)."""
    inp = pynn.Input((5,), dtype="int32")
    h = layers.Embedding(10, 4, mask_zero=True)(inp)
    model = pynn.Model(inp, layers.Dense(3, activation="softmax")(h))
    model.compile(optimizer=pynn.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    ids = _ids()[:3]
    y = (ids % 3).astype(np.int32)
    history = model.fit(ids, y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    pred = model.predict(ids, verbose=0).argmax(-1)
    keep = ids > 0
    want = (pred == y)[keep].mean()
    assert history.history["accuracy"][0] == pytest.approx(want, rel=1e-6)
    _, acc = model.evaluate(ids, y, verbose=0)
    assert acc == pytest.approx(want, rel=1e-6)


# ---- making and passing masks ----------------------------------------------------------------

def test_masking_layer_zeroes_masked_steps_and_round_trips():
    x = np.random.RandomState(0).randn(3, 4, 2).astype(np.float32)
    x[0, 1] = 0.0
    x[2, 3] = 0.0
    x[1, 2, 0] = 0.0  # one feature zero only: kept
    inp = pynn.Input((4, 2))
    layer = layers.Masking(mask_value=0.0)
    model = pynn.Model(inp, layer(inp))
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)
    np.testing.assert_array_equal(layer(x), x)
    again = layers.Masking.from_config(layer.get_config())
    assert again.mask_value == 0.0
    with pytest.raises(ValueError, match="mask_value"):
        layers.Masking(mask_value="pad")


def test_masking_layer_masks_steps_for_the_next_layer():
    x = np.arange(24, dtype=np.float32).reshape(3, 4, 2) + 1
    x[0, 2:] = -1.0
    inp = pynn.Input((4, 2))
    out = layers.GlobalAveragePooling1D()(layers.Masking(-1.0)(inp))
    got = pynn.Model(inp, out).predict(x, verbose=0)
    want = np.stack([x[0, :2].mean(0), x[1].mean(0), x[2].mean(0)])
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_global_average_pooling_averages_unmasked_steps():
    inp = pynn.Input((5,), dtype="int32")
    emb = layers.Embedding(10, 3, mask_zero=True)
    h = emb(inp)
    a = layers.GlobalAveragePooling1D()(h)
    b = layers.GlobalAveragePooling1D(keepdims=True)(layers.Dense(2)(h))
    ids = _ids()[:3]
    got_a, got_b = pynn.Model(inp, [a, b]).predict(ids, verbose=0)
    table = emb.get_weights()[0]
    want = np.stack([table[row[row > 0]].mean(0) for row in ids])
    np.testing.assert_allclose(got_a, want, rtol=1e-5, atol=1e-6)
    assert got_b.shape == (3, 1, 2)


def test_a_layer_without_mask_support_drops_the_mask_with_a_warning():
    inp = pynn.Input((5,), dtype="int32")
    h = layers.Flatten()(layers.Embedding(10, 3, mask_zero=True)(inp))
    with pytest.warns(UserWarning, match="does not support masking"):
        model = pynn.Model(inp, layers.Dense(2)(h))
    assert model.predict(_ids(), verbose=0).shape == (4, 2)


def test_mask_passes_through_dense_and_merges():
    """Dense and Dropout pass the mask on; Add combines two (kept where both keep)."""
    inp = pynn.Input((5,), dtype="int32")
    e1 = layers.Embedding(10, 3, mask_zero=True)(inp)
    e2 = layers.Embedding(10, 3)(inp)  # no mask: Add's result has none, as Keras's
    d = layers.Dropout(0.5)(layers.Dense(3)(e1))
    joined = layers.Concatenate()([d, e1])
    pooled = layers.GlobalAveragePooling1D()(joined)
    unmasked = layers.GlobalAveragePooling1D()(layers.Add()([d, e2]))
    model = pynn.Model(inp, [pooled, unmasked, joined])
    p, u, j = model.predict(_ids()[:3], verbose=0)
    keep = (_ids()[:3] > 0)[..., None]
    np.testing.assert_allclose(p, (j * keep).sum(1) / keep.sum(1), rtol=1e-5, atol=1e-6)
    assert np.isfinite(u).all()


def test_sequential_and_functional_masks_agree():
    seq = pynn.Sequential([pynn.Input((5,), dtype="int32"),
                           layers.Embedding(10, 4, mask_zero=True),
                           layers.GlobalAveragePooling1D(), layers.Dense(2)])
    inp = pynn.Input((5,), dtype="int32")
    out = inp
    for layer in seq.layers:
        out = layer(out)
    fun = pynn.Model(inp, out)
    np.testing.assert_allclose(seq.predict(_ids()[:3], verbose=0),
                               fun.predict(_ids()[:3], verbose=0), rtol=1e-6)


def test_attention_masks_equal_an_explicit_attention_mask():
    """A mask from Embedding(mask_zero=True) equals Keras's rule written out as an
    attention_mask: query step i sees key j when both are real."""
    ids = _ids()[:3]
    inp = pynn.Input((5,), dtype="int32")
    mha = layers.MultiHeadAttention(2, 3)
    h = layers.Embedding(10, 4, mask_zero=True)(inp)
    model = pynn.Model(inp, mha(h, h))
    got = model.predict(ids, verbose=0)
    hidden = model.layers[1](ids)  # the embeddings
    keep = (ids > 0).astype(np.float32)
    explicit = mha(np.asarray(hidden), np.asarray(hidden),
                   attention_mask=keep[:, :, None] * keep[:, None, :])
    np.testing.assert_allclose(got, np.asarray(explicit), rtol=1e-5, atol=1e-6)


class MaskedSum(layers.Layer):
    """A user layer whose call() takes Keras's mask."""

    def call(self, inputs, mask=None):
        if mask is None:
            return ops.sum(inputs, axis=1)
        return ops.sum(inputs * ops.expand_dims(ops.cast(mask, "float32"), -1), axis=1)


def test_a_user_call_receives_the_mask():
    inp = pynn.Input((5,), dtype="int32")
    emb = layers.Embedding(10, 3, mask_zero=True)
    out = MaskedSum()(emb(inp))
    with pytest.warns(UserWarning, match="does not support masking"):  # as Keras: no mask out
        model = pynn.Model(inp, out)
    got = model.predict(_ids()[:3], verbose=0)
    table = emb.get_weights()[0]
    want = np.stack([table[row[row > 0]].sum(0) for row in _ids()[:3]])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


class OwnMask(layers.Layer):
    def call(self, inputs):
        return inputs

    def compute_mask(self, inputs, previous_mask=None):
        return previous_mask


def test_a_user_compute_mask_is_refused_clearly():
    inp = pynn.Input((5,), dtype="int32")
    out = OwnMask()(layers.Embedding(10, 3, mask_zero=True)(inp))
    with pytest.raises(ValueError, match="compute_mask"):
        pynn.Model(inp, out)


class PlainLSTMCell(layers.Layer):
    """An LSTM cell written with ops: RNN unrolls it step by step."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = [units, units]

    def build(self, input_shape):
        self.kernel = self.add_weight((input_shape[-1], 4 * self.units), name="kernel")
        self.recurrent_kernel = self.add_weight((self.units, 4 * self.units),
                                                name="recurrent_kernel")
        self.bias = self.add_weight((4 * self.units,), "zeros", name="bias")

    def call(self, inputs, states):
        h, c = states
        z = ops.matmul(inputs, self.kernel) + ops.matmul(h, self.recurrent_kernel) + self.bias
        u = self.units
        i, f = ops.sigmoid(z[:, :u]), ops.sigmoid(z[:, u:2 * u])
        g, o = ops.tanh(z[:, 2 * u:3 * u]), ops.sigmoid(z[:, 3 * u:])
        c = f * c + i * g
        h = o * ops.tanh(c)
        return h, [h, c]


@pytest.mark.parametrize("return_sequences", [False, True])
def test_an_unrolled_user_cell_skips_masked_steps_like_the_fused_lstm(return_sequences):
    ids = _ids()
    inp = pynn.Input((5,), dtype="int32")
    emb = layers.Embedding(10, 3, mask_zero=True)
    h = emb(inp)
    user = layers.RNN(PlainLSTMCell(4), return_sequences=return_sequences)
    fused = layers.LSTM(4, return_sequences=return_sequences)
    model = pynn.Model(inp, [user(h), fused(h)])
    fused.set_weights(user.get_weights())
    a, b = model.predict(ids, verbose=0)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_embedding_mask_zero_round_trips_and_is_saved(tmp_path):
    inp = pynn.Input((5,), dtype="int32")
    out = layers.GlobalAveragePooling1D()(
        layers.LSTM(3, return_sequences=True)(layers.Embedding(10, 4, mask_zero=True)(inp)))
    model = pynn.Model(inp, out)
    model.save(tmp_path / "m.keras")
    again = pynn.saving.load_model(tmp_path / "m.keras")
    assert again.layers[1].mask_zero is True
    np.testing.assert_allclose(again.predict(_ids(), verbose=0),
                               model.predict(_ids(), verbose=0), rtol=1e-6)


# ---- masks on data: layers called eagerly, custom training loops ------------------------------

def _per_step_model(seed=0):
    pynn.utils.set_random_seed(seed)
    inp = pynn.Input((5,), dtype="int32")
    h = layers.Embedding(10, 4, mask_zero=True)(inp)
    out = layers.Dense(3, activation="softmax")(layers.LSTM(4, return_sequences=True)(h))
    return pynn.Model(inp, out)


def test_layers_called_on_data_pass_masks_as_keras_does():
    ids = _ids()
    emb, lstm = layers.Embedding(10, 4, mask_zero=True), layers.LSTM(3, return_sequences=True)
    gap = layers.GlobalAveragePooling1D()
    h = emb(ids)
    np.testing.assert_array_equal(np.asarray(h._keras_mask), ids > 0)
    seq = lstm(h)
    np.testing.assert_array_equal(np.asarray(seq._keras_mask), ids > 0)
    inp = pynn.Input((5,), dtype="int32")
    model = pynn.Model(inp, gap(lstm(emb(inp))))
    np.testing.assert_allclose(np.asarray(gap(seq))[:3], model.predict(ids, verbose=0)[:3],
                               rtol=1e-5, atol=1e-6)
    x = np.ones((2, 3, 2), np.float32)
    x[0, 2] = 0.0
    np.testing.assert_array_equal(np.asarray(layers.Masking()(x)._keras_mask),
                                  [[1, 1, 0], [1, 1, 1]])
    att = layers.Attention()([h, h])
    np.testing.assert_array_equal(np.asarray(att._keras_mask), ids > 0)


def test_a_custom_training_loop_loss_leaves_padding_out_like_fit():
    """loss_fn(y, model(x)) honours the output's mask, as Keras's Loss does: the value equals
    evaluate's, and one SGD step by hand equals train_on_batch's."""
    ids = _ids()[:3]
    y = (ids % 3).astype(np.int32)
    loss_fn = pynn.losses.SparseCategoricalCrossentropy()
    a, b = _per_step_model(), _per_step_model()
    b.set_weights(a.get_weights())
    for m in (a, b):
        m.compile(optimizer=pynn.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    out = a(ids)
    np.testing.assert_array_equal(np.asarray(out._keras_mask), ids > 0)
    assert float(np.asarray(loss_fn(y, out))) == pytest.approx(a.evaluate(ids, y, verbose=0),
                                                                rel=1e-5)
    a.train_on_batch(ids, y)
    with pynn.GradientTape() as tape:
        loss = loss_fn(y, b(ids, training=True))
    grads = tape.gradient(loss, b.trainable_weights)
    b.optimizer.apply(grads, b.trainable_weights)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)


def test_a_metric_on_a_masked_output_counts_the_kept_rows_like_evaluate():
    ids = _ids()[:3]
    y = (ids % 3).astype(np.int32)
    model = _per_step_model(1)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    acc = pynn.metrics.SparseCategoricalAccuracy()
    out = model(ids)
    acc.update_state(y[:2], _sliced(out, 2))
    acc.update_state(y[2:], _sliced(out, slice(2, None)))
    assert acc.result() == pytest.approx(model.evaluate(ids, y, verbose=0)[1], rel=1e-6)
    want = (np.asarray(out).argmax(-1) == y)[ids > 0].mean()
    assert acc.result() == pytest.approx(want, rel=1e-6)


def _sliced(out, rows):
    """Rows of a masked output, their mask with them (a Tensor from Tensors)."""
    rows = slice(None, rows) if isinstance(rows, int) else rows
    part = pynn.tensor.Tensor(np.asarray(out)[rows])
    part._keras_mask = pynn.tensor.Tensor(np.asarray(out._keras_mask)[rows])
    return part
