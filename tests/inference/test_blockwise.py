"""Blockwise prediction on a real Dask ``LocalCluster`` (2 worker processes, loopback) against ``biounet.predict``.

Probabilities of a valid-padded model must equal the single-process result exactly: the same tiles get the same
inputs.  Both sides run one tile per batch on one thread, because oneDNN chooses its convolution kernels by
batch size and thread count, which changes float rounding (about 5e-7 here): a block's last batch can hold
fewer tiles than the single-process run's batches.  Instances must equal the single-process labels up to
renumbering; a worker killed in the middle of the run must not change the output.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
import torch
import zarr

from biounet import predict
from biounet.inference.blockwise import BlockwiseOptions, predict_blockwise
from biounet.inference.predictor import PredictOptions
from biounet.io.atomic import OUTPUT_MARKER
from biounet.io.checkpoint import save_model
from biounet.model import UNet

pytest.importorskip("distributed")
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the kill hook below runs on the workers

SINGLE = {"batch_size": 1, "precision": "fp32", "progress": False, "num_threads": 1}


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        yield c


def small_model(tmp: Path, seed: int = 0, **kwargs) -> Path:
    torch.manual_seed(seed)
    kwargs.setdefault("base_channels", 4)
    kwargs.setdefault("depth", 2)
    return save_model(UNet(dropout=0.0, **kwargs), tmp / f"model{seed}.safetensors")


def zarr_image(path: Path, image: np.ndarray, chunks: tuple[int, ...]) -> Path:
    z = zarr.open_array(str(path), mode="w", shape=image.shape, chunks=chunks, dtype=image.dtype)
    z[...] = image
    return path


def smooth_image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """uint8 noise with some structure (so that the probabilities vary)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.random(shape, dtype=np.float32), 3)
    field = (field - field.min()) / (field.max() - field.min())
    return (field * 255).astype(np.uint8)


def blockwise(model: Path, image: Path, out: Path, client, outputs=("probabilities",), block=None, **kwargs):
    options = PredictOptions(tile_size=kwargs.pop("tile_size"), batch_size=1, precision="fp32", progress=False,
                             probability_dtype="float32", threshold=kwargs.pop("threshold", None),
                             spacing=kwargs.pop("spacing", None),
                             foreground_threshold=kwargs.pop("foreground_threshold", None))
    return predict_blockwise(model, image, out, outputs, dask=client, options=options,
                             blockwise=BlockwiseOptions(block_size=block, threads=1, **kwargs))


def test_2d_probabilities_equal_the_single_process_result(tmp_path: Path, client) -> None:
    model = small_model(tmp_path, base_channels=2)
    image = zarr_image(tmp_path / "big.zarr", smooth_image((3000, 2500)), (512, 512))
    expected = predict(model, image, tile_size=700, **SINGLE)
    result = blockwise(model, image, tmp_path / "out.zarr", client, ("probabilities", "labels"), block=1024,
                       tile_size=700)
    counts = result.settings["block_counts"]
    assert result.blocks == counts[0] * counts[1] and min(counts) >= 2
    probabilities = zarr.open_array(result.arrays["probabilities"], mode="r")
    assert probabilities.chunks == (1, *result.settings["block_shape"])
    np.testing.assert_array_equal(probabilities[...], expected)
    labels = zarr.open_array(result.arrays["labels"], mode="r")[...]
    np.testing.assert_array_equal(labels, np.argmax(expected, axis=0))
    assert (tmp_path / "out.zarr" / OUTPUT_MARKER).is_file() and (tmp_path / "out.zarr.json").is_file()
    assert not (tmp_path / "out.zarr" / ".biounet-work").exists()
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]


def test_3d_volume_equals_the_single_process_result(tmp_path: Path, client) -> None:
    model = small_model(tmp_path, spatial_dims=3, depth=1, base_channels=1)
    image = zarr_image(tmp_path / "vol.zarr", smooth_image((64, 700, 500), seed=1), (32, 256, 256))
    tile = (48, 320, 256)
    expected = predict(model, image, tile_size=tile, **SINGLE)
    result = blockwise(model, image, tmp_path / "vol_out.zarr", client, block=(32, 300, 240), tile_size=tile)
    assert result.blocks >= 8 and min(result.settings["block_counts"]) >= 2
    np.testing.assert_array_equal(zarr.open_array(result.arrays["probabilities"], mode="r")[...], expected)


