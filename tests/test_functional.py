"""The functional API: Model(inputs, outputs) over layer calls, merges, shared layers, diamonds;
outputs and gradients against PyTorch computing the same graph."""

import numpy as np
import pytest
import torch
from helpers import core_gradients

import pynn
from pynn import layers


def data(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def t64(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def compiled(x, y):
    m = pynn.Model(x, y)
    m.compile(optimizer="sgd", loss="mse")
    return m


def dense_t(layer, h):
    """A pynn Dense in torch, with its weights as leaf tensors (kernel, bias)."""
    k, b = t64(layer.kernel, True), t64(layer.bias, True)
    return h @ k + b, [k, b]


def check_against(m, torch_fn, x, y, weights_in_order):
    """pynn's prediction, loss and gradients against torch_fn(x) -> (output, leaf weights)."""
    xt = t64(x, True)
    out, leaves = torch_fn(xt)
    loss = ((out - t64(y)) ** 2).mean()
    loss.backward()
    np.testing.assert_allclose(m.predict(x, verbose=0), out.detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    pl, dx, grads = core_gradients(m, x, y)
    assert pl == pytest.approx(loss.item(), rel=1e-5)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-6)
    want = {id(w): g for w, g in zip(weights_in_order, grads)}
    assert len(grads) == len(leaves)
    for w, leaf in zip(weights_in_order, leaves):
        np.testing.assert_allclose(want[id(w)], leaf.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_a_chain_of_calls_equals_the_same_sequential_model():
    pynn.utils.set_random_seed(1)
    x = pynn.Input(shape=(5,))
    f = compiled(x, layers.Dense(2)(layers.Dense(4, activation="tanh")(x)))
    s = pynn.Sequential([pynn.Input(shape=(5,)), layers.Dense(4, activation="tanh"),
                         layers.Dense(2)])
    s.compile(optimizer="sgd", loss="mse")
    s.set_weights(f.get_weights())
    xs, ys = data((16, 5)), data((16, 2), 1)
    np.testing.assert_allclose(f.predict(xs, verbose=0), s.predict(xs, verbose=0), rtol=1e-6)
    f.fit(xs, ys, batch_size=4, epochs=2, shuffle=False, verbose=0)
    s.fit(xs, ys, batch_size=4, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(f.get_weights(), s.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


MERGES = {
    "add": (layers.Add, lambda a, b: a + b),
    "subtract": (layers.Subtract, lambda a, b: a - b),
    "multiply": (layers.Multiply, lambda a, b: a * b),
    "average": (layers.Average, lambda a, b: (a + b) / 2),
    "maximum": (layers.Maximum, torch.maximum),
    "concatenate": (layers.Concatenate, lambda a, b: torch.cat([a, b], -1)),
}


@pytest.mark.parametrize("cls, fn", MERGES.values(), ids=MERGES.keys())
def test_merge_of_two_branches_matches_torch(cls, fn):
    pynn.utils.set_random_seed(2)
    x = pynn.Input(shape=(4,))
    d1, d2 = layers.Dense(3), layers.Dense(3)
    merged = cls()([d1(x), d2(x)])
    head = layers.Dense(2)
    m = compiled(x, head(merged))

    def torch_fn(xt):
        a, w1 = dense_t(d1, xt)
        b, w2 = dense_t(d2, xt)
        out, w3 = dense_t(head, fn(a, b))
        return out, w1 + w2 + w3
    order = [d1.kernel, d1.bias, d2.kernel, d2.bias, head.kernel, head.bias]
    check_against(m, torch_fn, data((6, 4)), data((6, 2), 1), order)


def test_a_diamond_adds_both_gradients_of_the_shared_tensor():
    """h feeds two branches that meet again: dloss/dh is the sum of both paths'."""
    pynn.utils.set_random_seed(3)
    x = pynn.Input(shape=(4,))
    d0, d1, d2 = layers.Dense(5, activation="tanh"), layers.Dense(5), layers.Dense(5)
    h = d0(x)
    m = compiled(x, layers.Add()([h, layers.Multiply()([d1(h), d2(h)])]))

    def torch_fn(xt):
        hh, w0 = dense_t(d0, xt)
        hh = torch.tanh(hh)
        a, w1 = dense_t(d1, hh)
        b, w2 = dense_t(d2, hh)
        return hh + a * b, w0 + w1 + w2
    order = [d0.kernel, d0.bias, d1.kernel, d1.bias, d2.kernel, d2.bias]
    check_against(m, torch_fn, data((6, 4)), data((6, 5), 1), order)


def test_a_layer_called_twice_shares_its_weights():
    pynn.utils.set_random_seed(4)
    x = pynn.Input(shape=(4,))
    shared = layers.Dense(4, activation="tanh")
    m = compiled(x, shared(shared(x)))
    assert len(m.weights) == 2 and m.count_params() == 20

    def torch_fn(xt):
        k, b = t64(shared.kernel, True), t64(shared.bias, True)
        return torch.tanh(torch.tanh(xt @ k + b) @ k + b), [k, b]
    check_against(m, torch_fn, data((6, 4)), data((6, 4), 1), [shared.kernel, shared.bias])


def test_concatenate_on_a_middle_axis_matches_numpy():
    x = pynn.Input(shape=(3, 4))
    a, b = layers.Dense(2)(x), layers.Dense(2)(x)
    m = pynn.Model(x, layers.Concatenate(axis=1)([a, b]))
    assert m.output_shape == (None, 6, 2)
    xs = data((2, 3, 4))
    ka, ba = m.layers[1].kernel, m.layers[1].bias
    kb, bb = m.layers[2].kernel, m.layers[2].bias
    want = np.concatenate([xs @ ka + ba, xs @ kb + bb], axis=1)
    np.testing.assert_allclose(m.predict(xs, verbose=0), want, rtol=1e-5, atol=1e-6)


def test_summary_shows_what_each_layer_is_connected_to(capsys):
    x = pynn.Input(shape=(4,), name="features")
    a = layers.Dense(3, name="left")(x)
    b = layers.Dense(3, name="right")(x)
    pynn.Model(x, layers.Add(name="join")([a, b])).summary()
    out = capsys.readouterr().out
    assert "Connected to" in out
    join = next(line for line in out.splitlines() if "join (Add)" in line)
    assert "left[0][0]" in join and "right[0][0]" in join
    assert "Total params: 30" in out


def test_functional_model_fits_evaluates_and_predicts():
    pynn.utils.set_random_seed(5)
    x = pynn.Input(shape=(2,))
    h = layers.Dense(8, activation="relu")(x)
    out = layers.Dense(1, activation="sigmoid")(layers.Concatenate()([h, x]))
    m = pynn.Model(inputs=x, outputs=out, name="clf")
    m.compile(optimizer=pynn.optimizers.Adam(0.05), loss="binary_crossentropy",
              metrics=["accuracy"])
    xs = np.random.default_rng(0).random((256, 2)).astype(np.float32)
    ys = (xs.sum(1) > 1.0).astype(np.float32)
    history = m.fit(xs, ys, epochs=30, batch_size=32, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}
    assert m.evaluate(xs, ys, verbose=0)[1] > 0.9
    assert m.predict(xs[:3], verbose=0).shape == (3, 1) and m.name == "clf"


@pytest.mark.parametrize("build, exc, match", [
    (lambda x: pynn.Model(x, layers.Dense(2)(pynn.Input(shape=(4,)))), ValueError,
     "not the model's input"),
    (lambda x: pynn.Model(x, x), ValueError, "at least one layer"),
    (lambda x: pynn.Model([x, pynn.Input(shape=(4,))], layers.Dense(1)(x)), ValueError,
     "is not used: no output depends on it"),
    (lambda x: layers.Add()([layers.Dense(2)(x), layers.Dense(3)(x)]), ValueError,
     "same shape"),
    (lambda x: layers.Concatenate(axis=0)([x, x]), ValueError, "batch axis"),
    (lambda x: layers.Subtract()([x, x, x]), ValueError, "exactly 2"),
    (lambda x: layers.Add()(x), ValueError, "list of tensors"),
    (lambda x: layers.Add()([x, np.ones((1, 4), np.float32)]), TypeError, "a mix"),
])
def test_bad_graphs_raise_clear_errors(build, exc, match):
    with pytest.raises(exc, match=match):
        build(pynn.Input(shape=(4,)))


def test_a_model_nested_in_another_shares_its_layers_and_stays_consistent():
    pynn.utils.set_random_seed(6)
    xi = pynn.Input(shape=(4,))
    inner = pynn.Model(xi, layers.Dense(3, activation="tanh")(xi), name="inner")
    stack = pynn.Sequential([pynn.Input(shape=(3,)), layers.Dense(2)], name="stack")
    x = pynn.Input(shape=(4,))
    outer = pynn.Model(x, stack(inner(x)))
    outer.compile(optimizer=pynn.optimizers.SGD(0.1), loss="mse")
    assert len(outer.weights) == 4
    xs, ys = data((8, 4)), data((8, 2), 1)
    before = inner.get_weights()
    outer.fit(xs, ys, batch_size=8, epochs=3, verbose=0)
    after = inner.get_weights()
    assert not np.allclose(before[0], after[0])  # outer's training moved inner's weights
    # the nested models compute with the trained weights, and outer = stack(inner)
    np.testing.assert_allclose(stack.predict(inner.predict(xs, verbose=0), verbose=0),
                               outer.predict(xs, verbose=0), rtol=1e-5, atol=1e-6)
    inner.summary()  # rebuilt on its next use
    np.testing.assert_allclose(outer.predict(xs, verbose=0),
                               np.tanh(xs @ after[0] + after[1]) @ stack.get_weights()[0]
                               + stack.get_weights()[1], rtol=1e-5, atol=1e-6)
