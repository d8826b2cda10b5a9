"""GroupNormalization, UnitNormalization, RMSNormalization, PReLU, the noise layers
(GaussianNoise, GaussianDropout, AlphaDropout), SpatialDropout1D/3D and ActivityRegularization:
values against NumPy (Keras 3's definitions) and PyTorch, gradients, noise only in training with
the right statistics, Keras's names, weights, configs and argument errors."""

import json
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import core_gradients, grad_check, make_model

import pynn
from pynn import layers, saving


def data(shape, seed=0, scale=1.0, shift=0.0):
    return (np.random.default_rng(seed).normal(size=shape) * scale + shift).astype(np.float32)


def away_from_zero(shape, seed=0):
    """Values at least 0.05 from 0, where PReLU has its kink."""
    x = data(shape, seed=seed)
    return np.where(np.abs(x) < 0.05, 0.05 + np.abs(x), x).astype(np.float32)


# -- Keras 3's definitions in NumPy (float64) -----------------------------------------------------
def np_group_norm(x, groups, axis=-1, epsilon=1e-3, gamma=None, beta=None):
    """Each sample's group of channels normalised over the group and every non-batch axis."""
    x = np.moveaxis(np.asarray(x, np.float64), axis, -1)
    c = x.shape[-1]
    g = x.reshape(x.shape[:-1] + (groups, c // groups))
    axes = tuple(range(1, g.ndim - 2)) + (g.ndim - 1,)
    y = (g - g.mean(axes, keepdims=True)) / np.sqrt(g.var(axes, keepdims=True) + epsilon)
    y = y.reshape(x.shape)
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return np.moveaxis(y, -1, axis)


def np_unit_norm(x, axis):
    x = np.asarray(x, np.float64)
    axis = tuple(axis) if isinstance(axis, list) else axis
    return x * np.minimum(1.0 / np.sqrt((x * x).sum(axis, keepdims=True)), 1e12)


def np_rms_norm(x, scale, axes, epsilon=1e-6):
    x = np.asarray(x, np.float64)
    ms = (x * x).mean(tuple(axes), keepdims=True)
    shape = [x.shape[i] if i in axes else 1 for i in range(x.ndim)]
    return x / np.sqrt(ms + epsilon) * np.reshape(scale, shape)


def np_prelu(x, alpha):
    return np.maximum(x, 0) - alpha * np.maximum(-x, 0)


# -- the normalizations and PReLU: values ---------------------------------------------------------
@pytest.mark.parametrize("shape, groups, axis", [
    ((8,), 4, -1), ((5, 8), 4, -1), ((5, 8), 1, -1), ((5, 8), 8, -1), ((3, 4, 6), 3, -1),
    ((6, 5), 3, 1), ((4, 6, 3), 2, 2), ((4, 6, 3), 3, -2),
], ids=["dense", "seq", "one_group", "per_channel", "image", "axis1", "axis2", "axis-2"])
def test_group_normalization_matches_keras_definition(shape, groups, axis):
    layer = layers.GroupNormalization(groups=groups, axis=axis)
    x = data((3,) + shape, scale=2.0, shift=0.5)
    layer.build((None,) + shape)
    c = shape[axis if axis < 0 else axis - 1]
    gamma, beta = data((c,), seed=1, shift=1.0), data((c,), seed=2)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    want = np_group_norm(x, groups, axis, 1e-3, gamma, beta)
    np.testing.assert_allclose(np.asarray(layer(x)), want, rtol=1e-4, atol=1e-5)
    model = pynn.Sequential([pynn.Input(shape), layer])
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("center, scale", [(False, True), (True, False), (False, False)])
def test_group_normalization_without_gamma_or_beta(center, scale):
    layer = layers.GroupNormalization(groups=2, center=center, scale=scale, epsilon=0.01)
    x = data((4, 3, 6), shift=1.0)
    assert np.asarray(layer(x)).shape == x.shape
    assert [w.name for w in layer.weights] == ["gamma"] * scale + ["beta"] * center
    np.testing.assert_allclose(np.asarray(layer(x)), np_group_norm(x, 2, epsilon=0.01),
                               rtol=1e-4, atol=1e-5)


def test_group_normalization_minus_one_is_instance_normalization():
    layer = layers.GroupNormalization(groups=-1)
    x = data((2, 7, 5))
    y = np.asarray(layer(x))
    assert layer.groups == 5 and layer.get_config()["groups"] == 5  # as Keras keeps it
    want = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-3)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("axis", [-1, 1, [1, 2]], ids=["last", "axis1", "two_axes"])
def test_unit_normalization_matches_keras_definition(axis):
    x = data((3, 4, 5))
    want = np_unit_norm(x, axis)
    np.testing.assert_allclose(np.asarray(layers.UnitNormalization(axis=axis)(x)), want,
                               rtol=1e-5, atol=1e-6)
    model = pynn.Sequential([pynn.Input((4, 5)), layers.UnitNormalization(axis=axis)])
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)


