"""Keras 3's weight constraints on shared data, the same code for pynn and Keras: `run()` returns
each constraint's value on a few weights (several ranks and axes, a zero vector among them), its
serialized config, and the weights of small models after a few steps of fit with SGD, fixed
initial weights and data: the four built-in constraints (which pynn's core applies), and a
user Constraint subclass (which runs from Python).

`tests/test_constraints.py` compares pynn's with what Keras 3 (JAX backend) gave, kept in
constraints.npz beside this file; to make it again, in an environment with keras and jax:
    KERAS_BACKEND=jax python ../shared/tools/keras_ref.py tests/keras_reference/constraints.py \
        tests/keras_reference/constraints.npz
(keras_ref.py runs this file with `pynn` standing for `keras`).
"""

import json
import sys

import numpy as np

import pynn as keras

constraints = keras.constraints


def weights() -> dict:
    rng = np.random.RandomState(0)
    w = {"w2": rng.normal(0, 1.0, (5, 3)).astype(np.float32),
         "w4": rng.normal(0, 0.5, (2, 2, 3, 4)).astype(np.float32),
         "w1": rng.normal(0, 2.0, (6,)).astype(np.float32),
         "w3": rng.normal(0, 0.3, (3, 4, 5)).astype(np.float32)}
    w["w2"][:, 1] = 0.0  # a zero vector: its norm is 0, epsilon keeps it finite
    return w


def cases() -> dict:
    """name: (constraint, weight name)"""
    C = constraints
    return {
        "max_norm_default_w2": (C.MaxNorm(), "w2"),
        "max_norm_0.5_w2": (C.MaxNorm(0.5), "w2"),
        "max_norm_axis1_w2": (C.MaxNorm(1.0, axis=1), "w2"),
        "max_norm_filters_w4": (C.MaxNorm(0.8, axis=[0, 1, 2]), "w4"),
        "max_norm_axis_neg1_w3": (C.MaxNorm(0.5, axis=-1), "w3"),
        "max_norm_w1": (C.max_norm(1.5), "w1"),
        "non_neg_w2": (C.NonNeg(), "w2"),
        "non_neg_w4": (C.non_neg(), "w4"),
        "unit_norm_w2": (C.UnitNorm(), "w2"),
        "unit_norm_axis1_w2": (C.UnitNorm(axis=1), "w2"),
        "unit_norm_filters_w4": (C.unit_norm(axis=[0, 1, 2]), "w4"),
        "unit_norm_axes02_w3": (C.UnitNorm(axis=[0, 2]), "w3"),
        "unit_norm_w1": (C.UnitNorm(), "w1"),
        "min_max_default_w2": (C.MinMaxNorm(), "w2"),
        "min_max_rate_w2": (C.MinMaxNorm(0.5, 1.2, rate=0.7), "w2"),
        "min_max_axis1_w2": (C.min_max_norm(0.9, 1.1, axis=1), "w2"),
        "min_max_filters_w4": (C.MinMaxNorm(0.3, 0.6, 0.5, axis=[0, 1, 2]), "w4"),
        "min_max_axis12_w3": (C.MinMaxNorm(1.0, 2.0, axis=[1, 2]), "w3"),
    }


class Clip(keras.constraints.Constraint):
    """A user constraint (pynn runs it from Python after each step)."""

    def __init__(self, limit=0.3):
        self.limit = limit

    def __call__(self, w):
        return keras.ops.clip(w, -self.limit, self.limit)

    def get_config(self):
        return {"limit": self.limit}


def model(user: bool):
    C = constraints
    if user:
        k1, b1, k2, b2 = Clip(0.3), C.NonNeg(), Clip(0.25), None
    else:
        k1, b1 = C.MaxNorm(0.8), C.NonNeg()
        k2, b2 = C.UnitNorm(), C.MinMaxNorm(0.1, 0.5, rate=0.5)
    m = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(6, activation="tanh", kernel_constraint=k1, bias_constraint=b1),
        keras.layers.Dense(3, kernel_constraint=k2, bias_constraint=b2),
        keras.layers.Dense(2, kernel_constraint=C.MinMaxNorm(0.5, 0.9, axis=0)),
    ])
    rng = np.random.RandomState(1)
    m.set_weights([rng.normal(0, 0.7, w.shape).astype(np.float32) for w in m.get_weights()])
    return m


def run() -> dict:
    results = {}
    ws = weights()
    for name, (c, wname) in cases().items():
        results[f"value/{name}"] = np.asarray(c(ws[wname]), np.float32)
        results[f"config/{name}"] = np.array(json.dumps(constraints.serialize(c),
                                                        sort_keys=True))
    rng = np.random.RandomState(2)
    x = rng.normal(0, 1, (24, 4)).astype(np.float32)
    y = rng.normal(0, 1, (24, 2)).astype(np.float32)
    for user in (False, True):
        m = model(user)
        m.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.5), loss="mse")
        m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        for i, w in enumerate(m.get_weights()):
            results[f"fit/{'user' if user else 'builtin'}/{i}"] = np.asarray(w, np.float32)
    return results


if __name__ == "__main__":
    np.savez(sys.argv[1], **run())
