"""Quick runs of more keras-io examples in examples/keras_io (import swapped, data cut or
synthetic): lstm_seq2seq and the "Customizing what happens in fit()" guide, each must run end to
end and learn (issue 16); and regression tests for what they needed fixed in pynn. The full
runs and their figures against Keras 3 are in the examples' docstrings."""

import importlib.util
import pathlib

import numpy as np
import pytest

import pynn as keras

HERE = pathlib.Path(__file__).resolve().parent.parent / "examples" / "keras_io"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"keras_io_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- losses and metrics with sample_weight (the guide's sample_weight train_step) ---------------

@pytest.mark.parametrize("loss, fn, y_kind", [
    (keras.losses.MeanSquaredError(), lambda t, p: ((t - p) ** 2).mean(-1), "dense"),
    (keras.losses.MeanAbsoluteError(), lambda t, p: np.abs(t - p).mean(-1), "dense"),
    (keras.losses.CategoricalCrossentropy(), lambda t, p: -(t * np.log(p)).sum(-1), "onehot"),
    (keras.losses.SparseCategoricalCrossentropy(),
     lambda t, p: -np.log(p[np.arange(len(p)), t.ravel()]), "labels"),
    (keras.losses.BinaryCrossentropy(from_logits=True),
     lambda t, z: (np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))).mean(-1), "dense"),
])
def test_loss_sample_weight_as_keras(loss, fn, y_kind):
    # Keras 3's "sum_over_batch_size": sum(values * w) / batch size; (batch,) or (batch, 1) w
    rng = np.random.default_rng(0)
    p = rng.random((6, 3)).astype("float32") + 0.1
    p /= p.sum(-1, keepdims=True)
    labels = rng.integers(0, 3, (6, 1))
    t = {"dense": rng.random((6, 3)).astype("float32"),
         "onehot": np.eye(3, dtype="float32")[labels[:, 0]], "labels": labels}[y_kind]
    w = np.array([1, 0, 2, 0.5, 0, 3], "float32")
    want = (fn(t, p) * w).mean()
    for sw in (w, w[:, None]):
        np.testing.assert_allclose(float(loss(t, p, sample_weight=sw)), want, rtol=1e-5)
    np.testing.assert_allclose(float(loss(t, p, sample_weight=np.ones(6))), float(loss(t, p)),
                               rtol=1e-5)


def test_loss_sample_weight_on_the_tape():
    # the weighted loss is differentiable: a zero weight drops a sample from the gradient
    model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1)])
    x = np.array([[1.0, 2.0], [3.0, -1.0]], "float32")
    y = np.array([[0.0], [1.0]], "float32")
    loss_fn = keras.losses.MeanSquaredError()
    with keras.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True), sample_weight=np.array([1.0, 0.0]))
    grads = tape.gradient(loss, model.trainable_weights)
    with keras.GradientTape() as tape:
        loss1 = loss_fn(y[:1], model(x[:1], training=True))
    grads1 = tape.gradient(loss1, model.trainable_weights)
    for g, g1 in zip(grads, grads1):  # half: the zero-weighted sample still counts in the mean
        np.testing.assert_allclose(np.asarray(g), 0.5 * np.asarray(g1), rtol=1e-5, atol=1e-7)


def test_sparse_categorical_crossentropy_labels_with_trailing_axis():
    p = np.array([[0.2, 0.8], [0.6, 0.4]], "float32")
    want = -np.log([0.8, 0.6])
    for y in (np.array([1, 0]), np.array([[1], [0]])):
        np.testing.assert_allclose(
            np.asarray(keras.losses.sparse_categorical_crossentropy(y, p)), want, rtol=1e-5)


def test_metric_sample_weight_as_keras():
    # figures checked against Keras 3.15 (JAX): each sample's value (or confusion counts) times
    # its weight, over the summed weights
    rng = np.random.default_rng(3)
    w = np.array([1, 0, 2, 0.5, 0, 3, 1, 1])
    yb = np.array([[1], [0], [1], [0], [1], [0], [1], [1]], "float32")
    pb = rng.random((8, 1)).astype("float32")
    for metric, want in [(keras.metrics.Precision(), 0.66667), (keras.metrics.Recall(), 0.3),
                         (keras.metrics.AUC(), 0.45385), (keras.metrics.BinaryAccuracy(), 0.48485)]:
        metric.update_state(yb, pb, sample_weight=w)
        metric.update_state(yb, pb)
        assert float(metric.result()) == pytest.approx(want, abs=1e-5)
    y, p = rng.random((8, 3)), rng.random((8, 3))
    mae = keras.metrics.MeanAbsoluteError()
    mae.update_state(y, p, sample_weight=w[:, None])
    per_sample = np.abs(y - p).mean(-1)
    assert float(mae.result()) == pytest.approx((per_sample * w).sum() / w.sum(), rel=1e-6)
    with pytest.raises(ValueError, match="one weight per sample"):
        mae.update_state(y, p, sample_weight=np.ones((8, 3)))


