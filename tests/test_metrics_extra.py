"""Stateful metrics (Keras 3's TopK, Precision, Recall, AUC, RootMeanSquaredError and the mean
metrics): results against scikit-learn and NumPy, accumulation over several updates, reset, the
History and evaluate values of fit, and the errors for arguments that are not supported."""

import numpy as np
import pytest
from sklearn.metrics import precision_score, recall_score, roc_auc_score

import pynn
from pynn import layers, metrics


def binary_data(n=600, seed=0, shape=None):
    """Predictions in [0, 1] and 0/1 labels correlated with them."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(size=shape or (n, 1)).astype(np.float32)
    y = (rng.uniform(size=p.shape) < 0.2 + 0.6 * p).astype(np.float32)
    return y, p


def class_data(n=300, c=10, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n, c)).astype(np.float32)
    labels = rng.integers(0, c, n)
    return np.eye(c, dtype=np.float32)[labels], labels.astype(np.int32), p


def in_top_k(p, labels, k):
    order = np.argsort(-p, axis=1)[:, :k]
    return np.mean([labels[i] in order[i] for i in range(len(labels))])


# ---- results against references ------------------------------------------------------------

@pytest.mark.parametrize("shape", [(800, 1), (200, 4)])
def test_auc_matches_sklearn_roc_auc(shape):
    y, p = binary_data(shape=shape, seed=3)
    m = metrics.AUC()
    m.update_state(y, p)
    assert m.name == "auc" and m.num_thresholds == 200
    assert abs(m.result() - roc_auc_score(y.ravel(), p.ravel())) < 1e-2


def test_auc_from_logits_equals_auc_of_sigmoid():
    y, p = binary_data(seed=4)
    z = np.log(p / (1 - p + 1e-7) + 1e-7).astype(np.float32)
    a, b = metrics.AUC(from_logits=True), metrics.AUC()
    a.update_state(y, z)
    b.update_state(y, 1 / (1 + np.exp(-z)))
    assert abs(a.result() - b.result()) < 1e-6


def test_auc_keras_documented_example_and_counts():
    m = metrics.AUC(num_thresholds=3)
    m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
    assert m.result() == pytest.approx(0.75)
    np.testing.assert_array_equal(m.true_positives, [2, 1, 0])
    np.testing.assert_array_equal(m.false_positives, [2, 0, 0])
    np.testing.assert_array_equal(m.true_negatives, [0, 2, 2])
    np.testing.assert_array_equal(m.false_negatives, [0, 1, 2])
    assert m.thresholds[0] < 0 and m.thresholds[1] == 0.5 and m.thresholds[2] > 1


def test_auc_minoring_and_majoring_bound_the_interpolation():
    y, p = binary_data(seed=5)
    vals = {}
    for method in ("minoring", "interpolation", "majoring"):
        m = metrics.AUC(num_thresholds=20, summation_method=method)
        m.update_state(y, p)
        vals[method] = m.result()
    assert vals["minoring"] <= vals["interpolation"] <= vals["majoring"]


def test_pr_auc_is_close_to_average_precision():
    from sklearn.metrics import average_precision_score
    y, p = binary_data(n=2000, seed=6)
    m = metrics.AUC(curve="PR", num_thresholds=500)
    m.update_state(y, p)
    assert m.curve == "PR"
    assert abs(m.result() - average_precision_score(y.ravel(), p.ravel())) < 2e-2


@pytest.mark.parametrize("threshold", [None, 0.3, [0.7]])
def test_precision_and_recall_match_sklearn(threshold):
    y, p = binary_data(shape=(150, 3), seed=7)
    t = 0.5 if threshold is None else np.ravel(threshold)[0]
    pr, rc = metrics.Precision(thresholds=threshold), metrics.Recall(thresholds=threshold)
    pr.update_state(y, p)
    rc.update_state(y, p)
    pred = (p.ravel() > t).astype(int)
    assert pr.result() == pytest.approx(precision_score(y.ravel(), pred), abs=1e-12)
    assert rc.result() == pytest.approx(recall_score(y.ravel(), pred), abs=1e-12)
    assert (pr.name, rc.name) == ("precision", "recall")


def test_precision_without_positive_predictions_is_zero():
    m = metrics.Precision()
    m.update_state([1, 0, 1], [0.1, 0.2, 0.3])
    assert m.result() == 0.0


@pytest.mark.parametrize("k", [1, 3, 5])
def test_top_k_accuracies_match_numpy(k):
    onehot, labels, p = class_data(seed=k)
    dense = metrics.TopKCategoricalAccuracy(k=k)
    sparse = metrics.SparseTopKCategoricalAccuracy(k=k)
    dense.update_state(onehot, p)
    sparse.update_state(labels, p)
    want = in_top_k(p, labels, k)
    assert dense.result() == pytest.approx(want, abs=1e-6)
    assert sparse.result() == pytest.approx(want, abs=1e-6)


def test_top_k_counts_ties_with_the_kth_value_in():
    m = metrics.SparseTopKCategoricalAccuracy(k=1)
    m.update_state([1], [[0.5, 0.5, 0.1]])
    assert m.result() == 1.0


def test_default_names_and_k():
    assert metrics.TopKCategoricalAccuracy().name == "top_k_categorical_accuracy"
    assert metrics.SparseTopKCategoricalAccuracy().k == 5
    assert metrics.RootMeanSquaredError().name == "root_mean_squared_error"


def test_mean_metrics_match_numpy():
    rng = np.random.default_rng(8)
    y, p = rng.normal(size=(50, 3)).astype(np.float32), rng.normal(size=(50, 3)).astype(
        np.float32)
    cases = [(metrics.MeanSquaredError(), np.mean((y - p) ** 2)),
             (metrics.MeanAbsoluteError(), np.mean(np.abs(y - p))),
             (metrics.RootMeanSquaredError(), np.sqrt(np.mean((y - p) ** 2)))]
    for m, want in cases:
        m.update_state(y, p)
        assert m.result() == pytest.approx(want, rel=1e-5), m.name
    yb, pb = binary_data(shape=(40, 2), seed=9)
    m = metrics.BinaryAccuracy(threshold=0.7)
    m.update_state(yb, pb)
    assert m.result() == pytest.approx(np.mean((pb > 0.7) == yb), abs=1e-6)
    onehot, labels, pc = class_data(seed=10)
    m = metrics.CategoricalAccuracy()
    m.update_state(onehot, pc)
    assert m.result() == pytest.approx(np.mean(pc.argmax(1) == labels), abs=1e-6)


# ---- state -----------------------------------------------------------------------------------

def _all_metrics():
    return [metrics.AUC(), metrics.AUC(curve="PR"), metrics.Precision(), metrics.Recall(),
            metrics.RootMeanSquaredError(), metrics.MeanSquaredError(),
            metrics.BinaryAccuracy()]


def test_several_updates_equal_one_update_on_all_data():
    y, p = binary_data(n=500, seed=11)
    for one, many in zip(_all_metrics(), _all_metrics()):
        one.update_state(y, p)
        for part in np.array_split(np.arange(500), [7, 130, 131, 400]):
            many.update_state(y[part], p[part])
        assert many.result() == pytest.approx(one.result(), rel=1e-6, abs=1e-12), one.name


def test_sparse_top_k_accumulates_over_updates():
    onehot, labels, p = class_data(seed=12)
    m = metrics.SparseTopKCategoricalAccuracy(k=3)
    for part in np.array_split(np.arange(len(labels)), 4):
        m.update_state(labels[part], p[part])
    assert m.result() == pytest.approx(in_top_k(p, labels, 3), abs=1e-6)


def test_reset_state_forgets_everything():
    y, p = binary_data(seed=13)
    y2, p2 = binary_data(seed=14)
    for m in _all_metrics():
        m.update_state(y, p)
        m.reset_state()
        assert m.result() == 0.0, m.name
        m.update_state(y2, p2)
        fresh = type(m).from_config(m.get_config())
        fresh.update_state(y2, p2)
        assert m.result() == pytest.approx(fresh.result()), m.name


def test_config_round_trip_keeps_arguments():
    m = metrics.AUC(num_thresholds=37, curve="pr", summation_method="Majoring", name="pr_auc",
                    from_logits=True)
    c = metrics.AUC.from_config(m.get_config())
    assert (c.num_thresholds, c.curve, c.summation_method, c.name, c._from_logits) == \
        (37, "PR", "majoring", "pr_auc", True)
    assert metrics.Precision.from_config(metrics.Precision(0.3).get_config()).thresholds == [0.3]
    assert metrics.TopKCategoricalAccuracy.from_config({"k": 2, "name": "t2"}).k == 2


def test_update_state_takes_tensors_and_calling_returns_the_result():
    y, p = binary_data(seed=15)
    m = metrics.AUC()
    r = m(pynn.Tensor(y), pynn.Tensor(p))
    assert r == pytest.approx(m.result()) and 0.5 < r <= 1


# ---- fit and evaluate --------------------------------------------------------------------------

def frozen_binary_model(seed=0):
    """Dense(3) relu -> Dense(1) sigmoid, trained with SGD at learning rate 0 (weights fixed)."""
    pynn.utils.set_random_seed(seed)
    model = pynn.Sequential([pynn.Input(shape=(4,)), layers.Dense(3, activation="relu"),
                             layers.Dense(1, activation="sigmoid")])
    return model


def xy(n=100, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x[:, :1] + 0.5 * rng.normal(size=(n, 1)) > 0).astype(np.float32)
    return x, y


def reference(metric, y, p):
    metric.reset_state()
    metric.update_state(y, p)
    return metric.result()


def test_fit_history_holds_auc_and_precision_of_the_epochs_predictions():
    model = frozen_binary_model()
    model.compile(optimizer=pynn.optimizers.SGD(learning_rate=0.0), loss="binary_crossentropy",
                  metrics=[metrics.AUC(), metrics.Precision()])
    x, y = xy()
    xv, yv = xy(40, seed=2)
    h = model.fit(x, y, batch_size=16, epochs=2, validation_data=(xv, yv), verbose=0)
    assert set(h.history) == {"loss", "auc", "precision", "val_loss", "val_auc",
                              "val_precision"}
    p, pv = model.predict(x, verbose=0), model.predict(xv, verbose=0)
    for key, m, yy, pp in [("auc", metrics.AUC(), y, p), ("precision", metrics.Precision(), y, p),
                           ("val_auc", metrics.AUC(), yv, pv),
                           ("val_precision", metrics.Precision(), yv, pv)]:
        want = reference(m, yy, pp)
        assert h.history[key] == pytest.approx([want, want], abs=1e-6), key
    logs = model.evaluate(xv, yv, batch_size=7, verbose=0, return_dict=True)
    assert logs["auc"] == pytest.approx(h.history["val_auc"][-1], abs=1e-6)


def test_compile_takes_keras_metric_strings():
    model = frozen_binary_model()
    model.compile(optimizer=pynn.optimizers.SGD(learning_rate=0.0), loss="binary_crossentropy",
                  metrics=["auc", "Precision", "recall", "root_mean_squared_error", "accuracy"])
    x, y = xy()
    logs = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    p = model.predict(x, verbose=0)
    assert logs["auc"] == pytest.approx(reference(metrics.AUC(), y, p), abs=1e-6)
    assert logs["Precision"] == pytest.approx(reference(metrics.Precision(), y, p), abs=1e-6)
    assert logs["recall"] == pytest.approx(reference(metrics.Recall(), y, p), abs=1e-6)
    assert logs["root_mean_squared_error"] == pytest.approx(np.sqrt(np.mean((p - y) ** 2)),
                                                            rel=1e-5)
    assert logs["accuracy"] == pytest.approx(np.mean((p > 0.5) == y), abs=1e-6)


def test_train_on_batch_returns_the_batch_metrics():
    model = frozen_binary_model()
    model.compile(optimizer=pynn.optimizers.SGD(learning_rate=0.0), loss="binary_crossentropy",
                  metrics=["auc", metrics.RootMeanSquaredError()])
    x, y = xy(30)
    logs = model.train_on_batch(x, y, return_dict=True)
    p = model.predict(x, verbose=0)
    assert logs["auc"] == pytest.approx(reference(metrics.AUC(), y, p), abs=1e-6)
    assert logs["root_mean_squared_error"] == pytest.approx(np.sqrt(np.mean((p - y) ** 2)),
                                                            rel=1e-5)
    assert model.test_on_batch(x, y, return_dict=True)["auc"] == pytest.approx(logs["auc"])


def test_sparse_top_k_in_fit_with_integer_labels():
    pynn.utils.set_random_seed(0)
    model = pynn.Sequential([pynn.Input(shape=(6,)), layers.Dense(8, activation="softmax")])
    model.compile(optimizer=pynn.optimizers.SGD(learning_rate=0.0),
                  loss="sparse_categorical_crossentropy",
                  metrics=[metrics.SparseTopKCategoricalAccuracy(k=3)])
    rng = np.random.default_rng(3)
    x, labels = rng.normal(size=(90, 6)).astype(np.float32), rng.integers(0, 8, 90)
    h = model.fit(x, labels, batch_size=20, epochs=1, verbose=0)
    p = model.predict(x, verbose=0)
    assert h.history["sparse_top_k_categorical_accuracy"][0] == pytest.approx(
        in_top_k(p, labels, 3), abs=1e-6)


def test_two_outputs_get_output_prefixed_metric_names():
    pynn.utils.set_random_seed(0)
    inp = pynn.Input(shape=(4,), name="x")
    h = layers.Dense(5, activation="relu", name="h")(inp)
    a = layers.Dense(1, activation="sigmoid", name="a")(h)
    b = layers.Dense(1, activation="sigmoid", name="b")(h)
    model = pynn.Model(inp, [a, b])
    model.compile(optimizer=pynn.optimizers.SGD(learning_rate=0.0), loss="binary_crossentropy",
                  metrics=[["auc"], ["precision", "auc"]])
    x, y = xy()
    h = model.fit(x, [y, 1 - y], batch_size=32, epochs=1, verbose=0)
    assert {"a_auc", "b_precision", "b_auc"} <= set(h.history)
    pa, pb = model.predict(x, verbose=0)
    assert h.history["b_auc"][0] == pytest.approx(reference(metrics.AUC(), 1 - y, pb), abs=1e-6)


# ---- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, match", [
    (lambda: metrics.AUC(num_thresholds=1), "num_thresholds"),
    (lambda: metrics.AUC(num_thresholds=2.5), "num_thresholds"),
    (lambda: metrics.AUC(curve="ROCX"), "curve"),
    (lambda: metrics.AUC(summation_method="simpson"), "summation_method"),
    (lambda: metrics.AUC(num_labels=3), "num_labels"),
    (lambda: metrics.AUC(thresholds=["a"]), "threshold"),
    (lambda: metrics.Precision(thresholds=1.5), r"\[0, 1\]"),
    (lambda: metrics.Recall(thresholds=[0.2, 1.4]), r"\[0, 1\]"),
    (lambda: metrics.Precision(top_k=0), "top_k"),
    (lambda: metrics.Recall(class_id=-1), "class_id"),
    (lambda: metrics.TopKCategoricalAccuracy(k=0), "k must be"),
    (lambda: metrics.BinaryAccuracy(threshold="high"), "threshold"),
])
def test_bad_arguments_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_sample_weight_per_sample_or_refused_clearly():
    # one weight per sample is supported (issue 16; figures against Keras in
    # test_keras_io_examples2.py); any other shape is refused, naming sample_weight
    m = metrics.AUC()
    m.update_state([0, 1], [0.2, 0.8], sample_weight=[1, 2])
    assert float(m.result()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="sample_weight"):
        metrics.AUC().update_state([0, 1], [0.2, 0.8], sample_weight=[1, 2, 3])


def test_bad_data_raises_value_error():
    with pytest.raises(ValueError, match="same shape"):
        metrics.AUC().update_state([0, 1, 1], [0.2, 0.8])
    with pytest.raises(ValueError, match="label 7 is out of range"):
        metrics.SparseTopKCategoricalAccuracy().update_state([7], [[0.1, 0.9]])
    with pytest.raises(ValueError, match="one integer label per row"):
        metrics.SparseTopKCategoricalAccuracy().update_state([[0, 1]], [[0.1, 0.9]])


def test_compile_refuses_dense_metric_with_integer_labels_and_unknown_names():
    pynn.utils.set_random_seed(0)
    model = pynn.Sequential([pynn.Input(shape=(6,)), layers.Dense(3, activation="softmax")])
    with pytest.raises(ValueError, match="auc needs float targets"):
        model.compile(loss="sparse_categorical_crossentropy", metrics=["auc"])
    with pytest.raises(ValueError, match="Unknown metric"):
        model.compile(loss="mse", metrics=["f1_score_of_doom"])
    with pytest.raises(ValueError, match="integer labels"):
        model.compile(loss="categorical_crossentropy",
                      metrics=[metrics.SparseTopKCategoricalAccuracy()])


def _accuracy_model(units, activation, loss):
    model = pynn.Sequential([pynn.Input((4,)), pynn.layers.Dense(units, activation=activation)])
    model.compile(optimizer="sgd", loss=loss, metrics=["accuracy"])
    return model


def _user_mse(y_true, y_pred):
    return pynn.ops.mean((y_true - y_pred) ** 2, axis=-1)


@pytest.mark.parametrize("units, loss, y_kind, form", [
    (3, "binary_crossentropy", "multi_label", "categorical"),  # Keras: the shapes decide
    (1, "binary_crossentropy", "binary", "binary"),
    (3, "sparse_categorical_crossentropy", "labels", "sparse"),
    (3, "categorical_crossentropy", "onehot", "categorical"),
    (1, _user_mse, "binary", "binary"),
    (3, _user_mse, "labels_column", "sparse"),
    (3, _user_mse, "onehot", "categorical"),
    (3, pynn.losses.Huber(), "onehot", "categorical")])
def test_accuracy_takes_its_form_from_the_shapes_as_keras_3_does(units, loss, y_kind, form):
    """Keras 3's compile picks binary accuracy for one prediction per sample, sparse for
    integer labels, categorical otherwise, whatever the loss (a multi-label binary
    cross-entropy gets categorical accuracy); with a user loss too."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype(np.float32)
    labels = rng.integers(0, units, 16)
    y = {"multi_label": (rng.random((16, units)) > 0.5).astype(np.float32),
         "binary": (rng.random((16, 1)) > 0.5).astype(np.float32),
         "labels": labels, "labels_column": labels[:, None].astype(np.float32),
         "onehot": np.eye(units, dtype=np.float32)[labels]}[y_kind]
    model = _accuracy_model(units, "sigmoid" if units == 1 else "softmax", loss)
    got = model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"]
    p = model.predict(x, verbose=0)
    if form == "binary":
        want = np.mean((p > 0.5) == (y > 0.5))
    elif form == "sparse":
        want = np.mean(p.argmax(-1) == np.asarray(y).reshape(-1))
    else:
        want = np.mean(p.argmax(-1) == y.argmax(-1))
    assert got == pytest.approx(want)
