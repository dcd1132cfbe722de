"""Object matching, DSB 2018 average precision and panoptic quality against a per-object reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from biounet.errors import DataError
from biounet.metrics import (
    DSB_IOU_THRESHOLDS,
    average_precision_dsb,
    instance_overlaps,
    match_instances,
    panoptic_quality,
)


def random_instances(rng: np.random.Generator, shape=(48, 48), n_objects=12) -> np.ndarray:
    """Overlapping random rectangles painted in order (later ones cover earlier ones)."""
    labels = np.zeros(shape, np.int32)
    for obj in range(1, n_objects + 1):
        y, x = rng.integers(0, shape[0] - 4), rng.integers(0, shape[1] - 4)
        h, w = rng.integers(3, 14, size=2)
        labels[y : y + h, x : x + w] = obj * 3 + 1  # ids need not be consecutive
    return labels


def perturbed(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """A prediction: shifted, some objects dropped, a few spurious blobs."""
    pred = np.roll(labels, tuple(rng.integers(-2, 3, size=2)), axis=(0, 1)).copy()
    ids = np.unique(pred[pred > 0])
    for dropped in rng.choice(ids, size=len(ids) // 5, replace=False):
        pred[pred == dropped] = 0
    for k in range(3):
        y, x = rng.integers(0, labels.shape[0] - 6, size=2)
        pred[y : y + 5, x : x + 4] = 1000 + k
    return pred


def reference_ious(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Brute force: one mask comparison per object pair."""
    gt_ids, pred_ids = np.unique(gt[gt > 0]), np.unique(pred[pred > 0])
    ious = np.zeros((len(gt_ids), len(pred_ids)))
    for i, g in enumerate(gt_ids):
        for j, p in enumerate(pred_ids):
            a, b = gt == g, pred == p
            ious[i, j] = (a & b).sum() / (a | b).sum()
    return ious


def reference_tp(ious: np.ndarray, threshold: float) -> tuple[int, float]:
    """Maximum number of one-to-one matches with IoU > threshold (and their IoU sum)."""
    if ious.size == 0:
        return 0, 0.0
    hit = ious > threshold
    rows, cols = linear_sum_assignment(-(hit * 1.0 + 1e-6 * ious))
    good = hit[rows, cols]
    return int(good.sum()), float(ious[rows, cols][good].sum())


@pytest.mark.parametrize("seed", range(6))
def test_matching_ap_and_pq_equal_brute_force(seed):
    rng = np.random.default_rng(seed)
    gt = random_instances(rng)
    pred = perturbed(rng, gt)
    ious = reference_ious(gt, pred)
    n_gt, n_pred = ious.shape
    for threshold in (0.1, 0.3, 0.5, 0.75):
        tp, _ = reference_tp(ious, threshold)
        match = match_instances(gt, pred, iou_threshold=threshold)
        assert (match.n_gt, match.n_pred, match.tp) == (n_gt, n_pred, tp)
        assert (match.fp, match.fn) == (n_pred - tp, n_gt - tp)
        assert match.precision == pytest.approx(tp / n_pred)
        assert match.recall == pytest.approx(tp / n_gt)
        assert match.f1 == pytest.approx(2 * tp / (n_gt + n_pred))
        assert np.all(match.matched_iou > threshold)
    expected_ap = np.mean([reference_tp(ious, t)[0] / (n_gt + n_pred - reference_tp(ious, t)[0])
                           for t in DSB_IOU_THRESHOLDS])  # fmt: skip
    assert average_precision_dsb(gt, pred).value == pytest.approx(expected_ap, abs=1e-12)
    tp, iou_sum = reference_tp(ious, 0.5)
    pq = panoptic_quality(gt, pred)
    assert pq.sq == pytest.approx(iou_sum / tp if tp else 0.0)
    assert pq.rq == pytest.approx(tp / (tp + 0.5 * (n_pred - tp) + 0.5 * (n_gt - tp)))
    assert pq.pq == pytest.approx(pq.sq * pq.rq)


def test_instance_overlaps_equal_brute_force(rng):
    gt = random_instances(rng, n_objects=6)
    pred = perturbed(rng, gt)
    overlaps = instance_overlaps(gt, pred)
    dense = np.zeros((len(overlaps.gt_ids), len(overlaps.pred_ids)))
    dense[overlaps.gt_index, overlaps.pred_index] = overlaps.iou
    np.testing.assert_allclose(dense, reference_ious(gt, pred), atol=1e-12)


def test_optimal_matching_below_half_beats_greedy():
    # One row of pixels: gt A = [0, 8), B = [8, 24); pred Y = [0, 3), X = [3, 13).
    # IoU(A, X) = 5/13 = 0.385 > IoU(A, Y) = 3/8 = 0.375 > IoU(B, X) = 5/21 = 0.238.
    # Greedy by IoU takes A-X first and then has nothing for Y: 1 match; optimal is A-Y + B-X.
    gt = np.zeros((1, 24), np.int32)
    gt[0, :8], gt[0, 8:] = 1, 2
    pred = np.zeros_like(gt)
    pred[0, 0:3], pred[0, 3:13] = 7, 8
    optimal = match_instances(gt, pred, 0.2)
    assert optimal.tp == 2
    assert sorted(zip(optimal.matched_gt.tolist(), optimal.matched_pred.tolist())) == [(1, 7), (2, 8)]
    assert match_instances(gt, pred, 0.3).tp == 1  # B-X no longer qualifies
    assert match_instances(gt, pred, 5 / 13).tp == 0  # IoU must be strictly greater (DSB rule)


def test_edge_cases():
    empty = np.zeros((8, 8), np.int32)
    one = empty.copy()
    one[2:5, 2:5] = 3
    assert average_precision_dsb(empty, empty).value == 1.0
    assert panoptic_quality(empty, empty).pq == 1.0
    assert average_precision_dsb(one, one).value == 1.0
    assert average_precision_dsb(one, empty).value == 0.0
    assert average_precision_dsb(empty, one).value == 0.0
    missed = match_instances(one, empty)
    assert (missed.tp, missed.fn, missed.recall, missed.f1) == (0, 1, 0.0, 0.0)
    with pytest.raises(DataError):
        match_instances(one, one.astype(np.float32))


def test_3d_instances(rng):
    gt = np.stack([random_instances(rng, (20, 20), 4) for _ in range(3)])
    assert average_precision_dsb(gt, gt).value == 1.0
    assert match_instances(gt, gt).f1 == 1.0
