"""Prediction of many files: batches of same-shape images give what each image alone gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from biounet.inference.files import collect_inputs, open_input, plan_outputs
from biounet.inference.folder import predict_files
from biounet.inference.predictor import PredictOptions, predict_to
from biounet.io.checkpoint import ModelBundle
from biounet.model import UNet

KINDS = ["probabilities", "labels"]


@pytest.fixture(scope="module")
def bundle() -> ModelBundle:
    import torch

    torch.manual_seed(0)
    return ModelBundle(UNet(base_channels=4, depth=2, padding="same", norm="batch").eval())


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Five 64 x 64 images, two 80 x 72, one 64 x 64 again (a new group after the others), one large one."""
    rng = np.random.default_rng(1)
    shapes = [(64, 64)] * 5 + [(80, 72)] * 2 + [(64, 64), (300, 260)]
    (tmp_path / "in").mkdir()
    for index, shape in enumerate(shapes):
        tifffile.imwrite(tmp_path / "in" / f"im{index}.tif", (rng.random(shape) * 255).astype(np.uint8))
    return tmp_path / "in"


def _alone(bundle: ModelBundle, planned, options: PredictOptions) -> None:
    source, info = open_input(planned.path, bundle)
    predict_to(bundle, source, planned.targets, options, image_info=info)


def test_batched_folder_equals_one_image_at_a_time(bundle: ModelBundle, folder: Path, tmp_path: Path) -> None:
    inputs = collect_inputs([str(folder)])
    options = PredictOptions(precision="fp32", progress=False, batch_size=4, tile_size=128)
    batched = plan_outputs(inputs, bundle, tmp_path / "batched", KINDS, "tif")
    written = []
    done = predict_files(bundle, batched.inputs, options, on_written=lambda p, r: written.append(p.path.name))
    assert written == [p.name for p in inputs]  # in input order, each once
    assert not done.bad
    passes = [result.settings["tiling"] for _, result in done.results]
    assert passes.count("same: whole-image pass") == 8 and "halo crop" in passes[-1]  # the large one is tiled

    alone = plan_outputs(inputs, bundle, tmp_path / "alone", KINDS, "tif")
    for planned in alone.inputs:
        _alone(bundle, planned, options)
    for a, b in zip(batched.inputs, alone.inputs):
        pa, pb = tifffile.imread(a.targets["probabilities"]), tifffile.imread(b.targets["probabilities"])
        assert pa.shape == pb.shape and np.abs(pa.astype(np.float32) - pb.astype(np.float32)).max() <= 1e-3
        assert (tifffile.imread(a.targets["labels"]) != tifffile.imread(b.targets["labels"])).mean() < 1e-3
        assert Path(str(a.targets["labels"]) + ".json").exists()


def test_a_bad_image_inside_a_batch_is_skipped_or_stops_the_run(bundle: ModelBundle, folder: Path, tmp_path: Path):
    bad = np.full((64, 64), np.nan, np.float32)
    tifffile.imwrite(folder / "im2.tif", bad)  # inside the first group of 64 x 64 images
    inputs = collect_inputs([str(folder)])
    options = PredictOptions(precision="fp32", progress=False, batch_size=4, tile_size=128)
    plan = plan_outputs(inputs, bundle, tmp_path / "out", KINDS, "tif", skip_bad=True)
    assert [p.path.name for p in plan.inputs if p.path.name == "im2.tif"] == []  # the plan found it already
    # a NaN image that gets past the plan (checked only while predicting) is listed by skip_bad
    from biounet.inference.files import PlannedInput

    sneaked = [PlannedInput(folder / "im2.tif", {k: tmp_path / "out" / f"im2_{k}.tif" for k in KINDS})]
    done = predict_files(bundle, plan.inputs[:2] + sneaked + plan.inputs[2:], options, skip_bad=True)
    assert [path.name for path, _ in done.bad] == ["im2.tif"] and "NaN" in done.bad[0][1]
    assert len(done.results) == len(plan.inputs)
    assert not (tmp_path / "out" / "im2_probabilities.tif").exists()
    # without skip_bad the run stops, and the images that shared the batch with it leave no file behind
    clean = plan_outputs(inputs, bundle, tmp_path / "clean", KINDS, "tif", skip_bad=True)
    stopped = [PlannedInput(p.path, p.targets) for p in clean.inputs[:2]] + [
        PlannedInput(folder / "im2.tif", {k: tmp_path / "clean" / f"im2_{k}.tif" for k in KINDS})]
    with pytest.raises(Exception, match="NaN"):
        predict_files(bundle, stopped, options)
    assert not (tmp_path / "clean").exists() or list((tmp_path / "clean").iterdir()) == []
