"""Learning-rate schedules with Keras 3's names, arguments and formulas
(`pynn.optimizers.schedules`).

A schedule maps the optimizer's step count (0 for the first update) to a learning rate. Given as
an optimizer's `learning_rate`, it is evaluated once per training step, in Python, and the value
handed to the core before the step runs; `optimizer.learning_rate` reads the current value.

Example:
    >>> lr = pynn.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1000, decay_rate=0.96)
    >>> model.compile(optimizer=pynn.optimizers.SGD(learning_rate=lr), loss="mse")
"""

import bisect
import math


class LearningRateSchedule:
    """Base class: implement `__call__(step)` (and `get_config` to make it serializable).

    Example:
        >>> class InverseStep(pynn.optimizers.schedules.LearningRateSchedule):
        ...     def __init__(self, lr): self.lr = lr
        ...     def __call__(self, step): return self.lr / (step + 1)
    """

    def __call__(self, step):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must "
                                  "override `__call__(self, step)`.")

    def get_config(self) -> dict:
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must "
                                  "override `get_config()` in order to be serializable.")

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


def _positive_steps(name: str, value) -> None:
    if not value > 0:
        raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={value}")


class _StepDecay(LearningRateSchedule):
    """What ExponentialDecay and InverseTimeDecay share: the rate decays with step / decay_steps
    (floored with staircase=True)."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float,
                 staircase: bool = False, name: str = "StepDecay"):
        _positive_steps("decay_steps", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name

    def _progress(self, step) -> float:
        p = float(step) / self.decay_steps
        return math.floor(p) if self.staircase else p

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class ExponentialDecay(_StepDecay):
    """`initial_learning_rate * decay_rate ** (step / decay_steps)`; with staircase=True the
    exponent is floored, so the rate drops every `decay_steps` steps.

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: steps per factor of `decay_rate` (> 0).
        decay_rate: the factor.
        staircase: decay at discrete intervals.

    Example:
        >>> ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)(20)
        0.025
    """

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float,
                 staircase: bool = False, name: str = "ExponentialDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def __call__(self, step) -> float:
        return self.initial_learning_rate * self.decay_rate ** self._progress(step)



class PiecewiseConstantDecay(LearningRateSchedule):
    """`values[0]` while `step <= boundaries[0]`, `values[i]` while
    `boundaries[i-1] < step <= boundaries[i]`, and `values[-1]` after the last boundary.

    Args:
        boundaries: strictly increasing step counts.
        values: one more value than boundaries.

    Example:
        >>> PiecewiseConstantDecay([100, 200], [1.0, 0.5, 0.1])(150)
        0.5
    """

    def __init__(self, boundaries, values, name: str = "PiecewiseConstant"):
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of values. Received: "
                f"boundaries={boundaries} of length {len(boundaries)}, and values={values} of "
                f"length {len(values)}.")
        if any(b >= c for b, c in zip(boundaries, boundaries[1:])):
            raise ValueError(f"boundaries must be strictly increasing, got {boundaries}")
        self.boundaries = list(boundaries)
        self.values = list(values)
        self.name = name

    def __call__(self, step) -> float:
        # bisect_left: the first boundary >= step, i.e. the interval (b[i-1], b[i]] holding it
        return self.values[bisect.bisect_left(self.boundaries, step)]

    def get_config(self) -> dict:
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """From `initial_learning_rate` to `end_learning_rate` over `decay_steps` steps:
    `(initial - end) * (1 - min(step, decay_steps) / decay_steps) ** power + end`; with
    cycle=True, `decay_steps` grows to the first multiple above the step."""

    def __init__(self, initial_learning_rate: float, decay_steps: int,
                 end_learning_rate: float = 0.0001, power: float = 1.0, cycle: bool = False,
                 name: str = "PolynomialDecay"):
        _positive_steps("decay_steps", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = cycle
        self.name = name

    def __call__(self, step) -> float:
        step, decay_steps = float(step), float(self.decay_steps)
        if self.cycle:
            decay_steps *= 1.0 if step == 0 else math.ceil(step / decay_steps)
        else:
            step = min(step, decay_steps)
        p = step / decay_steps
        return ((self.initial_learning_rate - self.end_learning_rate) * (1 - p) ** self.power
                + self.end_learning_rate)

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "end_learning_rate": self.end_learning_rate,
                "power": self.power, "cycle": self.cycle, "name": self.name}


class InverseTimeDecay(_StepDecay):
    """`initial_learning_rate / (1 + decay_rate * step / decay_steps)` (the quotient floored
    with staircase=True)."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float,
                 staircase: bool = False, name: str = "InverseTimeDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def __call__(self, step) -> float:
        return self.initial_learning_rate / (1 + self.decay_rate * self._progress(step))



