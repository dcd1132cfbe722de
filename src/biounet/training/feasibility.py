"""Refuse a training configuration that cannot run on this machine, before any data are read.

Two checks, each a one-line :class:`~biounet.training.config.ConfigError` that says what would fit:

- the size rule (:mod:`biounet.model.sizes`): the network pools each axis by the product of its pooling
  factors (``2**depth``), which must not exceed the tile;
- memory: one training step (:func:`biounet.tiling.budget.training_step_bytes`: the activations of the
  batch for forward and backward, weights, gradients, optimiser state, weight average) against the memory
  available (``psutil`` for the CPU, the free CUDA memory on a GPU).
"""

from __future__ import annotations

import math

import torch

from biounet.model import UNetConfig, sizes
from biounet.tiling.budget import parameter_count, training_bytes_per_pixel, training_step_bytes
from biounet.training.config import ConfigError, TrainConfig

#: The share of the available memory one training step may use (the data and Python need the rest).
USABLE_FRACTION = {"cpu": 0.8, "cuda": 0.9}


def check_training_fits(
    config: TrainConfig, model_config: UNetConfig, device: torch.device, precision: str,
    available: int | None = None,
) -> None:
    """Raise ConfigError unless the tile suits the network and one training step fits in memory.

    ``available``: bytes of memory (default: what :func:`biounet.runtime.available_memory_bytes` reports).
    """
    tile = config.spatial_tile()
    _check_depth(model_config, tile)
    shape = sizes.valid_input_shape(model_config, tile)
    if available is None:
        from biounet.runtime import available_memory_bytes

        available = available_memory_bytes(device)
    usable = int(USABLE_FRACTION.get(device.type, 0.8) * available)
    need = _step_bytes(config, model_config, shape, config.batch_size, precision)
    if need <= usable:
        return
    where = f"{_size(usable)} this machine can give it ({device.type}, {_size(available)} available)"
    raise ConfigError(
        f"tile {_shape(shape)} at batch {config.batch_size} needs about {_size(need)} for one training step "
        f"(depth {model_config.depth}, {model_config.base_channels} base channels, {precision}), more than the "
        f"{where}: {_what_fits(config, model_config, shape, precision, usable)}"
    )


def _step_bytes(config: TrainConfig, model: UNetConfig, shape: tuple[int, ...], batch: int, precision: str) -> int:
    return training_step_bytes(model, shape, batch, precision, config.optim.name, config.optim.ema is not None)


def _check_depth(model: UNetConfig, tile: tuple[int, ...]) -> None:
    pool = sizes.total_pool_factor(model)
    if all(p <= n for p, n in zip(pool, tile)):
        return
    deepest = max((d for d in range(model.depth + 1) if all(
        p <= n for p, n in zip(sizes.total_pool_factor(_with_depth(model, d)), tile))), default=0)
    raise ConfigError(
        f"model.depth {model.depth} pools each axis by {_shape(pool)} in all, more than the tile "
        f"({_shape(tile)} px): a {_shape(tile)} tile allows depth {deepest} at most (--depth {deepest}), "
        "or give a larger --tile-size"
    )


def _what_fits(config: TrainConfig, model: UNetConfig, shape: tuple[int, ...], precision: str, usable: int) -> str:
    """The largest tile at this batch, the largest batch at this tile, or the deepest network that fits."""
    batch = config.batch_size
    fixed = _step_bytes(config, model, shape, 0, precision)  # weights, gradients, optimiser state
    per_tile_pixel = training_bytes_per_pixel(model, precision)
    options = []
    for tiles in dict.fromkeys((batch, 1)):
        side = _largest_side(model, (usable - fixed) / (tiles * per_tile_pixel))
        if side is not None:
            options.append(f"the largest tile at batch {tiles} is {side} (--tile-size {side})")
    batches = int((usable - fixed) // (math.prod(shape) * per_tile_pixel * 1.0)) if usable > fixed else 0
    if batches >= 1:
        options.append(f"at this tile the largest batch is {batches} (--batch-size {batches})")
    if options:
        return "; ".join(options)
    for depth in reversed(range(model.depth)):
        smaller = _with_depth(model, depth)
        if _step_bytes(config, smaller, sizes.valid_input_shape(smaller, shape), batch, precision) <= usable:
            return f"the network alone ({parameter_count(model):.3g} parameters) is too big; depth {depth} fits " \
                   f"(--depth {depth}), or fewer --base-channels"
    return f"the network alone ({parameter_count(model):.3g} parameters) is too big; use fewer --base-channels"


def _largest_side(model: UNetConfig, pixels: float) -> int | None:
    """The largest tile side (same on every axis) of at most ``pixels`` pixels that the network takes."""
    if pixels < 1:
        return None
    side = int(pixels ** (1.0 / model.spatial_dims))
    pool = max(sizes.total_pool_factor(model))
    if model.padding == "same":  # the network pads a tile to its pooling grid
        side = side // pool * pool
        return side if side >= 1 else None
    return sizes.nearest_valid_sizes(model, side)[0] if side >= 1 else None


def _with_depth(model: UNetConfig, depth: int) -> UNetConfig:
    return model.replace(depth=depth, pool_factors=model.pool_factors[:depth],
                         kernel_sizes=model.kernel_sizes[:depth + 1])


def _shape(shape: tuple[int, ...]) -> str:
    """``256x256``; factors beyond a million as powers of two (``2^50``), which is what deep pooling gives."""
    return "x".join(f"2^{n.bit_length() - 1}" if n > 10**6 and n & (n - 1) == 0 else str(n) for n in shape)


def _size(count: float) -> str:
    for unit, scale in (("TB", 2**40), ("GB", 2**30), ("MB", 2**20)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count / 2**10:.0f} KB"


__all__ = ["USABLE_FRACTION", "check_training_fits"]
