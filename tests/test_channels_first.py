"""data_format="channels_first" on the convolutions and the pools (issue 18): each equals the
channels-last layer on transposed data with the same weights (in a model, called on data, and in
training), matches PyTorch's NCHW ops, and passes the numerical gradient check."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import core_gradients, grad_check

import pynn
from pynn import layers

RNG = np.random.default_rng(0)
X2 = RNG.standard_normal((3, 4, 9, 11)).astype(np.float32)  # (batch, channels, height, width)
X1 = RNG.standard_normal((3, 4, 13)).astype(np.float32)     # (batch, channels, steps)

LAYERS_2D = {
    "conv2d": lambda f: layers.Conv2D(5, 3, padding="same", strides=2, data_format=f),
    "conv2d_transpose": lambda f: layers.Conv2DTranspose(3, 3, strides=2, data_format=f),
    "max_pool2d": lambda f: layers.MaxPooling2D(2, data_format=f),
    "avg_pool2d_same": lambda f: layers.AveragePooling2D(3, 2, "same", data_format=f),
    "global_avg2d": lambda f: layers.GlobalAveragePooling2D(data_format=f),
    "global_max2d_keepdims": lambda f: layers.GlobalMaxPooling2D(data_format=f, keepdims=True),
}
LAYERS_1D = {
    "conv1d": lambda f: layers.Conv1D(6, 3, dilation_rate=2, data_format=f),
    "conv1d_transpose": lambda f: layers.Conv1DTranspose(2, 4, strides=3, data_format=f),
    "max_pool1d": lambda f: layers.MaxPooling1D(3, data_format=f),
    "avg_pool1d": lambda f: layers.AveragePooling1D(2, data_format=f),
    "global_avg1d": lambda f: layers.GlobalAveragePooling1D(data_format=f),
    "global_max1d_keepdims": lambda f: layers.GlobalMaxPooling1D(data_format=f, keepdims=True),
}


def to_last(a):
    return np.moveaxis(a, 1, -1)


def to_first(a):
    return np.moveaxis(a, -1, 1) if a.ndim > 2 else a


@pytest.mark.parametrize("name,x", [(k, X2) for k in LAYERS_2D] + [(k, X1) for k in LAYERS_1D])
def test_channels_first_is_channels_last_on_transposed_data(name, x):
    make = {**LAYERS_2D, **LAYERS_1D}[name]
    first, last = make("channels_first"), make("channels_last")
    model = pynn.Sequential([pynn.Input(x.shape[1:]), first])
    pynn.Sequential([pynn.Input(to_last(x).shape[1:]), last])
    last.set_weights(first.get_weights())
    want = to_first(last(to_last(x)).numpy())
    assert model.output_shape == (None,) + want.shape[1:]
    assert first.compute_output_shape((None,) + x.shape[1:]) == (None,) + want.shape[1:]
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(first(x).numpy(), want, rtol=1e-5, atol=1e-6)
    assert first.get_config()["data_format"] == "channels_first"
    assert type(first).from_config(first.get_config()).data_format == "channels_first"


def test_conv2d_channels_first_matches_pytorch_nchw_forward_and_backward():
    pynn.utils.set_random_seed(1)
    conv = layers.Conv2D(5, (3, 2), padding="valid", data_format="channels_first")
    model = pynn.Sequential([pynn.Input(X2.shape[1:]), conv])
    model.compile(loss="mse")
    kernel, bias = conv.get_weights()  # (kh, kw, in, out): Keras's layout in both formats
    y = RNG.standard_normal((3,) + model.output_shape[1:]).astype(np.float32)
    xt = torch.tensor(X2, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(kernel.transpose(3, 2, 0, 1), dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(bias, dtype=torch.float64, requires_grad=True)
    out = F.conv2d(xt, wt, bt)
    loss = ((out - torch.tensor(y, dtype=torch.float64)) ** 2).mean()
    loss.backward()
    np.testing.assert_allclose(model.predict(X2, verbose=0), out.detach().numpy(), rtol=1e-4,
                               atol=1e-5)
    got_loss, dx, (dk, db) = core_gradients(model, X2, y)
    np.testing.assert_allclose(got_loss, loss.item(), rtol=1e-4)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(dk, wt.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-3, atol=1e-6)


def test_max_pool_channels_first_matches_pytorch():
    pool = layers.MaxPooling2D((2, 3), strides=(2, 2), data_format="channels_first")
    want = F.max_pool2d(torch.from_numpy(X2), (2, 3), (2, 2)).numpy()
    np.testing.assert_array_equal(pool(X2).numpy(), want)


def test_a_channels_first_cnn_passes_the_gradient_check_and_trains():
    pynn.utils.set_random_seed(2)
    model = pynn.Sequential([
        pynn.Input((2, 6, 6)), layers.Conv2D(3, 3, activation="tanh", data_format="channels_first"),
        layers.AveragePooling2D(2, data_format="channels_first"),
        layers.GlobalMaxPooling2D(data_format="channels_first"), layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    x = RNG.standard_normal((4, 2, 6, 6)).astype(np.float32)
    y = RNG.standard_normal((4, 2)).astype(np.float32)
    grad_check(model, x, y)
    history = model.fit(x, y, epochs=30, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_the_keras_io_time_series_transformer_head():
    """keras-io's timeseries_classification_transformer pools its channels-first features with
    GlobalAveragePooling1D(data_format="channels_first"): the mean over the last axis."""
    inputs = pynn.Input((50, 1))
    x = layers.Conv1D(filters=4, kernel_size=1, activation="relu")(inputs)
    x = layers.GlobalAveragePooling1D(data_format="channels_first")(x)
    model = pynn.Model(inputs, x)
    assert model.output_shape == (None, 50)
    data = RNG.standard_normal((2, 50, 1)).astype(np.float32)
    feats = model.layers[1](data).numpy()
    np.testing.assert_allclose(model.predict(data, verbose=0), feats.mean(-1), rtol=1e-5,
                               atol=1e-6)


def test_an_unknown_data_format_is_refused():
    with pytest.raises(ValueError, match="data_format must be"):
        layers.Conv2D(2, 3, data_format="nchw")
