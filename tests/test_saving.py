"""Saving and loading: .keras round trips (Sequential, CNN, several inputs and outputs with a
shared layer, a nested model, Embedding), training that resumes exactly, .weights.safetensors
read back by the safetensors package, configs of every layer, optimizer, loss and metric,
custom objects, and clean errors (never a crash) for corrupted, truncated or malicious files."""

import io
import json
import os
import struct
import zipfile

import numpy as np
import pytest
from helpers import Affine

import pynn
from pynn import layers, saving

# -- models ----------------------------------------------------------------------------------------


def rng(seed=0):
    return np.random.default_rng(seed)


def mlp(seed=0):
    pynn.utils.set_random_seed(seed)
    return pynn.Sequential([pynn.Input((6,)), layers.Dense(8, activation="relu"),
                            layers.Dense(3, activation="softmax")])


def cnn(seed=0):
    pynn.utils.set_random_seed(seed)
    return pynn.Sequential([pynn.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu"),
                            layers.BatchNormalization(), layers.MaxPooling2D(2),
                            layers.Dropout(0.25), layers.Flatten(),
                            layers.Dense(3, activation="softmax")])


def two_in_two_out(seed=0):
    """Inputs a (5) and b (3); one Dense shared by both branches; outputs 'reg' and 'cls'."""
    pynn.utils.set_random_seed(seed)
    a, b = pynn.Input((5,), name="a"), pynn.Input((3,), name="b")
    shared = layers.Dense(4, activation="tanh", name="shared")
    ha = shared(layers.Dense(4, name="pa")(a))
    hb = shared(layers.Dense(4, name="pb")(b))
    h = layers.Concatenate(name="cat")([ha, hb, layers.Add(name="sum")([ha, hb])])
    return pynn.Model([a, b], {"reg": layers.Dense(2, name="reg")(h),
                               "cls": layers.Dense(3, activation="softmax", name="cls")(h)},
                      name="two_by_two")


def nested(seed=0):
    pynn.utils.set_random_seed(seed)
    inner = pynn.Sequential([pynn.Input((6,)), layers.Dense(5, activation="relu"),
                             layers.Dense(4)], name="inner")
    x = pynn.Input((6,))
    y = layers.Dense(3, activation="softmax")(inner(x))
    return pynn.Model(x, y, name="outer")


def embedding(seed=0):
    pynn.utils.set_random_seed(seed)
    return pynn.Sequential([pynn.Input((7,), dtype="int32"), layers.Embedding(20, 4),
                            layers.Conv1D(3, 2, activation="relu"), layers.Flatten(),
                            layers.Dense(3, activation="softmax")])


def inputs_for(name, n=16, seed=1):
    r = rng(seed)
    if name == "cnn":
        return r.normal(size=(n, 8, 8, 1)).astype(np.float32)
    if name == "two_in_two_out":
        return [r.normal(size=(n, 5)).astype(np.float32), r.normal(size=(n, 3)).astype(np.float32)]
    if name == "embedding":
        return r.integers(0, 20, size=(n, 7)).astype(np.int32)
    return r.normal(size=(n, 6)).astype(np.float32)


def targets_for(name, n=16, seed=2):
    r = rng(seed)
    labels = r.integers(0, 3, size=n).astype(np.int32)
    if name == "two_in_two_out":
        return {"reg": r.normal(size=(n, 2)).astype(np.float32), "cls": labels}
    return labels


BUILDERS = {"mlp": mlp, "cnn": cnn, "two_in_two_out": two_in_two_out, "nested": nested,
            "embedding": embedding}


def compile_for(model, name, optimizer="adam"):
    if name == "two_in_two_out":
        model.compile(optimizer=optimizer,
                      loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"},
                      loss_weights={"reg": 0.5, "cls": 2.0},
                      metrics={"cls": ["accuracy"], "reg": [pynn.metrics.MeanAbsoluteError()]})
    else:
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])


def as_json(value):
    return json.loads(json.dumps(value))


def same_outputs(a, b):
    if isinstance(a, dict):
        assert sorted(a) == sorted(b)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    else:
        np.testing.assert_array_equal(a, b)


