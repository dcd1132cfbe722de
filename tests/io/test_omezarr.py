"""OME-Zarr in: level 0, axes and scale of files written by ome-zarr-py itself (NGFF 0.4 and 0.5); bad ones refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from biounet.errors import ImageReadError
from biounet.io import omezarr
from biounet.io.images import open_image, read_image


def write_ome(path: Path, image: np.ndarray, axes: str, scale: list[float], version: str = "0.4") -> Path:
    """An OME-Zarr image written by ome-zarr-py (one level, the given pixel sizes)."""
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import write_image

    fmt = FormatV04() if version == "0.4" else FormatV05()
    group = zarr.open_group(str(path), mode="w", zarr_format=2 if version == "0.4" else 3)
    write_image(image, group, axes=axes, fmt=fmt, scale_factors=[], scale=dict(zip(axes, scale)))
    return path


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_level0_axes_and_scale_are_read(tmp_path: Path, version: str) -> None:
    image = np.arange(2 * 30 * 40, dtype=np.uint16).reshape(1, 2, 30, 40)
    path = write_ome(tmp_path / "img.ome.zarr", image, "tcyx", [1.0, 1.0, 0.5, 0.25], version)
    assert omezarr.is_omezarr(path)
    array, info = omezarr.open_level0(path)
    assert array.shape == (2, 30, 40) and info.version == version  # the length-1 time axis is dropped
    assert [a["name"] for a in info.axes] == ["c", "y", "x"] and info.channel_axis == 0
    assert info.spatial(2)[1] == [0.5, 0.25]
    np.testing.assert_array_equal(array[1, 5:7, :3], image[0, 1, 5:7, :3])
    np.testing.assert_array_equal(open_image(path)[...], image[0])  # what predict and train read
    np.testing.assert_array_equal(read_image(path), image[0])


def test_plain_zarr_is_not_ome_and_still_opens(tmp_path: Path) -> None:
    z = zarr.open_array(str(tmp_path / "plain.zarr"), mode="w", shape=(20, 30), dtype=np.uint8)
    z[...] = 7
    assert not omezarr.is_omezarr(tmp_path / "plain.zarr")
    assert open_image(tmp_path / "plain.zarr").shape == (20, 30)


def test_a_time_series_is_refused_in_one_line_naming_the_file(tmp_path: Path) -> None:
    path = write_ome(tmp_path / "movie.zarr", np.zeros((3, 20, 20), np.uint8), "tyx", [1.0, 1.0, 1.0])
    with pytest.raises(ImageReadError, match=r"movie\.zarr: a time series \(3 time points\)") as caught:
        open_image(path)
    assert "\n" not in str(caught.value)


def test_written_images_and_labels_are_read_back_by_ome_zarr_py(tmp_path: Path) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    root = tmp_path / "out.zarr"
    axes = [{"name": "y", "type": "space", "unit": "micrometer"}, {"name": "x", "type": "space", "unit": "micrometer"}]
    probs = omezarr.create_image(root, (2, 50, 60), np.float16, (1, 25, 30), axes, [0.5, 0.25], name="probabilities",
                                 channel_names=["background", "cell"])
    probs[...] = 0.25
    labels = omezarr.create_labels(root, "instances", (50, 60), np.int32, (25, 30), axes, [0.5, 0.25])
    labels[10:20, 10:20] = 3
    nodes = list(Reader(parse_url(str(root)))())
    image = next(n for n in nodes if n.zarr.path.rstrip("/").endswith("out.zarr"))
    label = next(n for n in nodes if n.zarr.path.rstrip("/").endswith("instances"))
    assert image.data[0].shape == (2, 50, 60) and float(image.data[0][1, 0, 0].compute()) == 0.25
    assert image.metadata["coordinateTransformations"][0][0]["scale"] == [1.0, 0.5, 0.25]
    assert label.data[0].shape == (50, 60) and int(label.data[0][15, 15].compute()) == 3
    assert "image-label" in dict(zarr.open_group(str(root / "labels" / "instances")).attrs)
    assert zarr.open_array(str(root / "0")).chunks == (1, 25, 30)
