"""What went wrong with each object of an instance map: missed, false, merged, split (for pictures of errors).

The object metrics (:mod:`biounet.metrics.matching`) count matches at ``IoU > 0.5``; a user looking at a bad
image wants to know *why* objects did not match.  Four kinds of error, from one contingency table:

* **merged**: a predicted object that covers most (more than half the pixels) of two or more true objects;
* **split**: a true object that holds most (more than half the pixels) of two or more predicted objects;
* **missed** (false negative): a true object without a match at ``IoU > iou_threshold`` that is neither
  merged nor split;
* **false** (false positive): a predicted object without a match that is neither a merger nor a piece of
  a split.

"Most of" is ``intersection / size > 0.5``: an object cannot lie mostly in two others, so each true object
belongs to at most one merger and each predicted object to at most one split.  A merger may still match one
of its true objects (a large one beside a small one); it is listed as merged all the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biounet.metrics.contingency import contingency_table

#: An object lies "mostly" in another when more than this fraction of its pixels is there.
MOSTLY = 0.5


@dataclass(frozen=True)
class InstanceErrors:
    """The objects of each error kind, by id (``(N,)`` int64 arrays of label values, sorted).

    Attributes:
        matched_gt, matched_pred: the objects matched one-to-one at ``IoU > iou_threshold``.
        missed: true objects not found (false negatives that are neither merged nor split).
        false: predicted objects with no true object (false positives that are not part of a merge/split).
        merged: predicted objects that each cover most of two or more true objects.
        merged_gt: the true objects those mergers cover.
        split: true objects that each hold most of two or more predicted objects.
        split_pred: the predicted pieces of those splits.
    """

    matched_gt: np.ndarray
    matched_pred: np.ndarray
    missed: np.ndarray
    false: np.ndarray
    merged: np.ndarray
    merged_gt: np.ndarray
    split: np.ndarray
    split_pred: np.ndarray

    def counts(self) -> dict[str, int]:
        """``{"missed", "false", "merged", "split"}``: the number of objects of each kind."""
        return {"missed": len(self.missed), "false": len(self.false), "merged": len(self.merged),
                "split": len(self.split)}


def instance_errors(gt: np.ndarray, pred: np.ndarray, iou_threshold: float = 0.5) -> InstanceErrors:
    """Classify the objects of two instance label maps ``(*S)`` (2D or 3D, 0 = background); see the module doc.

    Raises:
        DataError: different shapes or non-integer labels.
    """
    from biounet.metrics.matching import instance_overlaps, match_overlaps

    table = contingency_table(gt, pred)
    gt_sizes, pred_sizes = table.gt_sizes, table.pred_sizes
    objects = (table.gt_ids[table.rows] != 0) & (table.pred_ids[table.cols] != 0)
    rows, cols, inter = table.rows[objects], table.cols[objects], table.counts[objects]
    gt_in_pred = inter / gt_sizes[rows] > MOSTLY  # the true object lies mostly in the predicted one
    pred_in_gt = inter / pred_sizes[cols] > MOSTLY  # the predicted object lies mostly in the true one
    covered = np.bincount(cols[gt_in_pred], minlength=len(table.pred_ids))
    pieces = np.bincount(rows[pred_in_gt], minlength=len(table.gt_ids))
    merged_cols = np.flatnonzero(covered >= 2)
    split_rows = np.flatnonzero(pieces >= 2)
    merged_gt = table.gt_ids[np.unique(rows[gt_in_pred & np.isin(cols, merged_cols)])]
    split_pred = table.pred_ids[np.unique(cols[pred_in_gt & np.isin(rows, split_rows)])]
    match = match_overlaps(instance_overlaps(gt, pred), iou_threshold)
    gt_objects, pred_objects = table.gt_ids[table.gt_ids != 0], table.pred_ids[table.pred_ids != 0]
    merged, split = table.pred_ids[merged_cols], table.gt_ids[split_rows]
    missed = np.setdiff1d(gt_objects, np.concatenate([match.matched_gt, merged_gt, split]))
    false = np.setdiff1d(pred_objects, np.concatenate([match.matched_pred, merged, split_pred]))
    return InstanceErrors(
        matched_gt=np.sort(match.matched_gt), matched_pred=np.sort(match.matched_pred), missed=missed,
        false=false, merged=np.sort(merged), merged_gt=merged_gt, split=np.sort(split), split_pred=split_pred,
    )  # fmt: skip


__all__ = ["MOSTLY", "InstanceErrors", "instance_errors"]
