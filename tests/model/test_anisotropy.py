"""Spacings relative to the in-plane pixel (biounet.model.anisotropy)."""

import pytest

from biounet.model import UNetConfig, sizes
from biounet.model.anisotropy import (
    anisotropic_layout,
    anisotropic_tile,
    is_anisotropic,
    is_plain_layout,
    relative_spacing,
)


def test_relative_spacing_makes_the_in_plane_pixel_one():
    assert relative_spacing((50, 4.6, 4.6), 3) == pytest.approx((50 / 4.6, 1.0, 1.0))
    assert relative_spacing((50, 4.6, 9.2), 3) == pytest.approx((50 / 4.6, 1.0, 2.0))


def test_relative_spacing_of_a_section_keeps_the_in_plane_values():
    assert relative_spacing((50, 4.6, 4.6), 2) is None  # isotropic in-plane
    assert relative_spacing(None, 3) is None
    assert relative_spacing((5, 5, 5), 3) is None


@pytest.mark.parametrize("spacing, ndim", [((0, 1, 1), 3), ((1, 1), 3), ((1,), 1), ((-1, 2), 2)])
def test_bad_spacings_are_refused(spacing, ndim):
    with pytest.raises(ValueError, match="spacing"):
        relative_spacing(spacing, ndim)


def test_layout_of_the_vnc_spacing_by_hand():
    """(50, 4.6, 4.6), depth 4, the smallest spacing s and the rule "pool and 3-kernel iff spacing <= 2 s":

    level 0: (50, 4.6, 4.6), z is 10.9 s -> pool (1,2,2), kernel (1,3,3); then (50, 9.2, 9.2)
    level 1: z is 5.4 s -> pool (1,2,2), kernel (1,3,3); then (50, 18.4, 18.4)
    level 2: z is 2.7 s -> pool (1,2,2), kernel (1,3,3); then (50, 36.8, 36.8)
    level 3: z is 1.36 s -> pool (2,2,2), kernel (3,3,3); then (100, 73.6, 73.6)
    bottleneck: z is 1.36 s -> kernel (3,3,3). Total pooling (2, 16, 16).
    """
    pools, kernels = anisotropic_layout((50, 4.6, 4.6), 4)
    assert pools == ((1, 2, 2), (1, 2, 2), (1, 2, 2), (2, 2, 2))
    assert kernels == ((1, 3, 3), (1, 3, 3), (1, 3, 3), (3, 3, 3), (3, 3, 3))
    config = UNetConfig(spatial_dims=3, depth=4, pool_factors=pools, kernel_sizes=kernels)
    assert sizes.total_pool_factor(config) == (2, 16, 16)
    assert not is_plain_layout(config)


def test_layout_of_a_milder_spacing_by_hand():
    """(3, 1, 1), depth 3: level 0 z is 3 s -> (1,2,2), kernel (1,3,3), then (3, 2, 2); level 1 z is 1.5 s -> (2,2,2),
    then (6, 4, 4); level 2 1.5 s -> (2,2,2), then (12, 8, 8); bottleneck (3,3,3)."""
    pools, kernels = anisotropic_layout((3, 1, 1), 3)
    assert pools == ((1, 2, 2), (2, 2, 2), (2, 2, 2))
    assert kernels == ((1, 3, 3), (3, 3, 3), (3, 3, 3), (3, 3, 3))


def test_a_shallow_network_never_pools_z():
    """Depth 2 on (50, 4.6, 4.6): z stays 10.9 s then 5.4 s then 2.7 s at the bottleneck, > 2 s throughout."""
    pools, kernels = anisotropic_layout((50, 4.6, 4.6), 2)
    assert pools == ((1, 2, 2), (1, 2, 2))
    assert kernels == ((1, 3, 3),) * 3


@pytest.mark.parametrize("spacing", [(1, 1, 1), (5, 4, 4), (8, 4, 4)])
def test_isotropic_spacing_gives_the_plain_layout(spacing):
    pools, kernels = anisotropic_layout(spacing, 3)
    assert is_plain_layout(UNetConfig(spatial_dims=3, depth=3, pool_factors=pools, kernel_sizes=kernels))
    assert not is_anisotropic(spacing)


def test_anisotropy_is_a_ratio_above_two():
    assert is_anisotropic((50, 4.6, 4.6)) and is_anisotropic((2.1, 1, 1)) and is_anisotropic((1, 1, 3))
    assert not is_anisotropic((2, 1, 1)) and not is_anisotropic(None)
    assert is_plain_layout(UNetConfig(spatial_dims=3, depth=2))


@pytest.mark.parametrize("in_plane, spacing, factor, max_depth, expected", [
    (128, (50, 4.6, 4.6), 2, None, (12, 128, 128)),  # 128 * 4.6 / 50 = 11.8 -> 12
    (128, (50, 4.6, 4.6), 1, None, (12, 128, 128)),
    (128, (50, 4.6, 4.6), 8, None, (16, 128, 128)),  # rounded up to a multiple of 8
    (64, (50, 4.6, 4.6), 2, None, (6, 64, 64)),  # 5.9 -> 6
    (16, (50, 4.6, 4.6), 4, None, (4, 16, 16)),  # 1.5 -> at least one multiple
    (128, (50, 4.6, 4.6), 2, 7, (6, 128, 128)),  # capped by 7 sections, rounded down to 6
    (128, (50, 4.6, 4.6), 1, 12, (12, 128, 128)),
    (96, (1, 1, 1), 1, None, (96, 96, 96)),
])
def test_tile_of_about_the_same_physical_size(in_plane, spacing, factor, max_depth, expected):
    assert anisotropic_tile(in_plane, spacing, factor, max_depth) == expected


def test_a_tile_that_does_not_fit_the_volumes_is_refused():
    with pytest.raises(ValueError, match="3 sections, fewer than the network's z pooling factor 4"):
        anisotropic_tile(128, (50, 4.6, 4.6), 4, 3)
