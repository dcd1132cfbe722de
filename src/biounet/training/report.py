"""The end-of-training report: ``RUN_DIR/report/report.html`` via :func:`biounet.report.write_report`.

It shows the first validation image as input / ground truth / prediction / instances (from the
last validation, i.e. the final weights), the validation metrics per image and the best ones, the
timings, the training curves and the configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from biounet.data.readers import Sample
from biounet.data.targets import TargetConfig
from biounet.report import OverlayPanel, Report, write_report

if TYPE_CHECKING:  # pragma: no cover
    from biounet.training.trainer import Trainer
    from biounet.training.validation import ValidationResult


def overlay_panel(sample: Sample, result: ValidationResult, target: TargetConfig, step: int) -> OverlayPanel:
    """Input, ground truth, prediction (foreground probability or classes) and instances of one image."""
    probabilities = result.probabilities
    if target.kind == "instances":
        prediction = probabilities[target.interior_class] if target.style == "membrane" else \
            probabilities[target.foreground_classes].sum(axis=0)
        truth = sample.target.instances
        instances = result.prediction
    else:
        prediction = probabilities[1] if target.num_classes == 2 else probabilities.argmax(axis=0).astype(np.uint8)
        truth = sample.target.classes
        instances = None
    return OverlayPanel(
        name=f"{sample.name} (validation, step {step})",
        image=sample.image[0],
        ground_truth=truth,
        prediction=prediction,
        instances=instances,
    )


def write_training_report(trainer: Trainer, seconds: float) -> Path:
    """Write ``trainer.run_dir/report/report.html`` for a finished run; returns its path."""
    config = trainer.config
    result = trainer.last_validation
    panels, metrics = [], []
    if result is not None and trainer.val_samples and result.probabilities is not None:
        panels.append(overlay_panel(trainer.val_samples[0], result, config.data.target, trainer.step))
        metrics = [{"image": s.name, **row} for s, row in zip(trainer.val_samples, result.per_image)]
        metrics.append({"image": f"mean (step {trainer.step})", **result.metrics})
    if trainer.best:
        metrics.append({"image": f"best (step {trainer.best['step']})", **trainer.best["metrics"]})
    rates = [row["steps_per_s"] for row in trainer.history.rows if isinstance(row.get("steps_per_s"), (int, float))]
    validation_time = sum(row.get("validation_s", 0.0) for row in trainer.history.rows)
    timings: dict[str, float] = {"run (training + validation)": seconds, "validation (all)": validation_time}
    if rates:
        timings["seconds per step (median)"] = 1.0 / float(np.median(rates))
    notes = list(trainer.train_data.notes)
    notes.append(
        f"{trainer.step} steps; {len(trainer.train_data.samples)} training and {len(trainer.val_samples)} "
        f"validation images; tile {'x'.join(map(str, trainer.input_shape))} -> "
        f"{'x'.join(map(str, trainer.output_shape))}; {trainer.device.type} {trainer.precision}"
    )
    if trainer.best:
        notes.append(f"best {trainer.best['metric']} {trainer.best['value']:.4f} at step {trainer.best['step']} "
                     "(RUN_DIR/model.safetensors)")
    history: list[dict[str, Any]] = [{k: v for k, v in row.items() if k not in ("kind", "elapsed_s",
                                                                                 "steps_per_s", "validation_s")}
                                     for row in trainer.history.rows]
    report = Report(
        title=f"biounet training: {trainer.run_dir.name}",
        history=history,
        panels=panels,
        metrics=metrics,
        timings=timings,
        config=config.to_dict(),
        notes=notes,
    )
    return write_report(trainer.run_dir / "report", report)
