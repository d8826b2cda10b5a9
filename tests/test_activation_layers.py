"""Keras 3's activation layers: ReLU, LeakyReLU, ELU and Softmax, against PyTorch and finite
differences, with Keras's defaults and its argument checks."""

import numpy as np
import pytest
from helpers import grad_check, make_model, torch_parity

import pynn
from pynn import layers


def data(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


LAYERS = {
    "relu": lambda: layers.ReLU(),
    "relu_slope": lambda: layers.ReLU(negative_slope=0.1),
    "leaky_relu": lambda: layers.LeakyReLU(),
    "leaky_relu_0.2": lambda: layers.LeakyReLU(negative_slope=0.2),
    "elu": lambda: layers.ELU(),
    "elu_0.5": lambda: layers.ELU(alpha=0.5),
    "softmax": lambda: layers.Softmax(),
}


def _away_from_zero(shape, seed=0):
    """Values at least 0.05 from 0, where relu and leaky relu have their kink."""
    x = data(shape, seed=seed)
    return np.where(np.abs(x) < 0.05, 0.05 + np.abs(x), x).astype(np.float32)


@pytest.mark.parametrize("make", LAYERS.values(), ids=LAYERS.keys())
def test_matches_torch_between_dense_layers(make):
    m = make_model((5,), [layers.Dense(6), make(), layers.Dense(3)])
    torch_parity(m, _away_from_zero((4, 5)), data((4, 3), seed=1))


@pytest.mark.parametrize("make", LAYERS.values(), ids=LAYERS.keys())
def test_gradients_match_finite_differences(make):
    m = make_model((3, 4), [make()])
    grad_check(m, _away_from_zero((2, 3, 4), seed=2), data((2, 3, 4), seed=3), max_entries=24)


def test_values_on_data_and_keras_defaults():
    x = np.array([[-2.0, -0.5, 1.5]], np.float32)
    np.testing.assert_allclose(np.asarray(layers.ReLU()(x)), [[0.0, 0.0, 1.5]])
    np.testing.assert_allclose(np.asarray(layers.LeakyReLU()(x)), [[-0.6, -0.15, 1.5]],
                               rtol=1e-6)
    np.testing.assert_allclose(np.asarray(layers.ELU()(x)), np.where(x > 0, x, np.expm1(x)),
                               rtol=1e-6)
    e = np.exp(x - x.max())
    np.testing.assert_allclose(np.asarray(layers.Softmax()(x)), e / e.sum(), rtol=1e-6)
    assert layers.LeakyReLU().negative_slope == 0.3  # the layer's default, not the function's
    assert layers.ELU().alpha == 1.0
    config = layers.ReLU().get_config()
    assert (config["max_value"], config["negative_slope"], config["threshold"]) == (None, 0.0,
                                                                                       0.0)
    assert layers.Softmax().get_config()["axis"] == -1
    assert layers.LeakyReLU().name.startswith("leaky_re_lu")


def test_softmax_layer_as_output_trains_with_categorical_crossentropy():
    pynn.utils.set_random_seed(0)
    x = data((64, 4))
    y = pynn.utils.to_categorical((x[:, 0] > 0).astype(int), 2)
    model = pynn.Sequential([pynn.Input((4,)), layers.Dense(8), layers.ReLU(),
                             layers.Dense(2), layers.Softmax()])
    model.compile(optimizer=pynn.optimizers.Adam(0.05), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    hist = model.fit(x, y, epochs=20, batch_size=16, verbose=0)
    assert hist.history["accuracy"][-1] > 0.9
    np.testing.assert_allclose(model.predict(x[:3], verbose=0).sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("make,match", [
    (lambda: layers.ReLU(max_value=6.0), "max_value"),
    (lambda: layers.ReLU(threshold=0.5), "threshold"),
    (lambda: layers.ReLU(negative_slope=-0.1), "negative_slope"),
    (lambda: layers.LeakyReLU(negative_slope=-1), "negative_slope"),
    (lambda: layers.LeakyReLU(negative_slope="x"), "negative_slope"),
    (lambda: layers.ELU(alpha=None), "alpha"),
    (lambda: layers.Softmax(axis=1), "axis"),
])
def test_unsupported_or_bad_arguments_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()
