"""Every loss, on logits and on probabilities, fused with the output activation or not; the L1/L2
weight penalties; and the numerical stability of the cross-entropies on huge logits.

Each case is checked against finite differences of the core's loss (helpers.grad_check) and
against PyTorch with Keras's definition of the loss (helpers.torch_parity).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import (
    EPS,
    ONE_MINUS_EPS,
    assert_close,
    core_gradients,
    grad_check,
    make_model,
    randomize_weights,
    torch_parity,
)

from pynn import losses, regularizers
from pynn.layers import Activation, Dense

C = 4  # output units / classes


def make_targets(kind, shape, seed=1, pred=None):
    """Targets of one kind for outputs of `shape` (batch, ..., C)."""
    rng = np.random.default_rng(seed)
    if kind == "real":
        return rng.normal(size=shape).astype(np.float32)
    if kind == "far":  # MAE: every target at least 0.5 from the prediction, away from the kink
        step = rng.uniform(0.5, 1.0, size=shape) * np.where(rng.random(shape) < 0.5, -1, 1)
        return (pred + step).astype(np.float32)
    if kind == "binary":
        return rng.integers(0, 2, size=shape).astype(np.float32)
    if kind == "soft":
        return rng.uniform(0, 1, size=shape).astype(np.float32)
    labels = rng.integers(0, shape[-1], size=shape[:-1])
    if kind == "onehot":
        return np.eye(shape[-1], dtype=np.float32)[labels]
    if kind == "sparse":
        return labels.astype(np.int32)
    raise ValueError(kind)


# id: (layers after the input, loss, target kind). "fused" cases have a softmax/sigmoid output
# that the core folds into the cross-entropy; "probs" cases go through the clipped probabilities.
CASES = {
    "mse": (lambda: [Dense(C, activation="tanh")], "mean_squared_error", "real"),
    "mae": (lambda: [Dense(C, activation="tanh")], "mean_absolute_error", "far"),
    "bce_logits": (lambda: [Dense(C)], losses.BinaryCrossentropy(from_logits=True), "binary"),
    "bce_logits_soft_targets": (lambda: [Dense(C)], losses.BinaryCrossentropy(from_logits=True),
                                "soft"),
    "bce_sigmoid_fused": (lambda: [Dense(C, activation="sigmoid")], "binary_crossentropy",
                          "binary"),
    "bce_probs_softmax_output": (lambda: [Dense(C, activation="softmax")], "binary_crossentropy",
                                 "binary"),
    "bce_logits_after_sigmoid_not_fused": (lambda: [Dense(C, activation="sigmoid")],
                                           losses.BinaryCrossentropy(from_logits=True), "soft"),
    "cce_logits": (lambda: [Dense(C)], losses.CategoricalCrossentropy(from_logits=True),
                   "onehot"),
    "cce_logits_soft_targets": (lambda: [Dense(C)],
                                losses.CategoricalCrossentropy(from_logits=True), "soft"),
    "cce_softmax_fused": (lambda: [Dense(C, activation="softmax")], "categorical_crossentropy",
                          "onehot"),
    "cce_probs_softplus_output": (lambda: [Dense(C, activation="softplus")],
                                  "categorical_crossentropy", "onehot"),
    "cce_probs_sigmoid_output": (lambda: [Dense(C, activation="sigmoid")],
                                 "categorical_crossentropy", "soft"),
    "cce_probs_relu_of_positive": (lambda: [Dense(C, activation="softplus"), Activation("relu")],
                                   "categorical_crossentropy", "onehot"),
    "sparse_logits": (lambda: [Dense(C)], losses.SparseCategoricalCrossentropy(from_logits=True),
                      "sparse"),
    "sparse_softmax_fused": (lambda: [Dense(C, activation="softmax")],
                             "sparse_categorical_crossentropy", "sparse"),
    "sparse_probs_softplus_output": (lambda: [Dense(C, activation="softplus")],
                                     "sparse_categorical_crossentropy", "sparse"),
    "sparse_logits_after_softmax_not_fused": (
        lambda: [Dense(C, activation="softmax")],
        losses.SparseCategoricalCrossentropy(from_logits=True), "sparse"),
}

RANK3_CASES = ["mse", "mae", "bce_logits", "bce_sigmoid_fused", "cce_softmax_fused",
               "cce_probs_softplus_output", "sparse_logits", "sparse_softmax_fused",
               "sparse_probs_softplus_output"]


def build_case(case, input_shape=(5,), batch=6, seed=0):
    """(model, x, y) for a case: the model built, weights drawn, data matching its output."""
    layers, loss, kind = CASES[case]
    m = make_model(input_shape, layers(), loss=loss, seed=seed)
    x = np.random.default_rng(seed + 10).normal(size=(batch,) + input_shape).astype(np.float32)
    out_shape = (batch,) + input_shape[:-1] + (C,)
    pred = m.predict(x, verbose=0) if kind == "far" else None
    return m, x, make_targets(kind, out_shape, seed=seed + 20, pred=pred)


@pytest.mark.parametrize("case", CASES)
def test_loss_gradients_match_finite_differences(case):
    grad_check(*build_case(case))


@pytest.mark.parametrize("case", CASES)
def test_loss_matches_torch(case):
    torch_parity(*build_case(case))


@pytest.mark.parametrize("case", RANK3_CASES)
def test_loss_over_rank3_outputs_matches_torch(case):
    # Every (sample, step) row is one term of the mean: Keras's sum_over_batch_size.
    torch_parity(*build_case(case, input_shape=(3, 5), batch=4))


@pytest.mark.parametrize("case", ["mse", "cce_softmax_fused", "sparse_probs_softplus_output"])
def test_loss_over_rank3_outputs_gradients_match_finite_differences(case):
    grad_check(*build_case(case, input_shape=(3, 5), batch=4))


# -- the fused and the logits paths agree ---------------------------------------------------------
@pytest.mark.parametrize("act, loss_cls, kind", [
    ("softmax", losses.CategoricalCrossentropy, "onehot"),
    ("softmax", losses.SparseCategoricalCrossentropy, "sparse"),
    ("sigmoid", losses.BinaryCrossentropy, "binary"),
], ids=["cce", "sparse", "bce"])
def test_fused_output_loss_equals_from_logits_loss_on_the_logits(act, loss_cls, kind):
    fused = make_model((5,), [Dense(C, activation=act)], loss=loss_cls())
    logits = make_model((5,), [Dense(C)], loss=loss_cls(from_logits=True))
    logits.set_weights(fused.get_weights())
    x = np.random.default_rng(3).normal(size=(6, 5)).astype(np.float32)
    y = make_targets(kind, (6, C))
    a, b = core_gradients(fused, x, y), core_gradients(logits, x, y)
    assert_close("loss", a[0], b[0], 1e-6, 1e-7)
    assert_close("dloss/dx", a[1], b[1], 1e-5, 1e-7)
    for ga, gb in zip(a[2], b[2]):
        assert_close("dloss/dweight", ga, gb, 1e-5, 1e-7)


# -- probabilities: Keras's normalising and clipping ----------------------------------------------
def keras_cce_numpy(p, y):
    """Keras 3's categorical cross-entropy on probabilities, in float64 NumPy."""
    p = p.astype(np.float64)
    q = np.clip(p / p.sum(-1, keepdims=True), EPS, ONE_MINUS_EPS)
    return float(np.mean(-(y * np.log(q)).sum(-1)))