class CosineDecay(LearningRateSchedule):
    """Cosine decay (Loshchilov and Hutter, SGDR), after an optional linear warmup.

    Without `warmup_target`: `lr * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha)`
    with `s = min(step, decay_steps)`. With it: a line from `initial_learning_rate` to
    `warmup_target` over `warmup_steps` steps, then the same decay from `warmup_target`.

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: steps to decay over (> 0).
        alpha: the final rate, as a fraction of the decay's starting rate.
        warmup_target: the rate reached after the warmup (None: no warmup).
        warmup_steps: steps of warmup.

    Example:
        >>> CosineDecay(0.1, decay_steps=100)(50)
        0.05
    """

    def __init__(self, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0,
                 name: str = "CosineDecay", warmup_target: float | None = None,
                 warmup_steps: int = 0):
        _positive_steps("decay_steps", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.name = name
        self.warmup_target = warmup_target
        self.warmup_steps = warmup_steps

    def _decay(self, step: float, start_lr: float) -> float:
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))
        return start_lr * ((1 - self.alpha) * cosine + self.alpha)

    def __call__(self, step) -> float:
        step = float(step)
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            delta = self.warmup_target - self.initial_learning_rate
            return delta * (step / self.warmup_steps) + self.initial_learning_rate
        return self._decay(step - self.warmup_steps, self.warmup_target)

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (Loshchilov and Hutter, SGDR): each period decays as
    CosineDecay, then the rate restarts; period i lasts `first_decay_steps * t_mul^i` steps and
    starts from `initial_learning_rate * m_mul^i`.

    Args:
        initial_learning_rate: the rate at step 0.
        first_decay_steps: the first period's length (> 0).
        t_mul: each period's length, as a multiple of the previous one's.
        m_mul: each restart's rate, as a multiple of the previous one's.
        alpha: the rate at the end of a period, as a fraction of its starting rate.

    Example:
        >>> CosineDecayRestarts(0.1, first_decay_steps=10)(10)
        0.1
    """

    def __init__(self, initial_learning_rate: float, first_decay_steps: int, t_mul: float = 2.0,
                 m_mul: float = 1.0, alpha: float = 0.0, name: str = "SGDRDecay"):
        _positive_steps("first_decay_steps", first_decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.first_decay_steps = first_decay_steps
        self._t_mul = t_mul
        self._m_mul = m_mul
        self.alpha = alpha
        self.name = name

    def __call__(self, step) -> float:
        fraction = float(step) / self.first_decay_steps
        t_mul, m_mul = float(self._t_mul), float(self._m_mul)
        if t_mul == 1.0:
            i_restart = math.floor(fraction)
            fraction -= i_restart
        else:
            # periods so far: log(1 - fraction (1 - t_mul)) / log(t_mul), floored; nudged so
            # that a step exactly at a restart (where that is a whole number) counts it, as
            # Keras's float32 arithmetic does, rather than falling just short in float64
            x = math.log(1.0 - fraction * (1.0 - t_mul)) / math.log(t_mul)
            i_restart = math.floor(x + 1e-9 * max(1.0, abs(x)))
            sum_r = (1.0 - t_mul ** i_restart) / (1.0 - t_mul)
            fraction = (fraction - sum_r) / t_mul ** i_restart
        cosine = 0.5 * m_mul ** i_restart * (1.0 + math.cos(math.pi * fraction))
        return self.initial_learning_rate * ((1 - self.alpha) * cosine + self.alpha)

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate,
                "first_decay_steps": self.first_decay_steps, "t_mul": self._t_mul,
                "m_mul": self._m_mul, "alpha": self.alpha, "name": self.name}


_BY_NAME = {c.__name__: c for c in (ExponentialDecay, PiecewiseConstantDecay, PolynomialDecay,
                                    InverseTimeDecay, CosineDecay, CosineDecayRestarts)}


def serialize(schedule: LearningRateSchedule) -> dict:
    """The schedule as Keras 3 writes it in a config: module, class_name, config."""
    return {"module": "keras.optimizers.schedules", "class_name": type(schedule).__name__,
            "config": schedule.get_config(), "registered_name": None}


def deserialize(config: dict, custom_objects: dict | None = None) -> LearningRateSchedule:
    """The schedule `serialize` wrote (custom classes by name in custom_objects)."""
    known = {**_BY_NAME, **(custom_objects or {})}
    name = config.get("class_name") if isinstance(config, dict) else None
    if name not in known:
        raise ValueError(f"Unknown learning rate schedule {name!r}. Known: "
                         f"{', '.join(sorted(known))}; pass custom ones in custom_objects")
    return known[name].from_config(config.get("config", {}))
