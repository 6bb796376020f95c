"""Learning-rate schedules as pure functions of the optimisation step.

The rate at step ``t`` (0-based, counted over the whole run) depends only on ``t`` and the
schedule's settings, so ``--resume`` needs nothing but the step count, and a schedule can be
plotted or tested without an optimiser. An optional linear warm-up ramps from
``warmup_factor·lr`` to the scheduled value over the first ``warmup`` steps.

* ``poly``: ``lr·(1 − t/T)^power`` (DeepLab's; power 0.9);
* ``cosine``: ``min_lr + (lr − min_lr)·(1 + cos(π·t/T))/2``;
* ``step``: ``lr·gamma^⌊t/step_size⌋`` (``step_size`` in steps);
* ``constant``: ``lr``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from segtools.errors import UsageError

SCHEDULES = ("poly", "cosine", "step", "constant")


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule over ``total_steps`` optimisation steps."""

    name: str
    lr: float
    total_steps: int
    power: float = 0.9
    min_lr: float = 0.0
    step_size: int = 1
    gamma: float = 0.1
    warmup: int = 0
    warmup_factor: float = 0.001

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise UsageError(f"schedule {self.name!r}: choose from {', '.join(SCHEDULES)}")
        if not self.lr > 0:
            raise UsageError(f"lr {self.lr}: the learning rate must be positive")
        if self.total_steps < 1:
            raise UsageError("the run has no optimisation steps (check the number of epochs and the data set size)")
        if self.step_size < 1:
            raise UsageError("lr_step must be at least 1")
        if self.warmup < 0:
            raise UsageError("warmup must be >= 0")

    def lr_at(self, step: int) -> float:
        """The learning rate for optimisation step ``step`` (0-based)."""
        t = min(max(step, 0), self.total_steps)
        if self.name == "poly":
            rate = self.lr * (1.0 - t / self.total_steps) ** self.power
        elif self.name == "cosine":
            rate = self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t / self.total_steps))
        elif self.name == "step":
            rate = self.lr * self.gamma ** (t // self.step_size)
        else:
            rate = self.lr
        if self.warmup and step < self.warmup:
            alpha = step / self.warmup
            rate *= self.warmup_factor * (1.0 - alpha) + alpha
        return rate

    def to_dict(self) -> dict:
        return asdict(self)


def set_lr(optimizer, rate: float) -> None:
    """Set every parameter group's learning rate (groups keep their relative ``lr_scale``)."""
    for group in optimizer.param_groups:
        group["lr"] = rate * group.get("lr_scale", 1.0)
