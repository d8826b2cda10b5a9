"""layers.Conv2DTranspose and Conv1DTranspose (the core's conv2d_transpose op) against PyTorch's
conv_transpose2d, values and gradients; keras.activations on symbolic tensors (issue 16)."""

import numpy as np
import pytest
import torch

import pynn
from pynn import layers
from pynn.layers.convolutional import transpose_geometry


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


def _keras_size(n, k, s, d, padding, output_padding):
    """Keras's output length of a transposed convolution (its deconv_output_length)."""
    k = (k - 1) * d + 1
    if output_padding is None:
        return n * s + max(k - s, 0) if padding == "valid" else n * s
    pad = k // 2 if padding == "same" else 0
    return (n - 1) * s + k - 2 * pad + output_padding


def _torch_reference(x, kernel, bias, strides, dilation, out_size, crop):
    """conv_transpose2d without padding, then the window Keras's padding keeps (zeros past the
    end where output_padding reaches beyond it)."""
    tx = torch.tensor(x).permute(0, 3, 1, 2).requires_grad_()
    tk = torch.tensor(kernel).permute(3, 2, 0, 1).requires_grad_()  # (in, out, kh, kw)
    tb = torch.tensor(bias).requires_grad_()
    full = torch.nn.functional.conv_transpose2d(tx, tk, None, stride=strides, dilation=dilation)
    need = [max(0, c + o - f) for c, o, f in zip(crop, out_size, full.shape[2:])]
    full = torch.nn.functional.pad(full, (0, need[1], 0, need[0]))
    y = full[:, :, crop[0]:crop[0] + out_size[0], crop[1]:crop[1] + out_size[1]]
    y = y + tb[None, :, None, None]
    return tx, tk, tb, y.permute(0, 2, 3, 1)


@pytest.mark.parametrize("padding, strides, kernel, dilation, output_padding", [
    ("same", (2, 2), (4, 4), (1, 1), None), ("valid", (2, 3), (3, 2), (1, 1), None),
    ("same", (1, 1), (3, 3), (2, 1), None), ("valid", (1, 1), (1, 1), (1, 1), None),
    ("same", (3, 2), (3, 3), (1, 1), (2, 1)), ("valid", (2, 2), (3, 1), (1, 1), (1, 0)),
    ("same", (2, 2), (1, 1), (1, 1), None)])
def test_native_transpose_matches_torch_in_values_and_every_gradient(padding, strides, kernel,
                                                                     dilation, output_padding):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 4, 5, 2)).astype(np.float32)
    layer = layers.Conv2DTranspose(3, kernel, strides=strides, padding=padding,
                                   output_padding=output_padding, dilation_rate=dilation)
    inp = pynn.Input(shape=(4, 5, 2))
    model = pynn.Model(inp, layer(inp))
    k, b = layer.get_weights()
    b = rng.normal(size=b.shape).astype(np.float32)
    layer.set_weights([k, b])
    opad = output_padding or (None, None)
    size = tuple(_keras_size(n, kk, s, d, padding, p) for n, kk, s, d, p in zip(
        (4, 5), kernel, strides, dilation, opad))
    assert model.output_shape == (None,) + size + (3,)
    crop = [transpose_geometry(n, kk, s, d, padding, p)[1] for n, kk, s, d, p in zip(
        (4, 5), kernel, strides, dilation, opad)]
    tx, tk, tb, ty = _torch_reference(x, k, b, strides, dilation, size, crop)
    out = model.predict(x, verbose=0)
    np.testing.assert_allclose(out, ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    g = rng.normal(size=out.shape).astype(np.float32)
    (ty * torch.tensor(g)).sum().backward()
    px = pynn.Tensor(x, requires_grad=True)
    with pynn.GradientTape() as tape:
        loss = pynn.ops.sum(layer(px) * g)
    gk, gb, gx = tape.gradient(loss, [layer.kernel, layer.bias, px])
    np.testing.assert_allclose(np.asarray(gk), tk.grad.permute(2, 3, 1, 0).numpy(), rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_allclose(np.asarray(gb), tb.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(gx), tx.grad.permute(0, 2, 3, 1).numpy(), rtol=1e-4,
                               atol=1e-4)


def test_conv1d_transpose_is_conv2d_transpose_on_one_row():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 6, 3)).astype(np.float32)
    one = layers.Conv1DTranspose(4, 3, strides=2, padding="same")
    two = layers.Conv2DTranspose(4, (1, 3), strides=(1, 2), padding="same")
    m1 = pynn.Sequential([pynn.Input((6, 3)), one])
    m2 = pynn.Sequential([pynn.Input((1, 6, 3)), two])
    assert m1.output_shape == (None, 12, 4)
    k, b = one.get_weights()
    two.set_weights([k[None], b])
    np.testing.assert_allclose(m1.predict(x, verbose=0),
                               m2.predict(x[:, None], verbose=0)[:, 0], rtol=1e-6, atol=1e-6)


def test_a_training_step_matches_torch_sgd():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 3, 3, 2)).astype(np.float32)
    layer = layers.Conv2DTranspose(2, 3, strides=2, padding="same")
    model = pynn.Sequential([pynn.Input((3, 3, 2)), layer])
    model.compile(pynn.optimizers.SGD(0.1), "mse")
    y = rng.normal(size=(4, 6, 6, 2)).astype(np.float32)
    k, b = layer.get_weights()
    crop = [transpose_geometry(3, 3, 2, 1, "same", None)[1]] * 2
    tx, tk, tb, ty = _torch_reference(x, k, b, (2, 2), (1, 1), (6, 6), crop)
    torch.mean((ty - torch.tensor(y)) ** 2).backward()
    model.train_on_batch(x, y)
    k1, b1 = layer.get_weights()
    np.testing.assert_allclose(k1, k - 0.1 * tk.grad.permute(2, 3, 1, 0).numpy(), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(b1, b - 0.1 * tb.grad.numpy(), rtol=1e-5, atol=1e-6)


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
