"""Serial-section changes of 3D tiles: per-section jitter, missing, slipped and shifted sections."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage as ndi

from biounet.augmentation import AugmentationConfig, Augmenter, interpolate_planes
from biounet.augmentation.sections import draw_sections

#: No shared geometry and no intensity changes: only the section options under test change a tile.
PLAIN = dataclasses.replace(AugmentationConfig.disabled(), misalign_max_shift=6.0)
SECTION_OPTIONS = dict(section_jitter_std=2.0, missing_section_prob=0.3, slip_section_prob=0.3, shift_section_prob=0.3)
Z, SIZE = 8, 64


def square_volume() -> tuple[np.ndarray, np.ndarray]:
    """Image ``(1, Z, 64, 64)`` and label ``(Z, 64, 64)``: the same 16x16 square (value 1) in every section."""
    label = np.zeros((Z, SIZE, SIZE), dtype=np.int64)
    label[:, 24:40, 24:40] = 1
    return label[None].astype(np.float32), label


def blob_volume(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A binary pattern of large smooth blobs, the same in every section: image ``(1, Z, 96, 96)``, label."""
    plane = ndi.gaussian_filter(rng.normal(size=(96, 96)), 6.0, mode="wrap") > 0
    label = np.repeat(plane[None], Z, axis=0).astype(np.int64)
    return label[None].astype(np.float32), label


