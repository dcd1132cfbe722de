"""The overlap-tile grid (Ronneberger et al. 2015, Fig. 2): which input box feeds which output box.

Output tiles are laid on a regular grid whose stride ``T`` is a multiple of the network's total pooling
factor ``P`` (16 for depth 4) on every axis; each input tile is the output tile plus context on every
side, read with mirroring beyond the image border (:mod:`biounet.tiling.mirror`).

Valid padding (the paper's network)
    Input tile = output tile + ``2 * halo`` (92 px per side for the paper), rounded up to a valid size.
    Every input tile starts at ``k T - halo``, i.e. on the same pooling phase as a single pass over the
    whole mirrored image starting at ``-halo``, and a valid network's output depends only on its input
    box, so the tiled result EQUALS the whole-image pass of the mirrored image (to float rounding).

Same padding
    An image that fits the memory budget is one tile without any margin: a whole-image pass, which
    costs what one plain forward of the image costs (the network's own zero padding at the border, as
    at every tile edge it saw in training).  Larger images are tiled; tiles overlap and only their
    centres are kept ("halo crop").  The margin a tile carries is the context the model needs for an
    exact-enough result, not the whole receptive field: ``context="halo"`` (the default) is the valid
    network's halo rounded down to a multiple of ``P`` (80 px for depth 4), ``context="exact"`` the
    receptive-field radius with the pooling phase (``halo + P - 1``) rounded up (112 px).  On trained
    models the two differ by no more than bfloat16 rounding does (measured: docs/speed.md), while the
    smaller margin makes every tile up to a quarter cheaper.  Tiles are multiples of ``P`` and aligned
    with the pooling grid of a whole-image pass, so with ``"exact"`` the kept centres equal the
    whole-image pass away from the image border.  Halo crop rather than Gaussian blending: nothing to
    accumulate (output streams to disk strip by strip) and no down-weighted overlap to pay for.  At the
    image border tiles use mirrored context (the paper's strategy).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from biounet.model import sizes
from biounet.model.config import UNetConfig


@dataclass(frozen=True)
class AxisPlan:
    """The tiling along one spatial axis; all numbers in pixels.

    Tile ``k`` owns output pixels ``[k * stride + shift, (k + 1) * stride + shift)`` (clipped to the
    image), reads input ``[k * stride + shift - margin, ... + input_size)`` and the network's output
    index 0 corresponds to image position ``input_start + net_offset``.
    """

    size: int
    stride: int
    input_size: int
    margin: int
    shift: int
    net_offset: int

    @property
    def count(self) -> int:
        return math.ceil((self.size - self.shift) / self.stride)

    def origin(self, k: int) -> int:
        """First image pixel of output tile ``k`` before clipping (may be negative for ``shift < 0``)."""
        return k * self.stride + self.shift


@dataclass(frozen=True)
class Tile:
    """One tile: where to read (``input_start``, may lie outside the image) and what to keep.

    The network output ``y`` (``(C, *O)``) of this tile gives the image box
    ``[output_start, output_stop)`` as ``y[:, crop_start : crop_start + (output_stop - output_start)]``.
    """

    grid_index: tuple[int, ...]
    input_start: tuple[int, ...]
    output_start: tuple[int, ...]
    output_stop: tuple[int, ...]
    crop_start: tuple[int, ...]

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(b - a for a, b in zip(self.output_start, self.output_stop))

    def crop(self) -> tuple[slice, ...]:
        """Slices of the network output's spatial axes that give this tile's output box."""
        return tuple(slice(c, c + n) for c, n in zip(self.crop_start, self.output_shape))

    def region(self) -> tuple[slice, ...]:
        """Slices of the image's spatial axes that this tile writes."""
        return tuple(slice(a, b) for a, b in zip(self.output_start, self.output_stop))


