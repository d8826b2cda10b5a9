"""Threads: predict from several Python threads on one model gives what it gives serially; fit
in one thread while predict runs in another either works or raises a clear error, and never
corrupts memory (the weights stay finite, a later predict agrees with a fresh one).

And determinism: the same seed and thread count give bitwise-identical weights after fit (with
Dropout and shuffling) in two separate processes.
"""

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import pynn
from pynn import layers

RNG = np.random.default_rng(3)
X = RNG.random((256, 16)).astype(np.float32)
Y = (np.arange(256) % 4).astype(np.int64)


def classifier():
    pynn.utils.set_random_seed(0)
    model = pynn.Sequential([pynn.Input(shape=(16,)), layers.Dense(32, activation="relu"),
                             layers.Dropout(0.2), layers.Dense(4, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def run_threads(n, target):
    errors, results = [], [None] * n

    def work(i):
        try:
            results[i] = target(i)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "a thread hung"
    return results, errors


@pytest.mark.parametrize("how", ["predict", "predict_batched", "predict_on_batch", "call"])
def test_predict_from_four_threads_matches_serial(how):
    model = classifier()
    model.fit(X, Y, epochs=1, verbose=0)
    parts = [X[:1], X[1:8], X[::3], X]   # different sizes: the plan is resized between calls
    run = {"predict": lambda x: model.predict(x, verbose=0),
           "predict_batched": lambda x: model.predict(x, batch_size=7, verbose=0),
           "predict_on_batch": lambda x: model.predict_on_batch(x),
           "call": lambda x: np.array(model(x))}[how]
    serial = [run(p) for p in parts]
    for _ in range(5):
        results, errors = run_threads(4, lambda i: [run(parts[i]) for _ in range(10)])
        assert not errors, errors
        for i in range(4):
            for r in results[i]:
                np.testing.assert_array_equal(r, serial[i])


def test_fit_while_another_thread_predicts_works_or_raises_and_never_corrupts():
    model = classifier()
    model.fit(X, Y, epochs=1, verbose=0)
    stop = threading.Event()
    seen = []

    def predictor(_):
        outs = 0
        while not stop.is_set():
            try:
                p = model.predict(X[:64], verbose=0)
                assert p.shape == (64, 4)
                assert np.isfinite(p).all()
                outs += 1
            except (RuntimeError, ValueError) as e:  # a clear refusal is allowed
                seen.append(e)
        return outs

    def trainer(_):
        try:
            model.fit(X, Y, epochs=3, batch_size=16, verbose=0)
        except (RuntimeError, ValueError) as e:
            seen.append(e)
        finally:
            stop.set()

    results, errors = run_threads(2, lambda i: trainer(i) if i == 0 else predictor(i))
    assert not errors, errors
    assert all(str(e) for e in seen)  # refusals, if any, say why
    weights = model.get_weights()
    assert all(np.isfinite(w).all() for w in weights)
    # the model is consistent afterwards: the same weights in a fresh model predict the same
    fresh = classifier()
    fresh.set_weights(weights)
    np.testing.assert_allclose(model.predict(X, verbose=0), fresh.predict(X, verbose=0),
                               rtol=1e-6, atol=1e-7)
    model.fit(X, Y, epochs=1, verbose=0)  # and it still trains
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_two_threads_fitting_two_models_match_serial_fits():
    def train(_):
        model = classifier()
        model.set_weights(start)
        model._core.rng_state = rng
        model.fit(X, Y, epochs=2, batch_size=32, shuffle=False, verbose=0)
        return model.get_weights()

    base = classifier()
    start, rng = base.get_weights(), base._core.rng_state
    serial = train(0)
    results, errors = run_threads(2, train)
    assert not errors, errors
    for r in results:
        for a, b in zip(r, serial):
            np.testing.assert_array_equal(a, b)


def wide_mlp(seed):
    """A first kernel wide enough (300 x 128) that one row is split over the core's spinning
    threads (workers.c) rather than run on the calling thread."""
    pynn.utils.set_random_seed(seed)
    model = pynn.Sequential([pynn.Input(shape=(300,)), layers.Dense(128, activation="relu"),
                             layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def test_single_rows_from_four_threads_on_two_wide_models_match_batched_predict():
    # one thread at a time gets the spinning pool; the others run their rows themselves
    x = RNG.random((12, 300)).astype(np.float32)
    models = [wide_mlp(1), wide_mlp(2)]
    batched = [m.predict(x, verbose=0) for m in models]
    results, errors = run_threads(4, lambda i: [models[i % 2].predict(x[r:r + 1], verbose=0)
                                                for _ in range(50) for r in range(len(x))])
    assert not errors, errors
    for i in range(4):
        for k, row in enumerate(results[i]):
            np.testing.assert_allclose(row[0], batched[i % 2][k % len(x)], rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_single_row_predict_works_in_a_forked_child():
    # the child has none of the parent's helper threads: the pool must start afresh there
    model = wide_mlp(3)
    x = RNG.random((1, 300)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    pid = os.fork()
    if pid == 0:
        ok = False
        try:
            ok = all(np.allclose(model.predict(x, verbose=0), expected) for _ in range(100))
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    np.testing.assert_array_equal(model.predict(x, verbose=0), expected)


# -- determinism across processes ------------------------------------------------------------------
_CHILD = r"""
import json, sys
import numpy as np
import pynn
from pynn import layers
pynn.set_num_threads(int(sys.argv[1]))
pynn.utils.set_random_seed(1234)
rng = np.random.default_rng(0)
x = rng.random((300, 12)).astype(np.float32)
y = (x.sum(axis=1) > 6).astype(np.int64) + (x[:, 0] > 0.5)
model = pynn.Sequential([pynn.Input(shape=(12,)), layers.Dense(64, activation="relu"),
                         layers.Dropout(0.3), layers.Dense(32, activation="tanh"),
                         layers.Dropout(0.1), layers.Dense(3, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x, y, epochs=3, batch_size=32, shuffle=True, validation_split=0.1, verbose=0)
print(json.dumps([w.tobytes().hex() for w in model.get_weights()]))
"""


def _train_in_child(threads: int) -> list[str]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(pynn.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    # run from the folder that holds the imported pynn: a checkout in the working directory
    # must not shadow it (an installed pynn has its built extension, a bare checkout does not)
    out = subprocess.run([sys.executable, "-c", _CHILD, str(threads)], capture_output=True,
                         text=True, env=env, timeout=120, cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("threads", [1, 2])
def test_same_seed_and_threads_give_bitwise_identical_weights_in_two_processes(threads):
    first, second = _train_in_child(threads), _train_in_child(threads)
    assert first == second


@pytest.mark.parametrize("env, expected", [({}, "10000"), ({"GOMP_SPINCOUNT": "5"}, "5"),
                                           ({"OMP_WAIT_POLICY": "active"}, "None")])
def test_import_bounds_openmp_spinning_unless_the_user_chose(env, expected):
    # libgomp reads GOMP_SPINCOUNT when it loads, with pynn's extension
    root = os.path.dirname(os.path.dirname(os.path.abspath(pynn.__file__)))
    base = {k: v for k, v in os.environ.items()
            if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c",
                          "import os, pynn; print(os.environ.get('GOMP_SPINCOUNT'))"],
                         capture_output=True, text=True, timeout=120, cwd=root,
                         env={**base, **env, "PYTHONPATH": root})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == expected


def test_set_weights_is_atomic_for_a_predict_on_another_thread():
    # one thread alternates set_weights between two sets; every prediction made meanwhile must be
    # the prediction of one set or the other, never of a mix (971 of 1,200 were, before the lock)
    model = wide_mlp(3)
    x = RNG.random((64, 300)).astype(np.float32)
    sets = [model.get_weights(), [w * -0.5 + 0.01 for w in model.get_weights()]]
    expected = []
    for s in sets:
        model.set_weights(s)
        expected.append(model.predict(x, verbose=0))
    stop = threading.Event()

    def flip():
        i = 0
        while not stop.is_set():
            model.set_weights(sets[i % 2])
            i += 1

    writer = threading.Thread(target=flip)
    writer.start()
    try:
        predictions = [model.predict(x, verbose=0) for _ in range(400)]
    finally:
        stop.set()
        writer.join()
    mixed = sum(not any(np.array_equal(p, e) for e in expected) for p in predictions)
    assert mixed == 0, f"{mixed} of 400 predictions matched neither weight set"

