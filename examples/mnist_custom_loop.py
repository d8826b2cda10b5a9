"""MNIST digits with a convolutional network trained by a hand-written loop, PyTorch style.

The network of examples/mnist_cnn.py, with logits out (no softmax), trained without fit: each
step calls the model on a batch with training=True, takes the cross-entropy of the logits,
backpropagates with loss.backward() and lets Adam step, exactly as a PyTorch loop reads:

    optimizer.zero_grad()
    loss = loss_fn(y, model(x, training=True))
    loss.backward()
    optimizer.step()

Inputs are standardised and the learning rate decays by 0.7 after each epoch, as in PyTorch's
MNIST example. Target: test accuracy >= 98.5% after 2 epochs.

    PYNN_DATASETS=../shared/data python examples/mnist_custom_loop.py [--epochs 2]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

try:
    import pynn
except ImportError:  # run from a source checkout where pynn is built in place, not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import pynn
from pynn import layers


def build_model() -> "pynn.Sequential":
    return pynn.Sequential([
        pynn.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(10),
    ])


def train(model, x, y, epochs: int, batch_size: int, lr: float, seed: int, log=print):
    """The imperative loop; returns the mean training loss of each epoch."""
    loss_fn = pynn.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = pynn.optimizers.Adam(learning_rate=lr)
    optimizer.build(model.trainable_weights)
    rng = np.random.default_rng(seed)
    history = []
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        total, seen, start = 0.0, 0, time.perf_counter()
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(y[idx], model(x[idx], training=True))
            loss.backward()
            optimizer.step()
            total += float(loss) * len(idx)
            seen += len(idx)
        history.append(total / seen)
        log(f"epoch {epoch + 1}/{epochs}: loss {history[-1]:.4f} "
            f"({time.perf_counter() - start:.1f} s)")
        optimizer.learning_rate = optimizer.learning_rate * 0.7
    return history


def accuracy(model, x, y, batch_size: int = 500) -> float:
    with pynn.no_grad():
        hits = sum(int((model(x[i:i + batch_size]).argmax(-1) == y[i:i + batch_size]).sum())
                   for i in range(0, len(x), batch_size))
    return hits / len(x)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train-samples", type=int, default=None,
                        help="train on the first N images only (a quick run)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    pynn.utils.set_random_seed(args.seed)
    if args.threads is not None:
        pynn.set_num_threads(args.threads)
    (x_train, y_train), (x_test, y_test) = pynn.datasets.mnist.load_data()
    x_train = (x_train[:args.train_samples, :, :, None].astype("float32") / 255.0 - 0.1307) / 0.3081
    y_train = y_train[:args.train_samples].astype(np.int32)
    x_test = (x_test[..., None].astype("float32") / 255.0 - 0.1307) / 0.3081
    y_test = y_test.astype(np.int32)

    model = build_model()
    print(f"Training {args.epochs} epochs with a custom loop, batch size {args.batch_size}, "
          f"{pynn.get_num_threads()} threads:")
    start = time.perf_counter()
    train(model, x_train, y_train, args.epochs, args.batch_size, 1e-3, args.seed)
    train_time = time.perf_counter() - start
    acc = accuracy(model, x_test, y_test)
    print(f"\nTest accuracy: {acc:.4f}  (training {train_time:.1f} s)")
    return acc


if __name__ == "__main__":
    main()
