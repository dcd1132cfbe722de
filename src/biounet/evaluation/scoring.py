"""Every metric of one prediction/ground-truth pair, at every threshold of a probability map.

The values at all thresholds are kept (not only the best) because the mean over a set of images is
taken per threshold before one threshold is chosen for the whole set (:mod:`biounet.evaluation.summary`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from biounet.errors import DataError
from biounet.evaluation.inputs import (
    as_probability,
    check_no_negative_labels,
    class_probabilities_to_map,
    ground_truth_labels,
    read_plane_image,
    semantic_truth,
    sidecar_spacing,
    sidecar_target,
)
from biounet.evaluation.tasks import TASK_METRICS, TASK_SELECTOR, prediction_kind
from biounet.metrics import names

if TYPE_CHECKING:
    from biounet.pipeline import CellSettings


@dataclass
class ImageResult:
    """Metric values of one image at each threshold, and which threshold each metric reports.

    ``curves[m]`` holds metric ``m`` at every threshold (one value when nothing was swept),
    ``parts[m]`` the secondary numbers of ``m`` (split/merge scores, defect counts, ...) at every
    threshold, ``selection[m]`` the index reported in the image's row, ``extras`` metrics that were not
    swept (the cells of a membrane map, at their own settings): one value each; ``class_names`` the
    name of each class of a semantic map, when the model's sidecar or the user gave them.
    """

    name: str
    pred_kind: str
    thresholds: tuple[float, ...] | None
    curves: dict[str, tuple[float, ...]]
    parts: dict[str, list[dict[str, float]]]
    selection: dict[str, int]
    extras: dict[str, float] = field(default_factory=dict)
    class_names: dict[int, str] = field(default_factory=dict)

    @property
    def part_names(self) -> list[str]:
        return list(dict.fromkeys(k for per_threshold in self.parts.values() for k in per_threshold[0]))

    def row(self) -> dict[str, Any]:
        """``{"image", "pred_kind", metric, metric_threshold (swept only), parts...}`` at the selection."""
        row: dict[str, Any] = {"image": self.name, "pred_kind": self.pred_kind}
        for metric, values in self.curves.items():
            index = self.selection[metric]
            row[metric] = values[index]
            if self.thresholds is not None:
                row[names.threshold_key(metric)] = self.thresholds[index]
        row.update(self.extras)
        for metric, per_threshold in self.parts.items():
            row.update(per_threshold[self.selection[metric]])
        return row


def evaluate_pair(
    name: str,
    pred: np.ndarray,
    gt: np.ndarray,
    *,
    task: str,
    pred_kind: str,
    thresholds: tuple[float, ...],
    warping: bool,
    pred_path: Path,
    cells: CellSettings | None = None,
    spacing: Sequence[float] | None = None,
) -> ImageResult:
    """All metrics of one prediction/ground-truth pair of equal shape ``(*S)``.

    ``pred`` is read as ``pred_kind`` (a probability map is swept over ``thresholds``); ``gt`` holds
    integer labels (:func:`~biounet.evaluation.inputs.ground_truth_labels`).  ``warping=False`` skips
    the warping error, the slowest metric.  An isbi probability map also gets the adapted Rand error of
    its cells (:func:`cell_scores` with ``cells``, else the default settings, and ``spacing``) as an extra.
    """
    from biounet.metrics import METRICS, score_metrics, sweep_metrics
    from biounet.metrics.sweep import best_index

    if task == "semantic" and pred_kind == "labels":
        return semantic_classes(name, pred, gt)
    metrics = tuple(m for m in TASK_METRICS[task] if warping or m != names.WARPING_ERROR)
    if pred_kind == "probability":
        prob = as_probability(pred, pred_path)
        sweeps = sweep_metrics(prob, gt, metrics, thresholds)
        curves = {m: sweeps[m].values for m in metrics}
        details = {m: sweeps[m].details for m in metrics}
        used: tuple[float, ...] | None = thresholds
        extras = cell_scores(prob, gt, cells, spacing, pred_path) if task == "isbi" else {}
    else:
        components = pred if pred_kind == "labels" else None
        results = score_metrics(gt, pred != 0, metrics, components=components)
        curves = {m: (float(METRICS[m].value(results[m])),) for m in metrics}
        details = {m: (results[m],) for m in metrics}
        used, extras = None, {}
    selector = TASK_SELECTOR[task]
    if selector is None:
        selection = {m: best_index(curves[m], METRICS[m].higher_is_better) for m in metrics}
    else:
        index = best_index(curves[selector], METRICS[selector].higher_is_better)
        selection = dict.fromkeys(metrics, index)
    parts = {m: [metric_parts(m, d) for d in details[m]] for m in metrics}
    return ImageResult(name, pred_kind, used, curves, parts, selection, extras)


def cell_scores(
    prob: np.ndarray,
    gt: np.ndarray,
    settings: CellSettings | None,
    spacing: Sequence[float] | None = None,
    path: Path | str = "prediction",
) -> dict[str, float]:
    """``{cells_adapted_rand_error}`` of the cells of an interior probability ``(*S)`` against ``gt`` cells.

    The cells are :func:`~biounet.inference.cells.cells_from_membranes` (what ``biounet predict --output
    instances`` makes for a membrane model), at one setting, so not swept; the ground truth's label 0
    (membranes) is ignored, as for the thresholded segments.  A volume ``(Z, Y, X)`` gets 3D cells, with
    ``spacing`` (``(Z, Y, X)`` in any unit; ``None``: isotropic) so that thick sections count as thick; a 2D
    image uses the in-plane part of a spacing.
    """
    from biounet.inference.cells import cells_from_membranes
    from biounet.metrics import adapted_rand_error

    cells = cells_from_membranes(prob, settings, spacing=cells_spacing(spacing, prob.ndim, path))
    return {names.CELLS_ADAPTED_RAND_ERROR: float(adapted_rand_error(gt, cells).error)}


def cells_spacing(spacing: Sequence[float] | None, ndim: int, path: Path | str) -> tuple[float, ...] | None:
    """``spacing`` relative to the in-plane pixel for an ``ndim``-D map (see
    :func:`biounet.model.anisotropy.relative_spacing`), or a one-line :class:`DataError` naming ``path``."""
    if spacing is None:
        return None
    from biounet.model.anisotropy import relative_spacing  # the model package imports torch: only when needed

    try:
        return relative_spacing(spacing, ndim)
    except ValueError as error:
        raise DataError(f"{path}: {error}") from None


def metric_parts(metric: str, result: Any) -> dict[str, float]:
    """The secondary numbers of a metric worth a column: split/merge scores, defects, counts."""
    if metric == names.ADAPTED_RAND_ERROR:
        return {"rand_split": result.split, "rand_merge": result.merge}
    if metric == names.VARIATION_OF_INFORMATION:
        return {"vi_split": result.split, "vi_merge": result.merge}
    if metric == names.WARPING_ERROR:
        return {"merges": result.merges, "splits": result.splits, "defects": result.n_defects}
    if metric == names.F1:
        return {"precision": result.precision, "recall": result.recall, "n_gt": result.n_gt, "n_pred": result.n_pred}
    if metric == names.PANOPTIC_QUALITY:
        return {"sq": result.sq, "rq": result.rq}
    return {}


def semantic_classes(
    name: str,
    pred: np.ndarray,
    gt: np.ndarray,
    classes: Sequence[int] | None = None,
    class_names: Sequence[str] = (),
) -> ImageResult:
    """Class maps ``(*S)`` (2D or 3D): pixel error, and ``dice_<c>`` / ``iou_<c>`` of every class.

    ``classes`` are the model's classes (all of them get a column, NaN where a class is in neither map);
    by default every class found in either map.  ``class_names[c]`` names class ``c`` in the tables.
    """
    from biounet.metrics import dice_per_class, iou_per_class

    if classes is None:
        classes = sorted(set(np.unique(gt).tolist()) | set(np.unique(pred).tolist()))
    curves: dict[str, tuple[float, ...]] = {names.PIXEL_ERROR: (float(np.mean(gt != pred)),)}  # 1 - accuracy
    dice, iou = dice_per_class(gt, pred, classes), iou_per_class(gt, pred, classes)
    curves.update({names.class_key(names.DICE, c): (dice[c],) for c in classes})
    curves.update({names.class_key(names.IOU, c): (iou[c],) for c in classes})
    labelled = {int(c): class_names[c] for c in classes if 0 <= c < len(class_names)}
    return ImageResult(name, "labels", None, curves, {}, dict.fromkeys(curves, 0), class_names=labelled)


def score_semantic(
    name: str,
    pred: np.ndarray,
    gt: np.ndarray,
    paths: tuple[Path, Path],
    *,
    pred_kind: str,
    thresholds: tuple[float, ...],
    num_classes: int | None,
    class_names: Sequence[str] = (),
) -> ImageResult:
    """A semantic pair: a foreground probability swept, else classes per class (Dice and IoU of each).

    The model's classes come from its sidecar (names, mask values of the classes), else ``class_names``,
    else ``num_classes`` (the K of a ``(K, *S)`` probability output).  With more than two classes the maps
    are scored as classes ``0..K-1`` (ground truth mask values mapped to classes as the model read them);
    with two or unknown, a binary mask such as ``{0, 255}`` is classes 0/1 as before.
    """
    pred_path, gt_path = paths
    target = sidecar_target(pred_path)
    target = target if target is not None and target.kind == "semantic" else None
    names_ = list(class_names or (target.class_names if target is not None else []))
    values = target.classes if target is not None else None
    count = len(names_) or (len(values) if values else None) or num_classes
    kind = prediction_kind(pred, "semantic", pred_kind, pred_path)
    if kind == "probability":
        gt_labels = ground_truth_labels(gt, "semantic", gt_path)
        return evaluate_pair(name, pred, gt_labels, task="semantic", pred_kind=kind, thresholds=thresholds,
                             warping=False, pred_path=pred_path)
    if count is not None and count > 2:
        check_no_negative_labels(pred, pred_path, "prediction")
        if pred.size and int(pred.max()) >= count:
            raise DataError(f"{pred_path}: class {int(pred.max())} predicted, but there are {count} classes")
        gt_classes = semantic_truth(gt, gt_path, values, count)
        return semantic_classes(name, pred.astype(np.int32), gt_classes, range(count), names_)
    if kind == "labels":
        check_no_negative_labels(pred, pred_path, "prediction")
    else:
        pred = (pred != 0).astype(np.int32)
    gt_labels = ground_truth_labels(gt, "semantic", gt_path)
    return semantic_classes(name, pred, gt_labels, range(count) if count else None, names_)


def score_files(
    name: str,
    pred_path: Path,
    gt_path: Path,
    *,
    task: str,
    pred_kind: str = "auto",
    thresholds: tuple[float, ...],
    warping: bool = True,
    class_names: Sequence[str] = (),
    spacing: Sequence[float] | None = None,
) -> ImageResult:
    """Read a prediction and its ground truth, decide how to read the prediction, and score the pair.

    ``pred_kind`` is ``--pred-kind`` (see :func:`~biounet.evaluation.tasks.prediction_kind`); a binary
    prediction is scored as a mask (isbi, instances) or as classes 0/1 (semantic).  The cells of an isbi
    probability map use the settings of the model in the prediction's sidecar, else the defaults, and
    ``spacing`` (``--spacing``), else the spacing the sidecar records, else none (isotropic).  Semantic
    pairs go to :func:`score_semantic` (``class_names`` name the classes when no sidecar does).
    """
    pred, gt = read_plane_image(pred_path), read_plane_image(gt_path)
    stacked = pred.dtype.kind == "f" and pred.ndim == gt.ndim + 1 and pred.shape[1:] == gt.shape
    num_classes = int(pred.shape[0]) if stacked else None
    pred = class_probabilities_to_map(pred, gt, task, pred_path)
    if pred.shape != gt.shape:
        raise DataError(f"{pred_path} has shape {pred.shape} but {gt_path} has shape {gt.shape}")
    if task == "semantic":
        return score_semantic(name, pred, gt, (pred_path, gt_path), pred_kind=pred_kind, thresholds=thresholds,
                              num_classes=num_classes, class_names=class_names)
    kind = prediction_kind(pred, task, pred_kind, pred_path)
    gt_labels = ground_truth_labels(gt, task, gt_path)
    if kind == "labels":
        check_no_negative_labels(pred, pred_path, "prediction")
    if kind == "binary":
        pred = pred != 0
    target = sidecar_target(pred_path) if task == "isbi" and kind == "probability" else None
    cells = target.cell_settings() if target is not None else None
    if task == "isbi" and kind == "probability" and spacing is None:
        recorded = sidecar_spacing(pred_path)  # a 2-value one of a stack predicted section by section: none in z
        spacing = recorded if recorded is not None and len(recorded) >= pred.ndim else None
    return evaluate_pair(
        name, pred, gt_labels, task=task, pred_kind=kind, thresholds=thresholds, warping=warping,
        pred_path=pred_path, cells=cells, spacing=spacing,
    )  # fmt: skip


__all__ = [
    "ImageResult",
    "cell_scores",
    "cells_spacing",
    "evaluate_pair",
    "metric_parts",
    "score_files",
    "score_semantic",
    "semantic_classes",
]
