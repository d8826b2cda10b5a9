"""Masked sequence models, the same code for pynn and Keras 3: `run()` returns their outputs,
losses, metrics and weights after a few SGD steps, for fixed weights and padded data.

`tests/test_masking.py` compares pynn's with what Keras 3 (JAX backend) gave, kept in
masking.npz beside this file; to make it again, in an environment with keras and jax:
    KERAS_BACKEND=jax python ../shared/tools/keras_ref.py tests/keras_reference/masking.py \
        tests/keras_reference/masking.npz
(keras_ref.py runs this file with `pynn` standing for `keras`).
"""

import sys

import numpy as np

import pynn as keras
from pynn import layers

VOCAB, STEPS = 20, 7


def data(n: int = 12, seed: int = 0):
    """Token ids padded with 0, right- and left-padded rows of 1..STEPS tokens; labels. (No
    row is all padding: GlobalAveragePooling1D's mean of no steps is 0/0, NaN in both.)"""
    rng = np.random.RandomState(seed)
    ids = np.zeros((n, STEPS), np.int32)
    for i in range(n):
        length = (i % STEPS) + 1
        tokens = rng.randint(1, VOCAB, size=length)
        if i % 3 == 2:  # left-padded
            ids[i, STEPS - length:] = tokens
        else:
            ids[i, :length] = tokens
    labels = (ids.sum(axis=1) % 3).astype(np.int32)
    return ids, labels


def set_weights(model, seed: int) -> None:
    rng = np.random.RandomState(seed)
    model.set_weights([rng.uniform(-0.4, 0.4, w.shape).astype(np.float32)
                       for w in model.get_weights()])


def models() -> dict:
    """name -> model: each recurrent layer and a masked attention model over one padded
    sequence input."""
    out = {}

    def make(name, body, classes=3):
        x = keras.Input((STEPS,), dtype="int32")
        h = layers.Embedding(VOCAB, 6, mask_zero=True)(x)
        out[name] = keras.Model(x, layers.Dense(classes, activation="softmax")(body(h)))

    make("lstm", lambda h: layers.LSTM(5)(layers.LSTM(4, return_sequences=True)(h)))
    make("gru", lambda h: layers.GRU(5, go_backwards=True)(h))
    make("gru_v1", lambda h: layers.GRU(5, reset_after=False)(h))
    make("simple_rnn", lambda h: layers.GlobalAveragePooling1D()(
        layers.SimpleRNN(4, return_sequences=True)(h)))
    make("bidirectional", lambda h: layers.GlobalAveragePooling1D()(
        layers.Bidirectional(layers.LSTM(3, return_sequences=True))(h)))
    make("rnn_cells", lambda h: layers.RNN(
        [layers.LSTMCell(4), layers.GRUCell(3)], return_sequences=True)(h)[:, -1])
    make("attention", lambda h: layers.GlobalAveragePooling1D()(
        layers.MultiHeadAttention(2, 3)(h, h)))
    # a masked output: the loss and the metrics leave the padding out
    x = keras.Input((STEPS,), dtype="int32")
    h = layers.Embedding(VOCAB, 6, mask_zero=True)(x)
    h = layers.LSTM(4, return_sequences=True, zero_output_for_mask=True)(h)
    out["per_step"] = keras.Model(x, layers.Dense(3, activation="softmax")(h))
    # Masking on float features
    x = keras.Input((STEPS, 2))
    out["masking"] = keras.Model(x, layers.Dense(3, activation="softmax")(
        layers.GRU(4)(layers.Masking(0.0)(x))))
    return out


def run() -> dict:
    ids, labels = data()
    step_labels = (ids % 3).astype(np.int32)
    feats = np.stack([ids / VOCAB, (ids % 2) * 1.0], axis=-1).astype(np.float32)
    results = {}
    for k, (name, model) in enumerate(models().items()):
        set_weights(model, k)
        x = feats if name == "masking" else ids
        y = step_labels if name == "per_step" else labels
        results[f"{name}/predict"] = model.predict(x, batch_size=5, verbose=0)
        model.compile(optimizer=keras.optimizers.SGD(0.5),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        loss, acc = model.evaluate(x, y, batch_size=5, verbose=0)
        results[f"{name}/evaluate"] = np.array([loss, acc], np.float32)
        history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        results[f"{name}/fit"] = np.array(history.history["loss"] + history.history["accuracy"],
                                          np.float32)
        for i, w in enumerate(model.get_weights()):
            results[f"{name}/weight{i}"] = w
    return results


if __name__ == "__main__":
    np.savez(sys.argv[1], **run())
