"""The tile grid covers every pixel exactly once, on the pooling grid, with valid tile sizes."""

from __future__ import annotations

import numpy as np
import pytest

from biounet.model import UNetConfig, sizes
from biounet.tiling import context_margin, plan_grid

PAPER = UNetConfig()
ANISOTROPIC = UNetConfig(
    spatial_dims=3, base_channels=4, depth=2, pool_factors=[(1, 2, 2), (2, 2, 2)], kernel_sizes=[(1, 3, 3), 3, 3]
)


def coverage(grid) -> np.ndarray:
    counts = np.zeros(grid.image_shape, np.int32)
    for tile in grid:
        counts[tile.region()] += 1
    return counts


@pytest.mark.parametrize("config", [PAPER, PAPER.replace(padding="same"), ANISOTROPIC])
@pytest.mark.parametrize("limit", [None, 300, 190])
def test_tiles_cover_every_pixel_once_on_the_pooling_grid(config: UNetConfig, limit) -> None:
    shape = (45, 300, 211) if config.spatial_dims == 3 else (1000, 777)
    max_input = (
        None
        if limit is None
        else (min(limit, 64) if config.spatial_dims == 3 else limit,) + (limit,) * (config.spatial_dims - 1)
    )
    grid = plan_grid(config, shape, max_input)
    assert np.all(coverage(grid) == 1)
    pool = sizes.total_pool_factor(config)
    halo = sizes.halo(config)
    margin = context_margin(config)
    for axis, plan in enumerate(grid.axes):
        assert plan.stride % pool[axis] == 0
    assert sizes.is_valid_input_shape(config, grid.input_shape)
    for tile in grid:
        out_shape = sizes.output_shape(config, grid.input_shape)
        for axis in range(config.spatial_dims):
            assert 0 <= tile.crop_start[axis] <= out_shape[axis] - tile.output_shape[axis]
            if config.padding == "valid":  # the same pooling phase as a whole-image pass starting at -halo
                assert (tile.input_start[axis] + halo[axis]) % pool[axis] == 0
            else:  # the kept centre is at least the receptive-field radius away from the tile's border
                assert tile.crop_start[axis] >= margin[axis] or tile.output_start[axis] == 0
                end = tile.crop_start[axis] + tile.output_shape[axis]
                assert grid.input_shape[axis] - end >= margin[axis] or tile.output_stop[axis] == shape[axis]


def test_paper_network_on_isbi_sized_image_uses_balanced_tiles() -> None:
    grid = plan_grid(PAPER, (512, 512), (572, 572))
    assert grid.counts == (2, 2)
    assert grid.stride == (256, 256)
    assert grid.input_shape == (444, 444)  # not one 572 tile plus one mostly mirrored


def test_same_padding_margin_is_the_halo_on_the_pooling_grid_or_the_exact_receptive_field() -> None:
    same = PAPER.replace(padding="same")
    assert context_margin(PAPER) == context_margin(PAPER, "exact") == (92, 92)  # valid: always the halo
    assert context_margin(same) == (80, 80)  # 92 rounded down to 16
    assert context_margin(same, "exact") == (112, 112)  # 92 + 15 rounded up to 16
    with pytest.raises(ValueError, match="context"):
        context_margin(same, "blend")


def test_same_padding_takes_an_image_that_fits_in_one_pass_without_margins() -> None:
    """The floor of same-padded prediction: an image within the limit is one plain pass, not a bigger tile."""
    same = PAPER.replace(padding="same")
    grid = plan_grid(same, (512, 500), (672, 672))
    assert len(grid) == 1 and grid.input_shape == (512, 512)  # 500 rounded up to the pooling grid only
    assert [axis.margin for axis in grid.axes] == [0, 0]
    tiled = plan_grid(same, (2048, 2048), (1024, 1024))
    assert len(tiled) > 1 and [axis.margin for axis in tiled.axes] == [80, 80]
    assert max(tiled.input_shape) <= 1024


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (13, 1), (1, 997)])
def test_tiny_and_thin_images_are_tiled(shape) -> None:
    grid = plan_grid(PAPER, shape, (572, 572))
    assert sizes.is_valid_input_shape(PAPER, grid.input_shape)
    assert np.all(coverage(grid) == 1)
    if max(shape) <= 16:  # one tile: 16 output pixels (the pooling factor) + 2 x 92 context -> 204
        assert len(grid) == 1 and grid.input_shape == (204, 204)


def test_rejects_empty_and_wrong_rank() -> None:
    with pytest.raises(ValueError):
        plan_grid(PAPER, (0, 5))
    with pytest.raises(ValueError):
        plan_grid(PAPER, (5, 5, 5))


def test_same_padding_needs_no_margin_along_an_axis_taken_whole() -> None:
    """Tiles of a 3-section stack span every section (margin 0 in z, as a whole-image pass) and carry the
    context only in-plane, where the stack is tiled."""
    config = UNetConfig(spatial_dims=3, base_channels=4, depth=2, padding="same", pool_factors=[(1, 2, 2), (2, 2, 2)],
                        kernel_sizes=[(1, 3, 3), (1, 3, 3), 3])
    grid = plan_grid(config, (3, 1024, 1024), (4, 300, 300))
    margins = [axis.margin for axis in grid.axes]
    assert margins[0] == 0 and margins[1] == margins[2] == context_margin(config)[1] > 0
    assert grid.input_shape[0] == 4 and len({tile.grid_index[0] for tile in grid}) == 1
