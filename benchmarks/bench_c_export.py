"""Single-sample latency of the MNIST MLP (784 -> Dense 128 relu -> Dense 10 softmax) exported
with pynn.export.to_c and compiled with the system C compiler, beside pynn's predict_on_batch and
PyTorch's forward (inference_mode) on one sample, the same weights, on --threads threads (the C
code is single-threaded). The C figure is timed inside the compiled program (clock_gettime over
--calls back-to-back calls, best of --repeats); the Python figures likewise with perf_counter.
Checks first that the three give the same probabilities (1e-5).

    python benchmarks/bench_c_export.py --threads 1

Prints a table and writes benchmarks/results/c_export.md (--out).
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

BENCH_C = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "mlp.h"

/* bench in.bin calls repeats: prints the output, then the best seconds per call */
int main(int argc, char **argv) {
    static float in[MLP_INPUT_SIZE], out[MLP_OUTPUT_SIZE], ws[MLP_WORKSPACE_FLOATS];
    FILE *f = fopen(argv[1], "rb");
    if (argc != 4 || !f || fread(in, sizeof(float), MLP_INPUT_SIZE, f) != MLP_INPUT_SIZE) return 2;
    fclose(f);
    long calls = atol(argv[2]);
    int repeats = atoi(argv[3]);
    double best = 1e30;
    mlp_predict(in, out, ws);
    for (int r = 0; r < repeats; r++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (long i = 0; i < calls; i++) {
            mlp_predict(in, out, ws);
            __asm__ volatile("" : : "r"(out) : "memory");  /* keep every call */
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
        if (s / calls < best) best = s / calls;
    }
    for (int i = 0; i < MLP_OUTPUT_SIZE; i++) printf("%.9g ", out[i]);
    printf("\n%.9g\n", best);
    return 0;
}
"""


def c_latency(model, x1: np.ndarray, flags: list, calls: int, repeats: int, cc: str):
    from pynn.export import to_c

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        to_c(model, str(d / "mlp.c"), name="mlp")
        (d / "bench.c").write_text(BENCH_C)
        (d / "in.bin").write_bytes(np.ascontiguousarray(x1, np.float32).tobytes())
        subprocess.run([cc, *flags, "-std=c99", "-Wall", "-o", str(d / "bench"),
                        str(d / "bench.c"), str(d / "mlp.c"), "-lm"], check=True)
        r = subprocess.run([str(d / "bench"), str(d / "in.bin"), str(calls), str(repeats)],
                           check=True, capture_output=True, text=True)
    probs, secs = r.stdout.strip().split("\n")
    return np.array(probs.split(), dtype=np.float32), float(secs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "c_export.md"))
    args = p.parse_args()

    import torch

    import pynn
    from pynn import layers

    cc = shutil.which("cc")
    if cc is None:
        sys.exit("no C compiler (cc) found")
    pynn.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    pynn.utils.set_random_seed(0)
    model = pynn.Sequential([pynn.Input(shape=(784,)), layers.Dense(128, activation="relu"),
                             layers.Dense(10, activation="softmax")])
    x1 = np.random.default_rng(0).uniform(size=(1, 784)).astype(np.float32)

    net = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(),
                              torch.nn.Linear(128, 10))
    with torch.no_grad():
        for lin, layer in zip((net[0], net[2]), model.layers):
            lin.weight.copy_(torch.from_numpy(np.asarray(layer.kernel).T))
            lin.bias.copy_(torch.from_numpy(np.asarray(layer.bias)))
    x1t = torch.from_numpy(x1)

    def torch_predict():
        with torch.inference_mode():
            return net(x1t).softmax(-1).numpy()

    def pynn_predict():
        return model.predict_on_batch(x1)

    expected = pynn_predict()[0]
    rows = []
    builds = (("C, cc -O2", ["-O2"]), ("C, cc -O3 -march=native", ["-O3", "-march=native"]))
    for label, flags in builds:
        probs, secs = c_latency(model, x1, flags, args.calls, args.repeats, cc)
        np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)
        rows.append((label, secs))
    np.testing.assert_allclose(torch_predict()[0], expected, rtol=1e-5, atol=1e-6)
    rows.append(("pynn predict_on_batch", harness.per_call(pynn_predict, args.calls)["min"]))
    rows.append(("PyTorch forward (inference_mode)",
                 harness.per_call(torch_predict, args.calls)["min"]))

    cpu, ext = harness.cpu_model()
    ccv = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    lines = ["# MNIST MLP, single-sample latency: exported C vs pynn vs PyTorch", "",
             f"CPU: {cpu} ({ext}); compiler: {ccv}; threads (pynn, torch): {args.threads}; "
             f"pynn {pynn.__version__}, torch {torch.__version__}. Best of {args.repeats} runs of "
             f"{args.calls} back-to-back calls; all outputs equal within 1e-5.", "",
             "| implementation | latency (us/sample) |", "|---|---|"]
    lines += [f"| {label} | {secs * 1e6:.2f} |" for label, secs in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
