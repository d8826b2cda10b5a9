"""Optimizers: every update rule against PyTorch's optimizers (where torch expresses Keras's rule)
and against a hand-written Keras 3 reference (where it does not: epsilon placement), plus clipping,
Keras's defaults, `iterations` and `learning_rate`.

Method: a small Sequential (6 -> Dense(5, tanh) -> Dense(3)) with MSE, its weights copied into an
equivalent float64 torch model (Keras's kernel is (in, units), torch's weight is (units, in)), then
the same batches stepped through both; the weights must agree after every step.
"""

import numpy as np
import pytest
import torch

import pynn
from pynn import optimizers

IN, HID, OUT, N, STEPS = 6, 5, 3, 16, 5
TINY_EPS = 1e-12  # where torch and Keras place epsilon differently, make epsilon negligible


def batches(seed: int = 0):
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((STEPS, N, IN)).astype(np.float32)
    ys = rng.standard_normal((STEPS, N, OUT)).astype(np.float32)
    return xs, ys


def pynn_model(optimizer):
    pynn.utils.set_random_seed(1)
    model = pynn.Sequential([pynn.Input(shape=(IN,)), pynn.layers.Dense(HID, activation="tanh"),
                             pynn.layers.Dense(OUT)])
    model.compile(optimizer=optimizer, loss="mse")
    return model


def torch_copy(model):
    """A float64 torch model with `model`'s weights."""
    net = torch.nn.Sequential(torch.nn.Linear(IN, HID), torch.nn.Tanh(),
                              torch.nn.Linear(HID, OUT)).double()
    with torch.no_grad():
        for lin, layer in zip((net[0], net[2]), model.layers):
            lin.weight.copy_(torch.from_numpy(np.array(layer.kernel).T))
            lin.bias.copy_(torch.from_numpy(np.array(layer.bias)))
    return net


def torch_grads(net, x, y) -> list:
    """Sets the parameters' .grad to the MSE gradients for one batch; returns the parameters."""
    params = list(net.parameters())
    for p in params:
        p.grad = None
    out = net(torch.from_numpy(x).double())
    torch.nn.functional.mse_loss(out, torch.from_numpy(y).double()).backward()
    return params


def assert_same_weights(model, net, step: int, rtol=2e-5, atol=2e-6):
    for lin, layer in zip((net[0], net[2]), model.layers):
        np.testing.assert_allclose(layer.kernel, lin.weight.detach().numpy().T, rtol=rtol,
                                   atol=atol, err_msg=f"{layer.name} kernel after step {step}")
        np.testing.assert_allclose(layer.bias, lin.bias.detach().numpy(), rtol=rtol, atol=atol,
                                   err_msg=f"{layer.name} bias after step {step}")


def run_against(model, net, reference_step, use_fit: bool = False):
    """Steps `model` and `reference_step(net, x, y)` on the same batches, comparing weights."""
    xs, ys = batches()
    before = model.get_weights()
    for t in range(STEPS):
        if use_fit:
            model.fit(xs[t], ys[t], batch_size=N, epochs=1, shuffle=False, verbose=0)
        else:
            model._core.train_step(xs[t], ys[t])
        reference_step(net, xs[t], ys[t])
        assert_same_weights(model, net, t + 1)
    moved = max(np.abs(a - b).max() for a, b in zip(model.get_weights(), before))
    assert moved > 1e-3, "the weights barely moved: the comparison would prove nothing"


def torch_optimizer_step(make_opt, clip=None):
    state = {}

    def step(net, x, y):
        if "opt" not in state:
            state["opt"] = make_opt(list(net.parameters()))
        params = torch_grads(net, x, y)
        if clip is not None:
            clip(params)
        state["opt"].step()

    return step


# ---- PyTorch parity ------------------------------------------------------------------------

