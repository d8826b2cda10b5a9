"""Keras 3 semantics of the public API: fit's History, 'accuracy' resolution, evaluate, predict,
summary, Dense defaults, weights as shared NumPy arrays, building, naming, seeding, input types,
threads, verbosity and callbacks."""

import os
import re

import numpy as np
import pandas as pd
import pytest

import pynn
from pynn.layers import Dense

RNG = np.random.default_rng(1234)
X = RNG.random((40, 4)).astype(np.float32)
Y_REG = RNG.standard_normal((40, 3)).astype(np.float32)
Y_INT = RNG.integers(0, 3, 40)
Y_ONEHOT = pynn.utils.to_categorical(Y_INT, 3)
Y_BIN = (X[:, :1] + X[:, 1:2] > 1.0).astype(np.float32)


def mlp(units=3, activation=None, hidden=8, features=4):
    return pynn.Sequential([pynn.Input(shape=(features,)), Dense(hidden, activation="tanh"),
                            Dense(units, activation=activation)])


def weights_equal(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(p, q) for p, q in zip(a, b))


# ---- fit's History ---------------------------------------------------------------------------

@pytest.mark.parametrize("metrics,validation,keys", [
    (None, False, {"loss"}),
    (None, True, {"loss", "val_loss"}),
    (["accuracy"], True, {"accuracy", "loss", "val_accuracy", "val_loss"}),
    (["acc"], False, {"acc", "loss"}),
    (["mae"], False, {"loss", "mae"}),
    (["mae", "mse"], True, {"loss", "mae", "mse", "val_loss", "val_mae", "val_mse"}),
    ([pynn.metrics.MeanAbsoluteError()], False, {"loss", "mean_absolute_error"}),
])
def test_history_keys_are_keras_names(metrics, validation, keys):
    model = mlp()
    model.compile(optimizer="adam", loss="mse", metrics=metrics)
    history = model.fit(X, Y_ONEHOT, epochs=3, validation_split=0.25 if validation else 0.0,
                        verbose=0)
    assert set(history.history) == keys
    assert all(len(v) == 3 for v in history.history.values())
    assert history.epoch == [0, 1, 2]
    assert model.history is history


def test_history_loss_is_sample_weighted_mean_of_the_epoch():
    """With lr 0 the weights never move, so the epoch loss is the loss over all samples,
    even though the last batch (40 = 3 * 13 + 1) is short."""
    model = mlp()
    model.compile(optimizer=pynn.optimizers.SGD(learning_rate=0.0), loss="mse")
    history = model.fit(X, Y_REG, batch_size=13, epochs=1, verbose=0)
    want = np.mean((model.predict(X, verbose=0) - Y_REG) ** 2)
    assert history.history["loss"][0] == pytest.approx(want, rel=1e-5)


def test_history_val_loss_equals_evaluate_on_split_tail():
    model = mlp()
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    history = model.fit(X, Y_REG, epochs=2, validation_split=0.25, verbose=0)
    loss, mae = model.evaluate(X[30:], Y_REG[30:], verbose=0)
    assert history.history["val_loss"][-1] == pytest.approx(loss, rel=1e-5)
    assert history.history["val_mae"][-1] == pytest.approx(mae, rel=1e-5)


# ---- 'accuracy' resolves by loss and output shape ----------------------------------------------

def _binary_acc(p, y):
    return np.mean((p > 0.5) == (y > 0.5))


def _categorical_acc(p, y):
    return np.mean(np.argmax(p, -1) == np.argmax(y, -1))


def _sparse_acc(p, y):
    return np.mean(np.argmax(p, -1) == y)


ACCURACY_CASES = {
    "binary_crossentropy_sigmoid_1": ("binary_crossentropy", 1, "sigmoid", Y_BIN, _binary_acc),
    "mse_1_unit_is_binary": ("mse", 1, "sigmoid", Y_BIN, _binary_acc),
    "categorical_crossentropy": ("categorical_crossentropy", 3, "softmax", Y_ONEHOT,
                                 _categorical_acc),
    "mse_3_units_is_categorical": ("mse", 3, "softmax", Y_ONEHOT, _categorical_acc),
    "sparse_categorical_crossentropy": ("sparse_categorical_crossentropy", 3, "softmax", Y_INT,
                                        _sparse_acc),
}


