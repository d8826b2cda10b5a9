"""Keras 3's metrics (issue 19): every class and function of keras.metrics, compared with what
Keras 3 (JAX) computes on shared random data (tests/keras_reference/metrics.py and its .npz):
results after updates with sample weights, thresholds, top_k, class_id, multi_label...; the
function forms; the configs; and compile/evaluate/fit logs with metrics inside and outside the
core. The rest checks the machinery: metrics outside the core updated from the fused step's own
predictions, user functions and Metric subclasses in compile, masks, configs, refusals."""

import json
import os
import re
import warnings

import numpy as np
import pytest
from helpers import (
    keras_reference_module,
    keras_reference_values,
    keras_values_now,
)

import pynn
from pynn import layers, metrics

# keras.metrics' public names in Keras 3.15 (dir(keras.metrics))
KERAS_NAMES = [
    "AUC", "Accuracy", "BinaryAccuracy", "BinaryCrossentropy", "BinaryIoU", "CategoricalAccuracy",
    "CategoricalCrossentropy", "CategoricalHinge", "ConcordanceCorrelation", "CosineSimilarity",
    "F1Score", "FBetaScore", "FalseNegatives", "FalsePositives", "Hinge", "IoU", "KLDivergence",
    "LogCoshError", "Mean", "MeanAbsoluteError", "MeanAbsolutePercentageError", "MeanIoU",
    "MeanMetricWrapper", "MeanSquaredError", "MeanSquaredLogarithmicError", "Metric",
    "OneHotIoU", "OneHotMeanIoU", "PearsonCorrelation", "Poisson", "Precision",
    "PrecisionAtRecall", "R2Score", "Recall", "RecallAtPrecision", "RootMeanSquaredError",
    "SensitivityAtSpecificity", "SparseCategoricalAccuracy", "SparseCategoricalCrossentropy",
    "SparseTopKCategoricalAccuracy", "SpecificityAtSensitivity", "SquaredHinge", "Sum",
    "TopKCategoricalAccuracy", "TrueNegatives", "TruePositives", "binary_accuracy",
    "binary_crossentropy", "binary_focal_crossentropy", "categorical_accuracy",
    "categorical_crossentropy", "categorical_focal_crossentropy", "categorical_hinge",
    "concordance_correlation", "deserialize", "get", "hinge", "huber", "kl_divergence",
    "log_cosh", "mean_absolute_error", "mean_absolute_percentage_error", "mean_squared_error",
    "mean_squared_logarithmic_error", "pearson_correlation", "poisson", "serialize",
    "sparse_categorical_accuracy", "sparse_categorical_crossentropy",
    "sparse_top_k_categorical_accuracy", "squared_hinge", "top_k_categorical_accuracy",
]


def _reference_module():
    mod = keras_reference_module("metrics")
    return mod


@pytest.fixture(scope="module")
def keras_run():
    mod = _reference_module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mine = mod.run()
    return mod, mine, keras_reference_values("metrics")


def _cases():
    mod = _reference_module()
    return list(mod.cases(mod.data()))


def test_every_keras_metrics_name_is_in_pynn_metrics():
    missing = [n for n in KERAS_NAMES if not hasattr(metrics, n)]
    assert missing == []
    assert len(KERAS_NAMES) == 72


@pytest.mark.parametrize("name", _cases())
def test_metric_matches_keras(keras_run, name):
    """After one update, after a second one with sample weights, and after one update of
    everything (reset first)."""
    _, mine, ref = keras_run
    for part in ("first", "result", "once"):
        key = f"case/{name}/{part}"
        np.testing.assert_allclose(mine[key], ref[key], rtol=2e-5, atol=2e-6, err_msg=key)


def _same_config(mine: dict, theirs: dict) -> bool:
    """Equal, but for the number Keras adds to a default name (auc_3: pynn names it auc)."""
    theirs = dict(theirs)
    if re.fullmatch(re.escape(mine.get("name", "")) + r"_\d+", str(theirs.get("name"))):
        theirs["name"] = mine["name"]
    if theirs.get("name") == "mean_metric_wrapper_1":
        theirs["name"] = "mean_metric_wrapper"
    return mine == theirs


