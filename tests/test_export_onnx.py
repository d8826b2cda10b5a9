"""ONNX export (Model.export(format='onnx')): each model's file passes onnx.checker and runs in
onnxruntime at batch 1 and 7 with outputs equal to model.predict within 1e-5."""

import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import pynn  # noqa: E402

L = pynn.layers
ATOL = 1e-5


def _session(model, path, **kw):
    model.export(path, format="onnx", verbose=False, **kw)
    onnx.checker.check_model(str(path))
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _check(model, make, tmp_path, name="m.onnx"):
    """Exports `model`, runs it at batch 1 and 7 (make(n) gives the inputs, a list) and
    compares with predict; returns the session."""
    sess = _session(model, tmp_path / name)
    assert sess.get_inputs()[0].shape[0] == "batch"
    for n in (1, 7):
        xs = make(n)
        got = sess.run(None, {i.name: x for i, x in zip(sess.get_inputs(), xs)})
        want = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
        want = list(want.values()) if isinstance(want, dict) else want
        want = want if isinstance(want, list) else [want]
        assert len(got) == len(want)
        for a, b in zip(got, want):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, atol=ATOL, rtol=0)
    return sess


def _normal(*shape, seed=0):
    return np.random.default_rng(seed + shape[0]).standard_normal(shape).astype(np.float32)


def _fit_a_little(model, x, y):
    """One epoch of training so BatchNormalization's moving statistics and the weights are
    not their initial values."""
    model.compile("adam", "mse")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)


def test_mlp_with_every_activation(tmp_path):
    acts = ["relu", "sigmoid", "tanh", "leaky_relu", "elu", "selu", "gelu", "swish",
            "softplus", "linear"]
    model = pynn.Sequential([pynn.Input((8,))] + [L.Dense(12, a) for a in acts]
                            + [L.Dropout(0.5), L.Dense(3, "softmax")])
    _check(model, lambda n: [_normal(n, 8)], tmp_path)


def test_activation_layers(tmp_path):
    model = pynn.Sequential([pynn.Input((6,)), L.Dense(6), L.ReLU(), L.Dense(6),
                             L.LeakyReLU(0.1), L.Dense(6), L.ELU(0.5),
                             L.Activation("gelu"), L.Dense(4), L.Softmax()])
    _check(model, lambda n: [_normal(n, 6)], tmp_path)


def test_cnn_with_batch_normalization(tmp_path):
    model = pynn.Sequential([
        pynn.Input((12, 12, 3)),
        L.Conv2D(6, 3, padding="same", activation="relu"), L.BatchNormalization(),
        L.MaxPooling2D(), L.Conv2D(8, 3, strides=2, padding="same"),
        L.BatchNormalization(), L.AveragePooling2D(2, padding="same"),
        L.Conv2D(8, 2, dilation_rate=2, groups=2, padding="same", use_bias=False),
        L.Flatten(), L.Dropout(0.2), L.Dense(4)])
    _fit_a_little(model, _normal(32, 12, 12, 3), _normal(32, 4))
    _check(model, lambda n: [_normal(n, 12, 12, 3)], tmp_path)


def test_conv_channels_first_and_global_pools(tmp_path):
    model = pynn.Sequential([
        pynn.Input((3, 10, 10)),
        L.Conv2D(4, 3, data_format="channels_first", padding="same"),
        L.BatchNormalization(axis=1), L.MaxPooling2D(data_format="channels_first"),
        L.GlobalAveragePooling2D(data_format="channels_first"), L.Dense(2)])
    _fit_a_little(model, _normal(16, 3, 10, 10), _normal(16, 2))
    _check(model, lambda n: [_normal(n, 3, 10, 10)], tmp_path)
    model = pynn.Sequential([pynn.Input((9, 9, 2)), L.Conv2D(3, 2),
                             L.GlobalMaxPooling2D(keepdims=True), L.Flatten()])
    _check(model, lambda n: [_normal(n, 9, 9, 2)], tmp_path, "g.onnx")


def test_conv1d(tmp_path):
    model = pynn.Sequential([
        pynn.Input((20, 3)), L.Conv1D(4, 3, padding="causal", dilation_rate=2),
        L.MaxPooling1D(2), L.Conv1D(5, 3, padding="same", strides=2),
        L.AveragePooling1D(2, padding="same"), L.Conv1D(4, 2, activation="tanh"),
        L.GlobalMaxPooling1D(), L.Reshape((2, 2)), L.LayerNormalization(), L.Flatten(),
        L.Dense(2)])
    _check(model, lambda n: [_normal(n, 20, 3)], tmp_path)
    model = pynn.Sequential([pynn.Input((10, 4)), L.Conv1D(3, 3),
                             L.GlobalAveragePooling1D(), L.Dense(1)])
    _check(model, lambda n: [_normal(n, 10, 4)], tmp_path, "g.onnx")


