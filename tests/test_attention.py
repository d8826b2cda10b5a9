"""MultiHeadAttention and PositionEmbedding: PyTorch parity (outputs, input and weight gradients),
finite differences, Keras semantics (weights, param counts, config, saving) and bad inputs.

The reference is attention written in torch (float64) the way Keras 3 computes it: EinsumDense
projections, softmax(q k^T / sqrt(key_dim)) with masked scores replaced by -1e9 (a fully masked
row is uniform over the keys, as in Keras), then the output projection; and nn.MultiheadAttention
for the unmasked and causal cases with the weights mapped.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import numeric_gradient

import pynn
from pynn import layers as L

RTOL, ATOL = 2e-4, 2e-5


def rnd(shape, seed, scale=1.0):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype(np.float32)


def torch_mha(weights, query, value, key=None, mask=None, causal=False, heads=2, use_bias=True,
              scores=False):
    """Keras 3's MultiHeadAttention in torch; weights in Keras's order, as float64 leaves. With
    scores, (output, the attention probabilities (batch, heads, Tq, Tk))."""
    per = 2 if use_bias else 1
    wq, wk, wv, wo = (weights[i * per:(i + 1) * per] for i in range(4))
    key = value if key is None else key

    def proj(x, w):
        y = torch.einsum("btd,dhk->bthk", x, w[0])
        return y + w[1] if use_bias else y

    q, k, v = proj(query, wq), proj(key, wk), proj(value, wv)
    kd = q.shape[-1]
    s = torch.einsum("bqhk,bshk->bhqs", q, k) / np.sqrt(kd)
    tq, tk = s.shape[-2:]
    allow = torch.ones((query.shape[0], tq, tk), dtype=torch.bool)
    if mask is not None:
        allow = allow & (torch.as_tensor(np.asarray(mask)) != 0)
    if causal:
        allow = allow & torch.tril(torch.ones((tq, tk), dtype=torch.bool))
    s = s.masked_fill(~allow[:, None], -1e9)
    p = torch.softmax(s, dim=-1)
    o = torch.einsum("bhqs,bshv->bqhv", p, v)
    out = torch.einsum("bqhv,hvo->bqo", o, wo[0])
    out = out + wo[1] if use_bias else out
    return (out, p) if scores else out


def build(tq, tk, dq, dv, heads=2, key_dim=4, value_dim=None, mask=False, causal=False,
          cross=False, use_bias=True, dropout=0.0, output_shape=None, seed=0):
    """A compiled functional model around one MultiHeadAttention; returns (model, layer)."""
    pynn.utils.set_random_seed(seed)
    q = pynn.Input((tq, dq), name="q")
    ins = [q]
    v = q
    if cross:
        v = pynn.Input((tk, dv), name="v")
        ins.append(v)
    kw = {}
    if mask:
        m = pynn.Input((tq, tk), dtype="int32", name="mask")
        ins.append(m)
        kw["attention_mask"] = m
    mha = L.MultiHeadAttention(heads, key_dim, value_dim, dropout=dropout, use_bias=use_bias,
                               output_shape=output_shape)
    y = mha(q, v, use_causal_mask=causal, **kw)
    model = pynn.Model(ins, y)
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(seed + 1)
    for w in model.weights:
        w.assign(rng.normal(scale=0.4, size=w.shape).astype(np.float32))
    return model, mha


def parity(model, mha, xs, y, mask=None, causal=False, cross=False, use_bias=True):
    """pynn's loss, input gradients and weight gradients against the torch reference."""
    core = model._core
    loss, dxs = core.gradients(xs if len(xs) > 1 else xs[0], y, True)
    dxs = dxs if isinstance(dxs, list) else [dxs]
    ids = mha._var_ids
    grads = [np.array(core.gradient(v)) for v in ids]
    out = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)

    tw = [torch.tensor(w.numpy(), dtype=torch.float64, requires_grad=True) for w in mha.weights]
    tq = torch.tensor(xs[0], dtype=torch.float64, requires_grad=True)
    tv = torch.tensor(xs[1], dtype=torch.float64, requires_grad=True) if cross else tq
    tout = torch_mha(tw, tq, tv, mask=mask, causal=causal, heads=mha.num_heads,
                     use_bias=use_bias)
    tloss = ((tout - torch.tensor(y, dtype=torch.float64)) ** 2).mean()
    tloss.backward()
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(loss, tloss.item(), rtol=1e-4)
    np.testing.assert_allclose(dxs[0], tq.grad.numpy(), rtol=1e-3, atol=1e-6)
    if cross:
        np.testing.assert_allclose(dxs[1], tv.grad.numpy(), rtol=1e-3, atol=1e-6)
    for w, g, tw_ in zip(mha.weights, grads, tw):
        np.testing.assert_allclose(g, tw_.grad.numpy(), rtol=1e-3, atol=1e-6, err_msg=w.path)


