"""Label-map helpers: one id per connected object, and the borders that touching objects share."""

from __future__ import annotations

import numpy as np


def connected_objects(labels: np.ndarray, *, min_size: int, keep_largest: bool) -> np.ndarray:
    """Relabel ``labels`` so that every id is one connected object (face connectivity), ids 1..N.

    A label split into pieces keeps only its largest piece (``keep_largest``) or gives each piece its own
    id; pieces smaller than ``min_size`` pixels become 0.  Returns ``int32`` of the same shape.
    """
    from skimage.measure import label as connected

    pieces = connected(labels, background=0, connectivity=1)
    sizes = np.bincount(pieces.ravel())
    keep = sizes >= max(min_size, 1)
    keep[0] = False
    if keep_largest:
        owner = np.zeros(len(sizes), labels.dtype)
        owner[pieces.ravel()] = labels.ravel()
        order = np.lexsort((sizes, owner))  # by owner, then size: the last of each owner is its largest piece
        last = np.r_[owner[order][1:] != owner[order][:-1], True]
        largest = np.zeros(len(sizes), bool)
        largest[order[last]] = True
        keep &= largest
    new_ids = np.zeros(len(sizes), np.int32)
    new_ids[keep] = np.arange(1, int(keep.sum()) + 1)
    return new_ids[pieces]


def shared_borders(labels: np.ndarray) -> np.ndarray:
    """Float mask of pixels where two different objects touch (both sides non-zero), 1 px per side."""
    border = np.zeros(labels.shape, bool)
    for axis in range(labels.ndim):
        a = np.swapaxes(labels, 0, axis)
        b = np.swapaxes(border, 0, axis)
        touch = (a[1:] != a[:-1]) & (a[1:] > 0) & (a[:-1] > 0)
        b[1:] |= touch
        b[:-1] |= touch
    return border.astype(np.float32)
