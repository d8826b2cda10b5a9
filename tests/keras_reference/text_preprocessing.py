"""Keras 3's vocabulary layers (TextVectorization, StringLookup, IntegerLookup, Hashing) on shared
data, the same code for pynn and Keras: `run()` returns vocabularies, outputs in every output_mode,
OOV and mask handling, invert, ngrams, tf_idf weights, and Hashing's bins (FarmHash and salted
SipHash) of strings of every length class and of integers.

`tests/test_text_preprocessing.py` compares pynn's with what Keras 3 gave, kept in
text_preprocessing.npz beside this file. Keras's layers need TensorFlow (for its string ops)
and keras_ref.py JAX (with 64-bit ints, as Keras returns int64 indices), so make it again with
both on the path (tfvenv plus kvenv's packages):
    JAX_ENABLE_X64=1 KERAS_BACKEND=jax PYTHONPATH=/tmp/kvenv/lib/python3.11/site-packages \
        /tmp/tfvenv/bin/python ../shared/tools/keras_ref.py \
        tests/keras_reference/text_preprocessing.py tests/keras_reference/text_preprocessing.npz
"""

import json
import sys

import numpy as np

import pynn as keras

layers = keras.layers

WORDS = ["apple", "banana", "cherry", "date", "elder", "fig", "grape"]
TEXTS = ["The cat sat on the mat.", "The dog, the CAT! and a bird?", "a b c d e f",
         "Hello   world\tagain", "", "<br />tag-like text's here", "cat cat cat dog"]


def _ints(v) -> np.ndarray:
    return np.asarray(v).astype(np.int64)


def _strs(v) -> np.ndarray:
    a = np.asarray(v)
    flat = [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in a.ravel().tolist()]
    return np.array(flat, dtype=str).reshape(a.shape)


def _inverted(layer, x) -> np.ndarray:
    """invert=True's strings; Keras on JAX cannot return strings, so its table is read
    directly there."""
    try:
        return _strs(layer(x))
    except TypeError:
        import tensorflow as tf
        return _strs(layer._lookup_dense(tf.constant(x, tf.int64)).numpy())


def _config(layer) -> str:
    keep = ("invert", "max_tokens", "num_oov_indices", "oov_token", "mask_token",
            "output_mode", "sparse", "pad_to_max_tokens", "standardize", "split", "ngrams",
            "output_sequence_length", "num_bins", "salt", "mask_value", "encoding")
    c = layer.get_config()
    return json.dumps({k: c[k] for k in keep if k in c}, sort_keys=True)


def random_strings(n: int, seed: int) -> list:
    rng = np.random.RandomState(seed)
    alphabet = list("abcdefghijklmnopqrstuvwxyzABC0123456789 .,-") + ["é", "中", "ß", "\u2003"]
    out = []
    for i in range(n):
        length = i % 150 if i < 150 else rng.randint(0, 300)
        out.append("".join(rng.choice(alphabet, length)))
    return out