# -- PyTorch parity -------------------------------------------------------------------------------
@pytest.mark.parametrize("T", [1, 7, 65])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_self_attention_matches_torch(T, causal):
    model, mha = build(T, T, 8, 8, causal=causal)
    x = rnd((3, T, 8), 1)
    parity(model, mha, [x], rnd((3, T, 8), 2), causal=causal)


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_padding_mask_matches_torch(causal):
    T = 9
    model, mha = build(T, T, 8, 8, mask=True, causal=causal)
    x = rnd((2, T, 8), 3)
    lengths = [5, 9]
    mask = np.zeros((2, T, T), np.int32)
    for b, n in enumerate(lengths):
        mask[b, :, :n] = 1
    parity(model, mha, [x, mask], rnd((2, T, 8), 4), mask=mask, causal=causal)


def test_fully_masked_rows_are_uniform_like_keras_not_nan():
    T = 5
    model, mha = build(T, T, 8, 8, mask=True)
    x = rnd((2, T, 8), 5)
    mask = np.ones((2, T, T), np.int32)
    mask[0, 2, :] = 0  # query 2 of sample 0 sees no key
    mask[1] = 0        # sample 1 sees nothing
    out = model.predict([x, mask], verbose=0)
    assert np.isfinite(out).all()
    parity(model, mha, [x, mask], rnd((2, T, 8), 6), mask=mask)


def test_causal_and_mask_that_hides_the_diagonal_stays_finite():
    T = 4
    model, mha = build(T, T, 8, 8, mask=True, causal=True)
    x = rnd((1, T, 8), 7)
    mask = np.ones((1, T, T), np.int32)
    mask[0, :, 0] = 0  # query 0 under causal sees only key 0: fully masked
    parity(model, mha, [x, mask], rnd((1, T, 8), 8), mask=mask, causal=True)


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_cross_attention_with_other_lengths_and_value_dim(causal):
    model, mha = build(6, 11, 8, 5, heads=3, key_dim=4, value_dim=6, cross=True, causal=causal,
                       output_shape=7)
    xs = [rnd((2, 6, 8), 9), rnd((2, 11, 5), 10)]
    assert model.output_shape == (None, 6, 7)
    parity(model, mha, xs, rnd((2, 6, 7), 11), causal=causal, cross=True)


def test_batch_of_one_without_bias():
    model, mha = build(7, 7, 8, 8, use_bias=False)
    assert len(mha.weights) == 4
    parity(model, mha, [rnd((1, 7, 8), 12)], rnd((1, 7, 8), 13), use_bias=False)


def test_long_context_recomputes_scores_in_blocks_and_matches_torch():
    # Tq Tk > 256 * 256: backward recomputes the scores from the saved log-sum-exp
    T = 300
    model, mha = build(T, T, 4, 4, heads=1, key_dim=2, causal=True)
    parity(model, mha, [rnd((1, T, 4), 14)], rnd((1, T, 4), 15), causal=True)


