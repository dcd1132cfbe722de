"""biounet.data.convert through ``import_local`` (no network): ISBI slices and multi-page TIFFs, DSB
instance maps (and which object overlapping masks give), checksum checks, bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from biounet.data.dsb import read_dsb
from biounet.data.fetch import fetch, import_local
from biounet.data.targets import TargetConfig
from biounet.errors import DataError
from biounet.io.images import read_image, write_image

ISBI_SUBSET = ("train/image/0.png", "train/label/0.png", "train/image/1.png", "train/label/1.png", "test/0.png")


def test_import_shared_isbi_folder(shared_data: Path, tmp_path: Path):
    out = import_local("isbi2012", shared_data / "isbi2012_em", tmp_path / "isbi", progress=False)
    images, masks = sorted((out / "images").glob("*.png")), sorted((out / "masks").glob("*.png"))
    assert [p.name for p in images] == [p.name for p in masks] == [f"{n:02d}.png" for n in range(22)]
    assert len(list((out / "test" / "images").glob("*.png"))) == 30
    label = read_image(masks[5])
    assert set(np.unique(label).tolist()) == {0, 255}  # kept as published: 0 membrane, 255 interior
    assert (out / "images" / "21.png").read_bytes() == (shared_data / "isbi2012_em/train/image/21.png").read_bytes()
    summary = json.loads((out / "dataset.json").read_text())
    assert summary["pairs"] == 22 and sum(r["verified"] for r in summary["files"]) == 74


def test_import_refuses_a_modified_isbi_file(shared_data: Path, tmp_path: Path):
    src = tmp_path / "copy"
    for relative in ISBI_SUBSET:
        (src / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_data / "isbi2012_em" / relative, src / relative)
    label = src / "train" / "label" / "1.png"
    label.write_bytes(label.read_bytes()[:-1] + b"\0")
    with pytest.raises(DataError, match=r"1\.png: SHA-256 mismatch"):
        import_local("isbi2012", src, tmp_path / "out", progress=False)


def test_import_isbi_multipage_tiffs(shared_data: Path, tmp_path: Path):
    import tifffile

    src = tmp_path / "challenge"
    src.mkdir()
    pages = [read_image(shared_data / f"isbi2012_em/train/image/{n}.png") for n in range(3)]
    labels = [read_image(shared_data / f"isbi2012_em/train/label/{n}.png") for n in range(3)]
    tifffile.imwrite(src / "train-volume.tif", np.stack(pages), photometric="minisblack")
    tifffile.imwrite(src / "train-labels.tif", np.stack(labels), photometric="minisblack")
    out = import_local("isbi2012", src, tmp_path / "out", progress=False)
    assert np.array_equal(read_image(out / "images" / "02.png"), pages[2])
    assert np.array_equal(read_image(out / "masks" / "01.png"), labels[1])


def _copy_dsb(shared_data: Path, dest: Path, count: int) -> list[str]:
    stage = shared_data / "dsb2018_nuclei_fluo256" / "stage1_train"
    ids = sorted(p.name for p in stage.iterdir())[:count]
    for image_id in ids:
        shutil.copytree(stage / image_id, dest / "stage1_train" / image_id)
    return ids


def test_import_dsb_builds_instance_label_maps(shared_data: Path, tmp_path: Path):
    ids = _copy_dsb(shared_data, tmp_path / "src", 3)
    out = import_local("dsb2018", tmp_path / "src", tmp_path / "dsb", progress=False)
    for image_id in ids:
        folder = tmp_path / "src" / "stage1_train" / image_id
        rgba = read_image(folder / "images" / f"{image_id}.png")
        image, labels = read_image(out / "images" / f"{image_id}.tif"), read_image(out / "masks" / f"{image_id}.tif")
        assert image.dtype == np.uint8 and np.array_equal(image, rgba[..., 0])
        assert labels.dtype == np.uint16 and labels.shape == image.shape
        mask_files = sorted((folder / "masks").glob("*.png"))
        assert labels.max() == len(mask_files) == len(np.unique(labels)) - 1
        first = read_image(mask_files[0]) > 0
        assert np.all(labels[first] == 1) and np.all(first[labels == 1])


def test_import_shared_dsb_with_limit_verifies_sha256sums(shared_data: Path, tmp_path: Path):
    out = import_local("dsb2018", shared_data / "dsb2018_nuclei_fluo256", tmp_path / "dsb", limit=2, progress=False)
    assert len(list((out / "images").glob("*.tif"))) == 2
    record = json.loads((out / "dataset.json").read_text())["files"][0]
    assert record["images"] == 2 and record["files_verified"] > 2


def test_import_dsb_refuses_a_file_that_contradicts_sha256sums(shared_data: Path, tmp_path: Path):
    (image_id,) = _copy_dsb(shared_data, tmp_path / "src", 1)
    image = tmp_path / "src" / "stage1_train" / image_id / "images" / f"{image_id}.png"
    wrong = hashlib.sha256(b"something else").hexdigest()
    (tmp_path / "src" / "SHA256SUMS").write_text(f"{wrong}  stage1_train/{image_id}/images/{image_id}.png\n")
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        import_local("dsb2018", tmp_path / "src", tmp_path / "dsb", progress=False)
    assert image.is_file()


def test_import_rejects_unknown_layouts_and_unsafe_archives(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no ISBI 2012 data found"):
        import_local("isbi2012", tmp_path / "empty", tmp_path / "out")
    with pytest.raises(DataError, match="no DSB 2018 data found"):
        import_local("dsb2018", tmp_path / "empty", tmp_path / "out")
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as bundle:
        bundle.writestr("../evil.txt", "x")
    with pytest.raises(DataError, match="unsafe path"):
        import_local("dsb2018", tmp_path / "evil.zip", tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()
    with pytest.raises(DataError, match="unknown dataset"):
        fetch("nope", tmp_path / "out")


def _overlapping_dsb(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """One 16 x 16 DSB sample whose two mask files overlap in rows 4-5, columns 4-7; returns the masks."""
    grey = np.full((16, 16), 10, dtype=np.uint8)
    write_image(root / "stage1_train" / "s1" / "images" / "s1.png", np.stack([grey] * 3 + [grey * 0 + 255], axis=-1))
    first, second = np.zeros((16, 16), np.uint8), np.zeros((16, 16), np.uint8)
    first[2:6, 4:8] = 255
    second[4:8, 4:8] = 255
    write_image(root / "stage1_train" / "s1" / "masks" / "a.png", first)
    write_image(root / "stage1_train" / "s1" / "masks" / "b.png", second)
    return first > 0, second > 0


def test_overlapping_masks_first_file_wins_in_converter_and_reader(tmp_path: Path):
    first, second = _overlapping_dsb(tmp_path / "src")
    overlap = first & second
    assert overlap.sum() == 8
    out = import_local("dsb2018", tmp_path / "src", tmp_path / "dsb", progress=False)
    labels = read_image(out / "masks" / "s1.tif")
    assert np.all(labels[overlap] == 1)  # a.png, the first mask file, keeps the overlap
    assert np.all(labels[second & ~overlap] == 2) and np.all(labels[first] == 1)
    instances = read_dsb(tmp_path / "src", TargetConfig(kind="instances")).samples[0].target.instances
    assert np.array_equal(instances, labels)  # training from the originals sees the same objects


def test_every_checksum_mismatch_is_reported_at_once(shared_data: Path, tmp_path: Path):
    src = tmp_path / "copy"
    for relative in ISBI_SUBSET:
        (src / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_data / "isbi2012_em" / relative, src / relative)
    damaged = sorted(p for p in src.rglob("*.png"))[:3]
    for path in damaged:
        path.write_bytes(path.read_bytes()[:-1] + b"\1")
    with pytest.raises(DataError) as caught:
        import_local("isbi2012", src, tmp_path / "out", progress=False)
    message = str(caught.value)
    assert message.startswith("3 files are not the published ones (nothing was laid out): ")
    assert all(f"{path}: SHA-256 mismatch" in message for path in damaged)
    assert not (tmp_path / "out" / "images").exists()
