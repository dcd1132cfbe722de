"""The distance targets of the training images (touching objects with data.target.distance)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_trainer import tiny_config, touching_sample

from biounet.data.readers import Sample
from biounet.data.targets import Target, distance_target, touching_target
from biounet.errors import DataError
from biounet.training.distances import attach_distance_maps, compute_distance_map

DISTANCE = {"data": {"target": {"kind": "instances", "distance": True}}}


def test_each_sample_gets_the_distance_map_of_its_whole_objects_once():
    config = tiny_config(DISTANCE)
    sample = touching_sample()
    attach_distance_maps([sample], config)
    distance = sample.distance
    assert distance.shape == (40, 40) and distance.dtype == np.float32
    np.testing.assert_array_equal(distance, distance_target(sample.target.instances))
    assert distance[20, 12] == 1.0 and distance[20, 27] == 1.0  # each cell's centre column, its boundary included
    assert distance[20, 19] < 0.2 and distance[20, 20] < 0.2 and distance[2, 2] == 0  # the touching columns
    kept = np.full((40, 40), 0.5, np.float32)
    sample.distance = kept
    attach_distance_maps([sample], config)
    assert sample.distance is kept  # not computed again


def test_distances_are_measured_in_the_data_spacing():
    instances = np.zeros((5, 12, 12), np.int32)
    instances[:, 1:11, 1:11] = 1  # 5 sections of 10 x 10 pixels, cut by the top and bottom of the stack
    sample = Sample("v", np.zeros((1, 5, 12, 12), np.float32), Target(touching_target(instances), instances),
                    Path("v.tif"))
    flat = {"data": {"target": {"kind": "instances", "distance": True}}, "model": {"spatial_dims": 3}}
    thick = {"data": {"target": {"kind": "instances", "distance": True}, "spacing": [10.0, 1.0, 1.0]},
             "model": {"spatial_dims": 3}}
    isotropic, anisotropic = (compute_distance_map(sample, tiny_config(c)) for c in (flat, thick))
    assert isotropic[2, 5, 5] == 1.0 and isotropic[0, 5, 5] == pytest.approx(1 / 3)  # z decides: 3 sections
    assert anisotropic[0, 5, 5] == anisotropic[2, 5, 5] == 1.0  # sections 10 pixels apart: y and x decide


def test_a_sample_without_instances_is_refused_naming_its_file():
    classes = np.zeros((8, 8), np.uint8)
    sample = Sample("s", np.zeros((1, 8, 8), np.float32), Target(classes), Path("s.png"), Path("masks/s.png"))
    with pytest.raises(DataError, match="masks/s.png: no instance map"):
        attach_distance_maps([sample], tiny_config(DISTANCE))