def test_masked_long_context_recomputes_and_matches_torch():
    T = 260
    model, mha = build(T, T, 4, 4, heads=1, key_dim=2, mask=True)
    mask = (np.random.default_rng(16).random((1, T, T)) < 0.7).astype(np.int32)
    mask[0, 3] = 0
    parity(model, mha, [rnd((1, T, 4), 17), mask], rnd((1, T, 4), 18), mask=mask)


def test_matches_torch_nn_multihead_attention_with_mapped_weights():
    E, H, T = 8, 2, 7
    model, mha = build(T, T, E, E, heads=H, key_dim=E // H, causal=True)
    x = rnd((2, T, E), 19)
    ref = torch.nn.MultiheadAttention(E, H, batch_first=True, dtype=torch.float64)
    w = [a.numpy() for a in mha.weights]
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.tensor(np.concatenate(
            [w[0].reshape(E, E).T, w[2].reshape(E, E).T, w[4].reshape(E, E).T])))
        ref.in_proj_bias.copy_(torch.tensor(np.concatenate(
            [w[1].reshape(-1), w[3].reshape(-1), w[5].reshape(-1)])))
        ref.out_proj.weight.copy_(torch.tensor(w[6].reshape(E, E).T))
        ref.out_proj.bias.copy_(torch.tensor(w[7]))
    tx = torch.tensor(x, dtype=torch.float64)
    causal = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    tout, _ = ref(tx, tx, tx, attn_mask=causal, need_weights=False)
    np.testing.assert_allclose(model.predict(x, verbose=0), tout.detach().numpy(), rtol=RTOL,
                               atol=ATOL)


def test_one_adam_step_updates_weights_as_torch():
    T, E = 6, 8
    pynn.utils.set_random_seed(0)
    ids = pynn.Input((T,), dtype="int32")
    emb = L.Embedding(11, E)
    h = emb(ids)
    pos = L.PositionEmbedding(T)
    h = h + pos(h)
    ln = L.LayerNormalization(epsilon=1e-5)
    mha = L.MultiHeadAttention(2, 4)
    a = ln(h)
    h = h + mha(a, a, use_causal_mask=True)
    head = L.Dense(11)
    model = pynn.Model(ids, head(h))
    model.compile(optimizer=pynn.optimizers.Adam(learning_rate=0.01),
                  loss=pynn.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(1).integers(0, 11, size=(4, T)).astype(np.int32)
    y = np.random.default_rng(2).integers(0, 11, size=(4, T)).astype(np.int32)
    before = [w.numpy() for w in model.weights]
    tw = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in before]
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)

    # Keras adds epsilon to sqrt(v) before the bias correction: torch eps = 1e-7 / sqrt(1 - b2)
    opt = torch.optim.Adam(tw, lr=0.01, eps=1e-7 / np.sqrt(1 - 0.999))
    e = tw[0][torch.as_tensor(x).long()]
    e = e + tw[1][:T]
    z = F.layer_norm(e, (E,), tw[2], tw[3], eps=1e-5)
    e = e + torch_mha(tw[4:12], z, z, causal=True)
    logits = e @ tw[12] + tw[13]
    loss = F.cross_entropy(logits.reshape(-1, 11), torch.as_tensor(y).long().reshape(-1))
    loss.backward()
    opt.step()
    for w, t in zip(model.weights, tw):
        np.testing.assert_allclose(w.numpy(), t.detach().numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=w.path)