def test_categorical_ce_on_unnormalised_probabilities_matches_keras_formula():
    m, x, y = build_case("cce_probs_softplus_output")
    p = m.predict(x, verbose=0)
    assert np.abs(p.sum(-1) - 1).max() > 0.1  # the rows really need normalising
    assert_close("loss", m.evaluate(x, y, verbose=0), keras_cce_numpy(p, y), 1e-5, 1e-6)


def test_categorical_ce_clips_a_zero_probability_to_epsilon():
    # A relu output with a zero at the true class: the loss is -log(1e-7), not inf.
    m = make_model((C,), [Activation("relu")], loss="categorical_crossentropy")
    x = np.array([[-1.0, 2.0, 1.0, 1.0], [3.0, 1.0, 0.5, 0.5]], dtype=np.float32)
    y = np.eye(C, dtype=np.float32)[[0, 1]]
    loss = m.evaluate(x, y, verbose=0)
    assert_close("loss", loss, keras_cce_numpy(np.maximum(x, 0), y), 1e-5, 1e-6)
    assert loss > 0.5 * -np.log(1e-7) - 1


def test_binary_ce_on_probabilities_clips_zero_and_one():
    # Outputs 0 and 1 exactly (relu of a non-positive value, sigmoid is not involved): finite loss
    # equal to Keras's clipped formula, and a zero gradient where the probability is clipped.
    m = make_model((C,), [Activation("relu")], loss="binary_crossentropy")
    x = np.array([[-1.0, 1.0, 0.25, 0.75], [0.5, -2.0, 1.0, 0.1]], dtype=np.float32)
    y = np.array([[1, 0, 1, 0], [1, 1, 0, 0]], dtype=np.float32)
    p = np.clip(np.maximum(x, 0).astype(np.float64), EPS, ONE_MINUS_EPS)
    want = np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)))
    loss, dx, _ = core_gradients(m, x, y)
    assert_close("loss", loss, want, 1e-5, 1e-6)
    assert np.all(dx[[0, 0, 1, 1], [0, 1, 1, 2]] == 0)
    assert np.all(dx[[0, 0, 1, 1], [2, 3, 0, 3]] != 0)


