"""Cutting augmented tiles (biounet.augmentation.Augmenter) and elastic_deform."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage as ndi

from biounet.augmentation import AugmentationConfig, Augmenter, elastic_deform
from biounet.errors import DataError

GEOMETRY_ONLY = dataclasses.replace(AugmentationConfig(), intensity_prob=0.0, blur_prob=0.0)


def reflect_crop(array: np.ndarray, start, shape, pad: int = 100) -> np.ndarray:
    """Reference crop: np.pad(mode="reflect") (edge pixel not repeated) over the last len(start) axes."""
    widths = [(0, 0)] * (array.ndim - len(start)) + [(pad, pad)] * len(start)
    padded = np.pad(array, widths, mode="reflect")
    return padded[(..., *(slice(pad + s, pad + s + n) for s, n in zip(start, shape)))]


def blob_labels(shape, count: int, rng: np.random.Generator) -> np.ndarray:
    """A label map of ``count`` large Voronoi regions (ids 1..count): big areas away from edges."""
    seeds = np.zeros(shape, dtype=bool)
    seeds[tuple(rng.integers(0, n, count) for n in shape)] = True
    markers = np.cumsum(seeds).reshape(shape) * seeds
    _, (iy, ix) = ndi.distance_transform_edt(~seeds, return_indices=True)
    return markers[iy, ix]


def sample_data(rng, shape=(90, 110), channels=1):
    image = rng.random((channels, *shape)).astype(np.float32)
    label = rng.integers(0, 4, size=shape)
    weight = rng.random(shape).astype(np.float32)
    return image, label, weight


@pytest.mark.parametrize(
    ("center", "input_shape", "output_shape"),
    [((45, 55), (40, 50), (40, 50)), ((3, 107.4), (60, 61), (20, 21)), ((0, 0), (121, 140), (81, 100))],
)
def test_unaugmented_tile_is_a_reflect_padded_crop(rng, center, input_shape, output_shape):
    image, label, weight = sample_data(rng)
    augmenter = Augmenter(AugmentationConfig(), spatial_dims=2)
    image_tile, label_tile, weight_tile = augmenter.sample(
        image, label, weight, center, input_shape, output_shape, rng, augment=False
    )
    start = np.floor(np.asarray(center) + 0.5).astype(int) - np.asarray(input_shape) // 2
    inner = start + (np.asarray(input_shape) - np.asarray(output_shape)) // 2
    assert image_tile.dtype == np.float32 and label_tile.dtype == np.int64 and weight_tile.dtype == np.float32
    assert np.array_equal(image_tile, reflect_crop(image, start, input_shape))
    assert np.array_equal(label_tile, reflect_crop(label, inner, output_shape))
    assert np.array_equal(weight_tile, reflect_crop(weight, inner, output_shape))


def test_disabled_config_gives_the_plain_crop_and_accepts_missing_maps(rng):
    image, label, weight = sample_data(rng)
    plain = Augmenter(AugmentationConfig(), 2).sample(
        image, label, None, (10, 10), (32, 32), (16, 16), rng, augment=False
    )
    disabled = Augmenter(AugmentationConfig.disabled(), 2).sample(image, label, None, (10, 10), (32, 32), (16, 16), rng)
    assert np.array_equal(plain[0], disabled[0]) and np.array_equal(plain[1], disabled[1])
    assert plain[2] is None and disabled[2] is None


def test_flips_alone_are_exact_flips_of_the_crop_for_all_arrays(rng):
    image, label, weight = sample_data(rng)
    config = dataclasses.replace(AugmentationConfig.disabled(), flip=True)
    augmenter = Augmenter(config, 2)
    crop = Augmenter(AugmentationConfig.disabled(), 2).sample(image, label, weight, (40, 40), (30, 31), (30, 31), rng)
    seen = set()
    for seed in range(12):
        tiles = augmenter.sample(image, label, weight, (40, 40), (30, 31), (30, 31), np.random.default_rng(seed))
        flips = [
            axes
            for axes in [(), (0,), (1,), (0, 1)]
            if np.array_equal(tiles[0], np.flip(crop[0], [a + 1 for a in axes]))
        ]
        assert len(flips) == 1
        assert np.array_equal(tiles[1], np.flip(crop[1], flips[0]))
        assert np.array_equal(tiles[2], np.flip(crop[2], flips[0]))
        seen.add(flips[0])
    assert len(seen) >= 3  # the flips are random


def test_quarter_turns_of_square_tiles_are_exact(rng):
    image, label, weight = sample_data(rng)
    config = dataclasses.replace(AugmentationConfig.disabled(), rotate90=True)
    crop = Augmenter(AugmentationConfig.disabled(), 2).sample(image, label, weight, (40, 50), (32, 32), (32, 32), rng)
    turned = Augmenter(config, 2).sample(image, label, weight, (40, 50), (32, 32), (32, 32), np.random.default_rng(3))
    matches = [k for k in range(4) if np.array_equal(turned[1], np.rot90(crop[1], k))]
    assert len(matches) == 1
    assert np.array_equal(turned[0][0], np.rot90(crop[0][0], matches[0]))


def test_full_augmentation_shapes_dtypes_and_no_new_label_values(rng):
    image, _, weight = sample_data(rng, channels=2)
    label = rng.choice(np.array([0, 3, 17, 255]), size=image.shape[1:])
    augmenter = Augmenter(AugmentationConfig(scale=(0.8, 1.25)), 2)
    for seed in range(5):
        image_tile, label_tile, weight_tile = augmenter.sample(
            image, label, weight, (45, 55), (76, 76), (36, 36), np.random.default_rng(seed)
        )
        assert image_tile.shape == (2, 76, 76) and image_tile.dtype == np.float32
        assert label_tile.shape == (36, 36) and label_tile.dtype == np.int64
        assert weight_tile.shape == (36, 36) and weight_tile.dtype == np.float32
        assert set(np.unique(label_tile)) <= {0, 3, 17, 255}
        assert np.isfinite(image_tile).all()
        assert weight.min() - 1e-6 <= weight_tile.min() and weight_tile.max() <= weight.max() + 1e-6  # linear


def test_augmentation_is_reproducible_from_the_rng(rng):
    image, label, weight = sample_data(rng)
    augmenter = Augmenter(AugmentationConfig(), 2)
    args = (image, label, weight, (45, 55), (64, 64), (40, 40))
    first = augmenter.sample(*args, np.random.default_rng(11))
    second = augmenter.sample(*args, np.random.default_rng(11))
    other = augmenter.sample(*args, np.random.default_rng(12))
    for a, b in zip(first, second):
        assert np.array_equal(a, b)
    assert not np.array_equal(first[0], other[0])
    assert not np.array_equal(first[1], other[1])


@pytest.mark.parametrize("cubic", ["bicubic", "spline"])
def test_image_label_and_weight_get_the_same_geometric_transform(rng, cubic):
    labels = blob_labels((120, 130), 8, rng)
    image = labels[None].astype(np.float32)
    weight = labels.astype(np.float32)
    config = dataclasses.replace(GEOMETRY_ONLY, image_interpolation=cubic, scale=(0.9, 1.1))
    augmenter = Augmenter(config, 2)
    for seed in range(4):
        image_tile, label_tile, weight_tile = augmenter.sample(
            image, labels, weight, (60, 65), (100, 100), (60, 60), np.random.default_rng(seed)
        )
        inner = image_tile[0, 20:80, 20:80]
        # Away from label edges (one label in the 7x7 neighbourhood) the interpolated maps equal the labels:
        # exactly for the linear weights, up to the cubic kernels' small overshoot for the image.
        flat = ndi.maximum_filter(label_tile, 7) == ndi.minimum_filter(label_tile, 7)
        assert flat.mean() > 0.3
        assert np.abs(weight_tile - label_tile)[flat].max() < 1e-4
        assert np.array_equal(np.rint(inner)[flat], label_tile[flat])
        assert not np.array_equal(label_tile, labels[40:100, 45:105])  # the tile was transformed


def test_intensity_changes_touch_the_image_only(rng):
    image, label, weight = sample_data(rng)
    config = dataclasses.replace(AugmentationConfig.disabled(), intensity_prob=1.0, blur_prob=1.0)
    crop = Augmenter(AugmentationConfig.disabled(), 2).sample(image, label, weight, (40, 40), (48, 48), (20, 20), rng)
    changed = Augmenter(config, 2).sample(image, label, weight, (40, 40), (48, 48), (20, 20), np.random.default_rng(0))
    assert np.array_equal(changed[1], crop[1]) and np.array_equal(changed[2], crop[2])
    assert np.abs(changed[0] - crop[0]).mean() > 1e-3
    assert changed[0].std() < crop[0].std() * 1.5  # a blur and mild contrast change, not noise explosion


def test_3d_stacks_get_the_same_in_plane_transform_in_every_section(rng):
    section_labels = blob_labels((60, 70), 6, rng)
    labels = np.stack([section_labels] * 6)
    image = np.stack([labels, labels]).astype(np.float32)
    augmenter = Augmenter(GEOMETRY_ONLY, 3)
    image_tile, label_tile, weight_tile = augmenter.sample(
        image, labels, None, (3, 30, 35), (8, 50, 50), (4, 30, 30), np.random.default_rng(5)
    )
    assert image_tile.shape == (2, 8, 50, 50) and label_tile.shape == (4, 30, 30) and weight_tile is None
    assert all(np.array_equal(label_tile[0], section) for section in label_tile)
    assert np.allclose(image_tile[0], image_tile[0, :1], atol=1e-5)
    flat = ndi.maximum_filter(label_tile[0], 7) == ndi.minimum_filter(label_tile[0], 7)
    assert np.array_equal(np.rint(image_tile[1, 2, 10:40, 10:40])[flat], label_tile[0][flat])


def test_3d_unaugmented_tile_mirrors_in_z_too(rng):
    image = rng.random((1, 5, 20, 20)).astype(np.float32)
    labels = rng.integers(0, 3, size=(5, 20, 20))
    tile, label_tile, _ = Augmenter(AugmentationConfig(), 3).sample(
        image, labels, None, (0, 10, 19), (6, 12, 12), (4, 10, 10), rng, augment=False
    )
    assert np.array_equal(tile, reflect_crop(image, (-3, 4, 13), (6, 12, 12)))
    assert np.array_equal(label_tile, reflect_crop(labels, (-2, 5, 14), (4, 10, 10)))


def test_bad_inputs_raise(rng):
    image, label, weight = sample_data(rng)
    augmenter = Augmenter(AugmentationConfig(), 2)
    with pytest.raises(DataError, match="shape"):
        augmenter.sample(image[0], label, weight, (5, 5), (8, 8), (8, 8), rng)
    with pytest.raises(DataError, match="label"):
        augmenter.sample(image, label[:-1], weight, (5, 5), (8, 8), (8, 8), rng)
    with pytest.raises(ValueError, match="output_shape"):
        augmenter.sample(image, label, weight, (5, 5), (8, 8), (10, 8), rng)
    with pytest.raises(ValueError, match="spatial_dims"):
        Augmenter(AugmentationConfig(), 4)
    with pytest.raises(ValueError, match="contrast"):
        AugmentationConfig(contrast=1.5)


def nuclei_with_distances(shape=(140, 150)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synthetic touching nuclei: image ``(1, *S)``, instance ids ``(*S)`` and their distance target ``(*S)``."""
    from biounet.data.synthetic import generate
    from biounet.data.targets import distance_target

    image, instances = generate("nuclei", shape, 3, radius_range=(6, 12))
    return image[None].astype(np.float32), instances.astype(np.int64), distance_target(instances)


