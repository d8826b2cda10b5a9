"""The plan's rewrites (csrc/core/passes.c) and its in-place rule (plan.c), from Python: the
relu/max-pool swap gives the same predictions, gradients and training as the plan without it,
in functional models too; an activation run in place over another's output never spoils the
gradient of one whose backward reads its own output."""
import numpy as np
import pytest
from helpers import core_gradients, make_model, randomize_weights, torch_parity

import pynn
from pynn import _core, layers


# -- in place: node i over j's output, in training only when j's backward does not read it ----
@pytest.mark.parametrize("first, second", [("sigmoid", "tanh"), ("tanh", "sigmoid"),
                                           ("relu", "sigmoid"), ("sigmoid", "relu"),
                                           ("elu", "tanh"), ("relu", "relu")])
def test_activation_in_place_over_activation_keeps_gradients(first, second):
    m = make_model((5,), [layers.Dense(4, activation=first), layers.Activation(second),
                          layers.Dense(2)])
    randomize_weights(m, seed=1, low=0.5, high=1.5)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 5)).astype(np.float32)
    y = rng.normal(size=(8, 2)).astype(np.float32)
    torch_parity(m, x, y)


# -- the relu/max-pool swap -----------------------------------------------------------------------
def _functional(kind):
    pynn.utils.set_random_seed(0)
    if kind == "conv2d":
        i = pynn.Input((10, 10, 3))
        h = layers.MaxPooling2D(2, padding="same")(layers.Conv2D(4, 3, activation="relu")(i))
        o = layers.Dense(2)(layers.Flatten()(h))
    elif kind == "conv1d":
        i = pynn.Input((12, 3))
        h = layers.MaxPooling1D(2)(layers.Conv1D(4, 3, activation="relu")(i))
        o = layers.Dense(2)(layers.Flatten()(h))
    elif kind == "global":
        i = pynn.Input((7, 3))
        h = layers.Activation("relu")(layers.Dense(5)(i))
        o = layers.Dense(2)(layers.GlobalMaxPooling1D()(h))
    else:  # overlapping windows, the pool's output the model's
        i = pynn.Input((9, 9, 2))
        h = layers.Conv2D(3, 2, activation="relu")(i)
        o = layers.Flatten()(layers.MaxPooling2D(3, strides=1)(h))
    m = pynn.Model(i, o)
    m.compile(optimizer="adam", loss="mse")
    return m


def _run(kind, swap):
    previous = _core._debug_swaps(swap)
    try:
        m = _functional(kind)
        rng = np.random.default_rng(1)
        x = rng.normal(size=(6,) + m.input_shape[1:]).astype(np.float32)
        y = rng.normal(size=(6,) + m.output_shape[1:]).astype(np.float32)
        pred = m.predict(x, verbose=0)
        loss, dx, grads = core_gradients(m, x, y)
        hist = m.fit(x, y, epochs=3, batch_size=4, verbose=0, shuffle=False).history["loss"]
        bytes_ = m._core.plan_bytes(6, True)
        return pred, loss, dx, grads, hist, [w.numpy().copy() for w in m.weights], bytes_
    finally:
        _core._debug_swaps(previous)


@pytest.mark.parametrize("kind", ["conv2d", "conv1d", "global", "overlap"])
def test_relu_max_pool_swap_changes_no_result(kind):
    on, off = _run(kind, True), _run(kind, False)
    np.testing.assert_array_equal(on[0], off[0])
    assert on[1] == off[1]
    np.testing.assert_array_equal(on[2], off[2])
    for a, b in zip(on[3], off[3]):
        np.testing.assert_array_equal(a, b)
    assert on[4] == off[4]
    for a, b in zip(on[5], off[5]):
        np.testing.assert_array_equal(a, b)


def test_relu_max_pool_swap_applies_to_functional_models():
    # the swapped training plan differs (its relu runs on the pooled values)
    assert _run("conv2d", True)[6] != _run("conv2d", False)[6]
