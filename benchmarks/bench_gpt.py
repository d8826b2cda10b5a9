"""The character GPT of examples/char_gpt.py (4 pre-norm blocks, 4 heads, embedding 128, context
64, causal attention, GELU MLP; AdamW, sparse cross-entropy over every position) in pynn and in
PyTorch, in one run: same initial weights, same batches in the same order, same thread count,
at batches of 16 and of 32 windows.

The PyTorch model is written as nanoGPT writes it: nn.Embedding plus a learned position table,
nn.LayerNorm, nn.Linear projections, F.scaled_dot_product_attention(is_causal=True) (PyTorch's
fused attention), F.gelu. Prints training tokens/s for each and the ratio; writes
benchmarks/results/gpt.md (and .json). Each library runs in a process of its own, alternating
over several rounds; each figure is the median over the rounds.

    PYNN_DATASETS=../shared/data python benchmarks/bench_gpt.py --threads 2
"""

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "examples"))
import harness  # noqa: E402

CONTEXT, LAYERS, HEADS, DIM, BATCHES = 64, 4, 4, 128, (16, 32)
LR, WEIGHT_DECAY = 1e-3, 0.1


def load_data(n: int):
    """n windows of Tiny Shakespeare and their next-character targets, and the vocabulary size
    (random codes when the text is not found)."""
    import pynn

    try:
        codes, vocab = pynn.datasets.tiny_shakespeare.load_data(as_codes=True)
        source, v = "Tiny Shakespeare", len(vocab)
    except (OSError, ValueError):
        codes, source, v = (np.random.default_rng(0).integers(0, 65, 200_000).astype(np.uint8),
                            "random (Tiny Shakespeare not found: set PYNN_DATASETS)", 65)
    starts = np.random.default_rng(1).integers(0, len(codes) - CONTEXT - 1, size=n)
    w = codes[starts[:, None] + np.arange(CONTEXT + 1)].astype(np.int32)
    return w[:, :-1].copy(), w[:, 1:].copy(), v, source


