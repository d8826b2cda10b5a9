"""Binary classification: logistic regression on 2-D points, no download needed.

Shows the smallest complete pynn workflow, written exactly as Keras 3 code:
Sequential + Input + Dense(sigmoid), compile with SGD and binary cross-entropy,
fit, evaluate, predict and summary.

The data are 1000 random points in [0, 1]^2 (seeded NumPy), labelled by
x0 + x1 < 0.5; the test set is a fresh 1000 points drawn the same way.
Training takes a few seconds.

Run (from the repository root):

    python examples/binary_classification.py
"""

import sys
import time
from pathlib import Path

import numpy as np

try:
    import pynn as keras
except ImportError:  # run from a source checkout where pynn is built in place, not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import pynn as keras
from pynn import layers


class EveryNEpochs(keras.callbacks.Callback):
    """Prints the epoch's loss and accuracy every `n` epochs (keeps the output short)."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.n == 0:
            print(f"epoch {epoch + 1:3d}: loss {logs['loss']:.4f} - "
                  f"accuracy {logs['accuracy']:.4f}")


def make_data(rng, n):
    x = rng.random((n, 2)).astype("float32")
    y = (x[:, 0] + x[:, 1] < 0.5).astype("float32")  # labelled by x0 + x1 < 0.5
    return x, y


def main():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x_train, y_train = make_data(rng, 1000)
    x_test, y_test = make_data(rng, 1000)
    print(f"train: {x_train.shape}, {int(y_train.sum())} positives; "
          f"test: {x_test.shape}, {int(y_test.sum())} positives")

    model = keras.Sequential([
        keras.Input(shape=(2,)),
        layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1),
                  loss="binary_crossentropy", metrics=["accuracy"])
    model.summary()

    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=100, batch_size=10, verbose=0,
              callbacks=[EveryNEpochs(20)])
    took = time.perf_counter() - start

    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)

    print("\nA few test predictions (x0, x1 -> P(label 1), true label):")
    probs = model.predict(x_test[:8], verbose=0)
    for (x0, x1), p, t in zip(x_test[:8], probs[:, 0], y_test[:8], strict=True):
        print(f"  ({x0:.3f}, {x1:.3f}) -> {p:.3f}  [{int(t)}]")

    kernel, bias = model.get_weights()
    a, b = kernel[:, 0] / -bias[0]  # the boundary w.x + bias = 0, written as a*x0 + b*x1 = 1
    print(f"\nLearned boundary: {a:.2f}*x0 + {b:.2f}*x1 = 1  (true boundary: 2*x0 + 2*x1 = 1)")
    print(f"Training time: {took:.2f} s for 100 epochs")
    print(f"Test loss:     {loss:.4f}")
    print(f"Test accuracy: {accuracy:.2%}  (target >= 95%)")


if __name__ == "__main__":
    main()
