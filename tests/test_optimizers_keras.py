"""Keras 3's optimizers beyond the first five (Nadam, Adamax, Adadelta, Lion, Adafactor, Ftrl,
Lamb, Muon, ScheduleFreeAdamW, LossScaleOptimizer), the options every optimizer takes (use_ema,
gradient_accumulation_steps, global_clipnorm, loss_scale_factor, exclude_from_weight_decay) and
CosineDecayRestarts.

The runs of tests/keras_reference/optimizers.py (a fixed gradient sequence through
`optimizer.apply`, and two epochs of `fit`, per optimizer) are compared with what Keras 3 (JAX)
gave (optimizers.npz); NAdam, Adamax and Adadelta also against PyTorch's; the rest checks
configs, training, saving and refusals."""

import json
import os
import warnings

import numpy as np
import pytest
from helpers import (
    keras_reference_module,
    keras_reference_values,
    keras_values_now,
)

import pynn
from pynn import mixed_precision, optimizers
from pynn.optimizers import schedules


def _reference_module():
    mod = keras_reference_module("optimizers")
    return mod


ref_mod = _reference_module()


@pytest.fixture(scope="module")
def keras_run():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mine = ref_mod.run()
    return mine, keras_reference_values("optimizers")


# ---- against Keras 3 -----------------------------------------------------------------------

@pytest.mark.skipif(not os.environ.get("PYNN_KERAS_PYTHON"),
                    reason="set PYNN_KERAS_PYTHON to a Python with keras and jax")
def test_the_stored_keras_reference_is_what_keras_computes(tmp_path):
    fresh = keras_values_now("optimizers", os.environ["PYNN_KERAS_PYTHON"], "jax",
                             tmp_path, timeout=600)
    stored = keras_reference_values("optimizers")
    assert fresh.keys() == stored.keys()
    for k in stored:
        if k.startswith("config/"):
            assert json.loads(str(fresh[k])) == json.loads(str(stored[k])), k
        else:
            np.testing.assert_allclose(fresh[k], stored[k], rtol=1e-5, atol=1e-6, err_msg=k)


def _initial_weights(seed: int) -> list:
    m = ref_mod.model()
    ref_mod.set_weights(m, seed)
    return m.get_weights()


@pytest.mark.parametrize("case", sorted(ref_mod.cases()))
def test_apply_matches_keras(keras_run, case):
    """The same gradients through optimizer.apply give Keras's weights, step count (and for a
    loss scale its scale; with use_ema the averages after finalize_variable_values)."""
    mine, ref = keras_run
    keys = [k for k in ref if k.startswith(f"{case}/apply/")]
    assert keys
    for k in keys:
        np.testing.assert_allclose(mine[k], ref[k], rtol=2e-5, atol=5e-6, err_msg=k)
    start = _initial_weights(0)
    moved = max(np.abs(mine[f"{case}/apply/w{i}"] - w).max() for i, w in enumerate(start))
    assert moved > 1e-3, "the weights barely moved: the comparison would prove nothing"


@pytest.mark.parametrize("case", ref_mod.FIT)
def test_fit_matches_keras(keras_run, case):
    """Two epochs of fit (the fused core step) give Keras's losses and weights."""
    mine, ref = keras_run
    for k in [k for k in ref if k.startswith(f"{case}/fit/")]:
        np.testing.assert_allclose(mine[k], ref[k], rtol=2e-5, atol=5e-6, err_msg=k)
    loss = mine[f"{case}/fit/loss"]
    assert loss[-1] < loss[0]


@pytest.mark.parametrize("name", sorted(ref_mod.SCHEDULES))
def test_cosine_decay_restarts_matches_keras(keras_run, name):
    mine, ref = keras_run
    np.testing.assert_allclose(mine[f"schedule/{name}"], ref[f"schedule/{name}"], rtol=1e-6,
                               atol=1e-8)


