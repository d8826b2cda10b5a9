"""Keras 3's data sets: cifar10, cifar100, boston_housing, california_housing, imdb, reuters.
Small files of each format are written here (with numpy and pickle, as Keras's files were
made), then loaded with pynn: the values and every load_data option as Keras computes them,
and corrupt or hostile files raise ValueError. Nothing is downloaded."""

import hashlib
import io
import json
import pickle
import tarfile

import numpy as np
import pytest

from pynn.datasets import (
    _pickle,
    boston_housing,
    california_housing,
    cifar10,
    cifar100,
    imdb,
    reuters,
)


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def data(monkeypatch, tmp_path):
    monkeypatch.setenv("PYNN_DATASETS", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def _objects(seqs):
    out = np.empty(len(seqs), dtype=object)
    for i, s in enumerate(seqs):
        out[i] = s
    return out


def _seqs(rng, n):
    return [list(map(int, rng.integers(0, 30, rng.integers(1, 9)))) for _ in range(n)]


def _register(monkeypatch, module, folder, name):
    monkeypatch.setattr(module, "FILE_SHA256", {name: _sha(folder / name)})


def _keras_imdb(tr, ytr, te, yte, seed=113, num_words=None, skip_top=0, maxlen=None,
                start_char=1, oov_char=2, index_from=3):
    """Keras's imdb.load_data on these lists, step by step (keras/src/datasets/imdb.py)."""
    rng = np.random.RandomState(seed)
    i = np.arange(len(tr))
    rng.shuffle(i)
    j = np.arange(len(te))
    rng.shuffle(j)
    sets = []
    for xs, ys in (([tr[k] for k in i], ytr[i]), ([te[k] for k in j], yte[j])):
        xs = [[start_char] + [w + index_from for w in x] for x in xs]
        if maxlen:
            keep = [k for k, x in enumerate(xs) if len(x) < maxlen]
            xs, ys = [xs[k] for k in keep], ys[keep]
        sets.append((xs, list(ys)))
    xs = sets[0][0] + sets[1][0]
    nw = num_words or max(max(x) for x in xs)
    xs = [[w if skip_top <= w < nw else oov_char for w in x] for x in xs]
    n = len(sets[0][0])
    return (xs[:n], sets[0][1]), (xs[n:], sets[1][1])


@pytest.mark.parametrize("opts", [{}, {"num_words": 20, "skip_top": 5},
                                  {"maxlen": 6, "seed": 7, "oov_char": 9, "index_from": 2}])
def test_imdb_matches_keras_processing(data, monkeypatch, opts):
    rng = np.random.default_rng(0)
    tr, te = _seqs(rng, 12), _seqs(rng, 10)
    ytr, yte = rng.integers(0, 2, 12), rng.integers(0, 2, 10)
    (data / "imdb").mkdir()
    np.savez(data / "imdb" / "imdb.npz", x_train=_objects(tr), y_train=ytr, x_test=_objects(te),
             y_test=yte)
    _register(monkeypatch, imdb, data / "imdb", "imdb.npz")
    (x_train, y_train), (x_test, y_test) = imdb.load_data(**opts)
    (a, la), (b, lb) = _keras_imdb(tr, ytr, te, yte, **opts)
    assert x_train.dtype == object and list(x_train) == a and list(x_test) == b
    assert list(y_train) == la and list(y_test) == lb


def test_reuters_split_and_word_index(data, monkeypatch):
    rng = np.random.default_rng(1)
    xs, ys = _seqs(rng, 20), rng.integers(0, 46, 20)
    (data / "reuters").mkdir()
    np.savez(data / "reuters" / "reuters.npz", x=_objects(xs), y=ys)
    _register(monkeypatch, reuters, data / "reuters", "reuters.npz")
    (x_train, y_train), (x_test, y_test) = reuters.load_data(test_split=0.25, start_char=None,
                                                             index_from=0, num_words=100)
    i = np.arange(20)
    np.random.RandomState(113).shuffle(i)
    assert list(x_train) + list(x_test) == [xs[k] for k in i]
    assert len(x_train) == 15 and list(y_test) == list(ys[i][15:])
    (data / "reuters" / "reuters_word_index.json").write_text(json.dumps({"the": 1}))
    monkeypatch.setattr(reuters, "WORD_INDEX_HASH", hashlib.md5(
        (data / "reuters" / "reuters_word_index.json").read_bytes()).hexdigest())
    assert reuters.get_word_index() == {"the": 1}
    assert len(reuters.get_label_names()) == 46


def _cifar_batch(rng, n, keys):
    d = {b"batch_label": b"a batch", b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
         b"filenames": [b"f%d.png" % i for i in range(n)]}
    for k in keys:
        d[k] = [int(v) for v in rng.integers(0, 100, n)]
    return d


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tf:
        for name, obj in members.items():
            raw = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))


