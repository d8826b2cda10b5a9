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


def test_normalization_adapt_given_statistics_and_invert():
    x = RNG.standard_normal((50, 3)).astype(np.float32) * [1.0, 5.0, 0.1] + [0.0, 2.0, -1.0]
    norm = layers.Normalization()
    norm.adapt(x)
    assert [(w.path, w.shape, w.trainable) for w in norm.weights] == [
        (f"{norm.name}/mean", (3,), False), (f"{norm.name}/variance", (3,), False),
        (f"{norm.name}/count", (), False)]
    np.testing.assert_allclose(norm(x).numpy(), (x - x.mean(0)) / x.std(0), rtol=1e-4,
                               atol=1e-5)
    given = layers.Normalization(mean=[1.0, 2.0, 3.0], variance=[4.0, 9.0, 0.0])
    np.testing.assert_allclose(given(x).numpy(), (x - [1, 2, 3]) / [2.0, 3.0, 1e-7], rtol=1e-5)
    back = layers.Normalization(mean=2.0, variance=4.0, invert=True)
    np.testing.assert_allclose(back(x).numpy(), x * 2.0 + 2.0, rtol=1e-6, atol=1e-6)
    images = RNG.standard_normal((20, 4, 4, 2)).astype(np.float32)
    per_channel = layers.Normalization(axis=-1)
    per_channel.adapt(b for b in (images[:10], images[10:]))  # batches from a generator
    assert per_channel.weights[0].shape == (2,)
    np.testing.assert_allclose(per_channel(images).numpy(),
                               (images - images.mean((0, 1, 2))) / images.std((0, 1, 2)),
                               rtol=1e-4, atol=1e-5)
    everything = layers.Normalization(axis=None)
    everything.adapt(images)
    np.testing.assert_allclose(everything(images).numpy(),
                               (images - images.mean()) / images.std(), rtol=1e-4, atol=1e-5)
    config = given.get_config()
    assert config["mean"] == [1.0, 2.0, 3.0] and config["axis"] == (-1,)
    with pytest.raises(ValueError, match="both mean and variance"):
        layers.Normalization(mean=1.0)


def test_an_adapted_normalization_trains_a_model_and_saves(tmp_path):
    x = RNG.standard_normal((40, 3)).astype(np.float32) * 10 + 5
    y = RNG.standard_normal((40, 1)).astype(np.float32)
    norm = layers.Normalization()
    norm.adapt(x)
    inp = pynn.Input((3,))
    model = pynn.Model(inp, layers.Dense(1)(norm(inp)))
    model.compile(optimizer="sgd", loss="mse")
    grad_check(model, x[:4], y[:4])
    stats = [w.copy() for w in norm.get_weights()]
    model.fit(x, y, epochs=2, verbose=0)
    for a, b in zip(stats, norm.get_weights()):  # the statistics do not train
        np.testing.assert_array_equal(a, b)
    model.save(tmp_path / "m.keras")
    loaded = pynn.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_category_encoding():
    codes = np.array([[0, 1, 1], [2, 2, 3]])
    np.testing.assert_array_equal(
        layers.CategoryEncoding(4, output_mode="count")(codes).numpy(), [[1, 2, 0, 0],
                                                                        [0, 0, 2, 1]])
    np.testing.assert_array_equal(
        layers.CategoryEncoding(4)(codes).numpy(), [[1, 1, 0, 0], [0, 0, 1, 1]])
    np.testing.assert_array_equal(
        layers.CategoryEncoding(4, output_mode="one_hot")(np.array([0, 3])).numpy(),
        np.eye(4)[[0, 3]])
    inp = pynn.Input((3,), dtype="int32")
    model = pynn.Model(inp, layers.CategoryEncoding(5, output_mode="count")(inp))
    np.testing.assert_array_equal(model.predict(codes.astype(np.int32), verbose=0),
                                  [[1, 2, 0, 0, 0], [0, 0, 2, 1, 0]])
    with pytest.raises(ValueError, match="num_tokens"):
        layers.CategoryEncoding()
    with pytest.raises(ValueError, match="output_mode"):
        layers.CategoryEncoding(3, output_mode="tf_idf")


def test_discretization():
    x = np.array([[-1.5, 0.0, 0.5, 1.0, 2.5]], np.float32)
    layer = layers.Discretization(bin_boundaries=[0.0, 1.0, 2.0])
    np.testing.assert_array_equal(layer(x).numpy(), np.digitize(x, [0.0, 1.0, 2.0]))
    inp = pynn.Input((5,))
    np.testing.assert_array_equal(pynn.Model(inp, layer(inp)).predict(x, verbose=0),
                                  [[0, 1, 1, 2, 3]])
    learned = layers.Discretization(num_bins=4)
    data = RNG.standard_normal(1000).astype(np.float32)
    learned.adapt(data)
    assert len(learned.bin_boundaries) == 3
    counts = np.bincount(learned(data[None]).numpy().astype(int).ravel(), minlength=4)
    assert counts.min() >= 240  # quartiles: about 250 each
    assert layers.Discretization.from_config(layer.get_config()).bin_boundaries == [0, 1, 2]
    with pytest.raises(ValueError, match="bin_boundaries or num_bins"):
        layers.Discretization()


@pytest.mark.parametrize("size,mode", [((8, 4), "bilinear"), ((3, 11), "bilinear"),
                                       ((8, 4), "nearest"), ((2, 2), "nearest")])
def test_resizing_matches_torch_without_antialias(size, mode):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F
    images = RNG.random((2, 5, 7, 3)).astype(np.float32)
    got = layers.Resizing(*size, interpolation=mode)(images).numpy()
    t = torch.from_numpy(images).permute(0, 3, 1, 2)
    want = F.interpolate(t, size=size, mode="bilinear" if mode == "bilinear" else
                         "nearest-exact", align_corners=False if mode == "bilinear" else None)
    np.testing.assert_allclose(got, want.permute(0, 2, 3, 1).numpy(), rtol=1e-5, atol=1e-6)


def test_resizing_in_a_model_and_its_refusals():
    model = pynn.Sequential([pynn.Input((5, 6, 1)), layers.Resizing(10, 3), layers.Flatten(),
                             layers.Dense(1)])
    assert model.output_shape == (None, 1)
    model.compile(optimizer="sgd", loss="mse")
    grad_check(model, RNG.random((2, 5, 6, 1)).astype(np.float32),
               RNG.random((2, 1)).astype(np.float32))
    with pytest.raises(ValueError, match="crop_to_aspect_ratio"):
        layers.Resizing(4, 4, crop_to_aspect_ratio=True)
    with pytest.raises(ValueError, match="interpolation"):
        layers.Resizing(4, 4, interpolation="lanczos3")
