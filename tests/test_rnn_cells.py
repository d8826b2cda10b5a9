"""Keras's generic recurrent API: SimpleRNNCell, LSTMCell, GRUCell, StackedRNNCells, RNN(cell).

RNN over built-in cells runs the fused ops of SimpleRNN, LSTM and GRU (one per cell of a stack):
it must compute exactly what those layers compute with the same weights. Any other cell (a
user's, or a subclass of a built-in one, which may change call()) is unrolled step by step into
the core graph; its results must agree with the fused ops. PyTorch's nn.RNNCell, nn.LSTMCell and
nn.GRUCell run in a Python loop (float64) as the reference for values and gradients (its gate
orders are i,f,g,o and r,z,n; its GRUCell is Keras's reset_after=True).
"""

import copy

import numpy as np
import pytest
import torch
from helpers import grad_check

import pynn
from pynn import layers as L
from pynn import ops

RTOL, ATOL = 2e-4, 2e-5


def _t(a):
    return torch.tensor(np.asarray(a, dtype=np.float64))


def _data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# -- cells run unrolled: subclasses (RNN fuses only the built-in classes themselves) ----------
class UnrolledSimpleRNNCell(L.SimpleRNNCell):
    def call(self, inputs, states, training=None):
        return super().call(inputs, states, training=training)


class UnrolledLSTMCell(L.LSTMCell):
    def call(self, inputs, states, training=None):
        return super().call(inputs, states, training=training)


class UnrolledGRUCell(L.GRUCell):
    def call(self, inputs, states, training=None):
        return super().call(inputs, states, training=training)


UNROLLED = {L.SimpleRNNCell: UnrolledSimpleRNNCell, L.LSTMCell: UnrolledLSTMCell,
            L.GRUCell: UnrolledGRUCell}
FUSED = {L.SimpleRNNCell: L.SimpleRNN, L.LSTMCell: L.LSTM, L.GRUCell: L.GRU}

CELLS = {
    "simple": (L.SimpleRNNCell, {}),
    "simple_relu": (L.SimpleRNNCell, {"activation": "relu"}),
    "lstm": (L.LSTMCell, {}),
    "lstm_nobias": (L.LSTMCell, {"use_bias": False}),
    "lstm_hard_sigmoid": (L.LSTMCell, {"recurrent_activation": "hard_sigmoid"}),
    "gru": (L.GRUCell, {}),
    "gru_reset_before": (L.GRUCell, {"reset_after": False}),
}

OPTIONS = [
    dict(),
    dict(return_sequences=True),
    dict(go_backwards=True),
    dict(return_sequences=True, go_backwards=True),
    dict(return_state=True),
    dict(return_sequences=True, return_state=True, go_backwards=True),
]


def _opt_id(o):
    return "-".join(k for k, v in o.items() if v is True) or "default"


