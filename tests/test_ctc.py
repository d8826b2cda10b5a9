"""The CTC loss (ops_ctc.c): ops.ctc_loss, losses.ctc and losses.CTC against Keras 3 and
PyTorch, its gradient against finite differences, bad data, and training with it (compiled, and
traced inside a user layer's call through add_loss)."""

import numpy as np
import pytest
import torch
from helpers import keras_reference_module, keras_reference_values

import pynn
from pynn import layers, ops

reference = keras_reference_module("ctc")


def test_ctc_matches_keras_3_per_sample_and_with_each_reduction_and_sample_weight():
    want = keras_reference_values("ctc")
    got = reference.run()
    assert set(got) == set(want)
    for name in want:
        np.testing.assert_allclose(np.asarray(got[name]), want[name], rtol=2e-5, atol=1e-5,
                                   err_msg=name)


def _torch_ctc(x, labels, label_length, logit_length, blank=0):
    xt = torch.tensor(x, requires_grad=True)
    loss = torch.nn.functional.ctc_loss(
        torch.log_softmax(xt, -1).transpose(0, 1), torch.tensor(labels, dtype=torch.long),
        torch.tensor(logit_length, dtype=torch.long), torch.tensor(label_length,
                                                                    dtype=torch.long),
        blank=blank, reduction="none")
    return xt, loss


@pytest.mark.parametrize("blank", [0, 3])
def test_ctc_loss_and_its_gradient_match_pytorch(blank):
    d = reference.inputs()
    labels = d["labels"].copy()
    labels[labels == blank] = (blank + 1) % 6
    w = np.random.default_rng(0).normal(size=labels.shape[0]).astype(np.float32)
    xt, want = _torch_ctc(d["logits"], labels, d["label_length"], d["logit_length"], blank)
    (want * torch.tensor(w)).sum().backward()
    x = pynn.Tensor(d["logits"], requires_grad=True)
    got = ops.ctc_loss(labels, x, d["label_length"], d["logit_length"], mask_index=blank)
    (got * pynn.Tensor(w)).sum().backward()
    np.testing.assert_allclose(np.asarray(got), want.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(x.grad), xt.grad.numpy(), rtol=1e-4, atol=2e-6)
    # steps past a sample's logit length get no gradient
    assert not np.asarray(x.grad)[3, 3:].any()


def test_ctc_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 5, 4))
    labels = np.array([[1, 2, 2], [3, 1, 0]], np.int32)
    ll, tl = np.array([3, 2], np.int32), np.array([5, 4], np.int32)

    def f(v):
        return float(np.asarray(ops.ctc_loss(labels, v.astype(np.float32), ll, tl)).sum())

    t = pynn.Tensor(x.astype(np.float32), requires_grad=True)
    ops.ctc_loss(labels, t, ll, tl).sum().backward()
    eps = 1e-2
    for idx in [(0, 0, 0), (0, 2, 2), (0, 4, 1), (1, 1, 3), (1, 3, 0), (1, 4, 2)]:
        up, down = x.copy(), x.copy()
        up[idx] += eps
        down[idx] -= eps
        numeric = (f(up) - f(down)) / (2 * eps)
        assert np.asarray(t.grad)[idx] == pytest.approx(numeric, rel=2e-2, abs=2e-3), idx


def test_a_label_no_alignment_can_produce_has_an_infinite_loss_and_no_gradient():
    # 3 labels with a repeat need 4 steps; 3 are given
    x = pynn.Tensor(np.zeros((1, 3, 3), np.float32), requires_grad=True)
    loss = ops.ctc_loss(np.array([[1, 1, 2]]), x, np.array([3]), np.array([3]))
    assert np.isinf(np.asarray(loss)).all()
    loss.sum().backward()
    assert not np.asarray(x.grad).any()


