"""The ``"nuclei"`` style: elliptical, irregular, often touching nuclei in fluorescence (the DSB 2018 look)."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from biounet.data.synthetic.config import SyntheticConfig
from biounet.data.synthetic.fields import illumination, random_rotation, smooth_noise
from biounet.data.synthetic.labels import connected_objects, shared_borders


def place_nuclei(config: SyntheticConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Centres ``(N, ndim)`` and mean radii ``(N,)``: random nuclei, many placed against a neighbour.

    Dart throwing with a spatial hash: a candidate is rejected when it would sit closer than 0.7 of the
    summed radii to another nucleus (so neighbours may overlap a little and then share a border).
    """
    shape = np.array(config.shape, float)
    ndim = len(shape)
    r_lo, r_hi = config.radius_range
    ball = math.pi ** (ndim / 2) / math.gamma(ndim / 2 + 1)
    mean_volume = ball * float(np.mean(rng.uniform(r_lo, r_hi, 1000) ** ndim))
    target = max(1, round(config.fill_fraction * float(np.prod(shape)) / mean_volume))
    cell = 2.0 * r_hi
    grid: dict[tuple[int, ...], list[int]] = {}
    centres: list[np.ndarray] = []
    radii: list[float] = []
    for _ in range(30 * target):
        if len(centres) >= target:
            break
        radius = rng.uniform(r_lo, r_hi)
        if centres and rng.random() < config.touching_fraction:
            anchor = int(rng.integers(len(centres)))
            direction = rng.standard_normal(ndim)
            direction /= np.linalg.norm(direction) + 1e-12
            centre = centres[anchor] + direction * (radius + radii[anchor]) * rng.uniform(0.78, 0.95)
        else:
            centre = rng.uniform(-0.3 * radius, shape + 0.3 * radius)
        if np.any(centre < -0.5 * radius) or np.any(centre > shape + 0.5 * radius):
            continue
        key = tuple((centre // cell).astype(int))
        neighbours = [
            j
            for offset in np.ndindex(*(3,) * ndim)
            for j in grid.get(tuple(k + o - 1 for k, o in zip(key, offset)), ())
        ]
        if any(np.linalg.norm(centres[j] - centre) < 0.7 * (radius + radii[j]) for j in neighbours):
            continue
        grid.setdefault(key, []).append(len(centres))
        centres.append(centre)
        radii.append(radius)
    return np.array(centres).reshape(-1, ndim), np.array(radii)


def draw_nuclei(config: SyntheticConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Relative fluorescence ``(*shape)`` float32 (before noise) and instance labels ``(*shape)`` int32."""
    shape = config.shape
    ndim = len(shape)
    centres, radii = place_nuclei(config, rng)
    labels = np.zeros(shape, np.int32)
    distance = np.full(shape, np.inf, np.float32)  # ellipse-normalised distance to the owning centre
    wobble = config.irregularity * smooth_noise(shape, 0.5 * config.radius_range[0], rng)
    for index, (centre, radius) in enumerate(zip(centres, radii), start=1):
        log_axes = rng.uniform(-0.5, 0.5, ndim) * math.log(config.max_aspect)
        axes = radius * np.exp(log_axes - log_axes.mean())
        rotation = random_rotation(ndim, rng)
        reach = axes.max() * (1.0 + 4.0 * config.irregularity) + 2.0
        lo = np.maximum(np.floor(centre - reach).astype(int), 0)
        hi = np.minimum(np.ceil(centre + reach).astype(int) + 1, shape)
        if np.any(hi <= lo):
            continue
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        offsets = np.ogrid[box]
        rho2 = 0.0
        for k in range(ndim):  # coordinate along ellipse axis k, scaled by its half-length
            u = sum(rotation[j, k] * (offsets[j] - centre[j]) for j in range(ndim))
            rho2 = rho2 + (u / axes[k]) ** 2
        d = np.sqrt(rho2) + wobble[box]
        wins = (d < 1.0) & (d < distance[box])
        distance[box][wins] = d[wins]
        labels[box][wins] = index
    labels = connected_objects(labels, min_size=0, keep_largest=True)
    count = int(labels.max())

    brightness = np.exp(rng.normal(0.0, 0.3, count + 1)).astype(np.float32)
    brightness[0] = 0.0
    chromatin = 0.6 * smooth_noise(shape, 1.2, rng) + 0.4 * smooth_noise(shape, 3.0, rng)
    nucleoli = smooth_noise(shape, 2.0, rng) > 2.3
    inside = labels > 0
    d_in = np.where(inside, distance, 1.0)
    signal = brightness[labels] * (1.0 - 0.3 * d_in**2) * (1.0 + config.texture * chromatin)
    signal[nucleoli & (d_in < 0.7)] *= 0.6
    if config.border_dimming > 0:
        signal *= 1.0 - config.border_dimming * shared_borders(labels)
    signal = np.clip(signal, 0.0, None)
    haze = config.background * (1.0 + 0.3 * smooth_noise(shape, max(shape) / 8.0, rng))
    image = ndi.gaussian_filter(signal, config.blur_sigma) if config.blur_sigma > 0 else signal
    image = (image + np.clip(haze, 0.0, None)) * illumination(shape, config.illumination, rng)
    return image.astype(np.float32), labels