@pynn.saving.register_keras_serializable(package="test_rnn_cells")
class MinimalRNNCell(L.Layer):
    """The minimal cell of Keras's RNN docs (with tanh), written with pynn.ops."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units),
                                      initializer="uniform", name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units),
                                                initializer="uniform", name="recurrent_kernel")

    def call(self, inputs, states):
        prev_output = states[0]
        h = ops.matmul(inputs, self.kernel)
        output = ops.tanh(h + ops.matmul(prev_output, self.recurrent_kernel))
        return output, [output]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def minimal_ref(x, kernel, rec, h=None):
    """MinimalRNNCell over x in NumPy: (sequence, last h)."""
    h = np.zeros((x.shape[0], rec.shape[0]), np.float32) if h is None else h
    seq = []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ kernel + h @ rec)
        seq.append(h)
    return np.stack(seq, 1), h


# -- torch references ------------------------------------------------------------------------
def _gru_perm(w, u):
    """Keras's z, r, h columns (last axis) -> PyTorch's r, z, n."""
    return torch.cat([w[..., u:2 * u], w[..., :u], w[..., 2 * u:]], dim=-1)


def torch_cell(cell, weights):
    """One timestep of `cell` in torch with its weights in pynn's layout (float64 tensors that
    may require grad): f(x_t, states) -> (output, new states)."""
    u = cell.units
    kernel, rec = weights[0], weights[1]
    bias = weights[2] if cell.use_bias else None
    act = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid,
           "hard_sigmoid": torch.nn.functional.hardsigmoid}
    if isinstance(cell, L.GRUCell) and not cell.reset_after:  # no torch cell: written here
        def step(x, states):
            h = states[0]
            xz = x @ kernel + (bias if bias is not None else 0)
            z = torch.sigmoid(xz[:, :u] + h @ rec[:, :u])
            r = torch.sigmoid(xz[:, u:2 * u] + h @ rec[:, u:2 * u])
            hh = torch.tanh(xz[:, 2 * u:] + (r * h) @ rec[:, 2 * u:])
            h = z * h + (1 - z) * hh
            return h, [h]
        return step
    if isinstance(cell, L.LSTMCell) and cell.recurrent_activation != "sigmoid":
        ract = act[cell.recurrent_activation]

        def step(x, states):
            h, c = states
            z = x @ kernel + h @ rec + (bias if bias is not None else 0)
            i, f, o = ract(z[:, :u]), ract(z[:, u:2 * u]), ract(z[:, 3 * u:])
            c = f * c + i * torch.tanh(z[:, 2 * u:3 * u])
            h = o * torch.tanh(c)
            return h, [h, c]
        return step
    nb = bias is not None
    if isinstance(cell, L.LSTMCell):
        mod = torch.nn.LSTMCell(kernel.shape[0], u, bias=nb, dtype=torch.float64)
        params = {"weight_ih": kernel.T, "weight_hh": rec.T}
        if nb:
            params.update(bias_ih=bias, bias_hh=torch.zeros_like(bias))

        def step(x, states):
            h, c = torch.func.functional_call(mod, params, (x, tuple(states)))
            return h, [h, c]
        return step
    if isinstance(cell, L.GRUCell):
        mod = torch.nn.GRUCell(kernel.shape[0], u, bias=nb, dtype=torch.float64)
        params = {"weight_ih": _gru_perm(kernel, u).T, "weight_hh": _gru_perm(rec, u).T}
        if nb:
            params.update(bias_ih=_gru_perm(bias[0], u), bias_hh=_gru_perm(bias[1], u))
    else:
        mod = torch.nn.RNNCell(kernel.shape[0], u, bias=nb, nonlinearity=cell.activation,
                               dtype=torch.float64)
        params = {"weight_ih": kernel.T, "weight_hh": rec.T}
        if nb:
            params.update(bias_ih=bias, bias_hh=torch.zeros_like(bias))

    def step(x, states):
        h = torch.func.functional_call(mod, params, (x, states[0]))
        return h, [h]
    return step


def torch_rnn(rnn, weights, x, states=None):
    """RNN(cell or stack) in torch, as Keras computes it: a loop over timesteps of the cells'
    steps; returns its outputs as a list ([output, *states] with return_state)."""
    cells = rnn.cell.cells if isinstance(rnn.cell, L.StackedRNNCells) else [rnn.cell]
    steps, k = [], 0
    for c in cells:
        n = len(c.weights)
        steps.append(torch_cell(c, weights[k:k + n]))
        k += n
    b = x.shape[0]
    sizes = [[c.units] * (2 if isinstance(c, L.LSTMCell) else 1) for c in cells]
    if states is None:
        per_cell = [[torch.zeros(b, s, dtype=torch.float64) for s in ss] for ss in sizes]
    else:
        per_cell, k = [], 0
        for ss in sizes:
            per_cell.append(list(states[k:k + len(ss)]))
            k += len(ss)
    order = range(x.shape[1] - 1, -1, -1) if rnn.go_backwards else range(x.shape[1])
    outs = []
    for t in order:
        h = x[:, t]
        for j, step in enumerate(steps):
            h, per_cell[j] = step(h, per_cell[j])
        outs.append(h)
    out = torch.stack(outs, 1) if rnn.return_sequences else outs[-1]
    return [out] + [s for ss in per_cell for s in ss] if rnn.return_state else [out]


# -- the pynn side ---------------------------------------------------------------------------
def randomize(model, seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.uniform(-scale, scale, w.shape).astype(np.float32))


def model_of(layer, input_shape, n_states=0):
    """A functional model of one call of `layer` (with n_states initial-state inputs)."""
    inp = pynn.Input(input_shape)
    states = [pynn.Input((d,)) for d in n_states] if n_states else []
    out = layer(inp, initial_state=states) if states else layer(inp)
    return pynn.Model([inp] + states if states else inp, out)


def gradients(model, x, ys):
    """(outputs, loss, input gradient(s), weight gradients) of the mse of each output to ys."""
    model.compile(optimizer="sgd", loss="mse")
    outs = model.predict(x, verbose=0)
    loss, dx = model._core.gradients(x, ys if len(ys) > 1 else ys[0], True)
    dx = [np.array(d) for d in dx] if isinstance(dx, (list, tuple)) else np.array(dx)
    gs = [np.array(model._core.gradient(w._vid)) for w in model.weights]
    return (outs if isinstance(outs, list) else [outs]), loss, dx, gs


def targets(model, x, seed=7):
    outs = model.predict(x, verbose=0)
    outs = outs if isinstance(outs, list) else [outs]
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(o.shape).astype(np.float32) for o in outs]


def check_torch(model, rnn, x, states=None):
    """model's outputs, loss and gradients (input, initial states, weights) against torch."""
    xs = [x] + list(states or [])
    ys = targets(model, xs if states else x)
    outs, loss, dx, gs = gradients(model, xs if states else x, ys)
    txs = [_t(a).requires_grad_(True) for a in xs]
    tw = [_t(w).requires_grad_(True) for w in model.weights]
    touts = torch_rnn(rnn, tw, txs[0], txs[1:] if states else None)
    assert len(touts) == len(outs)
    for o, to in zip(outs, touts):
        np.testing.assert_allclose(o, to.detach().numpy(), rtol=RTOL, atol=ATOL)
    tloss = sum(((to - _t(y)) ** 2).mean() for to, y in zip(touts, ys))
    tloss.backward()
    np.testing.assert_allclose(loss, tloss.item(), rtol=1e-4, atol=1e-6)
    for d, tx in zip(dx if states else [dx], txs):
        np.testing.assert_allclose(d, tx.grad.numpy(), rtol=RTOL, atol=ATOL)
    for g, w in zip(gs, tw):
        np.testing.assert_allclose(g, w.grad.numpy(), rtol=RTOL, atol=ATOL)


