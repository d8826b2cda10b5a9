"""Convolution, pooling, padding and reshaping layers: gradient checks against finite
differences and parity with PyTorch (NHWC <-> NCHW done in helpers.to_torch), across strides,
paddings, dilations, odd sizes and batch 1."""

import numpy as np
import pytest
from helpers import grad_check, make_model, torch_parity

import pynn
from pynn import layers


def data(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def distinct(shape, seed=0):
    """Values that are all different and at least 0.05 apart: no ties inside a max window, none
    that a finite-difference step can swap."""
    n = int(np.prod(shape))
    return (np.random.default_rng(seed).permutation(n) * 0.05 - n * 0.025).astype(
        np.float32).reshape(shape)


CONV2D = {
    "3x3_valid": dict(kernel_size=3),
    "3x3_same": dict(kernel_size=3, padding="same"),
    "1x1": dict(kernel_size=1),
    "2x3_stride2_same": dict(kernel_size=(2, 3), strides=2, padding="same"),
    "3x3_stride_2_1": dict(kernel_size=3, strides=(2, 1)),
    "3x3_dilation2": dict(kernel_size=3, dilation_rate=2),
    "3x2_dilation_same": dict(kernel_size=(3, 2), dilation_rate=(2, 1), padding="same"),
    "5x5_same_nobias": dict(kernel_size=5, padding="same", use_bias=False),
    "4x4_stride3_same": dict(kernel_size=4, strides=3, padding="same"),
}


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("cfg", CONV2D.values(), ids=CONV2D.keys())
def test_conv2d_matches_torch(cfg, batch):
    m = make_model((7, 6, 3), [layers.Conv2D(4, **cfg), layers.Flatten(), layers.Dense(2)])
    torch_parity(m, data((batch, 7, 6, 3)), data((batch, 2), seed=1))


@pytest.mark.parametrize("cfg", ["3x3_same", "2x3_stride2_same", "3x3_dilation2",
                                 "5x5_same_nobias"])
def test_conv2d_gradients_match_finite_differences(cfg):
    m = make_model((7, 6, 2), [layers.Conv2D(3, **CONV2D[cfg])])
    out = m.output_shape[1:]
    grad_check(m, data((2, 7, 6, 2)), data((2,) + out, seed=1))


def test_conv2d_with_activation_matches_torch():
    m = make_model((8, 8, 1), [layers.Conv2D(5, 3, activation="relu"),
                               layers.Conv2D(2, 3, activation="tanh", padding="same")])
    torch_parity(m, data((2, 8, 8, 1)), data((2, 6, 6, 2), seed=1))


CONV1D = {
    "k3_valid": dict(kernel_size=3),
    "k3_same": dict(kernel_size=3, padding="same"),
    "k4_causal_dilation2": dict(kernel_size=4, padding="causal", dilation_rate=2),
    "k2_stride2": dict(kernel_size=2, strides=2),
}


@pytest.mark.parametrize("cfg", CONV1D.values(), ids=CONV1D.keys())
def test_conv1d_matches_torch(cfg):
    m = make_model((9, 3), [layers.Conv1D(4, **cfg)])
    out = m.output_shape[1:]
    torch_parity(m, data((2, 9, 3)), data((2,) + out, seed=1))


def test_conv1d_gradients_match_finite_differences():
    m = make_model((9, 3), [layers.Conv1D(2, 3, padding="causal")])
    grad_check(m, data((2, 9, 3)), data((2, 9, 2), seed=1))


def test_conv1d_kernel_has_keras_shape_and_shares_memory():
    m = make_model((9, 3), [layers.Conv1D(4, 5)])
    kernel = m.layers[0].kernel
    assert kernel.shape == (5, 3, 4)
    kernel[...] = 0.0
    assert np.all(m.predict(data((1, 9, 3)), verbose=0) == 0.0)


POOLS = {
    "max_2": (layers.MaxPooling2D, dict()),
    "max_3_stride2": (layers.MaxPooling2D, dict(pool_size=3, strides=2)),
    "max_2x3_same": (layers.MaxPooling2D, dict(pool_size=(2, 3), strides=(1, 2), padding="same")),
    "avg_2": (layers.AveragePooling2D, dict()),
    "avg_3_stride1_same": (layers.AveragePooling2D, dict(pool_size=3, strides=1, padding="same")),
    "avg_2x3_same": (layers.AveragePooling2D, dict(pool_size=(2, 3), strides=2, padding="same")),
    "global_avg": (layers.GlobalAveragePooling2D, dict()),
    "global_max": (layers.GlobalMaxPooling2D, dict()),
    "global_avg_keepdims": (layers.GlobalAveragePooling2D, dict(keepdims=True)),
    "zero_pad": (layers.ZeroPadding2D, dict(padding=((1, 2), (0, 1)))),
}


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("cls, kw", POOLS.values(), ids=POOLS.keys())
def test_pooling_matches_torch(cls, kw, batch):
    m = make_model((7, 5, 3), [cls(**kw), layers.Flatten(), layers.Dense(2)])
    torch_parity(m, distinct((batch, 7, 5, 3)), data((batch, 2), seed=1))


@pytest.mark.parametrize("cls, kw", POOLS.values(), ids=POOLS.keys())
def test_pooling_gradients_match_finite_differences(cls, kw):
    m = make_model((7, 5, 2), [cls(**kw)])
    out = m.output_shape[1:]
    grad_check(m, distinct((2, 7, 5, 2)), data((2,) + out, seed=1), max_entries=40)


@pytest.mark.parametrize("cls", [layers.MaxPooling1D, layers.AveragePooling1D])
def test_pooling1d_matches_torch(cls):
    m = make_model((9, 3), [cls(pool_size=3, strides=2, padding="same")])
    out = m.output_shape[1:]
    torch_parity(m, distinct((2, 9, 3)), data((2,) + out, seed=1))


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("cls", [layers.GlobalAveragePooling1D, layers.GlobalMaxPooling1D])
def test_global_pooling1d_matches_torch_and_finite_differences(cls, keepdims):
    m = make_model((9, 3), [cls(keepdims=keepdims)])
    assert m.output_shape == ((None, 1, 3) if keepdims else (None, 3))
    out = m.output_shape[1:]
    torch_parity(m, distinct((2, 9, 3)), data((2,) + out, seed=1))
    grad_check(m, distinct((2, 9, 3)), data((2,) + out, seed=2), max_entries=40)


def test_relu_conv1d_into_global_max_pooling1d_matches_torch():
    # the relu moves after the pooling (max(relu(x)) = relu(max(x))): same values and gradients
    m = make_model((12, 4), [layers.Conv1D(5, 3, activation="relu"),
                             layers.GlobalMaxPooling1D(), layers.Dense(2)])
    torch_parity(m, data((3, 12, 4)), data((3, 2), seed=1))


def test_global_pooling1d_refuses_images():
    with pytest.raises(ValueError, match="rank 3"):
        make_model((4, 4, 2), [layers.GlobalAveragePooling1D()])


def test_reshape_and_flatten_match_torch_and_numpy():
    m = make_model((4, 6), [layers.Reshape((3, -1)), layers.Dense(3), layers.Flatten()])
    assert m.output_shape == (None, 9)
    torch_parity(m, data((2, 4, 6)), data((2, 9), seed=1))
    x = data((2, 4, 6))
    plain = make_model((4, 6), [layers.Reshape((8, 3))])
    np.testing.assert_array_equal(plain.predict(x, verbose=0), x.reshape(2, 8, 3))


def test_the_mnist_cnn_matches_torch():
    m = make_model((12, 12, 1), [
        layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(6, 3, activation="relu"), layers.MaxPooling2D(), layers.Flatten(),
        layers.Dense(8, activation="relu"), layers.Dense(3, activation="softmax")],
        loss="sparse_categorical_crossentropy")
    torch_parity(m, distinct((4, 12, 12, 1)), np.array([0, 2, 1, 2]))


def test_summary_of_the_keras_mnist_convnet(capsys):
    m = pynn.Sequential([
        pynn.Input(shape=(28, 28, 1)), layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)), layers.Flatten(), layers.Dropout(0.5),
        layers.Dense(10, activation="softmax")])
    m.summary()
    out = capsys.readouterr().out
    for shape, params in [("(None, 26, 26, 32)", "320"), ("(None, 13, 13, 32)", "0"),
                          ("(None, 11, 11, 64)", "18,496"), ("(None, 5, 5, 64)", "0"),
                          ("(None, 1600)", "0"), ("(None, 10)", "16,010")]:
        assert any(shape in line and line.rstrip("│ ").endswith(params)
                   for line in out.splitlines()), (shape, params, out)
    assert "Total params: 34,826" in out


