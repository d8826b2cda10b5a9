"""MNIST digits with a multilayer perceptron: the classic Keras first model.

Shows: `keras.datasets.mnist.load_data()`, flattening and scaling images, a
Sequential Input(784) -> Dense(128, relu) -> Dense(10, softmax), compile with
'adam' and sparse categorical cross-entropy, fit with a validation split,
evaluate on the 10,000 test images, and the time each epoch takes.
Target: test accuracy >= 97.5% after 5 epochs. Everything but `--threads`
(`keras.set_num_threads` / `keras.get_num_threads`, pynn extras) is plain Keras 3.

The data are read from `$PYNN_DATASETS/mnist/` (the four IDX files or mnist.npz), then
`~/.pynn/datasets`, and downloaded only when neither has them. Run (from the repository root):

    PYNN_DATASETS=../shared/data python examples/mnist_mlp.py [--epochs 5] [--batch-size 32]
"""

import argparse
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


class EpochTimer(keras.callbacks.Callback):
    """Records the wall-clock time of every epoch (validation included)."""

    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--validation-split", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for pynn (default: all available cores)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    print("Note: MNIST is read from $PYNN_DATASETS/mnist/ when present, else downloaded; "
          "set PYNN_DATASETS=../shared/data (from the repository root) when running offline.\n")

    keras.utils.set_random_seed(args.seed)
    if args.threads is not None:
        keras.set_num_threads(args.threads)

    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    x_train = x_train.reshape(-1, 784).astype("float32") / 255.0
    x_test = x_test.reshape(-1, 784).astype("float32") / 255.0
    print(f"x_train {x_train.shape}, y_train {y_train.shape}, "
          f"x_test {x_test.shape}, y_test {y_test.shape}")

    model = keras.Sequential([
        keras.Input(shape=(784,)),
        layers.Dense(128, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.summary()

    timer = EpochTimer()
    print(f"\nTraining {args.epochs} epochs, batch size {args.batch_size}, "
          f"{keras.get_num_threads()} threads:")
    history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                        validation_split=args.validation_split, verbose=2,
                        callbacks=[timer])

    start = time.perf_counter()
    test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)
    eval_time = time.perf_counter() - start

    predicted = model.predict(x_test[:10], verbose=0).argmax(axis=1)
    print(f"\nFirst 10 test digits: true      {y_test[:10].tolist()}")
    print(f"                      predicted {predicted.tolist()}")

    times = np.array(timer.times)
    print(f"\nTime per epoch: {np.median(times):.2f} s median, {times.mean():.2f} s mean "
          f"({', '.join(f'{t:.2f}' for t in times)} s), {times.sum():.1f} s in all")
    print(f"Final training accuracy:   {history.history['accuracy'][-1]:.4f}")
    if "val_accuracy" in history.history:
        print(f"Final validation accuracy: {history.history['val_accuracy'][-1]:.4f}")
    print(f"Test loss:     {test_loss:.4f}  (evaluated in {eval_time:.2f} s)")
    print(f"Test accuracy: {test_acc:.2%}  (target >= 97.5%)")


if __name__ == "__main__":
    main()
