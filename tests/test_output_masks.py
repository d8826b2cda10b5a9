"""Losses and metrics of a masked output (core.set_output_masks), against NumPy references of
Keras 3's definitions:
  loss          sum_r l_r sw_r m_r / sum_r m_r (0 when nothing is kept): apply_mask with
                "sum_over_batch_size"
  mean metrics  sum of v_r m_r over the epoch / sum of m_r: MeanMetricWrapper with the mask as
                its sample weight (compile's metrics take no sample_weight)
  RMSE, precision, recall, AUC  every element, masked or not: Keras 3's read no mask
The graphs are built by hand on the core: x (T, F) -> dense -> [activation] -> (T, C), the mask
a second float32 input (T,), or computed in the graph from int32 token ids.
"""

import types

import numpy as np
import pytest

from pynn import _core
from pynn import metrics as metrics_mod
from pynn.models.trainer import _Totals

T, F, C = 5, 3, 4
EPS = 1e-7


def build(loss="mean_squared_error", activation=None, metrics=(), from_logits=False, seed=0):
    """A core x (T, F), mask (T,) -> dense -> activation, compiled; (core, kernel id, mask)."""
    rng = np.random.default_rng(seed)
    core = _core.Model()
    kernel = core.add_variable((F, C))
    bias = core.add_variable((C,))
    core.alloc()
    core.variable(kernel)[:] = rng.normal(size=(F, C))
    core.variable(bias)[:] = 0.1 * rng.normal(size=C)
    x = core.add_input((T, F), "float32")
    mask = core.add_input((T,), "float32")
    out, _ = core.add_node("dense", (x,), (kernel, bias))
    if activation:
        out, _ = core.add_node(activation, (out,))
    core.set_output(out)
    core.set_output_masks([mask])
    core.compile_outputs([(loss, from_logits, 1.0, [m._spec() for m in metrics])])
    core.set_optimizer("sgd", learning_rate=0.0)
    return core, kernel, mask


def data(n, loss, seed=1, empty_rows=(2,)):
    """x (n, T, F), a 0/1 mask (n, T) with the samples in empty_rows fully masked, targets."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, T, F)).astype(np.float32)
    m = (rng.uniform(size=(n, T)) > 0.4).astype(np.float32)
    m[list(empty_rows)] = 0.0
    m[0] = 1.0
    if loss == "sparse_categorical_crossentropy":
        y = rng.integers(0, C, (n, T)).astype(np.int32)
    elif loss in ("binary_crossentropy", "categorical_crossentropy"):
        y = (rng.uniform(size=(n, T, C)) > 0.5).astype(np.float32)
        if loss == "categorical_crossentropy":
            y = np.eye(C, dtype=np.float32)[rng.integers(0, C, (n, T))]
    else:
        y = rng.normal(size=(n, T, C)).astype(np.float32)
    return x, m, y


def row_losses(loss, p, y):
    """Keras's per-row loss of probabilities (or values) p: (n, T)."""
    p = p.astype(np.float64)
    if loss == "mean_squared_error":
        return ((p - y) ** 2).mean(-1)
    if loss == "mean_absolute_error":
        return np.abs(p - y).mean(-1)
    q = np.clip(p, EPS, 1 - EPS)
    if loss == "binary_crossentropy":
        return -(y * np.log(q) + (1 - y) * np.log(1 - q)).mean(-1)
    q = np.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS)
    if loss == "categorical_crossentropy":
        return -(y * np.log(q)).sum(-1)
    return -np.log(np.take_along_axis(q, y[..., None], -1)[..., 0])


def keras_loss(loss, p, y, m, sw=None):
    """sum_r l_r sw_r m_r / sum_r m_r, 0 when no row is kept."""
    w = m if sw is None else m * sw[:, None]
    return float((row_losses(loss, p, y) * w).sum() / m.sum()) if m.sum() else 0.0


LOSSES = [
    ("mean_squared_error", None),
    ("mean_absolute_error", None),
    ("binary_crossentropy", "sigmoid"),
    ("categorical_crossentropy", "softmax"),
    ("sparse_categorical_crossentropy", "softmax"),
]


