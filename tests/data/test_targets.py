"""Mask values -> class targets: binary conventions, declared classes, touching cells, ISBI membranes."""

from __future__ import annotations

import numpy as np
import pytest

from biounet.data.targets import (
    TargetConfig,
    build_target,
    distance_target,
    instance_ids,
    membrane_target,
    semantic_target,
    touching_target,
)
from biounet.errors import DataError
from biounet.io.images import read_image


def two_touching_cells() -> np.ndarray:
    """Two 6x6 cells sharing the border between columns 7 and 8, in a 14x18 image."""
    instances = np.zeros((14, 18), dtype=np.int32)
    instances[4:10, 2:8] = 1
    instances[4:10, 8:14] = 2
    return instances


def test_touching_cells_are_separated_by_boundary_class():
    target = touching_target(two_touching_cells(), boundary_width=1)
    assert target[0, 0] == 0  # background
    assert target[6, 4] == 1 and target[6, 11] == 1  # interiors
    # the shared border: the last column of cell 1 and the first of cell 2 are boundary
    assert np.all(target[4:10, 7] == 2) and np.all(target[4:10, 8] == 2)
    # the interiors are no longer connected: two components of class 1
    from scipy import ndimage as ndi

    _, count = ndi.label(target == 1)
    assert count == 2
    # the outer ring of each cell is boundary too (inner mode: inside the cell)
    assert np.all(target[4, 2:14] == 2) and np.all(target[3, :] == 0)


def test_boundary_width_two_is_thicker():
    wide = touching_target(two_touching_cells(), boundary_width=2)
    assert np.all(wide[4:10, 6:10] == 2)
    assert wide[6, 4] == 1 and wide[5, 4] == 2
    assert np.count_nonzero(wide == 2) > np.count_nonzero(touching_target(two_touching_cells(), 1) == 2)


def test_touching_target_3d():
    instances = np.zeros((6, 8, 8), dtype=np.int32)
    instances[1:5, 1:7, 1:4] = 1
    instances[1:5, 1:7, 4:7] = 3
    target = touching_target(instances)
    assert target.shape == instances.shape
    assert np.all(target[2:4, 2:6, 3] == 2) and np.all(target[2:4, 2:6, 4] == 2)
    assert target[2, 3, 2] == 1


@pytest.mark.parametrize("high", [1, 255])
def test_binary_masks_0_1_and_0_255(high):
    mask = np.zeros((5, 5), dtype=np.uint8)
    mask[1:3, 1:3] = high
    target = semantic_target(mask, TargetConfig(), "m.png")
    assert target.classes.dtype == np.uint8
    assert set(np.unique(target.classes)) == {0, 1}
    assert target.convention == f"0/{high}"


def test_unexpected_values_are_named_with_the_file():
    mask = np.array([[0, 128], [255, 0]], dtype=np.uint8)
    with pytest.raises(DataError, match=r"masks/x\.png: unexpected mask values \{0, 128, 255\}.*--classes"):
        semantic_target(mask, TargetConfig(), "masks/x.png")


def test_declared_classes_map_values_to_indices():
    mask = np.array([[0, 128], [255, 128]], dtype=np.uint8)
    target = semantic_target(mask, TargetConfig(classes=[0, 255, 128]), "m")
    assert target.classes.tolist() == [[0, 2], [1, 2]]
    with pytest.raises(DataError, match=r"m: unexpected mask values \{7\}"):
        semantic_target(np.array([[0, 7]]), TargetConfig(classes=[0, 255, 128]), "m")


def test_float_masks_must_be_whole_numbers():
    with pytest.raises(DataError, match="non-integer"):
        semantic_target(np.array([[0.0, 0.5]]), TargetConfig(), "f.tif")


def test_instance_ids_from_binary_mask_are_components():
    mask = np.zeros((6, 9), dtype=np.uint8)
    mask[1:3, 1:3] = 255
    mask[1:3, 5:8] = 255
    instances, convention = instance_ids(mask)
    assert instances.max() == 2 and "connected components" in convention
    ids = np.zeros((4, 4), dtype=np.uint16)
    ids[0, 0], ids[3, 3] = 7, 9
    kept, convention = instance_ids(ids)
    assert set(np.unique(kept)) == {0, 7, 9} and convention == "instance ids"


def test_membrane_style_isbi_convention():
    label = np.full((7, 7), 255, dtype=np.uint8)
    label[3, :] = 0  # a membrane line splits two cells
    target = membrane_target(label, membrane_value=0)
    assert target.classes[3].tolist() == [0] * 7 and target.classes[0, 0] == 1
    assert target.instances.max() == 2 and np.all(target.instances[3] == 0)
    config = TargetConfig(kind="instances", style="membrane")
    assert config.num_classes == 2 and config.names == ["membrane", "interior"]
    assert config.foreground_classes == [0, 1] and config.interior_class == 1


