"""Keras's Attention (dot and concat scores) and AdditiveAttention layers (issue 18): values as
Keras 3 defines them (checked against Keras 3.15 on JAX when written; NumPy here), PyTorch's
scaled_dot_product_attention with its gradients, causal masks, returned scores, weights,
configs, numerical gradients, training in a functional model, dropout only in training."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import grad_check

import pynn
from pynn import layers

RNG = np.random.default_rng(0)
Q = RNG.standard_normal((2, 3, 4)).astype(np.float32)
V = RNG.standard_normal((2, 5, 4)).astype(np.float32)
K = RNG.standard_normal((2, 5, 4)).astype(np.float32)


def softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_dot_attention_is_pytorchs_with_scale_one_forward_and_backward():
    layer = layers.Attention()
    qt, vt, kt = (torch.tensor(a, requires_grad=True) for a in (Q, V, K))
    want = F.scaled_dot_product_attention(qt, kt, vt, scale=1.0)
    np.testing.assert_allclose(layer([Q, V, K]).numpy(), want.detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    g = RNG.standard_normal(want.shape).astype(np.float32)
    (want * torch.from_numpy(g)).sum().backward()
    q, v, k = (pynn.Variable(a) for a in (Q, V, K))
    with pynn.GradientTape() as tape:
        loss = pynn.ops.sum(layer([q, v, k]) * g)
    for got, ref in zip(tape.gradient(loss, [q, v, k]), (qt, vt, kt)):
        np.testing.assert_allclose(np.asarray(got), ref.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_causal_mask_and_returned_scores_as_keras():
    out, scores = layers.Attention()([Q, V, K], return_attention_scores=True,
                                     use_causal_mask=True)
    s = Q @ K.transpose(0, 2, 1)
    s = s - 1e9 * (np.arange(5)[None, :] > np.arange(3)[:, None])  # query i sees keys <= i
    np.testing.assert_allclose(scores.numpy(), softmax(s), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out.numpy(), softmax(s) @ V, rtol=1e-5, atol=1e-6)
    assert np.all(scores.numpy()[:, 0, 1:] == 0)


def test_concat_scores_and_scale_weights():
    layer = layers.Attention(use_scale=True, score_mode="concat")
    layer([Q, V])
    assert [(w.path, w.shape) for w in layer.weights] == [
        (f"{layer.name}/scale", ()), (f"{layer.name}/concat_score_weight", ())]
    layer.set_weights([np.float32(0.7), np.float32(1.3)])
    s = 1.3 * np.tanh(0.7 * (Q[:, :, None, :] + K[:, None, :, :])).sum(-1)
    np.testing.assert_allclose(layer([Q, V, K]).numpy(), softmax(s) @ V, rtol=1e-5, atol=1e-6)


def test_additive_attention():
    layer = layers.AdditiveAttention()
    _, scores = layer([Q, V], return_attention_scores=True)
    assert layer.weights[0].shape == (4,)
    scale = np.array([0.5, -1.0, 2.0, 0.1], np.float32)
    layer.set_weights([scale])
    s = (scale * np.tanh(Q[:, :, None, :] + V[:, None, :, :])).sum(-1)
    out, scores = layer([Q, V], return_attention_scores=True)
    np.testing.assert_allclose(scores.numpy(), softmax(s), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out.numpy(), softmax(s) @ V, rtol=1e-5, atol=1e-6)
    plain = layers.AdditiveAttention(use_scale=False)
    s = np.tanh(Q[:, :, None, :] + V[:, None, :, :]).sum(-1)
    np.testing.assert_allclose(plain([Q, V]).numpy(), softmax(s) @ V, rtol=1e-5, atol=1e-6)
    assert plain.weights == []


def test_configs_names_and_bad_arguments():
    a, b = layers.Attention(dropout=0.1), layers.AdditiveAttention(use_scale=False)
    assert a.name.startswith("attention") and b.name.startswith("additive_attention")
    assert a.get_config()["score_mode"] == "dot" and a.get_config()["use_scale"] is False
    assert "score_mode" not in b.get_config()
    for layer in (a, b):
        again = type(layer).from_config(layer.get_config())
        assert again.get_config() == {**layer.get_config(), "name": again.name}
    with pytest.raises(ValueError, match="score_mode"):
        layers.Attention(score_mode="general")
    with pytest.raises(ValueError, match="query, value"):
        layers.Attention()(Q)


@pytest.mark.parametrize("make", [lambda: layers.Attention(use_scale=True),
                                  lambda: layers.Attention(score_mode="concat"),
                                  lambda: layers.AdditiveAttention()])
def test_gradient_check_and_training_in_a_functional_model(make):
    pynn.utils.set_random_seed(0)
    x = pynn.Input((5, 4))  # self-attention: query, value and key from one input
    h = layers.Dense(4)(x)
    model = pynn.Model(x, layers.Dense(2)(make()([h, x])))
    model.compile(optimizer="adam", loss="mse")
    y = RNG.standard_normal((2, 5, 2)).astype(np.float32)
    grad_check(model, V, y)
    history = model.fit(V, y, epochs=20, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_dropout_acts_only_in_training():
    layer = layers.Attention(dropout=0.5, seed=1)
    np.testing.assert_allclose(layer([Q, V]).numpy(), softmax(Q @ V.transpose(0, 2, 1)) @ V,
                               rtol=1e-5, atol=1e-6)
    _, kept = layer([Q, V], return_attention_scores=True, training=True)
    np.testing.assert_allclose(kept.numpy().sum(-1), 1.0, rtol=1e-5)  # scores before dropout
    assert not np.allclose(layer([Q, V], training=True).numpy(), layer([Q, V]).numpy())
