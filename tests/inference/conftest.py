"""Small networks and helpers shared by the inference tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from biounet.data.normalization import NormalizationConfig, normalize
from biounet.model import UNet, sizes


def make_small_unet(seed: int = 0, **kwargs) -> UNet:
    """A small random U-Net in eval mode (no dropout), reproducible from ``seed``."""
    torch.manual_seed(seed)
    kwargs.setdefault("base_channels", 4)
    kwargs.setdefault("depth", 2)
    return UNet(dropout=0.0, **kwargs).eval()


def mirrored_whole_image_logits(model: UNet, image: np.ndarray) -> np.ndarray:
    """One pass of ``model`` over the whole image ``(*S)`` mirrored (np.pad "reflect") to a valid size.

    The reference for the tiled prediction: normalised like predict does (percentiles of the image),
    padded by the halo before and up to the next valid size after, cropped back to ``(K, *S)``.
    """
    config = model.config
    normalised = normalize(image[None], NormalizationConfig())[0]
    if config.padding == "valid":
        halo = sizes.halo(config)
        whole = sizes.valid_input_shape(config, [n + 2 * h for n, h in zip(image.shape, halo)])
        normalised = np.pad(normalised, [(h, w - n - h) for n, h, w in zip(image.shape, halo, whole)], mode="reflect")
    with torch.no_grad():
        logits = model(torch.from_numpy(np.ascontiguousarray(normalised))[None, None])[0].numpy()
    return logits[(slice(None),) + tuple(slice(0, n) for n in image.shape)]


@pytest.fixture
def small_unet() -> Callable[..., UNet]:
    """Factory of small random U-Nets: ``small_unet(seed=0, **config)``."""
    return make_small_unet


@pytest.fixture
def whole_image_logits() -> Callable[[UNet, np.ndarray], np.ndarray]:
    """The whole-image reference pass, see :func:`mirrored_whole_image_logits`."""
    return mirrored_whole_image_logits