# -- finite differences ---------------------------------------------------------------------------
def numeric_check(model, xs, y, seed=0, eps=1e-2, n=12, training=False):
    """The core's gradients of the loss against central differences (float32 loss, double
    arithmetic on the differences), at a few entries of the float input and each weight."""
    core = model._core
    xs = [np.array(a) for a in xs]
    arg = xs if len(xs) > 1 else xs[0]
    # a training loss must draw the same dropout masks every time: reset the stream each call
    def f():
        if training:
            core.set_seed(1234)
            return core.gradients(arg, y)[0]
        return core.test_step(arg, y)[0]
    if training:
        core.set_seed(1234)
    loss, dxs = core.gradients(arg, y, True)
    dxs = dxs if isinstance(dxs, list) else [dxs]
    ids = [v for layer in model.layers for v in layer._var_ids]
    grads = [np.array(core.gradient(v)) for v in ids]
    rng = np.random.default_rng(seed)
    targets = [(xs[0], dxs[0])] + [(core.variable(v), g) for v, g in zip(ids, grads)]
    for arr, g in targets:
        gf = g.reshape(-1)
        idx = rng.choice(arr.size, min(n, arr.size), replace=False)
        num = numeric_gradient(f, arr, idx, eps)
        scale = max(np.abs(gf).max(), 1e-3)
        np.testing.assert_allclose(gf[idx], num, atol=3e-3 * scale + 1e-4, rtol=2e-2)


@pytest.mark.parametrize("case", ["plain", "causal", "mask", "cross"])
def test_attention_gradients_match_finite_differences(case):
    T = 5
    model, mha = build(T, 4 if case == "cross" else T, 6, 3, heads=2, key_dim=3, value_dim=2,
                       mask=case == "mask", causal=case == "causal", cross=case == "cross")
    xs = [rnd((2, T, 6), 20)]
    if case == "cross":
        xs.append(rnd((2, 4, 3), 21))
    if case == "mask":
        m = np.ones((2, T, T), np.int32)
        m[0, :, 3:] = 0
        m[1, 1, :] = 0
        xs.append(m)
    numeric_check(model, xs, rnd((2, T, 6), 22))


def test_attention_dropout_gradients_match_finite_differences_with_a_fixed_seed():
    T = 5
    model, _ = build(T, T, 6, 6, heads=2, key_dim=3, dropout=0.3)
    numeric_check(model, [rnd((2, T, 6), 23)], rnd((2, T, 6), 24), training=True)


def test_attention_dropout_is_reproducible_and_off_in_inference():
    T = 8
    model, mha = build(T, T, 8, 8, dropout=0.5)
    x, y = rnd((2, T, 8), 25), rnd((2, T, 8), 26)
    model._core.set_seed(7)
    a = model._core.gradients(x, y)[0]
    model._core.set_seed(7)
    b = model._core.gradients(x, y)[0]
    c = model._core.gradients(x, y)[0]
    assert a == b and a != c
    ref, _ = build(T, T, 8, 8, dropout=0.0)
    ref.set_weights(model.get_weights())
    np.testing.assert_allclose(model.predict(x, verbose=0), ref.predict(x, verbose=0), rtol=1e-6)


# -- masks of other element types -----------------------------------------------------------------
def test_float_and_bool_masks_give_the_same_result_as_int():
    T = 6
    x = rnd((2, T, 8), 27)
    m = (np.random.default_rng(28).random((2, T, T)) < 0.6)
    outs = []
    for dtype in ("int32", "float32"):
        pynn.utils.set_random_seed(0)
        q = pynn.Input((T, 8))
        mi = pynn.Input((T, T), dtype=dtype)
        mha = L.MultiHeadAttention(2, 4)
        model = pynn.Model([q, mi], mha(q, q, attention_mask=mi))
        outs.append(model.predict([x, m.astype(dtype)], verbose=0))
        outs.append(mha(x, x, attention_mask=m).numpy())  # eager, bool mask
    for o in outs[1:]:
        np.testing.assert_allclose(o, outs[0], rtol=1e-5, atol=1e-6)