def _same_config(mine, ref, where=""):
    """Configs equal, floats to float32 precision (Keras stores its learning rate as one)."""
    assert set(mine) == set(ref), f"{where}: keys {sorted(set(mine) ^ set(ref))}"
    for k, v in ref.items():
        if isinstance(v, dict):
            _same_config(mine[k], v, f"{where}.{k}")
        elif isinstance(v, float):
            assert mine[k] == pytest.approx(v, rel=1e-7), f"{where}.{k}"
        elif k != "module":
            assert mine[k] == v, f"{where}.{k}: {mine[k]!r} != {v!r}"


@pytest.mark.parametrize("name", ref_mod.CLASSES + ["LossScaleOptimizer", "schedules"])
def test_default_config_is_keras(keras_run, name):
    """Every argument's name and default as Keras 3.15 writes them in get_config."""
    mine, ref = keras_run
    _same_config(json.loads(str(mine[f"config/{name}"])), json.loads(str(ref[f"config/{name}"])),
                 name)


# ---- against PyTorch ------------------------------------------------------------------------

TINY_EPS = 1e-12  # torch's Adamax adds epsilon inside the max, Keras outside: make it negligible

TORCH_CASES = {
    "nadam": (lambda: optimizers.Nadam(learning_rate=0.02),
              lambda torch, p: torch.optim.NAdam(p, lr=0.02, eps=1e-7, momentum_decay=1.0)),
    "nadam_betas": (lambda: optimizers.Nadam(learning_rate=0.05, beta_1=0.7, beta_2=0.9),
                    lambda torch, p: torch.optim.NAdam(p, lr=0.05, betas=(0.7, 0.9), eps=1e-7,
                                                       momentum_decay=1.0)),
    "adamax": (lambda: optimizers.Adamax(learning_rate=0.02, epsilon=TINY_EPS),
               lambda torch, p: torch.optim.Adamax(p, lr=0.02, eps=TINY_EPS)),
    "adamax_betas": (lambda: optimizers.Adamax(learning_rate=0.05, beta_1=0.5, beta_2=0.8,
                                               epsilon=TINY_EPS),
                     lambda torch, p: torch.optim.Adamax(p, lr=0.05, betas=(0.5, 0.8),
                                                         eps=TINY_EPS)),
    "adadelta": (lambda: optimizers.Adadelta(learning_rate=1.0),
                 lambda torch, p: torch.optim.Adadelta(p, lr=1.0, rho=0.95, eps=1e-7)),
    "adadelta_rho": (lambda: optimizers.Adadelta(learning_rate=0.5, rho=0.8, epsilon=1e-4),
                     lambda torch, p: torch.optim.Adadelta(p, lr=0.5, rho=0.8, eps=1e-4)),
}


@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_rule_matches_pytorch(case):
    """The fixed gradient sequence through pynn's optimizer and torch's (float64) give the
    same weights after every step."""
    torch = pytest.importorskip("torch")
    make_pynn, make_torch = TORCH_CASES[case]
    m = ref_mod.model()
    ref_mod.set_weights(m, 0)
    weights = m.trainable_weights
    params = [torch.tensor(np.array(w), dtype=torch.float64, requires_grad=True)
              for w in weights]
    opt, topt = make_pynn(), make_torch(torch, params)
    for t, gs in enumerate(ref_mod.gradients([tuple(w.shape) for w in weights])):
        opt.apply(gs, weights)
        for p, g in zip(params, gs):
            p.grad = torch.tensor(g, dtype=torch.float64)
        topt.step()
        for w, p in zip(weights, params):
            np.testing.assert_allclose(np.array(w), p.detach().numpy(), rtol=2e-5, atol=2e-6,
                                       err_msg=f"{w.path} after step {t + 1}")


# ---- the names, configs and refusals ------------------------------------------------------

KERAS_NAMES = ["Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "Ftrl", "Lamb",
               "Lion", "LossScaleOptimizer", "MultiOptimizer", "Muon", "Nadam", "Optimizer",
               "OptimizerMap", "RMSprop", "SGD", "ScheduleFreeAdamW", "deserialize", "get",
               "legacy", "schedules", "serialize"]