@pytest.mark.parametrize("case", sorted(ACCURACY_CASES))
def test_accuracy_resolves_like_keras_and_matches_numpy(case):
    loss, units, act, y, numpy_acc = ACCURACY_CASES[case]
    model = mlp(units, act)
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    model.fit(X, y, epochs=2, batch_size=8, verbose=0)
    _, acc = model.evaluate(X, y, batch_size=7, verbose=0)
    want = numpy_acc(model.predict(X, verbose=0), y)
    assert acc == pytest.approx(want, abs=1e-6)


def test_explicit_accuracy_metrics_match_numpy():
    model = mlp(3, "softmax")
    model.compile(optimizer="adam", loss="categorical_crossentropy",
                  metrics=["categorical_accuracy", "mae"])
    logs = model.evaluate(X, Y_ONEHOT, verbose=0, return_dict=True)
    p = model.predict(X, verbose=0)
    assert logs["categorical_accuracy"] == pytest.approx(_categorical_acc(p, Y_ONEHOT), abs=1e-6)
    assert logs["mae"] == pytest.approx(np.mean(np.abs(p - Y_ONEHOT)), rel=1e-5)


# ---- evaluate ----------------------------------------------------------------------------------

def test_evaluate_without_metrics_returns_float_mse_of_predict():
    model = mlp()
    model.compile(optimizer="sgd", loss="mse")
    loss = model.evaluate(X, Y_REG, batch_size=7, verbose=0)
    assert type(loss) is float
    assert loss == pytest.approx(np.mean((model.predict(X, verbose=0) - Y_REG) ** 2), rel=1e-5)


def test_evaluate_with_metrics_returns_list_loss_first():
    model = mlp()
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    result = model.evaluate(X, Y_REG, verbose=0)
    p = model.predict(X, verbose=0)
    assert isinstance(result, list) and len(result) == 2
    assert result[0] == pytest.approx(np.mean((p - Y_REG) ** 2), rel=1e-5)
    assert result[1] == pytest.approx(np.mean(np.abs(p - Y_REG)), rel=1e-5)


def test_evaluate_return_dict_has_loss_and_metric_names():
    model = mlp()
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    result = model.evaluate(X, Y_REG, verbose=0, return_dict=True)
    assert set(result) == {"loss", "mae"}
    assert result["loss"] == pytest.approx(model.evaluate(X, Y_REG, verbose=0)[0])


def test_evaluate_does_not_change_weights():
    model = mlp()
    model.compile(optimizer="sgd", loss="mse")
    before = model.get_weights()
    model.evaluate(X, Y_REG, verbose=0)
    assert weights_equal(before, model.get_weights())


# ---- predict -----------------------------------------------------------------------------------

def _numpy_forward(model, x):
    (k1, b1), (k2, b2) = (layer.get_weights() for layer in model.layers)
    return np.tanh(x @ k1 + b1) @ k2 + b2


@pytest.mark.parametrize("batch_size", [None, 1, 7, 40, 1000])
def test_predict_float32_shape_and_values_for_any_batch_size(batch_size):
    model = mlp()
    out = model.predict(X, batch_size=batch_size, verbose=0)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (40, 3)
    np.testing.assert_allclose(out, _numpy_forward(model, X), rtol=1e-5, atol=1e-6)


def test_predict_returns_a_fresh_array_each_call():
    model = mlp()
    a = model.predict(X, verbose=0)
    b = model.predict(X, verbose=0)
    assert not np.shares_memory(a, b)
    a[...] = 0
    assert np.array_equal(b, model.predict(X, verbose=0))


def test_model_call_matches_predict():
    model = mlp()
    np.testing.assert_array_equal(model(X[:5]), model.predict(X[:5], verbose=0))


