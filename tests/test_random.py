"""pynn.random (Keras 3's keras.random): shapes, dtypes, moments, seeds, dropout's gradient, and
noise drawn inside a model's graph (the Sampling layer of Keras's VAE example)."""

import numpy as np
import pytest

import pynn
import pynn as keras
from pynn import ops

R = pynn.random


def arr(t) -> np.ndarray:
    return np.asarray(t)


# -- on data --------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [R.normal, R.uniform, R.truncated_normal])
def test_float_draws_have_shape_and_float32(fn):
    t = fn((3, 4, 2), seed=0)
    assert isinstance(t, pynn.Tensor)
    assert t.shape == (3, 4, 2) and t.dtype == np.float32
    assert fn((), seed=0).shape == ()
    assert fn(5, seed=0).shape == (5,)


def test_int_draws_are_int32():
    assert R.randint((2, 3), 0, 5, seed=0).dtype == np.int32
    assert R.categorical(np.zeros((2, 3)), 4, seed=0).dtype == np.int32
    assert R.categorical(np.zeros((2, 3)), 4, seed=0).shape == (2, 4)


def test_normal_moments_and_parameters():
    a = arr(R.normal((200_000,), mean=3.0, stddev=2.0, seed=1))
    assert abs(a.mean() - 3.0) < 0.03 and abs(a.std() - 2.0) < 0.03


def test_uniform_moments_and_range():
    a = arr(R.uniform((200_000,), minval=-2.0, maxval=4.0, seed=1))
    assert a.min() >= -2.0 and a.max() < 4.0
    assert abs(a.mean() - 1.0) < 0.03 and abs(a.std() - 6.0 / np.sqrt(12)) < 0.03


def test_truncated_normal_within_two_stddev():
    a = arr(R.truncated_normal((100_000,), mean=1.0, stddev=0.5, seed=2))
    assert a.min() >= 0.0 and a.max() <= 2.0
    assert abs(a.mean() - 1.0) < 0.01
    assert abs(a.std() - 0.5 * 0.8796) < 0.01  # a normal truncated at 2 sigma keeps 0.88 sigma


def test_randint_range_and_coverage():
    a = arr(R.randint((10_000,), -3, 4, seed=3))
    assert a.min() == -3 and a.max() == 3
    assert abs(a.mean()) < 0.1


def test_int_seed_repeats_and_matches_keras_numpy_backend():
    assert np.array_equal(arr(R.normal((5,), seed=7)), arr(R.normal((5,), seed=7)))
    assert not np.array_equal(arr(R.normal((5,), seed=7)), arr(R.normal((5,), seed=8)))
    # Keras's NumPy backend draws np.random.default_rng([seed, 0])
    want = np.random.default_rng([7, 0]).normal(size=5).astype(np.float32)
    np.testing.assert_array_equal(arr(R.normal((5,), seed=7)), want)


def test_seed_generator_new_values_each_call_same_sequence():
    g1, g2 = R.SeedGenerator(seed=1337), R.SeedGenerator(seed=1337)
    a1, b1 = arr(R.normal((4,), seed=g1)), arr(R.normal((4,), seed=g1))
    a2, b2 = arr(R.normal((4,), seed=g2)), arr(R.normal((4,), seed=g2))
    assert not np.array_equal(a1, b1)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(b1, b2)
    assert R.SeedGenerator.from_config(g1.get_config()).state.tolist() == [1337, 0]


def test_seed_none_follows_set_random_seed():
    pynn.utils.set_random_seed(5)
    a = arr(R.uniform((3,)))
    b = arr(R.uniform((3,)))
    pynn.utils.set_random_seed(5)
    np.testing.assert_array_equal(arr(R.uniform((3,))), a)
    assert not np.array_equal(a, b)


def test_bad_seed_and_dtype_raise():
    with pytest.raises(ValueError, match="seed"):
        R.normal((2,), seed="x")
    with pytest.raises(ValueError, match="floating"):
        R.uniform((2,), dtype="int32")
    with pytest.raises(ValueError, match="integer"):
        R.randint((2,), 0, 3, dtype="float32")


