"""Optimizers with Keras 3's names, arguments, defaults and update rules.

An optimizer holds its configuration; compile binds it to a model, whose core keeps the state
(momenta, second moments) in flat buffers beside the parameters and applies the update inside
the training step, in one fused pass.
"""

import math
import sys

import numpy as np

from . import schedules
from .schedules import LearningRateSchedule

# `from pynn.optimizers.schedules import CosineDecay` works as in Keras, with this a module
sys.modules[__name__ + ".schedules"] = schedules


class Optimizer:
    """Base class. Args common to all: learning_rate, weight_decay, clipnorm, clipvalue,
    global_clipnorm (at most one of the three clips)."""

    _kind = ""

    def __init__(self, learning_rate: float = 0.001, weight_decay: float | None = None,
                 clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None, name: str | None = None, **kwargs):
        unknown = set(kwargs) - {"use_ema", "ema_momentum", "ema_overwrite_frequency",
                                 "loss_scale_factor", "gradient_accumulation_steps"}
        if unknown:
            raise TypeError(f"{type(self).__name__}: unexpected arguments {sorted(unknown)}")
        for k in ("use_ema", "loss_scale_factor", "gradient_accumulation_steps"):
            if kwargs.get(k):
                raise ValueError(f"{type(self).__name__}: {k} is not supported")
        if sum(c is not None for c in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be "
                             "set.")
        for k, v in (("clipnorm", clipnorm), ("clipvalue", clipvalue),
                     ("global_clipnorm", global_clipnorm), ("weight_decay", weight_decay)):
            if v is not None and not (v >= 0 and math.isfinite(v)):
                raise ValueError(f"{type(self).__name__}: {k} must be a finite number >= 0, "
                                 f"got {v}")
        self.name = name or type(self).__name__.lower()
        self.weight_decay = weight_decay
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self._iterations = 0
        self._core = None
        # a LearningRateSchedule (called on the step count) or a function of no arguments,
        # evaluated before every step; None for a fixed rate
        self._schedule = None
        if isinstance(learning_rate, dict):  # a schedule as get_config wrote it
            learning_rate = schedules.deserialize(learning_rate)
        if callable(learning_rate):
            self._schedule = learning_rate
            self._learning_rate = self._scheduled(0)
        else:
            self._learning_rate = _check_lr(learning_rate)

    # -- the state lives in the core once bound ------------------------------------------------
    @property
    def learning_rate(self) -> float:
        """The rate of the next step: with a schedule, its value at the current iteration."""
        if self._schedule is not None:
            return self._scheduled(self.iterations)
        return self._core.learning_rate if self._core is not None else self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        if callable(value):
            self._schedule = value
            self._learning_rate = self._scheduled(self.iterations)
        else:
            if self._schedule is not None:
                raise TypeError(
                    "This optimizer was created with a `LearningRateSchedule` object as its "
                    "`learning_rate` constructor argument, hence its learning rate is not "
                    "settable. If you need the learning rate to be settable, you should "
                    "instantiate the optimizer with a float `learning_rate` argument.")
            self._learning_rate = _check_lr(value)
        if self._core is not None:
            self._core.learning_rate = self._learning_rate
        for core in vars(self).get("_others", {}).values():
            core.learning_rate = self._learning_rate

    def _scheduled(self, step: int) -> float:
        """The schedule's learning rate for `step`, checked."""
        s = self._schedule
        lr = s(step) if isinstance(s, LearningRateSchedule) else s()
        try:
            return _check_lr(lr)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{type(self).__name__}: the learning-rate schedule "
                             f"{type(s).__name__} gave {lr!r} at step {step}: {e}") from None

    def _apply_schedule(self, core=None) -> None:
        """Hands the schedule's rate for the coming step to the core (a no-op for a fixed rate);
        called before every training step."""
        core = core if core is not None else self._core
        if self._schedule is not None and core is not None:
            core.learning_rate = self._scheduled(core.iterations)

    @property
    def iterations(self) -> int:
        return self._core.iterations if self._core is not None else self._iterations

    def _core_config(self) -> dict:
        return {}

    def _bind(self, core) -> None:
        """Creates this optimizer's state in a model's core (fresh, at step 0)."""
        if self._schedule is not None:
            self._learning_rate = self._scheduled(0)
        cfg = {
            "learning_rate": self._learning_rate,
            "weight_decay": self.weight_decay or 0.0,
            "clipnorm": self.clipnorm or 0.0,
            "clipvalue": self.clipvalue or 0.0,
            "global_clipnorm": self.global_clipnorm or 0.0,
            **self._core_config(),
        }
        core.set_optimizer(self._kind, **cfg)
        self._core = core

    # -- the imperative path --------------------------------------------------------------------
    def build(self, variables) -> None:
        """Creates the optimizer's state for `variables` (a model's trainable weights), which
        step() and apply() without variables then update."""
        self._variables = list(variables)
        self._locate(self._variables)

    @property
    def variables(self) -> list:
        return list(getattr(self, "_variables", []))

    def _locate_all(self, variables) -> list:
        """[(core, ids)] for the built models holding `variables` (a VAE's encoder and decoder
        are two), in order of first appearance; ids None where they are all of that model's
        trainable weights. Binds the optimizer to each: the same rule and settings, with state
        of its own in each model."""
        from .layers.base import Variable

        groups: dict = {}
        for v in variables:
            core = v._owner_core() if isinstance(v, Variable) else None
            key = id(core) if core is not None else None
            groups.setdefault(key, []).append(v)
        if None in groups or len(groups) == 1:
            return [self._locate(variables)]
        out = []
        for vs in groups.values():
            core = vs[0]._owner_core()
            if self._core is not None and core is not self._core:
                others = vars(self).setdefault("_others", {})
                if id(core) not in others:
                    main = self._core
                    self._core = None
                    self._bind(core)
                    self._core = main
                    others[id(core)] = core
                out.append(self._locate(vs, core))
            else:
                out.append(self._locate(vs))
        return out

    def _locate(self, variables, bound=None) -> tuple:
        """(core, ids): the one built model holding all `variables`, and their ids in it (None
        when they are all of its trainable weights). Binds the optimizer to that core (unless
        `bound`: a further model this optimizer was bound to already)."""
        from .layers.base import Variable

        cores, ids = {}, []
        for v in variables:
            core = v._owner_core() if isinstance(v, Variable) else None
            if core is None:
                raise ValueError(f"{type(self).__name__}: can only update the weights of a built "
                                 f"model, and {getattr(v, 'path', type(v).__name__)!r} belongs "
                                 "to none; put the layers in a pynn.Model (or Sequential) and "
                                 "pass model.trainable_weights")
            if not v.trainable:
                raise ValueError(f"{type(self).__name__}: variable {v.path!r} is not trainable")
            cores[id(core)] = core
            ids.append(v._vid)
        if len(cores) != 1:
            raise ValueError(f"{type(self).__name__}: the variables belong to {len(cores)} "
                             "models; use one optimizer per model")
        core = next(iter(cores.values()))
        if bound is not None or id(core) in vars(self).get("_others", {}):
            pass  # a further model this optimizer updates (its state is there already)
        elif self._core is not core:
            if self._core is not None and self.iterations > 0:
                raise ValueError(f"{type(self).__name__} already holds the state of another "
                                 "model's weights; create a new optimizer for this model")
            self._bind(core)
        if len(set(ids)) != len(ids):
            raise ValueError(f"{type(self).__name__}: a variable is listed twice")
        # distinct trainable variables holding every trainable value are all of them: then the
        # core updates its whole trainable span in one pass
        every = sum(int(v.size) for v in variables) == core.param_count(True)
        return core, (None if every else ids)

    def apply(self, grads, trainable_variables=None) -> None:
        """One update: each variable moves by its gradient, with this optimizer's rule (Keras 3's
        `optimizer.apply`). None gradients are skipped.

        Args:
            grads: arrays or Tensors shaped like the variables.
            trainable_variables: a model's weights (by default those given to build()).
        """
        if trainable_variables is None:
            if not getattr(self, "_variables", None):
                raise ValueError(f"{type(self).__name__}.apply: pass trainable_variables, or "
                                 "call build(model.trainable_weights) first")
            trainable_variables = self._variables
        grads, variables = list(grads), list(trainable_variables)
        if len(grads) != len(variables):
            raise ValueError(f"{type(self).__name__}.apply: {len(grads)} gradients for "
                             f"{len(variables)} variables")
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        if not pairs:
            return
        groups = self._locate_all([v for _, v in pairs])
        if len(groups) > 1:  # several models: each takes its own variables' update
            for core, _ in groups:
                mine = [(g, v) for g, v in pairs if v._owner_core() is core]
                self.apply([g for g, _ in mine], [v for _, v in mine])
            return
        core, ids = groups[0]
        for g, v in pairs:
            dst = core.gradient(v._vid)
            src = np.asarray(g)
            if src.dtype.kind not in "biuf":
                raise TypeError(f"{type(self).__name__}.apply: the gradient of {v.path!r} must "
                                f"hold real numbers, got dtype {src.dtype}")
            if src.shape != dst.shape:
                raise ValueError(f"{type(self).__name__}.apply: the gradient of {v.path!r} has "
                                 f"shape {src.shape}, the variable {dst.shape}")
        for g, v in pairs:  # every shape checked before any write
            dst = core.gradient(v._vid)
            src = np.asarray(g, dtype=np.float32)
            if src.__array_interface__["data"][0] != dst.__array_interface__["data"][0]:
                dst[...] = src
        self._apply_schedule(core)
        core.apply_gradients(ids)

    def apply_gradients(self, grads_and_vars) -> None:
        """apply() on (gradient, variable) pairs, as Keras 2 and TensorFlow write it."""
        pairs = list(grads_and_vars)
        self.apply([g for g, _ in pairs], [v for _, v in pairs])

    def step(self) -> None:
        """One update from the gradients that backward accumulated in the variables given to
        build() (PyTorch's optimizer.step())."""
        if not getattr(self, "_variables", None):
            raise ValueError(f"{type(self).__name__}.step: call "
                             "build(model.trainable_weights) first")
        for core, ids in self._locate_all(self._variables):
            self._apply_schedule(core)
            core.apply_gradients(ids)

    def zero_grad(self) -> None:
        """Zeroes the gradients of the model this optimizer updates (PyTorch's zero_grad)."""
        if self._core is not None:
            self._core.zero_grads()

    def get_config(self) -> dict:
        lr = self.learning_rate
        if isinstance(self._schedule, LearningRateSchedule):
            lr = schedules.serialize(self._schedule)
        return {"name": self.name, "learning_rate": lr,
                "weight_decay": self.weight_decay, "clipnorm": self.clipnorm,
                "clipvalue": self.clipvalue, "global_clipnorm": self.global_clipnorm}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


