"""Keras 3 `.keras` archives and `.weights.h5` files for tests/test_keras_files.py: five small
models (an MLP, a CNN with BatchNormalization, an Embedding+LSTM+GRU text model, a two-input
two-output functional model, Bidirectional and TimeDistributed wrappers), each compiled with
Adam and trained one epoch so the optimizer has state, saved as <name>.keras and
<name>.weights.h5, with their inputs (x*) and predictions (y*) in <name>.npz, and the
predictions (z*) after one more train_on_batch step on (tx*, ty*) from the saved state. Run
under real Keras 3 (not pynn):
    KERAS_BACKEND=jax python tests/keras_reference/keras_files.py tests/keras_reference/keras_files
With --check <folder> <reference folder> it loads in Keras the archives pynn wrote to <folder>
instead (tests/test_keras_files.py runs it when PYNN_KERAS_PYTHON names a Python with Keras).
"""

import os
import sys

import keras
import numpy as np
from keras import layers as L


def models() -> dict:
    """name -> (model, training inputs, training targets, prediction inputs)"""
    rng = np.random.RandomState(0)
    out = {}
    keras.utils.set_random_seed(1)
    mlp = keras.Sequential([keras.Input((6,)), L.Dense(8, activation="relu"),
                            L.Dense(3, activation="softmax")], name="mlp")
    mlp.compile(optimizer=keras.optimizers.Adam(0.01), loss="categorical_crossentropy",
                metrics=["accuracy"])
    x = rng.normal(size=(16, 6)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.randint(0, 3, 16)]
    out["mlp"] = (mlp, x, y, rng.normal(size=(4, 6)).astype("float32"))

    cnn = keras.Sequential([keras.Input((8, 8, 2)), L.Conv2D(4, 3, padding="same"),
                            L.BatchNormalization(), L.Activation("relu"), L.MaxPooling2D(),
                            L.Flatten(), L.Dense(2)], name="cnn")
    cnn.compile(optimizer="adam", loss="mse")
    x = rng.normal(size=(16, 8, 8, 2)).astype("float32")
    y = rng.normal(size=(16, 2)).astype("float32")
    out["cnn"] = (cnn, x, y, rng.normal(size=(3, 8, 8, 2)).astype("float32"))

    text = keras.Sequential([keras.Input((7,), dtype="int32"), L.Embedding(20, 5),
                             L.LSTM(6, return_sequences=True), L.GRU(4),
                             L.Dense(1, activation="sigmoid")], name="text")
    text.compile(optimizer="adam", loss="binary_crossentropy")
    x = rng.randint(0, 20, (16, 7)).astype("int32")
    y = rng.randint(0, 2, (16, 1)).astype("float32")
    out["text"] = (text, x, y, rng.randint(0, 20, (3, 7)).astype("int32"))

    a = keras.Input((5,), name="a")
    b = keras.Input((3,), name="b")
    h = L.Concatenate()([L.Dense(4, activation="tanh")(a), b])
    h = L.Dense(6, activation="relu")(h)
    o1 = L.Dense(1, name="reg")(h)
    o2 = L.Dense(2, activation="softmax", name="cls")(h)
    two = keras.Model([a, b], [o1, o2], name="two")
    two.compile(optimizer=keras.optimizers.Adam(0.005),
                loss=["mse", "sparse_categorical_crossentropy"], loss_weights=[1.0, 0.5])
    xa = rng.normal(size=(16, 5)).astype("float32")
    xb = rng.normal(size=(16, 3)).astype("float32")
    y1 = rng.normal(size=(16, 1)).astype("float32")
    y2 = rng.randint(0, 2, (16,)).astype("int32")
    out["two"] = (two, [xa, xb], [y1, y2],
                  [rng.normal(size=(4, 5)).astype("float32"),
                   rng.normal(size=(4, 3)).astype("float32")])

    wrappers = keras.Sequential([keras.Input((6, 3)),
                                 L.Bidirectional(L.LSTM(4, return_sequences=True)),
                                 L.TimeDistributed(L.Dense(2)), L.Flatten(), L.Dense(1)],
                                name="wrappers")
    wrappers.compile(optimizer="adam", loss="mse")
    x = rng.normal(size=(16, 6, 3)).astype("float32")
    y = rng.normal(size=(16, 1)).astype("float32")
    out["wrappers"] = (wrappers, x, y, rng.normal(size=(3, 6, 3)).astype("float32"))
    return out


