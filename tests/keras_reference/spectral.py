"""SpectralNormalization models, the same code for pynn and Keras 3: `run()` returns their
predictions, losses and weights (vector_u included) after fit, and what a model called on data
with training=True does, for fixed weights and data.

`tests/test_spectral_normalization.py` compares pynn's with what Keras 3 (JAX backend) gave,
kept in spectral.npz beside this file; to make it again, in an environment with keras and jax:
    KERAS_BACKEND=jax python ../shared/tools/keras_ref.py tests/keras_reference/spectral.py \
        tests/keras_reference/spectral.npz
(keras_ref.py runs this file with `pynn` standing for `keras`).
"""

import sys

import numpy as np

import pynn as keras
from pynn import layers

SN = layers.SpectralNormalization


def set_weights(model, seed: int, kernel: float | None = None, scale: float = 0.6) -> None:
    """Uniform weights in [-scale, scale]; the first (a kernel) all `kernel` when given."""
    rng = np.random.RandomState(seed)
    ws = [rng.uniform(-scale, scale, w.shape).astype(np.float32) for w in model.get_weights()]
    if kernel is not None:
        ws[0][...] = kernel
    model.set_weights(ws)


def models() -> dict:
    """name -> (model, x, y, loss, optimizer)."""
    rng = np.random.RandomState(7)
    out = {}
    x = rng.uniform(-1, 1, (12, 5)).astype(np.float32)
    y = rng.uniform(-1, 1, (12, 2)).astype(np.float32)

    i = keras.Input((5,))
    h = SN(layers.Dense(4, activation="tanh"))(i)
    out["dense"] = (keras.Model(i, layers.Dense(2)(h)), x, y, "mse",
                    lambda: keras.optimizers.SGD(0.3))

    i = keras.Input((5,))
    h = SN(layers.Dense(4), power_iterations=3)(i)
    out["dense_iter3"] = (keras.Model(i, SN(layers.Dense(2, use_bias=False))(h)), x, y, "mse",
                          lambda: keras.optimizers.Adam(0.05))

    i = keras.Input((5,))
    out["zero_kernel"] = (keras.Model(i, SN(layers.Dense(2))(i)), x, y, "mse",
                          lambda: keras.optimizers.SGD(0.3))

    xi = rng.uniform(-1, 1, (12, 6, 6, 2)).astype(np.float32)
    labels = rng.randint(0, 3, 12).astype(np.int32)
    i = keras.Input((6, 6, 2))
    h = SN(layers.Conv2D(3, 3, padding="same", activation="relu"), power_iterations=2)(i)
    h = layers.Flatten()(h)
    out["conv2d"] = (keras.Model(i, layers.Dense(3, activation="softmax")(h)), xi, labels,
                     "sparse_categorical_crossentropy", lambda: keras.optimizers.SGD(0.2))

    xs = rng.uniform(-1, 1, (12, 7, 3)).astype(np.float32)
    i = keras.Input((7, 3))
    h = SN(layers.Conv1D(4, 3, strides=2))(i)
    h = SN(layers.Conv1DTranspose(2, 3))(h)
    h = layers.GlobalAveragePooling1D()(h)
    out["conv1d"] = (keras.Model(i, layers.Dense(3, activation="softmax")(h)), xs, labels,
                     "sparse_categorical_crossentropy", lambda: keras.optimizers.SGD(0.2))

    ids = rng.randint(0, 10, (12, 4))
    i = keras.Input((4,))  # float ids: Keras casts SpectralNormalization's output to float32
    h = SN(layers.Embedding(10, 3))(i)
    h = layers.GlobalAveragePooling1D()(h)
    out["embedding"] = (keras.Model(i, layers.Dense(3, activation="softmax")(h)),
                        ids.astype(np.float32), labels, "sparse_categorical_crossentropy",
                        lambda: keras.optimizers.SGD(0.5))
    i = keras.Input((4,), dtype="int32")  # int32 ids: Keras casts the vectors to int32
    h = SN(layers.Embedding(10, 3))(i)
    h = layers.GlobalAveragePooling1D()(h)
    out["embedding_int"] = (keras.Model(i, layers.Dense(3, activation="softmax")(h)),
                            ids.astype(np.int32), labels, "sparse_categorical_crossentropy",
                            lambda: keras.optimizers.SGD(0.5))
    return out


def run() -> dict:
    results = {}
    for k, (name, (model, x, y, loss, opt)) in enumerate(models().items()):
        # embedding_int: vectors of several units, so that some survive the cast to int32
        set_weights(model, k, kernel=0.0 if name == "zero_kernel" else None,
                    scale=4.0 if name == "embedding_int" else 0.6)
        start = model.get_weights()
        results[f"{name}/predict"] = model.predict(x, batch_size=5, verbose=0)
        model.compile(optimizer=opt(), loss=loss)
        history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        results[f"{name}/fit"] = np.array(history.history["loss"], np.float32)
        results[f"{name}/evaluate"] = np.array(model.evaluate(x, y, batch_size=5, verbose=0),
                                               np.float32)
        results[f"{name}/after_fit"] = model.predict(x, batch_size=5, verbose=0)
        for i, w in enumerate(model.get_weights()):
            results[f"{name}/weight{i}"] = w
        # a call on data in training: vector_u and the kernel are assigned
        model.set_weights(start)
        results[f"{name}/call_training"] = np.asarray(model(x[:6], training=True))
        results[f"{name}/call_training2"] = np.asarray(model(x[6:], training=True))
        for i, w in enumerate(model.get_weights()):
            results[f"{name}/call_weight{i}"] = w
    # the layer alone, called on data
    layer = SN(layers.Dense(3), power_iterations=2)
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    layer.build((None, 4))
    set_weights(layer, 11)
    results["layer/inference"] = np.asarray(layer(x, training=False))
    results["layer/training"] = np.asarray(layer(x, training=True))
    for i, w in enumerate(layer.get_weights()):
        results[f"layer/weight{i}"] = w
    return results


if __name__ == "__main__":
    np.savez(sys.argv[1], **run())