@pytest.mark.parametrize("name", [n for n in _cases() if n != "wrapper_user"])
def test_config_matches_keras(keras_run, name):
    _, mine, ref = keras_run
    key = f"case/{name}/config"
    assert _same_config(json.loads(str(mine[key])), json.loads(str(ref[key])))


def test_function_forms_match_keras(keras_run):
    mod, mine, ref = keras_run
    keys = [k for k in ref if k.startswith("fn/")]
    assert len(keys) == len(mod.FUNCTIONS)
    for key in keys:
        np.testing.assert_allclose(mine[key], ref[key], rtol=2e-5, atol=2e-6, err_msg=key)


@pytest.mark.parametrize("model", ["categorical", "binary", "regression", "sparse", "weighted"])
def test_compile_evaluate_and_fit_logs_match_keras(keras_run, model):
    """evaluate's dict, fit's History (two epochs of SGD, validation included: the same keys
    and values) and, after fit, the metric objects given to compile (they hold the last run's
    state, the validation's, as Keras's do). 'weighted': weighted_metrics with sample weights
    in evaluate, fit and validation."""
    _, mine, ref = keras_run
    for part in ("evaluate", "fit", "after"):
        prefix = f"{part}/{model}/"
        want = {k for k in ref if k.startswith(prefix)}
        assert {k for k in mine if k.startswith(prefix)} == want, part
        for key in sorted(want):
            np.testing.assert_allclose(mine[key], ref[key], rtol=1e-4, atol=1e-5, err_msg=key)


@pytest.mark.skipif(not os.environ.get("PYNN_KERAS_PYTHON"),
                    reason="set PYNN_KERAS_PYTHON to a Python with keras and jax")
def test_the_stored_keras_reference_is_what_keras_computes(tmp_path):
    """metrics.npz made again by Keras 3 now equals the stored one."""
    fresh = keras_values_now("metrics", os.environ["PYNN_KERAS_PYTHON"], "jax", tmp_path)
    stored = keras_reference_values("metrics")
    assert set(fresh) == set(stored)
    for key in stored:
        if stored[key].dtype.kind in "US":
            assert str(fresh[key]) == str(stored[key]), key
        else:
            np.testing.assert_allclose(fresh[key], stored[key], rtol=1e-6, err_msg=key)


# ---- the path of the metrics outside the core ------------------------------------------------

def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]
    return x, y


def _model(seed=0, dropout=0.0, units=3, activation="softmax"):
    pynn.utils.set_random_seed(seed)
    body = [pynn.Input((6,)), layers.Dense(8, activation="relu")]
    if dropout:
        body.append(layers.Dropout(dropout))
    return pynn.Sequential(body + [layers.Dense(units, activation=activation)])


def test_a_core_only_compile_steps_with_the_core_itself():
    """Only core metrics: fit and evaluate call the core's step itself (no wrapper, no
    outputs handed back), as fast as before."""
    from pynn.models.trainer import _Totals
    model = _model()
    model.compile("sgd", "categorical_crossentropy",
                  metrics=["accuracy", "mae", metrics.AUC(), metrics.Precision()])
    assert model._metric_in_core == [True] * 4
    step = model._core.train_step
    assert _Totals(model).stepper(step) is step
    model.compile("sgd", "categorical_crossentropy", metrics=["accuracy", metrics.F1Score()])
    assert model._metric_in_core == [True, False]
    assert _Totals(model).stepper(step) is not step


def test_metrics_outside_the_core_read_the_training_steps_own_predictions():
    """With Dropout, a second forward pass would differ: a Python MSE metric equals the loss
    (both the batch means of the same forward's squared errors) only from the step's own
    outputs."""
    x, y = _data()
    model = _model(dropout=0.5, activation=None)

    def mse_fn(y_true, y_pred):
        return pynn.ops.mean(pynn.ops.square(y_true - y_pred), axis=-1)

    model.compile(pynn.optimizers.SGD(0.05), "mse", metrics=[mse_fn, "mse"])
    assert model._metric_in_core == [False, True]
    h = model.fit(x, y, batch_size=8, epochs=3, verbose=0)
    np.testing.assert_allclose(h.history["mse_fn"], h.history["loss"], rtol=1e-5)
    np.testing.assert_allclose(h.history["mse"], h.history["loss"], rtol=1e-5)


