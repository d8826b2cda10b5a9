"""Embedding: int32 model inputs, lookups and their gradients against PyTorch, bad indices."""

import numpy as np
import pytest
import torch

import pynn
from pynn import layers


def model(input_dim=7, output_dim=3, length=5, head=True, seed=0):
    pynn.utils.set_random_seed(seed)
    stack = [pynn.Input(shape=(length,), dtype="int32"), layers.Embedding(input_dim, output_dim)]
    if head:
        stack += [layers.Flatten(), layers.Dense(2)]
    m = pynn.Sequential(stack)
    m.compile(optimizer="sgd", loss="mse")
    return m


def test_embedding_forward_and_table_gradient_match_torch():
    m = model()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 7, size=(4, 5)).astype(np.int32)
    x[0, :3] = 2  # repeated indices: their gradients add up
    y = rng.normal(size=(4, 2)).astype(np.float32)
    table, kernel, bias = (np.array(w, dtype=np.float64) for w in m.get_weights())

    tt = torch.tensor(table, requires_grad=True)
    tk, tb = torch.tensor(kernel, requires_grad=True), torch.tensor(bias, requires_grad=True)
    out = torch.nn.functional.embedding(torch.from_numpy(x).long(), tt).reshape(4, -1) @ tk + tb
    loss = ((out - torch.from_numpy(y).double()) ** 2).mean()
    loss.backward()

    np.testing.assert_allclose(m.predict(x, verbose=0), out.detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    core_loss, dx = m._core.gradients(x, y, True)
    assert core_loss == pytest.approx(loss.item(), rel=1e-5)
    assert np.all(np.asarray(dx) == 0)  # indices have no gradient
    np.testing.assert_allclose(m._core.gradient(m.layers[0]._var_ids[0]), tt.grad.numpy(),
                               rtol=1e-5, atol=1e-7)


def test_embedding_output_is_the_table_rows():
    m = model(head=False)
    x = np.array([[0, 6, 6, 1, 3]], np.int32)
    table = m.layers[0].embeddings
    np.testing.assert_array_equal(m.predict(x, verbose=0)[0], table[x[0]])
    np.testing.assert_array_equal(m(x)[0], table[x[0]])


def test_embedding_trains_a_tiny_classifier():
    """Sequences whose first token is 1 are class 1, else class 0."""
    rng = np.random.default_rng(1)
    x = rng.integers(2, 10, size=(256, 6)).astype(np.int32)
    y = rng.integers(0, 2, size=256)
    x[y == 1, 0] = 1
    pynn.utils.set_random_seed(3)
    m = pynn.Sequential([pynn.Input(shape=(6,), dtype="int32"), layers.Embedding(10, 4),
                         layers.Flatten(), layers.Dense(1, activation="sigmoid")])
    m.compile(optimizer=pynn.optimizers.Adam(0.05), loss="binary_crossentropy",
              metrics=["accuracy"])
    history = m.fit(x, y, batch_size=32, epochs=10, verbose=0)
    assert history.history["accuracy"][-1] > 0.95


@pytest.mark.parametrize("bad", [7, -1, 1000])
@pytest.mark.parametrize("call", ["fit", "predict", "evaluate"])
def test_out_of_range_index_raises_value_error_and_changes_nothing(bad, call):
    m = model()
    x = np.zeros((3, 5), np.int32)
    x[2, 4] = bad
    before = m.get_weights()
    with pytest.raises(ValueError, match=r"index -?\d+ .*outside 0\.\.6"):
        if call == "predict":
            m.predict(x, verbose=0)
        else:
            getattr(m, call)(x, np.zeros((3, 2), np.float32), verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))


def test_fractional_indices_are_refused():
    with pytest.raises(ValueError, match="integer indices"):
        model().predict(np.full((1, 5), 0.5), verbose=0)


@pytest.mark.parametrize("make, match", [
    (lambda: layers.Embedding(0, 4), "input_dim"),
    (lambda: layers.Embedding(10, -1), "output_dim"),
])
def test_bad_embedding_arguments_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_embedding_on_a_float_input_casts_it_as_keras_does():
    # Keras casts a float index input to int32 (truncating); out-of-range values still raise
    model = pynn.Sequential([pynn.Input(shape=(3,)), layers.Embedding(10, 4)])
    ints = np.array([[1, 2, 9], [0, 4, 7]], dtype=np.int32)
    want = model.predict(ints, verbose=0)
    np.testing.assert_array_equal(model.predict(ints.astype(np.float32) + 0.25, verbose=0), want)
    np.testing.assert_array_equal(model(ints.astype(np.float32)).numpy(), want)
    with pytest.raises(ValueError, match="index|range"):
        model.predict(np.array([[1.0, 2.0, 10.0]], dtype=np.float32), verbose=0)