def test_dropout_scales_kept_values_and_drops_rate():
    x = np.ones((400, 250), np.float32)
    y = arr(R.dropout(x, 0.3, seed=0))
    assert set(np.unique(y).tolist()) <= {0.0, np.float32(1 / 0.7)}
    assert abs((y == 0).mean() - 0.3) < 0.01
    assert abs(y.mean() - 1.0) < 0.02
    assert R.dropout(x, 0.0) is x
    assert not arr(R.dropout(x, 1.0)).any()


def test_dropout_noise_shape_broadcasts():
    y = arr(R.dropout(np.ones((8, 5, 6), np.float32), 0.5, noise_shape=(None, 1, 6), seed=1))
    assert (y == y[:, :1, :]).all()  # one mask for every position of axis 1


def test_dropout_passes_the_gradient_through_kept_values():
    x = pynn.Tensor(np.arange(12, dtype=np.float32).reshape(3, 4), requires_grad=True)
    y = R.dropout(x, 0.5, seed=4)
    (y * 2.0).sum().backward()
    kept = arr(R.dropout(np.ones((3, 4), np.float32), 0.5, seed=4)) != 0  # the same mask
    assert 0 < kept.sum() < 12
    np.testing.assert_allclose(arr(y), np.where(kept, 2.0 * arr(x), 0.0))
    np.testing.assert_allclose(x.grad, np.where(kept, 4.0, 0.0))


def test_shuffle_is_a_permutation_of_slices():
    x = np.arange(20).reshape(10, 2)
    y = arr(R.shuffle(x, seed=0))
    assert y.dtype == np.int32 and sorted(y[:, 0].tolist()) == list(range(0, 20, 2))
    assert (y[:, 1] == y[:, 0] + 1).all()  # rows move whole
    assert not np.array_equal(y, x)
    z = arr(R.shuffle(np.arange(6, dtype=np.float32).reshape(2, 3), axis=1, seed=1))
    assert sorted(z[0].tolist()) == [0, 1, 2] and (z[1] == z[0] + 3).all()


def test_categorical_follows_the_probabilities():
    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.0, 0.0, 1.0]]) + 1e-30)
    s = arr(R.categorical(logits, 20_000, seed=0))
    freq = np.bincount(s[0], minlength=3) / s.shape[1]
    np.testing.assert_allclose(freq, [0.7, 0.2, 0.1], atol=0.015)
    assert (s[1] == 2).all()
    with pytest.raises(ValueError, match="2-D"):
        R.categorical(np.zeros(3), 2)


def test_gamma_binomial_beta_moments():
    assert abs(arr(R.gamma((50_000,), alpha=3.0, seed=0)).mean() - 3.0) < 0.05
    assert abs(arr(R.binomial((50_000,), 10, 0.3, seed=0)).mean() - 3.0) < 0.05
    assert abs(arr(R.beta((50_000,), 2.0, 6.0, seed=0)).mean() - 0.25) < 0.01


# -- in a model's graph ---------------------------------------------------------------------------
class Sampling(keras.layers.Layer):
    """x + noise of x's shape, as the Sampling layer of Keras's VAE example draws it."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(1337)

    def call(self, x):
        batch, dim = ops.shape(x)[0], ops.shape(x)[1]
        return x + keras.random.normal(shape=(batch, dim), seed=self.seed_generator)


def test_sampling_layer_predicts_noise_around_its_input():
    x = keras.Input((4,))
    model = keras.Model(x, Sampling()(x))
    xs = np.tile(np.arange(4, dtype=np.float32), (20_000, 1))
    d = model.predict(xs, batch_size=20_000, verbose=0) - xs
    np.testing.assert_allclose(d.mean(axis=0), 0.0, atol=0.04)
    np.testing.assert_allclose(d.std(axis=0), 1.0, atol=0.04)


def test_sampling_layer_trains_with_fit():
    x = keras.Input((4,))
    model = keras.Model(x, keras.layers.Dense(1)(Sampling()(x)))
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(0)
    h = model.fit(rng.random((64, 4), np.float32), rng.random((64, 1), np.float32), epochs=2,
                  batch_size=16, verbose=0)
    assert np.isfinite(h.history["loss"]).all()


def test_sampling_layer_runs_eagerly_on_data():
    y = Sampling()(np.zeros((3, 4), np.float32))
    assert isinstance(y, pynn.Tensor) and y.shape == (3, 4)


def test_vae_sampling_of_two_inputs():
    class VaeSampling(keras.layers.Layer):
        def call(self, inputs):
            z_mean, z_log_var = inputs
            eps = keras.random.normal(shape=(ops.shape(z_mean)[0], ops.shape(z_mean)[1]))
            return z_mean + ops.exp(0.5 * z_log_var) * eps

    x = keras.Input((3,))
    z_mean = keras.layers.Dense(2)(x)
    z_log_var = keras.layers.Dense(2, kernel_initializer="zeros")(x)  # variance 1
    model = keras.Model(x, [z_mean, VaeSampling()([z_mean, z_log_var])])
    m, z = model.predict(np.ones((5000, 3), np.float32), batch_size=5000, verbose=0)
    assert abs((z - m).std() - 1.0) < 0.05


def random_nodes(layer) -> list:
    """The core "random" ops a traced layer's call() recorded."""
    return [t._layer for trace in layer._traces.values() for t in trace.calls
            if getattr(t._layer, "op", None) == "random"]


