"""Keras 3 scripts run unchanged once `import keras` reads `import pynn as keras`.

The script below is Keras's own "Simple MNIST convnet" example, as its users write it: only the
two import lines differ, and the data are cut to a few thousand images for one quick epoch.
"""

import textwrap

import numpy as np
import pytest

KERAS_MNIST_CONVNET = '''
import numpy as np
import pytest
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


KERAS_TRAINING_EXPERIENCE = '''
import numpy as np
import pytest
import pynn as keras
from pynn import layers

(x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
x_train = x_train[:N_TRAIN].reshape(-1, 784).astype("float32") / 255
y_train = y_train[:N_TRAIN]
x_test = x_test[:N_TEST].reshape(-1, 784).astype("float32") / 255
y_test = y_test[:N_TEST]

model = keras.Sequential([
    keras.Input(shape=(784,)),
    layers.Dense(64, activation="relu"),
    layers.Dropout(0.2),
    layers.Dense(10, activation="softmax"),
])
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])

counts = np.bincount(y_train, minlength=10)
class_weight = {i: len(y_train) / (10 * c) for i, c in enumerate(counts)}
callbacks = [
    keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True),
    keras.callbacks.ModelCheckpoint("best.keras", monitor="val_loss", save_best_only=True),
    keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1),
    keras.callbacks.CSVLogger("training.csv"),
]
history = model.fit(x_train, y_train, batch_size=64, epochs=EPOCHS, validation_split=0.2,
                    class_weight=class_weight, callbacks=callbacks, verbose=2)

before = model.evaluate(x_test, y_test, verbose=0)
model.save("final.keras")
reloaded = keras.models.load_model("final.keras")
after = reloaded.evaluate(x_test, y_test, verbose=0)
best = keras.models.load_model("best.keras")
print("before:", before, "after:", after)
'''


def test_a_keras_training_script_with_callbacks_and_saving_runs_unchanged(tmp_path,
                                                                          monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    env: dict = {"N_TRAIN": 4000, "N_TEST": 1000, "EPOCHS": 4}
    exec(compile(KERAS_TRAINING_EXPERIENCE, "keras_training.py", "exec"), env)
    assert env["before"] == env["after"]  # the reloaded model evaluates identically
    assert env["after"][1] > 0.85
    epochs = len(env["history"].history["loss"])
    rows = (tmp_path / "training.csv").read_text().strip().splitlines()
    assert rows[0].split(",")[0] == "epoch" and len(rows) == 1 + epochs
    assert "learning_rate" in rows[0] and "val_accuracy" in rows[0]
    best_loss = min(env["history"].history["val_loss"])
    assert env["best"].evaluate(env["x_train"][-800:], env["y_train"][-800:], verbose=0)[0] == \
        pytest.approx(best_loss, rel=1e-5)
    assert "Epoch 1/4" in capsys.readouterr().out


def test_interrupting_training_keeps_the_last_step_and_the_last_checkpoint(tmp_path):
    import pynn

    pynn.utils.set_random_seed(0)
    model = pynn.Sequential([pynn.Input((4,)), pynn.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).standard_normal((64, 4)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 3, 64)
    seen = {}

    class Interrupt(pynn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.model.optimizer.iterations == 11:  # epoch 2 (8 steps each), step 3
                seen["weights"] = self.model.get_weights()
                raise KeyboardInterrupt

    ckpt = tmp_path / "ckpt.keras"
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=[
            pynn.callbacks.ModelCheckpoint(str(ckpt)), Interrupt()])
    assert model.optimizer.iterations == 11
    for a, b in zip(seen["weights"], model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(model.predict(x, verbose=0)).all()
    saved = pynn.models.load_model(str(ckpt))  # written after epoch 1, intact
    assert saved.optimizer.iterations == 8
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # and training goes on
    assert model.optimizer.iterations == 19
