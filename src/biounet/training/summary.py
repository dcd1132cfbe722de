"""What a finished run hands to its report: :class:`TrainingSummary`, built by the trainer.

The report reads only this, so :mod:`biounet.training.report` does not depend on the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biounet.data.readers import Sample
from biounet.data.targets import TargetConfig
from biounet.training.validation import ValidationResult


@dataclass
class TrainingSummary:
    """One finished run, as the report shows it.

    Attributes:
        run_dir: the run directory (the report goes to ``run_dir/report``).
        config: the full configuration (``TrainConfig.to_dict()``).
        target: how masks became classes (what the overlays show).
        steps: optimiser steps made.
        seconds: wall-clock seconds of the run (training and validation, earlier processes included).
        history: the history rows (:class:`biounet.training.history.History`).
        best: the best validation (``step``, ``value``, ``metric``, ``metrics``), ``None`` without one.
        val_samples: the validation images (the first is shown as an overlay).
        last_validation: the last validation's result (the final weights), ``None`` without one.
        data_notes: what reading the data reported (mask conventions ...).
        train_images: number of training images.
        input_shape, output_shape: the tile in and out, pixels per spatial axis.
        device, precision: where and how it trained (``"cpu"``, ``"fp32"`` ...).
    """

    run_dir: Path
    config: dict[str, Any]
    target: TargetConfig
    steps: int
    seconds: float
    history: list[dict[str, Any]]
    best: dict[str, Any] | None = None
    val_samples: list[Sample] = field(default_factory=list)
    last_validation: ValidationResult | None = None
    data_notes: list[str] = field(default_factory=list)
    train_images: int = 0
    input_shape: tuple[int, ...] = ()
    output_shape: tuple[int, ...] = ()
    device: str = "cpu"
    precision: str = "fp32"


__all__ = ["TrainingSummary"]
