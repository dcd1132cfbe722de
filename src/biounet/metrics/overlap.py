"""Per-class Dice and IoU (Jaccard) of semantic class maps.

The IoU of the foreground class of a binary map is the "IOU" of the cell-tracking results in
Table 2 of the U-Net paper.  Classes are integer values (0, 1, ...); bool maps are classes 0/1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from biounet.metrics.contingency import contingency_table


def class_overlaps(
    gt: np.ndarray, pred: np.ndarray, classes: Sequence[int] | None = None
) -> dict[int, tuple[int, int, int]]:
    """``{class: (intersection, gt pixels, pred pixels)}`` for every class.

    ``classes`` defaults to every value present in either map.  Shapes must agree (any dimension);
    a :class:`~biounet.errors.DataError` is raised otherwise or for float maps.
    """
    table = contingency_table(gt, pred)
    gt_sizes = dict(zip(table.gt_ids.tolist(), table.gt_sizes.tolist()))
    pred_sizes = dict(zip(table.pred_ids.tolist(), table.pred_sizes.tolist()))
    same = table.gt_ids[table.rows] == table.pred_ids[table.cols]
    inter = dict(zip(table.gt_ids[table.rows[same]].tolist(), table.counts[same].tolist()))
    if classes is None:
        classes = sorted(set(gt_sizes) | set(pred_sizes))
    return {int(c): (inter.get(c, 0), gt_sizes.get(c, 0), pred_sizes.get(c, 0)) for c in classes}


def dice_per_class(gt: np.ndarray, pred: np.ndarray, classes: Sequence[int] | None = None) -> dict[int, float]:
    """Dice ``2|G∩P| / (|G|+|P|)`` per class (``nan`` for a class absent from both maps).

    Args:
        gt, pred: integer or bool class maps of equal shape (2D or 3D); bool means classes 0/1.
        classes: classes to report; default every value present in either map.
    """
    return {
        c: (2.0 * i / (g + p)) if g + p else float("nan") for c, (i, g, p) in class_overlaps(gt, pred, classes).items()
    }


def iou_per_class(gt: np.ndarray, pred: np.ndarray, classes: Sequence[int] | None = None) -> dict[int, float]:
    """IoU (Jaccard) ``|G∩P| / |G∪P|`` per class (``nan`` for a class absent from both maps).

    Same arguments as :func:`dice_per_class`.
    """
    return {
        c: (i / (g + p - i)) if g + p else float("nan") for c, (i, g, p) in class_overlaps(gt, pred, classes).items()
    }