def test_unit_normalization_rows_have_norm_one_and_zero_rows_stay_zero():
    x = np.array([[3.0, 4.0], [0.0, 0.0]], np.float32)
    y = np.asarray(layers.UnitNormalization()(x))
    np.testing.assert_allclose(y, [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)


@pytest.mark.parametrize("axis, axes", [(-1, [2]), (1, [1]), ([1, 2], [1, 2])],
                         ids=["last", "axis1", "two_axes"])
def test_rms_normalization_matches_keras_definition(axis, axes):
    layer = layers.RMSNormalization(axis=axis)
    x = data((3, 4, 5), shift=0.5)
    layer.build((None, 4, 5))
    scale = data(layer.scale.shape, seed=1, shift=1.0)
    layer.scale.assign(scale)
    want = np_rms_norm(x, scale, axes)
    np.testing.assert_allclose(np.asarray(layer(x)), want, rtol=1e-4, atol=1e-5)
    model = pynn.Sequential([pynn.Input((4, 5)), layer])
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-4, atol=1e-5)


def test_rms_normalization_is_not_centred_and_keeps_keras_axis_form():
    layer = layers.RMSNormalization(epsilon=0.0)
    y = np.asarray(layer(np.array([[1.0, 3.0]], np.float32)))
    np.testing.assert_allclose(y, [[1 / math.sqrt(5), 3 / math.sqrt(5)]], rtol=1e-6)
    assert layer.get_config()["axis"] == [-1]  # an int becomes a list when built, as in Keras
    assert layers.RMSNormalization().get_config()["axis"] == -1


@pytest.mark.parametrize("shape, shared_axes", [((6,), None), ((4, 3), None), ((4, 3), [1]),
                                                ((4, 5, 3), [1, 2]), ((4, 5, 3), 2)],
                         ids=["dense", "seq", "shared_steps", "per_channel", "int_axis"])
def test_prelu_matches_keras_definition(shape, shared_axes):
    layer = layers.PReLU(shared_axes=shared_axes)
    x = data((3,) + shape)
    layer.build((None,) + shape)
    alpha = data(layer.alpha.shape, seed=1)
    layer.alpha.assign(alpha)
    np.testing.assert_allclose(np.asarray(layer(x)), np_prelu(x, alpha), rtol=1e-6, atol=1e-7)
    model = pynn.Sequential([pynn.Input(shape), layer])
    np.testing.assert_allclose(model.predict(x, verbose=0), np_prelu(x, alpha), rtol=1e-6,
                               atol=1e-7)


def test_prelu_starts_as_relu():
    x = np.array([[-2.0, 3.0]], np.float32)
    np.testing.assert_allclose(np.asarray(layers.PReLU()(x)), [[0.0, 3.0]])


# -- against PyTorch: output, loss, input and weight gradients ------------------------------------
def torch_matches(layer, x, torch_fn, seed=5, rtol=1e-4, atol=1e-5):
    """A model of `layer` alone (mse against fixed targets), its weights randomised, against
    `torch_fn(x, *weights)` in float64: prediction, loss and every gradient."""
    m = make_model(x.shape[1:], [layer])
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        w.assign(rng.uniform(0.5, 1.5, w.shape).astype(np.float32) * rng.choice([-1, 1], w.shape))
    y = data(x.shape, seed=seed + 1)
    loss, dx, grads = core_gradients(m, x, y)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    ws = [torch.tensor(np.array(w, np.float64), requires_grad=True) for w in layer.weights]
    out = torch_fn(xt, *ws)
    t_loss = ((out - torch.tensor(y, dtype=torch.float64)) ** 2).mean()
    t_loss.backward()
    np.testing.assert_allclose(m.predict(x, verbose=0), out.detach().numpy(), rtol=rtol,
                               atol=atol)
    assert loss == pytest.approx(t_loss.item(), rel=rtol)
    scale = np.abs(xt.grad.numpy()).max()
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=rtol, atol=atol * scale)
    assert len(grads) == len(ws)
    for g, w in zip(grads, ws):
        np.testing.assert_allclose(g, w.grad.numpy(), rtol=rtol,
                                   atol=atol * np.abs(w.grad.numpy()).max())


