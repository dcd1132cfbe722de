"""Tile and batch sizes follow the memory budget."""

from __future__ import annotations

import math

import torch

from biounet.model import UNetConfig
from biounet.tiling import activation_bytes_per_pixel, batch_size_for, context_margin, max_input_shape

CPU = torch.device("cpu")
PAPER = UNetConfig()


def test_activation_estimate_matches_measurements_of_the_paper_network() -> None:
    # measured peak RSS growth per input pixel on CPU: ~1,350 B (fp32) and ~700 B (bf16)
    assert 1300 <= activation_bytes_per_pixel(PAPER, "fp32") <= 1700
    assert 650 <= activation_bytes_per_pixel(PAPER, "bf16") <= 850
    assert activation_bytes_per_pixel(PAPER.replace(base_channels=32), "fp32") < activation_bytes_per_pixel(
        PAPER, "fp32"
    )


def test_paper_network_default_tile_on_cpu_is_about_700_to_1000_pixels() -> None:
    budget = 768 * 2**20
    fp32 = max_input_shape(PAPER, (8192, 8192), context_margin(PAPER), "fp32", CPU, budget)
    bf16 = max_input_shape(PAPER, (8192, 8192), context_margin(PAPER), "bf16", CPU, budget)
    assert 572 <= fp32[0] <= 800 and fp32[0] == fp32[1]
    assert fp32[0] < bf16[0] <= 1024
    assert math.prod(fp32) * activation_bytes_per_pixel(PAPER, "fp32") <= budget


def test_small_axes_are_taken_whole_and_the_rest_shares_the_budget() -> None:
    config = UNetConfig(spatial_dims=3, base_channels=4, depth=2, pool_factors=[(1, 2, 2), (2, 2, 2)])
    margins = context_margin(config)
    budget = int(5e5 * activation_bytes_per_pixel(config, "fp32"))  # 0.5 M voxels
    shape = max_input_shape(config, (45, 3000, 2110), margins, "fp32", CPU, budget)
    assert shape[0] == 46 + 2 * margins[0]  # the whole depth (rounded up to the pooling factor 2)
    assert shape[1] == shape[2] and 0.9 * 5e5 <= math.prod(shape) <= 5e5


def test_batch_size_grows_for_small_tiles_and_is_at_least_one() -> None:
    assert batch_size_for(PAPER, (1020, 1020), "fp32", CPU, budget=1) == 1
    small = UNetConfig(base_channels=4, depth=2)
    assert batch_size_for(small, (64, 64), "fp32", CPU, budget=2**30) > batch_size_for(
        small, (256, 256), "fp32", CPU, budget=2**30
    )


def test_a_same_padded_network_takes_a_whole_axis_without_its_context() -> None:
    """3 sections of an anisotropic stack: the whole depth (4 on the pooling grid), no z context; the
    budget goes in-plane (with a valid network the same axis would still carry both margins)."""
    config = UNetConfig(spatial_dims=3, base_channels=4, depth=2, padding="same", pool_factors=[(1, 2, 2), (2, 2, 2)],
                        kernel_sizes=[(1, 3, 3), (1, 3, 3), 3])
    margins = context_margin(config)
    assert margins[0] > 0
    budget = int(4e5 * activation_bytes_per_pixel(config, "fp32"))
    shape = max_input_shape(config, (3, 1024, 1024), margins, "fp32", CPU, budget)
    assert shape[0] == 4 and shape[1] == shape[2] == int((4e5 / 4) ** 0.5)


def test_tiles_are_shaped_like_the_context_so_anisotropic_models_keep_most_of_each_tile() -> None:
    """2 sections of z context and 40 px in-plane: tiles thin in z and wide in-plane (the same fraction of
    context on every axis), where an equal split would keep a sliver of a cube."""
    config = UNetConfig(spatial_dims=3, base_channels=4, depth=3, padding="same", pool_factors=[(1, 2, 2)] * 3,
                        kernel_sizes=[(1, 3, 3)] * 3 + [3])
    margins = context_margin(config)
    assert margins[0] < margins[1] == margins[2]
    budget = int(2e6 * activation_bytes_per_pixel(config, "fp32"))
    shape = max_input_shape(config, (1024, 4096, 4096), margins, "fp32", CPU, budget)
    assert shape[1] == shape[2] and 0.9 * 2e6 <= math.prod(shape) <= 2e6
    assert abs(shape[0] / shape[1] - margins[0] / margins[1]) < 0.01  # in proportion to the context
    kept = math.prod(n - 2 * m for n, m in zip(shape, margins))
    side = round(2e6 ** (1 / 3))
    assert kept > 3 * (side - 2 * margins[0]) * (side - 2 * margins[1]) ** 2  # the cube would keep far less


def test_an_axis_is_taken_whole_when_that_computes_clearly_fewer_pixels_and_largest_caps_the_input() -> None:
    config = UNetConfig(base_channels=4, depth=4, padding="same")  # 80 px of context, pooling 16
    margins = context_margin(config)
    budget = int(2**20 * activation_bytes_per_pixel(config, "fp32"))  # 1024 x 1024 pixels
    # 1500 px: strips 1504 x 697 (3 of them, 3.0 Mpx) rather than 2 x 2 squares of 1024 (3.3 Mpx)
    assert max_input_shape(config, (1500, 1500), margins, "fp32", CPU, budget) == (1504, 2**20 // 1504)
    # 2048 px: strips would compute 3 % fewer pixels, under the 10 % they must save: squares
    assert max_input_shape(config, (2048, 2048), margins, "fp32", CPU, budget) == (1024, 1024)
    capped = max_input_shape(config, (4096, 4096), margins, "fp32", CPU, budget, largest=(300, 5000))
    assert capped[0] == 300 and capped[1] == 2**20 // 300


def test_an_image_whose_whole_pass_fits_runs_untiled_and_larger_ones_keep_1_mpx_tiles(monkeypatch) -> None:
    """The default recipe's network in bfloat16 (~400 B a pixel): with 16 GiB free a 2048 px image is one
    pass (1.7 GB of activations, under the 2 GiB whole-image budget), an 8192 px one is tiled at <= 1 Mpx; with
    4 GiB free (1 GiB whole-image budget) the 2048 px image is tiled too."""
    import biounet.runtime
    from biounet.training.config import TrainConfig

    config = TrainConfig().model
    margins = context_margin(config)
    monkeypatch.setattr(biounet.runtime, "available_memory_bytes", lambda device=None: 16 * 2**30)
    assert max_input_shape(config, (2048, 2048), margins, "bf16", CPU) == (2048, 2048)
    assert max_input_shape(config, (1500, 1500), margins, "bf16", CPU) == (1504, 1504)  # on the pooling grid
    tiled = max_input_shape(config, (8192, 8192), margins, "bf16", CPU)
    assert tiled[0] == tiled[1] and math.prod(tiled) <= 2**20
    block = max_input_shape(config, (2048, 2048), margins, "bf16", CPU, largest=(2208, 2208))  # a blockwise worker
    assert math.prod(block) <= 2**20
    monkeypatch.setattr(biounet.runtime, "available_memory_bytes", lambda device=None: 4 * 2**30)
    assert math.prod(max_input_shape(config, (2048, 2048), margins, "bf16", CPU)) <= 2**20
