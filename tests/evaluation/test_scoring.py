"""Every metric of one pair: per-threshold curves, the reported selection and the secondary numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from biounet.evaluation.scoring import evaluate_pair, score_files, semantic_classes
from biounet.io.images import write_image
from biounet.metrics import names


def grid_label(size: int = 48, cell: int = 16) -> np.ndarray:
    label = np.full((size, size), 255, np.uint8)
    label[::cell, :] = 0
    label[:, ::cell] = 0
    return label


def test_a_perfect_probability_map_scores_zero_error_at_every_metric(tmp_path):
    label = grid_label()
    write_image(tmp_path / "gt.png", label)
    write_image(tmp_path / "p.tif", np.where(label > 0, 0.8, 0.2).astype(np.float32))
    result = score_files("p", tmp_path / "p.tif", tmp_path / "gt.png", task="isbi", thresholds=(0.1, 0.5, 0.9))
    assert result.pred_kind == "probability" and result.thresholds == (0.1, 0.5, 0.9)
    row = result.row()
    for metric in (names.ADAPTED_RAND_ERROR, names.VARIATION_OF_INFORMATION, names.WARPING_ERROR, names.PIXEL_ERROR):
        assert row[metric] == 0.0 and row[names.threshold_key(metric)] == 0.5
    assert row["rand_split"] == 1.0 and row["merges"] == 0


def test_instance_labels_one_selection_and_counts():
    gt = np.zeros((32, 32), np.int32)
    gt[2:10, 2:10], gt[15:25, 15:25] = 1, 2
    pred = np.where(gt == 1, 5, 0).astype(np.int32)
    result = evaluate_pair(
        "x", pred, gt, task="instances", pred_kind="labels", thresholds=(0.5,), warping=True, pred_path=Path("x")
    )
    row = result.row()
    assert row[names.F1] == pytest.approx(2 / 3) and (row["n_gt"], row["n_pred"]) == (2, 1)
    assert result.thresholds is None and names.threshold_key(names.F1) not in row


def test_semantic_classes_per_class_scores():
    gt = np.array([[0, 1], [1, 2]])
    result = semantic_classes("s", gt.copy(), gt)
    assert result.row()["dice_2"] == 1.0 and result.row()[names.PIXEL_ERROR] == 0.0


def test_a_probability_map_also_scores_its_cells_at_the_sidecars_settings(tmp_path):
    """A faint gap merges two thresholded segments at every threshold but not two cells; the cells use the
    settings of the model in the sidecar (here a merge threshold that joins every cell), else the defaults."""
    import json
    from dataclasses import asdict

    from biounet.pipeline import CellSettings

    label = grid_label()
    write_image(tmp_path / "gt.png", label)
    interior = np.where(label > 0, 0.8, 0.2).astype(np.float32)
    interior[16, 8] = 0.8  # one pixel of a membrane missing
    write_image(tmp_path / "p.tif", interior)
    result = score_files("p", tmp_path / "p.tif", tmp_path / "gt.png", task="isbi", thresholds=(0.1, 0.5, 0.9))
    row = result.row()
    assert row[names.ADAPTED_RAND_ERROR] > 0.01 and row[names.CELLS_ADAPTED_RAND_ERROR] == 0.0
    assert names.threshold_key(names.CELLS_ADAPTED_RAND_ERROR) not in row

    cells = asdict(CellSettings(merge_threshold=1.0))
    target = {"kind": "instances", "style": "membrane", "interior_class": 1, "cells": cells}
    (tmp_path / "p.tif.json").write_text(json.dumps({"model": {"target": target}}))
    merged = score_files("p", tmp_path / "p.tif", tmp_path / "gt.png", task="isbi", thresholds=(0.5,)).row()
    assert merged[names.CELLS_ADAPTED_RAND_ERROR] > 0.5
    assert merged[names.ADAPTED_RAND_ERROR] == row[names.ADAPTED_RAND_ERROR]


# Per-class Dice and IoU of multi-class maps (issue 19).  Three classes on a 4x4 map, counted by hand:
#   class 0: |G| 4, |P| 4, |G∩P| 3 -> Dice 6/8,   IoU 3/5
#   class 1: |G| 4, |P| 5, |G∩P| 4 -> Dice 8/9,   IoU 4/5
#   class 2: |G| 8, |P| 7, |G∩P| 7 -> Dice 14/15, IoU 7/8
THREE_GT = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2], [2, 2, 2, 2]])
THREE_PRED = np.array([[0, 1, 1, 1], [0, 0, 1, 1], [2, 2, 2, 0], [2, 2, 2, 2]])


def test_per_class_dice_and_iou_of_three_classes_by_hand():
    row = semantic_classes("s", THREE_PRED, THREE_GT, range(3), ["bg", "a", "b"]).row()
    expected_dice, expected_iou = (6 / 8, 8 / 9, 14 / 15), (3 / 5, 4 / 5, 7 / 8)
    for c in range(3):
        assert row[f"dice_{c}"] == pytest.approx(expected_dice[c]) and row[f"iou_{c}"] == pytest.approx(expected_iou[c])
    assert row[names.PIXEL_ERROR] == pytest.approx(2 / 16)


def test_class_probabilities_of_three_classes_are_scored_per_class_without_binarising(tmp_path):
    """A (3, Y, X) probability output is its arg-max; a ground truth holding only classes 0 and 2 stays 0/2
    (a binary mask is classes 0/1 only when there are two classes)."""
    gt = np.where(THREE_GT == 1, 0, THREE_GT).astype(np.uint8)  # classes 0 and 2 only
    probabilities = np.stack([THREE_PRED == c for c in range(3)]).astype(np.float32) * 0.8 + 0.1
    write_image(tmp_path / "gt.tif", gt)
    np.save(tmp_path / "p.npy", probabilities)
    row = score_files("p", tmp_path / "p.npy", tmp_path / "gt.tif", task="semantic", thresholds=(0.5,)).row()
    assert row["dice_2"] == pytest.approx(14 / 15)  # |G| 8, |P| 7, |G∩P| 7
    assert row["dice_1"] == 0.0 and row["dice_0"] == pytest.approx(2 * 3 / (8 + 4))  # class 1: |G| 0, |P| 5


def test_a_semantic_sidecar_maps_mask_values_to_classes_and_refuses_others(tmp_path):
    import json

    from biounet.errors import DataError

    target = {"kind": "semantic", "class_names": ["bg", "nucleus", "cytoplasm"], "classes": [0, 128, 255]}
    write_image(tmp_path / "p_labels.tif", THREE_PRED.astype(np.uint8))
    (tmp_path / "p_labels.tif.json").write_text(json.dumps({"model": {"target": target}}))
    write_image(tmp_path / "gt.tif", np.array([0, 128, 255], np.uint8)[THREE_GT])
    result = score_files("p", tmp_path / "p_labels.tif", tmp_path / "gt.tif", task="semantic", thresholds=(0.5,))
    assert result.row()["dice_1"] == pytest.approx(8 / 9)
    assert result.class_names == dict(enumerate(target["class_names"]))
    write_image(tmp_path / "bad.tif", np.full((4, 4), 7, np.uint8))
    with pytest.raises(DataError, match="bad.tif.*none of the model's classes"):
        score_files("p", tmp_path / "p_labels.tif", tmp_path / "bad.tif", task="semantic", thresholds=(0.5,))