def main(folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    for name, (model, x, y, xp) in models().items():
        model.fit(x, y, epochs=1, batch_size=8, verbose=0)
        model.save(os.path.join(folder, f"{name}.keras"))
        model.save_weights(os.path.join(folder, f"{name}.weights.h5"))
        pred = model.predict(xp, verbose=0)
        pred = pred if isinstance(pred, list) else [pred]
        xp = xp if isinstance(xp, list) else [xp]
        arrays = {f"x{i}": v for i, v in enumerate(xp)}
        arrays.update({f"y{i}": np.asarray(v) for i, v in enumerate(pred)})
        # one more step from the saved state (the optimizer's slots and step count matter)
        tx = x if isinstance(x, list) else [x]
        ty = y if isinstance(y, list) else [y]
        model.train_on_batch([v[:8] for v in tx] if len(tx) > 1 else tx[0][:8],
                             [v[:8] for v in ty] if len(ty) > 1 else ty[0][:8])
        after = model.predict(xp if len(xp) > 1 else xp[0], verbose=0)
        after = after if isinstance(after, list) else [after]
        arrays.update({f"tx{i}": v[:8] for i, v in enumerate(tx)})
        arrays.update({f"ty{i}": v[:8] for i, v in enumerate(ty)})
        arrays.update({f"z{i}": np.asarray(v) for i, v in enumerate(after)})
        np.savez(os.path.join(folder, f"{name}.npz"), **arrays)


def check(folder: str, reference: str) -> None:
    """Loads in Keras each <name>.keras that pynn wrote in `folder`, and prints as JSON, by
    name, the largest difference from Keras's predictions (`reference`'s <name>.npz) before
    and after one more training step, the optimizer's step count and Keras's warnings."""
    import json
    import warnings

    out = {}
    for name in models():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = keras.saving.load_model(os.path.join(folder, f"{name}.keras"))
        data = np.load(os.path.join(reference, f"{name}.npz"))

        def get(prefix, data=data):
            values = [data[f"{prefix}{i}"] for i in range(10) if f"{prefix}{i}" in data]
            return values if len(values) > 1 else values[0]

        def gap(pred, want):
            pred = pred if isinstance(pred, list) else [pred]
            want = want if isinstance(want, list) else [want]
            return max(float(np.abs(np.asarray(p) - w).max()) for p, w in zip(pred, want))
        before = gap(model.predict(get("x"), verbose=0), get("y"))
        model.train_on_batch(get("tx"), get("ty"))
        after = gap(model.predict(get("x"), verbose=0), get("z"))
        out[name] = {"before": before, "after": after,
                     "iterations": int(model.optimizer.iterations),
                     "warnings": [str(w.message) for w in caught]}
    print(json.dumps(out))


def check_steps(folder: str) -> None:
    """Loads in Keras each <name>.keras that pynn wrote in `folder`, takes one training step on
    folder/x.npy, folder/y.npy and prints as JSON, by name, the largest difference of its
    predictions on x from pynn's after the same step (<name>.npy), and Keras's warnings (one
    when the optimizer's saved variables do not fit)."""
    import json
    import warnings

    x, y = np.load(os.path.join(folder, "x.npy")), np.load(os.path.join(folder, "y.npy"))
    out = {}
    for file in sorted(os.listdir(folder)):
        if file.endswith(".keras"):
            name = file[:-len(".keras")]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model = keras.saving.load_model(os.path.join(folder, file))
            model.train_on_batch(x, y)
            want = np.load(os.path.join(folder, f"{name}.npy"))
            out[name] = {"after": float(np.abs(model.predict(x, verbose=0) - want).max()),
                         "warnings": [str(w.message) for w in caught]}
    print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1] == "--check":  # keras_files.py --check <pynn's files> <reference folder>
        check(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "--check-steps":  # keras_files.py --check-steps <pynn's files>
        check_steps(sys.argv[2])
    else:
        main(sys.argv[1])
