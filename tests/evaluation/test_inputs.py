"""Reading prediction and ground-truth files; the interior class from a ``biounet predict`` sidecar."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from biounet.errors import DataError
from biounet.evaluation.inputs import (
    as_probability,
    class_probabilities_to_map,
    ground_truth_labels,
    read_plane_image,
    sidecar_target,
)
from biounet.io.images import write_image


def test_grey_rgb_png_becomes_one_channel_and_colour_is_refused(tmp_path):
    grey = np.stack([np.arange(16, dtype=np.uint8).reshape(4, 4)] * 3, axis=-1)
    write_image(tmp_path / "grey.png", grey)
    assert read_plane_image(tmp_path / "grey.png").shape == (4, 4)
    grey[0, 0, 1] = 200
    write_image(tmp_path / "colour.png", grey)
    with pytest.raises(DataError, match="colour"):
        read_plane_image(tmp_path / "colour.png")


def test_class_probabilities_use_the_sidecar_target(tmp_path):
    gt = np.zeros((4, 4), np.uint8)
    probs = np.stack([np.full((4, 4), 0.9), np.full((4, 4), 0.1)]).astype(np.float32)
    path = tmp_path / "7_probabilities.tif"
    assert class_probabilities_to_map(probs, gt, "isbi", path)[0, 0] == pytest.approx(0.1)  # no sidecar: class 1
    Path(str(path) + ".json").write_text(json.dumps({"model": {"target": {"kind": "instances", "interior_class": 0}}}))
    assert sidecar_target(path).interior_class == 0
    assert class_probabilities_to_map(probs, gt, "isbi", path)[0, 0] == pytest.approx(0.9)
    assert class_probabilities_to_map(probs, gt, "semantic", path).tolist() == np.zeros((4, 4)).tolist()
    with pytest.raises(DataError, match="--output instances"):
        class_probabilities_to_map(probs, gt, "instances", path)


def test_a_sidecar_target_that_does_not_parse_is_ignored(tmp_path):
    path = tmp_path / "p.tif"
    Path(str(path) + ".json").write_text(json.dumps({"model": {"target": {"interior_class": 0, "colour": "red"}}}))
    assert sidecar_target(path) is None
    probs = np.stack([np.full((2, 2), 0.9), np.full((2, 2), 0.1)]).astype(np.float32)
    assert class_probabilities_to_map(probs, np.zeros((2, 2)), "isbi", path)[0, 0] == pytest.approx(0.1)
    three = np.zeros((3, 2, 2), np.float32)
    with pytest.raises(DataError, match="3 class probabilities"):
        class_probabilities_to_map(three, np.zeros((2, 2)), "isbi", path)


def test_probabilities_and_ground_truth():
    path = Path("x.tif")
    assert as_probability(np.array([0, 255], np.uint8), path).tolist() == [0.0, 1.0]
    with pytest.raises(DataError, match="outside"):
        as_probability(np.array([0.0, 2.0], np.float32), path)
    label = np.array([[255, 0, 255]], np.uint8)
    assert ground_truth_labels(label, "isbi", path).tolist() == [[1, 0, 2]]  # cells are components
    assert ground_truth_labels(label, "semantic", path).tolist() == [[1, 0, 1]]
    with pytest.raises(DataError, match="instance ids"):
        ground_truth_labels(np.array([0.0, 0.5, 1.0]), "instances", path)


@pytest.mark.parametrize("task", ["isbi", "instances", "semantic"])
def test_negative_ground_truth_labels_are_refused(task):
    labels = np.zeros((8, 8), np.int16)
    labels[:4] = 3
    labels[6:, 6:] = -5
    with pytest.raises(DataError, match=r"gt.tif: 4 pixels of this ground truth have negative values \(lowest -5\)"):
        ground_truth_labels(labels, task, Path("gt.tif"))


def test_negative_predicted_labels_are_refused_by_the_scorer(tmp_path):
    from biounet.evaluation.scoring import score_files
    from biounet.io.images import write_image

    truth = np.zeros((16, 16), np.int32)
    truth[2:8, 2:8] = 1
    pred = truth.copy()
    pred[10:, 10:] = -2
    write_image(tmp_path / "gt.tif", truth)
    write_image(tmp_path / "pred.tif", pred)
    with pytest.raises(DataError, match="pred.tif: 36 pixels of this prediction have negative values"):
        score_files("a", tmp_path / "pred.tif", tmp_path / "gt.tif", task="instances", thresholds=(0.5,))