def test_binary_ce_on_probabilities_matches_torch_at_the_clip_bounds():
    m = make_model((C,), [Activation("relu")], loss="binary_crossentropy")
    x = np.array([[0.0, 1.0, 0.25, 0.75], [0.5, 2.0, 1e-9, 0.1]], dtype=np.float32)
    y = np.array([[1, 0, 1, 0], [1, 1, 0, 0]], dtype=np.float32)
    torch_parity(m, x, y)


# -- L1 / L2 weight penalties ---------------------------------------------------------------------
REGS = {
    "l1": lambda: regularizers.L1(0.03),
    "l2": lambda: regularizers.L2(0.05),
    "l1_l2": lambda: regularizers.L1L2(l1=0.02, l2=0.04),
}


def regularized_model(reg, loss="mse", seed=0):
    m = make_model((5,), [Dense(4, activation="tanh", kernel_regularizer=reg(),
                                bias_regularizer=reg()),
                          Dense(3, kernel_regularizer=reg())], loss=loss, seed=seed)
    randomize_weights(m, seed=seed)  # every weight at least 0.1 from the L1 kink at 0
    return m


def data(seed=5):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(6, 5)).astype(np.float32), rng.normal(size=(6, 3)).astype(np.float32)


def penalty(m):
    total = 0.0
    for layer in m.layers:
        for reg, w in ((layer.kernel_regularizer, layer.kernel),
                       (layer.bias_regularizer, getattr(layer, "bias", None))):
            if reg is not None:
                w = np.asarray(w, dtype=np.float64)
                total += reg.l1 * np.abs(w).sum() + reg.l2 * (w * w).sum()
    return total


def plain_copy(m):
    """The same model and weights without any penalty."""
    p = make_model((5,), [Dense(4, activation="tanh"), Dense(3)], loss=m.loss)
    p.set_weights(m.get_weights())
    return p


@pytest.mark.parametrize("reg", REGS.values(), ids=REGS.keys())
def test_regularizer_penalty_is_added_to_the_loss(reg):
    m = regularized_model(reg)
    x, y = data()
    extra = m.evaluate(x, y, verbose=0) - plain_copy(m).evaluate(x, y, verbose=0)
    assert penalty(m) > 0.1
    assert_close("penalty", extra, penalty(m), 1e-4, 1e-5)


@pytest.mark.parametrize("reg", REGS.values(), ids=REGS.keys())
def test_regularizer_gradient_is_added_to_the_weight_gradients(reg):
    m = regularized_model(reg)
    x, y = data()
    _, dx, grads = core_gradients(m, x, y)
    _, plain_dx, plain_grads = core_gradients(plain_copy(m), x, y)
    assert_close("dloss/dx", dx, plain_dx, 1e-6, 1e-8)  # the penalty does not depend on x
    regs = [(layer.kernel_regularizer, layer.bias_regularizer) for layer in m.layers]
    for (g, pg, w), r in zip(zip(grads, plain_grads, m.weights),
                             [regs[0][0], regs[0][1], regs[1][0], None]):
        want = np.zeros(w.shape) if r is None else r.l1 * np.sign(w) + 2 * r.l2 * np.asarray(w)
        assert_close(f"penalty gradient of {w.path}", g - pg, want, 1e-4, 1e-6)