def test_isbi_real_label_to_classes(shared_data):
    label = read_image(shared_data / "isbi2012_em" / "train" / "label" / "0.png")
    target = build_target(label, TargetConfig(kind="instances", style="membrane"), "0.png")
    membrane = np.mean(target.classes == 0)
    assert 0.1 < membrane < 0.35  # about 22 % membrane
    assert np.array_equal(target.classes == 1, label == 255)
    assert target.instances.max() > 20


def test_config_kinds_are_checked():
    with pytest.raises(ValueError):
        TargetConfig(kind="objects")


def test_membrane_target_accepts_cell_label_maps_with_zero_membrane():
    from biounet.data.targets import membrane_target

    mask = np.zeros((20, 20), np.uint16)
    mask[2:9, 2:18] = 7
    mask[10:18, 2:18] = 3
    target = membrane_target(mask, 0, "cells.tif")
    assert target.classes.tolist() == (mask > 0).astype(np.uint8).tolist()
    assert set(np.unique(target.instances)) == {0, 3, 7}
    assert "cell ids" in target.convention


def touching_discs() -> np.ndarray:
    """In a 40x60 image: discs 1 and 2 of radius 9 (centres (20, 20) and (20, 37)) that touch along the 9 rows of
    columns 28 | 29, and disc 3 of radius 6 centred on row 1, cut by the top edge."""
    yy, xx = np.mgrid[:40, :60]
    instances = np.zeros((40, 60), dtype=np.int32)
    instances[((yy - 20) ** 2 + (xx - 20) ** 2 <= 81) & (xx <= 28)] = 1
    instances[((yy - 20) ** 2 + (xx - 37) ** 2 <= 81) & (xx >= 29)] = 2
    instances[(yy - 1) ** 2 + (xx - 50) ** 2 <= 36] = 3
    return instances


def brute_force_distance(instances: np.ndarray) -> np.ndarray:
    """Each object pixel's distance to the nearest pixel outside its object, the ring beyond the image outside
    every object, over the object's largest: pairwise distances, no distance transform."""
    padded = np.pad(instances, 1, constant_values=-1)
    coords = np.argwhere(np.ones(padded.shape, bool))
    result = np.zeros(instances.shape, np.float64)
    for index in range(1, instances.max() + 1):
        inside = padded.ravel() == index
        gaps = np.sqrt(((coords[inside, None, :] - coords[None, ~inside, :]) ** 2).sum(-1)).min(1)
        own = coords[inside] - 1
        result[own[:, 0], own[:, 1]] = gaps / gaps.max()
    return result


def test_distance_target_of_touching_discs_is_one_at_the_centres_and_low_where_they_touch():
    instances = touching_discs()
    distance = distance_target(instances)
    assert distance.dtype == np.float32 and distance.shape == instances.shape
    np.testing.assert_allclose(distance, brute_force_distance(instances), atol=1e-6)
    assert distance[20, 20] == 1.0 and distance[20, 37] == 1.0  # the centres, each its disc's only maximum
    assert (distance[instances == 1] == 1.0).sum() == 1 and (distance[instances == 2] == 1.0).sum() == 1
    assert distance[20, 11] == pytest.approx(1 / 9)  # the leftmost pixel of disc 1: 1 pixel from outside, max 9
    touching = instances[:, 28] == 1
    assert touching.sum() == 9 and (instances[touching, 29] == 2).all()
    assert (distance[touching, 28] < 0.2).all() and (distance[touching, 29] < 0.2).all()  # both sides of the gap
    assert (distance[instances == 0] == 0).all() and (distance[instances > 0] > 0).all()


def test_distance_target_takes_the_image_edge_as_a_border():
    instances = touching_discs()
    distance = distance_target(instances)
    disc = instances == 3
    lowest = distance[disc].min()
    assert lowest < 0.3 and (distance[0][disc[0]] == pytest.approx(lowest))  # the cut row is its border
    peak = np.unravel_index(np.where(disc, distance, 0).argmax(), disc.shape)
    assert peak[0] >= 3  # pushed away from the edge: the centre row 1 is 2 pixels from it


def test_distance_target_measures_in_the_sampling():
    instances = np.zeros((9, 21), np.int32)
    instances[1:8, 1:20] = 1  # 7 x 19 pixels
    plain, coarse_y = distance_target(instances), distance_target(instances, sampling=(4.0, 1.0))
    assert plain[4, 2] < plain[4, 10] == 1.0  # isotropic: the short axis decides, the middle column is highest
    assert coarse_y[4, 2] == pytest.approx(2 / 10) and coarse_y[4, 10] == 1.0  # rows 4 apart: x now decides
