"""Optimizers with Keras 3's names, arguments, defaults and update rules.

An optimizer holds its configuration; compile binds it to a model, whose core keeps the state
(momenta, second moments) in flat buffers beside the parameters and applies the update inside
the training step, in one fused pass (csrc/core/optimizer.c gives every rule's math).

Every optimizer takes Keras's common arguments: weight_decay, clipnorm, clipvalue,
global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency, loss_scale_factor and
gradient_accumulation_steps; LossScaleOptimizer wraps another with a dynamic loss scale.
"""

import math
import re
import sys
import types
import warnings

import numpy as np

from . import constraints, schedules
from .schedules import LearningRateSchedule

# `from pynn.optimizers.schedules import CosineDecay` works as in Keras, with this a module
sys.modules[__name__ + ".schedules"] = schedules

_INT_MAX = 2**31 - 1


def _number(name: str, v) -> float:
    if isinstance(v, (str, bytes, bool)) or not isinstance(v, (int, float, np.number)):
        raise ValueError(f"`{name}` must be a number, got {type(v).__name__} {v!r}")
    try:
        return float(v)
    except OverflowError:
        raise ValueError(f"`{name}` is too large: {v!r}") from None


def _finite(name: str, v, lo: float = -math.inf, hi: float = math.inf,
            lo_open: bool = False) -> float:
    """v as a float, finite and in [lo, hi] ((lo, hi] with lo_open), or ValueError."""
    x = _number(name, v)
    if not (math.isfinite(x) and (x > lo if lo_open else x >= lo) and x <= hi):
        side = "(" if lo_open else "["
        raise ValueError(f"`{name}` must be a finite number in {side}{lo}, {hi}], got {v!r}")
    return x


def _int(name: str, v, lo: int, hi: int = _INT_MAX) -> int:
    """v as an int in [lo, hi] (an integral float is accepted), or ValueError."""
    if isinstance(v, (bool, str, bytes)) or not isinstance(v, (int, float, np.number)):
        raise ValueError(f"`{name}` must be an integer, got {type(v).__name__} {v!r}")
    if isinstance(v, (float, np.floating)) and not (math.isfinite(v) and float(v).is_integer()):
        raise ValueError(f"`{name}` must be an integer, got {v!r}")
    i = int(v)
    if not lo <= i <= hi:
        raise ValueError(f"`{name}` must be an integer in [{lo}, {hi}], got {v!r}")
    return i


def _flag(name: str, v) -> bool:
    if not isinstance(v, (bool, int, np.bool_, np.integer)) or isinstance(v, float):
        raise ValueError(f"`{name}` must be a boolean, got {type(v).__name__} {v!r}")
    return bool(v)


def _check_lr(lr) -> float:
    if isinstance(lr, (str, bytes, bool)) or not isinstance(lr, (int, float, np.number)):
        raise TypeError(f"learning_rate must be a number, got {type(lr).__name__} {lr!r}")
    lr = float(lr)
    if not (lr >= 0 and math.isfinite(lr)):
        raise ValueError(f"learning_rate must be a finite number >= 0, got {lr}")
    return lr


def _check_unit(name: str, v, upper_open: bool = True) -> float:
    x = _number(name, v)
    if not (0.0 <= x < 1.0 if upper_open else 0.0 <= x <= 1.0):
        raise ValueError(f"`{name}` must be in [0, 1{')' if upper_open else ']'}, got {v!r}")
    return x