def touching_cells(shape: tuple[int, int], seed: int = 3) -> np.ndarray:
    """float32 image of bright discs, many touching (a darker line between them), brightest at their centres.

    The brightness falls off from every centre and carries a little noise so that the interior probability has
    no plateaus: on a plateau a watershed's result depends on the order it visits equal pixels (the box it
    floods), which no blockwise scheme can reproduce.
    """
    from scipy import ndimage
    from skimage.segmentation import find_boundaries

    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.int32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for n in range(1, 90):
        cy, cx, r = rng.integers(10, shape[0] - 10), rng.integers(10, shape[1] - 10), rng.integers(9, 16)
        labels[((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & (labels == 0)] = n
    boundary = find_boundaries(labels, mode="inner") & (labels > 0)
    depth = ndimage.distance_transform_edt(labels > 0)
    image = np.where(labels > 0, 0.75 + 0.2 * np.minimum(depth, 15) / 15, 0.0)
    image[boundary] = 0.5
    image += 0.01 * rng.random(shape)
    return image.astype(np.float32)


def intensity_model(tmp: Path) -> Path:
    """A valid U-Net (depth 2) whose weights pass the normalised intensity ``x`` through to the head:
    background ``3 - 10 x``, interior ``10 x - 7``, boundary 0 (so bright = interior, mid-grey = boundary).

    The model normalises min-max, so x runs from 0 (background) to 1 (the brightest centre)."""
    model = UNet(base_channels=4, depth=2, num_classes=3, dropout=0.0)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for name in ("encoder_first.0", "encoder_first.3", "up.1.block.0", "up.1.block.3"):
            dict(model.named_modules())[name].weight[0, 0, 1, 1] = 1.0
        model.head.weight[:, 0, 0, 0] = torch.tensor([-10.0, 10.0, 0.0])
        model.head.bias[:] = torch.tensor([3.0, -7.0, 0.0])
    target = {"kind": "instances", "style": "touching", "class_names": ["background", "interior", "boundary"],
              "interior_class": 1, "foreground_classes": [1, 2], "threshold": 0.5, "min_size": 8}
    pipeline = {"target": target, "normalization": {"method": "minmax"}}
    return save_model(model, tmp / "cells.safetensors", pipeline=pipeline)


def assert_same_up_to_renumbering(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    np.testing.assert_array_equal(a == 0, b == 0)
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    assert len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1])), "not a one-to-one renumbering"


def test_instances_straddling_blocks_get_one_id(tmp_path: Path, client) -> None:
    """The instance settings given to a blockwise prediction (here a foreground threshold) reach its blocks and
    its sidecar."""
    model = intensity_model(tmp_path)
    image = zarr_image(tmp_path / "cells.zarr", touching_cells((600, 560)), (256, 256))
    expected = predict(model, image, output="instances", tile_size=200, foreground_threshold=0.6, **SINGLE)
    result = blockwise(model, image, tmp_path / "cells_out.zarr", client, ("instances",), block=150, tile_size=200,
                       overlap=48, foreground_threshold=0.6)
    recorded = json.loads((tmp_path / "cells_out.zarr.json").read_text())["settings"]
    assert (recorded["threshold"], recorded["min_size"], recorded["foreground_threshold"]) == (0.5, 8, 0.6)
    labels = zarr.open_array(result.arrays["instances"], mode="r")[...]
    plan_borders = [range(b, n, b) for b, n in zip(result.settings["block_shape"], labels.shape)]
    straddling = {int(v) for y in plan_borders[0] for v in np.intersect1d(labels[y - 1], labels[y]) if v}
    assert len(straddling) >= 5  # objects cut by a block border ...
    assert_same_up_to_renumbering(labels, expected)  # ... got one id, as in the single-process labelling
    assert labels.max() == len(np.unique(labels)) - 1  # ids 1..N


def kill_worker_once(marker: str, number: int):
    def hook(block: int) -> None:
        if block == number and not os.path.exists(marker):
            Path(marker).write_text("killed once\n")
            os._exit(1)  # the worker process dies in the middle of the run; its nanny starts a new one

    return hook


