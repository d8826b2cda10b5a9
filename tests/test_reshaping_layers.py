"""The reshaping family (Keras 3's keras.layers.reshaping, and Identity): UpSampling1D/2D/3D,
RepeatVector, Permute, Identity, Cropping1D/2D/3D, ZeroPadding1D/3D. Values against NumPy,
Keras 3 and PyTorch, in every way a layer runs (on data, Sequential, functional); shapes,
configs, default names, gradients, training, saving and argument errors."""

import os
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import core_gradients, grad_check

import pynn
from pynn import layers as L

RNG = np.random.default_rng(18)


def data(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def np_pad(x, pads):
    return np.pad(x, pads)


# (factory, per-sample input shape, NumPy reference), the reference written as Keras 3 computes
# the layer (its call() with keras.ops, which follow NumPy)
CASES = {
    "identity": (L.Identity, (3, 4), lambda x: x),
    "repeat_vector": (lambda: L.RepeatVector(3), (5,), lambda x: np.repeat(x[:, None], 3, 1)),
    "repeat_vector_1": (lambda: L.RepeatVector(1), (4,), lambda x: x[:, None]),
    "repeat_vector_many": (lambda: L.RepeatVector(23), (2,),
                           lambda x: np.repeat(x[:, None], 23, 1)),
    "permute_2": (lambda: L.Permute((2, 1)), (3, 4), lambda x: x.transpose(0, 2, 1)),
    "permute_3": (lambda: L.Permute((3, 1, 2)), (2, 3, 4), lambda x: x.transpose(0, 3, 1, 2)),
    "permute_4": (lambda: L.Permute((2, 4, 1, 3)), (2, 3, 1, 2),
                  lambda x: x.transpose(0, 2, 4, 1, 3)),
    "up_sampling1d": (L.UpSampling1D, (4, 3), lambda x: np.repeat(x, 2, 1)),
    "up_sampling1d_5": (lambda: L.UpSampling1D(5), (3, 2), lambda x: np.repeat(x, 5, 1)),
    "up_sampling2d": (L.UpSampling2D, (3, 4, 2),
                      lambda x: np.repeat(np.repeat(x, 2, 1), 2, 2)),
    "up_sampling2d_1_3": (lambda: L.UpSampling2D((1, 3)), (3, 4, 2),
                          lambda x: np.repeat(x, 3, 2)),
    "up_sampling2d_cf": (lambda: L.UpSampling2D((2, 3), data_format="channels_first"),
                         (2, 3, 4), lambda x: np.repeat(np.repeat(x, 2, 2), 3, 3)),
    "up_sampling3d": (L.UpSampling3D, (2, 3, 2, 2),
                      lambda x: np.repeat(np.repeat(np.repeat(x, 2, 1), 2, 2), 2, 3)),
    "up_sampling3d_mixed": (lambda: L.UpSampling3D((3, 1, 2)), (2, 3, 2, 2),
                            lambda x: np.repeat(np.repeat(x, 3, 1), 2, 3)),
    "up_sampling3d_cf": (lambda: L.UpSampling3D((1, 2, 3), data_format="channels_first"),
                         (2, 2, 3, 2), lambda x: np.repeat(np.repeat(x, 2, 3), 3, 4)),
    "cropping1d": (L.Cropping1D, (5, 3), lambda x: x[:, 1:-1]),
    "cropping1d_start": (lambda: L.Cropping1D((2, 0)), (5, 3), lambda x: x[:, 2:]),
    "cropping1d_none": (lambda: L.Cropping1D(0), (5, 3), lambda x: x),
    "cropping2d": (L.Cropping2D, (4, 5, 2), lambda x: x),
    "cropping2d_pairs": (lambda: L.Cropping2D(((1, 2), (0, 1))), (6, 5, 2),
                         lambda x: x[:, 1:-2, 0:-1]),
    "cropping2d_sym": (lambda: L.Cropping2D((1, 2)), (6, 7, 2), lambda x: x[:, 1:-1, 2:-2]),
    "cropping2d_cf": (lambda: L.Cropping2D(1, data_format="channels_first"), (2, 4, 5),
                      lambda x: x[:, :, 1:-1, 1:-1]),
    "cropping3d": (L.Cropping3D, (4, 5, 6, 2), lambda x: x[:, 1:-1, 1:-1, 1:-1]),
    "cropping3d_pairs": (lambda: L.Cropping3D(((0, 1), (2, 0), (1, 1))), (3, 4, 5, 2),
                         lambda x: x[:, :-1, 2:, 1:-1]),
    "cropping3d_cf": (lambda: L.Cropping3D((1, 0, 2), data_format="channels_first"),
                      (2, 4, 3, 6), lambda x: x[:, :, 1:-1, :, 2:-2]),
    "zero_padding1d": (L.ZeroPadding1D, (4, 3), lambda x: np_pad(x, ((0, 0), (1, 1), (0, 0)))),
    "zero_padding1d_pair": (lambda: L.ZeroPadding1D((0, 3)), (4, 3),
                            lambda x: np_pad(x, ((0, 0), (0, 3), (0, 0)))),
    "zero_padding1d_cf": (lambda: L.ZeroPadding1D((2, 1), data_format="channels_first"),
                          (3, 4), lambda x: np_pad(x, ((0, 0), (0, 0), (2, 1)))),
    "zero_padding3d": (L.ZeroPadding3D, (2, 3, 2, 2),
                       lambda x: np_pad(x, ((0, 0), (1, 1), (1, 1), (1, 1), (0, 0)))),
    "zero_padding3d_pairs": (lambda: L.ZeroPadding3D(((0, 2), (0, 0), (3, 1))), (2, 3, 2, 2),
                             lambda x: np_pad(x, ((0, 0), (0, 2), (0, 0), (3, 1), (0, 0)))),
    "zero_padding3d_cf": (lambda: L.ZeroPadding3D((1, 0, 2), data_format="channels_first"),
                          (2, 2, 3, 2),
                          lambda x: np_pad(x, ((0, 0), (0, 0), (1, 1), (0, 0), (2, 2)))),
}


def sequential(layer, shape):
    return pynn.Sequential([pynn.Input(shape), layer])


def functional(layer, shape):
    inp = pynn.Input(shape)
    return pynn.Model(inp, layer(inp))


# -- values ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(CASES))
def test_values_match_numpy_on_data_and_in_both_model_kinds(case):
    make, shape, ref = CASES[case]
    x = data(3, *shape)
    want = ref(x)
    np.testing.assert_array_equal(np.asarray(make()(x)), want)
    np.testing.assert_array_equal(sequential(make(), shape).predict(x, verbose=0), want)
    np.testing.assert_array_equal(functional(make(), shape).predict(x, verbose=0), want)


@pytest.mark.parametrize("case", sorted(CASES))
def test_compute_output_shape_is_the_output_shape(case):
    make, shape, ref = CASES[case]
    want = ref(data(2, *shape)).shape[1:]
    assert make().compute_output_shape((None,) + shape) == (None,) + want
    assert functional(make(), shape).output_shape == (None,) + want


def test_keras_docstring_examples():
    x = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    want = [[[0, 1, 2], [0, 1, 2], [3, 4, 5], [3, 4, 5]],
            [[6, 7, 8], [6, 7, 8], [9, 10, 11], [9, 10, 11]]]
    np.testing.assert_array_equal(np.asarray(L.UpSampling1D(size=2)(x)), want)
    x = np.arange(12, dtype=np.float32).reshape(2, 2, 1, 3)
    y = np.asarray(L.UpSampling2D(size=(1, 2))(x))
    np.testing.assert_array_equal(y, np.repeat(x, 2, axis=2))
    assert np.asarray(L.UpSampling3D(size=(2, 2, 2))(np.ones((2, 1, 2, 1, 3)))).shape == \
        (2, 2, 4, 2, 3)


# UpSampling2D(interpolation="bilinear") as Keras 3 (jax backend) computes it: half-pixel
# centers, the edge values held
KERAS_BILINEAR_2x2 = [[0.0, 0.25, 0.75, 1.25, 1.75, 2.0],
                      [0.75, 1.0, 1.5, 2.0, 2.5, 2.75],
                      [2.25, 2.5, 3.0, 3.5, 4.0, 4.25],
                      [3.0, 3.25, 3.75, 4.25, 4.75, 5.0]]
KERAS_BILINEAR_1x3 = [[0.0, 0.0, 4.0 / 3.0, 8.0 / 3.0, 4.0, 4.0]]


@pytest.mark.parametrize("x,size,want", [
    (np.arange(6, dtype=np.float32).reshape(1, 2, 3, 1), (2, 2), KERAS_BILINEAR_2x2),
    (np.array([[[[0.0], [4.0]]]], np.float32), (1, 3), KERAS_BILINEAR_1x3),
])
def test_bilinear_upsampling_matches_keras(x, size, want):
    on_data = np.asarray(L.UpSampling2D(size, interpolation="bilinear")(x))
    model = sequential(L.UpSampling2D(size, interpolation="bilinear"), x.shape[1:])
    for y in (on_data, model.predict(x, verbose=0)):
        np.testing.assert_allclose(y[0, :, :, 0], want, rtol=1e-6, atol=1e-6)


def test_interpolation_name_is_lowercased_as_keras_does():
    assert L.UpSampling2D(interpolation="BiLinear").interpolation == "bilinear"


# -- PyTorch parity: values, and the input gradient of an mse loss (model and tape) ---------------
def _nchw(f):
    """A torch function of channels-first images applied to channels-last ones."""
    def g(x):
        nd = x.dim()
        to_first = (0, nd - 1) + tuple(range(1, nd - 1))
        to_last = (0,) + tuple(range(2, nd)) + (1,)
        return f(x.permute(*to_first)).permute(*to_last)
    return g


TORCH = {
    "identity": (L.Identity, (3, 4), lambda x: x),
    "repeat_vector": (lambda: L.RepeatVector(4), (5,), lambda x: x[:, None, :].repeat(1, 4, 1)),
    "permute": (lambda: L.Permute((3, 1, 2)), (2, 3, 4), lambda x: x.permute(0, 3, 1, 2)),
    "up_sampling1d": (lambda: L.UpSampling1D(3), (4, 2),
                      _nchw(lambda x: F.interpolate(x, scale_factor=3, mode="nearest"))),
    "up_sampling2d_nearest": (lambda: L.UpSampling2D((2, 3)), (3, 4, 2),
                              _nchw(lambda x: F.interpolate(x, scale_factor=(2, 3),
                                                            mode="nearest"))),
    "up_sampling2d_bilinear": (lambda: L.UpSampling2D((2, 3), interpolation="bilinear"),
                               (3, 4, 2),
                               _nchw(lambda x: F.interpolate(x, scale_factor=(2, 3),
                                                             mode="bilinear",
                                                             align_corners=False))),
    "up_sampling2d_bilinear_cf": (lambda: L.UpSampling2D(3, "channels_first", "bilinear"),
                                  (2, 1, 4),
                                  lambda x: F.interpolate(x, scale_factor=3, mode="bilinear",
                                                          align_corners=False)),
    "up_sampling3d": (lambda: L.UpSampling3D((2, 1, 3)), (2, 3, 2, 2),
                      _nchw(lambda x: F.interpolate(x, scale_factor=(2, 1, 3),
                                                    mode="nearest"))),
    "cropping1d": (lambda: L.Cropping1D((1, 2)), (6, 3), lambda x: x[:, 1:-2]),
    "cropping2d": (lambda: L.Cropping2D(((1, 0), (2, 1))), (4, 5, 2),
                   lambda x: x[:, 1:, 2:-1]),
    "cropping3d": (lambda: L.Cropping3D(((1, 1), (0, 2), (1, 0))), (4, 4, 3, 2),
                   lambda x: x[:, 1:-1, :-2, 1:]),
    "zero_padding1d": (lambda: L.ZeroPadding1D((2, 1)), (4, 3),
                       lambda x: F.pad(x, (0, 0, 2, 1))),
    "zero_padding3d": (lambda: L.ZeroPadding3D(((1, 0), (0, 2), (1, 1))), (2, 3, 2, 2),
                       lambda x: F.pad(x, (0, 0, 1, 1, 0, 2, 1, 0))),
}


@pytest.mark.parametrize("case", sorted(TORCH))
def test_model_matches_pytorch_values_loss_and_input_gradient(case):
    make, shape, torch_fn = TORCH[case]
    x = data(3, *shape)
    model = sequential(make(), shape)
    model.compile(optimizer="sgd", loss="mse")
    out = model.predict(x, verbose=0)
    y = data(*out.shape)
    loss, dx, _ = core_gradients(model, x, y)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    out_t = torch_fn(xt)
    loss_t = F.mse_loss(out_t, torch.tensor(y, dtype=torch.float64))
    loss_t.backward()
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss, loss_t.item(), rtol=1e-5)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("case", sorted(TORCH))
def test_layer_on_tensors_backpropagates_as_pytorch(case):
    make, shape, torch_fn = TORCH[case]
    x0 = data(2, *shape)
    x = pynn.Tensor(x0, requires_grad=True)
    out = make()(x)
    w = data(*out.shape)
    pynn.ops.sum(out * w).backward()
    xt = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    (torch_fn(xt) * torch.tensor(w, dtype=torch.float64)).sum().backward()
    np.testing.assert_allclose(np.asarray(x.grad), xt.grad.numpy(), rtol=1e-5, atol=1e-6)


