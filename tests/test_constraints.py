"""Weight constraints (pynn.constraints, issue 19): values, configs and a few steps of fit against
Keras 3 (tests/keras_reference/constraints.py, its values in constraints.npz); every layer with
a constraint argument passes it to its weights and round-trips it in its config; the core's
fused constraints in fit, train_on_batch and optimizer.apply; user constraints from Python;
errors; save and load."""

import json

import numpy as np
import pytest
from helpers import keras_reference_module, keras_reference_values

import pynn
from pynn import constraints, layers


@pytest.fixture(scope="module")
def reference():
    mod = keras_reference_module("constraints")
    return mod, mod.run(), keras_reference_values("constraints")


# ---- against Keras 3 ---------------------------------------------------------------------------

def test_values_configs_and_fit_match_keras(reference):
    _, got, want = reference
    assert set(got) == set(want)
    for key in sorted(want):
        if want[key].dtype.kind in "US":
            assert json.loads(str(got[key])) == json.loads(str(want[key])), key
        else:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_fit_moved_the_weights_and_the_constraints_hold(reference):
    mod, got, _ = reference
    start = mod.model(False).get_weights()
    k1, b1, k2, b2, k3 = (got[f"fit/builtin/{i}"] for i in range(5))
    assert max(np.abs(a - b).max() for a, b in zip(start, [k1, b1, k2, b2, k3])) > 1e-2
    assert np.linalg.norm(k1, axis=0).max() <= 0.8 + 1e-5
    assert b1.min() >= 0.0
    np.testing.assert_allclose(np.linalg.norm(k2, axis=0), 1.0, rtol=1e-5)
    assert np.abs(got["fit/user/0"]).max() <= 0.3 + 1e-7


# ---- the objects ---------------------------------------------------------------------------------

def test_keras_names_defaults_and_configs():
    assert constraints.max_norm is constraints.MaxNorm
    assert constraints.non_neg is constraints.NonNeg
    assert constraints.unit_norm is constraints.UnitNorm
    assert constraints.min_max_norm is constraints.MinMaxNorm
    assert constraints.MaxNorm().get_config() == {"max_value": 2, "axis": 0}
    assert constraints.UnitNorm().get_config() == {"axis": 0}
    assert constraints.NonNeg().get_config() == {}
    assert constraints.MinMaxNorm().get_config() == {"min_value": 0.0, "max_value": 1.0,
                                                     "rate": 1.0, "axis": 0}
    c = constraints.MinMaxNorm(0.5, 2.0, 0.3, axis=[0, 1])
    again = constraints.MinMaxNorm.from_config(c.get_config())
    assert again.get_config() == c.get_config()


@pytest.mark.parametrize("identifier, cls", [
    ("max_norm", constraints.MaxNorm), ("MaxNorm", constraints.MaxNorm),
    ("non_neg", constraints.NonNeg), ("UnitNorm", constraints.UnitNorm),
    ("min_max_norm", constraints.MinMaxNorm), (constraints.NonNeg, constraints.NonNeg),
    ({"class_name": "MaxNorm", "config": {"max_value": 3, "axis": [0, 1]}}, constraints.MaxNorm),
    ({"module": "keras.constraints", "class_name": "UnitNorm", "config": {"axis": 1},
      "registered_name": None}, constraints.UnitNorm),
])
def test_get_follows_keras(identifier, cls):
    assert type(constraints.get(identifier)) is cls


def test_get_passes_instances_callables_and_none():
    c = constraints.MaxNorm(1.0)
    assert constraints.get(c) is c
    assert constraints.get(None) is None
    fn = np.abs
    assert constraints.get(fn) is fn
    d = constraints.serialize(c)
    assert d == {"module": "keras.constraints", "class_name": "MaxNorm",
                 "config": {"max_value": 1.0, "axis": 0}, "registered_name": None}
    assert constraints.deserialize(d).get_config() == c.get_config()
    assert constraints.serialize(None) is None