TORCH_CASES = {
    "sgd": (lambda: optimizers.SGD(learning_rate=0.1),
            lambda p: torch.optim.SGD(p, lr=0.1)),
    "sgd_momentum": (lambda: optimizers.SGD(learning_rate=0.05, momentum=0.9),
                     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    "sgd_nesterov": (lambda: optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
                     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True)),
    # plain SGD: torch's coupled weight decay w -= lr (g + wd w) equals Keras's decoupled one
    "sgd_weight_decay": (lambda: optimizers.SGD(learning_rate=0.1, weight_decay=0.5),
                         lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=0.5)),
    "adam": (lambda: optimizers.Adam(learning_rate=0.01, epsilon=TINY_EPS),
             lambda p: torch.optim.Adam(p, lr=0.01, eps=TINY_EPS)),
    "adam_betas": (lambda: optimizers.Adam(learning_rate=0.01, beta_1=0.5, beta_2=0.8,
                                           epsilon=TINY_EPS),
                   lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.5, 0.8), eps=TINY_EPS)),
    "adam_amsgrad": (lambda: optimizers.Adam(learning_rate=0.01, beta_2=0.9, epsilon=TINY_EPS,
                                             amsgrad=True),
                     lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.9, 0.9), eps=TINY_EPS,
                                                amsgrad=True)),
    "adamw": (lambda: optimizers.AdamW(learning_rate=0.01, weight_decay=0.5, epsilon=TINY_EPS),
              lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.5, eps=TINY_EPS)),
    "rmsprop": (lambda: optimizers.RMSprop(learning_rate=0.01, rho=0.8, epsilon=TINY_EPS),
                lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.8, eps=TINY_EPS)),
    "rmsprop_momentum": (lambda: optimizers.RMSprop(learning_rate=0.01, momentum=0.7,
                                                    epsilon=TINY_EPS),
                         lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, momentum=0.7,
                                                       eps=TINY_EPS)),
    "rmsprop_centered": (lambda: optimizers.RMSprop(learning_rate=0.01, centered=True,
                                                    epsilon=TINY_EPS),
                         lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, centered=True,
                                                       eps=TINY_EPS)),
    "rmsprop_centered_momentum": (
        lambda: optimizers.RMSprop(learning_rate=0.01, momentum=0.5, centered=True,
                                   epsilon=TINY_EPS),
        lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, momentum=0.5, centered=True,
                                      eps=TINY_EPS)),
    "adagrad": (lambda: optimizers.Adagrad(learning_rate=0.1, epsilon=TINY_EPS),
                lambda p: torch.optim.Adagrad(p, lr=0.1, initial_accumulator_value=0.1,
                                              eps=TINY_EPS)),
}


@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_update_rule_matches_torch_optimizer(case):
    make_pynn, make_torch = TORCH_CASES[case]
    model = pynn_model(make_pynn())
    run_against(model, torch_copy(model), torch_optimizer_step(make_torch))


def test_fit_steps_match_torch_like_train_step():
    model = pynn_model(optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True))
    step = torch_optimizer_step(lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9,
                                                          nesterov=True))
    run_against(model, torch_copy(model), step, use_fit=True)


# ---- clipping: Keras's clipnorm is per variable, global_clipnorm over all, clipvalue by element --

def _clip_per_tensor(max_norm):
    def clip(params):
        for p in params:
            torch.nn.utils.clip_grad_norm_([p], max_norm)
    return clip


CLIPS = {
    "clipnorm": ({"clipnorm": 0.05}, _clip_per_tensor(0.05)),
    "global_clipnorm": ({"global_clipnorm": 0.1},
                        lambda ps: torch.nn.utils.clip_grad_norm_(ps, 0.1)),
    "clipvalue": ({"clipvalue": 0.02}, lambda ps: torch.nn.utils.clip_grad_value_(ps, 0.02)),
}
CLIP_OPTIMIZERS = {
    "sgd": (lambda kw: optimizers.SGD(learning_rate=0.5, **kw),
            lambda p: torch.optim.SGD(p, lr=0.5)),
    "adam": (lambda kw: optimizers.Adam(learning_rate=0.01, beta_2=0.9, epsilon=TINY_EPS, **kw),
             lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.9, 0.9), eps=TINY_EPS)),
}


@pytest.mark.parametrize("opt", sorted(CLIP_OPTIMIZERS))
@pytest.mark.parametrize("clip", sorted(CLIPS))
def test_gradient_clipping_matches_torch_clip_utils(clip, opt):
    kwargs, torch_clip = CLIPS[clip]
    make_pynn, make_torch = CLIP_OPTIMIZERS[opt]
    engaged = []

    def counting_clip(params):
        before = [p.grad.clone() for p in params]
        torch_clip(params)
        engaged.append(any(not torch.equal(b, p.grad) for b, p in zip(before, params)))

    model = pynn_model(make_pynn(kwargs))
    run_against(model, torch_copy(model), torch_optimizer_step(make_torch, counting_clip))
    assert all(engaged), "the clip threshold never bit: choose a smaller one"


