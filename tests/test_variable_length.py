"""Inputs whose lengths come from the data: Input(shape=(None,)), Input(shape=(None, F)) (issue
16). The model keeps its graph with None dims; its one core holds a graph per input shape seen
(the last few, least recently used dropped first) over one set of weights, optimizer state and
random stream."""

import numpy as np
import pytest

import pynn
from pynn import layers, ops


def _imdb_like(seed=0):
    pynn.utils.set_random_seed(seed)
    inputs = pynn.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(50, 8)(inputs)
    x = layers.Bidirectional(layers.LSTM(6, return_sequences=True))(x)
    x = layers.Bidirectional(layers.LSTM(6))(x)
    model = pynn.Model(inputs, layers.Dense(1, activation="sigmoid")(x))
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    return model


def _tokens(n, length, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(1, 50, (n, length)), rng.integers(0, 2, n)


def test_a_functional_model_with_a_none_length_runs_any_length():
    model = _imdb_like()
    assert model.input_shape == (None, None) and model.output_shape == (None, 1)
    x, y = _tokens(32, 12, 0)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    for length in (1, 5, 40):
        out = model.predict(_tokens(3, length, 1)[0], verbose=0)
        assert out.shape == (3, 1) and np.isfinite(out).all()


def test_switching_lengths_keeps_weights_optimizer_state_and_steps():
    # one model trains straight on; its twin predicts on other lengths between the epochs:
    # both must end with the same weights (nothing of the training state is lost on a switch)
    x, y = _tokens(32, 12, 0)
    straight, twin = _imdb_like(3), _imdb_like(3)
    twin.set_weights(straight.get_weights())
    for model, detour in ((straight, False), (twin, True)):
        model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
        if detour:
            model.predict(_tokens(4, 7, 2)[0], verbose=0)
            model.evaluate(*_tokens(4, 20, 3), verbose=0)
        model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    assert int(twin.optimizer.iterations) == int(straight.optimizer.iterations) == 8
    for a, b in zip(straight.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_the_same_weights_give_what_a_fixed_length_model_gives():
    dynamic = _imdb_like(4)
    inputs = pynn.Input(shape=(9,), dtype="int32")
    x = layers.Embedding(50, 8)(inputs)
    x = layers.Bidirectional(layers.LSTM(6, return_sequences=True))(x)
    x = layers.Bidirectional(layers.LSTM(6))(x)
    fixed = pynn.Model(inputs, layers.Dense(1, activation="sigmoid")(x))
    fixed.set_weights(dynamic.get_weights())
    data = _tokens(5, 9, 5)[0]
    np.testing.assert_allclose(dynamic.predict(data, verbose=0), fixed.predict(data, verbose=0),
                               rtol=1e-6)


def test_sequential_with_a_none_length_and_features():
    model = pynn.Sequential([pynn.Input(shape=(None, 3)), layers.GRU(4),
                             layers.Dense(2)])
    assert model.input_shape == (None, None, 3)
    model.compile("sgd", "mse")
    rng = np.random.default_rng(0)
    for length in (4, 9):
        model.fit(rng.random((8, length, 3)), rng.random((8, 2)), epochs=1, verbose=0)
    assert model.predict(rng.random((2, 6, 3)), verbose=0).shape == (2, 2)
    with pytest.raises(ValueError, match=r"\(None, None, 3\)"):
        model.predict(rng.random((2, 6, 4)), verbose=0)


def test_a_called_dynamic_model_records_on_the_tape():
    model = _imdb_like(6)
    x, y = _tokens(4, 7, 7)
    with pynn.GradientTape() as tape:
        loss = ops.mean(model(x, training=True))
    grads = tape.gradient(loss, model.trainable_weights)
    assert all(g is not None for g in grads)


class TokenAndPosition(layers.Layer):
    def __init__(self, maxlen, vocab, dim, **kwargs):
        super().__init__(**kwargs)
        self.tokens = layers.Embedding(vocab, dim)
        self.positions = layers.Embedding(maxlen, dim)

    def call(self, x):
        positions = ops.arange(start=0, stop=ops.shape(x)[-1], step=1)
        return self.tokens(x) + self.positions(positions)


class Centered(layers.Layer):
    def build(self, input_shape):
        self.gain = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    def call(self, x):
        return x * self.gain - ops.mean(x, axis=1, keepdims=True)


def _traced_model(length):
    pynn.utils.set_random_seed(8)
    inputs = pynn.Input(shape=(length,), dtype="int32")
    h = Centered()(TokenAndPosition(40, 30, 4)(inputs))
    return pynn.Model(inputs, layers.Dense(2)(layers.GlobalAveragePooling1D()(h)))


def test_a_traced_call_with_a_none_length_is_traced_again_for_each_length():
    dynamic = _traced_model(None)
    assert dynamic.layers[1].output.shape == (None, None, 4)
    for length in (3, 11):
        fixed = _traced_model(length)
        fixed.set_weights(dynamic.get_weights())
        x = np.random.default_rng(length).integers(0, 30, (4, length))
        np.testing.assert_allclose(dynamic.predict(x, verbose=0), fixed.predict(x, verbose=0),
                                   rtol=1e-5, atol=1e-6)
    dynamic.compile("adam", "mse")
    dynamic.fit(np.ones((4, 6), np.int32), np.zeros((4, 2)), epochs=1, verbose=0)


def test_many_lengths_keep_the_trace_cache_and_the_calls_bounded():
    model = _traced_model(None)
    layer = model.layers[1]
    for length in range(1, 41):
        model.predict(np.zeros((1, length), np.int32), verbose=0)
    assert len(vars(layer)["_traces"]) <= layer._MAX_TRACES
    assert len(layer._inbound) == 1  # pynn's own tracing calls are not the layer's calls


def test_a_length_beyond_what_the_graph_allows_raises_a_clear_error():
    model = _traced_model(None)
    with pytest.raises(ValueError, match="outside|index|range"):
        model.predict(np.zeros((1, 41), np.int32), verbose=0)  # 40 positions


def test_save_and_load_before_and_after_training_resume_exactly(tmp_path):
    x, y = _tokens(16, 9, 0)
    model = _imdb_like(9)
    model.save(tmp_path / "fresh.keras")  # no core yet: the template is saved
    assert pynn.models.load_model(tmp_path / "fresh.keras").input_shape == (None, None)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "trained.keras")
    loaded = pynn.models.load_model(tmp_path / "trained.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    # optimizer slots and step count wait in the loaded model for its first core
    again = pynn.models.load_model(tmp_path / "trained.keras")
    again.save(tmp_path / "again.keras")  # the pending state is saved, not lost
    again = pynn.models.load_model(tmp_path / "again.keras")
    for m in (model, again):
        m.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    assert int(again.optimizer.iterations) == int(model.optimizer.iterations) == 4
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_tape_over_calls_on_two_lengths_gets_both_gradients():
    # each call's backward runs on the graph it was called on, into the one set of weights
    pynn.utils.set_random_seed(10)
    inputs = pynn.Input(shape=(None, 3))
    model = pynn.Model(inputs, layers.Dense(1)(layers.LSTM(4)(inputs)))
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 7, 3))

    def grads(*xs):
        with pynn.GradientTape() as tape:
            loss = sum(ops.sum(model(x)) for x in xs)
        return [np.asarray(g) for g in tape.gradient(loss, model.trainable_weights)]

    for both, ga, gb in zip(grads(a, b), grads(a), grads(b)):
        np.testing.assert_allclose(both, ga + gb, rtol=1e-5, atol=1e-6)