# ---- summary -----------------------------------------------------------------------------------

def test_summary_prints_keras_table_for_mnist_mlp(capsys):
    model = pynn.Sequential([pynn.Input(shape=(784,)), Dense(128, activation="relu"),
                             Dense(10, activation="softmax")])
    model.summary()
    out = capsys.readouterr().out
    first, second = model.layers
    assert f'Model: "{model.name}"' in out
    assert f"{first.name} (Dense)" in out and f"{second.name} (Dense)" in out
    assert "(None, 128)" in out and "(None, 10)" in out
    assert "100,480" in out and "1,290" in out
    assert "Total params: 101,770" in out
    assert "Trainable params: 101,770" in out
    assert "Non-trainable params: 0" in out


def test_summary_print_fn_receives_the_text(capsys):
    model = mlp()
    lines = []
    model.summary(print_fn=lines.append)
    assert capsys.readouterr().out == ""
    assert "Total params: 67" in "\n".join(lines)  # 4*8+8 + 8*3+3


# ---- Dense defaults ----------------------------------------------------------------------------

def test_dense_default_kernel_glorot_uniform_bias_zero():
    model = pynn.Sequential([pynn.Input(shape=(60,)), Dense(40)])
    layer = model.layers[0]
    limit = np.sqrt(6.0 / (60 + 40))
    assert layer.kernel.shape == (60, 40) and layer.bias.shape == (40,)
    assert np.abs(layer.kernel).max() <= limit
    assert np.abs(layer.kernel).max() > 0.9 * limit  # spread over the whole range
    assert abs(float(np.mean(layer.kernel))) < 0.05 * limit
    assert np.std(layer.kernel) == pytest.approx(limit / np.sqrt(3), rel=0.05)
    assert np.array_equal(layer.bias, np.zeros(40, np.float32))


def test_dense_use_bias_false_has_only_kernel():
    model = pynn.Sequential([pynn.Input(shape=(4,)), Dense(3, use_bias=False)])
    assert len(model.layers[0].weights) == 1
    assert model.count_params() == 12
    x = X[:5]
    np.testing.assert_allclose(model.predict(x, verbose=0), x @ model.layers[0].kernel,
                               rtol=1e-5, atol=1e-6)


# ---- weights are NumPy arrays sharing the model's memory ----------------------------------------

def test_weights_are_numpy_arrays():
    model = mlp()
    assert all(isinstance(w, np.ndarray) and w.dtype == np.float32 for w in model.weights)
    assert [w.shape for w in model.weights] == [(4, 8), (8,), (8, 3), (3,)]


def test_writing_into_kernel_changes_predict():
    model = mlp()
    model.layers[1].kernel[...] = 0.0
    model.layers[1].bias[...] = [1.0, 2.0, 3.0]
    np.testing.assert_array_equal(model.predict(X, verbose=0),
                                  np.tile(np.float32([1, 2, 3]), (40, 1)))


def test_training_updates_previously_obtained_weight_arrays_in_place():
    model = mlp()
    model.compile(optimizer="sgd", loss="mse")
    kernel, from_list = model.layers[0].kernel, model.weights[2]
    k0, l0 = np.array(kernel), np.array(from_list)
    model.fit(X, Y_REG, epochs=1, verbose=0)
    assert not np.array_equal(kernel, k0) and not np.array_equal(from_list, l0)
    assert np.array_equal(kernel, model.get_weights()[0])
    assert np.array_equal(from_list, model.get_weights()[2])


def test_get_weights_returns_copies():
    model = mlp()
    copies = model.get_weights()
    copies[0][...] = 7.0
    assert not np.array_equal(model.get_weights()[0], copies[0])


def test_set_weights_get_weights_round_trip():
    model, other = mlp(), mlp()
    values = [RNG.standard_normal(w.shape).astype(np.float32) for w in model.weights]
    model.set_weights(values)
    assert weights_equal(model.get_weights(), values)
    other.set_weights(model.get_weights())
    np.testing.assert_array_equal(other.predict(X, verbose=0), model.predict(X, verbose=0))


