"""The spacing at prediction: membrane models' cells in 3D with it (a 3D model's, a 2D model's on a stack)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

import biounet
from biounet.errors import DataError
from biounet.inference.files import open_input
from biounet.inference.predictor import PredictOptions, predict_to
from biounet.io.checkpoint import load_bundle

SETTINGS = {"precision": "fp32", "progress": False}


def cells_split_across_z() -> np.ndarray:
    """``(7, 24, 24)``: two cells above each other (3 sections each), one membrane section with a 3 x 3 hole.

    In voxels no point of a 3-section cell is farther than 3 from the membrane, so a seed distance of 4 gives
    no seed and the hole joins the cells; with sections 2x thicker (one 3D watershed still: not a stack of
    thick sections, :data:`biounet.inference.cells.SECTION_RATIO`) the distance across z counts double, the
    membrane section is a thick wall, and each cell gets its own seed.
    """
    volume = np.full((7, 24, 24), 0.95, np.float32)
    volume[3] = 0.05
    volume[3, 11:14, 11:14] = 0.9
    return volume


@pytest.fixture(scope="module")
def models(tmp_path_factory, membrane_model) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("spacing_models")
    return {
        "3d": membrane_model(root / "m3.safetensors", 3),
        "2d": membrane_model(root / "m2.safetensors", 2, seed_distance=2.0),
        "2d_spaced": membrane_model(root / "m2s.safetensors", 2, spacing=[10.0, 1.0, 1.0], seed_distance=2.0),
    }


def test_a_3d_models_cells_use_the_given_spacing(models: dict[str, Path]) -> None:
    volume = cells_split_across_z()
    isotropic = biounet.predict(models["3d"], volume, output="instances", tile_size=48, **SETTINGS)
    assert isotropic.max() == 1  # the hole joins them: the membrane section is one voxel thin
    cells = biounet.predict(models["3d"], volume, output="instances", spacing=(2, 1, 1), tile_size=48, **SETTINGS)
    assert cells.max() == 2
    assert len(np.unique(cells[:3])) == 1 and len(np.unique(cells[4:])) == 1 and cells[0, 0, 0] != cells[6, 0, 0]


def three_sections() -> np.ndarray:
    """``(3, 40, 40)``: cells L and R (left, right of a membrane column) in every section; in section 1 a third
    cell T above them (a strip cut off by a membrane row), whose place is membrane in sections 0 and 2."""
    stack = np.full((3, 40, 40), 0.95, np.float32)
    stack[:, 13:, 19:22] = 0.05  # L | R
    stack[:, 10:13, :] = 0.05  # the row under T
    stack[[0, 2], :10, :] = 0.05  # T exists in section 1 only
    stack[:, [0, -1], :] = stack[:, :, [0, -1]] = 0.05
    return stack


def stack_cells(model: Path, tmp_path: Path, spacing=None, out: Path | None = None) -> np.ndarray:
    """The instances of :func:`three_sections` as a multi-page TIFF, predicted as ``biounet predict`` does."""
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, three_sections(), photometric="minisblack")
    bundle = load_bundle(model)
    source, info = open_input(path, bundle)
    options = PredictOptions(precision="fp32", progress=False, spacing=spacing)
    return predict_to(bundle, source, {"instances": out}, options, image_info=info).outputs["instances"]


def test_a_2d_model_on_a_stack_with_a_3_value_spacing_makes_3d_cells(models: dict[str, Path], tmp_path: Path) -> None:
    out = stack_cells(models["2d"], tmp_path, (10, 1, 1), tmp_path / "c.tif")
    cells = tifffile.imread(out)
    left, right, top = cells[:, 25, 5], cells[:, 25, 35], cells[1, 5, 20]
    assert len(set(left)) == 1 and len(set(right)) == 1  # one id through the sections
    assert len({left[0], right[0], top}) == 3 and cells.max() == 3
    sidecar = json.loads(Path(f"{out}.json").read_text())["settings"]
    assert sidecar["spacing"] == [10.0, 1.0, 1.0] and sidecar["cells_in_3d"] is True


def test_without_a_spacing_the_cells_are_per_section(models: dict[str, Path], tmp_path: Path) -> None:
    cells = stack_cells(models["2d"], tmp_path)
    assert [int(cells[z].max()) for z in range(3)] == [2, 3, 2]  # every section numbered on its own
    assert cells[0, 25, 5] != cells[1, 25, 5]  # L is 1 in section 0, 2 under T in section 1
    with_plane_spacing = stack_cells(models["2d"], tmp_path, (1, 1))
    assert np.array_equal(with_plane_spacing, cells)


def test_the_models_spacing_is_used_unless_one_is_given(models: dict[str, Path], tmp_path: Path) -> None:
    cells = stack_cells(models["2d_spaced"], tmp_path)
    assert cells.max() == 3 and len(set(cells[:, 25, 5])) == 1
    per_section = stack_cells(models["2d_spaced"], tmp_path, (1, 1))
    assert [int(per_section[z].max()) for z in range(3)] == [2, 3, 2]


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (1.0, 0.0, 1.0)])
def test_a_spacing_that_does_not_fit_is_one_line(models: dict[str, Path], spacing) -> None:
    with pytest.raises(DataError) as error:
        biounet.predict(models["3d"], cells_split_across_z(), output="instances", spacing=spacing, **SETTINGS)
    assert "\n" not in str(error.value) and str(models["3d"]) in str(error.value)
