"""A DCGAN on MNIST, written as a Keras 3 user writes one with `import pynn as keras`: a
Conv2DTranspose generator, a strided Conv2D discriminator, and a custom training loop with a
GradientTape and two Adam optimizers (Radford et al.'s recipe: lr 2e-4, beta_1 0.5, LeakyReLU
0.2, logits with binary cross-entropy).

At the end it saves a grid of 64 generated digits (examples/dcgan_mnist.png, or OUT), and scores
the samples with a small MNIST classifier trained here: how confidently each sample reads as a
digit (real test digits score about 0.99) and how evenly the ten classes are covered (the
entropy of the predicted classes, ln 10 = 2.30 when even).

    PYNN_DATASETS=../shared/data python examples/dcgan_mnist.py        # about 5 epochs

Sizes from the environment: EXAMPLE_STEPS (4000), EXAMPLE_BATCH (64), OUT (the PNG's path).
"""

import os
import time
from pathlib import Path

import numpy as np

import pynn as keras
from pynn import layers

LATENT = 64


def make_generator():
    return keras.Sequential([
        keras.Input((LATENT,)),
        layers.Dense(7 * 7 * 128),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Reshape((7, 7, 128)),
        layers.Conv2DTranspose(64, 4, strides=2, padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2DTranspose(32, 4, strides=2, padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2D(1, 3, padding="same", activation="sigmoid"),
    ], name="generator")


def make_discriminator():
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(32, 4, strides=2, padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2D(64, 4, strides=2, padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Flatten(),
        layers.Dropout(0.2),
        layers.Dense(1),
    ], name="discriminator")


def train(images, steps: int, batch: int, seed: int = 0):
    """The GAN's custom loop; returns (generator, discriminator, last d_loss, last g_loss)."""
    keras.utils.set_random_seed(seed)
    generator, discriminator = make_generator(), make_discriminator()
    d_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
    g_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    rng = np.random.default_rng(seed)
    ones, zeros = np.ones((batch, 1), np.float32), np.zeros((batch, 1), np.float32)
    d_loss = g_loss = float("nan")
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        real = images[rng.integers(0, len(images), batch)]
        z = rng.standard_normal((batch, LATENT)).astype(np.float32)
        fake = generator(z)  # a Tensor; the discriminator's step does not train the generator
        with keras.GradientTape() as tape:
            d_loss = bce(ones, discriminator(real, training=True)) + \
                bce(zeros, discriminator(fake.numpy(), training=True))
        grads = tape.gradient(d_loss, discriminator.trainable_weights)
        d_opt.apply_gradients(zip(grads, discriminator.trainable_weights))

        z = rng.standard_normal((batch, LATENT)).astype(np.float32)
        with keras.GradientTape() as tape:
            g_loss = bce(ones, discriminator(generator(z, training=True), training=True))
        grads = tape.gradient(g_loss, generator.trainable_weights)
        g_opt.apply_gradients(zip(grads, generator.trainable_weights))
        if step % 500 == 0 or step == steps:
            print(f"step {step}: d_loss {float(d_loss):.3f}, g_loss {float(g_loss):.3f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return generator, discriminator, float(d_loss), float(g_loss)


def digit_scores(samples, x_train, y_train, x_test, y_test):
    """(mean top probability of the samples, entropy of their predicted classes, the same
    classifier's mean top probability on real test digits)."""
    keras.utils.set_random_seed(1)
    clf = keras.Sequential([
        keras.Input((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(), layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Flatten(), layers.Dense(10, activation="softmax")])
    clf.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                metrics=["accuracy"])
    clf.fit(x_train, y_train, batch_size=128, epochs=1, verbose=0)
    p = clf.predict(samples, verbose=0)
    counts = np.bincount(p.argmax(1), minlength=10) / len(p)
    entropy = float(-(counts[counts > 0] * np.log(counts[counts > 0])).sum())
    real = float(clf.predict(x_test[:1000], verbose=0).max(1).mean())
    return float(p.max(1).mean()), entropy, real


def save_grid(samples, path) -> None:
    """An 8 x 8 grid of 28 x 28 digits as a PNG (matplotlib, the plot extra)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    tiles = samples[:64, :, :, 0].reshape(8, 8, 28, 28).transpose(0, 2, 1, 3).reshape(224, 224)
    plt.imsave(path, tiles, cmap="gray", vmin=0.0, vmax=1.0)


def main():
    steps = int(os.environ.get("EXAMPLE_STEPS", "4000"))
    batch = int(os.environ.get("EXAMPLE_BATCH", "64"))
    out = os.environ.get("OUT", str(Path(__file__).with_name("dcgan_mnist.png")))
    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    x_train = (x_train[..., None] / 255.0).astype(np.float32)
    x_test = (x_test[..., None] / 255.0).astype(np.float32)
    generator, _, d_loss, g_loss = train(x_train, steps, batch)
    z = np.random.default_rng(123).standard_normal((1000, LATENT)).astype(np.float32)
    samples = generator.predict(z, verbose=0)
    save_grid(samples, out)
    confidence, entropy, real = digit_scores(samples, x_train, y_train, x_test, y_test)
    print(f"samples saved to {out}; classifier confidence on samples {confidence:.3f} (on real "
          f"digits {real:.3f}), entropy of their classes {entropy:.2f} (even: 2.30)")
    return d_loss, g_loss, confidence, entropy


if __name__ == "__main__":
    main()
