"""fork(): a child process made after pynn has run on several threads works, single-threaded.

GNU OpenMP's threads do not survive fork, and its next parallel region in the child waited for
them forever: a multiprocessing.Pool with the fork start method after a multi-threaded fit never
returned, nor did os.fork() then predict. A model another thread was training at the fork had a
lock in the child that nobody could release. Each case runs with a timeout, so a hang fails.
"""

import multiprocessing
import os
import threading
import warnings

import numpy as np
import pytest

import pynn
from pynn import layers

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

RNG = np.random.default_rng(5)
X = RNG.random((512, 64)).astype(np.float32)
Y = (X.sum(axis=1) > 32).astype(np.int64)
TIMEOUT = 60

_model = None  # the forked pool's workers read it


def trained_model():
    pynn.set_num_threads(2)
    pynn.utils.set_random_seed(0)
    model = pynn.Sequential([pynn.Input(shape=(64,)), layers.Dense(256, activation="relu"),
                             layers.Dense(256, activation="relu"),
                             layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(X, Y, batch_size=128, epochs=2, verbose=0)  # big enough products for 2 threads
    return model


def _predict_in_worker(rows):
    return _model.predict(X[rows], verbose=0), pynn.get_num_threads()


def run_child(body) -> int:
    """Forks; the child runs body() and exits 0 when it returns True. Returns the exit status,
    or fails the test when the child is not done within TIMEOUT seconds (it hung)."""
    pid = os.fork()
    if pid == 0:
        ok = False
        try:
            ok = bool(body())
        finally:
            os._exit(0 if ok else 1)
    done = threading.Event()
    status = []

    def wait():
        status.append(os.waitpid(pid, 0)[1])
        done.set()

    threading.Thread(target=wait, daemon=True).start()
    if not done.wait(TIMEOUT):
        os.kill(pid, 9)
        pytest.fail(f"the forked child did not finish within {TIMEOUT} s: it hung")
    return os.waitstatus_to_exitcode(status[0])


def test_a_fork_pool_after_a_multithreaded_fit_predicts():
    global _model
    _model = trained_model()
    expected = _model.predict(X, verbose=0)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        job = pool.map_async(_predict_in_worker, [slice(0, 256), slice(256, 512)])
        parts = job.get(timeout=TIMEOUT)
    np.testing.assert_allclose(np.concatenate([p for p, _ in parts]), expected, rtol=1e-5,
                               atol=1e-6)
    assert all(threads == 1 for _, threads in parts)


def test_os_fork_then_predict_and_fit_in_the_child():
    model = trained_model()
    expected = model.predict(X, verbose=0)

    def child():
        same = np.allclose(model.predict(X, verbose=0), expected, rtol=1e-5, atol=1e-6)
        model.fit(X, Y, batch_size=128, epochs=1, verbose=0)
        return same and np.isfinite(model.predict(X, verbose=0)).all()

    assert run_child(child) == 0
    np.testing.assert_array_equal(model.predict(X, verbose=0), expected)  # parent unchanged


def test_the_child_is_single_threaded_and_says_so():
    trained_model()
    threads = pynn.get_num_threads()  # 2, or 1 under OMP_THREAD_LIMIT=1

    def child():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pynn.set_num_threads(2)
        return pynn.get_num_threads() == 1 and any("fork" in str(w.message) for w in caught)

    assert run_child(child) == 0
    assert pynn.get_num_threads() == threads


def test_fork_while_another_thread_trains_the_model_never_hangs_the_child():
    model = trained_model()
    snapshot = model.get_weights()
    stop = threading.Event()

    def train():
        while not stop.is_set():
            model.train_on_batch(X[:128], Y[:128])

    trainer = threading.Thread(target=train)
    trainer.start()
    try:
        for _ in range(10):  # forks at random points of the other thread's steps
            def child():
                try:
                    model.predict(X, verbose=0)
                except RuntimeError as e:  # forked mid-step: refused until weights are set
                    if "forked" not in str(e):
                        raise
                model.set_weights(snapshot)
                return np.isfinite(model.predict(X, verbose=0)).all()

            assert run_child(child) == 0
    finally:
        stop.set()
        trainer.join()
