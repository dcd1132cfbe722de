"""Any size from 1 pixel: tiny, thin and prime-sized images in 2D and 3D, every output kind."""

from __future__ import annotations

import numpy as np
import pytest

from biounet import predict
from biounet.errors import DataError

INSTANCES = {"target": {"kind": "instances", "interior_class": 1, "foreground_classes": [1, 2]}}


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (13, 1), (1, 31), (97, 89)])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_2d_any_size(shape, padding, rng, small_unet) -> None:
    model = small_unet(depth=3, padding=padding, num_classes=3)
    image = rng.random(shape).astype(np.float32)
    probs = predict(model, image, precision="fp32", progress=False)
    assert probs.shape == (3, *shape) and probs.dtype == np.float32
    assert np.allclose(probs.sum(axis=0), 1.0, atol=1e-5)
    labels = predict(model, image, output="labels", precision="fp32", progress=False)
    assert labels.shape == shape and np.array_equal(labels, probs.argmax(axis=0))
    instances = predict(model, image, output="instances", pipeline=INSTANCES, progress=False, min_size=1)
    assert instances.shape == shape and instances.dtype == np.int32


@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 5, 7), (3, 13, 11)])
def test_3d_any_size(shape, rng, small_unet) -> None:
    model = small_unet(spatial_dims=3, pool_factors=[(1, 2, 2), 2], kernel_sizes=[(1, 3, 3), 3, 3])
    image = rng.random(shape).astype(np.float32)
    probs = predict(model, image, precision="fp32", progress=False)
    assert probs.shape == (2, *shape)
    assert np.allclose(probs.sum(axis=0), 1.0, atol=1e-5)
    labels = predict(model, image, output="labels", precision="fp32", progress=False)
    assert np.array_equal(labels, probs.argmax(axis=0))


def test_single_pixel_is_the_mirrored_constant_image(small_unet) -> None:
    """A 1-pixel image mirrors to a constant tile: it is predicted like a constant image.

    (Compared at a pixel on the same pooling phase: the up-convolutions make the output of a constant
    input periodic with the pooling factor, 8 here.)
    """
    model = small_unet(depth=3)
    one = predict(model, np.array([[3.0]]), output="logits", precision="fp32", progress=False, pipeline=_NONE)
    many = predict(model, np.full((40, 40), 3.0), output="logits", precision="fp32", progress=False, pipeline=_NONE)
    assert np.allclose(one[:, 0, 0], many[:, 16, 16], atol=1e-5)
    assert not np.allclose(one[:, 0, 0], many[:, 20, 20], atol=1e-3)


_NONE = {"normalization": {"method": "none"}}


def test_channels_and_layouts(rng, small_unet) -> None:
    model = small_unet(in_channels=2)
    image = rng.random((2, 30, 20)).astype(np.float32)
    first = predict(model, image, precision="fp32", progress=False)
    last = predict(model, np.moveaxis(image, 0, -1), precision="fp32", progress=False, channel_axis="last")
    assert np.array_equal(first, last)
    with pytest.raises(DataError, match="channel"):
        predict(model, image[:1], progress=False)
    with pytest.raises(DataError, match="dimensionality"):
        predict(model, image[None], progress=False)


def test_instances_need_an_instance_model(rng, small_unet) -> None:
    with pytest.raises(DataError, match="semantic"):
        predict(small_unet(), rng.random((20, 20)), output="instances", progress=False)
