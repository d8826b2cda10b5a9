"""Keras 3's own files (issue 20): `.keras` archives and `.weights.h5` files that Keras 3 wrote
(tests/keras_reference/keras_files/, made by keras_files.py beside them) load in pynn and predict
as Keras did; compiled, the optimizer's state (Adam's slots, the step count) is Keras's, so one
more training step matches Keras's; classes that are neither Keras's built-ins that pynn has nor
registered are refused by name."""

import io
import json
import os
import zipfile

import numpy as np
import pytest

import pynn

h5py = pytest.importorskip("h5py")

FOLDER = os.path.join(os.path.dirname(__file__), "keras_reference", "keras_files")
MODELS = ["mlp", "cnn", "text", "two", "wrappers"]


def _reference(name):
    data = np.load(os.path.join(FOLDER, f"{name}.npz"))

    def pick(prefix):
        values = [data[f"{prefix}{i}"] for i in range(10) if f"{prefix}{i}" in data]
        return values if len(values) > 1 else values[0]
    return {k: pick(k) for k in ("x", "y", "tx", "ty", "z")}


def _close(got, want, tol=1e-5):
    got = got if isinstance(got, list) else [got]
    want = want if isinstance(want, list) else [want]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g).reshape(w.shape), w, atol=tol, rtol=tol)


@pytest.mark.parametrize("name", MODELS)
def test_a_keras_archive_loads_and_predicts_as_keras(name):
    ref = _reference(name)
    model = pynn.saving.load_model(os.path.join(FOLDER, f"{name}.keras"))
    _close(model.predict(ref["x"], verbose=0), ref["y"])


@pytest.mark.parametrize("name", MODELS)
def test_training_goes_on_from_keras_optimizer_state(name):
    ref = _reference(name)
    model = pynn.saving.load_model(os.path.join(FOLDER, f"{name}.keras"))
    assert model.optimizer.iterations == 2  # 16 samples, batches of 8
    model.train_on_batch(ref["tx"], ref["ty"])
    _close(model.predict(ref["x"], verbose=0), ref["z"], tol=5e-5)  # a fresh Adam: >3e-4


def test_the_optimizer_slots_are_keras_ones():
    model = pynn.saving.load_model(os.path.join(FOLDER, "mlp.keras"))
    slots = pynn.saving._optimizer_slots(model)
    with zipfile.ZipFile(os.path.join(FOLDER, "mlp.keras")) as zf:
        f = h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r")
        kernel = model.layers[0].kernel.path
        np.testing.assert_array_equal(slots[f"optimizer/momentum/{kernel}"],
                                      f["optimizer/vars/2"][()])
        np.testing.assert_array_equal(slots[f"optimizer/velocity/{kernel}"],
                                      f["optimizer/vars/3"][()])


def test_compile_false_loads_an_uncompiled_model():
    model = pynn.saving.load_model(os.path.join(FOLDER, "two.keras"), compile=False)
    assert not model._compiled
    ref = _reference("two")
    _close(model.predict(ref["x"], verbose=0), ref["y"])


def _edited(tmp_path, name, edit, moves=()):
    """A copy of a Keras archive with its config.json edited by `edit`, and groups of its
    model.weights.h5 moved ((old path, new path) pairs)."""
    with zipfile.ZipFile(os.path.join(FOLDER, f"{name}.keras")) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(members["config.json"])
    edit(config)
    members["config.json"] = json.dumps(config).encode()
    if moves:
        buffer = io.BytesIO(members["model.weights.h5"])
        with h5py.File(buffer, "r+") as f:
            for old, new in moves:
                f.move(old, new)
        members["model.weights.h5"] = buffer.getvalue()
    path = str(tmp_path / f"{name}.keras")
    with zipfile.ZipFile(path, "w") as zf:
        for n, raw in members.items():
            zf.writestr(n, raw)
    return path


def test_an_unknown_class_is_refused_by_name(tmp_path):
    def edit(config):
        config["config"]["layers"][1]["class_name"] = "NoSuchLayer"
    with pytest.raises(ValueError, match="NoSuchLayer"):
        pynn.saving.load_model(_edited(tmp_path, "mlp", edit))


@pytest.mark.parametrize("safe_mode", [True, False])
def test_a_class_from_another_module_is_refused(tmp_path, safe_mode):
    def edit(config):
        config["config"]["layers"][1]["module"] = "os"
        config["config"]["layers"][1]["class_name"] = "system"
    with pytest.raises(ValueError, match="system.*'os'"):
        pynn.saving.load_model(_edited(tmp_path, "mlp", edit), safe_mode=safe_mode)


