"""Warping error (Jain et al., CVPR 2010; the ISBI 2012 challenge's topological metric).

One binary map is *warped* toward the other by flipping only *simple points*: pixels whose flip
changes neither the number of objects nor the number of holes.  Disagreements that are mere
boundary shifts disappear; what cannot be warped away is a topological defect (a merge, a split,
a hole, an object added or lost).  The warping error is the number of pixels still disagreeing
divided by the number of pixels.

Connectivity: the foreground (value != 0, e.g. cell interior in the ISBI convention) is
4-connected and the background (membrane) 8-connected, as in the ISBI/Fiji implementation, so a
one-pixel-thick diagonal membrane separates two cells.  Outside the image counts as background.

Simple points are looked up in a 256-entry table indexed by the 8 neighbours.  Pixels on one of
four sub-lattices ``(y % 2, x % 2)`` are never 8-neighbours of each other, so all simple
disagreeing pixels of one sub-lattice are flipped at once without interfering; the four
sub-lattices are swept until nothing changes.  Cost per sweep is proportional to the number of
disagreeing pixels, not the image size.

3D inputs ``(Z, Y, X)`` are evaluated slice by slice in 2D (the ISBI 2012 way); a 3D simple-point
test (26/6 connectivity) is not implemented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy import ndimage as ndi

from biounet.metrics._checks import as_mask, check_same_shape

# The 8 neighbours in ring order: N, NE, E, SE, S, SW, W, NW; bit k of a code is neighbour k.
NEIGHBOUR_OFFSETS: tuple[tuple[int, int], ...] = (
    (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1),
)  # fmt: skip

WarpDirection = Literal["prediction", "ground_truth"]


@dataclass(frozen=True)
class WarpingResult:
    """Warping error of one binary map pair, with the remaining defects.

    Attributes:
        error: pixels still wrong after warping / all pixels (0..1).
        n_wrong: pixels still wrong after warping.
        n_pixels: all pixels.
        merges: defects where the prediction joins objects that the ground truth separates.
        splits: defects where the prediction cuts one ground-truth object into several.
        holes: a hole added or filled (including a ring opened or closed).
        objects_added: spurious objects in the prediction.
        objects_missed: ground-truth objects with no predicted counterpart.
        other: defects of none of the above kinds.
        defects: bool map (same shape as the input) of the pixels still wrong after warping.
    """

    error: float
    n_wrong: int
    n_pixels: int
    merges: int
    splits: int
    holes: int
    objects_added: int
    objects_missed: int
    other: int
    defects: np.ndarray = field(repr=False, compare=False)

    @property
    def n_defects(self) -> int:
        """Number of topological defects (connected groups of remaining wrong pixels)."""
        return self.merges + self.splits + self.holes + self.objects_added + self.objects_missed + self.other


def _neighbourhood_components(bits: int, members: bool, connectivity: int) -> list[set[int]]:
    """Components (as sets of ring positions) of the neighbours whose bit equals ``members``."""
    cells = [k for k in range(8) if bool(bits >> k & 1) == members]

    def adjacent(a: int, b: int) -> bool:
        (ya, xa), (yb, xb) = NEIGHBOUR_OFFSETS[a], NEIGHBOUR_OFFSETS[b]
        distance = abs(ya - yb) + abs(xa - xb)
        return distance == 1 or (connectivity == 8 and abs(ya - yb) == 1 and abs(xa - xb) == 1)

    components: list[set[int]] = []
    unvisited = set(cells)
    while unvisited:
        stack = [unvisited.pop()]
        component = set(stack)
        while stack:
            a = stack.pop()
            for b in [b for b in unvisited if adjacent(a, b)]:
                unvisited.discard(b)
                component.add(b)
                stack.append(b)
        components.append(component)
    return components


def _topological_number(bits: int, members: bool, connectivity: int) -> int:
    """Bertrand & Malandain's T4/T8: components of the neighbourhood adjacent to the centre."""
    four_neighbours = {0, 2, 4, 6}
    components = _neighbourhood_components(bits, members, connectivity)
    if connectivity == 4:
        components = [c for c in components if c & four_neighbours]
    return len(components)


@lru_cache(maxsize=2)
def simple_point_table(foreground_connectivity: int = 4) -> np.ndarray:
    """``(256,)`` bool lookup table: is the centre pixel simple, given its 8 neighbours?

    The index is ``sum(neighbour_k << k)`` over the ring N, NE, E, SE, S, SW, W, NW (foreground = 1).
    A pixel is simple iff it has exactly one adjacent foreground component (in
    ``foreground_connectivity``, 4 or 8) and one adjacent background component (in the other).
    The answer does not depend on the centre's own value, so one table serves both flip directions.
    """
    if foreground_connectivity not in (4, 8):
        raise ValueError("foreground_connectivity must be 4 or 8")
    background_connectivity = 12 - foreground_connectivity
    return np.array(
        [
            _topological_number(bits, True, foreground_connectivity) == 1
            and _topological_number(bits, False, background_connectivity) == 1
            for bits in range(256)
        ],
        dtype=bool,
    )