# ---- building ----------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["Input", "input_shape", "input_dim"])
def test_model_is_built_from_its_declared_input(how):
    first = {"Input": lambda: Dense(8), "input_shape": lambda: Dense(8, input_shape=(4,)),
             "input_dim": lambda: Dense(8, input_dim=4)}[how]()
    layers = ([pynn.Input(shape=(4,))] if how == "Input" else []) + [first, Dense(2)]
    model = pynn.Sequential(layers)
    assert model.built
    assert model.input_shape == (None, 4) and model.output_shape == (None, 2)
    assert [w.shape for w in model.weights] == [(4, 8), (8,), (8, 2), (2,)]


def test_model_without_input_shape_builds_on_first_fit():
    model = pynn.Sequential([Dense(8, activation="tanh"), Dense(3)])
    assert not model.built
    model.compile(optimizer="adam", loss="mse")
    model.fit(X, Y_REG, epochs=1, verbose=0)
    assert model.built and model.input_shape == (None, 4)
    assert model.count_params() == 4 * 8 + 8 + 8 * 3 + 3


def test_unbuilt_model_summary_raises_value_error():
    model = pynn.Sequential([Dense(3)])
    with pytest.raises(ValueError, match="built"):
        model.summary()


# ---- names ---------------------------------------------------------------------------------------

def test_layer_names_are_unique_dense_dense_n():
    a, b, c = Dense(1), Dense(1), Dense(1)
    names = [a.name, b.name, c.name]
    assert len(set(names)) == 3
    assert all(re.fullmatch(r"dense(_\d+)?", n) for n in names)
    n_b = int(b.name.rsplit("_", 1)[1])
    assert c.name == f"dense_{n_b + 1}"


def test_explicit_layer_name_is_kept():
    assert Dense(2, name="head").name == "head"


def test_duplicate_layer_names_in_sequential_raise_value_error():
    with pytest.raises(ValueError, match="unique"):
        pynn.Sequential([pynn.Input(shape=(4,)), Dense(2, name="same"), Dense(2, name="same")])


# ---- seeding -------------------------------------------------------------------------------------

def _seeded_fit(seed):
    pynn.utils.set_random_seed(seed)
    model = mlp()
    model.compile(optimizer="adam", loss="mse")
    model.fit(X, Y_REG, batch_size=8, epochs=2, shuffle=True, verbose=0)
    return model.get_weights()


def test_set_random_seed_makes_fits_bitwise_identical():
    assert weights_equal(_seeded_fit(7), _seeded_fit(7))


def test_different_seeds_give_different_weights():
    assert not weights_equal(_seeded_fit(7), _seeded_fit(8))


# ---- input types -------------------------------------------------------------------------------

X_SMALL = RNG.integers(0, 4, (24, 4))
Y_SMALL = RNG.standard_normal((24, 1))


INPUT_FORMS = {
    "dataframe_series": lambda: (pd.DataFrame(X_SMALL, columns=list("abcd")),
                                 pd.Series(Y_SMALL[:, 0])),
    "dataframe_dataframe": lambda: (pd.DataFrame(X_SMALL), pd.DataFrame(Y_SMALL)),
    "nested_lists": lambda: (X_SMALL.tolist(), Y_SMALL.tolist()),
    "uint8": lambda: (X_SMALL.astype(np.uint8), Y_SMALL),
    "float64": lambda: (X_SMALL.astype(np.float64), Y_SMALL.astype(np.float64)),
    "int64": lambda: (X_SMALL.astype(np.int64), Y_SMALL.astype(np.float32)),
    "int32_fortran_order": lambda: (np.asfortranarray(X_SMALL.astype(np.int32)), Y_SMALL),
    "y_1d": lambda: (X_SMALL, Y_SMALL[:, 0]),
}


