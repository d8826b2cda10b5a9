"""Sequence to sequence learning for number addition (keras-io, Keras 3 version), with only
`import keras` swapped: "535+61" -> "596", an LSTM encoder whose last state is repeated
(RepeatVector) into an LSTM decoder, a softmax over the characters at each output step,
categorical cross-entropy. Questions are generated as the example generates them (reversed,
3 digits). Sizes from the environment: EXAMPLE_SAMPLES (50000, the example's), EXAMPLE_EPOCHS
(29: the example's loop of 1-epoch fits), EXAMPLE_SEED (1).

At full size (50,000 questions, 45,000 to train, 29 epochs of 1,407 steps) against Keras 3.15.1
(JAX backend; this file run under shared/tools/keras_ref.py), runs 1 and 2 with EXAMPLE_SEED 1
and 2, on a 2-vCPU AMD EPYC shared with other work (seconds per epoch: the median of the epochs'
ms/step x 1,407 steps):

    | run         | val accuracy, last epoch | best epoch | exact answers | s/epoch |
    |-------------|--------------------------|------------|---------------|---------|
    | pynn, 1     | 0.9815                   | 0.9997     | 0.928         | 2.8     |
    | Keras 3, 1  | 0.9984                   | 0.9992     | 0.993         | 8.4     |
    | pynn, 2     | 0.9981                   | 0.9989     | 0.992         | 7.0     |
    | Keras 3, 2  | 0.9973                   | 0.9987     | 0.990         | 7.0     |

Per-character validation accuracy follows the same curve in both (run 1, epoch 5: 0.7265 and
0.7376, epoch 8: 0.9717 and 0.9617); both drop now and then (pynn 0.9135 at epoch 19, Keras
0.9769 at epoch 19), and pynn's first run ends on such a dip.
"""

import os

import numpy as np

import pynn as keras
from pynn import layers

DIGITS = 3
REVERSE = True
MAXLEN = DIGITS + 1 + DIGITS  # 'int + int', e.g. '345+678'


class CharacterTable:
    """One-hot encodes characters, and decodes one-hot rows or probabilities back."""

    def __init__(self, chars):
        self.chars = sorted(set(chars))
        self.char_indices = {c: i for i, c in enumerate(self.chars)}
        self.indices_char = dict(enumerate(self.chars))

    def encode(self, C, num_rows):
        x = np.zeros((num_rows, len(self.chars)))
        for i, c in enumerate(C):
            x[i, self.char_indices[c]] = 1
        return x

    def decode(self, x, calc_argmax=True):
        if calc_argmax:
            x = x.argmax(axis=-1)
        return "".join(self.indices_char[i] for i in x)


chars = "0123456789+ "
ctable = CharacterTable(chars)


def make_data(n, rng):
    questions, expected, seen = [], [], set()
    while len(questions) < n:
        def f():
            return int("".join(rng.choice(list("0123456789"))
                               for _ in range(rng.integers(1, DIGITS + 1))))
        a, b = f(), f()
        key = tuple(sorted((a, b)))  # skip x+y when y+x was asked
        if key in seen:
            continue
        seen.add(key)
        q = f"{a}+{b}"
        query = q + " " * (MAXLEN - len(q))
        ans = str(a + b)
        ans += " " * (DIGITS + 1 - len(ans))
        questions.append(query[::-1] if REVERSE else query)
        expected.append(ans)
    x = np.zeros((n, MAXLEN, len(chars)), dtype=bool)
    y = np.zeros((n, DIGITS + 1, len(chars)), dtype=bool)
    for i, sentence in enumerate(questions):
        x[i] = ctable.encode(sentence, MAXLEN)
    for i, sentence in enumerate(expected):
        y[i] = ctable.encode(sentence, DIGITS + 1)
    return x, y


def main():
    n = int(os.environ.get("EXAMPLE_SAMPLES", "50000"))
    epochs = int(os.environ.get("EXAMPLE_EPOCHS", "29"))
    rng = np.random.default_rng(int(os.environ.get("EXAMPLE_SEED", "1")))
    keras.utils.set_random_seed(1)
    x, y = make_data(n, rng)
    split_at = len(x) - len(x) // 10  # 10% held out for validation
    (x_train, x_val), (y_train, y_val) = (x[:split_at], x[split_at:]), (y[:split_at], y[split_at:])

    model = keras.Sequential()
    model.add(layers.Input((MAXLEN, len(chars))))
    model.add(layers.LSTM(128))
    model.add(layers.RepeatVector(DIGITS + 1))
    model.add(layers.LSTM(128, return_sequences=True))
    model.add(layers.Dense(len(chars), activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.summary()

    history = None
    for _ in range(epochs):
        history = model.fit(x_train, y_train, batch_size=32, epochs=1,
                            validation_data=(x_val, y_val), verbose=2)
    preds = np.argmax(model.predict(x_val, verbose=0), axis=-1)
    exact = float(np.mean([ctable.decode(p, calc_argmax=False) == ctable.decode(t)
                           for p, t in zip(preds, y_val)]))
    for i in range(5):
        q = ctable.decode(x_val[i])
        print("Q", q[::-1] if REVERSE else q, "T", ctable.decode(y_val[i]), "G",
              ctable.decode(preds[i], calc_argmax=False))
    acc = history.history["val_accuracy"][-1]
    print(f"validation accuracy (per character) {acc:.4f}, exact answers {exact:.4f}")
    return acc


if __name__ == "__main__":
    main()
