"""The mean over a set of images, with one threshold for the whole set; the table, JSON and CSV.

The ISBI 2012 protocol averages each metric over the images at every threshold and reports the best
threshold of that average: the threshold a user would have to fix in advance.  It can be worse than
the mean of the per-image bests, which would choose a different threshold for every image.
Training validation uses the same step (:func:`best_common_threshold`) to choose the model's threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from biounet.evaluation.scoring import ImageResult
from biounet.evaluation.tasks import TASK_SELECTOR
from biounet.metrics import names


@dataclass(frozen=True)
class CommonThreshold:
    """The best threshold of a metric averaged over images.

    Attributes:
        index: position of the chosen threshold in the sweep.
        value: the image-averaged metric there.
        curve: ``(T,)`` the metric averaged over the images at every threshold (NaN images left out).
    """

    index: int
    value: float
    curve: np.ndarray


def best_common_threshold(curves: Sequence[Sequence[float]], higher_is_better: bool) -> CommonThreshold:
    """One threshold for a set: ``curves`` is ``(N, T)``, a metric of N images at the same T thresholds.

    The curves are averaged over the images (NaN values, e.g. an image without objects, left out) and
    the best finite value of the average is chosen (the first on ties).
    """
    from biounet.metrics.sweep import best_index

    curve = np.nanmean(np.asarray(curves, dtype=float), axis=0)
    index = best_index(curve, higher_is_better)
    return CommonThreshold(index=index, value=float(curve[index]), curve=curve)


def summarise(results: list[ImageResult], task: str) -> dict[str, Any]:
    """The "mean" row over images.

    When every image was swept over the same thresholds this is the ISBI protocol
    (:func:`best_common_threshold` of each metric, or of the task's selector metric for all of them).
    The secondary numbers (split/merge, defect counts) are averaged at the same threshold as their metric.
    Otherwise it is the plain mean of the per-image values.  Unswept extras (the cells' Rand error) are
    plain means in both cases.
    """
    from biounet.metrics import METRICS

    mean: dict[str, Any] = {"image": "mean", "pred_kind": ""}
    metrics = list(dict.fromkeys(m for r in results for m in r.curves))
    extras = list(dict.fromkeys(k for r in results for k in r.extras))
    sweeps = {r.thresholds for r in results}
    if len(sweeps) == 1 and None not in sweeps:
        thresholds = results[0].thresholds
        selector = TASK_SELECTOR[task]
        for m in metrics:
            chooser = m if selector is None else selector
            index = best_common_threshold([r.curves[chooser] for r in results], METRICS[chooser].higher_is_better).index
            mean[m] = float(np.nanmean([r.curves[m] for r in results], axis=0)[index])
            mean[names.threshold_key(m)] = thresholds[index]
            for key in dict.fromkeys(k for r in results for k in (r.parts[m][index] if m in r.parts else {})):
                mean[key] = nanmean([r.parts[m][index].get(key) for r in results if m in r.parts])
        mean.update({key: nanmean([r.extras.get(key) for r in results]) for key in extras})
        return mean
    rows = [r.row() for r in results]
    keys = metrics + extras + list(dict.fromkeys(k for r in results for k in r.part_names))
    mean.update({key: nanmean([row.get(key) for row in rows]) for key in keys})
    return mean


def class_table(results: list[ImageResult]) -> list[dict[str, Any]]:
    """One row per class of semantic results: ``{"class", "name", "dice", "iou", "images"}``.

    ``dice`` / ``iou`` are the means over the images of ``dice_<c>`` / ``iou_<c>`` (images where the class is
    in neither map, NaN, left out; ``images`` counts the others); ``name`` is the class name given by a
    sidecar or ``--class-names``, else ``""``.  Empty when no result has per-class scores.
    """
    dice_prefix = f"{names.DICE}_"
    classes = sorted({int(m[len(dice_prefix):]) for r in results for m in r.curves
                      if m.startswith(dice_prefix) and m[len(dice_prefix):].isdigit()})
    table = []
    for c in classes:
        dice_key, iou_key = names.class_key(names.DICE, c), names.class_key(names.IOU, c)
        dice = [r.curves[dice_key][0] for r in results if dice_key in r.curves]
        iou = [r.curves[iou_key][0] for r in results if iou_key in r.curves]
        label = next((r.class_names[c] for r in results if c in r.class_names), "")
        counted = sum(1 for v in dice if not math.isnan(v))
        table.append({"class": c, "name": label, names.DICE: nanmean(dice), names.IOU: nanmean(iou), "images": counted})
    return table


def format_class_table(rows: list[dict[str, Any]]) -> str:
    """The per-class table as text: class, name, mean Dice, mean IoU, images with the class."""
    lines = [["class", "name", names.DICE, names.IOU, "images"]]
    lines += [[str(r["class"]), r["name"] or "-", _cell(r[names.DICE], names.DICE), _cell(r[names.IOU], names.IOU),
               str(r["images"])] for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(5)]
    text = ["  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(line, widths)))
            for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def nanmean(values: list[Any]) -> float:
    """Mean of the values that are numbers and not NaN (NaN if none)."""
    finite = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(finite) / len(finite) if finite else float("nan")


def format_table(rows: list[dict[str, Any]], metrics: list[str], extras: list[str]) -> str:
    """A plain-text table: image, each metric (with its threshold when swept), then the extras.

    Metric columns are headed by :func:`biounet.metrics.names.column_title`; rows are keyed by the
    canonical names.  A rule separates the header and the last row (the mean).
    """
    columns: list[tuple[str, str]] = [("image", "image")]
    for m in metrics:
        columns.append((names.column_title(m), m))
        if any(names.threshold_key(m) in row for row in rows):
            columns.append(("@t", names.threshold_key(m)))
    columns += [(key, key) for key in extras]
    table = [[title for title, _ in columns]] + [[_cell(row.get(key), key) for _, key in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    lines = [
        "  ".join(text.ljust(w) if i == 0 else text.rjust(w) for i, (text, w) in enumerate(zip(line, widths)))
        for line in table
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(len(lines) - 1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: Any, key: str) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if key.endswith("_threshold"):
            return f"{value:.2f}"
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def clean(value: Any) -> Any:
    """JSON-safe value: NaN -> None, NumPy scalars -> Python numbers."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """One line per row, columns the union of the rows' keys in first-seen order; NaN as an empty cell."""
    import csv
    import io

    from biounet.io.atomic import write_text_atomic

    keys = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if clean(row.get(k)) is None else clean(row.get(k))) for k in keys})
    write_text_atomic(path, buffer.getvalue())


