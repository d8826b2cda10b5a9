"""The per-batch cost of fit's Python side: an epoch of the MNIST MLP (784 -> Dense 128 relu ->
Dense 10 softmax, Adam) at batch 32, silent and without callbacks, against the same epoch with
the progress bar (verbose=1) and EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, CSVLogger and
TerminateOnNaN. On a shared machine whole epochs vary by more than that overhead, so it is measured
twice: (1) the Python side alone, with the core's training step answered instantly (a stand-in
that returns a real step's results), fastest of several epochs with and without, as a share of
the real plain epoch; (2) real epochs of both kinds alternating, fastest and median. Writes
benchmarks/results/callbacks.md.

    PYNN_DATASETS=../shared/data python benchmarks/bench_callbacks.py --threads 2
"""

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from bench_mlp import build_pynn, load_data  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--samples", type=int, default=60000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "callbacks.md"))
    args = parser.parse_args()

    import pynn

    pynn.set_num_threads(args.threads)
    x, y, source = load_data(args.samples)
    model = build_pynn(seed=1)
    folder = tempfile.mkdtemp()

    def callbacks():
        return [pynn.callbacks.EarlyStopping(monitor="loss", patience=3),
                pynn.callbacks.ModelCheckpoint(os.path.join(folder, "m.keras"), monitor="loss"),
                pynn.callbacks.ReduceLROnPlateau(monitor="loss", patience=2),
                pynn.callbacks.CSVLogger(os.path.join(folder, "log.csv")),
                pynn.callbacks.TerminateOnNaN()]

    def epoch(full: bool) -> float:
        t0 = time.perf_counter()
        if full:
            with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), \
                    contextlib.redirect_stderr(sink):
                model.fit(x, y, batch_size=32, epochs=1, verbose=1, callbacks=callbacks())
        else:
            model.fit(x, y, batch_size=32, epochs=1, verbose=0)
        return time.perf_counter() - t0

    class InstantCore:
        """The model's core, with train_step answered from one real step's results."""

        def __init__(self, core):
            self.core, self.result = core, core.train_step(x[:32], y[:32])

        def train_step(self, *args):
            return self.result.copy()

        def __getattr__(self, name):
            return getattr(self.core, name)

    real = model._core
    model._core = InstantCore(real)
    python_only = {False: [], True: []}
    for _ in range(args.rounds):
        for full in (False, True):
            python_only[full].append(epoch(full))
    model._core = real

    epoch(False)  # warm-up: plans, caches
    epoch(True)
    plain, full = [], []
    for _ in range(args.rounds):
        plain.append(epoch(False))
        full.append(epoch(True))
    steps = -(-len(x) // 32)
    py_plain, py_full = min(python_only[False]), min(python_only[True])
    extra = (py_full - py_plain) / steps
    real_step = statistics.median(plain) / steps
    rows = [{"measure": "Python side per step, core step answered from a cached result (us)",
             "plain": py_plain / steps * 1e6, "with callbacks + bar": py_full / steps * 1e6,
             "overhead": f"{extra * 1e6:.1f} us per step = {100 * extra / real_step:.1f}% of "
                         f"a real step ({real_step * 1e6:.0f} us)"}]
    for label, pick in (("fastest epoch", min), ("median epoch", statistics.median)):
        p, f = pick(plain), pick(full)
        rows.append({"measure": f"{label}, batch 32 (s)", "plain": p, "with callbacks + bar": f,
                     "overhead": f"{100 * (f - p) / p:.1f}% ({(f - p) / steps * 1e6:.1f} us "
                                 "per step)"})
    meta = {"threads": args.threads, "samples per epoch": len(x), "data": source,
            "rounds": args.rounds, "pynn": pynn.__version__, **harness.machine(),
            "note": "one process, the two kinds of epoch alternating; the bar prints to "
                    "/dev/null; ModelCheckpoint saves a .keras file each epoch"}
    print(harness.write_report(rows, "fit's Python overhead: callbacks and progress bar",
                               Path(args.out), meta))


if __name__ == "__main__":
    main()
