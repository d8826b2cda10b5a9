"""Pickling and copying: models (with their optimizer and random state), layers, Tensors and
Variables round-trip exactly through pickle, copy.deepcopy and copy.copy, as in Keras 3, by way of
the `.keras` archive; the pickle holds no code; what cannot be pickled raises a clear TypeError.

Each test checks its behaviour for every way of copying (COPIES)."""

import copy
import io
import pickle
import pickletools
import zipfile

import helpers
import numpy as np
import pytest

import pynn
from pynn import layers, saving


def pickled(obj, protocol=pickle.DEFAULT_PROTOCOL):
    return pickle.loads(pickle.dumps(obj, protocol=protocol))


# every way of copying: pickle (the default protocol, the oldest and the newest), deepcopy, copy
COPIES = {"pickle": pickled,
          "pickle protocol 0": lambda o: pickled(o, 0),
          "pickle highest protocol": lambda o: pickled(o, pickle.HIGHEST_PROTOCOL),
          "deepcopy": copy.deepcopy,
          "copy": copy.copy}


def data(seed=0, n=16):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6)).astype(np.float32), rng.integers(0, 3, n)


def trained_mlp():
    """A compiled Sequential model with Dropout (the core's random stream) and BatchNormalization
    (non-trainable weights), trained a few steps so the optimizer has state."""
    pynn.utils.set_random_seed(0)
    model = pynn.Sequential([pynn.Input((6,)), layers.Dense(8, activation="relu"),
                             layers.Dropout(0.3), layers.BatchNormalization(),
                             layers.Dense(3)])
    model.compile(optimizer=pynn.optimizers.Adam(0.01),
                  loss=pynn.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy", pynn.metrics.SparseTopKCategoricalAccuracy(k=2)])
    x, y = data()
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    return model


def assert_same_state(a, b, how: str):
    """Config, compile settings, weights (bit for bit), optimizer state and random state."""
    assert a is not b and a._core is not b._core, how
    assert type(a) is type(b), how
    assert a.get_config() == b.get_config(), how
    assert saving.compile_config(a) == saving.compile_config(b), how
    assert [w.path for w in a.weights] == [w.path for w in b.weights], how
    for wa, wb in zip(a.weights, b.weights):
        assert wa.tobytes() == wb.tobytes(), (how, wa.path)
    if a._compiled:
        assert a.optimizer.iterations == b.optimizer.iterations, how
        slots_a, slots_b = saving._optimizer_slots(a), saving._optimizer_slots(b)
        assert list(slots_a) == list(slots_b), how
        for name in slots_a:
            assert slots_a[name].tobytes() == slots_b[name].tobytes(), (how, name)
    if a._core is not None:
        assert a._core.rng_state == b._core.rng_state, how


# -- models ----------------------------------------------------------------------------------------
def test_trained_sequential_copies_exactly_and_trains_on_identically():
    x, y = data(seed=1)
    for how, make_copy in COPIES.items():
        model = trained_mlp()
        twin = make_copy(model)
        assert_same_state(model, twin, how)
        np.testing.assert_array_equal(model.predict(x, verbose=0), twin.predict(x, verbose=0))
        # one more step on both (Dropout draws from the copied random stream): identical weights
        assert model.train_on_batch(x, y) == twin.train_on_batch(x, y), how
        assert_same_state(model, twin, how)


def test_functional_model_with_several_inputs_and_outputs_copies_exactly():
    pynn.utils.set_random_seed(0)
    q, v = pynn.Input((5, 8), name="q"), pynn.Input((7, 8), name="v")
    a = layers.MultiHeadAttention(2, 4)(q, v)
    cls = layers.Dense(3, name="cls")(layers.GlobalAveragePooling1D()(a))
    reg = layers.Dense(1, name="reg")(layers.Flatten()(a))
    model = pynn.Model([q, v], {"cls": cls, "reg": reg})
    model.compile(optimizer="sgd", loss={"cls": "mse", "reg": "mae"},
                  loss_weights={"cls": 1.0, "reg": 0.5})
    rng = np.random.default_rng(0)
    xs = [rng.random((4, 5, 8), np.float32), rng.random((4, 7, 8), np.float32)]
    ys = {"cls": rng.random((4, 3), np.float32), "reg": rng.random((4, 1), np.float32)}
    model.train_on_batch(xs, ys)
    for how, make_copy in COPIES.items():
        twin = make_copy(model)
        assert_same_state(model, twin, how)
        p, t = model.predict(xs, verbose=0), twin.predict(xs, verbose=0)
        for k in ("cls", "reg"):
            np.testing.assert_array_equal(p[k], t[k])
        twin.train_on_batch(xs, ys)
        again = make_copy(model)  # the original, unchanged by the copy's training, trains alike
        again.train_on_batch(xs, ys)
        assert_same_state(twin, again, how)


@pytest.mark.parametrize("compiled", [False, True], ids=["plain", "compiled"])
def test_unbuilt_model_copies_unbuilt_with_its_compile_settings(compiled):
    x = np.ones((2, 3), np.float32)
    for how, make_copy in COPIES.items():
        model = pynn.Sequential([layers.Dense(4, activation="relu"), layers.Dense(2)])
        if compiled:
            model.compile(optimizer=pynn.optimizers.SGD(0.1, momentum=0.9), loss="mse")
        twin = make_copy(model)
        assert not twin.built and twin._compiled == compiled, how
        assert twin.get_config() == model.get_config(), how
        assert saving.compile_config(twin) == saving.compile_config(model), how
        if compiled:
            twin.train_on_batch(x, np.zeros((2, 2), np.float32))
        assert twin.predict(x, verbose=0).shape == (2, 2), how
        # building the copy left the original and its layers alone
        assert not model.built and not any(layer.built for layer in model.layers), how


def test_model_copy_is_independent_of_the_original():
    x, y = data(seed=2)
    for how, make_copy in COPIES.items():
        model = trained_mlp()
        before = [w.numpy() for w in model.weights]
        twin = make_copy(model)
        twin.train_on_batch(x, y)
        twin.layers[0].kernel.assign(np.zeros(twin.layers[0].kernel.shape))
        for w, value in zip(model.weights, before):
            np.testing.assert_array_equal(w, value, err_msg=how)
        assert twin.optimizer is not model.optimizer, how
        assert twin.optimizer.iterations == model.optimizer.iterations + 1, how


def test_learning_rate_schedule_resumes_exactly_in_the_copy():
    x, y = data()[0], np.zeros((16, 3), np.float32)
    for how, make_copy in COPIES.items():
        pynn.utils.set_random_seed(0)
        model = pynn.Sequential([pynn.Input((6,)), layers.Dense(3)])
        schedule = pynn.optimizers.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
        model.compile(optimizer=pynn.optimizers.SGD(schedule), loss="mse")
        model.fit(x, y, epochs=3, batch_size=8, verbose=0)
        twin = make_copy(model)
        assert twin.optimizer.learning_rate == model.optimizer.learning_rate, how
        model.train_on_batch(x, y)
        twin.train_on_batch(x, y)
        assert_same_state(model, twin, how)


@saving.register_keras_serializable(package="test_pickle")
class Affine(helpers.Affine):
    """A registered user layer (the saving tests' Affine, unregistered there)."""


def test_registered_custom_layer_round_trips_in_a_model_and_alone():
    pynn.utils.set_random_seed(0)
    model = pynn.Sequential([pynn.Input((6,)), Affine(4, note="mine"), layers.Dense(2)])
    for how, make_copy in COPIES.items():
        twin = make_copy(model)
        assert type(twin.layers[0]) is Affine and twin.layers[0].note == "mine", how
        assert_same_state(model, twin, how)
        alone = make_copy(model.layers[0])
        assert type(alone) is Affine and alone.built, how
        np.testing.assert_array_equal(alone.w, model.layers[0].w, err_msg=how)


class Unregistered(layers.Dense):
    pass


class UnregisteredLoss(pynn.losses.MeanSquaredError):
    pass


def test_unregistered_custom_classes_raise_a_clear_type_error():
    for copier in (pickle.dumps, copy.deepcopy, copy.copy):
        with pytest.raises(TypeError, match="Unregistered is neither pynn's nor registered"):
            copier(Unregistered(2))
        model = pynn.Sequential([pynn.Input((4,)), Unregistered(2)])
        with pytest.raises(TypeError, match="model .*Unregistered .*register_keras_serializable"):
            copier(model)
        model = pynn.Sequential([pynn.Input((4,)), layers.Dense(2)])
        model.compile(optimizer="adam", loss=UnregisteredLoss())
        with pytest.raises(TypeError, match="loss class .*UnregisteredLoss"):
            copier(model)


def test_model_with_a_function_as_learning_rate_raises_a_clear_type_error():
    model = pynn.Sequential([pynn.Input((4,)), layers.Dense(2)])
    model.compile(optimizer=pynn.optimizers.SGD(lambda: 0.01), loss="mse")
    for copier in (pickle.dumps, copy.deepcopy, copy.copy):
        with pytest.raises(TypeError, match="learning rate comes from <function"):
            copier(model)


def test_optimizer_pickles_alone_but_not_once_compiled_into_a_model():
    optimizer = pynn.optimizers.Adam(0.01, beta_1=0.8)
    assert pickled(optimizer).get_config() == optimizer.get_config()
    model = trained_mlp()
    for copier in (pickle.dumps, copy.deepcopy):
        with pytest.raises(TypeError, match="pickle or copy the pynn model that holds it"):
            copier(model.optimizer)


def test_unpickling_checks_the_archive_as_load_model_does():
    with pytest.raises(ValueError, match="<pickled model> is not a valid .keras archive"):
        saving._unpickle_model(b"not a zip archive")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("config.json", "{}")
    with pytest.raises(ValueError, match="<pickled layer>: the archive has no model.safetensors"):
        saving._unpickle_layer(buffer.getvalue())


# -- layers ----------------------------------------------------------------------------------------
def test_unbuilt_layer_copies_its_config_unbuilt():
    for how, make_copy in COPIES.items():
        layer = layers.Dense(5, activation="tanh", use_bias=False, name="d5")
        twin = make_copy(layer)
        assert type(twin) is layers.Dense and twin is not layer, how
        assert not twin.built and twin.weights == [], how
        assert twin.get_config() == layer.get_config(), how
        twin.build((None, 3))  # building the copy leaves the original unbuilt
        assert not layer.built and layer.weights == [], how


BUILT_LAYERS = [
    pytest.param(lambda: layers.Dense(4), (None, 3), id="Dense"),
    pytest.param(lambda: layers.Conv2D(2, 3), (None, 6, 6, 1), id="Conv2D"),
    pytest.param(lambda: layers.LSTM(3), (None, 5, 2), id="LSTM"),
    pytest.param(lambda: layers.Bidirectional(layers.GRU(2)), (None, 4, 3), id="Bidirectional"),
    pytest.param(lambda: layers.TimeDistributed(layers.Dense(2)), (None, 3, 4),
                 id="TimeDistributed"),
    pytest.param(lambda: layers.BatchNormalization(), (None, 3), id="BatchNormalization"),
    pytest.param(lambda: layers.Embedding(10, 3), (None, 4), id="Embedding"),
]


@pytest.mark.parametrize("make, shape", BUILT_LAYERS)
def test_built_layer_copies_with_its_weights(make, shape):
    layer = make()
    layer.build(shape)
    for how, make_copy in COPIES.items():
        twin = make_copy(layer)
        assert type(twin) is type(layer) and twin.built, how
        assert twin.get_config() == layer.get_config(), how
        assert [(w.path, w.trainable) for w in twin.weights] == \
            [(w.path, w.trainable) for w in layer.weights], how
        for a, b in zip(layer.weights, twin.weights):
            assert a.tobytes() == b.tobytes(), (how, a.path)
            assert not np.shares_memory(a, b), (how, a.path)
        # the copy builds into a model of its own, as the original would
        x = pynn.Input(shape[1:], dtype="int32" if isinstance(layer, layers.Embedding) else None)
        pynn.Model(x, twin(x))


def test_layers_built_on_several_inputs_copy_built_with_their_weights():
    q, v = pynn.Input((5, 8)), pynn.Input((7, 6))
    mha, concat = layers.MultiHeadAttention(2, 3), layers.Concatenate(axis=1)
    pynn.Model([q, v], concat([mha(q, v), q]))  # built by calls: (query, value), [a, b]
    for how, make_copy in COPIES.items():
        twin = make_copy(mha)
        assert twin.built and len(twin.weights) == len(mha.weights) == 8, how
        for a, b in zip(mha.weights, twin.weights):
            assert a.path == b.path and a.tobytes() == b.tobytes(), (how, a.path)
        twin = make_copy(concat)
        assert twin.built and twin.get_config() == concat.get_config(), how
        assert twin([pynn.Input((2, 8)), pynn.Input((3, 8))]).shape == (None, 5, 8), how


def test_layer_of_a_model_copies_as_a_standalone_layer():
    model = trained_mlp()
    dense = model.layers[0]
    for how, make_copy in COPIES.items():
        twin = make_copy(dense)
        assert twin._bound_to is None, how
        assert all(w._owner_core() is None for w in twin.weights), how
        for a, b in zip(dense.weights, twin.weights):
            assert a.path == b.path and a.tobytes() == b.tobytes(), (how, a.path)
        twin.kernel.assign(np.zeros(twin.kernel.shape))  # the model's weights stay as they were
        assert np.abs(dense.kernel).sum() > 0, how
        other = pynn.Sequential([pynn.Input((6,)), twin])  # and the copy serves another model
        np.testing.assert_array_equal(other.predict(np.ones((1, 6), np.float32), verbose=0),
                                      np.maximum(twin.bias, 0)[None], err_msg=how)


# -- tensors and variables -------------------------------------------------------------------------
TENSORS = [
    pytest.param(lambda: pynn.Tensor(np.arange(12, dtype=np.float32).reshape(3, 4) / 7),
                 id="float32"),
    pytest.param(lambda: pynn.Tensor(np.array([[-3, 2**31 - 1], [0, -2**31]], np.int32)),
                 id="int32"),
    pytest.param(lambda: pynn.Tensor(np.float32(2.5)), id="scalar"),
    pytest.param(lambda: pynn.Tensor(np.zeros((0, 3), np.float32)), id="empty"),
    pytest.param(lambda: pynn.Tensor(np.array([np.nan, -0.0, np.inf], np.float32),
                                     requires_grad=True), id="requires_grad"),
]


@pytest.mark.parametrize("make", TENSORS)
def test_tensor_round_trips_exactly(make):
    t = make()
    for how, make_copy in COPIES.items():
        twin = make_copy(t)
        assert type(twin) is pynn.Tensor and twin is not t, how
        assert (twin.dtype, twin.shape, twin.requires_grad) == \
            (t.dtype, t.shape, t.requires_grad), how
        assert np.asarray(twin).tobytes() == np.asarray(t).tobytes(), how


def test_tensor_copy_is_an_independent_leaf():
    for how, make_copy in COPIES.items():
        w = pynn.Tensor(np.array([1.0, 2.0, 3.0], np.float32), requires_grad=True)
        y = w * w  # made by an operation: its copy is a leaf of the same values
        twin, leaf = make_copy(y), make_copy(w)
        assert twin._op is None and twin.requires_grad, how
        np.testing.assert_array_equal(twin, [1.0, 4.0, 9.0], err_msg=how)
        (leaf * leaf).sum().backward()
        np.testing.assert_array_equal(leaf.grad, [2.0, 4.0, 6.0], err_msg=how)
        assert w.grad is None, how


def test_variable_pickles_with_its_name_path_and_flag_out_of_the_model():
    model = trained_mlp()
    for how, make_copy in COPIES.items():
        for var in model.weights:
            twin = make_copy(var)
            assert type(twin) is type(var), how
            assert (twin.name, twin.path, twin.trainable) == \
                (var.name, var.path, var.trainable), how
            assert twin.tobytes() == var.tobytes() and twin.flags.writeable, how
            assert twin._owner_core() is None and not np.shares_memory(twin, var), how


# -- what a pickle holds ---------------------------------------------------------------------------
ALLOWED_GLOBALS = {("pynn.saving", "_unpickle_model"), ("pynn.saving", "_unpickle_layer"),
                   ("pynn.saving", "_unpickle_tensor"), ("pynn.saving", "_unpickle_variable"),
                   ("_codecs", "encode")}  # how protocols 0 to 2 write bytes
# opcodes that build an object from its class and __dict__ (or from an extension registry)
OBJECT_OPCODES = {"BUILD", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4",
                  "PERSID", "BINPERSID"}


class OnlyAllowed(pickle.Unpickler):
    """Loads a pickle, refusing every global but ALLOWED_GLOBALS, and records those it used."""

    def __init__(self, data):
        super().__init__(io.BytesIO(data))
        self.used = set()

    def find_class(self, module, name):
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"the pickle names {module}.{name}")
        self.used.add((module, name))
        return super().find_class(module, name)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickles_hold_only_data_and_pynns_unpickle_functions(protocol):
    model = trained_mlp()
    unbuilt = pynn.Sequential([layers.Dense(2)])
    unbuilt.compile(optimizer="adam", loss="mse")
    objects = [("model", model), ("model", unbuilt), ("layer", model.layers[0]),
               ("layer", layers.Dense(3)), ("variable", model.weights[0]),
               ("tensor", pynn.Tensor(np.ones((2, 3), np.float32), requires_grad=True))]
    for kind, obj in objects:
        data = pickle.dumps(obj, protocol=protocol)
        ops = {op.name for op, _, _ in pickletools.genops(data)}
        assert not ops & OBJECT_OPCODES, (kind, ops & OBJECT_OPCODES)
        unpickler = OnlyAllowed(data)
        twin = unpickler.load()
        assert type(twin) is type(obj)
        assert ("pynn.saving", f"_unpickle_{kind}") in unpickler.used
