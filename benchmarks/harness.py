"""The benchmark harness: timing with warm-up and repeats, and a side-by-side report."""

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def best_of(fn, repeats: int = 5, warmup: int = 1) -> dict:
    """Runs fn() warmup + repeats times; returns min/median/max seconds of the timed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"min": min(times), "median": statistics.median(times), "max": max(times)}


def per_call(fn, calls: int, repeats: int = 7) -> dict:
    """Seconds per call of fn(), measured over `calls` back-to-back calls, `repeats` times."""
    def run():
        for _ in range(calls):
            fn()
    t = best_of(run, repeats=repeats, warmup=1)
    return {k: v / calls for k, v in t.items()}


def compare(script: str, doc: str, samples: int, repeats: int, out: str, worker, keys: tuple,
            check: str, rtol: float, atol: float):
    """A benchmark's command line and run: `--worker LIB` runs `worker(lib, args)` and prints its
    JSON; otherwise the libraries alternate (see `alternate`), `check` (outputs of the same
    weights) must agree between them, and each of `keys` is the median over the rounds.

    Returns:
        (args, pynn medians, torch medians, the runs), or None in a worker process.
    """
    import argparse

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=samples, help="samples per timed epoch")
    ap.add_argument("--repeats", type=int, default=repeats, help="timed epochs in each round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--busy", type=int, default=0,
                    help="busy processes running beside the benchmark (contention); the "
                    "report goes to NAME_busy.md")
    ap.add_argument("--precision", choices=["float32", "mixed_bfloat16"], default="float32",
                    help="mixed_bfloat16: pynn under Keras's mixed_bfloat16 policy against "
                    "PyTorch under torch.autocast('cpu', bfloat16), and pynn in float32 beside "
                    "them; the report goes to NAME_bf16.md")
    ap.add_argument("--worker", choices=["pynn", "torch", "pynn32"], help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.out is None:
        name = out if not args.busy else out.replace(".md", "_busy.md")
        name = name if args.precision == "float32" else name.replace(".md", "_bf16.md")
        args.out = str(Path(script).resolve().parent / "results" / name)
    if args.worker:
        if args.worker == "torch":
            # before pynn, whose import sets GOMP_SPINCOUNT for the libgomp it loads: PyTorch
            # loads its own first and runs with OpenMP's defaults, as its users have it
            import torch  # noqa: F401
        lib = args.worker
        if lib == "pynn32":  # the float32 baseline of a mixed-precision run
            lib, args.precision = "pynn", "float32"
        if lib == "pynn":
            import pynn
            pynn.mixed_precision.set_global_policy(args.precision)
        out = worker(lib, args)
        out["sgemm"] = sgemm_gflops(lib)  # at the threads the worker set
        print(json.dumps(out))
        return None
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
             for _ in range(args.busy)]
    libs = ("pynn", "torch") if args.precision == "float32" else ("pynn", "torch", "pynn32")
    try:
        runs = alternate(script, libs, [
            "--threads", args.threads, "--samples", args.samples, "--repeats", args.repeats,
            "--precision", args.precision], args.rounds)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    import numpy as np
    if args.precision != "float32":  # both libraries round to bfloat16: about 2^-8 relative
        rtol, atol = max(rtol, 3e-2), max(atol, 3e-2)
    np.testing.assert_allclose(runs["pynn"][0][check], runs["torch"][0][check], rtol=rtol,
                               atol=atol)
    p, t = ({k: median_of(runs[lib], k) for k in keys + ("sgemm",)} for lib in ("pynn", "torch"))
    if "pynn32" in runs:
        args.float32 = {k: median_of(runs["pynn32"], k) for k in keys + ("sgemm",)}
    return args, p, t, runs


def autocast(args):
    """The context a PyTorch worker runs its forward passes and losses in: torch.autocast
    to bfloat16 on the CPU for a mixed_bfloat16 run, nothing for float32."""
    import contextlib

    import torch
    if args.precision == "mixed_bfloat16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def precision_rows(args, p: dict, rows: list, keys: list) -> list[dict]:
    """In a mixed_bfloat16 run: labels each row's library columns as bfloat16, and adds for
    each (label, key) pynn's float32 figure of the same run and pynn's bfloat16/float32 ratio."""
    if args.precision == "float32":
        return rows
    for r in rows:
        r["measure"] += " (pynn mixed_bfloat16, PyTorch autocast bfloat16)"
    for label, key in keys:
        f32 = args.float32[key]
        rows.append({"measure": f"{label}: pynn float32, and pynn mixed_bfloat16 / float32",
                     "pynn": f32, "pytorch": float("nan"), "ratio (pynn/pytorch)": p[key] / f32})
    return rows


def ceiling_rows(p: dict, t: dict, items: list, precision: str = "float32") -> list[dict]:
    """Rows for the SGEMM ceiling each library reached in the run (n = 2048, its own GEMM, the
    run's threads) and, for each (label, key, FLOPs per unit of the key's rate), the share of
    that ceiling the benchmark's matrix work ran at (matrix_flops). In a mixed_bfloat16 run the
    work is bfloat16's, which can pass the float32 ceiling."""
    work = "matrix work" if precision == "float32" else "bfloat16 matrix work"
    rows = [{"measure": "SGEMM ceiling, n = 2048 (GFLOP/s)", "pynn": p["sgemm"],
             "pytorch": t["sgemm"], "ratio (pynn/pytorch)": p["sgemm"] / t["sgemm"]}]
    for label, key, flops in items:
        share = [100.0 * r[key] * flops / 1e9 / r["sgemm"] for r in (p, t)]
        rows.append({"measure": f"{label}: {work}, % of the ceiling", "pynn": share[0],
                     "pytorch": share[1], "ratio (pynn/pytorch)": share[0] / share[1]})
    return rows


