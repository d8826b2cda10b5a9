"""TextVectorization, StringLookup, IntegerLookup and Hashing (issue 19): exact agreement with
Keras 3 (tests/keras_reference/text_preprocessing.py and its .npz: vocabularies, every output
mode, OOV and mask handling, invert, ngrams, tf_idf, FarmHash and SipHash bins), models that take
strings (functional and Sequential: fit, evaluate, predict, call), saving, and errors."""

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import KERAS_REFERENCE, keras_reference_module, keras_reference_values

import pynn
from pynn import layers


@pytest.fixture(scope="module")
def keras_run():
    mod = keras_reference_module("text_preprocessing")
    return mod.run(), keras_reference_values("text_preprocessing")


def _keys():
    return sorted(np.load(KERAS_REFERENCE / "text_preprocessing.npz").files)


@pytest.mark.parametrize("key", _keys())
def test_matches_keras(keras_run, key):
    mine, ref = keras_run
    got, want = np.asarray(mine[key]), ref[key]
    if key.endswith("/config"):
        assert json.loads(str(got)) == json.loads(str(want))
        return
    assert got.shape == want.shape, (got.shape, want.shape)
    if want.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_array_equal(got, want)


def test_eager_dtypes():
    tv = layers.TextVectorization(output_sequence_length=3)
    tv.adapt(["a b", "b c"])
    assert tv(np.array([["a c"]])).dtype == np.int64
    assert layers.StringLookup(vocabulary=["a"], output_mode="count")(
        np.array([["a", "a"]])).dtype == np.float32
    assert layers.Hashing(4)(np.array([1, 2])).dtype == np.int64


def test_vocabulary_file_and_set_vocabulary(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("cat\ndog\nbird\n", encoding="utf-8")
    lookup = layers.StringLookup(vocabulary=str(path))
    assert lookup.get_vocabulary() == ["[UNK]", "cat", "dog", "bird"]
    lookup.set_vocabulary(["[UNK]", "x", "y"])
    assert lookup.get_vocabulary() == ["[UNK]", "x", "y"]
    assert lookup.vocabulary_size() == 3
    np.testing.assert_array_equal(lookup(np.array(["y", "cat"])), [2, 0])


def test_adapt_iterables_of_batches():
    texts = ["the cat", "the dog", "a cat", "the end"]
    a = layers.TextVectorization()
    a.adapt(np.array(texts))
    b = layers.TextVectorization()
    b.adapt((np.array(texts[i:i + 2]), np.zeros(2)) for i in range(0, 4, 2))
    assert a.get_vocabulary() == b.get_vocabulary() == ["", "[UNK]", "the", "cat", "end",
                                                        "dog", "a"]


def test_callable_standardize_and_split():
    def std(x):
        assert isinstance(x, np.ndarray)
        return np.char.replace(np.char.lower(x), "<br />", " ")

    tv = layers.TextVectorization(standardize=std, split=lambda x: [s.split("-") for s in x])
    tv.adapt(["A-B<br />C", "a-b"])
    assert tv.get_vocabulary()[:3] == ["", "[UNK]", "a"]


def test_errors():
    with pytest.raises(ValueError, match="sparse"):
        layers.StringLookup(sparse=True)
    with pytest.raises(ValueError, match="sparse"):
        layers.TextVectorization(sparse=True)
    with pytest.raises(ValueError, match="output_sequence_length"):
        layers.TextVectorization(output_mode="count", output_sequence_length=3)
    with pytest.raises(ValueError, match="max_tokens"):
        layers.StringLookup(max_tokens=1)
    with pytest.raises(ValueError, match="invert"):
        layers.StringLookup(invert=True, output_mode="count")
    with pytest.raises(ValueError, match="num_bins"):
        layers.Hashing(0)
    with pytest.raises(TypeError, match="strings"):
        layers.StringLookup(vocabulary=["a"])(np.array([1.5, 2.0]))
    with pytest.raises(TypeError, match="integers"):
        layers.IntegerLookup(vocabulary=[1])(np.array(["a"]))
    with pytest.raises(ValueError, match="OOV"):
        layers.StringLookup(vocabulary=["a"], num_oov_indices=0)(np.array(["b"]))
    with pytest.raises(ValueError, match="repeated"):
        layers.StringLookup(vocabulary=["a", "a"])
    with pytest.raises(ValueError, match="static vocabulary"):
        layers.StringLookup(vocabulary=["a"]).adapt(["a"])
    with pytest.raises(ValueError, match="rank"):
        layers.TextVectorization(vocabulary=["a"])(np.array([["a", "b"]]))
    with pytest.raises(RuntimeError, match="vocabulary"):
        layers.StringLookup(output_mode="multi_hot")(np.array([["a"]]))
    with pytest.raises(TypeError, match="string input"):
        layers.StringLookup(vocabulary=["a"])(pynn.Input(shape=(1,)))


def _texts(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    words = [["bad", "awful", "poor"], ["good", "great", "fine"]]
    x = np.array([" ".join(rng.choice(["the", "a", "movie", "is"] + words[k], 5)) for k in y])
    return x, y.astype(np.float32)


def _vectorizer(x):
    tv = layers.TextVectorization(max_tokens=30, output_sequence_length=6)
    tv.adapt(x)
    return tv


def test_functional_model_on_strings(tmp_path):
    x, y = _texts()
    inp = pynn.Input(shape=(1,), dtype="string")
    h = layers.GlobalAveragePooling1D()(layers.Embedding(30, 8)(_vectorizer(x)(inp)))
    model = pynn.Model(inp, layers.Dense(1, activation="sigmoid")(h))
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    loss, acc = model.evaluate(x, y, verbose=0)
    assert np.isfinite(loss)
    p = model.predict(x[:5], verbose=0)
    np.testing.assert_allclose(model.predict(list(x[:5]), verbose=0), p)
    np.testing.assert_allclose(np.asarray(model(x[:5].reshape(-1, 1))), p, rtol=1e-6)
    model.save(tmp_path / "m.keras")
    loaded = pynn.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x[:5], verbose=0), p, rtol=1e-6)
    assert loaded.layers[1].get_vocabulary() == model.layers[1].get_vocabulary()


