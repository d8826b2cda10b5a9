"""BatchNormalization along any one channel axis (axis=1 for channels_first images, as Keras 3):
values and gradients against NumPy and PyTorch, training against inference, the moving
statistics after fit, channels_first against channels_last models, configs and saving."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import core_gradients, grad_check, make_model

import pynn
from pynn import layers


def data(shape, seed=0, scale=1.0, shift=0.0):
    return (np.random.default_rng(seed).normal(size=shape) * scale + shift).astype(np.float32)


def torch_batch_norm(x, axis, gamma=None, beta=None, epsilon=1e-3):
    """Training-mode batch norm (batch statistics, biased variance) along `axis` of x, by
    torch's F.batch_norm on x with that axis moved to dim 1 (torch's channel axis)."""
    z = F.batch_norm(x.movedim(axis, 1), None, None, gamma, beta, training=True, eps=epsilon)
    return z.movedim(1, axis)


class Recorder:
    """Stands in for a core model to see which ops a layer's lower() adds."""

    def __init__(self, shape):
        self.shape, self.ops = tuple(shape), []

    def node_shape(self, node):
        return self.shape

    def add_node(self, op, inputs, variables=(), iattr=(), fattr=()):
        self.ops.append((op, tuple(iattr)))
        if op == "transpose":
            self.shape = tuple(self.shape[a] for a in iattr)
        return len(self.ops), self.shape


# -- values and gradients -------------------------------------------------------------------------
CASES = [((3, 5, 4), 1), ((3, 7), 1), ((5, 3, 4), 2), ((5, 4, 3), -2), ((2, 3, 4, 5), -3)]
CASE_IDS = ["nchw", "ncl", "axis2", "axis-2", "ncdhw"]


@pytest.mark.parametrize("shape, axis", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("center, scale", [(True, True), (False, True), (True, False),
                                           (False, False)])
def test_training_step_matches_torch(shape, axis, center, scale):
    m = make_model(shape, [layers.BatchNormalization(axis=axis, center=center, scale=scale)])
    bn = m.layers[0]
    c = shape[axis - 1 if axis > 0 else axis]
    if scale:
        bn.gamma.assign(data((c,), seed=3, shift=1.0))
    if center:
        bn.beta.assign(data((c,), seed=4))
    x, y = data((4,) + shape, scale=2.0, shift=0.5), data((4,) + shape, seed=1)
    loss, dx, grads = core_gradients(m, x, y)

    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    params = [torch.tensor(np.array(w, np.float64), requires_grad=True)
              for w in bn.trainable_weights]
    gamma = params[0] if scale else None
    beta = params[-1] if center else None
    out = torch_batch_norm(xt, axis, gamma, beta)
    t_loss = ((out - torch.tensor(y, dtype=torch.float64)) ** 2).mean()
    t_loss.backward()
    np.testing.assert_allclose(loss, t_loss.item(), rtol=1e-4)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-3, atol=1e-6)
    for g, p in zip(grads, params):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-3, atol=1e-6)


def test_nchw_training_output_matches_torch_batchnorm2d_and_its_running_mean():
    x = data((6, 3, 5, 4), scale=2.0, shift=1.5)
    bn = layers.BatchNormalization(axis=1, momentum=0.9)
    y = np.asarray(bn(x, training=True))
    ref = torch.nn.BatchNorm2d(3, eps=1e-3, momentum=0.1, dtype=torch.float64)
    want = ref(torch.tensor(x, dtype=torch.float64)).detach().numpy()
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.moving_mean, ref.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    # Keras keeps the biased batch variance; torch's running_var the unbiased one
    n = x.size // 3
    biased = 0.9 + (ref.running_var.numpy() - 0.9) * (n - 1) / n
    np.testing.assert_allclose(bn.moving_variance, biased, rtol=1e-5)


@pytest.mark.parametrize("shape, axis", [((3, 5, 4), 1), ((5, 3, 4), 2)], ids=["nchw", "axis2"])
def test_gradients_match_finite_differences(shape, axis):
    m = make_model(shape, [layers.BatchNormalization(axis=axis), layers.Flatten(),
                           layers.Dense(3)])
    m.layers[0].gamma.assign(data((shape[axis - 1],), seed=3, shift=1.0))
    x = data((4,) + shape, scale=2.0, shift=0.5)
    grad_check(m, x, data((4, 3), seed=1), training=True)


