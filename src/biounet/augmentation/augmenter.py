"""Cutting augmented training tiles: one coordinate mapping per tile, each array sampled once.

For every tile a single mapping from tile pixels to source pixels is composed (elastic displacement,
rotation, multiple of 90 degrees, flips and zoom, all about the tile centre) and the image (cubic),
label map (nearest: no new label values) and the float maps (linear: the weight map, the distance
target) are each sampled once through it (:func:`biounet.augmentation.geometry.interpolate_planes`). Source
pixels outside the image are mirrored (the paper's overlap-tile strategy). Only the source region under the
tile is read, so huge or memory-mapped images are fine. Without augmentation a tile is a plain mirrored crop
(no interpolation).

A float map is resampled, not recomputed for the deformed tile. For a distance target (each object pixel's
distance to its border over the object's largest, 0..1) flips and quarter turns give exactly the map of the
turned labels; a free rotation and the elastic deformation, which stretches the tile locally, differ a little
from the map recomputed on the resampled labels (measured in docs/recipes.md, "Distance output"). That is fine
for a soft regression target and keeps one resampling per map.

3D stacks ``(C, Z, Y, X)`` share the in-plane mapping across sections (anisotropic data: nothing mixes
sections except the z flip). Serial-section changes (:mod:`biounet.augmentation.sections`; off by
default) make the mapping per section: an extra elastic jitter per section and slip/shift offsets become
``(Z, 2, Y, X)`` coordinates, still sampled in one call per array; a missing section is set to the tile's
mean after sampling. Label and float maps use the same per-section coordinates as the image except for a
slip, which moves the image alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from biounet.augmentation.config import AugmentationConfig
from biounet.augmentation.geometry import (
    CubicKernel,
    elastic_displacement,
    interpolate_planes,
    mirrored_crop,
)
from biounet.augmentation.intensity import augment_intensity
from biounet.augmentation.sections import blank_missing, draw_sections, offset_coordinates, with_jitter
from biounet.errors import DataError

_ROT90 = np.array([[0, -1], [1, 0]], dtype=np.float64)


class Augmenter:
    """Cuts (augmented) training tiles out of source images with their label map and float maps.

    Args:
        config: what to randomise; :meth:`AugmentationConfig.disabled` for plain crops.
        spatial_dims: 2 for images ``(C, Y, X)``, 3 for stacks ``(C, Z, Y, X)`` (geometry in-plane, the
            same for every section unless the config's section jitter or defects are on; flips on all
            axes). The section options are ignored for 2D.
    """

    def __init__(self, config: AugmentationConfig, spatial_dims: int) -> None:
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, not {spatial_dims}")
        self.config = config
        self.spatial_dims = spatial_dims

    def sample(
        self,
        image: np.ndarray,
        label: np.ndarray | None,
        weight: np.ndarray | None,
        center: Sequence[float],
        input_shape: Sequence[int],
        output_shape: Sequence[int],
        rng: np.random.Generator,
        *,
        augment: bool = True,
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Cut one training tile, augmented: :meth:`sample_maps` with the weight map as the one float map.

        Args:
            image: ``(C, *S)`` float32 normalised source image.
            label: ``(*S)`` integer class map, or None.
            weight: ``(*S)`` float32 pixel weights, or None.
            center: tile centre in source pixel coordinates (rounded to the nearest pixel): the tile
                pixel ``input_shape // 2`` lands on it when nothing is transformed.
            input_shape: spatial shape of the image tile ``(*T)``.
            output_shape: spatial shape of the label and weight tiles, centred inside the input tile
                (valid padding: ``input_shape - 2 * context``; same padding: equal to ``input_shape``).
            rng: the only source of randomness (same generator state, same tile).
            augment: False cuts a plain mirrored crop (validation).

        Returns:
            Image tile ``(C, *input_shape)`` float32, label tile ``(*output_shape)`` int64 and weight
            tile ``(*output_shape)`` float32 (None where the input was None). Pixels outside the source
            image are mirrored (reflection about the edge pixel, ``np.pad(mode="reflect")``).
        """
        image_tile, label_tile, (weight_tile,) = self.sample_maps(
            image, label, (weight,), center, input_shape, output_shape, rng, augment=augment
        )
        return image_tile, label_tile, weight_tile

    def sample_maps(
        self,
        image: np.ndarray,
        label: np.ndarray | None,
        maps: Sequence[np.ndarray | None],
        center: Sequence[float],
        input_shape: Sequence[int],
        output_shape: Sequence[int],
        rng: np.random.Generator,
        *,
        augment: bool = True,
    ) -> tuple[np.ndarray, np.ndarray | None, tuple[np.ndarray | None, ...]]:
        """Cut one training tile, augmented, with any number of float maps (weights, distance targets).

        Every map of ``maps`` (``(*S)``, or None) is cut like a weight map: the same mirrored crop of the
        output window, the same coordinates as the label map, linear interpolation (see the module
        docstring for what that means for distance maps). The random draws do not depend on the maps, so a
        tile's image and labels are the same whatever maps come along. Arguments and the image and label
        tiles as for :meth:`sample`.

        Returns:
            ``(image tile, label tile, map tiles)``: one ``(*output_shape)`` float32 tile per map, in order
            (None where the map was None).
        """
        in_shape, out_shape = self._check(image, label, maps, center, input_shape, output_shape)
        start = np.floor(np.asarray(center, dtype=np.float64) + 0.5).astype(np.intp) - in_shape // 2
        offset = (in_shape - out_shape) // 2
        sections = self.spatial_dims == 3 and self.config.changes_sections
        if augment and (self.config.changes_geometry or sections):
            image_tile, label_tile, map_tiles = self._transformed_tiles(
                image, label, maps, start, offset, in_shape, out_shape, rng
            )
        else:
            image_tile = mirrored_crop(image, start, in_shape).astype(np.float32, copy=False)
            label_tile = None if label is None else mirrored_crop(label, start + offset, out_shape)
            map_tiles = [None if m is None else mirrored_crop(m, start + offset, out_shape) for m in maps]
        if augment:
            image_tile = augment_intensity(image_tile, self.config, rng)
        return (
            image_tile,
            None if label_tile is None else label_tile.astype(np.int64, copy=False),
            tuple(None if tile is None else tile.astype(np.float32, copy=False) for tile in map_tiles),
        )

    def _transformed_tiles(
        self,
        image: np.ndarray,
        label: np.ndarray | None,
        maps: Sequence[np.ndarray | None],
        start: np.ndarray,
        offset: np.ndarray,
        in_shape: np.ndarray,
        out_shape: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray | None, list[np.ndarray | None]]:
        """Draw one random mapping (and per-section changes) and sample the image, label and maps through it."""
        plane_shape = tuple(int(n) for n in in_shape[-2:])
        matrix, displacement, flips, integral = self._draw_mapping(plane_shape, rng)
        sections = None
        if self.spatial_dims == 3 and self.config.changes_sections:
            sections = draw_sections(self.config, int(in_shape[0]), plane_shape, rng)
            integral = False if sections.jitter is not None else integral
        coords = plane_coordinates(start[-2:], plane_shape, matrix, with_jitter(displacement, sections))
        lead = []
        if self.spatial_dims == 3:
            z = np.arange(start[0], start[0] + in_shape[0])
            lead = [z[::-1] if flips[0] else z]
        image_coords = offset_coordinates(coords, matrix, sections, image=True)
        image_tile = interpolate_planes(
            image, image_coords, 3, lead_indices=lead, integral=integral, dtype=np.float32,
            cubic=self.config.image_interpolation,
        )
        blank_missing(image_tile, sections)
        window = tuple(slice(int(o), int(o + n)) for o, n in zip(offset, out_shape))
        out_coords = _window_coordinates(offset_coordinates(coords, matrix, sections, image=False), window)
        out_lead = [index[window[0]] for index in lead]
        label_tile = None
        if label is not None:
            label_tile = interpolate_planes(label, out_coords, 0, lead_indices=out_lead, integral=integral)
        map_tiles = [
            None if m is None
            else interpolate_planes(m, out_coords, 1, lead_indices=out_lead, integral=integral, dtype=np.float32)
            for m in maps
        ]
        return image_tile, label_tile, map_tiles

    def _draw_mapping(
        self, plane_shape: tuple[int, int], rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, bool | None]:
        """Draw the tile's shared in-plane mapping.

        Returns:
            ``(2, 2)`` linear map (tile frame to source frame), the ``(2, Y, X)`` elastic displacement in
            pixels (None when off), the ``(spatial_dims,)`` bool flips, and ``None`` when the mapping may
            map pixels to pixels (flips and quarter turns only: then pixels are gathered) else False.
        """
        config = self.config
        flips = rng.random(self.spatial_dims) < 0.5 if config.flip else np.zeros(self.spatial_dims, dtype=bool)
        quarter_turns = int(rng.integers(4)) if config.rotate90 else 0
        angle = rng.uniform(0.0, 2.0 * math.pi) if config.rotate else 0.0
        zoom = rng.uniform(*config.scale) if config.scale != (1.0, 1.0) else 1.0
        displacement = None
        if config.elastic and config.elastic_std > 0:
            displacement = elastic_displacement(plane_shape, rng, config.elastic_grid, config.elastic_std)
        matrix = np.linalg.matrix_power(_ROT90, quarter_turns) @ np.diag(np.where(flips[-2:], -1.0, 1.0))
        matrix = rotation_matrix(angle) @ matrix / zoom
        integral = None if displacement is None and angle == 0.0 and zoom == 1.0 else False
        return matrix, displacement, flips, integral

    def _check(
        self,
        image: np.ndarray,
        label: np.ndarray | None,
        maps: Sequence[np.ndarray | None],
        center: Sequence[float],
        input_shape: Sequence[int],
        output_shape: Sequence[int],
    ) -> tuple[np.ndarray, np.ndarray]:
        dims = self.spatial_dims
        if image.ndim != dims + 1:
            raise DataError(f"expected a {dims}D image with channels (C, *S), got an array of shape {image.shape}")
        for name, array in [("label map", label), *((f"float map {i} (weights, distances)", m) for i, m in
                                                       enumerate(maps))]:
            if array is not None and array.shape != image.shape[1:]:
                raise DataError(f"the {name} has shape {array.shape} but the image {image.shape[1:]}")
        in_shape = np.asarray(input_shape, dtype=np.intp)
        out_shape = np.asarray(output_shape, dtype=np.intp)
        if len(center) != dims or in_shape.shape != (dims,) or out_shape.shape != (dims,):
            raise ValueError(f"center, input_shape and output_shape need {dims} entries each")
        if np.any(out_shape < 1) or np.any(out_shape > in_shape):
            raise ValueError(
                f"output_shape {tuple(out_shape)} must be positive and fit in input_shape {tuple(in_shape)}"
            )
        return in_shape, out_shape


