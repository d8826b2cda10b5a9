"""Corrupted files: a mutated .keras archive or .weights.safetensors file loads, or raises the
documented ValueError / OSError; it never crashes, hangs or allocates without bound.

The cases run in a child process under an address-space limit (RLIMIT_AS), one case after
another; the child writes the index of the case it is on before starting it, so a crash names
its case. A few hundred cases run in the normal suite; `PYNN_FUZZ_LONG=1` runs 10,000 of each
kind (`PYNN_FUZZ_CASES=N` sets the count).

Mutations: byte flips, truncations, insertions, duplicated ranges and overwrites with
interesting integers (0, -1, 2**31, 2**63, ...), applied to the zip itself, to model.safetensors
re-zipped, to config.json re-zipped, and structured: a random value of config.json or of the
safetensors header replaced by another (a huge number, a negative one, a string, null, a list).
The same for archives and `.weights.h5` files in Keras 3's layout (issue 20), whose HDF5 weights
are also mutated through h5py (a dataset of another shape, up to a huge one, or dtype, a group
in its place, a deleted one, a changed layer name).
"""

import copy
import io
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
import zipfile

import numpy as np
import pytest

LONG = os.environ.get("PYNN_FUZZ_LONG") == "1"
CASES = int(os.environ.get("PYNN_FUZZ_CASES", 10_000 if LONG else 300))
AS_LIMIT = 3 << 30          # bytes of address space the child may map
CASE_SECONDS = 5.0          # a case slower than this counts as a hang
ALLOWED = (ValueError, OSError)   # what load_model / load_weights document for a bad file

INTERESTING = [0, 1, -1, 2**31 - 1, 2**31, 2**32, 2**32 - 1, 2**63 - 1, 2**64 - 1, 2**53 + 1,
               2**40, 255, 65535, -2**31]
VALUES = [0, -1, 1, 2**31, 2**63, 2**64, 10**30, 1e308, -0.0, 0.5, float("nan"), "", "x" * 40,
          "relu", "F32", "F64", "I64", None, True, False, [], [0], [2**40, 2**40], [-1, 3], {},
          {"a": 1}, [[1]], "Dense", "float32"]


# -- mutations -----------------------------------------------------------------------------------
def mutate_bytes(data: bytes, rnd: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rnd.choice((1, 1, 1, 2, 3, 8))):
        n = len(b)
        op = rnd.randrange(7)
        if n == 0:
            b += bytes([rnd.randrange(256)])
            continue
        i = rnd.randrange(n)
        if op == 0:
            b[i] ^= 1 << rnd.randrange(8)
        elif op == 1:
            b[i] = rnd.randrange(256)
        elif op == 2:
            del b[rnd.randrange(n):]
        elif op == 3:
            b[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.choice((1, 2, 4, 8, 100))))
        elif op == 4:
            j = min(n, i + rnd.choice((1, 4, 16, 256, 4096)))
            b[i:i] = b[i:j]
        elif op == 5:
            j = min(n, i + rnd.choice((1, 8, 64)))
            del b[i:j]
        else:
            v = rnd.choice(INTERESTING)
            fmt = rnd.choice(("<i", "<I", "<q", "<Q", "<h", "<H"))
            try:
                raw = struct.pack(fmt, v)
            except struct.error:
                raw = struct.pack(fmt[0] + fmt[1].lower(), 0)
            b[i:i + len(raw)] = raw
    return bytes(b)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for k, v in enumerate(obj):
            yield from _paths(v, prefix + (k,))


def mutate_json(obj, rnd: random.Random):
    obj = json.loads(json.dumps(obj))
    paths = [p for p in _paths(obj) if p]
    for _ in range(rnd.choice((1, 1, 2))):
        path = rnd.choice(paths)
        parent = obj
        for k in path[:-1]:
            parent = parent[k]
        value = copy.deepcopy(rnd.choice(VALUES))
        if isinstance(parent, dict) and rnd.random() < 0.15:
            parent.pop(path[-1], None)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) \
                and isinstance(parent[path[-1]], int) and rnd.random() < 0.5:
            parent[path[-1]] = parent[path[-1]] + rnd.choice((-1, 1, 7, 2**31, -2**31))
        else:
            parent[path[-1]] = value
        paths = [p for p in _paths(obj) if p]
        if not paths:
            break
    return obj


