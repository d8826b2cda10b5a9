"""keras.mixed_precision: the float32 and mixed_bfloat16 policies. Under mixed_bfloat16 a
layer's matrix products read bfloat16-rounded inputs and weights and sum in float32, forward and
backward, on the AVX512-BF16 kernel where the CPU has it and on the emulation everywhere (both
checked here on any CPU); weights stay float32. The other policies are refused clearly."""

import numpy as np
import pytest

import pynn
from pynn import _core, layers, mixed_precision


@pytest.fixture(autouse=True)
def float32_after():
    yield
    mixed_precision.set_global_policy("float32")
    _core.cpu_disable("")


def bf16(a):
    """a rounded to bfloat16 (to nearest, ties to even), as float32"""
    u = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


KERNELS = ["kernel", "emulation"]


@pytest.fixture
def mnist_small():
    (x, y), (xt, yt) = pynn.datasets.mnist.load_data()
    prep = lambda a: (a[..., None] / 255.0).astype(np.float32)  # noqa: E731
    return (prep(x[:4000]), y[:4000]), (prep(xt[:1000]), yt[:1000])


def use(path):
    _core.cpu_disable("avx512_bf16" if path == "emulation" else "")


def test_policies_names_and_what_layers_take():
    assert mixed_precision.global_policy().name == "float32"
    assert mixed_precision.Policy is mixed_precision.DTypePolicy
    policy = mixed_precision.DTypePolicy("mixed_bfloat16")
    assert (policy.compute_dtype, policy.variable_dtype) == ("bfloat16", "float32")
    assert mixed_precision.DTypePolicy.from_config(policy.get_config()) == policy
    assert layers.Dense(2).compute_dtype == "float32"
    mixed_precision.set_global_policy("mixed_bfloat16")
    assert mixed_precision.global_policy() == policy
    dense = layers.Dense(2)
    assert (dense.compute_dtype, dense.variable_dtype, dense.dtype) == ("bfloat16", "float32",
                                                                         "float32")
    assert dense.dtype_policy == policy
    assert layers.Dense(2, dtype="float32").compute_dtype == "float32"  # its own dtype wins
    assert pynn.Input((3,)).dtype == "float32"  # an input's dtype is its data's
    config = dense.get_config()
    assert config["dtype"] == "mixed_bfloat16"
    mixed_precision.set_global_policy(None)
    assert layers.Dense.from_config(config).compute_dtype == "bfloat16"
    assert layers.Dense(2, dtype=policy).compute_dtype == "bfloat16"


@pytest.mark.parametrize("name", ["mixed_float16", "bfloat16", "float16"])
def test_policies_pynn_cannot_run_are_refused_not_ignored(name):
    with pytest.raises(NotImplementedError, match=name):
        mixed_precision.set_global_policy(name)
    with pytest.raises(NotImplementedError, match=name):
        layers.Dense(2, dtype=name)
    assert mixed_precision.global_policy().name == "float32"
    with pytest.raises(ValueError, match="unknown policy"):
        mixed_precision.DTypePolicy("mixed_int3")
    assert mixed_precision.LossScaleOptimizer is pynn.optimizers.LossScaleOptimizer


def dense_model(policy, units=40, features=64, seed=0):
    mixed_precision.set_global_policy(policy)
    pynn.utils.set_random_seed(seed)
    model = pynn.Sequential([pynn.Input((features,)), layers.Dense(units)])
    model.compile(optimizer=pynn.optimizers.SGD(0.5), loss="mse")
    return model


@pytest.mark.parametrize("path", KERNELS)
def test_dense_forward_and_backward_are_bfloat16_products_summed_in_float32(path):
    use(path)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 64)).astype(np.float32)
    y = rng.standard_normal((50, 40)).astype(np.float32)
    model = dense_model("mixed_bfloat16")
    w, b = (v.copy() for v in model.get_weights())
    got = model.predict(x, verbose=0)
    want = bf16(x).astype(np.float64) @ bf16(w) + b
    exact = x.astype(np.float64) @ w + b
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert np.abs(got - exact).max() > 1e-3  # float32 products would be this far from bf16's
    # one SGD step on the mean squared error: dW = bf16(x)^T bf16(dy), dy = 2 (p - y) / size
    model.train_on_batch(x, y)
    dy = 2 * (want - y) / y.size
    dw = bf16(x).astype(np.float64).T @ bf16(dy.astype(np.float32))
    np.testing.assert_allclose(model.get_weights()[0], w - 0.5 * dw, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.get_weights()[1], b - 0.5 * dy.sum(0), rtol=1e-5,
                               atol=1e-6)
    assert model.get_weights()[0].dtype == np.float32  # float32 masters


