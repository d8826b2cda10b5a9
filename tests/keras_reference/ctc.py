"""The CTC loss, the same code for pynn and Keras 3: `run()` returns ops.ctc_loss per sample
(with label and logit lengths of their own), losses.ctc, and losses.CTC with each reduction and
a sample_weight, on fixed random inputs.

tests/test_ctc.py compares pynn's with what Keras 3 (JAX backend) gave, kept in ctc.npz beside
this file; to make it again, in an environment with keras and jax:
    KERAS_BACKEND=jax python ../shared/tools/keras_ref.py tests/keras_reference/ctc.py \
        tests/keras_reference/ctc.npz
"""

import sys

import numpy as np

import pynn as keras

B, T, K, L = 5, 10, 6, 4


def inputs() -> dict:
    rng = np.random.RandomState(3)
    logits = rng.randn(B, T, K).astype(np.float32)
    labels = rng.randint(1, K, size=(B, L)).astype(np.int32)
    labels[1, 1] = labels[1, 0]  # a repeated label needs a blank between the two
    padded = labels.copy()
    padded[2, 2:] = 0   # losses.ctc: zeros are the padding
    padded[4, :] = 0    # an empty label
    return {"logits": logits, "labels": labels, "padded": padded,
            "label_length": np.array([4, 3, 2, 1, 0], np.int32),
            "logit_length": np.array([10, 8, 5, 3, 6], np.int32),
            "weights": rng.rand(B).astype(np.float32)}


def run() -> dict:
    d = inputs()
    out = {"ops_ctc_loss": keras.ops.convert_to_numpy(keras.ops.ctc_loss(
        d["labels"], d["logits"], d["label_length"], d["logit_length"], mask_index=0)),
        "ctc": keras.ops.convert_to_numpy(keras.losses.ctc(d["padded"], d["logits"]))}
    for reduction in ("sum_over_batch_size", "sum", "mean", "none"):
        loss = keras.losses.CTC(reduction=reduction)
        out[f"CTC_{reduction}"] = np.asarray(keras.ops.convert_to_numpy(
            loss(d["padded"], d["logits"])))
        out[f"CTC_{reduction}_weighted"] = np.asarray(keras.ops.convert_to_numpy(
            loss(d["padded"], d["logits"], sample_weight=d["weights"])))
    return out


if __name__ == "__main__":
    np.savez(sys.argv[1], **run())