@pytest.mark.parametrize("form", sorted(INPUT_FORMS))
def test_input_form_trains_like_float32_arrays(form):
    def train(x, y):
        pynn.utils.set_random_seed(3)
        model = pynn.Sequential([pynn.Input(shape=(4,)), Dense(4, activation="tanh"), Dense(1)])
        model.compile(optimizer=pynn.optimizers.SGD(0.05), loss="mse")
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        return model.get_weights()

    want = train(X_SMALL.astype(np.float32), Y_SMALL.astype(np.float32))
    got = train(*INPUT_FORMS[form]())
    assert not weights_equal(want, train(X_SMALL.astype(np.float32) + 1, Y_SMALL))  # sensitive
    assert weights_equal(got, want)


def test_predict_accepts_dataframe():
    model = mlp()
    df = pd.DataFrame(X)
    np.testing.assert_array_equal(model.predict(df, verbose=0), model.predict(X, verbose=0))


# ---- threads -------------------------------------------------------------------------------------

def test_set_num_threads_round_trips_and_results_agree():
    model = mlp()
    before = pynn.get_num_threads()
    try:
        pynn.set_num_threads(1)
        assert pynn.get_num_threads() == 1
        one = model.predict(X, verbose=0)
        pynn.set_num_threads(2)  # OMP_THREAD_LIMIT caps it, as OpenMP caps its teams
        assert pynn.get_num_threads() == min(2, int(os.environ.get("OMP_THREAD_LIMIT", 2)))
        np.testing.assert_allclose(model.predict(X, verbose=0), one, rtol=1e-6, atol=1e-7)
    finally:
        pynn.set_num_threads(before)


# ---- verbosity ---------------------------------------------------------------------------------

def _compiled():
    model = mlp()
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    return model