# -- round trips -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(BUILDERS))
def test_round_trip_predicts_identically(tmp_path, name):
    model = BUILDERS[name]()
    compile_for(model, name)
    model.fit(inputs_for(name), targets_for(name), epochs=1, batch_size=8, verbose=0)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = pynn.models.load_model(path)
    x = inputs_for(name, seed=5)
    same_outputs(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    assert type(loaded) is type(model)
    assert as_json(loaded.get_config()) == as_json(model.get_config())
    assert [w.path for w in loaded.weights] == [w.path for w in model.weights]
    assert loaded.metrics_names == model.metrics_names


def test_pynn_suffix_is_the_same_format(tmp_path):
    model = mlp()
    model.save(tmp_path / "m.pynn")
    with zipfile.ZipFile(tmp_path / "m.pynn") as zf:
        assert sorted(zf.namelist()) == ["config.json", "metadata.json", "model.safetensors"]
        config = json.loads(zf.read("config.json"))
    assert config["class_name"] == "Sequential" and config["format_version"] == 1
    assert config["pynn_version"] == pynn.__version__ and config["compile_config"] is None
    x = inputs_for("mlp")
    np.testing.assert_array_equal(pynn.models.load_model(tmp_path / "m.pynn").predict(x),
                                  model.predict(x))


def test_archive_weights_are_plain_safetensors(tmp_path):
    from safetensors.numpy import load

    model = two_in_two_out()
    compile_for(model, "two_in_two_out")
    model.fit(inputs_for("two_in_two_out"), targets_for("two_in_two_out"), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        tensors = load(zf.read("model.safetensors"))
    for w in model.weights:
        np.testing.assert_array_equal(tensors[w.path], w)
    assert "optimizer/momentum/shared/kernel" in tensors
    assert "optimizer/velocity/cls/bias" in tensors


# -- resuming training -----------------------------------------------------------------------------
OPTIMIZERS = {
    "adam": lambda: pynn.optimizers.Adam(learning_rate=0.01),
    "adam_amsgrad": lambda: pynn.optimizers.Adam(learning_rate=0.01, amsgrad=True),
    "sgd_nesterov": lambda: pynn.optimizers.SGD(learning_rate=0.05, momentum=0.9,
                                                nesterov=True),
    "rmsprop": lambda: pynn.optimizers.RMSprop(learning_rate=0.01, momentum=0.5, centered=True),
    "adagrad": lambda: pynn.optimizers.Adagrad(learning_rate=0.05),
    "adamw": lambda: pynn.optimizers.AdamW(learning_rate=0.01, clipnorm=1.0),
}


def resume_matches(tmp_path, name, make_opt):
    x, y = inputs_for(name, n=40), targets_for(name, n=40)
    fit = dict(batch_size=16, verbose=0, shuffle=False)
    reference = BUILDERS[name]()
    compile_for(reference, name, make_opt())
    full = reference.fit(x, y, epochs=4, **fit).history

    first = BUILDERS[name]()
    compile_for(first, name, make_opt())
    first.fit(x, y, epochs=2, **fit)
    first.save(tmp_path / "ckpt.keras")
    resumed = pynn.models.load_model(tmp_path / "ckpt.keras")
    assert resumed.optimizer.iterations == first.optimizer.iterations == 6
    rest = resumed.fit(x, y, epochs=4, initial_epoch=2, **fit).history
    for key in full:
        assert rest[key] == full[key][2:], key
    for a, b in zip(reference.weights, resumed.weights):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_training_resumes_exactly(tmp_path, opt):
    resume_matches(tmp_path, "mlp", OPTIMIZERS[opt])


@pytest.mark.parametrize("name", ["two_in_two_out", "embedding", "cnn"])
def test_training_resumes_exactly_with_several_outputs_embeddings_and_dropout(tmp_path, name):
    resume_matches(tmp_path, name, OPTIMIZERS["adam"])


def test_training_resumes_exactly_with_a_frozen_layer(tmp_path):
    def frozen(seed=0):
        pynn.utils.set_random_seed(seed)
        return pynn.Sequential([pynn.Input((6,)), layers.Dense(8, activation="relu",
                                                               trainable=False, name="f"),
                                layers.Dense(3, activation="softmax")])

    BUILDERS["frozen"] = frozen
    try:
        resume_matches(tmp_path, "frozen", OPTIMIZERS["adam"])
    finally:
        del BUILDERS["frozen"]
    with zipfile.ZipFile(tmp_path / "ckpt.keras") as zf:
        names = saving.read_safetensors(zf.read("model.safetensors"))[0]
    assert "f/kernel" in names and not any(k.endswith("/f/kernel") for k in names
                                           if k.startswith("optimizer/"))


def test_batch_norm_moving_statistics_are_saved(tmp_path):
    pynn.utils.set_random_seed(0)
    model = pynn.Sequential([pynn.Input((8, 8, 1)), layers.Conv2D(4, 3),
                             layers.BatchNormalization(), layers.Flatten(), layers.Dense(3)])
    model.compile("sgd", loss="sparse_categorical_crossentropy")
    model.fit(inputs_for("cnn"), targets_for("cnn"), epochs=2, verbose=0)
    moving = model.layers[1].moving_mean.numpy()
    assert np.abs(moving).sum() > 0
    model.save(tmp_path / "bn.keras")
    loaded = pynn.models.load_model(tmp_path / "bn.keras")
    np.testing.assert_array_equal(loaded.layers[1].moving_mean, moving)


def test_compile_false_gives_an_uncompiled_model(tmp_path):
    model = mlp()
    compile_for(model, "mlp")
    model.save(tmp_path / "m.keras")
    loaded = pynn.models.load_model(tmp_path / "m.keras", compile=False)
    x = inputs_for("mlp")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.optimizer is None
    with pytest.raises((RuntimeError, ValueError)):
        loaded.fit(x, targets_for("mlp"), verbose=0)


def test_compile_settings_round_trip(tmp_path):
    model = two_in_two_out()
    model.compile(optimizer=pynn.optimizers.SGD(learning_rate=0.2, momentum=0.5),
                  loss=["mse", pynn.losses.SparseCategoricalCrossentropy(from_logits=False)],
                  loss_weights=[0.25, 3.0], metrics=[["mae"], ["accuracy"]])
    model.save(tmp_path / "m.keras")
    loaded = pynn.models.load_model(tmp_path / "m.keras")
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded._loss_weights == [0.25, 3.0]
    assert [type(lo) for lo in loaded._losses] == [type(lo) for lo in model._losses]
    assert loaded.metrics_names == model.metrics_names


# -- configs ---------------------------------------------------------------------------------------
LAYERS = [
    lambda: layers.Dense(3, activation="tanh", use_bias=False, kernel_initializer="he_normal",
                         kernel_regularizer=pynn.regularizers.L2(0.1), name="d"),
    lambda: layers.Activation("gelu"),
    lambda: layers.Embedding(10, 4, embeddings_regularizer="l1"),
    lambda: layers.Conv2D(4, (3, 2), strides=2, padding="same", activation="relu",
                          bias_initializer=pynn.initializers.Constant(0.5)),
    lambda: layers.Conv1D(2, 3, padding="causal", dilation_rate=2),
    lambda: layers.BatchNormalization(momentum=0.9, epsilon=0.01, center=False,
                                      gamma_regularizer=pynn.regularizers.L1L2(0.1, 0.2)),
    lambda: layers.MaxPooling2D((2, 3), strides=1, padding="same"),
    lambda: layers.AveragePooling2D(2),
    lambda: layers.MaxPooling1D(3),
    lambda: layers.AveragePooling1D(2, padding="same"),
    lambda: layers.GlobalAveragePooling2D(keepdims=True),
    lambda: layers.GlobalMaxPooling2D(),
    lambda: layers.GlobalAveragePooling1D(keepdims=True),
    lambda: layers.GlobalMaxPooling1D(),
    lambda: layers.ReLU(negative_slope=0.1), lambda: layers.LeakyReLU(0.2),
    lambda: layers.ELU(alpha=0.5), lambda: layers.Softmax(),
    lambda: layers.Dropout(0.3, seed=4),
    lambda: layers.SpatialDropout2D(0.2),
    lambda: layers.Flatten(),
    lambda: layers.Reshape((2, -1)),
    lambda: layers.ZeroPadding2D(((1, 2), (0, 3))),
    lambda: layers.Add(), lambda: layers.Subtract(), lambda: layers.Multiply(),
    lambda: layers.Average(), lambda: layers.Maximum(), lambda: layers.Concatenate(axis=1),
    lambda: layers.InputLayer(shape=(3, 4), dtype="int32"),
]


@pytest.mark.parametrize("make", LAYERS, ids=lambda f: type(f()).__name__)
def test_every_layer_config_round_trips_through_json(make):
    layer = make()
    spec = json.loads(json.dumps(saving.serialize_keras_object(layer)))
    again = saving.deserialize_keras_object(spec)
    assert type(again) is type(layer)
    assert as_json(again.get_config()) == as_json(layer.get_config())


@pytest.mark.parametrize("obj,kind", [
    (pynn.optimizers.Adam(learning_rate=0.02, amsgrad=True, clipnorm=1.0), "optimizer"),
    (pynn.optimizers.SGD(momentum=0.9, nesterov=True), "optimizer"),
    (pynn.optimizers.RMSprop(centered=True), "optimizer"),
    (pynn.optimizers.Adagrad(initial_accumulator_value=0.2), "optimizer"),
    (pynn.optimizers.AdamW(weight_decay=0.01), "optimizer"),
    (pynn.losses.MeanSquaredError(), "loss"), (pynn.losses.MeanAbsoluteError(), "loss"),
    (pynn.losses.BinaryCrossentropy(from_logits=True), "loss"),
    (pynn.losses.CategoricalCrossentropy(), "loss"),
    (pynn.losses.SparseCategoricalCrossentropy(from_logits=True, name="xent"), "loss"),
    (pynn.metrics.BinaryAccuracy(), "metric"), (pynn.metrics.CategoricalAccuracy(), "metric"),
    (pynn.metrics.SparseCategoricalAccuracy(name="acc"), "metric"),
    (pynn.metrics.MeanAbsoluteError(), "metric"), (pynn.metrics.MeanSquaredError(), "metric"),
], ids=lambda v: type(v).__name__ if not isinstance(v, str) else v)
def test_optimizer_loss_metric_configs_round_trip(obj, kind):
    spec = json.loads(json.dumps(saving.serialize_keras_object(obj)))
    again = saving.deserialize_keras_object(spec, kind=kind)
    assert type(again) is type(obj) and again.get_config() == obj.get_config()


@pytest.mark.parametrize("name", list(BUILDERS))
def test_model_from_config_rebuilds_the_architecture(name):
    model = BUILDERS[name]()
    config = json.loads(json.dumps(model.get_config()))
    cls = pynn.Sequential if isinstance(model, pynn.Sequential) else pynn.Model
    again = cls.from_config(config)
    assert json.loads(json.dumps(again.get_config())) == config
    assert [w.shape for w in again.weights] == [w.shape for w in model.weights]
    assert again.output_shape == model.output_shape


def test_functional_config_names_each_call_of_a_shared_layer():
    config = two_in_two_out().get_config()
    shared = next(e for e in config["layers"] if e["name"] == "shared")
    assert shared["inbound_nodes"] == [[["pa", 0, 0]], [["pb", 0, 0]]]
    cat = next(e for e in config["layers"] if e["name"] == "cat")
    assert cat["inbound_nodes"] == [[["shared", 0, 0], ["shared", 1, 0], ["sum", 0, 0]]]
    assert config["input_layers"] == [["a", 0, 0], ["b", 0, 0]]
    assert config["output_layers"] == {"cls": ["cls", 0, 0], "reg": ["reg", 0, 0]}


# -- custom objects --------------------------------------------------------------------------------


class HalfMSE(pynn.losses.MeanSquaredError):
    """A user loss (a named MSE)."""


def custom_model():
    pynn.utils.set_random_seed(0)
    model = pynn.Sequential([pynn.Input((6,)), Affine(4, note="hi"), layers.Dense(2)])
    model.compile("adam", loss=HalfMSE(name="half"))
    return model


def test_custom_layer_needs_custom_objects(tmp_path):
    model = custom_model()
    model.save(tmp_path / "c.keras")
    with pytest.raises(ValueError, match="custom_objects"):
        pynn.models.load_model(tmp_path / "c.keras")
    loaded = pynn.models.load_model(tmp_path / "c.keras",
                                    custom_objects={"Affine": Affine, "HalfMSE": HalfMSE})
    x = inputs_for("mlp")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert isinstance(loaded.layers[0], Affine) and loaded.layers[0].note == "hi"
    assert isinstance(loaded._losses[0], HalfMSE) and loaded._losses[0].name == "half"


def test_custom_objects_must_be_of_the_right_kind(tmp_path):
    model = custom_model()
    model.save(tmp_path / "c.keras")
    with pytest.raises(ValueError, match="not a subclass"):
        pynn.models.load_model(tmp_path / "c.keras",
                               custom_objects={"Affine": HalfMSE, "HalfMSE": HalfMSE})
    with pytest.raises(ValueError, match="not a subclass"):
        pynn.models.load_model(tmp_path / "c.keras",
                               custom_objects={"Affine": print, "HalfMSE": HalfMSE})


def test_registered_classes_load_without_custom_objects(tmp_path):
    @saving.register_keras_serializable(package="test_saving")
    class Affine2(Affine):
        pass

    assert saving.get_registered_name(Affine2) == "test_saving>Affine2"
    pynn.utils.set_random_seed(0)
    model = pynn.Sequential([pynn.Input((6,)), Affine2(3)])
    model.save(tmp_path / "r.keras")
    loaded = pynn.models.load_model(tmp_path / "r.keras")
    assert type(loaded.layers[0]) is Affine2


# -- weights files ---------------------------------------------------------------------------------
def test_save_weights_is_readable_by_safetensors_and_loads_into_a_new_model(tmp_path):
    from safetensors.numpy import load_file, save_file

    model = two_in_two_out(seed=0)
    path = tmp_path / "m.weights.safetensors"
    model.save_weights(path)
    tensors = load_file(str(path))
    assert sorted(tensors) == sorted(w.path for w in model.weights)
    for w in model.weights:
        np.testing.assert_array_equal(tensors[w.path], w)
        assert tensors[w.path].dtype == np.float32
    other = two_in_two_out(seed=1)  # same names: by path
    other.load_weights(path)
    for a, b in zip(model.weights, other.weights):
        np.testing.assert_array_equal(a, b)
    renamed = mlp(seed=3)  # layer names differ from mlp(seed=0)'s: by order
    source = mlp(seed=0)
    source.save_weights(tmp_path / "mlp.weights.safetensors")
    renamed.load_weights(tmp_path / "mlp.weights.safetensors")
    x = inputs_for("mlp")
    np.testing.assert_array_equal(renamed.predict(x), source.predict(x))
    # a file the safetensors package wrote (its own order) loads by name
    save_file({w.path: w.numpy() * 2 for w in source.weights},
              str(tmp_path / "ext.weights.safetensors"))
    source2 = pynn.Sequential.from_config(source.get_config())
    source2.load_weights(tmp_path / "ext.weights.safetensors")
    for a, b in zip(source.weights, source2.weights):
        np.testing.assert_array_equal(a * 2, b)


def test_load_weights_from_a_keras_archive_leaves_the_optimizer_alone(tmp_path):
    model = mlp()
    compile_for(model, "mlp")
    model.fit(inputs_for("mlp"), targets_for("mlp"), verbose=0)
    model.save(tmp_path / "m.keras")
    other = mlp(seed=7)
    other.load_weights(tmp_path / "m.keras")
    for a, b in zip(model.weights, other.weights):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", ["m.h5", "m.safetensors", "m.keras.weights"])
def test_weights_suffix_is_checked(tmp_path, bad):
    with pytest.raises(ValueError, match=r"\.weights\.safetensors"):
        mlp().save_weights(tmp_path / bad)
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("bad", ["m.h5", "m.zip", "m.weights.safetensors", "m"])
def test_model_suffix_is_checked(tmp_path, bad):
    with pytest.raises(ValueError, match=r"\.keras"):
        mlp().save(tmp_path / bad)
    with pytest.raises(ValueError, match="not supported"):
        pynn.models.load_model(tmp_path / bad)


def test_load_weights_checks_every_shape_before_writing(tmp_path):
    model = mlp()
    model.save_weights(tmp_path / "m.weights.safetensors")
    wide = pynn.Sequential([pynn.Input((6,)), layers.Dense(8, activation="relu"),
                            layers.Dense(4)])
    before = wide.get_weights()
    with pytest.raises(ValueError, match="shape"):
        wide.load_weights(tmp_path / "m.weights.safetensors")
    for a, b in zip(before, wide.get_weights()):
        np.testing.assert_array_equal(a, b)
    wide.load_weights(tmp_path / "m.weights.safetensors", skip_mismatch=True)
    np.testing.assert_array_equal(wide.weights[0], model.weights[0])


# -- atomic saves ----------------------------------------------------------------------------------
@pytest.mark.parametrize("what", ["model", "weights"])
def test_interrupted_save_keeps_the_previous_file(tmp_path, monkeypatch, what):
    model = mlp()
    path = tmp_path / ("m.keras" if what == "model" else "m.weights.safetensors")
    save = model.save if what == "model" else model.save_weights
    save(path)
    before = path.read_bytes()
    model.weights[0].assign(np.zeros(model.weights[0].shape))
    calls = []
    real = saving.archive._tensor_bytes

    def failing(arr):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the write stops halfway through the weights
        return real(arr)

    monkeypatch.setattr(saving.archive, "_tensor_bytes", failing)
    with pytest.raises(KeyboardInterrupt):
        save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [path.name]  # no temporary file left behind
    monkeypatch.undo()
    reloaded = mlp(seed=9)
    reloaded.load_weights(path)
    assert np.abs(reloaded.weights[0]).sum() > 0


def test_overwrite_false_refuses_an_existing_file(tmp_path):
    model = mlp()
    model.save(tmp_path / "m.keras")
    before = (tmp_path / "m.keras").read_bytes()
    with pytest.raises(FileExistsError):
        model.save(tmp_path / "m.keras", overwrite=False)
    with pytest.raises(FileExistsError):
        (tmp_path / "m.weights.safetensors").write_bytes(b"x")
        model.save_weights(tmp_path / "m.weights.safetensors", overwrite=False)
    assert (tmp_path / "m.keras").read_bytes() == before


# -- bad files -------------------------------------------------------------------------------------
def safetensors_bytes(header: dict, data: bytes = b"", raw_header: bytes | None = None,
                      length: int | None = None) -> bytes:
    text = raw_header if raw_header is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def f32(n):
    return np.arange(n, dtype="<f4").tobytes()


def entry(shape, begin, end, dtype="F32"):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


BAD_SAFETENSORS = {
    "empty": (b"", "too short"),
    "seven_bytes": (b"\x01" * 7, "too short"),
    "header_beyond_file": (safetensors_bytes({}, length=1000), "beyond the end"),
    "header_length_huge": (safetensors_bytes({}, length=2**64 - 1), "beyond the end"),
    "header_not_json": (safetensors_bytes({}, raw_header=b"{not json"), "not valid JSON"),
    "header_not_object": (safetensors_bytes({}, raw_header=b"[1, 2]"), "start with"),
    "header_not_utf8": (safetensors_bytes({}, raw_header=b"{\xff\xfe}"), "UTF-8"),
    "nan_constant": (safetensors_bytes({}, raw_header=b'{"a": NaN}'), "not valid JSON"),
    "duplicate_key": (safetensors_bytes({}, raw_header=(
        b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
        b'"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}'), data=f32(2)),
        "appears twice"),
    "dtype_f64": (safetensors_bytes({"a": entry([1], 0, 8, "F64")}, f32(2)), "only F32"),
    "dtype_i32": (safetensors_bytes({"a": entry([2], 0, 8, "I32")}, f32(2)), "only F32"),
    "shape_vs_offsets": (safetensors_bytes({"a": entry([3], 0, 8)}, f32(2)), "needs 12 bytes"),
    "negative_dim": (safetensors_bytes({"a": entry([-2], 0, 8)}, f32(2)), "non-negative"),
    "bool_dim": (safetensors_bytes({"a": entry([True], 0, 4)}, f32(1)), "non-negative"),
    "huge_shape": (safetensors_bytes({"a": entry([2**40, 2**40], 0, 8)}, f32(2)), "needs"),
    "offsets_out_of_range": (safetensors_bytes({"a": entry([2], 4, 12)}, f32(2)), "outside"),
    "offsets_reversed": (safetensors_bytes({"a": entry([0], 8, 4)}, f32(2)), "outside"),
    "offsets_negative": (safetensors_bytes({"a": entry([1], -4, 0)}, f32(2)), "outside"),
    "overlap": (safetensors_bytes({"a": entry([2], 0, 8), "b": entry([1], 4, 8)}, f32(2)),
                "overlaps"),
    "gap": (safetensors_bytes({"a": entry([1], 4, 8)}, f32(2)), "gap"),
    "trailing_bytes": (safetensors_bytes({"a": entry([1], 0, 4)}, f32(2)), "not part of"),
    "extra_field": (safetensors_bytes({"a": {**entry([1], 0, 4), "x": 1}}, f32(1)), "exactly"),
    "entry_not_object": (safetensors_bytes({"a": [1, 2]}, f32(1)), "exactly"),
    "metadata_not_strings": (safetensors_bytes({"__metadata__": {"a": 1}}), "strings"),
}


@pytest.mark.parametrize("case", list(BAD_SAFETENSORS))
def test_bad_safetensors_files_give_clean_errors(tmp_path, case):
    data, message = BAD_SAFETENSORS[case]
    path = tmp_path / "bad.weights.safetensors"
    path.write_bytes(data)
    model = mlp()
    before = model.get_weights()
    with pytest.raises(ValueError, match=message):
        model.load_weights(path)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_weights_file_must_match_the_model(tmp_path):
    model = mlp()
    path = tmp_path / "m.weights.safetensors"
    good = {w.path: w.numpy() for w in model.weights}
    for tensors, message in [
        ({k: v for k, v in list(good.items())[:-1]}, "no weight"),
        ({**good, model.weights[0].path: np.zeros((5, 8), np.float32)}, "shape"),
    ]:
        with open(path, "wb") as f:
            saving.write_safetensors(f, tensors)
        with pytest.raises(ValueError, match=message):
            model.load_weights(path)


def save_archive(path, config=None, weights=None, extra=None, drop=()):
    """Writes a .keras zip with the given (possibly broken) members."""
    with zipfile.ZipFile(path, "w") as zf:
        if config is not None and "config.json" not in drop:
            zf.writestr("config.json", config if isinstance(config, (bytes, str))
                        else json.dumps(config))
        if weights is not None and "model.safetensors" not in drop:
            zf.writestr("model.safetensors", weights)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)


def good_parts(tmp_path, compiled=True):
    model = mlp()
    if compiled:
        compile_for(model, "mlp")
        model.fit(inputs_for("mlp"), targets_for("mlp"), epochs=1, verbose=0)
    model.save(tmp_path / "good.keras")
    with zipfile.ZipFile(tmp_path / "good.keras") as zf:
        return json.loads(zf.read("config.json")), zf.read("model.safetensors")


def mutate(config, *keys, value):
    """A deep copy of config with config[k0][k1]... = value (value None deletes)."""
    config = json.loads(json.dumps(config))
    node = config
    for k in keys[:-1]:
        node = node[k]
    if value is None:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return config


def bad_archives(tmp_path):
    config, weights = good_parts(tmp_path)
    tensors, meta = saving.read_safetensors(weights)
    oversized = mutate(config, "config", "layers", 1, "config", "units", value=10**9)
    bias = next(k for k in tensors if k.endswith("/bias") and not k.startswith("optimizer/"))
    wrong_shape = {**tensors, bias: np.zeros(7, np.float32)}
    wrong_slot = {**tensors, f"optimizer/momentum/{bias}": np.zeros(3, np.float32)}
    no_slot = {k: v for k, v in tensors.items() if k != f"optimizer/velocity/{bias}"}

    def st(t, m=meta):
        buf = io.BytesIO()
        saving.write_safetensors(buf, t, m)
        return buf.getvalue()

    return {
        "not_a_zip": (b"PK\x03\x04 definitely not a zip" * 3, None, "not a valid .keras"),
        "random_bytes": (bytes(rng().integers(0, 256, 500, dtype=np.uint8)), None,
                         "not a valid .keras"),
        "truncated_zip": ((tmp_path / "good.keras").read_bytes()[:700], None,
                          "not a valid .keras"),
        "no_config": (None, dict(config=config, weights=weights, drop=("config.json",)),
                      "no config.json"),
        "no_weights": (None, dict(config=config, weights=weights, drop=("model.safetensors",)),
                       "no model.safetensors"),
        "config_not_object": (None, dict(config="[1, 2, 3]", weights=weights),
                              "not a JSON object"),
        "config_not_json": (None, dict(config="{'a': 1", weights=weights), "not valid JSON"),
        "config_not_utf8": (None, dict(config=b"\xff\xfe{}", weights=weights), "UTF-8"),
        "unknown_class": (None, dict(config=mutate(config, "config", "layers", 1, "class_name",
                                                   value="os.system"), weights=weights),
                          "Could not locate layer class 'os.system'"),
        "unknown_model_class": (None, dict(config=mutate(config, "class_name",
                                                         value="__import__"), weights=weights),
                                "unknown model class"),
        "missing_layers_key": (None, dict(config=mutate(config, "config", "layers", value=None),
                                          weights=weights), "layers must be a list"),
        "missing_model_config": (None, dict(config=mutate(config, "config", value=None),
                                            weights=weights), "must be a dict"),
        "layer_config_not_dict": (None, dict(config=mutate(config, "config", "layers", 1,
                                                           "config", value=[1]),
                                             weights=weights), "must be a dict"),
        "bad_layer_argument": (None, dict(config=mutate(config, "config", "layers", 1, "config",
                                                        "units", value=-3), weights=weights),
                               "Could not deserialize layer"),
        "unexpected_layer_argument": (None, dict(config=mutate(
            config, "config", "layers", 1, "config", "evil", value="x"), weights=weights),
            "Could not deserialize layer"),
        "oversized_layer": (None, dict(config=oversized, weights=weights),
                            "more than the weights file holds"),
        "bad_optimizer": (None, dict(config=mutate(config, "compile_config", "optimizer",
                                                   "config", "learning_rate", value=-1.0),
                                     weights=weights), "optimizer"),
        "newer_format": (None, dict(config=mutate(config, "format_version", value=99),
                                    weights=weights), "format version 99"),
        "weights_garbage": (None, dict(config=config, weights=b"\x00" * 3), "too short"),
        "weights_truncated": (None, dict(config=config, weights=weights[:-10]),
                              "not part of any tensor|outside|beyond"),
        "weight_wrong_shape": (None, dict(config=config, weights=st(wrong_shape)), "shape"),
        "weight_missing": (None, dict(config=config, weights=st(
            {k: v for k, v in tensors.items() if k != bias})), f"no weight '{bias}'"),
        "weight_unexpected": (None, dict(config=config, weights=st({**tensors, "x/y": np.zeros(
            1, np.float32)})), "weight 'x/y'"),
        "slot_wrong_shape": (None, dict(config=config, weights=st(wrong_slot)), "shape"),
        "slot_missing": (None, dict(config=config, weights=st(no_slot)), "missing"),
        "bad_iterations": (None, dict(config=config, weights=st(
            tensors, {**meta, "optimizer.iterations": "-1"})), "not a count"),
    }


def test_bad_archives_give_clean_errors(tmp_path):
    for case, (raw, parts, message) in bad_archives(tmp_path).items():
        path = tmp_path / f"{case}.keras"
        if raw is not None:
            path.write_bytes(raw)
        else:
            save_archive(path, **parts)
        with pytest.raises((ValueError, OSError), match=message):
            pynn.models.load_model(path)
            pytest.fail(f"case {case} loaded")


def test_corrupted_member_bytes_are_caught_by_the_crc(tmp_path):
    good_parts(tmp_path)
    data = bytearray((tmp_path / "good.keras").read_bytes())
    with zipfile.ZipFile(tmp_path / "good.keras") as zf:
        info = zf.getinfo("model.safetensors")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    data[start] ^= 0xFF
    (tmp_path / "flipped.keras").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupted"):
        pynn.models.load_model(tmp_path / "flipped.keras")


def test_a_member_claiming_more_bytes_than_it_can_hold_is_refused(tmp_path):
    config, weights = good_parts(tmp_path)
    save_archive(tmp_path / "big.keras", config=config, weights=weights)
    data = bytearray((tmp_path / "big.keras").read_bytes())
    with zipfile.ZipFile(tmp_path / "big.keras") as zf:
        info = zf.getinfo("model.safetensors")
    # the uncompressed size (offset 24) in the member's central directory record
    record = bytes(data).index(b"PK\x01\x02")
    while bytes(data[record + 46:record + 46 + len(info.filename)]) != b"model.safetensors":
        record = bytes(data).index(b"PK\x01\x02", record + 1)
    data[record + 24:record + 28] = struct.pack("<I", 2**32 - 2)
    (tmp_path / "big.keras").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="claims"):
        pynn.models.load_model(tmp_path / "big.keras")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        pynn.models.load_model(tmp_path / "none.keras")
    (tmp_path / "dir.keras").mkdir()
    with pytest.raises(OSError):
        pynn.models.load_model(tmp_path / "dir.keras")
    with pytest.raises(FileNotFoundError):
        mlp().load_weights(tmp_path / "none.weights.safetensors")