def json_report(
    rows: list[dict[str, Any]],
    mean: dict[str, Any],
    *,
    task: str,
    pred: Path,
    gt: Path,
    thresholds: Sequence[float],
    unmatched_pred: Sequence[Path] = (),
    unmatched_gt: Sequence[Path] = (),
    per_class: Sequence[dict[str, Any]] = (),
    spacing: Sequence[float] | None = None,
) -> dict[str, Any]:
    """The ``biounet evaluate --json`` document: inputs, which mean was taken, rows, mean, skipped files, and
    for class maps ``per_class`` (:func:`class_table`: each class's name and mean Dice / IoU over the images);
    ``spacing``: the ``--spacing`` the cells were made with (``None``: each prediction's sidecar's, else none)."""
    report = {
        "task": task,
        "pred": str(pred),
        "gt": str(gt),
        "thresholds": list(thresholds),
        "mean_protocol": "best common threshold of the image-averaged metric"
        if any(k.endswith("_threshold") for k in mean)
        else "average over images",
        "images": [{k: clean(v) for k, v in row.items()} for row in rows],
        "mean": {k: clean(v) for k, v in mean.items()},
        "unmatched_predictions": [str(p) for p in unmatched_pred],
        "unmatched_ground_truth": [str(p) for p in unmatched_gt],
        "spacing": list(spacing) if spacing is not None else None,
    }
    if per_class:
        report["per_class"] = [{k: clean(v) for k, v in row.items()} for row in per_class]
    return report


__all__ = [
    "CommonThreshold",
    "best_common_threshold",
    "class_table",
    "clean",
    "format_class_table",
    "format_table",
    "json_report",
    "summarise",
    "write_csv",
]
