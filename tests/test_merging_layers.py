"""The merging family beyond the core merge ops: Minimum, Dot (Keras's batch_dot, with and
without normalize) and Keras's functional forms (add, subtract, ..., dot). Values against NumPy,
shapes and errors as Keras 3 gives them, configs, saving, and gradients against finite
differences and PyTorch."""

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import core_gradients, grad_check

import pynn
from pynn import layers


def data(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def t64(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def ref_dot(x, y, axes, normalize=False):
    """Keras 3's Dot in NumPy (float64), checked against keras.layers.Dot: axes count the batch
    axis; x's free axes come first, then y's; one value per sample is (batch, 1)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if isinstance(axes, int):
        axes = (axes % x.ndim, axes % y.ndim) if axes < 0 else (axes, axes)
    a, b = axes[0] % x.ndim, axes[1] % y.ndim
    if normalize:
        x = x / np.maximum(np.sqrt((x * x).sum(a, keepdims=True)), 1e-7)
        y = y / np.maximum(np.sqrt((y * y).sum(b, keepdims=True)), 1e-7)
    xm, ym = np.moveaxis(x, a, -1), np.moveaxis(y, b, 1)
    out = xm.reshape(len(x), -1, xm.shape[-1]) @ ym.reshape(len(y), ym.shape[1], -1)
    out = out.reshape((len(x),) + xm.shape[1:-1] + ym.shape[2:])
    return out[:, None] if out.ndim == 1 else out


# (per-sample shape of x, of y, axes, output shape as keras.layers.Dot gives it)
DOT_CASES = [
    ((4,), (4,), 1, (None, 1)),
    ((4,), (4,), -1, (None, 1)),
    ((4, 3), (5, 3), 2, (None, 4, 5)),
    ((4, 3), (5, 3), -1, (None, 4, 5)),
    ((4, 3), (4, 5), 1, (None, 3, 5)),
    ((4,), (2, 4), (1, 2), (None, 2)),
    ((2, 4), (4,), (2, 1), (None, 2)),
    ((2, 3, 4), (4, 5, 6), (-1, 1), (None, 2, 3, 5, 6)),
    ((3, 4), (5, 3), (1, -1), (None, 4, 5)),
    ((3, 4), (3,), (1, 1), (None, 4)),
    ((3,), (5, 3), [1, -1], (None, 5)),
]
DOT_IDS = [f"{x}.{y}.axes{a}" for x, y, a, _ in DOT_CASES]


def names_ok(layer, base):
    return re.fullmatch(rf"{base}(_\d+)?", layer.name) is not None


# -- Minimum --------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 3, 5])
def test_minimum_on_data_matches_numpy(n):
    xs = [data((3, 4, 2), seed=k) for k in range(n)]
    out = layers.Minimum()(xs)
    np.testing.assert_array_equal(np.asarray(out), np.minimum.reduce(xs))


def test_minimum_in_a_model_predicts_like_numpy_and_keeps_the_shape():
    a, b = pynn.Input(shape=(3, 2)), pynn.Input(shape=(3, 2))
    out = layers.Minimum()([a, b])
    assert out.shape == (None, 3, 2)
    m = pynn.Model([a, b], out)
    x1, x2 = data((5, 3, 2), 1), data((5, 3, 2), 2)
    np.testing.assert_array_equal(m.predict([x1, x2], verbose=0), np.minimum(x1, x2))


def test_minimum_gives_a_tie_gradient_to_the_first_input_as_maximum_does():
    x1 = pynn.Tensor(np.array([[1.0, 2.0, 3.0]], np.float32), requires_grad=True)
    x2 = pynn.Tensor(np.array([[1.0, 5.0, 0.0]], np.float32), requires_grad=True)
    pynn.ops.sum(layers.Minimum()([x1, x2])).backward()
    np.testing.assert_array_equal(x1.grad, [[1, 1, 0]])
    np.testing.assert_array_equal(x2.grad, [[0, 0, 1]])


def test_minimum_config_name_and_output_shape():
    layer = layers.Minimum()
    assert names_ok(layer, "minimum")
    assert layer.get_config() == {"name": layer.name, "trainable": True}
    again = layers.Minimum.from_config(layer.get_config())
    assert again.get_config() == layer.get_config()
    assert layer.compute_output_shape([(None, 3, 4), (None, 3, 4)]) == (None, 3, 4)


# -- Dot: values and shapes -----------------------------------------------------------------------
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("s1, s2, axes, want", DOT_CASES, ids=DOT_IDS)
def test_dot_on_data_matches_keras_batch_dot(s1, s2, axes, want, normalize):
    x, y = data((3,) + s1, 1), data((3,) + s2, 2)
    out = np.asarray(layers.Dot(axes, normalize=normalize)([x, y]))
    assert out.shape == (3,) + want[1:]
    np.testing.assert_allclose(out, ref_dot(x, y, axes, normalize), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("s1, s2, axes, want", DOT_CASES, ids=DOT_IDS)
def test_dot_in_a_model_has_keras_shape_and_values(s1, s2, axes, want):
    a, b = pynn.Input(shape=s1), pynn.Input(shape=s2)
    layer = layers.Dot(axes)
    out = layer([a, b])
    assert out.shape == want
    assert layer.compute_output_shape([(None,) + s1, (None,) + s2]) == want
    x, y = data((4,) + s1, 3), data((4,) + s2, 4)
    np.testing.assert_allclose(pynn.Model([a, b], out).predict([x, y], verbose=0),
                               ref_dot(x, y, axes), rtol=1e-5, atol=1e-5)


def test_dot_gives_the_value_of_keras_docstring_example():
    x = np.arange(10, dtype=np.float32).reshape(1, 5, 2)
    y = np.arange(10, 20, dtype=np.float32).reshape(1, 2, 5)
    np.testing.assert_array_equal(np.asarray(layers.Dot(axes=(1, 2))([x, y])),
                                  [[[260, 360], [320, 445]]])


def test_dot_normalize_gives_the_cosine_similarity_and_zero_for_a_zero_vector():
    x, y = data((4, 6), 1), data((4, 6), 2)
    cos = F.cosine_similarity(t64(x), t64(y), dim=1).numpy()[:, None]
    np.testing.assert_allclose(np.asarray(layers.Dot(1, normalize=True)([x, y])), cos,
                               rtol=1e-5, atol=1e-6)
    x[0] = 0.0
    assert np.asarray(layers.Dot(1, normalize=True)([x, y]))[0, 0] == 0.0


def test_dot_with_data_given_lengths_follows_the_data():
    a, b = pynn.Input(shape=(None, 3)), pynn.Input(shape=(None, 3))
    out = layers.Dot(axes=2)([a, b])
    assert out.shape == (None, None, None)
    m = pynn.Model([a, b], out)
    x, y = data((2, 4, 3), 1), data((2, 6, 3), 2)
    np.testing.assert_allclose(m.predict([x, y], verbose=0), np.einsum("bik,bjk->bij", x, y),
                               rtol=1e-5, atol=1e-6)


def test_dot_config_keeps_keras_keys_and_round_trips():
    layer = layers.Dot(axes=(1, 2), normalize=True)
    assert names_ok(layer, "dot")
    config = layer.get_config()
    assert config == {"name": layer.name, "trainable": True, "axes": (1, 2), "normalize": True}
    again = layers.Dot.from_config(config)
    assert again.get_config() == config
    assert layers.Dot(-1).get_config()["axes"] == -1
    assert layers.Dot(-1).get_config()["normalize"] is False


# -- gradients: finite differences and PyTorch ----------------------------------------------------
def two_branches(shape, units1, units2, seed):
    pynn.utils.set_random_seed(seed)
    x = pynn.Input(shape=shape)
    d1, d2 = layers.Dense(units1), layers.Dense(units2)
    return x, d1, d2, d1(x), d2(x)


def test_minimum_gradients_match_finite_differences():
    x, d1, d2, h1, h2 = two_branches((3, 4), 5, 5, seed=1)
    d3 = layers.Dense(2)
    m = pynn.Model(x, d3(layers.Minimum()([h1, h2, layers.Dense(5)(x)])))
    m.compile(optimizer="sgd", loss="mse")
    xs = data((2, 3, 4), 6)
    parts = [np.asarray(layer(xs)) for layer in m.layers[1:4]]
    srt = np.sort(np.stack(parts), axis=0)
    assert np.min(srt[1] - srt[0]) > 0.05  # no near-ties, where finite differences break
    grad_check(m, xs, data((2, 3, 2), 6))


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("axes", [1, 2, (2, 1)])
def test_dot_gradients_match_finite_differences(axes, normalize):
    x, _, _, h1, h2 = two_branches((3, 4), 3, 3, seed=2)
    out = layers.Flatten()(layers.Dot(axes, normalize=normalize)([h1, h2]))
    m = pynn.Model(x, layers.Dense(2)(out))
    m.compile(optimizer="sgd", loss="mse")
    grad_check(m, data((2, 3, 4), 7), data((2, 2), 8))


def check_against_torch(m, torch_fn, x, y):
    """pynn's prediction, mse loss and gradients (input, then each weight in the model's order)
    against torch_fn(x as a float64 leaf) -> (output, leaf weights in that order)."""
    xt = t64(x, True)
    out, leaves = torch_fn(xt)
    loss = ((out - t64(y)) ** 2).mean()
    loss.backward()
    np.testing.assert_allclose(m.predict(x, verbose=0), out.detach().numpy(), rtol=1e-5,
                               atol=1e-5)
    pl, dx, grads = core_gradients(m, x, y)
    assert pl == pytest.approx(loss.item(), rel=1e-5)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-6)
    assert len(grads) == len(leaves)
    for g, leaf in zip(grads, leaves):
        np.testing.assert_allclose(g, leaf.grad.numpy(), rtol=1e-4, atol=1e-6)


def dense_t(layer, h):
    k, b = t64(layer.kernel, True), t64(layer.bias, True)
    return h @ k + b, [k, b]


def test_minimum_matches_torch_minimum():
    x, d1, d2, h1, h2 = two_branches((4,), 3, 3, seed=3)
    head = layers.Dense(2)
    m = pynn.Model(x, head(layers.minimum([h1, h2])))
    m.compile(optimizer="sgd", loss="mse")

    def torch_fn(xt):
        a, w1 = dense_t(d1, xt)
        b, w2 = dense_t(d2, xt)
        out, w3 = dense_t(head, torch.minimum(a, b))
        return out, w1 + w2 + w3
    check_against_torch(m, torch_fn, data((6, 4), 1), data((6, 2), 2))


@pytest.mark.parametrize("normalize", [False, True])
def test_dot_matches_torch_einsum(normalize):
    """Dot(axes=1) of (batch, 3, 4) and (batch, 3, 5): out[b, k, l] = sum_i x[b, i, k] y[b, i, l]
    (on the F.normalize'd inputs with normalize=True)."""
    x, d1, d2, h1, h2 = two_branches((3, 4), 4, 5, seed=4)
    head = layers.Dense(2)
    m = pynn.Model(x, head(layers.Flatten()(layers.dot([h1, h2], axes=1,
                                                      normalize=normalize))))
    m.compile(optimizer="sgd", loss="mse")

    def torch_fn(xt):
        a, w1 = dense_t(d1, xt)
        b, w2 = dense_t(d2, xt)
        if normalize:
            a, b = F.normalize(a, dim=1, eps=1e-7), F.normalize(b, dim=1, eps=1e-7)
        out, w3 = dense_t(head, torch.einsum("bik,bil->bkl", a, b).reshape(len(xt), -1))
        return out, w1 + w2 + w3
    check_against_torch(m, torch_fn, data((6, 3, 4), 1), data((6, 2), 2))


def test_models_with_minimum_and_dot_fit_and_reduce_the_loss():
    x, _, _, h1, h2 = two_branches((6,), 8, 8, seed=5)
    out = layers.Dense(1)(layers.Concatenate()([layers.Minimum()([h1, h2]),
                                                layers.Dot(1, normalize=True)([h1, h2])]))
    m = pynn.Model(x, out)
    m.compile(optimizer=pynn.optimizers.Adam(0.02), loss="mse")
    xs = data((64, 6), 1)
    ys = (xs[:, :1] * xs[:, 1:2]).astype(np.float32)
    history = m.fit(xs, ys, epochs=20, batch_size=16, verbose=0).history["loss"]
    assert history[-1] < 0.7 * history[0]


# -- saving ---------------------------------------------------------------------------------------
def test_a_model_with_minimum_and_dot_saves_and_loads(tmp_path):
    pynn.utils.set_random_seed(6)
    a, b = pynn.Input(shape=(4, 3)), pynn.Input(shape=(5, 3))
    scores = layers.Dot((2, 2), normalize=True, name="scores")([layers.Dense(3)(a), b])
    low = layers.minimum([layers.Dense(4)(layers.Flatten()(scores)),
                          layers.Dense(4)(layers.Flatten()(b))], name="low")
    m = pynn.Model([a, b], layers.dot([low, layers.Dense(4)(layers.Flatten()(a))], axes=-1))
    m.compile(optimizer="adam", loss="mse")
    xa, xb = data((6, 4, 3), 1), data((6, 5, 3), 2)
    m.fit([xa, xb], data((6, 1), 3), epochs=1, verbose=0)
    m.save(tmp_path / "m.keras")
    loaded = pynn.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict([xa, xb], verbose=0),
                                  m.predict([xa, xb], verbose=0))
    assert loaded.get_layer("scores").get_config() == {
        "name": "scores", "trainable": True, "axes": [2, 2], "normalize": True}
    assert isinstance(loaded.get_layer("low"), layers.Minimum)


# -- the functional forms -------------------------------------------------------------------------
FUNCTIONS = [
    (layers.add, layers.Add, {}, lambda a, b: a + b),
    (layers.subtract, layers.Subtract, {}, lambda a, b: a - b),
    (layers.multiply, layers.Multiply, {}, lambda a, b: a * b),
    (layers.average, layers.Average, {}, lambda a, b: (a + b) / 2),
    (layers.maximum, layers.Maximum, {}, np.maximum),
    (layers.minimum, layers.Minimum, {}, np.minimum),
    (layers.concatenate, layers.Concatenate, {"axis": 1}, lambda a, b: np.concatenate([a, b], 1)),
    (layers.dot, layers.Dot, {"axes": 2}, lambda a, b: np.einsum("bik,bjk->bij", a, b)),
]
FUNCTION_IDS = [f.__name__ for f, *_ in FUNCTIONS]


@pytest.mark.parametrize("fn, cls, kwargs, ref", FUNCTIONS, ids=FUNCTION_IDS)
def test_functional_form_on_data_matches_numpy(fn, cls, kwargs, ref):
    x1, x2 = data((2, 3, 4), 1), data((2, 3, 4), 2)
    np.testing.assert_allclose(np.asarray(fn([x1, x2], **kwargs)), ref(x1, x2), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("fn, cls, kwargs, ref", FUNCTIONS, ids=FUNCTION_IDS)
def test_functional_form_makes_its_layer_in_a_model(fn, cls, kwargs, ref):
    a, b = pynn.Input(shape=(3, 4)), pynn.Input(shape=(3, 4))
    out = fn([a, b], name=f"my_{fn.__name__}", **kwargs)
    assert isinstance(out._layer, cls) and out._layer.name == f"my_{fn.__name__}"
    assert out.shape == cls(**kwargs).compute_output_shape([(None, 3, 4), (None, 3, 4)])
    x1, x2 = data((2, 3, 4), 3), data((2, 3, 4), 4)
    np.testing.assert_allclose(pynn.Model([a, b], out).predict([x1, x2], verbose=0),
                               ref(x1, x2), rtol=1e-5, atol=1e-6)


def test_functional_forms_take_keras_defaults():
    x1, x2 = data((2, 3, 4), 1), data((2, 3, 4), 2)
    assert layers.concatenate([x1, x2]).shape == (2, 3, 8)  # axis=-1
    np.testing.assert_allclose(np.asarray(layers.dot([x1, x2])),  # axes=-1
                               np.einsum("bik,bjk->bij", x1, x2), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(layers.dot([x1[:, 0], x2[:, 0]], normalize=True)),
                               ref_dot(x1[:, 0], x2[:, 0], -1, True), rtol=1e-5, atol=1e-6)


def test_new_names_are_exported():
    from pynn.layers import merging
    for name in ("Minimum", "Dot", "add", "subtract", "multiply", "average", "maximum",
                 "minimum", "concatenate", "dot"):
        assert name in merging.__all__ and getattr(layers, name) is getattr(merging, name)


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("axes, exc", [
    ("a", TypeError), (1.5, TypeError), (None, TypeError), (True, TypeError),
    ((1, 2, 3), ValueError), ((1,), ValueError), ((1.0, 2), ValueError), ([1, "a"], ValueError),
])
def test_dot_refuses_bad_axes_as_keras_does(axes, exc):
    with pytest.raises(exc, match="axes"):
        layers.Dot(axes)


@pytest.mark.parametrize("build, match", [
    (lambda a, b, c: layers.Minimum()([a, b]), "same shape"),
    (lambda a, b, c: layers.Minimum()([a]), "at least 2 inputs"),
    (lambda a, b, c: layers.Minimum()(a), "list of tensors"),
    (lambda a, b, c: layers.Dot(1)([a, b]), r"differ in size: 4 \(axis 1 .*\) and 5"),
    (lambda a, b, c: layers.Dot((1, 2))([c, c]), r"differ in size: 4 \(axis 1 .*\) and 3"),
    (lambda a, b, c: layers.Dot(0)([a, a]), "batch axis"),
    (lambda a, b, c: layers.Dot((1, -3))([a, c]), "batch axis"),
    (lambda a, b, c: layers.Dot(3)([a, a]), "outside input 0's axes"),
    (lambda a, b, c: layers.Dot(1)([a, a, a]), "exactly 2 inputs"),
    (lambda a, b, c: layers.Dot(1)(a), "list of tensors"),
    (lambda a, b, c: layers.Dot(1)([a, np.ones((2, 4), np.float32)]), "a mix"),
])
def test_bad_calls_raise_clear_errors(build, match):
    a, b, c = pynn.Input(shape=(4,)), pynn.Input(shape=(5,)), pynn.Input(shape=(4, 3))
    with pytest.raises((ValueError, TypeError), match=match):
        build(a, b, c)


@pytest.mark.parametrize("layer", [layers.Minimum(), layers.Dot(1)], ids=["minimum", "dot"])
def test_calls_on_data_check_shapes_every_time(layer):
    x = data((2, 4))
    layer([x, x])  # built
    with pytest.raises(ValueError, match="same batch size"):
        layer([x, data((3, 4))])
    with pytest.raises(ValueError, match="same shape" if isinstance(layer, layers.Minimum)
                       else "differ in size"):
        layer([x, data((2, 1))])
    with pytest.raises(ValueError, match="list of tensors"):
        layer(x)


@pytest.mark.parametrize("cls", [layers.Add, layers.Subtract, layers.Multiply, layers.Average,
                                 layers.Maximum, layers.Minimum])
def test_elementwise_merges_refuse_mismatched_shapes(cls):
    with pytest.raises(ValueError, match=r"same shape, got \(None, 3\), \(None, 4\)"):
        cls()([pynn.Input(shape=(3,)), pynn.Input(shape=(4,))])
    with pytest.raises(ValueError, match="same shape"):
        cls()([data((2, 3)), data((2, 4))])