# ---- Keras's own rule (epsilon placement), written out ----------------------------------------

class KerasReference:
    """Keras 3's update rules in float64 torch ops, on a torch model's parameters."""

    def __init__(self, kind, learning_rate, weight_decay=0.0, momentum=0.0, nesterov=False,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, rho=0.9,
                 centered=False, initial_accumulator_value=0.1):
        self.kind, self.lr, self.wd = kind, learning_rate, weight_decay
        self.mu, self.nesterov = momentum, nesterov
        self.b1, self.b2, self.eps, self.amsgrad = beta_1, beta_2, epsilon, amsgrad
        self.rho, self.centered, self.acc0 = rho, centered, initial_accumulator_value
        self.t = 0
        self.state = {}

    def __call__(self, net, x, y):
        params = torch_grads(net, x, y)
        self.t += 1
        with torch.no_grad():
            for i, w in enumerate(params):
                self._update(i, w, w.grad)

    def _slot(self, i, name, w, fill=0.0):
        return self.state.setdefault((i, name), torch.full_like(w, fill))

    def _update(self, i, w, g):
        lr = self.lr
        if self.wd:
            w -= lr * self.wd * w
        if self.kind == "sgd":
            if not self.mu:
                w -= lr * g
                return
            m = self._slot(i, "m", w)
            m.copy_(self.mu * m - lr * g)
            w += self.mu * m - lr * g if self.nesterov else m
        elif self.kind == "adam":
            m, v = self._slot(i, "m", w), self._slot(i, "v", w)
            m += (g - m) * (1 - self.b1)
            v += (g * g - v) * (1 - self.b2)
            if self.amsgrad:
                vh = self._slot(i, "vh", w)
                vh.copy_(torch.maximum(vh, v))
                v = vh
            alpha = lr * np.sqrt(1 - self.b2 ** self.t) / (1 - self.b1 ** self.t)
            w -= alpha * m / (torch.sqrt(v) + self.eps)
        elif self.kind == "rmsprop":
            vel = self._slot(i, "vel", w)
            vel.copy_(self.rho * vel + (1 - self.rho) * g * g)
            denom = vel + self.eps
            if self.centered:
                avg = self._slot(i, "avg", w)
                avg.copy_(self.rho * avg + (1 - self.rho) * g)
                denom = vel - avg * avg + self.eps
            inc = lr * g / torch.sqrt(denom)
            if self.mu:
                mom = self._slot(i, "mom", w)
                mom.copy_(self.mu * mom + inc)
                w -= mom
            else:
                w -= inc
        elif self.kind == "adagrad":
            acc = self._slot(i, "acc", w, self.acc0)
            acc += g * g
            w -= lr * g / torch.sqrt(acc + self.eps)
        else:
            raise AssertionError(self.kind)


