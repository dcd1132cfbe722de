"""Test-time augmentation: transforms invert exactly, probabilities stay normalised, symmetry is respected."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biounet import predict
from biounet.inference.tta import tta_transforms
from biounet.model import UNetConfig


def symmetrise_(model: torch.nn.Module) -> None:
    """Average every kernel over the 8 symmetries of the square: the network becomes dihedral-equivariant."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(
                module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Conv3d, torch.nn.ConvTranspose3d)
            ):
                w = module.weight
                turns = [torch.rot90(w, k, (-2, -1)) for k in range(4)]
                w.copy_(sum(turns + [torch.flip(t, (-1,)) for t in turns]) / 8)


@pytest.mark.parametrize("tta", [1, 4, 8])
def test_transforms_are_inverted_exactly(tta: int) -> None:
    x = torch.randn(2, 3, 6, 5)
    transforms = tta_transforms(tta, UNetConfig())
    assert len(transforms) == tta
    outputs = [t.apply(x) for t in transforms]
    assert len({tuple(o.flatten().tolist()) for o in outputs}) == tta  # all different
    for transform, out in zip(transforms, outputs):
        assert torch.equal(transform.invert(out), x)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_tta_on_a_symmetric_model_equals_no_tta(padding, rng, small_unet) -> None:
    model = small_unet(padding=padding)
    image = rng.random((70, 53)).astype(np.float32)
    kwargs = dict(precision="fp32", progress=False, tile_size=96)
    plain = predict(model, image, tta=1, **kwargs)
    augmented = predict(model, image, tta=8, **kwargs)
    assert augmented.shape == plain.shape
    assert np.allclose(augmented.sum(axis=0), 1.0, atol=1e-5)
    assert np.abs(augmented - plain).max() > 1e-2  # a generic model is not symmetric...
    symmetrise_(model)
    plain = predict(model, image, **kwargs)
    for tta in (4, 8):  # ...a symmetrised one is: TTA changes nothing
        assert np.abs(predict(model, image, tta=tta, **kwargs) - plain).max() < 1e-5


def test_tta_in_3d_is_in_plane(rng, small_unet) -> None:
    model = small_unet(spatial_dims=3, pool_factors=[(1, 2, 2), 2], kernel_sizes=[(1, 3, 3), 3, 3])
    symmetrise_(model)
    image = rng.random((6, 30, 30)).astype(np.float32)
    plain = predict(model, image, precision="fp32", progress=False)
    augmented = predict(model, image, tta=8, precision="fp32", progress=False)
    assert np.abs(augmented - plain).max() < 1e-5


def test_rotations_refused_when_y_and_x_differ() -> None:
    config = UNetConfig(depth=1, pool_factors=[(2, 1)])
    assert len(tta_transforms(4, config)) == 4
    with pytest.raises(ValueError, match="tta=4"):
        tta_transforms(8, config)
    with pytest.raises(ValueError):
        tta_transforms(3, config)


def test_instance_tta_on_a_symmetric_model_equals_a_single_pass(rng, small_unet) -> None:
    """TTA averages the class and distance maps, then makes the instances once: for a model that the transforms
    leave unchanged, the instances of ``tta=8`` are those of one pass (and the distance map is a sigmoid)."""
    from scipy import ndimage

    model = small_unet(num_classes=4)  # background, interior, boundary + a distance channel
    with torch.no_grad():  # sharper outputs than a random network's near-uniform ones: several instances
        [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1].weight.mul_(3e3)
    image = ndimage.gaussian_filter(rng.random((70, 53)), 3).astype(np.float32)
    target = {"kind": "instances", "style": "touching", "class_names": ["background", "interior", "boundary"],
              "interior_class": 1, "foreground_classes": [1, 2], "distance_channel": 3,
              "threshold": 0.34, "min_size": 1, "seed_height": 0.1}
    kwargs = dict(precision="fp32", progress=False, tile_size=96, pipeline={"target": target})
    probabilities = predict(model, image, output="probabilities", tta=8, **kwargs)
    assert np.allclose(probabilities[:3].sum(axis=0), 1.0, atol=1e-5)  # softmax over the classes only
    assert probabilities[3].min() >= 0 and probabilities[3].max() <= 1
    assert np.abs(probabilities - predict(model, image, output="probabilities", **kwargs)).max() > 1e-2
    symmetrise_(model)
    plain = predict(model, image, output="instances", tta=1, **kwargs)
    assert plain.max() >= 3  # several instances to compare
    assert np.array_equal(predict(model, image, output="instances", tta=8, **kwargs), plain)