def _window_coordinates(coords: np.ndarray, window: tuple[slice, ...]) -> np.ndarray:
    """The output tile's part of ``coords`` ``(2, Y, X)`` or ``(Z, 2, Y, X)``; ``window``: a slice per spatial axis."""
    if coords.ndim == 4:
        return coords[window[0], :, window[-2], window[-1]]
    return coords[:, window[-2], window[-1]]


def rotation_matrix(angle: float) -> np.ndarray:
    """``(2, 2)`` rotation by ``angle`` radians in the (y, x) plane."""
    if angle == 0.0:
        return np.eye(2)
    cos, sin = math.cos(angle), math.sin(angle)
    return np.array([[cos, -sin], [sin, cos]])


def plane_coordinates(
    start: Sequence[int], shape: Sequence[int], matrix: np.ndarray, displacement: np.ndarray | None = None
) -> np.ndarray:
    """Source coordinates ``(*D, 2, Y, X)`` of a tile of ``shape`` whose identity placement starts at ``start``.

    ``source = centre + matrix @ (q + displacement(q))``, where ``q`` is the pixel's offset (pixels) from
    the tile's geometric centre and ``centre = start + (shape - 1) / 2``: flips and rotations turn the tile
    about its own centre, and ``matrix = identity`` with no displacement gives ``start + index``.
    ``displacement`` is ``(*D, 2, Y, X)`` pixels in the tile frame: ``(2, Y, X)`` shared, or one field per
    section ``(Z, 2, Y, X)`` (then the coordinates are per section too); ``D`` is empty without one.
    The coordinates are float32 when the displacement is (large per-section fields), else float64.
    """
    height, width = (int(n) for n in shape)
    # Per-section fields come as float32 (16 MB less per 16x256x256 tile); the shared path stays float64.
    dtype = np.float32 if displacement is not None and displacement.dtype == np.float32 else np.float64
    centre = np.asarray(start, dtype=np.float64) + (np.array([height, width]) - 1.0) / 2.0
    qy = (np.arange(height) - (height - 1) / 2.0)[:, None].astype(dtype)
    qx = (np.arange(width) - (width - 1) / 2.0)[None, :].astype(dtype)
    if displacement is not None:
        qy, qx = qy + displacement[..., 0, :, :], qx + displacement[..., 1, :, :]
    coords = np.empty((*np.shape(qy)[:-2], 2, height, width), dtype=dtype)
    for axis in (0, 1):  # centre + m[a, 0] * qy + m[a, 1] * qx, in place (per-section fields are large)
        out = coords[..., axis, :, :]
        np.multiply(qy, float(matrix[axis, 0]), out=out)
        out += float(centre[axis])
        out += float(matrix[axis, 1]) * qx
    return coords


