"""BackupAndRestore (resuming a fit killed mid-run, at the right epoch and step) and
SwapEMAWeights."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pynn

# A run that trains a small model with dropout (the core's random stream) and shuffling (the
# sample order's), so a resumed run matches an uninterrupted one only if both streams, the
# optimizer's state and the step are restored. argv: backup dir ('-' for none), the global
# step at which the process kills itself (-1: never), the file for the final weights.
_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    import pynn
    backup, kill_at, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    pynn.utils.set_random_seed(7)
    x = np.random.default_rng(0).normal(size=(200, 6)).astype(np.float32)
    y = (x[:, :1] * 2 - x[:, 1:2]).astype(np.float32)
    model = pynn.Sequential([pynn.Input((6,)), pynn.layers.Dense(16, "relu"),
                             pynn.layers.Dropout(0.3), pynn.layers.Dense(1)])
    model.compile(optimizer=pynn.optimizers.Adam(0.01), loss="mse")
    seen = []

    class Kill(pynn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(batch)
            if len(seen) == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    callbacks = [Kill()]
    if backup != "-":
        callbacks.insert(0, pynn.callbacks.BackupAndRestore(backup, save_freq=5))
    h = model.fit(x, y, batch_size=16, epochs=4, verbose=0, callbacks=callbacks)
    np.savez(out, *[np.asarray(w) for w in model.weights],
             epochs=np.array(len(h.history["loss"])), first=np.array(seen[0]))
""")


