"""The metrics on real ISBI 2012 labels: ground truth against itself and against eroded/dilated cells."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from biounet.io.images import read_image
from biounet.metrics import (
    adapted_rand_error,
    cells_from_isbi_label,
    pixel_error,
    segments_from_probability,
    sweep_metrics,
    variation_of_information,
    warping_error,
)

CROSS = ndi.generate_binary_structure(2, 1)


@pytest.fixture(scope="module", params=[0, 21])
def isbi_label(request, shared_data) -> np.ndarray:
    label = read_image(shared_data / "isbi2012_em" / "train" / "label" / f"{request.param}.png")
    assert label.shape == (512, 512) and set(np.unique(label)) == {0, 255}
    return label


def scores(label: np.ndarray, interior: np.ndarray) -> dict[str, float]:
    cells = cells_from_isbi_label(label)
    warp = warping_error(label > 0, interior)
    return {
        "pixel": pixel_error(label > 0, interior),
        "rand": adapted_rand_error(cells, segments_from_probability(interior, 0.5)).error,
        "rand_raw": adapted_rand_error(cells, segments_from_probability(interior, 0.5, grow=False)).error,
        "vi": variation_of_information(cells, segments_from_probability(interior, 0.5)).total,
        "warp": warp.error,
        "merges": warp.merges,
        "splits": warp.splits,
    }


def test_ground_truth_against_itself_is_perfect(isbi_label):
    perfect = scores(isbi_label, isbi_label > 0)
    assert perfect == {"pixel": 0.0, "rand": 0.0, "rand_raw": 0.0, "vi": 0.0, "warp": 0.0, "merges": 0, "splits": 0}


def test_eroded_cells_cost_pixels_but_little_topology(isbi_label):
    eroded = scores(isbi_label, ndi.binary_erosion(isbi_label > 0, CROSS))
    assert eroded["pixel"] > 0.03  # a one-pixel rim of every cell
    assert eroded["warp"] < eroded["pixel"] / 20  # mostly boundary shifts, which warp away
    assert eroded["merges"] == 0 and eroded["splits"] > 0  # thinner cells can only break at necks
    assert eroded["rand"] < 0.01 < eroded["rand_raw"]  # growing undoes the thicker boundary


def test_dilated_cells_merge_through_thin_membranes(isbi_label):
    once = scores(isbi_label, ndi.binary_dilation(isbi_label > 0, CROSS))
    twice = scores(isbi_label, ndi.binary_dilation(isbi_label > 0, CROSS, iterations=2))
    assert once["splits"] == 0 and 0 < once["merges"] < twice["merges"]
    assert 0 < once["rand"] < twice["rand"]
    assert once["warp"] < once["pixel"] / 20


def test_sweep_on_a_blurred_label_prefers_a_middle_threshold(isbi_label, rng):
    prob = ndi.gaussian_filter((isbi_label > 0).astype(np.float32), 1.0)
    prob = np.clip(prob + rng.normal(0, 0.05, prob.shape), 0, 1)
    sweeps = sweep_metrics(prob, cells_from_isbi_label(isbi_label), ("adapted_rand_error", "pixel_error"))
    assert 0.3 <= sweeps["pixel_error"].best_threshold <= 0.7
    assert sweeps["adapted_rand_error"].best_value < 0.1
    assert sweeps["adapted_rand_error"].values[0] > sweeps["adapted_rand_error"].best_value
