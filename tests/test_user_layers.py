"""User layers: a Keras-style layer's call() runs in every way a layer can be used (a direct
call, Sequential, a functional model, on the tape), traced into the model's core graph; a layer
with nothing to run raises. A layer whose call() returned x * 2 once acted as the identity, in
Sequential, functional models and direct calls alike, with no error.
"""

import json
import re

import helpers
import numpy as np
import pytest

import pynn
from pynn import layers

X = np.ones((2, 3), np.float32)


class Double(layers.Layer):
    """A Keras 3 layer: Python code in call()."""

    def call(self, x):
        return x * 2


class Nothing(layers.Layer):
    """A layer with nothing to run: Keras's Layer.call raises NotImplementedError."""


USES = {
    "a direct call on data": lambda layer: layer(X),
    "a Sequential model": lambda layer: pynn.Sequential([pynn.Input((3,)), layer]).predict(
        X, verbose=0),
    "a functional model": lambda layer: pynn.Model(i := pynn.Input((3,)), layer(i)),
    "a call inside a GradientTape": lambda layer: _on_tape(layer),
}


def _on_tape(layer):
    with pynn.GradientTape():
        return layer(pynn.Tensor(X, requires_grad=True))


@pytest.mark.parametrize("use", list(USES))
def test_a_layer_with_nothing_to_run_raises_naming_itself(use):
    layer = Nothing(name="mine")
    with pytest.raises(NotImplementedError,
                       match=re.escape("Nothing 'mine' defines neither call() nor lower()")):
        USES[use](layer)


@pytest.mark.parametrize("use", list(USES))
def test_a_layers_call_runs_in_every_use(use):
    out = USES[use](Double(name="mine"))
    if isinstance(out, pynn.Model):
        out = out.predict(X, verbose=0)
    np.testing.assert_array_equal(np.asarray(out), 2 * X)


def test_a_user_layer_with_lower_runs():
    layer = helpers.Affine(2)
    out = pynn.Sequential([pynn.Input((3,)), layer]).predict(X, verbose=0)
    w, b = layer.get_weights()
    np.testing.assert_allclose(out, X @ w + b, rtol=1e-6)


class _Linear(pynn.layers.Layer):
    """The subclassing guide's Linear: add_weight + ops.matmul + bias."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="random_normal")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros")

    def call(self, x):
        return pynn.ops.matmul(x, self.w) + self.b


def _mlp(unit):
    pynn.utils.set_random_seed(0)
    model = pynn.Sequential([pynn.Input(shape=(12,)), unit(8), pynn.layers.Activation("relu"),
                             unit(3)])
    model.compile(pynn.optimizers.Adam(1e-2),
                  pynn.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_a_linear_layer_written_with_ops_trains_exactly_as_dense():
    # matmul(x, w) + b over a layer's weights lowers as the core's dense node: same kernels,
    # so the same weights bit for bit after training (and Dense's speed)
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 12), dtype=np.float32), rng.integers(0, 3, 64)
    dense, linear = _mlp(pynn.layers.Dense), _mlp(_Linear)
    linear.set_weights(dense.get_weights())
    hd = dense.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history["loss"]
    hl = linear.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history["loss"]
    assert hd == hl
    for a, b in zip(dense.get_weights(), linear.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_matmul_read_twice_is_not_folded_into_dense():
    class Twice(_Linear):
        def call(self, x):
            h = pynn.ops.matmul(x, self.w)
            return h + self.b + 0.5 * h

    layer = Twice(4)
    model = pynn.Sequential([pynn.Input(shape=(3,)), layer])
    x = np.random.default_rng(1).random((5, 3), dtype=np.float32)
    w, b = (np.asarray(v) for v in layer.get_weights())
    np.testing.assert_allclose(model.predict(x, verbose=0), 1.5 * (x @ w) + b, rtol=1e-5,
                               atol=1e-6)


class _CustomDropout(pynn.layers.Layer):
    """The subclassing guide's layer: Python branches on `training`."""

    def __init__(self, rate, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate

    def call(self, inputs, training=None):
        if training:
            return pynn.random.dropout(inputs, rate=self.rate)
        return inputs


def test_a_call_that_branches_on_training_runs_its_training_branch_in_fit():
    x = np.ones((64, 50), np.float32)
    model = pynn.Sequential([pynn.Input(shape=(50,)), _CustomDropout(0.5)])
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)  # inference: the identity
    dropped = np.asarray(model(x, training=True))
    assert 0.4 < (dropped == 0).mean() < 0.6 and set(np.unique(dropped)) <= {0.0, 2.0}
    inp = pynn.Input(shape=(50,))
    net = pynn.Model(inp, pynn.layers.Dense(1, kernel_initializer="ones")(
        _CustomDropout(0.5)(inp)))
    net.compile(pynn.optimizers.SGD(0.0), "mse")  # lr 0: the weights stay
    y = np.zeros((64, 1), np.float32)
    train = [net.train_on_batch(x, y) for _ in range(3)]
    assert net.evaluate(x, y, verbose=0) == pytest.approx(2500.0)  # sum of 50 ones, squared
    assert len(set(train)) == 3 and all(t != pytest.approx(2500.0) for t in train)