@pytest.mark.parametrize("reg", REGS.values(), ids=REGS.keys())
def test_regularized_loss_matches_torch_with_penalty_by_hand(reg):
    torch_parity(regularized_model(reg), *data())


@pytest.mark.parametrize("reg", REGS.values(), ids=REGS.keys())
def test_regularized_loss_gradients_match_finite_differences(reg):
    grad_check(regularized_model(reg), *data())


def test_regularizer_with_cross_entropy_matches_torch():
    m = regularized_model(REGS["l1_l2"], loss=losses.CategoricalCrossentropy(from_logits=True))
    x, _ = data()
    torch_parity(m, x, make_targets("onehot", (6, 3)))


# -- stability on huge logits ---------------------------------------------------------------------
def huge_logits_model(act, loss, scale=1e4):
    """Dense(C) whose logits are of order `scale`, with distinct values per row."""
    m = make_model((3,), [Dense(C, activation=act)], loss=loss)
    randomize_weights(m, seed=4, low=0.5, high=1.0)
    kernel, bias = m.get_weights()
    m.set_weights([kernel * scale, bias * scale])
    return m


HUGE = {
    "sparse_softmax_fused": ("softmax", "sparse_categorical_crossentropy", "sparse"),
    "sparse_logits": (None, losses.SparseCategoricalCrossentropy(from_logits=True), "sparse"),
    "cce_softmax_fused": ("softmax", "categorical_crossentropy", "onehot"),
    "cce_logits": (None, losses.CategoricalCrossentropy(from_logits=True), "onehot"),
    "bce_sigmoid_fused": ("sigmoid", "binary_crossentropy", "binary"),
    "bce_logits": (None, losses.BinaryCrossentropy(from_logits=True), "binary"),
}


@pytest.mark.parametrize("act, loss, kind", HUGE.values(), ids=HUGE.keys())
def test_huge_logits_give_finite_loss_and_gradients(act, loss, kind):
    m = huge_logits_model(act, loss)
    x = np.random.default_rng(6).normal(size=(5, 3)).astype(np.float32)
    loss_value, dx, grads = core_gradients(m, x, make_targets(kind, (5, C)))
    assert np.isfinite(loss_value) and loss_value > 100  # wrong labels cost ~1e4
    assert np.isfinite(dx).all() and all(np.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("act, loss, kind", HUGE.values(), ids=HUGE.keys())
def test_huge_logits_match_torch(act, loss, kind):
    m = huge_logits_model(act, loss)
    x = np.random.default_rng(6).normal(size=(5, 3)).astype(np.float32)
    torch_parity(m, x, make_targets(kind, (5, C)))


def test_huge_logits_softmax_sparse_ce_matches_torch_cross_entropy():
    # The brief's case written out: logits of 1e4 straight into softmax + sparse CE.
    m = make_model((C,), [Activation("softmax")], loss="sparse_categorical_crossentropy")
    z = np.array([[1e4, 0, -1e4, 5e3], [-1e4, 1e4, 1e4 - 1, 0], [3e3, -2e3, 1e4, 1e4]],
                 dtype=np.float32)
    labels = np.array([2, 1, 0], dtype=np.int32)
    loss, dx, _ = core_gradients(m, z, labels)
    zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    t_loss = F.cross_entropy(zt, torch.from_numpy(labels).long())
    t_loss.backward()
    assert np.isfinite(loss) and np.isfinite(dx).all()
    assert_close("loss", loss, t_loss.item(), 1e-6, 1e-3)
    assert_close("dloss/dz", dx, zt.grad.numpy(), 1e-5, 1e-7)


def test_evaluate_loss_equals_core_gradients_loss():
    # The loss reported by evaluate (test_step) is the one the gradients differentiate.
    m, x, y = build_case("sparse_softmax_fused")
    assert_close("loss", m.evaluate(x, y, verbose=0), core_gradients(m, x, y)[0], 1e-6, 1e-7)

