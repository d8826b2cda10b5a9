"""Keras 3's optimizers and their options, the same code for pynn and Keras 3: `run()` returns
the weights after a fixed sequence of gradients given to `optimizer.apply`, and after a few
epochs of `fit`, for each optimizer, from the same starting weights; and the values of the
learning-rate schedules.

`tests/test_optimizers_keras.py` compares pynn's with what Keras 3 (JAX backend) gave, kept in
optimizers.npz beside this file; to make it again, in an environment with keras and jax:
    KERAS_BACKEND=jax python ../shared/tools/keras_ref.py tests/keras_reference/optimizers.py \
        tests/keras_reference/optimizers.npz
(keras_ref.py runs this file with `pynn` standing for `keras`).
"""

import json
import sys

import numpy as np

import pynn as keras
from pynn import layers

opts = keras.optimizers
VOCAB, STEPS, APPLY_STEPS = 10, 6, 7


def model():
    """Token ids -> Embedding -> Conv1D (a 3-D kernel) -> Dense -> Dense named 'head': weights
    of 1, 2 and 3 axes, an embedding and a layer Muon may exclude by name."""
    x = keras.Input((STEPS,), dtype="int32")
    h = layers.Embedding(VOCAB, 4, name="embedding")(x)
    h = layers.Conv1D(3, 2, activation="tanh", name="conv")(h)
    h = layers.Dense(5, activation="tanh", name="hidden")(layers.Flatten(name="flatten")(h))
    return keras.Model(x, layers.Dense(2, name="head")(h))


def set_weights(m, seed: int) -> None:
    rng = np.random.RandomState(seed)
    m.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(np.float32) for w in m.get_weights()])


def gradients(shapes, steps: int = APPLY_STEPS, seed: int = 3):
    """A fixed gradient per weight and step (step 3's bias gradients are zero)."""
    rng = np.random.RandomState(seed)
    out = []
    for t in range(steps):
        gs = [(rng.standard_normal(s) * 0.5).astype(np.float32) for s in shapes]
        if t == 3:
            gs = [g * 0 if len(g.shape) == 1 else g for g in gs]
        out.append(gs)
    return out


def data(n: int = 24, seed: int = 5):
    rng = np.random.RandomState(seed)
    ids = rng.randint(0, VOCAB, size=(n, STEPS)).astype(np.int32)
    y = np.stack([np.sin(ids.sum(1) / 7.0), np.cos(ids[:, 0] / 3.0)], 1).astype(np.float32)
    return ids, y


def cases() -> dict:
    """name -> a function making the optimizer (fresh each call)."""
    def wd_bias_excluded():
        opt = opts.AdamW(learning_rate=0.02, weight_decay=0.1)
        opt.exclude_from_weight_decay(var_names=["bias"])
        return opt

    return {
        "nadam": lambda: opts.Nadam(learning_rate=0.02),
        "nadam_decay": lambda: opts.Nadam(learning_rate=0.02, beta_1=0.8, beta_2=0.95,
                                       epsilon=1e-4, weight_decay=0.05),
        "adamax": lambda: opts.Adamax(learning_rate=0.02),
        "adamax_decay": lambda: opts.Adamax(learning_rate=0.05, beta_1=0.5, beta_2=0.9,
                                         weight_decay=0.1),
        "adadelta": lambda: opts.Adadelta(learning_rate=1.0),
        "adadelta_rho": lambda: opts.Adadelta(learning_rate=0.5, rho=0.8, epsilon=1e-3),
        "lion": lambda: opts.Lion(learning_rate=0.01),
        "lion_decay": lambda: opts.Lion(learning_rate=0.01, beta_1=0.5, beta_2=0.9,
                                     weight_decay=0.2),
        "adafactor": lambda: opts.Adafactor(learning_rate=0.05),
        "adafactor_clip": lambda: opts.Adafactor(learning_rate=0.3, beta_2_decay=-0.5,
                                              epsilon_2=0.1, clip_threshold=0.5),
        "ftrl": lambda: opts.Ftrl(learning_rate=0.1),
        "ftrl_regularized": lambda: opts.Ftrl(learning_rate=0.2, learning_rate_power=-0.7,
                                           initial_accumulator_value=0.5,
                                           l1_regularization_strength=0.05,
                                           l2_regularization_strength=0.1,
                                           l2_shrinkage_regularization_strength=0.05, beta=0.3),
        "lamb": lambda: opts.Lamb(learning_rate=0.02),
        "lamb_decay": lambda: opts.Lamb(learning_rate=0.02, weight_decay=0.05),
        "muon": lambda: opts.Muon(learning_rate=0.02, exclude_layers=["head"]),
        "muon_plain": lambda: opts.Muon(learning_rate=0.05, nesterov=False, rms_rate=None,
                                     momentum=0.8, ns_steps=3, adam_lr_ratio=0.5,
                                     exclude_embeddings=False, weight_decay=0.1,
                                     adam_weight_decay=0.2),
        "schedule_free": lambda: opts.ScheduleFreeAdamW(learning_rate=0.02),
        "schedule_free_warmup": lambda: opts.ScheduleFreeAdamW(learning_rate=0.05, beta_1=0.8,
                                                            warmup_steps=3, weight_decay=0.1),
        "loss_scale": lambda: opts.LossScaleOptimizer(opts.Adam(learning_rate=0.02),
                                                   initial_scale=8.0, dynamic_growth_steps=2),
        "adam_ema": lambda: opts.Adam(learning_rate=0.05, use_ema=True, ema_momentum=0.7),
        "sgd_ema_overwrite": lambda: opts.SGD(learning_rate=0.1, momentum=0.5, use_ema=True,
                                           ema_momentum=0.6, ema_overwrite_frequency=3),
        "sgd_accumulate": lambda: opts.SGD(learning_rate=0.1, momentum=0.9,
                                        gradient_accumulation_steps=3),
        "nadam_accumulate_ema": lambda: opts.Nadam(learning_rate=0.05, use_ema=True,
                                                ema_overwrite_frequency=2,
                                                gradient_accumulation_steps=2),
        "adam_global_clipnorm": lambda: opts.Adam(learning_rate=0.05, global_clipnorm=0.5),
        "adafactor_clipnorm": lambda: opts.Adafactor(learning_rate=0.05, clipnorm=0.3),
        "rmsprop_clipvalue": lambda: opts.RMSprop(learning_rate=0.02, clipvalue=0.2),
        "adamax_loss_scale_factor": lambda: opts.Adamax(learning_rate=0.02,
                                                     loss_scale_factor=128.0),
        "adamw_exclude_bias": wd_bias_excluded,
        "lion_schedule": lambda: opts.Lion(learning_rate=opts.schedules.CosineDecayRestarts(
            0.01, 2, t_mul=2.0, m_mul=0.5, alpha=0.1)),
    }