def test_at_least_twenty_of_keras_optimizer_names():
    have = [n for n in KERAS_NAMES if hasattr(optimizers, n)]
    assert len(have) >= 21, sorted(set(KERAS_NAMES) - set(have))
    for n in ("CosineDecay", "CosineDecayRestarts", "ExponentialDecay", "InverseTimeDecay",
              "LearningRateSchedule", "PiecewiseConstantDecay", "PolynomialDecay", "deserialize",
              "serialize"):
        assert hasattr(schedules, n), n


def test_legacy_optimizers_raise_import_error_as_keras_3():
    with pytest.raises(ImportError, match="legacy"):
        optimizers.legacy.Adam()


ALL = {
    "Nadam": lambda: optimizers.Nadam(learning_rate=0.01, beta_1=0.8, use_ema=True),
    "Adamax": lambda: optimizers.Adamax(epsilon=1e-5, gradient_accumulation_steps=4),
    "Adadelta": lambda: optimizers.Adadelta(rho=0.9, global_clipnorm=2.0),
    "Lion": lambda: optimizers.Lion(beta_2=0.95, weight_decay=0.01),
    "Adafactor": lambda: optimizers.Adafactor(clip_threshold=2.0, relative_step=False),
    "Ftrl": lambda: optimizers.Ftrl(l1_regularization_strength=0.1, beta=0.5),
    "Lamb": lambda: optimizers.Lamb(clipvalue=1.0, loss_scale_factor=4.0),
    "Muon": lambda: optimizers.Muon(exclude_layers=["head", "out.*"], rms_rate=None),
    "ScheduleFreeAdamW": lambda: optimizers.ScheduleFreeAdamW(warmup_steps=10),
    "SGD": lambda: optimizers.SGD(momentum=0.9, use_ema=True, ema_overwrite_frequency=5),
    "Adam": lambda: optimizers.Adam(learning_rate=schedules.CosineDecayRestarts(0.1, 5)),
    "LossScaleOptimizer": lambda: optimizers.LossScaleOptimizer(
        optimizers.Adafactor(learning_rate=0.01), initial_scale=64.0, dynamic_growth_steps=7),
}


@pytest.mark.parametrize("name", sorted(ALL))
def test_config_round_trip(name):
    opt = ALL[name]()
    config = opt.get_config()
    again = type(opt).from_config(json.loads(json.dumps(config)))
    assert type(again) is type(opt)
    assert again.get_config() == config
    back = optimizers.deserialize(json.loads(json.dumps(optimizers.serialize(opt))))
    assert back.get_config() == config


@pytest.mark.parametrize("name", ["nadam", "adamax", "adadelta", "lion", "adafactor", "ftrl",
                                  "lamb", "muon", "schedulefreeadamw"])
def test_get_by_name(name):
    opt = optimizers.get(name)
    assert type(opt).__name__.lower() == name
    assert optimizers.get(optimizers.serialize(opt)).get_config() == opt.get_config()


def test_deserialize_is_case_insensitive_as_keras():
    opt = optimizers.deserialize({"class_name": "nadam", "config": {"learning_rate": 0.5}})
    assert isinstance(opt, optimizers.Nadam) and opt.learning_rate == 0.5


