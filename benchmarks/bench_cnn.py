"""The MNIST CNN (Conv 32 3x3 relu, max-pool 2, Conv 64 3x3 relu, max-pool 2, flatten, Dense 128
relu, Dense 10 softmax; Adam 1e-3, sparse cross-entropy, batch 64) in pynn and in PyTorch, in
one run: same initial weights, same batches in the same order, same thread count.

Prints training samples/s, inference samples/s (batches of 256) and peak memory for each, and
the ratios; writes benchmarks/results/cnn.md (and .json). Each library trains and predicts in a
child process of its own, so each one's peak memory (the high-water mark of resident memory
during the work, less what the process held after importing the library and loading the data)
is its own. The two alternate over several rounds (pynn, torch, pynn, torch, ...) and each
figure is the median over the rounds, so a busy moment of a shared machine falls on both.

    PYNN_DATASETS=../shared/data python benchmarks/bench_cnn.py --threads 2
"""

import resource
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import harness  # noqa: E402


def load_data(n: int):
    import pynn

    (x, y), _ = pynn.datasets.mnist.load_data()
    return x[:n, :, :, None].astype(np.float32) / 255.0, y[:n].astype(np.int32)


def build_pynn(seed: int):
    import pynn
    from pynn import layers

    pynn.utils.set_random_seed(seed)
    model = pynn.Sequential([
        pynn.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(128, activation="relu"), layers.Dense(10, activation="softmax")])
    model.compile(optimizer=pynn.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    return model


def build_torch(weights):
    """PyTorch's MNIST CNN with pynn's initial weights: conv kernels (kh, kw, in, out) become
    (out, in, kh, kw); the first Dense's rows follow pynn's (h, w, c) flattening, torch flattens
    (c, h, w), so they are permuted to match."""
    import torch
    from torch import nn

    net = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(1600, 128), nn.ReLU(), nn.Linear(128, 10))
    k1, b1, k2, b2, d1, c1, d2, c2 = weights
    d1 = d1.reshape(5, 5, 64, 128).transpose(2, 0, 1, 3).reshape(1600, 128)
    with torch.no_grad():
        for mod, w, b in ((net[0], k1.transpose(3, 2, 0, 1), b1),
                          (net[3], k2.transpose(3, 2, 0, 1), b2),
                          (net[7], d1.T, c1), (net[9], d2.T, c2)):
            mod.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            mod.bias.copy_(torch.from_numpy(b))
    return net


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def worker(lib: str, args) -> dict:
    """Times one library's training and inference; returns samples/s and peak memory."""
    if lib == "pynn":
        import pynn
        pynn.set_num_threads(args.threads)
    else:
        import torch
        torch.set_num_threads(args.threads)
    x, y = load_data(args.samples)
    weights = [w.numpy() for w in build_pynn(seed=1).weights]
    base = rss_bytes()

    if lib == "pynn":
        model = build_pynn(seed=1)
        model.set_weights(weights)

        def train_epoch():
            model.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)

        def infer():
            return model.predict(x, batch_size=256, verbose=0)
    else:
        import torch
        net = build_torch(weights)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)  # Keras's epsilon
        xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
        yt = torch.from_numpy(y.astype(np.int64))

        def train_epoch():
            for s in range(0, len(xt), 64):
                opt.zero_grad(set_to_none=True)
                with harness.autocast(args):
                    loss = torch.nn.functional.cross_entropy(net(xt[s:s + 64]), yt[s:s + 64])
                loss.backward()
                opt.step()

        def infer():
            with torch.inference_mode(), harness.autocast(args):
                return torch.cat([net(xt[s:s + 256]).float().softmax(-1)
                                  for s in range(0, len(xt), 256)]).numpy()

    first = infer()  # the untrained model's outputs, to check both compute the same function
    train = harness.best_of(train_epoch, repeats=args.repeats)
    inference = harness.best_of(infer, repeats=args.repeats)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"train": len(x) / train["median"], "infer": len(x) / inference["median"],
            "peak_mb": (peak - base) / 2**20, "first": first[:64].tolist()}


def main() -> None:
    done = harness.compare(__file__, __doc__, 6400, 2, "cnn.md", worker,
                           ("train", "infer", "peak_mb"), "first", rtol=1e-3, atol=1e-5)
    if done is None:
        return
    args, p, t, _ = done

    rows = [
        {"measure": "train samples/s, batch 64", "pynn": p["train"], "pytorch": t["train"],
         "ratio (pynn/pytorch)": p["train"] / t["train"]},
        {"measure": "inference samples/s, batch 256", "pynn": p["infer"], "pytorch": t["infer"],
         "ratio (pynn/pytorch)": p["infer"] / t["infer"]},
        {"measure": "peak memory over baseline (MiB)", "pynn": p["peak_mb"],
         "pytorch": t["peak_mb"], "ratio (pynn/pytorch)": t["peak_mb"] / max(p["peak_mb"], 1e-9)},
    ]
    rows = harness.precision_rows(args, p, rows, [("train, batch 64", "train"),
                                                  ("inference, batch 256", "infer")])
    model = build_pynn(seed=1)
    rows += harness.ceiling_rows(p, t, [
        ("train, batch 64", "train", harness.matrix_flops(model, training=True)),
        ("inference, batch 256", "infer", harness.matrix_flops(model, training=False))],
        args.precision)
    meta = harness.run_meta(args, "MNIST",
                            "ratio > 1 means pynn is better (for memory: pytorch / pynn)")
    print(harness.write_report(rows, "MNIST CNN: pynn vs PyTorch", Path(args.out), meta))


if __name__ == "__main__":
    main()
