"""Warping error: the simple-point table, topology preservation, and hand-made defects."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from biounet.metrics import simple_point_table, warp_binary, warping_error

CROSS = ndi.generate_binary_structure(2, 1)
SQUARE = np.ones((3, 3), bool)


def topology(mask: np.ndarray) -> tuple[int, int]:
    """(# 4-connected foreground components, # 8-connected background components), outside = background."""
    padded = np.pad(mask, 1)
    return ndi.label(padded, CROSS)[1], ndi.label(~padded, SQUARE)[1]


def neighbour_code(mask: np.ndarray, y: int, x: int) -> int:
    padded = np.pad(mask, 1)
    ring = [(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]
    return sum(int(padded[y + 1 + dy, x + 1 + dx]) << k for k, (dy, dx) in enumerate(ring))


def test_simple_point_table_agrees_with_global_topology(rng):
    """Flipping a pixel keeps both component counts exactly when the table calls it simple."""
    table = simple_point_table(4)
    checked = 0
    for density in (0.3, 0.5, 0.7):
        mask = rng.random((9, 9)) < density
        before = topology(mask)
        for y in range(9):
            for x in range(9):
                flipped = mask.copy()
                flipped[y, x] = ~flipped[y, x]
                assert table[neighbour_code(mask, y, x)] == (topology(flipped) == before), (y, x)
                checked += 1
    assert checked == 243


def test_simple_point_table_basic_entries():
    table = simple_point_table(4)
    assert not table[0]  # isolated pixel: flipping creates or deletes an object
    assert not table[255]  # interior pixel: removing it makes a hole
    assert table[0b00000001]  # a single 4-neighbour: an end pixel can be added or removed
    assert not table[0b00000010]  # a single diagonal neighbour is not 4-adjacent
    assert not table[0b00010001]  # N and S only: the pixel joins two parts
    assert table[0b00000111] and simple_point_table(8).sum() == table.sum()


def test_warp_binary_keeps_topology_of_the_moving_map(rng):
    moving = ndi.binary_opening(rng.random((64, 64)) < 0.55)
    target = ndi.binary_opening(rng.random((64, 64)) < 0.55)
    warped = warp_binary(moving, target)
    assert topology(warped) == topology(moving)
    assert (warped != target).sum() < (moving != target).sum()


def two_cells(membrane: int = 3) -> np.ndarray:
    """Two 10x10 cells side by side, separated by a membrane ``membrane`` pixels thick."""
    gt = np.zeros((16, 30), bool)
    gt[3:13, 3:13] = True
    gt[3:13, 13 + membrane : 23 + membrane] = True
    return gt


def test_identical_maps_cost_nothing():
    gt = two_cells()
    result = warping_error(gt, gt)
    assert (result.error, result.n_wrong, result.n_defects) == (0.0, 0, 0)


def test_a_one_pixel_shift_of_the_boundary_costs_nothing(rng):
    gt = np.zeros((60, 60), bool)
    for y, x, r in [(15, 15, 8), (15, 42, 9), (43, 20, 10), (45, 46, 7)]:
        yy, xx = np.ogrid[:60, :60]
        gt |= (yy - y) ** 2 + (xx - x) ** 2 <= r**2
    for shift in [(0, 1), (1, 0), (-1, 0), (1, 1)]:
        shifted = np.roll(gt, shift, axis=(0, 1))
        assert (shifted != gt).sum() > 50  # a real pixel error...
        result = warping_error(gt, shifted)
        assert result.n_wrong == 0 and result.n_defects == 0  # ...but no topological error
    grown = ndi.binary_dilation(gt)  # every cell one pixel larger
    assert warping_error(gt, grown).n_wrong == 0


def test_a_bridge_merging_two_cells_costs_its_pixels():
    gt = two_cells(membrane=3)
    pred = gt.copy()
    pred[8, 13:16] = True  # a 1-pixel wide gap in the predicted membrane, 3 pixels long
    result = warping_error(gt, pred)
    assert result.n_wrong == 3 and result.merges == 1 and result.n_defects == 1
    assert result.error == pytest.approx(3 / gt.size)
    assert result.defects[8, 13:16].all() and result.defects.sum() == 3
    # Warping the ground truth instead (the Fiji/ISBI direction) leaves one pixel of the gap.
    gt_warped = warping_error(gt, pred, warp="ground_truth")
    assert gt_warped.n_wrong == 1 and gt_warped.merges == 1


def test_a_cut_splitting_a_cell_costs_its_pixels():
    gt = two_cells()
    pred = gt.copy()
    pred[3:13, 20] = False  # a one-pixel line cuts the right cell in two
    result = warping_error(gt, pred)
    assert result.n_wrong == 10 and result.splits == 1 and result.n_defects == 1
    diagonal = gt.copy()
    diagonal[np.arange(3, 13), np.arange(3, 13)] = False  # a diagonal (8-connected) cut also splits
    assert warping_error(gt, diagonal).splits == 1


def test_a_hole_and_a_spurious_object_shrink_to_one_pixel():
    gt = two_cells()
    holed = gt.copy()
    holed[6:9, 6:9] = False  # a 3x3 hole inside a cell
    result = warping_error(gt, holed)
    assert result.n_wrong == 1 and result.holes == 1 and result.n_defects == 1
    spurious = gt.copy()
    spurious[0:2, 26:29] = True  # a small object that is not in the ground truth
    result = warping_error(gt, spurious)
    assert result.n_wrong == 1 and result.objects_added == 1
    missing = gt.copy()
    missing[3:13, 3:13] = False  # a whole cell missed: nothing to warp from, all its pixels count
    result = warping_error(gt, missing)
    assert result.n_wrong == 100 and result.objects_missed == 1


def test_thick_closed_boundary_costs_nothing_but_pixel_error():
    gt = two_cells(membrane=3)
    thick = ndi.binary_erosion(gt, iterations=2)  # cells shrunk, membrane 7 pixels thick
    result = warping_error(gt, thick)
    assert result.n_wrong == 0 and (thick != gt).sum() > 0


def test_stacks_are_warped_slice_by_slice():
    gt = two_cells()
    bridged = gt.copy()
    bridged[8, 13:16] = True
    stack_gt, stack_pred = np.stack([gt, gt]), np.stack([gt, bridged])
    result = warping_error(stack_gt, stack_pred)
    assert result.n_wrong == 3 and result.merges == 1 and result.defects.shape == stack_gt.shape
    assert result.error == pytest.approx(3 / stack_gt.size)
