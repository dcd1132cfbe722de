"""Mirrored crops, displacement fields and interpolation (biounet.augmentation.geometry)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from biounet.augmentation.geometry import (
    coarse_to_dense_matrix,
    elastic_displacement,
    interpolate_planes,
    mirror_index,
    mirrored_crop,
    take_mirrored,
)


def padded_crop(array: np.ndarray, start, shape, pad: int = 200) -> np.ndarray:
    """Reference: np.pad(mode="reflect") over the last len(start) axes, then a slice."""
    widths = [(0, 0)] * (array.ndim - len(start)) + [(pad, pad)] * len(start)
    padded = np.pad(array, widths, mode="reflect")
    box = tuple(slice(pad + s, pad + s + n) for s, n in zip(start, shape))
    return padded[(..., *box)]


def test_mirror_index_matches_numpy_reflect_padding():
    size = 5
    index = np.arange(-23, 29)
    expected = np.pad(np.arange(size), 30, mode="reflect")[index + 30]
    assert np.array_equal(mirror_index(index, size), expected)
    assert np.array_equal(mirror_index(np.array([-3, 0, 4]), 1), [0, 0, 0])


@pytest.mark.parametrize(
    ("start", "shape"),
    [((0, 0), (7, 9)), ((-5, 3), (12, 4)), ((10, -20), (40, 50)), ((-30, -30), (80, 90)), ((2, 4), (1, 1))],
)
def test_mirrored_crop_equals_reflect_padding(rng, start, shape):
    image = rng.random((2, 17, 23)).astype(np.float32)
    assert np.array_equal(mirrored_crop(image, start, shape), padded_crop(image, start, shape))


def test_take_mirrored_reads_inner_ranges_as_copies(rng):
    image = rng.random((10, 10))
    crop = take_mirrored(image, [np.arange(2, 5), np.arange(3, 9)])
    assert np.array_equal(crop, image[2:5, 3:9])
    crop[...] = -1
    assert image.min() >= 0  # a copy, not a view


def test_coarse_to_dense_matrix_hits_the_grid_points():
    matrix = coarse_to_dense_matrix(101, 3)
    assert matrix.shape == (101, 3)
    assert np.allclose(matrix.sum(axis=1), 1.0)  # constants are reproduced
    assert np.allclose(matrix[[0, 50, 100]], np.eye(3), atol=1e-12)


def test_elastic_displacement_is_smooth_reproducible_and_has_the_grid_std():
    shape = (65, 81)  # grid points on pixels 0, 32, 64 and 0, 40, 80
    field = elastic_displacement(shape, np.random.default_rng(7), grid=3, std=10.0)
    again = elastic_displacement(shape, np.random.default_rng(7), grid=3, std=10.0)
    other = elastic_displacement(shape, np.random.default_rng(8), grid=3, std=10.0)
    assert field.shape == (2, *shape)
    assert np.array_equal(field, again) and not np.allclose(field, other)
    coarse = np.random.default_rng(7).normal(0.0, 10.0, size=(2, 3, 3))
    assert np.allclose(field[:, ::32, ::40], coarse, atol=1e-9)  # corners + midpoints
    assert np.abs(np.diff(field, axis=1)).max() < 3.0  # smooth: a few px change per px at most


@pytest.mark.parametrize("order", [1, 3])
def test_spline_interpolation_matches_map_coordinates_on_the_whole_image(rng, order):
    image = rng.random((40, 50))
    coords = rng.uniform(-15.0, 60.0, size=(2, 20, 30))
    expected = ndi.map_coordinates(image, coords, order=order, mode="mirror")
    got = interpolate_planes(image, coords, order, cubic="spline")
    assert got.dtype == np.float32 and got.shape == (20, 30)
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_torch_interpolation_matches_grid_sample_with_reflection(rng, mode):
    image = rng.random((3, 40, 50)).astype(np.float32)
    coords = rng.uniform(-15.0, 60.0, size=(2, 20, 30))
    grid = np.stack([coords[1] / 49 * 2 - 1, coords[0] / 39 * 2 - 1], axis=-1)[None]
    expected = F.grid_sample(
        torch.from_numpy(image)[None],
        torch.from_numpy(grid).float(),
        mode=mode,
        padding_mode="reflection",
        align_corners=True,
    )[0].numpy()
    got = interpolate_planes(image, coords, 1 if mode == "bilinear" else 3, cubic="bicubic")
    assert got.shape == (3, 20, 30)
    np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("cubic", ["bicubic", "spline"])
def test_cubic_interpolation_at_pixel_centres_reproduces_the_mirrored_crop(rng, cubic):
    image = rng.random((1, 30, 30)).astype(np.float32)
    coords = np.indices((45, 45), dtype=np.float64) - 8.0
    got = interpolate_planes(image, coords, 3, integral=False, cubic=cubic)
    np.testing.assert_allclose(got, padded_crop(image, (-8, -8), (45, 45)), atol=1e-4)


def test_nearest_interpolation_keeps_label_values_and_dtype(rng):
    labels = rng.integers(0, 5, size=(30, 30)).astype(np.uint16) * 7
    coords = rng.uniform(-10.0, 40.0, size=(2, 25, 25))
    got = interpolate_planes(labels, coords, 0)
    assert got.dtype == np.uint16
    assert set(np.unique(got)) <= set(np.unique(labels))
    expected = ndi.map_coordinates(labels.astype(float), np.rint(coords), order=0, mode="mirror")
    assert np.array_equal(got, expected)


def test_lead_indices_gather_sections_mirrored(rng):
    volume = rng.random((2, 5, 12, 12)).astype(np.float32)
    coords = np.indices((12, 12), dtype=np.float64)
    z = np.arange(-2, 7)
    got = interpolate_planes(volume, coords, 3, lead_indices=[z])
    assert np.array_equal(got, volume[:, mirror_index(z, 5)])
