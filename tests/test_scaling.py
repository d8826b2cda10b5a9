"""Deep models: building, saving and loading take time linear in the layer count (issue 15).

Each test times every phase of a model of N layers and of one of 4N: linear work takes about 4
times as long (up to 5 here, as 4N layers outgrow the CPU's caches), quadratic work 16 times.
N is small for a quick test, so a quadratic term has not yet outgrown the linear work beside
it: the original code took 8 to 11 times as long in Sequential(...), Model(inputs, outputs)
and a functional model's save. The bound of 7 lies between. Against a noisy machine, phases
are timed in CPU time, each keeps its best of a few runs, the runs of the two sizes alternate,
and the garbage collector is paused while they run (its passes cost more per object as a large
heap stops fitting in cache, which is not what is tested).
"""

import gc
import sys
import time

import pynn as keras
from pynn import layers

N = 750
BOUND = 7


def _ratios(phases, tmp_path) -> dict:
    """{phase: best time with 4N layers / best time with N layers}; `phases(n, path)` builds,
    saves and loads a model of n layers, returning {phase: seconds}."""
    best: dict = {N: {}, 4 * N: {}}
    gc.collect()
    gc.disable()
    try:
        for n in (N, 4 * N, N, 4 * N, N):
            for phase, seconds in phases(n, tmp_path / f"deep{n}.keras").items():
                best[n][phase] = min(seconds, best[n].get(phase, float("inf")))
    finally:
        gc.enable()
    return {phase: best[4 * N][phase] / best[N][phase] for phase in best[N]}


def _timed(phases: dict) -> dict:
    """{phase: CPU seconds} of running each of `phases` ({phase: function}) in order. The
    thread's CPU time, not the wall clock: other processes on a busy machine take the CPU away
    for milliseconds at a time, as long as a small phase lasts."""
    out = {}
    for phase, run in phases.items():
        start = time.thread_time()
        run()
        out[phase] = time.thread_time() - start
    return out


def _sequential_phases(n, path) -> dict:
    stack = [keras.Input((4,))] + [layers.Dense(4) for _ in range(n)]
    made = {}
    return _timed({
        "Sequential(...)": lambda: made.setdefault("model", keras.Sequential(stack)),
        "save": lambda: made["model"].save(path),
        "load_model": lambda: keras.saving.load_model(path),
    })


def _chain_phases(n, path) -> dict:
    inp = keras.Input((4,))
    x = inp
    for _ in range(n):
        x = layers.Dense(4)(x)
    made = {}
    return _timed({
        "Model(inputs, outputs)": lambda: made.setdefault("model", keras.Model(inp, x)),
        "save": lambda: made["model"].save(path),
        "load_model": lambda: keras.saving.load_model(path),
    })


def _assert_linear(ratios: dict) -> None:
    rounded = {phase: round(r, 1) for phase, r in ratios.items()}
    assert max(ratios.values()) < BOUND, (f"with 4x the layers, each phase took this many "
                                          f"times as long (linear ~4, quadratic ~16): {rounded}")


def test_deep_sequential_builds_saves_and_loads_in_linear_time(tmp_path):
    _assert_linear(_ratios(_sequential_phases, tmp_path))


def test_deep_functional_chain_builds_saves_and_loads_in_linear_time(tmp_path):
    _assert_linear(_ratios(_chain_phases, tmp_path))


def test_functional_chain_deeper_than_the_recursion_limit_builds_in_order():
    dense = [layers.Dense(4) for _ in range(sys.getrecursionlimit() + 100)]
    inp = keras.Input((4,))
    x = inp
    for layer in dense:
        x = layer(x)
    model = keras.Model(inp, x)
    assert all(a is b for a, b in zip(model.layers[1:], dense, strict=True))
    assert model.output_shape == (None, 4)
