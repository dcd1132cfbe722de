"""The ``sections`` layout on a real crop of the ssTEM VNC stack: targets, neurons, 2.5D channels, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from scipy import ndimage as ndi

from biounet.data.normalization import NormalizationConfig, normalize
from biounet.data.sections import (
    VNC_CLASSES,
    context_channels,
    find_stack,
    link_sections,
    neuron_labels,
    read_sections,
    semantic_labels,
    split_volume,
)
from biounet.data.targets import TargetConfig
from biounet.errors import DataError

SECTIONS = range(6)
#: A 128 x 128 window (y, x) with mitochondria and synapses that overlap membranes in sections 0-5.
BOX = (256, 640, 384, 768)  # PIL order: left, upper, right, lower

MEMBRANES = TargetConfig(kind="instances", style="membrane")
CLASSES = TargetConfig(kind="semantic", classes=[0, 1, 2, 3], class_names=list(VNC_CLASSES))


def write_crop(shared_data: Path, out: Path) -> Path:
    """Sections 0-5 of ``stack1`` cropped to :data:`BOX`, same layout, names and PNG modes; returns the root."""
    source = shared_data / "drosophila_vnc_sstem" / "stack1"
    stack = out / "vnc" / "stack1"
    left, upper, right, lower = BOX
    for z in SECTIONS:
        (stack / "raw").mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(stack / "raw" / f"{z:02d}.tif", tifffile.imread(source / "raw" / f"{z:02d}.tif")[
            upper:lower, left:right])
        for folder, name in (("membranes", f"{z:02d}"), ("mitochondria", f"{z:02d}"), ("synapses", f"{z:02d}"),
                             ("labels", f"labels{z:08d}")):
            (stack / folder).mkdir(exist_ok=True)
            with Image.open(source / folder / f"{name}.png") as image:
                image.crop(BOX).save(stack / folder / f"{name}.png")
    return out / "vnc"


@pytest.fixture(scope="module")
def vnc(shared_data, tmp_path_factory) -> Path:
    return write_crop(shared_data, tmp_path_factory.mktemp("vnc"))


def masks(root: Path, folder: str) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) > 0 for p in sorted((root / "stack1" / folder).iterdir())])


def test_membrane_target_and_neurons(vnc):
    data = read_sections(vnc, MEMBRANES)
    assert [s.name for s in data.samples] == [f"{z:02d}" for z in SECTIONS] and data.in_channels == 1
    membranes = masks(vnc, "membranes")
    labels = np.stack([np.asarray(Image.open(p)) for p in sorted((vnc / "stack1" / "labels").iterdir())])
    # membranes/ is the label map's membrane values, glia (159) and part of the synapses (223)
    drawn = (labels <= 128) | (labels == 159)
    assert np.all(membranes[drawn]) and np.all(labels[membranes & ~drawn] == 223)
    classes = np.stack([s.target.classes for s in data.samples])
    neurons = np.stack([s.target.instances for s in data.samples])
    assert np.array_equal(classes, (~membranes).astype(np.uint8))
    assert np.array_equal(neurons > 0, ~membranes)
    assert np.array_equal(neurons, neuron_labels(vnc, list(SECTIONS)))
    # neurons continue through sections, where 3D components of the interior merge nearly all into one
    spans = [np.unique(np.nonzero(neurons == i)[0]).size for i in range(1, neurons.max() + 1)]
    sizes = np.bincount(neurons.ravel())[1:]
    blobs = np.bincount(ndi.label(~membranes)[0].ravel())[1:]
    assert max(spans) == len(SECTIONS) and blobs.max() > 0.95 * blobs.sum() and sizes.max() < 0.5 * sizes.sum()
    assert blobs.size < 10 < neurons.max() < sum(ndi.label(~m)[1] for m in membranes)


def test_linking_needs_a_mutual_large_overlap():
    interior = np.zeros((3, 10, 10), dtype=bool)
    interior[0, 1:9, 1:5] = True  # one cell that continues as one cell
    interior[1, 1:9, 2:6] = True
    interior[2, 1:3, 4:10] = True  # overlaps 2 x 2 of its 12 pixels: a different neuron
    neurons = link_sections(interior)
    assert neurons[0, 4, 3] == neurons[1, 4, 3] != neurons[2, 1, 5]
    assert neurons.max() == 2 and neurons.dtype == np.int32
    interior[2, 1:3, 2:10] = True  # now 2 x 4 of 16: half of the smaller cell, linked
    assert link_sections(interior).max() == 1


def test_semantic_target_later_classes_win(vnc):
    data = read_sections(vnc, CLASSES)
    classes = np.stack([s.target.classes for s in data.samples])
    membranes, mitochondria, synapses = (masks(vnc, f) for f in ("membranes", "mitochondria", "synapses"))
    assert (membranes & synapses).sum() > 1000  # the crop has the overlap the rule resolves
    assert np.all(classes[synapses] == 3) and np.all(classes[mitochondria & ~synapses] == 2)
    assert np.all(classes[membranes & ~mitochondria & ~synapses] == 1)
    assert np.all(classes[~(membranes | mitochondria | synapses)] == 0)
    assert np.array_equal(classes, semantic_labels(vnc / "stack1", list(SECTIONS)))
    assert all(s.target.instances is None for s in data.samples)


def test_channels_for_2d_25d_and_3d(vnc):
    raw = np.stack([tifffile.imread(p) for p in sorted((vnc / "stack1" / "raw").iterdir())])[np.newaxis]
    stack = normalize(raw, NormalizationConfig())  # statistics of the whole stack
    flat = read_sections(vnc, MEMBRANES).samples
    assert np.array_equal(flat[3].image[0], stack[0, 3])
    context = read_sections(vnc, MEMBRANES, z_context=1)
    assert context.in_channels == 3
    first, last = context.samples[0].image, context.samples[-1].image
    assert np.array_equal(first[0], stack[0, 1]) and np.array_equal(first[1], stack[0, 0])  # section -1 = 1
    assert np.array_equal(first[2], stack[0, 1]) and np.array_equal(last[2], stack[0, 4])  # section 6 = 4
    assert np.array_equal(context.samples[2].image, stack[0, 1:4])
    two = context_channels(stack, 0, 2)
    assert [int(np.flatnonzero([np.array_equal(c, s) for s in stack[0]])[0]) for c in two] == [2, 1, 0, 1, 2]
    volume = read_sections(vnc, MEMBRANES, spatial_dims=3)
    (sample,) = volume.samples
    assert sample.name == "stack1" and sample.image.shape == (1, 6, 128, 128)
    assert np.array_equal(sample.image, stack) and sample.target.instances.shape == (6, 128, 128)
    train, val = split_volume(sample, {4, 5})
    assert [s.name for s in train] == ["stack1[z=0:4]"] and [s.name for s in val] == ["stack1[z=4:6]"]
    assert np.array_equal(val[0].target.classes, sample.target.classes[4:])
    with pytest.raises(DataError, match="z_context is for 2D models"):
        read_sections(vnc, MEMBRANES, spatial_dims=3, z_context=1)
    with pytest.raises(DataError, match="needs at least 7 sections"):
        read_sections(vnc, MEMBRANES, z_context=6)


def broken(vnc: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "bad"
    shutil.copytree(vnc, copy)
    return copy / "stack1"


def one_line_error(path: Path, config: TargetConfig = MEMBRANES) -> str:
    with pytest.raises(DataError) as error:
        read_sections(path, config)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_bad_layouts_give_one_line_errors(vnc, tmp_path):
    assert find_stack(vnc) == find_stack(vnc / "stack1") == vnc / "stack1"
    assert "expected a stack folder with raw/" in one_line_error(tmp_path)
    stack = broken(vnc, tmp_path / "a")
    shutil.rmtree(stack / "membranes")
    assert f"{stack / 'membranes'}: no such mask folder" in one_line_error(stack)
    stack = broken(vnc, tmp_path / "b")
    (stack / "synapses" / "03.png").unlink()
    assert f"{stack / 'synapses'}: no mask for section 3" in one_line_error(stack, CLASSES)
    stack = broken(vnc, tmp_path / "c")
    tifffile.imwrite(stack / "raw" / "02.tif", np.zeros((64, 128), np.uint8))
    assert f"{stack / 'raw' / '02.tif'}: section of shape (64, 128)" in one_line_error(stack)
    stack = broken(vnc, tmp_path / "d")
    Image.new("L", (100, 128)).save(stack / "membranes" / "01.png")
    assert f"{stack / 'membranes' / '01.png'}: mask of shape (128, 100)" in one_line_error(stack)
    stack = broken(vnc, tmp_path / "e")
    shutil.rmtree(stack / "raw")
    assert "expected a stack folder with raw/" in one_line_error(stack)