def test_a_call_that_takes_training_without_branching_is_traced_once():
    class Twice(pynn.layers.Layer):
        def call(self, x, training=None):
            return x * 2.0

    layer = Twice()
    out = layer(pynn.Input(shape=(3,)))
    assert "train" not in out._call_spec


def test_freezing_a_custom_layer_freezes_its_sublayers():
    class Block(pynn.layers.Layer):
        def __init__(self):
            super().__init__()
            self.inner = pynn.layers.Dense(3)

        def call(self, x):
            return self.inner(x) * 2.0

    block = Block()
    model = pynn.Sequential([pynn.Input(shape=(4,)), block, pynn.layers.Dense(1)])
    block.trainable = False
    assert block.inner.trainable is False and block.trainable_weights == []
    model.compile("sgd", "mse")
    frozen = [w.copy() for w in block.inner.get_weights()]
    head = model.layers[-1].get_weights()[0].copy()
    model.fit(np.ones((8, 4), np.float32), np.zeros((8, 1)), epochs=2, verbose=0)
    for a, b in zip(frozen, block.inner.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(head, model.layers[-1].get_weights()[0])
    assert len(model.trainable_weights) == 2


def test_keras_3_layer_members():
    layer = pynn.layers.Dense(3, name="d")
    layer.build((None, 4))
    assert layer.variables == layer.weights and layer.trainable_variables == layer.weights
    assert layer.non_trainable_variables == [] and layer.path == "d"
    assert layer.dtype == layer.compute_dtype == "float32" and layer.compute_mask(None) is None
    assert layer.get_build_config() == {"input_shape": (None, 4)}
    twin = pynn.layers.Dense(3)
    twin.build_from_config(layer.get_build_config())
    assert twin.built and twin.kernel.shape == (4, 3)
    extra = layer.add_variable((2,), "zeros", name="extra")
    assert extra.shape == (2,) and layer.weights[-1] is extra


def test_keras_3_model_members():
    model = pynn.Sequential([pynn.Input(shape=(3,)), pynn.layers.Dense(2)], name="m")
    model.compile("adam", "mse", metrics=["mae"])
    assert model.get_compile_config()["loss"][0]["class_name"] == "MeanSquaredError"
    assert json.loads(model.to_json())["class_name"] == "Sequential"
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), epochs=1, verbose=0)
    model.reset_metrics()
    assert all(m.result() == 0 or m.result() == {"mae": 0.0} for m in model.metrics)
    assert model.compute_output_shape((None, 3)) == (None, 2) and model.path == "m"
    twin = pynn.Sequential([pynn.Input(shape=(3,)), pynn.layers.Dense(2)])
    twin.compile_from_config(model.get_compile_config())
    assert twin.optimizer.__class__.__name__ == "Adam"


def test_arithmetic_on_a_weight_keeps_it_trainable_in_the_graph_and_on_the_tape():
    # `self.b * 2.0` (operators on a Variable, not pynn.ops) must read the weight, not copy it
    class Shift(pynn.layers.Layer):
        def build(self, input_shape):
            self.b = self.add_weight(shape=(3,), initializer="ones")

        def call(self, x):
            return x + self.b * 2.0 - (-self.b) / 4.0

    layer = Shift()
    x = pynn.Tensor(np.ones((2, 3), np.float32))
    with pynn.GradientTape() as tape:
        loss = pynn.ops.sum(layer(x))
    np.testing.assert_allclose(np.asarray(tape.gradient(loss, [layer.b])[0]), [4.5] * 3)
    model = pynn.Sequential([pynn.Input(shape=(3,)), Shift()])
    model.compile(pynn.optimizers.SGD(0.01), "mse")
    model.fit(np.ones((4, 3)), np.zeros((4, 3)), verbose=0)
    # d mse / d b = 2 * 3.25 * 2.25 / 3 per element (the mean over 3 outputs): one step of 0.01
    np.testing.assert_allclose(model.get_weights()[0], [1 - 0.01 * 2 * 3.25 * 2.25 / 3] * 3,
                               rtol=1e-5)
    assert type(layer.b * 2.0) is np.ndarray  # outside a call, plain NumPy as before


