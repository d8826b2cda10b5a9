"""Keras 3's metrics on shared random data, the same code for pynn and Keras: `run()` returns
each metric's result after two updates (with and without sample weights, thresholds, top_k,
class_id, multi_label, ...), the function forms' values, the metrics' configs, and the logs of
compile/evaluate/fit with built-in, user-function and many-metric compiles.

`tests/test_metrics_keras.py` compares pynn's with what Keras 3 (JAX backend) gave, kept in
metrics.npz beside this file; to make it again, in an environment with keras and jax:
    KERAS_BACKEND=jax python ../shared/tools/keras_ref.py tests/keras_reference/metrics.py \
        tests/keras_reference/metrics.npz
(keras_ref.py runs this file with `pynn` standing for `keras`).
"""

import json
import sys

import numpy as np

import pynn as keras
from pynn import metrics

N, C = 32, 4


def data() -> dict:
    rng = np.random.RandomState(0)
    d = {}
    d["labels"] = rng.randint(0, C, N).astype(np.int32)
    d["onehot"] = np.eye(C, dtype=np.float32)[d["labels"]]
    p = rng.uniform(0.01, 1.0, (N, C)).astype(np.float32)
    d["probs"] = (p / p.sum(-1, keepdims=True)).astype(np.float32)
    q = rng.uniform(0.01, 1.0, (N, C)).astype(np.float32)
    d["probs2"] = (q / q.sum(-1, keepdims=True)).astype(np.float32)
    d["logits"] = rng.normal(0, 2, (N, C)).astype(np.float32)
    d["yb"] = (rng.uniform(size=(N, 1)) > 0.5).astype(np.float32)
    d["pb"] = rng.uniform(size=(N, 1)).astype(np.float32)
    d["ym"] = (rng.uniform(size=(N, C)) > 0.6).astype(np.float32)
    d["pm"] = rng.uniform(size=(N, C)).astype(np.float32)
    d["pm"][3, 1] = 0.5  # a prediction exactly at a threshold
    d["pm"][5, 2] = 0.0
    d["pm"][6, 0] = 1.0
    d["yr"] = rng.normal(size=(N, 3)).astype(np.float32)
    d["pr"] = (d["yr"] + rng.normal(0, 0.7, (N, 3))).astype(np.float32)
    d["ypos"] = rng.uniform(0, 3, (N, 3)).astype(np.float32)
    d["ppos"] = rng.uniform(0.05, 3, (N, 3)).astype(np.float32)
    d["ysign"] = np.where(rng.uniform(size=(N, C)) > 0.5, 1.0, -1.0).astype(np.float32)
    d["sw"] = rng.uniform(0, 2, N).astype(np.float32)
    d["sw"][[2, 9]] = 0.0
    d["sw_int"] = rng.randint(0, 3, N).astype(np.float32)
    d["sw_int3"] = rng.randint(0, 3, (N, 3)).astype(np.float32)
    d["sw2"] = rng.uniform(0, 2, (N, C)).astype(np.float32)
    d["cls_true"] = rng.randint(0, C, (N, 3)).astype(np.int32)
    d["cls_pred"] = rng.randint(0, C, (N, 3)).astype(np.int32)
    d["exact_t"] = rng.randint(0, 3, (N, 1)).astype(np.float32)
    d["exact_p"] = np.where(rng.uniform(size=(N, 1)) > 0.3, d["exact_t"], 1.0).astype(np.float32)
    d["sorted_ids"] = np.argsort(-d["probs"], axis=-1).astype(np.float32)
    d["values"] = rng.normal(size=(N, 3)).astype(np.float32)
    return d


def user_mae(y_true, y_pred):
    """A user's metric function, written with keras.ops."""
    return keras.ops.mean(keras.ops.abs(y_true - y_pred), axis=-1)


