"""Transposed convolutions: the VAE decoder of keras-io's vae example (Dense to 7x7x64, then
Conv2DTranspose 64 and 32 3x3 stride 2 'same' relu, Conv2DTranspose 1 3x3 'same' sigmoid; Adam,
binary cross-entropy on MNIST digits, batch 128) in pynn and in PyTorch (ConvTranspose2d), in one
run: same initial weights, same batches, same thread count. Also pynn's mirrored encoder (Conv2D
with the same shapes the other way: 28x28x1 -> 14x14x32 -> 7x7x64 -> Dense), to see what a
transposed convolution costs against the convolution it mirrors.

Keras's 'same' transposed convolution keeps the first rows of the full result where PyTorch's
padding=1 would drop one: the PyTorch model runs padding=0 and takes Keras's window, so both
compute the same function (checked on the untrained outputs).

    PYNN_DATASETS=../shared/data python benchmarks/bench_conv_transpose.py --threads 2
"""

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import harness  # noqa: E402

BATCH, LATENT = 128, 16


def load_data(n: int):
    import pynn

    (x, _), _ = pynn.datasets.mnist.load_data()
    x = x[:n, :, :, None].astype(np.float32) / 255.0
    z = np.random.default_rng(0).standard_normal((n, LATENT)).astype(np.float32)
    return z, x


def build_decoder(seed: int):
    import pynn
    from pynn import layers

    pynn.utils.set_random_seed(seed)
    model = pynn.Sequential([
        pynn.Input(shape=(LATENT,)), layers.Dense(7 * 7 * 64, activation="relu"),
        layers.Reshape((7, 7, 64)),
        layers.Conv2DTranspose(64, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2DTranspose(1, 3, padding="same", activation="sigmoid")])
    model.compile(optimizer=pynn.optimizers.Adam(1e-3), loss="binary_crossentropy")
    return model


def build_encoder(seed: int):
    """The decoder's mirror: the same convolution shapes, from the image to the code."""
    import pynn
    from pynn import layers

    pynn.utils.set_random_seed(seed)
    model = pynn.Sequential([
        pynn.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.Conv2D(64, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2D(64, 3, strides=2, padding="same", activation="relu"),
        layers.Flatten(), layers.Dense(LATENT)])
    model.compile(optimizer=pynn.optimizers.Adam(1e-3), loss="mse")
    return model


def build_torch(weights):
    """The decoder in PyTorch with pynn's weights: Dense kernels transposed, the Dense's columns
    reordered from pynn's (h, w, c) to PyTorch's (c, h, w), transposed-conv kernels (kh, kw,
    out, in) as (in, out, kh, kw)."""
    import torch
    from torch import nn

    from pynn.layers.convolutional import transpose_geometry

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(LATENT, 7 * 7 * 64)
            self.ups = nn.ModuleList([nn.ConvTranspose2d(64, 64, 3, stride=2),
                                      nn.ConvTranspose2d(64, 32, 3, stride=2),
                                      nn.ConvTranspose2d(32, 1, 3, stride=1)])
            self.sizes = [(14, 2), (28, 2), (28, 1)]

        def forward(self, z):
            h = torch.relu(self.dense(z)).view(-1, 64, 7, 7)
            n = 7
            for k, (up, (size, stride)) in enumerate(zip(self.ups, self.sizes)):
                top = transpose_geometry(n, 3, stride, 1, "same", None)[1]
                h = up(h)[:, :, top:top + size, top:top + size]  # Keras's 'same' window
                h = torch.sigmoid(h) if k == 2 else torch.relu(h)
                n = size
            return h

    net = Decoder()
    kd, bd, *convs = weights
    kd = kd.reshape(LATENT, 7, 7, 64).transpose(0, 3, 1, 2).reshape(LATENT, -1)
    bd = bd.reshape(7, 7, 64).transpose(2, 0, 1).reshape(-1)
    with torch.no_grad():
        net.dense.weight.copy_(torch.from_numpy(np.ascontiguousarray(kd.T)))
        net.dense.bias.copy_(torch.from_numpy(np.ascontiguousarray(bd)))
        for up, k, b in zip(net.ups, convs[0::2], convs[1::2]):
            up.weight.copy_(torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1))))
            up.bias.copy_(torch.from_numpy(b))
    return net


def worker(lib: str, args) -> dict:
    """One library's decoder training samples/s (and pynn's mirrored encoder's)."""
    z, x = load_data(args.samples)
    weights = [w.numpy() for w in build_decoder(seed=1).weights]
    if lib == "pynn":
        import pynn
        pynn.set_num_threads(args.threads)
        dec = build_decoder(seed=1)
        dec.set_weights(weights)
        first = dec.predict(z[:4], verbose=0)

        def train():
            dec.fit(z, x, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        enc = build_encoder(seed=2)

        def train_encoder():
            enc.fit(x, z, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        out = {"train": len(z) / harness.best_of(train, repeats=args.repeats)["median"],
               "mirror": len(z) / harness.best_of(train_encoder, repeats=args.repeats)["median"]}
    else:
        import torch
        torch.set_num_threads(args.threads)
        net = build_torch(weights)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)  # Keras's epsilon
        zt, xt = torch.from_numpy(z), torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
        with torch.inference_mode():
            first = net(zt[:4]).numpy().transpose(0, 2, 3, 1)

        def train():
            for s in range(0, len(zt), BATCH):
                opt.zero_grad(set_to_none=True)
                loss = torch.nn.functional.binary_cross_entropy(net(zt[s:s + BATCH]),
                                                                xt[s:s + BATCH])
                loss.backward()
                opt.step()
        out = {"train": len(z) / harness.best_of(train, repeats=args.repeats)["median"],
               "mirror": 0.0}
    out["first"] = np.asarray(first).reshape(4, -1)[:, :64].tolist()
    return out


def main() -> None:
    done = harness.compare(__file__, __doc__, 2560, 2, "conv_transpose.md", worker,
                           ("train", "mirror"), "first", rtol=1e-3, atol=1e-5)
    if done is None:
        return
    args, p, t, _ = done
    rows = [{"measure": f"decoder train samples/s, batch {BATCH}", "pynn": p["train"],
             "pytorch": t["train"], "ratio (pynn/pytorch)": p["train"] / t["train"]},
            {"measure": "pynn: mirrored Conv2D encoder train samples/s", "pynn": p["mirror"],
             "pytorch": "", "ratio (pynn/pytorch)": ""},
            {"measure": "pynn: transposed / mirrored time per sample", "pynn":
             p["mirror"] / p["train"], "pytorch": "", "ratio (pynn/pytorch)": ""}]
    flops = harness.matrix_flops(build_decoder(seed=1), training=True)
    rows += harness.ceiling_rows(p, t, [(f"decoder train, batch {BATCH}", "train", flops)])
    meta = harness.run_meta(args, "MNIST", "ratio > 1 means pynn is faster; the decoder of "
                            "keras-io's vae example on random latent codes")
    print(harness.write_report(rows, "Transposed convolutions: pynn vs PyTorch", Path(args.out),
                               meta))


if __name__ == "__main__":
    main()
