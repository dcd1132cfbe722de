"""Anisotropic data: voxel spacings, and the network layout and tiles they call for.

Serial-section EM stacks have sections about ten times thicker than their pixels (the shared ssTEM stack:
about 50 nm between sections, 4.6 nm pixels). biounet keeps a spacing in any one unit (``data.spacing``,
saved in the model's pipeline) and measures every distance in the data's own pixels through
:func:`relative_spacing`: the in-plane pixel is 1, so ``sigma`` of the weight map and the cells' seed
distance stay in in-plane pixels whatever unit the user gave.
"""

from __future__ import annotations

from collections.abc import Sequence


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


__all__ = ["relative_spacing"]