def elastic_deform(
    array: np.ndarray,
    rng: np.random.Generator,
    grid: int = 3,
    std: float = 10.0,
    order: int = 3,
    *,
    cubic: CubicKernel = "bicubic",
) -> np.ndarray:
    """Elastically deform a whole array in-plane, the paper's way (mirrored at the borders).

    Args:
        array: ``(*L, Y, X)``; every plane (e.g. channels or Z sections) gets the same deformation.
        rng: source of randomness.
        grid: coarse grid points per axis; std: coarse displacement standard deviation in pixels.
        order: interpolation order: 3 (cubic) for images, 1 (linear), 0 (nearest) for label maps.
        cubic: ``"bicubic"`` (Keys, PyTorch, fast) or ``"spline"`` (cubic B-spline, SciPy) for ``order == 3``.

    Returns:
        Deformed array of the same shape; dtype of ``array`` for ``order == 0``, float32 otherwise.
    """
    array = np.asarray(array)
    if array.ndim < 2:
        raise ValueError(f"elastic_deform needs an array with at least 2 axes, got shape {array.shape}")
    plane_shape = array.shape[-2:]
    coords = np.indices(plane_shape, dtype=np.float64) + elastic_displacement(plane_shape, rng, grid, std)
    dtype = array.dtype if order == 0 else np.float32
    integral = None if std == 0 else False
    return interpolate_planes(array, coords, order, integral=integral, dtype=dtype, cubic=cubic)