def _number(name: str, v) -> float:
    if isinstance(v, (str, bytes)) or not isinstance(v, (int, float, np.number)):
        raise TypeError(f"{name} must be a number, got {type(v).__name__} {v!r}")
    return float(v)


def _check_lr(lr) -> float:
    lr = _number("learning_rate", lr)
    if not (lr >= 0 and math.isfinite(lr)):
        raise ValueError(f"learning_rate must be a finite number >= 0, got {lr}")
    return lr


def _check_unit(name: str, v: float, upper_open: bool = True) -> float:
    v = _number(name, v)
    if not (0.0 <= v < 1.0 if upper_open else 0.0 <= v <= 1.0):
        raise ValueError(f"{name} must be in [0, 1), got {v}")
    return v


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum.

    `m = momentum * m - lr * g; w += m` (Nesterov: `w += momentum * m - lr * g`).

    Example:
        >>> opt = pynn.optimizers.SGD(learning_rate=0.1, momentum=0.9)
    """

    _kind = "sgd"

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name: str = "SGD", **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name,
                         **kwargs)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"`momentum` must be a float between [0, 1], got {momentum}")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def _core_config(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2014), with Keras's epsilon placement and optional AMSGrad.

    Example:
        >>> opt = pynn.optimizers.Adam(learning_rate=1e-3)
    """

    _kind = "adam"

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name: str = "adam", **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name,
                         **kwargs)
        self.beta_1, self.beta_2 = _check_unit("beta_1", beta_1), _check_unit("beta_2", beta_2)
        if not epsilon >= 0:
            raise ValueError(f"epsilon must be >= 0, got {epsilon}")
        self.epsilon, self.amsgrad = float(epsilon), bool(amsgrad)

    def _core_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019): `w -= lr * wd * w`."""

    _kind = "adamw"

    def __init__(self, learning_rate: float = 0.001, weight_decay: float = 0.004,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 amsgrad: bool = False, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name: str = "adamw", **kwargs):
        if weight_decay is None:
            raise ValueError("AdamW: weight_decay must be a number")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay, clipnorm,
                         clipvalue, global_clipnorm, name, **kwargs)


class RMSprop(Optimizer):
    """RMSprop: `v = rho v + (1 - rho) g^2; w -= lr g / sqrt(v + eps)`, optionally centered and
    with momentum."""

    _kind = "rmsprop"

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name: str = "rmsprop", **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name,
                         **kwargs)
        self.rho = _check_unit("rho", rho)
        self.momentum = _check_unit("momentum", momentum)
        self.epsilon, self.centered = float(epsilon), bool(centered)

    def _core_config(self):
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


class Adagrad(Optimizer):
    """Adagrad: `s += g^2; w -= lr g / sqrt(s + eps)`, s starting at initial_accumulator_value."""

    _kind = "adagrad"

    def __init__(self, learning_rate: float = 0.001, initial_accumulator_value: float = 0.1,
                 epsilon: float = 1e-7, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name: str = "adagrad", **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name,
                         **kwargs)
        if not initial_accumulator_value >= 0:
            raise ValueError("initial_accumulator_value must be >= 0")
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = float(epsilon)

    def _core_config(self):
        return {"initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}

    def get_config(self):
        return {**super().get_config(),
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


_BY_NAME = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad}


def get(identifier) -> Optimizer:
    """Returns an optimizer for a name ('adam', 'sgd', ...) with Keras's defaults, or an instance.

    Example:
        >>> pynn.optimizers.get("adam").learning_rate
        0.001
    """
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(
        f"Unknown optimizer {identifier!r}. Known: {', '.join(sorted(_BY_NAME))}, "
        "or a pynn.optimizers.Optimizer instance"
    )