@pytest.mark.parametrize("labels, ll, tl", [
    ([[1, 7]], [2], [4]),    # a class past the logits' 6
    ([[0, 1]], [2], [4]),    # the blank as a label
    ([[1, 2]], [3], [4]),    # a label length past max_label_length
    ([[1, 2]], [2], [9]),    # a logit length past the steps
    ([[1, 2]], [-1], [4])])
def test_bad_labels_and_lengths_raise_value_error(labels, ll, tl):
    with pytest.raises(ValueError, match="ctc_loss"):
        ops.ctc_loss(np.array(labels), np.zeros((1, 4, 6), np.float32), np.array(ll),
                     np.array(tl))


def test_bad_shapes_raise_value_error():
    with pytest.raises(ValueError, match="ctc_loss"):
        ops.ctc_loss(np.zeros((2, 3)), np.zeros((2, 4)), np.array([1, 1]), np.array([4, 4]))
    with pytest.raises(ValueError, match="one length per sample"):
        ops.ctc_loss(np.ones((2, 3)), np.zeros((2, 4, 5)), np.array([1]), np.array([4, 4]))
    with pytest.raises(ValueError, match="y_true"):
        pynn.losses.ctc(np.ones((2, 3, 1)), np.zeros((2, 4, 5)))


def _sequences(n, rng):
    """Sequences of 8 steps whose label is the classes of the runs they are made of."""
    x = np.zeros((n, 8, 5), np.float32)
    y = np.zeros((n, 3), np.int32)
    for i in range(n):
        labels = rng.integers(1, 5, size=2)
        while labels[1] == labels[0]:
            labels[1] = rng.integers(1, 5)
        x[i, :4, labels[0]] = 1.0
        x[i, 4:, labels[1]] = 1.0
        y[i, :2] = labels
    return x + rng.normal(scale=0.1, size=x.shape).astype(np.float32), y


def test_a_model_compiled_with_the_ctc_loss_learns_to_label_sequences():
    rng = np.random.default_rng(2)
    x, y = _sequences(256, rng)
    pynn.utils.set_random_seed(0)
    model = pynn.Sequential([pynn.Input((8, 5)), layers.Dense(16, "relu"), layers.Dense(5)])
    model.compile(optimizer=pynn.optimizers.Adam(0.02), loss=pynn.losses.CTC())
    history = model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.3 * history.history["loss"][0]


def test_ctc_in_a_user_layer_runs_in_the_core_graph_through_add_loss():
    """The captcha OCR example's endpoint layer: call() adds the CTC loss of its inputs."""

    class CTCLayer(layers.Layer):
        def call(self, y_true, y_pred):
            batch = ops.shape(y_pred)[0]
            steps = ops.shape(y_pred)[1]
            label_length = ops.sum(ops.cast(ops.not_equal(y_true, 0), "int32"), axis=-1)
            logit_length = ops.add(ops.multiply(label_length, 0), steps)
            del batch
            self.add_loss(ops.mean(ops.ctc_loss(y_true, y_pred, label_length, logit_length)))
            return y_pred

    rng = np.random.default_rng(3)
    x, y = _sequences(256, rng)
    pynn.utils.set_random_seed(0)
    inp = pynn.Input((8, 5))
    labels = pynn.Input((3,), dtype="int32")
    logits = layers.Dense(5)(layers.Dense(16, "relu")(inp))
    out = CTCLayer()(labels, logits)
    model = pynn.Model([inp, labels], out)
    model.compile(optimizer=pynn.optimizers.Adam(0.02))
    history = model.fit([x, y], None, epochs=8, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.3 * history.history["loss"][0]
    # the loss it trained on is the CTC of its outputs
    pred = model.predict([x[:16], y[:16]], verbose=0)
    want = pynn.losses.ctc(y[:16], pred)
    got = model.evaluate([x[:16], y[:16]], None, batch_size=16, verbose=0)
    assert got == pytest.approx(float(np.asarray(want).mean()), rel=1e-4)
