"""``biounet evaluate --spacing``: the cells of a probability volume are 3D with the voxel size."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import tifffile

from biounet.errors import DataError
from biounet.evaluation.scoring import score_files
from biounet.metrics import names
from biounet.pipeline import CellSettings


def split_volume(root: Path, sidecar_spacing: list[float] | None = None) -> tuple[Path, Path]:
    """Two cells above each other (sections 0-2 and 4-6), the membrane section 3 with a 3 x 3 hole in the
    prediction: with isotropic voxels the cells (seed distance 4) leak through the hole and merge; with
    sections 2x thicker (one 3D watershed) the membrane section is a thick wall.  Returns (prediction, ground truth)."""
    interior = np.full((7, 24, 24), 0.95, np.float32)
    interior[3] = 0.05
    interior[3, 11:14, 11:14] = 0.9
    truth = np.full((7, 24, 24), 255, np.uint8)
    truth[3] = 0
    pred, gt = root / "p.tif", root / "gt.tif"
    tifffile.imwrite(pred, interior)
    tifffile.imwrite(gt, truth)
    target = {"kind": "instances", "style": "membrane", "interior_class": 1,
              "cells": asdict(CellSettings(seed_distance=4.0, min_size=4))}
    sidecar = {"model": {"target": target}, "settings": {"spacing": sidecar_spacing}}
    (root / "p.tif.json").write_text(json.dumps(sidecar))
    return pred, gt


def cells_error(pred: Path, gt: Path, spacing=None) -> float:
    row = score_files("p", pred, gt, task="isbi", thresholds=(0.5,), warping=False, spacing=spacing).row()
    return row[names.CELLS_ADAPTED_RAND_ERROR]


def test_the_spacing_keeps_cells_apart_across_a_thin_membrane_section(tmp_path: Path) -> None:
    pred, gt = split_volume(tmp_path)
    assert cells_error(pred, gt) > 0.3  # merged through the hole
    assert cells_error(pred, gt, spacing=(2, 1, 1)) == 0.0


def test_the_sidecars_spacing_is_used_unless_one_is_given(tmp_path: Path) -> None:
    pred, gt = split_volume(tmp_path, sidecar_spacing=[10.0, 5.0, 5.0])
    assert cells_error(pred, gt) == 0.0
    assert cells_error(pred, gt, spacing=(1, 1, 1)) > 0.3


def test_a_2_value_spacing_for_a_volume_is_one_line(tmp_path: Path) -> None:
    pred, gt = split_volume(tmp_path)
    with pytest.raises(DataError) as error:
        cells_error(pred, gt, spacing=(1, 1))
    assert "\n" not in str(error.value) and str(pred) in str(error.value)


def evaluate(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "biounet", "evaluate", *map(str, args)], capture_output=True,
                          text=True, timeout=120)


def test_cli_spacing_reaches_the_cells_and_the_json(tmp_path: Path) -> None:
    pred, gt = split_volume(tmp_path)
    result = evaluate(pred, gt, "--task", "isbi", "--no-warping", "--spacing", "2,1,1", "--json",
                      tmp_path / "s.json", "--quiet")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "s.json").read_text())
    assert report["spacing"] == [2.0, 1.0, 1.0] and report["images"][0][names.CELLS_ADAPTED_RAND_ERROR] == 0.0


@pytest.mark.parametrize("value", ["1,0,1", "a,b"])
def test_cli_bad_spacing_is_a_one_line_usage_error(tmp_path: Path, value: str) -> None:
    result = evaluate(tmp_path / "p.tif", tmp_path / "gt.tif", "--task", "isbi", "--spacing", value)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "--spacing" in result.stderr, result.stderr
