"""Task definitions, threshold parsing and how a prediction array is read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from biounet.errors import DataError
from biounet.evaluation.tasks import (
    TASK_METRICS,
    TASK_SELECTOR,
    TASKS,
    higher_is_better,
    is_binary,
    parse_thresholds,
    prediction_kind,
)
from biounet.metrics import DEFAULT_THRESHOLDS, METRICS, names


def test_every_task_metric_is_a_swept_metric_and_selectors_belong_to_their_task():
    for task in TASKS:
        assert all(m in METRICS for m in TASK_METRICS[task])
        assert TASK_SELECTOR[task] is None or TASK_SELECTOR[task] in TASK_METRICS[task]
    assert TASK_METRICS["isbi"][0] == names.ADAPTED_RAND_ERROR


def test_directions_including_per_class_names():
    assert not higher_is_better(names.ADAPTED_RAND_ERROR) and higher_is_better(names.F1)
    assert higher_is_better("dice_3") and higher_is_better("iou_0")


def test_parse_thresholds():
    assert parse_thresholds(None) == DEFAULT_THRESHOLDS
    assert parse_thresholds(["0.2:0.6:0.2"]) == (0.2, 0.4, 0.6)
    assert parse_thresholds(["0.3", "0.5"]) == (0.3, 0.5)
    for bad in (["0.1:0.9:0"], ["x"], ["1.5"]):
        with pytest.raises(DataError, match="--thresholds"):
            parse_thresholds(bad)


def test_prediction_kind():
    path = Path("p.tif")
    assert is_binary(np.array([0, 255, 255])) and not is_binary(np.array([0, 1, 2]))
    assert prediction_kind(np.array([0.2, 0.7], np.float32), "isbi", "auto", path) == "probability"
    assert prediction_kind(np.array([0, 3, 7], np.uint8), "isbi", "auto", path) == "probability"
    assert prediction_kind(np.array([0, 3, 7], np.uint8), "instances", "auto", path) == "labels"
    assert prediction_kind(np.array([0, 255], np.uint8), "isbi", "auto", path) == "binary"
    assert prediction_kind(np.array([0.0, 1.0], np.float32), "instances", "labels", path) == "binary"
    with pytest.raises(DataError, match="float values"):
        prediction_kind(np.array([0.0, 0.5, 2.0], np.float32), "instances", "labels", path)
