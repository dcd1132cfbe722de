"""Tile and batch sizes from the memory available: estimate the activation memory per input pixel.

At inference (``torch.inference_mode``) the U-Net's peak memory is reached at the top level of the
expansive path: the skip, the up-sampled map, their concatenation and a convolution output, about
``4 x base_channels`` values per pixel, plus the skips of the lower levels (``2 x channels`` values per
pixel of that level).  oneDNN (CPU) stores feature maps in blocks of 16 channels, so narrow networks
cost as if they had 16 channels per level.  Measured on the paper's network (CPU): 1,350 bytes per
input pixel in float32 and 700 in bfloat16 (:func:`activation_bytes_per_pixel` gives 1,510 and 760);
on a depth-2 network with 4 base channels 300 bytes in float32 (estimate 316).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from biounet.model.config import UNetConfig
from biounet.model.sizes import total_pool_factor

#: Activation memory allowed for one batch of tiles on CPU (also capped at a quarter of the available RAM).
CPU_BUDGET_BYTES = 768 * 2**20
#: Activation memory a whole-image pass may take on CPU (also capped at a quarter of the available RAM): an
#: image that fits runs untiled.  Tiles repeat their context (a 2048 px image as 3 x 3 tiles of 848 px computes
#: 1.5x its pixels) while a forward costs about the same per pixel from 512 to 2048 px (docs/speed.md), so an
#: image up to about 2300 x 2300 px (the default network in bfloat16) is fastest whole; larger ones are tiled
#: with memory flat in their size.
CPU_WHOLE_IMAGE_BYTES = 2 * 2**30
#: Largest 2D input tile on CPU in pixels (1024 x 1024) when an image is tiled: it bounds the memory of tiled
#: predictions (8192 px images, blockwise workers).  3D tiles grow to the memory budget instead: with a
#: same-padded 3D network's context (40 voxels a side at depth 3) a 100^3 tile would keep 20^3, so there the
#: margins decide.
CPU_MAX_TILE_PIXELS = 2**20
#: On CPU, batch small tiles up to about this many input pixels per batch (larger batches gain nothing).
CPU_BATCH_PIXELS = 2**20
MAX_BATCH = 32


def activation_bytes_per_pixel(config: UNetConfig, precision: str) -> float:
    """Estimated peak activation memory per input pixel for one tile, in bytes."""
    element = 4 if precision == "fp32" else 2
    channels = [max(16, c) for c in config.channels]
    values = 4.0 * channels[0]
    fraction = 1.0
    for level in range(1, config.depth + 1):
        fraction /= math.prod(config.pool_factors[level - 1])
        values += 2.0 * channels[level] * fraction
    return element * values + 4.0 * (config.in_channels + 2 * config.num_classes)


def memory_budget(device: torch.device, whole_image: bool = False) -> int:
    """Bytes of activation memory one batch of tiles (``whole_image``: one untiled pass) may use on ``device``."""
    from biounet.runtime import available_memory_bytes

    available = available_memory_bytes(device)
    if device.type == "cuda":
        return int(0.5 * available)
    return int(min(CPU_WHOLE_IMAGE_BYTES if whole_image else CPU_BUDGET_BYTES, 0.25 * available))


def max_input_shape(
    config: UNetConfig,
    image_shape: Sequence[int],
    margins: Sequence[int],
    precision: str,
    device: torch.device,
    budget: int | None = None,
    largest: Sequence[int] | None = None,
) -> tuple[int, ...]:
    """The largest input tile per axis that fits the memory budget, shaped like the image and the context.

    Axes where the whole image (plus context) fits are taken whole, as are axes that reach ``largest`` (a
    cap on the input per axis, e.g. the blockwise driver's block plus its margins); the remaining pixels are
    shared between the other axes **in proportion to their context**.  That shape keeps the most output per
    input pixel: maximising ``prod(n - 2m)`` under ``prod(n) = const`` gives ``n`` proportional to ``m``, the
    same fraction of context on every axis.  With equal margins (2D, isotropic 3D) tiles are square or
    cubic; an anisotropic model with 2 sections of z context and 40 px in-plane gets, for 1 Mvoxel, tiles of
    about 14 x 270 x 270, not 100^3 (which would keep 16 x 16 px of its 96 x 96 in-plane).  An axis whose
    share reaches half its length is taken whole too when that computes clearly fewer pixels (:func:`_share`):
    a 45 x 300 x 211 stack gets tiles of the full depth.

    A same-padded network needs no context along an axis it takes whole (the image's border is a border
    there, as in a whole-image pass: :func:`biounet.tiling.plan_grid`), so such an axis counts without its
    margins: a stack of 3 sections of 1024 x 1024 with 8 sections of z context gets tiles of 4 sections, not
    20, and five times as many pixels in-plane.

    With the device's own budget (``budget=None``) an image whose whole pass fits the larger whole-image
    budget (:data:`CPU_WHOLE_IMAGE_BYTES` on CPU) is one tile: tiling it would only repeat context.  Not so
    for the blocks of a blockwise run (``largest`` given): several workers share the machine there, and each
    keeps to the tile budget.
    """
    per_pixel = activation_bytes_per_pixel(config, precision)
    pool = total_pool_factor(config)
    context = 2 if config.padding == "valid" else 0  # margins an axis taken whole still needs, per side
    caps = [math.ceil(int(n) / p) * p + context * int(m) for n, m, p in zip(image_shape, margins, pool)]
    if largest is not None:
        caps = [min(c, int(n)) for c, n in zip(caps, largest)]
    if budget is None:
        if largest is None and math.prod(caps) * per_pixel <= memory_budget(device, whole_image=True):
            return tuple(caps)
        budget = memory_budget(device)
    pixels = budget / per_pixel
    if device.type == "cpu" and config.spatial_dims == 2:
        pixels = min(pixels, CPU_MAX_TILE_PIXELS)
    weights = [max(1, int(m), int(p)) for m, p in zip(margins, pool)]
    return _share(pixels, caps, weights, [int(n) for n in image_shape], [int(m) for m in margins])


def _share(
    pixels: float, caps: Sequence[int], weights: Sequence[int], lengths: Sequence[int], margins: Sequence[int]
) -> tuple[int, ...]:
    """Axis lengths with a product of at most ``pixels``: each at most its cap, the uncapped ones in
    proportion to their weights.

    An axis whose share reaches its cap is fixed there (which frees pixels for the others).  An axis whose
    share reaches half its cap may be taken whole too, the others giving up the pixels, when that computes
    at least :data:`WHOLE_AXIS_GAIN` fewer pixels over the image (:func:`_computed`): a 1500 px image runs as
    3 strips of 1504 x 697 instead of 4 squares of 912, a 64 x 512 x 512 block of an anisotropic model as 5
    slabs of 17 x 512 x 512 (docs/speed.md, docs/3d.md).
    """
    shape: list[int | None] = [None] * len(caps)
    while True:
        free = [a for a, n in enumerate(shape) if n is None]
        if not free:
            return tuple(int(n) for n in shape)
        proposal = _proportional(pixels, shape, weights)
        capped = [a for a in free if proposal[a] >= caps[a]]
        if not capped and len(free) > 1:
            closest = max(free, key=lambda a: proposal[a] / caps[a])
            if 2 * proposal[closest] >= caps[closest]:
                whole = list(shape)
                whole[closest] = caps[closest]
                alternative = _proportional(pixels, whole, weights)
                if _computed(alternative, lengths, margins, caps) < (1 - WHOLE_AXIS_GAIN) * _computed(
                    proposal, lengths, margins, caps
                ):
                    capped = [closest]
        if not capped:
            return tuple(max(1, int(proposal[a])) for a in range(len(caps)))
        for a in capped:
            shape[a] = caps[a]


#: Fewer computed pixels that taking an axis whole must bring before tiles become strips or slabs: elongated
#: tiles run slower per pixel than square ones (docs/speed.md).
WHOLE_AXIS_GAIN = 0.1


def _proportional(pixels: float, shape: Sequence[int | None], weights: Sequence[int]) -> list[float]:
    """The fixed axes as they are, the free ones sharing the rest of ``pixels`` in proportion to ``weights``."""
    free = [a for a, n in enumerate(shape) if n is None]
    rest = max(1.0, pixels / math.prod(n for n in shape if n is not None))
    scale = (rest / math.prod(weights[a] for a in free)) ** (1.0 / len(free)) if free else 1.0
    return [float(n) if n is not None else weights[a] * scale for a, n in enumerate(shape)]


def _computed(shape: Sequence[float], lengths: Sequence[int], margins: Sequence[int], caps: Sequence[int]) -> float:
    """Input pixels the tiles of ``shape`` compute over an image of ``lengths``: per axis its cap when taken
    whole, else ``k`` tiles of an equal share of the axis plus both margins (as :func:`plan_grid` spreads them)."""
    total = 1.0
    for n, length, m, cap in zip(shape, lengths, margins, caps):
        if n >= cap:
            total *= cap
            continue
        kept = max(1.0, n - 2 * m)
        tiles = math.ceil(length / kept)
        total *= tiles * (math.ceil(length / tiles) + 2 * m)
    return total


def batch_size_for(
    config: UNetConfig,
    input_shape: Sequence[int],
    precision: str,
    device: torch.device,
    budget: int | None = None,
) -> int:
    """Tiles per batch: as many as the budget allows (on CPU only up to ~1 Mpx per batch)."""
    budget = memory_budget(device) if budget is None else budget
    tile_pixels = math.prod(int(n) for n in input_shape)
    fits = int(budget // (tile_pixels * activation_bytes_per_pixel(config, precision)))
    if device.type == "cpu":
        fits = min(fits, CPU_BATCH_PIXELS // tile_pixels)
    return max(1, min(MAX_BATCH, fits))


# ------------------------------------------------------------------------------------------ training

#: Values kept per pixel and channel of a level for one training step (forward activations saved for the
#: backward pass, their gradients while it runs): measured 12-16 with normalisation layers, 5-8 without.
TRAINING_VALUES_PER_CHANNEL = {True: 16.0, False: 8.0}
#: Bytes per parameter besides the weights' own 4: the gradient, and per optimiser its state.
OPTIMIZER_STATE_BYTES = {"sgd": 4, "adamw": 8}


def parameter_count(config: UNetConfig) -> int:
    """The network's parameters, computed from the configuration (exact; no network is built).

    Python integers, so absurd configurations (depth 50) give a huge number instead of an overflow.
    """
    channels, norm = config.channels, config.norm is not None

    def conv(cin: int, cout: int, kernel: Sequence[int], bias: bool = True) -> int:
        return cin * cout * math.prod(kernel) + (cout if bias else 0)

    def block(cin: int, cout: int, level: int) -> int:
        kernel = config.kernel_sizes[level]
        norm_params = 2 * cout if norm else 0
        return conv(cin, cout, kernel, not norm) + conv(cout, cout, kernel, not norm) + 2 * norm_params

    total = block(config.in_channels, channels[0], 0) + conv(channels[0], config.num_classes, (1,))
    for level in range(config.depth):
        total += block(channels[level], channels[level + 1], level + 1)
        factor = config.pool_factors[level] if config.upsampling == "transposed" else (1,)
        total += conv(channels[level + 1], channels[level], factor) + block(channels[level + 1], channels[level], level)
    return total


def training_bytes_per_pixel(config: UNetConfig, precision: str) -> float:
    """Estimated activation memory of one training step (forward and backward) per input pixel of one tile."""
    element = 4.0 if precision == "fp32" else 2.5  # autocast keeps normalisation and the loss in float32
    per_channel = TRAINING_VALUES_PER_CHANNEL[config.norm is not None]
    values, fraction = 0.0, 1.0
    for level, width in enumerate(config.channels):
        if level:
            fraction /= math.prod(config.pool_factors[level - 1])
        values += per_channel * max(16, width) * fraction
    return element * values + 16.0 * (config.in_channels + 2 * config.num_classes)


def training_step_bytes(
    config: UNetConfig,
    input_shape: Sequence[int],
    batch_size: int,
    precision: str,
    optimizer: str = "adamw",
    weight_average: bool = False,
) -> int:
    """Estimated peak memory of one training step: activations of ``batch_size`` tiles of ``input_shape``
    (a same-padded network pads them to its pooling grid), and the weights with their gradients, optimiser
    state and weight average (``weight_average``)."""
    pool = total_pool_factor(config)
    if config.padding == "same":
        input_shape = [math.ceil(int(n) / p) * p for n, p in zip(input_shape, pool)]
    activations = batch_size * math.prod(int(n) for n in input_shape) * training_bytes_per_pixel(config, precision)
    per_parameter = 8 + OPTIMIZER_STATE_BYTES.get(optimizer, 8) + (4 if weight_average else 0)
    return int(activations) + per_parameter * parameter_count(config)