def test_sample_maps_cuts_every_float_map_like_the_weight_map(rng):
    image, label, weight = sample_data(rng)
    distance = rng.random(label.shape).astype(np.float32)
    crop = Augmenter(AugmentationConfig(), 2).sample_maps(
        image, label, (weight, None, distance), (3, 107), (60, 61), (20, 21), rng, augment=False
    )
    inner = np.array([3 - 30 + 20, 107 - 30 + 20])
    assert crop[2][1] is None and crop[2][2].dtype == np.float32
    assert np.array_equal(crop[2][0], reflect_crop(weight, inner, (20, 21)))
    assert np.array_equal(crop[2][2], reflect_crop(distance, inner, (20, 21)))
    augmenter = Augmenter(AugmentationConfig(scale=(0.8, 1.25)), 2)
    for seed in range(3):  # the maps change no random draw: sample() gives the same image, labels and weights
        alone = augmenter.sample(image, label, weight, (45, 55), (76, 76), (36, 36), np.random.default_rng(seed))
        image_tile, label_tile, (weight_tile, distance_tile) = augmenter.sample_maps(
            image, label, (weight, distance), (45, 55), (76, 76), (36, 36), np.random.default_rng(seed)
        )
        assert np.array_equal(alone[0], image_tile) and np.array_equal(alone[1], label_tile)
        assert np.array_equal(alone[2], weight_tile) and distance_tile.shape == (36, 36)
        assert not np.array_equal(distance_tile, weight_tile)
    with pytest.raises(DataError, match="float map 1"):
        augmenter.sample_maps(image, label, (weight, distance[:-1]), (5, 5), (8, 8), (8, 8), rng)


