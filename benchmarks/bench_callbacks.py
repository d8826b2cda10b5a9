"""The per-batch cost of fit's Python side: an epoch of the MNIST MLP (784 -> Dense 128 relu ->
Dense 10 softmax, Adam) at batch 32, silent and without callbacks, against the same epoch with
the progress bar (verbose=1) and EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, CSVLogger and
TerminateOnNaN. The two alternate, epoch by epoch; the overhead is the difference of the medians,
as a share of the plain epoch. Writes benchmarks/results/callbacks.md.

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
    parser.add_argument("--rounds", type=int, default=7)
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

    epoch(False)  # warm-up: plans, caches
    epoch(True)
    plain, full = [], []
    for _ in range(args.rounds):
        plain.append(epoch(False))
        full.append(epoch(True))
    p, f = statistics.median(plain), statistics.median(full)
    steps = -(-len(x) // 32)
    rows = [{"measure": "epoch, batch 32 (s)", "plain": p, "with callbacks + bar": f,
             "overhead": f"{100 * (f - p) / p:.1f}%"},
            {"measure": "per step (us)", "plain": p / steps * 1e6,
             "with callbacks + bar": f / steps * 1e6,
             "overhead": f"{(f - p) / steps * 1e6:.2f} us"}]
    meta = {"threads": args.threads, "samples per epoch": len(x), "data": source,
            "rounds": args.rounds, "pynn": pynn.__version__, **harness.machine(),
            "note": "one process, the two kinds of epoch alternating; the bar prints to "
                    "/dev/null; ModelCheckpoint saves a .keras file each epoch"}
    print(harness.write_report(rows, "fit's Python overhead: callbacks and progress bar",
                               Path(args.out), meta))


if __name__ == "__main__":
    main()
