"""Losses the core lacks (a user function, a Loss subclass, Huber, LogCosh, KLDivergence) traced
into the core's fused step (issue 19): the same History and weights as the Python steps they
replace, with and without sample_weight and class_weight; an untraceable loss keeps Python
steps; predict, evaluate, train_on_batch and save/load work on such a model."""

import numpy as np
import pytest

import pynn
from pynn import layers, losses, ops


def user_mse(y_true, y_pred):
    return ops.mean(ops.square(y_pred - y_true), axis=-1)


class ScaledAbs(losses.Loss):
    def call(self, y_true, y_pred):
        return ops.mean(ops.abs(y_true - y_pred) * 2.0, axis=-1)


def untraceable(y_true, y_pred):
    np.asarray(y_pred)  # NumPy on the prediction: no graph can hold this
    return ops.mean(ops.square(y_pred - y_true), axis=-1)


RNG = np.random.default_rng(0)
X = RNG.normal(size=(96, 8)).astype("float32")
Y_REG = RNG.normal(size=(96, 3)).astype("float32")
LABELS = RNG.integers(0, 3, size=96)
Y_ONEHOT = np.eye(3, dtype="float32")[LABELS]
Y_PROB = RNG.dirichlet(np.ones(3), size=96).astype("float32")


def make(loss, trace: bool, softmax: bool = False, metrics=("mae",)):
    m = pynn.Sequential([layers.Input((8,)), layers.Dense(16, activation="tanh"),
                         layers.Dense(3, activation="softmax" if softmax else None)])
    m._trace_losses = trace
    m.compile(pynn.optimizers.SGD(0.05), loss=loss, metrics=list(metrics))
    return m


def pair(loss_fn, softmax=False, metrics=("mae",)):
    a, b = make(loss_fn(), True, softmax, metrics), make(loss_fn(), False, softmax, metrics)
    b.set_weights(a.get_weights())
    assert not a._custom("train_step") and not a._custom("test_step")  # the fused step
    assert b._custom("train_step")
    return a, b


def same(a, b, ha, hb):
    assert ha.history.keys() == hb.history.keys()
    for k in ha.history:
        np.testing.assert_allclose(ha.history[k], hb.history[k], rtol=2e-5, atol=1e-6)
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(u, v, rtol=2e-5, atol=1e-6)


CASES = {
    "function": (lambda: user_mse, False, Y_REG),
    "subclass": (ScaledAbs, False, Y_REG),
    "huber": (lambda: losses.Huber(delta=0.5), False, Y_REG),
    "logcosh": (losses.LogCosh, False, Y_REG),
    "kld": (losses.KLDivergence, True, Y_PROB),
}


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("case", list(CASES))
def test_traced_matches_python_steps(case, weighted):
    loss_fn, softmax, y = CASES[case]
    a, b = pair(loss_fn, softmax)
    sw = RNG.uniform(0.0, 2.0, size=96).astype("float32") if weighted else None
    kw = dict(epochs=3, batch_size=16, verbose=0, shuffle=False, sample_weight=sw,
              validation_data=(X[:32], y[:32]))
    same(a, b, a.fit(X, y, **kw), b.fit(X, y, **kw))
    np.testing.assert_allclose(a.evaluate(X, y, verbose=0), b.evaluate(X, y, verbose=0),
                               rtol=2e-5)


def test_class_weight_becomes_sample_weights():
    cw = {0: 1.0, 1: 2.5, 2: 0.5}
    a, b = pair(losses.KLDivergence, softmax=True)
    kw = dict(epochs=2, batch_size=16, verbose=0, shuffle=False)
    ha = a.fit(X, Y_ONEHOT, class_weight=cw, **kw)
    hb = b.fit(X, Y_ONEHOT, sample_weight=np.array([cw[c] for c in LABELS], "float32"), **kw)
    same(a, b, ha, hb)


def test_untraceable_loss_keeps_python_steps():
    m = make(untraceable, True)
    assert m._custom("train_step")
    h = m.fit(X, Y_REG, epochs=2, batch_size=32, verbose=0)
    assert np.all(np.isfinite(h.history["loss"]))


def test_predict_evaluate_and_batches():
    a, b = pair(lambda: user_mse)
    np.testing.assert_allclose(a.predict(X, verbose=0), b.predict(X, verbose=0), rtol=1e-6)
    np.testing.assert_allclose(a.predict_on_batch(X[:5]), b.predict_on_batch(X[:5]), rtol=1e-6)
    # the batch steps run the core's step (Python-step models have none): one batch of all
    np.testing.assert_allclose(a.test_on_batch(X, Y_REG),
                               b.evaluate(X, Y_REG, batch_size=96, verbose=0), rtol=2e-5)
    a.train_on_batch(X, Y_REG)
    b.fit(X, Y_REG, batch_size=96, epochs=1, shuffle=False, verbose=0)
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(u, v, rtol=2e-5, atol=1e-6)
    with pytest.raises(ValueError):  # targets of another size: refused, not garbage
        a.evaluate(X, Y_REG[:, :2], verbose=0)


def test_recompile_with_other_losses():
    m = make(user_mse, True)
    m.fit(X, Y_REG, epochs=1, verbose=0)
    m.compile("sgd", loss="mse")  # a fused loss again: the trace is dropped
    assert not m._custom("train_step")
    fused = m.evaluate(X, Y_REG, verbose=0)
    m.compile("sgd", loss=user_mse, metrics=["mae"])
    assert not m._custom("train_step")
    np.testing.assert_allclose(m.evaluate(X, Y_REG, verbose=0)[0], fused, rtol=1e-5)


def test_save_and_load(tmp_path):
    m = make(losses.Huber(), True)
    m.fit(X, Y_REG, epochs=1, verbose=0)
    path = str(tmp_path / "m.keras")
    m.save(path)
    n = pynn.models.load_model(path)
    np.testing.assert_allclose(n.predict(X, verbose=0), m.predict(X, verbose=0), rtol=1e-6)
    np.testing.assert_allclose(n.evaluate(X, Y_REG, verbose=0), m.evaluate(X, Y_REG, verbose=0),
                               rtol=1e-5)
    assert not n._custom("train_step")
    n.fit(X, Y_REG, epochs=1, verbose=0)


def test_targets_of_another_shape_go_back_to_python_steps():
    # labels (n, 1) against a (n, 3) output: the user's loss broadcasts them, as Keras does;
    # the trace read targets shaped like the output, so the model trains by Python steps
    a, b = pair(lambda: user_mse)
    col = LABELS[:, None].astype("float32")
    kw = dict(epochs=2, batch_size=16, verbose=0, shuffle=False)
    same(a, b, a.fit(X, col, **kw), b.fit(X, col, **kw))
    assert a._custom("train_step")
    np.testing.assert_allclose(a.evaluate(X, col, verbose=0), b.evaluate(X, col, verbose=0),
                               rtol=2e-5)
    a.compile("sgd", loss="mse")  # the trace left in the graph is dropped with a new loss
    assert not a._custom("train_step")
    a.fit(X, Y_REG, epochs=1, verbose=0)