def test_core_and_python_paths_agree():
    """The same metrics in the core and outside it (forced by options only Python has, or by
    a user function) log the same values in fit and evaluate."""
    x, y = _data()
    model = _model()
    core = [metrics.AUC(name="auc_core"), metrics.Precision(name="p_core"),
            metrics.CategoricalAccuracy(name="acc_core"), metrics.MeanAbsoluteError("mae_core")]
    python = [metrics.AUC(name="auc_py", label_weights=[1.0, 1.0, 1.0]),
              metrics.Precision(thresholds=[0.5, 0.5], name="p_py"),
              metrics.MeanMetricWrapper(metrics.categorical_accuracy, name="acc_py"),
              metrics.mean_absolute_error]
    model.compile(pynn.optimizers.SGD(0.1), "categorical_crossentropy", metrics=core + python)
    assert model._metric_in_core == [True] * 4 + [False] * 4
    h = model.fit(x, y, batch_size=7, epochs=2, verbose=0, validation_split=0.25)
    for prefix in ("", "val_"):
        hist = h.history
        np.testing.assert_allclose(hist[prefix + "auc_core"], hist[prefix + "auc_py"], rtol=1e-6)
        np.testing.assert_allclose(hist[prefix + "acc_core"], hist[prefix + "acc_py"], rtol=1e-6)
        np.testing.assert_allclose(hist[prefix + "mae_core"],
                                   hist[prefix + "mean_absolute_error"], rtol=1e-5)
        p_py = np.asarray(hist[prefix + "p_py"])
        np.testing.assert_allclose(hist[prefix + "p_core"], p_py[:, 0], rtol=1e-6)
    logs = model.evaluate(x, y, batch_size=9, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["auc_core"], logs["auc_py"], rtol=1e-6)
    np.testing.assert_allclose(logs["acc_core"], logs["acc_py"], rtol=1e-6)


def test_after_fit_each_metric_object_holds_the_last_epochs_value():
    x, y = _data()
    model = _model()
    objs = [metrics.AUC(), metrics.F1Score(average="macro"), metrics.CategoricalAccuracy(),
            metrics.R2Score(), metrics.TopKCategoricalAccuracy(k=2)]
    model.compile("sgd", "categorical_crossentropy", metrics=objs)
    h = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    for m in objs:
        assert float(m.result()) == pytest.approx(h.history[m.name][-1], rel=1e-6), m.name
    logs = model.evaluate(x[:20], y[:20], verbose=0, return_dict=True)
    for m in objs:
        assert float(m.result()) == pytest.approx(logs[m.name], rel=1e-6), m.name


def test_a_metric_subclass_in_compile_as_keras():
    """update_state / result / reset_state of a user's Metric with add_variable state, reset
    at each epoch and evaluate, in fit's History."""

    class PositivePredictions(metrics.Metric):
        def __init__(self, name="positives", **kwargs):
            super().__init__(name=name, **kwargs)
            self.count = self.add_variable(shape=(), initializer="zeros", name="count")

        def update_state(self, y_true, y_pred, sample_weight=None):
            values = pynn.ops.cast(pynn.ops.greater(y_pred, 0.5), "float32")
            self.count.assign(self.count + pynn.ops.sum(values))

        def result(self):
            return self.count

    x, y = _data(30)
    model = _model()
    m = PositivePredictions()
    model.compile(pynn.optimizers.SGD(0.0), "categorical_crossentropy", metrics=[m])
    h = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    want = float((model.predict(x, verbose=0) > 0.5).sum())
    assert h.history["positives"] == pytest.approx([want, want])
    assert float(m.result()) == pytest.approx(want)
    assert model.evaluate(x[:10], y[:10], verbose=0, return_dict=True)["positives"] == \
        pytest.approx(float((model.predict(x[:10], verbose=0) > 0.5).sum()))
    m.reset_state()
    assert float(m.result()) == 0.0


def test_a_subclass_that_forgets_super_init_is_told():
    class Broken(metrics.Metric):
        def __init__(self):
            self.total = self.add_variable(shape=())

    with pytest.raises(RuntimeError, match="super"):
        Broken()