def test_a_registered_class_from_another_module_loads(tmp_path):
    @pynn.saving.register_keras_serializable(package="kf_test")
    class ScaledDense(pynn.layers.Dense):
        pass

    def edit(config):
        layer = config["config"]["layers"][1]
        layer.update(module="my_project.layers", class_name="ScaledDense",
                     registered_name="kf_test>ScaledDense")
    # Keras names a layer's weights group after its class and that class's count: the
    # first layer's is 'scaled_dense', the second Dense becomes the first 'dense'
    moves = [("layers/dense", "layers/scaled_dense"), ("layers/dense_1", "layers/dense")]
    model = pynn.saving.load_model(_edited(tmp_path, "mlp", edit, moves), compile=False)
    assert type(model.layers[0]) is ScaledDense
    ref = _reference("mlp")
    _close(model.predict(ref["x"], verbose=0), ref["y"])


def test_a_dataset_of_the_wrong_shape_is_refused_before_reading(tmp_path):
    with zipfile.ZipFile(os.path.join(FOLDER, "mlp.keras")) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    buffer = io.BytesIO(members["model.weights.h5"])
    with h5py.File(buffer, "r+") as f:
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = np.zeros((7, 8), np.float32)
    members["model.weights.h5"] = buffer.getvalue()
    path = str(tmp_path / "bad.keras")
    with zipfile.ZipFile(path, "w") as zf:
        for n, raw in members.items():
            zf.writestr(n, raw)
    with pytest.raises(ValueError, match=r"\(7, 8\).*\(6, 8\)"):
        pynn.saving.load_model(path)


def test_pynn_archives_still_load(tmp_path):
    model = pynn.Sequential([pynn.Input((3,)), pynn.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    path = str(tmp_path / "own.keras")
    model.save(path)
    with zipfile.ZipFile(path) as zf:
        assert "model.safetensors" in zf.namelist()
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(pynn.saving.load_model(path).predict(x, verbose=0),
                                  model.predict(x, verbose=0))


# -- .weights.h5 ---------------------------------------------------------------------------------
def _layout(path):
    """{object path: (shape, layer name)} of a Keras weights file (the names of the optimizer,
    which Keras numbers per process, and of the objects inside a layer left out)."""
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(
            n, (getattr(o, "shape", None),
                None if n.startswith("optimizer") or n.count("/") > 2
                else o.attrs.get("name"))))
    return out


@pytest.mark.parametrize("name", MODELS)
def test_load_weights_reads_a_keras_weights_file(name):
    ref = _reference(name)
    model = pynn.saving.load_model(os.path.join(FOLDER, f"{name}.keras"), compile=False)
    for w in model.weights:
        w.assign(np.zeros(w.shape, np.float32))
    model.load_weights(os.path.join(FOLDER, f"{name}.weights.h5"))
    _close(model.predict(ref["x"], verbose=0), ref["y"])


@pytest.mark.parametrize("name", MODELS)
def test_save_weights_writes_keras_layout(tmp_path, name):
    model = pynn.saving.load_model(os.path.join(FOLDER, f"{name}.keras"))
    path = str(tmp_path / f"{name}.weights.h5")
    model.save_weights(path)
    assert _layout(path) == _layout(os.path.join(FOLDER, f"{name}.weights.h5"))
    # and back, the optimizer's state with the weights: training goes on as Keras's
    ref = _reference(name)
    other = pynn.saving.load_model(os.path.join(FOLDER, f"{name}.keras"))
    for w in other.weights:
        w.assign(np.zeros(w.shape, np.float32))
    other.load_weights(path)
    other.train_on_batch(ref["tx"], ref["ty"])
    _close(other.predict(ref["x"], verbose=0), ref["z"], tol=5e-5)


def test_load_weights_refuses_a_keras_file_of_another_model(tmp_path):
    model = pynn.Sequential([pynn.Input((6,)), pynn.layers.Dense(5), pynn.layers.Dense(3)])
    with pytest.raises(ValueError, match=r"\(6, 8\)|holds"):
        model.load_weights(os.path.join(FOLDER, "mlp.weights.h5"))


def test_a_pynn_model_round_trips_through_weights_h5(tmp_path):
    def make():
        return pynn.Sequential([pynn.Input((4,)), pynn.layers.Dense(3, activation="relu"),
                                pynn.layers.BatchNormalization(), pynn.layers.Dense(2)])
    model, other = make(), make()
    path = str(tmp_path / "m.weights.h5")
    model.save_weights(path)
    other.load_weights(path)
    x = np.random.RandomState(0).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))