# the cases fit runs as well (each new rule, and each option)
FIT = ["nadam", "adamax", "adadelta", "lion", "adafactor", "ftrl_regularized", "lamb", "muon",
       "schedule_free_warmup", "loss_scale", "adam_ema", "sgd_ema_overwrite", "sgd_accumulate",
       "adam_global_clipnorm", "adamw_exclude_bias", "lion_schedule"]

SCHEDULES = {
    "restarts": lambda: opts.schedules.CosineDecayRestarts(0.1, 10, t_mul=2.0, m_mul=0.5,
                                                        alpha=0.1),
    "restarts_even": lambda: opts.schedules.CosineDecayRestarts(0.1, 7, t_mul=1.0, m_mul=0.9),
    "restarts_three": lambda: opts.schedules.CosineDecayRestarts(0.05, 3, t_mul=3.0, alpha=0.2),
}
SCHEDULE_STEPS = [0, 1, 2, 3, 6, 7, 8, 9, 10, 11, 12, 14, 20, 21, 29, 30, 31, 38, 39, 40, 69,
                  70, 100, 150, 310, 630, 1000]


# every optimizer class, for its default config
CLASSES = ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Nadam", "Adamax", "Adadelta", "Lion",
           "Adafactor", "Ftrl", "Lamb", "Muon", "ScheduleFreeAdamW"]


def apply(opt, grads, weights) -> None:
    """opt.apply(grads, weights); Keras on JAX applies LossScaleOptimizer statelessly (its eager
    apply traces a cond that leaks), as its fit does."""
    if not hasattr(opt, "stateless_apply") or not hasattr(opt, "inner_optimizer"):
        opt.apply(grads, weights)
        return
    if not opt.built:
        opt.build(weights)
    new_w, new_o = opt.stateless_apply([v.value for v in opt.variables], grads,
                                       [w.value for w in weights])
    for v, value in zip(weights, new_w):
        v.assign(value)
    for v, value in zip(opt.variables, new_o):
        v.assign(value)


def run() -> dict:
    results = {}
    ids, y = data()
    for name, make in cases().items():
        m = model()
        set_weights(m, 0)
        opt = make()
        weights = m.trainable_weights
        for gs in gradients([tuple(w.shape) for w in weights]):
            if name == "loss_scale":  # gradients of the scaled loss; one step overflows
                gs = [g * 8.0 for g in gs]
            apply(opt, gs, weights)
            if name == "loss_scale" and int(np.asarray(opt.iterations)) == 2:
                bad = [g.copy() for g in gs]
                bad[0][0, 0] = np.inf
                apply(opt, bad, weights)
        results[f"{name}/apply/iterations"] = np.array(int(np.asarray(opt.iterations)),
                                                       np.float32)
        for i, w in enumerate(m.get_weights()):
            results[f"{name}/apply/w{i}"] = w
        if name == "loss_scale":
            results[f"{name}/apply/scale"] = np.array(float(np.asarray(opt.dynamic_scale)),
                                                      np.float32)
        if getattr(opt, "use_ema", False):
            opt.finalize_variable_values(m.trainable_weights)
            for i, w in enumerate(m.get_weights()):
                results[f"{name}/apply/final{i}"] = w
    for name in FIT:
        m = model()
        set_weights(m, 1)
        m.compile(optimizer=cases()[name](), loss="mse")
        history = m.fit(ids, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        results[f"{name}/fit/loss"] = np.array(history.history["loss"], np.float32)
        for i, w in enumerate(m.get_weights()):
            results[f"{name}/fit/w{i}"] = w
    for name in CLASSES:  # default configs, names left out (Keras numbers them)
        config = {k: v for k, v in getattr(opts, name)().get_config().items() if k != "name"}
        results[f"config/{name}"] = np.array(json.dumps(config, sort_keys=True))
    lso = opts.LossScaleOptimizer(opts.Nadam()).get_config()
    lso["inner_optimizer"]["config"].pop("name")
    results["config/LossScaleOptimizer"] = np.array(json.dumps(
        {k: v for k, v in lso.items() if k != "name"}, sort_keys=True))
    schedule_configs = {name: make().get_config() for name, make in SCHEDULES.items()}
    results["config/schedules"] = np.array(json.dumps(schedule_configs, sort_keys=True))
    for name, make in SCHEDULES.items():
        s = make()
        results[f"schedule/{name}"] = np.array([float(np.asarray(s(t))) for t in SCHEDULE_STEPS],
                                               np.float32)
    return results


if __name__ == "__main__":
    np.savez(sys.argv[1], **run())
