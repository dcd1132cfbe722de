"""Overlap-tile prediction equals a whole-image pass: exactly for valid padding, seamless for same padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biounet import predict
from biounet.data.normalization import NormalizationConfig, normalize
from biounet.tiling import context_margin, plan_grid


def test_valid_2d_tiled_equals_whole_mirrored_image(rng, small_unet, whole_image_logits) -> None:
    model = small_unet(depth=4)
    image = rng.random((1000, 777)).astype(np.float32)
    assert len(plan_grid(model.config, image.shape, (300, 300))) > 9  # really tiled
    tiled = predict(model, image, tile_size=300, output="logits", precision="fp32", progress=False)
    assert tiled.shape == (2, 1000, 777)
    assert np.abs(tiled - whole_image_logits(model, image)).max() < 1e-4


def test_valid_3d_anisotropic_tiled_equals_whole_mirrored_stack(rng, small_unet, whole_image_logits) -> None:
    model = small_unet(spatial_dims=3, pool_factors=[(1, 2, 2), (2, 2, 2)], kernel_sizes=[(1, 3, 3), 3, 3])
    image = rng.random((45, 300, 211)).astype(np.float32)
    tile = (40, 180, 160)
    assert all(n > 1 for n in plan_grid(model.config, image.shape, tile).counts)  # tiled along every axis
    tiled = predict(model, image, tile_size=tile, output="logits", precision="fp32", progress=False)
    assert tiled.shape == (2, 45, 300, 211)
    assert np.abs(tiled - whole_image_logits(model, image)).max() < 1e-4


def test_same_padding_has_no_seams(rng, small_unet, whole_image_logits) -> None:
    """Along tile borders the difference to a whole-image pass is no larger than inside tiles.

    Away from the image border (where the whole-image pass sees zero padding and the tiles see the
    mirror) the halo-cropped tiles even equal the whole-image pass.  A naive tiling without overlap
    shows the seams this test looks for.
    """
    model = small_unet(depth=3, padding="same")
    image = rng.random((304, 277)).astype(np.float32)
    tile = 256  # exact context 56 px per side: output strides of 144 px
    grid = plan_grid(model.config, image.shape, (tile, tile), "exact")
    tiled = predict(model, image, tile_size=tile, output="logits", precision="fp32", progress=False, context="exact")
    whole = whole_image_logits(model, image)

    edge = context_margin(model.config, "exact")[0] + 8
    seams = sorted({t.output_start[0] for t in grid} - {0})
    assert len(seams) >= 2, "the image must be split into several tiles"
    seam_rows = [r for s in seams for r in (s - 1, s) if edge <= r < image.shape[0] - edge]
    assert seam_rows

    def border_and_interior_error(prediction: np.ndarray, rows: list[int]) -> tuple[float, float]:
        error = np.abs(prediction - whole).max(axis=0)[:, edge:-edge]
        interior = np.ones(image.shape[0], bool)
        interior[:edge] = interior[-edge:] = False
        interior[[r + d for r in rows for d in range(-8, 9)]] = False
        return float(error[rows].mean()), float(error[interior].mean())

    at_seams, inside = border_and_interior_error(tiled, seam_rows)
    assert at_seams <= inside + 1e-6
    assert np.abs(tiled - whole)[:, edge:-edge, edge:-edge].max() < 1e-4

    # the metric sees seams when there are some: strips of 96 rows predicted alone, no overlap
    normalised = normalize(image[None], NormalizationConfig())
    with torch.no_grad():
        strips = [model(torch.from_numpy(normalised[None, :, a : a + 96]))[0] for a in range(0, 304, 96)]
    naive = torch.cat(strips, dim=1).numpy()
    naive_seams, naive_inside = border_and_interior_error(naive, [95, 96, 191, 192])
    assert naive_seams > 3 * naive_inside


@pytest.mark.parametrize("norm", [None, "batch"])
def test_same_padding_image_that_fits_is_one_plain_pass(rng, small_unet, whole_image_logits, norm) -> None:
    """The floor: an image within the memory budget costs one forward of the image itself, and equals it.

    With batch norm the prediction runs the network with the norm folded into the convolutions.
    """
    model = small_unet(depth=3, padding="same", norm=norm)
    if norm:
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):  # running statistics away from (0, 1)
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
    image = rng.random((300, 277)).astype(np.float32)
    grid = plan_grid(model.config, image.shape, (400, 400))
    assert len(grid) == 1 and grid.input_shape == (304, 280)  # the pooling grid only, no context margin
    whole = predict(model, image, tile_size=400, output="logits", precision="fp32", progress=False)
    np.testing.assert_allclose(whole, whole_image_logits(model, image), rtol=1e-5, atol=1e-5)  # up to the border


def test_same_padding_default_context_differs_only_near_seams(rng, small_unet, whole_image_logits) -> None:
    """The default margin (the halo on the pooling grid) against a whole-image pass, away from the image border.

    Kept pixels deeper than the exact receptive field inside their tile are exact; only a band along the seams,
    as wide as the margin is short of the exact one, sees a difference.  Its size depends on the weights: on
    trained models it is bfloat16 rounding (measured: docs/speed.md); a random network, whose far context is
    not learnt to fade, still stays within a tenth of its logits' spread.
    """
    model = small_unet(depth=3, padding="same")
    image = rng.random((400, 380)).astype(np.float32)
    short = context_margin(model.config, "exact")[0] - context_margin(model.config)[0]
    assert short > 0
    grid = plan_grid(model.config, image.shape, (200, 200))
    tiled = predict(model, image, tile_size=200, output="logits", precision="fp32", progress=False)
    whole = whole_image_logits(model, image)
    edge = context_margin(model.config, "exact")[0] + 8
    error = np.abs(tiled - whole).max(axis=0)
    near_seam = np.zeros(image.shape, bool)
    for axis in (0, 1):
        for seam in {t.output_start[axis] for t in grid} - {0}:
            band = [slice(None), slice(None)]
            band[axis] = slice(seam - short, seam + short)
            near_seam[tuple(band)] = True
    inside = np.zeros(image.shape, bool)
    inside[edge:-edge, edge:-edge] = True
    assert near_seam[inside].any() and (~near_seam & inside).any()
    assert error[~near_seam & inside].max() < 1e-4
    assert error[near_seam & inside].max() < 0.1 * whole.std()
