"""Mirroring beyond the image border, computed per tile by index arithmetic.

The paper extrapolates the missing context at the image border by mirroring the image (Fig. 2).  Here
the mirror is never materialised for the whole image: :func:`read_mirrored` maps the coordinates of one
tile back into the image and reads only the box of real pixels that the tile needs, so memory stays
proportional to the tile, not to the image, and lazy arrays (memmap, zarr) are read piece by piece.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def reflect_indices(indices: np.ndarray, size: int) -> np.ndarray:
    """Map integer pixel coordinates onto ``[0, size)`` by mirroring at the borders.

    The mirror is NumPy's ``np.pad(..., mode="reflect")`` (``d c b | a b c d | c b a``, the border
    pixel not repeated), applied again and again when a coordinate lies further out than the image is
    long, which makes it a triangle wave of period ``2 (size - 1)``.  An axis of length 1 maps every
    coordinate to 0 (edge replication), so tiny images never fail.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if size < 1:
        raise ValueError(f"cannot mirror an axis of length {size}")
    if size == 1:
        return np.zeros_like(indices)
    period = 2 * (size - 1)
    folded = np.mod(indices, period)
    return np.where(folded >= size, period - folded, folded)


def read_mirrored(
    array: Any, start: Sequence[int], shape: Sequence[int], *, leading: tuple[Any, ...] = ()
) -> np.ndarray:
    """Read the box ``[start, start + shape)`` of the last ``len(start)`` axes of ``array``, mirrored outside.

    Args:
        array: anything with ``.shape`` and NumPy basic slicing (ndarray, memmap, zarr array, a view
            from :mod:`biounet.inference.sources`).  Only the bounding box of the real pixels the tile
            needs is read (at most the tile's size along every axis).
        start: first pixel of the box per spatial axis; may be negative or beyond the image.
        shape: box size per spatial axis, in pixels.
        leading: index for the axes before the spatial ones, e.g. ``(slice(None),)`` to keep the
            channels of a ``(C, *S)`` array, ``(slice(None), z)`` for slice ``z`` of a stack.

    Returns:
        A NumPy array ``(*kept_leading_axes, *shape)`` in the array's dtype.
    """
    spatial = len(start)
    sizes = tuple(int(n) for n in array.shape[len(array.shape) - spatial :])
    coordinates = [reflect_indices(np.arange(int(s), int(s) + int(n)), size) for s, n, size in zip(start, shape, sizes)]
    boxes = [(int(c.min()), int(c.max()) + 1) for c in coordinates]
    block = np.asarray(array[tuple(leading) + tuple(slice(lo, hi) for lo, hi in boxes)])
    first_spatial = block.ndim - spatial
    for axis, (c, (lo, hi)) in enumerate(zip(coordinates, boxes)):
        if len(c) == hi - lo and c[0] == lo and c[-1] == hi - 1 and (len(c) < 2 or np.all(np.diff(c) == 1)):
            continue  # entirely inside the image: the box is the tile along this axis
        block = np.take(block, c - lo, axis=first_spatial + axis)
    return block
