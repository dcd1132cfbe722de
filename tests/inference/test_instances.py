"""Instances from probabilities: touching cells are separated, every cell keeps its pixels."""

from __future__ import annotations

import numpy as np

from biounet.inference import instances_from_probabilities


def touching_discs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two overlapping discs (centres 18 px apart, radius 10) as 3-class probabilities, and their masks."""
    yy, xx = np.mgrid[:40, :60]
    a = (yy - 20) ** 2 + (xx - 20) ** 2 < 100
    b = (yy - 20) ** 2 + (xx - 38) ** 2 < 100
    foreground = a | b
    interior = ((yy - 20) ** 2 + (xx - 20) ** 2 < 49) | ((yy - 20) ** 2 + (xx - 38) ** 2 < 49)
    probs = np.zeros((3, 40, 60), np.float32)  # background, interior, boundary
    probs[0] = ~foreground
    probs[1] = interior * 0.9
    probs[2] = foreground & ~interior
    probs[2][interior] = 0.1
    return probs, a, b


def test_touching_discs_become_two_instances() -> None:
    probs, a, b = touching_discs()
    assert np.count_nonzero(a & b) > 0  # they really touch
    labels = instances_from_probabilities(probs, interior_class=1, foreground_classes=[1, 2])
    assert labels.dtype == np.int32
    assert set(np.unique(labels)) == {0, 1, 2}
    assert np.array_equal(labels > 0, a | b)  # grown back over the whole foreground
    left, right = labels[20, 20], labels[20, 38]
    assert left != right and left > 0 and right > 0
    assert np.mean(labels[a & ~b] == left) > 0.95 and np.mean(labels[b & ~a] == right) > 0.95


def test_foreground_everywhere_labels_every_pixel() -> None:
    """ISBI 2012 style: foreground = all classes, so the cells fill the image (membranes included)."""
    probs, _, _ = touching_discs()
    labels = instances_from_probabilities(probs, interior_class=1, foreground_classes=[0, 1, 2])
    assert np.all(labels > 0)
    assert len(np.unique(labels)) == 2


def test_small_seeds_are_dropped_and_unseeded_cells_kept() -> None:
    probs = np.zeros((2, 30, 30), np.float32)  # background, interior
    probs[0] = 1.0
    probs[:, 2:4, 2:4] = [[[0.0]], [[1.0]]]  # a 4-pixel seed: too small
    probs[:, 10:20, 10:20] = [[[0.0]], [[1.0]]]  # a real cell
    probs[:, 24:28, 24:28] = [[[0.45]], [[0.55]]]  # foreground but below the seed threshold
    labels = instances_from_probabilities(probs, 1, [1], threshold=0.6, min_size=8)
    assert labels[3, 3] == 0
    assert labels[15, 15] > 0 and labels[25, 25] > 0 and labels[15, 15] != labels[25, 25]
    assert len(np.unique(labels)) == 3
