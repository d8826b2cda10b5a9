"""Callbacks beyond History and the progress bar."""

import numpy as np
import pytest

import pynn
from pynn import layers


def test_learning_rate_scheduler_sets_each_epochs_rate_and_logs_it():
    m = pynn.Sequential([pynn.Input(shape=(3,)), layers.Dense(1)])
    m.compile(optimizer=pynn.optimizers.SGD(0.1), loss="mse")
    seen = []

    def schedule(epoch, lr):
        seen.append((epoch, lr))
        return lr * 0.5 if epoch > 0 else lr

    x = np.ones((4, 3), np.float32)
    history = m.fit(x, np.zeros((4, 1), np.float32), epochs=3, verbose=0,
                    callbacks=[pynn.callbacks.LearningRateScheduler(schedule)])
    assert [e for e, _ in seen] == [0, 1, 2]
    assert [lr for _, lr in seen] == pytest.approx([0.1, 0.1, 0.05])
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.025])
    assert m.optimizer.learning_rate == pytest.approx(0.025)


def test_learning_rate_scheduler_changes_the_update_size():
    """With SGD and lr 0 from the second epoch on, the weights stop moving after epoch one."""
    m = pynn.Sequential([pynn.Input(shape=(2,)), layers.Dense(1)])
    m.compile(optimizer=pynn.optimizers.SGD(0.1), loss="mse")
    x, y = np.ones((4, 2), np.float32), np.full((4, 1), 3.0, np.float32)
    sched = pynn.callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 if epoch == 0 else 0.0)
    m.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[sched])
    after_one = m.get_weights()
    m.fit(x, y, batch_size=4, epochs=3, initial_epoch=1, verbose=0, callbacks=[sched])
    assert all(np.array_equal(a, b) for a, b in zip(after_one, m.get_weights()))


def test_learning_rate_scheduler_refuses_a_non_number():
    m = pynn.Sequential([pynn.Input(shape=(2,)), layers.Dense(1)])
    m.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="schedule returned"):
        m.fit(np.ones((2, 2)), np.ones((2, 1)), verbose=0,
              callbacks=[pynn.callbacks.LearningRateScheduler(lambda e, lr: "fast")])