# -- Keras semantics ------------------------------------------------------------------------------
def test_weights_names_shapes_order_and_param_count_match_keras():
    x = pynn.Input((5, 8))
    mha = L.MultiHeadAttention(num_heads=2, key_dim=4)
    model = pynn.Model(x, mha(x, x))
    assert mha.count_params() == 288  # Keras: 4 x (8*2*4 + 8)
    assert model.count_params() == 288
    names = [w.path.split("/", 1)[1] for w in mha.weights]
    assert names == ["query/kernel", "query/bias", "key/kernel", "key/bias", "value/kernel",
                     "value/bias", "attention_output/kernel", "attention_output/bias"]
    assert [w.shape for w in mha.weights] == [(8, 2, 4), (2, 4), (8, 2, 4), (2, 4), (8, 2, 4),
                                              (2, 4), (2, 4, 8), (8,)]
    assert mha.weights[0].name == "kernel"
    mha2 = L.MultiHeadAttention(3, 5, value_dim=2, output_shape=6, use_bias=False)
    q, v = pynn.Input((4, 7)), pynn.Input((9, 3))
    mha2(q, v)
    assert [w.shape for w in mha2.weights] == [(7, 3, 5), (3, 3, 5), (3, 3, 2), (3, 2, 6)]


def test_defaults_and_config_round_trip():
    mha = L.MultiHeadAttention(4, 32)
    cfg = mha.get_config()
    assert cfg["value_dim"] == 32 and cfg["dropout"] == 0.0 and cfg["use_bias"] is True
    assert cfg["output_shape"] is None and cfg["attention_axes"] is None
    assert cfg["kernel_initializer"]["class_name"] == "GlorotUniform"
    again = L.MultiHeadAttention.from_config(cfg)
    assert again.get_config() == cfg
    pe = L.PositionEmbedding(16)
    assert L.PositionEmbedding.from_config(pe.get_config()).get_config() == pe.get_config()


def gpt_block_model(T=8, V=13, E=8):
    pynn.utils.set_random_seed(3)
    ids = pynn.Input((T,), dtype="int32", name="ids")
    mask = pynn.Input((T, T), dtype="int32", name="mask")
    h = L.Embedding(V, E)(ids)
    h = L.Add()([h, L.PositionEmbedding(T)(h)])
    a = L.LayerNormalization()(h)
    h = h + L.MultiHeadAttention(2, 4, dropout=0.1)(a, a, attention_mask=mask,
                                                      use_causal_mask=True)
    model = pynn.Model([ids, mask], L.Dense(V)(L.LayerNormalization()(h)))
    model.compile(optimizer="adamw", loss=pynn.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    return model


def test_save_and_load_give_identical_predictions(tmp_path):
    T = 8
    model = gpt_block_model(T)
    rng = np.random.default_rng(4)
    x = rng.integers(0, 13, size=(6, T)).astype(np.int32)
    m = np.ones((6, T, T), np.int32)
    m[:, :, 6:] = 0
    model.fit([x, m], x, batch_size=3, epochs=1, verbose=0)
    path = tmp_path / "gpt.keras"
    model.save(path)
    loaded = pynn.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict([x, m], verbose=0),
                                  model.predict([x, m], verbose=0))
    assert [w.path for w in loaded.weights] == [w.path for w in model.weights]
    cfg = model.get_config()
    again = pynn.Model.from_config(cfg)
    assert again.count_params() == model.count_params()


def test_fit_reduces_the_loss_and_evaluate_predict_work():
    T = 8
    model = gpt_block_model(T)
    rng = np.random.default_rng(5)
    x = rng.integers(0, 13, size=(32, T)).astype(np.int32)
    m = np.ones((32, T, T), np.int32)
    hist = model.fit([x, m], x, batch_size=8, epochs=5, verbose=0).history["loss"]
    assert hist[-1] < hist[0]
    assert np.isfinite(model.evaluate([x, m], x, verbose=0))
    assert model.predict([x, m], verbose=0).shape == (32, T, 13)


def test_imperative_call_and_backward_match_the_model_gradients():
    T = 6
    model, mha = build(T, T, 8, 8, causal=True)
    x, y = rnd((2, T, 8), 30), rnd((2, T, 8), 31)
    _, dx = model._core.gradients(x, y, True)
    want = [np.array(model._core.gradient(v)) for v in mha._var_ids]
    out = model(x, training=True)  # an eager call after a step starts from zero gradients
    loss = ((out - y) ** 2).mean()
    loss.backward()
    for w, g in zip(mha.weights, want):
        np.testing.assert_allclose(w.grad, g, rtol=1e-4, atol=1e-6, err_msg=w.path)


