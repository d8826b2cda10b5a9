"""Stateful recurrent models (stateful=True), the same code for pynn and Keras 3: `run()`
returns their predictions over consecutive batches, the states they keep, an epoch of fit with
shuffle=False and what reset_states leaves, for fixed weights and data.

`tests/test_stateful_rnn.py` compares pynn's with what Keras 3 gave, kept in stateful.npz
beside this file. Keras's JAX backend drops a stateful layer's state updates inside its
compiled predict and fit steps (the states stay zero) and its PyTorch backend fails in fit, so
the reference is Keras 3 on TensorFlow, whose states carry as Keras documents; to make it
again, in an environment with keras and tensorflow:
    KERAS_BACKEND=tensorflow python ../shared/tools/keras_ref.py \
        tests/keras_reference/stateful.py tests/keras_reference/stateful.npz
(keras_ref.py runs this file with `pynn` standing for `keras`).
"""

import sys

import numpy as np

import pynn as keras
from pynn import layers

B, T, F = 4, 5, 3


def set_weights(model, seed: int) -> None:
    rng = np.random.RandomState(seed)
    model.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(np.float32)
                       for w in model.get_weights()])


def flat(states) -> list:
    """A layer's states as one list (Keras nests a stack's per cell)."""
    if isinstance(states, (list, tuple)):
        return [s for x in states for s in flat(x)]
    return [states]


def models() -> dict:
    """name -> (model, its stateful layers)."""
    out = {}

    def make(name, rnn, head=True, batch_shape=None):
        i = keras.Input(batch_shape=batch_shape or (B, T, F))
        h = rnn(i)
        out[name] = (keras.Model(i, layers.Dense(2)(h) if head else h), [rnn])

    make("lstm", layers.LSTM(3, stateful=True))
    make("gru", layers.GRU(3, stateful=True, return_sequences=True), head=False)
    make("gru_v1", layers.GRU(2, stateful=True, reset_after=False))
    make("simple_rnn", layers.SimpleRNN(3, stateful=True, go_backwards=True))
    make("rnn_cell", layers.RNN(layers.LSTMCell(3), stateful=True))
    lstm = layers.LSTM(3, stateful=True, return_sequences=True)
    gru = layers.GRU(2, stateful=True)
    out["sequential"] = (keras.Sequential([keras.Input(batch_shape=(B, T, F)), lstm, gru,
                                           layers.Dense(2)]), [lstm, gru])
    return out


def run() -> dict:
    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, (3 * B, T, F)).astype(np.float32)
    results = {}
    for k, (name, (model, rnns)) in enumerate(models().items()):
        set_weights(model, k)
        y = rng.uniform(-1, 1, (3 * B,) + tuple(model.output_shape[1:])).astype(np.float32)

        def states(tag, name=name, rnns=rnns):
            for j, layer in enumerate(rnns):
                for s, v in enumerate(flat(layer.states)):
                    results[f"{name}/{tag}/layer{j}/state{s}"] = np.asarray(v.numpy())

        # three batches of one predict carry the states from batch to batch
        results[f"{name}/predict"] = model.predict(x, batch_size=B, verbose=0)
        states("after_predict")
        # and on: a second predict starts where the first stopped
        results[f"{name}/predict_again"] = model.predict(x[:B], batch_size=B, verbose=0)
        for layer in rnns:
            layer.reset_states()
        states("after_reset")
        results[f"{name}/predict_reset"] = model.predict(x[:B], batch_size=B, verbose=0)
        for layer in rnns:
            layer.reset_states()
        model.compile(optimizer=keras.optimizers.SGD(0.3), loss="mse")
        history = model.fit(x, y, batch_size=B, epochs=1, shuffle=False, verbose=0)
        results[f"{name}/fit"] = np.array(history.history["loss"], np.float32)
        states("after_fit")
        for i, w in enumerate(model.get_weights()):
            results[f"{name}/weight{i}"] = w
        results[f"{name}/evaluate"] = np.array(model.evaluate(x, y, batch_size=B, verbose=0),
                                               np.float32)
        states("after_evaluate")
        # a call on data runs on and leaves its final states too
        results[f"{name}/call"] = np.asarray(model(x[B:2 * B]))
        states("after_call")
    return results


if __name__ == "__main__":
    np.savez(sys.argv[1], **run())
