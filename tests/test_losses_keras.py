"""Keras 3's losses: every class and function against what Keras 3 (JAX) computes
(tests/keras_reference/losses.py, its values in losses.npz), and compile with any of them, a
user function or a Loss subclass (trained by Python steps on the tape)."""


import numpy as np
import pytest
from helpers import keras_reference_module, keras_reference_values

import pynn
from pynn import layers, losses, ops


@pytest.fixture(scope="module")
def values():
    mod = keras_reference_module("losses")
    return mod.run(), keras_reference_values("losses")


def test_every_loss_matches_keras(values):
    mine, ref = values
    assert set(mine) == set(ref)
    for k in sorted(ref):
        a, b = mine[k], ref[k]
        if b.dtype.kind in "US":  # a name, or "refused"
            assert a.dtype.kind in "US" and str(a) == str(b), k
            continue
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=k)


def test_keras_names_are_there():
    names = ["BinaryCrossentropy", "BinaryFocalCrossentropy", "CategoricalCrossentropy",
             "CategoricalFocalCrossentropy", "CategoricalGeneralizedCrossEntropy",
             "CategoricalHinge", "Circle", "CosineSimilarity", "Dice", "Hinge", "Huber",
             "KLDivergence", "LogCosh", "Loss", "MeanAbsoluteError",
             "MeanAbsolutePercentageError", "MeanSquaredError", "MeanSquaredLogarithmicError",
             "Poisson", "SparseCategoricalCrossentropy", "SquaredHinge", "Tversky",
             "binary_crossentropy", "binary_focal_crossentropy", "categorical_crossentropy",
             "categorical_focal_crossentropy", "categorical_generalized_cross_entropy",
             "categorical_hinge", "circle", "cosine_similarity", "deserialize", "dice", "get",
             "hinge", "huber", "kl_divergence", "log_cosh", "mean_absolute_error",
             "mean_absolute_percentage_error", "mean_squared_error",
             "mean_squared_logarithmic_error", "poisson", "serialize",
             "sparse_categorical_crossentropy", "squared_hinge", "tversky"]
    assert [n for n in names if not hasattr(losses, n)] == []


def test_get_follows_keras():
    assert losses.get("mse") is losses.mean_squared_error
    assert losses.get("huber") is losses.huber
    assert isinstance(losses.get("Huber"), losses.Huber)
    assert losses.get("Huber").name == "huber_loss"
    h = losses.Huber(delta=0.5)
    assert losses.get(h) is h
    again = losses.get(losses.serialize(h))
    assert isinstance(again, losses.Huber) and again.get_config() == h.get_config()
    with pytest.raises(ValueError, match="Unknown loss 'nope'"):
        losses.get("nope")


@pytest.mark.parametrize("bad", [
    lambda: losses.Huber(reduction="avg"),
    lambda: losses.Huber(delta="big"),
    lambda: losses.BinaryCrossentropy(label_smoothing=2.0),
    lambda: losses.CategoricalGeneralizedCrossEntropy(q=0.0),
    lambda: losses.CategoricalCrossentropy(axis=True),
])
def test_bad_arguments_are_refused(bad):
    with pytest.raises(ValueError):
        bad()


def _data():
    rng = np.random.RandomState(0)
    x = rng.rand(64, 3).astype(np.float32)
    return x, (x.sum(1, keepdims=True) > 1.5).astype(np.float32)


def _model(seed=0):
    pynn.utils.set_random_seed(seed)
    return pynn.Sequential([pynn.Input((3,)), layers.Dense(4, activation="relu"),
                            layers.Dense(1, activation="sigmoid")])


def my_loss(y_true, y_pred):
    return ops.mean(ops.square(y_true - y_pred), axis=-1)


class DoubledMSE(losses.Loss):
    def call(self, y_true, y_pred):
        return 2.0 * ops.mean(ops.square(y_true - y_pred), axis=-1)


@pytest.mark.parametrize("loss, core", [
    ("mse", "mse"), (my_loss, "mse"), (losses.MeanSquaredError(), "mse"),
    (DoubledMSE(), None), ("huber", None), (losses.BinaryFocalCrossentropy(), None),
    (losses.BinaryCrossentropy(label_smoothing=0.1), None)])
def test_compile_takes_any_loss_and_fit_minimises_it(loss, core):
    """A loss the core lacks (a function, a subclass, arguments) trains by Python steps: the
    same weights after fit as the fused step where both compute the same loss."""
    x, y = _data()
    model = _model()
    model.compile(optimizer=pynn.optimizers.SGD(0.5), loss=loss, metrics=["mae"])
    first = model.evaluate(x, y, verbose=0)[0]
    history = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    assert set(history.history) == {"loss", "mae"}
    assert model.evaluate(x, y, verbose=0)[0] < first
    if core is not None:
        fused = _model()
        fused.compile(optimizer=pynn.optimizers.SGD(0.5), loss=core, metrics=["mae"])
        fused.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
        for a, b in zip(model.get_weights(), fused.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_doubled_loss_reports_twice_the_loss():
    x, y = _data()
    a, b = _model(), _model()
    a.compile(loss=DoubledMSE())
    b.compile(loss="mse")
    assert a.evaluate(x, y, verbose=0) == pytest.approx(2 * b.evaluate(x, y, verbose=0),
                                                        rel=1e-5)


def test_a_model_with_a_user_loss_saves_and_loads(tmp_path):
    x, y = _data()
    model = _model()
    model.compile(optimizer="adam", loss=my_loss)
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="my_loss"):
        pynn.saving.load_model(tmp_path / "m.keras")
    again = pynn.saving.load_model(tmp_path / "m.keras", custom_objects={"my_loss": my_loss})
    assert again.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0),
                                                            rel=1e-5)
