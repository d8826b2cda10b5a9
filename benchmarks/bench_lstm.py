"""A character-level LSTM (Embedding 65 -> 64, LSTM 256 units with return_sequences, Dense 65
logits; sparse cross-entropy at every position, Adam) trained in pynn and in PyTorch in one run:
same initial weights, same batches (windows of 64 characters of Tiny Shakespeare, batch 32) in
the same order, same thread count. Prints training tokens/s (pynn's fit against PyTorch's
idiomatic nn.LSTM loop) and the ratio, for the whole model and for the LSTM layer alone; writes
benchmarks/results/lstm.md (and .json). Each library runs in a process of its own, alternating
over several rounds; each figure is the median over the rounds, and the best round is shown too.

    PYNN_DATASETS=../shared/data python benchmarks/bench_lstm.py --threads 2
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

SEQ, BATCH, UNITS, EMBED, VOCAB = 64, 32, 256, 64, 65


def load_data(n: int):
    import pynn

    try:
        codes, _ = pynn.datasets.tiny_shakespeare.load_data(as_codes=True)
        source = "Tiny Shakespeare"
    except (OSError, ValueError):
        codes = np.random.default_rng(0).integers(0, VOCAB, size=n * SEQ + 1).astype(np.uint8)
        source = "random characters (Tiny Shakespeare not found: set PYNN_DATASETS)"
    starts = np.arange(n) * SEQ
    idx = starts[:, None] + np.arange(SEQ)
    return codes[idx].astype(np.int32), codes[idx + 1].astype(np.int32), source


def build_pynn(seed: int):
    import pynn
    from pynn import layers

    pynn.utils.set_random_seed(seed)
    model = pynn.Sequential([pynn.Input(shape=(SEQ,), dtype="int32"),
                             layers.Embedding(VOCAB, EMBED),
                             layers.LSTM(UNITS, return_sequences=True),
                             layers.Dense(VOCAB)])
    model.compile(optimizer=pynn.optimizers.Adam(1e-3),
                  loss=pynn.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


class TorchCharLSTM:
    """The same model in PyTorch, with pynn's weights copied in (Keras's gate order i, f, c, o
    is PyTorch's i, f, g, o; Keras has one bias, so bias_hh starts at zero)."""

    def __init__(self, pynn_model):
        import torch

        emb, lstm, dense = pynn_model.layers
        self.emb = torch.nn.Embedding(VOCAB, EMBED)
        self.lstm = torch.nn.LSTM(EMBED, UNITS, batch_first=True)
        self.out = torch.nn.Linear(UNITS, VOCAB)
        with torch.no_grad():
            self.emb.weight.copy_(torch.from_numpy(emb.embeddings.numpy()))
            self.lstm.weight_ih_l0.copy_(torch.from_numpy(lstm.kernel.numpy().T))
            self.lstm.weight_hh_l0.copy_(torch.from_numpy(lstm.recurrent_kernel.numpy().T))
            self.lstm.bias_ih_l0.copy_(torch.from_numpy(lstm.bias.numpy()))
            self.lstm.bias_hh_l0.zero_()
            self.out.weight.copy_(torch.from_numpy(dense.kernel.numpy().T))
            self.out.bias.copy_(torch.from_numpy(dense.bias.numpy()))
        self.params = [*self.emb.parameters(), *self.lstm.parameters(), *self.out.parameters()]

    def __call__(self, x):
        h, _ = self.lstm(self.emb(x))
        return self.out(h)


def build_layer_alone(seed: int):
    """The LSTM layer by itself on float sequences (64 features), MSE against zeros, SGD: what
    the recurrent op costs without the embedding, the output layer and the softmax."""
    import pynn
    from pynn import layers

    pynn.utils.set_random_seed(seed)
    model = pynn.Sequential([pynn.Input(shape=(SEQ, EMBED)),
                             layers.LSTM(UNITS, return_sequences=True)])
    model.compile(optimizer=pynn.optimizers.SGD(1e-3), loss="mse")
    return model


def torch_layer_alone(pynn_model):
    import torch

    lstm = pynn_model.layers[0]
    net = torch.nn.LSTM(EMBED, UNITS, batch_first=True)
    with torch.no_grad():
        net.weight_ih_l0.copy_(torch.from_numpy(lstm.kernel.numpy().T))
        net.weight_hh_l0.copy_(torch.from_numpy(lstm.recurrent_kernel.numpy().T))
        net.bias_ih_l0.copy_(torch.from_numpy(lstm.bias.numpy()))
        net.bias_hh_l0.zero_()
    return net


