"""Random fields and the image formation steps shared by the styles: smooth noise, illumination, camera, dtype."""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft
from scipy import ndimage as ndi

from biounet.data.synthetic.config import DEFAULT_DTYPE, SyntheticConfig


def smooth_noise(shape: tuple[int, ...], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """A Gaussian random field of ``shape`` with correlation length ``sigma`` px, mean 0 and std 1.

    White noise filtered with a Gaussian in the Fourier domain (periodic), so the cost does not depend
    on ``sigma``.  Returns ``float32``.
    """
    white = rng.standard_normal(shape, dtype=np.float32)
    if sigma <= 0:
        return white
    spectrum = sfft.rfftn(white, workers=-1)
    spectrum = ndi.fourier_gaussian(spectrum, sigma, n=shape[-1])
    field = sfft.irfftn(spectrum, s=shape, workers=-1).astype(np.float32, copy=False)
    field -= field.mean()
    std = float(field.std())
    return field / std if std > 0 else field


def unit_field(shape: tuple[int, ...], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth field in ``[0, 1]`` (the normal CDF of :func:`smooth_noise`, roughly uniform)."""
    from scipy.special import ndtr

    return ndtr(smooth_noise(shape, sigma, rng)).astype(np.float32)


def illumination(shape: tuple[int, ...], amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth multiplicative gain ``(*shape)`` float32, mean 1: a low-frequency random field times a vignette.

    Computed on a grid of about 64 px per side and interpolated linearly (the field is far smoother than
    that grid, so this is exact to the eye and saves most of the cost on large images).
    """
    if amplitude <= 0:
        return np.ones(shape, np.float32)
    coarse = tuple(min(s, 64) for s in shape)
    field = smooth_noise(coarse, min(coarse) / 5.0, rng)
    centre = rng.uniform(0.3, 0.7, len(shape)) * np.array(coarse)
    grids = np.ogrid[tuple(slice(0, s) for s in coarse)]
    radius2 = sum(((g - c) / max(coarse)) ** 2 for g, c in zip(grids, centre))
    gain = (1.0 + 0.5 * amplitude * field) * (1.0 - 0.8 * amplitude * radius2)
    gain = np.clip(gain / gain.mean(), 0.2, None).astype(np.float32)
    if coarse != tuple(shape):
        gain = ndi.zoom(gain, np.array(shape) / np.array(coarse), order=1, mode="nearest")
    return gain


def to_dtype(image: np.ndarray, config: SyntheticConfig) -> np.ndarray:
    """Convert ``[0, 1]`` intensities (membrane) or camera counts (nuclei) to the requested dtype."""
    dtype = config.dtype or DEFAULT_DTYPE[config.style]
    if config.style == "nuclei":  # camera counts
        if dtype == "uint16":
            return np.clip(np.rint(image), 0, 65535).astype(np.uint16)
        scaled = (image - image.min()) / max(float(np.percentile(image, 99.99) - image.min()), 1e-6)
        image = np.clip(scaled, 0.0, 1.0)
    if dtype == "float32":
        return image.astype(np.float32)
    top = 255 if dtype == "uint8" else 65535
    return np.rint(image * top).astype(dtype)


def random_rotation(ndim: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random rotation matrix ``(ndim, ndim)``."""
    q, r = np.linalg.qr(rng.standard_normal((ndim, ndim)))
    return q * np.sign(np.diag(r))


def camera_counts(intensity: np.ndarray, config: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    """Camera model: Poisson photons (``photons`` per unit intensity), gain 4, read noise and offset."""
    photons = rng.poisson(np.clip(intensity, 0.0, None) * config.photons).astype(np.float32)
    counts = config.camera_offset + 4.0 * photons
    counts += rng.normal(0.0, config.read_noise, intensity.shape).astype(np.float32)
    return counts
