"""Batch norm folded into the convolutions computes the same function, without batch norm layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from biounet.model import UNet
from biounet.model.folding import fold_batch_norm, has_batch_norm


def _trained_like(model: UNet) -> UNet:
    """Batch norm with running statistics and affine parameters away from their initial values."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            module.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(n, generator=generator) - 0.5)
    return model.eval()


@pytest.mark.parametrize("spatial_dims, shape", [(2, (2, 1, 64, 48)), (3, (1, 1, 16, 32, 32))])
def test_folded_network_equals_the_original(spatial_dims: int, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = _trained_like(UNet(spatial_dims=spatial_dims, padding="same", norm="batch", base_channels=8, depth=2))
    folded = fold_batch_norm(model)
    assert folded is not model and has_batch_norm(model) and not has_batch_norm(folded)
    x = torch.randn(shape)
    with torch.no_grad():
        expected, actual = model(x), folded(x)
    assert torch.allclose(actual, expected, atol=1e-4, rtol=1e-4)
    assert has_batch_norm(model)  # the original is untouched


def test_without_batch_norm_the_model_itself_and_training_mode_refused() -> None:
    plain = UNet(base_channels=4, depth=1, padding="same").eval()
    assert fold_batch_norm(plain) is plain
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norm(UNet(base_channels=4, depth=1, padding="same", norm="batch").train())
