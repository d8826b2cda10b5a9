"""A battery of bad arguments to every public entry point: each raises TypeError, ValueError or
MemoryError (a huge shape) with a message naming what is wrong, never crashes, and leaves the
model's weights and optimizer step count as they were.

The tables hold one row per (entry point, argument, kind of badness). Arrays that are valid but
unusual (non-contiguous, read-only, float64, int, NaN/Inf) must work, and give what the plain
float32 array gives (NaN and Inf propagate). test_bad_input_hypothesis.py draws random shapes
and dtypes for a few entry points.
"""

import numpy as np
import pytest

import pynn
from pynn import layers

RNG = np.random.default_rng(11)
X = RNG.random((12, 4)).astype(np.float32)
Y = (np.arange(12) % 3).astype(np.int64)
BAD = (TypeError, ValueError, MemoryError)
HUGE = np.broadcast_to(np.float32(0), (2**20, 2**20))   # 2**40 elements, no memory behind them


def classifier():
    pynn.utils.set_random_seed(5)
    model = pynn.Sequential([pynn.Input(shape=(4,)), layers.Dense(5, activation="relu"),
                             layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(X, Y, epochs=1, batch_size=6, verbose=0)
    return model


@pytest.fixture
def model():
    return classifier()


def snapshot(model):
    return [w.copy() for w in model.get_weights()], model.optimizer.iterations


def assert_unchanged(model, snap):
    weights, iterations = snap
    after = model.get_weights()
    assert len(after) == len(weights)
    assert all(np.array_equal(a, b) for a, b in zip(weights, after)), "weights changed"
    assert model.optimizer.iterations == iterations, "the optimizer stepped"


def ragged():
    return np.array([[1.0, 2.0], [3.0]], dtype=object)


# One row: id -> (call(model), exception types, regex the message must match or None).
# Every call receives the fitted model; calls that do not need it ignore it.
MODEL_CALLS = {
    # -- fit: x, y, and each keyword -----------------------------------------------------------
    "fit.x.rank1": (lambda m: m.fit(X[:, 0], Y, verbose=0), ValueError, r"\(None, 4\)"),
    "fit.x.rank3": (lambda m: m.fit(X[:, :, None], Y, verbose=0), ValueError, r"\(None, 4\)"),
    "fit.x.complex": (lambda m: m.fit(X.astype(np.complex64), Y, verbose=0), TypeError, None),
    "fit.x.object": (lambda m: m.fit(X.astype(object), Y, verbose=0), BAD, None),
    "fit.x.ragged": (lambda m: m.fit(ragged(), Y[:2], verbose=0), BAD, None),
    "fit.x.strings": (lambda m: m.fit(np.full((12, 4), "a"), Y, verbose=0), TypeError, None),
    "fit.x.dict_for_one_input": (lambda m: m.fit({"any_name": X}, Y, verbose=0), None, None),
    "fit.x.huge": (lambda m: m.fit(HUGE, np.zeros(2**20), verbose=0), BAD, None),
    "fit.x.zero_size": (lambda m: m.fit(X[:0], Y[:0], verbose=0), ValueError, "empty"),
    "fit.x.zero_features": (lambda m: m.fit(np.zeros((12, 0), np.float32), Y, verbose=0),
                            ValueError, None),
    "fit.x.a_string": (lambda m: m.fit("x", Y, verbose=0), BAD, None),
    "fit.y.out_of_range": (lambda m: m.fit(X, Y + 3, verbose=0), ValueError, r"0\.\.2"),
    "fit.y.negative": (lambda m: m.fit(X, Y - 1, verbose=0), ValueError, r"0\.\.2"),
    "fit.y.huge_label": (lambda m: m.fit(X, np.full(12, 2**40), verbose=0), ValueError, None),
    "fit.y.complex": (lambda m: m.fit(X, Y.astype(np.complex64), verbose=0), BAD, None),
    "fit.y.strings": (lambda m: m.fit(X, Y.astype(str), verbose=0), BAD, None),
    "fit.y.object": (lambda m: m.fit(X, Y.astype(object) * 1.5, verbose=0), BAD, None),
    "fit.y.nan": (lambda m: m.fit(X, np.full(12, np.nan), verbose=0), ValueError, None),
    "fit.y.rank3": (lambda m: m.fit(X, Y[:, None, None, None], verbose=0), None, None),
    "fit.y.length": (lambda m: m.fit(X, Y[:5], verbose=0), ValueError, "samples"),
    "fit.batch_size.zero": (lambda m: m.fit(X, Y, batch_size=0, verbose=0), ValueError,
                            "batch_size"),
    "fit.batch_size.negative": (lambda m: m.fit(X, Y, batch_size=-3, verbose=0), ValueError,
                                "batch_size"),
    "fit.batch_size.string": (lambda m: m.fit(X, Y, batch_size="8", verbose=0), BAD,
                              "batch_size"),
    "fit.batch_size.float": (lambda m: m.fit(X, Y, batch_size=2.5, verbose=0), BAD,
                             "batch_size"),
    "fit.batch_size.huge": (lambda m: m.fit(X, Y, batch_size=2**62, verbose=0), None, None),
    "fit.epochs.string": (lambda m: m.fit(X, Y, epochs="2", verbose=0), BAD, "epochs"),
    "fit.epochs.float": (lambda m: m.fit(X, Y, epochs=1.5, verbose=0), BAD, "epochs"),
    "fit.epochs.negative": (lambda m: m.fit(X, Y, epochs=-1, verbose=0), ValueError, "epochs"),
    "fit.verbose.string": (lambda m: m.fit(X, Y, verbose="loud"), BAD, "verbose"),
    "fit.callbacks.int": (lambda m: m.fit(X, Y, callbacks=3, verbose=0), BAD, "callbacks"),
    "fit.callbacks.junk_list": (lambda m: m.fit(X, Y, callbacks=[3], verbose=0), BAD,
                                "callback"),
    "fit.validation_split.negative": (lambda m: m.fit(X, Y, validation_split=-0.1, verbose=0),
                                      ValueError, "validation_split"),
    "fit.validation_split.string": (lambda m: m.fit(X, Y, validation_split="0.1", verbose=0),
                                    BAD, "validation_split"),
    "fit.validation_data.wrong_y": (lambda m: m.fit(X, Y, validation_data=(X, Y + 5),
                                                    verbose=0), ValueError, None),
    "fit.validation_data.three_junk": (lambda m: m.fit(X, Y, validation_data=(X, Y, "w"),
                                                       verbose=0), BAD, None),
    "fit.shuffle.string": (lambda m: m.fit(X, Y, shuffle="batch", verbose=0), None, None),
    "fit.class_weight.unused_class": (lambda m: m.fit(X, Y, class_weight={7: 1.0}, verbose=0),
                                      None, None),
    "fit.class_weight.not_a_dict": (lambda m: m.fit(X, Y, class_weight=[1, 2, 3], verbose=0),
                                    BAD, "class_weight"),
    "fit.class_weight.string_value": (lambda m: m.fit(X, Y, class_weight={0: "a", 1: 1, 2: 1},
                                                      verbose=0), BAD, None),
    "fit.sample_weight.length": (lambda m: m.fit(X, Y, sample_weight=np.ones(5), verbose=0),
                                 ValueError, "sample_weight"),
    "fit.sample_weight.rank2": (lambda m: m.fit(X, Y, sample_weight=np.ones((12, 2)), verbose=0),
                                ValueError, "sample_weight"),
    "fit.sample_weight.strings": (lambda m: m.fit(X, Y, sample_weight=np.full(12, "a"),
                                                  verbose=0), BAD, None),
    "fit.initial_epoch.negative": (lambda m: m.fit(X, Y, initial_epoch=-1, verbose=0), BAD,
                                   "initial_epoch"),
    "fit.initial_epoch.string": (lambda m: m.fit(X, Y, initial_epoch="0", verbose=0), BAD,
                                 "initial_epoch"),
    "fit.steps_per_epoch.zero": (lambda m: m.fit(X, Y, steps_per_epoch=0, verbose=0), BAD,
                                 "steps"),
    "fit.steps_per_epoch.string": (lambda m: m.fit(X, Y, steps_per_epoch="1", verbose=0), BAD,
                                   "steps"),
    "fit.validation_batch_size.zero": (lambda m: m.fit(X, Y, validation_data=(X, Y),
                                                       validation_batch_size=0, verbose=0),
                                       BAD, "batch_size"),
    "fit.unknown_keyword": (lambda m: m.fit(X, Y, verbose=0, bogus=1), TypeError, "bogus"),
    # -- evaluate --------------------------------------------------------------------------------
    "evaluate.x.rank3": (lambda m: m.evaluate(X[:, :, None], Y, verbose=0), ValueError,
                         r"\(None, 4\)"),
    "evaluate.x.complex": (lambda m: m.evaluate(X.astype(np.complex128), Y, verbose=0),
                           TypeError, None),
    "evaluate.x.strings": (lambda m: m.evaluate(np.full((12, 4), "a"), Y, verbose=0), TypeError,
                           None),
    "evaluate.x.huge": (lambda m: m.evaluate(HUGE, np.zeros(2**20), verbose=0), BAD, None),
    "evaluate.y.out_of_range": (lambda m: m.evaluate(X, Y + 3, verbose=0), ValueError,
                                r"0\.\.2"),
    "evaluate.y.length": (lambda m: m.evaluate(X, Y[:3], verbose=0), ValueError, "samples"),
    "evaluate.y.missing": (lambda m: m.evaluate(X, None, verbose=0), ValueError, "y"),
    "evaluate.batch_size.zero": (lambda m: m.evaluate(X, Y, batch_size=0, verbose=0),
                                 ValueError, "batch_size"),
    "evaluate.batch_size.string": (lambda m: m.evaluate(X, Y, batch_size="a", verbose=0), BAD,
                                   "batch_size"),
    "evaluate.sample_weight.length": (lambda m: m.evaluate(X, Y, sample_weight=np.ones(3),
                                                           verbose=0), ValueError,
                                      "sample_weight"),
    "evaluate.steps.negative": (lambda m: m.evaluate(X, Y, steps=-1, verbose=0), BAD, "steps"),
    "evaluate.verbose.bad": (lambda m: m.evaluate(X, Y, verbose=7), ValueError, "verbose"),
    "evaluate.callbacks.int": (lambda m: m.evaluate(X, Y, callbacks=3, verbose=0), BAD,
                               "callbacks"),
    # -- predict ---------------------------------------------------------------------------------
    "predict.x.rank1": (lambda m: m.predict(X[0], verbose=0), ValueError, r"\(None, 4\)"),
    "predict.x.complex": (lambda m: m.predict(X.astype(np.complex64), verbose=0), TypeError,
                          None),
    "predict.x.object": (lambda m: m.predict(X.astype(object), verbose=0), BAD, None),
    "predict.x.ragged": (lambda m: m.predict(ragged(), verbose=0), BAD, None),
    "predict.x.strings": (lambda m: m.predict(np.full((2, 4), "a"), verbose=0), TypeError, None),
    "predict.x.none": (lambda m: m.predict(None, verbose=0), BAD, "x"),
    "predict.x.huge": (lambda m: m.predict(HUGE, verbose=0), BAD, None),
    "predict.x.huge_features": (lambda m: m.predict(np.broadcast_to(np.float32(0), (2, 2**40)),
                                                    verbose=0), BAD, None),
    "predict.x.zero_size": (lambda m: m.predict(X[:0], verbose=0), ValueError, "empty"),
    "predict.batch_size.zero": (lambda m: m.predict(X, batch_size=0, verbose=0), ValueError,
                                "batch_size"),
    "predict.batch_size.string": (lambda m: m.predict(X, batch_size="2", verbose=0), BAD,
                                  "batch_size"),
    "predict.steps.zero": (lambda m: m.predict(X, steps=0, verbose=0), BAD, "steps"),
    "predict.verbose.bad": (lambda m: m.predict(X, verbose=9), ValueError, "verbose"),
    "predict.callbacks.int": (lambda m: m.predict(X, callbacks=3, verbose=0), BAD, "callbacks"),
    # -- on_batch ---------------------------------------------------------------------------------
    "train_on_batch.x.rank3": (lambda m: m.train_on_batch(X[:, :, None], Y), ValueError,
                               r"\(None, 4\)"),
    "train_on_batch.x.complex": (lambda m: m.train_on_batch(X.astype(np.complex64), Y),
                                 TypeError, None),
    "train_on_batch.x.strings": (lambda m: m.train_on_batch(np.full((12, 4), "a"), Y), TypeError,
                                 None),
    "train_on_batch.x.huge": (lambda m: m.train_on_batch(HUGE, np.zeros(2**20)), BAD, None),
    "train_on_batch.y.out_of_range": (lambda m: m.train_on_batch(X, Y + 3), ValueError,
                                      r"0\.\.2"),
    "train_on_batch.y.length": (lambda m: m.train_on_batch(X, Y[:4]), ValueError, "samples"),
    "train_on_batch.y.missing": (lambda m: m.train_on_batch(X), ValueError, "y"),
    "train_on_batch.sample_weight.length": (lambda m: m.train_on_batch(X, Y,
                                                                       sample_weight=np.ones(2)),
                                            ValueError, "sample_weight"),
    "train_on_batch.class_weight.junk": (lambda m: m.train_on_batch(X, Y, class_weight="a"),
                                         BAD, "class_weight"),
    "test_on_batch.x.rank1": (lambda m: m.test_on_batch(X[0], Y[:1]), ValueError, None),
    "test_on_batch.x.object": (lambda m: m.test_on_batch(X.astype(object), Y), BAD, None),
    "test_on_batch.y.out_of_range": (lambda m: m.test_on_batch(X, Y + 3), ValueError, r"0\.\.2"),
    "test_on_batch.y.length": (lambda m: m.test_on_batch(X, Y[:2]), ValueError, "samples"),
    "test_on_batch.sample_weight.length": (lambda m: m.test_on_batch(X, Y,
                                                                     sample_weight=np.ones(2)),
                                           ValueError, "sample_weight"),
    "predict_on_batch.x.rank3": (lambda m: m.predict_on_batch(X[:, :, None]), ValueError,
                                 r"\(None, 4\)"),
    "predict_on_batch.x.complex": (lambda m: m.predict_on_batch(X.astype(np.complex64)),
                                   TypeError, None),
    "predict_on_batch.x.strings": (lambda m: m.predict_on_batch(np.full((2, 4), "a")), TypeError,
                                   None),
    "predict_on_batch.x.huge": (lambda m: m.predict_on_batch(HUGE), BAD, None),
    "predict_on_batch.x.zero_size": (lambda m: m.predict_on_batch(X[:0]), ValueError, None),
    # -- calling the model, and a layer ------------------------------------------------------------
    "model_call.x.rank3": (lambda m: m(X[:, :, None]), ValueError, r"\(None, 4\)"),
    "model_call.x.complex": (lambda m: m(X.astype(np.complex64)), TypeError, None),
    "model_call.x.strings": (lambda m: m(np.full((2, 4), "a")), TypeError, None),
    "model_call.x.huge": (lambda m: m(HUGE), BAD, None),
    "model_call.training.none": (lambda m: m(X, training=None), None, None),
    "layer_call.x.rank1": (lambda m: m.layers[0](X[0]), ValueError, None),
    "layer_call.x.wrong_features": (lambda m: m.layers[0](X[:, :3]), ValueError, None),
    "layer_call.x.complex": (lambda m: m.layers[0](X.astype(np.complex64)), TypeError, None),
    "layer_call.x.strings": (lambda m: m.layers[0](np.full((2, 4), "a")), TypeError, None),
    "layer_call.x.huge": (lambda m: m.layers[0](np.broadcast_to(np.float32(0), (2**38, 4))),
                          BAD, None),
    # -- compile: each argument (the old compile stays) --------------------------------------------
    "compile.optimizer.int": (lambda m: m.compile(optimizer=3, loss="mse"), BAD, "optimizer"),
    "compile.optimizer.unknown": (lambda m: m.compile(optimizer="adamz", loss="mse"), ValueError,
                                  "adamz"),
    "compile.loss.int": (lambda m: m.compile(optimizer="adam", loss=3), BAD, "loss"),
    "compile.loss.unknown": (lambda m: m.compile(optimizer="adam", loss="msez"), ValueError,
                             "msez"),
    "compile.loss.list_too_long": (lambda m: m.compile(optimizer="adam", loss=["mse", "mse"]),
                                   ValueError, "loss"),
    "compile.loss_weights.string": (lambda m: m.compile(optimizer="adam", loss="mse",
                                                        loss_weights="a"), BAD, "loss.weights"),
    "compile.loss_weights.too_many": (lambda m: m.compile(optimizer="adam", loss="mse",
                                                          loss_weights=[1, 2]), ValueError,
                                      "loss.weights"),
    "compile.metrics.int": (lambda m: m.compile(optimizer="adam", loss="mse", metrics=3), BAD,
                            "metrics"),
    "compile.metrics.unknown": (lambda m: m.compile(optimizer="adam", loss="mse",
                                                    metrics=["acc_z"]), ValueError, "acc_z"),
    "compile.unknown_keyword": (lambda m: m.compile(optimizer="adam", loss="mse", bogus=1),
                                TypeError, "bogus"),
    # -- saving ------------------------------------------------------------------------------------
    "save.filepath.int": (lambda m: m.save(3), TypeError, None),
    "save.filepath.h5": (lambda m: m.save("/tmp/pynn-battery.h5"), ValueError, "extension"),
    "save.zipped.false": (lambda m: m.save("/tmp/pynn-battery.keras", zipped=False), ValueError,
                          "zipped"),
    "save.filepath.missing_dir": (lambda m: m.save("/nonexistent-dir/x/m.keras"), OSError, None),
    "save_weights.filepath.suffix": (lambda m: m.save_weights("/tmp/pynn-battery.h5"),
                                     ValueError, "weights.safetensors"),
    "save_weights.filepath.none": (lambda m: m.save_weights(None), TypeError, None),
    "load_weights.filepath.missing": (lambda m: m.load_weights("/nonexistent.weights.safetensors"),
                                      FileNotFoundError, None),
    "load_weights.filepath.suffix": (lambda m: m.load_weights("/tmp/x.h5"), ValueError,
                                     "weights.safetensors"),
    "load_weights.filepath.int": (lambda m: m.load_weights(3), TypeError, None),
    "load_model.filepath.missing": (lambda m: pynn.models.load_model("/nonexistent.keras"),
                                    FileNotFoundError, None),
    "load_model.filepath.directory": (lambda m: pynn.models.load_model("/tmp/.keras"), OSError,
                                      None),
    "load_model.filepath.suffix": (lambda m: pynn.models.load_model("/tmp/x.h5"), ValueError,
                                   "format"),
    "load_model.filepath.none": (lambda m: pynn.models.load_model(None), TypeError, None),
    "load_model.custom_objects.list": (lambda m: pynn.models.load_model("/tmp/x.keras",
                                                                        custom_objects=[1]),
                                       TypeError, "custom_objects"),
    # -- weights -----------------------------------------------------------------------------------
    "set_weights.too_few": (lambda m: m.set_weights(m.get_weights()[:2]), ValueError, None),
    "set_weights.strings": (lambda m: m.set_weights([np.full(w.shape, "a")
                                                     for w in m.get_weights()]), BAD, None),
    "set_weights.not_a_list": (lambda m: m.set_weights(3), BAD, None),
    "get_layer.name.unknown": (lambda m: m.get_layer("nope"), ValueError, "nope"),
    "get_layer.index.out_of_range": (lambda m: m.get_layer(index=99), ValueError, "99"),
}


@pytest.mark.parametrize("call, exc, match", MODEL_CALLS.values(), ids=MODEL_CALLS.keys())
def test_a_bad_argument_raises_cleanly_and_changes_nothing(model, call, exc, match, tmp_path):
    snap = snapshot(model)
    old_compile = model.optimizer, model.loss
    if exc is None:  # valid though odd: it runs
        call(model)
        return
    with pytest.raises(exc) as info:
        call(model)
    if match is not None:
        assert info.match(match)
    assert_unchanged(model, snap)
    assert (model.optimizer, model.loss) == old_compile
    model.fit(X, Y, epochs=1, verbose=0)  # the model still trains


# -- construction: layers, models, optimizers, losses, metrics -----------------------------------
def _model(*layer_list):
    return pynn.Sequential([pynn.Input(shape=(4,)), *layer_list])


CONSTRUCT = {
    "Dense.units.string": (lambda: layers.Dense("3"), BAD, "units"),
    "Dense.units.float": (lambda: layers.Dense(2.5), BAD, "units"),
    "Dense.units.huge": (lambda: _model(layers.Dense(2**31)), (ValueError, MemoryError), None),
    "Dense.units.huge_product": (lambda: pynn.Sequential([pynn.Input(shape=(2**20,)),
                                                          layers.Dense(2**20)]),
                                 (ValueError, MemoryError), None),
    "Dense.activation.int": (lambda: layers.Dense(3, activation=5), BAD, "activation"),
    "Dense.kernel_initializer.int": (lambda: layers.Dense(3, kernel_initializer=4), BAD,
                                     "initializer"),
    "Conv2D.filters.zero": (lambda: layers.Conv2D(0, 3), ValueError, "filters"),
    "Conv2D.kernel_size.negative": (lambda: layers.Conv2D(2, -3), ValueError, "kernel_size"),
    "Conv2D.padding.unknown": (lambda: layers.Conv2D(2, 3, padding="full"), ValueError,
                               "padding"),
    "Conv2D.strides.zero": (lambda: layers.Conv2D(2, 3, strides=0), ValueError, "strides"),
    "Conv2D.input.rank2": (lambda: _model(layers.Conv2D(2, 3)), ValueError, None),
    "Dropout.rate.one": (lambda: layers.Dropout(1.0), ValueError, "rate"),
    "Dropout.rate.string": (lambda: layers.Dropout("0.5"), BAD, "rate"),
    "Embedding.input_dim.zero": (lambda: layers.Embedding(0, 4), ValueError, "input_dim"),
    "Embedding.output_dim.huge": (lambda: pynn.Sequential([pynn.Input(shape=(3,), dtype="int32"),
                                                           layers.Embedding(2**20, 2**20)]),
                                  (ValueError, MemoryError), None),
    "Reshape.target_shape.mismatch": (lambda: _model(layers.Reshape((3,))), ValueError, None),
    "Input.shape.negative": (lambda: pynn.Input(shape=(-4,)), ValueError, "shape"),
    "Input.shape.string": (lambda: pynn.Input(shape="abc"), BAD, "shape"),
    "Input.shape.huge": (lambda: pynn.Sequential([pynn.Input(shape=(2**40,)), layers.Dense(2)]),
                         (ValueError, MemoryError), None),
    "Input.dtype.complex": (lambda: pynn.Input(shape=(4,), dtype="complex64"), ValueError,
                            "dtype"),
    "Sequential.layers.int": (lambda: pynn.Sequential(3), BAD, None),
    "Sequential.layers.junk": (lambda: pynn.Sequential([pynn.Input((4,)), "dense"]), BAD, None),
    "Sequential.add.junk": (lambda: pynn.Sequential().add(3), BAD, None),
    "Model.inputs.int": (lambda: pynn.Model(3, 4), BAD, None),
    "Model.outputs.disconnected": (lambda: pynn.Model(pynn.Input((4,)),
                                                      layers.Dense(2)(pynn.Input((4,)))),
                                   ValueError, None),
    "Model.outputs.string": (lambda: pynn.Model(pynn.Input((4,)), "out"), BAD, None),
    "Adam.learning_rate.negative": (lambda: pynn.optimizers.Adam(-1.0), ValueError,
                                    "learning_rate"),
    "Adam.learning_rate.string": (lambda: pynn.optimizers.Adam("fast"), BAD, "learning_rate"),
    "Adam.learning_rate.nan": (lambda: pynn.optimizers.Adam(float("nan")), ValueError,
                               "learning_rate"),
    "Adam.beta_1.two": (lambda: pynn.optimizers.Adam(beta_1=2.0), ValueError, "beta_1"),
    "SGD.momentum.negative": (lambda: pynn.optimizers.SGD(momentum=-1), ValueError, "momentum"),
    "SGD.clipnorm.negative": (lambda: pynn.optimizers.SGD(clipnorm=-1), ValueError, "clipnorm"),
    "RMSprop.rho.string": (lambda: pynn.optimizers.RMSprop(rho="a"), BAD, "rho"),
    "optimizers.get.int": (lambda: pynn.optimizers.get(3), BAD, None),
    "losses.get.unknown": (lambda: pynn.losses.get("nope"), ValueError, "nope"),
    "metrics.get.unknown": (lambda: pynn.metrics.get("nope"), ValueError, "nope"),
    "TopK.k.zero": (lambda: pynn.metrics.TopKCategoricalAccuracy(k=0), ValueError, "k"),
    "Precision.thresholds.two": (lambda: pynn.metrics.Precision(thresholds=2.0), ValueError,
                                 "threshold"),
    "AUC.num_thresholds.one": (lambda: pynn.metrics.AUC(num_thresholds=1), ValueError,
                               "num_thresholds"),
    "set_random_seed.seed.negative": (lambda: pynn.utils.set_random_seed(-1), ValueError, "seed"),
    "set_random_seed.seed.string": (lambda: pynn.utils.set_random_seed("1"), ValueError, "seed"),
    "set_num_threads.n.zero": (lambda: pynn.set_num_threads(0), ValueError, None),
    "set_num_threads.n.string": (lambda: pynn.set_num_threads("2"), TypeError, "int"),
}


@pytest.mark.parametrize("make, exc, match", CONSTRUCT.values(), ids=CONSTRUCT.keys())
def test_a_bad_constructor_argument_raises_a_clear_exception(make, exc, match):
    with pytest.raises(exc) as info:
        make()
    if match is not None:
        assert info.match(match)


# -- optimizers' imperative API --------------------------------------------------------------------
def _built_adam(m):
    opt = pynn.optimizers.Adam(1e-2)
    opt.build(m.trainable_weights)
    return opt


OPTIMIZER_CALLS = {
    "apply.grads.too_few": (lambda m, o: o.apply([np.ones_like(w) for w in m.get_weights()][:1],
                                                  m.trainable_weights), ValueError, None),
    "apply.grads.wrong_shape": (lambda m, o: o.apply([np.ones((7, 7), np.float32)] * 4,
                                                     m.trainable_weights), ValueError, "shape"),
    "apply.grads.strings": (lambda m, o: o.apply([np.full(w.shape, "a") for w in
                                                  m.get_weights()], m.trainable_weights), BAD,
                            None),
    "apply.grads.complex": (lambda m, o: o.apply([w.astype(np.complex64) for w in
                                                  m.get_weights()], m.trainable_weights), BAD,
                            None),
    "apply.grads.int": (lambda m, o: o.apply(3, m.trainable_weights), BAD, None),
    "apply.trainable_variables.arrays": (lambda m, o: o.apply(
        [np.ones_like(w) for w in m.get_weights()], [np.ones(3)] * 4), BAD, None),
    "apply_gradients.pairs.junk": (lambda m, o: o.apply_gradients([1, 2]), BAD, None),
    "build.variables.int": (lambda m, o: pynn.optimizers.Adam().build(3), BAD, None),
}


@pytest.mark.parametrize("call, exc, match", OPTIMIZER_CALLS.values(), ids=OPTIMIZER_CALLS.keys())
def test_a_bad_optimizer_call_raises_and_changes_no_weight(model, call, exc, match):
    opt = _built_adam(model)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(exc) as info:
        call(model, opt)
    if match is not None:
        assert info.match(match)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_optimizer_step_without_gradients_changes_nothing_or_raises(model):
    opt = _built_adam(model)
    opt.zero_grad()   # fit's last gradients would otherwise be applied, as in PyTorch
    before = [w.copy() for w in model.get_weights()]
    try:
        opt.step()
    except BAD:
        pass
    after = model.get_weights()
    assert all(np.isfinite(w).all() for w in after)
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


# -- losses and metrics ----------------------------------------------------------------------------
P3 = np.full((4, 3), 1 / 3, np.float32)
LOSS_METRIC_CALLS = {
    "MSE.call.shape_mismatch": (lambda: pynn.losses.MeanSquaredError()(np.ones((4, 3)),
                                                                       np.ones((5, 3))),
                                ValueError, None),
    "MSE.call.strings": (lambda: pynn.losses.MeanSquaredError()(np.full((4, 3), "a"), P3), BAD,
                         None),
    "MSE.call.complex": (lambda: pynn.losses.MeanSquaredError()(P3.astype(np.complex64), P3),
                         BAD, None),
    "SCCE.call.out_of_range": (lambda: pynn.losses.SparseCategoricalCrossentropy()(
        np.array([0, 1, 2, 5]), P3), ValueError, None),
    "SCCE.call.length": (lambda: pynn.losses.SparseCategoricalCrossentropy()(
        np.array([0, 1]), P3), ValueError, None),
    "CCE.call.width": (lambda: pynn.losses.CategoricalCrossentropy()(np.eye(4), P3), ValueError,
                       None),
    "BCE.call.object": (lambda: pynn.losses.BinaryCrossentropy()(np.ones((4, 3), object), P3),
                        BAD, None),
    "loss_fn.mse.mismatch": (lambda: pynn.losses.mean_squared_error(np.ones((4, 3)),
                                                                    np.ones((4, 2))),
                             ValueError, None),
    "Accuracy.update.length": (lambda: pynn.metrics.SparseCategoricalAccuracy().update_state(
        np.array([0, 1]), P3), ValueError, None),
    "Accuracy.update.strings": (lambda: pynn.metrics.SparseCategoricalAccuracy().update_state(
        np.array(["a"] * 4), P3), BAD, None),
    "Accuracy.update.sample_weight": (lambda: pynn.metrics.CategoricalAccuracy().update_state(
        np.eye(3)[[0, 1, 2, 0]], P3, sample_weight=np.ones(2)), ValueError, "sample_weight"),
    "MAE.update.shape": (lambda: pynn.metrics.MeanAbsoluteError().update_state(
        np.ones((4, 2)), P3), ValueError, None),
    "AUC.update.complex": (lambda: pynn.metrics.AUC().update_state(
        np.ones(4, np.complex64), np.ones(4)), BAD, None),
    "TopK.call.width": (lambda: pynn.metrics.TopKCategoricalAccuracy(k=2)(np.eye(4), P3),
                        ValueError, None),
    "Precision.call.object": (lambda: pynn.metrics.Precision()(np.array([None] * 4), np.ones(4)),
                              BAD, None),
}


@pytest.mark.parametrize("call, exc, match", LOSS_METRIC_CALLS.values(),
                         ids=LOSS_METRIC_CALLS.keys())
def test_a_bad_loss_or_metric_argument_raises_a_clear_exception(call, exc, match):
    with pytest.raises(exc) as info:
        call()
    if match is not None:
        assert info.match(match)


def test_a_metric_keeps_its_state_after_a_failed_update():
    m = pynn.metrics.SparseCategoricalAccuracy()
    m.update_state(np.array([0, 1, 2, 0]), np.eye(3)[[0, 1, 1, 0]])
    before = m.result()
    with pytest.raises(ValueError):
        m.update_state(np.array([0, 9, 2, 0]), P3)
    assert m.result() == before


# -- pynn.Tensor and pynn.ops ----------------------------------------------------------------------
T = pynn.Tensor(np.ones((2, 3), np.float32))
TENSOR_CALLS = {
    "Tensor.value.complex": (lambda: pynn.Tensor(np.ones(3, np.complex64)), BAD, None),
    "Tensor.value.strings": (lambda: pynn.Tensor(np.array(["a", "b"])), BAD, None),
    "Tensor.value.object": (lambda: pynn.Tensor(np.array([None, 1], object)), BAD, None),
    "Tensor.value.ragged": (lambda: pynn.Tensor([[1, 2], [3]]), BAD, None),
    "Tensor.value.huge": (lambda: pynn.Tensor(HUGE), BAD, None),
    "add.other.string": (lambda: T + "a", BAD, None),
    "add.other.shape": (lambda: T + np.ones((4, 5), np.float32), ValueError, None),
    "mul.other.complex": (lambda: T * np.ones(3, np.complex64), BAD, None),
    "matmul.other.shape": (lambda: T @ pynn.Tensor(np.ones((4, 2), np.float32)), ValueError,
                           None),
    "matmul.other.rank1": (lambda: T @ pynn.Tensor(np.ones(7, np.float32)), ValueError, None),
    "pow.other.string": (lambda: T ** "2", BAD, None),
    "getitem.index.out_of_range": (lambda: T[5], IndexError, None),
    "getitem.index.string": (lambda: T["a"], BAD + (IndexError,), None),
    "reshape.shape.mismatch": (lambda: T.reshape(7), ValueError, None),
    "reshape.shape.two_minus_ones": (lambda: T.reshape(-1, -1), ValueError, None),
    "reshape.shape.huge": (lambda: T.reshape(2**40, 0), ValueError, None),
    "sum.axis.out_of_range": (lambda: T.sum(axis=5), BAD + (np.exceptions.AxisError,), None),
    "mean.axis.string": (lambda: T.mean(axis="a"), BAD, None),
    "transpose.axes.bad": (lambda: T.transpose(0, 0), ValueError, None),
    "ops.softmax.axis": (lambda: pynn.ops.softmax(T, axis=7), BAD, None),
    "ops.one_hot.num_classes.zero": (lambda: pynn.ops.one_hot(np.array([0, 1]), 0), ValueError,
                                     None),
    "ops.one_hot.x.out_of_range": (lambda: pynn.ops.one_hot(np.array([0, 5]), 3), ValueError,
                                   None),
    "ops.clip.x_min.string": (lambda: pynn.ops.clip(T, "a", 1.0), BAD, None),
    "ops.matmul.shape": (lambda: pynn.ops.matmul(T, T), ValueError, None),
    "backward.not_scalar": (lambda: pynn.Tensor(np.ones(3, np.float32),
                                                requires_grad=True).exp().backward(), BAD, None),
    "item.not_scalar": (lambda: T.item(), ValueError, None),
}


@pytest.mark.parametrize("call, exc, match", TENSOR_CALLS.values(), ids=TENSOR_CALLS.keys())
def test_a_bad_tensor_operation_raises_a_clear_exception(call, exc, match):
    with pytest.raises(exc) as info:
        call()
    if match is not None:
        assert info.match(match)


# -- utils and datasets' arguments -----------------------------------------------------------------
UTIL_CALLS = {
    "to_categorical.x.negative": (lambda: pynn.utils.to_categorical([-1, 2]), ValueError, None),
    "to_categorical.x.float": (lambda: pynn.utils.to_categorical([0.5, 2]), ValueError, None),
    "to_categorical.x.strings": (lambda: pynn.utils.to_categorical(["a"]), BAD, None),
    "to_categorical.x.out_of_range": (lambda: pynn.utils.to_categorical([5], num_classes=3),
                                      ValueError, None),
    "to_categorical.x.huge_label": (lambda: pynn.utils.to_categorical([2**40]), BAD, None),
    "to_categorical.num_classes.zero": (lambda: pynn.utils.to_categorical([0], num_classes=0),
                                        ValueError, "num_classes"),
    "to_categorical.num_classes.string": (lambda: pynn.utils.to_categorical([0],
                                                                            num_classes="3"),
                                          BAD, "num_classes"),
    "pad_sequences.sequences.int": (lambda: pynn.utils.pad_sequences(3), BAD, None),
    "pad_sequences.sequences.strings": (lambda: pynn.utils.pad_sequences([["a", "b"]]), BAD,
                                        None),
    "pad_sequences.maxlen.negative": (lambda: pynn.utils.pad_sequences([[1, 2]], maxlen=-1),
                                      ValueError, "maxlen"),
    "pad_sequences.maxlen.string": (lambda: pynn.utils.pad_sequences([[1, 2]], maxlen="2"), BAD,
                                    "maxlen"),
    "pad_sequences.maxlen.huge": (lambda: pynn.utils.pad_sequences([[1, 2]] * 2**10,
                                                                   maxlen=2**40),
                                  (ValueError, MemoryError), None),
    "pad_sequences.padding.unknown": (lambda: pynn.utils.pad_sequences([[1]], padding="mid"),
                                      ValueError, "padding"),
    "pad_sequences.truncating.unknown": (lambda: pynn.utils.pad_sequences([[1]],
                                                                          truncating="x"),
                                         ValueError, "truncating"),
    "pad_sequences.value.string": (lambda: pynn.utils.pad_sequences([[1]], maxlen=3, value="a"),
                                   BAD, None),
    "pad_sequences.dtype.unknown": (lambda: pynn.utils.pad_sequences([[1]], dtype="nope"), BAD,
                                    None),
    "mnist.path.int": (lambda: pynn.datasets.mnist.load_data(path=3), BAD, None),
    "auto_mpg.test_split.two": (lambda: pynn.datasets.auto_mpg.load_data(test_split=2.0),
                                ValueError, "test_split"),
    "auto_mpg.test_split.string": (lambda: pynn.datasets.auto_mpg.load_data(test_split="a"),
                                   BAD, "test_split"),
    "auto_mpg.seed.string": (lambda: pynn.datasets.auto_mpg.load_data(seed="a"), BAD, "seed"),
    "tiny_shakespeare.as_codes.string": (lambda: pynn.datasets.tiny_shakespeare.load_data(
        as_codes="yes"), BAD, "as_codes"),
}


@pytest.mark.parametrize("call, exc, match", UTIL_CALLS.values(), ids=UTIL_CALLS.keys())
def test_a_bad_utility_argument_raises_a_clear_exception(call, exc, match):
    with pytest.raises(exc) as info:
        call()
    if match is not None:
        assert info.match(match)


# -- valid but unusual arrays: they work, and give what plain float32 gives ------------------------
def _variants():
    base = np.asfortranarray(np.repeat(X, 2, axis=1)[:, ::2])   # non-contiguous
    ro = X.copy()
    ro.flags.writeable = False
    return {"non_contiguous": X[::1, :].copy()[:, [0, 1, 2, 3]][::-1][::-1],
            "strided": np.repeat(X, 2, axis=1)[:, ::2], "fortran": base, "read_only": ro,
            "float64": X.astype(np.float64), "float16": X.astype(np.float16),
            "list": X.tolist()}


@pytest.mark.parametrize("name", list(_variants()))
@pytest.mark.parametrize("entry", ["predict", "predict_on_batch", "call", "evaluate", "fit"])
def test_an_unusual_but_valid_array_works_like_plain_float32(name, entry):
    x = _variants()[name]
    expect_x = np.asarray(x, dtype=np.float32) if name == "float16" else X
    a, b = classifier(), classifier()
    run = {"predict": lambda m, v: m.predict(v, verbose=0),
           "predict_on_batch": lambda m, v: m.predict_on_batch(v),
           "call": lambda m, v: np.asarray(m(v)),
           "evaluate": lambda m, v: np.array(m.evaluate(v, Y, verbose=0)),
           "fit": lambda m, v: (m.fit(v, Y, epochs=1, shuffle=False, verbose=0),
                                np.concatenate([w.ravel() for w in m.get_weights()]))[1]}[entry]
    np.testing.assert_allclose(run(a, x), run(b, expect_x), rtol=1e-6, atol=1e-6)
    if name == "read_only":
        assert not x.flags.writeable


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_inputs_propagate_without_a_crash(bad):
    model = classifier()
    x = X.copy()
    x[3, 1] = bad
    out = model.predict(x, verbose=0)
    assert np.isfinite(np.delete(out, 3, axis=0)).all()     # other samples are untouched
    assert not np.isfinite(out[3]).all()
    model.fit(x, Y, epochs=1, verbose=0)                     # documented: NaN propagates
    loss = model.evaluate(x, Y, verbose=0)[0]
    assert isinstance(loss, float)
    with pynn.no_grad():
        t = pynn.Tensor(x) * 2.0
    assert np.isnan(np.asarray(t)).any() == np.isnan(x).any()


def test_the_case_count_covers_every_table():
    tables = (MODEL_CALLS, CONSTRUCT, OPTIMIZER_CALLS, LOSS_METRIC_CALLS, TENSOR_CALLS,
              UTIL_CALLS)
    assert sum(map(len, tables)) >= 200

