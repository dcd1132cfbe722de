"""Pixels that are not numbers (NaN, +-inf): found when an image is read, refused or filled by choice.

A float image with NaN pixels would otherwise give an all-NaN prediction without a word, and in training
a NaN loss whose message ("lower the learning rate") sends the user the wrong way.  So every float image
is checked as it is read: whole in-memory images at once, lazily read images tile by tile (the check is
one ``isfinite`` pass over the tile, cheap beside the network).  The choice (``nan_policy``):

- ``"refuse"`` (default): stop with one line naming the file and how many pixels are not finite;
- ``"fill"``: replace them by the median of the image's finite pixels (per channel), and go on.

Integer images cannot hold NaN and are never scanned.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from biounet.data.normalization import statistics_sample
from biounet.errors import DataError

NAN_POLICIES: tuple[str, ...] = ("refuse", "fill")

#: Rows (along the first spatial axis) read at a time when counting the bad pixels of a lazy image.
COUNT_BLOCK_ROWS = 256


class NonFiniteImageError(DataError):
    """An image has NaN or infinite pixels and the policy is to refuse it."""


def check_policy(policy: str) -> str:
    if policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {', '.join(NAN_POLICIES)}, not {policy!r}")
    return policy


def can_hold_non_finite(dtype: Any) -> bool:
    return np.dtype(dtype).kind in "fc"


def non_finite_count(image: Any) -> int:
    """The number of NaN/inf values in ``image`` ``(C, *S)`` (a lazy array is read in blocks of rows)."""
    if not can_hold_non_finite(image.dtype):
        return 0
    if len(image.shape) < 2:
        return int(np.count_nonzero(~np.isfinite(np.asarray(image[...]))))
    rows = int(image.shape[1])
    total = 0
    for start in range(0, rows, COUNT_BLOCK_ROWS):
        block = np.asarray(image[:, start : start + COUNT_BLOCK_ROWS])
        total += int(np.count_nonzero(~np.isfinite(block)))
    return total


def refusal(where: str, count: int, total: int) -> NonFiniteImageError:
    share = f"{100.0 * count / max(total, 1):.2g} %"
    values = f"{count:,} pixel values ({share}) are" if count != 1 else f"1 pixel value ({share}) is"
    return NonFiniteImageError(
        f"{where}: {values} NaN or infinite; fix the file, or let biounet replace them by the image's median "
        "(--nan-policy fill)"
    )


def finite_medians(sample: np.ndarray) -> np.ndarray:
    """``(C,)`` median of the finite values of each channel of ``sample`` ``(C, ...)`` (0 for a channel without)."""
    flat = np.asarray(sample, dtype=np.float64).reshape(sample.shape[0], -1)
    medians = np.zeros(flat.shape[0])
    for channel, values in enumerate(flat):
        finite = values[np.isfinite(values)]
        medians[channel] = float(np.median(finite)) if finite.size else 0.0
    return medians


def filled(tile: np.ndarray, medians: np.ndarray) -> np.ndarray:
    """``tile`` ``(C, ...)`` with its non-finite values replaced by the channel's median (a copy if needed)."""
    bad = ~np.isfinite(tile)
    if not bad.any():
        return tile
    tile = np.array(tile, copy=True)
    channel_of = np.broadcast_to(np.arange(tile.shape[0]).reshape((-1,) + (1,) * (tile.ndim - 1)), tile.shape)
    tile[bad] = medians[channel_of[bad]]
    return tile


def checked_image(image: np.ndarray, where: str, policy: str = "refuse") -> np.ndarray:
    """An in-memory image ``(C, *S)`` checked for non-finite values: refused, or filled (see the module)."""
    check_policy(policy)
    if not can_hold_non_finite(image.dtype):
        return image
    bad = int(np.count_nonzero(~np.isfinite(image)))
    if not bad:
        return image
    if policy == "refuse":
        raise refusal(where, bad, image.size)
    return filled(image, finite_medians(image))


class TileGuard:
    """Checks the tiles read from a lazy image ``(C, *stack, *S)``; refuses or fills as ``policy`` says.

    The medians for ``"fill"`` come from the subsample the intensity statistics use, taken when first needed.
    """

    def __init__(self, source: Any, where: str, policy: str = "refuse") -> None:
        self.source, self.where, self.policy = source, where, check_policy(policy)
        self.active = can_hold_non_finite(source.dtype)
        self._medians: np.ndarray | None = None
        self.filled_values = 0

    def __call__(self, tile: np.ndarray) -> np.ndarray:
        if not self.active or np.isfinite(tile).all():
            return tile
        if self.policy == "refuse":
            raise refusal(self.where, non_finite_count(self.source), math.prod(self.source.shape))
        if self._medians is None:
            self._medians = finite_medians(statistics_sample(self.source))
        self.filled_values += int(np.count_nonzero(~np.isfinite(tile)))
        return filled(tile, self._medians)


__all__ = [
    "NAN_POLICIES",
    "NonFiniteImageError",
    "TileGuard",
    "checked_image",
    "finite_medians",
    "filled",
    "non_finite_count",
]
