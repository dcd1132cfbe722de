"""The paper's network, exactly, and the options around it (2D/3D, padding, norm, up-sampling)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from biounet import UNet, UNetConfig
from biounet.errors import InvalidInputSizeError
from biounet.model import sizes


def conv_layers(model: nn.Module) -> list[nn.Module]:
    kinds = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    return [m for m in model.modules() if isinstance(m, kinds)]


def test_paper_configuration_parameters_layers_and_tile_size():
    model = UNet()
    assert sum(p.numel() for p in model.parameters()) == 31_030_658
    assert len(conv_layers(model)) == 23
    assert model.config.channels == (64, 128, 256, 512, 1024)
    assert sizes.output_shape(model.config, (572, 572)) == (388, 388)
    assert model.halo == (92, 92)


def test_paper_forward_maps_572_to_388():
    model = UNet().eval()
    with torch.inference_mode():
        logits = model(torch.randn(1, 1, 572, 572))
    assert logits.shape == (1, 2, 388, 388)
    assert torch.isfinite(logits).all()


def test_he_initialisation_std_within_5_percent():
    torch.manual_seed(0)
    model = UNet()
    for layer in conv_layers(model):
        if isinstance(layer, (nn.ConvTranspose2d, nn.ConvTranspose3d)):
            fan_in = layer.in_channels  # 2x2 stride-2 up-conv: one tap per input channel
        else:
            fan_in = layer.in_channels * math.prod(layer.kernel_size)
        expected = math.sqrt(2.0 / fan_in)
        if layer.weight.numel() < 1000:  # the final 1x1 conv has 128 weights: too few for a 5 % estimate
            continue
        assert layer.weight.std().item() == pytest.approx(expected, rel=0.05)
        assert torch.count_nonzero(layer.bias) == 0


def test_model_returns_logits_not_probabilities():
    model = UNet(padding="same", base_channels=4, depth=2).eval()
    with torch.inference_mode():
        out = model(torch.randn(1, 1, 32, 32) * 10)
    assert not torch.allclose(out.sum(1), torch.ones_like(out.sum(1)))
    assert (out < 0).any()


@pytest.mark.parametrize("norm", [None, "batch", "instance", "group"])
@pytest.mark.parametrize("upsampling", ["transposed", "interpolate"])
def test_norm_and_upsampling_options_2d(norm, upsampling):
    model = UNet(base_channels=8, depth=2, norm=norm, upsampling=upsampling, padding="same", num_classes=3)
    out = model(torch.randn(2, 1, 24, 40))
    assert out.shape == (2, 3, 24, 40)
    out.sum().backward()
    has_norm = any(isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm)) for m in model.modules())
    assert has_norm == (norm is not None)


def test_dropout_sits_at_the_end_of_the_contracting_path():
    model = UNet(base_channels=4, depth=2, dropout=0.5, padding="same")
    assert isinstance(model.dropout, nn.Dropout) and model.dropout.p == 0.5
    model.eval()
    x = torch.randn(1, 1, 16, 16)
    assert torch.equal(model(x), model(x))  # no dropout in eval mode
    model.train()
    torch.manual_seed(1)
    a = model(x)
    torch.manual_seed(2)
    assert not torch.equal(a, model(x))


@pytest.mark.parametrize("shape", [(37, 101), (1, 1), (5, 7), (97, 89), (16, 16)])
def test_same_padding_accepts_any_2d_size(shape):
    model = UNet(base_channels=4, padding="same").eval()
    with torch.inference_mode():
        assert model(torch.randn(1, 1, *shape)).shape == (1, 2, *shape)


@pytest.mark.parametrize("shape", [(9, 61, 47), (1, 1, 1), (3, 17, 5)])
def test_same_padding_accepts_any_3d_size(shape):
    model = UNet(spatial_dims=3, base_channels=2, depth=3, padding="same").eval()
    with torch.inference_mode():
        assert model(torch.randn(1, 1, *shape)).shape == (1, 2, *shape)


def test_anisotropic_3d_unet_pools_only_in_xy_first():
    config = UNetConfig(
        spatial_dims=3, base_channels=4, depth=4,
        pool_factors=[(1, 2, 2), (1, 2, 2), 2, 2], kernel_sizes=[(1, 3, 3), (1, 3, 3), 3, 3, 3],
    )
    assert sizes.total_pool_factor(config) == (4, 16, 16)
    model = UNet(config).eval()
    shape = sizes.min_input_shape(config)
    with torch.inference_mode():
        out = model(torch.randn(1, 1, *shape))
    assert tuple(out.shape[2:]) == sizes.output_shape(config, shape)


def test_invalid_size_error_names_nearest_sizes_not_torch_error():
    model = UNet(base_channels=4)
    with pytest.raises(InvalidInputSizeError, match=r"y=500 \(nearest valid: 492 or 508\)"):
        model(torch.randn(1, 1, 500, 508))
    with pytest.raises(InvalidInputSizeError, match="smallest"):
        model(torch.randn(1, 1, 100, 100))


def test_wrong_channels_and_dimensionality_are_clear_errors():
    model = UNet(base_channels=4, padding="same")
    with pytest.raises(InvalidInputSizeError, match="input channel"):
        model(torch.randn(1, 3, 32, 32))
    with pytest.raises(InvalidInputSizeError, match="2D"):
        model(torch.randn(1, 1, 8, 32, 32))


def test_config_round_trips_through_dict():
    config = UNetConfig(spatial_dims=3, pool_factors=[(1, 2, 2), 2], depth=2, norm="group")
    assert UNetConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown"):
        UNetConfig.from_dict({**config.to_dict(), "bogus": 1})


@pytest.mark.parametrize(
    "kwargs, message",
    [({"spatial_dims": 4}, "spatial_dims"), ({"padding": "full"}, "padding"), ({"norm": "layer"}, "norm"),
     ({"kernel_sizes": [2, 3, 3, 3, 3]}, "odd"), ({"pool_factors": [2, 2]}, "entries"), ({"dropout": 1.0}, "dropout")],
)
def test_bad_configurations_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UNetConfig(**kwargs)
