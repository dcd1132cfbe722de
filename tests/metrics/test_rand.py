"""Adapted Rand error, variation of information and the contingency table against scikit-image."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import adapted_rand_error as skimage_adapted_rand_error
from skimage.metrics import contingency_table as skimage_contingency_table
from skimage.metrics import variation_of_information as skimage_variation_of_information

from biounet.errors import DataError
from biounet.metrics import (
    adapted_rand_error,
    contingency_table,
    rand_and_vi,
    variation_of_information,
)
from biounet.metrics.contingency import compact_labels

SHAPES = [(37, 53), (5, 19, 23)]


def random_labels(rng: np.random.Generator, shape: tuple[int, ...], n_labels: int) -> np.ndarray:
    """Blocky random labels (so segments have many pixels), with label 0 present."""
    coarse = rng.integers(0, n_labels, size=tuple(max(1, s // 3) + 1 for s in shape))
    labels = coarse
    for axis, size in enumerate(shape):
        labels = np.repeat(labels, 3, axis=axis).take(np.arange(size), axis=axis)
    noise = rng.random(shape) < 0.1
    labels[noise] = rng.integers(0, n_labels, size=int(noise.sum()))
    return labels


@pytest.mark.parametrize("shape", SHAPES)
def test_adapted_rand_error_equals_skimage(rng, shape):
    for n_gt, n_pred in [(4, 9), (12, 3), (30, 30)]:
        gt, pred = random_labels(rng, shape, n_gt), random_labels(rng, shape, n_pred)
        expected = skimage_adapted_rand_error(gt, pred)
        got = adapted_rand_error(gt, pred)
        np.testing.assert_allclose([got.error, got.precision, got.recall], expected, rtol=0, atol=1e-9)
        assert (got.split, got.merge) == (got.precision, got.recall)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("ignore", [(), (0,)])
def test_variation_of_information_equals_skimage(rng, shape, ignore):
    gt, pred = random_labels(rng, shape, 7), random_labels(rng, shape, 11)
    expected = skimage_variation_of_information(gt, pred, ignore_labels=ignore)
    got = variation_of_information(gt, pred, ignore_labels=ignore)
    np.testing.assert_allclose([got.split, got.merge], expected, rtol=0, atol=1e-9)
    assert got.total == pytest.approx(expected.sum(), abs=1e-9)


def test_rand_and_vi_from_one_table_equals_separate_calls(rng):
    gt, pred = random_labels(rng, (40, 40), 6), random_labels(rng, (40, 40), 8)
    both = rand_and_vi(gt, pred)
    assert both.rand == adapted_rand_error(gt, pred)
    assert both.vi == variation_of_information(gt, pred)


def test_perfect_segmentation_and_relabelling_cost_nothing(rng):
    gt = random_labels(rng, (30, 40), 9)
    relabelled = (gt.astype(np.uint64) * 1_000_003 + 7) % (2**40)  # same partition, other ids
    rand, vi = adapted_rand_error(gt, relabelled), variation_of_information(gt, relabelled, ignore_labels=())
    assert rand.error == pytest.approx(0.0, abs=1e-12)
    assert (rand.split, rand.merge) == (pytest.approx(1.0), pytest.approx(1.0))
    assert vi.total == pytest.approx(0.0, abs=1e-12)


def test_split_and_merge_parts_point_the_right_way():
    gt = np.zeros((10, 10), np.int32)
    gt[:, :5], gt[:, 5:] = 1, 2
    over = gt.copy()
    over[:5, :5] = 3  # one ground-truth cell split in two
    under = np.ones_like(gt)  # both cells merged
    split_case, merge_case = adapted_rand_error(gt, over), adapted_rand_error(gt, under)
    assert split_case.split < 1.0 and split_case.merge == 1.0 and split_case.error > 0
    assert merge_case.merge < 1.0 and merge_case.split == 1.0 and merge_case.error > 0
    vi_split, vi_merge = variation_of_information(gt, over), variation_of_information(gt, under)
    assert vi_split.split > 0 and vi_split.merge == 0
    assert vi_merge.merge > 0 and vi_merge.split == 0


def test_ground_truth_label_zero_is_ignored():
    gt = np.array([[1, 1, 0, 2, 2]])
    pred_a = np.array([[5, 5, 5, 6, 6]])
    pred_b = np.array([[5, 5, 6, 6, 6]])  # differs only on the ignored pixel
    assert adapted_rand_error(gt, pred_a) == adapted_rand_error(gt, pred_b)
    assert adapted_rand_error(gt, pred_a).error == 0.0


def test_contingency_table_equals_skimage(rng):
    gt, pred = random_labels(rng, (25, 31), 6), random_labels(rng, (25, 31), 5)
    table = contingency_table(gt, pred, ignore_labels=(0,))
    expected = skimage_contingency_table(gt, pred, ignore_labels=(0,)).toarray()
    dense = np.zeros((gt.max() + 1, pred.max() + 1))
    dense[np.ix_(table.gt_ids, table.pred_ids)] = table.to_sparse().toarray()
    np.testing.assert_array_equal(dense, expected)
    assert table.n_pixels == np.count_nonzero(gt)
    assert table.gt_sizes.sum() == table.pred_sizes.sum() == table.n_pixels


def test_compact_labels_handles_large_and_negative_ids():
    for labels in (np.array([7, 2**40, 7, 3], np.uint64), np.array([-5, 3, -5, 0], np.int64)):
        ids, index = compact_labels(labels)
        np.testing.assert_array_equal(ids[index], labels)
        np.testing.assert_array_equal(ids, np.unique(labels))


def test_bad_input_raises_data_error():
    with pytest.raises(DataError, match="shape mismatch"):
        adapted_rand_error(np.zeros((4, 4), int), np.zeros((4, 5), int))
    with pytest.raises(DataError, match="integer label image"):
        adapted_rand_error(np.zeros((4, 4), int), np.zeros((4, 4), np.float32))
