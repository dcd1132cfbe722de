"""Spacings relative to the in-plane pixel (biounet.model.anisotropy)."""

import pytest

from biounet.model.anisotropy import relative_spacing


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
