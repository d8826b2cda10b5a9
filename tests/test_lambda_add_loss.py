"""layers.Lambda, Layer.add_loss / losses (with fit, evaluate and custom loops), Variable
assign_add, and GradientTape on a target no source reaches (issue 16)."""

import numpy as np
import pytest

import pynn
from pynn import layers, ops


class ActivityRegularization(layers.Layer):
    def __init__(self, rate=1e-2, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate

    def call(self, inputs):
        self.add_loss(self.rate * ops.sum(inputs))
        return inputs


def _data(n=16, d=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, d)).astype(np.float32), rng.random((n, 1)).astype(np.float32)


def test_lambda_runs_in_the_graph_and_on_data():
    x = pynn.Input(shape=(4,))
    h = layers.Dense(3)(x)
    model = pynn.Model(x, layers.Lambda(lambda t: ops.square(t) + 1.0)(h))
    d = np.random.default_rng(1).random((5, 4)).astype(np.float32)
    w, b = model.layers[1].get_weights()
    np.testing.assert_allclose(model.predict(d, verbose=0), (d @ w + b) ** 2 + 1, rtol=1e-5)
    np.testing.assert_allclose(layers.Lambda(ops.square)(d).numpy(), d ** 2, rtol=1e-6)


def test_lambda_arguments_and_saving_by_function_name(tmp_path):
    def plus(t, k=1.0):
        return t + k

    model = pynn.Sequential([pynn.Input(shape=(4,)), layers.Lambda(plus, arguments={"k": 2.0})])
    d = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(model.predict(d, verbose=0), d + 2)
    path = str(tmp_path / "m.keras")
    model.save(path)
    with pytest.raises(ValueError, match="custom_objects"):
        pynn.models.load_model(path)
    loaded = pynn.models.load_model(path, custom_objects={"plus": plus})
    np.testing.assert_allclose(loaded.predict(d, verbose=0), d + 2)


def test_a_saved_python_lambda_is_refused_not_run(tmp_path):
    model = pynn.Sequential([pynn.Input(shape=(2,)), layers.Lambda(lambda t: t * 3.0)])
    path = str(tmp_path / "m.keras")
    model.save(path)
    with pytest.raises(ValueError, match="lambda"):
        pynn.models.load_model(path)


def test_lambda_rejects_a_non_callable():
    with pytest.raises(TypeError, match="callable"):
        layers.Lambda(3)


def test_layer_losses_hold_the_last_call_only():
    class Outer(layers.Layer):
        def __init__(self):
            super().__init__()
            self.reg = ActivityRegularization(0.5)

        def call(self, inputs):
            return self.reg(inputs)

    layer = Outer()
    assert layer.losses == []
    layer(np.ones((2, 2), np.float32))
    assert len(layer.losses) == 1 and float(layer.losses[0].numpy()) == pytest.approx(2.0)
    layer(np.zeros((1, 2), np.float32))
    assert len(layer.losses) == 1 and float(layer.losses[0].numpy()) == 0.0


def test_layer_losses_include_weight_penalties():
    class Outer(layers.Layer):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(3, kernel_regularizer=pynn.regularizers.l2(1e-2))

        def call(self, inputs):
            return self.dense(inputs)

    layer = Outer()
    layer(np.ones((1, 2), np.float32))
    (penalty,) = layer.losses
    kernel = layer.dense.kernel.numpy()
    assert float(penalty.numpy()) == pytest.approx(1e-2 * float((kernel ** 2).sum()), rel=1e-5)


