"""Recurrent layers: SimpleRNN, LSTM, GRU, Bidirectional, TimeDistributed.

PyTorch (float64) is the reference: nn.RNN, nn.LSTM and nn.GRU with pynn's weights mapped in
(PyTorch's gate orders are i,f,g,o and r,z,n; its two GRU biases are Keras's reset_after=True),
and a reference written here for GRU with reset_after=False. Outputs, the input gradient and
every weight gradient must agree to float32 precision. Dropout is checked by finite differences
with the masks held fixed (the random state restored before each evaluation).
"""

import numpy as np
import pytest
import torch
from helpers import grad_check, numeric_gradient

import pynn
from pynn import layers as L

RTOL, ATOL = 2e-4, 2e-5


def _t(a):
    return torch.tensor(np.asarray(a, dtype=np.float64))


# -- torch references ------------------------------------------------------------------------
def _gru_perm(w, u):
    """Keras's z, r, h columns (last axis) -> PyTorch's r, z, n."""
    return torch.cat([w[..., u:2 * u], w[..., :u], w[..., 2 * u:]], dim=-1)


def _gru_no_reset_after(x, kernel, rec, bias, h, act=torch.tanh):
    """Keras's GRU with reset_after=False, step by step: (sequence, last h)."""
    u = rec.shape[0]
    outs = []
    for t in range(x.shape[1]):
        xz = x[:, t] @ kernel + (bias if bias is not None else 0)
        z = torch.sigmoid(xz[:, :u] + h @ rec[:, :u])
        r = torch.sigmoid(xz[:, u:2 * u] + h @ rec[:, u:2 * u])
        hh = act(xz[:, 2 * u:] + (r * h) @ rec[:, 2 * u:])
        h = z * h + (1 - z) * hh
        outs.append(h)
    return torch.stack(outs, 1), h


def torch_rnn(layer, weights, x, h0=None, c0=None):
    """The layer in torch on x (float64 tensors, weights in pynn's layout and requiring grads):
    (sequence in processing order, last h, last c or None)."""
    u = layer.units
    kernel, rec = weights[0], weights[1]
    bias = weights[2] if layer.use_bias else None
    xs = x.flip(1) if layer.go_backwards else x
    b = x.shape[0]
    h0 = torch.zeros(b, u, dtype=torch.float64) if h0 is None else h0
    if isinstance(layer, L.GRU) and not layer.reset_after:
        seq, h = _gru_no_reset_after(xs, kernel, rec, bias, h0)
        return seq, h, None
    nb = bias is not None
    if isinstance(layer, L.LSTM):
        mod = torch.nn.LSTM(kernel.shape[0], u, batch_first=True, bias=nb, dtype=torch.float64)
        w_ih, w_hh = kernel.T, rec.T
        b_ih = bias
        b_hh = None
    elif isinstance(layer, L.GRU):
        mod = torch.nn.GRU(kernel.shape[0], u, batch_first=True, bias=nb, dtype=torch.float64)
        w_ih, w_hh = _gru_perm(kernel, u).T, _gru_perm(rec, u).T
        b_ih = _gru_perm(bias[0], u) if bias is not None else None
        b_hh = _gru_perm(bias[1], u) if bias is not None else None
    else:
        mod = torch.nn.RNN(kernel.shape[0], u, batch_first=True, bias=nb,
                           nonlinearity=layer.activation, dtype=torch.float64)
        w_ih, w_hh, b_ih, b_hh = kernel.T, rec.T, bias, None
    params = {"weight_ih_l0": w_ih, "weight_hh_l0": w_hh}
    if b_ih is not None:
        params["bias_ih_l0"] = b_ih
        params["bias_hh_l0"] = b_hh if b_hh is not None else torch.zeros_like(b_ih)
    state = (h0[None], (c0 if c0 is not None else torch.zeros_like(h0))[None]) \
        if isinstance(layer, L.LSTM) else h0[None]
    seq, hn = torch.func.functional_call(mod, params, (xs, state))
    if isinstance(layer, L.LSTM):
        return seq, hn[0][0], hn[1][0]
    return seq, hn[0], None


def torch_outputs(layer, weights, x, states=()):
    """The layer's outputs (a list) in torch, as Keras returns them."""
    seq, h, c = torch_rnn(layer, weights, x, *states)
    out = seq if layer.return_sequences else h
    if not layer.return_state:
        return [out]
    return [out, h] + ([c] if c is not None else [])


# -- pynn side -------------------------------------------------------------------------------
def model_weights(model):
    """Every weight of the model, in order, with the core's gradient of each."""
    ws, gs = [], []
    for layer in model.layers:
        for attr, vid in zip(layer._weight_attrs, layer._var_ids):
            ws.append(np.array(getattr(layer, attr)))
            gs.append(np.array(model._core.gradient(vid)))
    return ws, gs


def pynn_grads(model, x, ys):
    model.compile(optimizer="sgd", loss="mse")
    loss, dx = model._core.gradients(x, ys if len(ys) > 1 else ys[0], True)
    ws, gs = model_weights(model)
    return loss, np.array(dx), ws, gs