def string_lookup(r: dict) -> None:
    rng = np.random.RandomState(1)
    data = np.array(WORDS)[rng.randint(0, len(WORDS), (20, 3))]
    data[0, 0] = "[UNK]"
    queries = np.array([["apple", "zzz", "fig"], ["", "grape", "kiwi"], ["apple", "", "qq"]])
    for name, kw in {
        "default": {},
        "mask": {"mask_token": ""},
        "oov3": {"num_oov_indices": 3},
        "oov3_salt": {"num_oov_indices": 3, "salt": 17},
        "oov3_mask_salt2": {"num_oov_indices": 3, "mask_token": "", "salt": (1, 2)},
        "max4": {"max_tokens": 4},
        "oov0": {"num_oov_indices": 0, "mask_token": ""},
    }.items():
        layer = layers.StringLookup(**kw)
        layer.adapt(data)
        r[f"sl/{name}/vocab"] = np.array(layer.get_vocabulary(), dtype=str)
        r[f"sl/{name}/vocab_size"] = np.int64(layer.vocabulary_size())
        if name != "oov0":
            r[f"sl/{name}/int"] = _ints(layer(queries))
            r[f"sl/{name}/int_1d"] = _ints(layer(queries[0]))
        r[f"sl/{name}/config"] = np.array(_config(layer))
    vocab = ["apple", "banana", "cherry"]
    for mode in ("one_hot", "multi_hot", "count"):
        for extra in ({}, {"mask_token": ""}, {"pad_to_max_tokens": True, "max_tokens": 8}):
            layer = layers.StringLookup(vocabulary=vocab, output_mode=mode, **extra)
            key = f"sl/{mode}/{'_'.join(extra) or 'plain'}"
            q = np.array([["apple", "cherry", "apple"], ["kiwi", "", "banana"]])
            if mode == "one_hot":
                q = np.array([["apple"], ["kiwi"], ["cherry"], [""]])
            r[key] = np.asarray(layer(q), np.float32)
            r[key + "/vocab"] = np.array(layer.get_vocabulary(), dtype=str)
    tfidf = layers.StringLookup(output_mode="tf_idf")
    tfidf.adapt(data)
    r["sl/tf_idf/vocab"] = np.array(tfidf.get_vocabulary(), dtype=str)
    r["sl/tf_idf/out"] = np.asarray(tfidf(queries), np.float32)
    tfidf2 = layers.StringLookup(output_mode="tf_idf", vocabulary=vocab,
                                 idf_weights=[0.5, 1.0, 2.0], pad_to_max_tokens=True,
                                 max_tokens=6)
    r["sl/tf_idf_given/out"] = np.asarray(tfidf2(np.array([["apple", "zz", "cherry"]])),
                                          np.float32)
    for kw in ({}, {"mask_token": ""}):
        inv = layers.StringLookup(vocabulary=vocab, invert=True, **kw)
        r[f"sl/invert/{len(kw)}"] = _inverted(inv, np.array([[0, 1, 2, 3, 4, 9]]))


def integer_lookup(r: dict) -> None:
    rng = np.random.RandomState(2)
    data = rng.choice([3, 7, 7, 12, 40, 40, 40, 100, -5], (30, 2))
    queries = np.array([[3, 8, 40], [0, 100, -7], [55, 12, 0]])
    for name, kw in {
        "default": {},
        "mask0": {"mask_token": 0},
        "oov3": {"num_oov_indices": 3},
        "oov3_farm": {"num_oov_indices": 3, "oov_method": "farmhash"},
        "oov3_farm_salt": {"num_oov_indices": 3, "oov_method": "farmhash", "salt": 5},
        "max4": {"max_tokens": 4},
    }.items():
        layer = layers.IntegerLookup(**kw)
        layer.adapt(data)
        r[f"il/{name}/vocab"] = np.array(layer.get_vocabulary(), np.int64)
        r[f"il/{name}/int"] = _ints(layer(queries))
    for mode in ("multi_hot", "count", "one_hot"):
        layer = layers.IntegerLookup(vocabulary=[3, 7, 12], output_mode=mode)
        q = np.array([[3], [9], [12]]) if mode == "one_hot" else queries
        r[f"il/{mode}"] = np.asarray(layer(q), np.float32)
    inv = layers.IntegerLookup(vocabulary=[3, 7, 12], invert=True)
    r["il/invert"] = _ints(inv(np.array([[0, 1, 2, 3, 7]])))


