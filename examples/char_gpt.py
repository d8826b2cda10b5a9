"""A character-level GPT trained from scratch on Tiny Shakespeare, in plain Keras 3.

The model is a decoder-only Transformer: token embeddings plus learned position embeddings, then
pre-norm blocks (LayerNormalization -> causal MultiHeadAttention -> residual Add;
LayerNormalization -> Dense(4 d, gelu) -> Dense(d) -> residual Add), a final LayerNormalization
and a Dense layer giving the next character's logits at every position. 4 blocks, 4 heads,
embedding 128, context 64 by default. It is trained with AdamW and a cosine learning-rate schedule
(with warmup) on random 64-character windows of the first 90% of the text, with sparse
categorical cross-entropy over every (window, position); the last 10% is the validation set. At
the end it prints the validation loss (nats per character) and a sample drawn with
`pynn.utils.generate`. Target: validation loss <= 1.70 within 20 minutes on 2 cores; on this
project's 2-core machine the defaults (8000 steps of 32 windows) pass 1.70 after about 3 minutes
and end near 1.53 after 15.

    PYNN_DATASETS=../shared/data python examples/char_gpt.py [--minutes 20] [--quick]

`--minutes` caps the training time: the schedule is planned for `--steps` steps, and training
stops early (keeping the weights) if the time runs out first.
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


def build_model(vocab_size: int, context: int = 64, num_layers: int = 4, num_heads: int = 4,
                dim: int = 128, dropout: float = 0.0):
    """The GPT: (batch, context) int32 character codes -> (batch, context, vocab) logits."""
    tokens = keras.Input(shape=(context,), dtype="int32", name="tokens")
    x = layers.Embedding(vocab_size, dim, name="token_embedding")(tokens)
    positions = layers.PositionEmbedding(context, name="position_embedding")(x)
    x = layers.Add()([x, positions])
    for i in range(num_layers):
        h = layers.LayerNormalization(epsilon=1e-5, name=f"block{i}_ln1")(x)
        h = layers.MultiHeadAttention(num_heads, dim // num_heads, dropout=dropout,
                                      name=f"block{i}_attention")(h, h, use_causal_mask=True)
        if dropout:
            h = layers.Dropout(dropout)(h)
        x = layers.Add()([x, h])
        h = layers.LayerNormalization(epsilon=1e-5, name=f"block{i}_ln2")(x)
        h = layers.Dense(4 * dim, activation="gelu", name=f"block{i}_mlp_in")(h)
        h = layers.Dense(dim, name=f"block{i}_mlp_out")(h)
        if dropout:
            h = layers.Dropout(dropout)(h)
        x = layers.Add()([x, h])
    x = layers.LayerNormalization(epsilon=1e-5, name="final_ln")(x)
    logits = layers.Dense(vocab_size, name="logits")(x)
    return keras.Model(tokens, logits, name="char_gpt")


class RandomWindows(keras.utils.PyDataset):
    """Batches of random windows of `codes`: x the window, y the same window one step later."""

    def __init__(self, codes: np.ndarray, context: int, batch_size: int, steps: int, seed: int):
        super().__init__()
        self.codes, self.context, self.batch_size, self.steps = codes, context, batch_size, steps
        self.rng = np.random.default_rng(seed)
        self.offsets = np.arange(context + 1)

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index):
        starts = self.rng.integers(0, len(self.codes) - self.context - 1, size=self.batch_size)
        w = self.codes[starts[:, None] + self.offsets].astype(np.int32)
        return w[:, :-1], w[:, 1:]


def windows(codes: np.ndarray, context: int):
    """Every non-overlapping window of `codes`, and its next-character targets."""
    n = (len(codes) - 1) // context
    x = codes[:n * context].reshape(n, context).astype(np.int32)
    y = codes[1:n * context + 1].reshape(n, context).astype(np.int32)
    return x, y


class TimeLimit(keras.callbacks.Callback):
    """Stops training once `minutes` have passed (checked after every batch)."""

    def __init__(self, minutes: float):
        super().__init__()
        self.seconds = minutes * 60.0

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() - self.start > self.seconds:
            self.model.stop_training = True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8000, help="training steps planned")
    parser.add_argument("--epochs", type=int, default=10, help="the steps are cut into epochs")
    parser.add_argument("--minutes", type=float, default=20.0, help="training time cap")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--sample", type=int, default=400, help="characters to generate")
    parser.add_argument("--quick", action="store_true",
                        help="2 blocks of width 64 for 500 steps (seconds): checks that it learns")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.epochs, args.layers, args.dim, args.sample = 500, 1, 2, 64, 80

    keras.utils.set_random_seed(args.seed)
    codes, vocab = keras.datasets.tiny_shakespeare.load_data(as_codes=True)
    cut = int(len(codes) * 0.9)  # 90/10 train/validation split, in reading order
    train_codes, val_codes = codes[:cut], codes[cut:]
    x_val, y_val = windows(val_codes, args.context)
    if args.quick:
        x_val, y_val = x_val[:256], y_val[:256]

    model = build_model(len(vocab), args.context, args.layers, args.heads, args.dim,
                        args.dropout)
    warmup = max(1, args.steps // 20)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=args.steps - warmup, alpha=0.1, warmup_target=args.lr,
        warmup_steps=warmup)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=schedule, weight_decay=0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.summary()

    per_epoch = max(1, args.steps // args.epochs)
    data = RandomWindows(train_codes, args.context, args.batch_size, per_epoch, args.seed)
    t0 = time.perf_counter()
    history = model.fit(data, epochs=args.epochs, validation_data=(x_val, y_val),
                        validation_batch_size=64, callbacks=[TimeLimit(args.minutes)],
                        verbose=2)
    minutes = (time.perf_counter() - t0) / 60.0
    steps = int(model.optimizer.iterations)
    tokens = steps * args.batch_size * args.context

    val_loss = history.history["val_loss"][-1]
    print(f"trained {steps} steps ({tokens / 1e6:.1f}M tokens) in {minutes:.1f} min: "
          f"{tokens / (minutes * 60.0):,.0f} tokens/s")
    print(f"train loss {history.history['loss'][-1]:.3f}, validation loss {val_loss:.3f} "
          f"nats/char (target <= 1.70)")

    ids = keras.utils.generate(model, [vocab.index("\n")], args.sample, temperature=0.8, top_k=20,
                               seed=args.seed)
    print("sample:\n" + "".join(vocab[i] for i in ids))
    return val_loss


if __name__ == "__main__":
    main()