BAD = {
    "conv_rank2_input": ((10,), lambda: layers.Conv2D(2, 3), "rank 4"),
    "conv_kernel_too_big": ((4, 4, 1), lambda: layers.Conv2D(2, 5), "larger than the input"),
    "conv_dilated_kernel_too_big": ((5, 5, 1), lambda: layers.Conv2D(2, 3, dilation_rate=3),
                                    "larger than the input"),
    "pool_too_big": ((3, 3, 1), lambda: layers.MaxPooling2D(4), "larger than the input"),
    "conv1d_rank4_input": ((4, 4, 1), lambda: layers.Conv1D(2, 3), "rank 3"),
    "reshape_wrong_count": ((4, 6), lambda: layers.Reshape((5, 5)), "cannot reshape"),
}


@pytest.mark.parametrize("shape, make, match", BAD.values(), ids=BAD.keys())
def test_bad_shapes_raise_value_error_naming_the_layer(shape, make, match):
    layer = make()
    with pytest.raises(ValueError, match=match) as e:
        pynn.Sequential([pynn.Input(shape=shape), layer])
    assert layer.name in str(e.value)


@pytest.mark.parametrize("make, match", [
    (lambda: layers.Conv2D(2, 3, strides=0), "strides"),
    (lambda: layers.Conv2D(2, 0), "kernel_size"),
    (lambda: layers.Conv2D(2, (3, -1)), "kernel_size"),
    (lambda: layers.Conv2D(0, 3), "filters"),
    (lambda: layers.Conv2D(2, 3, padding="full"), "padding"),
    (lambda: layers.Conv2D(2, 3, strides=2, dilation_rate=2), "cannot be combined"),
    (lambda: layers.Conv2D(2, 3, data_format="NCHW"), "data_format"),
    (lambda: layers.MaxPooling2D(0), "pool_size"),
    (lambda: layers.MaxPooling2D(2, strides=0), "strides"),
    (lambda: layers.ZeroPadding2D(-1), "padding"),
    (lambda: layers.Reshape((2, -1, -1)), "target_shape"),
])
def test_bad_arguments_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("pool", [layers.MaxPooling2D(2, padding="same"),
                                  layers.GlobalMaxPooling2D()])
def test_relu_moved_past_max_pooling_keeps_outputs_and_gradients(pool):
    """A relu feeding a max pooling runs after it in the core (fewer values); outputs and
    gradients stay those of relu-then-pool (torch computes it in the written order), including
    windows that are all negative. (No finite differences: a kernel step of 1e-2 can change a
    window's winner.)"""
    m = make_model((5, 5, 2), [layers.Conv2D(3, 2, activation="relu"), pool, layers.Flatten(),
                               layers.Dense(2)])
    torch_parity(m, distinct((3, 5, 5, 2)), data((3, 2), seed=1))


def test_relu_layer_before_max_pooling_is_moved_and_still_correct():
    m = make_model((6, 6, 2), [layers.Conv2D(3, 3), layers.Activation("relu"),
                               layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(2)])
    torch_parity(m, distinct((2, 6, 6, 2)), data((2, 2), seed=1))
