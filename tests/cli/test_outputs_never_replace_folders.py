"""No command deletes a folder the user made: a folder where an output should go is one line, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from biounet.io.checkpoint import save_model
from biounet.io.images import write_image
from biounet.model import UNet


def biounet(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "biounet", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("in_the_way")
    save_model(UNet(base_channels=2, depth=1, padding="same", num_classes=2), root / "run",
               pipeline={"target": {"kind": "semantic", "class_names": ["background", "foreground"]}})
    labels = np.zeros((24, 24), np.uint8)
    labels[4:12, 4:12] = 1
    write_image(root / "gt" / "a.png", labels)
    write_image(root / "pred" / "a.png", labels)
    return root


def assert_refused(result: subprocess.CompletedProcess, folder: Path, keep: Path) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert str(folder) in lines[0] and "folder is in the way" in lines[0]
    assert keep.is_file()


def test_evaluate_json_and_csv_onto_a_folder(work: Path):
    for flag in ("--json", "--csv"):
        result = biounet("evaluate", work / "pred", work / "gt", "--task", "semantic", flag, work / "pred", "--quiet")
        assert_refused(result, work / "pred", work / "pred" / "a.png")


def test_export_onto_a_folder(work: Path, tmp_path: Path):
    folder = tmp_path / "model.onnx"
    (folder / "keep.txt").parent.mkdir()
    (folder / "keep.txt").write_text("mine")
    assert_refused(biounet("export", work / "run", folder), folder, folder / "keep.txt")


def test_predict_output_name_taken_by_a_folder(work: Path, tmp_path: Path):
    folder = tmp_path / "out" / "a_probabilities.tif"
    folder.mkdir(parents=True)
    (folder / "keep.txt").write_text("mine")
    result = biounet("predict", work / "run", work / "pred" / "a.png", "--out", tmp_path / "out", "--quiet")
    assert_refused(result, folder, folder / "keep.txt")
