"""What an exact resume saves and puts back: the parts' tensors and the random generators.

The run's position (step, history, best validation, running loss) travels in the state's ``extra``
dict, which the trainer fills and reads; the tensors of the parts and the generators' states are the
same for every run and live here.  The tiles of step ``k`` come from ``numpy.random.default_rng([seed,
k])``, so numpy needs no saved state; torch's and Python's generators (dropout, augmentation choices)
are saved and restored.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biounet.training.config import ConfigError
from biounet.training.setup import RunSetup
from biounet.training.state import TrainingState


def capture_state(parts: RunSetup, *, step: int, seed: int, extra: dict[str, Any]) -> TrainingState:
    """The state of ``parts`` after ``step`` steps, with the trainer's ``extra`` (its position, the config)."""
    python_state = random.getstate()
    if parts.scaler.is_enabled():
        extra = {**extra, "scaler": parts.scaler.state_dict()}
    return TrainingState(
        step=step,
        model=parts.model.state_dict(),
        optimizer=parts.optimizer.state_dict(),
        rng={
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": [python_state[0], list(python_state[1]), python_state[2]],
            "numpy_next_batch": np.random.default_rng([seed, step]).bit_generator.state,
        },
        extra=extra,
        ema=parts.average.state_dict() if parts.average is not None else None,
    )


def restore_state(parts: RunSetup, state: TrainingState, run_dir: Path) -> None:
    """Load the tensors and generator states of ``state`` into ``parts`` (the position is the trainer's)."""
    parts.model.load_state_dict(state.model)
    parts.optimizer.load_state_dict(state.optimizer)
    if parts.average is not None:
        if state.ema is None:
            raise ConfigError(f"{run_dir}: the saved run kept no weight average; resume it without optim.ema")
        parts.average.load_state_dict(state.ema)
    torch.set_rng_state(state.rng["torch"])
    if state.rng.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state.rng["cuda"])
    python = state.rng.get("python")
    if python:
        random.setstate((python[0], tuple(python[1]), python[2]))
    if state.extra.get("scaler"):
        parts.scaler.load_state_dict(state.extra["scaler"])