def test_layer_normalization_variants(tmp_path):
    x = pynn.Input((5, 8))
    a = L.LayerNormalization(epsilon=1e-5)(L.Dense(8)(x))
    b = L.LayerNormalization(center=False, scale=False)(x)
    c = L.LayerNormalization(rms_scaling=True)(x)
    model = pynn.Model(x, [a, b, c])
    for layer in model.layers[1:]:  # gamma and beta other than 1 and 0
        layer.set_weights([w + 0.3 * _normal(*w.shape) for w in layer.get_weights()])
    _check(model, lambda n: [_normal(n, 5, 8)], tmp_path)


def test_embedding_lstm_gru_text_model(tmp_path):
    model = pynn.Sequential([
        pynn.Input((10,), dtype="int32"), L.Embedding(50, 8),
        L.LSTM(6, return_sequences=True), L.GRU(5, return_sequences=True),
        L.SimpleRNN(4, activation="relu", return_sequences=True), L.GRU(4, reset_after=False),
        L.Dense(2)])
    rng = np.random.default_rng(1)
    x = rng.integers(0, 50, (24, 10)).astype(np.int32)
    _fit_a_little(model, x, _normal(24, 2))
    _check(model, lambda n: [rng.integers(0, 50, (n, 10)).astype(np.int32)], tmp_path)


def test_recurrent_states_and_go_backwards(tmp_path):
    x = pynn.Input((7, 3))
    seq, h, c = L.LSTM(4, return_sequences=True, return_state=True)(x)
    g_out, g_h = L.GRU(3, return_state=True, go_backwards=True)(seq)
    back = L.LSTM(2, go_backwards=True, use_bias=False)(x)
    model = pynn.Model(x, [seq, h, c, g_out, g_h, back])
    _check(model, lambda n: [_normal(n, 7, 3)], tmp_path)


def test_two_input_two_output_functional_model(tmp_path):
    a = pynn.Input((6,), name="a")
    b = pynn.Input((4,), name="b")
    h = L.Concatenate()([L.Dense(5)(a), L.Dense(5, "relu")(b)])
    h2 = L.Add()([L.Dense(10)(h), h])
    h3 = L.Multiply()([h2, h])
    h4 = L.Average()([L.Subtract()([h3, h2]), L.Maximum()([h, h3]), L.Minimum()([h, h2])])
    model = pynn.Model([a, b], [L.Dense(2, name="score")(h4),
                                L.Dense(1, "sigmoid", name="prob")(h2)])
    sess = _check(model, lambda n: [_normal(n, 6), _normal(n, 4, seed=3)], tmp_path)
    assert [i.name for i in sess.get_inputs()] == ["a", "b"]
    assert [o.name for o in sess.get_outputs()] == ["score", "prob"]


def test_dict_outputs_and_nested_model(tmp_path):
    inner = pynn.Sequential([pynn.Input((4,)), L.Dense(4, "tanh"), L.Dense(3)], name="inner")
    x = pynn.Input((4,), name="x")
    h = inner(x)
    model = pynn.Model(x, {"y": L.Dense(2)(h), "z": L.Concatenate(axis=1)([h, x])})
    sess = _check(model, lambda n: [_normal(n, 4)], tmp_path)
    assert [o.name for o in sess.get_outputs()] == ["y", "z"]


def test_input_signature_fixes_the_batch(tmp_path):
    model = pynn.Sequential([pynn.Input((3,)), L.Dense(2)])
    sess = _session(model, tmp_path / "m.onnx", input_signature=[(5, 3)])
    assert sess.get_inputs()[0].shape == [5, 3]
    with pytest.raises(ValueError, match="input_signature"):
        model.export(tmp_path / "n.onnx", format="onnx", verbose=False,
                     input_signature=[(None, 4)])


def test_verbose_message_and_atomic_overwrite(tmp_path, capsys):
    model = pynn.Sequential([pynn.Input((3,)), L.Dense(2)])
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    model.export(path, format="onnx")
    assert "Saved artifact at" in capsys.readouterr().out
    onnx.checker.check_model(str(path))
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temporary file left


def test_unsupported_layer_raises_before_writing(tmp_path):
    model = pynn.Sequential([pynn.Input((4, 4, 2)), L.ZeroPadding2D(1), L.Flatten()])
    path = tmp_path / "m.onnx"
    with pytest.raises(NotImplementedError, match="ZeroPadding2D"):
        model.export(path, format="onnx", verbose=False)
    assert not os.path.exists(path)


def test_unsupported_argument_raises(tmp_path):
    model = pynn.Sequential([pynn.Input((5,), dtype="int32"), L.Embedding(9, 3, mask_zero=True),
                             L.LSTM(2)])
    with pytest.raises(NotImplementedError, match="Embedding.*mask_zero"):
        model.export(tmp_path / "m.onnx", format="onnx", verbose=False)
    model = pynn.Sequential([pynn.Input((5, 2)), L.LSTM(2, go_backwards=True,
                                                        return_sequences=True)])
    with pytest.raises(NotImplementedError, match="LSTM.*go_backwards"):
        model.export(tmp_path / "m.onnx", format="onnx", verbose=False)
    assert not os.path.exists(tmp_path / "m.onnx")