class Optimizer:
    """Base class, with the arguments every Keras 3 optimizer takes.

    Args:
        learning_rate: a float, a `LearningRateSchedule`, or a function of no arguments.
        weight_decay: decoupled weight decay, `w -= lr * weight_decay * w` before each update.
        clipnorm, clipvalue, global_clipnorm: gradient clipping (at most one of them): each
            variable's gradient to that norm, each element to that value, or all gradients
            together to that norm.
        use_ema: keep an exponential moving average of the weights, `avg = ema_momentum * avg +
            (1 - ema_momentum) * w` after every step (the first copies w); fit ends by writing
            the averages into the weights (`finalize_variable_values`).
        ema_momentum: in [0, 1].
        ema_overwrite_frequency: with use_ema, copy the averages into the weights every that
            many steps (None: only at the end of fit).
        loss_scale_factor: `scale_loss` multiplies the loss by it and `apply` divides the
            gradients by it.
        gradient_accumulation_steps: an int >= 2: update every that many steps, with the mean
            of their gradients (`iterations` counts updates; schedules see every step).
        name: the optimizer's name.
    """

    _kind = ""
    _default_name = "optimizer"

    def __init__(self, learning_rate: float = 0.001, weight_decay: float | None = None,
                 clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None, use_ema: bool = False,
                 ema_momentum: float = 0.99, ema_overwrite_frequency: int | None = None,
                 loss_scale_factor: float | None = None,
                 gradient_accumulation_steps: int | None = None, name: str | None = None,
                 **kwargs):
        self._init_options(weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
                           ema_momentum, ema_overwrite_frequency, loss_scale_factor,
                           gradient_accumulation_steps, name, kwargs)
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

    def _init_options(self, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
                      ema_momentum, ema_overwrite_frequency, loss_scale_factor,
                      gradient_accumulation_steps, name, kwargs) -> None:
        """Checks and stores the arguments every optimizer shares (not the learning rate)."""
        if kwargs.pop("decay", None) is not None:
            warnings.warn("Argument `decay` is no longer supported and will be ignored.",
                          stacklevel=3)
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        if sum(c is not None for c in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can "
                             f"be set. Received: clipnorm={clipnorm}, clipvalue={clipvalue}, "
                             f"global_clipnorm={global_clipnorm}")
        for k, v in (("clipnorm", clipnorm), ("clipvalue", clipvalue),
                     ("global_clipnorm", global_clipnorm), ("weight_decay", weight_decay)):
            if v is not None:
                _finite(k, v, 0.0, 3.4e38)
        if name is not None and not isinstance(name, str):
            raise ValueError(f"`name` must be a string, got {name!r}")
        self.name = name or self._default_name
        self.weight_decay = weight_decay
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.use_ema = _flag("use_ema", use_ema)
        if self.use_ema:
            self.ema_momentum = _finite("ema_momentum", ema_momentum, 0.0, 1.0)
        else:
            _number("ema_momentum", ema_momentum)
            self.ema_momentum = ema_momentum
        if ema_overwrite_frequency:  # 0 and None: never
            ema_overwrite_frequency = _int("ema_overwrite_frequency", ema_overwrite_frequency, 1)
        self.ema_overwrite_frequency = ema_overwrite_frequency or None
        if loss_scale_factor is not None:
            _finite("loss_scale_factor", loss_scale_factor, 0.0, 3.4e38, lo_open=True)
        self.loss_scale_factor = loss_scale_factor
        if gradient_accumulation_steps:
            if isinstance(gradient_accumulation_steps, (int, float, np.number)) and \
                    not isinstance(gradient_accumulation_steps, bool) and \
                    gradient_accumulation_steps < 2:
                raise ValueError("`gradient_accumulation_steps` must be an integer >= 2. "
                                 "Received: gradient_accumulation_steps="
                                 f"{gradient_accumulation_steps}")
            gradient_accumulation_steps = _int("gradient_accumulation_steps",
                                               gradient_accumulation_steps, 2)
        self.gradient_accumulation_steps = gradient_accumulation_steps or None
        self._iterations = 0
        self._core = None
        self._exclude_ids: set = set()
        self._exclude_pattern = None

    # -- the state lives in the core once bound ------------------------------------------------
    @property
    def learning_rate(self) -> float:
        """The rate of the next step: with a schedule, its value at the current step."""
        if self._schedule is not None:
            return self._scheduled(self._steps_taken())
        return self._core.learning_rate if self._core is not None else self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        if callable(value):
            self._schedule = value
            self._learning_rate = self._scheduled(self._steps_taken())
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
        called before every training step. Schedules see every step, accumulating or not."""
        core = core if core is not None else self._core
        if self._schedule is not None and core is not None:
            core.learning_rate = self._scheduled(core.iterations)

    def _steps_taken(self) -> int:
        """Calls of the optimizer so far (with gradient accumulation, more than iterations)."""
        return self._core.iterations if self._core is not None else self._iterations

    @property
    def iterations(self) -> int:
        """Updates so far (Keras: with gradient accumulation, steps // accumulation steps)."""
        k = self.gradient_accumulation_steps
        return self._steps_taken() // k if k else self._steps_taken()

    # -- what the core is told -----------------------------------------------------------------
    def _core_config(self) -> dict:
        """The rule's own settings for the core (beyond the common ones)."""
        return {}

    def _core_settings(self) -> dict:
        """Every setting core.set_optimizer takes for this optimizer."""
        return {
            "learning_rate": self._learning_rate,
            "weight_decay": self.weight_decay or 0.0,
            "clipnorm": self.clipnorm or 0.0,
            "clipvalue": self.clipvalue or 0.0,
            "global_clipnorm": self.global_clipnorm or 0.0,
            "use_ema": self.use_ema,
            "ema_momentum": float(self.ema_momentum) if self.use_ema else 0.99,
            "ema_overwrite_frequency": self.ema_overwrite_frequency or 0,
            "gradient_accumulation_steps": self.gradient_accumulation_steps or 0,
            "loss_scale_factor": self.loss_scale_factor or 0.0,
            **self._core_config(),
        }

    def _rule_slots(self) -> list[str]:
        """The rule's state buffers in the core's order (csrc/core/optimizer.c)."""
        return []

    def _slot_names(self) -> list[str]:
        """Every state buffer parallel to the weights, in the core's order, by Keras's names."""
        return (self._rule_slots() + (["average"] if self.use_ema else [])
                + (["gradient_accumulator"] if self.gradient_accumulation_steps else []))

    def _scalar_names(self) -> list[str]:
        """The state scalars after the buffers, in the core's order."""
        return []

    def _slot_shape(self, slot: str, variable) -> tuple | None:
        """The shape of `slot` for `variable` (None: the variable has no such slot)."""
        return tuple(variable.shape)

    def _needs_flags(self) -> bool:
        return bool(self._exclude_ids) or self._exclude_pattern is not None

    def _variable_flags(self, variable) -> int:
        """The core's per-variable flags: 1 no weight decay, 2 Muon's AdamW step."""
        if id(variable) in self._exclude_ids:
            return 1
        if self._exclude_pattern is not None and self._exclude_pattern.search(variable.name):
            return 1
        return 0

    def _flag_variables(self, core, variables, force: bool = False) -> None:
        """Tells the core which of `variables` (of that core) skip weight decay or take Muon's
        AdamW step (all of them 0 when none does, unless forced)."""
        if not (force or self._needs_flags()):
            return
        for v in variables:
            if getattr(v, "_owner_core", lambda: None)() is core and v.trainable:
                core.set_variable_optim(v._vid, self._variable_flags(v))

    def _bind(self, core, model=None) -> None:
        """Creates this optimizer's state in a model's core (fresh, at step 0); `model` (or
        the variables later given to apply) tells which weights are which."""
        if self._schedule is not None:
            self._learning_rate = self._scheduled(0)
        if model is not None:
            self._bound_variables = list(model.weights)
            self._flag_variables(core, self._bound_variables)
        core.set_optimizer(self._kind, **self._core_settings())
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
        self._flag_variables(core, variables)
        # distinct trainable variables holding every trainable value are all of them: then the
        # core updates its whole trainable span in one pass
        every = sum(int(v.size) for v in variables) == core.param_count(True)
        return core, (None if every else ids)

    def apply(self, grads, trainable_variables=None) -> None:
        """One update: each variable moves by its gradient, with this optimizer's rule (Keras 3's
        `optimizer.apply`). None gradients are skipped. With a loss scale (loss_scale_factor,
        LossScaleOptimizer) the gradients are those of the scaled loss (`scale_loss`).

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
        constraints.apply_python(constraints.python_weights([v for _, v in pairs]))

    def apply_gradients(self, grads_and_vars) -> int:
        """apply() on (gradient, variable) pairs, as Keras 2 and TensorFlow write it; returns
        the step count."""
        pairs = list(grads_and_vars)
        self.apply([g for g, _ in pairs], [v for _, v in pairs])
        return self._steps_taken()

    def step(self) -> None:
        """One update from the gradients that backward accumulated in the variables given to
        build() (PyTorch's optimizer.step())."""
        if not getattr(self, "_variables", None):
            raise ValueError(f"{type(self).__name__}.step: call "
                             "build(model.trainable_weights) first")
        for core, ids in self._locate_all(self._variables):
            self._apply_schedule(core)
            core.apply_gradients(ids)
        constraints.apply_python(constraints.python_weights(self._variables))

    def zero_grad(self) -> None:
        """Zeroes the gradients of the model this optimizer updates (PyTorch's zero_grad)."""
        if self._core is not None:
            self._core.zero_grads()

    def scale_loss(self, loss):
        """The loss times loss_scale_factor (unchanged without one), for the gradients that
        apply() divides back."""
        if self.loss_scale_factor is not None:
            return loss * self.loss_scale_factor
        return loss

    def exclude_from_weight_decay(self, var_list=None, var_names=None) -> None:
        """Leaves variables out of weight decay: those in `var_list`, and those whose name
        matches one of the regular expressions in `var_names` (as Keras, before building).

        Example:
            >>> opt = pynn.optimizers.AdamW()
            >>> opt.exclude_from_weight_decay(var_names=["bias"])
        """
        if self._core is not None and self.iterations > 0:
            raise ValueError("`exclude_from_weight_decay()` can only be configured before "
                             "the optimizer is built.")
        if var_names and not all(isinstance(n, str) for n in var_names):
            raise ValueError(f"var_names must be strings, got {var_names!r}")
        try:
            pattern = re.compile("|".join(sorted(set(var_names)))) if var_names else None
        except re.error as e:
            raise ValueError(f"var_names: {e}") from None
        self._exclude_ids = {id(v) for v in var_list} if var_list else set()
        self._exclude_pattern = pattern
        if self._core is not None:  # compiled already: the bound model's weights learn it now
            self._flag_variables(self._core, vars(self).get("_bound_variables", []), force=True)

    def finalize_variable_values(self, var_list=None) -> None:
        """With use_ema, writes the moving averages into the weights (fit does at its end)."""
        if self.use_ema and self._core is not None:
            self._core.finalize_optimizer()

    def get_config(self) -> dict:
        lr = self.learning_rate
        if isinstance(self._schedule, LearningRateSchedule):
            lr = schedules.serialize(self._schedule)
        return {"name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "global_clipnorm": self.global_clipnorm,
                "clipvalue": self.clipvalue, "use_ema": self.use_ema,
                "ema_momentum": self.ema_momentum,
                "ema_overwrite_frequency": self.ema_overwrite_frequency,
                "loss_scale_factor": self.loss_scale_factor,
                "gradient_accumulation_steps": self.gradient_accumulation_steps}

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None):
        config = dict(config)
        lr = config.get("learning_rate")
        if isinstance(lr, dict):
            config["learning_rate"] = schedules.deserialize(lr, custom_objects)
        return cls(**config)


_COMMON = ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "use_ema", "ema_momentum",
           "ema_overwrite_frequency", "loss_scale_factor", "gradient_accumulation_steps", "name")


