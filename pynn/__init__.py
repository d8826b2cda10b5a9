"""pynn: a fast deep-learning library for the CPU, with a C engine behind the Keras 3 interface.

    import pynn as keras
    model = keras.Sequential([keras.Input(shape=(784,)),
                              keras.layers.Dense(128, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=5)
"""

import os as _os

import scipy_openblas32 as _openblas  # noqa: F401  loads OpenBLAS (RTLD_GLOBAL) for _core

# libgomp's threads wait in each barrier and between parallel regions by spinning 300,000 times
# (about 8 ms here) before they sleep. A thread that waits so long takes CPU time from the ones
# still working: beside one other busy process, a GPT training step ran 3x slower; alone, the GPT
# benchmark ran 18% slower at batch 32. 10,000 spins (about 0.3 ms) still cover the microseconds
# between a step's parallel loops. libgomp reads this when it loads (with _core, below); a
# setting of the user's wins.
if "GOMP_SPINCOUNT" not in _os.environ and "OMP_WAIT_POLICY" not in _os.environ:
    _os.environ["GOMP_SPINCOUNT"] = "10000"

from . import _core  # noqa: E402

__version__ = "0.1.0"


def set_num_threads(n: int) -> None:
    """Sets the threads pynn uses: the core's OpenMP loops and its GEMMs (each thread runs
    single-threaded OpenBLAS on its share), together. Capped by OMP_THREAD_LIMIT; a child process
    made by fork() stays single-threaded (OpenMP's threads do not survive fork: use the "spawn"
    start method for workers that need several).

    Args:
        n: number of threads, >= 1.

    Example:
        >>> pynn.set_num_threads(2)
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    if n > 1 and _core.forked_child():
        import warnings

        warnings.warn("set_num_threads: this process is a child of fork(), where OpenMP cannot "
                      "start threads; pynn stays single-threaded here (start workers with the "
                      "'spawn' method to use several)", RuntimeWarning, stacklevel=2)
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """Returns the number of threads pynn uses: by default OMP_NUM_THREADS, else the CPUs this
    process may run on, capped by OMP_THREAD_LIMIT, as PyTorch reads them."""
    return _core.get_num_threads()


_core.set_num_threads(_core.default_num_threads())

from . import (  # noqa: E402
    activations,
    callbacks,
    constraints,
    datasets,
    initializers,
    layers,
    losses,
    metrics,
    mixed_precision,
    models,
    ops,  # noqa: E402
    optimizers,
    random,
    regularizers,
    saving,
    utils,
)
from .layers import Input  # noqa: E402
from .layers.base import Variable  # noqa: E402
from .models import Model, Sequential  # noqa: E402
from .tensor import GradientTape, Tensor, no_grad  # noqa: E402

__all__ = [
    "GradientTape",
    "Input",
    "Model",
    "Sequential",
    "Tensor",
    "Variable",
    "activations",
    "callbacks",
    "constraints",
    "datasets",
    "get_num_threads",
    "initializers",
    "layers",
    "losses",
    "metrics",
    "mixed_precision",
    "models",
    "no_grad",
    "ops",
    "optimizers",
    "random",
    "regularizers",
    "saving",
    "set_num_threads",
    "utils",
]