def build_pynn(vocab: int, seed: int):
    from char_gpt import build_model

    import pynn

    pynn.utils.set_random_seed(seed)
    model = build_model(vocab, CONTEXT, LAYERS, HEADS, DIM)
    model.compile(optimizer=pynn.optimizers.AdamW(LR, weight_decay=WEIGHT_DECAY),
                  loss=pynn.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def build_torch(pynn_model, vocab: int):
    """nanoGPT's model with pynn's initial weights, and its AdamW with Keras's defaults."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(DIM, eps=1e-5), nn.LayerNorm(DIM, eps=1e-5)
            self.q, self.k, self.v, self.o = (nn.Linear(DIM, DIM) for _ in range(4))
            self.fc, self.proj = nn.Linear(DIM, 4 * DIM), nn.Linear(4 * DIM, DIM)

        def forward(self, x):
            b, t, d = x.shape
            h = self.ln1(x)
            q, k, v = (lin(h).view(b, t, HEADS, d // HEADS).transpose(1, 2)
                       for lin in (self.q, self.k, self.v))
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.o(a.transpose(1, 2).reshape(b, t, d))
            return x + self.proj(F.gelu(self.fc(self.ln2(x))))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(vocab, DIM)
            self.pos = nn.Parameter(torch.zeros(CONTEXT, DIM))
            self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
            self.ln = nn.LayerNorm(DIM, eps=1e-5)
            self.head = nn.Linear(DIM, vocab)

        def forward(self, idx):
            x = self.tok(idx) + self.pos
            for block in self.blocks:
                x = block(x)
            return self.head(self.ln(x))

    net = GPT()
    w = {layer.name: layer.get_weights() for layer in pynn_model.layers}

    def put(param, value):
        param.copy_(torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))

    def linear(lin, kernel, bias):  # a (in, out) kernel: Keras's layout, PyTorch's transposed
        put(lin.weight, kernel.T)
        put(lin.bias, bias.reshape(-1))

    with torch.no_grad():
        put(net.tok.weight, w["token_embedding"][0])
        put(net.pos, w["position_embedding"][0])
        for i, block in enumerate(net.blocks):
            put(block.ln1.weight, w[f"block{i}_ln1"][0])
            put(block.ln1.bias, w[f"block{i}_ln1"][1])
            qk, qb, kk, kb, vk, vb, ok, ob = w[f"block{i}_attention"]
            for lin, kernel, bias in ((block.q, qk, qb), (block.k, kk, kb), (block.v, vk, vb)):
                linear(lin, kernel.reshape(DIM, -1), bias)
            linear(block.o, ok.reshape(-1, DIM), ob)
            put(block.ln2.weight, w[f"block{i}_ln2"][0])
            put(block.ln2.bias, w[f"block{i}_ln2"][1])
            linear(block.fc, *w[f"block{i}_mlp_in"])
            linear(block.proj, *w[f"block{i}_mlp_out"])
        put(net.ln.weight, w["final_ln"][0])
        put(net.ln.bias, w["final_ln"][1])
        linear(net.head, *w["logits"])
    opt = torch.optim.AdamW(net.parameters(), lr=LR, eps=1e-7, weight_decay=WEIGHT_DECAY)
    return net, opt


def worker(lib: str, args) -> dict:
    """One library's training tokens/s, and its logits for the first window before training."""
    x, y, vocab, source = load_data(args.samples)
    model = build_pynn(vocab, seed=1)  # pynn's initial weights, for both libraries
    out = {"source": source}
    tokens = len(x) * CONTEXT
    if lib == "pynn":
        import pynn
        pynn.set_num_threads(args.threads)
        out["logits"] = model.predict(x[:2], verbose=0)[:, -4:].tolist()
        for bs in BATCHES:
            m = build_pynn(vocab, seed=1)

            def epoch(m=m, bs=bs):
                m.fit(x, y, batch_size=bs, epochs=1, shuffle=False, verbose=0)
            out[f"train{bs}"] = tokens / harness.best_of(epoch, repeats=args.repeats)["median"]
        return out
    import torch
    torch.set_num_threads(args.threads)
    xt, yt = torch.from_numpy(x).long(), torch.from_numpy(y).long()
    net, _ = build_torch(model, vocab)
    with torch.inference_mode(), harness.autocast(args):
        out["logits"] = net(xt[:2])[:, -4:].float().tolist()
    for bs in BATCHES:
        net, opt = build_torch(model, vocab)

        def epoch(net=net, opt=opt, bs=bs):
            for s in range(0, len(x), bs):
                opt.zero_grad(set_to_none=True)
                with harness.autocast(args):
                    logits = net(xt[s:s + bs])
                    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab),
                                                             yt[s:s + bs].reshape(-1))
                loss.backward()
                opt.step()
        out[f"train{bs}"] = tokens / harness.best_of(epoch, repeats=args.repeats)["median"]
    return out


def main() -> None:
    done = harness.compare(__file__, __doc__, 640, 3, "gpt.md", worker,
                           tuple(f"train{bs}" for bs in BATCHES), "logits", rtol=2e-3, atol=2e-4)
    if done is None:
        return
    args, p, t, runs = done
    rows = [{"measure": f"train tokens/s, batch {bs} x {CONTEXT}", "pynn": p[f"train{bs}"],
             "pytorch": t[f"train{bs}"], "ratio (pynn/pytorch)": p[f"train{bs}"] / t[f"train{bs}"]}
            for bs in BATCHES]
    rows = harness.precision_rows(args, p, rows, [(f"train, batch {bs}", f"train{bs}")
                                                  for bs in BATCHES])
    per_token = harness.matrix_flops(build_pynn(load_data(1)[2], seed=1), True) / CONTEXT
    rows += harness.ceiling_rows(p, t, [(f"train, batch {bs}", f"train{bs}", per_token)
                                        for bs in BATCHES], args.precision)
    meta = harness.run_meta(args, runs["pynn"][0]["source"], "ratio > 1 means pynn is faster; "
                            f"model: {LAYERS} blocks, {HEADS} heads, embedding {DIM}, context "
                            f"{CONTEXT}, AdamW; samples are windows of {CONTEXT} tokens")
    print(harness.write_report(rows, "Character GPT: pynn vs PyTorch", Path(args.out), meta))


if __name__ == "__main__":
    main()