def warp_binary(moving: np.ndarray, target: np.ndarray, *, foreground_connectivity: int = 4) -> np.ndarray:
    """Warp the 2D binary map ``moving`` toward ``target`` by flipping simple points only.

    Args:
        moving: ``(Y, X)`` binary map (``!= 0`` is foreground) whose topology is kept.
        target: ``(Y, X)`` binary map it is warped toward.
        foreground_connectivity: 4 (default; background then 8-connected) or 8.

    Returns:
        ``(Y, X)`` bool: ``moving`` after greedily flipping every disagreeing simple pixel until no
        more can be flipped; it has the same topology as ``moving``.
    """
    check_same_shape(moving, target, ("moving", "target"))
    if np.ndim(moving) != 2:
        raise ValueError(f"warp_binary takes 2D maps, got shape {np.shape(moving)}")
    table = simple_point_table(foreground_connectivity)
    height, width = np.shape(moving)
    stride = width + 2
    current = np.zeros((height + 2, stride), dtype=np.uint8)
    current[1:-1, 1:-1] = as_mask(moving)
    wanted = np.zeros_like(current)
    wanted[1:-1, 1:-1] = as_mask(target)
    flat = current.ravel()
    offsets = np.array([dy * stride + dx for dy, dx in NEIGHBOUR_OFFSETS])
    weights = (1 << np.arange(8)).astype(np.uint8)

    wrong = np.flatnonzero(current.ravel() != wanted.ravel())
    rows, cols = np.divmod(wrong, stride)
    lattices = [wrong[(rows % 2 == a) & (cols % 2 == b)] for a in (0, 1) for b in (0, 1)]
    changed = True
    while changed:
        changed = False
        for k, candidates in enumerate(lattices):
            if candidates.size == 0:
                continue
            codes = (flat[candidates[:, None] + offsets] * weights).sum(axis=1)
            simple = table[codes]
            if simple.any():
                flat[candidates[simple]] ^= 1
                lattices[k] = candidates[~simple]
                changed = True
    return current[1:-1, 1:-1].astype(bool)


def warping_error(
    gt: np.ndarray,
    pred: np.ndarray,
    *,
    warp: WarpDirection = "prediction",
    foreground_connectivity: int = 4,
) -> WarpingResult:
    """Warping error of a binary prediction against a binary ground truth.

    Args:
        gt: ``(Y, X)`` or ``(Z, Y, X)`` ground-truth map, ``!= 0`` = foreground (ISBI: cell interior,
            ``label == 255``).  Threshold probability maps first.
        pred: predicted binary map of the same shape, ``!= 0`` = foreground.
        warp: which map is warped (its topology is kept).  ``"prediction"`` (default) warps the
            prediction toward the ground truth: a bridge that merges two cells then costs all its
            pixels, a spurious object or a spurious hole shrinks to one pixel.  ``"ground_truth"``
            warps the ground truth toward the prediction (Jain et al.'s definition, as in the Fiji
            script of the ISBI challenge): a merge then typically costs a single pixel.
        foreground_connectivity: 4 (default) or 8; the background gets the other one.

    Returns:
        :class:`WarpingResult`: the error (fraction of pixels), remaining wrong pixels and defect
        counts by kind.  3D stacks are warped slice by slice and summed.

    Raises:
        DataError: different shapes.
    """
    check_same_shape(gt, pred)
    gt_mask, pred_mask = as_mask(gt), as_mask(pred)
    if gt_mask.ndim == 2:
        gt_mask, pred_mask = gt_mask[None], pred_mask[None]
    elif gt_mask.ndim != 3:
        raise ValueError(f"warping_error takes 2D (Y, X) or 3D (Z, Y, X) maps, got shape {np.shape(gt)}")
    warped_stack = np.empty_like(gt_mask)
    totals = np.zeros(6, dtype=np.int64)
    for z in range(gt_mask.shape[0]):
        if warp == "prediction":
            warped = warp_binary(pred_mask[z], gt_mask[z], foreground_connectivity=foreground_connectivity)
            counts = _classify_defects(warped, gt_mask[z], foreground_connectivity)
        elif warp == "ground_truth":
            warped = warp_binary(gt_mask[z], pred_mask[z], foreground_connectivity=foreground_connectivity)
            counts = _classify_defects(pred_mask[z], warped, foreground_connectivity)
        else:
            raise ValueError(f"warp must be 'prediction' or 'ground_truth', got {warp!r}")
        warped_stack[z] = warped
        totals += counts
    reference = gt_mask if warp == "prediction" else pred_mask
    defects = (warped_stack != reference).reshape(np.shape(gt))
    n_wrong, n_pixels = int(defects.sum()), int(defects.size)
    merges, splits, holes, added, missed, other = (int(c) for c in totals)
    return WarpingResult(
        error=n_wrong / n_pixels if n_pixels else 0.0,
        n_wrong=n_wrong,
        n_pixels=n_pixels,
        merges=merges,
        splits=splits,
        holes=holes,
        objects_added=added,
        objects_missed=missed,
        other=other,
        defects=defects,
    )


