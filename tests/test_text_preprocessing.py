"""TextVectorization, StringLookup, IntegerLookup and Hashing (issue 19): exact agreement with
Keras 3 (tests/keras_reference/text_preprocessing.py and its .npz: vocabularies, every output
mode, OOV and mask handling, invert, ngrams, tf_idf, FarmHash and SipHash bins), models that take
strings (functional and Sequential: fit, evaluate, predict, call), saving, and errors."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import pynn
from pynn import layers

REF = Path(__file__).parent / "keras_reference"


@pytest.fixture(scope="module")
def keras_run():
    spec = importlib.util.spec_from_file_location("text_ref", REF / "text_preprocessing.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.run(), dict(np.load(REF / "text_preprocessing.npz"))


def _keys():
    return sorted(np.load(REF / "text_preprocessing.npz").files)


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