def cases(d) -> dict:
    """name -> (make the metric, y_true, y_pred, sample weights or None)."""
    M = metrics
    sw, sw2 = d["sw"], d["sw2"]
    c = {}

    def add(name, make, yt, yp, w=None):
        c[name] = (make, yt, yp, w)

    # accuracies
    add("accuracy", lambda: M.Accuracy(), d["exact_t"], d["exact_p"], sw)
    add("binary_accuracy", lambda: M.BinaryAccuracy(), d["yb"], d["pb"], sw)
    add("binary_accuracy_t07", lambda: M.BinaryAccuracy(threshold=0.7), d["ym"], d["pm"])
    add("binary_accuracy_w", lambda: M.BinaryAccuracy(), d["ym"], d["pm"], sw)
    add("categorical_accuracy", lambda: M.CategoricalAccuracy(), d["onehot"], d["probs"], sw)
    add("sparse_categorical_accuracy", lambda: M.SparseCategoricalAccuracy(), d["labels"],
        d["probs"], sw)
    add("sparse_categorical_accuracy_col", lambda: M.SparseCategoricalAccuracy(),
        d["labels"][:, None], d["probs"])
    add("top_k", lambda: M.TopKCategoricalAccuracy(k=2), d["onehot"], d["probs"], sw)
    add("sparse_top_k", lambda: M.SparseTopKCategoricalAccuracy(k=2), d["labels"], d["probs"],
        sw)
    add("sparse_top_k_sorted", lambda: M.SparseTopKCategoricalAccuracy(
        k=2, from_sorted_ids=True), d["labels"], d["sorted_ids"])
    # regression
    for w in ("", "_w"):
        ww = sw if w else None
        add("mse" + w, lambda: M.MeanSquaredError(), d["yr"], d["pr"], ww)
        add("mae" + w, lambda: M.MeanAbsoluteError(), d["yr"], d["pr"], ww)
        add("mape" + w, lambda: M.MeanAbsolutePercentageError(), d["yr"], d["pr"], ww)
        add("msle" + w, lambda: M.MeanSquaredLogarithmicError(), d["ypos"], d["ppos"], ww)
        add("rmse" + w, lambda: M.RootMeanSquaredError(), d["yr"], d["pr"], ww)
        add("cosine" + w, lambda: M.CosineSimilarity(), d["yr"], d["pr"], ww)
        add("logcosh" + w, lambda: M.LogCoshError(), d["yr"], d["pr"], ww)
        add("r2" + w, lambda: M.R2Score(), d["yr"], d["pr"], ww)
        add("pearson" + w, lambda: M.PearsonCorrelation(), d["yr"], d["pr"], ww)
        add("concordance" + w, lambda: M.ConcordanceCorrelation(), d["yr"], d["pr"], ww)
        add("kld" + w, lambda: M.KLDivergence(), d["probs"], d["probs2"], ww)
        add("poisson" + w, lambda: M.Poisson(), d["ypos"], d["ppos"], ww)
        add("hinge" + w, lambda: M.Hinge(), d["ym"], d["logits"], ww)
        add("squared_hinge" + w, lambda: M.SquaredHinge(), d["ysign"], d["logits"], ww)
        add("categorical_hinge" + w, lambda: M.CategoricalHinge(), d["onehot"], d["logits"], ww)
        add("bce" + w, lambda: M.BinaryCrossentropy(), d["ym"], d["pm"], ww)
        add("cce" + w, lambda: M.CategoricalCrossentropy(), d["onehot"], d["probs"], ww)
        add("scce" + w, lambda: M.SparseCategoricalCrossentropy(), d["labels"], d["probs"], ww)
        add("scce_ignore" + w, lambda: M.SparseCategoricalCrossentropy(ignore_class=1),
            d["labels"], d["probs"], ww)
    add("r2_variance", lambda: M.R2Score(class_aggregation="variance_weighted_average"),
        d["yr"], d["pr"], sw)
    add("r2_none", lambda: M.R2Score(class_aggregation=None), d["yr"], d["pr"])
    add("r2_adjusted", lambda: M.R2Score(num_regressors=2), d["yr"], d["pr"])
    add("bce_logits", lambda: M.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
        d["ym"], d["logits"], sw)
    add("cce_logits", lambda: M.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2),
        d["onehot"], d["logits"], sw)
    add("scce_logits", lambda: M.SparseCategoricalCrossentropy(from_logits=True), d["labels"],
        d["logits"], sw)
    # confusion counts
    add("tp", lambda: M.TruePositives(), d["ym"], d["pm"], sw)
    add("fp3", lambda: M.FalsePositives(thresholds=[0.2, 0.5, 0.8]), d["ym"], d["pm"], sw)
    add("tn", lambda: M.TrueNegatives(thresholds=0.3), d["ym"], d["pm"], sw2)
    add("fn_even", lambda: M.FalseNegatives(thresholds=[0.0, 0.25, 0.5, 0.75, 1.0]), d["ym"],
        d["pm"], sw)
    add("precision", lambda: M.Precision(), d["ym"], d["pm"], sw)
    add("precision_3t", lambda: M.Precision(thresholds=[0.3, 0.5, 0.7]), d["ym"], d["pm"])
    add("precision_top2", lambda: M.Precision(top_k=2), d["ym"], d["pm"], sw)
    add("precision_class1", lambda: M.Precision(class_id=1), d["ym"], d["pm"], sw)
    add("precision_top2_class1", lambda: M.Precision(top_k=2, class_id=1), d["ym"], d["pm"])
    add("precision_sw2", lambda: M.Precision(thresholds=0.4), d["ym"], d["pm"], sw2)
    add("recall", lambda: M.Recall(), d["ym"], d["pm"], sw)
    add("recall_3t", lambda: M.Recall(thresholds=[0.2, 0.6, 0.9]), d["ym"], d["pm"], sw)
    add("recall_top1_class2", lambda: M.Recall(top_k=1, class_id=2), d["ym"], d["pm"], sw)
    add("precision_at_recall", lambda: M.PrecisionAtRecall(0.5), d["ym"], d["pm"], sw)
    add("recall_at_precision", lambda: M.RecallAtPrecision(0.6, num_thresholds=50), d["ym"],
        d["pm"])
    add("sens_at_spec", lambda: M.SensitivityAtSpecificity(0.7, class_id=2), d["ym"], d["pm"],
        sw)
    add("spec_at_sens", lambda: M.SpecificityAtSensitivity(0.4), d["ym"], d["pm"], sw)
    add("spec_at_sens_1t", lambda: M.SpecificityAtSensitivity(0.4, num_thresholds=1), d["ym"],
        d["pm"])
    # AUC
    add("auc", lambda: M.AUC(), d["ym"], d["pm"], sw)
    add("auc_pr", lambda: M.AUC(curve="PR"), d["ym"], d["pm"], sw)
    add("auc_minoring", lambda: M.AUC(summation_method="minoring"), d["ym"], d["pm"])
    add("auc_pr_majoring", lambda: M.AUC(curve="PR", summation_method="majoring"), d["ym"],
        d["pm"], sw)
    add("auc_prgain", lambda: M.AUC(curve="PRGAIN"), d["ym"], d["pm"], sw)
    add("auc_37", lambda: M.AUC(num_thresholds=37), d["ym"], d["pm"], sw2)
    add("auc_thresholds", lambda: M.AUC(thresholds=[0.1, 0.4, 0.75]), d["ym"], d["pm"], sw)
    add("auc_even_thresholds", lambda: M.AUC(thresholds=[0.25, 0.5, 0.75]), d["ym"], d["pm"])
    add("auc_multi", lambda: M.AUC(multi_label=True), d["ym"], d["pm"], sw)
    add("auc_multi_weights", lambda: M.AUC(multi_label=True, num_labels=C,
                                           label_weights=[1.0, 2.0, 0.5, 1.0]),
        d["ym"], d["pm"], sw)
    add("auc_multi_pr", lambda: M.AUC(multi_label=True, curve="PR"), d["ym"], d["pm"])
    add("auc_label_weights", lambda: M.AUC(label_weights=[1.0, 0.0, 2.0, 1.0]), d["ym"],
        d["pm"], sw)
    add("auc_logits", lambda: M.AUC(from_logits=True), d["ym"], d["logits"], sw)
    # F-scores
    add("f1", lambda: M.F1Score(), d["onehot"], d["probs"], sw)
    add("f1_micro", lambda: M.F1Score(average="micro", threshold=0.3), d["ym"], d["pm"], sw)
    add("f1_macro", lambda: M.F1Score(average="macro", threshold=0.5), d["ym"], d["pm"])
    add("f1_weighted", lambda: M.F1Score(average="weighted"), d["onehot"], d["probs"], sw)
    add("fbeta", lambda: M.FBetaScore(beta=2.0), d["ym"], d["pm"], sw)
    add("fbeta_macro", lambda: M.FBetaScore(average="macro", beta=0.5, threshold=0.4),
        d["ym"], d["pm"])
    # IoU
    add("iou", lambda: M.IoU(num_classes=C, target_class_ids=[0, 2]), d["cls_true"],
        d["cls_pred"], d["sw_int3"])
    add("mean_iou", lambda: M.MeanIoU(num_classes=C), d["cls_true"], d["cls_pred"])
    add("mean_iou_ignore", lambda: M.MeanIoU(num_classes=C, ignore_class=0), d["cls_true"],
        d["cls_pred"])
    add("mean_iou_scores", lambda: M.MeanIoU(num_classes=C, sparse_y_pred=False), d["labels"],
        d["probs"], sw)
    add("mean_iou_float", lambda: M.MeanIoU(num_classes=C, dtype="float32",
                                           sparse_y_pred=False), d["labels"], d["probs"], sw)
    add("binary_iou", lambda: M.BinaryIoU(), d["yb"], d["pb"], d["sw_int"])
    add("binary_iou_1", lambda: M.BinaryIoU(target_class_ids=[1], threshold=0.3), d["ym"],
        d["pm"])
    add("one_hot_iou", lambda: M.OneHotIoU(num_classes=C, target_class_ids=[1, 3]),
        d["onehot"], d["probs"])
    add("one_hot_mean_iou", lambda: M.OneHotMeanIoU(num_classes=C), d["onehot"], d["probs"])
    # wrappers
    add("wrapper_mse", lambda: M.MeanMetricWrapper(fn=M.mean_squared_error), d["yr"], d["pr"],
        sw)
    add("wrapper_user", lambda: M.MeanMetricWrapper(fn=user_mae, name="user"), d["yr"],
        d["pr"], sw)
    return c


