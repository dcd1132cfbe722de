"""Anisotropic data: voxel spacings, and the network layout and tiles they call for.

Serial-section EM stacks have sections about ten times thicker than their pixels (the shared ssTEM stack:
about 50 nm between sections, 4.6 nm pixels). biounet keeps a spacing in any one unit (``data.spacing``,
saved in the model's pipeline) and measures every distance in the data's own pixels through
:func:`relative_spacing`: the in-plane pixel is 1, so ``sigma`` of the weight map and the cells' seed
distance stay in in-plane pixels whatever unit the user gave.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from biounet.model.config import UNetConfig

#: Spacing ratio above which an axis counts as coarse: it is not pooled and its kernel is 1 (nnU-Net's rule).
ANISOTROPY_RATIO = 2.0


def relative_spacing(spacing: Sequence[float] | None, ndim: int) -> tuple[float, ...] | None:
    """``spacing`` over its smallest in-plane entry, for an array of ``ndim`` spatial axes; ``None`` if isotropic.

    ``spacing`` is ``(Y, X)`` or ``(Z, Y, X)`` in any unit. A 3-value spacing for a 2D array (a section of
    a stack) keeps its last two values. ``relative_spacing((50, 4.6, 4.6), 3) == (10.87, 1.0, 1.0)``.
    Raises ``ValueError`` for a spacing of the wrong length or with non-positive entries.
    """
    if spacing is None:
        return None
    values = tuple(float(v) for v in spacing)
    if len(values) not in (2, 3) or any(not v > 0 for v in values):
        raise ValueError(f"spacing must be 2 or 3 positive sizes (Y, X or Z, Y, X), not {tuple(spacing)}")
    if len(values) < ndim:
        raise ValueError(f"spacing {values} has {len(values)} values for data with {ndim} spatial axes")
    values = values[len(values) - ndim:]
    in_plane = min(values[-2:])
    relative = tuple(v / in_plane for v in values)
    return None if all(v == 1.0 for v in relative) else relative


def is_anisotropic(spacing: Sequence[float] | None) -> bool:
    """Whether the coarsest axis of ``spacing`` is more than :data:`ANISOTROPY_RATIO` times the finest."""
    if spacing is None:
        return False
    values = [float(v) for v in spacing]
    return max(values) > ANISOTROPY_RATIO * min(values)


def anisotropic_layout(
    spacing: Sequence[float], depth: int
) -> tuple[tuple[tuple[int, ...], ...], tuple[tuple[int, ...], ...]]:
    """``(pool_factors, kernel_sizes)`` of a U-Net of ``depth`` poolings for voxels of ``spacing``.

    The rule of nnU-Net (``get_pool_and_conv_props``), level by level on the current spacing (the voxel
    size of the feature map at that level): an axis is pooled by 2 only when its spacing is at most
    :data:`ANISOTROPY_RATIO` times the smallest current spacing, and its kernel is 1 instead of 3 while
    it is coarser than that (a 3-voxel kernel across 50 nm sections would mix structures 100 nm apart
    while seeing 14 nm in-plane). Pooling doubles the spacing of the pooled axes, so the in-plane axes
    catch up with z and the deeper levels pool and convolve in 3D. The bottleneck's kernel follows the
    spacing after the last pooling. For ``(50, 4.6, 4.6)`` and depth 4: pools ``(1,2,2)`` three times then
    ``(2,2,2)``, kernels ``(1,3,3)`` at the first three levels, ``(3,3,3)`` at the last and the bottleneck.
    Isotropic spacing gives the plain layout (2 and 3 everywhere).

    Returns ``depth`` pool factors and ``depth + 1`` kernel sizes, one value per axis of ``spacing``
    (as :class:`~biounet.model.config.UNetConfig` takes them).
    """
    current = [float(v) for v in spacing]
    if not current or any(not v > 0 for v in current):
        raise ValueError(f"spacing must be positive sizes, not {tuple(spacing)}")
    if depth < 0:
        raise ValueError(f"depth must be >= 0, not {depth}")
    pools, kernels = [], []
    for _ in range(depth):
        fine = [v <= ANISOTROPY_RATIO * min(current) for v in current]
        pools.append(tuple(2 if f else 1 for f in fine))
        kernels.append(tuple(3 if f else 1 for f in fine))
        current = [v * 2 if f else v for v, f in zip(current, fine)]
    kernels.append(tuple(3 if v <= ANISOTROPY_RATIO * min(current) else 1 for v in current))
    return tuple(pools), tuple(kernels)


def is_plain_layout(config: UNetConfig) -> bool:
    """Whether ``config`` has the isotropic default layout: pooling by 2 and 3-voxel kernels on every axis."""
    return all(f == 2 for level in config.pool_factors for f in level) and all(
        k == 3 for level in config.kernel_sizes for k in level
    )


def anisotropic_tile(
    in_plane: int, spacing: Sequence[float], z_factor: int, max_depth: int | None = None
) -> tuple[int, int, int]:
    """A ``(Z, Y, X)`` training tile of ``in_plane`` pixels in Y and X, about as deep in physical size.

    ``spacing``: ``(Z, Y, X)`` in any unit; ``z_factor``: the network's total pooling factor along z (a tile
    must be a multiple of it). Z is ``in_plane * spacing_y / spacing_z`` sections, rounded up to a multiple of
    ``z_factor`` (at least one multiple), and at most ``max_depth`` (the depth of the thinnest training
    volume) rounded down to a multiple of ``z_factor``. For ``(50, 4.6, 4.6)``, 128 pixels and factor 2:
    ``(12, 128, 128)``; with volumes of 7 sections: ``(6, 128, 128)``.
    Raises ``ValueError`` when not even one multiple of ``z_factor`` fits in ``max_depth`` sections.
    """
    z_spacing, y_spacing = float(spacing[0]), float(spacing[1])
    if in_plane < 1 or z_factor < 1 or not (z_spacing > 0 and y_spacing > 0):
        raise ValueError(f"need a positive tile size, z pooling factor and spacing, not {in_plane}, {z_factor}, "
                         f"{tuple(spacing)}")
    depth = max(1, math.ceil(in_plane * y_spacing / z_spacing / z_factor - 1e-9)) * z_factor
    if max_depth is not None:
        if max_depth < z_factor:
            raise ValueError(f"the training volumes have {max_depth} sections, fewer than the network's z pooling "
                             f"factor {z_factor}: use a smaller model.depth or thicker volumes")
        depth = min(depth, max_depth // z_factor * z_factor)
    return depth, in_plane, in_plane


__all__ = ["ANISOTROPY_RATIO", "anisotropic_layout", "anisotropic_tile", "is_anisotropic", "is_plain_layout",
           "relative_spacing"]