@pytest.mark.parametrize("loss, activation", LOSSES)
@pytest.mark.parametrize("weighted", [False, True])
def test_masked_loss_is_the_mean_over_kept_rows(loss, activation, weighted):
    core, _, _ = build(loss, activation)
    x, m, y = data(6, loss)
    sw = np.random.default_rng(2).uniform(0.5, 2.0, 6).astype(np.float32) if weighted else None
    r = core.test_step([x, m], y, None, sw)
    p = core.predict([x, m], 6)
    assert r.shape == (2,)  # the loss, then the output's metric weight
    np.testing.assert_allclose(r[0], keras_loss(loss, p, y, m, sw), rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(r[1], m.sum() / T, rtol=1e-7)


def test_masked_loss_of_gathered_rows_with_weights():
    loss = "sparse_categorical_crossentropy"
    core, _, _ = build(loss, "softmax")
    x, m, y = data(9, loss)
    sw = np.random.default_rng(3).uniform(0.5, 2.0, 9).astype(np.float32)
    idx = np.array([2, 7, 0, 5], np.int64)
    r = core.train_step([x, m], y, idx, sw)
    p = core.predict([x[idx], m[idx]], 4)
    np.testing.assert_allclose(r[0], keras_loss(loss, p, y[idx], m[idx], sw[idx]), rtol=2e-6)


@pytest.mark.parametrize("loss, activation", LOSSES)
def test_masked_gradients_match_finite_differences(loss, activation):
    core, kernel, _ = build(loss, activation)
    x, m, y = data(4, loss)
    core.gradients([x, m], y)
    g = core.gradient(kernel).copy()
    w = core.variable(kernel)
    num = np.zeros_like(g)
    h = 1e-2 if loss == "mean_squared_error" else 1e-3  # MAE: stay clear of its kinks
    for i in np.ndindex(g.shape):
        old = float(w[i])
        w[i] = old + h
        up = core.test_step([x, m], y)[0]
        w[i] = old - h
        down = core.test_step([x, m], y)[0]
        w[i] = old
        num[i] = (up - down) / (2 * h)
    np.testing.assert_allclose(g, num, rtol=1e-2, atol=2e-3)


def test_masked_mse_gradients_match_numpy():
    core, kernel, _ = build()
    x, m, y = data(4, "mean_squared_error")
    loss, dx = core.gradients([x, m], y, True)
    p = core.predict([x, m], 4).astype(np.float64)
    dout = 2 * (p - y) / C * m[..., None] / m.sum()  # d loss / d out
    want = np.einsum("ntf,ntc->fc", x.astype(np.float64), dout)
    np.testing.assert_allclose(loss, keras_loss("mean_squared_error", p, y, m), rtol=1e-6)
    np.testing.assert_allclose(core.gradient(kernel), want, rtol=1e-5, atol=1e-7)
    assert np.all(dx[0][m == 0] == 0)  # masked rows pass no gradient back
    assert np.all(dx[1] == 0)  # nor does the mask


def test_all_masked_batch_has_zero_loss_and_gradients():
    core, kernel, _ = build("categorical_crossentropy", "softmax",
                            [metrics_mod.CategoricalAccuracy()])
    x, m, y = data(3, "categorical_crossentropy", empty_rows=(0, 1, 2))
    m[:] = 0.0
    r = core.train_step([x, m], y)
    assert r.tolist() == [0.0, 0.0, 0.0]
    loss, _ = core.gradients([x, m], y)
    assert loss == 0.0
    assert np.all(core.gradient(kernel) == 0)


def test_a_mask_of_ones_gives_the_unmasked_results():
    mets = [metrics_mod.MeanSquaredError(), metrics_mod.MeanAbsoluteError()]
    core, _, mask = build("mean_squared_error", None, mets)
    x, _, y = data(6, "mean_squared_error")
    ones = np.ones((6, T), np.float32)
    masked = core.test_step([x, ones], y)
    core.set_output_masks([-1])
    plain = core.test_step([x, ones], y)
    assert plain.shape == (3,) and masked.shape == (4,)
    np.testing.assert_allclose(masked[:3], plain, rtol=1e-6)
    assert masked[3] == 6.0
    core.set_output_masks([mask])
    np.testing.assert_array_equal(core.test_step([x, ones], y), masked)


def fake_model(core, objs, outputs, n_outputs=1):
    """What _Totals reads of a model: its names, results layout and core."""
    per_output = [f"out{k}_loss" for k in range(n_outputs)] if n_outputs > 1 else []
    return types.SimpleNamespace(
        metrics_names=["loss"] + per_output + [m.name for m in objs],
        _n_means=1 + len(per_output), _metric_objs=objs, _metric_outputs=outputs, _core=core)


def epoch(core, model, x, m, y, batch, sw=None):
    totals = _Totals(model)
    for s in range(0, len(x), batch):
        rows = slice(s, s + batch)
        totals.add(core.test_step([x[rows], m[rows]], y[rows], None,
                                  None if sw is None else sw[rows]), len(x[rows]))
    return totals.logs()


def mean_metric_values(p, y, sparse):
    """Per row (n, T): each mean metric's value, as Keras defines it."""
    p = p.astype(np.float64)
    if sparse:
        above = (p > np.take_along_axis(p, y[..., None], -1)).sum(-1)
        return {"sparse_categorical_accuracy": p.argmax(-1) == y,
                "sparse_top_k_categorical_accuracy": above < 2}
    t = y.argmax(-1)
    above = (p > np.take_along_axis(p, t[..., None], -1)).sum(-1)
    return {"binary_accuracy": ((p > 0.5) == y).mean(-1),
            "categorical_accuracy": p.argmax(-1) == t,
            "top_k_categorical_accuracy": above < 2,
            "mean_absolute_error": np.abs(p - y).mean(-1),
            "mean_squared_error": ((p - y) ** 2).mean(-1)}


@pytest.mark.parametrize("weighted", [False, True])
def test_mean_metrics_are_a_weighted_mean_over_the_epoch(weighted):
    """Sample weights weigh the loss only: compile's metrics are unweighted in Keras 3."""
    objs = [metrics_mod.BinaryAccuracy(), metrics_mod.CategoricalAccuracy(),
            metrics_mod.TopKCategoricalAccuracy(k=2), metrics_mod.MeanAbsoluteError(),
            metrics_mod.MeanSquaredError(), metrics_mod.RootMeanSquaredError()]
    core, _, _ = build("categorical_crossentropy", "softmax", objs)
    x, m, y = data(11, "categorical_crossentropy", empty_rows=(2, 5, 6, 7))
    sw = np.random.default_rng(4).uniform(0.5, 2, 11).astype(np.float32) if weighted else None
    logs = epoch(core, fake_model(core, objs, [0] * len(objs)), x, m, y, 4, sw)
    p = core.predict([x, m], 11)
    for name, v in mean_metric_values(p, y, False).items():
        np.testing.assert_allclose(logs[name], (v * m).sum() / m.sum(), rtol=1e-6, err_msg=name)
    # Keras's RMSE is a Mean of (p - y)^2, which carries no mask: every row counts
    rmse = np.sqrt(((p - y) ** 2).mean())
    np.testing.assert_allclose(logs["root_mean_squared_error"], rmse, rtol=1e-6)
    # the loss is the mean of the batches' losses over samples, as Keras's loss tracker
    want = sum(keras_loss("categorical_crossentropy", p[s:s + 4], y[s:s + 4], m[s:s + 4],
                          None if sw is None else sw[s:s + 4]) * len(p[s:s + 4])
               for s in range(0, 11, 4)) / 11
    np.testing.assert_allclose(logs["loss"], want, rtol=1e-6)


def test_sparse_mean_metrics_are_weighted_by_the_mask():
    objs = [metrics_mod.SparseCategoricalAccuracy(),
            metrics_mod.SparseTopKCategoricalAccuracy(k=2)]
    core, _, _ = build("sparse_categorical_crossentropy", "softmax", objs)
    x, m, y = data(10, "sparse_categorical_crossentropy")
    logs = epoch(core, fake_model(core, objs, [0, 0]), x, m, y, 3)
    p = core.predict([x, m], 10)
    for name, v in mean_metric_values(p, y, True).items():
        np.testing.assert_allclose(logs[name], (v * m).sum() / m.sum(), rtol=1e-6, err_msg=name)


def test_an_epoch_with_every_row_masked_reports_zero_not_nan():
    objs = [metrics_mod.MeanAbsoluteError()]
    core, _, _ = build("mean_squared_error", None, objs)
    x, m, y = data(5, "mean_squared_error")
    m[:] = 0.0
    logs = epoch(core, fake_model(core, objs, [0]), x, m, y, 2)
    assert logs == {"loss": 0.0, "mean_absolute_error": 0.0}


def test_confusion_metrics_count_masked_elements_as_keras_does():
    objs = [metrics_mod.Precision(), metrics_mod.Recall(), metrics_mod.AUC(num_thresholds=50)]
    core, _, _ = build("binary_crossentropy", "sigmoid", objs)
    x, m, y = data(10, "binary_crossentropy")
    logs = epoch(core, fake_model(core, objs, [0, 0, 0]), x, m, y, 4)
    p = core.predict([x, m], 10)
    # every element counts, as Keras 3's Precision, Recall and AUC ignore the mask
    ref = [metrics_mod.Precision(), metrics_mod.Recall(), metrics_mod.AUC(num_thresholds=50)]
    for r in ref:
        r.update_state(y, p)
        np.testing.assert_allclose(logs[r.name], r.result(), rtol=1e-6, err_msg=r.name)
    pp, yy = p > 0.5, y != 0
    tp, fp = (pp & yy).sum(), (pp & ~yy).sum()
    np.testing.assert_allclose(logs["precision"], tp / (tp + fp), rtol=1e-6)


def test_two_outputs_one_masked():
    """results: loss, each output's loss, each output's metrics, the masked output's weight."""
    rng = np.random.default_rng(5)
    core = _core.Model()
    k1, k2 = core.add_variable((F, C)), core.add_variable((F, 2))
    core.alloc()
    core.variable(k1)[:] = rng.normal(size=(F, C))
    core.variable(k2)[:] = rng.normal(size=(F, 2))
    x = core.add_input((T, F), "float32")
    mask = core.add_input((T,), "float32")
    o1, _ = core.add_node("dense", (x,), (k1,))
    o2, _ = core.add_node("dense", (x,), (k2,))
    core.set_output([o1, o2])
    core.set_output_masks([-1, mask])
    objs = [metrics_mod.MeanAbsoluteError(), metrics_mod.MeanAbsoluteError(name="mae_b")]
    core.compile_outputs([("mean_squared_error", False, 1.0, [objs[0]._spec()]),
                          ("mean_squared_error", False, 0.5, [objs[1]._spec()])])
    assert core.output_masks() == [-1, mask]
    xs, m, _ = data(7, "mean_squared_error")
    y1 = rng.normal(size=(7, T, C)).astype(np.float32)
    y2 = rng.normal(size=(7, T, 2)).astype(np.float32)
    r = core.test_step([xs, m], [y1, y2])
    assert r.shape == (6,)
    p1, p2 = core.predict([xs, m], 7)
    l1 = keras_loss("mean_squared_error", p1, y1, np.ones_like(m))
    l2 = keras_loss("mean_squared_error", p2, y2, m)
    np.testing.assert_allclose(r[:3], [l1 + 0.5 * l2, l1, l2], rtol=1e-6)
    np.testing.assert_allclose(r[5], m.sum() / T, rtol=1e-7)
    model = fake_model(core, objs, [0, 1], n_outputs=2)
    totals = _Totals(model)
    for s in range(0, 7, 3):
        rows = slice(s, s + 3)
        totals.add(core.test_step([xs[rows], m[rows]], [y1[rows], y2[rows]]), len(xs[rows]))
    logs = totals.logs()
    np.testing.assert_allclose(logs["mean_absolute_error"], np.abs(p1 - y1).mean(), rtol=1e-6)
    want = (np.abs(p2 - y2).mean(-1) * m).sum() / m.sum()
    np.testing.assert_allclose(logs["mae_b"], want, rtol=1e-6)


def test_a_mask_computed_in_the_graph_stays_alive_until_the_loss():
    """Token ids -> embedding -> dense -> relu -> dense -> softmax; the mask, ids != 0, is made
    first and read only by the loss: the plan must not reuse its memory before."""
    rng = np.random.default_rng(6)
    V, E = 12, 3
    core = _core.Model()
    table = core.add_variable((V, E))
    ks = [core.add_variable((E, T)), core.add_variable((T, C))]
    core.alloc()
    core.variable(table)[:] = rng.normal(size=(V, E))
    for k in ks:
        core.variable(k)[:] = rng.normal(size=core.variable(k).shape)
    ids = core.add_input((T,), "int32")
    as_float, _ = core.add_node("cast", (ids,), (), (0,))
    mask, _ = core.add_node("binary", (as_float,), (), (_core.op_code("binary", "not_equal"), 0),
                            (0.0,))
    h, _ = core.add_node("embedding", (ids,), (table,))
    h, _ = core.add_node("dense", (h,), (ks[0],))
    h, _ = core.add_node("relu", (h,))
    h, _ = core.add_node("dense", (h,), (ks[1],))
    out, _ = core.add_node("softmax", (h,))
    core.set_output(out)
    core.set_output_masks([mask])
    acc = metrics_mod.SparseCategoricalAccuracy()
    core.compile_outputs([("sparse_categorical_crossentropy", False, 1.0, [acc._spec()])])
    core.set_optimizer("sgd", learning_rate=0.0)
    x = rng.integers(1, V, (8, T)).astype(np.int32)
    x[0, 2:] = 0
    x[3] = 0
    y = rng.integers(0, C, (8, T)).astype(np.int32)
    m = (x != 0).astype(np.float32)
    p = core.predict(x, 8)
    for step in (core.test_step, core.train_step):
        r = step(x, y)
        np.testing.assert_allclose(r[0], keras_loss("sparse_categorical_crossentropy", p, y, m),
                                   rtol=1e-6)
        np.testing.assert_allclose(r[1] / r[2], ((p.argmax(-1) == y) * m).sum() / m.sum())
        np.testing.assert_allclose(r[2], m.sum() / T)
    loss, _ = core.gradients(x, y)
    np.testing.assert_allclose(loss, keras_loss("sparse_categorical_crossentropy", p, y, m),
                               rtol=1e-6)


def test_bad_output_masks_are_refused():
    core, _, mask = build()
    with pytest.raises(TypeError):
        core.set_output_masks(mask)
    with pytest.raises(TypeError):
        core.set_output_masks(["mask"])
    with pytest.raises(ValueError, match="one node"):
        core.set_output_masks([mask, -1])
    with pytest.raises(ValueError, match="no node 99"):
        core.set_output_masks([99])
    with pytest.raises(ValueError, match="no node -2"):
        core.set_output_masks([-2])
    as_int, _ = core.add_node("cast", (mask,), (), (1,))
    with pytest.raises(TypeError, match="float32"):
        core.set_output_masks([as_int])
    const = core.add_constant(np.ones(T, np.float32))
    with pytest.raises(ValueError, match="no batch axis"):
        core.set_output_masks([const])
    with pytest.raises(ValueError, match="rows per sample"):
        core.set_output_masks([0])  # node 0, the input x: T * F values per sample
    assert core.output_masks() == [mask]  # a refused call changes nothing
    bare = _core.Model()
    bare.alloc()
    bare.add_input((T,), "float32")
    with pytest.raises(RuntimeError, match="no output"):
        bare.set_output_masks([0])


def test_the_mask_weighs_the_mean_metrics_keras_wraps_only():
    """MeanMetricWrapper metrics read the mask in Keras 3; RMSE and the confusion metrics do not."""
    reads = {m.name: _core.metric_reads_mask(m._spec()) for m in [
        metrics_mod.BinaryAccuracy(), metrics_mod.CategoricalAccuracy(),
        metrics_mod.SparseCategoricalAccuracy(), metrics_mod.TopKCategoricalAccuracy(),
        metrics_mod.SparseTopKCategoricalAccuracy(), metrics_mod.MeanAbsoluteError(),
        metrics_mod.MeanSquaredError(), metrics_mod.RootMeanSquaredError(),
        metrics_mod.Precision(), metrics_mod.Recall(), metrics_mod.AUC()]}
    assert [k for k, v in reads.items() if not v] == ["root_mean_squared_error", "precision",
                                                      "recall", "auc"]
    assert sum(reads.values()) == 7