def _common(local: dict) -> dict:
    """The common arguments among a constructor's locals, to pass to Optimizer.__init__."""
    return {k: local[k] for k in _COMMON}


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum.

    `m = momentum * m - lr * g; w += m` (Nesterov: `w += momentum * m - lr * g`).

    Example:
        >>> opt = pynn.optimizers.SGD(learning_rate=0.1, momentum=0.9)
    """

    _kind = "sgd"
    _default_name = "SGD"

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                 loss_scale_factor=None, gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate, **_common(locals()), **kwargs)
        if not (isinstance(momentum, (int, float, np.number)) and 0.0 <= momentum <= 1.0):
            raise ValueError(f"`momentum` must be a float between [0, 1], got {momentum}")
        self.momentum, self.nesterov = float(momentum), _flag("nesterov", nesterov)

    def _core_config(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}

    def _rule_slots(self):
        return ["momentum"] if self.momentum else []

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


def _betas_eps(opt, beta_1, beta_2, epsilon) -> None:
    opt.beta_1, opt.beta_2 = _check_unit("beta_1", beta_1), _check_unit("beta_2", beta_2)
    opt.epsilon = _finite("epsilon", epsilon, 0.0, 3.4e38)


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2014), with Keras's epsilon placement and optional AMSGrad.

    Example:
        >>> opt = pynn.optimizers.Adam(learning_rate=1e-3)
    """

    _kind = "adam"
    _default_name = "adam"

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate, **_common(locals()), **kwargs)
        _betas_eps(self, beta_1, beta_2, epsilon)
        self.amsgrad = _flag("amsgrad", amsgrad)

    def _core_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}

    def _rule_slots(self):
        return ["momentum", "velocity"] + (["velocity_hat"] if self.amsgrad else [])

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019): `w -= lr * wd * w`."""

    _kind = "adamw"
    _default_name = "adamw"

    def __init__(self, learning_rate: float = 0.001, weight_decay: float = 0.004,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 amsgrad: bool = False, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                 loss_scale_factor=None, gradient_accumulation_steps=None, name=None, **kwargs):
        if weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: "
                             "weight_decay=None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, **_common(locals()),
                         **kwargs)


class RMSprop(Optimizer):
    """RMSprop: `v = rho v + (1 - rho) g^2; w -= lr g / sqrt(v + eps)`, optionally centered and
    with momentum."""

    _kind = "rmsprop"
    _default_name = "rmsprop"

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate, **_common(locals()), **kwargs)
        self.rho = _check_unit("rho", rho)
        self.momentum = _check_unit("momentum", momentum)
        self.epsilon = _finite("epsilon", epsilon, 0.0, 3.4e38)
        self.centered = _flag("centered", centered)

    def _core_config(self):
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}

    def _rule_slots(self):
        return (["velocity"] + (["average_gradient"] if self.centered else [])
                + (["momentum"] if self.momentum else []))

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


class Adagrad(Optimizer):
    """Adagrad: `s += g^2; w -= lr g / sqrt(s + eps)`, s starting at initial_accumulator_value."""

    _kind = "adagrad"
    _default_name = "adagrad"

    def __init__(self, learning_rate: float = 0.001, initial_accumulator_value: float = 0.1,
                 epsilon: float = 1e-7, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate, **_common(locals()), **kwargs)
        self.initial_accumulator_value = _finite("initial_accumulator_value",
                                                 initial_accumulator_value, 0.0, 3.4e38)
        self.epsilon = _finite("epsilon", epsilon, 0.0, 3.4e38)

    def _core_config(self):
        return {"initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}

    def _rule_slots(self):
        return ["accumulator"]

    def get_config(self):
        return {**super().get_config(),
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class Nadam(Optimizer):
    """Nadam: Adam with Nesterov momentum (Dozat, 2015), Keras's momentum schedule
    `u_t = beta_1 (1 - 0.5 * 0.96^t)`.

    Example:
        >>> opt = pynn.optimizers.Nadam(learning_rate=2e-3)
    """

    _kind = "nadam"
    _default_name = "nadam"

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate, **_common(locals()), **kwargs)
        _betas_eps(self, beta_1, beta_2, epsilon)

    def _core_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}

    def _rule_slots(self):
        return ["momentum", "velocity"]

    def _scalar_names(self):
        return ["u_product"]

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class Adamax(Optimizer):
    """Adamax: Adam with the infinity norm, `u = max(beta_2 u, |g|)`,
    `w -= lr m / ((1 - beta_1^t) (u + eps))`.

    Example:
        >>> opt = pynn.optimizers.Adamax(learning_rate=2e-3)
    """

    _kind = "adamax"
    _default_name = "adamax"

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate, **_common(locals()), **kwargs)
        _betas_eps(self, beta_1, beta_2, epsilon)

    def _core_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}

    def _rule_slots(self):
        return ["momentum", "norm"]

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class Adadelta(Optimizer):
    """Adadelta (Zeiler, 2012): per-weight steps from running averages of squared gradients
    and squared updates, scaled by learning_rate as Keras does.

    Example:
        >>> opt = pynn.optimizers.Adadelta(learning_rate=1.0)
    """

    _kind = "adadelta"
    _default_name = "adadelta"

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.95, epsilon: float = 1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                 loss_scale_factor=None, gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate, **_common(locals()), **kwargs)
        self.rho = _check_unit("rho", rho, upper_open=False)
        self.epsilon = _finite("epsilon", epsilon, 0.0, 3.4e38)

    def _core_config(self):
        return {"rho": self.rho, "epsilon": self.epsilon}

    def _rule_slots(self):
        return ["accumulated_grad", "accumulated_delta_var"]

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Lion(Optimizer):
    """Lion (Chen et al., 2023): `w -= lr sign(beta_1 m + (1 - beta_1) g)`,
    `m = beta_2 m + (1 - beta_2) g`.

    Example:
        >>> opt = pynn.optimizers.Lion(learning_rate=1e-4)
    """

    _kind = "lion"
    _default_name = "lion"

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.99,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                 loss_scale_factor=None, gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate, **_common(locals()), **kwargs)
        b1 = _number("beta_1", beta_1)
        if b1 <= 0 or b1 > 1:
            raise ValueError("Argument `beta_1` must be in the [0, 1] range. Otherwise, the "
                             f"optimizer degenerates to SignSGD. Received: beta_1={beta_1}.")
        self.beta_1, self.beta_2 = b1, _check_unit("beta_2", beta_2, upper_open=False)

    def _core_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2}

    def _rule_slots(self):
        return ["momentum"]

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}


class Adafactor(Optimizer):
    """Adafactor (Shazeer and Stern, 2018): second moments factored into row and column means
    over each weight's last two axes, steps relative to the weight's RMS.

    Args:
        beta_2_decay: the second moment's decay, `1 - t^beta_2_decay` (<= 0).
        epsilon_1: added to the squared gradients.
        epsilon_2: the smallest weight RMS a step is relative to.
        clip_threshold: the update's RMS is clipped to it.
        relative_step: cap the rate at `1 / sqrt(t)` (Keras applies this cap either way).

    Example:
        >>> opt = pynn.optimizers.Adafactor(learning_rate=1e-2)
    """

    _kind = "adafactor"
    _default_name = "adafactor"

    def __init__(self, learning_rate: float = 0.001, beta_2_decay: float = -0.8,
                 epsilon_1: float = 1e-30, epsilon_2: float = 1e-3, clip_threshold: float = 1.0,
                 relative_step: bool = True, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate, **_common(locals()), **kwargs)
        self.beta_2_decay = _finite("beta_2_decay", beta_2_decay, hi=0.0)
        self.epsilon_1 = _finite("epsilon_1", epsilon_1, 0.0, 3.4e38)
        self.epsilon_2 = _finite("epsilon_2", epsilon_2, 0.0, 3.4e38)
        self.clip_threshold = _finite("clip_threshold", clip_threshold, 0.0, 3.4e38,
                                      lo_open=True)
        self.relative_step = _flag("relative_step", relative_step)

    def _core_config(self):
        return {"beta_2_decay": self.beta_2_decay, "epsilon_1": self.epsilon_1,
                "epsilon_2": self.epsilon_2, "clip_threshold": self.clip_threshold}

    def _rule_slots(self):
        return ["r", "c", "velocity"]

    def _slot_shape(self, slot, variable):
        shape = tuple(variable.shape)
        if slot == "velocity":
            return shape
        if len(shape) < 2:
            return None  # Keras keeps a placeholder 0 there
        return shape[:-1] if slot == "r" else shape[:-2] + shape[-1:]

    def get_config(self):
        return {**super().get_config(), "beta_2_decay": self.beta_2_decay,
                "epsilon_1": self.epsilon_1, "epsilon_2": self.epsilon_2,
                "clip_threshold": self.clip_threshold, "relative_step": self.relative_step}


class Ftrl(Optimizer):
    """FTRL-Proximal (McMahan et al., 2013) with Keras's L1, L2 and shrinkage regularisation.

    Args:
        learning_rate_power: <= 0; -0.5 is the paper's rate.
        initial_accumulator_value: >= 0.
        l1_regularization_strength, l2_regularization_strength,
        l2_shrinkage_regularization_strength: >= 0.
        beta: >= 0, added to the denominator as in the paper.

    Example:
        >>> opt = pynn.optimizers.Ftrl(learning_rate=0.1, l1_regularization_strength=0.01)
    """

    _kind = "ftrl"
    _default_name = "ftrl"

    def __init__(self, learning_rate: float = 0.001, learning_rate_power: float = -0.5,
                 initial_accumulator_value: float = 0.1, l1_regularization_strength: float = 0.0,
                 l2_regularization_strength: float = 0.0,
                 l2_shrinkage_regularization_strength: float = 0.0, beta: float = 0.0,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                 loss_scale_factor=None, gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate, **_common(locals()), **kwargs)
        checks = [("initial_accumulator_value", initial_accumulator_value, "positive or zero"),
                  ("learning_rate_power", learning_rate_power, "negative or zero"),
                  ("l1_regularization_strength", l1_regularization_strength,
                   "positive or zero"),
                  ("l2_regularization_strength", l2_regularization_strength,
                   "positive or zero"),
                  ("l2_shrinkage_regularization_strength",
                   l2_shrinkage_regularization_strength, "positive or zero"),
                  ("beta", beta, "positive or zero")]
        for k, v, want in checks:
            x = _number(k, v)
            bad = x > 0.0 if want == "negative or zero" else x < 0.0
            if bad or not math.isfinite(x) or abs(x) > 3.4e38:
                raise ValueError(f"`{k}` needs to be {want}. Received: {k}={v}.")
            setattr(self, k, x)
        if self._schedule is None and self._learning_rate == 0.0:
            raise ValueError("Ftrl: learning_rate must be > 0 (the rule divides by it)")

    def _core_config(self):
        return {"learning_rate_power": self.learning_rate_power,
                "initial_accumulator_value": self.initial_accumulator_value,
                "l1": self.l1_regularization_strength, "l2": self.l2_regularization_strength,
                "l2_shrinkage": self.l2_shrinkage_regularization_strength, "beta": self.beta}

    def _rule_slots(self):
        return ["accumulator", "linear"]

    def get_config(self):
        return {**super().get_config(), "learning_rate_power": self.learning_rate_power,
                "initial_accumulator_value": self.initial_accumulator_value,
                "l1_regularization_strength": self.l1_regularization_strength,
                "l2_regularization_strength": self.l2_regularization_strength,
                "l2_shrinkage_regularization_strength":
                    self.l2_shrinkage_regularization_strength,
                "beta": self.beta}


class Lamb(Optimizer):
    """LAMB (You et al., 2019): Adam's step scaled per variable by `|w| / |step|` (the trust
    ratio), for large batches.

    Example:
        >>> opt = pynn.optimizers.Lamb(learning_rate=1e-3)
    """

    _kind = "lamb"
    _default_name = "lamb"

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate, **_common(locals()), **kwargs)
        _betas_eps(self, beta_1, beta_2, epsilon)

    def _core_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}

    def _rule_slots(self):
        return ["momentum", "velocity"]

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class Muon(Optimizer):
    """Muon (Jordan et al., 2024; Liu et al., 2025): momentum orthogonalised by Newton-Schulz
    iterations for 2-D weights; AdamW for the others, for embeddings (exclude_embeddings) and
    for weights whose path matches one of `exclude_layers` (regular expressions).

    Args:
        adam_beta_1, adam_beta_2, epsilon, adam_weight_decay, adam_lr_ratio: the AdamW step.
        momentum, nesterov: Muon's momentum.
        muon_a, muon_b, muon_c, ns_steps: the Newton-Schulz quintic and its iterations.
        rms_rate: steps scaled by `sqrt(max(rows, cols)) * rms_rate` (None: unscaled).

    Example:
        >>> opt = pynn.optimizers.Muon(learning_rate=1e-3, exclude_layers=["output"])
    """

    _kind = "muon"
    _default_name = "muon"

    def __init__(self, learning_rate: float = 0.001, adam_beta_1: float = 0.9,
                 adam_beta_2: float = 0.999, adam_weight_decay: float = 0.004,
                 epsilon: float = 1e-7, weight_decay: float = 0.004, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, exclude_layers=None,
                 exclude_embeddings: bool = True, muon_a: float = 3.4445, muon_b: float = -4.7750,
                 muon_c: float = 2.0315, adam_lr_ratio: float = 1, momentum: float = 0.95,
                 ns_steps: int = 5, nesterov: bool = True, rms_rate: float | None = 0.2,
                 **kwargs):
        super().__init__(learning_rate, **_common(locals()), **kwargs)
        self.adam_beta_1 = _check_unit("adam_beta_1", adam_beta_1)
        self.adam_beta_2 = _check_unit("adam_beta_2", adam_beta_2)
        self.epsilon = _finite("epsilon", epsilon, 0.0, 3.4e38)
        for k, v in (("muon_a", muon_a), ("muon_b", muon_b), ("muon_c", muon_c)):
            _finite(k, v, -3.4e38, 3.4e38)
        self.muon_a, self.muon_b, self.muon_c = muon_a, muon_b, muon_c
        _finite("adam_lr_ratio", adam_lr_ratio, 0.0, 3.4e38)
        self.adam_lr_ratio = adam_lr_ratio
        self.momentum = _check_unit("momentum", momentum, upper_open=False)
        self.ns_steps = _int("ns_steps", ns_steps, 0, 1000)
        self.nesterov = _flag("nesterov", nesterov)
        self.exclude_embeddings = _flag("exclude_embeddings", exclude_embeddings)
        if exclude_layers is None:
            exclude_layers = []
        if not isinstance(exclude_layers, (list, tuple)) or \
                not all(isinstance(k, str) for k in exclude_layers):
            raise ValueError(f"`exclude_layers` must be a list of strings, got "
                             f"{exclude_layers!r}")
        try:
            self._exclude_res = [re.compile(k) for k in exclude_layers]
        except re.error as e:
            raise ValueError(f"`exclude_layers`: {e}") from None
        self.exclude_layers = list(exclude_layers)
        if adam_weight_decay is not None:
            _finite("adam_weight_decay", adam_weight_decay, 0.0, 3.4e38)
        self.adam_weight_decay = adam_weight_decay
        if rms_rate is not None:
            _finite("rms_rate", rms_rate, 0.0, 3.4e38)
        self.rms_rate = rms_rate

    def _should_use_adamw(self, variable) -> bool:
        """Keras's rule: AdamW for weights that are not 2-D, embeddings, excluded layers."""
        if len(variable.shape) != 2:
            return True
        if self.exclude_embeddings and "embedding" in variable.path.lower():
            return True
        return any(p.search(variable.path) for p in self._exclude_res)

    def _needs_flags(self):
        return True

    def _variable_flags(self, variable):
        return super()._variable_flags(variable) | (2 if self._should_use_adamw(variable) else 0)

    def _core_config(self):
        return {"beta_1": self.adam_beta_1, "beta_2": self.adam_beta_2, "epsilon": self.epsilon,
                "muon_a": self.muon_a, "muon_b": self.muon_b, "muon_c": self.muon_c,
                "adam_lr_ratio": self.adam_lr_ratio, "momentum": self.momentum,
                "ns_steps": self.ns_steps, "nesterov": self.nesterov,
                "adam_weight_decay": self.adam_weight_decay or 0.0,
                "rms_rate": -1.0 if self.rms_rate is None else self.rms_rate}

    def _rule_slots(self):
        return ["momentum", "velocity"]

    def _slot_shape(self, slot, variable):
        if slot == "velocity" and not self._should_use_adamw(variable):
            return None  # Muon's own step keeps no velocity
        return tuple(variable.shape)

    def get_config(self):
        return {**super().get_config(), "adam_beta_1": self.adam_beta_1,
                "adam_beta_2": self.adam_beta_2, "epsilon": self.epsilon,
                "exclude_layers": list(self.exclude_layers), "muon_a": self.muon_a,
                "muon_b": self.muon_b, "muon_c": self.muon_c,
                "adam_lr_ratio": self.adam_lr_ratio, "momentum": self.momentum,
                "ns_steps": self.ns_steps, "nesterov": self.nesterov,
                "exclude_embeddings": self.exclude_embeddings,
                "adam_weight_decay": self.adam_weight_decay, "rms_rate": self.rms_rate}


