"""Reading training pairs: folder layouts, formats, channels, DSB and ISBI layouts, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from biounet.data.normalization import NormalizationConfig
from biounet.data.readers import pair_files, read_folder_pairs
from biounet.data.targets import TargetConfig
from biounet.errors import DataError, ImageReadError
from biounet.io.images import write_image

SEMANTIC = TargetConfig()
NO_NORM = NormalizationConfig(method="none")


def blob_mask(shape=(24, 32), high=255) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    mask[5:12, 6:15] = high
    mask[15:20, 20:28] = high
    return mask


def make_folders(tmp_path: Path, images: dict[str, np.ndarray], masks: dict[str, np.ndarray]) -> tuple[Path, Path]:
    for folder, files in (("images", images), ("masks", masks)):
        for name, array in files.items():
            write_image(tmp_path / folder / name, array)
    return tmp_path / "images", tmp_path / "masks"


def test_png_pairs_8bit_grayscale(tmp_path):
    mask = blob_mask()
    image = (mask // 2 + 20).astype(np.uint8)
    images, masks = make_folders(tmp_path, {"a.png": image, "b.png": image}, {"a.png": mask, "b.png": mask // 255})
    data = read_folder_pairs(images, masks, SEMANTIC)
    assert [s.name for s in data.samples] == ["a", "b"]
    sample = data.samples[0]
    assert sample.image.shape == (1, 24, 32) and sample.image.dtype == np.float32
    assert data.in_channels == 1 and data.channel_axis is None
    # percentile normalisation: background near 0, objects near 1
    assert sample.image[0, 0, 0] < 0.1 and sample.image[0, 8, 8] > 0.9
    assert np.array_equal(sample.target.classes, mask > 0)
    assert np.array_equal(data.samples[1].target.classes, mask > 0)
    # both binary conventions are reported
    assert any("0/255 (1 file)" in note and "0/1 (1 file)" in note for note in data.notes)


def test_tiff_16bit_and_mask_name_endings(tmp_path):
    mask = blob_mask()
    image = (mask.astype(np.uint16) * 200 + 1000).astype(np.uint16)
    images, masks = make_folders(tmp_path, {"cell.tif": image}, {"cell_mask.tif": mask})
    data = read_folder_pairs(images, masks, SEMANTIC, normalization=NO_NORM)
    assert data.samples[0].image.max() == pytest.approx(255 * 200 + 1000)
    assert data.samples[0].mask_path.name == "cell_mask.tif"


def test_multipage_tiff_as_channels_and_rgb_png(tmp_path):
    mask = blob_mask()
    stack = np.stack([mask, 255 - mask, mask // 2]).astype(np.uint8)  # (3, Y, X) multi-page
    tifffile.imwrite(tmp_path / "pages.tif", stack, photometric="minisblack")
    data = read_folder_pairs(*_single(tmp_path, "pages.tif", mask), SEMANTIC, normalization=NO_NORM)
    assert data.in_channels == 3 and data.channel_axis == "first"
    assert np.array_equal(data.samples[0].image[1], 255 - mask)

    rgb = np.stack([mask, 255 - mask, mask // 2], axis=-1)  # (Y, X, 3) PNG
    write_image(tmp_path / "rgb.png", rgb)
    data = read_folder_pairs(*_single(tmp_path, "rgb.png", mask), SEMANTIC, normalization=NO_NORM)
    assert data.in_channels == 3 and data.channel_axis == "last" and data.channels is None
    assert np.array_equal(data.samples[0].image[2], mask // 2)


def test_grey_rgba_png_uses_channel_zero(tmp_path):
    mask = blob_mask()
    grey = (mask // 3 + 10).astype(np.uint8)
    rgba = np.stack([grey, grey, grey, np.full_like(grey, 255)], axis=-1)
    write_image(tmp_path / "g.png", rgba)
    data = read_folder_pairs(*_single(tmp_path, "g.png", mask), SEMANTIC, normalization=NO_NORM)
    assert data.in_channels == 1 and data.channel_axis == "last" and data.channels == [0]
    assert np.array_equal(data.samples[0].image[0], grey)


def test_3d_stacks_for_3d_and_2d_models(tmp_path):
    mask = np.stack([blob_mask()] * 5)
    volume = (mask // 2 + 3).astype(np.uint8)
    images, masks = make_folders(tmp_path, {"v.tif": volume}, {"v.tif": mask})
    data3 = read_folder_pairs(images, masks, SEMANTIC, spatial_dims=3)
    assert data3.samples[0].image.shape == (1, 5, 24, 32)
    data2 = read_folder_pairs(images, masks, SEMANTIC, spatial_dims=2)
    assert [s.name for s in data2.samples] == [f"v[z={z}]" for z in range(5)]
    assert data2.samples[2].image.shape == (1, 24, 32)


def test_pairing_by_trailing_number(tmp_path):
    mask = blob_mask()
    images, masks = make_folders(
        tmp_path, {"02.tif": mask, "10.tif": mask}, {"labels00000002.png": mask, "labels00000010.png": mask}
    )
    pairs = pair_files(images, masks)
    assert [(name, m.name) for name, _, m in pairs] == [("02", "labels00000002.png"), ("10", "labels00000010.png")]


def test_isbi_layout(shared_data):
    root = shared_data / "isbi2012_em" / "train"
    config = TargetConfig(kind="instances", style="membrane")
    pairs = pair_files(root / "image", root / "label")
    assert [p[0] for p in pairs[:3]] == ["0", "1", "2"] and len(pairs) >= 20  # natural order
    data = read_folder_pairs(root / "image", root / "label", config, names=["0", "1"])
    assert len(data.samples) == 2 and data.in_channels == 1
    sample = data.samples[0]
    assert sample.image.shape == (1, 512, 512)
    assert set(np.unique(sample.target.classes)) == {0, 1}
    assert sample.target.instances.max() > 20
    assert any("membrane 0/255" in note for note in data.notes)


def test_size_mismatch_names_the_image(tmp_path):
    images, masks = make_folders(tmp_path, {"a.png": np.zeros((20, 20), np.uint8)}, {"a.png": blob_mask()})
    with pytest.raises(DataError, match=r"a\.png: image of shape \(20, 20\) does not match its mask"):
        read_folder_pairs(images, masks, SEMANTIC)


def test_unexpected_mask_values_name_the_mask(tmp_path):
    mask = blob_mask()
    mask[0, 0] = 128
    images, masks = make_folders(tmp_path, {"a.png": mask}, {"a.png": mask})
    with pytest.raises(DataError, match=r"masks/a\.png: unexpected mask values \{0, 128, 255\}"):
        read_folder_pairs(images, masks, SEMANTIC)


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(DataError, match=r"masks: no mask files"):
        read_folder_pairs(tmp_path / "images", tmp_path / "masks", SEMANTIC)
    write_image(tmp_path / "masks" / "a.png", blob_mask())
    with pytest.raises(DataError, match=r"images: no image files"):
        read_folder_pairs(tmp_path / "images", tmp_path / "masks", SEMANTIC)
    with pytest.raises(DataError, match=r"nowhere: no such image folder"):
        read_folder_pairs(tmp_path / "nowhere", tmp_path / "masks", SEMANTIC)


def test_unreadable_file_is_named(tmp_path):
    images, masks = make_folders(tmp_path, {}, {"a.png": blob_mask()})
    images.mkdir()
    (images / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    with pytest.raises(ImageReadError, match=r"images/a\.png: cannot read image"):
        read_folder_pairs(images, masks, SEMANTIC)


def test_channel_count_mismatch_names_the_image(tmp_path):
    mask = blob_mask()
    rgb = np.stack([mask, 255 - mask, mask // 2], axis=-1)
    images, masks = make_folders(tmp_path, {"a.png": rgb, "b.png": mask}, {"a.png": mask, "b.png": mask})
    with pytest.raises(DataError, match=r"b\.png: 1 channel\(s\).*a\.png has 3"):
        read_folder_pairs(images, masks, SEMANTIC)


def test_image_without_mask_and_mask_without_image(tmp_path):
    images, masks = make_folders(tmp_path, {"a.png": blob_mask(), "b.png": blob_mask()}, {"a.png": blob_mask()})
    with pytest.raises(DataError, match=r"b\.png: no mask named b\.\*"):
        read_folder_pairs(images, masks, SEMANTIC)
    write_image(masks / "c.png", blob_mask())
    (images / "b.png").unlink()
    with pytest.raises(DataError, match=r"c\.png: mask without an image"):
        read_folder_pairs(images, masks, SEMANTIC)


def _single(tmp_path: Path, image_name: str, mask: np.ndarray) -> tuple[Path, Path]:
    folder = tmp_path / Path(image_name).stem
    (folder / "images").mkdir(parents=True)
    (tmp_path / image_name).rename(folder / "images" / image_name)
    write_image(folder / "masks" / f"{Path(image_name).stem}.png", mask)
    return folder / "images", folder / "masks"
