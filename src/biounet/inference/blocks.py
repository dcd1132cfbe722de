"""Blocks of a large image for distributed prediction, each made of whole tiles of the single-process grid.

A block is a box of the output (its *core*, the pixels it writes) whose borders lie on the tile grid that
:func:`~biounet.tiling.plan_grid` lays over the WHOLE image, the grid ``biounet.predict`` uses.  The block is
predicted by running the tiles of that grid that cover it, each reading exactly the input box it reads in a
single-process run: the block's input is read from the whole image with its real neighbours as context and
mirrored only beyond the true image border (:func:`~biounet.tiling.read_mirrored` in image coordinates).
Every tile therefore gets the same input, on the same pooling phase, as in a single-process run, and a
valid-padded model's probabilities are bit-identical; for a same-padded model they are identical too (the
same tiles, halo crop included), since a tile is never cut by a block border (a border tile is computed by
both blocks).

The block-local grid is a :class:`~biounet.tiling.TileGrid` whose first tile reads position 0 of the block's
input array: ``shift = margin`` puts the first output tile at ``margin`` in block coordinates, so the engine
(:class:`~biounet.inference.engine.TiledRun`) runs unchanged over it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from biounet.tiling import AxisPlan, TileGrid


@dataclass(frozen=True)
class Block:
    """One block: ``core`` (global output slices it writes) and the tiles that compute it.

    Attributes:
        index: the block's position in the block grid (per axis).
        number: its raster number (0..n-1).
        core: global pixel slices of the output this block writes.
        extended: global pixel slices the block's tiles produce (``core``, or more where a tile crosses the
            core's border: same-padded models), clipped to the image.
        tiles: per axis the range ``[first, stop)`` of global tile indices run for this block.
    """

    index: tuple[int, ...]
    number: int
    core: tuple[slice, ...]
    extended: tuple[slice, ...]
    tiles: tuple[tuple[int, int], ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(s.stop - s.start for s in self.core)


@dataclass(frozen=True)
class BlockPlan:
    """All blocks of one image over the global tile ``grid``; ``block_shape`` is a multiple of the tile stride."""

    grid: TileGrid
    block_shape: tuple[int, ...]

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(math.ceil(n / b) for n, b in zip(self.grid.image_shape, self.block_shape))

    def __len__(self) -> int:
        return math.prod(self.counts)

    def blocks(self) -> list[Block]:
        return [self.block(index) for index in itertools.product(*(range(n) for n in self.counts))]

    def block(self, index: Sequence[int]) -> Block:
        core, extended, tiles = [], [], []
        for j, axis, b in zip(index, self.grid.axes, self.block_shape):
            lo, hi = j * b, min((j + 1) * b, axis.size)
            first, stop = _covering(axis, lo, hi)
            core.append(slice(lo, hi))
            extended.append(slice(max(0, axis.origin(first)), min(axis.size, axis.origin(stop))))
            tiles.append((first, stop))
        number = int(sum(i * math.prod(self.counts[a + 1 :]) for a, i in enumerate(index)))
        return Block(tuple(int(i) for i in index), number, tuple(core), tuple(extended), tuple(tiles))

    def neighbour(self, block: Block, axis: int) -> int | None:
        """The raster number of the block after ``block`` along ``axis`` (``None`` at the image's end)."""
        index = list(block.index)
        index[axis] += 1
        if index[axis] >= self.counts[axis]:
            return None
        return int(sum(i * math.prod(self.counts[a + 1 :]) for a, i in enumerate(index)))


def plan_blocks(grid: TileGrid, block_size: int | Sequence[int]) -> BlockPlan:
    """Blocks of about ``block_size`` pixels per axis, rounded to whole tile strides (at least one tile)."""
    d = len(grid.axes)
    sizes = (int(block_size),) * d if isinstance(block_size, int) else tuple(int(n) for n in block_size)
    if len(sizes) != d or any(n < 1 for n in sizes):
        raise ValueError(f"block_size must be a positive int or {d} positive ints, not {block_size!r}")
    shape = tuple(max(1, round(n / a.stride)) * a.stride for n, a in zip(sizes, grid.axes))
    return BlockPlan(grid, shape)


def _covering(axis: AxisPlan, lo: int, hi: int) -> tuple[int, int]:
    """Global tile indices ``[first, stop)`` whose output boxes cover pixels ``[lo, hi)`` of ``axis``."""
    first = max(0, (lo - axis.shift) // axis.stride)
    stop = min(axis.count, -(-(hi - axis.shift) // axis.stride))
    return int(first), int(stop)


@dataclass(frozen=True)
class LocalGeometry:
    """How a block's tiles sit in its own input array.

    Attributes:
        input_start: global position of the block input's first pixel (may be negative: mirrored there).
        input_shape: the block input's spatial shape, in pixels.
        grid: the block-local tile grid (same tiles as the global grid, block coordinates).
    """

    input_start: tuple[int, ...]
    input_shape: tuple[int, ...]
    grid: TileGrid

    def local(self, region: Sequence[slice]) -> tuple[slice, ...]:
        """Global slices -> slices of the block-local output (the engine's image coordinates)."""
        return tuple(slice(s.start - o, s.stop - o) for s, o in zip(region, self.input_start))


def local_geometry(grid: TileGrid, block: Block) -> LocalGeometry:
    """The input box and local grid that run the global tiles ``block.tiles`` over the block's input."""
    starts, shapes, axes = [], [], []
    for axis, (first, stop), region in zip(grid.axes, block.tiles, block.extended):
        origin = axis.origin(first)
        starts.append(origin - axis.margin)
        shapes.append((stop - first - 1) * axis.stride + axis.input_size)
        size = axis.margin + region.stop - origin
        axes.append(AxisPlan(size, axis.stride, axis.input_size, axis.margin, axis.margin, axis.net_offset))
    return LocalGeometry(tuple(starts), tuple(shapes), TileGrid(tuple(axes)))


__all__ = ["Block", "BlockPlan", "LocalGeometry", "local_geometry", "plan_blocks"]