@pytest.mark.parametrize("bad", ["maxnorm", "nope", 3, {"class_name": "Nope", "config": {}}])
def test_unknown_identifiers_are_refused(bad):
    with pytest.raises(ValueError, match="constraint"):
        constraints.get(bad)


@pytest.mark.parametrize("make, match", [
    (lambda: constraints.MaxNorm("big"), "max_value"),
    (lambda: constraints.MaxNorm(float("nan")), "max_value"),
    (lambda: constraints.MinMaxNorm(rate=None), "rate"),
    (lambda: constraints.UnitNorm(axis=1.5), "axis"),
    (lambda: constraints.MaxNorm(axis=[0, 0]), "axis"),
])
def test_bad_arguments_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_call_on_arrays_tensors_and_variables():
    w = np.array([[3.0, -1.0], [4.0, 0.5]], np.float32)
    out = constraints.MaxNorm(1.0)(w)
    assert isinstance(out, pynn.Tensor)
    np.testing.assert_allclose(np.asarray(out)[:, 0], [0.6, 0.8], rtol=1e-6)
    t = pynn.ops.convert_to_tensor(w)
    np.testing.assert_allclose(np.asarray(constraints.NonNeg()(t)), np.maximum(w, 0))
    v = pynn.Variable(w)
    np.testing.assert_allclose(np.asarray(constraints.UnitNorm(axis=1)(v)),
                               w / (1e-7 + np.linalg.norm(w, axis=1, keepdims=True)), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(constraints.Constraint()(w)), w)


# ---- layers ------------------------------------------------------------------------------------

MAX = {"class_name": "MaxNorm", "config": {"max_value": 1.5, "axis": 0}}

LAYERS = {  # name: (make(constraint kwargs), input shape, constraint argument names)
    "Dense": (lambda **k: layers.Dense(3, **k), (4,), ("kernel", "bias")),
    "EinsumDense": (lambda **k: layers.EinsumDense("ab,bc->ac", 3, bias_axes="c", **k), (4,),
                    ("kernel", "bias")),
    "Embedding": (lambda **k: layers.Embedding(10, 3, **k), (5,), ("embeddings",)),
    "Conv1D": (lambda **k: layers.Conv1D(3, 2, **k), (6, 2), ("kernel", "bias")),
    "Conv2D": (lambda **k: layers.Conv2D(3, 2, **k), (5, 5, 2), ("kernel", "bias")),
    "Conv3D": (lambda **k: layers.Conv3D(3, 2, **k), (4, 4, 4, 2), ("kernel", "bias")),
    "Conv1DTranspose": (lambda **k: layers.Conv1DTranspose(3, 2, **k), (6, 2),
                        ("kernel", "bias")),
    "Conv2DTranspose": (lambda **k: layers.Conv2DTranspose(3, 2, **k), (5, 5, 2),
                        ("kernel", "bias")),
    "Conv3DTranspose": (lambda **k: layers.Conv3DTranspose(3, 2, **k), (3, 3, 3, 2),
                        ("kernel", "bias")),
    "DepthwiseConv2D": (lambda **k: layers.DepthwiseConv2D(2, **k), (5, 5, 2),
                        ("depthwise", "bias")),
    "DepthwiseConv1D": (lambda **k: layers.DepthwiseConv1D(2, **k), (6, 2),
                        ("depthwise", "bias")),
    "SeparableConv2D": (lambda **k: layers.SeparableConv2D(3, 2, **k), (5, 5, 2),
                        ("depthwise", "pointwise", "bias")),
    "SeparableConv1D": (lambda **k: layers.SeparableConv1D(3, 2, **k), (6, 2),
                        ("depthwise", "pointwise", "bias")),
    "SimpleRNN": (lambda **k: layers.SimpleRNN(3, **k), (4, 2),
                  ("kernel", "recurrent", "bias")),
    "LSTM": (lambda **k: layers.LSTM(3, **k), (4, 2), ("kernel", "recurrent", "bias")),
    "GRU": (lambda **k: layers.GRU(3, **k), (4, 2), ("kernel", "recurrent", "bias")),
    "RNN(LSTMCell)": (lambda **k: layers.RNN(layers.LSTMCell(3, **k)), (4, 2),
                      ("kernel", "recurrent", "bias")),
    "ConvLSTM1D": (lambda **k: layers.ConvLSTM1D(2, 2, **k), (3, 5, 2),
                   ("kernel", "recurrent", "bias")),
    "BatchNormalization": (lambda **k: layers.BatchNormalization(**k), (4,), ("beta", "gamma")),
    "LayerNormalization": (lambda **k: layers.LayerNormalization(**k), (4,), ("beta", "gamma")),
    "GroupNormalization": (lambda **k: layers.GroupNormalization(2, **k), (4,),
                           ("beta", "gamma")),
    "PReLU": (lambda **k: layers.PReLU(**k), (4,), ("alpha",)),
}


