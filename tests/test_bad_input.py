"""Bad input: a clear Python exception before any state changes, never a crash.

Each test gets a compiled model, makes one bad call, checks the exception type and message, and
checks that the weights, the optimizer's step count and (for fit) the history are untouched.
"""

import numpy as np
import pytest

import pynn
from pynn import layers

RNG = np.random.default_rng(7)
X = RNG.random((12, 4)).astype(np.float32)
Y = RNG.integers(0, 3, 12)


def classifier(compile_it: bool = True):
    model = pynn.Sequential([pynn.Input(shape=(4,)), layers.Dense(5, activation="relu"),
                             layers.Dense(3, activation="softmax")])
    if compile_it:
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    return model


def snapshot(model):
    return [w.copy() for w in model.get_weights()], model.optimizer.iterations


def assert_unchanged(model, snap):
    weights, iterations = snap
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))
    assert model.optimizer.iterations == iterations


BAD_FIT = {
    "too_many_features": (dict(x=RNG.random((12, 5)), y=Y), ValueError,
                          r"\(None, 4\).*\(12, 5\)"),
    "too_few_features": (dict(x=RNG.random((12, 3)), y=Y), ValueError, r"\(None, 4\).*\(12, 3\)"),
    "x_y_length_mismatch": (dict(x=X, y=Y[:11]), ValueError, "x has 12 samples but y has 11"),
    "empty_x_and_y": (dict(x=X[:0], y=Y[:0]), ValueError, "empty"),
    "label_equal_to_class_count": (dict(x=X, y=np.full(12, 3)), ValueError, r"0\.\.2"),
    "negative_label": (dict(x=X, y=np.full(12, -1)), ValueError, r"0\.\.2"),
    "fractional_label": (dict(x=X, y=np.full(12, 0.5)), ValueError, "integers"),
    "nan_label": (dict(x=X, y=np.full(12, np.nan)), ValueError, "integers"),
    "string_features": (dict(x=np.array([["a"] * 4] * 12), y=Y), TypeError, "real numbers"),
    "ragged_list": (dict(x=[[1, 2, 3, 4], [1, 2]], y=[0, 1]), ValueError, "array"),
    "missing_x": (dict(x=None, y=Y), ValueError, "x is missing"),
    "missing_y": (dict(x=X, y=None), ValueError, "y is missing"),
    "scalar_x": (dict(x=3.0, y=Y), ValueError, "batch axis"),
    "batch_size_zero": (dict(x=X, y=Y, batch_size=0), ValueError, "batch_size"),
    "negative_epochs": (dict(x=X, y=Y, epochs=-1), ValueError, "epochs"),
    "validation_split_one": (dict(x=X, y=Y, validation_split=1.0), ValueError,
                             "validation_split"),
    "validation_data_wrong_features": (dict(x=X, y=Y, validation_data=(RNG.random((3, 5)), Y[:3])),
                                       ValueError, r"\(None, 4\).*\(3, 5\)"),
    "validation_data_not_a_pair": (dict(x=X, y=Y, validation_data=X), ValueError,
                                   "validation_data"),
    "bad_verbose": (dict(x=X, y=Y, verbose=3), ValueError, "verbose"),
}


@pytest.mark.parametrize("kwargs, exc, match", BAD_FIT.values(), ids=BAD_FIT.keys())
def test_bad_fit_raises_and_leaves_model_unchanged(kwargs, exc, match):
    model = classifier()
    model.fit(X, Y, epochs=1, verbose=0)  # a plan and optimizer state exist already
    snap = snapshot(model)
    history = model.history
    kwargs.setdefault("verbose", 0)
    with pytest.raises(exc, match=match):
        model.fit(**kwargs)
    assert_unchanged(model, snap)
    assert model.history is history


def test_fit_before_compile_raises_runtime_error():
    with pytest.raises(RuntimeError, match=r"compile\(\)"):
        classifier(compile_it=False).fit(X, Y, verbose=0)


@pytest.mark.parametrize("call", ["evaluate", "fit"])
def test_evaluate_and_fit_before_compile_name_the_call(call):
    model = classifier(compile_it=False)
    with pytest.raises(RuntimeError, match=call):
        getattr(model, call)(X, Y, verbose=0)


def test_predict_works_without_compile():
    assert classifier(compile_it=False).predict(X, verbose=0).shape == (12, 3)


@pytest.mark.parametrize("x, match", [
    (RNG.random((2, 5)).astype(np.float32), r"\(None, 4\).*\(2, 5\)"),   # the latency path
    (RNG.random((2, 5)), r"\(None, 4\).*\(2, 5\)"),                        # the general path
    (RNG.random((2, 4, 1)).astype(np.float32), r"\(None, 4\).*\(2, 4, 1\)"),
    (np.zeros((0, 4), np.float32), "empty"),
])
def test_predict_with_wrong_shape_raises_value_error(x, match):
    model = classifier()
    with pytest.raises(ValueError, match=match):
        model.predict(x, verbose=0)


