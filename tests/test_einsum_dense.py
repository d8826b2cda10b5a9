"""EinsumDense: weight and output shapes as Keras 3 gives them, values against NumPy's einsum,
Keras's fans for variance-scaling kernels, configs and saving, gradients against finite
differences and PyTorch, and Keras's errors for bad equations."""

import pickle
import re

import numpy as np
import pytest
import torch
from helpers import core_gradients, grad_check

import pynn
from pynn import layers
from pynn.layers.core import EinsumDense


def data(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def t64(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


# (equation, output_shape, bias_axes, per-sample input shape, kernel shape, bias shape, output
# shape); the weights' shapes are keras.layers.EinsumDense's for the same arguments, and so is
# the output shape, but where output_shape says None for an axis the input gives (marked *):
# Keras leaves that axis None, pynn takes the input's size
CASES = [
    ("ab,bc->ac", 64, None, (32,), (32, 64), None, (None, 64)),
    ("abc,cd->abd", (None, 6), "d", (4, 8), (8, 6), (6,), (None, 4, 6)),  # *
    ("...x,xy->...y", 6, "y", (4, 8), (8, 6), (6,), (None, 4, 6)),
    ("...x,xy->...y", 6, "y", (8,), (8, 6), (6,), (None, 6)),
    ("abc,cde->abde", (None, 2, 3), "de", (5, 8), (8, 2, 3), (2, 3), (None, 5, 2, 3)),  # *
    ("abc,cde->abde", (5, 2, 3), "e", (5, 8), (8, 2, 3), (3,), (None, 5, 2, 3)),
    ("abcd,cde->abe", (5, 4), "e", (5, 2, 3), (2, 3, 4), (4,), (None, 5, 4)),
    ("ab,bcd->acd", (2, 3), "cd", (8,), (8, 2, 3), (2, 3), (None, 2, 3)),
    ("abc,cdb->adb", (3, 5), "b", (5, 8), (8, 3, 5), (5,), (None, 3, 5)),
    ("abc,cdb->adb", (3, 5), "db", (5, 8), (8, 3, 5), (3, 5), (None, 3, 5)),
    ("ab...,bc->ac...", (4,), "c", (8, 3, 2), (8, 4), (4, 1, 1), (None, 4, 3, 2)),
    ("abc,bcd->ad", 3, "d", (5, 8), (5, 8, 3), (3,), (None, 3)),
    ("abc,bd->acd", (8, 4), "c", (5, 8), (5, 4), (8, 1), (None, 8, 4)),
    ("abcd,bde->abce", (2, 4, 7), "ce", (2, 4, 3), (2, 3, 7), (4, 7), (None, 2, 4, 7)),
    ("abc,cd->ad", 4, "d", (5, 8), (8, 4), (4,), (None, 4)),
]
IDS = [f"{c[0]}:{c[2]}:{c[3]}" for c in CASES]


def reference(layer, x, activation=np.tanh):
    out = np.einsum(layer.equation, np.asarray(x, np.float64),
                    np.asarray(layer.kernel, np.float64))
    if layer.bias is not None:
        out = out + np.asarray(layer.bias, np.float64)
    return activation(out)


@pytest.mark.parametrize("eq, out_shape, bias_axes, ins, kernel, bias, want", CASES, ids=IDS)
def test_weights_and_output_have_keras_shapes(eq, out_shape, bias_axes, ins, kernel, bias, want):
    layer = EinsumDense(eq, out_shape, bias_axes=bias_axes)
    out = layer(pynn.Input(shape=ins))
    assert out.shape == want
    assert layer.compute_output_shape((None,) + ins) == want
    assert layer.kernel.shape == kernel
    assert (layer.bias is None) if bias is None else layer.bias.shape == bias


@pytest.mark.parametrize("eq, out_shape, bias_axes, ins, kernel, bias, want", CASES, ids=IDS)
def test_values_match_numpy_einsum_in_a_model_and_on_data(eq, out_shape, bias_axes, ins, kernel,
                                                          bias, want):
    layer = EinsumDense(eq, out_shape, bias_axes=bias_axes, activation="tanh",
                        bias_initializer="random_normal")
    x = pynn.Input(shape=ins)
    m = pynn.Model(x, layer(x))
    xs = data((3,) + ins, 1)
    np.testing.assert_allclose(m.predict(xs, verbose=0), reference(layer, xs), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(np.asarray(layer(xs)), reference(layer, xs), rtol=1e-5, atol=1e-5)


def test_a_sequence_of_data_given_length_follows_the_data():
    layer = EinsumDense("abc,cd->abd", (None, 4), bias_axes="d")
    x = pynn.Input(shape=(None, 6))
    out = layer(x)
    assert out.shape == (None, None, 4)
    m = pynn.Model(x, out)
    for length in (3, 7):
        xs = data((2, length, 6), length)
        np.testing.assert_allclose(m.predict(xs, verbose=0),
                                   reference(layer, xs, activation=lambda v: v), rtol=1e-5,
                                   atol=1e-5)


def test_einsum_dense_as_dense_draws_and_computes_as_a_dense_layer():
    xs = data((4, 7), 2)
    pynn.utils.set_random_seed(3)
    einsum = np.asarray(EinsumDense("ab,bc->ac", 5, bias_axes="c", activation="relu")(xs))
    pynn.utils.set_random_seed(3)
    dense = np.asarray(layers.Dense(5, activation="relu")(xs))
    np.testing.assert_allclose(einsum, dense, rtol=1e-6)


def test_variance_scaling_counts_fans_over_input_and_output_letters_as_keras():
    """Keras 3's fans for kernel (10, 20, 30) of 'abc,cde->abde': fan_in 10, fan_out 600 (not a
    convolution's 200 and 300)."""
    pynn.utils.set_random_seed(0)
    layer = EinsumDense("abc,cde->abde", (None, 20, 30))
    layer.build((None, 5, 10))
    limit = np.sqrt(6.0 / (10 + 600))
    k = np.asarray(layer.kernel)
    assert np.abs(k).max() <= limit and np.abs(k).max() > 0.99 * limit
    pynn.utils.set_random_seed(0)
    normal = EinsumDense("abc,cde->abde", (None, 20, 30),
                         kernel_initializer=pynn.initializers.HeNormal(seed=1))
    normal.build((None, 5, 10))
    assert np.std(np.asarray(normal.kernel)) == pytest.approx(np.sqrt(2.0 / 10), rel=0.05)


def test_config_has_keras_keys_and_round_trips():
    layer = EinsumDense("abc,cd->abd", (None, 64), bias_axes="d", activation="relu",
                        kernel_regularizer=pynn.regularizers.L2(0.01))
    assert re.fullmatch(r"einsum_dense(_\d+)?", layer.name)
    config = layer.get_config()
    assert set(config) == {"name", "trainable", "output_shape", "equation", "activation",
                           "bias_axes", "kernel_initializer", "bias_initializer",
                           "kernel_regularizer", "bias_regularizer", "activity_regularizer",
                           "kernel_constraint", "bias_constraint", "quantization_config"}
    assert config["output_shape"] == (None, 64) and config["equation"] == "abc,cd->abd"
    assert config["activation"] == "relu" and config["bias_axes"] == "d"
    assert EinsumDense.from_config(config).get_config() == config
    assert EinsumDense("ab,bc->ac", 8).get_config()["output_shape"] == (8,)


def test_a_model_saves_and_loads(tmp_path):
    pynn.utils.set_random_seed(4)
    m = pynn.Sequential([pynn.Input(shape=(6,)),
                         EinsumDense("ab,bc->ac", 4, bias_axes="c", activation="relu"),
                         EinsumDense("ab,bcd->acd", (2, 3), bias_axes="d")])
    m.compile(optimizer="adam", loss="mse")
    xs = data((8, 6), 1)
    m.fit(xs, data((8, 2, 3), 2), epochs=2, verbose=0)
    m.save(tmp_path / "m.keras")
    loaded = pynn.saving.load_model(tmp_path / "m.keras",
                                    custom_objects={"EinsumDense": EinsumDense})
    np.testing.assert_array_equal(loaded.predict(xs, verbose=0), m.predict(xs, verbose=0))
    assert [layer.get_config() for layer in loaded.layers] == \
        [layer.get_config() for layer in m.layers]


@pytest.mark.skipif(not hasattr(layers, "EinsumDense"),
                    reason="pynn/layers/__init__.py does not import EinsumDense yet")
def test_einsum_dense_is_a_pynn_layer_that_loads_by_name_and_pickles(tmp_path):
    assert layers.EinsumDense is EinsumDense
    copied = pickle.loads(pickle.dumps(EinsumDense("ab,bc->ac", 3, bias_axes="c")))
    assert copied.get_config()["bias_axes"] == "c"
    x = pynn.Input(shape=(5,))
    m = pynn.Model(x, EinsumDense("ab,bc->ac", 3)(x))
    m.save(tmp_path / "m.keras")
    xs = data((2, 5))
    loaded = pynn.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(xs, verbose=0), m.predict(xs, verbose=0))


# -- gradients -------------------------------------------------------------------------------------
@pytest.mark.parametrize("eq, out_shape, bias_axes, ins", [
    ("abc,cde->abde", (3, 2, 2), "de", (3, 4)),
    ("abc,cdb->adb", (2, 3), "db", (3, 4)),
    ("abcd,cde->abe", (2, 3), "e", (2, 2, 3)),
    ("ab...,bc->ac...", (3,), "c", (4, 2)),
    ("abc,cd->ad", 3, "d", (2, 4)),
], ids=lambda v: str(v))
def test_gradients_match_finite_differences(eq, out_shape, bias_axes, ins):
    pynn.utils.set_random_seed(5)
    x = pynn.Input(shape=ins)
    m = pynn.Model(x, EinsumDense(eq, out_shape, bias_axes=bias_axes, activation="tanh",
                                  bias_initializer="random_normal")(x))
    m.compile(optimizer="sgd", loss="mse")
    xs = data((2,) + ins, 1)
    grad_check(m, xs, data(m.predict(xs, verbose=0).shape, 2))


def test_outputs_and_gradients_match_torch_einsum():
    pynn.utils.set_random_seed(6)
    layer = EinsumDense("abc,cde->abde", (5, 2, 3), bias_axes="de", activation="tanh",
                        bias_initializer="random_normal")
    x = pynn.Input(shape=(5, 8))
    m = pynn.Model(x, layer(x))
    m.compile(optimizer="sgd", loss="mse")
    xs, ys = data((4, 5, 8), 1), data((4, 5, 2, 3), 2)
    xt, k, b = t64(xs, True), t64(layer.kernel, True), t64(layer.bias, True)
    out = torch.tanh(torch.einsum("abc,cde->abde", xt, k) + b)
    loss = ((out - t64(ys)) ** 2).mean()
    loss.backward()
    np.testing.assert_allclose(m.predict(xs, verbose=0), out.detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    pl, dx, (dk, db) = core_gradients(m, xs, ys)
    assert pl == pytest.approx(loss.item(), rel=1e-5)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(dk, k.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(db, b.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_gradients_on_data_reach_the_weights_through_the_tape():
    layer = EinsumDense("abc,cdb->adb", (3, 5), bias_axes="db")
    xs = data((2, 5, 8), 1)
    with pynn.GradientTape() as tape:
        loss = pynn.ops.sum(pynn.ops.square(layer(xs)))
    dk, db = tape.gradient(loss, layer.trainable_weights)
    k, b = t64(layer.kernel, True), t64(layer.bias, True)
    (torch.einsum("abc,cdb->adb", t64(xs), k) + b).square().sum().backward()
    np.testing.assert_allclose(np.asarray(dk), k.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(db), b.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_a_model_fits_and_reduces_the_loss():
    pynn.utils.set_random_seed(7)
    x = pynn.Input(shape=(4, 6))
    h = EinsumDense("abc,cde->abde", (None, 2, 4), bias_axes="de", activation="tanh")(x)
    out = EinsumDense("abcd,cd->ab", (4,), bias_axes="b")(h)
    m = pynn.Model(x, out)
    m.compile(optimizer=pynn.optimizers.Adam(0.02), loss="mse")
    xs = data((64, 4, 6), 1)
    ys = xs.sum(-1)
    history = m.fit(xs, ys, epochs=15, batch_size=16, verbose=0).history["loss"]
    assert history[-1] < 0.5 * history[0]


# -- errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, exc, match", [
    ({"equation": "abc", "output_shape": 4}, ValueError, "Invalid einsum equation"),
    ({"equation": "ab,bc", "output_shape": 4}, ValueError, "Invalid einsum equation"),
    ({"equation": "aab,bc->ac", "output_shape": 4}, ValueError, "repeats"),
    ({"equation": 3, "output_shape": 4}, TypeError, "equation"),
    ({"equation": "ab,bc->ac", "output_shape": "a"}, TypeError, "output_shape"),
    ({"equation": "ab,bc->ac", "output_shape": None}, TypeError, "output_shape"),
    ({"equation": "ab,bc->ac", "output_shape": 4, "bias_axes": 3}, TypeError, "bias_axes"),
    ({"equation": "ab,bc->ac", "output_shape": 4, "lora_rank": 2}, ValueError, "lora_rank"),
], ids=lambda v: str(v) if isinstance(v, dict) else None)
def test_bad_arguments_are_refused_when_made(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        EinsumDense(**kwargs)


@pytest.mark.parametrize("eq, out_shape, bias_axes, ins, match", [
    ("ab,bc->ac", 4, "x", (3,), "Bias dimension 'x' was requested"),
    ("ab,bc->ad", 4, None, (3,), "Dimension 'd' was specified in the output"),
    ("ab,bcx->ac", 4, None, (3,), "Weight dimension 'x' did not have a match"),
    ("abc,cd->abd", (7, 4), None, (5, 3), "do not match at shared dimension 'b'"),
    ("ab,bc->ac", (8, 8), None, (3,), "output_shape .* has 2 axes"),
    ("ab,bc->ac", 4, None, (3, 5), "does not fit an input of shape"),
    ("ab,bc->ca", 4, None, (3,), "batch"),
    ("abc,cd->abd", (None, 4), None, (5, None), "needs a known size"),
], ids=lambda v: v if isinstance(v, str) and "," in v else None)
def test_bad_shapes_raise_keras_errors_when_called(eq, out_shape, bias_axes, ins, match):
    with pytest.raises(ValueError, match=match):
        EinsumDense(eq, out_shape, bias_axes=bias_axes)(pynn.Input(shape=ins))


def test_a_call_on_data_of_another_shape_is_refused():
    layer = EinsumDense("ab,bc->ac", 4)
    layer(data((2, 3)))
    with pytest.raises(ValueError, match=r"needs a kernel of shape \(5, 4\)"):
        layer(data((2, 5)))
