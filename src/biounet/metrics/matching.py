"""Object-level evaluation of instance label maps: matching at an IoU threshold, DSB 2018 AP, PQ.

Instances are the non-zero ids of an integer label map (0 = background).  All pairwise IoUs come
from one sparse contingency table, so only overlapping pairs are ever considered.  A ground-truth
object and a predicted object *match* when their IoU is **greater than** the threshold (the Data
Science Bowl 2018 rule), one-to-one.  For thresholds >= 0.5 such matches are unique (two disjoint
objects cannot both overlap a third by more than half); below 0.5 the number of matches is
maximised with a maximum bipartite matching (Hopcroft-Karp).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import maximum_bipartite_matching

from biounet.metrics.contingency import contingency_table

DSB_IOU_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
"""The IoU thresholds 0.50, 0.55, ..., 0.95 of the 2018 Data Science Bowl metric."""


@dataclass(frozen=True)
class InstanceOverlaps:
    """All overlapping (ground truth, prediction) object pairs and their IoU.

    Attributes:
        gt_ids: ``(G,)`` ground-truth object ids (background 0 excluded).
        pred_ids: ``(P,)`` predicted object ids (background 0 excluded).
        gt_index: ``(K,)`` index into ``gt_ids`` of each overlapping pair.
        pred_index: ``(K,)`` index into ``pred_ids`` of each overlapping pair.
        iou: ``(K,)`` intersection over union of each pair, in (0, 1].
    """

    gt_ids: np.ndarray
    pred_ids: np.ndarray
    gt_index: np.ndarray
    pred_index: np.ndarray
    iou: np.ndarray


@dataclass(frozen=True)
class MatchResult:
    """One-to-one matching of predicted to ground-truth objects at one IoU threshold.

    ``precision = tp / n_pred``, ``recall = tp / n_gt``, ``f1 = 2 tp / (n_gt + n_pred)``; with no
    objects at all on either side every score is 1 (nothing to find, nothing found wrongly).
    ``matched_gt`` / ``matched_pred`` / ``matched_iou`` list the matched pairs (ids and IoU).
    """

    iou_threshold: float
    n_gt: int
    n_pred: int
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    mean_matched_iou: float
    matched_gt: np.ndarray = field(repr=False, compare=False)
    matched_pred: np.ndarray = field(repr=False, compare=False)
    matched_iou: np.ndarray = field(repr=False, compare=False)

    @property
    def dsb_precision(self) -> float:
        """The DSB 2018 per-threshold score ``tp / (tp + fp + fn)`` (1 when both maps are empty)."""
        denominator = self.tp + self.fp + self.fn
        return self.tp / denominator if denominator else 1.0


@dataclass(frozen=True)
class AveragePrecision:
    """DSB 2018 average precision of one image: the mean of ``tp / (tp + fp + fn)`` over thresholds."""

    value: float
    thresholds: tuple[float, ...]
    per_threshold: tuple[float, ...]


@dataclass(frozen=True)
class PanopticQuality:
    """Panoptic quality ``pq = sq * rq`` at IoU > ``iou_threshold`` (Kirillov et al., CVPR 2019).

    ``sq`` is the mean IoU of matched pairs, ``rq = tp / (tp + fp/2 + fn/2)`` (an F1 score).
    """

    pq: float
    sq: float
    rq: float
    tp: int
    fp: int
    fn: int


def instance_overlaps(gt: np.ndarray, pred: np.ndarray) -> InstanceOverlaps:
    """IoU of every overlapping object pair of two instance label maps (2D or 3D, 0 = background).

    Raises:
        DataError: different shapes or non-integer labels.
    """
    table = contingency_table(gt, pred)
    gt_sizes, pred_sizes = table.gt_sizes, table.pred_sizes
    gt_is_object, pred_is_object = table.gt_ids != 0, table.pred_ids != 0
    pair = gt_is_object[table.rows] & pred_is_object[table.cols]
    rows, cols, inter = table.rows[pair], table.cols[pair], table.counts[pair]
    iou = inter / (gt_sizes[rows] + pred_sizes[cols] - inter)
    gt_object_index = np.cumsum(gt_is_object) - 1
    pred_object_index = np.cumsum(pred_is_object) - 1
    return InstanceOverlaps(
        gt_ids=table.gt_ids[gt_is_object],
        pred_ids=table.pred_ids[pred_is_object],
        gt_index=gt_object_index[rows],
        pred_index=pred_object_index[cols],
        iou=iou,
    )


def match_overlaps(overlaps: InstanceOverlaps, iou_threshold: float = 0.5) -> MatchResult:
    """Match objects one-to-one at ``IoU > iou_threshold`` from precomputed :func:`instance_overlaps`."""
    n_gt, n_pred = len(overlaps.gt_ids), len(overlaps.pred_ids)
    candidate = overlaps.iou > iou_threshold
    gi, pi, iou = overlaps.gt_index[candidate], overlaps.pred_index[candidate], overlaps.iou[candidate]
    if iou_threshold < 0.5 and gi.size:
        graph = sparse.csr_array((np.ones(gi.size, np.int8), (gi, pi)), shape=(n_gt, n_pred))
        pred_of_gt = maximum_bipartite_matching(graph, perm_type="column")
        matched = pred_of_gt[gi] == pi
        gi, pi, iou = gi[matched], pi[matched], iou[matched]
    tp = int(gi.size)
    return MatchResult(
        iou_threshold=float(iou_threshold),
        n_gt=n_gt,
        n_pred=n_pred,
        tp=tp,
        fp=n_pred - tp,
        fn=n_gt - tp,
        precision=tp / n_pred if n_pred else float(n_gt == 0),
        recall=tp / n_gt if n_gt else float(n_pred == 0),
        f1=2 * tp / (n_gt + n_pred) if n_gt + n_pred else 1.0,
        mean_matched_iou=float(iou.mean()) if tp else 0.0,
        matched_gt=overlaps.gt_ids[gi],
        matched_pred=overlaps.pred_ids[pi],
        matched_iou=iou,
    )


def match_instances(gt: np.ndarray, pred: np.ndarray, iou_threshold: float = 0.5) -> MatchResult:
    """Match predicted to ground-truth objects one-to-one at ``IoU > iou_threshold``.

    Args:
        gt: ``(Y, X)`` or ``(Z, Y, X)`` integer instance labels, 0 = background.
        pred: predicted instance labels of the same shape, 0 = background.
        iou_threshold: minimum IoU (exclusive) for a match; the matching is optimal (maximum number
            of matches) also below 0.5.

    Returns:
        :class:`MatchResult` with tp/fp/fn counts, precision, recall, F1 and the matched pairs.

    Raises:
        DataError: different shapes or non-integer labels.
    """
    return match_overlaps(instance_overlaps(gt, pred), iou_threshold)


def average_precision_dsb(
    gt: np.ndarray, pred: np.ndarray, thresholds: Sequence[float] = DSB_IOU_THRESHOLDS
) -> AveragePrecision:
    """The 2018 Data Science Bowl score of one image.

    Mean over IoU thresholds 0.5, 0.55, ..., 0.95 of ``tp / (tp + fp + fn)``; inputs as in
    :func:`match_instances`.  An image with no objects in either map scores 1.
    """
    overlaps = instance_overlaps(gt, pred)
    scores = tuple(match_overlaps(overlaps, t).dsb_precision for t in thresholds)
    return AveragePrecision(value=float(np.mean(scores)), thresholds=tuple(thresholds), per_threshold=scores)


def panoptic_quality(gt: np.ndarray, pred: np.ndarray, iou_threshold: float = 0.5) -> PanopticQuality:
    """Panoptic quality of one instance map (single class), inputs as in :func:`match_instances`.

    With no objects on either side all three scores are 1.
    """
    match = match_instances(gt, pred, iou_threshold)
    return panoptic_from_match(match)


def panoptic_from_match(match: MatchResult) -> PanopticQuality:
    """:class:`PanopticQuality` of a finished :class:`MatchResult`."""
    if match.n_gt + match.n_pred == 0:
        return PanopticQuality(1.0, 1.0, 1.0, 0, 0, 0)
    sq = match.mean_matched_iou
    rq = match.tp / (match.tp + 0.5 * match.fp + 0.5 * match.fn)
    return PanopticQuality(pq=sq * rq, sq=sq, rq=rq, tp=match.tp, fp=match.fp, fn=match.fn)


def object_scores(gt: np.ndarray, instances: np.ndarray) -> tuple[float, float, float]:
    """``(F1 at IoU > 0.5, AP50, DSB mean AP over IoU 0.5..0.95)`` of instance maps ``(*S)`` (0 = background).

    One table of object overlaps serves all three (the matching at each IoU threshold is cheap beside it);
    AP50 is the DSB ``TP / (TP + FP + FN)`` at IoU > 0.5, the mean AP its mean over the DSB thresholds.
    """
    overlaps = instance_overlaps(gt, instances)
    matches = [match_overlaps(overlaps, t) for t in DSB_IOU_THRESHOLDS]
    precisions = [m.dsb_precision for m in matches]
    return matches[0].f1, precisions[0], float(np.mean(precisions))