def test_layer_called_on_data_matches_the_model():
    T = 5
    model, mha = build(T, T, 8, 8, mask=True, causal=True)
    x = rnd((2, T, 8), 32)
    m = np.ones((2, T, T), np.int32)
    m[1, :, 4] = 0
    eager = mha(x, x, attention_mask=m, use_causal_mask=True)
    np.testing.assert_allclose(eager.numpy(), model.predict([x, m], verbose=0), rtol=1e-5,
                               atol=1e-6)
    xt = pynn.Tensor(x, requires_grad=True)
    mha(xt, xt, attention_mask=m, use_causal_mask=True).sum().backward()
    assert xt.grad.shape == x.shape and np.isfinite(xt.grad).all()


def test_position_embedding_matches_torch_and_broadcasts_over_the_batch():
    pynn.utils.set_random_seed(0)
    x = pynn.Input((5, 3))
    pe = L.PositionEmbedding(7)
    model = pynn.Model(x, pe(x))
    model.compile(optimizer="sgd", loss="mse")
    assert pe.weights[0].shape == (7, 3) and pe.weights[0].path.endswith("/embeddings")
    xs, y = rnd((4, 5, 3), 33), rnd((4, 5, 3), 34)
    out = model.predict(xs, verbose=0)
    np.testing.assert_array_equal(out, np.broadcast_to(pe.weights[0][:5], (4, 5, 3)))
    _, dx = model._core.gradients(xs, y, True)
    g = np.array(model._core.gradient(pe._var_ids[0]))
    tw = torch.tensor(pe.weights[0].numpy(), dtype=torch.float64, requires_grad=True)
    ((tw[:5].expand(4, 5, 3) - torch.tensor(y, dtype=torch.float64)) ** 2).mean().backward()
    np.testing.assert_allclose(g, tw.grad.numpy(), rtol=1e-5, atol=1e-7)
    assert not np.asarray(dx).any()


# -- bad inputs -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    ({"num_heads": 0, "key_dim": 4}, "num_heads"),
    ({"num_heads": 2, "key_dim": -1}, "key_dim"),
    ({"num_heads": 2, "key_dim": 2.5}, "key_dim"),
    ({"num_heads": 2, "key_dim": 4, "value_dim": 0}, "value_dim"),
    ({"num_heads": 2, "key_dim": 4, "dropout": 1.0}, "dropout"),
    ({"num_heads": 2, "key_dim": 4, "attention_axes": (1, 2)}, "attention_axes"),
])
def test_bad_constructor_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        L.MultiHeadAttention(**kwargs)


def test_bad_calls_raise_before_building():
    mha = L.MultiHeadAttention(2, 4)
    q, v = pynn.Input((5, 8)), pynn.Input((6, 8))
    with pytest.raises(ValueError, match="rank|steps, features"):
        mha(pynn.Input((8,)), v)
    with pytest.raises(ValueError, match="same number of steps"):
        mha(q, v, key=pynn.Input((7, 8)))
    with pytest.raises(ValueError, match="attention_mask must be"):
        mha(q, v, attention_mask=pynn.Input((5, 5), dtype="int32"))
    with pytest.raises(ValueError, match="return_attention_scores"):
        mha(q, v, return_attention_scores="yes")
    with pytest.raises(ValueError, match="query and value are required"):
        mha(q)
    with pytest.raises(TypeError, match="mix"):
        mha(q, np.zeros((1, 6, 8), np.float32))
    assert not mha.built and mha.weights == []
    mha(q, v)
    with pytest.raises(ValueError, match="built for a query of 8"):
        mha(pynn.Input((5, 9)), v)
    with pytest.raises(ValueError, match="Sequential|functional"):
        pynn.Sequential([pynn.Input((5, 8)), L.MultiHeadAttention(2, 4)])


