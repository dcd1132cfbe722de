"""Pixel error: the fraction of pixels whose binary class differs (ISBI 2012 "pixel error")."""

from __future__ import annotations

import numpy as np

from biounet.metrics._checks import as_mask, check_same_shape


def pixel_error(gt: np.ndarray, pred: np.ndarray) -> float:
    """``1 - accuracy`` of two binary maps, any shape (2D ``(Y, X)`` or 3D ``(Z, Y, X)``).

    Both inputs are read as ``!= 0`` (so label images count as foreground/background); threshold
    probability maps before calling.  Returns the fraction of pixels (0..1) where they disagree.

    Raises:
        DataError: different shapes.
    """
    check_same_shape(gt, pred)
    gt_mask, pred_mask = as_mask(gt), as_mask(pred)
    if gt_mask.size == 0:
        return 0.0
    return float(np.count_nonzero(gt_mask != pred_mask)) / gt_mask.size