def _classify_defects(pred: np.ndarray, gt: np.ndarray, foreground_connectivity: int) -> np.ndarray:
    """Count the defects between 2D bool maps ``pred`` and ``gt`` (one of them warped) by kind.

    Each defect is a connected (8-connected) group of pixels of one sign: *extra* (pred 1, gt 0) or
    *missing* (pred 0, gt 1).  It is classified by the number of distinct components it touches of
    the foreground both agree on (``pred & gt``, in the foreground connectivity) and of the
    background both agree on (``~pred & ~gt``, in the background connectivity):

    - extra: >= 2 foreground components -> merge; 0 -> object added; else a background count other
      than 1 -> hole (filled or enclosed); else other.
    - missing: >= 2 foreground components -> split; 0 -> object missed; else a background count
      other than 1 -> hole (added or opened); else other.

    Returns ``[merges, splits, holes, objects_added, objects_missed, other]``.
    """
    counts = np.zeros(6, dtype=np.int64)
    extra, missing = pred & ~gt, ~pred & gt
    if not (extra.any() or missing.any()):
        return counts
    full = np.ones((3, 3), dtype=bool)
    cross = ndi.generate_binary_structure(2, 1)
    fg_structure, bg_structure = (cross, full) if foreground_connectivity == 4 else (full, cross)
    fg_labels = _padded_labels(pred & gt, fg_structure)
    bg_labels = _padded_labels(~pred & ~gt, bg_structure, outside=1)
    fg_offsets = _offsets(fg_structure)
    bg_offsets = _offsets(bg_structure)
    for sign, mask in enumerate((extra, missing)):
        clusters, n_clusters = ndi.label(mask, structure=full)
        if n_clusters == 0:
            continue
        n_fg = _distinct_touching(clusters, fg_labels, fg_offsets, n_clusters)
        n_bg = _distinct_touching(clusters, bg_labels, bg_offsets, n_clusters)
        joins, isolated = n_fg >= 2, n_fg == 0  # joins objects / is an object of its own
        one_object = ~joins & ~isolated
        # sign 0, extra foreground: merge / object added; sign 1, missing foreground: split / object missed
        counts[0 + sign] += np.count_nonzero(joins)
        counts[3 + sign] += np.count_nonzero(isolated)
        counts[2] += np.count_nonzero(one_object & (n_bg != 1))
        counts[5] += np.count_nonzero(one_object & (n_bg == 1))
    return counts


def _padded_labels(mask: np.ndarray, structure: np.ndarray, outside: int = 0) -> np.ndarray:
    """Connected components of ``mask`` padded by one pixel of ``outside`` (1 joins the border)."""
    padded = np.pad(mask, 1, constant_values=bool(outside))
    labels, _ = ndi.label(padded, structure=structure)
    return labels


def _offsets(structure: np.ndarray) -> list[tuple[int, int]]:
    return [(dy - 1, dx - 1) for dy, dx in zip(*np.nonzero(structure)) if (dy, dx) != (1, 1)]


def _distinct_touching(
    clusters: np.ndarray, padded_labels: np.ndarray, offsets: list[tuple[int, int]], n_clusters: int
) -> np.ndarray:
    """``(n_clusters,)``: for clusters ``1..n_clusters``, how many distinct components touch each.

    ``clusters`` is an unpadded label image, ``padded_labels`` the components padded by one pixel,
    ``offsets`` the neighbourhood that counts as touching.
    """
    ys, xs = np.nonzero(clusters)
    ids = clusters[ys, xs]
    pairs = []
    for dy, dx in offsets:
        neighbour = padded_labels[ys + 1 + dy, xs + 1 + dx]
        touching = neighbour > 0
        pairs.append(ids[touching].astype(np.int64) << 32 | neighbour[touching].astype(np.int64))
    unique_pairs = np.unique(np.concatenate(pairs)) if pairs else np.zeros(0, np.int64)
    return np.bincount(unique_pairs >> 32, minlength=n_clusters + 1)[1:]