def test_other_formats():
    model = pynn.Sequential([pynn.Input((3,)), L.Dense(2)])
    with pytest.raises(NotImplementedError, match="tf_saved_model"):
        model.export("m", format="tf_saved_model")
    with pytest.raises(ValueError, match="Unrecognized format"):
        model.export("m", format="nope")
    with pytest.raises(TypeError, match="unexpected keyword"):
        model.export("m.onnx", format="onnx", bogus=1)


# -- MultiHeadAttention (issue 20) ---------------------------------------------------------------
def _perturb(model):
    """Biases, gammas and betas other than their initial zeros and ones."""
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            layer.set_weights([w + 0.2 * _normal(*w.shape, seed=7) if w.ndim else w for w in ws])


def _tokens(n, steps, seed=0):
    return np.random.default_rng(seed + 100 * n + steps).integers(0, 30, (n, steps)).astype(
        np.int32)


def _transformer_block(x, dim=16, heads=4, key_dim=8):
    a = L.MultiHeadAttention(heads, key_dim, dropout=0.1)(x, x, use_causal_mask=True)
    x = L.LayerNormalization(epsilon=1e-5)(L.Add()([x, a]))
    f = L.Dense(dim)(L.Dense(2 * dim, "relu")(x))
    return L.LayerNormalization()(L.Add()([x, f]))


def test_transformer_block_with_position_embedding(tmp_path):
    x = pynn.Input((12,), dtype="int32")
    e = L.Embedding(30, 16)(x)
    h = L.Add()([e, L.PositionEmbedding(12)(e)])
    model = pynn.Model(x, L.Dense(3)(_transformer_block(h)))
    _perturb(model)
    _check(model, lambda n: [_tokens(n, 12)], tmp_path)


def test_transformer_block_dynamic_steps(tmp_path):
    x = pynn.Input((None,), dtype="int32")
    model = pynn.Model(x, _transformer_block(L.Embedding(30, 16)(x)))
    _perturb(model)
    sess = _session(model, tmp_path / "m.onnx")  # one file for every length
    assert sess.get_inputs()[0].shape[0] == "batch"
    assert isinstance(sess.get_inputs()[0].shape[1], str)
    for steps in (12, 5):
        for n in (1, 7):
            x = _tokens(n, steps)
            got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
            want = model.predict(x, verbose=0)
            assert got.shape == want.shape == (n, steps, 16)
            np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


def test_mha_key_dim_value_dim_no_bias_keywords(tmp_path):
    q = pynn.Input((6, 10))
    v = pynn.Input((9, 10))
    k = pynn.Input((9, 7))
    a = L.MultiHeadAttention(3, 4, value_dim=5, use_bias=False, output_shape=8)(
        query=q, value=v, key=k, use_causal_mask=True)
    b = L.MultiHeadAttention(2, 6, value_dim=3)(q, v)
    model = pynn.Model([q, v, k], [a, b])
    _perturb(model)
    _check(model, lambda n: [_normal(n, 6, 10), _normal(n, 9, 10, seed=1),
                             _normal(n, 9, 7, seed=2)], tmp_path)


def test_mha_cross_attention_different_lengths(tmp_path):
    q = pynn.Input((5, 8))
    v = pynn.Input((11, 8))
    model = pynn.Model([q, v], L.MultiHeadAttention(2, 4)(q, v, use_causal_mask=False))
    _perturb(model)
    _check(model, lambda n: [_normal(n, 5, 8), _normal(n, 11, 8, seed=1)], tmp_path)


def test_mha_attention_mask(tmp_path):
    q = pynn.Input((4, 6))
    m = pynn.Input((4, 4), dtype="int32")
    model = pynn.Model([q, m], L.MultiHeadAttention(2, 3)(q, q, attention_mask=m,
                                                          use_causal_mask=True))
    _perturb(model)

    def make(n):
        mask = np.random.default_rng(n).integers(0, 2, (n, 4, 4)).astype(np.int32)
        mask[0, 1] = 0  # a row with every key masked: uniform over the keys
        return [_normal(n, 4, 6), mask]
    _check(model, make, tmp_path)


def test_mha_refusals(tmp_path):
    q = pynn.Input((4, 6))
    out, scores = L.MultiHeadAttention(2, 3)(q, q, return_attention_scores=True)
    model = pynn.Model(q, out)
    with pytest.raises(NotImplementedError, match="MultiHeadAttention.*return_attention_scores"):
        model.export(tmp_path / "m.onnx", format="onnx", verbose=False)
    with pytest.raises(ValueError, match="attention_axes"):  # pynn refuses it when built
        L.MultiHeadAttention(2, 3, attention_axes=(2,))
    layer = L.MultiHeadAttention(2, 3)
    model = pynn.Model(q, layer(q, q))
    layer.attention_axes = (1, 2)  # as a layer restored from another config would carry it
    with pytest.raises(NotImplementedError, match="MultiHeadAttention.*attention_axes"):
        model.export(tmp_path / "m.onnx", format="onnx", verbose=False)
    assert not os.path.exists(tmp_path / "m.onnx")