@pytest.mark.parametrize("shape, groups", [((6, 8), 4), ((3, 4, 6), 2)], ids=["seq", "image"])
def test_group_normalization_matches_torch(shape, groups):
    def fn(x, gamma, beta):  # torch's group norm is channels-first
        return F.group_norm(x.movedim(-1, 1), groups, gamma, beta, eps=1e-3).movedim(1, -1)
    torch_matches(layers.GroupNormalization(groups=groups), data((3,) + shape, scale=2.0), fn)


def test_unit_normalization_matches_torch():
    torch_matches(layers.UnitNormalization(), data((4, 3, 6)),
                  lambda x: F.normalize(x, dim=-1, eps=1e-12))


def test_rms_normalization_matches_torch():
    torch_matches(layers.RMSNormalization(), data((4, 3, 6), shift=0.3),
                  lambda x, scale: F.rms_norm(x, (6,), scale, eps=1e-6))
    torch_matches(layers.RMSNormalization(axis=[1, 2]), data((4, 3, 6), shift=0.3),
                  lambda x, scale: F.rms_norm(x, (3, 6), scale, eps=1e-6))


def test_prelu_matches_torch():
    # one alpha per channel: torch's prelu (channels-first)
    torch_matches(layers.PReLU(shared_axes=[1, 2]), away_from_zero((3, 4, 5, 6)),
                  lambda x, alpha: F.prelu(x.movedim(-1, 1), alpha.reshape(-1)).movedim(1, -1))
    # one alpha per value
    torch_matches(layers.PReLU(), away_from_zero((3, 4, 6)),
                  lambda x, alpha: torch.where(x > 0, x, alpha * x))


def test_weight_gradients_on_the_tape_match_torch():
    """Called on data under a GradientTape (a custom training loop), the weights get the
    gradients torch computes: GroupNormalization along axis 1 (its weights reshaped in call)
    and PReLU."""
    x = data((3, 6, 5))
    group, prelu = layers.GroupNormalization(groups=3, axis=1), layers.PReLU()
    prelu(group(x))
    for w, seed in zip(group.weights + prelu.weights, (1, 2, 3)):
        w.assign(data(w.shape, seed=seed, shift=0.5))
    with pynn.GradientTape() as tape:
        loss = pynn.ops.sum(pynn.ops.square(prelu(group(x))))
    grads = tape.gradient(loss, group.weights + prelu.weights)
    ws = [torch.tensor(np.array(w, np.float64), requires_grad=True)
          for w in group.weights + prelu.weights]
    h = F.group_norm(torch.tensor(x, dtype=torch.float64), 3, ws[0], ws[1], eps=1e-3)
    (torch.where(h > 0, h, ws[2] * h) ** 2).sum().backward()
    for g, w in zip(grads, ws):
        np.testing.assert_allclose(np.asarray(g), w.grad.numpy(), rtol=1e-4, atol=1e-4)


# -- gradients against finite differences ---------------------------------------------------------
@pytest.mark.parametrize("make, shape", [
    (lambda: layers.GroupNormalization(groups=2), (3, 4)),
    (lambda: layers.GroupNormalization(groups=3, axis=1), (6, 2)),
    (lambda: layers.UnitNormalization(), (3, 4)),
    (lambda: layers.RMSNormalization(axis=[1, 2]), (3, 4)),
    (lambda: layers.PReLU(alpha_initializer=pynn.initializers.Constant(0.3)), (3, 4)),
    (lambda: layers.PReLU(shared_axes=1, alpha_initializer="ones"), (3, 4)),
], ids=["group", "group_axis1", "unit", "rms", "prelu", "prelu_shared"])
def test_gradients_match_finite_differences(make, shape):
    m = make_model(shape, [make(), layers.Dense(3)])
    grad_check(m, away_from_zero((2,) + shape, seed=2), data((2, shape[0], 3), seed=3))


NOISE = {
    "gaussian_noise": lambda: layers.GaussianNoise(0.3),
    "gaussian_dropout": lambda: layers.GaussianDropout(0.3),
    "alpha_dropout": lambda: layers.AlphaDropout(0.3),
    "spatial_dropout1d": lambda: layers.SpatialDropout1D(0.3),
}


# -- noise and dropout: only in training ----------------------------------------------------------
ALL_NOISE = {**NOISE,
             "alpha_dropout_shared": lambda: layers.AlphaDropout(0.3, noise_shape=(None, 1, 4)),
             "spatial_dropout3d": lambda: layers.SpatialDropout3D(0.3)}