def _run(tmp_path, *args) -> subprocess.CompletedProcess:
    script = tmp_path / "train.py"
    script.write_text(_SCRIPT)
    env = dict(os.environ, PYNN_NUM_THREADS="1", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(script), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_killed_fit_resumes_at_the_step_of_its_backup_and_ends_as_an_uninterrupted_one(
        tmp_path):
    backup = tmp_path / "backup"
    # 13 steps per epoch; killed at the 30th step (epoch 2, step 3): the last backup is the one
    # after step 30 (every 5 steps), epoch 2 step 4
    killed = _run(tmp_path, backup, 30, tmp_path / "unused.npz")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (backup / "latest.weights.safetensors").exists()
    resumed = _run(tmp_path, backup, -1, tmp_path / "resumed.npz")
    assert resumed.returncode == 0, resumed.stderr
    whole = _run(tmp_path, "-", -1, tmp_path / "whole.npz")
    assert whole.returncode == 0, whole.stderr
    a, b = np.load(tmp_path / "resumed.npz"), np.load(tmp_path / "whole.npz")
    assert int(a["epochs"]) == 2 and int(b["epochs"]) == 4   # epochs 2 and 3 only
    assert int(a["first"]) == 4 and int(b["first"]) == 0     # resumed at step 4 of epoch 2
    for key in b.files:
        if key.startswith("arr_"):
            np.testing.assert_array_equal(a[key], b[key])
    assert not backup.exists()  # a fit that ends deletes its backup


def _model():
    pynn.utils.set_random_seed(3)
    model = pynn.Sequential([pynn.Input((4,)), pynn.layers.Dense(3)])
    model.compile(optimizer=pynn.optimizers.SGD(0.05, momentum=0.9), loss="mse")
    return model


_X = np.random.default_rng(1).normal(size=(40, 4)).astype(np.float32)
_Y = np.random.default_rng(2).normal(size=(40, 3)).astype(np.float32)


class _Interrupt(pynn.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("Interrupting!")


def test_an_interrupted_fit_resumes_at_the_epoch_after_its_last_backup(tmp_path):
    """Keras's own example: interrupted at epoch 4 of 10, the second fit runs 6 epochs."""
    backup = pynn.callbacks.BackupAndRestore(str(tmp_path / "b"))
    model = _model()
    with pytest.raises(RuntimeError, match="Interrupting"):
        model.fit(_X, _Y, epochs=10, batch_size=8, verbose=0, callbacks=[backup, _Interrupt(4)])
    weights = [np.array(w) for w in model.weights]
    momenta = {k: np.array(v) for k, v in pynn.saving._optimizer_slots(model).items()}
    fresh = _model()  # another process would start from new weights
    seen = []
    probe = pynn.callbacks.LambdaCallback(on_train_begin=lambda logs: seen.extend(
        [np.array(w) for w in fresh.weights] + [np.array(v) for v in
                                                pynn.saving._optimizer_slots(fresh).values()]))
    history = fresh.fit(_X, _Y, epochs=10, batch_size=8, verbose=0, callbacks=[backup, probe])
    assert len(history.history["loss"]) == 6
    for got, want in zip(seen, weights + list(momenta.values())):
        np.testing.assert_array_equal(got, want)
    assert not (tmp_path / "b").exists()


def test_backup_is_kept_with_delete_checkpoint_false_and_other_files_are_never_deleted(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("mine")
    backup = pynn.callbacks.BackupAndRestore(str(tmp_path / "b"), delete_checkpoint=False)
    _model().fit(_X, _Y, epochs=2, verbose=0, callbacks=[backup])
    assert (tmp_path / "b" / "latest.weights.safetensors").exists()
    backup = pynn.callbacks.BackupAndRestore(str(tmp_path / "b"))
    history = _model().fit(_X, _Y, epochs=3, verbose=0, callbacks=[backup])
    assert len(history.history["loss"]) == 1  # resumed at epoch 2
    assert (tmp_path / "b" / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "b" / "latest.weights.safetensors").exists()


def test_double_checkpoint_falls_back_on_the_previous_backup_when_the_latest_is_damaged(
        tmp_path):
    backup = pynn.callbacks.BackupAndRestore(str(tmp_path), double_checkpoint=True)
    model = _model()
    with pytest.raises(RuntimeError):
        model.fit(_X, _Y, epochs=5, verbose=0, callbacks=[backup, _Interrupt(3)])
    assert (tmp_path / "latest.weights.safetensors.bkp").exists()
    (tmp_path / "latest.weights.safetensors").write_bytes(b"\x00" * 40)
    with pytest.warns(UserWarning, match="previous one"):
        history = _model().fit(_X, _Y, epochs=5, verbose=0, callbacks=[backup])
    assert len(history.history["loss"]) == 3  # the previous backup was taken after epoch 1


def test_a_damaged_backup_without_a_previous_one_is_a_clear_error(tmp_path):
    (tmp_path / "latest.weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot resume"):
        _model().fit(_X, _Y, epochs=1, verbose=0,
                     callbacks=[pynn.callbacks.BackupAndRestore(str(tmp_path))])


def test_a_backup_of_another_model_is_refused_before_any_weight_changes(tmp_path):
    backup = pynn.callbacks.BackupAndRestore(str(tmp_path), delete_checkpoint=False)
    _model().fit(_X, _Y, epochs=1, verbose=0, callbacks=[backup])
    other = pynn.Sequential([pynn.Input((4,)), pynn.layers.Dense(5), pynn.layers.Dense(3)])
    other.compile(optimizer="sgd", loss="mse")
    before = [np.array(w) for w in other.weights]
    with pytest.raises(ValueError, match="another model"):
        other.fit(_X, _Y, epochs=2, verbose=0, callbacks=[backup])
    for got, want in zip(other.weights, before):
        np.testing.assert_array_equal(np.asarray(got), want)


@pytest.mark.parametrize("kwargs, match", [({"backup_dir": ""}, "Empty"),
                                           ({"backup_dir": "x", "save_freq": "batch"},
                                            "save_freq")])
def test_bad_arguments_are_refused_as_keras_refuses_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pynn.callbacks.BackupAndRestore(**kwargs)


class _Probe(pynn.callbacks.Callback):
    """Records the weights the model holds while it validates, and the optimizer's averages
    right after."""

    def __init__(self):
        super().__init__()
        self.during, self.averages_after, self.after = [], [], []

    def on_test_begin(self, logs=None):
        self.during.append([np.array(w) for w in self.model.trainable_weights])

    def on_test_end(self, logs=None):
        slots = pynn.saving._optimizer_slots(self.model)
        self.after.append([np.array(w) for w in self.model.trainable_weights])
        self.averages_after.append([np.array(slots[f"optimizer/average/{w.path}"])
                                    for w in self.model.trainable_weights])


def test_swap_ema_weights_validates_with_the_averages_and_trains_on_the_weights():
    pynn.utils.set_random_seed(5)
    model = pynn.Sequential([pynn.Input((4,)), pynn.layers.Dense(3)])
    model.compile(optimizer=pynn.optimizers.Adam(0.05, use_ema=True, ema_momentum=0.9),
                  loss="mse")
    probe = _Probe()
    history = model.fit(_X, _Y, epochs=3, batch_size=8, verbose=0, validation_split=0.25,
                        callbacks=[pynn.callbacks.SwapEMAWeights(), probe])
    assert len(probe.during) == 3
    for during, averages, after in zip(probe.during, probe.averages_after, probe.after):
        for d, a, t in zip(during, averages, after):
            np.testing.assert_array_equal(d, a)   # validated with the averages
            assert not np.array_equal(d, t)       # and trained on the weights
    # the last validation's loss is the loss of the averaged weights, which fit leaves in
    # the model at its end
    xv, yv = _X[30:], _Y[30:]
    assert history.history["val_loss"][-1] == pytest.approx(
        model.evaluate(xv, yv, verbose=0), rel=1e-5)


def test_swap_ema_weights_with_swap_on_epoch_leaves_the_averages_in_the_model_at_epoch_end():
    pynn.utils.set_random_seed(5)
    model = pynn.Sequential([pynn.Input((4,)), pynn.layers.Dense(3)])
    model.compile(optimizer=pynn.optimizers.Adam(0.05, use_ema=True), loss="mse")
    at_end = []

    class AtEnd(pynn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            slots = pynn.saving._optimizer_slots(self.model)
            at_end.append(all(np.array_equal(
                np.asarray(w), slots[f"optimizer/average/{w.path}"])
                for w in self.model.trainable_weights))

    model.fit(_X, _Y, epochs=2, batch_size=8, verbose=0,
              callbacks=[pynn.callbacks.SwapEMAWeights(swap_on_epoch=True), AtEnd()])
    # after the first epoch the model holds the averages and the slots the trained weights;
    # after the last both hold the averages (fit ends by writing them into the weights)
    assert at_end == [False, True]


def test_swap_ema_weights_without_use_ema_is_refused():
    model = _model()
    with pytest.raises(ValueError, match="use_ema=True"):
        model.fit(_X, _Y, epochs=1, verbose=0, validation_split=0.2,
                  callbacks=[pynn.callbacks.SwapEMAWeights()])


def test_batch_logs_of_metrics_outside_the_core_are_current_for_a_callback_that_reads_them():
    """Metrics outside the core update per few thousand samples, but a callback reading batch
    logs gets them up to that batch; pynn's own callbacks take them as a function (computed
    only when read), so an unread batch costs no metric update."""
    pynn.utils.set_random_seed(2)
    model = pynn.Sequential([pynn.Input((4,)), pynn.layers.Dense(3, "softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                  metrics=[pynn.metrics.MeanIoU(num_classes=3, sparse_y_pred=False)])
    labels = np.random.default_rng(4).integers(0, 3, 40)
    seen, kinds = [], []

    class Read(pynn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(logs["mean_io_u"])

    class Lazy(pynn.callbacks.Callback):
        _lazy_logs = True

        def on_train_batch_end(self, batch, logs=None):
            kinds.append(callable(logs))

    model.fit(_X, labels, epochs=1, batch_size=8, shuffle=False, verbose=0,
              callbacks=[Read(), Lazy()])
    assert kinds == [True] * 5 and len(seen) == 5
    # each batch's value is the IoU of the predictions of the steps so far (each made before
    # its step's update): the same model trained step by step gives them again
    probe = pynn.metrics.MeanIoU(num_classes=3, sparse_y_pred=False)
    pynn.utils.set_random_seed(2)
    ref = pynn.Sequential([pynn.Input((4,)), pynn.layers.Dense(3, "softmax")])
    ref.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    for step in range(5):
        rows = slice(8 * step, 8 * step + 8)
        probe.update_state(labels[rows], ref.predict(_X[rows], verbose=0))
        ref.train_on_batch(_X[rows], labels[rows])
        assert seen[step] == pytest.approx(float(probe.result()), abs=1e-6)