def test_evaluate_with_labels_out_of_range_raises_and_changes_nothing():
    model = classifier()
    snap = snapshot(model)
    with pytest.raises(ValueError, match=r"0\.\.2"):
        model.evaluate(X, Y + 5, verbose=0)
    assert_unchanged(model, snap)


@pytest.mark.parametrize("what, call, match", [
    ("loss", lambda m: m.compile(optimizer="adam", loss="mean_squared_errorr"),
     "Unknown loss 'mean_squared_errorr'"),
    ("optimizer", lambda m: m.compile(optimizer="adamm", loss="mse"), "Unknown optimizer 'adamm'"),
    ("metric", lambda m: m.compile(optimizer="adam", loss="mse", metrics=["accuracyy"]),
     "Unknown metric 'accuracyy'"),
])
def test_unknown_names_in_compile_raise_value_error_and_keep_the_old_compile(what, call, match):
    model = classifier()
    old = model.optimizer, model.loss, model.metrics_names
    with pytest.raises(ValueError, match=match):
        call(model)
    assert (model.optimizer, model.loss, model.metrics_names) == old
    model.fit(X, Y, epochs=1, verbose=0)  # still trains as first compiled


@pytest.mark.parametrize("make, match", [
    (lambda: layers.Dense(3, activation="rellu"), "Unknown activation 'rellu'"),
    (lambda: layers.Activation("softmaxx"), "Unknown activation 'softmaxx'"),
    (lambda: layers.Dense(0), "units"),
    (lambda: layers.Dense(-2), "units"),
    (lambda: layers.Dense(3, kernel_initializer="glorot_uniformm"), "Unknown initializer"),
    (lambda: layers.Dense(3, kernel_regularizer="l3"), "Unknown regularizer"),
])
def test_bad_layer_arguments_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_sparse_accuracy_with_one_hot_loss_is_refused_at_compile():
    model = classifier(compile_it=False)
    with pytest.raises(ValueError, match="sparse"):
        model.compile(optimizer="adam", loss="categorical_crossentropy",
                      metrics=["sparse_categorical_accuracy"])


def test_one_hot_targets_of_wrong_width_raise_value_error():
    model = classifier(compile_it=False)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    with pytest.raises(ValueError, match=r"\(None, 3\)"):
        model.fit(X, np.zeros((12, 4), np.float32), verbose=0)


def test_set_weights_with_a_wrong_shape_changes_nothing():
    model = classifier()
    before = model.get_weights()
    bad = [w.copy() + 1 for w in before]
    bad[-1] = np.zeros(4, np.float32)  # the last bias has 3 entries
    with pytest.raises(ValueError, match="shape"):
        model.set_weights(bad)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_core_rejects_bad_arrays_with_exceptions_not_crashes():
    """The extension itself checks what it is handed, for callers that skip the Python layer."""
    core = classifier()._core
    with pytest.raises(ValueError):
        core.predict(np.zeros((2, 7), np.float32), 4)
    with pytest.raises(ValueError):
        core.predict(np.zeros((2, 4), np.float32), 0)
    with pytest.raises(ValueError, match="label"):
        core.train_step(X, (Y + 7).astype(np.int32), np.arange(4))
    with pytest.raises(ValueError):
        core.train_step(X[:, :3].copy(), Y.astype(np.int32), np.arange(4))
    with pytest.raises(ValueError):
        core.train_step(X, Y.astype(np.int32), np.array([0, 99]))


def test_a_batch_too_large_for_int_sizes_is_refused_not_overflowed():
    model = pynn.Sequential([pynn.Input(shape=(4,)), layers.Dense(1 << 20)])
    with pytest.raises(ValueError, match="too large"):
        model._core.plan_bytes(4096)


def test_one_input_model_accepts_its_array_in_a_list_or_dict_and_refuses_two():
    model = classifier()
    want = model.predict(X, verbose=0)
    np.testing.assert_array_equal(model.predict([X], verbose=0), want)
    np.testing.assert_array_equal(model.predict({"input": X}, verbose=0), want)
    with pytest.raises(ValueError, match="has 1 input, but x holds 2 arrays"):
        model.fit([X, X], Y, verbose=0)
    with pytest.raises(ValueError, match="has 1 input"):
        model.predict([X, X], verbose=0)


def test_calling_a_model_on_data_in_training_mode_trains_like_fit_not_inference():
    pynn.utils.set_random_seed(0)
    model = pynn.Sequential([pynn.Input((X.shape[1],)), pynn.layers.Dropout(0.5),
                             pynn.layers.Dense(3)])
    np.testing.assert_array_equal(model(X), model.predict(X, verbose=0))
    dropped = np.asarray(model(X, training=True))
    assert not np.allclose(dropped, model.predict(X, verbose=0))
