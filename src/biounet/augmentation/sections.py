"""Per-section changes of serial-section stacks: elastic jitter and section defects (3D tiles only).

Serial-section TEM stacks ``(Z, Y, X)`` are cut, imaged and registered section by section, so the
in-plane geometry is not one smooth 3D mapping: every section is deformed a little on its own, some
sections are lost or blank, some are misaligned alone (a slip) and sometimes the registration breaks
and everything after a section is offset (a shift). The augmenter models these as changes of the
per-section sampling coordinates (no extra resampling pass) and, for lost sections, a constant image
section. Offsets are in the tile's frame, in pixels: a section's content moves by ``offset`` in the tile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from biounet.augmentation.config import AugmentationConfig
from biounet.augmentation.geometry import coarse_to_dense_matrix


@dataclass(frozen=True)
class SectionDraw:
    """The per-section changes drawn for one 3D tile of ``Z`` sections (tile order, after a z flip).

    Attributes:
        jitter: ``(Z, 2, Y, X)`` float32 extra displacement (pixels, tile frame, (y, x)) of every
            section, added to the tile's shared elastic displacement; None when off.
        missing: ``(Z,)`` bool, sections whose image becomes the tile's mean; None when off.
        slip: ``(Z, 2)`` float64 offsets (pixels, (y, x)) of the image alone; None when off.
        shift: ``(Z, 2)`` float64 offsets of image, label and weight, already summed over all earlier
            shift events (a shift moves its section and every later one); None when off.
    """

    jitter: np.ndarray | None
    missing: np.ndarray | None
    slip: np.ndarray | None
    shift: np.ndarray | None

    def offsets(self, image: bool) -> np.ndarray | None:
        """``(Z, 2)`` in-plane offsets (pixels) of the image (slip + shift) or of label and weight (shift).

        None when there are none (off, or no section drew one): then the coordinates stay as they are,
        shared by all sections unless jittered, which keeps the common case of a defect-free tile fast.
        """
        parts = [part for part in ((self.slip if image else None), self.shift) if part is not None]
        total = None if not parts else sum(parts[1:], parts[0])
        return total if total is not None and total.any() else None


def draw_sections(
    config: AugmentationConfig, sections: int, plane_shape: Sequence[int], rng: np.random.Generator
) -> SectionDraw:
    """Draw jitter and defects for a tile of ``sections`` sections of ``plane_shape`` ``(Y, X)`` pixels.

    Options that are off draw nothing from ``rng``. Order of draws: jitter, missing, slip, shift.
    """
    jitter = None
    if config.section_jitter_std > 0:
        jitter = smooth_fields(plane_shape, rng, config.elastic_grid, config.section_jitter_std, sections)
    missing = _events(rng, sections, config.missing_section_prob)
    slip = _offsets(rng, _events(rng, sections, config.slip_section_prob), config.misalign_max_shift)
    shift = _offsets(rng, _events(rng, sections, config.shift_section_prob), config.misalign_max_shift)
    return SectionDraw(jitter, missing, slip, None if shift is None else np.cumsum(shift, axis=0))


def smooth_fields(
    shape: Sequence[int], rng: np.random.Generator, grid: int, std: float, count: int
) -> np.ndarray:
    """``count`` independent smooth displacement fields ``(count, 2, Y, X)`` float32, pixels, for planes of ``shape``.

    The same construction as :func:`biounet.augmentation.geometry.elastic_displacement` (N(0, ``std``)
    on a ``grid`` x ``grid`` coarse grid, cubic B-spline interpolation), for all sections in one product.
    """
    height, width = (int(n) for n in shape)
    coarse = rng.normal(0.0, std, size=(count, 2, grid, grid))
    rows = coarse_to_dense_matrix(height, grid)
    cols = coarse_to_dense_matrix(width, grid)
    return (rows @ coarse @ cols.T).astype(np.float32)


def _events(rng: np.random.Generator, sections: int, prob: float) -> np.ndarray | None:
    """``(Z,)`` bool: which sections have the defect; None (and no draw) when ``prob`` is 0."""
    return None if prob == 0 else rng.random(sections) < prob


def _offsets(rng: np.random.Generator, events: np.ndarray | None, max_shift: float) -> np.ndarray | None:
    """``(Z, 2)`` offsets, uniform in ``[-max_shift, max_shift]`` per axis where ``events``, else 0."""
    if events is None:
        return None
    offsets = np.zeros((events.size, 2))
    offsets[events] = rng.uniform(-max_shift, max_shift, size=(int(events.sum()), 2))
    return offsets


def with_jitter(displacement: np.ndarray | None, draw: SectionDraw | None) -> np.ndarray | None:
    """The displacement ``(2, Y, X)`` shared by all sections, plus each section's jitter: ``(Z, 2, Y, X)`` float32.

    Float32 halves the memory traffic of the per-section coordinates (16 x 2 x 256 x 256 values for a
    16-section tile); coordinates up to 10^4 pixels keep a precision of ~10^-3 pixels.
    """
    if draw is None or draw.jitter is None:
        return displacement
    return draw.jitter if displacement is None else draw.jitter + displacement.astype(np.float32)


def offset_coordinates(
    coords: np.ndarray, matrix: np.ndarray, draw: SectionDraw | None, *, image: bool
) -> np.ndarray:
    """Source coordinates with the sections' offsets: ``(Z, 2, Y, X)`` float32, or ``coords`` unchanged if none.

    Args:
        coords: ``(2, Y, X)`` (shared) or ``(Z, 2, Y, X)`` (jittered) source coordinates in pixels.
        matrix: ``(2, 2)`` the tile's in-plane linear map (tile frame to source frame).
        draw: the tile's section changes.
        image: True for the image (slip and shift), False for label and weight (shift only).

    A content offset ``o`` in the tile means sampling at ``q - o`` in the tile frame, i.e. the source
    coordinates move by ``-matrix @ o``: one subtraction per section, no resampling.
    """
    offsets = None if draw is None else draw.offsets(image)
    if offsets is None:
        return coords
    return np.subtract(coords, (offsets @ matrix.T)[:, :, None, None], dtype=np.float32)


def blank_missing(image_tile: np.ndarray, draw: SectionDraw | None) -> np.ndarray:
    """Set the missing sections of ``image_tile`` ``(C, Z, Y, X)`` to the tile's mean per channel (in place)."""
    if draw is not None and draw.missing is not None and draw.missing.any():
        image_tile[:, draw.missing] = image_tile.mean(axis=(1, 2, 3), dtype=np.float64)[:, None, None, None]
    return image_tile
