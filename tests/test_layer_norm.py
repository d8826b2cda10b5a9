"""LayerNormalization: PyTorch parity (nn.LayerNorm with epsilon mapped; Keras's rms_scaling
written in torch), finite differences, Keras semantics and bad arguments."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import pynn
from pynn import layers as L


def rnd(shape, seed, scale=1.0, shift=0.0):
    return (np.random.default_rng(seed).normal(size=shape) * scale + shift).astype(np.float32)


def ln_model(shape, seed=0, **kwargs):
    pynn.utils.set_random_seed(seed)
    layer = L.LayerNormalization(**kwargs)
    model = pynn.Sequential([pynn.Input(shape), layer])
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(seed + 1)
    for w in layer.weights:  # gamma and beta away from their initial 1 and 0
        w.assign((w.numpy() + rng.normal(scale=0.5, size=w.shape)).astype(np.float32))
    return model, layer


def torch_ln(x, layer, weights):
    """Keras 3's LayerNormalization in torch (float64)."""
    eps = layer.epsilon
    gamma = weights[0] if (layer.scale or layer.rms_scaling) else None
    beta = weights[-1] if (layer.center and not layer.rms_scaling) else None
    if layer.rms_scaling:
        var = x.var(dim=-1, unbiased=False, keepdim=True)
        return x * torch.rsqrt(var + eps) * gamma
    return F.layer_norm(x, (x.shape[-1],), gamma, beta, eps=eps)


def check_parity(model, layer, x, y):
    core = model._core
    loss, dx = core.gradients(x, y, True)
    grads = [np.array(core.gradient(v)) for v in layer._var_ids]
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    tw = [torch.tensor(w.numpy(), dtype=torch.float64, requires_grad=True) for w in layer.weights]
    out = torch_ln(tx, layer, tw)
    tloss = ((out - torch.tensor(y, dtype=torch.float64)) ** 2).mean()
    tloss.backward()
    np.testing.assert_allclose(model.predict(x, verbose=0), out.detach().numpy(), rtol=1e-4,
                               atol=2e-5)
    np.testing.assert_allclose(loss, tloss.item(), rtol=1e-4)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-3, atol=1e-6)
    for w, g, t in zip(layer.weights, grads, tw):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-3, atol=1e-6, err_msg=w.path)


@pytest.mark.parametrize("shape", [(16,), (7, 5), (3, 4, 6)], ids=["rank2", "rank3", "rank4"])
@pytest.mark.parametrize("scale, center", [(True, True), (True, False), (False, True),
                                           (False, False)])
def test_layer_norm_matches_torch(shape, scale, center):
    model, layer = ln_model(shape, scale=scale, center=center)
    x = rnd((4,) + shape, 1, scale=2.0, shift=0.5)
    check_parity(model, layer, x, rnd((4,) + shape, 2))


def test_layer_norm_matches_nn_layernorm_with_epsilon_mapped():
    model, layer = ln_model((6, 10), epsilon=1e-5)
    x = rnd((3, 6, 10), 3)
    ref = torch.nn.LayerNorm(10, eps=1e-5, dtype=torch.float64)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(layer.weights[0].numpy()))
        ref.bias.copy_(torch.tensor(layer.weights[1].numpy()))
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               ref(torch.tensor(x, dtype=torch.float64)).detach().numpy(),
                               rtol=1e-4, atol=2e-5)


def test_rms_scaling_matches_keras_definition_in_torch():
    model, layer = ln_model((5, 12), rms_scaling=True)
    assert [w.name for w in layer.weights] == ["gamma"]
    x = rnd((3, 5, 12), 4, shift=1.0)
    check_parity(model, layer, x, rnd((3, 5, 12), 5))


def test_large_batch_runs_on_threads_and_matches_torch_with_a_large_mean():
    # R * C above the parallel threshold; a mean far from 0 (the two-pass variance holds)
    model, layer = ln_model((64, 128))
    x = rnd((12, 64, 128), 6, scale=0.5, shift=30.0)
    check_parity(model, layer, x, rnd((12, 64, 128), 7))


def test_one_feature_gives_beta():
    model, layer = ln_model((3, 1))
    out = model.predict(rnd((2, 3, 1), 8), verbose=0)
    np.testing.assert_allclose(out, np.broadcast_to(layer.weights[1].numpy(), out.shape),
                               atol=1e-6)


@pytest.mark.parametrize("kwargs", [{}, {"center": False}, {"rms_scaling": True}])
def test_layer_norm_gradients_match_finite_differences(kwargs):
    from helpers import grad_check
    model, _ = ln_model((3, 7), **kwargs)
    grad_check(model, rnd((2, 3, 7), 9), rnd((2, 3, 7), 10))


def test_keras_defaults_weights_and_config_round_trip():
    layer = L.LayerNormalization()
    assert layer.epsilon == 1e-3 and layer.center and layer.scale and not layer.rms_scaling
    model = pynn.Sequential([pynn.Input((4, 6)), layer])
    assert [w.path for w in layer.weights] == [f"{layer.name}/gamma", f"{layer.name}/beta"]
    assert model.count_params() == 12
    np.testing.assert_array_equal(layer.weights[0], np.ones(6))
    np.testing.assert_array_equal(layer.weights[1], np.zeros(6))
    cfg = layer.get_config()
    assert cfg["axis"] == -1 and cfg["epsilon"] == 1e-3
    assert L.LayerNormalization.from_config(cfg).get_config() == cfg
    assert L.LayerNormalization(axis=2).compute_output_shape((None, 4, 6)) == (None, 4, 6)


def test_save_load_and_fit(tmp_path):
    model, _ = ln_model((5, 8))
    x, y = rnd((16, 5, 8), 11), rnd((16, 5, 8), 12)
    hist = model.fit(x, y, batch_size=4, epochs=3, verbose=0).history["loss"]
    assert hist[-1] < hist[0]
    model.save(tmp_path / "ln.keras")
    loaded = pynn.saving.load_model(tmp_path / "ln.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_called_on_data_records_backward():
    layer = L.LayerNormalization()
    x = pynn.Tensor(rnd((2, 3, 4), 13), requires_grad=True)
    out = layer(x)
    (out * out).sum().backward()
    assert x.grad.shape == (2, 3, 4)
    assert layer.weights[0].grad is not None


@pytest.mark.parametrize("kwargs, match", [
    ({"axis": [1, 2]}, "one axis"),
    ({"axis": "x"}, "one axis"),
    ({"epsilon": 0.0}, "epsilon"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        L.LayerNormalization(**kwargs)


def test_an_axis_other_than_the_last_is_refused_before_building():
    layer = L.LayerNormalization(axis=1)
    with pytest.raises(ValueError, match="only the last axis"):
        pynn.Sequential([pynn.Input((4, 6)), layer])
    assert not layer.built