def _constraint_kwargs(names):
    return {f"{n}_constraint": constraints.MaxNorm(1.5) for n in names}


def _model(layer, shape):
    dtype = "int32" if isinstance(layer, layers.Embedding) else "float32"
    return pynn.Sequential([pynn.Input(shape, dtype=dtype), layer])


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_takes_serializes_and_restores_its_constraints(name):
    make, shape, names = LAYERS[name]
    layer = make(**_constraint_kwargs(names))
    _model(layer, shape)
    config = layer.get_config()
    if name == "RNN(LSTMCell)":
        config = config["cell"]["config"]
    for n in names:
        d = config[f"{n}_constraint"]
        assert d["class_name"] == "MaxNorm" and d["config"] == MAX["config"], (n, d)
    config = json.loads(json.dumps(layer.get_config()))
    again = type(layer).from_config(config)
    assert json.loads(json.dumps(again.get_config())) == config
    constrained = [w for w in layer.weights if w.constraint is not None]
    assert constrained, "no weight took the constraint"
    assert all(isinstance(w.constraint, constraints.MaxNorm) for w in constrained)
    plain = make()
    _model(plain, shape)
    assert all(plain.get_config()[f"{n}_constraint"] is None for n in names
               if name != "RNN(LSTMCell)")


def test_multi_head_attention_constrains_every_projection():
    mha = layers.MultiHeadAttention(2, 3, kernel_constraint="unit_norm",
                                    bias_constraint="non_neg")
    q = pynn.Input((4, 5))
    out = mha(q, q)
    model = pynn.Model(q, out)
    config = mha.get_config()
    assert config["kernel_constraint"]["class_name"] == "UnitNorm"
    assert config["bias_constraint"]["class_name"] == "NonNeg"
    assert type(layers.MultiHeadAttention.from_config(config).kernel_constraint) is \
        constraints.UnitNorm
    model.compile("sgd", "mse")
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(8, 4, 5)).astype(np.float32),
              rng.normal(size=(8, 4, 5)).astype(np.float32), epochs=1, verbose=0)
    for w in mha.weights:
        if w.name == "bias":
            assert w.min() >= 0.0
        else:
            np.testing.assert_allclose(np.sqrt((np.asarray(w) ** 2).sum(0)), 1.0, rtol=1e-5)


