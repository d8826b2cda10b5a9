"""The convolutions written with pynn.ops (issue 18): DepthwiseConv1D/2D, SeparableConv1D/2D,
Conv3D (groups too), MaxPooling3D, AveragePooling3D and the 3-D global pools. Values against
PyTorch's NCHW ops (or NumPy), Keras 3's weight names and shapes, configs, channels_first,
numerical gradients, training, saving."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import grad_check

import pynn
from pynn import layers

RNG = np.random.default_rng(0)
X2 = RNG.standard_normal((2, 7, 8, 3)).astype(np.float32)
X1 = RNG.standard_normal((2, 11, 3)).astype(np.float32)
X3 = RNG.standard_normal((2, 5, 6, 7, 4)).astype(np.float32)


def t(a, nsp):  # channels-last array to a torch NC... tensor
    return torch.from_numpy(np.moveaxis(a, -1, 1).copy())


def back(y):  # torch NC... to channels last
    return np.ascontiguousarray(np.moveaxis(y.detach().numpy(), 1, -1))


@pytest.mark.parametrize("x,nsp", [(X2, 2), (X1, 1)])
def test_depthwise_conv_matches_torch_grouped_conv(x, nsp):
    cls = layers.DepthwiseConv2D if nsp == 2 else layers.DepthwiseConv1D
    layer = cls(3, depth_multiplier=2, padding="same", activation="tanh")
    y = layer(x).numpy()
    kernel, bias = layer.get_weights()
    c = x.shape[-1]
    assert kernel.shape == (3,) * nsp + (c, 2) and bias.shape == (2 * c,)
    assert [w.path for w in layer.weights] == [f"{layer.name}/kernel", f"{layer.name}/bias"]
    wt = torch.from_numpy(np.moveaxis(kernel, (-2, -1), (0, 1)).reshape(
        (2 * c, 1) + (3,) * nsp).copy())
    conv = F.conv2d if nsp == 2 else F.conv1d
    want = torch.tanh(conv(t(x, nsp), wt, torch.from_numpy(bias), padding=1, groups=c))
    np.testing.assert_allclose(y, back(want), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("x,nsp", [(X2, 2), (X1, 1)])
def test_separable_conv_is_depthwise_then_pointwise(x, nsp):
    cls = layers.SeparableConv2D if nsp == 2 else layers.SeparableConv1D
    layer = cls(5, 3, strides=2, depth_multiplier=2)
    y = layer(x).numpy()
    dk, pk, bias = layer.get_weights()
    c = x.shape[-1]
    assert dk.shape == (3,) * nsp + (c, 2) and pk.shape == (1,) * nsp + (2 * c, 5)
    conv = F.conv2d if nsp == 2 else F.conv1d
    dwt = torch.from_numpy(np.moveaxis(dk, (-2, -1), (0, 1)).reshape((2 * c, 1) + (3,) * nsp)
                           .copy())
    pwt = torch.from_numpy(np.moveaxis(pk, (-2, -1), (1, 0)).copy())
    want = conv(conv(t(x, nsp), dwt, stride=2, groups=c), pwt, torch.from_numpy(bias))
    np.testing.assert_allclose(y, back(want), rtol=1e-5, atol=1e-5)
    assert layer.compute_output_shape((None,) + x.shape[1:]) == (None,) + y.shape[1:]


@pytest.mark.parametrize("groups,padding", [(1, "valid"), (2, "same")])
def test_conv3d_matches_torch(groups, padding):
    layer = layers.Conv3D(6, (3, 2, 3), padding=padding, groups=groups, activation="relu")
    y = layer(X3).numpy()
    kernel, bias = layer.get_weights()
    assert kernel.shape == (3, 2, 3, 4 // groups, 6)
    wt = torch.from_numpy(np.moveaxis(kernel, (-1, -2), (0, 1)).copy())
    xt = t(X3, 3)
    if padding == "same":  # TensorFlow's rule: the extra one after (depth 3: 1, 1; height 2: 0, 1)
        xt = F.pad(xt, (1, 1, 0, 1, 1, 1))
    want = F.relu(F.conv3d(xt, wt, torch.from_numpy(bias), groups=groups))
    np.testing.assert_allclose(y, back(want), rtol=1e-5, atol=1e-5)


def test_3d_pools_match_torch_and_numpy():
    xt = t(X3, 3)
    np.testing.assert_array_equal(layers.MaxPooling3D()(X3).numpy(), back(F.max_pool3d(xt, 2)))
    np.testing.assert_allclose(layers.AveragePooling3D((2, 3, 2), strides=1)(X3).numpy(),
                               back(F.avg_pool3d(xt, (2, 3, 2), stride=1)), rtol=1e-5,
                               atol=1e-6)
    # 'same': windows cut at the far edge count only what they hold (depth 5 with pool 2)
    got = layers.AveragePooling3D(2, padding="same")(X3).numpy()
    assert got.shape == (2, 3, 3, 4, 4)
    np.testing.assert_allclose(got[:, 2, 0, 0], X3[:, 4, :2, :2].mean((1, 2)), rtol=1e-5)
    got = layers.MaxPooling3D(2, padding="same")(X3 - 10).numpy()  # -inf padding, not zeros
    np.testing.assert_allclose(got[:, 2, 0, 0], (X3 - 10)[:, 4, :2, :2].max((1, 2)))
    np.testing.assert_allclose(layers.GlobalAveragePooling3D()(X3).numpy(),
                               X3.mean((1, 2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(layers.GlobalMaxPooling3D(keepdims=True)(X3).numpy(),
                                  X3.max((1, 2, 3), keepdims=True))


@pytest.mark.parametrize("make", [
    lambda f: layers.DepthwiseConv2D(2, data_format=f),
    lambda f: layers.SeparableConv2D(3, 2, data_format=f),
    lambda f: layers.Conv3D(2, 2, data_format=f),
    lambda f: layers.MaxPooling3D(2, data_format=f),
    lambda f: layers.GlobalAveragePooling3D(data_format=f),
])
def test_channels_first_is_channels_last_on_transposed_data(make):
    x = X3 if "3" in type(make("channels_last")).__name__ else X2
    first, last = make("channels_first"), make("channels_last")
    xf = np.moveaxis(x, -1, 1)
    yf = first(xf).numpy()
    if first.weights:
        last(x)
        last.set_weights(first.get_weights())
    yl = last(x).numpy()
    np.testing.assert_allclose(yf, np.moveaxis(yl, -1, 1) if yl.ndim > 2 else yl, rtol=1e-5,
                               atol=1e-6)


def test_configs_names_and_keras_defaults():
    expect = {layers.DepthwiseConv2D(3): "depthwise_conv2d",
              layers.DepthwiseConv1D(3): "depthwise_conv1d",
              layers.SeparableConv2D(4, 3): "separable_conv2d",
              layers.SeparableConv1D(4, 3): "separable_conv1d", layers.Conv3D(4, 3): "conv3d",
              layers.MaxPooling3D(): "max_pooling3d",
              layers.AveragePooling3D(): "average_pooling3d",
              layers.GlobalAveragePooling3D(): "global_average_pooling3d",
              layers.GlobalMaxPooling3D(): "global_max_pooling3d"}
    for layer, name in expect.items():
        assert layer.name.rstrip("_0123456789") == name
        again = type(layer).from_config(layer.get_config())
        assert again.get_config() == {**layer.get_config(), "name": again.name}
    config = layers.SeparableConv2D(4, 3).get_config()
    assert config["depth_multiplier"] == 1 and config["kernel_size"] == (3, 3)
    assert "pointwise_initializer" in config and config["activation"] == "linear"
    assert layers.MaxPool3D is layers.MaxPooling3D and layers.Convolution3D is layers.Conv3D
    with pytest.raises(ValueError, match="depth_multiplier"):
        layers.DepthwiseConv2D(3, depth_multiplier=0)
    with pytest.raises(ValueError, match="groups"):
        layers.Conv3D(5, 3, groups=2)
    with pytest.raises(ValueError, match="rank 5"):
        layers.Conv3D(2, 3)(X2)


def test_gradients_training_and_saving(tmp_path):
    pynn.utils.set_random_seed(0)
    model = pynn.Sequential([
        pynn.Input((6, 6, 2)), layers.SeparableConv2D(3, 3, activation="tanh"),
        layers.DepthwiseConv2D(2, depth_multiplier=2), layers.Flatten(), layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    x = RNG.standard_normal((3, 6, 6, 2)).astype(np.float32)
    y = RNG.standard_normal((3, 2)).astype(np.float32)
    grad_check(model, x, y)
    vol = pynn.Sequential([pynn.Input((4, 4, 4, 1)), layers.Conv3D(2, 2, activation="tanh"),
                           layers.AveragePooling3D(), layers.Flatten(), layers.Dense(1)])
    vol.compile(optimizer="adam", loss="mse")
    xv = RNG.standard_normal((3, 4, 4, 4, 1)).astype(np.float32)
    grad_check(vol, xv, RNG.standard_normal((3, 1)).astype(np.float32))
    history = model.fit(x, y, epochs=20, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    model.save(tmp_path / "m.keras")
    back_model = pynn.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(back_model.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6)


@pytest.mark.parametrize("padding,strides,output_padding", [("same", 2, None),
                                                            ("valid", (1, 2, 3), None),
                                                            ("valid", 2, (1, 0, 1))])
def test_conv3d_transpose_matches_torch(padding, strides, output_padding):
    layer = layers.Conv3DTranspose(3, (2, 3, 2), strides=strides, padding=padding,
                                   output_padding=output_padding)
    x = X3[:, :3, :4, :3]
    y = layer(x).numpy()
    kernel, bias = layer.get_weights()
    assert kernel.shape == (2, 3, 2, 3, 4)
    assert layer.compute_output_shape((None,) + x.shape[1:]) == (None,) + y.shape[1:]
    s = (strides,) * 3 if isinstance(strides, int) else strides
    if output_padding is None and padding == "valid":  # Keras: (n - 1) s + max(k, s)
        output_padding = tuple(max(k, st) - k for k, st in zip((2, 3, 2), s))
    full = F.conv_transpose3d(t(x, 3), torch.from_numpy(np.moveaxis(kernel, (-1, -2), (0, 1))
                                                       .copy()), torch.from_numpy(bias),
                              stride=s, output_padding=output_padding or 0)
    full = back(full)
    if padding == "same":  # Keras's 'same' keeps the first input * stride positions here
        full = full[:, :y.shape[1], :y.shape[2], :y.shape[3]]
    np.testing.assert_allclose(y, full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls,nsp,fn", [
    (layers.AdaptiveAveragePooling1D, 1, F.adaptive_avg_pool1d),
    (layers.AdaptiveMaxPooling1D, 1, F.adaptive_max_pool1d),
    (layers.AdaptiveAveragePooling2D, 2, F.adaptive_avg_pool2d),
    (layers.AdaptiveMaxPooling2D, 2, F.adaptive_max_pool2d),
    (layers.AdaptiveAveragePooling3D, 3, F.adaptive_avg_pool3d),
    (layers.AdaptiveMaxPooling3D, 3, F.adaptive_max_pool3d)])
def test_adaptive_pools_match_torch(cls, nsp, fn):
    x = {1: X1, 2: X2, 3: X3}[nsp]
    size = (3, 4, 2)[:nsp]
    layer = cls(size)
    np.testing.assert_allclose(layer(x).numpy(), back(fn(t(x, nsp), size)), rtol=1e-5,
                               atol=1e-6)
    first = cls(size, data_format="channels_first")
    np.testing.assert_allclose(first(np.moveaxis(x, -1, 1)).numpy(),
                               np.moveaxis(layer(x).numpy(), -1, 1), rtol=1e-5, atol=1e-6)
    assert cls.from_config(layer.get_config()).output_size == size


def test_adaptive_max_pool_gradient_matches_torch():
    xt = t(X2, 2).requires_grad_(True)
    g = RNG.standard_normal((2, 3, 2, 4)).astype(np.float32)
    (F.adaptive_max_pool2d(xt, (2, 4)) * torch.from_numpy(g)).sum().backward()
    x = pynn.Variable(X2)
    with pynn.GradientTape() as tape:
        loss = pynn.ops.sum(layers.AdaptiveMaxPooling2D((2, 4))(x) * back(torch.from_numpy(g)))
    (dx,) = tape.gradient(loss, [x])
    np.testing.assert_allclose(np.asarray(dx), back(xt.grad), rtol=1e-6)


def test_conv3d_transpose_and_adaptive_pool_train_and_pass_the_gradient_check():
    pynn.utils.set_random_seed(0)
    model = pynn.Sequential([
        pynn.Input((2, 3, 2, 1)), layers.Conv3DTranspose(2, 2, strides=2, activation="tanh"),
        layers.AdaptiveAveragePooling3D((2, 2, 1)), layers.Flatten(), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    x = RNG.standard_normal((3, 2, 3, 2, 1)).astype(np.float32)
    y = RNG.standard_normal((3, 1)).astype(np.float32)
    grad_check(model, x, y)
    history = model.fit(x, y, epochs=20, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    with pytest.raises(ValueError, match="output_padding"):
        layers.Conv3DTranspose(2, 3, strides=2, output_padding=2)
