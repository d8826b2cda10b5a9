"""The training loop's shape: one core call per batch, no per-sample Python work."""

import sys

import numpy as np
import pytest

import pynn
from pynn import layers


def _profile_calls(fn):
    """Counts Python function calls and calls of each C function made while fn() runs."""
    counts = {"python": 0}

    def prof(frame, event, arg):
        if event == "call":
            counts["python"] += 1
        elif event == "c_call":
            name = getattr(arg, "__qualname__", getattr(arg, "__name__", "?"))
            counts[name] = counts.get(name, 0) + 1

    sys.setprofile(prof)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return counts


def _model():
    m = pynn.Sequential([pynn.Input(shape=(8,)), layers.Dense(4, activation="relu"),
                         layers.Dense(3, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def test_fit_makes_one_train_step_call_per_batch():
    m = _model()
    x = np.random.rand(100, 8).astype(np.float32)
    y = np.random.randint(0, 3, 100)
    counts = _profile_calls(lambda: m.fit(x, y, batch_size=16, epochs=3, verbose=0))
    assert counts.get("Model.train_step") == 3 * 7  # ceil(100 / 16) = 7 batches a epoch


def test_python_work_per_epoch_does_not_grow_with_samples_per_batch():
    """Same number of batches, 100x the samples: the Python calls made are the same, so no
    Python code runs per sample."""
    m = _model()
    small = np.random.rand(40, 8).astype(np.float32), np.random.randint(0, 3, 40)
    large = np.random.rand(4000, 8).astype(np.float32), np.random.randint(0, 3, 4000)
    m.fit(*small, batch_size=10, epochs=1, verbose=0)  # warm caches and plans
    m.fit(*large, batch_size=1000, epochs=1, verbose=0)
    c_small = _profile_calls(lambda: m.fit(*small, batch_size=10, epochs=2, verbose=0))
    c_large = _profile_calls(lambda: m.fit(*large, batch_size=1000, epochs=2, verbose=0))
    assert c_small["Model.train_step"] == c_large["Model.train_step"] == 8
    assert c_small["python"] == c_large["python"]


def test_predict_is_one_core_call_for_all_batches():
    m = _model()
    x = np.random.rand(1000, 8).astype(np.float32)
    counts = _profile_calls(lambda: m.predict(x, batch_size=7, verbose=0))
    assert counts.get("Model.predict") == 1


def test_freezing_a_layer_after_build_takes_effect_at_compile_as_in_keras():
    import pynn
    from pynn import layers

    model = pynn.Sequential([pynn.Input((4,)), layers.Dense(3, name="a"), layers.Dense(1)])
    x = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
    y = x.sum(1, keepdims=True)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, epochs=1, verbose=0)
    model.get_layer("a").trainable = False
    model.compile(optimizer="sgd", loss="mse")
    frozen = model.get_layer("a").get_weights()
    last = model.layers[1].get_weights()
    model.fit(x, y, epochs=2, verbose=0)
    for a, b in zip(frozen, model.get_layer("a").get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(last[0], model.layers[1].kernel)
    assert len(model.trainable_weights) == 2
    model.trainable = False
    model.compile(optimizer="sgd", loss="mse")
    before = model.get_weights()
    model.fit(x, y, epochs=1, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_train_on_batch_runs_a_subclass_own_train_step_even_with_a_compiled_core_loss():
    """A custom train_step is never bypassed: train_on_batch and test_on_batch run the model's
    own steps as fit does (they used to run the core's fused step)."""
    calls = []

    class Counting(pynn.Model):
        def train_step(self, data):
            calls.append("train")
            return super().train_step(data)

        def test_step(self, data):
            calls.append("test")
            return super().test_step(data)

    rng = np.random.default_rng(0)
    x, y = rng.random((16, 4), dtype=np.float32), rng.random((16, 2), dtype=np.float32)
    inp = pynn.Input((4,))
    model = Counting(inp, pynn.layers.Dense(2)(inp))
    model.compile(optimizer="sgd", loss="mse")
    before = np.array(model.weights[0])
    loss = model.train_on_batch(x, y)
    assert calls == ["train"] and not np.array_equal(np.array(model.weights[0]), before)
    assert model.test_on_batch(x, y) == pytest.approx(
        float(((model.predict(x, verbose=0) - y) ** 2).mean()), rel=1e-5)
    assert calls == ["train", "test"] and np.isfinite(loss)


def test_train_on_batch_with_a_loss_on_python_steps_trains_and_reports_its_metrics():
    def loss_via_numpy(y_true, y_pred):  # NumPy on the prediction: not traceable
        return pynn.ops.mean((y_true - y_pred) ** 2, axis=-1) + 0.0 * float(
            np.asarray(y_pred).sum())

    rng = np.random.default_rng(1)
    x, y = rng.random((16, 4), dtype=np.float32), rng.random((16, 2), dtype=np.float32)
    model = pynn.Sequential([pynn.Input((4,)), pynn.layers.Dense(2)])
    model.compile(optimizer="sgd", loss=loss_via_numpy, metrics=["mae"])
    assert model._custom("train_step")
    first = model.train_on_batch(x, y, return_dict=True)
    assert set(first) == {"loss", "mae"}
    logs = model.test_on_batch(x, y, return_dict=True)
    pred = model.predict(x, verbose=0)
    assert logs["loss"] == pytest.approx(float(((pred - y) ** 2).mean()), rel=1e-5)
    assert logs["mae"] == pytest.approx(float(np.abs(pred - y).mean()), rel=1e-5)
    with pytest.raises(ValueError, match="class_weight"):
        model.train_on_batch(x, y, class_weight={0: 1.0})