# -- RNN(built-in cell) is the fused layer ---------------------------------------------------
@pytest.mark.parametrize("opts", OPTIONS, ids=_opt_id)
@pytest.mark.parametrize("name", list(CELLS))
def test_rnn_of_a_builtin_cell_computes_what_the_fused_layer_computes(name, opts):
    cls, kw = CELLS[name]
    rnn = L.RNN(cls(5, **kw), **opts)
    fused = FUSED[cls](5, **kw, **opts)
    a, b = model_of(rnn, (6, 3)), model_of(fused, (6, 3))
    assert rnn._fused() is not None
    assert [w.shape for w in a.weights] == [w.shape for w in b.weights]
    randomize(a, 1)
    b.set_weights(a.get_weights())
    x = _data(4, 6, 3)
    ys = targets(a, x)
    for got, want in zip(gradients(a, x, ys), gradients(b, x, ys)):
        for u, v in zip(got if isinstance(got, list) else [got],
                        want if isinstance(want, list) else [want]):
            np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("opts", OPTIONS, ids=_opt_id)
@pytest.mark.parametrize("name", list(CELLS))
def test_unrolled_cell_agrees_with_the_fused_op(name, opts):
    cls, kw = CELLS[name]
    rnn = L.RNN(UNROLLED[cls](5, **kw), **opts)
    fused = L.RNN(cls(5, **kw), **opts)
    a, b = model_of(rnn, (6, 3)), model_of(fused, (6, 3))
    assert rnn._fused() is None
    randomize(a, 2)
    b.set_weights(a.get_weights())
    x = _data(4, 6, 3, seed=1)
    ys = targets(a, x)
    for got, want in zip(gradients(a, x, ys), gradients(b, x, ys)):
        for u, v in zip(got if isinstance(got, list) else [got],
                        want if isinstance(want, list) else [want]):
            np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-6)


# -- PyTorch parity --------------------------------------------------------------------------
@pytest.mark.parametrize("unrolled", [False, True], ids=["fused", "unrolled"])
@pytest.mark.parametrize("opts", [dict(return_sequences=True),
                                  dict(return_state=True, go_backwards=True)], ids=_opt_id)
@pytest.mark.parametrize("name", list(CELLS))
def test_matches_torch_cells_in_a_loop(name, opts, unrolled):
    cls, kw = CELLS[name]
    rnn = L.RNN((UNROLLED[cls] if unrolled else cls)(5, **kw), **opts)
    model = model_of(rnn, (7, 3))
    randomize(model, 3)
    check_torch(model, rnn, _data(3, 7, 3, seed=2))


@pytest.mark.parametrize("unrolled", [False, True], ids=["fused", "unrolled"])
@pytest.mark.parametrize("cls", [L.LSTMCell, L.GRUCell, L.SimpleRNNCell])
def test_initial_state_matches_torch_and_gets_gradients(cls, unrolled):
    rnn = L.RNN((UNROLLED[cls] if unrolled else cls)(4), return_sequences=True,
                return_state=True)
    sizes = L.RNN(cls(4)).state_size
    sizes = sizes if isinstance(sizes, list) else [sizes]
    model = model_of(rnn, (5, 3), sizes)
    randomize(model, 4)
    states = [_data(2, d, seed=10 + k) for k, d in enumerate(sizes)]
    check_torch(model, rnn, _data(2, 5, 3, seed=3), states)


