"""Text classification with a Transformer (keras-io, Keras 3 version), with only `import keras`
swapped: a custom TransformerBlock layer (MultiHeadAttention, a Sequential feed-forward,
LayerNormalization, Dropout) and a TokenAndPositionEmbedding layer whose call() uses ops.shape
and ops.arange, traced into the core's graph. The IMDB download is replaced by synthetic
reviews: the label says whether a review holds more "positive" words than the median.
EXAMPLE_SAMPLES and EXAMPLE_EPOCHS (env) size the run.
"""

import os

import numpy as np

import pynn as keras
from pynn import layers, ops


class TransformerBlock(layers.Layer):
    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1):
        super().__init__()
        self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.ffn = keras.Sequential(
            [layers.Dense(ff_dim, activation="relu"), layers.Dense(embed_dim)])
        self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
        self.dropout1 = layers.Dropout(rate)
        self.dropout2 = layers.Dropout(rate)

    def call(self, inputs):
        attn_output = self.att(inputs, inputs)
        attn_output = self.dropout1(attn_output)
        out1 = self.layernorm1(inputs + attn_output)
        ffn_output = self.ffn(out1)
        ffn_output = self.dropout2(ffn_output)
        return self.layernorm2(out1 + ffn_output)


class TokenAndPositionEmbedding(layers.Layer):
    def __init__(self, maxlen, vocab_size, embed_dim):
        super().__init__()
        self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        maxlen = ops.shape(x)[-1]
        positions = ops.arange(start=0, stop=maxlen, step=1)
        positions = self.pos_emb(positions)
        x = self.token_emb(x)
        return x + positions


def synthetic_reviews(n, vocab_size, maxlen, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, vocab_size, (n, maxlen))
    positive = rng.choice(vocab_size, 50, replace=False)
    count = np.isin(x, positive).sum(1)
    return x, (count > np.median(count)).astype(np.int32)


def main():
    n = int(os.environ.get("EXAMPLE_SAMPLES", "5000"))
    epochs = int(os.environ.get("EXAMPLE_EPOCHS", "4"))
    keras.utils.set_random_seed(1)
    vocab_size, maxlen = 2000, 50
    x, y = synthetic_reviews(n, vocab_size, maxlen)
    split = int(0.8 * n)
    x_train, y_train, x_val, y_val = x[:split], y[:split], x[split:], y[split:]

    embed_dim, num_heads, ff_dim = 32, 2, 32
    inputs = layers.Input(shape=(maxlen,))
    x = TokenAndPositionEmbedding(maxlen, vocab_size, embed_dim)(inputs)
    x = TransformerBlock(embed_dim, num_heads, ff_dim)(x)
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dropout(0.1)(x)
    x = layers.Dense(20, activation="relu")(x)
    x = layers.Dropout(0.1)(x)
    outputs = layers.Dense(2, activation="softmax")(x)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=32, epochs=epochs,
                        validation_data=(x_val, y_val), verbose=2)
    acc = history.history["val_accuracy"][-1]
    print(f"validation accuracy {acc:.4f}")
    return acc


if __name__ == "__main__":
    main()
