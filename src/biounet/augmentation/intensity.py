"""Random intensity changes of an image tile: blur, gamma, contrast, brightness and noise."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from biounet.augmentation.config import AugmentationConfig


def augment_intensity(tile: np.ndarray, config: AugmentationConfig, rng: np.random.Generator) -> np.ndarray:
    """Randomly changed copy of ``tile`` ``(C, *S)`` float32 (in order: blur, gamma, contrast, brightness, noise).

    Every channel gets the same random parameters. Blur and the other changes are drawn independently,
    with probabilities ``config.blur_prob`` and ``config.intensity_prob``.
    """
    tile = np.array(tile, dtype=np.float32)
    if config.blur_sigma > 0 and rng.random() < config.blur_prob:
        tile = blur(tile, rng.uniform(0.0, config.blur_sigma))
    if rng.random() >= config.intensity_prob:
        return tile
    axes = tuple(range(1, tile.ndim))
    if config.gamma > 0:
        tile = apply_gamma(tile, rng.uniform(1.0 - config.gamma, 1.0 + config.gamma))
    if config.contrast > 0:
        factor = np.float32(rng.uniform(1.0 - config.contrast, 1.0 + config.contrast))
        mean = tile.mean(axis=axes, keepdims=True)
        tile = (tile - mean) * factor + mean
    if config.brightness > 0:
        tile += np.float32(rng.uniform(-config.brightness, config.brightness) * config.intensity_range)
    if config.noise_std > 0:
        std = rng.uniform(0.0, config.noise_std) * config.intensity_range
        tile += rng.standard_normal(tile.shape, dtype=np.float32) * np.float32(std)
    return tile


def blur(tile: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of ``tile`` ``(C, *S)`` in-plane (last two axes) with ``sigma`` pixels, mirrored edges."""
    sigmas = (0.0,) * (tile.ndim - 2) + (sigma, sigma)
    return ndi.gaussian_filter(tile, sigma=sigmas, mode="mirror").astype(np.float32, copy=False)


def apply_gamma(tile: np.ndarray, gamma: float) -> np.ndarray:
    """``x ** gamma`` per channel of ``tile`` ``(C, *S)`` rescaled to [0, 1] by its minimum and maximum."""
    axes = tuple(range(1, tile.ndim))
    low = tile.min(axis=axes, keepdims=True)
    span = tile.max(axis=axes, keepdims=True) - low
    span = np.where(span > 0, span, np.float32(1.0))
    unit = np.clip((tile - low) / span, 0.0, 1.0)
    return (unit ** np.float32(gamma)) * span + low