def randomize(model, seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.uniform(-scale, scale, w.shape).astype(np.float32))


def check_parity(model, torch_fn, x, seed=1):
    """model (functional or Sequential) vs torch_fn(x, weights) -> list of outputs."""
    randomize(model, seed)
    outs = model.predict(x, verbose=0)
    outs = outs if isinstance(outs, list) else [outs]
    rng = np.random.default_rng(seed + 1)
    ys = [rng.standard_normal(o.shape).astype(np.float32) for o in outs]
    loss, dx, ws, gs = pynn_grads(model, x, ys)
    tx = _t(x).requires_grad_(True)
    tw = [_t(w).requires_grad_(True) for w in ws]
    touts = torch_fn(tx, tw)
    assert len(touts) == len(outs)
    for o, to in zip(outs, touts):
        np.testing.assert_allclose(o, to.detach().numpy(), rtol=RTOL, atol=ATOL)
    tloss = sum(((to - _t(y)) ** 2).mean() for to, y in zip(touts, ys))
    tloss.backward()
    np.testing.assert_allclose(loss, tloss.item(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=RTOL, atol=ATOL)
    for g, w in zip(gs, tw):
        np.testing.assert_allclose(g, w.grad.numpy(), rtol=RTOL, atol=ATOL)


CELLS = {
    "simple_tanh": lambda **kw: L.SimpleRNN(5, **kw),
    "simple_relu": lambda **kw: L.SimpleRNN(5, activation="relu", **kw),
    "lstm": lambda **kw: L.LSTM(5, **kw),
    "gru": lambda **kw: L.GRU(5, **kw),
    "gru_reset_before": lambda **kw: L.GRU(5, reset_after=False, **kw),
}

OPTIONS = [
    dict(),
    dict(return_sequences=True),
    dict(go_backwards=True),
    dict(return_sequences=True, go_backwards=True),
    dict(return_state=True),
    dict(return_sequences=True, return_state=True, go_backwards=True),
    dict(use_bias=False, return_sequences=True),
]


def _opt_id(o):
    return "-".join(k for k, v in o.items() if v is True) + ("-nobias" if o.get("use_bias") is
                                                             False else "") or "default"


@pytest.mark.parametrize("opts", OPTIONS, ids=_opt_id)
@pytest.mark.parametrize("cell", list(CELLS))
def test_matches_torch(cell, opts):
    layer = CELLS[cell](**opts)
    inp = pynn.Input((7, 3))
    model = pynn.Model(inp, layer(inp))
    x = np.random.default_rng(0).standard_normal((4, 7, 3)).astype(np.float32)
    check_parity(model, lambda tx, tw: torch_outputs(layer, tw, tx), x)


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("batch,steps", [(1, 7), (3, 1), (2, 5)])
def test_matches_torch_batch_one_and_odd_lengths(cell, batch, steps):
    layer = CELLS[cell](return_sequences=True)
    model = pynn.Sequential([pynn.Input((steps, 4)), layer])
    x = np.random.default_rng(2).standard_normal((batch, steps, 4)).astype(np.float32)
    check_parity(model, lambda tx, tw: torch_outputs(layer, tw, tx), x)


@pytest.mark.parametrize("cell", ["simple_tanh", "lstm", "gru", "gru_reset_before"])
def test_initial_state_matches_torch_and_gets_gradients(cell):
    layer = CELLS[cell](return_sequences=True, return_state=True)
    x_in = pynn.Input((6, 3))
    states = [pynn.Input((5,)) for _ in range(layer.n_states)]
    outs = layer(x_in, initial_state=states)
    model = pynn.Model([x_in] + states, outs)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 6, 3)).astype(np.float32)
    s = [rng.standard_normal((3, 5)).astype(np.float32) for _ in states]
    randomize(model, 4)
    got = model.predict([x] + s, verbose=0)
    ys = [rng.standard_normal(o.shape).astype(np.float32) for o in got]
    model.compile(optimizer="sgd", loss="mse")
    loss, dxs = model._core.gradients([x] + s, ys, True)
    ws, gs = model_weights(model)
    tx = [_t(a).requires_grad_(True) for a in [x] + s]
    tw = [_t(w).requires_grad_(True) for w in ws]
    touts = torch_outputs(layer, tw, tx[0], tx[1:])
    for o, to in zip(got, touts):
        np.testing.assert_allclose(o, to.detach().numpy(), rtol=RTOL, atol=ATOL)
    sum(((to - _t(y)) ** 2).mean() for to, y in zip(touts, ys)).backward()
    for d, t in zip(dxs, tx):
        np.testing.assert_allclose(d, t.grad.numpy(), rtol=RTOL, atol=ATOL)
    for g, w in zip(gs, tw):
        np.testing.assert_allclose(g, w.grad.numpy(), rtol=RTOL, atol=ATOL)


def _torch_merge(mode, f, b):
    return {"concat": lambda: torch.cat([f, b], -1), "sum": lambda: f + b,
            "mul": lambda: f * b, "ave": lambda: (f + b) / 2}[mode]()


