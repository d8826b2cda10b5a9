"""The MNIST MLP (784 -> Dense 128 relu -> Dense 10 softmax, Adam, sparse cross-entropy) trained
in pynn and in PyTorch in one run: same initial weights, same batches in the same order, same
thread count. Prints training samples/s at batch 32 and 256, single-sample predict latency, and
the ratios; writes benchmarks/results/mlp.md (and .json).

    PYNN_DATASETS=../shared/data python benchmarks/bench_mlp.py --threads 2
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402


def load_data(n: int):
    import pynn

    try:
        (x, y), _ = pynn.datasets.mnist.load_data()
        source = "MNIST"
    except (OSError, ValueError):
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=n).astype(np.uint8)
        source = "random (MNIST not found: set PYNN_DATASETS)"
    x = (x[:n].reshape(-1, 784).astype(np.float32) / 255.0)
    return x, y[:n].astype(np.int32), source


def build_pynn(seed: int):
    import pynn
    from pynn import layers

    pynn.utils.set_random_seed(seed)
    model = pynn.Sequential([pynn.Input(shape=(784,)), layers.Dense(128, activation="relu"),
                             layers.Dense(10, activation="softmax")])
    model.compile(optimizer=pynn.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    return model


def build_torch(pynn_model):
    import torch

    net = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    with torch.no_grad():
        for lin, layer in zip((net[0], net[2]), pynn_model.layers):
            lin.weight.copy_(torch.from_numpy(layer.kernel.numpy().T))
            lin.bias.copy_(torch.from_numpy(layer.bias.numpy()))
    # Keras's Adam defaults; PyTorch's logits + cross_entropy is the same computation as a
    # softmax output + sparse categorical cross-entropy.
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    return net, opt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=12800, help="samples per timed epoch")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "mlp.md"))
    args = ap.parse_args()

    import pynn
    import torch

    pynn.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    x, y, source = load_data(args.samples)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))

    rows = []
    for bs in (32, 256):
        model = build_pynn(seed=1)
        net, opt = build_torch(model)
        loss_fn = torch.nn.functional.cross_entropy

        def pynn_epoch():
            model.fit(x, y, batch_size=bs, epochs=1, shuffle=False, verbose=0)

        def torch_epoch():
            for s in range(0, len(x), bs):
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(net(xt[s:s + bs]), yt[s:s + bs])
                loss.backward()
                opt.step()

        tp = harness.best_of(pynn_epoch, repeats=args.repeats)
        tt = harness.best_of(torch_epoch, repeats=args.repeats)
        sp, st = len(x) / tp["median"], len(x) / tt["median"]
        rows.append({"measure": f"train samples/s, batch {bs}", "pynn": sp, "pytorch": st,
                     "ratio (pynn/pytorch)": sp / st})

    model = build_pynn(seed=1)
    net, _ = build_torch(model)
    x1 = x[:1].copy()
    x1t = torch.from_numpy(x1)

    def torch_predict():
        with torch.inference_mode():
            return net(x1t).softmax(-1).numpy()

    lp = harness.per_call(lambda: model.predict(x1, verbose=0), calls=2000)
    lt = harness.per_call(torch_predict, calls=2000)
    np.testing.assert_allclose(model.predict(x1, verbose=0), torch_predict(), rtol=1e-4, atol=1e-6)
    rows.append({"measure": "predict latency, 1 sample (us)", "pynn": lp["median"] * 1e6,
                 "pytorch": lt["median"] * 1e6,
                 "ratio (pynn/pytorch)": lt["median"] / lp["median"]})

    meta = {"threads": args.threads, "samples per epoch": len(x), "data": source,
            "repeats": args.repeats, "torch": torch.__version__, "pynn": pynn.__version__,
            **harness.machine(),
            "note": "ratio > 1 means pynn is faster (for latency: pytorch time / pynn time)"}
    print(harness.write_report(rows, "MLP: pynn vs PyTorch", Path(args.out), meta))


if __name__ == "__main__":
    main()