BAD = [
    (lambda: optimizers.Nadam(beta_1=1.5), "beta_1"),
    (lambda: optimizers.Adamax(epsilon=-1.0), "epsilon"),
    (lambda: optimizers.Adadelta(rho="0.9"), "rho"),
    (lambda: optimizers.Lion(beta_1=0.0), "beta_1"),
    (lambda: optimizers.Adafactor(beta_2_decay=0.5), "beta_2_decay"),
    (lambda: optimizers.Adafactor(clip_threshold=0.0), "clip_threshold"),
    (lambda: optimizers.Ftrl(learning_rate_power=0.5), "learning_rate_power"),
    (lambda: optimizers.Ftrl(l1_regularization_strength=-0.1), "l1_regularization_strength"),
    (lambda: optimizers.Ftrl(initial_accumulator_value=-1.0), "initial_accumulator_value"),
    (lambda: optimizers.Muon(ns_steps=-1), "ns_steps"),
    (lambda: optimizers.Muon(exclude_layers="dense"), "exclude_layers"),
    (lambda: optimizers.Muon(exclude_layers=["("]), "exclude_layers"),
    (lambda: optimizers.ScheduleFreeAdamW(beta_1=0.0), "beta_1"),
    (lambda: optimizers.ScheduleFreeAdamW(warmup_steps=1.5), "warmup_steps"),
    (lambda: optimizers.Adam(use_ema=True, ema_momentum=1.5), "ema_momentum"),
    (lambda: optimizers.Adam(use_ema=True, ema_overwrite_frequency=-2), "ema_overwrite"),
    (lambda: optimizers.Adam(use_ema="yes"), "use_ema"),
    (lambda: optimizers.SGD(gradient_accumulation_steps=1), "gradient_accumulation_steps"),
    (lambda: optimizers.SGD(gradient_accumulation_steps=2**40), "gradient_accumulation_steps"),
    (lambda: optimizers.SGD(gradient_accumulation_steps="2"), "gradient_accumulation_steps"),
    (lambda: optimizers.Adam(loss_scale_factor=0.0), "loss_scale_factor"),
    (lambda: optimizers.Adam(global_clipnorm=float("nan")), "global_clipnorm"),
    (lambda: optimizers.Adam(clipnorm=1.0, global_clipnorm=1.0), "Only one of"),
    (lambda: optimizers.Adam(momentum=0.9), "not recognized"),
    (lambda: optimizers.LossScaleOptimizer("adam"), "inner_optimizer"),
    (lambda: optimizers.LossScaleOptimizer(optimizers.Adam(), initial_scale=0), "initial_scale"),
    (lambda: optimizers.LossScaleOptimizer(optimizers.Adam(), dynamic_growth_steps=0),
     "dynamic_growth_steps"),
    (lambda: optimizers.LossScaleOptimizer(optimizers.Adam(), dynamic=False), "dynamic"),
    (lambda: optimizers.LossScaleOptimizer(optimizers.Adam(), clipnorm=1.0), "clipnorm"),
    (lambda: schedules.CosineDecayRestarts(0.1, 0), "first_decay_steps"),
]


@pytest.mark.parametrize("make,match", BAD, ids=[m for _, m in BAD])
def test_bad_arguments_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("field,value", [("ema_momentum", "x"), ("use_ema", [1]),
                                         ("gradient_accumulation_steps", 1e300),
                                         ("ema_overwrite_frequency", 2**40),
                                         ("loss_scale_factor", -1), ("muon_a", None)])
def test_bad_values_in_a_loaded_config_raise_value_error(field, value):
    """What a corrupted file's compile_config can hold: refused as a ValueError (the file
    fuzzing allows no other exception)."""
    from pynn.saving.serialization import deserialize_keras_object

    config = optimizers.serialize(optimizers.Muon())
    config["config"][field] = value
    with pytest.raises(ValueError):
        deserialize_keras_object(config, None, "optimizer")


# ---- training, saving, the options -----------------------------------------------------------