@pytest.mark.parametrize("kind", ["functional", "sequential"])
def test_fit_and_evaluate_add_the_added_losses(kind):
    pynn.utils.set_random_seed(3)
    if kind == "functional":
        x = pynn.Input(shape=(3,))
        out = layers.Dense(1)(ActivityRegularization(0.1)(layers.Dense(4)(x)))
        model = pynn.Model(x, out)
    else:
        model = pynn.Sequential([pynn.Input(shape=(3,)), layers.Dense(4),
                                 ActivityRegularization(0.1), layers.Dense(1)])
    model.compile("adam", "mse")
    xd, yd = _data()
    before = model.get_weights()
    history = model.fit(xd, yd, epochs=2, batch_size=8, verbose=0)
    assert len(history.history["loss"]) == 2
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    dense = [layer for layer in model.layers if isinstance(layer, layers.Dense)][0]
    hidden = dense(xd).numpy()
    want = float(((model.predict(xd, verbose=0) - yd) ** 2).mean() + 0.1 * hidden.sum())
    assert model.evaluate(xd, yd, batch_size=16, verbose=0) == pytest.approx(want, rel=1e-5)


class NoisyPenalty(layers.Layer):
    """Adds a loss in training only: its call() branches on `training`."""

    def call(self, inputs, training=None):
        if training:
            self.add_loss(0.5 * ops.mean(ops.square(inputs)))
        else:
            self.add_loss(0.25 * ops.mean(inputs))
        return inputs


class Entropy(layers.Layer):
    """A penalty on the model's own softmax output (the loss fusion must step aside)."""

    def call(self, probs):
        self.add_loss(0.3 * ops.sum(probs * ops.log(probs + 1e-6)) / 16.0)
        return probs


class WithModelLoss(pynn.Model):
    def __init__(self):
        super().__init__()
        self.hidden = layers.Dense(4, activation="tanh")
        self.penalty = NoisyPenalty()
        self.out = layers.Dense(3)

    def call(self, inputs):
        h = self.hidden(inputs)
        self.add_loss(0.2 * ops.mean(ops.abs(h)))
        return self.out(self.penalty(h))


class OnTape(pynn.Model):
    """The default steps, overridden: fit and evaluate then run them in Python, on the tape."""

    def train_step(self, data):
        return super().train_step(data)

    def test_step(self, data):
        return super().test_step(data)


class WithModelLossOnTape(WithModelLoss, OnTape):
    pass


def _added_loss_model(kind, on_tape):
    pynn.utils.set_random_seed(5)
    if kind == "subclassed":
        model = WithModelLossOnTape() if on_tape else WithModelLoss()
        model(np.zeros((2, 3), np.float32))
        return model, "mse"
    x = pynn.Input(shape=(3,))
    h = NoisyPenalty()(ActivityRegularization(0.05)(layers.Dense(4, activation="tanh")(x)))
    loss = "mse"
    if kind == "softmax":
        out, loss = Entropy()(layers.Dense(3, activation="softmax")(h)), "categorical_crossentropy"
    else:
        out = layers.Dense(3)(h)
    return (OnTape if on_tape else pynn.Model)(x, out), loss