def test_conv_filters_and_embedding_rows_are_constrained_in_fit():
    rng = np.random.default_rng(1)
    model = pynn.Sequential([
        pynn.Input((6, 6, 2)),
        layers.Conv2D(4, 3, kernel_constraint=constraints.MaxNorm(0.2, axis=[0, 1, 2])),
        layers.BatchNormalization(gamma_constraint=constraints.MinMaxNorm(0.5, 0.6, axis=0)),
        layers.Flatten(), layers.Dense(2)])
    model.compile(pynn.optimizers.Adam(0.05), "mse")
    model.fit(rng.normal(size=(16, 6, 6, 2)).astype(np.float32),
              rng.normal(size=(16, 2)).astype(np.float32), batch_size=4, epochs=2, verbose=0)
    k = np.asarray(model.layers[0].kernel)
    assert np.sqrt((k ** 2).sum((0, 1, 2))).max() <= 0.2 + 1e-6
    gamma = np.asarray(model.layers[1].gamma)
    assert 0.5 - 1e-5 <= np.linalg.norm(gamma) <= 0.6 + 1e-5

    emb = pynn.Sequential([pynn.Input((3,), dtype="int32"),
                           layers.Embedding(7, 4, embeddings_constraint=constraints.UnitNorm(1)),
                           layers.GlobalAveragePooling1D(), layers.Dense(1)])
    emb.compile(pynn.optimizers.SGD(0.5), "mse")
    emb.fit(rng.integers(0, 7, (12, 3)).astype(np.int32), rng.normal(size=(12, 1)),
            epochs=1, verbose=0)
    table = np.asarray(emb.layers[0].embeddings)
    np.testing.assert_allclose(np.linalg.norm(table, axis=1), 1.0, rtol=1e-5)


def test_a_frozen_layer_is_not_constrained():
    model = pynn.Sequential([pynn.Input((3,)),
                             layers.Dense(2, kernel_constraint="non_neg", trainable=False),
                             layers.Dense(1)])
    model.layers[0].set_weights([-np.ones((3, 2), np.float32), np.zeros(2, np.float32)])
    model.compile("sgd", "mse")
    model.fit(np.ones((4, 3), np.float32), np.ones((4, 1), np.float32), verbose=0)
    assert (np.asarray(model.layers[0].kernel) == -1.0).all()


# ---- the paths of a step -------------------------------------------------------------------------

def _dense_model(**kwargs):
    model = pynn.Sequential([pynn.Input((3,)), layers.Dense(2, **kwargs)])
    model.layers[0].set_weights([np.array([[1.0, -2.0], [2.0, 0.5], [-2.0, 1.0]], np.float32),
                                 np.array([-1.0, 1.0], np.float32)])
    return model


def test_train_on_batch_applies_fused_constraints():
    model = _dense_model(kernel_constraint=constraints.MaxNorm(1.0), bias_constraint="non_neg")
    model.compile(pynn.optimizers.SGD(0.01), "mse")
    model.train_on_batch(np.ones((2, 3), np.float32), np.zeros((2, 2), np.float32))
    assert np.linalg.norm(model.layers[0].kernel, axis=0).max() <= 1.0 + 1e-6
    assert model.layers[0].bias.min() >= 0.0


def test_optimizer_apply_applies_fused_and_python_constraints():
    calls = []

    class Halve(constraints.Constraint):
        def __call__(self, w):
            calls.append(w.shape)
            return np.asarray(w) * 0.5

    model = _dense_model(kernel_constraint=constraints.UnitNorm(), bias_constraint=Halve())
    model.build((None, 3))
    opt = pynn.optimizers.SGD(0.1)
    x = pynn.ops.convert_to_tensor(np.ones((2, 3), np.float32))
    before = np.asarray(model.layers[0].bias).copy()
    with pynn.GradientTape() as tape:
        loss = pynn.ops.sum(model(x))
    grads = tape.gradient(loss, model.trainable_weights)
    opt.apply(grads, model.trainable_weights)
    np.testing.assert_allclose(np.linalg.norm(model.layers[0].kernel, axis=0), 1.0, rtol=1e-5)
    np.testing.assert_allclose(model.layers[0].bias, 0.5 * (before - 0.1 * 2.0), rtol=1e-6)
    assert calls == [(2,)]


