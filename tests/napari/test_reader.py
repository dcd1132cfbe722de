"""The plugin's reader: biounet prediction files with their sidecars, OME-Zarr, and files it leaves to napari."""

from __future__ import annotations

import numpy as np
import pytest

import biounet
from biounet.io.images import write_image
from biounet.io.omezarr import is_omezarr
from biounet.napari.reader import get_reader


@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_predictions_open_as_class_and_label_layers(trained_run, nuclei, tmp_path, suffix):
    image = nuclei[0][1]
    probabilities = biounet.predict(trained_run, image, output="probabilities", out=tmp_path / f"p{suffix}",
                                    progress=False)
    instances = biounet.predict(trained_run, image, output="instances", out=tmp_path / f"i{suffix}", progress=False)
    reader = get_reader(str(probabilities))
    assert reader is not None and get_reader([str(probabilities), str(instances)]) is not None
    layers = reader(str(probabilities))
    assert [(meta["name"], kind) for _, meta, kind in layers] == [
        ("p background", "image"), ("p interior", "image"), ("p boundary", "image")]
    data = np.stack([np.asarray(d) for d, _, _ in layers])
    assert data.dtype == np.float32 and data.shape == (3, 128, 128)
    np.testing.assert_allclose(data.sum(axis=0), 1.0, atol=3e-3)  # float16 on disk
    assert layers[0][1]["contrast_limits"] == (0.0, 1.0)
    assert layers[0][1]["metadata"]["biounet"]["output"]["kind"] == "probabilities"
    [(labels, meta, kind)] = get_reader(str(instances))(str(instances))
    assert kind == "labels" and meta["name"] == "i" and labels.shape == (128, 128)
    assert np.issubdtype(labels.dtype, np.integer)


def test_uint8_probabilities_are_scaled_back(trained_run, nuclei, tmp_path):
    out = biounet.predict(trained_run, nuclei[0][1], out=tmp_path / "p.tif", probability_dtype="uint8", progress=False)
    layers = get_reader(out)(out)
    assert all(d.dtype == np.float32 and 0.0 <= d.min() and d.max() <= 1.0 for d, _, _ in layers)


def test_other_files_are_left_to_napari(tmp_path):
    plain = write_image(tmp_path / "plain.tif", np.zeros((8, 8), np.uint8))
    assert get_reader(str(plain)) is None
    (tmp_path / "plain.tif.json").write_text('{"not": "biounet"}')
    assert get_reader(str(plain)) is None
    assert get_reader(str(tmp_path / "missing.tif")) is None
    assert get_reader(str(tmp_path)) is None and not is_omezarr(tmp_path)


def test_ome_zarr_image_and_labels(tmp_path):
    import zarr
    from ome_zarr.io import parse_url
    from ome_zarr.writer import write_image as write_ome
    from ome_zarr.writer import write_labels

    image = np.random.default_rng(0).integers(0, 255, (2, 64, 48), dtype=np.uint8)
    root = zarr.group(store=parse_url(str(tmp_path / "cells.ome.zarr"), mode="w").store)
    scale = [{"type": "scale", "scale": [1.0, 0.5, 0.25]}]
    write_ome(image, root, axes="cyx", coordinate_transformations=[scale], scaler=None)
    write_labels((image[0] > 128).astype(np.uint8), root, name="cells", axes="yx",
                 coordinate_transformations=[[{"type": "scale", "scale": [0.5, 0.25]}]], scaler=None)
    path = str(tmp_path / "cells.ome.zarr")
    assert is_omezarr(tmp_path / "cells.ome.zarr")
    layers = get_reader(path)(path)
    kinds = [kind for _, _, kind in layers]
    assert kinds == ["image", "labels"]
    data, meta, _ = layers[0]
    level0 = data[0] if isinstance(data, list) else data
    assert tuple(level0.shape) == (2, 64, 48) and meta["channel_axis"] == 0 and len(meta["scale"]) == 2
    np.testing.assert_array_equal(np.asarray(level0), image)
    labels, label_meta, _ = layers[1]
    level0 = labels[0] if isinstance(labels, list) else labels
    assert tuple(level0.shape) == (64, 48) and "channel_axis" not in label_meta
