"""NaN/inf pixels reach the predictor: refused with the image and the count, or filled; never silent NaN."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from biounet import predict
from biounet.data.finite import NonFiniteImageError
from biounet.model import UNet


@pytest.fixture
def model() -> UNet:
    return UNet(base_channels=2, depth=2, padding="same", num_classes=2).eval()


def test_in_memory_image_with_nan_is_refused_then_filled(model):
    image = np.random.default_rng(0).random((50, 60)).astype(np.float32)
    image[10:12, 10:13] = np.nan
    with pytest.raises(NonFiniteImageError, match=r"the image: 6 pixel values .* NaN or infinite"):
        predict(model, image, precision="fp32", progress=False)
    probs = predict(model, image, precision="fp32", progress=False, nan_policy="fill")
    assert np.isfinite(probs).all()


def test_lazy_tiff_is_checked_tile_by_tile(model, tmp_path):
    image = np.random.default_rng(1).random((300, 280)).astype(np.float32)
    image[250, 7] = np.inf
    tifffile.imwrite(tmp_path / "big.tif", image)  # uncompressed: read through a memory map, tile by tile
    with pytest.raises(NonFiniteImageError, match=r"big.tif: 1 pixel value .* NaN or infinite"):
        predict(model, tmp_path / "big.tif", precision="fp32", progress=False, tile_size=96)
    probs = predict(model, tmp_path / "big.tif", precision="fp32", progress=False, tile_size=96, nan_policy="fill")
    assert np.isfinite(probs).all()
    image[250, 7] = np.median(image[np.isfinite(image)])
    assert np.allclose(probs, predict(model, image, precision="fp32", progress=False, tile_size=96), atol=1e-5)