def cut(config: AugmentationConfig, image, label, rng, weight=None, dims: int = 3):
    """A whole-volume tile (same padding) centred on the volume."""
    shape = image.shape[1:]
    center = [n // 2 for n in shape]
    return Augmenter(config, dims).sample(image, label, weight, center, shape, shape, rng)


def mismatch(image_tile: np.ndarray, label_tile: np.ndarray) -> tuple[float, int]:
    """Fraction of pixels where the thresholded image ``(1, Z, Y, X)`` and the binary label ``(Z, Y, X)``
    disagree, and how many of those are not on a label edge (nearest vs cubic only differ at edges)."""
    wrong = (image_tile[0] > 0.5) != (label_tile == 1)
    inside = label_tile == 1
    edges = np.stack([ndi.binary_dilation(plane) & ~ndi.binary_erosion(plane) for plane in inside])
    return float(wrong.mean()), int(np.count_nonzero(wrong & ~edges))


def centroid(plane: np.ndarray) -> np.ndarray:
    """Intensity-weighted centre ``(y, x)`` of a plane, in pixels."""
    return np.array(ndi.center_of_mass(np.asarray(plane, dtype=np.float64)))


def test_options_off_leave_tiles_and_rng_stream_unchanged(rng):
    image = rng.random((1, 10, 50, 60)).astype(np.float32)
    label = rng.integers(0, 3, (10, 50, 60))
    weight = rng.random((10, 50, 60)).astype(np.float32)
    # All section options at 0, with a non-default shift bound: nothing may be drawn for them.
    off = AugmentationConfig(misalign_max_shift=3.0, section_jitter_std=0.0)
    assert not off.changes_sections
    first, second = np.random.default_rng(11), np.random.default_rng(11)
    for _ in range(3):
        where = ((5, 25, 30), (6, 40, 40), (4, 30, 30))
        old = Augmenter(AugmentationConfig(), 3).sample(image, label, weight, *where, first)
        new = Augmenter(off, 3).sample(image, label, weight, *where, second)
        for a, b in zip(old, new):
            assert a.dtype == b.dtype and np.array_equal(a, b)
    assert first.bit_generator.state == second.bit_generator.state


def test_missing_section_is_constant_and_label_unchanged():
    image, label = square_volume()
    config = dataclasses.replace(PLAIN, missing_section_prob=0.4)
    draw = draw_sections(config, Z, (SIZE, SIZE), np.random.default_rng(3))
    assert 0 < draw.missing.sum() < Z
    image_tile, label_tile, _ = cut(config, image, label, np.random.default_rng(3))
    lost = image_tile[0, draw.missing]
    assert np.all(lost == lost.flat[0]) and lost.flat[0] == pytest.approx(image.mean(), rel=1e-6)
    assert np.array_equal(image_tile[0, ~draw.missing], image[0, ~draw.missing])
    assert np.array_equal(label_tile, label)


def test_slipped_section_moves_the_image_but_not_the_label():
    image, label = square_volume()
    config = dataclasses.replace(PLAIN, slip_section_prob=0.5)
    draw = draw_sections(config, Z, (SIZE, SIZE), np.random.default_rng(5))
    slipped = np.abs(draw.slip).sum(axis=1) > 0
    assert 0 < slipped.sum() < Z and np.abs(draw.slip).max() > 2
    image_tile, label_tile, _ = cut(config, image, label, np.random.default_rng(5))
    source = centroid(image[0, 0])
    for k in range(Z):
        assert centroid(image_tile[0, k]) == pytest.approx(source + draw.slip[k], abs=0.05)
    assert np.array_equal(label_tile, label)


def test_shifted_section_moves_image_label_and_weight_of_it_and_all_later_sections():
    image, label = square_volume()
    weight = label.astype(np.float32)
    config = dataclasses.replace(PLAIN, shift_section_prob=0.25)
    draw = draw_sections(config, Z, (SIZE, SIZE), np.random.default_rng(2))
    moved = np.abs(draw.shift).sum(axis=1) > 0
    first = int(np.argmax(moved))
    assert 0 < first and moved[first:].all() and np.abs(draw.shift[first]).max() > 2
    image_tile, label_tile, weight_tile = cut(config, image, label, np.random.default_rng(2), weight)
    source = centroid(label[0])
    for k in range(Z):
        assert centroid(image_tile[0, k]) == pytest.approx(source + draw.shift[k], abs=0.05)
        # Nearest-neighbour labels move by the offset rounded per pixel: within half a pixel.
        assert centroid(label_tile[k]) == pytest.approx(source + draw.shift[k], abs=0.5)
        assert np.count_nonzero((image_tile[0, k] > 0.5) != (label_tile[k] == 1)) <= 2
        assert np.count_nonzero((weight_tile[k] > 0.5) != (label_tile[k] == 1)) <= 2
    assert np.array_equal(label_tile[:first], label[:first])


def test_jitter_deforms_sections_differently_but_keeps_each_label_on_its_image(rng):
    image, label = blob_volume(rng)
    config = dataclasses.replace(PLAIN, section_jitter_std=3.0)
    image_tile, label_tile, _ = cut(config, image, label, np.random.default_rng(4))
    for k in range(1, Z):
        assert np.count_nonzero(label_tile[k] != label_tile[0]) > 50
    assert mismatch(image_tile, label_tile) < (0.01, 1)
    assert mismatch(image_tile, label_tile[::-1])[0] > 0.05  # the check can tell sections apart


def test_jitter_and_shifts_on_top_of_the_shared_geometry_keep_labels_on_the_image(rng):
    image, label = blob_volume(rng)
    geometry = AugmentationConfig(intensity_prob=0.0, blur_prob=0.0, scale=(0.9, 1.1))
    config = dataclasses.replace(geometry, section_jitter_std=2.0, shift_section_prob=0.3)
    for seed in range(3):
        image_tile, label_tile, _ = cut(config, image, label, np.random.default_rng(seed))
        assert mismatch(image_tile, label_tile) < (0.02, 1)


def test_section_options_do_nothing_in_2d(rng):
    image = rng.random((2, 50, 60)).astype(np.float32)
    label = rng.integers(0, 3, (50, 60))
    with_sections = dataclasses.replace(AugmentationConfig(), **SECTION_OPTIONS)
    plain_with_sections = dataclasses.replace(PLAIN, **SECTION_OPTIONS)
    for plain, changed in ((AugmentationConfig(), with_sections), (PLAIN, plain_with_sections)):
        first, second = np.random.default_rng(8), np.random.default_rng(8)
        old = cut(plain, image, label, first, dims=2)
        new = cut(changed, image, label, second, dims=2)
        assert all(np.array_equal(a, b) for a, b in zip(old, new) if a is not None)
        assert first.bit_generator.state == second.bit_generator.state


@pytest.mark.parametrize(("order", "cubic"), [(0, "bicubic"), (1, "bicubic"), (3, "bicubic"), (3, "spline")])
def test_per_section_coordinates_equal_sampling_each_section_alone(rng, order, cubic):
    array = rng.random((2, 6, 30, 40)).astype(np.float32)
    lead = [np.array([4, 3, 2, 1, 0])]
    coords = np.indices((12, 15), dtype=np.float64)[None] + rng.uniform(-8, 20, (5, 2, 1, 1))
    coords += rng.normal(0, 0.5, coords.shape)
    together = interpolate_planes(array, coords, order, lead_indices=lead, cubic=cubic)
    assert together.shape == (2, 5, 12, 15)
    for k, z in enumerate(lead[0]):
        alone = interpolate_planes(array, coords[k], order, lead_indices=[np.array([z])], cubic=cubic)
        np.testing.assert_allclose(together[:, k], alone[:, 0], atol=2e-5)  # float32 grid positions


def test_per_section_coordinates_need_one_set_per_section(rng):
    with pytest.raises(ValueError, match="per-plane coords"):
        interpolate_planes(rng.random((4, 9, 9)), np.zeros((3, 2, 5, 5)), 1, lead_indices=[np.arange(4)])


@pytest.mark.parametrize(
    "changes",
    [
        {"section_jitter_std": -1.0},
        {"misalign_max_shift": -0.5},
        {"misalign_max_shift": float("inf")},
        {"missing_section_prob": 1.5},
        {"slip_section_prob": -0.1},
        {"shift_section_prob": float("nan")},
    ],
)
def test_bad_section_settings_raise_a_one_line_error(changes):
    with pytest.raises(ValueError) as error:
        AugmentationConfig(**changes)
    message = str(error.value)
    assert next(iter(changes)) in message and "\n" not in message


def test_section_settings_are_saved_and_restored():
    config = AugmentationConfig(**SECTION_OPTIONS, misalign_max_shift=4.0)
    data = config.to_dict()
    assert {key: data[key] for key in SECTION_OPTIONS} == SECTION_OPTIONS and data["misalign_max_shift"] == 4.0
    assert AugmentationConfig.from_dict(data) == config and config.changes_sections
