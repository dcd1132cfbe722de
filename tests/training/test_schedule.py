"""The learning-rate schedule and the run's clock."""

from __future__ import annotations

import pytest
from test_trainer import tiny_config

from biounet.training.schedule import RunClock, lr_factor, progress_fraction


def test_lr_schedules():
    cosine = tiny_config(optim={"schedule": "cosine", "min_lr_ratio": 0.1})
    assert lr_factor(cosine, 0, 0.0) == pytest.approx(1.0)
    assert lr_factor(cosine, 50, 0.5) == pytest.approx(0.55)
    assert lr_factor(cosine, 100, 1.0) == pytest.approx(0.1)
    poly = tiny_config(optim={"schedule": "poly", "min_lr_ratio": 0.0, "poly_power": 1.0})
    assert lr_factor(poly, 30, 0.3) == pytest.approx(0.7)
    constant = tiny_config(optim={"schedule": "constant", "warmup_steps": 10})
    assert lr_factor(constant, 4, 0.9) == pytest.approx(0.5)  # warm-up: (step + 1) / 10
    assert lr_factor(constant, 4, 0.9, total_steps=25) == pytest.approx(1.0)  # warm-up capped at total / 5


def test_progress_is_the_larger_fraction_and_the_clock_keeps_a_reserve():
    assert progress_fraction(50, 100, 30.0, 120.0) == pytest.approx(0.5)
    assert progress_fraction(10, 100, 90.0, 120.0) == pytest.approx(0.75)
    assert progress_fraction(10, None, 60.0, 120.0) == pytest.approx(0.5)
    clock = RunClock(budget_s=100.0)
    assert clock.out_of_time(95.0, 5.0) and not clock.out_of_time(90.0, 5.0)
    assert clock.left(30.0) == 70.0 and RunClock().left(30.0) is None and not RunClock().out_of_time(1e9, 0.0)
