"""Every loss pynn has, the same code for pynn and Keras 3: `run()` returns each loss's value
on fixed random inputs (with and without sample_weight, each reduction) and each function's
per-sample values.

tests/test_losses_keras.py compares pynn's with what Keras 3 (JAX backend) gave, kept in
losses.npz beside this file; to make it again, in an environment with keras and jax:
    KERAS_BACKEND=jax python ../shared/tools/keras_ref.py tests/keras_reference/losses.py \
        tests/keras_reference/losses.npz
"""

import sys

import numpy as np

import pynn as keras

B, C = 6, 4


def inputs() -> dict:
    rng = np.random.RandomState(0)
    logits = rng.randn(B, C).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    labels = rng.randint(0, C, size=B).astype(np.int32)
    onehot = np.eye(C, dtype=np.float32)[labels]
    binary = (rng.rand(B, C) > 0.5).astype(np.float32)
    sig = (1 / (1 + np.exp(-logits))).astype(np.float32)
    real = rng.randn(B, C).astype(np.float32)
    positive = rng.rand(B, C).astype(np.float32) + 0.1
    signs = np.where(binary > 0, 1.0, -1.0).astype(np.float32)
    emb = rng.randn(B, C).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=-1, keepdims=True)
    return dict(logits=logits, probs=probs, labels=labels, onehot=onehot, binary=binary,
                sig=sig, real=real, positive=positive, signs=signs, emb=emb,
                circle_labels=np.array([0, 1, 0, 1, 2, 2], np.int32),
                weights=rng.rand(B).astype(np.float32))


# (class name, constructor arguments, y_true key, y_pred key)
CASES = [
    ("MeanSquaredError", {}, "real", "positive"),
    ("MeanAbsoluteError", {}, "real", "positive"),
    ("MeanAbsolutePercentageError", {}, "positive", "real"),
    ("MeanSquaredLogarithmicError", {}, "positive", "real"),
    ("CosineSimilarity", {}, "real", "positive"),
    ("CosineSimilarity", {"axis": 0}, "real", "positive"),
    ("Huber", {}, "real", "positive"),
    ("Huber", {"delta": 0.3}, "real", "positive"),
    ("LogCosh", {}, "real", "positive"),
    ("Hinge", {}, "binary", "real"),
    ("Hinge", {}, "signs", "real"),
    ("SquaredHinge", {}, "binary", "real"),
    ("CategoricalHinge", {}, "onehot", "real"),
    ("KLDivergence", {}, "probs", "sig"),
    ("Poisson", {}, "positive", "positive"),
    ("BinaryCrossentropy", {}, "binary", "sig"),
    ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.2}, "binary", "logits"),
    ("CategoricalCrossentropy", {}, "onehot", "probs"),
    ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, "onehot",
     "logits"),
    ("SparseCategoricalCrossentropy", {}, "labels", "probs"),
    ("SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": 1}, "labels",
     "logits"),
    ("BinaryFocalCrossentropy", {}, "binary", "sig"),
    ("BinaryFocalCrossentropy", {"apply_class_balancing": True, "alpha": 0.4, "gamma": 1.5,
                                 "from_logits": True, "label_smoothing": 0.1}, "binary",
     "logits"),
    ("CategoricalFocalCrossentropy", {}, "onehot", "probs"),
    ("CategoricalFocalCrossentropy", {"from_logits": True, "gamma": 1.0}, "onehot", "logits"),
    ("Dice", {}, "binary", "sig"),
    ("Dice", {"axis": -1}, "binary", "sig"),
    ("Tversky", {}, "binary", "sig"),
    ("Tversky", {"alpha": 0.7, "beta": 0.3, "axis": -1}, "binary", "sig"),
    ("Circle", {}, "circle_labels", "emb"),
    ("CategoricalGeneralizedCrossEntropy", {}, "labels", "probs"),
    ("CategoricalGeneralizedCrossEntropy", {"q": 0.8}, "labels", "probs"),
]
FUNCTIONS = ["mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
             "mean_squared_logarithmic_error", "cosine_similarity", "huber", "log_cosh",
             "hinge", "squared_hinge", "categorical_hinge", "kl_divergence", "poisson",
             "binary_crossentropy", "categorical_crossentropy", "binary_focal_crossentropy",
             "categorical_focal_crossentropy"]
FUNCTION_INPUTS = {"hinge": ("binary", "real"), "squared_hinge": ("binary", "real"),
                   "categorical_hinge": ("onehot", "real"), "kl_divergence": ("probs", "sig"),
                   "binary_crossentropy": ("binary", "sig"),
                   "categorical_crossentropy": ("onehot", "probs"),
                   "binary_focal_crossentropy": ("binary", "sig"),
                   "categorical_focal_crossentropy": ("onehot", "probs"),
                   "mean_absolute_percentage_error": ("positive", "real"),
                   "mean_squared_logarithmic_error": ("positive", "real")}


def run() -> dict:
    data = inputs()
    out = {}
    for k, (name, kwargs, yt, yp) in enumerate(CASES):
        cls = getattr(keras.losses, name)
        for reduction in ("sum_over_batch_size", "sum", "none", "mean_with_sample_weight"):
            loss = cls(reduction=reduction, **kwargs)
            out[f"{k}:{name}/{reduction}"] = np.asarray(loss(data[yt], data[yp]), np.float32)
            try:  # a weight per sample: refused where the values are not per sample
                value = np.asarray(loss(data[yt], data[yp], sample_weight=data["weights"]),
                                   np.float32)
            except (ValueError, TypeError):
                value = np.array("refused")
            out[f"{k}:{name}/{reduction}/weighted"] = value
        out[f"{k}:{name}/name"] = np.array(cls(**kwargs).name)
    for name in FUNCTIONS:
        yt, yp = FUNCTION_INPUTS.get(name, ("real", "positive"))
        out[f"fn:{name}"] = np.asarray(getattr(keras.losses, name)(data[yt], data[yp]),
                                       np.float32)
    return out


if __name__ == "__main__":
    np.savez(sys.argv[1], **run())
