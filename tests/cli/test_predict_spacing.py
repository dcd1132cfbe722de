"""``biounet predict --spacing`` and 2.5D models in a real subprocess: 3D cells, sidecars, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile


def biounet(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "biounet", "predict", *map(str, args)], capture_output=True, text=True, timeout=300
    )


def three_sections() -> np.ndarray:
    """``(3, 40, 40)``: cells L | R in every section, a cell T above them in section 1 only (membrane elsewhere)."""
    stack = np.full((3, 40, 40), 0.95, np.float32)
    stack[:, 13:, 19:22] = 0.05
    stack[:, 10:13, :] = 0.05
    stack[[0, 2], :10, :] = 0.05
    stack[:, [0, -1], :] = stack[:, :, [0, -1]] = 0.05
    return stack


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, membrane_model) -> Path:
    root = tmp_path_factory.mktemp("predict_spacing")
    membrane_model(root / "m25.safetensors", 2, z_context=1, seed_distance=2.0)
    membrane_model(root / "m3.safetensors", 3)
    tifffile.imwrite(root / "stack.tif", three_sections(), photometric="minisblack")
    tifffile.imwrite(root / "single.tif", three_sections()[1])
    volume = np.full((7, 24, 24), 0.95, np.float32)  # two cells above each other, a membrane section with a hole
    volume[3] = 0.05
    volume[3, 11:14, 11:14] = 0.9
    np.save(root / "volume.npy", volume)
    return root


def test_a_25d_model_on_a_stack_with_a_spacing_makes_3d_cells(workspace: Path, tmp_path: Path) -> None:
    """The stack's cells continue across sections; the single 2D image beside it is one line (--skip-bad)."""
    result = biounet(workspace / "m25.safetensors", workspace / "stack.tif", workspace / "single.tif", "--out",
                     tmp_path, "--output", "instances", "--spacing", "10,1,1", "--precision", "fp32", "--quiet",
                     "--skip-bad")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "single.tif: a 2.5D model (z context 1) needs a stack of at least 2 sections" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack_instances.tif", "stack_instances.tif.json"]
    cells = tifffile.imread(tmp_path / "stack_instances.tif")
    assert len(set(cells[:, 25, 5])) == 1 and len(set(cells[:, 25, 35])) == 1 and cells.max() == 3
    settings = json.loads((tmp_path / "stack_instances.tif.json").read_text())["settings"]
    assert settings["z_context"] == 1 and settings["spacing"] == [10.0, 1.0, 1.0]


def test_spacing_makes_the_membrane_section_a_thick_wall(workspace: Path, tmp_path: Path) -> None:
    """Isotropic, the hole joins the two cells (see tests/inference/test_spacing.py); with 2,1,1 they stay two
    (one 3D watershed: sections 2x thicker than pixels are not a stack of thick sections)."""
    result = biounet(workspace / "m3.safetensors", workspace / "volume.npy", "--out", tmp_path, "--output",
                     "instances", "--format", "npy", "--spacing", "2,1,1", "--precision", "fp32", "--tile-size", "48",
                     "--quiet")
    assert result.returncode == 0, result.stderr
    cells = np.load(tmp_path / "volume_instances.npy")
    assert cells.max() == 2 and cells[0, 0, 0] != cells[6, 0, 0]
    assert json.loads((tmp_path / "volume_instances.npy.json").read_text())["settings"]["spacing"] == [2, 1, 1]


@pytest.mark.parametrize("value", ["1,0,1", "a,b", "1,2,3,4", "inf,1,1", "nan,1,1"])
def test_bad_spacing_is_a_one_line_usage_error(workspace: Path, tmp_path: Path, value: str) -> None:
    result = biounet(workspace / "m3.safetensors", workspace / "volume.npy", "--out", tmp_path, "--spacing", value)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "--spacing" in result.stderr, result.stderr
    assert not any(tmp_path.iterdir())
