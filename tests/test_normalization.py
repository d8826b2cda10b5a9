"""BatchNormalization (training vs inference, moving statistics, Keras's formulas) and Dropout
(scaling in training, the identity in inference, seeded masks)."""

import numpy as np
import pytest
from helpers import grad_check, make_model, torch_parity

import pynn
from pynn import layers


def data(shape, seed=0, scale=1.0, shift=0.0):
    return (np.random.default_rng(seed).normal(size=shape) * scale + shift).astype(np.float32)


def bn_model(shape, **kw):
    return make_model(shape, [layers.BatchNormalization(**kw), layers.Dense(3)])


@pytest.mark.parametrize("shape", [(6,), (5, 4, 3)], ids=["rank2", "rank4"])
@pytest.mark.parametrize("center, scale", [(True, True), (False, True), (True, False),
                                           (False, False)])
def test_batch_norm_training_matches_torch(shape, center, scale):
    m = bn_model(shape, center=center, scale=scale)
    bn = m.layers[0]
    if scale:
        bn.gamma.assign(data(shape[-1:], seed=3, shift=1.0))
    if center:
        bn.beta.assign(data(shape[-1:], seed=4))
    x = data((4,) + shape, scale=2.0, shift=0.5)
    torch_parity(m, x, data((4,) + shape[:-1] + (3,), seed=1), training=True)


@pytest.mark.parametrize("shape", [(6,), (5, 4, 3)], ids=["rank2", "rank4"])
def test_batch_norm_gradients_match_finite_differences(shape):
    m = bn_model(shape)
    m.layers[0].gamma.assign(data(shape[-1:], seed=3, shift=1.0))
    x = data((4,) + shape, scale=2.0, shift=0.5)
    grad_check(m, x, data((4,) + shape[:-1] + (3,), seed=1), training=True)


def test_batch_norm_inference_uses_moving_statistics():
    m = make_model((4,), [layers.BatchNormalization(epsilon=0.01)])
    bn = m.layers[0]
    bn.gamma.assign([1.0, 2.0, 0.5, -1.0])
    bn.beta.assign([0.0, 1.0, -1.0, 0.5])
    bn.moving_mean.assign([0.5, -1.0, 2.0, 0.0])
    bn.moving_variance.assign([1.0, 4.0, 0.25, 2.0])
    x = data((5, 4))
    want = (x - bn.moving_mean) / np.sqrt(bn.moving_variance + 0.01) * bn.gamma + bn.beta
    np.testing.assert_allclose(m.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m(x), want, rtol=1e-5, atol=1e-6)


def test_batch_norm_fit_updates_moving_statistics_by_keras_rule():
    m = make_model((3,), [layers.BatchNormalization(momentum=0.9)])
    m.compile(optimizer=pynn.optimizers.SGD(0.0), loss="mse")
    x = data((8, 3), scale=3.0, shift=2.0)
    m.fit(x, np.zeros((8, 3), np.float32), batch_size=8, epochs=1, verbose=0)
    bn = m.layers[0]
    np.testing.assert_allclose(bn.moving_mean, 0.1 * x.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.moving_variance, 0.9 + 0.1 * x.var(0), rtol=1e-5)


def test_batch_norm_evaluate_and_predict_do_not_touch_moving_statistics():
    m = make_model((3,), [layers.BatchNormalization()])
    before = [w.copy() for w in m.get_weights()]
    x = data((8, 3), shift=5.0)
    m.predict(x, verbose=0)
    m.evaluate(x, x, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))


def test_batch_norm_weights_are_keras_ordered_with_two_non_trainable():
    m = make_model((5,), [layers.BatchNormalization()])
    bn = m.layers[0]
    assert [w.name for w in bn.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [w.name for w in bn.non_trainable_weights] == ["moving_mean", "moving_variance"]
    assert len(m.trainable_weights) == 2


# -- dropout --------------------------------------------------------------------------------------
def dropout_model(rate, shape=(1000,), cls=layers.Dropout):
    return make_model(shape, [cls(rate)])


def training_output(m, x):
    """(loss, dloss/dx) of one training forward with targets 0: loss = mean(y^2) with
    y = x * mask / (1 - rate), so dloss/dx is 2 y / ((1 - rate) N) where kept and 0 elsewhere."""
    loss, dx = m._core.gradients(x, np.zeros_like(x), True)
    return loss, np.asarray(dx)


def test_dropout_is_the_identity_in_predict_and_evaluate():
    m = dropout_model(0.5)
    x = data((4, 1000))
    np.testing.assert_array_equal(m.predict(x, verbose=0), x)
    assert m.evaluate(x, np.zeros_like(x), verbose=0) == pytest.approx(float(np.mean(x * x)),
                                                                       rel=1e-5)


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_dropout_drops_rate_and_scales_the_rest_in_training(rate):
    m = dropout_model(rate, shape=(50_000,))
    x = np.ones((2, 50_000), np.float32)
    loss, dx = training_output(m, x)
    # y = x * mask / (1 - rate); loss = mean(y^2); dL/dx = 2 * y * mask / (1 - rate) / N
    kept = dx != 0
    assert abs(kept.mean() - (1 - rate)) < 0.01
    n = x.size
    np.testing.assert_allclose(dx[kept], 2.0 / (1 - rate) ** 2 / n, rtol=1e-5)
    assert loss == pytest.approx(kept.mean() / (1 - rate) ** 2, rel=1e-5)


def test_dropout_masks_change_between_steps_and_repeat_with_the_seed():
    def masks(seed):
        pynn.utils.set_random_seed(seed)
        m = pynn.Sequential([pynn.Input(shape=(64,)), layers.Dropout(0.5)])
        m.compile(optimizer="sgd", loss="mse")
        x = np.ones((1, 64), np.float32)
        return [training_output(m, x)[1] != 0 for _ in range(2)]
    a, b = masks(7), masks(7)
    assert not np.array_equal(a[0], a[1])
    assert all(np.array_equal(p, q) for p, q in zip(a, b))


def test_spatial_dropout_drops_whole_channels():
    m = make_model((4, 5, 64), [layers.SpatialDropout2D(0.5)])
    x = np.ones((3, 4, 5, 64), np.float32)
    _, dx = training_output(m, x)
    kept = dx != 0
    assert np.all(kept == kept[:, :1, :1, :])  # the same over height and width
    assert 0.3 < kept[:, 0, 0, :].mean() < 0.7


def test_dropout_rate_zero_and_model_with_dropout_match_torch_without_it():
    m = make_model((6,), [layers.Dense(4, activation="relu"), layers.Dropout(0.0),
                          layers.Dense(2)])
    torch_parity(m, data((3, 6)), data((3, 2), seed=1))


@pytest.mark.parametrize("make, match", [
    (lambda: layers.Dropout(1.0), "rate"),
    (lambda: layers.Dropout(-0.1), "rate"),
    (lambda: layers.BatchNormalization(momentum=1.5), "momentum"),
    (lambda: layers.BatchNormalization(epsilon=0.0), "epsilon"),
    (lambda: layers.BatchNormalization(axis=[1, 2]), "axis"),
])
def test_bad_arguments_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()