def test_sequential_on_strings_and_batches(tmp_path):
    x, y = _texts()
    tv = layers.TextVectorization(max_tokens=30, output_mode="tf_idf")
    tv.adapt(x)
    model = pynn.Sequential([pynn.Input(shape=(1,), dtype="string"), tv,
                             layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy")
    batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, len(x), 32)]
    model.fit(iter(batches), epochs=1, verbose=0)
    model.fit(x, y, epochs=1, verbose=0)
    p = model.predict(x, verbose=0)
    model.save(tmp_path / "s.keras")
    loaded = pynn.saving.load_model(tmp_path / "s.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), p, rtol=1e-6)
    np.testing.assert_allclose(loaded.layers[0].idf_weights, tv.idf_weights)


def test_model_errors():
    x, _ = _texts(10)
    i = pynn.Input(shape=(3,))
    with pytest.raises(ValueError, match="host"):
        pynn.Model(i, layers.Hashing(4)(layers.Dense(3)(i)))
    s = pynn.Input(shape=(1,), dtype="string")
    with pytest.raises(ValueError, match="strings"):
        pynn.Model(s, layers.Dense(3)(s))
    with pytest.raises(TypeError, match="string input"):
        layers.TextVectorization()(pynn.Input(shape=(1,)))


def test_text_classification_example_quick(monkeypatch, capsys):
    import runpy
    path = Path(__file__).parent.parent / "examples" / "text_classification_from_scratch.py"
    monkeypatch.setattr("sys.argv", [str(path), "--quick"])
    runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    vec = float(out.split("test accuracy (vectorized): ")[1].split()[0])
    e2e = float(out.split("test accuracy (end to end, raw strings): ")[1].split()[0])
    assert vec == pytest.approx(e2e, abs=1e-6)  # raw strings give what the indices gave