def test_user_function_metric_is_named_after_it_and_is_the_mean_over_samples():
    x, y = _data(30)
    model = _model()

    def max_error(y_true, y_pred):
        return np.abs(np.asarray(y_true) - np.asarray(y_pred)).max(axis=-1)

    model.compile(pynn.optimizers.SGD(0.0), "categorical_crossentropy", metrics=[max_error])
    logs = model.evaluate(x, y, batch_size=7, verbose=0, return_dict=True)
    p = model.predict(x, verbose=0)
    assert logs["max_error"] == pytest.approx(np.abs(y - p).max(-1).mean(), rel=1e-6)
    assert model.metrics_names == ["loss", "max_error"]


def test_metrics_outside_the_core_on_a_masked_output_weigh_by_the_mask():
    """The step hands back the output's mask with its values: MeanMetricWrapper metrics leave
    masked steps out, as the core's mean metrics do (Keras's MeanMetricWrapper)."""
    rng = np.random.default_rng(1)
    ids = rng.integers(1, 9, (12, 5)).astype(np.int32)
    for i in range(12):
        ids[i, (i % 5) + 1:] = 0
    y = rng.normal(size=(12, 5, 2)).astype(np.float32)
    pynn.utils.set_random_seed(0)
    inp = pynn.Input((5,), dtype="int32")
    h = layers.Embedding(9, 3, mask_zero=True)(inp)
    out = layers.Dense(2)(layers.LSTM(4, return_sequences=True)(h))
    model = pynn.Model(inp, out)
    model.compile(pynn.optimizers.SGD(0.0), "mse",
                  metrics=["mae", metrics.MeanMetricWrapper(metrics.mean_absolute_error,
                                                            name="mae_py"),
                           metrics.LogCoshError()])
    logs = model.evaluate(ids, y, batch_size=5, verbose=0, return_dict=True)
    p = model.predict(ids, verbose=0)
    keep = (ids != 0).astype(np.float64)
    want = (np.abs(p - y).mean(-1) * keep).sum() / keep.sum()
    assert logs["mae"] == pytest.approx(want, rel=1e-5)
    assert logs["mae_py"] == pytest.approx(want, rel=1e-5)
    x = (p - y).astype(np.float64)
    logcosh = (x + np.logaddexp(0, -2 * x) - np.log(2)).mean(-1)
    assert logs["logcosh"] == pytest.approx((logcosh * keep).sum() / keep.sum(), rel=1e-5)


def test_a_masked_output_on_data_carries_its_mask_to_update_state():
    rng = np.random.default_rng(2)
    ids = np.array([[1, 2, 0, 0], [3, 0, 0, 0]], np.int32)
    pynn.utils.set_random_seed(0)
    inp = pynn.Input((4,), dtype="int32")
    out = layers.Dense(2)(layers.Embedding(5, 3, mask_zero=True)(inp))
    model = pynn.Model(inp, out)
    y = rng.normal(size=(2, 4, 2)).astype(np.float32)
    pred = model(ids)
    for m in (metrics.MeanAbsoluteError(), metrics.LogCoshError()):
        m.update_state(y, pred)
        v = m._values(y, np.asarray(pred)) if hasattr(m, "_values") else None
        keep = (ids != 0)
        assert float(m.result()) == pytest.approx(float(np.asarray(v)[keep].mean()), rel=1e-6)


def test_several_outputs_with_metrics_outside_the_core():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20, 4)).astype(np.float32)
    ya = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 20)]
    yb = rng.normal(size=(20, 2)).astype(np.float32)
    pynn.utils.set_random_seed(0)
    inp = pynn.Input((4,))
    a = layers.Dense(3, activation="softmax", name="a")(inp)
    b = layers.Dense(2, name="b")(inp)
    model = pynn.Model(inp, [a, b])
    model.compile(pynn.optimizers.SGD(0.0), ["categorical_crossentropy", "mse"],
                  metrics={"a": ["accuracy", metrics.F1Score(average="micro")],
                           "b": [metrics.R2Score(), "mae"]})
    logs = model.evaluate(x, [ya, yb], batch_size=6, verbose=0, return_dict=True)
    pa, pb = model.predict(x, verbose=0)
    r2 = metrics.R2Score()
    r2.update_state(yb, pb)
    f1 = metrics.F1Score(average="micro")
    f1.update_state(ya, pa)
    assert logs["b_r2_score"] == pytest.approx(r2.result(), rel=1e-5)
    assert logs["a_f1_score"] == pytest.approx(f1.result(), rel=1e-5)
    assert logs["b_mae"] == pytest.approx(np.abs(pb - yb).mean(), rel=1e-5)