def test_many_lengths_keep_one_core_and_a_bounded_set_of_graphs():
    model = _imdb_like(11)
    x, y = _tokens(4, 3, 0)
    model.train_on_batch(x, y)
    core = model._core
    for length in list(range(3, 23)) + [5, 4]:
        model.train_on_batch(*_tokens(4, length, length))
    assert model._core is core  # no rebuild: the weights never moved
    assert len(model._graphs.ids) <= model._graphs.LIMIT
    assert int(model.optimizer.iterations) == 23


def test_adam_across_lengths_matches_pytorch():
    torch = pytest.importorskip("torch")
    pynn.utils.set_random_seed(12)
    inputs = pynn.Input(shape=(None, 3))
    pooled = layers.GlobalAveragePooling1D()(layers.Dense(2)(inputs))
    model = pynn.Model(inputs, pooled)
    model.compile(pynn.optimizers.Adam(0.05, epsilon=1e-8), "mse")
    kernel, bias = model.get_weights()
    w = torch.tensor(kernel, requires_grad=True)
    c = torch.tensor(bias, requires_grad=True)
    opt = torch.optim.Adam([w, c], lr=0.05, eps=1e-8)
    rng = np.random.default_rng(1)
    for length in (4, 6, 4, 9, 6):
        x = rng.normal(size=(5, length, 3)).astype(np.float32)
        y = rng.normal(size=(5, 2)).astype(np.float32)
        model.train_on_batch(x, y)
        opt.zero_grad()
        out = (torch.tensor(x) @ w + c).mean(dim=1)
        torch.mean((out - torch.tensor(y)) ** 2).backward()
        opt.step()
    np.testing.assert_allclose(model.get_weights()[0], w.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.get_weights()[1], c.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_compiling_again_reaches_every_length():
    pynn.utils.set_random_seed(13)
    inputs = pynn.Input(shape=(None, 2))
    model = pynn.Model(inputs, layers.GlobalAveragePooling1D()(layers.Dense(1)(inputs)))
    model.compile("sgd", "mse")
    rng = np.random.default_rng(2)
    data = {n: (rng.normal(size=(6, n, 2)), rng.normal(size=(6, 1))) for n in (3, 5)}
    for n in (3, 5):
        model.evaluate(*data[n], verbose=0)
    model.compile("sgd", "mae")  # graphs built for the old loss are not used again
    for n in (5, 3):
        x, y = data[n]
        want = np.mean(np.abs(model.predict(x, verbose=0) - y))
        assert model.evaluate(x, y, verbose=0) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_freezing_a_layer_and_compiling_again_takes_effect_on_every_length(kind):
    pynn.utils.set_random_seed(14)
    if kind == "sequential":
        model = pynn.Sequential([pynn.Input(shape=(None, 3)), layers.GRU(4), layers.Dense(2)])
    else:
        inputs = pynn.Input(shape=(None, 3))
        model = pynn.Model(inputs, layers.Dense(2)(layers.GRU(4)(inputs)))
    gru = next(layer for layer in model.layers if isinstance(layer, layers.GRU))
    model.compile("adam", "mse")
    rng = np.random.default_rng(3)
    for length in (5, 7):
        model.fit(rng.random((8, length, 3)), rng.random((8, 2)), epochs=1, verbose=0)
    gru.trainable = False
    frozen = [w.copy() for w in gru.get_weights()]
    dense = model.layers[-1].get_weights()[0].copy()
    model.compile("adam", "mse")
    for length in (5, 6):
        model.fit(rng.random((8, length, 3)), rng.random((8, 2)), epochs=1, verbose=0)
    for a, b in zip(frozen, gru.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(dense, model.layers[-1].get_weights()[0])
    assert int(model.optimizer.iterations) == 2


def test_threads_calling_one_model_on_different_lengths_wait_for_each_other():
    import threading
    pynn.utils.set_random_seed(15)
    inputs = pynn.Input(shape=(None, 3))
    model = pynn.Model(inputs, layers.Dense(2)(layers.GRU(8)(inputs)))
    rng = np.random.default_rng(4)
    data = {n: rng.random((64, n, 3)).astype(np.float32) for n in (5, 9, 13)}
    want = {n: model.predict(d, verbose=0) for n, d in data.items()}
    errors = []

    def work(n):
        try:
            for _ in range(20):
                np.testing.assert_allclose(model.predict(data[n], verbose=0), want[n],
                                           rtol=1e-6)
                np.testing.assert_allclose(np.asarray(model(data[n])), want[n], rtol=1e-6)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
    threads = [threading.Thread(target=work, args=(n,)) for n in data]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