def text_vectorization(r: dict) -> None:
    texts = np.array(TEXTS)
    for name, kw in {
        "default": {},
        "seq5": {"output_sequence_length": 5},
        "seq12": {"output_sequence_length": 12, "max_tokens": 8},
        "lower": {"standardize": "lower"},
        "strip": {"standardize": "strip_punctuation"},
        "none": {"standardize": None},
        "char": {"split": "character", "max_tokens": 12},
        "bigram": {"ngrams": 2},
        "ngrams13": {"ngrams": (1, 3)},
        "multi_hot": {"output_mode": "multi_hot"},
        "count": {"output_mode": "count", "max_tokens": 6},
        "count_pad": {"output_mode": "count", "max_tokens": 12, "pad_to_max_tokens": True},
        "tf_idf": {"output_mode": "tf_idf"},
        "tf_idf_bigram": {"output_mode": "tf_idf", "ngrams": 2, "max_tokens": 10},
    }.items():
        layer = layers.TextVectorization(**kw)
        layer.adapt(texts)
        r[f"tv/{name}/vocab"] = np.array(layer.get_vocabulary(), dtype=str)
        out = layer(np.expand_dims(texts, -1))
        out = np.asarray(out, np.float32) if "output_mode" in kw else _ints(out)
        r[f"tv/{name}/out"] = out
        r[f"tv/{name}/out_1d"] = np.asarray(layer(texts[:3])).astype(out.dtype)
        if "tf_idf" in name:
            r[f"tv/{name}/idf"] = np.asarray(layer._lookup_layer.idf_weights, np.float32)
        r[f"tv/{name}/config"] = np.array(_config(layer))
    # batches from an iterable; split=None keeps each string as one token
    layer = layers.TextVectorization(output_mode="tf_idf")
    layer.adapt(iter([texts[:4], texts[4:]]))
    r["tv/batches/vocab"] = np.array(layer.get_vocabulary(), dtype=str)
    r["tv/batches/idf"] = np.asarray(layer._lookup_layer.idf_weights, np.float32)
    layer = layers.TextVectorization(split=None, standardize=None)
    layer.adapt(np.array(["x", "y", "x", "z w"]))
    r["tv/nosplit/vocab"] = np.array(layer.get_vocabulary(), dtype=str)
    r["tv/nosplit/out"] = _ints(layer(np.array([["x"], ["z w"], ["q"]])))
    layer = layers.TextVectorization(vocabulary=["cat", "the", "dog"],
                                     output_sequence_length=4)
    r["tv/vocab_given/vocab"] = np.array(layer.get_vocabulary(), dtype=str)
    r["tv/vocab_given/out"] = _ints(layer(np.array([["The dog ate the cat"]])))


def hashing(r: dict) -> None:
    strings = random_strings(400, 3)
    r["hash/strings"] = np.array(strings, dtype=str)
    arr = np.array(strings).reshape(-1, 1)
    for name, kw in {"fast": {}, "salt": {"salt": 1337}, "salt2": {"salt": [7, 2**40 + 3]}}.items():
        for bins in (2**62, 1000, 3):
            r[f"hash/{name}/{bins}"] = _ints(layers.Hashing(num_bins=bins, **kw)(arr))
    ints = np.array([[0], [1], [-1], [42], [123456789012], [-98765], [7]], np.int64)
    r["hash/ints"] = _ints(layers.Hashing(num_bins=1000)(ints))
    r["hash/ints_salt"] = _ints(layers.Hashing(num_bins=1000, salt=9)(ints))
    r["hash/ints_mask"] = _ints(layers.Hashing(num_bins=5, mask_value=0)(ints))
    words = np.array([["A"], ["B"], [""], ["D"], ["E"]])
    r["hash/mask_str"] = _ints(layers.Hashing(num_bins=4, mask_value="")(words))
    for mode in ("one_hot", "multi_hot", "count"):
        q = words if mode == "one_hot" else np.array([["A", "B", "A"], ["C", "D", "E"]])
        r[f"hash/{mode}"] = np.asarray(layers.Hashing(num_bins=4, output_mode=mode)(q),
                                       np.float32)
    r["hash/config"] = np.array(_config(layers.Hashing(num_bins=4, salt=3, mask_value="")))


def run() -> dict:
    r: dict = {}
    string_lookup(r)
    integer_lookup(r)
    text_vectorization(r)
    hashing(r)
    return r


if __name__ == "__main__":
    np.savez(sys.argv[1], **run())