class ScheduleFreeAdamW(Optimizer):
    """Schedule-free AdamW (Defazio et al., 2024): Adam steps on a sequence z, the weights an
    interpolation of z and z's running average, so no learning-rate schedule is needed.

    Args:
        warmup_steps: the rate grows linearly over this many steps.

    Example:
        >>> opt = pynn.optimizers.ScheduleFreeAdamW(learning_rate=0.0025, warmup_steps=100)
    """

    _kind = "schedule_free_adamw"
    _default_name = "schedule_free_adam_w"

    def __init__(self, learning_rate: float = 0.0025, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, warmup_steps: int = 0, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate, **_common(locals()), **kwargs)
        self.beta_1 = _finite("beta_1", beta_1, 0.0, 1.0, lo_open=True)
        self.beta_2 = _check_unit("beta_2", beta_2)
        self.epsilon = _finite("epsilon", epsilon, 0.0, 3.4e38)
        self.warmup_steps = _int("warmup_steps", warmup_steps, 0)

    def _core_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "warmup_steps": self.warmup_steps}

    def _rule_slots(self):
        return ["momentum", "velocity"]

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "warmup_steps": self.warmup_steps}


class LossScaleOptimizer(Optimizer):
    """Wraps an optimizer with Keras's dynamic loss scaling: `scale_loss` multiplies the loss
    by the scale, the update divides it out of the gradients; a gradient that is not finite
    skips the step and halves the scale, `dynamic_growth_steps` finite steps in a row double it.
    pynn computes in float32 (and bfloat16 products, float32's range): the scale guards
    nothing there but behaves as in Keras.

    Args:
        inner_optimizer: the optimizer to wrap.
        initial_scale: the first scale (2^15).
        dynamic_growth_steps: finite steps before the scale doubles (2000).

    Example:
        >>> opt = pynn.optimizers.LossScaleOptimizer(pynn.optimizers.Adam())
    """

    _default_name = "loss_scale_optimizer"

    def __init__(self, inner_optimizer, initial_scale: float = 2.0**15,
                 dynamic_growth_steps: int = 2000, name: str | None = None, **kwargs):
        if not kwargs.pop("dynamic", True):
            raise ValueError("LossScaleOptimizer no longer supports `dynamic=False`. Instead, "
                             "simply set `loss_scale_factor` directly on the "
                             "`inner_optimizer`.")
        defaults = {"weight_decay": None, "clipnorm": None, "global_clipnorm": None,
                    "clipvalue": None, "use_ema": False, "ema_momentum": 0.99,
                    "ema_overwrite_frequency": None, "loss_scale_factor": None,
                    "gradient_accumulation_steps": None}
        for k, default in defaults.items():
            if k in kwargs and kwargs.pop(k) != default:
                raise ValueError(f"LossScaleOptimizer does not support `{k}`. Instead, set "
                                 f"`{k}` on the `inner_optimizer`.")
        if kwargs:
            raise ValueError("LossScaleOptimizer does not support arguments: "
                             f"`{'`, `'.join(kwargs.keys())}`.")
        if not isinstance(inner_optimizer, Optimizer) or \
                isinstance(inner_optimizer, LossScaleOptimizer):
            raise ValueError("LossScaleOptimizer: inner_optimizer must be a pynn optimizer "
                             f"(not a LossScaleOptimizer), got {inner_optimizer!r}")
        self.inner_optimizer = inner_optimizer
        self._init_options(None, None, None, None, False, 0.99, None, None, None, name, {})
        self.initial_scale = _finite("initial_scale", initial_scale, 0.0, 3.4e38,
                                     lo_open=True)
        self.dynamic_growth_steps = _int("dynamic_growth_steps", dynamic_growth_steps, 1,
                                         2**24)
        inner_optimizer.loss_scale_factor = None

    # the wrapped optimizer's core, rate, schedule and step count are this one's
    @property
    def _core(self):
        return vars(self).get("_lso_core")

    @_core.setter
    def _core(self, core):
        vars(self)["_lso_core"] = core
        self.inner_optimizer._core = core

    @property
    def _kind(self):
        return self.inner_optimizer._kind

    @property
    def _schedule(self):
        return self.inner_optimizer._schedule

    @property
    def _learning_rate(self):
        return self.inner_optimizer._learning_rate

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self.inner_optimizer.learning_rate = value

    @property
    def gradient_accumulation_steps(self):
        return self.inner_optimizer.gradient_accumulation_steps

    @gradient_accumulation_steps.setter
    def gradient_accumulation_steps(self, value):
        pass  # the inner optimizer's holds

    @property
    def use_ema(self):
        return self.inner_optimizer.use_ema

    @use_ema.setter
    def use_ema(self, value):
        pass

    def _apply_schedule(self, core=None):
        self.inner_optimizer._apply_schedule(core if core is not None else self._core)

    def _core_settings(self):
        return {**self.inner_optimizer._core_settings(), "dynamic_loss_scale": True,
                "initial_scale": self.initial_scale,
                "dynamic_growth_steps": self.dynamic_growth_steps}

    def _slot_names(self):
        return self.inner_optimizer._slot_names()

    def _scalar_names(self):
        return self.inner_optimizer._scalar_names() + ["dynamic_scale", "step_counter"]

    def _slot_shape(self, slot, variable):
        return self.inner_optimizer._slot_shape(slot, variable)

    def _needs_flags(self):
        return self.inner_optimizer._needs_flags()

    def _variable_flags(self, variable):
        return self.inner_optimizer._variable_flags(variable)

    def _bind(self, core, model=None):
        inner = self.inner_optimizer
        if inner._schedule is not None:
            inner._learning_rate = inner._scheduled(0)
        if model is not None:
            inner._bound_variables = list(model.weights)
            self._flag_variables(core, inner._bound_variables)
        core.set_optimizer(self._kind, **self._core_settings())
        self._core = core

    def _scale_state(self):
        state = self._core.optimizer_state() if self._core is not None else None
        return None if state is None or state.size < 2 else state[-2:]

    @property
    def dynamic_scale(self) -> float:
        """The current loss scale."""
        s = self._scale_state()
        return float(s[0]) if s is not None else float(self.initial_scale)

    @property
    def step_counter(self) -> int:
        """Finite steps since the scale last changed."""
        s = self._scale_state()
        return int(s[1]) if s is not None else 0

    def scale_loss(self, loss):
        """The loss times the current scale."""
        return loss * self.dynamic_scale

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        self.inner_optimizer.exclude_from_weight_decay(var_list, var_names)

    def finalize_variable_values(self, var_list=None):
        self.inner_optimizer.finalize_variable_values(var_list)

    def get_config(self):
        from .saving.serialization import serialize_keras_object

        return {"name": self.name, "inner_optimizer": serialize_keras_object(self.inner_optimizer),
                "initial_scale": self.initial_scale,
                "dynamic_growth_steps": self.dynamic_growth_steps}

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None):
        from .saving.serialization import deserialize_keras_object

        config = dict(config)
        inner = deserialize_keras_object(config.pop("inner_optimizer", None), custom_objects,
                                         "optimizer")
        return cls(inner, **config)