def test_verbose_0_prints_nothing(capsys):
    model = _compiled()
    model.fit(X, Y_REG, epochs=2, validation_split=0.2, verbose=0)
    model.evaluate(X, Y_REG, verbose=0)
    model.predict(X, verbose=0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_verbose_2_prints_one_line_per_epoch(capsys):
    _compiled().fit(X, Y_REG, batch_size=16, epochs=3, verbose=2)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    summary = [ln for ln in lines if "loss:" in ln]
    assert len(summary) == 3
    assert all(ln.startswith("3/3") and "mae:" in ln for ln in summary)


def test_verbose_1_shows_epoch_header_and_progress_bar(capsys):
    _compiled().fit(X, Y_REG, batch_size=16, epochs=2, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert "3/3" in out and "loss:" in out


# ---- callbacks -----------------------------------------------------------------------------------

class Recorder(pynn.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(f"epoch_begin {epoch}")

    def on_train_batch_begin(self, batch, logs=None):
        self.calls.append(f"batch_begin {batch}")

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(f"batch_end {batch} {sorted(logs)}")

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(f"epoch_end {epoch} {sorted(logs)}")

    def on_train_end(self, logs=None):
        self.calls.append("train_end")


def test_callbacks_called_in_keras_order():
    rec = Recorder()
    model = _compiled()
    model.fit(X, Y_REG, batch_size=16, epochs=2, validation_split=0.2, verbose=0, callbacks=[rec])
    # 32 training samples -> 2 batches of 16 per epoch
    epoch = lambda e: [f"epoch_begin {e}", "batch_begin 0", "batch_end 0 ['loss', 'mae']",  # noqa: E731
                       "batch_begin 1", "batch_end 1 ['loss', 'mae']",
                       f"epoch_end {e} ['loss', 'mae', 'val_loss', 'val_mae']"]
    assert rec.calls == ["train_begin", *epoch(0), *epoch(1), "train_end"]
    assert rec.model is model and rec.params["epochs"] == 2 and rec.params["steps"] == 2


def test_stop_training_from_batch_callback_stops_fit():
    class StopAfterSecondBatch(pynn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True

    model = _compiled()
    history = model.fit(X, Y_REG, batch_size=8, epochs=5, verbose=0,
                        callbacks=[StopAfterSecondBatch()])
    assert model.optimizer.iterations == 2
    assert history.epoch == [0]


def test_stop_training_from_epoch_callback_stops_after_that_epoch():
    class StopAtEpoch1(pynn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True

    model = _compiled()
    history = model.fit(X, Y_REG, batch_size=20, epochs=10, verbose=0, callbacks=[StopAtEpoch1()])
    assert history.epoch == [0, 1] and len(history.history["loss"]) == 2
    assert model.optimizer.iterations == 4


def test_train_on_batch_is_one_step_of_fit_and_returns_keras_values():
    pynn.utils.set_random_seed(9)
    a = mlp()
    a.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    b = mlp()
    b.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    b.set_weights(a.get_weights())
    loss, mae = a.train_on_batch(X[:8], Y_REG[:8])
    b.fit(X[:8], Y_REG[:8], batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert all(np.allclose(p, q) for p, q in zip(a.get_weights(), b.get_weights()))
    assert mae == pytest.approx(b.history.history["mae"][0], rel=1e-5)
    assert loss == pytest.approx(b.history.history["loss"][0], rel=1e-5)
    assert a.optimizer.iterations == 1


def test_test_on_batch_changes_nothing_and_matches_evaluate():
    m = mlp()
    m.compile(optimizer="adam", loss="mse")
    before = m.get_weights()
    loss = m.test_on_batch(X, Y_REG)
    assert isinstance(loss, float)
    assert loss == pytest.approx(m.evaluate(X, Y_REG, batch_size=40, verbose=0), rel=1e-6)
    assert weights_equal(before, m.get_weights())
    assert set(m.test_on_batch(X, Y_REG, return_dict=True)) == {"loss"}


@pytest.mark.parametrize("alias, name", [
    ("AvgPool1D", "AveragePooling1D"), ("AvgPool2D", "AveragePooling2D"),
    ("MaxPool1D", "MaxPooling1D"), ("MaxPool2D", "MaxPooling2D"),
    ("GlobalAvgPool1D", "GlobalAveragePooling1D"), ("GlobalAvgPool2D", "GlobalAveragePooling2D"),
    ("GlobalMaxPool1D", "GlobalMaxPooling1D"), ("GlobalMaxPool2D", "GlobalMaxPooling2D"),
    ("Convolution1D", "Conv1D"), ("Convolution2D", "Conv2D"),
    ("Convolution1DTranspose", "Conv1DTranspose"), ("Convolution2DTranspose", "Conv2DTranspose")])
def test_keras_short_layer_names_are_the_same_classes(alias, name):
    # as in Keras 3, where layers.MaxPool2D is layers.MaxPooling2D
    assert getattr(pynn.layers, alias) is getattr(pynn.layers, name)
    assert alias in pynn.layers.__all__


def test_a_model_written_with_the_short_names_runs():
    L = pynn.layers
    model = pynn.Sequential([pynn.Input((8, 8, 1)), L.Convolution2D(4, 3, padding="same"),
                             L.MaxPool2D(), L.Convolution2DTranspose(2, 3, strides=2,
                                                                    padding="same"),
                             L.GlobalAvgPool2D()])
    assert model.predict(np.ones((2, 8, 8, 1), np.float32), verbose=0).shape == (2, 2)


def test_variance_scaling_takes_keras_3_15s_input_and_output_axes():
    """Keras 3.15 writes input_axes/output_axes in every Glorot/He initializer's config: they
    load, and given axes choose the fans (an einsum kernel (a, b, c) with input axes [0, 1])."""
    config = {"seed": 3, "input_axes": None, "output_axes": None}
    init = pynn.initializers.GlorotUniform.from_config(config)
    assert init.get_config() == config
    w = pynn.initializers.VarianceScaling(scale=1.0, mode="fan_in", distribution="uniform",
                                          seed=0, input_axes=[0, 1], output_axes=[2])((4, 5, 6))
    limit = np.sqrt(3.0 / 20)  # fan_in = 4 * 5
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.9 * limit
    with pytest.raises(ValueError, match="out of range"):
        pynn.initializers.GlorotUniform(input_axes=[5])((3, 4))
