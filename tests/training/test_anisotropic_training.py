"""Anisotropic data in training: the network layout, the 3D tile, weight maps and validation cells from data.spacing."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
from test_trainer import TINY, tiny_config

from biounet.data.readers import Sample, TrainingData
from biounet.data.targets import Target, membrane_target
from biounet.io.checkpoint import load_bundle
from biounet.io.images import write_image
from biounet.model.anisotropy import anisotropic_layout, is_plain_layout
from biounet.training.config import ConfigError, TrainConfig
from biounet.training.setup import adapt_layout, layout_line, tile_shape
from biounet.training.validation import cell_metrics
from biounet.training.weights import attach_weight_maps, compute_weight_map, weight_key

VNC = Path(__file__).resolve().parents[3] / "shared" / "data" / "drosophila_vnc_sstem" / "stack1"
SPACING = [50.0, 4.6, 4.6]
MEMBRANE = {"target": {"kind": "instances", "style": "membrane"}}


def config_3d(spacing=SPACING, **model) -> TrainConfig:
    return tiny_config({"model": {"spatial_dims": 3, **model}, "data": {**MEMBRANE, "spacing": spacing}})


# ------------------------------------------------------------------------------------------ layout


def test_anisotropic_spacing_replaces_the_default_layout_and_is_read_back_unchanged():
    config = config_3d(depth=3)
    assert is_plain_layout(config.model) and layout_line(config) is None
    assert adapt_layout(config)
    assert (config.model.pool_factors, config.model.kernel_sizes) == anisotropic_layout(SPACING, 3)
    assert "anisotropic (10.9x)" in layout_line(config) and "pools 1x2x2 1x2x2 1x2x2 and" in layout_line(config)
    saved = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))  # config.json, as --resume reads it
    assert saved.model == config.model and not adapt_layout(saved)


def test_an_explicit_layout_is_kept():
    pools, kernels = [(1, 2, 2), (2, 2, 2)], [(1, 3, 3), (3, 3, 3), (3, 3, 3)]
    config = config_3d(depth=2, pool_factors=pools, kernel_sizes=kernels)
    assert not adapt_layout(config) and layout_line(config) is None
    assert config.model.pool_factors == ((1, 2, 2), (2, 2, 2))


def test_a_3d_network_needs_a_3_value_spacing():
    with pytest.raises(ConfigError, match=r"data.spacing \[4.6, 4.6\] needs 3 values \(Z, Y, X\) for a 3D model"):
        adapt_layout(config_3d([4.6, 4.6]))


@pytest.mark.parametrize("dims, spacing", [(3, [4.6, 4.6, 4.6]), (3, [9, 4.6, 4.6]), (3, None), (2, [50, 4.6, 4.6])])
def test_isotropic_spacing_2d_networks_and_no_spacing_keep_the_plain_layout(dims, spacing):
    config = tiny_config({"model": {"spatial_dims": dims}, "data": {"spacing": spacing}})
    before = config.model
    assert not adapt_layout(config) and config.model == before and is_plain_layout(config.model)


# ------------------------------------------------------------------------------------------ tile


def volumes(*depths: int) -> TrainingData:
    samples = [Sample(f"v{d}", np.zeros((1, d, 8, 8), np.float32), Target(np.zeros((d, 8, 8), np.uint8)),
                      Path(f"v{d}.tif")) for d in depths]
    return TrainingData(samples=samples, in_channels=1, channel_axis=None, channels=None)


def test_one_tile_size_is_shaped_by_the_spacing_and_capped_by_the_volumes(caplog):
    config = config_3d(depth=2, padding="same")
    config.tile_shape = [128]
    adapt_layout(config)  # z never pools at depth 2: factor 1
    assert tile_shape(config, config.model) == (12, 128, 128)  # 128 * 4.6 / 50 = 11.8 sections
    with caplog.at_level(logging.INFO, logger="biounet"):
        assert tile_shape(config, config.model, volumes(9, 7)) == (7, 128, 128)
    assert "tile 128 for spacing 50x4.6x4.6: 7x128x128" in caplog.text
    config.tile_shape = [8, 128, 128]  # three values: as given
    assert tile_shape(config, config.model, volumes(7)) == (8, 128, 128)


def test_a_z_pooling_that_does_not_fit_the_volumes_is_a_config_error():
    config = config_3d(depth=2, padding="same", pool_factors=[(2, 2, 2), (2, 2, 2)])  # explicit: z factor 4
    config.tile_shape = [128]
    assert tile_shape(config, config.model, volumes(9)) == (8, 128, 128)  # 11.8 -> 12, capped to 8
    with pytest.raises(ConfigError, match="3 sections, fewer than the network's z pooling factor 4"):
        tile_shape(config, config.model, volumes(9, 3))


# ------------------------------------------------------------------------------------------ weight maps


def split_across_z() -> Sample:
    """Two cells of a (5, 16, 16) volume parted only by section z = 2 of membrane (mask 0, ISBI convention)."""
    label = np.full((5, 16, 16), 255, np.uint8)
    label[2] = 0
    return Sample("z", np.zeros((1, 5, 16, 16), np.float32), membrane_target(label), Path("z.tif"))


def test_weight_map_counts_a_gap_across_z_in_the_spacing():
    """Isotropic, the membrane section is 1 pixel from each cell: w = 1 + w0 exp(-(1 + 1)^2 / 2 sigma^2). With
    (50, 4.6, 4.6) each side is 50 / 4.6 = 10.9 in-plane pixels away, so the border term nearly vanishes."""
    sample = split_across_z()
    assert set(np.unique(sample.target.instances)) == {0, 1, 2}
    plain, spaced = compute_weight_map(sample, config_3d(None)), compute_weight_map(sample, config_3d())
    loss = config_3d().loss
    far = 2 * 50 / 4.6
    assert plain[2, 8, 8] == pytest.approx(1 + loss.w0 * math.exp(-4 / (2 * loss.sigma**2)), rel=1e-5)
    assert spaced[2, 8, 8] == pytest.approx(1 + loss.w0 * math.exp(-far**2 / (2 * loss.sigma**2)), rel=1e-4)
    assert spaced[2, 8, 8] < 1.1 < plain[2, 8, 8]
    np.testing.assert_array_equal(spaced[[0, 1, 3, 4]], 1.0)  # inside the cells: no border term either way


def test_a_section_of_a_stack_uses_the_in_plane_spacing():
    label = np.full((16, 16), 255, np.uint8)
    label[:, 8] = 0
    sample = Sample("s", np.zeros((1, 16, 16), np.float32), membrane_target(label), Path("s.png"))
    two_d = {"data": {**MEMBRANE, "spacing": SPACING}}
    np.testing.assert_array_equal(compute_weight_map(sample, tiny_config(two_d)),
                                  compute_weight_map(sample, tiny_config({"data": MEMBRANE})))


def test_the_cache_key_changes_with_the_spacing(tmp_path):
    sample = split_across_z()
    keys = {weight_key(sample, config_3d(s)) for s in (None, SPACING, [45, 4.6, 4.6], [5, 0.46, 0.46])}
    assert len(keys) == 3  # (5, .46, .46) is (50, 4.6, 4.6) in in-plane pixels: the same map
    attach_weight_maps([sample], config_3d(None), tmp_path)
    again = split_across_z()
    attach_weight_maps([again], config_3d(), tmp_path)  # another spacing: not the cached isotropic map
    assert len(list(tmp_path.glob("weights-*.npy"))) == 2 and again.weight[2, 8, 8] < 1.1 < sample.weight[2, 8, 8]


# ------------------------------------------------------------------------------------------ validation cells


def test_validation_cells_measure_seeds_in_the_spacing():
    """Two cells parted across z by one membrane section with a 2x2 hole. Isotropic, no voxel is more than 2
    from a membrane, no seed clears distance 3, and the component through the hole is one cell. With sections
    2 in-plane pixels apart (one 3D watershed: not a stack of thick sections, whose cells are made per section)
    the distance across z counts double: a seed in each cell, and the membrane parts them."""
    interior = np.ones((5, 24, 24), np.float32)
    interior[2] = 0
    interior[2, 11:13, 11:13] = 1
    truth = np.zeros((5, 24, 24), np.int32)
    truth[:2], truth[3:] = 1, 2
    sample = Sample("z", interior[None], Target((interior > 0.5).astype(np.uint8), truth), Path("z.tif"))
    probabilities = [np.stack([1 - interior, interior])]
    grid = {"interior_thresholds": (0.5,), "seed_distances": (3.0,), "merge_thresholds": (0.5,)}
    merged, _, _ = cell_metrics([sample], probabilities, **grid)
    split, _, settings = cell_metrics([sample], probabilities, spacing=(9.2, 4.6, 4.6), **grid)
    assert split == pytest.approx(0.0, abs=1e-6) and merged > 0.3
    assert settings["cells_seed_distance"] == 3.0


# ------------------------------------------------------------------------------------------ end to end


def vnc_volume(first: int, count: int, crop: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """``count`` sections of the real ssTEM stack from ``first``, a crop x crop corner, and the membrane mask
    (0 = membrane, 255 = interior: the ISBI convention)."""
    from PIL import Image

    raw = [np.asarray(Image.open(VNC / "raw" / f"{z:02d}.tif"))[:crop, :crop] for z in range(first, first + count)]
    membrane = [np.asarray(Image.open(VNC / "membranes" / f"{z:02d}.png"))[:crop, :crop] > 0
                for z in range(first, first + count)]
    return np.stack(raw), np.where(np.stack(membrane), 0, 255).astype(np.uint8)


def test_a_3d_run_on_the_vnc_stack_trains_saves_and_predicts_with_the_spacing(tmp_path):
    import biounet
    from biounet.training.trainer import train

    for folder, (first, count) in {"train": (0, 6), "val": (12, 3)}.items():
        image, mask = vnc_volume(first, count)
        write_image(tmp_path / folder / "images" / "vnc.tif", image)
        write_image(tmp_path / folder / "masks" / "vnc.tif", mask)
    config = tiny_config({
        "model": {**TINY["model"], "spatial_dims": 3, "depth": 3},
        "data": {**MEMBRANE, "spacing": SPACING, "images": str(tmp_path / "train" / "images"),
                 "masks": str(tmp_path / "train" / "masks"), "val_images": str(tmp_path / "val" / "images"),
                 "val_masks": str(tmp_path / "val" / "masks")},
        "tile_shape": [64], "batch_size": 1, "steps": 3, "val_every": 3,
    })
    train(config, tmp_path / "run", progress=False)
    pools, kernels = anisotropic_layout(SPACING, 3)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["model"]["pool_factors"] == [list(p) for p in pools] and saved["data"]["spacing"] == SPACING
    bundle = load_bundle(tmp_path / "run")
    assert bundle.config.pool_factors == pools and bundle.config.kernel_sizes == kernels
    assert bundle.pipeline.spacing == SPACING and bundle.pipeline.tile_shape[0] == 6  # 64 * 4.6 / 50 -> 6
    log = (tmp_path / "run" / "train.log").read_text()
    assert "50x4.6x4.6 is anisotropic (10.9x): the network pools 1x2x2 1x2x2 1x2x2" in log
    image, _ = vnc_volume(12, 3)
    probabilities = biounet.predict(tmp_path / "run", image, progress=False, precision="fp32", device="cpu")
    assert probabilities.shape == (2, 3, 96, 96) and np.isfinite(probabilities).all()
