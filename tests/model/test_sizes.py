"""Size arithmetic: the helpers agree with what the network really does."""

from __future__ import annotations

import itertools

import pytest
import torch

from biounet import UNet, UNetConfig
from biounet.errors import InvalidInputSizeError
from biounet.model import sizes


def test_paper_valid_sizes_are_12_mod_16_from_188():
    config = UNetConfig()
    valid = [n for n in range(1, 1200) if sizes.axis_output_size(config, n, 0) is not None]
    assert valid == [n for n in range(188, 1200) if n % 16 == 12]
    assert all(sizes.axis_output_size(config, n, 0) == n - 184 for n in valid)
    assert sizes.nearest_valid_sizes(config, 500) == (492, 508)
    assert sizes.nearest_valid_sizes(config, 572) == (572, 572)
    assert sizes.nearest_valid_sizes(config, 10) == (None, 188)
    assert sizes.total_pool_factor(config) == (16, 16)
    assert sizes.input_shape_for_output(config, (388, 400)) == (572, 588)


def _real_output(model: UNet, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """What the network does, bypassing biounet's own size check."""
    x = torch.zeros(1, 1, *shape)
    try:
        with torch.inference_mode():
            return tuple(model.forward_unpadded(x).shape[2:])
    except RuntimeError:
        return None


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_helpers_agree_with_the_network_2d(depth):
    config = UNetConfig(depth=depth, base_channels=1, dropout=0.0)
    model = UNet(config).eval()
    first = sizes.min_input_shape(config)[0]
    step = sizes.total_pool_factor(config)[0]
    candidates = range(max(1, first - 2 * step), first + 3 * step)
    for n in candidates:
        predicted = sizes.axis_output_size(config, n, 0)
        if predicted is None:
            assert (n - first) % step or n < first
            with pytest.raises(InvalidInputSizeError, match="nearest valid"):
                model(torch.zeros(1, 1, n, first))
        else:
            assert _real_output(model, (n, first)) == (predicted, sizes.axis_output_size(config, first, 0))
            assert predicted == n - 2 * sizes.halo(config)[0]
            assert (n - first) % step == 0


@pytest.mark.parametrize(
    "pool_factors, kernel_sizes",
    [(None, None), ([(1, 2, 2), (1, 2, 2), 2], [(1, 3, 3), (1, 3, 3), 3, 3]), ([(1, 2, 2), 2, 2], None)],
)
def test_helpers_agree_with_the_network_3d_anisotropic(pool_factors, kernel_sizes):
    config = UNetConfig(spatial_dims=3, depth=3, base_channels=1, dropout=0.0,
                        pool_factors=pool_factors, kernel_sizes=kernel_sizes)
    model = UNet(config).eval()
    first = sizes.min_input_shape(config)
    step = sizes.total_pool_factor(config)
    for axis in range(3):
        for n in range(first[axis], first[axis] + 2 * step[axis] + 1):
            shape = list(first)
            shape[axis] = n
            predicted = sizes.axis_output_size(config, n, axis)
            real = _real_output(model, tuple(shape))
            if predicted is not None:
                assert real is not None and real[axis] == predicted
                assert sizes.is_valid_input_shape(config, shape)
            else:
                assert not sizes.is_valid_input_shape(config, shape)
    halo = sizes.halo(config)
    out = sizes.output_shape(config, first)
    assert all(i - o == 2 * h for i, o, h in zip(first, out, halo))


@pytest.mark.parametrize("depth, shape", itertools.product([1, 3, 4], [(1, 1), (13, 29), (37, 101)]))
def test_same_mode_sizes_are_identity(depth, shape):
    config = UNetConfig(depth=depth, padding="same")
    assert sizes.output_shape(config, shape) == shape
    assert sizes.min_input_shape(config) == (1, 1)
    assert sizes.halo(config) == sizes.halo(config.replace(padding="valid"))


def test_valid_input_shape_rounds_up_per_axis():
    config = UNetConfig()
    assert sizes.valid_input_shape(config, (1, 600)) == (188, 604)
    assert sizes.is_valid_input_shape(config, (188, 604))


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_helpers_agree_with_the_network_3d_every_depth(depth):
    """3D at every depth: y and x pool at every level; z pools at the deepest level only, with 1x3x3
    kernels elsewhere (so that the real network stays small enough to run at depth 5)."""
    pool = [(1, 2, 2)] * (depth - 1) + [(2, 2, 2)]
    kernels = [(1, 3, 3)] * (depth - 1) + [(3, 3, 3), (3, 3, 3)]
    config = UNetConfig(spatial_dims=3, depth=depth, base_channels=1, dropout=0.0,
                        pool_factors=pool, kernel_sizes=kernels)
    model = UNet(config).eval()
    first = sizes.min_input_shape(config)
    step = sizes.total_pool_factor(config)
    for axis in (0, 2):
        for n in range(first[axis], first[axis] + step[axis] + 1):
            shape = list(first)
            shape[axis] = n
            predicted = sizes.axis_output_size(config, n, axis)
            if predicted is None:
                with pytest.raises(InvalidInputSizeError):
                    model(torch.zeros(1, 1, *shape))
            else:
                real = _real_output(model, tuple(shape))
                assert real is not None and real[axis] == predicted == n - 2 * sizes.halo(config)[axis]
