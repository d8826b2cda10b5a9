"""The imperative path: models and layers called on data, the tape, backward, optimizers stepping
by hand; and its agreement with fit and with PyTorch."""

import numpy as np
import pytest

import pynn
from pynn import layers

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(0)
X = RNG.standard_normal((64, 12)).astype(np.float32)
Y = RNG.integers(0, 4, 64).astype(np.int32)


def mlp(dropout: float = 0.0, batch_norm: bool = False, seed: int = 3):
    pynn.utils.set_random_seed(seed)
    inp = pynn.Input((12,))
    h = layers.Dense(16, activation="relu")(inp)
    if batch_norm:
        h = layers.BatchNormalization()(h)
    if dropout:
        h = layers.Dropout(dropout)(h)
    return pynn.Model(inp, layers.Dense(4)(h))


def torch_mlp(model):
    """PyTorch's version of mlp(), with the model's weights."""
    net = torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    with torch.no_grad():
        for lin, layer in zip((net[0], net[2]), model.layers[1:]):
            lin.weight.copy_(torch.from_numpy(layer.kernel.numpy().T))
            lin.bias.copy_(torch.from_numpy(layer.bias.numpy()))
    return net


def sparse_ce():
    return pynn.losses.SparseCategoricalCrossentropy(from_logits=True)


def batches(n=64, bs=16):
    return [slice(i, i + bs) for i in range(0, n, bs)]


