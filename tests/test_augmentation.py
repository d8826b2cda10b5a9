"""Keras 3's random image augmentation layers (pynn/layers/augmentation.py, the core's
csrc/core/ops_augment.c): exact agreement with Keras 3 where the transform is deterministic
(tests/keras_reference/augmentation.py, its values in augmentation.npz), the random parameters'
ranges, spread and independence, seeds, identity in inference, fit of a small CNN, gradients
against finite differences and PyTorch's grid_sample, configs and bad arguments."""

import json

import numpy as np
import pytest
import torch
from helpers import keras_reference_module, keras_reference_values, numeric_gradient

import pynn
from pynn import layers


@pytest.fixture(scope="module")
def values():
    mod = keras_reference_module("augmentation")
    return mod.run(), keras_reference_values("augmentation")


def test_deterministic_transforms_match_keras(values):
    mine, ref = values
    assert set(mine) == set(ref)
    arrays = [k for k in ref if ref[k].dtype.kind == "f"]
    assert len(arrays) > 200
    for k in sorted(arrays):
        np.testing.assert_allclose(mine[k], ref[k], rtol=1e-5, atol=2e-3, err_msg=k)


def test_bad_arguments_raise_as_keras(values):
    mine, ref = values
    for k in sorted(ref):
        if k.startswith("error/"):
            assert str(mine[k]) == str(ref[k]), k


def test_configs_match_keras(values):
    mine, ref = values
    assert json.loads(str(mine["configs"])) == json.loads(str(ref["configs"]))


LAYERS = [
    lambda: layers.RandomFlip("horizontal", seed=1),
    lambda: layers.RandomRotation((-0.2, 0.3), fill_mode="constant", fill_value=1.5, seed=2),
    lambda: layers.RandomZoom(0.2, (-0.1, 0.3), interpolation="nearest", fill_mode="wrap"),
    lambda: layers.RandomTranslation(0.1, 0.2, fill_mode="nearest",
                                     data_format="channels_first"),
    lambda: layers.RandomContrast((0.1, 0.3), value_range=(0, 1), seed=4),
    lambda: layers.RandomBrightness(0.2, value_range=(-1, 1)),
    lambda: layers.RandomCrop(3, 4, seed=5),
]


@pytest.mark.parametrize("make", LAYERS)
def test_config_round_trip(make):
    layer = make()
    again = type(layer).from_config(layer.get_config())
    assert again.get_config() == layer.get_config()
    restored = pynn.layers.deserialize(pynn.layers.serialize(layer))
    assert type(restored) is type(layer)


# -- random parameters, read back from images of their own coordinates -------------------------
S = 15  # images S x S; the centre is (7, 7)


def coordinates(n: int) -> np.ndarray:
    """(n, S, S, 2): channel 0 the row index, channel 1 the column index. Bilinear sampling of
    a linear function is exact, so an output pixel holds the input point it was sampled at."""
    r, c = np.meshgrid(np.arange(S), np.arange(S), indexing="ij")
    return np.broadcast_to(np.stack([r, c], -1), (n, S, S, 2)).astype(np.float32).copy()


def angles(y) -> np.ndarray:
    """The rotation of each image, in degrees: pixel (7, 10), 3 right of the centre, was sampled
    at (7 + 3 sin a, 7 + 3 cos a)."""
    y = np.asarray(y)
    return np.degrees(np.arctan2(y[:, 7, 10, 0] - 7, y[:, 7, 10, 1] - 7))


def test_rotation_angles_spread_over_the_range_independently():
    x = coordinates(600)
    a = angles(layers.RandomRotation((-0.1, 0.2), seed=3)(x, training=True))
    assert a.min() >= -36.01 and a.max() <= 72.01
    assert a.min() < -32 and a.max() > 68
    assert abs(a.mean() - 18) < 4 and abs(a.std() - 108 / np.sqrt(12)) < 3
    assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < 0.12  # per image, independent
    assert len(np.unique(np.round(a, 3))) > 590


