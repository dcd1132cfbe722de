"""The pipeline description saved in every model: typed, versioned, and old model files still read."""

from __future__ import annotations

import json

import pytest

from biounet.data.normalization import NormalizationConfig
from biounet.pipeline import SCHEMA_VERSION, CellSettings, Pipeline, TargetDescription, TrainingRecord

#: A model's pipeline as biounet wrote it before the schema had a version (a DSB run of that time).
UNVERSIONED = {
    "normalization": {"method": "percentile", "low": 1.0, "high": 99.8, "per_channel": True},
    "channel_axis": None,
    "channels": None,
    "target": {
        "kind": "instances",
        "style": "touching",
        "class_names": ["background", "interior", "boundary"],
        "interior_class": 1,
        "foreground_classes": [1, 2],
        "classes": None,
        "threshold": 0.6,
        "min_size": 16,
    },
    "tile_shape": [256, 256],
    "training": {"recipe": "default", "steps": 751, "best_step": 750,
                 "validation": {"f1": 0.9, "threshold": 0.6, "min_size": 16}, "precision": "fp32"},
}


def test_round_trip_through_json():
    pipeline = Pipeline(
        normalization=NormalizationConfig(method="zscore"),
        target=TargetDescription(kind="semantic", class_names=["bg", "a", "b"], classes=[0, 128, 255]),
        channel_axis="last",
        channels=[0, 2],
        tile_shape=[128, 128],
        training=TrainingRecord(recipe="paper", steps=10, best_step=5, validation={"dice": 0.5}, precision="bf16"),
    )
    data = json.loads(json.dumps(pipeline.to_dict()))
    assert data["schema_version"] == SCHEMA_VERSION
    assert Pipeline.from_dict(data) == pipeline


def test_unversioned_layout_reads_as_before():
    pipeline = Pipeline.from_dict(UNVERSIONED)
    assert pipeline.target.kind == "instances" and pipeline.target.foreground_classes == [1, 2]
    assert pipeline.target.seed_settings() == (0.6, 16)
    assert pipeline.normalization == NormalizationConfig()
    assert pipeline.training.best_step == 750 and pipeline.tile_shape == [256, 256]
    assert Pipeline.from_dict(pipeline.to_dict()) == pipeline


def test_a_bare_model_has_the_default_normalisation_and_no_target():
    for empty in (None, {}):
        pipeline = Pipeline.from_dict(empty)
        assert pipeline.target is None and pipeline.normalization.method == "percentile"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"colour": "red"}, "pipeline: unknown entry colour"),
        ({"target": {"kind": "semantic", "seeds": 3}}, "target: unknown entry seeds"),
        ({"training": {"epochs": 3}}, "training: unknown entry epochs"),
        ({"normalization": {"method": "percentile", "lo": 2}}, "normalization"),
        ({"schema_version": SCHEMA_VERSION + 1}, "newer than this biounet reads"),
        ({"target": {"kind": "instances", "cells": {"seed": 2}}}, "target cells: unknown entry seed"),
        ({"target": {"kind": "instances", "cells": 3}}, "target cells: expected a mapping"),
    ],
)
def test_unknown_entries_and_newer_schemas_are_refused(data, message):
    with pytest.raises(ValueError, match=message):
        Pipeline.from_dict(data)


def test_seed_settings_prefer_the_caller_then_the_model_then_the_defaults():
    target = TargetDescription(kind="instances", interior_class=1, threshold=0.7, min_size=32)
    assert target.seed_settings() == (0.7, 32)
    assert target.seed_settings(0.4, None) == (0.4, 32)
    assert TargetDescription(kind="instances").seed_settings() == (0.5, 8)


def test_updated_overrides_top_level_entries_only():
    pipeline = Pipeline.from_dict(UNVERSIONED)
    plain = pipeline.updated({"normalization": {"method": "none"}})
    assert plain.normalization.method == "none" and plain.target == pipeline.target
    assert pipeline.normalization.method == "percentile"  # the original is unchanged
    other = Pipeline(tile_shape=[8, 8])
    assert pipeline.updated(other) == other


#: A membrane model's pipeline as biounet wrote it with schema 1 (no cell settings).
SCHEMA_1_MEMBRANES = {
    "schema_version": 1,
    "normalization": {"method": "percentile", "low": 1.0, "high": 99.8, "per_channel": True},
    "target": {"kind": "instances", "style": "membrane", "class_names": ["membrane", "interior"],
               "interior_class": 1, "foreground_classes": [0, 1], "classes": None, "threshold": 0.7,
               "min_size": None},
}


def test_schema_1_reads_and_its_cells_are_the_defaults_at_its_threshold():
    target = Pipeline.from_dict(SCHEMA_1_MEMBRANES).target
    assert target.cells is None
    assert target.cell_settings() == CellSettings(interior_threshold=0.7)
    assert target.cell_settings(0.4).interior_threshold == 0.4


def test_cell_settings_round_trip_typed():
    cells = CellSettings(interior_threshold=0.6, seed_distance=3.0, merge_threshold=0.5, min_size=20)
    pipeline = Pipeline(target=TargetDescription(kind="instances", style="membrane", interior_class=1, cells=cells))
    data = json.loads(json.dumps(pipeline.to_dict()))
    assert data["schema_version"] == SCHEMA_VERSION and data["target"]["cells"]["seed_distance"] == 3.0
    read = Pipeline.from_dict(data)
    assert read == pipeline and isinstance(read.target.cells, CellSettings)
    assert read.target.cell_settings() == cells