def test_cifar10_shapes_and_values(data, monkeypatch):
    rng = np.random.default_rng(2)
    batches = {f"cifar-10-batches-py/data_batch_{i}": _cifar_batch(rng, 3, [b"labels"])
               for i in range(1, 6)}
    batches["cifar-10-batches-py/test_batch"] = _cifar_batch(rng, 2, [b"labels"])
    (data / "cifar10").mkdir()
    _tar(data / "cifar10" / "cifar-10-python.tar.gz", batches)
    _register(monkeypatch, cifar10, data / "cifar10", "cifar-10-python.tar.gz")
    (x_train, y_train), (x_test, y_test) = cifar10.load_data()
    assert x_train.shape == (15, 32, 32, 3) and y_train.shape == (15, 1)
    assert x_test.shape == (2, 32, 32, 3) and x_test.dtype == np.uint8
    first = batches["cifar-10-batches-py/data_batch_1"]
    np.testing.assert_array_equal(x_train[0], first[b"data"][0].reshape(3, 32, 32)
                                  .transpose(1, 2, 0))
    assert list(y_train[:3, 0]) == first[b"labels"]


def test_cifar100_label_modes(data, monkeypatch):
    rng = np.random.default_rng(3)
    keys = [b"fine_labels", b"coarse_labels"]
    batches = {"cifar-100-python/train": _cifar_batch(rng, 4, keys),
               "cifar-100-python/test": _cifar_batch(rng, 2, keys)}
    (data / "cifar100").mkdir()
    _tar(data / "cifar100" / "cifar-100-python.tar.gz", batches)
    _register(monkeypatch, cifar100, data / "cifar100", "cifar-100-python.tar.gz")
    for mode in ("fine", "coarse"):
        (_, y_train), _ = cifar100.load_data(label_mode=mode)
        assert list(y_train[:, 0]) == batches["cifar-100-python/train"][f"{mode}_labels".encode()]
    with pytest.raises(ValueError, match="label_mode"):
        cifar100.load_data("medium")


@pytest.mark.parametrize("module,features,kwargs", [
    (boston_housing, 13, {"test_split": 0.3, "seed": 4}),
    (california_housing, 8, {"version": "large"}),
    (california_housing, 8, {"version": "small", "test_split": 0.5}),
])
def test_housing_split_as_keras(data, monkeypatch, module, features, kwargs):
    rng = np.random.default_rng(4)
    n = 700 if module is california_housing else 30
    x, y = rng.random((n, features)), rng.random(n)
    name = module.__name__.rsplit(".", 1)[1]
    (data / name).mkdir()
    np.savez(data / name / f"{name}.npz", x=x, y=y)
    _register(monkeypatch, module, data / name, f"{name}.npz")
    (x_train, y_train), (x_test, y_test) = module.load_data(**kwargs)
    if kwargs.get("version") == "small":
        x, y = x[:600], y[:600]
    i = np.arange(len(x))
    np.random.RandomState(kwargs.get("seed", 113)).shuffle(i)
    cut = int(len(x) * (1 - kwargs.get("test_split", 0.2)))
    np.testing.assert_array_equal(x_train, x[i][:cut])
    np.testing.assert_array_equal(y_test, y[i][cut:])
    with pytest.raises(ValueError, match="test_split"):
        module.load_data(test_split=1.0)


def test_pickle_reader_refuses_code_and_other_structures():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    for obj in ([Evil()], {"a": Evil()}, set([1]), 1.5):
        with pytest.raises(ValueError, match="refused"):
            _pickle.loads(pickle.dumps(obj, protocol=2))
    structured = np.zeros(2, dtype=[("a", "i4")])
    with pytest.raises(ValueError, match="refused"):
        _pickle.loads(pickle.dumps(structured, protocol=3))


def test_npz_with_hostile_object_array_is_refused(data, monkeypatch):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (data / "imdb").mkdir()
    bad = np.empty(1, dtype=object)
    bad[0] = Evil()
    np.savez(data / "imdb" / "imdb.npz", x_train=bad, y_train=np.zeros(1, int), x_test=bad,
             y_test=np.zeros(1, int))
    _register(monkeypatch, imdb, data / "imdb", "imdb.npz")
    with pytest.raises(ValueError, match="refused"):
        imdb.load_data()


@pytest.mark.parametrize("cut", [10, 100, 300, -5])
def test_truncated_files_raise_value_error(data, monkeypatch, cut):
    rng = np.random.default_rng(5)
    (data / "reuters").mkdir()
    buf = io.BytesIO()
    np.save(buf, _objects(_seqs(rng, 30)), allow_pickle=True)
    raw = buf.getvalue()
    with pytest.raises(ValueError):
        _pickle.read_npy(raw[:cut])
    d = pickle.dumps(_cifar_batch(rng, 2, [b"labels"]), protocol=2)
    from pynn.datasets import _cifar

    with pytest.raises(ValueError):
        _cifar.load_batch(d[:cut], "batch")


def test_mutated_streams_load_or_raise_value_error():
    import random

    rng = np.random.default_rng(6)
    buf = io.BytesIO()
    np.save(buf, _objects(_seqs(rng, 8)), allow_pickle=True)
    npy = buf.getvalue()
    batch = pickle.dumps(_cifar_batch(rng, 2, [b"labels"]), protocol=2)
    from pynn.datasets import _cifar

    rnd = random.Random(0)
    for _ in range(600):
        for raw, read in ((npy, _pickle.read_npy), (batch, lambda b: _cifar.load_batch(b, "b"))):
            b = bytearray(raw)
            for _ in range(rnd.choice((1, 2, 4))):
                i = rnd.randrange(len(b))
                if rnd.random() < 0.5:
                    b[i] = rnd.randrange(256)
                else:
                    del b[i:i + rnd.choice((1, 8))]
            try:
                read(bytes(b))
            except ValueError:
                pass
