"""NaN and infinite pixels: counted, refused with the file and the count, or filled by the median."""

from __future__ import annotations

import numpy as np
import pytest

from biounet.data.finite import NonFiniteImageError, TileGuard, checked_image, filled, non_finite_count
from biounet.data.normalization import NormalizationConfig, image_statistics


def image_with_holes() -> np.ndarray:
    image = np.arange(2 * 40 * 30, dtype=np.float32).reshape(2, 40, 30)
    image[0, 3, 4] = np.nan
    image[1, 20:22, 5] = np.inf
    image[0, 39, 29] = -np.inf
    return image


def test_count_streams_over_rows_and_skips_integers(monkeypatch):
    import biounet.data.finite as finite

    monkeypatch.setattr(finite, "COUNT_BLOCK_ROWS", 7)  # several blocks
    assert non_finite_count(image_with_holes()) == 4
    assert non_finite_count(np.zeros((1, 5, 5), np.uint16)) == 0


def test_refuse_names_the_image_and_the_count():
    with pytest.raises(NonFiniteImageError, match=r"cells.tif: 4 pixel values \(0.17 %\) are NaN or infinite"):
        checked_image(image_with_holes(), "cells.tif")


def test_fill_uses_each_channels_median_of_finite_values():
    image = image_with_holes()
    out = checked_image(image, "cells.tif", "fill")
    assert np.isfinite(out).all() and not np.isfinite(image).all()  # the input is not changed
    finite0 = image[0][np.isfinite(image[0])]
    assert out[0, 3, 4] == np.float32(np.median(finite0))
    assert out[1, 20, 5] == np.float32(np.median(image[1][np.isfinite(image[1])]))
    good = np.isfinite(image)
    assert np.array_equal(out[good], image[good])
    plain = np.ones((1, 4, 4), np.float32)
    assert filled(plain, np.zeros(1)) is plain


def test_tile_guard_refuses_or_fills_tiles():
    image = image_with_holes()
    tile = image[:, :10, :10]
    with pytest.raises(NonFiniteImageError, match="big.zarr: 4 pixel values"):  # the whole image is counted
        TileGuard(image, "big.zarr")(tile)
    guard = TileGuard(image, "big.zarr", "fill")
    assert np.isfinite(guard(tile)).all() and guard.filled_values == 1
    assert TileGuard(np.zeros((1, 4, 4), np.uint8), "x")(np.zeros((1, 2, 2), np.uint8)).dtype == np.uint8
    with pytest.raises(ValueError, match="nan_policy"):
        TileGuard(image, "x", "ignore")


def test_statistics_leave_non_finite_values_out():
    image = image_with_holes()
    clean = np.where(np.isfinite(image), image, np.nan)
    for method in ("percentile", "minmax", "zscore"):
        stats = image_statistics(image, NormalizationConfig(method=method))
        assert np.isfinite(stats.offset).all() and np.isfinite(stats.scale).all()
    stats = image_statistics(image, NormalizationConfig(method="minmax"))
    assert stats.offset[0] == np.nanmin(clean[0]) and stats.offset[1] + stats.scale[1] == np.nanmax(clean[1])


def test_training_readers_refuse_or_fill_nan_images(tmp_path):
    from biounet.data.readers import read_folder_pairs
    from biounet.data.targets import TargetConfig
    from biounet.io.images import write_image

    image = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    image[4, 4] = np.nan
    write_image(tmp_path / "images" / "a.tif", image)
    write_image(tmp_path / "masks" / "a.png", ((image > 0.5) * 255).astype(np.uint8))
    with pytest.raises(NonFiniteImageError, match=r"a.tif: 1 pixel value .* NaN or infinite"):
        read_folder_pairs(tmp_path / "images", tmp_path / "masks", TargetConfig())
    data = read_folder_pairs(tmp_path / "images", tmp_path / "masks", TargetConfig(), nan_policy="fill")
    assert np.isfinite(data.samples[0].image).all()
