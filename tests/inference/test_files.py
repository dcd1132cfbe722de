"""Prediction of files: inputs from files, folders and globs; outputs named and checked before any work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from biounet.errors import DataError, ImageReadError
from biounet.inference.files import collect_inputs, output_stem, plan_outputs
from biounet.io.checkpoint import ModelBundle
from biounet.io.images import write_image
from biounet.model import UNet


@pytest.fixture
def images(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        write_image(tmp_path / "in" / name, (rng.random((20, 24)) * 255).astype(np.uint8))
    np.save(tmp_path / "in" / "c.npy", rng.random((2, 20, 24)).astype(np.float32))  # a 2-page stack
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    return tmp_path / "in"


def test_folders_globs_and_files_without_duplicates(images: Path):
    found = collect_inputs([str(images), str(images / "*.png"), str(images / "a.png")])
    assert [p.name for p in found] == ["a.png", "b.png", "c.npy"]
    with pytest.raises(ImageReadError, match="no such file"):
        collect_inputs([str(images / "missing.png")])
    with pytest.raises(ImageReadError, match="no image files match"):
        collect_inputs([str(images / "*.tif")])


def test_outputs_are_named_per_kind_and_clashes_refused(images: Path, tmp_path: Path):
    bundle = ModelBundle(UNet(base_channels=2, depth=1, padding="same"))
    plan = plan_outputs(collect_inputs([str(images)]), bundle, tmp_path / "out", ["probabilities", "labels"], "tif")
    assert [p.targets["labels"].name for p in plan.inputs] == ["a_labels.tif", "b_labels.tif", "c_labels.tif"]
    np.save(images / "a.npy", np.zeros((20, 24), np.float32))  # a.png and a.npy would both write a_labels.tif
    with pytest.raises(DataError, match="would both write"):
        plan_outputs(collect_inputs([str(images)]), bundle, tmp_path / "out", ["labels"], "tif")


def test_png_outputs_need_2d_inputs_and_no_logits(images: Path, tmp_path: Path):
    bundle = ModelBundle(UNet(base_channels=2, depth=1, padding="same"))
    with pytest.raises(DataError, match="1 bad input: .*c.npy: PNG holds 2D images"):
        plan_outputs(collect_inputs([str(images)]), bundle, tmp_path / "out", ["labels"], "png")
    with pytest.raises(DataError, match="logits"):
        plan_outputs([images / "a.png"], bundle, tmp_path / "out", ["logits"], "png")


def test_output_stem():
    assert output_stem(Path("x/a.ome.tif")) == "a.ome" and output_stem(Path("run.zarr")) == "run"
    assert output_stem(Path("plain")) == "plain"


def test_every_bad_input_is_named_before_anything_is_predicted(images: Path, tmp_path: Path):
    from biounet.inference.files import BadInputsError

    bundle = ModelBundle(UNet(base_channels=2, depth=1, padding="same"))
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (images / "empty.tif").write_bytes(b"")
    np.save(images / "cube.npy", np.zeros((2, 3, 4, 5), np.float32))  # 4D: not an image for a 2D model
    inputs = collect_inputs([str(images)])
    with pytest.raises(BadInputsError) as caught:
        plan_outputs(inputs, bundle, tmp_path / "out", ["labels"], "tif")
    message = str(caught.value)
    assert message.startswith("3 bad inputs: ") and "nothing was predicted" in message and "\n" not in message
    for name in ("broken.png", "empty.tif", "cube.npy"):
        assert name in message
    plan = plan_outputs(inputs, bundle, tmp_path / "out", ["labels"], "tif", skip_bad=True)
    assert [p.path.name for p in plan.inputs] == ["a.png", "b.png", "c.npy"]
    assert sorted(path.name for path, _ in plan.bad) == ["broken.png", "cube.npy", "empty.tif"]
    assert not (tmp_path / "out").exists()


def test_biounet_predict_takes_a_stack_file_for_a_2d_model_section_by_section(tmp_path):
    """A multi-page TIFF given by path is a stack of sections, as ``biounet predict FILE`` reads it (an array
    ``(Z, Y, X)`` stays ambiguous with channels and is not)."""
    import tifffile
    import torch

    import biounet

    torch.manual_seed(0)
    model = UNet(base_channels=4, depth=2, padding="same", norm="batch").eval()
    stack = np.random.default_rng(0).integers(0, 255, (3, 40, 40), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "stack.tif", stack)
    options = {"precision": "fp32", "progress": False, "pipeline": {"normalization": {"method": "minmax"}}}
    whole = biounet.predict(model, str(tmp_path / "stack.tif"), **options)
    assert whole.shape == (2, 3, 40, 40)
    for z in range(3):
        np.testing.assert_allclose(whole[:, z], biounet.predict(model, stack[z], **options), atol=1e-3)
