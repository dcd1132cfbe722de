"""Overlap-tile strategy (Ronneberger et al. 2015, Fig. 2): tile grid, mirroring, tile sizes from memory.

- :func:`plan_grid` -> :class:`TileGrid` of :class:`Tile` (input box, output box, crop) for any image size.
- :func:`read_mirrored` reads one tile of a (lazy) array, mirroring beyond the border by index arithmetic.
- :func:`max_input_shape`, :func:`batch_size_for`: sizes from the memory budget.
"""

from biounet.tiling.budget import activation_bytes_per_pixel, batch_size_for, max_input_shape, memory_budget
from biounet.tiling.grid import SAME_CONTEXTS, AxisPlan, Tile, TileGrid, context_margin, plan_grid
from biounet.tiling.mirror import read_mirrored, reflect_indices

__all__ = [
    "AxisPlan",
    "Tile",
    "TileGrid",
    "activation_bytes_per_pixel",
    "batch_size_for",
    "SAME_CONTEXTS",
    "context_margin",
    "max_input_shape",
    "memory_budget",
    "plan_grid",
    "read_mirrored",
    "reflect_indices",
]