def test_inference_uses_moving_statistics_along_the_axis():
    m = make_model((4, 3, 5), [layers.BatchNormalization(axis=1, epsilon=0.01)])
    bn = m.layers[0]
    bn.gamma.assign([1.0, 2.0, 0.5, -1.0])
    bn.beta.assign([0.0, 1.0, -1.0, 0.5])
    bn.moving_mean.assign([0.5, -1.0, 2.0, 0.0])
    bn.moving_variance.assign([1.0, 4.0, 0.25, 2.0])
    x = data((5, 4, 3, 5))
    c = (slice(None), None, None)
    want = ((x - bn.moving_mean[c]) / np.sqrt(bn.moving_variance[c] + 0.01) * bn.gamma[c]
            + bn.beta[c])
    np.testing.assert_allclose(m.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m(x), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bn(x), want, rtol=1e-5, atol=1e-5)


def test_fit_updates_moving_statistics_by_keras_rule():
    m = make_model((3, 4, 2), [layers.BatchNormalization(axis=1, momentum=0.9)])
    m.compile(optimizer=pynn.optimizers.SGD(0.0), loss="mse")
    x = data((8, 3, 4, 2), scale=3.0, shift=2.0)
    m.fit(x, np.zeros_like(x), batch_size=8, epochs=1, verbose=0)
    bn = m.layers[0]
    np.testing.assert_allclose(bn.moving_mean, 0.1 * x.mean((0, 2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.moving_variance, 0.9 + 0.1 * x.var((0, 2, 3)), rtol=1e-5)
    before = [w.copy() for w in m.get_weights()]
    m.predict(x, verbose=0)
    m.evaluate(x, x, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))


def test_call_on_data_trains_with_batch_statistics_and_infers_with_moving_ones():
    bn = layers.BatchNormalization(axis=1, momentum=0.5)
    x = data((6, 3, 4), scale=2.0, shift=3.0)
    y = np.asarray(bn(x, training=True))
    mean, var = x.mean((0, 2), keepdims=True), x.var((0, 2), keepdims=True)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn.moving_mean, 0.5 * mean.ravel(), rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance, 0.5 + 0.5 * var.ravel(), rtol=1e-5)
    y = np.asarray(bn(x))
    want = (x - bn.moving_mean[:, None]) / np.sqrt(bn.moving_variance[:, None] + 1e-3)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def test_frozen_layer_normalises_with_moving_statistics_in_fit():
    m = make_model((3, 4), [layers.BatchNormalization(axis=1), layers.Flatten(),
                            layers.Dense(2)])
    m.layers[0].trainable = False
    m.compile(optimizer="sgd", loss="mse")
    m.layers[0].moving_mean.assign([1.0, 2.0, 3.0])
    x = data((8, 3, 4), shift=2.0)
    before = m.layers[0].get_weights()
    m.fit(x, data((8, 2), seed=1), epochs=1, verbose=0)
    for a, b in zip(before, m.layers[0].get_weights()):
        np.testing.assert_array_equal(a, b)


# -- channels_first models against channels_last ones -----------------------------------------
def conv_bn(data_format, axis, seed=0):
    pynn.utils.set_random_seed(seed)
    shape = (3, 8, 8) if data_format == "channels_first" else (8, 8, 3)
    inp = pynn.Input(shape)
    h = layers.Conv2D(4, 3, data_format=data_format)(inp)
    h = layers.BatchNormalization(axis=axis, momentum=0.8)(h)
    h = layers.Activation("relu")(h)
    out = layers.Dense(2)(layers.GlobalAveragePooling2D(data_format=data_format)(h))
    m = pynn.Model(inp, out)
    m.compile(optimizer=pynn.optimizers.SGD(0.05), loss="mse")
    return m