@pytest.mark.parametrize("name", ALL_NOISE)
def test_noise_layers_are_the_identity_in_predict_evaluate_and_plain_calls(name):
    shape = (2, 3, 5, 4) if name == "spatial_dropout3d" else (5, 4)
    x = data((6,) + shape)
    m = make_model(shape, [ALL_NOISE[name]()])
    np.testing.assert_array_equal(m.predict(x, verbose=0), x)
    np.testing.assert_array_equal(np.asarray(m(x)), x)
    assert m.evaluate(x, np.zeros_like(x), verbose=0) == pytest.approx(float(np.mean(x * x)),
                                                                       rel=1e-5)
    np.testing.assert_array_equal(np.asarray(ALL_NOISE[name]()(x)), x)
    np.testing.assert_array_equal(np.asarray(ALL_NOISE[name]()(x, training=False)), x)


def training_outputs(make, x):
    """The layer's training output on x: in a model's graph (a call with training=True) and
    called on data."""
    graph = np.asarray(make_model(x.shape[1:], [make()])(x, training=True))
    return graph, np.asarray(make()(x, training=True))


def train_step_gradient(m, x):
    """(loss, dloss/dx) of one training forward with targets 0: loss = mean(y^2)."""
    loss, dx = m._core.gradients(x, np.zeros_like(x), True)
    return loss, np.asarray(dx)


@pytest.mark.parametrize("stddev", [0.1, 0.5])
def test_gaussian_noise_adds_noise_of_stddev_in_training(stddev):
    x = data((20, 10_000), seed=3)
    for y in training_outputs(lambda: layers.GaussianNoise(stddev), x):
        noise = y - x
        assert abs(noise.mean()) < 0.01 * stddev + 1e-3
        assert noise.std() == pytest.approx(stddev, rel=0.01)
    # the gradient of a training step: dy/dx = 1, so dloss/dx = 2 y / N
    m = make_model((10_000,), [layers.GaussianNoise(stddev)])
    loss, dx = train_step_gradient(m, x)
    y = dx * x.size / 2
    assert loss == pytest.approx(float(np.mean(y.astype(np.float64) ** 2)), rel=1e-4)
    assert (y - x).std() == pytest.approx(stddev, rel=0.02)


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_gaussian_dropout_multiplies_by_noise_of_mean_one_in_training(rate):
    x = np.ones((20, 10_000), np.float32)
    stddev = math.sqrt(rate / (1 - rate))
    for y in training_outputs(lambda: layers.GaussianDropout(rate), x):
        assert y.mean() == pytest.approx(1.0, abs=0.01)
        assert y.std() == pytest.approx(stddev, rel=0.01)
    # dloss/dx = 2 y m / N = 2 m^2 / N for x = 1
    m = make_model((10_000,), [layers.GaussianDropout(rate)])
    loss, dx = train_step_gradient(m, x)
    m2 = dx * x.size / 2
    assert m2.mean() == pytest.approx(1 + stddev ** 2, rel=0.02)
    assert loss == pytest.approx(float(m2.mean()), rel=1e-4)


ALPHA_P = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946


def alpha_affine(rate):
    a = ((1 - rate) * (1 + rate * ALPHA_P ** 2)) ** -0.5
    return a, -a * ALPHA_P * rate


@pytest.mark.parametrize("rate", [0.1, 0.4])
def test_alpha_dropout_keeps_mean_and_variance_in_training(rate):
    x = data((20, 10_000), seed=4)
    a, b = alpha_affine(rate)
    for y in training_outputs(lambda: layers.AlphaDropout(rate), x):
        dropped = np.isclose(y, a * ALPHA_P + b, rtol=0, atol=1e-5)
        assert dropped.mean() == pytest.approx(rate, abs=0.01)
        np.testing.assert_allclose(y[~dropped], a * x[~dropped] + b, rtol=1e-5, atol=1e-5)
        assert abs(y.mean()) < 0.02
        assert y.var() == pytest.approx(1.0, abs=0.02)
    # dy/dx = a where kept, 0 where dropped
    m = make_model((10_000,), [layers.AlphaDropout(rate)])
    _, dx = train_step_gradient(m, x)
    y = np.where(dx != 0, a * x + b, a * ALPHA_P + b)
    np.testing.assert_allclose(dx[dx != 0], 2 * y[dx != 0] * a / x.size, rtol=1e-4)
    assert (dx == 0).mean() == pytest.approx(rate, abs=0.01)


def test_alpha_dropout_values_are_torchs():
    """On ones, alpha dropout gives two values (kept a + b, dropped a alpha' + b): torch's
    F.alpha_dropout gives the same two, in the same proportions."""
    x = np.ones((4, 25_000), np.float32)
    torch.manual_seed(0)
    want = F.alpha_dropout(torch.tensor(x, dtype=torch.float64), 0.3, True).numpy()
    kept, dropped = want.max(), want.min()
    for y in training_outputs(lambda: layers.AlphaDropout(0.3), x):
        np.testing.assert_allclose(np.unique(y), [dropped, kept], rtol=1e-5)
        assert (y == y.min()).mean() == pytest.approx((want == dropped).mean(), abs=0.01)