def test_bad_data_raises_clearly():
    mha = L.MultiHeadAttention(2, 4)
    x = rnd((2, 5, 8), 35)
    with pytest.raises(ValueError, match="attention_mask"):
        mha(x, x, attention_mask=np.ones((2, 5, 4), np.int32))
    with pytest.raises(ValueError, match="batch size"):
        mha(x, x, attention_mask=np.ones((3, 5, 5), np.int32))
    assert not mha.built
    with pytest.raises(ValueError, match="sequence_length"):
        L.PositionEmbedding(4)(pynn.Input((5, 2)))
    with pytest.raises(ValueError, match="sequence_length"):
        L.PositionEmbedding(0)
    with pytest.raises(ValueError, match="steps, features"):
        L.PositionEmbedding(4)(pynn.Input((4,)))


# -- the GPT block's other vectorised kernel ---------------------------------------------------
def test_exact_gelu_and_its_gradient_match_torch_across_the_range():
    # vmath.h's erf and exp replace libm's in the exact GELU (every lane and the loop tail)
    x = np.linspace(-12, 12, 4099).astype(np.float32)
    np.testing.assert_allclose(pynn.activations.gelu(x),
                               F.gelu(torch.tensor(x, dtype=torch.float64)).numpy(),
                               rtol=1e-5, atol=2e-6)
    layer = L.Activation("gelu")
    xt = pynn.Tensor(x.reshape(1, -1), requires_grad=True)
    layer(xt).sum().backward()
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    F.gelu(tx).sum().backward()
    np.testing.assert_allclose(xt.grad.reshape(-1), tx.grad.numpy(), rtol=1e-5, atol=2e-6)
    assert np.isnan(pynn.activations.gelu(np.array([np.nan], np.float32)))[0]


def test_calls_by_keyword_positional_key_and_a_nested_model():
    T = 5
    pynn.utils.set_random_seed(0)
    q, v = pynn.Input((T, 8)), pynn.Input((T, 6))
    m = pynn.Input((T, T), dtype="int32")
    mha = L.MultiHeadAttention(2, 3)
    inner = pynn.Model([q, v, m], mha(query=q, value=v, key=v, attention_mask=m,
                                      use_causal_mask=True))
    xq, xv = rnd((2, T, 8), 40), rnd((2, T, 6), 41)
    mask = np.ones((2, T, T), np.int32)
    mask[0, :, 3:] = 0
    want = inner.predict([xq, xv, mask], verbose=0)
    np.testing.assert_allclose(mha(xq, xv, xv, attention_mask=mask, use_causal_mask=True).numpy(),
                               want, rtol=1e-5, atol=1e-6)
    a, b, c = pynn.Input((T, 8)), pynn.Input((T, 6)), pynn.Input((T, T), dtype="int32")
    outer = pynn.Model([a, b, c], inner([a, b, c]))
    np.testing.assert_allclose(outer.predict([xq, xv, mask], verbose=0), want, rtol=1e-6)


# -- return_attention_scores -----------------------------------------------------------------------
def build_with_scores(T, tk, case, heads=2, key_dim=3, seed=0):
    """A model whose outputs are MultiHeadAttention's (output, scores), compiled with mse on
    both; returns (model, layer)."""
    pynn.utils.set_random_seed(seed)
    q = pynn.Input((T, 6), name="q")
    ins, v, kw = [q], q, {}
    if case == "cross":
        v = pynn.Input((tk, 5), name="v")
        ins.append(v)
    if case == "mask":
        kw["attention_mask"] = pynn.Input((T, tk), dtype="int32", name="mask")
        ins.append(kw["attention_mask"])
    mha = L.MultiHeadAttention(heads, key_dim)
    out, scores = mha(q, v, return_attention_scores=True, use_causal_mask=case == "causal", **kw)
    model = pynn.Model(ins, [out, scores])
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(seed + 1)
    for w in model.weights:
        w.assign(rng.normal(scale=0.4, size=w.shape).astype(np.float32))
    return model, mha


