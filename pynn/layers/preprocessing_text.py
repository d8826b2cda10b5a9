"""Keras 3's vocabulary layers: TextVectorization, StringLookup, IntegerLookup and Hashing.

They work on strings (or on integer ids), which never enter the float32 core: they run on the
host, in NumPy, as Keras runs them on the CPU. Called on data they return NumPy arrays (int64
indices, float32 encodings, as Keras). In a model they may only come first, fed by the model's
inputs (`Input(shape=(1,), dtype="string")`): the model applies them to each batch on the host
(models/host.py) and its core graph starts from their outputs.

Vocabularies follow Keras's IndexLookup: index 0 is the mask token (when there is one and the
output is 'int'), then the OOV indices, then the tokens by decreasing frequency (ties by the token,
high to low). Keras's hashes are implemented here over NumPy uint64 arrays, one vectorised pass
per string length: FarmHash Fingerprint64 (tf.strings.to_hash_bucket_fast) and SipHash-2-4
(to_hash_bucket_strong, with a salt).
"""

import collections
import os
import re

import numpy as np

from .base import Layer

# -- Keras's hashes, vectorised over the strings of one length ---------------------------------
_K0, _K1, _K2 = (np.uint64(0xc3a5c85c97cb3127), np.uint64(0xb492b66fbe98f273),
                 np.uint64(0x9ae16a3b2f90404f))


def _u64(v) -> np.ndarray:
    return np.asarray(v, dtype=np.uint64)


def _rot(v, s: int):
    """Rotate right by s bits (FarmHash's Rotate)."""
    return v if s == 0 else (v >> np.uint64(s)) | (v << np.uint64(64 - s))


def _rotl(v, s: int):
    return (v << np.uint64(s)) | (v >> np.uint64(64 - s))


def _f64(b: np.ndarray, off: int) -> np.ndarray:
    """The little-endian uint64 at byte `off` of every row of b (n, len)."""
    return np.ascontiguousarray(b[:, off:off + 8]).view("<u8")[:, 0].astype(np.uint64)


def _f32(b: np.ndarray, off: int) -> np.ndarray:
    return np.ascontiguousarray(b[:, off:off + 4]).view("<u4")[:, 0].astype(np.uint64)


def _shift_mix(v):
    return v ^ (v >> np.uint64(47))


def _len16(u, v, mul):
    a = (u ^ v) * mul
    a ^= a >> np.uint64(47)
    b = (v ^ a) * mul
    b ^= b >> np.uint64(47)
    return b * mul


def _weak32(b, off, a, c):
    """FarmHash's WeakHashLen32WithSeeds on the 32 bytes at `off`, seeds a and c."""
    w, x, y, z = _f64(b, off), _f64(b, off + 8), _f64(b, off + 16), _f64(b, off + 24)
    a = a + w
    c = _rot(c + a + z, 21)
    t = a
    a = a + x + y
    c = c + _rot(a, 44)
    return a + z, c + t


