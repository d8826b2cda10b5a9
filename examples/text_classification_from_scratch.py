"""Text classification from scratch: Keras's example (keras-team/keras,
examples/keras_io/tensorflow/nlp/text_classification_from_scratch.py) with the import swapped for
pynn and the IMDB download swapped for a small local set of generated reviews.

The reviews (pos/neg folders of .txt files with label-correlated words, punctuation and HTML
<br /> tags) are written to a temporary folder at run time with a fixed seed, read with
pynn.utils.text_dataset_from_directory, vectorised by a TextVectorization layer adapted on the
training texts (a NumPy custom standardization: lower case, '<br />' removed, punctuation
stripped), classified by the example's Conv1D model, and finally evaluated end to end on raw
strings: Input(shape=(1,), dtype="string") -> vectorize_layer -> model.

Run it under real Keras with the same code (pynn aliased to keras), on the TensorFlow backend
(Keras's string layers need it inside a model; the standardization then takes the original's
tf.strings form):
    KERAS_BACKEND=tensorflow python ../shared/tools/keras_ref.py \
        examples/text_classification_from_scratch.py [--quick]
--quick: fewer files, smaller layers (what tests/test_text_preprocessing.py runs).
"""

import os
import re
import string
import sys
import tempfile

import numpy as np

import pynn as keras
from pynn import layers

QUICK = "--quick" in sys.argv
N_FILES = 300 if QUICK else 2000  # per class, for train and for test
rng = np.random.default_rng(1337)

# -- the data: aclImdb-like folders of generated reviews ----
NEUTRAL = ("the a this movie film plot actor actress scene story it was is and of to in with "
           "director ending music camera script character time really very quite just "
           "about some more than").split()
POSITIVE = "great excellent wonderful loved brilliant superb enjoyable moving fun best".split()
NEGATIVE = "awful terrible boring hated waste worst dull poor mess stupid".split()


def review(label: int) -> str:
    words = list(rng.choice(NEUTRAL, rng.integers(20, 40)))
    mine, other = (POSITIVE, NEGATIVE) if label else (NEGATIVE, POSITIVE)
    for _ in range(rng.integers(2, 5)):  # mostly words of its own class, some of the other
        pool = mine if rng.random() < 0.8 else other
        words.insert(int(rng.integers(0, len(words))), str(rng.choice(pool)))
    text = " ".join(words)
    text = text[0].upper() + text[1:]
    cut = text.rfind(" ", 0, len(text) // 2)
    return text[:cut] + ", really!<br /><br />" + text[cut:] + "."


def write_dataset(root: str) -> None:
    for split in ("train", "test"):
        for label, name in enumerate(("neg", "pos")):
            folder = os.path.join(root, split, name)
            os.makedirs(folder)
            for i in range(N_FILES):
                with open(os.path.join(folder, f"{i}_{label}.txt"), "w", encoding="utf-8") as f:
                    f.write(review(label))


tmp = tempfile.TemporaryDirectory()
root = os.path.join(tmp.name, "reviews")
write_dataset(root)

batch_size = 32
raw_train_ds = keras.utils.text_dataset_from_directory(
    os.path.join(root, "train"), batch_size=batch_size, validation_split=0.2,
    subset="training", seed=1337)
raw_val_ds = keras.utils.text_dataset_from_directory(
    os.path.join(root, "train"), batch_size=batch_size, validation_split=0.2,
    subset="validation", seed=1337)
raw_test_ds = keras.utils.text_dataset_from_directory(
    os.path.join(root, "test"), batch_size=batch_size)
print(f"Number of batches in raw_train_ds: {len(raw_train_ds)}")


# -- preparing the data ----
def custom_standardization(input_data):
    """NumPy strings in, NumPy strings out: lower case, no HTML breaks, no punctuation."""
    if "tensorflow" in type(input_data).__module__:  # the reference run on Keras's TF backend:
        import tensorflow as tf  # the original's tf.strings version

        lowercase = tf.strings.lower(input_data)
        stripped_html = tf.strings.regex_replace(lowercase, "<br />", " ")
        return tf.strings.regex_replace(stripped_html, f"[{re.escape(string.punctuation)}]",
                                        "")
    lowercase = np.char.lower(np.asarray(input_data, dtype=str))
    stripped_html = np.char.replace(lowercase, "<br />", " ")
    return np.char.translate(stripped_html, str.maketrans("", "", string.punctuation))


max_features = 2000 if QUICK else 20000
embedding_dim = 32 if QUICK else 128
sequence_length = 100 if QUICK else 500

vectorize_layer = keras.layers.TextVectorization(
    standardize=custom_standardization,
    max_tokens=max_features,
    output_mode="int",
    output_sequence_length=sequence_length,
)
# adapt on the texts only (no labels), batch by batch
vectorize_layer.adapt(x for x, _ in raw_train_ds)


def vectorize(ds):
    """The dataset's texts as token indices, and its labels, as arrays."""
    xs, ys = [], []
    for text, label in ds:
        xs.append(np.asarray(vectorize_layer(np.expand_dims(np.asarray(text), -1))))
        ys.append(np.asarray(label))
    return np.concatenate(xs), np.concatenate(ys)


def raw_texts(ds):
    xs, ys = [], []
    for text, label in ds:
        xs.append(np.asarray(text))
        ys.append(np.asarray(label))
    return np.concatenate(xs), np.concatenate(ys)


x_train, y_train = vectorize(raw_train_ds)
x_val, y_val = vectorize(raw_val_ds)
x_test, y_test = vectorize(raw_test_ds)

# -- the model ----
filters = 32 if QUICK else 128
inputs = keras.Input(shape=(None,), dtype="int64")
x = layers.Embedding(max_features, embedding_dim)(inputs)
x = layers.Dropout(0.5)(x)
x = layers.Conv1D(filters, 7, padding="valid", activation="relu", strides=3)(x)
x = layers.Conv1D(filters, 7, padding="valid", activation="relu", strides=3)(x)
x = layers.GlobalMaxPooling1D()(x)
x = layers.Dense(filters, activation="relu")(x)
x = layers.Dropout(0.5)(x)
predictions = layers.Dense(1, activation="sigmoid", name="predictions")(x)
model = keras.Model(inputs, predictions)
model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])

epochs = 3
model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=epochs,
          batch_size=batch_size, verbose=2)
loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
print(f"test accuracy (vectorized): {accuracy:.4f}")

# -- an end-to-end model on raw strings ----
inputs = keras.Input(shape=(1,), dtype="string")
indices = vectorize_layer(inputs)
outputs = model(indices)
end_to_end_model = keras.Model(inputs, outputs)
end_to_end_model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
texts_test, labels_test = raw_texts(raw_test_ds)
try:
    e2e_loss, e2e_accuracy = end_to_end_model.evaluate(np.expand_dims(texts_test, -1),
                                                       labels_test, verbose=0)
except ValueError:  # Keras on JAX cannot hold strings in evaluate: its model called per batch
    probs = np.concatenate([np.asarray(end_to_end_model(np.expand_dims(texts_test[i:i + 256],
                                                                       -1)))
                            for i in range(0, len(texts_test), 256)])
    e2e_accuracy = float(np.mean((probs[:, 0] > 0.5) == labels_test))
print(f"test accuracy (end to end, raw strings): {e2e_accuracy:.4f}")
tmp.cleanup()