FUNCTIONS = [  # (name, y_true, y_pred, kwargs)
    ("binary_accuracy", "ym", "pm", {}),
    ("binary_accuracy", "ym", "pm", {"threshold": 0.3}),
    ("categorical_accuracy", "onehot", "probs", {}),
    ("sparse_categorical_accuracy", "labels", "probs", {}),
    ("top_k_categorical_accuracy", "onehot", "probs", {"k": 2}),
    ("sparse_top_k_categorical_accuracy", "labels", "probs", {"k": 3}),
    ("mean_squared_error", "yr", "pr", {}),
    ("mean_absolute_error", "yr", "pr", {}),
    ("mean_absolute_percentage_error", "yr", "pr", {}),
    ("mean_squared_logarithmic_error", "ypos", "ppos", {}),
    ("log_cosh", "yr", "pr", {}),
    ("huber", "yr", "pr", {}),
    ("huber", "yr", "pr", {"delta": 0.3}),
    ("kl_divergence", "probs", "probs2", {}),
    ("poisson", "ypos", "ppos", {}),
    ("hinge", "ym", "logits", {}),
    ("squared_hinge", "ysign", "logits", {}),
    ("categorical_hinge", "onehot", "logits", {}),
    ("binary_crossentropy", "ym", "pm", {}),
    ("binary_crossentropy", "ym", "logits", {"from_logits": True, "label_smoothing": 0.2}),
    ("binary_focal_crossentropy", "ym", "pm", {}),
    ("binary_focal_crossentropy", "ym", "logits", {"apply_class_balancing": True, "alpha": 0.4,
                                                   "gamma": 1.5, "from_logits": True}),
    ("categorical_crossentropy", "onehot", "probs", {}),
    ("categorical_crossentropy", "onehot", "logits", {"from_logits": True,
                                                      "label_smoothing": 0.1}),
    ("categorical_focal_crossentropy", "onehot", "probs", {}),
    ("categorical_focal_crossentropy", "onehot", "logits", {"from_logits": True, "gamma": 3.0}),
    ("sparse_categorical_crossentropy", "labels", "probs", {}),
    ("sparse_categorical_crossentropy", "labels", "logits", {"from_logits": True}),
    ("pearson_correlation", "yr", "pr", {}),
    ("concordance_correlation", "yr", "pr", {}),
]


