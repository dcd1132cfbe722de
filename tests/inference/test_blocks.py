"""Blocks of whole tiles (no cluster): every pixel in one core, every block tile the global grid's tile, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from biounet.errors import DataError
from biounet.inference.blocks import local_geometry, plan_blocks
from biounet.inference.blockwise import predict_blockwise
from biounet.inference.label_merge import BlockLabels, merge_tables
from biounet.io.atomic import OutputInTheWayError
from biounet.io.checkpoint import save_model
from biounet.model import UNet, UNetConfig
from biounet.tiling import plan_grid


@pytest.mark.parametrize(
    ("config", "shape", "tile", "block"),
    [
        (UNetConfig(depth=2, base_channels=2), (1000, 777), (200, 200), 300),
        (UNetConfig(depth=2, base_channels=2, padding="same"), (530, 301), (96, 96), 100),
        (UNetConfig(spatial_dims=3, depth=1, base_channels=1), (40, 130, 90), (24, 64, 64), (20, 60, 50)),
    ],
)
def test_cores_tile_the_image_and_block_tiles_read_what_global_tiles_read(config, shape, tile, block) -> None:
    grid = plan_grid(config, shape, tile)
    plan = plan_blocks(grid, block)
    owner = np.zeros(shape, np.int32)
    tiles = {t.grid_index: t for t in grid}
    for b in plan.blocks():
        owner[b.core] += 1
        geometry = local_geometry(grid, b)
        for local in geometry.grid:
            index = tuple(k + first for k, (first, _) in zip(local.grid_index, b.tiles))
            original = tiles[index]
            read_from = tuple(s + o for s, o in zip(local.input_start, geometry.input_start))
            assert read_from == original.input_start  # the same input box ...
            assert all(0 <= s and s + n <= m for s, n, m in zip(local.input_start, grid.input_shape,
                                                                    geometry.input_shape))  # ... inside the block's
            global_out = tuple(slice(s.start + o, s.stop + o) for s, o in zip(local.region(), geometry.input_start))
            assert all(g.start <= max(0, o.start) and min(g.stop, n) >= o.stop
                       for g, o, n in zip(global_out, original.region(), shape))
    assert (owner == 1).all() and len(plan) > 1


def test_face_merge_joins_an_object_cut_by_a_face_and_not_two_touching_ones() -> None:
    # Two blocks side by side along x (axis 1), a face of 5 pixels.  Object A crosses the face (rows 0-1: the
    # left block's 1, the right block's 1); the left block's B and the right block's C touch at it (rows 2-3),
    # so each block sees the other's object only in its context, where it is not one of its own (0).
    left = BlockLabels(2, {(1, 1): (np.array([1, 1, 2, 2, 0]), np.array([1, 1, 0, 0, 0]))})
    right = BlockLabels(2, {(1, -1): (np.array([1, 1, 2, 2, 0]), np.array([1, 1, 0, 0, 0]))})
    tables = merge_tables([left, right], [[None, 1], [None, None]])
    assert tables[0][1] == tables[1][1]  # A: one id across the face
    assert len({tables[0][1], tables[0][2], tables[1][2]}) == 3  # B and C stay two
    assert sorted({*tables[0][1:], *tables[1][1:]}) == [1, 2, 3]


def test_cells_linked_differently_by_two_blocks_are_joined_section_by_section() -> None:
    # A stack of thick sections, two blocks side by side along y (axis 1), faces of 4 sections x 3 pixels.
    # The left block linked one neuron through all 4 sections (its 1); the right block saw less of it and
    # linked section 0 (its 1) apart from sections 1-3 (its 2).  Over the whole face the majority keeps only
    # 1-2 and cuts the neuron along the face; section by section each piece joins it.
    neuron = np.ones((4, 3), np.int64)
    pieces = np.array([[1] * 3, [2] * 3, [2] * 3, [2] * 3])
    left = BlockLabels(1, {(1, 1): (neuron, neuron)})
    right = BlockLabels(2, {(1, -1): (pieces, pieces)})
    whole = merge_tables([left, right], [[None, 1, None], [None, None, None]])
    assert whole[1][2] == whole[0][1] != whole[1][1]
    per_section = merge_tables([left, right], [[None, 1, None], [None, None, None]], per_section=True)
    assert per_section[0][1] == per_section[1][1] == per_section[1][2] == 1
    # two cells touching at the face within a section still stay apart
    own = np.array([[1, 1, 2]] * 4)
    context = np.array([[1, 1, 0]] * 4)
    left = BlockLabels(2, {(1, 1): (own, context)})
    right = BlockLabels(2, {(1, -1): (own, context)})
    tables = merge_tables([left, right], [[None, 1, None], [None, None, None]], per_section=True)
    assert tables[0][1] == tables[1][1] and len({tables[0][1], tables[0][2], tables[1][2]}) == 3


def test_bad_requests_fail_before_any_work_in_one_line(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = save_model(UNet(depth=2, base_channels=2, dropout=0.0), tmp_path / "m.safetensors")
    stack = zarr.open_array(str(tmp_path / "stack.zarr"), mode="w", shape=(3, 64, 64), dtype=np.uint8)
    stack[...] = 1
    with pytest.raises(DataError, match=r"stack\.zarr: the 2D model with 1 input channel got 3 channels"):
        predict_blockwise(model, tmp_path / "stack.zarr", tmp_path / "out.zarr", dask="tcp://127.0.0.1:1")
    (tmp_path / "mine.zarr").mkdir()
    with pytest.raises(OutputInTheWayError, match=r"mine\.zarr: a folder is in the way"):
        predict_blockwise(model, tmp_path / "stack.zarr", tmp_path / "mine.zarr", dask="tcp://127.0.0.1:1")
    with pytest.raises(TypeError, match="from a file every worker can open"):
        predict_blockwise(model, np.zeros((64, 64)), tmp_path / "out.zarr", dask="tcp://127.0.0.1:1")
    with pytest.raises(ValueError, match="unknown output 'edges'"):
        predict_blockwise(model, tmp_path / "stack.zarr", tmp_path / "out.zarr", ["edges"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors", "mine.zarr", "stack.zarr"]
