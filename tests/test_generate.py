"""pynn.utils.generate: autoregressive sampling (greedy, temperature, top-k), window sliding and
short prompts, and its argument checks."""

import numpy as np
import pytest

import pynn
from pynn import layers

V, T = 7, 5


def successor_model(per_position: bool = True):
    """A model whose most likely next token is (last token + 1) % V, by a wide margin."""
    inp = pynn.Input((T,), dtype="int32")
    x = layers.Embedding(V, V)(inp)
    if not per_position:
        x = layers.Flatten()(x)
    out = layers.Dense(V)(x)
    model = pynn.Model(inp, out)
    model.layers[1].set_weights([np.eye(V, dtype=np.float32)])
    shift = np.roll(np.eye(V, dtype=np.float32), 1, axis=1) * 20.0  # row i -> column i + 1
    if per_position:
        model.layers[2].set_weights([shift, np.zeros(V, np.float32)])
    else:  # only the window's last position counts
        kernel = np.zeros((T * V, V), np.float32)
        kernel[(T - 1) * V:] = shift
        model.layers[-1].set_weights([kernel, np.zeros(V, np.float32)])
    return model


def constant_model(logits, softmax: bool = False):
    """A model whose next-token scores ignore the input: the bias alone."""
    inp = pynn.Input((T,), dtype="int32")
    x = layers.Embedding(V, 3)(inp)
    out = layers.Dense(V, activation="softmax" if softmax else None,
                       kernel_initializer="zeros", bias_initializer="zeros")(x)
    model = pynn.Model(inp, out)
    model.layers[-1].set_weights([np.zeros((3, V), np.float32), np.asarray(logits, np.float32)])
    return model


@pytest.mark.parametrize("per_position", [True, False])
def test_greedy_follows_the_model_across_the_window_boundary(per_position):
    model = successor_model(per_position)
    out = pynn.utils.generate(model, [3], 12, temperature=0)
    assert out.dtype == np.int32 and out.shape == (13,)
    np.testing.assert_array_equal(out, (3 + np.arange(13)) % V)


def test_batch_of_prompts_and_longer_than_the_window():
    model = successor_model()
    prompts = np.array([[0, 1, 2, 3, 4, 5, 6, 0], [2, 2, 2, 2, 2, 2, 2, 2]])
    out = pynn.utils.generate(model, prompts, 4, temperature=0.0)
    assert out.shape == (2, 12)
    np.testing.assert_array_equal(out[:, :8], prompts)
    np.testing.assert_array_equal(out[0, 8:], [1, 2, 3, 4])
    np.testing.assert_array_equal(out[1, 8:], [3, 4, 5, 6])


def test_top_k_one_is_greedy_and_seed_repeats():
    model = successor_model()
    np.testing.assert_array_equal(pynn.utils.generate(model, [5], 6, top_k=1, seed=1),
                                  (5 + np.arange(7)) % V)
    model = constant_model([0.0, 1.0, 2.0, 0.5, -1.0, 0.0, 1.5])
    a = pynn.utils.generate(model, np.zeros((50, 1), np.int64), 6, seed=3)
    b = pynn.utils.generate(model, np.zeros((50, 1), np.int64), 6, seed=3)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("softmax", [False, True])
def test_samples_follow_the_tempered_distribution(softmax):
    logits = np.array([0.0, 1.0, 2.0, 0.5, -1.0, 0.0, 1.5])
    model = constant_model(logits, softmax=softmax)
    temperature = 0.7
    out = pynn.utils.generate(model, np.zeros((800, 1), np.int32), 5, temperature=temperature,
                              seed=0)[:, 1:]
    counts = np.bincount(out.ravel(), minlength=V)
    p = np.exp(logits / temperature)
    p /= p.sum()
    expected = p * out.size
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 30.0, (counts, expected)  # 6 degrees of freedom: p < 1e-4 by chance


def test_top_k_keeps_only_the_k_most_likely():
    model = constant_model([0.0, 1.0, 2.0, 0.5, -1.0, 0.0, 1.5])
    out = pynn.utils.generate(model, np.zeros((300, 1), np.int32), 3, top_k=2, seed=0)[:, 1:]
    assert set(np.unique(out)) == {2, 6}


def test_bad_arguments_are_refused():
    model = successor_model()
    with pytest.raises(ValueError, match="num_tokens"):
        pynn.utils.generate(model, [1], -1)
    with pytest.raises(ValueError, match="temperature"):
        pynn.utils.generate(model, [1], 2, temperature=-1.0)
    with pytest.raises(ValueError, match="top_k"):
        pynn.utils.generate(model, [1], 2, top_k=0)
    with pytest.raises(ValueError, match="non-empty"):
        pynn.utils.generate(model, [], 2)
    with pytest.raises(TypeError, match="integer token ids"):
        pynn.utils.generate(model, [1.5], 2)
    with pytest.raises(ValueError, match="out of range|index"):
        pynn.utils.generate(model, [V + 3], 2)
    two_d = pynn.Sequential([pynn.Input((4, 2)), layers.Dense(3)])
    with pytest.raises(ValueError, match="fixed length"):
        pynn.utils.generate(two_d, [1], 2)
    inp = pynn.Input((T,), dtype="int32")
    wide = pynn.Model(inp, layers.Reshape((T, 1, 2))(layers.Embedding(V, 2)(inp)))
    with pytest.raises(ValueError, match="one output of token scores"):
        pynn.utils.generate(wide, [1], 2)