# -- acceptance: fit and the imperative loop end with the same weights ---------------------------
@pytest.mark.parametrize("dropout,batch_norm", [(0.0, False), (0.3, True)])
def test_fit_and_imperative_loops_give_the_same_weights(dropout, batch_norm):
    ref = mlp(dropout, batch_norm)
    w0 = ref.get_weights()
    ref.compile(optimizer=pynn.optimizers.Adam(1e-2), loss=sparse_ce())
    ref.fit(X, Y, batch_size=16, epochs=2, shuffle=False, verbose=0)

    # Keras style: GradientTape + optimizer.apply
    tape_model = mlp(dropout, batch_norm)
    tape_model.set_weights(w0)
    opt = pynn.optimizers.Adam(1e-2)
    for _ in range(2):
        for b in batches():
            with pynn.GradientTape() as tape:
                loss = sparse_ce()(Y[b], tape_model(X[b], training=True))
            grads = tape.gradient(loss, tape_model.trainable_weights)
            opt.apply(grads, tape_model.trainable_weights)

    # PyTorch style: zero_grad, backward, step
    torch_style = mlp(dropout, batch_norm)
    torch_style.set_weights(w0)
    opt2 = pynn.optimizers.Adam(1e-2)
    opt2.build(torch_style.trainable_weights)
    for _ in range(2):
        for b in batches():
            opt2.zero_grad()
            sparse_ce()(Y[b], torch_style(X[b], training=True)).backward()
            opt2.step()

    for other in (tape_model, torch_style):
        for a, b in zip(ref.get_weights(), other.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert opt.iterations == opt2.iterations == 8


def test_imperative_loop_matches_pytorch():
    model = mlp()
    net = torch_mlp(model)
    opt = pynn.optimizers.SGD(0.1, momentum=0.9)
    opt.build(model.trainable_weights)
    topt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for b in batches():
        opt.zero_grad()
        loss = sparse_ce()(Y[b], model(X[b], training=True))
        loss.backward()
        opt.step()
        topt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(net(torch.from_numpy(X[b])),
                                                  torch.from_numpy(Y[b]).long())
        tloss.backward()
        topt.step()
        assert float(loss) == pytest.approx(tloss.item(), rel=1e-5)
    np.testing.assert_allclose(model.layers[1].kernel, net[0].weight.detach().numpy().T,
                               rtol=1e-5, atol=1e-6)


# -- the tape ------------------------------------------------------------------------------------
def test_model_call_returns_a_tensor_that_numpy_reads_without_copy():
    model = mlp()
    out = model(X[:5])
    assert isinstance(out, pynn.Tensor) and out.shape == (5, 4) and out.dtype == np.float32
    assert not out.requires_grad and out._op is None  # inference outside a tape records nothing
    view = np.asarray(out)
    assert not view.flags.writeable
    np.testing.assert_allclose(view, model.predict(X[:5], verbose=0), rtol=1e-6)
    assert model(X[:5], training=True)._op == "model"


def test_gradients_of_a_model_call_agree_with_the_core_and_accumulate():
    model = mlp()
    model.compile(optimizer="sgd", loss=sparse_ce())
    core_loss, _ = model._core.gradients(X[:16], Y[:16])
    want = [np.array(model._core.gradient(w._vid)) for w in model.trainable_weights]
    model.zero_grad()
    loss = sparse_ce()(Y[:16], model(X[:16], training=True))
    assert float(loss) == pytest.approx(core_loss, rel=1e-6)
    loss.backward()
    for w, g in zip(model.trainable_weights, want):
        np.testing.assert_allclose(w.grad, g, rtol=1e-5, atol=1e-7)
    # a second loss adds its gradient (PyTorch's accumulation)
    sparse_ce()(Y[:16], model(X[:16], training=True)).backward()
    for w, g in zip(model.trainable_weights, want):
        np.testing.assert_allclose(w.grad, 2 * g, rtol=1e-5, atol=1e-7)


def test_a_model_called_twice_before_backward_sums_both_gradients():
    model = mlp()
    a, b = X[:8], X[8:16]
    loss = sparse_ce()(Y[:8], model(a, training=True)) + \
        sparse_ce()(Y[8:16], model(b, training=True))
    model.zero_grad()
    loss.backward()
    both = [np.array(w.grad) for w in model.trainable_weights]
    model.zero_grad()
    sparse_ce()(Y[:8], model(a, training=True)).backward()
    sparse_ce()(Y[8:16], model(b, training=True)).backward()
    for w, g in zip(model.trainable_weights, both):
        np.testing.assert_allclose(w.grad, g, rtol=1e-5, atol=1e-7)


def test_input_gradient_through_a_model_matches_pytorch():
    model = mlp()
    net = torch_mlp(model)
    x = pynn.Tensor(X[:6], requires_grad=True)
    sparse_ce()(Y[:6], model(x)).backward()
    xt = torch.from_numpy(X[:6]).requires_grad_()
    torch.nn.functional.cross_entropy(net(xt), torch.from_numpy(Y[:6]).long()).backward()
    np.testing.assert_allclose(x.grad, xt.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_backward_errors_are_clear():
    model = mlp()
    out = model(X[:4], training=True)
    with pytest.raises(ValueError, match="one value"):
        out.backward()
    loss = sparse_ce()(Y[:4], out)
    loss.backward()
    with pytest.raises(RuntimeError, match="second time"):
        loss.backward()
    with pytest.raises(RuntimeError, match="does not require a gradient"):
        model(X[:4]).backward(np.ones((4, 4), np.float32))
    with pytest.raises(ValueError, match="shape"):
        sparse_ce()(Y[:4], model(X[:4], training=True)).backward(np.ones(3, np.float32))


def test_no_grad_records_nothing():
    model = mlp()
    with pynn.no_grad():
        out = model(X[:4], training=True)
    assert out._op is None and not out.requires_grad
    assert model(X[:4], training=True)._op == "model"


def test_gradient_tape_records_inference_calls_and_returns_tensors():
    model = mlp()
    with pynn.GradientTape() as tape:
        loss = sparse_ce()(Y[:8], model(X[:8]))
    grads = tape.gradient(loss, model.trainable_weights)
    assert [g.shape for g in grads] == [w.shape for w in model.trainable_weights]
    assert all(isinstance(g, pynn.Tensor) for g in grads)
    with pytest.raises(RuntimeError, match="once"):
        tape.gradient(loss, model.trainable_weights)


def test_layers_called_on_data_run_their_ops_on_the_tape():
    dense = layers.Dense(3, activation="tanh")
    x = pynn.Tensor(X[:5], requires_grad=True)
    y = dense(x)
    assert y.shape == (5, 3) and y._op == "tanh"
    np.testing.assert_allclose(np.asarray(y), np.tanh(X[:5] @ dense.kernel + dense.bias),
                               rtol=1e-5, atol=1e-6)
    sparse = sparse_ce()(Y[:5] % 3, y)
    sparse.backward()
    # PyTorch on the same weights
    xt = torch.from_numpy(X[:5]).requires_grad_()
    k = torch.from_numpy(np.array(dense.kernel)).requires_grad_()
    b = torch.from_numpy(np.array(dense.bias)).requires_grad_()
    torch.nn.functional.cross_entropy(torch.tanh(xt @ k + b),
                                      torch.from_numpy(Y[:5] % 3).long()).backward()
    np.testing.assert_allclose(x.grad, xt.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(dense.kernel.grad, k.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(dense.bias.grad, b.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_layers_of_a_built_model_called_on_data_share_its_weights_and_gradients():
    model = mlp()
    first = model.layers[1]
    h = first(X[:4], training=True)
    np.testing.assert_allclose(np.asarray(h), np.maximum(X[:4] @ first.kernel + first.bias, 0),
                               rtol=1e-5, atol=1e-6)
    model.zero_grad()
    h.sum().backward()
    assert np.abs(first.kernel.grad).sum() > 0


def test_conv_and_pool_layers_on_data_match_the_model():
    pynn.utils.set_random_seed(0)
    model = pynn.Sequential([pynn.Input((8, 8, 2)), layers.Conv2D(4, 3, activation="relu"),
                             layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(3)])
    x = RNG.standard_normal((3, 8, 8, 2)).astype(np.float32)
    h = x
    for layer in model.layers:
        h = layer(h)
    np.testing.assert_allclose(np.asarray(h), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_optimizer_apply_on_some_variables_updates_only_those():
    model = mlp()
    before = model.get_weights()
    opt = pynn.optimizers.SGD(0.5)
    with pynn.GradientTape() as tape:
        loss = sparse_ce()(Y[:8], model(X[:8], training=True))
    first = model.layers[1].trainable_weights
    grads = tape.gradient(loss, first)
    opt.apply(grads, first)
    after = model.get_weights()
    np.testing.assert_allclose(after[0], before[0] - 0.5 * np.asarray(grads[0]), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_array_equal(after[2], before[2])
    np.testing.assert_array_equal(after[3], before[3])


def test_optimizer_errors_are_clear():
    model, other = mlp(), mlp()
    opt = pynn.optimizers.Adam()
    with pytest.raises(ValueError, match="build"):
        opt.step()
    with pytest.raises(ValueError, match="2 gradients for 4"):
        opt.apply([np.zeros(1)] * 2, model.trainable_weights)
    with pytest.raises(ValueError, match="shape"):
        opt.apply([np.zeros((2, 2))] * 4, model.trainable_weights)
    # variables of two models (a VAE's encoder and decoder): each model takes its update
    before = [w.numpy() for w in model.trainable_weights[:1] + other.trainable_weights[:1]]
    opt.apply([np.ones(w.shape) for w in model.trainable_weights[:2] +
               other.trainable_weights[:2]],
              model.trainable_weights[:2] + other.trainable_weights[:2])
    after = [w.numpy() for w in model.trainable_weights[:1] + other.trainable_weights[:1]]
    assert all((a < b).all() for a, b in zip(after, before))
    lone = layers.Dense(3).add_weight((12, 3))
    with pytest.raises(ValueError, match="belongs to none"):
        opt.apply([np.zeros((12, 3))], [lone])


def test_bad_inputs_to_a_model_call_raise():
    model = mlp()
    with pytest.raises(ValueError, match="shape"):
        model(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="shape"):
        model(pynn.Tensor(np.zeros((2, 5), np.float32)))


def test_several_inputs_and_outputs_train_imperatively_as_fit_does():
    def make():
        pynn.utils.set_random_seed(7)
        a, b = pynn.Input((5,), name="a"), pynn.Input((3,), name="b")
        h = layers.Dense(8, activation="tanh")(layers.Concatenate()([a, b]))
        head1 = layers.Dense(2, name="reg")(h)
        head2 = layers.Dense(4, name="cls")(layers.Add()([h, layers.Dense(8)(head1)]))
        return pynn.Model([a, b], [head1, head2])

    rng = np.random.default_rng(1)
    xa = rng.standard_normal((32, 5)).astype(np.float32)
    xb = rng.standard_normal((32, 3)).astype(np.float32)
    y1 = rng.standard_normal((32, 2)).astype(np.float32)
    y2 = rng.integers(0, 4, 32).astype(np.int32)
    ref = make()
    ref.compile(optimizer=pynn.optimizers.SGD(0.1),
                loss=["mse", pynn.losses.SparseCategoricalCrossentropy(from_logits=True)],
                loss_weights=[0.5, 2.0])
    model = make()
    model.set_weights(ref.get_weights())
    opt = pynn.optimizers.SGD(0.1)
    mse = pynn.losses.MeanSquaredError()
    for b in batches(32, 8):
        ref.train_on_batch([xa[b], xb[b]], [y1[b], y2[b]])
        with pynn.GradientTape() as tape:
            reg, cls = model([xa[b], xb[b]], training=True)
            loss = 0.5 * mse(y1[b], reg) + 2.0 * sparse_ce()(y2[b], cls)
        opt.apply(tape.gradient(loss, model.trainable_weights), model.trainable_weights)
    for w_ref, w in zip(ref.get_weights(), model.get_weights()):
        np.testing.assert_allclose(w, w_ref, rtol=1e-5, atol=1e-6)
    # an output no loss reads contributes nothing
    model.zero_grad()
    reg, cls = model([xa[:4], xb[:4]], training=True)
    sparse_ce()(y2[:4], cls).backward()
    assert np.abs(model.get_layer("cls").kernel.grad).sum() > 0


def test_a_layer_called_on_variables_under_a_tape_gives_them_their_gradients():
    """A Variable passed to a built-in layer (or in a list to a traced one) is tracked, as
    Keras's tape tracks variables: no silent None gradient."""
    x = pynn.Variable(np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32))
    dense = pynn.layers.Dense(2)
    with pynn.GradientTape() as tape:
        loss = pynn.ops.sum(dense(x))
    (g,) = tape.gradient(loss, [x])
    want = np.broadcast_to(dense.get_weights()[0].sum(1), (2, 3, 4))
    np.testing.assert_allclose(np.asarray(g), want, rtol=1e-6)
    attention = pynn.layers.Attention()
    with pynn.GradientTape() as tape:
        loss = pynn.ops.sum(attention([x, x]))
    assert all(g is not None for g in tape.gradient(loss, [x]))