def test_alpha_dropout_noise_shape_shares_the_mask():
    x = np.ones((64, 5, 16), np.float32)
    for y in training_outputs(lambda: layers.AlphaDropout(0.5, noise_shape=(None, 1, 16)), x):
        assert np.all(y == y[:, :1, :])  # the same mask over the steps
        assert 0.35 < (y < 0).mean() < 0.65  # dropped: a alpha' + b < 0
    one = layers.AlphaDropout(0.5, noise_shape=(1, 1, 16))
    graph = np.asarray(make_model((5, 16), [one])(x, training=True))
    assert np.all(graph == graph[:1, :1, :])  # one mask for the whole batch


@pytest.mark.parametrize("make, shape, spatial_axes", [
    (lambda: layers.SpatialDropout1D(0.4), (6, 32), (1,)),
    (lambda: layers.SpatialDropout3D(0.4), (3, 4, 2, 32), (1, 2, 3)),
], ids=["1d", "3d"])
def test_spatial_dropout_drops_whole_channels_in_training(make, shape, spatial_axes):
    x = np.ones((16,) + shape, np.float32)
    for y in training_outputs(make, x):
        first = y[(slice(None),) + (slice(0, 1),) * len(spatial_axes)]
        assert np.all(y == first)  # the same over every spatial axis
        assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.6)}
        assert (first == 0).mean() == pytest.approx(0.4, abs=0.1)


def test_noise_changes_between_steps_and_repeats_with_the_seed():
    def two_steps(seed):
        pynn.utils.set_random_seed(seed)
        m = pynn.Sequential([pynn.Input((64,)), layers.GaussianNoise(0.5)])
        x = np.zeros((2, 64), np.float32)
        return [np.asarray(m(x, training=True)) for _ in range(2)]
    a, b = two_steps(3), two_steps(3)
    assert not np.array_equal(a[0], a[1])
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    # on data, a layer's own seed: new noise at each call, the same sequence from the same seed
    x = np.zeros((2, 64), np.float32)
    first, second = layers.GaussianDropout(0.3, seed=7), layers.GaussianDropout(0.3, seed=7)
    p1, p2 = np.asarray(first(x + 1, training=True)), np.asarray(first(x + 1, training=True))
    assert not np.array_equal(p1, p2)
    np.testing.assert_array_equal(np.asarray(second(x + 1, training=True)), p1)