@pytest.mark.parametrize("mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_tanh"])
@pytest.mark.parametrize("seq", [True, False])
def test_bidirectional_matches_torch(mode, cell, seq):
    layer = L.Bidirectional(CELLS[cell](return_sequences=seq), merge_mode=mode)
    inp = pynn.Input((7, 3))
    model = pynn.Model(inp, layer(inp))
    fwd, bwd = layer.forward_layer, layer.backward_layer
    nf = len(fwd._weight_attrs)
    x = np.random.default_rng(5).standard_normal((3, 7, 3)).astype(np.float32)

    def ref(tx, tw):
        f = torch_outputs(fwd, tw[:nf], tx)[0]
        b = torch_outputs(bwd, tw[nf:], tx)[0]
        if seq:
            b = b.flip(1)  # back in input order
        return [f, b] if mode is None else [_torch_merge(mode, f, b)]
    check_parity(model, ref, x)


def test_bidirectional_return_state_gives_both_directions_states():
    layer = L.Bidirectional(L.LSTM(4, return_sequences=True, return_state=True))
    inp = pynn.Input((5, 3))
    outs = layer(inp)
    assert [o.shape for o in outs] == [(None, 5, 8)] + [(None, 4)] * 4
    model = pynn.Model(inp, outs)
    fwd, bwd = layer.forward_layer, layer.backward_layer
    x = np.random.default_rng(6).standard_normal((2, 5, 3)).astype(np.float32)

    def ref(tx, tw):
        f = torch_outputs(fwd, tw[:3], tx)
        b = torch_outputs(bwd, tw[3:], tx)
        return [torch.cat([f[0], b[0].flip(1)], -1)] + f[1:] + b[1:]
    check_parity(model, ref, x)


def test_stacked_model_with_time_distributed_dense_matches_torch():
    lstm = L.LSTM(6, return_sequences=True)
    td = L.TimeDistributed(L.Dense(2))
    model = pynn.Sequential([pynn.Input((5, 3)), lstm, td])
    x = np.random.default_rng(7).standard_normal((3, 5, 3)).astype(np.float32)

    def ref(tx, tw):
        seq = torch_outputs(lstm, tw[:3], tx)[0]
        return [seq @ tw[3] + tw[4]]
    check_parity(model, ref, x)


def _lstm_reference(x, kernel, rec, bias, act, ract):
    u = rec.shape[0]
    h = c = torch.zeros(x.shape[0], u, dtype=torch.float64)
    outs = []
    for t in range(x.shape[1]):
        z = x[:, t] @ kernel + h @ rec + bias
        i, f, g, o = ract(z[:, :u]), ract(z[:, u:2 * u]), act(z[:, 2 * u:3 * u]), ract(z[:, 3 * u:])
        c = f * c + i * g
        h = o * act(c)
        outs.append(h)
    return torch.stack(outs, 1)


@pytest.mark.parametrize("act,ract", [("relu", "hard_sigmoid"), ("linear", "tanh"),
                                      ("sigmoid", "sigmoid")])
def test_lstm_other_activations_match_a_torch_reference(act, ract):
    fns = {"relu": torch.relu, "hard_sigmoid": torch.nn.functional.hardsigmoid,
           "linear": lambda z: z, "tanh": torch.tanh, "sigmoid": torch.sigmoid}
    layer = L.LSTM(4, activation=act, recurrent_activation=ract, return_sequences=True)
    model = pynn.Sequential([pynn.Input((5, 3)), layer])
    x = np.random.default_rng(20).standard_normal((3, 5, 3)).astype(np.float32)
    check_parity(model, lambda tx, tw: [_lstm_reference(tx, *tw, fns[act], fns[ract])], x)


