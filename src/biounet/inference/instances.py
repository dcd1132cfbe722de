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

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from biounet.errors import DataError
from biounet.inference.cells import cells_from_membranes, is_section_stack
from biounet.pipeline import DEFAULT_MIN_SEED_SIZE as DEFAULT_MIN_SIZE
from biounet.pipeline import CellSettings

if TYPE_CHECKING:  # annotations only: the checkpoint module imports torch
    from biounet.io.checkpoint import ModelBundle


def instances_from_probabilities(
    probs: np.ndarray,
    interior_class: int,
    foreground_classes: Sequence[int],
    threshold: float = 0.5,
    min_size: int = DEFAULT_MIN_SIZE,
) -> np.ndarray:
    """An instance label map ``(*S)`` int32 (0 = background) from class probabilities ``(C, *S)``.

    Args:
        probs: class probabilities ``(C, *S)``, summing to 1 over ``C``.
        interior_class: the class whose confident pixels are cell interiors (the seeds).
        foreground_classes: classes that belong to cells; seeds grow where their probabilities sum
            to more than 0.5 (for ISBI 2012 both classes: every pixel belongs to a cell).
        threshold: ``P(interior) > threshold`` marks seed pixels.
        min_size: seeds (and unseeded foreground components) smaller than this many pixels are dropped.
    """
    probs = np.asarray(probs)
    interior = probs[interior_class]
    foreground = np.sum(probs[list(foreground_classes)], axis=0, dtype=np.float32) > 0.5
    return instances_from_interior(interior, foreground, threshold=threshold, min_size=min_size)


def instances_from_interior(
    interior: np.ndarray, foreground: np.ndarray, threshold: float = 0.5, min_size: int = DEFAULT_MIN_SIZE
) -> np.ndarray:
    """Seeded watershed: ``interior`` ``(*S)`` probability, ``foreground`` ``(*S)`` bool -> ``(*S)`` int32 labels.

    Seeds are the components of ``(interior > threshold) & foreground`` with at least ``min_size``
    pixels, numbered 1..n in raster order; each keeps its number.  A foreground component (face
    neighbours) with one seed becomes that seed's cell whole; only components with several seeds are
    flooded (on ``-interior``, inside the component), which gives the same labels as one watershed over
    the whole foreground at a fraction of the cost on sparse images.  Foreground components that contain
    no seed but have at least ``min_size`` pixels become instances of their own, numbered after the
    seeds (a small cell whose interior never passed the threshold is not lost).
    """
    from skimage.segmentation import watershed

    interior = np.asarray(interior, dtype=np.float32)
    foreground = np.asarray(foreground, dtype=bool)
    components, count = ndimage.label(foreground)
    seeds = _drop_small(ndimage.label((interior > threshold) & foreground)[0], min_size)
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
        region = watershed(-interior[box], markers=np.where(flooded[box], seeds[box], 0), mask=flooded[box])
        labels[box] = np.where(flooded[box], region, labels[box])
    return labels


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
        foreground_classes: classes that seeds grow over (their summed probability > 0.5).
        threshold: seeds are ``P(interior) > threshold``.
        min_size: seeds smaller than this many pixels are dropped.
        cells: membrane models: the settings of :func:`~biounet.inference.cells.cells_from_membranes`,
            which then makes the instances (every pixel a cell); ``None`` for touching objects.
        spacing: the data's voxel size ``(Y, X)`` or ``(Z, Y, X)`` in any unit (given at prediction, else the
            model's ``Pipeline.spacing``; ``None``: isotropic).  The cells' distance transform and boundary
            areas use it (:func:`~biounet.model.anisotropy.relative_spacing`); a 3-value spacing makes a 2D
            model's cells on a stack in 3D (:func:`run_labels`).  The touching objects' watershed has no
            distance transform and does not use it.
    """

    interior_class: int
    foreground_classes: list[int]
    threshold: float
    min_size: int
    cells: CellSettings | None = None
    spacing: tuple[float, ...] | None = None

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
    interior: np.ndarray, foreground: np.ndarray, target: InstanceTarget, stack_axes: int
) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
    """The instances of a prediction ``(*stack, *S)`` as ``(key, labels)`` pieces of its output.

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
                interior[index], foreground[index], threshold=target.threshold, min_size=target.min_size
            )
        yield tuple(int(i) for i in index), labels


def instance_target(
    bundle: ModelBundle,
    threshold: float | None = None,
    min_size: int | None = None,
    spacing: Sequence[float] | None = None,
) -> InstanceTarget:
    """The instance settings of ``bundle``: classes from its pipeline target, seeds as given,
    else the model's (chosen by training on its validation images), else 0.5 and 8 pixels.

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
    if not all(0 <= c < classes for c in [interior, *foreground]):
        raise DataError(f"{where}pipeline target classes {target} do not fit a model with {classes} classes")
    cells = target.cell_settings(threshold) if target.style == "membrane" else None
    threshold, min_size = target.seed_settings(threshold, min_size)
    used = prediction_spacing(bundle, spacing)
    return InstanceTarget(interior, foreground, threshold, min_size, cells, used)


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
