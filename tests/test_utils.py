"""pynn.utils: pad_sequences with Keras's semantics (its documented examples)."""

import numpy as np
import pytest

from pynn.utils import pad_sequences

SEQS = [[1], [2, 3], [4, 5, 6]]


@pytest.mark.parametrize("kwargs, want", [
    ({}, [[0, 0, 1], [0, 2, 3], [4, 5, 6]]),
    ({"value": -1}, [[-1, -1, 1], [-1, 2, 3], [4, 5, 6]]),
    ({"padding": "post"}, [[1, 0, 0], [2, 3, 0], [4, 5, 6]]),
    ({"maxlen": 2}, [[0, 1], [2, 3], [5, 6]]),
    ({"maxlen": 2, "truncating": "post"}, [[0, 1], [2, 3], [4, 5]]),
    ({"maxlen": 4, "padding": "post", "truncating": "post"},
     [[1, 0, 0, 0], [2, 3, 0, 0], [4, 5, 6, 0]]),
])
def test_pad_sequences_matches_keras(kwargs, want):
    out = pad_sequences(SEQS, **kwargs)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, want)


def test_pad_sequences_keeps_dtype_and_entry_shape_and_empty_sequences():
    out = pad_sequences([np.ones((2, 3)), []], maxlen=3, dtype="float32", value=0.5)
    assert out.shape == (2, 3, 3) and out.dtype == np.float32
    assert np.all(out[0, 0] == 0.5) and np.all(out[0, 1:] == 1.0) and np.all(out[1] == 0.5)


@pytest.mark.parametrize("kwargs, match", [
    ({"padding": "middle"}, "padding"),
    ({"truncating": "both"}, "truncating"),
    ({"maxlen": -1}, "maxlen"),
])
def test_pad_sequences_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pad_sequences(SEQS, **kwargs)


def test_pad_sequences_refuses_scalars_and_ragged_entries():
    with pytest.raises(ValueError, match="sequence"):
        pad_sequences([1, 2])
    with pytest.raises(ValueError, match="shapes differ"):
        pad_sequences([np.ones((2, 3)), np.ones((1, 2))])