def scores_inputs(T, tk, case):
    xs = [rnd((3, T, 6), 30)]
    if case == "cross":
        xs.append(rnd((3, tk, 5), 31))
    if case == "mask":
        m = np.ones((3, T, tk), np.int32)
        m[0, :, 3:] = 0
        m[1, 2, :] = 0  # a fully masked row: uniform scores, no gradient through them
        xs.append(m)
    return xs


@pytest.mark.parametrize("case", ["plain", "causal", "mask", "cross"])
def test_attention_scores_and_their_gradients_match_torch(case):
    T, tk = 7, (5 if case == "cross" else 7)
    model, mha = build_with_scores(T, tk, case)
    xs = scores_inputs(T, tk, case)
    ys = [rnd((3, T, 6), 32), rnd((3, 2, T, tk), 33, scale=0.2)]
    arg = xs if len(xs) > 1 else xs[0]
    out, scores = model.predict(arg, verbose=0)
    core = model._core
    loss, dxs = core.gradients(arg, ys, True)
    dxs = dxs if isinstance(dxs, list) else [dxs]
    grads = [np.array(core.gradient(v)) for v in mha._var_ids]

    tw = [torch.tensor(w.numpy(), dtype=torch.float64, requires_grad=True) for w in mha.weights]
    tq = torch.tensor(xs[0], dtype=torch.float64, requires_grad=True)
    tv = torch.tensor(xs[1], dtype=torch.float64, requires_grad=True) if case == "cross" else tq
    tout, tp = torch_mha(tw, tq, tv, mask=xs[-1] if case == "mask" else None,
                         causal=case == "causal", heads=2, scores=True)
    tloss = sum(((a - torch.tensor(y, dtype=torch.float64)) ** 2).mean()
                for a, y in zip((tout, tp), ys))
    tloss.backward()
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(scores, tp.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(scores.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(loss, tloss.item(), rtol=1e-4)
    np.testing.assert_allclose(dxs[0], tq.grad.numpy(), rtol=1e-3, atol=1e-6)
    if case == "cross":
        np.testing.assert_allclose(dxs[1], tv.grad.numpy(), rtol=1e-3, atol=1e-6)
    for w, g, tw_ in zip(mha.weights, grads, tw):
        np.testing.assert_allclose(g, tw_.grad.numpy(), rtol=1e-3, atol=1e-6, err_msg=w.path)
    if case == "mask":
        np.testing.assert_allclose(scores[1, :, 2], 1.0 / tk, rtol=1e-6)
    if case == "causal":
        assert np.all(np.triu(scores[0, 0], 1) == 0.0)


@pytest.mark.parametrize("case", ["plain", "causal", "mask"])
def test_attention_scores_gradients_match_finite_differences(case):
    T = 5
    model, _ = build_with_scores(T, T, case)
    numeric_check(model, scores_inputs(T, T, case),
                  [rnd((3, T, 6), 34), rnd((3, 2, T, T), 35, scale=0.2)])


def test_attention_scores_on_data_in_a_nested_model_and_after_saving(tmp_path):
    model, mha = build_with_scores(6, 6, "causal")
    x = rnd((2, 6, 6), 36)
    out, scores = model.predict(x, verbose=0)
    eager = mha(x, x, return_attention_scores=True, use_causal_mask=True)
    assert isinstance(eager, tuple) and len(eager) == 2
    np.testing.assert_allclose(np.asarray(eager[1]), scores, rtol=1e-6, atol=1e-7)
    inp = pynn.Input((6, 6))
    outer = pynn.Model(inp, model(inp))  # the functional model nested, replaying the call
    for a, b in zip(outer.predict(x, verbose=0), (out, scores)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    path = tmp_path / "scores.keras"
    model.save(path)
    loaded = pynn.models.load_model(path)
    for a, b in zip(loaded.predict(x, verbose=0), (out, scores)):
        np.testing.assert_array_equal(a, b)
