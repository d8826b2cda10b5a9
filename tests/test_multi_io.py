"""Models with several inputs and several outputs (Keras 3's functional API): training against
PyTorch, loss weights, list and dict forms, History keys, evaluate's order, predict's structure,
and the errors for data or compile arguments that do not fit the model."""

import numpy as np
import pytest
import torch

import pynn
from pynn import layers

N = 24


def data(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def two_by_two(seed=0, dict_outputs=False):
    """Inputs a (5) and b (3); a -> Dense 6 tanh, concatenated with b -> Dense 4 relu, then two
    heads: 'reg' (Dense 2, linear) and 'cls' (Dense 3, softmax)."""
    pynn.utils.set_random_seed(seed)
    a, b = pynn.Input(shape=(5,), name="a"), pynn.Input(shape=(3,), name="b")
    ha = layers.Dense(6, activation="tanh", name="ha")(a)
    h = layers.Dense(4, activation="relu", name="h")(layers.Concatenate(name="cat")([ha, b]))
    reg = layers.Dense(2, name="reg")(h)
    cls = layers.Dense(3, activation="softmax", name="cls")(h)
    outputs = {"reg": reg, "cls": cls} if dict_outputs else [reg, cls]
    return pynn.Model([a, b], outputs, name="two_by_two")


def xy(seed=1):
    rng = np.random.default_rng(seed)
    xa, xb = data((N, 5), seed), data((N, 3), seed + 1)
    return xa, xb, data((N, 2), seed + 2), rng.integers(0, 3, N)


def test_fit_matches_torch_sgd_with_loss_weights():
    m = two_by_two()
    m.compile(optimizer=pynn.optimizers.SGD(0.1),
              loss=["mse", "sparse_categorical_crossentropy"], loss_weights=[0.5, 2.0])
    xa, xb, yr, yc = xy()
    t = {ly.name: [torch.tensor(np.array(w), dtype=torch.float64, requires_grad=True)
                   for w in ly.get_weights()] for ly in m.layers if ly.weights}
    opt = torch.optim.SGD([w for ws in t.values() for w in ws], lr=0.1)

    def dense(name, h):
        k, b = t[name]
        return h @ k + b

    losses = []
    for start in range(0, N, 8):  # shuffle=False: the batches in order
        sl = slice(start, start + 8)
        a, b = torch.tensor(xa[sl], dtype=torch.float64), torch.tensor(xb[sl], dtype=torch.float64)
        h = torch.relu(dense("h", torch.cat([torch.tanh(dense("ha", a)), b], dim=1)))
        mse = ((dense("reg", h) - torch.tensor(yr[sl], dtype=torch.float64)) ** 2).mean()
        ce = torch.nn.functional.cross_entropy(dense("cls", h), torch.tensor(yc[sl]))
        loss = 0.5 * mse + 2.0 * ce
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    hist = m.fit([xa, xb], [yr, yc], batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert hist.history["loss"][0] == pytest.approx(np.mean(losses), rel=1e-5)
    for ly in m.layers:
        for w, tw in zip(ly.get_weights(), t.get(ly.name, [])):
            np.testing.assert_allclose(w, tw.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_loss_weights_scale_the_total_and_a_zero_weight_freezes_its_head():
    xa, xb, yr, yc = xy()
    m = two_by_two()
    m.compile(optimizer=pynn.optimizers.SGD(0.1),
              loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"},
              loss_weights={"reg": 3.0, "cls": 0.0})
    before = m.get_layer("cls").get_weights()
    r = m.evaluate([xa, xb], [yr, yc], verbose=0, return_dict=True)
    assert r["loss"] == pytest.approx(3.0 * r["reg_loss"], rel=1e-6)
    m.fit([xa, xb], [yr, yc], batch_size=8, epochs=2, verbose=0)
    for w0, w1 in zip(before, m.get_layer("cls").get_weights()):
        np.testing.assert_array_equal(w0, w1)  # no gradient reaches the zero-weighted head
    assert not np.allclose(m.get_layer("reg").get_weights()[0], 0)


def test_dict_and_list_forms_give_identical_results():
    xa, xb, yr, yc = xy()
    ml = two_by_two(seed=3)
    ml.compile(optimizer="adam", loss=["mse", "sparse_categorical_crossentropy"],
               loss_weights=[1.0, 0.5], metrics=[["mae"], ["accuracy"]])
    md = two_by_two(seed=3, dict_outputs=True)
    md.compile(optimizer="adam", loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
               loss_weights={"cls": 0.5}, metrics={"reg": "mae", "cls": ["accuracy"]})
    pynn.utils.set_random_seed(9)
    hl = ml.fit((xa, xb), (yr, yc), batch_size=8, epochs=2, verbose=0)
    pynn.utils.set_random_seed(9)
    hd = md.fit({"b": xb, "a": xa}, {"cls": yc, "reg": yr}, batch_size=8, epochs=2, verbose=0)
    assert hl.history == hd.history
    for name in ("ha", "h", "reg", "cls"):
        for wl, wd in zip(ml.get_layer(name).get_weights(), md.get_layer(name).get_weights()):
            np.testing.assert_array_equal(wl, wd)
    pl, pd = ml.predict([xa, xb], verbose=0), md.predict({"a": xa, "b": xb}, verbose=0)
    assert isinstance(pl, list) and isinstance(pd, dict) and set(pd) == {"reg", "cls"}
    np.testing.assert_array_equal(pl[0], pd["reg"])
    np.testing.assert_array_equal(pl[1], pd["cls"])


def test_history_keys_and_evaluate_order_follow_keras():
    xa, xb, yr, yc = xy()
    m = two_by_two()
    m.compile(optimizer="sgd", loss=["mse", "sparse_categorical_crossentropy"],
              metrics=[["mae"], ["accuracy"]])
    assert m.output_names == ["reg", "cls"] and m.input_names == ["a", "b"]
    assert m.metrics_names == ["loss", "reg_loss", "cls_loss", "reg_mae", "cls_accuracy"]
    h = m.fit([xa, xb], [yr, yc], batch_size=8, epochs=2, verbose=0, validation_split=0.25)
    names = {"loss", "reg_loss", "cls_loss", "reg_mae", "cls_accuracy"}
    assert set(h.history) == names | {"val_" + k for k in names}
    assert all(len(v) == 2 for v in h.history.values())
    values = m.evaluate([xa, xb], [yr, yc], batch_size=5, verbose=0)
    logs = m.evaluate([xa, xb], [yr, yc], batch_size=5, verbose=0, return_dict=True)
    assert list(logs) == m.metrics_names and values == list(logs.values())
    assert values[0] == pytest.approx(values[1] + values[2], rel=1e-6)
    # evaluate over batches of 5 equals one batch; on_batch returns the same order
    assert m.test_on_batch([xa, xb], [yr, yc]) == pytest.approx(values, rel=1e-5)
    p_reg = m.predict([xa, xb], verbose=0)[0]
    assert logs["reg_mae"] == pytest.approx(np.abs(p_reg - yr).mean(), rel=1e-5)


def test_predict_structures_and_batches():
    xa, xb, _, _ = xy()
    ml, md = two_by_two(), two_by_two(dict_outputs=True)
    for name in ("ha", "h", "reg", "cls"):  # a dict's outputs come in key order: cls first
        md.get_layer(name).set_weights(ml.get_layer(name).get_weights())
    whole = ml.predict([xa, xb], verbose=0)
    assert [p.shape for p in whole] == [(N, 2), (N, 3)]
    for got in (ml.predict([xa, xb], batch_size=5, verbose=0), ml.predict_on_batch([xa, xb]),
                ml([xa, xb])):
        assert isinstance(got, list) and len(got) == 2
        for g, w in zip(got, whole):
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)
    got = md({"a": xa, "b": xb})
    assert isinstance(got, dict)
    np.testing.assert_allclose(got["cls"], whole[1], rtol=1e-6, atol=1e-7)
    assert ml.output_shape == [(None, 2), (None, 3)]
    assert md.output_shape == {"reg": (None, 2), "cls": (None, 3)}
    assert ml.input_shape == [(None, 5), (None, 3)]


def test_one_output_keeps_its_dict_and_a_list_of_one_is_unpacked(tmp_path):
    # Keras 3: outputs={"y": t} gives {"y": array} from predict and call (also nested, and after
    # saving); outputs=[t] gives the bare array (Functional unpacks a singleton list)
    x = data((N, 4))
    pynn.utils.set_random_seed(3)
    inp = pynn.Input(shape=(4,), name="x")
    t = layers.Dense(2, name="d")(inp)
    md, ml = pynn.Model(inp, {"y": t}), pynn.Model(inp, [t])
    want = ml.predict(x, verbose=0)
    assert isinstance(want, np.ndarray) and want.shape == (N, 2)
    path = tmp_path / "one.keras"
    md.save(path)
    loaded = pynn.models.load_model(path)
    for got in (md.predict(x, verbose=0), md.predict(x, batch_size=5, verbose=0),
                md.predict_on_batch(x), md(x), loaded.predict(x, verbose=0)):
        assert isinstance(got, dict) and list(got) == ["y"]
        np.testing.assert_allclose(np.asarray(got["y"]), want, rtol=1e-6, atol=1e-7)
    assert md.output_shape == {"y": (None, 2)}
    assert isinstance(md(pynn.Input(shape=(4,))), dict)
    md.compile(optimizer="sgd", loss="mse")  # one output: y bare or in its dict, as Keras
    y = data((N, 2), seed=1)
    assert md.evaluate(x, y, verbose=0) == pytest.approx(md.evaluate(x, {"y": y}, verbose=0))


def test_one_node_as_two_outputs_and_an_output_feeding_another():
    pynn.utils.set_random_seed(4)
    x = pynn.Input(shape=(4,))
    h = layers.Dense(3, activation="tanh", name="hidden")(x)
    out = layers.Dense(2, name="out")(h)
    m = pynn.Model(x, [h, out, out])
    assert m.output_names == ["hidden", "out", "out_1"]
    m.compile(optimizer="sgd", loss="mse", loss_weights=[0.2, 1.0, 0.5])
    xs, yh, yo = data((6, 4)), data((6, 3), 1), data((6, 2), 2)
    r = m.evaluate(xs, [yh, yo, yo], verbose=0)
    assert r[0] == pytest.approx(0.2 * r[1] + r[2] + 0.5 * r[3], rel=1e-6)
    assert r[2] == pytest.approx(r[3])
    p = m.predict(xs, verbose=0)
    np.testing.assert_array_equal(p[1], p[2])
    m.fit(xs, [yh, yo, yo], epochs=2, verbose=0)


def test_embedding_on_a_second_int_input_checks_its_indices():
    pynn.utils.set_random_seed(5)
    f = pynn.Input(shape=(3,), name="f")
    ids = pynn.Input(shape=(2,), dtype="int32", name="ids")
    e = layers.Flatten()(layers.Embedding(10, 2)(ids))
    m = pynn.Model({"f": f, "ids": ids}, layers.Dense(1)(layers.Concatenate()([f, e])))
    m.compile(optimizer="sgd", loss="mse")
    xf, xi, y = data((4, 3)), np.array([[1, 2], [3, 4], [5, 6], [7, 8]]), data((4, 1))
    m.fit({"f": xf, "ids": xi}, y, verbose=0)
    assert m.predict({"f": xf, "ids": xi}, verbose=0).shape == (4, 1)
    with pytest.raises(ValueError, match="index 10"):
        m.predict({"f": xf, "ids": xi + 2}, verbose=0)


def test_nested_models_inside_a_multi_input_model():
    pynn.utils.set_random_seed(6)
    xi = pynn.Input(shape=(4,))
    inner = pynn.Model(xi, layers.Dense(3, activation="tanh")(xi), name="inner")
    p, q = pynn.Input(shape=(2,)), pynn.Input(shape=(2,))
    pair = pynn.Model([p, q], layers.Add()([p, q]), name="pair")
    a, b = pynn.Input(shape=(4,)), pynn.Input(shape=(2,))
    h = inner(a)
    outer = pynn.Model([a, b], [layers.Dense(1)(h), pair([b, b])])
    outer.compile(optimizer="sgd", loss="mse")
    xa, xb = data((5, 4)), data((5, 2), 1)
    outer.fit([xa, xb], [data((5, 1), 2), data((5, 2), 3)], verbose=0)
    got = outer.predict([xa, xb], verbose=0)
    np.testing.assert_allclose(got[1], 2 * xb, rtol=1e-6)
    np.testing.assert_allclose(inner.predict(xa, verbose=0),
                               np.tanh(xa @ inner.get_weights()[0] + inner.get_weights()[1]),
                               rtol=1e-5, atol=1e-6)


def test_summary_lists_every_input_and_connections(capsys):
    two_by_two().summary()
    text = capsys.readouterr().out
    assert "a (InputLayer)" in text and "b (InputLayer)" in text
    assert "ha[0][0], b[0][0]" in text and "(None, 3)" in text


@pytest.mark.parametrize("call, match", [
    (lambda m, xa, xb, yr, yc: m.fit([xa], [yr, yc], verbose=0),
     "Model 'two_by_two' has 2 inputs, but x holds 1 arrays"),
    (lambda m, xa, xb, yr, yc: m.predict(xa, verbose=0), "has 2 inputs, but x is a single array"),
    (lambda m, xa, xb, yr, yc: m.fit({"a": xa}, [yr, yc], verbose=0),
     "x has no entry for input 'b'"),
    (lambda m, xa, xb, yr, yc: m.predict({"a": xa, "b": xb, "c": xb}, verbose=0),
     "has an entry 'c'"),
    (lambda m, xa, xb, yr, yc: m.fit([xa, xb[:5]], [yr, yc], verbose=0),
     "x\\['a'\\] has 24 samples but x\\['b'\\] has 5"),
    (lambda m, xa, xb, yr, yc: m.fit([xa, xb[:, :2]], [yr, yc], verbose=0),
     "Input 'b' of model 'two_by_two' has shape \\(None, 3\\)"),
    (lambda m, xa, xb, yr, yc: m.fit([xa, xb], [yr], verbose=0),
     "Model 'two_by_two' has 2 outputs, but y holds 1 arrays"),
    (lambda m, xa, xb, yr, yc: m.evaluate([xa, xb], yr, verbose=0),
     "has 2 outputs, but y is a single array"),
    (lambda m, xa, xb, yr, yc: m.train_on_batch([xa, xb], {"reg": yr}),
     "y has no entry for output 'cls'"),
    (lambda m, xa, xb, yr, yc: m.fit([xa, xb], [yr[:4], yc], verbose=0),
     "x has 24 samples but y\\['reg'\\] has 4"),
])
def test_data_that_does_not_fit_the_model_is_refused(call, match):
    m = two_by_two()
    m.compile(optimizer="sgd", loss=["mse", "sparse_categorical_crossentropy"])
    w = m.get_weights()
    with pytest.raises(ValueError, match=match):
        call(m, *xy())
    for a, b in zip(w, m.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs, match", [
    ({"loss": ["mse"]}, "loss is a list of 1, but model 'two_by_two' has 2 outputs"),
    ({"loss": {"reg": "mse", "nope": "mse"}}, "loss names output 'nope'"),
    ({"loss": {"reg": "mse"}}, "without an entry for output 'cls'"),
    ({"loss": "mse", "loss_weights": [1.0]}, "loss_weights is a list of 1"),
    ({"loss": "mse", "loss_weights": {"nope": 1.0}}, "loss_weights names output 'nope'"),
    ({"loss": "mse", "loss_weights": 2.0}, "must be a list or a dict"),
    ({"loss": "mse", "metrics": ["mae"]}, "one entry .* per output"),
    ({"loss": "mse", "metrics": {"nope": "mae"}}, "metrics names output 'nope'"),
    ({"loss": "mse", "metrics": "mae"}, "metrics must be a list"),
])
def test_compile_arguments_that_do_not_fit_the_outputs_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        two_by_two().compile(optimizer="sgd", **kwargs)


def test_bad_graphs_name_the_input_or_layer():
    a, b = pynn.Input(shape=(2,), name="used"), pynn.Input(shape=(2,), name="unused")
    with pytest.raises(ValueError, match="input 'unused' is not used"):
        pynn.Model([a, b], layers.Dense(1)(a))
    stray = pynn.Input(shape=(2,), name="stray")
    with pytest.raises(ValueError, match="depend on 'stray', which is not the model's input"):
        pynn.Model(a, [layers.Dense(1)(a), layers.Dense(1, name="lost")(stray)])


def _two_outputs_python_loss():
    pynn.utils.set_random_seed(0)
    inp = pynn.Input((4,))
    a = pynn.layers.Dense(2, name="a")(inp)
    b = pynn.layers.Dense(3, name="b")(inp)
    model = pynn.Model(inp, [a, b])
    # Huber is not one of the core's losses: the model trains and evaluates by Python steps
    model.compile(optimizer="sgd", loss=[pynn.losses.Huber(), "mse"], loss_weights=[1.0, 0.5],
                  metrics=[["mae"], ["mse", "mae"]])
    return model


def test_python_step_losses_give_each_outputs_loss_and_metrics_as_keras_3():
    """Keras 3's keys for this compile: 'loss', 'a_loss', 'b_loss' (unweighted), and each
    output's metrics as '<output>_<metric>' (from a Keras 3 run of the same script)."""
    rng = np.random.default_rng(0)
    x = rng.random((20, 4), dtype=np.float32)
    ya, yb = rng.random((20, 2), dtype=np.float32), rng.random((20, 3), dtype=np.float32)
    model = _two_outputs_python_loss()
    history = model.fit(x, [ya, yb], epochs=1, batch_size=8, verbose=0)
    assert sorted(history.history) == ["a_loss", "a_mae", "b_loss", "b_mae", "b_mse", "loss"]
    got = model.evaluate(x, {"a": ya, "b": yb}, batch_size=8, verbose=0, return_dict=True)
    pa, pb = model.predict(x, verbose=0)
    err = np.abs(pa - ya)
    huber = np.where(err <= 1.0, 0.5 * err ** 2, err - 0.5).mean()
    mse_b = ((pb - yb) ** 2).mean()
    want = {"a_loss": huber, "b_loss": mse_b, "loss": huber + 0.5 * mse_b,
            "a_mae": np.abs(pa - ya).mean(), "b_mse": mse_b, "b_mae": np.abs(pb - yb).mean()}
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-5), key
    # the list form follows metrics_names: the loss, each output's, then the metrics
    values = model.evaluate(x, [ya, yb], batch_size=8, verbose=0)
    assert values == pytest.approx([got[k] for k in model.metrics_names], rel=1e-6)


def test_python_step_loss_is_a_mean_over_samples_when_the_last_batch_is_smaller():
    rng = np.random.default_rng(1)
    x = rng.random((20, 4), dtype=np.float32)
    ya, yb = rng.random((20, 2), dtype=np.float32), rng.random((20, 3), dtype=np.float32)
    model = _two_outputs_python_loss()
    whole = model.evaluate(x, [ya, yb], batch_size=20, verbose=0, return_dict=True)
    batched = model.evaluate(x, [ya, yb], batch_size=8, verbose=0, return_dict=True)  # 8, 8, 4
    for key in ("loss", "a_loss", "b_loss"):
        assert batched[key] == pytest.approx(whole[key], rel=1e-5), key
