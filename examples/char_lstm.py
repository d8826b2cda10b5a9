"""A character-level LSTM language model on Tiny Shakespeare, then a generated sample.

Input(shape=(seq,), dtype="int32") -> Embedding -> LSTM(return_sequences=True) -> Dense(vocab):
at every position the model predicts the next character (logits), trained with sparse
categorical cross-entropy over all (batch, time) targets. Reports the train and validation loss
per epoch (nats per character; a uniform guess over 65 characters costs ln 65 = 4.17), then
samples text from the model with a temperature.

The text is read from `$PYNN_DATASETS/tinyshakespeare/input.txt` (or `~/.pynn/datasets/...`):

    PYNN_DATASETS=../shared/data python examples/char_lstm.py [--epochs 3] [--quick]
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


def windows(codes: np.ndarray, seq: int, step: int):
    """(x, y): windows of `seq` characters every `step`, and the same shifted by one."""
    starts = np.arange(0, len(codes) - seq - 1, step)
    idx = starts[:, None] + np.arange(seq)
    return codes[idx].astype(np.int32), codes[idx + 1].astype(np.int32)


def sample(model, vocab: str, prime: str, length: int, seq: int, temperature: float,
           rng: np.random.Generator) -> str:
    """Generates `length` characters after `prime`, each drawn from softmax(logits / T) of the
    last position of the model run on the last `seq` characters."""
    lookup = {c: i for i, c in enumerate(vocab)}
    codes = [lookup[c] for c in prime if c in lookup]
    for _ in range(length):
        window = codes[-seq:]
        x = np.zeros((1, seq), np.int32)
        x[0, seq - len(window):] = window  # left-padded with code 0 at the start
        logits = model.predict(x, verbose=0)[0, -1].astype(np.float64) / temperature
        p = np.exp(logits - logits.max())
        codes.append(int(rng.choice(len(vocab), p=p / p.sum())))
    return "".join(vocab[c] for c in codes)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seq", type=int, default=64, help="characters per training window")
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--chars", type=int, default=0,
                        help="train on the first N characters only (0: all)")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--sample-length", type=int, default=300)
    parser.add_argument("--quick", action="store_true",
                        help="a run of seconds: 300k characters, 64 units, 2 epochs")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if args.quick:
        args.chars, args.units, args.epochs, args.sample_length = 300_000, 64, 2, 100
        args.batch_size = 32

    keras.utils.set_random_seed(args.seed)
    codes, vocab = keras.datasets.tiny_shakespeare.load_data(as_codes=True)
    if args.chars:
        codes = codes[:args.chars]
    cut = int(len(codes) * 0.9)  # the first 90% for training, the rest for validation
    x_train, y_train = windows(codes[:cut], args.seq, args.seq)
    x_val, y_val = windows(codes[cut:], args.seq, args.seq)
    print(f"{len(codes):,} characters, {len(vocab)} distinct; windows of {args.seq}: "
          f"{len(x_train):,} train, {len(x_val):,} validation")

    model = keras.Sequential([
        keras.Input(shape=(args.seq,), dtype="int32"),
        layers.Embedding(len(vocab), 32),
        layers.LSTM(args.units, return_sequences=True),
        layers.Dense(len(vocab)),
    ])
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.summary()
    history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                        validation_data=(x_val, y_val), verbose=2)
    for e, (lt, lv) in enumerate(zip(history.history["loss"], history.history["val_loss"])):
        print(f"epoch {e + 1}: train loss {lt:.3f}, val loss {lv:.3f} (nats per character)")
    print(f"Final validation loss: {history.history['val_loss'][-1]:.3f}")

    rng = np.random.default_rng(args.seed)
    text = sample(model, vocab, "ROMEO:\n", args.sample_length, args.seq, args.temperature, rng)
    print(f"\nSample (temperature {args.temperature}):\n{text}")


if __name__ == "__main__":
    main()