def test_kernel_and_emulation_agree_and_float32_layers_stay_float32():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 8, 8, 16)).astype(np.float32)
    outs = {}
    for policy, path in [("mixed_bfloat16", "kernel"), ("mixed_bfloat16", "emulation"),
                         ("float32", "kernel")]:
        use(path)
        mixed_precision.set_global_policy(policy)
        pynn.utils.set_random_seed(3)
        model = pynn.Sequential([pynn.Input((8, 8, 16)), layers.Conv2D(32, 3, padding="same"),
                                 layers.Flatten(), layers.Dense(10, dtype="float32")])
        outs[policy, path] = model.predict(x, verbose=0)
    np.testing.assert_allclose(outs["mixed_bfloat16", "kernel"],
                               outs["mixed_bfloat16", "emulation"], rtol=1e-4, atol=1e-4)
    diff = np.abs(outs["mixed_bfloat16", "kernel"] - outs["float32", "kernel"])
    assert 1e-4 < diff.max() < 0.1  # rounded, and only rounded


def test_a_layer_of_float32_in_a_mixed_model_computes_in_float32():
    x = np.random.default_rng(2).standard_normal((20, 64)).astype(np.float32)
    mixed_precision.set_global_policy("mixed_bfloat16")
    pynn.utils.set_random_seed(0)
    model = pynn.Sequential([pynn.Input((64,)), layers.Dense(40, dtype="float32")])
    w, b = model.get_weights()
    np.testing.assert_allclose(model.predict(x, verbose=0), x.astype(np.float64) @ w + b,
                               rtol=1e-5, atol=1e-5)


def test_ops_in_a_custom_layer_compute_in_that_layers_dtype():
    class Project(layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1], 40), initializer="glorot_uniform")

        def call(self, x):
            return pynn.ops.matmul(x, self.w)

    x = np.random.default_rng(3).standard_normal((20, 64)).astype(np.float32)
    for policy in ("mixed_bfloat16", "float32"):
        mixed_precision.set_global_policy("float32")
        pynn.utils.set_random_seed(0)
        inp = pynn.Input((64,))
        model = pynn.Model(inp, Project(dtype=policy)(inp))
        w = model.get_weights()[0]
        want = (bf16(x).astype(np.float64) @ bf16(w) if policy == "mixed_bfloat16"
                else x.astype(np.float64) @ w)
        np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)


def test_a_saved_mixed_model_loads_mixed(tmp_path):
    x = np.random.default_rng(4).standard_normal((10, 64)).astype(np.float32)
    model = dense_model("mixed_bfloat16")
    mixed_precision.set_global_policy("float32")
    model.save(tmp_path / "m.keras")
    back = pynn.saving.load_model(tmp_path / "m.keras")
    assert back.layers[0].compute_dtype == "bfloat16"
    np.testing.assert_array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))


def test_mnist_cnn_trains_as_well_in_mixed_bfloat16(mnist_small):
    """A quick version of the acceptance run (the full one is the CNN benchmark's)."""
    (x, y), (xt, yt) = mnist_small
    scores = {}
    for policy in ("float32", "mixed_bfloat16"):
        mixed_precision.set_global_policy(policy)
        pynn.utils.set_random_seed(0)
        model = pynn.Sequential([
            pynn.Input((28, 28, 1)), layers.Conv2D(16, 3, activation="relu"),
            layers.MaxPooling2D(), layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(), layers.Flatten(), layers.Dense(64, activation="relu"),
            layers.Dense(10, activation="softmax", dtype="float32")])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, batch_size=64, epochs=2, verbose=0)
        scores[policy] = model.evaluate(xt, yt, verbose=0)
    print(scores)
    assert scores["float32"][1] > 0.85
    assert abs(scores["mixed_bfloat16"][1] - scores["float32"][1]) < 0.02
    assert abs(scores["mixed_bfloat16"][0] - scores["float32"][0]) < 0.05


def test_a_mixed_layer_called_on_data_rounds_forward_and_backward():
    mixed_precision.set_global_policy("mixed_bfloat16")
    x = np.random.default_rng(5).standard_normal((70, 64)).astype(np.float32)
    dense = layers.Dense(40)
    out = np.asarray(dense(x))
    w, b = dense.get_weights()
    np.testing.assert_allclose(out, bf16(x).astype(np.float64) @ bf16(w) + b, rtol=1e-5,
                               atol=1e-5)
    g = np.random.default_rng(6).standard_normal((70, 40)).astype(np.float32)
    with pynn.GradientTape() as tape:
        loss = pynn.ops.sum(dense(x) * g)
    dw, db = tape.gradient(loss, dense.trainable_weights)
    np.testing.assert_allclose(np.asarray(dw), bf16(x).astype(np.float64).T @ bf16(g),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(db), g.sum(0), rtol=1e-5, atol=1e-5)