def test_on_batch_steps_and_generators_update_metrics_outside_the_core():
    x, y = _data(24)
    model = _model()
    model.compile(pynn.optimizers.SGD(0.0), "categorical_crossentropy",
                  metrics=[metrics.F1Score(average="macro")])
    p = model.predict(x, verbose=0)
    f1 = metrics.F1Score(average="macro")
    f1.update_state(y, p)
    assert model.test_on_batch(x, y, return_dict=True)["f1_score"] == pytest.approx(f1.result())

    def batches():
        for s in range(0, 24, 5):
            yield x[s:s + 5], y[s:s + 5]

    logs = model.evaluate(batches(), verbose=0, return_dict=True)
    assert logs["f1_score"] == pytest.approx(f1.result(), rel=1e-6)
    assert model.train_on_batch(x, y, return_dict=True)["f1_score"] == pytest.approx(
        f1.result())


def test_compile_metrics_ignore_sample_weight_as_keras():
    x, y = _data(24)
    model = _model()
    model.compile(pynn.optimizers.SGD(0.0), "categorical_crossentropy",
                  metrics=[metrics.F1Score(average="macro"), "accuracy"])
    sw = np.random.default_rng(0).uniform(0, 2, 24)
    a = model.evaluate(x, y, verbose=0, return_dict=True)
    b = model.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True)
    assert a["f1_score"] == b["f1_score"] and a["accuracy"] == b["accuracy"]


def test_a_custom_train_step_updates_the_same_metric_objects():
    x, y = _data(24)

    class Custom(pynn.Model):
        def train_step(self, data):
            xb, yb = data
            with pynn.GradientTape() as tape:
                pred = self(xb, training=True)
                loss = self.compute_loss(y=yb, y_pred=pred)
            grads = tape.gradient(loss, self.trainable_weights)
            self.optimizer.apply(grads, self.trainable_weights)
            return self.compute_metrics(xb, yb, pred)

    pynn.utils.set_random_seed(0)
    inp = pynn.Input((6,))
    model = Custom(inp, layers.Dense(3, activation="softmax")(inp))
    f1 = metrics.F1Score(average="macro")
    model.compile(pynn.optimizers.SGD(0.0), "categorical_crossentropy", metrics=[f1])
    h = model.fit(x, y, batch_size=24, epochs=1, verbose=0)
    want = metrics.F1Score(average="macro")
    want.update_state(y, model.predict(x, verbose=0))
    assert h.history["f1_score"][0] == pytest.approx(want.result(), rel=1e-5)
    assert float(f1.result()) == pytest.approx(want.result(), rel=1e-5)


def test_weighted_metrics_take_sample_and_class_weights():
    x, y = _data(30)
    model = _model()
    model.compile(pynn.optimizers.SGD(0.0), "categorical_crossentropy",
                  metrics=["accuracy", metrics.F1Score(average="macro")],
                  weighted_metrics=["accuracy", metrics.F1Score(average="macro"), "mae"])
    assert model.metrics_names == ["loss", "accuracy", "f1_score", "weighted_accuracy",
                                   "weighted_f1_score", "mae"]
    sw = np.random.default_rng(1).uniform(0, 2, 30)
    p = model.predict(x, verbose=0)
    hit = (p.argmax(-1) == y.argmax(-1)).astype(np.float64)
    logs = model.evaluate(x, y, sample_weight=sw, batch_size=7, verbose=0, return_dict=True)
    assert logs["accuracy"] == pytest.approx(hit.mean())
    assert logs["weighted_accuracy"] == pytest.approx((hit * sw).sum() / sw.sum())
    assert logs["mae"] == pytest.approx((np.abs(p - y).mean(-1) * sw).sum() / sw.sum(),
                                        rel=1e-5)
    f1 = metrics.F1Score(average="macro")
    f1.update_state(y, p, sw)
    assert logs["weighted_f1_score"] == pytest.approx(f1.result(), rel=1e-5)
    plain = model.evaluate(x, y, verbose=0, return_dict=True)  # no weights: all count 1
    assert plain["weighted_accuracy"] == pytest.approx(hit.mean())
    cw = {0: 2.0, 1: 0.5, 2: 1.0}
    h = model.fit(x, y, class_weight=cw, batch_size=30, epochs=1, shuffle=False, verbose=0)
    w = np.array([cw[c] for c in y.argmax(-1)])
    assert h.history["weighted_accuracy"][0] == pytest.approx((hit * w).sum() / w.sum())
    assert h.history["accuracy"][0] == pytest.approx(hit.mean())