@pytest.mark.parametrize("kind", ["functional", "subclassed", "softmax"])
def test_the_core_runs_added_losses_as_the_tape_does(kind):
    """fit's fused core step (the added losses as graph nodes) against the same step on the
    tape: the same losses, weights and evaluate."""
    fast, loss = _added_loss_model(kind, False)
    slow, _ = _added_loss_model(kind, True)
    slow.set_weights(fast.get_weights())
    rng = np.random.default_rng(7)
    x = rng.normal(size=(16, 3)).astype(np.float32)
    y = rng.random((16, 3)).astype(np.float32)
    y /= y.sum(axis=1, keepdims=True)
    for m in (fast, slow):
        m.compile(pynn.optimizers.SGD(0.1), loss)
    assert not fast._custom("train_step") and slow._custom("train_step")
    h_fast = fast.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]
    h_slow = slow.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(h_fast, h_slow, rtol=1e-5)
    for a, b in zip(fast.get_weights(), slow.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert fast.evaluate(x, y, verbose=0) == pytest.approx(slow.evaluate(x, y, verbose=0),
                                                           rel=1e-5)


def test_fit_without_a_compiled_loss_minimises_the_added_loss():
    x = pynn.Input(shape=(3,))
    h = layers.Lambda(ops.square)(layers.Dense(2)(x))
    model = pynn.Model(x, ActivityRegularization(0.01)(h))
    model.compile(optimizer=pynn.optimizers.SGD(0.01))
    xd, _ = _data()
    first = model.evaluate(xd, verbose=0)
    model.fit(xd, epochs=5, batch_size=16, verbose=0)
    assert model.evaluate(xd, verbose=0) < first


def test_subclassed_model_add_loss_in_call_with_a_custom_loop():
    class Model(pynn.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(2)

        def call(self, inputs):
            h = self.dense(inputs)
            self.add_loss(ops.mean(ops.square(h)))
            return h

    model = Model()
    xd, _ = _data()
    out = model(xd)
    assert len(model.losses) == 1
    np.testing.assert_allclose(float(model.losses[0].numpy()),
                               float((np.asarray(out) ** 2).mean()), rtol=1e-5)
    with pynn.GradientTape() as tape:
        model(xd, training=True)
        loss = sum(model.losses)
    grads = tape.gradient(loss, model.trainable_weights)
    assert all(g is not None for g in grads)
    assert len(model.losses) == 1  # the call reset them


def test_a_raw_op_in_a_model_that_adds_losses_raises_a_clear_error():
    x = pynn.Input(shape=(3,))
    model = pynn.Model(x, ActivityRegularization(1.0)(ops.square(layers.Dense(2)(x))))
    model.compile(optimizer="sgd")
    with pytest.raises(NotImplementedError, match="Lambda"):
        model.fit(_data()[0], epochs=1, verbose=0)


def test_add_loss_of_a_symbolic_tensor_outside_call_raises():
    x = pynn.Input(shape=(2,))
    with pytest.raises(ValueError, match="inside call"):
        layers.Dense(1).add_loss(ops.sum(x))


def test_variable_assign_add_keeps_state():
    class Total(layers.Layer):
        def __init__(self):
            super().__init__()
            self.total = self.add_weight(shape=(2,), initializer="zeros", trainable=False)

        def call(self, inputs):
            self.total.assign_add(ops.sum(inputs, axis=0))
            return self.total

    layer = Total()
    layer(np.ones((2, 2), np.float32))
    np.testing.assert_array_equal(layer(np.ones((2, 2), np.float32)).numpy(), [4, 4])
    layer.total.assign_sub(np.ones(2, np.float32))
    np.testing.assert_array_equal(layer.total.numpy(), [3, 3])
    with pytest.raises(NotImplementedError, match="cannot write variables"):
        pynn.Sequential([pynn.Input(shape=(2,)), Total()])


def test_tape_gradient_of_a_target_no_source_reaches_is_none():
    w = pynn.Tensor(np.ones(3, np.float32), requires_grad=True)
    with pynn.GradientTape() as tape:
        loss = pynn.Tensor(np.float32(2.0))
    assert tape.gradient(loss, [w]) == [None]


def test_calls_on_data_pass_training_down_to_the_layers_inside():
    # Keras propagates `training` from the outer call to every layer called inside it
    class Block(layers.Layer):
        def __init__(self):
            super().__init__()
            self.drop = layers.Dropout(0.5)

        def call(self, x):  # no training argument: the Dropout inherits the caller's
            return self.drop(x)

    class Net(pynn.Model):
        def __init__(self):
            super().__init__()
            self.block = Block()
            self.penalty = NoisyPenalty()

        def call(self, x):
            return self.penalty(self.block(x))

    net = Net()
    x = np.ones((64, 32), np.float32)
    assert np.array_equal(np.asarray(net(x)), x)  # inference: no dropout
    dropped = np.asarray(net(x, training=True))
    assert (dropped == 0).mean() > 0.3 and np.allclose(dropped[dropped != 0], 2.0)
    # the penalty's call() branches on training: it sees the outer call's
    net(x, training=True)
    assert float(net.losses[0].numpy()) == pytest.approx(0.5 * (dropped ** 2).mean(), rel=0.3)
    net(x)
    assert float(net.losses[0].numpy()) == pytest.approx(0.25, rel=1e-6)
