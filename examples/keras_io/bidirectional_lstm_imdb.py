"""Bidirectional LSTM on IMDB (keras-io, Keras 3 version), with only `import keras` swapped: a
model on `Input(shape=(None,))`, variable-length sequences, of two bidirectional LSTMs.
The IMDB download is replaced by synthetic reviews of random length (word ids; the label says
whether the review holds more words of a "positive" set than of a "negative" one), padded with
pad_sequences as the example does. At the end the trained model also scores reviews of other
lengths than it trained on. EXAMPLE_SAMPLES, EXAMPLE_EPOCHS and EXAMPLE_MAXLEN (env) size it.
"""

import os

import numpy as np

import pynn as keras
from pynn import layers

max_features = 20000  # Only consider the top 20k words


def synthetic_reviews(n, seed):
    rng = np.random.default_rng(seed)
    positive, negative = np.arange(10, 60), np.arange(60, 110)
    reviews, labels = [], []
    for _ in range(n):
        words = rng.integers(110, max_features, rng.integers(20, 300))
        label = int(rng.integers(0, 2))
        marks = rng.choice(positive if label else negative, rng.integers(3, 8))
        other = rng.choice(negative if label else positive, rng.integers(0, 3))
        spots = rng.choice(len(words), len(marks) + len(other), replace=False)
        words[spots] = np.concatenate([marks, other])
        reviews.append(words.tolist())
        labels.append(label)
    return reviews, np.array(labels)


def main():
    n = int(os.environ.get("EXAMPLE_SAMPLES", "25000"))
    epochs = int(os.environ.get("EXAMPLE_EPOCHS", "2"))
    maxlen = int(os.environ.get("EXAMPLE_MAXLEN", "200"))
    keras.utils.set_random_seed(1)

    inputs = keras.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(max_features, 128)(inputs)
    x = layers.Bidirectional(layers.LSTM(64, return_sequences=True))(x)
    x = layers.Bidirectional(layers.LSTM(64))(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.summary()

    x_train, y_train = synthetic_reviews(n, 0)
    x_val, y_val = synthetic_reviews(max(n // 5, 64), 1)
    x_train = keras.utils.pad_sequences(x_train, maxlen=maxlen)
    x_val = keras.utils.pad_sequences(x_val, maxlen=maxlen)

    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=32, epochs=epochs,
                        validation_data=(x_val, y_val), verbose=2)
    acc = history.history["val_accuracy"][-1]
    # the same model on reviews of other lengths (not padded to maxlen)
    short = keras.utils.pad_sequences(synthetic_reviews(64, 2)[0], maxlen=maxlen // 2)
    print(f"validation accuracy {acc:.4f}; scores for {short.shape[1]}-word reviews: "
          f"{model.predict(short[:3], verbose=0).ravel()}")
    return acc


if __name__ == "__main__":
    main()
