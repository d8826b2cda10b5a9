"""layers.Conv2DTranspose (a traced call() of ops.conv_transpose) against PyTorch's
conv_transpose2d, values and gradients; keras.activations on symbolic tensors (issue 16)."""

import numpy as np
import pytest
import torch

import pynn
from pynn import layers


@pytest.mark.parametrize("padding, strides, kernel", [("same", 2, 4), ("valid", 2, 3),
                                                      ("same", 1, 3), ("valid", 1, 2)])
def test_conv2d_transpose_matches_torch(padding, strides, kernel):
    rng = np.random.default_rng(0)
    x = rng.random((2, 5, 6, 3), dtype=np.float32)
    layer = layers.Conv2DTranspose(4, kernel, strides=strides, padding=padding)
    inp = pynn.Input(shape=(5, 6, 3))
    model = pynn.Model(inp, layer(inp))
    k, b = layer.get_weights()
    tx = torch.tensor(x).permute(0, 3, 1, 2).requires_grad_()
    tk = torch.tensor(k).permute(3, 2, 0, 1).requires_grad_()  # (in, out, kh, kw)
    tb = torch.tensor(b).requires_grad_()
    total = (kernel - strides) if padding == "same" else 0  # Keras's 'same': out = in * s
    ty = torch.nn.functional.conv_transpose2d(tx, tk, tb, stride=strides)
    ty = ty[:, :, total // 2: ty.shape[2] - (total - total // 2),
            total // 2: ty.shape[3] - (total - total // 2)].permute(0, 2, 3, 1)
    out = model.predict(x, verbose=0)
    assert out.shape == tuple(ty.shape) and model.output_shape == (None,) + out.shape[1:]
    np.testing.assert_allclose(out, ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    # gradients on the tape
    g = rng.random(out.shape, dtype=np.float32)
    (ty * torch.tensor(g)).sum().backward()
    px = pynn.Tensor(x, requires_grad=True)
    with pynn.GradientTape() as tape:
        y = layer(px)
        loss = pynn.ops.sum(y * g)
    gk, gb = tape.gradient(loss, [layer.kernel, layer.bias])
    np.testing.assert_allclose(np.asarray(gk), tk.grad.permute(2, 3, 1, 0).numpy(), rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_allclose(np.asarray(gb), tb.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_conv2d_transpose_trains_saves_and_loads(tmp_path):
    model = pynn.Sequential([pynn.Input(shape=(4, 4, 2)),
                             layers.Conv2DTranspose(3, 3, strides=2, padding="same",
                                                    activation="relu")])
    assert model.output_shape == (None, 8, 8, 3)
    model.compile("adam", "mse")
    rng = np.random.default_rng(1)
    x, y = rng.random((8, 4, 4, 2)), rng.random((8, 8, 8, 3))
    history = model.fit(x, y, epochs=3, verbose=0).history["loss"]
    assert history[-1] < history[0]
    model.save(tmp_path / "m.keras")
    loaded = pynn.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_activations_apply_to_symbolic_tensors_in_a_traced_call():
    class Block(layers.Layer):
        def call(self, x):
            return pynn.activations.relu(x) + pynn.activations.leaky_relu(x, 0.1)

    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    model = pynn.Sequential([pynn.Input(shape=(4,)), Block()])
    want = np.maximum(x, 0) + np.where(x > 0, x, 0.1 * x)
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(pynn.activations.relu(x)), np.maximum(x, 0))
