"""keras.utils functions whose output is deterministic, the same code for pynn and Keras 3:
`run()` returns pad_sequences variants, to_categorical, normalize and the text a Progbar prints
(with a fake clock).

tests/test_utils_keras.py compares pynn's with what Keras 3 gave, kept in utils.npz beside this
file; to make it again, in an environment with keras and jax:
    KERAS_BACKEND=jax python ../shared/tools/keras_ref.py tests/keras_reference/utils.py \
        tests/keras_reference/utils.npz
"""

import io
import sys
import time

import numpy as np

import pynn as keras


def progbar_text(verbose, **kwargs) -> str:
    clock = iter(np.arange(0.0, 1000.0, 0.25))
    real_time, real_stdout = time.time, sys.stdout
    time.time = lambda: float(next(clock))
    sys.stdout = out = io.StringIO()
    try:
        bar = keras.utils.Progbar(5, verbose=verbose, **kwargs)
        for i in range(5):
            bar.update(i + 1, [("loss", 0.5 / (i + 1)), ("acc", 0.1 * i), ("tiny", 1e-5)])
        bar2 = keras.utils.Progbar(None, verbose=verbose, interval=0.0)
        bar2.add(3, [("loss", 2.0)])
        bar2.add(4, [("loss", 1.0)])
        bar2.update(7, finalize=True)
    finally:
        time.time, sys.stdout = real_time, real_stdout
    return out.getvalue()


def run() -> dict:
    seqs = [[1, 2, 3], [4, 5], [6], [], [7, 8, 9, 10, 11]]
    out = {}
    for padding in ("pre", "post"):
        for truncating in ("pre", "post"):
            for maxlen in (None, 2, 4):
                out[f"pad_{padding}_{truncating}_{maxlen}"] = keras.utils.pad_sequences(
                    seqs, maxlen=maxlen, padding=padding, truncating=truncating, value=-1)
    out["pad_float"] = keras.utils.pad_sequences([[0.5, 1.5], [2.5]], dtype="float32")
    out["onehot"] = keras.utils.to_categorical(np.array([0, 2, 1, 2]))
    out["onehot_n"] = keras.utils.to_categorical(np.array([[1], [0]]), num_classes=4)
    out["onehot_2d"] = keras.utils.to_categorical(np.array([[0, 1], [2, 0]]), 3)
    x = np.random.RandomState(0).randn(4, 3)
    x[1] = 0.0
    out["normalize"] = keras.utils.normalize(x)
    out["normalize_l1"] = keras.utils.normalize(x, axis=1, order=1)
    out["progbar_1"] = np.array(progbar_text(1, stateful_metrics=["acc"]))
    out["progbar_2"] = np.array(progbar_text(2))
    out["progbar_stateless"] = np.array(progbar_text(1, stateless_metrics=["loss"]))
    out["dtypes"] = np.array([keras.utils.standardize_dtype(d) for d in
                              (None, int, float, bool, str, "float16", np.int8, "int")])
    out["packed"] = np.array([len(keras.utils.pack_x_y_sample_weight(1, 2)),
                              len(keras.utils.pack_x_y_sample_weight(1, 2, 3)),
                              len(keras.utils.pack_x_y_sample_weight((1, 2)))])
    return out


if __name__ == "__main__":
    np.savez(sys.argv[1], **run())
