"""The sparse contingency table of two label images: how many pixels carry label ``i`` in one and ``j`` in the other.

Every segmentation metric here (adapted Rand error, variation of information, object IoUs) is a
function of this table.  It is built without any per-object loop: both label images are mapped to
compact ids ``0..G-1`` / ``0..P-1``, combined into one key ``g * P + p`` per pixel, and counted with
``np.bincount`` (or ``np.unique`` when the ``G * P`` grid would be too large).  Only the non-zero
cells are kept, as coordinate triplets (the COO sparse format).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from biounet.metrics._checks import as_labels, check_same_shape


@dataclass(frozen=True)
class Contingency:
    """Sparse contingency table of a ground-truth and a predicted label image.

    Attributes:
        gt_ids: ``(G,)`` the ground-truth label values that occur (ignored labels excluded).
        pred_ids: ``(P,)`` the predicted label values that occur on the counted pixels.
        rows: ``(K,)`` index into ``gt_ids`` of each non-zero cell.
        cols: ``(K,)`` index into ``pred_ids`` of each non-zero cell.
        counts: ``(K,)`` number of pixels in each cell (int64, all > 0).
        n_pixels: number of counted pixels (all pixels minus those with an ignored ground-truth label).
    """

    gt_ids: np.ndarray
    pred_ids: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    counts: np.ndarray
    n_pixels: int

    @property
    def gt_sizes(self) -> np.ndarray:
        """``(G,)`` pixels per ground-truth label (counted pixels only)."""
        return np.bincount(self.rows, weights=self.counts, minlength=len(self.gt_ids)).astype(np.int64)

    @property
    def pred_sizes(self) -> np.ndarray:
        """``(P,)`` pixels per predicted label (counted pixels only)."""
        return np.bincount(self.cols, weights=self.counts, minlength=len(self.pred_ids)).astype(np.int64)

    def to_sparse(self) -> sparse.csr_array:
        """The table as a ``(G, P)`` ``scipy.sparse.csr_array`` of pixel counts."""
        shape = (len(self.gt_ids), len(self.pred_ids))
        return sparse.csr_array((self.counts, (self.rows, self.cols)), shape=shape)


def compact_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map a label array to compact ids.

    Returns ``(ids, index)``: ``ids`` ``(N,)`` the sorted distinct values, ``index`` the flattened
    array of positions into ``ids`` (so ``ids[index] == labels.ravel()``).  Uses a lookup table
    (linear time) when the value range is small, ``np.unique`` (a sort) otherwise.
    """
    flat = np.asarray(labels).ravel()
    if flat.size == 0:
        return flat[:0].copy(), np.zeros(0, np.int64)
    if flat.dtype.kind in "ui":
        low, high = int(flat.min()), int(flat.max())
        if high - low < max(4 * flat.size, 1 << 16):
            offset = flat.astype(np.int64, copy=False) - low if low else flat
            present = np.zeros(high - low + 1, dtype=bool)
            present[offset] = True
            lookup = np.cumsum(present, dtype=np.int64) - 1
            ids = (np.flatnonzero(present) + low).astype(flat.dtype)
            return ids, lookup[offset]
    ids, index = np.unique(flat, return_inverse=True)
    return ids, index.ravel().astype(np.int64, copy=False)


def contingency_table(gt: np.ndarray, pred: np.ndarray, *, ignore_labels: Sequence[int] = ()) -> Contingency:
    """Count the pixel overlaps of every ground-truth label with every predicted label.

    Args:
        gt: ground-truth label image, any shape (2D ``(Y, X)`` or 3D ``(Z, Y, X)``), integer or bool.
        pred: predicted label image of the same shape, integer or bool.
        ignore_labels: ground-truth values whose pixels are left out entirely (as in
            ``skimage.metrics.contingency_table``); e.g. ``(0,)`` for unlabelled/boundary pixels.

    Raises:
        DataError: different shapes or non-integer labels.
    """
    check_same_shape(gt, pred)
    gt_flat = as_labels(gt, "gt").ravel()
    pred_flat = as_labels(pred, "pred").ravel()
    if len(ignore_labels):
        ignored = np.asarray(ignore_labels)
        keep = gt_flat != ignored[0] if ignored.size == 1 else ~np.isin(gt_flat, ignored)
        if not keep.all():
            gt_flat, pred_flat = gt_flat[keep], pred_flat[keep]
    gt_ids, gi = compact_labels(gt_flat)
    pred_ids, pi = compact_labels(pred_flat)
    n_pred = max(len(pred_ids), 1)
    key = gi * n_pred + pi
    grid = len(gt_ids) * n_pred
    if grid <= max(4 * key.size, 1 << 16):
        table = np.bincount(key, minlength=grid)
        cells = np.flatnonzero(table)
        counts = table[cells]
    else:
        cells, counts = np.unique(key, return_counts=True)
    return Contingency(
        gt_ids=gt_ids,
        pred_ids=pred_ids,
        rows=cells // n_pred,
        cols=cells % n_pred,
        counts=counts.astype(np.int64, copy=False),
        n_pixels=int(key.size),
    )
