"""keras.models.clone_model: Sequential, functional (with custom traced layers), input_tensors,
clone_function, call_function, subclassed models (issue 16)."""

import numpy as np
import pytest

import pynn
from pynn import layers, ops


class Scale(layers.Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    def call(self, x):
        return ops.multiply(x, self.w) * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def _x(n=4, d=3):
    return np.random.default_rng(0).random((n, d)).astype(np.float32)


def test_sequential_clone_has_new_weights_and_the_same_architecture():
    model = pynn.Sequential([pynn.Input(shape=(3,)), layers.Dense(4, activation="relu"),
                             layers.Dense(2)])
    twin = pynn.models.clone_model(model)
    assert [type(a) for a in twin.layers] == [type(a) for a in model.layers]
    assert all(a is not b for a, b in zip(twin.layers, model.layers))
    assert any(not np.array_equal(a, b) for a, b in zip(twin.get_weights(), model.get_weights()))
    twin.set_weights(model.get_weights())
    np.testing.assert_allclose(twin.predict(_x(), verbose=0), model.predict(_x(), verbose=0))


def test_functional_clone_with_a_custom_layer_and_two_outputs():
    x = pynn.Input(shape=(3,), name="x")
    h = Scale(3.0)(layers.Dense(4)(x))
    model = pynn.Model(x, [layers.Dense(1)(h), layers.Dense(2)(h)])
    twin = pynn.models.clone_model(model)
    twin.set_weights(model.get_weights())
    for a, b in zip(twin.predict(_x(), verbose=0), model.predict(_x(), verbose=0)):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    scale = [layer for layer in twin.layers if isinstance(layer, Scale)][0]
    assert scale.factor == 3.0
    # the clone trains on its own weights
    twin.compile("sgd", "mse")
    twin.fit(_x(), [np.ones((4, 1)), np.ones((4, 2))], epochs=1, verbose=0)
    assert not np.allclose(twin.predict(_x(), verbose=0)[0], model.predict(_x(), verbose=0)[0])


def test_clone_function_and_input_tensors():
    model = pynn.Sequential([pynn.Input(shape=(3,)), layers.Dense(4), layers.Dense(2)])
    shared = model.layers[0]

    def keep_first(layer):
        return layer if layer is shared else layer.__class__.from_config(layer.get_config())

    twin = pynn.models.clone_model(model, clone_function=keep_first)
    assert twin.layers[0] is shared and twin.layers[1] is not model.layers[1]
    x = pynn.Input(shape=(3,))
    functional = pynn.Model(x, layers.Dense(2)(layers.Dense(4)(x)))
    other = pynn.Input(shape=(3,), name="other")
    twin2 = pynn.models.clone_model(functional, input_tensors=other)
    assert twin2.inputs[0] is other


def test_call_function_wraps_each_call():
    x = pynn.Input(shape=(3,))
    model = pynn.Model(x, layers.Dense(2)(layers.Dense(4)(x)))
    seen = []

    def call(layer, *args, **kwargs):
        seen.append(layer.name)
        return layer(*args, **kwargs)

    pynn.models.clone_model(model, call_function=call)
    assert len(seen) == 2


def test_subclassed_model_without_get_config_raises():
    class Net(pynn.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    net = Net()
    net(_x())
    with pytest.raises(ValueError, match="get_config"):
        pynn.models.clone_model(net)


def test_clone_model_rejects_what_is_not_a_model():
    with pytest.raises(TypeError, match="Model"):
        pynn.models.clone_model(layers.Dense(2))
