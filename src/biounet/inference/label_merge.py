"""Instances block by block, merged across block faces into one global labelling.

The instance step of a single-process prediction is global (a seeded watershed over the whole interior
probability, or the cells of a membrane model).  Block by block it is run by the predictor's own functions
(:func:`~biounet.inference.instances.instances_from_interior`, :func:`~biounet.inference.cells.cells_from_membranes`)
on the block's core plus ``overlap`` pixels of real neighbouring probabilities on every side, so that objects
near a face are seen whole and both blocks label the pixels along their common face alike.  Each block keeps
its core, numbered ``1..n`` (:func:`block_instances`), and hands back two thin slabs per face: its own labels
on its outermost core row and its (context) labels on the neighbour's first row, both in its core numbering.

The merge is a reduction over those faces (:func:`merge_tables`), never over the label image: the labels that
the two blocks give the same face pixels are paired, a pair is kept when it is the majority partner of both
labels (so a single stray pixel does not join two cells), and connected components of the kept pairs
(SciPy's ``connected_components``) give every block a lookup table ``local id -> global id``.  This is the
scheme of ``dask_image.ndmeasure.label`` and Cellpose's distributed segmentation (label pairs on the faces,
one connected-components pass over that small graph), with overlap so that touching cells on two sides of a
face are not joined.

Cells of a stack of thick sections (:meth:`InstanceTarget.cells_per_section`) are 2D cells linked
across sections, and two blocks may link the same sections differently (one links a neuron through sections
1-5, its neighbour as 1-2 and 3-5, each seeing only its part of the cells).  A majority taken over the whole
face would then keep only the larger part and cut the neuron along the face (docs/3d.md, the 1024^3 run).
Such faces are paired section by section (``per_section``): a pair is kept when it is the majority partner of
both labels within a section, so the neighbour's pieces each join the neuron through the sections they share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from biounet.inference.cells import cells_from_membranes
from biounet.inference.instances import InstanceTarget, instances_from_interior, relative_to_pixel


@dataclass
class BlockLabels:
    """What one block's instance step returns to the merge.

    Attributes:
        count: labels in the core, numbered ``1..count``.
        faces: ``(axis, side) -> (own, context)``: ``side`` ``+1`` is the face towards the next block along
            ``axis``, ``-1`` towards the previous one; ``own`` is the block's core labels on its outermost
            core row, ``context`` its labels (core numbering, 0 for objects not in its core) on the
            neighbour's adjacent row; both ``(*face)`` int32 over the core's extent on the other axes.
    """

    count: int
    faces: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def instance_step(
    interior: np.ndarray, foreground: np.ndarray | None, target: InstanceTarget, distance: np.ndarray | None = None
) -> np.ndarray:
    """The predictor's instance step on ``interior`` ``(*S)`` float32 (and ``foreground`` bool, the ``distance``
    output of a model with one): int32 labels."""
    if target.cells is not None:
        return cells_from_membranes(interior, target.cells, spacing=relative_to_pixel(target.spacing, interior.ndim))
    return instances_from_interior(interior, foreground, threshold=target.threshold, min_size=target.min_size,
                                   seed_height=target.seed_height, distance=distance)


def block_instances(
    labels: np.ndarray, core: Sequence[slice], context: Sequence[slice], image_shape: Sequence[int]
) -> tuple[np.ndarray, BlockLabels]:
    """The core's labels renumbered ``1..n`` and the face slabs, from ``labels`` of the ``context`` box.

    Args:
        labels: instance labels ``(*context)`` of the context box (core plus overlap, clipped to the image).
        core, context: global pixel slices of the block's core and of the context box around it.
        image_shape: the whole image's spatial shape (faces only where a neighbour exists).
    """
    inner = tuple(slice(c.start - x.start, c.stop - x.start) for c, x in zip(core, context))
    core_labels = labels[inner]
    ids = np.unique(core_labels)
    ids = ids[ids != 0]
    table = np.zeros(int(labels.max()) + 1, np.int32)
    table[ids] = np.arange(1, len(ids) + 1, dtype=np.int32)
    result = BlockLabels(int(len(ids)))
    for axis in range(len(core)):
        for side in (-1, 1):
            row = core[axis].start if side < 0 else core[axis].stop - 1
            if not 0 <= row + side < image_shape[axis]:
                continue
            if not context[axis].start <= row + side < context[axis].stop:
                raise ValueError("the context box does not reach past the core; give an overlap of 1 pixel or more")
            own = _row(labels, inner, axis, row - context[axis].start)
            beyond = _row(labels, inner, axis, row + side - context[axis].start)
            result.faces[(axis, side)] = (table[own], table[beyond])
    return table[core_labels], result


def _row(labels: np.ndarray, inner: tuple[slice, ...], axis: int, position: int) -> np.ndarray:
    key = list(inner)
    key[axis] = position
    return labels[tuple(key)]


def merge_tables(
    blocks: Sequence[BlockLabels], neighbours: Sequence[Sequence[int | None]], per_section: bool = False
) -> list[np.ndarray]:
    """Per block a lookup table ``local id -> global id`` (``table[0] == 0``), global ids ``1..N`` consecutive.

    Args:
        blocks: the :class:`BlockLabels` of every block, by raster number.
        neighbours: ``neighbours[b][axis]``: the raster number of the next block after ``b`` along ``axis``
            (``None`` at the image's end).
        per_section: the labels are cells of a stack of thick sections ``(Z, Y, X)``: faces along Y and X
            are paired section by section (the module's docstring says why).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    offsets = np.concatenate([[0], np.cumsum([b.count for b in blocks])]).astype(np.int64)
    total = int(offsets[-1])
    first, second = [], []
    for number, block in enumerate(blocks):
        for axis, after in enumerate(neighbours[number]):
            if after is None:
                continue
            mine, theirs = _face_pairs(block, blocks[after], axis, per_section and axis > 0)
            first.append(mine + offsets[number])
            second.append(theirs + offsets[after])
    a = np.concatenate(first) if first else np.zeros(0, np.int64)
    b = np.concatenate(second) if second else np.zeros(0, np.int64)
    graph = coo_matrix((np.ones(len(a), np.int8), (a - 1, b - 1)), shape=(total, total))
    _, component = connected_components(graph, directed=False)
    _, consecutive = np.unique(component, return_inverse=True)  # numbered in order of first appearance
    return [
        np.concatenate([[0], consecutive[offsets[n] : offsets[n + 1]] + 1]).astype(np.int32)
        for n in range(len(blocks))
    ]


def _face_pairs(
    before: BlockLabels, after: BlockLabels, axis: int, per_section: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(label in before, label in after)`` of the same objects on the face between two blocks; with
    ``per_section`` the majorities are taken within each row of the face's first axis (a section)."""
    own_b, context_b = before.faces[(axis, 1)]
    own_a, context_a = after.faces[(axis, -1)]
    left = np.concatenate([context_b.ravel(), own_b.ravel()]).astype(np.int64)
    right = np.concatenate([own_a.ravel(), context_a.ravel()]).astype(np.int64)
    rows = np.zeros(own_b.shape, np.int64)
    if per_section:
        rows += np.arange(own_b.shape[0]).reshape(-1, *([1] * (own_b.ndim - 1)))
    rows = np.concatenate([rows.ravel(), rows.ravel()])
    both = (left > 0) & (right > 0)
    left, right, rows = left[both], right[both], rows[both]
    if not len(left):
        return left, right
    width_l, width_r = int(left.max()) + 1, int(right.max()) + 1
    left_key, right_key = rows * width_l + left, rows * width_r + right  # a label within its section
    pairs, counts = np.unique(np.stack([left_key, right_key]), axis=1, return_counts=True)
    kept = _mutual_majority(pairs, counts, left_key, right_key)
    return pairs[0, kept] % width_l, pairs[1, kept] % width_r


def _mutual_majority(pairs: np.ndarray, counts: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Pairs that hold more than half of the face pixels of both their labels."""
    left_total = np.bincount(left)[pairs[0]]
    right_total = np.bincount(right)[pairs[1]]
    return (2 * counts > left_total) & (2 * counts > right_total)


__all__ = ["BlockLabels", "block_instances", "instance_step", "merge_tables"]
