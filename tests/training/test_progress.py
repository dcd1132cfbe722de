"""The progress bar runs against whichever end of the run comes first."""

from __future__ import annotations

from biounet.training.progress import TrainingBar, choose_end


def test_the_end_that_comes_first():
    assert choose_end(3000, 0, None, 0.0, None) == "steps"  # no budget
    assert choose_end(None, 0, 1200.0, 0.0, None) == "time"  # no step count
    assert choose_end(100_000, 0, 1200.0, 0.0, None) == "time"  # no rate yet: the budget is assumed to end it
    assert choose_end(100_000, 100, 1200.0, 110.0, 1.1) == "time"  # 20 minutes are about 1,090 steps
    assert choose_end(500, 100, 1200.0, 110.0, 1.1) == "steps"  # 400 more steps take 440 s of the 1,090 left


def test_the_bar_switches_to_steps_when_they_end_the_run_first():
    bar = TrainingBar(500, 1200.0, 0, 0.0, enabled=True)
    assert bar.end == "time" and bar.bar.total == 1200 and bar.bar.unit == "s"
    bar.update(10, 11.0)
    assert bar.bar.n == 11
    bar.interval(10, 11.0, 1 / 1.1, {"loss": "0.1"})
    assert bar.end == "steps" and bar.bar.total == 500 and bar.bar.n == 10
    bar.close()