def set_weights(model, seed: int) -> None:
    rng = np.random.RandomState(seed)
    model.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(np.float32)
                       for w in model.get_weights()])


def compiled_models(d):
    """name -> (model, loss, metrics, x, y, x_val, y_val). Metrics whose default name Keras
    numbers (auc, auc_1, ...) are named, so that the logs' keys do not depend on what ran
    before."""
    rng = np.random.RandomState(7)
    x = rng.normal(size=(N, 5)).astype(np.float32)
    xv = rng.normal(size=(12, 5)).astype(np.float32)
    L = keras.layers
    M = metrics
    out = {}

    def dense(units, activation=None):
        return keras.Sequential([keras.Input((5,)), L.Dense(units, activation=activation)])

    onehot_v = np.eye(C, dtype=np.float32)[rng.randint(0, C, 12)]
    out["categorical"] = (dense(C, "softmax"), "categorical_crossentropy", [
        "accuracy", "mae", M.AUC(name="auc"), M.Precision(top_k=2, name="p_top2"),
        M.F1Score(average="macro"), M.TopKCategoricalAccuracy(k=2),
        M.CategoricalCrossentropy(), M.KLDivergence(), user_mae, M.CosineSimilarity(),
        M.OneHotMeanIoU(num_classes=C, name="iou"), M.Recall(class_id=3, name="r3")],
        x, d["onehot"], xv, onehot_v)
    yb_v = (rng.uniform(size=(12, 1)) > 0.5).astype(np.float32)
    out["binary"] = (dense(1, "sigmoid"), "binary_crossentropy", [
        "accuracy", M.AUC(curve="PR", name="pr_auc"), M.Precision(name="precision"),
        M.Recall(name="recall"), M.TruePositives(name="tp"),
        M.TrueNegatives(thresholds=[0.3, 0.7], name="tn"), M.BinaryIoU(name="iou"),
        "binary_crossentropy", M.SpecificityAtSensitivity(0.5, name="spec"),
        M.PrecisionAtRecall(0.5, name="p_at_r"), M.FalseNegatives(name="fn"),
        M.FalsePositives(name="fp")], x, d["yb"], xv, yb_v)
    yr_v = rng.normal(size=(12, 3)).astype(np.float32)
    out["regression"] = (dense(3), "mse", [
        "mae", "mse", "mape", "msle", M.RootMeanSquaredError(), M.LogCoshError(),
        M.R2Score(), M.PearsonCorrelation(), M.ConcordanceCorrelation(),
        M.MeanSquaredLogarithmicError(), M.Poisson(), M.Hinge(), M.SquaredHinge()],
        x, d["yr"], xv, yr_v)
    labels_v = rng.randint(0, C, 12).astype(np.int32)
    out["sparse"] = (dense(C, "softmax"), "sparse_categorical_crossentropy", [
        "accuracy", M.SparseTopKCategoricalAccuracy(k=2), "sparse_categorical_crossentropy",
        M.MeanIoU(num_classes=C, sparse_y_pred=False, name="iou"),
        M.SparseCategoricalCrossentropy(ignore_class=0, name="scce_ignore")],
        x, d["labels"], xv, labels_v)
    return out


