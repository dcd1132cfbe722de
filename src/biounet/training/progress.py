"""The training progress bar: against whichever end of the run comes first, steps or the time budget.

A run with ``--max-minutes 20`` and a large step count ends by time; a bar over the steps would then
stand near 0 % with an ETA of hours. So the bar runs over seconds when the budget ends the run first
(rate shown in steps/s, ETA = the time left) and over steps otherwise. Which end comes first is
re-estimated from the measured seconds per step at every logged interval, and the bar switches if it
changes.
"""

from __future__ import annotations

import sys
from typing import Any, Literal

End = Literal["steps", "time"]


def choose_end(
    total_steps: int | None, step: int, budget_s: float | None, elapsed_s: float, step_s: float | None
) -> End:
    """Which end comes first: ``"time"`` or ``"steps"``.

    Args:
        total_steps: the steps the run makes at most (``None``: until the budget is spent).
        step: steps done.
        budget_s: the time budget in seconds (``None``: none).
        elapsed_s: seconds of the budget spent.
        step_s: measured seconds per step (``None`` before the first measurement: the budget is then
            assumed to end the run, as it usually does when one is given).
    """
    if budget_s is None:
        return "steps"
    if total_steps is None or step_s is None:
        return "time"
    return "steps" if elapsed_s + (total_steps - step) * step_s < budget_s else "time"


class TrainingBar:
    """A tqdm bar on stderr over steps or seconds (see the module docstring); no-op when disabled."""

    def __init__(self, total_steps: int | None, budget_s: float | None, step: int, elapsed_s: float,
                 enabled: bool) -> None:
        self.total_steps = total_steps
        self.budget_s = budget_s
        self.enabled = enabled
        self.end: End = choose_end(total_steps, step, budget_s, elapsed_s, None)
        self.bar = self._open(step, elapsed_s)

    def _open(self, step: int, elapsed_s: float) -> Any:
        from tqdm import tqdm

        options: dict[str, Any] = {"desc": "training", "file": sys.stderr, "disable": not self.enabled,
                                   "dynamic_ncols": True, "mininterval": 1.0}
        if self.end == "time":
            return tqdm(total=round(self.budget_s or 0.0), initial=round(elapsed_s), unit="s",
                        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]",
                        **options)
        return tqdm(total=self.total_steps, initial=step, unit="step", **options)

    def update(self, step: int, elapsed_s: float) -> None:
        """Move to ``step`` steps done and ``elapsed_s`` seconds spent."""
        target = round(min(elapsed_s, self.budget_s or 0.0)) if self.end == "time" else step
        if target > self.bar.n:
            self.bar.update(target - self.bar.n)

    def interval(self, step: int, elapsed_s: float, steps_per_s: float, postfix: dict[str, str]) -> None:
        """At a logged interval: re-choose the end from the measured rate and show ``postfix``."""
        step_s = 1.0 / steps_per_s if steps_per_s > 0 else None
        end = choose_end(self.total_steps, step, self.budget_s, elapsed_s, step_s)
        if end != self.end:
            self.bar.close()
            self.end = end
            self.bar = self._open(step, elapsed_s)
        if self.end == "time":
            postfix = {"step": str(step), "steps/s": f"{steps_per_s:.2f}", **postfix}
        self.bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        self.bar.close()


__all__ = ["TrainingBar", "choose_end"]