def _farmhash_len(b: np.ndarray, n: int) -> np.ndarray:
    """farmhashna::Hash64 (= Fingerprint64) of the rows of b, each n bytes long."""
    rows = b.shape[0]
    if n == 0:
        return np.full(rows, _K2, np.uint64)
    mul = _u64(_K2 + np.uint64(2 * n))
    if n < 4:
        a, m, c = (b[:, i].astype(np.uint64) for i in (0, n >> 1, n - 1))
        y, z = a + (m << np.uint64(8)), np.uint64(n) + (c << np.uint64(2))
        return _shift_mix(y * _K2 ^ z * _K0) * _K2
    if n < 8:
        a = _f32(b, 0)
        return _len16(np.uint64(n) + (a << np.uint64(3)), _f32(b, n - 4), mul)
    if n <= 16:
        a, v = _f64(b, 0) + _K2, _f64(b, n - 8)
        return _len16(_rot(v, 37) * mul + a, (_rot(a, 25) + v) * mul, mul)
    if n <= 32:
        a, v = _f64(b, 0) * _K1, _f64(b, 8)
        c, d = _f64(b, n - 8) * mul, _f64(b, n - 16) * _K2
        return _len16(_rot(a + v, 43) + _rot(c, 30) + d, a + _rot(v + _K2, 18) + c, mul)
    if n <= 64:
        a, v = _f64(b, 0) * _K2, _f64(b, 8)
        c, d = _f64(b, n - 8) * mul, _f64(b, n - 16) * _K2
        y = _rot(a + v, 43) + _rot(c, 30) + d
        z = _len16(y, a + _rot(v + _K2, 18) + c, mul)
        e, f = _f64(b, 16) * mul, _f64(b, 24)
        g, h = (y + _f64(b, n - 32)) * mul, (z + _f64(b, n - 24)) * mul
        return _len16(_rot(e + f, 43) + _rot(g, 30) + h, e + _rot(f + a, 18) + g, mul)
    seed = _u64(np.full(rows, 81, np.uint64))
    x = seed
    y = seed * _K1 + np.uint64(113)
    z = _shift_mix(y * _K2 + np.uint64(113)) * _K2
    zero = np.zeros(rows, np.uint64)
    v, w = (zero, zero), (zero, zero)
    x = x * _K2 + _f64(b, 0)
    end = ((n - 1) // 64) * 64
    last64 = end + ((n - 1) & 63) - 63
    s = 0
    while True:
        x = _rot(x + y + v[0] + _f64(b, s + 8), 37) * _K1
        y = _rot(y + v[1] + _f64(b, s + 48), 42) * _K1
        x ^= w[1]
        y = y + v[0] + _f64(b, s + 40)
        z = _rot(z + w[0], 33) * _K1
        v = _weak32(b, s, v[1] * _K1, x + w[0])
        w = _weak32(b, s + 32, z + w[1], y + _f64(b, s + 16))
        z, x = x, z
        s += 64
        if s == end:
            break
    mul = _K1 + ((z & np.uint64(0xff)) << np.uint64(1))
    s = last64
    w = (w[0] + np.uint64((n - 1) & 63), w[1])
    v = (v[0] + w[0], v[1])
    w = (w[0] + v[0], w[1])
    x = _rot(x + y + v[0] + _f64(b, s + 8), 37) * mul
    y = _rot(y + v[1] + _f64(b, s + 48), 42) * mul
    x ^= w[1] * np.uint64(9)
    y = y + v[0] * np.uint64(9) + _f64(b, s + 40)
    z = _rot(z + w[0], 33) * mul
    v = _weak32(b, s, v[1] * mul, x + w[0])
    w = _weak32(b, s + 32, z + w[1], y + _f64(b, s + 16))
    z, x = x, z
    return _len16(_len16(v[0], w[0], mul) + _shift_mix(y) * _K0 + z,
                  _len16(v[1], w[1], mul) + x, mul)


def _siphash_len(b: np.ndarray, n: int, key: tuple) -> np.ndarray:
    """SipHash-2-4 with the 128-bit key (k0, k1) of the rows of b, each n bytes long."""
    rows = b.shape[0]
    k0, k1 = (np.full(rows, np.uint64(k % 2**64), np.uint64) for k in key)
    v0, v1 = k0 ^ np.uint64(0x736f6d6570736575), k1 ^ np.uint64(0x646f72616e646f6d)
    v2, v3 = k0 ^ np.uint64(0x6c7967656e657261), k1 ^ np.uint64(0x7465646279746573)

    def rounds(k, v0, v1, v2, v3):
        for _ in range(k):
            v0 = v0 + v1
            v1 = _rotl(v1, 13) ^ v0
            v0 = _rotl(v0, 32)
            v2 = v2 + v3
            v3 = _rotl(v3, 16) ^ v2
            v0 = v0 + v3
            v3 = _rotl(v3, 21) ^ v0
            v2 = v2 + v1
            v1 = _rotl(v1, 17) ^ v2
            v2 = _rotl(v2, 32)
        return v0, v1, v2, v3

    blocks = n // 8
    for i in range(blocks):
        m = _f64(b, 8 * i)
        v3 ^= m
        v0, v1, v2, v3 = rounds(2, v0, v1, v2, v3)
        v0 ^= m
    last = np.full(rows, np.uint64((n & 0xff) << 56), np.uint64)
    for i in range(n % 8):
        last |= b[:, 8 * blocks + i].astype(np.uint64) << np.uint64(8 * i)
    v3 ^= last
    v0, v1, v2, v3 = rounds(2, v0, v1, v2, v3)
    v0 ^= last
    v2 ^= np.uint64(0xff)
    v0, v1, v2, v3 = rounds(4, v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def hash_strings(strings, num_buckets: int, key=None) -> np.ndarray:
    """Keras's bucket of each string (a flat sequence of str): tf.strings.to_hash_bucket_fast
    (FarmHash Fingerprint64 mod num_buckets), or with `key` (two ints)
    to_hash_bucket_strong (SipHash-2-4 mod num_buckets). int64, shaped like the input."""
    data = [s.encode("utf-8") if isinstance(s, str) else bytes(s) for s in strings]
    lens = np.fromiter(map(len, data), np.int64, len(data))
    out = np.empty(len(data), np.uint64)
    for n in np.unique(lens):
        where = np.flatnonzero(lens == n)
        buf = np.frombuffer(b"".join(data[i] for i in where), np.uint8).reshape(len(where), n)
        out[where] = (_farmhash_len(buf, int(n)) if key is None
                      else _siphash_len(buf, int(n), key))
    return (out % np.uint64(num_buckets)).astype(np.int64)


# -- strings as NumPy arrays ---------------------------------------------------------------------
def _to_text(x, who: str) -> np.ndarray:
    """x (str, bytes, lists or arrays of them) as a NumPy array of str; a TypeError otherwise."""
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        x = x.numpy()
    a = np.asarray(x, dtype=object) if isinstance(x, (list, tuple)) else np.asarray(x)
    if a.dtype.kind == "U":
        return a
    if a.dtype.kind == "S":
        return np.char.decode(a, "utf-8")
    if a.dtype.kind == "O":
        flat = a.ravel()
        if all(isinstance(s, (str, np.str_)) for s in flat):
            return a.astype(str) if a.size else a.astype("U1")
        if all(isinstance(s, (bytes, np.bytes_, str, np.str_)) for s in flat):
            return np.array([s.decode("utf-8") if isinstance(s, bytes) else s for s in flat],
                            dtype=str).reshape(a.shape)
    raise TypeError(f"{who}: expects strings, got data of dtype {a.dtype}")


def _to_ints(x, who: str) -> np.ndarray:
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        x = x.numpy()
    a = np.asarray(x)
    if a.dtype.kind not in "iub":
        raise TypeError(f"{who}: expects integers, got data of dtype {a.dtype}")
    return a.astype(np.int64)


class _HostLayer(Layer):
    """A layer that runs on the host in NumPy: on data it returns NumPy arrays; called on a
    model's symbolic input it records the call for the model's host stage (models/host.py)."""

    _host_layer = True

    def _symbolic_dtype(self) -> str:
        """The dtype of the symbolic output: 'int32' for indices (the core's index type),
        'float32' for encodings, 'string'."""
        return "float32" if self.output_mode != "int" else "int32"

    def _check_symbolic_input(self, t) -> None:
        pass

    def __call__(self, *args, **kwargs):
        from .input_layer import KerasTensor

        if not args and "inputs" in kwargs:
            args = (kwargs.pop("inputs"),)
        kwargs.pop("training", None)
        if len(args) != 1 or kwargs:
            raise TypeError(f"{type(self).__name__} '{self.name}' takes one input, got "
                            f"{len(args)} and {sorted(kwargs)}")
        x = args[0]
        if isinstance(x, KerasTensor):
            self._check_symbolic_input(x)
            out = KerasTensor(self.compute_output_shape(x.shape), self._symbolic_dtype(),
                              self.name, self, [x])
            self.built = True
            return self._record_call([x], out)
        if isinstance(x, (list, tuple)) and any(isinstance(t, KerasTensor) for t in x):
            raise TypeError(f"{type(self).__name__} '{self.name}' takes one input tensor")
        return self.call(x)

    def lower(self, core, node: int) -> int:
        raise ValueError(f"{type(self).__name__} '{self.name}' runs on the host (NumPy) on "
                         "strings, so in a model it must be fed by the model's input (or by "
                         "another such layer), not by a layer of the core graph")

    def build(self, input_shape=None) -> None:
        self.built = True


def _encode(rows: list, depth: int, mode: str, idf=None) -> np.ndarray:
    """multi_hot / count / tf_idf of index rows (each an int64 array; indices outside
    [0, depth) dropped): float32 (len(rows), depth)."""
    out = np.zeros((len(rows), depth), np.float32)
    lens = np.fromiter(map(len, rows), np.int64, len(rows))
    if lens.sum():
        flat = np.concatenate(rows)
        row = np.repeat(np.arange(len(rows)), lens)
        keep = (flat >= 0) & (flat < depth)
        np.add.at(out, (row[keep], flat[keep]), 1.0)
    if mode == "multi_hot":
        np.minimum(out, 1.0, out=out)
    elif mode == "tf_idf":
        out *= np.asarray(idf, np.float32)[:depth]
    return out


def _encode_array(idx: np.ndarray, depth: int, mode: str, idf=None) -> np.ndarray:
    """Keras's encode_categorical_inputs on an index array (rank >= 1): one_hot of every entry
    (a last axis of 1 dropped first), else over the last axis."""
    if idx.ndim == 0:
        idx = idx.reshape(1)
    if mode == "one_hot":
        if idx.ndim > 1 and idx.shape[-1] == 1:
            idx = idx[..., 0]
        out = np.zeros(idx.shape + (depth,), np.float32)
        keep = (idx >= 0) & (idx < depth)
        out[keep, idx[keep]] = 1.0
        return out
    lead = idx.shape[:-1]
    rows = list(idx.reshape(-1, idx.shape[-1]))
    return _encode(rows, depth, mode, idf).reshape(lead + (depth,))


class IndexLookup(_HostLayer):
    """What StringLookup and IntegerLookup share (Keras's IndexLookup): the vocabulary, adapt,
    the lookup and the encodings."""

    _string = True  # StringLookup; IntegerLookup sets False

    def __init__(self, max_tokens=None, num_oov_indices: int = 1, mask_token=None,
                 oov_token=None, vocabulary=None, idf_weights=None, invert: bool = False,
                 output_mode: str = "int", sparse: bool = False, pad_to_max_tokens: bool = False,
                 oov_method: str = "floormod", salt=None, **kwargs):
        frozen = kwargs.pop("vocabulary_size", None)
        has_input = kwargs.pop("has_input_vocabulary", vocabulary is not None)
        kwargs.pop("vocabulary_dtype", None)
        super().__init__(**kwargs)
        who = f"{type(self).__name__} '{self.name}'"
        if max_tokens is not None and (isinstance(max_tokens, bool) or max_tokens <= 1):
            raise ValueError(f"{who}: If set, `max_tokens` must be greater than 1. Received: "
                             f"max_tokens={max_tokens}")
        if pad_to_max_tokens and max_tokens is None:
            raise ValueError(f"{who}: If pad_to_max_tokens is True, must set `max_tokens`. "
                             f"Received: max_tokens={max_tokens}")
        if not isinstance(num_oov_indices, int) or num_oov_indices < 0:
            raise ValueError(f"{who}: `num_oov_indices` must be greater than or equal to 0. "
                             f"Received: num_oov_indices={num_oov_indices}")
        if oov_method not in ("floormod", "farmhash"):
            raise ValueError(f"{who}: oov_method must be 'floormod' or 'farmhash', got "
                             f"{oov_method!r}")
        if salt is not None:
            if not self._string and oov_method != "farmhash":
                raise ValueError(f"{who}: `salt` can only be used when "
                                 f"`oov_method='farmhash'`. Received: oov_method={oov_method}")
            salt = _salt(salt, who)
        output_mode = {"binary": "multi_hot", "tf-idf": "tf_idf"}.get(output_mode, output_mode)
        if output_mode not in ("int", "one_hot", "multi_hot", "count", "tf_idf"):
            raise ValueError(f"{who}: Invalid value for argument output_mode. Expected one of "
                             "('int', 'one_hot', 'multi_hot', 'count', 'tf_idf'). Received: "
                             f"output_mode={output_mode}")
        if invert and output_mode != "int":
            raise ValueError(f"{who}: `output_mode` must be `'int'` when `invert` is true. "
                             f"Received: output_mode={output_mode}")
        if sparse:
            raise ValueError(f"{who}: sparse=True is not supported: pynn's outputs are dense "
                             "NumPy arrays")
        if idf_weights is not None and output_mode != "tf_idf":
            raise ValueError(f"{who}: `idf_weights` should only be set if `output_mode` is "
                             f"`'tf_idf'`. Received: output_mode={output_mode}")
        if output_mode == "tf_idf" and has_input and vocabulary is not None and \
                idf_weights is None:
            raise ValueError(f"{who}: When specifying the `vocabulary` argument, in TF-IDF "
                             "output mode, the `idf_weights` argument must also be provided.")
        self.invert, self.max_tokens = bool(invert), max_tokens
        self.num_oov_indices, self.mask_token, self.oov_token = (num_oov_indices, mask_token,
                                                                 oov_token)
        self.output_mode, self.sparse = output_mode, False
        self.pad_to_max_tokens = bool(pad_to_max_tokens)
        self.oov_method, self.salt = oov_method, salt
        self._frozen_vocab_size = frozen
        self._has_input_vocabulary = bool(has_input)
        self._tokens = self._empty_tokens()
        self.idf_weights = None
        self._reset_counts()
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)

    # -- the vocabulary ---------------------------------------------------------------------------
    def _who(self) -> str:
        return f"{type(self).__name__} '{self.name}'"

    def _empty_tokens(self) -> np.ndarray:
        return np.zeros(0, str if self._string else np.int64)

    def _as_tokens(self, x) -> np.ndarray:
        return _to_text(x, self._who()) if self._string else _to_ints(x, self._who())

    def _oov_start_index(self) -> int:
        return 1 if self.mask_token is not None and self.output_mode == "int" else 0

    def _token_start_index(self) -> int:
        return self._oov_start_index() + self.num_oov_indices

    def vocabulary_size(self) -> int:
        """The vocabulary's size, with the mask and OOV indices."""
        return len(self._tokens) + self._token_start_index()

    def get_vocabulary(self, include_special_tokens: bool = True) -> list:
        """The vocabulary in index order (with the mask and OOV tokens unless
        include_special_tokens=False)."""
        tokens = [str(t) if self._string else int(t) for t in self._tokens]
        if not include_special_tokens:
            return tokens
        special = [self.oov_token] * self._token_start_index()
        if self.mask_token is not None and self.output_mode == "int":
            special[0] = self.mask_token
        return special + tokens

    def set_vocabulary(self, vocabulary, idf_weights=None) -> None:
        """Sets the vocabulary (a list or array of tokens, or the path of a text file with one
        token a line) and, for output_mode='tf_idf', its idf_weights. The vocabulary may start
        with the mask and OOV tokens (as get_vocabulary gives them)."""
        who = self._who()
        if self.output_mode == "tf_idf":
            if idf_weights is None:
                raise ValueError(f"{who}: `idf_weights` must be set if output_mode is "
                                 "'tf_idf'.")
        elif idf_weights is not None:
            raise ValueError(f"{who}: `idf_weights` should only be set if output_mode is "
                             f"`'tf_idf'`. Received: output_mode={self.output_mode}")
        if isinstance(vocabulary, (str, os.PathLike)):
            path = os.fspath(vocabulary)
            if not os.path.exists(path):
                raise ValueError(f"{who}: Vocabulary file {path} does not exist.")
            if self.output_mode == "tf_idf":
                raise ValueError(f"{who}: output_mode `'tf_idf'` does not support loading a "
                                 "vocabulary from file.")
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
            vocabulary = lines if self._string else [int(s) for s in lines]
        if hasattr(vocabulary, "numpy") and not isinstance(vocabulary, np.ndarray):
            vocabulary = vocabulary.numpy()
        vocab = list(self._as_tokens(np.asarray(list(vocabulary)) if not isinstance(
            vocabulary, np.ndarray) else vocabulary).ravel())
        if not vocab:
            raise ValueError(f"{who}: Cannot set an empty vocabulary. Received: "
                             f"vocabulary={vocabulary}")
        start = self._token_start_index()
        special = [self.mask_token] * self._oov_start_index() + \
            [self.oov_token] * self.num_oov_indices
        found = vocab[:start] == special
        tokens = vocab[start:] if found else vocab
        repeated = [t for t, c in collections.Counter(tokens).items() if c > 1]
        if repeated:
            raise ValueError(f"{who}: The passed vocabulary has at least one repeated term. "
                             f"Please uniquify your dataset. The repeated terms are: "
                             f"{repeated}")
        if self.mask_token is not None and self.mask_token in tokens:
            raise ValueError(f"{who}: Found reserved mask token at unexpected location in "
                             "`vocabulary`. Note that passed `vocabulary` does not need to "
                             "include the OOV and mask tokens. Either remove all mask and OOV "
                             "tokens, or include them only at the start of the vocabulary in "
                             f"precisely this order: {special}. Received: "
                             f"mask_token={self.mask_token}")
        if self.oov_token is not None and self.invert and self.oov_token in tokens:
            raise ValueError(f"{who}: Found reserved OOV token at unexpected location in "
                             f"`vocabulary`: include it only at the start, as {special}")
        size = start + len(tokens)
        if self.max_tokens is not None and size > self.max_tokens:
            raise ValueError(f"{who}: Attempted to set a vocabulary larger than the maximum "
                             f"vocab size. Received vocabulary size is {size}; `max_tokens` "
                             f"is {self.max_tokens}.")
        if self.output_mode == "tf_idf":
            w = np.asarray(idf_weights, np.float64)
            if w.ndim != 1:
                raise ValueError(f"{who}: TF-IDF data must be a 1-index array.")
            if len(w) != len(vocab):
                raise ValueError(f"{who}: `idf_weights` must be the same length as "
                                 f"vocabulary. len(idf_weights) is {len(w)}; len(vocabulary) "
                                 f"is {len(vocab)}")
            front = 0 if found else start
            back = self.max_tokens - front - len(w) if self.pad_to_max_tokens else 0
            w = np.concatenate([np.full(front, w.mean() if len(w) else 0.0), w,
                                np.zeros(max(back, 0))])
            self.idf_weights = w.astype(np.float32)
        self._set_tokens(np.asarray(tokens) if tokens else self._empty_tokens())
        self._frozen_vocab_size = self.vocabulary_size()

    def _set_tokens(self, tokens: np.ndarray) -> None:
        self._tokens = tokens.astype(str) if self._string else tokens.astype(np.int64)
        order = np.argsort(self._tokens, kind="stable")
        self._sorted, self._sorted_pos = self._tokens[order], order.astype(np.int64)

    # -- adapt ----------------------------------------------------------------------------------
    def _reset_counts(self) -> None:
        self._counts: collections.Counter = collections.Counter()
        self._doc_counts: collections.Counter = collections.Counter()
        self._num_documents = 0

    def _update_counts(self, docs: list) -> None:
        """Adds the tokens of `docs` (a list of 1-D token arrays, one per document)."""
        if self._has_input_vocabulary:
            raise ValueError(f"Cannot adapt layer '{self.name}' after setting a static "
                             "vocabulary via `vocabulary` argument or `set_vocabulary()` "
                             "method.")
        flat = np.concatenate(docs) if docs else self._empty_tokens()
        if flat.size:
            uniq, counts = np.unique(flat, return_counts=True)
            self._counts.update(dict(zip(uniq.tolist(), counts.tolist())))
        if self.output_mode == "tf_idf":
            for d in docs:
                self._doc_counts.update(np.unique(d).tolist())
            self._num_documents += len(docs)

    def _finalize(self) -> None:
        counts = self._counts
        if self._has_input_vocabulary or not counts:
            self._reset_counts()
            return
        for special in (self.mask_token, self.oov_token):
            counts.pop(special, None)
        tokens = np.asarray(list(counts)) if counts else self._empty_tokens()
        if not self._string:
            tokens = tokens.astype(np.int64)
        freq = np.fromiter(counts.values(), np.int64, len(counts))
        order = np.lexsort((tokens, freq))[::-1]
        if self.max_tokens:
            order = order[:self.max_tokens - self._token_start_index()]
        tokens = tokens[order]
        self._set_tokens(tokens)
        if self.output_mode == "tf_idf":
            docs = np.array([self._doc_counts[t] for t in tokens.tolist()], np.float64)
            idf = np.log(1.0 + self._num_documents / (1.0 + docs)).astype(np.float32)
            mean = idf.mean() if idf.size else np.float32(np.nan)
            idf = np.concatenate([np.full(self._token_start_index(), mean, np.float32), idf])
            if self.pad_to_max_tokens:
                idf = np.concatenate([idf, np.zeros(self.max_tokens - idf.size, np.float32)])
            self.idf_weights = idf
        self._reset_counts()
        self._frozen_vocab_size = self.vocabulary_size()

    def adapt(self, data, steps=None) -> None:
        """Learns the vocabulary from `data`: an array or list of tokens (each entry of a 1-D
        one a document of one token), or an iterable of such batches (a 1-D batch is one
        document), as Keras's adapt takes them."""
        self._reset_counts()
        for batch in _adapt_batches(data, steps):
            self._update_counts(self._documents(batch))
        self._finalize()

    def _documents(self, batch) -> list:
        a = self._as_tokens(batch)
        if a.ndim == 0:
            a = a.reshape(1)
        if a.ndim == 1:
            a = a.reshape(1, -1)
        return list(a.reshape(a.shape[0], -1))

    # -- the lookup -----------------------------------------------------------------------------
    def _lookup(self, x: np.ndarray) -> np.ndarray:
        """The int64 index of each token of x (any shape); the mask token gives 0 in 'int'
        mode, -1 (dropped by the encodings) otherwise."""
        flat = x.ravel()
        out = np.empty(flat.shape, np.int64)
        if self._sorted.size:
            pos = np.clip(np.searchsorted(self._sorted, flat), 0, self._sorted.size - 1)
            found = self._sorted[pos] == flat
            out[found] = self._sorted_pos[pos[found]] + self._token_start_index()
        else:
            found = np.zeros(flat.shape, bool)
        oov = ~found
        if oov.any():
            n = self.num_oov_indices
            if n == 0:
                if self.mask_token is None or not np.all(flat[oov] == self.mask_token):
                    bad = flat[oov & (flat != self.mask_token) if self.mask_token is not None
                               else oov]
                    raise ValueError(f"{self._who()}: When `num_oov_indices=0` all inputs "
                                     f"should be in vocabulary, found OOV values "
                                     f"{bad[:10].tolist()}, consider setting "
                                     "`num_oov_indices=1`.")
            elif n == 1:
                out[oov] = self._oov_start_index()
            else:
                vals = flat[oov]
                if not self._string and self.oov_method != "farmhash":
                    buckets = np.mod(vals, n)
                else:
                    text = vals if self._string else np.char.mod("%d", vals)
                    buckets = hash_strings(text.tolist(), n, self.salt)
                out[oov] = buckets + self._oov_start_index()
        if self.mask_token is not None:
            out[flat == self.mask_token] = 0 if self.output_mode == "int" else -1
        return out.reshape(x.shape)

    def _invert(self, x: np.ndarray) -> np.ndarray:
        """The token of each index (the OOV token for unknown ones, the mask token for 0)."""
        idx = x.astype(np.int64)
        start = self._token_start_index()
        table = np.asarray(self.get_vocabulary(include_special_tokens=False) + [self.oov_token],
                           dtype=str if self._string else np.int64)
        pos = idx - start
        pos = np.where((pos >= 0) & (pos < len(self._tokens)), pos, len(self._tokens))
        out = table[pos]
        if self.mask_token is not None:
            out = np.where(idx == 0, self.mask_token, out).astype(table.dtype)
        return out

    def _depth(self) -> int:
        return self.max_tokens if self.pad_to_max_tokens else self.vocabulary_size()

    def call(self, inputs):
        """The layer on data: int64 indices ('int'), tokens (invert=True), or float32
        encodings."""
        who = self._who()
        if self.output_mode != "int" and not self.pad_to_max_tokens and \
                not len(self._tokens) and self._frozen_vocab_size is None:
            raise RuntimeError(f"{who}: When using `output_mode={self.output_mode}` and "
                               "`pad_to_max_tokens=False`, you must set the layer's vocabulary "
                               "before calling it. Either pass a `vocabulary` argument to the "
                               "layer, or call `adapt` with some sample data.")
        if self.invert:
            return self._invert(_to_ints(inputs, who))
        x = self._as_tokens(inputs)
        idx = self._lookup(x)
        if self.output_mode == "int":
            return idx
        return _encode_array(idx, self._depth(), self.output_mode, self.idf_weights)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if self.output_mode == "int":
            return input_shape
        depth = self._depth()
        if self.output_mode == "one_hot":
            if len(input_shape) > 1 and input_shape[-1] == 1:
                return input_shape[:-1] + (depth,)
            return input_shape + (depth,)
        return input_shape[:-1] + (depth,)

    def _symbolic_dtype(self) -> str:
        if self.invert:
            return "string" if self._string else "int32"
        return super()._symbolic_dtype()

    def _check_symbolic_input(self, t) -> None:
        want_string = self._string and not self.invert
        if want_string and t.dtype != "string":
            raise TypeError(f"{self._who()}: expects a string input (Input(..., "
                            f"dtype='string')), got dtype {t.dtype}")
        if not want_string and t.dtype == "string":
            raise TypeError(f"{self._who()}: expects integer ids, got a string input")

    def get_config(self) -> dict:
        vocab = self.get_vocabulary() if len(self._tokens) else None
        idf = None
        if self.output_mode == "tf_idf" and self.idf_weights is not None and vocab:
            idf = [float(v) for v in self.idf_weights[:len(vocab)]]
        return {**super().get_config(), "invert": self.invert, "max_tokens": self.max_tokens,
                "num_oov_indices": self.num_oov_indices, "oov_token": self.oov_token,
                "mask_token": self.mask_token, "output_mode": self.output_mode,
                "sparse": self.sparse, "pad_to_max_tokens": self.pad_to_max_tokens,
                "vocabulary_dtype": "string" if self._string else "int64",
                "idf_weights": idf, "vocabulary": vocab,
                "vocabulary_size": self._frozen_vocab_size, "oov_method": self.oov_method,
                "salt": self.salt, "has_input_vocabulary": self._has_input_vocabulary}


def _salt(salt, who: str) -> list:
    if isinstance(salt, (tuple, list)) and len(salt) == 2:
        return [int(s) for s in salt]
    if isinstance(salt, int) and not isinstance(salt, bool):
        return [salt, salt]
    raise ValueError(f"{who}: The `salt` argument can only be a tuple of 2 integers, or a "
                     f"single integer. Received: salt={salt}.")


def _adapt_batches(data, steps):
    """adapt()'s data as batches: an array or a list is one batch; other iterables (a
    generator, a PyDataset: x or (x, y) each) give theirs (at most `steps`)."""
    if isinstance(data, (np.ndarray, list, tuple, str, bytes)) or hasattr(data, "numpy"):
        a = np.asarray(data) if not isinstance(data, (list, tuple)) else \
            np.asarray(data, dtype=object)
        if a.ndim == 1:
            a = a.reshape(-1, 1)
        yield a
        return
    if not hasattr(data, "__iter__"):
        raise TypeError(f"adapt(): expects an array, a list or an iterable of batches, got "
                        f"{type(data).__name__}")
    for i, batch in enumerate(data):
        if steps is not None and i >= steps:
            break
        yield batch[0] if isinstance(batch, tuple) else batch


class StringLookup(IndexLookup):
    """Strings to integer indices in a vocabulary (learned by `adapt` or given), Keras's
    StringLookup: index 0 for the mask token (when set), then `num_oov_indices` indices for
    unknown strings (hashed among them), then the vocabulary by decreasing frequency. With
    output_mode 'one_hot', 'multi_hot', 'count' or 'tf_idf' it encodes them; invert=True maps
    indices back to strings. Runs on the host (NumPy), in a model only after its input.

    Args:
        max_tokens: the vocabulary's largest size (with the mask and OOV indices), or None.
        num_oov_indices: indices for out-of-vocabulary strings (0: such a string is an error).
        mask_token: the string that means padding (index 0), or None.
        oov_token: the string invert=True gives for OOV indices.
        vocabulary: a list of strings, or a text file's path with one per line.
        idf_weights: with output_mode='tf_idf', the inverse document frequencies.
        invert: indices to strings instead.
        output_mode: 'int', 'one_hot', 'multi_hot', 'count' or 'tf_idf'.
        pad_to_max_tokens: encodings of max_tokens entries, whatever the vocabulary's size.
        sparse: only False (dense NumPy outputs).
        encoding: the text encoding of bytes inputs ('utf-8').
        salt: a key (int or two ints) for the hash of OOV strings (SipHash instead of FarmHash).

    Example:
        >>> layer = pynn.layers.StringLookup(vocabulary=["a", "b", "c"])
        >>> layer(np.array([["a", "c"], ["d", "b"]]))
        array([[1, 3],
               [0, 2]])
    """

    def __init__(self, max_tokens=None, num_oov_indices: int = 1, mask_token=None,
                 oov_token: str = "[UNK]", vocabulary=None, idf_weights=None,
                 invert: bool = False, output_mode: str = "int", pad_to_max_tokens: bool = False,
                 sparse: bool = False, encoding: str = "utf-8", name=None, salt=None, **kwargs):
        self.encoding = encoding
        super().__init__(max_tokens=max_tokens, num_oov_indices=num_oov_indices,
                         mask_token=mask_token, oov_token=oov_token, vocabulary=vocabulary,
                         idf_weights=idf_weights, invert=invert, output_mode=output_mode,
                         sparse=sparse, pad_to_max_tokens=pad_to_max_tokens, salt=salt,
                         name=name, **kwargs)

    def get_config(self) -> dict:
        return {**super().get_config(), "encoding": self.encoding}


class IntegerLookup(IndexLookup):
    """Integer ids to indices in a vocabulary of integers, Keras's IntegerLookup (as
    StringLookup, for int64 tokens; OOV ids go to an OOV index by floormod, or by FarmHash of
    their text with oov_method='farmhash'). Runs on the host (NumPy).

    Args:
        max_tokens, num_oov_indices, vocabulary, idf_weights, invert, output_mode,
            pad_to_max_tokens, sparse, salt: as in StringLookup.
        mask_token: the id that means padding (index 0), or None.
        oov_token: the id invert=True gives for OOV indices (-1).
        vocabulary_dtype: 'int64' only.
        oov_method: 'floormod' or 'farmhash', how OOV ids spread over num_oov_indices > 1.

    Example:
        >>> pynn.layers.IntegerLookup(vocabulary=[12, 36, 1138])(np.array([[12, 1138, 42]]))
        array([[1, 3, 0]])
    """

    _string = False

    def __init__(self, max_tokens=None, num_oov_indices: int = 1, mask_token=None,
                 oov_token: int = -1, vocabulary=None, vocabulary_dtype: str = "int64",
                 idf_weights=None, invert: bool = False, output_mode: str = "int",
                 sparse: bool = False, pad_to_max_tokens: bool = False,
                 oov_method: str = "floormod", salt=None, name=None, **kwargs):
        if vocabulary_dtype != "int64":
            raise ValueError("Only `vocabulary_dtype='int64'` is supported at this time. "
                             f"Received: vocabulary_dtype={vocabulary_dtype}")
        super().__init__(max_tokens=max_tokens, num_oov_indices=num_oov_indices,
                         mask_token=mask_token, oov_token=oov_token, vocabulary=vocabulary,
                         idf_weights=idf_weights, invert=invert, output_mode=output_mode,
                         sparse=sparse, pad_to_max_tokens=pad_to_max_tokens,
                         oov_method=oov_method, salt=salt, name=name, **kwargs)


# -- TextVectorization ----------------------------------------------------------------------------
_PUNCT = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\''
_LOWER = {ord(c): ord(c) + 32 for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}  # ASCII only, as TF's
_STRIP = {ord(c): None for c in _PUNCT}
_WHITESPACE = re.compile(r"[ \t\n\v\f\r]+")  # absl::ascii_isspace, as tf.strings.split


class TextVectorization(_HostLayer):
    """Texts to token indices or encodings, Keras's TextVectorization: standardize each text,
    split it into tokens, form ngrams, look them up in a vocabulary (learned by `adapt` or
    given; index 0 is padding, 1 the OOV token '[UNK]'), and output 'int' sequences (padded or
    cut to output_sequence_length) or 'multi_hot' / 'count' / 'tf_idf' / 'one_hot' vectors.
    Runs on the host (NumPy); in a model it follows `Input(shape=(1,), dtype="string")`.

    Args:
        max_tokens: the vocabulary's largest size (padding and OOV included), or None.
        standardize: 'lower_and_strip_punctuation', 'lower', 'strip_punctuation', None, or a
            callable taking and returning a NumPy array of str.
        split: 'whitespace', 'character', None, or a callable from a 1-D NumPy array of str to
            a list of token lists.
        ngrams: None, an int n (1..n-grams), or a tuple of ints.
        output_mode: 'int', 'multi_hot', 'count', 'tf_idf' or 'one_hot'.
        output_sequence_length: with 'int', the length of each sequence (None: the longest of
            the batch).
        pad_to_max_tokens: encodings of max_tokens entries.
        vocabulary: a list of tokens or a text file's path; idf_weights: for 'tf_idf'.
        sparse, ragged: only False.
        encoding: 'utf-8'.

    Example:
        >>> layer = pynn.layers.TextVectorization(output_sequence_length=4)
        >>> layer.adapt(["the cat sat", "the dog"])
        >>> layer(np.array([["The dog sat!"]]))
        array([[2, 4, 3, 0]])
    """

    def __init__(self, max_tokens=None, standardize="lower_and_strip_punctuation",
                 split="whitespace", ngrams=None, output_mode: str = "int",
                 output_sequence_length=None, pad_to_max_tokens: bool = False, vocabulary=None,
                 idf_weights=None, sparse: bool = False, ragged: bool = False,
                 encoding: str = "utf-8", name=None, **kwargs):
        has_input = kwargs.pop("has_input_vocabulary", vocabulary is not None)
        vocabulary_size = kwargs.pop("vocabulary_size", None)
        super().__init__(name=name, **kwargs)
        who = f"TextVectorization '{self.name}'"
        if not (standardize is None or callable(standardize) or standardize in (
                "lower_and_strip_punctuation", "lower", "strip_punctuation")):
            raise ValueError(f"{who}: Invalid value for argument standardize. Expected one of "
                             "('lower_and_strip_punctuation', 'lower', 'strip_punctuation'), "
                             f"None or a callable. Received: standardize={standardize}")
        if not (split is None or callable(split) or split in ("whitespace", "character")):
            raise ValueError(f"{who}: Invalid value for argument split. Expected one of "
                             "('whitespace', 'character'), None or a callable. Received: "
                             f"split={split}")
        output_mode = {"binary": "multi_hot", "tf-idf": "tf_idf"}.get(output_mode, output_mode)
        if output_mode not in ("int", "one_hot", "multi_hot", "count", "tf_idf"):
            raise ValueError(f"{who}: Invalid value for argument output_mode. Expected one of "
                             "('int', 'one_hot', 'multi_hot', 'count', 'tf_idf'). Received: "
                             f"output_mode={output_mode}")
        if isinstance(ngrams, list):
            ngrams = tuple(ngrams)
        if not (ngrams is None or (isinstance(ngrams, int) and not isinstance(ngrams, bool))
                or (isinstance(ngrams, tuple) and all(isinstance(i, int) for i in ngrams))):
            raise ValueError(f"{who}: `ngrams` must be None, an integer, or a tuple of "
                             f"integers. Received: ngrams={ngrams}")
        if output_mode == "int" and not (output_sequence_length is None or (
                isinstance(output_sequence_length, int) and
                not isinstance(output_sequence_length, bool))):
            raise ValueError(f"{who}: `output_sequence_length` must be either None or an "
                             "integer when `output_mode` is 'int'. Received: "
                             f"output_sequence_length={output_sequence_length}")
        if output_mode != "int" and output_sequence_length is not None:
            raise ValueError(f"{who}: `output_sequence_length` must not be set if "
                             "`output_mode` is not 'int'. Received output_sequence_length="
                             f"{output_sequence_length}.")
        if sparse or ragged:
            raise ValueError(f"{who}: sparse=True and ragged=True are not supported: pynn's "
                             "outputs are dense NumPy arrays")
        self._standardize, self._split, self._ngrams_arg = standardize, split, ngrams
        self._ngrams = tuple(range(1, ngrams + 1)) if isinstance(ngrams, int) else ngrams
        self._output_mode, self._output_sequence_length = output_mode, output_sequence_length
        self._ragged, self._encoding = False, encoding
        self._lookup_layer = StringLookup(
            max_tokens=max_tokens, vocabulary=vocabulary, idf_weights=idf_weights,
            pad_to_max_tokens=pad_to_max_tokens, mask_token="", output_mode=output_mode,
            encoding=encoding, has_input_vocabulary=has_input, vocabulary_size=vocabulary_size,
            name=f"{self.name}_lookup")
        self._has_input_vocabulary = has_input

    @property
    def output_mode(self) -> str:
        return self._output_mode

    @property
    def max_tokens(self):
        return self._lookup_layer.max_tokens

    # -- the texts as tokens --------------------------------------------------------------------
    def _standardized(self, x: np.ndarray) -> np.ndarray:
        s = self._standardize
        if s is None:
            return x
        if callable(s):
            out = s(x)
            if hasattr(out, "numpy") and not isinstance(out, np.ndarray):
                out = out.numpy()
            return _to_text(out, f"TextVectorization '{self.name}': standardize's result")
        table = {**(_LOWER if s in ("lower", "lower_and_strip_punctuation") else {}),
                 **(_STRIP if s in ("strip_punctuation", "lower_and_strip_punctuation")
                    else {})}
        if not x.size:
            return x
        return np.array([t.translate(table) for t in x.ravel().tolist()],
                        dtype=str).reshape(x.shape)

    def _preprocess(self, inputs):
        """The tokens of each text: a list of 1-D str arrays (split), or a str array (no
        split)."""
        who = f"TextVectorization '{self.name}'"
        x = self._standardized(_to_text(inputs, who))
        if self._split is None:
            if self._ngrams is not None:
                raise ValueError(f"{who}: ngrams need split (the tokens of each text)")
            return x
        if x.ndim == 0:
            x = x.reshape(1)
        if x.ndim > 1:
            if x.shape[-1] != 1:
                raise ValueError(f"{who}: When using `TextVectorization` to tokenize strings, "
                                 "the input rank must be 1 or the last shape dimension must be "
                                 f"1. Received: inputs.shape={x.shape} with rank={x.ndim}")
            x = x.reshape(x.shape[:-1])
        if x.ndim != 1:
            raise ValueError(f"{who}: expects a batch of texts, shape (batch,) or (batch, 1), "
                             f"got {x.shape}")
        texts = x.tolist()
        if self._split == "whitespace":
            docs = [[t for t in _WHITESPACE.split(s) if t] for s in texts]
        elif self._split == "character":
            docs = [list(s) for s in texts]
        else:
            docs = [list(d) for d in self._split(x)]
        if self._ngrams is not None:
            docs = [[" ".join(d[i:i + n]) for n in self._ngrams
                     for i in range(len(d) - n + 1)] for d in docs]
        return [np.array(d, dtype=str) if d else np.zeros(0, "U1") for d in docs]

    # -- vocabulary -----------------------------------------------------------------------------
    def adapt(self, data, batch_size=None, steps=None) -> None:
        """Learns the vocabulary (and, for 'tf_idf', the document frequencies) from texts: an
        array or list of them, or an iterable of batches (a generator, a PyDataset giving x or
        (x, y)), as Keras's adapt."""
        lookup = self._lookup_layer
        lookup._reset_counts()
        for batch in _adapt_batches(data, steps):
            tokens = self._preprocess(batch)
            if isinstance(tokens, np.ndarray):
                tokens = lookup._documents(tokens)
            lookup._update_counts(tokens)
        lookup._finalize()

    def get_vocabulary(self, include_special_tokens: bool = True) -> list:
        """The vocabulary in index order ('' and '[UNK]' first, unless
        include_special_tokens=False)."""
        return self._lookup_layer.get_vocabulary(include_special_tokens)

    def vocabulary_size(self) -> int:
        return self._lookup_layer.vocabulary_size()

    def set_vocabulary(self, vocabulary, idf_weights=None) -> None:
        """Sets the vocabulary (a list, or a text file's path) and, for 'tf_idf', its
        idf_weights."""
        self._lookup_layer.set_vocabulary(vocabulary, idf_weights=idf_weights)

    @property
    def idf_weights(self):
        return self._lookup_layer.idf_weights

    # -- the call -------------------------------------------------------------------------------
    def call(self, inputs):
        lookup = self._lookup_layer
        tokens = self._preprocess(inputs)
        if isinstance(tokens, np.ndarray):  # split=None: the strings are the tokens
            out = lookup.call(tokens)
            if self._output_mode == "int" and self._output_sequence_length is not None:
                n = self._output_sequence_length
                out = out[..., :n]
                pad = [(0, 0)] * (out.ndim - 1) + [(0, n - out.shape[-1])]
                out = np.pad(out, pad)
            return out
        lens = np.fromiter(map(len, tokens), np.int64, len(tokens))
        flat = np.concatenate(tokens) if len(tokens) else np.zeros(0, "U1")
        idx = lookup._lookup(flat.astype(str))
        rows = np.split(idx, np.cumsum(lens)[:-1]) if len(tokens) else []
        if self._output_mode == "int":
            n = self._output_sequence_length
            if n is None:
                n = int(lens.max()) if len(lens) else 0
            out = np.zeros((len(tokens), n), np.int64)
            keep = np.minimum(lens, n)
            mask = np.arange(n)[None, :] < keep[:, None]
            out[mask] = np.concatenate([r[:k] for r, k in zip(rows, keep)]) if len(rows) \
                else np.zeros(0, np.int64)
            return out
        depth = lookup._depth()
        if self._output_mode == "one_hot":
            raise ValueError(f"TextVectorization '{self.name}': output_mode='one_hot' encodes "
                             "one token per text: use split=None")
        return _encode(rows, depth, self._output_mode, lookup.idf_weights)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if self._output_mode == "int":
            if self._split is None:
                shape = input_shape
                if self._output_sequence_length is not None:
                    shape = shape[:-1] + (self._output_sequence_length,)
                return shape
            return (input_shape[0], self._output_sequence_length)
        if self._split is None:
            if len(input_shape) <= 1:
                input_shape = input_shape + (1,)
        else:  # the texts' axis of 1 goes, a tokens axis comes
            if len(input_shape) == 2 and input_shape[-1] == 1:
                input_shape = input_shape[:1]
            input_shape = input_shape + (None,)
        return self._lookup_layer.compute_output_shape(input_shape)

    def _check_symbolic_input(self, t) -> None:
        if t.dtype != "string":
            raise TypeError(f"TextVectorization '{self.name}': expects a string input "
                            f"(Input(shape=(1,), dtype='string')), got dtype {t.dtype}")
        if self._split is not None and len(t.shape) > 2 or (
                len(t.shape) == 2 and self._split is not None and t.shape[-1] != 1):
            raise ValueError(f"TextVectorization '{self.name}': When using `TextVectorization` "
                             "to tokenize strings, the input rank must be 1 or the last shape "
                             f"dimension must be 1. Received: inputs.shape={t.shape}")

    def get_config(self) -> dict:
        lookup = self._lookup_layer
        config = lookup.get_config()
        standardize, split = (_serialize_fn(v) if callable(v) else v
                              for v in (self._standardize, self._split))
        return {**Layer.get_config(self), "max_tokens": lookup.max_tokens,
                "standardize": standardize, "split": split, "ngrams": self._ngrams_arg,
                "output_mode": self._output_mode,
                "output_sequence_length": self._output_sequence_length,
                "pad_to_max_tokens": lookup.pad_to_max_tokens, "sparse": False,
                "ragged": False, "vocabulary": config["vocabulary"],
                "idf_weights": config["idf_weights"], "encoding": self._encoding,
                "vocabulary_size": self.vocabulary_size(),
                "has_input_vocabulary": self._has_input_vocabulary}

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        config = dict(config)
        for arg in ("standardize", "split"):
            if isinstance(config.get(arg), dict):
                config[arg] = _deserialize_fn(config[arg], custom_objects, arg)
        if isinstance(config.get("ngrams"), list):
            config["ngrams"] = tuple(config["ngrams"])
        return cls(**config)


def _serialize_fn(fn) -> dict:
    """A standardize or split function as Keras saves one: by its registered name
    (pynn.saving.register_keras_serializable), found again when loading without running code."""
    from ..saving.serialization import _REGISTERED_NAMES
    name = getattr(fn, "__name__", type(fn).__name__)
    return {"module": getattr(fn, "__module__", None), "class_name": "function",
            "config": name, "registered_name": _REGISTERED_NAMES.get(fn, name)}


def _deserialize_fn(config: dict, custom_objects, arg: str):
    from ..saving.serialization import _REGISTERED
    custom = custom_objects or {}
    for key in (config.get("registered_name"), config.get("config")):
        if isinstance(key, str):
            fn = custom.get(key) or _REGISTERED.get(key)
            if fn is not None and callable(fn):
                return fn
    raise ValueError(f"TextVectorization: the `{arg}` function {config.get('config')!r} is not "
                     "registered: decorate it with pynn.saving.register_keras_serializable() or "
                     "pass it in custom_objects")


class Hashing(_HostLayer):
    """Each value (a string, or an integer hashed as its decimal text) to one of num_bins bins,
    Keras's Hashing: FarmHash Fingerprint64 (tf.strings.to_hash_bucket_fast), or SipHash-2-4
    keyed by `salt` (to_hash_bucket_strong). With mask_value, that value gets bin 0 and the
    others bins 1..num_bins-1. output_mode 'one_hot', 'multi_hot' or 'count' encodes the bins.
    Runs on the host (NumPy).

    Args:
        num_bins: the number of bins (mask bin included).
        mask_value: the value that means padding (bin 0), or None.
        salt: an int or two ints: the key of a SipHash (None: FarmHash).
        output_mode: 'int', 'one_hot', 'multi_hot' or 'count'.
        sparse: only False.

    Example:
        >>> pynn.layers.Hashing(num_bins=3)(np.array([["A"], ["B"], ["C"], ["D"], ["E"]]))
        array([[1],
               [0],
               [1],
               [1],
               [2]])
    """

    def __init__(self, num_bins, mask_value=None, salt=None, output_mode: str = "int",
                 sparse: bool = False, **kwargs):
        dtype = kwargs.pop("dtype", None)
        super().__init__(**kwargs)
        who = f"Hashing '{self.name}'"
        if num_bins is None or isinstance(num_bins, bool) or not isinstance(num_bins, int) \
                or num_bins <= 0:
            raise ValueError(f"{who}: The `num_bins` for `Hashing` cannot be `None` or "
                             f"non-positive values. Received: num_bins={num_bins}.")
        if output_mode not in ("int", "one_hot", "multi_hot", "count"):
            raise ValueError(f"{who}: Invalid value for argument `output_mode`. Expected one of "
                             "('int', 'one_hot', 'multi_hot', 'count'). Received: "
                             f"output_mode={output_mode}")
        if dtype is None:
            dtype = "int64" if output_mode == "int" else "float32"
        if output_mode == "int" and dtype not in ("int32", "int64"):
            raise ValueError(f"{who}: When `output_mode=\"int\"`, `dtype` should be an integer "
                             f"type, 'int32' or 'in64'. Received: dtype={dtype}")
        if sparse:
            raise ValueError(f"{who}: sparse=True is not supported: pynn's outputs are dense "
                             "NumPy arrays")
        self.num_bins, self.mask_value, self.output_mode = num_bins, mask_value, output_mode
        self.sparse, self._out_dtype = False, str(dtype)
        self.strong_hash = salt is not None
        self.salt = None if salt is None else _salt(salt, who)

    def _bins(self, values: np.ndarray) -> np.ndarray:
        bins, mask = self.num_bins, None
        if self.mask_value is not None and bins > 1:
            bins -= 1
            mask = values == self.mask_value
        if values.dtype.kind == "f":
            values = values.astype(np.int64)
        if values.dtype.kind in "iub":
            text = [str(int(v)) for v in values.ravel().tolist()]
        else:
            text = values.ravel().tolist()
        out = hash_strings(text, bins, self.salt).reshape(values.shape)
        if mask is not None:
            out = np.where(mask, 0, out + 1)
        return out

    def call(self, inputs):
        if hasattr(inputs, "numpy") and not isinstance(inputs, np.ndarray):
            inputs = inputs.numpy()
        a = np.asarray(inputs) if not isinstance(inputs, (list, tuple)) else \
            np.asarray(inputs, dtype=object)
        if a.dtype.kind in "OSU":
            a = _to_text(a, f"Hashing '{self.name}'")
        elif a.dtype.kind not in "iubf":
            raise TypeError(f"Hashing '{self.name}': expects strings or numbers, got dtype "
                            f"{a.dtype}")
        if self.output_mode == "one_hot" and a.ndim and a.shape[-1] == 1:
            a = a[..., 0]
        idx = self._bins(a)
        if self.output_mode == "int":
            return idx.astype(self._out_dtype)
        return _encode_array(idx, self.num_bins, self.output_mode)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if self.output_mode == "int":
            return input_shape
        if self.output_mode == "one_hot" and input_shape and input_shape[-1] == 1:
            return input_shape[:-1] + (self.num_bins,)
        if self.output_mode == "one_hot":
            return input_shape + (self.num_bins,)
        return input_shape[:-1] + (self.num_bins,)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_bins": self.num_bins, "salt": self.salt,
                "mask_value": self.mask_value, "output_mode": self.output_mode,
                "sparse": self.sparse}


__all__ = ["Hashing", "IntegerLookup", "StringLookup", "TextVectorization"]