def alternate(script: str, libs: tuple, args: list, rounds: int) -> dict:
    """Runs `script --worker LIB *args` in a fresh process for each library in turn, `rounds`
    times (a, b, a, b, ...): each library runs alone, with its own threads, and a busy moment of
    a shared machine falls on both. Each worker prints a JSON dict as its last line.

    Returns:
        {lib: [one dict per round]}.
    """
    runs: dict = {lib: [] for lib in libs}
    for r in range(rounds):
        for lib in libs:
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, script, "--worker", lib, *map(str, args)],
                                 capture_output=True, text=True, check=True).stdout
            runs[lib].append(json.loads(out.strip().splitlines()[-1]))
            print(f"round {r + 1}: {lib} done in {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr)
    return runs


def median_of(runs: list, key: str) -> float:
    return float(statistics.median(run[key] for run in runs))


def run_meta(args, data: str, note: str) -> dict:
    """What a report records about its run: settings, versions, the machine, how to read it."""
    import torch

    import pynn
    return {"threads": args.threads, "samples per epoch": args.samples, "data": data,
            "precision": getattr(args, "precision", "float32"),
            "repeats": args.repeats, "rounds": args.rounds,
            "busy processes beside the run": getattr(args, "busy", 0), "torch": torch.__version__,
            "pynn": pynn.__version__, **machine(),
            "note": note + "; each library runs in its own process, alternating over the rounds"}


def cpu_model() -> tuple[str, str]:
    """The CPU's model name and its vector extensions (AVX2, AVX-512, AMX...), from
    /proc/cpuinfo where there is one: figures from one CPU family do not hold on another."""
    name, flags, ids = platform.processor() or platform.machine(), set(), {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and name in ("", platform.machine()):
                    name = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
                elif key.strip() in ("cpu family", "model") and key.strip() not in ids:
                    ids[key.strip()] = value.strip()
    except OSError:
        pass
    if ids:  # "AMD EPYC" alone does not tell Zen 3 (family 25, model 1) from Zen 4 (17)
        name += f" (family {ids.get('cpu family', '?')}, model {ids.get('model', '?')})"
    wanted = ["avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16"]
    return name, " ".join(f for f in wanted if f in flags) or "unknown"


def openblas() -> dict:
    """The OpenBLAS pynn multiplies with (scipy-openblas32): its build, and the kernel set
    ("core") it chose for this CPU at load time."""
    try:
        import ctypes

        import scipy_openblas32 as ob
        corename = ob.dll.scipy_openblas_get_corename
        corename.restype = ctypes.c_char_p
        return {"openblas": ob.get_openblas_config(), "openblas core": corename().decode()}
    except (ImportError, AttributeError, OSError) as e:
        return {"openblas": f"unknown ({e})", "openblas core": "unknown"}


def machine() -> dict:
    import numpy as np

    from pynn import _core
    cpu, vector = cpu_model()
    return {
        "cpu": cpu,
        "vector extensions": vector,
        # what pynn's kernels found (CPUID) and chose by: fma512 (full-rate 512-bit FMAs) takes
        # the AVX-512 float32 tile, avx512_bf16 the mixed-precision one
        "pynn kernels see": " ".join(_core.cpu_features()) or "none",
        "cores": os.cpu_count(),
        **openblas(),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def sgemm_gflops(lib: str, n: int = 2048, repeats: int = 5) -> float:
    """The SGEMM ceiling in this process: GFLOP/s of one n x n float32 matrix product through
    the library's own path (pynn's core GEMM, or torch.mm), at the threads already set."""
    rng = np.random.default_rng(0)
    a, b = (rng.random((n, n), dtype=np.float32) for _ in range(2))
    if lib == "pynn":
        import pynn
        ta, tb = pynn.Tensor(a), pynn.Tensor(b)

        def mm():
            pynn.ops.matmul(ta, tb)
    else:
        import torch
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)

        def mm():
            torch.mm(ta, tb)
    return 2.0 * n ** 3 / best_of(mm, repeats=repeats, warmup=2)["min"] / 1e9


def matrix_flops(model, training: bool) -> float:
    """Floating-point operations per sample of a pynn model's matrix work: its dense layers,
    convolutions (transposed ones too), attention (projections and both products) and
    recurrent layers (input and recurrent products); nothing else. A training step counts each
    product three times (forward, the weights' gradient, the input's gradient), twice where the
    layer reads a model input, which needs no gradient."""
    from pynn import layers as L

    total = 0.0
    inputs = {id(t) for t in model.inputs}
    for layer in model.layers:
        try:
            x, y = layer.input, layer.output
        except (AttributeError, ValueError):
            continue
        xs = x if isinstance(x, (list, tuple)) else [x]
        ys = y if isinstance(y, (list, tuple)) else [y]
        xshape, yshape = tuple(xs[0].shape[1:]), tuple(ys[0].shape[1:])
        rows = float(np.prod(xshape[:-1])) if len(xshape) > 1 else 1.0
        if isinstance(layer, L.Dense):
            f = 2 * rows * xshape[-1] * layer.units
        elif isinstance(layer, (L.Conv1D, L.Conv2D)):
            taps = float(np.prod(layer.kernel_size))
            f = 2 * float(np.prod(yshape[:-1])) * taps * xshape[-1] * layer.filters
        elif isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose)):  # per input pixel
            taps = float(np.prod(layer.kernel_size))
            f = 2 * float(np.prod(xshape[:-1])) * taps * xshape[-1] * layer.filters
        elif isinstance(layer, L.MultiHeadAttention):
            tq, tk = xshape[0], tuple(xs[-1].shape[1:])[0]
            h, dk = layer.num_heads, layer.key_dim
            dv = layer.value_dim or dk
            f = 2 * (tq * xshape[-1] * h * dk + tk * xshape[-1] * h * (dk + dv)
                     + tq * h * dv * yshape[-1] + h * tq * tk * (dk + dv))
        elif isinstance(layer, (L.LSTM, L.GRU, L.SimpleRNN)):
            gates = 4 if isinstance(layer, L.LSTM) else 3 if isinstance(layer, L.GRU) else 1
            f = 2 * xshape[0] * (xshape[-1] + layer.units) * gates * layer.units
        else:
            continue
        if training:
            f *= 2 if all(id(t) in inputs for t in xs) else 3
        total += f
    return total


def write_report(rows: list[dict], title: str, path: Path, meta: dict) -> str:
    """Writes a markdown table (and the same data as JSON beside it); returns the markdown."""
    cols = list(rows[0].keys())
    lines = [f"# {title}", "", "| " + " | ".join(cols) + " |",
             "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r[c]) for c in cols) + " |")
    lines += ["", "```", json.dumps(meta, indent=1), "```", ""]
    text = "\n".join(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    return text


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
    return str(v)
