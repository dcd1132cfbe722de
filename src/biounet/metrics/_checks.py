"""Input checks shared by the metrics: equal shapes, integer labels, binary masks.

The metric functions have no file names to report, so their messages name the argument; the
``biounet evaluate`` command checks files first and names them.
"""

from __future__ import annotations

import numpy as np

from biounet.errors import DataError


def check_same_shape(first: np.ndarray, second: np.ndarray, names: tuple[str, str] = ("gt", "pred")) -> None:
    """Raise :class:`DataError` unless both arrays have the same shape."""
    if np.shape(first) != np.shape(second):
        raise DataError(
            f"shape mismatch: {names[0]} has shape {np.shape(first)}, {names[1]} has shape {np.shape(second)}"
        )


def as_labels(array: np.ndarray, name: str = "labels") -> np.ndarray:
    """Return ``array`` as an integer label array; bool becomes 0/1.

    Raises :class:`DataError` for float (or other non-integer) arrays: instance and segment ids must
    be integers, a float array is most likely a probability map that needs thresholding first.
    """
    array = np.asarray(array)
    if array.dtype == bool:
        return array.view(np.uint8)
    if array.dtype.kind not in "ui":
        raise DataError(
            f"{name} must be an integer label image, got dtype {array.dtype} "
            "(threshold probability maps first, e.g. with segments_from_probability)"
        )
    return array


def as_mask(array: np.ndarray) -> np.ndarray:
    """Return ``array != 0`` as bool (probability maps must be thresholded by the caller)."""
    array = np.asarray(array)
    return array if array.dtype == bool else array != 0
