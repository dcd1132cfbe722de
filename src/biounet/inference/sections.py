"""2.5D prediction: a 2D model that sees each section of a stack with its neighbours as extra channels.

A model trained with ``data.z_context = k`` (``Pipeline.z_context``) takes ``(2k + 1) x C`` input channels:
sections ``z - k .. z + k`` of a ``(C, Z, Y, X)`` stack, in that order, each with all its ``C`` channels
(channel ``j * C + c`` is channel ``c`` of section ``z - k + j``).  At the stack's ends the sections are
mirrored by reflection about the end section, as ``np.pad(mode="reflect")`` does (section -1 is section 1,
section ``Z`` is section ``Z - 2``), the way training builds the channels.

:class:`SectionContextView` makes that input lazily from the file's ``(C, Z, Y, X)``
:class:`~biounet.inference.sources.ChannelFirstView`: a tile of section ``z`` reads only the ``2k + 1``
sections it needs, so a memory-mapped stack still streams.  The normalisation statistics are those of the
file's stack (as for any stack), repeated for the ``2k + 1`` sections (:meth:`SectionContextView.statistics`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from biounet.data.normalization import IntensityStats, NormalizationConfig, image_statistics
from biounet.data.sections import mirrored_sections, section_indices
from biounet.errors import DataError
from biounet.model.config import UNetConfig


def file_config(config: UNetConfig, z_context: int, name: str = "model") -> UNetConfig:
    """The configuration a 2.5D model's input *file* must fit: its channels are ``in_channels / (2k + 1)``."""
    if z_context <= 0:
        return config
    sections = 2 * z_context + 1
    if config.spatial_dims != 2 or config.in_channels % sections:
        raise DataError(
            f"{name}: a 2.5D model (z context {z_context}) must be a 2D network whose in_channels is a multiple "
            f"of {sections}; this one is {config.spatial_dims}D with {config.in_channels} input channels"
        )
    return dataclasses.replace(config, in_channels=config.in_channels // sections)


def minimum_sections(z_context: int) -> int:
    """The fewest sections a stack needs for one reflection at each end: ``z_context + 1``."""
    return z_context + 1


def check_stack(shape: tuple[int, ...], stack_axes: int, z_context: int, name: str) -> None:
    """A one-line :class:`DataError` naming ``name`` unless ``shape`` (``(C, Z, Y, X)``) is a long enough stack."""
    need = minimum_sections(z_context)
    if stack_axes != 1 or int(shape[1]) < need:
        found = "a single 2D image" if stack_axes != 1 else f"a stack of {int(shape[1])} sections"
        raise DataError(
            f"{name}: a 2.5D model (z context {z_context}) needs a stack of at least {need} sections "
            f"(Z, Y, X); this is {found} (shape {tuple(shape[1:])})"
        )


class SectionContextView:
    """A lazy ``((2k + 1) C, Z, Y, X)`` view of a ``(C, Z, Y, X)`` source: each section with its neighbours.

    Supports what the predictor uses of a :class:`~biounet.inference.sources.ChannelFirstView`: ``.shape``,
    ``.dtype``, ``.ndim``, basic indexing (ints and slices; ``...``) and :meth:`release`.  A read of sections
    ``z0..z1`` reads sections ``z0 - k .. z1 + k`` (mirrored at the ends) of ``base`` and nothing else.
    """

    def __init__(self, base: Any, z_context: int) -> None:
        if len(base.shape) != 4 or z_context < 1:
            raise ValueError(f"a section view needs a (C, Z, Y, X) source and z_context >= 1, got {base.shape}")
        self.base, self.z_context = base, int(z_context)
        channels, sections = int(base.shape[0]), int(base.shape[1])
        self.file_channels = channels
        self.shape: tuple[int, ...] = ((2 * z_context + 1) * channels, sections, *map(int, base.shape[2:]))
        self.dtype = np.dtype(base.dtype)
        self.padded = mirrored_sections(sections, z_context)

    @property
    def ndim(self) -> int:
        return 4

    def __getitem__(self, key: Any) -> np.ndarray:
        channel_key, z_key, *plane = _full_key(key)
        if isinstance(z_key, (int, np.integer)):
            return self._sections([int(z_key)], plane)[:, 0][channel_key]
        zs = list(range(*z_key.indices(self.shape[1])))
        return self._sections(zs, plane)[channel_key]

    def _sections(self, zs: list[int], plane: list[Any]) -> np.ndarray:
        """``((2k + 1) C, len(zs), *plane)`` for sections ``zs``, reading their neighbourhoods' sections once."""
        k, c = self.z_context, self.file_channels
        width = 2 * k + 1
        needed = self.padded[np.add.outer(np.asarray(zs, dtype=np.int64), np.arange(width))]  # (len(zs), 2k + 1)
        if needed.size == 0:
            lo, hi = 0, 0
        else:
            lo, hi = int(needed.min()), int(needed.max()) + 1
        block = np.asarray(self.base[(slice(None), slice(lo, hi), *plane)])  # (C, hi - lo, *plane)
        gathered = block[:, needed - lo]  # (C, len(zs), 2k + 1, *plane)
        gathered = np.moveaxis(gathered, 2, 0)  # (2k + 1, C, len(zs), *plane): section-major channels
        return gathered.reshape(width * c, len(zs), *gathered.shape[3:])

    def statistics(self, normalization: NormalizationConfig) -> IntensityStats:
        """The stack's statistics (over the file's channels), repeated for each of the ``2k + 1`` sections."""
        stats = image_statistics(self.base, normalization)
        width = 2 * self.z_context + 1
        return IntensityStats(offset=np.tile(stats.offset, width), scale=np.tile(stats.scale, width))

    def release(self) -> None:
        release = getattr(self.base, "release", None)
        if release is not None:
            release()


def _full_key(key: Any) -> tuple[Any, ...]:
    """``key`` as four entries (channel, section, Y, X), ``...`` and missing trailing entries as full slices."""
    key = key if isinstance(key, tuple) else (key,)
    if any(k is Ellipsis for k in key):
        at = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:at] + (slice(None),) * (5 - len(key)) + key[at + 1 :]
    return tuple(key) + (slice(None),) * (4 - len(key))


def with_z_context(source: Any, info: dict[str, Any], z_context: int, name: str) -> tuple[Any, dict[str, Any]]:
    """``source`` ``(C, *stack, Y, X)`` as a 2.5D model's input: checked, wrapped in a :class:`SectionContextView`."""
    if z_context <= 0:
        return source, info
    check_stack(tuple(source.shape), int(info.get("stack_axes", len(source.shape) - 3)), z_context, name)
    info = {**info, "z_context": int(z_context)}
    return SectionContextView(source, z_context), info


__all__ = [
    "SectionContextView", "check_stack", "file_config", "minimum_sections", "section_indices", "with_z_context",
]
