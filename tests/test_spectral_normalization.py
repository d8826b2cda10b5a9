"""SpectralNormalization, Keras 3's wrapper: the core's spectral_norm op (power iteration,
vector_u written in training, 1 / sigma) scaling the wrapped layer's input.

The models of tests/keras_reference/spectral.py are compared with what Keras 3 (JAX) gave for
the same weights and data (spectral.npz): predictions, fit, evaluate, every weight after fit
(vector_u among them) and what a call on data with training=True assigns. The rest checks the
gradient (against the formula with u and v held, finite differences once the iteration has
converged, PyTorch's spectral_norm at convergence), configs, saving, and refusals."""

import os
import warnings

import numpy as np
import pytest
from helpers import (
    keras_reference_module,
    keras_reference_values,
    keras_values_now,
)

import pynn
from pynn import layers

SN = layers.SpectralNormalization


# ---- against Keras 3 -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def keras_run():
    mod = keras_reference_module("spectral")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mine = mod.run()
    return mine, keras_reference_values("spectral")


@pytest.mark.skipif(not os.environ.get("PYNN_KERAS_PYTHON"),
                    reason="set PYNN_KERAS_PYTHON to a Python with keras and jax")
def test_the_stored_keras_reference_is_what_keras_computes(tmp_path):
    """spectral.npz made again by Keras 3 now (PYNN_KERAS_PYTHON: a Python with keras and jax)
    equals the stored one: the comparisons below are against Keras itself."""
    fresh = keras_values_now("spectral", os.environ["PYNN_KERAS_PYTHON"], "jax",
                             tmp_path, timeout=600)
    stored = keras_reference_values("spectral")
    assert fresh.keys() == stored.keys()
    for k in stored:
        np.testing.assert_allclose(fresh[k], stored[k], rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("name", ["dense", "dense_iter3", "zero_kernel", "conv2d", "conv1d",
                                  "embedding", "embedding_int", "layer"])
def test_models_match_keras(keras_run, name):
    """Same weights, same data: predict, two epochs of fit (SGD or Adam), evaluate, every
    weight after fit (the kernel trained through W / sigma and left unassigned, vector_u
    written), then two calls on data with training=True (kernel and vector_u assigned), as
    Keras 3 computes them."""
    mine, ref = keras_run
    keys = sorted(k for k in ref if k.startswith(name + "/"))
    assert keys and set(keys) == {k for k in mine if k.startswith(name + "/")}
    for k in keys:
        np.testing.assert_allclose(mine[k], ref[k], rtol=2e-4, atol=2e-5, err_msg=k)


# ---- gradients -----------------------------------------------------------------------------

def _dense_model(power_iterations=1, units=3, gap=0.0, seed=0):
    rng = np.random.RandomState(seed)
    i = pynn.Input((5,))
    sn = SN(layers.Dense(units, activation="tanh"), power_iterations=power_iterations)
    model = pynn.Model(i, layers.Dense(2)(sn(i)))
    ws = [rng.uniform(-0.8, 0.8, w.shape).astype(np.float32) for w in model.get_weights()]
    # a rank-one part sets the largest singular value apart: many iterations then converge
    ws[0] += gap * np.outer(np.arange(5) - 2.0, np.arange(units) - 1.0).astype(np.float32)
    model.set_weights(ws)
    model.compile(optimizer=pynn.optimizers.SGD(0.1), loss="mse")
    return model, sn


def _data(seed=1):
    rng = np.random.RandomState(seed)
    return (rng.uniform(-1, 1, (6, 5)).astype(np.float32),
            rng.uniform(-1, 1, (6, 2)).astype(np.float32))


def _vid(sn, attr):
    return sn._var_ids[sn._weight_attrs.index(attr)]


def _power(kernel, u, iterations):
    """Keras's normalized_weights() in float64: (u, v, sigma)."""
    w = kernel.astype(np.float64).reshape(-1, kernel.shape[-1])
    u = u.astype(np.float64)
    for _ in range(iterations):
        v = u @ w.T
        v = v * min(1 / np.sqrt((v * v).sum()), 1e7)
        u = v @ w
        u = u * min(1 / np.sqrt((u * u).sum()), 1e7)
    return u, v, float((v @ w @ u.T)[0, 0])


@pytest.mark.parametrize("iterations", [1, 3])
def test_kernel_gradient_is_keras_formula_with_u_and_v_held(iterations):
    """The training gradient of W is G / sigma - sum(G W) / sigma^2 v^T u, with G the gradient
    of the same loss in W / sigma (a plain model with that kernel gives it) and u, v held
    (Keras's stop_gradient)."""
    model, sn = _dense_model(iterations)
    x, y = _data()
    kernel, u0 = sn.kernel.numpy(), sn.vector_u.numpy()
    u, v, sigma = _power(kernel, u0, iterations)
    core = model._core
    core.gradients(x, y)
    got = np.array(core.gradient(_vid(sn, "kernel")))
    np.testing.assert_allclose(sn.vector_u.numpy(), u, rtol=1e-5, atol=1e-7)  # written
    plain_i = pynn.Input((5,))
    plain = pynn.Model(plain_i, layers.Dense(2)(layers.Dense(3, activation="tanh")(plain_i)))
    k, u_, b, k2, b2 = model.get_weights()
    plain.set_weights([(kernel / sigma).astype(np.float32), b, k2, b2])
    plain.compile(optimizer="sgd", loss="mse")
    plain._core.gradients(x, y)
    G = np.array(plain._core.gradient(plain.layers[1]._var_ids[0]), np.float64)
    want = G / sigma - (G * kernel).sum() / sigma**2 * (v.T @ u)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_kernel_gradient_matches_finite_differences_once_converged():
    """Central differences of the training loss (vector_u put back before each forward, which
    writes it). They see u and v move with W, which the gradient leaves out; with the iteration
    converged sigma is stationary in them, and the two agree."""
    model, sn = _dense_model(power_iterations=60, gap=1.5)
    x, y = _data()
    core = model._core
    kid, uid = _vid(sn, "kernel"), _vid(sn, "vector_u")
    u0 = sn.vector_u.numpy()
    core.gradients(x, y)
    analytic = np.array(core.gradient(kid), np.float64).reshape(-1)

    def loss():
        core.write_variables([uid], [u0])
        return core.gradients(x, y)[0]

    w = core.variable(kid).reshape(-1)
    h = 2e-3
    for i in range(w.size):
        keep = w[i]
        w[i] = keep + h
        lp = loss()
        w[i] = keep - h
        lm = loss()
        w[i] = keep
        assert (lp - lm) / (2 * h) == pytest.approx(analytic[i], abs=2e-3), f"entry {i}"


def test_training_matches_pytorch_spectral_norm_at_convergence():
    """torch.nn.utils.parametrizations.spectral_norm iterates u from v (Keras v from u) and
    keeps both, so one step of each differs; converged, both give W's largest singular value,
    and the training loss and gradients agree with a float64 PyTorch replica."""
    torch = pytest.importorskip("torch")
    rng = np.random.RandomState(3)
    x = rng.uniform(-1, 1, (8, 5)).astype(np.float32)
    y = rng.uniform(-1, 1, (8, 3)).astype(np.float32)
    i = pynn.Input((5,))
    sn = SN(layers.Dense(3), power_iterations=60)
    model = pynn.Model(i, sn(i))
    model.set_weights([rng.uniform(-1, 1, w.shape).astype(np.float32) for w in model.weights])
    model.compile(optimizer="sgd", loss="mse")
    kernel, _, bias = model.get_weights()
    lin = torch.nn.Linear(5, 3).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(kernel.T))
        lin.bias.copy_(torch.tensor(bias))
    tsn = torch.nn.utils.parametrizations.spectral_norm(lin, n_power_iterations=60).train()
    tloss = ((tsn(torch.tensor(x, dtype=torch.float64)) - torch.tensor(y, dtype=torch.float64))
             ** 2).mean()
    tloss.backward()
    loss, _ = model._core.gradients(x, y)
    assert loss == pytest.approx(tloss.item(), rel=1e-5)
    np.testing.assert_allclose(model._core.gradient(_vid(sn, "kernel")),
                               tsn.parametrizations.weight.original.grad.numpy().T,
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model._core.gradient(_vid(sn, "bias")), lin.bias.grad.numpy(),
                               rtol=1e-4, atol=1e-6)