def test_weighted_metrics_of_several_outputs_and_their_saving(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(20, 4)).astype(np.float32)
    ya = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 20)]
    yb = rng.normal(size=(20, 2)).astype(np.float32)
    pynn.utils.set_random_seed(0)
    inp = pynn.Input((4,))
    model = pynn.Model(inp, [layers.Dense(3, activation="softmax", name="a")(inp),
                             layers.Dense(2, name="b")(inp)])
    model.compile(pynn.optimizers.SGD(0.0), ["categorical_crossentropy", "mse"],
                  metrics={"b": ["mae"]}, weighted_metrics={"a": ["accuracy"], "b": ["mae"]})
    assert model.metrics_names[-3:] == ["b_mae", "a_accuracy", "b_weighted_mae"]
    swa, swb = rng.uniform(0, 2, 20), rng.uniform(0, 2, 20)
    logs = model.evaluate(x, [ya, yb], sample_weight=[swa, swb], verbose=0, return_dict=True)
    pa, pb = model.predict(x, verbose=0)
    hit = (pa.argmax(-1) == ya.argmax(-1))
    assert logs["a_accuracy"] == pytest.approx((hit * swa).sum() / swa.sum())
    err = np.abs(pb - yb).mean(-1)
    assert logs["b_weighted_mae"] == pytest.approx((err * swb).sum() / swb.sum(), rel=1e-5)
    assert logs["b_mae"] == pytest.approx(err.mean(), rel=1e-5)
    path = tmp_path / "w.keras"
    model.save(path)
    loaded = pynn.saving.load_model(path)
    again = loaded.evaluate(x, [ya, yb], sample_weight=[swa, swb], verbose=0, return_dict=True)
    assert again == pytest.approx(logs)


def test_weighted_metrics_in_a_python_step():
    """A model compiled without a loss the core has: compute_metrics passes the sample
    weights to the weighted metrics only."""
    x, y = _data(24)
    model = _model()
    model.compile(pynn.optimizers.SGD(0.0), loss=lambda t, p: pynn.ops.mean(
        pynn.ops.square(t - p)), metrics=["mae"], weighted_metrics=["mae"])
    sw = np.random.default_rng(2).uniform(0, 2, 24)
    logs = model.evaluate(x, y, sample_weight=sw, batch_size=24, verbose=0, return_dict=True)
    err = np.abs(model.predict(x, verbose=0) - y).mean(-1)
    assert logs["mae"] == pytest.approx(err.mean(), rel=1e-5)
    assert logs["weighted_mae"] == pytest.approx((err * sw).sum() / sw.sum(), rel=1e-5)


def test_early_stopping_reads_a_metrics_direction():
    from pynn.callbacks import _metric_direction
    model = _model()
    model.compile("sgd", "categorical_crossentropy",
                  metrics=[metrics.F1Score(average="macro"), metrics.LogCoshError(),
                           metrics.KLDivergence(), "accuracy"])
    assert _metric_direction(model, "f1_score") == "up"
    assert _metric_direction(model, "logcosh") == "down"
    assert _metric_direction(model, "accuracy") == "up"
    assert _metric_direction(model, "kl_divergence") is None  # Keras cannot tell either


