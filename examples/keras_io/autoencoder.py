"""Convolutional autoencoder for image denoising (keras-io, Keras 3 version), with only
`import keras` swapped: two Conv2D + MaxPooling2D encoder stages, two Conv2DTranspose decoder
stages and a sigmoid Conv2D, trained first to reconstruct MNIST digits, then to denoise them
(Gaussian noise of 0.4, clipped). The example's matplotlib display is left out; it prints the
validation losses instead. MNIST from PYNN_DATASETS. Sizes from the environment:
EXAMPLE_SAMPLES (60000), EXAMPLE_EPOCHS (50, the example's; its second fit runs twice as many).

The full size (150 epochs of 60,000 digits, 100 s or more an epoch here) did not fit the time; with
EXAMPLE_SAMPLES=6000 (1,000 test digits) and EXAMPLE_EPOCHS=2 (2 + 4 epochs of 47 steps) against
Keras 3.15.1 (JAX backend; this file run under shared/tools/keras_ref.py), two runs of each on a
2-vCPU AMD EPYC shared with other work (the model's weights are not seeded, so runs differ):

    | run        | val_loss, reconstruction | val_loss, denoising | MSE denoised (noisy) | s/epoch |
    |------------|--------------------------|---------------------|----------------------|---------|
    | pynn, 1    | 0.1237                   | 0.1143              | 0.0174 (0.0797)      | 13.8    |
    | pynn, 2    | 0.1168                   | 0.1109              | 0.0163 (0.0797)      | 9.2     |
    | Keras 3, 1 | 0.1217                   | 0.1106              | 0.0162 (0.0797)      | 18.8    |
    | Keras 3, 2 | 0.1154                   | 0.1164              | 0.0181 (0.0797)      | 20.8    |
"""

import os

import numpy as np

from pynn import layers
from pynn.datasets import mnist
from pynn.models import Model


def preprocess(array):
    """Normalizes the supplied array and reshapes it."""
    array = array.astype("float32") / 255.0
    return np.reshape(array, (len(array), 28, 28, 1))


def noise(array, rng):
    """Adds random noise to each image in the supplied array."""
    noisy_array = array + 0.4 * rng.normal(loc=0.0, scale=1.0, size=array.shape)
    return np.clip(noisy_array, 0.0, 1.0).astype("float32")


def main():
    n = int(os.environ.get("EXAMPLE_SAMPLES", "60000"))
    epochs = int(os.environ.get("EXAMPLE_EPOCHS", "50"))
    rng = np.random.default_rng(0)
    (train_data, _), (test_data, _) = mnist.load_data()
    train_data = preprocess(train_data[:n])
    test_data = preprocess(test_data[:max(n // 6, 100)])
    noisy_train_data, noisy_test_data = noise(train_data, rng), noise(test_data, rng)

    input = layers.Input(shape=(28, 28, 1))
    # Encoder
    x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(input)
    x = layers.MaxPooling2D((2, 2), padding="same")(x)
    x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(x)
    x = layers.MaxPooling2D((2, 2), padding="same")(x)
    # Decoder
    x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
    x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
    x = layers.Conv2D(1, (3, 3), activation="sigmoid", padding="same")(x)

    autoencoder = Model(input, x)
    autoencoder.compile(optimizer="adam", loss="binary_crossentropy")
    autoencoder.summary()

    first = autoencoder.fit(x=train_data, y=train_data, epochs=epochs, batch_size=128,
                            shuffle=True, validation_data=(test_data, test_data), verbose=2)
    second = autoencoder.fit(x=noisy_train_data, y=train_data, epochs=2 * epochs,
                             batch_size=128, shuffle=True,
                             validation_data=(noisy_test_data, test_data), verbose=2)
    denoised = autoencoder.predict(noisy_test_data, verbose=0)
    mse_noisy = float(np.mean((noisy_test_data - test_data) ** 2))
    mse_denoised = float(np.mean((denoised - test_data) ** 2))
    reconstruct, denoise = first.history["val_loss"][-1], second.history["val_loss"][-1]
    print(f"validation loss: reconstruction {reconstruct:.4f}, denoising {denoise:.4f}; "
          f"pixel MSE to the clean digits: noisy {mse_noisy:.4f}, denoised {mse_denoised:.4f}")
    return reconstruct, denoise, mse_noisy, mse_denoised


if __name__ == "__main__":
    main()