def test_compile_metrics_unweighted_as_keras():
    # compile(metrics=...) are unweighted in Keras 3 (only weighted_metrics get sample_weight):
    # a custom train_step passing sample_weight to every entry of self.metrics is fine
    inputs = keras.Input(shape=(3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    y, p = np.zeros((4, 1)), np.array([[1.0], [2.0], [3.0], [4.0]])
    compiled = [m for m in model.metrics if m.name != "loss"][0]
    compiled.update_state(y, p, sample_weight=np.array([1.0, 0.0, 0.0, 0.0]))
    assert compiled.result()["mae"] == pytest.approx(2.5)


# -- the examples ---------------------------------------------------------------------------------

def test_lstm_seq2seq(monkeypatch):
    # synthetic corpus (reverse the sentence, shift each letter): no PYNN_DATASETS needed.
    # Measured here: loss 1.66 -> 0.94 in 10 epochs, greedy decoding 0.39 of the characters
    # right and 2 of 20 sentences exact (Keras 3: 1.68 -> 0.94, 0.24; a model that has learnt
    # nothing decodes ~0.02 of them)
    for name, value in (("EXAMPLE_SAMPLES", "3000"), ("EXAMPLE_EPOCHS", "10"),
                        ("EXAMPLE_LATENT", "64"), ("EXAMPLE_DECODE", "20")):
        monkeypatch.setenv(name, value)
    first, last, char_acc, exact = _load("lstm_seq2seq").main()
    assert last < 0.7 * first and char_acc > 0.15 and np.isfinite([first, last]).all()


def test_customizing_fit_guide(monkeypatch):
    # the guide's own sizes for its random-array sections (1000 rows, 3 or 5 epochs); the GAN
    # on 2 batches of 16 MNIST digits (the full run's 100 batches of 64 take minutes on a CPU)
    monkeypatch.setenv("EXAMPLE_GAN_SAMPLES", "32")
    monkeypatch.setenv("EXAMPLE_GAN_BATCH", "16")
    f = _load("customizing_fit_guide").main()
    for key in ("simple", "lower_level", "sample_weight"):
        first, last, mae = f[key]
        assert last < first and np.isfinite([first, last, mae]).all(), key
    # the lower-level model's Mean/MAE are listed in `metrics`, so fit resets them each epoch:
    # its last epoch's loss (0.26 here) is that epoch's, not the running mean since epoch 1
    assert f["lower_level"][1] < 0.4
    # the custom test_step's figures are evaluate's, and they are the predictions' mse/mae
    np.testing.assert_allclose(f["evaluate"], f["evaluate_numpy"], rtol=1e-4)
    d_loss, g_loss = f["gan"]
    assert np.isfinite([d_loss, g_loss]).all() and 0.1 < d_loss < 2 and 0.1 < g_loss < 3
    assert f["gan_weights_moved"] == 1.0  # both networks' weights updated by their optimizer


def test_imbalanced_classification(monkeypatch, capsys):
    """The credit-card fraud example on a generated CSV of the same layout: class weights, the
    four count metrics, Precision and Recall, a ModelCheckpoint per epoch."""
    monkeypatch.setenv("EXAMPLE_SAMPLES", "30000")
    monkeypatch.setenv("EXAMPLE_EPOCHS", "3")
    out = _load("imbalanced_classification").main()
    val = out["val"]
    assert {"fn", "fp", "tn", "tp", "precision", "recall", "loss"} <= set(val)
    assert val["tp"] + val["fn"] == out["positives"] and val["tp"] + val["fn"] + val["fp"] + \
        val["tn"] == 6000  # every validation sample counted once
    assert val["recall"] > 0.6  # the class weights make it find most frauds
    assert val["precision"] == pytest.approx(val["tp"] / (val["tp"] + val["fp"]))
    assert out["checkpoints"] == 3
    assert "val_fn:" in capsys.readouterr().out  # verbose=2's epoch lines