def test_unbatched_noise_in_a_trace_is_a_graph_node():
    class Jitter(keras.layers.Layer):
        def call(self, x):
            return x + keras.random.uniform((4,), minval=-1.0, maxval=1.0)

    x = keras.Input((4,))
    jitter = Jitter()
    model = keras.Model(x, jitter(x))
    (node,) = random_nodes(jitter)
    assert node.iattr == (1, 0, 1, 4) and node.fattr == (-1.0, 1.0)
    out = model.predict(np.zeros((3, 4), np.float32), verbose=0)
    assert (np.abs(out) <= 1.0).all() and np.ptp(out[0]) > 0
    assert (out == out[0]).all()  # one draw for the whole batch


def test_batched_noise_node_takes_its_reference_batch():
    sampling = Sampling()
    sampling(keras.Input((4,)))
    (node,) = random_nodes(sampling)
    assert node.iattr == (0, 0, 1, 4) and node.fattr == (0.0, 1.0)


def test_dropout_in_a_trace_drops_the_rate():
    class Drop(keras.layers.Layer):
        def call(self, x):
            return keras.random.dropout(x, 0.25)

    x = keras.Input((50,))
    model = keras.Model(x, Drop()(x))
    y = model.predict(np.ones((400, 50), np.float32), batch_size=400, verbose=0)
    assert set(np.unique(y).tolist()) <= {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.02


def test_none_batch_without_a_reference_raises():
    class Bad(keras.layers.Layer):
        def call(self, x):
            return x + keras.random.normal((None, 4))

    with pytest.raises(ValueError, match="batch"):
        Bad()(keras.Input((4,)))


def test_data_only_draws_refuse_a_trace():
    class Bad(keras.layers.Layer):
        def call(self, x):
            return x + R.truncated_normal((4,))

    with pytest.raises(NotImplementedError, match="truncated_normal"):
        Bad()(keras.Input((4,)))


def test_noise_in_a_model_is_new_at_every_inference_run_and_training_stays_repeatable():
    class Noise(pynn.layers.Layer):
        def call(self, x):
            return x + pynn.random.normal(shape=pynn.ops.shape(x))

    def run(extra_predicts):
        pynn.utils.set_random_seed(5)
        model = pynn.Sequential([pynn.Input(shape=(4,)), Noise(), pynn.layers.Dense(1)])
        model.compile("sgd", "mse")
        x = np.zeros((8, 4), np.float32)
        predictions = [model.predict(x, verbose=0) for _ in range(extra_predicts)]
        model.fit(x, np.ones((8, 1)), epochs=2, verbose=0)
        return predictions, model.get_weights()

    (a, b), w_after_predicts = run(2)
    assert not np.allclose(a, b)  # a VAE's sampling draws anew in each predict, as in Keras
    _, w_straight = run(0)
    for u, v in zip(w_after_predicts, w_straight):  # predict does not shift training's noise
        np.testing.assert_array_equal(u, v)
