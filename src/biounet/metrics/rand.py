"""Adapted Rand error and variation of information (ISBI 2012 / SNEMI3D segmentation metrics).

Both are functions of the sparse contingency table (:mod:`biounet.metrics.contingency`) and agree
with ``skimage.metrics.adapted_rand_error`` / ``variation_of_information`` to rounding error.
Ground-truth label 0 is ignored by default (the ISBI convention: label 0 is membrane / boundary /
unlabelled, and those pixels do not count); *predicted* label 0 is an ordinary segment, so pass
grown segments (:func:`biounet.metrics.segments_from_probability`) where every pixel has an id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from biounet.metrics.contingency import Contingency, contingency_table


@dataclass(frozen=True)
class RandScores:
    """Adapted Rand error (SNEMI3D: ``1 - F-score`` of the Rand index over foreground pixel pairs).

    Attributes:
        error: ``1 - F``, in [0, 1]; 0 is a perfect segmentation.
        split: the Rand *split* score ``sum p_ij^2 / sum t_i^2`` (``t`` = ground-truth sizes): the
            fraction of same-object pixel pairs of the ground truth that the prediction keeps
            together; below 1 when the prediction over-segments.  Equals skimage's ``precision``.
        merge: the Rand *merge* score ``sum p_ij^2 / sum s_j^2`` (``s`` = predicted sizes): below 1
            when the prediction merges objects.  Equals skimage's ``recall``.
    """

    error: float
    split: float
    merge: float

    @property
    def precision(self) -> float:
        """skimage's name for :attr:`split` (``adapted_rand_error(...)[1]``)."""
        return self.split

    @property
    def recall(self) -> float:
        """skimage's name for :attr:`merge` (``adapted_rand_error(...)[2]``)."""
        return self.merge


@dataclass(frozen=True)
class VIScores:
    """Variation of information in bits: ``total = split + merge``; 0 is a perfect segmentation.

    Attributes:
        total: ``H(pred | gt) + H(gt | pred)``.
        split: ``H(pred | gt)``, the over-segmentation part (skimage's first value).
        merge: ``H(gt | pred)``, the under-segmentation part (skimage's second value).
    """

    total: float
    split: float
    merge: float


@dataclass(frozen=True)
class RandVI:
    """Both segmentation scores, computed from one contingency table."""

    rand: RandScores
    vi: VIScores


def rand_scores_from_table(table: Contingency) -> RandScores:
    """Adapted Rand error of a contingency table (pairs of a pixel with itself excluded, as skimage)."""
    n = float(table.n_pixels)
    counts = table.counts.astype(np.float64)  # float64: no int64 overflow of squared sizes in huge volumes
    gt_sizes, pred_sizes = table.gt_sizes.astype(np.float64), table.pred_sizes.astype(np.float64)
    together_both = float(counts @ counts - n)
    together_gt = float(gt_sizes @ gt_sizes - n)
    together_pred = float(pred_sizes @ pred_sizes - n)
    split = _ratio(together_both, together_gt)
    merge = _ratio(together_both, together_pred)
    fscore = _ratio(together_both, 0.5 * together_gt + 0.5 * together_pred)
    return RandScores(error=1.0 - fscore, split=split, merge=merge)


def vi_scores_from_table(table: Contingency) -> VIScores:
    """Variation of information (bits) of a contingency table."""
    if table.n_pixels == 0:
        return VIScores(0.0, 0.0, 0.0)
    n = float(table.n_pixels)
    joint = table.counts / n
    gt_marginal = table.gt_sizes[table.rows] / n
    pred_marginal = table.pred_sizes[table.cols] / n
    split = float(-(joint @ np.log2(joint / gt_marginal)))
    merge = float(-(joint @ np.log2(joint / pred_marginal)))
    split, merge = (value if value > 0 else 0.0 for value in (split, merge))  # no -0.0 or -1e-17
    return VIScores(total=split + merge, split=split, merge=merge)


def adapted_rand_error(gt: np.ndarray, pred: np.ndarray, *, ignore_labels: Sequence[int] = (0,)) -> RandScores:
    """Adapted Rand error of a segmentation, as in the ISBI 2012 and SNEMI3D challenges.

    Args:
        gt: ``(Y, X)`` or ``(Z, Y, X)`` integer ground-truth labels, one id per object (cell); pixels
            with a label in ``ignore_labels`` (default: 0 = membrane/boundary) are not counted.
        pred: predicted segment ids of the same shape (e.g. from
            :func:`~biounet.metrics.segments_from_probability`); 0 is an ordinary segment here.

    Returns:
        :class:`RandScores` with ``error`` (0 = perfect), ``split`` and ``merge`` scores; identical to
        ``skimage.metrics.adapted_rand_error(gt, pred, ignore_labels=ignore_labels)``.

    Raises:
        DataError: different shapes or non-integer labels.
    """
    return rand_scores_from_table(contingency_table(gt, pred, ignore_labels=ignore_labels))


def variation_of_information(gt: np.ndarray, pred: np.ndarray, *, ignore_labels: Sequence[int] = (0,)) -> VIScores:
    """Variation of information (bits) with its split and merge parts.

    Same inputs as :func:`adapted_rand_error`.  Equals
    ``skimage.metrics.variation_of_information(gt, pred, ignore_labels=ignore_labels)`` (note the
    default here ignores ground-truth label 0; skimage's default ignores nothing).
    """
    return vi_scores_from_table(contingency_table(gt, pred, ignore_labels=ignore_labels))


def rand_and_vi(gt: np.ndarray, pred: np.ndarray, *, ignore_labels: Sequence[int] = (0,)) -> RandVI:
    """Adapted Rand error and variation of information from a single contingency table."""
    table = contingency_table(gt, pred, ignore_labels=ignore_labels)
    return RandVI(rand=rand_scores_from_table(table), vi=vi_scores_from_table(table))


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, with 0/0 = 1 (no pixel pairs: nothing could be split or merged)."""
    if denominator == 0:
        return 1.0 if numerator == 0 else 0.0
    return numerator / denominator
