"""Intensity normalisation for microscopy, saved with the model so that inference does the same.

The default maps the 1st and 99.8th percentiles of each image (per channel) to 0 and 1, the
convention of CSBDeep/StarDist/Cellpose: robust to hot pixels and to the very different intensity
ranges of 8-bit, 16-bit and float microscopy images.  The statistics are computed once per image
(:func:`image_statistics`, on a strided subsample for very large images, so a lazily read image is
never loaded whole) and applied per tile (:func:`apply_normalization`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

Method = Literal["percentile", "minmax", "zscore", "none"]

#: Statistics are computed on at most this many pixels per channel (a strided subsample beyond).
MAX_STAT_PIXELS = 4_000_000


@dataclass(frozen=True)
class NormalizationConfig:
    """How to scale intensities to roughly [0, 1].

    Attributes:
        method: ``"percentile"`` (default: percentiles ``low``/``high`` -> 0/1), ``"minmax"``,
            ``"zscore"`` (mean 0, std 1) or ``"none"``.
        low, high: percentiles for ``"percentile"``.
        per_channel: statistics per channel (True) or over all channels.
    """

    method: Method = "percentile"
    low: float = 1.0
    high: float = 99.8
    per_channel: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> NormalizationConfig:
        return cls(**(data or {}))


@dataclass(frozen=True)
class IntensityStats:
    """Per-channel offset and scale: ``normalised = (x - offset) / scale``; arrays of shape ``(C,)``."""

    offset: np.ndarray
    scale: np.ndarray


def image_statistics(image: Any, config: NormalizationConfig) -> IntensityStats:
    """Offset and scale for ``image`` ``(C, *S)`` (a NumPy array or a lazy array such as a memmap or zarr).

    NaN and infinite values (:mod:`biounet.data.finite`) are left out of the statistics.
    """
    channels = int(image.shape[0])
    sample = statistics_sample(image).astype(np.float64, copy=False).reshape(channels, -1)
    if not config.per_channel:
        sample = np.broadcast_to(sample.reshape(1, -1), (channels, sample.size))
    if config.method == "none":
        return IntensityStats(np.zeros(channels), np.ones(channels))
    finite = bool(np.isfinite(sample).all())
    # nan-aware reductions only where needed: they are slower, and the common case has no NaN
    percentile, low, high, mean, std = (
        (np.percentile, np.min, np.max, np.mean, np.std)
        if finite
        else (np.nanpercentile, np.nanmin, np.nanmax, np.nanmean, np.nanstd)
    )
    if not finite:
        sample = np.where(np.isfinite(sample), sample, np.nan)
    if config.method == "percentile":
        lo, hi = percentile(sample, [config.low, config.high], axis=1)
    elif config.method == "minmax":
        lo, hi = low(sample, axis=1), high(sample, axis=1)
    elif config.method == "zscore":
        lo = mean(sample, axis=1)
        hi = lo + std(sample, axis=1)
    else:
        raise ValueError(f"unknown normalisation method {config.method!r}")
    scale = np.where(hi - lo > 1e-12, hi - lo, 1.0)
    return IntensityStats(offset=np.asarray(lo, dtype=np.float64), scale=np.asarray(scale, dtype=np.float64))


def apply_normalization(tile: np.ndarray, stats: IntensityStats) -> np.ndarray:
    """Normalise ``tile`` ``(C, *S)`` with precomputed statistics; returns float32."""
    shape = (-1,) + (1,) * (tile.ndim - 1)
    offset = stats.offset.reshape(shape).astype(np.float32)
    scale = stats.scale.reshape(shape).astype(np.float32)
    return (np.asarray(tile, dtype=np.float32) - offset) / scale


def normalize(image: np.ndarray, config: NormalizationConfig) -> np.ndarray:
    """Statistics and application in one call, for in-memory images ``(C, *S)``; returns float32."""
    return apply_normalization(np.asarray(image), image_statistics(image, config))


def statistics_sample(image: Any) -> np.ndarray:
    """``image`` ``(C, *S)``, or a strided subsample of it beyond :data:`MAX_STAT_PIXELS` pixels per channel."""
    spatial = tuple(int(s) for s in image.shape[1:])
    total = math.prod(spatial)
    if total <= MAX_STAT_PIXELS:
        return np.asarray(image[...])
    step = math.ceil((total / MAX_STAT_PIXELS) ** (1 / len(spatial)))
    return np.asarray(image[(slice(None),) + (slice(None, None, step),) * len(spatial)])
