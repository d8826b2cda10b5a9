"""Keras 3 scripts run unchanged once `import keras` reads `import pynn as keras`.

The script below is Keras's own "Simple MNIST convnet" example, as its users write it: only the
two import lines differ, and the data are cut to a few thousand images for one quick epoch.
"""

import textwrap

import numpy as np

KERAS_MNIST_CONVNET = '''
import numpy as np
import pynn as keras
from pynn import layers

num_classes = 10
input_shape = (28, 28, 1)

(x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
x_train, y_train = x_train[:N_TRAIN], y_train[:N_TRAIN]
x_test, y_test = x_test[:N_TEST], y_test[:N_TEST]

x_train = x_train.astype("float32") / 255
x_test = x_test.astype("float32") / 255
x_train = np.expand_dims(x_train, -1)
x_test = np.expand_dims(x_test, -1)

y_train = keras.utils.to_categorical(y_train, num_classes)
y_test = keras.utils.to_categorical(y_test, num_classes)

model = keras.Sequential(
    [
        keras.Input(shape=input_shape),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ]
)
model.summary()

batch_size = 128
epochs = EPOCHS

model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
history = model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs,
                    validation_split=0.1)

score = model.evaluate(x_test, y_test, verbose=0)
print("Test loss:", score[0])
print("Test accuracy:", score[1])
'''


def test_keras_mnist_convnet_example_runs_unchanged(capsys):
    pynn_globals: dict = {"N_TRAIN": 6000, "N_TEST": 1000, "EPOCHS": 2}
    exec(compile(textwrap.dedent(KERAS_MNIST_CONVNET), "keras_mnist_convnet.py", "exec"),
         pynn_globals)
    out = capsys.readouterr().out
    history = pynn_globals["history"].history
    assert set(history) == {"accuracy", "loss", "val_accuracy", "val_loss"}
    assert all(len(v) == 2 for v in history.values())
    assert history["loss"][1] < history["loss"][0]
    loss, accuracy = pynn_globals["score"]
    assert np.isfinite(loss) and accuracy > 0.8  # it learns: chance is 0.1
    assert "Total params: 34,826" in out and "Test accuracy:" in out
