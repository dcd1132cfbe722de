"""The synthetic microscopy generator: determinism, dtypes, and that the images look like their labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from biounet.data.synthetic import SyntheticConfig, connected_objects, generate, generate_dataset, smooth_noise
from biounet.io.images import read_image


def _touching_pairs(labels: np.ndarray) -> set[tuple[int, int]]:
    """Pairs of different non-zero labels that are face neighbours."""
    pairs = set()
    for axis in range(labels.ndim):
        a = np.moveaxis(labels, axis, 0)
        left, right = a[:-1].ravel(), a[1:].ravel()
        touch = (left != right) & (left > 0) & (right > 0)
        pairs |= {tuple(sorted(p)) for p in zip(left[touch].tolist(), right[touch].tolist())}
    return pairs


@pytest.mark.parametrize("style", ["nuclei", "membrane"])
def test_same_seed_same_output_other_seed_differs(style: str):
    image_a, labels_a = generate(style, (96, 128), 7)
    image_b, labels_b = generate(style, (96, 128), np.random.default_rng(7))
    image_c, _ = generate(style, (96, 128), 8)
    assert np.array_equal(image_a, image_b) and np.array_equal(labels_a, labels_b)
    assert not np.array_equal(image_a, image_c)
    assert image_a.shape == labels_a.shape == (96, 128) and labels_a.dtype == np.int32


def test_nuclei_look_like_fluorescence_with_touching_nuclei():
    image, labels = generate("nuclei", (384, 384), 0)
    assert image.dtype == np.uint16
    count = int(labels.max())
    assert np.array_equal(np.unique(labels), np.arange(count + 1))  # ids 1..N, consecutive
    assert 60 < count < 400
    radii = np.sqrt(np.bincount(labels.ravel())[1:] / np.pi)
    inner = np.median(radii)
    assert 7 < inner < 20  # sizes ~8-20 px radius (objects cut by the border are smaller)
    assert len(_touching_pairs(labels)) >= 0.15 * count  # many nuclei share a border with another
    eroded_inside = ndi.binary_erosion(labels > 0, iterations=2)
    far_outside = ~ndi.binary_dilation(labels > 0, iterations=4)
    assert image[eroded_inside].mean() > 3 * image[far_outside].mean()  # bright nuclei, dark background
    assert connected_objects(labels, min_size=0, keep_largest=False).max() == count  # one piece per nucleus


def test_membrane_looks_like_em_with_thin_dark_membranes():
    image, labels = generate("membrane", (384, 384), 0)
    assert image.dtype == np.uint8
    membrane = labels == 0
    assert 0.08 < membrane.mean() < 0.35  # ISBI 2012: 17-27 % membrane
    assert image[membrane].mean() < image[~membrane].mean() - 40  # membranes are dark
    # membranes are thin: nearly every membrane pixel is within 2.5 px of a cell
    assert np.percentile(ndi.distance_transform_edt(membrane)[membrane], 99) <= 2.5
    # every cell is one connected region, and cells never touch each other directly
    ids = int(labels.max())
    assert ndi.label(labels > 0)[1] == ids and not _touching_pairs(labels)
    sizes = np.bincount(labels.ravel())[1:]
    assert sizes.std() > 0.4 * sizes.mean()  # cells of varied size, not a regular grid


def test_config_knobs_change_the_output():
    _, sparse = generate("nuclei", (256, 256), 1, fill_fraction=0.1)
    _, dense = generate("nuclei", (256, 256), 1, fill_fraction=0.45)
    assert (dense > 0).mean() > 2 * (sparse > 0).mean()
    image, _ = generate("membrane", (64, 64), 1, dtype="float32")
    assert image.dtype == np.float32 and 0.0 <= image.min() and image.max() <= 1.0
    with pytest.raises(ValueError, match="unknown synthetic style"):
        SyntheticConfig(style="cells")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        generate("nuclei", (64, 64), 0, no_such_knob=1)


@pytest.mark.parametrize("style", ["nuclei", "membrane"])
def test_small_3d_stacks(style: str):
    image, labels = generate(style, (24, 96, 96), 3, radius_range=(6.0, 10.0), cell_diameter=24.0)
    assert image.shape == labels.shape == (24, 96, 96)
    assert labels.max() >= 3
    assert ndi.label(labels == 1)[1] == 1


def test_smooth_noise_is_standardised_and_correlated(rng: np.random.Generator):
    field = smooth_noise((128, 128), 6.0, rng)
    assert abs(float(field.mean())) < 1e-3 and abs(float(field.std()) - 1) < 1e-3
    neighbour_correlation = np.corrcoef(field[:, :-1].ravel(), field[:, 1:].ravel())[0, 1]
    assert neighbour_correlation > 0.9


def test_connected_objects_splits_or_keeps_largest():
    labels = np.array([[1, 1, 0, 1], [0, 0, 0, 1], [2, 0, 0, 0], [2, 2, 0, 3]])
    kept = connected_objects(labels, min_size=0, keep_largest=True)
    assert kept[0, :2].tolist() == [0, 0] and kept[0, 3] == 1 and kept.max() == 3
    split = connected_objects(labels, min_size=2, keep_largest=False)
    assert split.max() == 3 and split[3, 3] == 0


def test_generate_dataset_layout_is_what_training_reads(tmp_path: Path):
    out = generate_dataset(tmp_path / "synth", "membrane", count=3, shape=(64, 80), seed=5, progress=False)
    images = sorted(p.name for p in (out / "images").iterdir())
    masks = sorted(p.name for p in (out / "masks").iterdir())
    assert images == masks == ["membrane_000.tif", "membrane_001.tif", "membrane_002.tif"]
    first, label = read_image(out / "images" / images[0]), read_image(out / "masks" / masks[0])
    assert first.shape == label.shape == (64, 80) and label.dtype == np.uint16 and label.max() > 1
    assert not np.array_equal(first, read_image(out / "images" / images[1]))
    again = generate_dataset(tmp_path / "again", "membrane", count=3, shape=(64, 80), seed=5, progress=False)
    assert np.array_equal(read_image(again / "masks" / masks[2]), read_image(out / "masks" / masks[2]))
    assert json.loads((out / "synthetic.json").read_text())["config"]["style"] == "membrane"