def test_channels_first_model_trains_like_channels_last_one():
    first, last = conv_bn("channels_first", 1), conv_bn("channels_last", -1)
    last.set_weights(first.get_weights())
    x = data((16, 3, 8, 8))
    y = data((16, 2), seed=1)
    first.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    last.fit(x.transpose(0, 2, 3, 1), y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(first.get_weights(), last.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(first.predict(x, verbose=0),
                               last.predict(x.transpose(0, 2, 3, 1), verbose=0),
                               rtol=1e-4, atol=1e-5)
    assert np.abs(first.layers[2].moving_mean).sum() > 0


def test_sequential_and_time_distributed_take_the_axis():
    m = make_model((3, 4, 4), [layers.BatchNormalization(axis=1), layers.Flatten(),
                               layers.Dense(2)])
    m.fit(data((8, 3, 4, 4)), data((8, 2), seed=1), epochs=1, verbose=0)
    assert m.predict(data((2, 3, 4, 4)), verbose=0).shape == (2, 2)
    # TimeDistributed: axis 1 of each step (batch, channels, length) is axis 2 of the sequence
    td = make_model((2, 3, 5), [layers.TimeDistributed(layers.BatchNormalization(axis=1,
                                                                                 momentum=0.0))])
    td.compile(optimizer=pynn.optimizers.SGD(0.0), loss="mse")
    x = data((4, 2, 3, 5), scale=2.0, shift=1.0)
    td.fit(x, x, batch_size=4, epochs=1, verbose=0)
    np.testing.assert_allclose(td.layers[0].layer.moving_mean, x.mean((0, 1, 3)), rtol=1e-5)


# -- the lowering ---------------------------------------------------------------------------------
@pytest.mark.parametrize("input_shape, axis, want", [
    ((None, 5, 4, 3), -1, ["batch_norm"]),
    ((None, 5, 4, 3), 3, ["batch_norm"]),
    ((None, 7), 1, ["batch_norm"]),
    ((None, 3, 5, 4), 1, ["transpose", "batch_norm", "transpose"]),
], ids=["last", "last-positive", "rank2-axis1", "channels-first"])
def test_only_another_axis_than_the_last_adds_transposes(input_shape, axis, want):
    bn = layers.BatchNormalization(axis=axis)
    bn.build(input_shape)
    core = Recorder(input_shape[1:])
    bn.lower(core, 0)
    assert [op for op, _ in core.ops] == want
    assert core.shape == tuple(input_shape[1:])
    if len(want) == 3:
        assert core.ops[0][1] == (1, 2, 0) and core.ops[2][1] == (2, 0, 1)


# -- configs, saving, errors ----------------------------------------------------------------------
def test_config_round_trip_keeps_the_axis():
    bn = layers.BatchNormalization(axis=1, momentum=0.9, epsilon=0.01, center=False)
    config = bn.get_config()
    assert config["axis"] == 1
    again = layers.BatchNormalization.from_config(config)
    assert again.get_config() == config
    assert layers.BatchNormalization(axis=[-1]).get_config()["axis"] == -1


def test_saved_model_keeps_axis_and_moving_statistics(tmp_path):
    m = make_model((3, 4, 4), [layers.BatchNormalization(axis=1), layers.Flatten(),
                               layers.Dense(2)])
    x = data((8, 3, 4, 4), shift=1.0)
    m.fit(x, data((8, 2), seed=1), epochs=2, verbose=0)
    m.save(tmp_path / "bn.keras")
    loaded = pynn.models.load_model(tmp_path / "bn.keras")
    assert loaded.layers[0].axis == 1
    np.testing.assert_array_equal(loaded.layers[0].moving_mean, m.layers[0].moving_mean)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), m.predict(x, verbose=0))


@pytest.mark.parametrize("make, shape, error, match", [
    (lambda: layers.BatchNormalization(axis=[1, 2]), None, ValueError, "several"),
    (lambda: layers.BatchNormalization(axis="channels"), None, TypeError, "axis"),
    (lambda: layers.BatchNormalization(axis=0), (3, 4), ValueError, "batch axis"),
    (lambda: layers.BatchNormalization(axis=3), (3, 4), ValueError, "out of bounds"),
    (lambda: layers.BatchNormalization(axis=-4), (3, 4), ValueError, "out of bounds"),
], ids=["several", "not-int", "batch", "too-high", "too-low"])
def test_bad_axes_are_refused_clearly(make, shape, error, match):
    with pytest.raises(error, match=match):
        make_model(shape, [make()]) if shape else make()


def test_axis_of_unknown_size_is_refused():
    with pytest.raises(ValueError, match="known size"):
        layers.BatchNormalization(axis=1)(pynn.Input((None, 4)))
