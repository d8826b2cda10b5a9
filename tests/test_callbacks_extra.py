"""Keras 3's callbacks (hook order, EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, CSVLogger,
TerminateOnNaN, LambdaCallback), learning-rate schedules, and the progress display."""

import csv
import math
import re

import numpy as np
import pytest

import pynn
from pynn import callbacks as cbs
from pynn.layers import Dense
from pynn.optimizers import schedules

RNG = np.random.default_rng(7)
X = RNG.random((40, 4)).astype(np.float32)
Y = RNG.standard_normal((40, 2)).astype(np.float32)
XV, YV = X[:16], Y[:16]


def mlp(optimizer="sgd", metrics=("mae",), seed=0, cls=None):
    pynn.utils.set_random_seed(seed)
    model = (cls or pynn.Sequential)([pynn.Input(shape=(4,)), Dense(6, activation="tanh"),
                                      Dense(2)])
    model.compile(optimizer=optimizer, loss="mse", metrics=list(metrics))
    return model


class Recorder(cbs.Callback):
    """Records every hook call, with the log keys it received."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def _rec(self, name, *args, logs=None):
        self.calls.append((name, *args, None if logs is None else sorted(logs)))


for _hook in ("train_begin", "train_end", "test_begin", "test_end", "predict_begin",
              "predict_end"):
    setattr(Recorder, "on_" + _hook,
            (lambda h: lambda self, logs=None: self._rec(h, logs=logs))(_hook))
for _hook in ("epoch_begin", "epoch_end", "train_batch_begin", "train_batch_end",
              "test_batch_begin", "test_batch_end", "predict_batch_begin",
              "predict_batch_end"):
    setattr(Recorder, "on_" + _hook,
            (lambda h: lambda self, i, logs=None: self._rec(h, i, logs=logs))(_hook))


class Inject(cbs.Callback):
    """Puts a made-up quantity 'score' in each epoch's logs (listed first, so the callbacks after
    it see it), and keeps the weights and learning rate every epoch ended with."""

    def __init__(self, scores):
        super().__init__()
        self.scores, self.weights, self.lrs = list(scores), [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.lrs.append(float(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch, logs=None):
        logs["score"] = self.scores[epoch]
        self.weights.append(self.model.get_weights())


def same_weights(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(p, q) for p, q in zip(a, b))


# ---- hook order ----------------------------------------------------------------------------

def test_fit_calls_hooks_in_keras_order_with_validation_inside_the_epoch():
    rec = Recorder()
    model = mlp()
    # 40 samples, batches of 20: 2 train steps; 16 validation samples in batches of 8: 2 steps
    model.fit(X, Y, batch_size=20, epochs=2, validation_data=(XV, YV), validation_batch_size=8,
              verbose=0, callbacks=[rec])
    keys = ["loss", "mae"]
    epoch_keys = ["loss", "mae", "val_loss", "val_mae"]

    def epoch(e):
        return [("epoch_begin", e, []),
                ("train_batch_begin", 0, []), ("train_batch_end", 0, keys),
                ("train_batch_begin", 1, []), ("train_batch_end", 1, keys),
                ("test_begin", []),
                ("test_batch_begin", 0, []), ("test_batch_end", 0, keys),
                ("test_batch_begin", 1, []), ("test_batch_end", 1, keys),
                ("test_end", keys),
                ("epoch_end", e, epoch_keys)]

    assert rec.calls == [("train_begin", []), *epoch(0), *epoch(1), ("train_end", epoch_keys)]
    assert rec.params == {"verbose": 0, "epochs": 2, "steps": 2}
    assert rec.model is model


def test_validation_freq_skips_the_test_hooks_of_other_epochs():
    rec = Recorder()
    mlp().fit(X, Y, batch_size=40, epochs=2, validation_data=(XV, YV), validation_freq=2,
              verbose=0, callbacks=[rec])
    names = [c[0] for c in rec.calls]
    assert names.count("test_begin") == 1
    assert names.index("test_begin") > names.index("epoch_begin", 2)


def test_evaluate_and_predict_call_their_hooks_in_keras_order():
    model = mlp()
    rec = Recorder()
    model.evaluate(X, Y, batch_size=20, verbose=0, callbacks=[rec])
    assert rec.calls == [("test_begin", []), ("test_batch_begin", 0, []),
                         ("test_batch_end", 0, ["loss", "mae"]), ("test_batch_begin", 1, []),
                         ("test_batch_end", 1, ["loss", "mae"]), ("test_end", ["loss", "mae"])]
    assert rec.params == {"verbose": 0, "epochs": 1, "steps": 2}
    rec = Recorder()
    outputs = []
    rec.on_predict_batch_end = lambda i, logs=None: outputs.append(logs["outputs"].shape)
    model.predict(X, batch_size=32, verbose=0, callbacks=[rec])
    assert rec.calls == [("predict_begin", []), ("predict_batch_begin", 0, []),
                         ("predict_batch_begin", 1, []), ("predict_end", [])]
    assert outputs == [(32, 2), (8, 2)]


def test_keras2_batch_aliases_and_lambda_callback_are_called():
    seen = []

    class Old(cbs.Callback):
        def on_batch_begin(self, batch, logs=None):
            seen.append(("begin", batch))

        def on_batch_end(self, batch, logs=None):
            seen.append(("end", batch, round(logs["loss"], 6) == round(logs["loss"], 6)))

    lam = cbs.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(("epoch", e)),
                             on_train_batch_end=lambda b, logs: seen.append(("lam", b)),
                             on_test_end=lambda logs: seen.append(("test_end", sorted(logs))))
    mlp().fit(X, Y, batch_size=20, epochs=1, validation_data=(XV, YV), verbose=0,
              callbacks=[Old(), lam])
    assert seen == [("begin", 0), ("end", 0, True), ("lam", 0), ("begin", 1), ("end", 1, True),
                    ("lam", 1), ("test_end", ["loss", "mae"]), ("epoch", 0)]


def test_a_callback_list_of_non_callbacks_is_refused():
    with pytest.raises(TypeError, match="Callback instances"):
        mlp().fit(X, Y, verbose=0, callbacks=[lambda: None])


# ---- EarlyStopping -------------------------------------------------------------------------

def test_early_stopping_stops_after_patience_and_restores_the_best_weights(capsys):
    inject = Inject([5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 1.0, 0.5])
    stop = cbs.EarlyStopping(monitor="score", mode="min", patience=2, verbose=1,
                             restore_best_weights=True)
    model = mlp()
    history = model.fit(X, Y, batch_size=10, epochs=8, verbose=0, callbacks=[inject, stop])
    # best at epoch 2; epochs 3 and 4 do not improve: patience 2 runs out at epoch 4
    assert history.epoch == [0, 1, 2, 3, 4]
    assert stop.stopped_epoch == 4 and stop.best_epoch == 2 and stop.best == 3.0
    assert same_weights(model.get_weights(), inject.weights[2])
    assert not same_weights(inject.weights[4], inject.weights[2])
    out = capsys.readouterr().out
    assert "Epoch 5: early stopping" in out
    assert "Restoring model weights from the end of the best epoch: 3." in out


def test_early_stopping_patience_0_stops_at_the_first_epoch_without_improvement():
    stop = cbs.EarlyStopping(monitor="score", mode="min")
    history = mlp().fit(X, Y, epochs=6, verbose=0,
                        callbacks=[Inject([3.0, 2.0, 2.0, 1.0, 0, 0]), stop])
    assert history.epoch == [0, 1, 2] and stop.stopped_epoch == 2


def test_early_stopping_min_delta_baseline_and_start_from_epoch():
    # improvements smaller than min_delta do not count
    stop = cbs.EarlyStopping(monitor="score", mode="min", min_delta=0.5, patience=1)
    history = mlp().fit(X, Y, epochs=6, verbose=0,
                        callbacks=[Inject([3.0, 2.8, 2.6, 1.0, 0, 0]), stop])
    assert history.epoch == [0, 1]
    # epochs not beating the baseline count against patience even when they improve on the
    # best, so the first epoch without improvement stops (Keras: epoch 4 without a baseline)
    stop = cbs.EarlyStopping(monitor="score", mode="min", baseline=1.0, patience=2)
    history = mlp().fit(X, Y, epochs=6, verbose=0,
                        callbacks=[Inject([5.0, 4.0, 3.0, 3.0, 3.0, 3.0]), stop])
    assert history.epoch == [0, 1, 2, 3]
    # warm-up epochs are not watched
    stop = cbs.EarlyStopping(monitor="score", mode="max", start_from_epoch=3)
    history = mlp().fit(X, Y, epochs=6, verbose=0,
                        callbacks=[Inject([5.0, 4.0, 3.0, 2.0, 1.0, 0]), stop])
    assert history.epoch == [0, 1, 2, 3, 4]


def test_early_stopping_on_the_real_loss_and_auto_mode_directions():
    stop = cbs.EarlyStopping(monitor="loss", patience=1)
    mlp().fit(X, Y, epochs=2, verbose=0, callbacks=[stop])
    assert stop.best is not None and stop.monitor_op(0.0, 1.0)  # a loss goes down
    pynn.utils.set_random_seed(0)
    clf = pynn.Sequential([pynn.Input(shape=(4,)), Dense(1, activation="sigmoid")])
    clf.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
    up = cbs.EarlyStopping(monitor="val_accuracy")
    clf.fit(X, (X[:, :1] > 0.5).astype(np.float32), epochs=1, validation_split=0.25, verbose=0,
            callbacks=[up])
    assert up.monitor_op(1.0, 0.0)  # an accuracy goes up


def test_early_stopping_warns_like_keras_on_a_missing_metric_and_refuses_an_unknown_one():
    with pytest.warns(UserWarning, match=r"Early stopping conditioned on metric `val_loss` "
                                         r"which is not available. Available metrics are: "
                                         r"loss,mae"):
        mlp().fit(X, Y, epochs=1, verbose=0, callbacks=[cbs.EarlyStopping()])
    with pytest.raises(ValueError, match="isn't able to automatically determine"):
        mlp().fit(X, Y, epochs=1, verbose=0, callbacks=[cbs.EarlyStopping(monitor="nope")])
    with pytest.warns(UserWarning, match="mode 'sideways' is unknown"):
        cbs.EarlyStopping(mode="sideways")


# ---- ReduceLROnPlateau ---------------------------------------------------------------------

def test_reduce_lr_on_plateau_reduces_at_the_right_epochs(capsys):
    inject = Inject([1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5])
    reduce = cbs.ReduceLROnPlateau(monitor="score", factor=0.5, patience=2, verbose=1)
    history = mlp(pynn.optimizers.SGD(0.1)).fit(X, Y, epochs=7, verbose=0,
                                                callbacks=[inject, reduce])
    # no improvement in epochs 1, 2: halved after epoch 2; again after epochs 4, 5
    assert inject.lrs == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025])
    # the logs hold the rate each epoch ran with
    assert history.history["learning_rate"] == pytest.approx(inject.lrs)
    out = capsys.readouterr().out
    assert re.search(r"Epoch 3: ReduceLROnPlateau reducing learning rate to 0\.050", out)
    assert re.search(r"Epoch 6: ReduceLROnPlateau reducing learning rate to 0\.025", out)


def test_reduce_lr_on_plateau_cooldown_and_min_lr():
    inject = Inject([1.0] * 6)
    reduce = cbs.ReduceLROnPlateau(monitor="score", factor=0.1, patience=1, cooldown=2,
                                   min_lr=0.005)
    mlp(pynn.optimizers.SGD(0.1)).fit(X, Y, epochs=6, verbose=0, callbacks=[inject, reduce])
    # reduced after epoch 1; the cooldown of 2 counts down in epochs 2 and 3, so epoch 3
    # counts as a plateau again: reduced to the floor
    assert inject.lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.005, 0.005])
    with pytest.raises(ValueError, match="factor >= 1.0"):
        cbs.ReduceLROnPlateau(factor=1.5)


def test_reduce_lr_on_plateau_warns_like_keras_on_a_missing_metric():
    with pytest.warns(UserWarning, match=r"Learning rate reduction is conditioned on metric "
                                         r"`val_loss` which is not available"):
        mlp().fit(X, Y, epochs=1, verbose=0, callbacks=[cbs.ReduceLROnPlateau()])


# ---- ModelCheckpoint -----------------------------------------------------------------------

class Recording(pynn.Sequential):
    """A model whose save and save_weights record their calls instead of writing."""

    saved: list

    def save(self, filepath, overwrite=True, **kwargs):
        self.saved.append(("save", filepath, overwrite))

    def save_weights(self, filepath, overwrite=True, **kwargs):
        self.saved.append(("save_weights", filepath, overwrite))


def recording_model():
    model = mlp(cls=Recording)
    model.saved = []
    return model


def test_model_checkpoint_formats_the_path_with_epoch_and_logs(tmp_path):
    model = recording_model()
    path = str(tmp_path / "sub" / "m-{epoch:02d}-{val_loss:.3f}.keras")
    history = model.fit(X, Y, epochs=3, validation_data=(XV, YV), verbose=0,
                        callbacks=[cbs.ModelCheckpoint(path)])
    expected = [str(tmp_path / "sub" / f"m-{e + 1:02d}-{v:.3f}.keras")
                for e, v in enumerate(history.history["val_loss"])]
    assert model.saved == [("save", p, True) for p in expected]
    assert (tmp_path / "sub").is_dir()  # made for the files


def test_model_checkpoint_save_best_only_and_weights_only(tmp_path, capsys):
    model = recording_model()
    ck = cbs.ModelCheckpoint(str(tmp_path / "best-{epoch}.weights.h5"), monitor="score",
                             mode="min", save_best_only=True, save_weights_only=True, verbose=1)
    model.fit(X, Y, epochs=5, verbose=0, callbacks=[Inject([3.0, 2.0, 2.5, 1.0, 1.0]), ck])
    assert model.saved == [("save_weights", str(tmp_path / f"best-{e}.weights.h5"), True)
                           for e in (1, 2, 4)]
    out = capsys.readouterr().out
    assert "Epoch 2: score improved from 3.00000 to 2.00000, saving model to" in out
    assert "Epoch 3: score did not improve from 2.00000" in out
    # initial_value_threshold: only values beating it are saved
    model.saved = []
    ck = cbs.ModelCheckpoint(str(tmp_path / "t.keras"), monitor="score", mode="min",
                             save_best_only=True, initial_value_threshold=1.5)
    model.fit(X, Y, epochs=5, verbose=0, callbacks=[Inject([3.0, 2.0, 2.5, 1.0, 1.0]), ck])
    assert [s[1] for s in model.saved] == [str(tmp_path / "t.keras")]


def test_model_checkpoint_save_freq_in_batches(tmp_path):
    model = recording_model()
    ck = cbs.ModelCheckpoint(str(tmp_path / "c-{epoch}-{batch}.keras"), save_freq=2)
    model.fit(X, Y, batch_size=8, epochs=2, verbose=0, callbacks=[ck])  # 5 batches an epoch
    assert [s[1].rsplit("/", 1)[1] for s in model.saved] == [
        "c-1-2.keras", "c-1-4.keras", "c-2-1.keras", "c-2-3.keras", "c-2-5.keras"]


def test_model_checkpoint_refuses_bad_paths_and_frequencies(tmp_path):
    with pytest.raises(ValueError, match="must end in `.keras`"):
        cbs.ModelCheckpoint(str(tmp_path / "m.bin"))
    with pytest.raises(ValueError, match="must end in `.weights.h5`"):
        cbs.ModelCheckpoint(str(tmp_path / "m.keras"), save_weights_only=True)
    with pytest.raises(ValueError, match="Unrecognized save_freq"):
        cbs.ModelCheckpoint(str(tmp_path / "m.keras"), save_freq="batch")
    model = recording_model()
    with pytest.raises(KeyError, match="Failed to format this callback filepath"):
        model.fit(X, Y, epochs=1, verbose=0,
                  callbacks=[cbs.ModelCheckpoint(str(tmp_path / "{val_mae}.keras"))])


@pytest.mark.skipif(not hasattr(pynn.Model, "save"), reason="model.save is not there yet")
def test_model_checkpoint_writes_a_model_that_loads(tmp_path):
    model = mlp()
    model.fit(X, Y, epochs=2, verbose=0,
              callbacks=[cbs.ModelCheckpoint(str(tmp_path / "m-{epoch}.keras"))])
    assert (tmp_path / "m-1.keras").exists() and (tmp_path / "m-2.keras").exists()
    load_model = getattr(pynn.models, "load_model", None)
    if load_model is None:
        from pynn.saving import load_model
    loaded = load_model(str(tmp_path / "m-2.keras"))
    assert np.allclose(loaded.predict(X, verbose=0), model.predict(X, verbose=0))


# ---- CSVLogger, TerminateOnNaN ---------------------------------------------------------------

def read_csv(path, sep=","):
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter=sep))


def test_csv_logger_writes_a_header_and_a_row_per_epoch(tmp_path):
    path = tmp_path / "log.csv"
    history = mlp().fit(X, Y, epochs=3, validation_data=(XV, YV), verbose=0,
                        callbacks=[cbs.CSVLogger(path)])
    rows = read_csv(path)
    assert rows[0] == ["epoch", "loss", "mae", "val_loss", "val_mae"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"]
    for k, key in enumerate(rows[0][1:], start=1):
        assert [float(r[k]) for r in rows[1:]] == pytest.approx(history.history[key])


def test_csv_logger_appends_and_takes_a_separator(tmp_path):
    path = tmp_path / "log.csv"
    model = mlp()
    model.fit(X, Y, epochs=2, verbose=0, callbacks=[cbs.CSVLogger(path, separator=";")])
    model.fit(X, Y, epochs=1, verbose=0,
              callbacks=[cbs.CSVLogger(path, separator=";", append=True)])
    rows = read_csv(path, ";")
    assert rows[0] == ["epoch", "loss", "mae"] and [r[0] for r in rows[1:]] == ["0", "1", "0"]
    model.fit(X, Y, epochs=1, verbose=0, callbacks=[cbs.CSVLogger(path)])
    assert len(read_csv(path)) == 2  # overwritten


def test_csv_logger_keeps_val_columns_for_epochs_without_validation(tmp_path):
    path = tmp_path / "log.csv"
    mlp().fit(X, Y, epochs=2, validation_data=(XV, YV), validation_freq=2, verbose=0,
              callbacks=[cbs.CSVLogger(path)])
    rows = read_csv(path)
    assert rows[0] == ["epoch", "loss", "mae", "val_loss", "val_mae"]
    assert rows[1][3:] == ["NA", "NA"] and float(rows[2][3]) > 0


def test_terminate_on_nan_stops_at_the_batch_with_a_nan_loss(capsys):
    x = X.copy()
    x[13, 0] = np.nan  # in the fourth batch of 4
    rec = Recorder()
    model = mlp()
    history = model.fit(x, Y, batch_size=4, epochs=3, shuffle=False, verbose=0,
                        callbacks=[cbs.TerminateOnNaN(), rec])
    assert model.optimizer.iterations == 4 and history.epoch == [0]
    assert math.isnan(history.history["loss"][0])
    assert "Batch 3: Invalid loss, terminating training" in capsys.readouterr().out
    assert rec.calls[-1][0] == "train_end"
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 3"):
        mlp().fit(x, Y, batch_size=4, shuffle=False, verbose=0,
                  callbacks=[cbs.TerminateOnNaN(raise_error=True)])


# ---- learning-rate schedules ---------------------------------------------------------------

def test_exponential_decay_values():
    s = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    for step in (0, 5, 10, 25, 1000):
        assert s(step) == pytest.approx(0.1 * 0.5 ** (step / 10), rel=1e-7)
    st = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True)
    assert [st(k) for k in (0, 9, 10, 19, 25)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    with pytest.raises(ValueError, match="decay_steps"):
        schedules.ExponentialDecay(0.1, 0, 0.5)


def test_piecewise_constant_decay_values():
    s = schedules.PiecewiseConstantDecay([3, 6], [1.0, 0.5, 0.1])
    # values[0] while step <= 3, values[1] while 3 < step <= 6, then values[2]
    assert [s(k) for k in (0, 3, 4, 6, 7, 100)] == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]
    with pytest.raises(ValueError, match="1 less than the length of values"):
        schedules.PiecewiseConstantDecay([3, 6], [1.0, 0.5])


def test_cosine_decay_values_with_and_without_warmup():
    s = schedules.CosineDecay(0.1, decay_steps=10, alpha=0.2)
    for step in (0, 3, 5, 10, 20):
        cos = 0.5 * (1 + math.cos(math.pi * min(step, 10) / 10))
        assert s(step) == pytest.approx(0.1 * ((1 - 0.2) * cos + 0.2), rel=1e-7)
    w = schedules.CosineDecay(0.0, decay_steps=10, warmup_target=0.2, warmup_steps=4)
    assert [w(k) for k in (0, 2, 4, 9, 14, 100)] == pytest.approx(
        [0.0, 0.1, 0.2, 0.1, 0.0, 0.0], abs=1e-12)


def test_other_schedules_and_serialization():
    p = schedules.PolynomialDecay(0.1, 10, end_learning_rate=0.01, power=2.0)
    assert p(5) == pytest.approx(0.09 * 0.25 + 0.01) and p(50) == pytest.approx(0.01)
    i = schedules.InverseTimeDecay(0.1, 10, 0.5)
    assert i(20) == pytest.approx(0.1 / 2.0)
    for s in (schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True),
              schedules.PiecewiseConstantDecay([3], [1.0, 0.5]),
              schedules.CosineDecay(0.1, 10, warmup_target=0.3, warmup_steps=2), p, i):
        again = type(s).from_config(s.get_config())
        assert [again(k) for k in range(0, 30, 3)] == [s(k) for k in range(0, 30, 3)]
        back = schedules.deserialize(schedules.serialize(s))
        assert type(back) is type(s) and back.get_config() == s.get_config()
    opt = pynn.optimizers.Adam(learning_rate=schedules.ExponentialDecay(0.1, 10, 0.5))
    config = opt.get_config()
    assert config["learning_rate"]["class_name"] == "ExponentialDecay"
    assert pynn.optimizers.Adam.from_config(config).learning_rate == pytest.approx(0.1)


def test_schedules_import_as_keras_names_them():
    from pynn.optimizers.schedules import CosineDecay, LearningRateSchedule

    assert pynn.optimizers.schedules.CosineDecay is CosineDecay
    assert issubclass(CosineDecay, LearningRateSchedule)
    with pytest.raises(NotImplementedError):
        LearningRateSchedule()(0)


def test_fit_with_a_schedule_equals_setting_the_rate_by_hand_each_step():
    sched = schedules.ExponentialDecay(0.2, decay_steps=3, decay_rate=0.5)
    a = mlp(pynn.optimizers.SGD(learning_rate=sched, momentum=0.5))
    b = mlp(pynn.optimizers.SGD(learning_rate=0.2, momentum=0.5))
    assert same_weights(a.get_weights(), b.get_weights())
    a.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for step in range(10):  # 5 batches a epoch
        b.optimizer.learning_rate = 0.2 * 0.5 ** (step / 3)
        rows = slice(step % 5 * 8, step % 5 * 8 + 8)
        b.train_on_batch(X[rows], Y[rows])
    assert all(np.allclose(p, q, rtol=1e-6, atol=1e-7)
               for p, q in zip(a.get_weights(), b.get_weights()))
    assert a.optimizer.iterations == 10
    # the optimizer reads the rate of the coming step, as Keras's does
    assert a.optimizer.learning_rate == pytest.approx(sched(10))


def test_train_on_batch_and_apply_follow_the_schedule():
    sched = schedules.PiecewiseConstantDecay([0], [0.5, 0.0])  # 0.5 at step 0, then 0
    model = mlp(pynn.optimizers.SGD(learning_rate=sched))
    before = model.get_weights()
    model.train_on_batch(X, Y)
    after_one = model.get_weights()
    assert not same_weights(before, after_one)
    model.train_on_batch(X, Y)
    assert same_weights(after_one, model.get_weights())
    # the imperative path: w -= lr(step) * g
    model = mlp()
    opt = pynn.optimizers.SGD(learning_rate=schedules.PiecewiseConstantDecay([0], [0.5, 0.25]))
    w0 = [w.numpy() for w in model.trainable_weights]
    grads = [np.ones_like(w) for w in w0]
    opt.apply(grads, model.trainable_weights)
    opt.apply(grads, model.trainable_weights)
    for w, start in zip(model.trainable_weights, w0):
        assert np.allclose(w.numpy(), start - 0.5 - 0.25)


def test_a_scheduled_learning_rate_is_not_settable_and_callables_work():
    opt = pynn.optimizers.SGD(learning_rate=schedules.ExponentialDecay(0.1, 10, 0.5))
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.1
    assert pynn.optimizers.SGD(learning_rate=lambda: 0.05).learning_rate == 0.05
    bad = pynn.optimizers.SGD(learning_rate=schedules.PiecewiseConstantDecay([0], [0.1, -1.0]))
    model = mlp(bad)
    model.train_on_batch(X, Y)
    with pytest.raises(ValueError, match="schedule PiecewiseConstantDecay gave -1.0 at step 1"):
        model.train_on_batch(X, Y)


# ---- the progress display ------------------------------------------------------------------

def screen_lines(text: str) -> list[str]:
    """What a terminal keeps: the last redraw of each line."""
    return [ln.split("\r")[-1].rstrip() for ln in text.split("\n") if ln.split("\r")[-1].strip()]


NUM = r"-?\d+\.\d{4}(e-\d+)?"
STEP_TIME = r"\d+(us|ms|s)/step"


def test_verbose_1_prints_keras_lines_per_epoch(capsys):
    model = mlp()
    history = model.fit(X, Y, batch_size=16, epochs=2, validation_data=(XV, YV), verbose=1)
    out = capsys.readouterr().out
    lines = screen_lines(out)
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    for e, line in enumerate((lines[1], lines[3])):
        assert re.fullmatch(rf"3/3 ━{{20}} \d+s {STEP_TIME} - loss: {NUM} - mae: {NUM} - "
                            rf"val_loss: {NUM} - val_mae: {NUM}", line), line
        h = history.history
        assert (f"loss: {h['loss'][e]:.4f} - mae: {h['mae'][e]:.4f} - "
                f"val_loss: {h['val_loss'][e]:.4f} - val_mae: {h['val_mae'][e]:.4f}") in line
    # one epoch: no header, as Keras
    model.fit(X, Y, batch_size=16, epochs=1, verbose=1)
    assert not any(ln.startswith("Epoch") for ln in screen_lines(capsys.readouterr().out))


def test_verbose_1_bar_while_running_shows_steps_eta_and_running_logs(capsys, monkeypatch):
    monkeypatch.setattr(cbs.ProgbarLogger, "interval", 0.0)  # redraw every batch
    model = mlp()
    model.fit(X, Y, batch_size=4, epochs=1, verbose=1)  # 10 steps
    draws = capsys.readouterr().out.split("\r")
    running = [d for d in draws if d.startswith(" 3/10")]
    assert running and re.match(rf" 3/10 ━{{6}}─{{14}} \d+s {STEP_TIME} - loss: {NUM} - mae: "
                                rf"{NUM}", running[0]), running
    assert draws[-1].startswith("10/10 ━━━━━━━━━━━━━━━━━━━━ ")


def test_verbose_2_prints_one_line_per_epoch(capsys):
    model = mlp()
    history = model.fit(X, Y, batch_size=16, epochs=2, validation_data=(XV, YV), verbose=2)
    out = capsys.readouterr().out
    assert "\r" not in out and "━" not in out
    lines = out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    assert re.fullmatch(rf"3/3 - \d+s - {STEP_TIME} - loss: {NUM} - mae: {NUM} - val_loss: "
                        rf"{NUM} - val_mae: {NUM}", lines[3]), lines[3]
    assert f"val_mae: {history.history['val_mae'][1]:.4f}" in lines[3]


def test_evaluate_and_predict_progress(capsys):
    model = mlp()
    loss, mae = model.evaluate(X, Y, batch_size=16, verbose=1)
    lines = screen_lines(capsys.readouterr().out)
    assert len(lines) == 1 and re.fullmatch(
        rf"3/3 ━{{20}} \d+s {STEP_TIME} - loss: {NUM} - mae: {NUM}", lines[0]), lines
    assert f"loss: {loss:.4f} - mae: {mae:.4f}" in lines[0]
    model.evaluate(X, Y, batch_size=16, verbose=2)
    assert re.fullmatch(rf"3/3 - \d+s - {STEP_TIME} - loss: {NUM} - mae: {NUM}\n",
                        capsys.readouterr().out)
    model.predict(X, batch_size=16, verbose=1)
    lines = screen_lines(capsys.readouterr().out)
    assert len(lines) == 1 and re.fullmatch(rf"3/3 ━{{20}} \d+s {STEP_TIME}", lines[0]), lines


def test_progress_bar_redraws_at_most_every_tenth_of_a_second(capsys):
    import time

    model = mlp()
    start = time.perf_counter()
    model.fit(np.repeat(X, 50, axis=0), np.repeat(Y, 50, axis=0), batch_size=4, epochs=1,
              verbose=1)  # 500 steps
    took = time.perf_counter() - start
    draws = capsys.readouterr().out.count("\r")
    assert draws <= 3 + took / 0.1


def test_values_are_formatted_as_keras_does():
    assert cbs._format_logs({"loss": 0.123456, "tiny": 0.0000123, "lr": 0.001}) == \
        "loss: 0.1235 - tiny: 1.2300e-05 - lr: 1.0000e-03"
