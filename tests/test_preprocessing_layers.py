"""Rescaling and CenterCrop, Keras's Wrapper base class and pynn.layers.serialize /
deserialize (issue 18)."""

import numpy as np
import pytest
from helpers import grad_check

import pynn
from pynn import layers

RNG = np.random.default_rng(0)


def test_rescaling():
    x = RNG.integers(0, 256, (2, 4, 4, 3)).astype(np.uint8)
    np.testing.assert_allclose(layers.Rescaling(1 / 127.5, offset=-1)(x).numpy(),
                               x / 127.5 - 1, rtol=1e-6, atol=1e-6)
    per_channel = layers.Rescaling(np.array([1.0, 2.0, 3.0], np.float32))
    np.testing.assert_allclose(per_channel(x.astype(np.float32)).numpy(), x * [1, 2, 3])
    config = per_channel.get_config()
    assert config["scale"] == [1.0, 2.0, 3.0] and config["offset"] == 0.0
    assert layers.Rescaling.from_config(layers.Rescaling(0.5, 1).get_config()).offset == 1
    model = pynn.Sequential([pynn.Input((4,)), layers.Rescaling(2.0, 1.0), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    grad_check(model, RNG.standard_normal((3, 4)).astype(np.float32),
               RNG.standard_normal((3, 1)).astype(np.float32))


def test_center_crop():
    x = np.arange(2 * 7 * 8 * 2, dtype=np.float32).reshape(2, 7, 8, 2)
    np.testing.assert_array_equal(layers.CenterCrop(4, 5)(x).numpy(), x[:, 1:5, 1:6])
    first = layers.CenterCrop(4, 5, data_format="channels_first")
    xf = np.moveaxis(x, -1, 1)
    np.testing.assert_array_equal(first(xf).numpy(), xf[:, :, 1:5, 1:6])
    model = pynn.Sequential([pynn.Input((7, 8, 2)), layers.CenterCrop(3, 3)])
    assert model.output_shape == (None, 3, 3, 2)
    np.testing.assert_array_equal(model.predict(x, verbose=0), x[:, 2:5, 2:5])
    assert layers.CenterCrop(3, 2).name.startswith("center_crop")
    with pytest.raises(ValueError, match="smaller than the crop"):
        layers.CenterCrop(9, 9)(x)
    with pytest.raises(ValueError, match="height"):
        layers.CenterCrop(0, 3)


class Twice(layers.Wrapper):
    def call(self, x):
        return self.layer(self.layer(x))


def test_a_wrapper_subclass_trains_and_saves(tmp_path):
    pynn.utils.set_random_seed(0)
    inp = pynn.Input((4,))
    model = pynn.Model(inp, Twice(layers.Dense(4))(inp))
    model.compile(optimizer="adam", loss="mse")
    x = RNG.standard_normal((5, 4)).astype(np.float32)
    history = model.fit(x, x, epochs=10, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    kernel, bias = model.layers[1].layer.get_weights()
    np.testing.assert_allclose(model.predict(x, verbose=0), (x @ kernel + bias) @ kernel + bias,
                               rtol=1e-5, atol=1e-6)
    again = Twice.from_config(model.layers[1].get_config())
    assert isinstance(again.layer, layers.Dense) and again.layer.units == 4
    model.save(tmp_path / "m.keras")
    loaded = pynn.saving.load_model(tmp_path / "m.keras", custom_objects={"Twice": Twice})
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="must be a Layer"):
        Twice("dense")


def test_serialize_and_deserialize():
    config = layers.serialize(layers.Dense(3, activation="relu", name="d"))
    assert config["class_name"] == "Dense" and config["module"] == "pynn.layers"
    layer = layers.deserialize(config)
    assert isinstance(layer, layers.Dense) and layer.units == 3 and layer.name == "d"
    with pytest.raises(ValueError, match="Could not locate"):
        layers.deserialize({"class_name": "NoSuchLayer", "config": {}})