# -- gradients and training -----------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(TORCH))
def test_gradients_match_finite_differences(case):
    make, shape, _ = TORCH[case]
    pynn.utils.set_random_seed(0)
    model = pynn.Sequential([pynn.Input(shape), make(), L.Flatten(), L.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = data(4, *shape), data(4, 2)
    model.predict(x, verbose=0)
    grad_check(model, x, y)


def all_layers_stack():
    """Every layer of the family, each reaching a trainable Dense before it."""
    return [L.Conv2D(2, 3, padding="same"),
            L.UpSampling2D(interpolation="bilinear"), L.Cropping2D(((1, 0), (0, 1))),
            L.UpSampling2D(data_format="channels_first"), L.Permute((3, 1, 2)),
            L.Reshape((4, 7, 14, 1)), L.ZeroPadding3D(((1, 0), (0, 1), (0, 0))),
            L.UpSampling3D((1, 1, 2)), L.Cropping3D(((0, 1), (1, 1), (2, 2))),
            L.Flatten(), L.Dense(3), L.RepeatVector(4), L.UpSampling1D(2),
            L.ZeroPadding1D((1, 2)), L.Cropping1D((2, 1)), L.Identity(), L.Flatten(),
            L.Dense(1)]


def test_every_layer_trains_and_saves_in_a_sequential_model(tmp_path):
    pynn.utils.set_random_seed(1)
    model = pynn.Sequential([pynn.Input((4, 4, 3))] + all_layers_stack())
    model.compile(optimizer=pynn.optimizers.Adam(1e-2), loss="mse")
    x, y = data(16, 4, 4, 3), data(16, 1)
    first = model.layers[0].get_weights()[0].copy()
    history = model.fit(x, y, epochs=4, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert not np.array_equal(model.layers[0].get_weights()[0], first)  # gradients reach it
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    loaded = pynn.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]
    for a, b in zip(loaded.layers, model.layers):
        assert a.get_config() == b.get_config()


def test_every_layer_trains_and_saves_in_a_functional_model(tmp_path):
    pynn.utils.set_random_seed(2)
    inp = pynn.Input((4, 4, 3))
    h = inp
    for layer in all_layers_stack():
        h = layer(h)
    model = pynn.Model(inp, h)
    model.compile(optimizer=pynn.optimizers.Adam(1e-2), loss="mse")
    x, y = data(16, 4, 4, 3), data(16, 1)
    history = model.fit(x, y, epochs=4, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    path = os.path.join(tmp_path, "f.keras")
    model.save(path)
    loaded = pynn.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_layers_take_inputs_of_unknown_lengths():
    inp = pynn.Input((None, 3))
    h = L.ZeroPadding1D((1, 0))(L.UpSampling1D(2)(L.Cropping1D((1, 1))(inp)))
    assert h.shape == (None, None, 3)
    model = pynn.Model(inp, h)
    x = data(2, 5, 3)
    want = np.pad(np.repeat(x[:, 1:-1], 2, 1), ((0, 0), (1, 0), (0, 0)))
    np.testing.assert_array_equal(model.predict(x, verbose=0), want)
    np.testing.assert_array_equal(model.predict(x[:, :4], verbose=0),
                                  np.pad(np.repeat(x[:, 1:3], 2, 1), ((0, 0), (1, 0), (0, 0))))

    img = pynn.Input((None, None, 2))
    h = L.Permute((3, 1, 2))(L.Cropping2D(1)(L.UpSampling2D(2, interpolation="bilinear")(img)))
    assert h.shape == (None, 2, None, None)
    assert pynn.Model(img, h).predict(data(1, 3, 4, 2), verbose=0).shape == (1, 2, 4, 6)


def test_compute_output_shape_keeps_unknown_dims():
    assert L.UpSampling2D((2, 3)).compute_output_shape((None, None, 4, 1)) == (None, None, 12, 1)
    assert L.Cropping3D(1).compute_output_shape((None, None, 5, None, 2)) == \
        (None, None, 3, None, 2)
    assert L.ZeroPadding3D(2).compute_output_shape((None, 3, None, 3, 1)) == \
        (None, 7, None, 7, 1)
    assert L.Permute((2, 1)).compute_output_shape((None, None, 4)) == (None, 4, None)
    assert L.RepeatVector(5).compute_output_shape((None, 7)) == (None, 5, 7)


# -- names and configs ----------------------------------------------------------------------------
@pytest.mark.parametrize("cls,args,base", [
    (L.UpSampling1D, (), "up_sampling1d"), (L.UpSampling2D, (), "up_sampling2d"),
    (L.UpSampling3D, (), "up_sampling3d"), (L.RepeatVector, (2,), "repeat_vector"),
    (L.Permute, ((1,),), "permute"), (L.Identity, (), "identity"),
    (L.Cropping1D, (), "cropping1d"), (L.Cropping2D, (), "cropping2d"),
    (L.Cropping3D, (), "cropping3d"), (L.ZeroPadding1D, (), "zero_padding1d"),
    (L.ZeroPadding3D, (), "zero_padding3d"),
])
def test_default_names_are_keras_snake_case(cls, args, base):
    a, b = cls(*args), cls(*args)
    assert re.fullmatch(rf"{base}(_\d+)?", a.name)
    assert b.name != a.name and re.fullmatch(rf"{base}_\d+", b.name)
    assert cls(*args, name="mine").name == "mine"


# Keras 3's get_config of each layer made with its defaults (name, trainable and dtype aside)
KERAS_DEFAULT_CONFIGS = [
    (L.UpSampling1D, (), {"size": 2}),
    (L.UpSampling2D, (), {"size": (2, 2), "data_format": "channels_last",
                          "interpolation": "nearest"}),
    (L.UpSampling3D, (), {"size": (2, 2, 2), "data_format": "channels_last"}),
    (L.RepeatVector, (3,), {"n": 3}),
    (L.Permute, ((2, 1),), {"dims": (2, 1)}),
    (L.Identity, (), {}),
    (L.Cropping1D, (), {"cropping": (1, 1)}),
    (L.Cropping2D, (), {"cropping": ((0, 0), (0, 0)), "data_format": "channels_last"}),
    (L.Cropping3D, (), {"cropping": ((1, 1), (1, 1), (1, 1)), "data_format": "channels_last"}),
    (L.ZeroPadding1D, (), {"padding": (1, 1), "data_format": "channels_last"}),
    (L.ZeroPadding3D, (), {"padding": ((1, 1), (1, 1), (1, 1)),
                           "data_format": "channels_last"}),
]


@pytest.mark.parametrize("cls,args,want", KERAS_DEFAULT_CONFIGS)
def test_defaults_and_config_keys_are_keras(cls, args, want):
    config = cls(*args, name="x").get_config()
    assert config == {"name": "x", "trainable": True, **want}


@pytest.mark.parametrize("layer", [
    L.UpSampling1D(4), L.UpSampling2D(3, "channels_first", "bilinear"),
    L.UpSampling3D((1, 2, 3), data_format="channels_first"), L.RepeatVector(7),
    L.Permute((3, 1, 2)), L.Identity(trainable=False), L.Cropping1D((2, 0)),
    L.Cropping2D((1, (2, 3))), L.Cropping3D(((0, 1), 2, (3, 0)), "channels_first"),
    L.ZeroPadding1D((0, 2), "channels_first"), L.ZeroPadding3D((1, 2, 3)),
], ids=lambda layer: type(layer).__name__)
def test_config_round_trips_through_from_config_and_json(layer):
    import json
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config
    again = type(layer).from_config(json.loads(json.dumps(config)))  # tuples become lists
    assert again.get_config() == config


def test_configs_normalize_arguments_as_keras():
    assert L.UpSampling2D(3).size == (3, 3)
    assert L.UpSampling3D([1, 2, 3]).size == (1, 2, 3)
    assert L.Cropping1D(2).cropping == (2, 2)
    assert L.Cropping2D(1).cropping == ((1, 1), (1, 1))
    assert L.Cropping2D((1, 2)).cropping == ((1, 1), (2, 2))
    assert L.Cropping3D((1, (2, 3), 0)).cropping == ((1, 1), (2, 3), (0, 0))
    assert L.ZeroPadding1D(3).padding == (3, 3)
    assert L.ZeroPadding3D(2).padding == ((2, 2),) * 3
    assert L.ZeroPadding3D([[1, 0], [0, 1], [2, 2]]).padding == ((1, 0), (0, 1), (2, 2))
    assert L.Permute([2, 1]).dims == (2, 1)
    assert L.UpSampling3D(data_format="Channels_First").data_format == "channels_first"


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("make,error", [
    (lambda: L.UpSampling1D(0), ValueError),
    (lambda: L.UpSampling1D(2.0), TypeError),
    (lambda: L.UpSampling1D(True), TypeError),
    (lambda: L.UpSampling1D((2,)), TypeError),
    (lambda: L.UpSampling2D(0), ValueError),
    (lambda: L.UpSampling2D((2, 2, 2)), ValueError),
    (lambda: L.UpSampling2D("a"), ValueError),
    (lambda: L.UpSampling2D(data_format="nhwc"), ValueError),
    (lambda: L.UpSampling2D(interpolation="cubic"), ValueError),
    (lambda: L.UpSampling2D(interpolation=3), ValueError),
    (lambda: L.UpSampling3D((1, 2)), ValueError),
    (lambda: L.UpSampling3D(-1), ValueError),
    (lambda: L.RepeatVector(0), ValueError),
    (lambda: L.RepeatVector(2.5), TypeError),
    (lambda: L.RepeatVector(None), TypeError),
    (lambda: L.Permute((1, 3)), ValueError),
    (lambda: L.Permute((0, 1)), ValueError),
    (lambda: L.Permute((2, 2)), ValueError),
    (lambda: L.Permute(5), TypeError),
    (lambda: L.Cropping1D(-1), ValueError),
    (lambda: L.Cropping1D((1, 2, 3)), ValueError),
    (lambda: L.Cropping1D("ab"), ValueError),
    (lambda: L.Cropping2D(-1), ValueError),
    (lambda: L.Cropping2D((1, 2, 3)), ValueError),
    (lambda: L.Cropping2D(((1, -1), (0, 0))), ValueError),
    (lambda: L.Cropping2D(1.5), ValueError),
    (lambda: L.Cropping3D((1, 2)), ValueError),
    (lambda: L.Cropping3D(-2), ValueError),
    (lambda: L.Cropping3D(data_format="ncdhw"), ValueError),
    (lambda: L.ZeroPadding1D(-1), ValueError),
    (lambda: L.ZeroPadding1D((1, 2, 3)), ValueError),
    (lambda: L.ZeroPadding1D(data_format="x"), ValueError),
    (lambda: L.ZeroPadding3D((1, 2)), ValueError),
    (lambda: L.ZeroPadding3D(((1, 1), (1, 1), (1, -1))), ValueError),
    (lambda: L.ZeroPadding3D(None), ValueError),
    (lambda: L.ZeroPadding3D(-1), ValueError),
    (lambda: L.Identity(unknown=1), TypeError),
])
def test_bad_arguments_raise_as_in_keras(make, error):
    with pytest.raises(error):
        make()


@pytest.mark.parametrize("method", ["bicubic", "lanczos3", "lanczos5"])
def test_keras_interpolations_not_implemented_say_so(method):
    with pytest.raises(NotImplementedError, match=f"UpSampling2D 'up_sampling2d.*{method}"):
        L.UpSampling2D(interpolation=method)


@pytest.mark.parametrize("make,shape", [
    (lambda: L.Cropping1D((2, 3)), (5, 2)),
    (lambda: L.Cropping2D(((2, 3), (0, 0))), (5, 4, 2)),
    (lambda: L.Cropping2D(((0, 0), (1, 1)), data_format="channels_first"), (5, 4, 2)),
    (lambda: L.Cropping3D(2), (4, 9, 9, 1)),
])
def test_cropping_everything_away_raises(make, shape):
    with pytest.raises(ValueError, match="cropping"):
        make()(data(1, *shape))
    with pytest.raises(ValueError, match="cropping"):
        make()(pynn.Input(shape))
    with pytest.raises(ValueError, match="cropping"):
        sequential(make(), shape)


@pytest.mark.parametrize("make,shape", [
    (lambda: L.Permute((2, 1)), (2, 3, 4)),
    (lambda: L.RepeatVector(2), (2, 3)),
    (lambda: L.UpSampling1D(), (2,)),
    (lambda: L.UpSampling2D(), (2, 3)),
    (lambda: L.UpSampling3D(), (2, 3, 4)),
    (lambda: L.Cropping1D(), (5,)),
    (lambda: L.Cropping2D(), (5, 4)),
    (lambda: L.Cropping3D(), (5, 5, 5)),
    (lambda: L.ZeroPadding1D(), (2, 3, 4)),
    (lambda: L.ZeroPadding3D(), (2, 3, 4)),
])
def test_inputs_of_the_wrong_rank_raise(make, shape):
    with pytest.raises(ValueError, match="rank"):
        make()(data(1, *shape))
    with pytest.raises(ValueError, match="rank"):
        make()(pynn.Input(shape))
    with pytest.raises(ValueError, match="rank"):
        sequential(make(), shape)


def test_a_built_layer_refuses_a_later_input_of_another_rank():
    layer = L.Cropping2D(1)
    layer(data(1, 4, 4, 2))
    with pytest.raises(ValueError, match="rank"):
        layer(data(1, 4, 4, 2, 1))
    pad = L.ZeroPadding1D()
    pad(data(1, 4, 2))
    with pytest.raises(ValueError, match="rank"):
        pad(data(1, 4, 2, 1))
