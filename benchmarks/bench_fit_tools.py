"""What the training tools cost: an epoch of the MNIST MLP (784 -> Dense 128 relu -> Dense 10
softmax, Adam) with a bare fit (no metrics, no callbacks, silent) against the same epoch with
TensorBoard (scalars every epoch), BackupAndRestore (a backup every epoch) and five metrics
(sparse categorical accuracy, top-3 accuracy, crossentropy, mean IoU and a user metric
function; the last two updated outside the core, in Python, from the step's outputs). The two
kinds of epoch alternate in one process, and their per-epoch times are compared as fastest and
median. Writes benchmarks/results/fit_tools.md.

    PYNN_DATASETS=../shared/data python benchmarks/bench_fit_tools.py --threads 2
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from bench_mlp import load_data  # noqa: E402


def build(seed: int, metrics: list):
    import pynn
    from pynn import layers

    pynn.utils.set_random_seed(seed)
    model = pynn.Sequential([pynn.Input(shape=(784,)), layers.Dense(128, activation="relu"),
                             layers.Dense(10, activation="softmax")])
    model.compile(optimizer=pynn.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=metrics)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--samples", type=int, default=60000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "fit_tools.md"))
    args = parser.parse_args()

    import pynn

    pynn.set_num_threads(args.threads)
    x, y, source = load_data(args.samples)
    def confidence(y_true, y_pred):  # a user metric: the predicted class's probability
        return pynn.ops.max(y_pred, axis=-1)

    metrics = ["accuracy", pynn.metrics.SparseTopKCategoricalAccuracy(k=3),
               pynn.metrics.SparseCategoricalCrossentropy(),
               pynn.metrics.MeanIoU(num_classes=10, sparse_y_pred=False), confidence]
    bare, full = build(1, []), build(1, metrics)
    folder = tempfile.mkdtemp()

    def epoch(model, tools: bool) -> float:
        callbacks = [pynn.callbacks.TensorBoard(os.path.join(folder, "logs")),
                     pynn.callbacks.BackupAndRestore(os.path.join(folder, "backup"))
                     ] if tools else []
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0, callbacks=callbacks)
        return time.perf_counter() - t0

    epoch(bare, False)  # warm-up: plans, caches, the event file
    epoch(full, True)
    plain, tools = [], []
    for _ in range(args.rounds):
        plain.append(epoch(bare, False))
        tools.append(epoch(full, True))
    steps = -(-len(x) // args.batch)
    rows = []
    for label, pick in (("fastest epoch", min), ("median epoch", statistics.median)):
        p, f = pick(plain), pick(tools)
        rows.append({"measure": f"{label}, batch {args.batch} (s)", "bare fit": p,
                     "TensorBoard + BackupAndRestore + 5 metrics": f,
                     "overhead": f"{100 * (f - p) / p:.1f}% ({(f - p) / steps * 1e6:.1f} us "
                                 "per step)"})
    meta = {"threads": args.threads, "samples per epoch": len(x), "batch": args.batch,
            "data": source, "rounds": args.rounds, "pynn": pynn.__version__,
            "metrics": [m if isinstance(m, str) else (m.name if hasattr(m, "name") else m.__name__)
                        for m in metrics],
            **harness.machine(),
            "note": "one process, the two kinds of epoch alternating; each tools epoch is a "
                    "fit with a new TensorBoard (an event file) and a BackupAndRestore (a "
                    "backup written at the epoch's end)"}
    print(harness.write_report(rows, "fit with TensorBoard, BackupAndRestore and five metrics "
                               "against a bare fit", Path(args.out), meta))


if __name__ == "__main__":
    main()