# -- model.save(..., keras_format=True) ------------------------------------------------------
def _objects(config, at="", out=None):
    """{position: (module, class_name)} of every object in a config."""
    out = {} if out is None else out
    if isinstance(config, dict):
        if "class_name" in config and "module" in config:
            out[at] = (config["module"], config["class_name"])
        for k, v in config.items():
            _objects(v, f"{at}.{k}", out)
    elif isinstance(config, list):
        for i, v in enumerate(config):
            _objects(v, f"{at}[{i}]", out)
    return out


def _members(path):
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


@pytest.mark.parametrize("name", MODELS)
def test_keras_format_archive_matches_keras_layout(tmp_path, name):
    model = pynn.saving.load_model(os.path.join(FOLDER, f"{name}.keras"))
    path = str(tmp_path / f"{name}.keras")
    model.save(path, keras_format=True)
    ours, theirs = _members(path), _members(os.path.join(FOLDER, f"{name}.keras"))
    assert sorted(ours) == sorted(theirs) == ["config.json", "metadata.json", "model.weights.h5"]
    for members in (ours, theirs):
        with open(tmp_path / f"{id(members)}.h5", "wb") as f:
            f.write(members["model.weights.h5"])
    assert _layout(tmp_path / f"{id(ours)}.h5") == _layout(tmp_path / f"{id(theirs)}.h5")
    a = _objects(json.loads(ours["config.json"]))
    b = _objects(json.loads(theirs["config.json"]))
    # Keras writes a loss compiled by name as its name ("mse"); the layers of a functional
    # model may come in another order (pynn lists the inputs first)
    a = {k: v for k, v in a.items() if not k.startswith(".compile_config.loss")}
    assert sorted(a.values()) == sorted(b.values())
    assert a[""] == b[""] and a[".compile_config.optimizer"] == ("keras.optimizers", "Adam")
    # and pynn reads it back, optimizer state included
    ref = _reference(name)
    again = pynn.saving.load_model(path)
    _close(again.predict(ref["x"], verbose=0), ref["y"])
    again.train_on_batch(ref["tx"], ref["ty"])
    _close(again.predict(ref["x"], verbose=0), ref["z"], tol=5e-5)


def test_a_pynn_model_in_keras_format_round_trips(tmp_path):
    pynn.utils.set_random_seed(3)
    a = pynn.Input((5,), name="a")
    b = pynn.Input((3,), name="b")
    h = pynn.layers.Concatenate()([pynn.layers.Dense(4, activation="tanh")(a), b])
    out = pynn.layers.Dense(2, activation="softmax")(pynn.layers.BatchNormalization()(h))
    model = pynn.Model([a, b], out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rng = np.random.RandomState(0)
    x = [rng.normal(size=(8, 5)).astype(np.float32), rng.normal(size=(8, 3)).astype(np.float32)]
    y = rng.randint(0, 2, 8).astype(np.int32)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path, keras_format=True)
    again = pynn.saving.load_model(path)
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    assert again.optimizer.iterations == model.optimizer.iterations == 2
    model.train_on_batch(x, y)
    again.train_on_batch(x, y)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)


@pytest.mark.skipif(not os.environ.get("PYNN_KERAS_PYTHON"),
                    reason="set PYNN_KERAS_PYTHON to a Python with keras and jax")
def test_keras_loads_what_pynn_writes(tmp_path):
    import subprocess

    for name in MODELS:
        model = pynn.saving.load_model(os.path.join(FOLDER, f"{name}.keras"))
        model.save(str(tmp_path / f"{name}.keras"), keras_format=True)
    script = os.path.join(os.path.dirname(FOLDER), "keras_files.py")
    done = subprocess.run([os.environ["PYNN_KERAS_PYTHON"], script, "--check", str(tmp_path),
                           FOLDER], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "KERAS_BACKEND": "jax"})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for name in MODELS:
        r = result[name]
        assert r["before"] <= 1e-5 and r["after"] <= 5e-5, (name, r)
        assert r["iterations"] == 3 and not r["warnings"], (name, r)


def _branches():
    """Two inputs, one branch deeper than the other: Keras 3 lists the layers (and so names
    their groups in a weights file) by depth, not in pynn's order."""
    layers = pynn.layers
    a, b = pynn.Input((5,), name="a"), pynn.Input((3,), name="b")
    ha = layers.Dense(4, name="da")(a)
    hb = layers.Dense(6, name="db2")(layers.Dense(7, name="db1")(b))
    out = layers.Dense(2, name="out")(layers.Concatenate(name="concatenate")([ha, hb]))
    return pynn.Model([a, b], out)


