"""When a run ends and how fast it learns meanwhile: the learning-rate schedule and the run's clock.

A run ends after ``steps`` (or ``epochs``) or when its time budget (``max_minutes``) is spent, whichever
comes first. The schedule's progress ``t`` in [0, 1] is the larger of the two fractions done, so under a
budget the learning rate decays with the clock and reaches its end value when the time is up, whatever
the machine's speed (at the price of runs that differ with the machine's load).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from biounet.training.config import TrainConfig


def lr_factor(config: TrainConfig, step: int, progress: float, total_steps: int | None = None) -> float:
    """Multiplier of the peak learning rate at ``step`` (warm-up) and ``progress`` in [0, 1] (decay).

    The warm-up lasts ``optim.warmup_steps``, at most a fifth of ``total_steps`` (short runs).
    """
    optim = config.optim
    warmup = optim.warmup_steps if total_steps is None else min(optim.warmup_steps, total_steps // 5)
    warm = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    t = min(max(progress, 0.0), 1.0)
    low = optim.min_lr_ratio
    if optim.schedule == "cosine":
        decay = low + (1.0 - low) * 0.5 * (1.0 + math.cos(math.pi * t))
    elif optim.schedule == "poly":
        decay = low + (1.0 - low) * (1.0 - t) ** optim.poly_power
    else:
        decay = 1.0
    return warm * decay


def progress_fraction(step: int, total_steps: int | None, elapsed_s: float, budget_s: float | None) -> float:
    """The schedule's ``t``: the larger of the steps done and the budget spent (see the module docstring)."""
    fractions = [step / total_steps] if total_steps else []
    if budget_s is not None:
        fractions.append(elapsed_s / budget_s)
    return max(fractions)


@dataclass
class RunClock:
    """The wall-clock side of a run, all in seconds of ``time.perf_counter``.

    Attributes:
        budget_s: the time budget (``max_minutes * 60``), ``None`` for none.
        elapsed_before: time spent by the run before it was resumed (from its state).
        started: when this process started the training loop.
        last_checkpoint: when the last checkpoint was written (``checkpoint_minutes``).
        plotted_at: when the training curve was last drawn.
        step_s: how long the last step took (to stop in time for one more).
        interval_start, interval_steps: start and steps of the interval the logged rate is measured over
            (restarted after validations and checkpoints, so the rate counts training only).
    """

    budget_s: float | None = None
    elapsed_before: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    last_checkpoint: float = field(default_factory=time.perf_counter)
    plotted_at: float = field(default_factory=time.perf_counter)
    step_s: float = 0.0
    interval_start: float = field(default_factory=time.perf_counter)
    interval_steps: int = 0

    @classmethod
    def for_config(cls, config: TrainConfig) -> RunClock:
        return cls(budget_s=config.max_minutes * 60.0 if config.max_minutes else None)

    def start(self) -> None:
        """The training loop begins now."""
        now = time.perf_counter()
        self.started = self.last_checkpoint = self.plotted_at = self.interval_start = now
        self.interval_steps = 0

    def elapsed(self) -> float:
        """Seconds of the whole run so far, earlier processes of a resumed run included."""
        return self.elapsed_before + time.perf_counter() - self.started

    def out_of_time(self, elapsed_s: float, reserve_s: float) -> bool:
        """True when fewer than ``reserve_s`` seconds of the budget are left (never without a budget)."""
        return self.budget_s is not None and elapsed_s + reserve_s >= self.budget_s

    def left(self, elapsed_s: float) -> float | None:
        """Seconds of the budget left, ``None`` without a budget."""
        return None if self.budget_s is None else self.budget_s - elapsed_s

    def rate(self) -> float:
        """Steps per second over the current interval; restarts the interval."""
        now = time.perf_counter()
        rate = self.interval_steps / max(now - self.interval_start, 1e-9)
        self.interval_start, self.interval_steps = now, 0
        return rate

    def restart_interval(self) -> None:
        """Leave the time just spent (validation, checkpoint) out of the next rate."""
        self.interval_start = time.perf_counter()


__all__ = ["RunClock", "lr_factor", "progress_fraction"]