def worker(lib: str, args) -> dict:
    """One library's training tokens/s, and its logits for the first window (the check)."""
    x, y, source = load_data(args.samples)
    model = build_pynn(seed=1)  # pynn's initial weights, for both libraries
    tokens = x.size
    xf = np.random.default_rng(3).standard_normal((len(x), SEQ, EMBED)).astype(np.float32)
    zeros = np.zeros((len(x), SEQ, UNITS), np.float32)
    out = {"source": source}
    if lib == "pynn":
        import pynn
        pynn.set_num_threads(args.threads)
        out["logits"] = model.predict(x[:1], verbose=0)[0, :4].tolist()
        m = build_pynn(seed=1)

        def epoch():
            m.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        out["train"] = tokens / harness.best_of(epoch, repeats=args.repeats)["median"]
        a = build_layer_alone(seed=2)

        def alone():
            a.fit(xf, zeros, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        out["layer"] = tokens / harness.best_of(alone, repeats=args.repeats)["median"]
        return out
    import torch
    torch.set_num_threads(args.threads)
    net = TorchCharLSTM(model)
    with torch.inference_mode():
        out["logits"] = net(torch.from_numpy(x[:1]).long())[0, :4].numpy().tolist()
    net = TorchCharLSTM(model)
    opt = torch.optim.Adam(net.params, lr=1e-3, eps=1e-7)
    xt, yt = torch.from_numpy(x).long(), torch.from_numpy(y).long()
    loss_fn = torch.nn.functional.cross_entropy

    def epoch():
        for s in range(0, len(x), BATCH):
            opt.zero_grad(set_to_none=True)
            logits = net(xt[s:s + BATCH])
            loss = loss_fn(logits.reshape(-1, VOCAB), yt[s:s + BATCH].reshape(-1))
            loss.backward()
            opt.step()
    out["train"] = tokens / harness.best_of(epoch, repeats=args.repeats)["median"]
    net = torch_layer_alone(build_layer_alone(seed=2))
    sgd = torch.optim.SGD(net.parameters(), lr=1e-3)
    xft, zt = torch.from_numpy(xf), torch.from_numpy(zeros)

    def alone():
        for s in range(0, len(x), BATCH):
            sgd.zero_grad(set_to_none=True)
            h, _ = net(xft[s:s + BATCH])
            ((h - zt[s:s + BATCH]) ** 2).mean().backward()
            sgd.step()
    out["layer"] = tokens / harness.best_of(alone, repeats=args.repeats)["median"]
    return out


def main() -> None:
    done = harness.compare(__file__, __doc__, 640, 3, "lstm.md", worker, ("train", "layer"),
                           "logits", rtol=1e-3, atol=1e-5)
    if done is None:
        return
    args, p, t, runs = done
    what = f"train tokens/s (seq {SEQ}, batch {BATCH}, {UNITS} units)"
    rows = [{"measure": f"{what}, median of rounds", "pynn": p["train"], "pytorch": t["train"],
             "ratio (pynn/pytorch)": p["train"] / t["train"]}]
    # on a shared machine a round can fall on a busy moment: the best round of each shows what
    # each library does when it has the cores to itself
    bp, bt = (max(r["train"] for r in runs[lib]) for lib in ("pynn", "torch"))
    rows.append({"measure": f"{what}, best round", "pynn": bp, "pytorch": bt,
                 "ratio (pynn/pytorch)": bp / bt})
    what = "LSTM layer alone (64 features, MSE, SGD), tokens/s"
    rows.append({"measure": f"{what}, median of rounds", "pynn": p["layer"],
                 "pytorch": t["layer"], "ratio (pynn/pytorch)": p["layer"] / t["layer"]})
    bp, bt = (max(r["layer"] for r in runs[lib]) for lib in ("pynn", "torch"))
    rows.append({"measure": f"{what}, best round", "pynn": bp, "pytorch": bt,
                 "ratio (pynn/pytorch)": bp / bt})
    rows += harness.ceiling_rows(p, t, [
        ("train (model)", "train", harness.matrix_flops(build_pynn(seed=1), True) / SEQ),
        ("train (layer alone)", "layer",
         harness.matrix_flops(build_layer_alone(seed=2), True) / SEQ)])
    meta = harness.run_meta(args, runs["pynn"][0]["source"], "ratio > 1 means pynn is faster; "
                            "tokens = windows x 64 characters per epoch")
    print(harness.write_report(rows, "Character LSTM: pynn vs PyTorch", Path(args.out), meta))


if __name__ == "__main__":
    main()
