"""The DSB 2018 layout: one mask file per object, read for training and laid out by the converter."""

from __future__ import annotations

import numpy as np

from biounet.data.dsb import dsb_instance_map, read_dsb
from biounet.data.targets import TargetConfig
from biounet.io.images import write_image


def test_dsb_layout_real_images(shared_data):
    root = shared_data / "dsb2018_nuclei_fluo256" / "stage1_train"
    ids = sorted(p.name for p in root.iterdir() if p.is_dir())[:3]
    data = read_dsb(root, TargetConfig(kind="instances"), names=ids)
    assert [s.name for s in data.samples] == ids
    assert data.in_channels == 1 and data.channel_axis == "last" and data.channels == [0]
    for sample in data.samples:
        objects = len(list((root / sample.name / "masks").glob("*.png")))
        assert sample.image.shape[0] == 1 and sample.image.shape[1:] == sample.target.classes.shape
        assert sample.target.instances.max() == objects
        assert set(np.unique(sample.target.classes)) == {0, 1, 2}
    semantic = read_dsb(root, TargetConfig(), names=ids[:1])
    assert np.array_equal(semantic.samples[0].target.classes, data.samples[0].target.instances > 0)


def test_dsb_synthetic_overlap_and_rgba(tmp_path):
    root = tmp_path / "stage1_train"
    grey = np.zeros((16, 16), dtype=np.uint8)
    grey[2:6, 2:6] = 200
    write_image(root / "s1" / "images" / "s1.png", np.stack([grey] * 3 + [np.full_like(grey, 255)], axis=-1))
    for index, (y, x) in enumerate([(2, 2), (2, 6), (10, 10)]):
        mask = np.zeros((16, 16), dtype=np.uint8)
        mask[y : y + 4, x : x + 4] = 255
        write_image(root / "s1" / "masks" / f"m{index}.png", mask)
    data = read_dsb(tmp_path, TargetConfig(kind="instances"))
    instances = data.samples[0].target.instances
    assert instances.max() == 3 and instances[3, 3] == 1 and instances[3, 7] == 2
    classes = data.samples[0].target.classes
    assert classes[3, 5] == 2 and classes[3, 6] == 2  # touching nuclei 1 and 2 are separated


def test_dsb_overlapping_masks_first_file_wins(tmp_path):
    root = tmp_path / "stage1_train"
    write_image(root / "s1" / "images" / "s1.png", np.full((16, 16), 10, dtype=np.uint8))
    first, second = np.zeros((16, 16), np.uint8), np.zeros((16, 16), np.uint8)
    first[2:6, 4:8] = 255
    second[4:8, 4:8] = 255  # rows 4-5 overlap the first mask
    write_image(root / "s1" / "masks" / "a.png", first)
    write_image(root / "s1" / "masks" / "b.png", second)
    instances = read_dsb(tmp_path, TargetConfig(kind="instances")).samples[0].target.instances
    assert np.all(instances[4:6, 4:8] == 1)  # the overlap belongs to a.png, the first mask file
    assert np.all(instances[2:4, 4:8] == 1) and np.all(instances[6:8, 4:8] == 2)
    masks = sorted((root / "s1" / "masks").iterdir())
    assert np.array_equal(dsb_instance_map(masks, (16, 16)), instances)
    assert np.all(dsb_instance_map(masks[::-1], (16, 16))[4:6, 4:8] == 1)  # order decides: now b.png is first


# ------------------------------------------------------------------------------------------ bad input


