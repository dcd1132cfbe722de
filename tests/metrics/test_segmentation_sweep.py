"""Segments from probability maps (grown into the boundary), pixel/Dice/IoU, and the threshold sweep."""

from __future__ import annotations

import numpy as np
import pytest

from biounet.errors import DataError
from biounet.metrics import (
    METRICS,
    adapted_rand_error,
    cells_from_isbi_label,
    dice_per_class,
    grow_segments,
    iou_per_class,
    pixel_error,
    segments_from_probability,
    sweep_metrics,
    sweep_thresholds,
    variation_of_information,
    warping_error,
)


def membrane_grid(membrane: int, size: int = 64, cell: int = 16) -> np.ndarray:
    """ISBI-style label image: 255 = interior of a 4x4 grid of cells, 0 = membrane ``membrane`` px thick."""
    label = np.full((size, size), 255, np.uint8)
    for k in range(0, size + 1, cell):
        low, high = max(k - membrane // 2, 0), min(k + (membrane + 1) // 2, size)
        label[low:high, :] = 0
        label[:, low:high] = 0
    return label


def test_cells_from_isbi_label():
    cells = cells_from_isbi_label(membrane_grid(2))
    assert cells.max() == 16 and (cells[membrane_grid(2) == 0] == 0).all()


def test_grown_rand_a_thick_closed_boundary_costs_nothing_a_gap_does():
    gt_cells = cells_from_isbi_label(membrane_grid(2))
    thin, thick = membrane_grid(2) / 255.0, membrane_grid(6) / 255.0
    for prob in (thin, thick):
        segments = segments_from_probability(prob, 0.5)
        assert (segments > 0).all()  # grown: every pixel has a segment
        assert adapted_rand_error(gt_cells, segments).error == pytest.approx(0.0, abs=1e-12)
        assert variation_of_information(gt_cells, segments).total == pytest.approx(0.0, abs=1e-12)
    # Without growing, the thick boundary is one big segment (id 0) that swallows cell pixels.
    raw_thick = segments_from_probability(thick, 0.5, grow=False)
    assert (raw_thick == 0).any() and adapted_rand_error(gt_cells, raw_thick).error > 0.01
    gap = thick.copy()
    gap[20:23, 13:19] = 1.0  # a 3-pixel wide gap joins the two top-left cells
    merged = adapted_rand_error(gt_cells, segments_from_probability(gap, 0.5))
    assert merged.error > 0.05 and merged.merge < 1.0 and merged.split == pytest.approx(1.0)


def test_watershed_growing_also_tiles_the_image():
    prob = membrane_grid(6) / 255.0
    segments = segments_from_probability(prob, 0.5, method="watershed")
    assert (segments > 0).all()
    assert adapted_rand_error(cells_from_isbi_label(membrane_grid(2)), segments).error == pytest.approx(0.0)
    empty = grow_segments(np.zeros((5, 5), np.int32))
    assert (empty == 0).all()


def test_segments_from_probability_3d():
    prob = np.stack([membrane_grid(4) / 255.0] * 3)
    segments = segments_from_probability(prob, 0.5)
    assert segments.shape == prob.shape and (segments > 0).all() and segments.max() == 16


def test_pixel_error_dice_and_iou():
    gt = np.array([[0, 0, 1, 1], [0, 1, 1, 1]])
    pred = np.array([[0, 1, 1, 1], [0, 0, 1, 1]])
    assert pixel_error(gt, pred) == pytest.approx(2 / 8)
    assert pixel_error(np.stack([gt, gt]), np.stack([gt, pred])) == pytest.approx(2 / 16)
    dice, iou = dice_per_class(gt, pred), iou_per_class(gt, pred)
    assert dice[1] == pytest.approx(2 * 4 / (5 + 5)) and iou[1] == pytest.approx(4 / 6)
    assert dice[0] == pytest.approx(2 * 2 / (3 + 3)) and iou[0] == pytest.approx(2 / 4)
    assert np.isnan(dice_per_class(gt, pred, classes=[7])[7])
    assert iou_per_class(gt.astype(bool), pred.astype(bool))[1] == pytest.approx(4 / 6)
    with pytest.raises(DataError, match="shape mismatch"):
        pixel_error(gt, pred[:, :3])


def noisy_probability(rng: np.random.Generator, label: np.ndarray) -> np.ndarray:
    return np.clip(label / 255.0 * 0.6 + 0.2 + rng.normal(0, 0.15, label.shape), 0, 1)


def test_sweep_values_equal_direct_computation(rng):
    label = membrane_grid(4)
    gt_cells, prob = cells_from_isbi_label(label), noisy_probability(rng, label)
    thresholds = (0.3, 0.5, 0.7)
    sweeps = sweep_metrics(prob, gt_cells, ("adapted_rand_error", "pixel_error", "warping_error", "f1"), thresholds)
    for i, t in enumerate(thresholds):
        segments = segments_from_probability(prob, t)
        assert sweeps["adapted_rand_error"].values[i] == adapted_rand_error(gt_cells, segments).error
        assert sweeps["pixel_error"].values[i] == pixel_error(label > 0, prob > t)
        assert sweeps["warping_error"].values[i] == warping_error(label > 0, prob > t).error
    rand = sweeps["adapted_rand_error"]
    assert rand.best_value == min(rand.values) and rand.best_threshold == thresholds[rand.values.index(rand.best_value)]
    assert rand.best_detail.error == rand.best_value
    f1 = sweeps["f1"]
    assert f1.higher_is_better and f1.best_value == max(f1.values)


def test_sweep_thresholds_finds_the_threshold_that_separates_the_cells():
    label = membrane_grid(4)
    prob = np.where(label > 0, 0.65, 0.35)  # only thresholds between 0.35 and 0.65 are exact
    result = sweep_thresholds(prob, cells_from_isbi_label(label), "adapted_rand_error")
    assert result.thresholds == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    assert result.best_threshold == 0.4 and result.best_value == pytest.approx(0.0)
    assert result.values[0] > 0.5 and result.values[-1] > 0.5  # all merged / nothing found
    assert "average_precision" in METRICS
    with pytest.raises(ValueError, match="unknown metric"):
        sweep_thresholds(prob, label, "accuracy")
