"""The benchmark harness: timing with warm-up and repeats, and a side-by-side report."""

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path


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
    ap.add_argument("--worker", choices=["pynn", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(Path(script).resolve().parent / "results" / out))
    args = ap.parse_args()
    if args.worker:
        if args.worker == "torch":
            # before pynn, whose import sets GOMP_SPINCOUNT for the libgomp it loads: PyTorch
            # loads its own first and runs with OpenMP's defaults, as its users have it
            import torch  # noqa: F401
        print(json.dumps(worker(args.worker, args)))
        return None
    runs = alternate(script, ("pynn", "torch"), [
        "--threads", args.threads, "--samples", args.samples, "--repeats", args.repeats],
        args.rounds)
    import numpy as np
    np.testing.assert_allclose(runs["pynn"][0][check], runs["torch"][0][check], rtol=rtol,
                               atol=atol)
    p, t = ({k: median_of(runs[lib], k) for k in keys} for lib in ("pynn", "torch"))
    return args, p, t, runs


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
            "repeats": args.repeats, "rounds": args.rounds, "torch": torch.__version__,
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


def machine() -> dict:
    cpu, vector = cpu_model()
    return {
        "cpu": cpu,
        "vector extensions": vector,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


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