def test_zoom_and_translation_draws():
    x = coordinates(400)
    y = np.asarray(layers.RandomZoom((-0.3, 0.2), seed=1)(x, training=True))
    zx, zy = (y[:, 7, 10, 1] - 7) / 3, (y[:, 10, 7, 0] - 7) / 3
    np.testing.assert_allclose(zx, zy, atol=1e-5)  # width_factor None: one draw zooms both
    assert zx.min() >= 0.7 - 1e-5 and zx.max() <= 1.2 + 1e-5 and np.ptp(zx) > 0.45
    y = np.asarray(layers.RandomZoom(0.2, (0.0, 0.5), seed=1)(x, training=True))
    zx, zy = (y[:, 7, 10, 1] - 7) / 3, (y[:, 10, 7, 0] - 7) / 3
    assert zx.min() >= 1 - 1e-5 and zx.max() <= 1.5 + 1e-5 and np.ptp(zy) > 0.35
    assert abs(np.corrcoef(zx, zy)[0, 1]) < 0.15  # the width's own draw
    y = np.asarray(layers.RandomTranslation((-0.2, 0.0), (0.1, 0.2), fill_mode="constant",
                                            seed=2)(x, training=True))
    ty, tx = 7 - y[:, 7, 7, 0], 7 - y[:, 7, 7, 1]  # y[r, c] = x[r - ty, c - tx]
    assert ty.min() >= -3 - 1e-4 and ty.max() <= 1e-4 and np.ptp(ty) > 2.7
    assert tx.min() >= 1.5 - 1e-4 and tx.max() <= 3 + 1e-4


def test_contrast_and_brightness_draws():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (300, 4, 5, 3)).astype(np.float32)
    y = np.asarray(layers.RandomContrast((0.2, 0.5), value_range=(-100, 100), seed=1)(
        x, training=True))
    m = x.mean(axis=(1, 2), keepdims=True)
    f = np.sum((y - m) * (x - m), axis=(1, 2, 3)) / np.sum((x - m) ** 2, axis=(1, 2, 3))
    assert f.min() >= 0.8 - 1e-3 and f.max() <= 1.5 + 1e-3 and np.ptp(f) > 0.6
    np.testing.assert_allclose(y, (x - m) * f[:, None, None, None] + m, atol=1e-5)
    y = np.asarray(layers.RandomBrightness((-0.1, 0.3), value_range=(-10, 10), seed=1)(
        x, training=True))
    d = (y - x)[:, 0, 0, 0]
    assert d.min() >= -2 - 1e-4 and d.max() <= 6 + 1e-4 and np.ptp(d) > 7
    np.testing.assert_allclose(y - x, np.broadcast_to(d[:, None, None, None], x.shape),
                               atol=1e-5)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("mode", ["horizontal", "vertical", "horizontal_and_vertical"])
def test_flip_gives_each_image_or_its_flip(mode, data_format):
    x = np.random.default_rng(1).normal(size=(64, 5, 4, 2)).astype(np.float32)
    h, w = (2, 3) if data_format == "channels_first" else (1, 2)
    axes = {"horizontal": (w,), "vertical": (h,), "horizontal_and_vertical": (h, w)}[mode]
    y = np.asarray(layers.RandomFlip(mode, seed=7, data_format=data_format)(x, training=True))
    flipped = np.flip(x, axis=axes)
    same = np.all(y == x, axis=(1, 2, 3))
    turned = np.all(y == flipped, axis=(1, 2, 3))
    assert np.all(same | turned)
    assert 16 < turned.sum() < 48


def test_crop_draws_one_window_per_batch():
    x = np.random.default_rng(2).normal(size=(6, 9, 8, 2)).astype(np.float32)
    layer = layers.RandomCrop(4, 5, seed=3)
    corners = set()
    for _ in range(40):
        y = np.asarray(layer(x, training=True))
        hits = [(r, q) for r in range(6) for q in range(4)
                if np.array_equal(y, x[:, r:r + 4, q:q + 5])]
        assert len(hits) == 1
        corners.add(hits[0])
    assert len(corners) > 12


