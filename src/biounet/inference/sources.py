"""Images as the predictor sees them: a lazy ``(C, *stack, *S)`` view of whatever layout the file has.

:class:`ChannelFirstView` puts the channel axis first (or adds one) without reading anything, so a
``(Y, X, C)`` memmap or zarr array is still read tile by tile.  :func:`image_layout` decides, from the
array's shape and the model, where the channels are and which leading axes are a stack of images
(a multi-page TIFF for a 2D model is predicted slice by slice).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from biounet.errors import DataError
from biounet.inference.sections import file_config, with_z_context
from biounet.model.config import UNetConfig

CHANNEL_AXIS_CHOICES = ("auto", "first", "last", "none")


class ChannelFirstView:
    """A read-only, lazily sliced view ``(C, *rest)`` of ``array`` whose channel axis is ``channel_axis``.

    ``channel_axis=None`` adds a channel axis of length 1.  Supports ``.shape``, ``.dtype``, ``.ndim``
    and NumPy basic indexing (ints, slices with steps, ``...``); reads go to the underlying array.
    """

    def __init__(self, array: Any, channel_axis: int | None) -> None:
        ndim = len(array.shape)
        if channel_axis is not None:
            channel_axis = channel_axis % ndim
        self.array = array
        self.channel_axis = channel_axis
        rest = [int(n) for a, n in enumerate(array.shape) if a != channel_axis]
        channels = 1 if channel_axis is None else int(array.shape[channel_axis])
        self.shape: tuple[int, ...] = (channels, *rest)
        self.dtype = np.dtype(array.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        key = _expand_key(key, self.ndim)
        channel_key, rest_key = key[0], list(key[1:])
        if self.channel_axis is None:
            data = np.asarray(self.array[tuple(rest_key)])
            return data[None][channel_key] if isinstance(channel_key, slice) else data
        under = rest_key[: self.channel_axis] + [channel_key] + rest_key[self.channel_axis :]
        data = np.asarray(self.array[tuple(under)])
        if isinstance(channel_key, slice):
            position = sum(not isinstance(k, (int, np.integer)) for k in under[: self.channel_axis])
            data = np.moveaxis(data, position, 0)
        return data

    def release(self) -> None:
        """Drop the pages of a memory-mapped source from this process's resident memory (best effort).

        Reading a memmap maps its pages into the process; without this a long prediction would end
        with the whole input resident.  The data stay in the file (read-only mapping).
        """
        import mmap

        handle = getattr(self.array, "_mmap", None)
        if handle is not None and hasattr(handle, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
            try:
                handle.madvise(mmap.MADV_DONTNEED)
            except (OSError, ValueError):
                pass


def _expand_key(key: Any, ndim: int) -> tuple[Any, ...]:
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        at = next(i for i, k in enumerate(key) if k is Ellipsis)
        fill = (slice(None),) * (ndim - len(key) + 1)
        key = key[:at] + fill + key[at + 1 :]
    return tuple(key) + (slice(None),) * (ndim - len(key))


@dataclass(frozen=True)
class Layout:
    """Where the channels are (``None``: no channel axis) and how many leading stack axes there are."""

    channel_axis: int | None
    stack_axes: int


def image_layout(
    shape: tuple[int, ...],
    config: UNetConfig,
    *,
    channel_axis: str | int | None = "auto",
    allow_stack: bool = False,
    channels_last_format: bool = False,
    name: str = "image",
) -> Layout:
    """Interpret an array of ``shape`` for a model with ``config``; raise :class:`DataError` if it does not fit.

    Args:
        channel_axis: ``"auto"`` or ``None`` (infer), ``"first"``, ``"last"``, ``"none"`` (no channel
            axis) or an axis number.
        allow_stack: for a 2D model, accept leading axes (a multi-page TIFF ``(Z, Y, X)``, ``(Z, C, Y, X)``
            or ``(Z, Y, X, C)``) and predict slice by slice.
        channels_last_format: the file format stores channels last (PNG, JPEG): ``"auto"`` looks there.
        name: the file name for error messages.
    """
    d, c = config.spatial_dims, config.in_channels
    ndim = len(shape)
    what = f"{d}D model with {c} input channel{'s' if c > 1 else ''}"
    if isinstance(channel_axis, (int, np.integer)) and not isinstance(channel_axis, bool):
        axis = int(channel_axis) % ndim if ndim else 0
    elif channel_axis in ("first", "last"):
        axis = 0 if channel_axis == "first" else ndim - 1
    elif channel_axis == "none":
        axis = None
    elif channel_axis in ("auto", None):
        axis = _infer_channel_axis(shape, d, c, allow_stack, channels_last_format)
    else:
        raise ValueError(f"channel_axis must be one of {', '.join(CHANNEL_AXIS_CHOICES)} or an int")
    spatial_and_stack = ndim - (axis is not None)
    stack = spatial_and_stack - d
    if stack < 0 or (stack > 0 and (not allow_stack or d != 2)) or stack > 1:
        raise DataError(f"{name}: an array of shape {tuple(shape)} does not fit a {what} (wrong dimensionality)")
    channels = 1 if axis is None else int(shape[axis])
    if channels != c:
        raise DataError(
            f"{name}: the {what} got {channels} channel{'s' if channels != 1 else ''} "
            f"(array shape {tuple(shape)}, channel axis {axis})"
        )
    if axis is not None and axis not in (0, ndim - 1) and not (stack and axis == 1):
        raise DataError(f"{name}: channel axis {axis} of shape {tuple(shape)} is neither first nor last")
    if any(int(n) < 1 for n in shape):
        raise DataError(f"{name}: the image has no pixels (shape {tuple(shape)})")
    return Layout(channel_axis=axis, stack_axes=stack)


def _infer_channel_axis(
    shape: tuple[int, ...], d: int, c: int, allow_stack: bool, channels_last_format: bool
) -> int | None:
    ndim = len(shape)
    if ndim == d:
        return None
    if channels_last_format:
        return ndim - 1 if ndim == d + 1 else None
    if ndim == d + 1:
        if c == 1 and shape[0] != 1 and shape[-1] == 1:
            return ndim - 1
        if c == 1 and d == 2 and allow_stack and shape[0] != 1:
            return None  # (Z, Y, X): a stack of single-channel images
        if shape[0] == c or shape[-1] != c:
            return 0
        return ndim - 1
    if ndim == d + 2 and allow_stack and d == 2:  # (Z, C, Y, X) or (Z, Y, X, C)
        if shape[1] == c or shape[-1] != c:
            return 1
        return ndim - 1
    return 0


def source_for_array(
    array: Any,
    config: UNetConfig,
    *,
    channel_axis: str | int | None = "auto",
    allow_stack: bool = False,
    channels_last_format: bool = False,
    name: str = "image",
    channels: Sequence[int] | None = None,
    z_context: int = 0,
) -> tuple[ChannelFirstView, dict[str, Any]]:
    """The lazy ``(C, *stack, *S)`` view of ``array`` for ``config``, and a description for the sidecar.

    ``channels``: the file channels the model was trained on (the pipeline's ``"channels"``, e.g. ``[0]``
    of an RGBA image); taken along ``channel_axis`` (``"first"``/``"last"``) when the image has more.
    ``z_context``: a 2.5D model's (``Pipeline.z_context``): ``array`` must be a stack with
    ``in_channels / (2 z_context + 1)`` channels, returned as a
    :class:`~biounet.inference.sections.SectionContextView` (each section with its neighbours as channels).
    """
    config = file_config(config, z_context, name)
    allow_stack = allow_stack or z_context > 0
    if not hasattr(array, "shape") or not hasattr(array, "dtype"):
        array = np.asarray(array)
    array = select_channels(array, config, channel_axis, channels_last_format, channels)
    dtype = np.dtype(array.dtype)
    if dtype.kind not in "biuf":
        raise DataError(f"{name}: pixel type {dtype} is not a number type")
    layout = image_layout(
        tuple(int(n) for n in array.shape),
        config,
        channel_axis=channel_axis,
        allow_stack=allow_stack,
        channels_last_format=channels_last_format,
        name=name,
    )
    info = {
        "shape": [int(n) for n in array.shape],
        "dtype": str(dtype),
        "channel_axis": layout.channel_axis,
        "stack_axes": layout.stack_axes,
    }
    view = ChannelFirstView(array, layout.channel_axis)
    return with_z_context(view, info, z_context, name)


def select_channels(
    array: Any, config: UNetConfig, channel_axis: str | int | None, channels_last_format: bool,
    channels: Sequence[int] | None,
) -> Any:
    """``array`` with only the trained-on ``channels`` kept, when it has more channels than the model takes.

    Only for an image with exactly one channel axis besides the spatial ones; the selection reads the
    image into memory (multi-channel images are small; single-channel ones are never touched).
    """
    if not channels or array.ndim != config.spatial_dims + 1:
        return array
    if channel_axis == "first":
        axis = 0
    elif channel_axis == "last" or (channel_axis in ("auto", None) and channels_last_format):
        axis = array.ndim - 1
    else:
        return array
    if int(array.shape[axis]) <= config.in_channels or max(channels) >= int(array.shape[axis]):
        return array
    return np.take(np.asarray(array), list(channels), axis=axis)


def open_for_model(
    path: str | os.PathLike,
    config: UNetConfig,
    *,
    channel_axis: str | int | None = "auto",
    allow_stack: bool = False,
    channels: Sequence[int] | None = None,
    z_context: int = 0,
) -> tuple[ChannelFirstView, dict[str, Any]]:
    """Open an image file lazily (:func:`biounet.io.images.open_image`) as a source for ``config``.

    PNG/JPEG store channels last; a grey image stored as RGB(A) (R = G = B) feeds a single-channel
    model with its first channel.  Raises :class:`~biounet.errors.ImageReadError` for unreadable files
    and :class:`DataError` for images that do not fit the model, naming the file.  ``z_context``: a 2.5D
    model's, see :func:`source_for_array`.
    """
    from biounet.io.images import PIL_SUFFIXES, image_suffix, open_image

    array = open_image(path)
    pil = image_suffix(path) in PIL_SUFFIXES
    if pil and config.in_channels == 1 and not z_context and channel_axis in ("auto", None):
        grey = grey_from_rgb(np.asarray(array))
        if grey is not None:
            array = grey
    source, info = source_for_array(
        array, config, channel_axis=channel_axis, allow_stack=allow_stack, channels_last_format=pil, name=str(path),
        channels=channels, z_context=z_context,
    )
    info["path"] = str(path)
    return source, info


def grey_from_rgb(array: np.ndarray) -> np.ndarray | None:
    """``(Y, X)`` from a ``(Y, X, 3|4)`` image whose colour channels are equal (grey stored as RGB), else None.

    The DSB 2018 images are RGBA with R = G = B; a single-channel model reads channel 0 of them.
    """
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        return None
    colour = np.asarray(array[..., :3])
    if np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 0], colour[..., 2]):
        return colour[..., 0]
    return None