def test_layers_are_named_in_keras_order():
    from pynn.saving.keras_format import keras_layers

    # as keras.Model([a, b], out).layers lists them in Keras 3.15.1
    assert [layer.name for layer in keras_layers(_branches())] == \
        ["b", "a", "db1", "da", "db2", "concatenate", "out"]
    model = pynn.saving.load_model(os.path.join(FOLDER, "two.keras"))
    with zipfile.ZipFile(os.path.join(FOLDER, "two.keras")) as zf:
        config = json.loads(zf.read("config.json"))
    assert [layer.name for layer in keras_layers(model)] == \
        [layer["name"] for layer in config["config"]["layers"]]


def test_a_branching_model_round_trips_in_keras_format(tmp_path):
    model = _branches()
    model.compile(optimizer="adam", loss="mse")
    x = [np.ones((2, 5), np.float32), np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3)]
    y = np.zeros((2, 2), np.float32)
    model.fit(x, y, verbose=0)
    path = str(tmp_path / "branch.keras")
    model.save(path, keras_format=True)
    again = pynn.saving.load_model(path)
    model.train_on_batch(x, y + 1)
    again.train_on_batch(x, y + 1)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)


OPTIMIZERS = {
    "sgd": lambda o: o.SGD(0.01), "sgd_momentum": lambda o: o.SGD(0.01, momentum=0.9),
    "rmsprop": lambda o: o.RMSprop(0.01),
    "rmsprop_centered": lambda o: o.RMSprop(0.01, momentum=0.5, centered=True),
    "adagrad": lambda o: o.Adagrad(0.01), "adam_amsgrad": lambda o: o.Adam(0.01, amsgrad=True),
    "adamw": lambda o: o.AdamW(0.01), "adamax": lambda o: o.Adamax(0.01),
    "nadam": lambda o: o.Nadam(0.01), "adadelta": lambda o: o.Adadelta(1.0),
    "ftrl": lambda o: o.Ftrl(0.01), "lion": lambda o: o.Lion(0.001)}


def _trained_with(name, x, y):
    pynn.utils.set_random_seed(0)
    model = pynn.Sequential([pynn.Input((4,)), pynn.layers.Dense(3, activation="tanh"),
                             pynn.layers.Dense(2)])
    model.compile(OPTIMIZERS[name](pynn.optimizers), "mse")
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    return model


def _data():
    rng = np.random.RandomState(0)
    return rng.normal(size=(8, 4)).astype(np.float32), rng.normal(size=(8, 2)).astype(np.float32)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_state_round_trips_in_keras_format(tmp_path, name):
    x, y = _data()
    model = _trained_with(name, x, y)
    path = str(tmp_path / f"{name}.keras")
    model.save(path, keras_format=True)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a layout pynn cannot restore warns
        again = pynn.saving.load_model(path)
    model.train_on_batch(x, y)
    again.train_on_batch(x, y)
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.skipif(not os.environ.get("PYNN_KERAS_PYTHON"),
                    reason="set PYNN_KERAS_PYTHON to a Python with keras and jax")
def test_keras_goes_on_from_every_optimizer_state_pynn_writes(tmp_path):
    import subprocess

    x, y = _data()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    for name in OPTIMIZERS:
        model = _trained_with(name, x, y)
        model.save(str(tmp_path / f"{name}.keras"), keras_format=True)
        model.train_on_batch(x, y)
        np.save(tmp_path / f"{name}.npy", model.predict(x, verbose=0))
    script = os.path.join(os.path.dirname(FOLDER), "keras_files.py")
    done = subprocess.run([os.environ["PYNN_KERAS_PYTHON"], script, "--check-steps",
                           str(tmp_path)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "KERAS_BACKEND": "jax"})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(result) == sorted(OPTIMIZERS)
    for name, r in result.items():
        assert r["after"] <= 1e-5 and not r["warnings"], (name, r)


@pytest.mark.parametrize("safe_mode", [True, False])
def test_a_lambda_with_code_is_refused(tmp_path, safe_mode):
    def edit(config):
        config["config"]["layers"].insert(2, {
            "module": "keras.layers", "class_name": "Lambda", "registered_name": None,
            "config": {"name": "evil", "trainable": True, "dtype": "float32",
                       "function": {"class_name": "__lambda__",
                                    "config": {"code": "4wEAAAAAAAAA", "defaults": None,
                                               "closure": None}},
                       "arguments": {}}})
    with pytest.raises(ValueError, match="code"):
        pynn.saving.load_model(_edited(tmp_path, "mlp", edit), safe_mode=safe_mode)
