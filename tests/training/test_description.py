"""The one builder of a trained model's pipeline description."""

from __future__ import annotations

from biounet.data.targets import TargetConfig
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


def test_semantic_target_description():
    entry = describe_target(TargetConfig(classes=[0, 128, 255]))
    assert entry.kind == "semantic" and entry.style is None and entry.interior_class is None
    assert entry.classes == [0, 128, 255] and entry.foreground_classes == [1, 2]
