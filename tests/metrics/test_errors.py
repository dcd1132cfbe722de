"""Object errors of an instance map, on a hand-made case with one of each kind."""

from __future__ import annotations

import numpy as np

from biounet.metrics.errors import instance_errors


def one_of_each() -> tuple[np.ndarray, np.ndarray]:
    """gt 1 matched by 10, gt 2 missed, pred 20 false, pred 30 merges gt 3 and 4, gt 5 split into 50 and 51."""
    gt, pred = np.zeros((40, 60), np.int32), np.zeros((40, 60), np.int32)
    gt[2:10, 2:10], pred[2:10, 3:10] = 1, 10  # IoU 56/64
    gt[2:10, 20:28] = 2  # nothing predicted there
    pred[2:10, 40:48] = 20  # nothing true there
    gt[20:30, 2:10], gt[20:30, 11:19], pred[20:30, 2:19] = 3, 4, 30  # one predicted object over two true ones
    gt[20:30, 30:50], pred[20:30, 30:40], pred[20:30, 40:50] = 5, 50, 51  # one true object cut in two
    return gt, pred


def test_one_missed_one_false_one_merge_one_split():
    errors = instance_errors(*one_of_each())
    assert errors.matched_gt.tolist() == [1] and errors.matched_pred.tolist() == [10]
    assert errors.missed.tolist() == [2] and errors.false.tolist() == [20]
    assert errors.merged.tolist() == [30] and errors.merged_gt.tolist() == [3, 4]
    assert errors.split.tolist() == [5] and errors.split_pred.tolist() == [50, 51]
    assert errors.counts() == {"missed": 1, "false": 1, "merged": 1, "split": 1}


def test_a_perfect_map_has_no_errors_in_3d():
    gt = np.zeros((4, 16, 16), np.int32)
    gt[:, 2:8, 2:8], gt[1:3, 9:14, 9:14] = 1, 2
    errors = instance_errors(gt, gt * 7)
    assert errors.counts() == {"missed": 0, "false": 0, "merged": 0, "split": 0}
    assert errors.matched_pred.tolist() == [7, 14]