def test_a_flip_flips_the_distance_tile_with_the_label_tile():
    image, instances, distance = nuclei_with_distances()
    config = dataclasses.replace(AugmentationConfig.disabled(), flip=True)
    args = (image, instances, (distance,), (70, 75), (60, 61), (40, 41))
    crop = Augmenter(AugmentationConfig.disabled(), 2).sample_maps(*args, np.random.default_rng(0))
    assert np.array_equal(crop[2][0], reflect_crop(distance, (50, 55), (40, 41)))  # identity: the crop
    seen = set()
    for seed in range(8):
        _, label_tile, (distance_tile,) = Augmenter(config, 2).sample_maps(*args, np.random.default_rng(seed))
        axes = [a for a in [(), (0,), (1,), (0, 1)] if np.array_equal(label_tile, np.flip(crop[1], a))]
        assert len(axes) == 1 and np.array_equal(distance_tile, np.flip(crop[2][0], axes[0]))
        seen.add(axes[0])
    assert len(seen) >= 3


def test_the_augmented_distance_tile_is_the_distance_map_of_the_augmented_labels_within_a_few_percent():
    """Full default augmentation (elastic, rotation, flips) on a valid-padding tile (output inside the input): for
    the objects wholly inside the output tile, the resampled distance map and the one recomputed from the
    resampled labels differ by about 0.05 on average (module docstring); a map 2 pixels off differs by far more."""
    from biounet.data.targets import distance_target

    image, instances, distance = nuclei_with_distances()
    augmenter = Augmenter(AugmentationConfig(), 2)
    errors, shifted = [], []
    for seed in range(6):
        _, label_tile, (distance_tile,) = augmenter.sample_maps(
            image, instances, (distance,), (70, 75), (124, 124), (84, 84), np.random.default_rng(seed)
        )
        inside = np.zeros(label_tile.shape, bool)
        for index, box in enumerate(ndi.find_objects(label_tile), start=1):
            if box is not None and all(0 < s.start and s.stop < 84 for s in box):
                inside |= label_tile == index
        assert inside.sum() > 300
        recomputed = distance_target(label_tile)
        errors.append(np.abs(distance_tile - recomputed)[inside].mean())
        shifted.append(np.abs(np.roll(distance_tile, 2, axis=1) - recomputed)[inside].mean())
    assert np.mean(errors) < 0.08 and np.mean(shifted) > 2 * np.mean(errors)