# -- training steps --------------------------------------------------------------------------
@pytest.mark.parametrize("opt", ["sgd", "adam"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_one_training_step_updates_weights_as_torch(opt, cell):
    layer = CELLS[cell]()
    model = pynn.Sequential([pynn.Input((6, 3)), layer, L.Dense(2)])
    randomize(model, 8)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((4, 6, 3)).astype(np.float32)
    y = rng.standard_normal((4, 2)).astype(np.float32)
    tw = [_t(w).requires_grad_(True) for w in model.weights]
    lr, b1, b2, eps = 0.05, 0.9, 0.999, 1e-3
    # Adam's epsilon well above float32's noise in near-zero gradients, whose sign it amplifies
    model.compile(optimizer=pynn.optimizers.SGD(lr) if opt == "sgd" else
                  pynn.optimizers.Adam(lr, epsilon=eps), loss="mse")
    m = [torch.zeros_like(w) for w in tw]
    v = [torch.zeros_like(w) for w in tw]
    for step in range(1, 3):
        model.train_on_batch(x, y)
        h = torch_outputs(layer, tw[:3], _t(x))[0]
        grads = torch.autograd.grad(((h @ tw[3] + tw[4] - _t(y)) ** 2).mean(), tw)
        with torch.no_grad():
            for k, (w, g) in enumerate(zip(tw, grads)):
                if opt == "sgd":
                    w -= lr * g
                else:  # Keras 3's Adam: epsilon outside the bias correction
                    m[k] = b1 * m[k] + (1 - b1) * g
                    v[k] = b2 * v[k] + (1 - b2) * g * g
                    alpha = lr * (1 - b2 ** step) ** 0.5 / (1 - b1 ** step)
                    w -= alpha * m[k] / (v[k].sqrt() + eps)
    for w, t in zip(model.weights, tw):
        np.testing.assert_allclose(np.array(w), t.detach().numpy(), rtol=1e-3, atol=1e-5)


def test_char_model_learns_a_repeating_sequence():
    pynn.utils.set_random_seed(0)
    seq = np.tile(np.arange(5), 40).astype(np.int32)
    x = np.stack([seq[i:i + 8] for i in range(0, 150)])
    y = np.stack([seq[i + 1:i + 9] for i in range(0, 150)])
    model = pynn.Sequential([pynn.Input((8,), dtype="int32"), L.Embedding(5, 8),
                             L.LSTM(16, return_sequences=True), L.Dense(5)])
    model.compile(optimizer=pynn.optimizers.Adam(0.02),
                  loss=pynn.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    hist = model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    assert hist.history["accuracy"][-1] > 0.95


# -- numerical gradients ---------------------------------------------------------------------
@pytest.mark.parametrize("opts", [dict(return_sequences=True), dict(go_backwards=True),
                                  dict(return_state=True, return_sequences=True)], ids=_opt_id)
@pytest.mark.parametrize("cell", [c for c in CELLS if c != "simple_relu"])
def test_gradients_match_finite_differences(cell, opts):
    # relu's kink makes finite differences unreliable; its gradients are checked against torch
    layer = CELLS[cell](**opts)
    inp = pynn.Input((5, 3))
    out = layer(inp)
    model = pynn.Model(inp, out[0] if isinstance(out, list) else out)
    if isinstance(out, list):  # check the states' gradient path too: output + h summed
        model = pynn.Model(inp, L.Concatenate()([L.Flatten()(out[0]), out[1]]))
    randomize(model, 10)
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(11).standard_normal((3, 5, 3)).astype(np.float32)
    y = np.random.default_rng(12).standard_normal((3,) + model.output_shape[1:]).astype(
        np.float32)
    grad_check(model, x, y, eps=1e-2, max_entries=16)


@pytest.mark.parametrize("cell", [c for c in CELLS if c != "simple_relu"])
def test_dropout_gradients_match_finite_differences_with_masks_fixed(cell):
    layer = CELLS[cell](return_sequences=True, dropout=0.3, recurrent_dropout=0.4)
    model = pynn.Sequential([pynn.Input((5, 3)), layer])
    randomize(model, 13)
    model.compile(optimizer="sgd", loss="mse")
    core = model._core
    x = np.random.default_rng(14).standard_normal((3, 5, 3)).astype(np.float32)
    y = np.random.default_rng(15).standard_normal((3, 5, 5)).astype(np.float32)
    state = core.rng_state

    def loss():
        core.rng_state = state  # the same masks every evaluation
        return core.gradients(x, y)[0]

    core.rng_state = state
    _, dx = core.gradients(x, y, True)
    dx = np.array(dx)
    grads = [np.array(core.gradient(v)) for v in layer._var_ids]
    # dropout really drops: a training forward differs from inference
    core.rng_state = state
    assert abs(loss() - core.test_step(x, y)[0]) > 1e-6
    rng = np.random.default_rng(16)
    eps = 1e-2
    for arr, g in [(x, dx)] + [(core.variable(v), gv) for v, gv in zip(layer._var_ids, grads)]:
        idx = rng.choice(arr.size, min(10, arr.size), replace=False)
        for i, num in zip(idx, numeric_gradient(loss, arr, idx, eps)):
            assert abs(num - g.reshape(-1)[i]) < 2e-3 + 1e-2 * abs(num), (i, num, g.reshape(-1)[i])


def test_dropout_masks_are_one_per_sample_for_all_steps():
    # with a linear cell, no recurrence (recurrent kernel 0) and unit kernel, h_t = x_t * mask:
    # the zeroed features are the same at every step
    layer = L.SimpleRNN(4, activation="linear", dropout=0.5, use_bias=False,
                        return_sequences=True)
    model = pynn.Sequential([pynn.Input((6, 4)), layer])
    layer.kernel.assign(np.eye(4, dtype=np.float32))
    layer.recurrent_kernel.assign(np.zeros((4, 4), np.float32))
    x = np.ones((3, 6, 4), np.float32)
    out = np.array(model(x, training=True))
    assert set(np.unique(out)) <= {0.0, 2.0}
    assert (out == out[:, :1]).all()
    assert 0 < (out == 0).sum() < out.size
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)  # inference: no dropout


# -- the imperative path ---------------------------------------------------------------------
def test_layer_called_on_data_matches_model_and_backward_reaches_weights():
    layer = L.GRU(4, return_sequences=True)
    x = np.random.default_rng(17).standard_normal((2, 5, 3)).astype(np.float32)
    out = layer(x)
    model = pynn.Sequential([pynn.Input((5, 3)), layer])
    np.testing.assert_allclose(np.array(out), model.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-6)
    o = model(x, training=True)
    (o * o).sum().backward()
    assert layer.kernel.grad is not None and np.abs(layer.kernel.grad).sum() > 0


def test_layer_called_on_data_with_return_state_gives_a_list():
    layer = L.LSTM(3, return_state=True)
    outs = layer(np.ones((2, 4, 5), np.float32))
    assert len(outs) == 3 and all(tuple(o.shape) == (2, 3) for o in outs)
    np.testing.assert_allclose(np.array(outs[0]), np.array(outs[1]))


# -- Keras semantics -------------------------------------------------------------------------
@pytest.mark.parametrize("make,params,shapes", [
    (lambda: L.SimpleRNN(8), 8 * 3 + 8 * 8 + 8, [(3, 8), (8, 8), (8,)]),
    (lambda: L.LSTM(8), 4 * (8 * 3 + 8 * 8 + 8), [(3, 32), (8, 32), (32,)]),
    (lambda: L.GRU(8), 3 * (8 * 3 + 8 * 8 + 2 * 8), [(3, 24), (8, 24), (2, 24)]),
    (lambda: L.GRU(8, reset_after=False), 3 * (8 * 3 + 8 * 8 + 8), [(3, 24), (8, 24), (24,)]),
    (lambda: L.LSTM(8, use_bias=False), 4 * (8 * 3 + 8 * 8), [(3, 32), (8, 32)]),
])
def test_weight_shapes_names_and_param_counts_are_keras(make, params, shapes):
    layer = make()
    model = pynn.Sequential([pynn.Input((10, 3)), layer])
    assert model.count_params() == params
    assert [w.shape for w in layer.weights] == shapes
    names = ["kernel", "recurrent_kernel", "bias"][:len(shapes)]
    assert [w.name for w in layer.weights] == names
    cell = {L.SimpleRNN: "simple_rnn_cell", L.LSTM: "lstm_cell", L.GRU: "gru_cell"}[type(layer)]
    assert [w.path for w in layer.weights] == [f"{layer.name}/{cell}/{n}" for n in names]


def test_defaults_are_keras():
    lstm = L.LSTM(4)
    pynn.Sequential([pynn.Input((3, 2)), lstm])
    assert (lstm.activation, lstm.recurrent_activation) == ("tanh", "sigmoid")
    np.testing.assert_array_equal(lstm.bias, [0] * 4 + [1] * 4 + [0] * 8)  # unit_forget_bias
    u = np.array(lstm.recurrent_kernel)
    np.testing.assert_allclose(u @ u.T, np.eye(4), atol=1e-5)  # orthogonal rows
    assert not any([lstm.return_sequences, lstm.return_state, lstm.go_backwards])
    assert L.GRU(3).reset_after is True
    cfg = L.LSTM(3).get_config()
    assert cfg["recurrent_initializer"]["class_name"] == "Orthogonal"
    assert cfg["unit_forget_bias"] is True and cfg["stateful"] is False


@pytest.mark.parametrize("layer,shape", [
    (L.LSTM(4), (None, 4)),
    (L.LSTM(4, return_sequences=True), (None, 7, 4)),
    (L.Bidirectional(L.GRU(4)), (None, 8)),
    (L.Bidirectional(L.GRU(4, return_sequences=True), merge_mode="sum"), (None, 7, 4)),
    (L.TimeDistributed(L.Dense(3)), (None, 7, 3)),
])
def test_output_shapes(layer, shape):
    model = pynn.Sequential([pynn.Input((7, 2)), layer])
    assert model.output_shape == shape
    assert model.predict(np.zeros((2, 7, 2), np.float32), verbose=0).shape == (2,) + shape[1:]


def test_bidirectional_weights_are_forward_then_backward_with_keras_paths():
    bi = L.Bidirectional(L.LSTM(3, name="enc"), name="bi")
    model = pynn.Sequential([pynn.Input((4, 2)), bi])
    assert [w.path for w in model.weights] == [
        f"bi/{d}_enc/lstm_cell/{n}" for d in ("forward", "backward")
        for n in ("kernel", "recurrent_kernel", "bias")]
    assert model.count_params() == 2 * 4 * (3 * 2 + 3 * 3 + 3)
    assert bi.backward_layer.go_backwards and not bi.forward_layer.go_backwards
    np.testing.assert_array_equal(bi.forward_layer.kernel, bi.weights[0])  # the same memory


def test_time_distributed_flatten_and_reshape_per_step():
    model = pynn.Sequential([pynn.Input((4, 2, 3)), L.TimeDistributed(L.Flatten()),
                             L.TimeDistributed(L.Reshape((3, 2)))])
    assert model.output_shape == (None, 4, 3, 2)
    x = np.arange(48, dtype=np.float32).reshape(2, 4, 2, 3)
    np.testing.assert_array_equal(model.predict(x, verbose=0), x.reshape(2, 4, 3, 2))


def test_summary_shows_shapes_and_keras_param_counts(capsys):
    inp = pynn.Input((7, 3))
    o, h, c = L.LSTM(5, return_state=True, name="enc")(inp)
    model = pynn.Model(inp, [o, h, c])
    model.summary()
    text = capsys.readouterr().out
    assert "enc (LSTM)" in text and "180" in text and "[(None, 5), (None, 5)" in text


def test_functional_config_round_trip_and_save_load(tmp_path):
    inp = pynn.Input((6, 3))
    seq, h, c = L.LSTM(4, return_sequences=True, return_state=True, name="enc")(inp)
    z = L.Bidirectional(L.GRU(3, reset_after=False), merge_mode="ave")(seq)
    dec = L.SimpleRNN(4, name="dec")(seq, initial_state=[h])
    out = L.Concatenate()([z, dec, c])
    td = L.TimeDistributed(L.Dense(2))(seq)
    model = pynn.Model(inp, [out, td])
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(18).standard_normal((5, 6, 3)).astype(np.float32)
    model.fit(x, [np.zeros((5, 11), np.float32), np.zeros((5, 6, 2), np.float32)], epochs=1,
              verbose=0)
    before = model.predict(x, verbose=0)
    clone = pynn.Model.from_config(model.get_config())
    assert [w.shape for w in clone.weights] == [w.shape for w in model.weights]
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = pynn.saving.load_model(path)
    for a, b in zip(before, loaded.predict(x, verbose=0)):
        np.testing.assert_array_equal(a, b)
    assert [w.path for w in loaded.weights] == [w.path for w in model.weights]


def test_sequential_config_round_trip_and_save_load(tmp_path):
    model = pynn.Sequential([pynn.Input((5, 2)), L.GRU(4, return_sequences=True,
                                                       go_backwards=True),
                             L.Bidirectional(L.SimpleRNN(3, activation="relu")), L.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(19).standard_normal((3, 5, 2)).astype(np.float32)
    path = tmp_path / "s.keras"
    model.save(path)
    loaded = pynn.saving.load_model(path)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    cfg = loaded.layers[0].get_config()
    assert cfg["go_backwards"] is True and cfg["reset_after"] is True


# -- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize("make,match", [
    (lambda: L.LSTM(0), "units"),
    (lambda: L.LSTM(4, activation="softmax"), "not supported in recurrent"),
    (lambda: L.GRU(4, activation="nope"), "Unknown activation"),
    (lambda: L.SimpleRNN(4, dropout=1.0), "dropout"),
    (lambda: L.LSTM(4, recurrent_dropout=-0.1), "recurrent_dropout"),
    (lambda: L.LSTM(4, stateful="yes"), "stateful"),
    (lambda: L.LSTM(4, return_sequences="yes"), "return_sequences"),
    (lambda: L.Bidirectional(L.Dense(3)), "wraps a SimpleRNN"),
    (lambda: L.Bidirectional(L.LSTM(3), merge_mode="max"), "merge_mode"),
    (lambda: L.TimeDistributed(L.Conv2D(2, 3)), "Conv2D is not supported"),
])
def test_bad_arguments_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("shape", [(5,), (5, 3, 2)])
def test_input_of_wrong_rank_is_refused(shape):
    with pytest.raises(ValueError, match="rank 3"):
        pynn.Sequential([pynn.Input(shape), L.LSTM(4)])


def test_wrong_data_shape_is_refused_and_weights_stay():
    model = pynn.Sequential([pynn.Input((5, 3)), L.LSTM(4)])
    model.compile(optimizer="sgd", loss="mse")
    before = [w.numpy() for w in model.weights]
    with pytest.raises(ValueError):
        model.fit(np.zeros((2, 4, 3), np.float32), np.zeros((2, 4), np.float32), verbose=0)
    with pytest.raises(ValueError):
        model.predict(np.zeros((2, 5), np.float32), verbose=0)
    with pytest.raises(ValueError, match="rank 3"):
        L.GRU(3)(np.zeros((2, 5), np.float32))
    for a, b in zip(before, model.weights):
        np.testing.assert_array_equal(a, b)


def test_return_state_in_sequential_is_refused():
    with pytest.raises(ValueError, match="functional API"):
        pynn.Sequential([pynn.Input((5, 3)), L.LSTM(4, return_state=True)])


def test_initial_state_of_wrong_size_is_refused():
    inp = pynn.Input((5, 3))
    with pytest.raises(ValueError, match="initial state"):
        L.LSTM(4)(inp, initial_state=[pynn.Input((3,)), pynn.Input((4,))])
    with pytest.raises(ValueError, match="initial state"):
        L.LSTM(4)(inp, initial_state=[pynn.Input((4,))])


@pytest.mark.parametrize("opts", [dict(return_sequences=True),
                                  dict(return_sequences=True, go_backwards=True),
                                  dict(return_state=True)], ids=_opt_id)
def test_larger_lstm_on_two_threads_matches_torch(opts):
    # 64 units and 32 rows: every GEMM and gate pass of a step is split over the threads
    previous = pynn.get_num_threads()
    pynn.set_num_threads(2)
    try:
        layer = L.LSTM(64, **opts)
        inp = pynn.Input((6, 8))
        model = pynn.Model(inp, layer(inp))
        x = np.random.default_rng(21).standard_normal((32, 6, 8)).astype(np.float32)
        check_parity(model, lambda tx, tw: torch_outputs(layer, tw, tx), x)
    finally:
        pynn.set_num_threads(previous)


# The lstm's steps run on threads that own panels of 16 units, with a 6-row kernel, once a step
# has B 4U U >= 2^16 multiply-adds: units past whole panels, rows past whole tiles, one row.
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("batch,units,opts", [
    (13, 37, dict(return_sequences=True, go_backwards=True)),
    (1, 131, dict(return_state=True)),
    (7, 64, dict(return_sequences=True, use_bias=False)),
    (6, 16, dict(return_sequences=True)),
    (8, 48, dict(return_sequences=True)),
], ids=["13x37", "1x131", "7x64", "6x16", "8x48"])
def test_lstm_steps_at_ragged_sizes_match_torch(threads, batch, units, opts):
    previous = pynn.get_num_threads()
    pynn.set_num_threads(threads)
    try:
        layer = L.LSTM(units, **opts)
        inp = pynn.Input((4, 5))
        model = pynn.Model(inp, layer(inp))
        x = np.random.default_rng(31).standard_normal((batch, 4, 5)).astype(np.float32)
        check_parity(model, lambda tx, tw: torch_outputs(layer, tw, tx), x, seed=32)
    finally:
        pynn.set_num_threads(previous)


def test_lstm_steps_with_dropout_agree_on_one_and_two_threads():
    # the masks come from the random state, so both runs drop the same values; each output and
    # gradient is computed in the same order whatever thread owns it
    layer = L.LSTM(37, return_sequences=True, dropout=0.2, recurrent_dropout=0.3)
    model = pynn.Sequential([pynn.Input((4, 5)), layer])
    randomize(model, 33)
    model.compile(optimizer="sgd", loss="mse")
    core = model._core
    x = np.random.default_rng(34).standard_normal((13, 4, 5)).astype(np.float32)
    y = np.random.default_rng(35).standard_normal((13, 4, 37)).astype(np.float32)
    state = core.rng_state
    previous = pynn.get_num_threads()
    runs = []
    try:
        for threads in (1, 2):
            pynn.set_num_threads(threads)
            core.rng_state = state
            loss, dx = core.gradients(x, y, True)
            runs.append([loss, np.array(dx)] + [np.array(core.gradient(v))
                                                 for v in layer._var_ids])
    finally:
        pynn.set_num_threads(previous)
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_lstm_with_saturated_gates_matches_torch():
    # pre-activations far past the clamps of the step loop's sigmoid (+-87) and tanh (+-7.9)
    layer = L.LSTM(16, return_sequences=True)
    model = pynn.Sequential([pynn.Input((5, 3)), layer])
    x = 200.0 * np.random.default_rng(36).standard_normal((3, 5, 3)).astype(np.float32)
    check_parity(model, lambda tx, tw: torch_outputs(layer, tw, tx), x, seed=37)


# -- an embedding folded into the recurrent layer ---------------------------------------------
# When an Embedding's output feeds only a recurrent layer (no input dropout) and its table has at
# most steps x batch rows, a plan folds it into the layer: the layer multiplies the table by its
# kernel once and takes each step's input projection as the row its index picks (the lstm's
# steps start their product from it), and sums its gate gradients by index into the table's and
# the kernel's gradients. pynn._core._debug_folds(False) turns it off.
def _embedding_lstm(vocab, steps, units, cell="lstm", **opts):
    layer = {"lstm": L.LSTM, "gru": L.GRU, "simple": L.SimpleRNN}[cell](units, **opts)
    inp = pynn.Input((steps,), dtype="int32")
    out = layer(L.Embedding(vocab, 6)(inp))
    return pynn.Model(inp, out), layer


def _pynn_weight_grads(model, ids, ys):
    model.compile(optimizer="sgd", loss="mse")
    loss, _ = model._core.gradients(ids, ys if len(ys) > 1 else ys[0], False)
    return (loss, *model_weights(model))


def _check_embedding_parity(model, layer, ids, threads):
    previous = pynn.get_num_threads()
    pynn.set_num_threads(threads)
    try:
        randomize(model, 40)
        outs = model.predict(ids, verbose=0)
        outs = outs if isinstance(outs, list) else [outs]
        rng = np.random.default_rng(42)
        ys = [rng.standard_normal(o.shape).astype(np.float32) for o in outs]
        loss, ws, gs = _pynn_weight_grads(model, ids, ys)
    finally:
        pynn.set_num_threads(previous)
    tw = [_t(w).requires_grad_(True) for w in ws]
    touts = torch_outputs(layer, tw[1:], tw[0][torch.from_numpy(ids).long()])
    for o, to in zip(outs, touts):
        np.testing.assert_allclose(o, to.detach().numpy(), rtol=RTOL, atol=ATOL)
    tloss = sum(((to - _t(y)) ** 2).mean() for to, y in zip(touts, ys))
    tloss.backward()
    np.testing.assert_allclose(loss, tloss.item(), rtol=1e-4, atol=1e-6)
    for g, w in zip(gs, tw):
        np.testing.assert_allclose(g, w.grad.numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("vocab,batch,steps,units,opts", [
    (7, 13, 5, 37, dict(return_sequences=True, go_backwards=True)),
    (7, 3, 4, 5, dict(return_state=True)),
    (20, 32, 6, 64, dict(return_sequences=True)),
    (5, 8, 3, 48, dict(return_sequences=True, use_bias=False)),
    (40, 3, 4, 16, dict(return_sequences=True)),  # 40 rows > 12 steps: not folded
], ids=["13x37-back", "3x5-state", "32x64", "8x48-nobias", "unfolded"])
def test_embedding_into_lstm_matches_torch(threads, vocab, batch, steps, units, opts):
    model, layer = _embedding_lstm(vocab, steps, units, **opts)
    ids = np.random.default_rng(41).integers(0, vocab, (batch, steps)).astype(np.int32)
    _check_embedding_parity(model, layer, ids, threads)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("cell,opts", [
    ("gru", dict(return_sequences=True, go_backwards=True)),
    ("gru", dict(reset_after=False, return_state=True)),
    ("simple", dict(return_sequences=True)),
    ("simple", dict(go_backwards=True, use_bias=False)),
], ids=["gru-back", "gru-reset-before-state", "simple", "simple-back-nobias"])
def test_embedding_into_gru_and_simple_rnn_matches_torch(threads, cell, opts):
    model, layer = _embedding_lstm(9, 6, 40, cell, **opts)
    ids = np.random.default_rng(52).integers(0, 9, (16, 6)).astype(np.int32)
    _check_embedding_parity(model, layer, ids, threads)


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple"])
def test_folded_embedding_gradients_match_finite_differences(cell):
    model, _ = _embedding_lstm(7, 5, 6, cell, return_sequences=True, go_backwards=True)
    randomize(model, 49)
    model.compile(optimizer="sgd", loss="mse")
    ids = np.random.default_rng(50).integers(0, 7, (4, 5)).astype(np.int32)
    y = np.random.default_rng(51).standard_normal((4, 5, 6)).astype(np.float32)
    grad_check(model, ids, y, eps=1e-2, max_entries=16, check_input=False)


def _folded_and_not(make, ids, ys, rng_state=None):
    """[loss, weight gradients...] of make() with the fold allowed, then without (same weights)."""
    runs = []
    for on in (True, False):
        previous = pynn._core._debug_folds(on)
        try:
            model = make()
            randomize(model, 43)
            if rng_state is not None:
                model._core.rng_state = rng_state
            loss, _, gs = _pynn_weight_grads(model, ids, ys)
            runs.append([loss] + gs)
        finally:
            pynn._core._debug_folds(previous)
    return runs


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple"])
def test_folded_embedding_with_recurrent_dropout_matches_the_unfolded_path(cell):
    # the recurrent mask comes from the random state and the node, the same on both paths
    pynn.utils.set_random_seed(44)
    ids = np.random.default_rng(45).integers(0, 9, (16, 7)).astype(np.int32)
    y = np.random.default_rng(46).standard_normal((16, 7, 24)).astype(np.float32)
    state = _embedding_lstm(9, 7, 24)[0]._core.rng_state
    runs = _folded_and_not(lambda: _embedding_lstm(9, 7, 24, cell, return_sequences=True,
                                                   recurrent_dropout=0.3)[0], ids, [y], state)
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # the fold did run: the table's and the kernel's gradients are summed in another order
    assert not all(np.array_equal(a, b) for a, b in zip(runs[0][1:3], runs[1][1:3]))


@pytest.mark.parametrize("other", ["reader", "output", "shared_table"])
def test_embedding_with_another_use_is_not_folded(other):
    # another reader of the embedding's output, the output itself, or the table used twice:
    # the embedding must run (its output is needed), so both settings give the same bits
    inp = pynn.Input((5,), dtype="int32")
    emb = L.Embedding(6, 4)

    def make():
        e = emb(inp)
        h = L.LSTM(8)(e)
        if other == "reader":
            return pynn.Model(inp, L.Concatenate()([h, L.Flatten()(e)]))
        if other == "output":
            return pynn.Model(inp, [h, e])
        return pynn.Model(inp, L.Concatenate()([h, L.Flatten()(emb(inp))]))
    ids = np.random.default_rng(47).integers(0, 6, (4, 5)).astype(np.int32)
    rng = np.random.default_rng(48)
    shapes = [(4, 8), (4, 5, 4)] if other == "output" else [(4, 28)]
    ys = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    runs = _folded_and_not(make, ids, ys)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