def _problem(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((96, 8)).astype(np.float32)
    w = rng.standard_normal((8, 2)).astype(np.float32)
    return x, np.tanh(x @ w).astype(np.float32)


def _mlp(opt, seed=1):
    pynn.utils.set_random_seed(seed)
    m = pynn.Sequential([pynn.Input((8,)), pynn.layers.Dense(16, activation="tanh"),
                         pynn.layers.Dense(2, name="head")])
    m.compile(optimizer=opt, loss="mse")
    return m


TRAIN = {
    "nadam": lambda: optimizers.Nadam(0.01),
    "adamax": lambda: optimizers.Adamax(0.01),
    "adadelta": lambda: optimizers.Adadelta(1.0),
    "lion": lambda: optimizers.Lion(0.002),
    "adafactor": lambda: optimizers.Adafactor(0.05),
    "ftrl": lambda: optimizers.Ftrl(0.2),
    "lamb": lambda: optimizers.Lamb(0.01),
    "muon": lambda: optimizers.Muon(0.01, exclude_layers=["head"]),
    "schedule_free": lambda: optimizers.ScheduleFreeAdamW(0.01),
    "loss_scale": lambda: optimizers.LossScaleOptimizer(optimizers.Nadam(0.01)),
    "ema": lambda: optimizers.Adam(0.01, use_ema=True, ema_momentum=0.8,
                                   ema_overwrite_frequency=5),
    "accumulate": lambda: optimizers.Lamb(0.02, gradient_accumulation_steps=2),
    "restarts": lambda: optimizers.SGD(schedules.CosineDecayRestarts(0.1, 3), momentum=0.5),
}


@pytest.mark.parametrize("case", sorted(TRAIN))
def test_fit_decreases_the_loss(case):
    x, y = _problem()
    m = _mlp(TRAIN[case]())
    before = m.evaluate(x, y, verbose=0)
    m.fit(x, y, batch_size=16, epochs=5, verbose=0)
    assert m.evaluate(x, y, verbose=0) < 0.8 * before


@pytest.mark.parametrize("case", sorted(TRAIN))
def test_save_load_resumes_identically(case, tmp_path):
    """Saved mid-training (every slot and scalar), loaded and trained on: the same weights
    and optimizer state as training on without the save."""
    x, y = _problem()
    m = _mlp(TRAIN[case]())
    m.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
    path = tmp_path / "m.keras"
    m.save(path)
    loaded = pynn.models.load_model(path)
    assert type(loaded.optimizer) is type(m.optimizer)
    assert loaded.optimizer.iterations == m.optimizer.iterations
    for model in (m, loaded):
        model.fit(x[:40], y[:40], batch_size=16, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(m.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(m._core.optimizer_state(), loaded._core.optimizer_state())


def _tape_step(model, x, y):
    """One custom-training-loop step: gradients of the (scaled) loss, then apply."""
    with pynn.GradientTape() as tape:
        loss = pynn.losses.MeanSquaredError()(y, model(x, training=True))
        scaled = model.optimizer.scale_loss(loss)
    model.optimizer.apply(tape.gradient(scaled, model.trainable_weights),
                          model.trainable_weights)


@pytest.mark.parametrize("case", ["nadam", "adafactor", "lamb", "muon", "schedule_free",
                                  "loss_scale", "ema", "accumulate"])
def test_custom_loop_apply_equals_the_fused_step(case):
    """A custom training loop (tape, scale_loss, optimizer.apply) moves the weights as fit's
    fused core step does."""
    x, y = _problem()
    fused, loop = _mlp(TRAIN[case]()), _mlp(TRAIN[case]())
    for t in range(5):
        xb, yb = x[16 * t:16 * (t + 1)], y[16 * t:16 * (t + 1)]
        fused.train_on_batch(xb, yb)
        _tape_step(loop, xb, yb)
    for a, b in zip(fused.get_weights(), loop.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert fused.optimizer.iterations == loop.optimizer.iterations


def test_loss_scale_optimizer_scales_and_skips_non_finite_steps():
    x, y = _problem()
    opt = optimizers.LossScaleOptimizer(optimizers.SGD(0.1), initial_scale=16.0,
                                        dynamic_growth_steps=2)
    m = _mlp(opt)
    assert opt.dynamic_scale == 16.0 and opt.scale_loss(2.0) == 32.0
    assert opt.learning_rate == pytest.approx(0.1)
    weights = m.trainable_weights
    grads = [np.ones(w.shape, np.float32) for w in weights]
    opt.apply(grads, weights)
    opt.apply(grads, weights)
    assert opt.dynamic_scale == 32.0 and opt.iterations == 2 and opt.step_counter == 0
    before = m.get_weights()
    grads[0][0, 0] = np.nan
    opt.apply(grads, weights)  # skipped: the weights stay, the scale halves
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))
    assert opt.dynamic_scale == 16.0 and opt.iterations == 2
    grads[0][0, 0] = 1.0
    opt.apply(grads, weights)
    np.testing.assert_allclose(m.get_weights()[1], before[1] - 0.1 / 16.0, rtol=1e-6)


def test_mixed_precision_loss_scale_optimizer_is_the_same_class():
    assert mixed_precision.LossScaleOptimizer is optimizers.LossScaleOptimizer


def test_gradient_accumulation_updates_every_k_steps_with_the_mean():
    x, y = _problem()
    m = _mlp(optimizers.SGD(0.1, gradient_accumulation_steps=3))
    weights = m.trainable_weights
    before = m.get_weights()
    gs = [[np.full(w.shape, k + 1.0, np.float32) for w in weights] for k in range(3)]
    m.optimizer.apply(gs[0], weights)
    m.optimizer.apply(gs[1], weights)
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))
    assert m.optimizer.iterations == 0
    m.optimizer.apply(gs[2], weights)
    assert m.optimizer.iterations == 1
    for a, b in zip(m.get_weights(), before):
        np.testing.assert_allclose(a, b - 0.1 * 2.0, rtol=1e-6)