def test_seeds_repeat_and_calls_draw_anew():
    x = coordinates(8)
    a = np.asarray(layers.RandomRotation(0.2, seed=11)(x, training=True))
    b = np.asarray(layers.RandomRotation(0.2, seed=11)(x, training=True))
    np.testing.assert_array_equal(a, b)
    layer = layers.RandomRotation(0.2, seed=11)
    first, second = layer(x, training=True), layer(x, training=True)
    assert not np.allclose(angles(first), angles(second))


def test_a_call_on_data_augments_by_default_as_keras():
    x = coordinates(16)
    assert not np.allclose(np.asarray(layers.RandomRotation(0.2, seed=1)(x)), x)
    np.testing.assert_array_equal(
        np.asarray(layers.RandomRotation(0.2, seed=1)(x, training=False)), x)
    # a single image (height, width, channels), as Keras takes it
    assert layers.RandomFlip(seed=1)(x[0], training=True).shape == (S, S, 2)


def augmented_model():
    return pynn.Sequential([
        pynn.Input((S, S, 2)), layers.RandomFlip("horizontal"), layers.RandomRotation(0.1),
        layers.RandomZoom(0.1), layers.RandomTranslation(0.1, 0.1, fill_mode="constant"),
        layers.RandomContrast(0.2, value_range=(0, 20)),
        layers.RandomBrightness(0.1, value_range=(0, 20))])


def test_in_a_model_identity_in_inference_and_new_draws_per_run():
    x = coordinates(32)
    pynn.utils.set_random_seed(5)
    model = augmented_model()
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)
    np.testing.assert_array_equal(np.asarray(model(x)), x)
    a, b = np.asarray(model(x, training=True)), np.asarray(model(x, training=True))
    assert not np.allclose(a, x) and not np.allclose(a, b)
    rot = pynn.Sequential([pynn.Input((S, S, 2)), layers.RandomRotation((-0.1, 0.2))])
    ang = np.concatenate([angles(rot(x, training=True)) for _ in range(10)])
    assert ang.min() >= -36.01 and ang.max() <= 72.01 and np.ptp(ang) > 90
    assert abs(np.corrcoef(ang[:-1], ang[1:])[0, 1]) < 0.2


def test_crop_in_a_model_infers_on_the_centre_resized():
    x = np.random.default_rng(3).normal(size=(4, 7, 6, 2)).astype(np.float32)
    model = pynn.Sequential([pynn.Input((7, 6, 2)), layers.RandomCrop(4, 4)])
    # the centre at the window's aspect ratio (6 x 6 from row 0), resized to 4 x 4
    centre = torch.from_numpy(x[:, 0:6, 0:6].transpose(0, 3, 1, 2).copy())
    want = torch.nn.functional.interpolate(centre, size=(4, 4), mode="bilinear",
                                           align_corners=False).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(model.predict(x, verbose=0), want, atol=1e-5)
    assert model(x, training=True).shape == (4, 4, 4, 2)
    assert layers.RandomCrop(4, 4)(x, training=False).shape == x.shape  # Keras 3 on data


