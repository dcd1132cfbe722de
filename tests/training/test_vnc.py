"""Training on the ssTEM VNC stack (presets ``vnc`` / ``vnc-classes``): 2D, 2.5D and 3D on a real crop, z split."""

from __future__ import annotations

from pathlib import Path

import pytest
import tifffile
from PIL import Image

from biounet.io.checkpoint import load_bundle
from biounet.training.config import ConfigError, TrainConfig, merge
from biounet.training.data import load_training_data
from biounet.training.recipes import PRESETS, preset, recipe
from biounet.training.trainer import train

#: A 96 x 96 window with membranes, mitochondria and synapses in sections 0-5 (PIL order: left, upper, right, lower).
BOX = (256, 640, 352, 736)

TINY = {
    "model": {"depth": 2, "base_channels": 4, "padding": "same", "norm": None, "dropout": 0.0},
    "tile_shape": [64],
    "batch_size": 2,
    "precision": "fp32",
    "device": "cpu",
    "log_every": 2,
    "steps": 4,
    "val_every": 4,
    "optim": {"lr": 0.01, "warmup_steps": 0},
}


@pytest.fixture(scope="module")
def vnc(shared_data, tmp_path_factory) -> Path:
    """Sections 0-5 of ``stack1`` cropped to :data:`BOX`, in the original layout, names and PNG modes."""
    source = shared_data / "drosophila_vnc_sstem" / "stack1"
    root = tmp_path_factory.mktemp("vnc") / "drosophila_vnc_sstem"
    left, upper, right, lower = BOX
    for folder in ("raw", "membranes", "mitochondria", "synapses"):
        (root / "stack1" / folder).mkdir(parents=True)
    for z in range(6):
        raw = tifffile.imread(source / "raw" / f"{z:02d}.tif")[upper:lower, left:right]
        tifffile.imwrite(root / "stack1" / "raw" / f"{z:02d}.tif", raw)
        for folder in ("membranes", "mitochondria", "synapses"):
            with Image.open(source / folder / f"{z:02d}.png") as image:
                image.crop(BOX).save(root / "stack1" / folder / f"{z:02d}.png")
    return root


def config(name: str, images: Path, **layers) -> TrainConfig:
    merged = merge(merge(recipe("default"), preset(name)), TINY)
    return TrainConfig.from_dict(merge(merge(merged, {"data": {"images": str(images)}}), layers))


def test_presets_declare_the_stack():
    for name, classes in (("vnc", None), ("vnc-classes", ["background", "membrane", "mitochondria", "synapse"])):
        data = TrainConfig.from_dict(merge(recipe("default"), preset(name))).data
        assert data.layout == "sections" and data.spacing == [50.0, 4.6, 4.6] and data.preset == name
        assert data.target.names == (classes or ["membrane", "interior"])
    assert {"vnc", "vnc-classes"} <= set(PRESETS)


def test_split_along_z_for_2d_and_3d(vnc):
    train_data, val = load_training_data(config("vnc", vnc, data={"val_split": 0.34}))
    assert [s.name for s in train_data.samples] == ["00", "01", "02", "03"] and [s.name for s in val] == ["04", "05"]
    train_data, val = load_training_data(config("vnc", vnc, data={"val_names": ["5", "03"]}))
    assert [s.name for s in val] == ["03", "05"]
    volume = config("vnc-classes", vnc, model={"spatial_dims": 3}, tile_shape=[4, 64, 64], data={"val_split": 0.34})
    train_data, val = load_training_data(volume)
    assert [s.name for s in train_data.samples] == ["stack1[z=0:4]"] and [s.name for s in val] == ["stack1[z=4:6]"]
    assert val[0].image.shape == (1, 2, 96, 96) and val[0].target.classes.max() == 3
    volume = config("vnc", vnc, model={"spatial_dims": 3}, data={"val_names": ["2"]})
    train_data, val = load_training_data(volume)
    assert [s.name for s in train_data.samples] == ["stack1[z=0:2]", "stack1[z=3:6]"]
    assert [s.name for s in val] == ["stack1[z=2:3]"]
    with pytest.raises(ConfigError, match="z_context"):
        load_training_data(config("vnc", vnc, model={"spatial_dims": 3}, data={"z_context": 1}))


@pytest.mark.parametrize(("name", "dims", "z_context", "tile"), [
    ("vnc", 2, 0, [64]),
    ("vnc-classes", 2, 1, [64]),
    ("vnc", 3, 0, [4, 64, 64]),
])
def test_short_runs(vnc, tmp_path, name, dims, z_context, tile):
    run = tmp_path / "run"
    result = train(config(name, vnc, model={"spatial_dims": dims}, tile_shape=tile,
                          data={"z_context": z_context, "val_split": 0.34}), run, progress=False)
    assert result.steps == 4 and [r for r in result.history.rows if r["kind"] == "val"]
    bundle = load_bundle(run)
    assert bundle.pipeline.spacing == [50.0, 4.6, 4.6] and bundle.pipeline.z_context == z_context
    assert bundle.config.in_channels == 2 * z_context + 1 and bundle.config.spatial_dims == dims
    assert bundle.config.num_classes == (4 if name == "vnc-classes" else 2)
