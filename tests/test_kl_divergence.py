"""pynn.losses.KLDivergence and kl_divergence: Keras 3's values (both sides clipped to
[1e-7, 1]), against NumPy and torch.nn.functional.kl_div, with the gradient; its names in
losses.get; and its use in a custom training step, as Keras's knowledge-distillation example."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import pynn
from pynn import losses, ops

EPS = 1e-7


def numpy_kl(y_true, y_pred):
    t = np.clip(np.asarray(y_true, np.float64), EPS, 1.0)
    p = np.clip(np.asarray(y_pred, np.float64), EPS, 1.0)
    return np.sum(t * np.log(t / p), axis=-1)


def distributions(shape, seed):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(shape[-1]), size=shape[:-1]).astype(np.float32)


@pytest.mark.parametrize("shape", [(6, 5), (3, 4, 7)])
def test_kl_divergence_per_sample_matches_numpy(shape):
    y_true, y_pred = distributions(shape, 0), distributions(shape, 1)
    y_true[0, ..., 0] = 0.0  # a zero target: clipped to 1e-7, as Keras does
    y_pred[-1, ..., 1] = 0.0
    out = losses.kl_divergence(y_true, y_pred)
    assert out.shape == shape[:-1]
    np.testing.assert_allclose(np.asarray(out), numpy_kl(y_true, y_pred), rtol=1e-5, atol=1e-6)


def test_kl_divergence_class_averages_over_the_batch_like_torch_batchmean():
    y_true, y_pred = distributions((8, 5), 2), distributions((8, 5), 3)
    got = float(losses.KLDivergence()(y_true, y_pred))
    t = torch.tensor(y_true, dtype=torch.float64).clamp(EPS, 1.0)
    p = torch.tensor(y_pred, dtype=torch.float64).clamp(EPS, 1.0)
    want = F.kl_div(p.log(), t, reduction="batchmean").item()
    assert got == pytest.approx(want, rel=1e-5)
    assert got == pytest.approx(numpy_kl(y_true, y_pred).mean(), rel=1e-5)


def test_kl_divergence_gradient_matches_torch():
    y_true, y_pred = distributions((4, 6), 4), distributions((4, 6), 5)
    y_pred[1, 2] = 0.0  # clipped: no gradient there, as in torch's clamp
    p = pynn.Tensor(y_pred, requires_grad=True)
    t = pynn.Tensor(y_true, requires_grad=True)
    losses.KLDivergence()(t, p).backward()
    tp = torch.tensor(y_pred, dtype=torch.float64, requires_grad=True)
    tt = torch.tensor(y_true, dtype=torch.float64, requires_grad=True)
    want = F.kl_div(tp.clamp(EPS, 1.0).log(), tt.clamp(EPS, 1.0), reduction="batchmean")
    want.backward()
    np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(t.grad, tt.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_kl_divergence_sample_weight_as_keras():
    y_true, y_pred = distributions((4, 3), 6), distributions((4, 3), 7)
    w = np.array([1.0, 0.0, 2.0, 0.5], np.float32)
    want = (numpy_kl(y_true, y_pred) * w).sum() / 4  # sum_over_batch_size
    assert float(losses.KLDivergence()(y_true, y_pred, sample_weight=w)) == \
        pytest.approx(want, rel=1e-5)
    assert float(losses.KLDivergence()(y_true, y_pred, sample_weight=w[:, None])) == \
        pytest.approx(want, rel=1e-5)


def test_kl_divergence_names_config_and_get():
    kl = losses.KLDivergence()
    assert kl.name == "kl_divergence" and kl.reduction == "sum_over_batch_size"
    assert not kl.in_core
    assert losses.KLDivergence.from_config(kl.get_config()).name == "kl_divergence"
    # Keras's get: a function's name gives the function, the class's name an instance
    for name in ("kl_divergence", "kld", "KLD", "kullback_leibler_divergence"):
        assert losses.get(name) is losses.kl_divergence
    assert isinstance(losses.get("KLDivergence"), losses.KLDivergence)
    assert isinstance(losses.to_loss("kld"), losses.KLDivergence)
    assert losses.kld is losses.KLD is losses.kullback_leibler_divergence is losses.kl_divergence


def test_kl_divergence_distills_a_student_on_the_tape():
    """The knowledge-distillation example's loss: KL between softened teacher and student
    outputs, minimised by gradient steps on the student's logits."""
    rng = np.random.default_rng(8)
    teacher = rng.normal(size=(16, 5)).astype(np.float32)
    student = pynn.Tensor(rng.normal(size=(16, 5)).astype(np.float32), requires_grad=True)
    kl, T = losses.KLDivergence(), 3.0
    first = None
    for _ in range(30):
        loss = kl(ops.softmax(teacher / T, axis=1), ops.softmax(student / T, axis=1))
        first = float(loss) if first is None else first
        loss.backward()
        student = pynn.Tensor(np.asarray(student) - 20.0 * student.grad, requires_grad=True)
    assert float(loss) < 0.2 * first
