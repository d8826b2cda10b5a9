"""The core's graph math ops (ops_math.c: binary with broadcasting and scalars, unary, reduce,
matmul, transpose, strided_slice, softmax_axis, reshape, concatenate, cast) trained in a model
against the same computation on the tape: the weights' change of one SGD step equals the tape's
gradient (issue 16). Values against NumPy on the three drivers are in test_ops_api.py."""

import numpy as np
import pytest
from test_ops_select import _one_step, away

import pynn
from pynn import layers, ops

X = away((5, 6), 40)
Y4 = away((5, 4), 41)


@pytest.mark.parametrize(
    "name, build",
    [
        ("binary broadcast", lambda h: h * ops.reshape(h[:, :1], (-1, 1)) - h / 3.0),
        (
            "power and scalar",
            lambda h: ops.power(ops.abs(h) + 1.0, 1.5) + 2.0 ** ops.tanh(h),
        ),
        ("maximum minimum", lambda h: ops.maximum(h, 0.1) + ops.minimum(h * 2.0, 0.3)),
        (
            "weights broadcast",
            lambda h: ops.divide(h, ops.abs(ops.mean(h, axis=0)) + 1.0),
        ),
        (
            "unary",
            lambda h: (
                ops.sin(h)
                + ops.exp(-ops.square(h))
                + ops.log1p(ops.abs(h))
                + ops.sigmoid(h) * ops.erf(h)
                + ops.softplus(h)
            ),
        ),
        (
            "reduce",
            lambda h: ops.concatenate(
                [
                    ops.sum(h, axis=1, keepdims=True),
                    ops.max(h, axis=-1, keepdims=True),
                    ops.min(h, axis=1, keepdims=True),
                    ops.mean(h, axis=1, keepdims=True),
                ],
                axis=1,
            ),
        ),
        ("reduce over the batch", lambda h: h - ops.mean(h, axis=0)),
        (
            "matmul transpose",
            lambda h: (
                ops.matmul(ops.expand_dims(h, 2), ops.expand_dims(h, 1))[:, 1, :]
                + ops.sum(
                    ops.transpose(ops.reshape(h, (-1, 2, 2)), (0, 2, 1))[:, 0, :],
                    axis=1,
                    keepdims=True,
                )
            ),
        ),
        ("slice", lambda h: ops.concatenate([h[:, ::2], h[:, 1:3] * 2.0], axis=1)),
        ("softmax", lambda h: ops.softmax(h * 3.0, axis=-1) + ops.log_softmax(h, axis=1)),
    ],
)
def test_one_graph_step_matches_the_tape(name, build):
    _one_step(build, X, Y4)


class _Branchy(layers.Layer):
    def call(self, x, training=None):
        return ops.square(x) * 0.5 if training else x


def test_training_select_routes_values_and_gradients_by_mode():
    # the graph holds both branches; a training step follows the training one
    x, y, lr = away((5, 6), 43), away((5, 4), 44), 0.1
    inp = pynn.Input((6,))
    dense = layers.Dense(4)
    model = pynn.Model(inp, _Branchy()(dense(inp)))
    model.compile(optimizer=pynn.optimizers.SGD(learning_rate=lr), loss="mse")
    w0 = [w.copy() for w in model.get_weights()]
    np.testing.assert_allclose(model.predict(x, verbose=0), x @ w0[0] + w0[1], rtol=1e-5)
    kernel = pynn.Tensor(w0[0], requires_grad=True)
    bias = pynn.Tensor(w0[1], requires_grad=True)
    out = _Branchy()(ops.matmul(pynn.Tensor(x), kernel) + bias, training=True)
    ((out - y) ** 2).mean().backward()
    model.train_on_batch(x, y)
    for before, after, t in zip(w0, model.get_weights(), (kernel, bias)):
        np.testing.assert_allclose((before - after) / lr, t.grad, rtol=1e-4, atol=1e-6)