def test_a_killed_worker_is_replaced_and_the_output_is_complete(tmp_path: Path, client) -> None:
    model = small_model(tmp_path, seed=2)
    image = zarr_image(tmp_path / "img.zarr", smooth_image((900, 800), seed=2), (256, 256))
    clean = blockwise(model, image, tmp_path / "clean.zarr", client, block=300, tile_size=300)
    marker = tmp_path / "killed"
    hook = kill_worker_once(str(marker), 2)
    killed = blockwise(model, image, tmp_path / "killed.zarr", client, block=300, tile_size=300, on_block_start=hook)
    assert marker.is_file()
    np.testing.assert_array_equal(
        zarr.open_array(killed.arrays["probabilities"], mode="r")[...],
        zarr.open_array(clean.arrays["probabilities"], mode="r")[...],
    )


def test_cli_reads_ome_zarr_and_writes_ome_zarr_with_its_scale_on_an_existing_cluster(tmp_path: Path, client,
                                                                                      capsys) -> None:
    from ome_zarr.format import FormatV04
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr.writer import write_image

    from biounet.cli.main import main

    model = small_model(tmp_path, seed=4)
    pixels = smooth_image((420, 380), seed=4)
    group = zarr.open_group(str(tmp_path / "in.ome.zarr"), mode="w", zarr_format=2)
    write_image(pixels[None], group, axes="cyx", fmt=FormatV04(), scale_factors=[], scale={"c": 1, "y": 0.5, "x": 0.25})
    out = tmp_path / "pred.zarr"
    code = main(["predict", str(model), str(tmp_path / "in.ome.zarr"), "--out", str(out), "--dask",
                 client.scheduler.address, "--block-size", "200", "--tile-size", "160", "--batch-size", "1",
                 "--threads", "1", "--precision", "fp32", "--probability-dtype", "float32",
                 "--output", "probabilities", "--output", "labels"])
    assert code == 0
    err = capsys.readouterr().err
    assert "Dask cluster with 2 workers; dashboard:" in err and f"wrote {out}" in err
    nodes = {n.zarr.path.rstrip("/"): n for n in Reader(parse_url(str(out)))()}
    image = next(n for path, n in nodes.items() if path.endswith("pred.zarr"))
    label_node = next(n for path, n in nodes.items() if path.endswith("labels/labels"))
    assert label_node.data[0].shape == pixels.shape and "image-label" in label_node.zarr.root_attrs
    assert image.metadata["coordinateTransformations"][0][0]["scale"] == [1.0, 0.5, 0.25]
    expected = predict(model, pixels, tile_size=160, **SINGLE)
    np.testing.assert_array_equal(np.asarray(image.data[0]), expected)
    classes = zarr.open_array(str(out / "labels" / "labels" / "0"), mode="r")
    np.testing.assert_array_equal(classes[...], np.argmax(expected, axis=0))
    assert (tmp_path / "pred.zarr.json").is_file()


def membrane_cells(shape: tuple[int, int], seed: int = 5) -> np.ndarray:
    """float32 image of Voronoi cells (220) behind dark membranes, brighter towards each cell's middle (no plateaus)."""
    from scipy import ndimage
    from skimage.segmentation import find_boundaries

    rng = np.random.default_rng(seed)
    markers = np.zeros(shape, np.int32)
    points = rng.integers(0, shape, size=(220, 2))
    markers[points[:, 0], points[:, 1]] = np.arange(1, 221)
    _, nearest = ndimage.distance_transform_edt(markers == 0, return_indices=True)
    membrane = find_boundaries(markers[nearest[0], nearest[1]], mode="thick")
    image = 0.6 + 0.4 * np.minimum(ndimage.distance_transform_edt(~membrane), 8) / 8
    image[membrane] = 0.05
    return (image + 0.01 * rng.random(shape)).astype(np.float32)


