"""Cells from membrane maps: a faint gap does not merge cells, two seeds in one cell merge, anisotropy."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import ndimage as ndi

from biounet.errors import DataError
from biounet.inference.cells import CellSettings, RegionGraph, cells_from_membranes, cells_over_grid
from biounet.io.images import read_image
from biounet.metrics import adapted_rand_error, cells_from_isbi_label, segments_from_probability


def two_cells_with_a_gap() -> np.ndarray:
    """``(40, 83)`` P(interior): two 40 x 40 cells, a 3-pixel membrane between them, one pixel of it missing."""
    interior = np.full((40, 83), 0.95, np.float32)
    interior[:, 40:43] = 0.05
    interior[20, 40:43] = 0.9  # the faint gap
    return interior


def test_a_one_pixel_membrane_gap_does_not_merge_two_cells():
    interior = two_cells_with_a_gap()
    assert segments_from_probability(interior, 0.5).max() == 1  # thresholding merges them
    cells = cells_from_membranes(interior, CellSettings())
    assert cells.dtype == np.int32 and cells.shape == interior.shape and cells.min() == 1
    assert cells.max() == 2
    assert len(np.unique(cells[:, :40])) == 1 and len(np.unique(cells[:, 43:])) == 1
    assert cells[0, 0] != cells[0, -1]


def test_two_seeds_in_one_cell_without_membrane_between_them_merge():
    """A dumbbell cell (two discs of radius 15 joined by a 9-pixel waist) in a 3-pixel membrane, in another cell."""
    yy, xx = np.mgrid[:60, :100]
    discs = ((yy - 30) ** 2 + (xx - 25) ** 2 < 15**2) | ((yy - 30) ** 2 + (xx - 70) ** 2 < 15**2)
    cell = discs | ((abs(yy - 30) <= 4) & (xx > 25) & (xx < 70))
    membrane = ndi.binary_dilation(cell, iterations=3) & ~cell
    interior = np.where(membrane, 0.05, 0.95).astype(np.float32)
    unmerged = cells_from_membranes(interior, CellSettings(seed_distance=5.0, merge_threshold=0.0))
    assert unmerged.max() == 3 and unmerged[30, 25] != unmerged[30, 70]  # the waist is narrower than the seeds
    cells = cells_from_membranes(interior, CellSettings(seed_distance=5.0, merge_threshold=0.3))
    assert cells.max() == 2
    assert cells[30, 25] == cells[30, 70] != cells[0, 0]


def test_anisotropic_spacing_gives_thin_sections_seeds():
    """Two cells above each other, 3 sections each, a membrane section with a 3 x 3 hole between them.

    Counted in voxels, no point of a 3-section cell is farther than 3 from the membrane, so no seed
    passes a seed distance of 4 and the hole merges the cells; with sections 2x thicker than pixels (still
    one 3D watershed: not thicker than ``SECTION_RATIO``) the in-plane distance counts and each cell gets
    its seed.
    """
    interior = np.full((7, 24, 24), 0.95, np.float32)
    interior[3] = 0.05
    interior[3, 11:14, 11:14] = 0.9
    settings = CellSettings(seed_distance=4.0)
    assert cells_from_membranes(interior, settings).max() == 1
    cells = cells_from_membranes(interior, settings, spacing=(2, 1, 1))
    assert cells.max() == 2 and cells.min() == 1
    assert len(np.unique(cells[:3])) == 1 and len(np.unique(cells[4:])) == 1 and cells[0, 0, 0] != cells[6, 0, 0]


def oblique_membrane_stack() -> np.ndarray:
    """4 sections of 40 x 40: a membrane between two cells that moves 3 px a section (cut obliquely)."""
    interior = np.full((4, 40, 40), 0.95, np.float32)
    for z in range(4):
        interior[z, :, 16 + 3 * z] = 0.05
    return interior


def test_thick_sections_get_cells_per_section_linked_across_sections():
    cells = cells_from_membranes(oblique_membrane_stack(), CellSettings(seed_distance=2.0), spacing=(10, 1, 1))
    assert cells.max() == 2
    assert all(cells[z, 5, 2] == cells[0, 5, 2] and cells[z, 5, 37] == cells[0, 5, 37] for z in range(4))
    assert cells[0, 5, 2] != cells[0, 5, 37]


def test_a_cell_that_leaves_the_stack_for_a_section_is_not_linked_through_it():
    """Section 2 is membrane on the left: the left cell of sections 0-1 and the one of section 3 have no
    overlap to link them, so they are two cells (one 3D component of the interior would be one as well)."""
    interior = oblique_membrane_stack()
    interior[2, :, :19] = 0.05
    cells = cells_from_membranes(interior, CellSettings(seed_distance=2.0), spacing=(10, 1, 1))
    assert cells[0, 5, 2] == cells[1, 5, 2] != cells[3, 5, 2]


def test_the_grid_of_a_section_stack_gives_the_cells_of_each_setting():
    interior = oblique_membrane_stack()
    interior[1, 20:22, 5:9] = 0.6  # a faint spot: some settings split it off
    for settings, cells in cells_over_grid(interior, 0.7, [1.0, 3.0], [0.2, 0.5], spacing=(10, 1, 1)):
        np.testing.assert_array_equal(cells, cells_from_membranes(interior, settings, spacing=(10, 1, 1)))


def hand_made_graph() -> RegionGraph:
    """Regions 1-4: 1-2 mean 0.1, 2-3 mean 0.2 (0.4 / 2), 1-3 mean 0.4 (0.4 / 1), 3-4 mean 0.35."""
    first, second = np.array([1, 2, 1, 3]), np.array([2, 3, 3, 4])
    return RegionGraph(4, first, second, np.array([0.1, 0.4, 0.4, 0.35]), np.array([1.0, 2.0, 1.0, 1.0]))


def test_union_find_merges_lowest_first_and_recomputes_means_as_sum_over_area():
    graph = hand_made_graph()
    graph.merge_below(0.15)  # only 1-2
    assert graph.find(1) == graph.find(2) != graph.find(3)
    root = graph.find(1)
    assert graph.mean(root, 3) == pytest.approx(0.8 / 3)  # not the mean of the means, 0.3
    graph.merge_below(0.3)  # 0.267 < 0.3: merged; a mean of means would not be
    assert graph.find(3) == graph.find(1) != graph.find(4)
    assert graph.lookup().tolist() == [0, 1, 1, 1, 2]
    graph.merge_below(0.36)
    assert graph.lookup().tolist() == [0, 1, 1, 1, 1]


def test_small_regions_join_the_neighbour_with_the_weakest_boundary():
    graph = hand_made_graph()
    graph.absorb_small(np.array([0, 100, 100, 5, 3]), min_size=10)  # 4 joins 3 (its only neighbour), then 3+4 (8)
    assert graph.find(4) == graph.find(3) == graph.find(2)  # ... joins 2 (0.2), not 1 (0.4)
    assert graph.find(1) != graph.find(2)


def test_the_grid_equals_the_single_calls():
    interior = two_cells_with_a_gap()
    for settings, cells in cells_over_grid(interior, 0.5, (1.0, 2.0), (0.0, 0.5)):
        assert np.array_equal(cells, cells_from_membranes(interior, settings))


def test_a_real_isbi_slice_beats_thresholding_and_is_fast(shared_data):
    label = read_image(shared_data / "isbi2012_em" / "train" / "label" / "0.png")
    truth = cells_from_isbi_label(label)
    rng = np.random.default_rng(0)
    interior = ndi.gaussian_filter((label > 0).astype(np.float32), 1.5)
    interior = ndi.gaussian_filter(np.clip(interior + rng.normal(0, 0.15, interior.shape), 0, 1), 1.0)
    interior = interior.astype(np.float32)
    cells_from_membranes(interior[:64, :64])  # imports
    start = time.perf_counter()
    cells = cells_from_membranes(interior)
    seconds = time.perf_counter() - start
    assert seconds < 10.0  # about 0.1 s; the bound only catches a per-pixel Python loop
    assert adapted_rand_error(truth, cells).error < 0.02
    assert adapted_rand_error(truth, cells).error < adapted_rand_error(truth, segments_from_probability(interior)).error


@pytest.mark.parametrize(
    ("interior", "spacing", "message"),
    [
        (np.zeros(5), None, "2D or 3D"),
        (np.full((4, 4), np.nan), None, "NaN"),
        (np.zeros((4, 4)), (1, 1, 1), "spacing"),
        (np.zeros((4, 4)), (1, 0), "spacing"),
    ],
)
def test_bad_input_is_one_line(interior, spacing, message):
    with pytest.raises(DataError, match=message):
        cells_from_membranes(interior, spacing=spacing)


def test_no_interior_is_one_cell():
    assert cells_from_membranes(np.zeros((8, 8), np.float32)).tolist() == np.ones((8, 8)).tolist()
