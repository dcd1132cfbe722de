"""Training tiles: shapes for valid and same networks in 2D and 3D, target crops, oversampling, producer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from biounet.augmentation import AugmentationConfig, Augmenter
from biounet.data.dataset import BatchProducer, TileSampler, step_rng, tile_shapes
from biounet.data.readers import Sample
from biounet.data.targets import Target
from biounet.errors import InvalidInputSizeError
from biounet.model import UNetConfig


def make_sample(shape: tuple[int, ...], seed: int = 0, with_weight: bool = False) -> Sample:
    """An image whose value encodes the pixel position, with a label map = a checkerboard of 8-pixel squares."""
    rng = np.random.default_rng(seed)
    image = rng.random((1, *shape), dtype=np.float32)
    grids = np.indices(shape)
    classes = (sum(g // 8 for g in grids) % 2).astype(np.uint8)
    weight = rng.random(shape, dtype=np.float32) if with_weight else None
    return Sample("s", image, Target(classes=classes), Path("s.png"), weight=weight)


PLAIN_2D = Augmenter(AugmentationConfig.disabled(), 2)


def test_valid_2d_tiles_crop_the_target_to_the_output():
    config = UNetConfig(depth=2, base_channels=4)
    sample = make_sample((50, 70), with_weight=True)
    sampler = TileSampler([sample], config, (60, 60), PLAIN_2D, augment=False, use_weights=True)
    assert sampler.output_shape == (20, 20)
    center = (3, 65)  # near two borders: the tile reaches beyond them
    sampler.center = lambda index, rng: center
    image, label, weight, _ = sampler.tile(np.random.default_rng(5))
    assert image.shape == (1, 60, 60) and label.shape == (20, 20) and weight.shape == (20, 20)
    assert label.dtype == np.int64 and weight.dtype == np.float32
    # the label tile is the centre of the input tile: the same pixels, mirrored at the borders
    padded_classes = np.pad(sample.target.classes, 40, mode="reflect")
    padded_image = np.pad(sample.image[0], 40, mode="reflect")
    y0, x0 = center[0] + 40 - 30, center[1] + 40 - 30
    assert np.array_equal(image[0], padded_image[y0 : y0 + 60, x0 : x0 + 60])
    assert np.array_equal(label, padded_classes[y0 + 20 : y0 + 40, x0 + 20 : x0 + 40])
    assert np.array_equal(weight, np.pad(sample.weight, 40, mode="reflect")[y0 + 20 : y0 + 40, x0 + 20 : x0 + 40])


def test_same_padding_output_equals_input():
    config = UNetConfig(depth=2, base_channels=4, padding="same")
    sampler = TileSampler([make_sample((40, 40))], config, (36, 28), PLAIN_2D)
    batch = sampler.batch(3, np.random.default_rng(0))
    assert batch.images.shape == (3, 1, 36, 28) and batch.labels.shape == (3, 36, 28)
    assert batch.weights is None


def test_3d_valid_tiles():
    config = UNetConfig(spatial_dims=3, depth=1, base_channels=2)
    inp, out = tile_shapes(config, (24, 24, 24))
    assert out == (8, 8, 8)
    sampler = TileSampler([make_sample((10, 30, 30))], config, inp, Augmenter(AugmentationConfig(), 3))
    batch = sampler.batch(2, np.random.default_rng(1))
    assert batch.images.shape == (2, 1, 24, 24, 24) and batch.labels.shape == (2, 8, 8, 8)
    assert set(np.unique(batch.labels)) <= {0, 1}


def test_invalid_tile_size_names_the_nearest_sizes():
    with pytest.raises(InvalidInputSizeError, match="nearest valid"):
        TileSampler([make_sample((64, 64))], UNetConfig(depth=2, base_channels=4), (50, 50), PLAIN_2D)


def test_augmented_tiles_keep_label_values():
    config = UNetConfig(depth=2, base_channels=4)
    sampler = TileSampler([make_sample((64, 64))], config, (60, 60), Augmenter(AugmentationConfig(), 2))
    batch = sampler.batch(4, np.random.default_rng(3))
    assert set(np.unique(batch.labels)) <= {0, 1}
    assert np.isfinite(batch.images).all()


def test_foreground_oversampling_centres_on_focus_pixels():
    config = UNetConfig(depth=2, base_channels=4)
    sample = make_sample((64, 64))
    sample.target.classes[:] = 0
    sample.target.classes[50:54, 10:12] = 1  # 8 foreground pixels
    always = TileSampler([sample], config, (60, 60), PLAIN_2D, foreground_prob=1.0, focus_classes=[1], augment=False)
    rng = np.random.default_rng(0)
    centres = [always.center(0, rng) for _ in range(50)]
    assert all(sample.target.classes[c] == 1 for c in centres)
    never = TileSampler([sample], config, (60, 60), PLAIN_2D, foreground_prob=0.0, focus_classes=[1])
    hits = sum(sample.target.classes[never.center(0, rng)] == 1 for _ in range(200))
    assert hits < 10  # uniform: 8 of 4096 pixels


def test_images_are_drawn_by_size():
    config = UNetConfig(depth=2, base_channels=4)
    sampler = TileSampler([make_sample((10, 10)), make_sample((30, 30))], config, (60, 60), PLAIN_2D)
    assert sampler.image_probabilities == pytest.approx([0.1, 0.9])


def test_background_producer_gives_the_same_batches_as_the_foreground():
    config = UNetConfig(depth=2, base_channels=4)
    sampler = TileSampler([make_sample((64, 64), with_weight=True)], config, (60, 60),
                          Augmenter(AugmentationConfig(), 2), use_weights=True)
    with BatchProducer(sampler, 2, seed=7, start=3) as producer:
        produced = [next(producer) for _ in range(3)]
    for step, batch in produced:
        expected = sampler.batch(2, step_rng(7, step))
        assert np.array_equal(batch.images, expected.images)
        assert np.array_equal(batch.labels, expected.labels)
        assert np.array_equal(batch.weights, expected.weights)
    assert [step for step, _ in produced] == [3, 4, 5]


def test_producer_raises_errors_of_the_thread():
    class Broken(TileSampler):
        def batch(self, size, rng):
            raise RuntimeError("broken sampler")

    sampler = Broken([make_sample((64, 64))], UNetConfig(depth=2, base_channels=4), (60, 60), PLAIN_2D)
    with BatchProducer(sampler, 1, seed=0) as producer, pytest.raises(RuntimeError, match="broken sampler"):
        next(producer)


def test_distance_maps_travel_with_the_tiles_and_change_nothing_else():
    config = UNetConfig(depth=2, base_channels=4)
    sample = make_sample((64, 64), with_weight=True)
    sample.distance = np.random.default_rng(1).random((64, 64), dtype=np.float32)
    augmenter = Augmenter(AugmentationConfig(), 2)
    plain = TileSampler([sample], config, (60, 60), augmenter, use_weights=True)
    with_distances = TileSampler([sample], config, (60, 60), augmenter, use_weights=True, use_distances=True)
    before, batch = plain.batch(3, np.random.default_rng(4)), with_distances.batch(3, np.random.default_rng(4))
    assert before.distances is None and batch.distances.shape == (3, 20, 20) and batch.distances.dtype == np.float32
    for name in ("images", "labels", "weights"):
        assert np.array_equal(getattr(batch, name), getattr(before, name)), name
    plain_crop = TileSampler([sample], config, (60, 60), PLAIN_2D, augment=False, use_distances=True)
    plain_crop.center = lambda index, rng: (30, 40)
    tile = plain_crop.tile(np.random.default_rng(0))
    assert tile.weight is None and np.array_equal(tile.distance, sample.distance[20:40, 30:50])
    sample.distance = None
    with pytest.raises(ValueError, match="no distance map"):
        TileSampler([sample], config, (60, 60), PLAIN_2D, use_distances=True)
