"""Input layouts: channels first/last/absent, stacks for 2D models, lazy channel-first views."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from biounet.errors import DataError
from biounet.inference.sources import ChannelFirstView, image_layout, open_for_model
from biounet.io.images import write_image
from biounet.model import UNetConfig

GREY_2D = UNetConfig(base_channels=4, depth=2)
RGB_2D = UNetConfig(base_channels=4, depth=2, in_channels=3)
GREY_3D = UNetConfig(spatial_dims=3, base_channels=4, depth=2)


@pytest.mark.parametrize(
    ("shape", "config", "stack", "expected"),
    [
        ((30, 40), GREY_2D, False, (None, 0)),
        ((1, 30, 40), GREY_2D, False, (0, 0)),
        ((30, 40, 1), GREY_2D, False, (2, 0)),
        ((3, 30, 40), RGB_2D, False, (0, 0)),
        ((30, 40, 3), RGB_2D, False, (2, 0)),
        ((7, 30, 40), GREY_2D, True, (None, 1)),  # multi-page TIFF for a 2D model: slice by slice
        ((7, 3, 30, 40), RGB_2D, True, (1, 1)),
        ((7, 30, 40, 3), RGB_2D, True, (3, 1)),
        ((7, 30, 40), GREY_3D, False, (None, 0)),
        ((1, 7, 30, 40), GREY_3D, False, (0, 0)),
    ],
)
def test_layouts(shape, config, stack, expected) -> None:
    layout = image_layout(shape, config, allow_stack=stack)
    assert (layout.channel_axis, layout.stack_axes) == expected


@pytest.mark.parametrize(
    ("shape", "config", "stack"),
    [
        ((7, 30, 40), GREY_2D, False),  # a stack, not allowed here
        ((5, 30, 40), RGB_2D, True),  # 3D stack for an RGB model: 5 is no channel count
        ((5, 2, 30, 40), RGB_2D, True),
        ((30, 40), GREY_3D, False),
        ((2, 3, 4, 5, 6), GREY_2D, True),
    ],
)
def test_layouts_that_do_not_fit_are_errors(shape, config, stack) -> None:
    with pytest.raises(DataError, match="img.tif"):
        image_layout(shape, config, allow_stack=stack, name="img.tif")


def test_channel_first_view_slices_like_numpy(rng) -> None:
    data = rng.random((5, 6, 3))
    view = ChannelFirstView(data, 2)
    expected = np.moveaxis(data, 2, 0)
    assert view.shape == expected.shape
    for key in [(slice(None), slice(1, 4), slice(None, None, 2)), (1, 2), ..., (slice(None), 3, slice(1, 5))]:
        assert np.array_equal(view[key], expected[key])
    plain = ChannelFirstView(data[..., 0], None)
    assert plain.shape == (1, 5, 6)
    assert np.array_equal(plain[:, 1:3], data[None, 1:3, :, 0])
    lazy = ChannelFirstView(zarr.array(data), 2)
    assert np.array_equal(lazy[:, ::2, 1:], expected[:, ::2, 1:])


def test_grey_rgba_png_feeds_a_single_channel_model(tmp_path, rng) -> None:
    grey = (rng.random((20, 30)) * 255).astype(np.uint8)
    write_image(tmp_path / "grey.png", np.dstack([grey, grey, grey, np.full_like(grey, 255)]))
    source, info = open_for_model(tmp_path / "grey.png", GREY_2D)
    assert source.shape == (1, 20, 30) and np.array_equal(source[0], grey)
    write_image(tmp_path / "colour.png", (rng.random((20, 30, 3)) * 255).astype(np.uint8))
    with pytest.raises(DataError, match="colour.png"):
        open_for_model(tmp_path / "colour.png", GREY_2D)


def test_trained_on_channels_are_selected_from_a_multichannel_image():
    from biounet.inference.sources import source_for_array
    from biounet.model import UNetConfig

    config = UNetConfig(in_channels=1, padding="same", base_channels=2, depth=1)
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 0] = 7
    rgba[..., 1] = 99
    source, _ = source_for_array(rgba, config, channel_axis="last", channels=[0])
    assert source.shape == (1, 20, 30)
    assert np.all(np.asarray(source[(slice(None), slice(None), slice(None))]) == 7)


def test_a_model_trained_on_channel_0_of_rgba_takes_a_grey_array_and_the_rgba_one(rng) -> None:
    """The DSB model's pipeline says "channel 0 of a channels-last image"; a grey (Y, X) array has no channel axis."""
    from biounet import predict
    from biounet.io.checkpoint import ModelBundle
    from biounet.model import UNet

    bundle = ModelBundle(UNet(padding="same", base_channels=4, depth=2))
    bundle.pipeline = bundle.pipeline.updated({"channel_axis": "last", "channels": [0]})
    grey = rng.random((64, 80)).astype(np.float32)
    rgba = np.repeat(grey[..., None], 4, axis=-1)
    from_grey = predict(bundle, grey, progress=False, precision="fp32")
    assert from_grey.shape == (2, 64, 80)
    np.testing.assert_allclose(predict(bundle, rgba, progress=False, precision="fp32"), from_grey, atol=1e-6)
