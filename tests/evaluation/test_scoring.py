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