@dataclass(frozen=True)
class TileGrid:
    """All tiles of one image, one :class:`AxisPlan` per spatial axis; iterates in raster order."""

    axes: tuple[AxisPlan, ...]

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(a.size for a in self.axes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The network input shape of every tile, in pixels."""
        return tuple(a.input_size for a in self.axes)

    @property
    def stride(self) -> tuple[int, ...]:
        return tuple(a.stride for a in self.axes)

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(a.count for a in self.axes)

    def __len__(self) -> int:
        return math.prod(self.counts)

    def __iter__(self) -> Iterator[Tile]:
        for index in itertools.product(*(range(n) for n in self.counts)):
            yield self.tile(index)

    def tile(self, index: Sequence[int]) -> Tile:
        starts, stops, inputs, crops = [], [], [], []
        for k, axis in zip(index, self.axes):
            origin = axis.origin(k)
            start, stop = max(0, origin), min(axis.size, origin + axis.stride)
            input_start = origin - axis.margin
            starts.append(start)
            stops.append(stop)
            inputs.append(input_start)
            crops.append(start - (input_start + axis.net_offset))
        return Tile(tuple(int(i) for i in index), tuple(inputs), tuple(starts), tuple(stops), tuple(crops))


#: How much context a same-padded model's tiles carry (see the module docstring).
SAME_CONTEXTS = ("halo", "exact")


def context_margin(config: UNetConfig, context: str = "halo") -> tuple[int, ...]:
    """Context per side and axis that an input tile carries beyond its output tile, in pixels.

    Valid padding: the halo (92 for the paper), whatever ``context`` says.  Same padding, on the pooling
    grid: ``"halo"`` the halo rounded down to a multiple of ``P`` (80 for depth 4, at least ``P``);
    ``"exact"`` the receptive-field radius with the pooling phase, ``halo + P - 1``, rounded up (112).
    """
    if context not in SAME_CONTEXTS:
        raise ValueError(f"context must be one of {', '.join(SAME_CONTEXTS)}, not {context!r}")
    halo = sizes.halo(config)
    if config.padding == "valid":
        return halo
    pool = sizes.total_pool_factor(config)
    if context == "exact":
        return tuple(math.ceil((h + p - 1) / p) * p for h, p in zip(halo, pool))
    return tuple(max(p, h // p * p) for h, p in zip(halo, pool))


def plan_grid(
    config: UNetConfig,
    image_shape: Sequence[int],
    max_input_shape: Sequence[int] | None = None,
    context: str = "halo",
) -> TileGrid:
    """Plan the tiles for an image of spatial shape ``image_shape`` (any size >= 1 pixel).

    Args:
        config: the network's configuration (padding mode, pooling factors, kernels).
        image_shape: spatial shape ``(*S)`` of the image, in pixels.
        max_input_shape: the largest network input per axis (about: a valid network may round up by
            less than ``P``); ``None`` takes the whole image in one tile.  Tiles never shrink below the
            smallest input the network takes.
        context: a same-padded model's tile margin, ``"halo"`` or ``"exact"`` (:func:`context_margin`);
            an axis that fits ``max_input_shape`` whole gets no margin (there every tile spans the whole
            axis, aligned as in a whole-image pass, so the network's own padding at the image's border is
            what a whole-image pass sees); an image that fits whole is one pass without any margin.

    The output stride is balanced: with ``n`` tiles needed along an axis, each gets about ``1/n`` of
    the axis (rounded up to a multiple of ``P``), so a 512 px image with a 572 px tile limit becomes two
    tiles of 444 px, not one of 572 and one mostly mirrored.
    """
    if len(image_shape) != config.spatial_dims:
        raise ValueError(f"image_shape {tuple(image_shape)} has not {config.spatial_dims} spatial axes")
    pool = sizes.total_pool_factor(config)
    valid = config.padding == "valid"
    margins = context_margin(config, context)
    if not valid:
        margins = tuple(0 if _axis_fits_whole(n, p, None if max_input_shape is None else max_input_shape[a]) else m
                        for a, (n, p, m) in enumerate(zip(image_shape, pool, margins)))
    axes = []
    for axis, (size, p, margin) in enumerate(zip(image_shape, pool, margins)):
        size = int(size)
        if size < 1:
            raise ValueError(f"cannot tile an axis of {size} pixels")
        shift = 0 if valid else -(((-size) % p) // 2)  # the same-mode model's own alignment of a whole image
        extent = size - shift
        if max_input_shape is None:
            limit = math.ceil(extent / p) * p
        else:
            limit = max(p, (int(max_input_shape[axis]) - 2 * margin) // p * p)
        count = math.ceil(extent / limit)
        stride = math.ceil(extent / count / p) * p
        if valid:
            input_size = sizes.nearest_valid_sizes(config, stride + 2 * margin, axis)[1]
            net_offset = margin
        else:
            input_size = stride + 2 * margin
            net_offset = 0
        axes.append(AxisPlan(size, stride, input_size, margin, shift, net_offset))
    return TileGrid(tuple(axes))


def _axis_fits_whole(size: int, pool: int, limit: int | None) -> bool:
    """Whether a same-padded model can take a whole axis (rounded up to its pooling grid) in one tile."""
    return limit is None or math.ceil(int(size) / pool) * pool <= int(limit)
