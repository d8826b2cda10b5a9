"""OpenMP's environment: pynn is right under any thread limit and reads its thread count as PyTorch
does. Before, with OMP_THREAD_LIMIT=1 a Dense(100) layer on 256 x 784 inputs returned only the
bias in columns 64-99 (the product was split for two threads and only one ran) and MNIST reached
0.43 accuracy instead of 0.89. The C test test_threads.c runs every kind of parallel region with
fewer threads than asked; here each environment runs in a fresh process.
"""

import json
import os
import subprocess
import sys

import pytest

import pynn

_CHILD = r"""
import json, os
import numpy as np
import pynn
from pynn import layers

threads = pynn.get_num_threads()
pynn.set_num_threads(2)  # what a script may ask for whatever the environment says
x = np.random.default_rng(0).standard_normal((256, 784)).astype("float32")
dense = pynn.Sequential([pynn.Input((784,)), layers.Dense(100)])
w, b = dense.get_weights()
err = float(np.abs(dense.predict(x, verbose=0) - (x @ w + b)).max())

(xt, yt), (xs, ys) = pynn.datasets.mnist.load_data()
xt = xt[:6000].reshape(-1, 784).astype("float32") / 255
xs = xs[:2000].reshape(-1, 784).astype("float32") / 255
pynn.utils.set_random_seed(0)
mlp = pynn.Sequential([pynn.Input((784,)), layers.Dense(100, activation="relu"),
                       layers.Dense(10, activation="softmax")])
mlp.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
mlp.fit(xt, yt[:6000], batch_size=256, epochs=3, verbose=0)
acc = mlp.evaluate(xs, ys[:2000], verbose=0)[1]
print(json.dumps({"threads": threads, "after_set": pynn.get_num_threads(), "err": err,
                  "acc": acc}))
"""

CASES = {  # environment: (threads at import, threads after set_num_threads(2))
    "OMP_THREAD_LIMIT=1": ({"OMP_THREAD_LIMIT": "1"}, 1, 1),
    "OMP_DYNAMIC=true": ({"OMP_DYNAMIC": "true"}, None, 2),
    "OMP_NUM_THREADS=1": ({"OMP_NUM_THREADS": "1"}, 1, 2),
    "OMP_NUM_THREADS=3": ({"OMP_NUM_THREADS": "3"}, 3, 2),
    "OMP_NUM_THREADS=3,1": ({"OMP_NUM_THREADS": "3,1"}, 3, 2),
}


@pytest.mark.parametrize("name", list(CASES))
def test_results_and_thread_count_under_openmp_environment(name):
    env_extra, at_import, after_set = CASES[name]
    root = os.path.dirname(os.path.dirname(os.path.abspath(pynn.__file__)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")}
    env.update(env_extra, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, env=env,
                         timeout=300, cwd=root)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    if at_import is None:  # no OMP_NUM_THREADS: the CPUs this process may run on
        at_import = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    assert at_import is None or r["threads"] == at_import
    assert r["after_set"] == after_set
    assert r["err"] < 1e-3, f"Dense(100) differs from x @ W + b by {r['err']}"
    assert r["acc"] > 0.85, f"MNIST accuracy {r['acc']:.3f} after 3 epochs on 6,000 samples"
