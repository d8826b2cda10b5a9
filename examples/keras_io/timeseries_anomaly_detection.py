"""Timeseries anomaly detection using an Autoencoder (keras-io, Keras 3 version), with only
`import keras` swapped: a Conv1D / Conv1DTranspose reconstruction autoencoder trained on a
daily-periodic series, then a reconstruction-error threshold that flags the windows of a second
series where the values jump up.

The NAB downloads (art_daily_small_noise.csv, art_daily_jumpsup.csv: a value every 5 minutes
for 14 days) are replaced by synthetic series of the same shape: a daily plateau with small
noise, and the same with one jump up of about 5 hours (the example's pandas and plots are left
out). Sizes from the environment: EXAMPLE_DAYS (14), EXAMPLE_EPOCHS (50, with the example's
EarlyStopping on val_loss, patience 5).

At full size (14 days: 3,745 training windows of 288 steps, up to 50 epochs) against Keras 3.15.1
(JAX backend; this file run under shared/tools/keras_ref.py), one run of each on a 2-vCPU AMD
EPYC shared with other work (seconds per epoch: the median of the epochs' ms/step x 27 steps):

    | run     | epochs | final val_loss | threshold | anomalies | points (in jump) | s/epoch |
    |---------|--------|----------------|-----------|-----------|------------------|---------|
    | pynn    | 18     | 0.0121         | 0.099     | 350       | 59 (59 of 60)    | 1.5     |
    | Keras 3 | 10     | 0.0194         | 0.130     | 346       | 60 (59 of 60)    | 1.5     |

Both stop early (patience 5) and flag the jump; Keras stopped sooner, hence its higher val_loss.
"""

import os

import numpy as np

import pynn as keras
from pynn import layers

TIME_STEPS = 288  # 5-minute values: one day


def daily_series(days, rng, jump=None):
    """A value every 5 minutes: about 20 at night, 80 by day, noise 2; jump: (start, length) of
    a stretch 60 higher."""
    t = np.arange(days * TIME_STEPS)
    hour = (t % TIME_STEPS) / 12.0
    day = 1.0 / (1.0 + np.exp(-2.0 * (hour - 9.0))) - 1.0 / (1.0 + np.exp(-2.0 * (hour - 19.0)))
    values = 20.0 + 60.0 * day + rng.normal(0.0, 2.0, len(t))
    if jump is not None:
        values[jump[0]:jump[0] + jump[1]] += 60.0
    return values.reshape(-1, 1)


def create_sequences(values, time_steps=TIME_STEPS):
    """Every window of time_steps contiguous values."""
    output = []
    for i in range(len(values) - time_steps + 1):
        output.append(values[i: (i + time_steps)])
    return np.stack(output)


def main():
    days = int(os.environ.get("EXAMPLE_DAYS", "14"))
    epochs = int(os.environ.get("EXAMPLE_EPOCHS", "50"))
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(1)
    train_values = daily_series(days, rng)
    jump = ((days - 3) * TIME_STEPS + 130, 60)  # a jump of 5 hours, late in the test series
    test_values = daily_series(days, rng, jump)

    training_mean, training_std = train_values.mean(), train_values.std()
    x_train = create_sequences((train_values - training_mean) / training_std).astype("float32")

    model = keras.Sequential([
        layers.Input(shape=(x_train.shape[1], x_train.shape[2])),
        layers.Conv1D(filters=32, kernel_size=7, padding="same", strides=2, activation="relu"),
        layers.Dropout(rate=0.2),
        layers.Conv1D(filters=16, kernel_size=7, padding="same", strides=2, activation="relu"),
        layers.Conv1DTranspose(filters=16, kernel_size=7, padding="same", strides=2,
                               activation="relu"),
        layers.Dropout(rate=0.2),
        layers.Conv1DTranspose(filters=32, kernel_size=7, padding="same", strides=2,
                               activation="relu"),
        layers.Conv1DTranspose(filters=1, kernel_size=7, padding="same"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001), loss="mse")
    model.summary()
    history = model.fit(x_train, x_train, epochs=epochs, batch_size=128, validation_split=0.1,
                        callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss",
                                                                 patience=5, mode="min")],
                        verbose=2)

    # the worst reconstruction of a training window is the threshold
    x_train_pred = model.predict(x_train, verbose=0)
    train_mae_loss = np.mean(np.abs(x_train_pred - x_train), axis=1)
    threshold = np.max(train_mae_loss)
    print("Reconstruction error threshold: ", threshold)

    x_test = create_sequences((test_values - training_mean) / training_std).astype("float32")
    x_test_pred = model.predict(x_test, verbose=0)
    test_mae_loss = np.mean(np.abs(x_test_pred - x_test), axis=1).reshape(-1)
    anomalies = test_mae_loss > threshold
    print("Number of anomaly samples: ", np.sum(anomalies))

    # data i is an anomaly if samples [(i - timesteps + 1) to (i)] are anomalies
    anomalous_data_indices = []
    for data_idx in range(TIME_STEPS - 1, len(test_values) - TIME_STEPS + 1):
        if np.all(anomalies[data_idx - TIME_STEPS + 1: data_idx]):
            anomalous_data_indices.append(data_idx)
    inside = [i for i in anomalous_data_indices if jump[0] <= i < jump[0] + jump[1]]
    print(f"anomalous data points: {len(anomalous_data_indices)}, {len(inside)} of them inside "
          f"the jump ({jump[1]} points from {jump[0]}); final val_loss "
          f"{history.history['val_loss'][-1]:.4f}")
    return int(np.sum(anomalies)), anomalous_data_indices, jump


if __name__ == "__main__":
    main()
