"""The MNIST MLP (784 -> Dense 128 relu -> Dense 10 softmax, Adam, sparse cross-entropy) trained
in pynn and in PyTorch in one run: same initial weights, same batches in the same order, same
thread count. Prints training samples/s at batch 32 and 256 (pynn's fit, and pynn's imperative
loop: model(x, training=True), loss.backward(), optimizer.step(), against PyTorch's loop),
single-sample predict latency, and the ratios; writes benchmarks/results/mlp.md (and .json).
Each library runs in a process of its own (so neither's idle threads slow the other),
alternating over several rounds; each figure is the median over the rounds.

    PYNN_DATASETS=../shared/data python benchmarks/bench_mlp.py --threads 2
"""

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


def build_pynn(seed: int, logits: bool = False):
    import pynn
    from pynn import layers

    pynn.utils.set_random_seed(seed)
    model = pynn.Sequential([pynn.Input(shape=(784,)), layers.Dense(128, activation="relu"),
                             layers.Dense(10, activation=None if logits else "softmax")])
    model.compile(optimizer=pynn.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    return model


def imperative_epoch(model, x, y, bs: int, optimizer, loss_fn) -> None:
    """One epoch of pynn's PyTorch-style loop."""
    for s in range(0, len(x), bs):
        optimizer.zero_grad()
        loss = loss_fn(y[s:s + bs], model(x[s:s + bs], training=True))
        loss.backward()
        optimizer.step()


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


def worker(lib: str, args) -> dict:
    """One library's training samples/s at each batch size and its single-sample latency."""
    x, y, source = load_data(args.samples)
    model = build_pynn(seed=1)  # pynn's initial weights, for both libraries
    x1 = x[:1].copy()
    out = {"source": source}
    if lib == "pynn":
        import pynn
        pynn.set_num_threads(args.threads)
        for bs in (32, 256):
            m = build_pynn(seed=1)

            def epoch(m=m, bs=bs):
                m.fit(x, y, batch_size=bs, epochs=1, shuffle=False, verbose=0)
            out[f"train{bs}"] = len(x) / harness.best_of(epoch, repeats=args.repeats)["median"]
            m = build_pynn(seed=1, logits=True)
            opt = pynn.optimizers.Adam(1e-3)
            opt.build(m.trainable_weights)
            loss_fn = pynn.losses.SparseCategoricalCrossentropy(from_logits=True)

            def loop(m=m, bs=bs, opt=opt, loss_fn=loss_fn):
                imperative_epoch(m, x, y, bs, opt, loss_fn)
            out[f"loop{bs}"] = len(x) / harness.best_of(loop, repeats=args.repeats)["median"]
        out["latency"] = harness.per_call(lambda: model.predict(x1, verbose=0),
                                          calls=2000)["median"]
        out["probs"] = model.predict(x1, verbose=0).tolist()
        return out
    import torch
    torch.set_num_threads(args.threads)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    loss_fn = torch.nn.functional.cross_entropy
    for bs in (32, 256):
        net, opt = build_torch(model)

        def epoch(net=net, opt=opt, bs=bs):
            for s in range(0, len(x), bs):
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(net(xt[s:s + bs]), yt[s:s + bs])
                loss.backward()
                opt.step()
        out[f"train{bs}"] = len(x) / harness.best_of(epoch, repeats=args.repeats)["median"]
        out[f"loop{bs}"] = out[f"train{bs}"]  # PyTorch's training is its loop
    net, _ = build_torch(model)
    x1t = torch.from_numpy(x1)

    def predict():
        with torch.inference_mode():
            return net(x1t).softmax(-1).numpy()
    out["latency"] = harness.per_call(predict, calls=2000)["median"]
    out["probs"] = predict().tolist()
    return out


def main() -> None:
    done = harness.compare(__file__, __doc__, 12800, 3, "mlp.md", worker,
                           ("train32", "train256", "loop32", "loop256", "latency"), "probs",
                           rtol=1e-4, atol=1e-6)
    if done is None:
        return
    args, p, t, runs = done
    rows = [{"measure": f"train samples/s, batch {bs}", "pynn": p[f"train{bs}"],
             "pytorch": t[f"train{bs}"], "ratio (pynn/pytorch)": p[f"train{bs}"] / t[f"train{bs}"]}
            for bs in (32, 256)]
    rows += [{"measure": f"imperative loop samples/s, batch {bs}", "pynn": p[f"loop{bs}"],
              "pytorch": t[f"loop{bs}"], "ratio (pynn/pytorch)": p[f"loop{bs}"] / t[f"loop{bs}"]}
             for bs in (32, 256)]
    rows.append({"measure": "predict latency, 1 sample (us)", "pynn": p["latency"] * 1e6,
                 "pytorch": t["latency"] * 1e6,
                 "ratio (pynn/pytorch)": t["latency"] / p["latency"]})
    flops = harness.matrix_flops(build_pynn(seed=1), training=True)
    rows += harness.ceiling_rows(p, t, [(f"train, batch {bs}", f"train{bs}", flops)
                                        for bs in (32, 256)])

    meta = harness.run_meta(args, runs["pynn"][0]["source"], "ratio > 1 means pynn is faster "
                            "(for latency: pytorch time / pynn time)")
    print(harness.write_report(rows, "MLP: pynn vs PyTorch", Path(args.out), meta))


if __name__ == "__main__":
    main()