def fit_weights(seed: int, augment: bool = True):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (32, 12, 12, 3)).astype(np.float32)
    y = rng.integers(0, 3, 32).astype(np.int32)
    pynn.utils.set_random_seed(seed)
    aug = [layers.RandomFlip("horizontal"), layers.RandomRotation(0.1),
           layers.RandomZoom(0.1), layers.RandomTranslation(0.1, 0.1),
           layers.RandomContrast(0.2, value_range=(0, 1)),
           layers.RandomBrightness(0.1, value_range=(0, 1)), layers.RandomCrop(10, 10)]
    model = pynn.Sequential([pynn.Input((12, 12, 3)), *(aug if augment else [
        layers.CenterCrop(10, 10)]), layers.Conv2D(4, 3, activation="relu"), layers.Flatten(),
        layers.Dense(3, activation="softmax")])
    model.compile(optimizer=pynn.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    assert np.all(np.isfinite(history.history["loss"]))
    assert model.predict(x, verbose=0).shape == (32, 3)
    return [np.array(w) for w in model.get_weights()]


def test_fit_with_augmentation_is_deterministic_for_a_seed():
    a, b, c = fit_weights(1), fit_weights(1), fit_weights(2)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    pynn.utils.set_random_seed(2)
    plain = fit_weights(2, augment=False)
    assert any(not np.allclose(u, v) for u, v in zip(a, c))
    assert any(not np.allclose(u, v) for u, v in zip(c, plain))


# -- gradients ------------------------------------------------------------------------------------
def tape_check(make, x, eps=1e-2, rtol=1e-2, atol=2e-3):
    """The tape's gradient of sum(layer(x) * w) against central differences; every evaluation
    uses a new layer with the same seed, so the same draws."""
    leaf = pynn.Tensor(x.copy(), requires_grad=True)
    out = make()(leaf, training=True)
    w = np.random.default_rng(7).standard_normal(out.shape).astype(np.float32)
    (out * w).sum().backward()
    grad = np.asarray(leaf.grad).reshape(-1)
    xx = x.copy()

    def f():
        return float(np.sum(np.asarray(make()(xx, training=True), np.float64) * w))
    idx = np.arange(xx.size)
    num = numeric_gradient(f, xx, idx, eps)
    scale = max(np.abs(num).max(), 1e-3)
    np.testing.assert_allclose(grad, num, rtol=rtol, atol=atol * scale)


GRAD_CASES = {
    "rotation_bilinear_reflect": lambda: layers.RandomRotation(0.2, seed=1),
    "rotation_bilinear_constant": lambda: layers.RandomRotation(
        (0.05, 0.3), fill_mode="constant", fill_value=2.0, seed=2),
    "rotation_nearest_wrap": lambda: layers.RandomRotation(0.3, fill_mode="wrap",
                                                           interpolation="nearest", seed=3),
    "zoom_nearest_fill": lambda: layers.RandomZoom((-0.4, 0.5), fill_mode="nearest", seed=4),
    "zoom_channels_first": lambda: layers.RandomZoom(0.3, 0.2, data_format="channels_first",
                                                     seed=5),
    "translation_constant": lambda: layers.RandomTranslation(0.3, 0.4, fill_mode="constant",
                                                             seed=6),
    "flip": lambda: layers.RandomFlip(seed=7),
    "flip_channels_first": lambda: layers.RandomFlip("vertical", seed=8,
                                                     data_format="channels_first"),
    "contrast": lambda: layers.RandomContrast((0.3, 0.6), value_range=(-1, 1.2), seed=9),
    "contrast_channels_first": lambda: layers.RandomContrast(
        0.5, value_range=(-5, 5), seed=10, data_format="channels_first"),
    "brightness": lambda: layers.RandomBrightness(0.2, value_range=(-1.5, 1.5), seed=11),
    "crop_window": lambda: layers.RandomCrop(3, 2, seed=12),
    "crop_resized": lambda: layers.RandomCrop(7, 4, seed=13),
    "crop_channels_first": lambda: layers.RandomCrop(6, 3, seed=14,
                                                     data_format="channels_first"),
}


@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_backward_matches_finite_differences(name):
    x = np.random.default_rng(3).normal(size=(3, 5, 4, 2)).astype(np.float32)
    # the clipped ops have kinks: a smaller step keeps the differences off them
    tape_check(GRAD_CASES[name], x, eps=1e-3 if name in ("brightness", "contrast") else 1e-2)


def test_backward_in_a_model_is_the_adjoint_of_the_training_forward():
    # the sampling is linear in x: <w, A x> = <A^T w, x> when backward redraws the same A
    x = coordinates(6) / S + np.random.default_rng(4).normal(0, 0.1, (6, S, S, 2))
    x = x.astype(np.float32)
    model = pynn.Sequential([pynn.Input((S, S, 2)), layers.RandomFlip(),
                             layers.RandomRotation(0.2), layers.RandomZoom(0.2, 0.3),
                             layers.RandomTranslation(0.2, 0.1, fill_mode="wrap"),
                             layers.RandomCrop(12, 11)])
    leaf = pynn.Tensor(x, requires_grad=True)
    out = model(leaf, training=True)
    w = np.random.default_rng(5).standard_normal(out.shape).astype(np.float32)
    (out * w).sum().backward()
    lhs = float(np.sum(np.asarray(out, np.float64) * w))
    rhs = float(np.sum(np.asarray(leaf.grad, np.float64) * x))
    assert abs(lhs - rhs) < 1e-4 * max(1.0, abs(lhs))
    assert not np.allclose(np.asarray(out), x[:, :12, :11])


def test_bilinear_rotation_matches_torch_grid_sample():
    """Constant fill with 0 is grid_sample's padding_mode='zeros'; with align_corners=True a
    normalised coordinate -1..1 spans pixel centres 0..n-1, as the op's coordinates do."""
    x = np.random.default_rng(6).normal(size=(2, 6, 7, 3)).astype(np.float32)
    turns = 0.13
    layer = layers.RandomRotation((turns, turns), fill_mode="constant", seed=1)
    leaf = pynn.Tensor(x.copy(), requires_grad=True)
    out = layer(leaf, training=True)
    w = np.random.default_rng(7).standard_normal(out.shape).astype(np.float32)
    (out * w).sum().backward()
    H, W = 6, 7
    a = np.deg2rad(turns * 360)
    cx, cy = (W - 1) / 2, (H - 1) / 2
    r, c = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    col = np.cos(a) * c - np.sin(a) * r + cx - cx * np.cos(a) + cy * np.sin(a)
    row = np.sin(a) * c + np.cos(a) * r + cy - cx * np.sin(a) - cy * np.cos(a)
    grid = np.stack([2 * col / (W - 1) - 1, 2 * row / (H - 1) - 1], -1)[None].repeat(2, 0)
    tx = torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float64, requires_grad=True)
    ty = torch.nn.functional.grid_sample(tx, torch.from_numpy(grid), mode="bilinear",
                                         padding_mode="zeros", align_corners=True)
    tw = torch.from_numpy(w.transpose(0, 3, 1, 2).astype(np.float64))
    (ty * tw).sum().backward()
    np.testing.assert_allclose(np.asarray(out), ty.detach().numpy().transpose(0, 2, 3, 1),
                               atol=1e-4)
    np.testing.assert_allclose(np.asarray(leaf.grad), tx.grad.numpy().transpose(0, 2, 3, 1),
                               atol=1e-4)


# -- bad input -----------------------------------------------------------------------------------
def test_bad_arguments_and_shapes_raise():
    with pytest.raises(ValueError, match="mode"):
        layers.RandomFlip("diagonal")
    with pytest.raises(ValueError, match="seed"):
        layers.RandomRotation(0.1, seed="x")
    with pytest.raises(ValueError, match="height"):
        layers.RandomCrop(0, 3)
    with pytest.raises(ValueError, match="fill_value"):
        layers.RandomZoom(0.1, fill_value="a")
    with pytest.raises(NotImplementedError, match="bounding"):
        layers.RandomFlip(bounding_box_format="xyxy")
    with pytest.raises(ValueError, match="rank 4"):
        pynn.Sequential([pynn.Input((4, 4)), layers.RandomRotation(0.1)])
    with pytest.raises(ValueError, match="RandomZoom"):
        layers.RandomZoom(0.1)(np.zeros((2, 3), np.float32), training=True)
