"""The one builder of a trained model's pipeline description."""

from __future__ import annotations

from biounet.data.targets import TargetConfig
from biounet.pipeline import CellSettings
from biounet.training.description import describe_target


def test_instance_target_description():
    entry = describe_target(TargetConfig(kind="instances"))
    assert entry.class_names == ["background", "interior", "boundary"]
    assert entry.interior_class == 1 and entry.foreground_classes == [1, 2]
    assert entry.style == "touching" and entry.threshold is None


def test_membrane_target_description_takes_the_settings_validation_chose():
    chosen = {"adapted_rand_error": 0.05, "threshold": 0.7}
    entry = describe_target(TargetConfig(kind="instances", style="membrane"), chosen)
    assert entry.class_names == ["membrane", "interior"] and entry.foreground_classes == [0, 1]
    assert entry.threshold == 0.7 and entry.min_size is None


def test_touching_objects_keep_the_seed_settings_and_foreground_threshold_validation_chose():
    chosen = {"average_precision": 0.6, "threshold": 0.3, "min_size": 32, "seed_height": 0.3,
              "foreground_threshold": 0.6}
    entry = describe_target(TargetConfig(kind="instances"), chosen)
    assert (entry.threshold, entry.min_size, entry.seed_height, entry.foreground_threshold) == (0.3, 32, 0.3, 0.6)


def test_semantic_target_description():
    entry = describe_target(TargetConfig(classes=[0, 128, 255]))
    assert entry.kind == "semantic" and entry.style is None and entry.interior_class is None
    assert entry.classes == [0, 128, 255] and entry.foreground_classes == [1, 2]


def test_membrane_cell_settings_chosen_by_validation_become_the_targets_cells():
    chosen = {"adapted_rand_error": 0.05, "threshold": 0.7, "cells_adapted_rand_error": 0.03,
              "cells_seed_distance": 4.0, "cells_merge_threshold": 0.5}
    entry = describe_target(TargetConfig(kind="instances", style="membrane"), chosen)
    assert entry.threshold == 0.7
    assert entry.cells == CellSettings(interior_threshold=0.7, seed_distance=4.0, merge_threshold=0.5)


def test_the_cells_own_interior_threshold_is_kept():
    chosen = {"threshold": 0.6, "cells_interior_threshold": 0.9, "cells_seed_distance": 1.0,
              "cells_merge_threshold": 0.7}
    entry = describe_target(TargetConfig(kind="instances", style="membrane"), chosen)
    assert entry.threshold == 0.6
    assert entry.cells == CellSettings(interior_threshold=0.9, seed_distance=1.0, merge_threshold=0.7)


def test_the_distance_output_is_described_after_the_classes():
    assert describe_target(TargetConfig(kind="instances", distance=True)).distance_channel == 3
    assert describe_target(TargetConfig(kind="instances")).distance_channel is None
    assert describe_target(TargetConfig(classes=[0, 1, 2, 3])).distance_channel is None
