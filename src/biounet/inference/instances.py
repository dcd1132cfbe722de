"""Instance label maps from class probabilities: separate touching cells (seeded watershed).

(Membrane models, ISBI 2012 style, make their cells with :mod:`biounet.inference.cells` instead;
:func:`instance_target` says which.)

The network is trained to predict a cell *interior* class that stops short of the borders between
touching cells (the paper's separation borders, or an explicit boundary class).  Connected components
of the confident interior are the seeds, one per cell; a watershed on ``-P(interior)`` grows them back
until they meet, inside the foreground.  Touching cells thus get separate labels even though their
foreground masks touch.

Memory: the watershed is a global operation on the whole image (SciPy labelling + scikit-image
watershed, about 30 bytes per pixel at peak), so instances of a 8192 x 8192 image need ~2 GB; the
predictor computes them from the full-resolution interior probability once the tiled pass is done.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from biounet.errors import DataError
from biounet.inference.cells import cells_from_membranes, is_section_stack
from biounet.pipeline import DEFAULT_FOREGROUND_THRESHOLD, CellSettings
from biounet.pipeline import DEFAULT_MIN_SEED_SIZE as DEFAULT_MIN_SIZE

if TYPE_CHECKING:  # annotations only: the checkpoint module imports torch
    from biounet.io.checkpoint import ModelBundle


def instances_from_probabilities(
    probs: np.ndarray,
    interior_class: int,
    foreground_classes: Sequence[int],
    threshold: float = 0.5,
    min_size: int = DEFAULT_MIN_SIZE,
    seed_height: float = 0.0,
    distance_channel: int | None = None,
    foreground_threshold: float = DEFAULT_FOREGROUND_THRESHOLD,
) -> np.ndarray:
    """An instance label map ``(*S)`` int32 (0 = background) from class probabilities ``(C, *S)``.

    Args:
        probs: class probabilities ``(K, *S)``, summing to 1 over the classes; a model with a distance output
            has it as one more channel (``distance_channel``, 0..1).
        interior_class: the class whose confident pixels are cell interiors (the seeds).
        foreground_classes: classes that belong to cells; seeds grow where their probabilities sum
            to more than ``foreground_threshold`` (for ISBI 2012 both classes: every pixel belongs to a cell).
        threshold: ``P(interior) > threshold`` marks seed pixels.
        min_size: seeds (and unseeded foreground components) smaller than this many pixels are dropped.
        seed_height, distance_channel: as in :func:`instances_from_interior`.
        foreground_threshold: the summed probability of the foreground classes above which a pixel is foreground.
    """
    probs = np.asarray(probs)
    interior = probs[interior_class]
    foreground = foreground_mask(probs, foreground_classes, foreground_threshold)
    distance = probs[distance_channel] if distance_channel is not None else None
    return instances_from_interior(interior, foreground, threshold=threshold, min_size=min_size,
                                   seed_height=seed_height, distance=distance)


def foreground_mask(
    probs: np.ndarray, foreground_classes: Sequence[int], threshold: float = DEFAULT_FOREGROUND_THRESHOLD
) -> np.ndarray:
    """``(*S)`` bool: where the probabilities ``(K, *S)`` of ``foreground_classes`` sum to more than ``threshold``."""
    return np.sum(np.asarray(probs)[list(foreground_classes)], axis=0, dtype=np.float32) > threshold


def instances_from_interior(
    interior: np.ndarray,
    foreground: np.ndarray,
    threshold: float = 0.5,
    min_size: int = DEFAULT_MIN_SIZE,
    seed_height: float = 0.0,
    distance: np.ndarray | None = None,
) -> np.ndarray:
    """Seeded watershed: ``interior`` ``(*S)`` probability, ``foreground`` ``(*S)`` bool -> ``(*S)`` int32 labels.

    The *cores* are the components of ``(interior > threshold) & foreground`` with at least ``min_size``
    pixels.  With ``seed_height == 0`` each core is a seed (the paper's recipe: the network's boundary class
    keeps touching cells' interiors apart).  With ``seed_height = h > 0`` a core is split at the h-maxima of
    height ``h`` of a distance map: the network's ``distance`` output (``(*S)``, 0..1, the normalised distance
    to the object border; :func:`biounet.data.targets.distance_target`), else the Euclidean distance transform
    of the cores, each divided by its core's maximum.  Two nuclei joined by a neck of interior become two
    seeds (their centres stand more than ``h`` above the neck); one elongated nucleus, whose distance falls
    less than ``h`` between its ends, stays one.  Seeds are numbered 1..n in raster order and keep their
    number.

    The seeds grow over the foreground by a watershed on ``-(interior + distance)`` (``-interior`` without a
    distance map).  A foreground component (face neighbours) with one seed becomes that seed's cell whole;
    only components with several seeds are flooded (inside the component), which gives the same labels as one
    watershed over the whole foreground at a fraction of the cost on sparse images.  Foreground components
    that contain no seed but have at least ``min_size`` pixels become instances of their own, numbered after
    the seeds (a small cell whose interior never passed the threshold is not lost).
    """
    from skimage.segmentation import watershed

    interior = np.asarray(interior, dtype=np.float32)
    foreground = np.asarray(foreground, dtype=bool)
    components, count = ndimage.label(foreground)
    seeds = _drop_small(ndimage.label((interior > threshold) & foreground)[0], min_size)
    landscape = -interior if distance is None else -(interior + np.asarray(distance, dtype=np.float32))
    if seed_height > 0:
        seeds, landscape = _distance_seeds(seeds, interior, distance, seed_height)
    n_seeds = int(seeds.max())
    component_of_seed = np.zeros(n_seeds + 1, dtype=np.int64)
    seeded = seeds > 0
    component_of_seed[seeds[seeded]] = components[seeded]  # >= 1: seeds lie in the foreground
    seeds_in = np.bincount(component_of_seed[1:], minlength=count + 1)

    lookup = np.zeros(count + 1, dtype=np.int32)  # component -> instance id (0: none or several seeds)
    single = seeds_in[component_of_seed[1:]] == 1
    lookup[component_of_seed[1:][single]] = np.arange(1, n_seeds + 1, dtype=np.int32)[single]
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    unseeded = np.flatnonzero((seeds_in == 0) & (sizes >= max(1, min_size)))
    unseeded = unseeded[unseeded > 0]
    lookup[unseeded] = np.arange(n_seeds + 1, n_seeds + 1 + len(unseeded), dtype=np.int32)
    labels = lookup[components]

    several = seeds_in > 1
    if several.any():
        flooded = several[components]
        box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(flooded))
        region = watershed(landscape[box], markers=np.where(flooded[box], seeds[box], 0), mask=flooded[box])
        labels[box] = np.where(flooded[box], region, labels[box])
    return labels


def _distance_seeds(
    cores: np.ndarray, interior: np.ndarray, distance: np.ndarray | None, height: float
) -> tuple[np.ndarray, np.ndarray]:
    """Split the labelled ``cores`` ``(*S)`` at the h-maxima of height ``height`` of a distance map (0..1): the
    tops of its domes that rise more than ``height`` above every path to a higher top.

    Returns (seeds numbered 1..n in raster order, the watershed landscape ``-(interior + distance)``).  The map
    is the network's ``distance`` output inside the cores, else each core's distance transform divided by its
    maximum.  A core with one top, or whose map has no h-maximum inside it (a faint distance output), is its
    own seed.  Only cores with two or more regional maxima can split: the h-maxima transform (a grey
    reconstruction, the costly step) runs on their bounding boxes alone.
    """
    from skimage.morphology import local_maxima

    inside = cores > 0
    count = int(cores.max())
    if distance is None:
        edt = ndimage.distance_transform_edt(inside)
        scaled = np.zeros(cores.shape, dtype=np.float64)
        scaled[inside] = edt[inside] / _largest_per_label(edt[inside], cores[inside], count)[cores[inside]]
    else:
        scaled = np.where(inside, np.asarray(distance, dtype=np.float64), 0.0)
    full = ndimage.generate_binary_structure(cores.ndim, cores.ndim)
    tops, n_tops = ndimage.label(local_maxima(scaled, connectivity=cores.ndim) & inside, structure=full)
    core_of_top = np.zeros(n_tops + 1, dtype=np.int64)
    core_of_top[tops[tops > 0]] = cores[tops > 0]
    splittable = np.bincount(core_of_top[1:], minlength=count + 1) >= 2
    marks = np.where(splittable[cores], 0, cores).astype(np.int64)  # the cores that cannot split: themselves
    boxes = ndimage.find_objects(cores)
    next_id = count + 1  # ids of the split pieces, after the cores' own (renumbered below)
    for core in np.flatnonzero(splittable):
        box = tuple(slice(max(0, b.start - 1), b.stop + 1) for b in boxes[core - 1])
        own = cores[box] == core
        maxima = _h_maxima(np.where(own, scaled[box], 0.0), height, full) * own
        if not maxima.any():
            marks[box][own] = core
            continue
        marks[box][own] = np.where(maxima[own] > 0, maxima[own] + next_id - 1, 0)
        next_id += int(maxima.max())
    seeds = _renumber_in_raster_order(marks)
    landscape = -(interior + (scaled if distance is None else np.asarray(distance, dtype=np.float32)))
    return seeds, landscape.astype(np.float32)


def _h_maxima(image: np.ndarray, height: float, structure: np.ndarray) -> np.ndarray:
    """The h-maxima of ``image`` ``(*S)`` as labelled plateaus ``(*S)`` int (0 elsewhere).

    The image's domes cut ``height`` below their tops (a grey reconstruction by dilation); the regional maxima
    of what is left are plateaus holding every top of a dome, so two tops joined by a barely lower saddle (a
    pixel-grid artefact of a distance transform) are one maximum, where skimage's ``h_maxima`` returns both.
    """
    from skimage.morphology import local_maxima, reconstruction

    domes = reconstruction(image - height, image, method="dilation")
    return ndimage.label(local_maxima(domes, connectivity=image.ndim), structure=structure)[0]


def _largest_per_label(values: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """``(count + 1,)`` the largest of ``values`` per label ``1..count`` of ``labels`` (same shape; 1 where a
    label has none), by one sort: faster than ``ndimage.maximum`` with an index per label."""
    largest = np.ones(count + 1, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    largest[labels[order]] = values[order]  # the last write per label is its largest value
    return largest


def _renumber_in_raster_order(labels: np.ndarray) -> np.ndarray:
    """``labels`` ``(*S)`` with its ids renumbered 1..n by the raster position of each id's first pixel."""
    flat = labels.ravel()
    ids, first = np.unique(flat, return_index=True)
    order = np.argsort(first[ids > 0])
    new_ids = np.zeros(int(ids.max()) + 1, dtype=np.int32)
    new_ids[ids[ids > 0][order]] = np.arange(1, len(order) + 1, dtype=np.int32)
    return new_ids[labels]