KERAS_CASES = {
    # a large epsilon makes its placement (Keras: Adam outside sqrt with the bias correction
    # folded into the step; RMSprop and Adagrad inside sqrt) decide the result
    "adam_large_eps": (lambda: optimizers.Adam(learning_rate=0.01, epsilon=0.05),
                       {"kind": "adam", "learning_rate": 0.01, "epsilon": 0.05}),
    "adam_amsgrad_large_eps": (
        lambda: optimizers.Adam(learning_rate=0.01, beta_2=0.9, epsilon=0.05, amsgrad=True),
        {"kind": "adam", "learning_rate": 0.01, "beta_2": 0.9, "epsilon": 0.05, "amsgrad": True}),
    "adamw_large_eps": (lambda: optimizers.AdamW(learning_rate=0.01, weight_decay=0.3,
                                                 epsilon=0.05),
                        {"kind": "adam", "learning_rate": 0.01, "weight_decay": 0.3,
                         "epsilon": 0.05}),
    "rmsprop_large_eps": (lambda: optimizers.RMSprop(learning_rate=0.01, epsilon=0.01),
                          {"kind": "rmsprop", "learning_rate": 0.01, "epsilon": 0.01}),
    "rmsprop_centered_momentum_large_eps": (
        lambda: optimizers.RMSprop(learning_rate=0.01, momentum=0.5, centered=True, epsilon=0.01),
        {"kind": "rmsprop", "learning_rate": 0.01, "momentum": 0.5, "centered": True,
         "epsilon": 0.01}),
    "adagrad_large_eps": (lambda: optimizers.Adagrad(learning_rate=0.1, epsilon=0.5,
                                                     initial_accumulator_value=0.0),
                          {"kind": "adagrad", "learning_rate": 0.1, "epsilon": 0.5,
                           "initial_accumulator_value": 0.0}),
    "adam_weight_decay": (lambda: optimizers.Adam(learning_rate=0.01, weight_decay=0.3),
                          {"kind": "adam", "learning_rate": 0.01, "weight_decay": 0.3}),
    "sgd_momentum_weight_decay": (
        lambda: optimizers.SGD(learning_rate=0.05, momentum=0.9, weight_decay=0.5),
        {"kind": "sgd", "learning_rate": 0.05, "momentum": 0.9, "weight_decay": 0.5}),
}


@pytest.mark.parametrize("case", sorted(KERAS_CASES))
def test_update_rule_matches_keras_reference(case):
    make_pynn, ref_config = KERAS_CASES[case]
    model = pynn_model(make_pynn())
    run_against(model, torch_copy(model), KerasReference(**ref_config))


# ---- defaults -------------------------------------------------------------------------------

KERAS_DEFAULTS = {
    optimizers.SGD: {"learning_rate": 0.01, "momentum": 0.0, "nesterov": False},
    optimizers.Adam: {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7,
                      "amsgrad": False},
    optimizers.AdamW: {"learning_rate": 0.001, "weight_decay": 0.004, "beta_1": 0.9,
                       "beta_2": 0.999, "epsilon": 1e-7, "amsgrad": False},
    optimizers.RMSprop: {"learning_rate": 0.001, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-7,
                         "centered": False},
    optimizers.Adagrad: {"learning_rate": 0.001, "initial_accumulator_value": 0.1,
                         "epsilon": 1e-7},
}


@pytest.mark.parametrize("cls", list(KERAS_DEFAULTS), ids=lambda c: c.__name__)
def test_constructor_defaults_are_keras_defaults(cls):
    config = cls().get_config()
    for key, want in KERAS_DEFAULTS[cls].items():
        assert config[key] == pytest.approx(want), key
    assert all(config[k] is None for k in ("clipnorm", "clipvalue", "global_clipnorm"))


@pytest.mark.parametrize("name,cls", [("sgd", optimizers.SGD), ("adam", optimizers.Adam),
                                      ("adamw", optimizers.AdamW),
                                      ("rmsprop", optimizers.RMSprop),
                                      ("adagrad", optimizers.Adagrad)])
def test_optimizer_by_name_has_keras_defaults(name, cls):
    opt = optimizers.get(name)
    assert type(opt) is cls
    assert opt.get_config() == {**cls().get_config(), "name": opt.name}


DEFAULT_RUNS = {
    "sgd": (optimizers.SGD, {"kind": "sgd", "learning_rate": 0.01}),
    "adam": (optimizers.Adam, {"kind": "adam", "learning_rate": 0.001}),
    "adamw": (optimizers.AdamW, {"kind": "adam", "learning_rate": 0.001, "weight_decay": 0.004}),
    "rmsprop": (optimizers.RMSprop, {"kind": "rmsprop", "learning_rate": 0.001}),
    "adagrad": (optimizers.Adagrad, {"kind": "adagrad", "learning_rate": 0.001}),
}


@pytest.mark.parametrize("case", sorted(DEFAULT_RUNS))
def test_default_constructed_optimizer_trains_with_keras_defaults(case):
    """The defaults reach the core: a default optimizer steps like Keras's rule with Keras's
    defaults (learning rates of 0.001 move the weights little, hence the tighter tolerance)."""
    cls, ref_config = DEFAULT_RUNS[case]
    model = pynn_model(cls())
    net = torch_copy(model)
    ref = KerasReference(**ref_config)
    xs, ys = batches()
    before = model.get_weights()
    for t in range(STEPS):
        model._core.train_step(xs[t], ys[t])
        ref(net, xs[t], ys[t])
        assert_same_weights(model, net, t + 1, rtol=1e-6, atol=2e-7)
    assert max(np.abs(a - b).max() for a, b in zip(model.get_weights(), before)) > 2e-4


