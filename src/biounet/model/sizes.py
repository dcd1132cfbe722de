"""Size arithmetic of the U-Net, shared by users, the model and the tiler.

With unpadded ("valid") 3x3 convolutions every convolution shrinks a map by 2 pixels, and every 2x2
pooling needs an even size.  For the paper's network (depth 4) an input of ``16 b + 124`` pixels gives
an output of ``16 b - 60`` pixels (bottleneck size ``b >= 4``): valid inputs are those ``= 12 (mod 16)``
and ``>= 188``, the output is 184 pixels smaller, and 92 pixels of context are consumed on each side.
Because the pooling grid must line up, two output tiles cut from one whole-image pass equal tiles
predicted alone only when the tile stride is a multiple of 16, the total pooling factor.

All functions work per axis, so they cover 2D, 3D and anisotropic pooling (a factor of 1 in z at
some levels), and every function takes the :class:`~biounet.model.config.UNetConfig`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

from biounet.errors import InvalidInputSizeError
from biounet.model.config import UNetConfig


def total_pool_factor(config: UNetConfig) -> tuple[int, ...]:
    """Product of the pooling factors per axis (16 for the paper's depth 4).

    Tiles of a valid-padded network must start on multiples of this stride to equal a whole-image pass.
    """
    return tuple(math.prod(level[axis] for level in config.pool_factors) for axis in range(config.spatial_dims))


def axis_output_size(config: UNetConfig, size: int, axis: int) -> int | None:
    """Output size along ``axis`` for an input of ``size`` pixels, or ``None`` if the network cannot take it.

    Follows the network level by level: convolutions (shrink by ``k - 1`` each when valid), pooling
    (needs divisibility), the bottleneck, up-sampling (multiply) and the expansive convolutions.
    In "same" mode the model pads internally, so every size >= 1 maps onto itself.
    """
    if size < 1:
        return None
    if config.padding == "same":
        return size
    n = size
    for level in range(config.depth):
        n -= 2 * (config.kernel_sizes[level][axis] - 1)
        factor = config.pool_factors[level][axis]
        if n < 1 or n % factor:
            return None
        n //= factor
    n -= 2 * (config.kernel_sizes[config.depth][axis] - 1)
    if n < 1:
        return None
    for level in reversed(range(config.depth)):
        n = n * config.pool_factors[level][axis] - 2 * (config.kernel_sizes[level][axis] - 1)
        if n < 1:
            return None
    return n


def halo(config: UNetConfig) -> tuple[int, ...]:
    """Context per side and axis, in pixels: ``(input - output) / 2`` for the valid network (92 for the paper).

    It is also the receptive-field radius, so for a same-padded network it is the margin within
    which the zero padding of the convolutions can change a tile's output: the tiler overlaps
    same-padded tiles by this much.
    """
    valid = config if config.padding == "valid" else config.replace(padding="valid")
    out = []
    for axis in range(config.spatial_dims):
        size = _smallest_valid(valid, axis)
        out.append((size - axis_output_size(valid, size, axis)) // 2)
    return tuple(out)


def min_input_shape(config: UNetConfig) -> tuple[int, ...]:
    """The smallest input the network takes, per axis (188 x 188 for the paper; 1 in "same" mode)."""
    return tuple(_smallest_valid(config, axis) for axis in range(config.spatial_dims))


def is_valid_input_shape(config: UNetConfig, shape: Sequence[int]) -> bool:
    """True if the network takes an input of this spatial shape without error."""
    return len(shape) == config.spatial_dims and all(
        axis_output_size(config, int(n), axis) is not None for axis, n in enumerate(shape)
    )


def nearest_valid_sizes(config: UNetConfig, size: int, axis: int = 0) -> tuple[int | None, int]:
    """The largest valid size ``<= size`` (``None`` if there is none) and the smallest valid size ``>= size``."""
    if config.padding == "same":
        n = max(int(size), 1)
        return (n if size >= 1 else None), n
    first = _smallest_valid(config, axis)
    step = total_pool_factor(config)[axis]
    if size <= first:
        return (first if size == first else None), first
    above = first + math.ceil((size - first) / step) * step
    below = first + ((size - first) // step) * step
    return below, above


def valid_input_shape(config: UNetConfig, at_least: Sequence[int]) -> tuple[int, ...]:
    """The smallest valid input shape that is at least ``at_least`` on every axis."""
    return tuple(nearest_valid_sizes(config, int(n), axis)[1] for axis, n in enumerate(at_least))


def input_shape_for_output(config: UNetConfig, output_shape: Sequence[int]) -> tuple[int, ...]:
    """The smallest valid input whose output is at least ``output_shape`` on every axis."""
    margins = halo(config) if config.padding == "valid" else (0,) * config.spatial_dims
    return valid_input_shape(config, [int(n) + 2 * m for n, m in zip(output_shape, margins)])


def output_shape(config: UNetConfig, input_shape: Sequence[int]) -> tuple[int, ...]:
    """The output's spatial shape for an input of ``input_shape``.

    Raises :class:`~biounet.errors.InvalidInputSizeError` with the nearest valid sizes when the
    network cannot take it (never PyTorch's "sizes of tensors must match").
    """
    check_input_shape(config, input_shape)
    return tuple(axis_output_size(config, int(n), axis) for axis, n in enumerate(input_shape))


def check_input_shape(config: UNetConfig, input_shape: Sequence[int]) -> None:
    """Raise :class:`InvalidInputSizeError` unless the network takes ``input_shape``."""
    if len(input_shape) != config.spatial_dims:
        raise InvalidInputSizeError(
            f"the U-Net is {config.spatial_dims}D and needs {config.spatial_dims} spatial axes, "
            f"got input of spatial shape {tuple(input_shape)}"
        )
    problems = []
    names = _axis_names(config.spatial_dims)
    for axis, n in enumerate(input_shape):
        if axis_output_size(config, int(n), axis) is None:
            below, above = nearest_valid_sizes(config, int(n), axis)
            nearest = f"{below} or {above}" if below is not None else f"{above} (the smallest)"
            problems.append(f"{names[axis]}={n} (nearest valid: {nearest})")
    if problems:
        first = _smallest_valid(config, 0)
        step = total_pool_factor(config)[0]
        raise InvalidInputSizeError(
            f"input size not valid for this U-Net (padding='valid', depth {config.depth}): "
            f"{', '.join(problems)}; valid sizes are {first} + a multiple of {step} along {names[0]}. "
            "Use biounet.predict (tiles any size) or padding='same'."
        )


@functools.lru_cache(maxsize=256)
def _smallest_valid(config: UNetConfig, axis: int) -> int:
    n = 1
    while axis_output_size(config, n, axis) is None:
        n += 1
        if n > 1_000_000:  # pragma: no cover - only for absurd configurations
            raise ValueError("no valid input size below 1,000,000 pixels for this configuration")
    return n


def _axis_names(spatial_dims: int) -> tuple[str, ...]:
    return ("y", "x") if spatial_dims == 2 else ("z", "y", "x")