@pytest.mark.parametrize("name", ALL_NOISE)
def test_models_with_noise_layers_train(name):
    shape = (2, 3, 5, 4) if name == "spatial_dropout3d" else (5, 4)
    pynn.utils.set_random_seed(1)
    m = pynn.Sequential([pynn.Input(shape), layers.Dense(4), ALL_NOISE[name](),
                         layers.Flatten(), layers.Dense(2)])
    m.compile(optimizer=pynn.optimizers.Adam(0.01), loss="mse")
    x, y = data((32,) + shape), data((32, 2), seed=1)
    before = [w.copy() for w in m.get_weights()]
    history = m.fit(x, y, epochs=3, batch_size=8, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    assert all(not np.array_equal(a, b) for a, b in zip(before, m.get_weights()))


def test_rate_one_cannot_train_but_passes_through_in_inference():
    x = data((2, 3))
    for cls in (layers.GaussianDropout, layers.AlphaDropout):
        layer = cls(1.0)
        np.testing.assert_array_equal(np.asarray(layer(x)), x)
        with pytest.raises(ValueError, match="rate=1"):
            layer(x, training=True)


# -- ActivityRegularization -----------------------------------------------------------------------
def keras_activity_penalty(x, l1, l2):
    """Keras 3: l1 sum(|x|) + l2 sum(x^2), divided by the batch size."""
    x = np.asarray(x, np.float64)
    return (l1 * np.abs(x).sum() + l2 * (x * x).sum()) / x.shape[0]


@pytest.mark.parametrize("l1, l2", [(0.1, 0.0), (0.0, 0.2), (0.1, 0.2)])
def test_activity_regularization_adds_keras_penalty_to_the_loss(l1, l2):
    x = data((6, 3, 4))
    want = keras_activity_penalty(x, l1, l2)
    layer = layers.ActivityRegularization(l1=l1, l2=l2)
    np.testing.assert_array_equal(np.asarray(layer(x)), x)
    assert [float(np.asarray(v)) for v in layer.losses] == [pytest.approx(want, rel=1e-5)]
    m = make_model((3, 4), [layers.ActivityRegularization(l1=l1, l2=l2)])
    m.compile(optimizer=pynn.optimizers.SGD(0.0), loss="mse")
    np.testing.assert_array_equal(m.predict(x, verbose=0), x)
    assert m.evaluate(x, x, verbose=0) == pytest.approx(want, rel=1e-5)  # mse 0: the penalty
    loss = m.fit(x, x, batch_size=3, epochs=1, verbose=0).history["loss"][0]
    assert loss == pytest.approx(want, rel=1e-5)  # per batch of 3, divided by 3


def test_activity_regularization_gradient_shrinks_activations():
    """The penalty's gradient matches finite differences, and fit towards targets 0 pulls the
    regularised activations (a Dense layer's output) towards 0."""
    m = make_model((4,), [layers.Dense(3), layers.ActivityRegularization(l1=0.05, l2=0.5)])
    grad_check(m, away_from_zero((5, 4)), data((5, 3), seed=1))
    m.compile(optimizer=pynn.optimizers.SGD(0.05), loss="mse")
    x = data((32, 4))
    before = np.abs(m.predict(x, verbose=0)).mean()
    m.fit(x, np.zeros((32, 3), np.float32), epochs=5, verbose=0)
    assert np.abs(m.predict(x, verbose=0)).mean() < before


def test_activity_regularization_of_zero_adds_no_loss():
    layer = layers.ActivityRegularization()
    x = data((2, 3))
    np.testing.assert_array_equal(np.asarray(layer(x)), x)
    assert layer.losses == []


# -- Keras's names, weights and configs -----------------------------------------------------------
MAKERS = {
    "GroupNormalization": lambda: layers.GroupNormalization(groups=2),
    "UnitNormalization": lambda: layers.UnitNormalization(),
    "RMSNormalization": lambda: layers.RMSNormalization(),
    "GaussianNoise": lambda: layers.GaussianNoise(0.1),
    "GaussianDropout": lambda: layers.GaussianDropout(0.1),
    "AlphaDropout": lambda: layers.AlphaDropout(0.1),
    "SpatialDropout1D": lambda: layers.SpatialDropout1D(0.1),
    "SpatialDropout3D": lambda: layers.SpatialDropout3D(0.1),
    "ActivityRegularization": lambda: layers.ActivityRegularization(),
    "PReLU": lambda: layers.PReLU(),
}

KERAS_NAMES = {
    "GroupNormalization": "group_normalization", "UnitNormalization": "unit_normalization",
    "RMSNormalization": "rms_normalization", "GaussianNoise": "gaussian_noise",
    "GaussianDropout": "gaussian_dropout", "AlphaDropout": "alpha_dropout",
    "SpatialDropout1D": "spatial_dropout1d", "SpatialDropout3D": "spatial_dropout3d",
    "ActivityRegularization": "activity_regularization", "PReLU": "p_re_lu",
}

# Keras 3.15's get_config keys (its "dtype" is left out: pynn writes it only when not float32);
# the spatial dropouts have "trainable" too, as pynn's SpatialDropout2D
KERAS_KEYS = {
    "GroupNormalization": {"name", "trainable", "groups", "axis", "epsilon", "center", "scale",
                           "beta_initializer", "gamma_initializer", "beta_regularizer",
                           "gamma_regularizer", "beta_constraint", "gamma_constraint"},
    "UnitNormalization": {"name", "trainable", "axis"},
    "RMSNormalization": {"name", "trainable", "axis", "epsilon"},
    "GaussianNoise": {"name", "trainable", "stddev", "seed"},
    "GaussianDropout": {"name", "trainable", "rate", "seed"},
    "AlphaDropout": {"name", "trainable", "rate", "seed", "noise_shape"},
    "SpatialDropout1D": {"name", "trainable", "rate", "seed"},
    "SpatialDropout3D": {"name", "trainable", "rate", "seed", "data_format"},
    "ActivityRegularization": {"name", "trainable", "l1", "l2"},
    "PReLU": {"name", "trainable", "alpha_initializer", "alpha_regularizer",
              "alpha_constraint", "shared_axes"},
}


def test_default_names_are_keras_snake_case():
    for cls_name, make in MAKERS.items():
        layer = make()
        base = KERAS_NAMES[cls_name]
        assert layer.name == base or layer.name.startswith(base + "_"), layer.name
        assert type(layer) is getattr(pynn.layers, cls_name)
        assert cls_name in pynn.layers.__all__


@pytest.mark.parametrize("cls_name", MAKERS)
def test_configs_have_keras_keys_and_round_trip_through_json(cls_name):
    layer = MAKERS[cls_name]()
    config = layer.get_config()
    assert set(config) == KERAS_KEYS[cls_name]
    spec = json.loads(json.dumps(saving.serialize_keras_object(layer)))
    again = saving.deserialize_keras_object(spec)
    assert type(again) is type(layer)
    assert json.loads(json.dumps(again.get_config())) == json.loads(json.dumps(config))


def test_config_values_are_keras_defaults():
    config = layers.GroupNormalization().get_config()
    assert (config["groups"], config["axis"], config["epsilon"], config["center"],
            config["scale"]) == (32, -1, 1e-3, True, True)
    assert config["beta_initializer"]["class_name"] == "Zeros"
    assert config["gamma_initializer"]["class_name"] == "Ones"
    assert config["beta_constraint"] is None and config["gamma_regularizer"] is None
    assert layers.UnitNormalization().get_config()["axis"] == -1
    assert layers.UnitNormalization(axis=(1, 2)).get_config()["axis"] == [1, 2]
    assert layers.RMSNormalization().get_config()["epsilon"] == 1e-6
    assert layers.GaussianNoise(0.2, seed=3).get_config()["seed"] == 3
    assert layers.AlphaDropout(0.2).get_config()["noise_shape"] is None
    assert layers.SpatialDropout3D(0.2).get_config()["data_format"] == "channels_last"
    act = layers.ActivityRegularization().get_config()
    assert (act["l1"], act["l2"]) == (0.0, 0.0)
    prelu = layers.PReLU(shared_axes=1).get_config()
    assert prelu["alpha_initializer"]["class_name"] == "Zeros"
    assert prelu["shared_axes"] == [1] and prelu["alpha_regularizer"] is None


def test_weights_have_keras_names_shapes_and_order():
    def built(layer, shape):
        layer.build(shape)
        return [(w.name, w.shape, w.trainable) for w in layer.weights]
    assert built(layers.GroupNormalization(groups=2), (None, 3, 4)) == [
        ("gamma", (4,), True), ("beta", (4,), True)]
    assert built(layers.GroupNormalization(groups=2, axis=1), (None, 6, 5)) == [
        ("gamma", (6,), True), ("beta", (6,), True)]
    assert built(layers.RMSNormalization(), (None, 3, 4)) == [("scale", (4,), True)]
    assert built(layers.RMSNormalization(axis=[1, 2]), (None, 3, 4)) == [("scale", (3, 4), True)]
    assert built(layers.PReLU(), (None, 3, 4)) == [("alpha", (3, 4), True)]
    assert built(layers.PReLU(shared_axes=[1, 2]), (None, 5, 3, 4)) == [("alpha", (1, 1, 4), True)]
    for name in ("UnitNormalization", "GaussianNoise", "GaussianDropout", "AlphaDropout",
                 "ActivityRegularization"):
        layer = MAKERS[name]()
        layer.build((None, 3, 4))
        assert layer.weights == []
    m = make_model((3, 4), [layers.GroupNormalization(groups=2), layers.PReLU()])
    assert [w.path for w in m.weights] == [f"{m.layers[0].name}/gamma",
                                           f"{m.layers[0].name}/beta", f"{m.layers[1].name}/alpha"]
    np.testing.assert_array_equal(m.layers[0].gamma, np.ones(4))
    np.testing.assert_array_equal(m.layers[1].alpha, np.zeros((3, 4)))


def all_layers_model():
    """A functional model with every new layer (weights randomised), in one graph."""
    pynn.utils.set_random_seed(0)
    inp = pynn.Input((6, 8))
    h = layers.GroupNormalization(groups=4)(inp)
    h = layers.GaussianNoise(0.1)(h)
    h = layers.PReLU(shared_axes=[1])(h)
    h = layers.SpatialDropout1D(0.2)(h)
    h = layers.RMSNormalization()(h)
    h = layers.AlphaDropout(0.1, noise_shape=(None, 1, 8))(h)
    h = layers.UnitNormalization(axis=[1, 2])(h)
    h = layers.GaussianDropout(0.2)(h)
    h = layers.ActivityRegularization(l2=1e-3)(h)
    vol = layers.Reshape((2, 3, 1, 8))(h)
    vol = layers.SpatialDropout3D(0.2)(vol)
    out = layers.Dense(2)(layers.Flatten()(vol))
    model = pynn.Model(inp, out)
    rng = np.random.default_rng(0)
    for w in model.weights:
        w.assign(rng.uniform(0.5, 1.5, w.shape).astype(np.float32))
    model.compile(optimizer="adam", loss="mse")
    return model


def test_model_with_every_layer_trains_saves_and_loads(tmp_path):
    model = all_layers_model()
    x, y = data((16, 6, 8)), data((16, 2), seed=1)
    history = model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    want = model.predict(x, verbose=0)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = saving.load_model(path)
    assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), want, rtol=1e-6, atol=1e-7)
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0),
                                                             rel=1e-6)
    config = json.loads(json.dumps(model.get_config()))
    again = pynn.Model.from_config(config)
    assert [w.shape for w in again.weights] == [w.shape for w in model.weights]