def test_repeated_names_get_keras_suffixes():
    x, y = _data(16)
    model = _model()
    model.compile("sgd", "categorical_crossentropy",
                  metrics=[metrics.AUC(), metrics.AUC(curve="PR"), "accuracy"])
    assert model.metrics_names == ["loss", "auc", "auc_1", "accuracy"]
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "auc", "auc_1", "accuracy"}


# ---- standalone behaviour --------------------------------------------------------------------

def test_mean_metric_wrapper_reads_y_preds_mask_and_weights():
    """The mask becomes weights (Keras's apply_mask); per-row sample weights multiply it."""
    y = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]], np.float32)[..., None]
    p = np.zeros_like(y)
    mask = np.array([[1, 1, 0], [1, 0, 0]], bool)
    pred = metrics.base.with_mask(p, mask)
    assert pred._keras_mask is mask
    m = metrics.MeanSquaredError()
    m.update_state(y, pred)
    assert float(m.result()) == pytest.approx((1 + 4 + 1) / 3)
    m = metrics.MeanAbsoluteError()
    m.update_state(y, pred, sample_weight=np.array([[1.0], [3.0]]))
    assert float(m.result()) == pytest.approx((1 + 2 + 3 * 1) / (2 + 3))


def test_sum_mean_and_scalar_sample_weights_as_keras():
    m = metrics.Sum()
    m.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    assert m.result() == 4.0
    m = metrics.Mean()
    m.update_state([[1, 3], [5, 7]], sample_weight=[1, 0])
    assert m.result() == 2.0
    m = metrics.Mean()
    m.update_state([1, 3, 5, 7], sample_weight=2.0)
    assert m.result() == 4.0
    assert [v.name for v in m.variables] == ["total", "count"]
    m.reset_state()
    assert m.result() == 0.0


def test_get_serialize_and_deserialize():
    assert isinstance(metrics.get("mse"), metrics.MeanSquaredError)
    assert isinstance(metrics.get("binary_accuracy"), metrics.BinaryAccuracy)
    assert isinstance(metrics.get("BinaryIoU"), metrics.BinaryIoU)
    assert metrics.get(metrics.huber) is metrics.huber
    assert metrics.get(None) is None
    with pytest.raises(ValueError, match="Could not interpret"):
        metrics.get("nope")
    m = metrics.AUC(num_thresholds=20, curve="PR", multi_label=True, name="x")
    c = metrics.deserialize(metrics.serialize(m))
    assert type(c) is metrics.AUC and c.get_config() == m.get_config()
    assert metrics.deserialize(metrics.serialize(metrics.log_cosh)) is metrics.log_cosh
    w = metrics.MeanMetricWrapper(metrics.huber, name="hub", delta=0.5)
    c = metrics.deserialize(metrics.serialize(w))
    assert c._fn is metrics.huber and c._fn_kwargs == {"delta": 0.5} and c.name == "hub"


ALL_CLASSES = [getattr(metrics, n) for n in KERAS_NAMES
               if n[0].isupper() and n not in ("Metric", "MeanMetricWrapper")]
REQUIRED = {"IoU": {"num_classes": 3, "target_class_ids": [0, 2]},
            "MeanIoU": {"num_classes": 3}, "OneHotIoU": {"num_classes": 3,
                                                         "target_class_ids": [1]},
            "OneHotMeanIoU": {"num_classes": 3}, "PrecisionAtRecall": {"recall": 0.5},
            "RecallAtPrecision": {"precision": 0.5},
            "SensitivityAtSpecificity": {"specificity": 0.5},
            "SpecificityAtSensitivity": {"sensitivity": 0.5}}


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_config_round_trips_through_json(cls):
    m = cls(**REQUIRED.get(cls.__name__, {}))
    config = json.loads(json.dumps(m.get_config()))
    again = cls.from_config(config)
    assert again.get_config() == m.get_config()
    restored = metrics.deserialize(json.loads(json.dumps(metrics.serialize(m))))
    assert type(restored) is cls and restored.get_config() == m.get_config()