def _legacy_class(name: str) -> type:
    def __init__(self, *args, **kwargs):
        raise ImportError(
            "`keras.optimizers.legacy` is not supported in Keras 3. When using `tf.keras`, to "
            "continue using a `tf.keras.optimizers.legacy` optimizer, you can install the "
            "`tf_keras` package (Keras 2) and set the environment variable "
            "`TF_USE_LEGACY_KERAS=True` to configure TensorFlow to use `tf_keras` when "
            "accessing `tf.keras`.")
    return type(name, (), {"__init__": __init__, "__module__": __name__ + ".legacy"})


# keras.optimizers.legacy: Keras 2's optimizers, which Keras 3 refuses with an ImportError
legacy = types.ModuleType(__name__ + ".legacy", "Keras 2's optimizers (refused, as Keras 3).")
for _n in ("Adagrad", "Adam", "Ftrl", "Optimizer", "RMSprop", "SGD"):
    setattr(legacy, _n, _legacy_class(_n))
sys.modules[legacy.__name__] = legacy

_BY_NAME = {c.__name__.lower(): c for c in (
    SGD, Adam, AdamW, RMSprop, Adagrad, Nadam, Adamax, Adadelta, Lion, Adafactor, Ftrl, Lamb,
    Muon, ScheduleFreeAdamW)}