def test_fuzzed_safetensors_headers_never_crash():
    buf = io.BytesIO()
    model = mlp()
    saving.write_safetensors(buf, {w.path: w for w in model.weights}, {"format": "pynn"})
    good = buf.getvalue()
    (n,) = struct.unpack_from("<Q", good)
    r = rng(42)
    for _ in range(300):
        data = bytearray(good)
        for _ in range(int(r.integers(1, 4))):
            data[int(r.integers(0, 8 + n))] = int(r.integers(0, 256))
        try:
            tensors, _ = saving.read_safetensors(bytes(data))
        except ValueError:
            continue
        for t in tensors.values():  # whatever parsed is in range
            assert t.dtype == np.float32 and t.nbytes <= len(data)


def test_loading_never_unpickles_or_imports(tmp_path, monkeypatch):
    import builtins
    import pickle

    config, weights = good_parts(tmp_path)
    config = mutate(config, "config", "layers", 1, "module", value="os")
    config = mutate(config, "config", "layers", 1, "class_name", value="system")
    save_archive(tmp_path / "evil.keras", config=config, weights=weights)

    def refuse(*args, **kwargs):
        raise AssertionError("loading must not unpickle or import")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: refuse() if name in (
        "os.system", "system") else real_import(name, *a, **k))
    with pytest.raises(ValueError, match="Could not locate layer class 'system'"):
        pynn.models.load_model(tmp_path / "evil.keras")