def test_ema_averages_replace_the_weights_at_the_end_of_fit():
    x, y = _problem()
    m = _mlp(optimizers.Adam(0.01, use_ema=True, ema_momentum=0.9))
    m.fit(x, y, batch_size=16, epochs=2, verbose=0)
    state = m._core.optimizer_state()
    span = state.size // 3  # momentum, velocity, average
    np.testing.assert_array_equal(m._core.variable(0).ravel(), state[2 * span:][:8 * 16])


@pytest.mark.parametrize("when", ["before compile", "after compile"])
def test_exclude_from_weight_decay_leaves_named_variables_alone(when):
    opt = optimizers.SGD(0.1, weight_decay=0.5)
    if when == "before compile":
        opt.exclude_from_weight_decay(var_names=["bias"])
    m = _mlp(opt)
    if when == "after compile":
        opt.exclude_from_weight_decay(var_list=[m.layers[0].bias, m.layers[1].bias])
    before = m.get_weights()
    zeros = [np.zeros(w.shape, np.float32) for w in m.trainable_weights]
    m.optimizer.apply(zeros, m.trainable_weights)
    after = m.get_weights()
    np.testing.assert_allclose(after[0], before[0] * (1 - 0.1 * 0.5), rtol=1e-6)
    np.testing.assert_array_equal(after[1], before[1])
    np.testing.assert_array_equal(after[3], before[3])
    with pytest.raises(ValueError, match="before the optimizer is built"):
        opt.exclude_from_weight_decay()  # as Keras: not once it has taken a step


def test_exclude_from_weight_decay_cleared_before_training():
    m = _mlp(optimizers.SGD(0.1, weight_decay=0.5))
    m.optimizer.exclude_from_weight_decay(var_names=["bias"])
    m.optimizer.exclude_from_weight_decay()  # cleared: every weight decays again
    before = m.get_weights()
    m.optimizer.apply([np.zeros(w.shape, np.float32) for w in m.trainable_weights],
                      m.trainable_weights)
    np.testing.assert_allclose(m.get_weights()[1], before[1] * (1 - 0.1 * 0.5), rtol=1e-6)


def test_muon_takes_adamw_for_embeddings_excluded_layers_and_vectors():
    opt = optimizers.Muon(exclude_layers=["head"])
    pynn.utils.set_random_seed(0)
    x = pynn.Input((4,), dtype="int32")
    h = pynn.layers.Flatten()(pynn.layers.Embedding(10, 3, name="embedding")(x))
    out = pynn.layers.Dense(2, name="head")(pynn.layers.Dense(5, name="hidden")(h))
    m = pynn.Model(x, out)
    m.compile(optimizer=opt, loss="mse")
    uses_adam = {w.path: opt._should_use_adamw(w) for w in m.trainable_weights}
    assert uses_adam == {"embedding/embeddings": True, "hidden/kernel": False,
                         "hidden/bias": True, "head/kernel": True, "head/bias": True}