@pytest.mark.parametrize("unrolled", [False, True], ids=["fused", "unrolled"])
@pytest.mark.parametrize("opts", [dict(), dict(return_sequences=True, go_backwards=True),
                                  dict(return_state=True)], ids=_opt_id)
def test_stacked_cells_match_torch(opts, unrolled):
    kinds = [L.LSTMCell, L.GRUCell, L.SimpleRNNCell]
    cells = [(UNROLLED[k] if unrolled else k)(u) for k, u in zip(kinds, (5, 4, 3))]
    rnn = L.RNN(cells, **opts)
    assert isinstance(rnn.cell, L.StackedRNNCells)
    assert (rnn._fused() is None) == unrolled
    model = model_of(rnn, (6, 2))
    if opts.get("return_state"):
        assert [tuple(o.shape) for o in model.outputs] == [(None, 3), (None, 5), (None, 5),
                                                           (None, 4), (None, 3)]
    randomize(model, 5)
    check_torch(model, rnn, _data(3, 6, 2, seed=4))


def test_stacked_fused_equals_the_stack_of_fused_layers():
    rnn = L.RNN([L.LSTMCell(5, dropout=0.0), L.GRUCell(4)], return_sequences=True)
    a = pynn.Sequential([pynn.Input((6, 3)), rnn])
    b = pynn.Sequential([pynn.Input((6, 3)), L.LSTM(5, return_sequences=True),
                         L.GRU(4, return_sequences=True)])
    randomize(a, 6)
    b.set_weights(a.get_weights())
    x = _data(2, 6, 3, seed=5)
    np.testing.assert_array_equal(a.predict(x, verbose=0), b.predict(x, verbose=0))


def test_cells_called_on_data_take_one_step_as_torch():
    x, rng = _data(3, 4, seed=6), np.random.default_rng(7)
    for cell in (L.LSTMCell(5), L.GRUCell(5), L.GRUCell(5, reset_after=False),
                 L.SimpleRNNCell(5)):
        states = [rng.standard_normal((3, d)).astype(np.float32)
                  for d in (cell.state_size if isinstance(cell.state_size, list)
                            else [cell.state_size])]
        out, new = cell(x, states)
        assert isinstance(new, list) and len(new) == len(states)
        ref_out, ref_new = torch_cell(cell, [_t(w) for w in cell.weights])(
            _t(x), [_t(s) for s in states])
        np.testing.assert_allclose(np.asarray(out), ref_out.numpy(), rtol=RTOL, atol=ATOL)
        for s, r in zip(new, ref_new):
            np.testing.assert_allclose(np.asarray(s), r.numpy(), rtol=RTOL, atol=ATOL)
    gru = L.GRUCell(2)
    out, new = gru(x, np.zeros((3, 2), np.float32))  # a bare state comes back bare, as Keras
    assert not isinstance(new, list)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(new))


def test_cell_on_a_tape_gives_weight_gradients():
    cell = L.LSTMCell(3)
    x, h0, c0 = _data(2, 4, seed=8), _data(2, 3, seed=9), _data(2, 3, seed=10)
    with pynn.GradientTape() as tape:
        h, (h2, c) = cell(x, [h0, c0])
        loss = ops.sum(h * h) + ops.sum(c)
    grads = tape.gradient(loss, cell.trainable_weights)
    assert [g.shape for g in grads] == [(4, 12), (3, 12), (12,)]
    assert all(np.abs(np.asarray(g)).sum() > 0 for g in grads)


