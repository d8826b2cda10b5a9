"""MNIST digits with the classic convolutional network.

The classic PyTorch MNIST network (Conv 32 3x3 -> ReLU -> max-pool 2 -> Conv 64 3x3 -> ReLU ->
max-pool 2 -> flatten -> Linear 128 -> ReLU -> Linear 10 -> log-softmax, NLL loss, Adam 1e-3,
batch 64) written with Keras layers: a softmax output and sparse categorical cross-entropy are the
same computation. As in PyTorch's MNIST example, the inputs are standardised and the learning
rate decays by 0.7 after each epoch (its StepLR, here keras.callbacks.LearningRateScheduler).
Target: test accuracy >= 99.0% within 3 epochs.
Everything but `--threads` (`keras.set_num_threads`, a pynn extra) is plain Keras 3.

    PYNN_DATASETS=../shared/data python examples/mnist_cnn.py [--epochs 3] [--batch-size 64]
"""

import argparse
import sys
import time
from pathlib import Path

try:
    import pynn as keras
except ImportError:  # run from a source checkout where pynn is built in place, not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import pynn as keras
from pynn import layers


def build_model() -> "keras.Sequential":
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train-samples", type=int, default=None,
                        help="train on the first N images only (a quick run)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for pynn (default: all available cores)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    if args.threads is not None:
        keras.set_num_threads(args.threads)

    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    # Scaled to [0, 1], then standardised with the training set's mean and deviation, as
    # PyTorch's MNIST example does (transforms.Normalize((0.1307,), (0.3081,))).
    x_train = (x_train[:args.train_samples, :, :, None].astype("float32") / 255.0 - 0.1307) / 0.3081
    y_train = y_train[:args.train_samples]
    x_test = (x_test[..., None].astype("float32") / 255.0 - 0.1307) / 0.3081
    print(f"x_train {x_train.shape}, x_test {x_test.shape}")

    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()

    print(f"\nTraining {args.epochs} epochs, batch size {args.batch_size}, "
          f"{keras.get_num_threads()} threads:")
    start = time.perf_counter()
    step_lr = keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.7 if epoch else lr)
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=2,
              callbacks=[step_lr])
    train_time = time.perf_counter() - start

    start = time.perf_counter()
    test_loss, test_acc = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    eval_time = time.perf_counter() - start

    predicted = model.predict(x_test[:10], verbose=0).argmax(axis=1)
    print(f"\nFirst 10 test digits: true      {y_test[:10].tolist()}")
    print(f"                      predicted {predicted.tolist()}")
    print(f"Training: {train_time:.1f} s ({len(x_train) * args.epochs / train_time:,.0f} "
          f"samples/s); test set evaluated in {eval_time:.2f} s")
    print(f"Test loss:     {test_loss:.4f}")
    print(f"Test accuracy: {test_acc:.2%}  (target >= 99.0%)")


if __name__ == "__main__":
    main()
