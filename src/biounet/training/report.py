"""The end-of-training report: ``RUN_DIR/report/report.html`` via :func:`biounet.report.write_report`.

It reads a :class:`~biounet.training.summary.TrainingSummary` that the trainer builds, not the trainer.

It shows the first validation image as input / ground truth / prediction / instances (from the
last validation, i.e. the final weights), the validation metrics per image and the best ones, the
timings, the training curves and the configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from biounet.data.readers import Sample
from biounet.data.targets import TargetConfig
from biounet.report import OverlayPanel, Report, write_report
from biounet.training.summary import TrainingSummary
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


def write_training_report(summary: TrainingSummary) -> Path:
    """Write ``summary.run_dir/report/report.html`` for a finished run; returns its path."""
    result, best, rows = summary.last_validation, summary.best, summary.history
    panels, metrics = [], []
    if result is not None and summary.val_samples and result.probabilities is not None:
        panels.append(overlay_panel(summary.val_samples[0], result, summary.target, summary.steps))
        metrics = [{"image": s.name, **row} for s, row in zip(summary.val_samples, result.per_image)]
        metrics.append({"image": f"mean (step {summary.steps})", **result.metrics})
    if best:
        metrics.append({"image": f"best (step {best['step']})", **best["metrics"]})
    rates = [row["steps_per_s"] for row in rows if isinstance(row.get("steps_per_s"), (int, float))]
    validation_time = sum(row.get("validation_s", 0.0) for row in rows)
    timings: dict[str, float] = {"run (training + validation)": summary.seconds, "validation (all)": validation_time}
    if rates:
        timings["seconds per step (median)"] = 1.0 / float(np.median(rates))
    notes = list(summary.data_notes)
    notes.append(
        f"{summary.steps} steps; {summary.train_images} training and {len(summary.val_samples)} "
        f"validation images; tile {'x'.join(map(str, summary.input_shape))} -> "
        f"{'x'.join(map(str, summary.output_shape))}; {summary.device} {summary.precision}"
    )
    if best:
        notes.append(f"best {best['metric']} {best['value']:.4f} at step {best['step']} (RUN_DIR/model.safetensors)")
    history: list[dict[str, Any]] = [{k: v for k, v in row.items() if k not in ("kind", "elapsed_s",
                                                                                 "steps_per_s", "validation_s")}
                                     for row in rows]
    report = Report(
        title=f"biounet training: {summary.run_dir.name}",
        history=history,
        panels=panels,
        metrics=metrics,
        timings=timings,
        config=summary.config,
        notes=notes,
        error_panels=list(result.worst) if result is not None else [],
    )
    return write_report(summary.run_dir / "report", report)