def membrane_model(tmp: Path) -> Path:
    """A membrane model (issue 19's cells): the pass-through U-Net of :func:`intensity_model`, P(interior) =
    sigmoid(20 x - 10); its instances are :func:`biounet.inference.cells.cells_from_membranes`."""
    model = UNet(base_channels=4, depth=2, num_classes=2, dropout=0.0)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for name in ("encoder_first.0", "encoder_first.3", "up.1.block.0", "up.1.block.3"):
            dict(model.named_modules())[name].weight[0, 0, 1, 1] = 1.0
        model.head.weight[:, 0, 0, 0] = torch.tensor([-10.0, 10.0])
        model.head.bias[:] = torch.tensor([5.0, -5.0])
    target = {"kind": "instances", "style": "membrane", "class_names": ["membrane", "interior"],
              "interior_class": 1, "foreground_classes": [0, 1], "threshold": 0.5}
    return save_model(model, tmp / "membranes.safetensors",
                      pipeline={"target": target, "normalization": {"method": "minmax"}})


def test_cells_of_a_membrane_model_blockwise_equal_the_single_process_cells(tmp_path: Path, client) -> None:
    model = membrane_model(tmp_path)
    image = zarr_image(tmp_path / "em.zarr", membrane_cells((500, 460)), (256, 256))
    expected = predict(model, image, output="instances", tile_size=200, **SINGLE)
    result = blockwise(model, image, tmp_path / "em_out.zarr", client, ("instances",), block=150, tile_size=200,
                       overlap=64)
    labels = zarr.open_array(result.arrays["instances"], mode="r")[...]
    assert result.blocks >= 9 and expected.max() > 150
    assert_same_up_to_renumbering(labels, expected)


def test_same_padded_model_blocks_equal_the_single_process_halo_crop(tmp_path: Path, client) -> None:
    """A same-padded model's blocks run the single-process run's own tiles (halo crop included; a tile across a
    block border is run by both blocks), so they equal it exactly too, not only within a tolerance."""
    model = small_model(tmp_path, seed=5, padding="same")
    image = zarr_image(tmp_path / "same.zarr", smooth_image((610, 500), seed=5), (256, 256))
    expected = predict(model, image, tile_size=128, **SINGLE)
    result = blockwise(model, image, tmp_path / "same_out.zarr", client, block=180, tile_size=128)
    assert result.blocks >= 6
    np.testing.assert_array_equal(zarr.open_array(result.arrays["probabilities"], mode="r")[...], expected)


def test_the_block_cells_of_a_3d_membrane_model_use_the_spacing(tmp_path: Path, client) -> None:
    """Two cells above each other split by a membrane section with a hole (tests/inference/test_spacing.py):
    isotropic, the hole joins them; with sections 10x thicker the blocks' cells keep them apart."""
    model = UNet(spatial_dims=3, base_channels=4, depth=2, num_classes=2, dropout=0.0)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for name in ("encoder_first.0", "encoder_first.3", "up.1.block.0", "up.1.block.3"):
            dict(model.named_modules())[name].weight[0, 0, 1, 1, 1] = 1.0
        model.head.weight[:, 0, 0, 0, 0] = torch.tensor([-10.0, 10.0])
        model.head.bias[:] = torch.tensor([5.0, -5.0])
    cells = {"interior_threshold": 0.5, "seed_distance": 4.0, "merge_threshold": 0.3, "min_size": 4}
    target = {"kind": "instances", "style": "membrane", "class_names": ["membrane", "interior"],
              "interior_class": 1, "foreground_classes": [0, 1], "threshold": 0.5, "cells": cells}
    path = save_model(model, tmp_path / "m3.safetensors", pipeline={"target": target,
                                                                   "normalization": {"method": "minmax"}})
    volume = np.full((7, 24, 24), 0.95, np.float32)
    volume[3] = 0.05
    volume[3, 11:14, 11:14] = 0.9
    image = zarr_image(tmp_path / "split.zarr", volume, (7, 24, 24))
    assert predict(path, image, output="instances", tile_size=48, **SINGLE).max() == 1
    result = blockwise(path, image, tmp_path / "split_out.zarr", client, ("instances",), tile_size=48,
                       spacing=(2, 1, 1))
    labels = zarr.open_array(result.arrays["instances"], mode="r")[...]
    assert labels.max() == 2 and labels[0, 0, 0] != labels[6, 0, 0]
    assert result.settings["spacing"] == [2.0, 1.0, 1.0]
