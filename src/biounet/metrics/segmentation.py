"""Turning probability maps and binary masks into segments (connected components) for evaluation.

ISBI 2012 convention: the network's output is the probability of *cell interior* (1 = interior,
0 = membrane).  Cells are the connected components of ``prob > threshold``.  For the Rand error and
VI the segments are then *grown* into the boundary pixels, so that every pixel belongs to a
segment, like the border thinning of the ISBI evaluation: a thick but closed predicted boundary
then costs nothing, while a gap that joins two cells merges them and costs.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from biounet.errors import DataError
from biounet.metrics._checks import as_mask

GrowMethod = Literal["nearest", "watershed"]


def label_components(mask: np.ndarray, connectivity: int = 1) -> np.ndarray:
    """Connected components of a binary mask (``!= 0``), any dimension.

    Args:
        mask: ``(Y, X)`` or ``(Z, Y, X)`` binary map.
        connectivity: 1 = face neighbours only (4 in 2D, 6 in 3D; default, so that a one-pixel
            diagonal membrane separates cells), up to ``mask.ndim`` = all neighbours (8 / 26).

    Returns:
        int32 labels ``1..N`` for the components and 0 elsewhere.
    """
    mask = as_mask(mask)
    structure = ndi.generate_binary_structure(mask.ndim, connectivity)
    labels, _ = ndi.label(mask, structure=structure, output=np.int32)
    return labels


def grow_segments(
    segments: np.ndarray, probability: np.ndarray | None = None, method: GrowMethod = "nearest"
) -> np.ndarray:
    """Give every unlabelled (0) pixel the id of a segment, so the segments tile the image.

    Args:
        segments: ``(Y, X)`` or ``(Z, Y, X)`` integer labels, 0 = not yet assigned (boundary).
        probability: interior probability of the same shape; needed for ``method="watershed"``.
        method: ``"nearest"`` (default, fast): each pixel takes the id of the nearest segment pixel
            in Euclidean distance (``skimage.segmentation.expand_labels`` without a distance limit);
            ``"watershed"``: flood from the segments along decreasing interior probability.

    Returns:
        Labels of the same dtype with no 0 left, unless there was no segment at all (then all 0).
    """
    segments = np.asarray(segments)
    background = segments == 0
    if not background.any() or background.all():
        return segments.copy()
    if method == "nearest":
        nearest = ndi.distance_transform_edt(background, return_distances=False, return_indices=True)
        return segments[tuple(nearest)]
    if method == "watershed":
        if probability is None:
            raise ValueError("grow_segments(method='watershed') needs the probability map")
        from skimage.segmentation import watershed

        return watershed(-np.asarray(probability, dtype=np.float32), markers=segments).astype(segments.dtype)
    raise ValueError(f"method must be 'nearest' or 'watershed', got {method!r}")


def segments_from_probability(
    interior_prob: np.ndarray,
    threshold: float = 0.5,
    *,
    grow: bool = True,
    method: GrowMethod = "nearest",
    connectivity: int = 1,
) -> np.ndarray:
    """Segments of an interior-probability map: components of ``prob > threshold``, grown by default.

    Args:
        interior_prob: ``(Y, X)`` or ``(Z, Y, X)`` probability of cell interior (ISBI convention:
            1 = interior, 0 = membrane); any real dtype, values in [0, 1] expected.
        threshold: pixels with probability strictly above it are interior.
        grow: if True (default, for Rand/VI on membrane maps) grow the components into the boundary
            pixels (:func:`grow_segments`) so every pixel has an id; if False (for object metrics
            such as :func:`~biounet.metrics.match_instances`) boundary/background stays 0.
        method: how to grow, ``"nearest"`` or ``"watershed"`` (see :func:`grow_segments`).
        connectivity: neighbourhood of the components (1 = 4-connected in 2D, default).

    Returns:
        int32 segment ids ``1..N`` (0 only where nothing was grown, or everywhere if no pixel passes).
    """
    prob = np.asarray(interior_prob)
    if prob.dtype.kind not in "fiub":
        raise DataError(f"interior_prob must be a numeric array, got dtype {prob.dtype}")
    segments = label_components(prob > threshold, connectivity)
    return grow_segments(segments, prob, method) if grow else segments


def cells_from_isbi_label(label: np.ndarray, connectivity: int = 1) -> np.ndarray:
    """Ground-truth cells of an ISBI 2012 label image (0 = membrane, 255 = interior).

    Returns int32 cell ids (connected components of ``label > 0``) with 0 on the membrane, which
    :func:`~biounet.metrics.adapted_rand_error` ignores.  Any binary map (``!= 0`` = interior) works.
    """
    return label_components(np.asarray(label) > 0, connectivity)


def link_sections(sections: np.ndarray, min_overlap: float = 0.5, inside: np.ndarray | None = None) -> np.ndarray:
    """Objects ``(Z, Y, X)`` int32 from 2D segments labelled per section, linked across neighbouring sections.

    ``sections`` holds each section's own segment ids (0 = none; ids may repeat from one section to the
    next). A segment of section z and one of section z + 1 become one object when each is the other's
    largest overlap and the overlap covers at least ``min_overlap`` of the smaller one. This is how objects
    continue through a stack whose sections are much thicker than its pixels (serial-section EM): one 3D
    watershed or 3D components there join neighbouring objects wherever their walls do not overlap from
    one section to the next, and mutual best matches keep one branch or gap from chaining many together.
    Objects are numbered 1..N in order of their first segment. ``inside`` (``(Z, Y, X)`` bool, optional):
    only these pixels count for the overlaps and sizes, e.g. the interior of cells whose segments also
    cover the membranes (so a section where a cell is all membrane links nothing through it).
    """
    labels = np.zeros(sections.shape, dtype=np.int64)
    offset = 0
    for z, section in enumerate(sections):
        ids, compact = np.unique(section, return_inverse=True)
        compact = compact.reshape(section.shape)
        if ids[0] != 0:
            compact = compact + 1
        count = int(compact.max())
        labels[z] = np.where(section != 0, compact + offset, 0)
        offset += count
    voting = labels if inside is None else np.where(inside, labels, 0)
    sizes = np.bincount(voting.ravel(), minlength=offset + 1)
    links = [_mutual_matches(voting[z], voting[z + 1], sizes, min_overlap) for z in range(sections.shape[0] - 1)]
    first, second = (np.concatenate([link[i] for link in links] + [np.zeros(0, np.int64)]) for i in (0, 1))
    graph = coo_matrix((np.ones(first.size), (first, second)), shape=(offset + 1, offset + 1))
    _, component = connected_components(graph, directed=False)
    ids = np.where(component == component[0], 0, component + (component < component[0]))  # label 0 stays 0
    return ids[labels].astype(np.int32)


def _mutual_matches(first: np.ndarray, second: np.ndarray, sizes: np.ndarray,
                    min_overlap: float) -> tuple[np.ndarray, np.ndarray]:
    """Label pairs ``(a, b)`` of two sections that are each other's largest overlap, overlapping by at least
    ``min_overlap`` of the smaller label."""
    both = (first > 0) & (second > 0)
    base = np.int64(sizes.size)
    keys, counts = np.unique(first[both].astype(np.int64) * base + second[both], return_counts=True)
    a, b = keys // base, keys % base
    best_of_a = _best(a, b, counts)
    best_of_b = _best(b, a, counts)
    mutual = (best_of_a == b) & (best_of_b == a) & (counts >= min_overlap * np.minimum(sizes[a], sizes[b]))
    return a[mutual], b[mutual]


def _best(owner: np.ndarray, partner: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """For each pair, the partner of largest overlap of its owner (ties: the smaller partner label)."""
    if owner.size == 0:
        return owner
    order = np.lexsort((partner, -counts, owner))
    first = np.ones(order.size, dtype=bool)
    first[1:] = owner[order][1:] != owner[order][:-1]
    best = dict(zip(owner[order][first].tolist(), partner[order][first].tolist()))
    return np.array([best[o] for o in owner.tolist()], dtype=np.int64)