def split_safetensors(data: bytes):
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def join_safetensors(header, body: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


def rezip(members: dict, rnd: random.Random) -> bytes:
    f = io.BytesIO()
    kind = rnd.choice((zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED))
    with zipfile.ZipFile(f, "w", kind) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return f.getvalue()


def mutate_h5(data: bytes, rnd: random.Random) -> bytes:
    """An HDF5 file (Keras's weights) with one dataset replaced, through h5py: another shape
    (up to a huge one, stored sparse), another dtype (int, float64, strings), a group in its
    place, or deleted; or a group's `name` attribute changed."""
    import h5py

    buffer = io.BytesIO(data)
    with h5py.File(buffer, "r+") as f:
        datasets = []
        f.visititems(lambda n, o: datasets.append(n) if isinstance(o, h5py.Dataset) else None)
        name = rnd.choice(datasets)
        old = f[name]
        shape, dtype = old.shape, old.dtype
        del f[name]
        how = rnd.randrange(6)
        if how == 0:
            new = tuple(rnd.choice([0, 1, 7, 2**31, 2**40]) for _ in range(rnd.randrange(4)))
            try:
                f.create_dataset(name, shape=new, dtype="f4",
                                 chunks=True if new and rnd.random() < 0.5 else None)
            except ValueError:  # more than HDF5 can address
                f.create_dataset(name, shape=(2**31, 7), dtype="f4", chunks=True)
        elif how == 1:
            f.create_dataset(name, data=np.zeros(shape, rnd.choice(["i8", "f8", "u1", "f2"])))
        elif how == 2:
            f.create_dataset(name, data=np.array(["x" * 5] * max(1, int(np.prod(shape[:1]))),
                                                 dtype="S5"))
        elif how == 3:
            f.create_group(name)
        elif how == 4:
            group = f[name.rsplit("/", 1)[0]] if "/" in name else f
            group.attrs["name"] = rnd.choice(["dense", "", "x" * 300, "lstm_cell"])
            f.create_dataset(name, shape=shape, dtype=dtype)
        # how == 5: deleted
    return buffer.getvalue()


def make_case(kind: str, original: bytes, members: dict, rnd: random.Random) -> bytes:
    """The bytes of one mutated file of `kind` from the original file (and its members)."""
    if kind == "weights_h5":          # a .weights.h5 file in Keras's layout
        return mutate_h5(original, rnd) if rnd.random() < 0.4 else mutate_bytes(original, rnd)
    if kind == "keras_h5":            # an archive in Keras's layout (model.weights.h5)
        where = rnd.randrange(5)
        if where == 0:
            return mutate_bytes(original, rnd)
        members = dict(members)
        if where == 1:
            members["model.weights.h5"] = mutate_bytes(members["model.weights.h5"], rnd)
        elif where == 2:
            members["model.weights.h5"] = mutate_h5(members["model.weights.h5"], rnd)
        elif where == 3:
            members["config.json"] = mutate_bytes(members["config.json"], rnd)
        else:
            members["config.json"] = json.dumps(
                mutate_json(json.loads(members["config.json"]), rnd)).encode()
        return rezip(members, rnd)
    if kind == "weights":             # a .weights.safetensors file
        if rnd.random() < 0.3:
            header, body = split_safetensors(original)
            return join_safetensors(mutate_json(header, rnd), body)
        return mutate_bytes(original, rnd)
    where = rnd.randrange(5)
    if where == 0:
        return mutate_bytes(original, rnd)
    members = dict(members)
    if where == 1:
        members["model.safetensors"] = mutate_bytes(members["model.safetensors"], rnd)
    elif where == 2:
        members["config.json"] = mutate_bytes(members["config.json"], rnd)
    elif where == 3:
        members["config.json"] = json.dumps(
            mutate_json(json.loads(members["config.json"]), rnd)).encode()
    else:
        header, body = split_safetensors(members["model.safetensors"])
        members["model.safetensors"] = join_safetensors(mutate_json(header, rnd), body)
    return rezip(members, rnd)


# -- the child -----------------------------------------------------------------------------------
def build_model(path: str, weights_path: str):
    import pynn
    from pynn import layers

    pynn.utils.set_random_seed(1)
    model = pynn.Sequential([pynn.Input(shape=(4,)), layers.Dense(5, activation="relu"),
                             layers.Dropout(0.1), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x = np.random.default_rng(0).random((16, 4)).astype(np.float32)
    model.fit(x, np.arange(16) % 3, epochs=1, batch_size=8, verbose=0)
    model.save(path)
    model.save_weights(weights_path)
    return model, x


def build_functional(path: str):
    """A two-input functional model with convolution, normalization, embedding and merging
    layers, compiled with SGD (momentum) and two metrics: a config with more to corrupt."""
    import pynn
    from pynn import layers

    pynn.utils.set_random_seed(2)
    image = pynn.Input(shape=(6, 6, 2), name="image")
    tokens = pynn.Input(shape=(5,), dtype="int32", name="tokens")
    h = layers.Conv2D(3, 3, padding="same", activation="relu")(image)
    h = layers.BatchNormalization()(h)
    h = layers.Flatten()(layers.MaxPooling2D(2)(h))
    e = layers.Flatten()(layers.Embedding(10, 4)(tokens))
    out = layers.Dense(3, activation="softmax")(layers.Concatenate()([h, layers.Dense(6)(e)]))
    model = pynn.Model([image, tokens], out)
    model.compile(optimizer=pynn.optimizers.SGD(0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(1)
    x = [rng.random((8, 6, 6, 2)).astype(np.float32), rng.integers(0, 10, (8, 5))]
    model.fit(x, np.arange(8) % 3, epochs=1, batch_size=4, verbose=0)
    model.save(path)
    return model, x


def child(kind: str, seed: int, cases: int, workdir: str) -> None:
    """Runs `cases` mutated loads; prints one JSON line of results. Writes the case index it is
    on to workdir/progress first, so a crash can be traced to its case."""
    import resource

    if "libasan" not in os.environ.get("LD_PRELOAD", ""):  # ASan reserves terabytes of shadow
        resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))  # address space up front
    import pynn

    model_path = os.path.join(workdir, "orig.keras")
    suffix = ".weights.h5" if kind == "weights_h5" else ".weights.safetensors"
    weights_path = os.path.join(workdir, "orig" + suffix)
    if kind in ("functional", "keras_h5"):
        model, x = build_functional(model_path)
        if kind == "keras_h5":  # in Keras's layout, the optimizer's state included
            model.save(model_path, keras_format=True)
    else:
        model, x = build_model(model_path, weights_path)
    weights_only = kind.startswith("weights")
    with open(weights_path if weights_only else model_path, "rb") as f:
        original = f.read()
    members = {}
    if not weights_only:
        with zipfile.ZipFile(model_path) as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
    target = os.path.join(workdir, "case" + (suffix if weights_only else ".keras"))
    progress = os.path.join(workdir, "progress")
    reference = model.get_weights()
    stats = {"cases": 0, "loaded": 0, "rejected": 0, "failures": [], "slowest": 0.0}
    rnd = random.Random(seed)
    for i in range(cases):
        data = make_case(kind, original, members, rnd)
        with open(progress, "w") as f:
            f.write(str(i))
        with open(target, "wb") as f:
            f.write(data)
        t = time.perf_counter()
        try:
            if not weights_only:
                loaded = pynn.models.load_model(target)
            else:
                model.load_weights(target)
                loaded = model
            out = loaded.predict(x, verbose=0)  # what loads must also run
            assert isinstance(out, np.ndarray)
            stats["loaded"] += 1
        except ALLOWED:
            stats["rejected"] += 1
        except Exception as e:  # noqa: BLE001 - every other exception is a finding
            import traceback

            frame = traceback.extract_tb(e.__traceback__)[-1]
            stats["failures"].append(f"case {i}: {type(e).__name__}: {str(e)[:200]} "
                                     f"({os.path.basename(frame.filename)}:{frame.lineno})")
        dt = time.perf_counter() - t
        stats["slowest"] = max(stats["slowest"], dt)
        if dt > CASE_SECONDS:
            stats["failures"].append(f"case {i}: took {dt:.1f} s")
        if weights_only:
            model.set_weights(reference)
        stats["cases"] += 1
    print(json.dumps(stats))


def run_child(kind: str, seed: int, cases: int):
    with tempfile.TemporaryDirectory() as workdir:
        import pynn  # the child imports the same pynn as this process

        root = os.path.dirname(os.path.dirname(os.path.abspath(pynn.__file__)))
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, kind, str(seed), str(cases), workdir],
                              capture_output=True, text=True, env=env,
                              timeout=60 + cases * CASE_SECONDS)
        elapsed = time.perf_counter() - t
        where = ""
        progress = os.path.join(workdir, "progress")
        if proc.returncode != 0 and os.path.exists(progress):
            with open(progress) as f:
                where = f" at case {f.read()} (seed {seed})"
        assert proc.returncode == 0, (f"the child died with {proc.returncode}{where}:\n"
                                      f"{proc.stderr[-3000:]}")
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    stats["seconds"] = round(elapsed, 1)
    return stats


@pytest.mark.parametrize("kind", ["keras", "functional", "weights", "keras_h5", "weights_h5"])
def test_mutated_files_load_or_raise_value_or_os_error(kind):
    seed = int(os.environ.get("PYNN_FUZZ_SEED", 20261123))
    stats = run_child(kind, seed, CASES)
    print(f"\n{kind}: {stats}")
    assert stats["cases"] == CASES
    assert not stats["failures"], "\n".join(stats["failures"][:20])
    assert stats["rejected"] > 0


def test_mutations_are_deterministic_and_change_the_file():
    rnd1, rnd2 = random.Random(3), random.Random(3)
    data = bytes(range(256)) * 4
    assert mutate_bytes(data, rnd1) == mutate_bytes(data, rnd2)
    assert sum(mutate_bytes(data, random.Random(s)) != data for s in range(50)) >= 45


# -- what the fuzzing found, as regression tests ---------------------------------------------------
def _saved(tmp_path):
    path, weights = str(tmp_path / "m.keras"), str(tmp_path / "m.weights.safetensors")
    build_model(path, weights)
    with zipfile.ZipFile(path) as zf:
        return path, {n: zf.read(n) for n in zf.namelist()}


def _rewrite(path, members, compress=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compress) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


@pytest.mark.parametrize("class_name", [{"a": 1}, ["Sequential"], 3])
def test_a_model_class_name_that_is_not_a_string_raises_value_error(tmp_path, class_name):
    import pynn

    path, members = _saved(tmp_path)
    config = json.loads(members["config.json"])
    config["class_name"] = class_name
    _rewrite(path, {**members, "config.json": json.dumps(config)})
    with pytest.raises(ValueError, match="class_name"):
        pynn.models.load_model(path)


@pytest.mark.parametrize("seed", ["relu", 0.5, {}, -1, True])
def test_an_initializer_seed_that_is_not_an_int_raises_value_error(tmp_path, seed):
    import pynn

    path, members = _saved(tmp_path)
    config = json.loads(members["config.json"])
    config["config"]["layers"][1]["config"]["kernel_initializer"]["config"]["seed"] = seed
    _rewrite(path, {**members, "config.json": json.dumps(config)})
    with pytest.raises(ValueError, match="seed"):
        pynn.models.load_model(path)
    with pytest.raises(ValueError, match="seed"):
        pynn.initializers.GlorotUniform(seed=seed)


def test_an_unknown_compression_method_raises_value_error(tmp_path):
    import pynn

    path, members = _saved(tmp_path)
    data = bytearray(open(path, "rb").read())
    # the compression method of every member, in the local and the central headers: 99 (AES)
    for sig, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        at = data.find(sig)
        while at >= 0:
            data[at + offset:at + offset + 2] = struct.pack("<H", 99)
            at = data.find(sig, at + 4)
    open(path, "wb").write(bytes(data))
    with pytest.raises(ValueError, match="cannot be read|compression"):
        pynn.models.load_model(path)


def test_an_embedding_reading_a_float_input_loads_and_range_checks(tmp_path):
    # a float input feeding an Embedding is cast to int32 (as in Keras); its values are still
    # checked against input_dim on every run, never read out of the table
    import pynn

    path = str(tmp_path / "f.keras")
    model, x = build_functional(path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(members["config.json"])
    for layer in config["config"]["layers"]:
        if layer["class_name"] == "InputLayer" and layer["config"].get("dtype") == "int32":
            layer["config"]["dtype"] = "float32"
    _rewrite(path, {**members, "config.json": json.dumps(config)})
    loaded = pynn.models.load_model(path)
    floats = [x[0], x[1].astype(np.float32)]
    np.testing.assert_allclose(loaded.predict(floats, verbose=0),
                               model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    floats[1][0, 0] = 1e9
    with pytest.raises(ValueError, match="index|range"):
        loaded.predict(floats, verbose=0)


@pytest.mark.parametrize("make", [
    lambda: __import__("pynn").layers.Conv2D(2, 2, strides=(1, 2**64)),
    lambda: __import__("pynn").layers.MaxPooling2D(2, strides=(2**64, 1)),
])
def test_a_size_too_large_for_the_core_raises_value_error(make):
    import pynn

    with pytest.raises(ValueError):
        pynn.Sequential([pynn.Input(shape=(6, 6, 2)), make()])


if __name__ == "__main__":
    child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
