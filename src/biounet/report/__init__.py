"""A self-contained HTML report of a training or evaluation run.

:func:`write_report` writes ``out_dir/report.html``, one file that opens anywhere (every image is embedded
as a base64 PNG data URI, the CSS is inline, nothing is fetched from the network), and the same figures
as ``out_dir/figures/*.png`` for papers and slides.  The page shows the timings, the metrics table, the
training curves, one overlay figure per image (input | ground truth | prediction | instances), the
worst validation images with their object errors drawn (:class:`ErrorPanel`, :mod:`biounet.report.errors`)
and the configuration as JSON.

Example::

    report = Report(
        title="U-Net on ISBI 2012",
        history=[{"step": 100, "train_loss": 0.41, "val_loss": 0.45, "val_adapted_rand_error": 0.08, "lr": 1e-3}],
        panels=[OverlayPanel("slice 18", image, ground_truth=labels, prediction=probability, instances=cells)],
        metrics=[{"image": "18", "adapted_rand_error": 0.081}, {"image": "mean", "adapted_rand_error": 0.081}],
        timings={"training": 812.0, "inference": 3.2},
        config={"epochs": 50},
    )
    write_report(Path("runs/isbi/report"), report)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ErrorPanel", "OverlayPanel", "Report", "write_report"]


@dataclass
class OverlayPanel:
    """One image to show with its labels.  All arrays are ``(Y, X)`` (a ``(Z, Y, X)`` stack shows its
    middle slice) and share that shape.

    Attributes:
        name: caption, e.g. the file name.
        image: the input, any dtype (shown with a 1-99.8 percentile stretch); ``(Y, X, 3)`` is RGB.
        ground_truth: label image (instance ids, or semantic classes such as ISBI's 0/255); 0 is not
            coloured.
        prediction: a foreground/class probability (float, 0..1, shown as a heat map with its 0.5
            contour) or semantic class labels (integer, 0 = background).
        instances: separated objects, one id per object (0 = background).
    """

    name: str
    image: np.ndarray
    ground_truth: np.ndarray | None = None
    prediction: np.ndarray | None = None
    instances: np.ndarray | None = None


@dataclass
class ErrorPanel:
    """One image with its object errors to draw: which object ids are missed, false, merged, split.

    Arrays are ``(Y, X)`` (a ``(Z, Y, X)`` stack shows its middle slice) of one shape; the ids are label
    values of ``ground_truth`` (missed, split, merged_gt) or of ``prediction`` (false, merged, split_pred),
    e.g. from :func:`biounet.metrics.errors.instance_errors`.  Objects in no list are drawn as matched.

    Attributes:
        name: caption (e.g. the image, its score and its error counts).
        image: the input, any dtype.
        ground_truth, prediction: instance label maps (0 = background).
        missed: true objects not found; false: predicted objects with no true one.
        merged: predicted objects over two or more true ones (merged_gt: those true ones).
        split: true objects cut into two or more predicted ones (split_pred: those pieces).
    """

    name: str
    image: np.ndarray
    ground_truth: np.ndarray
    prediction: np.ndarray
    missed: list[int] = field(default_factory=list)
    false: list[int] = field(default_factory=list)
    merged: list[int] = field(default_factory=list)
    split: list[int] = field(default_factory=list)
    merged_gt: list[int] = field(default_factory=list)
    split_pred: list[int] = field(default_factory=list)


@dataclass
class Report:
    """Everything the report shows.

    Attributes:
        title: page title.
        history: training log rows, e.g. ``{"step": 200, "epoch": 1.5, "train_loss": 0.3, "val_loss": 0.4,
            "val_dice": 0.85, "lr": 1e-3, "seconds": 12.5}``; ``None`` values are skipped.
        panels: the overlay figures, one per image.
        metrics: table rows (e.g. one per image plus a ``mean`` row); columns are the union of the keys.
        timings: named durations in seconds (e.g. ``{"training": 812.0, "inference": 3.2}``).
        config: the run configuration, shown as JSON.
        notes: free-text remarks shown under the title.
        runs: several trainings in one report (e.g. the demo's two styles): name -> history rows, one
            curves figure each, besides ``history``.
        error_panels: the worst validation images with their object errors drawn (a legend with them).
    """

    title: str
    history: list[dict[str, Any]] = field(default_factory=list)
    panels: list[OverlayPanel] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    error_panels: list[ErrorPanel] = field(default_factory=list)


def write_report(out_dir: str | Path, report: Report) -> Path:
    """Write ``out_dir/report.html`` (self-contained) and ``out_dir/figures/*.png``; return the HTML path.

    Every file is written atomically, so an interrupted run never leaves a half-written report.
    """
    from biounet.io.atomic import write_bytes_atomic, write_text_atomic
    from biounet.report.errors import error_png
    from biounet.report.figures import curves_png, overlay_png
    from biounet.report.html import Figure, render_html

    out = Path(out_dir)
    figures: list[Figure] = []
    for run_name, history in [("", report.history), *report.runs.items()]:
        curves = curves_png(history)
        if curves is None:
            continue
        file_name = f"curves_{_slug(run_name)}.png" if run_name else "curves.png"
        caption = f"Training curves: {run_name}" if run_name else "Training curves"
        figures.append(Figure("training", file_name, curves, _curves_alt(history), caption))
    for index, panel in enumerate(report.panels):
        name = f"panel_{index:02d}_{_slug(panel.name)}.png"
        alt = f"{panel.name}: " + " | ".join(_panel_columns(panel))
        figures.append(Figure("panels", name, overlay_png(panel), alt, panel.name))
    for index, panel in enumerate(report.error_panels):
        name = f"errors_{index:02d}_{_slug(panel.name)}.png"
        alt = f"{panel.name}: ground truth and prediction with missed, false, merged and split objects coloured"
        figures.append(Figure("errors", name, error_png(panel), alt, panel.name))
    for figure in figures:
        write_bytes_atomic(out / "figures" / figure.file_name, figure.png)
    return write_text_atomic(out / "report.html", render_html(report, figures))


def _panel_columns(panel: OverlayPanel) -> list[str]:
    names = ["input"]
    for label, array in (("ground truth", panel.ground_truth), ("prediction", panel.prediction)):
        if array is not None:
            names.append(label)
    if panel.instances is not None:
        names.append("separated instances")
    return names


def _curves_alt(history: list[dict[str, Any]]) -> str:
    keys = sorted({k for row in history for k, v in row.items() if v is not None and k not in ("step", "epoch")})
    return "Training curves vs step: " + ", ".join(keys)


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:40] or "image"
