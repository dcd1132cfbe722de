"""OME-Zarr (OME-NGFF) images in and out: level 0 of a multiscale image, its axes and its physical scale.

Reading understands OME-NGFF 0.4 (zarr format 2, metadata in ``.zattrs``) and 0.5 (zarr format 3, metadata
under ``"ome"``); only the full-resolution level (``datasets[0]``) is read, lazily, and a time axis of
length 1 is dropped (a time series is refused: biounet predicts one image).  Writing produces OME-NGFF 0.4
(zarr format 2, ``/``-separated chunk keys), the version napari (napari-ome-zarr), Fiji (MoBIE, BigDataViewer's
n5-zarr reader) and ome-zarr-py all read: probabilities as an image (axes ``c, [z,] y, x``), class labels and
instances as an OME-Zarr labels group (``labels/<name>`` with ``image-label`` metadata), each with the input's
spatial scale and units.  The metadata are written by ome-zarr-py's own writer functions.

Arrays are created empty with chunks chosen by the caller (blockwise prediction: one chunk per block, so
no two tasks ever write one chunk) and filled region by region.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from biounet.errors import ImageReadError

#: The OME-NGFF version biounet writes (readable by napari, Fiji/MoBIE/BigDataViewer and ome-zarr-py).
WRITE_VERSION = "0.4"


@dataclass(frozen=True)
class OmeInfo:
    """What an OME-Zarr image says about itself (level 0).

    Attributes:
        axes: one dict per axis of the level-0 array as read (``name``, ``type``, maybe ``unit``), after a
            length-1 time axis was dropped.
        scale: physical size of a pixel per axis (same order as ``axes``; 1.0 where none is given).
        version: the OME-NGFF version of the file (``"0.4"``, ``"0.5"``, ...).
        level_path: the level-0 array inside the group (``"0"`` usually).
    """

    axes: list[dict[str, Any]]
    scale: list[float]
    version: str
    level_path: str
    dropped: dict[int, int] = field(default_factory=dict)

    @property
    def channel_axis(self) -> int | None:
        """The index of the channel axis (``type == "channel"`` or name ``c``), ``None`` without one."""
        for index, axis in enumerate(self.axes):
            if axis.get("type") == "channel" or axis.get("name") == "c":
                return index
        return None

    def spatial(self, spatial_dims: int) -> tuple[list[dict[str, Any]], list[float]]:
        """The last ``spatial_dims`` axes (dicts) and their scales, for writing outputs of the same geometry."""
        return [dict(a) for a in self.axes[-spatial_dims:]], [float(s) for s in self.scale[-spatial_dims:]]


def multiscales(path: str | os.PathLike) -> tuple[list[dict[str, Any]], str] | None:
    """The ``multiscales`` metadata and NGFF version of the zarr group at ``path``, ``None`` if it is not OME-Zarr."""
    import zarr

    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception:  # not a group (a plain array, not zarr at all): not OME-Zarr
        return None
    attrs = dict(group.attrs)
    ome = attrs.get("ome") if isinstance(attrs.get("ome"), dict) else None
    meta = (ome or attrs).get("multiscales")
    if not isinstance(meta, list) or not meta or not isinstance(meta[0], dict):
        return None
    version = str((ome or {}).get("version") or meta[0].get("version") or "0.4")
    return meta, version


def is_omezarr(path: str | os.PathLike) -> bool:
    """True if ``path`` is a zarr group with OME-NGFF ``multiscales`` metadata."""
    return Path(path).is_dir() and multiscales(path) is not None


def open_level0(path: str | os.PathLike) -> tuple[Any, OmeInfo]:
    """The full-resolution array of the OME-Zarr image at ``path`` (read lazily) and its metadata.

    Raises :class:`~biounet.errors.ImageReadError` naming ``path`` for a time series or broken metadata.
    """
    import zarr

    found = multiscales(path)
    if found is None:
        raise ImageReadError(f"{path}: not an OME-Zarr image (no multiscales metadata)")
    meta, version = found
    try:
        dataset = meta[0]["datasets"][0]
        level_path = str(dataset["path"])
        array = zarr.open_array(str(Path(path) / level_path), mode="r")
    except (KeyError, IndexError, TypeError, FileNotFoundError, ValueError) as error:
        raise ImageReadError(f"{path}: broken OME-Zarr metadata or level 0 ({error})") from error
    ndim = len(array.shape)
    axes = [_axis_dict(a) for a in meta[0].get("axes") or _default_axes(ndim)]
    scale = _scale(dataset, meta[0], ndim)
    if len(axes) != ndim or len(scale) != ndim:
        raise ImageReadError(f"{path}: OME-Zarr metadata name {len(axes)} axes, level 0 has {ndim}")
    dropped = {}
    for index, axis in enumerate(axes):
        if axis.get("type") == "time" or axis.get("name") == "t":
            if int(array.shape[index]) != 1:
                raise ImageReadError(f"{path}: a time series ({array.shape[index]} time points); biounet predicts "
                                     "one image: write one time point per OME-Zarr")
            dropped[index] = 0
    keep = [i for i in range(ndim) if i not in dropped]
    info = OmeInfo([axes[i] for i in keep], [scale[i] for i in keep], version, level_path, dropped)
    return (DroppedAxes(array, dropped) if dropped else array), info


class DroppedAxes:
    """A lazy view of ``array`` with the axes in ``fixed`` (axis -> index) taken at that index (removed)."""

    def __init__(self, array: Any, fixed: dict[int, int]) -> None:
        self.array, self.fixed = array, dict(fixed)
        self.shape = tuple(int(n) for i, n in enumerate(array.shape) if i not in self.fixed)
        self.dtype = np.dtype(array.dtype)
        self.chunks = tuple(int(n) for i, n in enumerate(array.chunks) if i not in self.fixed)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nchunks(self) -> int:
        return int(self.array.nchunks)

    @property
    def nchunks_initialized(self) -> int:
        return int(self.array.nchunks_initialized)

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            at = key.index(Ellipsis)
            key = key[:at] + (slice(None),) * (self.ndim - len(key) + 1) + key[at + 1 :]
        rest = iter(tuple(key) + (slice(None),) * (self.ndim - len(key)))
        full = tuple(self.fixed[i] if i in self.fixed else next(rest) for i in range(len(self.array.shape)))
        return np.asarray(self.array[full])


def _axis_dict(axis: Any) -> dict[str, Any]:
    if isinstance(axis, str):  # NGFF 0.3: axis names only
        kind = "channel" if axis == "c" else "time" if axis == "t" else "space"
        return {"name": axis, "type": kind}
    return dict(axis)


def _default_axes(ndim: int) -> list[str]:
    return ["t", "c", "z", "y", "x"][5 - ndim :] if ndim <= 5 else [f"dim{i}" for i in range(ndim)]


def _scale(dataset: dict[str, Any], meta: dict[str, Any], ndim: int) -> list[float]:
    """Level 0's scale: its own ``scale`` transformation times the multiscale's global one (1.0 where absent)."""
    scale = np.ones(ndim)
    for transforms in (dataset.get("coordinateTransformations"), meta.get("coordinateTransformations")):
        for transform in transforms or []:
            if transform.get("type") == "scale" and len(transform.get("scale", [])) == ndim:
                scale *= np.asarray(transform["scale"], dtype=float)
    return [float(s) for s in scale]


def create_image(
    root: str | os.PathLike,
    shape: Sequence[int],
    dtype: Any,
    chunks: Sequence[int],
    axes: list[dict[str, Any]],
    scale: Sequence[float],
    *,
    name: str,
    channel_names: Sequence[str] = (),
) -> Any:
    """Create an empty single-level OME-Zarr image at ``root`` (axes ``c, *spatial``); return its zarr array.

    ``axes``/``scale``: the spatial axes (dicts with ``name``, ``type``, maybe ``unit``) and pixel sizes of
    the input, so the output overlays the input in napari and Fiji.
    """
    import zarr
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_multiscales_metadata

    group = zarr.open_group(str(root), mode="a", zarr_format=2)
    array = _create_array(group, "0", shape, dtype, chunks)
    all_axes = [{"name": "c", "type": "channel"}, *axes]
    transforms = [{"type": "scale", "scale": [1.0, *[float(s) for s in scale]]}]
    write_multiscales_metadata(
        group, [{"path": "0", "coordinateTransformations": transforms}], fmt=FormatV04(), axes=all_axes, name=name
    )
    if channel_names:
        omero = {"channels": [{"label": str(n), "active": True, "window": {"start": 0, "end": 1, "min": 0, "max": 1}}
                              for n in channel_names]}
        group.attrs["omero"] = omero
    return array


def create_labels(
    root: str | os.PathLike,
    name: str,
    shape: Sequence[int],
    dtype: Any,
    chunks: Sequence[int],
    axes: list[dict[str, Any]],
    scale: Sequence[float],
) -> Any:
    """Create an empty label image ``root/labels/<name>`` (OME-NGFF labels group) and return its zarr array."""
    import zarr
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_label_metadata, write_multiscales_metadata

    root_group = zarr.open_group(str(root), mode="a", zarr_format=2)
    labels = root_group.require_group("labels")
    group = labels.require_group(name)
    array = _create_array(group, "0", shape, dtype, chunks)
    transforms = [{"type": "scale", "scale": [float(s) for s in scale]}]
    write_multiscales_metadata(
        group, [{"path": "0", "coordinateTransformations": transforms}], fmt=FormatV04(), axes=axes, name=name
    )
    write_label_metadata(labels, name, fmt=FormatV04())
    return array


def _create_array(group: Any, name: str, shape: Sequence[int], dtype: Any, chunks: Sequence[int]) -> Any:
    return group.create_array(
        name,
        shape=tuple(int(n) for n in shape),
        chunks=tuple(int(n) for n in chunks),
        dtype=np.dtype(dtype),
        fill_value=0,
        chunk_key_encoding={"name": "v2", "separator": "/"},
        overwrite=True,
    )


__all__ = ["WRITE_VERSION", "DroppedAxes", "OmeInfo", "create_image", "create_labels", "is_omezarr", "multiscales",
           "open_level0"]