# ---- training, inference and calls on data -------------------------------------------------

def test_inference_runs_the_layer_as_it_is_and_writes_nothing():
    model, sn = _dense_model()
    x, y = _data()
    before = model.get_weights()
    out = model.predict(x, verbose=0)
    model.evaluate(x, y, verbose=0)
    np.asarray(model(x))
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    k, _, b, k2, b2 = before
    np.testing.assert_allclose(out, np.tanh(x @ k + b) @ k2 + b2, rtol=1e-5, atol=1e-6)


def test_fit_writes_vector_u_each_step():
    """Each step starts its power iteration from the u the step before wrote."""
    model, sn = _dense_model()
    x, y = _data()
    u = sn.vector_u.numpy()
    for _ in range(3):
        kernel = sn.kernel.numpy()
        model.train_on_batch(x, y)
        u, _, _ = _power(kernel, u, 1)
        np.testing.assert_allclose(sn.vector_u.numpy(), u, rtol=1e-5, atol=1e-7)


def test_a_model_called_in_training_equals_the_layer_called_on_data():
    """model(x, training=True) (the core's eager plan) and the layer called on data (pynn.ops)
    both assign W / sigma to the kernel and the new u to vector_u, and output the same."""
    model, sn = _dense_model(power_iterations=2)
    x, _ = _data()
    start = model.get_weights()
    out_model = np.asarray(model(x, training=True))
    after_model = model.get_weights()
    model.set_weights(start)
    h = np.asarray(sn(x, training=True))
    out_layer = np.asarray(model.layers[-1](h))
    for a, b in zip(after_model, model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out_model, out_layer, rtol=1e-5, atol=1e-6)
    u, _, sigma = _power(start[0], start[1], 2)
    np.testing.assert_allclose(after_model[0], start[0] / sigma, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(after_model[1], u, rtol=1e-5, atol=1e-7)


def test_gradient_tape_reaches_the_assigned_kernel():
    """Under a GradientTape (a custom training loop) the layer reads the assigned kernel, so
    the kernel's gradient is the layer's own, as Keras's TensorFlow and PyTorch backends give."""
    model, sn = _dense_model()
    x, y = _data()
    with pynn.GradientTape() as tape:
        loss = pynn.ops.mean(pynn.ops.square(model(x, training=True) - y))
    grads = tape.gradient(loss, model.trainable_weights)
    kernel, _, b, k2, b2 = model.get_weights()  # kernel: the assigned W / sigma
    h = np.tanh(x @ kernel + b)
    dz = (2 * (h @ k2 + b2 - y) / y.size) @ k2.T * (1 - h * h)
    np.testing.assert_allclose(grads[0], x.T @ dz, rtol=1e-4, atol=1e-6)


def test_sequential_fit_and_predict():
    model = pynn.Sequential([pynn.Input((6, 6, 2)),
                             SN(layers.Conv2D(3, 3, activation="relu"), power_iterations=2),
                             layers.Flatten(), SN(layers.Dense(2))])
    rng = np.random.RandomState(0)
    x = rng.rand(8, 6, 6, 2).astype(np.float32)
    y = rng.rand(8, 2).astype(np.float32)
    model.compile(optimizer="adam", loss="mse")
    u = [layer.vector_u.numpy() for layer in (model.layers[0], model.layers[2])]
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    for before, layer in zip(u, (model.layers[0], model.layers[2])):
        assert not np.allclose(before, layer.vector_u.numpy())
    assert model.predict(x, verbose=0).shape == (8, 2)


# ---- weights, configs, saving ----------------------------------------------------------------

def test_weights_names_and_order_are_keras():
    i = pynn.Input((4, 4, 2))
    sn = SN(layers.Conv2D(3, 2, name="conv"), name="sn")
    pynn.Model(i, sn(i))
    assert [w.path for w in sn.weights] == ["sn/conv/kernel", "sn/vector_u", "sn/conv/bias"]
    assert [w.path for w in sn.trainable_weights] == ["sn/conv/kernel", "sn/conv/bias"]
    assert [w.path for w in sn.non_trainable_weights] == ["sn/vector_u"]
    assert sn.vector_u.shape == (1, 3) and sn.kernel_shape == (2, 2, 2, 3)
    assert sn.kernel is sn.weights[0]
    e = SN(layers.Embedding(10, 3, name="emb"), name="sne")
    e.build((None, 5))
    assert [w.path for w in e.weights] == ["sne/emb/embeddings", "sne/vector_u"]
    assert e.kernel is e.weights[0]


def test_vector_u_starts_from_a_truncated_normal():
    pynn.utils.set_random_seed(0)
    sn = SN(layers.Dense(4000))
    sn.build((None, 3))
    u = sn.vector_u.numpy()
    assert abs(u.std() - 0.02 * 0.8796) < 1e-3 and np.abs(u).max() <= 0.04


def test_config_round_trip():
    sn = SN(layers.Dense(4, activation="relu", name="d"), power_iterations=3, name="s")
    config = sn.get_config()
    assert config["power_iterations"] == 3 and config["name"] == "s"
    assert config["layer"]["class_name"] == "Dense"
    again = SN.from_config(config)
    assert again.power_iterations == 3 and isinstance(again.layer, layers.Dense)
    assert again.layer.units == 4 and again.get_config() == config
    assert pynn.layers.deserialize(pynn.layers.serialize(sn)).get_config() == config


def test_save_and_load_keep_weights_and_training(tmp_path):
    model, sn = _dense_model(power_iterations=2)
    x, y = _data()
    model.fit(x, y, batch_size=3, epochs=1, verbose=0)
    model.save(tmp_path / "sn.keras")
    loaded = pynn.models.load_model(tmp_path / "sn.keras")
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert [w.path for w in loaded.weights] == [w.path for w in model.weights]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    model.fit(x, y, batch_size=3, epochs=1, shuffle=False, verbose=0)
    loaded.fit(x, y, batch_size=3, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


# ---- refusals ------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [0, -1])
def test_power_iterations_below_one_is_refused(value):
    with pytest.raises(ValueError, match="`power_iterations` should be greater than zero"):
        SN(layers.Dense(2), power_iterations=value)


@pytest.mark.parametrize("value", [True, 1.5, "2", None, 2**40])
def test_power_iterations_of_another_kind_is_refused(value):
    with pytest.raises(ValueError, match="power_iterations"):
        SN(layers.Dense(2), power_iterations=value)
    with pytest.raises(ValueError, match="power_iterations"):
        SN.from_config({"layer": pynn.layers.serialize(layers.Dense(2)),
                        "power_iterations": value})


def test_a_layer_without_a_kernel_is_refused_as_keras():
    for inner in (layers.BatchNormalization(), layers.LSTM(3), layers.Activation("relu")):
        shape = (None, 4, 3) if isinstance(inner, layers.LSTM) else (None, 3)
        with pytest.raises(ValueError, match="object has no attribute 'kernel' nor "
                                             "'embeddings'"):
            SN(inner)(pynn.Input(shape[1:]))
    with pytest.raises(ValueError, match="supported layer|must be a Layer"):
        SN(3)


def test_a_kernel_pynn_cannot_scale_is_refused_clearly():
    class Square(layers.Layer):
        def build(self, input_shape):
            self.kernel = self.add_weight((input_shape[-1], 2), name="kernel")

        def call(self, x):
            return pynn.ops.matmul(x * x, self.kernel)

    with pytest.raises(NotImplementedError, match="Dense, EinsumDense, the convolutions"):
        SN(Square())(pynn.Input((3,)))


def test_the_op_is_graph_only():
    """spectral_norm has no input to take a batch from: the layer called on data computes its
    power iteration with pynn.ops instead; the op run on values is refused."""
    from pynn import _core
    k = _core.leaf(np.ones((3, 2), np.float32), True)
    u = _core.leaf(np.ones((1, 2), np.float32), False)
    with pytest.raises(ValueError):
        _core.op("spectral_norm", [], [k, u], (1,), (1e-7,), True, 0, False)
