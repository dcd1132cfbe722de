"""Pictures of the object errors of one image: missed, false, merged and split objects, with a legend.

Two views side by side over the input: the **ground truth** (matched true objects outlined in green, missed
ones filled red, split ones filled orange, true objects swallowed by a merger outlined blue) and the
**prediction** (matched predicted objects outlined in green, false ones filled magenta, mergers filled blue,
the pieces of a split outlined orange).  Which object is which kind is decided by the caller
(:mod:`biounet.metrics.errors` in training validation); this module only draws ids it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from biounet.report.figures import _as_2d, _figure, _grey_rgb, _png, to_display

if TYPE_CHECKING:
    from biounet.report import ErrorPanel

#: Colour of each error kind (RGB 0..1), and of matched objects' outlines.
ERROR_COLOURS: dict[str, tuple[float, float, float]] = {
    "missed": (0.90, 0.10, 0.10),  # red: a true object not found
    "false": (0.95, 0.20, 0.85),  # magenta: a predicted object where there is none
    "merged": (0.15, 0.45, 1.00),  # blue: one predicted object over two or more true ones
    "split": (1.00, 0.60, 0.05),  # orange: one true object cut into two or more predicted ones
    "matched": (0.20, 0.85, 0.30),  # green outline: matched at IoU > 0.5
}

LEGEND: dict[str, str] = {
    "missed": "missed (false negative)",
    "false": "false (false positive)",
    "merged": "merged (one predicted over 2+ true)",
    "split": "split (one true cut into 2+ predicted)",
    "matched": "matched (outline)",
}


def _paint(rgb: np.ndarray, labels: np.ndarray, ids: Sequence[int], colour: tuple[float, float, float], *,
           fill: bool) -> None:
    """Fill (alpha 0.55) and outline, or only outline, the objects ``ids`` of ``labels`` in ``rgb`` in place."""
    from skimage.segmentation import find_boundaries

    if len(ids) == 0:
        return
    mask = np.isin(labels, np.asarray(ids, dtype=labels.dtype))
    if fill:
        rgb[mask] = 0.45 * rgb[mask] + 0.55 * np.asarray(colour, np.float32)
    rgb[find_boundaries(np.where(mask, labels, 0), mode="inner")] = colour


def error_views(panel: ErrorPanel) -> list[tuple[str, np.ndarray]]:
    """The ``(title, (Y, X, 3) RGB)`` views of ``panel``: ground truth and prediction with errors drawn."""
    image = to_display(panel.image)
    gt, pred = _as_2d(panel.ground_truth).astype(np.int64), _as_2d(panel.prediction).astype(np.int64)
    flagged_gt = set(panel.missed) | set(panel.split) | set(panel.merged_gt)
    flagged_pred = set(panel.false) | set(panel.merged) | set(panel.split_pred)
    truth = _grey_rgb(image).astype(np.float32).copy()
    _paint(truth, gt, sorted(set(np.unique(gt[gt > 0]).tolist()) - flagged_gt), ERROR_COLOURS["matched"], fill=False)
    _paint(truth, gt, panel.missed, ERROR_COLOURS["missed"], fill=True)
    _paint(truth, gt, panel.split, ERROR_COLOURS["split"], fill=True)
    _paint(truth, gt, panel.merged_gt, ERROR_COLOURS["merged"], fill=False)
    predicted = _grey_rgb(image).astype(np.float32).copy()
    others = sorted(set(np.unique(pred[pred > 0]).tolist()) - flagged_pred)
    _paint(predicted, pred, others, ERROR_COLOURS["matched"], fill=False)
    _paint(predicted, pred, panel.false, ERROR_COLOURS["false"], fill=True)
    _paint(predicted, pred, panel.merged, ERROR_COLOURS["merged"], fill=True)
    _paint(predicted, pred, panel.split_pred, ERROR_COLOURS["split"], fill=False)
    return [("Ground truth: missed, split", truth), ("Prediction: false, merged", predicted)]


def error_png(panel: ErrorPanel) -> bytes:
    """One figure: the two views of :func:`error_views` and a legend of the error colours."""
    from matplotlib.patches import Patch

    views = error_views(panel)
    height, width = views[0][1].shape[:2]
    figure = _figure(7.6, 4.2 * min(1.6, max(0.6, height / width)) + 0.6)
    axes = figure.subplots(1, len(views), squeeze=False)[0]
    for ax, (title, picture) in zip(axes, views):
        ax.imshow(np.clip(picture, 0.0, 1.0), interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    handles = [
        Patch(facecolor="none" if kind == "matched" else colour, edgecolor=colour, linewidth=2, label=LEGEND[kind])
        for kind, colour in ERROR_COLOURS.items()
    ]
    figure.legend(handles=handles, loc="outside lower center", ncol=3, frameon=False, fontsize=8)
    figure.suptitle(panel.name, fontsize=11)
    return _png(figure)


__all__ = ["ERROR_COLOURS", "LEGEND", "error_png", "error_views"]