def relative_to_pixel(spacing: Sequence[float] | None, ndim: int) -> tuple[float, ...] | None:
    """:func:`biounet.model.anisotropy.relative_spacing`, imported only when there is a spacing (the model
    package imports torch; this module stays NumPy-only without one)."""
    if spacing is None:
        return None
    from biounet.model.anisotropy import relative_spacing

    return relative_spacing(spacing, ndim)


def _drop_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Remove components under ``min_size`` pixels and renumber the rest 1..n (NumPy, no Python loop)."""
    counts = np.bincount(labels.ravel())
    keep = counts >= max(1, min_size)
    keep[0] = False
    new_ids = np.zeros(len(counts), dtype=np.int32)
    new_ids[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return new_ids[labels]


@dataclass(frozen=True)
class InstanceTarget:
    """How instances are made from a model's probabilities (see :func:`instance_target`).

    Attributes:
        interior_class: the class whose confident regions seed objects.
        foreground_classes: classes that seeds grow over (their summed probability > ``foreground_threshold``).
        threshold: seeds are ``P(interior) > threshold``.
        min_size: seeds smaller than this many pixels are dropped.
        cells: membrane models: the settings of :func:`~biounet.inference.cells.cells_from_membranes`,
            which then makes the instances (every pixel a cell); ``None`` for touching objects.
        spacing: the data's voxel size ``(Y, X)`` or ``(Z, Y, X)`` in any unit (given at prediction, else the
            model's ``Pipeline.spacing``; ``None``: isotropic).  The cells' distance transform and boundary
            areas use it (:func:`~biounet.model.anisotropy.relative_spacing`); a 3-value spacing makes a 2D
            model's cells on a stack in 3D (:func:`run_labels`).  The touching objects' watershed has no
            distance transform and does not use it.
        seed_height: touching objects: 0 for the paper's seeds, else the height of the h-maxima that split the
            seeds (:func:`instances_from_interior`).
        distance_channel: the model's distance output channel (its seeds and landscape), else ``None``.
        foreground_threshold: touching objects: the summed probability of the foreground classes above which a
            pixel belongs to an object (:meth:`foreground`).
    """

    interior_class: int
    foreground_classes: list[int]
    threshold: float
    min_size: int
    cells: CellSettings | None = None
    spacing: tuple[float, ...] | None = None
    seed_height: float = 0.0
    distance_channel: int | None = None
    foreground_threshold: float = DEFAULT_FOREGROUND_THRESHOLD

    def foreground(self, probs: np.ndarray) -> np.ndarray:
        """``(*S)`` bool: the object pixels of the probabilities ``(K, *S)`` (:func:`foreground_mask`)."""
        return foreground_mask(probs, self.foreground_classes, self.foreground_threshold)

    def recorded(self) -> dict[str, Any]:
        """The settings an output's sidecar records: the seed threshold and smallest seed, then the seed height and
        foreground threshold of touching objects, or the cell settings of membranes."""
        settings: dict[str, Any] = {"threshold": self.threshold, "min_size": self.min_size}
        if self.cells is None:
            settings.update(seed_height=self.seed_height, foreground_threshold=self.foreground_threshold)
        else:
            settings["cells"] = dataclasses.asdict(self.cells)
        return settings

    def cells_in_3d(self, stack_axes: int, spatial_dims: int) -> bool:
        """Whether the cells of a prediction are made over the whole volume: a 3D model's, or a 2D model's on a
        stack (``stack_axes == 1``) with a 3-value spacing (neurons continue across sections)."""
        if self.cells is None:
            return False
        return spatial_dims == 3 or (stack_axes == 1 and self.spacing is not None and len(self.spacing) == 3)

    def cells_per_section(self, ndim: int) -> bool:
        """Whether the cells of ``ndim``-dimensional data are made per section and linked across sections (a
        stack of thick sections, :func:`~biounet.inference.cells.is_section_stack`)."""
        spacing = relative_to_pixel(self.spacing, ndim)
        return self.cells is not None and spacing is not None and is_section_stack(spacing)


def run_labels(
    interior: np.ndarray,
    foreground: np.ndarray,
    target: InstanceTarget,
    stack_axes: int,
    distance: np.ndarray | None = None,
) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
    """The instances of a prediction ``(*stack, *S)`` as ``(key, labels)`` pieces of its output.

    ``distance`` ``(*stack, *S)``: the distance output of a model that has one (touching objects).

    Membrane models' cells are made once over the whole ``(Z, Y, X)`` when :meth:`InstanceTarget.cells_in_3d`
    (key ``()``), with the spacing relative to the in-plane pixel; otherwise every image of the stack on its
    own (key: its stack index), cells with the in-plane spacing, touching objects by the seeded watershed.
    """
    spatial_dims = interior.ndim - stack_axes
    if target.cells_in_3d(stack_axes, spatial_dims):
        yield (), cells_from_membranes(interior, target.cells, spacing=relative_to_pixel(target.spacing, 3))
        return
    for index in np.ndindex(*interior.shape[:stack_axes]):
        if target.cells is not None:
            spacing = relative_to_pixel(target.spacing, spatial_dims)
            labels = cells_from_membranes(interior[index], target.cells, spacing=spacing)
        else:
            labels = instances_from_interior(
                interior[index], foreground[index], threshold=target.threshold, min_size=target.min_size,
                seed_height=target.seed_height, distance=None if distance is None else distance[index],
            )
        yield tuple(int(i) for i in index), labels


def instance_target(
    bundle: ModelBundle,
    threshold: float | None = None,
    min_size: int | None = None,
    spacing: Sequence[float] | None = None,
    seed_height: float | None = None,
    foreground_threshold: float | None = None,
) -> InstanceTarget:
    """The instance settings of ``bundle``: classes from its pipeline target, seeds and foreground threshold as
    given, else the model's (chosen by training on its validation images), else 0.5 and 8 pixels, the paper's
    seeds (``seed_height`` 0: no h-maxima split) and a foreground threshold of 0.5.  A model with a distance
    output passes its channel on.

    A membrane model (target style ``"membrane"``) also gets its cell settings (the model's, else the
    defaults at its threshold; a given ``threshold`` replaces the interior threshold).  ``spacing``
    (``(Y, X)`` or ``(Z, Y, X)``) replaces the model's ``Pipeline.spacing`` (see :func:`prediction_spacing`).

    Raises :class:`~biounet.errors.DataError` naming the model when it was not trained for instances.
    """
    target = bundle.pipeline.target
    classes = bundle.config.num_classes
    where = f"{bundle.path}: " if bundle.path else ""
    if target is None or target.kind != "instances" or target.interior_class is None:
        raise DataError(
            f"{where}instances need a model trained for instances (pipeline target kind 'instances' "
            "with an interior_class); this model is semantic: use output 'labels' or 'probabilities'"
        )
    interior = int(target.interior_class)
    foreground = [int(c) for c in target.foreground_classes or [interior]]
    distance = target.distance_channel
    if not all(0 <= c < classes for c in [interior, *foreground, *([distance] if distance is not None else [])]):
        raise DataError(f"{where}pipeline target classes {target} do not fit a model with {classes} output channels")
    cells = target.cell_settings(threshold) if target.style == "membrane" else None
    threshold, min_size = target.seed_settings(threshold, min_size)
    if seed_height is None:
        seed_height = target.seed_height or 0.0
    if not 0 <= seed_height < 1:
        raise DataError(f"{where}seed height must be 0 (the paper's seeds) or in (0, 1), not {seed_height}")
    if foreground_threshold is None:
        foreground_threshold = target.foreground_threshold or DEFAULT_FOREGROUND_THRESHOLD
    if not 0 < foreground_threshold < 1:
        raise DataError(f"{where}foreground threshold must be in (0, 1), not {foreground_threshold}")
    used = prediction_spacing(bundle, spacing)
    return InstanceTarget(interior, foreground, threshold, min_size, cells, used, float(seed_height), distance,
                          float(foreground_threshold))


def prediction_spacing(bundle: ModelBundle, spacing: Sequence[float] | None = None) -> tuple[float, ...] | None:
    """The spacing a prediction with ``bundle`` uses: ``spacing`` if given, else the model's ``Pipeline.spacing``.

    Raises :class:`~biounet.errors.DataError` (one line) for non-positive sizes, a count other than 2 or 3,
    or 2 values for a 3D model.
    """
    chosen = spacing if spacing is not None else bundle.pipeline.spacing
    if chosen is None:
        return None
    where = f"{bundle.path}: " if bundle.path else ""
    try:
        relative_to_pixel(chosen, bundle.config.spatial_dims)
    except (TypeError, ValueError) as error:
        raise DataError(f"{where}{error}") from None
    return tuple(float(v) for v in chosen)
