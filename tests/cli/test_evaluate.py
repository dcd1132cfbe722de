"""``biounet evaluate`` run as a real subprocess on files written to a temporary folder."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from biounet.io.images import write_image


def biounet(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "biounet", *map(str, args)], capture_output=True, text=True, timeout=120
    )


def membrane_label(size: int = 96, cell: int = 24, membrane: int = 3) -> np.ndarray:
    """ISBI-style label: 255 = cell interior on a grid, 0 = membrane."""
    label = np.full((size, size), 255, np.uint8)
    for k in range(0, size + 1, cell):
        label[max(k - 1, 0) : k - 1 + membrane, :] = 0
        label[:, max(k - 1, 0) : k - 1 + membrane] = 0
    return label


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("biounet: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def isbi_folders(tmp_path: Path, rng) -> tuple[Path, Path]:
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    label = membrane_label()
    write_image(gt_dir / "0.png", label)
    write_image(gt_dir / "1.png", label)
    write_image(gt_dir / "only_gt.png", label)
    perfect = np.where(label > 0, 0.8, 0.2).astype(np.float32)
    write_image(pred_dir / "0.tif", perfect)  # float probability of interior
    gap = perfect.copy()
    gap[30:34, 22:27] = 0.8  # a gap in the membrane merges two cells at every threshold
    write_image(pred_dir / "1.png", (gap * 255).round().astype(np.uint8))  # 8-bit probability
    write_image(pred_dir / "only_pred.tif", perfect)
    return pred_dir, gt_dir


def test_isbi_folders_table_json_and_csv(isbi_folders, tmp_path):
    pred_dir, gt_dir = isbi_folders
    out_json, out_csv = tmp_path / "out" / "scores.json", tmp_path / "out" / "scores.csv"
    result = biounet("evaluate", pred_dir, gt_dir, "--task", "isbi", "--json", out_json, "--csv", out_csv)
    assert result.returncode == 0, result.stderr
    header, *rows = [line.split() for line in result.stdout.splitlines() if line and not line.startswith("-")]
    assert header[:3] == ["image", "rand_err", "@t"] and "warp_err" in header and "pixel_err" in header
    assert [row[0] for row in rows] == ["0", "1", "mean"]
    assert "only_pred.tif" in result.stderr and "only_gt.png" in result.stderr  # unmatched, reported

    report = json.loads(out_json.read_text())
    assert report["task"] == "isbi" and report["thresholds"] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    perfect, gap = report["images"]
    assert (perfect["image"], gap["image"]) == ("0", "1")
    for key in ("adapted_rand_error", "variation_of_information", "warping_error", "pixel_error"):
        assert perfect[key] == 0.0
        assert 0.2 <= perfect[f"{key}_threshold"] <= 0.7
    assert gap["adapted_rand_error"] > 0.01 and gap["rand_merge"] < 1.0 and gap["rand_split"] == 1.0
    assert gap["merges"] == 1 and gap["warping_error"] > 0
    assert report["mean"]["adapted_rand_error"] == pytest.approx(gap["adapted_rand_error"] / 2)
    assert report["unmatched_predictions"] == [str(pred_dir / "only_pred.tif")]
    assert report["unmatched_ground_truth"] == [str(gt_dir / "only_gt.png")]

    with open(out_csv, newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [row["image"] for row in table] == ["0", "1", "mean"]
    assert float(table[1]["adapted_rand_error"]) == pytest.approx(gap["adapted_rand_error"])


def test_instances_files_and_thresholds(tmp_path):
    gt = np.zeros((64, 64), np.uint16)
    gt[5:20, 5:20], gt[30:50, 30:45], gt[40:60, 5:25] = 4, 9, 17
    pred = gt.copy()
    pred[40:60, 5:25] = 0  # one nucleus missed
    write_image(tmp_path / "gt.tif", gt)
    write_image(tmp_path / "pred.tif", pred)
    out = tmp_path / "scores.json"
    result = biounet("evaluate", tmp_path / "pred.tif", tmp_path / "gt.tif", "--task", "instances", "--json", out)
    assert result.returncode == 0, result.stderr
    row = json.loads(out.read_text())["images"][0]
    assert row["average_precision"] == pytest.approx(2 / 3) and row["f1"] == pytest.approx(0.8)
    assert (row["n_gt"], row["n_pred"], row["precision"], row["recall"]) == (3, 2, 1.0, pytest.approx(2 / 3))

    prob = (gt > 0).astype(np.float32) * 0.7 + 0.1
    np.save(tmp_path / "prob.npy", prob)
    result = biounet(
        "evaluate", tmp_path / "prob.npy", tmp_path / "gt.tif", "--task", "instances",
        "--thresholds", "0.2:0.6:0.2", "--json", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["thresholds"] == [0.2, 0.4, 0.6] and report["images"][0]["average_precision"] == 1.0


def test_semantic_binary_masks(tmp_path):
    gt = np.zeros((32, 32), np.uint8)
    gt[8:24, 8:24] = 255
    pred = np.zeros_like(gt)
    pred[8:24, 8:20] = 255  # 3/4 of the square found
    write_image(tmp_path / "gt.png", gt)
    write_image(tmp_path / "pred.png", pred)
    out = tmp_path / "scores.csv"
    result = biounet("evaluate", tmp_path / "pred.png", tmp_path / "gt.png", "--task", "semantic", "--csv", out)
    assert result.returncode == 0, result.stderr
    with open(out, newline="") as handle:
        row = next(csv.DictReader(handle))
    assert float(row["dice_1"]) == pytest.approx(2 * 192 / (256 + 192))
    assert float(row["iou_1"]) == pytest.approx(192 / 256)
    assert float(row["pixel_error"]) == pytest.approx(64 / 1024)


def test_bad_input_gives_one_line_errors(tmp_path):
    label = membrane_label()
    write_image(tmp_path / "gt.png", label)
    write_image(tmp_path / "small.tif", np.zeros((32, 32), np.float32))
    result = biounet("evaluate", tmp_path / "small.tif", tmp_path / "gt.png")
    assert_one_line_error(result, "small.tif", "gt.png", "shape")

    write_image(tmp_path / "float_labels.tif", label.astype(np.float32) / 255 * 7)
    result = biounet("evaluate", tmp_path / "float_labels.tif", tmp_path / "gt.png", "--task", "instances")
    assert_one_line_error(result, "float_labels.tif", "float")

    (tmp_path / "empty.png").write_bytes(b"")
    assert_one_line_error(biounet("evaluate", tmp_path / "empty.png", tmp_path / "gt.png"), "empty.png", "empty")
    assert_one_line_error(biounet("evaluate", tmp_path / "nope.png", tmp_path / "gt.png"), "nope.png")


def test_help_explains_the_tasks():
    result = biounet("evaluate", "--help")
    assert result.returncode == 0
    for text in ("--task", "isbi", "instances", "semantic", "--thresholds", "--json", "--csv", "membrane"):
        assert text in result.stdout


def test_predict_outputs_pair_by_name_and_class_probabilities_use_the_interior(tmp_path):
    """`biounet predict` writes NAME_probabilities.tif (K, Y, X) + sidecar; evaluate pairs and scores it."""
    import json
    import subprocess
    import sys

    import numpy as np
    import tifffile
    from PIL import Image

    gt = np.full((64, 64), 255, np.uint8)
    gt[:, 30:33] = 0  # a membrane splitting two cells
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    Image.fromarray(gt).save(tmp_path / "gt" / "7.png")
    interior = (gt > 0).astype(np.float32)
    probabilities = np.stack([1 - interior, interior])[::-1]  # class 0 = interior here, as the sidecar says
    tifffile.imwrite(tmp_path / "pred" / "7_probabilities.tif", probabilities)
    sidecar = {"model": {"target": {"interior_class": 0}}}
    (tmp_path / "pred" / "7_probabilities.tif.json").write_text(json.dumps(sidecar))
    proc = subprocess.run(
        [sys.executable, "-m", "biounet", "evaluate", str(tmp_path / "pred"), str(tmp_path / "gt"), "--task", "isbi",
         "--json", str(tmp_path / "scores.json"), "--quiet"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    scores = json.loads((tmp_path / "scores.json").read_text())
    text = json.dumps(scores)
    assert '"7"' in text
    assert scores["mean"]["adapted_rand_error"] == 0.0


def test_isbi_probability_maps_also_report_the_cells_rand_error(isbi_folders, tmp_path):
    """Beside the threshold protocol, the cells of :mod:`biounet.inference.cells` (a column, not swept)."""
    pred_dir, gt_dir = isbi_folders
    out_json = tmp_path / "scores.json"
    result = biounet("evaluate", pred_dir, gt_dir, "--task", "isbi", "--no-warping", "--json", out_json)
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0].split()
    assert header.index("cells_rand_err") == header.index("pixel_err") + 2  # after pixel_err and its @t
    perfect, gap = json.loads(out_json.read_text())["images"]
    assert perfect["cells_adapted_rand_error"] == 0.0 and "cells_adapted_rand_error_threshold" not in perfect
    assert gap["cells_adapted_rand_error"] < gap["adapted_rand_error"]  # the gap merges segments, not cells


def test_semantic_3d_per_class_table_with_the_sidecars_class_names(tmp_path):
    """Two 3D volumes (2, 4, 4) of three classes; Dice per class per image and the mean, counted by hand.

    Volume "a": slice 0 has the errors below, slice 1 is perfect: class 0 |G| 8 |P| 8 |G∩P| 7 -> 14/16,
    class 1 8/9/8 -> 16/17, class 2 16/15/15 -> 30/31.  Volume "b" is perfect without class 1 (NaN there, left
    out of the mean).  GT holds the mask values 0/128/255 that the sidecar declares as classes 0/1/2.
    """
    gt2 = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2], [2, 2, 2, 2]])
    pred2 = np.array([[0, 1, 1, 1], [0, 0, 1, 1], [2, 2, 2, 0], [2, 2, 2, 2]])
    values = np.array([0, 128, 255], np.uint8)
    target = {"kind": "semantic", "class_names": ["background", "nucleus", "cytoplasm"], "classes": [0, 128, 255]}
    volumes = {"a": (np.stack([gt2, gt2]), np.stack([pred2, gt2])), "b": (np.stack([gt2 * 0, gt2 // 2 * 2]),) * 2}
    for name, (gt, pred) in volumes.items():
        write_image(tmp_path / "gt" / f"{name}.tif", values[gt])
        write_image(tmp_path / "pred" / f"{name}_labels.tif", pred.astype(np.uint8))
        (tmp_path / "pred" / f"{name}_labels.tif.json").write_text(json.dumps({"model": {"target": target}}))
    out_json, out_csv = tmp_path / "s.json", tmp_path / "s.csv"
    result = biounet("evaluate", tmp_path / "pred", tmp_path / "gt", "--task", "semantic",
                     "--json", out_json, "--csv", out_csv)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(out_json.read_text())
    a, b = report["images"]
    assert (a["dice_0"], a["dice_1"], a["dice_2"]) == pytest.approx((14 / 16, 16 / 17, 30 / 31))
    assert b["dice_1"] is None and b["dice_2"] == 1.0
    per_class = {row["name"]: row for row in report["per_class"]}
    assert per_class["nucleus"]["dice"] == pytest.approx(16 / 17) and per_class["nucleus"]["images"] == 1
    assert per_class["cytoplasm"]["dice"] == pytest.approx((30 / 31 + 1) / 2)
    assert report["mean"]["dice_0"] == pytest.approx((14 / 16 + 1) / 2)
    assert "cytoplasm" in result.stdout and "per class" in result.stdout
    with open(out_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["image"] for r in rows] == ["a", "b", "mean"] and float(rows[0]["iou_1"]) == pytest.approx(8 / 9)


def test_class_names_flag_and_isbi_refuses_a_semantic_models_probabilities(tmp_path):
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2], [2, 2, 2, 2]], np.uint8)
    write_image(tmp_path / "gt.tif", gt)
    write_image(tmp_path / "p.tif", gt)
    result = biounet("evaluate", tmp_path / "p.tif", tmp_path / "gt.tif", "--task", "semantic",
                     "--class-names", "bg", "x", "y")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [line.split()[1] for line in result.stdout.splitlines()[-3:]] == ["bg", "x", "y"]
    probabilities = np.stack([gt == c for c in range(3)]).astype(np.float32)
    np.save(tmp_path / "q.npy", probabilities)
    (tmp_path / "q.npy.json").write_text(json.dumps({"model": {"target": {"kind": "semantic"}}}))
    assert_one_line_error(biounet("evaluate", tmp_path / "q.npy", tmp_path / "gt.tif"), "q.npy", "--task semantic")


def test_instances_report_ap50_beside_the_dsb_mean_ap(tmp_path):
    """Two true objects, one found with IoU 56/64 = 0.875 and one false object: AP50 = 1/3 (TP 1, FP 1, FN 1),
    the DSB mean AP 8/10 of that (matched at IoU 0.5..0.85), F1 1/2."""
    gt = np.zeros((20, 40), np.uint16)
    gt[2:10, 2:10], gt[2:10, 20:30] = 1, 2
    pred = np.zeros_like(gt)
    pred[2:10, 2:9], pred[12:18, 30:38] = 5, 6
    write_image(tmp_path / "gt.tif", gt)
    write_image(tmp_path / "pred.tif", pred)
    out = tmp_path / "s.json"
    result = biounet("evaluate", tmp_path / "pred.tif", tmp_path / "gt.tif", "--task", "instances", "--json", out)
    assert result.returncode == 0, result.stderr
    row = json.loads(out.read_text())["images"][0]
    assert row["average_precision_50"] == pytest.approx(1 / 3) and row["average_precision"] == pytest.approx(0.8 / 3)
    assert row["f1"] == pytest.approx(0.5) and "AP50" in result.stdout.splitlines()[0]
