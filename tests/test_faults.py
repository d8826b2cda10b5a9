"""Out of memory in the core: every allocation of a first fit, predict and eager step made to fail
in turn surfaces as MemoryError, leaves the weights as they were, and the model trains after."""

import numpy as np
import pytest

import pynn
from pynn import _core, layers

RNG = np.random.default_rng(0)
X = RNG.standard_normal((40, 8)).astype(np.float32)
Y = RNG.integers(0, 3, 40).astype(np.int32)


@pytest.fixture(autouse=True)
def _injection_off():
    _core._debug_fail_alloc(-1)
    yield
    _core._debug_fail_alloc(-1)


def _model():
    pynn.utils.set_random_seed(1)
    m = pynn.Sequential([pynn.Input(shape=(8,)), layers.Dense(6, activation="relu"),
                         layers.BatchNormalization(), layers.Dense(3, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def _count(fn) -> int:
    """The core's allocations while fn() runs."""
    _core._debug_fail_alloc(2**62)
    try:
        fn()
    finally:
        n = _core._debug_fail_alloc(-1)
    return n


def _fit(m):
    """Two batches of one size: the core allocates only for the first step, so a failure comes
    before any update."""
    return m.fit(X, Y, batch_size=20, epochs=1, shuffle=False, verbose=0)


def test_every_allocation_of_a_first_fit_failing_raises_memory_error_and_changes_nothing():
    m = _model()
    n = _count(lambda: _fit(m))
    assert n > 0
    ref = _fit(_model()).history["loss"]
    for k in range(n):
        m = _model()
        w0 = [w.copy() for w in m.get_weights()]
        _core._debug_fail_alloc(k)
        with pytest.raises(MemoryError, match="memory"):
            _fit(m)
        _core._debug_fail_alloc(-1)
        for a, b in zip(w0, m.get_weights()):
            np.testing.assert_array_equal(a, b)
        losses = _fit(m).history["loss"]
        assert np.all(np.isfinite(losses)) and losses == pytest.approx(ref, rel=1e-6)


def test_a_failed_predict_raises_memory_error_and_the_next_one_agrees():
    ref = _model().predict(X, batch_size=16, verbose=0)
    m = _model()
    n = _count(lambda: m.predict(X, batch_size=16, verbose=0))
    assert n > 0
    for k in range(n):
        m = _model()
        _core._debug_fail_alloc(k)
        with pytest.raises(MemoryError):
            m.predict(X, batch_size=16, verbose=0)
        _core._debug_fail_alloc(-1)
        np.testing.assert_array_equal(m.predict(X, batch_size=16, verbose=0), ref)


def _eager_step(m, opt):
    opt.zero_grad()
    loss = pynn.losses.SparseCategoricalCrossentropy()(Y[:16], m(X[:16], training=True))
    loss.backward()
    opt.step()
    return float(loss)


def test_a_failed_eager_step_raises_memory_error_and_the_loop_goes_on():
    def fresh():
        m = _model()
        opt = pynn.optimizers.SGD(0.1)
        opt.build(m.trainable_weights)
        return m, opt

    m, opt = fresh()
    ref = _eager_step(m, opt)
    m, opt = fresh()
    n = _count(lambda: _eager_step(m, opt))
    assert n > 0
    for k in range(n):
        m, opt = fresh()
        # a failure after the model call (in the loss, backward) comes after its forward has
        # updated batch norm's moving statistics, as in Keras: only the trainable weights stay
        w0 = [np.array(w) for w in m.trainable_weights]
        _core._debug_fail_alloc(k)
        with pytest.raises(MemoryError):
            _eager_step(m, opt)
        _core._debug_fail_alloc(-1)
        for a, b in zip(w0, m.trainable_weights):
            np.testing.assert_array_equal(a, b)
        assert _eager_step(m, opt) == pytest.approx(ref, rel=1e-6)