def weighted_model(d):
    """weighted_metrics with fit's and evaluate's sample weights (and validation weights)."""
    rng = np.random.RandomState(8)
    x = rng.normal(size=(N, 5)).astype(np.float32)
    xv = rng.normal(size=(12, 5)).astype(np.float32)
    yv = np.eye(C, dtype=np.float32)[rng.randint(0, C, 12)]
    swv = rng.uniform(0, 2, 12).astype(np.float32)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(C, activation="softmax")])
    mets = ["accuracy", metrics.AUC(name="auc")]
    weighted = ["accuracy", metrics.AUC(name="wauc"), metrics.F1Score(average="macro"),
                metrics.CategoricalCrossentropy(), user_mae]
    return model, mets, weighted, x, d["onehot"], d["sw"], (xv, yv, swv)


def config_json(cfg) -> str:
    return json.dumps(cfg, sort_keys=True, default=lambda o: np.asarray(o).tolist())


def run() -> dict:
    d = data()
    results = {}
    for name, (make, yt, yp, w) in cases(d).items():
        m = make()
        h = N // 2
        m.update_state(yt[:h], yp[:h])
        results[f"case/{name}/first"] = np.asarray(m.result(), np.float32)
        m.update_state(yt[h:], yp[h:], None if w is None else w[h:])
        results[f"case/{name}/result"] = np.asarray(m.result(), np.float32)
        if name != "wrapper_user":
            results[f"case/{name}/config"] = np.array(config_json(make().get_config()))
        m.reset_state()
        m.update_state(yt, yp, w)
        results[f"case/{name}/once"] = np.asarray(m.result(), np.float32)
    for i, (fn, yt, yp, kw) in enumerate(FUNCTIONS):
        results[f"fn/{i}/{fn}"] = np.asarray(getattr(metrics, fn)(d[yt], d[yp], **kw),
                                             np.float32)
    for k, (name, (model, loss, mets, x, y, xv, yv)) in enumerate(compiled_models(d).items()):
        set_weights(model, k)
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss=loss, metrics=mets)
        logs = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
        for key, v in logs.items():
            results[f"evaluate/{name}/{key}"] = np.asarray(v, np.float32)
        history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0,
                            validation_data=(xv, yv))
        for key, v in history.history.items():
            results[f"fit/{name}/{key}"] = np.asarray(v, np.float32)
        # after fit, the metric objects hold the last run's state (the validation's)
        for m in mets:
            if isinstance(m, metrics.Metric):
                results[f"after/{name}/{m.name}"] = np.asarray(m.result(), np.float32)
    model, mets, weighted, x, y, sw, val = weighted_model(d)
    set_weights(model, 9)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="categorical_crossentropy",
                  metrics=mets, weighted_metrics=weighted)
    logs = model.evaluate(x, y, sample_weight=sw, batch_size=8, verbose=0, return_dict=True)
    for key, v in logs.items():
        results[f"evaluate/weighted/{key}"] = np.asarray(v, np.float32)
    history = model.fit(x, y, sample_weight=sw, batch_size=8, epochs=2, shuffle=False,
                        verbose=0, validation_data=val)
    for key, v in history.history.items():
        results[f"fit/weighted/{key}"] = np.asarray(v, np.float32)
    return results


if __name__ == "__main__":
    np.savez(sys.argv[1], **run())