# -- a user-written cell ---------------------------------------------------------------------
def test_user_cell_runs_unrolled_and_matches_numpy():
    rnn = L.RNN(MinimalRNNCell(4), return_sequences=True, return_state=True)
    model = model_of(rnn, (6, 3))
    assert rnn._fused() is None
    randomize(model, 8)
    x = _data(3, 6, 3, seed=9)
    seq, h = model.predict(x, verbose=0)
    ref_seq, ref_h = minimal_ref(x, *[np.asarray(w) for w in rnn.weights])
    np.testing.assert_allclose(seq, ref_seq, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h, ref_h, rtol=1e-5, atol=1e-6)
    back = model_of(L.RNN(MinimalRNNCell(4), go_backwards=True), (6, 3))
    back.set_weights(model.get_weights())
    np.testing.assert_allclose(back.predict(x, verbose=0),
                               minimal_ref(x[:, ::-1], *model.get_weights())[1],
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_user_cell_trains_in_a_model(kind):
    pynn.utils.set_random_seed(0)
    rnn = L.RNN(MinimalRNNCell(8))
    if kind == "sequential":
        model = pynn.Sequential([pynn.Input((5, 2)), rnn, L.Dense(1)])
    else:
        inp = pynn.Input((5, 2))
        model = pynn.Model(inp, L.Dense(1)(rnn(inp)))
    x = _data(64, 5, 2, seed=10)
    y = x.sum(axis=(1, 2))[:, None] * 0.1
    model.compile(optimizer=pynn.optimizers.Adam(0.02), loss="mse")
    before = [w.numpy() for w in rnn.weights]
    hist = model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    assert hist.history["loss"][-1] < 0.3 * hist.history["loss"][0]
    assert all(np.abs(w.numpy() - b).max() > 1e-3 for w, b in zip(rnn.weights, before))
    # predict runs the trained weights the cell holds
    seq_h = minimal_ref(x, *[w.numpy() for w in rnn.weights])[1]
    dense = model.layers[-1]
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               seq_h @ dense.kernel.numpy() + dense.bias.numpy(),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cell", [L.LSTMCell(3), MinimalRNNCell(3)], ids=["fused", "user"])
def test_a_frozen_rnn_freezes_its_cell(cell):
    rnn = L.RNN(cell)
    model = pynn.Sequential([pynn.Input((4, 2)), rnn, L.Dense(1)])
    rnn.trainable = False
    assert rnn.trainable_weights == [] and len(rnn.non_trainable_weights) == len(cell.weights)
    model.compile(optimizer="sgd", loss="mse")
    before = [w.numpy() for w in cell.weights]
    model.fit(_data(8, 4, 2), np.ones((8, 1), np.float32), epochs=2, verbose=0)
    for w, b in zip(cell.weights, before):
        np.testing.assert_array_equal(w.numpy(), b)


def test_user_cell_with_unknown_length_is_unrolled_for_each_length():
    rnn = L.RNN(MinimalRNNCell(4), return_sequences=True)
    model = pynn.Sequential([pynn.Input((None, 3)), rnn])
    assert model.output_shape == (None, None, 4)
    randomize(model, 11)
    for steps in (3, 8, 3):
        x = _data(2, steps, 3, seed=steps)
        np.testing.assert_allclose(model.predict(x, verbose=0),
                                   minimal_ref(x, *model.get_weights())[0], rtol=1e-5,
                                   atol=1e-6)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(_data(4, 5, 3), np.zeros((4, 5, 4), np.float32), epochs=1, verbose=0)


def test_unrolled_layer_on_data_matches_the_model_and_backward_reaches_the_cell():
    for cell in (MinimalRNNCell(3), L.GRUCell(3), UnrolledLSTMCell(3)):
        rnn = L.RNN(cell, return_sequences=True)
        x = _data(2, 5, 4, seed=12)
        out = np.asarray(rnn(x))
        model = pynn.Sequential([pynn.Input((5, 4)), rnn])
        np.testing.assert_allclose(out, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
        with pynn.GradientTape() as tape:
            loss = ops.sum(rnn(x) ** 2)
        grads = tape.gradient(loss, rnn.trainable_weights)
        assert len(grads) == len(cell.weights)
        assert all(np.abs(np.asarray(g)).sum() > 0 for g in grads)


class ResidualGRUCell(L.Layer):
    """A user cell that calls a built-in cell: its GRU output plus the input."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.inner = L.GRUCell(units)
        self.state_size = units

    def call(self, inputs, states):
        h, new_states = self.inner(inputs, states)
        return h + inputs, new_states


def test_user_cell_calling_a_builtin_cell_joins_the_trace():
    rnn = L.RNN(ResidualGRUCell(3), return_sequences=True)
    model = pynn.Sequential([pynn.Input((5, 3)), rnn])
    assert [w.shape for w in model.weights] == [(3, 9), (3, 9), (2, 9)]
    randomize(model, 12)
    gru = pynn.Sequential([pynn.Input((5, 3)), L.GRU(3, return_sequences=True)])
    gru.set_weights(model.get_weights())
    x = _data(2, 5, 3, seed=13)
    np.testing.assert_allclose(model.predict(x, verbose=0), gru.predict(x, verbose=0) + x,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(rnn(x)), model.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("make", [lambda: L.RNN(L.LSTMCell(3), return_sequences=True),
                                  lambda: L.RNN([L.GRUCell(3), MinimalRNNCell(2)])],
                         ids=["fused", "unrolled"])
def test_pickle_and_deepcopy_keep_config_and_weights(make):
    import pickle
    rnn = make()
    model = pynn.Sequential([pynn.Input((4, 2)), rnn])
    randomize(model, 14)
    x = _data(2, 4, 2, seed=15)
    want = model.predict(x, verbose=0)
    for other in (copy.deepcopy(rnn), pickle.loads(pickle.dumps(rnn))):
        assert other.get_config() == rnn.get_config()
        assert [w.path for w in other.weights] == [w.path for w in rnn.weights]
        np.testing.assert_allclose(np.asarray(other(x)), want, rtol=1e-5, atol=1e-6)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(x, verbose=0), want)


# -- numerical gradients ---------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: L.RNN(L.LSTMCell(3), return_sequences=True),
    lambda: L.RNN(UnrolledGRUCell(3, reset_after=False), go_backwards=True),
    lambda: L.RNN(UnrolledLSTMCell(3), return_sequences=True),
    lambda: L.RNN([L.GRUCell(3), MinimalRNNCell(2)], return_sequences=True),
    lambda: L.RNN(MinimalRNNCell(3), return_sequences=True),
], ids=["fused_lstm", "unrolled_gru", "unrolled_lstm", "stack_with_user_cell", "user_cell"])
def test_gradients_match_finite_differences(make):
    model = pynn.Sequential([pynn.Input((4, 3)), make()])
    randomize(model, 13)
    model.compile(optimizer="sgd", loss="mse")
    x = _data(3, 4, 3, seed=14)
    y = _data(3, *model.output_shape[1:], seed=15)
    grad_check(model._core, x, y, var_ids=[w._vid for w in model.weights], max_entries=12)


# -- dropout ---------------------------------------------------------------------------------
def test_fused_cell_dropout_is_the_fused_layers():
    rnn = L.RNN(L.LSTMCell(4, dropout=0.3, recurrent_dropout=0.2), return_sequences=True)
    a = pynn.Sequential([pynn.Input((5, 3)), rnn])
    b = pynn.Sequential([pynn.Input((5, 3)),
                         L.LSTM(4, dropout=0.3, recurrent_dropout=0.2, return_sequences=True)])
    randomize(a, 16)
    b.set_weights(a.get_weights())
    for m in (a, b):
        m.compile(optimizer="sgd", loss="mse")
    x, y = _data(4, 5, 3, seed=17), _data(4, 5, 4, seed=18)
    b._core.rng_state = a._core.rng_state
    la, lb = a._core.gradients(x, y)[0], b._core.gradients(x, y)[0]
    assert la == lb and la != a._core.test_step(x, y)[0]


def test_unrolled_dropout_masks_are_one_per_sample_for_all_steps():
    # a linear cell without recurrence and a unit kernel: h_t = x_t * mask, the same zeros at
    # every step; inference drops nothing
    cell = UnrolledSimpleRNNCell(4, activation="linear", use_bias=False, dropout=0.5)
    model = pynn.Sequential([pynn.Input((6, 4)), L.RNN(cell, return_sequences=True)])
    cell.kernel.assign(np.eye(4, dtype=np.float32))
    cell.recurrent_kernel.assign(np.zeros((4, 4), np.float32))
    x = np.ones((3, 6, 4), np.float32)
    out = np.array(model(x, training=True))
    assert set(np.unique(out)) <= {0.0, 2.0}
    assert (out == out[:, :1]).all() and 0 < (out == 0).sum() < out.size
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)
    model.compile(optimizer="sgd", loss="mse")
    assert model._core.gradients(x, x)[0] > 0  # the training graph drops
    assert model._core.test_step(x, x)[0] == 0


# -- Keras's API: names, shapes, configs, saving ---------------------------------------------
CELL_KEYS = ["name", "trainable", "units", "activation", "use_bias", "kernel_initializer",
             "recurrent_initializer", "bias_initializer", "kernel_regularizer",
             "recurrent_regularizer", "bias_regularizer", "kernel_constraint",
             "recurrent_constraint", "bias_constraint", "dropout", "recurrent_dropout", "seed"]


@pytest.mark.parametrize("make,keys", [
    (lambda: L.SimpleRNNCell(3), CELL_KEYS),
    (lambda: L.LSTMCell(3), CELL_KEYS[:4] + ["recurrent_activation", "use_bias",
                                             "unit_forget_bias"] + CELL_KEYS[5:]),
    (lambda: L.GRUCell(3), CELL_KEYS[:4] + ["recurrent_activation"] + CELL_KEYS[4:-1]
     + ["reset_after", "seed"]),
    (lambda: L.StackedRNNCells([L.LSTMCell(2), L.GRUCell(3)]), ["name", "trainable", "cells"]),
    (lambda: L.RNN(L.GRUCell(3)), ["name", "trainable", "return_sequences", "return_state",
                                   "go_backwards", "stateful", "unroll",
                                   "zero_output_for_mask", "cell"]),
])
def test_configs_have_keras_keys_and_round_trip(make, keys):
    layer = make()
    config = layer.get_config()
    assert list(config) == keys  # Keras 3's keys, in its order (pynn adds dtype only if set)
    again = type(layer).from_config(copy.deepcopy(config))
    assert again.get_config() == config


def test_defaults_are_keras():
    lstm, gru, simple = L.LSTMCell(4), L.GRUCell(4), L.SimpleRNNCell(4)
    assert (lstm.activation, lstm.recurrent_activation, lstm.unit_forget_bias) == (
        "tanh", "sigmoid", True)
    assert gru.reset_after is True and simple.activation == "tanh"
    assert (lstm.state_size, gru.state_size, simple.state_size) == ([4, 4], 4, 4)
    assert lstm.output_size == gru.output_size == simple.output_size == 4
    cfg = L.RNN(lstm).get_config()
    assert not any(cfg[k] for k in ("return_sequences", "return_state", "go_backwards",
                                    "stateful", "unroll", "zero_output_for_mask"))
    assert cfg["cell"]["class_name"] == "LSTMCell" and cfg["cell"]["module"] == "pynn.layers"
    pynn.Sequential([pynn.Input((3, 2)), L.RNN(lstm)])
    np.testing.assert_array_equal(lstm.bias, [0] * 4 + [1] * 4 + [0] * 8)  # unit_forget_bias
    u = np.array(lstm.recurrent_kernel)
    np.testing.assert_allclose(u @ u.T, np.eye(4), atol=1e-5)
    states = lstm.get_initial_state(3)
    assert isinstance(states, list) and [tuple(s.shape) for s in states] == [(3, 4)] * 2
    assert [tuple(s.shape) for s in gru.get_initial_state(2)] == [(2, 4)]


def test_default_names_weight_paths_and_shapes_are_keras(monkeypatch):
    monkeypatch.setattr(pynn.layers.base, "_NAME_COUNTS", {})  # names as in a fresh session
    rnn = L.RNN(L.LSTMCell(3))
    stacked = L.RNN([L.SimpleRNNCell(3), L.SimpleRNNCell(2)])
    assert (rnn.name, rnn.cell.name) == ("rnn", "lstm_cell")
    assert (stacked.name, stacked.cell.name) == ("rnn_1", "stacked_rnn_cells")
    assert [c.name for c in stacked.cell.cells] == ["simple_rnn_cell", "simple_rnn_cell_1"]
    assert L.GRUCell(2).name == "gru_cell"
    pynn.Sequential([pynn.Input((5, 2)), rnn])
    pynn.Sequential([pynn.Input((5, 2)), stacked])
    assert [(w.path, w.shape) for w in rnn.weights] == [
        ("rnn/lstm_cell/kernel", (2, 12)), ("rnn/lstm_cell/recurrent_kernel", (3, 12)),
        ("rnn/lstm_cell/bias", (12,))]
    assert [w.path for w in stacked.weights] == [
        f"rnn_1/stacked_rnn_cells/simple_rnn_cell{s}/{n}" for s in ("", "_1")
        for n in ("kernel", "recurrent_kernel", "bias")]
    assert [w.shape for w in stacked.weights] == [(2, 3), (3, 3), (3,), (3, 2), (2, 2), (2,)]
    assert [w.name for w in rnn.weights] == ["kernel", "recurrent_kernel", "bias"]
    assert stacked.cell.state_size == [3, 2] and stacked.cell.output_size == 2


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_saved_models_load_and_predict_the_same(tmp_path, kind):
    if kind == "sequential":
        model = pynn.Sequential([
            pynn.Input((5, 2)),
            L.RNN(L.LSTMCell(4, recurrent_activation="hard_sigmoid"), return_sequences=True),
            L.RNN([L.GRUCell(3, reset_after=False), L.SimpleRNNCell(3)], go_backwards=True,
                  return_sequences=True),
            L.RNN(MinimalRNNCell(2))])
        inputs = _data(3, 5, 2, seed=19)
    else:
        x_in, h_in = pynn.Input((5, 2)), pynn.Input((4,))
        seq, h, c = L.RNN(L.LSTMCell(4), return_sequences=True, return_state=True)(x_in)
        user = L.RNN(MinimalRNNCell(4), name="user")(seq, initial_state=[h_in])
        gru = L.RNN(L.GRUCell(4))(seq, initial_state=h)
        model = pynn.Model([x_in, h_in], L.Concatenate()([user, gru, c]))
        inputs = [_data(3, 5, 2, seed=19), _data(3, 4, seed=20)]
    model.compile(optimizer="adam", loss="mse")
    model.fit(inputs, np.zeros((3,) + model.output_shape[1:], np.float32), epochs=1,
              verbose=0)
    before = model.predict(inputs, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = pynn.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(inputs, verbose=0), before)
    assert [w.path for w in loaded.weights] == [w.path for w in model.weights]
    clone = type(model).from_config(model.get_config())
    assert [w.shape for w in clone.weights] == [w.shape for w in model.weights]


def test_output_shapes_and_return_state_in_sequential_is_refused():
    assert pynn.Sequential([pynn.Input((7, 2)), L.RNN(L.GRUCell(3))]).output_shape == (None, 3)
    assert pynn.Sequential([pynn.Input((7, 2)), L.RNN(MinimalRNNCell(3),
                                                      return_sequences=True)]).output_shape \
        == (None, 7, 3)
    with pytest.raises(ValueError, match="several outputs"):
        pynn.Sequential([pynn.Input((7, 2)), L.RNN(L.GRUCell(3), return_state=True)])


# -- clear errors ----------------------------------------------------------------------------
class NoStateCell(L.Layer):
    def call(self, inputs, states):
        return inputs, states


@pytest.mark.parametrize("make,error,match", [
    (lambda: L.RNN(L.LSTMCell(3), stateful=1), ValueError, "stateful"),
    (lambda: L.RNN(L.Dense(3)), ValueError, "must be a Layer with a call"),
    (lambda: L.RNN(NoStateCell()), ValueError, "needs a state_size"),
    (lambda: L.RNN("lstm"), ValueError, "must be a Layer with a call"),
    (lambda: L.RNN(L.GRUCell(3), return_sequences=1), ValueError, "return_sequences"),
    (lambda: L.StackedRNNCells([]), ValueError, "non-empty list"),
    (lambda: L.LSTMCell(0), ValueError, "units"),
    (lambda: L.GRUCell(3, activation="nope"), ValueError, "Unknown activation"),
    (lambda: L.SimpleRNNCell(3, dropout=1.0), ValueError, "dropout"),
    (lambda: L.SimpleRNNCell(3, recurrent_activation="tanh"), TypeError,
     "recurrent_activation"),
])
def test_bad_arguments_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_calls_raise_errors_naming_the_layer():
    with pytest.raises(ValueError, match="rnn_bad.*rank 3"):
        pynn.Sequential([pynn.Input((5,)), L.RNN(L.LSTMCell(3), name="rnn_bad")])
    inp = pynn.Input((5, 2))
    with pytest.raises(ValueError, match="rnn_states.*2 states of sizes \\[3, 3\\], got 1"):
        L.RNN(L.LSTMCell(3), name="rnn_states")(inp, initial_state=[pynn.Input((3,))])
    with pytest.raises(ValueError, match="rnn_size.*must be \\(batch, 3\\)"):
        L.RNN(L.GRUCell(3), name="rnn_size")(inp, initial_state=[pynn.Input((4,))])
    with pytest.raises(NotImplementedError, match="RNN\\(cell\\)"):
        L.LSTMCell(3)(inp[:, 0], [pynn.Input((3,)), pynn.Input((3,))])
    with pytest.raises(ValueError, match="rnn_none.*number of timesteps must be known"):
        L.RNN(MinimalRNNCell(3), name="rnn_none")._unrolled(pynn.Input((None, 2)), [], None)


def test_a_mask_on_data_skips_the_padded_steps():
    """RNN(cell)(x, mask=m) on data: right padding masked gives the final state of the
    unpadded sequence, for a fused and an unrolled cell."""
    x = _data(2, 5, 2)
    mask = np.array([[1, 1, 1, 0, 0]] * 2, bool)
    for cell in (L.GRUCell(3), MinimalRNNCell(3)):
        rnn = L.RNN(cell)
        masked = np.asarray(rnn(x, mask=mask))
        np.testing.assert_allclose(masked, np.asarray(rnn(x[:, :3])), rtol=1e-5, atol=1e-6)