def test_config_round_trips_through_a_dict():
    config = AugmentationConfig(scale=(0.9, 1.2), elastic_std=5.0, image_interpolation="spline")
    assert AugmentationConfig.from_dict(config.to_dict()) == config
    assert AugmentationConfig.disabled().changes_geometry is False


def test_elastic_deform_keeps_labels_is_reproducible_and_deforms(rng):
    labels = blob_labels((96, 96), 10, rng).astype(np.uint8)
    deformed = elastic_deform(labels, np.random.default_rng(1), order=0)
    again = elastic_deform(labels, np.random.default_rng(1), order=0)
    other = elastic_deform(labels, np.random.default_rng(2), order=0)
    assert deformed.dtype == np.uint8 and deformed.shape == labels.shape
    assert set(np.unique(deformed)) <= set(np.unique(labels))
    assert np.array_equal(deformed, again) and not np.array_equal(deformed, other)
    assert 0.01 < np.mean(deformed != labels) < 0.5  # moved, but still the same picture
    assert np.array_equal(elastic_deform(labels, rng, std=0.0, order=0), labels)


def test_elastic_deform_moves_image_and_labels_together(rng):
    labels = blob_labels((80, 90), 8, rng)
    image = np.stack([labels, labels]).astype(np.float32)
    deformed_image = elastic_deform(image, np.random.default_rng(4), order=3)
    deformed_labels = elastic_deform(labels, np.random.default_rng(4), order=0)
    assert deformed_image.dtype == np.float32 and deformed_image.shape == image.shape
    flat = ndi.maximum_filter(deformed_labels, 7) == ndi.minimum_filter(deformed_labels, 7)
    assert np.array_equal(np.rint(deformed_image[1])[flat], deformed_labels[flat])