BAD_VALUES = [0, -1, 1, 2**31, 2**63, 2**64, 10**30, 1e308, -0.0, 0.5, float("nan"), "",
              "x" * 40, "relu", None, True, False, [], [0], [2**40, 2**40], [-1, 3], {},
              {"a": 1}, [[1]], "float32", [1, "a"], 2.5]  # tests/test_fuzz_files.py's, and more


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_bad_config_values_raise_value_error(cls):
    """What a file could hold: every argument replaced by junk gives a metric or a
    ValueError (as the file fuzzing requires), never another exception."""
    from pynn.saving.serialization import deserialize_keras_object
    base = cls(**REQUIRED.get(cls.__name__, {})).get_config()
    for key in base:
        for bad in BAD_VALUES:
            config = {"class_name": cls.__name__, "config": {**base, key: bad}}
            try:
                m = deserialize_keras_object(config, None, "metric")
            except ValueError:
                continue
            assert isinstance(m, cls)


@pytest.mark.parametrize("make, match", [
    (lambda: metrics.IoU(3, [0, 3]), "out of range"),
    (lambda: metrics.IoU(3, []), "target_class_ids"),
    (lambda: metrics.MeanIoU(0), "num_classes"),
    (lambda: metrics.F1Score(average="median"), "average"),
    (lambda: metrics.FBetaScore(beta=2), "beta"),
    (lambda: metrics.FBetaScore(beta=-1.0), "beta"),
    (lambda: metrics.F1Score(threshold=1.5), "threshold"),
    (lambda: metrics.R2Score(class_aggregation="median"), "class_aggregation"),
    (lambda: metrics.R2Score(num_regressors=-1), "num_regressors"),
    (lambda: metrics.PrecisionAtRecall(1.5), "recall"),
    (lambda: metrics.SensitivityAtSpecificity(0.5, num_thresholds=0), "num_thresholds"),
    (lambda: metrics.AUC(num_labels=3), "num_labels"),
    (lambda: metrics.AUC(multi_label=True, num_labels=2, label_weights=["a", 1]),
     "label_weights"),
    (lambda: metrics.BinaryCrossentropy(label_smoothing=2), "label_smoothing"),
    (lambda: metrics.SparseCategoricalCrossentropy(ignore_class="a"), "ignore_class"),
    (lambda: metrics.CosineSimilarity(axis="last"), "axis"),
    (lambda: metrics.SparseTopKCategoricalAccuracy(k=1.5), "k must be"),
    (lambda: metrics.MeanMetricWrapper(fn=3), "fn"),
    (lambda: metrics.Mean(dtype="string"), "dtype"),
    (lambda: metrics.Mean(name=3), "name"),
])
def test_bad_arguments_are_refused_clearly(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_data_is_refused_clearly():
    with pytest.raises(ValueError, match="2D inputs"):
        metrics.R2Score().update_state([1.0, 2.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="2D inputs"):
        metrics.F1Score().update_state([1.0, 0.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="class_id"):
        metrics.Precision(class_id=5).update_state(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="rank 2"):
        metrics.AUC(multi_label=True).update_state(np.ones((2, 3, 1)), np.ones((2, 3, 1)))
    with pytest.raises(ValueError, match="sample_weight"):
        metrics.Precision().update_state(np.ones((2, 3)), np.ones((2, 3)), np.ones(5))


def test_compile_refuses_a_metric_name_that_needs_arguments():
    model = _model()
    with pytest.raises(ValueError, match="needs arguments"):
        model.compile("sgd", "categorical_crossentropy", metrics=["mean_io_u"])


def test_a_model_with_function_and_subclass_metrics_saves_and_loads(tmp_path):
    @pynn.saving.register_keras_serializable(package="test_metrics_keras")
    def spread(y_true, y_pred):
        return np.asarray(y_pred).max(-1) - np.asarray(y_pred).min(-1)

    x, y = _data(16)
    model = _model()
    model.compile("sgd", "categorical_crossentropy",
                  metrics=[spread, metrics.log_cosh, metrics.F1Score(average="macro"), "mae"])
    before = model.evaluate(x, y, verbose=0, return_dict=True)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = pynn.saving.load_model(path)
    assert loaded.metrics_names == model.metrics_names
    after = loaded.evaluate(x, y, verbose=0, return_dict=True)
    for k in before:
        assert after[k] == pytest.approx(before[k], rel=1e-6), k