def test_sequential_with_new_layers_and_their_calls_on_data_agree():
    m = make_model((5, 6), [layers.GroupNormalization(groups=3), layers.PReLU(shared_axes=1),
                            layers.RMSNormalization(), layers.UnitNormalization(),
                            layers.GaussianNoise(0.2)])
    for w in m.weights:
        w.assign(data(w.shape, seed=2, shift=1.0))
    x = data((4, 5, 6))
    h = x
    for layer in m.layers:
        h = layer(h)
    np.testing.assert_allclose(m.predict(x, verbose=0), np.asarray(h), rtol=1e-5, atol=1e-6)


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, error, match", [
    (lambda: layers.GroupNormalization(groups=0), ValueError, "groups"),
    (lambda: layers.GroupNormalization(groups=-2), ValueError, "groups"),
    (lambda: layers.GroupNormalization(groups=2.0), ValueError, "groups"),
    (lambda: layers.GroupNormalization(axis="x"), TypeError, "axis"),
    (lambda: layers.GroupNormalization(epsilon=-1.0), ValueError, "epsilon"),
    (lambda: layers.UnitNormalization(axis="x"), TypeError, "axis"),
    (lambda: layers.UnitNormalization(axis=1.0), TypeError, "axis"),
    (lambda: layers.RMSNormalization(axis=None), TypeError, "axis"),
    (lambda: layers.RMSNormalization(epsilon="small"), TypeError, "epsilon"),
    (lambda: layers.GaussianNoise(1.5), ValueError, "stddev"),
    (lambda: layers.GaussianNoise(-0.1), ValueError, "stddev"),
    (lambda: layers.GaussianNoise("x"), TypeError, "stddev"),
    (lambda: layers.GaussianNoise(0.1, seed="x"), ValueError, "seed"),
    (lambda: layers.GaussianNoise(0.1, units=3), TypeError, "unexpected"),
    (lambda: layers.GaussianDropout(1.5), ValueError, "rate"),
    (lambda: layers.GaussianDropout(None), TypeError, "rate"),
    (lambda: layers.AlphaDropout(-0.5), ValueError, "rate"),
    (lambda: layers.AlphaDropout(0.1, noise_shape=4), ValueError, "noise_shape"),
    (lambda: layers.AlphaDropout(0.1, noise_shape=(None, 0)), ValueError, "noise_shape"),
    (lambda: layers.SpatialDropout1D(1.0), ValueError, "rate"),
    (lambda: layers.SpatialDropout1D(-0.1), ValueError, "rate"),
    (lambda: layers.SpatialDropout3D(0.1, data_format="channels_first"), ValueError,
     "channels_last"),
    (lambda: layers.ActivityRegularization(l1=-1.0), ValueError, "l1"),
    (lambda: layers.ActivityRegularization(l2="x"), ValueError, "l2"),
    (lambda: layers.PReLU(shared_axes="x"), TypeError, "shared_axes"),
])
def test_bad_arguments_raise_like_keras(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("make, shape, match", [
    (lambda: layers.GroupNormalization(groups=3), (5, 4), "multiple"),
    (lambda: layers.GroupNormalization(groups=8), (5, 4), "more than"),
    (lambda: layers.GroupNormalization(groups=2, axis=3), (5, 4), "out of bounds"),
    (lambda: layers.GroupNormalization(groups=2, axis=1), (None, 4), "known size"),
    (lambda: layers.UnitNormalization(axis=3), (5, 4), "out of bounds"),
    (lambda: layers.RMSNormalization(axis=-4), (5, 4), "out of bounds"),
    (lambda: layers.SpatialDropout1D(0.1), (5, 4, 3), "rank 3"),
    (lambda: layers.SpatialDropout3D(0.1), (5, 4, 3), "rank 5"),
    (lambda: layers.PReLU(shared_axes=[3]), (5, 4), "shared_axes"),
    (lambda: layers.PReLU(), (None, 4), "alpha"),
    (lambda: layers.AlphaDropout(0.1, noise_shape=(None, 1)), (5, 4), "rank"),
])
def test_bad_input_shapes_raise_value_error(make, shape, match):
    with pytest.raises(ValueError, match=match):
        pynn.Sequential([pynn.Input(shape), make()])
