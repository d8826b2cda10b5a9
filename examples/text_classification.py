"""Text classification with an Embedding: is a 64-character window real Shakespeare, or the same
characters shuffled?

Windows of 64 characters from Tiny Shakespeare; each is labelled 1 (as written) or 0 (its
characters in random order: the same letters, no words). The model is plain Keras 3:
Input(shape=(64,), dtype="int32") -> Embedding -> Flatten -> Dense(64, relu) -> Dense(1, sigmoid),
adam, binary cross-entropy, validation_data, evaluate. Target: validation accuracy >= 90%.

The hidden layer is needed: without it the score is a sum of one term per position, and every
position of a shuffled window holds each character as often as a real one does, so such a model
stays at chance (50%); telling a shuffle needs pairs of neighbouring characters.

The text is read from `$PYNN_DATASETS/tinyshakespeare/input.txt` (or `~/.pynn/datasets/...`):

    PYNN_DATASETS=../shared/data python examples/text_classification.py [--epochs 5]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

try:
    import pynn as keras
except ImportError:  # run from a source checkout where pynn is built in place, not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import pynn as keras
from pynn import layers

WINDOW = 64


def make_windows(codes: np.ndarray, n: int, rng: np.random.Generator):
    """n windows at random places; half of them with their characters shuffled (label 0)."""
    starts = rng.integers(0, len(codes) - WINDOW, size=n)
    x = codes[starts[:, None] + np.arange(WINDOW)]
    y = rng.integers(0, 2, size=n)
    for i in np.flatnonzero(y == 0):
        rng.shuffle(x[i])
    return x.astype(np.int32), y.astype(np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=40000, help="training windows")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    text = keras.datasets.tiny_shakespeare.load_data()
    vocab = sorted(set(text))
    codes = np.array([vocab.index(c) for c in vocab])[np.searchsorted(vocab, list(text))]
    # the first 90% of the play for training, the rest for validation and test
    cut = int(len(codes) * 0.9)
    x_train, y_train = make_windows(codes[:cut], args.samples, rng)
    x_val, y_val = make_windows(codes[cut:], 4000, rng)
    x_test, y_test = make_windows(codes[cut:], 4000, rng)
    print(f"{len(text):,} characters, {len(vocab)} distinct; windows of {WINDOW}: "
          f"{len(x_train):,} train, {len(x_val):,} validation, {len(x_test):,} test")

    model = keras.Sequential([
        keras.Input(shape=(WINDOW,), dtype="int32"),
        layers.Embedding(len(vocab), 16),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.summary()
    history = model.fit(x_train, y_train, batch_size=64, epochs=args.epochs,
                        validation_data=(x_val, y_val), verbose=2)
    test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)
    print(f"\nValidation accuracy: {history.history['val_accuracy'][-1]:.2%}  (target >= 90%)")
    print(f"Test loss:     {test_loss:.4f}")
    print(f"Test accuracy: {test_acc:.2%}")


if __name__ == "__main__":
    main()