def test_user_constraint_runs_after_each_fit_step():
    seen = []

    def clip_and_count(w):
        seen.append(1)
        return np.clip(w, -0.5, 0.5)

    model = _dense_model(kernel_constraint=clip_and_count)
    model.compile(pynn.optimizers.SGD(0.01), "mse")
    model.fit(np.ones((8, 3), np.float32), np.zeros((8, 2), np.float32), batch_size=2,
              epochs=1, verbose=0)
    assert len(seen) == 4
    assert np.abs(model.layers[0].kernel).max() <= 0.5


def test_user_constraint_of_the_wrong_shape_is_refused():
    model = _dense_model(kernel_constraint=lambda w: np.ones(5, np.float32))
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"returned shape \(5,\).*\(3, 2\)"):
        model.fit(np.ones((2, 3), np.float32), np.zeros((2, 2), np.float32), verbose=0)


def test_non_callable_constraint_is_refused():
    with pytest.raises(ValueError, match="constraint"):
        layers.Dense(2, kernel_constraint=3)
    with pytest.raises(ValueError, match="constraint"):
        layers.Dense(2, kernel_constraint="maxnorm")


def test_axis_out_of_range_names_the_layer_and_the_shape():
    layer = layers.Dense(2, kernel_constraint=constraints.MaxNorm(axis=2), name="d")
    with pytest.raises(ValueError, match=r"d: weight 'kernel'.*axis 2.*\(3, 2\)"):
        pynn.Sequential([pynn.Input((3,)), layer])
    with pytest.raises(ValueError, match="out of range"):
        layers.Dense(2, bias_constraint=constraints.UnitNorm(axis=1)).build((None, 3))


def test_add_weight_takes_a_constraint():
    class Scale(layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight((input_shape[-1],), "ones", constraint="non_neg", name="w")

        def call(self, x):
            return x * self.w

    layer = Scale()
    model = pynn.Sequential([pynn.Input((2,)), layer])
    assert isinstance(layer.w.constraint, constraints.NonNeg)
    model.compile(pynn.optimizers.SGD(1.0), "mse")
    model.fit(np.ones((4, 2), np.float32), -10 * np.ones((4, 2), np.float32), verbose=0)
    np.testing.assert_array_equal(np.asarray(layer.w), 0.0)


# ---- saving --------------------------------------------------------------------------------------

@pynn.saving.register_keras_serializable(package="test_constraints")
class ClipTo(constraints.Constraint):
    def __init__(self, limit=1.0):
        self.limit = limit

    def __call__(self, w):
        return np.clip(w, -self.limit, self.limit)

    def get_config(self):
        return {"limit": self.limit}


def test_constraints_survive_save_and_load(tmp_path):
    model = pynn.Sequential([
        pynn.Input((3,)),
        layers.Dense(4, kernel_constraint=constraints.MaxNorm(0.3, axis=0),
                     bias_constraint=ClipTo(0.05)),
        layers.Dense(1, kernel_constraint="non_neg")])
    model.compile(pynn.optimizers.SGD(0.5), "mse")
    x = np.random.default_rng(3).normal(size=(16, 3)).astype(np.float32)
    y = np.random.default_rng(4).normal(size=(16, 1)).astype(np.float32)
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = pynn.saving.load_model(tmp_path / "m.keras")
    d0, d1 = loaded.layers
    assert d0.kernel_constraint.get_config() == {"max_value": 0.3, "axis": 0}
    assert isinstance(d0.bias_constraint, ClipTo) and d0.bias_constraint.limit == 0.05
    assert isinstance(d1.kernel_constraint, constraints.NonNeg)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    loaded.fit(x, 100 * y, epochs=2, verbose=0)  # a large push: the constraints must hold
    assert np.linalg.norm(d0.kernel, axis=0).max() <= 0.3 + 1e-6
    assert np.abs(d0.bias).max() <= 0.05 + 1e-7
    assert d1.kernel.min() >= 0.0
