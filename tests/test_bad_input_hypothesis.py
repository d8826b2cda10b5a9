"""Bad input with random shapes and dtypes (Hypothesis) for predict, fit and Tensor arithmetic:
each works as NumPy would, or raises TypeError/ValueError/MemoryError and changes nothing."""

import operator

import numpy as np
import pytest

pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402
from test_bad_input_battery import BAD, assert_unchanged, classifier, snapshot  # noqa: E402

import pynn  # noqa: E402

DTYPES = st.sampled_from([np.float32, np.float64, np.float16, np.int32, np.int64, np.uint8,
                          np.bool_, np.complex64, object, "U3"])
SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6)
SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))
_MODEL = []


def _shared_model():
    if not _MODEL:
        _MODEL.append(classifier())
    return _MODEL[0]


def _array(shape, dtype):
    if dtype is object:
        return np.full(shape, 1.5, dtype=object)
    return np.ones(shape, dtype=dtype)


def _fits(shape, dtype) -> bool:
    return (len(shape) == 2 and shape[0] > 0 and shape[1] == 4 and dtype not in
            (np.complex64, object, "U3"))


@SETTINGS
@given(shape=SHAPES, dtype=DTYPES)
def test_predict_on_random_shapes_and_dtypes_works_or_raises_cleanly(shape, dtype):
    model = _shared_model()
    x = _array(shape, dtype)
    if _fits(shape, dtype):
        assert model.predict(x, verbose=0).shape == (shape[0], 3)
        return
    with pytest.raises(BAD):
        model.predict(x, verbose=0)


@SETTINGS
@given(shape=SHAPES, dtype=DTYPES, labels=st.integers(-2, 4))
def test_fit_on_random_shapes_and_dtypes_works_or_raises_and_changes_nothing(shape, dtype,
                                                                              labels):
    model = _shared_model()
    x = _array(shape, dtype)
    y = np.full(shape[0] if len(shape) else 1, labels)
    snap = snapshot(model)
    if _fits(shape, dtype) and 0 <= labels < 3:
        model.fit(x, y, epochs=1, verbose=0)
        assert all(np.isfinite(w).all() for w in model.get_weights())
        return
    with pytest.raises(BAD):
        model.fit(x, y, epochs=1, verbose=0)
    assert_unchanged(model, snap)


@SETTINGS
@given(a=SHAPES, b=SHAPES, dtype=DTYPES, op=st.sampled_from(["+", "-", "*", "/", "@"]))
def test_tensor_ops_on_random_shapes_and_dtypes_match_numpy_or_raise_cleanly(a, b, dtype, op):
    x, y = np.full(a, 2.0, np.float32), _array(b, dtype)
    fn = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
          "@": operator.matmul}[op]
    try:
        want = fn(x, y.astype(np.float32)) if dtype not in (np.complex64, object, "U3") else None
    except ValueError:
        want = None
    if want is None or (op == "@" and (x.ndim < 1 or y.ndim < 1)):
        with pytest.raises(BAD):
            fn(pynn.Tensor(x), y)
        return
    try:
        got = np.asarray(fn(pynn.Tensor(x), y))
    except BAD:
        return  # a broadcast or a batched matmul pynn does not do: refused cleanly
    np.testing.assert_allclose(got, want, rtol=1e-6)
