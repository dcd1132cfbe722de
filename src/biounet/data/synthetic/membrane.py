"""The ``"membrane"`` style: a relaxed, warped Voronoi tessellation with dark membranes (the ISBI 2012 look)."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from biounet.data.synthetic.config import SyntheticConfig
from biounet.data.synthetic.fields import illumination, smooth_noise, unit_field
from biounet.data.synthetic.labels import connected_objects


def voronoi(seeds: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Nearest-seed label map ``(*shape)`` int32 (seed ``i`` -> label ``i + 1``) via one EDT."""
    index = np.clip(np.rint(seeds).astype(int), 0, np.array(shape) - 1)
    seed_image = np.zeros(shape, np.int32)
    seed_image[tuple(index.T)] = np.arange(1, len(seeds) + 1)
    nearest = ndi.distance_transform_edt(seed_image == 0, return_distances=False, return_indices=True)
    return seed_image[tuple(nearest)]


def relaxed_seeds(config: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    """Seed points ``(N, ndim)`` in pixels: Poisson points, Lloyd-relaxed on a coarse grid, then thinned."""
    shape = np.array(config.shape, float)
    ndim = len(shape)
    ball = math.pi ** (ndim / 2) / math.gamma(ndim / 2 + 1)
    count = max(2, round(float(np.prod(shape)) / (ball * (config.cell_diameter / 2) ** ndim)))
    seeds = rng.uniform(0, shape, (count, ndim))
    factor = max(1.0, config.cell_diameter / 10.0)
    coarse_shape = tuple(max(4, int(math.ceil(s / factor))) for s in shape)
    scale = shape / np.array(coarse_shape)
    coords = np.indices(coarse_shape).reshape(ndim, -1)
    for _ in range(config.relax_iterations):
        labels = voronoi(seeds / scale, coarse_shape).ravel()
        sizes = np.bincount(labels, minlength=count + 1)[1:]
        sums = np.stack([np.bincount(labels, weights=c, minlength=count + 1)[1:] for c in coords], axis=1)
        moved = (sums / np.maximum(sizes, 1)[:, None] + 0.5) * scale
        seeds = moved[sizes > 0]  # a seed that owns no pixel duplicates another one: drop it
        count = len(seeds)
    keep = rng.random(count) >= config.merge_fraction
    keep[rng.integers(count)] = True
    return seeds[keep]


def draw_membrane(config: SyntheticConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Relative EM intensity ``(*shape)`` float32 in about [0, 1] and cell labels (membrane = 0)."""
    shape = config.shape
    ndim = len(shape)
    cells = voronoi(relaxed_seeds(config, rng), shape)
    if config.warp > 0:  # curved borders: look the tessellation up through a smooth displacement
        grids = np.indices(shape, dtype=np.float32)
        for axis in range(ndim):
            grids[axis] += config.warp * smooth_noise(shape, config.cell_diameter / 2.0, rng)
        index = tuple(np.clip(np.rint(g), 0, s - 1).astype(np.intp) for g, s in zip(grids, shape))
        cells = cells[index]
        del grids, index

    edges = np.zeros(shape, bool)
    for axis in range(ndim):
        a = np.swapaxes(cells, 0, axis)
        e = np.swapaxes(edges, 0, axis)
        e[1:] |= a[1:] != a[:-1]
    distance = ndi.distance_transform_edt(~edges).astype(np.float32)  # px to the nearest cell border
    lo, hi = config.membrane_width
    half_width = 0.5 * (lo + (hi - lo) * unit_field(shape, 12.0, rng))
    membrane = distance < half_width
    labels = connected_objects(np.where(membrane, 0, cells), min_size=8, keep_largest=False)

    count = int(cells.max())
    cytoplasm = rng.uniform(0.58, 0.78, count + 1).astype(np.float32)[cells]
    cytoplasm += 0.05 * smooth_noise(shape, 4.0, rng) + 0.06 * smooth_noise(shape, 0.8, rng)
    depth = distance - half_width  # px inside the cell, from the membrane edge
    density = config.organelle_density
    if density > 0:
        blobs = (smooth_noise(shape, 4.0, rng) > 1.7 - 0.4 * math.log(density)) & (depth > 2.0)
        peaks = smooth_noise(shape, 2.5, rng) - (1.6 - 0.4 * math.log(density))
        vesicles = (peaks > 0.0) & (peaks < 0.5) & (depth > 1.5)  # dark rings around the highest peaks
        blob_tone = 0.32 + 0.08 * smooth_noise(shape, 1.0, rng)
        cytoplasm = np.where(blobs, blob_tone, cytoplasm)
        cytoplasm = np.where(vesicles, 0.6 * cytoplasm, cytoplasm)
    dark = 0.18 + 0.05 * smooth_noise(shape, 6.0, rng)
    mix = np.clip(depth + 0.5, 0.0, 1.0)  # one-pixel soft edge between membrane and cytoplasm
    image = dark * (1.0 - mix) + cytoplasm * mix
    if config.blur_sigma > 0:
        image = ndi.gaussian_filter(image, config.blur_sigma)
    image *= illumination(shape, config.illumination, rng)
    return np.clip(image, 0.0, 1.0).astype(np.float32), labels