def serialize(optimizer: Optimizer) -> dict:
    """The optimizer's config as Keras writes it: {module, class_name, config, registered_name}.

    Example:
        >>> pynn.optimizers.serialize(pynn.optimizers.Adam())["class_name"]
        'Adam'
    """
    from .saving.serialization import serialize_keras_object

    return serialize_keras_object(optimizer)


def deserialize(config: dict, custom_objects: dict | None = None) -> Optimizer:
    """The optimizer `serialize` described (class names case-insensitive, as Keras).

    Example:
        >>> pynn.optimizers.deserialize({"class_name": "nadam", "config": {}})
    """
    from .saving.serialization import deserialize_keras_object

    if isinstance(config, dict) and isinstance(config.get("class_name"), str):
        name = config["class_name"]
        known = {**_BY_NAME, "lossscaleoptimizer": LossScaleOptimizer}
        if name.lower() in known and name not in (custom_objects or {}):
            config = {**config, "class_name": known[name.lower()].__name__}
    return deserialize_keras_object(config, custom_objects, "optimizer")


def get(identifier) -> Optimizer:
    """Returns an optimizer for a name ('adam', 'nadam', ...) with Keras's defaults, a config
    dict, or an instance.

    Example:
        >>> pynn.optimizers.get("adam").learning_rate
        0.001
    """
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(
        f"Unknown optimizer {identifier!r}. Known: {', '.join(sorted(_BY_NAME))}, "
        "or a pynn.optimizers.Optimizer instance"
    )
