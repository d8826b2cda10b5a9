"""sample_weight and class_weight: each sample's loss weighed, the mean kept over all samples
(Keras's "sum over batch size"); checked against PyTorch and against each other."""

import numpy as np
import pytest

import pynn
from pynn import layers

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(0)
X = RNG.standard_normal((40, 5)).astype(np.float32)
Y = RNG.integers(0, 3, 40).astype(np.int32)
W = RNG.uniform(0, 2, 40).astype(np.float32)


def classifier(seed=0):
    pynn.utils.set_random_seed(seed)
    model = pynn.Sequential([pynn.Input((5,)), layers.Dense(8, activation="tanh"),
                             layers.Dense(3, activation="softmax")])
    model.compile(optimizer=pynn.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def test_weighted_fit_matches_pytorch():
    model = classifier()
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    with torch.no_grad():
        for lin, layer in zip((net[0], net[2]), model.layers):
            lin.weight.copy_(torch.from_numpy(layer.kernel.numpy().T))
            lin.bias.copy_(torch.from_numpy(layer.bias.numpy()))
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    history = model.fit(X, Y, batch_size=10, epochs=2, shuffle=False, sample_weight=W, verbose=0)
    losses = []
    for _ in range(2):
        total = 0.0
        for s in range(0, 40, 10):
            opt.zero_grad()
            per = torch.nn.functional.cross_entropy(net(torch.from_numpy(X[s:s + 10])),
                                                    torch.from_numpy(Y[s:s + 10]).long(),
                                                    reduction="none")
            loss = (per * torch.from_numpy(W[s:s + 10])).sum() / 10
            loss.backward()
            opt.step()
            total += loss.item() * 10
        losses.append(total / 40)
    np.testing.assert_allclose(history.history["loss"], losses, rtol=1e-5)
    np.testing.assert_allclose(model.layers[0].kernel, net[0].weight.detach().numpy().T,
                               rtol=1e-4, atol=1e-6)


def test_class_weight_is_a_sample_weight_per_class():
    cw = {0: 0.5, 1: 2.0}  # class 2 is missing: weight 1, as Keras
    a, b = classifier(), classifier()
    a.fit(X, Y, batch_size=8, epochs=1, shuffle=False, class_weight=cw, verbose=0)
    by_hand = np.array([cw.get(int(c), 1.0) for c in Y], np.float32)
    b.fit(X, Y, batch_size=8, epochs=1, shuffle=False, sample_weight=by_hand, verbose=0)
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)
    # one-hot targets: the class is the argmax
    c = pynn.Sequential([pynn.Input((5,)), layers.Dense(3, activation="softmax")])
    c.compile(optimizer="sgd", loss="categorical_crossentropy")
    onehot = np.eye(3, dtype=np.float32)[Y]
    plain = c.evaluate(X, onehot, verbose=0)
    loss_w = c.train_on_batch(X, onehot, class_weight={0: 0.0, 1: 0.0, 2: 0.0})
    assert loss_w == 0.0 and plain > 0


def test_evaluate_weighs_the_loss_but_not_the_metrics():
    model = classifier()
    loss, acc = model.evaluate(X, Y, verbose=0)
    wloss, wacc = model.evaluate(X, Y, sample_weight=W, verbose=0)
    per = -np.log(model.predict(X, verbose=0)[np.arange(40), Y])
    assert wloss == pytest.approx(float((per * W).sum() / 40), rel=1e-5)
    assert loss == pytest.approx(float(per.mean()), rel=1e-5)
    assert wacc == acc
    zero = model.test_on_batch(X, Y, sample_weight=np.zeros(40))
    assert zero[0] == 0.0


def test_validation_data_takes_sample_weights_and_the_split_splits_them():
    model = classifier()
    h = model.fit(X, Y, epochs=1, validation_data=(X[:10], Y[:10], np.zeros(10)), verbose=0)
    assert h.history["val_loss"] == [0.0]
    h = model.fit(X, Y, epochs=1, sample_weight=np.r_[np.ones(30), np.zeros(10)],
                  validation_split=0.25, verbose=0)
    assert h.history["val_loss"] == [0.0]


def test_several_outputs_take_a_weight_array_per_output():
    pynn.utils.set_random_seed(1)
    x = pynn.Input((5,))
    h = layers.Dense(4)(x)
    model = pynn.Model(x, [layers.Dense(2, name="a")(h), layers.Dense(1, name="b")(h)])
    model.compile(optimizer="sgd", loss=["mse", "mse"])
    ya, yb = RNG.standard_normal((40, 2)), RNG.standard_normal((40, 1))
    total, la, lb = model.evaluate(X, [ya, yb], verbose=0)
    t2, la2, lb2 = model.evaluate(X, [ya, yb], sample_weight={"a": np.zeros(40), "b": None},
                                  verbose=0)
    assert la2 == 0.0 and lb2 == pytest.approx(lb, rel=1e-6) and t2 == pytest.approx(lb, rel=1e-6)


@pytest.mark.parametrize("kwargs,match", [
    ({"sample_weight": np.ones(3)}, "3 weights for 40 samples"),
    ({"sample_weight": -np.ones(40)}, "finite and >= 0"),
    ({"sample_weight": np.full(40, np.nan)}, "finite and >= 0"),
    ({"class_weight": [1.0, 2.0]}, "must be a dict"),
    ({"class_weight": {0: -1.0}}, "finite and >= 0"),
])
def test_bad_weights_raise_clear_errors(kwargs, match):
    model = classifier()
    before = model.get_weights()
    with pytest.raises(ValueError, match=match):
        model.fit(X, Y, epochs=1, verbose=0, **kwargs)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_class_weight_needs_one_output():
    x = pynn.Input((5,))
    model = pynn.Model(x, [layers.Dense(2)(x), layers.Dense(2)(x)])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="single output"):
        model.fit(X, [np.zeros((40, 2))] * 2, class_weight={0: 1.0}, verbose=0)
