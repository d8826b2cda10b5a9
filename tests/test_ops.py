"""Every op of the core: Dense and each activation, forward and backward.

Each op is checked twice: its analytic gradients against finite differences of the core's loss
(helpers.grad_check) and its outputs and gradients against the same model in PyTorch
(helpers.torch_parity). The activation functions on plain arrays (pynn.activations) are compared
with torch's.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import (
    TORCH_ACTIVATIONS,
    SpecLayer,
    assert_close,
    core_gradients,
    grad_check,
    make_model,
    torch_parity,
)

import pynn
from pynn import _core
from pynn.activations import ActivationSpec
from pynn.layers import Activation, Dense

ACTIVATIONS = ["linear", "relu", "sigmoid", "tanh", "softmax", "leaky_relu", "elu", "selu",
               "gelu", "swish", "softplus"]

# Inputs of a given rank: (batch, features) or (batch, T, features).
SHAPES = {"rank2": (5,), "rank3": (3, 5)}


def away_from_zero(shape, seed=0, low=0.2, high=2.0):
    """Random values of magnitude in [low, high) and random sign: no relu/leaky/elu kink within a
    finite-difference step."""
    rng = np.random.default_rng(seed)
    mag = rng.uniform(low, high, size=shape)
    return np.where(rng.random(shape) < 0.5, -mag, mag).astype(np.float32)


def targets(shape, seed=1):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# -- dense ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("rank", ["rank2", "rank3"])
def test_dense_gradients_match_finite_differences(use_bias, rank):
    m = make_model(SHAPES[rank], [Dense(4, use_bias=use_bias)])
    x = targets((6,) + SHAPES[rank], seed=2)
    grad_check(m, x, targets((6,) + SHAPES[rank][:-1] + (4,)))


@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("rank", ["rank2", "rank3"])
def test_dense_matches_torch_linear(use_bias, rank):
    m = make_model(SHAPES[rank], [Dense(4, use_bias=use_bias), Dense(3, use_bias=use_bias)])
    x = targets((6,) + SHAPES[rank], seed=2)
    torch_parity(m, x, targets((6,) + SHAPES[rank][:-1] + (3,)))


@pytest.mark.parametrize("batch", [1, 2, 3, 64])
def test_dense_matches_torch_for_row_and_matrix_paths(batch):
    # The core computes up to two rows as vector-matrix products and more with a GEMM.
    m = make_model((5,), [Dense(4, activation="tanh"), Dense(3)])
    torch_parity(m, targets((batch, 5), seed=2), targets((batch, 3)))


def test_dense_predict_one_row_at_a_time_equals_whole_batch():
    m = make_model((5,), [Dense(4, activation="tanh"), Dense(3)])
    x = targets((7, 5), seed=2)
    np.testing.assert_allclose(m.predict(x, batch_size=1, verbose=0),
                               m.predict(x, batch_size=7, verbose=0), rtol=1e-5, atol=1e-6)


def test_dense_without_bias_has_only_a_kernel_gradient():
    m = make_model((5,), [Dense(4, use_bias=False)])
    _, _, grads = core_gradients(m, targets((3, 5)), targets((3, 4)))
    assert [g.shape for g in grads] == [(5, 4)]


def test_dense_rank3_applies_the_same_kernel_at_every_step():
    m = make_model((3, 5), [Dense(4)])
    x = targets((2, 3, 5))
    out = m.predict(x, verbose=0)
    kernel, bias = m.get_weights()
    np.testing.assert_allclose(out, x @ kernel + bias, rtol=1e-5, atol=1e-5)


# -- activations inside a model -------------------------------------------------------------------
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activation_gradients_match_finite_differences(act):
    # The activation reads x directly, so its input stays away from the kinks at 0.
    m = make_model((6,), [Activation(act), Dense(3)])
    grad_check(m, away_from_zero((5, 6)), targets((5, 3)))


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_dense_activation_matches_torch(act):
    m = make_model((6,), [Dense(5, activation=act), Dense(3)])
    torch_parity(m, targets((4, 6), seed=3), targets((4, 3)))


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activation_output_layer_matches_torch(act):
    # The activation is the model's output, so the loss gradient enters it directly (mse: no
    # softmax/sigmoid fusion).
    m = make_model((6,), [Dense(4), Activation(act)])
    torch_parity(m, targets((4, 6), seed=4), targets((4, 4)))


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activation_above_the_parallel_threshold_matches_torch(act):
    # 17000 x 4 values: more than the core's threshold (65536) for its OpenMP loops.
    m = make_model((4,), [Activation(act), Dense(3)])
    torch_parity(m, targets((17000, 4), seed=11) * 2, targets((17000, 3)))


@pytest.mark.parametrize("act", ["softmax", "gelu", "sigmoid"])
def test_activation_on_rank3_input_matches_torch(act):
    # Softmax normalises over the last axis only, at every step.
    m = make_model((3, 5), [Activation(act), Dense(2)])
    torch_parity(m, targets((2, 3, 5), seed=5) * 2, targets((2, 3, 2)))


def test_softmax_rows_sum_to_one_on_rank3():
    m = make_model((3, 5), [Activation("softmax")])
    out = m.predict(targets((2, 3, 5)) * 5, verbose=0)
    np.testing.assert_allclose(out.sum(-1), np.ones((2, 3)), rtol=1e-6)


# -- activations with non-default attributes (reached through ActivationSpec) ---------------------
SPECS = {
    "gelu_tanh": ActivationSpec("gelu", approximate=True),
    "leaky_relu_0.05": ActivationSpec("leaky_relu", alpha=0.05),
    "elu_0.5": ActivationSpec("elu", alpha=0.5),
}


@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_activation_attribute_gradients_match_finite_differences(spec):
    m = make_model((6,), [SpecLayer(spec), Dense(3)])
    grad_check(m, away_from_zero((5, 6)), targets((5, 3)))


@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_activation_attribute_matches_torch(spec):
    m = make_model((6,), [Dense(5), SpecLayer(spec), Dense(3)])
    torch_parity(m, targets((4, 6), seed=6) * 2, targets((4, 3)))


def test_gelu_tanh_on_bare_core_matches_torch():
    core = _core.Model()
    core.alloc()
    node, shape = core.add_node("gelu", (core.add_input((6,), "float32"),), (), (1,), ())
    assert shape == (6,)
    core.set_output(node)
    core.compile("mean_squared_error", False, [])
    x, y = targets((4, 6), seed=7) * 2, targets((4, 6))
    loss, dx = core.gradients(x, y, True)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    out = F.gelu(xt, approximate="tanh")
    t_loss = ((out - torch.from_numpy(y).double()) ** 2).mean()
    t_loss.backward()
    assert_close("output", core.predict(x, 4), out.detach().numpy(), 1e-5, 1e-6)
    assert_close("loss", loss, t_loss.item(), 1e-5, 1e-6)
    assert_close("dloss/dx", dx, xt.grad.numpy(), 1e-4, 1e-6)


def test_gelu_tanh_on_bare_core_gradients_match_finite_differences():
    core = _core.Model()
    core.alloc()
    node, _ = core.add_node("gelu", (core.add_input((6,), "float32"),), (), (1,), ())
    core.set_output(node)
    core.compile("mean_squared_error", False, [])
    grad_check(core, targets((4, 6), seed=8) * 2, targets((4, 6)))


def test_gelu_tanh_differs_from_exact_gelu():
    # The attribute reaches the kernel: the two forms differ by ~1e-3 near |x| = 2.
    x = np.linspace(-3, 3, 13, dtype=np.float32)[None]
    exact, approx = pynn.activations.gelu(x), pynn.activations.gelu(x, approximate=True)
    assert np.abs(exact - approx).max() > 1e-4


# -- activations on arrays (pynn.activations) -----------------------------------------------------
def wide_values():
    """Values from tiny to large, both signs, as rows: saturation and overflow regions included."""
    rng = np.random.default_rng(9)
    x = np.concatenate([rng.normal(size=40) * 3, [-100, -30, -10, -1e-3, 0, 1e-3, 10, 30, 100]])
    return x.reshape(7, 7).astype(np.float32)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activation_function_matches_torch(act):
    x = wide_values()
    got = getattr(pynn.activations, act)(x)
    want = TORCH_ACTIVATIONS[act](torch.from_numpy(x).double()).numpy()
    assert got.dtype == np.float32 and got.shape == x.shape
    assert_close(act, got, want, 1e-5, 1e-6)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activation_function_above_the_parallel_threshold_matches_torch(act):
    x = targets((300, 300), seed=12) * 4
    want = TORCH_ACTIVATIONS[act](torch.from_numpy(x).double()).numpy()
    assert_close(act, getattr(pynn.activations, act)(x), want, 1e-5, 1e-6)


@pytest.mark.parametrize("name, kwargs, torch_fn", [
    ("leaky_relu", {"negative_slope": 0.1}, lambda z: F.leaky_relu(z, negative_slope=0.1)),
    ("elu", {"alpha": 0.5}, lambda z: F.elu(z, alpha=0.5)),
    ("gelu", {"approximate": True}, lambda z: F.gelu(z, approximate="tanh")),
], ids=["leaky_relu_slope", "elu_alpha", "gelu_tanh"])
def test_activation_function_arguments_match_torch(name, kwargs, torch_fn):
    x = wide_values()
    got = getattr(pynn.activations, name)(x, **kwargs)
    assert_close(name, got, torch_fn(torch.from_numpy(x).double()).numpy(), 1e-5, 1e-6)


def test_softmax_function_is_stable_for_huge_values():
    x = np.array([[1e4, 0.0, -1e4], [1e4, 1e4, 1e4], [-1e4, -1e4 + 1.0, -1e4]], dtype=np.float32)
    got = pynn.activations.softmax(x)
    assert_close("softmax", got, F.softmax(torch.from_numpy(x).double(), -1).numpy(), 1e-6, 1e-7)


def test_activation_function_keeps_rank3_shape_and_softmax_axis():
    x = targets((2, 3, 4)) * 3
    got = pynn.activations.softmax(x)
    assert got.shape == x.shape
    assert_close("softmax", got, F.softmax(torch.from_numpy(x).double(), -1).numpy(), 1e-5, 1e-7)


def test_silu_is_swish():
    x = wide_values()
    np.testing.assert_array_equal(pynn.activations.silu(x), pynn.activations.swish(x))