def test_compile_default_optimizer_is_rmsprop():
    model = pynn.Sequential([pynn.Input(shape=(IN,)), pynn.layers.Dense(OUT)])
    model.compile(loss="mse")
    assert isinstance(model.optimizer, optimizers.RMSprop)
    assert model.optimizer.learning_rate == pytest.approx(0.001)


# ---- iterations and learning_rate ----------------------------------------------------------

def test_iterations_counts_train_steps():
    opt = optimizers.Adam()
    assert opt.iterations == 0
    model = pynn_model(opt)
    xs, ys = batches()
    for t in range(3):
        model._core.train_step(xs[t], ys[t])
    assert opt.iterations == 3


def test_iterations_counts_fit_batches_across_epochs():
    model = pynn_model("sgd")
    xs, ys = batches()
    model.fit(xs[0][:10], ys[0][:10], batch_size=4, epochs=2, verbose=0)  # 3 batches an epoch
    assert model.optimizer.iterations == 6


def test_iterations_not_advanced_by_evaluate_or_predict():
    model = pynn_model("adam")
    xs, ys = batches()
    model.evaluate(xs[0], ys[0], verbose=0)
    model.predict(xs[0], verbose=0)
    assert model.optimizer.iterations == 0


@pytest.mark.parametrize("opt,ref_config", [
    (lambda: optimizers.SGD(learning_rate=0.1, momentum=0.9), {"kind": "sgd", "momentum": 0.9}),
    (lambda: optimizers.Adam(learning_rate=0.1), {"kind": "adam"}),
], ids=["sgd_momentum", "adam"])
def test_learning_rate_set_after_compile_takes_effect(opt, ref_config):
    model = pynn_model(opt())
    net = torch_copy(model)
    ref = KerasReference(learning_rate=0.1, **ref_config)
    xs, ys = batches()
    for t, lr in enumerate([0.1, 0.02, 0.02, 0.3, 0.05]):
        model.optimizer.learning_rate = lr
        ref.lr = lr
        assert model.optimizer.learning_rate == pytest.approx(lr)
        model._core.train_step(xs[t], ys[t])
        ref(net, xs[t], ys[t])
        assert_same_weights(model, net, t + 1)


def test_learning_rate_zero_after_compile_freezes_weights():
    model = pynn_model(optimizers.Adam(learning_rate=0.01))
    xs, ys = batches()
    model._core.train_step(xs[0], ys[0])
    model.optimizer.learning_rate = 0.0
    before = model.get_weights()
    model._core.train_step(xs[1], ys[1])
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    model.optimizer.learning_rate = 0.01
    model._core.train_step(xs[2], ys[2])
    assert not all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_learning_rate_set_before_compile_is_used():
    opt = optimizers.SGD()
    opt.learning_rate = 0.2
    model = pynn_model(opt)
    run_against(model, torch_copy(model),
                torch_optimizer_step(lambda p: torch.optim.SGD(p, lr=0.2)))


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_learning_rate_invalid_value_rejected_and_kept(bad):
    model = pynn_model(optimizers.SGD(learning_rate=0.1))
    with pytest.raises(ValueError):
        model.optimizer.learning_rate = bad
    assert model.optimizer.learning_rate == pytest.approx(0.1)


@pytest.mark.parametrize("kwargs", [{"clipnorm": 1.0, "clipvalue": 1.0},
                                    {"clipnorm": 1.0, "global_clipnorm": 1.0},
                                    {"clipvalue": 1.0, "global_clipnorm": 1.0},
                                    {"clipnorm": 1.0, "clipvalue": 1.0, "global_clipnorm": 1.0}],
                         ids=lambda kw: "+".join(kw))
@pytest.mark.parametrize("cls", list(KERAS_DEFAULTS), ids=lambda c: c.__name__)
def test_two_clip_options_raise_value_error(cls, kwargs):
    with pytest.raises(ValueError, match="clip"):
        cls(**kwargs)
