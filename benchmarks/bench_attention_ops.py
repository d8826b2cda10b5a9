"""The Transformer kernels alone, forward + backward, against PyTorch's: LayerNorm over (B, T, D)
and causal multi-head attention over (B, T, H * kd) (the projections excluded), at the char-GPT's
sizes (B=32, T=64, D=128, H=4 by default). Fastest of --reps timed calls after warm-up, on
--threads threads each.

pynn runs each op as the only node of a model whose inputs are the op's inputs, through
`gradients(x, y, input_grad=True)` (forward, an MSE loss, backward, the inputs' gradients copied
out), and its forward alone through `predict`. torch runs nanoGPT's code on tensors that require
gradients: F.layer_norm, and view/transpose + F.scaled_dot_product_attention(is_causal=True) +
transpose back, then an MSE loss and backward.

    python benchmarks/bench_attention_ops.py --threads 2

Writes benchmarks/results/attention_ops.md (--out).
"""

import argparse
import platform
import time
from pathlib import Path

import numpy as np


def fastest(fn, reps: int, warm: int = 5) -> float:
    for _ in range(warm):
        fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--reps", type=int, default=50)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "attention_ops.md"))
    args = p.parse_args()

    import torch
    import torch.nn.functional as F

    import pynn

    pynn.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    B, T, D, H = args.batch, args.steps, args.dim, args.heads
    kd = D // H
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, T, D)).astype(np.float32)
    qkv = [rng.normal(size=(B, T, D)).astype(np.float32) for _ in range(3)]
    y = rng.normal(size=(B, T, D)).astype(np.float32)

    # -- pynn: one op per model ----------------------------------------------------------------
    ln_model = pynn.Sequential([pynn.Input((T, D)), pynn.layers.LayerNormalization(epsilon=1e-5)])
    ln_model.compile("sgd", "mse")
    core = ln_model._core
    results = {}
    results["layer_norm fwd"] = fastest(lambda: ln_model.predict(x, batch_size=B, verbose=0),
                                        args.reps)
    results["layer_norm fwd+bwd"] = fastest(lambda: core.gradients(x, y, True), args.reps)

    class Attn(pynn.layers.Layer):
        def lower(self, core, nodes):
            n, _ = core.add_node("attention", tuple(nodes), (), (H, kd, kd, 1), (0.0,))
            return n

        def compute_output_shape(self, shapes):
            return shapes[0]

    ins = [pynn.Input((T, D)) for _ in range(3)]
    from pynn.models import functional
    orig = functional._takes_list
    functional._takes_list = lambda layer: isinstance(layer, Attn) or orig(layer)
    at_model = pynn.Model(ins, Attn()(ins))
    functional._takes_list = orig
    at_model.compile("sgd", "mse")
    acore = at_model._core
    results["attention fwd"] = fastest(lambda: at_model.predict(qkv, batch_size=B, verbose=0),
                                       args.reps)
    results["attention fwd+bwd"] = fastest(lambda: acore.gradients(qkv, y, True), args.reps)

    # -- torch ----------------------------------------------------------------------------------
    tx = torch.tensor(x, requires_grad=True)
    tg = torch.ones(D, requires_grad=True)
    tb = torch.zeros(D, requires_grad=True)
    ty = torch.tensor(y)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in qkv)

    def t_ln(backward=True):
        o = F.layer_norm(tx, (D,), tg, tb, eps=1e-5)
        if backward:
            F.mse_loss(o, ty).backward()

    def heads(a):
        return a.view(B, T, H, kd).transpose(1, 2)

    def t_attn(backward=True):
        o = F.scaled_dot_product_attention(heads(tq), heads(tk), heads(tv), is_causal=True)
        o = o.transpose(1, 2).contiguous().view(B, T, D)
        if backward:
            F.mse_loss(o, ty).backward()

    with torch.no_grad():
        results["torch layer_norm fwd"] = fastest(lambda: t_ln(False), args.reps)
        results["torch attention fwd"] = fastest(lambda: t_attn(False), args.reps)
    results["torch layer_norm fwd+bwd"] = fastest(t_ln, args.reps)
    results["torch attention fwd+bwd"] = fastest(t_attn, args.reps)

    title = "layer_norm and causal attention, forward + backward, pynn vs torch"
    lines = [f"# {title} {torch.__version__}", "",
             f"B={B} T={T} D={D} H={H}, {args.threads} threads, ms (fastest of {args.reps}), "
             f"{platform.processor() or platform.machine()}",
             "", "| op | pass | pynn | torch | torch / pynn |", "|---|---|---|---|---|"]
    for op in ("layer_norm", "attention"):
        for what in ("fwd", "fwd+bwd"):
            a, t = results[f"{op} {what}"], results[f"torch {op} {what}"]
            lines.append(f"| {op} | {what} | {a:.3f} | {t:.3f} | {t / a:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