def test_sequential_input_output_and_layer_outputs_build_feature_extractors():
    model = pynn.Sequential([pynn.Input(shape=(4,)), pynn.layers.Dense(3, name="hidden"),
                             pynn.layers.Dense(2)])
    assert model.input.shape == (None, 4) and model.output.shape == (None, 2)
    features = pynn.Model(inputs=model.inputs, outputs=model.get_layer("hidden").output)
    x = np.random.default_rng(0).random((3, 4), dtype=np.float32)
    np.testing.assert_allclose(features.predict(x, verbose=0),
                               np.asarray(model.layers[0](x)), rtol=1e-6)
    lazy = pynn.Sequential([pynn.layers.Dense(2)])
    with pytest.raises(AttributeError, match="no defined input"):
        _ = lazy.input
    lazy.predict(x, verbose=0)
    assert lazy.output.shape == (None, 2)


def test_ops_on_weights_alone_in_a_traced_call_read_the_weights_at_every_step():
    """ops.reshape / ops.transpose of a weight, with no input among the operands, inside a
    traced call(): the graph reads the weight, so training moves it and predict follows it (it
    used to run once at trace time and keep the values as a constant: no training, no error)."""
    class Projection(pynn.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1], 3), initializer="ones")

        def call(self, x):
            w = pynn.ops.transpose(pynn.ops.transpose(pynn.ops.reshape(self.w, (-1, 3))))
            return pynn.ops.matmul(x, w * 2.0)

    rng = np.random.default_rng(0)
    x, y = rng.random((8, 4), np.float32), rng.random((8, 3), np.float32)
    inp = pynn.Input((4,))
    model = pynn.Model(inp, Projection()(inp))
    model.compile(optimizer="sgd", loss="mse")
    before = model.get_weights()[0].copy()
    model.fit(x, y, epochs=2, verbose=0)
    after = model.get_weights()[0]
    assert not np.allclose(before, after)
    np.testing.assert_allclose(model.predict(x, verbose=0), x @ (after * 2.0), rtol=1e-5)


def test_training_given_to_a_model_reaches_layers_whose_call_does_not_take_it():
    """A model called with training= passes it on; a custom layer whose call() has no
    `training` argument is called without it, as Keras does (it raised TypeError)."""
    class Double(pynn.layers.Layer):
        def call(self, x):
            return x * 2.0

    i = pynn.Input((4,))
    inner = pynn.Model(i, Double()(i))
    j = pynn.Input((4,))
    outer = pynn.Model(j, inner(j, training=True))
    x = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(outer.predict(x, verbose=0), 2 * x)
    k = pynn.Input((4,))
    np.testing.assert_array_equal(
        pynn.Model(k, Double()(k, training=False)).predict(x, verbose=0), 2 * x)
    np.testing.assert_array_equal(np.asarray(Double()(x, training=True)), 2 * x)


@pynn.saving.register_keras_serializable(package="tests")
class _Noisy(pynn.layers.Layer):
    def call(self, x, training=None):
        return pynn.random.dropout(x, 0.5) if training else x


def test_a_saved_model_keeps_a_custom_layers_training_branch(tmp_path):
    """A traced call() that branches on `training` is saved as the user called it: after
    loading, training still drops (it was saved as its inference variant, training=False:
    dropout silently gone from fit)."""
    i = pynn.Input((64,))
    model = pynn.Model(i, _Noisy()(i))
    model.save(tmp_path / "m.keras")
    loaded = pynn.saving.load_model(tmp_path / "m.keras")
    x = np.ones((8, 64), np.float32)
    for m in (model, loaded):
        dropped = np.asarray(m(x, training=True))
        assert 0.2 < np.mean(dropped == 0) < 0.8
        np.testing.assert_array_equal(np.asarray(m(x)), x)


def test_input_spec_is_checked_on_every_call():
    class Rank3(pynn.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.input_spec = pynn.layers.InputSpec(ndim=3, axes={-1: 4})

        def call(self, x):
            return x * 2.0

    layer = Rank3()
    np.testing.assert_array_equal(np.asarray(layer(np.ones((2, 3, 4), np.float32))), 2.0)
    with pytest.raises(ValueError, match="expected ndim=3, found ndim=2"):
        layer(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 4"):
        layer(pynn.Input((3, 5)))
    inp = pynn.Input((3, 4))
    assert pynn.Model(inp, Rank3()(inp)).output_shape == (None, 3, 4)
    assert repr(pynn.layers.InputSpec(min_ndim=2)) == "InputSpec(min_ndim=2)"
